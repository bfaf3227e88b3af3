//! Operators from a directory in the store, on SQLite and on the local PostgreSQL: a sign-in
//! the directory accepted creates the operator and later ones refresh the role and DN; a local
//! account is never taken over; the directory refusing someone ends their sessions and disables
//! them until the directory accepts them again, while an administrator's disabling stays.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use okno_domain::model::Role;
use okno_domain::time::now_ms;
use okno_store::testing::TestDb;
use okno_store::{AccountChange, DirectorySignIn, PageRequest, Store};

const LATER: i64 = 3_600_000;

fn from_directory(login: &str, role: Role) -> DirectorySignIn {
    DirectorySignIn {
        login: login.into(),
        dn: format!("uid={login},ou=people,dc=example,dc=org"),
        role,
        unusable_password_hash: "$argon2id$unusable".into(),
    }
}

async fn actions(store: &dyn Store) -> Vec<(String, String)> {
    let audit = store.list_audit(PageRequest::new(Some(50), None)).await.unwrap().items;
    audit.iter().rev().map(|a| (a.action.clone(), a.actor.clone())).collect()
}

async fn a_sign_in_creates_then_refreshes_and_never_takes_a_local_account(store: Arc<dyn Store>, _db: &TestDb) {
    let ivan = store.sign_in_from_directory(from_directory("ivan", Role::Operator)).await.unwrap();
    assert_eq!((ivan.operator.login.as_str(), ivan.operator.role, ivan.disabled), ("ivan", Role::Operator, false));
    let dn = store.operator_directory_dn("ivan").await.unwrap();
    assert_eq!(dn.as_deref(), Some("uid=ivan,ou=people,dc=example,dc=org"));

    let mut moved = from_directory("ivan", Role::Admin);
    moved.dn = "uid=ivan,ou=staff,dc=example,dc=org".into();
    let again = store.sign_in_from_directory(moved).await.unwrap();
    assert_eq!((again.operator.id.as_str(), again.operator.role), (ivan.operator.id.as_str(), Role::Admin));
    let dn = store.operator_directory_dn("ivan").await.unwrap();
    assert_eq!(dn.as_deref(), Some("uid=ivan,ou=staff,dc=example,dc=org"));

    store.create_operator("olga", Role::Restricted, "$argon2id$olga").await.unwrap();
    let refused = store.sign_in_from_directory(from_directory("olga", Role::Admin)).await.unwrap_err();
    assert_eq!(refused.code, "local_account");
    let olga = store.operator_account("olga").await.unwrap().unwrap();
    assert_eq!((olga.operator.role, olga.operator.password_hash.as_str()), (Role::Restricted, "$argon2id$olga"));
    assert_eq!(store.operator_directory_dn("olga").await.unwrap(), None);
    assert_eq!(store.operator_directory_dn("nobody").await.unwrap(), None);

    let mut done: Vec<(String, String)> = actions(&*store).await;
    done.sort();
    let want = [
        ("operator.directory_create", "directory"),
        ("operator.directory_dn", "directory"),
        ("operator.role", "directory"),
    ];
    assert_eq!(done, want.map(|(a, b)| (a.to_string(), b.to_string())));
}

async fn a_refusal_ends_sessions_until_the_directory_accepts_again(store: Arc<dyn Store>, _db: &TestDb) {
    let ivan = store.sign_in_from_directory(from_directory("ivan", Role::Operator)).await.unwrap().operator;
    store.sign_in_from_directory(from_directory("anna", Role::Admin)).await.unwrap();
    store.create_operator("olga", Role::Operator, "$argon2id$olga").await.unwrap();
    for (hash, login) in [("i1", "ivan"), ("i2", "ivan"), ("o1", "olga")] {
        store.create_session(hash, login, now_ms() + LATER, None).await.unwrap();
    }
    let signed_in = store.directory_operators_signed_in().await.unwrap();
    let logins: Vec<&str> = signed_in.iter().map(|d| d.operator.login.as_str()).collect();
    assert_eq!(logins, ["ivan"], "directory operators with a session only");

    store.directory_role(&ivan.id, Role::Restricted).await.unwrap();
    assert_eq!(store.session_operator("i1").await.unwrap().unwrap().role, Role::Restricted, "at once");

    store.directory_refused(&ivan.id, "locked in the directory").await.unwrap();
    assert!(store.session_operator("i1").await.unwrap().is_none());
    assert!(store.session_operator("i2").await.unwrap().is_none());
    assert!(store.session_operator("o1").await.unwrap().is_some(), "others keep theirs");
    assert!(store.operator_account("ivan").await.unwrap().unwrap().disabled);
    assert!(store.directory_operators_signed_in().await.unwrap().is_empty());
    let audit = store.list_audit(PageRequest::new(Some(1), None)).await.unwrap().items;
    assert_eq!(audit[0].action, "operator.directory_disable");
    assert_eq!(
        (audit[0].detail["reason"].as_str(), audit[0].detail["sessions_ended"].as_i64()),
        (Some("locked in the directory"), Some(2))
    );

    // The directory lets ivan in again: enabled again.
    let back = store.sign_in_from_directory(from_directory("ivan", Role::Operator)).await.unwrap();
    assert!(!back.disabled);
    // An administrator disables him in okno: the directory's word does not undo that.
    store.change_operator("ivan", AccountChange::Disable, "operator:anna", None).await.unwrap();
    let still = store.sign_in_from_directory(from_directory("ivan", Role::Operator)).await.unwrap();
    assert!(still.disabled);
    // A local account is not the directory's to disable.
    let olga = store.operator_account("olga").await.unwrap().unwrap().operator;
    assert_eq!(store.directory_refused(&olga.id, "x").await.unwrap_err().code, "local_account");
    assert!(store.directory_role(&olga.id, Role::Admin).await.unwrap_err().is_not_found());
}

okno_store::both_backends!(
    with_db
    a_sign_in_creates_then_refreshes_and_never_takes_a_local_account,
    a_refusal_ends_sessions_until_the_directory_accepts_again,
);
