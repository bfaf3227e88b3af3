//! The OK channel against the Graph API simulator, end to end: connecting a group's key, the
//! simulator pushing people's messages to okno's hook over HTTP, replies, presses, linking a
//! person to a business contact by a typed code, and hook requests that are not OK's.

use std::time::Duration;

use okno_testkit::ok_sim::OkSim;
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Value};

use super::{final_status, reply};

const TOKEN: &str = "tkn18YdUJZe:CQABPOJKAKEKEKEKE";

async fn group() -> (TestApp, OkSim, String) {
    let app = TestApp::spawn().await;
    let sim = OkSim::start().await;
    sim.add_group(TOKEN, 57_000_000_000_001, "okno shop");
    let ch = app.ok_channel(&sim, TOKEN).await;
    (app, sim, ch)
}

async fn conversation_of(app: &TestApp, text: &str) -> (String, Value) {
    let m = app.wait_message(|m| m["text"] == text).await;
    (m["conversation_id"].as_str().unwrap().to_string(), m)
}

/// Waits until the simulator has `n` of the group's messages; returns them.
async fn wait_sent(sim: &OkSim, n: usize) -> Vec<okno_testkit::ok_sim::Sent> {
    eventually(10, || async {
        let sent = sim.sent(TOKEN);
        (sent.len() >= n).then_some(sent)
    })
    .await
    .unwrap_or_else(|| panic!("the group did not send {n} messages: {:?}", sim.sent(TOKEN)))
}

#[tokio::test]
async fn a_bad_key_is_a_clear_400_and_a_good_one_subscribes_the_hook_with_a_secret() {
    let app = TestApp::spawn().await;
    let sim = OkSim::start().await;
    sim.add_group(TOKEN, 57_000_000_000_001, "okno shop");
    let bad = app
        .post(
            "/api/v1/channels",
            json!({"kind": "ok", "name": "OK", "config": {"token": "tkn1unknown:X", "api_base": sim.api_base()}}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_token"), "{bad:?}");
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("PARAM_SESSION_EXPIRED"), "{bad:?}");
    assert!(app.get("/api/v1/channels").await.body["items"].as_array().unwrap().is_empty(), "nothing saved");
    assert!(sim.subscriptions(TOKEN).is_empty());

    let good = app
        .post(
            "/api/v1/channels",
            json!({"kind": "ok", "name": "OK", "config": {"token": TOKEN, "api_base": sim.api_base()}}),
        )
        .await;
    assert_eq!(good.status, 201, "{good:?}");
    assert_eq!(good.body["info"]["name"], "okno shop");
    assert!(!good.body.to_string().contains(TOKEN), "the key is never shown");
    let ch = good.body["id"].as_str().unwrap();
    let subs = sim.subscriptions(TOKEN);
    assert_eq!(subs.len(), 1, "{subs:?}");
    let prefix = format!("{}/hooks/{ch}?secret=", app.url);
    assert!(subs[0].starts_with(&prefix) && subs[0].len() >= prefix.len() + 32, "{subs:?}");
    assert!(!good.body.to_string().contains(&subs[0][prefix.len()..]), "the hook's secret is never shown");
}

#[tokio::test]
async fn a_pushed_message_reaches_the_inbox_once_and_the_reply_reaches_the_person() {
    let (app, sim, _ch) = group().await;
    let anna = sim.user(TOKEN, 577_001, "Анна");
    let mid = anna.send_text("Здравствуйте! Где мой заказ?");
    let (conv, m) = conversation_of(&app, "Здравствуйте! Где мой заказ?").await;
    assert_eq!(m["direction"], "in");
    assert_eq!(m["external_id"], mid.as_str());
    let contact = app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"].clone();
    assert_eq!(contact["name"], "Анна");
    assert_eq!(contact["identities"][0]["kind"], "ok");
    assert_eq!(contact["identities"][0]["chat_id"], anna.chat_id());

    // OK delivers again when its request went unanswered: okno keeps the message once.
    sim.replay_last_event(TOKEN);
    let replayed = eventually(10, || async {
        let ok = sim.webhook_attempts(TOKEN).iter().filter(|a| a.status == Some(200)).count();
        (ok >= 2).then_some(())
    })
    .await;
    assert!(replayed.is_some(), "okno answered the retry 200: {:?}", sim.webhook_attempts(TOKEN));
    let msgs = app.get(&format!("/api/v1/conversations/{conv}/messages")).await;
    assert_eq!(msgs.body["items"].as_array().unwrap().len(), 1, "{msgs:?}");

    let text = "Ваш заказ №1042 <b>в пути</b> & скоро будет";
    let id = reply(&app, &conv, json!({"text": text})).await;
    let sent = wait_sent(&sim, 1).await;
    assert_eq!((sent[0].chat_id.as_str(), sent[0].text.as_str()), (anna.chat_id(), text));
    let done = final_status(&app, &id).await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(done["external_id"], sent[0].mid.as_str());
}

#[tokio::test]
async fn hook_requests_without_the_secret_are_refused() {
    let (app, sim, ch) = group().await;
    let anna = sim.user(TOKEN, 577_002, "Анна");
    anna.send_text("настоящее");
    conversation_of(&app, "настоящее").await;
    let mut forged = sim.last_event(TOKEN).unwrap();
    forged["message"]["text"] = json!("подделка");
    forged["message"]["mid"] = json!("mid:forged.1");
    let secret = sim.subscriptions(TOKEN)[0].split("secret=").nth(1).unwrap().to_string();
    for url in [
        format!("{}/hooks/{ch}", app.url),
        format!("{}/hooks/{ch}?secret=0123456789abcdef", app.url),
        format!("{}/hooks/{ch}?other={secret}", app.url),
        format!("{}/hooks/{ch}?secret={secret}x", app.url),
    ] {
        let r = app.http.post(&url).json(&forged).send().await.unwrap();
        assert_eq!(r.status(), 401, "{url}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let convs = app.get("/api/v1/conversations").await;
    let conv = convs.body["items"][0]["id"].as_str().unwrap();
    let msgs = app.get(&format!("/api/v1/conversations/{conv}/messages")).await;
    assert!(msgs.body["items"].as_array().unwrap().iter().all(|m| m["text"] != "подделка"), "{msgs:?}");
}

#[tokio::test]
async fn a_button_press_is_recorded_and_answered_in_its_chat() {
    let (app, sim, _ch) = group().await;
    let anna = sim.user(TOKEN, 577_003, "Анна");
    anna.send_text("оценка");
    let (conv, _) = conversation_of(&app, "оценка").await;
    let long = format!("rate:{}:5", "x".repeat(80));
    let id = reply(
        &app,
        &conv,
        json!({"text": "Оцените нас", "buttons": [[{"text": "5", "data": long}, {"text": "Сайт", "url": "https://example.org"}]]}),
    )
    .await;
    let sent = wait_sent(&sim, 1).await;
    let keyboard = sent[0].attachments.iter().find(|a| a["type"] == "INLINE_KEYBOARD").unwrap().clone();
    let buttons = &keyboard["payload"]["keyboard"]["buttons"][0];
    assert_eq!((buttons[1]["type"].as_str(), buttons[1]["url"].as_str()), (Some("LINK"), Some("https://example.org")));
    let payload = buttons[0]["payload"].as_str().unwrap().to_string();
    assert!(payload.len() <= 64, "long data travels as a token: {payload}");
    final_status(&app, &id).await;

    let callback = anna.press(&sent[0].mid, &payload);
    let pressed = app.wait_message(|m| m["button_data"] == long.as_str()).await;
    assert_eq!(pressed["conversation_id"], conv.as_str());
    let answered =
        eventually(5, || async { sim.callback_answers(TOKEN).into_iter().find(|a| a.callback_id == callback) })
            .await
            .expect("the press was answered with graph.chat.answer");
    assert_eq!(answered.chat_id, anna.chat_id());
}

#[tokio::test]
async fn a_typed_link_code_makes_the_ok_user_the_business_contact() {
    let (app, sim, ch) = group().await;
    let c = app.post("/api/v1/contacts", json!({"external_id": "emp-42", "name": "Иван Петров"})).await;
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let link = app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await;
    assert_eq!(link.status, 201, "{link:?}");
    let code = link.body["code"].as_str().unwrap().to_string();
    assert!(link.body["links"].get(&ch).is_none_or(Value::is_null), "OK has no deep links: {link:?}");

    let ivan = sim.user(TOKEN, 577_020, "Иван");
    ivan.send_text("добрый день");
    conversation_of(&app, "добрый день").await;
    ivan.send_text(&code);
    let confirm = wait_sent(&sim, 1).await;
    assert_eq!(confirm[0].text, "Готово! Ваш аккаунт связан: Иван Петров.");
    assert_eq!(confirm[0].chat_id, ivan.chat_id());
    let linked = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
    assert_eq!(linked.body["identities"][0]["user_id"], ivan.user_id());
    let convs = app.get(&format!("/api/v1/conversations?contact_id={contact_id}")).await;
    let conv = convs.body["items"][0]["id"].as_str().unwrap();
    let history = app.get(&format!("/api/v1/conversations/{conv}/messages")).await;
    assert_eq!(history.body["items"][0]["text"], "добрый день", "what they wrote before linking moved along");
}

#[tokio::test]
async fn a_person_who_forbade_the_groups_messages_is_marked_blocked() {
    let (app, sim, _ch) = group().await;
    let anna = sim.user(TOKEN, 577_004, "Анна");
    anna.send_text("до запрета");
    let (conv, _) = conversation_of(&app, "до запрета").await;
    anna.disallow();
    let id = reply(&app, &conv, json!({"text": "не дойдёт"})).await;
    let failed = final_status(&app, &id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("PERMISSION_DENIED"), "OK's words: {failed}");
    let contact = app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"].clone();
    assert_eq!(contact["identities"][0]["blocked"], true, "{contact}");
}

#[tokio::test]
async fn a_group_chat_is_one_thread_with_its_members_named_and_replies_go_to_the_chat() {
    let (app, sim, _ch) = group().await;
    let anna = sim.user(TOKEN, 577_010, "Анна");
    let petr = sim.user(TOKEN, 577_011, "Пётр");
    let chat = sim.chat(TOKEN, "chat:C3ecb9d02a600", "Склад");
    chat.send_text(&anna, "отгрузка готова");
    let (conv, m) = conversation_of(&app, "отгрузка готова").await;
    assert_eq!(m["author"], "Анна");
    chat.send_text(&petr, "принял");
    let (same, m) = conversation_of(&app, "принял").await;
    assert_eq!((same.as_str(), m["author"].as_str()), (conv.as_str(), Some("Пётр")), "one thread for the chat");
    let c = app.get(&format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(c.body["contact"]["name"], "Склад");
    assert_eq!(c.body["contact"]["identities"][0]["chat_id"], chat.chat_id());
    let id = reply(&app, &conv, json!({"text": "спасибо"})).await;
    assert_eq!(final_status(&app, &id).await["status"], "sent");
    let sent = sim.sent(TOKEN);
    assert_eq!((sent[0].chat_id.as_str(), sent[0].text.as_str()), (chat.chat_id(), "спасибо"));
}
