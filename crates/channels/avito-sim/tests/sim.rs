//! The simulator holds okno to Avito's rules: tokens expire, webhooks must be answered in time
//! (a late answer is a failure, delivered again), texts are at most 1,000 characters, and only
//! chats a buyer opened can be written to.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use okno_avito_sim::AvitoSim;
use serde_json::{json, Value};

async fn token(sim: &AvitoSim, secret: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/token", sim.api_base()))
        .form(&[("grant_type", "client_credentials"), ("client_id", "id"), ("client_secret", secret)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn tokens_are_issued_for_the_right_secret_and_refused_once_expired() {
    let sim = AvitoSim::start("id", "secret", 7).await;
    let (status, body) = token(&sim, "nope").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_client")));
    sim.set_token_ttl(Duration::from_millis(200));
    let (status, body) = token(&sim, "secret").await;
    assert_eq!((status, body["token_type"].as_str(), body["expires_in"].as_u64()), (200, Some("Bearer"), Some(1)));
    let t = body["access_token"].as_str().unwrap().to_string();
    let me = || reqwest::Client::new().get(format!("{}/core/v1/accounts/self", sim.api_base())).bearer_auth(&t).send();
    assert_eq!(me().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let r = me().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], 401);
    assert_eq!(sim.refused_expired(), 1);
}

#[tokio::test]
async fn a_late_answer_counts_as_failed_and_is_delivered_again() {
    let sim = AvitoSim::start("id", "secret", 7).await;
    sim.set_deadline(Duration::from_millis(300));
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (_, body) = token(&sim, "secret").await;
    let t = body["access_token"].as_str().unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/messenger/v3/webhook", sim.api_base()))
        .bearer_auth(t)
        .json(&json!({"url": format!("http://{addr}/hook")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let item = sim.add_item(1, "Стол", "5 000 ₽");
    let w = sim.buyer(55, "Борис").write(Some(&item), "Здравствуйте").await;
    assert!(w.delivered);
    let pushes = sim.pushes();
    assert_eq!(pushes.len(), 2, "{pushes:?}");
    assert!(!pushes[0].ok && pushes[0].elapsed >= Duration::from_millis(300), "{:?}", pushes[0]);
    assert!(pushes[1].ok && pushes[1].attempt == 2);
    assert_eq!(pushes[0].body, pushes[1].body, "the same delivery again");
    assert_eq!(w.signature, sim.sign(&w.body));
}

#[tokio::test]
async fn texts_over_1000_characters_and_unknown_chats_are_refused() {
    let sim = AvitoSim::start("id", "secret", 7).await;
    let (_, body) = token(&sim, "secret").await;
    let t = body["access_token"].as_str().unwrap().to_string();
    let chat = sim.buyer(55, "Борис").chat(None);
    let send = |chat: String, text: String| {
        let (base, t) = (sim.api_base(), t.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{base}/messenger/v1/accounts/7/chats/{chat}/messages"))
                .bearer_auth(t)
                .json(&json!({"message": {"text": text}, "type": "text"}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(send(chat.clone(), "я".repeat(1000)).await.status(), 200);
    let r = send(chat.clone(), "я".repeat(1001)).await;
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]["fields"]["message.text"].is_string());
    assert_eq!(send("u2i-unknown".into(), "привет".into()).await.status(), 404);
    assert_eq!(sim.sent().len(), 1);
}
