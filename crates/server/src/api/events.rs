//! `/api/v1/events`: business events (idempotent on `key`) and what became of them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::model::Permission;
use okno_domain::time::parse_rfc3339;
use okno_domain::Error;
use okno_store::{EventRecord, NewEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiJson, ApiResult};
use crate::AppState;

/// `POST /api/v1/events` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostEvent {
    /// e.g. `payment.received`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The idempotency key: the same key never notifies twice (or the `Idempotency-Key` header).
    pub key: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
    /// Send at this time (RFC 3339) instead of now.
    pub send_at: Option<String>,
}

/// The answer to a posted event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub id: String,
    pub duplicate: bool,
}

#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = PostEvent,
    responses((status = 202, body = Accepted, description = "stored; rules run"), (status = 200, body = Accepted, description = "the key was seen before: nothing happens again")))]
pub async fn post(
    State(state): State<AppState>,
    auth: Auth,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<PostEvent>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    auth.require(Permission::Write)?;
    let header_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let key = body.key.or(header_key).unwrap_or_default();
    let event_type = body.event_type.trim().to_string();
    if event_type.is_empty() || event_type.len() > 200 {
        return Err(Error::invalid("invalid_event", "`type` must be 1..200 characters").into());
    }
    if key.is_empty() || key.len() > 400 {
        return Err(
            Error::invalid("invalid_event", "`key` (or the Idempotency-Key header) must be 1..400 characters").into()
        );
    }
    let data = match body.data {
        Value::Null => Value::Object(Default::default()),
        d @ Value::Object(_) => d,
        _ => return Err(Error::invalid("invalid_event", "`data` must be a JSON object").into()),
    };
    let send_at = match &body.send_at {
        Some(t) => Some(
            parse_rfc3339(t)
                .ok_or_else(|| Error::invalid("invalid_event", format!("`send_at` `{t}` is not an RFC 3339 time")))?,
        ),
        None => None,
    };
    let (event, duplicate) = state.engine.store.accept_event(NewEvent { event_type, key, data, send_at }).await?;
    if !duplicate {
        state.engine.wake();
    }
    let status = if duplicate { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(Accepted { id: event.id, duplicate })))
}

#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events",
    responses((status = 200, description = "the event, every recipient's delivery and every recipient that could not be reached"), (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<EventRecord>> {
    auth.require(Permission::Read)?;
    Ok(Json(state.engine.store.get_event(&id).await?))
}
