//! Maps database failures onto the product's error kinds.

use okno_domain::{Error, ErrorKind};

/// Classifies a PostgreSQL (sqlx) error: connection trouble is `Unavailable` (retry later), a unique
/// violation is `Conflict`, anything else is `Internal`.
pub(crate) fn db(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => {
            Error::unavailable("store_unavailable", format!("the database is unavailable: {e}"))
        }
        sqlx::Error::Database(d) => {
            let msg = d.message().to_string();
            if d.is_unique_violation() {
                Error::conflict("already_exists", msg)
            } else if d.code().is_some_and(|c| unavailable_code(&c)) {
                Error::unavailable("store_unavailable", format!("the database is busy: {msg}"))
            } else {
                Error::new(ErrorKind::Internal, "store_error", msg)
            }
        }
        _ => Error::new(ErrorKind::Internal, "store_error", e.to_string()),
    }
}

/// PostgreSQL connection trouble (08), lack of resources (53), operator intervention such as a
/// shutdown or terminated backend (57P), a database not accepting connections (55000). (SQLite
/// errors are classified in `lite.rs`.)
fn unavailable_code(code: &str) -> bool {
    code == "55000" || code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
}
