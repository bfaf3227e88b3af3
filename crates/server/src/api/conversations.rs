//! `/api/v1/conversations`: threads, their messages, replies, status/assignee/labels.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::ids::ConversationId;
use okno_domain::model::{Conversation, ConversationStatus, Message, Page, Permission};
use okno_store::{ConversationFilter, ConversationPatch, Recipient};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::PageParams;
use crate::auth::Auth;
use crate::error::{double_option, ApiJson, ApiQuery, ApiResult};
use crate::AppState;

/// Filters of `GET /api/v1/conversations`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    /// `bot`, `open`, `pending` or `resolved`.
    pub status: Option<String>,
    pub contact_id: Option<String>,
    /// Conversations with messages on this channel.
    pub channel_id: Option<String>,
    /// An assignee, or `none` for unassigned ones.
    pub assignee: Option<String>,
    pub label: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `PATCH /api/v1/conversations/{id}` body. `"assignee": null` unassigns.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConversation {
    pub status: Option<ConversationStatus>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub assignee: Option<Option<String>>,
    pub labels: Option<Vec<String>>,
    /// `true` marks every message read (unread = 0).
    #[serde(default)]
    pub read: bool,
    /// Snooze until this time (RFC 3339): `pending` until then or until the person writes, then
    /// open again.
    pub snoozed_until: Option<String>,
}

/// `POST /api/v1/conversations/{id}/notes` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// Seen by operators only; never sent (1..10000 characters).
    pub text: String,
}

/// `POST /api/v1/conversations/{id}/chat-action` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatAction {
    /// `typing`, `upload_document`, `upload_photo`…
    pub action: String,
}

/// Conversations by the time of their last message (`last_message_at`, inbound or outbound),
/// newest first; reading, status changes and other bookkeeping do not move them. The cursor
/// continues after the last one returned: a conversation is never listed twice while paging,
/// and one that receives a message meanwhile moves ahead of the cursor, to the first page.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", params(ConversationQuery), responses((status = 200, body = Page<Conversation>)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<ConversationQuery>,
) -> ApiResult<Json<Page<Conversation>>> {
    auth.require(Permission::Read)?;
    let filter = ConversationFilter {
        status: q.status.as_deref().map(ConversationStatus::parse).transpose()?,
        contact_id: q.contact_id.map(Into::into),
        channel_id: q.channel_id.map(Into::into),
        assignee: q.assignee.map(|a| if a == "none" { None } else { Some(a) }),
        label: q.label,
        ..Default::default()
    };
    let page = PageParams { limit: q.limit, cursor: q.cursor }.request();
    let mut found = state.engine.store.list_conversations(filter, page).await?;
    found.items.iter_mut().for_each(|c| crate::masking::conversation(auth.token.role, c));
    Ok(Json(found))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", responses((status = 200, body = Conversation), (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Conversation>> {
    let id = ConversationId::from(id);
    auth.require(Permission::Read)?;
    let mut conversation = state.engine.store.get_conversation(&id).await?;
    crate::masking::conversation(auth.token.role, &mut conversation);
    Ok(Json(conversation))
}

#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations", request_body = UpdateConversation,
    responses((status = 200, body = Conversation), (status = 404)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateConversation>,
) -> ApiResult<Json<Conversation>> {
    let id = ConversationId::from(id);
    auth.require(Permission::Write)?;
    if let Some(labels) = &body.labels {
        if labels.iter().any(|l| l.trim().is_empty() || l.len() > 100) || labels.len() > 50 {
            return Err(okno_domain::Error::invalid("invalid_labels", "up to 50 labels of 1..100 characters").into());
        }
    }
    let status = body.status;
    let snooze_until = match body.snoozed_until.as_deref() {
        None => None,
        Some(t) => match okno_domain::time::parse_rfc3339(t) {
            Some(at) if at > okno_domain::time::now_ms() && body.status.is_none() => Some(at),
            Some(_) if body.status.is_some() => {
                return Err(
                    okno_domain::Error::invalid("invalid_snooze", "`snoozed_until` goes without `status`").into()
                )
            }
            _ => {
                return Err(okno_domain::Error::invalid(
                    "invalid_snooze",
                    format!("`snoozed_until` is a time in the future (RFC 3339): `{t}`"),
                )
                .into())
            }
        },
    };
    let patch = ConversationPatch {
        status: body.status,
        assignee: body.assignee,
        labels: body.labels,
        mark_read: body.read,
        snooze_until,
    };
    let mut conversation = state.engine.store.update_conversation(&id, patch).await?;
    if body.read {
        state.engine.mark_read_on_platform(&id);
    }
    crate::masking::conversation(auth.token.role, &mut conversation);
    if let Some(status) = status {
        // Operators taking or releasing the conversation silence or wake the channel's bot.
        state.engine.conversation_status_changed(&id, status).await?;
    }
    Ok(Json(conversation))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/notes", tag = "conversations", request_body = NewNote,
    responses((status = 201, description = "the note: `{id, conversation_id, author, text, created_at}`"), (status = 400), (status = 404)))]
pub async fn add_note(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewNote>,
) -> ApiResult<(axum::http::StatusCode, Json<okno_store::Note>)> {
    let id = ConversationId::from(id);
    auth.require(Permission::Write)?;
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > 10_000 {
        return Err(okno_domain::Error::invalid("invalid_note", "a note is 1..10000 characters").into());
    }
    let note = state.engine.store.add_note(&id, &auth.actor(), text).await?;
    Ok((axum::http::StatusCode::CREATED, Json(note)))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/notes", tag = "conversations",
    responses((status = 200, description = "`{items: [note…]}`, oldest first"), (status = 404)))]
pub async fn notes(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Page<okno_store::Note>>> {
    let id = ConversationId::from(id);
    auth.require(Permission::Read)?;
    state.engine.store.get_conversation(&id).await?;
    Ok(Json(super::all(state.engine.store.list_notes(&id).await?)))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations", params(PageParams),
    responses((status = 200, body = Page<Message>, description = "oldest first"), (status = 404)))]
pub async fn messages(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Message>>> {
    let id = ConversationId::from(id);
    auth.require(Permission::Read)?;
    Ok(Json(state.engine.store.list_messages(&id, page.request()).await?))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations", request_body = super::SendBody,
    responses((status = 202, body = Message, description = "queued"), (status = 404), (status = 422, description = "no identity to send to")))]
pub async fn reply(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<super::SendBody>,
) -> ApiResult<(StatusCode, Json<Message>)> {
    let id = ConversationId::from(id);
    auth.require(Permission::Write)?;
    if body.contact_id.is_some() || body.external_id.is_some() {
        return Err(okno_domain::Error::invalid(
            "invalid_recipient",
            "a reply goes to the conversation; leave out `contact_id` and `external_id`",
        )
        .into());
    }
    let req = body.into_request(Recipient::Conversation(id), auth.actor())?;
    let (message, _) = state.engine.send(req).await?;
    Ok((StatusCode::ACCEPTED, Json(message)))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/chat-action", tag = "conversations", request_body = ChatAction,
    responses((status = 204, description = "shown where the platform supports it"), (status = 404)))]
pub async fn chat_action(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChatAction>,
) -> ApiResult<StatusCode> {
    let id = ConversationId::from(id);
    auth.require(Permission::Write)?;
    const ACTIONS: &[&str] = &[
        "typing",
        "upload_photo",
        "upload_document",
        "upload_video",
        "record_voice",
        "upload_voice",
        "choose_sticker",
    ];
    if !ACTIONS.contains(&body.action.as_str()) {
        return Err(okno_domain::Error::invalid(
            "invalid_action",
            format!("`action` is one of: {}", ACTIONS.join(", ")),
        )
        .into());
    }
    state.engine.chat_action(&id, &body.action).await?;
    Ok(StatusCode::NO_CONTENT)
}
