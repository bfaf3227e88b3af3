//! A connector's standing work: one `ConnectorPoll` job per connector, run again and again
//! for as long as the connector lives (one process at a time: the job's lease), doing what
//! its kind does on its own — mirroring conversations into a business system's desk, keeping
//! contacts in step, draining events the system kept while okno was away.
//!
//! ```text
//!  connector made ─► ConnectorPoll job, in the same transaction (queue `connector:<id>:poll`)
//!  the job ─► the kind's duties that are due ─► run again after the soonest next one
//!  connector deleted ─► the job ends
//! ```
//!
//! A duty keeps its own place in the business system (a cursor in the connector's `info`), and
//! moves it only after what it read is stored: a crash repeats the last slice, never skips it.

use std::time::Duration;

use okno_domain::ids::ConnectorId;
use okno_domain::model::{Connector, ConnectorKind};
use okno_domain::Result;
use okno_store::ConnectorPatch;
use serde_json::Value;

use super::Outcome;
use crate::Engine;

/// The `info` keys where duties keep when they last ran (see each kind's `poll`).
pub(crate) const DUE_KEYS: &[&str] = &["contacts_at", "pulled_at", "calls_at"];

/// How soon a connector with nothing due looks again.
pub const IDLE: Duration = Duration::from_secs(60);

/// What a poll came to: how it went, and when to run again.
pub(crate) struct Polled {
    pub outcome: Outcome,
    pub again: Duration,
}

impl Engine {
    /// A `ConnectorPoll` job: `None` once the connector is gone (the job ends).
    pub(crate) async fn connector_poll(&self, id: &str) -> Result<Option<Polled>> {
        let Some(connector) = self.live_connector(&ConnectorId::from(id)).await? else { return Ok(None) };
        let polled = match connector.kind {
            ConnectorKind::Amocrm => super::amocrm::poll(self, &connector).await?,
            ConnectorKind::Bitrix24 => super::bitrix24::poll(self, &connector).await?,
            ConnectorKind::Onec => super::onec::poll(self, &connector).await?,
            _ => Polled { outcome: Outcome::Done, again: IDLE },
        };
        // New credentials that came while this run failed with the old ones: `note_outcome`
        // makes it run again at once with them.
        let outcome = self.note_outcome(&connector, polled.outcome).await?;
        Ok(Some(Polled { outcome, again: polled.again }))
    }

    /// Runs a connector's standing work now rather than when next due ("sync now"): the
    /// times its duties last ran are forgotten and its job brought forward.
    pub async fn sync_connector_now(&self, id: &ConnectorId) -> Result<()> {
        let connector = self.store.get_connector(id).await?;
        let due: Vec<(&str, Value)> =
            DUE_KEYS.iter().filter(|k| connector.info.get(**k).is_some()).map(|k| (*k, Value::from(0))).collect();
        if !due.is_empty() {
            self.keep_places(&connector, due).await?;
        }
        self.store.poll_connector_now(id).await?;
        self.wake();
        Ok(())
    }

    /// Keeps a duty's place (`info[key]`) in the connector.
    pub(crate) async fn keep_place(&self, connector: &Connector, key: &str, place: Value) -> Result<Connector> {
        self.keep_places(connector, vec![(key, place)]).await
    }

    /// Keeps several duties' places at once: one read and one write of the connector.
    pub(crate) async fn keep_places(&self, connector: &Connector, places: Vec<(&str, Value)>) -> Result<Connector> {
        let mut info = self.store.get_connector(&connector.id).await?.info;
        if !info.is_object() {
            info = Value::Object(Default::default());
        }
        for (key, place) in places {
            info[key] = place;
        }
        let patch = ConnectorPatch { info: Some(info), ..Default::default() };
        self.store.update_connector(&connector.id, patch).await
    }
}
