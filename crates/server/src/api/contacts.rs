//! `/api/v1/contacts`: the business system's people, upserted by `external_id`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::model::{Contact, ContactInput, Page, Permission};
use okno_store::ContactFilter;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::PageParams;
use crate::auth::Auth;
use crate::error::{ApiJson, ApiQuery, ApiResult};
use crate::AppState;

/// Filters of `GET /api/v1/contacts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    pub external_id: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub group: Option<String>,
    /// Substring of name, phone, email or external id, any case.
    pub q: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `POST /api/v1/contacts/{id}/merge` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeContacts {
    /// The contact merged into this one (and removed).
    pub other_id: String,
}

#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", request_body = ContactInput,
    responses((status = 201, body = Contact, description = "created"), (status = 200, body = Contact, description = "updated (same external_id)")))]
pub async fn upsert(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<ContactInput>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    auth.require(Permission::Write)?;
    let (contact, created) = state.engine.store.upsert_contact(input.normalize()?).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(contact)))
}

#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", params(ContactQuery), responses((status = 200, body = Page<Contact>)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> ApiResult<Json<Page<Contact>>> {
    auth.require(Permission::Read)?;
    let phone = q.phone.as_deref().map(okno_domain::model::normalize_phone).transpose()?;
    let filter = ContactFilter { external_id: q.external_id, phone, email: q.email, group: q.group, q: q.q };
    let page = PageParams { limit: q.limit, cursor: q.cursor }.request();
    Ok(Json(state.engine.store.find_contacts(filter, page).await?))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", responses((status = 200, body = Contact), (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Contact>> {
    auth.require(Permission::Read)?;
    Ok(Json(state.engine.store.get_contact(&id).await?))
}

#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", request_body = ContactInput, responses((status = 200, body = Contact), (status = 404)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ContactInput>,
) -> ApiResult<Json<Contact>> {
    auth.require(Permission::Write)?;
    Ok(Json(state.engine.store.update_contact(&id, input.normalize()?).await?))
}

#[utoipa::path(post, path = "/api/v1/contacts/{id}/merge", tag = "contacts", request_body = MergeContacts,
    responses((status = 200, body = Contact, description = "the kept contact with everything of the other"), (status = 404)))]
pub async fn merge(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MergeContacts>,
) -> ApiResult<Json<Contact>> {
    auth.require(Permission::Write)?;
    let contact = state.engine.store.merge_contacts(&id, &body.other_id).await?;
    super::channels::audit(&state, &auth, "contact.merge", &id, json!({"merged": body.other_id})).await;
    Ok(Json(contact))
}
