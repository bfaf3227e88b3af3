//! Credentials at rest: a channel's token and secret and a webhook subscription's secret are
//! in the database only sealed (read past okno, in the tables and, on SQLite, in the files'
//! bytes), what an older okno left plain is sealed at start, a wrong key stops the start with
//! a clear message, and a rotation moves everything to a new key that alone opens it.

use okno_store::seal::SecretKey;
use okno_testkit::telegram::TelegramSim;
use okno_testkit::{Sink, TestApp, TestDb};
use serde_json::json;

use super::{final_status, inbound_conversation, reply, SECRET};

const TOKEN: &str = "777001:SEALED-bot-token-at-rest";
const HOOK_SECRET: &str = "subscription-secret-at-rest-42";
const TOTP_KEY: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// The stored channel configs, subscription secrets and operators' authenticator keys, read
/// from the tables directly.
async fn raw_secrets(db: &TestDb) -> Vec<String> {
    const SQL: &str =
        "SELECT config FROM channels UNION ALL SELECT secret FROM webhooks UNION ALL SELECT secret FROM operator_totp";
    if let Some(path) = db.url.strip_prefix("sqlite://") {
        let path = path.to_string();
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut stmt = conn.prepare(SQL).unwrap();
            stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
        })
        .await
        .unwrap()
    } else {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar::<_, String>(SQL).fetch_all(&mut conn).await.unwrap()
    }
}

/// PostgreSQL: the files of the tables that hold secrets.
async fn pg_table_files(db: &TestDb) -> Option<Vec<i64>> {
    use sqlx::Connection;
    if db.url.starts_with("sqlite") {
        return None;
    }
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let sql = "SELECT CAST(pg_relation_filenode('channels') AS BIGINT) UNION ALL \
               SELECT CAST(pg_relation_filenode('webhooks') AS BIGINT)";
    Some(sqlx::query_scalar::<_, i64>(sql).fetch_all(&mut conn).await.unwrap())
}

/// The bytes of the SQLite database and its journal files, as a copy of the folder holds them.
fn sqlite_bytes(db: &TestDb) -> Option<Vec<u8>> {
    let path = db.url.strip_prefix("sqlite://")?;
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
            all.extend(bytes);
        }
    }
    assert!(all.len() > 4096, "the database files were read");
    Some(all)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Everything sealed: nothing of the three secrets in the tables or the files.
async fn assert_sealed(db: &TestDb) {
    let raw = raw_secrets(db).await;
    assert!(raw.len() >= 3, "{raw:?}");
    for value in &raw {
        for secret in [TOKEN, SECRET, HOOK_SECRET, TOTP_KEY] {
            assert!(!value.contains(secret), "`{secret}` is stored plain: {value}");
        }
    }
    assert!(raw.iter().all(|v| v.contains("sealed:v1:")), "{raw:?}");
    if let Some(bytes) = sqlite_bytes(db) {
        for secret in [TOKEN, SECRET, HOOK_SECRET, TOTP_KEY] {
            assert!(!contains(&bytes, secret), "`{secret}` is in the SQLite files");
        }
    }
}

/// A Telegram bot, a webhook channel to `site` and a subscription to `hooks`.
async fn connect(app: &TestApp, sim: &TelegramSim, site: &Sink, hooks: &Sink) -> (String, String) {
    sim.add_bot(TOKEN, "sealed_bot");
    let bot = app.telegram_channel(sim, TOKEN, "polling").await;
    let ch = app.webhook_channel(&format!("{}/out", site.url), SECRET).await;
    let sub = app
        .post(
            "/api/v1/webhooks",
            json!({"url": format!("{}/hook", hooks.url), "events": ["message.received"], "secret": HOOK_SECRET}),
        )
        .await;
    assert_eq!(sub.status, 201, "{sub:?}");
    (bot, ch)
}

/// The bot, the webhook channel and the subscription all still work: the token reaches
/// Telegram, the channel's secret checks an inbound message and signs the reply, and the
/// subscription's signs its delivery.
async fn assert_working(app: &TestApp, sim: &TelegramSim, site: &Sink, hooks: &Sink, ch: &str, round: usize) {
    let user = format!("user-{round}");
    let conv = inbound_conversation(app, ch, &user).await;
    let id = reply(app, &conv, json!({"text": format!("reply {round}")})).await;
    assert_eq!(final_status(app, &id).await["status"], "sent");
    let sent = site.wait_accepted(round, 10).await;
    assert!(sent.iter().all(|r| r.signature_ok), "the reply is signed with the channel's secret");
    let delivered = hooks.wait_accepted(round, 10).await;
    assert!(delivered.iter().all(|r| r.signature_ok), "the delivery is signed with the subscription's secret");

    let ann = sim.user(TOKEN, 7100 + round as i64, "Ann");
    ann.send_text(&format!("to the bot {round}"));
    let m = app.wait_message(|m| m["text"] == format!("to the bot {round}")).await;
    let to_bot = reply(app, m["conversation_id"].as_str().unwrap(), json!({"text": "from the bot"})).await;
    assert_eq!(final_status(app, &to_bot).await["status"], "sent", "the token opened and reached Telegram");
}

async fn sealed_in_the_database_and_never_shown(db: TestDb) {
    // The key file: the default, without OKNO_SECRET_KEY.
    let app = TestApp::spawn_on(db, |s| s.secret_key = None).await;
    let (sim, site, hooks) = (TelegramSim::start().await, Sink::start(SECRET).await, Sink::start(HOOK_SECRET).await);
    let (bot, ch) = connect(&app, &sim, &site, &hooks).await;
    assert_working(&app, &sim, &site, &hooks, &ch, 1).await;
    assert_sealed(&app.db).await;
    for path in ["/api/v1/channels".to_string(), format!("/api/v1/channels/{bot}"), "/api/v1/webhooks".to_string()] {
        let shown = app.get(&path).await.body.to_string();
        for secret in [TOKEN, SECRET, HOOK_SECRET, "sealed:v1"] {
            assert!(!shown.contains(secret), "{path} shows {secret}: {shown}");
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(app.data_dir.join("secret.key")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }
}

async fn plain_secrets_an_older_okno_left_are_sealed_at_start(db: TestDb) {
    let mut app = TestApp::spawn_on(db, |_| {}).await;
    let (sim, site, hooks) = (TelegramSim::start().await, Sink::start(SECRET).await, Sink::start(HOOK_SECRET).await);
    let (bot, ch) = connect(&app, &sim, &site, &hooks).await;
    app.stop().await;
    // As okno kept them before sealing.
    let plain_bot = json!({"token": TOKEN, "api_base": sim.api_base(), "mode": "polling"}).to_string();
    let plain_site = json!({"outbound_url": format!("{}/out", site.url), "secret": SECRET}).to_string();
    app.db
        .execute_raw(&[
            format!("UPDATE channels SET config = '{plain_bot}' WHERE id = '{bot}'"),
            format!("UPDATE channels SET config = '{plain_site}' WHERE id = '{ch}'"),
            format!("UPDATE webhooks SET secret = '{HOOK_SECRET}'"),
        ])
        .await;
    assert!(raw_secrets(&app.db).await.iter().any(|v| v.contains(TOKEN)));
    let files = pg_table_files(&app.db).await;
    app.restart().await;
    assert_sealed(&app.db).await;
    if let Some(before) = files {
        // The tables were rewritten: the old row versions holding the plain values are gone.
        let after = pg_table_files(&app.db).await.unwrap();
        assert!(before.iter().zip(&after).all(|(b, a)| b != a), "{before:?} {after:?}");
    }
    assert_working(&app, &sim, &site, &hooks, &ch, 1).await;
    // Sealing is done once: a second start finds nothing plain and changes nothing.
    let before = raw_secrets(&app.db).await;
    app.restart().await;
    assert_eq!(raw_secrets(&app.db).await, before);
}

async fn a_wrong_key_stops_the_start_with_the_key_it_needs(db: TestDb) {
    let mut app = TestApp::spawn_on(db, |_| {}).await;
    app.stop().await;
    let right = SecretKey::parse(&app.db.secret_key(), "test").unwrap();
    let mut wrong = app.settings.clone();
    wrong.secret_key = Some(SecretKey::generate().to_base64().into());
    // Nothing sealed yet, and still a process with another key is refused: it would seal
    // what it is given under a key the others cannot open.
    let err = okno_server::open_store(&wrong).await.err().expect("the start is refused");
    assert_eq!(err.code, "secret_key_mismatch", "{}", err.message);
    app.restart().await;
    app.webhook_channel("http://127.0.0.1:9/out", SECRET).await;
    app.stop().await;
    let err = okno_server::open_store(&wrong).await.err().expect("the start is refused");
    assert_eq!(err.code, "secret_key_mismatch");
    assert!(err.message.contains(&format!("sealed under another key (id {})", right.id())), "{}", err.message);
    assert!(err.message.contains("OKNO_SECRET_KEY"), "{}", err.message);
    // A fresh data folder makes a key of its own: refused the same way, and that key removed
    // so that the right one can be put in its place.
    let mut fresh = app.settings.clone();
    fresh.secret_key = None;
    fresh.data_dir = app.data_dir.join("elsewhere");
    let err = okno_server::open_store(&fresh).await.err().expect("the start is refused");
    assert_eq!(err.code, "secret_key_mismatch");
    assert!(!fresh.data_dir.join("secret.key").exists());
    // The right key still opens everything.
    app.restart().await;
    assert_eq!(app.get("/api/v1/channels").await.body["items"].as_array().unwrap().len(), 1);
}

async fn rotation_moves_every_secret_to_a_new_key_that_alone_opens_them(db: TestDb) {
    let mut app = TestApp::spawn_on(db, |s| s.secret_key = None).await;
    let (sim, site, hooks) = (TelegramSim::start().await, Sink::start(SECRET).await, Sink::start(HOOK_SECRET).await);
    let (_, ch) = connect(&app, &sim, &site, &hooks).await;
    assert_working(&app, &sim, &site, &hooks, &ch, 1).await;
    // An operator's authenticator key is a credential too.
    let store = &app.running().engine.store;
    let olga = store.create_operator("olga", okno_domain::model::Role::Operator, "$argon2id$x").await.unwrap();
    store.begin_totp(&olga.id, TOTP_KEY).await.unwrap();
    store.enable_totp(&olga.id, 1, &[], "operator:olga").await.unwrap();
    let key_file = app.data_dir.join("secret.key");
    let old = std::fs::read_to_string(&key_file).unwrap();

    let busy = okno_server::secrets::rotate(&app.settings, None).await.unwrap_err();
    assert_eq!(busy.code, "database_in_use", "{}", busy.message);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), old, "a refused rotation changes nothing");

    app.stop().await;
    let before = raw_secrets(&app.db).await;
    let done = okno_server::secrets::rotate(&app.settings, None).await.unwrap();
    assert_eq!(done.resealed, 4, "{done:?}");
    let new = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new, old);
    assert_eq!(done.new_id, SecretKey::parse(&new, "new").unwrap().id());
    assert!(!app.data_dir.join("secret.key.old").exists());
    let after = raw_secrets(&app.db).await;
    assert!(after.iter().all(|v| v.contains(&format!("sealed:v1:{}:", done.new_id))), "{after:?}");
    assert!(before.iter().zip(&after).all(|(b, a)| b != a));
    assert_sealed(&app.db).await;

    app.restart().await;
    assert_working(&app, &sim, &site, &hooks, &ch, 2).await;
    let totp = app.running().engine.store.totp_state(&olga.id).await.unwrap();
    assert_eq!(totp.secret.as_deref(), Some(TOTP_KEY), "the authenticator key opens under the new key");
    app.stop().await;

    // The old key opens nothing any more.
    let mut with_old = app.settings.clone();
    with_old.secret_key = Some(old.trim().to_string().into());
    let err = okno_server::open_store(&with_old).await.err().expect("the old key is refused");
    assert_eq!(err.code, "secret_key_mismatch", "{}", err.message);

    // With OKNO_SECRET_KEY the new key is given (okno cannot change its environment).
    let mut env = app.settings.clone();
    env.secret_key = Some(new.trim().to_string().into());
    assert_eq!(okno_server::secrets::rotate(&env, None).await.unwrap_err().code, "new_key_needed");
    let third = SecretKey::generate();
    let done = okno_server::secrets::rotate(&env, Some(third.clone())).await.unwrap();
    assert_eq!((done.resealed, done.new_id.as_str()), (4, third.id()));
    assert_eq!(okno_server::open_store(&env).await.err().unwrap().code, "secret_key_mismatch");
    env.secret_key = Some(third.to_base64().into());
    app.settings = env;
    app.restart().await;
    assert_working(&app, &sim, &site, &hooks, &ch, 3).await;
}

/// A rotation cut short after the new key replaced `secret.key` and before anything was
/// sealed again: the next start finishes it.
async fn a_rotation_cut_short_is_finished_at_the_next_start(db: TestDb) {
    let mut app = TestApp::spawn_on(db, |s| s.secret_key = None).await;
    let (sim, site, hooks) = (TelegramSim::start().await, Sink::start(SECRET).await, Sink::start(HOOK_SECRET).await);
    let (_, ch) = connect(&app, &sim, &site, &hooks).await;
    app.stop().await;
    let (key_file, old_file) = okno_store::seal::key_files(&app.data_dir);
    let old = okno_store::seal::read_key_file(&key_file).unwrap();
    okno_store::seal::write_key_file(&old_file, &old).unwrap();
    let new = SecretKey::generate();
    okno_store::seal::write_key_file(&key_file, &new).unwrap();
    app.restart().await;
    assert!(!old_file.exists());
    let raw = raw_secrets(&app.db).await;
    assert!(raw.iter().all(|v| v.contains(&format!("sealed:v1:{}:", new.id()))), "{raw:?}");
    assert_working(&app, &sim, &site, &hooks, &ch, 1).await;
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotation_cut_short_is_finished_at_the_next_start() {
        super::a_rotation_cut_short_is_finished_at_the_next_start(TestDb::sqlite()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn secrets_are_sealed_in_the_database_and_never_shown() {
        sealed_in_the_database_and_never_shown(TestDb::sqlite()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plain_secrets_an_older_okno_left_are_sealed_once_at_start() {
        plain_secrets_an_older_okno_left_are_sealed_at_start(TestDb::sqlite()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_key_stops_the_start_with_a_clear_error() {
        a_wrong_key_stops_the_start_with_the_key_it_needs(TestDb::sqlite()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_moves_every_secret_to_a_new_key_and_the_old_opens_nothing() {
        rotation_moves_every_secret_to_a_new_key_that_alone_opens_them(TestDb::sqlite()).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotation_cut_short_is_finished_at_the_next_start() {
        let Some(db) = TestDb::postgres().await else { return };
        super::a_rotation_cut_short_is_finished_at_the_next_start(db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn secrets_are_sealed_in_the_database_and_never_shown() {
        let Some(db) = TestDb::postgres().await else { return };
        sealed_in_the_database_and_never_shown(db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plain_secrets_an_older_okno_left_are_sealed_once_at_start() {
        let Some(db) = TestDb::postgres().await else { return };
        plain_secrets_an_older_okno_left_are_sealed_at_start(db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_key_stops_the_start_with_a_clear_error() {
        let Some(db) = TestDb::postgres().await else { return };
        a_wrong_key_stops_the_start_with_the_key_it_needs(db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_moves_every_secret_to_a_new_key_and_the_old_opens_nothing() {
        let Some(db) = TestDb::postgres().await else { return };
        rotation_moves_every_secret_to_a_new_key_that_alone_opens_them(db).await;
    }
}
