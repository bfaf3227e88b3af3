// okno operator UI: the window (list | thread | contact panel), live updates over Server-Sent
// Events, keyboard shortcuts, pop-up + sound on new messages.
// No framework: the server renders every fragment; this file only fetches and swaps them.
(function () {
  "use strict";
  var body = document.body;
  var conv = body.dataset.conv || "";
  var live = document.getElementById("live");
  // Wide enough for the list beside the conversation (app.css switches at the same width).
  var wideScreen = window.matchMedia ? window.matchMedia("(min-width: 900px)") : null;
  function windowPage() { return !!document.getElementById("window"); }
  function wide() { return windowPage() && (!wideScreen || wideScreen.matches); }

  // --- the reply box: bound again whenever a conversation is opened in the pane ------------

  // What was typed in a conversation's reply box waits there while the operator looks at
  // another conversation (kept for this tab's life), and goes once it is sent.
  var drafts = {};
  try { drafts = JSON.parse(sessionStorage.getItem("okno-drafts") || "{}") || {}; } catch (e) { drafts = {}; }
  function keepDraft(id, text) {
    if (!id) return;
    if (text) drafts[id] = text; else delete drafts[id];
    try { sessionStorage.setItem("okno-drafts", JSON.stringify(drafts)); } catch (e) {}
  }

  function initReply(root) {
    var f = root.querySelector("form.reply");
    if (!f) return;
    var ta = f.querySelector("textarea");
    var mine = conv;
    if (ta && !ta.value && drafts[mine]) ta.value = drafts[mine];
    if (ta) ta.addEventListener("input", function () { keepDraft(mine, ta.value); });
    // The person sees "typing…" while an answer is typed, told at most every 4 s.
    var typedAt = 0;
    if (ta && mine) ta.addEventListener("input", function () {
      if (!ta.value || ta.value.charAt(0) === "/" || Date.now() - typedAt < 4000) return;
      typedAt = Date.now();
      fetch("/ui/conversations/" + encodeURIComponent(mine) + "/typing", {
        method: "POST", credentials: "same-origin", headers: { "x-csrf-token": body.dataset.csrf }
      }).catch(function () {});
    });
    if (ta) ta.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); f.requestSubmit(); }
    });

    // Canned responses: "/" at the start of the reply box lists them; Tab or Enter takes the first.
    var cannedData = f.querySelector("#canned-data");
    var canned = cannedData ? JSON.parse(cannedData.textContent || "[]") : [];
    var menu = f.querySelector("#canned-menu");
    function matches() {
      var v = ta.value;
      if (v.charAt(0) !== "/" || /\s/.test(v)) return [];
      var key = v.slice(1).toLowerCase();
      return canned.filter(function (c) { return c.shortcut.toLowerCase().indexOf(key) === 0; });
    }
    function take(c) { ta.value = c.text; menu.hidden = true; ta.focus(); keepDraft(mine, ta.value); }
    if (ta && menu && canned.length) {
      ta.addEventListener("input", function () {
        var m = matches();
        menu.innerHTML = "";
        m.forEach(function (c, i) {
          var b = document.createElement("button");
          b.type = "button"; b.className = i === 0 ? "on" : "";
          b.textContent = "/" + c.shortcut + " — " + c.text.slice(0, 80);
          b.addEventListener("click", function () { take(c); });
          menu.appendChild(b);
        });
        menu.hidden = m.length === 0;
      });
      ta.addEventListener("keydown", function (e) {
        if ((e.key === "Tab" || (e.key === "Enter" && !e.ctrlKey && !e.metaKey)) && !menu.hidden) {
          var m = matches();
          if (m.length) { e.preventDefault(); take(m[0]); }
        }
      });
    }

    // Attachments: each chosen file is uploaded at once; the reply names them by id.
    var files = f.querySelector("#reply-files");
    if (files) files.addEventListener("change", function () {
      var ids = f.querySelector("#reply-attachments");
      var list = f.querySelector("#reply-files-list");
      Array.prototype.forEach.call(files.files, function (file) {
        var chip = document.createElement("span");
        chip.className = "lbl"; chip.textContent = file.name + " …";
        list.appendChild(chip);
        fetch("/ui/attachments?name=" + encodeURIComponent(file.name), {
          method: "POST", credentials: "same-origin", body: file,
          headers: { "x-csrf-token": body.dataset.csrf, "content-type": file.type || "application/octet-stream" }
        }).then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error); return j; }); })
          .then(function (j) {
            ids.value = ids.value ? ids.value + "," + j.id : j.id;
            chip.textContent = "📎 " + j.name;
          })
          .catch(function (e) { chip.textContent = file.name + ": " + e.message; chip.classList.add("err"); });
      });
      files.value = "";
    });
  }

  function resetReply(f) {
    keepDraft(conv, "");
    ["text", "idem", "attachments"].forEach(function (n) {
      var i = f.querySelector("[name=" + n + "]");
      if (i) i.value = "";
    });
    var list = f.querySelector("#reply-files-list");
    if (list) list.innerHTML = "";
  }

  // --- forms of the open conversation: sent by script, so the list stays where it is -------

  function showError(status, html) {
    var text = html;
    try {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var el = doc.querySelector("#error-message") || doc.querySelector("p") || doc.body;
      text = (el && el.textContent.trim()) || html;
    } catch (e) {}
    var box = document.getElementById("pane-error");
    var message = (status ? status + " · " : "") + text;
    if (box) { box.textContent = message; box.hidden = false; } else { toast({ title: String(status || ""), body: text }); }
  }

  function clearError() {
    var box = document.getElementById("pane-error");
    if (box) { box.hidden = true; box.textContent = ""; }
  }

  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (!(f instanceof HTMLFormElement) || (f.getAttribute("method") || "").toLowerCase() !== "post") return;
    var isReply = f.classList.contains("reply");
    if (isReply) {
      // A reply is sent once even if the button is pressed twice.
      if (f.dataset.busy) { e.preventDefault(); return; }
      var idem = f.querySelector("input[name=idem]");
      if (idem && !idem.value) idem.value = Date.now().toString(36) + Math.random().toString(36).slice(2);
    }
    var pane = document.getElementById("conv-pane");
    if (!pane || !pane.contains(f) || !window.fetch || !window.URLSearchParams) {
      if (isReply) {
        var b = f.querySelector("button[type=submit]");
        if (b) setTimeout(function () { b.disabled = true; }, 0);
      }
      return;
    }
    e.preventDefault();
    var data = new FormData(f);
    if (e.submitter && e.submitter.name) data.append(e.submitter.name, e.submitter.value);
    var buttons = f.querySelectorAll("button");
    f.dataset.busy = "1";
    buttons.forEach(function (b) { b.disabled = true; });
    var params = new URLSearchParams();
    data.forEach(function (v, k) { if (typeof v === "string") params.append(k, v); });
    // `getAttribute`: the actions form has buttons named `action`, which shadow `f.action`.
    fetch(f.getAttribute("action"), {
      method: "POST", credentials: "same-origin", body: params,
      headers: { "x-okno-fragment": "1", "content-type": "application/x-www-form-urlencoded" }
    }).then(function (r) {
      if (r.status === 401) { window.location.href = "/login"; return; }
      if (!r.ok) return r.text().then(function (html) { showError(r.status, html); });
      clearError();
      if (isReply) resetReply(f);
      return Promise.all([refreshThread(isReply), refreshPanel(), refreshList()]);
    }).catch(function (err) { showError(0, String(err)); })
      .then(function () {
        delete f.dataset.busy;
        buttons.forEach(function (b) { b.disabled = false; });
      });
  });

  // --- fragments ----------------------------------------------------------------------------

  function fragmentUrl(el, value) {
    var u = new URL(el.dataset.src, window.location.href);
    u.searchParams.set("fragment", value);
    // A tab out of sight shows new messages without counting them as read.
    if (document.hidden) u.searchParams.set("background", "1");
    return u.pathname + u.search;
  }

  // A fragment asked for after the session ended is answered 401: off to the login form.
  function loadFragment(url) {
    return fetch(url, { credentials: "same-origin", headers: { "x-okno-fragment": "1" } }).then(function (r) {
      if (r.status === 401) { window.location.href = "/login"; throw new Error("401"); }
      if (!r.ok) throw new Error(r.status);
      return r.text();
    });
  }

  // Fields the operator has changed and not sent (a label being typed, a time being chosen):
  // a refresh that brings the same field back keeps what was typed and where the cursor was.
  function edits(el) {
    var out = [];
    el.querySelectorAll("input[id]:not([type=hidden]), textarea[id], select[id]").forEach(function (i) {
      var changed = i.tagName === "SELECT"
        ? Array.prototype.some.call(i.options, function (o) { return o.selected !== o.defaultSelected; })
        : i.value !== i.defaultValue;
      if (changed || i === document.activeElement) {
        out.push({ id: i.id, value: i.value, was: i.tagName === "SELECT" ? null : i.defaultValue,
          focused: i === document.activeElement, start: i.selectionStart, end: i.selectionEnd });
      }
    });
    return out;
  }

  function restore(list) {
    list.forEach(function (k) {
      var i = document.getElementById(k.id);
      if (!i) return;
      if (k.was === null || i.defaultValue === k.was) i.value = k.value;
      if (k.focused) {
        i.focus();
        try { if (k.start !== null) i.setSelectionRange(k.start, k.end); } catch (e) {}
      }
    });
  }

  function refresh(id, value) {
    var el = document.getElementById(id);
    if (!el || !el.dataset.src) return Promise.resolve();
    return loadFragment(fragmentUrl(el, value))
      .then(function (html) {
        // The element may have been replaced meanwhile (another conversation opened).
        if (!document.body.contains(el)) return;
        var kept = edits(el);
        el.innerHTML = html;
        restore(kept);
      })
      .catch(function () {});
  }

  // The thread follows new messages only if the operator was reading its end; scrolled up
  // into the history, it stays where it was.
  function atEnd() {
    var t = document.getElementById("thread");
    return !t || t.scrollHeight - t.scrollTop - t.clientHeight < 40;
  }

  function refreshList() { return refresh("conv-list", "1").then(markCurrent); }
  function refreshThread(toEnd) {
    var t = document.getElementById("thread");
    var follow = toEnd === true || atEnd(), top = t ? t.scrollTop : 0;
    return refresh("thread-wrap", "thread").then(function () {
      if (follow) { scrollThread(); return; }
      var now = document.getElementById("thread");
      if (now) now.scrollTop = top;
    });
  }
  function refreshPanel() { return refresh("contact-panel", "panel"); }

  // Back to a tab left with a conversation open: what arrived meanwhile is read now.
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && conv && window.oknoLive) Promise.all([refreshThread(), refreshList()]);
  });

  function scrollThread() {
    var t = document.getElementById("thread");
    if (!t || !t.lastElementChild) return;
    if (t.scrollHeight > t.clientHeight) t.scrollTop = t.scrollHeight;
    else t.lastElementChild.scrollIntoView({ block: "end" });
  }

  // The open conversation's row is marked in the list (the list fragment does not know it).
  function markCurrent() {
    document.querySelectorAll("#conv-list li.conv").forEach(function (li) {
      var on = !!conv && li.dataset.id === conv;
      li.classList.toggle("current", on);
      var a = li.querySelector("a");
      if (a) { if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current"); }
    });
  }

  // --- moving between conversations: the pane changes, the list stays ----------------------

  // The list's filters, kept in a conversation's address.
  function keptFilters() {
    var list = document.getElementById("conv-list");
    if (!list || !list.dataset.src) return "";
    return new URL(list.dataset.src, window.location.href).search;
  }

  // The conversation being opened: `j` pressed twice quickly moves two rows, and only the
  // last one asked for is shown even if an earlier answer arrives after it.
  var opening = null, asked = 0;

  function openConversation(id, push) {
    var href = "/ui/conversations/" + encodeURIComponent(id) + keptFilters();
    if (!wide()) { window.location.href = href; return Promise.resolve(); }
    var pane = document.getElementById("conv-pane");
    window.oknoLive = false;
    opening = id;
    var mine = ++asked;
    var u = new URL(href, window.location.href);
    u.searchParams.set("fragment", "pane");
    if (document.hidden) u.searchParams.set("background", "1");
    return loadFragment(u.pathname + u.search)
      .then(function (html) {
        if (mine !== asked) return;
        opening = null;
        pane.innerHTML = html;
        conv = id;
        body.dataset.conv = id;
        document.getElementById("window").classList.add("has-conv");
        document.getElementById("window").classList.remove("panel-open");
        initReply(pane);
        scrollThread();
        markCurrent();
        var wrap = document.getElementById("thread-wrap");
        if (wrap && wrap.dataset.title) document.title = wrap.dataset.title + " · okno";
        if (push) history.pushState({ conv: id }, "", href);
        reconnect();
      })
      .catch(function (e) { if (mine === asked && String(e.message) !== "401") window.location.href = href; });
  }

  function conversationLink(a) {
    if (!a || !windowPage()) return null;
    var inside = a.closest("#conv-list, #contact-panel, #toasts");
    var m = (a.getAttribute("href") || "").match(/^\/ui\/conversations\/([^/?#]+)(\?[^#]*)?$/);
    return inside && m ? decodeURIComponent(m[1]) : null;
  }

  document.addEventListener("click", function (e) {
    if (e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    var a = e.target.closest ? e.target.closest("a") : null;
    var id = conversationLink(a);
    if (id && wide()) {
      e.preventDefault();
      if (a.classList.contains("toast")) a.remove();
      openConversation(id, true);
      return;
    }
    var toggle = e.target.closest ? e.target.closest("#panel-toggle") : null;
    if (toggle) document.getElementById("window").classList.toggle("panel-open");
  });

  if (windowPage() && window.history && history.replaceState) {
    history.replaceState({ conv: conv }, "", window.location.href);
    window.addEventListener("popstate", function () {
      var m = window.location.pathname.match(/^\/ui\/conversations\/([^/]+)$/);
      if (m && wide()) openConversation(decodeURIComponent(m[1]), false);
      else window.location.reload();
    });
  }

  // --- keyboard shortcuts (never while typing in a field) -----------------------------------

  function typing(el) {
    return !!el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  function help(show) {
    var box = document.getElementById("shortcuts");
    if (!box) return;
    box.hidden = show === undefined ? !box.hidden : !show;
    if (!box.hidden) { var c = document.getElementById("shortcuts-close"); if (c) c.focus(); }
  }

  function move(step) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("#conv-list li.conv"));
    if (!rows.length) return;
    var at = -1, from = opening || conv;
    rows.forEach(function (r, i) { if (r.dataset.id === from) at = i; });
    var next = at < 0 ? (step > 0 ? 0 : rows.length - 1) : at + step;
    if (next < 0 || next >= rows.length) return;
    rows[next].scrollIntoView({ block: "nearest" });
    openConversation(rows[next].dataset.id, true);
  }

  function byPlace(e) {
    var m = /^Key([A-Z])$/.exec(e.code || "");
    if (m) return e.shiftKey ? "" : m[1].toLowerCase();
    if (e.code === "Slash") return e.shiftKey ? "?" : "/";
    return "";
  }

  function press(id) {
    var b = document.getElementById(id);
    if (b && !b.disabled) b.click();
  }

  document.addEventListener("keydown", function (e) {
    var box = document.getElementById("shortcuts");
    var open = box && !box.hidden;
    if (e.key === "Escape") {
      if (open) { help(false); e.preventDefault(); }
      else if (typing(e.target)) e.target.blur();
      return;
    }
    if (!windowPage() || typing(e.target) || e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    if (open && e.key !== "?") return;
    var acts = {
      "j": function () { move(1); },
      "k": function () { move(-1); },
      "r": function () { var t = document.getElementById("reply-text"); if (t) t.focus(); },
      "e": function () { press("act-resolve"); },
      "a": function () { press("act-assign"); },
      "/": function () { var q = document.querySelector("#filters input[name=q]"); if (q) { q.focus(); q.select(); } },
      "?": function () { help(); }
    };
    // By the key's place too, so that the shortcuts work on a Russian layout (j is «о»).
    var act = acts[e.key] || acts[byPlace(e)];
    if (!act) return;
    e.preventDefault();
    act();
  });

  var helpOpen = document.getElementById("shortcuts-open");
  if (helpOpen) helpOpen.addEventListener("click", function () { help(true); });
  var helpClose = document.getElementById("shortcuts-close");
  if (helpClose) helpClose.addEventListener("click", function () { help(false); });
  var helpBox = document.getElementById("shortcuts");
  if (helpBox) helpBox.addEventListener("click", function (e) { if (e.target === helpBox) help(false); });

  // --- notifications ------------------------------------------------------------------------

  // Sound: a short two-tone beep made on the spot (no audio file to ship).
  function beep() {
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      var ctx = new Ctx();
      [660, 880].forEach(function (f, i) {
        var o = ctx.createOscillator(), g = ctx.createGain();
        o.frequency.value = f; g.gain.value = 0.08;
        o.connect(g); g.connect(ctx.destination);
        o.start(ctx.currentTime + i * 0.12); o.stop(ctx.currentTime + i * 0.12 + 0.1);
      });
    } catch (e) {}
  }

  function toast(n) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var a = document.createElement("a");
    a.className = "toast"; a.href = n.url || "#";
    var b = document.createElement("b"); b.textContent = n.title;
    var p = document.createElement("span"); p.textContent = n.body;
    a.appendChild(b); a.appendChild(p);
    box.appendChild(a);
    setTimeout(function () { a.remove(); }, 8000);
  }

  var btn = document.getElementById("notify-enable");
  if (btn && "Notification" in window && Notification.permission === "default") {
    btn.hidden = false;
    btn.addEventListener("click", function () {
      Notification.requestPermission().then(function () { btn.hidden = true; });
    });
  }

  function notify(n) {
    window.oknoNotified = (window.oknoNotified || 0) + 1;
    toast(n);
    beep();
    if ("Notification" in window && Notification.permission === "granted" && (document.hidden || n.conv !== conv)) {
      try {
        var note = new Notification(n.title || body.dataset.newMessage, { body: n.body, tag: n.conv });
        note.onclick = function () { window.focus(); window.location.href = n.url; };
      } catch (e) {}
    }
  }

  initReply(document);
  scrollThread();

  // --- live updates -------------------------------------------------------------------------

  if (!window.EventSource) return;
  var es = null;
  function connect() {
    es = new EventSource("/ui/live" + (conv ? "?conv=" + encodeURIComponent(conv) : ""));
    // On (re)connecting, what the page shows may already be behind the stream's first
    // reading: fetch the fragments once, then follow the events.
    es.addEventListener("ready", function () {
      live.className = "live on";
      Promise.all([refreshList(), refreshThread(), refreshPanel()]).then(function () { window.oknoLive = true; });
    });
    es.onerror = function () { live.className = "live off"; };
    es.addEventListener("inbox", function () { refreshList(); });
    es.addEventListener("conversation", function () { refreshThread(); refreshPanel(); });
    es.addEventListener("notify", function (e) {
      try { notify(JSON.parse(e.data)); } catch (err) {}
    });
  }
  function reconnect() {
    if (es) es.close();
    es = null;
    connect();
  }
  connect();
  // A page left for another must let go of its stream: browsers allow six connections per
  // server, and a page kept in the back-forward cache would hold its stream open.
  window.addEventListener("pagehide", function () { if (es) { es.close(); es = null; } window.oknoLive = false; });
  window.addEventListener("pageshow", function (e) { if (e.persisted && !es) connect(); });
})();

// Contacts and broadcasts: the merge search follows what is typed; time pickers are read in
// the browser's time zone (sent along and named on the page); times are shown in it.
(function () {
  "use strict";
  var form = document.getElementById("merge-search"), input = document.getElementById("merge-q");
  if (form && input) {
    var timer = null, asked = 0;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var mine = ++asked;
        fetch(form.dataset.url + "?merge_q=" + encodeURIComponent(input.value), { credentials: "same-origin" })
          .then(function (r) { return r.ok && !r.redirected ? r.text() : Promise.reject(r.status); })
          .then(function (html) {
            var list = document.getElementById("merge-results");
            if (mine === asked && list) list.outerHTML = html; // an older answer arriving late is dropped
          })
          .catch(function () {});
      }, 200);
    });
  }
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
  if (zone) {
    document.querySelectorAll("input[data-browser-tz]").forEach(function (i) { i.value = zone; });
    document.querySelectorAll("[data-tz-name]").forEach(function (e) { e.textContent = zone; });
  }
  var now = new Date(Date.now() - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  document.querySelectorAll("input[type=datetime-local]").forEach(function (i) { i.min = now; });
  var lang = document.documentElement.lang || undefined;
  document.querySelectorAll("time[data-local]").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d.getTime())) {
      t.textContent = d.toLocaleString(lang, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
    }
  });
  document.querySelectorAll("input.copy").forEach(function (i) { i.addEventListener("focus", function () { i.select(); }); });
})();
