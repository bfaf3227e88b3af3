//! The simulator tested from the outside, over real HTTP, the way okno talks to it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use okno_telegram_sim::TelegramSim;
use serde_json::{json, Value};

const TOKEN: &str = "123456:AAH-test_token";

/// A status, a JSON body and the headers of one answer.
struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn description(&self) -> &str {
        self.body["description"].as_str().unwrap_or("")
    }

    fn assert_error(&self, code: u16, description: &str) {
        assert_eq!(self.status, code, "HTTP status of {}", self.body);
        assert_eq!(self.body["ok"], false, "{}", self.body);
        assert_eq!(self.body["error_code"], code, "{}", self.body);
        assert_eq!(self.description(), description, "{}", self.body);
    }

    fn assert_ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.body);
        assert_eq!(self.body["ok"], true, "{}", self.body);
        &self.body["result"]
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body: Value = response.json().await.expect("a JSON body");
    Answer { status, body, headers }
}

async fn setup() -> (TelegramSim, reqwest::Client) {
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "hub_bot");
    (sim, reqwest::Client::new())
}

fn url(sim: &TelegramSim, method: &str) -> String {
    format!("{}/bot{TOKEN}/{method}", sim.api_base())
}

/// POSTs a JSON body.
async fn call(http: &reqwest::Client, sim: &TelegramSim, method: &str, body: Value) -> Answer {
    answer(http.post(url(sim, method)).json(&body).send().await.unwrap()).await
}

/// One multipart part: name, `Some((file name, content type))` for a file part, data.
type Part<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [u8]);

/// A multipart body and its content type.
fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "----okno-telegram-sim-7d9a01";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let head = match file {
            Some((file_name, mime)) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: {mime}\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn send_text(http: &reqwest::Client, sim: &TelegramSim, chat_id: i64, text: &str) -> Answer {
    call(http, sim, "sendMessage", json!({"chat_id": chat_id, "text": text})).await
}

#[tokio::test]
async fn the_envelope_and_auth_errors_use_telegrams_exact_strings() {
    let (sim, http) = setup().await;
    let me = call(&http, &sim, "getMe", json!({})).await;
    let result = me.assert_ok();
    assert_eq!(result["id"], 123456);
    assert_eq!(result["is_bot"], true);
    assert_eq!(result["username"], "hub_bot");

    let bad_format = format!("{}/botnocolon/getMe", sim.api_base());
    answer(http.get(bad_format).send().await.unwrap()).await.assert_error(401, "Unauthorized: invalid token specified");
    let unknown = format!("{}/bot999:unknown/getMe", sim.api_base());
    answer(http.get(unknown).send().await.unwrap()).await.assert_error(401, "Unauthorized");
    call(&http, &sim, "sendMessagez", json!({})).await.assert_error(404, "Not Found: method not found");
    call(&http, &sim, "sendMessage", json!({"text": "hi"})).await.assert_error(400, "Bad Request: chat_id is empty");
    send_text(&http, &sim, 42, "hi").await.assert_error(400, "Bad Request: chat not found");
    call(&http, &sim, "getFile", json!({})).await.assert_error(400, "Bad Request: parameter \"file_id\" is required");
    assert_eq!(sim.calls(TOKEN, "SENDMESSAGE"), 2);
}

#[tokio::test]
async fn methods_are_case_insensitive_and_read_query_form_json_and_multipart() {
    let (sim, http) = setup().await;
    sim.set_limits(false); // four sends to one chat in a row
    let ann = sim.user(TOKEN, 7001, "Ann");
    let keyboard = r#"{"inline_keyboard":[[{"text":"Yes","callback_data":"yes"}]]}"#;

    let get = http
        .get(format!("{}/bot{TOKEN}/SENDMESSAGE", sim.api_base()))
        .query(&[("chat_id", "7001"), ("text", "via query")])
        .send()
        .await
        .unwrap();
    answer(get).await.assert_ok();

    let form = http
        .post(url(&sim, "sendmessage"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "chat_id=7001&text=via+form%21&reply_markup={}",
            keyboard.replace('{', "%7B").replace('}', "%7D").replace('"', "%22")
        ))
        .send()
        .await
        .unwrap();
    let form = answer(form).await;
    assert_eq!(form.assert_ok()["reply_markup"]["inline_keyboard"][0][0]["text"], "Yes");

    let json_body = call(
        &http,
        &sim,
        "sendMessage",
        json!({"chat_id": 7001, "text": "via json", "reply_markup": {"inline_keyboard": [[{"text":"No","callback_data":"no"}]]}}),
    )
    .await;
    let message = json_body.assert_ok();
    assert_eq!(message["chat"], json!({"id": 7001, "first_name": "Ann", "type": "private"}));
    assert_eq!(message["from"]["is_bot"], true);

    let (content_type, body) = multipart(&[
        ("chat_id", None, b"7001"),
        ("text", None, b"via multipart"),
        ("reply_markup", None, keyboard.as_bytes()),
    ]);
    let mp = http.post(url(&sim, "sendMessage")).header("content-type", content_type).body(body).send().await.unwrap();
    answer(mp).await.assert_ok();

    let sent = sim.sent_to(TOKEN, ann.id());
    let texts: Vec<&str> = sent.iter().map(|s| s.text.as_deref().unwrap()).collect();
    assert_eq!(texts, vec!["via query", "via form!", "via json", "via multipart"]);
    let ids: Vec<i64> = sent.iter().map(|s| s.message_id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "message ids increase: {ids:?}");
    assert_eq!(sent[1].reply_markup.as_ref().unwrap()["inline_keyboard"][0][0]["callback_data"], "yes");
}

#[tokio::test]
async fn get_updates_returns_user_messages_and_the_offset_confirms_them() {
    let (sim, http) = setup().await;
    let ann = sim.user(TOKEN, 7001, "Ann");
    let first = ann.send_text("/start ref42");
    ann.send_text("hello");
    ann.reply(first, "replying");
    assert_eq!(sim.pending_updates(TOKEN), 3);

    let got = call(&http, &sim, "getUpdates", json!({"timeout": 0})).await;
    let updates = got.assert_ok().as_array().unwrap().clone();
    assert_eq!(updates.len(), 3);
    let ids: Vec<i64> = updates.iter().map(|u| u["update_id"].as_i64().unwrap()).collect();
    assert!(ids[0] > 0 && ids[1] == ids[0] + 1 && ids[2] == ids[1] + 1, "{ids:?}");
    let start = &updates[0]["message"];
    assert_eq!(start["text"], "/start ref42");
    assert_eq!(start["entities"], json!([{"offset":0,"length":6,"type":"bot_command"}]));
    assert_eq!(start["from"]["first_name"], "Ann");
    assert_eq!(updates[2]["message"]["reply_to_message"]["message_id"], first);

    let limited = call(&http, &sim, "getUpdates", json!({"limit": 1})).await;
    assert_eq!(limited.assert_ok().as_array().unwrap().len(), 1);

    // Confirming the first two leaves one.
    let rest = call(&http, &sim, "getUpdates", json!({"offset": ids[2]})).await;
    assert_eq!(rest.assert_ok()[0]["update_id"], ids[2]);
    assert_eq!(sim.pending_updates(TOKEN), 1);
    let none = call(&http, &sim, "getUpdates", json!({"offset": ids[2] + 1})).await;
    assert_eq!(none.assert_ok(), &json!([]));
    assert_eq!(sim.pending_updates(TOKEN), 0);

    ann.send_text("later");
    let later = call(&http, &sim, "getUpdates", json!({"offset": ids[2] + 1})).await;
    assert_eq!(later.assert_ok()[0]["update_id"], ids[2] + 1, "ids keep increasing");
}

#[tokio::test]
async fn a_long_poll_is_answered_as_soon_as_an_update_arrives() {
    let (sim, http) = setup().await;
    let ann = sim.user(TOKEN, 7001, "Ann");
    let started = Instant::now();
    let poll = tokio::spawn({
        let (http, sim) = (http.clone(), sim.clone());
        async move { call(&http, &sim, "getUpdates", json!({"timeout": 20})).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the poll parks while there is nothing");
    ann.send_text("wake up");
    let got = poll.await.unwrap();
    assert_eq!(got.assert_ok()[0]["message"]["text"], "wake up");
    assert!(started.elapsed() < Duration::from_secs(10), "did not wait for the timeout");

    // With nothing to deliver, a short timeout ends with an empty list.
    let empty = call(
        &http,
        &sim,
        "getUpdates",
        json!({"offset": got.body["result"][0]["update_id"].as_i64().unwrap() + 1, "timeout": 1}),
    )
    .await;
    assert_eq!(empty.assert_ok(), &json!([]));
}

#[tokio::test]
async fn second_get_updates_terminates_the_first_with_409() {
    let (sim, http) = setup().await;
    let first = tokio::spawn({
        let (http, sim) = (http.clone(), sim.clone());
        async move { call(&http, &sim, "getUpdates", json!({"timeout": 30})).await }
    });
    while sim.calls(TOKEN, "getUpdates") < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = call(&http, &sim, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(second.assert_ok(), &json!([]));
    let first =
        tokio::time::timeout(Duration::from_secs(10), first).await.expect("the first poll is ended at once").unwrap();
    first.assert_error(
        409,
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    );
}

#[tokio::test]
async fn get_updates_while_a_webhook_is_set_is_a_conflict() {
    let (sim, http) = setup().await;
    call(&http, &sim, "setWebhook", json!({"url": "http://127.0.0.1:9/hook"})).await.assert_ok();
    call(&http, &sim, "getUpdates", json!({})).await.assert_error(
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
    );
    let deleted = call(&http, &sim, "deleteWebhook", json!({})).await;
    deleted.assert_ok();
    assert_eq!(deleted.description(), "Webhook was deleted");
    call(&http, &sim, "getUpdates", json!({})).await.assert_ok();
}

/// A webhook receiver that fails its first `fail_first` requests with 500.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    fail_first: Arc<Mutex<usize>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    r.seen.lock().unwrap().push((headers, value));
    let mut fail = r.fail_first.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

async fn start_receiver(fail_first: usize) -> (Receiver, String) {
    let receiver = Receiver::default();
    *receiver.fail_first.lock().unwrap() = fail_first;
    let app = Router::new().route("/hook", post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, format!("http://{addr}/hook"))
}

#[tokio::test]
async fn a_webhook_gets_each_update_in_order_with_the_secret_header_and_failures_are_retried() {
    let (sim, http) = setup().await;
    let (receiver, hook) = start_receiver(1).await;
    let ann = sim.user(TOKEN, 7001, "Ann");
    ann.send_text("before the webhook");

    let set = call(
        &http,
        &sim,
        "setWebhook",
        json!({"url": hook, "secret_token": "s3cr3t_-X", "allowed_updates": ["message", "callback_query"]}),
    )
    .await;
    assert_eq!(set.assert_ok(), &json!(true));
    assert_eq!(set.description(), "Webhook was set");
    let again = call(&http, &sim, "setWebhook", json!({"url": hook, "secret_token": "s3cr3t_-X"})).await;
    assert_eq!(again.description(), "Webhook is already set");
    let info = sim.webhook(TOKEN).unwrap();
    assert_eq!(info.url, hook);
    assert_eq!(info.secret_token.as_deref(), Some("s3cr3t_-X"));
    assert_eq!(info.allowed_updates, Some(vec!["message".to_string(), "callback_query".to_string()]));

    ann.send_text("after the webhook");
    ann.block(); // my_chat_member is not among allowed_updates: never queued

    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.pending_updates(TOKEN) > 0 {
        assert!(Instant::now() < deadline, "updates were not delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = receiver.seen.lock().unwrap().clone();
    // The first attempt failed with 500 and was retried.
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0].1, seen[1].1);
    let texts: Vec<&str> = seen[1..].iter().map(|(_, v)| v["message"]["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["before the webhook", "after the webhook"]);
    for (headers, _) in &seen {
        assert_eq!(headers["x-telegram-bot-api-secret-token"], "s3cr3t_-X");
        assert_eq!(headers["content-type"], "application/json");
    }

    let info = call(&http, &sim, "getWebhookInfo", json!({})).await;
    let info = info.assert_ok();
    assert_eq!(info["url"], hook.as_str());
    assert_eq!(info["pending_update_count"], 0);
    assert!(info["last_error_message"].as_str().unwrap().contains("500"));
}

#[tokio::test]
async fn set_webhook_checks_the_secret_token_and_the_url() {
    let (sim, http) = setup().await;
    call(&http, &sim, "setWebhook", json!({"url": "http://127.0.0.1:9/h", "secret_token": "has space"}))
        .await
        .assert_error(400, "Bad Request: secret token contains unallowed characters");
    call(&http, &sim, "setWebhook", json!({"url": "http://127.0.0.1:9/h", "secret_token": "a".repeat(257)}))
        .await
        .assert_error(400, "Bad Request: secret token is too long");
    call(&http, &sim, "setWebhook", json!({"url": "not a url"}))
        .await
        .assert_error(400, "Bad Request: invalid webhook URL specified");
    let info = call(&http, &sim, "getWebhookInfo", json!({})).await;
    assert_eq!(info.assert_ok()["url"], "");
    assert!(sim.webhook(TOKEN).is_none());
}

#[tokio::test]
async fn html_is_validated_and_length_is_measured_after_tag_removal() {
    let (sim, http) = setup().await;
    sim.set_limits(false);
    sim.user(TOKEN, 7001, "Ann");
    let send = |text: String, mode: &'static str| {
        let (http, sim) = (http.clone(), sim.clone());
        async move { call(&http, &sim, "sendMessage", json!({"chat_id": 7001, "text": text, "parse_mode": mode})).await }
    };

    let good = send(
        "<b>Order</b> #1 &amp; <i>more</i> <a href=\"https://x.org\">link</a> <code>x</code> &lt;3".into(),
        "HTML",
    )
    .await;
    let message = good.assert_ok();
    assert_eq!(message["text"], "Order #1 & more link x <3");
    assert_eq!(message["entities"][0], json!({"type":"bold","offset":0,"length":5}));
    assert_eq!(sim.sent(TOKEN)[0].plain.as_deref(), Some("Order #1 & more link x <3"));

    send("<b>x".into(), "HTML")
        .await
        .assert_error(400, "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\"");
    send("a < b".into(), "HTML")
        .await
        .assert_error(400, "Bad Request: can't parse entities: Unsupported start tag \"\" at byte offset 2");
    send("<foo>x</foo>".into(), "html")
        .await
        .assert_error(400, "Bad Request: can't parse entities: Unsupported start tag \"foo\" at byte offset 0");
    let bare_amp = send("fish & chips".into(), "HTML").await;
    assert_eq!(bare_amp.status, 400);
    assert!(bare_amp.description().starts_with("Bad Request: can't parse entities: "));

    // 4096 visible characters pass although the raw text is longer; 4097 do not.
    let fits = format!("<b>{}</b>", "a".repeat(4096));
    send(fits, "HTML").await.assert_ok();
    let too_long = format!("<b>{}</b>", "a".repeat(4097));
    send(too_long, "HTML").await.assert_error(400, "Bad Request: message is too long");
    // Without parse_mode the tags are text and count.
    send(format!("<b>{}</b>", "a".repeat(4090)), "").await.assert_error(400, "Bad Request: message is too long");
    // Length is in UTF-16 code units: 2049 emoji are 4098 units.
    send("🏟".repeat(2049), "").await.assert_error(400, "Bad Request: message is too long");
    send("<b></b>".into(), "HTML").await.assert_error(400, "Bad Request: message text is empty");
    send("a".repeat(32769), "").await.assert_error(400, "Bad Request: text is too long");
    send("x".into(), "BBCode").await.assert_error(400, "Bad Request: unsupported parse_mode");
}

#[tokio::test]
async fn markdown_v2_reserved_characters_must_be_escaped() {
    let (sim, http) = setup().await;
    sim.user(TOKEN, 7001, "Ann");
    call(&http, &sim, "sendMessage", json!({"chat_id": 7001, "text": "Total: 5.00", "parse_mode": "MarkdownV2"}))
        .await
        .assert_error(
            400,
            "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'",
        );
    let ok = call(
        &http,
        &sim,
        "sendMessage",
        json!({"chat_id": 7001, "text": "*Total:* 5\\.00", "parse_mode": "MarkdownV2"}),
    )
    .await;
    assert_eq!(ok.assert_ok()["text"], "Total: 5.00");
}

#[tokio::test]
async fn callback_data_of_65_bytes_is_button_data_invalid() {
    let (sim, http) = setup().await;
    sim.user(TOKEN, 7001, "Ann");
    let markup =
        |button: Value| json!({"chat_id": 7001, "text": "pick", "reply_markup": {"inline_keyboard": [[button]]}});
    call(&http, &sim, "sendMessage", markup(json!({"text": "x", "callback_data": "d".repeat(65)})))
        .await
        .assert_error(400, "Bad Request: BUTTON_DATA_INVALID");
    // 64 bytes are fine; bytes, not characters: 32 Cyrillic letters are 64 bytes, 33 are not.
    call(&http, &sim, "sendMessage", markup(json!({"text": "x", "callback_data": "ж".repeat(32)}))).await.assert_ok();
    call(&http, &sim, "sendMessage", markup(json!({"text": "x", "callback_data": "ж".repeat(33)})))
        .await
        .assert_error(400, "Bad Request: BUTTON_DATA_INVALID");
    call(&http, &sim, "sendMessage", markup(json!({"text": "x"}))).await.assert_error(
        400,
        "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
    );
    call(&http, &sim, "sendMessage", json!({"chat_id": 7001, "text": "pick", "reply_markup": "{not json"}))
        .await
        .assert_error(400, "Bad Request: can't parse reply keyboard markup JSON object");
    let reply_keyboard = call(
        &http,
        &sim,
        "sendMessage",
        json!({"chat_id": 7001, "text": "share", "reply_markup": {"keyboard": [[{"text": "Share phone", "request_contact": true}]], "one_time_keyboard": true}}),
    )
    .await;
    assert!(reply_keyboard.assert_ok().get("reply_markup").is_none(), "only inline keyboards are part of a Message");
}

#[tokio::test]
async fn a_private_chat_gets_429_after_a_burst_of_three() {
    let (sim, http) = setup().await;
    sim.user(TOKEN, 7001, "Ann");
    for i in 0..3 {
        send_text(&http, &sim, 7001, &format!("burst {i}")).await.assert_ok();
    }
    let limited = send_text(&http, &sim, 7001, "one too many").await;
    limited.assert_error(429, "Too Many Requests: retry after 1");
    assert_eq!(limited.body["parameters"], json!({"retry_after": 1}));
    assert_eq!(limited.headers["retry-after"], "1");
    assert_eq!(sim.rate_limited(TOKEN), 1);
    assert_eq!(sim.sent(TOKEN).len(), 3, "a refused call is not recorded");

    // After the advertised wait the chat may send again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send_text(&http, &sim, 7001, "after waiting").await.assert_ok();

    // Other chats have their own bucket.
    sim.user(TOKEN, 7002, "Bob");
    send_text(&http, &sim, 7002, "hi Bob").await.assert_ok();

    sim.set_limits(false);
    for i in 0..10 {
        send_text(&http, &sim, 7001, &format!("unlimited {i}")).await.assert_ok();
    }
    assert_eq!(sim.rate_limited(TOKEN), 1);
}

#[tokio::test]
async fn multipart_photo_upload_is_recorded() {
    let (sim, http) = setup().await;
    sim.user(TOKEN, 7001, "Ann");
    let jpeg: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let (content_type, body) = multipart(&[
        ("chat_id", None, b"7001"),
        ("caption", None, b"<b>Invoice</b> attached"),
        ("parse_mode", None, b"HTML"),
        ("photo", Some(("invoice.jpg", "image/jpeg")), &jpeg),
    ]);
    let sent = http.post(url(&sim, "sendPhoto")).header("content-type", content_type).body(body).send().await.unwrap();
    let sent = answer(sent).await;
    let message = sent.assert_ok();
    let sizes = message["photo"].as_array().unwrap();
    assert_eq!(sizes.len(), 3);
    assert!(sizes[0]["file_size"].as_u64() < sizes[2]["file_size"].as_u64());
    assert_eq!(message["caption"], "Invoice attached");
    assert_eq!(message["caption_entities"][0]["type"], "bold");

    let recorded = sim.sent(TOKEN);
    assert_eq!(recorded.len(), 1);
    let file = recorded[0].file.as_ref().unwrap();
    assert_eq!(recorded[0].method, "sendPhoto");
    assert_eq!(file.field, "photo");
    assert_eq!(file.name, "invoice.jpg");
    assert_eq!(file.mime, "image/jpeg");
    assert_eq!(file.bytes, jpeg);
    assert_eq!(recorded[0].caption.as_deref(), Some("<b>Invoice</b> attached"));
    assert_eq!(recorded[0].plain.as_deref(), Some("Invoice attached"));

    let (content_type, body) = multipart(&[("chat_id", None, b"7001")]);
    let missing =
        http.post(url(&sim, "sendPhoto")).header("content-type", content_type).body(body).send().await.unwrap();
    answer(missing).await.assert_error(400, "Bad Request: there is no photo in the request");
    // Photos are limited to 10 MB.
    let huge = vec![0u8; 10 * 1024 * 1024 + 1];
    let (content_type, body) =
        multipart(&[("chat_id", None, b"7001"), ("photo", Some(("huge.jpg", "image/jpeg")), &huge)]);
    let too_big =
        http.post(url(&sim, "sendPhoto")).header("content-type", content_type).body(body).send().await.unwrap();
    answer(too_big).await.assert_error(400, "Bad Request: file is too big");
    call(&http, &sim, "sendDocument", json!({"chat_id": 7001}))
        .await
        .assert_error(400, "Bad Request: there is no document in the request");
    call(
        &http,
        &sim,
        "sendPhoto",
        json!({"chat_id": 7001, "photo": "https://example.org/a.jpg", "caption": "c".repeat(1025)}),
    )
    .await
    .assert_error(400, "Bad Request: message caption is too long");
}

#[tokio::test]
async fn files_users_send_can_be_fetched_and_big_ones_are_refused() {
    let (sim, http) = setup().await;
    let ann = sim.user(TOKEN, 7001, "Ann");
    ann.send_document(b"%PDF-1.4 hello", "report.pdf", "application/pdf");
    ann.send_big_document("movie.mkv", 25 * 1024 * 1024);
    ann.send_photo(b"not really a jpeg but bytes", Some("look"));
    let updates = call(&http, &sim, "getUpdates", json!({})).await;
    let updates = updates.assert_ok().as_array().unwrap().clone();
    let document = &updates[0]["message"]["document"];
    assert_eq!(document["file_name"], "report.pdf");
    assert_eq!(document["mime_type"], "application/pdf");

    let file = call(&http, &sim, "getFile", json!({"file_id": document["file_id"]})).await;
    let file = file.assert_ok().clone();
    assert_eq!(file["file_size"], 14);
    let path = file["file_path"].as_str().unwrap();
    let bytes =
        http.get(format!("{}/file/bot{TOKEN}/{path}", sim.api_base())).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"%PDF-1.4 hello");

    let big = &updates[1]["message"]["document"];
    assert!(big["file_size"].as_u64().unwrap() > 20 * 1024 * 1024);
    call(&http, &sim, "getFile", json!({"file_id": big["file_id"]}))
        .await
        .assert_error(400, "Bad Request: file is too big");

    let photo = updates[2]["message"]["photo"].as_array().unwrap();
    assert_eq!(photo.len(), 3);
    assert_eq!(updates[2]["message"]["caption"], "look");
    let largest = call(&http, &sim, "getFile", json!({"file_id": photo[2]["file_id"]})).await;
    let path = largest.assert_ok()["file_path"].as_str().unwrap().to_string();
    let bytes =
        http.get(format!("{}/file/bot{TOKEN}/{path}", sim.api_base())).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"not really a jpeg but bytes");
}

#[tokio::test]
async fn blocked_user_gets_403_with_the_exact_string() {
    let (sim, http) = setup().await;
    let ann = sim.user(TOKEN, 7001, "Ann");
    ann.block();
    let updates = call(&http, &sim, "getUpdates", json!({})).await;
    let member = &updates.assert_ok()[0]["my_chat_member"];
    assert_eq!(member["new_chat_member"]["status"], "kicked");
    assert_eq!(member["old_chat_member"]["status"], "member");
    assert_eq!(member["chat"]["id"], 7001);

    send_text(&http, &sim, 7001, "hello?").await.assert_error(403, "Forbidden: bot was blocked by the user");
    ann.unblock();
    send_text(&http, &sim, 7001, "welcome back").await.assert_ok();

    let bob = sim.user(TOKEN, 7002, "Bob");
    bob.deactivate();
    send_text(&http, &sim, 7002, "hello?").await.assert_error(403, "Forbidden: user is deactivated");

    sim.stranger(TOKEN, 7003);
    send_text(&http, &sim, 7003, "hello?")
        .await
        .assert_error(403, "Forbidden: bot can't initiate conversation with a user");
    assert_eq!(sim.sent(TOKEN).len(), 1);
}

#[tokio::test]
async fn group_migration_answers_400_with_migrate_to_chat_id() {
    let (sim, http) = setup().await;
    let ann = sim.user(TOKEN, 7001, "Ann");
    let group = sim.group(TOKEN, -4001, "Team");
    group.send_text(&ann, "hi all");
    send_text(&http, &sim, -4001, "hello group").await.assert_ok();

    group.migrate(-1_001_234_567_890);
    let refused = send_text(&http, &sim, -4001, "still there?").await;
    refused.assert_error(400, "Bad Request: group chat was upgraded to a supergroup chat");
    assert_eq!(refused.body["parameters"], json!({"migrate_to_chat_id": -1_001_234_567_890i64}));
    assert_eq!(group.id(), -1_001_234_567_890);
    send_text(&http, &sim, group.id(), "moved").await.assert_ok();

    let updates = call(&http, &sim, "getUpdates", json!({})).await;
    let updates = updates.assert_ok().as_array().unwrap().clone();
    assert_eq!(updates[0]["message"]["chat"], json!({"id": -4001, "title": "Team", "type": "group"}));
    assert_eq!(updates[0]["message"]["from"]["first_name"], "Ann");
    assert_eq!(updates[1]["message"]["migrate_to_chat_id"], -1_001_234_567_890i64);
    assert_eq!(updates[2]["message"]["migrate_from_chat_id"], -4001);
    assert_eq!(updates[2]["message"]["chat"]["type"], "supergroup");
}

#[tokio::test]
async fn buttons_are_pressed_answered_and_edited() {
    let (sim, http) = setup().await;
    let ann = sim.user(TOKEN, 7001, "Ann");
    let keyboard = json!({"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}, {"text": "Docs", "url": "https://x.org"}]]});
    let sent =
        call(&http, &sim, "sendMessage", json!({"chat_id": 7001, "text": "Pick one", "reply_markup": keyboard})).await;
    let message_id = sent.assert_ok()["message_id"].as_i64().unwrap();

    let query_id = ann.press(message_id, "yes");
    let updates = call(&http, &sim, "getUpdates", json!({})).await;
    let query = &updates.assert_ok()[0]["callback_query"];
    assert_eq!(query["id"], query_id.as_str());
    assert_eq!(query["data"], "yes");
    assert_eq!(query["message"]["message_id"], message_id);
    assert_eq!(query["message"]["reply_markup"], keyboard);
    assert!(query["chat_instance"].is_string());

    call(&http, &sim, "answerCallbackQuery", json!({"callback_query_id": query_id, "text": "Noted"})).await.assert_ok();
    call(&http, &sim, "answerCallbackQuery", json!({"callback_query_id": query_id}))
        .await
        .assert_error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid");
    let answers = sim.callback_answers(TOKEN);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].text.as_deref(), Some("Noted"));
    assert!(answers[0].after < Duration::from_secs(10));

    call(&http, &sim, "editMessageReplyMarkup", json!({"chat_id": 7001, "message_id": message_id, "reply_markup": keyboard}))
        .await
        .assert_error(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message");
    let removed = call(&http, &sim, "editMessageReplyMarkup", json!({"chat_id": 7001, "message_id": message_id})).await;
    assert!(removed.assert_ok().get("reply_markup").is_none());
    call(&http, &sim, "editMessageReplyMarkup", json!({"chat_id": 7001, "message_id": 999}))
        .await
        .assert_error(400, "Bad Request: message to edit not found");

    let edited = call(
        &http,
        &sim,
        "editMessageText",
        json!({"chat_id": 7001, "message_id": message_id, "text": "<i>Done</i>", "parse_mode": "HTML"}),
    )
    .await;
    assert_eq!(edited.assert_ok()["text"], "Done");
    call(&http, &sim, "editMessageText", json!({"chat_id": 7001, "message_id": message_id, "text": "<i>Done</i>", "parse_mode": "HTML"}))
        .await
        .assert_error(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message");
    let methods: Vec<String> = sim.sent(TOKEN).into_iter().map(|s| s.method).collect();
    assert_eq!(methods, vec!["sendMessage", "editMessageReplyMarkup", "editMessageText"]);

    sim.set_callback_timeout(Duration::from_millis(50));
    let late = ann.press(message_id, "yes");
    tokio::time::sleep(Duration::from_millis(200)).await;
    call(&http, &sim, "answerCallbackQuery", json!({"callback_query_id": late}))
        .await
        .assert_error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid");
}

#[tokio::test]
async fn callback_answers_open_only_links_that_start_this_bot() {
    let (sim, http) = setup().await;
    let ann = sim.user(TOKEN, 7001, "Ann").with_username("ann_k");
    let group = sim.group(TOKEN, -4002, "Crew");
    let keyboard = json!({"inline_keyboard": [[{"text": "Take", "callback_data": "take"}]]});
    let sent =
        call(&http, &sim, "sendMessage", json!({"chat_id": -4002, "text": "Job", "reply_markup": keyboard})).await;
    let message_id = sent.assert_ok()["message_id"].as_i64().unwrap();

    // A press handed to the test is not queued, carries the username, and can be answered.
    let update = group.press_update(&ann, message_id, "take");
    assert_eq!(sim.pending_updates(TOKEN), 0);
    assert!(update["update_id"].is_i64());
    assert_eq!(update["callback_query"]["from"]["username"], "ann_k");
    assert_eq!(update["callback_query"]["message"]["chat"]["id"], -4002);
    let query = update["callback_query"]["id"].as_str().unwrap().to_string();
    call(&http, &sim, "answerCallbackQuery", json!({"callback_query_id": query, "url": "https://example.org/"}))
        .await
        .assert_error(400, "Bad Request: URL_INVALID");
    call(
        &http,
        &sim,
        "answerCallbackQuery",
        json!({"callback_query_id": query, "url": "https://t.me/other_bot?start=x"}),
    )
    .await
    .assert_error(400, "Bad Request: URL_INVALID");
    call(
        &http,
        &sim,
        "answerCallbackQuery",
        json!({"callback_query_id": query, "url": "https://t.me/hub_bot?start=task-1"}),
    )
    .await
    .assert_ok();
    let alert = group.press(&ann, message_id, "take");
    call(&http, &sim, "answerCallbackQuery", json!({"callback_query_id": alert, "text": "Taken", "show_alert": true}))
        .await
        .assert_ok();
    let answers = sim.callback_answers(TOKEN);
    assert_eq!(answers[0].url.as_deref(), Some("https://t.me/hub_bot?start=task-1"));
    assert!(!answers[0].show_alert && answers[0].text.is_none());
    assert!(answers[1].show_alert);
    assert_eq!(answers[1].text.as_deref(), Some("Taken"));

    // Telegram refuses to let a bot write first to someone who never started it.
    sim.stranger(TOKEN, 7001);
    send_text(&http, &sim, 7001, "hi")
        .await
        .assert_error(403, "Forbidden: bot can't initiate conversation with a user");
}

#[tokio::test]
async fn replies_actions_and_commands_are_recorded() {
    let (sim, http) = setup().await;
    let ann = sim.user(TOKEN, 7001, "Ann");
    let question = ann.send_text("where is my order?");
    let reply = call(
        &http,
        &sim,
        "sendMessage",
        json!({"chat_id": 7001, "text": "on its way", "reply_parameters": {"message_id": question}}),
    )
    .await;
    assert_eq!(reply.assert_ok()["reply_to_message"]["text"], "where is my order?");
    let legacy = http
        .post(url(&sim, "sendMessage"))
        .form(&[("chat_id", "7001"), ("text", "again"), ("reply_to_message_id", &question.to_string())])
        .send()
        .await
        .unwrap();
    answer(legacy).await.assert_ok();
    call(&http, &sim, "sendMessage", json!({"chat_id": 7001, "text": "x", "reply_parameters": {"message_id": 999}}))
        .await
        .assert_error(400, "Bad Request: message to be replied not found");
    let sent = sim.sent(TOKEN);
    assert_eq!(sent[0].reply_to_message_id, Some(question));
    assert_eq!(sent[1].reply_to_message_id, Some(question));

    call(&http, &sim, "sendChatAction", json!({"chat_id": 7001, "action": "typing"})).await.assert_ok();
    call(&http, &sim, "sendChatAction", json!({"chat_id": 7001, "action": "dancing"}))
        .await
        .assert_error(400, "Bad Request: wrong parameter action in request");
    assert_eq!(sim.chat_actions(TOKEN), vec![(7001, "typing".to_string())]);

    let commands = json!([{"command": "start", "description": "Start"}, {"command": "help", "description": "Help"}]);
    call(&http, &sim, "setMyCommands", json!({"commands": commands})).await.assert_ok();
    assert_eq!(sim.commands(TOKEN), commands);

    let wait = sim.wait_sent(TOKEN, 2, 1).await;
    assert_eq!(wait.len(), 2);
}

#[tokio::test]
#[should_panic(expected = "expected at least 5 sends")]
async fn wait_sent_panics_with_a_clear_message_on_timeout() {
    let (sim, _http) = setup().await;
    sim.wait_sent(TOKEN, 5, 1).await;
}

// --- the client side the demo's phone page plays ---------------------------------------------

#[tokio::test]
async fn a_client_sends_only_what_a_telegram_client_can() {
    use okno_telegram_sim::SimError;
    let (sim, http) = setup().await;
    let user = sim.try_user(TOKEN, 42, "Ann").unwrap();
    assert!(matches!(user.try_send_text("   "), Err(SimError::Invalid(_))));
    assert!(matches!(user.try_send_text(&"я".repeat(4097)), Err(SimError::Invalid(_))));
    assert!(matches!(user.try_reply(999, "hi"), Err(SimError::UnknownMessage { chat_id: 42, message_id: 999 })));
    assert!(matches!(user.try_send_document(b"", "a.pdf", "application/pdf"), Err(SimError::Invalid(_))));
    assert!(matches!(user.try_send_document(b"%PDF", " ", "application/pdf"), Err(SimError::Invalid(_))));
    let menu = call(&http, &sim, "sendMessage",
        json!({"chat_id": 42, "text": "Menu", "reply_markup": {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}}),
    )
    .await;
    let menu_id = menu.assert_ok()["message_id"].as_i64().unwrap();
    assert!(matches!(user.try_press(menu_id, "forged"), Err(SimError::Invalid(_))), "only buttons on the message");
    assert!(matches!(user.try_press(menu_id + 5, "a"), Err(SimError::UnknownMessage { .. })));
    assert!(user.try_press(menu_id, "a").is_ok());
    assert!(matches!(sim.try_user(TOKEN, -1, "Neg"), Err(SimError::Invalid(_))));
    assert!(matches!(sim.try_user("999:unknown", 1, "X"), Err(SimError::UnknownBot(_))));
    assert!(matches!(sim.try_group(TOKEN, 5, "Not a group"), Err(SimError::Invalid(_))));
    assert!(matches!(sim.try_add_bot("not-a-token", "x_bot"), Err(SimError::Invalid(_))));
    assert!(matches!(sim.try_add_bot("77:abc", "no"), Err(SimError::Invalid(_))));
    assert!(matches!(sim.timeline(TOKEN, 7), Err(SimError::UnknownChat(7))));
    // The bot saw exactly the one valid press and nothing of the refused attempts.
    assert_eq!(sim.pending_updates(TOKEN), 1);
    let shown = SimError::UnknownBot("999:secret-part".into()).to_string();
    assert!(!shown.contains("secret-part"), "a token's secret is never shown: {shown}");
}

#[tokio::test]
async fn a_chat_timeline_has_both_sides_edits_presses_and_the_reply_keyboard() {
    let (sim, http) = setup().await;
    sim.set_limits(false);
    let user = sim.try_user(TOKEN, 42, "Ann").unwrap();
    let mut activity = sim.activity();
    let hello = user.try_send_text("/start").unwrap();
    assert!(activity.has_changed().unwrap(), "watchers hear of a new message");
    activity.borrow_and_update();
    let menu = call(
        &http,
        &sim,
        "sendMessage",
        json!({"chat_id": 42, "text": "<b>Menu</b>", "parse_mode": "HTML",
               "reply_markup": {"inline_keyboard": [[{"text": "Pick", "callback_data": "pick"}]]}}),
    )
    .await;
    let menu_id = menu.assert_ok()["message_id"].as_i64().unwrap();
    let press = user.try_press(menu_id, "pick").unwrap();
    call(&http, &sim, "answerCallbackQuery", json!({"callback_query_id": press, "text": "Done"})).await.assert_ok();
    call(&http, &sim, "editMessageText", json!({"chat_id": 42, "message_id": menu_id, "text": "Picked"}))
        .await
        .assert_ok();
    assert!(activity.has_changed().unwrap(), "watchers hear of the edit");

    let timeline = sim.timeline(TOKEN, 42).unwrap();
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    assert_eq!((timeline[0]["message_id"].as_i64(), timeline[0]["text"].as_str()), (Some(hello), Some("/start")));
    assert_eq!(timeline[0]["from"]["is_bot"], false);
    assert_eq!(timeline[1]["text"], "Picked", "the edit is applied");
    assert!(timeline[1]["edit_date"].is_i64());
    assert!(timeline[1].get("reply_markup").is_none(), "an edit without markup removed the keyboard");
    let presses = sim.presses(TOKEN, 42).unwrap();
    assert_eq!(presses.len(), 1);
    assert_eq!((presses[0].data.as_str(), presses[0].message_id, presses[0].user_id), ("pick", menu_id, 42));
    assert_eq!(presses[0].label, "Pick", "the label as it was when pressed");
    assert_eq!(presses[0].after_message_id, menu_id, "pressed after the menu arrived");
    assert_eq!(presses[0].answer.as_ref().and_then(|a| a.text.as_deref()), Some("Done"));

    // A one-time reply keyboard stays under the input until the person uses it.
    assert_eq!(sim.reply_keyboard(TOKEN, 42).unwrap(), None);
    let keyboard = json!({"keyboard": [[{"text": "Yes"}, {"text": "No"}]], "one_time_keyboard": true});
    call(&http, &sim, "sendMessage", json!({"chat_id": 42, "text": "Sure?", "reply_markup": keyboard}))
        .await
        .assert_ok();
    assert_eq!(sim.reply_keyboard(TOKEN, 42).unwrap().unwrap()["keyboard"][0][1]["text"], "No");
    user.try_send_text("Yes").unwrap();
    assert_eq!(sim.reply_keyboard(TOKEN, 42).unwrap(), None, "used once, hidden");
    let lasting = json!({"keyboard": [[{"text": "Menu"}]]});
    call(&http, &sim, "sendMessage", json!({"chat_id": 42, "text": "Here", "reply_markup": lasting})).await.assert_ok();
    user.try_send_text("Menu").unwrap();
    assert!(sim.reply_keyboard(TOKEN, 42).unwrap().is_some(), "a lasting keyboard stays");
    call(&http, &sim, "sendMessage", json!({"chat_id": 42, "text": "Bye", "reply_markup": {"remove_keyboard": true}}))
        .await
        .assert_ok();
    assert_eq!(sim.reply_keyboard(TOKEN, 42).unwrap(), None, "removed by the bot");

    // Files the person or the bot sent can be read back by file_id.
    let doc = user.try_send_document(b"%PDF-1.4 scan", "scan.pdf", "application/pdf").unwrap();
    let stored = sim.timeline(TOKEN, 42).unwrap().into_iter().find(|m| m["message_id"] == doc).unwrap();
    let file_id = stored["document"]["file_id"].as_str().unwrap();
    let file = sim.file(TOKEN, file_id).unwrap().unwrap();
    assert_eq!((&file.bytes[..], file.name.as_deref()), (&b"%PDF-1.4 scan"[..], Some("scan.pdf")));
    assert!(sim.file(TOKEN, "nope").unwrap().is_none());
    assert!(sim.started(TOKEN, 42).unwrap());
    sim.stranger(TOKEN, 43);
    assert!(!sim.started(TOKEN, 43).unwrap(), "a stranger has not pressed Start");
}

#[tokio::test]
async fn with_a_retention_the_newest_records_presses_and_files_are_kept() {
    let (sim, http) = setup().await;
    sim.set_retention(okno_telegram_sim::Retention { sent: 2, presses: 2, file_bytes: 10 });
    sim.set_limits(false);
    let ann = sim.user(TOKEN, 7001, "Ann");
    let keyboard = json!({"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]});
    let mut ids = Vec::new();
    for n in 1..=3 {
        let sent = call(
            &http,
            &sim,
            "sendMessage",
            json!({"chat_id": 7001, "text": format!("Pick {n}"), "reply_markup": keyboard}),
        )
        .await;
        ids.push(sent.assert_ok()["message_id"].as_i64().unwrap());
    }
    let texts: Vec<String> = sim.sent(TOKEN).into_iter().filter_map(|s| s.plain).collect();
    assert_eq!(texts, ["Pick 2", "Pick 3"], "the newest two records");
    assert_eq!(sim.timeline(TOKEN, 7001).unwrap().len(), 3, "the chat itself keeps its messages");

    let presses: Vec<String> = ids.iter().map(|id| ann.press(*id, "yes")).collect();
    let in_chat: Vec<String> = sim.presses(TOKEN, 7001).unwrap().into_iter().map(|p| p.id).collect();
    assert_eq!(in_chat, presses[1..], "the newest two presses");
    call(&http, &sim, "answerCallbackQuery", json!({"callback_query_id": presses[0]}))
        .await
        .assert_error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid");
    for p in &presses[1..] {
        call(&http, &sim, "answerCallbackQuery", json!({"callback_query_id": p, "text": "ok"})).await.assert_ok();
    }
    assert!(sim.presses(TOKEN, 7001).unwrap().iter().all(|p| p.answer.is_some()), "their answers are kept");

    // Files: 6 + 6 bytes is over 10, so the first is forgotten; the newest stays.
    ann.send_document(b"first!", "a.txt", "text/plain");
    ann.send_document(b"second", "b.txt", "text/plain");
    let updates = call(&http, &sim, "getUpdates", json!({})).await;
    let docs: Vec<Value> =
        updates.assert_ok().as_array().unwrap().iter().filter_map(|u| u["message"].get("document").cloned()).collect();
    call(&http, &sim, "getFile", json!({"file_id": docs[0]["file_id"]}))
        .await
        .assert_error(400, "Bad Request: invalid file_id");
    call(&http, &sim, "getFile", json!({"file_id": docs[1]["file_id"]})).await.assert_ok();
    let second = sim.file(TOKEN, docs[1]["file_id"].as_str().unwrap()).unwrap().unwrap();
    assert_eq!(&second.bytes[..], b"second");

    // The bot's files: the send records hold copies, as many bytes of them.
    for (name, bytes) in [("c.txt", b"third!"), ("d.txt", b"fourth")] {
        let (content_type, body) =
            multipart(&[("chat_id", None, b"7001"), ("document", Some((name, "text/plain")), bytes)]);
        let sent =
            http.post(url(&sim, "sendDocument")).header("content-type", content_type).body(body).send().await.unwrap();
        answer(sent).await.assert_ok();
    }
    let records: Vec<String> = sim.sent(TOKEN).into_iter().filter_map(|s| s.file.map(|f| f.name)).collect();
    assert_eq!(records, ["d.txt"], "6 + 6 bytes is over 10: the newest record alone");
}

#[tokio::test]
async fn a_request_naming_another_host_is_refused() {
    let (sim, http) = setup().await;
    let port = sim.local_addr().port();
    for host in [format!("rebound.example:{port}"), format!("localhost:{port}")] {
        let r = http.post(url(&sim, "getMe")).header("host", host.clone()).send().await.unwrap();
        answer(r).await.assert_error(403, "Forbidden: the simulator answers only at its own address");
    }
    call(&http, &sim, "getMe", json!({})).await.assert_ok();
    assert_eq!(sim.calls(TOKEN, "getMe"), 1, "the refused calls never reached the bot");
}

#[tokio::test]
async fn a_stopped_simulator_ends_a_parked_poll_and_frees_its_port() {
    let (sim, http) = setup().await;
    let poll = tokio::spawn({
        let (http, url) = (http.clone(), url(&sim, "getUpdates"));
        async move { http.post(url).json(&json!({"timeout": 50})).send().await.unwrap().json::<Value>().await.unwrap() }
    });
    // The poll is parked once the bot has seen it.
    while sim.calls(TOKEN, "getUpdates") == 0 {
        tokio::task::yield_now().await;
    }
    assert!(!sim.is_stopping());
    sim.stop();
    assert!(sim.is_stopping());
    assert_eq!(poll.await.unwrap(), json!({"ok": true, "result": []}), "the parked poll is answered");
    sim.stopped().await;
    assert!(tokio::net::TcpStream::connect(sim.local_addr()).await.is_err(), "nothing listens there any more");
}
