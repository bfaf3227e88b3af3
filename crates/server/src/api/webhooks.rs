//! `/api/v1/webhooks`: outgoing webhook subscriptions and their delivery log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::model::{EventType, Page, Permission, Webhook, WebhookDelivery};
use okno_domain::Error;
use okno_store::NewWebhook;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::PageParams;
use crate::auth::Auth;
use crate::error::{ApiJson, ApiQuery, ApiResult};
use crate::AppState;

/// `POST /api/v1/webhooks` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    pub url: String,
    /// Event types, e.g. `message.received`.
    pub events: Vec<String>,
    /// The HMAC key of `X-Okno-Signature`; generated (and shown once) when absent.
    pub secret: Option<String>,
}

/// A new subscription, with its secret shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secret: String,
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 400)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    auth.require(Permission::Subscribe)?;
    state.engine.http.check_url(&body.url)?;
    if body.events.is_empty() {
        return Err(Error::invalid("invalid_events", "`events` needs at least one event type").into());
    }
    let mut events = body.events.iter().map(|e| EventType::parse(e)).collect::<Result<Vec<_>, _>>()?;
    events.dedup();
    let secret = match body.secret {
        Some(s) if s.len() < 16 => {
            return Err(Error::invalid("weak_secret", "`secret` needs at least 16 characters").into())
        }
        Some(s) => s,
        None => okno_domain::ids::random_hex(24),
    };
    let new = NewWebhook { url: body.url, events, secret: secret.clone(), created_by: Some(auth.owner()) };
    let webhook = state.engine.store.create_webhook(new).await?;
    super::channels::audit(
        &state,
        &auth,
        "webhook.create",
        &webhook.id,
        json!({"url": webhook.url, "events": webhook.events}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(CreatedWebhook { webhook, secret })))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", responses((status = 200, body = Page<Webhook>)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Page<Webhook>>> {
    auth.require(Permission::Subscribe)?;
    let mut webhooks = state.engine.store.list_webhooks().await?;
    webhooks.retain(|w| auth.owns(w.created_by.as_deref()));
    Ok(Json(super::all(webhooks)))
}

/// The subscription `id` if the caller may manage it; another token's is not found.
async fn owned(state: &AppState, auth: &Auth, id: &str) -> ApiResult<Webhook> {
    auth.require(Permission::Subscribe)?;
    let webhook = state.engine.store.get_webhook(id).await?;
    if !auth.owns(webhook.created_by.as_deref()) {
        return Err(Error::not_found("webhook", id).into());
    }
    Ok(webhook)
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", responses((status = 200, body = Webhook), (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Webhook>> {
    Ok(Json(owned(&state, &auth, &id).await?))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", responses((status = 204), (status = 404)))]
pub async fn delete(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    owned(&state, &auth, &id).await?;
    state.engine.store.delete_webhook(&id).await?;
    super::channels::audit(&state, &auth, "webhook.delete", &id, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", params(PageParams),
    responses((status = 200, body = Page<WebhookDelivery>, description = "newest first"), (status = 404)))]
pub async fn deliveries(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<WebhookDelivery>>> {
    owned(&state, &auth, &id).await?;
    Ok(Json(state.engine.store.list_deliveries(&id, page.request()).await?))
}
