//! Templates from people who should not be trusted with the server: previews only for roles
//! that edit rules, every render bounded in output, memory and time and run apart from the
//! server, and buttons rendered from data never carrying a script link to a person or a site.

use std::time::Duration;

use okno_domain::model::Role;
use okno_testkit::{eventually, Sink, TestApp};
use serde_json::{json, Value};

use crate::SECRET;

/// okno with a webhook channel to a sink, and one person on it; returns the person's contact id.
async fn site() -> (TestApp, Sink, String, String) {
    let app = TestApp::spawn().await;
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
    let id = r.body["id"].as_str().unwrap().to_string();
    eventually(20, || async {
        let e = app.get(&format!("/api/v1/events/{id}")).await;
        let done = e.body["status"] != "accepted"
            && e.body["deliveries"].as_array().is_some_and(|d| d.iter().all(|d| d["status"] != "queued"));
        done.then_some(e.body)
    })
    .await
    .expect("the event settles")
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
