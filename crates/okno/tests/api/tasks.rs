//! Tasks in a Telegram group that exactly one executor can take, end to end through the Bot
//! API simulator: the post with "Взять"/"Подробнее", many people pressing at once (through one
//! process, and through two processes on one PostgreSQL), details for people the bot may not
//! write to, contact-group limits, release, and bad requests.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use okno_testkit::telegram::{CallbackAnswer, SimGroup, SimUser, TelegramSim};
use okno_testkit::{eventually, Received, Sink, TestApp, TestDb};
use serde_json::{json, Value};

const TOKEN: &str = "424242:task-test-token";
const BOT: &str = "tasks_test_bot";
const GROUP: i64 = -100_777;
const HOOK_SECRET: &str = "crm-secret-0123456789";

/// The load tests take turns, so they leave the rest of the suite some of the machine.
static LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct World {
    app: TestApp,
    sim: TelegramSim,
    ch: String,
    group: SimGroup,
    crm: Sink,
}

async fn world_on(app: TestApp, mode: &str, limits: bool) -> World {
    let sim = TelegramSim::start().await;
    sim.set_limits(limits);
    sim.add_bot(TOKEN, BOT);
    let ch = app.telegram_channel(&sim, TOKEN, mode).await;
    let group = sim.group(TOKEN, GROUP, "Исполнители");
    let crm = Sink::start(HOOK_SECRET).await;
    let sub =
        app.post("/api/v1/webhooks", json!({"url": crm.url, "events": ["task.claimed"], "secret": HOOK_SECRET})).await;
    assert_eq!(sub.status, 201, "{sub:?}");
    World { app, sim, ch, group, crm }
}

async fn world(mode: &str, limits: bool) -> World {
    world_on(TestApp::spawn().await, mode, limits).await
}

impl World {
    fn person(&self, id: i64, name: &str) -> SimUser {
        self.sim.user(TOKEN, id, name).with_username(&format!("user_{id}"))
    }

    /// Creates a task; returns its id and the message okno posted in the group.
    async fn task(&self, body: Value) -> (String, i64) {
        let before = self.sim.sent_to(TOKEN, GROUP).len();
        let mut body = body;
        body["channel_id"] = self.ch.clone().into();
        body["chat_id"] = GROUP.into();
        let r = self.app.post("/api/v1/tasks", body).await;
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(r.body["status"], "open");
        assert!(r.body["claimed_by"].is_null());
        // The post is there before the answer; an earlier task's "taken by" edit may land
        // beside it, since edits go out through the outbox.
        let posted = self.sim.sent_to(TOKEN, GROUP);
        let new: Vec<_> = posted[before..].iter().filter(|s| s.method == "sendMessage").collect();
        assert_eq!(new.len(), 1, "the task is posted once, before the answer: {:?}", posted[before..].to_vec());
        (r.body["id"].as_str().unwrap().to_string(), new[0].message_id)
    }

    async fn get(&self, id: &str) -> Value {
        let r = self.app.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body
    }

    fn answer(&self, query: &str) -> Option<CallbackAnswer> {
        self.sim.callback_answers(TOKEN).into_iter().find(|a| a.callback_query_id == query)
    }

    async fn wait_answer(&self, query: &str) -> CallbackAnswer {
        eventually(10, || async { self.answer(query) }).await.expect("the press is answered")
    }

    /// The edits of one group message so far.
    fn edits_of(&self, message_id: i64) -> Vec<okno_testkit::telegram::Sent> {
        self.sim
            .sent_to(TOKEN, GROUP)
            .into_iter()
            .filter(|s| s.method == "editMessageText" && s.message_id == message_id)
            .collect()
    }

    async fn wait_edits(&self, message_id: i64, n: usize) -> Vec<okno_testkit::telegram::Sent> {
        eventually(10, || async {
            let e = self.edits_of(message_id);
            (e.len() >= n).then_some(e)
        })
        .await
        .unwrap_or_else(|| panic!("the group message {message_id} is edited {n} time(s)"))
    }

    /// Private messages the bot sent to a person.
    fn private(&self, user: i64) -> Vec<okno_testkit::telegram::Sent> {
        self.sim.sent_to(TOKEN, user).into_iter().filter(|s| s.method == "sendMessage").collect()
    }

    async fn wait_private(&self, user: i64, containing: &str) -> okno_testkit::telegram::Sent {
        eventually(10, || async {
            self.private(user).into_iter().find(|s| s.plain.as_deref().unwrap_or("").contains(containing))
        })
        .await
        .unwrap_or_else(|| panic!("{user} gets a private message with {containing:?}: {:?}", self.private(user)))
    }
}

/// Delivers press updates to okno's webhook all at once, spread over `apps` in turn, as
/// Telegram does over its parallel webhook connections.
async fn deliver_at_once(apps: &[&TestApp], ch: &str, secret: &str, updates: Vec<Value>) {
    let mut all = tokio::task::JoinSet::new();
    for (n, update) in updates.into_iter().enumerate() {
        let app = apps[n % apps.len()];
        let (http, url, secret) = (app.http.clone(), format!("{}/hooks/{ch}", app.url), secret.to_string());
        all.spawn(async move {
            let r = http.post(url).header("X-Telegram-Bot-Api-Secret-Token", secret).json(&update).send().await;
            r.expect("the hook answers").status().as_u16()
        });
    }
    while let Some(status) = all.join_next().await {
        assert_eq!(status.unwrap(), 200, "every press is taken in");
    }
}

fn query_id(update: &Value) -> String {
    update["callback_query"]["id"].as_str().unwrap().to_string()
}

/// The press answers that won; checks everyone else was told who has it.
fn winners(w: &World, presses: &[(String, i64)], task_title: &str, round: usize) -> Vec<i64> {
    let answers: HashMap<String, CallbackAnswer> =
        w.sim.callback_answers(TOKEN).into_iter().map(|a| (a.callback_query_id.clone(), a)).collect();
    let mut won = Vec::new();
    let mut lost = Vec::new();
    for (query, user) in presses {
        let a = answers.get(query).unwrap_or_else(|| panic!("round {round}: press {query} by {user} was not answered"));
        let text = a.text.clone().unwrap_or_default();
        if text == format!("Задача «{task_title}» ваша!") {
            won.push(*user);
        } else {
            lost.push((*user, text, a.show_alert));
        }
    }
    assert_eq!(won.len(), 1, "round {round}: exactly one winner, got {won:?}");
    let winner = won[0];
    for (user, text, alert) in lost {
        assert!(text.starts_with("Задачу уже взял(а)") && text.contains(&format!("_{winner})")), "{user}: {text}");
        assert!(alert, "the loser sees an alert");
    }
    won
}

fn claimed_deliveries(crm: &Sink) -> Vec<Received> {
    crm.accepted().into_iter().filter(|r| r.header("x-okno-event") == Some("task.claimed")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_twenty_people_pressing_take_at_once_exactly_one_gets_each_task() {
    let _turn = LOAD.lock().await;
    let w = world("webhook", false).await;
    let secret = w.sim.webhook(TOKEN).unwrap().secret_token.unwrap();
    let people: Vec<SimUser> = (0..20).map(|n| w.person(8000 + n, "Курьер")).collect();
    let mut expected = HashMap::new();
    for round in 0..30 {
        let title = format!("Доставка №{round}");
        let (id, message_id) = w
            .task(json!({"title": title, "text": "Забрать на складе, отвезти до 18:00", "private_text": "Клиент: +7 999 000-11-22", "data": {"deal_id": round}}))
            .await;
        if round == 0 {
            let post = w.sim.sent_to(TOKEN, GROUP).pop().unwrap();
            assert_eq!(post.plain.as_deref(), Some(format!("{title}\n\nЗабрать на складе, отвезти до 18:00").as_str()));
            let keyboard = post.reply_markup.unwrap();
            assert_eq!(keyboard["inline_keyboard"][0][0]["text"], "Взять");
            assert_eq!(keyboard["inline_keyboard"][0][1]["text"], "Подробнее");
        }
        let updates: Vec<Value> =
            people.iter().map(|p| w.group.press_update(p, message_id, &format!("task:take:{id}"))).collect();
        let presses: Vec<(String, i64)> = updates.iter().zip(&people).map(|(u, p)| (query_id(u), p.id())).collect();
        deliver_at_once(&[&w.app], &w.ch, &secret, updates).await;
        let winner = winners(&w, &presses, &title, round)[0];

        let task = w.get(&id).await;
        assert_eq!(task["status"], "claimed");
        assert_eq!(task["claimed_by"]["user_id"], winner.to_string());
        assert_eq!(task["claimed_by"]["name"], "Курьер");
        assert_eq!(task["claimed_by"]["username"], format!("user_{winner}"));
        let edit = w.wait_edits(message_id, 1).await;
        let plain = edit[0].plain.clone().unwrap();
        assert!(plain.ends_with(&format!("Задачу взял(а): Курьер (@user_{winner})")), "{plain}");
        assert!(edit[0].reply_markup.is_none(), "the buttons are gone");
        w.wait_private(winner, &format!("Задача «{title}» ваша.")).await;
        expected.insert(id, winner);
    }
    // Late edits or second deliveries would show up here.
    let got = w.crm.wait_accepted(30, 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let claimed = claimed_deliveries(&w.crm);
    assert_eq!(claimed.len(), 30, "one task.claimed per task: {}", got.len());
    let mut seen = HashSet::new();
    for d in &claimed {
        assert!(d.signature_ok, "signed");
        let data = &d.body["data"];
        let id = data["task"]["id"].as_str().unwrap().to_string();
        assert!(seen.insert(id.clone()), "task {id} announced twice");
        assert_eq!(data["executor"]["user_id"], expected[&id].to_string(), "the right executor");
        assert_eq!(data["task"]["claimed_by"], data["executor"]);
        assert!(data["task"]["data"]["deal_id"].is_i64());
    }
    for id in expected.keys() {
        let message_id = w.get(id).await["message_id"].as_str().unwrap().parse::<i64>().unwrap();
        assert_eq!(w.edits_of(message_id).len(), 1, "the group message of {id} is edited once");
    }
    let list = w.app.get("/api/v1/tasks?status=claimed&limit=500").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 30);
    assert_eq!(w.app.get("/api/v1/tasks?status=open").await.body["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn details_reach_people_the_bot_may_not_write_to_through_the_start_link() {
    let w = world("polling", true).await;
    let (id, message_id) = w
        .task(
            json!({"title": "Замер окон", "text": "Ул. Ленина, 5", "private_text": "Клиент: Ольга, +7 999 123-45-67"}),
        )
        .await;

    // Someone who started the bot gets the details privately.
    let ann = w.person(8101, "Ann");
    let q = w.group.press(&ann, message_id, &format!("task:info:{id}"));
    let a = w.wait_answer(&q).await;
    assert_eq!(a.text.as_deref(), Some("Подробности — в личных сообщениях с ботом."));
    let details = w.wait_private(8101, "Ольга, +7 999 123-45-67").await;
    assert_eq!(details.reply_markup.unwrap()["inline_keyboard"][0][0]["callback_data"], format!("task:take:{id}"));

    // Someone who never started it: Telegram refuses (403), so the press opens the bot instead.
    let bob = w.person(8102, "Bob");
    w.sim.stranger(TOKEN, 8102);
    let q = w.group.press(&bob, message_id, &format!("task:info:{id}"));
    let a = w.wait_answer(&q).await;
    assert_eq!(a.url, Some(format!("https://t.me/{BOT}?start=task-{id}")));
    assert!(w.private(8102).is_empty());
    // Following the link starts the bot with `/start task-<id>`.
    let bob = w.person(8102, "Bob");
    bob.send_text(&format!("/start task-{id}"));
    let details = w.wait_private(8102, "Клиент: Ольга").await;
    assert!(details.plain.unwrap().starts_with("Замер окон\n\nУл. Ленина, 5"));
    // …and "take" from there works like the one in the group.
    let q = bob.press(details.message_id, &format!("task:take:{id}"));
    assert_eq!(w.wait_answer(&q).await.text.as_deref(), Some("Задача «Замер окон» ваша!"));
    let edit = w.wait_edits(message_id, 1).await;
    assert!(edit[0].plain.as_deref().unwrap().ends_with("Задачу взял(а): Bob (@user_8102)"));
    let task = w.get(&id).await;
    assert_eq!(task["claimed_by"]["user_id"], "8102");
    let contact = task["claimed_by"]["contact_id"].as_str().expect("Bob wrote to the bot, so he is a contact");
    assert_eq!(w.app.get(&format!("/api/v1/contacts/{contact}")).await.status, 200);

    // Details after someone else took it: the task is gone for everyone else.
    let q = w.group.press(&ann, message_id, &format!("task:info:{id}"));
    let a = w.wait_answer(&q).await;
    assert_eq!(a.text.as_deref(), Some("Задачу уже взял(а) Bob (@user_8102)."));
    assert!(a.show_alert);
    ann.send_text(&format!("/start task-{id}"));
    w.wait_private(8101, "Задачу уже взял(а) Bob").await;

    // A winner the bot may not write to is told in the group, with the way to the bot.
    let (id2, message_id2) =
        w.task(json!({"title": "Сборка шкафа", "text": "Завтра", "private_text": "Код домофона 15"})).await;
    let carol = w.person(8103, "Carol");
    w.sim.stranger(TOKEN, 8103);
    let q = w.group.press(&carol, message_id2, &format!("task:take:{id2}"));
    assert_eq!(w.wait_answer(&q).await.text.as_deref(), Some("Задача «Сборка шкафа» ваша!"));
    let told = eventually(10, || async {
        w.sim.sent_to(TOKEN, GROUP).into_iter().find(|s| {
            s.method == "sendMessage" && s.plain.as_deref().unwrap_or("").contains("задача «Сборка шкафа» ваша")
        })
    })
    .await
    .expect("the winner is told in the group");
    assert!(told.plain.unwrap().starts_with("Carol (@user_8103), задача"));
    assert_eq!(told.reply_to_message_id, Some(message_id2));
    assert_eq!(
        told.reply_markup.unwrap()["inline_keyboard"][0][0]["url"],
        format!("https://t.me/{BOT}?start=task-{id2}")
    );
    let carol = w.person(8103, "Carol");
    carol.send_text(&format!("/start task-{id2}"));
    let mine = w.wait_private(8103, "Код домофона 15").await;
    assert!(mine.plain.unwrap().starts_with("Задача «Сборка шкафа» ваша."));
    assert_eq!(mine.reply_markup.unwrap()["inline_keyboard"][0][0]["text"], "Отказаться");

    // Unknown tasks behind a link or a stale button.
    bob.send_text("/start task-0000");
    w.wait_private(8102, "Задача не найдена").await;
}

#[tokio::test]
async fn a_contact_group_limits_who_may_take_and_the_executor_can_give_it_back() {
    let w = world("polling", true).await;
    let courier = w
        .app
        .post(
            "/api/v1/contacts",
            json!({"external_id": "amo-user-77", "name": "Пётр Курьеров", "groups": ["couriers"]}),
        )
        .await;
    let courier_id = courier.body["id"].as_str().unwrap().to_string();
    let link = w.app.post(&format!("/api/v1/contacts/{courier_id}/link"), json!({})).await;
    let code = link.body["code"].as_str().unwrap().to_string();
    let petr = w.person(8201, "Petr");
    petr.send_text(&format!("/start {code}"));
    eventually(10, || async {
        let c = w.app.get(&format!("/api/v1/contacts/{courier_id}")).await;
        (c.body["identities"].as_array().is_some_and(|i| !i.is_empty())).then_some(())
    })
    .await
    .expect("Petr's Telegram is linked to the courier contact");
    let outsider = w.person(8202, "Olga");
    outsider.send_text("привет");

    let (id, message_id) = w
        .task(json!({"title": "Срочная доставка", "text": "До 15:00", "group": "couriers", "private_text": "Склад 3"}))
        .await;
    for data in ["take", "info"] {
        let q = w.group.press(&outsider, message_id, &format!("task:{data}:{id}"));
        let a = w.wait_answer(&q).await;
        assert!(a.text.unwrap().starts_with("Эту задачу могут взять только участники группы «couriers»"), "{data}");
        assert!(a.show_alert);
    }
    assert_eq!(w.get(&id).await["status"], "open");
    assert!(w.private(8202).iter().all(|s| !s.plain.as_deref().unwrap_or("").contains("Склад 3")));

    let q = w.group.press(&petr, message_id, &format!("task:take:{id}"));
    assert_eq!(w.wait_answer(&q).await.text.as_deref(), Some("Задача «Срочная доставка» ваша!"));
    let task = w.get(&id).await;
    assert_eq!(task["claimed_by"]["contact_id"], courier_id.as_str());
    let hook = w.crm.wait_accepted(1, 10).await;
    let data = &hook[0].body["data"];
    assert_eq!(data["contact"]["external_id"], "amo-user-77", "the CRM learns its own user id");
    assert_eq!(data["contact"]["name"], "Пётр Курьеров");
    assert_eq!(data["executor"]["name"], "Petr");
    w.wait_edits(message_id, 1).await;
    // The same person pressing again is told it is already theirs.
    let q = w.group.press(&petr, message_id, &format!("task:take:{id}"));
    assert_eq!(w.wait_answer(&q).await.text.as_deref(), Some("Эта задача уже ваша."));

    // Released through the API: open again, and the group gets the buttons back.
    let r = w.app.post(&format!("/api/v1/tasks/{id}/release"), json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "open");
    assert!(r.body["claimed_by"].is_null());
    let edits = w.wait_edits(message_id, 2).await;
    assert_eq!(edits[1].plain.as_deref(), Some("Срочная доставка\n\nДо 15:00"));
    assert_eq!(
        edits[1].reply_markup.as_ref().unwrap()["inline_keyboard"][0][0]["callback_data"],
        format!("task:take:{id}")
    );
    let again = w.app.post(&format!("/api/v1/tasks/{id}/release"), json!({})).await;
    assert_eq!((again.status, again.code()), (409, "task_not_claimed"));

    // Taken again, then given back by the executor from the private chat.
    let q = w.group.press(&petr, message_id, &format!("task:take:{id}"));
    w.wait_answer(&q).await;
    let mine = eventually(10, || async {
        let ps = w.private(8201);
        let found: Vec<_> = ps.into_iter().filter(|s| s.plain.as_deref().unwrap_or("").contains("Склад 3")).collect();
        (found.len() >= 2).then(|| found.last().cloned().unwrap())
    })
    .await
    .expect("told privately both times");
    let q = petr.press(mine.message_id, &format!("task:drop:{id}"));
    assert_eq!(w.wait_answer(&q).await.text.as_deref(), Some("Вы отказались от задачи, она снова доступна в группе."));
    assert_eq!(w.get(&id).await["status"], "open");
    let edits = w.wait_edits(message_id, 4).await;
    assert!(edits[3].reply_markup.is_some(), "the buttons are back");
    assert_eq!(w.crm.wait_accepted(2, 10).await.len(), 2, "each claim is announced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_nobody_takes_is_posted_again_and_a_release_is_announced() {
    let w = world("polling", false).await;
    let released = Sink::start(HOOK_SECRET).await;
    let sub = w
        .app
        .post("/api/v1/webhooks", json!({"url": released.url, "events": ["task.released"], "secret": HOOK_SECRET}))
        .await;
    assert_eq!(sub.status, 201, "{sub:?}");
    let posts = || -> Vec<okno_testkit::telegram::Sent> {
        w.sim.sent_to(TOKEN, GROUP).into_iter().filter(|s| s.method == "sendMessage").collect()
    };
    let wait_posts = |n: usize| async move {
        eventually(15, || async { (posts().len() >= n).then(posts) }).await.unwrap_or_else(|| panic!("{n} posts"))
    };
    let (id, first) = w
        .task(
            json!({"title": "Перевод договора", "text": "EN→RU, 5 страниц", "reoffer_after": "1s", "reoffer_times": 2}),
        )
        .await;
    assert_eq!(w.get(&id).await["reoffer_after"], 1000);
    // Nobody takes it: posted again twice, the older posts point down and lose their buttons.
    let all = wait_posts(3).await;
    assert!(all.iter().all(|p| p.plain.as_deref().unwrap_or("").starts_with("Перевод договора")));
    let edits = w.wait_edits(first, 1).await;
    assert!(edits[0].plain.as_deref().unwrap().ends_with("Задача опубликована заново ниже."), "{:?}", edits[0]);
    assert!(edits[0].reply_markup.is_none(), "the old post loses its buttons");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(posts().len(), 3, "no more than reoffer_times re-posts");
    let task = w.get(&id).await;
    assert_eq!(task["reoffers"], 2);
    let newest = posts().last().unwrap().message_id;
    assert_eq!(task["message_id"], newest.to_string());

    // Taken on the newest post; given back through the API: announced, and offered again.
    let ivan = w.person(8301, "Ivan");
    let q = w.group.press(&ivan, newest, &format!("task:take:{id}"));
    w.wait_answer(&q).await;
    let r = w.app.post(&format!("/api/v1/tasks/{id}/release"), json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let hook = released.wait_accepted(1, 10).await;
    assert_eq!(hook[0].body["type"], "task.released");
    assert_eq!(hook[0].body["data"]["task"]["id"], id.as_str());
    assert_eq!(hook[0].body["data"]["executor"]["user_id"], "8301");
    assert_eq!(hook[0].body["data"]["by"], "api");
    let again = wait_posts(4).await;
    // Taken again on the new post: nothing more is posted.
    let q = w.group.press(&ivan, again.last().unwrap().message_id, &format!("task:take:{id}"));
    w.wait_answer(&q).await;
    assert_eq!(w.get(&id).await["status"], "claimed");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(posts().len(), 4, "a taken task is not posted again");
    let bad = w
        .app
        .post(
            "/api/v1/tasks",
            json!({"channel_id": w.ch, "chat_id": GROUP, "title": "x", "text": "y", "reoffer_after": "soon"}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_task"));
}

#[tokio::test]
async fn bad_task_requests_are_refused_with_the_reason() {
    let w = world("polling", true).await;
    let ok = json!({"channel_id": w.ch, "chat_id": GROUP, "title": "T", "text": "x"});
    let with = |patch: Value| {
        let mut b = ok.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let r = w.app.post("/api/v1/tasks", with(json!({"channel_id": "no-such-channel"}))).await;
    assert_eq!((r.status, r.code()), (404, "channel_not_found"), "{r:?}");
    let r = w.app.post("/api/v1/tasks", with(json!({"chat_id": -100_999}))).await;
    assert_eq!((r.status, r.code()), (422, "telegram_refused"), "{r:?}");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("Bad Request: chat not found"), "{r:?}");
    let mut no_title = ok.clone();
    no_title.as_object_mut().unwrap().remove("title");
    let r = w.app.post("/api/v1/tasks", no_title).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("title"), "{r:?}");
    let r = w.app.post("/api/v1/tasks", with(json!({"title": "  "}))).await;
    assert_eq!((r.status, r.code()), (400, "invalid_task"));
    let r = w.app.post("/api/v1/tasks", with(json!({"chat_id": [1]}))).await;
    assert_eq!((r.status, r.code()), (400, "invalid_task"));
    let site = w.app.webhook_channel("http://127.0.0.1:9/out", "0123456789abcdef-secret").await;
    let r = w.app.post("/api/v1/tasks", with(json!({"channel_id": site}))).await;
    assert_eq!((r.status, r.code()), (422, "unsupported_channel"));
    assert!(w.sim.sent_to(TOKEN, GROUP).is_empty(), "nothing was posted");
    assert_eq!(w.app.get("/api/v1/tasks").await.body["items"], json!([]), "and nothing stored");

    assert_eq!(w.app.get("/api/v1/tasks/nope").await.status, 404);
    assert_eq!(w.app.post("/api/v1/tasks/nope/release", json!({})).await.status, 404);
    assert_eq!(w.app.get("/api/v1/tasks?status=lost").await.code(), "invalid_status");
    let r = w.app.post("/api/v1/tasks", ok.clone()).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["chat_id"], GROUP.to_string());
    let doc = w.app.call("GET", "/api/v1/openapi.json", None, None).await;
    assert!(doc.body["paths"]["/api/v1/tasks/{id}/release"].is_object(), "documented");
}

/// Two okno processes on one PostgreSQL take in presses of the same buttons: 20 people split
/// across both, 100 tasks, exactly one winner each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_presses_through_two_processes_on_postgres_leave_one_winner_each_time() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("skipping the two-process task test: no PostgreSQL");
        return;
    };
    let _turn = LOAD.lock().await;
    let url = db.url.clone();
    let w = world_on(TestApp::spawn_on(db, |_| {}).await, "webhook", false).await;
    let b = TestApp::spawn_on(TestDb::borrowed(&url), |_| {}).await;
    let secret = w.sim.webhook(TOKEN).unwrap().secret_token.unwrap();
    let people: Vec<SimUser> = (0..20).map(|n| w.person(8300 + n, "Мастер")).collect();
    let mut expected = HashMap::new();
    let mut per_process = [0usize; 2];
    for round in 0..100 {
        let title = format!("Заявка {round}");
        let (id, message_id) = w.task(json!({"title": title, "text": "Выезд на объект"})).await;
        let updates: Vec<Value> =
            people.iter().map(|p| w.group.press_update(p, message_id, &format!("task:take:{id}"))).collect();
        let presses: Vec<(String, i64)> = updates.iter().zip(&people).map(|(u, p)| (query_id(u), p.id())).collect();
        deliver_at_once(&[&w.app, &b], &w.ch, &secret, updates).await;
        let winner = winners(&w, &presses, &title, round)[0];
        // Presses go to the processes in turn: even people to the first, odd to the second.
        per_process[((winner - 8300) % 2) as usize] += 1;
        assert_eq!(w.get(&id).await["claimed_by"]["user_id"], winner.to_string(), "round {round}");
        expected.insert(id, (winner, message_id));
    }
    w.crm.wait_accepted(100, 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let claimed = claimed_deliveries(&w.crm);
    assert_eq!(claimed.len(), 100, "one task.claimed per task");
    let announced: HashMap<String, String> = claimed
        .iter()
        .map(|d| {
            let data = &d.body["data"];
            (
                data["task"]["id"].as_str().unwrap().to_string(),
                data["executor"]["user_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(announced.len(), 100);
    for (id, (winner, message_id)) in &expected {
        assert_eq!(announced[id], winner.to_string());
        let edits = w.wait_edits(*message_id, 1).await;
        assert_eq!(edits.len(), 1, "one edit of {id}");
    }
    eprintln!("winners by process: {per_process:?}");
}

/// Every key path of the objects in a JSON value.
fn key_paths(v: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    if let Some(o) = v.as_object() {
        for (k, child) in o {
            let path = format!("{prefix}.{k}");
            out.insert(path.clone());
            key_paths(child, &path, out);
        }
    }
}

fn example(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tasks").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_shipped_amocrm_example_is_what_okno_takes_and_sends() {
    let w = world("polling", true).await;
    let petr_contact = w
        .app
        .post("/api/v1/contacts", json!({"external_id": "amo-user-8812", "name": "Пётр Иванов", "groups": ["Курьеры"]}))
        .await;
    let contact_id = petr_contact.body["id"].as_str().unwrap().to_string();
    let code = w.app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await.body["code"]
        .as_str()
        .unwrap()
        .to_string();
    let petr = w.person(8401, "Petr");
    petr.send_text(&format!("/start {code}"));
    w.wait_private(8401, "Готово").await;

    let mut body = example("task.json");
    body["channel_id"] = w.ch.clone().into();
    body["chat_id"] = GROUP.into();
    let r = w.app.post("/api/v1/tasks", body.clone()).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let message_id = w.sim.sent_to(TOKEN, GROUP).last().unwrap().message_id;
    let q = w.group.press(&petr, message_id, &format!("task:take:{id}"));
    w.wait_answer(&q).await;
    let got = w.crm.wait_accepted(1, 10).await;
    assert_eq!(got[0].body["data"]["contact"]["external_id"], "amo-user-8812");
    assert_eq!(got[0].body["data"]["task"]["data"], body["data"]);
    let (mut want, mut have) = Default::default();
    key_paths(&example("task_claimed.json"), "", &mut want);
    key_paths(&got[0].body, "", &mut have);
    assert_eq!(want, have, "examples/tasks/task_claimed.json shows every field okno sends, and only those");
}
