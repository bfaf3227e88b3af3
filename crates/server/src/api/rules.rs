//! `/api/v1/rules`: what business events send to whom (admins). Rules are checked when they
//! are saved — a template or condition error comes back with its line and column.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::model::{Page, Permission};
use okno_engine::events::RuleSpec;
use okno_store::RuleRecord;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiJson, ApiResult};
use crate::AppState;

#[utoipa::path(post, path = "/api/v1/rules", tag = "rules", request_body(content = Object, description = "a rule: name, event, condition?, recipients, template, buttons?, delay?, attachment?"),
    responses((status = 201, description = "created or replaced (by name)"), (status = 400, description = "with the line and column of a template error")))]
pub async fn put(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<RuleRecord>)> {
    auth.require(Permission::Configure)?;
    let rule = state.engine.put_rule(&body).await?;
    super::channels::audit(&state, &auth, "rule.put", &rule.id, json!({"name": rule.name})).await;
    Ok((StatusCode::CREATED, Json(rule)))
}

#[utoipa::path(get, path = "/api/v1/rules", tag = "rules", responses((status = 200)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Page<RuleRecord>>> {
    auth.require(Permission::Read)?;
    Ok(Json(super::all(state.engine.store.list_rules().await?)))
}

#[utoipa::path(get, path = "/api/v1/rules/{id}", tag = "rules", responses((status = 200), (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<RuleRecord>> {
    auth.require(Permission::Read)?;
    Ok(Json(state.engine.store.get_rule(&id).await?))
}

#[utoipa::path(delete, path = "/api/v1/rules/{id}", tag = "rules", responses((status = 204), (status = 404)))]
pub async fn delete(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    auth.require(Permission::Configure)?;
    state.engine.store.delete_rule(&id).await?;
    super::channels::audit(&state, &auth, "rule.delete", &id, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/rules/preview` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preview {
    #[schema(value_type = Object)]
    pub rule: Value,
    /// Sample event data.
    #[schema(value_type = Object)]
    pub data: Value,
    /// A sample contact (`name`, `attrs.tz`…) for `contact.*` in the template.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub contact: Value,
}

#[utoipa::path(post, path = "/api/v1/rules/preview", tag = "rules", request_body = Preview,
    responses((status = 200, description = "`matches`, the rendered `text` and `buttons`, the resolved `recipients`"), (status = 400), (status = 403, description = "a role that may not edit rules")))]
pub async fn preview(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<Preview>,
) -> ApiResult<Json<Value>> {
    // Previewing runs the administrator's tool: only roles that may edit rules.
    auth.require(Permission::Configure)?;
    let spec = RuleSpec::parse(&body.rule)?;
    Ok(Json(state.engine.preview(&spec, &body.data, &body.contact).await?))
}
