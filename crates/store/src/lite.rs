//! SQLite through rusqlite, each connection owned by its own thread.
//!
//! Why threads: SQLite is an in-process library, so the cost of a statement is the cost of
//! reaching the thread that owns the connection. A driver that hops threads per statement
//! spends most of its time waking threads; here a whole store operation (its transaction and
//! every statement in it) is one hop: the async caller sends a closure to the connection's
//! thread and awaits the answer.
//!
//! ```text
//!   caller ──job──► writer thread (1 connection, BEGIN IMMEDIATE … COMMIT) ──answer──► caller
//!   caller ──job──► reader threads (N connections, WAL snapshots)       ──answer──► caller
//! ```
//! One writer means writes queue in a channel instead of spinning on the file lock; WAL lets
//! the readers run beside it. Another process (e.g. `okno token create`) still works: the
//! busy timeout covers the moments the lock is held.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crossbeam_channel::{Receiver, Sender};
use futures::future::BoxFuture;
use okno_domain::{Error, Result};
use rusqlite::types::ValueRef;
use rusqlite::ErrorCode;

use crate::db::{Arg, Conn, Row, Val};

/// A unit of work for a connection thread; `false` stops the thread.
type Job = Box<dyn FnOnce(&mut LiteConn) -> bool + Send>;

/// A store operation, generic over the connection it runs on.
pub(crate) type Op<T> = Box<dyn for<'a> FnOnce(&'a mut dyn Conn) -> BoxFuture<'a, Result<T>> + Send>;

pub(crate) struct Lite {
    writer: Sender<Job>,
    readers: Sender<Job>,
    reader_count: usize,
}

/// A SQLite connection, owned by its thread.
pub(crate) struct LiteConn {
    conn: rusqlite::Connection,
}

fn open_conn(path: &Path, busy_ms: u64, full_sync: bool) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path).map_err(lite_err)?;
    conn.busy_timeout(Duration::from_millis(busy_ms)).map_err(lite_err)?;
    let sync = if full_sync { "FULL" } else { "NORMAL" };
    conn.execute_batch(&format!("PRAGMA foreign_keys = ON; PRAGMA synchronous = {sync};")).map_err(lite_err)?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

fn spawn(name: String, mut conn: LiteConn, rx: Receiver<Job>) -> Result<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                if !job(&mut conn) {
                    break;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| Error::internal(format!("cannot start a SQLite thread: {e}")))
}

impl Lite {
    pub(crate) fn open(path: &Path, busy_ms: u64, readers: u32, full_sync: bool) -> Result<Lite> {
        let writer_conn = open_conn(path, busy_ms, full_sync)?;
        writer_conn.pragma_update(None, "journal_mode", "WAL").map_err(lite_err)?;
        let (writer, writer_rx) = crossbeam_channel::unbounded();
        spawn("okno-sqlite-writer".into(), LiteConn { conn: writer_conn }, writer_rx)?;
        let reader_count = readers.max(1) as usize;
        let (reader_tx, reader_rx) = crossbeam_channel::unbounded();
        for n in 0..reader_count {
            let conn = open_conn(path, busy_ms, full_sync)?;
            spawn(format!("okno-sqlite-reader-{n}"), LiteConn { conn }, reader_rx.clone())?;
        }
        Ok(Lite { writer, readers: reader_tx, reader_count })
    }

    /// Runs `op` on the writer inside `BEGIN IMMEDIATE … COMMIT` (rolled back on error).
    pub(crate) async fn write<T: Send + 'static>(&self, op: Op<T>) -> Result<T> {
        self.submit(&self.writer, true, op).await
    }

    /// Runs `op` on a reader, outside a transaction.
    pub(crate) async fn read<T: Send + 'static>(&self, op: Op<T>) -> Result<T> {
        self.submit(&self.readers, false, op).await
    }

    async fn submit<T: Send + 'static>(&self, to: &Sender<Job>, transaction: bool, op: Op<T>) -> Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |lc: &mut LiteConn| {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lc.run(transaction, op)))
                .unwrap_or_else(|_| {
                    let _ = lc.conn.execute_batch("ROLLBACK");
                    Err(Error::internal("a store operation panicked"))
                });
            let _ = reply.send(outcome);
            true
        });
        to.send(job).map_err(|_| Error::unavailable("store_unavailable", "the database is closed"))?;
        answer.await.map_err(|_| Error::internal("the database thread dropped a request"))?
    }

    /// Stops the connection threads (the last connection to close checkpoints the WAL).
    pub(crate) fn close(&self) {
        let _ = self.writer.send(Box::new(|_| false));
        for _ in 0..self.reader_count {
            let _ = self.readers.send(Box::new(|_| false));
        }
    }
}

impl LiteConn {
    fn run<T>(&mut self, transaction: bool, op: Op<T>) -> Result<T> {
        if !transaction {
            return futures::executor::block_on(op(self));
        }
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(lite_err)?;
        // The operation's futures never wait on anything but this connection, which answers
        // synchronously, so blocking on them here is immediate.
        let result = futures::executor::block_on(op(self));
        match result {
            Ok(v) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    Err(lite_err(e))
                }
            },
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// `$1` → `?1`: SQLite numbers `$NAME` parameters by first appearance, `?N` by N.
fn positional(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn to_sql(a: &Arg) -> rusqlite::types::Value {
    match a {
        Arg::NullInt | Arg::NullText => rusqlite::types::Value::Null,
        Arg::Int(i) => rusqlite::types::Value::Integer(*i),
        Arg::Text(s) => rusqlite::types::Value::Text(s.clone()),
    }
}

#[async_trait]
impl Conn for LiteConn {
    async fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(&positional(sql)).map_err(lite_err)?;
        let n = stmt.execute(rusqlite::params_from_iter(args.iter().map(to_sql))).map_err(lite_err)?;
        Ok(n as u64)
    }

    async fn rows(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(&positional(sql)).map_err(lite_err)?;
        let cols: Arc<[String]> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter().map(to_sql))).map_err(lite_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(lite_err)? {
            let mut vals = Vec::with_capacity(cols.len());
            for i in 0..cols.len() {
                vals.push(match r.get_ref(i).map_err(lite_err)? {
                    ValueRef::Null => Val::Null,
                    ValueRef::Integer(v) => Val::Int(v),
                    ValueRef::Real(v) => Val::Text(v.to_string()),
                    ValueRef::Text(t) | ValueRef::Blob(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                });
            }
            out.push(Row { cols: cols.clone(), vals });
        }
        Ok(out)
    }

    async fn batch(&mut self, script: &str) -> Result<()> {
        self.conn.execute_batch(script).map_err(lite_err)
    }
}

/// Classifies a SQLite error: busy/locked/unopenable is `Unavailable` (retry later), a
/// unique violation is `Conflict`, the rest `Internal`.
pub(crate) fn lite_err(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        let text = msg.clone().unwrap_or_else(|| f.to_string());
        return match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                Error::unavailable("store_unavailable", format!("the database is busy: {text}"))
            }
            ErrorCode::CannotOpen | ErrorCode::SystemIoFailure | ErrorCode::DiskFull | ErrorCode::ReadOnly => {
                Error::unavailable("store_unavailable", format!("the database is unavailable: {text}"))
            }
            // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY.
            ErrorCode::ConstraintViolation if matches!(f.extended_code, 2067 | 1555) => {
                Error::conflict("already_exists", text)
            }
            _ => Error::new(okno_domain::ErrorKind::Internal, "store_error", text),
        };
    }
    Error::new(okno_domain::ErrorKind::Internal, "store_error", e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_follows_the_setting() {
        let dir = std::env::temp_dir().join(format!("okno-lite-{}", okno_domain::ids::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let level = |full| {
            let conn = open_conn(&dir.join("x.db"), 100, full).unwrap();
            conn.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0)).unwrap()
        };
        assert_eq!((level(false), level(true)), (1, 2), "NORMAL is 1, FULL is 2");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dollar_parameters_become_positional() {
        assert_eq!(positional("VALUES ($2, $1, $10) -- $x"), "VALUES (?2, ?1, ?10) -- $x");
    }
}
