//! Search over the text of every message.
//!
//! Each message's text is kept lowercased by okno itself in `message_search` (Rust's Unicode
//! lowercasing: «ЗАКАЗ», «Заказ» and «заказ» are one word on both backends, whatever the
//! database's collation; SQLite's own `lower()` and `LIKE` fold only ASCII). The copy is written
//! in the transaction that writes the message, and again when the message is edited.
//!
//! ```text
//!  message written/edited ──► message_search (message_id, lowercased body)
//!     SQLite: FTS5 trigram index, caught up in batches ──► message_search_fts (rows ≤ `upto`)
//!     PostgreSQL: pg_trgm GIN index on body, kept by PostgreSQL itself
//!  search "Заказ" ──► "заказ" ──► matching message ids ──► their conversations
//!     SQLite: index MATCH for rows ≤ upto  ∪  LIKE over the few rows after it
//! ```
//!
//! Why SQLite's index is caught up in batches: FTS5 writes a segment per transaction, and one
//! segment per message took about a third of the inbound write rate; a batch of a second's
//! messages costs a fraction of that. The rows not yet in the index are searched with `LIKE`,
//! so a search is exact at every moment, whether or not anything catches the index up.
//!
//! A search of three or more characters reads the trigram index; one or two characters
//! read the whole `message_search` table (short texts, still bounded by the number of messages).
//! Messages written before the index existed are added after start-up by [`SearchStore::backfill_search`].

use async_trait::async_trait;
use okno_domain::Result;

use crate::db::{args, Arg, Conn};
use crate::sql::{on, SqlStore};
use crate::Backend;

/// How okno lowercases text for search: the same for the stored copy and the search text.
pub(crate) fn fold(text: &str) -> String {
    text.to_lowercase()
}

/// What the search copy of a message's text holds: the text folded, `None` for no text.
pub(crate) fn body(text: Option<&str>) -> Option<String> {
    text.map(fold).filter(|t| !t.trim().is_empty())
}

/// Writes the search copy of a new message's text (inside the caller's transaction).
pub(crate) async fn index_new(c: &mut dyn Conn, message_id: &str, text: Option<&str>) -> Result<()> {
    index_new_all(c, &[(message_id, text)]).await
}

/// `index_new` for several messages (id, text) in one statement.
pub(crate) async fn index_new_all(c: &mut dyn Conn, messages: &[(&str, Option<&str>)]) -> Result<()> {
    let mut args = Vec::with_capacity(messages.len() * 2);
    for (id, text) in messages {
        if let Some(body) = body(*text) {
            args.extend([Arg::from(*id), Arg::from(body)]);
        }
    }
    if args.is_empty() {
        return Ok(());
    }
    let n = args.len() / 2;
    let sql =
        format!("INSERT INTO message_search (message_id, body) VALUES {}", crate::statements::value_rows("(?, ?)", n));
    crate::statements::exec_rows(c, &sql, &args, n).await?;
    Ok(())
}

/// Replaces the search copy of an edited message's text, or removes it when the message has
/// no text left (inside the caller's transaction).
pub(crate) async fn reindex(c: &mut dyn Conn, message_id: &str, text: Option<&str>) -> Result<()> {
    match body(text) {
        Some(body) => {
            c.exec(
                "INSERT INTO message_search (message_id, body) VALUES ($1, $2) \
                 ON CONFLICT (message_id) DO UPDATE SET body = excluded.body",
                args![message_id, body],
            )
            .await?;
        }
        None => {
            c.exec("DELETE FROM message_search WHERE message_id = $1", args![message_id]).await?;
        }
    }
    Ok(())
}

/// A piece of a statement: SQL, or an argument to bind in its place.
pub(crate) enum Piece {
    Sql(&'static str),
    Arg(String),
}

/// A subquery of the ids of messages whose text contains `text` (case-insensitive), in pieces;
/// `None` for a text of blanks.
pub(crate) fn matching_messages(backend: Backend, text: &str) -> Option<Vec<Piece>> {
    let needle = fold(text.trim());
    if needle.is_empty() {
        return None;
    }
    let like = like_pattern(&needle);
    if backend == Backend::Sqlite && needle.chars().count() >= 3 {
        // A quoted FTS5 phrase: the trigram tokenizer matches it as a substring. Rows the
        // index has not caught up with yet are read with LIKE.
        let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
        return Some(vec![
            Piece::Sql(
                "SELECT s.message_id FROM message_search_fts f JOIN message_search s ON s.id = f.rowid \
                 WHERE message_search_fts MATCH ",
            ),
            Piece::Arg(phrase),
            Piece::Sql(
                " UNION ALL SELECT s.message_id FROM message_search s \
                 WHERE s.id > (SELECT upto FROM message_search_fts_state WHERE id = 1) AND s.body LIKE ",
            ),
            Piece::Arg(like),
            Piece::Sql(" ESCAPE '\\'"),
        ]);
    }
    Some(vec![
        Piece::Sql("SELECT s.message_id FROM message_search s WHERE s.body LIKE "),
        Piece::Arg(like),
        Piece::Sql(" ESCAPE '\\'"),
    ])
}

/// `%text%` for LIKE (with `ESCAPE '\'`), LIKE's own wildcards escaped.
fn like_pattern(needle: &str) -> String {
    let mut p = String::from("%");
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The search index's upkeep.
#[async_trait]
pub trait SearchStore: Send + Sync + 'static {
    /// Indexes up to `limit` messages written before the search index existed (oldest first);
    /// returns how many it read. 0: there are none left (and there never will be again).
    async fn backfill_search(&self, limit: u32) -> Result<u64>;
    /// SQLite: adds up to `limit` message copies not yet in the trigram index to it, in one
    /// transaction; returns how many. PostgreSQL keeps its index itself: always 0.
    async fn catch_up_search_index(&self, limit: u32) -> Result<u64>;
}

#[async_trait]
impl SearchStore for SqlStore {
    async fn catch_up_search_index(&self, limit: u32) -> Result<u64> {
        if <Self as crate::Store>::backend(self) != Backend::Sqlite {
            return Ok(0);
        }
        on!(self.write, |c| {
            let upto = c.one("SELECT upto FROM message_search_fts_state WHERE id = 1", args![]).await?.i("upto")?;
            // The limit written in, as in the outbox claim: a bound `LIMIT` makes SQLite prepare
            // the statement again on every run, and this one runs on the writer all day.
            let last = c
                .one(
                    &format!(
                        "SELECT COUNT(*) AS n, MAX(id) AS last FROM \
                         (SELECT id FROM message_search WHERE id > $1 ORDER BY id LIMIT {limit}) t"
                    ),
                    args![upto],
                )
                .await?;
            let (n, Some(last)) = (last.i("n")?, last.oi("last")?) else { return Ok(0) };
            c.exec(
                "INSERT INTO message_search_fts (rowid, body) SELECT id, body FROM message_search \
                 WHERE id > $1 AND id <= $2",
                args![upto, last],
            )
            .await?;
            c.exec("UPDATE message_search_fts_state SET upto = $1 WHERE id = 1", args![last]).await?;
            Ok(n as u64)
        })
    }

    async fn backfill_search(&self, limit: u32) -> Result<u64> {
        // PostgreSQL: processes started together take turns on the slices instead of all doing each.
        let lock = if <Self as crate::Store>::backend(self) == Backend::Postgres { " FOR UPDATE" } else { "" };
        on!(self.write, |c| {
            let mark = c.row(&format!("SELECT after FROM message_search_backfill WHERE id = 1{lock}"), args![]).await?;
            let Some(mark) = mark else {
                return Ok(0);
            };
            let after = mark.s("after")?;
            let rows = c
                .rows(
                    "SELECT id, text FROM messages WHERE id > $1 ORDER BY id LIMIT $2",
                    args![&after, i64::from(limit)],
                )
                .await?;
            for r in &rows {
                let Some(body) = r.os("text")?.map(|t| fold(&t)).filter(|t| !t.trim().is_empty()) else { continue };
                // A message edited (or written) since the migration already has its copy.
                c.exec(
                    "INSERT INTO message_search (message_id, body) VALUES ($1, $2) ON CONFLICT (message_id) DO NOTHING",
                    args![r.s("id")?, body],
                )
                .await?;
            }
            match rows.last() {
                Some(last) if rows.len() as u64 == u64::from(limit) => {
                    c.exec("UPDATE message_search_backfill SET after = $1 WHERE id = 1", args![last.s("id")?]).await?;
                }
                _ => {
                    c.exec("DELETE FROM message_search_backfill WHERE id = 1", args![]).await?;
                }
            }
            Ok(rows.len() as u64)
        })
    }
}
