//! What the WhatsApp-like platforms share, through okno's API against the WhatsApp and SMS
//! simulators: the 24-hour customer-service window (free text refused up front once it is
//! closed, a registered template sent instead, the window opened again by the person's next
//! message), a notification stepping from WhatsApp to SMS when the window is closed, a rule's
//! platform template, a broadcast's price in SMS parts before it starts and its phone-only
//! audience reached by SMS, an operator's reading marked on the platform, and one person
//! reached on Telegram, WhatsApp, Viber and SMS stepped through in that order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use okno_testkit::sms::SmsSim;
use okno_testkit::whatsapp::WaSim;
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Value};

const WA_TOKEN: &str = "EAAG-okno-window-test";
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH: &str = "twilio-auth-token-0123";
const SMS_NUMBER: &str = "+15005550006";
const DAY: Duration = Duration::from_secs(24 * 3600);

async fn whatsapp(app: &TestApp) -> (WaSim, String) {
    let sim = WaSim::start().await;
    let ch = app.whatsapp_channel(&sim, WA_TOKEN, None).await;
    (sim, ch)
}

async fn sms(app: &TestApp, extra: Value) -> (SmsSim, String) {
    let sim = SmsSim::start().await;
    let acct = sim.add_twilio(SID, AUTH, SMS_NUMBER, 20.0);
    let mut config = json!({"provider": "twilio", "account_sid": SID, "auth_token": AUTH, "sender": SMS_NUMBER});
    if let (Value::Object(c), Value::Object(e)) = (&mut config, extra) {
        c.extend(e);
    }
    let ch = app.sms_channel(&sim, &acct, config).await;
    (sim, ch)
}

/// The person last wrote on `channel` a day and an hour ago, as far as okno knows.
async fn last_wrote_yesterday(app: &TestApp, channel: &str) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let then = now - (DAY + Duration::from_secs(3600)).as_millis() as i64;
    app.db.execute_raw(&[format!("UPDATE identities SET last_seen_at = {then} WHERE channel_id = '{channel}'")]).await;
}

async fn conversation_of(app: &TestApp, text: &str) -> String {
    let m = app.wait_message(|m| m["text"] == text).await;
    m["conversation_id"].as_str().unwrap().to_string()
}

async fn shown_to(sim: &WaSim, wa_id: &str, pred: impl Fn(&okno_testkit::whatsapp::Sent) -> bool) -> Value {
    let got = eventually(15, || async { sim.sent_to(wa_id).into_iter().find(|s| pred(s)).map(|s| s.body) }).await;
    got.unwrap_or_else(|| panic!("nothing such reached {wa_id}: {:?}", sim.sent_to(wa_id)))
}

#[tokio::test]
async fn free_text_outside_the_window_is_refused_up_front_and_a_registered_template_goes_out_instead() {
    let app = TestApp::spawn().await;
    let (sim, ch) = whatsapp(&app).await;
    sim.add_template("order_update", "ru", 2);
    let templates = json!([{"name": "order_update", "language": "ru", "params": ["order", "date"]}]);
    let patched = app.patch(&format!("/api/v1/channels/{ch}"), json!({"config": {"templates": templates}})).await;
    assert_eq!(patched.status, 200, "{patched:?}");
    let irina = sim.person("79001112233", "Ирина");
    irina.write("Здравствуйте, где мой заказ?").await;
    let conv = conversation_of(&app, "Здравствуйте, где мой заказ?").await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    // Inside the window, free text goes.
    assert_eq!(app.post(&path, json!({"text": "Уже везём"})).await.status, 202);
    shown_to(&sim, "79001112233", |s| s.shown.as_deref() == Some("Уже везём")).await;

    // A day later the window is closed: free text is refused before it is queued.
    last_wrote_yesterday(&app, &ch).await;
    sim.advance(DAY + Duration::from_secs(3600));
    let refused = app.post(&path, json!({"text": "Заказ у курьера"})).await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert_eq!(refused.body["error"]["code"], "window_closed", "{refused:?}");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("template"), "{refused:?}");
    // Only a template the channel registered, with its parameters.
    let t = |name: &str, params: Value| json!({"text": "Заказ у курьера", "template": {"name": name, "language": "ru", "params": params}});
    let unknown = app.post(&path, t("promo", json!([]))).await;
    assert_eq!(
        (unknown.status, unknown.body["error"]["code"].as_str()),
        (422, Some("unknown_template")),
        "{unknown:?}"
    );
    let short = app.post(&path, t("order_update", json!(["№1042"]))).await;
    assert_eq!((short.status, short.body["error"]["code"].as_str()), (422, Some("template_params")), "{short:?}");
    let sent = app.post(&path, t("order_update", json!(["№1042", "завтра"]))).await;
    assert_eq!(sent.status, 202, "{sent:?}");
    let body = shown_to(&sim, "79001112233", |s| s.kind == "template").await;
    assert_eq!(body["template"]["name"], "order_update", "{body}");
    assert_eq!(body["template"]["language"]["code"], "ru", "{body}");
    let params: Vec<&str> = body["template"]["components"][0]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["№1042", "завтра"]);
    assert!(sim.refused().is_empty(), "Meta refused nothing: {:?}", sim.refused());

    // The person writes again: the window is open, free text goes.
    irina.write("Спасибо!").await;
    app.wait_message(|m| m["text"] == "Спасибо!").await;
    assert_eq!(app.post(&path, json!({"text": "Пожалуйста"})).await.status, 202);
    shown_to(&sim, "79001112233", |s| s.shown.as_deref() == Some("Пожалуйста")).await;
}

#[tokio::test]
async fn a_notification_steps_from_whatsapp_to_sms_when_the_window_is_closed() {
    let app = TestApp::spawn().await;
    let (wa, wa_ch) = whatsapp(&app).await;
    let (sms, _sms_ch) = sms(&app, json!({})).await;
    let pavel = wa.person("79004445566", "Павел");
    pavel.write("Добрый день").await;
    let m = app.wait_message(|m| m["text"] == "Добрый день").await;
    let contact = m["contact_id"].as_str().unwrap();
    let patched = app
        .patch(&format!("/api/v1/contacts/{contact}"), json!({"external_id": "1c-77", "phone": "+7 900 444-55-66"}))
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    last_wrote_yesterday(&app, &wa_ch).await;
    wa.advance(DAY + Duration::from_secs(3600));
    let rule = json!({"name": "Готов", "event": "order.ready", "recipients": [{"external_id": "{{ data.client }}"}],
                      "template": "Заказ {{ data.n }} готов к выдаче"});
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    let ev = app
        .post("/api/v1/events", json!({"type": "order.ready", "key": "ready-7", "data": {"client": "1c-77", "n": 7}}))
        .await;
    assert_eq!(ev.status, 202, "{ev:?}");
    let texted = eventually(20, || async { sms.sent_to("79004445566").into_iter().next() }).await;
    let texted = texted.unwrap_or_else(|| panic!("the SMS step: WhatsApp got {:?}", wa.sent_to("79004445566")));
    assert_eq!(texted.text, "Заказ 7 готов к выдаче");
    assert!(wa.sent_to("79004445566").is_empty(), "nothing was sent to fail on WhatsApp");
    // The WhatsApp attempt is on record, failed with the reason.
    let failed = eventually(10, || async {
        let page = app.get(&format!("/api/v1/conversations/{}/messages", m["conversation_id"].as_str().unwrap())).await;
        page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["channel_id"] == wa_ch.as_str() && x["status"] == "failed")
            .cloned()
    })
    .await
    .unwrap_or_else(|| panic!("a failed WhatsApp message"));
    assert!(failed["error"].as_str().unwrap().contains("window"), "{failed}");
}

#[tokio::test]
async fn a_rules_platform_template_goes_out_as_the_template_outside_the_window_and_as_text_inside() {
    let app = TestApp::spawn().await;
    let (sim, ch) = whatsapp(&app).await;
    sim.add_template("order_ready", "ru", 2);
    let anna = sim.person("79007778899", "Анна");
    anna.write("Привет").await;
    let m = app.wait_message(|m| m["text"] == "Привет").await;
    let contact = m["contact_id"].as_str().unwrap();
    assert_eq!(app.patch(&format!("/api/v1/contacts/{contact}"), json!({"external_id": "1c-88"})).await.status, 200);
    let rule = json!({"name": "Готов", "event": "order.ready", "recipients": [{"external_id": "{{ data.client }}"}],
                      "template": {"text": "Заказ {{ data.n }} готов", "name": "order_ready", "language": "ru",
                                   "params": ["{{ data.n }}", "{{ data.shop }}"]}});
    let made = app.post("/api/v1/rules", rule).await;
    assert_eq!(made.status, 201, "{made:?}");
    let event = |key: &str, n: i64| json!({"type": "order.ready", "key": key, "data": {"client": "1c-88", "n": n, "shop": "на Ленина"}});
    // Inside the window: the text.
    assert_eq!(app.post("/api/v1/events", event("r-1", 1)).await.status, 202);
    shown_to(&sim, "79007778899", |s| s.shown.as_deref() == Some("Заказ 1 готов")).await;
    // Outside it: the template, its params rendered for the event.
    last_wrote_yesterday(&app, &ch).await;
    sim.advance(DAY + Duration::from_secs(3600));
    assert_eq!(app.post("/api/v1/events", event("r-2", 2)).await.status, 202);
    let body = shown_to(&sim, "79007778899", |s| s.kind == "template").await;
    assert_eq!(body["template"]["name"], "order_ready");
    let params: Vec<&str> = body["template"]["components"][0]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["2", "на Ленина"]);
    // A rule naming a template badly is refused when it is written.
    let bad = json!({"name": "x", "event": "e", "recipients": [{"external_id": "a"}],
                     "template": {"text": "t", "name": "", "language": "ru"}});
    assert_eq!(app.post("/api/v1/rules", bad).await.status, 400);
}

#[tokio::test]
async fn a_broadcast_shows_its_price_in_sms_parts_before_it_starts_and_reaches_a_phone_only_audience() {
    let app = TestApp::spawn().await;
    let (sim, _ch) = sms(&app, json!({"price_per_segment": 2.5, "currency": "RUB"})).await;
    for (n, phone) in ["+7 900 000-00-01", "+7 900 000-00-02", "+7 900 000-00-03"].iter().enumerate() {
        let c = app
            .post("/api/v1/contacts", json!({"name": format!("Клиент {n}"), "phone": phone, "groups": ["vip"]}))
            .await;
        assert_eq!(c.status, 201, "{c:?}");
    }
    let long = "Привет! ".repeat(20); // 160 UTF-16 units of Cyrillic: three UCS-2 parts
    let e = app.post("/api/v1/broadcasts/estimate", json!({"audience": {"groups": ["vip"]}, "text": long})).await;
    assert_eq!(e.status, 200, "{e:?}");
    assert_eq!(e.body["people"], 3);
    assert_eq!(e.body["unreachable"], 0);
    let sms_cost = &e.body["channels"][0];
    assert_eq!(
        (&sms_cost["people"], &sms_cost["parts"], &sms_cost["encoding"], &sms_cost["total_parts"]),
        (&json!(3), &json!(3), &json!("ucs2"), &json!(9)),
        "{e:?}"
    );
    assert_eq!((&sms_cost["cost"], &sms_cost["currency"]), (&json!(22.5), &json!("RUB")), "{e:?}");
    let short =
        app.post("/api/v1/broadcasts/estimate", json!({"audience": {"groups": ["vip"]}, "text": "Sale today"})).await;
    assert_eq!(
        (&short.body["channels"][0]["parts"], &short.body["channels"][0]["encoding"]),
        (&json!(1), &json!("gsm7"))
    );

    let b = app
        .post(
            "/api/v1/broadcasts",
            json!({"name": "Акция", "audience": {"groups": ["vip"]}, "text": "Скидка 10% до пятницы"}),
        )
        .await;
    assert_eq!(b.status, 201, "{b:?}");
    let texted = eventually(20, || async { (sim.sent_count() == 3).then(|| sim.sent()) }).await;
    let texted = texted.unwrap_or_else(|| panic!("three texts: {:?}", sim.sent()));
    let mut to: Vec<String> = texted.iter().map(|s| s.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["79000000001", "79000000002", "79000000003"]);
}

#[tokio::test]
async fn an_operator_reading_a_conversation_marks_the_persons_message_read_on_whatsapp() {
    let app = TestApp::spawn().await;
    let (sim, _ch) = whatsapp(&app).await;
    let oleg = sim.person("79001234000", "Олег");
    oleg.write("Первый").await;
    let last = oleg.write("Второй").await;
    let conv = conversation_of(&app, "Второй").await;
    assert!(sim.read_marks().is_empty());
    let read = app.patch(&format!("/api/v1/conversations/{conv}"), json!({"read": true})).await;
    assert_eq!(read.status, 200, "{read:?}");
    let marked = eventually(10, || async { sim.read_marks().contains(&last.id).then_some(()) }).await;
    assert!(marked.is_some(), "the last message is marked read: {:?}", sim.read_marks());
}

/// The seed reports' chain: one person reached on Telegram, WhatsApp, Viber and by SMS stays one
/// contact, and a notification steps Telegram (the account is gone) → WhatsApp (window closed) →
/// Viber (the person left the bot) → SMS.
#[tokio::test]
async fn a_notification_steps_telegram_whatsapp_viber_then_sms_for_one_contact() {
    let app = TestApp::spawn().await;
    let tg = okno_testkit::telegram::TelegramSim::start().await;
    tg.add_bot("501501:chain-bot-token", "okno_chain_bot");
    let tg_ch = app.telegram_channel(&tg, "501501:chain-bot-token", "polling").await;
    let (wa, wa_ch) = whatsapp(&app).await;
    let viber = okno_testkit::viber::ViberSim::start().await;
    let viber_ch = app.viber_channel(&viber, "viber-chain-token-0123456789", None).await;
    let (sms, sms_ch) = sms(&app, json!({})).await;

    let c = app.post("/api/v1/contacts", json!({"external_id": "1c-501", "name": "Ольга Петрова"})).await;
    let contact = c.body["id"].as_str().unwrap().to_string();
    // She opens the bot's link on Telegram, types one link code on WhatsApp and another on
    // Viber: one contact.
    let link = format!("/api/v1/contacts/{contact}/link");
    let olga_tg = tg.user("501501:chain-bot-token", 501_501, "Ольга");
    olga_tg.send_text(&format!("/start {}", app.post(&link, json!({})).await.body["code"].as_str().unwrap()));
    let olga_wa = wa.person("79005556677", "Ольга");
    olga_wa.write(app.post(&link, json!({})).await.body["code"].as_str().unwrap()).await;
    let olga_viber = viber.person("OlgaViber05==", "Ольга");
    olga_viber.write(app.post(&link, json!({})).await.body["code"].as_str().unwrap()).await;
    let linked = eventually(15, || async {
        let c = app.get(&format!("/api/v1/contacts/{contact}")).await.body;
        (c["identities"].as_array().map_or(0, Vec::len) == 3).then_some(c)
    })
    .await
    .unwrap_or_else(|| panic!("three identities on the contact"));
    let mut kinds: Vec<&str> =
        linked["identities"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["telegram", "viber", "whatsapp"], "{linked}");
    assert_eq!(
        app.patch(&format!("/api/v1/contacts/{contact}"), json!({"phone": "8 900 555-66-77"})).await.status,
        200
    );

    // Telegram was her latest a day ago, WhatsApp an hour before (its window is closed), Viber
    // before that; since then her Telegram account is gone and she left the Viber bot, okno
    // hearing of neither.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let hour = 3_600_000;
    app.db
        .execute_raw(&[
            format!("UPDATE identities SET last_seen_at = {} WHERE channel_id = '{tg_ch}'", now - 24 * hour),
            format!("UPDATE identities SET last_seen_at = {} WHERE channel_id = '{wa_ch}'", now - 25 * hour),
            format!("UPDATE identities SET last_seen_at = {} WHERE channel_id = '{viber_ch}'", now - 26 * hour),
        ])
        .await;
    wa.advance(DAY + Duration::from_secs(3600));
    // okno's "linked" confirmation reached Viber before she left.
    let confirmed = eventually(10, || async { (!viber.sent_to("OlgaViber05==").is_empty()).then_some(()) }).await;
    assert!(confirmed.is_some(), "the linking confirmation on Viber");
    let confirmed =
        eventually(10, || async { (!tg.sent_to("501501:chain-bot-token", 501_501).is_empty()).then_some(()) }).await;
    assert!(confirmed.is_some(), "the linking confirmation on Telegram");
    olga_viber.leave();
    olga_tg.deactivate();

    let rule = json!({"name": "Доставка", "event": "delivery.today", "recipients": [{"external_id": "{{ data.client }}"}],
                      "template": "Сегодня привезём заказ {{ data.n }}"});
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    let ev = app
        .post(
            "/api/v1/events",
            json!({"type": "delivery.today", "key": "dlv-501", "data": {"client": "1c-501", "n": 501}}),
        )
        .await;
    assert_eq!(ev.status, 202, "{ev:?}");

    let texted = eventually(30, || async { sms.sent_to("79005556677").into_iter().next() }).await;
    let texted = texted.unwrap_or_else(|| panic!("the SMS step; Viber saw {:?}", viber.sent_to("OlgaViber05==")));
    assert_eq!(texted.text, "Сегодня привезём заказ 501");
    assert_eq!(sms.sent_to("79005556677").len(), 1, "sent once");
    // Each step is on record: Telegram and Viber failed with their platforms' reasons,
    // WhatsApp on its window.
    let failed_on = |channel: String| {
        let (app, contact) = (&app, contact.clone());
        async move {
            eventually(10, || async {
                let convs = app.get(&format!("/api/v1/conversations?contact_id={contact}&channel_id={channel}")).await;
                let conv = convs.body["items"][0]["id"].as_str()?.to_string();
                let page = app.get(&format!("/api/v1/conversations/{conv}/messages")).await;
                let items = page.body["items"].as_array()?;
                items.iter().find(|x| x["channel_id"] == channel.as_str() && x["status"] == "failed").cloned()
            })
            .await
            .unwrap_or_else(|| panic!("a failed message on {channel}"))
        }
    };
    let on_tg = failed_on(tg_ch.clone()).await;
    assert!(on_tg["error"].as_str().is_some_and(|e| e.contains("deactivated")), "{on_tg}");
    assert_eq!(on_tg["text"], "Сегодня привезём заказ 501");
    let on_wa = failed_on(wa_ch.clone()).await;
    assert!(on_wa["error"].as_str().is_some_and(|e| e.contains("window")), "{on_wa}");
    assert_eq!(on_wa["text"], "Сегодня привезём заказ 501");
    let on_viber = failed_on(viber_ch.clone()).await;
    assert!(on_viber["error"].as_str().is_some_and(|e| e.contains("receiverNotSubscribed")), "{on_viber}");
    assert_eq!(on_viber["text"], "Сегодня привезём заказ 501");
    assert!(wa.sent_to("79005556677").iter().all(|s| s.shown.as_deref() != Some("Сегодня привезём заказ 501")));
    // Still one contact, now with the SMS number too.
    let after = app.get(&format!("/api/v1/contacts/{contact}")).await.body;
    let channels: Vec<&str> =
        after["identities"].as_array().unwrap().iter().map(|i| i["channel_id"].as_str().unwrap()).collect();
    assert!(channels.contains(&sms_ch.as_str()) && channels.len() == 4, "{after}");
}
