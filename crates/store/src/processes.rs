//! The okno processes that share a database, and the database's upkeep: whether it answers, a
//! backup, each process showing itself alive (and taking back the work of one that is gone),
//! the announcements that wake the others at once, how much work waits, and fresh planner
//! statistics as tables grow.

use std::path::Path;

use async_trait::async_trait;
use okno_domain::{Error, Result};

use crate::db::{args, Conn};
use crate::sql::{on, SqlStore};
use crate::Backend;

/// The processes on a database and the database's upkeep.
#[async_trait]
pub trait ProcessStore: Send + Sync + 'static {
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<()>;
    /// Writes a consistent copy of the database (SQLite: a file at `dest`).
    async fn backup(&self, dest: &Path) -> Result<()>;
    /// Shows this process alive as `owner` for as long as the store is open (see
    /// [`crate::liveness`]); on SQLite, refuses (`database_in_use`) when another process already
    /// runs on the database file.
    async fn hold_liveness(&self, owner: &str) -> Result<()>;
    /// Takes back what processes that are gone hold — their jobs' and pollers' leases — so
    /// that their work resumes at once; returns their owner names. Does nothing in a process
    /// that has not shown itself alive (a command-line tool beside a running okno).
    async fn reclaim_dead(&self, me: &str) -> Result<Vec<String>>;
    /// Stops showing this process alive (a graceful stop, after its leases were handed back),
    /// so that an okno started next on the same SQLite file is not refused.
    async fn end_liveness(&self);
    /// PostgreSQL: tells the other okno processes on the database, at once, that there is
    /// something new — jobs to claim (`bulk`: in the broadcast lane), conversations that
    /// changed ([`crate::signals`]). SQLite: nothing to tell (one process per database).
    async fn announce(&self, me: &str, bulk: bool) -> Result<()>;
    /// PostgreSQL: how many okno processes show themselves alive on the database now, this one
    /// included ([`crate::liveness`]). SQLite: `None`.
    async fn processes_alive(&self) -> Result<Option<i64>>;
    /// PostgreSQL: the other processes' announcements as they come (`me`'s own left out),
    /// several folded into one while one waits. SQLite: `None`.
    async fn listen_announcements(&self, me: &str) -> Result<Option<crate::signals::Announcements>>;
    /// Jobs not yet finished.
    async fn queue_depth(&self) -> Result<i64>;
    /// PostgreSQL: gathers planner statistics afresh (`ANALYZE`) for the tables that hold more
    /// than twice the rows they held when last counted, and returns their names. Their cached plans are
    /// made again with the new figures: a plan made while a table was nearly empty does not
    /// outlive its growth by the minute or more PostgreSQL's own autovacuum may take. SQLite:
    /// nothing to do.
    async fn refresh_statistics(&self) -> Result<Vec<String>>;
}

#[async_trait]
impl ProcessStore for SqlStore {
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
}
