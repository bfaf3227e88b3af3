//! `/api/v1/messages`: send to a contact without knowing the conversation; read a message.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::ids::MessageId;
use okno_domain::model::{Button, Message, Permission};
use okno_domain::Error;
use okno_store::Recipient;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiJson, ApiResult};
use crate::AppState;

/// `PATCH /api/v1/messages/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    /// The new buttons of a sent message; `[]` removes them (e.g. after a press).
    pub buttons: Vec<Vec<Button>>,
}

#[utoipa::path(post, path = "/api/v1/messages", tag = "messages", request_body = super::SendBody,
    responses((status = 202, body = Message, description = "queued (or the earlier message for a repeated idempotency_key)"),
              (status = 404), (status = 422)))]
pub async fn send(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(mut body): ApiJson<super::SendBody>,
) -> ApiResult<(StatusCode, Json<Message>)> {
    auth.require(Permission::Write)?;
    let to = match (body.contact_id.take(), body.external_id.take()) {
        (Some(id), None) => Recipient::Contact(id.into()),
        (None, Some(ext)) => Recipient::ExternalId(ext),
        _ => {
            return Err(Error::invalid("invalid_recipient", "give exactly one of `contact_id` and `external_id`").into())
        }
    };
    if body.reply_to.is_some() {
        return Err(Error::invalid("invalid_body", "`reply_to` belongs to conversation replies").into());
    }
    let req = body.into_request(to, auth.actor())?;
    let (message, _) = state.engine.send(req).await?;
    Ok((StatusCode::ACCEPTED, Json(message)))
}

#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages", responses((status = 200, body = Message), (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Message>> {
    let id = MessageId::from(id);
    auth.require(Permission::Read)?;
    Ok(Json(state.engine.store.get_message(&id).await?))
}

#[utoipa::path(patch, path = "/api/v1/messages/{id}", tag = "messages", request_body = EditMessage,
    responses((status = 200, body = Message), (status = 404), (status = 422, description = "the platform refused the edit")))]
pub async fn edit(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EditMessage>,
) -> ApiResult<Json<Message>> {
    let id = MessageId::from(id);
    auth.require(Permission::Write)?;
    Ok(Json(state.engine.edit_buttons(&id, body.buttons).await?))
}
