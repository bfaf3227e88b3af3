//! Business events as people look at them: a page of events with what became of each in
//! figures (`GET /api/v1/events`, the operator window's events page), and what each rule made
//! of an event — matched, not matched because its condition was false, failed, scheduled —
//! recorded in the transaction that ends the event's processing.

use async_trait::async_trait;
use okno_domain::model::Page;
use okno_domain::time::{now_ms, Millis};
use okno_domain::{Error, Result};
use serde::Serialize;
use serde_json::Value;

use crate::db::{args, Arg, Conn, Row};
use crate::sql::{on, SqlStore};
use crate::{Notification, NotifyOutcome, PageRequest};

/// The states an event goes through: `accepted` (waiting for its rules to run), `scheduled`
/// (posted with a later `send_at`), `processed`, `no_rule` (no rule or survey matched).
pub const EVENT_STATUSES: [&str; 4] = ["accepted", "scheduled", "processed", "no_rule"];

/// Which events to list; every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// The event type, exactly (`payment.received`).
    pub event_type: Option<String>,
    /// One of [`EVENT_STATUSES`].
    pub status: Option<String>,
    /// The idempotency key, exactly.
    pub key: Option<String>,
    /// Accepted at or after this time.
    pub from: Option<Millis>,
    /// Accepted before this time.
    pub to: Option<Millis>,
}

/// How many people an event reached, and how many it did not.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EventCounts {
    /// People whose message went out (`sent`, `delivered` or `read`).
    pub sent: i64,
    /// People whose message is still waiting to go out.
    pub queued: i64,
    /// People whose message failed, or for whom none could be made (a template error).
    pub failed: i64,
    /// Recipients the rules named who could not be reached (no such contact, no messenger
    /// linked, blocked everywhere, an empty group…).
    pub unresolved: i64,
}

/// An event in a list: what it was and what became of it, in figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventSummary {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub key: String,
    /// One of `accepted`, `scheduled`, `processed`, `no_rule`.
    pub status: String,
    pub data: Value,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub send_at: Option<Millis>,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub created_at: Millis,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub processed_at: Option<Millis>,
    /// Rules (and surveys) that matched the event.
    pub matched_rules: i64,
    pub counts: EventCounts,
}

/// What one rule (or a survey the event starts, `survey:<id>`) made of an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleOutcome {
    pub rule_id: String,
    /// The rule's name when the event was processed.
    pub rule_name: String,
    /// `matched`, `not_matched` (the condition was false), `condition_error`, `scheduled`
    /// (runs at `run_at`; `matched` once it ran) or `invalid` (the stored rule no longer parses).
    pub outcome: String,
    /// The condition that was false, or the error.
    pub detail: Option<String>,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub run_at: Option<Millis>,
}

impl RuleOutcome {
    /// An outcome without detail or time.
    pub fn new(rule_id: &str, rule_name: &str, outcome: &str) -> RuleOutcome {
        RuleOutcome {
            rule_id: rule_id.to_string(),
            rule_name: rule_name.to_string(),
            outcome: outcome.to_string(),
            detail: None,
            run_at: None,
        }
    }
}

/// The events' listing and the rule outcomes that are not part of `Store` itself.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// The newest first, with the figures of what became of each.
    async fn list_events(&self, filter: EventFilter, page: PageRequest) -> Result<Page<EventSummary>>;
    /// A delayed rule's turn, in one transaction: queues `ns` (as `notify_all`) and records the
    /// rule's outcome (replacing its `scheduled`).
    async fn complete_rule(
        &self,
        ns: Vec<Notification>,
        event_id: &str,
        outcome: RuleOutcome,
    ) -> Result<Vec<NotifyOutcome>>;
}

/// Records (or replaces) what rules made of an event.
pub(crate) async fn record_rule_outcomes(c: &mut dyn Conn, event_id: &str, rules: &[RuleOutcome]) -> Result<()> {
    let now = now_ms();
    for r in rules {
        c.exec(
            "INSERT INTO event_rules (event_id, rule_id, rule_name, outcome, detail, run_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (event_id, rule_id) DO UPDATE SET rule_name = $3, outcome = $4, detail = $5, \
             run_at = COALESCE($6, event_rules.run_at), updated_at = $7",
            args![event_id, &r.rule_id, &r.rule_name, &r.outcome, &r.detail, r.run_at, now],
        )
        .await?;
    }
    Ok(())
}

/// What rules made of an event, in the order they were recorded.
pub(crate) async fn load_rule_outcomes(c: &mut dyn Conn, event_id: &str) -> Result<Vec<RuleOutcome>> {
    c.rows(
        "SELECT rule_id, rule_name, outcome, detail, run_at FROM event_rules WHERE event_id = $1 \
         ORDER BY created_at, rule_name",
        args![event_id],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(RuleOutcome {
            rule_id: r.s("rule_id")?,
            rule_name: r.s("rule_name")?,
            outcome: r.s("outcome")?,
            detail: r.os("detail")?,
            run_at: r.oi("run_at")?,
        })
    })
    .collect()
}

/// Codes of unresolved rows that are notes about a rule rather than a person left out.
const NOT_A_PERSON: &str = "('condition_error', 'delay_ignored')";

fn summary_from(r: &Row) -> Result<EventSummary> {
    Ok(EventSummary {
        id: r.s("id")?,
        event_type: r.s("type")?,
        key: r.s("key")?,
        status: r.s("status")?,
        data: r.js("data")?,
        send_at: r.oi("send_at")?,
        created_at: r.i("created_at")?,
        processed_at: r.oi("processed_at")?,
        matched_rules: r.i("matched_rules")?,
        counts: EventCounts {
            sent: r.i("sent")?,
            queued: r.i("queued")?,
            failed: r.i("failed")?,
            unresolved: r.i("unresolved")?,
        },
    })
}

#[async_trait]
impl EventStore for SqlStore {
    async fn list_events(&self, filter: EventFilter, page: PageRequest) -> Result<Page<EventSummary>> {
        if let Some(s) = filter.status.as_deref().filter(|s| !EVENT_STATUSES.contains(s)) {
            return Err(Error::invalid(
                "invalid_status",
                format!("`status` `{s}` is not one of {}", EVENT_STATUSES.join(", ")),
            ));
        }
        on!(self.read, |c| {
            // Each figure is a count over the event's own rows (read through the indexes on
            // `event_id`), so a page costs the same whatever the events hold in total.
            let mut sql = format!(
                "SELECT e.id, e.type, e.key, e.data, e.status, e.send_at, e.created_at, e.processed_at, \
                 (SELECT COUNT(*) FROM event_rules r WHERE r.event_id = e.id AND r.outcome IN ('matched', 'scheduled')) AS matched_rules, \
                 (SELECT COUNT(*) FROM event_deliveries d JOIN messages m ON m.id = d.message_id \
                  WHERE d.event_id = e.id AND m.status IN ('sent', 'delivered', 'read')) AS sent, \
                 (SELECT COUNT(*) FROM event_deliveries d JOIN messages m ON m.id = d.message_id \
                  WHERE d.event_id = e.id AND m.status = 'queued') AS queued, \
                 (SELECT COUNT(*) FROM event_deliveries d LEFT JOIN messages m ON m.id = d.message_id \
                  WHERE d.event_id = e.id AND (m.id IS NULL OR m.status = 'failed')) AS failed, \
                 (SELECT COUNT(*) FROM event_unresolved u WHERE u.event_id = e.id \
                  AND (u.code IS NULL OR u.code NOT IN {NOT_A_PERSON})) AS unresolved \
                 FROM events e WHERE 1 = 1"
            );
            let mut params: Vec<Arg> = Vec::new();
            let mut and = |sql: &mut String, cond: &str, arg: Arg| {
                params.push(arg);
                sql.push_str(&format!(" AND {cond} ${}", params.len()));
            };
            if let Some(t) = &filter.event_type {
                and(&mut sql, "e.type =", t.into());
            }
            if let Some(s) = &filter.status {
                and(&mut sql, "e.status =", s.into());
            }
            if let Some(k) = &filter.key {
                and(&mut sql, "e.key =", k.into());
            }
            if let Some(from) = filter.from {
                and(&mut sql, "e.created_at >=", from.into());
            }
            if let Some(to) = filter.to {
                and(&mut sql, "e.created_at <", to.into());
            }
            // Ids are time-ordered (UUIDv7): the newest first, and the cursor is the last id seen.
            if let Some(cursor) = &page.cursor {
                and(&mut sql, "e.id <", cursor.into());
            }
            params.push((i64::from(page.limit) + 1).into());
            sql.push_str(&format!(" ORDER BY e.id DESC LIMIT ${}", params.len()));
            let mut items =
                c.rows_planned(&sql, &params).await?.iter().map(summary_from).collect::<Result<Vec<_>>>()?;
            let more = items.len() > page.limit as usize;
            items.truncate(page.limit as usize);
            let next = if more { items.last().map(|e| e.id.clone()) } else { None };
            Ok(Page { items, next })
        })
    }

    async fn complete_rule(
        &self,
        ns: Vec<Notification>,
        event_id: &str,
        outcome: RuleOutcome,
    ) -> Result<Vec<NotifyOutcome>> {
        let event_id = event_id.to_owned();
        on!(self.write, |c| {
            let out = crate::sql::notify_many(c, ns).await?;
            record_rule_outcomes(c, &event_id, std::slice::from_ref(&outcome)).await?;
            Ok(out)
        })
    }
}
