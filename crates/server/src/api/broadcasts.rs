//! `/api/v1/broadcasts`: one message to many people (docs/broadcasts.md). Creating one only
//! stores it; the workers send it at the channels' pace, and its progress is read here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::model::{Page, Permission};
use okno_store::{Broadcast, BroadcastAction, BroadcastRecipient, BroadcastReport};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::error::{ApiJson, ApiQuery, ApiResult};
use crate::AppState;

/// Filters of `GET /api/v1/broadcasts/{id}/recipients`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecipientQuery {
    /// `pending`, `sent`, `failed`, `skipped` or `cancelled`.
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/broadcasts", tag = "broadcasts",
    request_body(content = Object, description = "`{\"name\", \"audience\": {\"groups\": [...]} | {\"contact_ids\": [...]} | {\"filter\": {\"group\", \"attrs\", \"q\", \"channel_kind\"}}, \"text\" (a template over `contact`), \"buttons\"?, \"attachments\"?, \"send_at\"?, \"rate\"?, \"unsubscribe_button\"?}`"),
    responses((status = 201, description = "stored: `{\"id\", \"status\": \"running\" | \"scheduled\", …}`"),
        (status = 400, description = "`invalid_broadcast`, `template_syntax` with the position"),
        (status = 422, description = "`unknown_contact`, `unknown_attachment`")))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Broadcast>)> {
    auth.require(Permission::Write)?;
    let b = state.engine.create_broadcast(&body, Some(auth.actor()), auth.token.role).await?;
    super::channels::audit(&state, &auth, "broadcast.create", &b.id, json!({"name": b.name})).await;
    Ok((StatusCode::CREATED, Json(b)))
}

#[utoipa::path(post, path = "/api/v1/broadcasts/estimate", tag = "broadcasts",
    request_body(content = Object, description = "`{\"audience\", \"text\"}` as for a new broadcast"),
    responses((status = 200, description = "`{\"people\", \"unreachable\", \"channels\": [{\"channel_id\", \"channel_name\", \"kind\", \"people\", \"parts\", \"encoding\", \"total_parts\", \"price_per_part\", \"cost\", \"currency\"}]}` — channels that charge by the part (SMS segments)"),
        (status = 400, description = "`invalid_broadcast`")))]
/// What a broadcast would cost before it starts: its audience worked out as the engine will,
/// each person's channel picked as the sender will, the text's parts counted the platform's way.
pub async fn estimate(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<okno_engine::estimate::Estimate>> {
    auth.require(Permission::Read)?;
    let audience: okno_engine::broadcasts::Audience = serde_json::from_value(body["audience"].clone())
        .map_err(|e| okno_domain::Error::invalid("invalid_broadcast", format!("`audience` is not valid: {e}")))?;
    let text = body["text"].as_str().unwrap_or_default();
    let ids = state.engine.audience(&audience).await?;
    Ok(Json(state.engine.estimate(&ids, text).await?))
}

#[utoipa::path(get, path = "/api/v1/broadcasts", tag = "broadcasts", params(super::PageParams),
    responses((status = 200, description = "the newest first, each with its progress")))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<super::PageParams>,
) -> ApiResult<Json<Page<Broadcast>>> {
    auth.require(Permission::Read)?;
    Ok(Json(state.engine.store.list_broadcasts(q.request()).await?))
}

#[utoipa::path(get, path = "/api/v1/broadcasts/{id}", tag = "broadcasts",
    responses((status = 200, description = "`{\"id\", \"status\": \"scheduled\" | \"running\" | \"paused\" | \"done\" | \"cancelled\", \"total\", \"sent\", \"failed\", \"pending\", \"skipped\", \"cancelled\", …}`"),
        (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Broadcast>> {
    auth.require(Permission::Read)?;
    Ok(Json(state.engine.store.get_broadcast(&id).await?))
}

async fn control(state: AppState, auth: Auth, id: String, action: BroadcastAction) -> ApiResult<Json<Broadcast>> {
    auth.require(Permission::Write)?;
    let b = state.engine.store.control_broadcast(&id, action).await?;
    state.engine.wake_bulk();
    let what = match action {
        BroadcastAction::Pause => "broadcast.pause",
        BroadcastAction::Resume => "broadcast.resume",
        BroadcastAction::Cancel => "broadcast.cancel",
    };
    super::channels::audit(&state, &auth, what, &id, json!({})).await;
    Ok(Json(b))
}

#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/pause", tag = "broadcasts",
    responses((status = 200, description = "paused: nobody more is sent to until it is resumed"), (status = 404),
        (status = 409, description = "`broadcast_state`: it is done or cancelled")))]
pub async fn pause(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Broadcast>> {
    control(state, auth, id, BroadcastAction::Pause).await
}

#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/resume", tag = "broadcasts",
    responses((status = 200, description = "running again (or scheduled, before its `send_at`)"), (status = 404),
        (status = 409, description = "`broadcast_state`: it is not paused")))]
pub async fn resume(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Broadcast>> {
    control(state, auth, id, BroadcastAction::Resume).await
}

#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/cancel", tag = "broadcasts",
    responses((status = 200, description = "cancelled: people not yet sent to are left out"), (status = 404),
        (status = 409, description = "`broadcast_state`: it is done or cancelled already")))]
pub async fn cancel(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Broadcast>> {
    control(state, auth, id, BroadcastAction::Cancel).await
}

#[utoipa::path(get, path = "/api/v1/broadcasts/{id}/recipients", tag = "broadcasts", params(RecipientQuery),
    responses((status = 200, description = "people in audience order, each with `status`, channel, message, `reason`, `answer`"),
        (status = 400, description = "`invalid_status`"), (status = 404)))]
pub async fn recipients(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RecipientQuery>,
) -> ApiResult<Json<Page<BroadcastRecipient>>> {
    auth.require(Permission::Read)?;
    let page = okno_store::PageRequest::new(q.limit, q.cursor);
    Ok(Json(state.engine.store.broadcast_recipients(&id, q.status, page).await?))
}

#[utoipa::path(get, path = "/api/v1/broadcasts/{id}/report", tag = "broadcasts",
    responses((status = 200, description = "counts, `failed_by_reason` and `answers` as `[value, people]` pairs, `unsubscribed`"),
        (status = 404)))]
pub async fn report(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<BroadcastReport>> {
    auth.require(Permission::Read)?;
    Ok(Json(state.engine.store.broadcast_report(&id).await?))
}
