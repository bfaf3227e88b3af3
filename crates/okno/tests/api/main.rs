//! Integration tests: a real okno over HTTP with a real store, a real sink for everything it
//! sends. One binary, one module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod auth_and_ops;
mod avito;
mod bad_input;
mod bitrix24;
mod bots;
mod broadcasts;
mod channels_and_contacts;
mod connectors;
mod delivery;
mod demo;
mod email;
mod events;
mod files;
mod flow;
mod max;
mod ok;
mod onec_kit;
mod pages;
mod roles;
mod scale_out;
mod secrets;
mod seeds;
mod service_window;
mod setup;
mod slow_clients;
mod sms;
mod surveys;
mod tasks;
mod telegram;
mod templates;
mod translations;
mod ui;
mod viber;
mod vk;
mod whatsapp;
mod widget;
mod window;

use okno_testkit::{Sink, TestApp};
use serde_json::{json, Value};

pub const SECRET: &str = "0123456789abcdef-secret";

/// okno with a webhook channel that sends to a fresh sink.
pub async fn app_with_channel() -> (TestApp, Sink, String) {
    let app = TestApp::spawn().await;
    let sink = Sink::start(SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", sink.url), SECRET).await;
    (app, sink, ch)
}

pub fn message(id: &str, user: &str, text: &str) -> Value {
    json!({"message_id": id, "user": {"id": user, "name": format!("User {user}")}, "text": text})
}

/// Posts an inbound message and returns its conversation id.
pub async fn inbound_conversation(app: &TestApp, ch: &str, user: &str) -> String {
    let a = app.inbound(ch, SECRET, &message(&format!("{user}-hello"), user, "hello")).await;
    assert_eq!(a.status, 200, "{a:?}");
    let m = app.get(&format!("/api/v1/messages/{}", a.body["id"].as_str().unwrap())).await;
    m.body["conversation_id"].as_str().unwrap().to_string()
}

/// Sets channel `ch`'s bot from its YAML definition, as an administrator does.
pub async fn put_bot(app: &TestApp, ch: &str, yaml: &str) {
    let (status, body) = bots::put_bot(app, ch, yaml).await;
    assert!((200..300).contains(&status), "{status}: {body}");
}

/// Queues a reply in a conversation; returns the message id.
pub async fn reply(app: &TestApp, conv: &str, body: Value) -> String {
    let r = app.post(&format!("/api/v1/conversations/{conv}/messages"), body).await;
    assert_eq!(r.status, 202, "{r:?}");
    r.body["id"].as_str().unwrap().to_string()
}

/// Waits until a message leaves `queued`; returns it.
pub async fn final_status(app: &TestApp, id: &str) -> Value {
    okno_testkit::eventually(15, || async {
        let m = app.get(&format!("/api/v1/messages/{id}")).await;
        (m.body["status"] != "queued").then_some(m.body)
    })
    .await
    .expect("the message reaches a final status")
}

/// Starts a two-question survey — a 1–5 score, then a free text — for one contact; returns the
/// survey's id.
pub async fn delivery_survey(app: &TestApp, contact: &Value) -> String {
    let r = app
        .post(
            "/api/v1/surveys",
            json!({"name": "После доставки", "questions": [
                {"id": "score", "text": "Оцените доставку", "kind": "scale", "min": 1, "max": 5},
                {"id": "comment", "text": "Что улучшить?", "kind": "text"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let survey = r.body["id"].as_str().unwrap().to_string();
    let s = app.post(&format!("/api/v1/surveys/{survey}/start"), json!({"contact_ids": [contact]})).await;
    assert_eq!(s.body["started"], 1, "{s:?}");
    survey
}

/// Waits until one run of `survey` completes, then checks the score's average and the one
/// free-text answer.
pub async fn survey_completed_with(app: &TestApp, survey: &str, average: f64) {
    let results = okno_testkit::eventually(15, || async {
        let r = app.get(&format!("/api/v1/surveys/{survey}/results")).await;
        (r.body["runs"]["completed"] == 1).then_some(r.body)
    })
    .await
    .expect("the survey completes");
    assert_eq!(results["questions"][0]["average"].as_f64(), Some(average), "{results}");
    assert_eq!(results["questions"][1]["answers"], 1, "{results}");
}
