//! `/api/v1/bots`: the bot of each channel (admins), and `/api/v1/news`, which bots show.
//! A definition is the file as the administrator keeps it (YAML or JSON, see docs/bots.md),
//! sent as the raw request body; it is checked whole and refused with the offending line.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::model::{Page, Permission};
use okno_domain::Error;
use okno_engine::bots::def::BotDef;
use okno_store::{BotRecord, NewNews, News};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiJson, ApiResult};
use crate::AppState;

fn source(body: &Bytes) -> Result<&str, Error> {
    std::str::from_utf8(body).map_err(|_| Error::invalid("invalid_bot", "the bot definition is not UTF-8 text"))
}

#[utoipa::path(put, path = "/api/v1/bots/{channel_id}", tag = "bots",
    request_body(content = String, content_type = "application/yaml", description = "the bot definition, YAML or JSON (docs/bots.md)"),
    responses((status = 200, description = "attached; the bot answers from the next message"), (status = 400, description = "`invalid_bot` with the line"), (status = 404)))]
pub async fn put(
    State(state): State<AppState>,
    auth: Auth,
    Path(channel_id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<BotRecord>> {
    auth.require(Permission::Configure)?;
    let bot = state.engine.put_bot(&channel_id, source(&body)?).await?;
    super::channels::audit(&state, &auth, "bot.put", &channel_id, json!({"name": bot.name})).await;
    Ok(Json(bot))
}

#[utoipa::path(post, path = "/api/v1/bots/check", tag = "bots",
    request_body(content = String, content_type = "application/yaml"),
    responses((status = 200, description = "`{\"ok\": true, \"name\", \"menus\", \"forms\", \"lookups\"}`"), (status = 400)))]
pub async fn check(auth: Auth, body: Bytes) -> ApiResult<Json<Value>> {
    auth.require(Permission::Read)?;
    let def = BotDef::parse(source(&body)?)?;
    Ok(Json(json!({
        "ok": true, "name": def.name,
        "menus": def.menus.keys().collect::<Vec<_>>(), "forms": def.forms.keys().collect::<Vec<_>>(),
        "lookups": def.lookups.keys().collect::<Vec<_>>(),
    })))
}

#[utoipa::path(get, path = "/api/v1/bots", tag = "bots", responses((status = 200)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Page<BotRecord>>> {
    // Definitions hold the business system's credentials (`http.headers`): admins only.
    auth.require(Permission::Configure)?;
    Ok(Json(super::all(state.engine.store.list_bots().await?)))
}

#[utoipa::path(get, path = "/api/v1/bots/{channel_id}", tag = "bots", responses((status = 200), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(channel_id): Path<String>,
) -> ApiResult<Json<BotRecord>> {
    auth.require(Permission::Configure)?;
    Ok(Json(state.engine.store.get_bot(&channel_id).await?))
}

#[utoipa::path(delete, path = "/api/v1/bots/{channel_id}", tag = "bots", responses((status = 204), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(channel_id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require(Permission::Configure)?;
    state.engine.delete_bot(&channel_id).await?;
    super::channels::audit(&state, &auth, "bot.delete", &channel_id, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/news` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNews {
    #[serde(default)]
    pub title: String,
    pub text: String,
    /// Contact groups that see it; none: everyone.
    #[serde(default)]
    pub groups: Vec<String>,
    /// A file posted earlier with `POST /api/v1/attachments`.
    #[serde(default)]
    pub attachment_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/news", tag = "bots", request_body = CreateNews, responses((status = 201), (status = 400), (status = 403), (status = 404)))]
pub async fn create_news(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateNews>,
) -> ApiResult<(StatusCode, Json<News>)> {
    auth.require(Permission::PublishNews)?;
    if body.text.trim().is_empty() || body.text.len() > 4096 || body.title.len() > 256 {
        return Err(Error::invalid("invalid_news", "`text` is 1..4096 bytes and `title` at most 256").into());
    }
    if body.groups.iter().any(|g| g.trim().is_empty()) {
        return Err(Error::invalid("invalid_news", "`groups` must not hold empty names").into());
    }
    if let Some(id) = &body.attachment_id {
        state.engine.store.get_attachment(id).await?;
    }
    let news = state
        .engine
        .store
        .create_news(NewNews {
            title: body.title,
            text: body.text,
            groups: body.groups,
            attachment_id: body.attachment_id,
            created_by: Some(auth.owner()),
        })
        .await?;
    super::channels::audit(&state, &auth, "news.create", &news.id, json!({"title": news.title})).await;
    Ok((StatusCode::CREATED, Json(news)))
}

#[utoipa::path(get, path = "/api/v1/news", tag = "bots", responses((status = 200, description = "the newest first")))]
pub async fn list_news(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Page<News>>> {
    auth.require(Permission::Read)?;
    Ok(Json(super::all(state.engine.store.list_news(200).await?)))
}

#[utoipa::path(delete, path = "/api/v1/news/{id}", tag = "bots", responses((status = 204), (status = 404)))]
pub async fn delete_news(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    auth.require(Permission::PublishNews)?;
    let news = state.engine.store.get_news(&id).await?;
    if !auth.owns(news.created_by.as_deref()) {
        return Err(Error::not_found("news", &id).into());
    }
    state.engine.store.delete_news(&id).await?;
    super::channels::audit(&state, &auth, "news.delete", &id, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}
