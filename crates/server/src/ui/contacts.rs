//! Contacts: the list, the card (identities on every channel, the business system's id,
//! groups, attributes, every conversation) and merging two contacts. Phone numbers and emails
//! are masked for roles without the right to see them (seed 003).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use okno_domain::model::{Contact, Permission};
use okno_store::{ContactFilter, ConversationFilter, PageRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use super::inbox::{display_name, row_view};
use super::{channel_map, channel_view, error_page, refuse, Form, Session};
use crate::masking;
use crate::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct ContactsQuery {
    pub q: Option<String>,
    pub group: Option<String>,
    pub cursor: Option<String>,
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

/// `GET /ui/contacts`
pub async fn list(State(state): State<AppState>, s: Session, Query(q): Query<ContactsQuery>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
    let filter = ContactFilter {
        q: text.clone(),
        group: q.group.clone().filter(|g| !g.trim().is_empty()),
        ..Default::default()
    };
    let page = match state.engine.store.find_contacts(filter, PageRequest::new(Some(50), q.cursor.clone())).await {
        Ok(p) => p,
        Err(e) => return error_page(ui, &s, e),
    };
    let needle = text.as_deref().unwrap_or("").to_lowercase();
    let rows: Vec<Value> = page
        .items
        .iter()
        // A restricted role must not find a person by a phone number it may not see.
        .filter(|c| {
            needle.is_empty()
                || s.role().allows(Permission::PersonalData)
                || c.name.as_deref().is_some_and(|n| n.to_lowercase().contains(&needle))
                || c.external_id.as_deref().is_some_and(|n| n.to_lowercase().contains(&needle))
        })
        .map(|c| contact_view(c, &s))
        .collect();
    ui.render(
        "contacts.html",
        &s,
        json!({"title": super::i18n::t(s.lang, "contacts"), "nav": "contacts", "rows": rows, "next": page.next,
               "f": {"q": text, "group": q.group}}),
    )
}

/// `GET /ui/contacts/{id}`
pub async fn card(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    match card_view(&state, &s, &id).await {
        Ok(ctx) => ui.render("contact.html", &s, ctx),
        Err(e) => error_page(ui, &s, e),
    }
}

async fn card_view(state: &AppState, s: &Session, id: &str) -> okno_domain::Result<Value> {
    let store = &state.engine.store;
    let contact = store.get_contact(id).await?;
    let channels = store.list_channels().await?;
    let map = channel_map(&channels);
    let convs = store
        .list_conversations(
            ConversationFilter { contact_id: Some(id.to_string()), ..Default::default() },
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
    Ok(json!({
        "title": display_name(&contact, s.role()),
        "nav": "contacts",
        "c": contact_view(&contact, s),
        "masked": !s.role().allows(Permission::PersonalData),
        "external_url": match (&state.ui.contact_url, &contact.external_id) {
            (Some(tpl), Some(ext)) => Some(tpl.replace("{external_id}", &url::form_urlencoded::byte_serialize(ext.as_bytes()).collect::<String>().replace('+', "%20"))),
            _ => None,
        },
        "identities": identities,
        "attrs": attrs,
        "conversations": convs.items.iter().map(|c| row_view(c, &map, s.role())).collect::<Vec<_>>(),
        "can_write": s.role().allows(Permission::Write),
    }))
}

/// `POST /ui/contacts/{id}/merge`: `other_id` is merged into this contact and removed.
pub async fn merge(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Write) {
        return r;
    }
    let Some(other) = form.field("other_id") else {
        return error_page(ui, &s, okno_domain::Error::invalid("missing_other_id", "name the contact to merge in"));
    };
    if other == id {
        return error_page(
            ui,
            &s,
            okno_domain::Error::invalid("same_contact", "a contact cannot be merged into itself"),
        );
    }
    match state.engine.store.merge_contacts(&id, &other).await {
        Ok(_) => {
            let _ = state
                .engine
                .store
                .audit(okno_store::NewAudit {
                    actor: format!("operator:{}", s.operator.login),
                    action: "contact.merge".into(),
                    target: id.clone(),
                    detail: json!({"merged": other}),
                })
                .await;
            Redirect::to(&format!("/ui/contacts/{id}")).into_response()
        }
        Err(e) => error_page(ui, &s, e),
    }
}

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
    let needle = text.as_deref().unwrap_or("").to_lowercase();
    let filter =
        ContactFilter { q: text, group: q.group.clone().filter(|g| !g.trim().is_empty()), ..Default::default() };
    let mut out = String::from("id,external_id,name,phone,email,groups,channels\r\n");
    let mut cursor = None;
    for _ in 0..200 {
        let page = match state.engine.store.find_contacts(filter.clone(), PageRequest::new(Some(500), cursor)).await {
            Ok(p) => p,
            Err(e) => return error_page(ui, &s, e),
        };
        for mut c in page.items {
            let visible = needle.is_empty()
                || s.role().allows(Permission::PersonalData)
                || c.name.as_deref().is_some_and(|n| n.to_lowercase().contains(&needle))
                || c.external_id.as_deref().is_some_and(|n| n.to_lowercase().contains(&needle));
            if !visible {
                continue;
            }
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
