//! The simulator tested from the outside, over real HTTP, the way okno talks to it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use okno_vk_sim::{Fault, VkSim};
use serde_json::{json, Value};

const TOKEN: &str = "vk1.a.community-token-okno";
const GROUP: i64 = 229_100_001;

struct Api {
    sim: VkSim,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        let sim = VkSim::start().await;
        sim.add_group(TOKEN, GROUP, "okno shop");
        Api { sim, http: reqwest::Client::new() }
    }

    /// A form-encoded POST with the token and `v`, as VK wants it.
    async fn call(&self, method: &str, params: &[(&str, &str)]) -> Value {
        let mut form: Vec<(&str, &str)> = vec![("access_token", TOKEN), ("v", "5.199")];
        form.extend_from_slice(params);
        let url = format!("{}/method/{method}", self.sim.api_base());
        let r = self.http.post(url).form(&form).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "VK answers errors with HTTP 200 too");
        r.json().await.unwrap()
    }

    async fn send(&self, peer: i64, random_id: i64, text: &str) -> Value {
        self.call(
            "messages.send",
            &[("peer_id", &peer.to_string()), ("random_id", &random_id.to_string()), ("message", text)],
        )
        .await
    }
}

fn error_code(v: &Value) -> i64 {
    v["error"]["error_code"].as_i64().unwrap_or_else(|| panic!("expected an error: {v}"))
}

#[tokio::test]
async fn the_envelope_auth_and_version_errors_are_vks() {
    let api = Api::start().await;
    let ok = api.call("groups.getById", &[]).await;
    assert_eq!(ok["response"]["groups"][0]["id"], GROUP);

    let url = format!("{}/method/groups.getById", api.sim.api_base());
    let no_token: Value = api.http.post(&url).form(&[("v", "5.199")]).send().await.unwrap().json().await.unwrap();
    assert_eq!(error_code(&no_token), 5);
    assert_eq!(no_token["error"]["error_msg"], "User authorization failed: invalid access_token (4).");
    let params = no_token["error"]["request_params"].as_array().unwrap();
    assert!(params.contains(&json!({"key": "method", "value": "groups.getById"})));
    let no_version: Value =
        api.http.post(&url).form(&[("access_token", TOKEN)]).send().await.unwrap().json().await.unwrap();
    assert_eq!(error_code(&no_version), 8);
    let bearer: Value =
        api.http.get(format!("{url}?v=5.199")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(bearer["response"]["groups"][0]["id"], GROUP);
    assert_eq!(error_code(&api.call("messages.sendz", &[]).await), 3);
    assert_eq!(error_code(&api.call("Messages.send", &[]).await), 3, "method names are case-sensitive");
}

#[tokio::test]
async fn a_repeated_random_id_returns_the_first_message_and_sends_nothing() {
    let api = Api::start().await;
    api.sim.user(TOKEN, 1001, "Ann Petrova");
    let first = api.send(1001, 77, "Your order is ready").await;
    let again = api.send(1001, 77, "Your order is ready").await;
    assert!(first["response"].as_i64().unwrap() > 0, "{first}");
    assert_eq!(first["response"], again["response"]);
    assert_eq!(api.sim.sent(TOKEN).len(), 1);
    let other = api.send(1001, 78, "Your order is ready").await;
    assert_ne!(other["response"], first["response"]);
    let zero_a = api.send(1001, 0, "no dedup").await;
    let zero_b = api.send(1001, 0, "no dedup").await;
    assert_ne!(zero_a["response"], zero_b["response"], "random_id 0 opts out");
    let missing = api.call("messages.send", &[("peer_id", "1001"), ("message", "x")]).await;
    assert_eq!(error_code(&missing), 100);
    let random_ids: Vec<i64> = api.sim.sent(TOKEN).iter().map(|s| s.random_id).collect();
    assert_eq!(random_ids, [77, 78, 0, 0]);
}

#[tokio::test]
async fn a_message_over_4096_characters_is_914() {
    let api = Api::start().await;
    api.sim.user(TOKEN, 1001, "Ann");
    assert!(api.send(1001, 1, &"ж".repeat(4096)).await["response"].is_i64());
    let long = api.send(1001, 2, &"ж".repeat(4097)).await;
    assert_eq!(error_code(&long), 914);
    assert_eq!(long["error"]["error_msg"], "Message is too long");
    assert_eq!(error_code(&api.send(1001, 3, "").await), 100, "no text and no attachment");
}

#[tokio::test]
async fn permission_blacklist_and_chat_membership_are_901_900_and_917() {
    let api = Api::start().await;
    let stranger = api.sim.stranger(TOKEN, 1001, "Bob");
    assert_eq!(error_code(&api.send(1001, 1, "hi").await), 901);
    stranger.send_text("hello"); // writing allows the community's messages
    assert!(api.send(1001, 2, "hi").await["response"].is_i64());
    stranger.deny();
    assert_eq!(error_code(&api.send(1001, 3, "hi").await), 901);
    stranger.allow("widget-key");
    assert!(api.send(1001, 4, "hi").await["response"].is_i64());
    stranger.blacklist();
    assert_eq!(error_code(&api.send(1001, 5, "hi").await), 900);

    let chat = api.sim.chat(TOKEN, 7, "Couriers");
    assert_eq!(chat.peer_id(), 2_000_000_007);
    assert!(api.send(2_000_000_007, 6, "task #1").await["response"].is_i64());
    chat.kick_community();
    assert_eq!(error_code(&api.send(2_000_000_007, 7, "task #2").await), 917);
}

#[tokio::test]
async fn keyboards_are_held_to_vks_limits_with_error_911() {
    let api = Api::start().await;
    api.sim.set_limits(false);
    api.sim.user(TOKEN, 1001, "Ann");
    let text =
        |i: usize| json!({"action": {"type": "text", "label": format!("b{i}"), "payload": "{}"}, "color": "primary"});
    let cb = |i: usize| json!({"action": {"type": "callback", "label": format!("c{i}"), "payload": format!("{{\"n\":{i}}}")}});
    let mut n = 0;
    let mut send = |keyboard: Value| {
        n += 1;
        let api = &api;
        let rid = n.to_string();
        async move {
            api.call(
                "messages.send",
                &[("peer_id", "1001"), ("random_id", &rid), ("message", "pick"), ("keyboard", &keyboard.to_string())],
            )
            .await
        }
    };
    assert!(
        send(json!({"one_time": true, "buttons": [(0..5).map(text).collect::<Vec<_>>()]})).await["response"].is_i64()
    );
    assert_eq!(error_code(&send(json!({"buttons": [(0..6).map(text).collect::<Vec<_>>()]})).await), 911);
    let forty: Vec<Value> = (0..10).map(|r| json!((0..4).map(|i| text(r * 4 + i)).collect::<Vec<_>>())).collect();
    assert!(send(json!({"buttons": forty})).await["response"].is_i64());
    let forty_one: Vec<Value> =
        (0..10).map(|r| json!((0..if r == 0 { 5 } else { 4 }).map(|i| text(r * 5 + i)).collect::<Vec<_>>())).collect();
    assert_eq!(error_code(&send(json!({"buttons": forty_one})).await), 911);
    let eleven_rows: Vec<Value> = (0..11).map(|i| json!([text(i)])).collect();
    assert_eq!(error_code(&send(json!({"buttons": eleven_rows})).await), 911);

    let ten_inline: Vec<Value> = (0..5).map(|r| json!([cb(r * 2), cb(r * 2 + 1)])).collect();
    assert!(send(json!({"inline": true, "buttons": ten_inline})).await["response"].is_i64());
    let eleven_inline: Vec<Value> = (0..6).map(|r| json!([cb(r * 2), cb(r * 2 + 1)])).collect();
    assert_eq!(error_code(&send(json!({"inline": true, "buttons": eleven_inline})).await), 911);
    assert_eq!(error_code(&send(json!({"inline": true, "one_time": true, "buttons": [[cb(1)]]})).await), 911);
    let long_label = json!({"buttons": [[{"action": {"type": "text", "label": "x".repeat(41)}}]]});
    assert_eq!(error_code(&send(long_label).await), 911);
    let long_payload =
        json!({"buttons": [[{"action": {"type": "callback", "label": "x", "payload": "p".repeat(256)}}]]});
    assert_eq!(error_code(&send(long_payload).await), 911);
    let link = json!({"inline": true, "buttons": [[{"action": {"type": "open_link", "label": "Site", "link": "https://okno.example"}}]]});
    assert!(send(link).await["response"].is_i64());
    assert!(send(json!({"buttons": []})).await["response"].is_i64(), "an empty keyboard removes it");
    assert_eq!(error_code(&send(json!("not a keyboard")).await), 911);
}

#[tokio::test]
async fn a_long_poll_returns_when_a_user_writes_and_failed_codes_follow_the_docs() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    let server = api.call("groups.getLongPollServer", &[("group_id", &GROUP.to_string())]).await["response"].clone();
    let (url, key, ts) = (
        server["server"].as_str().unwrap().to_string(),
        server["key"].as_str().unwrap().to_string(),
        server["ts"].as_str().unwrap().to_string(),
    );
    let writer = {
        let ann = ann.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            ann.start(Some("promo-7"))
        })
    };
    let started = Instant::now();
    let page: Value = api
        .http
        .get(format!("{url}?act=a_check&key={key}&ts={ts}&wait=10"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150), "it waited for the message");
    let message_id = writer.await.unwrap();
    let event = &page["updates"][0];
    assert_eq!(event["type"], "message_new");
    assert_eq!(event["group_id"], GROUP);
    assert!(event["event_id"].as_str().unwrap().len() >= 20);
    assert_eq!(event["object"]["message"]["id"], message_id);
    assert_eq!(event["object"]["message"]["ref"], "promo-7");
    assert_eq!(event["object"]["message"]["payload"], "{\"command\":\"start\"}");
    assert_eq!(event["object"]["client_info"]["inline_keyboard"], true);
    let next = page["ts"].as_str().unwrap().to_string();
    let empty: Value = api
        .http
        .get(format!("{url}?act=a_check&key={key}&ts={next}&wait=0"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty["updates"], json!([]));

    api.sim.drop_longpoll_history(TOKEN);
    let outdated: Value =
        api.http.get(format!("{url}?act=a_check&key={key}&ts={ts}&wait=0")).send().await.unwrap().json().await.unwrap();
    assert_eq!(outdated["failed"], 1);
    assert!(outdated["ts"].is_i64(), "{outdated}");
    api.sim.expire_longpoll_key(TOKEN);
    let expired: Value = api
        .http
        .get(format!("{url}?act=a_check&key={key}&ts={next}&wait=0"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(expired, json!({"failed": 2}));
    api.sim.lose_longpoll_information(TOKEN);
    let lost: Value = api
        .http
        .get(format!("{url}?act=a_check&key={key}&ts={next}&wait=0"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lost, json!({"failed": 3}));
    let fresh = api.call("groups.getLongPollServer", &[("group_id", &GROUP.to_string())]).await["response"].clone();
    let fresh_key = fresh["key"].as_str().unwrap();
    let ok: Value = api
        .http
        .get(format!("{url}?act=a_check&key={fresh_key}&ts={}&wait=0", fresh["ts"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["updates"], json!([]));
}

type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;
/// The confirmation code and the scripted answers.
type Script = Arc<(String, Vec<&'static str>)>;

/// A Callback API endpoint: answers the confirmation request with `code` and each event with
/// the next body of `script` (the last repeats), recording the retry header and body.
async fn callback_server(code: String, script: Vec<&'static str>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let state = (seen.clone(), Arc::new((code, script)));
    async fn hook(State((seen, cfg)): State<(Seen, Script)>, headers: HeaderMap, body: String) -> String {
        let v: Value = serde_json::from_str(&body).unwrap();
        if v["type"] == "confirmation" {
            return cfg.0.clone();
        }
        let retry = headers.get("X-Retry-Counter").map(|h| h.to_str().unwrap().to_string());
        let mut seen = seen.lock().unwrap();
        seen.push((retry, v));
        cfg.1.get(seen.len() - 1).or(cfg.1.last()).copied().unwrap_or("ok").to_string()
    }
    let app = Router::new().route("/vk", post(hook)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/vk", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn wait_for(what: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !what() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_callback_api_confirms_the_server_then_pushes_with_the_secret_and_retries_until_ok() {
    let api = Api::start().await;
    api.sim.set_callback_retry(Duration::from_millis(20), 5);
    let code = api.call("groups.getCallbackConfirmationCode", &[("group_id", &GROUP.to_string())]).await["response"]
        ["code"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(code, api.sim.confirmation_code(TOKEN));
    let (url, seen) = callback_server(code, vec!["error", "ok"]).await;
    let added = api
        .call(
            "groups.addCallbackServer",
            &[("group_id", &GROUP.to_string()), ("url", &url), ("title", "okno"), ("secret_key", "s3cr3t")],
        )
        .await;
    let server_id = added["response"]["server_id"].as_i64().unwrap();
    wait_for(|| api.sim.callback_servers(TOKEN) == vec![(server_id, "ok".to_string())]).await;
    assert_eq!(api.sim.callback_servers(TOKEN), vec![(server_id, "ok".to_string())]);

    api.sim.user(TOKEN, 1001, "Ann").send_text("hello");
    wait_for(|| seen.lock().unwrap().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "answered \"error\" once, then ok: {seen:?}");
    assert_eq!(seen[0].0, None);
    assert_eq!(seen[1].0.as_deref(), Some("1"));
    for (_, body) in &seen {
        assert_eq!(body["secret"], "s3cr3t");
        assert_eq!(body["type"], "message_new");
        assert_eq!(body["group_id"], GROUP);
    }
    assert_eq!(seen[0].1["event_id"], seen[1].1["event_id"], "a retry is the same event");
}

#[tokio::test]
async fn a_server_that_answers_the_wrong_confirmation_gets_no_events() {
    let api = Api::start().await;
    let (url, seen) = callback_server("wrong".into(), vec!["ok"]).await;
    api.call("groups.addCallbackServer", &[("group_id", &GROUP.to_string()), ("url", &url), ("title", "okno")]).await;
    wait_for(|| api.sim.callback_servers(TOKEN).iter().any(|(_, s)| s != "unconfigured")).await;
    assert_eq!(api.sim.callback_servers(TOKEN)[0].1, "failed");
    api.sim.user(TOKEN, 1001, "Ann").send_text("hello");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_callback_button_press_is_a_message_event_answered_once() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    let keyboard = json!({"inline": true, "buttons": [[{"action": {"type": "callback", "label": "Take", "payload": "{\"task\":5}"}, "color": "positive"}]]});
    let sent = api
        .call(
            "messages.send",
            &[("peer_id", "1001"), ("random_id", "1"), ("message", "Task #5"), ("keyboard", &keyboard.to_string())],
        )
        .await;
    let message_id = sent["response"].as_i64().unwrap();
    let event_id = ann.press(message_id, "{\"task\":5}");

    let answer = |user: &'static str, data: String| {
        let api = &api;
        let event_id = event_id.clone();
        async move {
            api.call(
                "messages.sendMessageEventAnswer",
                &[("event_id", &event_id), ("user_id", user), ("peer_id", "1001"), ("event_data", &data)],
            )
            .await
        }
    };
    let too_long = json!({"type": "show_snackbar", "text": "x".repeat(990)}).to_string();
    assert_eq!(error_code(&answer("1001", too_long).await), 100);
    assert_eq!(error_code(&answer("2002", json!({"type": "show_snackbar", "text": "ok"}).to_string()).await), 100);
    let ok = answer("1001", json!({"type": "show_snackbar", "text": "Taken"}).to_string()).await;
    assert_eq!(ok["response"], 1);
    assert_eq!(error_code(&answer("1001", json!({"type": "show_snackbar", "text": "again"}).to_string()).await), 100);
    let answers = api.sim.event_answers(TOKEN);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].event_data.as_ref().unwrap()["text"], "Taken");
}

#[tokio::test]
async fn the_21st_call_within_a_second_is_error_6_and_faults_can_be_injected() {
    let api = Api::start().await;
    let mut codes = Vec::new();
    for _ in 0..21 {
        codes.push(api.call("groups.getById", &[]).await);
    }
    assert!(codes[..20].iter().all(|c| c.get("response").is_some()));
    assert_eq!(error_code(&codes[20]), 6);
    assert_eq!(codes[20]["error"]["error_msg"], "Too many requests per second");
    api.sim.set_limits(false);
    for _ in 0..30 {
        assert!(api.call("groups.getById", &[]).await.get("response").is_some());
    }
    api.sim.fail_next(TOKEN, Fault::Error(9));
    api.sim.fail_next(TOKEN, Fault::Status(502));
    assert_eq!(error_code(&api.call("groups.getById", &[]).await), 9);
    let url = format!("{}/method/groups.getById", api.sim.api_base());
    let gateway = api.http.post(url).form(&[("access_token", TOKEN), ("v", "5.199")]).send().await.unwrap();
    assert_eq!(gateway.status().as_u16(), 502);
    assert_eq!(api.sim.rate_limited(TOKEN), 2);
}

#[tokio::test]
async fn photos_and_documents_go_through_the_upload_servers_then_attach() {
    let api = Api::start().await;
    api.sim.set_limits(false);
    api.sim.user(TOKEN, 1001, "Ann");
    let server = api.call("photos.getMessagesUploadServer", &[("peer_id", "1001")]).await;
    let upload_url = server["response"]["upload_url"].as_str().unwrap();
    let form = reqwest::multipart::Form::new()
        .part("photo", reqwest::multipart::Part::bytes(vec![0xffu8, 0xd8, 1, 2]).file_name("a.jpg"));
    let up: Value = api.http.post(upload_url).multipart(form).send().await.unwrap().json().await.unwrap();
    let bad_hash = api
        .call(
            "photos.saveMessagesPhoto",
            &[("photo", up["photo"].as_str().unwrap()), ("server", &up["server"].to_string()), ("hash", "nope")],
        )
        .await;
    assert_eq!(error_code(&bad_hash), 100);
    let saved = api
        .call(
            "photos.saveMessagesPhoto",
            &[
                ("photo", up["photo"].as_str().unwrap()),
                ("server", &up["server"].to_string()),
                ("hash", up["hash"].as_str().unwrap()),
            ],
        )
        .await;
    let photo = &saved["response"][0];
    let attachment = format!("photo{}_{}_{}", photo["owner_id"], photo["id"], photo["access_key"].as_str().unwrap());
    assert!(attachment.starts_with(&format!("photo-{GROUP}_")));

    let server = api.call("docs.getMessagesUploadServer", &[("type", "doc"), ("peer_id", "1001")]).await;
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"a;b\n1;2".to_vec()).file_name("report.csv"));
    let up: Value = api
        .http
        .post(server["response"]["upload_url"].as_str().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let doc = api.call("docs.save", &[("file", up["file"].as_str().unwrap()), ("title", "report.csv")]).await;
    assert_eq!(doc["response"]["type"], "doc");
    let d = &doc["response"]["doc"];
    assert_eq!(d["ext"], "csv");
    let doc_attachment = format!("doc{}_{}", d["owner_id"], d["id"]);
    assert_eq!(api.sim.doc(TOKEN, d["id"].as_i64().unwrap()).unwrap().1, b"a;b\n1;2");

    let both = format!("{attachment},{doc_attachment}");
    let sent = api.call("messages.send", &[("peer_id", "1001"), ("random_id", "9"), ("attachment", &both)]).await;
    assert!(sent["response"].is_i64(), "{sent}");
    assert_eq!(api.sim.sent(TOKEN)[0].attachment, both);
    let unknown =
        api.call("messages.send", &[("peer_id", "1001"), ("random_id", "10"), ("attachment", "photo-1_999")]).await;
    assert_eq!(error_code(&unknown), 100);
}

#[tokio::test]
async fn the_community_edits_and_deletes_its_own_messages() {
    let api = Api::start().await;
    let ann = api.sim.user(TOKEN, 1001, "Ann Petrova");
    let id = api.send(1001, 1, "draft").await["response"].as_i64().unwrap();
    let edited =
        api.call("messages.edit", &[("peer_id", "1001"), ("message_id", &id.to_string()), ("message", "final")]).await;
    assert_eq!(edited["response"], 1);
    assert_eq!(api.sim.message(TOKEN, id).unwrap()["text"], "final");
    let theirs = ann.send_text("mine");
    let refused =
        api.call("messages.edit", &[("peer_id", "1001"), ("message_id", &theirs.to_string()), ("message", "x")]).await;
    assert_eq!(error_code(&refused), 15);
    let deleted = api.call("messages.delete", &[("message_ids", &id.to_string()), ("delete_for_all", "1")]).await;
    assert_eq!(deleted["response"][0]["response"], 1);
    assert!(api.sim.message(TOKEN, id).is_none());
    let users = api.call("users.get", &[("user_ids", "1001")]).await;
    assert_eq!(users["response"][0]["first_name"], "Ann");
    assert_eq!(users["response"][0]["last_name"], "Petrova");
}

#[tokio::test]
async fn a_replayed_event_keeps_its_event_id() {
    let api = Api::start().await;
    let chat = api.sim.chat(TOKEN, 3, "Team");
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    chat.send_text(&ann, "in the chat");
    api.sim.replay_last_event(TOKEN);
    let server = api.call("groups.getLongPollServer", &[]).await["response"].clone();
    let url = format!(
        "{}?act=a_check&key={}&ts=1&wait=0",
        server["server"].as_str().unwrap(),
        server["key"].as_str().unwrap()
    );
    let page: Value = api.http.get(url).send().await.unwrap().json().await.unwrap();
    let updates = page["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0], updates[1]);
    assert_eq!(updates[0]["object"]["message"]["peer_id"], 2_000_000_003);
    assert_eq!(updates[0]["object"]["message"]["from_id"], 1001);
}

#[tokio::test]
async fn a_person_edits_and_the_community_replies_by_number_in_a_chat() {
    let api = Api::start().await;
    let chat = api.sim.chat(TOKEN, 4, "Team");
    let ann = api.sim.user(TOKEN, 1001, "Ann");
    let theirs = chat.send_text(&ann, "first");
    ann.edit(theirs, "first, corrected");
    let server = api.call("groups.getLongPollServer", &[]).await["response"].clone();
    let url = format!(
        "{}?act=a_check&key={}&ts=1&wait=0",
        server["server"].as_str().unwrap(),
        server["key"].as_str().unwrap()
    );
    let page: Value = api.http.get(url).send().await.unwrap().json().await.unwrap();
    let edit = &page["updates"][1];
    assert_eq!(edit["type"], "message_edit");
    assert_eq!(edit["object"]["text"], "first, corrected");
    assert_eq!(edit["object"]["conversation_message_id"], 1);

    let forward = json!({"peer_id": chat.peer_id(), "conversation_message_ids": [1], "is_reply": true}).to_string();
    let sent = api
        .call(
            "messages.send",
            &[
                ("peer_ids", &chat.peer_id().to_string()),
                ("random_id", "9"),
                ("message", "noted"),
                ("forward", &forward),
            ],
        )
        .await;
    let id = sent["response"][0]["message_id"].as_i64().unwrap();
    assert_eq!(api.sim.message(TOKEN, id).unwrap()["reply_message"]["text"], "first, corrected");
    let bad = api
        .call("messages.send", &[("peer_id", "1001"), ("random_id", "10"), ("message", "x"), ("forward", "{")])
        .await;
    assert_eq!(error_code(&bad), 100);
}
