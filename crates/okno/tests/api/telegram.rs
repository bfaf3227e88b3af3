//! The Telegram channel against the Bot API simulator: connecting, both receive modes, every
//! inbound and outbound kind, limits and errors, linking people to business contacts.

use std::time::Duration;

use okno_testkit::telegram::TelegramSim;
use okno_testkit::{eventually, Sink, TestApp, TestDb};

use super::{final_status, reply};
use serde_json::{json, Value};

const TOKEN: &str = "123456:ABC-test-token";

async fn bot(mode: &str) -> (TestApp, TelegramSim, String) {
    let app = TestApp::spawn().await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "okno_test_bot");
    let ch = app.telegram_channel(&sim, TOKEN, mode).await;
    (app, sim, ch)
}

async fn conversation_of(app: &TestApp, text: &str) -> (String, Value) {
    let m = app.wait_message(|m| m["text"] == text).await;
    (m["conversation_id"].as_str().unwrap().to_string(), m)
}

#[tokio::test]
async fn a_bad_token_is_a_clear_400_and_nothing_is_saved() {
    let app = TestApp::spawn().await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "okno_test_bot");
    let bad = app
        .post(
            "/api/v1/channels",
            json!({"kind": "telegram", "name": "b", "config": {"token": "999:unknown", "api_base": sim.api_base()}}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_bot_token"), "{bad:?}");
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("Unauthorized"));
    let malformed = app
        .post(
            "/api/v1/channels",
            json!({"kind": "telegram", "name": "b", "config": {"token": "nonsense", "api_base": sim.api_base()}}),
        )
        .await;
    assert_eq!(malformed.code(), "invalid_bot_token");
    assert!(app.get("/api/v1/channels").await.body["items"].as_array().unwrap().is_empty());

    let good = app
        .post(
            "/api/v1/channels",
            json!({"kind": "telegram", "name": "Бот", "config": {"token": TOKEN, "api_base": sim.api_base(),
                "commands": [{"command": "start", "description": "Начать"}, {"command": "help", "description": "Помощь"}]}}),
        )
        .await;
    assert_eq!(good.status, 201, "{good:?}");
    assert_eq!(good.body["info"]["username"], "okno_test_bot");
    assert!(!good.body.to_string().contains(TOKEN), "the token is never shown");
    assert_eq!(sim.commands(TOKEN)[1]["command"], "help");
}

#[tokio::test]
async fn polling_receives_a_message_and_the_reply_reaches_the_user_escaped() {
    let (app, sim, _ch) = bot("polling").await;
    let ann = sim.user(TOKEN, 7001, "Ann");
    ann.send_text("Здравствуйте! <где> мой заказ & счёт?");
    let (conv, m) = conversation_of(&app, "Здравствуйте! <где> мой заказ & счёт?").await;
    assert_eq!(m["direction"], "in");
    let contact = app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"].clone();
    assert_eq!(contact["name"], "Ann");
    assert_eq!(contact["identities"][0]["kind"], "telegram");
    assert_eq!(contact["identities"][0]["chat_id"], "7001");

    let text = "Ваш заказ <b>№1042</b> & счёт отправлены";
    let id = reply(&app, &conv, json!({"text": text})).await;
    let sent = sim.wait_sent(TOKEN, 1, 10).await;
    assert_eq!(sent[0].chat_id, 7001);
    assert_eq!(sent[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!(sent[0].plain.as_deref(), Some(text), "user text is shown exactly, never as markup");
    let done = final_status(&app, &id).await;
    assert_eq!(done["status"], "sent");
    assert_eq!(done["external_id"], format!("7001:{}", sent[0].message_id));
    assert_eq!(sim.pending_updates(TOKEN), 0, "the offset was confirmed");
}

#[tokio::test]
async fn a_restart_neither_loses_nor_repeats_updates() {
    let db = TestDb::sqlite();
    let url = db.url.clone();
    let mut app = TestApp::spawn_on(db, |_| {}).await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "okno_test_bot");
    app.telegram_channel(&sim, TOKEN, "polling").await;
    let ann = sim.user(TOKEN, 7001, "Ann");
    ann.send_text("first");
    conversation_of(&app, "first").await;
    app.stop().await;
    ann.send_text("while okno was down");
    let again = TestApp::spawn_on(TestDb::borrowed(&url), |_| {}).await;
    let (conv, _) = conversation_of(&again, "while okno was down").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let msgs = again.get(&format!("/api/v1/conversations/{conv}/messages")).await;
    let texts: Vec<_> =
        msgs.body["items"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(texts, vec!["first", "while okno was down"]);
}

#[tokio::test]
async fn a_webhook_set_elsewhere_is_reported_in_the_channel_status() {
    let (app, sim, ch) = bot("polling").await;
    // Someone sets a webhook for the same bot behind okno's back.
    let r: Value = reqwest::Client::new()
        .post(format!("{}/bot{TOKEN}/setWebhook", sim.api_base()))
        .json(&json!({"url": "http://127.0.0.1:9/elsewhere"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    let status = eventually(10, || async {
        let c = app.get(&format!("/api/v1/channels/{ch}")).await;
        (c.body["status"] == "error").then_some(c.body)
    })
    .await
    .expect("the conflict shows in the channel status");
    // The parked poll ends with "terminated by setWebhook request", later ones with "…while
    // webhook is active": either is the conflict, in Telegram's words.
    let detail = status["status_detail"].as_str().unwrap().to_lowercase();
    assert!(detail.starts_with("conflict:") && detail.contains("webhook"), "{status}");
    let calls = sim.calls(TOKEN, "getUpdates");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sim.calls(TOKEN, "getUpdates") <= calls + 1, "okno does not spin on the conflict");
}

#[tokio::test]
async fn webhook_mode_registers_a_secret_and_checks_it() {
    let (app, sim, ch) = bot("webhook").await;
    let hook = sim.webhook(TOKEN).expect("okno set a webhook");
    assert_eq!(hook.url, format!("{}/hooks/{ch}", app.url));
    let secret = hook.secret_token.clone().expect("with a secret token");
    assert!(secret.len() >= 32);
    let ann = sim.user(TOKEN, 7002, "Ann");
    ann.send_text("через вебхук");
    conversation_of(&app, "через вебхук").await;

    let update = json!({"update_id": 1, "message": {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"}, "text": "forged"}});
    let forged = app
        .http
        .post(format!("{}/hooks/{ch}", app.url))
        .header("x-telegram-bot-api-secret-token", "wrong")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let missing = app.http.post(format!("{}/hooks/{ch}", app.url)).json(&update).send().await.unwrap();
    assert_eq!(missing.status(), 401);

    // Back to polling: the webhook is removed and messages still arrive.
    let p = app.patch(&format!("/api/v1/channels/{ch}"), json!({"config": {"mode": "polling"}})).await;
    assert_eq!(p.status, 200, "{p:?}");
    assert!(sim.webhook(TOKEN).is_none_or(|w| w.url.is_empty()), "deleteWebhook was called");
    ann.send_text("снова поллинг");
    conversation_of(&app, "снова поллинг").await;
    let back = app.patch(&format!("/api/v1/channels/{ch}"), json!({"config": {"mode": "webhook"}})).await;
    assert_eq!(back.status, 200);
    assert_eq!(sim.webhook(TOKEN).unwrap().secret_token.unwrap(), secret, "the secret is kept");
}

#[tokio::test]
async fn media_contacts_replies_and_edits_arrive_complete() {
    let (app, sim, _ch) = bot("polling").await;
    let ann = sim.user(TOKEN, 7003, "Ann");
    ann.send_text("начало");
    let (conv, first) = conversation_of(&app, "начало").await;
    ann.send_photo(b"\xff\xd8\xff fake jpeg bytes", Some("фото чека"));
    ann.send_document(b"%PDF-1.7 invoice", "invoice.pdf", "application/pdf");
    ann.send_voice(b"OggS voice");
    ann.send_video(b"video bytes");
    ann.send_sticker(b"RIFF webp");
    ann.send_big_document("film.mkv", 30 * 1024 * 1024);
    ann.send_contact("+7 999 000-11-22", true);
    let edited_id = ann.send_text("опечтка");
    ann.edit(edited_id, "опечатка");
    let quoted = ann.reply(edited_id, "это ответ");

    let all = eventually(15, || async {
        let msgs = app.get(&format!("/api/v1/conversations/{conv}/messages")).await;
        let items = msgs.body["items"].as_array().cloned().unwrap_or_default();
        let fetched = items
            .iter()
            .flat_map(|m| m["attachments"].as_array().cloned().unwrap_or_default())
            .all(|a| a["state"] != "pending");
        (items.len() >= 10 && fetched).then_some(items)
    })
    .await
    .expect("all ten messages, with attachments fetched");
    let att = |i: usize| all[i]["attachments"][0].clone();
    assert_eq!(all[1]["text"], "фото чека");
    assert_eq!(att(1)["mime"], "image/jpeg");
    assert_eq!(att(2)["name"], "invoice.pdf");
    assert_eq!(att(3)["mime"], "audio/ogg");
    assert_eq!(att(4)["mime"], "video/mp4");
    assert_eq!(att(5)["mime"], "image/webp");
    assert_eq!(att(6)["state"], "failed");
    assert!(att(6)["note"].as_str().unwrap().contains("20 MB"), "{}", att(6));
    for (i, m) in all.iter().enumerate().take(6).skip(1) {
        assert_eq!(att(i)["state"], "ready", "{m}");
    }
    let doc = app
        .http
        .get(format!("{}{}", app.url, att(2)["url"].as_str().unwrap()))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(&doc.bytes().await.unwrap()[..], b"%PDF-1.7 invoice");
    let photo = app
        .http
        .get(format!("{}{}", app.url, att(1)["url"].as_str().unwrap()))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(&photo.bytes().await.unwrap()[..], b"\xff\xd8\xff fake jpeg bytes", "the largest size is the real file");

    let contact = app.get(&format!("/api/v1/contacts/{}", first["contact_id"].as_str().unwrap())).await;
    assert_eq!(contact.body["phone"], "+79990001122", "a shared own contact fills the phone");
    let edited = all.iter().find(|m| m["external_id"] == format!("7003:{edited_id}")).unwrap();
    assert_eq!(edited["text"], "опечатка");
    assert_eq!(edited["edited"], true);
    let answer = all.iter().find(|m| m["external_id"] == format!("7003:{quoted}")).unwrap();
    assert_eq!(answer["reply_to"], edited["id"]);
}

#[tokio::test]
async fn button_presses_become_events_and_are_answered_at_once() {
    let (app, sim, _ch) = bot("polling").await;
    let hooks = Sink::start("hook-secret-0123456789").await;
    app.post(
        "/api/v1/webhooks",
        json!({"url": hooks.url, "events": ["button.pressed"], "secret": "hook-secret-0123456789"}),
    )
    .await;
    let ann = sim.user(TOKEN, 7004, "Ann");
    ann.send_text("оценка");
    let (conv, _) = conversation_of(&app, "оценка").await;
    let long = format!("rate:{}:{}", "x".repeat(80), "5");
    let id = reply(
        &app,
        &conv,
        json!({"text": "Оцените нас", "buttons": [[{"text": "5", "data": long}, {"text": "Сайт", "url": "https://example.org"}]]}),
    )
    .await;
    let sent = sim.wait_sent(TOKEN, 1, 10).await;
    let keyboard = sent[0].reply_markup.clone().unwrap();
    let data = keyboard["inline_keyboard"][0][0]["callback_data"].as_str().unwrap().to_string();
    assert!(data.len() <= 64, "long data travels as a token: {data}");
    assert_eq!(keyboard["inline_keyboard"][0][1]["url"], "https://example.org");
    final_status(&app, &id).await;

    let query = ann.press(sent[0].message_id, &data);
    let got = hooks.wait_accepted(1, 10).await;
    assert_eq!(got[0].body["data"]["button_data"], long.as_str(), "the press carries the original data");
    assert_eq!(got[0].body["data"]["reply_to"], id.as_str());
    let answered =
        eventually(5, || async { sim.callback_answers(TOKEN).into_iter().find(|a| a.callback_query_id == query) })
            .await;
    assert!(answered.expect("answerCallbackQuery was called").after < Duration::from_secs(3));

    // Remove the buttons after the press (seed 001).
    let edit = app.patch(&format!("/api/v1/messages/{id}"), json!({"buttons": []})).await;
    assert_eq!(edit.status, 200, "{edit:?}");
    let edits = sim.sent(TOKEN).into_iter().filter(|s| s.method.eq_ignore_ascii_case("editMessageReplyMarkup")).count();
    assert_eq!(edits, 1);
    assert!(edit.body["buttons"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn long_texts_split_in_order_and_files_go_up_with_captions() {
    let (app, sim, _ch) = bot("polling").await;
    let ann = sim.user(TOKEN, 7005, "Ann");
    ann.send_text("прайс");
    let (conv, first) = conversation_of(&app, "прайс").await;
    let paragraph = "Строка прайса. ".repeat(150); // ~2250 units
    let long = format!("{paragraph}\n\n{paragraph}\n\n{paragraph}");
    reply(&app, &conv, json!({"text": long, "reply_to": first["id"]})).await;
    let parts = sim.wait_sent(TOKEN, 3, 15).await;
    let plain: Vec<String> = parts.iter().map(|s| s.plain.clone().unwrap()).collect();
    assert_eq!(plain.join("\n\n"), long, "in order, nothing lost");
    assert!(plain.iter().all(|p| p.encode_utf16().count() <= 4096));
    assert_eq!(
        parts[0].reply_to_message_id,
        first["external_id"].as_str().unwrap().split(':').nth(1).unwrap().parse().ok()
    );

    let upload = |name: &str, mime: &str, data: &'static [u8]| {
        let (app, name, mime) = (&app, name.to_string(), mime.to_string());
        async move {
            let r = app
                .http
                .post(format!("{}/api/v1/attachments?name={name}", app.url))
                .bearer_auth(&app.token)
                .header("content-type", mime)
                .body(data)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    };
    let photo = upload("check.jpg", "image/jpeg", b"\xff\xd8\xff photo").await;
    let doc =
        upload("price.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK xlsx").await;
    reply(&app, &conv, json!({"text": "Чек", "attachments": [{"id": photo}]})).await;
    let long_caption = "Подпись ".repeat(200); // over 1024
    reply(&app, &conv, json!({"text": long_caption, "attachments": [{"id": doc}]})).await;
    let sent = sim.wait_sent(TOKEN, 6, 15).await;
    let p = &sent[3];
    assert_eq!(p.method.to_lowercase(), "sendphoto");
    assert_eq!(p.caption.as_deref(), Some("Чек"));
    assert_eq!(p.file.as_ref().unwrap().bytes, b"\xff\xd8\xff photo");
    let d = &sent[4];
    assert_eq!(d.method.to_lowercase(), "senddocument");
    assert_eq!(d.file.as_ref().unwrap().name, "price.xlsx");
    assert!(d.caption.is_none(), "a caption over 1024 becomes a text of its own");
    assert_eq!(sent[5].plain.as_deref(), Some(long_caption.as_str()));
    assert!(sim.chat_actions(TOKEN).iter().any(|(chat, a)| *chat == 7005 && a == "upload_document"));
}

#[tokio::test]
async fn reply_keyboards_are_shown_and_removed() {
    let (app, sim, _ch) = bot("polling").await;
    let ann = sim.user(TOKEN, 7006, "Ann");
    ann.send_text("меню");
    let (conv, _) = conversation_of(&app, "меню").await;
    reply(&app, &conv, json!({"text": "Выберите", "reply_keyboard": [["Да", "Нет"]], "one_time_keyboard": true})).await;
    reply(&app, &conv, json!({"text": "Спасибо", "remove_keyboard": true})).await;
    let sent = sim.wait_sent(TOKEN, 2, 10).await;
    assert_eq!(sent[0].reply_markup.as_ref().unwrap()["keyboard"][0][1]["text"], "Нет");
    assert_eq!(sent[1].reply_markup.as_ref().unwrap()["remove_keyboard"], true);
    let bad =
        app.post(&format!("/api/v1/conversations/{conv}/messages"), json!({"text": "x", "reply_keyboard": [[]]})).await;
    assert_eq!(bad.code(), "invalid_buttons");
    let typing = app.post(&format!("/api/v1/conversations/{conv}/chat-action"), json!({"action": "typing"})).await;
    assert_eq!(typing.status, 204);
    assert!(sim.chat_actions(TOKEN).iter().any(|(chat, a)| *chat == 7006 && a == "typing"));
}

#[tokio::test]
async fn a_user_who_blocked_the_bot_is_marked_and_not_retried() {
    let (app, sim, _ch) = bot("polling").await;
    let ann = sim.user(TOKEN, 7007, "Ann");
    ann.send_text("привет");
    let (conv, m) = conversation_of(&app, "привет").await;
    ann.block();
    let contact_id = m["contact_id"].as_str().unwrap().to_string();
    eventually(10, || async {
        let c = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
        (c.body["identities"][0]["blocked"] == true).then_some(())
    })
    .await
    .expect("my_chat_member marks the identity blocked");
    ann.unblock();
    eventually(10, || async {
        let c = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
        (c.body["identities"][0]["blocked"] == false).then_some(())
    })
    .await
    .expect("unblocking clears it");

    // Blocked again, silently (no update this time): the send itself finds out.
    sim.user(TOKEN, 7007, "Ann").deactivate();
    let id = reply(&app, &conv, json!({"text": "вы тут?"})).await;
    let failed = final_status(&app, &id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], "Forbidden: user is deactivated");
    assert_eq!(sim.calls(TOKEN, "sendMessage"), 1, "a permanent refusal is not retried");
    let c = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
    assert_eq!(c.body["identities"][0]["blocked"], true);
}

#[tokio::test]
async fn rate_limits_are_honoured_and_429_waits_for_retry_after() {
    let app = TestApp::spawn().await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "okno_test_bot");
    // okno's own pacing off: the simulator's limits answer 429 and okno must wait them out.
    let ch = app
        .post(
            "/api/v1/channels",
            json!({"kind": "telegram", "name": "bot", "config": {"token": TOKEN, "api_base": sim.api_base(),
                "limits": {"per_second": 0, "per_chat_per_second": 0, "per_chat_burst": 0, "per_group_per_minute": 0}}}),
        )
        .await;
    assert_eq!(ch.status, 201);
    let ann = sim.user(TOKEN, 7008, "Ann");
    ann.send_text("много");
    let (conv, _) = conversation_of(&app, "много").await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(reply(&app, &conv, json!({"text": format!("часть {n}")})).await);
    }
    let sent = sim.wait_sent(TOKEN, 6, 30).await;
    let texts: Vec<_> = sent.iter().map(|s| s.plain.clone().unwrap()).collect();
    assert_eq!(texts, (0..6).map(|n| format!("часть {n}")).collect::<Vec<_>>(), "in order, each once");
    assert!(sim.rate_limited(TOKEN) >= 1, "the burst of 3 per chat was exceeded");
    for id in &ids {
        assert_eq!(final_status(&app, id).await["status"], "sent");
    }
}

#[tokio::test]
async fn okno_paces_itself_under_telegram_limits() {
    let (app, sim, _ch) = bot("polling").await;
    let ann = sim.user(TOKEN, 7009, "Ann");
    ann.send_text("темп");
    let (conv, _) = conversation_of(&app, "темп").await;
    for n in 0..6 {
        reply(&app, &conv, json!({"text": format!("{n}")})).await;
    }
    let sent = sim.wait_sent(TOKEN, 6, 30).await;
    let times: Vec<_> = sent.iter().map(|s| (s.method.clone(), s.at - sent[0].at)).collect();
    assert_eq!(sim.rate_limited(TOKEN), 0, "no 429: okno keeps to 1/s per chat after a burst of 3: {times:?}");
    let spread = sent[5].at - sent[0].at;
    assert!(spread >= Duration::from_millis(2500), "six messages to one chat take about 3 s, took {spread:?}");
}

#[tokio::test]
async fn group_messages_form_a_group_thread_and_follow_a_supergroup_migration() {
    let (app, sim, _ch) = bot("polling").await;
    let ann = sim.user(TOKEN, 7010, "Ann");
    let group = sim.group(TOKEN, -4001, "Склад");
    group.send_text(&ann, "отгрузка готова");
    let (conv, m) = conversation_of(&app, "отгрузка готова").await;
    assert_eq!(m["author"], "Ann");
    let c = app.get(&format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(c.body["contact"]["name"], "Склад");
    group.migrate(-1_004_001);
    let id = reply(&app, &conv, json!({"text": "принято"})).await;
    assert_eq!(final_status(&app, &id).await["status"], "sent");
    let sent = sim.sent(TOKEN);
    assert_eq!(sent.last().unwrap().chat_id, -1_004_001, "sent to the supergroup");
}

#[tokio::test]
async fn sends_to_unreachable_chats_fail_with_telegrams_words() {
    let (app, sim, ch) = bot("polling").await;
    // A contact known to okno, on a chat the bot never saw.
    let c = app.post("/api/v1/contacts", json!({"external_id": "1c-9", "name": "Пётр"})).await;
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let store = app.running().engine.store.clone();
    let sender = okno_store::InboundSender { user_id: "7011".into(), chat_id: "7011".into(), ..Default::default() };
    store.attach_identity(&contact_id.as_str().into(), &ch.as_str().into(), sender).await.unwrap();
    sim.stranger(TOKEN, 7011);
    let r = app.post("/api/v1/messages", json!({"external_id": "1c-9", "text": "здравствуйте"})).await;
    let failed = final_status(&app, r.body["id"].as_str().unwrap()).await;
    assert_eq!(failed["error"], "Forbidden: bot can't initiate conversation with a user");
    let sender = okno_store::InboundSender { user_id: "7012".into(), chat_id: "7012".into(), ..Default::default() };
    let c2 = app.post("/api/v1/contacts", json!({"external_id": "1c-10"})).await;
    store.attach_identity(&c2.body["id"].as_str().unwrap().into(), &ch.as_str().into(), sender).await.unwrap();
    let r = app.post("/api/v1/messages", json!({"external_id": "1c-10", "text": "x"})).await;
    let failed = final_status(&app, r.body["id"].as_str().unwrap()).await;
    assert_eq!(failed["error"], "Bad Request: chat not found");
}

#[tokio::test]
async fn a_link_code_makes_the_telegram_user_the_business_contact() {
    let (app, sim, ch) = bot("polling").await;
    let c = app
        .post("/api/v1/contacts", json!({"external_id": "emp-42", "name": "Иван Петров", "groups": ["sales"]}))
        .await;
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let link = app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await;
    assert_eq!(link.status, 201, "{link:?}");
    let code = link.body["code"].as_str().unwrap().to_string();
    assert_eq!(link.body["links"][&ch], format!("https://t.me/okno_test_bot?start={code}"));

    let ivan = sim.user(TOKEN, 7020, "Ivan");
    ivan.send_text("добрый день");
    ivan.send_text(&format!("/start {code}"));
    let confirm = sim.wait_sent(TOKEN, 1, 10).await;
    assert_eq!(confirm[0].plain.as_deref(), Some("Готово! Ваш аккаунт связан: Иван Петров."));
    let linked = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
    assert_eq!(linked.body["identities"][0]["user_id"], "7020");
    let convs = app.get(&format!("/api/v1/conversations?contact_id={contact_id}")).await;
    let conv = convs.body["items"][0]["id"].as_str().unwrap();
    let history = app.get(&format!("/api/v1/conversations/{conv}/messages")).await;
    assert_eq!(history.body["items"][0]["text"], "добрый день", "what they wrote before linking moved along");

    let petr = sim.user(TOKEN, 7021, "Petr");
    petr.send_text(&code);
    petr.send_text("ZZZZ9999");
    petr.send_text("/start ZZZZ9999");
    let replies = sim.wait_sent(TOKEN, 3, 10).await;
    assert_eq!(replies[1].plain.as_deref(), Some("Этот код уже использован. Попросите новый код."));
    assert_eq!(replies[2].plain.as_deref(), Some("Код не найден. Проверьте его или попросите новый."));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sim.sent(TOKEN).len(), 3, "a bare text that only looks like a code is an ordinary message");
    assert_eq!(app.post("/api/v1/contacts/nope/link", json!({})).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres_poll_a_bot_from_exactly_one() {
    let Some(db) = TestDb::postgres().await else { return };
    let url = db.url.clone();
    let a = TestApp::spawn_on(db, |_| {}).await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "okno_test_bot");
    let ch = a.telegram_channel(&sim, TOKEN, "polling").await;
    let b = TestApp::spawn_on(TestDb::borrowed(&url), |_| {}).await;
    let ann = sim.user(TOKEN, 7030, "Ann");
    let mut statuses = Vec::new();
    for n in 0..30 {
        ann.send_text(&format!("сообщение {n}"));
        tokio::time::sleep(Duration::from_millis(60)).await;
        statuses.push(a.get(&format!("/api/v1/channels/{ch}")).await.body["status"].clone());
    }
    let (conv, _) = conversation_of(&b, "сообщение 29").await;
    let msgs = a.get(&format!("/api/v1/conversations/{conv}/messages?limit=100")).await;
    assert_eq!(msgs.body["items"].as_array().unwrap().len(), 30, "each update recorded once");
    // Two pollers on one bot would keep ending each other's long polls with 409 conflicts.
    assert!(statuses.iter().all(|s| s == "active"), "{statuses:?}");
    assert_eq!(a.get(&format!("/api/v1/channels/{ch}")).await.body["status"], "active");
}

#[tokio::test]
async fn a_retried_long_message_resumes_after_the_parts_already_delivered() {
    let (app, sim, ch) = bot("polling").await;
    let ann = sim.user(TOKEN, 7040, "Ann");
    ann.send_text("начало");
    let (conv, _) = conversation_of(&app, "начало").await;
    let paragraph = |c: char| c.to_string().repeat(3000);
    let text = format!("{}\n\n{}\n\n{}", paragraph('а'), paragraph('б'), paragraph('в'));
    // As a worker leaves it when the third part fails after two went out.
    let req = okno_store::OutboundRequest {
        to: okno_store::Recipient::Conversation(conv.as_str().into()),
        channel_id: Some(ch.as_str().into()),
        text: Some(text),
        buttons: vec![],
        attachment_ids: vec![],
        idempotency_key: None,
        author: None,
        reply_to: None,
        options: json!({"sent_parts": 2}),
    };
    let (m, _) = app.running().engine.send(req).await.unwrap();
    let sent = sim.wait_sent(TOKEN, 1, 10).await;
    assert_eq!(final_status(&app, &m.id).await["status"], "sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let parts: Vec<_> = sim.sent(TOKEN).into_iter().filter_map(|s| s.plain).collect();
    assert_eq!(parts, vec![paragraph('в')], "only the third part goes out again: {}", sent.len());
}
