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
    let unknown = app.post("/api/v1/connectors", json!({"kind": "sap", "name": "SAP", "config": {}})).await;
    assert_eq!(unknown.status, 400, "{unknown:?}");

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

/// amoCRM connected from the administrators' page (the same checks as the API: a wrong token
/// refused with the form kept, the token never shown), then rules that act in amoCRM: a
/// payment adds a note to its deal, sets the deal's "paid" field, moves it to the next stage
/// and gives the manager a task — no message sent. A rule naming no connector is refused, a
/// deal id that is not a number shows on the connector, and the page disconnects it.
#[tokio::test]
async fn a_connector_made_on_the_admin_page_carries_a_rules_actions_into_amocrm() {
    use crate::ui::{hidden, operator, Client, PASSWORD};
    let app = TestApp::spawn().await;
    let amo = AmoSim::start("romashka").await;
    let manager = amo.add_user("Ольга Менеджер", "olga@romashka.ru");
    let token = amo.add_token(manager);
    operator(&app, "admin", okno_domain::model::Role::Admin).await;
    let mut c = Client::new(&app);
    assert_eq!(c.login("admin", PASSWORD).await.status, 303);
    let page = c.get("/ui/admin/connectors").await;
    assert!(page.body.contains("id=\"connector-form-amocrm\""), "{}", page.body);
    let csrf = hidden(&page.body, "csrf");
    let api_base = amo.api_base();
    let form = |token: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf", csrf.clone()),
            ("kind", "amocrm".into()),
            ("name", "Ромашка".into()),
            ("api_base", api_base.clone()),
            ("token", token.into()),
        ]
    };
    let refused = c.post_owned("/ui/admin/connectors", &form("wrong-token")).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("id=\"connector-error\"") && refused.body.contains("value=\"Ромашка\""),
        "the form kept: {}",
        refused.body
    );
    assert!(!refused.body.contains("wrong-token"), "a token is never shown back");
    let mut right = form("");
    right[4].1 = token.clone();
    let made = c.post_owned("/ui/admin/connectors", &right).await;
    assert_eq!(made.status, 303, "{}", made.body);
    let listed = app.get("/api/v1/connectors").await.body;
    let id = listed["items"][0]["id"].as_str().expect("the connector made from the page").to_string();
    assert_eq!(listed["items"][0]["name"], "Ромашка");

    let lead = amo.add_lead("Заказ 1042", 15_000, manager, None);
    let (paid, _) = amo.add_lead_field("Оплачено", "numeric", &[]);
    let nobody = app
        .post(
            "/api/v1/rules",
            json!({"name": "x", "event": "payment.received",
            "actions": [{"connector": "no-such", "do": "note", "deal": "1", "text": "x"}]}),
        )
        .await;
    assert_eq!((nobody.status, nobody.code()), (400, "invalid_rule"), "{nobody:?}");
    let rule = json!({"name": "Оплата в amoCRM", "event": "payment.received", "actions": [
        {"connector": id, "do": "note", "deal": "{{ data.lead_id }}", "text": "Оплата {{ data.amount }} ₽ получена"},
        {"connector": id, "do": "field", "deal": "{{ data.lead_id }}", "field": paid.to_string(), "value": "{{ data.amount }}"},
        {"connector": id, "do": "stage", "deal": "{{ data.lead_id }}", "stage": "30"},
        {"connector": id, "do": "task", "deal": "{{ data.lead_id }}", "text": "Отгрузить заказ {{ data.order }}",
         "due": "4h", "responsible": "{{ data.manager }}"}]});
    let put = app.post("/api/v1/rules", rule).await;
    assert_eq!(put.status, 201, "{put:?}");
    let ev = app
        .post(
            "/api/v1/events",
            json!({"type": "payment.received", "key": "pay-1042",
            "data": {"lead_id": lead, "amount": 15000, "order": "1042", "manager": manager}}),
        )
        .await;
    assert_eq!(ev.status, 202, "{ev:?}");
    let done = eventually(15, || async {
        let l = amo.lead(lead);
        (l.status_id == 30 && !amo.notes(lead).is_empty() && !amo.tasks().is_empty()).then_some(l)
    })
    .await
    .expect("the rule's actions reached amoCRM");
    assert_eq!(amo.notes(lead)[0].text, "Оплата 15000 ₽ получена");
    assert_eq!(done.status_id, 30);
    let fields = amo.lead_fields(lead);
    assert_eq!(
        fields.get(&paid).and_then(|v| v.first()).map(|v| v["value"].clone()),
        Some(json!("15000")),
        "amoCRM keeps numbers as text: {fields:?}"
    );
    let task = &amo.tasks()[0];
    assert_eq!((task.entity_id, task.responsible_user_id, task.text.as_str()), (lead, manager, "Отгрузить заказ 1042"));
    let now = okno_domain::time::now_ms() / 1000;
    assert!((task.complete_till - (now + 4 * 3600)).abs() < 120, "due in four hours: {}", task.complete_till);
    // The same event again changes nothing more.
    let again = app
        .post("/api/v1/events", json!({"type": "payment.received", "key": "pay-1042", "data": {"lead_id": lead}}))
        .await;
    assert_eq!(again.body["duplicate"], true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(amo.notes(lead).len(), 1);

    // A deal id that renders to no number: refused, shown on the connector, nothing lost
    // silently.
    app.post(
        "/api/v1/events",
        json!({"type": "payment.received", "key": "pay-x",
        "data": {"lead_id": "abc", "amount": 1, "order": "x", "manager": manager}}),
    )
    .await;
    let status = eventually(15, || async {
        let c = app.get(&format!("/api/v1/connectors/{id}")).await.body;
        (c["status"] == "error").then_some(c)
    })
    .await
    .expect("the refusal on the connector");
    assert!(status["status_detail"].as_str().unwrap().contains("`abc`"), "{status}");

    let page = c.get("/ui/admin/connectors").await;
    assert!(page.body.contains("amocrm.task.add") && page.body.contains(&format!("connector-token-{id}")));
    let csrf = hidden(&page.body, "csrf");
    let gone = c.post(&format!("/ui/admin/connectors/{id}/delete"), &[("csrf", csrf.as_str())]).await;
    assert_eq!(gone.status, 303);
    assert!(app.get("/api/v1/connectors").await.body["items"].as_array().unwrap().is_empty());
}

/// A company's own PBX connected as a connector: its calls posted signed (an unsigned or
/// forged post refused, a malformed call named), stored under the caller's contact before
/// the answer, a call reported at its start and again at its end kept as one, a number nobody
/// has given a contact, each call a business event rules can act on, and the calls on the
/// contact's card with the recording link.
#[tokio::test]
async fn a_pbx_posts_its_calls_into_the_callers_history() {
    use crate::ui::{operator, Client, PASSWORD};
    let app = TestApp::spawn().await;
    let short = app
        .post("/api/v1/connectors", json!({"kind": "pbx", "name": "Asterisk", "config": {"signing_secret": "short"}}))
        .await;
    assert_eq!((short.status, short.code()), (400, "invalid_connector_config"), "{short:?}");
    let secret = "pbx-signing-secret-42";
    let made = app
        .post("/api/v1/connectors", json!({"kind": "pbx", "name": "Asterisk", "config": {"signing_secret": secret}}))
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    let address = made.body["info"]["address"].as_str().expect("the address to give the PBX").to_string();
    assert!(!made.body.to_string().contains(secret), "the signing secret is never shown");
    let address = address.replace(&app.running().public_url, &app.url);
    let anna =
        app.post("/api/v1/contacts", json!({"external_id": "1c-anna", "name": "Анна", "phone": "+79990001122"})).await;
    let anna_id = anna.body["id"].as_str().unwrap().to_string();
    let post = |body: Value, sign: Option<&str>| {
        let body = body.to_string();
        let mut req = app.http.post(&address).header("content-type", "application/json");
        if let Some(s) = sign {
            req = req.header("x-okno-signature", okno_domain::signing::sign(s.as_bytes(), body.as_bytes()));
        }
        req.body(body).send()
    };
    let start = json!({"call_id": "1733565000.42", "direction": "in", "status": "answered", "phone": "8 (999) 000-11-22",
                       "operator": "101", "started_at": "2026-12-07T10:30:00Z"});
    assert_eq!(post(start.clone(), None).await.unwrap().status(), 401, "unsigned");
    assert_eq!(post(start.clone(), Some("not-the-secret-at-all")).await.unwrap().status(), 401, "forged");
    let bad = post(json!({"call_id": "x", "direction": "in", "status": "answered", "phone": "nope", "started_at": "2026-12-07T10:30:00Z"}), Some(secret)).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("phone"), "the error names the field");
    assert_eq!(post(start.clone(), Some(secret)).await.unwrap().status(), 200);
    let mut end = start.clone();
    end["duration"] = json!(95);
    end["recording_url"] = json!("https://pbx.example/rec/1733565000.42.mp3");
    assert_eq!(post(end, Some(secret)).await.unwrap().status(), 200);
    // Kept before the answer: it is there at once.
    let calls = app.get(&format!("/api/v1/contacts/{anna_id}/calls")).await.body;
    let items = calls["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one call reported twice: {calls}");
    assert_eq!((items[0]["duration"].as_i64(), items[0]["status"].as_str()), (Some(95), Some("answered")));
    assert_eq!(items[0]["recording_url"], "https://pbx.example/rec/1733565000.42.mp3");
    assert_eq!(items[0]["operator"], "101");

    let missed = json!({"calls": [{"call_id": "1733565999.7", "direction": "in", "status": "missed", "phone": "+79995554433",
                                   "started_at": "2026-12-07T11:00:00Z"}]});
    assert_eq!(post(missed, Some(secret)).await.unwrap().status(), 200);
    let stranger = app.get("/api/v1/contacts?phone=%2B79995554433").await.body;
    let stranger_id = stranger["items"][0]["id"].as_str().expect("a contact for the unknown number").to_string();
    assert_eq!(app.get(&format!("/api/v1/contacts/{stranger_id}/calls")).await.body["items"][0]["status"], "missed");
    let events = app.get("/api/v1/events?limit=20").await.body;
    let types: Vec<&str> = events["items"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "call.answered").count(), 1, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "call.missed").count(), 1, "{types:?}");

    operator(&app, "admin", okno_domain::model::Role::Admin).await;
    let mut c = Client::new(&app);
    assert_eq!(c.login("admin", PASSWORD).await.status, 303);
    let card = c.get(&format!("/ui/contacts/{anna_id}")).await.body;
    assert!(
        card.contains("id=\"contact-calls\"") && card.contains("1:35") && card.contains("1733565000.42.mp3"),
        "{card}"
    );
    let page = c.get("/ui/admin/connectors").await.body;
    // The address to give the PBX is on the page (HTML-escaped there).
    let id = made.body["id"].as_str().unwrap();
    assert!(page.contains("connector-form-pbx") && page.contains(&format!("id=\"connector-address-{id}\"")), "{page}");
}

/// amoCRM's contacts and okno's kept in step both ways: amoCRM's arrive as `amo-<id>`, a
/// person okno met first (same phone) is claimed rather than doubled, okno's own contacts are
/// added to amoCRM in batches and given their amoCRM id, a change on either side reaches the
/// other (amoCRM's at once through its webhook), nothing echoes back, and okno never went past
/// amoCRM's 7 calls a second.
#[tokio::test]
async fn contacts_are_kept_in_step_with_amocrm_both_ways_without_duplicates() {
    let app = TestApp::spawn().await;
    let amo = AmoSim::start("romashka").await;
    let manager = amo.add_user("Ольга Менеджер", "olga@romashka.ru");
    let token = amo.add_token(manager);
    let anna = amo.add_contact("Анна Покупатель", "+7 900 123-45-67", "anna@example.org");
    let boris = amo.add_contact("Борис", "+7 900 765-43-21", "boris@example.org");
    // Boris wrote to okno first, from his phone: the same person.
    let met = app.post("/api/v1/contacts", json!({"name": "Боря", "phone": "+79007654321"})).await;
    let boris_okno = met.body["id"].as_str().unwrap().to_string();
    // Vera is okno's alone; Gleb has no phone or e-mail and stays in okno.
    let vera = app.post("/api/v1/contacts", json!({"name": "Вера", "email": "vera@example.org"})).await;
    let vera_id = vera.body["id"].as_str().unwrap().to_string();
    app.post("/api/v1/contacts", json!({"external_id": "tg-gleb", "name": "Глеб"})).await;

    let made = app
        .post(
            "/api/v1/connectors",
            json!({"kind": "amocrm", "name": "amoCRM",
            "config": {"api_base": amo.api_base(), "token": token, "contacts": {"every": 5}}}),
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
    eventually(30, || async {
        let a = by_ext(format!("amo-{anna}")).await;
        let b = by_ext(format!("amo-{boris}")).await;
        (a.len() == 1 && b.len() == 1).then_some(())
    })
    .await
    .expect("amoCRM's contacts in okno");
    let b = by_ext(format!("amo-{boris}")).await;
    assert_eq!(b[0]["id"], boris_okno, "Boris claimed, not doubled");
    assert_eq!(b[0]["name"], "Борис", "amoCRM's name for him");
    let a = by_ext(format!("amo-{anna}")).await;
    assert_eq!((a[0]["phone"].as_str(), a[0]["email"].as_str()), (Some("+79001234567"), Some("anna@example.org")));
    // Vera went to amoCRM and came back with her id.
    let vera_amo = eventually(30, || async {
        let v = app.get(&format!("/api/v1/contacts/{vera_id}")).await.body;
        v["external_id"].as_str().and_then(|x| x.strip_prefix("amo-")).and_then(|x| x.parse::<i64>().ok())
    })
    .await
    .expect("Vera added to amoCRM");
    assert_eq!(amo.contact(vera_amo).emails[0].0, "vera@example.org");
    assert_eq!(amo.contacts().len(), 3, "Anna, Boris and Vera — nobody doubled, Gleb stayed in okno");

    // A manager renames Anna in amoCRM: the webhook brings it at once.
    amo.advance(2);
    amo.update_contact(anna, "Анна Петрова", None, None, manager);
    eventually(10, || async {
        (by_ext(format!("amo-{anna}")).await.first()?["name"] == "Анна Петрова").then_some(())
    })
    .await
    .expect("amoCRM's change in okno");
    // okno changes Vera's phone: it reaches amoCRM at the next look.
    let patched = app.patch(&format!("/api/v1/contacts/{vera_id}"), json!({"phone": "+79005556677"})).await;
    assert_eq!(patched.status, 200, "{patched:?}");
    eventually(20, || async { (amo.contact(vera_amo).phones.first()?.0 == "+79005556677").then_some(()) })
        .await
        .expect("okno's change in amoCRM");
    // Two more looks: nothing new is written either way (no echoes).
    let writes = |amo: &AmoSim| amo.log().iter().filter(|(m, p, _)| m != "GET" && p == "/api/v4/contacts").count();
    let before = writes(&amo);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(writes(&amo), before, "no write without a change");
    assert_eq!(amo.contacts().len(), 3);
    let all = app.get("/api/v1/contacts?limit=100").await.body["items"].as_array().unwrap().len();
    assert_eq!(all, 4, "Anna, Boris, Vera and Gleb in okno");
    assert!(amo.peak_per_second() <= 7, "okno kept amoCRM's limit: {}", amo.peak_per_second());
}

/// okno as amoCRM's chat channel (the Chats API): a person writing to okno's Telegram bot
/// appears in amoCRM's chats; an amoCRM user's answer, posted once by amojo with its 5 s
/// deadline, is acknowledged in time, reaches the person's Telegram and is reported
/// delivered; a forged answer is refused, and a second message lands in the same chat.
#[tokio::test]
async fn amocrm_users_answer_okno_conversations_in_amocrm_chats() {
    let app = TestApp::spawn().await;
    let tg = TelegramSim::start().await;
    tg.add_bot(TOKEN, "amo_chats_bot");
    let ch = app.telegram_channel(&tg, TOKEN, "polling").await;
    let amo = AmoSim::start("romashka").await;
    let manager = amo.add_user("Ольга Менеджер", "olga@romashka.ru");
    let token = amo.add_token(manager);
    let channel_id = "3f2a9c4e-5b6d-4e8f-9a0b-1c2d3e4f5a6b";
    amo.add_channel(channel_id, "chan-secret-42", &format!("{}/hooks/amojo/:scope_id", app.url));
    let chats = json!({"channel_id": channel_id, "secret": "chan-secret-42", "account_id": amo.amojo_id(),
                       "amojo_base": amo.amojo_base(), "channels": [ch], "title": "okno"});
    let mut wrong = chats.clone();
    wrong["secret"] = json!("not-the-secret");
    let refused = app
        .post(
            "/api/v1/connectors",
            json!({"kind": "amocrm", "name": "amoCRM",
            "config": {"api_base": amo.api_base(), "token": token, "chats": wrong}}),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (400, "invalid_credentials"), "{refused:?}");
    let made = app
        .post(
            "/api/v1/connectors",
            json!({"kind": "amocrm", "name": "amoCRM",
            "config": {"api_base": amo.api_base(), "token": token, "chats": chats}}),
        )
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    let scope = amo.scope_id(channel_id).expect("the channel connected to the account");

    let ivan = tg.user(TOKEN, 7701, "Иван");
    ivan.send_text("Здравствуйте, где мой заказ?");
    let conv = eventually(20, || async {
        let c = amo.conversations().into_iter().next()?;
        amo.chat_messages(&c.conversation_id).iter().any(|m| m.text == "Здравствуйте, где мой заказ?").then_some(c)
    })
    .await
    .expect("the person's message in amoCRM's chats");
    assert_eq!(conv.person.name, "Иван");
    let okno_conv = app.get("/api/v1/conversations").await.body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(conv.conversation_id, okno_conv, "okno's conversation is amoCRM's chat");

    let hook = amo.user_reply(&conv.conversation_id, "Заказ приедет завтра до 12:00").await;
    assert!(hook.acknowledged && hook.status == Some(200), "answered inside amojo's 5 s: {hook:?}");
    let sent = eventually(15, || async {
        tg.sent_to(TOKEN, 7701).into_iter().find(|s| s.text.as_deref() == Some("Заказ приедет завтра до 12:00"))
    })
    .await;
    assert!(sent.is_some(), "the answer reached the person's Telegram");
    let thread = app.get(&format!("/api/v1/conversations/{okno_conv}/messages")).await.body;
    let out = thread["items"].as_array().unwrap().iter().find(|m| m["direction"] == "out").cloned().unwrap();
    assert!(out["author"].as_str().unwrap().starts_with("amoCRM: "), "{out}");
    let reported = eventually(15, || async {
        amo.chat_messages(&conv.conversation_id)
            .iter()
            .any(|m| m.msgid == hook.msgid && m.statuses.iter().any(|s| s.status == 1))
            .then_some(())
    })
    .await;
    if reported.is_none() {
        let journal = app.get("/api/v1/audit?limit=50").await.body;
        panic!("the delivery reported to amoCRM: {journal}");
    }

    let forged = app
        .http
        .post(format!("{}/hooks/amojo/{scope}", app.url))
        .header("x-signature", "00")
        .body(hook.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    ivan.send_text("Спасибо!");
    eventually(20, || async {
        amo.chat_messages(&conv.conversation_id).iter().any(|m| m.text == "Спасибо!").then_some(())
    })
    .await
    .expect("the next message in the same chat");
    assert_eq!(amo.conversations().len(), 1);
    let outs = app.get(&format!("/api/v1/conversations/{okno_conv}/messages")).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "out")
        .count();
    assert_eq!(outs, 1, "the answer stored once");
}

/// 1C's counterparties and employees arrive through its standard OData interface: a wrong
/// password refused when connecting, the people read with their phones and e-mails as
/// contacts whose `external_id` is their 1C reference (a person okno met first claimed, not
/// doubled), and at the next pull only what changed — an edited phone, a new counterparty —
/// while 1C failing for a while loses nothing.
#[tokio::test]
async fn onec_people_arrive_through_odata_incrementally() {
    use okno_onec_sim::{ContactInfo, OneCSim};
    let app = TestApp::spawn().await;
    let onec = OneCSim::start().await.unwrap();
    let (user, password) = onec.odata_credentials();
    let anna = onec.add_counterparty(
        "ООО «Ромашка», Анна",
        &[ContactInfo::phone("+7 (900) 123-45-67"), ContactInfo::email("Anna@Romashka.ru")],
    );
    onec.add_counterparty_group("Покупатели");
    let petr = onec.add_employee("Пётр Курьеров", &[ContactInfo::phone("8 900 765-43-21")]);
    // Petr wrote to okno first.
    let met = app.post("/api/v1/contacts", json!({"name": "Петя", "phone": "+79007654321"})).await;
    let petr_okno = met.body["id"].as_str().unwrap().to_string();

    let config = |password: &str| {
        json!({"api_base": onec.odata_url(), "user": user, "password": password,
               "catalogs": [{"preset": "counterparties"}, {"preset": "employees"}], "every": 60})
    };
    let wrong = app.post("/api/v1/connectors", json!({"kind": "onec", "name": "1С", "config": config("nope")})).await;
    assert_eq!((wrong.status, wrong.code()), (400, "invalid_credentials"), "{wrong:?}");
    let made = app.post("/api/v1/connectors", json!({"kind": "onec", "name": "1С", "config": config(&password)})).await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.body["id"].as_str().unwrap().to_string();
    let by_ext = |ext: String| {
        let app = &app;
        async move { app.get(&format!("/api/v1/contacts?external_id={ext}")).await.body["items"][0].clone() }
    };
    let a = eventually(20, || async { Some(by_ext(anna.clone()).await).filter(|c| c.is_object()) })
        .await
        .expect("the counterparty in okno");
    assert_eq!((a["phone"].as_str(), a["email"].as_str()), (Some("+79001234567"), Some("anna@romashka.ru")));
    let p = eventually(20, || async { Some(by_ext(petr.clone()).await).filter(|c| c.is_object()) }).await.unwrap();
    assert_eq!(p["id"], petr_okno, "the employee okno met first, claimed");
    let all = app.get("/api/v1/contacts?limit=100").await.body["items"].as_array().unwrap().len();
    assert_eq!(all, 2, "the group of counterparties is no person, nobody doubled");

    // 1C fails for a while; meanwhile a phone is edited and a counterparty added.
    onec.odata_failing(Some(503));
    onec.set_contacts("Catalog_Контрагенты", &anna, &[ContactInfo::phone("+7 900 000-00-01")]);
    let boris = onec.add_counterparty("ИП Борисов", &[ContactInfo::email("boris@example.org")]);
    // The next pull comes at once when asked for ("sync now"; `every` is a minute).
    let due = || async {
        let r = app.post(&format!("/api/v1/connectors/{id}/sync"), json!({})).await;
        assert_eq!(r.status, 202, "{r:?}");
    };
    due().await;
    let failed = eventually(20, || async {
        let c = app.get("/api/v1/audit?limit=50").await.body;
        c["items"]
            .as_array()?
            .iter()
            .any(|e| e["action"] == "onec.odata.pull" && e["detail"]["outcome"] != "ok")
            .then_some(())
    })
    .await;
    assert!(failed.is_some(), "the failed pull is in the journal");
    onec.odata_failing(None);
    due().await;
    let b = eventually(60, || async { Some(by_ext(boris.clone()).await).filter(|c| c.is_object()) })
        .await
        .expect("the new counterparty after 1C came back");
    assert_eq!(b["email"], "boris@example.org");
    assert_eq!(by_ext(anna.clone()).await["phone"], "+79000000001", "the edited phone");
    // The last pull read only what changed.
    let pulls: Vec<Value> = app.get("/api/v1/audit?limit=100").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"] == "onec.odata.pull" && e["detail"]["outcome"] == "ok" && e["target"] == "Catalog_Контрагенты"
        })
        .cloned()
        .collect();
    assert_eq!(pulls[0]["detail"]["changed"], 2, "Anna's edit and Boris: {pulls:?}");
}
