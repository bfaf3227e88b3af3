//! The store's logic, written once against [`Conn`] and run on SQLite or PostgreSQL. Queries
//! use `$N` placeholders; the few dialect differences (claiming jobs with `FOR UPDATE SKIP
//! LOCKED`, backups) branch on [`Backend`]. Every trait method is one operation: one
//! transaction for writes, one connection for reads.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use async_trait::async_trait;
use okno_domain::ids::new_id;
use okno_domain::model::*;
use okno_domain::time::{now_ms, Millis};
use okno_domain::{Error, Result};
use serde_json::{json, Value};

use crate::contacts::{identity_from, load_contact, IDENTITY_COLS};
use crate::conversations::current_conversation;
use crate::db::{args, Arg, Conn, Row};
use crate::lite::{Lite, Op};
use crate::outbox::{enqueue, insert_job, insert_outbounds, next_identity, Outbound};
use crate::pg::Pg;
use crate::statements::{exec_rows, query_rows, to_json, value_rows, Sql, INSERT_ROWS};
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
            for row in c.rows("SELECT id, config FROM channels ORDER BY id", args![]).await? {
                let config = row.js("config")?;
                let sealed = sealer.seal_config(&config)?;
                if sealed != config {
                    c.exec("UPDATE channels SET config = $1 WHERE id = $2", args![to_json(&sealed), row.s("id")?])
                        .await?;
                    written += 1;
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

// ---------------------------------------------------------------------------------------------
// Loaders shared by several operations; each takes a connection so it can run inside a
// transaction.

// ---------------------------------------------------------------------------------------------
// Writers used inside transactions.

// ---------------------------------------------------------------------------------------------

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<()> {
        on!(self.read, |c| {
            c.rows("SELECT 1", args![]).await?;
            Ok(())
        })
    }

    async fn backup(&self, dest: &Path) -> Result<()> {
        let backend = self.backend;
        let dest = dest.to_path_buf();
        on!(self.read, |c| {
            let dest = dest.as_path();
            if dest.exists() {
                return Err(Error::conflict("backup_exists", format!("`{}` already exists", dest.display())));
            }
            match backend {
                Backend::Sqlite => {
                    let path =
                        dest.to_str().ok_or_else(|| Error::invalid("invalid_path", "the backup path is not UTF-8"))?;
                    c.rows("VACUUM INTO $1", args![path]).await?;
                    Ok(())
                }
                Backend::Postgres => Err(Error::unprocessable(
                    "backup_unsupported",
                    "on PostgreSQL use pg_dump (okno backup runs it for you from the command line)",
                )),
            }
        })
    }

    async fn hold_liveness(&self, owner: &str) -> Result<()> {
        let held = match &self.sqlite_file {
            Some(file) => crate::liveness::hold_sqlite(file)?,
            None => crate::liveness::hold_postgres(&self.url, owner).await?,
        };
        if let Ok(mut alive) = self.alive.lock() {
            *alive = Some(held);
        }
        Ok(())
    }

    async fn end_liveness(&self) {
        let held = self.alive.lock().ok().and_then(|mut alive| alive.take());
        if let Some(held) = held {
            held.release().await;
        }
    }

    async fn announce(&self, me: &str, bulk: bool) -> Result<()> {
        if self.backend == Backend::Sqlite {
            return Ok(());
        }
        let me = crate::signals::payload(me, bulk);
        on!(self.read, |c| {
            c.exec(&format!("SELECT pg_notify('{}', $1)", crate::signals::CHANNEL), args![me]).await.map(|_| ())
        })
    }

    async fn processes_alive(&self) -> Result<Option<i64>> {
        if self.backend == Backend::Sqlite {
            return Ok(None);
        }
        on!(self.read, |c| crate::liveness::alive_on_postgres(c).await).map(Some)
    }

    async fn listen_announcements(&self, me: &str) -> Result<Option<crate::signals::Announcements>> {
        if self.backend == Backend::Sqlite {
            return Ok(None);
        }
        crate::signals::listen(&self.url, me).await.map(Some)
    }

    async fn reclaim_dead(&self, me: &str) -> Result<Vec<String>> {
        let holding = self.alive.lock().is_ok_and(|a| a.is_some());
        if !holding {
            return Ok(Vec::new());
        }
        let owners = {
            let me = me.to_owned();
            on!(self.read, |c| crate::liveness::lease_owners(c, &me).await)?
        };
        let mut dead = Vec::new();
        for owner in owners {
            let sqlite = self.backend == Backend::Sqlite;
            let cleared = on!(self.write, |c| {
                // SQLite: this process holds the database's lock, so every other owner is gone.
                if !sqlite && !crate::liveness::dead_on_postgres(c, &owner).await? {
                    return Ok(None);
                }
                crate::liveness::clear_leases(c, &owner).await.map(|n| Some((owner, n)))
            })?;
            if let Some((owner, n)) = cleared {
                tracing::info!(owner, leases = n, "took back the work of a process that is gone");
                dead.push(owner);
            }
        }
        Ok(dead)
    }

    async fn queue_depth(&self) -> Result<i64> {
        on!(self.read, |c| c.one("SELECT COUNT(*) AS n FROM jobs", args![]).await.and_then(|r| r.i("n")))
    }

    async fn refresh_statistics(&self) -> Result<Vec<String>> {
        if self.backend != Backend::Postgres {
            return Ok(Vec::new());
        }
        on!(self.read, |c| {
            // At least 500 rows, and more than twice as many as when last counted (or never
            // counted): a table that grows is counted about once per doubling. One whose rows
            // come and go (the outbox) is not counted for that; autovacuum sees to it.
            let rows = c
                .rows_planned(
                    "SELECT s.relname::text AS name FROM pg_stat_user_tables s JOIN pg_class k ON k.oid = s.relid \
                     WHERE s.schemaname = current_schema() AND s.n_live_tup >= $1 \
                     AND s.n_live_tup > 2 * GREATEST(k.reltuples, 0)",
                    args![500],
                )
                .await?;
            let mut names = Vec::with_capacity(rows.len());
            for row in rows {
                let name = row.s("name")?;
                c.exec(&format!("ANALYZE \"{}\"", name.replace('"', "\"\"")), args![]).await?;
                names.push(name);
            }
            Ok(names)
        })
    }

    // --- business events and rules ----------------------------------------------------------

    async fn accept_event(&self, new: NewEvent) -> Result<(EventRecord, bool)> {
        on!(self.write, |c| {
            let id = new_id();
            let now = now_ms();
            let status = if new.send_at.is_some_and(|t| t > now) { "scheduled" } else { "accepted" };
            let n = c
                .exec(
                    "INSERT INTO events (id, type, key, data, status, send_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (key) DO NOTHING",
                    args![&id, &new.event_type, &new.key, to_json(&new.data), status, new.send_at, now],
                )
                .await?;
            if n == 0 {
                let row = c.one("SELECT id FROM events WHERE key = $1", args![&new.key]).await?;
                return Ok((load_event(c, &row.s("id")?).await?, true));
            }
            insert_job(c, JobKind::ProcessEvent, &id, None, new.send_at.unwrap_or(now).max(now)).await?;
            // A new event has no deliveries yet: it is built here rather than read back.
            let record = EventRecord {
                id,
                event_type: new.event_type,
                key: new.key,
                data: new.data,
                status: status.to_string(),
                send_at: new.send_at,
                created_at: now,
                processed_at: None,
                deliveries: Vec::new(),
                unresolved: Vec::new(),
                rules: Vec::new(),
            };
            Ok((record, false))
        })
    }

    async fn get_event(&self, id: &str) -> Result<EventRecord> {
        let id = id.to_owned();
        on!(self.read, |c| load_event(c, &id).await)
    }

    async fn get_event_row(&self, id: &str) -> Result<EventRecord> {
        let id = id.to_owned();
        on!(self.read, |c| {
            let row = c
                .row(&format!("SELECT {EVENT_COLS} FROM events WHERE id = $1"), args![&id])
                .await?
                .ok_or_else(|| Error::not_found("event", &id))?;
            event_from(&row, Vec::new(), Vec::new(), Vec::new())
        })
    }

    async fn finish_event(&self, id: &str, status: &str) -> Result<()> {
        let (id, status) = (id.to_owned(), status.to_owned());
        on!(self.write, |c| {
            c.exec("UPDATE events SET status = $1, processed_at = $2 WHERE id = $3", args![&status, now_ms(), &id])
                .await?;
            Ok(())
        })
    }

    async fn notify(&self, n: Notification) -> Result<NotifyOutcome> {
        on!(self.write, |c| {
            let mut out = notify_many(c, vec![n]).await?;
            out.pop().ok_or_else(|| Error::internal("a notification without an outcome"))
        })
    }

    async fn notify_all(&self, ns: Vec<Notification>) -> Result<Vec<NotifyOutcome>> {
        on!(self.write, |c| notify_many(c, ns).await)
    }

    async fn put_rule(&self, name: &str, event: &str, spec: Value) -> Result<RuleRecord> {
        let (name, event) = (name.to_owned(), event.to_owned());
        on!(self.write, |c| {
            let now = now_ms();
            c.exec(
                "INSERT INTO rules (id, name, event, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (name) DO UPDATE SET event = $3, spec = $4, active = 1, updated_at = $5",
                args![new_id(), &name, &event, to_json(&spec), now],
            )
            .await?;
            let row = c.one(&format!("SELECT {RULE_COLS} FROM rules WHERE name = $1"), args![&name]).await?;
            rule_from(&row)
        })
    }

    async fn get_rule(&self, id: &str) -> Result<RuleRecord> {
        let id = id.to_owned();
        on!(self.read, |c| {
            let row = c
                .row(&format!("SELECT {RULE_COLS} FROM rules WHERE id = $1"), args![&id])
                .await?
                .ok_or_else(|| Error::not_found("rule", &id))?;
            rule_from(&row)
        })
    }

    async fn rules_of_messages(&self, message_ids: &[String]) -> Result<Vec<(String, String)>> {
        let message_ids = message_ids.to_vec();
        on!(self.read, |c| {
            let mut out = Vec::new();
            for chunk in message_ids.chunks(500) {
                let mut q = Sql::new(
                    "SELECT d.message_id, r.name FROM event_deliveries d JOIN rules r ON r.id = d.rule_id \
                     WHERE d.message_id IN (",
                );
                for (n, id) in chunk.iter().enumerate() {
                    q.push(if n == 0 { "" } else { ", " }).bind_s(id);
                }
                q.push(")");
                for row in query_rows(c, &q.text, &q.args, chunk.len()).await? {
                    out.push((row.s("message_id")?, row.s("name")?));
                }
            }
            Ok(out)
        })
    }

    async fn list_rules(&self) -> Result<Vec<RuleRecord>> {
        on!(self.read, |c| c
            .rows(&format!("SELECT {RULE_COLS} FROM rules ORDER BY name"), args![])
            .await?
            .iter()
            .map(rule_from)
            .collect())
    }

    async fn delete_rule(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        on!(self.write, |c| {
            if c.exec("DELETE FROM rules WHERE id = $1", args![&id]).await? == 0 {
                return Err(Error::not_found("rule", &id));
            }
            Ok(())
        })
    }

    async fn rules_for(&self, event_type: &str) -> Result<Vec<RuleRecord>> {
        let event_type = event_type.to_owned();
        on!(self.read, |c| {
            c.rows(
                &format!("SELECT {RULE_COLS} FROM rules WHERE event = $1 AND active = 1 ORDER BY name"),
                args![&event_type],
            )
            .await?
            .iter()
            .map(rule_from)
            .collect()
        })
    }

    async fn answers(&self, event_type: &str, from: Millis, to: Millis) -> Result<Vec<AnswerRow>> {
        let event_type = event_type.to_owned();
        on!(self.read, |c| {
            c.rows(
                "SELECT a.event_id, e.data, a.contact_id, a.value, a.created_at FROM answers a JOIN events e ON e.id = a.event_id \
                 WHERE e.type = $1 AND a.created_at >= $2 AND a.created_at < $3 ORDER BY a.created_at",
                args![&event_type, from, to],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(AnswerRow {
                    event_id: r.s("event_id")?,
                    event_data: r.js("data")?,
                    contact_id: r.s("contact_id")?,
                    value: r.s("value")?,
                    created_at: r.i("created_at")?,
                })
            })
            .collect()
        })
    }
}

const RULE_COLS: &str = "id, name, event, spec, active, created_at, updated_at";

fn rule_from(row: &Row) -> Result<RuleRecord> {
    Ok(RuleRecord {
        id: row.s("id")?,
        name: row.s("name")?,
        event: row.s("event")?,
        spec: row.js("spec")?,
        active: row.flag("active")?,
        created_at: row.i("created_at")?,
        updated_at: row.i("updated_at")?,
    })
}

const EVENT_COLS: &str = "id, type, key, data, status, send_at, created_at, processed_at";

fn event_from(
    row: &Row,
    deliveries: Vec<EventDelivery>,
    unresolved: Vec<Unresolved>,
    rules: Vec<RuleOutcome>,
) -> Result<EventRecord> {
    Ok(EventRecord {
        id: row.s("id")?,
        event_type: row.s("type")?,
        key: row.s("key")?,
        data: row.js("data")?,
        status: row.s("status")?,
        send_at: row.oi("send_at")?,
        created_at: row.i("created_at")?,
        processed_at: row.oi("processed_at")?,
        deliveries,
        unresolved,
        rules,
    })
}

async fn load_event(c: &mut dyn Conn, id: &str) -> Result<EventRecord> {
    let row = c
        .row(&format!("SELECT {EVENT_COLS} FROM events WHERE id = $1"), args![id])
        .await?
        .ok_or_else(|| Error::not_found("event", id))?;
    let deliveries = c
        .rows(
            "SELECT d.rule_id, d.contact_id, d.channel_id, d.message_id, d.error, d.code, d.tried, m.status AS message_status, \
             m.error AS message_error, m.conversation_id \
             FROM event_deliveries d LEFT JOIN messages m ON m.id = d.message_id WHERE d.event_id = $1 ORDER BY d.created_at, d.id",
            args![id],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(EventDelivery {
                rule_id: r.s("rule_id")?,
                contact_id: r.s("contact_id")?,
                channel_id: r.os("channel_id")?,
                message_id: r.os("message_id")?,
                status: r.os("message_status")?.unwrap_or_else(|| "failed".into()),
                error: r.os("message_error")?.or(r.os("error")?),
                conversation_id: r.os("conversation_id")?,
                code: r.os("code")?,
                tried: serde_json::from_value(r.js("tried")?).unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let unresolved = c
        .rows(
            "SELECT rule_id, recipient, reason, code, value, contact_id FROM event_unresolved WHERE event_id = $1 \
             ORDER BY created_at, id",
            args![id],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Unresolved {
                rule_id: r.s("rule_id")?,
                recipient: r.s("recipient")?,
                reason: r.s("reason")?,
                code: r.os("code")?,
                value: r.os("value")?,
                contact_id: r.os("contact_id")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let rules = crate::events::load_rule_outcomes(c, id).await?;
    event_from(&row, deliveries, unresolved, rules)
}

/// After a notification failed for good on one channel: the same text on the person's next
/// channel, if they have one.
pub(crate) async fn fall_back(c: &mut dyn Conn, failed: &Message) -> Result<()> {
    let Some(row) = c.row("SELECT id, tried FROM event_deliveries WHERE message_id = $1", args![&failed.id]).await?
    else {
        return crate::broadcasts::fall_back(c, failed).await;
    };
    let mut tried: Vec<String> = serde_json::from_value(row.js("tried")?).unwrap_or_default();
    let contact = load_contact(c, &failed.contact_id).await?;
    let Some(next) = next_identity(contact.preferred_channel_id.as_deref(), &contact.identities, &tried) else {
        return Ok(());
    };
    let channel_id = next.channel_id.clone();
    let options = c.one("SELECT options FROM messages WHERE id = $1", args![&failed.id]).await?.js("options")?;
    let req = OutboundRequest {
        to: Recipient::Contact(failed.contact_id.clone()),
        channel_id: Some(channel_id.clone()),
        text: failed.text.clone(),
        buttons: failed.buttons.clone(),
        attachment_ids: Vec::new(),
        idempotency_key: None,
        author: failed.author.clone(),
        reply_to: None,
        options,
    };
    let (message, _) = enqueue(c, req).await?;
    tried.push(channel_id.clone());
    c.exec(
        "UPDATE event_deliveries SET message_id = $1, channel_id = $2, tried = $3 WHERE id = $4",
        args![&message.id, &channel_id, to_json(&tried), row.s("id")?],
    )
    .await?;
    Ok(())
}

/// Queues people's notifications (see `Store::notify`) with a few multi-row statements for all
/// of them — a rule's recipients: one read, then one insert per table — instead of six
/// statements a person.
pub(crate) async fn notify_many(c: &mut dyn Conn, ns: Vec<Notification>) -> Result<Vec<NotifyOutcome>> {
    let mut out = Vec::with_capacity(ns.len());
    // A person named twice is queued once: later mentions count as already notified.
    let mut seen = HashSet::new();
    if ns.windows(2).any(|w| w[0].event_id != w[1].event_id) {
        for n in ns {
            out.extend(notify_chunk(c, vec![n], &mut seen).await?);
        }
        return Ok(out);
    }
    let mut rest = ns.into_iter();
    loop {
        let chunk: Vec<Notification> = rest.by_ref().take(INSERT_ROWS).collect();
        if chunk.is_empty() {
            return Ok(out);
        }
        out.extend(notify_chunk(c, chunk, &mut seen).await?);
    }
}

/// One person as `notify_many` reads them: their preferred channel, whether they already have
/// the event, their current conversation and the identities that reach them.
#[derive(Default)]
struct Reachable {
    preferred: Option<String>,
    known: bool,
    conversation_id: Option<String>,
    identities: Vec<Identity>,
}

async fn notify_chunk(
    c: &mut dyn Conn,
    ns: Vec<Notification>,
    seen: &mut HashSet<String>,
) -> Result<Vec<NotifyOutcome>> {
    let event_id = ns[0].event_id.clone();
    let mut args = vec![Arg::from(event_id.as_str())];
    let mut listed = Vec::with_capacity(ns.len());
    for n in &ns {
        args.push(Arg::from(n.contact_id.as_str()));
        listed.push(format!("${}", args.len()));
    }
    let rows = query_rows(
            c,
            &format!(
                "SELECT c.id AS person, c.preferred_channel_id, \
                 EXISTS (SELECT 1 FROM event_deliveries d WHERE d.event_id = $1 AND d.contact_id = c.id) AS known, \
                 (SELECT v.id FROM conversations v WHERE v.contact_id = c.id ORDER BY v.id DESC LIMIT 1) AS conversation_id, \
                 {IDENTITY_COLS} \
                 FROM contacts c LEFT JOIN identities i ON i.contact_id = c.id LEFT JOIN channels ch ON ch.id = i.channel_id \
                 WHERE c.id IN ({}) ORDER BY c.id, i.created_at, i.id",
                listed.join(", ")
            ),
            &args,
            ns.len(),
        )
        .await?;
    let mut people: HashMap<String, Reachable> = HashMap::new();
    for row in &rows {
        let person = people.entry(row.s("person")?).or_default();
        person.preferred = row.os("preferred_channel_id")?;
        person.known = row.flag("known")?;
        person.conversation_id = row.os("conversation_id")?;
        if row.os("id")?.is_some() {
            person.identities.push(identity_from(row)?);
        }
    }
    // What each notification comes to; `None` for those to be queued below.
    let mut outcomes: Vec<Option<NotifyOutcome>> = Vec::with_capacity(ns.len());
    let mut unresolved = Vec::new();
    let mut queued = Vec::new();
    for n in ns {
        if seen.contains(&n.contact_id) {
            outcomes.push(Some(NotifyOutcome::AlreadyNotified));
            continue;
        }
        let Some(person) = people.get(&n.contact_id) else {
            // No such contact: removed since it was notified, or never there.
            let known = c
                .row(
                    "SELECT id FROM event_deliveries WHERE event_id = $1 AND contact_id = $2",
                    args![&n.event_id, &n.contact_id],
                )
                .await?;
            match known {
                Some(_) => outcomes.push(Some(NotifyOutcome::AlreadyNotified)),
                None => return Err(Error::not_found("contact", &n.contact_id)),
            }
            continue;
        };
        if person.known {
            outcomes.push(Some(NotifyOutcome::AlreadyNotified));
            continue;
        }
        let Some(identity) = next_identity(person.preferred.as_deref(), &person.identities, &[]) else {
            let (code, reason) = if person.identities.is_empty() {
                ("no_identity", "no identity on any channel")
            } else {
                ("blocked", "blocked on every channel")
            };
            unresolved.push((n.rule_id.clone(), n.recipient.clone(), reason, code, n.contact_id.clone()));
            outcomes.push(Some(NotifyOutcome::Unreachable(reason.into())));
            continue;
        };
        seen.insert(n.contact_id.clone());
        let channel_id = identity.channel_id.clone();
        let conversation_id = match &person.conversation_id {
            Some(id) => id.clone(),
            None => current_conversation(c, &n.contact_id, false).await?.0,
        };
        let req = OutboundRequest {
            to: Recipient::Contact(n.contact_id.clone()),
            channel_id: Some(channel_id.clone()),
            text: Some(n.text),
            buttons: n.buttons,
            attachment_ids: n.attachment_ids,
            idempotency_key: None,
            author: Some(format!("event:{}", n.event_id)),
            reply_to: None,
            options: json!({}),
        };
        queued.push((n.rule_id, n.contact_id, conversation_id, channel_id, req));
        outcomes.push(None);
    }
    let now = now_ms();
    if !unresolved.is_empty() {
        let mut args = Vec::with_capacity(unresolved.len() * 6 + 2);
        for (rule_id, recipient, reason, code, contact_id) in &unresolved {
            args.extend([
                Arg::from(new_id()),
                Arg::from(rule_id),
                Arg::from(recipient),
                Arg::from(*reason),
                Arg::from(*code),
                Arg::from(contact_id),
            ]);
        }
        let rows = value_rows("(?, ?, ?, ?, ?, ?, $E, $T)", unresolved.len())
            .replace("$E", &format!("${}", args.len() + 1))
            .replace("$T", &format!("${}", args.len() + 2));
        args.extend([Arg::from(event_id.as_str()), Arg::from(now)]);
        let sql = format!(
            "INSERT INTO event_unresolved (id, rule_id, recipient, reason, code, contact_id, event_id, created_at) VALUES {rows}"
        );
        exec_rows(c, &sql, &args, unresolved.len()).await?;
    }
    let mut messages = Vec::new().into_iter();
    if !queued.is_empty() {
        let items: Vec<Outbound> = queued
            .iter()
            .map(|(_, contact_id, conversation_id, channel_id, req)| Outbound {
                req,
                contact_id,
                conversation_id,
                channel_id,
            })
            .collect();
        let written = insert_outbounds(c, &items, LANE_LIVE).await?;
        let mut args = Vec::with_capacity(queued.len() * 6 + 2);
        for ((rule_id, contact_id, _, channel_id, _), message) in queued.iter().zip(&written) {
            args.extend([
                Arg::from(new_id()),
                Arg::from(rule_id),
                Arg::from(contact_id),
                Arg::from(channel_id),
                Arg::from(message.id.as_str()),
                Arg::from(to_json(&vec![channel_id])),
            ]);
        }
        let rows = value_rows("(?, ?, ?, ?, ?, ?, $E, $T)", queued.len())
            .replace("$E", &format!("${}", args.len() + 1))
            .replace("$T", &format!("${}", args.len() + 2));
        args.extend([Arg::from(event_id.as_str()), Arg::from(now)]);
        exec_rows(
            c,
            &format!(
                "INSERT INTO event_deliveries (id, rule_id, contact_id, channel_id, message_id, tried, event_id, created_at) \
                 VALUES {rows}"
            ),
            &args,
            queued.len(),
        )
        .await?;
        messages = written.into_iter();
    }
    let mut result = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        result.push(match outcome {
            Some(o) => o,
            None => NotifyOutcome::Queued(Box::new(
                messages.next().ok_or_else(|| Error::internal("a queued notification has no message"))?,
            )),
        });
    }
    Ok(result)
}
