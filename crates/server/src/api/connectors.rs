//! `/api/v1/connectors`: connect, list, change and remove business systems (amoCRM, …), and
//! `POST /hooks/connectors/{id}/{secret}`, where those systems post their events.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::ids::ConnectorId;
use okno_domain::model::{Connector, ConnectorKind, Page, Permission};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::channels::audit;
use crate::auth::Auth;
use crate::error::{ApiJson, ApiResult, RawBody};
use crate::AppState;

/// `POST /api/v1/connectors` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnector {
    /// `amocrm` (`bitrix24` and `onec` are named by the contract and not built yet).
    pub kind: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub config: Value,
}

/// `PATCH /api/v1/connectors/{id}` body; `config` keys replace the stored ones, the others
/// (the token among them) are kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConnector {
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

#[utoipa::path(post, path = "/api/v1/connectors", tag = "connectors", request_body = CreateConnector,
    responses((status = 201, body = Connector), (status = 400, description = "invalid config or credentials"), (status = 403)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateConnector>,
) -> ApiResult<(StatusCode, Json<Connector>)> {
    auth.require(Permission::Configure)?;
    let kind = ConnectorKind::parse(&body.kind)?;
    let c = state.engine.create_connector(kind, &body.name, body.config).await?;
    audit(&state, &auth, "connector.create", c.id.as_str(), json!({"kind": kind, "name": c.name})).await;
    Ok((StatusCode::CREATED, Json(c)))
}

#[utoipa::path(get, path = "/api/v1/connectors", tag = "connectors", responses((status = 200, body = Page<Connector>)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Page<Connector>>> {
    auth.require(Permission::Configure)?;
    Ok(Json(super::all(state.engine.store.list_connectors().await?)))
}

#[utoipa::path(get, path = "/api/v1/connectors/{id}", tag = "connectors", responses((status = 200, body = Connector), (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Connector>> {
    auth.require(Permission::Configure)?;
    Ok(Json(state.engine.store.get_connector(&ConnectorId::from(id)).await?))
}

#[utoipa::path(patch, path = "/api/v1/connectors/{id}", tag = "connectors", request_body = UpdateConnector,
    responses((status = 200, body = Connector), (status = 400), (status = 404)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateConnector>,
) -> ApiResult<Json<Connector>> {
    auth.require(Permission::Configure)?;
    let id = ConnectorId::from(id);
    let c = state.engine.update_connector(&id, body.name.clone(), body.config).await?;
    audit(&state, &auth, "connector.update", id.as_str(), json!({"name": body.name})).await;
    Ok(Json(c))
}

#[utoipa::path(post, path = "/api/v1/connectors/{id}/sync", tag = "connectors",
    responses((status = 202, description = "the connector's standing work (contacts kept in step, catalogs read, calls pulled) runs now rather than when next due"), (status = 404)))]
pub async fn sync(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    auth.require(Permission::Configure)?;
    let id = ConnectorId::from(id);
    state.engine.sync_connector_now(&id).await?;
    audit(&state, &auth, "connector.sync", id.as_str(), json!({})).await;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(delete, path = "/api/v1/connectors/{id}", tag = "connectors", responses((status = 204), (status = 404)))]
pub async fn delete(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    auth.require(Permission::Configure)?;
    let id = ConnectorId::from(id);
    state.engine.delete_connector(&id).await?;
    audit(&state, &auth, "connector.delete", id.as_str(), json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /hooks/connectors/{id}/{secret}`: a business system's event, kept before the answer
/// (`{"queued": n}`: what okno will act on).
pub async fn hook(
    State(state): State<AppState>,
    Path((id, secret)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let req = okno_engine::connectors::HookRequest { body: &body, headers: header_list(&headers) };
    let queued = state.engine.connector_hook(&ConnectorId::from(id), &secret, &req).await?;
    Ok(Json(json!({"queued": queued})))
}

fn header_list(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers.iter().filter_map(|(n, v)| Some((n.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_string()))).collect()
}

/// `POST /hooks/amojo/{scope_id}`: an amoCRM user's answer in amoCRM's chats (the address
/// amoCRM's support registers for okno's chat channel, `:scope_id` filled in by amoCRM),
/// signed with the channel's secret; stored before the 200 amoCRM waits 5 s for.
pub async fn amojo_hook(
    State(state): State<AppState>,
    Path(scope_id): Path<String>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let req = okno_engine::connectors::HookRequest { body: &body, headers: header_list(&headers) };
    state.engine.amojo_hook(&scope_id, &req).await?;
    Ok(Json(json!({})))
}
