//! The events pages: business events as they arrived, with what became of each — and, on an
//! event's own page, why: the data it carried, which rules matched and which did not (a false
//! condition, an error, a later time), and for every person a rule named whether they got a
//! message (channel, delivery ticks, the conversation) or why not, with what to do about it.
//!
//! ```text
//!  GET /ui/events ─► store.list_events(filters) ─► the list
//!  GET /ui/events/{id} ─► store.get_event + contacts + channels ─► rules, people, reasons, advice
//! ```
//!
//! Reasons are the store's stable codes (`unknown_external_id`, `no_identity`, …); each code
//! has its explanation and advice in both languages. For roles without the right to see
//! phones and emails, an event is masked once (`masking::event`, `masking::event_summary`, as
//! the API does) before anything of it is shown.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use okno_domain::ids::ContactId;
use okno_domain::model::Permission;
use okno_domain::time::{now_ms, Millis};
use okno_store::{EventDelivery, EventFilter, EventRecord, PageRequest, Unresolved, EVENT_STATUSES};
use serde::Deserialize;
use serde_json::{json, Value};

use super::inbox::display_name;
use super::{channel_map, channel_view, error_page, local_time, refuse, Session};
use crate::masking;
use crate::AppState;

fn t(s: &Session, key: &str) -> String {
    super::i18n::t(s.lang, key)
}

/// `2026-11-22 14:05:03 UTC`: an event's page names exact times.
pub fn full_time(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// The events page's filters: those of `GET /api/v1/events`, with the period's dates read in
/// the operator's time zone (`tz`, put there by the page's script; else the server's
/// `default_timezone`) and `to` holding its whole day.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsPageQuery {
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub status: Option<String>,
    pub key: Option<String>,
    /// A date (`2026-11-22`): from that day's midnight in `tz`.
    pub from: Option<String>,
    /// A date: to the end of that day in `tz`.
    pub to: Option<String>,
    pub tz: Option<String>,
    pub cursor: Option<String>,
}

impl EventsPageQuery {
    /// The store's filter: the period read in the operator's zone, `to` inclusive.
    fn filter(&self, default_tz: &str) -> okno_domain::Result<EventFilter> {
        let nonempty = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let tz = local_time::zone(self.tz.as_deref(), default_tz)?;
        let at = |v: &Option<String>, read: fn(&str, &jiff::tz::TimeZone) -> okno_domain::Result<jiff::Timestamp>| {
            nonempty(v).map(|t| read(&t, &tz).map(|ts| ts.as_millisecond())).transpose()
        };
        Ok(EventFilter {
            event_type: nonempty(&self.event_type),
            status: nonempty(&self.status),
            key: nonempty(&self.key),
            from: at(&self.from, local_time::day_start)?,
            to: at(&self.to, local_time::day_end)?,
        })
    }
}

/// `GET /ui/events`: the business events, newest first, with filters.
pub async fn page(State(state): State<AppState>, s: Session, uri: Uri) -> Response {
    match Query::<EventsPageQuery>::try_from_uri(&uri) {
        Ok(Query(q)) => list(&state, &s, q).await,
        Err(e) => error_page(&state.ui, &s, okno_domain::Error::invalid("invalid_query", e.body_text())),
    }
}

/// Up to this many events a page.
const PAGE: u32 = 50;

async fn list(state: &AppState, s: &Session, q: EventsPageQuery) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, s, Permission::Read) {
        return r;
    }
    let store = &state.engine.store;
    let default_tz = &state.engine.cfg.default_timezone;
    let loaded = async {
        let filter = q.filter(default_tz)?;
        let page = store.list_events(filter, PageRequest::new(Some(PAGE), q.cursor.clone())).await?;
        let mut types: Vec<String> = store.list_rules().await?.into_iter().map(|r| r.event).collect();
        types.sort();
        types.dedup();
        Ok::<_, okno_domain::Error>((page, types))
    }
    .await;
    let (page, types) = match loaded {
        Ok(v) => v,
        Err(e) => return error_page(ui, s, e),
    };
    let mut page = page;
    page.items.iter_mut().for_each(|e| masking::event_summary(s.role(), e));
    let rows: Vec<Value> = page
        .items
        .iter()
        .map(|e| {
            let c = &e.counts;
            json!({
                "id": e.id, "type": e.event_type, "key": e.key, "status": e.status,
                "time": super::short_time(e.created_at), "iso": okno_domain::time::to_rfc3339(e.created_at),
                "send_at": e.send_at.filter(|_| e.status == "scheduled").map(full_time),
                "rules": e.matched_rules, "sent": c.sent, "queued": c.queued, "failed": c.failed,
                "unresolved": c.unresolved, "people": c.sent + c.queued + c.failed + c.unresolved,
            })
        })
        .collect();
    // The filters as given, to fill the form in again and to carry on to the next page.
    let f = json!({
        "type": q.event_type, "status": q.status, "key": q.key, "from": q.from, "to": q.to,
        "tz": q.tz.clone().filter(|z| !z.trim().is_empty()).unwrap_or_else(|| default_tz.clone()),
    });
    let next_query = page.next.as_ref().map(|cursor| {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("type", &q.event_type),
            ("status", &q.status),
            ("key", &q.key),
            ("from", &q.from),
            ("to", &q.to),
            ("tz", &q.tz),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                pairs.append_pair(k, v);
            }
        }
        pairs.append_pair("cursor", cursor);
        pairs.finish()
    });
    ui.render(
        "events.html",
        s,
        json!({
            "title": t(s, "ev_events"), "nav": "events", "rows": rows, "f": f, "types": types,
            "statuses": EVENT_STATUSES, "next_query": next_query,
        }),
    )
}

/// The data an event carried, as `path → value` lines (`items.0.name`), in its order.
pub(crate) fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&path, v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}.{i}"), v, out);
            }
        }
        Value::String(text) => out.push((prefix.to_string(), text.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// Reason codes that are notes about a rule (shown with the rule), not a person left out.
const RULE_NOTES: [&str; 2] = ["condition_error", "delay_ignored"];

/// The explanation and the advice for a reason code, with `{value}`, `{name}` and `{id}`
/// filled in; `None` for a code the UI does not know (the stored reason is shown as it is).
fn explain(s: &Session, code: &str, value: &str, name: &str, id: &str) -> Option<(String, String)> {
    let why_key = format!("ev_why_{code}");
    let why = t(s, &why_key);
    if why == why_key {
        return None;
    }
    let fill = |text: String| text.replace("{value}", value).replace("{name}", name).replace("{id}", id);
    let advice = t(s, &format!("ev_do_{code}"));
    Some((fill(why), fill(advice)))
}

/// One person an event reached, or tried to.
fn delivery_view(
    s: &Session,
    d: &EventDelivery,
    names: &HashMap<String, String>,
    channels: &HashMap<&str, &okno_domain::model::Channel>,
    rule_names: &HashMap<String, String>,
) -> Value {
    let name = names.get(&d.contact_id).cloned().unwrap_or_else(|| format!("#{}", short_id(&d.contact_id)));
    let error = d.error.clone();
    let (why, advice) = match (d.message_id.is_some(), d.status.as_str()) {
        // No message could be made: the code says why.
        (false, _) => {
            let code = d.code.as_deref().unwrap_or("template_failed");
            match explain(s, code, error.as_deref().unwrap_or(""), &name, &d.contact_id) {
                Some((why, advice)) => (Some(why), Some(advice)),
                None => (error.clone(), None),
            }
        }
        (true, "failed") => {
            let (why, advice) = explain(s, "send_failed", error.as_deref().unwrap_or(""), &name, &d.contact_id)
                .unwrap_or((error.clone().unwrap_or_default(), String::new()));
            (Some(why), Some(advice))
        }
        (true, "queued") => (Some(t(s, "ev_waiting")), None),
        _ => (None, None),
    };
    let tried: Vec<String> =
        d.tried.iter().map(|c| channels.get(c.as_str()).map_or_else(|| c.clone(), |ch| ch.name.clone())).collect();
    json!({
        "got": d.message_id.is_some() && d.status != "failed",
        "contact_id": d.contact_id, "name": name, "status": d.status,
        "channel": d.channel_id.as_deref().map(|c| channel_view(channels.get(c).copied())),
        "conversation_id": d.conversation_id, "message_id": d.message_id,
        "why": why, "advice": advice, "code": d.code,
        "fallback": (tried.len() > 1).then(|| tried.join(" → ")),
        "rule": rule_names.get(&d.rule_id).cloned().unwrap_or_else(|| d.rule_id.clone()),
    })
}

/// A recipient a rule named who could not be reached.
fn unresolved_view(
    s: &Session,
    u: &Unresolved,
    names: &HashMap<String, String>,
    rule_names: &HashMap<String, String>,
) -> Value {
    let name = u.contact_id.as_ref().and_then(|id| names.get(id).cloned());
    let value = u.value.clone();
    let explained = u.code.as_deref().and_then(|code| {
        explain(
            s,
            code,
            value.as_deref().unwrap_or(""),
            name.as_deref().unwrap_or(""),
            u.contact_id.as_deref().unwrap_or(""),
        )
    });
    let (why, advice) = match explained {
        Some((why, advice)) => (why, Some(advice)),
        None => (u.reason.clone(), None),
    };
    json!({
        "contact_id": u.contact_id, "name": name, "value": value, "code": u.code,
        "recipient": u.recipient, "reason": u.reason, "why": why, "advice": advice,
        "rule": rule_names.get(&u.rule_id).cloned().unwrap_or_else(|| u.rule_id.clone()),
    })
}

fn short_id(id: &str) -> &str {
    &id[id.len().saturating_sub(6)..]
}

/// `GET /ui/events/{id}`
pub async fn detail(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    match detail_view(&state, &s, &id).await {
        Ok(ctx) => ui.render("event.html", &s, ctx),
        Err(e) => error_page(ui, &s, e),
    }
}

async fn detail_view(state: &AppState, s: &Session, id: &str) -> okno_domain::Result<Value> {
    let store = &state.engine.store;
    let mut ev: EventRecord = store.get_event(id).await?;
    // Everything below shows the event as this role may see it.
    masking::event(s.role(), &mut ev);
    let channels = store.list_channels().await?;
    let channels = channel_map(&channels);
    // Names of everyone the event concerns, read at once.
    let mut ids: Vec<ContactId> = ev.deliveries.iter().map(|d| ContactId::from(&d.contact_id)).collect();
    ids.extend(ev.unresolved.iter().filter_map(|u| u.contact_id.as_ref().map(ContactId::from)));
    let names: HashMap<String, String> =
        store.get_contacts(&ids).await?.iter().map(|c| (c.id.to_string(), display_name(c, s.role()))).collect();
    // Rule names as the event recorded them, else as the rules are called now.
    let mut rule_names: HashMap<String, String> =
        store.list_rules().await?.into_iter().map(|r| (r.id, r.name)).collect();
    rule_names.extend(ev.rules.iter().map(|r| (r.rule_id.clone(), r.rule_name.clone())));

    let data = &ev.data;
    let mut fields = Vec::new();
    flatten("", data, &mut fields);
    let fields: Vec<Value> = fields.into_iter().map(|(k, v)| json!({"path": k, "value": v})).collect();

    // Notes about a rule (its condition failed, its delay was ignored) go with the rule.
    let notes = |rule_id: &str| -> Vec<String> {
        ev.unresolved
            .iter()
            .filter(|u| u.rule_id == rule_id && u.code.as_deref().is_some_and(|c| RULE_NOTES.contains(&c)))
            .map(|u| u.reason.clone())
            .collect()
    };
    let now = now_ms();
    let rules: Vec<Value> = ev
        .rules
        .iter()
        .map(|r| {
            json!({
                "id": r.rule_id, "name": r.rule_name, "outcome": r.outcome, "detail": r.detail,
                "survey": r.rule_id.strip_prefix("survey:"),
                "run_at": r.run_at.map(full_time), "later": r.run_at.is_some_and(|at| at > now),
                "notes": notes(&r.rule_id),
            })
        })
        .collect();
    let deliveries: Vec<Value> =
        ev.deliveries.iter().map(|d| delivery_view(s, d, &names, &channels, &rule_names)).collect();
    let unresolved: Vec<Value> = ev
        .unresolved
        .iter()
        .filter(|u| !u.code.as_deref().is_some_and(|c| RULE_NOTES.contains(&c)))
        .map(|u| unresolved_view(s, u, &names, &rule_names))
        .collect();
    let got = deliveries.iter().filter(|d| d["got"] == true).count();
    Ok(json!({
        "title": format!("{} · {}", ev.event_type, ev.key), "nav": "events",
        "ev": {
            "id": ev.id, "type": ev.event_type, "key": ev.key, "status": ev.status,
            "created": full_time(ev.created_at), "processed": ev.processed_at.map(full_time),
            "send_at": ev.send_at.map(full_time), "later": ev.send_at.is_some_and(|at| at > now),
            "raw": serde_json::to_string_pretty(data).unwrap_or_default(),
        },
        "fields": fields, "rules": rules, "deliveries": deliveries, "unresolved": unresolved,
        "got": got, "people": deliveries.len() + unresolved.len(),
        "admin": s.role().allows(Permission::Configure),
    }))
}
