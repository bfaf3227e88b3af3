//! The outbox. An outbound message is written with its `send` job in one transaction, so an
//! accepted message is never lost; what became of a send (sent, or failed and why) is written
//! with the end of its job while the sender still holds the job's lease. Every other kind of
//! work waits here too: jobs are claimed under a lease, one at a time per queue (a
//! conversation's messages go out in order), live work before broadcast work, and retried,
//! rescheduled or released.

use std::collections::HashSet;

use async_trait::async_trait;
use okno_domain::ids::{new_id, ContactId, ConversationId, MessageId};
use okno_domain::model::{Contact, Direction, EventType, Identity, Message, MessageStatus};
use okno_domain::time::{now_ms, Millis};
use okno_domain::{Error, Result};
use serde_json::{json, Value};

use crate::attachments::load_attachments;
use crate::channels::{channel_from, CHANNEL_COLS};
use crate::contacts::{identity_from, load_contact, IDENTITY_COLS};
use crate::conversations::{current_conversation, load_message, message_with, MESSAGE_COLS};
use crate::db::{args, Arg, Conn};
use crate::notifications::fall_back;
use crate::sql::{on, SqlStore};
use crate::statements::{exec_rows, query_rows, retry_conflicts, to_json, value_rows, Sql, INSERT_ROWS};
use crate::webhooks::{deliver, emit, subscribers};
use crate::{Backend, DeliveryTarget, IdentityFlag, Job, JobKind, OutboundRequest, Recipient, SentMessage, LANE_LIVE};

/// Outbound messages, what became of their sends, and the jobs of the outbox.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Writes the message and its `send` job in one transaction. With a known idempotency key
    /// returns the first message and `true`.
    async fn enqueue_outbound(&self, req: OutboundRequest) -> Result<(Message, bool)>;
    async fn delivery_target(&self, message_id: &MessageId) -> Result<DeliveryTarget>;
    /// Marks a message sent and emits `message.status`.
    async fn mark_sent(&self, message_id: &MessageId, external_id: Option<String>) -> Result<()>;
    /// Marks a message failed with a reason, optionally flags the identity, emits `message.status`.
    async fn mark_failed(&self, message_id: &MessageId, error: &str, flag: Option<IdentityFlag>) -> Result<()>;
    /// `mark_sent`, and ends the message's send job `seq` in the same transaction if `owner`
    /// still holds it. `false` when the lease was lost: the job is left to its new owner (the
    /// message is marked sent all the same, as it went out).
    async fn finish_send(
        &self,
        message_id: &MessageId,
        external_id: Option<String>,
        seq: i64,
        owner: &str,
    ) -> Result<bool>;
    /// `finish_send` for several messages in one transaction; for each, whether its job was
    /// ended (`false`: the lease was lost).
    async fn finish_sends(&self, sent: Vec<SentMessage>, owner: &str) -> Result<Vec<bool>>;
    /// `mark_failed`, and ends the send job `seq` in the same transaction if `owner` still holds
    /// it (`false` when the lease was lost).
    async fn fail_send(
        &self,
        message_id: &MessageId,
        error: &str,
        flag: Option<IdentityFlag>,
        seq: i64,
        owner: &str,
    ) -> Result<bool>;
    /// Leases up to `limit` due jobs to `owner` for `lease_ms`, keeping per-queue order.
    async fn claim_jobs(&self, owner: &str, limit: u32, lease_ms: i64) -> Result<Vec<Job>>;
    /// `claim_jobs` for one lane only (workers keep separate capacity for each).
    async fn claim_lane(&self, owner: &str, lane: i64, limit: u32, lease_ms: i64) -> Result<Vec<Job>>;
    /// Ends a job `owner` holds; `false` when the lease was lost (another worker has it now).
    async fn complete_job(&self, seq: i64, owner: &str) -> Result<bool>;
    /// Extends every lease `owner` holds (its jobs are still running); returns how many.
    async fn extend_leases(&self, owner: &str, lease_ms: i64) -> Result<u64>;
    /// Releases a job to run again at `at`, recording why.
    async fn retry_job(&self, seq: i64, owner: &str, at: Millis, error: &str) -> Result<bool>;
    /// Releases a job that did its part to run again at `at` with a fresh attempt count (a
    /// long-running job that works in slices).
    async fn reschedule_job(&self, seq: i64, owner: &str, at: Millis) -> Result<bool>;
    /// Releases every lease `owner` holds (graceful shutdown).
    async fn release_jobs(&self, owner: &str) -> Result<u64>;
    /// Queues a job of `kind` for `ref_id`, due now; jobs with the same `queue_key` run one
    /// at a time, in order. Committed when this returns: a caller may then acknowledge what
    /// asked for it.
    async fn queue_job(&self, kind: JobKind, ref_id: &str, queue_key: Option<&str>) -> Result<()>;
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn enqueue_outbound(&self, req: OutboundRequest) -> Result<(Message, bool)> {
        // A repeated idempotency key can race its first use (PostgreSQL); the retry finds it.
        retry_conflicts(|| {
            let req = req.clone();
            async move { on!(self.write, |c| enqueue(c, req).await) }
        })
        .await
    }

    async fn delivery_target(&self, message_id: &MessageId) -> Result<DeliveryTarget> {
        let message_id = message_id.to_owned();
        let target = on!(self.read, |c| {
            let message_id = message_id.as_str();
            // One read for the message, its channel, the identity it goes to and the platform id
            // of the message it answers; attachments are read only when there are some.
            let message_cols = columns_of("m", MESSAGE_COLS);
            let channel_cols = columns_of("ch", CHANNEL_COLS);
            let sql = format!(
                "SELECT {message_cols}, m.options, \
                 (SELECT r.external_id FROM messages r WHERE r.id = m.reply_to) AS reply_to_external, \
                 EXISTS (SELECT 1 FROM attachments a WHERE a.message_id = m.id) AS has_attachments, \
                 {channel_cols}, {IDENTITY_COLS} \
                 FROM messages m \
                 LEFT JOIN channels ch ON ch.id = m.channel_id AND ch.deleted = 0 \
                 LEFT JOIN identities i ON i.id = (SELECT i2.id FROM identities i2 \
                   WHERE i2.contact_id = m.contact_id AND i2.channel_id = m.channel_id \
                   ORDER BY i2.last_seen_at DESC LIMIT 1) \
                 WHERE m.id = $1"
            );
            let row = c.row(&sql, args![message_id]).await?.ok_or_else(|| Error::not_found("message", message_id))?;
            let message_end = MESSAGE_COLS.split(',').count() + 3;
            let channel_end = message_end + CHANNEL_COLS.split(',').count();
            let (head, ch, ident) = (
                row.part(0..message_end)?,
                row.part(message_end..channel_end)?,
                row.part(channel_end..row.cols.len())?,
            );
            let attachments =
                if head.flag("has_attachments")? { load_attachments(c, message_id).await? } else { Vec::new() };
            let message = message_with(&head, attachments)?;
            if ch.os("id")?.is_none() {
                return Err(Error::not_found("channel", &message.channel_id));
            }
            if ident.os("id")?.is_none() {
                return Err(Error::unprocessable(
                    "no_identity",
                    "the contact no longer has an identity on this channel",
                ));
            }
            Ok(DeliveryTarget {
                options: head.js("options")?,
                reply_to_external: head.os("reply_to_external")?,
                message,
                channel: channel_from(&ch)?,
                identity: identity_from(&ident)?,
            })
        })?;
        Ok(DeliveryTarget { channel: self.opened(target.channel)?, ..target })
    }

    async fn mark_sent(&self, message_id: &MessageId, external_id: Option<String>) -> Result<()> {
        let message_id = message_id.to_owned();
        on!(self.write, |c| record_sent(c, &[(&message_id, external_id.as_deref())]).await)
    }

    async fn mark_failed(&self, message_id: &MessageId, error: &str, flag: Option<IdentityFlag>) -> Result<()> {
        let (message_id, error) = (message_id.to_owned(), error.to_owned());
        on!(self.write, |c| record_failed(c, &message_id, &error, flag).await)
    }

    async fn finish_send(
        &self,
        message_id: &MessageId,
        external_id: Option<String>,
        seq: i64,
        owner: &str,
    ) -> Result<bool> {
        let sent = SentMessage { message_id: message_id.to_owned(), external_id, seq, unread_check: None };
        Ok(self.finish_sends(vec![sent], owner).await?.first().copied().unwrap_or(false))
    }

    async fn finish_sends(&self, sent: Vec<SentMessage>, owner: &str) -> Result<Vec<bool>> {
        if sent.is_empty() {
            return Ok(Vec::new());
        }
        let owner = owner.to_owned();
        on!(self.write, |c| {
            let pairs: Vec<_> = sent.iter().map(|s| (s.message_id.as_str(), s.external_id.as_deref())).collect();
            record_sent(c, &pairs).await?;
            let mut q = Sql::new("DELETE FROM jobs WHERE lease_owner = ");
            q.bind_s(owner).push(" AND seq IN (");
            for (n, s) in sent.iter().enumerate() {
                q.push(if n == 0 { "" } else { ", " }).bind_i(s.seq);
            }
            q.push(") RETURNING seq");
            let ended = query_rows(c, &q.text, &q.args, sent.len())
                .await?
                .iter()
                .map(|r| r.i("seq"))
                .collect::<Result<Vec<_>>>()?;
            for s in sent.iter().filter(|s| ended.contains(&s.seq)) {
                if let Some(at) = s.unread_check {
                    insert_job(c, JobKind::UnreadByEmail, s.message_id.as_str(), None, at).await?;
                }
            }
            Ok(sent.iter().map(|s| ended.contains(&s.seq)).collect())
        })
    }

    async fn fail_send(
        &self,
        message_id: &MessageId,
        error: &str,
        flag: Option<IdentityFlag>,
        seq: i64,
        owner: &str,
    ) -> Result<bool> {
        let (message_id, error, owner) = (message_id.to_owned(), error.to_owned(), owner.to_owned());
        on!(self.write, |c| {
            record_failed(c, &message_id, &error, flag).await?;
            end_job(c, seq, &owner).await
        })
    }

    async fn queue_job(&self, kind: JobKind, ref_id: &str, queue_key: Option<&str>) -> Result<()> {
        let (ref_id, queue_key) = (ref_id.to_owned(), queue_key.map(str::to_owned));
        on!(self.write, |c| insert_job(c, kind, &ref_id, queue_key.as_deref(), now_ms()).await)
    }

    async fn claim_jobs(&self, owner: &str, limit: u32, lease_ms: i64) -> Result<Vec<Job>> {
        self.claim(owner, None, limit, lease_ms).await
    }

    async fn claim_lane(&self, owner: &str, lane: i64, limit: u32, lease_ms: i64) -> Result<Vec<Job>> {
        self.claim(owner, Some(lane), limit, lease_ms).await
    }

    async fn complete_job(&self, seq: i64, owner: &str) -> Result<bool> {
        let owner = owner.to_owned();
        on!(self.write, |c| end_job(c, seq, &owner).await)
    }

    async fn extend_leases(&self, owner: &str, lease_ms: i64) -> Result<u64> {
        let owner = owner.to_owned();
        on!(self.write, |c| {
            c.exec("UPDATE jobs SET lease_until = $1 WHERE lease_owner = $2", args![now_ms() + lease_ms, &owner]).await
        })
    }

    async fn retry_job(&self, seq: i64, owner: &str, at: Millis, error: &str) -> Result<bool> {
        let (owner, error) = (owner.to_owned(), error.to_owned());
        on!(self.write, |c| {
            let n = c
                .exec(
                    "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, run_at = $1, last_error = $2 \
                     WHERE seq = $3 AND lease_owner = $4",
                    args![at, &error, seq, &owner],
                )
                .await?;
            Ok(n > 0)
        })
    }

    async fn reschedule_job(&self, seq: i64, owner: &str, at: Millis) -> Result<bool> {
        let owner = owner.to_owned();
        on!(self.write, |c| {
            let n = c
                .exec(
                    "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, run_at = $1, attempts = 0, last_error = NULL \
                     WHERE seq = $2 AND lease_owner = $3",
                    args![at, seq, &owner],
                )
                .await?;
            Ok(n > 0)
        })
    }

    async fn release_jobs(&self, owner: &str) -> Result<u64> {
        let owner = owner.to_owned();
        on!(self.write, |c| {
            let owner = owner.as_str();
            let done = c
                .exec(
                    "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, \
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END WHERE lease_owner = $1",
                    args![owner],
                )
                .await?;
            Ok(done)
        })
    }
}

impl SqlStore {
    /// Leases up to `limit` due jobs (of one lane, or live work first), each queue's first only.
    async fn claim(&self, owner: &str, lane: Option<i64>, limit: u32, lease_ms: i64) -> Result<Vec<Job>> {
        let backend = self.backend;
        let owner = owner.to_owned();
        on!(self.write, |c| {
            let owner = owner.as_str();
            let now = now_ms();
            let lock = match backend {
                Backend::Postgres => " FOR UPDATE SKIP LOCKED",
                Backend::Sqlite => "",
            };
            // Live work waits only for live work queued before it in its conversation: a broadcast
            // message still waiting in the bulk lane does not hold up a reply to the person.
            let (lane, before, order) = match lane {
                Some(LANE_LIVE) => {
                    (format!(" AND j.lane = {LANE_LIVE}"), format!(" AND p.lane = {LANE_LIVE}"), "j.seq")
                }
                Some(n) => (format!(" AND j.lane = {n}"), String::new(), "j.seq"),
                None => (String::new(), String::new(), "j.lane, j.seq"),
            };
            // The limit is written into the statement: SQLite plans with a bound `LIMIT`'s
            // value, so it would prepare the statement afresh whenever the value changed. The
            // workers ask in a handful of sizes, so a handful of texts stay prepared.
            let sql = format!(
                "UPDATE jobs SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
                 WHERE seq IN (SELECT j.seq FROM jobs j WHERE j.run_at <= $3{lane} \
                   AND (j.lease_until IS NULL OR j.lease_until < $3) \
                   AND (j.queue_key IS NULL OR NOT EXISTS \
                        (SELECT 1 FROM jobs p WHERE p.queue_key = j.queue_key AND p.seq < j.seq{before})) \
                   ORDER BY {order} LIMIT {limit}{lock}) \
                 RETURNING seq, kind, ref_id, queue_key, attempts, lane"
            );
            let rows = c.rows_planned(&sql, args![owner, now + lease_ms, now]).await?;
            let mut jobs = rows
                .iter()
                .map(|r| {
                    let kind = r.s("kind")?;
                    Ok(Job {
                        seq: r.i("seq")?,
                        kind: JobKind::parse(&kind)
                            .ok_or_else(|| Error::internal(format!("unknown job kind `{kind}`")))?,
                        ref_id: r.s("ref_id")?,
                        queue_key: r.os("queue_key")?,
                        attempts: r.i("attempts")?,
                        lane: r.i("lane")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            jobs.sort_by_key(|j| j.seq);
            Ok(jobs)
        })
    }
}

/// Queues a job in the outbox.
pub(crate) async fn insert_job(
    c: &mut dyn Conn,
    kind: JobKind,
    ref_id: &str,
    queue_key: Option<&str>,
    run_at: Millis,
) -> Result<()> {
    insert_job_in(c, kind, ref_id, queue_key, run_at, LANE_LIVE).await
}

/// `insert_job` in a given lane.
pub(crate) async fn insert_job_in(
    c: &mut dyn Conn,
    kind: JobKind,
    ref_id: &str,
    queue_key: Option<&str>,
    run_at: Millis,
    lane: i64,
) -> Result<()> {
    c.exec(
        "INSERT INTO jobs (kind, ref_id, queue_key, run_at, created_at, lane) VALUES ($1, $2, $3, $4, $5, $6)",
        args![kind.as_str(), ref_id, queue_key, run_at, now_ms(), lane],
    )
    .await?;
    Ok(())
}

/// Ends a job `owner` holds; `false` when another owner has it now.
pub(crate) async fn end_job(c: &mut dyn Conn, seq: i64, owner: &str) -> Result<bool> {
    Ok(c.exec("DELETE FROM jobs WHERE seq = $1 AND lease_owner = $2", args![seq, owner]).await? > 0)
}

/// Marks queued messages sent (id and platform id) and emits `message.status` for each (see
/// `OutboxStore::mark_sent`).
async fn record_sent(c: &mut dyn Conn, sent: &[(&str, Option<&str>)]) -> Result<()> {
    let now = now_ms();
    let mut changed = Vec::new();
    // One statement for a batch of sends (a message sent twice in it counts once).
    for chunk in sent.chunks(INSERT_ROWS) {
        let mut args = Vec::with_capacity(chunk.len() * 2 + 1);
        let mut cases = String::new();
        for (id, external_id) in chunk {
            args.extend([Arg::from(*id), Arg::from(*external_id)]);
            cases.push_str(&format!(" WHEN ${} THEN ${}", args.len() - 1, args.len()));
        }
        let listed: Vec<String> = (0..chunk.len()).map(|i| format!("${}", 2 * i + 1)).collect();
        args.push(Arg::from(now));
        let rows = query_rows(
            c,
            &format!(
                "UPDATE messages SET status = 'sent', error = NULL, external_id = CASE id{cases} END, \
                 updated_at = ${} WHERE id IN ({}) AND status = 'queued' RETURNING id",
                args.len(),
                listed.join(", ")
            ),
            &args,
            chunk.len(),
        )
        .await?;
        let done = rows.iter().map(|r| r.s("id")).collect::<Result<HashSet<_>>>()?;
        // In the order given, each once.
        for (id, _) in chunk {
            if done.contains(*id) && !changed.contains(id) {
                changed.push(*id);
            }
        }
    }
    // The messages are read back only for subscribers: this runs once per message sent.
    if !changed.is_empty() {
        let hooks = subscribers(c, EventType::MessageStatus).await?;
        if !hooks.is_empty() {
            for id in &changed {
                let m = load_message(c, id).await?;
                deliver(c, &hooks, EventType::MessageStatus, status_event_data(&m)).await?;
            }
        }
    }
    // Receipts the platform sent before these platform ids were written.
    crate::receiving::apply_pending_receipts(c, &changed).await
}

/// Marks a queued message failed, flags the identity, emits `message.status` and falls back to
/// the person's next channel for a notification (see `OutboxStore::mark_failed`).
async fn record_failed(c: &mut dyn Conn, message_id: &str, error: &str, flag: Option<IdentityFlag>) -> Result<()> {
    let done = c
        .exec(
            "UPDATE messages SET status = 'failed', error = $1, updated_at = $2 WHERE id = $3 AND status = 'queued'",
            args![error, now_ms(), message_id],
        )
        .await?;
    if done > 0 {
        let m = load_message(c, message_id).await?;
        if let Some(flag) = flag {
            let col = match flag {
                IdentityFlag::Blocked => "blocked",
                IdentityFlag::OptedOut => "opted_out",
            };
            c.exec(
                &format!("UPDATE identities SET {col} = 1 WHERE contact_id = $1 AND channel_id = $2"),
                args![&m.contact_id, &m.channel_id],
            )
            .await?;
        }
        emit(c, EventType::MessageStatus, status_event_data(&m)).await?;
        fall_back(c, &m).await?;
    }
    Ok(())
}

pub(crate) fn status_event_data(m: &Message) -> Value {
    json!({
        "message_id": m.id, "conversation_id": m.conversation_id, "contact_id": m.contact_id,
        "channel_id": m.channel_id, "status": m.status, "error": m.error, "external_id": m.external_id,
    })
}

/// Queues an outbound message (see `OutboxStore::enqueue_outbound`).
pub(crate) async fn enqueue(c: &mut dyn Conn, req: OutboundRequest) -> Result<(Message, bool)> {
    enqueue_with(c, req, None).await
}

/// `enqueue` for a caller that already loaded the recipient contact in this transaction.
async fn enqueue_with(c: &mut dyn Conn, req: OutboundRequest, loaded: Option<Contact>) -> Result<(Message, bool)> {
    if let Some(key) = &req.idempotency_key {
        let existing = c.row("SELECT id FROM messages WHERE idempotency_key = $1", args![key]).await?;
        if let Some(row) = existing {
            let message = load_message(c, &row.s("id")?).await?;
            return Ok((message, true));
        }
    }
    let (contact_id, conversation_id, last_inbound) = match &req.to {
        Recipient::Conversation(id) => {
            let row = c
                .row("SELECT contact_id, last_inbound_channel_id FROM conversations WHERE id = $1", args![id])
                .await?
                .ok_or_else(|| Error::not_found("conversation", id))?;
            (row.id::<ContactId>("contact_id")?, id.clone(), row.os("last_inbound_channel_id")?)
        }
        Recipient::Contact(id) => {
            if loaded.as_ref().is_none_or(|l| &l.id != id) {
                load_contact(c, id).await?;
            }
            let (conv, _, last_inbound) = current_conversation(c, id, false).await?;
            (id.clone(), ConversationId::from(conv), last_inbound)
        }
        Recipient::ExternalId(ext) => {
            let row = c.row("SELECT id FROM contacts WHERE external_id = $1", args![ext]).await?.ok_or_else(|| {
                Error::new(
                    okno_domain::ErrorKind::NotFound,
                    "contact_not_found",
                    format!("no contact with external_id `{ext}`"),
                )
            })?;
            let id: ContactId = row.id("id")?;
            let (conv, _, last_inbound) = current_conversation(c, &id, false).await?;
            (id, ConversationId::from(conv), last_inbound)
        }
    };
    let contact = match loaded {
        Some(l) if l.id == contact_id => l,
        _ => load_contact(c, &contact_id).await?,
    };
    let identity = choose_identity(&contact, req.channel_id.as_deref(), last_inbound.as_deref())?;
    if identity.blocked {
        return Err(Error::unprocessable(
            "recipient_blocked",
            format!("the contact has blocked channel {}; choose another channel", identity.channel_id),
        ));
    }
    let message = insert_outbound(c, &req, &contact_id, &conversation_id, &identity.channel_id).await?;
    Ok((message, false))
}

/// Writes an outbound message, its attachments and its `send` job, and makes it the
/// conversation's last message.
async fn insert_outbound(
    c: &mut dyn Conn,
    req: &OutboundRequest,
    contact_id: &str,
    conversation_id: &str,
    channel_id: &str,
) -> Result<Message> {
    insert_outbound_in(c, req, contact_id, conversation_id, channel_id, LANE_LIVE).await
}

/// `insert_outbound` with its send job in a given lane.
pub(crate) async fn insert_outbound_in(
    c: &mut dyn Conn,
    req: &OutboundRequest,
    contact_id: &str,
    conversation_id: &str,
    channel_id: &str,
    lane: i64,
) -> Result<Message> {
    let one = Outbound { req, contact_id, conversation_id, channel_id };
    let mut written = insert_outbounds(c, &[one], lane).await?;
    written.pop().ok_or_else(|| Error::internal("an outbound message was not written"))
}

/// One outbound message to write: what to send, to whom, in which conversation, on which channel.
pub(crate) struct Outbound<'a> {
    pub req: &'a OutboundRequest,
    pub contact_id: &'a str,
    pub conversation_id: &'a str,
    pub channel_id: &'a str,
}

/// Writes outbound messages with their search copies, attachments and `send` jobs (in `lane`),
/// and makes each its conversation's last message: a few multi-row statements for all of them,
/// not five per message. Jobs are queued in the order given. Returns the messages in that order.
pub(crate) async fn insert_outbounds(c: &mut dyn Conn, items: &[Outbound<'_>], lane: i64) -> Result<Vec<Message>> {
    let now = now_ms();
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(INSERT_ROWS) {
        let ids: Vec<String> = chunk.iter().map(|_| new_id()).collect();
        let mut args = Vec::with_capacity(chunk.len() * 10 + 1);
        for (o, id) in chunk.iter().zip(&ids) {
            args.extend([
                Arg::from(id.as_str()),
                Arg::from(o.conversation_id),
                Arg::from(o.contact_id),
                Arg::from(o.channel_id),
                Arg::from(o.req.text.as_deref()),
                Arg::from(to_json(&o.req.buttons)),
                Arg::from(o.req.author.as_deref()),
                Arg::from(o.req.idempotency_key.as_deref()),
                Arg::from(o.req.reply_to.as_deref()),
                Arg::from(to_json(&o.req.options)),
            ]);
        }
        args.push(Arg::from(now));
        let rows = value_rows("(?, ?, ?, ?, 'out', ?, ?, 'queued', ?, ?, ?, ?, $T, $T)", chunk.len())
            .replace("$T", &format!("${}", args.len()));
        exec_rows(
            c,
            &format!(
                "INSERT INTO messages (id, conversation_id, contact_id, channel_id, direction, text, buttons, status, \
                 author, idempotency_key, reply_to, options, created_at, updated_at) VALUES {rows}"
            ),
            &args,
            chunk.len(),
        )
        .await?;
        let texts: Vec<(&str, Option<&str>)> =
            chunk.iter().zip(&ids).map(|(o, id)| (id.as_str(), o.req.text.as_deref())).collect();
        crate::search::index_new_all(c, &texts).await?;
        for (o, id) in chunk.iter().zip(&ids) {
            for att in &o.req.attachment_ids {
                let done = c
                    .exec(
                        "INSERT INTO attachments (id, message_id, name, mime, size, sha256, state, created_at) \
                         SELECT $1, $2, name, mime, size, sha256, state, $3 FROM attachments \
                         WHERE id = $4 AND state = 'ready'",
                        args![new_id(), id, now, att],
                    )
                    .await?;
                if done == 0 {
                    return Err(Error::not_found("attachment", att));
                }
            }
        }
        let mut args = Vec::with_capacity(chunk.len() * 3 + 3);
        for (o, id) in chunk.iter().zip(&ids) {
            args.extend([Arg::from(id.as_str()), Arg::from(o.conversation_id)]);
        }
        let n = args.len();
        args.extend([Arg::from(JobKind::Send.as_str()), Arg::from(now), Arg::from(lane)]);
        let rows = value_rows("(?, ?, $K, $N, $N, $L)", chunk.len())
            .replace("$K", &format!("${}", n + 1))
            .replace("$N", &format!("${}", n + 2))
            .replace("$L", &format!("${}", n + 3));
        let sql = format!("INSERT INTO jobs (ref_id, queue_key, kind, run_at, created_at, lane) VALUES {rows}");
        exec_rows(c, &sql, &args, chunk.len()).await?;
        // Each conversation's last message is the last one given for it.
        let mut args = Vec::with_capacity(chunk.len() * 2 + 1);
        let mut cases = String::new();
        let mut seen = std::collections::HashSet::new();
        for (o, id) in chunk.iter().zip(&ids).rev() {
            if seen.insert(o.conversation_id) {
                args.extend([Arg::from(o.conversation_id), Arg::from(id.as_str())]);
                cases.push_str(&format!(" WHEN ${} THEN ${}", args.len() - 1, args.len()));
            }
        }
        let listed: Vec<String> = (0..seen.len()).map(|i| format!("${}", 2 * i + 1)).collect();
        args.push(Arg::from(now));
        exec_rows(
            c,
            &format!(
                "UPDATE conversations SET last_message_id = CASE id{cases} END, last_message_at = ${0}, updated_at = ${0} \
                 WHERE id IN ({1})",
                args.len(),
                listed.join(", ")
            ),
            &args,
            seen.len(),
        )
        .await?;
        for (o, id) in chunk.iter().zip(ids) {
            if !o.req.attachment_ids.is_empty() {
                out.push(load_message(c, &id).await?);
                continue;
            }
            // Everything in the message was just written: it is built here rather than read back.
            out.push(Message {
                id: id.into(),
                conversation_id: o.conversation_id.into(),
                contact_id: o.contact_id.into(),
                channel_id: o.channel_id.into(),
                direction: Direction::Out,
                text: o.req.text.clone(),
                attachments: Vec::new(),
                buttons: o.req.buttons.clone(),
                status: MessageStatus::Queued,
                error: None,
                external_id: None,
                button_data: None,
                button_label: None,
                reply_to: o.req.reply_to.clone(),
                edited: false,
                author: o.req.author.clone(),
                created_at: now,
                updated_at: now,
            });
        }
    }
    Ok(out)
}

/// The identity an outbound message goes to: the requested channel, else where the contact
/// last wrote, else their preferred channel, else the most recently active identity.
fn choose_identity<'a>(
    contact: &'a Contact,
    requested: Option<&str>,
    last_inbound: Option<&str>,
) -> Result<&'a Identity> {
    let on = |ch: &str| contact.identities.iter().find(|i| i.channel_id == ch);
    if let Some(ch) = requested {
        return on(ch).ok_or_else(|| {
            Error::unprocessable("no_identity", format!("the contact has no identity on channel `{ch}`"))
        });
    }
    // Where they last wrote comes first; then the general preference order.
    if let Some(found) = last_inbound.and_then(on).filter(|i| !i.blocked) {
        return Ok(found);
    }
    okno_domain::routing::next_identity(contact.preferred_channel_id.as_ref(), &contact.identities, &[])
        .or_else(|| contact.identities.first())
        .ok_or_else(|| Error::unprocessable("no_identity", "the contact has no identity on any channel"))
}

/// `a, b` → `t.a, t.b`: a column list for a query that names its tables.
fn columns_of(table: &str, cols: &str) -> String {
    cols.split(',').map(|c| format!("{table}.{}", c.trim())).collect::<Vec<_>>().join(", ")
}
