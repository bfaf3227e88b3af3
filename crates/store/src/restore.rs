//! Putting a backup back (`okno restore FILE`): the copy `okno backup` wrote becomes the
//! database again, with okno stopped.
//!
//! ```text
//!  SQLite:      a SQLite file? ── take the database's lock (refused while okno runs)
//!               └─ the database holds data and no --force? refuse
//!               └─ copy beside it, flush, remove the old -wal/-shm, rename over it
//!  PostgreSQL:  a pg_dump archive? ── no live okno process on the database (their locks)
//!               └─ okno's tables there and no --force? refuse; with --force drop them
//!               └─ pg_restore in one transaction
//! ```
//!
//! The store opened afterwards brings the restored database up to this okno's migrations; its
//! credentials open only with the key they were sealed under (see `seal`).

use std::path::Path;
use std::str::FromStr;

use okno_domain::{Error, ErrorKind, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Row};

use crate::error::db;
use crate::liveness;

/// Puts `file` back as the database at `url`. Refuses while okno runs on it, and refuses to
/// replace a database that holds data unless `force`.
pub async fn restore(url: &str, file: &Path, force: bool) -> Result<()> {
    let head = read_head(file)?;
    if url.starts_with("sqlite:") {
        if !head.starts_with(b"SQLite format 3\0") {
            return Err(not_a_backup(file, "a SQLite database (what `okno backup` writes on SQLite)"));
        }
        restore_sqlite(&crate::sql::sqlite_path(url)?, file, force)
    } else {
        if !head.starts_with(b"PGDMP") {
            return Err(not_a_backup(file, "a pg_dump archive (what `okno backup` writes on PostgreSQL)"));
        }
        restore_postgres(url, file, force).await
    }
}

fn read_head(file: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(file)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(|e| Error::invalid("backup_unreadable", format!("cannot read `{}`: {e}", file.display())))?;
    Ok(head)
}

fn not_a_backup(file: &Path, what: &str) -> Error {
    Error::invalid("not_a_backup", format!("`{}` is not {what}", file.display()))
}

fn holds_data(what: String) -> Error {
    Error::new(
        ErrorKind::Conflict,
        "database_holds_data",
        format!("{what}; restoring replaces it with the backup: add --force to do so"),
    )
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("{what} `{}`: {e}", path.display()))
}

fn restore_sqlite(db: &Path, file: &Path, force: bool) -> Result<()> {
    // Held until the end: no okno starts on the file while it is replaced.
    let _lock = liveness::hold_sqlite(db)?;
    if db.metadata().is_ok_and(|m| m.len() > 0) && !force {
        return Err(holds_data(format!("`{}` holds data", db.display())));
    }
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".restoring");
    let copy = db.with_file_name(name);
    std::fs::copy(file, &copy).map_err(|e| io("cannot copy the backup to", &copy, e))?;
    std::fs::File::open(&copy).and_then(|f| f.sync_all()).map_err(|e| io("cannot flush", &copy, e))?;
    // The old database's journal must not be replayed over the restored file.
    for suffix in ["-wal", "-shm"] {
        let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(suffix);
        match std::fs::remove_file(db.with_file_name(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("cannot remove", db, e)),
            _ => {}
        }
    }
    std::fs::rename(&copy, db).map_err(|e| io("cannot put the backup at", db, e))?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("cannot flush", dir, e))?;
    }
    Ok(())
}

async fn restore_postgres(url: &str, file: &Path, force: bool) -> Result<()> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::invalid("invalid_database_url", format!("the PostgreSQL URL is not valid: {e}")))?
        .application_name("okno restore");
    let mut conn = options.connect().await.map_err(db)?;
    let alive: i64 = sqlx::query(liveness::ALIVE_ON_POSTGRES)
        .bind(liveness::LIVENESS_LOCK_CLASS)
        .fetch_one(&mut conn)
        .await
        .map_err(db)?
        .get("n");
    if alive > 0 {
        return Err(Error::conflict(
            "database_in_use",
            format!("{alive} okno processes are running on this database; stop every one of them first"),
        ));
    }
    let tables: Vec<String> =
        sqlx::query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")
            .fetch_all(&mut conn)
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get("tablename"))
            .collect();
    if !tables.is_empty() {
        if !force {
            return Err(holds_data(format!("the database holds {} tables", tables.len())));
        }
        let list = tables.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect::<Vec<_>>().join(", ");
        sqlx::query(&format!("DROP TABLE IF EXISTS {list} CASCADE")).execute(&mut conn).await.map_err(db)?;
    }
    drop(conn);
    let out = tokio::process::Command::new("pg_restore")
        .args(["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", "--dbname"])
        .arg(url)
        .arg(file)
        .output()
        .await
        .map_err(|e| Error::internal(format!("running pg_restore (install the PostgreSQL client tools): {e}")))?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "pg_restore failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
