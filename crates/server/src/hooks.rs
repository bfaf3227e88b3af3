//! Where platforms and the generic webhook channel deliver: `POST /hooks/{channel_id}` (and a
//! platform's verification request, `GET` at the same address).
//! The message is stored before the answer goes back. Also serves signed attachment links.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use okno_channel::{HookAnswer, HookRequest};
use okno_channel_webhook::verify_file_signature;
use okno_domain::ids::ChannelId;
use okno_domain::time::now_ms;
use okno_domain::{Error, ErrorKind};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiQuery, ApiResult, RawBody};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/hooks/{channel_id}", post(receive).get(verify))
        .route("/hooks/{channel_id}/files/{attachment_id}", get(file))
        .route("/hooks/connectors/{connector_id}/{secret}", post(crate::api::connectors::hook))
        .route("/hooks/amojo/{scope_id}", post(crate::api::connectors::amojo_hook))
}

async fn receive(
    State(state): State<AppState>,
    Path(channel_id): Path<ChannelId>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let request = HookRequest::new(&headers, &body).with_query(query.as_deref());
    let reply = state.engine.receive_hook(&channel_id, &request).await?;
    Ok(answer(reply.answer, || json!({"id": reply.id, "duplicate": reply.duplicate})))
}

/// A platform's answer as an HTTP response; `json` is okno's own for [`HookAnswer::Json`].
fn answer(answer: HookAnswer, json: impl FnOnce() -> serde_json::Value) -> Response {
    match answer {
        HookAnswer::Json => Json(json()).into_response(),
        HookAnswer::Text(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        HookAnswer::Body(body) => Json(body).into_response(),
        HookAnswer::Html(page) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            page,
        )
            .into_response(),
    }
}

/// A platform's verification request (WhatsApp's `hub.challenge`) or a person's link (an
/// e-mail's unsubscribe link), answered by its platform.
async fn verify(
    State(state): State<AppState>,
    Path(channel_id): Path<ChannelId>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let request = HookRequest::new(&headers, &[]).with_query(query.as_deref());
    let reply = state.engine.verify_hook(&channel_id, &request).await?;
    Ok(answer(reply, || json!({})))
}

#[derive(Deserialize)]
struct FileQuery {
    exp: i64,
    sig: String,
}

/// A file behind a signed, expiring link made for the channel's receiver.
async fn file(
    State(state): State<AppState>,
    Path((channel_id, attachment_id)): Path<(ChannelId, String)>,
    ApiQuery(q): ApiQuery<FileQuery>,
) -> ApiResult<Response> {
    let refused = || Error::new(ErrorKind::Unauthorized, "bad_signature", "the link is invalid or has expired");
    let channel = state.engine.store.get_channel(&channel_id).await?;
    // Only channels whose platform hands out file links (the generic channel, Viber) serve
    // them, signed with the channel's own key, for its own files, valid for a day at most.
    let secret = state.engine.platform(&channel).ok().and_then(|p| p.file_link_secret(&channel)).unwrap_or_default();
    if secret.is_empty() || q.exp > now_ms() + 25 * 3600 * 1000 {
        return Err(refused().into());
    }
    if !verify_file_signature(&secret, &attachment_id, q.exp, &format!("sha256={}", q.sig)) {
        return Err(refused().into());
    }
    let att = state.engine.store.get_attachment(&attachment_id).await?;
    let Some(message_id) = att.message_id else { return Err(refused().into()) };
    if state.engine.store.get_message(&message_id).await?.channel_id != channel_id {
        return Err(refused().into());
    }
    crate::api::attachments::serve(&state, &attachment_id).await
}
