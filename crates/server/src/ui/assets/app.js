// okno operator UI: live updates over Server-Sent Events, pop-up + sound on new messages.
// No framework: the server renders every fragment; this file only fetches and swaps them.
(function () {
  "use strict";
  var body = document.body;
  var conv = body.dataset.conv || "";
  var live = document.getElementById("live");

  // A reply is sent once even if the button is pressed twice.
  document.querySelectorAll("form.reply").forEach(function (f) {
    f.addEventListener("submit", function () {
      var idem = f.querySelector("input[name=idem]");
      if (idem && !idem.value) idem.value = Date.now().toString(36) + Math.random().toString(36).slice(2);
      var b = f.querySelector("button[type=submit]");
      if (b) setTimeout(function () { b.disabled = true; }, 0);
    });
    var ta = f.querySelector("textarea");
    if (ta) ta.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) f.requestSubmit();
    });
  });

  // Canned responses: "/" at the start of the reply box lists them; Tab or Enter takes the first.
  var cannedData = document.getElementById("canned-data");
  var canned = cannedData ? JSON.parse(cannedData.textContent || "[]") : [];
  var ta = document.getElementById("reply-text"), menu = document.getElementById("canned-menu");
  function matches() {
    var v = ta.value;
    if (v.charAt(0) !== "/" || /\s/.test(v)) return [];
    var key = v.slice(1).toLowerCase();
    return canned.filter(function (c) { return c.shortcut.toLowerCase().indexOf(key) === 0; });
  }
  function take(c) { ta.value = c.text; menu.hidden = true; ta.focus(); }
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
  var files = document.getElementById("reply-files");
  if (files) files.addEventListener("change", function () {
    var ids = document.getElementById("reply-attachments");
    var list = document.getElementById("reply-files-list");
    Array.prototype.forEach.call(files.files, function (f) {
      var chip = document.createElement("span");
      chip.className = "lbl"; chip.textContent = f.name + " …";
      list.appendChild(chip);
      fetch("/ui/attachments?name=" + encodeURIComponent(f.name), {
        method: "POST", credentials: "same-origin", body: f,
        headers: { "x-csrf-token": body.dataset.csrf, "content-type": f.type || "application/octet-stream" }
      }).then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error); return j; }); })
        .then(function (j) {
          ids.value = ids.value ? ids.value + "," + j.id : j.id;
          chip.textContent = "📎 " + j.name;
        })
        .catch(function (e) { chip.textContent = f.name + ": " + e.message; chip.classList.add("err"); });
    });
    files.value = "";
  });

  function refresh(id, url) {
    var el = document.getElementById(id);
    if (!el) return Promise.resolve();
    return fetch(url, { credentials: "same-origin", headers: { "x-okno-fragment": "1" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var keep = document.activeElement && el.contains(document.activeElement) ? document.activeElement.id : null;
        el.innerHTML = html;
        if (keep && document.getElementById(keep)) document.getElementById(keep).focus();
        scrollThread();
      })
      .catch(function () {});
  }

  function withFragment(v) {
    var u = new URL(window.location.href);
    u.searchParams.set("fragment", v);
    return u.pathname + u.search;
  }

  function scrollThread() {
    var t = document.getElementById("thread");
    if (t) t.lastElementChild && t.lastElementChild.scrollIntoView({ block: "end" });
  }
  scrollThread();

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
    a.className = "toast"; a.href = n.url;
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

  if (!window.EventSource) return;
  var es = null;
  function connect() {
    es = new EventSource("/ui/events" + (conv ? "?conv=" + encodeURIComponent(conv) : ""));
    // On (re)connecting, what the page shows may already be behind the stream's first
    // reading: fetch the fragments once, then follow the events.
    es.addEventListener("ready", function () {
      live.className = "live on";
      var jobs = [];
      if (document.getElementById("conv-list")) jobs.push(refresh("conv-list", withFragment("1")));
      if (document.getElementById("thread-wrap")) jobs.push(refresh("thread-wrap", withFragment("thread")));
      Promise.all(jobs).then(function () { window.oknoLive = true; });
    });
    es.onerror = function () { live.className = "live off"; };
    es.addEventListener("inbox", function () {
      if (document.getElementById("conv-list")) refresh("conv-list", withFragment("1"));
    });
    es.addEventListener("conversation", function () {
      if (document.getElementById("thread-wrap")) refresh("thread-wrap", withFragment("thread"));
    });
    es.addEventListener("notify", function (e) {
      try { notify(JSON.parse(e.data)); } catch (err) {}
    });
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
