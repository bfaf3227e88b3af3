//! Throw-away databases for tests: a SQLite file in a fresh folder, or a fresh PostgreSQL
//! database on the local server (dropped again when the handle goes).
//!
//! PostgreSQL is found through `PG_TEST_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! When it cannot be reached the PostgreSQL tests are skipped with a note, unless
//! `PG_TEST_REQUIRED=1` (set by `.ci/run`), which turns that into a failure.

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::{Connection, Executor};

use okno_domain::ids::ChannelId;
use okno_domain::model::ChannelKind;

use crate::{InboundMessage, InboundSender, NewChannel, SqlStore, Store, StoreOptions};

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    dir: Option<PathBuf>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A SQLite file in a new temporary folder.
    pub fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("okno-test-{}", okno_domain::ids::new_id()));
        let url = format!("sqlite://{}/okno.db", dir.display());
        Self { url, dir: Some(dir), pg: None }
    }

    /// A new database on the local PostgreSQL, or `None` (with a note) when there is none.
    pub async fn postgres() -> Option<Self> {
        let admin =
            std::env::var("PG_TEST_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                if std::env::var("PG_TEST_REQUIRED").is_ok_and(|v| v == "1") {
                    panic!("PG_TEST_REQUIRED=1 but PostgreSQL at {admin} is unreachable: {e}");
                }
                eprintln!("skipping a PostgreSQL test: {admin} is unreachable ({e})");
                return None;
            }
        };
        let name = format!("okno_test_{}", okno_domain::ids::new_id());
        conn.execute(&*format!("CREATE DATABASE {name}")).await.expect("create test database");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
        Some(Self { url: format!("{base}/{name}"), dir: None, pg: Some((admin, name)) })
    }

    /// Another handle on an existing database, which it leaves alone when dropped (for a
    /// second process on the same database).
    pub fn borrowed(url: &str) -> Self {
        Self { url: url.to_string(), dir: None, pg: None }
    }

    /// The PostgreSQL admin URL and this database's name.
    pub fn postgres_admin(&self) -> Option<(&str, &str)> {
        self.pg.as_ref().map(|(a, n)| (a.as_str(), n.as_str()))
    }

    /// Opens (and migrates) the store on this database.
    pub async fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.open_sql().await)
    }

    pub async fn open_sql(&self) -> SqlStore {
        let key = crate::seal::SecretKey::parse(&self.secret_key(), "the test key").expect("test key");
        let options =
            StoreOptions { sealer: Some(Arc::new(crate::seal::Sealer::new(key, None))), ..StoreOptions::default() };
        let store = SqlStore::open(&self.url, options).await.expect("open test store");
        store.seal_secrets().await.expect("seal the test store's secrets");
        store
    }

    /// The key that seals this database's secrets (base64): the same for every handle on the
    /// database, so that a second process on it opens them as okno's processes sharing
    /// `OKNO_SECRET_KEY` do.
    pub fn secret_key(&self) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(format!("okno test key {}", self.url)))
    }

    /// Runs statements on the database directly, past the store (what an older okno, or a
    /// clock, left there).
    pub async fn execute_raw<S: AsRef<str>>(&self, statements: &[S]) {
        let statements: Vec<String> = statements.iter().map(|s| s.as_ref().to_string()).collect();
        if let Some(path) = self.url.strip_prefix("sqlite://") {
            let path = path.to_string();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).expect("open the SQLite file");
                conn.busy_timeout(std::time::Duration::from_secs(30)).expect("busy timeout");
                for s in statements {
                    conn.execute_batch(&s).expect("run a raw statement");
                }
            })
            .await
            .expect("raw statements");
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.expect("connect to PostgreSQL");
            for s in statements {
                conn.execute(s.as_str()).await.expect("run a raw statement");
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((admin, name)) = self.pg.take() {
            // Drop runs outside any runtime we may borrow, so the cleanup gets its own.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = conn.execute(&*format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    }
                });
            })
            .join();
        }
    }
}

/// A webhook channel named `name`; its id.
pub async fn webhook_channel(store: &dyn Store, name: &str) -> ChannelId {
    store
        .create_channel(NewChannel {
            kind: ChannelKind::Webhook,
            name: name.into(),
            config: serde_json::json!({"outbound_url": "https://example.org/in", "secret": "s"}),
            info: serde_json::json!({}),
        })
        .await
        .expect("create a test channel")
        .id
}

/// A text from `user` on `channel`, the platform's message id `id`.
pub fn inbound_text(channel: &str, user: &str, id: &str, text: &str) -> InboundMessage {
    InboundMessage {
        channel_id: channel.into(),
        sender: InboundSender { user_id: user.into(), chat_id: user.into(), ..Default::default() },
        external_id: id.into(),
        text: Some(text.into()),
        attachments: vec![],
        button_data: None,
        reply_to: None,
        reply_to_external: None,
        author: None,
        member: None,
        bot_turn: false,
        subscription: None,
        survey: Default::default(),
        context: None,
        conversation_hint: None,
    }
}

/// Runs each named scenario as two tests, `sqlite::name` and `postgres::name`, each on a
/// throw-away database. A scenario is `async fn name(store: Arc<dyn Store>)`, or with `with_db`
/// first, `async fn name(store: Arc<dyn Store>, db: &TestDb)` (for raw SQL or a second process).
#[macro_export]
macro_rules! both_backends {
    (with_db $($name:ident),+ $(,)?) => { $crate::both_backends!(@backends with_db $($name),+); };
    ($($name:ident),+ $(,)?) => { $crate::both_backends!(@backends plain $($name),+); };
    (@backends $how:ident $($name:ident),+) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::testing::TestDb::sqlite();
                    $crate::both_backends!(@call $how db $name);
                }
            )+
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::testing::TestDb::postgres().await else { return };
                    $crate::both_backends!(@call $how db $name);
                }
            )+
        }
    };
    (@call plain $db:ident $name:ident) => { super::$name($db.open().await).await };
    (@call with_db $db:ident $name:ident) => { super::$name($db.open().await, &$db).await };
}
