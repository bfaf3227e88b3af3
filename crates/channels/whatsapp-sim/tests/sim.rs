//! The simulator's own checks: it answers like Meta, and fails when a limit is not enforced.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Query;
use axum::http::HeaderMap;
use axum::routing::get;
use okno_whatsapp_sim::{WaSim, WindowMode};
use serde_json::{json, Value};

const TOKEN: &str = "EAAG-sim";
const ID: &str = "555";

async fn sim() -> WaSim {
    let sim = WaSim::start().await;
    sim.add_number(ID, TOKEN, "+7 900 000-00-01", "Тест", "secret");
    sim
}

async fn send(sim: &WaSim, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/{ID}/messages", sim.api_base()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn text(to: &str, t: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": t}})
}

#[tokio::test]
async fn a_bad_token_is_refused_with_190() {
    let sim = sim().await;
    let r = reqwest::Client::new().get(format!("{}/{ID}", sim.api_base())).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 190);
    assert_eq!(v["error"]["type"], "OAuthException");
}

#[tokio::test]
async fn throughput_and_pair_rate_are_enforced_and_switch_off() {
    let sim = sim().await;
    sim.set_rates(5, 6.0, 3);
    for i in 0..6 {
        sim.person(&format!("7900{i}"), "x").write("hi").await;
    }
    let mut codes = Vec::new();
    for i in 0..6 {
        let (status, v) = send(&sim, text(&format!("7900{i}"), "a")).await;
        codes.push((status, v["error"]["code"].as_i64()));
    }
    assert_eq!(codes[5], (429, Some(130429)), "{codes:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..2 {
        assert_eq!(send(&sim, text("79000", "b")).await.0, 200);
    }
    let (status, v) = send(&sim, text("79000", "c")).await;
    assert_eq!((status, v["error"]["code"].as_i64()), (400, Some(131056)));
    sim.set_limits(false);
    for _ in 0..20 {
        assert_eq!(send(&sim, text("79000", "d")).await.0, 200);
    }
}

#[tokio::test]
async fn the_window_refuses_text_but_not_templates() {
    let sim = sim().await;
    sim.person("79001", "x");
    sim.add_template("hello", "ru", 0);
    let (status, v) = send(&sim, text("79001", "a")).await;
    assert_eq!((status, v["error"]["code"].as_i64()), (400, Some(131047)));
    let tpl = json!({"messaging_product": "whatsapp", "to": "79001", "type": "template", "template": {"name": "hello", "language": {"code": "ru"}}});
    let (status, v) = send(&sim, tpl).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["messages"][0]["message_status"], "accepted");
    sim.set_window_mode(WindowMode::FailedStatus);
    let (status, _) = send(&sim, text("79001", "b")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn webhooks_are_signed_and_the_callback_checked() {
    let sim = sim().await;
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        get(|Query(q): Query<std::collections::HashMap<String, String>>| async move {
            if q.get("hub.verify_token").map(String::as_str) == Some("vt") {
                (axum::http::StatusCode::OK, q.get("hub.challenge").cloned().unwrap_or_default())
            } else {
                (axum::http::StatusCode::FORBIDDEN, String::new())
            }
        })
        .post(move |headers: HeaderMap, body: String| async move {
            let sig = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            seen.lock().unwrap().push((sig, body));
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    assert!(sim.subscribe(&url, "wrong").await.is_err());
    sim.subscribe(&url, "vt").await.unwrap();
    let w = sim.person("79002", "Анна").write("Привет").await;
    assert_eq!(w.status, Some(200));
    let (sig, body) = got.lock().unwrap()[0].clone();
    assert_eq!(sig, sim.sign(body.as_bytes()));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"], "Привет");
    // A send pushes `sent` and `delivered` statuses.
    let (status, _) = send(&sim, text("79002", "Ответ")).await;
    assert_eq!(status, 200);
    for _ in 0..100 {
        if got.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let statuses: Value = serde_json::from_str(&got.lock().unwrap()[1].1).unwrap();
    let items = statuses["entry"][0]["changes"][0]["value"]["statuses"].as_array().unwrap().clone();
    assert_eq!(items.iter().map(|s| s["status"].as_str().unwrap()).collect::<Vec<_>>(), vec!["sent", "delivered"]);
}
