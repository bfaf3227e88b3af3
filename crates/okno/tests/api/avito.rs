//! Avito (Messenger API) against its simulator, through okno's API: connecting (bad client
//! credentials refused with nothing saved, the webhook subscribed with a secret address), a
//! buyer's message answered inside Avito's 2 seconds (also when Avito is slow) with the ad shown
//! in the conversation and sent to webhooks, the seller's own messages never taken for a
//! buyer's, text, photo and voice, a token expired on the way replaced without losing a message,
//! a menu bot and a survey in numbered lines, a link code and a notification rule, an event
//! falling back to the person's other channel, a broadcast at the channel's pace, read marks,
//! and polling (across a restart, and switched to and from the webhook).

use std::time::Duration;

use okno_domain::model::Role;
use okno_testkit::avito::{AvitoSim, Buyer, Item, ACCOUNT, CLIENT_ID, CLIENT_SECRET};
use okno_testkit::{eventually, Sink, TestApp};
use serde_json::{json, Value};

use super::{final_status, reply};

async fn account() -> (TestApp, AvitoSim, String) {
    let app = TestApp::spawn().await;
    let (sim, ch) = app.avito_channel(None).await;
    (app, sim, ch)
}

/// A buyer writes `text` about `item`; returns the conversation and the stored message.
async fn writes(app: &TestApp, buyer: &Buyer, item: Option<&Item>, text: &str) -> (String, Value) {
    let w = buyer.write(item, text).await;
    assert!(w.delivered, "okno answers the webhook 200 within the deadline");
    let m = app.wait_message(|m| m["text"] == text).await;
    (m["conversation_id"].as_str().unwrap().to_string(), m)
}

async fn messages(app: &TestApp, conv: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/conversations/{conv}/messages")).await.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn connecting_checks_the_credentials_subscribes_a_secret_address_and_never_shows_secrets() {
    let app = TestApp::spawn().await;
    let sim = AvitoSim::start(CLIENT_ID, CLIENT_SECRET, ACCOUNT).await;
    let config = |secret: &str| json!({"client_id": CLIENT_ID, "client_secret": secret, "user_id": ACCOUNT, "api_base": sim.api_base()});
    let bad = app.post("/api/v1/channels", json!({"kind": "avito", "name": "Авито", "config": config("stolen")})).await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_avito_credentials"), "{bad:?}");
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("invalid_client"), "Avito's words: {bad:?}");
    assert!(app.get("/api/v1/channels").await.body["items"].as_array().unwrap().is_empty(), "nothing saved");
    assert_eq!(sim.webhook(), None, "nothing subscribed");
    let text_id =
        json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "user_id": "12ab", "api_base": sim.api_base()});
    let bad = app.post("/api/v1/channels", json!({"kind": "avito", "name": "Авито", "config": text_id})).await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_channel_config"), "{bad:?}");

    let good =
        app.post("/api/v1/channels", json!({"kind": "avito", "name": "Авито", "config": config(CLIENT_SECRET)})).await;
    assert_eq!(good.status, 201, "{good:?}");
    assert_eq!(good.body["info"]["name"], "Окна Плюс");
    assert_eq!(good.body["info"]["user_id"], ACCOUNT.to_string());
    let ch = good.body["id"].as_str().unwrap().to_string();
    let hook = sim.webhook().expect("okno subscribed its webhook");
    let secret = hook.split("secret=").nth(1).expect("the address carries a secret").to_string();
    assert_eq!(hook, format!("{}/hooks/{ch}?secret={secret}", app.url));
    assert!(secret.len() >= 32, "{secret}");
    let shown = format!("{}{}", good.body, app.get(&format!("/api/v1/channels/{ch}")).await.body);
    for s in [CLIENT_SECRET, secret.as_str()] {
        assert!(!shown.contains(s), "{s} is never shown: {shown}");
    }

    // The hook without its secret is refused; malformed bodies with it are a clear 400.
    let post = |url: String, body: &'static str| {
        app.http.post(url).header("content-type", "application/json").body(body).send()
    };
    let payload = r#"{"id":"e","payload":{"type":"message","value":{"id":"m","chat_id":"c","user_id":1,"author_id":2,"type":"text","content":{"text":"x"}}}}"#;
    assert_eq!(post(format!("{}/hooks/{ch}", app.url), payload).await.unwrap().status().as_u16(), 401);
    assert_eq!(post(format!("{}/hooks/{ch}?secret=guess", app.url), payload).await.unwrap().status().as_u16(), 401);
    let r = post(hook.clone(), "{not json").await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_json");
    let r = post(hook.clone(), r#"{"payload": 7}"#).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // The empty probe Avito's docs suggest is answered.
    assert_eq!(post(hook, "{}").await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn a_buyers_message_shows_the_ad_in_the_conversation_and_goes_to_webhooks_with_it() {
    let (app, sim, _ch) = account().await;
    let hooks = Sink::start("hook-secret-0123456789").await;
    let r = app
        .post(
            "/api/v1/webhooks",
            json!({"url": hooks.url, "events": ["message.received"], "secret": "hook-secret-0123456789"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let bike = sim.add_item(1_768_287_444, "Велосипед горный Stels", "12 000 ₽");
    let boris = sim.buyer(94_235_311, "Борис");
    let (conv, m) = writes(&app, &boris, Some(&bike), "Здравствуйте! Ещё продаётся?").await;
    assert_eq!(m["direction"], "in");
    let c = app.get(&format!("/api/v1/conversations/{conv}")).await.body;
    assert_eq!(c["contact"]["name"], "Борис", "the buyer's name from the chat");
    let identity = &c["contact"]["identities"][0];
    assert_eq!((identity["kind"].as_str(), identity["user_id"].as_str()), (Some("avito"), Some("94235311")));
    assert_eq!(identity["chat_id"].as_str(), Some(boris.chat(Some(&bike)).as_str()));

    // The business system hears of it with the ad.
    let got = hooks.wait_accepted(1, 15).await;
    let data = &got[0].body["data"];
    assert_eq!(data["text"], "Здравствуйте! Ещё продаётся?");
    assert_eq!(
        data["context"]["avito_item"],
        json!({"id": 1_768_287_444_i64, "title": "Велосипед горный Stels", "url": bike.url, "price": "12 000 ₽"})
    );

    // The operator sees what the chat is about.
    super::ui::operator(&app, "olga", Role::Operator).await;
    let mut web = super::ui::Client::new(&app);
    assert_eq!(web.login("olga", super::ui::PASSWORD).await.status, 303);
    let page = web.get(&format!("/ui/conversations/{conv}")).await;
    assert_eq!(page.status, 200);
    let about = page.body.split("id=\"conv-about\"").nth(1).expect("the ad is shown").split("</p>").next().unwrap();
    assert!(about.contains("Велосипед горный Stels") && about.contains("12 000 ₽"), "{about}");
    assert!(about.contains(&format!("href=\"{}\"", bike.url.replace('/', "&#x2f;"))), "the ad's link: {about}");
}

#[tokio::test]
async fn the_sellers_own_messages_and_okno_s_replies_coming_back_are_never_taken_for_the_buyers() {
    let (app, sim, _ch) = account().await;
    let table = sim.add_item(5, "Стол дубовый", "8 500 ₽");
    let vera = sim.buyer(700_001, "Вера");
    let (conv, _) = writes(&app, &vera, Some(&table), "Можно забрать сегодня?").await;
    // The seller answers from Avito's own app: Avito reports it to the webhook too.
    let own = sim.seller_writes(&vera.chat(Some(&table)), "Да, до 20:00").await;
    assert!(own.delivered, "answered 200");
    // okno replies: Avito echoes the reply back; okno does not take it as a new message.
    let id = reply(&app, &conv, json!({"text": "Ждём вас"})).await;
    assert_eq!(final_status(&app, &id).await["status"], "sent");
    let echoes = eventually(10, || async {
        let n = sim.pushes().iter().filter(|p| String::from_utf8_lossy(&p.body).contains("evt-echo-")).count();
        (n >= 1).then_some(n)
    })
    .await;
    assert!(echoes.is_some(), "the reply came back to okno: {:?}", sim.pushes().len());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = messages(&app, &conv).await;
    let texts: Vec<(&str, &str)> =
        all.iter().map(|m| (m["direction"].as_str().unwrap(), m["text"].as_str().unwrap_or(""))).collect();
    assert_eq!(texts, [("in", "Можно забрать сегодня?"), ("out", "Ждём вас")]);
    // Nor as someone else: the account is nobody's contact, and no other conversation began.
    let convs = app.get("/api/v1/conversations").await.body["items"].as_array().unwrap().clone();
    assert_eq!(convs.len(), 1, "{convs:?}");
    let contacts = app.get("/api/v1/contacts").await.body["items"].as_array().unwrap().clone();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert!(sim.pushes().iter().all(|p| p.ok), "every webhook answered in time");
    assert_eq!(sim.sent().len(), 1, "no loop: okno wrote once");
}

#[tokio::test]
async fn text_and_photo_replies_reach_the_buyer_and_reading_the_conversation_marks_the_chat_read() {
    let (app, sim, _ch) = account().await;
    let sofa = sim.add_item(77, "Диван угловой", "25 000 ₽");
    let gleb = sim.buyer(700_002, "Глеб");
    let chat = gleb.chat(Some(&sofa));
    let (conv, _) = writes(&app, &gleb, Some(&sofa), "Какие размеры?").await;
    let id = reply(&app, &conv, json!({"text": "Длина 2,4 м, глубина 1,6 м"})).await;
    let sent = final_status(&app, &id).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let photo_bytes: &[u8] = b"\xff\xd8\xff\xe0 a sofa photo";
    let photo = app
        .http
        .post(format!("{}/api/v1/attachments?name=sofa.jpg", app.url))
        .bearer_auth(&app.token)
        .header("content-type", "image/jpeg")
        .body(photo_bytes)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = reply(&app, &conv, json!({"text": "Вот фото", "attachments": [{"id": photo}]})).await;
    let sent = final_status(&app, &id).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let got = sim.sent_to(&chat);
    let kinds: Vec<(&str, Option<&str>)> = got.iter().map(|s| (s.kind.as_str(), s.text.as_deref())).collect();
    assert_eq!(kinds, [("text", Some("Длина 2,4 м, глубина 1,6 м")), ("image", None), ("text", Some("Вот фото"))]);
    assert_eq!(sim.image(got[1].image_id.as_deref().unwrap()).unwrap().0, photo_bytes);
    assert_eq!(sent["external_id"], got[2].id.as_str());

    // A buyer's photo comes in as an attachment okno downloads.
    gleb.send_image(Some(&sofa), b"\x89PNG\r\n\x1a\n a room", "image/png").await;
    let att = eventually(15, || async {
        let all = messages(&app, &conv).await;
        let a = all.iter().rev().find(|m| m["direction"] == "in")?["attachments"][0].clone();
        (a["state"] == "ready").then_some(a)
    })
    .await
    .expect("the buyer's photo is fetched");
    let file =
        app.http.get(format!("{}{}", app.url, att["url"].as_str().unwrap())).bearer_auth(&app.token).send().await;
    assert_eq!(file.unwrap().bytes().await.unwrap().as_ref(), b"\x89PNG\r\n\x1a\n a room");

    // A voice message: its address asked of `getVoiceFiles`, then the file fetched.
    let voice: &[u8] = b"\0\0\0\x18ftypmp42 opus voice";
    gleb.send_voice(Some(&sofa), voice).await;
    let att = eventually(15, || async {
        let all = messages(&app, &conv).await;
        let m = all.iter().rev().find(|m| m["direction"] == "in")?;
        let a = m["attachments"][0].clone();
        (a["name"] == "voice.mp4" && a["state"] == "ready").then_some(a)
    })
    .await
    .expect("the voice message is fetched");
    let file =
        app.http.get(format!("{}{}", app.url, att["url"].as_str().unwrap())).bearer_auth(&app.token).send().await;
    assert_eq!(file.unwrap().bytes().await.unwrap().as_ref(), voice);

    assert!(sim.reads().is_empty());
    let r = app.patch(&format!("/api/v1/conversations/{conv}"), json!({"read": true})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let reads = eventually(10, || async { Some(sim.reads()).filter(|r| !r.is_empty()) }).await;
    assert_eq!(reads, Some(vec![chat.clone()]));
    assert!(sim.messages(&chat).iter().filter(|m| m["direction"] == "in").all(|m| m["is_read"] == true));
}

#[tokio::test]
async fn a_token_that_expired_on_the_way_is_replaced_and_no_message_is_lost() {
    let (app, sim, _ch) = account().await;
    let lamp = sim.add_item(9, "Лампа настольная", "1 200 ₽");
    let dina = sim.buyer(700_003, "Дина");
    let (conv, _) = writes(&app, &dina, Some(&lamp), "Работает?").await;
    let issued = sim.tokens_issued();
    sim.expire_tokens();
    let id = reply(&app, &conv, json!({"text": "Да, проверена"})).await;
    assert_eq!(final_status(&app, &id).await["status"], "sent");
    assert!(sim.refused_expired() >= 1, "the old token was refused");
    assert!(sim.tokens_issued() > issued, "a new token was taken");
    // Tokens now live one second: okno renews them ahead, and a buyer's message in between is
    // stored with its ad.
    sim.set_token_ttl(Duration::from_secs(1));
    sim.expire_tokens();
    let other = sim.add_item(10, "Абажур", "700 ₽");
    writes(&app, &dina, Some(&other), "А абажур отдельно?").await;
    for text in ["раз", "два"] {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let id = reply(&app, &conv, json!({"text": text})).await;
        assert_eq!(final_status(&app, &id).await["status"], "sent", "{text}");
    }
    let shown = dina.shown();
    assert_eq!(shown, ["Да, проверена", "раз", "два"], "every reply delivered once");
}

const BOT: &str = r#"
name: Помощник
menus:
  main:
    text: Здравствуйте! Выберите пункт.
    items:
      - text: Доставка
        do: {menu: delivery}
      - text: Оператор
        do: {handoff: {text: Соединяю с оператором.}}
  delivery:
    text: Доставка Авито по всей России.
    items:
      - text: Назад
        do: {menu: main}
"#;

#[tokio::test]
async fn a_menu_bot_answers_in_numbered_lines_and_takes_a_numbered_answer() {
    let (app, sim, ch) = account().await;
    super::put_bot(&app, &ch, BOT).await;
    let chair = sim.add_item(11, "Кресло", "3 000 ₽");
    let emil = sim.buyer(700_004, "Эмиль");
    emil.write(Some(&chair), "привет").await;
    let menu = eventually(15, || async {
        emil.shown().into_iter().find(|t| t.starts_with("Здравствуйте! Выберите пункт."))
    })
    .await
    .unwrap_or_else(|| panic!("the menu is shown: {:?}", emil.shown()));
    assert_eq!(menu, "Здравствуйте! Выберите пункт.\n1. Доставка\n2. Оператор");
    emil.write(Some(&chair), "1").await;
    eventually(15, || async {
        emil.shown().iter().any(|t| t.starts_with("Доставка Авито по всей России.\n1. Назад")).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the numbered answer is followed: {:?}", emil.shown()));
}

#[tokio::test]
async fn a_link_code_typed_in_an_avito_chat_links_the_buyer_and_a_rule_then_reaches_them() {
    let (app, sim, _ch) = account().await;
    let c = app.post("/api/v1/contacts", json!({"external_id": "client-42", "name": "Галина Орлова"})).await;
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let link = app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await;
    assert_eq!(link.status, 201, "{link:?}");
    let code = link.body["code"].as_str().unwrap().to_string();
    let car = sim.add_item(12, "Шины зимние", "18 000 ₽");
    let galina = sim.buyer(700_005, "Галя");
    galina.write(Some(&car), &code).await;
    eventually(15, || async { galina.shown().into_iter().find(|t| t.contains("Галина Орлова")) })
        .await
        .unwrap_or_else(|| panic!("a confirmation: {:?}", galina.shown()));
    let linked = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
    assert_eq!(linked.body["identities"][0]["kind"], "avito", "{linked:?}");
    assert_eq!(linked.body["identities"][0]["user_id"], "700005");

    let rule = json!({"name": "Заказ готов", "event": "order.ready", "recipients": [{"external_id": "{{ data.client }}"}],
                      "template": "Шины к заказу {{ data.number }} готовы к выдаче"});
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    let e = app
        .post(
            "/api/v1/events",
            json!({"type": "order.ready", "key": "ready-1", "data": {"client": "client-42", "number": "№1042"}}),
        )
        .await;
    assert_eq!(e.status, 202, "{e:?}");
    eventually(15, || async {
        galina.shown().iter().any(|t| t == "Шины к заказу №1042 готовы к выдаче").then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the notification reaches the Avito chat: {:?}", galina.shown()));
    assert_eq!(
        sim.sent_to(&galina.chat(Some(&car))).last().and_then(|s| s.text.clone()).as_deref(),
        Some("Шины к заказу №1042 готовы к выдаче")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_from_many_buyers_at_once_are_answered_inside_avitos_two_seconds() {
    let (app, sim, _ch) = account().await;
    let item = sim.add_item(13, "Холодильник", "30 000 ₽");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let buyer = sim.buyer(800_000 + i, &format!("Покупатель {i}"));
        let item = item.clone();
        tasks.push(tokio::spawn(async move { buyer.write(Some(&item), &format!("Вопрос {i}")).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().delivered);
    }
    let pushes = sim.pushes();
    assert_eq!(pushes.len(), 20, "no retries were needed");
    let slowest = pushes.iter().map(|p| p.elapsed).max().unwrap();
    assert!(pushes.iter().all(|p| p.ok) && slowest < Duration::from_secs(2), "slowest answer {slowest:?}");
    for i in 0..20 {
        app.wait_message(|m| m["text"] == format!("Вопрос {i}")).await;
    }
}

#[tokio::test]
async fn in_polling_mode_buyers_messages_arrive_without_a_webhook_and_a_restart_repeats_none() {
    let mut app = TestApp::spawn().await;
    let sim = AvitoSim::start(CLIENT_ID, CLIENT_SECRET, ACCOUNT).await;
    let config = json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "user_id": ACCOUNT,
                        "api_base": sim.api_base(), "mode": "polling"});
    let r = app.post("/api/v1/channels", json!({"kind": "avito", "name": "Авито", "config": config})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let ch = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(sim.webhook(), None, "no webhook in polling mode");
    // The poller starts at the present: wait until it has.
    let store = app.running().engine.store.clone();
    eventually(15, || async { store.poll_cursor(&ch.as_str().into()).await.ok().flatten() })
        .await
        .expect("the poller stored its starting point");

    let bike = sim.add_item(21, "Самокат", "4 500 ₽");
    let zoya = sim.buyer(700_021, "Зоя");
    assert!(!zoya.write(Some(&bike), "Самокат ещё есть?").await.delivered, "nothing pushed");
    let m = app.wait_message(|m| m["text"] == "Самокат ещё есть?").await;
    let conv = m["conversation_id"].as_str().unwrap().to_string();
    let c = app.get(&format!("/api/v1/conversations/{conv}")).await.body;
    assert_eq!(c["contact"]["name"], "Зоя");

    app.restart().await;
    zoya.write(Some(&bike), "А доставка?").await;
    app.wait_message(|m| m["text"] == "А доставка?").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts: Vec<String> =
        messages(&app, &conv).await.iter().map(|m| m["text"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(texts, ["Самокат ещё есть?", "А доставка?"], "each once, across the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_each_buyers_chat_once_at_the_channels_pace() {
    let app = TestApp::spawn().await;
    let (sim, _ch) = app.avito_channel(Some(json!({"per_second": 4, "per_chat_per_minute": 60, "burst": 1}))).await;
    let item = sim.add_item(30, "Пылесос", "9 900 ₽");
    let mut buyers = Vec::new();
    for i in 0..8 {
        let b = sim.buyer(900_000 + i, &format!("Покупатель {i}"));
        let (_, m) = writes(&app, &b, Some(&item), &format!("Здравствуйте, я {i}")).await;
        let contact = m["contact_id"].as_str().unwrap().to_string();
        let r = app.patch(&format!("/api/v1/contacts/{contact}"), json!({"groups": ["buyers"]})).await;
        assert_eq!(r.status, 200, "{r:?}");
        buyers.push(b);
    }
    let started = std::time::Instant::now();
    let r = app
        .post(
            "/api/v1/broadcasts",
            json!({"name": "Скидки", "audience": {"groups": ["buyers"]}, "text": "Пылесос со скидкой 10%"}),
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
    for b in &buyers {
        assert_eq!(b.shown().iter().filter(|t| *t == "Пылесос со скидкой 10%").count(), 1, "once in each chat");
    }
    assert!(started.elapsed() >= Duration::from_millis(1500), "8 messages at 4 a second take over 1.5 s");
}

#[tokio::test]
async fn a_survey_asks_in_numbered_lines_and_takes_typed_answers_in_the_avito_chat() {
    let (app, sim, _ch) = account().await;
    let tv = sim.add_item(40, "Телевизор", "15 000 ₽");
    let ilya = sim.buyer(700_040, "Илья");
    let (_, m) = writes(&app, &ilya, Some(&tv), "Спасибо, забрал").await;
    let contact = m["contact_id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/api/v1/surveys",
            json!({"name": "После покупки", "questions": [
                {"id": "score", "text": "Оцените продавца", "kind": "scale", "min": 1, "max": 5},
                {"id": "comment", "text": "Что улучшить?", "kind": "text"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let survey = r.body["id"].as_str().unwrap().to_string();
    let s = app.post(&format!("/api/v1/surveys/{survey}/start"), json!({"contact_ids": [contact]})).await;
    assert_eq!(s.body["started"], 1, "{s:?}");
    let shown = |prefix: &'static str| {
        let ilya = ilya.clone();
        async move {
            eventually(15, || async { ilya.shown().into_iter().find(|t| t.starts_with(prefix)) })
                .await
                .unwrap_or_else(|| panic!("`{prefix}` is asked: {:?}", ilya.shown()))
        }
    };
    let q1 = shown("Оцените продавца").await;
    assert_eq!(q1, "Оцените продавца\n1. 1\n2. 2\n3. 3\n4. 4\n5. 5");
    ilya.write(Some(&tv), "5").await;
    shown("Что улучшить?").await;
    ilya.write(Some(&tv), "Всё хорошо").await;
    let results = eventually(15, || async {
        let r = app.get(&format!("/api/v1/surveys/{survey}/results")).await;
        (r.body["runs"]["completed"] == 1).then_some(r.body)
    })
    .await
    .expect("the survey completes");
    assert_eq!(results["questions"][0]["average"].as_f64(), Some(5.0));
    assert_eq!(results["questions"][1]["answers"], 1);
}

#[tokio::test]
async fn a_slow_avito_does_not_make_okno_miss_the_two_seconds() {
    let (app, sim, _ch) = account().await;
    let hooks = Sink::start("hook-secret-0123456789").await;
    let r = app
        .post(
            "/api/v1/webhooks",
            json!({"url": hooks.url, "events": ["message.received"], "secret": "hook-secret-0123456789"}),
        )
        .await;
    assert_eq!(r.status, 201);
    // Reading the chat's ad takes longer than Avito gives okno to answer.
    sim.set_chat_delay(Duration::from_secs(3));
    let kettle = sim.add_item(50, "Чайник", "2 000 ₽");
    let yana = sim.buyer(700_050, "Яна");
    let w = yana.write(Some(&kettle), "Чайник новый?").await;
    assert!(w.delivered);
    let pushes = sim.pushes();
    assert_eq!(pushes.len(), 1, "answered at the first attempt");
    assert!(pushes[0].ok && pushes[0].elapsed < Duration::from_secs(2), "{:?}", pushes[0]);
    // Stored with the ad's id (the webhook names it); the title comes once Avito answers.
    let got = hooks.wait_accepted(1, 15).await;
    assert_eq!(got[0].body["data"]["text"], "Чайник новый?");
    assert_eq!(got[0].body["data"]["context"], json!({"avito_item": {"id": 50}}));
    sim.set_chat_delay(Duration::ZERO);
    yana.write(Some(&kettle), "И сколько литров?").await;
    let got = hooks.wait_accepted(2, 15).await;
    assert_eq!(got[1].body["data"]["text"], "И сколько литров?");
    assert_eq!(got[1].body["data"]["context"]["avito_item"]["title"], "Чайник");
}

#[tokio::test]
async fn switching_to_polling_unsubscribes_the_webhook_and_back_subscribes_the_same_address() {
    let (app, sim, ch) = account().await;
    let hook = sim.webhook().expect("subscribed");
    let r = app.patch(&format!("/api/v1/channels/{ch}"), json!({"config": {"mode": "polling"}})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(sim.webhook(), None, "no webhook while polling");
    let r = app.patch(&format!("/api/v1/channels/{ch}"), json!({"config": {"mode": "webhook"}})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(sim.webhook(), Some(hook), "the same secret address again");
    let bad = app.patch(&format!("/api/v1/channels/{ch}"), json!({"config": {"mode": "carrier-pigeon"}})).await;
    assert_eq!(bad.status, 400, "{bad:?}");
}

#[tokio::test]
async fn an_event_refused_in_the_avito_chat_falls_back_to_the_persons_other_channel() {
    let (app, sim, avito_ch) = account().await;
    let site = Sink::start(super::SECRET).await;
    let site_ch = app.webhook_channel(&format!("{}/out", site.url), super::SECRET).await;
    let bag = sim.add_item(60, "Сумка", "3 500 ₽");
    let oleg = sim.buyer(700_060, "Олег");
    let (_, m) = writes(&app, &oleg, Some(&bag), "Добрый день").await;
    let contact = m["contact_id"].as_str().unwrap().to_string();
    let r = app
        .patch(
            &format!("/api/v1/contacts/{contact}"),
            json!({"external_id": "1c-oleg", "preferred_channel_id": avito_ch}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // The same person on the company's site: one contact, two channels.
    let sender =
        okno_store::InboundSender { user_id: "site-oleg".into(), chat_id: "site-oleg".into(), ..Default::default() };
    app.running()
        .engine
        .store
        .attach_identity(&contact.as_str().into(), &site_ch.as_str().into(), sender)
        .await
        .unwrap();
    // Avito refuses to write to him now (he restricted messages).
    oleg.block();
    let rule = json!({"name": "Заказ", "event": "order.ready", "recipients": [{"external_id": "{{ data.client }}"}],
                      "template": "Ваша сумка готова"});
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    let e =
        app.post("/api/v1/events", json!({"type": "order.ready", "key": "bag-1", "data": {"client": "1c-oleg"}})).await;
    assert_eq!(e.status, 202, "{e:?}");
    let ev = super::events::settled(&app, e.body["id"].as_str().unwrap()).await;
    let d = &ev["deliveries"][0];
    assert_eq!((d["status"].as_str(), d["channel_id"].as_str()), (Some("sent"), Some(site_ch.as_str())), "{ev}");
    assert_eq!(d["tried"], json!([avito_ch, site_ch]), "Avito first: {ev}");
    let got = site.wait_accepted(1, 15).await;
    assert_eq!(got[0].body["text"], "Ваша сумка готова");
    assert!(sim.sent().is_empty(), "nothing reached the Avito chat");
}
