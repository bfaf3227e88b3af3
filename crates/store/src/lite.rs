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
//!
//! **Group commit.** The writer takes every write waiting in its channel (up to
//! [`GROUP_MAX`]) into one transaction, each in its own savepoint: a write that fails is rolled
//! back to its savepoint alone, the others go on. Nobody hears back before the one `COMMIT`,
//! so an answer still means "durable". Under load, while one transaction commits the next
//! group gathers, and the pages a message touches (the tables' last leaves, the indexes) are
//! written to the log once per group instead of once per message. Alone, a write is a group
//! of one.
//!
//! ```text
//!   writes queued ─► BEGIN IMMEDIATE ─► SAVEPOINT w; op₁; RELEASE w ─► … opₙ … ─► COMMIT ─► n answers
//! ```

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

/// A unit of work for a reader thread; `false` stops the thread.
type Job = Box<dyn FnOnce(&mut LiteConn) -> bool + Send>;

/// The most writes one transaction takes: enough to share the log's page writes, few enough
/// that a failed `COMMIT` (all of them answered with its error) stays small.
const GROUP_MAX: usize = 64;

/// What the writer is given: a write to run in the group's transaction, or the end.
enum Write {
    /// Runs in the open transaction (or, with the group's `BEGIN` refused, only answers with
    /// that error) and gives what answers once the group's `COMMIT` is known.
    Op(GroupWrite),
    Stop,
}

/// A write waiting for its group: given the group's refused `BEGIN` (if any), it runs.
type GroupWrite = Box<dyn FnOnce(&mut LiteConn, Option<&Error>) -> Answer + Send>;

/// Answers a write's caller with the outcome of its group's `COMMIT`.
type Answer = Box<dyn FnOnce(Option<&Error>) + Send>;

/// A store operation, generic over the connection it runs on.
pub(crate) type Op<T> = Box<dyn for<'a> FnOnce(&'a mut dyn Conn) -> BoxFuture<'a, Result<T>> + Send>;

pub(crate) struct Lite {
    writer: Sender<Write>,
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

/// The writer's thread: each turn takes what is waiting into one transaction.
fn spawn_writer(mut conn: LiteConn, rx: Receiver<Write>) -> Result<()> {
    std::thread::Builder::new()
        .name("okno-sqlite-writer".into())
        .spawn(move || {
            let mut group = Vec::with_capacity(GROUP_MAX);
            let mut stop = false;
            while let Ok(first) = rx.recv() {
                let mut next = Some(first);
                while let Some(w) = next.take() {
                    match w {
                        Write::Op(op) => group.push(op),
                        Write::Stop => stop = true,
                    }
                    if !stop && group.len() < GROUP_MAX {
                        next = rx.try_recv().ok();
                    }
                }
                if !group.is_empty() {
                    conn.commit_group(&mut group);
                }
                if stop {
                    break;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| Error::internal(format!("cannot start the SQLite writer: {e}")))
}

impl Lite {
    pub(crate) fn open(path: &Path, busy_ms: u64, readers: u32, full_sync: bool) -> Result<Lite> {
        let writer_conn = open_conn(path, busy_ms, full_sync)?;
        writer_conn.pragma_update(None, "journal_mode", "WAL").map_err(lite_err)?;
        // A group's writes dirty a few thousand pages before its COMMIT: the page cache holds
        // them (up to 16 MiB, taken only as used) instead of spilling them to the log half way,
        // and each write's savepoint journal stays in memory instead of a temporary file.
        writer_conn.execute_batch("PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;").map_err(lite_err)?;
        let (writer, writer_rx) = crossbeam_channel::unbounded();
        spawn_writer(LiteConn { conn: writer_conn }, writer_rx)?;
        let reader_count = readers.max(1) as usize;
        let (reader_tx, reader_rx) = crossbeam_channel::unbounded();
        for n in 0..reader_count {
            let conn = open_conn(path, busy_ms, full_sync)?;
            spawn(format!("okno-sqlite-reader-{n}"), LiteConn { conn }, reader_rx.clone())?;
        }
        Ok(Lite { writer, readers: reader_tx, reader_count })
    }

    /// Runs `op` on the writer in its own savepoint of the group's `BEGIN IMMEDIATE … COMMIT`
    /// (rolled back to the savepoint on error); answers after the `COMMIT`.
    pub(crate) async fn write<T: Send + 'static>(&self, op: Op<T>) -> Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let write = Write::Op(Box::new(move |lc: &mut LiteConn, refused: Option<&Error>| -> Answer {
            let outcome = match refused {
                Some(e) => Err(e.clone()),
                None => lc.in_savepoint(op),
            };
            Box::new(move |committed: Option<&Error>| {
                let outcome = match (outcome, committed) {
                    (Ok(_), Some(e)) => Err(e.clone()),
                    (outcome, _) => outcome,
                };
                let _ = reply.send(outcome);
            })
        }));
        self.writer.send(write).map_err(|_| Error::unavailable("store_unavailable", "the database is closed"))?;
        answer.await.map_err(|_| Error::internal("the database thread dropped a request"))?
    }

    /// Runs `op` on a reader, outside a transaction.
    pub(crate) async fn read<T: Send + 'static>(&self, op: Op<T>) -> Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |lc: &mut LiteConn| {
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| futures::executor::block_on(op(lc))))
                    .unwrap_or_else(|_| Err(Error::internal("a store operation panicked")));
            let _ = reply.send(outcome);
            true
        });
        self.readers.send(job).map_err(|_| Error::unavailable("store_unavailable", "the database is closed"))?;
        answer.await.map_err(|_| Error::internal("the database thread dropped a request"))?
    }

    /// Stops the connection threads (the last connection to close checkpoints the WAL).
    pub(crate) fn close(&self) {
        let _ = self.writer.send(Write::Stop);
        for _ in 0..self.reader_count {
            let _ = self.readers.send(Box::new(|_| false));
        }
    }
}

impl LiteConn {
    /// One transaction for the group: each write in its savepoint, then one `COMMIT`, then
    /// every answer. A refused `BEGIN` or `COMMIT` answers every write of the group with it.
    fn commit_group(&mut self, group: &mut Vec<GroupWrite>) {
        let began = self.control("BEGIN IMMEDIATE").err();
        let lost = Error::unavailable("store_unavailable", "the database ended the transaction after an error");
        let mut answers: Vec<Answer> = Vec::with_capacity(group.len());
        for op in group.drain(..) {
            // Some errors (a full disk, an I/O error) make SQLite roll the whole transaction
            // back: the writes after them are not run outside it.
            let refused = began.as_ref().or_else(|| self.conn.is_autocommit().then_some(&lost));
            answers.push(op(self, refused));
        }
        let committed = match began {
            Some(e) => Some(e),
            None => self.control("COMMIT").err(),
        };
        if committed.is_some() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        for answer in answers {
            answer(committed.as_ref());
        }
    }

    /// A transaction statement (`BEGIN`, `COMMIT`, `SAVEPOINT`, `RELEASE`), kept prepared: the
    /// writer runs two of them for every write.
    fn control(&mut self, sql: &str) -> Result<()> {
        self.conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(drop).map_err(lite_err)
    }

    /// Runs one write in a savepoint of the open transaction: kept on success, undone alone on
    /// an error or a panic.
    fn in_savepoint<T>(&mut self, op: Op<T>) -> Result<T> {
        self.control("SAVEPOINT w")?;
        // The operation's futures never wait on anything but this connection, which answers
        // synchronously, so blocking on them here is immediate.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| futures::executor::block_on(op(self))))
            .unwrap_or_else(|_| Err(Error::internal("a store operation panicked")));
        let kept = match &result {
            Ok(_) => self.control("RELEASE w"),
            Err(e) => Err(e.clone()),
        };
        match kept {
            Ok(()) => result,
            Err(e) => {
                // Undone alone; should SQLite have ended the whole transaction, the group sees
                // it and answers the rest.
                let _ = self.conn.execute_batch("ROLLBACK TO w; RELEASE w");
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

    /// Writes queued together share a transaction, yet each stands alone: one that fails half
    /// way (or panics) is undone without its neighbours, and every answer matches what the
    /// file holds after.
    #[test]
    fn a_group_keeps_its_writes_apart() {
        let dir = std::env::temp_dir().join(format!("okno-lite-{}", okno_domain::ids::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lite = Lite::open(&dir.join("g.db"), 1_000, 1, false).unwrap();
        let script = |sqls: Vec<String>, panic: bool| -> Op<u64> {
            Box::new(move |c: &mut dyn Conn| {
                Box::pin(async move {
                    let mut n = 0;
                    for sql in sqls {
                        n += c.exec(&sql, &[]).await?;
                    }
                    assert!(!panic, "a write that panics");
                    Ok(n)
                })
            })
        };
        futures::executor::block_on(lite.write(script(vec!["CREATE TABLE t (id INTEGER PRIMARY KEY)".into()], false)))
            .unwrap();
        let writes = (1..=200).map(|id| {
            let sqls = match id % 50 {
                // Writes one row, then one that is already there: neither is kept.
                7 => vec![format!("INSERT INTO t VALUES ({})", id + 10_000), "INSERT INTO t VALUES (1)".into()],
                _ => vec![format!("INSERT INTO t VALUES ({id})")],
            };
            lite.write(script(sqls, id % 50 == 13))
        });
        let answers = futures::executor::block_on(futures::future::join_all(writes));
        let ok: Vec<i64> = (1..=200).filter(|id| answers[*id as usize - 1].is_ok()).collect();
        let expected: Vec<i64> = (1..=200).filter(|id| id % 50 != 7 && id % 50 != 13).collect();
        assert_eq!(ok, expected, "the failed and the panicking writes answered with errors, no other");
        let conflict = answers[6].as_ref().unwrap_err();
        assert_eq!(conflict.code, "already_exists", "{conflict:?}");
        let held: Vec<i64> = futures::executor::block_on(lite.read(Box::new(|c: &mut dyn Conn| {
            Box::pin(async move {
                let rows = c.rows("SELECT id FROM t ORDER BY id", &[]).await?;
                rows.iter().map(|r| r.i("id")).collect()
            })
        })))
        .unwrap();
        assert_eq!(held, expected, "the file holds exactly what was answered as written");
        lite.close();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dollar_parameters_become_positional() {
        assert_eq!(positional("VALUES ($2, $1, $10) -- $x"), "VALUES (?2, ?1, ?10) -- $x");
    }
}
