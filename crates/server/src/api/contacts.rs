//! `/api/v1/contacts`: the business system's people, upserted by `external_id`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::ids::ContactId;
use okno_domain::model::{Call, Contact, ContactInput, Page, Permission};
use okno_store::ContactFilter;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::PageParams;
use crate::auth::Auth;
use crate::error::{parse_json, ApiJson, ApiQuery, ApiResult, RawBody};
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
    let (mut contact, created) = state.engine.store.upsert_contact(input.normalize()?).await?;
    crate::masking::contact(auth.token.role, &mut contact);
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(contact)))
}

#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", params(ContactQuery), responses((status = 200, body = Page<Contact>)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> ApiResult<Json<Page<Contact>>> {
    auth.require(Permission::Read)?;
    let filter_uses_personal_data = q.phone.is_some() || q.email.is_some();
    let personal = auth.token.role.allows(Permission::PersonalData);
    let phone = q.phone.as_deref().map(okno_domain::model::normalize_phone).transpose()?;
    // A restricted caller finds people by their name and external id only.
    let filter = ContactFilter {
        external_id: q.external_id,
        phone,
        email: q.email,
        group: q.group,
        q: q.q,
        q_names_only: !personal,
    };
    let page = PageParams { limit: q.limit, cursor: q.cursor }.request();
    if !personal && filter_uses_personal_data {
        // A restricted caller may not find people by data it may not see.
        return Err(okno_domain::Error::new(
            okno_domain::ErrorKind::Forbidden,
            "forbidden",
            format!("the `{}` role may not search by phone or email", auth.token.role),
        )
        .into());
    }
    let mut found = state.engine.store.find_contacts(filter, page).await?;
    found.items.iter_mut().for_each(|c| crate::masking::contact(auth.token.role, c));
    Ok(Json(found))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", responses((status = 200, body = Contact), (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Contact>> {
    let id = ContactId::from(id);
    auth.require(Permission::Read)?;
    let mut contact = state.engine.store.get_contact(&id).await?;
    crate::masking::contact(auth.token.role, &mut contact);
    Ok(Json(contact))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}/calls", tag = "contacts",
    responses((status = 200, description = "`{\"items\": [call]}`, the contact's calls from the company's telephony (a Bitrix24 portal, a PBX connector), the newest first: `direction` (in, out), `status` (answered, missed, busy, failed), `phone`, `operator`, `started_at`, `duration` (seconds), `recording_url`; a `restricted` token sees the phone masked", body = Page<Call>), (status = 404)))]
pub async fn calls(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Page<Call>>> {
    let id = ContactId::from(id);
    auth.require(Permission::Read)?;
    state.engine.store.get_contact(&id).await?;
    let mut calls = state.engine.store.list_calls(&id, 200).await?;
    if !auth.token.role.allows(Permission::PersonalData) {
        for c in &mut calls {
            c.phone = crate::masking::mask_phone(&c.phone);
        }
    }
    Ok(Json(super::all(calls)))
}

#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", request_body = ContactInput, responses((status = 200, body = Contact), (status = 404)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ContactInput>,
) -> ApiResult<Json<Contact>> {
    let id = ContactId::from(id);
    auth.require(Permission::Write)?;
    let mut contact = state.engine.store.update_contact(&id, input.normalize()?).await?;
    crate::masking::contact(auth.token.role, &mut contact);
    Ok(Json(contact))
}

#[utoipa::path(post, path = "/api/v1/contacts/{id}/merge", tag = "contacts", request_body = MergeContacts,
    responses((status = 200, body = Contact, description = "the kept contact with everything of the other"), (status = 404)))]
pub async fn merge(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MergeContacts>,
) -> ApiResult<Json<Contact>> {
    let id = ContactId::from(id);
    auth.require(Permission::Write)?;
    let mut contact = state.engine.store.merge_contacts(&id, &ContactId::from(&body.other_id), None).await?;
    super::channels::audit(&state, &auth, "contact.merge", &id, json!({"merged": body.other_id})).await;
    crate::masking::contact(auth.token.role, &mut contact);
    Ok(Json(contact))
}

/// `POST /api/v1/contacts/{id}/link` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// How long the code stays valid, in seconds (default 7 days).
    pub ttl_secs: Option<i64>,
}

/// A one-time link code and where to use it.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct LinkResponse {
    pub code: String,
    pub expires_at: String,
    /// Per Telegram channel: the deep link that sends `/start <code>` to the bot.
    #[schema(value_type = Object)]
    pub links: serde_json::Map<String, serde_json::Value>,
}

#[utoipa::path(post, path = "/api/v1/contacts/{id}/link", tag = "contacts", request_body = LinkRequest,
    responses((status = 201, body = LinkResponse), (status = 404)))]
pub async fn link(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<LinkResponse>)> {
    let id = ContactId::from(id);
    auth.require(Permission::Write)?;
    let req: LinkRequest =
        if body.iter().all(u8::is_ascii_whitespace) { LinkRequest::default() } else { parse_json(&body)? };
    let ttl = req.ttl_secs.unwrap_or(okno_engine::contacts::LINK_TTL_MS / 1000);
    if !(60..=90 * 24 * 3600).contains(&ttl) {
        return Err(okno_domain::Error::invalid("invalid_ttl", "`ttl_secs` is between 60 seconds and 90 days").into());
    }
    let offer = state.engine.link_offer(&id, ttl * 1000, None).await?;
    let links = offer.links.into_iter().map(|l| (l.channel_id.into_string(), json!(l.url))).collect();
    let (code, expires_at) = (offer.code, okno_domain::time::to_rfc3339(offer.expires_at));
    Ok((StatusCode::CREATED, Json(LinkResponse { code, expires_at, links })))
}
