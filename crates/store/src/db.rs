//! The narrow waist between okno's SQL and the two database drivers: a connection that runs
//! a statement with `$N` arguments and returns plain rows. The store's logic is written once
//! against [`Conn`]; PostgreSQL implements it over sqlx, SQLite over rusqlite on its own
//! thread (see `lite.rs` for why).

use async_trait::async_trait;
use okno_domain::ids::{ChannelId, ContactId, ConversationId, IdentityId, MessageId};
use okno_domain::{Error, Result};
use serde_json::Value;

/// A statement argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// NULL in an integer column (PostgreSQL binds NULLs with a type).
    NullInt,
    /// NULL in a text column.
    NullText,
    Int(i64),
    Text(String),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<&i64> for Arg {
    fn from(v: &i64) -> Self {
        Arg::Int(*v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Arg::NullInt, Arg::Int)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        v.map_or(Arg::NullText, Arg::Text)
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        v.clone().map_or(Arg::NullText, Arg::Text)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Arg::NullText, |s| Arg::Text(s.to_string()))
    }
}
impl From<Option<&String>> for Arg {
    fn from(v: Option<&String>) -> Self {
        v.map_or(Arg::NullText, |s| Arg::Text(s.clone()))
    }
}

/// Typed ids bind as their text.
macro_rules! id_args {
    ($($id:ty),*) => {$(
        impl From<$id> for Arg {
            fn from(v: $id) -> Self {
                Arg::Text(v.into_string())
            }
        }
        impl From<&$id> for Arg {
            fn from(v: &$id) -> Self {
                Arg::Text(v.as_str().to_owned())
            }
        }
        impl From<Option<$id>> for Arg {
            fn from(v: Option<$id>) -> Self {
                v.map_or(Arg::NullText, |v| Arg::Text(v.into_string()))
            }
        }
        impl From<&Option<$id>> for Arg {
            fn from(v: &Option<$id>) -> Self {
                v.as_ref().map_or(Arg::NullText, |v| Arg::Text(v.as_str().to_owned()))
            }
        }
        impl From<Option<&$id>> for Arg {
            fn from(v: Option<&$id>) -> Self {
                v.map_or(Arg::NullText, |v| Arg::Text(v.as_str().to_owned()))
            }
        }
    )*};
}
id_args!(ChannelId, ContactId, ConversationId, IdentityId, MessageId);

/// `args![a, b]` → `&[Arg::from(a), Arg::from(b)]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$($crate::db::Arg::from($a)),*] };
}
pub(crate) use args;

/// One column value as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Text(String),
}

/// One result row: column names and values.
#[derive(Debug, Clone)]
pub struct Row {
    pub cols: std::sync::Arc<[String]>,
    pub vals: Vec<Val>,
}

impl Row {
    fn get(&self, col: &str) -> Result<&Val> {
        self.cols
            .iter()
            .position(|c| c == col)
            .map(|i| &self.vals[i])
            .ok_or_else(|| Error::internal(format!("the query returned no column `{col}`")))
    }

    /// The columns `range` of this row as a row of its own (for a query that joins several
    /// tables whose columns share names).
    pub fn part(&self, range: std::ops::Range<usize>) -> Result<Row> {
        let (cols, vals) = self
            .cols
            .get(range.clone())
            .zip(self.vals.get(range.clone()))
            .ok_or_else(|| Error::internal(format!("the query returned fewer than {} columns", range.end)))?;
        Ok(Row { cols: cols.iter().cloned().collect(), vals: vals.to_vec() })
    }

    pub fn s(&self, col: &str) -> Result<String> {
        self.os(col)?.ok_or_else(|| Error::internal(format!("column `{col}` is NULL")))
    }

    pub fn os(&self, col: &str) -> Result<Option<String>> {
        match self.get(col)? {
            Val::Null => Ok(None),
            Val::Text(s) => Ok(Some(s.clone())),
            Val::Int(i) => Ok(Some(i.to_string())),
        }
    }

    /// A text column as a typed id.
    pub fn id<T: From<String>>(&self, col: &str) -> Result<T> {
        self.s(col).map(T::from)
    }

    /// A nullable text column as a typed id.
    pub fn oid<T: From<String>>(&self, col: &str) -> Result<Option<T>> {
        Ok(self.os(col)?.map(T::from))
    }

    pub fn i(&self, col: &str) -> Result<i64> {
        self.oi(col)?.ok_or_else(|| Error::internal(format!("column `{col}` is NULL")))
    }

    pub fn oi(&self, col: &str) -> Result<Option<i64>> {
        match self.get(col)? {
            Val::Null => Ok(None),
            Val::Int(i) => Ok(Some(*i)),
            Val::Text(t) => t.parse().map(Some).map_err(|_| Error::internal(format!("column `{col}` is not a number"))),
        }
    }

    pub fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.i(col)? != 0)
    }

    pub fn js(&self, col: &str) -> Result<Value> {
        let text = self.s(col)?;
        serde_json::from_str(&text).map_err(|e| Error::internal(format!("column `{col}` holds bad JSON: {e}")))
    }
}

/// A database connection inside a transaction (or not), as the store's logic sees it.
#[async_trait]
pub trait Conn: Send {
    /// Runs a statement; returns the number of rows changed.
    async fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64>;
    /// Runs a query and returns all rows.
    async fn rows(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>>;
    /// Runs a script of several statements without arguments (migrations).
    async fn batch(&mut self, script: &str) -> Result<()>;

    /// `rows` for a query whose best plan depends on its arguments and on what the tables hold
    /// right now (the outbox claim, searches, reports over a period): PostgreSQL plans it for
    /// each run instead of reusing a plan made for other arguments or a smaller table.
    async fn rows_planned(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        self.rows(sql, args).await
    }

    /// `exec` of a statement PostgreSQL does not keep prepared: one whose text varies with its
    /// number of rows (a multi-row insert), so batch sizes do not crowd the statement cache.
    async fn exec_unprepared(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        self.exec(sql, args).await
    }

    /// The first row, if any.
    async fn row(&mut self, sql: &str, args: &[Arg]) -> Result<Option<Row>> {
        Ok(self.rows(sql, args).await?.into_iter().next())
    }

    /// Exactly one row.
    async fn one(&mut self, sql: &str, args: &[Arg]) -> Result<Row> {
        self.row(sql, args).await?.ok_or_else(|| Error::internal(format!("no row for: {sql}")))
    }
}
