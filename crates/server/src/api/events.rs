//! `/api/v1/events`: business events (idempotent on `key`) and what became of them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::model::{Page, Permission};
use okno_domain::time::{parse_rfc3339, Millis};
use okno_domain::Error;
use okno_store::{EventFilter, EventRecord, EventSummary, NewEvent, PageRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiJson, ApiQuery, ApiResult};
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
    responses((status = 200, description = "the event; `deliveries`: every person a message was made for — `contact_id`, `channel_id`, `message_id`, `conversation_id`, `status` (the message's, or `failed` when none could be made), `error`, `code` (`template_failed`, `attachment_failed`), `tried` (channels, in order); `unresolved`: every recipient that could not be reached — `recipient`, `reason`, `code` (`unknown_external_id`, `unknown_contact_id`, `no_contact`, `empty_group`, `recipient_failed`, `no_identity`, `blocked`, `unreachable`, `condition_error`, `delay_ignored`), `value` (the recipient as rendered), `contact_id`; `rules`: what each rule of the type (or survey, `survey:<id>`) made of it — `rule_id`, `rule_name`, `outcome` (`matched`, `not_matched`, `condition_error`, `scheduled`, `invalid`), `detail` (the false condition, the error), `run_at`. A `restricted` token sees phones and emails masked in the key, the data, the rules' details, the deliveries' errors and the unresolved recipients."), (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<EventRecord>> {
    auth.require(Permission::Read)?;
    let mut event = state.engine.store.get_event(&id).await?;
    crate::masking::event(auth.token.role, &mut event);
    Ok(Json(event))
}

/// Filters of `GET /api/v1/events`; each narrows the list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// The event type, exactly (`payment.received`).
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// `accepted`, `scheduled`, `processed` or `no_rule`.
    pub status: Option<String>,
    /// The idempotency key, exactly.
    pub key: Option<String>,
    /// Accepted at or after this time (RFC 3339, or a date `2026-11-22`, UTC midnight).
    pub from: Option<String>,
    /// Accepted before this time (RFC 3339, or a date: before that day's UTC midnight).
    pub to: Option<String>,
    /// 1..500, default 50.
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// An RFC 3339 time or a bare date (UTC midnight), for `?from=`/`?to=`.
pub fn parse_time(name: &str, text: &str) -> Result<Millis, Error> {
    let t = text.trim();
    parse_rfc3339(t)
        .or_else(|| {
            let day: jiff::civil::Date = t.parse().ok()?;
            Some(day.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp().as_millisecond())
        })
        .ok_or_else(|| {
            Error::invalid("invalid_time", format!("`{name}` `{t}` is not an RFC 3339 time or a date like 2026-11-22"))
        })
}

impl EventQuery {
    /// The store's filter, after checking the times.
    pub fn filter(&self) -> Result<EventFilter, Error> {
        let nonempty = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        Ok(EventFilter {
            event_type: nonempty(&self.event_type),
            status: nonempty(&self.status),
            key: nonempty(&self.key),
            from: nonempty(&self.from).map(|t| parse_time("from", &t)).transpose()?,
            to: nonempty(&self.to).map(|t| parse_time("to", &t)).transpose()?,
        })
    }
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, description = "`{\"items\": [...], \"next\"}`, the newest first. Each item: `id`, `type`, `key`, `status`, `data`, `send_at`, `created_at`, `processed_at`, `matched_rules` (rules and surveys that matched), `counts` {`sent` (people whose message went out), `queued` (still waiting), `failed` (the message failed, or none could be made), `unresolved` (recipients who could not be reached)}. `GET /api/v1/events/{id}` has the details."),
        (status = 400, description = "`invalid_status`, `invalid_time`, `invalid_query`")))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<Json<Page<EventSummary>>> {
    auth.require(Permission::Read)?;
    let filter = q.filter()?;
    let mut page = state.engine.store.list_events(filter, PageRequest::new(q.limit, q.cursor.clone())).await?;
    page.items.iter_mut().for_each(|e| crate::masking::event_summary(auth.token.role, e));
    Ok(Json(page))
}
