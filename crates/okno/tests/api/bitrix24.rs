//! Bitrix24 end to end, against the portal simulator (and Telegram's for the people): seed 004
//! over an inbound webhook, an application's offline events drained after okno was down (its
//! tokens refreshed, its own writes not echoed, the bucket never exceeded), the portal's
//! operators answering an okno conversation through Open Lines, call records in the contact's
//! history, contacts kept in step both ways, and a revoked webhook or a removed application
//! shown on the connector and recovered after a PATCH.

use std::time::Duration;

use okno_bitrix24_sim::{Bitrix24Sim, Call};
use okno_testkit::telegram::TelegramSim;
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Map, Value};

const TOKEN: &str = "515151:b24-test-token";
const GROUP: i64 = -100_524;

/// A field of a portal record as text (`"5"` and `5` alike).
fn field(record: &Map<String, Value>, key: &str) -> String {
    match record.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

/// The connector's journal entries' actions.
async fn journal(app: &TestApp, id: &str) -> Vec<Value> {
    app.get("/api/v1/audit?limit=200").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == format!("connector:{id}"))
        .cloned()
        .collect()
}

/// The business events of deals at the stage.
async fn stage_events(app: &TestApp) -> Vec<Value> {
    app.get("/api/v1/events?limit=200").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "bitrix24.deal.stage")
        .cloned()
        .collect()
}

/// The hook address okno gave, reachable from the test.
fn address(app: &TestApp, made: &Value) -> String {
    made["info"]["address"].as_str().expect("the connector's address").replace(&app.running().public_url, &app.url)
}

#[tokio::test]
async fn seed_004_over_a_webhook_a_deal_becomes_a_task_and_its_executor_is_written_back() {
    let app = TestApp::spawn().await;
    let tg = TelegramSim::start().await;
    tg.add_bot(TOKEN, "b24_tasks_bot");
    let ch = app.telegram_channel(&tg, TOKEN, "polling").await;
    let group = tg.group(TOKEN, GROUP, "Курьеры");
    let b24 = Bitrix24Sim::start().await;
    let courier_user = b24.add_user("Пётр", "Курьеров", "petr@romashka.ru");
    let webhook = b24.webhook_url(b24.admin());

    // A webhook the portal does not know is refused, and nothing is kept.
    let mut config = json!({"webhook_url": format!("{}/rest/1/not-a-code/", b24.base()),
        "tasks": [{"stage_id": "PREPARATION", "channel_id": ch, "chat_id": GROUP.to_string(), "group": "Курьеры",
                   "taken_stage_id": "EXECUTING"}]});
    let refused =
        app.post("/api/v1/connectors", json!({"kind": "bitrix24", "name": "Битрикс24", "config": config})).await;
    assert_eq!((refused.status, refused.code()), (400, "invalid_credentials"), "{refused:?}");
    assert!(app.get("/api/v1/connectors").await.body["items"].as_array().unwrap().is_empty());
    config["webhook_url"] = json!(webhook);
    let made = app.post("/api/v1/connectors", json!({"kind": "bitrix24", "name": "Битрикс24", "config": config})).await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.body["id"].as_str().unwrap().to_string();
    assert_eq!(made.body["info"]["mode"], "webhook");
    let shown = app.get(&format!("/api/v1/connectors/{id}")).await.body;
    let code = webhook.trim_end_matches('/').rsplit('/').next().unwrap();
    assert!(!shown.to_string().contains(code), "the webhook's code is never shown: {shown}");

    // The administrator makes the portal's outgoing webhook to okno's address and gives okno
    // its application token.
    let hook = address(&app, &made.body);
    let app_token = b24.outgoing_webhook("ONCRMDEALUPDATE", &hook);
    let patched =
        app.patch(&format!("/api/v1/connectors/{id}"), json!({"config": {"application_token": app_token}})).await;
    assert_eq!(patched.status, 200, "{patched:?}");
    let forged = app
        .http
        .post(&hook)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("event=ONCRMDEALUPDATE&data[FIELDS][ID]=1&auth[application_token]=not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401, "a post without the application token is refused");

    let courier = app
        .post(
            "/api/v1/contacts",
            json!({"external_id": format!("b24-user-{courier_user}"), "name": "Пётр Курьеров", "groups": ["Курьеры"]}),
        )
        .await;
    let courier_id = courier.body["id"].as_str().unwrap().to_string();
    let link = app.post(&format!("/api/v1/contacts/{courier_id}/link"), json!({})).await;
    let petr = tg.user(TOKEN, 9201, "Petr").with_username("petr_k");
    petr.send_text(&format!("/start {}", link.body["code"].as_str().unwrap()));
    eventually(10, || async {
        let c = app.get(&format!("/api/v1/contacts/{courier_id}")).await;
        c.body["identities"].as_array().is_some_and(|i| !i.is_empty()).then_some(())
    })
    .await
    .expect("Petr's Telegram linked");

    let buyer = b24.add_contact("Анна", "Покупатель", "+7 900 123-45-67", "anna@example.org");
    let deal = b24.add_deal("Букет к 18:00, ул. Ленина 5", Some(buyer), b24.admin());
    b24.update_deal(deal, json!({"OPPORTUNITY": "4500.00"}));
    b24.move_deal(deal, "PREPARATION");
    let task = eventually(15, || async {
        let t = app.get("/api/v1/tasks?limit=10").await.body["items"].as_array()?.first()?.clone();
        Some(t)
    })
    .await
    .expect("a task from the deal");
    assert_eq!(task["title"], "Букет к 18:00, ул. Ленина 5");
    let post = tg.sent_to(TOKEN, GROUP).into_iter().find(|s| s.method == "sendMessage").expect("posted to the group");
    let text = post.plain.clone().unwrap_or_default();
    assert!(text.contains("4500") && !text.contains("+7 900"), "the sum in the group, the phone not: {text}");
    b24.settle().await;
    assert!(b24.events_sent().iter().all(|e| e.status == 200), "every post answered: {:?}", b24.events_sent());

    // The portal says it again: still one task.
    b24.move_deal(deal, "PREPARATION");
    b24.settle().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(app.get("/api/v1/tasks?limit=10").await.body["items"].as_array().unwrap().len(), 1);

    // Petr takes it: he is responsible, a timeline comment says so, the deal moves on.
    let task_id = task["id"].as_str().unwrap();
    group.press(&petr, post.message_id, &format!("task:take:{task_id}"));
    let written = eventually(15, || async {
        let d = b24.entity("DEAL", deal)?;
        let commented =
            b24.timeline_comments().iter().any(|c| c["ENTITY_ID"].to_string().trim_matches('"') == deal.to_string());
        (field(&d, "ASSIGNED_BY_ID") == courier_user.to_string() && commented).then_some(d)
    })
    .await
    .expect("the executor written back to the portal");
    assert_eq!(field(&written, "STAGE_ID"), "EXECUTING");
    let comment = b24.timeline_comments().last().unwrap()["COMMENT"].as_str().unwrap().to_string();
    assert!(comment.contains("Petr (@petr_k)") && comment.contains("Букет к 18:00"), "{comment}");
    let actions: Vec<String> =
        journal(&app, &id).await.iter().filter_map(|e| e["action"].as_str().map(str::to_string)).collect();
    for a in ["bitrix24.deal.read", "bitrix24.deal.update", "bitrix24.timeline.comment.add"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    // A task made through the API naming the connector and the deal is not the connector's.
    let forged = app
        .post(
            "/api/v1/tasks",
            json!({"channel_id": ch, "chat_id": GROUP.to_string(), "title": "Подделка", "text": "",
                   "data": {"connector": id, "bitrix24": {"id": deal, "stage_id": "PREPARATION"}}}),
        )
        .await;
    assert_eq!(forged.status, 201, "{forged:?}");
    let forged_post = tg.sent_to(TOKEN, GROUP).into_iter().rfind(|s| s.method == "sendMessage").unwrap();
    group.press(&petr, forged_post.message_id, &format!("task:take:{}", forged.body["id"].as_str().unwrap()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(b24.timeline_comments().len(), 1, "no comment from a task the connector did not post");

    // The webhook is deleted in the portal: the next deal's job is held, the connector says why.
    b24.revoke_webhook(&webhook);
    let deal2 = b24.add_deal("Второй букет", None, b24.admin());
    b24.move_deal(deal2, "PREPARATION");
    let status = eventually(15, || async {
        let c = app.get(&format!("/api/v1/connectors/{id}")).await.body;
        (c["status"] == "error").then_some(c)
    })
    .await
    .expect("the refused webhook shows on the connector");
    assert!(status["status_detail"].as_str().unwrap().contains("401"), "{status}");
    // A new webhook through PATCH clears it, and the held deal is a task now.
    let fresh = b24.webhook_url(b24.admin());
    let patched = app.patch(&format!("/api/v1/connectors/{id}"), json!({"config": {"webhook_url": fresh}})).await;
    assert_eq!((patched.status, patched.body["status"].as_str()), (200, Some("active")), "{patched:?}");
    let caught_up = eventually(30, || async {
        let items = app.get("/api/v1/tasks?limit=10").await.body["items"].as_array()?.clone();
        items.iter().any(|t| t["title"] == "Второй букет").then_some(())
    })
    .await;
    assert!(caught_up.is_some(), "the held deal caught up once the webhook was replaced");
    assert_eq!(b24.over_limit(), 0);
}

/// A local application: the authorization code exchanged (a wrong one refused), CRM events
/// bound offline under okno's own source key, drained by the standing job; okno stopped while
/// deals moved and a contact changed loses nothing — the queue drained after the restart,
/// each deal one business event; okno's own writes are not queued back; its access token,
/// made short-lived, refreshed with the rotated refresh token kept; and the burst of reads
/// after the restart never past the portal's bucket.
#[tokio::test]
async fn an_application_drains_offline_events_after_okno_was_down_without_loss_or_echo() {
    let mut app = TestApp::spawn().await;
    let b24 = Bitrix24Sim::start().await;
    let installed = b24.install_app(b24.admin());
    b24.access_ttl(Duration::from_secs(60));
    let config = |code: &str| {
        json!({"app": {"client_id": installed.client_id, "client_secret": installed.client_secret,
                       "rest_base": b24.rest_base(), "oauth_server": b24.oauth_server(), "code": code},
               "tasks": [{"stage_id": "PREPARATION", "event": "bitrix24.deal.stage"}],
               "contacts": {"every": 5}})
    };
    let wrong =
        app.post("/api/v1/connectors", json!({"kind": "bitrix24", "name": "B24", "config": config("nope")})).await;
    assert_eq!((wrong.status, wrong.code()), (400, "invalid_credentials"), "{wrong:?}");
    let code = b24.auth_code(&installed.client_id);
    let made =
        app.post("/api/v1/connectors", json!({"kind": "bitrix24", "name": "B24", "config": config(&code)})).await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.body["id"].as_str().unwrap().to_string();
    let binds = b24.log().iter().filter(|c| c.method == "event.bind" && c.status == 200).count();
    assert_eq!(binds, 4, "deals' and contacts' add and update, offline");

    let deal = b24.add_deal("Заказ 1", None, b24.admin());
    b24.move_deal(deal, "PREPARATION");
    let first = eventually(20, || async { stage_events(&app).await.first().cloned() }).await.expect("the deal's event");
    assert_eq!(first["data"]["deal_id"], json!(deal));
    assert_eq!(first["data"]["connector"], json!(id));

    // okno's own contact goes to the portal: its write carries okno's key, nothing queued back.
    let vera = app.post("/api/v1/contacts", json!({"name": "Вера Новикова", "email": "vera@example.org"})).await;
    let vera_id = vera.body["id"].as_str().unwrap().to_string();
    let vera_b24 = eventually(30, || async {
        let v = app.get(&format!("/api/v1/contacts/{vera_id}")).await.body;
        v["external_id"].as_str().and_then(|x| x.strip_prefix("b24-")).and_then(|x| x.parse::<i64>().ok())
    })
    .await
    .expect("Vera added to the portal");
    assert_eq!(field(&b24.entity("CONTACT", vera_b24).unwrap(), "NAME"), "Вера");
    assert!(
        !b24.offline_queue().iter().any(|r| r
            .data
            .pointer("/FIELDS/ID")
            .map(|v| v.to_string().trim_matches('"').to_string())
            == Some(vera_b24.to_string())),
        "okno's own write is not queued back"
    );

    // okno is down; meanwhile 60 deals reach the stage and a manager renames a contact.
    app.stop().await;
    let anna = b24.add_contact("Анна", "Покупатель", "+7 900 123-45-67", "anna@example.org");
    let mut deals = Vec::new();
    for n in 0..60 {
        let d = b24.add_deal(&format!("Заказ офлайн {n}"), None, b24.admin());
        b24.move_deal(d, "PREPARATION");
        deals.push(d);
    }
    b24.update_contact(anna, json!({"NAME": "Анна-Мария"}));
    assert!(b24.offline_queue().len() >= 61, "the portal kept them: {}", b24.offline_queue().len());
    app.restart().await;
    let all = eventually(90, || async {
        let events = stage_events(&app).await;
        (events.len() == 61).then_some(events)
    })
    .await
    .expect("every deal moved while okno was down is an event");
    for d in &deals {
        assert!(all.iter().any(|e| e["data"]["deal_id"] == json!(d)), "deal {d}");
    }
    let a = eventually(20, || async {
        let items =
            app.get(&format!("/api/v1/contacts?external_id=b24-{anna}")).await.body["items"].as_array()?.clone();
        items.first().filter(|c| c["name"] == "Анна-Мария Покупатель").cloned()
    })
    .await
    .expect("the contact changed while okno was down");
    assert_eq!(a["phone"], "+79001234567");
    eventually(20, || async { b24.offline_queue().is_empty().then_some(()) }).await.expect("the queue cleared");
    assert_eq!(b24.over_limit(), 0, "the burst after the restart kept to the bucket");
    assert!(b24.refreshes() >= 2, "short-lived tokens refreshed: {}", b24.refreshes());
    let refreshed = journal(&app, &id)
        .await
        .iter()
        .filter(|e| e["action"] == "bitrix24.oauth.refresh" && e["detail"]["outcome"] == "ok")
        .count();
    assert!(refreshed >= 1, "the refresh in the journal");
    assert_eq!(app.get(&format!("/api/v1/connectors/{id}")).await.body["status"], "active");
}

/// Bitrix24's operators answer an okno conversation through Open Lines: a person writes to
/// okno's Telegram bot, the message is in the open line (okno's conversation as the chat); an
/// operator's answer, posted once, is stored before the answer and reaches the person's
/// Telegram without the portal's signature markup; its delivery is reported to the portal; a
/// forged post is refused; and a removed application shows on the connector until a PATCH.
#[tokio::test]
async fn bitrix24_operators_answer_an_okno_conversation_through_open_lines() {
    let app = TestApp::spawn().await;
    let tg = TelegramSim::start().await;
    tg.add_bot(TOKEN, "b24_lines_bot");
    let ch = app.telegram_channel(&tg, TOKEN, "polling").await;
    let b24 = Bitrix24Sim::start().await;
    let installed = b24.install_app(b24.admin());
    let line = b24.add_open_line("Поддержка");
    let config = json!({"app": {"client_id": installed.client_id, "client_secret": installed.client_secret,
                                "rest_base": b24.rest_base(), "oauth_server": b24.oauth_server(),
                                "access_token": installed.access_token, "refresh_token": installed.refresh_token},
                        "application_token": installed.application_token,
                        "openlines": {"line": line, "channels": [ch]}});
    let made = app.post("/api/v1/connectors", json!({"kind": "bitrix24", "name": "B24", "config": config})).await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.body["id"].as_str().unwrap().to_string();

    let ivan = tg.user(TOKEN, 7801, "Иван");
    ivan.send_text("Здравствуйте, где мой заказ?");
    let conv = eventually(20, || async {
        let c = app.get("/api/v1/conversations").await.body["items"][0]["id"].as_str()?.to_string();
        b24.chat_messages(line, &c).iter().any(|m| m.text == "Здравствуйте, где мой заказ?").then_some(c)
    })
    .await
    .expect("the person's message in the open line");

    let reply = b24.operator_reply(line, &conv, "Заказ приедет завтра до 12:00");
    b24.settle().await;
    let post = b24.events_sent().into_iter().rfind(|e| e.event == "ONIMCONNECTORMESSAGEADD").unwrap();
    assert_eq!(post.status, 200, "answered once stored");
    let thread = app.get(&format!("/api/v1/conversations/{conv}/messages")).await.body;
    let out = thread["items"].as_array().unwrap().iter().find(|m| m["direction"] == "out").cloned();
    let out = out.expect("the answer stored before the portal was answered");
    assert!(out["author"].as_str().unwrap().starts_with("Bitrix24: "), "{out}");
    let sent = eventually(15, || async {
        tg.sent_to(TOKEN, 7801).into_iter().find(|s| s.text.as_deref() == Some("Заказ приедет завтра до 12:00"))
    })
    .await;
    assert!(sent.is_some(), "the answer reached the person's Telegram: {:?}", tg.sent_to(TOKEN, 7801));
    eventually(15, || async {
        b24.deliveries().iter().any(|d| d.message_id == reply.message_id && d.external_chat == conv).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the delivery reported to the portal: {:?}", b24.deliveries()));

    // The portal posts the same answer again: stored once.
    let hook = address(&app, &made.body);
    let again = app
        .http
        .post(&hook)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(post.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let forged = post.body.replace(&installed.application_token, "not-the-token");
    let forged = app
        .http
        .post(&hook)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let outs = app.get(&format!("/api/v1/conversations/{conv}/messages")).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "out")
        .count();
    assert_eq!(outs, 1, "the answer stored once");
    ivan.send_text("Спасибо!");
    eventually(20, || async {
        b24.chat_messages(line, &conv).iter().any(|m| m.text == "Спасибо!").then_some(())
    })
    .await
    .expect("the next message in the same chat");

    // The application is removed from the portal: the next message is held, the status says so.
    b24.uninstall_app(&installed.client_id);
    ivan.send_text("Алло?");
    let status = eventually(20, || async {
        let c = app.get(&format!("/api/v1/connectors/{id}")).await.body;
        (c["status"] == "error").then_some(c)
    })
    .await
    .expect("the removed application shows on the connector");
    assert!(status["status_detail"].as_str().unwrap().contains("token"), "{status}");
    let again = b24.install_app(b24.admin());
    let patched = app
        .patch(
            &format!("/api/v1/connectors/{id}"),
            json!({"config": {"app": {"client_id": again.client_id, "client_secret": again.client_secret,
                                      "rest_base": b24.rest_base(), "oauth_server": b24.oauth_server(),
                                      "code": b24.auth_code(&again.client_id)},
                              "application_token": again.application_token}}),
        )
        .await;
    assert_eq!((patched.status, patched.body["status"].as_str()), (200, Some("active")), "{patched:?}");
    eventually(20, || async { b24.chat_messages(line, &conv).iter().any(|m| m.text == "Алло?").then_some(()) })
        .await
        .expect("the held message in the line after the PATCH");
}

/// A big first read of the portal's contacts walks the table in id order, 50 pages a batch;
/// when the method's time budget runs out in the middle, the walk goes on from the last batch
/// written once the budget is back — its first page is not read again, nobody is doubled or
/// missed — and the next look reads only what changed since the walk began.
#[tokio::test]
async fn a_first_contact_read_cut_short_goes_on_from_where_it_stopped() {
    let app = TestApp::spawn().await;
    let b24 = Bitrix24Sim::start().await;
    let ids: Vec<i64> =
        (0..2_600).map(|n| b24.add_contact(&format!("Клиент{n}"), "Портала", &format!("+7903{n:07}"), "")).collect();
    let last = ids[2_599];
    // The walk begins a second later than the last change: the next look starts after them.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // The first page alone and a batch of 50 pages pass; the next batch's pages are refused.
    b24.block_method_after("crm.contact.list", 51, Duration::from_secs(3));
    let made = app
        .post(
            "/api/v1/connectors",
            json!({"kind": "bitrix24", "name": "B24",
                   "config": {"webhook_url": b24.webhook_url(b24.admin()),
                              "contacts": {"direction": "from_bitrix24", "every": 3600}}}),
        )
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.body["id"].as_str().unwrap().to_string();
    let kept = eventually(20, || async {
        let c = app.get(&format!("/api/v1/connectors/{id}")).await.body;
        // The first page's place is kept too; the batch after it is what is waited for.
        c["info"]["contacts_pull"]["after"].as_i64().filter(|a| *a > ids[49]).map(|after| (after, c))
    })
    .await
    .expect("the walk's place kept after the first batch");
    assert_eq!(kept.0, ids[2_549], "the place is the last id of the batch written: {}", kept.1);
    let count = |ext: String| {
        let app = &app;
        async move {
            app.get(&format!("/api/v1/contacts?external_id={ext}")).await.body["items"]
                .as_array()
                .map(Vec::len)
                .unwrap_or_default()
        }
    };
    eventually(60, || async { (count(format!("b24-{last}")).await == 1).then_some(()) }).await.unwrap_or_else(|| {
        panic!(
            "the walk did not finish once the budget was back: {:?}",
            b24.log().iter().rev().take(5).map(|c| (c.method.clone(), c.status)).collect::<Vec<_>>()
        )
    });
    let mut held = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app.get(&format!("/api/v1/contacts?limit=500{cursor}")).await.body;
        held.extend(
            page["items"].as_array().unwrap().iter().map(|c| c["external_id"].as_str().unwrap_or("").to_string()),
        );
        match page["next"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let distinct: std::collections::HashSet<&String> = held.iter().collect();
    assert_eq!((held.len(), distinct.len()), (2_600, 2_600), "every contact once");
    let methods: Vec<String> = b24.log().into_iter().map(|c| c.method).collect();
    let lists = methods.iter().filter(|m| *m == "crm.contact.list").count();
    assert_eq!(lists, 1, "the first page was read once, the walk went on by batch: {methods:?}");
    let c = app.get(&format!("/api/v1/connectors/{id}")).await.body;
    let place = &c["info"]["contacts_pull"];
    assert!(place.get("after").is_none(), "a finished walk keeps only its moment: {place}");
    assert!(place["since"].as_str().is_some_and(|s| s.contains('T')), "the portal's moment: {place}");
    assert_eq!(b24.over_limit(), 0);

    // One contact changed: "sync now" reads it, and only what changed since the walk began.
    b24.update_contact(last, json!({"NAME": "Последний"}));
    let before = b24.log().len();
    let synced = app.post(&format!("/api/v1/connectors/{id}/sync"), json!({})).await;
    assert!(synced.status < 300, "{synced:?}");
    eventually(20, || async {
        let c = app.get(&format!("/api/v1/contacts?external_id=b24-{last}")).await.body;
        (c["items"][0]["name"] == "Последний Портала").then_some(())
    })
    .await
    .expect("the change read");
    let after: Vec<String> = b24
        .log()
        .into_iter()
        .skip(before)
        .map(|c| c.method)
        .filter(|m| m.contains("contact") || m == "batch")
        .collect();
    assert_eq!(after, ["crm.contact.list"], "one page holds what changed since the walk began");
}

/// The portal's calls in the contact's history: the end of a call posted to okno brings its
/// record (the employee's name, the recording, how long), a missed call from a number nobody
/// has is a new contact's, each call a business event once.
#[tokio::test]
async fn call_records_from_the_portal_land_in_the_contacts_history() {
    let app = TestApp::spawn().await;
    let b24 = Bitrix24Sim::start().await;
    let installed = b24.install_app(b24.admin());
    let olga = b24.add_user("Ольга", "Операторова", "olga@romashka.ru");
    let anna =
        app.post("/api/v1/contacts", json!({"external_id": "1c-anna", "name": "Анна", "phone": "+79990001122"})).await;
    let anna_id = anna.body["id"].as_str().unwrap().to_string();
    let config = json!({"app": {"client_id": installed.client_id, "client_secret": installed.client_secret,
                                "rest_base": b24.rest_base(), "oauth_server": b24.oauth_server(),
                                "code": b24.auth_code(&installed.client_id)},
                        "application_token": installed.application_token, "calls": {}});
    let made = app.post("/api/v1/connectors", json!({"kind": "bitrix24", "name": "B24", "config": config})).await;
    assert_eq!(made.status, 201, "{made:?}");
    b24.add_call(Call {
        portal_user_id: olga,
        phone_number: "8 (999) 000-11-22".into(),
        call_type: 2,
        duration: 95,
        start_date: "2026-12-07T13:30:00+03:00".into(),
        failed_code: "200".into(),
        record_url: Some("https://romashka.bitrix24.ru/rec/42.mp3".into()),
        record_file_id: None,
        crm_entity: None,
    });
    b24.add_call(Call {
        portal_user_id: olga,
        phone_number: "+7 999 555-44-33".into(),
        call_type: 2,
        duration: 0,
        start_date: "2026-12-07T14:00:00+03:00".into(),
        failed_code: "304".into(),
        record_url: None,
        record_file_id: None,
        crm_entity: None,
    });
    let calls = eventually(20, || async {
        let items = app.get(&format!("/api/v1/contacts/{anna_id}/calls")).await.body["items"].as_array()?.clone();
        items.first().cloned()
    })
    .await
    .expect("the call in Anna's history");
    assert_eq!((calls["duration"].as_i64(), calls["status"].as_str()), (Some(95), Some("answered")), "{calls}");
    assert_eq!(calls["operator"], "Ольга Операторова");
    assert_eq!(calls["recording_url"], "https://romashka.bitrix24.ru/rec/42.mp3");
    assert_eq!(calls["direction"], "in");
    let stranger = eventually(20, || async {
        let s = app.get("/api/v1/contacts?phone=%2B79995554433").await.body["items"][0]["id"].as_str()?.to_string();
        Some(s)
    })
    .await
    .expect("a contact for the unknown number");
    let theirs = app.get(&format!("/api/v1/contacts/{stranger}/calls")).await.body;
    assert_eq!(theirs["items"][0]["status"], "missed", "{theirs}");
    // The pull on its schedule reads them again: still one each, one event each.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = app.get("/api/v1/events?limit=20").await.body;
    let types: Vec<&str> = events["items"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "call.answered").count(), 1, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "call.missed").count(), 1, "{types:?}");
    assert_eq!(app.get(&format!("/api/v1/contacts/{anna_id}/calls")).await.body["items"].as_array().unwrap().len(), 1);
}

/// The portal's contacts and okno's kept in step both ways over a webhook: the portal's arrive
/// as `b24-<id>` (a person okno met first claimed, not doubled), okno's are added to the portal
/// in batches and given their id, a change on either side reaches the other, nothing echoes,
/// and a burst of 120 contacts each way keeps to the bucket.
#[tokio::test]
async fn contacts_are_kept_in_step_with_bitrix24_both_ways_without_duplicates() {
    let app = TestApp::spawn().await;
    let b24 = Bitrix24Sim::start().await;
    let anna = b24.add_contact("Анна", "Покупатель", "+7 900 123-45-67", "anna@example.org");
    let boris = b24.add_contact("Борис", "", "+7 900 765-43-21", "boris@example.org");
    for n in 0..120 {
        b24.add_contact(&format!("Клиент{n}"), "Портала", &format!("+7 901 000-{:02}-{:02}", n / 100, n % 100), "");
    }
    let met = app.post("/api/v1/contacts", json!({"name": "Боря", "phone": "+79007654321"})).await;
    let boris_okno = met.body["id"].as_str().unwrap().to_string();
    let vera = app.post("/api/v1/contacts", json!({"name": "Вера", "email": "vera@example.org"})).await;
    let vera_id = vera.body["id"].as_str().unwrap().to_string();
    app.post("/api/v1/contacts", json!({"external_id": "tg-gleb", "name": "Глеб"})).await;
    for n in 0..120 {
        app.post("/api/v1/contacts", json!({"name": format!("Гость{n} Окно"), "phone": format!("+7902000{n:04}")}))
            .await;
    }
    let made = app
        .post(
            "/api/v1/connectors",
            json!({"kind": "bitrix24", "name": "B24",
                   "config": {"webhook_url": b24.webhook_url(b24.admin()), "contacts": {"every": 5}}}),
        )
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    let by_ext = |ext: String| {
        let app = &app;
        async move {
            app.get(&format!("/api/v1/contacts?external_id={ext}")).await.body["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    };
    eventually(40, || async {
        let a = by_ext(format!("b24-{anna}")).await;
        let b = by_ext(format!("b24-{boris}")).await;
        (a.len() == 1 && b.len() == 1).then_some(())
    })
    .await
    .expect("the portal's contacts in okno");
    let b = by_ext(format!("b24-{boris}")).await;
    assert_eq!(b[0]["id"], boris_okno, "Boris claimed, not doubled");
    assert_eq!(b[0]["name"], "Борис");
    let vera_b24 = eventually(40, || async {
        let v = app.get(&format!("/api/v1/contacts/{vera_id}")).await.body;
        v["external_id"].as_str().and_then(|x| x.strip_prefix("b24-")).and_then(|x| x.parse::<i64>().ok())
    })
    .await
    .expect("Vera added to the portal");
    let portal_contacts = |b24: &Bitrix24Sim| (1..5_000).filter_map(|i| b24.entity("CONTACT", i)).count();
    eventually(40, || async { (portal_contacts(&b24) == 2 + 120 + 1 + 120).then_some(()) })
        .await
        .expect("every okno contact with a phone or e-mail in the portal, nobody doubled, Gleb stayed in okno");
    let all = app.get("/api/v1/contacts?limit=500").await.body["items"].as_array().unwrap().len();
    assert_eq!(all, 2 + 120 + 1 + 1 + 120, "in okno: the portal's, Vera, Gleb and okno's guests");

    // A manager renames Anna; okno changes Vera's phone: each reaches the other side.
    b24.update_contact(anna, json!({"NAME": "Анна-Мария"}));
    let patched = app.patch(&format!("/api/v1/contacts/{vera_id}"), json!({"phone": "+79005556677"})).await;
    assert_eq!(patched.status, 200, "{patched:?}");
    eventually(30, || async {
        (by_ext(format!("b24-{anna}")).await.first()?["name"] == "Анна-Мария Покупатель").then_some(())
    })
    .await
    .expect("the portal's change in okno");
    eventually(30, || async {
        let v = b24.entity("CONTACT", vera_b24)?;
        let phones = v.get("PHONE")?.as_array()?.clone();
        (phones.len() == 1 && phones[0]["VALUE"] == "+79005556677").then_some(())
    })
    .await
    .expect("okno's change in the portal, the phone changed in place");
    // Two more looks: nothing new written either way.
    let portal = |b24: &Bitrix24Sim| {
        (1..5_000)
            .filter_map(|i| b24.entity("CONTACT", i).map(|c| (i, field(&c, "DATE_MODIFY"), field(&c, "NAME"))))
            .collect::<Vec<_>>()
    };
    let before = portal(&b24);
    let okno_before = app.get("/api/v1/contacts?limit=500").await.body;
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(portal(&b24), before, "no write to the portal without a change");
    assert_eq!(app.get("/api/v1/contacts?limit=500").await.body, okno_before, "nor to okno");
    assert_eq!(b24.over_limit(), 0, "okno kept the portal's bucket");
}

/// Rules act in Bitrix24 (a payment: a timeline comment on its deal, a field set, the deal won)
/// and a `task` action is refused for Bitrix24 when the rule is saved; a smart-process item
/// moved to a configured stage (the portal's outgoing webhook) is a business event once.
#[tokio::test]
async fn rules_act_on_a_bitrix24_deal_and_a_smart_process_stage_is_an_event() {
    let app = TestApp::spawn().await;
    let b24 = Bitrix24Sim::start().await;
    let config = json!({"webhook_url": b24.webhook_url(b24.admin()),
                        "tasks": [{"stage_id": "DT180_3:PREPARATION", "entity_type_id": 180, "event": "bitrix24.item.stage"}]});
    let made = app.post("/api/v1/connectors", json!({"kind": "bitrix24", "name": "B24", "config": config})).await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.body["id"].as_str().unwrap().to_string();
    let hook = address(&app, &made.body);
    let token = b24.outgoing_webhook("ONCRMDYNAMICITEMUPDATE", &hook);
    let patched = app.patch(&format!("/api/v1/connectors/{id}"), json!({"config": {"application_token": token}})).await;
    assert_eq!(patched.status, 200, "{patched:?}");

    let task = app
        .post(
            "/api/v1/rules",
            json!({"name": "x", "event": "payment.received",
                   "actions": [{"connector": id, "do": "task", "deal": "1", "text": "Позвонить"}]}),
        )
        .await;
    assert_eq!((task.status, task.code()), (400, "invalid_rule"), "{task:?}");
    let rule = json!({"name": "Оплата в Битрикс24", "event": "payment.received", "actions": [
        {"connector": id, "do": "note", "deal": "{{ data.deal_id }}", "text": "Оплата {{ data.amount }} ₽ получена"},
        {"connector": id, "do": "field", "deal": "{{ data.deal_id }}", "field": "UF_CRM_PAID", "value": "{{ data.amount }}"},
        {"connector": id, "do": "stage", "deal": "{{ data.deal_id }}", "stage": "WON"}]});
    let put = app.post("/api/v1/rules", rule).await;
    assert_eq!(put.status, 201, "{put:?}");
    let deal = b24.add_deal("Заказ 1042", None, b24.admin());
    let ev = app
        .post(
            "/api/v1/events",
            json!({"type": "payment.received", "key": "pay-1042", "data": {"deal_id": deal, "amount": 15000}}),
        )
        .await;
    assert_eq!(ev.status, 202, "{ev:?}");
    let done = eventually(15, || async {
        let d = b24.entity("DEAL", deal)?;
        (field(&d, "STAGE_ID") == "WON" && !b24.timeline_comments().is_empty()).then_some(d)
    })
    .await
    .expect("the rule's actions reached the portal");
    assert_eq!(field(&done, "UF_CRM_PAID"), "15000");
    let comment = &b24.timeline_comments()[0];
    assert_eq!(comment["COMMENT"], "Оплата 15000 ₽ получена");
    assert_eq!(field(comment.as_object().unwrap(), "ENTITY_TYPE").to_ascii_lowercase(), "deal");

    let item = b24.add_item(180, "Заявка на монтаж", "DT180_3:NEW");
    b24.update_item(180, item, json!({"stageId": "DT180_3:PREPARATION"}));
    b24.update_item(180, item, json!({"title": "Заявка на монтаж, срочно"}));
    let events = eventually(15, || async {
        let items = app.get("/api/v1/events?limit=50").await.body["items"].as_array()?.clone();
        let staged: Vec<Value> = items.into_iter().filter(|e| e["type"] == "bitrix24.item.stage").collect();
        (!staged.is_empty()).then_some(staged)
    })
    .await
    .expect("the item's stage as an event");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = app.get("/api/v1/events?limit=50").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "bitrix24.item.stage")
        .count();
    assert_eq!(again, 1, "once per item and stage, however often the portal posts");
    assert_eq!(events[0]["data"]["item_id"], json!(item));
    assert_eq!(events[0]["data"]["entity_type_id"], json!(180));
}
