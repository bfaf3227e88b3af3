//! Broadcasts end to end through the Telegram simulator and the webhook channel: a group
//! mailing personalised per person with answer and "unsubscribe" buttons, people who opted out
//! or blocked the bot, the report; scheduling, pause, resume, cancel; a customer answered while a
//! broadcast is under way at Telegram's limits; bad requests.

use std::time::Duration;

use okno_testkit::telegram::{SimUser, TelegramSim};
use okno_testkit::{eventually, Sink, TestApp, TestDb};
use serde_json::{json, Value};

use crate::SECRET;

const TOKEN: &str = "515151:broadcast-test-token";
const BOT: &str = "mailing_test_bot";

async fn telegram(limits: bool) -> (TestApp, TelegramSim, String) {
    let app = TestApp::spawn().await;
    let sim = TelegramSim::start().await;
    sim.set_limits(limits);
    sim.add_bot(TOKEN, BOT);
    let ch = app.telegram_channel(&sim, TOKEN, "polling").await;
    (app, sim, ch)
}

/// A person writes to the bot; okno makes them a contact, named and put in `group`.
async fn client(app: &TestApp, sim: &TelegramSim, id: i64, name: &str, group: &str) -> (SimUser, String) {
    let user = sim.user(TOKEN, id, name);
    let hello = format!("Здравствуйте, я {name}");
    user.send_text(&hello);
    let m = app.wait_message(|m| m["text"] == hello.as_str()).await;
    let contact = m["contact_id"].as_str().unwrap().to_string();
    let r = app.patch(&format!("/api/v1/contacts/{contact}"), json!({"name": name, "groups": [group]})).await;
    assert_eq!(r.status, 200, "{r:?}");
    (user, contact)
}

async fn wait_status(app: &TestApp, id: &str, status: &str, secs: u64) -> Value {
    let reached = eventually(secs, || async {
        let b = app.get(&format!("/api/v1/broadcasts/{id}")).await.body;
        (b["status"] == status).then_some(b)
    })
    .await;
    match reached {
        Some(b) => b,
        None => panic!("broadcast {id} reaches `{status}`: {:?}", app.get(&format!("/api/v1/broadcasts/{id}")).await),
    }
}

fn texts_to(sim: &TelegramSim, user: i64) -> Vec<String> {
    sim.sent_to(TOKEN, user)
        .into_iter()
        .filter(|s| s.method == "sendMessage")
        .map(|s| s.plain.unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_mailing_is_personal_skips_opted_out_people_and_reports_answers() {
    let (app, sim, _) = telegram(false).await;
    let (anna, _) = client(&app, &sim, 9001, "Анна Петрова", "clients").await;
    let (boris, boris_id) = client(&app, &sim, 9002, "Борис", "clients").await;
    let (vera, _) = client(&app, &sim, 9003, "Вера", "clients").await;
    let (gleb, _) = client(&app, &sim, 9004, "Глеб", "clients").await;
    let (dina, _) = client(&app, &sim, 9005, "Дина", "clients").await;
    let (_, other) = client(&app, &sim, 9006, "Не клиент", "staff").await;
    // Dina wrote «стоп» earlier; Gleb blocked the bot.
    dina.send_text("стоп");
    eventually(10, || async {
        texts_to(&sim, 9005).iter().any(|t| t.starts_with("Вы отписались")).then_some(())
    })
    .await
    .expect("the stop word is confirmed");
    gleb.block();

    let r = app
        .post(
            "/api/v1/broadcasts",
            json!({
                "name": "Скидка марта",
                "audience": {"groups": ["clients"]},
                "text": "{{ contact.first_name }}, для вас скидка 10% до конца марта.",
                "buttons": [[{"text": "Интересно", "answer": "yes"}, {"text": "Не сейчас", "answer": "no"}]],
                "unsubscribe_button": "Отписаться от рассылки"
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["status"], "running");
    let id = r.body["id"].as_str().unwrap().to_string();
    let done = wait_status(&app, &id, "done", 20).await;
    assert_eq!(
        (&done["total"], &done["sent"], &done["failed"], &done["skipped"], &done["pending"]),
        (&json!(5), &json!(3), &json!(1), &json!(1), &json!(0)),
        "{done}"
    );
    for (user, first) in [(9001, "Анна"), (9002, "Борис"), (9003, "Вера")] {
        let got: Vec<_> = texts_to(&sim, user).into_iter().filter(|t| t.contains("скидка 10%")).collect();
        assert_eq!(got, vec![format!("{first}, для вас скидка 10% до конца марта.")], "exactly one, personal");
    }
    assert!(texts_to(&sim, 9005).iter().all(|t| !t.contains("скидка")), "Dina opted out");
    assert!(texts_to(&sim, 9006).iter().all(|t| !t.contains("скидка")), "not in the group");
    let post =
        sim.sent_to(TOKEN, 9001).into_iter().find(|s| s.plain.as_deref().unwrap_or("").contains("скидка")).unwrap();
    let keyboard = post.reply_markup.clone().unwrap();
    assert_eq!(keyboard["inline_keyboard"][1][0]["text"], "Отписаться от рассылки");

    // Anna answers; Boris unsubscribes by the button and is told so.
    anna.press(post.message_id, "answer:yes");
    let boris_post =
        sim.sent_to(TOKEN, 9002).into_iter().find(|s| s.plain.as_deref().unwrap_or("").contains("скидка")).unwrap();
    boris.press(boris_post.message_id, "unsubscribe");
    eventually(10, || async {
        texts_to(&sim, 9002).iter().any(|t| t.starts_with("Вы отписались")).then_some(())
    })
    .await
    .expect("the unsubscribe press is confirmed");
    let report = eventually(10, || async {
        let r = app.get(&format!("/api/v1/broadcasts/{id}/report")).await.body;
        (r["unsubscribed"] == 1 && r["answers"] == json!([["yes", 1]])).then_some(r)
    })
    .await;
    let Some(report) = report else { panic!("the answers are recorded: {}", report_of(&app, &id).await) };
    let reasons = report["failed_by_reason"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{report}");
    assert!(reasons[0][0].as_str().unwrap().contains("blocked"), "{report}");
    let failed = app.get(&format!("/api/v1/broadcasts/{id}/recipients?status=failed")).await.body;
    assert_eq!(failed["items"][0]["name"], "Глеб");
    let skipped = app.get(&format!("/api/v1/broadcasts/{id}/recipients?status=skipped")).await.body;
    assert_eq!(skipped["items"][0]["name"], "Дина");
    assert_eq!(skipped["items"][0]["reason"], "opted out of broadcasts");

    // The next mailing skips Boris too; a message meant for him alone still reaches him.
    let r = app
        .post("/api/v1/broadcasts", json!({"name": "Вторая", "audience": {"groups": ["clients"]}, "text": "Новинки"}))
        .await;
    let second = r.body["id"].as_str().unwrap().to_string();
    let done = wait_status(&app, &second, "done", 20).await;
    assert_eq!((&done["sent"], &done["skipped"]), (&json!(2), &json!(2)), "{done}");
    assert!(texts_to(&sim, 9002).iter().all(|t| t != "Новинки"));
    let r = app.post("/api/v1/messages", json!({"contact_id": boris_id, "text": "Ваш заказ готов"})).await;
    assert_eq!(r.status, 202, "{r:?}");
    eventually(10, || async { texts_to(&sim, 9002).iter().any(|t| t == "Ваш заказ готов").then_some(()) })
        .await
        .expect("transactional messages still reach a person who opted out of broadcasts");
    let _ = (vera, other);
}

async fn report_of(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/broadcasts/{id}/report")).await.body
}

/// People on the webhook channel, each in `group`.
async fn web_people(app: &TestApp, ch: &str, n: usize, group: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let body = json!({"message_id": format!("in-{group}-{i}"), "user": {"id": format!("{group}-{i}"), "name": format!("Клиент {i}")}, "text": "Добрый день"});
        let r = app.inbound(ch, SECRET, &body).await;
        assert_eq!(r.status, 200, "{r:?}");
        let m = app.get(&format!("/api/v1/messages/{}", r.body["id"].as_str().unwrap())).await.body;
        let contact = m["contact_id"].as_str().unwrap().to_string();
        app.patch(&format!("/api/v1/contacts/{contact}"), json!({"groups": [group]})).await;
        ids.push(contact);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_paused_resumed_and_cancelled_broadcasts_keep_their_word() {
    let app = TestApp::spawn().await;
    let sink = Sink::start(SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", sink.url), SECRET).await;
    let people = web_people(&app, &ch, 12, "list").await;
    let mailing = |body: Value| {
        let app = &app;
        async move {
            let r = app.post("/api/v1/broadcasts", body).await;
            assert_eq!(r.status, 201, "{r:?}");
            r.body
        }
    };
    let sent_with = |text: &str| sink.accepted().iter().filter(|r| r.body["text"] == text).count();

    // Scheduled two seconds ahead: nothing before, everyone after.
    let at = okno_domain::time::to_rfc3339(okno_domain::time::now_ms() + 2_000);
    let b = mailing(json!({"name": "Позже", "audience": {"contact_ids": people[..3]}, "text": "Позже", "send_at": at}))
        .await;
    assert_eq!(b["status"], "scheduled");
    let id = b["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(sent_with("Позже"), 0, "not before its time");
    wait_status(&app, &id, "done", 15).await;
    assert_eq!(sent_with("Позже"), 3);

    // Two a second: paused after the first few, nothing more goes; resumed, the rest go once.
    let b = mailing(json!({"name": "Медленно", "audience": {"groups": ["list"]}, "text": "Медленно", "rate": 2})).await;
    let id = b["id"].as_str().unwrap().to_string();
    eventually(10, || async { (sent_with("Медленно") >= 2).then_some(()) }).await.expect("the first go out");
    let paused = app.post(&format!("/api/v1/broadcasts/{id}/pause"), json!({})).await;
    assert_eq!(paused.status, 200, "{paused:?}");
    assert_eq!(paused.body["status"], "paused");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let at_pause = sent_with("Медленно");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(sent_with("Медленно"), at_pause, "a paused broadcast sends nothing more");
    assert!(at_pause < 12);
    let again = app.post(&format!("/api/v1/broadcasts/{id}/pause"), json!({})).await;
    assert_eq!((again.status, again.body["error"]["code"].as_str()), (409, Some("broadcast_state")), "{again:?}");
    let r = app.post(&format!("/api/v1/broadcasts/{id}/resume"), json!({})).await;
    assert_eq!(r.body["status"], "running", "{r:?}");
    let done = wait_status(&app, &id, "done", 30).await;
    assert_eq!(done["sent"], 12);
    assert_eq!(sent_with("Медленно"), 12, "each person once");

    // Cancelled early: the rest are left out and counted as cancelled.
    let b = mailing(json!({"name": "Отмена", "audience": {"groups": ["list"]}, "text": "Отмена", "rate": 1})).await;
    let id = b["id"].as_str().unwrap().to_string();
    eventually(10, || async { (sent_with("Отмена") >= 1).then_some(()) }).await.expect("the first goes out");
    let r = app.post(&format!("/api/v1/broadcasts/{id}/cancel"), json!({})).await;
    assert_eq!(r.body["status"], "cancelled", "{r:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let b = app.get(&format!("/api/v1/broadcasts/{id}")).await.body;
    let (sent, cancelled) = (b["sent"].as_i64().unwrap(), b["cancelled"].as_i64().unwrap());
    assert_eq!(sent + cancelled, 12, "{b}");
    assert!(cancelled >= 8, "{b}");
    assert_eq!(sent_with("Отмена") as i64, sent);
    let list = app.get("/api/v1/broadcasts").await.body;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert_eq!(list["items"][0]["name"], "Отмена", "newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_is_answered_while_a_broadcast_runs_at_telegrams_limit() {
    let (app, sim, _) = telegram(true).await;
    let total = 240;
    for n in 0..total {
        sim.user(TOKEN, 20_000 + n, &format!("Клиент {n}")).send_text("/start");
    }
    eventually(30, || async {
        let c = app.get("/api/v1/contacts?limit=500").await.body;
        (c["items"].as_array()?.len() >= total as usize).then_some(())
    })
    .await
    .expect("every person is a contact");
    let r = app
        .post(
            "/api/v1/broadcasts",
            json!({"name": "Большая", "audience": {"filter": {"channel_kind": "telegram"}}, "text": "Новости недели"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let mailed = || sim.sent(TOKEN).iter().filter(|s| s.plain.as_deref() == Some("Новости недели")).count();
    eventually(10, || async { (mailed() >= 30).then_some(()) }).await.expect("the broadcast is under way");

    // A customer — last in the audience, their own broadcast message still queued — writes in
    // the middle of it; the operator answers.
    let customer_id = 20_000 + total - 1;
    let customer = sim.user(TOKEN, customer_id, "Клиент");
    customer.send_text("Где мой заказ?");
    let m = app.wait_message(|m| m["text"] == "Где мой заказ?").await;
    let conv = m["conversation_id"].as_str().unwrap();
    let r = app.post(&format!("/api/v1/conversations/{conv}/messages"), json!({"text": "Заказ в пути"})).await;
    assert_eq!(r.status, 202, "{r:?}");
    let (at_answer, theirs) = eventually(20, || async {
        let texts = texts_to(&sim, customer_id);
        texts.iter().any(|t| t == "Заказ в пути").then(|| (mailed(), texts.iter().any(|t| t == "Новости недели")))
    })
    .await
    .expect("the customer is answered");
    // The answer overtook the queued broadcast, their own broadcast message included.
    assert!(at_answer < total as usize - 60, "answered after {at_answer} of {total} broadcast messages");
    assert!(!theirs, "the reply did not wait for the customer's own broadcast message");

    // Paused: the queued sends wait too (only those already in flight finish); resumed, the rest go.
    let r = app.post(&format!("/api/v1/broadcasts/{id}/pause"), json!({})).await;
    assert_eq!(r.body["status"], "paused", "{r:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let at_pause = mailed();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(mailed(), at_pause, "nothing more goes out while paused");
    assert!(at_pause < total as usize);
    let r = app.post(&format!("/api/v1/broadcasts/{id}/resume"), json!({})).await;
    assert_eq!(r.body["status"], "running", "{r:?}");
    let done = wait_status(&app, &id, "done", 60).await;
    assert_eq!(done["sent"], total);
    assert_eq!(mailed(), total as usize, "each person once");
    assert_eq!(sim.rate_limited(TOKEN), 0, "okno kept under Telegram's limits");
}

/// A broadcast send whose retry comes due while operators keep answering (each reply wakes the
/// workers more often than they poll) is still sent: the poll is a deadline the live traffic
/// does not push back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_retry_goes_out_while_live_replies_keep_the_workers_busy() {
    let app = TestApp::spawn_on(TestDb::sqlite(), |s| {
        s.delivery.poll_interval_ms = 1_000;
        s.delivery.retry_base_ms = 300;
        s.delivery.retry_max_ms = 600;
    })
    .await;
    let sink = Sink::start(SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", sink.url), SECRET).await;
    let people = web_people(&app, &ch, 1, "mail").await;
    let body = json!({"message_id": "in-live", "user": {"id": "live", "name": "Покупатель"}, "text": "Вопрос"});
    let r = app.inbound(&ch, SECRET, &body).await;
    let m = app.get(&format!("/api/v1/messages/{}", r.body["id"].as_str().unwrap())).await.body;
    let conv = m["conversation_id"].as_str().unwrap().to_string();

    // The broadcast's first attempt is refused; its retry waits for the poll.
    sink.script(&[503]);
    let r = app
        .post("/api/v1/broadcasts", json!({"name": "Повтор", "audience": {"contact_ids": people}, "text": "Акция"}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let refused = eventually(10, || async {
        sink.received().iter().any(|r| r.body["text"] == "Акция" && r.answered == 503).then_some(())
    })
    .await;
    assert!(refused.is_some(), "the first attempt was made: {:?}", sink.received());

    // Live replies every 100 ms, for up to ten poll intervals.
    let delivered = || sink.accepted().iter().any(|r| r.body["text"] == "Акция");
    let mut replies = 0;
    for n in 0..100 {
        if delivered() {
            break;
        }
        let r =
            app.post(&format!("/api/v1/conversations/{conv}/messages"), json!({"text": format!("Ответ {n}")})).await;
        assert_eq!(r.status, 202, "{r:?}");
        replies += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered(), "the broadcast's retry went out during {replies} live replies");
    let live = sink.wait_accepted(replies + 1, 10).await;
    assert_eq!(
        live.iter().filter(|r| r.body["text"].as_str().is_some_and(|t| t.starts_with("Ответ"))).count(),
        replies
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_broadcast_requests_are_refused_with_the_reason() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"name": "x", "text": "t"}), 400, "invalid_broadcast"),
        (json!({"name": "x", "audience": {}, "text": "t"}), 400, "invalid_broadcast"),
        (json!({"name": "x", "audience": {"groups": ["a"]}, "text": "{{ contact.name "}), 400, "invalid_template"),
        (
            json!({"name": "x", "audience": {"groups": ["a"]}, "text": "t", "send_at": "завтра"}),
            400,
            "invalid_broadcast",
        ),
        (json!({"name": "x", "audience": {"groups": ["a"]}, "text": "t", "rate": 0}), 400, "invalid_broadcast"),
        (json!({"name": "x", "audience": {"groups": ["a"]}, "text": "t", "colour": "red"}), 400, "invalid_broadcast"),
        (json!({"name": "x", "audience": {"contact_ids": ["nobody"]}, "text": "t"}), 422, "unknown_contact"),
        (
            json!({"name": "x", "audience": {"groups": ["a"]}, "text": "t", "buttons": [[{"text": "b"}]]}),
            400,
            "invalid_broadcast",
        ),
    ];
    for (body, status, code) in cases {
        let r = app.post("/api/v1/broadcasts", body.clone()).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (status, Some(code)), "{body} → {r:?}");
    }
    let r =
        app.post("/api/v1/broadcasts", json!({"name": "x", "audience": {"groups": ["a"]}, "text": "{% if %}"})).await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains("line 1"), "{r:?}");
    assert_eq!(app.get("/api/v1/broadcasts/nope").await.status, 404);
    assert_eq!(app.post("/api/v1/broadcasts/nope/cancel", json!({})).await.status, 404);
    // An empty group: done at once with nobody.
    let r = app.post("/api/v1/broadcasts", json!({"name": "x", "audience": {"groups": ["empty"]}, "text": "t"})).await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let done = wait_status(&app, &id, "done", 10).await;
    assert_eq!(done["total"], 0);
    let r = app.post(&format!("/api/v1/broadcasts/{id}/resume"), json!({})).await;
    assert_eq!(r.status, 409);
    let r = app.get(&format!("/api/v1/broadcasts/{id}/recipients?status=lost")).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (400, Some("invalid_status")));
    let r = app.call("GET", "/api/v1/broadcasts", None, Some("not-a-token")).await;
    assert_eq!(r.status, 401);
}

/// A role without the right to personal data cannot read it through a broadcast: its template
/// sees the contact masked, as every answer shows it, and its audience cannot be searched by
/// text (which would tell whether a phone number belongs to someone). Through the API and the
/// UI alike; a role with the right still gets the whole values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_by_a_role_without_personal_data_renders_the_contact_masked_and_cannot_search_numbers() {
    let (app, sink, ch) = crate::app_with_channel().await;
    let inbound = json!({"message_id": "m-1", "user": {"id": "u-1", "name": "Иван Петров"}, "text": "Здравствуйте"});
    assert_eq!(app.inbound(&ch, SECRET, &inbound).await.status, 200);
    let m = app.wait_message(|m| m["text"] == "Здравствуйте").await;
    let contact = m["contact_id"].as_str().unwrap().to_string();
    let r = app
        .patch(
            &format!("/api/v1/contacts/{contact}"),
            json!({"phone": "+79995550011", "email": "ivan.petrov@example.ru", "groups": ["vip"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let text = "P={{ contact.phone }} E={{ contact.email }}";
    let restricted = app.token_for(okno_domain::model::Role::Restricted).await;

    // The probe: `"masked": false` in the request changes nothing.
    let body = json!({"name": "Проба", "audience": {"groups": ["vip"]}, "text": text, "masked": false});
    let r = app.call("POST", "/api/v1/broadcasts", Some(body), Some(&restricted)).await;
    assert_eq!(r.status, 201, "{r:?}");
    wait_status(&app, r.body["id"].as_str().unwrap(), "done", 15).await;
    let sent = sink.wait_accepted(1, 10).await;
    assert_eq!(sent[0].body["text"], "P=+7999•••••11 E=i•••@example.ru", "{:?}", sent[0].body);
    let conv = m["conversation_id"].as_str().unwrap();
    let thread = app.call("GET", &format!("/api/v1/conversations/{conv}/messages"), None, Some(&restricted)).await;
    assert!(!thread.body.to_string().contains("5550011") && !thread.body.to_string().contains("ivan.petrov"));

    // Searching the audience by a number: refused, whether the number exists or not.
    for q in ["79995550011", "79990000000", "Иван"] {
        let body = json!({"name": "Проба", "audience": {"filter": {"q": q}}, "text": "t"});
        let r = app.call("POST", "/api/v1/broadcasts", Some(body), Some(&restricted)).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (403, Some("forbidden")), "{q}: {r:?}");
    }

    // The same in the UI, for an operator signed in with the restricted role.
    crate::ui::operator(&app, "rita", okno_domain::model::Role::Restricted).await;
    let mut rita = crate::ui::Client::new(&app);
    assert_eq!(rita.login("rita", crate::ui::PASSWORD).await.status, 303);
    let csrf = crate::ui::hidden(&rita.get("/ui/broadcasts").await.body, "csrf");
    let form = [
        ("csrf", csrf.as_str()),
        ("action", "start"),
        ("name", "Проба из окна"),
        ("groups", "vip"),
        ("text", text),
        ("unsubscribe", ""),
        ("counted", "1"),
    ];
    let made = rita.post("/ui/broadcasts", &form).await;
    assert_eq!(made.status, 303, "{}", made.body);
    let sent = sink.wait_accepted(2, 10).await;
    assert_eq!(sent[1].body["text"], "P=+7999•••••11 E=i•••@example.ru", "{:?}", sent[1].body);

    // An operator may see personal data: the same broadcast says it whole, and may search.
    let operator = app.token_for(okno_domain::model::Role::Operator).await;
    let body = json!({"name": "Полная", "audience": {"filter": {"q": "79995550011"}}, "text": text});
    let r = app.call("POST", "/api/v1/broadcasts", Some(body), Some(&operator)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let done = wait_status(&app, r.body["id"].as_str().unwrap(), "done", 15).await;
    assert_eq!(done["total"], 1);
    let sent = sink.wait_accepted(3, 10).await;
    assert_eq!(sent[2].body["text"], "P=+79995550011 E=ivan.petrov@example.ru");
}
