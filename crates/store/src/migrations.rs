//! Migrations, embedded in the binary. SQLite and PostgreSQL keep separate folders with
//! identical file names; a test checks they stay in lock-step.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::Backend;

/// (version, description, SQLite script, PostgreSQL script)
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[(
    1,
    "core",
    include_str!("../migrations/sqlite/0001_core.sql"),
    include_str!("../migrations/postgres/0001_core.sql"),
)];

/// File names of both folders, for the lock-step check.
#[cfg(test)]
pub(crate) const NAMES: &[&str] = &["0001_core.sql"];

pub(crate) fn migrator(backend: Backend) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, desc, sqlite, pg)| {
            let sql = match backend {
                Backend::Sqlite => *sqlite,
                Backend::Postgres => *pg,
            };
            Migration::new(*version, Cow::Borrowed(*desc), MigrationType::Simple, Cow::Borrowed(sql), false)
        })
        .collect();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_folders_hold_the_same_names() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for backend in ["sqlite", "postgres"] {
            let mut names: Vec<String> = std::fs::read_dir(dir.join(backend))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(names, NAMES, "{backend} migrations drifted");
        }
        assert_eq!(MIGRATIONS.len(), NAMES.len());
    }
}
