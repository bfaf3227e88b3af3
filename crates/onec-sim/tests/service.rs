//! The sample 1C service over real HTTP: the answers the example bots rely on, the forms,
//! okno's signed webhooks, and the misbehaviour switches.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use okno_onec_sim::{Mode, OneCSim, Options, PHOTO_PNG, XLSX_MIME};
use serde_json::{json, Value};

const HOOK_SECRET: &str = "onec-hook-secret-0123";

/// The service with its calendar on 1 July 2026.
async fn sim() -> OneCSim {
    let options = Options {
        today: Some(jiff::civil::date(2026, 7, 1)),
        webhook_secret: Some(HOOK_SECRET.into()),
        ..Options::default()
    };
    OneCSim::start_with(options).await.unwrap()
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

#[tokio::test]
async fn products_are_found_by_part_of_the_name_and_have_cards_with_photos() {
    let biz = sim().await;
    let found: Value =
        get(&format!("{}/products?q=%D0%94%D0%A0%D0%95%D0%9B%D0%AC", biz.url())).await.json().await.unwrap();
    assert_eq!(found["total"], 7, "«ДРЕЛЬ» finds the drills whatever the case: {found}");
    assert_eq!(found["items"][0]["name"], "Дрель ударная Bosch PSB 500");
    let none: Value = get(&format!("{}/products?q=xyz", biz.url())).await.json().await.unwrap();
    assert_eq!(none["items"].as_array().unwrap().len(), 0);

    let card: Value = get(&format!("{}/products/DR-002", biz.url())).await.json().await.unwrap();
    assert_eq!(card["name"], "Дрель-шуруповёрт Makita DF333");
    assert_eq!(card["stock"].as_array().unwrap().len(), 3);
    assert_eq!(card["prices"][1]["price"], 8091);
    let photo = get(card["photo_url"].as_str().unwrap()).await;
    assert_eq!(photo.headers()["content-type"], "image/png");
    assert_eq!(&photo.bytes().await.unwrap()[..], PHOTO_PNG);
    assert_eq!(get(&format!("{}/products/NOPE", biz.url())).await.status(), 404);

    let r = &biz.requests_to("GET", "/products")[0];
    assert_eq!(r.q("q"), "ДРЕЛЬ");
    assert_eq!(biz.requests().len(), 5);
}

#[tokio::test]
async fn orders_remember_who_asked_and_unknown_numbers_are_404() {
    let biz = sim().await;
    let o: Value = get(&format!("{}/orders/100421?subscriber=c-1", biz.url())).await.json().await.unwrap();
    assert_eq!(o["stage"], "В производстве");
    assert_eq!(biz.subscriber("100421").as_deref(), Some("c-1"));
    assert_eq!(get(&format!("{}/orders/999999", biz.url())).await.status(), 404);
    assert_eq!(biz.subscriber("999999"), None);
}

#[tokio::test]
async fn submissions_get_numbers_and_tickets_are_listed_per_user() {
    let biz = sim().await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = http.post(format!("{}{path}", biz.url())).json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(
        post("/tickets", json!({"user": "emp-1", "topic": "Принтер", "text": "Не печатает"})).await["number"],
        "HD-0001"
    );
    assert_eq!(post("/tickets", json!({"user": "emp-2", "topic": "1С", "text": "Ошибка"})).await["number"], "HD-0002");
    let mine: Value = get(&format!("{}/tickets?user=emp-1", biz.url())).await.json().await.unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_eq!(mine["items"][0]["topic"], "Принтер");
    let one: Value = get(&format!("{}/tickets/HD-0002", biz.url())).await.json().await.unwrap();
    assert_eq!(one["text"], "Ошибка");
    assert_eq!(get(&format!("{}/tickets/HD-0404", biz.url())).await.status(), 404);
    assert_eq!(post("/vacations", json!({"start": "2026-07-15"})).await["number"], "ОТП-0001");
    assert_eq!(post("/certificates", json!({})).await["number"], "СП-0001");
    assert_eq!(post("/sick_leaves", json!({})).await["number"], "БЛ-0001");
    let v = &biz.requests_to("POST", "/vacations")[0];
    assert_eq!(v.body["start"], "2026-07-15");
    assert_eq!(biz.tickets_of("emp-1")[0].2, "Не печатает");
}

#[tokio::test]
async fn reports_are_files_with_their_content_types() {
    let biz = sim().await;
    let http = reqwest::Client::new();
    let pdf = http.post(format!("{}/reports/stock_pdf", biz.url())).json(&json!({})).send().await.unwrap();
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let bytes = pdf.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-1.4") && bytes.ends_with(b"%%EOF\n"));
    let text = String::from_utf8_lossy(&bytes);
    let xref: usize = text.rsplit("startxref\n").next().unwrap().lines().next().unwrap().parse().unwrap();
    assert!(text[xref..].starts_with("xref"), "startxref points at the table");
    let xlsx = http.post(format!("{}/reports/stock", biz.url())).json(&json!({})).send().await.unwrap();
    assert_eq!(xlsx.headers()["content-type"], XLSX_MIME);
    assert!(xlsx.bytes().await.unwrap().starts_with(b"PK\x03\x04"));
}

#[tokio::test]
async fn misbehaviour_is_switchable() {
    let biz = sim().await;
    let url = format!("{}/orders/100421", biz.url());
    biz.set_mode(Mode::Error500);
    assert_eq!(get(&url).await.status(), 500);
    biz.set_mode(Mode::BadJson);
    let bad = get(&url).await;
    assert_eq!(bad.status(), 200);
    assert!(serde_json::from_slice::<Value>(&bad.bytes().await.unwrap()).is_err());
    biz.set_mode(Mode::WrongShape);
    let shape: Value = get(&url).await.json().await.unwrap();
    assert!(shape.get("stage").is_none());
    biz.set_mode(Mode::Slow(Duration::from_millis(300)));
    let t = std::time::Instant::now();
    assert_eq!(get(&url).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    biz.set_mode(Mode::Normal);
    assert_eq!(get(&url).await.status(), 200);
    assert_eq!(biz.requests().len(), 5, "every request is recorded, misbehaving or not");
    let bound = biz.bind("http:\n  base_url: http://1c.local/hs/bot\n");
    assert!(bound.contains(&biz.url()) && !bound.contains("1c.local"));
}

#[tokio::test]
async fn dates_follow_the_services_today() {
    let biz = sim().await;
    let sales: Value = get(&format!("{}/reports/my_sales?employee=e-1", biz.url())).await.json().await.unwrap();
    assert_eq!(sales["date"], "2026-07-01");
    let http = reqwest::Client::new();
    let cert: Value =
        http.post(format!("{}/certificates", biz.url())).json(&json!({})).send().await.unwrap().json().await.unwrap();
    assert_eq!(cert["ready"], "2026-07-03", "ready two days later");

    // Unpinned, the calendar is the real one: a certificate is never ready in the past.
    let live = OneCSim::start().await.unwrap();
    let cert: Value =
        http.post(format!("{}/certificates", live.url())).json(&json!({})).send().await.unwrap().json().await.unwrap();
    let ready: jiff::civil::Date = cert["ready"].as_str().unwrap().parse().unwrap();
    assert!(ready > live.today(), "{ready} after {}", live.today());
}

/// Posts a webhook the way okno does.
async fn deliver(biz: &OneCSim, delivery: &str, secret: &str, body: &Value) -> reqwest::Response {
    let raw = serde_json::to_vec(body).unwrap();
    reqwest::Client::new()
        .post(biz.webhook_url())
        .header("x-okno-event", "button.pressed")
        .header("x-okno-delivery", delivery)
        .header("x-okno-signature", okno_domain::signing::sign(secret.as_bytes(), &raw))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn okno_webhooks_are_taken_once_and_only_when_signed() {
    let biz = sim().await;
    let seen = biz.changes();
    let body = json!({"id": "d-1", "type": "button.pressed", "data": {"answer": "approve"}});
    assert_eq!(deliver(&biz, "d-1", HOOK_SECRET, &body).await.status(), 200);
    assert!(seen.has_changed().unwrap(), "watchers are told");
    assert_eq!(deliver(&biz, "d-1", HOOK_SECRET, &body).await.status(), 200, "a repeat is acknowledged");
    assert_eq!(deliver(&biz, "d-2", "another-secret", &body).await.status(), 401, "a forged one is refused");
    let hooks = biz.webhooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!((hooks[0].event.as_str(), hooks[0].delivery.as_str()), ("button.pressed", "d-1"));
    assert_eq!(hooks[0].body["data"]["answer"], "approve");
    let statuses: Vec<u16> = biz.requests_to("POST", "/okno").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 401], "every call is in the log with its answer");

    // Without a secret nothing can be verified, so nothing is taken.
    let open = OneCSim::start().await.unwrap();
    assert_eq!(deliver(&open, "d-1", HOOK_SECRET, &body).await.status(), 401);
    assert!(open.webhooks().is_empty());
}

#[tokio::test]
async fn a_slow_answer_is_recorded_before_it_is_made() {
    let biz = sim().await;
    biz.set_mode(Mode::Slow(Duration::from_secs(30)));
    let url = format!("{}/orders/100421", biz.url());
    let gave_up =
        reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap().get(&url).send().await;
    assert!(gave_up.is_err(), "the caller timed out");
    let got = biz.requests_to("GET", "/orders/100421");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, 0, "no answer was made");
}

#[tokio::test]
async fn it_keeps_the_newest_requests_and_webhooks_it_is_told_to() {
    let options = Options { webhook_secret: Some(HOOK_SECRET.into()), keep: Some(3), ..Options::default() };
    let biz = OneCSim::start_with(options).await.unwrap();
    for n in 1..=5 {
        assert_eq!(get(&format!("{}/orders/99999{n}", biz.url())).await.status(), 404);
        let body = json!({"id": format!("d-{n}"), "type": "button.pressed", "data": {"n": n}});
        assert_eq!(deliver(&biz, &format!("d-{n}"), HOOK_SECRET, &body).await.status(), 200);
    }
    let kept: Vec<String> = biz.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(kept, ["/okno", "/orders/999995", "/okno"].map(String::from), "the newest three requests");
    let hooks: Vec<i64> = biz.webhooks().iter().map(|w| w.body["data"]["n"].as_i64().unwrap()).collect();
    assert_eq!(hooks, [3, 4, 5], "the newest three webhooks");
    // Read back newest first, a few at a time.
    let latest: Vec<String> = biz.latest_requests(2, "/okno").iter().map(|r| r.path.clone()).collect();
    assert_eq!(latest, ["/orders/999995"], "only what is kept, without the webhooks");
    let latest: Vec<i64> = biz.latest_webhooks(2).iter().map(|w| w.body["data"]["n"].as_i64().unwrap()).collect();
    assert_eq!(latest, [5, 4]);
}

#[tokio::test]
async fn a_stopped_service_frees_its_port_and_keeps_what_it_recorded() {
    let biz = sim().await;
    assert_eq!(get(&format!("{}/orders/100421", biz.url())).await.status(), 200);
    assert!(!biz.is_stopping());
    biz.stop();
    assert!(biz.is_stopping());
    biz.stopped().await;
    assert!(tokio::net::TcpStream::connect(biz.local_addr()).await.is_err(), "nothing listens there any more");
    assert_eq!(biz.requests_to("GET", "/orders/100421").len(), 1);
}

#[tokio::test]
async fn a_request_naming_another_host_is_refused() {
    let biz = sim().await;
    let port = biz.local_addr().port();
    let r = reqwest::Client::new()
        .get(format!("{}/orders/100421", biz.url()))
        .header("host", format!("rebound.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(biz.requests().is_empty(), "nothing recorded, nothing answered");
    assert_eq!(get(&format!("{}/orders/100421", biz.url())).await.status(), 200);
}

/// The integrator's kit (`integrations/1c/examples/service`) shows the answers a 1C HTTP
/// service gives okno's bots: the service here answers with the same fields.
#[tokio::test]
async fn the_kit_s_example_answers_have_the_service_s_fields() {
    let kit = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../integrations/1c/examples/service");
    let example =
        |name: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(kit.join(name)).unwrap()).unwrap() };
    let fields = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let biz = sim().await;
    let http = reqwest::Client::new();
    let order: Value = get(&format!("{}/orders/100421", biz.url())).await.json().await.unwrap();
    assert_eq!(fields(&order), fields(&example("order.json")));
    let products: Value = get(&format!("{}/products?q=bosch", biz.url())).await.json().await.unwrap();
    assert_eq!(fields(&products), fields(&example("products.json")));
    assert_eq!(fields(&products["items"][0]), fields(&example("products.json")["items"][0]));
    let created: Value = http
        .post(format!("{}/tickets", biz.url()))
        .json(&json!({"user": "emp-1", "topic": "Принтер", "text": "Не печатает"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created, example("ticket-created.json"));
    let tickets: Value = get(&format!("{}/tickets?user=emp-1", biz.url())).await.json().await.unwrap();
    assert_eq!(tickets, example("tickets.json"));
    let body = example("../webhook-button-pressed.json");
    let answer = deliver(&biz, "d-kit", HOOK_SECRET, &body).await;
    assert_eq!(answer.json::<Value>().await.unwrap(), example("webhook-answer.json"));
}
