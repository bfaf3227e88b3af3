//! Surveys end to end: questions in turn through the Telegram simulator (buttons, a typed
//! answer, a free text), exact results, NPS and CSV, `survey.answered` at a signed receiver;
//! an event trigger asking once per event; a date trigger asking once across rescans and a
//! restart; a reminder and a deadline on the webhook channel; and bad input.

use okno_testkit::telegram::{Sent, TelegramSim};
use okno_testkit::{eventually, Sink, TestApp, TestDb};
use serde_json::{json, Value};

use super::SECRET;

const TOKEN: &str = "424242:surveys-bot";
const HOOK_SECRET: &str = "crm-surveys-secret-0123";

struct World {
    app: TestApp,
    sim: TelegramSim,
    ch: String,
    crm: Sink,
}

async fn world_on(db: TestDb) -> World {
    let app = TestApp::spawn_on(db, |_| {}).await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "surveys_test_bot");
    let ch = app.telegram_channel(&sim, TOKEN, "polling").await;
    let crm = Sink::start(HOOK_SECRET).await;
    let sub = app
        .post(
            "/api/v1/webhooks",
            json!({"url": crm.url, "events": ["survey.answered", "survey.completed"], "secret": HOOK_SECRET}),
        )
        .await;
    assert_eq!(sub.status, 201, "{sub:?}");
    World { app, sim, ch, crm }
}

impl World {
    /// A business contact reachable in Telegram as `tg`; returns the contact id.
    async fn person(&self, external_id: &str, name: &str, tg: i64, attrs: Value) -> String {
        let c =
            self.app.post("/api/v1/contacts", json!({"external_id": external_id, "name": name, "attrs": attrs})).await;
        assert_eq!(c.status, 201, "{c:?}");
        let id = c.body["id"].as_str().unwrap().to_string();
        self.sim.user(TOKEN, tg, name);
        let sender =
            okno_store::InboundSender { user_id: tg.to_string(), chat_id: tg.to_string(), ..Default::default() };
        self.app
            .running()
            .engine
            .store
            .attach_identity(&id.as_str().into(), &self.ch.as_str().into(), sender)
            .await
            .unwrap();
        id
    }

    fn messages(&self, tg: i64) -> Vec<Sent> {
        self.sim.sent_to(TOKEN, tg).into_iter().filter(|s| s.method == "sendMessage").collect()
    }

    /// Waits for the `n`-th (0-based) message to a person.
    async fn nth(&self, tg: i64, n: usize) -> Sent {
        eventually(15, || async { self.messages(tg).get(n).cloned() })
            .await
            .unwrap_or_else(|| panic!("{tg} gets message #{n}: {:?}", self.messages(tg)))
    }

    async fn survey(&self, body: Value) -> String {
        let r = self.app.post("/api/v1/surveys", body).await;
        assert_eq!(r.status, 201, "{r:?}");
        r.body["id"].as_str().unwrap().to_string()
    }
}

fn plain(s: &Sent) -> String {
    s.plain.clone().unwrap_or_default()
}

/// The callback data of the button labelled `label`.
fn button(s: &Sent, label: &str) -> String {
    let rows = s.reply_markup.as_ref().and_then(|m| m["inline_keyboard"].as_array().cloned()).unwrap_or_default();
    rows.iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
        .find(|b| b["text"] == label)
        .and_then(|b| b["callback_data"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no button {label:?} in {:?}", s.reply_markup))
}

fn nps_survey(name: &str) -> Value {
    json!({
        "name": name,
        "intro": "Здравствуйте! Три коротких вопроса о вашем заказе.",
        "questions": [
            {"id": "nps", "text": "Насколько вероятно, что вы порекомендуете нас друзьям? (0 — точно нет, 10 — точно да)", "kind": "scale", "min": 0, "max": 10},
            {"id": "on_time", "text": "Заказ привезли вовремя?", "kind": "choice", "options": [{"text": "Да", "value": 1}, {"text": "Нет", "value": 0}]},
            {"id": "comment", "text": "Что нам улучшить?", "kind": "text"}
        ],
        "thanks": "Спасибо за ответы!",
        "deadline": "1d",
        "reminder": "2h"
    })
}

async fn a_manual_survey_asks_in_turn_and_counts_exactly(db: TestDb) {
    let w = world_on(db).await;
    let people = [(8101, "Анна"), (8102, "Борис"), (8103, "Вера")];
    let mut ids = Vec::new();
    for (tg, name) in people {
        ids.push(w.person(&format!("client-{tg}"), name, tg, json!({})).await);
    }
    let survey = w.survey(nps_survey("NPS после заказа")).await;

    let start = w.app.post(&format!("/api/v1/surveys/{survey}/start"), json!({"contact_ids": ids})).await;
    assert_eq!(start.status, 200, "{start:?}");
    assert_eq!(start.body["started"], 3, "{start:?}");
    let again = w.app.post(&format!("/api/v1/surveys/{survey}/start"), json!({"contact_ids": ids})).await;
    assert_eq!((again.body["started"].as_u64(), again.body["already"].as_u64()), (Some(0), Some(3)), "{again:?}");

    // Анна: 10, a double press, "да" typed, a comment with a comma and quotes.
    let q1 = w.nth(8101, 0).await;
    assert!(plain(&q1).starts_with("Здравствуйте! Три коротких вопроса"), "{q1:?}");
    assert!(plain(&q1).contains("порекомендуете"));
    let anna = w.sim.user(TOKEN, 8101, "Анна");
    let ten = button(&q1, "10");
    // A person presses a button a second or more after it appears; by then okno has recorded the
    // question as sent, which is what lets it find the question again to mark the answer (a press
    // within milliseconds of the delivery, before that record, still counts but is not marked).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    anna.press(q1.message_id, &ten);
    let q2 = w.nth(8101, 1).await;
    assert_eq!(plain(&q2), "Заказ привезли вовремя?");
    anna.press(q1.message_id, &ten);
    // The question shows the answer chosen instead of its buttons.
    let marked = eventually(10, || async {
        w.sim
            .sent_to(TOKEN, 8101)
            .into_iter()
            .find(|s| s.method == "editMessageReplyMarkup" && s.message_id == q1.message_id)
    })
    .await
    .expect("the answered question is marked");
    assert_eq!(marked.reply_markup.unwrap()["inline_keyboard"][0][0]["text"], "✓ 10");
    anna.send_text("да");
    let q3 = w.nth(8101, 2).await;
    assert_eq!(plain(&q3), "Что нам улучшить?");
    assert!(q3.reply_markup.is_none(), "a text question has no buttons");
    anna.send_text("Всё \"отлично\", спасибо");
    assert_eq!(plain(&w.nth(8101, 3).await), "Спасибо за ответы!");

    // Борис: 6, "может быть" (a hint and the question again), then "Нет".
    let q1 = w.nth(8102, 0).await;
    let boris = w.sim.user(TOKEN, 8102, "Борис");
    boris.press(q1.message_id, &button(&q1, "6"));
    w.nth(8102, 1).await;
    boris.send_text("может быть");
    let hint = w.nth(8102, 2).await;
    assert!(plain(&hint).starts_with("Пожалуйста, выберите один из вариантов"), "{hint:?}");
    assert!(plain(&hint).ends_with("Заказ привезли вовремя?"));
    boris.press(hint.message_id, &button(&hint, "Нет"));
    w.nth(8102, 3).await;
    boris.send_text("Курьер опоздал\nна час");
    w.nth(8102, 4).await;

    // Вера: 9 typed as a number, "Да", a comment.
    w.nth(8103, 0).await;
    let vera = w.sim.user(TOKEN, 8103, "Вера");
    vera.send_text("9");
    let q2 = w.nth(8103, 1).await;
    vera.press(q2.message_id, &button(&q2, "Да"));
    w.nth(8103, 2).await;
    vera.send_text("Ничего");
    w.nth(8103, 3).await;

    let results = eventually(15, || async {
        let r = w.app.get(&format!("/api/v1/surveys/{survey}/results")).await;
        (r.body["runs"]["completed"] == 3).then_some(r.body)
    })
    .await
    .expect("all three complete");
    assert_eq!(results["runs"]["total"], 3);
    assert_eq!(results["runs"]["responded"], 3);
    let q = &results["questions"];
    assert_eq!(q[0]["id"], "nps");
    assert_eq!(q[0]["answers"], 3, "the double press counts once");
    assert_eq!(q[0]["nps"], json!({"score": 33.3, "promoters": 2, "passives": 0, "detractors": 1}));
    assert_eq!(q[0]["average"].as_f64(), Some(8.33));
    assert_eq!(q[0]["options"][10], json!({"text": "10", "value": 10, "count": 1}));
    assert_eq!(
        q[1]["options"],
        json!([{"text": "Да", "value": 1, "count": 2}, {"text": "Нет", "value": 0, "count": 1}])
    );
    assert_eq!(q[1]["average"].as_f64(), Some(0.67));
    assert_eq!((q[2]["answers"].as_u64(), q[2]["average"].is_null()), (Some(3), true));

    let csv = w.app.get(&format!("/api/v1/surveys/{survey}/results.csv")).await;
    assert_eq!(csv.status, 200);
    let text = csv.body.as_str().unwrap().strip_prefix('\u{feff}').expect("a BOM for spreadsheets").to_string();
    let rows: Vec<&str> = text.split("\r\n").filter(|r| !r.is_empty()).collect();
    assert_eq!(rows[0], "run_id,contact_id,name,external_id,question_id,question,answer,value,answered_at");
    assert_eq!(rows.len(), 10, "a header and nine answers: {text}");
    let comment = rows.iter().find(|r| r.contains("client-8101,comment")).unwrap();
    assert!(
        comment.contains(",Анна,client-8101,comment,Что нам улучшить?,\"Всё \"\"отлично\"\", спасибо\",,"),
        "{comment}"
    );
    assert!(text.contains("\"Курьер опоздал\nна час\""), "a line break stays inside quotes");
    let anna_nps = rows.iter().find(|r| r.contains("client-8101,nps")).unwrap();
    assert!(anna_nps.contains(",10,10,"), "{anna_nps}");

    // A period: everything is from today, nothing from before.
    let now = okno_domain::time::now_ms();
    let past = okno_domain::time::to_rfc3339(now - 86_400_000);
    let r = w.app.get(&format!("/api/v1/surveys/{survey}/results?to={past}")).await;
    assert_eq!(r.body["questions"][0]["answers"], 0, "{r:?}");
    let r = w.app.get(&format!("/api/v1/surveys/{survey}/results.csv?from={past}")).await;
    assert_eq!(r.body.as_str().unwrap().matches("\r\n").count(), 10);
    let r = w.app.get(&format!("/api/v1/surveys/{survey}/results?from=вчера")).await;
    assert_eq!((r.status, r.code()), (400, "invalid_period"));

    // The business system got each answer once, signed, and each completion.
    let got = w.crm.wait_accepted(12, 15).await;
    assert!(got.iter().all(|r| r.signature_ok));
    let answered: Vec<_> = got.iter().filter(|r| r.header("x-okno-event") == Some("survey.answered")).collect();
    assert_eq!(answered.len(), 9, "one delivery per answer");
    let first = answered.iter().find(|r| r.body["data"]["contact"]["external_id"] == "client-8101").unwrap();
    assert_eq!(first.body["data"]["survey"]["id"], survey.as_str());
    assert_eq!(first.body["data"]["question"]["id"], "nps");
    assert_eq!((first.body["data"]["answer"].as_str(), first.body["data"]["value"].as_i64()), (Some("10"), Some(10)));
    let completed: Vec<_> = got.iter().filter(|r| r.header("x-okno-event") == Some("survey.completed")).collect();
    assert_eq!(completed.len(), 3);
    let boris_done = completed.iter().find(|r| r.body["data"]["contact"]["name"] == "Борис").unwrap();
    assert_eq!(boris_done.body["data"]["answers"]["on_time"], json!({"answer": "Нет", "value": 0}));

    // Each answered press is not also a bot command or an unrelated message to anyone.
    assert_eq!(w.messages(8101).len(), 4, "{:?}", w.messages(8101));
}

#[tokio::test]
async fn a_manual_survey_asks_in_turn_and_counts_exactly_on_sqlite() {
    a_manual_survey_asks_in_turn_and_counts_exactly(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_manual_survey_asks_in_turn_and_counts_exactly_on_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    a_manual_survey_asks_in_turn_and_counts_exactly(db).await;
}

#[tokio::test]
async fn an_event_starts_the_survey_once_per_event() {
    let w = world_on(TestDb::sqlite()).await;
    w.person("client-8201", "Глеб", 8201, json!({})).await;
    let mut body = nps_survey("NPS по событию");
    body["trigger"] = json!({"kind": "event", "event": "order.completed", "recipient": {"external_id": "{{ data.client_id }}"}, "condition": "data.total > 0"});
    let survey = w.survey(body).await;

    let ev =
        json!({"type": "order.completed", "key": "order-1-done", "data": {"client_id": "client-8201", "total": 1500}});
    let first = w.app.post("/api/v1/events", ev.clone()).await;
    assert_eq!(first.status, 202, "{first:?}");
    let dup = w.app.post("/api/v1/events", ev).await;
    assert_eq!(dup.body["duplicate"], true);
    let q1 = w.nth(8201, 0).await;
    assert!(plain(&q1).contains("порекомендуете"));
    let id = first.body["id"].as_str().unwrap();
    let settled = eventually(10, || async {
        let e = w.app.get(&format!("/api/v1/events/{id}")).await;
        (e.body["status"] == "processed").then_some(e.body)
    })
    .await
    .expect("the event is processed (a survey counts as a rule)");
    assert_eq!(settled["unresolved"], json!([]));

    // Unknown person, and a condition that does not hold.
    let unknown = w
        .app
        .post(
            "/api/v1/events",
            json!({"type": "order.completed", "key": "order-2-done", "data": {"client_id": "nobody", "total": 10}}),
        )
        .await;
    let zero = w
        .app
        .post(
            "/api/v1/events",
            json!({"type": "order.completed", "key": "order-3-done", "data": {"client_id": "client-8201", "total": 0}}),
        )
        .await;
    let uid = unknown.body["id"].as_str().unwrap();
    let e = eventually(10, || async {
        let e = w.app.get(&format!("/api/v1/events/{uid}")).await;
        (e.body["status"] != "accepted").then_some(e.body)
    })
    .await
    .unwrap();
    let reason = e["unresolved"][0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("unknown external id `nobody`"), "{e}");
    let zid = zero.body["id"].as_str().unwrap();
    let e = eventually(10, || async {
        let e = w.app.get(&format!("/api/v1/events/{zid}")).await;
        (e.body["status"] != "accepted").then_some(e.body)
    })
    .await
    .unwrap();
    assert_eq!(e["status"], "no_rule", "{e}");

    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(w.messages(8201).len(), 1, "asked once: {:?}", w.messages(8201));
    let runs = w.app.get(&format!("/api/v1/surveys/{survey}/runs")).await;
    assert_eq!(runs.body["items"].as_array().unwrap().len(), 1, "{runs:?}");
    assert_eq!(runs.body["items"][0]["key"], format!("event:{id}"));
    assert_eq!(runs.body["items"][0]["status"], "active");
}

#[tokio::test]
async fn a_date_survey_asks_once_across_rescans_and_restarts() {
    let mut w = world_on(TestDb::sqlite()).await;
    // Days back from today (UTC) as `YYYY-MM-DD`.
    let day =
        |back: i64| okno_domain::time::to_rfc3339(okno_domain::time::now_ms() - back * 86_400_000)[..10].to_string();
    w.person("emp-1", "Дарья", 8301, json!({"hired_on": day(7)})).await;
    // 1C writes dates as ДД.ММ.ГГГГ.
    let (y, m, d) = {
        let s = day(8);
        (s[0..4].to_string(), s[5..7].to_string(), s[8..10].to_string())
    };
    w.person("emp-2", "Егор", 8302, json!({"hired_on": format!("{d}.{m}.{y}")})).await;
    w.person("emp-3", "Жанна", 8303, json!({"hired_on": day(3)})).await;
    w.person("emp-4", "Зоя", 8304, json!({"hired_on": day(40)})).await;
    w.person("emp-5", "Илья", 8305, json!({"dismissed_on": day(7)})).await;
    let mut body = json!({
        "name": "Адаптация: 7-й день",
        "questions": [{"id": "ok", "text": "Как прошла первая неделя?", "kind": "choice", "options": ["Хорошо", "Сложно"]}],
        "trigger": {"kind": "date", "field": "hired_on", "offset_days": 7, "hour": 0, "timezone": "UTC"}
    });
    let survey = w.survey(body.clone()).await;
    // Дарья (7 days ago) and Егор (8 days: caught up within the window) are asked.
    assert!(plain(&w.nth(8301, 0).await).contains("первая неделя"));
    assert!(plain(&w.nth(8302, 0).await).contains("первая неделя"));

    let rescan = w.app.post(&format!("/api/v1/surveys/{survey}/scan"), json!({})).await;
    assert_eq!((rescan.status, rescan.body["started"].as_u64()), (200, Some(0)), "{rescan:?}");
    w.app.restart().await;
    let rescan = w.app.post(&format!("/api/v1/surveys/{survey}/scan"), json!({})).await;
    assert_eq!(rescan.body["started"], 0, "{rescan:?}");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(w.messages(8301).len(), 1, "asked once");
    assert_eq!(w.messages(8302).len(), 1, "asked once");
    for (tg, why) in [(8303, "not yet"), (8304, "long ago"), (8305, "another field")] {
        assert!(w.messages(tg).is_empty(), "{tg}: {why}");
    }
    let runs = w.app.get(&format!("/api/v1/surveys/{survey}/runs")).await;
    let keys: Vec<String> =
        runs.body["items"].as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&format!("date:hired_on:{}", day(7))), "{keys:?}");

    // A different time zone or hour is checked; a manual survey is not scanned.
    body["name"] = json!("другое");
    body["trigger"]["timezone"] = json!("Mars/Olympus");
    let bad = w.app.post("/api/v1/surveys", body).await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_survey"), "{bad:?}");
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("Mars/Olympus"));
    let manual = w.survey(nps_survey("ручной")).await;
    let scan = w.app.post(&format!("/api/v1/surveys/{manual}/scan"), json!({})).await;
    assert_eq!((scan.status, scan.code()), (422, "not_date_triggered"));
}

#[tokio::test]
async fn an_unanswered_survey_is_reminded_then_expires_on_the_webhook_channel() {
    let app = TestApp::spawn().await;
    let site = Sink::start(SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", site.url), SECRET).await;
    let hello = app.inbound(&ch, SECRET, &super::message("m-1", "u-77", "Здравствуйте")).await;
    assert_eq!(hello.status, 200);
    let m = app.get(&format!("/api/v1/messages/{}", hello.body["id"].as_str().unwrap())).await;
    let contact = m.body["contact_id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/api/v1/surveys",
            json!({
                "name": "Быстрый опрос",
                "questions": [
                    {"text": "Оцените поддержку", "kind": "scale", "min": 1, "max": 5},
                    {"text": "Комментарий?", "kind": "text"}
                ],
                "deadline": "4s", "reminder": "2s", "reminder_text": "Напоминаем: ответьте, пожалуйста."
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let survey = r.body["id"].as_str().unwrap().to_string();
    let s = app.post(&format!("/api/v1/surveys/{survey}/start"), json!({"contact_ids": [contact]})).await;
    assert_eq!(s.body["started"], 1, "{s:?}");

    let sent = |n: usize| {
        let site = site.clone();
        async move {
            eventually(15, || async {
                let got: Vec<Value> = site.accepted().into_iter().map(|r| r.body).collect();
                (got.len() >= n).then_some(got)
            })
            .await
            .unwrap_or_else(|| panic!("the site gets {n} messages: {:?}", site.accepted()))
        }
    };
    let q1 = sent(1).await;
    assert_eq!(q1[0]["text"], "Оцените поддержку");
    assert_eq!(q1[0]["buttons"][0].as_array().unwrap().len(), 5);
    let five = q1[0]["buttons"][0][4]["data"].as_str().unwrap().to_string();
    let reminder = sent(2).await;
    assert_eq!(reminder[1]["text"], "Напоминаем: ответьте, пожалуйста.\n\nОцените поддержку");
    assert_eq!(reminder[1]["buttons"], q1[0]["buttons"], "the same buttons again");

    let expired = eventually(15, || async {
        let r = app.get(&format!("/api/v1/surveys/{survey}/runs?status=expired")).await;
        (r.body["items"].as_array().map(Vec::len) == Some(1)).then_some(r.body)
    })
    .await
    .expect("the run expires at its deadline");
    assert!(expired["items"][0]["reminded_at"].is_string());

    // A late press is refused politely and stored nowhere.
    let press = json!({"message_id": "m-2", "user": {"id": "u-77", "name": "User u-77"}, "button": {"data": five, "reply_to": q1[0]["id"]}});
    assert_eq!(app.inbound(&ch, SECRET, &press).await.status, 200);
    let late = sent(3).await;
    assert_eq!(late[2]["text"], "Время для ответов на этот опрос истекло. Спасибо!");
    let results = app.get(&format!("/api/v1/surveys/{survey}/results")).await;
    assert_eq!(results.body["runs"]["expired"], 1);
    assert_eq!(results.body["questions"][0]["answers"], 0);
    assert_eq!(results.body["runs"]["responded"], 0);
}

#[tokio::test]
async fn bad_survey_input_gets_clear_errors() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/surveys/nope",
        "/api/v1/surveys/nope/results",
        "/api/v1/surveys/nope/results.csv",
        "/api/v1/surveys/nope/runs",
    ] {
        let r = app.get(path).await;
        assert_eq!((r.status, r.code()), (404, "survey_not_found"), "{path}: {r:?}");
    }
    let r = app.post("/api/v1/surveys/nope/start", json!({"contact_ids": ["x"]})).await;
    assert_eq!((r.status, r.code()), (404, "survey_not_found"));

    let q = json!([{"text": "Да?", "kind": "choice", "options": ["Да", "Нет"]}]);
    let cases = [
        (json!({"name": "x", "questions": []}), "at least one question"),
        (json!({"name": "x", "questions": [{"text": "Оценка", "kind": "scale", "min": 5, "max": 1}]}), "`min` < `max`"),
        (json!({"name": "x", "questions": q, "deadline": "завтра"}), "`deadline`"),
        (
            json!({"name": "x", "questions": q, "trigger": {"kind": "event", "event": "order.completed", "recipient": {"external_id": "{{ data.id"}}}),
            "template",
        ),
        (
            json!({"name": "x", "questions": q, "trigger": {"kind": "event", "event": "e", "recipient": {"external_id": "1", "phone": "2"}}}),
            "exactly one",
        ),
        (json!({"name": "x", "questions": q, "trigger": {"kind": "date", "field": "hired on"}}), "trigger.field"),
        (json!({"name": "x", "questions": q, "colour": "red"}), "unknown field `colour`"),
    ];
    for (body, words) in cases {
        let r = app.post("/api/v1/surveys", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{body}: {message}");
    }
    let bad_json = app.call("POST", "/api/v1/surveys", None, Some(&app.token)).await;
    assert_eq!(bad_json.status, 400, "{bad_json:?}");
    let r = app.post("/api/v1/surveys", json!({"name": "x", "questions": q, "channel_id": "nope"})).await;
    assert_eq!((r.status, r.code()), (404, "channel_not_found"));

    let ok = app.post("/api/v1/surveys", json!({"name": "Опрос", "questions": q})).await;
    assert_eq!(ok.status, 201, "{ok:?}");
    let id = ok.body["id"].as_str().unwrap();
    assert_eq!(ok.body["questions"][0]["id"], "q1", "ids are filled in");
    assert_eq!(ok.body["trigger"], json!({"kind": "manual"}));
    let twin = app.post("/api/v1/surveys", json!({"name": "Опрос", "questions": q})).await;
    assert_eq!((twin.status, twin.code()), (409, "survey_exists"));
    let nobody = app.post(&format!("/api/v1/surveys/{id}/start"), json!({})).await;
    assert_eq!((nobody.status, nobody.code()), (400, "invalid_start"));
    let strangers = app
        .post(&format!("/api/v1/surveys/{id}/start"), json!({"contact_ids": ["ghost"], "external_ids": ["1c-404"]}))
        .await;
    assert_eq!((strangers.status, strangers.body["unknown"].as_u64()), (200, Some(2)), "{strangers:?}");
    let status = app.get(&format!("/api/v1/surveys/{id}/runs?status=bogus")).await;
    assert_eq!((status.status, status.code()), (400, "invalid_status"));

    // Operators may start and read, not define; a deleted survey starts nothing.
    let operator = app.token_for(okno_domain::model::Role::Operator).await;
    let r = app.call("POST", "/api/v1/surveys", Some(json!({"name": "y", "questions": q})), Some(&operator)).await;
    assert_eq!(r.status, 403);
    let r = app.call("GET", &format!("/api/v1/surveys/{id}/results"), None, Some(&operator)).await;
    assert_eq!(r.status, 200);
    let del = app.delete(&format!("/api/v1/surveys/{id}")).await;
    assert_eq!((del.status, del.body["active"].as_bool()), (200, Some(false)));
    let r = app.post(&format!("/api/v1/surveys/{id}/start"), json!({"contact_ids": ["x"]})).await;
    assert_eq!((r.status, r.code()), (409, "survey_inactive"));
    let again = app.post("/api/v1/surveys", json!({"name": "Опрос", "questions": q})).await;
    assert_eq!(again.status, 201, "the name is free once the survey is deleted");
    let list = app.get("/api/v1/surveys").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(list.body["items"][0]["active"], true);
}

#[tokio::test]
async fn the_shipped_examples_are_valid_surveys_and_the_nps_one_runs_on_an_event() {
    let w = world_on(TestDb::sqlite()).await;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/surveys");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|f| f.extension().is_some_and(|e| e == "json"));
    files.sort();
    assert_eq!(files.len(), 4);
    let mut nps = String::new();
    for f in &files {
        let body: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let r = w.app.post("/api/v1/surveys", body).await;
        assert_eq!(r.status, 201, "{f:?}: {r:?}");
        if r.body["trigger"]["kind"] == "event" {
            nps = r.body["id"].as_str().unwrap().to_string();
        }
    }
    w.person("client-8401", "Ким", 8401, json!({})).await;
    let ev = json!({"type": "order.completed", "key": "zk-8401", "data": {"client_id": "client-8401"}});
    assert_eq!(w.app.post("/api/v1/events", ev).await.status, 202);
    let q1 = w.nth(8401, 0).await;
    assert!(plain(&q1).starts_with("Здравствуйте! Ваш заказ выполнен."), "{q1:?}");
    w.sim.user(TOKEN, 8401, "Ким").press(q1.message_id, &button(&q1, "9"));
    let answered = w.crm.wait_accepted(1, 15).await;
    assert_eq!(answered[0].body["data"]["survey"]["id"], nps.as_str());
    assert_eq!(answered[0].body["data"]["value"], 9);
}

const MENU_BOT: &str = "name: Меню\naccess: anyone\ntexts:\n  unknown: Не понял. Выберите пункт меню.\nmenus:\n  main:\n    text: Главное меню бота\n    items:\n      - text: О нас\n        do: {reply: {text: Мы магазин.}}\n";

#[tokio::test]
async fn answers_go_to_the_survey_and_not_to_the_channels_bot() {
    let w = world_on(TestDb::sqlite()).await;
    let r = w
        .app
        .http
        .put(format!("{}/api/v1/bots/{}", w.app.url, w.ch))
        .bearer_auth(&w.app.token)
        .header("content-type", "application/yaml")
        .body(MENU_BOT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let id = w.person("client-8501", "Лев", 8501, json!({})).await;
    let survey = w
        .survey(json!({"name": "Два вопроса", "questions": [
            {"id": "mood", "text": "Как настроение?", "kind": "choice", "options": ["Отлично", "Так себе"]},
            {"id": "why", "text": "Почему?", "kind": "text"}
        ]}))
        .await;
    w.app.post(&format!("/api/v1/surveys/{survey}/start"), json!({"contact_ids": [id]})).await;
    let lev = w.sim.user(TOKEN, 8501, "Лев");
    w.nth(8501, 0).await;
    lev.send_text("отлично");
    assert_eq!(plain(&w.nth(8501, 1).await), "Почему?");
    lev.send_text("Выспался");
    assert_eq!(plain(&w.nth(8501, 2).await), "Спасибо! Ваши ответы записаны.");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let texts: Vec<String> = w.messages(8501).iter().map(plain).collect();
    assert_eq!(texts.len(), 3, "the bot said nothing while the survey ran: {texts:?}");

    // The survey is over: the bot answers again.
    lev.send_text("привет");
    let bot = w.nth(8501, 3).await;
    assert!(plain(&bot).contains("Не понял") || plain(&bot).contains("Главное меню"), "{bot:?}");
    let results = w.app.get(&format!("/api/v1/surveys/{survey}/results")).await;
    assert_eq!(results.body["questions"][0]["options"][0]["count"], 1);
    assert_eq!(results.body["questions"][1]["answers"], 1);
}

#[tokio::test]
async fn a_started_survey_survives_a_restart_and_its_deadline_still_comes() {
    let mut app = TestApp::spawn().await;
    let site = Sink::start(SECRET).await;
    // The site is down at first: the first question waits in the outbox.
    site.answer(503);
    let ch = app.webhook_channel(&format!("{}/out", site.url), SECRET).await;
    let hello = app.inbound(&ch, SECRET, &super::message("m-1", "u-88", "Добрый день")).await;
    let m = app.get(&format!("/api/v1/messages/{}", hello.body["id"].as_str().unwrap())).await;
    let contact = m.body["contact_id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/api/v1/surveys",
            json!({"name": "Переживёт перезапуск", "questions": [{"text": "Всё хорошо?", "kind": "choice", "options": ["Да", "Нет"]}], "deadline": "3s"}),
        )
        .await;
    let survey = r.body["id"].as_str().unwrap().to_string();
    let s = app.post(&format!("/api/v1/surveys/{survey}/start"), json!({"contact_ids": [contact]})).await;
    assert_eq!(s.body["started"], 1, "{s:?}");
    app.stop().await;
    site.answer(200);
    app.restart().await;
    let delivered = eventually(15, || async {
        let got: Vec<Value> =
            site.accepted().into_iter().map(|r| r.body).filter(|b| b["text"] == "Всё хорошо?").collect();
        (!got.is_empty()).then_some(got)
    })
    .await
    .expect("the first question goes out after the restart");
    assert_eq!(delivered.len(), 1);
    let expired = eventually(15, || async {
        let r = app.get(&format!("/api/v1/surveys/{survey}/results")).await;
        (r.body["runs"]["expired"] == 1).then_some(r.body)
    })
    .await;
    assert!(expired.is_some(), "the deadline job survived the restart");
}
