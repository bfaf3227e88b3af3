//! Connectors to business systems end to end. Seed 004 against the amoCRM simulator from
//! configuration alone: a manager moves a deal to "find an executor", okno posts the task to
//! the couriers' Telegram group (the client's details kept for the executor), the one courier
//! who takes it becomes the deal's responsible user, a note says who and when, and the deal
//! moves on. Also: the token checked when connecting, never shown, a wrong hook secret
//! refused, amoCRM's repeated hook acted on once, and a revoked token on the connector's status.

use std::time::Duration;

use okno_amocrm_sim::AmoSim;
use okno_testkit::telegram::TelegramSim;
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Value};

const TOKEN: &str = "424242:amo-test-token";
const GROUP: i64 = -100_404;
/// The pipeline's stages in the simulator: 10 new, 20 "find an executor", 30 "in delivery".
const FIND: i64 = 20;
const IN_DELIVERY: i64 = 30;

#[tokio::test]
async fn seed_004_a_deal_at_a_stage_becomes_a_task_and_its_executor_is_written_back() {
    let app = TestApp::spawn().await;
    let tg = TelegramSim::start().await;
    tg.add_bot(TOKEN, "amo_tasks_bot");
    let ch = app.telegram_channel(&tg, TOKEN, "polling").await;
    let group = tg.group(TOKEN, GROUP, "Курьеры");

    let amo = AmoSim::start("romashka").await;
    let manager = amo.add_user("Ольга Менеджер", "olga@romashka.ru");
    let courier_user = amo.add_user("Пётр Курьеров", "petr@romashka.ru");
    let token = amo.add_token(manager);
    amo.retry_pace(Duration::from_millis(100));

    // A wrong token is refused, and nothing is kept.
    let mut config = json!({"api_base": amo.api_base(), "token": "wrong",
        "tasks": [{"status_id": FIND, "channel_id": ch, "chat_id": GROUP.to_string(), "group": "Курьеры",
                   "taken_status_id": IN_DELIVERY}]});
    let refused = app.post("/api/v1/connectors", json!({"kind": "amocrm", "name": "amoCRM", "config": config})).await;
    assert_eq!((refused.status, refused.code()), (400, "invalid_credentials"), "{refused:?}");
    assert!(app.get("/api/v1/connectors").await.body["items"].as_array().unwrap().is_empty());
    let unbuilt = app.post("/api/v1/connectors", json!({"kind": "onec", "name": "1C", "config": {}})).await;
    assert_eq!(unbuilt.code(), "unsupported_kind", "{unbuilt:?}");

    config["token"] = json!(token);
    let made = app.post("/api/v1/connectors", json!({"kind": "amocrm", "name": "amoCRM", "config": config})).await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.body["id"].as_str().unwrap().to_string();
    assert_eq!(made.body["info"]["subdomain"], "romashka");
    let shown = app.get(&format!("/api/v1/connectors/{id}")).await.body;
    assert!(!shown.to_string().contains(&token), "the token is never shown: {shown}");
    assert!(shown.get("config").is_none());

    // okno subscribed its own address to deals' moves; a wrong secret in it is refused.
    let hooks = amo.log().iter().filter(|(m, p, _)| m == "POST" && p == "/api/v4/webhooks").count();
    assert_eq!(hooks, 1, "okno subscribed itself");
    let wrong = app
        .http
        .post(format!("{}/hooks/connectors/{id}/not-the-secret", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("leads[status][0][id]=1&leads[status][0][status_id]=20")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // The courier: an okno contact named by their amoCRM user, in the group, linked to Telegram.
    let courier = app
        .post(
            "/api/v1/contacts",
            json!({"external_id": format!("amo-user-{courier_user}"), "name": "Пётр Курьеров", "groups": ["Курьеры"]}),
        )
        .await;
    let courier_id = courier.body["id"].as_str().unwrap().to_string();
    let link = app.post(&format!("/api/v1/contacts/{courier_id}/link"), json!({})).await;
    let petr = tg.user(TOKEN, 9101, "Petr").with_username("petr_k");
    petr.send_text(&format!("/start {}", link.body["code"].as_str().unwrap()));
    eventually(10, || async {
        let c = app.get(&format!("/api/v1/contacts/{courier_id}")).await;
        c.body["identities"].as_array().is_some_and(|i| !i.is_empty()).then_some(())
    })
    .await
    .expect("Petr's Telegram linked");

    // The manager moves a deal to "find an executor": the task is in the group.
    let buyer = amo.add_contact("Анна Покупатель", "+7 900 123-45-67", "anna@example.org");
    let lead = amo.add_lead("Букет к 18:00, ул. Ленина 5", 4500, manager, Some(buyer));
    amo.move_lead(lead, FIND, manager);
    let task = eventually(15, || async {
        let t = app.get("/api/v1/tasks?limit=10").await.body["items"].as_array()?.first()?.clone();
        Some(t)
    })
    .await
    .expect("a task from the deal");
    assert_eq!(task["title"], "Букет к 18:00, ул. Ленина 5");
    assert_eq!(task["group"], "Курьеры");
    let post = tg.sent_to(TOKEN, GROUP).into_iter().find(|s| s.method == "sendMessage").expect("posted to the group");
    let text = post.plain.clone().unwrap_or_default();
    assert!(text.contains("4500") && !text.contains("+7 900"), "the sum in the group, the phone not: {text}");
    assert_eq!(amo.hooks().first().map(|h| h.attempts.clone()), Some(vec![200]), "answered inside amoCRM's 2 s");

    // amoCRM says it again (its retry after a lost answer): still one task.
    amo.move_lead(lead, FIND, manager);
    eventually(10, || async { (amo.hooks().len() == 2 && amo.hooks()[1].delivered()).then_some(()) }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.get("/api/v1/tasks?limit=10").await.body["items"].as_array().unwrap().len(), 1);

    // Petr takes it: he is the deal's responsible user, a note says so, the deal moves on.
    let task_id = task["id"].as_str().unwrap();
    group.press(&petr, post.message_id, &format!("task:take:{task_id}"));
    let written = eventually(15, || async {
        let l = amo.lead(lead);
        (l.responsible_user_id == courier_user && !amo.notes(lead).is_empty()).then_some(l)
    })
    .await
    .expect("the executor written back to amoCRM");
    assert_eq!(written.status_id, IN_DELIVERY);
    assert_eq!(written.updated_by, 0, "okno's change is a robot's");
    let note = &amo.notes(lead)[0].text;
    assert!(note.contains("Petr (@petr_k)") && note.contains("Букет к 18:00"), "{note}");
    // Every call into amoCRM is in the audit journal with its outcome.
    let journal = app.get("/api/v1/audit?limit=100").await.body;
    let actions: Vec<&str> = journal["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == format!("connector:{id}"))
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in ["amocrm.lead.read", "amocrm.lead.update", "amocrm.note.add"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    // A task made through the API that names the connector and the deal is not the
    // connector's: taking it writes nothing to amoCRM.
    let forged = app
        .post(
            "/api/v1/tasks",
            json!({"channel_id": ch, "chat_id": GROUP.to_string(), "title": "Подделка", "text": "",
                   "data": {"connector": id, "amocrm": {"lead_id": lead, "status_id": FIND}}}),
        )
        .await;
    assert_eq!(forged.status, 201, "{forged:?}");
    let forged_post = tg.sent_to(TOKEN, GROUP).into_iter().rfind(|s| s.method == "sendMessage").unwrap();
    group.press(&petr, forged_post.message_id, &format!("task:take:{}", forged.body["id"].as_str().unwrap()));
    eventually(10, || async {
        let t = app.get(&format!("/api/v1/tasks/{}", forged.body["id"].as_str().unwrap())).await.body;
        (t["status"] == "claimed").then_some(())
    })
    .await
    .expect("the forged task taken");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(amo.notes(lead).len(), 1, "no second note from a task the connector did not post");

    // The client's details went to Petr alone.
    let private = eventually(10, || async {
        tg.sent_to(TOKEN, 9101).into_iter().find(|s| s.plain.as_deref().is_some_and(|t| t.contains("+7 900 123-45-67")))
    })
    .await;
    assert!(private.is_some(), "the executor gets the client's phone privately");

    // The token is revoked in amoCRM: the next deal's task fails, and the connector says why.
    amo.revoke(&token);
    let lead2 = amo.add_lead("Второй букет", 3000, manager, None);
    amo.move_lead(lead2, FIND, manager);
    let status: Value = eventually(15, || async {
        let c = app.get(&format!("/api/v1/connectors/{id}")).await.body;
        (c["status"] == "error").then_some(c)
    })
    .await
    .expect("the refused token shows on the connector");
    assert!(status["status_detail"].as_str().unwrap().contains("401"), "{status}");
    // … and on the administrators' page, with the calls okno made and how they ended.
    {
        use crate::ui::{operator, Client, PASSWORD};
        operator(&app, "admin", okno_domain::model::Role::Admin).await;
        let mut c = Client::new(&app);
        assert_eq!(c.login("admin", PASSWORD).await.status, 303);
        let page = c.get("/ui/admin/connectors").await.body;
        assert!(page.contains(&format!("id=\"connector-detail-{id}\"")) && page.contains("401"), "{page}");
        assert!(page.contains("amocrm.note.add") && page.contains("romashka"), "{page}");
    }
    // A new token through PATCH (the rest of the configuration kept) clears it.
    let fresh = amo.add_token(manager);
    let patched = app.patch(&format!("/api/v1/connectors/{id}"), json!({"config": {"token": fresh}})).await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.body["status"], "active");
    let after = app.get(&format!("/api/v1/connectors/{id}")).await;
    assert_eq!(after.body["status"], "active");
    // The deal moved while the token was refused was kept waiting, not lost: it is a task now.
    let caught_up = eventually(30, || async {
        let items = app.get("/api/v1/tasks?limit=10").await.body["items"].as_array()?.clone();
        items.iter().any(|t| t["title"] == "Второй букет").then_some(())
    })
    .await;
    assert!(caught_up.is_some(), "the held deal caught up once the token was replaced");
    let deleted = app.delete(&format!("/api/v1/connectors/{id}")).await;
    assert_eq!(deleted.status, 204);
}

/// amoCRM over OAuth: the administrator's authorization code exchanged when connecting (a used
/// or wrong one refused), the access token refreshed before it ends — the rotating refresh
/// token kept each time — and the deals still becoming tasks.
#[tokio::test]
async fn an_oauth_connector_exchanges_its_code_and_refreshes_its_tokens() {
    let app = TestApp::spawn().await;
    let tg = TelegramSim::start().await;
    tg.add_bot(TOKEN, "amo_oauth_bot");
    let ch = app.telegram_channel(&tg, TOKEN, "polling").await;
    tg.group(TOKEN, GROUP, "Курьеры");
    let amo = AmoSim::start("romashka").await;
    let manager = amo.add_user("Ольга Менеджер", "olga@romashka.ru");
    amo.add_integration("okno-integration", "integration-secret");
    // Access tokens that end within okno's refresh margin: every job refreshes first.
    amo.access_ttl(Duration::from_secs(60));
    let oauth = |code: &str| {
        json!({"client_id": "okno-integration", "client_secret": "integration-secret",
               "redirect_uri": "https://okno.example/amocrm", "code": code})
    };
    let config = |code: &str| {
        json!({"api_base": amo.api_base(), "oauth": oauth(code),
               "tasks": [{"status_id": FIND, "channel_id": ch, "chat_id": GROUP.to_string()}]})
    };
    let wrong =
        app.post("/api/v1/connectors", json!({"kind": "amocrm", "name": "amoCRM", "config": config("nope")})).await;
    assert_eq!((wrong.status, wrong.code()), (400, "invalid_credentials"), "{wrong:?}");
    let code = amo.auth_code("okno-integration", manager);
    let made =
        app.post("/api/v1/connectors", json!({"kind": "amocrm", "name": "amoCRM", "config": config(&code)})).await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.body["id"].as_str().unwrap().to_string();
    let again =
        app.post("/api/v1/connectors", json!({"kind": "amocrm", "name": "amoCRM 2", "config": config(&code)})).await;
    assert_eq!(again.code(), "invalid_credentials", "a code works once: {again:?}");

    for n in 1..=2 {
        let lead = amo.add_lead(&format!("Заказ {n}"), 1000, manager, None);
        amo.move_lead(lead, FIND, manager);
        eventually(15, || async {
            let items = app.get("/api/v1/tasks?limit=10").await.body["items"].as_array()?.clone();
            (items.len() == n).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("deal {n} became a task"));
    }
    assert!(amo.refreshes() >= 2, "each job found its token near its end and refreshed it: {}", amo.refreshes());
    assert_eq!(app.get(&format!("/api/v1/connectors/{id}")).await.body["status"], "active");
    let journal = app.get("/api/v1/audit?limit=100").await.body;
    let refreshed = journal["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "amocrm.oauth.refresh" && e["detail"]["outcome"] == "ok")
        .count();
    assert!(refreshed >= 2, "{journal}");
}
