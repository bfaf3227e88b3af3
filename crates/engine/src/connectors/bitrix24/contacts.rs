//! The portal's contacts (and companies) and okno's kept in step, both ways, without
//! duplicates.
//!
//! ```json
//! "contacts": {"direction": "both", "every": 60, "companies": true}
//! ```
//!
//! ```text
//!  pull: the portal's contacts changed since the kept moment (`>=DATE_MODIFY`), walked by
//!        `>ID` with `start=-1`, the first page alone, the rest 50 pages a `batch`, the last id
//!        kept after each ─► written a page per transaction: found by
//!        `external_id` `b24-<id>` (`b24-company-<id>`), else claimed by phone or e-mail among
//!        okno's contacts no system claims, else made ─► the moment the walk began kept
//!  push: okno's contacts changed since the kept place, in order ─► those the portal has not
//!        seen like this (the digest in `attrs.bitrix24_sync` differs) ─► new ones 50
//!        `crm.contact.add` a `batch` and given `b24-<id>`; known ones read (50 `crm.contact.get`
//!        a batch, for their phone's and e-mail's value ids) and changed (50 `crm.contact.update`)
//!  a contact's event (offline, or the outgoing webhook) ─► that contact read and written at once
//! ```
//!
//! `attrs.bitrix24_sync` is `<portal id>:<digest of name, phone, e-mail>`: what both sides last
//! agreed on. Every write carries okno's `auth_connector`, so the portal does not queue it back.
//! Calls keep to the portal's bucket (2 a second on most plans): 100,000 contacts pushed are
//! 2,000 batches, about 17 minutes; pulled, 40 batches.

use std::time::{Duration, Instant};

use okno_connector_bitrix24::{B24Client, B24Error, Command, BATCH_MAX};
use okno_domain::ids::ContactId;
use okno_domain::model::{normalize_phone, Connector, Contact};
use okno_domain::Result;
use okno_store::{SyncedContact, MAX_SYNC_PAGE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::outcome;
use crate::connectors::Outcome;
use crate::Engine;

/// The attrs key of what both sides last agreed on.
pub const MARK: &str = "bitrix24_sync";
/// okno's external id for a portal contact: `b24-<id>`; for a company `b24-company-<id>`.
pub const CONTACT_PREFIX: &str = "b24-";
pub const COMPANY_PREFIX: &str = "b24-company-";
/// Rows in a page of a list.
const PAGE: u64 = 50;
/// How long one run of the standing job may sync before it lets others run.
const SLICE: Duration = Duration::from_secs(20);

/// Which way contacts go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    FromBitrix24,
    ToBitrix24,
}

/// The connector's contact sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactSync {
    #[serde(default)]
    pub direction: Direction,
    /// Seconds between looks for changes (events bring the portal's sooner); 60 unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
    /// Send okno's contacts that have neither phone nor e-mail too.
    #[serde(default)]
    pub all: bool,
    /// Read the portal's companies too (as contacts named by their title).
    #[serde(default)]
    pub companies: bool,
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

/// The digest of what a contact says: name, phone, e-mail.
fn digest(name: Option<&str>, phone: Option<&str>, email: Option<&str>) -> String {
    let mut h = Sha256::new();
    for part in [name, phone, email] {
        h.update(part.unwrap_or("").as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

/// A text field of a row (strings, numbers).
fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: &Value, key: &str) -> Option<i64> {
    text(v, key).and_then(|s| s.parse().ok())
}

/// The values of a multi-field (`PHONE`, `EMAIL`).
fn values(v: &Value, key: &str) -> Vec<(Option<i64>, String)> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| Some((int(m, "ID"), text(m, "VALUE")?))).collect())
        .unwrap_or_default()
}

/// A portal contact (or company) row as okno keeps it, or `None` for a row without an id.
pub(crate) fn synced(row: &Value, company: bool) -> Option<SyncedContact> {
    let id = int(row, "ID")?;
    let name = if company {
        text(row, "TITLE")
    } else {
        let parts: Vec<String> = ["NAME", "SECOND_NAME", "LAST_NAME"].iter().filter_map(|k| text(row, k)).collect();
        Some(parts.join(" ")).filter(|n| !n.is_empty())
    };
    let phone = values(row, "PHONE").iter().find_map(|(_, p)| normalize_phone(p).ok());
    let email = values(row, "EMAIL").into_iter().map(|(_, e)| e.to_lowercase()).find(|e| e.contains('@'));
    let d = digest(name.as_deref(), phone.as_deref(), email.as_deref());
    let (external_id, mark) = if company {
        (format!("{COMPANY_PREFIX}{id}"), format!("company-{id}:{d}"))
    } else {
        (format!("{CONTACT_PREFIX}{id}"), format!("{id}:{d}"))
    };
    Some(SyncedContact { external_id, name, phone, email, digest: mark })
}

/// The portal id okno knows for a contact: its `b24-<id>`, else the one both sides agreed on.
fn b24_id(c: &Contact) -> Option<i64> {
    c.external_id
        .as_deref()
        .and_then(|x| x.strip_prefix(CONTACT_PREFIX))
        .and_then(|x| x.parse().ok())
        .or_else(|| mark_of(c).and_then(|m| m.split_once(':')).and_then(|(id, _)| id.parse().ok()))
}

fn mark_of(c: &Contact) -> Option<&str> {
    c.attrs.get(MARK).and_then(Value::as_str)
}

/// okno's contacts the sync leaves alone: the portal's companies and users.
fn not_a_contact(c: &Contact) -> bool {
    c.external_id.as_deref().is_some_and(|x| x.starts_with(COMPANY_PREFIX) || x.starts_with(super::USER_PREFIX))
}

/// The standing job's share: a run when due (or when the last one had more to do); the
/// outcome, and when to look again.
pub(super) async fn due_sync(
    engine: &Engine,
    connector: &Connector,
    client: &B24Client,
    sync: &ContactSync,
) -> Result<(Outcome, Duration)> {
    let every = sync.every();
    let connector = engine.store.get_connector(&connector.id).await?;
    let last = connector.info.get("contacts_at").and_then(Value::as_i64).unwrap_or(0);
    let resumed = connector.info.get("contacts_more").and_then(Value::as_bool).unwrap_or(false);
    let due_in = (last + every.as_millis() as i64 - okno_domain::time::now_ms()).max(0);
    if due_in > 0 && !resumed {
        return Ok((Outcome::Done, Duration::from_millis(due_in as u64)));
    }
    let ran = run(engine, &connector, client, sync).await?;
    // A run the portal cut short (a limit, a token) is still due when the outbox tries again.
    let unfinished = ran.more || ran.outcome.tried_again();
    let mut places = vec![("contacts_more", json!(unfinished))];
    if !unfinished {
        places.push(("contacts_at", json!(okno_domain::time::now_ms())));
    }
    engine.keep_places(&connector, places).await?;
    Ok((ran.outcome, if ran.more { Duration::ZERO } else { every }))
}

/// What a run of the sync came to.
pub(crate) struct Ran {
    pub outcome: Outcome,
    /// More is waiting (the slice ran out): run again at once.
    pub more: bool,
}

/// Pulls the portal's changes, then pushes okno's (as the direction allows).
pub(crate) async fn run(engine: &Engine, connector: &Connector, client: &B24Client, sync: &ContactSync) -> Result<Ran> {
    let started = Instant::now();
    if sync.direction != Direction::ToBitrix24 {
        let mut kinds = vec![false];
        if sync.companies {
            kinds.push(true);
        }
        for company in kinds {
            match pull(engine, connector, client, company, started).await? {
                Err(stop) => return Ok(Ran { outcome: stop, more: false }),
                Ok(true) => return Ok(Ran { outcome: Outcome::Done, more: true }),
                Ok(false) => {}
            }
        }
    }
    if sync.direction != Direction::FromBitrix24 {
        let connector = engine.store.get_connector(&connector.id).await?;
        return push(engine, &connector, client, sync, started).await;
    }
    Ok(Ran { outcome: Outcome::Done, more: false })
}

/// One contact or company the portal said changed, read and written at once.
pub(super) async fn one(engine: &Engine, client: &B24Client, company: bool, id: i64) -> Result<Outcome> {
    let method = if company { "crm.company.get" } else { "crm.contact.get" };
    let row = match client.call(method, json!({ "id": id })).await {
        Ok(r) => r.result,
        Err(e) => return Ok(outcome(e)),
    };
    if let Some(s) = synced(&row, company) {
        engine.store.sync_contacts(MARK, vec![s]).await?;
    }
    Ok(Outcome::Done)
}

/// The portal's contacts (or companies) changed since the kept moment, written to okno. The
/// walk goes in id order (`>ID` with `start=-1`, the portal's fast way through a big table:
/// no count, no offset), a page read alone and then 50 pages a `batch`, each page's filter
/// naming the last id of the page before (`$result[…][49][ID]`). Each batch is written and its
/// last id kept before the next is asked for, so a walk cut short goes on from there. The next
/// walk reads from the moment this one began by the portal's clock: a contact changed during
/// the walk behind its place is read then. `Ok(Ok(true))`: the slice ran out with more to read.
async fn pull(
    engine: &Engine,
    connector: &Connector,
    client: &B24Client,
    company: bool,
    started: Instant,
) -> Result<std::result::Result<bool, Outcome>> {
    let (method, place) =
        if company { ("crm.company.list", "companies_pull") } else { ("crm.contact.list", "contacts_pull") };
    let mut connector = engine.store.get_connector(&connector.id).await?;
    let kept = connector.info.get(place).cloned().unwrap_or(Value::Null);
    let since = kept.get("since").and_then(Value::as_str).map(str::to_string);
    let mut after = kept.get("after").and_then(Value::as_i64).unwrap_or(0);
    let mut began = kept.get("began").and_then(Value::as_str).map(str::to_string);
    let select: Vec<&str> = if company {
        vec!["ID", "TITLE", "PHONE", "EMAIL", "DATE_MODIFY"]
    } else {
        vec!["ID", "NAME", "SECOND_NAME", "LAST_NAME", "PHONE", "EMAIL", "DATE_MODIFY"]
    };
    let params = |after: Value| {
        let mut filter = Map::new();
        if let Some(s) = &since {
            // The portal's moments are whole seconds: the last one is read again, and found
            // unchanged.
            filter.insert(">=DATE_MODIFY".into(), json!(s));
        }
        filter.insert(">ID".into(), after);
        json!({"filter": filter, "order": {"ID": "ASC"}, "select": select, "start": -1})
    };
    let mut read = 0usize;
    let mut newest: Option<(i64, String)> = None;
    loop {
        let mut pages: Vec<Vec<Value>> = Vec::new();
        if began.is_none() {
            // The walk's first page alone: the portal's clock at its start is the next walk's
            // moment.
            let first = match client.call(method, params(json!(after))).await {
                Ok(r) => r,
                Err(e) => return Ok(Err(outcome(e))),
            };
            began = Some(first.time.date_start.clone().unwrap_or_default());
            pages.push(first.result.as_array().cloned().unwrap_or_default());
        } else {
            let cmds: Vec<Command> = (0..BATCH_MAX)
                .map(|j| {
                    let after =
                        if j == 0 { json!(after) } else { json!(format!("$result[p{}][{}][ID]", j - 1, PAGE - 1)) };
                    Command::new(&format!("p{j}"), method, params(after))
                })
                .collect();
            let reply = match client.batch(&cmds, false).await {
                Ok(r) => r,
                Err(e) => return Ok(Err(outcome(e))),
            };
            for c in &cmds {
                if let Some(refusal) = reply.errors.get(&c.key) {
                    return Ok(Err(outcome(refusal.clone().into_error())));
                }
                let page = reply.results.get(&c.key).and_then(Value::as_array).cloned().unwrap_or_default();
                let short = page.len() < PAGE as usize;
                pages.push(page);
                // A short page ends the walk: the pages after it named an id that was not there.
                if short {
                    break;
                }
            }
        }
        let done = pages.last().is_none_or(|p| p.len() < PAGE as usize);
        let rows: Vec<Value> = pages.into_iter().flatten().collect();
        for r in &rows {
            if let Some(d) = text(r, "DATE_MODIFY") {
                if let Some(ms) = okno_domain::time::parse_rfc3339(&d) {
                    if newest.as_ref().is_none_or(|(n, _)| ms > *n) {
                        newest = Some((ms, d));
                    }
                }
            }
        }
        after = rows.iter().filter_map(|r| int(r, "ID")).max().unwrap_or(after).max(after);
        read += rows.len();
        let people: Vec<SyncedContact> = rows.iter().filter_map(|r| synced(r, company)).collect();
        for page in people.chunks(MAX_SYNC_PAGE) {
            engine.store.sync_contacts(MARK, page.to_vec()).await?;
        }
        if done {
            // A portal that does not say its clock: the newest change read is the moment.
            let moment = began.filter(|b| !b.is_empty()).or(newest.map(|(_, d)| d)).or(since.clone());
            engine.keep_place(&connector, place, json!({ "since": moment })).await?;
            let action = if company { "bitrix24.companies.read" } else { "bitrix24.contacts.read" };
            engine.audit_connector_call(&connector, action, "contacts", json!({"count": read, "since": since})).await;
            return Ok(Ok(false));
        }
        connector =
            engine.keep_place(&connector, place, json!({"since": since, "after": after, "began": began})).await?;
        if started.elapsed() > SLICE {
            let action = if company { "bitrix24.companies.read" } else { "bitrix24.contacts.read" };
            engine.audit_connector_call(&connector, action, "contacts", json!({"count": read, "since": since})).await;
            return Ok(Ok(true));
        }
    }
}

/// The fields okno writes of a contact: `NAME` and `LAST_NAME` split from its name, its phone
/// and e-mail (the portal's first value of each changed in place, by its id).
fn fields(c: &Contact, phone_id: Option<i64>, email_id: Option<i64>) -> Value {
    let name = c.name.clone().or_else(|| c.phone.clone()).or_else(|| c.email.clone()).unwrap_or_default();
    let (first, last) = match name.trim().split_once(char::is_whitespace) {
        Some((f, l)) => (f.to_string(), l.trim().to_string()),
        None => (name.trim().to_string(), String::new()),
    };
    let mut f = json!({"NAME": first, "LAST_NAME": last});
    let multi = |value: &str, id: Option<i64>| {
        let mut v = json!({"VALUE": value, "VALUE_TYPE": "WORK"});
        if let Some(id) = id {
            v["ID"] = json!(id);
        }
        json!([v])
    };
    if let Some(p) = &c.phone {
        f["PHONE"] = multi(p, phone_id);
    }
    if let Some(e) = &c.email {
        f["EMAIL"] = multi(e, email_id);
    }
    f
}

/// okno's contacts changed since the kept place, sent to the portal 50 a batch.
async fn push(
    engine: &Engine,
    connector: &Connector,
    client: &B24Client,
    sync: &ContactSync,
    started: Instant,
) -> Result<Ran> {
    let mut place = (
        connector.info.pointer("/contacts_push/at").and_then(Value::as_i64).unwrap_or(0),
        connector.info.pointer("/contacts_push/id").and_then(Value::as_str).unwrap_or("").to_string(),
    );
    let mut connector = connector.clone();
    let source = client.auth_connector().unwrap_or_default().to_string();
    let write = |method: &str, key: String, mut params: Value| {
        params["params"] = json!({"REGISTER_SONET_EVENT": "N"});
        if !source.is_empty() {
            params["auth_connector"] = json!(source);
        }
        Command::new(&key, method, params)
    };
    loop {
        if started.elapsed() > SLICE {
            return Ok(Ran { outcome: Outcome::Done, more: true });
        }
        let changed = engine.store.contacts_changed_since(place.clone(), BATCH_MAX as u32).await?;
        let Some(last) = changed.last() else { return Ok(Ran { outcome: Outcome::Done, more: false }) };
        let next = (last.updated_at, last.id.to_string());
        let mut adds: Vec<(&Contact, String)> = Vec::new();
        let mut updates: Vec<(&Contact, i64, String)> = Vec::new();
        for c in &changed {
            if not_a_contact(c) || (!sync.all && c.phone.is_none() && c.email.is_none()) {
                continue;
            }
            let d = digest(c.name.as_deref(), c.phone.as_deref(), c.email.as_deref());
            if mark_of(c).and_then(|m| m.split_once(':')).is_some_and(|(_, old)| old == d) {
                continue;
            }
            match b24_id(c) {
                Some(id) => updates.push((c, id, d)),
                None => adds.push((c, d)),
            }
        }
        let mut marks: Vec<(ContactId, Option<String>, String)> = Vec::new();
        if !adds.is_empty() {
            let cmds: Vec<Command> = adds
                .iter()
                .enumerate()
                .map(|(i, (c, _))| write("crm.contact.add", format!("a{i}"), json!({"fields": fields(c, None, None)})))
                .collect();
            let reply = match client.batch(&cmds, false).await {
                Ok(r) => r,
                Err(e) => return Ok(stopped(engine, &connector, "bitrix24.contacts.add", cmds.len(), e).await),
            };
            for (i, (c, d)) in adds.iter().enumerate() {
                let id = reply.results.get(&format!("a{i}")).and_then(|v| match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                });
                if let Some(id) = id {
                    marks.push((c.id.clone(), Some(format!("{CONTACT_PREFIX}{id}")), format!("{id}:{d}")));
                }
            }
            let detail = json!({"count": cmds.len(), "failed": reply.errors.len(), "outcome": "ok"});
            engine.audit_connector_call(&connector, "bitrix24.contacts.add", "contacts", detail).await;
        }
        if !updates.is_empty() {
            let reads: Vec<Command> = updates
                .iter()
                .enumerate()
                .map(|(i, (_, id, _))| Command::new(&format!("g{i}"), "crm.contact.get", json!({ "id": id })))
                .collect();
            let found = match client.batch(&reads, false).await {
                Ok(r) => r,
                Err(e) => return Ok(stopped(engine, &connector, "bitrix24.contacts.read", reads.len(), e).await),
            };
            let mut cmds = Vec::new();
            let mut written = Vec::new();
            for (i, (c, id, d)) in updates.iter().enumerate() {
                // A contact deleted in the portal stays deleted there.
                let Some(row) = found.results.get(&format!("g{i}")).filter(|r| r.is_object()) else { continue };
                let phone_id = values(row, "PHONE").first().and_then(|(id, _)| *id);
                let email_id = values(row, "EMAIL").first().and_then(|(id, _)| *id);
                cmds.push(write(
                    "crm.contact.update",
                    format!("u{i}"),
                    json!({"id": id, "fields": fields(c, phone_id, email_id)}),
                ));
                written.push((format!("u{i}"), c.id.clone(), format!("{id}:{d}")));
            }
            if !cmds.is_empty() {
                let reply = match client.batch(&cmds, false).await {
                    Ok(r) => r,
                    Err(e) => return Ok(stopped(engine, &connector, "bitrix24.contacts.update", cmds.len(), e).await),
                };
                for (key, cid, mark) in written {
                    if !reply.errors.contains_key(&key) {
                        marks.push((cid, None, mark));
                    }
                }
                let detail = json!({"count": cmds.len(), "failed": reply.errors.len(), "outcome": "ok"});
                engine.audit_connector_call(&connector, "bitrix24.contacts.update", "contacts", detail).await;
            }
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
async fn stopped(engine: &Engine, connector: &Connector, action: &str, count: usize, e: B24Error) -> Ran {
    engine.audit_connector_call(connector, action, "contacts", json!({"count": count, "outcome": e.to_string()})).await;
    Ran { outcome: outcome(e), more: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_portal_contact_is_kept_normalised_with_its_digest() {
        let row = json!({"ID": "7", "NAME": " Анна ", "LAST_NAME": "Петрова",
                         "PHONE": [{"ID": "11", "VALUE": "not a phone"}, {"ID": "12", "VALUE": "8 (999) 000-11-22"}],
                         "EMAIL": [{"ID": "13", "VALUE": " Anna@Example.ORG "}]});
        let s = synced(&row, false).unwrap();
        assert_eq!(s.external_id, "b24-7");
        assert_eq!(
            (s.name.as_deref(), s.phone.as_deref(), s.email.as_deref()),
            (Some("Анна Петрова"), Some("+79990001122"), Some("anna@example.org"))
        );
        let d = digest(Some("Анна Петрова"), Some("+79990001122"), Some("anna@example.org"));
        assert_eq!(s.digest, format!("7:{d}"), "okno's same contact gives the same digest: not sent back");
        let c = synced(&json!({"ID": 5, "TITLE": "ООО Ромашка"}), true).unwrap();
        assert_eq!((c.external_id.as_str(), c.name.as_deref()), ("b24-company-5", Some("ООО Ромашка")));
        assert!(synced(&json!({"NAME": "no id"}), false).is_none());
        assert_ne!(digest(Some("a"), Some("b"), None), digest(Some("ab"), None, None), "parts do not run together");
    }

    proptest! {
        #[test]
        fn any_row_is_read_or_passed_over_without_a_panic(
            id in proptest::option::of(".{0,12}"), name in ".{0,20}", phone in ".{0,20}", email in ".{0,20}",
            company in any::<bool>(),
        ) {
            let row = json!({"ID": id, "NAME": name, "TITLE": name, "PHONE": [{"VALUE": phone}], "EMAIL": [{"VALUE": email}]});
            if let Some(s) = synced(&row, company) {
                prop_assert!(s.external_id.starts_with(CONTACT_PREFIX));
                prop_assert!(s.phone.is_none_or(|p| p.starts_with('+') || p.chars().all(|c| c.is_ascii_digit())));
            }
        }
    }
}
