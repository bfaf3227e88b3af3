//! WhatsApp (Cloud API) against its simulator, through okno's API: connecting (Meta's callback
//! check answered, secrets never shown), signed webhooks in, media downloaded, replies out,
//! delivery receipts moving a message's status forward only, a menu bot as interactive
//! buttons, a survey as a list, a typed link code, a notification rule, a broadcast at Meta's pace, and Meta's
//! refusals ending a message `failed` with its code and words.

use std::time::Duration;

use okno_testkit::whatsapp::{SimPerson, WaSim, WindowMode, APP_SECRET, NUMBER_ID, VERIFY_TOKEN};
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Value};

use super::{final_status, reply};

const TOKEN: &str = "EAAG-okno-whatsapp-test";

async fn number(limits: Option<Value>) -> (TestApp, WaSim, String) {
    let app = TestApp::spawn().await;
    let sim = WaSim::start().await;
    let ch = app.whatsapp_channel(&sim, TOKEN, limits).await;
    (app, sim, ch)
}

/// A person writes `text`; returns the conversation and the stored message.
async fn writes(app: &TestApp, person: &SimPerson, text: &str) -> (String, Value) {
    let w = person.write(text).await;
    assert_eq!(w.status, Some(200), "okno takes the signed webhook");
    let m = app.wait_message(|m| m["text"] == text).await;
    (m["conversation_id"].as_str().unwrap().to_string(), m)
}

async fn status_becomes(app: &TestApp, id: &str, status: &str) -> Value {
    let got = eventually(15, || async {
        let m = app.get(&format!("/api/v1/messages/{id}")).await.body;
        (m["status"] == status).then_some(m)
    })
    .await;
    match got {
        Some(m) => m,
        None => panic!("message {id} never became {status}: {:?}", app.get(&format!("/api/v1/messages/{id}")).await),
    }
}

#[tokio::test]
async fn connecting_checks_the_token_answers_metas_callback_check_and_never_shows_secrets() {
    let app = TestApp::spawn().await;
    let sim = WaSim::start().await;
    sim.add_number(NUMBER_ID, TOKEN, "+7 900 555-01-01", "Окна Плюс", APP_SECRET);
    let config = |token: &str| {
        json!({"token": token, "phone_number_id": NUMBER_ID, "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN,
               "api_base": sim.api_base()})
    };
    let bad =
        app.post("/api/v1/channels", json!({"kind": "whatsapp", "name": "WA", "config": config("EAAG-stolen")})).await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_whatsapp_credentials"), "{bad:?}");
    assert!(bad.body.to_string().contains("190"), "Meta's code is named: {bad:?}");
    assert!(app.get("/api/v1/channels").await.body["items"].as_array().unwrap().is_empty(), "nothing saved");

    let good = app.post("/api/v1/channels", json!({"kind": "whatsapp", "name": "WA", "config": config(TOKEN)})).await;
    assert_eq!(good.status, 201, "{good:?}");
    assert_eq!(good.body["info"]["verified_name"], "Окна Плюс");
    assert_eq!(good.body["info"]["display_phone_number"], "+7 900 555-01-01");
    let shown = good.body.to_string();
    for secret in [TOKEN, APP_SECRET, VERIFY_TOKEN] {
        assert!(!shown.contains(secret), "{secret} is never shown: {shown}");
    }
    let ch = good.body["id"].as_str().unwrap().to_string();
    assert!(!app.get(&format!("/api/v1/channels/{ch}")).await.body.to_string().contains(APP_SECRET));
    // Meta's check of the callback URL: the wrong verify token is refused, the right one answered.
    let hook = format!("{}/hooks/{ch}", app.url);
    assert!(sim.subscribe(&hook, "guessed").await.is_err());
    sim.subscribe(&hook, VERIFY_TOKEN).await.expect("the challenge is answered");
}

#[tokio::test]
async fn signed_messages_and_media_are_stored_and_forged_ones_refused() {
    let (app, sim, ch) = number(None).await;
    let anna = sim.person("79001110001", "Анна Смирнова");
    let (conv, m) = writes(&app, &anna, "Здравствуйте! Где мой заказ?").await;
    assert_eq!(m["direction"], "in");
    let contact = app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"].clone();
    assert_eq!(contact["name"], "Анна Смирнова");
    assert_eq!(contact["identities"][0]["kind"], "whatsapp");
    assert_eq!(contact["identities"][0]["user_id"], "79001110001");

    // A document with a caption: downloaded through the media id.
    anna.send_media("document", b"%PDF-1.4 the invoice", "application/pdf", Some("invoice.pdf"), Some("Счёт")).await;
    let doc = app.wait_message(|m| m["text"] == "Счёт").await;
    let att = eventually(15, || async {
        let m = app.get(&format!("/api/v1/messages/{}", doc["id"].as_str().unwrap())).await.body;
        let a = m["attachments"][0].clone();
        (a["state"] == "ready").then_some(a)
    })
    .await
    .expect("the document is fetched");
    assert_eq!(att["name"], "invoice.pdf");
    let file = app
        .http
        .get(format!("{}{}", app.url, att["url"].as_str().unwrap()))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(file.bytes().await.unwrap().as_ref(), b"%PDF-1.4 the invoice");

    // A location and a shared contact arrive as text.
    anna.send_location(55.7558, 37.6173, Some("Склад"), Some("Москва, ул. Складская, 1")).await;
    app.wait_message(|m| m["text"].as_str().is_some_and(|t| t.starts_with("📍 Склад (55.7558, 37.6173)"))).await;
    anna.send_contact("Иван Петров", "+7 900 222-33-44").await;
    app.wait_message(|m| m["text"] == "👤 Иван Петров: +7 900 222-33-44").await;

    // Meta's redelivery is recorded once.
    let before =
        app.get(&format!("/api/v1/conversations/{conv}/messages")).await.body["items"].as_array().unwrap().len();
    assert_eq!(sim.redeliver_last().await, Some(200));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after =
        app.get(&format!("/api/v1/conversations/{conv}/messages")).await.body["items"].as_array().unwrap().len();
    assert_eq!(before, after);

    // A body signed with another secret, or not at all, is refused.
    let forged = sim
        .envelope(json!({"messages": [{"from": "666", "id": "wamid.forged", "type": "text", "text": {"body": "x"}}]}));
    let raw = forged.to_string().into_bytes();
    let post = |sig: Option<String>| {
        let mut r = app
            .http
            .post(format!("{}/hooks/{ch}", app.url))
            .header("content-type", "application/json")
            .body(raw.clone());
        if let Some(s) = sig {
            r = r.header("x-hub-signature-256", s);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status().as_u16(), 401);
    let wrong = okno_domain::signing::sign(b"not-the-app-secret", &raw);
    assert_eq!(post(Some(wrong)).await.unwrap().status().as_u16(), 401);
    assert_eq!(post(Some(sim.sign(&raw))).await.unwrap().status().as_u16(), 200, "the right signature passes");
}

#[tokio::test]
async fn a_reply_is_delivered_and_receipts_move_its_status_forward_only() {
    let (app, sim, _ch) = number(None).await;
    sim.set_auto_statuses(&[]);
    let boris = sim.person("79001110002", "Борис");
    let (conv, m) = writes(&app, &boris, "Когда доставка?").await;
    let id = reply(&app, &conv, json!({"text": "Завтра с 10 до 14 *курьер* позвонит", "reply_to": m["id"]})).await;
    let sent = final_status(&app, &id).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let got = sim.sent_to("79001110002");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].shown.as_deref(), Some("Завтра с 10 до 14 *курьер* позвонит"));
    assert_eq!(got[0].body["context"]["message_id"], boris_last(&sim, &got[0]));
    let wamid = got[0].id.clone();
    assert_eq!(sent["external_id"], wamid.as_str());

    // Delivered, then read; a late `delivered` and a repeated `sent` change nothing.
    sim.status(&wamid, "delivered").await;
    status_becomes(&app, &id, "delivered").await;
    boris.read_all().await;
    status_becomes(&app, &id, "read").await;
    let storm: Vec<(String, String)> =
        ["delivered", "sent", "read", "delivered"].iter().map(|s| (wamid.clone(), s.to_string())).collect();
    assert_eq!(sim.push_statuses(&storm, 2, 2).await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.get(&format!("/api/v1/messages/{id}")).await.body["status"], "read");
}

/// The person's message a reply quoted: the inbound wamid okno stored.
fn boris_last(sim: &WaSim, sent: &okno_testkit::whatsapp::Sent) -> String {
    let pushed = sim.pushes();
    let first = pushed.iter().find(|p| String::from_utf8_lossy(&p.body).contains("Когда доставка?")).expect("pushed");
    let v: Value = serde_json::from_slice(&first.body).unwrap();
    let _ = sent;
    v["entry"][0]["changes"][0]["value"]["messages"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_menu_bot_answers_with_interactive_buttons_and_the_press_is_followed() {
    let (app, sim, ch) = number(None).await;
    let bot = r#"
name: Помощник
menus:
  main:
    text: Здравствуйте! Чем помочь?
    items:
      - text: Доставка
        do: {reply: {text: Доставка по городу — 1–2 дня.}}
      - text: Оператор
        do: {handoff: {text: Соединяю с оператором.}}
"#;
    let r = app
        .http
        .put(format!("{}/api/v1/bots/{ch}", app.url))
        .bearer_auth(&app.token)
        .header("content-type", "application/yaml")
        .body(bot)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let vera = sim.person("79001110003", "Вера");
    vera.write("Привет").await;
    let menu = eventually(15, || async { sim.sent_to("79001110003").into_iter().find(|s| s.kind == "interactive") })
        .await
        .expect("the bot shows its menu");
    assert_eq!(menu.shown.as_deref(), Some("Здравствуйте! Чем помочь?"));
    let labels = menu.buttons();
    assert!(labels.contains(&"Доставка".to_string()) && labels.contains(&"Оператор".to_string()), "{labels:?}");
    assert!(labels.len() <= 10, "within WhatsApp's limits: {labels:?}");
    vera.choose("Доставка").await;
    eventually(15, || async {
        vera.shown().iter().any(|t| t == "Доставка по городу — 1–2 дня.").then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the bot follows the press: {:?}", vera.shown()));
}

#[tokio::test]
async fn a_typed_link_code_links_the_person_and_a_rule_then_reaches_them() {
    let (app, sim, ch) = number(None).await;
    let c = app.post("/api/v1/contacts", json!({"external_id": "client-42", "name": "Галина Орлова"})).await;
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let link = app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await;
    assert_eq!(link.status, 201, "{link:?}");
    let code = link.body["code"].as_str().unwrap().to_string();
    assert_eq!(link.body["links"][&ch], format!("https://wa.me/79005550101?text={code}"));

    let galina = sim.person("79001110004", "Галя");
    galina.write(&code).await;
    eventually(15, || async { galina.shown().into_iter().find(|t| t.contains("Галина Орлова")) })
        .await
        .unwrap_or_else(|| panic!("a confirmation: {:?}", galina.shown()));
    let linked = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
    assert_eq!(linked.body["identities"][0]["kind"], "whatsapp", "{linked:?}");
    assert_eq!(linked.body["identities"][0]["user_id"], "79001110004");

    let rule = json!({"name": "Заказ отгружен", "event": "order.shipped", "recipients": [{"external_id": "{{ data.client }}"}],
                      "template": "Заказ {{ data.number }} отгружен"});
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    let e = app
        .post(
            "/api/v1/events",
            json!({"type": "order.shipped", "key": "ship-1", "data": {"client": "client-42", "number": "№1042"}}),
        )
        .await;
    assert_eq!(e.status, 202, "{e:?}");
    eventually(15, || async {
        galina.shown().iter().any(|t| t == "Заказ №1042 отгружен").then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the notification reaches WhatsApp: {:?}", galina.shown()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_everyone_once_within_metas_limits() {
    // Meta's limits on in the simulator, a tight throughput so the pace shows: okno keeps it.
    let (app, sim, _ch) = number(Some(json!({"per_second": 4}))).await;
    sim.set_rates(5, 6.0, 45);
    let mut people = Vec::new();
    for i in 0..8 {
        let p = sim.person(&format!("7900222000{i}"), &format!("Клиент {i}"));
        let (_, m) = writes(&app, &p, &format!("Здравствуйте, я {i}")).await;
        let contact = m["contact_id"].as_str().unwrap().to_string();
        let r = app.patch(&format!("/api/v1/contacts/{contact}"), json!({"groups": ["clients"]})).await;
        assert_eq!(r.status, 200, "{r:?}");
        people.push(p);
    }
    let started = std::time::Instant::now();
    let r = app
        .post(
            "/api/v1/broadcasts",
            json!({"name": "Акция", "audience": {"groups": ["clients"]}, "text": "Скидка 10% до пятницы"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let done = eventually(30, || async {
        let b = app.get(&format!("/api/v1/broadcasts/{id}")).await.body;
        (b["status"] == "done").then_some(b)
    })
    .await
    .expect("the broadcast finishes");
    assert_eq!((&done["sent"], &done["failed"]), (&json!(8), &json!(0)), "{done}");
    for p in &people {
        assert_eq!(p.shown().iter().filter(|t| *t == "Скидка 10% до пятницы").count(), 1, "exactly once each");
    }
    assert!(sim.refused().iter().all(|(_, code)| *code != 130429), "okno kept the throughput: {:?}", sim.refused());
    assert!(started.elapsed() >= Duration::from_millis(1500), "8 messages at 4/s take over a second and a half");
}

#[tokio::test]
async fn metas_refusals_end_the_message_failed_with_the_code_and_reason() {
    let (app, sim, _ch) = number(None).await;
    let dina = sim.person("79001110005", "Дина");
    let (conv, _) = writes(&app, &dina, "Вопрос").await;
    // The person left WhatsApp: 131026, permanent.
    dina.leave();
    let id = reply(&app, &conv, json!({"text": "Ответ"})).await;
    let failed = status_becomes(&app, &id, "failed").await;
    assert!(failed["error"].as_str().unwrap().starts_with("131026: Message Undeliverable"), "{failed}");

    // Meta's clock moved on past the window (okno still thought it open): 131047 comes back
    // synchronously, or — as Cloud API also does — as a `failed` status after acceptance.
    let emil = sim.person("79001110006", "Эмиль");
    let (conv, _) = writes(&app, &emil, "Здравствуйте").await;
    sim.advance(Duration::from_secs(25 * 3600));
    let id = reply(&app, &conv, json!({"text": "Поздно"})).await;
    let failed = status_becomes(&app, &id, "failed").await;
    assert!(failed["error"].as_str().unwrap().starts_with("131047: Re-engagement message"), "{failed}");
    sim.set_window_mode(WindowMode::FailedStatus);
    let id = reply(&app, &conv, json!({"text": "Ещё раз"})).await;
    let failed = status_becomes(&app, &id, "failed").await;
    assert!(failed["error"].as_str().unwrap().starts_with("131047"), "{failed}");
}

#[tokio::test]
async fn a_survey_asks_with_a_list_and_takes_the_picked_row_and_a_typed_answer() {
    let (app, sim, _ch) = number(None).await;
    let nina = sim.person("79001112233", "Нина");
    let (_, m) = writes(&app, &nina, "Спасибо, получила").await;
    let survey = super::delivery_survey(&app, &m["contact_id"]).await;
    // Five answers are more than WhatsApp's three reply buttons: a list of five rows.
    let asked = eventually(15, || async {
        sim.sent_to("79001112233")
            .into_iter()
            .find(|s| s.shown.as_deref().is_some_and(|t| t.starts_with("Оцените доставку")))
    })
    .await
    .expect("the score is asked");
    assert_eq!(asked.body["interactive"]["type"], "list", "{:?}", asked.body);
    assert_eq!(asked.buttons(), ["1", "2", "3", "4", "5"]);
    nina.choose("4").await;
    eventually(15, || async { nina.shown().into_iter().find(|t| t.starts_with("Что улучшить?")) })
        .await
        .unwrap_or_else(|| panic!("the second question: {:?}", nina.shown()));
    nina.write("Позвонить за час").await;
    super::survey_completed_with(&app, &survey, 4.0).await;
}
