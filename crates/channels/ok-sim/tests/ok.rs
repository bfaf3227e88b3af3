//! The simulator tested from the outside, over real HTTP, the way okno talks to it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use okno_ok_sim::{Fault, OkSim};
use serde_json::{json, Value};

const TOKEN: &str = "tkn18YdUJZe:CQABPOJKAKEKEKEKE";

struct Api {
    sim: OkSim,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        let sim = OkSim::start().await;
        sim.add_group(TOKEN, 57_000_000_000_001, "okno shop");
        Api { sim, http: reqwest::Client::new() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}?access_token={TOKEN}", self.sim.api_base())
    }

    async fn get(&self, path: &str) -> (reqwest::header::HeaderMap, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        (r.headers().clone(), r.json().await.unwrap())
    }

    /// A POST with `Content-Type: application/json;charset=utf-8`, as the Graph API wants.
    async fn post(&self, path_and_query: &str, body: Value) -> Value {
        let (path, extra) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let mut url = self.url(path);
        if !extra.is_empty() {
            url = format!("{url}&{extra}");
        }
        let r = self
            .http
            .post(url)
            .header("Content-Type", "application/json;charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "OK answers errors with HTTP 200");
        r.json().await.unwrap()
    }
}

async fn receiver(script: Vec<u16>) -> (String, Arc<Mutex<Vec<Value>>>) {
    type Seen = Arc<Mutex<Vec<Value>>>;
    let seen: Seen = Arc::default();
    async fn hook(State((seen, script)): State<(Seen, Arc<Vec<u16>>)>, body: String) -> StatusCode {
        let mut seen = seen.lock().unwrap();
        seen.push(serde_json::from_str(&body).unwrap());
        StatusCode::from_u16(script.get(seen.len() - 1).or(script.last()).copied().unwrap_or(200)).unwrap()
    }
    let app = Router::new().route("/ok", post(hook)).with_state((seen.clone(), Arc::new(script)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ok", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn the_token_is_a_query_parameter_and_a_bad_one_is_an_error_envelope() {
    let api = Api::start().await;
    let (_, me) = api.get("/graph/me/info").await;
    assert_eq!(me, json!({"name": "okno shop", "group_id": "group:57000000000001"}));
    let bad = api.http.get(format!("{}/graph/me/info?access_token=nope", api.sim.api_base())).send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 200);
    assert_eq!(bad.headers()["invocation-error"], "102");
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error_code"], 102);
    assert!(body["error_msg"].as_str().unwrap().starts_with("PARAM_SESSION_EXPIRED"));

    let plain = api.http.post(api.url("/graph/me/subscribe")).body("{\"url\":\"https://x\"}").send().await.unwrap();
    let body: Value = plain.json().await.unwrap();
    assert_eq!(body["error_code"], 100, "a POST without the JSON content type is refused");
}

#[tokio::test]
async fn a_subscription_pushes_every_event_and_retries_until_200() {
    let api = Api::start().await;
    api.sim.set_webhook_retry(Duration::from_millis(20), 5);
    let (url, seen) = receiver(vec![500, 200]).await;
    assert_eq!(api.post("/graph/me/subscribe", json!({"url": url})).await, json!({"success": true}));
    let (_, subs) = api.get("/graph/me/subscriptions").await;
    assert_eq!(subs["subscriptions"][0]["url"], url);

    let ann = api.sim.user(TOKEN, 575_757_575_757, "Ann");
    let mid = ann.send_text("hello");
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "a 500, then the 200 ends it");
    assert_eq!(seen[0], seen[1]);
    let e = &seen[0];
    assert_eq!(e["webhookType"], "MESSAGE_CREATED");
    assert_eq!(e["sender"]["user_id"], "user:575757575757");
    assert_eq!(e["recipient"]["chat_id"], ann.chat_id());
    assert_eq!(e["message"]["mid"], mid);
    assert!(e["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
    let statuses: Vec<_> = api.sim.webhook_attempts(TOKEN).iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(200)]);

    assert_eq!(api.post("/graph/me/unsubscribe", json!({"url": url})).await, json!({"success": true}));
    ann.send_text("unheard");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(api.sim.webhook_attempts(TOKEN).len(), 2);
}

#[tokio::test]
async fn messages_go_into_chats_with_at_most_five_attachments() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    let chat = api.sim.chat(TOKEN, "chat:C3ecb9d02a600", "Couriers");
    let sent = api
        .post(
            &format!("/graph/me/messages/{}", ann.chat_id()),
            json!({"recipient": {"chat_id": ann.chat_id()}, "message": {"text": "Hi"}}),
        )
        .await;
    assert_eq!(sent["success"], true);
    assert!(sent["message_id"].as_str().unwrap().starts_with("mid:"));
    let via_chat = api
        .post(
            "/graph/chat:C3ecb9d02a600/messages",
            json!({"recipient": {"chat_id": chat.chat_id()}, "message": {"text": "Task #1"}}),
        )
        .await;
    assert_eq!(via_chat["success"], true);

    let share = json!({"type": "SHARE", "payload": {"url": "https://okno.example"}});
    let six = api
        .post(
            "/graph/chat:C3ecb9d02a600/messages",
            json!({"message": {"text": "x", "attachments": vec![share.clone(); 6]}}),
        )
        .await;
    assert_eq!(six["error_code"], 100);
    let five =
        api.post("/graph/chat:C3ecb9d02a600/messages", json!({"message": {"attachments": vec![share; 5]}})).await;
    assert_eq!(five["success"], true);
    let image = |u: &str| json!({"type": "IMAGE", "payload": {"url": u}});
    let two_urls = api
        .post(
            "/graph/chat:C3ecb9d02a600/messages",
            json!({"message": {"attachments": [image("https://a/1.png"), image("https://a/2.png")]}}),
        )
        .await;
    assert_eq!(two_urls["error_code"], 100, "one image by URL per request");
    let unknown = api.post("/graph/chat:Cnope/messages", json!({"message": {"text": "x"}})).await;
    assert_eq!(unknown["error_code"], 300);
    assert_eq!(api.sim.sent(TOKEN).len(), 3);
}

#[tokio::test]
async fn direct_messages_reach_only_people_who_allowed_them() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    let bob = api.sim.user(TOKEN, 1002, "Bob");
    bob.disallow();
    let many = api
        .post(
            "/graph/me/messages",
            json!({"recipient": {"user_ids": ["user:1001", "1002"]}, "message": {"text": "Sale"}}),
        )
        .await;
    assert_eq!(many, json!({"success": [true, false], "chat_ids": [ann.chat_id(), null]}));
    let one = api
        .post("/graph/me/messages", json!({"recipient": {"user_id": "user:1002"}, "message": {"text": "Sale"}}))
        .await;
    assert_eq!(one["error_code"], 10);
    let again = api.post(&format!("/graph/me/messages/{}", bob.chat_id()), json!({"message": {"text": "Sale"}})).await;
    assert_eq!(again["error_code"], 10);
    assert_eq!(api.sim.sent(TOKEN).len(), 1);
}

#[tokio::test]
async fn a_callback_button_press_is_answered_at_the_chats_answer_path() {
    let api = Api::start().await;
    let (url, seen) = receiver(vec![200]).await;
    api.post("/graph/me/subscribe", json!({"url": url})).await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    let keyboard = json!({"type": "INLINE_KEYBOARD", "payload": {"keyboard": {"buttons": [[
        {"type": "CALLBACK", "text": "Take", "intent": "POSITIVE", "payload": "take:5"},
        {"type": "LINK", "text": "Site", "url": "https://okno.example"}]]}}});
    let bad =
        json!({"type": "INLINE_KEYBOARD", "payload": {"keyboard": {"buttons": [[{"type": "CALLBACK", "text": "x"}]]}}});
    let refused = api
        .post(
            &format!("/graph/me/messages/{}", ann.chat_id()),
            json!({"message": {"text": "Task", "attachments": [bad]}}),
        )
        .await;
    assert_eq!(refused["error_code"], 100, "a CALLBACK button needs a payload");
    let sent = api
        .post(
            &format!("/graph/me/messages/{}", ann.chat_id()),
            json!({"message": {"text": "Task #5", "attachment": keyboard}}),
        )
        .await;
    let mid = sent["message_id"].as_str().unwrap();
    let callback_id = ann.press(mid, "take:5");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let e = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(e["webhookType"], "MESSAGE_CALLBACK");
    assert_eq!(e["callbackId"], callback_id);
    assert_eq!(e["payload"], "take:5");

    let path = format!("/graph/{}/answer?callbackId={callback_id}", ann.chat_id());
    assert_eq!(
        api.post(&format!("/graph/chat:Cother/answer?callbackId={callback_id}"), json!({"message": {"text": "x"}}))
            .await["error_code"],
        100
    );
    assert_eq!(api.post(&path, json!({"message": {"text": "Taken by you"}})).await, json!({"success": true}));
    assert_eq!(api.post(&path, json!({"message": {"text": "again"}})).await["error_code"], 100, "answered once");
    assert_eq!(api.sim.callback_answers(TOKEN)[0].text, "Taken by you");
}

#[tokio::test]
async fn a_file_is_uploaded_then_attached_by_its_token() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    let (_, slot) = api.get("/graph/me/fileUploadUrl").await;
    let token = slot["token"].as_str().unwrap().to_string();
    let attach = json!({"message": {"attachment": {"type": "FILE", "payload": {"token": token}}}});
    let early = api.post(&format!("/graph/me/messages/{}", ann.chat_id()), attach.clone()).await;
    assert_eq!(early["error_code"], 100, "nothing uploaded yet");
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"invoice".to_vec()).file_name("invoice.pdf"));
    let up = api.http.post(slot["url"].as_str().unwrap()).multipart(form).send().await.unwrap();
    assert_eq!(up.status().as_u16(), 200);
    let sent = api.post(&format!("/graph/me/messages/{}", ann.chat_id()), attach).await;
    assert_eq!(sent["success"], true, "{sent}");
}

#[tokio::test]
async fn injected_faults_answer_the_next_calls() {
    let api = Api::start().await;
    api.sim.fail_next(TOKEN, Fault::Error(8));
    api.sim.fail_next(TOKEN, Fault::Status(502));
    let (headers, flood) = api.get("/graph/me/info").await;
    assert_eq!(flood["error_code"], 8);
    assert_eq!(headers["invocation-error"], "8");
    let gateway = api.http.get(api.url("/graph/me/info")).send().await.unwrap();
    assert_eq!(gateway.status().as_u16(), 502);
    assert_eq!(api.get("/graph/me/info").await.1["group_id"], "group:57000000000001");
    assert_eq!(api.sim.calls(TOKEN, "GET /graph/me/info"), 3);
}

#[tokio::test]
async fn a_replayed_event_is_delivered_again_unchanged() {
    let api = Api::start().await;
    let (url, seen) = receiver(vec![200]).await;
    api.post("/graph/me/subscribe", json!({"url": url})).await;
    let chat = api.sim.chat(TOKEN, "chat:C1", "Team");
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    chat.send_text(&ann, "in the chat");
    api.sim.replay_last_event(TOKEN);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0]["recipient"]["chat_id"], "chat:C1");
    let (_, info) = api.get("/graph/me/chat/chat:C1").await;
    assert_eq!(info["type"], "GROUP_CHAT");
}
