//! The website widget's public side: what visitors' browsers call, without operator sign-in.
//!
//! ```text
//!  GET  /widget/{channel_id}.js                  the script (cached: ETag, Cache-Control)
//!  POST /widget/{channel_id}/session             start or resume a visitor (a token kept in localStorage);
//!                                                a logged-in customer's signed id links them to their contact
//!  POST /widget/{channel_id}/messages            a message or a button press (echo_id: a retry is stored once)
//!  GET  /widget/{channel_id}/messages            the visitor's history, both ways, paged back (?before=)
//!  POST /widget/{channel_id}/files               an upload (?name=), 10 MB at most
//!  GET  /widget/{channel_id}/files/{id}?token=   a file of the visitor's conversation
//!  GET  /widget/{channel_id}/stream?token=       live events (SSE): `message` with `id:` = the message's id,
//!                                                `typing`; resumes after `Last-Event-ID`
//!  POST /widget/{channel_id}/read                the visitor has seen okno's messages up to `last`
//! ```
//!
//! Every call but the script and files must come from one of the channel's `origins` (CORS; a
//! preflight is answered, another origin gets 403 `origin_not_allowed`) and is rate-limited per
//! visitor and per address. A visitor's message is signed and handed to the engine as the
//! channel's hook request, so it is stored before the visitor's 2xx like any platform's.
//! The stream reads the store after its last event: woken at once by the channel's adapter
//! in this process, and every five seconds or so in any case (another process on the same
//! database).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::OnceLock;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use okno_channel::HookRequest;
use okno_channel_widget::identity::{check_file_ref, file_ref, valid_token, verify_customer, visitor_id};
use okno_channel_widget::live::{self, Notice};
use okno_channel_widget::visitor::{Envelope, EnvelopeFile, SendRequest, SessionRequest};
use okno_channel_widget::{WidgetConfig, MAX_FILE, SCRIPT, SIGNATURE_HEADER, STREAM_POLL};
use okno_domain::ids::{ChannelId, ContactId, MessageId};
use okno_domain::model::{Channel, ChannelKind, ContactInput, Direction, Message, MessageStatus};
use okno_domain::time::now_ms;
use okno_domain::{Error, ErrorKind};
use okno_store::{Receipt, VisitorPage};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client_addr::ClientAddr;
use crate::error::{ApiError, ApiQuery, ApiResult, RawBody};
use crate::AppState;

/// The header a visitor's token travels in (the stream and file links, which browsers open
/// without headers, take it as `?token=`).
const TOKEN_HEADER: &str = "x-okno-visitor";
/// The most messages one read of history or the stream returns.
const PAGE: u32 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/widget/{script}", get(script))
        .route("/widget/{channel_id}/session", post(session).options(preflight))
        .route("/widget/{channel_id}/messages", post(send).get(history).options(preflight))
        .route(
            "/widget/{channel_id}/files",
            post(upload).options(preflight).layer(DefaultBodyLimit::max(MAX_FILE as usize)),
        )
        .route("/widget/{channel_id}/files/{attachment_id}", get(file))
        .route("/widget/{channel_id}/stream", get(stream).options(preflight))
        .route("/widget/{channel_id}/read", post(read).options(preflight))
}

// ---------------------------------------------------------------------------------------------
// The script

/// The script's validator: its content's digest, computed once.
fn script_etag() -> &'static str {
    static ETAG: OnceLock<String> = OnceLock::new();
    ETAG.get_or_init(|| format!("\"{}\"", &okno_domain::signing::sha256_hex(SCRIPT.as_bytes())[..32]))
}

/// `GET /widget/{channel_id}.js`: the same script for every widget channel, answered 304 when
/// the browser holds it already.
async fn script(State(state): State<AppState>, Path(file): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let Some(channel_id) = file.strip_suffix(".js") else {
        return Err(Error::not_found("widget script", &file).into());
    };
    widget_channel(&state, &ChannelId::from(channel_id.to_string())).await?;
    let etag = script_etag();
    let cache = [
        (header::ETAG, etag.to_string()),
        (header::CACHE_CONTROL, "public, max-age=300".to_string()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        (header::HeaderName::from_static("cross-origin-resource-policy"), "cross-origin".to_string()),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let mut resp = (cache, SCRIPT).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// The site: the channel, its configuration, the caller's origin

/// A widget channel and its configuration, or 404.
async fn widget_channel(state: &AppState, id: &ChannelId) -> Result<(Channel, WidgetConfig), ApiError> {
    let channel = state.engine.channel(id).await?;
    if channel.kind != ChannelKind::Widget {
        return Err(Error::not_found("widget", id.as_str()).into());
    }
    let cfg: WidgetConfig = okno_channel::config_of(&channel)?;
    Ok((channel, cfg))
}

/// A call from a page of one of the channel's sites.
struct Site {
    channel: Channel,
    cfg: WidgetConfig,
    origin: HeaderValue,
}

impl Site {
    /// The channel, when the request's `Origin` is one of its sites.
    async fn of(state: &AppState, id: &ChannelId, headers: &HeaderMap) -> Result<Site, ApiError> {
        let (channel, cfg) = widget_channel(state, id).await?;
        let origin = headers.get(header::ORIGIN).cloned();
        let allowed = origin.as_ref().and_then(|o| o.to_str().ok()).is_some_and(|o| cfg.allows_origin(o));
        match origin {
            Some(origin) if allowed => Ok(Site { channel, cfg, origin }),
            Some(o) => Err(Error::new(
                ErrorKind::Forbidden,
                "origin_not_allowed",
                format!(
                    "this chat is not embedded on {}: the channel's `origins` list the sites allowed",
                    o.to_str().unwrap_or("that site")
                ),
            )
            .into()),
            None => Err(Error::new(
                ErrorKind::Forbidden,
                "origin_not_allowed",
                "the request names no `Origin`: the widget is called from a page of one of the channel's sites",
            )
            .into()),
        }
    }

    /// The answer with the headers that let the page read it.
    fn answer(&self, result: ApiResult<Response>) -> Response {
        let mut resp = result.unwrap_or_else(IntoResponse::into_response);
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, self.origin.clone());
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        resp
    }
}

/// A call from a page of one of the channel's sites, as every visitor handler starts: the
/// channel (the request's `Origin` is one of its sites; another is refused before the handler
/// runs), the caller's address and the request's headers.
struct Visit {
    state: AppState,
    site: Site,
    ip: IpAddr,
    headers: HeaderMap,
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Path(id) = Path::<String>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let ClientAddr(ip) = ClientAddr::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let site = Site::of(state, &ChannelId::from(id), &parts.headers).await.map_err(IntoResponse::into_response)?;
        Ok(Visit { state: state.clone(), site, ip, headers: parts.headers.clone() })
    }
}

impl Visit {
    /// The handler's answer with the headers that let the page read it (a refusal by the
    /// limits as a 429).
    fn answer(&self, result: ApiResult<Response>) -> Response {
        self.site.answer(limited(result))
    }
}

/// A CORS preflight: allowed for the channel's sites only.
async fn preflight(v: Visit) -> Response {
    let allow = [
        (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type, x-okno-visitor, last-event-id"),
        (header::ACCESS_CONTROL_MAX_AGE, "600"),
    ];
    v.answer(Ok((StatusCode::NO_CONTENT, allow).into_response()))
}

// ---------------------------------------------------------------------------------------------
// Limits

/// Requests a visitor and an address may make: a person types far slower than the first, and a
/// whole office behind one address stays well under the second.
struct Limits {
    per_visitor: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<(String, IpAddr)>,
}

fn limits() -> &'static Limits {
    static LIMITS: OnceLock<Limits> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        Limits {
            per_visitor: RateLimiter::keyed(Quota::per_second(n(1)).allow_burst(n(20))),
            per_address: RateLimiter::keyed(Quota::per_second(n(20)).allow_burst(n(200))),
        }
    })
}

fn too_many() -> ApiError {
    ApiError(Error::new(ErrorKind::Unavailable, "too_many_requests", "too many requests: wait a moment and try again"))
}

/// Counts a call of `visitor` (when known) from `ip` against the channel's limits.
fn check_limits(channel: &ChannelId, visitor: Option<&str>, ip: IpAddr) -> Result<(), ApiError> {
    let l = limits();
    if l.per_address.check_key(&(channel.to_string(), ip)).is_err() {
        return Err(too_many());
    }
    if let Some(v) = visitor {
        if l.per_visitor.check_key(&format!("{channel}:{v}")).is_err() {
            return Err(too_many());
        }
    }
    Ok(())
}

/// A 429 for a refusal by the limits (the error's kind maps to 503, which a visitor's browser
/// would take for okno being down).
fn limited(result: ApiResult<Response>) -> ApiResult<Response> {
    match result {
        Err(ApiError(e)) if e.code == "too_many_requests" => {
            let body = Json(json!({"error": {"code": e.code, "message": e.message}}));
            Ok((StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], body).into_response())
        }
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// The visitor

/// The visitor's token from the header (or `?token=` for calls a browser makes without
/// headers), checked; returns the visitor's id on the channel.
fn visitor_of(headers: &HeaderMap, query_token: Option<&str>) -> Result<String, ApiError> {
    let token = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()).or(query_token).unwrap_or_default();
    if !valid_token(token) {
        return Err(Error::new(
            ErrorKind::Unauthorized,
            "visitor_token_required",
            "start a session first (POST /widget/{channel_id}/session) and send its token",
        )
        .into());
    }
    Ok(visitor_id(token))
}

/// `POST /widget/{channel_id}/session`.
async fn session(v: Visit, RawBody(body): RawBody) -> Response {
    v.answer(start_session(&v.state, &v.site, v.ip, &body).await)
}

async fn start_session(state: &AppState, site: &Site, ip: IpAddr, body: &[u8]) -> ApiResult<Response> {
    check_limits(&site.channel.id, None, ip)?;
    let req = SessionRequest::parse(body)?;
    let token = req.token.unwrap_or_else(okno_channel_widget::identity::new_token);
    let visitor = visitor_id(&token);
    let mut customer = false;
    if let Some(c) = req.customer {
        if !verify_customer(&site.cfg.secret, &c.id, &c.hash) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                "identity_refused",
                "the customer's `hash` is not HMAC-SHA256 of `id` with this channel's secret",
            )
            .into());
        }
        link_customer(state, &site.channel, &visitor, c).await?;
        customer = true;
    }
    let body = json!({
        "token": token,
        "customer": customer,
        "config": site.cfg.public(now_ms()),
    });
    Ok(Json(body).into_response())
}

/// Links the visitor to the contact the site's customer id names (made when okno has none).
/// Only the id is signed: the name, e-mail and phone the page passes fill the contact's empty
/// fields and never replace what okno knows.
async fn link_customer(
    state: &AppState,
    channel: &Channel,
    visitor: &str,
    c: okno_channel_widget::visitor::Customer,
) -> Result<(), ApiError> {
    let store = &state.engine.store;
    let by_id = ContactInput { external_id: Some(c.id), ..Default::default() }.normalize()?;
    let (contact, _) = store.upsert_contact(by_id).await?;
    let fill = ContactInput {
        name: c.name.clone().filter(|_| contact.name.is_none()),
        phone: c.phone.clone().filter(|_| contact.phone.is_none()),
        email: c.email.filter(|_| contact.email.is_none()),
        ..Default::default()
    };
    if fill.name.is_some() || fill.phone.is_some() || fill.email.is_some() {
        store.update_contact(&contact.id, fill.normalize()?).await?;
    }
    let sender = okno_channel::InboundSender {
        user_id: visitor.to_string(),
        chat_id: visitor.to_string(),
        username: None,
        display_name: c.name,
        phone: None,
        email: None,
        is_group: false,
    };
    store.attach_identity(&contact.id, &channel.id, sender).await?;
    Ok(())
}

/// `POST /widget/{channel_id}/messages`.
async fn send(v: Visit, RawBody(body): RawBody) -> Response {
    v.answer(send_message(&v.state, &v.site, v.ip, &v.headers, &body).await)
}

async fn send_message(
    state: &AppState,
    site: &Site,
    ip: IpAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let visitor = visitor_of(headers, None)?;
    check_limits(&site.channel.id, Some(&visitor), ip)?;
    let req = SendRequest::parse(body)?;
    let mut files = Vec::with_capacity(req.files.len());
    for f in &req.files {
        let Some(sha256) = check_file_ref(&site.cfg.secret, &visitor, &f.id) else {
            return Err(Error::invalid("unknown_file", "a file must be uploaded by this visitor first").into());
        };
        files.push(EnvelopeFile { sha256, name: f.clean_name(), mime: f.clean_mime() });
    }
    let email = req.email.clone();
    let envelope = Envelope {
        visitor: visitor.clone(),
        echo_id: req.echo_id,
        text: req.text,
        files,
        button: req.button,
        name: req.name,
        phone: req.phone,
        email: req.email,
    };
    let body = serde_json::to_vec(&envelope).map_err(|e| Error::internal(e.to_string()))?;
    let mut signed = HeaderMap::new();
    let signature = okno_channel_widget::identity::envelope_signature(&site.cfg.secret, &body);
    signed.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).map_err(|e| Error::internal(e.to_string()))?);
    let reply = state.engine.receive_hook(&site.channel.id, &HookRequest::new(&signed, &body)).await?;
    if let (Some(email), Some(id), false) = (email, &reply.id, reply.duplicate) {
        // The message is stored: an address okno cannot keep does not fail the visitor's send.
        if let Err(ApiError(e)) = remember_email(state, id, email).await {
            tracing::info!(code = %e.code, "a widget visitor's e-mail was not kept: {}", e.message);
        }
    }
    live::hub().notify(site.channel.id.as_str(), &visitor, Notice::Stored);
    Ok(Json(json!({"id": reply.id, "duplicate": reply.duplicate})).into_response())
}

/// The e-mail a visitor gave in the pre-chat form, kept on their contact when it has none (so
/// okno can write to them after they left).
async fn remember_email(state: &AppState, message_id: &MessageId, email: String) -> Result<(), ApiError> {
    let store = &state.engine.store;
    let contact = store.get_contact(&store.get_message(message_id).await?.contact_id).await?;
    if contact.email.is_none() {
        let input = ContactInput { email: Some(email), ..Default::default() }.normalize()?;
        store.update_contact(&contact.id, input).await?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

/// `POST /widget/{channel_id}/files?name=`: the body is the file.
async fn upload(v: Visit, ApiQuery(q): ApiQuery<UploadQuery>, RawBody(body): RawBody) -> Response {
    v.answer(store_upload(&v.state, &v.site, v.ip, &v.headers, q.name, &body).await)
}

async fn store_upload(
    state: &AppState,
    site: &Site,
    ip: IpAddr,
    headers: &HeaderMap,
    name: Option<String>,
    body: &[u8],
) -> ApiResult<Response> {
    let visitor = visitor_of(headers, None)?;
    check_limits(&site.channel.id, Some(&visitor), ip)?;
    if body.is_empty() {
        return Err(Error::invalid("empty_file", "the request body is the file, and it is empty").into());
    }
    let sha = state.engine.files.put(body).await.map_err(|e| Error::internal(format!("storing an upload: {e}")))?;
    let mime = infer::get(body).map(|k| k.mime_type().to_string()).unwrap_or_else(|| "application/octet-stream".into());
    let answer = json!({
        "id": file_ref(&site.cfg.secret, &visitor, &sha),
        "name": name.unwrap_or_else(|| "file".into()),
        "mime": mime,
        "size": body.len(),
    });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// The visitor's contact on the channel, once they have an identity there.
async fn contact_of(state: &AppState, channel: &ChannelId, visitor: &str) -> Result<Option<ContactId>, ApiError> {
    Ok(state.engine.store.identity_on(channel, visitor).await?.map(|i| i.contact_id))
}

/// A message as its visitor sees it: no statuses, notes or operator details.
fn view(channel_id: &ChannelId, m: &Message) -> Value {
    let files: Vec<Value> = m
        .attachments
        .iter()
        .map(|a| {
            json!({"id": a.id, "name": a.name, "mime": a.mime, "size": a.size, "ready": a.state == "ready",
                   "url": format!("/widget/{channel_id}/files/{}", a.id)})
        })
        .collect();
    json!({
        "id": m.id,
        "from": if m.direction == Direction::In { "visitor" } else { "okno" },
        "text": m.text,
        "button": m.button_label,
        "buttons": m.buttons,
        "files": files,
        "at": m.created_at,
    })
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<String>,
    limit: Option<u32>,
}

/// `GET /widget/{channel_id}/messages?before=&limit=`: newest first pages, each oldest first.
async fn history(v: Visit, ApiQuery(q): ApiQuery<HistoryQuery>) -> Response {
    v.answer(read_history(&v.state, &v.site, v.ip, &v.headers, q).await)
}

async fn read_history(
    state: &AppState,
    site: &Site,
    ip: IpAddr,
    headers: &HeaderMap,
    q: HistoryQuery,
) -> ApiResult<Response> {
    let visitor = visitor_of(headers, None)?;
    check_limits(&site.channel.id, None, ip)?;
    let limit = q.limit.unwrap_or(PAGE).clamp(1, 100);
    let Some(contact) = contact_of(state, &site.channel.id, &visitor).await? else {
        return Ok(Json(json!({"messages": [], "more": false})).into_response());
    };
    let page = q.before.map_or(VisitorPage::Latest, VisitorPage::Before);
    let items = state.engine.store.visitor_messages(&site.channel.id, &contact, page, limit).await?;
    let more = items.len() as u32 == limit;
    let messages: Vec<Value> = items.iter().map(|m| view(&site.channel.id, m)).collect();
    Ok(Json(json!({"messages": messages, "more": more})).into_response())
}

/// What the script says the visitor has seen.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadRequest {
    /// The newest of okno's messages shown in the open window.
    last: String,
}

/// `POST /widget/{channel_id}/read`: the window is open on the page and shows okno's messages
/// up to `last`; they are marked read (operators see it, and an answer read is not sent again
/// by e-mail).
async fn read(v: Visit, RawBody(body): RawBody) -> Response {
    v.answer(mark_read(&v.state, &v.site, v.ip, &v.headers, &body).await)
}

async fn mark_read(state: &AppState, site: &Site, ip: IpAddr, headers: &HeaderMap, body: &[u8]) -> ApiResult<Response> {
    let visitor = visitor_of(headers, None)?;
    check_limits(&site.channel.id, None, ip)?;
    let req: ReadRequest = serde_json::from_slice(body)
        .map_err(|e| Error::invalid("invalid_body", format!("expected {{\"last\": \"<message id>\"}}: {e}")))?;
    if req.last.is_empty() || req.last.len() > 64 {
        return Err(Error::invalid("invalid_body", "`last` is the id of a message the window shows").into());
    }
    let Some(contact) = contact_of(state, &site.channel.id, &visitor).await? else {
        return Ok(Json(json!({"read": 0})).into_response());
    };
    let store = &state.engine.store;
    let seen = store.visitor_messages(&site.channel.id, &contact, VisitorPage::Latest, 100).await?;
    let receipts: Vec<Receipt> = seen
        .iter()
        .filter(|m| m.direction == Direction::Out && m.id.as_str() <= req.last.as_str())
        .filter(|m| matches!(m.status, MessageStatus::Sent | MessageStatus::Delivered))
        .filter_map(|m| {
            Some(Receipt { external_id: m.external_id.clone()?, status: MessageStatus::Read, reason: None })
        })
        .collect();
    let changed = store.record_receipts(&site.channel.id, receipts).await?;
    Ok(Json(json!({"read": changed.len()})).into_response())
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `GET /widget/{channel_id}/files/{attachment_id}?token=`: a file of the visitor's own
/// messages (links and pictures open it without headers or `Origin`).
async fn file(
    State(state): State<AppState>,
    Path((id, attachment_id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<TokenQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let channel_id = ChannelId::from(id);
    widget_channel(&state, &channel_id).await?;
    let visitor = visitor_of(&headers, q.token.as_deref())?;
    let not_yours = || Error::not_found("file", &attachment_id);
    let contact = contact_of(&state, &channel_id, &visitor).await?.ok_or_else(not_yours)?;
    let att = state.engine.store.get_attachment(&attachment_id).await?;
    let message_id = att.message_id.ok_or_else(not_yours)?;
    let message = state.engine.store.get_message(&message_id).await?;
    if message.channel_id != channel_id || message.contact_id != contact {
        return Err(not_yours().into());
    }
    crate::api::attachments::serve(&state, &attachment_id).await
}

// ---------------------------------------------------------------------------------------------
// The live stream

#[derive(Deserialize)]
struct StreamQuery {
    token: Option<String>,
    /// The last message the page shows (its history's newest), when there is no `Last-Event-ID`.
    after: Option<String>,
}

/// `GET /widget/{channel_id}/stream?token=&after=`.
async fn stream(v: Visit, ApiQuery(q): ApiQuery<StreamQuery>) -> Response {
    v.answer(open_stream(&v.state, &v.site, v.ip, &v.headers, q))
}

fn open_stream(state: &AppState, site: &Site, ip: IpAddr, headers: &HeaderMap, q: StreamQuery) -> ApiResult<Response> {
    let visitor = visitor_of(headers, q.token.as_deref())?;
    check_limits(&site.channel.id, None, ip)?;
    let last_event = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let after = last_event
        .or(q.after)
        .filter(|a| !a.is_empty() && a.len() <= 64 && a.bytes().all(|b| b.is_ascii_alphanumeric()));
    let rx = live::hub().subscribe(site.channel.id.as_str(), &visitor);
    let reader = Reader::new(state, site.channel.id.clone(), visitor, after, rx);
    let sse = Sse::new(events(reader)).keep_alive(KeepAlive::default());
    let mut resp = sse.into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// One visitor's stream: where it stands, and what it has yet to send.
///
/// Message ids grow with the time okno made them, but two messages stored at once may commit
/// in the other order: a stream that read past the later one must still send the earlier.
/// So each read looks again [`SETTLE_MS`] behind the newest id sent and skips what this
/// connection sent already — never behind where the connection began (`floor`: the page's
/// `Last-Event-ID`), so a resumed stream sends nothing twice.
struct Reader {
    state: AppState,
    channel: ChannelId,
    visitor: String,
    contact: Option<ContactId>,
    /// Where the connection began: the browser has everything up to this id.
    floor: String,
    /// The newest message id sent (or `floor`).
    after: String,
    /// Ids this connection sent within the settling window.
    sent: std::collections::BTreeSet<String>,
    rx: Receiver,
    pending: VecDeque<Event>,
}

/// How far behind the newest message a stream looks again for one committed late.
const SETTLE_MS: u64 = 2_000;

/// The smallest id made `SETTLE_MS` before `id` (a UUIDv7 in hex: its first 12 digits are
/// milliseconds); `id` itself when it is not one.
fn settle_from(id: &str) -> String {
    match id.get(..12).and_then(|ms| u64::from_str_radix(ms, 16).ok()) {
        Some(ms) if id.len() == 32 => format!("{:012x}{}", ms.saturating_sub(SETTLE_MS), "0".repeat(20)),
        _ => id.to_string(),
    }
}

impl Reader {
    fn new(state: &AppState, channel: ChannelId, visitor: String, after: Option<String>, rx: Receiver) -> Reader {
        let floor = after.unwrap_or_default();
        Reader {
            state: state.clone(),
            channel,
            visitor,
            contact: None,
            after: floor.clone(),
            floor,
            sent: Default::default(),
            rx,
            pending: VecDeque::new(),
        }
    }

    /// Reads the messages this connection has not sent; returns whether there were any.
    async fn read(&mut self) -> okno_domain::Result<bool> {
        if self.contact.is_none() {
            self.contact =
                self.state.engine.store.identity_on(&self.channel, &self.visitor).await?.map(|i| i.contact_id);
        }
        let Some(contact) = self.contact.clone() else { return Ok(false) };
        let mut cursor = settle_from(&self.after).max(self.floor.clone());
        let mut any = false;
        loop {
            let page = VisitorPage::After(cursor.clone());
            let items = self.state.engine.store.visitor_messages(&self.channel, &contact, page, PAGE).await?;
            for m in &items {
                let id = m.id.to_string();
                if self.sent.contains(&id) {
                    continue;
                }
                let data = view(&self.channel, m).to_string();
                self.pending.push_back(Event::default().id(&id).event("message").data(data));
                self.after = self.after.clone().max(id.clone());
                self.sent.insert(id);
                any = true;
            }
            match items.last() {
                Some(last) if items.len() == PAGE as usize => cursor = last.id.to_string(),
                _ => break,
            }
        }
        // What fell out of the window is never looked at again.
        self.sent = self.sent.split_off(&settle_from(&self.after));
        Ok(any)
    }

    /// This stream's share of the spread between streams' own reads: up to a second, fixed by
    /// the visitor's id.
    fn spread(&self) -> std::time::Duration {
        let n = self.visitor.get(1..5).and_then(|h| u64::from_str_radix(h, 16).ok()).unwrap_or(0);
        std::time::Duration::from_millis(n % 1000)
    }

    /// Waits for a bell, [`STREAM_POLL`], or okno stopping (`false`).
    async fn wait(&mut self) -> bool {
        let spread = self.spread();
        tokio::select! {
            _ = self.state.shutdown.cancelled() => false,
            notice = self.rx.recv() => {
                if let Ok(Notice::Typing) = notice {
                    self.pending.push_back(Event::default().id(&self.after).event("typing").data("{}"));
                }
                true
            }
            _ = tokio::time::sleep(STREAM_POLL + spread) => true,
        }
    }
}

/// The events of a reader: the store's messages after the last one sent, then whatever comes.
fn events(reader: Reader) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(reader, |mut r| async move {
        loop {
            if let Some(event) = r.pending.pop_front() {
                return Some((Ok(event), r));
            }
            match r.read().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e.message, "a widget stream could not read the store"),
            }
            if !r.wait().await {
                return None;
            }
        }
    })
}

type Receiver = tokio::sync::broadcast::Receiver<Notice>;

/// Visitors with a live stream open in this process (for the metrics and tests).
pub fn visitors_listening() -> usize {
    live::hub().listening()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settling_window_starts_two_seconds_before_an_id() {
        let id = okno_domain::ids::new_id();
        let from = settle_from(&id);
        assert_eq!(from.len(), 32);
        assert!(from < id, "{from} before {id}");
        let ms = |s: &str| u64::from_str_radix(&s[..12], 16).unwrap_or_default();
        assert_eq!(ms(&id) - ms(&from), SETTLE_MS);
        assert_eq!(settle_from(""), "", "no message yet: from the start");
        assert_eq!(settle_from("not-an-id"), "not-an-id");
    }

    #[test]
    fn the_script_validator_is_a_quoted_digest() {
        let etag = script_etag();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34, "{etag}");
    }
}
