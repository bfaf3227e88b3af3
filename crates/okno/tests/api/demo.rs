//! `okno demo` in-process on a free port: every seed scenario played through the phone page's
//! own endpoints and the 1C console's, and checked at the far end (what the simulated 1C
//! received, what okno recorded, who got the task), plus the refusals.

use std::path::PathBuf;
use std::time::Duration;

use okno_demo::cast::{self, PEOPLE};
use okno_demo::{Demo, Options};
use okno_server::Settings;
use okno_testkit::eventually;
use serde_json::{json, Value};

/// A running demo and a plain HTTP client for its pages.
pub(super) struct World {
    demo: Option<Demo>,
    url: String,
    http: reqwest::Client,
    data_dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The settings of a test: a free port, fast retries and short long polls.
fn settings() -> Settings {
    let mut s = Settings { listen: "127.0.0.1:0".into(), ..Default::default() };
    s.delivery.retry_base_ms = 20;
    s.delivery.retry_max_ms = 200;
    s.delivery.poll_interval_ms = 50;
    s.delivery.lease_secs = 5;
    s.delivery.http_timeout_secs = 5;
    s.delivery.shutdown_grace_secs = 2;
    s.polling.poll_timeout_secs = 1;
    s.polling.conflict_wait_secs = 1;
    s.templates.worker_program = Some(env!("CARGO_BIN_EXE_okno").into());
    s
}

pub(super) async fn start() -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let demo = Demo::start_on(&settings(), Options::default(), listener).await.expect("the demo starts");
    World { url: demo.url.clone(), data_dir: demo.data_dir.clone(), demo: Some(demo), http: reqwest::Client::new() }
}

/// The button labels of a message, row by row flattened.
fn labels(m: &Value) -> Vec<String> {
    m["reply_markup"]["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .map(|b| b["text"].as_str().unwrap_or("").to_string())
        .collect()
}

fn text(m: &Value) -> &str {
    m["text"].as_str().or_else(|| m["caption"].as_str()).unwrap_or("")
}

impl World {
    pub(super) fn demo(&self) -> &Demo {
        self.demo.as_ref().unwrap()
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.url)).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }

    /// A POST as the demo's pages make it.
    pub(super) async fn act(&self, path: &str, body: Value) -> (u16, Value) {
        let r =
            self.http.post(format!("{}{path}", self.url)).header("x-okno-demo", "1").json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// okno's API with the demo's token.
    pub(super) async fn api(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.demo().api_token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub(super) async fn chat(&self, person: &str, chat: &str) -> Value {
        let (status, body) = self.get(&format!("/demo/api/phone/{person}/{chat}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The newest message id of a chat (0 when empty).
    pub(super) async fn last_id(&self, person: &str, chat: &str) -> i64 {
        let c = self.chat(person, chat).await;
        c["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["message_id"].as_i64()).unwrap_or(0)
    }

    /// Waits for a message after `after` in the person's chat that satisfies `pred`.
    async fn wait_for(&self, person: &str, chat: &str, after: i64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let found = eventually(20, || async {
            let c = self.chat(person, chat).await;
            c["messages"].as_array()?.iter().find(|m| m["message_id"].as_i64().unwrap_or(0) > after && pred(m)).cloned()
        })
        .await;
        match found {
            Some(m) => m,
            None => {
                let c = self.chat(person, chat).await;
                let all: Vec<String> = c["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| format!("{} {:?} {:?}", m["message_id"], text(m), labels(m)))
                    .collect();
                panic!("{person}/{chat}: expected {what} after message {after}; the chat:\n{}", all.join("\n"))
            }
        }
    }

    /// Waits for a message containing `needle`.
    pub(super) async fn wait_text(&self, person: &str, chat: &str, after: i64, needle: &str) -> Value {
        self.wait_for(person, chat, after, &format!("{needle:?}"), |m| text(m).contains(needle)).await
    }

    pub(super) async fn say(&self, person: &str, chat: &str, words: &str) -> i64 {
        let (status, body) = self.act(&format!("/demo/api/phone/{person}/{chat}/send"), json!({"text": words})).await;
        assert_eq!(status, 200, "{person} says {words:?}: {body}");
        body["message_id"].as_i64().unwrap()
    }

    /// Presses the button whose label starts with `label` on a message.
    pub(super) async fn press(&self, person: &str, chat: &str, m: &Value, label: &str) -> String {
        let button = m["reply_markup"]["inline_keyboard"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .find(|b| b["text"].as_str().unwrap_or("").starts_with(label))
            .unwrap_or_else(|| panic!("no button {label:?} on {m}"));
        let body = json!({"message_id": m["message_id"], "data": button["callback_data"]});
        let (status, answer) = self.act(&format!("/demo/api/phone/{person}/{chat}/press"), body).await;
        assert_eq!(status, 200, "{person} presses {label:?}: {answer}");
        answer["id"].as_str().unwrap().to_string()
    }

    /// The bot's answer to one of the person's presses, once given.
    async fn press_answer(&self, person: &str, chat: &str, press: &str) -> Value {
        eventually(20, || async {
            let c = self.chat(person, chat).await;
            c["presses"]
                .as_array()?
                .iter()
                .find(|p| p["id"] == press && !p["answer"].is_null())
                .map(|p| p["answer"].clone())
        })
        .await
        .unwrap_or_else(|| panic!("{person}'s press {press} is answered"))
    }

    /// Posts a sample event from the console; returns okno's answer.
    pub(super) async fn post_event(&self, file: &str) -> Value {
        let (status, body) = self.act("/demo/api/console/event", json!({"file": file})).await;
        assert_eq!(status, 200, "{file}: {body}");
        body
    }

    /// Waits until okno has settled an event; returns it.
    async fn settled(&self, id: &str) -> Value {
        eventually(20, || async {
            let e = self.api(&format!("/events/{id}")).await;
            let done = e["status"] != "accepted"
                && e["deliveries"].as_array().is_some_and(|d| d.iter().all(|d| d["status"] != "queued"));
            done.then_some(e)
        })
        .await
        .unwrap_or_else(|| panic!("the event {id} settles"))
    }
}

#[tokio::test]
async fn the_people_are_linked_and_every_sample_event_reaches_the_people_it_names() {
    let w = start().await;
    // Each person sent their link code to each of their bots, and okno linked them.
    for p in PEOPLE.iter().filter(|p| p.external_id.is_some()) {
        let id = &w.demo().world().contacts[p.key];
        let c = w.api(&format!("/contacts/{id}")).await;
        assert_eq!(c["identities"].as_array().unwrap().len(), p.linked.len(), "{}: {c}", p.name);
        for bot in p.linked {
            let chat = w.chat(p.key, bot).await;
            let first = text(&chat["messages"][0]);
            assert!(first.starts_with("/start "), "{} started @{bot} with the code: {first}", p.name);
            w.wait_text(p.key, bot, 0, &format!("Готово! Ваш аккаунт связан: {}.", p.name)).await;
        }
    }

    // order.stage_changed needs someone 1C remembers: the console says so until a customer asks.
    let (status, refused) = w.act("/demo/api/console/event", json!({"file": "order_stage_changed.json"})).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("demo_no_subscriber")), "{refused}");
    let (status, _) = w.act("/demo/api/phone/belova/shop/start", json!({})).await;
    assert_eq!(status, 200);
    let menu = w.wait_text("belova", "shop", 0, "Здесь можно узнать, на каком этапе ваш заказ").await;
    w.say("belova", "shop", "100421").await;
    w.wait_text("belova", "shop", menu["message_id"].as_i64().unwrap(), "Заказ № 100421: В производстве.").await;
    let asked = w.last_id("belova", "shop").await;

    let mut ids = Vec::new();
    for (file, _) in cast::EVENTS {
        let posted = w.post_event(file).await;
        assert_eq!(posted["status"], 202, "{file}: {posted}");
        ids.push((file, posted["answer"]["id"].as_str().unwrap().to_string()));
    }
    for (file, id) in &ids {
        let mut ev = w.settled(id).await;
        if ev["deliveries"].as_array().is_some_and(|d| d.is_empty()) {
            // A reminder a day before a visit: the console set the visit a day and seconds ahead.
            ev = eventually(30, || async {
                let e = w.api(&format!("/events/{id}")).await;
                e["deliveries"]
                    .as_array()
                    .is_some_and(|d| !d.is_empty() && d.iter().all(|d| d["status"] != "queued"))
                    .then_some(e)
            })
            .await
            .unwrap_or_else(|| panic!("{file}: the delayed rule ran"));
        }
        assert_eq!(ev["status"], "processed", "{file}: {ev}");
        let deliveries = ev["deliveries"].as_array().unwrap();
        assert!(!deliveries.is_empty() && deliveries.iter().all(|d| d["status"] == "sent"), "{file}: {ev}");
        assert!(ev["unresolved"].as_array().unwrap().is_empty(), "{file} names only demo people: {ev}");
    }
    // Each landed on the phone of the person it names.
    w.wait_text("petrov", "staff", 0, "💰 Поступила оплата от ООО «Ромашка»").await;
    w.wait_text("ivanova", "staff", 0, "Заявка на расход ЗР-77").await;
    w.wait_text("romashka", "shop", 0, "🚚 Заказ ЗК-4568 отгружен").await;
    w.wait_text("smirnov", "staff", 0, "🔥 Критично для бизнеса").await;
    w.wait_text("kozlov", "staff", 0, "🔥 Критично для бизнеса").await;
    w.wait_text("volkova", "staff", 0, "📦 Кабель ВВГнг").await;
    w.wait_text("romashka", "shop", 0, "Оцените, пожалуйста, работу менеджера Петров").await;
    w.wait_text("belova", "shop", asked, "Заказ № 100421: новый этап — «Готов к выдаче».").await;
    w.wait_text("romashka", "shop", 0, "Напоминаем: завтра").await;
    w.wait_text("morozova", "staff", 0, "🏖 Заявление на отпуск: Анна Иванова").await;

    // The same key again is a duplicate: nothing is sent twice.
    let again = w.post_event("01_payment_received.json").await;
    assert_eq!((again["status"].as_u64(), again["answer"]["duplicate"].as_bool()), (Some(200), Some(true)));
    let (_, console) = w.get("/demo/api/console").await;
    assert_eq!(console["posted"].as_array().unwrap().len(), cast::EVENTS.len() + 1, "the console lists its posts");
}

#[tokio::test]
async fn a_notification_answered_with_a_button_comes_back_to_okno_and_to_1c() {
    let w = start().await;
    let before = w.last_id("petrov", "staff").await;
    let posted = w.post_event("02_order_blocked.json").await;
    assert_eq!(posted["status"], 202, "{posted}");
    let blocked = w.wait_text("petrov", "staff", before, "⛔ Заказ ЗК-4567 (ИП Сидоров) заблокирован.").await;
    assert_eq!(labels(&blocked), ["✅ Согласую отгрузку", "📞 Позвоню клиенту"]);
    let press = w.press("petrov", "staff", &blocked, "✅ Согласую отгрузку").await;
    w.press_answer("petrov", "staff", &press).await;

    // 1C receives the answer as a signed webhook, once.
    let hook = eventually(20, || async {
        w.demo()
            .onec()
            .webhooks()
            .into_iter()
            .find(|h| h.event == "button.pressed" && h.body["data"]["answer"] == "approve")
    })
    .await
    .expect("1C receives the manager's answer");
    assert_eq!(hook.body["data"]["event_id"], posted["answer"]["id"], "{}", hook.body);
    // okno counts it in the answers report.
    let report = eventually(20, || async {
        let r = w.api("/reports/answers?event=order.blocked").await;
        (r["items"][0]["answers"]["approve"] == 1).then_some(r)
    })
    .await;
    assert!(report.is_some(), "okno recorded the answer");
    // The console shows what 1C received.
    let (_, console) = w.get("/demo/api/console").await;
    assert!(
        console["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["event"] == "button.pressed" && h["data"]["answer"] == "approve"),
        "{console}"
    );
    let press = console["webhooks"].as_array().unwrap().iter().find(|h| h["data"]["answer"] == "approve").unwrap();
    assert_eq!(
        press["press"],
        json!({"who": "Пётр Петров", "label": "✅ Согласую отгрузку", "kind": "answer", "answer": "approve"}),
        "the console says what was pressed, not the button's data"
    );
}

#[tokio::test]
async fn the_menu_bot_finds_a_product_in_1c_and_the_vacation_form_reaches_1c_and_hr() {
    let w = start().await;
    // The employee bot's product lookup.
    let menu = w.wait_text("ivanova", "staff", 0, "Главное меню. Выберите раздел.").await;
    w.press("ivanova", "staff", &menu, "🔎 Информация о товаре").await;
    let ask =
        w.wait_text("ivanova", "staff", menu["message_id"].as_i64().unwrap(), "Введите часть названия товара").await;
    w.say("ivanova", "staff", "дрель").await;
    let found = w.wait_text("ivanova", "staff", ask["message_id"].as_i64().unwrap(), "Найдено товаров: 7").await;
    w.press("ivanova", "staff", &found, "Дрель-шуруповёрт Makita DF333").await;
    w.wait_text("ivanova", "staff", found["message_id"].as_i64().unwrap(), "Цена: 8").await;
    let searches = w.demo().onec().requests_to("GET", "/products");
    assert_eq!(searches.len(), 1);
    assert_eq!(searches[0].q("q"), "дрель");
    assert_eq!(w.demo().onec().requests_to("GET", "/products/DR-002").len(), 1, "the card came from 1C");
    // 1C was told of her press; the console says who pressed which button of which menu.
    let press = eventually(20, || async {
        let (_, console) = w.get("/demo/api/console").await;
        console["webhooks"]
            .as_array()?
            .iter()
            .find(|h| h["press"]["label"] == "🔎 Информация о товаре")
            .map(|h| h["press"].clone())
    })
    .await
    .expect("the console shows the menu press");
    assert_eq!(
        press,
        json!({"who": "Анна Иванова", "label": "🔎 Информация о товаре", "kind": "bot_menu", "answer": null})
    );

    // A question to the director, answered with Reply on his phone.
    let before = w.last_id("ivanova", "staff").await;
    w.say("ivanova", "staff", "/menu").await;
    let menu = w.wait_text("ivanova", "staff", before, "Главное меню. Выберите раздел.").await;
    w.press("ivanova", "staff", &menu, "✉️ Обратная связь").await;
    let whom = w.wait_text("ivanova", "staff", menu["message_id"].as_i64().unwrap(), "Кому задать вопрос?").await;
    w.press("ivanova", "staff", &whom, "❓ Вопрос директору").await;
    let prompt = w.wait_text("ivanova", "staff", whom["message_id"].as_i64().unwrap(), "Напишите вопрос").await;
    w.say("ivanova", "staff", "Можно ли взять выходной в пятницу?").await;
    w.wait_text("ivanova", "staff", prompt["message_id"].as_i64().unwrap(), "Вопрос передан директору.").await;
    let question = w.wait_text("orlov", "staff", 0, "Можно ли взять выходной в пятницу?").await;
    let (status, body) = w
        .act(
            "/demo/api/phone/orlov/staff/send",
            json!({"text": "Да, договорились.", "reply_to": question["message_id"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let reply = w.chat("orlov", "staff").await;
    let sent =
        reply["messages"].as_array().unwrap().iter().find(|m| m["message_id"] == body["message_id"]).unwrap().clone();
    assert_eq!(sent["reply_to_message"]["message_id"], question["message_id"], "a Telegram reply");
    w.wait_text("ivanova", "staff", prompt["message_id"].as_i64().unwrap(), "Ответ директора:\nДа, договорились.")
        .await;

    // The vacation request form of the personal-account bot.
    let main = w.wait_text("ivanova", "hr", 0, "Анна Иванова, что нужно оформить?").await;
    w.press("ivanova", "hr", &main, "🏖 Заявление на отпуск").await;
    let mut last = w.wait_text("ivanova", "hr", main["message_id"].as_i64().unwrap(), "С какого числа отпуск?").await;
    let start = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(30))
        .unwrap();
    w.say("ivanova", "hr", &start.strftime("%d.%m.%Y").to_string()).await;
    last = w.wait_text("ivanova", "hr", last["message_id"].as_i64().unwrap(), "Сколько дней?").await;
    w.say("ivanova", "hr", "14").await;
    last = w.wait_text("ivanova", "hr", last["message_id"].as_i64().unwrap(), "Вид отпуска").await;
    w.press("ivanova", "hr", &last, "Ежегодный").await;
    last = w.wait_text("ivanova", "hr", last["message_id"].as_i64().unwrap(), "Телефон для связи").await;
    w.say("ivanova", "hr", "+7 912 600-10-04").await;
    last = w.wait_text("ivanova", "hr", last["message_id"].as_i64().unwrap(), "Приложите скан").await;
    // The scan goes as a file from the phone.
    let r = w
        .http
        .post(format!(
            "{}/demo/api/phone/ivanova/hr/file?name=%D0%B7%D0%B0%D1%8F%D0%B2%D0%BB%D0%B5%D0%BD%D0%B8%D0%B5.pdf",
            w.url
        ))
        .header("x-okno-demo", "1")
        .header("content-type", "application/pdf")
        .body(b"%PDF-1.4 zayavlenie".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let confirm = w.wait_text("ivanova", "hr", last["message_id"].as_i64().unwrap(), "Отправить?").await;
    w.press("ivanova", "hr", &confirm, "Отправить").await;
    w.wait_text("ivanova", "hr", confirm["message_id"].as_i64().unwrap(), "Заявление отправлено, номер ОТП-0001.")
        .await;

    let forms = w.demo().onec().requests_to("POST", "/vacations");
    assert_eq!(forms.len(), 1, "1C received the form once");
    let b = &forms[0].body;
    assert_eq!(
        (b["employee"].as_str(), b["start"].as_str()),
        (Some("1c-employee-ivanova"), Some(start.to_string().as_str()))
    );
    assert_eq!(b["kind"], "Ежегодный");
    assert!(!b["scan"].as_str().unwrap_or("").is_empty(), "the scan's attachment: {b}");
    // The rule of examples/rules tells HR.
    w.wait_text(
        "morozova",
        "staff",
        0,
        &format!("🏖 Заявление на отпуск: Анна Иванова, с {}", start.strftime("%d.%m.%Y")),
    )
    .await;
}

#[tokio::test]
async fn a_task_in_the_couriers_group_is_taken_by_exactly_one_and_1c_is_told() {
    let w = start().await;
    let (status, posted) = w.act("/demo/api/console/task", json!({})).await;
    assert_eq!((status, posted["status"].as_u64()), (200, Some(201)), "{posted}");
    let task_id = posted["answer"]["id"].as_str().unwrap().to_string();
    let offer = w.wait_text("sokolov", "couriers", 0, "Доставка: ул. Ленина, 5").await;
    assert!(labels(&offer).iter().any(|l| l.contains("Взять")), "{offer}");
    let popov_sees = w.chat("popov", "couriers").await;
    assert!(
        popov_sees["messages"].as_array().unwrap().iter().any(|m| m["message_id"] == offer["message_id"]),
        "one group, both see it"
    );

    let first = w.press("sokolov", "couriers", &offer, "Взять").await;
    let second = w.press("popov", "couriers", &offer, "Взять").await;
    let a = w.press_answer("sokolov", "couriers", &first).await;
    let b = w.press_answer("popov", "couriers", &second).await;
    let won: Vec<&str> = [("sokolov", &a), ("popov", &b)]
        .iter()
        .filter(|(_, ans)| ans["text"].as_str().unwrap_or("").contains("ваша"))
        .map(|(who, _)| *who)
        .collect();
    assert_eq!(won.len(), 1, "exactly one wins: {a} / {b}");
    let (winner, loser_answer) = if won[0] == "sokolov" { ("sokolov", &b) } else { ("popov", &a) };
    assert!(loser_answer["text"].as_str().unwrap().contains("уже взял"), "{loser_answer}");
    let winner_name = cast::person(winner).unwrap().name;

    let task = eventually(20, || async {
        let t = w.api(&format!("/tasks/{task_id}")).await;
        (t["status"] == "claimed").then_some(t)
    })
    .await
    .expect("the task is claimed");
    assert_eq!(task["claimed_by"]["name"], winner_name);
    w.wait_text(winner, "couriers", 0, &format!("Задачу взял(а): {winner_name}")).await;
    let hooks = eventually(20, || async {
        let h: Vec<_> = w.demo().onec().webhooks().into_iter().filter(|h| h.event == "task.claimed").collect();
        (!h.is_empty()).then_some(h)
    })
    .await
    .expect("1C is told who took it");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.demo().onec().webhooks().iter().filter(|h| h.event == "task.claimed").count(), 1, "once");
    assert_eq!(hooks[0].body["data"]["executor"]["name"], winner_name);
}

#[tokio::test]
async fn a_broadcast_and_a_survey_arrive_on_the_phones_and_the_answers_reach_1c() {
    let w = start().await;
    let before: Vec<i64> = vec![w.last_id("sokolov", "tasks").await, w.last_id("popov", "tasks").await];
    let (status, made) =
        w.act("/demo/api/console/broadcast", json!({"group": "Курьеры", "text": "Завтра склад открыт с 7:00."})).await;
    assert_eq!((status, made["status"].as_u64()), (200, Some(201)), "{made}");
    for (who, after) in ["sokolov", "popov"].iter().zip(before) {
        w.wait_text(who, "tasks", after, "Завтра склад открыт с 7:00.").await;
    }

    // The 7th-day survey, started by hand for Анна Иванова, arrives on the bot she used last.
    let world = w.demo().world().clone();
    let (_, survey_id) = world.surveys.iter().find(|(name, _)| name == "Адаптация: 7-й день").unwrap();
    let (status, started) =
        w.act("/demo/api/console/survey", json!({"survey_id": survey_id, "person": "ivanova"})).await;
    assert_eq!((status, started["answer"]["started"].as_u64()), (200, Some(1)), "{started}");
    // It goes where she wrote last — the staff bot, linked last — but a survey may go to any
    // of her bots, so the phone is searched as a person would look.
    let (bot, q1) = eventually(20, || async {
        for bot in ["staff", "hr", "help"] {
            let c = w.chat("ivanova", bot).await;
            if let Some(m) = c["messages"].as_array()?.iter().find(|m| text(m).contains("Как прошла первая неделя?"))
            {
                return Some((bot, m.clone()));
            }
        }
        None
    })
    .await
    .expect("the survey's first question arrives");
    w.press("ivanova", bot, &q1, "5").await;
    let q2 = w.wait_text("ivanova", bot, q1["message_id"].as_i64().unwrap(), "Рабочее место").await;
    w.press("ivanova", bot, &q2, "Да, всё было готово").await;
    let q3 = w.wait_text("ivanova", bot, q2["message_id"].as_i64().unwrap(), "Наставник").await;
    w.press("ivanova", bot, &q3, "Да").await;
    let q4 = w.wait_text("ivanova", bot, q3["message_id"].as_i64().unwrap(), "Что могло бы помочь").await;
    w.say("ivanova", bot, "Больше примеров в инструкциях").await;
    w.wait_text("ivanova", bot, q4["message_id"].as_i64().unwrap(), "Спасибо! Ваши ответы переданы в отдел кадров.")
        .await;
    let answers = eventually(20, || async {
        let a: Vec<_> = w.demo().onec().webhooks().into_iter().filter(|h| h.event == "survey.answered").collect();
        (a.len() >= 4).then_some(a)
    })
    .await
    .expect("every answer reaches 1C");
    let comment = answers.iter().find(|h| h.body.to_string().contains("Больше примеров в инструкциях"));
    assert!(comment.is_some(), "the typed answer too: {:?}", answers.iter().map(|a| &a.body).collect::<Vec<_>>());
}

/// A small cookie-keeping client of the operator window.
struct Operator {
    http: reqwest::Client,
    url: String,
    cookies: Vec<(String, String)>,
}

impl Operator {
    fn cookie(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> (u16, String) {
        let r = req.header("cookie", self.cookie()).send().await.unwrap();
        for c in r.headers().get_all("set-cookie") {
            let first = c.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            self.cookies.push((k.to_string(), v.to_string()));
        }
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        let req = self.http.get(format!("{}{path}", self.url));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let req = self.http.post(format!("{}{path}", self.url)).form(form);
        self.send(req).await
    }
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no `{name}` field in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn a_customer_is_answered_from_the_operator_window_which_says_it_is_the_demo() {
    let w = start().await;
    let (status, _) = w.act("/demo/api/phone/belova/shop/start", json!({})).await;
    assert_eq!(status, 200);
    let menu = w.wait_text("belova", "shop", 0, "Здесь можно узнать").await;
    w.press("belova", "shop", &menu, "💬 Связаться с менеджером").await;
    let handed = w.wait_text("belova", "shop", menu["message_id"].as_i64().unwrap(), "Менеджер скоро ответит").await;
    w.say("belova", "shop", "Есть ли доставка в субботу?").await;

    // The operator signs in with the credentials the login page shows: this demo's own password.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut op = Operator { http, url: w.url.clone(), cookies: Vec::new() };
    let (_, login_page) = op.get("/login").await;
    let login_page = login_page.replace("&#x2f;", "/");
    let password = w.demo().admin_password.clone();
    assert!(password.len() >= 16 && password != "okno-demo", "a new password for every demo: {password}");
    let shown = login_page.split("id=\"notice-login\">").nth(1).expect("the login page says it is the demo");
    let shown = shown.split("</div>").next().unwrap();
    assert!(shown.contains(&format!("admin / {password}")), "the login page shows the credentials: {shown}");
    let csrf = hidden(&login_page, "csrf");
    let (status, _) = op.post("/login", &[("csrf", &csrf), ("login", "admin"), ("password", &password)]).await;
    assert_eq!(status, 303, "the shown credentials sign in");
    let (status, inbox) = op.get("/ui/inbox").await;
    assert_eq!(status, 200);
    let inbox = inbox.replace("&#x2f;", "/");
    assert!(
        inbox.contains("id=\"notice-banner\"") && inbox.contains("href=\"/demo/phone\""),
        "every page says it is the demo: {inbox}"
    );

    let conv = eventually(20, || async {
        let convs = w.api("/conversations?limit=100").await;
        convs["items"]
            .as_array()?
            .iter()
            .find(|c| c["last_message"]["text"] == "Есть ли доставка в субботу?")
            .map(|c| c["id"].as_str().unwrap().to_string())
    })
    .await
    .expect("the customer's question reaches the operators");
    let (_, page) = op.get(&format!("/ui/conversations/{conv}")).await;
    assert!(page.contains("Есть ли доставка в субботу?"));
    let csrf = hidden(&page, "csrf");
    let (status, _) = op
        .post(
            &format!("/ui/conversations/{conv}/reply"),
            &[("csrf", &csrf), ("text", "Да, доставляем в субботу с 10 до 18.")],
        )
        .await;
    assert_eq!(status, 303, "the reply is taken");
    w.wait_text("belova", "shop", handed["message_id"].as_i64().unwrap(), "Да, доставляем в субботу с 10 до 18.").await;
}

#[tokio::test]
async fn the_phone_refuses_what_no_telegram_client_could_send() {
    let w = start().await;
    let send = |person: &str, chat: &str| format!("/demo/api/phone/{person}/{chat}/send");
    // Empty or overlong text, unknown people and chats, a group one is not in.
    assert_eq!(w.act(&send("petrov", "staff"), json!({"text": "   "})).await.0, 400);
    assert_eq!(w.act(&send("petrov", "staff"), json!({"text": "я".repeat(5000)})).await.0, 400);
    assert_eq!(w.act(&send("nobody", "staff"), json!({"text": "hi"})).await.0, 404);
    assert_eq!(w.act(&send("petrov", "nope"), json!({"text": "hi"})).await.0, 404);
    assert_eq!(w.act(&send("petrov", "couriers"), json!({"text": "hi"})).await.0, 403);
    // A bot not started yet: Start comes first.
    let (status, body) = w.act(&send("belova", "shop"), json!({"text": "hi"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("demo_not_started")));
    // Malformed bodies.
    assert_eq!(w.act(&send("petrov", "staff"), json!({"txt": "hi"})).await.0, 400);
    assert_eq!(w.act(&send("petrov", "staff"), json!({"text": "hi", "reply_to": 99999})).await.0, 404);
    // A press of a button that is not there.
    let menu = w.wait_text("petrov", "staff", 0, "Главное меню").await;
    let forged = json!({"message_id": menu["message_id"], "data": "bot:item:main:9:forged"});
    assert_eq!(w.act("/demo/api/phone/petrov/staff/press", forged).await.0, 400);
    // Start with a payload Telegram would not carry.
    assert_eq!(w.act("/demo/api/phone/belova/shop/start", json!({"payload": "a b/c"})).await.0, 400);
    assert_eq!(w.act("/demo/api/phone/sokolov/couriers/start", json!({})).await.0, 400);
    // An empty file, a file for a group, an unknown file.
    let post_file = |path: String, bytes: Vec<u8>| {
        w.http
            .post(format!("{}{path}", w.url))
            .header("x-okno-demo", "1")
            .header("content-type", "application/pdf")
            .body(bytes)
            .send()
    };
    assert_eq!(post_file("/demo/api/phone/petrov/staff/file?name=a.pdf".into(), vec![]).await.unwrap().status(), 400);
    assert_eq!(
        post_file("/demo/api/phone/sokolov/couriers/file?name=a.pdf".into(), b"%PDF".to_vec()).await.unwrap().status(),
        400
    );
    assert_eq!(w.get("/demo/api/files/staff/nope").await.0, 404);
    // A file without its name: the API's error, in JSON.
    let r = post_file("/demo/api/phone/petrov/staff/file".into(), b"%PDF".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_query", "{body}");
    // An action without the demo's header (a form of another site) is refused.
    let r =
        w.http.post(format!("{}{}", w.url, send("petrov", "staff"))).body(r#"{"text": "hi"}"#).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // … before its body is read: a file announced as larger than the phone's limit, without the
    // header, is refused for the header (a body read first would be refused for its size).
    let (status, body) =
        raw_post(&w.url, "/demo/api/phone/petrov/staff/file?name=a.pdf", &[("content-length", "11000000")]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("demo_header_missing"), "{body}");
    // The bot saw none of it: its last message is still the menu.
    assert_eq!(w.last_id("petrov", "staff").await, menu["message_id"].as_i64().unwrap());
    assert_eq!(w.get("/demo/phone").await.0, 200);
}

/// A request written by hand — headers only, whatever they announce — and the answer's status
/// and body.
async fn raw_post(base: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // The answer comes, and the connection closes, without the body ever being sent.
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[tokio::test]
async fn the_demo_answers_only_at_its_own_address_and_calls_only_its_own_simulators() {
    let w = start().await;
    let port = w.demo().running().addr.port();
    let get_as = |host: String, path: &str| {
        w.http.get(format!("{}{path}", w.url)).header("host", host).bearer_auth(&w.demo().api_token).send()
    };
    // A page of another site whose name was pointed at 127.0.0.1 (DNS rebinding) reaches
    // nothing: not the demo's pages, not okno's.
    for path in ["/demo/api/people", "/demo/api/console", "/login", "/api/v1/channels", "/healthz"] {
        let r = get_as(format!("rebound.example:{port}"), path).await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "host_not_allowed", "{path}: {body}");
    }
    let r = get_as("127.0.0.1:1".into(), "/login").await.unwrap();
    assert_eq!(r.status(), 403, "another port is another site");
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("LOCALHOST:{port}")] {
        assert_eq!(get_as(host.clone(), "/demo/api/people").await.unwrap().status(), 200, "{host}");
    }
    // Nor does an action: refused before anything is read.
    let (status, body) = {
        let r = w
            .http
            .post(format!("{}/demo/api/console/task", w.url))
            .header("host", format!("rebound.example:{port}"))
            .header("x-okno-demo", "1")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(status, 403, "{body}");

    // okno called the simulated Telegram and 1C all along (the company is set up, 1C is
    // subscribed); any other private address stays refused.
    let hooks = w.api("/webhooks").await;
    assert!(hooks["items"].as_array().unwrap().iter().any(|h| h["url"] == w.demo().onec().webhook_url()), "{hooks}");
    let r = w
        .http
        .post(format!("{}/api/v1/webhooks", w.url))
        .bearer_auth(&w.demo().api_token)
        .json(&json!({"url": "http://127.0.0.1:9/hook", "events": ["message.received"], "secret": "0123456789abcdef"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "private_target", "{body}");
}

/// GET requests okno has answered so far (its own and the demo's pages').
fn gets_served(w: &World) -> u64 {
    w.demo()
        .running()
        .engine
        .metrics
        .render(0)
        .lines()
        .filter(|l| l.starts_with("okno_http_requests_total{") && l.contains("method=\"GET\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn the_console_is_cheap_and_the_simulators_keep_only_the_newest() {
    let w = start().await;
    // The simulators of a demo that runs for days keep bounded memory.
    assert_eq!(w.demo().telegram().retention(), okno_demo::TELEGRAM_RETENTION);
    assert_eq!(w.demo().onec().kept(), okno_demo::ONEC_KEPT);

    // A posted event is asked of okno until it is settled; from then on a look at the console
    // asks okno nothing.
    let posted = w.post_event("02_order_blocked.json").await;
    w.settled(posted["answer"]["id"].as_str().unwrap()).await;
    let (status, _) = w.get("/demo/api/console").await;
    assert_eq!(status, 200);
    let before = gets_served(&w);
    for _ in 0..3 {
        let (_, console) = w.get("/demo/api/console").await;
        assert_eq!(console["posted"][0]["event"]["deliveries"][0]["name"], "Пётр Петров", "{console}");
    }
    assert_eq!(gets_served(&w) - before, 3, "three looks at the console, and nothing asked of okno");
}

#[tokio::test]
async fn the_demo_listens_for_other_computers_only_when_told_to() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = Demo::start_on(&settings(), Options::default(), listener).await.err().expect("refused");
    assert_eq!(err.code, "demo_listen_not_local", "{}", err.message);
    assert!(err.message.contains("--public"), "{}", err.message);

    // Told to: any host name reaches it, and the login page no longer shows the password (it
    // is printed where the demo was started).
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let options = Options { public: true, ..Options::default() };
    let demo = Demo::start_on(&settings(), options, listener).await.expect("a public demo starts");
    assert!(demo.instructions().contains(&demo.admin_password), "the password is printed");
    assert!(demo.instructions().contains("--public"), "with a word of warning");
    let port = demo.running().addr.port();
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/login"))
        .header("host", format!("demo.office.lan:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"notice-login\""), "the login page still says it is the demo");
    assert!(!page.contains(&demo.admin_password), "but not the password");
    let data_dir = demo.data_dir.clone();
    demo.stop().await;
    assert!(!data_dir.exists());
}

#[tokio::test]
async fn the_demo_refuses_a_folder_with_something_in_it_and_a_configured_database() {
    let dir = std::env::temp_dir().join(format!("okno-demo-busy-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("okno.db"), b"someone's data").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = Options { data_dir: Some(dir.clone()), ..Options::default() };
    let err = Demo::start_on(&settings(), options, listener).await.err().expect("refused");
    assert_eq!(err.code, "demo_folder_not_empty", "{}", err.message);
    assert!(err.message.contains(&dir.display().to_string()), "{}", err.message);
    assert_eq!(std::fs::read(dir.join("okno.db")).unwrap(), b"someone's data", "the folder is untouched");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();

    let mut s = settings();
    s.database_url = Some("postgres://okno@127.0.0.1/okno".to_string().into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = Demo::start_on(&s, Options::default(), listener).await.err().expect("refused");
    assert_eq!(err.code, "demo_database_configured");
    assert!(err.message.contains("PostgreSQL"), "{}", err.message);

    // A new folder is made, used, and kept (only the default throwaway one is removed),
    // marked as the demo's.
    let fresh = std::env::temp_dir().join(format!("okno-demo-new-{}", okno_domain::ids::new_id()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = Options { data_dir: Some(fresh.clone()), ..Options::default() };
    let demo = Demo::start_on(&settings(), options, listener).await.unwrap();
    assert!(fresh.join("okno.db").exists());
    assert!(!demo.throwaway);
    assert!(demo.instructions().contains("okno serve will not run on it"), "{}", demo.instructions());
    demo.stop().await;
    assert!(fresh.join("okno.db").exists(), "a folder the visitor named stays");
    assert!(okno_demo::made_by_demo(&fresh), "marked as the demo's");
    let marker = std::fs::read_to_string(fresh.join(okno_demo::MARKER)).unwrap();
    assert!(marker.contains("okno serve") && marker.contains("password"), "{marker}");
    std::fs::remove_dir_all(&fresh).unwrap();
}

// --- in a real browser ------------------------------------------------------------------------

use okno_testkit::browser::{Browser, BROWSER_TURN};

/// Clicks the inline button of the open chat whose label starts with `label` (waiting for it).
async fn tap(b: &Browser, label: &str) {
    let script = format!(
        "var b = [...document.querySelectorAll('#messages .inline button')].reverse().find(e => e.textContent.startsWith({})); if (!b) return false; b.click(); return true",
        json!(label)
    );
    b.wait_for(15, &script).await;
}

/// The text of an element as written (`innerText` applies CSS capitals).
async fn content(b: &Browser, css: &str) -> String {
    b.js(&format!("return document.querySelector({}).textContent", json!(css))).await.as_str().unwrap_or("").to_string()
}

/// Waits until the open chat shows `needle`.
async fn shows(b: &Browser, needle: &str) {
    b.wait_for(15, &format!("return document.getElementById('messages').innerText.includes({})", json!(needle))).await;
}

#[tokio::test]
async fn in_the_browser_the_phone_plays_a_customer_and_a_courier_in_both_languages() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let w = start().await;

    // English (the browser's language): a new customer opens the shop bot, presses Start,
    // presses a menu button and types an order number.
    b.goto(&format!("{}/demo/phone#belova/shop", w.url)).await;
    b.wait_for(15, "return window.oknoDemoLive === true").await;
    b.wait_for(15, "return (document.body.dataset.loaded || '').startsWith('belova/shop/')").await;
    assert!(content(&b, "#who").await.contains("You are"));
    assert!(b.text("#who-hint").await.contains("A customer 1C does not know"), "what to try as her");
    b.wait_for(10, "return !document.getElementById('start').hidden && document.getElementById('composer').hidden")
        .await;
    b.click("#start").await;
    tap(&b, "🔍 Узнать статус заказа").await;
    shows(&b, "Введите номер заказа").await;
    b.type_into("#text", "100421").await;
    b.click("#send").await;
    shows(&b, "Заказ № 100421: В производстве.").await;
    assert!(w.demo().onec().subscriber("100421").is_some(), "the lookup reached 1C");
    assert!(b.text("#messages").await.contains("You pressed «🔍 Узнать статус заказа»"), "the press is shown");
    b.screenshot("demo-phone-en").await;

    // The 1C console tells her the order is ready; it arrives live.
    b.goto(&format!("{}/demo/console", w.url)).await;
    b.wait_for(15, "return window.oknoDemoLive === true && document.querySelector('#events .event')").await;
    b.click("#events .event[data-file='order_stage_changed.json'] button[data-action=post]").await;
    b.wait_for(15, "return document.getElementById('posted').innerText.includes('order.stage_changed')").await;
    b.click("#post-task").await;
    b.wait_for(15, "return document.getElementById('posted').innerText.includes('Доставка: ул. Ленина, 5')").await;
    b.wait_for(15, "return document.getElementById('received').innerText.includes('GET /orders/100421')").await;
    b.wait_for(
        15,
        "return document.getElementById('webhooks').innerText.includes(\"Наталья Белова pressed «🔍 Узнать статус заказа» — a button of a bot's menu\")",
    )
    .await;
    b.screenshot("demo-console").await;

    // Russian (the operator UI's language switch): a courier takes the task in the group.
    b.goto(&format!("{}/lang/ru", w.url)).await;
    b.screen(Some((390, 844))).await;
    b.goto(&format!("{}/demo/phone#sokolov/couriers", w.url)).await;
    b.wait_for(
        15,
        "return window.oknoDemoLive === true && (document.body.dataset.loaded || '').startsWith('sokolov/couriers/')",
    )
    .await;
    assert!(content(&b, "#who").await.contains("Вы —"), "the page follows okno_lang");
    assert!(b.text("#who-hint").await.contains("Курьеры Стройторга"));
    tap(&b, "Взять").await;
    shows(&b, "Задачу взял(а): Дмитрий Соколов").await;
    b.wait_for(15, "return document.getElementById('messages').innerText.includes('Вы нажали «Взять»')").await;
    // The bot's answer came as an alert, as Telegram shows one.
    b.wait_for(15, "return !document.getElementById('alert').hidden").await;
    assert!(content(&b, "#alert-text").await.contains("ваша"), "{}", content(&b, "#alert-text").await);
    b.click("#alert-ok").await;
    assert_eq!(
        b.js("return !!document.getElementById('device').classList.contains('in-chat') && getComputedStyle(document.getElementById('chat-list')).display").await,
        json!("none"),
        "on a phone-sized screen the chat takes the whole screen"
    );
    assert_eq!(b.js("return getComputedStyle(document.getElementById('who')).display").await, json!("none"));
    b.screenshot("demo-phone-ru").await;
    b.screen(None).await;

    // The operator window: the login page shows the demo credentials, every page the banner.
    b.goto(&format!("{}/lang/en", w.url)).await;
    b.goto(&format!("{}/login", w.url)).await;
    let password = w.demo().admin_password.clone();
    let shown = b.text("#notice-login").await;
    assert!(shown.contains(&format!("admin / {password}")), "{shown}");
    b.login(&w.url, "admin", &password).await;
    assert!(b.text("#notice-banner").await.contains("simulated"));
    b.click("#notice-banner a[href='/demo/phone']").await;
    b.wait_for(15, "return location.pathname === '/demo/phone'").await;
    b.goto(&format!("{}/ui/inbox", w.url)).await;
    b.wait_for(15, "return window.oknoLive === true").await;
    b.screenshot("demo-operator").await;
}
