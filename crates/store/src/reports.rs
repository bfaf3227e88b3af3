//! Figures for the reports, computed by the database: each query returns a row per group (a
//! day and channel, an operator, an answer value, a broadcast), never a row per message, so a
//! period of any size costs one pass over its rows inside the database and a few rows out.
//!
//! Medians are exact: the database ranks each operator's times with window functions and
//! returns the middle one (the upper middle for an even count, as before).

use async_trait::async_trait;
use okno_domain::time::Millis;
use okno_domain::{Error, Result};
use serde::Serialize;

use crate::db::{args, Arg, Conn, Row};
use crate::sql::{on, SqlStore};
use crate::Backend;

/// Messages of one channel on one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayCount {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub channel_id: String,
    pub messages: i64,
}

/// One operator's times: how many, and the median.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorFigure {
    pub operator: String,
    pub count: i64,
    pub median_ms: Millis,
}

/// How many answers had a value, in one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerCount {
    /// The event field's value as JSON (`"Петров"`, `5`); `None` when the event lacks it.
    pub group: Option<String>,
    pub value: String,
    pub count: i64,
}

/// One broadcast's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BroadcastResult {
    pub id: String,
    pub name: String,
    pub status: String,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub created_at: Millis,
    pub total: i64,
    pub sent: i64,
    pub failed: i64,
    pub pending: i64,
    /// Left out: opted out of broadcasts.
    pub skipped: i64,
    /// People who answered with one of its buttons (or a reply), unsubscribing aside.
    pub answered: i64,
    /// People who pressed its "unsubscribe" button.
    pub unsubscribed: i64,
}

/// Aggregates for the reports, over `[from, to)`.
#[async_trait]
pub trait ReportStore: Send + Sync + 'static {
    /// Messages (both directions) per UTC day and channel.
    async fn messages_per_day(&self, from: Millis, to: Millis) -> Result<Vec<DayCount>>;
    /// Per operator: conversations whose first inbound message of the period they answered
    /// first, and the median time from that message to their answer.
    async fn first_responses(&self, from: Millis, to: Millis) -> Result<Vec<OperatorFigure>>;
    /// Per assignee: conversations resolved now that had an inbound message in the period, and
    /// the median time from the period's first inbound message to the conversation's last change.
    async fn resolutions(&self, from: Millis, to: Millis) -> Result<Vec<OperatorFigure>>;
    /// Answers to events of `event_type` in the period, counted per value and per the event's
    /// field at `path` (keys into its data, e.g. `["manager"]`).
    async fn answer_counts(
        &self,
        event_type: &str,
        path: &[String],
        from: Millis,
        to: Millis,
    ) -> Result<Vec<AnswerCount>>;
    /// Broadcasts created in the period (newest first, at most `limit`) with their outcome.
    async fn broadcast_results(&self, from: Millis, to: Millis, limit: u32) -> Result<Vec<BroadcastResult>>;
}

const DAY_MS: Millis = 86_400_000;

/// Each conversation's first inbound message in the period: `(conversation_id, t0)`.
const FIRST_IN: &str = "SELECT conversation_id, MIN(created_at) AS t0 FROM messages \
     WHERE direction = 'in' AND created_at >= $1 AND created_at < $2 GROUP BY conversation_id";

/// `who, count, median` from a query of `(who, wait)` rows.
fn medians(times: &str) -> String {
    format!(
        "SELECT who, n, wait FROM (SELECT who, wait, ROW_NUMBER() OVER (PARTITION BY who ORDER BY wait) AS rn, \
         COUNT(*) OVER (PARTITION BY who) AS n FROM ({times}) t) r WHERE rn = n / 2 + 1 ORDER BY who"
    )
}

fn figure(r: &Row) -> Result<OperatorFigure> {
    Ok(OperatorFigure { operator: r.s("who")?, count: r.i("n")?, median_ms: r.i("wait")? })
}

/// A key of the event data path: letters, digits, `_` and `-` (it goes into a JSON path).
fn check_key(k: &str) -> Result<()> {
    let ok = !k.is_empty() && k.len() <= 64 && k.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("invalid_group_by", format!("`{k}` is not a field name (letters, digits, _ and -)")))
    }
}

#[async_trait]
impl ReportStore for SqlStore {
    async fn messages_per_day(&self, from: Millis, to: Millis) -> Result<Vec<DayCount>> {
        on!(self.read, |c| {
            c.rows_planned(
                &format!(
                    "SELECT created_at / {DAY_MS} AS day, channel_id, COUNT(*) AS n FROM messages \
                     WHERE created_at >= $1 AND created_at < $2 GROUP BY 1, 2 ORDER BY 1, 2"
                ),
                args![from, to],
            )
            .await?
            .iter()
            .map(|r| Ok(DayCount { day: r.i("day")?, channel_id: r.s("channel_id")?, messages: r.i("n")? }))
            .collect()
        })
    }

    async fn first_responses(&self, from: Millis, to: Millis) -> Result<Vec<OperatorFigure>> {
        // The first reply by an operator at or after each conversation's first inbound message
        // (ties in time broken by message id, which grows with time).
        let times = format!(
            "SELECT o.author AS who, o.created_at - i.t0 AS wait FROM ({FIRST_IN}) i \
             JOIN messages o ON o.id = (SELECT m.id FROM messages m WHERE m.conversation_id = i.conversation_id \
               AND m.direction = 'out' AND m.author LIKE 'operator:%' AND m.created_at >= i.t0 \
               ORDER BY m.created_at, m.id LIMIT 1)"
        );
        let sql = medians(&times);
        on!(self.read, |c| {
            c.rows_planned(&sql, args![from, to])
                .await?
                .iter()
                .map(|r| {
                    let mut f = figure(r)?;
                    f.operator = f.operator.trim_start_matches("operator:").to_string();
                    Ok(f)
                })
                .collect()
        })
    }

    async fn resolutions(&self, from: Millis, to: Millis) -> Result<Vec<OperatorFigure>> {
        let times = format!(
            "SELECT c.assignee AS who, c.updated_at - i.t0 AS wait FROM ({FIRST_IN}) i \
             JOIN conversations c ON c.id = i.conversation_id \
             WHERE c.status = 'resolved' AND c.assignee IS NOT NULL"
        );
        let sql = medians(&times);
        on!(self.read, |c| c.rows_planned(&sql, args![from, to]).await?.iter().map(figure).collect())
    }

    async fn answer_counts(
        &self,
        event_type: &str,
        path: &[String],
        from: Millis,
        to: Millis,
    ) -> Result<Vec<AnswerCount>> {
        for k in path {
            check_key(k)?;
        }
        // The field as JSON text, so a string and a number stay apart and read back exactly.
        let mut params: Vec<Arg> = vec![Arg::Text(event_type.to_owned()), Arg::Int(from), Arg::Int(to)];
        let group = match (<Self as crate::Store>::backend(self), path.is_empty()) {
            (_, true) => "NULL",
            (Backend::Sqlite, false) => {
                params.push(Arg::Text(format!("${}", path.iter().map(|k| format!(".\"{k}\"")).collect::<String>())));
                "e.data -> $4"
            }
            (Backend::Postgres, false) => {
                params.push(Arg::Text(format!("{{{}}}", path.join(","))));
                "CAST(CAST(e.data AS jsonb) #> CAST($4 AS text[]) AS TEXT)"
            }
        };
        let sql = format!(
            "SELECT {group} AS grp, a.value, COUNT(*) AS n FROM answers a JOIN events e ON e.id = a.event_id \
             WHERE e.type = $1 AND a.created_at >= $2 AND a.created_at < $3 GROUP BY 1, 2 ORDER BY 1, 2"
        );
        on!(self.read, |c| {
            c.rows_planned(&sql, &params)
                .await?
                .iter()
                .map(|r| Ok(AnswerCount { group: r.os("grp")?, value: r.s("value")?, count: r.i("n")? }))
                .collect()
        })
    }

    async fn broadcast_results(&self, from: Millis, to: Millis, limit: u32) -> Result<Vec<BroadcastResult>> {
        // A person's outcome as the broadcast's own counts read it: their row's state, and for
        // a queued person their message's status.
        let sql = "SELECT b.id, b.name, b.status, b.created_at, b.total, \
             CAST(COALESCE(SUM(CASE WHEN r.state = 'queued' AND m.status IS NOT NULL AND m.status NOT IN ('queued', 'failed') THEN 1 ELSE 0 END), 0) AS BIGINT) AS sent, \
             CAST(COALESCE(SUM(CASE WHEN (r.state = 'queued' AND m.status = 'failed') OR r.state = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed, \
             CAST(COALESCE(SUM(CASE WHEN r.state = 'pending' OR (r.state = 'queued' AND (m.status IS NULL OR m.status = 'queued')) THEN 1 ELSE 0 END), 0) AS BIGINT) AS pending, \
             CAST(COALESCE(SUM(CASE WHEN r.state = 'skipped' THEN 1 ELSE 0 END), 0) AS BIGINT) AS skipped, \
             CAST(COALESCE(SUM(CASE WHEN r.answer IS NOT NULL AND r.answer <> $3 THEN 1 ELSE 0 END), 0) AS BIGINT) AS answered, \
             CAST(COALESCE(SUM(CASE WHEN r.answer = $3 THEN 1 ELSE 0 END), 0) AS BIGINT) AS unsubscribed \
             FROM broadcasts b LEFT JOIN broadcast_recipients r ON r.broadcast_id = b.id \
             LEFT JOIN messages m ON m.id = r.message_id \
             WHERE b.created_at >= $1 AND b.created_at < $2 \
             GROUP BY b.id, b.name, b.status, b.created_at, b.total ORDER BY b.created_at DESC, b.id DESC LIMIT $4";
        on!(self.read, |c| {
            c.rows_planned(sql, args![from, to, crate::UNSUBSCRIBE, i64::from(limit)])
                .await?
                .iter()
                .map(|r| {
                    Ok(BroadcastResult {
                        id: r.s("id")?,
                        name: r.s("name")?,
                        status: r.s("status")?,
                        created_at: r.i("created_at")?,
                        total: r.i("total")?,
                        sent: r.i("sent")?,
                        failed: r.i("failed")?,
                        pending: r.i("pending")?,
                        skipped: r.i("skipped")?,
                        answered: r.i("answered")?,
                        unsubscribed: r.i("unsubscribed")?,
                    })
                })
                .collect()
        })
    }
}
