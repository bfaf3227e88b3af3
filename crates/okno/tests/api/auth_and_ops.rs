//! Tokens and roles; health, readiness, metrics, the OpenAPI document.

use okno_domain::model::Role;
use okno_testkit::TestApp;
use serde_json::json;

#[tokio::test]
async fn missing_invalid_and_insufficient_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let none = app.call("GET", "/api/v1/contacts", None, None).await;
    assert_eq!((none.status, none.code()), (401, "missing_token"));
    let bad = app.call("GET", "/api/v1/contacts", None, Some("okno_not-a-token")).await;
    assert_eq!((bad.status, bad.code()), (401, "invalid_token"));
    let operator = app.token_for(Role::Operator).await;
    let forbidden = app
        .call("POST", "/api/v1/channels", Some(json!({"kind": "webhook", "name": "x", "config": {}})), Some(&operator))
        .await;
    assert_eq!((forbidden.status, forbidden.code()), (403, "forbidden"));
    assert_eq!(app.call("GET", "/api/v1/contacts", None, Some(&operator)).await.status, 200);
    let integration = app.token_for(Role::Integration).await;
    assert_eq!(app.call("GET", "/api/v1/audit", None, Some(&integration)).await.status, 403);
    assert_eq!(app.call("GET", "/api/v1/webhooks", None, Some(&integration)).await.status, 200);
}

#[tokio::test]
async fn tokens_can_be_created_listed_and_revoked_through_the_api() {
    let app = TestApp::spawn().await;
    let created = app.post("/api/v1/tokens", json!({"name": "1c", "role": "integration"})).await;
    assert_eq!(created.status, 201, "{created:?}");
    let secret = created.body["secret"].as_str().unwrap().to_string();
    assert_eq!(app.call("GET", "/api/v1/contacts", None, Some(&secret)).await.status, 200);
    let list = app.get("/api/v1/tokens").await;
    assert!(list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.get("secret").is_none() && t.get("token_hash").is_none()));
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/api/v1/tokens/{id}")).await.status, 204);
    assert_eq!(app.call("GET", "/api/v1/contacts", None, Some(&secret)).await.code(), "invalid_token");
    let bad_role = app.post("/api/v1/tokens", json!({"name": "x", "role": "root"})).await;
    assert_eq!(bad_role.status, 400);
    let audit = app.get("/api/v1/audit").await;
    let actions: Vec<_> =
        audit.body["items"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap().to_string()).collect();
    assert_eq!(actions, vec!["token.revoke", "token.create"]);
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let app = TestApp::spawn().await;
    assert_eq!(app.call("GET", "/healthz", None, None).await.status, 200);
    assert_eq!(app.call("GET", "/readyz", None, None).await.body["status"], "ready");
    app.get("/api/v1/contacts").await;
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("okno_queue_depth 0"), "{metrics}");
    assert!(metrics.contains("okno_http_requests_total{method=\"GET\",status=\"200\"}"), "{metrics}");
    let doc = app.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/channels",
        "/api/v1/contacts",
        "/api/v1/conversations/{id}/messages",
        "/api/v1/messages",
        "/api/v1/webhooks",
    ] {
        assert!(paths.contains_key(p), "the document lists {p}");
    }
    assert_eq!(doc.body["paths"]["/api/v1/contacts"]["get"]["parameters"][0]["in"], "query");
}

/// Each channel kind's configuration is in the OpenAPI document, from its platform's schema:
/// required fields, write-only secrets, and okno's own fields left out.
#[tokio::test]
async fn the_openapi_document_describes_each_channel_kinds_configuration() {
    let app = TestApp::spawn().await;
    let doc = app.call("GET", "/api/v1/openapi.json", None, None).await.body;
    let schemas = &doc["components"]["schemas"];
    let tg = &schemas["TelegramChannelConfig"];
    assert_eq!(tg["required"], serde_json::json!(["token"]));
    assert_eq!(tg["properties"]["token"]["writeOnly"], true);
    assert_eq!(tg["properties"]["mode"]["enum"], serde_json::json!(["polling", "webhook"]));
    assert!(tg["properties"].get("webhook_secret").is_none(), "kept by okno, not set");
    let wh = &schemas["WebhookChannelConfig"];
    assert_eq!(wh["required"], serde_json::json!(["outbound_url", "secret"]));
    assert_eq!(wh["properties"]["buttons"]["type"], "boolean");
    // One configuration per kind this build carries.
    let kinds = schemas["CreateChannel"]["properties"]["kind"]["enum"].as_array().unwrap().len();
    let one_of = schemas["CreateChannel"]["properties"]["config"]["oneOf"].as_array().unwrap();
    assert_eq!(one_of.len(), kinds, "{one_of:?}");
    // A change names only what it changes.
    let changes = schemas["UpdateChannel"]["properties"]["config"]["oneOf"].as_array().unwrap();
    assert_eq!(changes.len(), kinds, "{changes:?}");
    let tg_changes = &schemas["TelegramChannelConfigChanges"];
    assert!(tg_changes.get("required").is_none(), "{tg_changes}");
    assert_eq!(tg_changes["properties"]["token"]["writeOnly"], true);
    let mut kinds: Vec<&str> = schemas["CreateChannel"]["properties"]["kind"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        ["avito", "email", "max", "ok", "sms", "telegram", "viber", "vk", "webhook", "whatsapp", "widget"],
        "every platform this build carries"
    );
    let wa = &schemas["WhatsAppChannelConfig"];
    assert_eq!(wa["required"], serde_json::json!(["token", "phone_number_id", "app_secret", "verify_token"]));
    for secret in ["token", "app_secret", "verify_token"] {
        assert_eq!(wa["properties"][secret]["writeOnly"], true, "{secret}");
    }
    assert!(wa["properties"].get("display_phone_number").is_none(), "kept by okno, not set");
    for name in ["MAXChannelConfig", "OKChannelConfig", "VKChannelConfig"] {
        let config = &schemas[name];
        assert_eq!(config["required"], serde_json::json!(["token"]), "{name}");
        assert_eq!(config["properties"]["token"]["writeOnly"], true, "{name}");
        assert!(config["properties"].get("webhook_secret").is_none(), "{name}: kept by okno, not set");
    }
    let vk = &schemas["VKChannelConfig"];
    assert_eq!(vk["properties"]["group_id"]["type"], "integer");
    assert_eq!(vk["properties"]["mode"]["enum"], serde_json::json!(["polling", "webhook"]));
}
