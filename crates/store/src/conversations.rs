//! Conversations and their messages: recording what a person sends (sender → identity →
//! contact → conversation → message, once per platform message id, with the event it raises
//! and the work it queues in the same transaction), the inbox's lists, an operator's changes
//! (status, assignee, labels, snooze, read) and their private notes.

use async_trait::async_trait;
use okno_domain::files::safe_file_name;
use okno_domain::ids::{new_id, ChannelId, ConversationId, MessageId};
use okno_domain::model::{
    Attachment, ContactInput, Conversation, ConversationStatus, Direction, EventType, Keyboard, Message, MessageStatus,
    Page,
};
use okno_domain::time::{now_ms, Millis};
use okno_domain::{Error, Result};
use serde_json::{json, Value};

use crate::attachments::load_attachments;
use crate::channels::load_channel;
use crate::contacts::{insert_contact, load_contact};
use crate::db::{args, Arg, Conn, Row};
use crate::outbox::insert_job;
use crate::sql::{on, SqlStore};
use crate::statements::{to_json, Sql};
use crate::webhooks::emit;
use crate::{
    Backend, ConversationFilter, ConversationPatch, Inbound, InboundAttachment, InboundMessage, JobKind, Note,
    PageRequest,
};

/// Conversations, their messages and notes, and recording inbound messages.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// Records an inbound message: sender → identity → contact → conversation → message, and
    /// the `message.received`/`button.pressed` events (or an attachment-fetch job first).
    async fn record_inbound(&self, msg: InboundMessage) -> Result<Inbound>;
    async fn list_conversations(&self, filter: ConversationFilter, page: PageRequest) -> Result<Page<Conversation>>;
    async fn get_conversation(&self, id: &ConversationId) -> Result<Conversation>;
    /// Emits `conversation.updated` when something changed.
    async fn update_conversation(&self, id: &ConversationId, patch: ConversationPatch) -> Result<Conversation>;
    async fn list_messages(&self, conversation_id: &ConversationId, page: PageRequest) -> Result<Page<Message>>;
    async fn get_message(&self, id: &MessageId) -> Result<Message>;
    /// Wakes a snoozed conversation (open again) if it is still snoozed as the job `id:until`
    /// saw it; emits `conversation.updated`.
    async fn wake_snoozed(&self, job_ref: &str) -> Result<bool>;
    /// Adds an operator's private note to a conversation.
    async fn add_note(&self, conversation_id: &ConversationId, author: &str, text: &str) -> Result<Note>;
    /// A conversation's notes, oldest first.
    async fn list_notes(&self, conversation_id: &ConversationId) -> Result<Vec<Note>>;
    /// Messages on `channels` written after `after` (`created_at`, `id`) and before `before`,
    /// oldest first, at most `limit`: what a connector mirrors into a business system's desk,
    /// read on from where it stopped.
    async fn messages_on_channels(
        &self,
        channels: &[ChannelId],
        after: (Millis, String),
        before: Millis,
        limit: u32,
    ) -> Result<Vec<Message>>;
}

#[async_trait]
impl ConversationStore for SqlStore {
    async fn record_inbound(&self, msg: InboundMessage) -> Result<Inbound> {
        // A concurrent first message from the same new person can race on the unique keys
        // (PostgreSQL); the loser simply runs again and finds what the winner wrote.
        let mut last = None;
        let backend = self.backend;
        for _ in 0..3 {
            let msg = msg.clone();
            match on!(self.write, |c| record_inbound_once(c, backend, &msg).await) {
                Err(e) if e.kind == okno_domain::ErrorKind::Conflict => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::internal("inbound retry loop ended without a result")))
    }

    async fn list_conversations(&self, f: ConversationFilter, page: PageRequest) -> Result<Page<Conversation>> {
        let backend = self.backend;
        on!(self.read, |c| {
            let mut q = Sql::new(&format!("SELECT {CONVERSATION_COLS} FROM conversations c WHERE 1 = 1"));
            if let Some(v) = f.status {
                q.push(" AND c.status = ").bind_s(v.as_str());
            }
            if let Some(v) = &f.contact_id {
                q.push(" AND c.contact_id = ").bind_s(v);
            }
            if let Some(v) = &f.channel_id {
                q.push(" AND EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.channel_id = ")
                    .bind_s(v)
                    .push(")");
            }
            match &f.assignee {
                Some(Some(a)) => {
                    q.push(" AND c.assignee = ").bind_s(a);
                }
                Some(None) => {
                    q.push(" AND c.assignee IS NULL");
                }
                None => {}
            }
            if let Some(v) = &f.label {
                q.push(" AND c.labels LIKE ").bind_s(format!("%{}%", to_json(v)));
            }
            if let Some(pieces) = f.text.as_deref().and_then(|t| crate::search::matching_messages(backend, t)) {
                q.push(" AND c.id IN (SELECT m.conversation_id FROM messages m WHERE m.id IN (");
                for p in pieces {
                    match p {
                        crate::search::Piece::Sql(s) => q.push(s),
                        crate::search::Piece::Arg(a) => q.bind_s(a),
                    };
                }
                q.push("))");
            }
            if let Some(cursor) = &page.cursor {
                let (at, id) = cursor
                    .split_once('.')
                    .and_then(|(a, b)| a.parse::<i64>().ok().map(|a| (a, b.to_string())))
                    .ok_or_else(|| Error::invalid("invalid_cursor", "the cursor is not one this API returned"))?;
                // `<=` first: a range the index can start from (an OR of the two cases alone
                // makes the database walk every newer row to find the page).
                q.push(" AND c.last_message_at <= ").bind_i(at);
                q.push(" AND (c.last_message_at < ").bind_i(at).push(" OR c.id < ").bind_s(id).push(")");
            }
            // The time of the last message, never of the last change: reading a conversation,
            // assigning or resolving it leaves it where it is.
            q.push(" ORDER BY c.last_message_at DESC, c.id DESC LIMIT ").bind_i(i64::from(page.limit) + 1);
            let rows = c.rows_planned(&q.text, &q.args).await?;
            let mut items = Vec::with_capacity(rows.len());
            for row in rows.iter().take(page.limit as usize) {
                items.push(conversation_from(c, row).await?);
            }
            let next = (rows.len() > page.limit as usize)
                .then(|| items.last().map(|c: &Conversation| format!("{}.{}", c.last_message_at, c.id)))
                .flatten();
            Ok(Page { items, next })
        })
    }

    async fn get_conversation(&self, id: &ConversationId) -> Result<Conversation> {
        let id = id.to_owned();
        on!(self.read, |c| {
            let id = id.as_str();
            load_conversation(c, id).await
        })
    }

    async fn update_conversation(&self, id: &ConversationId, patch: ConversationPatch) -> Result<Conversation> {
        let id = id.to_owned();
        on!(self.write, |c| {
            let id = id.as_str();
            let before = load_conversation(c, id).await?;
            // Reading alone is bookkeeping: it clears the unread count and changes nothing else,
            // not even `updated_at` (the time of the last change, which reports measure).
            let changes = patch.status.is_some()
                || patch.snooze_until.is_some()
                || patch.assignee.is_some()
                || patch.labels.is_some();
            if !changes && !patch.mark_read {
                return Ok(before);
            }
            // A no-op first assignment the others follow with `, …`; not the key, whose update
            // (even to itself) makes SQLite check every table that refers to it.
            let mut q = Sql::new("UPDATE conversations SET created_at = created_at");
            if changes {
                q.push(", updated_at = ").bind_i(now_ms());
            }
            if let Some(v) = patch.status {
                // A status set by hand ends a snooze.
                q.push(", snoozed_until = NULL, status = ").bind_s(v.as_str());
            }
            if let Some(until) = patch.snooze_until {
                q.push(", status = 'pending', snoozed_until = ").bind_i(until);
                insert_job(c, JobKind::Unsnooze, &format!("{id}:{until}"), None, until).await?;
            }
            match &patch.assignee {
                Some(Some(a)) => {
                    q.push(", assignee = ").bind_s(a);
                }
                Some(None) => {
                    q.push(", assignee = NULL");
                }
                None => {}
            }
            if let Some(labels) = &patch.labels {
                let mut labels = labels.clone();
                labels.sort();
                labels.dedup();
                q.push(", labels = ").bind_s(to_json(&labels));
            }
            if patch.mark_read {
                q.push(", unread = 0");
            }
            q.push(" WHERE id = ").bind_s(id);
            c.exec(&q.text, &q.args).await?;
            let after = load_conversation(c, id).await?;
            let changed =
                before.status != after.status || before.assignee != after.assignee || before.labels != after.labels;
            if changed {
                emit(c, EventType::ConversationUpdated, conversation_event_data(&after)).await?;
            }
            Ok(after)
        })
    }

    async fn list_messages(&self, conversation_id: &ConversationId, page: PageRequest) -> Result<Page<Message>> {
        let conversation_id = conversation_id.to_owned();
        on!(self.read, |c| {
            let conversation_id = conversation_id.as_str();
            let exists = c.row("SELECT id FROM conversations WHERE id = $1", args![conversation_id]).await?;
            if exists.is_none() {
                return Err(Error::not_found("conversation", conversation_id));
            }
            let mut q = Sql::new(&format!("SELECT {MESSAGE_COLS} FROM messages WHERE conversation_id = "));
            q.bind_s(conversation_id);
            if let Some(c) = &page.cursor {
                q.push(" AND id > ").bind_s(c);
            }
            q.push(" ORDER BY id LIMIT ").bind_i(i64::from(page.limit) + 1);
            let rows = c.rows(&q.text, &q.args).await?;
            let mut items = Vec::with_capacity(rows.len());
            for row in rows.iter().take(page.limit as usize) {
                items.push(message_from(c, row).await?);
            }
            let next =
                (rows.len() > page.limit as usize).then(|| items.last().map(|m: &Message| m.id.to_string())).flatten();
            Ok(Page { items, next })
        })
    }

    async fn messages_on_channels(
        &self,
        channels: &[ChannelId],
        after: (Millis, String),
        before: Millis,
        limit: u32,
    ) -> Result<Vec<Message>> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let channels: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
        on!(self.read, |c| {
            let mut q = Sql::new(&format!("SELECT {MESSAGE_COLS} FROM messages WHERE channel_id IN ("));
            for (i, ch) in channels.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind_s(ch.as_str());
            }
            q.push(") AND (created_at > ").bind_i(after.0);
            q.push(" OR (created_at = ").bind_i(after.0);
            q.push(" AND id > ").bind_s(after.1.as_str());
            q.push(")) AND created_at < ").bind_i(before);
            q.push(" ORDER BY created_at, id LIMIT ").bind_i(i64::from(limit.clamp(1, 1000)));
            let rows = c.rows(&q.text, &q.args).await?;
            let mut items = Vec::with_capacity(rows.len());
            for row in &rows {
                items.push(message_from(c, row).await?);
            }
            Ok(items)
        })
    }

    async fn get_message(&self, id: &MessageId) -> Result<Message> {
        let id = id.to_owned();
        on!(self.read, |c| {
            let id = id.as_str();
            load_message(c, id).await
        })
    }

    async fn wake_snoozed(&self, job_ref: &str) -> Result<bool> {
        let (id, until) = job_ref.rsplit_once(':').unwrap_or((job_ref, ""));
        let (id, until) = (id.to_owned(), until.parse::<i64>().unwrap_or(-1));
        on!(self.write, |c| {
            let woke = c
                .exec(
                    "UPDATE conversations SET status = 'open', snoozed_until = NULL, updated_at = $1 \
                     WHERE id = $2 AND snoozed_until = $3",
                    args![now_ms(), &id, until],
                )
                .await?
                > 0;
            if woke {
                let conv = load_conversation(c, &id).await?;
                emit(c, EventType::ConversationUpdated, conversation_event_data(&conv)).await?;
            }
            Ok(woke)
        })
    }

    async fn add_note(&self, conversation_id: &ConversationId, author: &str, text: &str) -> Result<Note> {
        let (conversation_id, author, text) = (conversation_id.to_owned(), author.to_owned(), text.to_owned());
        on!(self.write, |c| {
            load_conversation(c, &conversation_id).await?;
            let note = Note { id: new_id(), conversation_id, author, text, created_at: now_ms() };
            c.exec(
                "INSERT INTO notes (id, conversation_id, author, text, created_at) VALUES ($1, $2, $3, $4, $5)",
                args![&note.id, &note.conversation_id, &note.author, &note.text, note.created_at],
            )
            .await?;
            Ok(note)
        })
    }

    async fn list_notes(&self, conversation_id: &ConversationId) -> Result<Vec<Note>> {
        let conversation_id = conversation_id.to_owned();
        on!(self.read, |c| {
            c.rows(
                "SELECT id, conversation_id, author, text, created_at FROM notes WHERE conversation_id = $1 \
                 ORDER BY id LIMIT 1000",
                args![&conversation_id],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(Note {
                    id: r.s("id")?,
                    conversation_id: r.id("conversation_id")?,
                    author: r.s("author")?,
                    text: r.s("text")?,
                    created_at: r.i("created_at")?,
                })
            })
            .collect()
        })
    }
}

pub(crate) const MESSAGE_COLS: &str =
    "id, conversation_id, contact_id, channel_id, direction, text, buttons, status, error, \
     external_id, button_data, button_label, reply_to, edited, author, created_at, updated_at";

async fn message_from(c: &mut dyn Conn, row: &Row) -> Result<Message> {
    let attachments = load_attachments(c, &row.s("id")?).await?;
    message_with(row, attachments)
}

/// A message from its row and its attachments.
pub(crate) fn message_with(row: &Row, attachments: Vec<Attachment>) -> Result<Message> {
    let buttons: Keyboard = serde_json::from_value(row.js("buttons")?).unwrap_or_default();
    Ok(Message {
        id: row.id("id")?,
        conversation_id: row.id("conversation_id")?,
        contact_id: row.id("contact_id")?,
        channel_id: row.id("channel_id")?,
        direction: Direction::parse(&row.s("direction")?)?,
        text: row.os("text")?,
        attachments,
        buttons,
        status: MessageStatus::parse(&row.s("status")?)?,
        error: row.os("error")?,
        external_id: row.os("external_id")?,
        button_data: row.os("button_data")?,
        button_label: row.os("button_label")?,
        reply_to: row.oid("reply_to")?,
        edited: row.flag("edited")?,
        author: row.os("author")?,
        created_at: row.i("created_at")?,
        updated_at: row.i("updated_at")?,
    })
}

pub(crate) async fn load_message(c: &mut dyn Conn, id: &str) -> Result<Message> {
    let row = c
        .row(&format!("SELECT {MESSAGE_COLS} FROM messages WHERE id = $1"), args![id])
        .await?
        .ok_or_else(|| Error::not_found("message", id))?;
    message_from(c, &row).await
}

const CONVERSATION_COLS: &str =
    "c.id, c.contact_id, c.status, c.assignee, c.labels, c.unread, c.last_message_id, c.last_inbound_channel_id, \
     c.last_message_at, c.created_at, c.updated_at, c.snoozed_until";

async fn conversation_from(c: &mut dyn Conn, row: &Row) -> Result<Conversation> {
    let contact = load_contact(c, &row.s("contact_id")?).await?;
    let last_message = match row.os("last_message_id")? {
        Some(id) => Some(load_message(c, &id).await?),
        None => None,
    };
    Ok(Conversation {
        id: row.id("id")?,
        contact,
        status: ConversationStatus::parse(&row.s("status")?)?,
        assignee: row.os("assignee")?,
        labels: serde_json::from_value(row.js("labels")?).unwrap_or_default(),
        unread: row.i("unread")?,
        last_message,
        last_inbound_channel_id: row.oid("last_inbound_channel_id")?,
        snoozed_until: row.oi("snoozed_until")?,
        last_message_at: row.i("last_message_at")?,
        created_at: row.i("created_at")?,
        updated_at: row.i("updated_at")?,
    })
}

async fn load_conversation(c: &mut dyn Conn, id: &str) -> Result<Conversation> {
    let row = c
        .row(&format!("SELECT {CONVERSATION_COLS} FROM conversations c WHERE c.id = $1"), args![id])
        .await?
        .ok_or_else(|| Error::not_found("conversation", id))?;
    conversation_from(c, &row).await
}

/// The contact's current conversation, created (or reopened) as needed: its id, whether it
/// was reopened, and the channel the person last wrote on.
pub(crate) async fn current_conversation(
    c: &mut dyn Conn,
    contact_id: &str,
    reopen: bool,
) -> Result<(String, bool, Option<String>)> {
    let row = c
        .row(
            "SELECT id, status, last_inbound_channel_id, snoozed_until FROM conversations WHERE contact_id = $1 \
             ORDER BY id DESC LIMIT 1",
            args![contact_id],
        )
        .await?;
    settle_conversation(c, row, contact_id, reopen).await
}

/// `current_conversation` with the contact's newest conversation already read (`latest`: its
/// `id`, `status`, `last_inbound_channel_id` and `snoozed_until`, or `None` when there is none).
async fn settle_conversation(
    c: &mut dyn Conn,
    latest: Option<Row>,
    contact_id: &str,
    reopen: bool,
) -> Result<(String, bool, Option<String>)> {
    let now = now_ms();
    match latest {
        Some(row) => {
            let id = row.s("id")?;
            // A message from the person reopens a resolved conversation and wakes a snoozed one.
            let reopened = reopen
                && (row.s("status")? == ConversationStatus::Resolved.as_str() || row.oi("snoozed_until")?.is_some());
            if reopened {
                c.exec(
                    "UPDATE conversations SET status = 'open', snoozed_until = NULL, updated_at = $1 WHERE id = $2",
                    args![now, &id],
                )
                .await?;
            }
            Ok((id, reopened, row.os("last_inbound_channel_id")?))
        }
        None => {
            let id = new_id();
            c.exec(
                "INSERT INTO conversations (id, contact_id, status, last_message_at, created_at, updated_at) \
                 VALUES ($1, $2, 'open', $3, $3, $3)",
                args![&id, contact_id, now],
            )
            .await?;
            Ok((id, false, None))
        }
    }
}

fn conversation_event_data(c: &Conversation) -> Value {
    json!({
        "id": c.id, "contact_id": c.contact.id, "status": c.status, "assignee": c.assignee,
        "labels": c.labels, "unread": c.unread,
    })
}

pub(crate) fn message_event_data(m: &Message) -> Value {
    serde_json::to_value(m).unwrap_or(Value::Null)
}

/// What an inbound message keeps beside its text: what the conversation is about on the
/// platform (an Avito ad), under `context`.
fn inbound_options(msg: &InboundMessage) -> Value {
    match &msg.context {
        Some(context) => json!({ "context": context }),
        None => json!({}),
    }
}

/// The event an inbound message raises.
pub(crate) fn inbound_event(m: &Message) -> EventType {
    if m.button_data.is_some() {
        EventType::ButtonPressed
    } else {
        EventType::MessageReceived
    }
}

/// Outbound messages of a conversation a press without a known source is matched against: the
/// newest ones, so a long thread costs a bounded read.
const PRESS_LOOKBACK: i64 = 50;

/// The label of the button whose data a press carried, from the message that showed it: the
/// one the press answers when the platform says so (Telegram does, the webhook channel may),
/// else the newest of the conversation's recent outbound messages with such a button. Only
/// messages of the same conversation count: a press cannot name another person's buttons.
async fn pressed_label(
    c: &mut dyn Conn,
    conversation_id: &str,
    reply_to: Option<&str>,
    data: &str,
) -> Result<Option<String>> {
    let label_in = |row: &Row| -> Result<Option<String>> {
        let keyboard: Keyboard = serde_json::from_value(row.js("buttons")?).unwrap_or_default();
        Ok(keyboard.into_iter().flatten().find(|b| b.data.as_deref() == Some(data)).map(|b| b.text))
    };
    if let Some(source) = reply_to {
        let row = c
            .row("SELECT buttons FROM messages WHERE id = $1 AND conversation_id = $2", args![source, conversation_id])
            .await?;
        if let Some(label) = row.as_ref().map(label_in).transpose()?.flatten() {
            return Ok(Some(label));
        }
    }
    let rows = c
        .rows(
            "SELECT buttons FROM (SELECT buttons, direction FROM messages WHERE conversation_id = $1 \
             ORDER BY id DESC LIMIT $2) recent WHERE direction = 'out'",
            args![conversation_id, PRESS_LOOKBACK],
        )
        .await?;
    for row in &rows {
        if let Some(label) = label_in(row)? {
            return Ok(Some(label));
        }
    }
    Ok(None)
}

/// The sender's e-mail address as contacts keep it (trimmed, lowercased), when it is one.
fn sender_email(msg: &InboundMessage) -> Option<String> {
    let email = msg.sender.email.as_deref()?.trim().to_lowercase();
    (email.contains('@') && email.len() <= 320).then_some(email)
}

/// What okno already holds for an inbound message, read before it is recorded: the message
/// itself when the platform sent it before (`seen`), the sender's identity and contact, the
/// contact's newest conversation, whether a survey of theirs is running, and whether any
/// webhook subscription is active.
struct Known {
    seen: Option<String>,
    /// (identity id, contact id)
    identity: Option<(String, String)>,
    /// The newest conversation as `settle_conversation` takes it; `None` without one.
    latest: Option<Row>,
    surveying: bool,
    hooks: bool,
}

impl Known {
    /// Two statements. First the sender's identity, seen again (where to answer them, their
    /// names as the platform shows them now, no longer blocked) unless the message is one
    /// okno has already; on PostgreSQL the update locks it, so that two messages from one
    /// sender are recorded one after the other (one conversation made, one reopening told),
    /// taking their locks in the order a contact merge does (identities, then conversations).
    /// The rest after it, so that it sees what the message before committed.
    async fn read(c: &mut dyn Conn, msg: &InboundMessage, dedup: &str) -> Result<Known> {
        let s = &msg.sender;
        let identity = c
            .row(
                "UPDATE identities SET chat_id = $1, username = COALESCE($2, username), \
                 display_name = COALESCE($3, display_name), last_seen_at = $4, blocked = 0 \
                 WHERE channel_id = $5 AND user_id = $6 \
                 AND NOT EXISTS (SELECT 1 FROM messages WHERE channel_id = $5 AND dedup_key = $7) \
                 RETURNING id, contact_id",
                args![&s.chat_id, &s.username, &s.display_name, now_ms(), &msg.channel_id, &s.user_id, dedup],
            )
            .await?
            .map(|row| Ok::<_, Error>((row.s("id")?, row.s("contact_id")?)))
            .transpose()?;
        let contact_id = identity.as_ref().map(|(_, contact_id)| contact_id.as_str());
        let row = c
            .one(
                "SELECT (SELECT id FROM messages WHERE channel_id = $1 AND dedup_key = $2) AS seen, \
                 c.id AS id, c.status AS status, c.last_inbound_channel_id AS last_inbound_channel_id, \
                 c.snoozed_until AS snoozed_until, \
                 CASE WHEN EXISTS (SELECT 1 FROM survey_runs r WHERE r.contact_id = $3 AND r.status = 'active') \
                 THEN 1 ELSE 0 END AS surveying, \
                 CASE WHEN EXISTS (SELECT 1 FROM webhooks WHERE active = 1) THEN 1 ELSE 0 END AS hooks \
                 FROM (SELECT 1 AS one) one LEFT JOIN conversations c ON c.id = \
                 (SELECT id FROM conversations WHERE contact_id = $3 ORDER BY id DESC LIMIT 1)",
                args![&msg.channel_id, dedup, contact_id],
            )
            .await?;
        let (seen, surveying, hooks) = (row.os("seen")?, row.flag("surveying")?, row.flag("hooks")?);
        let latest = row.os("id")?.is_some().then_some(row);
        Ok(Known { seen, identity, latest, surveying, hooks })
    }
}

/// An inbound message's row, `INSERT INTO messages` followed by this (13 arguments).
const INBOUND_MESSAGE: &str = "(id, conversation_id, contact_id, channel_id, direction, text, status, \
     external_id, button_data, button_label, reply_to, dedup_key, created_at, updated_at, author, options) \
     VALUES ($1, $2, $3, $4, 'in', $5, 'received', $6, $7, $8, $9, $10, $11, $11, $12, $13)";

/// The conversation after an inbound message, from the first 11 arguments of
/// `INBOUND_MESSAGE`: the message ($1), the conversation ($2), the channel ($4), the time ($11).
const INBOUND_CONVERSATION: &str = "UPDATE conversations SET last_message_id = $1, unread = unread + 1, \
     last_inbound_channel_id = $4, last_message_at = $11, updated_at = $11 WHERE id = $2";

/// On PostgreSQL, an inbound message (`message`: the arguments of `INBOUND_MESSAGE`), its
/// search copy and its conversation's update written in one statement: each statement is a
/// round trip to the server.
async fn write_inbound_pg(c: &mut dyn Conn, message: &[Arg], text: Option<&str>) -> Result<()> {
    let mut args = message.to_vec();
    let search = match crate::search::body(text) {
        Some(body) => {
            args.push(Arg::from(body));
            ", s AS (INSERT INTO message_search (message_id, body) VALUES ($1, $14))"
        }
        None => "",
    };
    c.exec(&format!("WITH m AS (INSERT INTO messages {INBOUND_MESSAGE}){search} {INBOUND_CONVERSATION}"), &args)
        .await?;
    Ok(())
}

/// One attempt at recording an inbound message (see `record_inbound`).
async fn record_inbound_once(c: &mut dyn Conn, backend: Backend, msg: &InboundMessage) -> Result<Inbound> {
    {
        let dedup = format!("{}:{}", msg.sender.user_id, msg.external_id);
        let mut known = Known::read(c, msg, &dedup).await?;
        if let Some(id) = &known.seen {
            let message = load_message(c, id).await?;
            return Ok(Inbound { message, duplicate: true });
        }
        let now = now_ms();
        let identity = known.identity.as_ref();
        // A stranger answering the conversation okno's mail named (from another address): the
        // message is that conversation's, and who wrote it its author; no identity is made,
        // so knowing a conversation's tag never makes anyone its contact.
        // A sender okno knows by address (a contact's e-mail) is that contact, hint or not.
        let known_address = match (&identity, &msg.conversation_hint, sender_email(msg)) {
            (None, Some(_), Some(email)) => {
                c.row("SELECT id FROM contacts WHERE email = $1 LIMIT 1", args![&email]).await?.is_some()
            }
            _ => false,
        };
        let continued = match (&identity, &msg.conversation_hint) {
            (None, Some(hint)) if !known_address => c
                .row("SELECT contact_id FROM conversations WHERE id = $1", args![hint.to_lowercase()])
                .await?
                .map(|r| r.s("contact_id"))
                .transpose()?,
            _ => None,
        };
        let author = match (&continued, &msg.author) {
            (Some(_), None) => Some(match &msg.sender.display_name {
                Some(name) => format!("{name} <{}>", msg.sender.user_id),
                None => msg.sender.user_id.clone(),
            }),
            _ => msg.author.clone(),
        };
        let contact_id = match (identity, continued) {
            (None, Some(contact_id)) => contact_id,
            (Some((_, contact_id)), _) => {
                let contact_id = contact_id.clone();
                if let Some(phone) = &msg.sender.phone {
                    c.exec(
                        "UPDATE contacts SET phone = $1, updated_at = $2 WHERE id = $3 AND phone IS NULL",
                        args![phone, now, &contact_id],
                    )
                    .await?;
                }
                if let Some(email) = sender_email(msg) {
                    let set = c
                        .exec(
                            "UPDATE contacts SET email = $1, updated_at = $2 WHERE id = $3 AND email IS NULL",
                            args![&email, now, &contact_id],
                        )
                        .await?;
                    if set > 0 {
                        crate::contacts::refresh_search(c, &contact_id).await?;
                    }
                }
                contact_id
            }
            (None, None) => {
                // A new person: the same phone, or the same e-mail address, means the same
                // contact (omnichannel by phone and by address).
                let by_phone = match &msg.sender.phone {
                    Some(p) => c
                        .row("SELECT id FROM contacts WHERE phone = $1 ORDER BY id LIMIT 1", args![p])
                        .await?
                        .map(|r| r.s("id"))
                        .transpose()?,
                    None => None,
                };
                let by_phone = match (by_phone, sender_email(msg)) {
                    (None, Some(email)) => c
                        .row("SELECT id FROM contacts WHERE email = $1 ORDER BY id LIMIT 1", args![&email])
                        .await?
                        .map(|r| r.s("id"))
                        .transpose()?,
                    (found, _) => found,
                };
                // The channel must exist before the first identity on it is created.
                load_channel(c, &msg.channel_id).await?;
                let contact_id = match by_phone {
                    Some(id) => id,
                    None => {
                        let input = ContactInput {
                            name: msg.sender.display_name.clone().or(msg.sender.username.clone()),
                            phone: msg.sender.phone.clone(),
                            email: sender_email(msg),
                            ..Default::default()
                        };
                        insert_contact(c, &input).await?
                    }
                };
                c.exec(
                    "INSERT INTO identities (id, contact_id, channel_id, user_id, chat_id, username, display_name, \
                     last_seen_at, created_at, is_group) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
                    args![
                        new_id(),
                        &contact_id,
                        &msg.channel_id,
                        &msg.sender.user_id,
                        &msg.sender.chat_id,
                        &msg.sender.username,
                        &msg.sender.display_name,
                        now,
                        i64::from(msg.sender.is_group)
                    ],
                )
                .await?;
                contact_id
            }
        };
        let (conversation_id, reopened, _) = match &known.identity {
            Some(_) => settle_conversation(c, known.latest.take(), &contact_id, true).await?,
            None => current_conversation(c, &contact_id, true).await?,
        };
        let reply_to = match (&msg.reply_to, &msg.reply_to_external) {
            (Some(r), _) => Some(r.clone()),
            (None, Some(ext)) => c
                .row(
                    "SELECT id FROM messages WHERE channel_id = $1 AND external_id = $2 ORDER BY id LIMIT 1",
                    args![&msg.channel_id, ext],
                )
                .await?
                .map(|r| r.id("id"))
                .transpose()?,
            (None, None) => None,
        };
        let button_label = match &msg.button_data {
            Some(data) => pressed_label(c, &conversation_id, reply_to.as_deref(), data).await?,
            None => None,
        };
        let id = new_id();
        let message_args = args![
            &id,
            &conversation_id,
            &contact_id,
            &msg.channel_id,
            &msg.text,
            &msg.external_id,
            &msg.button_data,
            &button_label,
            &reply_to,
            &dedup,
            now,
            &author,
            to_json(&inbound_options(msg))
        ];
        match backend {
            // One round trip for what SQLite, in the same process, runs as three statements.
            Backend::Postgres => write_inbound_pg(c, message_args, msg.text.as_deref()).await?,
            Backend::Sqlite => {
                c.exec(&format!("INSERT INTO messages {INBOUND_MESSAGE}"), message_args).await?;
                crate::search::index_new(c, &id, msg.text.as_deref()).await?;
                c.exec(INBOUND_CONVERSATION, &message_args[..11]).await?;
            }
        }
        let mut fetch = false;
        let mut attachments = Vec::with_capacity(msg.attachments.len());
        for a in &msg.attachments {
            let (name, mime, size, sha, state, note, source) = match a {
                InboundAttachment::Url { name, mime, url } => (name, mime, 0, "", "pending", None, Some(url.as_str())),
                InboundAttachment::Stored { name, mime, size, sha256 } => {
                    (name, mime, *size, sha256.as_str(), "ready", None, None)
                }
                InboundAttachment::Failed { name, mime, size, note } => {
                    (name, mime, *size, "", "failed", Some(note.as_str()), None)
                }
            };
            fetch |= state == "pending";
            // A name from a messenger or a site may be a path; only its base name is kept.
            let name = &safe_file_name(name);
            let att_id = new_id();
            attachments.push(Attachment {
                url: format!("/api/v1/attachments/{att_id}"),
                id: att_id.clone(),
                name: name.clone(),
                mime: mime.clone(),
                size,
                sha256: sha.to_string(),
                state: state.to_string(),
                note: note.map(str::to_string),
                source_url: source.map(str::to_string),
                message_id: Some(id.as_str().into()),
            });
            c.exec(
                "INSERT INTO attachments (id, message_id, name, mime, size, sha256, state, note, source_url, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            args![&att_id, &id, name, mime, size, sha, state, note, source, now]).await?;
        }
        let message = Message {
            id: id.as_str().into(),
            conversation_id: conversation_id.as_str().into(),
            contact_id: contact_id.as_str().into(),
            channel_id: msg.channel_id.clone(),
            direction: Direction::In,
            text: msg.text.clone(),
            attachments,
            buttons: Vec::new(),
            status: MessageStatus::Received,
            error: None,
            external_id: Some(msg.external_id.clone()),
            button_data: msg.button_data.clone(),
            button_label,
            reply_to,
            edited: false,
            author,
            created_at: now,
            updated_at: now,
        };
        // An answer to a notification: stored against its event and told to the business system.
        let mut answer = None;
        if let Some(r) = &message.reply_to {
            if let Some(row) = c.row("SELECT event_id FROM event_deliveries WHERE message_id = $1", args![r]).await? {
                let event_id = row.s("event_id")?;
                let value = match &msg.button_data {
                    Some(d) => d.strip_prefix("answer:").unwrap_or(d).to_string(),
                    None => msg.text.clone().unwrap_or_default(),
                };
                c.exec(
                    "INSERT INTO answers (id, event_id, contact_id, message_id, value, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    args![new_id(), &event_id, &contact_id, &id, &value, now],
                )
                .await?;
                answer = Some((event_id, value));
            }
        }
        let mut event_data = message_event_data(&message);
        if let (Some(context), Value::Object(d)) = (&msg.context, &mut event_data) {
            d.insert("context".into(), context.clone());
        }
        if let (Some((event_id, value)), Value::Object(d)) = (answer, &mut event_data) {
            d.insert("event_id".into(), json!(event_id));
            d.insert("answer".into(), json!(value));
        }
        // An answer to a broadcast; an opt-out or opt-in the engine read from the message.
        let reaction = crate::broadcasts::on_inbound(c, &message, &msg.sender, msg.subscription.as_ref()).await?;
        if let (Some((broadcast_id, value)), Value::Object(d)) = (&reaction.answer, &mut event_data) {
            d.insert("broadcast_id".into(), json!(broadcast_id));
            d.insert("answer".into(), json!(value));
        }
        if fetch {
            insert_job(c, JobKind::FetchAttachments, &id, None, now).await?;
        } else if known.hooks {
            emit(c, inbound_event(&message), event_data).await?;
        }
        if reopened {
            let conv = load_conversation(c, &conversation_id).await?;
            emit(c, EventType::ConversationUpdated, conversation_event_data(&conv)).await?;
        }
        // The bot's turn, when the engine gave it one, is queued with the message, so a crash
        // right after the acknowledgement loses neither. An answer to a running survey goes to
        // the survey instead (queued the same way); an opt-out or opt-in was answered above.
        let private = !msg.sender.is_group;
        let running = known.identity.as_ref().map(|_| known.surveying);
        if private && !reaction.handled && crate::surveys::takes_inbound(c, &contact_id, msg, running).await? {
            insert_job(c, JobKind::SurveyAnswer, &id, Some(&conversation_id), now).await?;
        } else if msg.bot_turn && private && !reaction.handled {
            insert_job(c, JobKind::BotStep, &id, Some(&conversation_id), now).await?;
        }
        Ok(Inbound { message, duplicate: false })
    }
}
