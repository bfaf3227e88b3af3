//! The portal's telephony: its call records in the people's history in okno, each a business
//! event (`call.answered`, `call.missed`…) rules can act on.
//!
//! ```json
//! "calls": {"every": 60}
//! ```
//!
//! ```text
//!  the standing job (every `every` s), or ONVOXIMPLANTCALLEND posted ─► voximplant.statistic.get
//!      records after the kept `ID`, every page ─► each stored under the number's contact (source:
//!      the connector, the call's CALL_ID once) with the employee's name and the recording
//!      ─► the place kept after the last
//! ```

use std::collections::HashMap;
use std::time::Duration;

use okno_connector_bitrix24::{B24Client, CallRecord, CallType};
use okno_domain::model::{normalize_phone, CallDirection, CallStatus, Connector};
use okno_domain::Result;
use okno_store::NewCall;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::outcome;
use crate::connectors::Outcome;
use crate::Engine;

/// Where the last record read is kept.
const PLACE: &str = "calls_after";
/// The most pages one pull reads.
const PAGES: usize = 40;

/// The connector's call records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calls {
    /// Seconds between looks (the end of each call is posted sooner); 60 unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
}

impl Calls {
    pub(super) fn check(&self) -> std::result::Result<(), String> {
        if self.every.is_some_and(|s| !(5..=86_400).contains(&s)) {
            return Err("`calls.every` is 5..86400 seconds".into());
        }
        Ok(())
    }

    fn every(&self) -> Duration {
        Duration::from_secs(self.every.unwrap_or(60))
    }
}

/// A record as okno keeps it: `None` for one without a number okno can read.
pub(crate) fn call_of(source: &str, r: &CallRecord, operator: Option<String>) -> Option<NewCall> {
    let phone = normalize_phone(r.phone_number.as_deref()?).ok()?;
    let direction = match r.call_type {
        CallType::Outgoing | CallType::Callback | CallType::Informational => CallDirection::Out,
        _ => CallDirection::In,
    };
    let status = match r.failed_code.as_deref().map(str::trim) {
        Some("200") => CallStatus::Answered,
        Some("486") => CallStatus::Busy,
        Some("304" | "480" | "603" | "487") => CallStatus::Missed,
        _ if r.duration > 0 => CallStatus::Answered,
        _ => CallStatus::Failed,
    };
    let started_at = r.start_date.as_deref().and_then(okno_domain::time::parse_rfc3339)?;
    let recording_url = r
        .record_url
        .clone()
        .filter(|u| u.len() <= 2000 && url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https")));
    Some(NewCall {
        source: source.to_string(),
        external_id: r.call_id.clone().unwrap_or_else(|| r.id.to_string()),
        phone,
        name: None,
        direction,
        status,
        operator,
        started_at,
        duration: r.duration.clamp(0, 7 * 24 * 3600),
        recording_url,
    })
}

/// The standing job's share: a pull when due; the outcome, and when to look again.
pub(super) async fn due_pull(
    engine: &Engine,
    connector: &Connector,
    client: &B24Client,
    calls: &Calls,
) -> Result<(Outcome, Duration)> {
    let every = calls.every();
    let connector = engine.store.get_connector(&connector.id).await?;
    let last = connector.info.get("calls_at").and_then(Value::as_i64).unwrap_or(0);
    let due_in = (last + every.as_millis() as i64 - okno_domain::time::now_ms()).max(0);
    if due_in > 0 {
        return Ok((Outcome::Done, Duration::from_millis(due_in as u64)));
    }
    let o = pull(engine, &connector, client).await?;
    // A look the portal cut short stays due: the outbox's next try reads the calls.
    if !o.tried_again() {
        engine.keep_place(&connector, "calls_at", json!(okno_domain::time::now_ms())).await?;
    }
    Ok((o, every))
}

/// The records after the kept one, stored with their events.
pub(super) async fn pull(engine: &Engine, connector: &Connector, client: &B24Client) -> Result<Outcome> {
    let after =
        engine.store.connector_place(&connector.id, PLACE).await?.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let mut records = Vec::new();
    let mut start = 0u64;
    for _ in 0..PAGES {
        let page = match client.calls(json!({">ID": after}), start).await {
            Ok(p) => p,
            Err(e) => return Ok(outcome(e)),
        };
        records.extend(page.items);
        match page.next {
            Some(n) => start = n,
            None => break,
        }
    }
    if records.is_empty() {
        return Ok(Outcome::Done);
    }
    let mut names: HashMap<i64, Option<String>> = HashMap::new();
    let mut kept = 0;
    for r in &records {
        let operator = match r.portal_user_id.filter(|u| *u > 0) {
            Some(u) => {
                if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(u) {
                    let name = match client.users(json!({ "ID": u })).await {
                        Ok(users) => users.first().map(|x| {
                            [x.name.as_deref(), x.last_name.as_deref()]
                                .iter()
                                .flatten()
                                .filter(|s| !s.is_empty())
                                .copied()
                                .collect::<Vec<_>>()
                                .join(" ")
                        }),
                        Err(e) => return Ok(outcome(e)),
                    };
                    slot.insert(name.filter(|n| !n.is_empty()).or(Some(u.to_string())));
                }
                names.get(&u).cloned().flatten()
            }
            None => None,
        };
        if let Some(call) = call_of(connector.id.as_str(), r, operator) {
            let (stored, _) = engine.store.record_call(call).await?;
            engine.call_event(&stored).await?;
            kept += 1;
        }
    }
    let newest = records.iter().map(|r| r.id).max().unwrap_or(after).max(after);
    engine.store.keep_connector_place(&connector.id, PLACE, &newest.to_string()).await?;
    let detail = json!({"count": records.len(), "kept": kept, "after": after});
    engine.audit_connector_call(connector, "bitrix24.calls.read", "calls", detail).await;
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(code: &str, t: i64, duration: i64) -> CallRecord {
        CallRecord {
            id: 9,
            call_id: Some("externalCall.1".into()),
            call_type: CallType::from_code(t),
            portal_user_id: Some(1),
            portal_number: None,
            phone_number: Some("8 (999) 000-11-22".into()),
            start_date: Some("2026-12-07T10:30:00+03:00".into()),
            duration,
            failed_code: Some(code.into()),
            record_url: Some("https://p.bitrix24.ru/rec/1.mp3".into()),
            record_file_id: None,
            crm_entity_type: None,
            crm_entity_id: None,
            crm_activity_id: None,
            fields: Default::default(),
        }
    }

    #[test]
    fn a_record_is_mapped_with_its_number_normalised() {
        let c = call_of("k", &record("200", 2, 61), Some("Ольга".into())).unwrap();
        assert_eq!(
            (c.phone.as_str(), c.direction, c.status),
            ("+79990001122", CallDirection::In, CallStatus::Answered)
        );
        assert_eq!((c.external_id.as_str(), c.duration, c.operator.as_deref()), ("externalCall.1", 61, Some("Ольга")));
        assert_eq!(c.started_at, okno_domain::time::parse_rfc3339("2026-12-07T07:30:00Z").unwrap());
        let missed = call_of("k", &record("304", 2, 0), None).unwrap();
        assert_eq!(missed.status, CallStatus::Missed);
        assert_eq!(call_of("k", &record("486", 1, 0), None).unwrap().direction, CallDirection::Out);
        let mut bad = record("200", 2, 1);
        bad.phone_number = Some("anonymous".into());
        assert!(call_of("k", &bad, None).is_none(), "no number okno can read");
        let mut file = record("200", 2, 1);
        file.record_url = Some("file:///etc/passwd".into());
        assert!(call_of("k", &file, None).unwrap().recording_url.is_none());
    }
}
