//! `/api/v1/tokens`: API tokens (admins only). The secret is shown once, at creation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::model::{ApiToken, Page, Permission, Role};
use okno_domain::Error;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::{new_token, token_hash, Auth};
use crate::error::{ApiJson, ApiResult};
use crate::AppState;

/// `POST /api/v1/tokens` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    pub role: Role,
}

/// A new token with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: ApiToken,
    pub secret: String,
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken, responses((status = 201, body = CreatedToken)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    auth.require(Permission::Configure)?;
    if body.name.trim().is_empty() || body.name.len() > 100 {
        return Err(Error::invalid("invalid_name", "`name` must be 1..100 characters").into());
    }
    let secret = new_token();
    let token = state.engine.store.create_token(body.name.trim(), body.role, &token_hash(&secret)).await?;
    super::channels::audit(&state, &auth, "token.create", &token.id, json!({"name": token.name, "role": token.role}))
        .await;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = Page<ApiToken>)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Page<ApiToken>>> {
    auth.require(Permission::Configure)?;
    Ok(Json(super::all(state.engine.store.list_tokens().await?)))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", responses((status = 204), (status = 404)))]
pub async fn revoke(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    auth.require(Permission::Configure)?;
    state.engine.store.revoke_token(&id).await?;
    super::channels::audit(&state, &auth, "token.revoke", &id, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}
