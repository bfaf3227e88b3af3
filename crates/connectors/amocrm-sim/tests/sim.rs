//! The simulator on its own, spoken to over raw HTTP: amoCRM's limits and validation errors
//! for contacts and tasks, the per-second peak it counts, the contact webhooks it sends, and
//! the Chats API's signature checks, idempotent messages and one-shot webhooks.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use okno_amocrm_sim::{AmoSim, MAX_WRITE, PER_TOKEN};
use serde_json::{json, Value};

async fn account() -> (AmoSim, String) {
    let sim = AmoSim::start("romashka").await;
    let token = sim.add_token(sim.add_user("Ольга", "olga@romashka.ru"));
    (sim, token)
}

async fn call(sim: &AmoSim, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", sim.api_base())).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn row(n: usize) -> Value {
    json!({"name": format!("К{n}"), "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": format!("+7900{n:07}"), "enum_code": "MOB"}]}]})
}

#[tokio::test]
async fn contacts_are_paged_and_an_empty_page_is_204() {
    let (sim, token) = account().await;
    let (s, _) = call(&sim, &token, reqwest::Method::GET, "/api/v4/contacts", None).await;
    assert_eq!(s, 204, "no contacts yet");
    let rows: Vec<Value> = (0..5).map(row).collect();
    let (s, added) = call(&sim, &token, reqwest::Method::POST, "/api/v4/contacts", Some(Value::Array(rows))).await;
    assert_eq!(s, 200);
    assert_eq!(added["_embedded"]["contacts"][4]["request_id"], "4");
    let (s, page) =
        call(&sim, &token, reqwest::Method::GET, "/api/v4/contacts?limit=2&page=2&order[id]=desc", None).await;
    assert_eq!(s, 200);
    let ids: Vec<i64> =
        page["_embedded"]["contacts"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    let first = added["_embedded"]["contacts"][0]["id"].as_i64().unwrap();
    assert_eq!(ids, vec![first + 2, first + 1]);
    assert!(page["_links"]["next"]["href"].as_str().unwrap().contains("page=3"));
    assert_eq!(page["_embedded"]["contacts"][0]["custom_fields_values"][0]["values"][0]["enum_code"], "MOB");
    let (s, last) = call(&sim, &token, reqwest::Method::GET, "/api/v4/contacts?limit=2&page=3", None).await;
    assert_eq!((s, last["_links"].get("next")), (200, None));
    assert_eq!(call(&sim, &token, reqwest::Method::GET, "/api/v4/contacts?limit=2&page=4", None).await.0, 204);
    let (s, e) = call(&sim, &token, reqwest::Method::GET, "/api/v4/contacts?limit=251", None).await;
    assert_eq!((s, e["validation-errors"][0]["errors"][0]["path"].as_str()), (400, Some("limit")));
    let (_, found) = call(&sim, &token, reqwest::Method::GET, "/api/v4/contacts?query=%2B79000000003", None).await;
    assert_eq!(found["_embedded"]["contacts"][0]["name"], "К3", "a phone found by its digits");
}

#[tokio::test]
async fn a_write_over_the_limit_or_with_a_bad_row_is_refused_whole() {
    let (sim, token) = account().await;
    let too_many: Vec<Value> = (0..=MAX_WRITE).map(row).collect();
    let (s, e) = call(&sim, &token, reqwest::Method::POST, "/api/v4/contacts", Some(Value::Array(too_many))).await;
    assert_eq!((s, e["status"].as_i64(), e["title"].as_str()), (400, Some(400), Some("Bad Request")));
    assert!(e["validation-errors"][0]["errors"][0]["detail"].as_str().unwrap().contains("250"));
    let bad = json!([row(1), {"name": "X", "request_id": "okno-7",
        "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": "+1", "enum_code": "PAGER"}]}]}]);
    let (s, e) = call(&sim, &token, reqwest::Method::POST, "/api/v4/contacts", Some(bad)).await;
    assert_eq!(s, 400);
    assert_eq!(e["validation-errors"][0]["request_id"], "okno-7");
    assert_eq!(e["validation-errors"][0]["errors"][0]["path"], "custom_fields_values.0.values.0.enum_code");
    assert!(sim.contacts().is_empty(), "nothing of a refused batch is kept");
    let (s, _) = call(&sim, &token, reqwest::Method::PATCH, "/api/v4/contacts", Some(json!([{"name": "no id"}]))).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn a_change_moves_updated_at_and_the_filter_follows_it() {
    let (sim, token) = account().await;
    let a = sim.add_contact("А", "+79000000001", "a@example.org");
    let b = sim.add_contact("Б", "+79000000002", "b@example.org");
    sim.advance(30);
    let (s, _) =
        call(&sim, &token, reqwest::Method::PATCH, &format!("/api/v4/contacts/{a}"), Some(json!({"name": "А2"}))).await;
    assert_eq!(s, 200);
    assert_eq!(sim.contact(a).updated_at, sim.contact(b).updated_at + 30);
    let path = format!("/api/v4/contacts?filter[updated_at][from]={}&order[updated_at]=asc", sim.now());
    let (_, page) = call(&sim, &token, reqwest::Method::GET, &path, None).await;
    let names: Vec<&str> =
        page["_embedded"]["contacts"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["А2"]);
}

#[tokio::test]
async fn the_peak_counts_calls_let_through_in_any_one_second() {
    let (sim, token) = account().await;
    for _ in 0..PER_TOKEN + 3 {
        call(&sim, &token, reqwest::Method::GET, "/api/v4/account", None).await;
    }
    assert_eq!(sim.peak_per_second(), PER_TOKEN, "the gate lets seven through and refuses the rest");
    assert_eq!(sim.log().iter().filter(|(_, _, s)| *s == 429).count(), 3);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    call(&sim, &token, reqwest::Method::GET, "/api/v4/account", None).await;
    assert_eq!(sim.peak_per_second(), PER_TOKEN);
}

#[tokio::test]
async fn a_contact_change_sends_its_hook_form_encoded() {
    let (sim, _) = account().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/h", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/h", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    sim.subscribe(&url, &["update_contact"]);
    let id = sim.add_contact("Анна", "+79001111111", "anna@example.org");
    sim.update_contact(id, "Анна П.", None, Some(&["anna@new.example"][..]), 0);
    for _ in 0..100 {
        if sim.hooks().first().is_some_and(|h| h.delivered()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hooks = sim.hooks();
    assert_eq!(hooks.len(), 1, "no hook for the addition: nobody subscribed to add_contact");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(hooks[0].body.as_bytes()).into_owned().collect();
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    assert_eq!(get("contacts[update][0][id]"), Some(id.to_string().as_str()));
    assert_eq!(get("contacts[update][0][name]"), Some("Анна П."));
    assert_eq!(get("contacts[update][0][custom_fields][1][code]"), Some("EMAIL"));
    assert_eq!(get("contacts[update][0][custom_fields][1][values][0][value]"), Some("anna@new.example"));
    assert_eq!(hooks[0].attempts, vec![200]);
}

#[tokio::test]
async fn tasks_and_deal_fields_are_checked_as_amocrm_does() {
    let (sim, token) = account().await;
    let lead = sim.add_lead("Букет", 100, 0, None);
    let (n, _) = sim.add_lead_field("Сумма", "numeric", &[]);
    let (s, _) = call(
        &sim,
        &token,
        reqwest::Method::PATCH,
        &format!("/api/v4/leads/{lead}"),
        Some(json!({"custom_fields_values": [{"field_id": n, "values": [{"value": "12.5"}]}]})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(sim.lead_fields(lead)[&n], vec![json!({"value": "12.5"})]);
    let (s, e) = call(
        &sim,
        &token,
        reqwest::Method::PATCH,
        &format!("/api/v4/leads/{lead}"),
        Some(json!({"custom_fields_values": [{"field_id": n, "values": [{"value": "много"}]}]})),
    )
    .await;
    assert_eq!(
        (s, e["validation-errors"][0]["errors"][0]["path"].as_str()),
        (400, Some("custom_fields_values.0.values.0.value"))
    );
    let (s, e) = call(
        &sim,
        &token,
        reqwest::Method::PATCH,
        &format!("/api/v4/leads/{lead}"),
        Some(json!({"custom_fields_values": [{"field_id": 424242, "values": [{"value": "x"}]}]})),
    )
    .await;
    assert_eq!(
        (s, e["validation-errors"][0]["errors"][0]["path"].as_str()),
        (400, Some("custom_fields_values.0.field_id"))
    );

    let task = json!([{"text": "Позвонить", "complete_till": 1_900_000_000, "entity_type": "leads", "entity_id": lead, "task_type_id": 7}]);
    let (s, e) = call(&sim, &token, reqwest::Method::POST, "/api/v4/tasks", Some(task)).await;
    assert_eq!((s, e["validation-errors"][0]["errors"][0]["path"].as_str()), (400, Some("task_type_id")));
    let task =
        json!([{"text": "Позвонить", "complete_till": 1_900_000_000, "entity_type": "leads", "entity_id": lead}]);
    let (s, made) = call(&sim, &token, reqwest::Method::POST, "/api/v4/tasks", Some(task)).await;
    assert_eq!(s, 200);
    assert_eq!(sim.tasks()[0].id, made["_embedded"]["tasks"][0]["id"].as_i64().unwrap());
    assert_eq!(sim.tasks()[0].task_type_id, 1, "a call unless told");
}

// --- the Chats API ---

const CHANNEL: &str = "chan-1";
const SECRET: &str = "s3cret";

/// A signed amojo call; `md5_of` puts the digest of other bytes in `Content-MD5`.
async fn amojo(
    sim: &AmoSim,
    path: &str,
    body: &Value,
    secret: &str,
    date: &str,
    md5_of: Option<&[u8]>,
) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    let md5 = hex::encode(Md5::digest(md5_of.unwrap_or(&bytes)));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("POST\n{md5}\napplication/json\n{date}\n{path}").as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    let r = reqwest::Client::new()
        .post(format!("{}{path}", sim.amojo_base()))
        .header("Date", date)
        .header("Content-Type", "application/json")
        .header("Content-MD5", md5)
        .header("X-Signature", sig)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

#[tokio::test]
async fn amojo_checks_every_signature_part() {
    let (sim, _) = account().await;
    sim.add_channel(CHANNEL, SECRET, "http://127.0.0.1:9/h/:scope_id");
    let path = format!("/v2/origin/custom/{CHANNEL}/connect");
    let body = json!({"account_id": sim.amojo_id(), "title": "okno", "hook_api_version": "v2"});
    let (s, e) = amojo(&sim, &path, &body, "wrong", &now(), None).await;
    assert_eq!((s, e["error_code"].as_i64()), (403, Some(403)));
    assert_eq!(amojo(&sim, &path, &body, SECRET, "Mon, 03 Oct 2020 15:11:21 +0000", None).await.0, 403, "stale date");
    assert_eq!(amojo(&sim, &path, &body, SECRET, &now(), Some(b"other")).await.0, 403, "digest of another body");
    assert_eq!(amojo(&sim, "/v2/origin/custom/nobody/connect", &body, SECRET, &now(), None).await.0, 404);
    let v1 = json!({"account_id": sim.amojo_id(), "title": "okno", "hook_api_version": "v1"});
    assert_eq!(amojo(&sim, &path, &v1, SECRET, &now(), None).await.0, 400);
    let (s, ok) = amojo(&sim, &path, &body, SECRET, &now(), None).await;
    assert_eq!(s, 200);
    assert_eq!(ok["scope_id"], format!("{CHANNEL}_{}", sim.amojo_id()));
    assert_eq!(sim.scope_id(CHANNEL).as_deref(), ok["scope_id"].as_str());
}

#[tokio::test]
async fn amojo_keeps_one_message_per_msgid_and_refuses_incomplete_ones() {
    let (sim, _) = account().await;
    sim.add_channel(CHANNEL, SECRET, "http://127.0.0.1:9/h");
    let connect = json!({"account_id": sim.amojo_id(), "title": "okno", "hook_api_version": "v2"});
    amojo(&sim, &format!("/v2/origin/custom/{CHANNEL}/connect"), &connect, SECRET, &now(), None).await;
    let path = format!("/v2/origin/custom/{CHANNEL}_{}", sim.amojo_id());
    let msg = json!({"event_type": "new_message", "payload": {"timestamp": 1, "msgid": "m1", "conversation_id": "c1",
        "sender": {"id": "p1", "name": "Анна"}, "message": {"type": "text", "text": "Привет"}}});
    let (s1, a1) = amojo(&sim, &path, &msg, SECRET, &now(), None).await;
    let (s2, a2) = amojo(&sim, &path, &msg, SECRET, &now(), None).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(a1, a2);
    assert_eq!(a1["new_message"]["ref_id"], "m1");
    assert_eq!(sim.chat_messages("c1").len(), 1);
    let picture = json!({"event_type": "new_message", "payload": {"timestamp": 1, "msgid": "m2", "conversation_id": "c1",
        "sender": {"id": "p1"}, "message": {"type": "picture", "media": "https://x/p.jpg"}}});
    let (s, e) = amojo(&sim, &path, &picture, SECRET, &now(), None).await;
    assert_eq!(s, 400, "a picture needs its file name and size: {e}");
    let to_person = json!({"event_type": "new_message", "payload": {"timestamp": 1, "msgid": "m3", "conversation_id": "c1",
        "sender": {"id": "op"}, "receiver": {"id": "p1"}, "message": {"type": "text", "text": "Ответ"}}});
    assert_eq!(amojo(&sim, &path, &to_person, SECRET, &now(), None).await.0, 400, "no sender.ref_id");
    let status_path = format!("{path}/{}/delivery_status", a1["new_message"]["msgid"].as_str().unwrap());
    let other = json!({"msgid": "someone-else", "delivery_status": 1});
    assert_eq!(amojo(&sim, &status_path, &other, SECRET, &now(), None).await.0, 400, "msgid must match the path");
}

#[tokio::test]
async fn a_user_reply_is_posted_once_signed_and_its_answer_recorded() {
    let (sim, _) = account().await;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/h/{scope}",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let sig = headers["x-signature"].to_str().unwrap().to_string();
                seen.lock().unwrap().push((sig, body));
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/h/:scope_id", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    sim.add_channel(CHANNEL, SECRET, &url);
    let connect = json!({"account_id": sim.amojo_id(), "title": "okno", "hook_api_version": "v2"});
    amojo(&sim, &format!("/v2/origin/custom/{CHANNEL}/connect"), &connect, SECRET, &now(), None).await;
    let path = format!("/v2/origin/custom/{CHANNEL}_{}", sim.amojo_id());
    let msg = json!({"event_type": "new_message", "payload": {"timestamp": 1, "msgid": "m1", "conversation_id": "c1",
        "sender": {"id": "p1", "name": "Анна"}, "message": {"type": "text", "text": "Привет"}}});
    amojo(&sim, &path, &msg, SECRET, &now(), None).await;

    let hook = sim.user_reply("c1", "Здравствуйте").await;
    assert_eq!((hook.status, hook.acknowledged), (Some(500), false));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "sent once, a failure not retried");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(got[0].1.as_bytes());
    assert_eq!(got[0].0, hex::encode(mac.finalize().into_bytes()), "X-Signature is the body's HMAC-SHA1");
    let body: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(body["message"]["conversation"]["client_id"], "c1");
    assert_eq!(body["message"]["receiver"]["id"], "p1");
    assert_eq!(body["message"]["message"]["text"], "Здравствуйте");
}
