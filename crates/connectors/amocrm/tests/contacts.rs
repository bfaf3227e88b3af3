//! Contacts in bulk, deals' custom fields and tasks against the amoCRM simulator: batches
//! written and matched by okno's ids, pages read by their change time, the batch limit kept
//! before any call, amoCRM's refusals named, contact webhooks read back, and the limit of
//! 7 calls a second kept through a bulk run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};

use okno_amocrm_sim::AmoSim;
use okno_connector_amocrm::{
    contact_events, AmoClient, AmoError, ContactEvent, ContactQuery, ContactUpdate, FieldEntry, FieldValue, LeadPatch,
    NewContact, NewTask, TaskTarget, MAX_BATCH, PER_SECOND,
};

async fn account() -> (AmoSim, AmoClient, i64) {
    let sim = AmoSim::start("romashka").await;
    let manager = sim.add_user("Ольга Менеджер", "olga@romashka.ru");
    let token = sim.add_token(manager);
    let client = AmoClient::new(&sim.api_base(), &token, PER_SECOND).unwrap();
    (sim, client, manager)
}

fn person(n: usize) -> NewContact {
    NewContact {
        name: format!("Покупатель {n}"),
        phones: vec![format!("+7900{n:07}")],
        emails: vec![format!("buyer{n}@example.org")],
        responsible_user_id: None,
        request_id: Some(format!("okno-{n}")),
    }
}

#[tokio::test]
async fn a_batch_is_added_matched_by_okno_s_ids_and_read_back_with_phones_and_emails() {
    let (sim, client, manager) = account().await;
    let batch: Vec<NewContact> = (0..3).map(person).collect();
    let written = client.add_contacts(&batch).await.unwrap();
    assert_eq!(written.iter().map(|w| w.request_id.as_str()).collect::<Vec<_>>(), ["okno-0", "okno-1", "okno-2"]);

    let second = sim.contact(written[1].id);
    assert_eq!(second.name, "Покупатель 1");
    assert_eq!(second.phones, vec![("+79000000001".to_string(), "WORK".to_string())]);
    assert_eq!(second.responsible_user_id, manager, "the token's user when none is named");
    let read = client.contact(written[1].id).await.unwrap();
    assert_eq!((read.phones, read.emails), (vec!["+79000000001".into()], vec!["buyer1@example.org".into()]));

    // Without okno's ids amoCRM echoes the rows' indexes.
    let plain = NewContact { request_id: None, ..person(9) };
    assert_eq!(client.add_contacts(&[plain.clone(), plain]).await.unwrap()[1].request_id, "1");
}

#[tokio::test]
async fn more_than_fifty_contacts_are_refused_before_any_call() {
    let (sim, client, _) = account().await;
    let batch: Vec<NewContact> = (0..=MAX_BATCH).map(person).collect();
    let e = client.add_contacts(&batch).await.unwrap_err();
    assert!(matches!(&e, AmoError::Invalid(d) if d.contains("50")), "{e:?}");
    let updates: Vec<ContactUpdate> =
        (0..=MAX_BATCH as i64).map(|id| ContactUpdate { id, ..Default::default() }).collect();
    assert!(matches!(client.update_contacts(&updates).await, Err(AmoError::Invalid(_))));
    assert!(sim.log().is_empty(), "nothing was sent: {:?}", sim.log());
    assert_eq!(client.add_contacts(&batch[..MAX_BATCH]).await.unwrap().len(), MAX_BATCH, "fifty go in one call");
    assert_eq!(sim.log().len(), 1);
}

#[tokio::test]
async fn an_update_replaces_phones_keeps_what_it_does_not_name_and_moves_updated_at() {
    let (sim, client, _) = account().await;
    let anna = sim.add_contact("Анна", "+7 900 111-11-11", "anna@example.org");
    let before = sim.contact(anna).updated_at;
    sim.advance(60);
    let update = ContactUpdate {
        id: anna,
        phones: Some(vec!["+79002222222".into(), "+79003333333".into()]),
        request_id: Some("row-a".into()),
        ..Default::default()
    };
    let done = client.update_contacts(&[update]).await.unwrap();
    assert_eq!((done[0].id, done[0].request_id.as_str()), (anna, "row-a"));
    let after = client.contact(anna).await.unwrap();
    assert_eq!(after.phones, vec!["+79002222222".to_string(), "+79003333333".to_string()]);
    assert_eq!(after.emails, vec!["anna@example.org".to_string()], "e-mails were not named");
    assert_eq!(after.name, "Анна");
    assert_eq!(after.updated_at, before + 60);

    // amoCRM refuses a whole batch naming the row and the field.
    let bad = ContactUpdate { id: anna, emails: Some(vec!["not-an-address".into()]), ..Default::default() };
    let e = client.update_contacts(&[bad]).await.unwrap_err();
    assert!(matches!(&e, AmoError::Invalid(d) if d.contains("custom_fields_values.0.values.0.value")), "{e:?}");
    let missing = ContactUpdate { id: 1, name: Some("x".into()), ..Default::default() };
    assert!(matches!(client.update_contacts(&[missing]).await, Err(AmoError::Invalid(_))));
}

#[tokio::test]
async fn contacts_changed_since_a_moment_are_read_page_by_page_oldest_first() {
    let (sim, client, _) = account().await;
    let old: Vec<i64> =
        (0..3).map(|n| sim.add_contact(&format!("Старый {n}"), "+79000000000", "old@example.org")).collect();
    sim.advance(100);
    let since = sim.now();
    let mut fresh = Vec::new();
    for chunk in (0..120).collect::<Vec<_>>().chunks(MAX_BATCH) {
        let batch: Vec<NewContact> = chunk.iter().map(|n| person(*n)).collect();
        fresh.extend(client.add_contacts(&batch).await.unwrap().into_iter().map(|w| w.id));
        sim.advance(1);
    }
    sim.advance(1);
    // A contact changed later comes last.
    client
        .update_contacts(&[ContactUpdate {
            id: old[0], name: Some("Старый, но изменён".into()), ..Default::default()
        }])
        .await
        .unwrap();

    let page = client
        .contacts_page(&ContactQuery { limit: 50, updated_since: Some(since), ..ContactQuery::default() })
        .await
        .unwrap();
    assert_eq!((page.contacts.len(), page.more), (50, true));
    let all = client.contacts_changed_since(since).await.unwrap();
    let mut want = fresh.clone();
    want.push(old[0]);
    assert_eq!(all.iter().map(|c| c.id).collect::<Vec<_>>(), want);
    assert!(all.windows(2).all(|w| w[0].updated_at <= w[1].updated_at));
    let past = client
        .contacts_page(&ContactQuery { page: 99, updated_since: Some(since), ..ContactQuery::default() })
        .await
        .unwrap();
    assert_eq!((past.contacts.len(), past.more), (0, false), "amoCRM's 204 past the last page");
    assert!(matches!(
        client.contacts_page(&ContactQuery { limit: 251, ..Default::default() }).await,
        Err(AmoError::Invalid(_))
    ));
}

#[tokio::test]
async fn a_contact_is_read_with_its_deals() {
    let (sim, client, manager) = account().await;
    let anna = sim.add_contact("Анна", "+79001111111", "anna@example.org");
    let lead = sim.add_lead("Букет", 4500, manager, Some(anna));
    let page = client.contacts_page(&ContactQuery { with_leads: true, ..Default::default() }).await.unwrap();
    assert_eq!(page.contacts[0].lead_ids, vec![lead]);
}

#[tokio::test]
async fn a_bulk_run_never_goes_past_seven_calls_a_second() {
    let (sim, client, _) = account().await;
    let started = std::time::Instant::now();
    for round in 0..6 {
        let batch: Vec<NewContact> = (round * 10..round * 10 + 10).map(person).collect();
        client.add_contacts(&batch).await.unwrap();
        client.contacts_page(&ContactQuery::default()).await.unwrap();
    }
    assert_eq!(sim.log().iter().filter(|(_, _, s)| *s == 429).count(), 0);
    assert!(sim.peak_per_second() <= PER_SECOND as usize, "peak {}", sim.peak_per_second());
    assert!(sim.peak_per_second() >= 5, "the calls came as fast as allowed: {}", sim.peak_per_second());
    assert!(started.elapsed() >= std::time::Duration::from_millis(1500), "12 calls take over 1.5 s at 7 a second");
}

#[tokio::test]
async fn contact_webhooks_are_read_as_added_changed_and_deleted() {
    let (sim, client, manager) = account().await;
    let got: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hooks/amo",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body.to_vec());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/amo", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    client.subscribe(&url, &["add_contact", "update_contact", "delete_contact"]).await.unwrap();

    let written = client.add_contacts(&[person(1), person(2)]).await.unwrap();
    sim.update_contact(written[0].id, "Анна Петрова", Some(&["+79005555555"][..]), None, manager);
    sim.delete_contact(written[1].id);
    let bodies = wait_for(|| {
        let g = got.lock().unwrap();
        (g.len() == 3).then(|| g.clone())
    })
    .await;
    let mut events: Vec<ContactEvent> = bodies.iter().flat_map(|b| contact_events(b).unwrap()).collect();
    events.sort_by_key(|e| match e {
        ContactEvent::Added(_) => 0,
        ContactEvent::Updated(_) => 1,
        ContactEvent::Deleted { .. } => 2,
    });
    let added: Vec<(i64, Vec<String>)> = events
        .iter()
        .filter_map(|e| match e {
            ContactEvent::Added(c) => Some((c.id, c.phones.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(added, vec![(written[0].id, vec!["+79000000001".into()]), (written[1].id, vec!["+79000000002".into()])]);
    let ContactEvent::Updated(anna) = &events[2] else { panic!("{events:?}") };
    assert_eq!((anna.name.as_str(), anna.phones.clone()), ("Анна Петрова", vec!["+79005555555".to_string()]));
    assert_eq!(anna.emails, vec!["buyer1@example.org".to_string()]);
    assert_eq!(anna.modified_user_id, Some(manager));
    assert_eq!(events[3], ContactEvent::Deleted { id: written[1].id });
}

#[tokio::test]
async fn a_deal_s_custom_fields_are_set_with_its_stage() {
    let (sim, client, manager) = account().await;
    let (executor, _) = sim.add_lead_field("Исполнитель", "text", &[]);
    let (paid, _) = sim.add_lead_field("Оплачено", "checkbox", &[]);
    let (channel, options) = sim.add_lead_field("Канал", "select", &["Telegram", "WhatsApp"]);
    let lead = sim.add_lead("Букет", 4500, manager, None);
    let patch = LeadPatch {
        status_id: Some(20),
        custom_fields: vec![
            FieldValue { field_id: executor, values: vec![FieldEntry::Text("Пётр (TG @petr)".into())] },
            FieldValue { field_id: paid, values: vec![FieldEntry::Flag(true)] },
            FieldValue { field_id: channel, values: vec![FieldEntry::Choice(options[0])] },
        ],
        ..Default::default()
    };
    client.update_lead(lead, &patch).await.unwrap();
    let fields = sim.lead_fields(lead);
    assert_eq!(fields[&executor], vec![serde_json::json!({"value": "Пётр (TG @petr)"})]);
    assert_eq!(fields[&paid], vec![serde_json::json!({"value": true})]);
    assert_eq!(fields[&channel][0]["value"], "Telegram");
    assert_eq!(sim.lead(lead).status_id, 20);

    // A field cleared; an unknown option refused, naming where.
    let clear = LeadPatch { custom_fields: vec![FieldValue { field_id: paid, values: vec![] }], ..Default::default() };
    client.update_lead(lead, &clear).await.unwrap();
    assert!(!sim.lead_fields(lead).contains_key(&paid));
    let wrong = LeadPatch {
        custom_fields: vec![FieldValue { field_id: channel, values: vec![FieldEntry::Choice(1)] }],
        ..Default::default()
    };
    let e = client.update_lead(lead, &wrong).await.unwrap_err();
    assert!(matches!(&e, AmoError::Invalid(d) if d.contains("custom_fields_values.0.values.0.enum_id")), "{e:?}");
}

#[tokio::test]
async fn a_task_is_set_on_a_deal_for_a_user() {
    let (sim, client, manager) = account().await;
    let courier = sim.add_user("Пётр Курьер", "petr@romashka.ru");
    let lead = sim.add_lead("Букет", 4500, manager, None);
    let task = NewTask {
        text: "Позвонить покупателю".into(),
        complete_till: 1_900_000_000,
        target: Some(TaskTarget::Lead(lead)),
        responsible_user_id: Some(courier),
        task_type_id: Some(1),
    };
    let id = client.add_task(&task).await.unwrap();
    let t = &sim.tasks()[0];
    assert_eq!(
        (t.id, t.entity_type.as_str(), t.entity_id, t.responsible_user_id, t.text.as_str()),
        (id, "leads", lead, courier, "Позвонить покупателю")
    );
    let nowhere = NewTask { target: Some(TaskTarget::Contact(1)), ..task.clone() };
    assert!(matches!(client.add_task(&nowhere).await, Err(AmoError::Invalid(d)) if d.contains("entity_id")));
    let blank = NewTask { text: " ".into(), ..task };
    assert!(matches!(client.add_task(&blank).await, Err(AmoError::Invalid(d)) if d.contains("text")));
    assert_eq!(sim.tasks().len(), 1);
}

/// Polls `f` for up to 10 s.
async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("not within 10 s")
}
