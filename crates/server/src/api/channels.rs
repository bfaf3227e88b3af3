//! `/api/v1/channels`: connect, list, change and remove platform accounts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::ids::ChannelId;
use okno_domain::model::{Channel, ChannelKind, Page, Permission};
use okno_store::{ChannelPatch, NewAudit, NewChannel};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiJson, ApiResult};
use crate::AppState;

/// `POST /api/v1/channels` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// The channel's kind: one of the platforms this okno carries.
    pub kind: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub config: Value,
}

/// `PATCH /api/v1/channels/{id}` body; `config` keys are merged into the stored config.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

/// The channel as callers see it: no secrets, and where its hook is.
pub fn view(state: &AppState, mut ch: Channel) -> Channel {
    // Without a secret query: the full address is shown to administrators only (the channels
    // page), as the secret in it is one.
    if let Value::Object(info) = &mut ch.info {
        info.insert("inbound_url".into(), json!(format!("{}/hooks/{}", state.public_url, ch.id)));
    }
    ch
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(okno_domain::Error::invalid("invalid_name", "`name` must be 1..200 characters").into());
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/channels", tag = "channels", request_body = CreateChannel,
    responses((status = 201, body = Channel), (status = 400, description = "invalid config"), (status = 403)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateChannel>,
) -> ApiResult<(StatusCode, Json<Channel>)> {
    auth.require(Permission::Configure)?;
    check_name(&body.name)?;
    let kind = ChannelKind::parse(&body.kind)?;
    let (config, info) = state.engine.validate_channel(kind, &body.config, None).await?;
    let ch = state
        .engine
        .store
        .create_channel(NewChannel { kind, name: body.name.trim().to_string(), config, info })
        .await?;
    if let Err(e) = state.engine.apply_receive_mode(&ch).await {
        // The platform refused the receive mode: nothing stays half-connected.
        let _ = state.engine.store.delete_channel(&ch.id).await;
        return Err(e.into());
    }
    audit(&state, &auth, "channel.create", &ch.id, json!({"kind": kind, "name": ch.name})).await;
    Ok((StatusCode::CREATED, Json(view(&state, ch))))
}

#[utoipa::path(get, path = "/api/v1/channels", tag = "channels", responses((status = 200, body = Page<Channel>)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Page<Channel>>> {
    auth.require(Permission::Read)?;
    let items = state.engine.store.list_channels().await?.into_iter().map(|c| view(&state, c)).collect();
    Ok(Json(super::all(items)))
}

#[utoipa::path(get, path = "/api/v1/channels/{id}", tag = "channels", responses((status = 200, body = Channel), (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Channel>> {
    let id = ChannelId::from(id);
    auth.require(Permission::Read)?;
    Ok(Json(view(&state, state.engine.store.get_channel(&id).await?)))
}

#[utoipa::path(patch, path = "/api/v1/channels/{id}", tag = "channels", request_body = UpdateChannel,
    responses((status = 200, body = Channel), (status = 404)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateChannel>,
) -> ApiResult<Json<Channel>> {
    let id = ChannelId::from(id);
    auth.require(Permission::Configure)?;
    let current = state.engine.store.get_channel(&id).await?;
    let mut patch = ChannelPatch::default();
    if let Some(name) = &body.name {
        check_name(name)?;
        patch.name = Some(name.trim().to_string());
    }
    if let Some(changes) = body.config {
        let Value::Object(changes) = changes else {
            return Err(okno_domain::Error::invalid("invalid_channel_config", "`config` must be an object").into());
        };
        // A group of fields (`imap`) merges key by key, so changing `imap.host` keeps
        // `imap.password`; any other key is replaced whole.
        let schema = state.engine.platforms.get(current.kind)?.schema();
        let mut merged = current.config.clone();
        if let Value::Object(m) = &mut merged {
            for (key, value) in changes {
                match (m.get_mut(&key), value) {
                    (Some(Value::Object(kept)), Value::Object(given)) if schema.is_group(&key) => kept.extend(given),
                    (_, value) => {
                        m.insert(key, value);
                    }
                }
            }
        }
        let (config, info) = state.engine.validate_channel(current.kind, &merged, Some(&current.config)).await?;
        patch.config = Some(config);
        patch.info = Some(info);
    }
    let config_changed = patch.config.is_some();
    let ch = state.engine.store.update_channel(&id, patch).await?;
    state.engine.forget_channel(&id);
    if config_changed {
        // Switching modes cleans up the other one (deleteWebhook / setWebhook).
        state.engine.apply_receive_mode(&ch).await?;
    }
    audit(&state, &auth, "channel.update", &id, json!({"name": body.name})).await;
    Ok(Json(view(&state, ch)))
}

#[utoipa::path(delete, path = "/api/v1/channels/{id}", tag = "channels", responses((status = 204), (status = 404)))]
pub async fn delete(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = ChannelId::from(id);
    auth.require(Permission::Configure)?;
    state.engine.store.delete_channel(&id).await?;
    state.engine.forget_channel(&id);
    audit(&state, &auth, "channel.delete", &id, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Records a configuration change; a failure to log is reported but does not undo the change.
pub async fn audit(state: &AppState, auth: &Auth, action: &str, target: &str, detail: Value) {
    let entry = NewAudit { actor: auth.actor(), action: action.into(), target: target.into(), detail };
    if let Err(e) = state.engine.store.audit(entry).await {
        tracing::warn!(error = %e, action, "could not write the audit log");
    }
}
