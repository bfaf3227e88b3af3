//! The client against the Bitrix24 simulator over real HTTP: both ways in (a webhook, an OAuth
//! app with its refresh), refusals told apart, the bucket kept (and a 503 waited out), a
//! method's time budget waited out, batch, the CRM, offline events, the Open Lines connector
//! round trip and call records.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use okno_bitrix24_sim::{Author, Bitrix24Sim, Call, Limits as SimLimits};
use okno_connector_bitrix24::event::{Change, CrmEntity};
use okno_connector_bitrix24::{
    exchange, parse, B24Client, B24Error, Command, ConnectorRegistration, CustomerMessage, DealPatch, Event, Grant,
    Limits, ListQuery, MultiField, OAuthApp, OfflineQuery, PartyFields, Receipt, Retry, Tokens,
};
use serde_json::json;

/// What okno's side was posted: the bodies.
type Received = Arc<Mutex<Vec<Vec<u8>>>>;

/// okno's event address: a local server keeping what it is posted, answering 200.
async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hooks/connectors/b1/s3cret",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body.to_vec());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/connectors/b1/s3cret", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn quick() -> Retry {
    Retry { attempts: 10, first_wait: Duration::from_millis(100), longest_wait: Duration::from_millis(800) }
}

/// An installed app and a client holding its first tokens.
fn app_client(sim: &Bitrix24Sim) -> (okno_bitrix24_sim::App, B24Client) {
    let app = sim.install_app(sim.admin());
    let oauth = OAuthApp {
        server: sim.oauth_server(),
        client_id: app.client_id.clone(),
        client_secret: app.client_secret.clone(),
    };
    let tokens = Tokens {
        access_token: app.access_token.clone(),
        refresh_token: app.refresh_token.clone(),
        expires_in: 3600,
        expires: None,
        member_id: Some(app.member_id.clone()),
        client_endpoint: Some(sim.rest_base()),
        scope: None,
        user_id: Some(sim.admin()),
    };
    let client = B24Client::app(&sim.rest_base(), oauth, tokens, Limits::STANDARD).unwrap().with_auth_connector("okno");
    (app, client)
}

#[tokio::test]
async fn a_webhook_reads_writes_and_pages_contacts_with_their_multi_fields() {
    let sim = Bitrix24Sim::start().await;
    let client = B24Client::webhook(&sim.webhook_url(sim.admin()), Limits::STANDARD).unwrap();
    let fields = PartyFields {
        name: Some("Анна".into()),
        last_name: Some("Покупатель".into()),
        phones: vec![MultiField::new("+79001234567", "MOBILE")],
        emails: vec![MultiField::new("anna@example.org", "WORK")],
        origin_id: Some("1c-000123".into()),
        custom: serde_json::Map::from_iter([("UF_CRM_SOURCE".to_string(), json!("okno"))]),
        ..PartyFields::default()
    };
    let id = client.add_contact(&fields).await.unwrap();
    let c = client.contact(id).await.unwrap();
    assert_eq!((c.name.as_deref(), c.origin_id.as_deref()), (Some("Анна"), Some("1c-000123")));
    assert_eq!(c.fields["UF_CRM_SOURCE"], "okno");
    let phone = &c.phones[0];
    assert_eq!((phone.value.as_str(), phone.value_type.as_str()), ("+79001234567", "MOBILE"));

    // A phone changed by its id, another added, the e-mail removed.
    let edit = PartyFields {
        phones: vec![
            MultiField::edit(phone.id.unwrap(), "+79007654321", "WORK"),
            MultiField::new("+74950000000", "HOME"),
        ],
        emails: vec![MultiField::remove(c.emails[0].id.unwrap())],
        ..PartyFields::default()
    };
    client.update_contact(id, &edit).await.unwrap();
    let c = client.contact(id).await.unwrap();
    let phones: Vec<&str> = c.phones.iter().map(|p| p.value.as_str()).collect();
    assert_eq!(phones, vec!["+79007654321", "+74950000000"]);
    assert!(c.emails.is_empty());

    // 60 more contacts: two pages of 50, filtered and found by phone.
    for n in 0..60 {
        sim.add_contact(&format!("Клиент {n}"), "", &format!("+7999000{n:04}"), &format!("c{n}@example.org"));
    }
    let first = client.contacts(&ListQuery::new().filter(">ID", id).select(&["ID", "NAME", "PHONE"])).await.unwrap();
    assert_eq!((first.items.len(), first.next, first.total), (50, Some(50), Some(60)));
    assert!(first.items[0].phones.len() == 1 && first.items[0].emails.is_empty(), "multi-fields only when selected");
    let second = client.contacts(&ListQuery::new().filter(">ID", id).start(50)).await.unwrap();
    assert_eq!((second.items.len(), second.next), (10, None));
    let by_phone =
        client.contacts(&ListQuery::new().filter("PHONE", "+79990000007").select(&["*", "PHONE"])).await.unwrap();
    assert_eq!(by_phone.items.iter().map(|c| c.name.clone().unwrap()).collect::<Vec<_>>(), vec!["Клиент 7"]);
    let quick = client.contacts(&ListQuery::new().order("ID", false).start(-1)).await.unwrap();
    assert_eq!((quick.items.len(), quick.total), (50, None), "start=-1 counts no total");
    assert!(quick.items[0].id > quick.items[1].id);

    // Refusals, named.
    assert!(matches!(client.contact(999_999).await, Err(B24Error::NotFound(_))));
    let bad = client.call("crm.contact.add", json!({"fields": "nope"})).await.unwrap_err();
    assert!(matches!(&bad, B24Error::Invalid(r) if r.description.contains("must be array")), "{bad:?}");
    assert!(matches!(client.call("no.such.method", json!({})).await, Err(B24Error::NotFound(_))));
}

#[tokio::test]
async fn a_revoked_webhook_and_a_removed_app_are_told_apart() {
    let sim = Bitrix24Sim::start().await;
    let url = sim.webhook_url(sim.admin());
    let hook = B24Client::webhook(&url, Limits::STANDARD).unwrap();
    hook.call("user.current", json!({})).await.unwrap();
    sim.revoke_webhook(&url);
    let e = hook.call("user.current", json!({})).await.unwrap_err();
    assert!(matches!(&e, B24Error::Unauthorized(r) if r.code == "NO_AUTH_FOUND"), "{e:?}");
    assert!(e.is_auth() && !e.is_passing());

    let (app, client) = app_client(&sim);
    client.call("user.current", json!({})).await.unwrap();
    sim.uninstall_app(&app.client_id);
    let e = client.call("user.current", json!({})).await.unwrap_err();
    assert!(matches!(e, B24Error::InvalidToken(_)), "{e:?}");
}

#[tokio::test]
async fn an_app_exchanges_a_code_and_refreshes_an_expired_token_once() {
    let sim = Bitrix24Sim::start().await;
    let (app, client) = app_client(&sim);
    let oauth = OAuthApp {
        server: sim.oauth_server(),
        client_id: app.client_id.clone(),
        client_secret: app.client_secret.clone(),
    };
    let code = sim.auth_code(&app.client_id);
    let from_code = exchange(&oauth, Grant::Code(&code)).await.unwrap();
    assert_eq!((from_code.expires_in, from_code.client_endpoint.clone()), (3600, Some(sim.rest_base())));
    assert!(matches!(exchange(&oauth, Grant::Code(&code)).await, Err(B24Error::InvalidToken(_))), "a code works once");
    let wrong = OAuthApp { client_secret: "nope".into(), ..oauth.clone() };
    let refused = exchange(&wrong, Grant::Code(&sim.auth_code(&app.client_id))).await.unwrap_err();
    assert!(matches!(&refused, B24Error::InvalidToken(r) if r.code == "invalid_client"), "{refused:?}");

    let mut updates = client.token_updates().unwrap();
    let before = client.tokens().unwrap();
    sim.expire_tokens();
    // Two calls at once after expiry: one refresh, both answered.
    let (a, b) = tokio::join!(client.call("user.current", json!({})), client.call("user.current", json!({})));
    a.unwrap();
    b.unwrap();
    assert_eq!(sim.refreshes(), 1, "one refresh for both");
    let after = client.tokens().unwrap();
    assert_ne!(after.refresh_token, before.refresh_token, "the refresh token rotated");
    assert!(updates.has_changed().unwrap());
    assert_eq!(*updates.borrow_and_update(), after, "the engine sees the pair to store");
    let stale = exchange(&oauth, Grant::Refresh(&before.refresh_token)).await.unwrap_err();
    assert!(matches!(&stale, B24Error::InvalidToken(r) if r.code == "invalid_grant"), "{stale:?}");

    // A dead refresh token: the expiry cannot be cured.
    client.set_tokens(Tokens { refresh_token: "dead".into(), ..after });
    sim.expire_tokens();
    let e = client.call("user.current", json!({})).await.unwrap_err();
    assert!(matches!(e, B24Error::InvalidToken(_)), "{e:?}");
}

#[tokio::test]
async fn a_burst_of_sixty_keeps_the_bucket_and_a_shared_bucket_s_503s_are_waited_out() {
    let sim = Bitrix24Sim::start().await;
    let client = Arc::new(B24Client::webhook(&sim.webhook_url(sim.admin()), Limits::STANDARD).unwrap());
    let calls: Vec<_> = (0..60)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call("user.current", json!({})).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(sim.over_limit(), 0, "okno never took the portal's counter past 50");
    assert_eq!(sim.log().iter().filter(|c| c.status == 200).count(), 60);

    // Two processes on one webhook share its bucket: the portal refuses some, each waits them out.
    let sim = Bitrix24Sim::start_with(SimLimits { per_second: 10, burst: 20 }).await;
    let url = sim.webhook_url(sim.admin());
    let limits = Limits { per_second: 10, burst: 20 };
    let one = Arc::new(B24Client::webhook(&url, limits).unwrap().with_retry(quick()));
    let two = Arc::new(B24Client::webhook(&url, limits).unwrap().with_retry(quick()));
    let calls: Vec<_> = (0..60)
        .map(|n| {
            let c = if n % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(async move { c.call("user.current", json!({})).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert!(sim.over_limit() > 0, "the shared bucket overflowed");
    assert_eq!(sim.log().iter().filter(|c| c.status == 200).count(), 60, "and every call got through");
}

#[tokio::test]
async fn a_method_over_its_time_budget_is_waited_out_then_reported() {
    let sim = Bitrix24Sim::start().await;
    let client = B24Client::webhook(&sim.webhook_url(sim.admin()), Limits::STANDARD).unwrap().with_retry(quick());
    sim.block_method("crm.deal.list", Duration::from_millis(300));
    client.call("crm.deal.list", json!({})).await.unwrap();
    assert!(sim.log().iter().any(|c| c.status == 429), "a 429 was sent and waited out");
    client.call("user.current", json!({})).await.unwrap();

    sim.block_method("crm.deal.list", Duration::from_secs(30));
    let e = client.call("crm.deal.list", json!({})).await.unwrap_err();
    assert!(matches!(&e, B24Error::Limit(r) if r.code == "OPERATION_TIME_LIMIT"), "{e:?}");
    assert!(e.is_passing());
    client.call("user.current", json!({})).await.unwrap();
}

#[tokio::test]
async fn a_batch_of_fifty_runs_with_references_and_fifty_one_is_refused_before_sending() {
    let sim = Bitrix24Sim::start().await;
    let client = B24Client::webhook(&sim.webhook_url(sim.admin()), Limits::STANDARD).unwrap();
    let mut cmds = vec![Command::new("first", "crm.contact.add", json!({"fields": {"NAME": "Первый"}}))];
    cmds.push(Command::new("again", "crm.contact.get", json!({"id": "$result[first]"})));
    cmds.push(Command::new("missing", "crm.contact.get", json!({"id": 999_999})));
    for n in 3..50 {
        cmds.push(Command::new(&format!("c{n}"), "crm.contact.add", json!({"fields": {"NAME": format!("Клиент {n}"), "PHONE": [{"VALUE": format!("+7{n}"), "VALUE_TYPE": "WORK"}]}})));
    }
    let before = sim.log().len();
    let r = client.batch(&cmds, false).await.unwrap();
    assert_eq!(sim.log().len(), before + 1, "one request");
    assert_eq!(r.results.len(), 49, "{:?}", r.errors);
    assert_eq!(r.results["again"]["NAME"], "Первый", "$result[first] became the new id");
    assert_eq!(r.errors["missing"].description, "Not found");

    cmds.push(Command::new("c50", "user.current", json!({})));
    assert_eq!(client.batch(&cmds, false).await.unwrap_err(), B24Error::BatchTooLong(51));
    assert_eq!(sim.log().len(), before + 1, "nothing sent");

    let halted = client
        .batch(
            &[
                Command::new("bad", "crm.contact.get", json!({"id": 999_999})),
                Command::new("after", "user.current", json!({})),
            ],
            true,
        )
        .await
        .unwrap();
    assert!(halted.results.is_empty() && halted.errors.contains_key("bad"), "{halted:?}");
    let nested = client.batch(&[Command::new("b", "batch", json!({}))], false).await.unwrap_err();
    assert!(matches!(nested, B24Error::Invalid(_)));
}

#[tokio::test]
async fn offline_events_are_reserved_cleared_by_their_process_and_okno_s_own_writes_are_not_queued() {
    let sim = Bitrix24Sim::start().await;
    let (_, client) = app_client(&sim);
    client.bind_offline("ONCRMCONTACTUPDATE").await.unwrap();
    client.bind_offline("ONCRMDEALUPDATE").await.unwrap();
    assert_eq!(client.handlers().await.unwrap().iter().filter(|h| h.offline).count(), 2);
    let contact = sim.add_contact("Иван", "Петров", "+79000000001", "ivan@example.org");
    let deal = sim.add_deal("Поставка", Some(contact), sim.admin());

    // A manager's changes are queued — the latest state per object; okno's own are not.
    for n in 0..5 {
        sim.update_contact(contact, json!({ "NAME": format!("Иван {n}") }));
    }
    sim.move_deal(deal, "PREPARATION");
    client
        .update_contact(contact, &PartyFields { last_name: Some("Сидоров".into()), ..PartyFields::default() })
        .await
        .unwrap();
    client.update_deal(deal, &DealPatch { stage_id: Some("EXECUTING".into()), ..DealPatch::default() }).await.unwrap();
    assert_eq!(sim.offline_queue().len(), 2, "{:?}", sim.offline_queue());

    let got = client.offline_events(&OfflineQuery { limit: 1, ..OfflineQuery::default() }).await.unwrap();
    let pid = got.process_id.clone().unwrap();
    assert_eq!(
        (got.events.len(), got.events[0].event.as_str(), got.events[0].object_id),
        (1, "ONCRMCONTACTUPDATE", Some(contact))
    );
    // A parallel reader gets the other record, not the reserved one.
    let other = client.offline_events(&OfflineQuery::default()).await.unwrap();
    assert_eq!(other.events.iter().map(|e| e.object_id).collect::<Vec<_>>(), vec![Some(deal)]);
    let other_pid = other.process_id.unwrap();
    assert_ne!(other_pid, pid);

    // Clearing one reservation leaves the other; a crash before clearing reads it again.
    client.clear_offline(&other_pid, &[]).await.unwrap();
    assert_eq!(sim.offline_queue().len(), 1);
    let again = client
        .offline_events(&OfflineQuery { process_id: Some(pid.clone()), ..OfflineQuery::default() })
        .await
        .unwrap();
    assert_eq!(again.events[0].object_id, Some(contact));
    client.fail_offline(&pid, &[again.events[0].message_id.clone()]).await.unwrap();
    assert!(sim.offline_queue()[0].error);
    client.clear_offline(&pid, &[]).await.unwrap();
    assert!(sim.offline_queue().is_empty());
    let taken = client.offline_events(&OfflineQuery { reserve: false, ..OfflineQuery::default() }).await.unwrap();
    assert_eq!((taken.process_id, taken.events.len()), (None, 0));

    // A webhook cannot bind.
    let hook = B24Client::webhook(&sim.webhook_url(sim.admin()), Limits::STANDARD).unwrap();
    let e = hook.bind_offline("ONCRMDEALUPDATE").await.unwrap_err();
    assert!(matches!(&e, B24Error::AccessDenied(r) if r.code == "WRONG_AUTH_TYPE"), "{e:?}");
}

#[tokio::test]
async fn a_deal_moved_in_the_portal_is_posted_to_okno_with_the_app_s_token() {
    let sim = Bitrix24Sim::start().await;
    let (app, client) = app_client(&sim);
    let (url, got) = receiver().await;
    client.bind("ONCRMDEALUPDATE", &url).await.unwrap();
    let deal = sim.add_deal("Монтаж", None, sim.admin());
    sim.move_deal(deal, "WON");
    sim.settle().await;
    let body = got.lock().unwrap().first().cloned().expect("posted");
    let e = parse(&body).unwrap();
    assert_eq!(e.event, Event::Crm { entity: CrmEntity::Deal, change: Change::Updated, id: deal });
    assert!(e.comes_from(&app.application_token));
    assert!(e.auth.access_token.is_some(), "an app's event carries a fresh token");
    assert_eq!(sim.events_sent()[0].status, 200);

    let d = client.deal(deal).await.unwrap();
    assert_eq!(d.stage_id.as_deref(), Some("WON"));
    let courier = sim.add_user("Пётр", "Курьер", "petr@example.org");
    let patch = DealPatch {
        assigned_by_id: Some(courier),
        custom: serde_json::Map::from_iter([("UF_CRM_COURIER".to_string(), json!("Пётр"))]),
        ..DealPatch::default()
    };
    client.update_deal(deal, &patch).await.unwrap();
    let d = client.deal(deal).await.unwrap();
    assert_eq!((d.assigned_by_id, d.fields["UF_CRM_COURIER"].as_str()), (Some(courier), Some("Пётр")));
    let bad = client.update_deal(deal, &DealPatch { stage_id: Some("NOPE".into()), ..DealPatch::default() }).await;
    assert!(matches!(bad, Err(B24Error::Invalid(_))), "{bad:?}");
    let note = client.add_timeline_comment("deal", deal, "Взял Пётр Курьер").await.unwrap();
    assert_eq!(sim.timeline_comments()[0]["ID"], note);
    assert_eq!(client.unbind("ONCRMDEALUPDATE", &url).await.unwrap(), 1);
    assert!(client.users(json!({"ACTIVE": true})).await.unwrap().iter().any(|u| u.id == courier));

    let item = sim.add_item(1220, "Заявка", "DT1220_1:NEW");
    let i = client.item(1220, item).await.unwrap();
    assert_eq!((i.title.as_deref(), i.stage_id.as_deref()), (Some("Заявка"), Some("DT1220_1:NEW")));
    assert!(matches!(client.item(1220, 1).await, Err(B24Error::NotFound(_))));
}

#[tokio::test]
async fn the_open_lines_connector_round_trip() {
    let sim = Bitrix24Sim::start().await;
    let (app, client) = app_client(&sim);
    let (url, got) = receiver().await;
    let reg = ConnectorRegistration {
        id: "okno".into(),
        name: "okno".into(),
        icon: "data:image/svg+xml,%3Csvg%20xmlns%3D%22http://www.w3.org/2000/svg%22/%3E".into(),
        placement_handler: "https://okno.example/b24/settings".into(),
        chat_group: false,
    };
    client.register_connector(&reg).await.unwrap();
    let bad = client.register_connector(&ConnectorRegistration { id: "Okno.X".into(), ..reg.clone() }).await;
    assert!(matches!(bad, Err(B24Error::Invalid(_))), "{bad:?}");
    assert!(!client.connector_status("okno", 1).await.unwrap().active);
    client.activate_connector("okno", 1, true).await.unwrap();
    client.set_connector_data("okno", 1, "okno-1", "okno", "https://okno.example").await.unwrap();
    assert!(client.connector_status("okno", 1).await.unwrap().active);
    client.bind("ONIMCONNECTORMESSAGEADD", &url).await.unwrap();

    let msg = CustomerMessage {
        user_id: "tg-42".into(),
        name: Some("Иван".into()),
        phone: Some("+79000000042".into()),
        message_id: "m-1".into(),
        date: 1_773_265_993,
        text: "Здравствуйте".into(),
        chat_id: "tg-chat-42".into(),
        ..CustomerMessage::default()
    };
    let accepted = client.send_messages("okno", 1, std::slice::from_ref(&msg)).await.unwrap();
    assert!(accepted[0].success && accepted[0].chat_id.is_some() && accepted[0].session_id.is_some(), "{accepted:?}");
    let again =
        client.send_messages("okno", 1, &[CustomerMessage { message_id: "m-2".into(), ..msg.clone() }]).await.unwrap();
    assert_eq!(again[0].chat_id, accepted[0].chat_id, "one chat per customer");
    let texts: Vec<(Author, String)> =
        sim.chat_messages(1, "tg-chat-42").into_iter().map(|m| (m.author, m.text)).collect();
    assert_eq!(texts.len(), 2);

    let reply = sim.operator_reply(1, "tg-chat-42", "Добрый день!");
    sim.settle().await;
    let e = parse(&got.lock().unwrap()[0]).unwrap();
    assert!(e.comes_from(&app.application_token));
    let Event::ConnectorMessages { connector, line, messages } = e.event else { panic!("{:?}", e.event) };
    assert_eq!((connector.as_str(), line), ("okno", 1));
    assert_eq!((messages[0].chat_id, messages[0].message_id), (reply.chat_id, reply.message_id));
    assert!(messages[0].text.ends_with("Добрый день!"), "{}", messages[0].text);
    assert_eq!(messages[0].external_chat, "tg-chat-42");

    let receipt = Receipt {
        chat_id: messages[0].chat_id,
        message_id: messages[0].message_id,
        external_ids: vec!["tg-out-7".into()],
        external_chat: "tg-chat-42".into(),
        date: Some(1_773_265_999),
    };
    client.send_delivery_status("okno", 1, std::slice::from_ref(&receipt)).await.unwrap();
    client.send_reading_status("okno", 1, &[Receipt { date: None, ..receipt }]).await.unwrap();
    let d = &sim.deliveries()[0];
    assert_eq!(
        (d.chat_id, d.message_id, d.external_ids.clone()),
        (reply.chat_id, reply.message_id, vec!["tg-out-7".to_string()])
    );
    assert_eq!(sim.readings().len(), 1);

    // Not through a webhook; not on a line it is not active on.
    let hook = B24Client::webhook(&sim.webhook_url(sim.admin()), Limits::STANDARD).unwrap();
    let e = hook.send_messages("okno", 1, std::slice::from_ref(&msg)).await.unwrap_err();
    assert!(matches!(&e, B24Error::AccessDenied(r) if r.code == "WRONG_AUTH_TYPE"), "{e:?}");
    let line2 = sim.add_open_line("Вторая");
    let e = client.send_messages("okno", line2, &[msg]).await.unwrap_err();
    assert!(matches!(&e, B24Error::Invalid(r) if r.code == "NOT_ACTIVE_LINE"), "{e:?}");
}

#[tokio::test]
async fn call_records_are_read_and_a_call_end_is_posted() {
    let sim = Bitrix24Sim::start().await;
    let (_, client) = app_client(&sim);
    let (url, got) = receiver().await;
    client.bind("ONVOXIMPLANTCALLEND", &url).await.unwrap();
    let contact = sim.add_contact("Анна", "", "+79001112233", "a@example.org");
    for (n, code) in [(0, "200"), (1, "304")] {
        sim.add_call(Call {
            portal_user_id: sim.admin(),
            phone_number: "+79001112233".into(),
            call_type: 2,
            duration: if code == "200" { 95 } else { 0 },
            start_date: format!("2026-03-10T11:1{n}:38+03:00"),
            failed_code: code.into(),
            record_url: (code == "200").then(|| "https://portal.example/rec/1.mp3".to_string()),
            record_file_id: (code == "200").then_some(9079),
            crm_entity: Some(("CONTACT".into(), contact)),
        });
    }
    let page = client.calls(json!({"PHONE_NUMBER": "+79001112233"}), 0).await.unwrap();
    assert_eq!(page.total, Some(2));
    let answered = &page.items[0];
    assert!(answered.answered());
    assert_eq!(answered.call_type, okno_connector_bitrix24::CallType::Incoming);
    assert_eq!((answered.duration, answered.record_file_id, answered.crm_entity_id), (95, Some(9079), Some(contact)));
    assert!(!page.items[1].answered());
    let later = client.calls(json!({">CALL_START_DATE": "2026-03-10T11:10:40+03:00"}), 0).await.unwrap();
    assert_eq!(later.items.len(), 1);
    sim.settle().await;
    let ends: Vec<Event> = got.lock().unwrap().iter().map(|b| parse(b).unwrap().event).collect();
    assert!(matches!(&ends[..], [Event::CallEnded(a), Event::CallEnded(_)] if a.duration == Some(95)), "{ends:?}");
}
