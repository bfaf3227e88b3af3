//! The VK channel against the VK simulator, end to end through okno: connecting a community,
//! the Callback API's confirmation and events over real HTTP, Bots Long Poll, replies sent
//! once however often they are tried, callback buttons answered, link codes through a `vk.me`
//! deep link, and a task in a group conversation taken by exactly one of many.

use std::time::Duration;

use okno_testkit::vk::{Fault, VkSim};
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Value};

use super::{final_status, reply};

const TOKEN: &str = "vk1.a.okno-test-community";
const GROUP: i64 = 229_100_777;

async fn community(mode: &str) -> (TestApp, VkSim, String) {
    let app = TestApp::spawn().await;
    let sim = VkSim::start().await;
    sim.add_group(TOKEN, GROUP, "Пекарня «Окно»");
    let ch = app.vk_channel(&sim, TOKEN, mode).await;
    (app, sim, ch)
}

async fn conversation_of(app: &TestApp, text: &str) -> (String, Value) {
    let m = app.wait_message(|m| m["text"] == text).await;
    (m["conversation_id"].as_str().unwrap().to_string(), m)
}

/// The community's messages to `peer` (sends only), oldest first.
fn sent_to(sim: &VkSim, peer: i64) -> Vec<okno_testkit::vk::Sent> {
    sim.sent(TOKEN).into_iter().filter(|s| s.method == "messages.send" && s.peer_id == peer).collect()
}

/// The payload of the callback button labelled `label` on the simulator's message `id`.
fn payload_of(sim: &VkSim, id: i64, label: &str) -> String {
    let m = sim.message(TOKEN, id).expect("the message");
    m["keyboard"]["buttons"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .find(|b| b["action"]["label"] == label)
        .and_then(|b| b["action"]["payload"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no button {label} on {m}"))
}

#[tokio::test]
async fn a_bad_token_is_a_clear_400_and_a_good_one_shows_the_community() {
    let app = TestApp::spawn().await;
    let sim = VkSim::start().await;
    sim.add_group(TOKEN, GROUP, "Пекарня «Окно»");
    let api_base = format!("{}/method", sim.api_base());
    let bad = app
        .post(
            "/api/v1/channels",
            json!({"kind": "vk", "name": "VK", "config": {"token": "vk1.a.nope", "api_base": api_base}}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_token"), "{bad:?}");
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("User authorization failed"), "{bad:?}");
    let wrong = app
        .post(
            "/api/v1/channels",
            json!({"kind": "vk", "name": "VK", "config": {"token": TOKEN, "group_id": 1, "api_base": api_base}}),
        )
        .await;
    assert_eq!(wrong.status, 400, "a token of another community: {wrong:?}");
    assert!(app.get("/api/v1/channels").await.body["items"].as_array().unwrap().is_empty(), "nothing saved");

    let good = app
        .post("/api/v1/channels", json!({"kind": "vk", "name": "VK", "config": {"token": TOKEN, "api_base": api_base}}))
        .await;
    assert_eq!(good.status, 201, "{good:?}");
    assert_eq!(good.body["info"]["name"], "Пекарня «Окно»");
    assert_eq!(good.body["info"]["group_id"], GROUP);
    assert!(!good.body.to_string().contains(TOKEN), "the token is never shown");
    assert_eq!(sim.calls(TOKEN, "groups.setLongPollSettings"), 1, "Long Poll was turned on");
}

#[tokio::test]
async fn the_callback_api_is_confirmed_and_a_reply_reaches_the_person_once() {
    let (app, sim, ch) = community("webhook").await;
    // okno added its server; VK's confirmation request was answered with the string.
    let servers = eventually(10, || async {
        let s = sim.callback_servers(TOKEN);
        (s.len() == 1 && s[0].1 != "unconfigured").then_some(s)
    })
    .await
    .expect("the server was confirmed or refused");
    assert_eq!(servers[0].1, "ok", "okno answered the confirmation request with the string");
    let confirm = reqwest::Client::new()
        .post(format!("{}/hooks/{ch}", app.url))
        .json(&json!({"type": "confirmation", "group_id": GROUP}))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 200);
    assert_eq!(confirm.text().await.unwrap(), sim.confirmation_code(TOKEN));
    let forged = reqwest::Client::new()
        .post(format!("{}/hooks/{ch}", app.url))
        .json(&json!({"type": "message_new", "group_id": GROUP, "secret": "guess", "object": {"message": {
            "peer_id": 5, "from_id": 5, "conversation_message_id": 1, "text": "forged"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401, "an event without the secret is refused");

    let ann = sim.user(TOKEN, 1001, "Анна Петрова");
    ann.send_text("Здравствуйте! Где мой заказ?");
    let (conv, m) = conversation_of(&app, "Здравствуйте! Где мой заказ?").await;
    assert_eq!(m["direction"], "in");
    let contact = app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"].clone();
    assert_eq!(contact["name"], "Анна Петрова", "named by users.get");
    assert_eq!(contact["identities"][0]["kind"], "vk");
    assert_eq!(contact["identities"][0]["chat_id"], "1001");
    let attempts = sim.callback_attempts(TOKEN);
    assert!(attempts.iter().any(|a| a.event_type == "message_new" && a.status == Some(200) && a.answer == "ok"));
    // VK sends the event again: it is the same message.
    sim.replay_last_event(TOKEN);
    eventually(10, || async { (sim.callback_attempts(TOKEN).len() > attempts.len()).then_some(()) }).await.unwrap();
    let msgs = app.get(&format!("/api/v1/conversations/{conv}/messages")).await;
    assert_eq!(msgs.body["items"].as_array().unwrap().len(), 1, "recorded once");

    // The first try fails inside VK; the retry goes through, and the person sees it once.
    sim.fail_next(TOKEN, Fault::Error(10));
    let id = reply(&app, &conv, json!({"text": "Заказ №1042 уже в пути"})).await;
    let done = final_status(&app, &id).await;
    assert_eq!(done["status"], "sent", "{done}");
    let sent = sent_to(&sim, 1001);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "Заказ №1042 уже в пути");
    assert!(sent[0].random_id > 0, "a random_id from okno's message");
    let cmid = sim.message(TOKEN, sent[0].message_id).unwrap()["conversation_message_id"].clone();
    assert_eq!(done["external_id"], format!("1001:{cmid}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sent_to(&sim, 1001).len(), 1, "sent once");
}

#[tokio::test]
async fn long_poll_receives_and_a_button_press_is_answered() {
    let (app, sim, _ch) = community("polling").await;
    // Long Poll hands out events from the first poll on.
    eventually(10, || async { (sim.calls(TOKEN, "groups.getLongPollServer") > 0).then_some(()) }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ann = sim.user(TOKEN, 1002, "Анна");
    ann.send_text("Можно заказать торт?");
    let (conv, _) = conversation_of(&app, "Можно заказать торт?").await;

    let id = reply(
        &app,
        &conv,
        json!({"text": "Какой?", "buttons": [[{"text": "Медовик", "data": "cake:honey"}, {"text": "Сайт", "url": "https://example.org"}]]}),
    )
    .await;
    assert_eq!(final_status(&app, &id).await["status"], "sent");
    let sent = sent_to(&sim, 1002).pop().unwrap();
    let keyboard = sent.keyboard.clone().unwrap();
    assert_eq!(keyboard["inline"], true);
    assert_eq!(keyboard["buttons"][0][1]["action"]["type"], "open_link");
    let event_id = ann.press(sent.message_id, &payload_of(&sim, sent.message_id, "Медовик"));
    let press = app.wait_message(|m| m["button_data"] == "cake:honey").await;
    assert_eq!(press["conversation_id"], conv);
    let answered = eventually(10, || async { sim.event_answers(TOKEN).into_iter().find(|a| a.event_id == event_id) })
        .await
        .expect("the press was answered");
    assert_eq!(answered.user_id, 1002);
}

#[tokio::test]
async fn a_link_code_through_the_vk_me_link_makes_the_person_the_business_contact() {
    let (app, sim, ch) = community("polling").await;
    eventually(10, || async { (sim.calls(TOKEN, "groups.getLongPollServer") > 0).then_some(()) }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = app.post("/api/v1/contacts", json!({"external_id": "emp-42", "name": "Иван Петров"})).await;
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let link = app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await;
    assert_eq!(link.status, 201, "{link:?}");
    let code = link.body["code"].as_str().unwrap().to_string();
    assert_eq!(link.body["links"][&ch], format!("https://vk.me/club{GROUP}?ref={code}"));

    // The person follows the link and presses Start: VK brings the ref with the message.
    let ivan = sim.user(TOKEN, 1003, "Иван");
    ivan.start(Some(&code));
    let confirm = sim.wait_sent(TOKEN, 1, 10).await;
    assert_eq!(confirm[0].text, "Готово! Ваш аккаунт связан: Иван Петров.");
    let linked = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
    assert_eq!(linked.body["identities"][0]["user_id"], "1003");
    assert_eq!(linked.body["identities"][0]["kind"], "vk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_in_a_group_conversation_is_taken_by_exactly_one_of_many_pressing_at_once() {
    let (app, sim, ch) = community("webhook").await;
    sim.set_limits(false);
    eventually(10, || async { (sim.callback_servers(TOKEN).first()?.1 == "ok").then_some(()) })
        .await
        .expect("the Callback API server was confirmed");
    let chat = sim.chat(TOKEN, 7, "Курьеры");
    let people: Vec<_> = (0..8).map(|n| sim.user(TOKEN, 2000 + n, "Курьер")).collect();

    let r = app
        .post(
            "/api/v1/tasks",
            json!({"channel_id": ch, "chat_id": chat.peer_id(), "title": "Доставка №1", "text": "Забрать на складе до 18:00"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let task_id = r.body["id"].as_str().unwrap().to_string();
    let post = sent_to(&sim, chat.peer_id()).pop().expect("the task is posted in the conversation");
    assert_eq!(post.text, "Доставка №1\n\nЗабрать на складе до 18:00");
    let take = payload_of(&sim, post.message_id, "Взять");

    let presses: Vec<(String, i64)> = people.iter().map(|p| (chat.press(p, post.message_id, &take), p.id())).collect();
    let answers = eventually(20, || async {
        let a = sim.event_answers(TOKEN);
        (a.len() >= presses.len()).then_some(a)
    })
    .await
    .expect("every press is answered");
    let text = |event: &str| {
        answers.iter().find(|a| a.event_id == event).and_then(|a| a.event_data.clone()).unwrap_or_default()["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let won: Vec<i64> =
        presses.iter().filter(|(e, _)| text(e) == "Задача «Доставка №1» ваша!").map(|(_, u)| *u).collect();
    assert_eq!(won.len(), 1, "exactly one winner: {answers:?}");
    for (e, u) in &presses {
        if *u != won[0] {
            assert!(text(e).starts_with("Задачу уже взял(а)"), "{u}: {}", text(e));
        }
    }
    let task = app.get(&format!("/api/v1/tasks/{task_id}")).await;
    assert_eq!(task.body["status"], "claimed");
    assert_eq!(task.body["claimed_by"]["user_id"], won[0].to_string());
    assert_eq!(task.body["claimed_by"]["name"], "Курьер");
    // The post loses its buttons.
    let edited = eventually(10, || async {
        sim.sent(TOKEN).into_iter().find(|s| s.method == "messages.edit" && s.message_id == post.message_id)
    })
    .await
    .expect("the post is edited");
    assert!(edited.text.contains("Задачу взял(а)"), "{}", edited.text);
    let kb = sim.message(TOKEN, post.message_id).unwrap()["keyboard"].clone();
    assert!(kb.is_null() || kb["buttons"].as_array().is_none_or(Vec::is_empty), "no buttons left: {kb}");
}

#[tokio::test]
async fn task_details_reach_a_person_the_community_may_not_write_to_through_the_vk_me_link() {
    let (app, sim, ch) = community("webhook").await;
    eventually(10, || async { (sim.callback_servers(TOKEN).first()?.1 == "ok").then_some(()) })
        .await
        .expect("the Callback API server was confirmed");
    let chat = sim.chat(TOKEN, 8, "Замерщики");
    let r = app
        .post(
            "/api/v1/tasks",
            json!({"channel_id": ch, "chat_id": chat.peer_id(), "title": "Замер окон", "text": "Ул. Ленина, 5",
                   "private_text": "Клиент: Ольга, +7 999 123-45-67"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let task_id = r.body["id"].as_str().unwrap().to_string();
    let post = sent_to(&sim, chat.peer_id()).pop().unwrap();

    // Someone who never wrote to the community: VK refuses (901), so the press opens its chat.
    let bob = sim.stranger(TOKEN, 3001, "Борис");
    let event = chat.press(&bob, post.message_id, &payload_of(&sim, post.message_id, "Подробнее"));
    let answer = eventually(10, || async { sim.event_answers(TOKEN).into_iter().find(|a| a.event_id == event) })
        .await
        .expect("the press was answered");
    let data = answer.event_data.expect("with a link");
    assert_eq!(data["type"], "open_link");
    assert_eq!(data["link"], format!("https://vk.me/club{GROUP}?ref=task-{task_id}"));
    assert!(sent_to(&sim, 3001).is_empty());

    // Following it brings the ref with the first message: the details come in private.
    bob.start(Some(&format!("task-{task_id}")));
    let details = eventually(10, || async { sent_to(&sim, 3001).pop() }).await.expect("the details");
    assert!(details.text.starts_with("Замер окон\n\nУл. Ленина, 5"), "{}", details.text);
    assert!(details.text.contains("Ольга, +7 999 123-45-67"));
    let take = payload_of(&sim, details.message_id, "Взять");
    let event = bob.press(details.message_id, &take);
    let won = eventually(10, || async { sim.event_answers(TOKEN).into_iter().find(|a| a.event_id == event) })
        .await
        .expect("the take was answered");
    assert_eq!(won.event_data.unwrap()["text"], "Задача «Замер окон» ваша!");
    let task = app.get(&format!("/api/v1/tasks/{task_id}")).await;
    assert_eq!(task.body["claimed_by"]["user_id"], "3001");
    assert_eq!(task.body["claimed_by"]["name"], "Борис");
}
