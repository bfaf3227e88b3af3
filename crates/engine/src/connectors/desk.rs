//! A business system's own desk answering okno's conversations: amoCRM's chats, Bitrix24's
//! Open Lines. A company chooses per channel whose window its operators answer in; for the
//! channels a desk answers, okno carries the people's messages into the desk and the desk's
//! answers back out to the people's messengers.
//!
//! ```text
//!  a person writes (Telegram, MAX, WhatsApp…) ─► okno stores it as always
//!  the connector's standing job ─► the messages of the desk's channels since the kept place
//!      ─► the kind puts each into the desk (okno's message id makes a repeat the same message)
//!      ─► the place kept after each
//!  an agent answers in the desk ─► the desk's webhook ─► desk_reply: an outbound message in
//!      the conversation, stored (once per desk message id) before the desk is answered ─►
//!      the person's channel ─► the kind tells the desk it was delivered
//! ```

use okno_domain::ids::{ChannelId, ConversationId, MessageId};
use okno_domain::model::{Connector, Contact, Direction, Keyboard, Message};
use okno_domain::time::now_ms;
use okno_domain::{Error, Result};
use okno_store::{JobKind, OutboundRequest, Recipient};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::Engine;

/// Messages younger than this are left for the next look: a transaction that began earlier
/// may still be committing one with an earlier time.
const SETTLE_MS: i64 = 2_000;
/// The most messages one look carries.
const SLICE: u32 = 100;

/// Which of okno's channels a desk answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskChannels {
    pub channels: Vec<String>,
}

/// A person's message to put into the desk, with who wrote it.
#[derive(Debug, Clone)]
pub(crate) struct ToDesk {
    pub message: Message,
    pub contact: Contact,
}

impl ToDesk {
    /// The person's name as the desk shows it.
    pub fn name(&self) -> String {
        self.contact
            .name
            .clone()
            .or_else(|| self.contact.identities.iter().find_map(|i| i.display_name.clone()))
            .or_else(|| self.contact.phone.clone())
            .unwrap_or_else(|| format!("okno {}", &self.contact.id.as_str()[..8.min(self.contact.id.as_str().len())]))
    }

    /// The text the desk shows: the message's, with its files named.
    pub fn text(&self) -> String {
        let mut parts: Vec<String> = self.message.text.iter().cloned().collect();
        if let Some(b) = &self.message.button_label {
            if self.message.text.is_none() {
                parts.push(format!("[{b}]"));
            }
        }
        parts.extend(self.message.attachments.iter().map(|a| format!("📎 {}", a.name)));
        let t = parts.join("\n");
        if t.trim().is_empty() {
            "…".into()
        } else {
            t
        }
    }
}

/// An answer an agent wrote in the desk.
#[derive(Debug, Clone)]
pub(crate) struct DeskReply {
    pub conversation_id: ConversationId,
    pub text: String,
    /// Shown as the message's author in okno: `amoCRM: Ольга`.
    pub author: String,
    /// The desk's id of the message: the same again is stored once.
    pub key: String,
}

impl Engine {
    /// The next people's messages on `channels` after the place kept in `info[key]`, and the
    /// last message the look read (okno's own answers are read and passed over): once all of
    /// them are in the desk, the place moves after it.
    pub(crate) async fn desk_slice(
        &self,
        connector: &Connector,
        key: &str,
        channels: &[String],
    ) -> Result<(Vec<ToDesk>, Option<Message>)> {
        let place = connector.info.get(key);
        let after = (
            place.and_then(|p| p.get("at")).and_then(Value::as_i64).unwrap_or(connector.created_at),
            place.and_then(|p| p.get("id")).and_then(Value::as_str).unwrap_or("").to_string(),
        );
        let channels: Vec<ChannelId> = channels.iter().map(|c| ChannelId::from(c.as_str())).collect();
        let messages = self.store.messages_on_channels(&channels, after, now_ms() - SETTLE_MS, SLICE).await?;
        let last = messages.last().cloned();
        let mut out = Vec::with_capacity(messages.len());
        for message in messages {
            if message.direction != Direction::In {
                continue;
            }
            let contact = match self.store.get_contact(&message.contact_id).await {
                Ok(c) => c,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            out.push(ToDesk { message, contact });
        }
        Ok((out, last))
    }

    /// Keeps the place after `message` (it is in the desk now, or passed over).
    pub(crate) async fn desk_passed(&self, connector: &Connector, key: &str, message: &Message) -> Result<Connector> {
        self.keep_place(connector, key, json!({"at": message.created_at, "id": message.id})).await
    }

    /// An agent's answer from the desk: an outbound message in the conversation, once per
    /// desk message id, on the channel the person last wrote from; a `ConnectorEvent` job
    /// (`<id>:delivery:<okno message id>:<desk message id>`) tells the desk how it went.
    pub(crate) async fn desk_reply(&self, connector: &Connector, reply: DeskReply) -> Result<Message> {
        if reply.text.trim().is_empty() {
            return Err(Error::invalid("empty_reply", "the desk's answer has no text"));
        }
        let conversation = self.store.get_conversation(&reply.conversation_id).await?;
        let req = OutboundRequest {
            to: Recipient::Conversation(conversation.id.clone()),
            channel_id: None,
            text: Some(reply.text.clone()),
            buttons: Keyboard::default(),
            attachment_ids: Vec::new(),
            idempotency_key: Some(format!("desk:{}:{}", connector.id, reply.key)),
            author: Some(reply.author.clone()),
            reply_to: None,
            options: json!({}),
        };
        let (message, duplicate) = self.send(req).await?;
        if !duplicate {
            let what = format!("{}:delivery:{}:{}", connector.id, message.id, reply.key);
            let queue = format!("connector:{}:delivery", connector.id);
            self.store.queue_job(JobKind::ConnectorEvent, &what, Some(&queue)).await?;
            self.wake();
        }
        Ok(message)
    }

    /// How an answer from the desk went: `None` while it is still on its way.
    pub(crate) async fn desk_delivery(&self, message_id: &str) -> Result<Option<std::result::Result<(), String>>> {
        let m = match self.store.get_message(&MessageId::from(message_id)).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(Some(Err("the message is gone".into()))),
            Err(e) => return Err(e),
        };
        use okno_domain::model::MessageStatus as S;
        Ok(match m.status {
            S::Sent | S::Delivered | S::Read => Some(Ok(())),
            S::Failed => Some(Err(m.error.unwrap_or_else(|| "not delivered".into()))),
            _ => None,
        })
    }
}
