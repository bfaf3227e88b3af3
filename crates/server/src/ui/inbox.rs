//! The operator's window: the inbox (every conversation from every channel), the open
//! conversation's thread with the reply box, and the contact panel, side by side on a wide
//! screen; the operator's actions on a conversation: reply, assign, resolve, reopen, labels,
//! retry a failure.
//!
//! ```text
//!  /ui/inbox                    list | (pick one)
//!  /ui/conversations/{id}       list | thread + reply | contact panel     (one pane on a phone)
//!     ?fragment=1|thread|pane|panel   only that part, for the live refresh and for moving
//!                                     between conversations without reloading the list
//! ```

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use okno_domain::ids::{ChannelId, ConversationId, MessageId};
use okno_domain::model::{Channel, Contact, Conversation, ConversationStatus, Direction, Permission, Role};
use okno_store::{ContactFilter, ConversationFilter, ConversationPatch, OutboundRequest, PageRequest, Recipient};
use serde::Deserialize;
use serde_json::{json, Value};

use super::authors::{self, Names};
use super::i18n::Lang;
use super::{channel_map, channel_view, error_page, message_view, refuse, short_time, Form, Session};
use crate::masking;
use crate::AppState;

/// The inbox's filters, as the filter form sends them.
#[derive(Debug, Default, Deserialize)]
pub struct InboxQuery {
    pub status: Option<String>,
    pub channel: Option<String>,
    /// `mine`, `unassigned` or `all` (default).
    pub assignee: Option<String>,
    pub label: Option<String>,
    pub q: Option<String>,
    pub cursor: Option<String>,
    /// Only a part of the page: the list (`/ui/inbox`, any value); `thread`, `pane` (thread,
    /// reply box and contact panel) or `panel` (`/ui/conversations/{id}`).
    pub fragment: Option<String>,
    /// `1` when the window's tab is out of sight: the refresh shows the conversation without
    /// counting its new messages as read (they are read when the tab is looked at again).
    pub background: Option<String>,
}

impl InboxQuery {
    /// The filters as a query string (`?status=open&assignee=mine`, or empty), so the list
    /// keeps them while the operator moves between conversations.
    fn keep(&self) -> String {
        let fields = [
            ("status", &self.status),
            ("channel", &self.channel),
            ("assignee", &self.assignee),
            ("label", &self.label),
            ("q", &self.q),
        ];
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            if let Some(v) = nonempty(v) {
                out.append_pair(k, &v);
            }
        }
        question(out.finish())
    }

    /// [`Self::keep`] and the page of the list shown, for the list's own refresh: a live
    /// update of page 2 stays on page 2.
    fn keep_page(&self) -> String {
        let mut query = self.keep().trim_start_matches('?').to_string();
        if let Some(cursor) = nonempty(&self.cursor) {
            let mut out = url::form_urlencoded::Serializer::new(query);
            out.append_pair("cursor", &cursor);
            query = out.finish();
        }
        question(query)
    }

    /// The list's next page: the filters and the cursor that follows this page.
    fn next_page(&self, next: &str) -> String {
        let mut out = url::form_urlencoded::Serializer::new(self.keep().trim_start_matches('?').to_string());
        out.append_pair("cursor", next);
        question(out.finish())
    }
}

fn question(query: String) -> String {
    if query.is_empty() {
        query
    } else {
        format!("?{query}")
    }
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// How a contact is called on screen: name, username, masked phone, or a short id.
pub fn display_name(c: &Contact, role: Role) -> String {
    if let Some(n) = c.name.as_deref().filter(|n| !n.trim().is_empty()) {
        return n.to_string();
    }
    if let Some(u) = c.identities.iter().find_map(|i| i.username.clone().or(i.display_name.clone())) {
        return u;
    }
    if let Some(p) = &c.phone {
        return if role.allows(Permission::PersonalData) { p.clone() } else { masking::mask_phone(p) };
    }
    format!("#{}", &c.id[c.id.len().saturating_sub(6)..])
}

/// A conversation as a row of the inbox.
pub fn row_view(c: &Conversation, channels: &HashMap<&str, &Channel>, role: Role) -> Value {
    let last = c.last_message.as_ref();
    let preview = last
        .map(|m| {
            let t = m.text.clone().unwrap_or_default();
            let t =
                if t.is_empty() && !m.attachments.is_empty() { format!("📎 {}", m.attachments[0].name) } else { t };
            let short: String = t.chars().take(90).collect();
            if t.chars().count() > 90 {
                format!("{short}…")
            } else {
                short
            }
        })
        .unwrap_or_default();
    let channel_id = last.map(|m| m.channel_id.as_str()).or(c.last_inbound_channel_id.as_deref()).unwrap_or("");
    json!({
        "id": c.id,
        "name": display_name(&c.contact, role),
        "status": c.status.as_str(),
        "assignee": c.assignee,
        "labels": c.labels,
        "unread": c.unread,
        "preview": preview,
        "outgoing": last.is_some_and(|m| m.direction == Direction::Out),
        "last_status": last.map(|m| m.status.as_str()),
        "time": short_time(c.last_message_at),
        "iso": okno_domain::time::to_rfc3339(c.last_message_at),
        "channel": channel_view(channels.get(channel_id).copied()),
    })
}

/// A row of the window's list: [`row_view`], with a button press previewed as what was pressed.
fn inbox_row(c: &Conversation, channels: &HashMap<&str, &Channel>, role: Role, lang: Lang) -> Value {
    let mut row = row_view(c, channels, role);
    if let Some(press) = c.last_message.as_ref().and_then(|m| authors::pressed(lang, m)) {
        row["preview"] = json!(format!("▣ {press}"));
    }
    row
}

/// `GET /ui/inbox`
pub async fn inbox(State(state): State<AppState>, s: Session, Query(q): Query<InboxQuery>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    let page = async {
        let mut ctx = inbox_view(&state, &s, &q).await?;
        if q.fragment.is_none() {
            ctx["onboarding"] = json!(super::onboarding::checklist(&state, &s).await?);
        }
        Ok::<_, okno_domain::Error>(ctx)
    };
    match page.await {
        Ok(ctx) => ui.render(if q.fragment.is_some() { "inbox_list.html" } else { "inbox.html" }, &s, ctx),
        Err(e) => error_page(ui, &s, e),
    }
}

async fn inbox_view(state: &AppState, s: &Session, q: &InboxQuery) -> okno_domain::Result<Value> {
    let store = &state.engine.store;
    let status = nonempty(&q.status).map(|v| ConversationStatus::parse(&v)).transpose()?;
    let assignee = match nonempty(&q.assignee).as_deref() {
        Some("mine") => Some(Some(s.operator.login.clone())),
        Some("unassigned") => Some(None),
        _ => None,
    };
    let filter = ConversationFilter {
        status,
        contact_id: None,
        channel_id: nonempty(&q.channel).map(ChannelId::from),
        assignee,
        label: nonempty(&q.label),
        text: None,
    };
    let (items, next, limited) = match nonempty(&q.q) {
        None => {
            let page = store.list_conversations(filter, PageRequest::new(Some(50), nonempty(&q.cursor))).await?;
            (page.items, page.next, false)
        }
        Some(text) => {
            let (items, limited) = search(state, s.role(), filter, &text).await?;
            (items, None, limited)
        }
    };
    let channels = store.list_channels().await?;
    let map = channel_map(&channels);
    let rows: Vec<Value> = items.iter().map(|c| inbox_row(c, &map, s.role(), s.lang)).collect();
    let mut labels: Vec<&String> =
        items.iter().flat_map(|c| c.labels.iter()).collect::<HashSet<_>>().into_iter().collect();
    labels.sort();
    Ok(json!({
        "title": super::i18n::t(s.lang, "inbox"),
        "nav": "inbox",
        "rows": rows,
        "next": next.as_deref().map(|n| q.next_page(n)),
        "paged": nonempty(&q.cursor).is_some() && nonempty(&q.q).is_none(),
        "limited": limited,
        "channels": channels.iter().map(|c| channel_view(Some(c))).collect::<Vec<_>>(),
        "labels": labels,
        "f": {
            "status": nonempty(&q.status), "channel": nonempty(&q.channel), "assignee": nonempty(&q.assignee).unwrap_or_else(|| "all".into()),
            "label": nonempty(&q.label), "q": nonempty(&q.q),
        },
        "keep": q.keep(),
        "list_src": format!("/ui/inbox{}", q.keep_page()),
        "wide": true,
    }))
}

/// Conversations matching a search: the contact's name, external id or (for roles that may
/// see it) phone or email, or the text of any message in the conversation (any case, any
/// alphabet; the store's message index). Newest first; `true` when there were more message
/// matches than one page shows.
async fn search(
    state: &AppState,
    role: Role,
    filter: ConversationFilter,
    text: &str,
) -> okno_domain::Result<(Vec<Conversation>, bool)> {
    let store = &state.engine.store;
    let needle = text.to_lowercase();
    let contacts = store
        .find_contacts(
            ContactFilter { q: Some(text.to_string()), ..Default::default() },
            PageRequest::new(Some(50), None),
        )
        .await?;
    let mut found: Vec<Conversation> = Vec::new();
    let mut seen = HashSet::new();
    for c in contacts.items {
        // A restricted role must not learn a phone number by searching for it.
        let visible_match = role.allows(Permission::PersonalData)
            || c.name.as_deref().is_some_and(|n| n.to_lowercase().contains(&needle))
            || c.external_id.as_deref().is_some_and(|n| n.to_lowercase().contains(&needle));
        if !visible_match {
            continue;
        }
        let f = ConversationFilter { contact_id: Some(c.id.clone()), ..filter.clone() };
        for conv in store.list_conversations(f, PageRequest::new(Some(20), None)).await?.items {
            if seen.insert(conv.id.clone()) {
                found.push(conv);
            }
        }
    }
    let by_text = ConversationFilter { text: Some(text.to_string()), ..filter };
    let page = store.list_conversations(by_text, PageRequest::new(Some(SEARCH_PAGE), None)).await?;
    for conv in page.items {
        if seen.insert(conv.id.clone()) {
            found.push(conv);
        }
    }
    found.sort_by(|a, b| b.last_message_at.cmp(&a.last_message_at).then(b.id.cmp(&a.id)));
    Ok((found, page.next.is_some()))
}

/// Conversations a search shows by their messages' text.
const SEARCH_PAGE: u32 = 50;

/// `GET /ui/conversations/{id}`: the window with this conversation open (the list keeps the
/// filters given), or one part of it (`?fragment=`).
pub async fn conversation(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<ConversationId>,
    Query(q): Query<InboxQuery>,
) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    let (template, with_panel) = match q.fragment.as_deref() {
        None => ("inbox.html", true),
        Some("thread") => ("thread.html", false),
        Some("pane") => ("conversation.html", true),
        Some("panel") => ("panel.html", true),
        Some(other) => {
            let e = okno_domain::Error::invalid("invalid_fragment", format!("unknown fragment `{other}`"));
            return error_page(ui, &s, e);
        }
    };
    let view = async {
        let read = q.background.as_deref() != Some("1");
        let mut ctx = conversation_view(&state, &s, &id, with_panel, read).await?;
        ctx["keep"] = json!(q.keep());
        if q.fragment.is_none() {
            // The whole window: the list beside the conversation.
            let list = inbox_view(&state, &s, &q).await?;
            if let (Value::Object(ctx), Value::Object(list)) = (&mut ctx, list) {
                for (k, v) in list {
                    ctx.entry(k).or_insert(v);
                }
            }
        }
        Ok::<_, okno_domain::Error>(ctx)
    };
    match view.await {
        Ok(ctx) => ui.render(template, &s, ctx),
        Err(e) => error_page(ui, &s, e),
    }
}

/// Messages and operators' notes, in the order they were written.
fn thread_items(
    messages: &[okno_domain::model::Message],
    notes: &[okno_store::Note],
    map: &std::collections::HashMap<&str, &okno_domain::model::Channel>,
    names: &Names,
    lang: Lang,
) -> Vec<Value> {
    let mut items: Vec<(i64, Value)> =
        messages.iter().map(|m| (m.created_at, message_view(m, map, names, lang))).collect();
    for n in notes {
        let author = authors::sender(lang, &n.author).view();
        items.push((
            n.created_at,
            json!({"id": n.id, "dir": "note", "text": n.text, "author": author, "time": super::short_time(n.created_at),
                   "iso": okno_domain::time::to_rfc3339(n.created_at)}),
        ));
    }
    items.sort_by_key(|(at, _)| *at);
    items.into_iter().map(|(_, v)| v).collect()
}

/// `read`: the operator is looking at it, so its unread count clears.
async fn conversation_view(
    state: &AppState,
    s: &Session,
    id: &ConversationId,
    with_panel: bool,
    read: bool,
) -> okno_domain::Result<Value> {
    let store = &state.engine.store;
    let mut conv = store.get_conversation(id).await?;
    if read && conv.unread > 0 {
        conv = store.update_conversation(id, ConversationPatch { mark_read: true, ..Default::default() }).await?;
        state.engine.mark_read_on_platform(id);
    }
    masking::conversation(s.role(), &mut conv);
    let mut messages = Vec::new();
    let mut cursor = None;
    // The whole history; a page is at most 500 and a thread of 10,000 is already unusual.
    for _ in 0..20 {
        let page = store.list_messages(id, PageRequest::new(Some(500), cursor)).await?;
        messages.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let channels = store.list_channels().await?;
    let map = channel_map(&channels);
    let mut reply_channels: Vec<Value> = Vec::new();
    for ident in &conv.contact.identities {
        if let Some(ch) = map.get(ident.channel_id.as_str()) {
            if !reply_channels.iter().any(|v| v["id"] == ch.id.as_str()) {
                let mut v = channel_view(Some(ch));
                v["blocked"] = json!(ident.blocked || ident.opted_out);
                reply_channels.push(v);
            }
        }
    }
    // Where the person wrote last, read from the thread itself: after a merge the stored
    // `last_inbound_channel_id` can still name the kept conversation's older channel.
    let default_channel = messages
        .iter()
        .rev()
        .find(|m| m.direction == Direction::In)
        .map(|m| m.channel_id.clone())
        .or_else(|| conv.last_inbound_channel_id.clone())
        .or_else(|| reply_channels.first().map(|v| ChannelId::from(v["id"].as_str().unwrap_or(""))));
    // The customer-service window of the channel a reply goes to by default, and the
    // templates that channel has for when it is closed.
    let window = match &default_channel {
        Some(ch) => state.engine.conversation_window(&conv.id, Some(ch)).await?,
        None => None,
    };
    let templates = default_channel
        .as_ref()
        .and_then(|ch| map.get(ch.as_str()))
        .and_then(|ch| ch.config.get("templates").cloned())
        .unwrap_or(json!([]));
    let about = store.platform_context(&conv.id).await?.map(|c| about_view(&c));
    Ok(json!({
        "window": window.map(|w| json!({"open": w.open, "closes_at": w.closes_at.map(super::short_time)})),
        "templates": templates,
        "about": about,
        "title": super::inbox::display_name(&conv.contact, s.role()),
        "nav": "inbox",
        "conv": {
            "id": conv.id, "status": conv.status.as_str(), "assignee": conv.assignee, "labels": conv.labels,
            "labels_text": conv.labels.join(", "),
            "contact_id": conv.contact.id, "name": super::inbox::display_name(&conv.contact, s.role()),
            "phone": conv.contact.phone, "email": conv.contact.email, "external_id": conv.contact.external_id,
            "mine": conv.assignee.as_deref() == Some(s.operator.login.as_str()),
        },
        "messages": thread_items(&messages, &store.list_notes(id).await?, &map, &Names::load(&**store, &messages).await?, s.lang),
        "panel": if with_panel { Some(super::panel::panel_view(state, s.role(), &conv, &map).await?) } else { None },
        "snoozed_until": conv.snoozed_until.map(super::short_time),
        "reply_channels": reply_channels,
        "default_channel": default_channel,
        "can_write": s.role().allows(Permission::Write),
        "canned": state.ui.canned.list().unwrap_or_default(),
    }))
}

/// What a conversation is about on its platform, for the page: the first object the context
/// holds (`{"avito_item": {"title", "url", "price"}}`) with its title, link and price.
fn about_view(context: &Value) -> Value {
    let item = context.as_object().and_then(|o| o.values().find(|v| v.is_object())).unwrap_or(context);
    let text = |k: &str| {
        item.get(k).and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())))
    };
    json!({
        "title": text("title"),
        "url": text("url").filter(|u| u.starts_with("https://") || u.starts_with("http://")),
        "price": text("price").or_else(|| text("price_string")),
    })
}

/// After an action on a conversation: back to it (a form post), or `204` for the window's
/// script (`x-okno-fragment`), which refreshes the parts itself and keeps the list in place.
fn back_to(headers: &HeaderMap, id: &str) -> Response {
    if headers.contains_key("x-okno-fragment") {
        return axum::http::StatusCode::NO_CONTENT.into_response();
    }
    Redirect::to(&format!("/ui/conversations/{id}")).into_response()
}

/// `POST /ui/conversations/{id}/typing` (the page's script, with the CSRF token in
/// `x-csrf-token`, while the operator types an answer): "typing…" in the person's chat where
/// the platform shows it. 204 in any case but a refused session: a chat that cannot show it
/// is nothing to report.
pub async fn typing(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<ConversationId>,
    headers: HeaderMap,
) -> Response {
    use axum::http::StatusCode;
    if s.refuse_post(&state.ui, &headers, &Form::default(), Permission::Write).is_some() {
        return StatusCode::FORBIDDEN.into_response();
    }
    if let Err(e) = state.engine.chat_action(&id, "typing").await {
        tracing::debug!(conversation = %id, error = %e, "typing was not shown");
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /ui/conversations/{id}/reply`: `text`, `channel_id`.
pub async fn reply(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<ConversationId>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Write) {
        return r;
    }
    // `/shortcut` alone becomes its canned response (the page's script does it as you type).
    let text = form.field("text").map(|t| ui.canned.expand(&t).unwrap_or(t));
    if form.get("as_note").is_some() {
        // A private note: kept with the conversation, never sent.
        let Some(text) = text.filter(|t| t.chars().count() <= 10_000) else {
            return error_page(ui, &s, okno_domain::Error::invalid("invalid_note", "a note is 1..10000 characters"));
        };
        return match state.engine.store.add_note(&id, &format!("operator:{}", s.operator.login), &text).await {
            Ok(_) => back_to(&headers, &id),
            Err(e) => error_page(ui, &s, e),
        };
    }
    let attachment_ids: Vec<String> = form
        .get("attachments")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    // A pre-approved template, for a platform whose window is closed: its name (`name|language`
    // as the picker gives it) and its parameters one per line.
    let template = form.field("template").map(|t| {
        let (name, language) = t.split_once('|').unwrap_or((t.as_str(), "ru"));
        let params: Vec<String> = form
            .get("template_params")
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        json!({"name": name, "language": language, "params": params})
    });
    if text.is_none() && attachment_ids.is_empty() && template.is_none() {
        return error_page(ui, &s, okno_domain::Error::invalid("empty_text", "the reply is empty"));
    }
    let mut options = json!({});
    if let Some(t) = template {
        options[okno_domain::channel::TEMPLATE_OPTION] = t;
    }
    let req = OutboundRequest {
        to: Recipient::Conversation(id.clone()),
        channel_id: form.field("channel_id").map(ChannelId::from),
        text,
        buttons: Vec::new(),
        attachment_ids,
        idempotency_key: form.field("idem").map(|k| format!("ui:{}:{k}", s.operator.login)),
        author: Some(format!("operator:{}", s.operator.login)),
        reply_to: None,
        options,
    };
    match state.engine.send(req).await {
        Ok(_) => back_to(&headers, &id),
        Err(e) => error_page(ui, &s, e),
    }
}

/// `POST /ui/conversations/{id}/update`: `action` = `assign_me` | `unassign` | `resolve` |
/// `reopen` | `pending` | `labels` (with `labels`, comma-separated).
pub async fn update(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<ConversationId>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Write) {
        return r;
    }
    let mut patch = ConversationPatch::default();
    match form.get("action").unwrap_or("") {
        "assign_me" => patch.assignee = Some(Some(s.operator.login.clone())),
        "unassign" => patch.assignee = Some(None),
        "resolve" => patch.status = Some(ConversationStatus::Resolved),
        "reopen" => patch.status = Some(ConversationStatus::Open),
        "pending" => patch.status = Some(ConversationStatus::Pending),
        "snooze_1h" => patch.snooze_until = Some(okno_domain::time::now_ms() + 3_600_000),
        "snooze_1d" => patch.snooze_until = Some(okno_domain::time::now_ms() + 86_400_000),
        "labels" => {
            let labels: Vec<String> = form
                .get("labels")
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            if labels.len() > 50 || labels.iter().any(|l| l.len() > 100) {
                return error_page(
                    ui,
                    &s,
                    okno_domain::Error::invalid("invalid_labels", "up to 50 labels of 1..100 characters"),
                );
            }
            patch.labels = Some(labels);
        }
        other => {
            return error_page(
                ui,
                &s,
                okno_domain::Error::invalid("invalid_action", format!("unknown action `{other}`")),
            );
        }
    }
    let status = patch.status;
    let result = async {
        state.engine.store.update_conversation(&id, patch).await?;
        if let Some(st) = status {
            state.engine.conversation_status_changed(&id, st).await?;
        }
        Ok::<_, okno_domain::Error>(())
    }
    .await;
    match result {
        Ok(()) => back_to(&headers, &id),
        Err(e) => error_page(ui, &s, e),
    }
}

/// `POST /ui/messages/{id}/retry`: sends a failed message again, as a new message on the
/// same channel.
pub async fn retry(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<MessageId>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Write) {
        return r;
    }
    let result = async {
        let m = state.engine.store.get_message(&id).await?;
        if m.direction != Direction::Out || m.status != okno_domain::model::MessageStatus::Failed {
            return Err(okno_domain::Error::invalid("not_failed", "only a failed outbound message can be sent again"));
        }
        let req = OutboundRequest {
            to: Recipient::Conversation(m.conversation_id.clone()),
            channel_id: Some(m.channel_id.clone()),
            text: m.text.clone(),
            buttons: m.buttons.clone(),
            attachment_ids: m.attachments.iter().map(|a| a.id.clone()).collect(),
            idempotency_key: Some(format!("retry:{}", m.id)),
            author: Some(format!("operator:{}", s.operator.login)),
            reply_to: m.reply_to.clone(),
            options: json!({}),
        };
        state.engine.send(req).await?;
        Ok(m.conversation_id)
    }
    .await;
    match result {
        Ok(conv) => back_to(&headers, &conv),
        Err(e) => error_page(ui, &s, e),
    }
}

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    pub name: String,
}

/// `POST /ui/attachments?name=`: the body is the file (sent by the reply box's script with the
/// `x-csrf-token` header); answers `{"id", "name", "size"}` for the reply's `attachments`.
pub async fn upload(
    State(state): State<AppState>,
    s: Session,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: crate::error::RawBody,
) -> Response {
    use axum::http::StatusCode;
    let ui = &state.ui;
    let fail = |status: StatusCode, msg: String| (status, axum::Json(json!({"error": msg}))).into_response();
    if s.refuse_post(ui, &headers, &Form::default(), Permission::Write).is_some() {
        return fail(StatusCode::FORBIDDEN, super::i18n::t(s.lang, "csrf_failed"));
    }
    let name = q.name.trim();
    if name.is_empty() || name.len() > 255 || name.contains(['/', '\\']) {
        return fail(StatusCode::BAD_REQUEST, "a file name of 1..255 characters".into());
    }
    if body.0.is_empty() {
        return fail(StatusCode::BAD_REQUEST, "the file is empty".into());
    }
    let mime = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .filter(|m| !m.is_empty())
        .unwrap_or("application/octet-stream")
        .to_string();
    let stored = async {
        let sha256 = state
            .engine
            .files
            .put(&body.0)
            .await
            .map_err(|e| okno_domain::Error::internal(format!("attachment store: {e}")))?;
        state
            .engine
            .store
            .insert_attachment(okno_store::NewAttachment {
                message_id: None,
                name: name.to_string(),
                mime,
                size: body.0.len() as i64,
                sha256,
            })
            .await
    }
    .await;
    match stored {
        Ok(a) => (StatusCode::CREATED, axum::Json(json!({"id": a.id, "name": a.name, "size": a.size}))).into_response(),
        Err(e) => fail(crate::error::status_of(e.kind), e.message),
    }
}

/// `GET /ui/attachments/{id}`: a stored file, for operators.
pub async fn download(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    if let Some(r) = refuse(&state.ui, &s, Permission::Read) {
        return r;
    }
    match crate::api::attachments::serve(&state, &id).await {
        Ok(r) => r,
        Err(e) => error_page(&state.ui, &s, e.0),
    }
}
