//! What the bot engine keeps: bot definitions, each person's place in a bot, news, and the
//! relayed-question feeds (answer-by-Reply).

use async_trait::async_trait;
use okno_domain::ids::{new_id, ChannelId, ContactId, MessageId};
use okno_domain::time::{now_ms, Millis};
use okno_domain::{Error, Result};
use serde::Serialize;
use serde_json::Value;

use crate::db::{args, Conn, Row};
use crate::sql::{on, SqlStore};
use crate::JobKind;

/// A bot attached to a channel.
#[derive(Debug, Clone, Serialize)]
pub struct BotRecord {
    pub channel_id: String,
    pub name: String,
    /// The definition as the administrator wrote it (YAML or JSON).
    pub source: String,
    /// The checked definition.
    pub spec: Value,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub created_at: Millis,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub updated_at: Millis,
}

/// A news item, shown by bots to the people in its groups (everyone when it has none).
#[derive(Debug, Clone, Serialize)]
pub struct News {
    pub id: String,
    pub title: String,
    pub text: String,
    pub groups: Vec<String>,
    pub attachment_id: Option<String>,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub created_at: Millis,
    /// The API token that published it (`token:<id>`); only it and administrators withdraw it.
    pub created_by: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewNews {
    pub title: String,
    pub text: String,
    pub groups: Vec<String>,
    pub attachment_id: Option<String>,
    /// Who publishes it (`token:<id>`).
    pub created_by: Option<String>,
}

/// One question relayed to one feed recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Relay {
    pub id: String,
    pub channel_id: ChannelId,
    pub feed: String,
    /// The asker's message.
    pub question_id: MessageId,
    pub asker_contact_id: ContactId,
    pub asker_channel_id: ChannelId,
    pub recipient_contact_id: ContactId,
    /// okno's message carrying the question in the recipient's chat.
    pub relay_message_id: MessageId,
    pub answered_at: Option<Millis>,
    pub created_at: Millis,
}

/// The bot engine's storage.
#[async_trait]
pub trait BotStore: Send + Sync + 'static {
    /// Attaches (or replaces) the bot of a channel.
    async fn put_bot(&self, channel_id: &str, name: &str, source: &str, spec: Value) -> Result<BotRecord>;
    async fn get_bot(&self, channel_id: &str) -> Result<BotRecord>;
    async fn list_bots(&self) -> Result<Vec<BotRecord>>;
    async fn delete_bot(&self, channel_id: &str) -> Result<()>;
    /// A person's saved place in a channel's bot, with when it was saved.
    async fn bot_session(&self, channel_id: &str, user_id: &str) -> Result<Option<(Value, Millis)>>;
    async fn save_bot_session(&self, channel_id: &str, user_id: &str, state: Value) -> Result<()>;
    /// Queues the bot's turn for an inbound message, ordered with the conversation's sends.
    async fn queue_bot_step(&self, message_id: &str, conversation_id: &str) -> Result<()>;
    async fn create_news(&self, news: NewNews) -> Result<News>;
    /// The newest news first.
    async fn list_news(&self, limit: u32) -> Result<Vec<News>>;
    async fn get_news(&self, id: &str) -> Result<News>;
    async fn delete_news(&self, id: &str) -> Result<()>;
    async fn add_relay(&self, relay: Relay) -> Result<()>;
    /// The relay whose message in a recipient's chat is `relay_message_id`.
    async fn relay_by_message(&self, relay_message_id: &str) -> Result<Option<Relay>>;
    /// Marks every relay of a question answered; returns how many were still open.
    async fn answer_question(&self, question_id: &str) -> Result<u64>;
    /// A recipient's unanswered relays in a feed, oldest first.
    async fn open_relays(&self, channel_id: &str, feed: &str, recipient_contact_id: &str) -> Result<Vec<Relay>>;
}

const BOT_COLS: &str = "channel_id, name, source, spec, created_at, updated_at";

fn bot_from(row: &Row) -> Result<BotRecord> {
    Ok(BotRecord {
        channel_id: row.s("channel_id")?,
        name: row.s("name")?,
        source: row.s("source")?,
        spec: row.js("spec")?,
        created_at: row.i("created_at")?,
        updated_at: row.i("updated_at")?,
    })
}

async fn load_bot(c: &mut dyn Conn, channel_id: &str) -> Result<BotRecord> {
    let row = c
        .row(&format!("SELECT {BOT_COLS} FROM bots WHERE channel_id = $1"), args![channel_id])
        .await?
        .ok_or_else(|| Error::not_found("bot", channel_id))?;
    bot_from(&row)
}

fn news_from(row: &Row) -> Result<News> {
    Ok(News {
        id: row.s("id")?,
        title: row.s("title")?,
        text: row.s("text")?,
        groups: serde_json::from_value(row.js("groups")?).unwrap_or_default(),
        attachment_id: row.os("attachment_id")?,
        created_at: row.i("created_at")?,
        created_by: row.os("created_by")?,
    })
}

const RELAY_COLS: &str = "id, channel_id, feed, question_id, asker_contact_id, asker_channel_id, \
     recipient_contact_id, relay_message_id, answered_at, created_at";

fn relay_from(row: &Row) -> Result<Relay> {
    Ok(Relay {
        id: row.s("id")?,
        channel_id: row.id("channel_id")?,
        feed: row.s("feed")?,
        question_id: row.id("question_id")?,
        asker_contact_id: row.id("asker_contact_id")?,
        asker_channel_id: row.id("asker_channel_id")?,
        recipient_contact_id: row.id("recipient_contact_id")?,
        relay_message_id: row.id("relay_message_id")?,
        answered_at: row.oi("answered_at")?,
        created_at: row.i("created_at")?,
    })
}

#[async_trait]
impl BotStore for SqlStore {
    async fn put_bot(&self, channel_id: &str, name: &str, source: &str, spec: Value) -> Result<BotRecord> {
        let (channel_id, name, source) = (channel_id.to_owned(), name.to_owned(), source.to_owned());
        on!(self.write, |c| {
            let known = c.row("SELECT id FROM channels WHERE id = $1 AND deleted = 0", args![&channel_id]).await?;
            if known.is_none() {
                return Err(Error::not_found("channel", &channel_id));
            }
            let now = now_ms();
            c.exec(
                "INSERT INTO bots (channel_id, name, source, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (channel_id) DO UPDATE SET name = $2, source = $3, spec = $4, updated_at = $5",
                args![&channel_id, &name, &source, spec.to_string(), now],
            )
            .await?;
            load_bot(c, &channel_id).await
        })
    }

    async fn get_bot(&self, channel_id: &str) -> Result<BotRecord> {
        let channel_id = channel_id.to_owned();
        on!(self.read, |c| load_bot(c, &channel_id).await)
    }

    async fn list_bots(&self) -> Result<Vec<BotRecord>> {
        on!(self.read, |c| {
            c.rows(&format!("SELECT {BOT_COLS} FROM bots ORDER BY name, channel_id"), args![])
                .await?
                .iter()
                .map(bot_from)
                .collect()
        })
    }

    async fn delete_bot(&self, channel_id: &str) -> Result<()> {
        let channel_id = channel_id.to_owned();
        on!(self.write, |c| {
            if c.exec("DELETE FROM bots WHERE channel_id = $1", args![&channel_id]).await? == 0 {
                return Err(Error::not_found("bot", &channel_id));
            }
            c.exec("DELETE FROM bot_sessions WHERE channel_id = $1", args![&channel_id]).await?;
            Ok(())
        })
    }

    async fn bot_session(&self, channel_id: &str, user_id: &str) -> Result<Option<(Value, Millis)>> {
        let (channel_id, user_id) = (channel_id.to_owned(), user_id.to_owned());
        on!(self.read, |c| {
            match c
                .row(
                    "SELECT state, updated_at FROM bot_sessions WHERE channel_id = $1 AND user_id = $2",
                    args![&channel_id, &user_id],
                )
                .await?
            {
                Some(r) => Ok(Some((r.js("state")?, r.i("updated_at")?))),
                None => Ok(None),
            }
        })
    }

    async fn save_bot_session(&self, channel_id: &str, user_id: &str, state: Value) -> Result<()> {
        let (channel_id, user_id) = (channel_id.to_owned(), user_id.to_owned());
        on!(self.write, |c| {
            c.exec(
                "INSERT INTO bot_sessions (channel_id, user_id, state, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (channel_id, user_id) DO UPDATE SET state = $3, updated_at = $4",
                args![&channel_id, &user_id, state.to_string(), now_ms()],
            )
            .await?;
            Ok(())
        })
    }

    async fn queue_bot_step(&self, message_id: &str, conversation_id: &str) -> Result<()> {
        let (message_id, conversation_id) = (message_id.to_owned(), conversation_id.to_owned());
        on!(self.write, |c| {
            let now = now_ms();
            c.exec(
                "INSERT INTO jobs (kind, ref_id, queue_key, run_at, created_at) VALUES ($1, $2, $3, $4, $4)",
                args![JobKind::BotStep.as_str(), &message_id, &conversation_id, now],
            )
            .await?;
            Ok(())
        })
    }

    async fn create_news(&self, news: NewNews) -> Result<News> {
        on!(self.write, |c| {
            let id = new_id();
            c.exec(
                "INSERT INTO news (id, title, text, groups, attachment_id, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                args![
                    &id,
                    &news.title,
                    &news.text,
                    serde_json::to_string(&news.groups).unwrap_or_else(|_| "[]".into()),
                    &news.attachment_id,
                    now_ms(),
                    &news.created_by
                ],
            )
            .await?;
            let row = c
                .one(
                    "SELECT id, title, text, groups, attachment_id, created_at, created_by FROM news WHERE id = $1",
                    args![&id],
                )
                .await?;
            news_from(&row)
        })
    }

    async fn list_news(&self, limit: u32) -> Result<Vec<News>> {
        on!(self.read, |c| {
            c.rows(
                "SELECT id, title, text, groups, attachment_id, created_at, created_by FROM news ORDER BY created_at DESC, id DESC LIMIT $1",
                args![i64::from(limit)],
            )
            .await?
            .iter()
            .map(news_from)
            .collect()
        })
    }

    async fn get_news(&self, id: &str) -> Result<News> {
        let id = id.to_owned();
        on!(self.read, |c| {
            let row = c
                .row(
                    "SELECT id, title, text, groups, attachment_id, created_at, created_by FROM news WHERE id = $1",
                    args![&id],
                )
                .await?
                .ok_or_else(|| Error::not_found("news", &id))?;
            news_from(&row)
        })
    }

    async fn delete_news(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        on!(self.write, |c| {
            if c.exec("DELETE FROM news WHERE id = $1", args![&id]).await? == 0 {
                return Err(Error::not_found("news", &id));
            }
            Ok(())
        })
    }

    async fn add_relay(&self, r: Relay) -> Result<()> {
        on!(self.write, |c| {
            c.exec(
                &format!("INSERT INTO bot_relays ({RELAY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
                args![
                    &r.id,
                    &r.channel_id,
                    &r.feed,
                    &r.question_id,
                    &r.asker_contact_id,
                    &r.asker_channel_id,
                    &r.recipient_contact_id,
                    &r.relay_message_id,
                    r.answered_at,
                    r.created_at
                ],
            )
            .await?;
            Ok(())
        })
    }

    async fn relay_by_message(&self, relay_message_id: &str) -> Result<Option<Relay>> {
        let id = relay_message_id.to_owned();
        on!(self.read, |c| {
            c.row(&format!("SELECT {RELAY_COLS} FROM bot_relays WHERE relay_message_id = $1"), args![&id])
                .await?
                .map(|r| relay_from(&r))
                .transpose()
        })
    }

    async fn answer_question(&self, question_id: &str) -> Result<u64> {
        let id = question_id.to_owned();
        on!(self.write, |c| {
            c.exec(
                "UPDATE bot_relays SET answered_at = $1 WHERE question_id = $2 AND answered_at IS NULL",
                args![now_ms(), &id],
            )
            .await
        })
    }

    async fn open_relays(&self, channel_id: &str, feed: &str, recipient_contact_id: &str) -> Result<Vec<Relay>> {
        let (channel_id, feed, recipient) = (channel_id.to_owned(), feed.to_owned(), recipient_contact_id.to_owned());
        on!(self.read, |c| {
            c.rows(
                &format!(
                    "SELECT {RELAY_COLS} FROM bot_relays WHERE channel_id = $1 AND feed = $2 \
                     AND recipient_contact_id = $3 AND answered_at IS NULL ORDER BY created_at, id"
                ),
                args![&channel_id, &feed, &recipient],
            )
            .await?
            .iter()
            .map(relay_from)
            .collect()
        })
    }
}
