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
            // Plans are made per execution: a plan cached while a table was nearly empty (a
            // sequential scan) would otherwise stay in use after it has grown.
            .options([("plan_cache_mode", "force_custom_plan")]);
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

    async fn batch(&mut self, script: &str) -> Result<()> {
        // Migration scripts end each statement with `;` at the end of a line and hold no
        // semicolons inside literals, so they split safely into single statements.
        for stmt in script.split(";\n") {
            let body: String =
                stmt.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
            if body.trim().is_empty() {
                continue;
            }
            sqlx::query(&body).execute(&mut *self.conn).await.map_err(db)?;
        }
        Ok(())
    }
}
