//! Migrations, embedded in the binary. SQLite and PostgreSQL keep separate folders with
//! identical file names (a test checks they stay in lock-step). Applied versions are kept in
//! `okno_migrations`; all pending ones run in the caller's transaction, so a failure leaves
//! the schema as it was. On PostgreSQL an advisory lock keeps two starting processes from
//! migrating at once.

use okno_domain::time::now_ms;
use okno_domain::{Error, Result};

use crate::db::{args, Conn};
use crate::Backend;

/// (version, name, SQLite script, PostgreSQL script)
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "0001_core.sql",
        include_str!("../migrations/sqlite/0001_core.sql"),
        include_str!("../migrations/postgres/0001_core.sql"),
    ),
    (
        2,
        "0002_telegram.sql",
        include_str!("../migrations/sqlite/0002_telegram.sql"),
        include_str!("../migrations/postgres/0002_telegram.sql"),
    ),
    (
        3,
        "0003_events.sql",
        include_str!("../migrations/sqlite/0003_events.sql"),
        include_str!("../migrations/postgres/0003_events.sql"),
    ),
    (
        4,
        "0004_bots.sql",
        include_str!("../migrations/sqlite/0004_bots.sql"),
        include_str!("../migrations/postgres/0004_bots.sql"),
    ),
    (
        5,
        "0005_tasks.sql",
        include_str!("../migrations/sqlite/0005_tasks.sql"),
        include_str!("../migrations/postgres/0005_tasks.sql"),
    ),
    (
        6,
        "0006_broadcasts.sql",
        include_str!("../migrations/sqlite/0006_broadcasts.sql"),
        include_str!("../migrations/postgres/0006_broadcasts.sql"),
    ),
    (
        7,
        "0007_surveys.sql",
        include_str!("../migrations/sqlite/0007_surveys.sql"),
        include_str!("../migrations/postgres/0007_surveys.sql"),
    ),
    (
        8,
        "0008_task_reoffer.sql",
        include_str!("../migrations/sqlite/0008_task_reoffer.sql"),
        include_str!("../migrations/postgres/0008_task_reoffer.sql"),
    ),
    (
        9,
        "0009_notes_snooze.sql",
        include_str!("../migrations/sqlite/0009_notes_snooze.sql"),
        include_str!("../migrations/postgres/0009_notes_snooze.sql"),
    ),
    (
        10,
        "0010_operator_lang.sql",
        include_str!("../migrations/sqlite/0010_operator_lang.sql"),
        include_str!("../migrations/postgres/0010_operator_lang.sql"),
    ),
    (
        11,
        "0011_drop_jobs_lane_index.sql",
        include_str!("../migrations/sqlite/0011_drop_jobs_lane_index.sql"),
        include_str!("../migrations/postgres/0011_drop_jobs_lane_index.sql"),
    ),
    (
        12,
        "0012_operator_sessions.sql",
        include_str!("../migrations/sqlite/0012_operator_sessions.sql"),
        include_str!("../migrations/postgres/0012_operator_sessions.sql"),
    ),
    (
        13,
        "0013_message_search.sql",
        include_str!("../migrations/sqlite/0013_message_search.sql"),
        include_str!("../migrations/postgres/0013_message_search.sql"),
    ),
    (
        14,
        "0014_jobs_queue_lane.sql",
        include_str!("../migrations/sqlite/0014_jobs_queue_lane.sql"),
        include_str!("../migrations/postgres/0014_jobs_queue_lane.sql"),
    ),
    (
        15,
        "0015_setup_tokens.sql",
        include_str!("../migrations/sqlite/0015_setup_tokens.sql"),
        include_str!("../migrations/postgres/0015_setup_tokens.sql"),
    ),
    (
        16,
        "0016_event_outcomes.sql",
        include_str!("../migrations/sqlite/0016_event_outcomes.sql"),
        include_str!("../migrations/postgres/0016_event_outcomes.sql"),
    ),
    (
        17,
        "0017_inbox_order.sql",
        include_str!("../migrations/sqlite/0017_inbox_order.sql"),
        include_str!("../migrations/postgres/0017_inbox_order.sql"),
    ),
    (
        18,
        "0018_list_indexes.sql",
        include_str!("../migrations/sqlite/0018_list_indexes.sql"),
        include_str!("../migrations/postgres/0018_list_indexes.sql"),
    ),
    (
        20,
        "0020_jobs_leased.sql",
        include_str!("../migrations/sqlite/0020_jobs_leased.sql"),
        include_str!("../migrations/postgres/0020_jobs_leased.sql"),
    ),
    (
        21,
        "0021_owners.sql",
        include_str!("../migrations/sqlite/0021_owners.sql"),
        include_str!("../migrations/postgres/0021_owners.sql"),
    ),
    (
        22,
        "0022_secret_key.sql",
        include_str!("../migrations/sqlite/0022_secret_key.sql"),
        include_str!("../migrations/postgres/0022_secret_key.sql"),
    ),
    (
        23,
        "0023_two_factor.sql",
        include_str!("../migrations/sqlite/0023_two_factor.sql"),
        include_str!("../migrations/postgres/0023_two_factor.sql"),
    ),
    (
        24,
        "0024_directory_operators.sql",
        include_str!("../migrations/sqlite/0024_directory_operators.sql"),
        include_str!("../migrations/postgres/0024_directory_operators.sql"),
    ),
    (
        25,
        "0025_group_identities.sql",
        include_str!("../migrations/sqlite/0025_group_identities.sql"),
        include_str!("../migrations/postgres/0025_group_identities.sql"),
    ),
    (
        26,
        "0026_poll_cursor.sql",
        include_str!("../migrations/sqlite/0026_poll_cursor.sql"),
        include_str!("../migrations/postgres/0026_poll_cursor.sql"),
    ),
    (
        27,
        "0027_pending_receipts.sql",
        include_str!("../migrations/sqlite/0027_pending_receipts.sql"),
        include_str!("../migrations/postgres/0027_pending_receipts.sql"),
    ),
    (
        28,
        "0028_connectors.sql",
        include_str!("../migrations/sqlite/0028_connectors.sql"),
        include_str!("../migrations/postgres/0028_connectors.sql"),
    ),
    (
        29,
        "0029_calls.sql",
        include_str!("../migrations/sqlite/0029_calls.sql"),
        include_str!("../migrations/postgres/0029_calls.sql"),
    ),
];

pub(crate) async fn migrate(c: &mut dyn Conn, backend: Backend) -> Result<()> {
    if backend == Backend::Postgres {
        c.rows("SELECT pg_advisory_xact_lock(7300105)", args![]).await?;
    }
    c.exec(
        "CREATE TABLE IF NOT EXISTS okno_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        args![],
    )
    .await?;
    let applied: Vec<i64> = c
        .rows("SELECT version FROM okno_migrations", args![])
        .await?
        .iter()
        .map(|r| r.i("version"))
        .collect::<Result<_>>()?;
    if let Some(newest) = applied.iter().max() {
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if *newest > known {
            return Err(Error::internal(format!(
                "the database was migrated by a newer okno (schema version {newest}, this build knows {known})"
            )));
        }
    }
    for (version, name, sqlite, pg) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let script = match backend {
            Backend::Sqlite => sqlite,
            Backend::Postgres => pg,
        };
        c.batch(script).await.map_err(|e| Error::internal(format!("migration {name} failed: {}", e.message)))?;
        c.exec(
            "INSERT INTO okno_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            args![*version, *name, now_ms()],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_folders_hold_the_same_names() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let expected: Vec<&str> = MIGRATIONS.iter().map(|m| m.1).collect();
        for backend in ["sqlite", "postgres"] {
            let mut names: Vec<String> = std::fs::read_dir(dir.join(backend))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(names, expected, "{backend} migrations drifted");
        }
    }
}
