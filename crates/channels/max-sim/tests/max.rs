//! The simulator tested from the outside, over real HTTP, the way okno talks to it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use okno_max_sim::{Fault, MaxSim};
use serde_json::{json, Value};

const TOKEN: &str = "f9LHodD0cOJf4_DkJGeq8BkDgc5vgSwZocVrn44oirf";

struct Api {
    sim: MaxSim,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        let sim = MaxSim::start().await;
        sim.add_bot(TOKEN, "okno_bot");
        Api { sim, http: reqwest::Client::new() }
    }

    async fn call(&self, method: reqwest::Method, path_and_query: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path_and_query}", self.sim.api_base()))
            .header("Authorization", TOKEN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn send_text(&self, chat_id: i64, text: &str) -> (u16, Value) {
        self.post(&format!("/messages?chat_id={chat_id}"), json!({"text": text})).await
    }
}

fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert!(answer.1["message"].is_string(), "{}", answer.1);
}

/// A webhook receiver on 127.0.0.1: answers each delivery with the next status of `script`
/// (the last one repeats) and records the secret header and body.
async fn receiver(script: Vec<u16>) -> (String, Arc<Mutex<Vec<(Option<String>, Value)>>>) {
    type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;
    let seen: Seen = Arc::default();
    let state = (seen.clone(), Arc::new(script));
    async fn hook(State((seen, script)): State<(Seen, Arc<Vec<u16>>)>, headers: HeaderMap, body: String) -> StatusCode {
        let secret = headers.get("X-Max-Bot-Api-Secret").map(|v| v.to_str().unwrap().to_string());
        let mut seen = seen.lock().unwrap();
        seen.push((secret, serde_json::from_str(&body).unwrap()));
        let status = script.get(seen.len() - 1).or(script.last()).copied().unwrap_or(200);
        StatusCode::from_u16(status).unwrap()
    }
    let app = Router::new().route("/hook", post(hook)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn the_token_goes_raw_in_the_authorization_header_and_nowhere_else() {
    let api = Api::start().await;
    let (status, me) = api.get("/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["is_bot"], true);
    assert_eq!(me["username"], "okno_bot");

    let base = api.sim.api_base();
    let no_header = api.http.get(format!("{base}/me?access_token={TOKEN}")).send().await.unwrap();
    assert_eq!(no_header.status().as_u16(), 401);
    let body: Value = no_header.json().await.unwrap();
    assert_eq!(body, json!({"code": "verify.token", "message": "Invalid access_token"}));
    let bearer =
        api.http.get(format!("{base}/me")).header("Authorization", format!("Bearer {TOKEN}")).send().await.unwrap();
    assert_eq!(bearer.status().as_u16(), 401);
}

#[tokio::test]
async fn a_text_of_4001_characters_is_refused_and_4000_pass() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    let at_limit = "я".repeat(4000);
    let (status, sent) = api.post("/messages?user_id=1001", json!({"text": at_limit})).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["message"]["recipient"]["chat_id"], ann.chat_id());
    assert!(sent["message"]["body"]["mid"].as_str().unwrap().starts_with("mid."));
    // Two sends per second per chat: the second goes to a group.
    api.sim.group(TOKEN, -70801090403050);
    let over = api.send_text(-70801090403050, &"я".repeat(4001)).await;
    assert_error(&over, 400, "proto.payload");
    assert_eq!(api.sim.sent(TOKEN).len(), 1);
}

#[tokio::test]
async fn a_send_names_exactly_one_of_user_id_and_chat_id_and_an_existing_chat() {
    let api = Api::start().await;
    api.sim.user(TOKEN, 1001, "Ann");
    assert_error(&api.post("/messages", json!({"text": "hi"})).await, 400, "proto.payload");
    let both =
        api.post(&format!("/messages?user_id=1001&chat_id={}", api.sim.dialog_id(1001)), json!({"text": "hi"})).await;
    assert_error(&both, 400, "proto.payload");
    assert_error(&api.post("/messages?user_id=42", json!({"text": "hi"})).await, 404, "chat.not.found");
    assert_error(
        &api.post("/messages?user_id=1001", json!({"text": "hi", "format": "bbcode"})).await,
        400,
        "proto.payload",
    );
}

#[tokio::test]
async fn a_long_poll_returns_when_a_user_writes_and_the_marker_confirms_it() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    let writer = {
        let ann = ann.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            ann.send_text("hello")
        })
    };
    let started = Instant::now();
    let (status, page) = api.get("/updates?timeout=10").await;
    assert_eq!(status, 200, "{page}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(5), "{waited:?}");
    let mid = writer.await.unwrap();
    let updates = page["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 1);
    let u = &updates[0];
    assert_eq!(u["update_type"], "message_created");
    assert!(u.get("update_id").is_none(), "MAX updates carry no id: {u}");
    assert!(u["timestamp"].as_i64().unwrap() > 1_700_000_000_000, "milliseconds");
    assert_eq!(u["message"]["body"]["mid"], mid);
    assert_eq!(u["message"]["body"]["text"], "hello");
    assert_eq!(u["message"]["sender"]["user_id"], 1001);
    assert_eq!(u["message"]["recipient"]["chat_type"], "dialog");

    let marker = page["marker"].as_i64().unwrap();
    let (_, next) = api.get(&format!("/updates?timeout=0&marker={marker}")).await;
    assert_eq!(next["updates"], json!([]), "the marker confirmed the first update");
    ann.send_text("again");
    let (_, again) = api.get(&format!("/updates?timeout=0&marker={marker}")).await;
    assert_eq!(again["updates"][0]["message"]["body"]["text"], "again");
}

#[tokio::test]
async fn without_a_marker_only_the_latest_update_comes_and_types_filter() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    ann.send_text("one");
    ann.send_text("two");
    let (_, page) = api.get("/updates?timeout=0").await;
    let updates = page["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["message"]["body"]["text"], "two");

    let marker = page["marker"].as_i64().unwrap();
    ann.start(Some("lead-42"));
    ann.send_text("three");
    let (_, only_starts) = api.get(&format!("/updates?timeout=0&marker={marker}&types=bot_started")).await;
    let list = only_starts["updates"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{only_starts}");
    assert_eq!(list[0]["update_type"], "bot_started");
    assert_eq!(list[0]["payload"], "lead-42");
    assert_error(&api.get("/updates?limit=1001").await, 400, "proto.payload");
}

#[tokio::test]
async fn a_deep_link_payload_over_512_characters_is_dropped() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    ann.start(Some(&"x".repeat(513)));
    let (_, page) = api.get("/updates?timeout=0").await;
    let u = &page["updates"][0];
    assert_eq!(u["update_type"], "bot_started");
    assert_eq!(u["chat_id"], ann.chat_id());
    assert!(u.get("payload").is_none(), "{u}");
}

#[tokio::test]
async fn a_person_who_stopped_the_bot_cannot_be_written_to_until_they_start_it() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    ann.stop_bot();
    let refused = api.post("/messages?user_id=1001", json!({"text": "hi"})).await;
    assert_error(&refused, 403, "chat.denied");
    assert_eq!(refused.1["message"], "error.dialog.suspended");
    let (_, page) = api.get("/updates?timeout=0").await;
    assert_eq!(page["updates"][0]["update_type"], "bot_stopped");

    ann.start(None);
    let (status, _) = api.post("/messages?user_id=1001", json!({"text": "welcome back"})).await;
    assert_eq!(status, 200);
    let stranger = api.sim.stranger(TOKEN, 2002, "Bob");
    assert_error(&api.post("/messages?user_id=2002", json!({"text": "hi"})).await, 403, "chat.denied");
    stranger.start(Some("ref"));
    assert_eq!(api.post("/messages?user_id=2002", json!({"text": "hi"})).await.0, 200);
}

#[tokio::test]
async fn long_polling_is_refused_with_405_while_a_webhook_is_subscribed() {
    let api = Api::start().await;
    let (url, _) = receiver(vec![200]).await;
    let (status, r) = api.post("/subscriptions", json!({"url": url, "secret": "s3cret_ok"})).await;
    assert_eq!((status, r), (200, json!({"success": true})));
    assert_eq!(api.get("/updates?timeout=0").await.0, 405);
    let (_, list) = api.get("/subscriptions").await;
    assert_eq!(list["subscriptions"][0]["url"], url);
    assert!(list["subscriptions"][0]["time"].is_i64());

    let (status, _) = api.call(reqwest::Method::DELETE, &format!("/subscriptions?url={url}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(api.get("/updates?timeout=0").await.0, 200);
}

#[tokio::test]
async fn a_subscription_needs_https_and_a_well_formed_secret() {
    let api = Api::start().await;
    assert_error(&api.post("/subscriptions", json!({"url": "http://example.com/hook"})).await, 400, "proto.payload");
    let short = api.post("/subscriptions", json!({"url": "https://example.com/hook", "secret": "abc"})).await;
    assert_error(&short, 400, "proto.payload");
    let spaces = api.post("/subscriptions", json!({"url": "https://example.com/hook", "secret": "has spaces"})).await;
    assert_error(&spaces, 400, "proto.payload");
    assert!(api.sim.subscriptions(TOKEN).is_empty());
}

#[tokio::test]
async fn the_webhook_push_carries_the_secret_and_is_retried_until_it_gets_200() {
    let api = Api::start().await;
    api.sim.set_webhook_retry(Duration::from_millis(20), 2.5, 10);
    let (url, seen) = receiver(vec![500, 503, 200]).await;
    api.post("/subscriptions", json!({"url": url, "secret": "okno-secret_1", "update_types": ["message_created"]}))
        .await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    ann.start(None); // not subscribed to: never pushed
    let mid = ann.send_text("hello");

    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "two failures, then the 200 ends it: {seen:?}");
    for (secret, body) in &seen {
        assert_eq!(secret.as_deref(), Some("okno-secret_1"));
        assert_eq!(body["update_type"], "message_created", "a bare Update, not a list");
        assert_eq!(body["message"]["body"]["mid"], mid);
    }
    let attempts = api.sim.webhook_attempts(TOKEN);
    let statuses: Vec<_> = attempts.iter().map(|a| (a.attempt, a.status)).collect();
    assert_eq!(statuses, vec![(1, Some(500)), (2, Some(503)), (3, Some(200))]);
    assert!(attempts[2].at - attempts[1].at >= Duration::from_millis(45), "the second retry waits 2.5× the first");
}

#[tokio::test]
async fn a_webhook_that_never_answers_200_gets_the_first_try_and_ten_retries() {
    let api = Api::start().await;
    api.sim.set_webhook_retry(Duration::from_millis(1), 1.0, 10);
    let (url, seen) = receiver(vec![204]).await;
    api.post("/subscriptions", json!({"url": url})).await;
    api.sim.user(TOKEN, 1001, "Ann").send_text("hello");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seen.lock().unwrap().len(), 11, "any status but 200 is a failure");
    assert!(seen.lock().unwrap()[0].0.is_none(), "no secret, no header");
}

#[tokio::test]
async fn an_upload_is_attachment_not_ready_until_processed() {
    let api = Api::start().await;
    api.sim.user(TOKEN, 1001, "Ann");
    api.sim.set_processing_time(Duration::from_millis(300));
    assert_error(&api.post("/uploads?type=photo", json!({})).await, 400, "proto.payload");

    let (status, slot) = api.call(reqwest::Method::POST, "/uploads?type=file", None).await;
    assert_eq!(status, 200, "{slot}");
    let url = slot["url"].as_str().unwrap();
    assert!(slot.get("token").is_none(), "a file's token comes from the upload");
    let form = reqwest::multipart::Form::new()
        .part("data", reqwest::multipart::Part::bytes(b"%PDF-1.4 invoice".to_vec()).file_name("invoice.pdf"));
    let uploaded: Value = api.http.post(url).multipart(form).send().await.unwrap().json().await.unwrap();
    let token = uploaded["token"].as_str().unwrap();

    let attach = json!({"text": "your invoice", "attachments": [{"type": "file", "payload": {"token": token}}]});
    let early = api.post("/messages?user_id=1001", attach.clone()).await;
    assert_error(&early, 400, "attachment.not.ready");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (status, sent) = api.post("/messages?user_id=1001", attach).await;
    assert_eq!(status, 200, "{sent}");
    let file = &sent["message"]["body"]["attachments"][0];
    assert_eq!(file["filename"], "invoice.pdf");
    let bytes = api.http.get(file["payload"]["url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"%PDF-1.4 invoice");
}

#[tokio::test]
async fn video_tokens_come_with_the_upload_url_and_images_answer_photos() {
    let api = Api::start().await;
    api.sim.set_processing_time(Duration::ZERO);
    api.sim.user(TOKEN, 1001, "Ann");
    let (_, slot) = api.call(reqwest::Method::POST, "/uploads?type=video", None).await;
    let token = slot["token"].as_str().unwrap().to_string();
    let attach = json!({"attachments": [{"type": "video", "payload": {"token": token}}]});
    assert_error(&api.post("/messages?user_id=1001", attach.clone()).await, 400, "attachment.not.ready");
    let form =
        reqwest::multipart::Form::new().part("data", reqwest::multipart::Part::bytes(vec![0u8; 64]).file_name("a.mp4"));
    let reply =
        api.http.post(slot["url"].as_str().unwrap()).multipart(form).send().await.unwrap().text().await.unwrap();
    assert!(reply.contains("<retval>1</retval>"), "{reply}");
    assert_eq!(api.post("/messages?user_id=1001", attach).await.0, 200);

    let (_, slot) = api.call(reqwest::Method::POST, "/uploads?type=image", None).await;
    let form =
        reqwest::multipart::Form::new().part("data", reqwest::multipart::Part::bytes(vec![1u8; 64]).file_name("a.png"));
    let photos: Value =
        api.http.post(slot["url"].as_str().unwrap()).multipart(form).send().await.unwrap().json().await.unwrap();
    // The upload reply is itself a valid image payload.
    let attach = json!({"attachments": [{"type": "image", "payload": photos}]});
    tokio::time::sleep(Duration::from_millis(500)).await; // per-chat rate
    assert_eq!(api.post("/messages?user_id=1001", attach).await.0, 200);
}

#[tokio::test]
async fn a_file_is_the_only_attachment_besides_a_keyboard() {
    let api = Api::start().await;
    api.sim.set_processing_time(Duration::ZERO);
    api.sim.set_limits(false);
    api.sim.user(TOKEN, 1001, "Ann");
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let (_, slot) = api.call(reqwest::Method::POST, "/uploads?type=file", None).await;
        let form = reqwest::multipart::Form::new()
            .part("data", reqwest::multipart::Part::bytes(vec![7u8; 8]).file_name("f.txt"));
        let r: Value =
            api.http.post(slot["url"].as_str().unwrap()).multipart(form).send().await.unwrap().json().await.unwrap();
        tokens.push(r["token"].as_str().unwrap().to_string());
    }
    let file = |t: &str| json!({"type": "file", "payload": {"token": t}});
    let keyboard = json!({"type": "inline_keyboard", "payload": {"buttons": [[{"type": "callback", "text": "OK", "payload": "ok"}]]}});
    let two = api.post("/messages?user_id=1001", json!({"attachments": [file(&tokens[0]), file(&tokens[1])]})).await;
    assert_error(&two, 400, "proto.payload");
    let with_keyboard = api.post("/messages?user_id=1001", json!({"attachments": [file(&tokens[0]), keyboard]})).await;
    assert_eq!(with_keyboard.0, 200, "{}", with_keyboard.1);
}

#[tokio::test]
async fn keyboards_are_held_to_the_platform_limits() {
    let api = Api::start().await;
    api.sim.set_limits(false);
    api.sim.user(TOKEN, 1001, "Ann");
    let send = |buttons: Value| {
        let api = &api;
        async move {
            api.post(
                "/messages?user_id=1001",
                json!({"text": "pick", "attachments": [{"type": "inline_keyboard", "payload": {"buttons": buttons}}]}),
            )
            .await
        }
    };
    let cb = |i: usize| json!({"type": "callback", "text": format!("b{i}"), "payload": format!("p{i}")});
    let link = |i: usize| json!({"type": "link", "text": format!("l{i}"), "url": "https://okno.example/x"});
    assert_eq!(send(json!([(0..7).map(cb).collect::<Vec<_>>()])).await.0, 200);
    assert_error(&send(json!([(0..8).map(cb).collect::<Vec<_>>()])).await, 400, "proto.payload");
    assert_eq!(send(json!([(0..3).map(link).collect::<Vec<_>>()])).await.0, 200);
    assert_error(&send(json!([(0..4).map(link).collect::<Vec<_>>()])).await, 400, "proto.payload");
    let rows: Vec<Value> = (0..31).map(|i| json!([cb(i)])).collect();
    assert_error(&send(json!(rows)).await, 400, "proto.payload");
    let many: Vec<Value> = (0..30).map(|r| json!((0..7).map(|i| cb(r * 7 + i)).collect::<Vec<_>>())).collect();
    assert_eq!(send(json!(many)).await.0, 200, "210 buttons are the most");
    let long_payload = json!([[{"type": "callback", "text": "x", "payload": "p".repeat(1025)}]]);
    assert_error(&send(long_payload).await, 400, "proto.payload");
    let long_text = json!([[{"type": "callback", "text": "t".repeat(129), "payload": "p"}]]);
    assert_error(&send(long_text).await, 400, "proto.payload");
    let contact = json!([[{"type": "request_contact", "text": "Share phone"}]]);
    assert_eq!(send(contact).await.0, 200);
}

#[tokio::test]
async fn a_button_press_is_a_message_callback_answered_through_answers() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    let keyboard = json!({"type": "inline_keyboard", "payload": {"buttons": [[{"type": "callback", "text": "Yes", "payload": "yes"}]]}});
    let (_, sent) = api.post("/messages?user_id=1001", json!({"text": "Confirm?", "attachments": [keyboard]})).await;
    let mid = sent["message"]["body"]["mid"].as_str().unwrap().to_string();
    let callback_id = ann.press(&mid, "yes");

    let (_, page) = api.get("/updates?timeout=0").await;
    let u = &page["updates"][0];
    assert_eq!(u["update_type"], "message_callback");
    assert_eq!(u["callback"]["callback_id"], callback_id);
    assert_eq!(u["callback"]["payload"], "yes");
    assert_eq!(u["callback"]["user"]["user_id"], 1001);
    assert_eq!(u["message"]["body"]["mid"], mid);

    assert_error(&api.post(&format!("/answers?callback_id={callback_id}"), json!({})).await, 400, "proto.payload");
    tokio::time::sleep(Duration::from_millis(600)).await; // per-chat rate
    let answer = json!({"notification": "Saved", "message": {"text": "Confirmed", "attachments": []}});
    let (status, r) = api.post(&format!("/answers?callback_id={callback_id}"), answer).await;
    assert_eq!((status, r), (200, json!({"success": true})));
    let answers = api.sim.callback_answers(TOKEN);
    assert_eq!(answers[0].notification.as_deref(), Some("Saved"));
    let now = api.sim.message(TOKEN, &mid).unwrap();
    assert_eq!(now["body"]["text"], "Confirmed");
    assert!(now["body"].get("attachments").is_none(), "an empty list removes the keyboard");
}

#[tokio::test]
async fn thirty_calls_a_second_pass_and_the_31st_is_429_too_many_requests() {
    let api = Api::start().await;
    let mut statuses = Vec::new();
    for _ in 0..31 {
        statuses.push(api.get("/me").await);
    }
    assert!(statuses[..30].iter().all(|(s, _)| *s == 200));
    assert_error(&statuses[30], 429, "too.many.requests");
    assert!(statuses[30].1["message"].as_str().unwrap().starts_with("Too many requests. Limit is:"));
    assert_eq!(api.sim.rate_limited(TOKEN), 1);

    api.sim.set_limits(false);
    for _ in 0..50 {
        assert_eq!(api.get("/me").await.0, 200);
    }
}

#[tokio::test]
async fn the_third_send_into_one_chat_within_a_second_is_429() {
    let api = Api::start().await;
    api.sim.user(TOKEN, 1001, "Ann");
    api.sim.user(TOKEN, 1002, "Bob");
    assert_eq!(api.post("/messages?user_id=1001", json!({"text": "1"})).await.0, 200);
    assert_eq!(api.post("/messages?user_id=1001", json!({"text": "2"})).await.0, 200);
    assert_error(&api.post("/messages?user_id=1001", json!({"text": "3"})).await, 429, "too.many.requests");
    assert_eq!(
        api.post("/messages?user_id=1002", json!({"text": "1"})).await.0,
        200,
        "another chat has its own budget"
    );
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(api.post("/messages?user_id=1001", json!({"text": "3"})).await.0, 200, "the bucket refills at 2/s");
}

#[tokio::test]
async fn injected_faults_answer_the_next_calls_then_it_works() {
    let api = Api::start().await;
    api.sim.fail_next(TOKEN, Fault::Status(503));
    api.sim.fail_next(TOKEN, Fault::RateLimited);
    assert_error(&api.get("/me").await, 503, "service.unavailable");
    assert_error(&api.get("/me").await, 429, "too.many.requests");
    assert_eq!(api.get("/me").await.0, 200);
    assert_eq!(api.sim.calls(TOKEN, "GET /me"), 3);
}

#[tokio::test]
async fn the_bot_edits_and_deletes_its_messages_and_reads_them_back() {
    let api = Api::start().await;
    api.sim.set_limits(false);
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    let (_, sent) = api.post("/messages?user_id=1001", json!({"text": "<b>draft</b>", "format": "html"})).await;
    let mid = sent["message"]["body"]["mid"].as_str().unwrap().to_string();
    let (status, r) =
        api.call(reqwest::Method::PUT, &format!("/messages?message_id={mid}"), Some(json!({"text": "final"}))).await;
    assert_eq!((status, r), (200, json!({"success": true})));
    let (_, got) = api.get(&format!("/messages/{mid}")).await;
    assert_eq!(got["body"]["text"], "final");

    let theirs = ann.send_text("mine");
    let edit_theirs =
        api.call(reqwest::Method::PUT, &format!("/messages?message_id={theirs}"), Some(json!({"text": "x"}))).await;
    assert_eq!(edit_theirs.0, 403);
    let (status, _) = api.call(reqwest::Method::DELETE, &format!("/messages?message_id={mid}"), None).await;
    assert_eq!(status, 200);
    assert_error(&api.get(&format!("/messages/{mid}")).await, 404, "not.found");
    let methods: Vec<String> = api.sim.sent(TOKEN).into_iter().map(|s| s.method).collect();
    assert_eq!(methods, ["POST /messages", "PUT /messages", "DELETE /messages"]);
    assert_eq!(api.sim.sent(TOKEN)[0].format.as_deref(), Some("html"));
}

#[tokio::test]
async fn a_replayed_update_is_byte_for_byte_the_same() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    let group = api.sim.group(TOKEN, -5000);
    group.send_text(&ann, "in the group");
    api.sim.replay_last_update(TOKEN);
    let (_, first) = api.get("/updates?timeout=0&marker=0").await;
    let updates = first["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0], updates[1]);
    assert_eq!(updates[0]["message"]["recipient"], json!({"chat_id": -5000, "chat_type": "chat"}));
}
