//! Which processes are alive, so that a dead one's work is taken back at once instead of when
//! its leases run out (a job's lease is a minute, a poller's longer).
//!
//! A process that runs jobs and pollers declares itself alive under its owner name (the name
//! its leases carry) for as long as it runs:
//!
//! - **SQLite**: an exclusive lock on a file beside the database (`okno.db.lock`). Only one
//!   such process may use a database file, so a second one is refused with a clear message,
//!   and the one holding the lock knows that every lease another owner left is a dead
//!   process's.
//! - **PostgreSQL**: a session advisory lock keyed by the owner name, held on a connection of
//!   its own. The server releases it the moment that session ends — the process stopped,
//!   was killed, or lost its network — so another process finds an owner dead by trying its
//!   lock: if the lock can be taken, nobody holds it.
//!
//! Taking back a dead owner's work means clearing its leases: its jobs run again at once, in
//! their order per queue (a conversation's next message waits for the one before), and its
//! pollers are taken up by whoever looks next. A job the dead process was sending when it died
//! is sent again, as after any lost lease; platforms' idempotency (the webhook's message id,
//! Telegram's answer to a repeated edit) absorbs what it can.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use okno_domain::{Error, ErrorKind, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::db::{args, Conn};
use crate::error::db;

/// The first key of the two-key advisory locks that mark live processes (the migrations'
/// lock is a one-key lock, a space of its own).
pub(crate) const LIVENESS_LOCK_CLASS: i32 = 7_300_106;

/// The second key: the owner name hashed (FNV-1a, folded to 32 bits). Two live owners sharing
/// a key would only make each look alive to the other's reaper while both are alive.
pub(crate) fn owner_key(owner: &str) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in owner.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ((h >> 32) ^ h) as u32 as i32
}

/// What this process holds to show it is alive.
pub(crate) enum Held {
    /// The locked file; the lock goes with it.
    Sqlite(#[allow(dead_code)] File),
    /// The task keeping the locked session, and how to ask it to let go. Dropped without
    /// [`Held::release`], the task is aborted and the session closes with its socket, which
    /// PostgreSQL notices a moment later.
    Postgres(tokio::task::JoinHandle<()>, Option<tokio::sync::oneshot::Sender<()>>),
}

impl Held {
    /// Lets go of the lock before returning (PostgreSQL: unlocked in the session, then the
    /// session closed), so that whoever looks next — `okno restore`, `okno secrets rotate` —
    /// finds this process gone at once.
    pub(crate) async fn release(mut self) {
        if let Held::Postgres(task, stop) = &mut self {
            if let Some(stop) = stop.take() {
                let _ = stop.send(());
                let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Held::Postgres(task, _) = self {
            task.abort();
        }
    }
}

/// The lock file beside a SQLite database.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    db.with_file_name(name)
}

/// Takes the SQLite database's lock, or says who has it.
pub(crate) fn hold_sqlite(db: &Path) -> Result<Held> {
    let path = lock_path(db);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::invalid("data_dir_unusable", format!("cannot open `{}`: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Held::Sqlite(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::new(
            ErrorKind::Conflict,
            "database_in_use",
            format!(
                "another okno is running on `{}` (it holds `{}`); stop it first, or give this one its own \
                 data folder. Several okno processes share work only on PostgreSQL",
                db.display(),
                path.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::invalid("data_dir_unusable", format!("cannot lock `{}`: {e}", path.display())))
        }
    }
}

/// Opens a session of its own, takes `owner`'s lock on it, and keeps it: checked every few
/// seconds and, if the server dropped it (a restart), opened and locked again.
pub(crate) async fn hold_postgres(url: &str, owner: &str) -> Result<Held> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::invalid("invalid_database_url", format!("the PostgreSQL URL is not valid: {e}")))?
        .application_name("okno liveness");
    let key = owner_key(owner);
    let mut conn = lock_session(&options, key).await?;
    let owner = owner.to_string();
    let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stop => {
                    let _ = sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut conn).await;
                    let _ = conn.close().await;
                    return;
                }
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            if conn.ping().await.is_ok() {
                continue;
            }
            tracing::warn!(owner, "the session that shows this process alive was lost; opening it again");
            loop {
                match lock_session(&options, key).await {
                    Ok(c) => {
                        conn = c;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(owner, error = %e.message, "cannot show this process alive yet; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    });
    Ok(Held::Postgres(task, Some(stop_tx)))
}

async fn lock_session(options: &PgConnectOptions, key: i32) -> Result<PgConnection> {
    let mut conn = options.connect().await.map_err(db)?;
    sqlx::query("SELECT pg_advisory_lock($1, $2)")
        .bind(LIVENESS_LOCK_CLASS)
        .bind(key)
        .execute(&mut conn)
        .await
        .map_err(db)?;
    Ok(conn)
}

/// Owners other than `me` that hold leases now, jobs' and pollers'.
pub(crate) async fn lease_owners(c: &mut dyn Conn, me: &str) -> Result<Vec<String>> {
    let rows = c
        .rows(
            "SELECT lease_owner FROM jobs WHERE lease_owner IS NOT NULL AND lease_owner <> $1 \
             UNION SELECT lease_owner FROM channel_state WHERE lease_owner IS NOT NULL AND lease_owner <> $1",
            args![me],
        )
        .await?;
    rows.iter().map(|r| r.s("lease_owner")).collect()
}

/// Clears every lease `owner` holds; returns how many.
pub(crate) async fn clear_leases(c: &mut dyn Conn, owner: &str) -> Result<u64> {
    let jobs =
        c.exec("UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1", args![owner]).await?;
    let pollers = c
        .exec("UPDATE channel_state SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1", args![owner])
        .await?;
    Ok(jobs + pollers)
}

/// PostgreSQL: whether `owner` is dead — its lock can be taken. Taken for this transaction
/// only, so it is let go at its end; meanwhile the owner cannot come back mid-way.
pub(crate) async fn dead_on_postgres(c: &mut dyn Conn, owner: &str) -> Result<bool> {
    let row = c
        .one(
            "SELECT CASE WHEN pg_try_advisory_xact_lock(CAST($1 AS INTEGER), CAST($2 AS INTEGER)) THEN 1 ELSE 0 END \
             AS free",
            args![i64::from(LIVENESS_LOCK_CLASS), i64::from(owner_key(owner))],
        )
        .await?;
    Ok(row.i("free")? == 1)
}

/// PostgreSQL: how many okno processes show themselves alive on this database now.
pub(crate) async fn alive_on_postgres(c: &mut dyn Conn) -> Result<i64> {
    let row = c.one(ALIVE_ON_POSTGRES, args![i64::from(LIVENESS_LOCK_CLASS)]).await?;
    row.i("n")
}

/// The statement behind [`alive_on_postgres`]; `$1` is [`LIVENESS_LOCK_CLASS`].
pub(crate) const ALIVE_ON_POSTGRES: &str =
    "SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted \
     AND classid = CAST($1 AS INTEGER) AND objsubid = 2 \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
