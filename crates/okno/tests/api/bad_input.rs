//! Bad input gets a clear error with a stable code, never a panic and never half a write.

use okno_testkit::TestApp;
use serde_json::json;

use super::*;

#[tokio::test]
async fn malformed_json_and_wrong_types_are_400_with_the_position() {
    let app = TestApp::spawn().await;
    let resp = app
        .http
        .post(format!("{}/api/v1/contacts", app.url))
        .bearer_auth(&app.token)
        .body("{\"name\": \"Ivan\",")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    assert!(body["error"]["message"].as_str().unwrap().contains("line 1"), "{body}");

    let wrong = app.post("/api/v1/contacts", json!({"name": 42})).await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.code(), "invalid_body");
    let unknown_field = app.post("/api/v1/contacts", json!({"nmae": "typo"})).await;
    assert_eq!(unknown_field.code(), "invalid_body");
    assert!(unknown_field.body["error"]["message"].as_str().unwrap().contains("nmae"));
    let phone = app.post("/api/v1/contacts", json!({"phone": "call me"})).await;
    assert_eq!(phone.code(), "invalid_phone");
    let status = app.get("/api/v1/conversations?status=sleeping").await;
    assert_eq!(status.code(), "invalid_conversationstatus");
    let limit = app.get("/api/v1/conversations?limit=many").await;
    assert_eq!(limit.code(), "invalid_query");
}

#[tokio::test]
async fn unknown_ids_are_404_with_codes() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/api/v1/contacts/nope").await.code(), "contact_not_found");
    assert_eq!(app.get("/api/v1/conversations/nope").await.code(), "conversation_not_found");
    assert_eq!(app.get("/api/v1/messages/nope").await.code(), "message_not_found");
    assert_eq!(app.get("/api/v1/channels/nope").await.code(), "channel_not_found");
    assert_eq!(app.get("/api/v1/webhooks/nope").await.code(), "webhook_not_found");
    assert_eq!(
        app.post("/api/v1/conversations/nope/messages", json!({"text": "x"})).await.code(),
        "conversation_not_found"
    );
    assert_eq!(
        app.post("/api/v1/messages", json!({"external_id": "ghost", "text": "x"})).await.code(),
        "contact_not_found"
    );
    let hook = app.inbound("nope", SECRET, &message("m", "u", "t")).await;
    assert_eq!(hook.status, 404);
    assert_eq!(hook.code(), "channel_not_found");
    let route = app.get("/api/v1/nothing-here").await;
    assert_eq!(route.status, 404);
    assert_eq!(route.code(), "route_not_found");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = TestApp::spawn_on(okno_testkit::TestDb::sqlite(), |s| s.limits.max_body_bytes = 4096).await;
    let big = "x".repeat(10_000);
    let a = app.post("/api/v1/contacts", json!({"name": big})).await;
    assert_eq!(a.status, 413);
    assert_eq!(a.code(), "body_too_large");
    let sink = okno_testkit::Sink::start(SECRET).await;
    let ch = app.webhook_channel(&sink.url, SECRET).await;
    let hook = app.inbound(&ch, SECRET, &message("m", "u", &big)).await;
    assert_eq!(hook.status, 413);
}

#[tokio::test]
async fn bad_and_missing_signatures_are_401_and_store_nothing() {
    let (app, _sink, ch) = app_with_channel().await;
    let raw = serde_json::to_vec(&message("m-1", "u-1", "hi")).unwrap();
    let none = app.raw_hook(&ch, raw.clone(), None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.code(), "missing_signature");
    let wrong = okno_domain::signing::sign(b"not the secret", &raw);
    let bad = app.raw_hook(&ch, raw, Some(&wrong)).await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.code(), "bad_signature");
    assert!(app.get("/api/v1/conversations").await.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn inbound_bodies_that_are_signed_but_wrong_are_400() {
    let (app, _sink, ch) = app_with_channel().await;
    let cases = [
        (json!({"user": {"id": "u"}, "text": "x"}), "invalid_json"),
        (json!({"message_id": "m", "user": {"id": "u"}}), "empty_message"),
        (json!({"message_id": "", "user": {"id": "u"}, "text": "x"}), "invalid_message"),
        (json!({"message_id": "m", "user": {"id": "u", "phone": "nope"}, "text": "x"}), "invalid_phone"),
        (
            json!({"message_id": "m", "user": {"id": "u"}, "attachments": [{"url": "file:///etc/passwd"}]}),
            "invalid_url",
        ),
    ];
    for (body, code) in cases {
        let a = app.inbound(&ch, SECRET, &body).await;
        assert_eq!((a.status, a.code()), (400, code), "{body}");
    }
}

#[tokio::test]
async fn sends_that_cannot_go_anywhere_are_422() {
    let (app, _sink, ch) = app_with_channel().await;
    let c = app.post("/api/v1/contacts", json!({"external_id": "1c-1", "name": "No messenger"})).await;
    assert_eq!(c.status, 201);
    let a = app.post("/api/v1/messages", json!({"external_id": "1c-1", "text": "hi"})).await;
    assert_eq!((a.status, a.code()), (422, "no_identity"));
    let conv = inbound_conversation(&app, &ch, "u-1").await;
    let empty = app.post(&format!("/api/v1/conversations/{conv}/messages"), json!({"text": "  "})).await;
    assert_eq!(empty.code(), "empty_message");
    let buttons = app
        .post(&format!("/api/v1/conversations/{conv}/messages"), json!({"text": "x", "buttons": [[{"text": "b"}]]}))
        .await;
    assert_eq!(buttons.code(), "invalid_buttons");
    let both = app.post("/api/v1/messages", json!({"external_id": "1c-1", "contact_id": "x", "text": "hi"})).await;
    assert_eq!(both.code(), "invalid_recipient");
    let typo = app.post(&format!("/api/v1/conversations/{conv}/messages"), json!({"txt": "hi"})).await;
    assert_eq!(typo.code(), "invalid_body", "a misspelt field is an error, not an empty message");
    assert!(typo.body["error"]["message"].as_str().unwrap().contains("txt"));
    let recipient_in_reply =
        app.post(&format!("/api/v1/conversations/{conv}/messages"), json!({"text": "x", "contact_id": "y"})).await;
    assert_eq!(recipient_in_reply.code(), "invalid_recipient");
}

#[tokio::test]
async fn a_locked_database_fails_requests_cleanly_and_writes_nothing_half() {
    let app = TestApp::spawn_on(okno_testkit::TestDb::sqlite(), |s| {
        s.database.busy_timeout_ms = 200;
        s.database.acquire_timeout_ms = 1000;
    })
    .await;
    let sink = okno_testkit::Sink::start(SECRET).await;
    let ch = app.webhook_channel(&sink.url, SECRET).await;
    inbound_conversation(&app, &ch, "u-0").await;

    // Another process holds the write lock.
    let path = app.db.url.trim_start_matches("sqlite://").to_string();
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let a = app.inbound(&ch, SECRET, &message("m-1", "u-1", "while locked")).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.code(), "store_unavailable");
    let health = app.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200, "the process itself is fine");
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);

    let convs = app.get("/api/v1/conversations").await;
    assert_eq!(convs.body["items"].as_array().unwrap().len(), 1, "nothing of the failed request was written");
    let again = app.inbound(&ch, SECRET, &message("m-1", "u-1", "while locked")).await;
    assert_eq!(again.status, 200, "the sender's retry succeeds");
    assert_eq!(again.body["duplicate"], false);
}
