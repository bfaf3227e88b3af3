//! Templates from people who should not be trusted with the server: previews only for roles
//! that edit rules, every render bounded in output, memory and time and run apart from the
//! server, and buttons rendered from data never carrying a script link to a person or a site.

use std::time::{Duration, Instant};

use okno_domain::model::Role;
use okno_testkit::{eventually, Sink, TestApp};
use serde_json::{json, Value};

use crate::SECRET;

/// A template that doubles a string thirty times: a gigabyte from a few dozen bytes.
const BOMB: &str =
    "{% set ns = namespace(x='a') %}{% for i in range(30) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}";

/// A template small in memory that would take minutes: counts the characters of 50 MB ten
/// thousand times.
const SLOW: &str = "{% set s = 'a' * 50000000 %}{% for i in range(10000) %}{{ s|length }}{% endfor %}";

/// The most memory this process (the test and the okno inside it) ever held, in kB.
fn peak_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// How many render workers okno killed for `reason`.
async fn killed(app: &TestApp, reason: &str) -> u64 {
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    let key = format!("okno_render_workers_killed_total{{reason=\"{reason}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&key)).map_or(0, |n| n.trim().parse().unwrap())
}

fn preview_of(template: &str) -> Value {
    json!({"rule": {"name": "p", "event": "e", "recipients": [{"group": "g"}], "template": template}, "data": {}})
}

/// okno whose renders have all the time they want: what ends a doubling template is then its
/// worker's memory, however busy the machine running the tests.
async fn patient() -> TestApp {
    TestApp::spawn_on(okno_testkit::TestDb::sqlite(), |s| s.templates.timeout_ms = 60_000).await
}

/// okno with a webhook channel to a sink, and one person on it; returns the person's contact id.
async fn site() -> (TestApp, Sink, String, String) {
    let app = patient().await;
    let sink = Sink::start(SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", sink.url), SECRET).await;
    let hello = json!({"message_id": "in-1", "user": {"id": "site-1", "name": "Посетитель"}, "text": "Здравствуйте"});
    let r = app.inbound(&ch, SECRET, &hello).await;
    assert_eq!(r.status, 200, "{r:?}");
    let m = app.get(&format!("/api/v1/messages/{}", r.body["id"].as_str().unwrap())).await.body;
    let contact = m["contact_id"].as_str().unwrap().to_string();
    (app, sink, ch, contact)
}

/// Posts an event and waits until its notifications settle; returns the event.
async fn settled_event(app: &TestApp, event: Value) -> Value {
    let r = app.post("/api/v1/events", event).await;
    assert_eq!(r.status, 202, "{r:?}");
    super::events::settled(app, r.body["id"].as_str().unwrap()).await
}

async fn broadcast_done(app: &TestApp, body: Value) -> (String, Value) {
    let r = app.post("/api/v1/broadcasts", body).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let done = eventually(20, || async {
        let b = app.get(&format!("/api/v1/broadcasts/{id}")).await.body;
        (b["status"] == "done").then_some(b)
    })
    .await
    .expect("the broadcast ends");
    (id, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_roles_that_edit_rules_preview_them() {
    let app = TestApp::spawn().await;
    let body = json!({"rule": {"name": "p", "event": "e", "recipients": [{"group": "g"}], "template": "Сумма {{ data.n }}"},
                      "data": {"n": 5}});
    for role in [Role::Operator, Role::Restricted, Role::Integration] {
        let token = app.token_for(role).await;
        let r = app.call("POST", "/api/v1/rules/preview", Some(body.clone()), Some(&token)).await;
        assert_eq!(r.status, 403, "{role}: {r:?}");
    }
    let r = app.post("/api/v1/rules/preview", body).await;
    assert_eq!((r.status, r.body["text"].as_str()), (200, Some("Сумма 5")), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_link_from_a_rule_never_reaches_the_site() {
    let (app, sink, _, contact) = site().await;
    let rule = json!({"name": "Ссылка", "event": "link.ready", "recipients": [{"contact_id": "{{ data.who }}"}],
                      "template": "Ваша ссылка", "buttons": [[{"text": "Открыть", "url": "{{ data.link }}"}]]});
    let r = app.post("/api/v1/rules", rule).await;
    assert_eq!(r.status, 201, "{r:?}");
    // A proper link goes out, so the path is open…
    let ok = settled_event(
        &app,
        json!({"type": "link.ready", "key": "ok-1", "data": {"who": contact, "link": "https://shop.example/o/1"}}),
    )
    .await;
    assert_eq!(ok["deliveries"][0]["status"], "sent", "{ok}");
    let got = sink.wait_accepted(1, 10).await;
    assert_eq!(got[0].body["buttons"][0][0]["url"], "https://shop.example/o/1", "{:?}", got[0].body);
    // …and a script link from the data fails that notification with the reason.
    for (key, link) in [
        ("js-1", "javascript:alert(document.cookie)"),
        ("js-2", "JavaScript:fetch('//x')"),
        ("data-1", "data:text/html,<script>1</script>"),
    ] {
        let ev = settled_event(&app, json!({"type": "link.ready", "key": key, "data": {"who": contact, "link": link}}))
            .await;
        assert_eq!(ev["deliveries"][0]["status"], "failed", "{ev}");
        assert!(ev["deliveries"][0]["error"].as_str().unwrap().contains("http://, https:// or tg://"), "{ev}");
    }
    // A literal script link is refused when the rule is written.
    let bad = app
        .post(
            "/api/v1/rules",
            json!({"name": "x", "event": "e", "recipients": [{"group": "g"}], "template": "t",
                                      "buttons": [[{"text": "b", "url": "javascript:alert(1)"}]]}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_button_url"), "{bad:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 1, "only the proper link reached the site: {:?}", sink.received());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_link_in_a_broadcast_never_reaches_the_site() {
    let (app, sink, _, contact) = site().await;
    let r = app.patch(&format!("/api/v1/contacts/{contact}"), json!({"attrs": {"link": "javascript:alert(1)"}})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let (id, done) = broadcast_done(
        &app,
        json!({"name": "Акция", "audience": {"contact_ids": [contact]}, "text": "Акция",
               "buttons": [[{"text": "Открыть", "url": "{{ contact.attrs.link }}"}]]}),
    )
    .await;
    assert_eq!((&done["sent"], &done["failed"]), (&json!(0), &json!(1)), "{done}");
    let report = app.get(&format!("/api/v1/broadcasts/{id}/report")).await.body;
    assert!(report.to_string().contains("http://, https:// or tg://"), "{report}");
    let literal = app
        .post(
            "/api/v1/broadcasts",
            json!({"name": "x", "audience": {"contact_ids": [contact]}, "text": "t",
                                           "buttons": [[{"text": "b", "url": "javascript:alert(1)"}]]}),
        )
        .await;
    assert_eq!((literal.status, literal.code()), (400, "invalid_button_url"), "{literal:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.received().is_empty(), "nothing reached the site: {:?}", sink.received());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubling_template_fails_quickly_and_the_server_stays_small() {
    let app = patient().await;
    let before = peak_kb();
    let started = Instant::now();
    let preview = app.post("/api/v1/rules/preview", preview_of(BOMB));
    let meanwhile = async {
        // The server answers while the render runs.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        let r = app.get("/api/v1/rules").await;
        (r.status, t.elapsed())
    };
    let (r, (status, answered_in)) = tokio::join!(preview, meanwhile);
    assert_eq!((r.status, r.code()), (422, "template_too_large"), "{r:?}");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("MB of memory"), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "refused in {:?}", started.elapsed());
    assert_eq!(status, 200);
    assert!(answered_in < Duration::from_secs(5), "the server answered in {answered_in:?} during the render");
    let grown_mb = peak_kb().saturating_sub(before) / 1024;
    assert!(grown_mb < 256, "the server's memory grew by {grown_mb} MB");
    assert_eq!(killed(&app, "memory").await, 1);
    // The next render gets a fresh worker.
    let ok = app.post("/api/v1/rules/preview", preview_of("{{ 'ab' * 3 }}")).await;
    assert_eq!((ok.status, ok.body["text"].as_str()), (200, Some("ababab")), "{ok:?}");
    // An output longer than allowed is refused without a worker dying.
    let long = app.post("/api/v1/rules/preview", preview_of("{{ 'ab' * 40000 }}")).await;
    assert_eq!((long.status, long.code()), (422, "template_too_large"), "{long:?}");
    assert!(long.body["error"]["message"].as_str().unwrap().contains("65536 bytes"), "{long:?}");
    assert_eq!(killed(&app, "memory").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_template_is_stopped_at_its_time_and_when_its_caller_leaves() {
    let app = TestApp::spawn_on(okno_testkit::TestDb::sqlite(), |s| s.templates.timeout_ms = 1_000).await;
    let started = Instant::now();
    let r = app.post("/api/v1/rules/preview", preview_of(SLOW)).await;
    assert_eq!((r.status, r.code()), (422, "template_too_slow"), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "refused in {:?}", started.elapsed());
    assert_eq!(killed(&app, "timeout").await, 1);
    // A client that hangs up ends its render at once, long before the time allowed.
    let app = TestApp::spawn_on(okno_testkit::TestDb::sqlite(), |s| s.templates.timeout_ms = 60_000).await;
    let gone = app
        .http
        .post(format!("{}/api/v1/rules/preview", app.url))
        .bearer_auth(&app.token)
        .json(&preview_of(SLOW))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    eventually(5, || async { (killed(&app, "cancelled").await == 1).then_some(()) })
        .await
        .expect("the render of a request that ended is killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_or_broadcast_of_a_doubling_template_fails_clearly_and_okno_goes_on() {
    let (app, sink, _, contact) = site().await;
    let rule =
        json!({"name": "Бомба", "event": "bomb", "recipients": [{"contact_id": "{{ data.who }}"}], "template": BOMB});
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    let ev = settled_event(&app, json!({"type": "bomb", "key": "b-1", "data": {"who": contact}})).await;
    assert_eq!(ev["deliveries"][0]["status"], "failed", "{ev}");
    assert!(ev["deliveries"][0]["error"].as_str().unwrap().contains("MB of memory"), "{ev}");
    let (id, done) =
        broadcast_done(&app, json!({"name": "Бомба", "audience": {"contact_ids": [contact]}, "text": BOMB})).await;
    assert_eq!((&done["sent"], &done["failed"]), (&json!(0), &json!(1)), "{done}");
    let report = app.get(&format!("/api/v1/broadcasts/{id}/report")).await.body;
    assert!(report.to_string().contains("MB of memory"), "{report}");
    // okno goes on: an ordinary notification still goes out.
    let fine = json!({"name": "Обычное", "event": "fine", "recipients": [{"contact_id": "{{ data.who }}"}], "template": "Готово, {{ contact.name }}"});
    assert_eq!(app.post("/api/v1/rules", fine).await.status, 201);
    let ev = settled_event(&app, json!({"type": "fine", "key": "f-1", "data": {"who": contact}})).await;
    assert_eq!(ev["deliveries"][0]["status"], "sent", "{ev}");
    assert_eq!(sink.wait_accepted(1, 10).await[0].body["text"], "Готово, Посетитель");
    assert_eq!(killed(&app, "memory").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_program_that_is_not_okno_is_named_not_taken_for_a_large_template() {
    let app =
        TestApp::spawn_on(okno_testkit::TestDb::sqlite(), |s| s.templates.worker_program = Some("/bin/true".into()))
            .await;
    let r = app.post("/api/v1/rules/preview", preview_of("{{ 1 + 1 }}")).await;
    // A fault of the installation (the server log names the program), not the template's.
    assert_eq!((r.status, r.code()), (500, "internal"), "{r:?}");
    assert_eq!((killed(&app, "memory").await, killed(&app, "failed").await), (0, 1));
}
