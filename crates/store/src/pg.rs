//! PostgreSQL through sqlx: a pool of connections; each store operation runs in one
//! transaction on one of them.

use async_trait::async_trait;
use okno_domain::{Error, Result};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Column, Row as _, TypeInfo};

use crate::db::{Arg, Conn, Row, Val};
use crate::error::db;
use crate::lite::Op;

pub(crate) struct Pg {
    pool: PgPool,
}

/// A borrowed PostgreSQL connection (or transaction).
pub(crate) struct PgConn<'c> {
    conn: &'c mut sqlx::PgConnection,
}

impl Pg {
    pub(crate) async fn open(url: &str, max: u32, acquire_ms: u64) -> Result<Pg> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::invalid("invalid_database_url", format!("the PostgreSQL URL is not valid: {e}")))?
            // No JIT: okno's statements are short, and compiling one whose estimate looked large
            // took longer (300 ms seen on a claim) than running it. Prepared statements keep
            // PostgreSQL's own choice between a cached and a per-run plan (a cached plan is made
            // again when the tables' statistics change); the queries whose plan depends on their
            // arguments use `Conn::rows_planned`.
            .options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(max.max(2))
            .acquire_timeout(std::time::Duration::from_millis(acquire_ms))
            .connect_with(options)
            .await
            .map_err(db)?;
        Ok(Pg { pool })
    }

    pub(crate) async fn write<T: Send + 'static>(&self, op: Op<T>) -> Result<T> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let result = op(&mut PgConn { conn: &mut tx }).await;
        match result {
            Ok(v) => {
                tx.commit().await.map_err(db)?;
                Ok(v)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    pub(crate) async fn read<T: Send + 'static>(&self, op: Op<T>) -> Result<T> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        op(&mut PgConn { conn: &mut conn }).await
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for a in args {
        q = match a {
            Arg::NullInt => q.bind(None::<i64>),
            Arg::NullText => q.bind(None::<String>),
            Arg::Int(i) => q.bind(*i),
            Arg::Text(s) => q.bind(s.as_str()),
        };
    }
    q
}

fn convert(row: &PgRow) -> Result<Row> {
    let cols: std::sync::Arc<[String]> = row.columns().iter().map(|c| c.name().to_string()).collect();
    let mut vals = Vec::with_capacity(cols.len());
    for (i, col) in row.columns().iter().enumerate() {
        let v = match col.type_info().name() {
            "INT8" => row.try_get::<Option<i64>, _>(i).map(|v| v.map_or(Val::Null, Val::Int)),
            "INT4" => row.try_get::<Option<i32>, _>(i).map(|v| v.map_or(Val::Null, |v| Val::Int(v.into()))),
            "INT2" => row.try_get::<Option<i16>, _>(i).map(|v| v.map_or(Val::Null, |v| Val::Int(v.into()))),
            "BOOL" => row.try_get::<Option<bool>, _>(i).map(|v| v.map_or(Val::Null, |v| Val::Int(v.into()))),
            "VOID" => Ok(Val::Null),
            _ => row.try_get::<Option<String>, _>(i).map(|v| v.map_or(Val::Null, Val::Text)),
        }
        .map_err(|e| Error::internal(format!("column `{}`: {e}", col.name())))?;
        vals.push(v);
    }
    Ok(Row { cols, vals })
}

#[async_trait]
impl Conn for PgConn<'_> {
    async fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        Ok(bind(sqlx::query(sql), args).execute(&mut *self.conn).await.map_err(db)?.rows_affected())
    }

    async fn rows(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        bind(sqlx::query(sql), args).fetch_all(&mut *self.conn).await.map_err(db)?.iter().map(convert).collect()
    }

    async fn rows_planned(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        // An unnamed statement: PostgreSQL plans it with these arguments every time it runs.
        bind(sqlx::query(sql).persistent(false), args)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(db)?
            .iter()
            .map(convert)
            .collect()
    }

    async fn exec_unprepared(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        Ok(bind(sqlx::query(sql).persistent(false), args).execute(&mut *self.conn).await.map_err(db)?.rows_affected())
    }

    async fn batch(&mut self, script: &str) -> Result<()> {
        for body in statements(script) {
            sqlx::query(&body).execute(&mut *self.conn).await.map_err(db)?;
        }
        Ok(())
    }
}

/// A migration script's statements. Each ends with `;` at the end of a line; a function body in
/// `$$ … $$` keeps its own semicolons; no literal holds one otherwise. Comment lines are dropped.
fn statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for piece in script.split_inclusive(";\n") {
        current.push_str(piece);
        if current.matches("$$").count() % 2 == 1 {
            continue;
        }
        let body: String = current.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
        let body = body.trim().trim_end_matches(';').trim();
        if !body.is_empty() {
            out.push(body.to_owned());
        }
        current.clear();
    }
    let rest = current.trim();
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn function_bodies_keep_their_semicolons() {
        let script = "-- a comment\nCREATE TABLE a (x BIGINT);\n\nCREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n    RETURN NEW;\nEND;\n$$;\nDROP TABLE b;\n";
        assert_eq!(
            statements(script),
            vec![
                "CREATE TABLE a (x BIGINT)".to_owned(),
                "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n    RETURN NEW;\nEND;\n$$"
                    .to_owned(),
                "DROP TABLE b".to_owned(),
            ]
        );
    }
}
