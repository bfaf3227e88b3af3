//! Contacts created and edited by operators, on SQLite and on the local PostgreSQL: a new
//! contact never takes an external id another has, an edit empties fields and replaces groups
//! and attributes, a form drawn before someone else's change is refused, an edit that changes
//! nothing writes nothing, and every change is one `contact.updated` event and one audit line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use okno_domain::model::{ContactInput, EventType};
use okno_domain::ErrorKind;
use okno_store::testing::TestDb;
use okno_store::{ContactEdit, ContactField, NewAudit, NewRun, NewTask, NewWebhook, PageRequest, Store};
use serde_json::json;
use sqlx::{Connection, Executor, Row};

const ACTOR: &str = "operator:olga";

async fn hook(store: &dyn Store) -> String {
    let new = NewWebhook {
        url: "https://example.org/hook".into(),
        events: vec![EventType::ContactUpdated],
        secret: "k".into(),
        created_by: None,
    };
    store.create_webhook(new).await.unwrap().id
}

async fn events(store: &dyn Store, hook: &str) -> Vec<serde_json::Value> {
    let page = store.list_deliveries(hook, PageRequest::new(Some(100), None)).await.unwrap();
    page.items.into_iter().map(|d| d.body).collect()
}

async fn audit_lines(store: &dyn Store) -> Vec<(String, String, serde_json::Value)> {
    let page = store.list_audit(PageRequest::new(Some(100), None)).await.unwrap();
    page.items.into_iter().map(|a| (a.action, a.actor, a.detail)).collect()
}

fn input(json: serde_json::Value) -> ContactInput {
    serde_json::from_value::<ContactInput>(json).unwrap().normalize().unwrap()
}

async fn a_new_contact_never_takes_an_external_id_another_has(store: Arc<dyn Store>, _db: &TestDb) {
    let hook = hook(&*store).await;
    let made = store
        .create_contact(
            input(json!({"name": " Анна ", "phone": "8 (912) 000-11-22", "external_id": "1c-1", "groups": ["b", "a"]})),
            ACTOR,
        )
        .await
        .unwrap();
    assert_eq!(made.name.as_deref(), Some("Анна"));
    assert_eq!(made.phone.as_deref(), Some("+79120001122"), "normalised as the API does");
    assert_eq!(made.groups, ["a", "b"]);
    let again = store.create_contact(input(json!({"name": "Другая", "external_id": "1c-1"})), ACTOR).await.unwrap_err();
    assert_eq!((again.kind, &*again.code), (ErrorKind::Conflict, "external_id_taken"));
    assert_eq!(store.get_contact(&made.id).await.unwrap().name.as_deref(), Some("Анна"), "the other is untouched");
    // Without an external id a second person of the same name is a new contact.
    let twin = store.create_contact(input(json!({"name": "Анна"})), ACTOR).await.unwrap();
    assert_ne!(twin.id, made.id);

    let sent = events(&*store, &hook).await;
    assert_eq!(sent.len(), 2, "one contact.updated per contact made, none for the refusal: {sent:?}");
    assert!(sent.iter().any(|e| e["data"]["id"] == made.id.as_str() && e["data"]["phone"] == "+79120001122"));
    let audit = audit_lines(&*store).await;
    assert_eq!(audit.len(), 2);
    let line = audit.iter().find(|(_, _, d)| d["fields"].as_array().is_some_and(|f| f.len() == 4)).unwrap();
    assert_eq!((line.0.as_str(), line.1.as_str()), ("contact.create", ACTOR));
    assert_eq!(line.2["fields"], json!(["external_id", "name", "phone", "groups"]));
}

async fn an_edit_sets_empties_and_replaces_fields_once(store: Arc<dyn Store>, _db: &TestDb) {
    let c = store
        .create_contact(
            input(json!({"name": "Пётр", "email": "petr@example.com", "external_id": "1c-7", "groups": ["vip"], "attrs": {"city": "Казань"}})),
            ACTOR,
        )
        .await
        .unwrap();
    let hook = hook(&*store).await;
    let edit = ContactEdit {
        set: input(
            json!({"name": "Пётр Сидоров", "phone": "+7 999 123-45-67", "groups": ["clients"], "attrs": {"visits": 2}}),
        ),
        clear: vec![ContactField::Email, ContactField::ExternalId],
        seen_at: Some(c.updated_at),
    };
    let after = store.edit_contact(&c.id, edit, ACTOR).await.unwrap();
    assert_eq!(after.name.as_deref(), Some("Пётр Сидоров"));
    assert_eq!(after.phone.as_deref(), Some("+79991234567"));
    assert_eq!((after.email, after.external_id), (None, None), "emptied");
    assert_eq!(after.groups, ["clients"], "the groups are replaced");
    assert_eq!(after.attrs, json!({"visits": 2}), "the attributes are replaced");
    assert!(after.updated_at > c.updated_at);
    // The search follows the edit: the emptied email no longer finds the contact, the new phone does.
    let find = |q: &str| okno_store::ContactFilter { q: Some(q.into()), ..Default::default() };
    assert!(store.find_contacts(find("petr@"), PageRequest::new(None, None)).await.unwrap().items.is_empty());
    assert_eq!(store.find_contacts(find("9991234"), PageRequest::new(None, None)).await.unwrap().items.len(), 1);

    // The same values again change nothing and write nothing.
    let same = ContactEdit {
        set: input(
            json!({"name": "Пётр Сидоров", "phone": "+79991234567", "groups": ["clients"], "attrs": {"visits": 2}}),
        ),
        clear: vec![ContactField::Email],
        seen_at: Some(after.updated_at),
    };
    let unchanged = store.edit_contact(&c.id, same, ACTOR).await.unwrap();
    assert_eq!(unchanged.updated_at, after.updated_at);

    let sent = events(&*store, &hook).await;
    assert_eq!(sent.len(), 1, "one event for the one real change: {sent:?}");
    assert_eq!(sent[0]["type"], "contact.updated");
    assert_eq!(sent[0]["data"]["name"], "Пётр Сидоров");
    let audit = audit_lines(&*store).await;
    let updates: Vec<_> = audit.iter().filter(|(a, _, _)| a == "contact.update").collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].2["fields"], json!(["external_id", "name", "phone", "email", "groups", "attrs"]));
    assert!(store.edit_contact(&"no-such-id".into(), ContactEdit::default(), ACTOR).await.unwrap_err().is_not_found());
}

async fn a_form_drawn_before_another_change_is_refused(store: Arc<dyn Store>, _db: &TestDb) {
    let c = store.create_contact(input(json!({"name": "Ольга"})), ACTOR).await.unwrap();
    let first =
        ContactEdit {
            set: input(json!({"name": "Ольга К."})), seen_at: Some(c.updated_at), ..Default::default()
        };
    store.edit_contact(&c.id, first, ACTOR).await.unwrap();
    // A second operator's form was drawn before the first edit.
    let late = ContactEdit {
        set: input(json!({"name": "Ольга Ивановна"})),
        seen_at: Some(c.updated_at),
        ..Default::default()
    };
    let e = store.edit_contact(&c.id, late, "operator:boris").await.unwrap_err();
    assert_eq!((e.kind, &*e.code), (ErrorKind::Conflict, "contact_changed"));
    assert_eq!(store.get_contact(&c.id).await.unwrap().name.as_deref(), Some("Ольга К."), "the first edit stays");

    // An external id another contact has is refused, and nothing of the edit is kept.
    store.create_contact(input(json!({"name": "Иван", "external_id": "1c-9"})), ACTOR).await.unwrap();
    let now = store.get_contact(&c.id).await.unwrap();
    let taken = ContactEdit {
        set: input(json!({"name": "Ольга Петровна", "external_id": "1c-9"})),
        seen_at: Some(now.updated_at),
        ..Default::default()
    };
    let e = store.edit_contact(&c.id, taken, ACTOR).await.unwrap_err();
    assert_eq!(e.code, "external_id_taken");
    let kept = store.get_contact(&c.id).await.unwrap();
    assert_eq!((kept.name.as_deref(), kept.external_id), (Some("Ольга К."), None));
}

/// An edit that would leave none of name, phone, email and external id is refused, as a new
/// contact without any of them is; emptying all but one is fine.
async fn an_edit_never_leaves_a_contact_with_nothing_to_know_it_by(store: Arc<dyn Store>, _db: &TestDb) {
    let c = store.create_contact(input(json!({"name": "Ольга", "phone": "+79120001122"})), ACTOR).await.unwrap();
    let all = ContactEdit {
        clear: vec![ContactField::Name, ContactField::Phone, ContactField::Email, ContactField::ExternalId],
        seen_at: Some(c.updated_at),
        ..Default::default()
    };
    let e = store.edit_contact(&c.id, all, ACTOR).await.unwrap_err();
    assert_eq!((e.kind, &*e.code), (ErrorKind::Invalid, "contact_empty"));
    let kept = store.get_contact(&c.id).await.unwrap();
    assert_eq!((kept.name.as_deref(), kept.phone.as_deref()), (Some("Ольга"), Some("+79120001122")));
    assert_eq!(kept.updated_at, c.updated_at, "nothing of the refused edit is kept");
    // Emptying the name while setting an email keeps someone to know the contact by.
    let swap = ContactEdit {
        set: input(json!({"email": "olga@example.org"})),
        clear: vec![ContactField::Name, ContactField::Phone],
        seen_at: Some(c.updated_at),
    };
    let after = store.edit_contact(&c.id, swap, ACTOR).await.unwrap();
    assert_eq!((after.name, after.phone, after.email.as_deref()), (None, None, Some("olga@example.org")));
}

/// Two okno processes (two stores on one database) save forms drawn from the same version at
/// once, many times over: each time exactly one is kept and the other is told the contact
/// changed.
async fn two_stores_saving_forms_drawn_at_once_keep_exactly_one(store: Arc<dyn Store>, db: &TestDb) {
    let other = TestDb::borrowed(&db.url).open().await;
    let c = store.create_contact(input(json!({"name": "Ольга"})), ACTOR).await.unwrap();
    let mut seen = c.updated_at;
    for round in 0..10 {
        let save = |store: Arc<dyn Store>, name: String, actor: &'static str| {
            let (id, edit) = (
                c.id.clone(),
                ContactEdit { set: input(json!({ "name": name })), seen_at: Some(seen), ..Default::default() },
            );
            tokio::spawn(async move { store.edit_contact(&id, edit, actor).await })
        };
        let a = save(store.clone(), format!("Ольга {round}a"), "operator:olga");
        let b = save(other.clone(), format!("Ольга {round}b"), "operator:boris");
        let results = [a.await.unwrap(), b.await.unwrap()];
        let kept: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(kept.len(), 1, "round {round}: {results:?}");
        let refused = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert_eq!(refused.code, "contact_changed", "round {round}");
        let now = store.get_contact(&c.id).await.unwrap();
        assert_eq!(now.name, kept[0].name, "round {round}: the stored name is the kept edit's");
        seen = now.updated_at;
    }
}

okno_store::both_backends!(
    with_db
    a_new_contact_never_takes_an_external_id_another_has,
    an_edit_sets_empties_and_replaces_fields_once,
    a_form_drawn_before_another_change_is_refused,
    an_edit_never_leaves_a_contact_with_nothing_to_know_it_by,
    two_stores_saving_forms_drawn_at_once_keep_exactly_one,
    an_operators_change_and_its_audit_line_are_one_transaction,
);

/// Sessions of this database waiting on a lock.
async fn waiting_on_locks(db: &TestDb) -> i64 {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    row.get::<i64, _>("n")
}

/// Waits until `n` sessions wait on a lock (a minute at most).
async fn until_waiting(db: &TestDb, n: i64) {
    for _ in 0..3_000 {
        if waiting_on_locks(db).await >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{n} sessions never waited on a lock");
}

/// On PostgreSQL (READ COMMITTED), the second of two saves of forms drawn from the same version
/// reads the contact while the first is still uncommitted. The first save is held inside its
/// transaction (its audit line waits on a lock a third session holds) until the second has
/// read and is waiting too, so the two overlap every time: the second is refused, never a
/// silent overwrite of the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_operators_saving_at_once_on_postgres_never_overwrite_each_other() {
    let Some(db) = TestDb::postgres().await else { return };
    let a = db.open().await;
    let b = TestDb::borrowed(&db.url).open().await;
    let c = a.create_contact(input(json!({"name": "Ольга"})), ACTOR).await.unwrap();
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder.execute("LOCK TABLE audit_log IN EXCLUSIVE MODE").await.unwrap();

    let save = |store: Arc<dyn Store>, name: &str, actor: &'static str| {
        let (id, edit) = (
            c.id.clone(),
            ContactEdit { set: input(json!({ "name": name })), seen_at: Some(c.updated_at), ..Default::default() },
        );
        tokio::spawn(async move { store.edit_contact(&id, edit, actor).await })
    };
    let first = save(a.clone(), "Ольга К.", "operator:olga");
    until_waiting(&db, 1).await;
    let second = save(b.clone(), "Ольга Ивановна", "operator:boris");
    until_waiting(&db, 2).await;
    holder.execute("COMMIT").await.unwrap();

    let first = first.await.unwrap();
    let second = second.await.unwrap();
    assert!(first.is_ok(), "{first:?}");
    let e = second.unwrap_err();
    assert_eq!((e.kind, &*e.code), (ErrorKind::Conflict, "contact_changed"));
    assert_eq!(a.get_contact(&c.id).await.unwrap().name.as_deref(), Some("Ольга К."), "the first save stays");
    let updates = audit_lines(&*a).await.into_iter().filter(|(action, ..)| action == "contact.update").count();
    assert_eq!(updates, 1, "one audit line, the kept save's");
}

/// Makes the database refuse new audit lines (`on`), or take them again.
async fn refuse_audit_lines(db: &TestDb, on: bool) {
    let statements: Vec<&str> = match (db.postgres_admin().is_some(), on) {
        (true, true) => vec![
            "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'the audit log is full'; END $$ \
             LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
        ],
        (true, false) => vec!["DROP TRIGGER refuse_audit ON audit_log", "DROP FUNCTION refuse_audit()"],
        (false, true) => vec![
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is full'); END",
        ],
        (false, false) => vec!["DROP TRIGGER refuse_audit"],
    };
    db.execute_raw(&statements).await;
}

/// A merge, a link code, a task and a survey start made by an operator are committed with
/// their audit line or not at all: while the audit log refuses lines, nothing of them is kept;
/// afterwards each is kept with exactly one line.
async fn an_operators_change_and_its_audit_line_are_one_transaction(store: Arc<dyn Store>, db: &TestDb) {
    let ch = okno_store::testing::webhook_channel(&*store, "site").await;
    let keep = store.create_contact(input(json!({"name": "Ольга"})), ACTOR).await.unwrap();
    let other = store.create_contact(input(json!({"name": "Ольга К."})), ACTOR).await.unwrap();
    let survey = okno_domain::surveys::SurveySpec::parse(&json!({
        "name": "Отзыв", "questions": [{"id": "q", "text": "Как всё прошло?", "kind": "text"}],
    }))
    .unwrap();
    let survey = store.create_survey(survey).await.unwrap();
    let line = |action: &str, target: &str| NewAudit {
        actor: ACTOR.into(),
        action: action.into(),
        target: target.into(),
        detail: json!({}),
    };
    let task = |id: &str| NewTask {
        id: id.into(),
        channel_id: ch.to_string(),
        chat_id: "-100".into(),
        message_id: Some("1".into()),
        title: "Доставка".into(),
        text: "Забрать".into(),
        private_text: None,
        data: json!({}),
        group: None,
        reoffer_after: None,
        reoffer_times: 0,
    };
    let run = || vec![NewRun { contact_id: keep.id.clone(), key: "manual".into() }];
    let before = audit_lines(&*store).await.len();

    refuse_audit_lines(db, true).await;
    assert!(store.merge_contacts(&keep.id, &other.id, Some(line("contact.merge", &keep.id))).await.is_err());
    assert!(store.create_link_code(&keep.id, 60_000, Some(line("contact.link_code", &keep.id))).await.is_err());
    assert!(store.create_task(task("t-1"), Some(line("task.create", "t-1"))).await.is_err());
    assert!(store.start_survey(&survey.id, run(), Some(line("survey.start", &survey.id))).await.is_err());
    refuse_audit_lines(db, false).await;
    assert!(store.get_contact(&other.id).await.is_ok(), "not merged without its line");
    assert!(store.get_task("t-1").await.unwrap_err().is_not_found(), "no task without its line");
    assert_eq!(store.survey_run_counts(&survey.id).await.unwrap().total, 0, "nobody asked without its line");
    assert_eq!(audit_lines(&*store).await.len(), before);

    store.merge_contacts(&keep.id, &other.id, Some(line("contact.merge", &keep.id))).await.unwrap();
    store.create_link_code(&keep.id, 60_000, Some(line("contact.link_code", &keep.id))).await.unwrap();
    store.create_task(task("t-2"), Some(line("task.create", "t-2"))).await.unwrap();
    store.start_survey(&survey.id, run(), Some(line("survey.start", &survey.id))).await.unwrap();
    let lines = audit_lines(&*store).await;
    for action in ["contact.merge", "contact.link_code", "task.create", "survey.start"] {
        assert_eq!(lines.iter().filter(|(a, ..)| a == action).count(), 1, "{action}: {lines:?}");
    }
}
