// okno demo: the 1C console — post the sample events and the task as 1C would, start a survey
// or a broadcast, watch okno's deliveries and what the simulated 1C received. Drawn with
// textContent only.
(function () {
  "use strict";
  var T = JSON.parse(document.getElementById("demo-texts").textContent || "{}");
  var $ = function (id) { return document.getElementById(id); };
  var filled = false;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function toast(text, err) {
    var t = el("div", "toast" + (err ? " err" : ""), text);
    $("toasts").appendChild(t);
    setTimeout(function () { t.remove(); }, err ? 7000 : 3500);
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "X-Okno-Demo": "1", "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    }).then(function (r) {
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

  function clock(ms) {
    var d = new Date(ms);
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2) + ":" + ("0" + d.getSeconds()).slice(-2);
  }

  function status(text, kind) { return el("span", "st " + (kind || ""), text); }

  function kindOf(s) {
    if (s === "sent" || s === "delivered" || s === "read" || s === "processed" || s === "claimed" || s === 202 || s === 201 || s === 200) return "ok";
    if (s === "failed" || (typeof s === "number" && s >= 400)) return "err";
    return "warn";
  }

  function pretty(v) { return JSON.stringify(v, null, 2); }

  // ---- the samples (drawn once) ---------------------------------------------------------------

  function drawSamples(s) {
    var box = $("events");
    box.textContent = "";
    s.events.forEach(function (e) {
      var card = el("div", "event");
      card.dataset.file = e.file;
      var head = el("div");
      head.appendChild(el("span", "type", e.type));
      head.appendChild(document.createTextNode("  "));
      head.appendChild(el("small", "muted", e.file));
      card.appendChild(head);
      var to = e.recipients.map(function (r) { return r === "subscriber" ? T.demo_subscriber : r; });
      card.appendChild(el("div", "to", T.demo_recipients + ": " + (to.join(", ") || "—")));
      var d = el("details");
      d.appendChild(el("summary", null, "key " + e.key));
      d.appendChild(el("pre", null, pretty(e.data)));
      card.appendChild(d);
      var actions = el("div", "actions");
      var b1 = el("button", "primary", T.demo_post);
      b1.type = "button";
      b1.dataset.action = "post";
      b1.addEventListener("click", function () { postEvent(e.file, false, b1); });
      var b2 = el("button", null, T.demo_post_again);
      b2.type = "button";
      b2.dataset.action = "again";
      b2.addEventListener("click", function () { postEvent(e.file, true, b2); });
      actions.appendChild(b1);
      actions.appendChild(b2);
      card.appendChild(actions);
      box.appendChild(card);
    });
    $("task-sample").textContent = "«" + s.task.title + "» → " + s.task.group + ". " + s.task.text;
    var sid = $("survey-id"), sp = $("survey-person"), bg = $("broadcast-group");
    s.surveys.forEach(function (x) { var o = el("option", null, x.name); o.value = x.id; sid.appendChild(o); });
    s.people.forEach(function (p) { var o = el("option", null, p.name + " — " + p.role); o.value = p.key; sp.appendChild(o); });
    if (s.people.some(function (p) { return p.key === "ivanova"; })) sp.value = "ivanova";
    s.groups.forEach(function (g) { var o = el("option", null, g); o.value = g; bg.appendChild(o); });
    if (s.groups.indexOf("Сотрудники") >= 0) bg.value = "Сотрудники";
  }

  function postEvent(file, newKey, button) {
    button.disabled = true;
    post("/demo/api/console/event", { file: file, new_key: newKey }).then(function (r) {
      toast(r.answer && r.answer.duplicate ? T.demo_duplicate : T.demo_accepted);
      load();
    }).catch(function () {}).then(function () { button.disabled = false; });
  }

  $("post-task").addEventListener("click", function () {
    var b = $("post-task");
    b.disabled = true;
    post("/demo/api/console/task").then(function () { toast(T.demo_accepted); load(); })
      .catch(function () {}).then(function () { b.disabled = false; });
  });

  $("survey-form").addEventListener("submit", function (e) {
    e.preventDefault();
    post("/demo/api/console/survey", { survey_id: $("survey-id").value, person: $("survey-person").value })
      .then(function () { toast(T.demo_started_survey); load(); }).catch(function () {});
  });

  $("broadcast-form").addEventListener("submit", function (e) {
    e.preventDefault();
    post("/demo/api/console/broadcast", { group: $("broadcast-group").value, text: $("broadcast-text").value })
      .then(function () { toast(T.demo_broadcast_created); load(); }).catch(function () {});
  });

  // ---- what happened (redrawn on every change) -------------------------------------------------

  function drawPosted(list) {
    var box = $("posted");
    box.textContent = "";
    if (!list.length) { box.appendChild(el("p", "muted", T.demo_nothing_yet)); return; }
    list.forEach(function (p) {
      var row = el("div", "log");
      row.dataset.what = p.what;
      var head = el("div", "head");
      head.appendChild(el("small", "muted", clock(p.at)));
      head.appendChild(el("b", null, p.what));
      head.appendChild(status(p.answer && p.answer.duplicate ? T.demo_duplicate : String(p.status), p.answer && p.answer.duplicate ? "warn" : kindOf(p.status)));
      row.appendChild(head);
      var ul = el("ul");
      if (p.event) {
        (p.event.deliveries || []).forEach(function (d) {
          var li = el("li", null, T.demo_delivered_to + " " + d.name + " ");
          li.appendChild(status(d.status, kindOf(d.status)));
          if (d.error) li.appendChild(el("small", "muted", " " + d.error));
          ul.appendChild(li);
        });
        (p.event.unresolved || []).forEach(function (u) {
          ul.appendChild(el("li", null, T.demo_unresolved + ": " + (u.reason || JSON.stringify(u))));
        });
        if (!(p.event.deliveries || []).length && !(p.event.unresolved || []).length) {
          ul.appendChild(el("li", "muted", T.demo_status + ": " + p.event.status));
        }
      }
      if (p.task) {
        var li = el("li", null, "«" + p.task.title + "» ");
        if (p.task.claimed_by) {
          li.appendChild(status(T.demo_task_claimed_by + " " + p.task.claimed_by.name, "ok"));
        } else {
          li.appendChild(status(T.demo_task_open, "warn"));
        }
        ul.appendChild(li);
      }
      if (!p.event && !p.task && p.status >= 400 && p.answer && p.answer.error) {
        ul.appendChild(el("li", null, p.answer.error.message));
      }
      if (p.what === "survey" && p.answer && p.answer.items) {
        p.answer.items.forEach(function (i) { ul.appendChild(el("li", null, i.outcome + (i.reason ? ": " + i.reason : ""))); });
      }
      if (ul.childNodes.length) row.appendChild(ul);
      box.appendChild(row);
    });
  }

  // «Пётр Петров pressed «✅ Согласую отгрузку» — an answer to a notification: approve»
  function pressed(p) {
    var text = (p.who ? p.who + " " : "") + T.demo_pressed + " «" + p.label + "» — " + (T["demo_press_" + p.kind] || T.demo_press_button);
    if (p.answer !== undefined && p.answer !== null) text += ": " + p.answer;
    return text;
  }

  function drawWebhooks(list) {
    var box = $("webhooks");
    box.textContent = "";
    if (!list.length) { box.appendChild(el("p", "muted", T.demo_received_nothing)); return; }
    list.forEach(function (w) {
      var row = el("div", "log");
      row.dataset.event = w.event;
      var head = el("div", "head");
      head.appendChild(el("small", "muted", clock(w.at)));
      head.appendChild(el("b", null, w.event));
      var d = w.data || {};
      var summary = w.event === "task.claimed" && d.executor ? T.demo_task_claimed_by + " " + d.executor.name
        : w.event === "survey.answered" ? (d.contact ? d.contact.name + ": " : "") + (d.question ? d.question.id : "") + " → " + (d.answer !== undefined ? d.answer : "")
        : w.press ? pressed(w.press)
        : d.text || "";
      if (summary) head.appendChild(el("span", null, summary));
      row.appendChild(head);
      var det = el("details");
      det.appendChild(el("summary", null, "JSON"));
      det.appendChild(el("pre", null, pretty(d)));
      row.appendChild(det);
      box.appendChild(row);
    });
  }

  function drawReceived(list) {
    var box = $("received");
    box.textContent = "";
    if (!list.length) { box.appendChild(el("p", "muted", T.demo_received_nothing)); return; }
    list.forEach(function (r) {
      var row = el("div", "log");
      row.dataset.path = r.path;
      var head = el("div", "head");
      head.appendChild(el("small", "muted", clock(r.at)));
      var q = Object.keys(r.query || {}).map(function (k) { return k + "=" + r.query[k]; }).join("&");
      head.appendChild(el("b", null, r.method + " " + r.path + (q ? "?" + q : "")));
      head.appendChild(status(r.status ? String(r.status) : "…", kindOf(r.status)));
      row.appendChild(head);
      if (r.body !== null && r.body !== undefined) row.appendChild(el("pre", null, pretty(r.body)));
      box.appendChild(row);
    });
  }

  function load() {
    return fetch("/demo/api/console").then(function (r) { return r.json(); }).then(function (s) {
      if (!filled && s.events) { drawSamples(s); filled = true; }
      drawPosted(s.posted || []);
      drawWebhooks(s.webhooks || []);
      drawReceived(s.received || []);
      document.body.dataset.loaded = String((s.posted || []).length) + "/" + (s.webhooks || []).length + "/" + (s.received || []).length;
    }).catch(function () {});
  }

  var pending = null;
  function refresh() {
    if (pending) return;
    pending = setTimeout(function () { pending = null; load(); }, 150);
  }

  load().then(function () {
    var es = new EventSource("/demo/api/live");
    es.addEventListener("ready", function () { $("live").className = "live on"; window.oknoDemoLive = true; refresh(); });
    es.addEventListener("change", refresh);
    es.onerror = function () { $("live").className = "live off"; window.oknoDemoLive = false; };
  });
})();
