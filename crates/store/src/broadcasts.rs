//! Broadcasts: one message to many people. The audience is written out once as one row per
//! person (`broadcast_recipients`); a `broadcast` job then feeds the rows into the outbox a
//! slice at a time, at the broadcast's pace, each person's row moving from `pending` to
//! `queued` in the same transaction that writes their message and its send job. So a process
//! killed at any moment leaves every person either untouched (fed again later) or with exactly
//! one message (sent by the outbox), never both, never neither.
//!
//! Broadcast sends go to the outbox's bulk lane: workers take live work (a customer's
//! conversation, a notification) first, so a long broadcast never makes a conversation wait.

use std::collections::HashMap;

use async_trait::async_trait;
use okno_domain::channel::SubscriptionChange;
use okno_domain::ids::{new_id, ChannelId, ContactId};
use okno_domain::model::{Contact, Keyboard, Page};
use okno_domain::routing::next_identity;
use okno_domain::time::{now_ms, Millis};
use okno_domain::{Error, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::contacts::load_contacts;
use crate::conversations::current_conversation;
use crate::db::{args, Conn, Row};
use crate::outbox::{insert_job, insert_outbound_in};
use crate::sql::{on, SqlStore};
use crate::statements::to_json;
use crate::{JobKind, OutboundRequest, PageRequest, Recipient, LANE_BULK};

/// A broadcast to create.
#[derive(Debug, Clone)]
pub struct NewBroadcast {
    pub name: String,
    /// The audience, the text (a template), buttons, attachments and pace, as checked by the
    /// engine.
    pub spec: Value,
    /// Start at this time instead of now.
    pub send_at: Option<Millis>,
    pub created_by: Option<String>,
}

/// Where a broadcast stands, person by person.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BroadcastCounts {
    /// People in the audience (known once the broadcast has started).
    pub total: i64,
    /// Messages the platform accepted.
    pub sent: i64,
    /// Messages that could not be delivered, and people no channel reaches.
    pub failed: i64,
    /// People not yet sent to.
    pub pending: i64,
    /// People left out because they opted out of broadcasts.
    pub skipped: i64,
    /// People left out because the broadcast was cancelled.
    pub cancelled: i64,
}

/// A broadcast and its progress.
#[derive(Debug, Clone, Serialize)]
pub struct Broadcast {
    pub id: String,
    pub name: String,
    /// `scheduled`, `running`, `paused`, `done` or `cancelled`.
    pub status: String,
    #[serde(flatten)]
    pub counts: BroadcastCounts,
    pub spec: Value,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub send_at: Option<Millis>,
    pub created_by: Option<String>,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub created_at: Millis,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub started_at: Option<Millis>,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub finished_at: Option<Millis>,
    /// The audience has been written out (the total is final).
    #[serde(skip)]
    pub expanded: bool,
}

/// What to do with one pending person.
#[derive(Debug, Clone)]
pub enum BroadcastItem {
    /// Send them this (rendered for them).
    /// `options`: sending options (the platform template the message goes out as where it must).
    Send { contact_id: ContactId, text: String, buttons: Keyboard, attachment_ids: Vec<String>, options: Value },
    /// They cannot get it (e.g. their text did not render).
    Fail { contact_id: ContactId, reason: String },
}

/// A person still to be sent to; `contact` is `None` when the contact no longer exists.
#[derive(Debug, Clone)]
pub struct Pending {
    pub contact_id: ContactId,
    pub contact: Option<Contact>,
}

/// One person's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BroadcastRecipient {
    pub contact_id: String,
    pub name: Option<String>,
    /// `pending`, `sent`, `failed`, `skipped` or `cancelled` (`queued`: handed to the outbox).
    pub status: String,
    pub channel_id: Option<String>,
    pub message_id: Option<String>,
    pub reason: Option<String>,
    /// Their answer to the broadcast's buttons (or a reply to it).
    pub answer: Option<String>,
}

/// A broadcast's outcome: counts, failures by reason, answers by value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BroadcastReport {
    pub id: String,
    pub status: String,
    #[serde(flatten)]
    pub counts: BroadcastCounts,
    /// `[reason, people]`, most frequent first.
    pub failed_by_reason: Vec<(String, i64)>,
    /// `[answer, people]`, most frequent first.
    pub answers: Vec<(String, i64)>,
    /// People who opted out by this broadcast's "unsubscribe" button.
    pub unsubscribed: i64,
}

/// A change of a broadcast's course.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastAction {
    Pause,
    Resume,
    Cancel,
}

/// Broadcasts' storage.
#[async_trait]
pub trait BroadcastStore: Send + Sync + 'static {
    /// Stores a broadcast and queues its first slice (at `send_at`, or now).
    async fn create_broadcast(&self, new: NewBroadcast) -> Result<Broadcast>;
    async fn get_broadcast(&self, id: &str) -> Result<Broadcast>;
    /// The broadcast without its counts (cheap: read on every slice).
    async fn broadcast_plan(&self, id: &str) -> Result<Broadcast>;
    /// The newest first.
    async fn list_broadcasts(&self, page: PageRequest) -> Result<Page<Broadcast>>;
    /// Pauses, resumes or cancels; a change that does not apply to the current status is a
    /// conflict.
    async fn control_broadcast(&self, id: &str, action: BroadcastAction) -> Result<Broadcast>;
    /// Writes the audience out (idempotent: a person already written is kept as they are) and
    /// starts the broadcast; returns the total.
    async fn expand_broadcast(&self, id: &str, contact_ids: Vec<ContactId>) -> Result<i64>;
    /// The next people still to be sent to, in audience order.
    async fn pending_recipients(&self, id: &str, limit: u32) -> Result<Vec<Pending>>;
    /// Queues messages for pending people (each at most once) in one transaction; nothing
    /// when the broadcast is no longer running. Returns how many were queued.
    async fn queue_broadcast(&self, id: &str, items: Vec<BroadcastItem>) -> Result<usize>;
    /// Broadcast sends waiting in the outbox, over all broadcasts.
    async fn bulk_backlog(&self) -> Result<i64>;
    /// Marks a running broadcast done when nobody is pending and no message of it is still
    /// queued; returns whether it is done.
    async fn finish_broadcast(&self, id: &str) -> Result<bool>;
    /// People and their results; `status` filters (`pending`, `sent`, `failed`…).
    async fn broadcast_recipients(
        &self,
        id: &str,
        status: Option<String>,
        page: PageRequest,
    ) -> Result<Page<BroadcastRecipient>>;
    async fn broadcast_report(&self, id: &str) -> Result<BroadcastReport>;
    /// Broadcasts whose queued sends must not go out now: paused ones, and ones cancelled in
    /// the last day (id, status).
    async fn held_broadcasts(&self) -> Result<Vec<(String, String)>>;
}

const COLS: &str = "id, name, spec, status, send_at, expanded, total, created_by, created_at, started_at, finished_at";

fn broadcast_from(row: &Row, counts: BroadcastCounts) -> Result<Broadcast> {
    Ok(Broadcast {
        id: row.s("id")?,
        name: row.s("name")?,
        status: row.s("status")?,
        counts,
        spec: row.js("spec")?,
        send_at: row.oi("send_at")?,
        created_by: row.os("created_by")?,
        created_at: row.i("created_at")?,
        started_at: row.oi("started_at")?,
        finished_at: row.oi("finished_at")?,
        expanded: row.flag("expanded")?,
    })
}

/// A person's status as the API shows it: their row's state, and for a queued person their
/// message's.
fn status_of(state: &str, message_status: Option<&str>) -> &'static str {
    match (state, message_status) {
        ("pending", _) => "pending",
        ("queued", Some("queued")) | ("queued", None) => "pending",
        ("queued", Some("failed")) => "failed",
        ("queued", Some(_)) => "sent",
        ("skipped", _) => "skipped",
        ("cancelled", _) => "cancelled",
        _ => "failed",
    }
}

async fn counts(c: &mut dyn Conn, id: &str, total: i64) -> Result<BroadcastCounts> {
    let rows = c
        .rows(
            "SELECT r.state, m.status, COUNT(*) AS n FROM broadcast_recipients r \
             LEFT JOIN messages m ON m.id = r.message_id WHERE r.broadcast_id = $1 GROUP BY r.state, m.status",
            args![id],
        )
        .await?;
    let mut out = BroadcastCounts { total, ..Default::default() };
    for r in rows {
        let n = r.i("n")?;
        match status_of(&r.s("state")?, r.os("status")?.as_deref()) {
            "pending" => out.pending += n,
            "sent" => out.sent += n,
            "skipped" => out.skipped += n,
            "cancelled" => out.cancelled += n,
            _ => out.failed += n,
        }
    }
    Ok(out)
}

async fn load(c: &mut dyn Conn, id: &str) -> Result<Broadcast> {
    let row = c
        .row(&format!("SELECT {COLS} FROM broadcasts WHERE id = $1"), args![id])
        .await?
        .ok_or_else(|| Error::not_found("broadcast", id))?;
    let total = row.i("total")?;
    let counts = counts(c, id, total).await?;
    broadcast_from(&row, counts)
}

/// The queue key of a broadcast's slices: one slice at a time.
fn feed_key(id: &str) -> String {
    format!("broadcast:{id}")
}

/// Queues the broadcast's next slice unless one is already waiting (a slice running now may be
/// ending because it saw the broadcast paused: a new one is queued behind it, on the same key).
async fn queue_feed(c: &mut dyn Conn, id: &str, at: Millis) -> Result<()> {
    let waiting = c
        .row("SELECT seq FROM jobs WHERE kind = 'broadcast' AND ref_id = $1 AND lease_owner IS NULL", args![id])
        .await?;
    if waiting.is_none() {
        insert_job(c, JobKind::Broadcast, id, Some(&feed_key(id)), at).await?;
    }
    Ok(())
}

/// Cancels what has not gone out: pending people, and queued messages no worker has taken.
async fn cancel_rest(c: &mut dyn Conn, id: &str) -> Result<()> {
    let now = now_ms();
    c.exec(
        "UPDATE broadcast_recipients SET state = 'cancelled', updated_at = $1 WHERE broadcast_id = $2 AND state = 'pending'",
        args![now, id],
    )
    .await?;
    let queued = c
        .rows(
            "SELECT r.contact_id, r.message_id FROM broadcast_recipients r JOIN messages m ON m.id = r.message_id \
             WHERE r.broadcast_id = $1 AND r.state = 'queued' AND m.status = 'queued'",
            args![id],
        )
        .await?;
    for r in queued {
        let message_id = r.s("message_id")?;
        let taken = c
            .exec(
                "DELETE FROM jobs WHERE kind = 'send' AND ref_id = $1 AND (lease_owner IS NULL OR lease_until < $2)",
                args![&message_id, now],
            )
            .await?;
        if taken == 0 {
            continue; // a worker is sending it right now
        }
        c.exec(
            "UPDATE messages SET status = 'failed', error = 'the broadcast was cancelled', updated_at = $1 WHERE id = $2",
            args![now, &message_id],
        )
        .await?;
        c.exec(
            "UPDATE broadcast_recipients SET state = 'cancelled', updated_at = $1 WHERE broadcast_id = $2 AND contact_id = $3",
            args![now, id, r.s("contact_id")?],
        )
        .await?;
    }
    Ok(())
}

/// When a paused broadcast's queued sends are due: never, until it is resumed.
const PAUSED_UNTIL: Millis = i64::MAX / 2;

/// Moves the due time of the broadcast's queued sends no worker holds.
async fn hold_sends(c: &mut dyn Conn, id: &str, until: Millis) -> Result<()> {
    c.exec(
        "UPDATE jobs SET run_at = $1 WHERE kind = 'send' AND lease_owner IS NULL AND ref_id IN \
         (SELECT message_id FROM broadcast_recipients WHERE broadcast_id = $2 AND state = 'queued')",
        args![until, id],
    )
    .await?;
    Ok(())
}

/// Rows of the multi-row insert of the audience.
const EXPAND_ROWS: usize = 200;

#[async_trait]
impl BroadcastStore for SqlStore {
    async fn create_broadcast(&self, new: NewBroadcast) -> Result<Broadcast> {
        on!(self.write, |c| {
            let id = new_id();
            let now = now_ms();
            let status = if new.send_at.is_some_and(|at| at > now) { "scheduled" } else { "running" };
            c.exec(
                "INSERT INTO broadcasts (id, name, spec, status, send_at, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                args![&id, &new.name, to_json(&new.spec), status, new.send_at, &new.created_by, now],
            )
            .await?;
            insert_job(c, JobKind::Broadcast, &id, Some(&feed_key(&id)), new.send_at.unwrap_or(now).max(now)).await?;
            load(c, &id).await
        })
    }

    async fn get_broadcast(&self, id: &str) -> Result<Broadcast> {
        let id = id.to_owned();
        on!(self.read, |c| load(c, &id).await)
    }

    async fn broadcast_plan(&self, id: &str) -> Result<Broadcast> {
        let id = id.to_owned();
        on!(self.read, |c| {
            let row = c
                .row(&format!("SELECT {COLS} FROM broadcasts WHERE id = $1"), args![&id])
                .await?
                .ok_or_else(|| Error::not_found("broadcast", &id))?;
            let total = row.i("total")?;
            broadcast_from(&row, BroadcastCounts { total, ..Default::default() })
        })
    }

    async fn list_broadcasts(&self, page: PageRequest) -> Result<Page<Broadcast>> {
        on!(self.read, |c| {
            let rows = match &page.cursor {
                Some(cursor) => {
                    c.rows(
                        &format!("SELECT {COLS} FROM broadcasts WHERE id < $1 ORDER BY id DESC LIMIT $2"),
                        args![cursor, i64::from(page.limit) + 1],
                    )
                    .await?
                }
                None => {
                    c.rows(
                        &format!("SELECT {COLS} FROM broadcasts ORDER BY id DESC LIMIT $1"),
                        args![i64::from(page.limit) + 1],
                    )
                    .await?
                }
            };
            let more = rows.len() > page.limit as usize;
            let mut items = Vec::new();
            for row in rows.iter().take(page.limit as usize) {
                let id = row.s("id")?;
                let counts = counts(c, &id, row.i("total")?).await?;
                items.push(broadcast_from(row, counts)?);
            }
            let next = if more { items.last().map(|b| b.id.clone()) } else { None };
            Ok(Page { items, next })
        })
    }

    async fn control_broadcast(&self, id: &str, action: BroadcastAction) -> Result<Broadcast> {
        let id = id.to_owned();
        on!(self.write, |c| {
            let b = load(c, &id).await?;
            let now = now_ms();
            let refuse = |what: &str| {
                Err(Error::conflict("broadcast_state", format!("a {} broadcast cannot be {what}", b.status)))
            };
            // Each change is conditional on the status it starts from, so of two changes at once
            // (two operators, two processes) the second sees the first.
            match action {
                BroadcastAction::Pause => {
                    let n = c
                        .exec(
                            "UPDATE broadcasts SET status = 'paused' WHERE id = $1 AND status IN ('scheduled', 'running')",
                            args![&id],
                        )
                        .await?;
                    if n == 0 {
                        return refuse("paused");
                    }
                    // Its messages waiting in the outbox wait until it is resumed.
                    hold_sends(c, &id, PAUSED_UNTIL).await?;
                }
                BroadcastAction::Resume => {
                    let (status, at) = match b.send_at {
                        Some(at) if at > now && b.started_at.is_none() => ("scheduled", at),
                        _ => ("running", now),
                    };
                    let n = c
                        .exec(
                            "UPDATE broadcasts SET status = $1 WHERE id = $2 AND status = 'paused'",
                            args![status, &id],
                        )
                        .await?;
                    if n == 0 {
                        return refuse("resumed");
                    }
                    hold_sends(c, &id, now).await?;
                    queue_feed(c, &id, at).await?;
                }
                BroadcastAction::Cancel => {
                    let n = c
                        .exec(
                            "UPDATE broadcasts SET status = 'cancelled', finished_at = $1 \
                             WHERE id = $2 AND status IN ('scheduled', 'running', 'paused')",
                            args![now, &id],
                        )
                        .await?;
                    if n == 0 {
                        return refuse("cancelled");
                    }
                    cancel_rest(c, &id).await?;
                }
            }
            load(c, &id).await
        })
    }

    async fn expand_broadcast(&self, id: &str, contact_ids: Vec<ContactId>) -> Result<i64> {
        let id = id.to_owned();
        // Written again after a crash: new people (the audience may have grown) come after the
        // ones already written, so positions stay unique.
        let first = {
            let id = id.clone();
            on!(self.read, |c| c
                .one("SELECT COALESCE(MAX(pos), -1) AS p FROM broadcast_recipients WHERE broadcast_id = $1", args![&id])
                .await?
                .i("p"))?
                + 1
        };
        // Slices of their own: a large audience does not hold the database in one transaction.
        for (n, chunk) in contact_ids.chunks(EXPAND_ROWS * 5).enumerate() {
            let (id, chunk) = (id.clone(), chunk.to_vec());
            let base = first + (n * EXPAND_ROWS * 5) as i64;
            on!(self.write, |c| {
                let now = now_ms();
                for (m, rows) in chunk.chunks(EXPAND_ROWS).enumerate() {
                    let mut sql = String::from(
                        "INSERT INTO broadcast_recipients (broadcast_id, contact_id, pos, state, updated_at) VALUES ",
                    );
                    let mut values: Vec<crate::db::Arg> = Vec::with_capacity(rows.len() * 3 + 2);
                    values.push(id.clone().into());
                    values.push(now.into());
                    for (k, contact) in rows.iter().enumerate() {
                        let at = values.len();
                        sql.push_str(&format!(
                            "{}($1, ${}, ${}, 'pending', $2)",
                            if k == 0 { "" } else { ", " },
                            at + 1,
                            at + 2
                        ));
                        values.push(contact.clone().into());
                        values.push((base + (m * EXPAND_ROWS + k) as i64).into());
                    }
                    sql.push_str(" ON CONFLICT DO NOTHING");
                    c.exec(&sql, &values).await?;
                }
                Ok(())
            })?;
        }
        on!(self.write, |c| {
            let total = c
                .one("SELECT COUNT(*) AS n FROM broadcast_recipients WHERE broadcast_id = $1", args![&id])
                .await?
                .i("n")?;
            let now = now_ms();
            c.exec(
                "UPDATE broadcasts SET expanded = 1, total = $1, started_at = COALESCE(started_at, $2), \
                 status = CASE WHEN status = 'scheduled' THEN 'running' ELSE status END WHERE id = $3",
                args![total, now, &id],
            )
            .await?;
            // Cancelled while the audience was being written: nobody new is sent to.
            let status = c.one("SELECT status FROM broadcasts WHERE id = $1", args![&id]).await?.s("status")?;
            if status == "cancelled" {
                cancel_rest(c, &id).await?;
            }
            Ok(total)
        })
    }

    async fn pending_recipients(&self, id: &str, limit: u32) -> Result<Vec<Pending>> {
        let id = id.to_owned();
        on!(self.read, |c| {
            let ids = c
                .rows(
                    "SELECT contact_id FROM broadcast_recipients WHERE broadcast_id = $1 AND state = 'pending' \
                     ORDER BY pos LIMIT $2",
                    args![&id, i64::from(limit)],
                )
                .await?
                .iter()
                .map(|r| r.id("contact_id"))
                .collect::<Result<Vec<ContactId>>>()?;
            let mut found: HashMap<ContactId, Contact> =
                load_contacts(c, &ids).await?.into_iter().map(|k| (k.id.clone(), k)).collect();
            Ok(ids.into_iter().map(|contact_id| Pending { contact: found.remove(&contact_id), contact_id }).collect())
        })
    }

    async fn queue_broadcast(&self, id: &str, items: Vec<BroadcastItem>) -> Result<usize> {
        let id = id.to_owned();
        // PostgreSQL: the row stays locked to the end, so a pause or cancel committed meanwhile
        // waits for this slice and then sees (and holds or cancels) its messages.
        let lock = if <Self as crate::Store>::backend(self) == crate::Backend::Postgres { " FOR UPDATE" } else { "" };
        on!(self.write, |c| {
            let status = c
                .row(&format!("SELECT status FROM broadcasts WHERE id = $1{lock}"), args![&id])
                .await?
                .ok_or_else(|| Error::not_found("broadcast", &id))?
                .s("status")?;
            if status != "running" {
                return Ok(0);
            }
            let now = now_ms();
            let ids: Vec<ContactId> = items
                .iter()
                .map(|i| match i {
                    BroadcastItem::Send { contact_id, .. } | BroadcastItem::Fail { contact_id, .. } => {
                        contact_id.clone()
                    }
                })
                .collect();
            // Read again inside the transaction: a person may have opted out or blocked the bot
            // since the slice was rendered.
            let mut contacts: HashMap<ContactId, Contact> =
                load_contacts(c, &ids).await?.into_iter().map(|k| (k.id.clone(), k)).collect();
            let mut queued = 0;
            for item in items {
                let (contact_id, text, buttons, attachment_ids, options) = match item {
                    BroadcastItem::Fail { contact_id, reason } => {
                        c.exec(
                            "UPDATE broadcast_recipients SET state = 'failed', reason = $1, updated_at = $2 \
                             WHERE broadcast_id = $3 AND contact_id = $4 AND state = 'pending'",
                            args![&reason, now, &id, &contact_id],
                        )
                        .await?;
                        continue;
                    }
                    BroadcastItem::Send { contact_id, text, buttons, attachment_ids, options } => {
                        (contact_id, text, buttons, attachment_ids, options)
                    }
                };
                let Some(contact) = contacts.remove(&contact_id) else {
                    c.exec(
                        "UPDATE broadcast_recipients SET state = 'failed', reason = 'the contact no longer exists', \
                         updated_at = $1 WHERE broadcast_id = $2 AND contact_id = $3 AND state = 'pending'",
                        args![now, &id, &contact_id],
                    )
                    .await?;
                    continue;
                };
                let open: Vec<_> = contact.identities.iter().filter(|i| !i.opted_out).cloned().collect();
                let Some(identity) = next_identity(contact.preferred_channel_id.as_ref(), &open, &[]) else {
                    let (state, reason) = match () {
                        _ if contact.identities.is_empty() => ("failed", "no identity on any channel"),
                        _ if open.is_empty() => ("skipped", "opted out of broadcasts"),
                        _ => ("failed", "blocked on every channel"),
                    };
                    c.exec(
                        "UPDATE broadcast_recipients SET state = $1, reason = $2, updated_at = $3 \
                         WHERE broadcast_id = $4 AND contact_id = $5 AND state = 'pending'",
                        args![state, reason, now, &id, &contact_id],
                    )
                    .await?;
                    continue;
                };
                let channel_id = identity.channel_id.clone();
                // The row moves first: a person already queued (another slice got there) is left.
                let claimed = c
                    .exec(
                        "UPDATE broadcast_recipients SET state = 'queued', channel_id = $1, tried = $2, updated_at = $3 \
                         WHERE broadcast_id = $4 AND contact_id = $5 AND state = 'pending'",
                        args![&channel_id, to_json(&vec![&channel_id]), now, &id, &contact_id],
                    )
                    .await?;
                if claimed == 0 {
                    continue;
                }
                let (conversation_id, _, _) = current_conversation(c, &contact_id, false).await?;
                let req = OutboundRequest {
                    to: Recipient::Contact(contact_id.clone()),
                    channel_id: Some(channel_id.clone()),
                    text: Some(text),
                    buttons,
                    attachment_ids,
                    idempotency_key: None,
                    author: Some(format!("broadcast:{id}")),
                    reply_to: None,
                    options,
                };
                let message =
                    insert_outbound_in(c, &req, &contact_id, &conversation_id, &channel_id, LANE_BULK).await?;
                c.exec(
                    "UPDATE broadcast_recipients SET message_id = $1 WHERE broadcast_id = $2 AND contact_id = $3",
                    args![&message.id, &id, &contact_id],
                )
                .await?;
                queued += 1;
            }
            Ok(queued)
        })
    }

    async fn bulk_backlog(&self) -> Result<i64> {
        // Only what is due: sends waiting out a retry (a channel that is down) or a pause do not
        // hold up other broadcasts.
        on!(self.read, |c| c
            .one("SELECT COUNT(*) AS n FROM jobs WHERE lane = $1 AND run_at <= $2", args![LANE_BULK, now_ms()])
            .await
            .and_then(|r| r.i("n")))
    }

    async fn finish_broadcast(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        on!(self.write, |c| {
            // Someone still pending, or a send of it still in the outbox (through the jobs: the
            // outbox is small, the audience may be large).
            let pending = c
                .row(
                    "SELECT 1 AS one FROM broadcast_recipients WHERE broadcast_id = $1 AND state = 'pending' LIMIT 1",
                    args![&id],
                )
                .await?;
            let sending = c
                .row(
                    "SELECT 1 AS one FROM jobs j JOIN broadcast_recipients r ON r.message_id = j.ref_id \
                     WHERE j.kind = 'send' AND r.broadcast_id = $1 LIMIT 1",
                    args![&id],
                )
                .await?;
            if pending.is_some() || sending.is_some() {
                return Ok(false);
            }
            c.exec(
                "UPDATE broadcasts SET status = 'done', finished_at = $1 WHERE id = $2 AND status = 'running'",
                args![now_ms(), &id],
            )
            .await?;
            Ok(true)
        })
    }

    async fn broadcast_recipients(
        &self,
        id: &str,
        status: Option<String>,
        page: PageRequest,
    ) -> Result<Page<BroadcastRecipient>> {
        let id = id.to_owned();
        on!(self.read, |c| {
            load(c, &id).await?;
            let after: i64 = page.cursor.as_deref().and_then(|p| p.parse().ok()).unwrap_or(-1);
            // The same mapping as `status_of`, in SQL, so a page is one query.
            let only = match status.as_deref() {
                None => "",
                Some("pending") => {
                    " AND (r.state = 'pending' OR (r.state = 'queued' AND (m.status IS NULL OR m.status = 'queued')))"
                }
                Some("sent") => {
                    " AND r.state = 'queued' AND m.status IS NOT NULL AND m.status NOT IN ('queued', 'failed')"
                }
                Some("failed") => " AND (r.state = 'failed' OR (r.state = 'queued' AND m.status = 'failed'))",
                Some("skipped") => " AND r.state = 'skipped'",
                Some("cancelled") => " AND r.state = 'cancelled'",
                Some(other) => {
                    return Err(Error::invalid(
                        "invalid_status",
                        format!("unknown status `{other}`: use pending, sent, failed, skipped or cancelled"),
                    ))
                }
            };
            let rows = c
                .rows(
                    &format!(
                        "SELECT r.contact_id, r.pos, r.state, r.channel_id, r.message_id, r.reason, r.answer, \
                         k.name, m.status, m.error FROM broadcast_recipients r \
                         LEFT JOIN contacts k ON k.id = r.contact_id LEFT JOIN messages m ON m.id = r.message_id \
                         WHERE r.broadcast_id = $1 AND r.pos > $2{only} ORDER BY r.pos LIMIT $3"
                    ),
                    args![&id, after, i64::from(page.limit) + 1],
                )
                .await?;
            let more = rows.len() > page.limit as usize;
            let mut items = Vec::with_capacity(rows.len());
            let mut last = None;
            for r in rows.iter().take(page.limit as usize) {
                last = Some(r.i("pos")?);
                items.push(BroadcastRecipient {
                    contact_id: r.s("contact_id")?,
                    name: r.os("name")?,
                    status: status_of(&r.s("state")?, r.os("status")?.as_deref()).to_string(),
                    channel_id: r.os("channel_id")?,
                    message_id: r.os("message_id")?,
                    reason: r.os("error")?.or(r.os("reason")?),
                    answer: r.os("answer")?,
                });
            }
            let next = if more { last.map(|p| p.to_string()) } else { None };
            Ok(Page { items, next })
        })
    }

    async fn held_broadcasts(&self) -> Result<Vec<(String, String)>> {
        on!(self.read, |c| {
            c.rows(
                "SELECT id, status FROM broadcasts WHERE status = 'paused' \
                 OR (status = 'cancelled' AND finished_at > $1)",
                args![now_ms() - 86_400_000],
            )
            .await?
            .iter()
            .map(|r| Ok((r.s("id")?, r.s("status")?)))
            .collect()
        })
    }

    async fn broadcast_report(&self, id: &str) -> Result<BroadcastReport> {
        let id = id.to_owned();
        on!(self.read, |c| {
            let b = load(c, &id).await?;
            let mut failed: HashMap<String, i64> = HashMap::new();
            let rows = c
                .rows(
                    "SELECT COALESCE(m.error, r.reason) AS reason, COUNT(*) AS n FROM broadcast_recipients r \
                     LEFT JOIN messages m ON m.id = r.message_id \
                     WHERE r.broadcast_id = $1 AND (r.state = 'failed' OR (r.state = 'queued' AND m.status = 'failed')) \
                     GROUP BY COALESCE(m.error, r.reason)",
                    args![&id],
                )
                .await?;
            for r in rows {
                *failed.entry(r.os("reason")?.unwrap_or_else(|| "unknown".into())).or_default() += r.i("n")?;
            }
            let answers = c
                .rows(
                    "SELECT answer, COUNT(*) AS n FROM broadcast_recipients WHERE broadcast_id = $1 \
                     AND answer IS NOT NULL GROUP BY answer",
                    args![&id],
                )
                .await?
                .iter()
                .map(|r| Ok((r.s("answer")?, r.i("n")?)))
                .collect::<Result<Vec<_>>>()?;
            let unsubscribed = answers.iter().filter(|(a, _)| a == UNSUBSCRIBE).map(|(_, n)| *n).sum();
            let mut answers: Vec<_> = answers.into_iter().filter(|(a, _)| a != UNSUBSCRIBE).collect();
            let mut failed_by_reason: Vec<_> = failed.into_iter().collect();
            for list in [&mut failed_by_reason, &mut answers] {
                list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            }
            Ok(BroadcastReport {
                id: b.id,
                status: b.status,
                counts: b.counts,
                failed_by_reason,
                answers,
                unsubscribed,
            })
        })
    }
}

/// The button data of a broadcast's "unsubscribe" button (and the answer it records).
pub use okno_domain::channel::UNSUBSCRIBE;

/// What an inbound message meant for broadcasts.
pub(crate) struct Reaction {
    /// It answered a broadcast: the broadcast and the answer.
    pub answer: Option<(String, String)>,
    /// It was dealt with here (an unsubscribe or a stop word): a bot does not also answer it.
    pub handled: bool,
}

/// Records an answer to a broadcast and applies the subscription change the engine read from
/// the message, inside the inbound message's transaction.
pub(crate) async fn on_inbound(
    c: &mut dyn Conn,
    message: &okno_domain::model::Message,
    sender: &crate::InboundSender,
    change: Option<&SubscriptionChange>,
) -> Result<Reaction> {
    let mut reaction = Reaction { answer: None, handled: false };
    if let Some(r) = &message.reply_to {
        let row = c.row("SELECT broadcast_id FROM broadcast_recipients WHERE message_id = $1", args![r]).await?;
        if let Some(row) = row {
            let value = match &message.button_data {
                Some(d) => d.strip_prefix("answer:").unwrap_or(d).to_string(),
                None => message.text.clone().unwrap_or_default(),
            };
            // A press records (or changes) the answer; a text reply only when there is none yet,
            // so «спасибо» after a press does not replace the press.
            let only_first = if message.button_data.is_some() { "" } else { " AND answer IS NULL" };
            c.exec(
                &format!(
                    "UPDATE broadcast_recipients SET answer = $1, answered_at = $2 WHERE message_id = $3{only_first}"
                ),
                args![&value, message.created_at, r],
            )
            .await?;
            reaction.answer = Some((row.s("broadcast_id")?, value));
        }
    }
    let Some(change) = change else { return Ok(reaction) };
    let subscribed = change.subscribed;
    reaction.handled = true;
    c.exec(
        "UPDATE identities SET opted_out = $1 WHERE channel_id = $2 AND user_id = $3",
        args![i64::from(!subscribed), &message.channel_id, &sender.user_id],
    )
    .await?;
    let req = OutboundRequest {
        to: Recipient::Conversation(message.conversation_id.clone()),
        channel_id: Some(message.channel_id.clone()),
        text: Some(change.answer.clone()),
        buttons: Vec::new(),
        attachment_ids: Vec::new(),
        idempotency_key: Some(format!("opt:{}", message.id)),
        author: Some("okno".into()),
        reply_to: None,
        options: json!({}),
    };
    crate::outbox::insert_outbound_in(
        c,
        &req,
        &message.contact_id,
        &message.conversation_id,
        &message.channel_id,
        crate::LANE_LIVE,
    )
    .await?;
    Ok(reaction)
}

/// After a broadcast message failed for good on one channel: the same message on the person's
/// next channel (not blocked, not opted out, not tried), if they have one.
pub(crate) async fn fall_back(c: &mut dyn Conn, failed: &okno_domain::model::Message) -> Result<()> {
    let row = c
        .row(
            "SELECT r.broadcast_id, r.contact_id, r.tried, b.status FROM broadcast_recipients r \
             JOIN broadcasts b ON b.id = r.broadcast_id WHERE r.message_id = $1",
            args![&failed.id],
        )
        .await?;
    let Some(row) = row else { return Ok(()) };
    let broadcast_id = row.s("broadcast_id")?;
    let now = now_ms();
    // Not sent on to the next channel once the broadcast is cancelled; while it is paused the
    // person waits as pending and is fed again when it is resumed.
    let hold = match row.s("status")?.as_str() {
        "cancelled" => Some("cancelled"),
        "paused" => Some("pending"),
        _ => None,
    };
    if let Some(state) = hold {
        c.exec(
            "UPDATE broadcast_recipients SET state = $1, message_id = NULL, updated_at = $2 WHERE message_id = $3",
            args![state, now, &failed.id],
        )
        .await?;
        return Ok(());
    }
    let mut tried: Vec<ChannelId> = serde_json::from_value(row.js("tried")?).unwrap_or_default();
    let Some(contact) = load_contacts(c, std::slice::from_ref(&failed.contact_id)).await?.pop() else {
        return Ok(());
    };
    let open: Vec<_> = contact.identities.iter().filter(|i| !i.opted_out).cloned().collect();
    let Some(next) = next_identity(contact.preferred_channel_id.as_ref(), &open, &tried) else {
        return Ok(());
    };
    let channel_id = next.channel_id.clone();
    let attachment_ids = c
        .rows("SELECT id FROM attachments WHERE message_id = $1 ORDER BY id", args![&failed.id])
        .await?
        .iter()
        .map(|r| r.s("id"))
        .collect::<Result<Vec<_>>>()?;
    let req = OutboundRequest {
        to: Recipient::Contact(failed.contact_id.clone()),
        channel_id: Some(channel_id.clone()),
        text: failed.text.clone(),
        buttons: failed.buttons.clone(),
        attachment_ids,
        idempotency_key: None,
        author: failed.author.clone(),
        reply_to: None,
        options: json!({}),
    };
    let message =
        insert_outbound_in(c, &req, &failed.contact_id, &failed.conversation_id, &channel_id, LANE_BULK).await?;
    tried.push(channel_id.clone());
    c.exec(
        "UPDATE broadcast_recipients SET message_id = $1, channel_id = $2, tried = $3, updated_at = $4 \
         WHERE broadcast_id = $5 AND message_id = $6",
        args![&message.id, &channel_id, to_json(&tried), now, &broadcast_id, &failed.id],
    )
    .await?;
    Ok(())
}

/// Two contacts merged: the other's place in broadcasts passes to the kept contact where the
/// kept one has none; where both were in a broadcast, the other's pending place is dropped
/// (the person gets it once, as the kept contact).
pub(crate) async fn merge(c: &mut dyn Conn, keep: &str, other: &str) -> Result<()> {
    c.exec(
        "UPDATE broadcast_recipients SET contact_id = $1 WHERE contact_id = $2 AND broadcast_id NOT IN \
         (SELECT broadcast_id FROM broadcast_recipients WHERE contact_id = $1)",
        args![keep, other],
    )
    .await?;
    c.exec(
        "UPDATE broadcast_recipients SET state = 'skipped', reason = 'merged into another contact of the audience', \
         updated_at = $1 WHERE contact_id = $2 AND state = 'pending'",
        args![now_ms(), other],
    )
    .await?;
    Ok(())
}
