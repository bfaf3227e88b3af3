//! Rules: what the business system asks okno to do when an event of a type arrives (whom to
//! tell, what, on which condition, when), kept by name and read by the engine, which alone
//! decides what a rule makes of an event.

use async_trait::async_trait;
use okno_domain::ids::{new_id, MessageId};
use okno_domain::time::now_ms;
use okno_domain::{Error, Result};
use serde_json::Value;

use crate::db::{args, Conn, Row};
use crate::sql::{on, SqlStore};
use crate::statements::{query_rows, to_json, Sql};
use crate::RuleRecord;

/// Rules: creating or replacing them by name, reading, removing them.
#[async_trait]
pub trait RuleStore: Send + Sync + 'static {
    /// Creates or replaces a rule by name.
    async fn put_rule(&self, name: &str, event: &str, spec: Value) -> Result<RuleRecord>;
    async fn get_rule(&self, id: &str) -> Result<RuleRecord>;
    async fn list_rules(&self) -> Result<Vec<RuleRecord>>;
    async fn delete_rule(&self, id: &str) -> Result<()>;
    async fn rules_for(&self, event_type: &str) -> Result<Vec<RuleRecord>>;
    /// The rules that sent these messages, as `(message id, rule name)`; messages no rule sent
    /// (or whose rule was deleted) are left out.
    async fn rules_of_messages(&self, message_ids: &[MessageId]) -> Result<Vec<(MessageId, String)>>;
}

#[async_trait]
impl RuleStore for SqlStore {
    async fn put_rule(&self, name: &str, event: &str, spec: Value) -> Result<RuleRecord> {
        let (name, event) = (name.to_owned(), event.to_owned());
        on!(self.write, |c| {
            let now = now_ms();
            c.exec(
                "INSERT INTO rules (id, name, event, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (name) DO UPDATE SET event = $3, spec = $4, active = 1, updated_at = $5",
                args![new_id(), &name, &event, to_json(&spec), now],
            )
            .await?;
            let row = c.one(&format!("SELECT {RULE_COLS} FROM rules WHERE name = $1"), args![&name]).await?;
            rule_from(&row)
        })
    }

    async fn get_rule(&self, id: &str) -> Result<RuleRecord> {
        let id = id.to_owned();
        on!(self.read, |c| {
            let row = c
                .row(&format!("SELECT {RULE_COLS} FROM rules WHERE id = $1"), args![&id])
                .await?
                .ok_or_else(|| Error::not_found("rule", &id))?;
            rule_from(&row)
        })
    }

    async fn list_rules(&self) -> Result<Vec<RuleRecord>> {
        on!(self.read, |c| c
            .rows(&format!("SELECT {RULE_COLS} FROM rules ORDER BY name"), args![])
            .await?
            .iter()
            .map(rule_from)
            .collect())
    }

    async fn delete_rule(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        on!(self.write, |c| {
            if c.exec("DELETE FROM rules WHERE id = $1", args![&id]).await? == 0 {
                return Err(Error::not_found("rule", &id));
            }
            Ok(())
        })
    }

    async fn rules_for(&self, event_type: &str) -> Result<Vec<RuleRecord>> {
        let event_type = event_type.to_owned();
        on!(self.read, |c| {
            c.rows(
                &format!("SELECT {RULE_COLS} FROM rules WHERE event = $1 AND active = 1 ORDER BY name"),
                args![&event_type],
            )
            .await?
            .iter()
            .map(rule_from)
            .collect()
        })
    }

    async fn rules_of_messages(&self, message_ids: &[MessageId]) -> Result<Vec<(MessageId, String)>> {
        let message_ids = message_ids.to_vec();
        on!(self.read, |c| {
            let mut out = Vec::new();
            for chunk in message_ids.chunks(500) {
                let mut q = Sql::new(
                    "SELECT d.message_id, r.name FROM event_deliveries d JOIN rules r ON r.id = d.rule_id \
                     WHERE d.message_id IN (",
                );
                for (n, id) in chunk.iter().enumerate() {
                    q.push(if n == 0 { "" } else { ", " }).bind_s(id.as_str());
                }
                q.push(")");
                for row in query_rows(c, &q.text, &q.args, chunk.len()).await? {
                    out.push((row.id("message_id")?, row.s("name")?));
                }
            }
            Ok(out)
        })
    }
}

const RULE_COLS: &str = "id, name, event, spec, active, created_at, updated_at";

fn rule_from(row: &Row) -> Result<RuleRecord> {
    Ok(RuleRecord {
        id: row.s("id")?,
        name: row.s("name")?,
        event: row.s("event")?,
        spec: row.js("spec")?,
        active: row.flag("active")?,
        created_at: row.i("created_at")?,
        updated_at: row.i("updated_at")?,
    })
}
