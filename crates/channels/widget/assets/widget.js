/*! okno website chat widget. Embed: <script src="https://OKNO/widget/CHANNEL_ID.js" async></script>
 * Optional, before it: window.oknoWidgetSettings = {customer: {id, name, email, phone, hash}}
 * (hash = hex HMAC-SHA256 of id with the channel's secret, computed by the site's server).
 * No third-party requests, no eval, styles inside a shadow root (CSP-friendly). */
(function () {
  "use strict";
  var me = document.currentScript;
  if (!me || window.__oknoWidget) return;
  window.__oknoWidget = true;
  var src = new URL(me.src, location.href);
  var m = src.pathname.match(/\/widget\/([^\/]+)\.js$/);
  if (!m) return;
  var CHANNEL = m[1];
  var BASE = src.origin + "/widget/" + CHANNEL;
  var KEY = "okno-widget:" + CHANNEL;
  var settings = window.oknoWidgetSettings || {};
  var RU = /^ru/i.test(document.documentElement.lang || navigator.language || "");
  var T = RU ? {
    title: "Чат с нами", open: "Открыть чат", close: "Закрыть", placeholder: "Напишите сообщение…",
    send: "Отправить", attach: "Прикрепить файл", typing: "печатает…", offline: "Сейчас мы не в сети. Оставьте сообщение и контакты — ответим, как только сможем.",
    name: "Имя", phone: "Телефон", email: "Эл. почта", start: "Начать чат", required: "Заполните обязательные поля",
    failed: "Не отправлено. Повторить", sending: "отправляется…", error: "Чат недоступен, попробуйте позже", tooBig: "Файл больше 10 МБ"
  } : {
    title: "Chat with us", open: "Open chat", close: "Close", placeholder: "Write a message…",
    send: "Send", attach: "Attach a file", typing: "typing…", offline: "We are offline right now. Leave a message and how to reach you — we will answer as soon as we can.",
    name: "Name", phone: "Phone", email: "E-mail", start: "Start chat", required: "Please fill in the required fields",
    failed: "Not sent. Retry", sending: "sending…", error: "The chat is unavailable, please try later", tooBig: "The file is larger than 10 MB"
  };

  var CSS = ":host{all:initial}*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}" +
    ".bubble{position:fixed;right:20px;bottom:20px;width:60px;height:60px;border-radius:50%;border:0;cursor:pointer;background:var(--c);color:#fff;box-shadow:0 4px 16px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center;z-index:2147483000}" +
    ".bubble svg{width:30px;height:30px}.bubble .dot{position:absolute;top:6px;right:6px;width:14px;height:14px;border-radius:50%;background:#ef4444;border:2px solid #fff;display:none}" +
    ".bubble.unread .dot{display:block}" +
    ".win{position:fixed;right:20px;bottom:92px;width:370px;height:560px;max-height:calc(100vh - 112px);background:#fff;border-radius:14px;box-shadow:0 8px 32px rgba(0,0,0,.25);display:none;flex-direction:column;overflow:hidden;z-index:2147483000;color:#111827;font-size:15px}" +
    ".win.open{display:flex}" +
    ".head{background:var(--c);color:#fff;padding:14px 16px;display:flex;align-items:center;gap:8px}.head b{flex:1;font-size:16px}" +
    ".head button{background:none;border:0;color:#fff;font-size:22px;cursor:pointer;line-height:1}" +
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f9fafb}" +
    ".msg{max-width:80%;padding:8px 12px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;line-height:1.35}" +
    ".msg.okno{align-self:flex-start;background:#fff;border:1px solid #e5e7eb}.msg.visitor{align-self:flex-end;background:var(--c);color:#fff}" +
    ".msg.pending{opacity:.6}.msg.failed{outline:2px solid #ef4444;cursor:pointer}" +
    ".msg img{max-width:100%;border-radius:8px;display:block;margin-top:4px}.msg a{color:inherit}" +
    ".btns{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}.btns button{border:1px solid var(--c);background:#fff;color:var(--c);border-radius:8px;padding:6px 10px;cursor:pointer;font-size:14px}" +
    ".note{font-size:13px;color:#6b7280;padding:8px 12px;background:#fef3c7}" +
    ".typing{font-size:13px;color:#6b7280;padding:0 14px 6px;min-height:18px;background:#f9fafb}" +
    ".bar{display:flex;gap:6px;padding:8px;border-top:1px solid #e5e7eb;align-items:flex-end}" +
    ".bar textarea{flex:1;resize:none;border:1px solid #d1d5db;border-radius:10px;padding:8px 10px;font-size:15px;max-height:120px;min-height:40px;outline-color:var(--c)}" +
    ".bar button{border:0;background:none;cursor:pointer;color:var(--c);width:40px;height:40px;display:flex;align-items:center;justify-content:center}" +
    ".bar button svg{width:24px;height:24px}" +
    ".form{padding:16px;display:flex;flex-direction:column;gap:10px;overflow-y:auto;flex:1}.form input{border:1px solid #d1d5db;border-radius:8px;padding:9px 10px;font-size:15px}" +
    ".form .go{background:var(--c);color:#fff;border:0;border-radius:8px;padding:10px;font-size:15px;cursor:pointer}.form .err{color:#b91c1c;font-size:13px}" +
    "@media (max-width:480px){.win{right:0;bottom:0;width:100vw;height:100%;max-height:none;border-radius:0}.win.open~.bubble{display:none}}";

  var ICON_CHAT = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round"><path d="M4 6a2 2 0 0 1 2-2h12a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-7l-4 3v-3H6a2 2 0 0 1-2-2z"/></svg>';
  var ICON_SEND = '<svg viewBox="0 0 24 24" fill="currentColor"><path d="M3 20.5 21 12 3 3.5 3 10l12 2-12 2z"/></svg>';
  var ICON_CLIP = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"><path d="m21 11-8.5 8.5a5 5 0 0 1-7-7L14 4a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L15 7"/></svg>';

  var SVG_NS = "http://www.w3.org/2000/svg"; // a name, never fetched
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function svg(markup) { // okno's own static icons, parsed as SVG (no HTML, no scripts run)
    var doc = new DOMParser().parseFromString(markup.replace("<svg ", '<svg xmlns="' + SVG_NS + '" '), "image/svg+xml");
    return document.importNode(doc.documentElement, true);
  }
  function store(k, v) {
    try { if (v === undefined) return JSON.parse(localStorage.getItem(KEY + k) || "null"); localStorage.setItem(KEY + k, JSON.stringify(v)); } catch (e) { return null; }
  }
  function echoId() {
    var a = new Uint8Array(12);
    crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  var host = el("div");
  host.id = "okno-widget";
  var root = host.attachShadow({ mode: "open" });
  if (root.adoptedStyleSheets !== undefined && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.appendChild(el("style", null, CSS));
  }

  var win = el("div", "win");
  win.setAttribute("role", "dialog");
  var head = el("div", "head");
  var titleEl = el("b", null, T.title);
  var closeBtn = el("button", "close", "×");
  closeBtn.setAttribute("aria-label", T.close);
  head.appendChild(titleEl);
  head.appendChild(closeBtn);
  var note = el("div", "note");
  note.style.display = "none";
  var log = el("div", "log");
  var typing = el("div", "typing");
  var form = el("div", "form");
  form.style.display = "none";
  var bar = el("div", "bar");
  var clip = el("button", "attach");
  clip.appendChild(svg(ICON_CLIP));
  clip.setAttribute("aria-label", T.attach);
  var fileInput = el("input");
  fileInput.type = "file";
  fileInput.style.display = "none";
  var input = el("textarea");
  input.rows = 1;
  input.placeholder = T.placeholder;
  var sendBtn = el("button", "send");
  sendBtn.appendChild(svg(ICON_SEND));
  sendBtn.setAttribute("aria-label", T.send);
  bar.appendChild(clip);
  bar.appendChild(fileInput);
  bar.appendChild(input);
  bar.appendChild(sendBtn);
  [head, note, log, typing, form, bar].forEach(function (x) { win.appendChild(x); });
  var bubble = el("button", "bubble");
  bubble.appendChild(svg(ICON_CHAT));
  bubble.appendChild(el("span", "dot"));
  bubble.setAttribute("aria-label", T.open);
  root.appendChild(win);
  root.appendChild(bubble);

  var token = store(":token");
  var config = null;
  var shown = {}; // message id → element
  var lastId = null;
  var source = null;
  var typingTimer = null;
  var started = false;
  var lastOkno = null; // the newest of okno's messages shown
  var readSent = null; // the newest okno was told the visitor has seen
  var readTimer = null;

  function api(method, path, body, type) {
    var headers = {};
    if (token) headers["X-Okno-Visitor"] = token;
    if (body !== undefined && !type) headers["Content-Type"] = "application/json";
    if (type) headers["Content-Type"] = type;
    return fetch(BASE + path, {
      method: method, headers: headers, credentials: "omit", mode: "cors",
      body: body === undefined ? undefined : (type ? body : JSON.stringify(body))
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) { var e = new Error((j.error && j.error.message) || r.status); e.status = r.status; e.code = j.error && j.error.code; throw e; }
        return j;
      });
    });
  }

  function fileUrl(f) { return src.origin + f.url + "?token=" + encodeURIComponent(token); }

  function render(msg) {
    if (shown[msg.id]) return;
    var box = el("div", "msg " + (msg.from === "visitor" ? "visitor" : "okno"));
    box.dataset.id = msg.id;
    var text = msg.text || msg.button || "";
    if (text) box.appendChild(document.createTextNode(text));
    (msg.files || []).forEach(function (f) {
      if (/^image\//.test(f.mime) && f.ready) {
        var img = el("img");
        img.alt = f.name;
        img.src = fileUrl(f);
        box.appendChild(img);
      } else {
        var a = el("a", null, "📎 " + f.name);
        a.href = fileUrl(f);
        a.target = "_blank";
        a.rel = "noopener";
        box.appendChild(el("div")).appendChild(a);
      }
    });
    var rows = msg.buttons || [];
    if (rows.length && msg.from !== "visitor") {
      var btns = el("div", "btns");
      rows.forEach(function (row) {
        row.forEach(function (b) {
          var x = el("button", null, b.text);
          x.addEventListener("click", function () {
            if (b.url) { window.open(b.url, "_blank", "noopener"); return; }
            send({ button: b.data }, b.text);
          });
          btns.appendChild(x);
        });
      });
      box.appendChild(btns);
    }
    shown[msg.id] = box;
    log.appendChild(box);
    log.scrollTop = log.scrollHeight;
    if (msg.from !== "visitor") {
      typing.textContent = "";
      if (!win.classList.contains("open")) bubble.classList.add("unread");
      if (msg.id !== "greeting" && (!lastOkno || msg.id > lastOkno)) lastOkno = msg.id;
      markRead();
    }
  }

  // What the visitor has seen: okno's messages up to the newest shown, while the window is
  // open on a visible page (an answer nobody saw goes on to the visitor's e-mail).
  function markRead() {
    if (!token || !lastOkno || lastOkno === readSent) return;
    if (!win.classList.contains("open") || document.visibilityState !== "visible") return;
    clearTimeout(readTimer);
    readTimer = setTimeout(function () {
      var last = lastOkno;
      api("POST", "/read", { last: last }).then(function () { readSent = last; }, function () {});
    }, 300);
  }

  function prechatValues() { return store(":prechat") || {}; }

  function send(body, label) {
    body.echo_id = echoId();
    var p = prechatValues();
    ["name", "phone", "email"].forEach(function (k) { if (p[k]) body[k] = p[k]; });
    var pending = el("div", "msg visitor pending", label || body.text || "");
    if (!label && !body.text && body.files) pending.textContent = "📎 " + body.files.map(function (f) { return f.name; }).join(", ");
    pending.title = T.sending;
    log.appendChild(pending);
    log.scrollTop = log.scrollHeight;
    var tries = 0;
    function attempt() {
      tries++;
      api("POST", "/messages", body).then(function (r) {
        if (shown[r.id]) pending.remove(); else { pending.classList.remove("pending"); pending.dataset.id = r.id; shown[r.id] = pending; }
      }, function (e) {
        if ((e.status === undefined || e.status >= 500 || e.status === 429) && tries < 4) { setTimeout(attempt, 1000 * tries); return; }
        pending.classList.add("failed");
        pending.title = T.failed;
        pending.onclick = function () { pending.classList.remove("failed"); pending.onclick = null; tries = 0; attempt(); };
      });
    }
    attempt();
  }

  function listen() {
    if (source) source.close();
    var url = BASE + "/stream?token=" + encodeURIComponent(token) + (lastId ? "&after=" + lastId : "");
    source = new EventSource(url);
    source.addEventListener("message", function (e) {
      var msg = JSON.parse(e.data);
      lastId = msg.id;
      render(msg);
    });
    source.addEventListener("typing", function () {
      typing.textContent = T.typing;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () { typing.textContent = ""; }, 5000);
    });
    // EventSource reconnects by itself and sends Last-Event-ID: nothing is lost or doubled.
  }

  function showForm(fields, offline) {
    form.textContent = "";
    if (offline) form.appendChild(el("div", null, (config && config.offline_message) || T.offline));
    var inputs = {};
    fields.forEach(function (f) {
      var i = el("input");
      i.name = f.field;
      i.type = f.field === "email" ? "email" : (f.field === "phone" ? "tel" : "text");
      i.placeholder = T[f.field] + (f.required ? " *" : "");
      i.required = !!f.required;
      inputs[f.field] = i;
      form.appendChild(i);
    });
    var err = el("div", "err");
    var go = el("button", "go", T.start);
    form.appendChild(err);
    form.appendChild(go);
    form.style.display = "flex";
    log.style.display = bar.style.display = "none";
    go.addEventListener("click", function () {
      var v = {};
      var ok = fields.every(function (f) { v[f.field] = inputs[f.field].value.trim(); return !f.required || v[f.field]; });
      if (!ok) { err.textContent = T.required; return; }
      store(":prechat", v);
      form.style.display = "none";
      log.style.display = "flex";
      bar.style.display = "flex";
      input.focus();
    });
  }

  function start() {
    if (started) return;
    started = true;
    var body = { token: token || undefined, customer: settings.customer || undefined };
    api("POST", "/session", body).then(function (s) {
      token = s.token;
      store(":token", token);
      config = s.config;
      host.style.setProperty("--c", config.color);
      if (config.title) titleEl.textContent = config.title;
      if (!config.online) { note.textContent = config.offline_message || T.offline; note.style.display = "block"; }
      return api("GET", "/messages").then(function (h) {
        if (config.greeting) render({ id: "greeting", from: "okno", text: config.greeting });
        h.messages.forEach(render);
        if (h.messages.length) lastId = h.messages[h.messages.length - 1].id;
        var fields = (config.prechat || []).slice();
        if (!config.online && !fields.length) fields = [{ field: "name" }, { field: "email", required: true }];
        if (fields.length && !h.messages.length && !s.customer && !store(":prechat")) showForm(fields, !config.online);
        listen();
      });
    }).catch(function (e) {
      started = false;
      note.textContent = T.error + (e.code ? " (" + e.code + ")" : "");
      note.style.display = "block";
    });
  }

  function submit() {
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    send({ text: text });
  }

  bubble.addEventListener("click", function () {
    var open = win.classList.toggle("open");
    bubble.classList.remove("unread");
    if (open) { start(); input.focus(); markRead(); }
  });
  document.addEventListener("visibilitychange", markRead);
  closeBtn.addEventListener("click", function () { win.classList.remove("open"); });
  sendBtn.addEventListener("click", submit);
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); }
  });
  clip.addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () {
    var f = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!f) return;
    if (f.size > 10 * 1024 * 1024) { note.textContent = T.tooBig; note.style.display = "block"; return; }
    api("POST", "/files?name=" + encodeURIComponent(f.name), f, f.type || "application/octet-stream").then(function (up) {
      send({ files: [{ id: up.id, name: f.name, mime: f.type || up.mime }] });
    }, function (e) { note.textContent = T.error + " (" + (e.code || e.message) + ")"; note.style.display = "block"; });
  });

  host.style.setProperty("--c", "#2563EB");
  function mount() { document.body.appendChild(host); if (token) start(); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
  window.oknoWidget = { open: function () { if (!win.classList.contains("open")) bubble.click(); }, close: function () { win.classList.remove("open"); } };
})();
