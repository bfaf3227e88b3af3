//! The MAX channel against the MAX Bot API simulator, through okno's API: connecting, both
//! receive modes, replies, a press answered, a link code carried by a deep link's start
//! payload, and a task in a group chat that exactly one of several people gets.

use std::collections::HashMap;
use std::time::Duration;

use okno_testkit::max::{MaxSim, SimUser};
use okno_testkit::{eventually, Sink, TestApp};
use serde_json::{json, Value};

use super::{final_status, reply};

const TOKEN: &str = "max-okno-test-token";
const BOT: &str = "okno_max_bot";

async fn bot(mode: &str) -> (TestApp, MaxSim, String) {
    let app = TestApp::spawn().await;
    let sim = MaxSim::start().await;
    sim.add_bot(TOKEN, BOT);
    let ch = app.max_channel(&sim, TOKEN, mode).await;
    (app, sim, ch)
}

async fn conversation_of(app: &TestApp, text: &str) -> (String, Value) {
    let m = app.wait_message(|m| m["text"] == text).await;
    (m["conversation_id"].as_str().unwrap().to_string(), m)
}

/// What the bot sent into a person's dialog.
fn shown(sim: &MaxSim, user: &SimUser) -> Vec<okno_testkit::max::Sent> {
    sim.sent_to(TOKEN, user.chat_id()).into_iter().filter(|s| s.method == "POST /messages").collect()
}

#[tokio::test]
async fn a_bad_max_token_is_a_clear_400_and_nothing_is_saved() {
    let app = TestApp::spawn().await;
    let sim = MaxSim::start().await;
    sim.add_bot(TOKEN, BOT);
    let bad = app
        .post(
            "/api/v1/channels",
            json!({"kind": "max", "name": "b", "config": {"token": "someone-elses", "api_base": sim.api_base()}}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_bot_token"), "{bad:?}");
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("Invalid access_token"), "{bad:?}");
    assert!(app.get("/api/v1/channels").await.body["items"].as_array().unwrap().is_empty());

    let good = app
        .post(
            "/api/v1/channels",
            json!({"kind": "max", "name": "MAX", "config": {"token": TOKEN, "api_base": sim.api_base()}}),
        )
        .await;
    assert_eq!(good.status, 201, "{good:?}");
    assert_eq!(good.body["info"]["username"], BOT);
    assert!(!good.body.to_string().contains(TOKEN), "the token is never shown");
    assert_eq!(sim.calls(TOKEN, "GET /me"), 1);
}

#[tokio::test]
async fn polling_receives_a_message_and_the_reply_reaches_the_person_as_plain_text() {
    let (app, sim, _ch) = bot("polling").await;
    let ann = sim.user(TOKEN, 7001, "Анна");
    ann.send_text("Здравствуйте! <где> мой заказ & **счёт**?");
    let (conv, m) = conversation_of(&app, "Здравствуйте! <где> мой заказ & **счёт**?").await;
    assert_eq!(m["direction"], "in");
    let contact = app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"].clone();
    assert_eq!(contact["name"], "Анна");
    assert_eq!(contact["identities"][0]["kind"], "max");
    assert_eq!(contact["identities"][0]["user_id"], "7001");

    let text = "Ваш заказ <b>№1042</b> & **счёт** отправлены";
    let id = reply(&app, &conv, json!({"text": text})).await;
    let done = final_status(&app, &id).await;
    assert_eq!(done["status"], "sent", "{done}");
    let sent = shown(&sim, &ann);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text.as_deref(), Some(text), "the operator's text is shown exactly");
    assert_eq!(sent[0].format, None, "plain text: nothing in it is read as markup");
}

#[tokio::test]
async fn webhook_mode_subscribes_with_a_secret_and_refuses_requests_without_it() {
    let (app, sim, ch) = bot("webhook").await;
    let subs = sim.subscriptions(TOKEN);
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0].url, format!("{}/hooks/{ch}", app.url));
    let secret = subs[0].secret.clone().expect("a secret");

    let ann = sim.user(TOKEN, 7002, "Анна");
    ann.send_text("через вебхук");
    let (conv, _) = conversation_of(&app, "через вебхук").await;
    let attempts = sim.webhook_attempts(TOKEN);
    assert_eq!(attempts[0].status, Some(200), "{attempts:?}");
    assert_eq!(attempts[0].secret.as_deref(), Some(secret.as_str()));
    // The same update again (the platform retries): recorded once.
    sim.replay_last_update(TOKEN);
    eventually(5, || async { (sim.webhook_attempts(TOKEN).len() >= 2).then_some(()) }).await.expect("redelivered");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let msgs = app.get(&format!("/api/v1/conversations/{conv}/messages")).await;
    assert_eq!(msgs.body["items"].as_array().unwrap().len(), 1, "{msgs:?}");

    let id = reply(&app, &conv, json!({"text": "Ответ"})).await;
    assert_eq!(final_status(&app, &id).await["status"], "sent");
    assert_eq!(shown(&sim, &ann)[0].text.as_deref(), Some("Ответ"));

    let forged = json!({"update_type": "message_created", "timestamp": 1, "message": {
        "sender": {"user_id": 666, "first_name": "Mallory", "is_bot": false},
        "recipient": {"chat_id": 1, "chat_type": "dialog"}, "body": {"mid": "mid.forged", "seq": 1, "text": "x"}}});
    let raw = serde_json::to_vec(&forged).unwrap();
    let no_secret = app.raw_hook(&ch, raw.clone(), None).await;
    assert_eq!(no_secret.status, 401, "{no_secret:?}");
    let wrong = app
        .http
        .post(format!("{}/hooks/{ch}", app.url))
        .header("X-Max-Bot-Api-Secret", "not-the-secret")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    // Back to polling: the subscription goes, since MAX does not answer long polls beside one.
    let back = app.patch(&format!("/api/v1/channels/{ch}"), json!({"config": {"mode": "polling"}})).await;
    assert_eq!(back.status, 200, "{back:?}");
    assert!(sim.subscriptions(TOKEN).is_empty());
    ann.send_text("снова опросом");
    conversation_of(&app, "снова опросом").await;
}

#[tokio::test]
async fn a_press_reaches_okno_with_its_data_and_is_answered_and_buttons_can_be_removed() {
    let (app, sim, _ch) = bot("polling").await;
    let hooks = Sink::start("hook-secret-0123456789").await;
    let sub = app
        .post(
            "/api/v1/webhooks",
            json!({"url": hooks.url, "events": ["button.pressed"], "secret": "hook-secret-0123456789"}),
        )
        .await;
    assert_eq!(sub.status, 201, "{sub:?}");
    let ann = sim.user(TOKEN, 7004, "Анна");
    ann.send_text("оценка");
    let (conv, _) = conversation_of(&app, "оценка").await;
    let long = format!("rate:{}:5", "x".repeat(1100));
    let id = reply(
        &app,
        &conv,
        json!({"text": "Оцените нас", "buttons": [[{"text": "5", "data": long}, {"text": "Сайт", "url": "https://example.org"}]]}),
    )
    .await;
    assert_eq!(final_status(&app, &id).await["status"], "sent");
    let sent = shown(&sim, &ann);
    let keyboard = sent[0].attachments.iter().find(|a| a["type"] == "inline_keyboard").expect("a keyboard").clone();
    let five = &keyboard["payload"]["buttons"][0][0];
    let payload = five["payload"].as_str().unwrap().to_string();
    assert!(payload.chars().count() <= 1024, "long data travels as a token: {payload}");
    assert_eq!(keyboard["payload"]["buttons"][0][1]["url"], "https://example.org");

    let callback = ann.press(&sent[0].mid, &payload);
    let got = hooks.wait_accepted(1, 10).await;
    assert_eq!(got[0].body["data"]["button_data"], long.as_str(), "the press carries the original data");
    assert_eq!(got[0].body["data"]["reply_to"], id.as_str());
    let answered =
        eventually(5, || async { sim.callback_answers(TOKEN).into_iter().find(|a| a.callback_id == callback) }).await;
    assert!(answered.expect("POST /answers was called").after < Duration::from_secs(3));

    let edit = app.patch(&format!("/api/v1/messages/{id}"), json!({"buttons": []})).await;
    assert_eq!(edit.status, 200, "{edit:?}");
    let now = eventually(5, || async {
        let m = sim.message(TOKEN, &sent[0].mid)?;
        m["body"]["attachments"].is_null().then_some(m)
    })
    .await
    .expect("the keyboard is gone");
    assert_eq!(now["body"]["text"], "Оцените нас", "the text stays");
}

#[tokio::test]
async fn a_deep_links_start_payload_links_the_person_to_the_contact() {
    let (app, sim, ch) = bot("polling").await;
    let c = app.post("/api/v1/contacts", json!({"external_id": "emp-42", "name": "Иван Петров"})).await;
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let link = app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await;
    assert_eq!(link.status, 201, "{link:?}");
    let code = link.body["code"].as_str().unwrap().to_string();
    assert_eq!(link.body["links"][&ch], format!("https://max.ru/{BOT}?start={code}"));

    // A person who never started the bot follows the link and presses Start.
    let ivan = sim.stranger(TOKEN, 7020, "Иван");
    ivan.start(Some(&code));
    let confirm = eventually(10, || async { shown(&sim, &ivan).into_iter().next() }).await.expect("a confirmation");
    assert_eq!(confirm.text.as_deref(), Some("Готово! Ваш аккаунт связан: Иван Петров."));
    let linked = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
    assert_eq!(linked.body["identities"][0]["kind"], "max");
    assert_eq!(linked.body["identities"][0]["user_id"], "7020");

    // The same code again from someone else is refused.
    let petr = sim.stranger(TOKEN, 7021, "Пётр");
    petr.start(Some(&code));
    let refusal = eventually(10, || async { shown(&sim, &petr).into_iter().next() }).await.expect("a refusal");
    assert_eq!(refusal.text.as_deref(), Some("Этот код уже использован. Попросите новый код."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_several_people_pressing_take_at_once_in_a_max_group_exactly_one_gets_the_task() {
    let (app, sim, ch) = bot("webhook").await;
    let group_id = -70_801_090_403_050_i64;
    let group = sim.group(TOKEN, group_id);
    let people: Vec<SimUser> = (0..5).map(|n| sim.user(TOKEN, 8000 + n, &format!("Курьер {n}"))).collect();

    let r = app
        .post(
            "/api/v1/tasks",
            json!({"channel_id": ch, "chat_id": group_id.to_string(), "title": "Доставка №1",
                   "text": "Забрать на складе <3> & отвезти", "private_text": "Клиент: +7 999 000-11-22"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let posts: Vec<_> = sim.sent_to(TOKEN, group_id).into_iter().filter(|s| s.method == "POST /messages").collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let post = &posts[0];
    assert_eq!(post.format.as_deref(), Some("html"));
    assert!(post.text.as_deref().unwrap().contains("Забрать на складе &lt;3&gt; &amp; отвезти"), "{post:?}");
    let keyboard = post.attachments.iter().find(|a| a["type"] == "inline_keyboard").expect("buttons");
    assert_eq!(keyboard["payload"]["buttons"][0][0]["text"], "Взять");
    assert_eq!(keyboard["payload"]["buttons"][0][1]["text"], "Подробнее");
    let take = keyboard["payload"]["buttons"][0][0]["payload"].as_str().unwrap().to_string();

    // Everyone presses at once: the simulator delivers each press to okno's webhook in parallel.
    let presses: Vec<(String, i64)> = people.iter().map(|p| (group.press(p, &post.mid, &take), p.id())).collect();
    let answers: HashMap<String, String> = eventually(20, || async {
        let all: HashMap<String, String> = sim
            .callback_answers(TOKEN)
            .into_iter()
            .map(|a| (a.callback_id, a.notification.unwrap_or_default()))
            .collect();
        presses.iter().all(|(q, _)| all.contains_key(q)).then_some(all)
    })
    .await
    .unwrap_or_else(|| panic!("every press is answered: {:?}", sim.callback_answers(TOKEN)));
    let won: Vec<i64> =
        presses.iter().filter(|(q, _)| answers[q] == "Задача «Доставка №1» ваша!").map(|(_, u)| *u).collect();
    assert_eq!(won.len(), 1, "exactly one winner: {answers:?}");
    let winner = won[0];
    for (q, user) in &presses {
        if *user != winner {
            assert!(answers[q].starts_with("Задачу уже взял(а) Курьер"), "{user} is told it is taken: {}", answers[q]);
        }
    }

    let task = app.get(&format!("/api/v1/tasks/{id}")).await.body;
    assert_eq!(task["status"], "claimed");
    assert_eq!(task["claimed_by"]["user_id"], winner.to_string());
    let edited = eventually(10, || async {
        let m = sim.message(TOKEN, &post.mid)?;
        m["body"]["text"].as_str().is_some_and(|t| t.contains("Задачу взял(а)")).then_some(m)
    })
    .await
    .expect("the group post shows who took it");
    assert!(edited["body"]["attachments"].is_null(), "the buttons are gone: {edited}");
    let private = eventually(10, || async {
        sim.sent_to(TOKEN, sim.dialog_id(winner))
            .into_iter()
            .find(|s| s.text.as_deref().is_some_and(|t| t.contains("ваша")))
    })
    .await
    .expect("the winner is told privately");
    assert!(private.text.as_deref().unwrap().contains("Клиент: +7 999 000-11-22"));

    // The executor gives it back from the private message: its button goes, its text stays.
    let keyboard = private.attachments.iter().find(|a| a["type"] == "inline_keyboard").expect("a give-back button");
    let give_back = keyboard["payload"]["buttons"][0][0]["payload"].as_str().unwrap().to_string();
    people[(winner - 8000) as usize].press(&private.mid, &give_back);
    let reopened = eventually(10, || async {
        let t = app.get(&format!("/api/v1/tasks/{id}")).await.body;
        (t["status"] == "open").then_some(t)
    })
    .await;
    assert!(reopened.is_some(), "the task is open again");
    let cleared = eventually(10, || async {
        let m = sim.message(TOKEN, &private.mid)?;
        m["body"]["attachments"].is_null().then_some(m)
    })
    .await
    .expect("the give-back button is gone");
    assert!(cleared["body"]["text"].as_str().unwrap().contains("ваша"), "the text stays: {cleared}");
}

#[tokio::test]
async fn files_contacts_replies_and_long_texts_travel_both_ways() {
    let (app, sim, _ch) = bot("polling").await;
    let ann = sim.user(TOKEN, 7005, "Анна");
    let first = ann.send_text("привет");
    let (conv, _) = conversation_of(&app, "привет").await;
    ann.send_image(b"\xff\xd8\xff fake jpeg bytes");
    ann.send_file(b"%PDF-1.7 invoice", "invoice.pdf");
    ann.share_contact("+7 999 000-11-22");
    ann.reply(&first, "это ответ");

    let all = eventually(15, || async {
        let msgs = app.get(&format!("/api/v1/conversations/{conv}/messages")).await;
        let items = msgs.body["items"].as_array().cloned().unwrap_or_default();
        let fetched = items
            .iter()
            .flat_map(|m| m["attachments"].as_array().cloned().unwrap_or_default())
            .all(|a| a["state"] != "pending");
        (items.len() >= 5 && fetched).then_some(items)
    })
    .await
    .expect("all five messages, with attachments fetched");
    let att = |i: usize| all[i]["attachments"][0].clone();
    let bytes = |url: String| {
        let app = &app;
        async move {
            let r = app.http.get(format!("{}{url}", app.url)).bearer_auth(&app.token).send().await.unwrap();
            r.bytes().await.unwrap().to_vec()
        }
    };
    assert_eq!(att(1)["state"], "ready", "{}", att(1));
    assert_eq!(bytes(att(1)["url"].as_str().unwrap().to_string()).await, b"\xff\xd8\xff fake jpeg bytes");
    assert_eq!(att(2)["name"], "invoice.pdf");
    assert_eq!(bytes(att(2)["url"].as_str().unwrap().to_string()).await, b"%PDF-1.7 invoice");
    assert!(all[3]["text"].as_str().unwrap().contains("+7 999 000-11-22"), "{}", all[3]);
    let contact = app.get(&format!("/api/v1/contacts/{}", all[0]["contact_id"].as_str().unwrap())).await;
    assert_eq!(contact.body["phone"], "+79990001122", "a shared own contact fills the phone");
    assert_eq!(all[4]["reply_to"], all[0]["id"], "a reply points at the message it answers");

    // Out: a file and a photo uploaded the MAX way, then a text over the limit in order.
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
    let doc = upload("price.pdf", "application/pdf", b"%PDF price").await;
    let with_files =
        reply(&app, &conv, json!({"text": "Чек и прайс", "attachments": [{"id": photo}, {"id": doc}]})).await;
    assert_eq!(final_status(&app, &with_files).await["status"], "sent");
    let sent = shown(&sim, &ann);
    assert_eq!(sent.len(), 2, "one message per file: {sent:?}");
    let token_of = |a: &Value| {
        a["payload"]["token"]
            .as_str()
            .map(str::to_string)
            .or_else(|| a["payload"]["photos"].as_object()?.values().next()?["token"].as_str().map(str::to_string))
            .expect("an upload token")
    };
    let fetch = |token: String| {
        let base = sim.api_base();
        async move { reqwest::get(format!("{base}/files/{token}")).await.unwrap().bytes().await.unwrap().to_vec() }
    };
    assert_eq!(sent[0].attachments[0]["type"], "image");
    assert_eq!(fetch(token_of(&sent[0].attachments[0])).await, b"\xff\xd8\xff photo");
    assert_eq!(sent[1].attachments[0]["type"], "file");
    assert_eq!(fetch(token_of(&sent[1].attachments[0])).await, b"%PDF price");
    assert_eq!(sent[1].text.as_deref(), Some("Чек и прайс"), "the text rides on the last file");
    assert!(
        sim.calls(TOKEN, "POST /messages") > 2,
        "a send right after an upload waits for MAX to process it (attachment.not.ready)"
    );

    let long: String = (0..400).map(|n| format!("Строка {n} длинного ответа.")).collect::<Vec<_>>().join(" ");
    let id = reply(&app, &conv, json!({"text": long})).await;
    assert_eq!(final_status(&app, &id).await["status"], "sent");
    let parts: Vec<String> = shown(&sim, &ann).into_iter().skip(2).filter_map(|s| s.text).collect();
    assert!(parts.len() >= 3, "{} parts", parts.len());
    assert!(parts.iter().all(|p| p.chars().count() <= 4000));
    assert_eq!(parts.join(" "), long, "in order, nothing lost");
}

#[tokio::test]
async fn a_person_who_stopped_the_bot_is_marked_blocked_and_the_send_ends_with_maxs_reason() {
    let (app, sim, _ch) = bot("polling").await;
    let ann = sim.user(TOKEN, 7006, "Анна");
    ann.send_text("до свидания");
    let (conv, m) = conversation_of(&app, "до свидания").await;
    ann.stop_bot();
    let contact_id = m["contact_id"].as_str().unwrap().to_string();
    let blocked = eventually(10, || async {
        let c = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
        (c.body["identities"][0]["blocked"] == true).then_some(())
    })
    .await;
    assert!(blocked.is_some(), "bot_stopped marks the identity blocked");
    let r = app.post(&format!("/api/v1/conversations/{conv}/messages"), json!({"text": "вы тут?"})).await;
    if r.status == 202 {
        let failed = final_status(&app, r.body["id"].as_str().unwrap()).await;
        assert_eq!(failed["status"], "failed", "{failed}");
        assert!(failed["error"].as_str().unwrap_or_default().contains("chat.denied"), "{failed}");
    } else {
        assert!(r.status >= 400, "a blocked person is not written to: {r:?}");
    }
    assert!(shown(&sim, &ann).is_empty(), "nothing reached the person");
}

#[tokio::test]
async fn group_messages_form_a_group_thread_and_replies_keep_to_the_chats_pace() {
    let (app, sim, _ch) = bot("polling").await;
    let ann = sim.user(TOKEN, 7010, "Анна");
    let group_id = -4001_i64;
    let group = sim.group(TOKEN, group_id);
    group.send_text(&ann, "отгрузка готова");
    let (conv, m) = conversation_of(&app, "отгрузка готова").await;
    assert_eq!(m["author"], "Анна");
    let c = app.get(&format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(c.body["contact"]["identities"][0]["user_id"], group_id.to_string(), "the thread is the group's");

    let ids: Vec<String> = queue_replies(&app, &conv, 6).await;
    for id in &ids {
        assert_eq!(final_status(&app, id).await["status"], "sent");
    }
    let sent: Vec<_> = sim.sent_to(TOKEN, group_id).into_iter().filter(|s| s.method == "POST /messages").collect();
    assert_eq!(sent.len(), 6);
    assert_eq!(sim.rate_limited(TOKEN), 0, "no 429: okno keeps to MAX's 2 messages a second per chat");
    let spread = sent[5].at - sent[0].at;
    assert!(spread >= Duration::from_millis(2000), "six messages to one chat take about 3 s, took {spread:?}");
}

/// Queues `n` replies, one right after another.
async fn queue_replies(app: &TestApp, conv: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(reply(app, conv, json!({"text": format!("ответ {i}")})).await);
    }
    ids
}

/// A new MAX channel's first poll has no marker, and without one MAX hands out only the latest
/// update: a burst that arrives while that poll waited would be lost but for its last. okno
/// takes the marker at once instead, so every message of a burst right after connecting is
/// stored, with polls that wait as long as MAX allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_right_after_connecting_by_polling_is_received_whole() {
    let app = TestApp::spawn_on(okno_testkit::TestDb::sqlite(), |s| s.polling.poll_timeout_secs = 25).await;
    let sim = MaxSim::start().await;
    sim.add_bot(TOKEN, BOT);
    app.max_channel(&sim, TOKEN, "polling").await;
    let people: Vec<SimUser> = (0..100).map(|i| sim.user(TOKEN, 70_000 + i, "Покупатель")).collect();
    // The poller is running and waiting before the burst comes.
    eventually(10, || async { (sim.calls(TOKEN, "GET /updates") >= 2).then_some(()) }).await.expect("polling");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..300 {
        people[i % 100].send_text(&format!("Заказ №{i}"));
    }
    let stored = eventually(30, || async {
        let text = app.http.get(format!("{}/metrics", app.url)).send().await.ok()?.text().await.ok()?;
        let n: usize = text
            .lines()
            .find(|l| l.starts_with("okno_inbound_messages_total") && l.contains("\"max\""))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (n >= 300).then_some(n)
    })
    .await;
    assert_eq!(stored, Some(300), "every message of the burst is stored");
}

/// Switched from polling to the webhook while a poll waits: MAX refuses that poll (no long
/// polls while a subscription exists), and okno's poller stops without marking the channel
/// failed; what people write then comes by the webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_a_polled_channel_to_the_webhook_leaves_it_active() {
    let app = TestApp::spawn_on(okno_testkit::TestDb::sqlite(), |s| s.polling.poll_timeout_secs = 25).await;
    let sim = MaxSim::start().await;
    sim.add_bot(TOKEN, BOT);
    let ch = app.max_channel(&sim, TOKEN, "polling").await;
    eventually(10, || async { (sim.calls(TOKEN, "GET /updates") >= 2).then_some(()) }).await.expect("polling");
    let r = app.patch(&format!("/api/v1/channels/{ch}"), json!({"config": {"mode": "webhook"}})).await;
    assert_eq!(r.status, 200, "{r:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let channel = app.get(&format!("/api/v1/channels/{ch}")).await.body;
    assert_eq!(channel["status"], "active", "{channel}");
    sim.user(TOKEN, 71_001, "Анна").send_text("по вебхуку");
    app.wait_message(|m| m["text"] == "по вебхуку").await;
}
