//! What each role may change: every endpoint that changes something, called by each role, and
//! the webhooks and news an integration token makes being its own.

use okno_domain::model::Role;
use okno_testkit::TestApp;
use serde_json::{json, Value};

const ROLES: [Role; 4] = [Role::Admin, Role::Operator, Role::Integration, Role::Restricted];

/// (method, path, body, expected status for admin, operator, integration, restricted).
/// Where a missing thing (404) or a refused body (400, 422) is enough to show that the role got
/// past the check, the table asks for that; the rest creates for real. 403 is the refusal.
fn table() -> Vec<(&'static str, &'static str, Option<Value>, [u16; 4])> {
    vec![
        ("POST", "/api/v1/channels", Some(json!({"kind": "nope", "name": "x", "config": {}})), [400, 403, 403, 403]),
        ("PATCH", "/api/v1/channels/none", Some(json!({"name": "y"})), [404, 403, 403, 403]),
        ("DELETE", "/api/v1/channels/none", None, [404, 403, 403, 403]),
        ("POST", "/api/v1/contacts", Some(json!({"external_id": "roles-1", "name": "A"})), [201, 200, 200, 200]),
        ("PATCH", "/api/v1/contacts/none", Some(json!({"name": "B"})), [404, 404, 404, 404]),
        ("POST", "/api/v1/contacts/none/merge", Some(json!({"other_id": "none2"})), [404, 404, 404, 404]),
        ("POST", "/api/v1/contacts/none/link", Some(json!({})), [404, 404, 404, 404]),
        ("PATCH", "/api/v1/conversations/none", Some(json!({"labels": ["x"]})), [404, 404, 404, 404]),
        ("POST", "/api/v1/conversations/none/messages", Some(json!({"text": "hi"})), [404, 404, 404, 404]),
        ("POST", "/api/v1/conversations/none/chat-action", Some(json!({"action": "typing"})), [404, 404, 404, 404]),
        ("POST", "/api/v1/conversations/none/notes", Some(json!({"text": "n"})), [404, 404, 404, 404]),
        ("POST", "/api/v1/messages", Some(json!({"contact_id": "none", "text": "hi"})), [404, 404, 404, 404]),
        ("PATCH", "/api/v1/messages/none", Some(json!({"buttons": []})), [404, 404, 404, 404]),
        ("POST", "/api/v1/attachments?name=a.txt", Some(json!("bytes")), [201, 201, 201, 201]),
        (
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/h", "events": ["message.received"]})),
            [201, 403, 201, 403],
        ),
        ("DELETE", "/api/v1/webhooks/none", None, [404, 403, 404, 403]),
        ("POST", "/api/v1/tokens", Some(json!({"name": "t", "role": "operator"})), [201, 403, 403, 403]),
        ("DELETE", "/api/v1/tokens/none", None, [404, 403, 403, 403]),
        ("POST", "/api/v1/events", Some(json!({"type": "roles.test", "key": "k1", "data": {}})), [202, 200, 200, 200]),
        ("POST", "/api/v1/rules", Some(json!({})), [400, 403, 403, 403]),
        ("DELETE", "/api/v1/rules/none", None, [404, 403, 403, 403]),
        ("PUT", "/api/v1/bots/none", Some(json!({})), [400, 403, 403, 403]),
        ("DELETE", "/api/v1/bots/none", None, [404, 403, 403, 403]),
        ("POST", "/api/v1/news", Some(json!({"title": "T", "text": "news"})), [201, 403, 201, 403]),
        ("DELETE", "/api/v1/news/none", None, [404, 403, 404, 403]),
        (
            "POST",
            "/api/v1/broadcasts",
            Some(json!({"name": "b", "audience": {"contact_ids": ["none"]}, "text": "hi"})),
            [422, 422, 422, 422],
        ),
        ("POST", "/api/v1/broadcasts/none/pause", None, [404, 404, 404, 404]),
        ("POST", "/api/v1/broadcasts/none/resume", None, [404, 404, 404, 404]),
        ("POST", "/api/v1/broadcasts/none/cancel", None, [404, 404, 404, 404]),
        (
            "POST",
            "/api/v1/tasks",
            Some(json!({"channel_id": "none", "chat_id": "1", "title": "t", "text": "x"})),
            [404, 404, 404, 404],
        ),
        ("POST", "/api/v1/tasks/none/release", None, [404, 404, 404, 404]),
        ("POST", "/api/v1/surveys", Some(json!({})), [400, 403, 403, 403]),
        ("DELETE", "/api/v1/surveys/none", None, [404, 403, 403, 403]),
        ("POST", "/api/v1/surveys/none/start", Some(json!({})), [404, 404, 404, 404]),
        ("POST", "/api/v1/surveys/none/scan", None, [404, 404, 404, 404]),
    ]
}

#[tokio::test]
async fn each_role_changes_only_what_its_table_allows() {
    let app = TestApp::spawn().await;
    let mut tokens = Vec::new();
    for role in ROLES {
        tokens.push(app.token_for(role).await);
    }
    let mut wrong = Vec::new();
    for (method, path, body, expected) in table() {
        for (i, role) in ROLES.iter().enumerate() {
            let got = app.call(method, path, body.clone(), Some(&tokens[i])).await;
            if got.status != expected[i] {
                wrong
                    .push(format!("{method} {path} as {role}: {} (expected {}) {}", got.status, expected[i], got.body));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn ids(a: &okno_testkit::app::Answer) -> Vec<String> {
    a.body["items"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn an_integration_token_sees_and_removes_only_its_own_webhooks() {
    let app = TestApp::spawn().await;
    let (one, other) = (app.token_for(Role::Integration).await, app.token_for(Role::Integration).await);
    let hook = json!({"url": "http://127.0.0.1:9/h", "events": ["message.received"]});
    let admins = app.post("/api/v1/webhooks", hook.clone()).await.body["id"].as_str().unwrap().to_string();
    let ones = app.call("POST", "/api/v1/webhooks", Some(hook.clone()), Some(&one)).await;
    assert!(ones.body["created_by"].as_str().unwrap().starts_with("token:"), "{ones:?}");
    let ones = ones.body["id"].as_str().unwrap().to_string();
    let others =
        app.call("POST", "/api/v1/webhooks", Some(hook), Some(&other)).await.body["id"].as_str().unwrap().to_string();

    assert_eq!(ids(&app.call("GET", "/api/v1/webhooks", None, Some(&one)).await), vec![ones.clone()]);
    for foreign in [&admins, &others] {
        for (method, path) in [
            ("GET", format!("/api/v1/webhooks/{foreign}")),
            ("GET", format!("/api/v1/webhooks/{foreign}/deliveries")),
            ("DELETE", format!("/api/v1/webhooks/{foreign}")),
        ] {
            let a = app.call(method, &path, None, Some(&one)).await;
            assert_eq!((a.status, a.code()), (404, "webhook_not_found"), "{method} {path}: {a:?}");
        }
    }
    assert_eq!(app.call("GET", &format!("/api/v1/webhooks/{ones}"), None, Some(&one)).await.status, 200);
    assert_eq!(app.call("DELETE", &format!("/api/v1/webhooks/{ones}"), None, Some(&one)).await.status, 204);

    // The administrator sees and removes every one, whoever made it.
    let mut all = ids(&app.get("/api/v1/webhooks").await);
    all.sort();
    let mut expected = vec![admins.clone(), others.clone()];
    expected.sort();
    assert_eq!(all, expected);
    assert_eq!(app.delete(&format!("/api/v1/webhooks/{others}")).await.status, 204);
}

#[tokio::test]
async fn news_are_published_by_admin_and_integration_and_withdrawn_by_their_publisher() {
    let app = TestApp::spawn().await;
    let (one, other) = (app.token_for(Role::Integration).await, app.token_for(Role::Integration).await);
    let news = json!({"title": "Prices", "text": "New prices from Monday"});
    for role in [Role::Operator, Role::Restricted] {
        let t = app.token_for(role).await;
        let a = app.call("POST", "/api/v1/news", Some(news.clone()), Some(&t)).await;
        assert_eq!((a.status, a.code()), (403, "forbidden"), "{role}");
    }
    let admins = app.post("/api/v1/news", news.clone()).await.body["id"].as_str().unwrap().to_string();
    let ones = app.call("POST", "/api/v1/news", Some(news), Some(&one)).await.body["id"].as_str().unwrap().to_string();

    for (token, id) in [(&other, &ones), (&one, &admins)] {
        let a = app.call("DELETE", &format!("/api/v1/news/{id}"), None, Some(token)).await;
        assert_eq!((a.status, a.code()), (404, "news_not_found"));
    }
    assert_eq!(app.call("DELETE", &format!("/api/v1/news/{ones}"), None, Some(&one)).await.status, 204);
    assert_eq!(app.delete(&format!("/api/v1/news/{admins}")).await.status, 204);
    assert_eq!(ids(&app.get("/api/v1/news").await), Vec::<String>::new());
    let audit = app.get("/api/v1/audit").await;
    let actions: Vec<&str> =
        audit.body["items"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["news.delete", "news.delete", "news.create", "news.create"]);
}
