// okno demo: the phone — a small Telegram client over the simulated Telegram.
// Chats are Telegram Message objects from /demo/api/phone/...; everything is drawn with
// textContent (never innerHTML), so nothing a bot or a person writes can run as code.
(function () {
  "use strict";
  var T = JSON.parse(document.getElementById("demo-texts").textContent || "{}");
  var $ = function (id) { return document.getElementById(id); };
  var state = { person: null, chat: null, people: [], data: null, replyTo: null, seenAnswers: {}, firstLoad: true };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function toast(text, err) {
    var t = el("div", "toast" + (err ? " err" : ""), text);
    $("toasts").appendChild(t);
    setTimeout(function () { t.remove(); }, err ? 6000 : 3500);
  }

  function api(method, path, body, raw) {
    var opts = { method: method, headers: { "X-Okno-Demo": "1" } };
    if (raw) {
      opts.body = raw.body;
      opts.headers["Content-Type"] = raw.type || "application/octet-stream";
    } else if (body !== undefined) {
      opts.body = JSON.stringify(body);
      opts.headers["Content-Type"] = "application/json";
    }
    return fetch(path, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) {
          var msg = (j.error && j.error.message) || (T.demo_failed + " (" + r.status + ")");
          toast(msg, true);
          throw new Error(msg);
        }
        return j;
      });
    });
  }

  function time(unix) {
    var d = new Date(unix * 1000);
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }

  function safeUrl(u) { return /^https?:\/\//i.test(u || "") ? u : null; }

  // A t.me/<bot>?start=<payload> link of one of the demo's bots: opened in the phone itself.
  function botLink(url) {
    var m = /^https?:\/\/t\.me\/([A-Za-z0-9_]+)(?:\?start=([A-Za-z0-9_-]{1,64}))?$/.exec(url || "");
    if (!m || !state.data) return null;
    var bot = (state.data.bots || []).filter(function (b) { return b.username.toLowerCase() === m[1].toLowerCase(); })[0];
    return bot ? { key: bot.key, payload: m[2] || "" } : null;
  }

  function openBotLink(link) {
    api("POST", "/demo/api/phone/" + state.person + "/" + link.key + "/start", link.payload ? { payload: link.payload } : {})
      .then(function () { openChat(link.key); });
  }

  function link(text, url) {
    var a = el("a", null, text);
    var bot = botLink(url);
    if (bot) {
      a.href = "#";
      a.addEventListener("click", function (e) { e.preventDefault(); openBotLink(bot); });
    } else if (safeUrl(url)) {
      a.href = url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    } else {
      // tg://user?id=… and the like mean nothing outside Telegram: plain text.
      return el("span", "mention", text);
    }
    return a;
  }

  // Telegram's entities (offsets in UTF-16 units, as JavaScript strings count).
  function formatted(parent, text, entities) {
    var pos = 0;
    (entities || []).slice().sort(function (a, b) { return a.offset - b.offset; }).forEach(function (e) {
      if (e.offset < pos) return;
      parent.appendChild(document.createTextNode(text.slice(pos, e.offset)));
      var part = text.slice(e.offset, e.offset + e.length), node;
      switch (e.type) {
        case "bold": node = el("b", null, part); break;
        case "italic": node = el("i", null, part); break;
        case "underline": node = el("u", null, part); break;
        case "strikethrough": node = el("s", null, part); break;
        case "code": case "pre": node = el("code", null, part); break;
        case "text_link": node = link(part, e.url); break;
        case "url": node = link(part, part); break;
        default: node = el("span", null, part);
      }
      parent.appendChild(node);
      pos = e.offset + e.length;
    });
    parent.appendChild(document.createTextNode(text.slice(pos)));
  }

  function snippet(m) {
    if (!m) return "";
    if (m.text) return m.text;
    if (m.caption) return m.caption;
    if (m.photo) return T.demo_photo || "🖼";
    if (m.document) return "📄 " + (m.document.file_name || "");
    return "";
  }

  function sizeText(n) {
    if (!n) return "";
    return n < 1024 ? n + " B" : n < 1048576 ? Math.round(n / 1024) + " KB" : (n / 1048576).toFixed(1) + " MB";
  }

  // ---- people and chats --------------------------------------------------------------------

  function loadPeople() {
    return fetch("/demo/api/people").then(function (r) { return r.json(); }).then(function (j) {
      state.people = j.people || [];
      var sel = $("who-select");
      sel.textContent = "";
      state.people.forEach(function (p) {
        var o = el("option", null, p.name + " — " + p.role);
        o.value = p.key;
        sel.appendChild(o);
      });
    });
  }

  function showPerson() {
    var p = state.people.filter(function (x) { return x.key === state.person; })[0];
    if (!p) return;
    $("who-select").value = p.key;
    $("who-role").textContent = p.name + " · @" + p.username;
    $("who-hint").textContent = p.hint;
  }

  function seenKey(chat) { return "okno-demo-seen:" + state.person + ":" + chat; }

  function loadChats() {
    if (!state.person) return Promise.resolve();
    var person = state.person;
    return fetch("/demo/api/phone/" + person).then(function (r) { return r.json(); }).then(function (j) {
      if (person !== state.person) return;
      var list = $("chat-list");
      list.textContent = "";
      (j.chats || []).forEach(function (c) {
        var item = el("button", "chat-item" + (c.key === state.chat ? " on" : ""));
        item.type = "button";
        item.dataset.chat = c.key;
        var av = el("div", "avatar" + (c.kind === "group" ? " group" : ""), c.kind === "group" ? "👥" : "🤖");
        var meta = el("div", "meta");
        meta.appendChild(el("div", "title", c.title));
        var last = c.last ? (c.last.mine ? "✓ " : "") + c.last.text : (c.started ? T.demo_no_messages : T.demo_not_started);
        meta.appendChild(el("div", "last", last));
        item.appendChild(av);
        item.appendChild(meta);
        var seen = parseInt(localStorage.getItem(seenKey(c.key)) || "0", 10);
        if (c.key !== state.chat && c.last && !c.last.mine && c.last.id > seen) item.appendChild(el("span", "dot"));
        item.addEventListener("click", function () { openChat(c.key); });
        list.appendChild(item);
      });
    });
  }

  // ---- one chat ------------------------------------------------------------------------------

  function openChat(key) {
    state.chat = key;
    state.replyTo = null;
    state.firstLoad = true;
    $("replying").hidden = true;
    location.hash = state.person + "/" + key;
    $("device").classList.add("in-chat");
    document.querySelector(".phone-page").classList.add("in-chat");
    $("no-chat").hidden = true;
    $("chat").hidden = false;
    return loadChat().then(loadChats).then(function () { $("text").focus(); });
  }

  function pressButton(m, b) {
    api("POST", "/demo/api/phone/" + state.person + "/" + state.chat + "/press", { message_id: m.message_id, data: b.callback_data });
  }

  function renderMessage(m, data) {
    var mine = m.from && m.from.id === data.me;
    var box = el("div", "msg" + (mine ? " mine" : ""));
    box.dataset.id = m.message_id;
    var bubble = el("div", "bubble");
    if (data.chat.kind === "group" && !mine && m.from) bubble.appendChild(el("div", "from", m.from.first_name));
    if (m.reply_to_message) bubble.appendChild(el("div", "quote", snippet(m.reply_to_message)));
    if (m.photo && m.photo.length) {
      var img = el("img");
      img.src = data.files + encodeURIComponent(m.photo[m.photo.length - 1].file_id);
      img.alt = T.demo_photo || "photo";
      bubble.appendChild(img);
    }
    if (m.document) {
      var doc = el("div", "doc");
      var a = el("a", null, "📄 " + (m.document.file_name || "file"));
      a.href = data.files + encodeURIComponent(m.document.file_id);
      a.setAttribute("download", m.document.file_name || "file");
      doc.appendChild(a);
      doc.appendChild(el("small", "muted", sizeText(m.document.file_size)));
      bubble.appendChild(doc);
    }
    var body = el("span", "text");
    if (m.text) formatted(body, m.text, m.entities);
    else if (m.caption) formatted(body, m.caption, m.caption_entities);
    bubble.appendChild(body);
    bubble.appendChild(el("span", "time", (m.edit_date ? T.demo_edited + " " : "") + time(m.date)));
    box.appendChild(bubble);
    var kb = m.reply_markup && m.reply_markup.inline_keyboard;
    if (kb && kb.length) {
      var inline = el("div", "inline");
      kb.forEach(function (row) {
        var r = el("div", "row");
        row.forEach(function (b) {
          if (b.url) {
            r.appendChild(link(b.text, b.url));
          } else {
            var btn = el("button", null, b.text);
            btn.type = "button";
            btn.dataset.data = b.callback_data || "";
            btn.addEventListener("click", function () { pressButton(m, b); });
            r.appendChild(btn);
          }
        });
        inline.appendChild(r);
      });
      box.appendChild(inline);
    }
    if (!mine && data.chat.kind === "bot") {
      var reply = el("button", "reply-to", "↩ " + T.demo_reply);
      reply.type = "button";
      reply.addEventListener("click", function () {
        state.replyTo = m.message_id;
        $("replying-text").textContent = snippet(m);
        $("replying").hidden = false;
        $("text").focus();
      });
      box.appendChild(reply);
    }
    return box;
  }

  function renderPress(p) {
    var line = el("div", "service" + (p.answer && p.answer.alert ? " alerted" : ""));
    line.appendChild(document.createTextNode(T.demo_you_pressed + " «" + (p.label || "…") + "»"));
    if (p.answer && p.answer.text) line.appendChild(document.createTextNode(" — " + p.answer.text));
    if (p.answer && p.answer.url) {
      line.appendChild(document.createTextNode(" "));
      var bot = botLink(p.answer.url);
      line.appendChild(link(bot ? T.demo_open_bot : p.answer.url, p.answer.url));
    }
    return line;
  }

  function showAnswer(p) {
    if (!p.answer || (!p.answer.text && !p.answer.url)) return;
    if (p.answer.alert) {
      $("alert-text").textContent = p.answer.text || "";
      $("alert").hidden = false;
    } else if (p.answer.text) {
      toast(p.answer.text);
    }
  }

  function renderKeyboard(rows) {
    var kb = $("keyboard");
    kb.textContent = "";
    kb.hidden = !rows || !rows.length;
    (rows || []).forEach(function (row) {
      var r = el("div", "row");
      row.forEach(function (text) {
        var b = el("button", null, text);
        b.type = "button";
        b.addEventListener("click", function () { sendText(text); });
        r.appendChild(b);
      });
      kb.appendChild(r);
    });
  }

  function loadChat() {
    if (!state.person || !state.chat) return Promise.resolve();
    var person = state.person, chat = state.chat;
    return fetch("/demo/api/phone/" + person + "/" + chat).then(function (r) {
      if (!r.ok) throw new Error("chat " + r.status);
      return r.json();
    }).then(function (data) {
      if (person !== state.person || chat !== state.chat) return;
      state.data = data;
      $("chat-title").textContent = data.chat.title;
      $("chat-sub").textContent = data.chat.kind === "group"
        ? T.demo_group_members + ": " + data.members.join(", ")
        : "@" + data.chat.username;
      $("chat-avatar").textContent = data.chat.kind === "group" ? "👥" : "🤖";
      $("chat-avatar").className = "avatar" + (data.chat.kind === "group" ? " group" : "");
      var box = $("messages");
      var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
      box.textContent = "";
      var presses = data.presses || [];
      if (!data.messages.length) box.appendChild(el("div", "service", data.chat.started ? T.demo_no_messages : T.demo_not_started));
      data.messages.forEach(function (m) {
        box.appendChild(renderMessage(m, data));
        presses.filter(function (p) { return p.after_message_id === m.message_id; }).forEach(function (p) {
          box.appendChild(renderPress(p));
        });
      });
      presses.forEach(function (p) {
        var key = p.id + (p.answer ? ":a" : "");
        if (!state.seenAnswers[key] && !state.firstLoad) showAnswer(p);
        state.seenAnswers[key] = true;
      });
      state.firstLoad = false;
      renderKeyboard(data.keyboard);
      var started = data.chat.started;
      $("composer").hidden = !started;
      $("start").hidden = started;
      if (atBottom || box.dataset.chat !== chat) box.scrollTop = box.scrollHeight;
      box.dataset.chat = chat;
      var last = data.messages[data.messages.length - 1];
      if (last) localStorage.setItem(seenKey(chat), String(last.message_id));
      document.body.dataset.loaded = person + "/" + chat + "/" + data.messages.length;
    }).catch(function () {});
  }

  function sendText(text) {
    if (!text.trim()) return Promise.resolve();
    var body = { text: text };
    if (state.replyTo) body.reply_to = state.replyTo;
    return api("POST", "/demo/api/phone/" + state.person + "/" + state.chat + "/send", body).then(function () {
      state.replyTo = null;
      $("replying").hidden = true;
      return loadChat();
    });
  }

  $("composer").addEventListener("submit", function (e) {
    e.preventDefault();
    var input = $("text"), text = input.value;
    if (!text.trim()) return;
    input.value = "";
    sendText(text).catch(function () { input.value = text; });
  });

  $("start").addEventListener("click", function () {
    api("POST", "/demo/api/phone/" + state.person + "/" + state.chat + "/start", {}).then(loadChat).then(loadChats);
  });

  $("file").addEventListener("change", function () {
    var f = $("file").files[0];
    if (!f) return;
    var url = "/demo/api/phone/" + state.person + "/" + state.chat + "/file?name=" + encodeURIComponent(f.name);
    api("POST", url, undefined, { body: f, type: f.type }).then(loadChat);
    $("file").value = "";
  });

  $("replying-cancel").addEventListener("click", function () { state.replyTo = null; $("replying").hidden = true; });
  $("alert-ok").addEventListener("click", function () { $("alert").hidden = true; });
  $("back").addEventListener("click", function () {
    state.chat = null;
    $("device").classList.remove("in-chat");
    document.querySelector(".phone-page").classList.remove("in-chat");
    $("chat").hidden = true;
    $("no-chat").hidden = false;
    location.hash = state.person;
    loadChats();
  });

  $("who-select").addEventListener("change", function () { choosePerson($("who-select").value, null); });

  function choosePerson(key, chat) {
    state.person = key;
    state.chat = null;
    localStorage.setItem("okno-demo-person", key);
    showPerson();
    $("chat").hidden = true;
    $("no-chat").hidden = false;
    $("device").classList.remove("in-chat");
    document.querySelector(".phone-page").classList.remove("in-chat");
    location.hash = key + (chat ? "/" + chat : "");
    return loadChats().then(function () { if (chat) return openChat(chat); });
  }

  // ---- live ------------------------------------------------------------------------------------

  var pending = null;
  function refresh() {
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      loadChats();
      loadChat();
    }, 50);
  }

  function connect() {
    var es = new EventSource("/demo/api/live");
    es.addEventListener("ready", function () {
      $("live").className = "live on";
      window.oknoDemoLive = true;
      refresh();
    });
    es.addEventListener("change", refresh);
    es.onerror = function () {
      $("live").className = "live off";
      window.oknoDemoLive = false;
    };
  }

  loadPeople().then(function () {
    var hash = decodeURIComponent(location.hash.slice(1)).split("/");
    var known = function (k) { return state.people.some(function (p) { return p.key === k; }); };
    var person = known(hash[0]) ? hash[0] : (known(localStorage.getItem("okno-demo-person")) ? localStorage.getItem("okno-demo-person") : (state.people[0] || {}).key);
    return choosePerson(person, hash[1] || null);
  }).then(connect);
})();
