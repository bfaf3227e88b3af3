//! What a channel adapter keeps while it receives and sends: the lease on polling a channel
//! (one poller per channel across okno's processes) and the poller's cursor; short tokens for
//! button data too long for the platform; and what the platform tells of people, chats and
//! messages after the fact (an edit, a block, a group's new id, a message's buttons or
//! sending options changed).

use async_trait::async_trait;
use okno_domain::ids::{ChannelId, ConversationId, MessageId};
use okno_domain::model::{EventType, Keyboard, Message, MessageStatus};
use okno_domain::time::now_ms;
use okno_domain::{Error, Result};
use serde_json::Value;

use crate::conversations::{load_message, message_event_data};
use crate::db::{args, Conn};
use crate::notifications::fall_back;
use crate::outbox::status_event_data;
use crate::sql::{on, SqlStore};
use crate::statements::to_json;
use crate::webhooks::{deliver, emit, subscribers};

/// Receiving state of a channel (pollers) and platform details.
#[async_trait]
pub trait ReceivingStore: Send + Sync + 'static {
    /// Takes (or renews) the lease on polling a channel; `false` when another owner holds it.
    async fn take_channel_lease(&self, channel_id: &ChannelId, owner: &str, lease_ms: i64) -> Result<bool>;
    async fn drop_channel_lease(&self, channel_id: &ChannelId, owner: &str) -> Result<()>;
    /// Where a poller goes on from, as its platform wrote it (none: from the start).
    async fn poll_cursor(&self, channel_id: &ChannelId) -> Result<Option<String>>;
    async fn set_poll_cursor(&self, channel_id: &ChannelId, cursor: &str) -> Result<()>;
    /// A short token standing for button data too long for the platform (same data, same token).
    async fn callback_token(&self, channel_id: &ChannelId, data: &str) -> Result<String>;
    async fn callback_data(&self, channel_id: &ChannelId, token: &str) -> Result<Option<String>>;
    /// An inbound message was edited: updates its text and marks it edited (emits `message.edited`).
    async fn record_edit(
        &self,
        channel_id: &ChannelId,
        user_id: &str,
        external_id: &str,
        text: Option<String>,
    ) -> Result<Option<Message>>;
    /// The person blocked (or unblocked) the channel.
    async fn set_identity_blocked(&self, channel_id: &ChannelId, user_id: &str, blocked: bool) -> Result<()>;
    /// A chat got a new id (a Telegram group upgraded to a supergroup).
    async fn move_chat(&self, channel_id: &ChannelId, from: &str, to: &str) -> Result<()>;
    /// Replaces a message's sending options (e.g. how many parts are already delivered).
    async fn set_message_options(&self, message_id: &MessageId, options: Value) -> Result<()>;
    /// Replaces a message's buttons (after the platform changed them).
    async fn set_message_buttons(&self, message_id: &MessageId, buttons: Keyboard) -> Result<Message>;
    /// Applies delivery receipts for messages okno sent on a channel (named by the platform's
    /// id), in one transaction. A status only moves forward — `sent` → `delivered` → `read`,
    /// `failed` while not yet delivered — so a receipt repeated or arriving out of order changes
    /// nothing. Each change emits `message.status`; a failure falls back to the person's next
    /// channel like a refused send. Returns the ids of the messages changed.
    async fn record_receipts(&self, channel_id: &ChannelId, receipts: Vec<Receipt>) -> Result<Vec<MessageId>>;
    /// What the conversation is about on its platform (an Avito ad), as its latest inbound
    /// message that said so named it.
    async fn platform_context(&self, conversation_id: &ConversationId) -> Result<Option<Value>>;
    /// Marks the identity a sent message (named by its platform id) went to as blocked: the
    /// address does not exist. The person writing from it again unblocks it.
    async fn block_recipient(&self, channel_id: &ChannelId, external_id: &str) -> Result<()>;
}

/// A platform's word on a message okno sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub external_id: String,
    pub status: MessageStatus,
    /// Why it failed, in the platform's words.
    pub reason: Option<String>,
}

/// The statuses a message may have for a receipt to move it to `status` (`None`: a status no
/// receipt sets).
fn moves_from(status: MessageStatus) -> Option<&'static str> {
    match status {
        MessageStatus::Sent => Some("'queued'"),
        MessageStatus::Delivered => Some("'queued', 'sent'"),
        MessageStatus::Read => Some("'queued', 'sent', 'delivered'"),
        MessageStatus::Failed => Some("'queued', 'sent'"),
        MessageStatus::Received | MessageStatus::Queued => None,
    }
}

#[async_trait]
impl ReceivingStore for SqlStore {
    async fn take_channel_lease(&self, channel_id: &ChannelId, owner: &str, lease_ms: i64) -> Result<bool> {
        let (channel_id, owner) = (channel_id.to_owned(), owner.to_owned());
        on!(self.write, |c| {
            let now = now_ms();
            let n = c
                .exec(
                    "INSERT INTO channel_state (channel_id, lease_owner, lease_until) VALUES ($1, $2, $3) \
                     ON CONFLICT (channel_id) DO UPDATE SET lease_owner = $2, lease_until = $3 \
                     WHERE channel_state.lease_owner = $2 OR channel_state.lease_owner IS NULL \
                        OR channel_state.lease_until IS NULL OR channel_state.lease_until < $4",
                    args![&channel_id, &owner, now + lease_ms, now],
                )
                .await?;
            Ok(n > 0)
        })
    }

    async fn drop_channel_lease(&self, channel_id: &ChannelId, owner: &str) -> Result<()> {
        let (channel_id, owner) = (channel_id.to_owned(), owner.to_owned());
        on!(self.write, |c| {
            c.exec(
                "UPDATE channel_state SET lease_owner = NULL, lease_until = NULL WHERE channel_id = $1 AND lease_owner = $2",
                args![&channel_id, &owner],
            )
            .await?;
            Ok(())
        })
    }

    async fn poll_cursor(&self, channel_id: &ChannelId) -> Result<Option<String>> {
        let channel_id = channel_id.to_owned();
        on!(self.read, |c| {
            let row = c.row("SELECT poll_cursor FROM channel_state WHERE channel_id = $1", args![&channel_id]).await?;
            row.map_or(Ok(None), |r| r.os("poll_cursor"))
        })
    }

    async fn set_poll_cursor(&self, channel_id: &ChannelId, cursor: &str) -> Result<()> {
        let (channel_id, cursor) = (channel_id.to_owned(), cursor.to_owned());
        on!(self.write, |c| {
            c.exec(
                "INSERT INTO channel_state (channel_id, poll_cursor) VALUES ($1, $2) \
                 ON CONFLICT (channel_id) DO UPDATE SET poll_cursor = $2",
                args![&channel_id, &cursor],
            )
            .await?;
            Ok(())
        })
    }

    async fn callback_token(&self, channel_id: &ChannelId, data: &str) -> Result<String> {
        let (channel_id, data) = (channel_id.to_owned(), data.to_owned());
        on!(self.write, |c| {
            let hash = okno_domain::signing::sha256_hex(data.as_bytes());
            let known = c
                .row(
                    "SELECT token, data FROM callback_tokens WHERE channel_id = $1 AND data_hash = $2",
                    args![&channel_id, &hash],
                )
                .await?;
            if let Some(row) = known {
                return row.s("token");
            }
            let token = okno_domain::ids::random_hex(8);
            c.exec(
                "INSERT INTO callback_tokens (token, channel_id, data_hash, data, created_at) VALUES ($1, $2, $3, $4, $5)",
                args![&token, &channel_id, &hash, &data, now_ms()],
            )
            .await?;
            Ok(token)
        })
    }

    async fn callback_data(&self, channel_id: &ChannelId, token: &str) -> Result<Option<String>> {
        let (channel_id, token) = (channel_id.to_owned(), token.to_owned());
        on!(self.read, |c| {
            let row = c
                .row(
                    "SELECT data FROM callback_tokens WHERE channel_id = $1 AND token = $2",
                    args![&channel_id, &token],
                )
                .await?;
            row.map(|r| r.s("data")).transpose()
        })
    }

    async fn record_edit(
        &self,
        channel_id: &ChannelId,
        user_id: &str,
        external_id: &str,
        text: Option<String>,
    ) -> Result<Option<Message>> {
        let dedup = format!("{user_id}:{external_id}");
        let channel_id = channel_id.to_owned();
        on!(self.write, |c| {
            let row = c
                .row("SELECT id FROM messages WHERE channel_id = $1 AND dedup_key = $2", args![&channel_id, &dedup])
                .await?;
            let Some(row) = row else { return Ok(None) };
            let id = row.s("id")?;
            c.exec(
                "UPDATE messages SET text = $1, edited = 1, updated_at = $2 WHERE id = $3",
                args![&text, now_ms(), &id],
            )
            .await?;
            crate::search::reindex(c, &id, text.as_deref()).await?;
            let m = load_message(c, &id).await?;
            emit(c, EventType::MessageEdited, message_event_data(&m)).await?;
            Ok(Some(m))
        })
    }

    async fn set_identity_blocked(&self, channel_id: &ChannelId, user_id: &str, blocked: bool) -> Result<()> {
        let (channel_id, user_id) = (channel_id.to_owned(), user_id.to_owned());
        on!(self.write, |c| {
            c.exec(
                "UPDATE identities SET blocked = $1 WHERE channel_id = $2 AND user_id = $3",
                args![i64::from(blocked), &channel_id, &user_id],
            )
            .await?;
            Ok(())
        })
    }

    async fn move_chat(&self, channel_id: &ChannelId, from: &str, to: &str) -> Result<()> {
        let (channel_id, from, to) = (channel_id.to_owned(), from.to_owned(), to.to_owned());
        on!(self.write, |c| {
            // A group's identity is the group itself, so its user id moves along with the chat. An
            // identity already made for the new id (from a message that arrived first) gives way.
            c.exec(
                "DELETE FROM identities WHERE channel_id = $1 AND user_id = $2 AND user_id <> $3 \
                 AND EXISTS (SELECT 1 FROM identities o WHERE o.channel_id = $1 AND o.chat_id = $3)",
                args![&channel_id, &to, &from],
            )
            .await?;
            c.exec(
                "UPDATE identities SET chat_id = $1, user_id = CASE WHEN user_id = $2 THEN $1 ELSE user_id END \
                 WHERE channel_id = $3 AND chat_id = $2",
                args![&to, &from, &channel_id],
            )
            .await?;
            Ok(())
        })
    }

    async fn set_message_options(&self, message_id: &MessageId, options: Value) -> Result<()> {
        let message_id = message_id.to_owned();
        on!(self.write, |c| {
            c.exec("UPDATE messages SET options = $1 WHERE id = $2", args![to_json(&options), &message_id]).await?;
            Ok(())
        })
    }

    async fn set_message_buttons(&self, message_id: &MessageId, buttons: Keyboard) -> Result<Message> {
        let message_id = message_id.to_owned();
        on!(self.write, |c| {
            let n = c
                .exec(
                    "UPDATE messages SET buttons = $1, updated_at = $2 WHERE id = $3",
                    args![to_json(&buttons), now_ms(), &message_id],
                )
                .await?;
            if n == 0 {
                return Err(Error::not_found("message", &message_id));
            }
            load_message(c, &message_id).await
        })
    }

    async fn record_receipts(&self, channel_id: &ChannelId, receipts: Vec<Receipt>) -> Result<Vec<MessageId>> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let channel_id = channel_id.to_owned();
        on!(self.write, |c| apply_receipts(c, &channel_id, &receipts, true).await)
    }

    async fn block_recipient(&self, channel_id: &ChannelId, external_id: &str) -> Result<()> {
        let (channel_id, external_id) = (channel_id.to_owned(), external_id.to_owned());
        on!(self.write, |c| {
            c.exec(
                "UPDATE identities SET blocked = 1 WHERE id IN (SELECT i.id FROM messages m JOIN identities i \
                 ON i.contact_id = m.contact_id AND i.channel_id = m.channel_id \
                 WHERE m.channel_id = $1 AND m.external_id = $2 AND m.direction = 'out')",
                args![&channel_id, &external_id],
            )
            .await?;
            Ok(())
        })
    }

    async fn platform_context(&self, conversation_id: &ConversationId) -> Result<Option<Value>> {
        let conversation_id = conversation_id.to_owned();
        on!(self.read, |c| {
            let row = c
                .row(
                    "SELECT options FROM messages WHERE conversation_id = $1 AND direction = 'in' AND options <> '{}' \
                     ORDER BY created_at DESC, id DESC LIMIT 1",
                    args![&conversation_id],
                )
                .await?;
            Ok(match row {
                Some(r) => r.js("options")?.get("context").cloned(),
                None => None,
            })
        })
    }
}

/// How long a receipt for a platform id okno has not written yet waits for it.
const PENDING_RECEIPT_MS: i64 = 10 * 60 * 1000;

/// Applies receipts to the messages of a channel they name (see
/// `ReceivingStore::record_receipts`). With `keep_unknown`, a receipt naming a platform id no
/// message has yet waits in `pending_receipts` for the send that will write it.
pub(crate) async fn apply_receipts(
    c: &mut dyn Conn,
    channel_id: &ChannelId,
    receipts: &[Receipt],
    keep_unknown: bool,
) -> Result<Vec<MessageId>> {
    let now = now_ms();
    let mut changed: Vec<(MessageId, MessageStatus)> = Vec::new();
    let mut kept = false;
    for r in receipts {
        let Some(from) = moves_from(r.status) else { continue };
        let error = (r.status == MessageStatus::Failed)
            .then(|| r.reason.clone().unwrap_or_else(|| "the platform reported the message failed".into()));
        let rows = c
            .rows(
                &format!(
                    "UPDATE messages SET status = $1, error = $2, updated_at = $3 \
                     WHERE channel_id = $4 AND external_id = $5 AND direction = 'out' AND status IN ({from}) \
                     RETURNING id"
                ),
                args![r.status.as_str(), error, now, channel_id, &r.external_id],
            )
            .await?;
        if rows.is_empty() && keep_unknown {
            let known = c
                .row(
                    "SELECT 1 AS one FROM messages WHERE channel_id = $1 AND external_id = $2 LIMIT 1",
                    args![channel_id, &r.external_id],
                )
                .await?
                .is_some();
            if !known {
                c.exec(
                    "INSERT INTO pending_receipts (channel_id, external_id, status, reason, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                    args![channel_id, &r.external_id, r.status.as_str(), &r.reason, now],
                )
                .await?;
                kept = true;
            }
        }
        for row in rows {
            changed.push((MessageId::from(row.s("id")?), r.status));
        }
    }
    if kept {
        c.exec("DELETE FROM pending_receipts WHERE created_at < $1", args![now - PENDING_RECEIPT_MS]).await?;
    }
    let hooks = if changed.is_empty() { Vec::new() } else { subscribers(c, EventType::MessageStatus).await? };
    for (id, status) in &changed {
        if hooks.is_empty() && *status != MessageStatus::Failed {
            continue;
        }
        let m = load_message(c, id).await?;
        if !hooks.is_empty() {
            deliver(c, &hooks, EventType::MessageStatus, status_event_data(&m)).await?;
        }
        if *status == MessageStatus::Failed {
            fall_back(c, &m).await?;
        }
    }
    Ok(changed.into_iter().map(|(id, _)| id).collect())
}

/// Applies the receipts that came before the sends of `ids` wrote their platform ids.
pub(crate) async fn apply_pending_receipts(c: &mut dyn Conn, ids: &[&str]) -> Result<()> {
    if ids.is_empty() || c.row("SELECT 1 AS one FROM pending_receipts LIMIT 1", args![]).await?.is_none() {
        return Ok(());
    }
    let mut waiting: Vec<(ChannelId, Receipt)> = Vec::new();
    for id in ids {
        let rows = c
            .rows(
                "SELECT p.channel_id, p.external_id, p.status, p.reason FROM pending_receipts p \
                 JOIN messages m ON m.channel_id = p.channel_id AND m.external_id = p.external_id \
                 WHERE m.id = $1 ORDER BY p.created_at",
                args![*id],
            )
            .await?;
        for r in rows {
            let status = MessageStatus::parse(&r.s("status")?)?;
            waiting.push((
                ChannelId::from(r.s("channel_id")?),
                Receipt { external_id: r.s("external_id")?, status, reason: r.os("reason")? },
            ));
        }
    }
    for (channel_id, receipt) in waiting {
        c.exec(
            "DELETE FROM pending_receipts WHERE channel_id = $1 AND external_id = $2",
            args![&channel_id, &receipt.external_id],
        )
        .await?;
        apply_receipts(c, &channel_id, std::slice::from_ref(&receipt), false).await?;
    }
    Ok(())
}
