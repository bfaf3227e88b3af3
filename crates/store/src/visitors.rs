//! What a website widget's visitor may read of okno: who they are on the channel (their
//! identity, once they wrote or were linked to a customer) and their own messages on it, both
//! ways, in the order okno stored them — the history a returning visitor sees and what their
//! live stream reads after the last event it sent.

use async_trait::async_trait;
use okno_domain::ids::{ChannelId, ContactId};
use okno_domain::model::{Identity, Message};
use okno_domain::Result;

use crate::attachments::load_attachments;
use crate::contacts::{identity_from, IDENTITY_COLS};
use crate::conversations::{message_with, MESSAGE_COLS};
use crate::db::{args, Conn};
use crate::sql::{on, SqlStore};
use crate::statements::Sql;

/// Which of a visitor's messages to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisitorPage {
    /// The newest `limit`, oldest first.
    Latest,
    /// Those stored before the message with this id (older history), oldest first.
    Before(String),
    /// Those stored after the message with this id (what a stream has not sent yet).
    After(String),
}

/// A widget visitor's view of the store.
#[async_trait]
pub trait VisitorStore: Send + Sync + 'static {
    /// The identity `user_id` has on a channel, if they have one yet.
    async fn identity_on(&self, channel_id: &ChannelId, user_id: &str) -> Result<Option<Identity>>;
    /// Up to `limit` messages of `contact_id` through `channel_id` (either way), oldest first,
    /// ordered by id (ids grow with time).
    async fn visitor_messages(
        &self,
        channel_id: &ChannelId,
        contact_id: &ContactId,
        page: VisitorPage,
        limit: u32,
    ) -> Result<Vec<Message>>;
}

#[async_trait]
impl VisitorStore for SqlStore {
    async fn identity_on(&self, channel_id: &ChannelId, user_id: &str) -> Result<Option<Identity>> {
        let (channel_id, user_id) = (channel_id.to_string(), user_id.to_string());
        on!(self.read, |c| {
            let row = c
                .row(
                    &format!(
                        "SELECT {IDENTITY_COLS} FROM identities i JOIN channels ch ON ch.id = i.channel_id \
                         WHERE i.channel_id = $1 AND i.user_id = $2"
                    ),
                    args![channel_id.as_str(), user_id.as_str()],
                )
                .await?;
            row.as_ref().map(identity_from).transpose()
        })
    }

    async fn visitor_messages(
        &self,
        channel_id: &ChannelId,
        contact_id: &ContactId,
        page: VisitorPage,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let (channel_id, contact_id) = (channel_id.to_string(), contact_id.to_string());
        let limit = i64::from(limit.clamp(1, 500));
        on!(self.read, |c| {
            // Through the contact's conversations: messages are indexed by conversation.
            let mut q = Sql::new(&format!(
                "SELECT {MESSAGE_COLS} FROM messages WHERE conversation_id IN \
                 (SELECT id FROM conversations WHERE contact_id = "
            ));
            q.bind_s(contact_id.as_str()).push(") AND channel_id = ").bind_s(channel_id.as_str());
            let newest_first = match &page {
                VisitorPage::Latest => true,
                VisitorPage::Before(id) => {
                    q.push(" AND id < ").bind_s(id.as_str());
                    true
                }
                VisitorPage::After(id) => {
                    q.push(" AND id > ").bind_s(id.as_str());
                    false
                }
            };
            q.push(if newest_first { " ORDER BY id DESC LIMIT " } else { " ORDER BY id LIMIT " }).bind_i(limit);
            let rows = c.rows(&q.text, &q.args).await?;
            let mut items = Vec::with_capacity(rows.len());
            for row in &rows {
                let attachments = load_attachments(c, &row.s("id")?).await?;
                items.push(message_with(row, attachments)?);
            }
            if newest_first {
                items.reverse();
            }
            Ok(items)
        })
    }
}
