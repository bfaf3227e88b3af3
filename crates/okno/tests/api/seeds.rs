//! What okno already did for Telegram and the website, on MAX, VK and OK, end to end against
//! their simulators over real HTTP: a menu bot answered from the business system, a business
//! event that reaches a person on their next channel when the first refuses, broadcasts at the
//! platforms' limits, a survey with buttons, and one person who writes on Telegram and then on
//! MAX or VK kept as one contact in one thread; and what okno does instead where OK cannot edit.

use std::path::PathBuf;

use okno_testkit::biz::{self, BizSim};
use okno_testkit::max::MaxSim;
use okno_testkit::ok_sim::OkSim;
use okno_testkit::telegram::TelegramSim;
use okno_testkit::vk::VkSim;
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Value};

const MAX_TOKEN: &str = "max-seeds-token";
const MAX_BOT: &str = "stroytorg_max_bot";
const VK_TOKEN: &str = "vk1.a.seeds-community-token";
const VK_GROUP: i64 = 230_000_001;
const OK_TOKEN: &str = "tkn1seeds:CQABPOJKAKEKEKEKE";
const TG_TOKEN: &str = "777002:seeds-test-token";

// Texts of examples/bots/order_status.yaml, as people see them.
const ORDER_MAIN: &str = "Здравствуйте! Здесь можно узнать, на каком этапе ваш заказ.";
const ORDER_ITEMS: [&str; 2] = ["🔍 Узнать статус заказа", "💬 Связаться с менеджером"];
const ORDER_ASK: &str = "Введите номер заказа — он есть в чеке и в SMS.";

fn example(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"))
}

/// Loads an example bot onto a channel, calling `biz` instead of the business system's address.
async fn load_bot(app: &TestApp, ch: &str, biz: &BizSim, file: &str) {
    let source = example(&format!("bots/{file}"));
    assert!(source.contains(biz::EXAMPLE_BASE_URL), "{file} calls {}", biz::EXAMPLE_BASE_URL);
    let r = app
        .http
        .put(format!("{}/api/v1/bots/{ch}", app.url))
        .bearer_auth(&app.token)
        .header("content-type", "application/yaml")
        .body(biz.bind(&source))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert!(status == 200 || status == 201, "{file} loads: {status} {}", r.text().await.unwrap_or_default());
}

/// Adds an address on `ch` to a contact, as if the person had written there before.
async fn attach(app: &TestApp, contact_id: &str, ch: &str, user_id: &str, chat_id: &str) {
    let sender = okno_store::InboundSender { user_id: user_id.into(), chat_id: chat_id.into(), ..Default::default() };
    app.running().engine.store.attach_identity(&contact_id.into(), &ch.into(), sender).await.unwrap();
}

async fn contact(app: &TestApp, body: Value) -> String {
    let c = app.post("/api/v1/contacts", body).await;
    assert!(c.status == 201 || c.status == 200, "{c:?}");
    c.body["id"].as_str().unwrap().to_string()
}

async fn max_app() -> (TestApp, MaxSim, String) {
    let app = TestApp::spawn().await;
    let sim = MaxSim::start().await;
    sim.add_bot(MAX_TOKEN, MAX_BOT);
    let ch = app.max_channel(&sim, MAX_TOKEN, "polling").await;
    (app, sim, ch)
}

// ---------------------------------------------------------------------------------------------
// MAX: what the bot wrote into a person's dialog, and its buttons.

fn max_posts(sim: &MaxSim, chat_id: i64) -> Vec<okno_testkit::max::Sent> {
    sim.sent_to(MAX_TOKEN, chat_id).into_iter().filter(|s| s.method == "POST /messages").collect()
}

/// The callback buttons of a MAX message as (label, payload).
fn max_buttons(s: &okno_testkit::max::Sent) -> Vec<(String, String)> {
    s.attachments
        .iter()
        .filter(|a| a["type"] == "inline_keyboard")
        .flat_map(|a| a["payload"]["buttons"].as_array().cloned().unwrap_or_default())
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .map(|b| (b["text"].as_str().unwrap_or("").to_string(), b["payload"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn max_button(s: &okno_testkit::max::Sent, label: &str) -> String {
    max_buttons(s)
        .into_iter()
        .find(|(t, _)| t == label)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no button {label:?} in {s:?}"))
}

/// Waits for the `n`-th (0-based) message in a MAX dialog.
async fn max_nth(sim: &MaxSim, chat_id: i64, n: usize) -> okno_testkit::max::Sent {
    eventually(15, || async { max_posts(sim, chat_id).get(n).cloned() })
        .await
        .unwrap_or_else(|| panic!("MAX chat {chat_id} gets message #{n}: {:#?}", max_posts(sim, chat_id)))
}

// ---------------------------------------------------------------------------------------------
// OK: the same for a person's dialog with the group.

fn ok_posts(sim: &OkSim, chat_id: &str) -> Vec<okno_testkit::ok_sim::Sent> {
    sim.sent(OK_TOKEN).into_iter().filter(|s| s.chat_id == chat_id).collect()
}

fn ok_buttons(s: &okno_testkit::ok_sim::Sent) -> Vec<(String, String)> {
    s.attachments
        .iter()
        .filter(|a| a["type"] == "INLINE_KEYBOARD")
        .flat_map(|a| a["payload"]["keyboard"]["buttons"].as_array().cloned().unwrap_or_default())
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .map(|b| (b["text"].as_str().unwrap_or("").to_string(), b["payload"].as_str().unwrap_or("").to_string()))
        .collect()
}

async fn ok_nth(sim: &OkSim, chat_id: &str, n: usize) -> okno_testkit::ok_sim::Sent {
    eventually(15, || async { ok_posts(sim, chat_id).get(n).cloned() })
        .await
        .unwrap_or_else(|| panic!("OK chat {chat_id} gets message #{n}: {:#?}", ok_posts(sim, chat_id)))
}

// ---------------------------------------------------------------------------------------------
// 1. Menu bots

#[tokio::test]
async fn a_menu_bot_on_max_answers_a_pressed_button_from_the_business_system() {
    let (app, sim, ch) = max_app().await;
    let biz = BizSim::start().await;
    load_bot(&app, &ch, &biz, "order_status.yaml").await;

    // A customer finds the bot and presses Start.
    let olga = sim.stranger(MAX_TOKEN, 9401, "Ольга");
    olga.start(None);
    let menu = max_nth(&sim, olga.chat_id(), 0).await;
    assert_eq!(menu.text.as_deref(), Some(ORDER_MAIN), "{menu:?}");
    let labels: Vec<String> = max_buttons(&menu).into_iter().map(|(t, _)| t).collect();
    assert_eq!(labels[..2], ORDER_ITEMS, "the menu's items are MAX buttons: {menu:?}");

    olga.press(&menu.mid, &max_button(&menu, ORDER_ITEMS[0]));
    let ask = max_nth(&sim, olga.chat_id(), 1).await;
    assert_eq!(ask.text.as_deref(), Some(ORDER_ASK), "{ask:?}");
    olga.send_text("100421");
    let answer = max_nth(&sim, olga.chat_id(), 2).await;
    assert_eq!(
        answer.text.as_deref(),
        Some("Заказ № 100421: В производстве.\nМы пришлём сообщение, когда этап изменится.")
    );
    let lookups: Vec<_> = biz.requests().into_iter().filter(|r| r.path.starts_with("/orders/100421")).collect();
    assert_eq!(lookups.len(), 1, "one lookup in the business system: {lookups:?}");
    let answered = eventually(5, || async { (!sim.callback_answers(MAX_TOKEN).is_empty()).then_some(()) }).await;
    assert!(answered.is_some(), "the press was answered, so MAX stops showing it as pending");
}

#[tokio::test]
async fn a_menu_bot_on_ok_answers_a_pressed_button_from_the_business_system() {
    let app = TestApp::spawn().await;
    let sim = OkSim::start().await;
    sim.add_group(OK_TOKEN, 57_000_000_000_002, "Стройторг");
    let ch = app.ok_channel(&sim, OK_TOKEN).await;
    let biz = BizSim::start().await;
    load_bot(&app, &ch, &biz, "order_status.yaml").await;

    // OK opens a chat with a group without a Start button: the person writes first.
    let olga = sim.user(OK_TOKEN, 577_401, "Ольга");
    olga.send_text("/start");
    let menu = ok_nth(&sim, olga.chat_id(), 0).await;
    assert_eq!(menu.text, ORDER_MAIN, "{menu:?}");
    let buttons = ok_buttons(&menu);
    let labels: Vec<&str> = buttons.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(labels[..2], ORDER_ITEMS, "the menu's items are OK buttons: {menu:?}");

    let status = &buttons.iter().find(|(t, _)| t == ORDER_ITEMS[0]).unwrap().1;
    olga.press(&menu.mid, status);
    // On OK a press is answered with a message in the chat; the bot's own answer follows it.
    let ask = eventually(15, || async { ok_posts(&sim, olga.chat_id()).into_iter().find(|s| s.text == ORDER_ASK) })
        .await
        .unwrap_or_else(|| panic!("the bot asks for the number: {:#?}", ok_posts(&sim, olga.chat_id())));
    assert_eq!(ask.chat_id, olga.chat_id());
    olga.send_text("100422");
    let answer = eventually(15, || async {
        ok_posts(&sim, olga.chat_id()).into_iter().find(|s| s.text.starts_with("Заказ № 100422"))
    })
    .await
    .unwrap_or_else(|| panic!("the bot answers with the order: {:#?}", ok_posts(&sim, olga.chat_id())));
    assert_eq!(answer.text, "Заказ № 100422: Готов к выдаче.\nМы пришлём сообщение, когда этап изменится.");
    let lookups: Vec<_> = biz.requests().into_iter().filter(|r| r.path.starts_with("/orders/")).collect();
    assert_eq!(lookups.len(), 1, "one lookup in the business system: {lookups:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. A business event with per-recipient fallback

#[tokio::test]
async fn an_event_refused_on_max_reaches_the_person_on_vk_and_its_outcome_says_so() {
    let app = TestApp::spawn().await;
    let max = MaxSim::start().await;
    max.add_bot(MAX_TOKEN, MAX_BOT);
    let max_ch = app.max_channel(&max, MAX_TOKEN, "polling").await;
    let vk = VkSim::start().await;
    vk.add_group(VK_TOKEN, VK_GROUP, "Стройторг");
    let vk_ch = app.vk_channel(&vk, VK_TOKEN, "polling").await;
    let rule: Value = serde_json::from_str(&example("rules/01_payment_received.json")).unwrap();
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);

    // The manager prefers MAX, but never pressed Start in the bot there (MAX refuses sends to
    // them for good, 403 chat.denied); they are also in the company's VK community.
    let id =
        contact(&app, json!({"external_id": "1c-manager-petrov", "name": "Петров", "preferred_channel_id": max_ch}))
            .await;
    let petrov_max = max.stranger(MAX_TOKEN, 7501, "Петров");
    attach(&app, &id, &max_ch, "7501", "7501").await;
    vk.user(VK_TOKEN, 7_501_001, "Петров");
    attach(&app, &id, &vk_ch, "7501001", "7501001").await;

    let r =
        app.post("/api/v1/events", serde_json::from_str(&example("events/01_payment_received.json")).unwrap()).await;
    assert_eq!(r.status, 202, "{r:?}");
    let ev = super::events::settled(&app, r.body["id"].as_str().unwrap()).await;

    let on_vk: Vec<_> =
        vk.sent(VK_TOKEN).into_iter().filter(|s| s.method == "messages.send" && s.peer_id == 7_501_001).collect();
    assert_eq!(on_vk.len(), 1, "the notification went out on VK once: {on_vk:?}");
    assert!(on_vk[0].text.starts_with("💰 Поступила оплата от ООО «Ромашка»"), "{:?}", on_vk[0].text);
    assert!(max.calls(MAX_TOKEN, "POST /messages") >= 1, "MAX was tried first");
    assert!(max_posts(&max, petrov_max.chat_id()).is_empty(), "nothing reached MAX");

    // One delivery for the person: tried on MAX first, sent on VK.
    let deliveries = ev["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{ev}");
    assert_eq!(deliveries[0]["status"], "sent", "{ev}");
    assert_eq!(deliveries[0]["channel_id"], vk_ch.as_str(), "the outcome names VK as the channel that reached them");
    assert_eq!(deliveries[0]["tried"], json!([max_ch, vk_ch]), "{ev}");
    // The operators see the refused MAX message with MAX's reason beside the one sent on VK.
    let conv = deliveries[0]["conversation_id"].as_str().unwrap();
    let msgs = app.get(&format!("/api/v1/conversations/{conv}/messages")).await.body;
    let on_max = msgs["items"].as_array().unwrap().iter().find(|m| m["channel_id"] == max_ch.as_str()).cloned();
    let on_max = on_max.unwrap_or_else(|| panic!("the MAX attempt is in the thread: {msgs}"));
    assert_eq!(on_max["status"], "failed", "{on_max}");
    assert!(on_max["error"].as_str().unwrap_or_default().contains("chat.denied"), "MAX's reason: {on_max}");
    let c = app.get(&format!("/api/v1/contacts/{id}")).await.body;
    let max_identity = c["identities"].as_array().unwrap().iter().find(|i| i["kind"] == "max").unwrap().clone();
    assert_eq!(max_identity["blocked"], true, "MAX is not tried again for this person: {c}");
}

// ---------------------------------------------------------------------------------------------
// 3. Broadcasts at the platforms' limits

const CROWD: i64 = 36;
/// Enough people that sending them all takes MAX's per-second budget several times over.
const MAX_CROWD: i64 = 90;

async fn broadcast_to_clients(app: &TestApp) -> Value {
    let r = app
        .post(
            "/api/v1/broadcasts",
            json!({"name": "Новая коллекция", "audience": {"groups": ["clients"]},
                   "text": "{{ contact.first_name }}, новая коллекция уже в магазине."}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    eventually(60, || async {
        let b = app.get(&format!("/api/v1/broadcasts/{id}")).await.body;
        (b["status"] == "done").then_some(b)
    })
    .await
    .unwrap_or_else(|| panic!("the broadcast finishes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_on_vk_reaches_a_few_dozen_people_once_within_vks_limits() {
    let app = TestApp::spawn().await;
    let sim = VkSim::start().await;
    sim.set_limits(true);
    sim.add_group(VK_TOKEN, VK_GROUP, "Стройторг");
    let ch = app.vk_channel(&sim, VK_TOKEN, "polling").await;
    for n in 0..CROWD {
        let vk_id = 610_000 + n;
        let id = contact(&app, json!({"name": format!("Клиент{n} Иванов"), "groups": ["clients"]})).await;
        sim.user(VK_TOKEN, vk_id, &format!("Клиент{n}"));
        attach(&app, &id, &ch, &vk_id.to_string(), &vk_id.to_string()).await;
    }
    let done = broadcast_to_clients(&app).await;
    assert_eq!((&done["total"], &done["sent"], &done["failed"]), (&json!(CROWD), &json!(CROWD), &json!(0)), "{done}");
    let sent: Vec<_> = sim.sent(VK_TOKEN).into_iter().filter(|s| s.method == "messages.send").collect();
    assert_eq!(sent.len(), CROWD as usize, "each person once");
    for n in 0..CROWD {
        let theirs: Vec<_> = sent.iter().filter(|s| s.peer_id == 610_000 + n).map(|s| s.text.clone()).collect();
        assert_eq!(theirs, vec![format!("Клиент{n}, новая коллекция уже в магазине.")], "personal, once");
    }
    assert_eq!(sim.rate_limited(VK_TOKEN), 0, "okno kept under VK's 20 requests a second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_on_max_reaches_ninety_people_once_within_maxs_limits() {
    let app = TestApp::spawn().await;
    let sim = MaxSim::start().await;
    sim.set_limits(true);
    sim.add_bot(MAX_TOKEN, MAX_BOT);
    let ch = app.max_channel(&sim, MAX_TOKEN, "polling").await;
    for n in 0..MAX_CROWD {
        let max_id = 620_000 + n;
        let id = contact(&app, json!({"name": format!("Клиент{n} Иванов"), "groups": ["clients"]})).await;
        sim.user(MAX_TOKEN, max_id, &format!("Клиент{n}"));
        attach(&app, &id, &ch, &max_id.to_string(), &max_id.to_string()).await;
    }
    let done = broadcast_to_clients(&app).await;
    assert_eq!(
        (&done["total"], &done["sent"], &done["failed"]),
        (&json!(MAX_CROWD), &json!(MAX_CROWD), &json!(0)),
        "{done}"
    );
    let sent: Vec<_> = sim.sent(MAX_TOKEN).into_iter().filter(|s| s.method == "POST /messages").collect();
    assert_eq!(sent.len(), MAX_CROWD as usize, "each person once");
    for n in 0..MAX_CROWD {
        let theirs: Vec<_> =
            sent.iter().filter(|s| s.chat_id == sim.dialog_id(620_000 + n)).filter_map(|s| s.text.clone()).collect();
        assert_eq!(theirs, vec![format!("Клиент{n}, новая коллекция уже в магазине.")], "personal, once");
    }
    assert_eq!(sim.rate_limited(MAX_TOKEN), 0, "okno kept under MAX's 30 requests a second");
}

// ---------------------------------------------------------------------------------------------
// 4. A survey on MAX

#[tokio::test]
async fn a_survey_on_max_asks_with_buttons_and_the_report_counts_the_answers() {
    let (app, sim, ch) = max_app().await;
    let people = [(8101_i64, "Анна"), (8102, "Борис"), (8103, "Вера")];
    let mut ids = Vec::new();
    for (max_id, name) in people {
        let id = contact(&app, json!({"external_id": format!("client-{max_id}"), "name": name})).await;
        sim.user(MAX_TOKEN, max_id, name);
        attach(&app, &id, &ch, &max_id.to_string(), &max_id.to_string()).await;
        ids.push(id);
    }
    let r = app
        .post(
            "/api/v1/surveys",
            json!({
                "name": "После доставки",
                "intro": "Здравствуйте! Два вопроса о доставке.",
                "questions": [
                    {"id": "on_time", "text": "Заказ привезли вовремя?", "kind": "choice",
                     "options": [{"text": "Да", "value": 1}, {"text": "Нет", "value": 0}]},
                    {"id": "courier", "text": "Оцените курьера", "kind": "scale", "min": 1, "max": 5}
                ],
                "thanks": "Спасибо за ответы!"
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let survey = r.body["id"].as_str().unwrap().to_string();
    let start = app.post(&format!("/api/v1/surveys/{survey}/start"), json!({"contact_ids": ids})).await;
    assert_eq!(start.body["started"], 3, "{start:?}");

    // Анна: Да, 5. Борис: Нет, 2. Вера: Да, 4.
    for ((max_id, name), (on_time, courier)) in people.iter().zip([("Да", "5"), ("Нет", "2"), ("Да", "4")]) {
        let user = sim.user(MAX_TOKEN, *max_id, name);
        let q1 = max_nth(&sim, user.chat_id(), 0).await;
        let text = q1.text.clone().unwrap_or_default();
        assert!(text.starts_with("Здравствуйте! Два вопроса") && text.ends_with("Заказ привезли вовремя?"), "{q1:?}");
        // A person presses a moment after the question appears, once okno has recorded it sent.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        user.press(&q1.mid, &max_button(&q1, on_time));
        let q2 = max_nth(&sim, user.chat_id(), 1).await;
        assert_eq!(q2.text.as_deref(), Some("Оцените курьера"), "{q2:?}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        user.press(&q2.mid, &max_button(&q2, courier));
        assert_eq!(max_nth(&sim, user.chat_id(), 2).await.text.as_deref(), Some("Спасибо за ответы!"));
        // MAX edits messages: the answered question shows the choice instead of its buttons.
        let marked = eventually(10, || async {
            let m = sim.message(MAX_TOKEN, &q1.mid)?;
            m.to_string().contains(&format!("✓ {on_time}")).then_some(m)
        })
        .await;
        assert!(marked.is_some(), "the answer is marked: {:?}", sim.message(MAX_TOKEN, &q1.mid));
    }

    let results = eventually(15, || async {
        let r = app.get(&format!("/api/v1/surveys/{survey}/results")).await;
        (r.body["runs"]["completed"] == 3).then_some(r.body)
    })
    .await
    .expect("all three complete");
    let q = &results["questions"];
    assert_eq!(
        q[0]["options"],
        json!([{"text": "Да", "value": 1, "count": 2}, {"text": "Нет", "value": 0, "count": 1}]),
        "{results}"
    );
    assert_eq!(q[1]["answers"], 3, "{results}");
    assert_eq!(q[1]["average"].as_f64(), Some(3.67), "{results}");
}

// ---------------------------------------------------------------------------------------------
// 5. One person on Telegram and MAX

#[tokio::test]
async fn a_person_from_telegram_who_starts_the_max_bot_with_their_code_stays_one_contact_and_one_thread() {
    let (app, max, max_ch) = max_app().await;
    let tg = TelegramSim::start().await;
    tg.add_bot(TG_TOKEN, "stroytorg_bot");
    app.telegram_channel(&tg, TG_TOKEN, "polling").await;

    let ivan_tg = tg.user(TG_TOKEN, 7020, "Иван");
    ivan_tg.send_text("Здравствуйте, я по заказу 100421");
    let first = app.wait_message(|m| m["text"] == "Здравствуйте, я по заказу 100421").await;
    let conv = first["conversation_id"].as_str().unwrap().to_string();
    let contact_id = first["contact_id"].as_str().unwrap().to_string();

    // The operator gives them a link into the MAX bot carrying a one-time code.
    let link = app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await;
    assert_eq!(link.status, 201, "{link:?}");
    let code = link.body["code"].as_str().unwrap().to_string();
    assert_eq!(link.body["links"][&max_ch], format!("https://max.ru/{MAX_BOT}?start={code}"));

    let ivan_max = max.stranger(MAX_TOKEN, 9020, "Иван");
    ivan_max.start(Some(&code));
    let confirm = max_nth(&max, ivan_max.chat_id(), 0).await;
    assert!(confirm.text.as_deref().unwrap_or_default().starts_with("Готово! Ваш аккаунт связан"), "{confirm:?}");
    let c = app.get(&format!("/api/v1/contacts/{contact_id}")).await.body;
    let mut kinds: Vec<&str> =
        c["identities"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["max", "telegram"], "one contact, two addresses: {c}");

    ivan_max.send_text("Пишу уже из MAX");
    let second = app.wait_message(|m| m["text"] == "Пишу уже из MAX").await;
    assert_eq!(second["contact_id"], contact_id.as_str());
    assert_eq!(second["conversation_id"], conv.as_str(), "the same thread as on Telegram");
    let convs = app.get(&format!("/api/v1/conversations?contact_id={contact_id}")).await.body;
    assert_eq!(convs["items"].as_array().unwrap().len(), 1, "{convs}");
    let history = app.get(&format!("/api/v1/conversations/{conv}/messages")).await.body;
    let texts: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "in")
        .filter_map(|m| m["text"].as_str())
        .collect();
    // Starting the bot from the link is the person's own message, kept in the thread as it is
    // on Telegram, before what they wrote next.
    assert_eq!(texts, ["Здравствуйте, я по заказу 100421", &format!("/start {code}"), "Пишу уже из MAX"], "{history}");

    // The operator's answer goes where the person wrote last.
    let id = super::reply(&app, &conv, json!({"text": "Заказ уже в пути"})).await;
    assert_eq!(super::final_status(&app, &id).await["channel_id"], max_ch.as_str());
    let got = eventually(10, || async {
        max_posts(&max, ivan_max.chat_id()).into_iter().find(|s| s.text.as_deref() == Some("Заказ уже в пути"))
    })
    .await;
    assert!(got.is_some(), "the answer reached MAX");
    assert!(tg.sent_to(TG_TOKEN, 7020).iter().all(|s| s.plain.as_deref() != Some("Заказ уже в пути")));
}

// ---------------------------------------------------------------------------------------------
// More of the same on the other platforms

#[tokio::test]
async fn a_menu_bot_on_vk_answers_a_pressed_button_from_the_business_system() {
    let app = TestApp::spawn().await;
    let sim = VkSim::start().await;
    sim.add_group(VK_TOKEN, VK_GROUP, "Стройторг");
    let ch = app.vk_channel(&sim, VK_TOKEN, "polling").await;
    let biz = BizSim::start().await;
    load_bot(&app, &ch, &biz, "order_status.yaml").await;
    // Long Poll hands out what happens after the first poll.
    eventually(10, || async { (sim.calls(VK_TOKEN, "groups.getLongPollServer") > 0).then_some(()) }).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // A customer opens the community's chat and presses «Начать».
    let olga = sim.stranger(VK_TOKEN, 940_100, "Ольга");
    olga.start(None);
    let posts = || -> Vec<okno_testkit::vk::Sent> {
        sim.sent(VK_TOKEN).into_iter().filter(|s| s.method == "messages.send" && s.peer_id == 940_100).collect()
    };
    let nth = |n: usize| {
        let posts = &posts;
        async move {
            eventually(15, || async { posts().get(n).cloned() })
                .await
                .unwrap_or_else(|| panic!("VK peer 940100 gets message #{n}: {:#?}", posts()))
        }
    };
    let menu = nth(0).await;
    assert_eq!(menu.text, ORDER_MAIN, "{menu:?}");
    let keyboard = menu.keyboard.clone().expect("the menu carries a keyboard");
    let buttons: Vec<Value> = keyboard["buttons"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .collect();
    let labels: Vec<&str> = buttons.iter().filter_map(|b| b["action"]["label"].as_str()).collect();
    assert_eq!(labels[..2], ORDER_ITEMS, "the menu's items are VK buttons: {keyboard}");

    let status = buttons.iter().find(|b| b["action"]["label"] == ORDER_ITEMS[0]).unwrap();
    olga.press(menu.message_id, status["action"]["payload"].as_str().unwrap());
    assert_eq!(nth(1).await.text, ORDER_ASK);
    olga.send_text("100421");
    assert_eq!(nth(2).await.text, "Заказ № 100421: В производстве.\nМы пришлём сообщение, когда этап изменится.");
    let lookups: Vec<_> = biz.requests().into_iter().filter(|r| r.path.starts_with("/orders/")).collect();
    assert_eq!(lookups.len(), 1, "one lookup in the business system: {lookups:?}");
}

#[tokio::test]
async fn a_survey_on_ok_counts_each_answer_once_though_ok_messages_keep_their_buttons() {
    let app = TestApp::spawn().await;
    let sim = OkSim::start().await;
    sim.add_group(OK_TOKEN, 57_000_000_000_003, "Стройторг");
    app.ok_channel(&sim, OK_TOKEN).await;
    let people = [(577_501_i64, "Анна"), (577_502, "Борис")];
    let mut ids = Vec::new();
    let mut users = Vec::new();
    for (ok_id, name) in people {
        let id = contact(&app, json!({"external_id": format!("client-{ok_id}"), "name": name})).await;
        // Each has written to the group before, so the group may write to them.
        let user = sim.user(OK_TOKEN, ok_id, name);
        let hello = format!("Здравствуйте, я {name}");
        user.send_text(&hello);
        let m = app.wait_message(|m| m["text"] == hello.as_str()).await;
        let met = m["contact_id"].as_str().unwrap().to_string();
        let merged = app.post(&format!("/api/v1/contacts/{id}/merge"), json!({"other_id": met})).await;
        assert_eq!(merged.status, 200, "{merged:?}");
        ids.push(id);
        users.push(user);
    }
    let r = app
        .post(
            "/api/v1/surveys",
            json!({
                "name": "После доставки",
                "questions": [
                    {"id": "on_time", "text": "Заказ привезли вовремя?", "kind": "choice",
                     "options": [{"text": "Да", "value": 1}, {"text": "Нет", "value": 0}]},
                    {"id": "comment", "text": "Что нам улучшить?", "kind": "text"}
                ],
                "thanks": "Спасибо за ответы!"
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let survey = r.body["id"].as_str().unwrap().to_string();
    let start = app.post(&format!("/api/v1/surveys/{survey}/start"), json!({"contact_ids": ids})).await;
    assert_eq!(start.body["started"], 2, "{start:?}");

    for (user, (choice, comment)) in users.iter().zip([("Да", "Всё хорошо"), ("Нет", "Курьер опоздал")])
    {
        let chat = user.chat_id();
        let q1 = eventually(15, || async {
            ok_posts(&sim, chat).into_iter().find(|s| s.text == "Заказ привезли вовремя?")
        })
        .await
        .unwrap_or_else(|| panic!("the question reaches {chat}: {:#?}", ok_posts(&sim, chat)));
        let data = ok_buttons(&q1).into_iter().find(|(t, _)| t == choice).map(|(_, p)| p).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        user.press(&q1.mid, &data);
        eventually(15, || async {
            ok_posts(&sim, chat).into_iter().find(|s| s.text == "Что нам улучшить?")
        })
        .await
        .unwrap_or_else(|| panic!("the next question reaches {chat}: {:#?}", ok_posts(&sim, chat)));
        // okno does not edit OK messages, so the answered question keeps its buttons; a second
        // press on it answers nothing and is not counted again.
        user.press(&q1.mid, &data);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        user.send_text(comment);
        eventually(15, || async {
            ok_posts(&sim, chat).into_iter().find(|s| s.text == "Спасибо за ответы!")
        })
        .await
        .unwrap_or_else(|| panic!("{chat} is thanked: {:#?}", ok_posts(&sim, chat)));
    }

    let results = eventually(15, || async {
        let r = app.get(&format!("/api/v1/surveys/{survey}/results")).await;
        (r.body["runs"]["completed"] == 2).then_some(r.body)
    })
    .await
    .expect("both complete");
    let q = &results["questions"];
    assert_eq!(
        q[0]["options"],
        json!([{"text": "Да", "value": 1, "count": 1}, {"text": "Нет", "value": 0, "count": 1}]),
        "{results}"
    );
    assert_eq!(q[0]["answers"], 2, "the second presses are not counted: {results}");
    assert_eq!(q[1]["answers"], 2, "{results}");
}

/// okno offers tasks as group posts it edits when someone takes one; OK messages are not edited,
/// so a task for an OK group chat is refused with the reason rather than posted half-working.
#[tokio::test]
async fn a_task_for_an_ok_group_chat_is_refused_with_the_reason() {
    let app = TestApp::spawn().await;
    let sim = OkSim::start().await;
    sim.add_group(OK_TOKEN, 57_000_000_000_004, "Стройторг");
    let ch = app.ok_channel(&sim, OK_TOKEN).await;
    let chat = sim.chat(OK_TOKEN, "chat:C3ecb9d02a601", "Курьеры");
    let r = app
        .post(
            "/api/v1/tasks",
            json!({"channel_id": ch, "chat_id": chat.chat_id(), "title": "Доставка №1", "text": "Забрать на складе"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "unsupported_channel"), "{r:?}");
    assert!(sim.sent(OK_TOKEN).is_empty(), "nothing was posted in the chat");
}

#[tokio::test]
async fn an_event_refused_on_vk_reaches_the_person_on_ok() {
    let app = TestApp::spawn().await;
    let vk = VkSim::start().await;
    vk.add_group(VK_TOKEN, VK_GROUP, "Стройторг");
    let vk_ch = app.vk_channel(&vk, VK_TOKEN, "polling").await;
    let ok = OkSim::start().await;
    ok.add_group(OK_TOKEN, 57_000_000_000_005, "Стройторг");
    let ok_ch = app.ok_channel(&ok, OK_TOKEN).await;
    let rule: Value = serde_json::from_str(&example("rules/01_payment_received.json")).unwrap();
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);

    // The manager wrote to the company's OK group once; they prefer VK, but never allowed the
    // community's messages there (VK refuses for good, error 901).
    let id =
        contact(&app, json!({"external_id": "1c-manager-petrov", "name": "Петров", "preferred_channel_id": vk_ch}))
            .await;
    let petrov_ok = ok.user(OK_TOKEN, 577_601, "Петров");
    petrov_ok.send_text("Добрый день, это Петров");
    let m = app.wait_message(|m| m["text"] == "Добрый день, это Петров").await;
    let met = m["contact_id"].as_str().unwrap();
    assert_eq!(app.post(&format!("/api/v1/contacts/{id}/merge"), json!({"other_id": met})).await.status, 200);
    vk.stranger(VK_TOKEN, 7_601_001, "Петров");
    attach(&app, &id, &vk_ch, "7601001", "7601001").await;

    let r =
        app.post("/api/v1/events", serde_json::from_str(&example("events/01_payment_received.json")).unwrap()).await;
    assert_eq!(r.status, 202, "{r:?}");
    let ev = super::events::settled(&app, r.body["id"].as_str().unwrap()).await;
    let deliveries = ev["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{ev}");
    assert_eq!(deliveries[0]["status"], "sent", "{ev}");
    assert_eq!(deliveries[0]["channel_id"], ok_ch.as_str(), "{ev}");
    assert_eq!(deliveries[0]["tried"], json!([vk_ch, ok_ch]), "{ev}");
    let on_ok: Vec<_> =
        ok_posts(&ok, petrov_ok.chat_id()).into_iter().filter(|s| s.text.contains("Поступила оплата")).collect();
    assert_eq!(on_ok.len(), 1, "the notification went out on OK once: {on_ok:?}");
    assert!(vk.sent(VK_TOKEN).is_empty(), "nothing reached VK");
    let c = app.get(&format!("/api/v1/contacts/{id}")).await.body;
    let vk_identity = c["identities"].as_array().unwrap().iter().find(|i| i["kind"] == "vk").unwrap().clone();
    assert_eq!(vk_identity["blocked"], true, "VK is not tried again for this person: {c}");
}

#[tokio::test]
async fn a_person_from_telegram_who_opens_the_vk_me_link_stays_one_contact_and_one_thread() {
    let app = TestApp::spawn().await;
    let vk = VkSim::start().await;
    vk.add_group(VK_TOKEN, VK_GROUP, "Стройторг");
    let vk_ch = app.vk_channel(&vk, VK_TOKEN, "polling").await;
    let tg = TelegramSim::start().await;
    tg.add_bot(TG_TOKEN, "stroytorg_bot");
    app.telegram_channel(&tg, TG_TOKEN, "polling").await;
    // Long Poll hands out what happens after the first poll.
    eventually(10, || async { (vk.calls(VK_TOKEN, "groups.getLongPollServer") > 0).then_some(()) }).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    tg.user(TG_TOKEN, 7030, "Мария").send_text("Здравствуйте, я по заказу 100422");
    let first = app.wait_message(|m| m["text"] == "Здравствуйте, я по заказу 100422").await;
    let conv = first["conversation_id"].as_str().unwrap().to_string();
    let contact_id = first["contact_id"].as_str().unwrap().to_string();
    let link = app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await;
    let code = link.body["code"].as_str().unwrap().to_string();
    assert_eq!(link.body["links"][&vk_ch], format!("https://vk.me/club{VK_GROUP}?ref={code}"));

    let maria = vk.stranger(VK_TOKEN, 703_000, "Мария");
    maria.start(Some(&code));
    let confirm = vk.wait_sent(VK_TOKEN, 1, 10).await;
    assert!(confirm[0].text.starts_with("Готово! Ваш аккаунт связан"), "{confirm:?}");
    let c = app.get(&format!("/api/v1/contacts/{contact_id}")).await.body;
    let mut kinds: Vec<&str> =
        c["identities"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["telegram", "vk"], "one contact, two addresses: {c}");

    maria.send_text("Пишу уже из ВКонтакте");
    let second = app.wait_message(|m| m["text"] == "Пишу уже из ВКонтакте").await;
    assert_eq!(second["contact_id"], contact_id.as_str());
    assert_eq!(second["conversation_id"], conv.as_str(), "the same thread as on Telegram");
    let convs = app.get(&format!("/api/v1/conversations?contact_id={contact_id}")).await.body;
    assert_eq!(convs["items"].as_array().unwrap().len(), 1, "{convs}");

    let id = super::reply(&app, &conv, json!({"text": "Заказ готов к выдаче"})).await;
    assert_eq!(super::final_status(&app, &id).await["channel_id"], vk_ch.as_str(), "answered where they wrote last");
    let got = eventually(10, || async {
        vk.sent(VK_TOKEN).into_iter().find(|s| s.peer_id == 703_000 && s.text == "Заказ готов к выдаче")
    })
    .await;
    assert!(got.is_some(), "the answer reached VK");
}
