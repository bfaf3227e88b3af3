//! Operators' accounts and sessions in the store, on SQLite and on the local PostgreSQL: a
//! disabled operator's sessions end and no new one starts, a new password ends the other
//! sessions, the last administrator stays one, expired sessions are refused and swept, and a
//! session ended through one store handle is ended for another on the same database (a second
//! okno process).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use okno_domain::model::Role;
use okno_domain::time::now_ms;
use okno_domain::ErrorKind;
use okno_store::testing::TestDb;
use okno_store::{AccountChange, PageRequest, Store};

const LATER: i64 = 3_600_000;

async fn setup(store: &dyn Store) {
    store.create_operator("admin", Role::Admin, "$argon2id$admin").await.unwrap();
    store.create_operator("olga", Role::Operator, "$argon2id$olga").await.unwrap();
}

async fn valid(store: &dyn Store, hash: &str) -> Option<String> {
    store.session_operator(hash).await.unwrap().map(|o| o.login)
}

async fn disabling_ends_sessions_and_refuses_new_ones(store: Arc<dyn Store>, _db: &TestDb) {
    setup(&*store).await;
    store.create_session("h1", "olga", now_ms() + LATER, Some("10.0.0.1")).await.unwrap();
    store.create_session("h2", "olga", now_ms() + LATER, None).await.unwrap();
    store.create_session("a1", "admin", now_ms() + LATER, None).await.unwrap();
    assert_eq!(valid(&*store, "h1").await.as_deref(), Some("olga"));
    assert_eq!(store.operator_account("olga").await.unwrap().unwrap().sessions, 2);

    let after = store.change_operator("olga", AccountChange::Disable, "operator:admin", None).await.unwrap();
    assert!(after.disabled);
    assert_eq!(after.sessions, 0);
    assert_eq!((valid(&*store, "h1").await, valid(&*store, "h2").await), (None, None));
    assert_eq!(valid(&*store, "a1").await.as_deref(), Some("admin"), "other operators keep theirs");
    let refused = store.create_session("h3", "olga", now_ms() + LATER, None).await.unwrap_err();
    assert_eq!((refused.kind, refused.code.as_ref()), (ErrorKind::Forbidden, "operator_disabled"));

    store.change_operator("olga", AccountChange::Enable, "operator:admin", None).await.unwrap();
    store.create_session("h4", "olga", now_ms() + LATER, None).await.unwrap();
    assert_eq!(valid(&*store, "h4").await.as_deref(), Some("olga"));
    assert_eq!(valid(&*store, "h1").await, None, "an ended session stays ended");

    let audit = store.list_audit(PageRequest::new(Some(10), None)).await.unwrap().items;
    let actions: Vec<(&str, &str)> = audit.iter().map(|a| (a.action.as_str(), a.actor.as_str())).collect();
    assert_eq!(actions, [("operator.enable", "operator:admin"), ("operator.disable", "operator:admin")]);
    assert_eq!(audit[1].detail["login"], "olga");

    let missing = store.change_operator("nobody", AccountChange::Disable, "x", None).await.unwrap_err();
    assert!(missing.is_not_found());
    assert!(store.create_session("h5", "nobody", now_ms() + LATER, None).await.unwrap_err().is_not_found());
}

async fn a_new_password_ends_the_other_sessions(store: Arc<dyn Store>, _db: &TestDb) {
    setup(&*store).await;
    for h in ["h1", "h2", "h3"] {
        store.create_session(h, "olga", now_ms() + LATER, None).await.unwrap();
    }
    let changed = store
        .change_operator("olga", AccountChange::Password("$argon2id$new".into()), "operator:olga", Some("h1"))
        .await;
    assert_eq!(changed.unwrap().operator.password_hash, "$argon2id$new");
    assert_eq!(valid(&*store, "h1").await.as_deref(), Some("olga"), "the session that changed it stays");
    assert_eq!((valid(&*store, "h2").await, valid(&*store, "h3").await), (None, None));
    assert_eq!(store.operator_by_login("olga").await.unwrap().unwrap().password_hash, "$argon2id$new");
    // Set by an administrator: every session of theirs ends.
    store.change_operator("olga", AccountChange::Password("$argon2id$3".into()), "operator:admin", None).await.unwrap();
    assert_eq!(valid(&*store, "h1").await, None);
    let audit = store.list_audit(PageRequest::new(Some(1), None)).await.unwrap().items;
    assert_eq!(audit[0].action, "operator.password");
    assert!(!audit[0].detail.to_string().contains("argon2"), "no hash in the audit log");
}

async fn the_last_administrator_stays_one(store: Arc<dyn Store>, _db: &TestDb) {
    setup(&*store).await;
    let by = "operator:admin";
    for change in [AccountChange::Disable, AccountChange::Role(Role::Operator)] {
        let e = store.change_operator("admin", change, by, None).await.unwrap_err();
        assert_eq!((e.kind, e.code.as_ref()), (ErrorKind::Conflict, "last_admin"));
    }
    // Another administrator: now the first may step down, and the second is the last.
    store.change_operator("olga", AccountChange::Role(Role::Admin), by, None).await.unwrap();
    let stepped = store.change_operator("admin", AccountChange::Role(Role::Restricted), by, None).await.unwrap();
    assert_eq!(stepped.operator.role, Role::Restricted);
    assert_eq!(store.change_operator("olga", AccountChange::Disable, by, None).await.unwrap_err().code, "last_admin");
    // A disabled administrator does not count.
    store.change_operator("admin", AccountChange::Role(Role::Admin), by, None).await.unwrap();
    store.change_operator("admin", AccountChange::Disable, by, None).await.unwrap();
    assert_eq!(
        store.change_operator("olga", AccountChange::Role(Role::Operator), by, None).await.unwrap_err().code,
        "last_admin"
    );
    // The last one may still change their password, and be enabled again.
    store.change_operator("olga", AccountChange::Password("$argon2id$x".into()), by, None).await.unwrap();
    store.change_operator("admin", AccountChange::Enable, by, None).await.unwrap();
    let accounts = store.operator_accounts().await.unwrap();
    let seen: Vec<(&str, Role, bool)> =
        accounts.iter().map(|a| (a.operator.login.as_str(), a.operator.role, a.disabled)).collect();
    assert_eq!(seen, [("admin", Role::Admin, false), ("olga", Role::Admin, false)]);
}

async fn expired_sessions_are_refused_and_swept(store: Arc<dyn Store>, _db: &TestDb) {
    setup(&*store).await;
    store.create_session("old", "olga", now_ms() - 1, None).await.unwrap();
    store.create_session("new", "olga", now_ms() + LATER, None).await.unwrap();
    assert_eq!(valid(&*store, "old").await, None);
    assert_eq!(store.operator_account("olga").await.unwrap().unwrap().sessions, 1, "only live ones count");
    store.create_session("older", "olga", now_ms() - 1, None).await.unwrap();
    assert_eq!(store.sweep_sessions().await.unwrap(), 1);
    assert_eq!(store.sweep_sessions().await.unwrap(), 0);
    assert_eq!(valid(&*store, "new").await.as_deref(), Some("olga"));
    store.end_session("new").await.unwrap();
    store.end_session("new").await.unwrap();
    assert_eq!(valid(&*store, "new").await, None);
}

async fn a_session_ended_by_one_process_is_ended_for_another(store: Arc<dyn Store>, db: &TestDb) {
    setup(&*store).await;
    let other = TestDb::borrowed(&db.url).open().await;
    store.create_session("h1", "olga", now_ms() + LATER, None).await.unwrap();
    store.create_session("h2", "olga", now_ms() + LATER, None).await.unwrap();
    assert_eq!(valid(&*other, "h1").await.as_deref(), Some("olga"));
    store.end_session("h1").await.unwrap();
    assert_eq!(valid(&*other, "h1").await, None, "a logout");
    other.change_operator("olga", AccountChange::Disable, "cli", None).await.unwrap();
    assert_eq!(valid(&*store, "h2").await, None, "disabled through the other");
    // A role change shows at the next request: the session carries no copy of the role.
    other.change_operator("olga", AccountChange::Enable, "cli", None).await.unwrap();
    store.create_session("h3", "olga", now_ms() + LATER, None).await.unwrap();
    other.change_operator("olga", AccountChange::Role(Role::Restricted), "cli", None).await.unwrap();
    assert_eq!(store.session_operator("h3").await.unwrap().unwrap().role, Role::Restricted);
}

okno_store::both_backends!(
    with_db
    disabling_ends_sessions_and_refuses_new_ones,
    a_new_password_ends_the_other_sessions,
    the_last_administrator_stays_one,
    expired_sessions_are_refused_and_swept,
    a_session_ended_by_one_process_is_ended_for_another,
);
