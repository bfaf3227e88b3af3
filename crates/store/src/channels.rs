//! Channels: the messengers and endpoints okno speaks through, each with its configuration
//! (its secrets sealed as it is kept, opened as it is read) and what the platform says of it
//! (`info`, a status). A deleted channel stays in the database, since its messages name it,
//! but is no longer found or listed.

use async_trait::async_trait;
use okno_domain::ids::{new_id, ChannelId};
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::time::now_ms;
use okno_domain::{Error, Result};
use serde_json::Value;

use crate::db::{args, Conn, Row};
use crate::sql::{on, SqlStore};
use crate::statements::{to_json, Sql};
use crate::{ChannelPatch, NewChannel};

/// Channels: connecting, reading, changing and removing them.
#[async_trait]
pub trait ChannelStore: Send + Sync + 'static {
    async fn create_channel(&self, new: NewChannel) -> Result<Channel>;
    async fn get_channel(&self, id: &ChannelId) -> Result<Channel>;
    async fn list_channels(&self) -> Result<Vec<Channel>>;
    async fn update_channel(&self, id: &ChannelId, patch: ChannelPatch) -> Result<Channel>;
    async fn delete_channel(&self, id: &ChannelId) -> Result<()>;
}

#[async_trait]
impl ChannelStore for SqlStore {
    async fn create_channel(&self, new: NewChannel) -> Result<Channel> {
        let new = NewChannel { config: self.sealed_config(&new.config)?, ..new };
        let channel = on!(self.write, |c| {
            let id = new_id();
            let now = now_ms();
            c.exec(
                "INSERT INTO channels (id, kind, name, config, info, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            args![&id, new.kind.as_str(), &new.name, to_json(&new.config), to_json(&new.info), now]).await?;
            load_channel(c, &id).await
        })?;
        self.opened(channel)
    }

    async fn get_channel(&self, id: &ChannelId) -> Result<Channel> {
        let id = id.to_owned();
        let channel = on!(self.read, |c| {
            let id = id.as_str();
            load_channel(c, id).await
        })?;
        self.opened(channel)
    }

    async fn list_channels(&self) -> Result<Vec<Channel>> {
        let channels: Vec<Channel> = on!(self.read, |c| {
            c.rows(&format!("SELECT {CHANNEL_COLS} FROM channels WHERE deleted = 0 ORDER BY id"), args![])
                .await?
                .iter()
                .map(channel_from)
                .collect()
        })?;
        channels.into_iter().map(|ch| self.opened(ch)).collect()
    }

    async fn update_channel(&self, id: &ChannelId, patch: ChannelPatch) -> Result<Channel> {
        let id = id.to_owned();
        let config = patch.config.as_ref().map(|c| self.sealed_config(c)).transpose()?;
        let patch = ChannelPatch { config, ..patch };
        let channel = on!(self.write, |c| {
            let id = id.as_str();
            let changes = Changes {
                name: patch.name.as_ref(),
                config: patch.config.as_ref(),
                info: patch.info.as_ref(),
                status: patch.status.as_ref(),
            };
            if update_row(c, "channels", id, changes).await? == 0 {
                return Err(Error::not_found("channel", id));
            }
            let channel = load_channel(c, id).await?;
            Ok(channel)
        })?;
        self.opened(channel)
    }

    async fn delete_channel(&self, id: &ChannelId) -> Result<()> {
        let id = id.to_owned();
        on!(self.write, |c| {
            let id = id.as_str();
            let done = c
                .exec(
                    "UPDATE channels SET deleted = 1, updated_at = $1 WHERE id = $2 AND deleted = 0",
                    args![now_ms(), id],
                )
                .await?;
            if done == 0 {
                return Err(Error::not_found("channel", id));
            }
            Ok(())
        })
    }
}

/// What a change to a configured row (a channel, a connector) sets; `None` keeps a field.
pub(crate) struct Changes<'a> {
    pub(crate) name: Option<&'a String>,
    pub(crate) config: Option<&'a Value>,
    pub(crate) info: Option<&'a Value>,
    /// A status and what it is about (`None` clears the detail).
    pub(crate) status: Option<&'a (String, Option<String>)>,
}

/// Applies `changes` to the row `id` of `table` (`channels` or `connectors`) that is not
/// deleted; returns the rows changed (0: none such).
pub(crate) async fn update_row(c: &mut dyn Conn, table: &str, id: &str, changes: Changes<'_>) -> Result<u64> {
    let mut q = Sql::new(&format!("UPDATE {table} SET updated_at = "));
    q.bind_i(now_ms());
    if let Some(v) = changes.name {
        q.push(", name = ").bind_s(v);
    }
    if let Some(v) = changes.config {
        q.push(", config = ").bind_s(to_json(v));
    }
    if let Some(v) = changes.info {
        q.push(", info = ").bind_s(to_json(v));
    }
    if let Some((status, detail)) = changes.status {
        q.push(", status = ").bind_s(status);
        match detail {
            Some(d) => q.push(", status_detail = ").bind_s(d),
            None => q.push(", status_detail = NULL"),
        };
    }
    q.push(" WHERE deleted = 0 AND id = ").bind_s(id);
    c.exec(&q.text, &q.args).await
}

impl SqlStore {
    /// A channel config as it is kept: its secrets sealed.
    pub(crate) fn sealed_config(&self, config: &Value) -> Result<Value> {
        match &self.sealer {
            Some(s) => s.seal_config(config),
            None => Ok(config.clone()),
        }
    }

    /// A channel as it is used: its secrets opened.
    pub(crate) fn opened(&self, mut channel: Channel) -> Result<Channel> {
        if let Some(s) = &self.sealer {
            channel.config = s.open_config(&channel.config)?;
        }
        Ok(channel)
    }
}

pub(crate) const CHANNEL_COLS: &str = "id, kind, name, config, info, status, status_detail, created_at";

pub(crate) fn channel_from(row: &Row) -> Result<Channel> {
    Ok(Channel {
        id: row.id("id")?,
        kind: ChannelKind::parse(&row.s("kind")?)?,
        name: row.s("name")?,
        status: row.s("status")?,
        status_detail: row.os("status_detail")?,
        info: row.js("info")?,
        config: row.js("config")?,
        created_at: row.i("created_at")?,
    })
}

pub(crate) async fn load_channel(c: &mut dyn Conn, id: &str) -> Result<Channel> {
    let row = c
        .row(&format!("SELECT {CHANNEL_COLS} FROM channels WHERE id = $1 AND deleted = 0"), args![id])
        .await?
        .ok_or_else(|| Error::not_found("channel", id))?;
    channel_from(&row)
}
