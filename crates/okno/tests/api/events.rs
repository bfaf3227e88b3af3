//! Business events → rules → notifications, end to end against the Telegram simulator, with
//! the shipped examples (`examples/rules`, `examples/events`) as the rules and events.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use okno_testkit::telegram::TelegramSim;
use okno_testkit::{eventually, Sink, TestApp, TestDb};
use serde_json::{json, Value};

use super::SECRET;

const TOKEN: &str = "424242:events-bot";

fn example(path: &str) -> Value {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(path);
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

/// okno with a Telegram bot and every example rule loaded.
async fn shop() -> (TestApp, TelegramSim, String) {
    shop_on(TestDb::sqlite()).await
}

async fn shop_on(db: TestDb) -> (TestApp, TelegramSim, String) {
    let app = TestApp::spawn_on(db, |_| {}).await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "shop_events_bot");
    let ch = app.telegram_channel(&sim, TOKEN, "polling").await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/rules");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in files {
        let rule: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let r = app.post("/api/v1/rules", rule).await;
        assert_eq!(r.status, 201, "{f:?}: {r:?}");
    }
    (app, sim, ch)
}

/// A business contact reachable in Telegram as `tg_id`.
async fn person(
    app: &TestApp,
    sim: &TelegramSim,
    ch: &str,
    external_id: &str,
    name: &str,
    tg_id: i64,
    extra: Value,
) -> String {
    let mut body = json!({"external_id": external_id, "name": name});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let c = app.post("/api/v1/contacts", body).await;
    assert_eq!(c.status, 201, "{c:?}");
    let id = c.body["id"].as_str().unwrap().to_string();
    sim.user(TOKEN, tg_id, name);
    let sender =
        okno_store::InboundSender { user_id: tg_id.to_string(), chat_id: tg_id.to_string(), ..Default::default() };
    app.running().engine.store.attach_identity(&id.as_str().into(), &ch.into(), sender).await.unwrap();
    id
}

async fn post_event(app: &TestApp, event: Value) -> String {
    let r = app.post("/api/v1/events", event).await;
    assert_eq!(r.status, 202, "{r:?}");
    r.body["id"].as_str().unwrap().to_string()
}

async fn texts_to(sim: &TelegramSim, chat: i64, n: usize) -> Vec<String> {
    eventually(15, || async {
        let got: Vec<String> = sim.sent_to(TOKEN, chat).into_iter().filter_map(|s| s.plain).collect();
        (got.len() >= n).then_some(got)
    })
    .await
    .unwrap_or_else(|| panic!("chat {chat} did not get {n} messages: {:?}", sim.sent_to(TOKEN, chat)))
}

/// Waits until an event's notifications settle; returns the event.
pub(super) async fn settled(app: &TestApp, id: &str) -> Value {
    eventually(20, || async {
        let e = app.get(&format!("/api/v1/events/{id}")).await;
        let done = e.body["status"] != "accepted"
            && e.body["deliveries"].as_array().is_some_and(|d| d.iter().all(|d| d["status"] != "queued"));
        done.then_some(e.body)
    })
    .await
    .expect("the event settles")
}

#[tokio::test]
async fn the_seed_scenarios_reach_the_right_people() {
    let (app, sim, ch) = shop().await;
    person(&app, &sim, &ch, "1c-manager-petrov", "Петров", 7101, json!({})).await;
    person(&app, &sim, &ch, "1c-employee-ivanova", "Иванова", 7102, json!({})).await;
    person(
        &app,
        &sim,
        &ch,
        "1c-client-romashka",
        "ООО «Ромашка»",
        7103,
        json!({"attrs": {"tz": "Asia/Yekaterinburg"}}),
    )
    .await;
    person(&app, &sim, &ch, "1c-it-smirnov", "Смирнов", 7104, json!({})).await;
    person(&app, &sim, &ch, "1c-it-head-kozlov", "Козлов", 7105, json!({})).await;
    person(&app, &sim, &ch, "1c-buyer-1", "Закупщик 1", 7106, json!({"groups": ["закупки"]})).await;
    person(&app, &sim, &ch, "1c-buyer-2", "Закупщик 2", 7107, json!({"groups": ["закупки", "склад"]})).await;

    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for n in [
            "01_payment_received",
            "02_order_blocked",
            "03_expense_status",
            "04_order_shipped",
            "05_critical_it_request",
            "06_stock_below_minimum",
        ] {
            ids.push(post_event(&app, example(&format!("events/{n}.json"))).await);
        }
        ids
    };
    // (1) payment → the client's manager, with amount, debt and credit limit.
    // Separate events are processed concurrently: Петров's three messages may come in any order.
    let petrov = texts_to(&sim, 7101, 3).await;
    let about = |needle: &str| petrov.iter().find(|t| t.contains(needle)).cloned().unwrap_or_default();
    let petrov = [about("Ромашка"), about("Превышен кредитный лимит"), about("Ожидаемая доставка")];
    assert!(petrov[0].contains("ООО «Ромашка»: 1\u{a0}250\u{a0}000,00\u{a0}₽"), "{}", petrov[0]);
    assert!(
        petrov[0].contains("Текущий долг: 350\u{a0}000,00\u{a0}₽, кредитный лимит: 2\u{a0}000\u{a0}000,00\u{a0}₽"),
        "{}",
        petrov[0]
    );
    let paid = sim.sent_to(TOKEN, 7101).into_iter().find(|s| s.plain.as_deref().is_some_and(|t| t.contains("Ромашка")));
    let button = paid.and_then(|s| s.reply_markup).unwrap();
    assert_eq!(button["inline_keyboard"][0][0]["url"], "https://erp.example.com/e1cib/data/Document.ПКО?ref=123");
    // (2) order blocked → the manager, with the reasons.
    assert!(
        petrov[1].contains("• Превышен кредитный лимит на 120 000 ₽\n• Просрочена оплата по счёту № 88"),
        "{}",
        petrov[1]
    );
    // (3) expense status → its initiator.
    assert_eq!(
        texts_to(&sim, 7102, 1).await[0],
        "Заявка на расход ЗР-77 на 45\u{a0}000,00\u{a0}₽: статус «Согласована».\nКомментарий: Оплата в пятницу"
    );
    // (4) shipped → the manager and the client, each in their own time zone.
    assert!(
        petrov[2].contains("Ожидаемая доставка: 25.11.2027 07:00")
            && petrov[2].contains("3 позиции на 98\u{a0}500,50\u{a0}₽"),
        "{}",
        petrov[2]
    );
    assert!(texts_to(&sim, 7103, 1).await[0].contains("Ожидаемая доставка: 25.11.2027 12:00"));
    // (5) critical IT request → the specialist and their head.
    for chat in [7104, 7105] {
        assert!(texts_to(&sim, chat, 1).await[0].starts_with("🔥 Критично для бизнеса: заявка ИТ-901"));
    }
    // (6) stock below minimum → everyone in the purchasing group.
    for chat in [7106, 7107] {
        assert!(texts_to(&sim, chat, 1).await[0].contains("осталось 40 м при минимуме 200 м"));
    }
    for id in &ids {
        let ev = settled(&app, id).await;
        assert_eq!(ev["status"], "processed", "{ev}");
        assert!(ev["deliveries"].as_array().unwrap().iter().all(|d| d["status"] == "sent"), "{ev}");
        assert!(ev["unresolved"].as_array().unwrap().is_empty(), "{ev}");
    }
    // The notification is part of the person's history for operators.
    let convs = app.get("/api/v1/conversations?limit=100").await;
    assert_eq!(convs.body["items"].as_array().unwrap().len(), 7);

    // Not critical: no rule fires, and the event says so.
    let mut calm = example("events/05_critical_it_request.json");
    calm["key"] = json!("ИТ-902-normal");
    calm["data"]["priority"] = json!("normal");
    let calm_id = post_event(&app, calm).await;
    assert_eq!(settled(&app, &calm_id).await["status"], "no_rule");
    let unknown = post_event(&app, json!({"type": "something.nobody.handles", "key": "x-1", "data": {}})).await;
    assert_eq!(settled(&app, &unknown).await["status"], "no_rule");
}

#[tokio::test]
async fn ratings_are_answers_and_the_report_averages_them_per_manager() {
    let (app, sim, ch) = shop().await;
    let hooks = Sink::start("hook-secret-0123456789").await;
    app.post(
        "/api/v1/webhooks",
        json!({"url": hooks.url, "events": ["button.pressed"], "secret": "hook-secret-0123456789"}),
    )
    .await;
    let clients = [(7201, "Петров", "5"), (7202, "Петров", "4"), (7203, "Сидорова", "2")];
    let mut event_ids = Vec::new();
    for (tg, manager, _) in clients {
        person(&app, &sim, &ch, &format!("client-{tg}"), "Клиент", tg, json!({})).await;
        let id = post_event(
            &app,
            json!({"type": "order.completed", "key": format!("done-{tg}"), "data": {"client_id": format!("client-{tg}"), "order": format!("ЗК-{tg}"), "manager": manager}}),
        )
        .await;
        event_ids.push(id);
    }
    for (i, (tg, _, rating)) in clients.iter().enumerate() {
        let sent = texts_to(&sim, *tg, 1).await;
        assert!(sent[0].contains("от 1 до 5"));
        settled(&app, &event_ids[i]).await;
        let msg = sim.sent_to(TOKEN, *tg)[0].clone();
        let data = msg.reply_markup.as_ref().unwrap()["inline_keyboard"][0][rating.parse::<usize>().unwrap() - 1]
            ["callback_data"]
            .as_str()
            .unwrap()
            .to_string();
        sim.user(TOKEN, *tg, "Клиент").press(msg.message_id, &data);
    }
    let got = hooks.wait_accepted(3, 15).await;
    assert!(got.iter().all(|d| d.body["data"]["event_id"].is_string()));
    let answers: Vec<_> = got.iter().map(|d| d.body["data"]["answer"].as_str().unwrap().to_string()).collect();
    assert_eq!(answers.iter().filter(|a| *a == "5").count(), 1);
    let report = eventually(10, || async {
        let r = app.get("/api/v1/reports/answers?event=order.completed&group_by=manager").await;
        (r.body["items"].as_array().map(Vec::len) == Some(2)).then_some(r.body)
    })
    .await
    .expect("the report has both managers");
    let petrov = report["items"].as_array().unwrap().iter().find(|g| g["group"] == "Петров").unwrap();
    assert_eq!((petrov["count"].as_u64(), petrov["average"].as_f64()), (Some(2), Some(4.5)));
    let sidorova = report["items"].as_array().unwrap().iter().find(|g| g["group"] == "Сидорова").unwrap();
    assert_eq!(sidorova["average"].as_f64(), Some(2.0));
}

#[tokio::test]
async fn one_key_notifies_once_even_in_a_storm() {
    let (app, sim, ch) = shop().await;
    person(&app, &sim, &ch, "1c-manager-petrov", "Петров", 7301, json!({})).await;
    let event = example("events/01_payment_received.json");
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let (http, url, token, event) = (app.http.clone(), app.url.clone(), app.token.clone(), event.clone());
        tasks.push(tokio::spawn(async move {
            let r = http.post(format!("{url}/api/v1/events")).bearer_auth(token).json(&event).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string())
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut accepted = 0;
    for t in tasks {
        let (status, id) = t.await.unwrap();
        accepted += usize::from(status == 202);
        assert!(status == 202 || status == 200);
        ids.insert(id);
    }
    assert_eq!((ids.len(), accepted), (1, 1), "one event, accepted once");
    texts_to(&sim, 7301, 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(sim.sent_to(TOKEN, 7301).len(), 1, "notified once");
    let again = app.post("/api/v1/events", event).await;
    assert_eq!((again.status, again.body["duplicate"].as_bool()), (200, Some(true)));
}

#[tokio::test]
async fn bad_data_and_unreachable_recipients_are_reported_not_lost() {
    let (app, sim, ch) = shop().await;
    person(&app, &sim, &ch, "1c-manager-petrov", "Петров", 7401, json!({})).await;
    app.post("/api/v1/contacts", json!({"external_id": "1c-client-no-messenger", "name": "Без мессенджера"})).await;
    // The manager's part renders; the client's has no identity anywhere.
    let mut shipped = example("events/04_order_shipped.json");
    shipped["data"]["client_id"] = json!("1c-client-no-messenger");
    let id = post_event(&app, shipped).await;
    let ev = settled(&app, &id).await;
    assert_eq!(ev["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(ev["unresolved"][0]["reason"], "no identity on any channel");
    // A field the template needs is missing: that delivery fails with the reason.
    let mut broken = example("events/01_payment_received.json");
    broken["key"] = json!("broken-1");
    broken["data"].as_object_mut().unwrap().remove("debt");
    let ev = settled(&app, &post_event(&app, broken).await).await;
    assert_eq!(ev["deliveries"][0]["status"], "failed");
    assert!(ev["deliveries"][0]["error"].as_str().unwrap().contains("lacks a field"), "{ev}");
    // Nobody behind the names.
    let mut nobody = example("events/02_order_blocked.json");
    nobody["key"] = json!("nobody-1");
    nobody["data"]["manager_id"] = json!("1c-who");
    let ev = settled(&app, &post_event(&app, nobody).await).await;
    assert_eq!(ev["unresolved"][0]["reason"], "unknown external id `1c-who`");
    let empty_group = settled(&app, &post_event(&app, example("events/06_stock_below_minimum.json")).await).await;
    assert_eq!(empty_group["unresolved"][0]["reason"], "group `закупки` has no contacts");

    // Malformed rules are refused with the position.
    let bad = app
        .post("/api/v1/rules", json!({"name": "x", "event": "e", "recipients": [{"group": "g"}], "template": "Привет\n{{ data.amount | money }"}))
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_template"));
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("line 2"), "{bad:?}");
    let bad = app.post("/api/v1/rules", json!({"name": "x", "event": "e", "recipients": [{"group": "g"}], "template": "t", "condition": "data.a >"})).await;
    assert_eq!(bad.code(), "invalid_condition");
    let bad = app
        .post(
            "/api/v1/rules",
            json!({"name": "x", "event": "e", "recipients": [{"group": "g", "phone": "1"}], "template": "t"}),
        )
        .await;
    assert_eq!(bad.code(), "invalid_rule");
    let bad = app.post("/api/v1/events", json!({"type": "e", "key": "k", "data": [1]})).await;
    assert_eq!(bad.code(), "invalid_event");
}

#[tokio::test]
async fn a_blocked_channel_falls_back_to_the_next_one() {
    let (app, sim, ch) = shop().await;
    let site = Sink::start(SECRET).await;
    let web = app.webhook_channel(&format!("{}/out", site.url), SECRET).await;
    let id = person(&app, &sim, &ch, "1c-manager-petrov", "Петров", 7501, json!({})).await;
    // The manager also uses the website chat, but less recently than Telegram.
    let store = app.running().engine.store.clone();
    store
        .attach_identity(
            &id.as_str().into(),
            &web.as_str().into(),
            okno_store::InboundSender {
                user_id: "site-petrov".into(),
                chat_id: "site-petrov".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .attach_identity(
            &id.as_str().into(),
            &ch.as_str().into(),
            okno_store::InboundSender { user_id: "7501".into(), chat_id: "7501".into(), ..Default::default() },
        )
        .await
        .unwrap();
    sim.user(TOKEN, 7501, "Петров").deactivate();
    let ev = settled(&app, &post_event(&app, example("events/01_payment_received.json")).await).await;
    let got = site.wait_accepted(1, 10).await;
    assert!(got[0].body["text"].as_str().unwrap().starts_with("💰 Поступила оплата"));
    assert_eq!(ev["deliveries"][0]["channel_id"], web.as_str(), "{ev}");
    assert_eq!(ev["deliveries"][0]["status"], "sent");
}

#[tokio::test]
async fn scheduled_notifications_wait_and_survive_a_restart() {
    let db = TestDb::sqlite();
    let url = db.url.clone();
    let (mut app, sim, ch) = shop_on(db).await;
    person(&app, &sim, &ch, "client-visit", "Клиент", 7601, json!({"phone": "+7 900 111-22-33"})).await;
    // A visit 24 hours and 3 seconds from now: the reminder is due in 3 seconds.
    let visit_at = okno_domain::time::to_rfc3339(okno_domain::time::now_ms() + 24 * 3_600_000 + 3_000);
    post_event(&app, json!({"type": "visit.booked", "key": "visit-1", "data": {"client_phone": "+79001112233", "visit_at": visit_at, "place": "Сервис на Ленина"}})).await;
    let mut later = example("events/03_expense_status.json");
    later["send_at"] = json!(okno_domain::time::to_rfc3339(okno_domain::time::now_ms() + 2_000));
    person(&app, &sim, &ch, "1c-employee-ivanova", "Иванова", 7602, json!({})).await;
    let started = Instant::now();
    post_event(&app, later).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sim.sent(TOKEN).is_empty(), "nothing before its time");
    app.stop().await;
    let again = TestApp::spawn_on(TestDb::borrowed(&url), |_| {}).await;
    let expense = texts_to(&sim, 7602, 1).await;
    assert!(started.elapsed() >= Duration::from_millis(1900), "sent at its time, not before");
    assert!(expense[0].starts_with("Заявка на расход ЗР-77"));
    let reminder = texts_to(&sim, 7601, 1).await;
    assert!(reminder[0].starts_with("Напоминаем: завтра,"), "{}", reminder[0]);
    assert!(started.elapsed() >= Duration::from_millis(2500));
    drop(again);
}

#[tokio::test]
async fn a_rule_previews_against_sample_data() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/rules/preview",
            json!({"rule": example("rules/04_order_shipped.json"), "data": example("events/04_order_shipped.json")["data"],
                   "contact": {"name": "Клиент", "attrs": {"tz": "Europe/Moscow"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["matches"], true);
    assert!(r.body["text"].as_str().unwrap().contains("25.11.2027 10:00"), "{}", r.body["text"]);
    assert_eq!(r.body["recipients"][1]["external_id"], "1c-client-romashka");
    let broken =
        app.post("/api/v1/rules/preview", json!({"rule": example("rules/04_order_shipped.json"), "data": {}})).await;
    assert_eq!(broken.code(), "template_failed");
}

/// Makes the database refuse to complete an event (a full disk, a lost connection) until
/// [`let_events_complete`]: the `UPDATE` of an event's status raises an error.
async fn refuse_event_completion(db: &TestDb) {
    if db.postgres_admin().is_some() {
        db.execute_raw(&[
            "CREATE TABLE refuse_events (n INTEGER)",
            "INSERT INTO refuse_events VALUES (1)",
            "CREATE FUNCTION refuse_event_completion() RETURNS trigger AS $$ BEGIN \
             IF EXISTS (SELECT 1 FROM refuse_events) THEN RAISE EXCEPTION 'could not write: the disk is full'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_event_completion BEFORE UPDATE OF status ON events \
             FOR EACH ROW EXECUTE FUNCTION refuse_event_completion()",
        ])
        .await;
    } else {
        db.execute_raw(&[
            "CREATE TABLE refuse_events (n INTEGER)",
            "INSERT INTO refuse_events VALUES (1)",
            "CREATE TRIGGER refuse_event_completion BEFORE UPDATE OF status ON events \
             WHEN EXISTS (SELECT 1 FROM refuse_events) BEGIN SELECT RAISE(ABORT, 'could not write: the disk is full'); END",
        ])
        .await;
    }
}

async fn let_events_complete(db: &TestDb) {
    db.execute_raw(&["DELETE FROM refuse_events"]).await;
}

/// How many times an event's processing ended in a store error and was put back to retry.
async fn event_retries(app: &TestApp) -> u64 {
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .find(|l| {
            l.starts_with("okno_deliveries_total{")
                && l.contains("kind=\"process_event\"")
                && l.contains("outcome=\"retry\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .map_or(0, |n| n as u64)
}

/// An event whose processing fails in the store twice before it goes through: each person
/// who could not be reached is named once (not once per attempt), the figures count them once,
/// and the person who can be reached gets the message — once.
async fn a_retried_event_names_each_unreached_person_once(db: TestDb) {
    let app = TestApp::spawn_on(db, |s| s.delivery.send_max_attempts = 50).await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "shop_events_bot");
    let ch = app.telegram_channel(&sim, TOKEN, "polling").await;
    person(&app, &sim, &ch, "1c-manager-petrov", "Петров", 7501, json!({})).await;
    let lonely =
        app.post("/api/v1/contacts", json!({"external_id": "1c-no-messenger", "name": "Без мессенджера"})).await;
    assert_eq!(lonely.status, 201);
    let rule = json!({
        "name": "оплата", "event": "payment.received", "template": "Оплата {{ data.amount }}",
        "recipients": [{"external_id": "{{ data.manager_id }}"}, {"external_id": "1c-no-messenger"},
                       {"external_id": "1c-who"}, {"group": "бухгалтерия"}],
    });
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    let broken = json!({
        "name": "сломанное условие", "event": "payment.received", "template": "x",
        "condition": "data.amount > data.limit.value", "recipients": [{"external_id": "1c-manager-petrov"}],
    });
    assert_eq!(app.post("/api/v1/rules", broken).await.status, 201);

    refuse_event_completion(&app.db).await;
    let before = event_retries(&app).await;
    let id = post_event(
        &app,
        json!({"type": "payment.received", "key": "pay-retry", "data": {"amount": 100, "manager_id": "1c-manager-petrov"}}),
    )
    .await;
    eventually(30, || async { (event_retries(&app).await >= before + 2).then_some(()) })
        .await
        .expect("the event's processing failed and was retried");
    let_events_complete(&app.db).await;

    let ev = settled(&app, &id).await;
    assert_eq!(ev["status"], "processed", "{ev}");
    let codes: Vec<&str> = ev["unresolved"].as_array().unwrap().iter().map(|u| u["code"].as_str().unwrap()).collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["condition_error", "empty_group", "no_identity", "unknown_external_id"],
        "each unreached person, and the rule's note, once: {ev}"
    );
    let listed = app.get("/api/v1/events?key=pay-retry").await;
    assert_eq!(listed.body["items"][0]["counts"]["unresolved"], 3, "{}", listed.body);
    assert_eq!(listed.body["items"][0]["counts"]["sent"], 1, "{}", listed.body);
    assert_eq!(texts_to(&sim, 7501, 1).await, vec!["Оплата 100".to_string()]);
    assert_eq!(ev["deliveries"].as_array().unwrap().len(), 1, "one message for the person reached: {ev}");
}

#[tokio::test]
async fn a_retried_event_names_each_unreached_person_once_on_sqlite() {
    a_retried_event_names_each_unreached_person_once(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_retried_event_names_each_unreached_person_once_on_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    a_retried_event_names_each_unreached_person_once(db).await;
}
