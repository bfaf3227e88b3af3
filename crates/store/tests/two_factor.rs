//! Two-factor sign-in in the store, on SQLite and on the local PostgreSQL: an authenticator is
//! set up, confirmed and reset; a code's step and a recovery code are each taken once — also
//! when two processes are given the same code at the same moment; login challenges expire,
//! count wrong codes and end with their operator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use okno_domain::model::Role;
use okno_domain::time::now_ms;
use okno_store::testing::TestDb;
use okno_store::{AccountChange, PageRequest, Store};

const LATER: i64 = 600_000;

async fn olga(store: &dyn Store) -> String {
    store.create_operator("admin", Role::Admin, "$argon2id$admin").await.unwrap();
    store.create_operator("olga", Role::Operator, "$argon2id$olga").await.unwrap().id
}

async fn an_authenticator_is_set_up_confirmed_and_reset(store: Arc<dyn Store>, _db: &TestDb) {
    let id = olga(&*store).await;
    let st = store.totp_state(&id).await.unwrap();
    assert_eq!((st.secret, st.enabled, st.recovery_left), (None, false, 0));
    let early = store.enable_totp(&id, 5, &[], "operator:olga").await.unwrap_err();
    assert_eq!(early.code, "totp_not_started", "nothing to confirm before a setup starts");

    store.begin_totp(&id, "FIRSTSECRETFIRSTSECRET").await.unwrap();
    // Starting again before confirming replaces the secret being set up.
    store.begin_totp(&id, "SECONDSECRETSECONDSECR").await.unwrap();
    let st = store.totp_state(&id).await.unwrap();
    assert_eq!((st.secret.as_deref(), st.enabled), (Some("SECONDSECRETSECONDSECR"), false));
    assert!(!store.take_totp_step(&id, 10).await.unwrap(), "no code counts before the setup is confirmed");

    let hashes: Vec<String> = (0..10).map(|i| format!("hash{i}")).collect();
    store.enable_totp(&id, 10, &hashes, "operator:olga").await.unwrap();
    let st = store.totp_state(&id).await.unwrap();
    assert_eq!((st.enabled, st.recovery_left), (true, 10));
    let again = store.begin_totp(&id, "THIRDSECRETTHIRDSECRET").await.unwrap_err();
    assert_eq!(again.code, "totp_enabled", "an enabled authenticator is not replaced behind its owner's back");
    assert_eq!(store.totp_state(&id).await.unwrap().secret.as_deref(), Some("SECONDSECRETSECONDSECR"));

    assert!(store.take_recovery_code(&id, "hash3").await.unwrap());
    assert!(!store.take_recovery_code(&id, "hash3").await.unwrap(), "a recovery code is good once");
    assert!(!store.take_recovery_code(&id, "nohash").await.unwrap());
    assert_eq!(store.totp_state(&id).await.unwrap().recovery_left, 9);

    assert!(store.reset_totp("olga", "operator:admin").await.unwrap());
    let st = store.totp_state(&id).await.unwrap();
    assert_eq!((st.secret, st.enabled, st.recovery_left), (None, false, 0));
    assert!(!store.reset_totp("olga", "cli").await.unwrap(), "nothing left to reset");
    assert!(store.reset_totp("nobody", "cli").await.unwrap_err().is_not_found());

    let audit = store.list_audit(PageRequest::new(Some(10), None)).await.unwrap().items;
    let lines: Vec<(&str, &str)> = audit.iter().map(|a| (a.action.as_str(), a.actor.as_str())).collect();
    assert_eq!(lines, [("operator.totp_reset", "operator:admin"), ("operator.totp_enable", "operator:olga")]);
    assert!(!audit[1].detail.to_string().contains("hash"), "the audit log holds no recovery code hashes");
}

async fn a_code_is_taken_once_even_by_two_processes_at_once(store: Arc<dyn Store>, db: &TestDb) {
    let id = olga(&*store).await;
    store.begin_totp(&id, "SECRETSECRETSECRETSECR").await.unwrap();
    store.enable_totp(&id, 100, &["r1".to_string()], "operator:olga").await.unwrap();
    assert!(!store.take_totp_step(&id, 100).await.unwrap(), "the code that confirmed the setup is used");
    assert!(!store.take_totp_step(&id, 99).await.unwrap(), "an older code is refused");

    let other = TestDb::borrowed(&db.url).open().await;
    let mut tries = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 { store.clone() } else { other.clone() };
        let op = id.clone();
        tries.push(tokio::spawn(async move { s.take_totp_step(&op, 101).await.unwrap() }));
        let s = if i % 2 == 0 { other.clone() } else { store.clone() };
        let op = id.clone();
        tries.push(tokio::spawn(async move { s.take_recovery_code(&op, "r1").await.unwrap() }));
    }
    let mut steps = 0;
    let mut codes = 0;
    for (i, t) in tries.into_iter().enumerate() {
        let ok = t.await.unwrap();
        if i % 2 == 0 {
            steps += usize::from(ok);
        } else {
            codes += usize::from(ok);
        }
    }
    assert_eq!((steps, codes), (1, 1), "one of eight tries of the same code, and of the same recovery code, wins");
    assert!(other.take_totp_step(&id, 102).await.unwrap(), "the next step's code is good");
}

async fn login_challenges_expire_count_wrong_codes_and_end_with_their_operator(store: Arc<dyn Store>, _db: &TestDb) {
    let id = olga(&*store).await;
    store.add_login_challenge("c1", &id, now_ms() + LATER, Some("10.0.0.7")).await.unwrap();
    store.add_login_challenge("old", &id, now_ms() - 1, None).await.unwrap();
    let c = store.login_challenge("c1").await.unwrap().unwrap();
    assert_eq!((c.operator.login.as_str(), c.failures, c.addr.as_deref()), ("olga", 0, Some("10.0.0.7")));
    assert!(store.login_challenge("old").await.unwrap().is_none(), "an expired challenge is none");
    assert!(store.login_challenge("nope").await.unwrap().is_none());

    assert_eq!(store.challenge_failed("c1").await.unwrap(), 1);
    assert_eq!(store.challenge_failed("c1").await.unwrap(), 2);
    assert_eq!(store.login_challenge("c1").await.unwrap().unwrap().failures, 2);

    store.change_operator("olga", AccountChange::Disable, "operator:admin", None).await.unwrap();
    assert!(store.login_challenge("c1").await.unwrap().is_none(), "a disabled operator's login waits for nothing");
    store.change_operator("olga", AccountChange::Enable, "operator:admin", None).await.unwrap();
    store.end_login_challenge("c1").await.unwrap();
    store.end_login_challenge("c1").await.unwrap();
    assert!(store.login_challenge("c1").await.unwrap().is_none(), "an ended challenge is gone");

    store.add_login_challenge("c2", &id, now_ms() + LATER, None).await.unwrap();
    store.begin_totp(&id, "SECRETSECRETSECRETSECR").await.unwrap();
    store.reset_totp("olga", "operator:admin").await.unwrap();
    assert!(store.login_challenge("c2").await.unwrap().is_none(), "a reset ends the logins waiting for a code");
}

okno_store::both_backends!(
    with_db
    an_authenticator_is_set_up_confirmed_and_reset,
    a_code_is_taken_once_even_by_two_processes_at_once,
    login_challenges_expire_count_wrong_codes_and_end_with_their_operator,
);
