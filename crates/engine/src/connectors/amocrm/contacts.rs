//! amoCRM's contacts and okno's kept in step, both ways, without duplicates.
//!
//! ```json
//! "contacts": {"direction": "both", "every": 60}
//! ```
//!
//! ```text
//!  pull: amoCRM's contacts changed since the kept moment, 250 a page ─► written a page per
//!        transaction: found by `external_id` `amo-<id>`, else claimed by phone or e-mail
//!        among okno's contacts no system claims, else made ─► the moment kept
//!  push: okno's contacts changed since the kept place, in order ─► those amoCRM has not seen
//!        like this (the digest in `attrs.amocrm_sync` differs) ─► 50 a call, new ones added
//!        and given `amo-<id>`, known ones changed ─► digests and the place kept
//!  amoCRM's contact webhooks ─► the contact written at once (the pull catches what they miss)
//! ```
//!
//! `attrs.amocrm_sync` is `<amoCRM id>:<digest of name, phone, e-mail>`: what both sides last
//! agreed on. A pulled contact carries it, so it is not pushed back; a contact changed in okno
//! no longer matches it, so it is. Calls keep to the connector's limit (7 a second), so a big
//! first sync takes its time — 100,000 contacts are 2,000 calls of 50, about five minutes.

use std::time::{Duration, Instant};

use okno_connector_amocrm::{AmoClient, AmoError, Contact as AmoContact, ContactUpdate, NewContact, MAX_BATCH};
use okno_domain::model::{normalize_phone, Connector, Contact};
use okno_domain::Result;
use okno_store::{SyncedContact, MAX_SYNC_PAGE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{outcome, AmoConfig};
use crate::connectors::Outcome;
use crate::Engine;

/// The attrs key of what both sides last agreed on.
pub const MARK: &str = "amocrm_sync";
/// okno's external id for an amoCRM contact: `amo-<id>`.
pub const CONTACT_PREFIX: &str = "amo-";

/// Which way contacts go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    FromAmocrm,
    ToAmocrm,
}

/// The connector's contact sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactSync {
    #[serde(default)]
    pub direction: Direction,
    /// Seconds between looks for changes (webhooks bring amoCRM's sooner); 60 unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
    /// Send okno's contacts that have neither phone nor e-mail too (a visitor known by a
    /// messenger alone); by default they stay in okno.
    #[serde(default)]
    pub all: bool,
}

impl ContactSync {
    pub(super) fn check(&self) -> std::result::Result<(), String> {
        if self.every.is_some_and(|s| !(5..=86_400).contains(&s)) {
            return Err("`contacts.every` is 5..86400 seconds".into());
        }
        Ok(())
    }

    pub(super) fn every(&self) -> Duration {
        Duration::from_secs(self.every.unwrap_or(60))
    }
}

/// How long one run of the standing job may sync before it lets others run.
const SLICE: Duration = Duration::from_secs(20);

/// The digest of what a contact says: name, phone, e-mail.
fn digest(name: Option<&str>, phone: Option<&str>, email: Option<&str>) -> String {
    let mut h = Sha256::new();
    for part in [name, phone, email] {
        h.update(part.unwrap_or("").as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

/// An amoCRM contact as okno keeps it.
pub(crate) fn synced(c: &AmoContact) -> SyncedContact {
    let name = Some(c.name.trim().to_string()).filter(|n| !n.is_empty());
    let phone = c.phones.iter().find_map(|p| normalize_phone(p).ok());
    let email = c.emails.iter().map(|e| e.trim().to_lowercase()).find(|e| e.contains('@'));
    let d = digest(name.as_deref(), phone.as_deref(), email.as_deref());
    SyncedContact {
        external_id: format!("{CONTACT_PREFIX}{}", c.id),
        name,
        phone,
        email,
        digest: format!("{}:{d}", c.id),
    }
}

/// The amoCRM id okno knows for a contact: its `amo-<id>`, else the one both sides agreed on.
fn amo_id(c: &Contact) -> Option<i64> {
    c.external_id
        .as_deref()
        .and_then(|x| x.strip_prefix(CONTACT_PREFIX))
        .and_then(|x| x.parse().ok())
        .or_else(|| mark_of(c).and_then(|m| m.split_once(':')).and_then(|(id, _)| id.parse().ok()))
}

fn mark_of(c: &Contact) -> Option<&str> {
    c.attrs.get(MARK).and_then(Value::as_str)
}

/// What a run of the sync came to.
pub(super) struct Ran {
    pub outcome: Outcome,
    /// More is waiting (the slice ran out): run again at once.
    pub more: bool,
}

/// Pulls amoCRM's changes, then pushes okno's (as the direction allows).
pub(super) async fn sync(engine: &Engine, connector: &Connector, cfg: &AmoConfig, client: &AmoClient) -> Result<Ran> {
    let Some(sync) = &cfg.contacts else { return Ok(Ran { outcome: Outcome::Done, more: false }) };
    let started = Instant::now();
    if sync.direction != Direction::ToAmocrm {
        if let Err(stop) = pull(engine, connector, client).await? {
            return Ok(Ran { outcome: stop, more: false });
        }
    }
    if sync.direction != Direction::FromAmocrm {
        return push(engine, connector, client, sync, started).await;
    }
    Ok(Ran { outcome: Outcome::Done, more: false })
}

/// amoCRM's contacts changed since the kept moment, written to okno.
async fn pull(engine: &Engine, connector: &Connector, client: &AmoClient) -> Result<std::result::Result<(), Outcome>> {
    let since = connector.info.pointer("/contacts_pull/since").and_then(Value::as_i64).unwrap_or(0);
    let changed = match client.contacts_changed_since(since).await {
        Ok(c) => c,
        Err(e) => return Ok(Err(outcome(e))),
    };
    if changed.is_empty() {
        return Ok(Ok(()));
    }
    let newest = changed.iter().map(|c| c.updated_at).max().unwrap_or(since);
    for page in changed.chunks(MAX_SYNC_PAGE) {
        engine.store.sync_contacts(MARK, page.iter().map(synced).collect()).await?;
    }
    // amoCRM's filter takes the moment itself too: the last second is read again next time,
    // and found unchanged.
    engine.keep_place(connector, "contacts_pull", json!({"since": newest})).await?;
    engine
        .audit_connector_call(
            connector,
            "amocrm.contacts.read",
            "contacts",
            json!({"count": changed.len(), "since": since}),
        )
        .await;
    Ok(Ok(()))
}

/// okno's contacts changed since the kept place, sent to amoCRM 50 a call.
async fn push(
    engine: &Engine,
    connector: &Connector,
    client: &AmoClient,
    sync: &ContactSync,
    started: Instant,
) -> Result<Ran> {
    let mut place = (
        connector.info.pointer("/contacts_push/at").and_then(Value::as_i64).unwrap_or(0),
        connector.info.pointer("/contacts_push/id").and_then(Value::as_str).unwrap_or("").to_string(),
    );
    let mut connector = connector.clone();
    loop {
        if started.elapsed() > SLICE {
            return Ok(Ran { outcome: Outcome::Done, more: true });
        }
        let changed = engine.store.contacts_changed_since(place.clone(), MAX_BATCH as u32).await?;
        let Some(last) = changed.last() else { return Ok(Ran { outcome: Outcome::Done, more: false }) };
        let next = (last.updated_at, last.id.to_string());
        let mut adds: Vec<(NewContact, String)> = Vec::new();
        let mut updates: Vec<(ContactUpdate, String)> = Vec::new();
        for c in &changed {
            if !sync.all && c.phone.is_none() && c.email.is_none() {
                continue;
            }
            let d = digest(c.name.as_deref(), c.phone.as_deref(), c.email.as_deref());
            if mark_of(c).and_then(|m| m.split_once(':')).is_some_and(|(_, old)| old == d) {
                continue;
            }
            let name = c.name.clone().or_else(|| c.phone.clone()).or_else(|| c.email.clone()).unwrap_or_default();
            let phones: Vec<String> = c.phone.iter().cloned().collect();
            let emails: Vec<String> = c.email.iter().cloned().collect();
            match amo_id(c) {
                Some(id) => updates.push((
                    ContactUpdate {
                        id,
                        name: Some(name),
                        phones: Some(phones),
                        emails: Some(emails),
                        request_id: Some(c.id.to_string()),
                        ..Default::default()
                    },
                    d,
                )),
                None => adds.push((
                    NewContact { name, phones, emails, request_id: Some(c.id.to_string()), ..Default::default() },
                    d,
                )),
            }
        }
        let mut marks = Vec::new();
        if !adds.is_empty() {
            let rows: Vec<NewContact> = adds.iter().map(|(n, _)| n.clone()).collect();
            let written = match client.add_contacts(&rows).await {
                Ok(w) => w,
                Err(e) => return Ok(stopped(engine, &connector, "amocrm.contacts.add", rows.len(), e).await),
            };
            for w in written {
                if let Some((_, d)) = adds.iter().find(|(n, _)| n.request_id.as_deref() == Some(w.request_id.as_str()))
                {
                    let ext = format!("{CONTACT_PREFIX}{}", w.id);
                    marks.push((w.request_id.as_str().into(), Some(ext), format!("{}:{d}", w.id)));
                }
            }
            let detail = json!({"count": rows.len(), "outcome": "ok"});
            engine.audit_connector_call(&connector, "amocrm.contacts.add", "contacts", detail).await;
        }
        if !updates.is_empty() {
            let rows: Vec<ContactUpdate> = updates.iter().map(|(u, _)| u.clone()).collect();
            match client.update_contacts(&rows).await {
                Ok(_) => {}
                // A contact deleted in amoCRM: it is added again as new, next time.
                Err(AmoError::NotFound(_)) => {}
                Err(e) => return Ok(stopped(engine, &connector, "amocrm.contacts.update", rows.len(), e).await),
            }
            for (u, d) in &updates {
                marks.push((u.request_id.clone().unwrap_or_default().as_str().into(), None, format!("{}:{d}", u.id)));
            }
            let detail = json!({"count": rows.len(), "outcome": "ok"});
            engine.audit_connector_call(&connector, "amocrm.contacts.update", "contacts", detail).await;
        }
        if !marks.is_empty() {
            engine.store.mark_synced(MARK, marks).await?;
        }
        place = next;
        connector = engine.keep_place(&connector, "contacts_push", json!({"at": place.0, "id": place.1})).await?;
    }
}

/// A failed write: in the journal, and the outcome that stops the run (the place is kept
/// before it, so the batch is tried again).
async fn stopped(engine: &Engine, connector: &Connector, action: &str, count: usize, e: AmoError) -> Ran {
    engine.audit_connector_call(connector, action, "contacts", json!({"count": count, "outcome": e.to_string()})).await;
    Ran { outcome: outcome(e), more: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amo(id: i64, name: &str, phones: &[&str], emails: &[&str]) -> AmoContact {
        AmoContact {
            id,
            name: name.into(),
            phones: phones.iter().map(|p| p.to_string()).collect(),
            emails: emails.iter().map(|p| p.to_string()).collect(),
            responsible_user_id: None,
            updated_at: 0,
            lead_ids: Vec::new(),
        }
    }

    #[test]
    fn an_amocrm_contact_is_kept_normalised_with_its_digest() {
        let s = synced(&amo(7, " Анна ", &["not a phone", "8 (999) 000-11-22"], &[" Anna@Example.ORG "]));
        assert_eq!(s.external_id, "amo-7");
        assert_eq!(
            (s.name.as_deref(), s.phone.as_deref(), s.email.as_deref()),
            (Some("Анна"), Some("+79990001122"), Some("anna@example.org"))
        );
        assert!(s.digest.starts_with("7:"));
        // The same contact as okno has it gives the same digest: it is not sent back.
        let d = digest(Some("Анна"), Some("+79990001122"), Some("anna@example.org"));
        assert_eq!(s.digest, format!("7:{d}"));
        assert_ne!(d, digest(Some("Анна"), Some("+79990001123"), Some("anna@example.org")));
        assert_ne!(digest(Some("a"), Some("b"), None), digest(Some("ab"), None, None), "parts do not run together");
    }
}
