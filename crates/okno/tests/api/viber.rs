//! Viber (REST Bot API) against its simulator, through okno's API: connecting (a bad token
//! refused with nothing saved, `set_webhook` with the event types and Viber's check of the
//! address), signed callbacks in and forged ones refused, replies out as keyboards, delivery
//! receipts moving a message's status forward only, a deep link's context linking a contact,
//! an unsubscribed person flagged and `receiverNotSubscribed` ending a message, a retryable
//! status retried, a picture Viber downloads by okno's signed link, a picture with buttons as one
//! rich media card, a menu bot, a broadcast and a survey.

use okno_testkit::viber::{Fault, SimPerson, ViberSim, BOT_URI};
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Value};

use super::{final_status, reply};

const TOKEN: &str = "4a5b6c7d8e9f0a1b-2c3d4e5f6a7b8c9d-okno-viber";

async fn bot(extra: Option<Value>) -> (TestApp, ViberSim, String) {
    let app = TestApp::spawn().await;
    let sim = ViberSim::start().await;
    let ch = app.viber_channel(&sim, TOKEN, extra).await;
    (app, sim, ch)
}

async fn writes(app: &TestApp, person: &SimPerson, text: &str) -> (String, Value) {
    let c = person.write(text).await;
    assert_eq!(c.answer.as_ref().map(|a| a.0), Some(200), "okno takes the signed callback");
    let m = app.wait_message(|m| m["text"] == text).await;
    (m["conversation_id"].as_str().unwrap().to_string(), m)
}

async fn status_becomes(app: &TestApp, id: &str, status: &str) -> Value {
    eventually(15, || async {
        let m = app.get(&format!("/api/v1/messages/{id}")).await.body;
        (m["status"] == status).then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("message {id} never became {status}"))
}

#[tokio::test]
async fn connecting_checks_the_token_and_sets_the_webhook_with_its_event_types() {
    let app = TestApp::spawn().await;
    let sim = ViberSim::start().await;
    sim.add_bot(TOKEN, "Окна Плюс", BOT_URI);
    let bad = app
        .post(
            "/api/v1/channels",
            json!({"kind": "viber", "name": "V", "config": {"token": "wrong", "api_base": sim.api_base()}}),
        )
        .await;
    assert!((400..500).contains(&bad.status), "{bad:?}");
    let listed = app.get("/api/v1/channels").await.body;
    assert!(!listed.to_string().contains("\"viber\""), "nothing saved: {listed}");

    let ch = app.viber_channel(&sim, TOKEN, None).await;
    let (url, types) = sim.webhook(TOKEN).expect("the webhook is set");
    assert_eq!(url, format!("{}/hooks/{ch}", app.url));
    for t in ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"] {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
    let shown = app.get(&format!("/api/v1/channels/{ch}")).await.body;
    assert!(!shown.to_string().contains(TOKEN), "the token is never shown: {shown}");
    assert!(!shown["config"].as_object().is_some_and(|c| c.contains_key("file_secret")), "{shown}");
}

#[tokio::test]
async fn messages_replies_keyboards_and_receipts() {
    let (app, sim, ch) = bot(None).await;
    let anna = sim.person("AnnaViberId01==", "Анна Смирнова");
    let (conv, m) = writes(&app, &anna, "Здравствуйте! Где мой заказ?").await;
    assert_eq!(m["direction"], "in");
    let contact = app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"].clone();
    assert_eq!(contact["name"], "Анна Смирнова");
    assert_eq!(contact["identities"][0]["kind"], "viber");

    // A forged callback is refused; a malformed one is a clear 4xx.
    let raw = br#"{"event":"message","message_token":1,"sender":{"id":"x"},"message":{"type":"text","text":"x"}}"#;
    let post = |sig: &str, body: &'static [u8]| {
        app.http
            .post(format!("{}/hooks/{ch}", app.url))
            .header("content-type", "application/json")
            .header("x-viber-content-signature", sig.to_string())
            .body(body)
            .send()
    };
    assert_eq!(post("00ff", raw).await.unwrap().status().as_u16(), 401);
    let bad_json: &'static [u8] = b"{not json";
    let signed = okno_testkit::viber::sign(TOKEN, bad_json);
    let r = post(&signed, bad_json).await.unwrap().status().as_u16();
    assert!((400..500).contains(&r), "malformed JSON: {r}");

    // An operator's reply with buttons goes out as a keyboard.
    let id = reply(
        &app,
        &conv,
        json!({"text": "Выберите", "buttons": [[{"text": "Да", "data": "yes"}, {"text": "Нет", "data": "no"}]]}),
    )
    .await;
    let sent = final_status(&app, &id).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let out = sim.wait_sent_to(&anna.id, 1).await;
    assert_eq!(out[0].buttons(), vec!["Да", "Нет"]);
    assert_eq!(out[0].body["sender"]["name"], "Окна Плюс");
    let token = out[0].token;

    // Receipts move the status forward only; a late "delivered" after "seen" changes nothing.
    sim.delivered(token, &anna.id).await;
    status_becomes(&app, &id, "delivered").await;
    sim.seen(token, &anna.id).await;
    status_becomes(&app, &id, "read").await;
    sim.delivered(token, &anna.id).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.get(&format!("/api/v1/messages/{id}")).await.body["status"], "read");

    // A failed receipt ends a message with Viber's words.
    let id2 = reply(&app, &conv, json!({"text": "ещё одно"})).await;
    final_status(&app, &id2).await;
    let t2 = sim.wait_sent_to(&anna.id, 2).await[1].token;
    sim.failed(t2, &anna.id, "user's device is offline for too long").await;
    let f = status_becomes(&app, &id2, "failed").await;
    assert!(f["error"].to_string().contains("offline"), "{f}");
}

#[tokio::test]
async fn a_deep_links_context_links_the_contact_and_the_welcome_is_sent() {
    let (app, sim, ch) = bot(Some(json!({"welcome": "Добро пожаловать в Окна Плюс!"}))).await;
    let c = app.post("/api/v1/contacts", json!({"external_id": "client-42", "name": "Галина Орлова"})).await;
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let link = app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await;
    assert_eq!(link.status, 201, "{link:?}");
    let code = link.body["code"].as_str().unwrap().to_string();
    assert_eq!(link.body["links"][&ch], format!("viber://pa?chatURI={BOT_URI}&context={code}"));

    let galina = sim.person("GalinaViber02==", "Галя");
    let opened = galina.open(Some(&code)).await;
    assert_eq!(opened.answer.as_ref().map(|a| a.0), Some(200));
    let welcome = sim.sent_to(&galina.id);
    assert!(
        welcome.iter().any(|s| s.welcome && s.text().as_deref() == Some("Добро пожаловать в Окна Плюс!")),
        "{welcome:?}"
    );
    let linked = eventually(15, || async {
        let c = app.get(&format!("/api/v1/contacts/{contact_id}")).await.body;
        (c["identities"][0]["kind"] == "viber").then_some(c)
    })
    .await
    .expect("the contact is linked");
    assert_eq!(linked["identities"][0]["user_id"], "GalinaViber02==");
}

#[tokio::test]
async fn unsubscribed_people_are_flagged_and_status_codes_decide_retries() {
    let (app, sim, _ch) = bot(None).await;
    let ivan = sim.person("IvanViber03==", "Иван");
    let (conv, _) = writes(&app, &ivan, "Привет").await;

    // A retryable status (Viber's general error) is retried and the message goes out.
    sim.fail_next(Fault::Status(99));
    let id = reply(&app, &conv, json!({"text": "после сбоя"})).await;
    let m = status_becomes(&app, &id, "sent").await;
    assert_eq!(m["status"], "sent");
    assert_eq!(ivan.shown().last().map(String::as_str), Some("после сбоя"));

    // A subscription okno did not hear end: receiverNotSubscribed ends the message failed with
    // Viber's word, and the identity is flagged.
    ivan.leave();
    let id = reply(&app, &conv, json!({"text": "не дойдёт"})).await;
    let m = final_status(&app, &id).await;
    assert_eq!(m["status"], "failed", "{m}");
    assert!(m["error"].to_string().contains("receiverNotSubscribed"), "{m}");
    let contact =
        app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"]["id"].as_str().unwrap().to_string();
    let flagged = app.get(&format!("/api/v1/contacts/{contact}")).await.body;
    assert_eq!(flagged["identities"][0]["blocked"], true, "{flagged}");

    // An `unsubscribed` callback flags the person; okno then refuses to write up front.
    let petr = sim.person("PetrViber05==", "Пётр");
    let (conv2, _) = writes(&app, &petr, "Добрый день").await;
    petr.unsubscribe().await;
    let c2 =
        app.get(&format!("/api/v1/conversations/{conv2}")).await.body["contact"]["id"].as_str().unwrap().to_string();
    eventually(15, || async {
        let c = app.get(&format!("/api/v1/contacts/{c2}")).await.body;
        (c["identities"][0]["blocked"] == true).then_some(())
    })
    .await
    .expect("the identity is flagged blocked");
    let r = app.post(&format!("/api/v1/conversations/{conv2}/messages"), json!({"text": "x"})).await;
    assert_eq!(r.status, 422, "{r:?}");
    // Subscribing again lifts the flag.
    petr.subscribe().await;
    eventually(15, || async {
        let c = app.get(&format!("/api/v1/contacts/{c2}")).await.body;
        (c["identities"][0]["blocked"] == false).then_some(())
    })
    .await
    .expect("the flag is lifted");
}

#[tokio::test]
async fn a_picture_goes_by_a_signed_link_the_platform_downloads() {
    let (app, sim, _ch) = bot(None).await;
    let olga = sim.person("OlgaViber04==", "Ольга");
    let (conv, _) = writes(&app, &olga, "Пришлите фото").await;
    let png: &[u8] = b"\x89PNG\r\n\x1a\n viber test picture";
    let up = app
        .http
        .post(format!("{}/api/v1/attachments?name=photo.png", app.url))
        .bearer_auth(&app.token)
        .header("content-type", "image/png")
        .body(png.to_vec())
        .send()
        .await
        .unwrap();
    assert!(up.status().is_success(), "{up:?}");
    let att: Value = up.json().await.unwrap();
    let id = reply(&app, &conv, json!({"text": "Вот фото", "attachments": [{"id": att["id"]}]})).await;
    let m = final_status(&app, &id).await;
    assert_eq!(m["status"], "sent", "{m}");
    let sent = sim.wait_sent_to(&olga.id, 1).await;
    assert_eq!(sent[0].kind, "picture");
    assert_eq!(sent[0].media.as_deref(), Some(png));
    let media = sent[0].body["media"].as_str().unwrap().to_string();
    // The link is signed: altered, it is refused.
    let forged = media.replace("sig=", "sig=00");
    assert_eq!(app.http.get(&forged).send().await.unwrap().status().as_u16(), 401);
}

#[tokio::test]
async fn a_menu_bot_answers_with_a_keyboard_and_the_press_is_followed() {
    let (app, sim, ch) = bot(None).await;
    let yaml = r#"
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
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let vera = sim.person("VeraViber07==", "Вера");
    vera.write("Привет").await;
    let menu = eventually(15, || async { sim.sent_to(&vera.id).into_iter().find(|s| !s.buttons().is_empty()) })
        .await
        .unwrap_or_else(|| panic!("the bot shows its menu as a keyboard: {:?}", sim.sent_to(&vera.id)));
    assert_eq!(menu.text().as_deref(), Some("Здравствуйте! Чем помочь?"));
    assert_eq!(menu.buttons(), ["Доставка", "Оператор"]);
    vera.press("Доставка").await;
    eventually(15, || async {
        vera.shown().iter().any(|t| t == "Доставка по городу — 1–2 дня.").then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the bot follows the press: {:?}", vera.shown()));
    // Answered once, not once per keyboard shown.
    assert_eq!(vera.shown().iter().filter(|t| *t == "Доставка по городу — 1–2 дня.").count(), 1);
}

#[tokio::test]
async fn a_broadcast_reaches_each_subscriber_once_and_ends_failed_for_one_who_left() {
    let (app, sim, _ch) = bot(None).await;
    let mut people = Vec::new();
    for i in 0..6 {
        let p = sim.person(&format!("Client{i}Viber=="), &format!("Клиент {i}"));
        let (_, m) = writes(&app, &p, &format!("Здравствуйте, я {i}")).await;
        let contact = m["contact_id"].as_str().unwrap().to_string();
        let r = app.patch(&format!("/api/v1/contacts/{contact}"), json!({"groups": ["clients"]})).await;
        assert_eq!(r.status, 200, "{r:?}");
        people.push(p);
    }
    // One left without okno hearing of it: Viber refuses her (receiverNotSubscribed).
    people[5].leave();
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
    assert_eq!((&done["sent"], &done["failed"]), (&json!(5), &json!(1)), "{done}");
    for p in &people[..5] {
        assert_eq!(p.shown().iter().filter(|t| *t == "Скидка 10% до пятницы").count(), 1, "exactly once each");
    }
    assert!(people[5].shown().iter().all(|t| t != "Скидка 10% до пятницы"));
}

/// A product card — one picture, a short text and a row or two of buttons — goes as one rich
/// media bubble; a press on its button comes back like a keyboard's. A text too long for a card
/// goes as the picture and a message with a keyboard, as before.
#[tokio::test]
async fn a_picture_with_buttons_goes_as_one_rich_media_card() {
    let (app, sim, _ch) = bot(None).await;
    let oleg = sim.person("OlegViber06==", "Олег");
    let (conv, _) = writes(&app, &oleg, "Покажите дверь").await;
    let jpeg: &[u8] = b"\xff\xd8\xff\xe0 viber card picture";
    let up = app
        .http
        .post(format!("{}/api/v1/attachments?name=door.jpg", app.url))
        .bearer_auth(&app.token)
        .header("content-type", "image/jpeg")
        .body(jpeg.to_vec())
        .send()
        .await
        .unwrap();
    assert!(up.status().is_success(), "{up:?}");
    let att: Value = up.json().await.unwrap();
    let buttons = json!([[{"text": "Заказать", "data": "order:D-17"}, {"text": "На сайте", "url": "https://example.org/d17"}],
                         [{"text": "Другие двери", "data": "more"}]]);
    let id = reply(
        &app,
        &conv,
        json!({"text": "Дверь «Сосна» 80×200\nЦена: 12 400 ₽", "buttons": buttons, "attachments": [{"id": att["id"]}]}),
    )
    .await;
    assert_eq!(final_status(&app, &id).await["status"], "sent");
    let sent = sim.wait_sent_to(&oleg.id, 1).await;
    assert_eq!(sent.len(), 1, "one bubble: {sent:?}");
    let card = &sent[0];
    assert_eq!(card.kind, "rich_media", "{:?}", card.body);
    assert_eq!(card.media.as_deref(), Some(jpeg), "Viber downloaded the picture by okno's link");
    assert_eq!(card.text().as_deref(), Some("Дверь «Сосна» 80×200\nЦена: 12 400 ₽"), "alt_text for old clients");
    assert_eq!(card.buttons(), ["Заказать", "На сайте", "Другие двери"]);
    let cells = card.body["rich_media"]["Buttons"].as_array().unwrap();
    assert!(cells.iter().any(|c| c["Text"].as_str().is_some_and(|t| t.contains("Сосна") && t.contains("<br>"))));
    let rows: i64 = card.body["rich_media"]["ButtonsGroupRows"].as_i64().unwrap();
    assert_eq!(rows, 3 + 2 + 2, "picture, text and two rows of buttons");

    let pressed = oleg.press("Заказать").await;
    assert_eq!(pressed.answer.as_ref().map(|a| a.0), Some(200));
    let press = app.wait_message(|m| m["button_data"] == "order:D-17").await;
    assert_eq!(press["conversation_id"], conv.as_str());

    // Too long for a card's two rows: the picture, then the text with a keyboard.
    let long = "Дверь «Сосна» — массив, три слоя лака. ".repeat(8);
    let id = reply(&app, &conv, json!({"text": long, "buttons": buttons, "attachments": [{"id": att["id"]}]})).await;
    assert_eq!(final_status(&app, &id).await["status"], "sent");
    let sent = sim.wait_sent_to(&oleg.id, 3).await;
    let kinds: Vec<&str> = sent[1..].iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["picture", "text"]);
    assert_eq!(sent[2].buttons(), ["Заказать", "На сайте", "Другие двери"]);
}

#[tokio::test]
async fn a_survey_asks_with_a_keyboard_and_takes_the_press_and_a_typed_answer() {
    let (app, sim, _ch) = bot(None).await;
    let ivan = sim.person("IvanViber07==", "Иван");
    let (_, m) = writes(&app, &ivan, "Спасибо, всё привезли").await;
    let survey = super::delivery_survey(&app, &m["contact_id"]).await;
    let asked = eventually(15, || async {
        sim.sent_to(&ivan.id).into_iter().find(|s| s.text().is_some_and(|t| t.starts_with("Оцените доставку")))
    })
    .await
    .expect("the score is asked");
    assert_eq!(asked.buttons(), ["1", "2", "3", "4", "5"], "a keyboard of five");
    ivan.press("5").await;
    eventually(15, || async { ivan.shown().into_iter().find(|t| t.starts_with("Что улучшить?")) })
        .await
        .unwrap_or_else(|| panic!("the second question: {:?}", ivan.shown()));
    ivan.write("Всё отлично").await;
    super::survey_completed_with(&app, &survey, 5.0).await;
}
