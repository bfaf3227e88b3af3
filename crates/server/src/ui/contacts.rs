//! Contacts: the list, the card (identities on every channel, the business system's id,
//! groups, attributes, every conversation), a new contact and an edit of one, a link code that
//! ties a person's messenger to the card, and merging two contacts found by search. Phone
//! numbers and emails are masked for roles without the right to see them (seed 003).
//!
//! ```text
//!  list ──«New contact»──► form ──POST──► checked as the API checks ──► store (+ audit, event)
//!  card ──«Edit»─────────► form ──POST──► the same, refused if someone changed it meanwhile
//!  card ──merge: type a name/phone/id──► candidates (live) ──choose──► confirm ──POST──► merged
//!  card ──«Link a messenger»──► code + deep links per Telegram bot
//! ```
//!
//! What a role without the right to personal data (`restricted`) may do: create a contact
//! with the phone and email the person gave them; edit the name, external id, groups and
//! attributes; add a phone or email where the card has none. It never sees a stored one in
//! clear, so it can neither change nor empty one, and it cannot start a link code (a linked
//! messenger receives everything sent to the person).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use okno_domain::ids::ContactId;
use okno_domain::model::{Contact, ContactInput, Permission};
use okno_store::{ContactEdit, ContactField, ContactFilter, ConversationFilter, NewAudit, PageRequest};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::i18n::Lang;
use super::inbox::{display_name, row_view};
use super::{channel_map, channel_view, error_page, refuse, Form, Session};
use crate::masking;
use crate::AppState;

fn t(s: &Session, key: &str) -> String {
    super::i18n::t(s.lang, key)
}

#[derive(Debug, Default, Deserialize)]
pub struct ContactsQuery {
    pub q: Option<String>,
    pub group: Option<String>,
    pub cursor: Option<String>,
}

/// What the card was asked to show besides the contact.
#[derive(Debug, Default, Deserialize)]
pub struct CardQuery {
    /// Text to find the contact to merge in.
    pub merge_q: Option<String>,
    /// The contact chosen to merge in: the card asks to confirm.
    pub merge_with: Option<String>,
    /// `1` after a save (`saved`), a creation (`created`) or a merge (`merged`).
    pub saved: Option<String>,
    pub created: Option<String>,
    pub merged: Option<String>,
}

fn contact_view(c: &Contact, s: &Session) -> Value {
    let mut c = c.clone();
    masking::contact(s.role(), &mut c);
    json!({
        "id": c.id, "name": display_name(&c, s.role()), "phone": c.phone, "email": c.email,
        "external_id": c.external_id, "groups": c.groups,
        "kinds": c.identities.iter().map(|i| i.kind.as_str()).collect::<std::collections::BTreeSet<_>>(),
    })
}

fn may_see_personal(s: &Session) -> bool {
    s.role().allows(Permission::PersonalData)
}

/// The filter for text `q` (and a group) as `s` may search: a role that may not see phones and
/// emails finds people by name and external id only, in the query itself (a page is never
/// filled with people it may not see and then cut short).
fn search_filter(s: &Session, q: Option<String>, group: Option<String>) -> ContactFilter {
    ContactFilter { q, group, q_names_only: !may_see_personal(s), ..Default::default() }
}

/// `GET /ui/contacts`
pub async fn list(State(state): State<AppState>, s: Session, Query(q): Query<ContactsQuery>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
    let filter = search_filter(&s, text.clone(), q.group.clone().filter(|g| !g.trim().is_empty()));
    let page = match state.engine.store.find_contacts(filter, PageRequest::new(Some(50), q.cursor.clone())).await {
        Ok(p) => p,
        Err(e) => return error_page(ui, &s, e),
    };
    let rows: Vec<Value> = page.items.iter().map(|c| contact_view(c, &s)).collect();
    ui.render(
        "contacts.html",
        &s,
        json!({"title": t(&s, "contacts"), "nav": "contacts", "rows": rows, "next": page.next,
               "f": {"q": text, "group": q.group}, "can_write": s.role().allows(Permission::Write)}),
    )
}

/// `GET /ui/contacts/{id}`
pub async fn card(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<ContactId>,
    Query(q): Query<CardQuery>,
) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    let shown = async {
        let mut ctx = card_view(&state, &s, &id).await?;
        if s.role().allows(Permission::Write) {
            merge_view(&state, &s, &id, &q, &mut ctx).await?;
        }
        let flash = [("saved", &q.saved), ("created", &q.created), ("merged", &q.merged)]
            .into_iter()
            .find(|(_, v)| v.as_deref() == Some("1"))
            .map(|(k, _)| t(&s, &format!("ct_{k}")));
        ctx["flash"] = json!(flash);
        Ok::<_, okno_domain::Error>(ctx)
    }
    .await;
    match shown {
        Ok(ctx) => ui.render("contact.html", &s, ctx),
        Err(e) => error_page(ui, &s, e),
    }
}

async fn card_view(state: &AppState, s: &Session, id: &ContactId) -> okno_domain::Result<Value> {
    let store = &state.engine.store;
    let contact = store.get_contact(id).await?;
    let channels = store.list_channels().await?;
    let map = channel_map(&channels);
    let convs = store
        .list_conversations(
            ConversationFilter { contact_id: Some(id.clone()), ..Default::default() },
            PageRequest::new(Some(100), None),
        )
        .await?;
    let identities: Vec<Value> = contact
        .identities
        .iter()
        .map(|i| {
            json!({
                "channel": channel_view(map.get(i.channel_id.as_str()).copied()),
                "user_id": i.user_id, "chat_id": i.chat_id, "username": i.username, "display_name": i.display_name,
                "blocked": i.blocked, "opted_out": i.opted_out,
                "last_seen": i.last_seen_at.map(super::short_time),
            })
        })
        .collect();
    let attrs: Vec<(String, String)> = contact
        .attrs
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let has_bot = channels.iter().any(|c| c.info.get("username").is_some_and(Value::is_string));
    let calls: Vec<Value> = store
        .list_calls(id, 50)
        .await?
        .iter()
        .map(|c| {
            json!({"direction": c.direction, "status": c.status, "time": super::short_time(c.started_at),
                   "duration": format!("{}:{:02}", c.duration / 60, c.duration % 60),
                   "operator": c.operator, "recording_url": c.recording_url})
        })
        .collect();
    Ok(json!({
        "calls": calls,
        "title": display_name(&contact, s.role()),
        "nav": "contacts",
        "c": contact_view(&contact, s),
        "masked": !may_see_personal(s),
        "external_url": match (&state.ui.contact_url, &contact.external_id) {
            (Some(tpl), Some(ext)) => Some(tpl.replace("{external_id}", &url::form_urlencoded::byte_serialize(ext.as_bytes()).collect::<String>().replace('+', "%20"))),
            _ => None,
        },
        "identities": identities,
        "attrs": attrs,
        "conversations": convs.items.iter().map(|c| row_view(c, &map, s.role())).collect::<Vec<_>>(),
        "can_write": s.role().allows(Permission::Write),
        "can_link": s.role().allows(Permission::Write) && may_see_personal(s),
        "has_bot": has_bot,
    }))
}

// --- merging ---------------------------------------------------------------------------------

/// Most candidates a merge search shows.
const CANDIDATES: u32 = 10;

/// Contacts matching `q` (name, phone, external id…) other than `id`, as a role may see them.
async fn candidates(state: &AppState, s: &Session, id: &str, q: &str) -> okno_domain::Result<Vec<Value>> {
    let q = q.trim();
    if q.is_empty() {
        return Ok(Vec::new());
    }
    let filter = search_filter(s, Some(q.to_string()), None);
    // One more than shown, as one of them may be this very contact.
    let found = state.engine.store.find_contacts(filter, PageRequest::new(Some(CANDIDATES + 1), None)).await?;
    Ok(found.items.iter().filter(|c| c.id != id).take(CANDIDATES as usize).map(|c| contact_view(c, s)).collect())
}

/// The card's merge section: candidates for `merge_q`, or the contact chosen to confirm.
async fn merge_view(
    state: &AppState,
    s: &Session,
    id: &str,
    q: &CardQuery,
    ctx: &mut Value,
) -> okno_domain::Result<()> {
    let text = q.merge_q.as_deref().unwrap_or("").trim().to_string();
    ctx["merge_q"] = json!(text);
    ctx["candidates"] = json!(candidates(state, s, id, &text).await?);
    ctx["searched"] = json!(!text.is_empty());
    if let Some(other) = q.merge_with.as_deref().filter(|o| !o.is_empty() && *o != id) {
        let other = ContactId::from(other);
        let contact = state.engine.store.get_contact(&other).await?;
        let convs = state
            .engine
            .store
            .list_conversations(
                ConversationFilter { contact_id: Some(other.clone()), ..Default::default() },
                PageRequest::new(Some(100), None),
            )
            .await?;
        let mut view = contact_view(&contact, s);
        view["identities"] = json!(contact.identities.len());
        view["conversations"] = json!(convs.items.len());
        ctx["merge_with"] = view;
    }
    Ok(())
}

/// `GET /ui/contacts/{id}/merge-search?merge_q=`: the candidates alone, for the card's
/// type-ahead.
pub async fn merge_search(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<ContactId>,
    Query(q): Query<CardQuery>,
) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Write) {
        return r;
    }
    let text = q.merge_q.unwrap_or_default();
    match candidates(&state, &s, &id, &text).await {
        Ok(found) => ui.render(
            "contact_merge_list.html",
            &s,
            json!({"c": {"id": id}, "candidates": found, "searched": !text.trim().is_empty()}),
        ),
        Err(e) => error_page(ui, &s, e),
    }
}

/// `POST /ui/contacts/{id}/merge`: `other_id` is merged into this contact and removed.
pub async fn merge(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<ContactId>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Write) {
        return r;
    }
    let Some(other) = form.field("other_id") else {
        return error_page(ui, &s, okno_domain::Error::invalid("missing_other_id", t(&s, "ct_merge_none")));
    };
    if other == id {
        return error_page(ui, &s, okno_domain::Error::invalid("same_contact", t(&s, "ct_merge_same")));
    }
    let audit = NewAudit {
        actor: format!("operator:{}", s.operator.login),
        action: "contact.merge".into(),
        target: id.to_string(),
        detail: json!({"merged": other}),
    };
    match state.engine.store.merge_contacts(&id, &ContactId::from(other), Some(audit)).await {
        Ok(_) => Redirect::to(&format!("/ui/contacts/{id}?merged=1")).into_response(),
        Err(e) => error_page(ui, &s, e),
    }
}

// --- link codes ------------------------------------------------------------------------------

/// `POST /ui/contacts/{id}/link`: a one-time code (seven days) and the deep links that send it,
/// shown on the card.
pub async fn link(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<ContactId>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Write) {
        return r;
    }
    if let Some(r) = refuse(ui, &s, Permission::PersonalData) {
        return r;
    }
    let shown = async {
        let by = format!("operator:{}", s.operator.login);
        let offer = state.engine.link_offer(&id, okno_engine::contacts::LINK_TTL_MS, Some(&by)).await?;
        let mut ctx = card_view(&state, &s, &id).await?;
        merge_view(&state, &s, &id, &CardQuery::default(), &mut ctx).await?;
        ctx["link"] = json!({
            "code": offer.code,
            "expires": okno_domain::time::to_rfc3339(offer.expires_at),
            "expires_text": super::short_time(offer.expires_at),
            "links": offer.links.iter().map(|l| json!({"name": l.channel_name, "bot": l.bot, "url": l.url})).collect::<Vec<_>>(),
        });
        Ok::<_, okno_domain::Error>(ctx)
    }
    .await;
    match shown {
        Ok(ctx) => ui.render("contact.html", &s, ctx),
        Err(e) => error_page(ui, &s, e),
    }
}

// --- the contact form ------------------------------------------------------------------------

/// The form's fields, as typed (to show them again with the errors).
const FIELDS: [&str; 6] = ["name", "phone", "email", "external_id", "groups", "attrs"];

/// Errors next to the fields, in the operator's language; `_` is the form's own.
type FieldErrors = BTreeMap<&'static str, String>;

/// An attribute value as a line shows it: text as it is, anything else (and text that would
/// read as something else) as JSON.
fn attr_text(v: &Value) -> String {
    match v {
        Value::String(s) if serde_json::from_str::<Value>(s).is_err() && s.trim() == s && !s.contains('\n') => {
            s.clone()
        }
        other => other.to_string(),
    }
}

/// Attributes as the form shows them: `key=value` lines, or the JSON object when some key
/// cannot be written on such a line.
fn attrs_text(attrs: &Value) -> String {
    let Some(obj) = attrs.as_object() else { return String::new() };
    let plain = |k: &String| !k.is_empty() && !k.contains(['=', '\n', '\r']) && k.trim() == k && !k.starts_with('{');
    if obj.keys().all(plain) {
        obj.iter().map(|(k, v)| format!("{k}={}", attr_text(v))).collect::<Vec<_>>().join("\n")
    } else {
        serde_json::to_string_pretty(attrs).unwrap_or_default()
    }
}

/// The attributes field: a JSON object, or `key=value` lines where a value that reads as JSON
/// (`2`, `true`, `"007"`, `[1, 2]`) is taken as such and anything else as text.
fn parse_attrs(text: &str, lang: Lang) -> Result<Value, String> {
    let t = |key: &str| super::i18n::t(lang, key);
    let text = text.trim();
    if text.starts_with('{') {
        return match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(t("cf_attrs_json")),
        };
    }
    let mut attrs = Map::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((k, v)) = line.split_once('=') else {
            return Err(t("cf_attrs_line").replace("{line}", line));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(t("cf_attrs_line").replace("{line}", line));
        }
        if attrs.contains_key(k) {
            return Err(t("cf_attrs_twice").replace("{key}", k));
        }
        attrs.insert(k.to_string(), serde_json::from_str::<Value>(v).unwrap_or_else(|_| json!(v)));
    }
    Ok(Value::Object(attrs))
}

/// The message next to a field for a check of the API's that failed on it.
fn field_message(s: &Session, e: &okno_domain::Error, typed: &str) -> String {
    let key = match &*e.code {
        "invalid_phone" => "cf_phone",
        "invalid_email" => "cf_email",
        "invalid_group" => "cf_groups_bad",
        _ => return e.message.clone(),
    };
    t(s, key).replace("{value}", typed.trim())
}

/// Reads the form into the API's contact input, each field checked by the API's own
/// normalisation so a field's error is shown next to it. A field the form holds empty is
/// emptied; one it does not hold at all is left as it is. `locked` fields (a stored phone or
/// email a role may not see) must come empty and are left as they are.
fn read_form(
    s: &Session,
    form: &Form,
    locked: &[ContactField],
) -> Result<(ContactInput, Vec<ContactField>), FieldErrors> {
    let mut errors = FieldErrors::new();
    let text = |k: &str| form.get(k).unwrap_or("").trim().to_string();
    let one = |k: &str| Some(text(k)).filter(|v| !v.is_empty());
    let mut input = ContactInput { name: one("name"), external_id: one("external_id"), ..Default::default() };
    for (field, key) in [(ContactField::Phone, "phone"), (ContactField::Email, "email")] {
        let value = one(key);
        if locked.contains(&field) {
            if value.is_some() {
                errors.insert(key, t(s, "cf_pd_locked"));
            }
            continue;
        }
        let checked = ContactInput {
            phone: value.clone().filter(|_| field == ContactField::Phone),
            email: value.clone().filter(|_| field == ContactField::Email),
            ..Default::default()
        }
        .normalize();
        match checked {
            Ok(c) if field == ContactField::Phone => input.phone = c.phone,
            Ok(c) => input.email = c.email,
            Err(e) => {
                errors.insert(key, field_message(s, &e, &text(key)));
            }
        }
    }
    if form.get("groups").is_some() {
        let groups: Vec<String> =
            text("groups").split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect();
        match (ContactInput { groups: Some(groups), ..Default::default() }).normalize() {
            Ok(c) => input.groups = c.groups,
            Err(e) => {
                errors.insert("groups", field_message(s, &e, &text("groups")));
            }
        }
    }
    if let Some(attrs) = form.get("attrs") {
        match parse_attrs(attrs, s.lang) {
            Ok(a) => input.attrs = Some(a),
            Err(m) => {
                errors.insert("attrs", m);
            }
        }
    }
    let mut clear = Vec::new();
    for (field, key, value) in [
        (ContactField::Name, "name", &input.name),
        (ContactField::ExternalId, "external_id", &input.external_id),
        (ContactField::Phone, "phone", &input.phone),
        (ContactField::Email, "email", &input.email),
    ] {
        if value.is_none() && form.get(key).is_some() && !locked.contains(&field) {
            clear.push(field);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // The API's normalisation once more over the whole input: the one path every contact takes.
    input.normalize().map(|input| (input, clear)).map_err(|e| FieldErrors::from([("_", e.message)]))
}

/// The form's fields as typed.
fn typed(form: &Form) -> Value {
    Value::Object(FIELDS.iter().map(|k| (k.to_string(), json!(form.get(k).unwrap_or("")))).collect())
}

/// The contact's fields as the form shows them; a phone or email the role may not see is
/// left out (the form shows it masked instead).
fn stored(c: &Contact, s: &Session) -> Value {
    let pd = |v: &Option<String>| if may_see_personal(s) { v.clone().unwrap_or_default() } else { String::new() };
    json!({
        "name": c.name.clone().unwrap_or_default(), "phone": pd(&c.phone), "email": pd(&c.email),
        "external_id": c.external_id.clone().unwrap_or_default(), "groups": c.groups.join(", "),
        "attrs": attrs_text(&c.attrs),
    })
}

/// The fields a role may not change on `c`: a stored phone or email it may not see.
fn locked_fields(c: &Contact, s: &Session) -> Vec<ContactField> {
    if may_see_personal(s) {
        return Vec::new();
    }
    let mut locked = Vec::new();
    if c.phone.is_some() {
        locked.push(ContactField::Phone);
    }
    if c.email.is_some() {
        locked.push(ContactField::Email);
    }
    locked
}

/// The form page: a new contact (`contact` is `None`) or an edit.
fn form_page(
    state: &AppState,
    s: &Session,
    contact: Option<&Contact>,
    values: Value,
    errors: &FieldErrors,
    status: StatusCode,
) -> Response {
    let masked = contact.map(|c| {
        let mut c = c.clone();
        masking::contact(s.role(), &mut c);
        json!({"phone": c.phone, "email": c.email})
    });
    let locked: Vec<&str> =
        contact.map(|c| locked_fields(c, s)).unwrap_or_default().iter().map(|f| f.as_str()).collect();
    let title = match contact {
        Some(c) => format!("{} · {}", t(s, "ct_edit"), display_name(c, s.role())),
        None => t(s, "ct_new"),
    };
    let mut resp = state.ui.render(
        "contact_form.html",
        s,
        json!({
            "title": title, "nav": "contacts", "f": values, "errors": errors, "locked": locked, "masked": masked,
            "edit": contact.map(|c| json!({"id": c.id, "seen_at": c.updated_at})),
            "restricted": !may_see_personal(s),
        }),
    );
    *resp.status_mut() = status;
    resp
}

/// A refusal of the store as errors on the form: a taken external id next to that field, with
/// a link to its owner; a change made meanwhile, for the whole form.
async fn store_errors(
    state: &AppState,
    s: &Session,
    e: okno_domain::Error,
    typed_ext: &str,
) -> (FieldErrors, StatusCode) {
    let status = crate::error::status_of(e.kind);
    let message = match &*e.code {
        "external_id_taken" => {
            let filter = ContactFilter { external_id: Some(typed_ext.trim().to_string()), ..Default::default() };
            let owner = state.engine.store.find_contacts(filter, PageRequest::new(Some(1), None)).await;
            let owner = owner.ok().and_then(|p| p.items.into_iter().next());
            let text = t(s, "cf_ext_taken").replace("{value}", typed_ext.trim());
            return (
                FieldErrors::from([
                    ("external_id", text),
                    ("external_owner", owner.map(|o| o.id.into_string()).unwrap_or_default()),
                ]),
                status,
            );
        }
        "contact_changed" => t(s, "cf_changed"),
        "contact_empty" => t(s, "cf_empty"),
        _ if e.kind == okno_domain::ErrorKind::Internal => {
            tracing::error!(code = %e.code, message = %e.message, "saving a contact failed");
            t(s, "error_title")
        }
        _ => e.message,
    };
    (FieldErrors::from([("_", message)]), status)
}

/// `GET /ui/contacts/new`
pub async fn new_form(
    State(state): State<AppState>,
    s: Session,
    Query(given): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = refuse(&state.ui, &s, Permission::Write) {
        return r;
    }
    // A form started from elsewhere (an event's unknown recipient) comes with what is known.
    let prefilled: serde_json::Map<String, Value> = given
        .into_iter()
        .filter(|(k, v)| matches!(k.as_str(), "name" | "phone" | "email" | "external_id") && !v.trim().is_empty())
        .map(|(k, v)| (k, Value::String(v.trim().to_string())))
        .collect();
    let typed = if prefilled.is_empty() { Value::Null } else { Value::Object(prefilled) };
    form_page(&state, &s, None, typed, &FieldErrors::new(), StatusCode::OK)
}

/// `POST /ui/contacts/new`: `name`, `phone`, `email`, `external_id`, `groups` (comma-separated),
/// `attrs` (`key=value` lines or a JSON object). At least one of the first four.
pub async fn create(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    if let Some(r) = s.refuse_post(&state.ui, &headers, &form, Permission::Write) {
        return r;
    }
    let input = match read_form(&s, &form, &[]) {
        Ok((input, _)) => input,
        Err(errors) => return form_page(&state, &s, None, typed(&form), &errors, StatusCode::BAD_REQUEST),
    };
    if input.name.is_none() && input.phone.is_none() && input.email.is_none() && input.external_id.is_none() {
        let errors = FieldErrors::from([("_", t(&s, "cf_empty"))]);
        return form_page(&state, &s, None, typed(&form), &errors, StatusCode::BAD_REQUEST);
    }
    match state.engine.store.create_contact(input, &format!("operator:{}", s.operator.login)).await {
        Ok(c) => Redirect::to(&format!("/ui/contacts/{}?created=1", c.id)).into_response(),
        Err(e) => {
            let (errors, status) = store_errors(&state, &s, e, form.get("external_id").unwrap_or("")).await;
            form_page(&state, &s, None, typed(&form), &errors, status)
        }
    }
}

/// `GET /ui/contacts/{id}/edit`
pub async fn edit_form(State(state): State<AppState>, s: Session, Path(id): Path<ContactId>) -> Response {
    if let Some(r) = refuse(&state.ui, &s, Permission::Write) {
        return r;
    }
    match state.engine.store.get_contact(&id).await {
        Ok(c) => form_page(&state, &s, Some(&c), stored(&c, &s), &FieldErrors::new(), StatusCode::OK),
        Err(e) => error_page(&state.ui, &s, e),
    }
}

/// `POST /ui/contacts/{id}/edit`: the fields of `create`, and `seen_at` (the contact's
/// `updated_at` when the form was drawn). An empty field empties the contact's; a role that
/// may not see phones and emails leaves stored ones as they are.
pub async fn save(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<ContactId>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    if let Some(r) = s.refuse_post(&state.ui, &headers, &form, Permission::Write) {
        return r;
    }
    let contact = match state.engine.store.get_contact(&id).await {
        Ok(c) => c,
        Err(e) => return error_page(&state.ui, &s, e),
    };
    let (set, clear) = match read_form(&s, &form, &locked_fields(&contact, &s)) {
        Ok(read) => read,
        Err(errors) => return form_page(&state, &s, Some(&contact), typed(&form), &errors, StatusCode::BAD_REQUEST),
    };
    let Some(seen_at) = form.field("seen_at").and_then(|v| v.parse().ok()) else {
        let errors = FieldErrors::from([("_", t(&s, "cf_changed"))]);
        return form_page(&state, &s, Some(&contact), typed(&form), &errors, StatusCode::BAD_REQUEST);
    };
    let edit = ContactEdit { set, clear, seen_at: Some(seen_at) };
    match state.engine.store.edit_contact(&id, edit, &format!("operator:{}", s.operator.login)).await {
        Ok(_) => Redirect::to(&format!("/ui/contacts/{id}?saved=1")).into_response(),
        Err(e) => {
            // The form drawn again carries the contact as it is now: saving again replaces it.
            let (errors, status) = store_errors(&state, &s, e, form.get("external_id").unwrap_or("")).await;
            form_page(&state, &s, Some(&contact), typed(&form), &errors, status)
        }
    }
}

// --- export ----------------------------------------------------------------------------------

/// One CSV field, quoted when it needs to be; a leading `=`, `+`, `-` or `@` is defused so a
/// spreadsheet does not run it as a formula (a phone number stays as it is).
fn csv_field(v: &str) -> String {
    let phone_like =
        v.strip_prefix('+').is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '•' || c == ' '));
    let v = if v.starts_with(['=', '+', '-', '@']) && !phone_like { format!("'{v}") } else { v.to_string() };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// `GET /ui/contacts.csv?q=&group=`: the matching contacts (up to 100,000), masked for roles
/// that may not see phones and emails.
pub async fn export(State(state): State<AppState>, s: Session, Query(q): Query<ContactsQuery>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
    let filter = search_filter(&s, text, q.group.clone().filter(|g| !g.trim().is_empty()));
    let mut out = String::from("id,external_id,name,phone,email,groups,channels\r\n");
    let mut cursor = None;
    for _ in 0..200 {
        let page = match state.engine.store.find_contacts(filter.clone(), PageRequest::new(Some(500), cursor)).await {
            Ok(p) => p,
            Err(e) => return error_page(ui, &s, e),
        };
        for mut c in page.items {
            masking::contact(s.role(), &mut c);
            let kinds: std::collections::BTreeSet<&str> = c.identities.iter().map(|i| i.kind.as_str()).collect();
            let row = [
                c.id.as_str(),
                c.external_id.as_deref().unwrap_or(""),
                c.name.as_deref().unwrap_or(""),
                c.phone.as_deref().unwrap_or(""),
                c.email.as_deref().unwrap_or(""),
                &c.groups.join(";"),
                &kinds.into_iter().collect::<Vec<_>>().join(";"),
            ];
            out.push_str(&row.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
            out.push_str("\r\n");
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"contacts.csv\""),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    #[test]
    fn attributes_read_back_as_they_were_written() {
        let attrs = json!({"city": "Казань", "visits": 2, "vip": true, "code": "007", "word": "true", "seven": "7",
                           "tags": ["a", "b"], "note": "две\nстроки", "empty": ""});
        let text = attrs_text(&attrs);
        assert!(
            text.contains("city=Казань\n")
                && text.contains("code=007\n")
                && text.contains("word=\"true\"")
                && text.contains("seven=\"7\""),
            "{text}"
        );
        assert_eq!(parse_attrs(&text, Lang::En).unwrap(), attrs);
        // A key that cannot be written as `key=value` turns the whole field into JSON.
        let odd = json!({"a=b": 1, "c": "d"});
        let text = attrs_text(&odd);
        assert!(text.trim_start().starts_with('{'));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), odd);
        assert_eq!(parse_attrs(&text, Lang::En).unwrap(), odd);
    }

    #[test]
    fn bad_attribute_lines_are_named() {
        let e = parse_attrs("city=Казань\nvip", Lang::En).unwrap_err();
        assert!(e.contains("«vip»"), "{e}");
        let e = parse_attrs("a=1\na=2", Lang::Ru).unwrap_err();
        assert!(e.contains("«a»") && e.contains("дважды"), "in Russian: {e}");
        assert!(parse_attrs("{\"a\": ", Lang::En).is_err());
        assert_eq!(parse_attrs("  ", Lang::En).unwrap(), json!({}));
    }
}
