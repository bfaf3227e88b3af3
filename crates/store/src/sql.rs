//! [`SqlStore`]: the store on SQLite or PostgreSQL, chosen by the URL scheme. Here are opening
//! it (migrations included), the connection plumbing every aggregate's module runs its
//! operations through (`on!`: one transaction for writes, one connection for reads), and the
//! work on the secrets of the whole database (the key check, sealing them all under a new key).
//!
//! The operations live with what they own, each module with its SQL and its row mapping:
//! `channels`, `contacts` (and `link_codes`), `conversations` (and `attachments`), `outbox`,
//! `receiving`, `webhooks`, `events`, `rules`, `notifications`, `broadcasts`, `surveys`,
//! `tasks`, `bots`, `operators`, `two_factor`, `directory`, `tokens`, `audit`, `search`,
//! `reports`, `processes`; `statements` holds what they share. They are written once against
//! [`Conn`] with `$N` placeholders; the few dialect differences branch on [`Backend`].

use async_trait::async_trait;
use okno_domain::{Error, Result};

use crate::db::{args, Conn};
use crate::lite::{Lite, Op};
use crate::pg::Pg;
use crate::processes::ProcessStore;
use crate::statements::to_json;
use crate::*;

/// The store on SQLite or PostgreSQL.
pub struct SqlStore {
    pub(crate) backend: Backend,
    engine: Engine,
    /// The database's URL and, on SQLite, its file: what showing this process alive locks.
    pub(crate) url: String,
    pub(crate) sqlite_file: Option<std::path::PathBuf>,
    /// What this process holds while it shows itself alive ([`crate::liveness`]).
    pub(crate) alive: std::sync::Mutex<Option<crate::liveness::Held>>,
    /// Seals secrets on write, opens them on read ([`crate::seal`]).
    pub(crate) sealer: Option<std::sync::Arc<crate::seal::Sealer>>,
}

enum Engine {
    Lite(Lite),
    Pg(Pg),
}

/// Which backend a database URL selects; anything else is a configuration error.
pub fn backend_of(url: &str) -> Result<Backend> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        other => Err(Error::invalid(
            "unsupported_database_url",
            format!("unsupported database URL scheme `{other}`: use sqlite://PATH or postgres://USER@HOST/DB"),
        )),
    }
}

/// Runs a block as a store operation: `on!(self.write, |c| body)`.
macro_rules! on {
    ($self:ident . $mode:ident, |$c:ident| $body:expr) => {
        $self.$mode(Box::new(move |$c: &mut dyn Conn| Box::pin(async move { $body }))).await
    };
}
#[allow(unused_imports)]
pub(crate) use on;

impl SqlStore {
    /// Connects, creating a SQLite file (and its folder) if needed, and applies migrations.
    pub async fn open(url: &str, opts: StoreOptions) -> Result<Self> {
        let backend = backend_of(url)?;
        let mut sqlite_file = None;
        let engine = match backend {
            Backend::Sqlite => {
                let path = sqlite_path(url)?;
                let lite = Lite::open(&path, opts.busy_timeout_ms, opts.max_connections, opts.sqlite_full_sync)?;
                sqlite_file = Some(path);
                Engine::Lite(lite)
            }
            Backend::Postgres => Engine::Pg(Pg::open(url, opts.max_connections, opts.acquire_timeout_ms).await?),
        };
        let sealer = opts.sealer.clone();
        let store = SqlStore { backend, engine, url: url.to_string(), sqlite_file, alive: Default::default(), sealer };
        on!(store.write, |c| crate::migrations::migrate(c, backend).await)?;
        Ok(store)
    }

    /// Runs `op` in a transaction.
    pub(crate) async fn write<T: Send + 'static>(&self, op: Op<T>) -> Result<T> {
        match &self.engine {
            Engine::Lite(l) => l.write(op).await,
            Engine::Pg(p) => p.write(op).await,
        }
    }

    /// Runs `op` on a connection for reading.
    pub(crate) async fn read<T: Send + 'static>(&self, op: Op<T>) -> Result<T> {
        match &self.engine {
            Engine::Lite(l) => l.read(op).await,
            Engine::Pg(p) => p.read(op).await,
        }
    }

    /// Closes the connections (the SQLite file is checkpointed on the last close).
    pub async fn close(&self) {
        if let Ok(mut alive) = self.alive.lock() {
            alive.take();
        }
        match &self.engine {
            Engine::Lite(l) => l.close(),
            Engine::Pg(p) => p.close().await,
        }
    }
}

impl SqlStore {
    pub(crate) fn sealed_secret(&self, secret: &str) -> Result<String> {
        match &self.sealer {
            Some(s) => s.reseal(secret),
            None => Ok(secret.to_string()),
        }
    }

    pub(crate) fn opened_secret(&self, secret: String) -> Result<String> {
        match &self.sealer {
            Some(s) => s.open(&secret),
            None => Ok(secret),
        }
    }

    /// Brings every stored secret under the sealer's current key, in one transaction: plain
    /// values (written before sealing) and values under the previous key (a rotation) are
    /// sealed again; a value under a key the sealer does not have stops it with
    /// `secret_key_mismatch`, changing nothing. Returns how many values were written.
    ///
    /// When it wrote anything, the values it replaced are wiped from the database's files too
    /// (see [`SqlStore::scrub`]).
    pub async fn seal_secrets_with(&self, sealer: &crate::seal::Sealer) -> Result<usize> {
        let sealer = sealer.clone();
        let written = on!(self.write, |c| {
            check_key(c, &sealer).await?;
            let mut written = 0;
            for table in ["channels", "connectors"] {
                for row in c.rows(&format!("SELECT id, config FROM {table} ORDER BY id"), args![]).await? {
                    let config = row.js("config")?;
                    let sealed = sealer.seal_config(&config)?;
                    if sealed != config {
                        let update = format!("UPDATE {table} SET config = $1 WHERE id = $2");
                        c.exec(&update, args![to_json(&sealed), row.s("id")?]).await?;
                        written += 1;
                    }
                }
            }
            for row in c.rows("SELECT id, secret FROM webhooks ORDER BY id", args![]).await? {
                let secret = row.s("secret")?;
                let sealed = sealer.reseal(&secret)?;
                if sealed != secret {
                    c.exec("UPDATE webhooks SET secret = $1 WHERE id = $2", args![&sealed, row.s("id")?]).await?;
                    written += 1;
                }
            }
            for row in c.rows("SELECT operator_id, secret FROM operator_totp ORDER BY operator_id", args![]).await? {
                let secret = row.s("secret")?;
                let sealed = sealer.reseal(&secret)?;
                if sealed != secret {
                    c.exec(
                        "UPDATE operator_totp SET secret = $1 WHERE operator_id = $2",
                        args![&sealed, row.s("operator_id")?],
                    )
                    .await?;
                    written += 1;
                }
            }
            Ok(written)
        })?;
        if written > 0 {
            if let Err(e) = self.scrub().await {
                tracing::warn!(error = %e.message, "the replaced secrets may linger in the database's free space");
            }
        }
        Ok(written)
    }

    /// Rewrites the places replaced secrets may linger: SQLite's whole file (`VACUUM`: free
    /// pages hold old rows) and its write-ahead log, emptied (`-wal` holds old page images);
    /// PostgreSQL's tables that hold secrets (`VACUUM FULL`: old row versions). What
    /// PostgreSQL's own write-ahead log and earlier backups hold stays there.
    async fn scrub(&self) -> Result<()> {
        let backend = self.backend;
        on!(self.read, |c| {
            match backend {
                Backend::Sqlite => {
                    c.exec("VACUUM", args![]).await?;
                    c.rows("PRAGMA wal_checkpoint(TRUNCATE)", args![]).await?;
                }
                Backend::Postgres => {
                    c.exec("VACUUM FULL channels, webhooks, operator_totp", args![]).await?;
                }
            }
            Ok(())
        })
    }

    /// Makes sure no okno runs on this database, for work that must be done alone (sealing
    /// every secret under a new key): on SQLite by taking the database's lock, held until the
    /// store is closed; on PostgreSQL by looking for live processes' locks.
    pub async fn hold_alone(&self, owner: &str) -> Result<()> {
        if self.sqlite_file.is_some() {
            return self.hold_liveness(owner).await;
        }
        let alive = on!(self.read, |c| crate::liveness::alive_on_postgres(c).await)?;
        if alive > 0 {
            return Err(Error::conflict(
                "database_in_use",
                format!("{alive} okno processes are running on this database; stop every one of them first"),
            ));
        }
        Ok(())
    }

    /// [`SqlStore::seal_secrets_with`] this store's own sealer (none: nothing to do).
    pub async fn seal_secrets(&self) -> Result<usize> {
        match self.sealer.clone() {
            Some(s) => self.seal_secrets_with(&s).await,
            None => Ok(0),
        }
    }
}

/// The text whose sealed form in `secret_key` proves a key is the database's.
const KEY_PROOF: &str = "okno secret key";

/// Makes sure `sealer`'s key is the one the database's secrets are sealed under (recording it
/// when none is yet, moving the record to the new key during a rotation).
async fn check_key(c: &mut dyn Conn, sealer: &crate::seal::Sealer) -> Result<()> {
    c.exec(
        "INSERT INTO secret_key (id, key_id, proof) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
        args![sealer.key_id(), sealer.seal(KEY_PROOF)],
    )
    .await?;
    let row = c.one("SELECT proof FROM secret_key WHERE id = 1", args![]).await?;
    let stored = row.s("proof")?;
    let proof = sealer.reseal(&stored)?;
    if sealer.open(&proof)? != KEY_PROOF {
        return Err(crate::seal::other_key("?", sealer.key_id()));
    }
    if proof != stored {
        c.exec("UPDATE secret_key SET key_id = $1, proof = $2 WHERE id = 1", args![sealer.key_id(), &proof]).await?;
    }
    Ok(())
}

/// The file a `sqlite://PATH` URL names; its folder is created.
pub(crate) fn sqlite_path(url: &str) -> Result<std::path::PathBuf> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path.is_empty() || path == ":memory:" {
        return Err(Error::invalid("unsupported_database_url", "SQLite needs a file path: sqlite://PATH"));
    }
    let path = std::path::PathBuf::from(path);
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::invalid("data_dir_unusable", format!("cannot create `{}`: {e}", parent.display()))
            })?;
        }
    }
    Ok(path)
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }
}
