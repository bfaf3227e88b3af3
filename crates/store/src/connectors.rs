//! Connectors: okno's connections to business systems (an amoCRM account, a Bitrix24 portal,
//! a 1C base), each with its configuration (its secrets sealed as it is kept, opened as it is
//! read, like a channel's) and what the system says of it (`info`, a status). A deleted
//! connector stays in the database but is no longer found or listed.

use async_trait::async_trait;
use okno_domain::ids::{new_id, ConnectorId};
use okno_domain::model::{Connector, ConnectorKind};
use okno_domain::time::now_ms;
use okno_domain::{Error, Result};
use serde_json::Value;

use crate::channels::{update_row, Changes};
use crate::db::{args, Conn, Row};
use crate::outbox::insert_job;
use crate::sql::{on, SqlStore};
use crate::statements::to_json;
use crate::JobKind;

/// A connector to make.
#[derive(Debug, Clone)]
pub struct NewConnector {
    pub kind: ConnectorKind,
    pub name: String,
    pub config: Value,
    pub info: Value,
}

/// Changes to a connector; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct ConnectorPatch {
    pub name: Option<String>,
    pub config: Option<Value>,
    pub info: Option<Value>,
    /// A status and what it is about (`None`: nothing to say).
    pub status: Option<(String, Option<String>)>,
}

/// Connectors: making, reading, changing and removing them.
#[async_trait]
pub trait ConnectorStore: Send + Sync + 'static {
    /// Makes a connector with the id given (the address business systems post to names it, so
    /// it is chosen before the system is told of it), with its standing `ConnectorPoll` job.
    async fn create_connector(&self, id: &ConnectorId, new: NewConnector) -> Result<Connector>;
    async fn get_connector(&self, id: &ConnectorId) -> Result<Connector>;
    async fn list_connectors(&self) -> Result<Vec<Connector>>;
    async fn update_connector(&self, id: &ConnectorId, patch: ConnectorPatch) -> Result<Connector>;
    async fn delete_connector(&self, id: &ConnectorId) -> Result<()>;
    /// A place a connector's standing work keeps (see `connector_places`).
    async fn connector_place(&self, id: &ConnectorId, key: &str) -> Result<Option<String>>;
    async fn keep_connector_place(&self, id: &ConnectorId, key: &str, value: &str) -> Result<()>;
    /// Brings a connector's standing job forward to now (unless it is running); `false` when
    /// it has none waiting.
    async fn poll_connector_now(&self, id: &ConnectorId) -> Result<bool>;
}

/// A new connector's id.
pub fn new_connector_id() -> ConnectorId {
    ConnectorId::from(new_id())
}

#[async_trait]
impl ConnectorStore for SqlStore {
    async fn create_connector(&self, id: &ConnectorId, new: NewConnector) -> Result<Connector> {
        let config = self.sealed_config(&new.config)?;
        let id = id.to_owned();
        let connector = on!(self.write, |c| {
            c.exec(
                "INSERT INTO connectors (id, kind, name, config, info, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
                args![id.as_str(), new.kind.as_str(), &new.name, to_json(&config), to_json(&new.info), now_ms()],
            )
            .await?;
            // Its standing work, for as long as it lives.
            let queue = format!("connector:{id}:poll");
            insert_job(c, JobKind::ConnectorPoll, id.as_str(), Some(&queue), now_ms()).await?;
            load_connector(c, id.as_str()).await
        })?;
        self.opened_connector(connector)
    }

    async fn get_connector(&self, id: &ConnectorId) -> Result<Connector> {
        let id = id.to_owned();
        let connector = on!(self.read, |c| load_connector(c, id.as_str()).await)?;
        self.opened_connector(connector)
    }

    async fn list_connectors(&self) -> Result<Vec<Connector>> {
        let connectors: Vec<Connector> = on!(self.read, |c| {
            c.rows(&format!("SELECT {CONNECTOR_COLS} FROM connectors WHERE deleted = 0 ORDER BY id"), args![])
                .await?
                .iter()
                .map(connector_from)
                .collect()
        })?;
        connectors.into_iter().map(|x| self.opened_connector(x)).collect()
    }

    async fn update_connector(&self, id: &ConnectorId, patch: ConnectorPatch) -> Result<Connector> {
        let id = id.to_owned();
        let config = patch.config.as_ref().map(|c| self.sealed_config(c)).transpose()?;
        let patch = ConnectorPatch { config, ..patch };
        let connector = on!(self.write, |c| {
            let id = id.as_str();
            let changes = Changes {
                name: patch.name.as_ref(),
                config: patch.config.as_ref(),
                info: patch.info.as_ref(),
                status: patch.status.as_ref(),
            };
            if update_row(c, "connectors", id, changes).await? == 0 {
                return Err(Error::not_found("connector", id));
            }
            load_connector(c, id).await
        })?;
        self.opened_connector(connector)
    }

    async fn delete_connector(&self, id: &ConnectorId) -> Result<()> {
        let id = id.to_owned();
        on!(self.write, |c| {
            let done = c
                .exec(
                    "UPDATE connectors SET deleted = 1, updated_at = $1 WHERE id = $2 AND deleted = 0",
                    args![now_ms(), id.as_str()],
                )
                .await?;
            if done == 0 {
                return Err(Error::not_found("connector", id.as_str()));
            }
            Ok(())
        })
    }

    async fn connector_place(&self, id: &ConnectorId, key: &str) -> Result<Option<String>> {
        let (id, key) = (id.to_owned(), key.to_string());
        on!(self.read, |c| {
            c.row("SELECT value FROM connector_places WHERE connector_id = $1 AND key = $2", args![id.as_str(), &key])
                .await?
                .map(|r| r.s("value"))
                .transpose()
        })
    }

    async fn poll_connector_now(&self, id: &ConnectorId) -> Result<bool> {
        let id = id.to_owned();
        on!(self.write, |c| {
            let n = c
                .exec(
                    "UPDATE jobs SET run_at = $1 WHERE kind = $2 AND ref_id = $3 AND lease_owner IS NULL AND run_at > $1",
                    args![now_ms(), JobKind::ConnectorPoll.as_str(), id.as_str()],
                )
                .await?;
            Ok(n > 0)
        })
    }

    async fn keep_connector_place(&self, id: &ConnectorId, key: &str, value: &str) -> Result<()> {
        let (id, key, value) = (id.to_owned(), key.to_string(), value.to_string());
        on!(self.write, |c| {
            c.exec(
                "INSERT INTO connector_places (connector_id, key, value, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (connector_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                args![id.as_str(), &key, &value, now_ms()],
            )
            .await?;
            Ok(())
        })
    }
}

impl SqlStore {
    /// A connector as it is used: its secrets opened.
    fn opened_connector(&self, mut connector: Connector) -> Result<Connector> {
        if let Some(s) = &self.sealer {
            connector.config = s.open_config(&connector.config)?;
        }
        Ok(connector)
    }
}

const CONNECTOR_COLS: &str = "id, kind, name, config, info, status, status_detail, created_at";

fn connector_from(row: &Row) -> Result<Connector> {
    Ok(Connector {
        id: ConnectorId::from(row.s("id")?),
        kind: ConnectorKind::parse(&row.s("kind")?)?,
        name: row.s("name")?,
        status: row.s("status")?,
        status_detail: row.os("status_detail")?,
        info: row.js("info")?,
        config: row.js("config")?,
        created_at: row.i("created_at")?,
    })
}

async fn load_connector(c: &mut dyn Conn, id: &str) -> Result<Connector> {
    let row = c
        .row(&format!("SELECT {CONNECTOR_COLS} FROM connectors WHERE id = $1 AND deleted = 0"), args![id])
        .await?
        .ok_or_else(|| Error::not_found("connector", id))?;
    connector_from(&row)
}
