//! Connectors: okno joined to the company's business systems.
//!
//! ```text
//!  POST /api/v1/connectors {kind, name, config} ─► the kind checks the config and the
//!      credentials with the system itself, and subscribes okno's address
//!      (`{public_url}/hooks/connectors/{id}/{secret}`) to the system's events
//!  the system posts to that address ─► the secret checked, what it said read, a
//!      ConnectorEvent job queued and committed ─► 2xx (inside the system's deadline)
//!  the job ─► the kind acts: reads the system's record, posts a task, …
//!  a task a connector posted is taken ─► a ConnectorTaskTaken job, queued in the claim's own
//!      transaction ─► the kind writes back who took it
//! ```
//!
//! Every call into a business system that changes something there is written to the audit
//! journal with its outcome (actor `connector:<id>`). A refused token or a blocked account sets
//! the connector's status to `error` with the system's words; a passing failure is retried
//! through the outbox.
//!
//! Kinds: [`amocrm`], [`bitrix24`], [`onec`] (1C:Enterprise's OData), [`pbx`] (a company's own telephony).
//! Rules that act in a business system: [`actions`]; a connector's standing work: [`poll`]; a
//! business system's desk answering okno's conversations: [`desk`]; the admin page's forms:
//! [`form`].

pub mod actions;
pub mod amocrm;
pub mod bitrix24;
pub mod desk;
pub mod form;
pub mod onec;
pub mod pbx;
pub mod poll;

use std::sync::Arc;

use okno_domain::ids::ConnectorId;
use okno_domain::model::{Connector, ConnectorKind};
use okno_domain::{Error, Result};
use okno_store::{new_connector_id, ConnectorPatch, NewAudit, NewConnector};
use serde_json::Value;

use crate::Engine;

/// The secret in the address a business system posts to: made at creation, kept sealed.
const HOOK_SECRET: &str = "secret";

/// A kind's refusal of the business system's answer, for the connector's status.
pub(crate) enum Outcome {
    /// Done (or nothing to do).
    Done,
    /// A failure that may pass: the outbox tries again.
    Retry(String),
    /// The system refuses the request itself (a 400 naming what is wrong): the connector shows
    /// it, and the job ends — the same request would be refused again.
    Refused(String),
    /// The system refuses okno for now (a token revoked, an account blocked): the connector
    /// shows it, and the job waits and tries again, so nothing is lost once a person fixes it.
    Held(String),
    /// A failure of a call made with a configuration changed since (a new token): not the new
    /// one's; the job runs again at once with it.
    Reconfigured(String),
}

impl Outcome {
    /// The outbox tries the same work again: a standing duty that ended like this is still due,
    /// not done until its next turn.
    pub(crate) fn tried_again(&self) -> bool {
        matches!(self, Outcome::Retry(_) | Outcome::Held(_) | Outcome::Reconfigured(_))
    }
}

impl Engine {
    /// Connects a business system: the kind checks `config` and the credentials, and subscribes
    /// okno to the system's events.
    pub async fn create_connector(&self, kind: ConnectorKind, name: &str, config: Value) -> Result<Connector> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid("invalid_name", "`name` is 1..100 characters"));
        }
        let id = new_connector_id();
        let secret = okno_domain::ids::random_hex(24);
        let (config, info) = match kind {
            ConnectorKind::Amocrm => amocrm::connect(self, &id, &secret, &config).await?,
            ConnectorKind::Bitrix24 => bitrix24::connect(self, &id, &secret, &config).await?,
            ConnectorKind::Pbx => pbx::connect(self, &id, &secret, &config)?,
            ConnectorKind::Onec => onec::connect(self, &id, &secret, &config).await?,
        };
        let connector =
            self.store.create_connector(&id, NewConnector { kind, name: name.to_string(), config, info }).await?;
        self.wake();
        Ok(connector)
    }

    /// Changes a connector: a new name and/or configuration (its keys over the old ones, checked
    /// and connected again).
    pub async fn update_connector(
        &self,
        id: &ConnectorId,
        name: Option<String>,
        config: Option<Value>,
    ) -> Result<Connector> {
        // A token refresh in between would be overwritten with the tokens read here.
        let _no_refresh = self.amocrm_refresh.lock().await;
        let old = self.store.get_connector(id).await?;
        let mut patch = ConnectorPatch { name: name.map(|n| n.trim().to_string()), ..Default::default() };
        if patch.name.as_ref().is_some_and(|n| n.is_empty() || n.chars().count() > 100) {
            return Err(Error::invalid("invalid_name", "`name` is 1..100 characters"));
        }
        if let Some(config) = config {
            let Value::Object(changes) = config else {
                return Err(Error::invalid("invalid_connector_config", "`config` must be an object"));
            };
            // The keys given replace the stored ones; the others (the token) are kept.
            let mut config = old.config.clone();
            if let Value::Object(m) = &mut config {
                m.extend(changes);
                m.remove(HOOK_SECRET);
            }
            let secret = old.config.get(HOOK_SECRET).and_then(Value::as_str).unwrap_or_default().to_string();
            let (config, info) = match old.kind {
                ConnectorKind::Amocrm => amocrm::connect(self, id, &secret, &config).await?,
                ConnectorKind::Bitrix24 => bitrix24::connect(self, id, &secret, &config).await?,
                ConnectorKind::Pbx => pbx::connect(self, id, &secret, &config)?,
                ConnectorKind::Onec => onec::connect(self, id, &secret, &config).await?,
            };
            patch.config = Some(config);
            // What the system says of itself now, over the places its duties keep.
            let mut merged = old.info.clone();
            if let (Value::Object(m), Value::Object(new)) = (&mut merged, info) {
                m.extend(new);
            }
            patch.info = Some(merged);
            patch.status = Some(("active".into(), None));
            self.forget_connector(id);
        }
        let reconnected = patch.config.is_some();
        let connector = self.store.update_connector(id, patch).await?;
        if reconnected {
            // Its standing job may be waiting out a long backoff from the old credentials:
            // what they held runs now rather than at the end of it.
            self.store.poll_connector_now(id).await?;
            self.wake();
        }
        Ok(connector)
    }

    pub async fn delete_connector(&self, id: &ConnectorId) -> Result<()> {
        self.store.delete_connector(id).await?;
        self.forget_connector(id);
        Ok(())
    }

    /// What a business system posted to `/hooks/connectors/{id}/{secret}`: checked and queued
    /// (or stored) for the connector's kind; once this returns, it is kept.
    pub async fn connector_hook(&self, id: &ConnectorId, secret: &str, req: &HookRequest<'_>) -> Result<usize> {
        let connector = self.store.get_connector(id).await?;
        let expected = connector.config.get(HOOK_SECRET).and_then(Value::as_str).unwrap_or_default();
        if expected.is_empty() || !okno_domain::signing::secrets_equal(secret, expected) {
            return Err(Error::new(
                okno_domain::ErrorKind::Unauthorized,
                "bad_secret",
                "this address is not the connector's",
            ));
        }
        match connector.kind {
            ConnectorKind::Amocrm => amocrm::hook(self, &connector, req.body).await,
            ConnectorKind::Bitrix24 => bitrix24::hook(self, &connector, req.body).await,
            ConnectorKind::Pbx => pbx::hook(self, &connector, req).await,
            other => Err(Error::unprocessable("unsupported_kind", format!("`{other}` connectors take no hooks yet"))),
        }
    }

    /// A `ConnectorEvent` job: `<connector id>:<what the kind queued>`.
    pub(crate) async fn connector_event(&self, job_ref: &str) -> Result<Outcome> {
        let Some((id, what)) = job_ref.split_once(':') else { return Ok(Outcome::Done) };
        let Some(connector) = self.live_connector(&ConnectorId::from(id)).await? else { return Ok(Outcome::Done) };
        let outcome = match connector.kind {
            ConnectorKind::Amocrm => amocrm::event(self, &connector, what).await?,
            ConnectorKind::Bitrix24 => bitrix24::event(self, &connector, what).await?,
            _ => Outcome::Done,
        };
        self.note_outcome(&connector, outcome).await
    }

    /// A `ConnectorTaskTaken` job: the task a connector posted has an executor.
    pub(crate) async fn connector_task_taken(&self, task_id: &str) -> Result<Outcome> {
        let task = match self.store.get_task(task_id).await {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        let Some(id) = task.data.get("connector").and_then(Value::as_str) else { return Ok(Outcome::Done) };
        let Some(connector) = self.live_connector(&ConnectorId::from(id)).await? else { return Ok(Outcome::Done) };
        let outcome = match connector.kind {
            ConnectorKind::Amocrm => amocrm::task_taken(self, &connector, &task).await?,
            ConnectorKind::Bitrix24 => bitrix24::task_taken(self, &connector, &task).await?,
            _ => Outcome::Done,
        };
        self.note_outcome(&connector, outcome).await
    }

    /// The connector, unless it was deleted meanwhile.
    async fn live_connector(&self, id: &ConnectorId) -> Result<Option<Connector>> {
        match self.store.get_connector(id).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A refusal shows on the connector; a success after one clears it. A failure of a call
    /// made with a configuration changed since (a new token, from an administrator or a
    /// refresh) says nothing of the new one: it is not shown, and work that would wait runs
    /// again at once, with the new one.
    async fn note_outcome(&self, connector: &Connector, outcome: Outcome) -> Result<Outcome> {
        if !matches!(outcome, Outcome::Done) {
            match self.live_connector(&connector.id).await? {
                Some(now) if now.config == connector.config => {}
                _ => {
                    return Ok(match outcome {
                        Outcome::Retry(why) | Outcome::Held(why) => Outcome::Reconfigured(why),
                        other => other,
                    })
                }
            }
        }
        let status = match &outcome {
            Outcome::Refused(why) | Outcome::Held(why) => Some(("error".to_string(), Some(why.clone()))),
            Outcome::Done if connector.status != "active" => Some(("active".to_string(), None)),
            _ => None,
        };
        if let Some(status) = status {
            let patch = ConnectorPatch { status: Some(status), ..Default::default() };
            self.store.update_connector(&connector.id, patch).await?;
        }
        Ok(outcome)
    }

    /// Writes a call into a business system, and how it ended, to the audit journal.
    pub(crate) async fn audit_connector_call(&self, connector: &Connector, action: &str, target: &str, detail: Value) {
        let entry = NewAudit {
            actor: format!("connector:{}", connector.id),
            action: action.to_string(),
            target: target.to_string(),
            detail,
        };
        if let Err(e) = self.store.audit(entry).await {
            tracing::warn!(connector = %connector.id, error = %e, "the audit journal refused a connector's call");
        }
    }

    fn forget_connector(&self, id: &ConnectorId) {
        if let Ok(mut clients) = self.amocrm.lock() {
            clients.remove(id);
        }
        bitrix24::forget(id);
    }
}

/// What a business system posted: the body and the headers some kinds check a signature in.
pub struct HookRequest<'a> {
    pub body: &'a [u8],
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
}

impl HookRequest<'_> {
    /// A header's value (the name lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The clients of a kind, kept per connector so its rate limit holds across jobs.
pub(crate) type Clients<C> = std::sync::Mutex<std::collections::HashMap<ConnectorId, (Value, Arc<C>)>>;
