//! The SMS channel against the gateway simulator, end to end: connecting each provider (bad
//! credentials refused, secrets never shown), people's texts and MMS stored, replies sent by
//! each of SMS.ru, SMSC and Twilio, delivery reports moving a message's status, refusals ending
//! it `failed` with the provider's words, a menu bot in numbered lines, a texted link code, a
//! notification rule, a broadcast at the channel's pace and a survey answered by text.

use std::time::Duration;

use okno_testkit::sms::{Report, SmsSim, CALLBACK_SECRET};
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Value};

use super::{final_status, reply};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH: &str = "twilio-auth-token-0123";
const NUMBER: &str = "+15005550006";

fn twilio_config() -> Value {
    json!({"provider": "twilio", "account_sid": SID, "auth_token": AUTH, "sender": NUMBER})
}

async fn twilio() -> (TestApp, SmsSim, String, String) {
    let app = TestApp::spawn().await;
    let sim = SmsSim::start().await;
    let acct = sim.add_twilio(SID, AUTH, NUMBER, 20.0);
    let ch = app.sms_channel(&sim, &acct, twilio_config()).await;
    (app, sim, ch, acct)
}

/// Waits until message `id` has `status`; returns it.
async fn wait_status(app: &TestApp, id: &str, status: &str) -> Value {
    let got = eventually(10, || async {
        let m = app.get(&format!("/api/v1/messages/{id}")).await.body;
        (m["status"] == status).then_some(m)
    })
    .await;
    match got {
        Some(m) => m,
        None => panic!("message {id} reaches {status}: {}", app.get(&format!("/api/v1/messages/{id}")).await.body),
    }
}

async fn sent_to(sim: &SmsSim, phone: &str, n: usize) -> Vec<okno_testkit::sms::Sent> {
    eventually(10, || async {
        let s = sim.sent_to(phone);
        (s.len() >= n).then_some(s)
    })
    .await
    .unwrap_or_else(|| panic!("{phone} gets {n} SMS: {:?}", sim.sent_to(phone)))
}

async fn conversation_of(app: &TestApp, text: &str) -> (String, Value) {
    let m = app.wait_message(|m| m["text"] == text).await;
    (m["conversation_id"].as_str().unwrap().to_string(), m)
}

#[tokio::test]
async fn each_provider_connects_with_its_balance_call_and_bad_credentials_are_a_clear_400() {
    let app = TestApp::spawn().await;
    let sim = SmsSim::start().await;
    sim.add_smsru("SMSRU-API-ID-1", 150.0);
    sim.add_smsc("okno-shop", "smsc-api-password", 90.0);
    sim.add_twilio(SID, AUTH, NUMBER, 12.5);
    let base = sim.api_base();
    let cases = [
        (json!({"provider": "smsru", "api_id": "someone-elses"}), "Неправильный api_id"),
        (json!({"provider": "smsc", "login": "okno-shop", "password": "wrong"}), "authorise error"),
        (json!({"provider": "twilio", "account_sid": SID, "auth_token": "wrong", "sender": NUMBER}), "Authenticate"),
    ];
    for (mut config, words) in cases {
        config["api_base"] = json!(base);
        let bad = app.post("/api/v1/channels", json!({"kind": "sms", "name": "SMS", "config": config})).await;
        assert_eq!((bad.status, bad.code()), (400, "invalid_credentials"), "{bad:?}");
        assert!(bad.body["error"]["message"].as_str().unwrap().contains(words), "the provider's words: {bad:?}");
    }
    let missing = app
        .post(
            "/api/v1/channels",
            json!({"kind": "sms", "name": "SMS", "config": {"provider": "smsc", "login": "x", "api_base": base}}),
        )
        .await;
    assert_eq!(missing.status, 400, "{missing:?}");
    assert!(missing.body["error"]["message"].as_str().unwrap().contains("password"), "{missing:?}");
    assert!(app.get("/api/v1/channels").await.body["items"].as_array().unwrap().is_empty(), "nothing saved");

    let goods = [
        (json!({"provider": "smsru", "api_id": "SMSRU-API-ID-1", "sender": "OknoShop"}), "150", "SMSRU-API-ID-1"),
        (
            json!({"provider": "smsc", "login": "okno-shop", "password": "smsc-api-password"}),
            "90.00",
            "smsc-api-password",
        ),
        (twilio_config(), "12.50", AUTH),
    ];
    for (mut config, balance, secret) in goods {
        config["api_base"] = json!(base);
        config["callback_secret"] = json!(CALLBACK_SECRET);
        let good = app.post("/api/v1/channels", json!({"kind": "sms", "name": "SMS", "config": config})).await;
        assert_eq!(good.status, 201, "{good:?}");
        let shown = good.body.to_string();
        assert!(good.body["info"]["balance"].as_str().unwrap().starts_with(balance), "{good:?}");
        assert!(!shown.contains(secret) && !shown.contains(CALLBACK_SECRET), "secrets are never shown: {shown}");
        let again = app.get(&format!("/api/v1/channels/{}", good.body["id"].as_str().unwrap())).await;
        assert!(!again.body.to_string().contains(secret), "{again:?}");
    }
}

#[tokio::test]
async fn a_text_and_an_mms_are_stored_and_the_reply_is_delivered_as_reports_come_in() {
    let (app, sim, _ch, acct) = twilio().await;
    assert_eq!(sim.text(&acct, "+79001234567", "Здравствуйте! Где мой заказ?").await, Some(200));
    let (conv, m) = conversation_of(&app, "Здравствуйте! Где мой заказ?").await;
    assert_eq!(m["direction"], "in");
    let contact = app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"].clone();
    assert_eq!(contact["identities"][0]["kind"], "sms");
    assert_eq!(contact["identities"][0]["user_id"], "79001234567");

    assert_eq!(sim.mms(&acct, "+79001234567", "фото чека", "image/jpeg", b"\xff\xd8\xff receipt").await, Some(200));
    let mms = eventually(10, || async {
        let items = app.get(&format!("/api/v1/conversations/{conv}/messages")).await.body["items"].clone();
        items.as_array()?.iter().find(|m| m["text"] == "фото чека" && m["attachments"][0]["state"] == "ready").cloned()
    })
    .await
    .expect("the MMS with its file fetched");
    let url = mms["attachments"][0]["url"].as_str().unwrap();
    let r = app.http.get(format!("{}{url}", app.url)).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"\xff\xd8\xff receipt");

    let text = "Ваш заказ №1042 <b>в пути</b> & скоро будет";
    let id = reply(&app, &conv, json!({"text": text})).await;
    let sent = sent_to(&sim, "79001234567", 1).await;
    assert_eq!((sent[0].text.as_str(), sent[0].sender.as_deref()), (text, Some(NUMBER)));
    let status_callback = sent[0].status_callback.clone().expect("a StatusCallback");
    assert!(status_callback.ends_with(&format!("?secret={CALLBACK_SECRET}")), "{status_callback}");
    let done = wait_status(&app, &id, "sent").await;
    assert_eq!(done["external_id"], sent[0].id.as_str());

    // Reports out of order and twice: the status only moves forward.
    assert_eq!(sim.report(&sent[0], Report::Delivered).await, Some(200));
    wait_status(&app, &id, "delivered").await;
    assert_eq!(sim.report(&sent[0], Report::Sent).await, Some(200));
    assert_eq!(sim.report(&sent[0], Report::Delivered).await, Some(200));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.get(&format!("/api/v1/messages/{id}")).await.body["status"], "delivered");

    // A report not signed by the account's token is refused.
    let mut forged = sim.report_call(&sent[0], Report::Failed);
    forged.headers.retain(|(k, _)| k != "X-Twilio-Signature");
    forged.headers.push(("X-Twilio-Signature".into(), "bm90IGEgc2lnbmF0dXJl".into()));
    assert_eq!(sim.push(&forged).await, Some(401));
    let no_secret = okno_testkit::sms::HookCall { url: forged.url.replace(CALLBACK_SECRET, "guess"), ..forged };
    assert_eq!(sim.push(&no_secret).await, Some(401));
}

#[tokio::test]
async fn smsru_sends_a_reply_and_its_callbacks_move_the_status_answered_100() {
    let app = TestApp::spawn().await;
    let sim = SmsSim::start().await;
    let acct = sim.add_smsru("SMSRU-API-ID-2", 100.0);
    sim.approve_senders(&acct, &["OknoShop"]);
    let ch = app
        .sms_channel(&sim, &acct, json!({"provider": "smsru", "api_id": "SMSRU-API-ID-2", "sender": "OknoShop"}))
        .await;
    // SMS.ru carries no texts in: the person is known to okno by their number.
    let c = app.post("/api/v1/contacts", json!({"name": "Анна", "phone": "+7 900 765-43-21"})).await;
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let sender = okno_store::InboundSender {
        user_id: "79007654321".into(),
        chat_id: "79007654321".into(),
        ..Default::default()
    };
    app.running().engine.store.attach_identity(&contact_id.as_str().into(), &ch.as_str().into(), sender).await.unwrap();
    let r = app
        .post(
            "/api/v1/messages",
            json!({"contact_id": contact_id, "text": "Заказ №77 готов к выдаче", "channel_id": ch}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let sent = sent_to(&sim, "79007654321", 1).await;
    assert_eq!(
        (sent[0].text.as_str(), sent[0].sender.as_deref(), sent[0].encoding),
        ("Заказ №77 готов к выдаче", Some("OknoShop"), "ucs2")
    );
    wait_status(&app, &id, "sent").await;
    assert_eq!(sim.report(&sent[0], Report::Delivered).await, Some(200));
    assert_eq!(sim.attempts().last().unwrap().answer, "100", "SMS.ru's callback is answered 100");
    wait_status(&app, &id, "delivered").await;
    assert!(sim.balance(&acct) < 100.0, "charged");
}

#[tokio::test]
async fn smsc_sends_a_reply_and_a_failed_report_and_no_money_end_messages_failed_with_the_reason() {
    let app = TestApp::spawn().await;
    let sim = SmsSim::start().await;
    let acct = sim.add_smsc("okno-shop", "smsc-api-password", 7.0);
    app.sms_channel(&sim, &acct, json!({"provider": "smsc", "login": "okno-shop", "password": "smsc-api-password"}))
        .await;
    assert_eq!(sim.text(&acct, "89001112233", "Можно перенести доставку?").await, Some(200));
    let (conv, m) = conversation_of(&app, "Можно перенести доставку?").await;
    let contact = app.get(&format!("/api/v1/contacts/{}", m["contact_id"].as_str().unwrap())).await.body;
    assert_eq!(contact["identities"][0]["user_id"], "79001112233", "8… is normalised to 7…");

    let first = reply(&app, &conv, json!({"text": "Да, на завтра"})).await;
    let sent = sent_to(&sim, "79001112233", 1).await;
    wait_status(&app, &first, "sent").await;
    assert_eq!(sim.report(&sent[0], Report::Failed).await, Some(200));
    let failed = wait_status(&app, &first, "failed").await;
    assert!(failed["error"].as_str().unwrap_or_default().contains("невозможно доставить"), "{failed}");

    // 3.20 a part: 7.00 pays for two; the third is refused for good with SMSC's words.
    let second = reply(&app, &conv, json!({"text": "Курьер позвонит"})).await;
    wait_status(&app, &second, "sent").await;
    let third = reply(&app, &conv, json!({"text": "Ещё одно"})).await;
    let poor = final_status(&app, &third).await;
    assert_eq!(poor["status"], "failed", "{poor}");
    assert!(poor["error"].as_str().unwrap().contains("no money"), "{poor}");
    assert_eq!(sim.sent_to("79001112233").len(), 2);
}

#[tokio::test]
async fn a_number_on_the_stop_list_ends_the_message_failed_and_marks_the_person() {
    let (app, sim, _ch, acct) = twilio().await;
    sim.text(&acct, "+79005550013", "Добрый день").await;
    let (conv, m) = conversation_of(&app, "Добрый день").await;
    sim.blacklist("79005550013");
    let id = reply(&app, &conv, json!({"text": "Акция!"})).await;
    let failed = final_status(&app, &id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("unsubscribed recipient"), "Twilio's words: {failed}");
    let contact = app.get(&format!("/api/v1/contacts/{}", m["contact_id"].as_str().unwrap())).await.body;
    assert_eq!(contact["identities"][0]["opted_out"], true, "{contact}");
    assert!(sim.sent_to("79005550013").is_empty());
}

pub(super) const BOT: &str = r#"
name: Магазин
menus:
  main:
    text: Здравствуйте! Выберите пункт.
    items:
      - text: Доставка
        do: {menu: delivery}
      - text: Оператор
        do: {handoff: {text: Соединяю с оператором.}}
  delivery:
    text: Доставляем по городу за 2 часа.
    items:
      - text: Назад
        do: {menu: main}
"#;

#[tokio::test]
async fn a_menu_bot_answers_in_numbered_lines_and_takes_a_texted_number() {
    let (app, sim, ch, acct) = twilio().await;
    super::put_bot(&app, &ch, BOT).await;
    sim.text(&acct, "+79002223344", "привет").await;
    // A first word the menu does not know: okno says so and shows the menu, numbered.
    let menu = sent_to(&sim, "79002223344", 2).await;
    let texts: Vec<&str> = menu.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["Не понял. Выберите пункт меню.", "Здравствуйте! Выберите пункт.\n1. Доставка\n2. Оператор"]);
    sim.text(&acct, "+79002223344", "1").await;
    let next = sent_to(&sim, "79002223344", 3).await;
    assert!(next[2].text.starts_with("Доставляем по городу за 2 часа.\n1. Назад"), "{:?}", next[2].text);
}

#[tokio::test]
async fn a_texted_link_code_makes_the_number_the_business_contact() {
    let (app, sim, _ch, acct) = twilio().await;
    let c = app.post("/api/v1/contacts", json!({"external_id": "emp-42", "name": "Иван Петров"})).await;
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let link = app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await;
    assert_eq!(link.status, 201, "{link:?}");
    let code = link.body["code"].as_str().unwrap().to_string();
    sim.text(&acct, "+79004445566", &code).await;
    let confirm = sent_to(&sim, "79004445566", 1).await;
    assert_eq!(confirm[0].text, "Готово! Ваш аккаунт связан: Иван Петров.");
    let linked = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
    assert_eq!(linked.body["identities"][0]["kind"], "sms");
    assert_eq!(linked.body["identities"][0]["user_id"], "79004445566");
}

#[tokio::test]
async fn a_notification_rule_reaches_the_person_by_sms() {
    let (app, sim, ch, _acct) = twilio().await;
    let c = app.post("/api/v1/contacts", json!({"external_id": "1c-client-7", "name": "Ольга"})).await;
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let sender = okno_store::InboundSender {
        user_id: "79006667788".into(),
        chat_id: "79006667788".into(),
        ..Default::default()
    };
    app.running().engine.store.attach_identity(&contact_id.as_str().into(), &ch.as_str().into(), sender).await.unwrap();
    let rule = json!({"name": "Отгрузка", "event": "order.shipped", "recipients": [{"external_id": "{{ data.client }}"}],
                      "template": "Заказ №{{ data.order }} отгружен"});
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    let ev = app
        .post(
            "/api/v1/events",
            json!({"type": "order.shipped", "key": "ship-7", "data": {"client": "1c-client-7", "order": 1042}}),
        )
        .await;
    assert_eq!(ev.status, 202, "{ev:?}");
    let sent = sent_to(&sim, "79006667788", 1).await;
    assert_eq!(sent[0].text, "Заказ №1042 отгружен");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_each_person_once_at_the_channels_pace() {
    let app = TestApp::spawn().await;
    let sim = SmsSim::start().await;
    sim.set_rate_limit(Some(25));
    let acct = sim.add_twilio(SID, AUTH, NUMBER, 20.0);
    let mut config = twilio_config();
    config["limits"] = json!({"per_second": 10, "burst": 5});
    let ch = app.sms_channel(&sim, &acct, config).await;
    const CROWD: u64 = 30;
    for n in 0..CROWD {
        let phone = format!("7901000{:04}", n);
        let c = app.post("/api/v1/contacts", json!({"name": format!("Клиент{n} Иванов"), "groups": ["clients"]})).await;
        let sender = okno_store::InboundSender { user_id: phone.clone(), chat_id: phone, ..Default::default() };
        app.running()
            .engine
            .store
            .attach_identity(&c.body["id"].as_str().unwrap().into(), &ch.as_str().into(), sender)
            .await
            .unwrap();
    }
    let r = app
        .post("/api/v1/broadcasts", json!({"name": "Скидки", "audience": {"groups": ["clients"]}, "text": "{{ contact.first_name }}, скидка 10% до воскресенья."}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let done = eventually(60, || async {
        let b = app.get(&format!("/api/v1/broadcasts/{id}")).await.body;
        (b["status"] == "done").then_some(b)
    })
    .await
    .expect("the broadcast finishes");
    assert_eq!((&done["sent"], &done["failed"]), (&json!(CROWD), &json!(0)), "{done}");
    let sent = sim.sent();
    assert_eq!(sent.len(), CROWD as usize, "each person once");
    for n in 0..CROWD {
        let theirs: Vec<_> =
            sent.iter().filter(|s| s.to == format!("7901000{:04}", n)).map(|s| s.text.clone()).collect();
        assert_eq!(theirs, vec![format!("Клиент{n}, скидка 10% до воскресенья.")]);
    }
    assert_eq!(sim.rate_limited(), 0, "okno kept under the gateway's rate");
    let spread = sent.last().unwrap().at - sent[0].at;
    assert!(spread >= Duration::from_millis(2000), "30 SMS at 10 a second take over 2 s, took {spread:?}");
}

#[tokio::test]
async fn a_survey_asks_in_numbered_lines_and_takes_texted_answers() {
    let (app, sim, _ch, acct) = twilio().await;
    sim.text(&acct, "+79004445566", "Спасибо, получил").await;
    let (_, m) = conversation_of(&app, "Спасибо, получил").await;
    let survey = super::delivery_survey(&app, &m["contact_id"]).await;
    let asked = sent_to(&sim, "79004445566", 1).await;
    assert_eq!(asked[0].text, "Оцените доставку\n1. 1\n2. 2\n3. 3\n4. 4\n5. 5");
    sim.text(&acct, "+79004445566", "3").await;
    let next = sent_to(&sim, "79004445566", 2).await;
    assert!(next[1].text.starts_with("Что улучшить?"), "{:?}", next[1].text);
    sim.text(&acct, "+79004445566", "Привозить утром").await;
    super::survey_completed_with(&app, &survey, 3.0).await;
}
