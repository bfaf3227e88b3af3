//! Business events: accepting one from the business system (once per idempotency key, with
//! its processing job), reading it back with its deliveries, and the answers to it.
//!
//! Business events as people look at them: a page of events with what became of each in
//! figures (`GET /api/v1/events`, the operator window's events page), and the end of an
//! event's processing: everything the engine worked out for it — the notifications, what each
//! rule made of the event (matched, not matched because its condition was false, failed,
//! scheduled), who could not be reached and why, the surveys it starts — written in one
//! transaction with the end of its job, so a retry after a failure writes nothing twice.
//!
//! ```text
//!  process_event job ─► engine: rules, recipients, texts ─► Processed ─► complete_event:
//!     status guard (first write) · not made · notifications · survey runs · unreached · rule
//!     outcomes (+ a job per delayed rule) · end of the job            ─── one transaction
//!  notify_rule job (a delayed rule) ─► Processed ─► complete_rule: the same for that rule
//! ```

use std::collections::HashMap;

use async_trait::async_trait;
use okno_domain::ids::new_id;
use okno_domain::model::Page;
use okno_domain::time::{now_ms, Millis};
use okno_domain::{Error, Result};
use serde::Serialize;
use serde_json::Value;

use crate::db::{args, Arg, Conn, Row};
use crate::notifications::notify_many;
use crate::outbox::{end_job, insert_job};
use crate::sql::{on, SqlStore};
use crate::statements::{exec_rows, to_json, value_rows, INSERT_ROWS};
use crate::surveys::{load_survey_in, start_runs};
use crate::{
    AnswerRow, EventDelivery, EventRecord, JobKind, NewEvent, NewRun, Notification, NotifyOutcome, PageRequest,
    StartOutcome, Unresolved,
};

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

/// A person no message could be made for, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct NotMade {
    pub rule_id: String,
    pub contact_id: String,
    /// `template_failed` or `attachment_failed`.
    pub code: String,
    pub error: String,
}

/// The runs an event starts of one survey (its people, each under the event's key).
#[derive(Debug, Clone)]
pub struct SurveyStart {
    pub survey_id: String,
    pub runs: Vec<NewRun>,
}

/// What processing an event — or one delayed rule of it — came to, as the engine worked it
/// out; the store writes all of it in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Processed {
    /// One per person to notify (as `NotificationStore::notify_all`).
    pub notifications: Vec<Notification>,
    /// What each rule (or survey, `survey:<id>`) made of the event. A `scheduled` outcome
    /// queues the rule's own run at its `run_at`.
    pub rules: Vec<RuleOutcome>,
    /// Recipients that named nobody, and notes about a rule (`condition_error`,
    /// `delay_ignored`).
    pub unresolved: Vec<Unresolved>,
    /// People no message could be made for.
    pub not_made: Vec<NotMade>,
    /// Surveys the event starts; a person none of whose channels reaches them is recorded as
    /// unreached (`unreachable`) under `survey:<id>`.
    pub surveys: Vec<SurveyStart>,
    /// What rules do in business systems: one `ConnectorAction` job each, ref
    /// `<event id>:<rule id>:<action index>`, in the queue `connector:<connector id>`.
    pub connector_actions: Vec<QueuedAction>,
}

/// A rule's action in a business system, queued with the end of the event's processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedAction {
    pub rule_id: String,
    /// The action's place in the rule's `actions`.
    pub index: usize,
    pub connector_id: String,
}

/// Business events: accepting and reading them, their listing, and the end of an event's
/// processing.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// The newest first, with the figures of what became of each.
    async fn list_events(&self, filter: EventFilter, page: PageRequest) -> Result<Page<EventSummary>>;
    /// The end of processing an event, in one transaction: writes `done` (see [`Processed`]),
    /// sets the event's `status` and ends its job `seq` if `owner` still holds it. An event
    /// another run has completed already (a retry after its commit, a lost lease) is left as
    /// it is: nothing is written twice. Returns the notifications' outcomes and `false` when
    /// the lease was lost.
    async fn complete_event(
        &self,
        event_id: &str,
        status: &str,
        done: Processed,
        seq: i64,
        owner: &str,
    ) -> Result<(Vec<NotifyOutcome>, bool)>;
    /// A delayed rule's turn (its one outcome in `done.rules`), in one transaction: writes
    /// `done` and ends its job `seq` if `owner` still holds it. A rule that already ran for
    /// the event is left as it is.
    async fn complete_rule(
        &self,
        event_id: &str,
        done: Processed,
        seq: i64,
        owner: &str,
    ) -> Result<(Vec<NotifyOutcome>, bool)>;

    /// Stores an event and its processing job; the same key again returns the first event and
    /// `true`, and queues nothing.
    async fn accept_event(&self, new: NewEvent) -> Result<(EventRecord, bool)>;
    async fn get_event(&self, id: &str) -> Result<EventRecord>;
    /// The event alone, without its deliveries and unresolved recipients (left empty).
    async fn get_event_row(&self, id: &str) -> Result<EventRecord>;
    async fn finish_event(&self, id: &str, status: &str) -> Result<()>;
    /// Answers to events of a type within `[from, to)`, for reports.
    async fn answers(&self, event_type: &str, from: Millis, to: Millis) -> Result<Vec<AnswerRow>>;
}

/// Records (or replaces) what rules made of an event, in one statement per 200 rules; a
/// `scheduled` never replaces a `matched` (a delayed rule that ran is not shown as waiting).
pub(crate) async fn record_rule_outcomes(c: &mut dyn Conn, event_id: &str, rules: &[RuleOutcome]) -> Result<()> {
    // One row per rule (a statement may not update the same row twice): the last word wins.
    let mut once: Vec<&RuleOutcome> = Vec::with_capacity(rules.len());
    for r in rules {
        match once.iter_mut().find(|o| o.rule_id == r.rule_id) {
            Some(seen) => *seen = r,
            None => once.push(r),
        }
    }
    let now = now_ms();
    for chunk in once.chunks(INSERT_ROWS) {
        let mut params: Vec<Arg> = Vec::with_capacity(chunk.len() * 5 + 2);
        for r in chunk {
            params.extend([
                Arg::from(r.rule_id.as_str()),
                Arg::from(r.rule_name.as_str()),
                Arg::from(r.outcome.as_str()),
                Arg::from(r.detail.as_deref()),
                Arg::from(r.run_at),
            ]);
        }
        let rows = value_rows("($E, ?, ?, ?, ?, ?, $T, $T)", chunk.len())
            .replace("$E", &format!("${}", params.len() + 1))
            .replace("$T", &format!("${}", params.len() + 2));
        params.extend([Arg::from(event_id), Arg::from(now)]);
        let sql = format!(
            "INSERT INTO event_rules (event_id, rule_id, rule_name, outcome, detail, run_at, created_at, updated_at) \
             VALUES {rows} ON CONFLICT (event_id, rule_id) DO UPDATE SET rule_name = excluded.rule_name, \
             outcome = excluded.outcome, detail = excluded.detail, \
             run_at = COALESCE(excluded.run_at, event_rules.run_at), updated_at = excluded.updated_at \
             WHERE NOT (event_rules.outcome = 'matched' AND excluded.outcome = 'scheduled')"
        );
        exec_rows(c, &sql, &params, chunk.len()).await?;
    }
    Ok(())
}

/// Records recipients that could not be reached, in one statement per 200.
pub(crate) async fn record_unresolved(c: &mut dyn Conn, event_id: &str, notes: &[Unresolved]) -> Result<()> {
    let now = now_ms();
    for chunk in notes.chunks(INSERT_ROWS) {
        let mut params: Vec<Arg> = Vec::with_capacity(chunk.len() * 7 + 2);
        for u in chunk {
            params.extend([
                Arg::from(okno_domain::ids::new_id()),
                Arg::from(u.rule_id.as_str()),
                Arg::from(u.recipient.as_str()),
                Arg::from(u.reason.as_str()),
                Arg::from(u.code.as_deref()),
                Arg::from(u.value.as_deref()),
                Arg::from(u.contact_id.as_deref()),
            ]);
        }
        let rows = value_rows("(?, ?, ?, ?, ?, ?, ?, $E, $T)", chunk.len())
            .replace("$E", &format!("${}", params.len() + 1))
            .replace("$T", &format!("${}", params.len() + 2));
        params.extend([Arg::from(event_id), Arg::from(now)]);
        let sql = format!(
            "INSERT INTO event_unresolved (id, rule_id, recipient, reason, code, value, contact_id, event_id, created_at) \
             VALUES {rows}"
        );
        exec_rows(c, &sql, &params, chunk.len()).await?;
    }
    Ok(())
}

/// Records people no message could be made for (a person already recorded for the event
/// keeps their first record).
async fn record_not_made(c: &mut dyn Conn, event_id: &str, failed: &[NotMade]) -> Result<()> {
    let now = now_ms();
    for chunk in failed.chunks(INSERT_ROWS) {
        let mut params: Vec<Arg> = Vec::with_capacity(chunk.len() * 5 + 2);
        for f in chunk {
            params.extend([
                Arg::from(okno_domain::ids::new_id()),
                Arg::from(f.rule_id.as_str()),
                Arg::from(f.contact_id.as_str()),
                Arg::from(f.error.as_str()),
                Arg::from(f.code.as_str()),
            ]);
        }
        let rows = value_rows("(?, ?, ?, ?, ?, $E, $T)", chunk.len())
            .replace("$E", &format!("${}", params.len() + 1))
            .replace("$T", &format!("${}", params.len() + 2));
        params.extend([Arg::from(event_id), Arg::from(now)]);
        let sql = format!(
            "INSERT INTO event_deliveries (id, rule_id, contact_id, error, code, event_id, created_at) VALUES {rows} \
             ON CONFLICT (event_id, contact_id) DO NOTHING"
        );
        exec_rows(c, &sql, &params, chunk.len()).await?;
    }
    Ok(())
}

/// Writes what processing came to (see [`Processed`]), inside the caller's transaction.
async fn write_processed(c: &mut dyn Conn, event_id: &str, done: Processed) -> Result<Vec<NotifyOutcome>> {
    let Processed { notifications, rules, mut unresolved, not_made, surveys, connector_actions } = done;
    // A person no message could be made for counts as told: no other rule of the event
    // writes to them.
    record_not_made(c, event_id, &not_made).await?;
    let out = notify_many(c, notifications).await?;
    for start in surveys {
        // A survey deleted since the event was read starts nothing.
        let Some(survey) = load_survey_in(c, &start.survey_id).await?.filter(|s| s.active) else { continue };
        let label = format!("survey:{}", survey.id);
        for started in start_runs(c, &survey, start.runs).await? {
            if let StartOutcome::Unreachable { contact_id, reason, .. } = started {
                unresolved.push(Unresolved {
                    rule_id: label.clone(),
                    recipient: format!("contact {contact_id}"),
                    reason,
                    code: Some("unreachable".into()),
                    value: None,
                    contact_id: Some(contact_id),
                });
            }
        }
    }
    record_unresolved(c, event_id, &unresolved).await?;
    record_rule_outcomes(c, event_id, &rules).await?;
    for r in rules.iter().filter(|r| r.outcome == "scheduled") {
        if let Some(at) = r.run_at {
            insert_job(c, JobKind::NotifyRule, &format!("{event_id}:{}", r.rule_id), None, at).await?;
        }
    }
    for a in connector_actions {
        let what = format!("{event_id}:{}:{}", a.rule_id, a.index);
        let queue = format!("connector:{}", a.connector_id);
        insert_job(c, JobKind::ConnectorAction, &what, Some(&queue), now_ms()).await?;
    }
    Ok(out)
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

/// An event of a list, its figures still zero (see [`count_page`]).
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
        matched_rules: 0,
        counts: EventCounts::default(),
    })
}

/// Fills in the figures of a page of events: three grouped reads over the rows of these
/// events alone (through the indexes on `event_id`).
async fn count_page(c: &mut dyn Conn, items: &mut [EventSummary]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<Arg> = items.iter().map(|e| Arg::from(e.id.as_str())).collect();
    let listed = (1..=ids.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
    let at: HashMap<String, usize> = items.iter().enumerate().map(|(n, e)| (e.id.clone(), n)).collect();
    let rows = c
        .rows_planned(
            &format!(
                "SELECT r.event_id, COUNT(*) AS n FROM event_rules r WHERE r.event_id IN ({listed}) \
                 AND r.outcome IN ('matched', 'scheduled') GROUP BY r.event_id"
            ),
            &ids,
        )
        .await?;
    for r in &rows {
        if let Some(&n) = at.get(&r.s("event_id")?) {
            items[n].matched_rules = r.i("n")?;
        }
    }
    let rows = c
        .rows_planned(
            &format!(
                "SELECT d.event_id, \
                 SUM(CASE WHEN m.status IN ('sent', 'delivered', 'read') THEN 1 ELSE 0 END) AS sent, \
                 SUM(CASE WHEN m.status = 'queued' THEN 1 ELSE 0 END) AS queued, \
                 SUM(CASE WHEN m.id IS NULL OR m.status = 'failed' THEN 1 ELSE 0 END) AS failed \
                 FROM event_deliveries d LEFT JOIN messages m ON m.id = d.message_id \
                 WHERE d.event_id IN ({listed}) GROUP BY d.event_id"
            ),
            &ids,
        )
        .await?;
    for r in &rows {
        if let Some(&n) = at.get(&r.s("event_id")?) {
            let counts = &mut items[n].counts;
            (counts.sent, counts.queued, counts.failed) = (r.i("sent")?, r.i("queued")?, r.i("failed")?);
        }
    }
    let rows = c
        .rows_planned(
            &format!(
                "SELECT u.event_id, COUNT(*) AS n FROM event_unresolved u WHERE u.event_id IN ({listed}) \
                 AND (u.code IS NULL OR u.code NOT IN {NOT_A_PERSON}) GROUP BY u.event_id"
            ),
            &ids,
        )
        .await?;
    for r in &rows {
        if let Some(&n) = at.get(&r.s("event_id")?) {
            items[n].counts.unresolved = r.i("n")?;
        }
    }
    Ok(())
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
            // The page first (through the indexes on `(type, id)`, `(status, id)` or the key), then
            // the figures of just its events: a filter that matches many events costs one page's
            // counts, not one per matching event.
            let mut sql = String::from(
                "SELECT e.id, e.type, e.key, e.data, e.status, e.send_at, e.created_at, e.processed_at \
                 FROM events e WHERE 1 = 1",
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
            count_page(c, &mut items).await?;
            let next = if more { items.last().map(|e| e.id.clone()) } else { None };
            Ok(Page { items, next })
        })
    }

    async fn complete_event(
        &self,
        event_id: &str,
        status: &str,
        done: Processed,
        seq: i64,
        owner: &str,
    ) -> Result<(Vec<NotifyOutcome>, bool)> {
        let (event_id, status, owner) = (event_id.to_owned(), status.to_owned(), owner.to_owned());
        on!(self.write, |c| {
            // The status is the first write: a second run of the same event (a retry after this
            // one committed, or another worker after a lost lease) waits here on PostgreSQL and
            // then finds it completed, so nothing below is written twice.
            let claimed = c
                .exec(
                    "UPDATE events SET status = $1, processed_at = $2 WHERE id = $3 \
                     AND status IN ('accepted', 'scheduled')",
                    args![&status, now_ms(), &event_id],
                )
                .await?;
            let out = if claimed > 0 { write_processed(c, &event_id, done).await? } else { Vec::new() };
            Ok((out, end_job(c, seq, &owner).await?))
        })
    }

    async fn complete_rule(
        &self,
        event_id: &str,
        done: Processed,
        seq: i64,
        owner: &str,
    ) -> Result<(Vec<NotifyOutcome>, bool)> {
        let (event_id, owner) = (event_id.to_owned(), owner.to_owned());
        on!(self.write, |c| {
            // The rule's outcome row is the first write (it locks the row): a rule that ran
            // already is `matched`, and a second run of it waits here on PostgreSQL, then finds it so.
            let mut ran = false;
            for r in &done.rules {
                let open = c
                    .exec(
                        "UPDATE event_rules SET updated_at = $3 WHERE event_id = $1 AND rule_id = $2 \
                         AND outcome <> 'matched'",
                        args![&event_id, &r.rule_id, now_ms()],
                    )
                    .await?;
                if open == 0 {
                    let matched = c
                        .row(
                            "SELECT 1 AS one FROM event_rules WHERE event_id = $1 AND rule_id = $2 \
                             AND outcome = 'matched'",
                            args![&event_id, &r.rule_id],
                        )
                        .await?;
                    ran |= matched.is_some();
                }
            }
            let out = if ran { Vec::new() } else { write_processed(c, &event_id, done).await? };
            Ok((out, end_job(c, seq, &owner).await?))
        })
    }

    async fn accept_event(&self, new: NewEvent) -> Result<(EventRecord, bool)> {
        on!(self.write, |c| {
            let id = new_id();
            let now = now_ms();
            let status = if new.send_at.is_some_and(|t| t > now) { "scheduled" } else { "accepted" };
            let n = c
                .exec(
                    "INSERT INTO events (id, type, key, data, status, send_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (key) DO NOTHING",
                    args![&id, &new.event_type, &new.key, to_json(&new.data), status, new.send_at, now],
                )
                .await?;
            if n == 0 {
                let row = c.one("SELECT id FROM events WHERE key = $1", args![&new.key]).await?;
                return Ok((load_event(c, &row.s("id")?).await?, true));
            }
            insert_job(c, JobKind::ProcessEvent, &id, None, new.send_at.unwrap_or(now).max(now)).await?;
            // A new event has no deliveries yet: it is built here rather than read back.
            let record = EventRecord {
                id,
                event_type: new.event_type,
                key: new.key,
                data: new.data,
                status: status.to_string(),
                send_at: new.send_at,
                created_at: now,
                processed_at: None,
                deliveries: Vec::new(),
                unresolved: Vec::new(),
                rules: Vec::new(),
            };
            Ok((record, false))
        })
    }

    async fn get_event(&self, id: &str) -> Result<EventRecord> {
        let id = id.to_owned();
        on!(self.read, |c| load_event(c, &id).await)
    }

    async fn get_event_row(&self, id: &str) -> Result<EventRecord> {
        let id = id.to_owned();
        on!(self.read, |c| {
            let row = c
                .row(&format!("SELECT {EVENT_COLS} FROM events WHERE id = $1"), args![&id])
                .await?
                .ok_or_else(|| Error::not_found("event", &id))?;
            event_from(&row, Vec::new(), Vec::new(), Vec::new())
        })
    }

    async fn finish_event(&self, id: &str, status: &str) -> Result<()> {
        let (id, status) = (id.to_owned(), status.to_owned());
        on!(self.write, |c| {
            c.exec("UPDATE events SET status = $1, processed_at = $2 WHERE id = $3", args![&status, now_ms(), &id])
                .await?;
            Ok(())
        })
    }

    async fn answers(&self, event_type: &str, from: Millis, to: Millis) -> Result<Vec<AnswerRow>> {
        let event_type = event_type.to_owned();
        on!(self.read, |c| {
            c.rows(
                "SELECT a.event_id, e.data, a.contact_id, a.value, a.created_at FROM answers a JOIN events e ON e.id = a.event_id \
                 WHERE e.type = $1 AND a.created_at >= $2 AND a.created_at < $3 ORDER BY a.created_at",
                args![&event_type, from, to],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(AnswerRow {
                    event_id: r.s("event_id")?,
                    event_data: r.js("data")?,
                    contact_id: r.s("contact_id")?,
                    value: r.s("value")?,
                    created_at: r.i("created_at")?,
                })
            })
            .collect()
        })
    }
}

const EVENT_COLS: &str = "id, type, key, data, status, send_at, created_at, processed_at";

fn event_from(
    row: &Row,
    deliveries: Vec<EventDelivery>,
    unresolved: Vec<Unresolved>,
    rules: Vec<RuleOutcome>,
) -> Result<EventRecord> {
    Ok(EventRecord {
        id: row.s("id")?,
        event_type: row.s("type")?,
        key: row.s("key")?,
        data: row.js("data")?,
        status: row.s("status")?,
        send_at: row.oi("send_at")?,
        created_at: row.i("created_at")?,
        processed_at: row.oi("processed_at")?,
        deliveries,
        unresolved,
        rules,
    })
}

async fn load_event(c: &mut dyn Conn, id: &str) -> Result<EventRecord> {
    let row = c
        .row(&format!("SELECT {EVENT_COLS} FROM events WHERE id = $1"), args![id])
        .await?
        .ok_or_else(|| Error::not_found("event", id))?;
    let deliveries = c
        .rows(
            "SELECT d.rule_id, d.contact_id, d.channel_id, d.message_id, d.error, d.code, d.tried, m.status AS message_status, \
             m.error AS message_error, m.conversation_id \
             FROM event_deliveries d LEFT JOIN messages m ON m.id = d.message_id WHERE d.event_id = $1 ORDER BY d.created_at, d.id",
            args![id],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(EventDelivery {
                rule_id: r.s("rule_id")?,
                contact_id: r.s("contact_id")?,
                channel_id: r.os("channel_id")?,
                message_id: r.os("message_id")?,
                status: r.os("message_status")?.unwrap_or_else(|| "failed".into()),
                error: r.os("message_error")?.or(r.os("error")?),
                conversation_id: r.os("conversation_id")?,
                code: r.os("code")?,
                tried: serde_json::from_value(r.js("tried")?).unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let unresolved = c
        .rows(
            "SELECT rule_id, recipient, reason, code, value, contact_id FROM event_unresolved WHERE event_id = $1 \
             ORDER BY created_at, id",
            args![id],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Unresolved {
                rule_id: r.s("rule_id")?,
                recipient: r.s("recipient")?,
                reason: r.s("reason")?,
                code: r.os("code")?,
                value: r.os("value")?,
                contact_id: r.os("contact_id")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let rules = crate::events::load_rule_outcomes(c, id).await?;
    event_from(&row, deliveries, unresolved, rules)
}
