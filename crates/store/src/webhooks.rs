//! Outgoing webhooks: the business system's subscriptions to okno's events, and the deliveries
//! of each event to them. An event becomes one delivery (and one outbox job to send it) per
//! subscription that wants it, written in the transaction of the change it tells of: no change
//! goes untold, and nothing is told of a change that was not committed.

use async_trait::async_trait;
use okno_domain::ids::new_id;
use okno_domain::model::{EventType, Page, Webhook, WebhookDelivery};
use okno_domain::time::{now_ms, to_rfc3339};
use okno_domain::{Error, Result};
use serde_json::{json, Value};

use crate::db::{args, Conn, Row};
use crate::outbox::insert_job;
use crate::sql::{on, SqlStore};
use crate::statements::{split_page, to_json, Sql};
use crate::{DeliveryAttempt, JobKind, NewWebhook, PageRequest, PendingDelivery};

/// Outgoing webhook subscriptions and their deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook>;
    async fn list_webhooks(&self) -> Result<Vec<Webhook>>;
    async fn get_webhook(&self, id: &str) -> Result<Webhook>;
    async fn delete_webhook(&self, id: &str) -> Result<()>;
    async fn list_deliveries(&self, webhook_id: &str, page: PageRequest) -> Result<Page<WebhookDelivery>>;
    async fn pending_delivery(&self, id: &str) -> Result<PendingDelivery>;
    async fn record_delivery_attempt(&self, id: &str, attempt: DeliveryAttempt) -> Result<()>;
    /// Emits an event to every matching subscription (used by capabilities outside the store).
    async fn emit_event(&self, event: EventType, data: Value) -> Result<()>;
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook> {
        let new = NewWebhook { secret: self.sealed_secret(&new.secret)?, ..new };
        let webhook = on!(self.write, |c| {
            let id = new_id();
            let events: Vec<&str> = new.events.iter().map(|e| e.as_str()).collect();
            c.exec(
                "INSERT INTO webhooks (id, url, events, secret, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
                args![&id, &new.url, to_json(&events), &new.secret, now_ms(), &new.created_by],
            )
            .await?;
            load_webhook(c, &id).await
        })?;
        self.opened_webhook(webhook)
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let webhooks: Vec<Webhook> = on!(self.read, |c| {
            c.rows("SELECT id, url, events, secret, active, created_at, created_by FROM webhooks ORDER BY id", args![])
                .await?
                .iter()
                .map(webhook_from)
                .collect()
        })?;
        webhooks.into_iter().map(|w| self.opened_webhook(w)).collect()
    }

    async fn get_webhook(&self, id: &str) -> Result<Webhook> {
        let id = id.to_owned();
        let webhook = on!(self.read, |c| {
            let id = id.as_str();
            let row = c
                .row(
                    "SELECT id, url, events, secret, active, created_at, created_by FROM webhooks WHERE id = $1",
                    args![id],
                )
                .await?
                .ok_or_else(|| Error::not_found("webhook", id))?;
            webhook_from(&row)
        })?;
        self.opened_webhook(webhook)
    }

    async fn delete_webhook(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        on!(self.write, |c| {
            let id = id.as_str();
            // Pending deliveries of a removed subscription are dropped with it.
            c.exec("DELETE FROM jobs WHERE kind = 'webhook' AND ref_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1)", args![id]).await?;
            c.exec("DELETE FROM webhook_deliveries WHERE webhook_id = $1", args![id]).await?;
            let done = c.exec("DELETE FROM webhooks WHERE id = $1", args![id]).await?;
            if done == 0 {
                return Err(Error::not_found("webhook", id));
            }
            Ok(())
        })
    }

    async fn list_deliveries(&self, webhook_id: &str, page: PageRequest) -> Result<Page<WebhookDelivery>> {
        let webhook_id = webhook_id.to_owned();
        on!(self.read, |c| {
            let webhook_id = webhook_id.as_str();
            load_webhook(c, webhook_id).await?;
            let mut q = Sql::new(
                "SELECT id, webhook_id, event_type, body, status, attempts, last_status_code, last_error, created_at, delivered_at \
                 FROM webhook_deliveries WHERE webhook_id = ",
            );
            q.bind_s(webhook_id);
            if let Some(c) = &page.cursor {
                q.push(" AND id < ").bind_s(c);
            }
            q.push(" ORDER BY id DESC LIMIT ").bind_i(i64::from(page.limit) + 1);
            let rows = c.rows(&q.text, &q.args).await?;
            let items = rows.iter().map(delivery_from).collect::<Result<Vec<_>>>()?;
            let (items, next) = split_page(items, page.limit, |d| d.id.clone());
            Ok(Page { items, next })
        })
    }

    async fn pending_delivery(&self, id: &str) -> Result<PendingDelivery> {
        let id = id.to_owned();
        let pending = on!(self.read, |c| {
            let id = id.as_str();
            let row = c.row(
                "SELECT d.id, d.webhook_id, d.event_type, d.body, d.status, d.attempts, d.last_status_code, d.last_error, \
                 d.created_at, d.delivered_at, w.url, w.secret \
                 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = $1",
            args![id]).await?
            .ok_or_else(|| Error::not_found("delivery", id))?;
            Ok(PendingDelivery { delivery: delivery_from(&row)?, url: row.s("url")?, secret: row.s("secret")? })
        })?;
        Ok(PendingDelivery { secret: self.opened_secret(pending.secret)?, ..pending })
    }

    async fn record_delivery_attempt(&self, id: &str, attempt: DeliveryAttempt) -> Result<()> {
        let id = id.to_owned();
        on!(self.write, |c| {
            let id = id.as_str();
            let (status, code, error, delivered_at) = match attempt {
                DeliveryAttempt::Delivered { status_code } => ("delivered", Some(status_code), None, Some(now_ms())),
                DeliveryAttempt::Retrying { status_code, error } => ("pending", status_code, Some(error), None),
                DeliveryAttempt::Failed { status_code, error } => ("failed", status_code, Some(error), None),
            };
            c.exec(
                "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, last_status_code = $2, last_error = $3, \
                 delivered_at = $4 WHERE id = $5",
            args![status, code, error, delivered_at, id]).await?;
            Ok(())
        })
    }

    async fn emit_event(&self, event: EventType, data: Value) -> Result<()> {
        on!(self.write, |c| {
            emit(c, event, data).await?;
            Ok(())
        })
    }
}

impl SqlStore {
    fn opened_webhook(&self, mut webhook: Webhook) -> Result<Webhook> {
        webhook.secret = self.opened_secret(webhook.secret)?;
        Ok(webhook)
    }
}

/// Writes one delivery (and its job) per subscription that wants `event`.
pub(crate) async fn emit(c: &mut dyn Conn, event: EventType, data: Value) -> Result<()> {
    let hooks = subscribers(c, event).await?;
    deliver(c, &hooks, event, data).await
}

/// The active subscriptions that want `event`.
pub(crate) async fn subscribers(c: &mut dyn Conn, event: EventType) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for hook in c.rows("SELECT id, events FROM webhooks WHERE active = 1", args![]).await? {
        let events: Vec<String> = serde_json::from_value(hook.js("events")?).unwrap_or_default();
        if events.iter().any(|e| e == event.as_str() || e == "*") {
            ids.push(hook.s("id")?);
        }
    }
    Ok(ids)
}

/// Writes one delivery (and its job) of `event` per subscription in `hooks`.
pub(crate) async fn deliver(c: &mut dyn Conn, hooks: &[String], event: EventType, data: Value) -> Result<()> {
    let now = now_ms();
    let event_id = new_id();
    for hook in hooks {
        let delivery_id = new_id();
        let body = json!({"id": event_id, "type": event.as_str(), "created_at": to_rfc3339(now), "data": data});
        c.exec(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_type, body, status, created_at) \
             VALUES ($1, $2, $3, $4, 'pending', $5)",
            args![&delivery_id, hook, event.as_str(), to_json(&body), now],
        )
        .await?;
        insert_job(c, JobKind::Webhook, &delivery_id, None, now).await?;
    }
    Ok(())
}

async fn load_webhook(c: &mut dyn Conn, id: &str) -> Result<Webhook> {
    let row = c
        .row("SELECT id, url, events, secret, active, created_at, created_by FROM webhooks WHERE id = $1", args![id])
        .await?
        .ok_or_else(|| Error::not_found("webhook", id))?;
    webhook_from(&row)
}

fn webhook_from(row: &Row) -> Result<Webhook> {
    Ok(Webhook {
        id: row.s("id")?,
        url: row.s("url")?,
        events: serde_json::from_value(row.js("events")?).unwrap_or_default(),
        active: row.flag("active")?,
        secret: row.s("secret")?,
        created_at: row.i("created_at")?,
        created_by: row.os("created_by")?,
    })
}

fn delivery_from(row: &Row) -> Result<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: row.s("id")?,
        webhook_id: row.s("webhook_id")?,
        event_type: row.s("event_type")?,
        status: row.s("status")?,
        attempts: row.i("attempts")?,
        last_status_code: row.oi("last_status_code")?,
        last_error: row.os("last_error")?,
        body: row.js("body")?,
        created_at: row.i("created_at")?,
        delivered_at: row.oi("delivered_at")?,
    })
}
