//! `/api/v1/attachments`: upload a file to send later; download any stored file.
//!
//! A download is served by what its bytes are, never by the type its sender claimed: a picture,
//! a PDF, sound or video is shown in place with its real type, anything else (HTML, scripts,
//! SVG, text) is a download of `application/octet-stream`; either way the browser is told not to
//! guess (`nosniff`) and to run nothing of it (a sandbox CSP).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use okno_domain::model::{Attachment, Permission};
use okno_domain::Error;
use okno_store::NewAttachment;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::error::{ApiQuery, ApiResult, RawBody};
use crate::AppState;

/// `POST /api/v1/attachments?name=` parameters; the body is the file itself.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The file name shown to the recipient.
    pub name: String,
    /// Default: the request's Content-Type.
    pub mime: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/attachments", tag = "attachments", params(UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = Attachment), (status = 413)))]
pub async fn upload(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(p): ApiQuery<UploadParams>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Attachment>)> {
    auth.require(Permission::Write)?;
    let name = p.name.trim();
    if name.is_empty() || name.len() > 255 || name.contains(['/', '\\']) {
        return Err(Error::invalid("invalid_name", "`name` must be a file name of 1..255 characters").into());
    }
    if body.is_empty() {
        return Err(Error::invalid("empty_file", "the body is empty").into());
    }
    let mime = p
        .mime
        .or_else(|| headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string))
        .unwrap_or_else(|| "application/octet-stream".into());
    let sha256 = state.engine.files.put(&body).await.map_err(|e| Error::internal(format!("attachment store: {e}")))?;
    let att = state
        .engine
        .store
        .insert_attachment(NewAttachment {
            message_id: None,
            name: name.to_string(),
            mime,
            size: body.len() as i64,
            sha256,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(att)))
}

#[utoipa::path(get, path = "/api/v1/attachments/{id}", tag = "attachments",
    responses((status = 200, description = "the file: a picture, PDF, sound or video by the type its bytes show, inline; anything else as `application/octet-stream`, to save"), (status = 404), (status = 409, description = "not stored (see the note)")))]
pub async fn download(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Response> {
    auth.require(Permission::Read)?;
    serve(&state, &id).await
}

/// The file of an attachment, with its type and name.
pub async fn serve(state: &AppState, id: &str) -> ApiResult<Response> {
    let att = state.engine.store.get_attachment(id).await?;
    if att.state != "ready" {
        let why = att.note.unwrap_or_else(|| "the file is still being fetched".into());
        return Err(Error::conflict("attachment_not_stored", why).into());
    }
    let data =
        state.engine.files.read(&att.sha256).await.map_err(|e| Error::internal(format!("attachment store: {e}")))?;
    let (mime, disposition) = match inline_type(&data) {
        Some(mime) => (mime, "inline"),
        None => ("application/octet-stream", "attachment"),
    };
    let headers = [
        (header::CONTENT_TYPE, mime.to_string()),
        (header::CONTENT_DISPOSITION, content_disposition(disposition, &att.name)),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
        (header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'".into()),
    ];
    Ok((headers, data).into_response())
}

/// The real type of a file a browser may show in place without running anything of it.
fn inline_type(data: &[u8]) -> Option<&'static str> {
    use infer::MatcherType;
    let kind = infer::get(data)?;
    let shown = matches!(kind.matcher_type(), MatcherType::Image | MatcherType::Audio | MatcherType::Video)
        || kind.mime_type() == "application/pdf";
    // Pictures that are documents (SVG and its kin) can carry scripts.
    (shown && !kind.mime_type().contains("svg") && !kind.mime_type().contains("xml")).then(|| kind.mime_type())
}

/// What RFC 5987 lets stand unencoded in `filename*`.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition` per RFC 6266: the name in UTF-8 (`filename*`, which browsers prefer)
/// and an ASCII stand-in for older clients.
fn content_disposition(disposition: &str, name: &str) -> String {
    let name = okno_domain::files::safe_file_name(name);
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    format!("{disposition}; filename=\"{ascii}\"; filename*=UTF-8''{}", utf8_percent_encode(&name, ATTR_CHAR))
}
