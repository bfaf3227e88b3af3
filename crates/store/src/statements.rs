//! Statement building shared by every part of the store: a statement put together from
//! pieces with numbered placeholders, multi-row statements (and whether they stay prepared),
//! pages cut from a `limit + 1` read, JSON columns, and retrying an operation that lost a race
//! on a unique key.

use okno_domain::{Error, Result};

use crate::db::{Arg, Conn, Row};

/// A dynamically built statement with `$N` placeholders.
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) args: Vec<Arg>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Self {
        Self { text: text.to_string(), args: Vec::new() }
    }
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }
    /// Appends a placeholder bound to `v`.
    pub(crate) fn bind_s(&mut self, v: impl Into<String>) -> &mut Self {
        self.args.push(Arg::Text(v.into()));
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }
    pub(crate) fn bind_i(&mut self, v: i64) -> &mut Self {
        self.args.push(Arg::Int(v));
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }
}

pub(crate) fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Cuts a `limit + 1` fetch to `limit` items and derives the next cursor.
pub(crate) fn split_page<T>(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = if more { items.last().map(cursor) } else { None };
    (items, next)
}

/// Runs `op` again when it lost a race on a unique key (up to three times).
pub(crate) async fn retry_conflicts<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut last = None;
    for _ in 0..3 {
        match op().await {
            Err(e) if e.kind == okno_domain::ErrorKind::Conflict => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| Error::internal("retry loop ended without a result")))
}

/// Rows in one multi-row statement (PostgreSQL takes at most 65,535 arguments in a statement,
/// SQLite 32,766; a message row has 11).
pub(crate) const INSERT_ROWS: usize = 200;

/// Statements of up to this many rows stay prepared (a few texts, used all the time); longer
/// ones go unprepared, so that every batch size does not take a place in the statement cache.
pub(crate) const PREPARED_ROWS: usize = 4;

/// `exec` of a statement written for `rows` rows.
pub(crate) async fn exec_rows(c: &mut dyn Conn, sql: &str, args: &[Arg], rows: usize) -> Result<u64> {
    if rows <= PREPARED_ROWS {
        c.exec(sql, args).await
    } else {
        c.exec_unprepared(sql, args).await
    }
}

/// `rows` of a query written for `rows` rows (or ids).
pub(crate) async fn query_rows(c: &mut dyn Conn, sql: &str, args: &[Arg], rows: usize) -> Result<Vec<Row>> {
    if rows <= PREPARED_ROWS {
        c.rows(sql, args).await
    } else {
        c.rows_planned(sql, args).await
    }
}

/// `VALUES`-list rows: `pattern` (e.g. `(?, ?, 'out')`) repeated `rows` times, separated by
/// commas, each `?` numbered in turn from `$1`.
pub(crate) fn value_rows(pattern: &str, rows: usize) -> String {
    let mut out = String::with_capacity((pattern.len() + 8) * rows);
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        for ch in pattern.chars() {
            if ch == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(ch);
            }
        }
    }
    out
}
