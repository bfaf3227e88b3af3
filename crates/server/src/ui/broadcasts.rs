//! Broadcasts: the list of mailings first, with their status and progress (refreshed while
//! one runs); «New broadcast» opens the form on its own page — for contact groups, a pasted
//! list of people (contact ids or external ids) and a filter (group, attributes, text, channel
//! kind), counting the audience before it starts, an optional start time picked in the
//! operator's time zone —; pause / resume / cancel, and a mailing's report (failures by
//! reason, answers to its buttons, people who opted out). Needs the `Write` permission, as the
//! API does.
//!
//! ```text
//!  list ──«New broadcast»──► form ──count──► audience worked out as the engine will ──► form + count
//!       ──start (with the count seen)──► counted again; the same? ──► POST as the API does
//!                                                      differs? ──► the form, new count
//! ```

use std::collections::HashSet;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use okno_domain::ids::ContactId;
use okno_domain::model::{ChannelKind, Permission};
use okno_engine::broadcasts::{Audience, AudienceFilter};
use okno_store::{Broadcast, BroadcastAction, ContactFilter, PageRequest};
use serde_json::{json, Map, Value};

use super::{error_page, local_time, refuse, short_time, Form, Session};
use crate::AppState;

fn t(s: &Session, key: &str) -> String {
    super::i18n::t(s.lang, key)
}

/// A broadcast's audience in a few words.
fn audience_summary(a: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(g) = a["groups"].as_array().filter(|g| !g.is_empty()) {
        parts.push(g.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "));
    }
    if let Some(l) = a["contact_ids"].as_array().filter(|l| !l.is_empty()) {
        parts.push(format!("[{}]", l.len()));
    }
    if let Some(f) = a["filter"].as_object() {
        let mut conds: Vec<String> = Vec::new();
        if let Some(g) = f.get("group").and_then(Value::as_str) {
            conds.push(format!("∈ {g}"));
        }
        if let Some(attrs) = f.get("attrs").and_then(Value::as_object) {
            conds.extend(
                attrs.iter().map(|(k, v)| format!("{k}={}", v.as_str().map(str::to_string).unwrap_or(v.to_string()))),
            );
        }
        if let Some(q) = f.get("q").and_then(Value::as_str) {
            conds.push(format!("«{q}»"));
        }
        if let Some(k) = f.get("channel_kind").and_then(Value::as_str) {
            conds.push(k.to_string());
        }
        parts.push(conds.join(" & "));
    }
    parts.join("; ")
}

fn view(b: &Broadcast) -> Value {
    let share = |n: i64| if b.counts.total > 0 { n * 100 / b.counts.total } else { 0 };
    json!({
        "id": b.id, "name": b.name, "status": b.status, "created": short_time(b.created_at),
        "created_iso": okno_domain::time::to_rfc3339(b.created_at),
        "send_at": b.send_at.map(short_time), "send_at_iso": b.send_at.map(okno_domain::time::to_rfc3339),
        "total": b.counts.total, "sent": b.counts.sent,
        "failed": b.counts.failed, "pending": b.counts.pending, "skipped": b.counts.skipped,
        "cancelled": b.counts.cancelled, "sent_pct": share(b.counts.sent), "failed_pct": share(b.counts.failed),
        "groups": b.spec["audience"]["groups"], "audience": audience_summary(&b.spec["audience"]), "text": b.spec["text"],
    })
}

/// The list's page: `cursor` is the previous page's `next`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    pub cursor: Option<String>,
}

/// `GET /ui/broadcasts`: the list, newest first, 50 a page.
pub async fn page(State(state): State<AppState>, s: Session, Query(q): Query<ListQuery>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Write) {
        return r;
    }
    let list = match state.engine.store.list_broadcasts(PageRequest::new(Some(50), q.cursor)).await {
        Ok(l) => l,
        Err(e) => return error_page(ui, &s, e),
    };
    let rows: Vec<Value> = list.items.iter().map(view).collect();
    let live = list.items.iter().any(|b| b.status == "running" || b.status == "scheduled");
    ui.render(
        "broadcasts.html",
        &s,
        json!({"title": t(&s, "broadcasts"), "nav": "broadcasts", "rows": rows, "live": live, "next": list.next}),
    )
}

/// `GET /ui/broadcasts/new`: the form.
pub async fn new_form(State(state): State<AppState>, s: Session) -> Response {
    form_page(&state, &s, Errors::new(), Value::Null, None).await
}

/// Errors on the form, in the operator's language: `_` above it, `send_at` next to the time.
type Errors = std::collections::BTreeMap<&'static str, String>;

/// The form; `counted` is the audience just counted (`{"count", "sample"}`).
async fn form_page(state: &AppState, s: &Session, errors: Errors, form: Value, counted: Option<Value>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, s, Permission::Write) {
        return r;
    }
    // The kinds this okno carries: a filter by a kind no channel can have would always be empty.
    let kinds: Vec<&str> = state.engine.platforms.all().into_iter().map(|p| p.kind().as_str()).collect();
    let default_tz = &state.engine.cfg.default_timezone;
    let mut resp = ui.render(
        "broadcast_new.html",
        s,
        json!({
            "title": t(s, "bc_new"), "nav": "broadcasts", "errors": errors, "form": form, "counted": counted,
            "kinds": kinds, "default_tz": default_tz,
        }),
    );
    if !errors.is_empty() {
        *resp.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    resp
}

/// The form's general error for `e`: the message of a check of this page in the operator's
/// language, else the engine's own.
fn general(e: okno_domain::Error) -> Errors {
    Errors::from([("_", e.message)])
}

/// The start time the form names, read in the operator's time zone, as RFC 3339 UTC; a time
/// in the past is refused. `Err` holds the message for next to the field.
fn send_at_of(state: &AppState, s: &Session, form: &Form) -> Result<Option<String>, String> {
    let Some(value) = form.field("send_at") else { return Ok(None) };
    let tz = local_time::zone(form.get("tz"), &state.engine.cfg.default_timezone)
        .map_err(|e| t(s, "time_unknown_zone").replace("{value}", form.get("tz").unwrap_or(&e.message)))?;
    match local_time::parse_future(&value, &tz, jiff::Timestamp::now()) {
        Ok(at) => Ok(Some(local_time::to_rfc3339(at))),
        Err(e) if e.code == "time_in_past" => Err(t(s, "time_in_past")
            .replace("{value}", &value.replace('T', " "))
            .replace("{zone}", &local_time::zone_name(&tz))),
        Err(_) => Err(t(s, "time_invalid").replace("{value}", &value)),
    }
}

/// Most entries a pasted list may hold.
const MAX_LIST: usize = 10_000;

/// A pasted list of people, read: the contacts its entries name, in order, each once, and the
/// entries that name nobody.
pub(super) struct PeopleList {
    pub found: Vec<ContactId>,
    pub unknown: Vec<String>,
}

/// Reads a pasted list of people — contact ids or external ids, separated by lines, commas,
/// semicolons or blanks — for a broadcast's audience and a survey's start alike. More than
/// [`MAX_LIST`] entries is refused (`list_too_long`, in the operator's language).
pub(super) async fn read_people_list(state: &AppState, s: &Session, text: &str) -> okno_domain::Result<PeopleList> {
    let mut entries: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for e in text.split(|c: char| c == ',' || c == ';' || c.is_whitespace()).filter(|e| !e.is_empty()) {
        if seen.insert(e) {
            entries.push(e);
        }
    }
    if entries.len() > MAX_LIST {
        let text =
            t(s, "list_too_long").replace("{n}", &entries.len().to_string()).replace("{max}", &MAX_LIST.to_string());
        return Err(okno_domain::Error::invalid("list_too_long", text));
    }
    let store = &state.engine.store;
    let mut by_id = HashSet::new();
    for chunk in entries.chunks(500) {
        let ids: Vec<ContactId> = chunk.iter().map(|&e| e.into()).collect();
        by_id.extend(store.get_contacts(&ids).await?.into_iter().map(|c| c.id));
    }
    let (mut found, mut unknown) = (Vec::new(), Vec::new());
    for e in entries {
        if by_id.contains(e) {
            found.push(e.into());
            continue;
        }
        let filter = ContactFilter { external_id: Some(e.to_string()), ..Default::default() };
        match store.find_contacts(filter, PageRequest::new(Some(1), None)).await?.items.into_iter().next() {
            Some(c) => found.push(c.id),
            None => unknown.push(e.to_string()),
        }
    }
    let mut once = HashSet::new();
    found.retain(|id| once.insert(id.clone()));
    Ok(PeopleList { found, unknown })
}

/// The pasted list as a broadcast's audience: every entry must name a contact (unknown ones
/// are refused, named).
async fn resolve_list(state: &AppState, s: &Session, text: &str) -> okno_domain::Result<Vec<ContactId>> {
    let list = read_people_list(state, s, text).await?;
    if !list.unknown.is_empty() {
        let shown: Vec<&str> = list.unknown.iter().take(5).map(String::as_str).collect();
        let text = t(s, "bc_list_unknown")
            .replace("{n}", &list.unknown.len().to_string())
            .replace("{list}", &shown.join(", "));
        return Err(okno_domain::Error::unprocessable("unknown_contact", text));
    }
    Ok(list.found)
}

/// `key=value` lines: a value that reads as JSON (a number, `true`, `"quoted text"`) is taken
/// as such, anything else as text.
fn parse_attrs(text: &str, s: &Session) -> okno_domain::Result<Map<String, Value>> {
    let mut attrs = Map::new();
    let bad = |line: &str| okno_domain::Error::invalid("invalid_filter", t(s, "bc_attr_line").replace("{line}", line));
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=').ok_or_else(|| bad(line))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(bad(line));
        }
        let value = serde_json::from_str::<Value>(v).ok().filter(|j| !j.is_object() && !j.is_array());
        attrs.insert(k.to_string(), value.unwrap_or_else(|| json!(v)));
    }
    Ok(attrs)
}

/// Answer buttons, one per line: `text` or `text=answer`; each its own row.
fn parse_buttons(text: &str) -> Vec<Value> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (label, answer) = l.split_once('=').map_or((l, l), |(a, b)| (a.trim(), b.trim()));
            json!([{"text": label, "answer": if answer.is_empty() { label } else { answer }}])
        })
        .collect()
}

/// The audience the form names, as the API takes it.
async fn audience_of(state: &AppState, s: &Session, form: &Form) -> okno_domain::Result<Audience> {
    let groups: Vec<String> = form
        .field("groups")
        .unwrap_or_default()
        .split(',')
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();
    let contact_ids = match form.field("list") {
        Some(list) => resolve_list(state, s, &list).await?,
        None => Vec::new(),
    };
    let q = form.field("f_q");
    if q.is_some() && !s.role().allows(Permission::PersonalData) {
        return Err(okno_domain::Error::new(okno_domain::ErrorKind::Forbidden, "forbidden", t(s, "bc_q_forbidden")));
    }
    let channel_kind =
        form.field("f_kind").map(|k| ChannelKind::parse(&k).map(|k| k.as_str().to_string())).transpose()?;
    let filter = AudienceFilter {
        group: form.field("f_group"),
        attrs: parse_attrs(form.get("f_attrs").unwrap_or(""), s)?,
        q,
        channel_kind,
    };
    let has_filter =
        filter.group.is_some() || !filter.attrs.is_empty() || filter.q.is_some() || filter.channel_kind.is_some();
    Ok(Audience { groups, contact_ids, filter: has_filter.then_some(filter) })
}

/// What the form holds, to fill it in again.
fn echo(form: &Form) -> Value {
    let keys = [
        "name",
        "groups",
        "list",
        "f_group",
        "f_attrs",
        "f_q",
        "f_kind",
        "text",
        "buttons",
        "send_at",
        "tz",
        "unsubscribe",
    ];
    let mut v = Map::new();
    for k in keys {
        v.insert(k.to_string(), json!(form.get(k).unwrap_or("")));
    }
    Value::Object(v)
}

/// `POST /ui/broadcasts`: `action` = `count` (work the audience out and show how many it holds)
/// or `start` (with `counted`, the count the operator saw; a different count shows the form
/// again). Fields: `name`, `groups` (comma-separated), `list` (contact ids or external ids),
/// `f_group`, `f_attrs` (key=value lines), `f_q`, `f_kind`, `text`, `buttons` (one per line:
/// `text` or `text=answer`), `send_at` (optional: the picker's `2026-03-01T09:00`, read in
/// the time zone `tz` — the browser's, else the server's `default_timezone` —, or RFC 3339;
/// not in the past), `unsubscribe` (the button's text, optional).
pub async fn create(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    if let Some(r) = s.refuse_post(&state.ui, &headers, &form, Permission::Write) {
        return r;
    }
    let echoed = echo(&form);
    // The time first: a wrong one is said next to its field, whatever else the form holds.
    let send_at = match send_at_of(&state, &s, &form) {
        Ok(at) => at,
        Err(m) => return form_page(&state, &s, Errors::from([("send_at", m)]), echoed, None).await,
    };
    let audience = match audience_of(&state, &s, &form).await {
        Ok(a) => a,
        Err(e) => return form_page(&state, &s, general(e), echoed, None).await,
    };
    if audience.groups.is_empty() && audience.contact_ids.is_empty() && audience.filter.is_none() {
        return form_page(&state, &s, Errors::from([("_", t(&s, "bc_empty"))]), echoed, None).await;
    }
    let ids = match state.engine.audience(&audience).await {
        Ok(ids) => ids,
        Err(e) => return form_page(&state, &s, general(e), echoed, None).await,
    };
    let sample = match state.engine.store.get_contacts(&ids.iter().take(5).cloned().collect::<Vec<_>>()).await {
        Ok(cs) => cs.iter().map(|c| super::inbox::display_name(c, s.role())).collect::<Vec<_>>(),
        Err(e) => return form_page(&state, &s, general(e), echoed, None).await,
    };
    // What it costs on channels that charge by the part (SMS), before it starts.
    let estimate = match state.engine.estimate(&ids, form.get("text").unwrap_or_default()).await {
        Ok(e) => e,
        Err(e) => return form_page(&state, &s, general(e), echoed, None).await,
    };
    let counted = json!({"count": ids.len(), "sample": sample, "estimate": estimate});
    let seen: Option<usize> = form.field("counted").and_then(|c| c.parse().ok());
    if form.get("action") != Some("start") || seen != Some(ids.len()) {
        // A count, or a start whose audience changed since it was counted: show the count.
        let note = (form.get("action") == Some("start")).then(|| t(&s, "bc_count_first"));
        let mut resp = form_page(&state, &s, Errors::new(), echoed, Some(counted)).await;
        if note.is_some() {
            *resp.status_mut() = axum::http::StatusCode::CONFLICT;
        }
        return resp;
    }
    if ids.is_empty() {
        return form_page(&state, &s, Errors::from([("_", t(&s, "bc_empty"))]), echoed, Some(counted)).await;
    }
    let mut body = json!({
        "name": form.field("name").unwrap_or_default(),
        "audience": audience,
        "text": form.get("text").unwrap_or_default(),
    });
    let buttons = parse_buttons(form.get("buttons").unwrap_or(""));
    if !buttons.is_empty() {
        body["buttons"] = json!(buttons);
    }
    if let Some(at) = send_at {
        body["send_at"] = json!(at);
    }
    if let Some(u) = form.field("unsubscribe") {
        body["unsubscribe_button"] = json!(u);
    }
    match state.engine.create_broadcast(&body, Some(format!("operator:{}", s.operator.login)), s.role()).await {
        Ok(b) => {
            let detail = json!({"name": b.name, "audience": body["audience"], "counted": ids.len()});
            super::admin::audit(&state, &s, "broadcast.create", &b.id, detail).await;
            Redirect::to(&format!("/ui/broadcasts/{}", b.id)).into_response()
        }
        Err(e) => form_page(&state, &s, general(e), echoed, Some(counted)).await,
    }
}

/// `GET /ui/broadcasts/{id}`: the report.
pub async fn report(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Write) {
        return r;
    }
    let loaded = async {
        let b = state.engine.store.get_broadcast(&id).await?;
        let report = state.engine.store.broadcast_report(&id).await?;
        let failed = state
            .engine
            .store
            .broadcast_recipients(&id, Some("failed".into()), PageRequest::new(Some(50), None))
            .await?;
        Ok::<_, okno_domain::Error>((b, report, failed))
    }
    .await;
    let (b, report, failed) = match loaded {
        Ok(v) => v,
        Err(e) => return error_page(ui, &s, e),
    };
    let live = b.status == "running" || b.status == "scheduled";
    ui.render(
        "broadcasts.html",
        &s,
        json!({
            "title": b.name, "nav": "broadcasts", "detail": view(&b), "live": live,
            "reasons": report.failed_by_reason, "answers": report.answers, "unsubscribed": report.unsubscribed,
            "failed": failed.items,
        }),
    )
}

/// `POST /ui/broadcasts/{id}/{action}`: `pause`, `resume` or `cancel`.
pub async fn control(
    State(state): State<AppState>,
    s: Session,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: Form,
) -> Response {
    if let Some(r) = s.refuse_post(&state.ui, &headers, &form, Permission::Write) {
        return r;
    }
    let action = match action.as_str() {
        "pause" => BroadcastAction::Pause,
        "resume" => BroadcastAction::Resume,
        "cancel" => BroadcastAction::Cancel,
        other => {
            return error_page(
                &state.ui,
                &s,
                okno_domain::Error::invalid("invalid_action", format!("no action `{other}`")),
            )
        }
    };
    match state.engine.store.control_broadcast(&id, action).await {
        Ok(_) => {
            state.engine.wake_bulk();
            super::admin::audit(&state, &s, "broadcast.control", &id, json!({"action": format!("{action:?}")})).await;
            Redirect::to(&format!("/ui/broadcasts/{id}")).into_response()
        }
        Err(e) => error_page(&state.ui, &s, e),
    }
}
