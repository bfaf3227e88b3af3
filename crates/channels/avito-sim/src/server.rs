//! The paths the simulator serves, and webhook pushes.
//!
//! ```text
//! POST /token                                                   client credentials → token
//! GET  /core/v1/accounts/self                                   the account
//! POST /messenger/v3/webhook | v1/subscriptions | v1/webhook/unsubscribe
//! GET  /messenger/v2/accounts/{user_id}/chats[/{chat_id}]       chats, with their item
//! GET  /messenger/v3/accounts/{user_id}/chats/{chat_id}/messages/
//! POST /messenger/v1/accounts/{user_id}/chats/{chat_id}/messages[/image]
//! POST /messenger/v1/accounts/{user_id}/chats/{chat_id}/read
//! POST /messenger/v1/accounts/{user_id}/uploadImages            multipart `uploadfile[]`
//! GET  /images/{size}/{image_id}                                an image's bytes
//! ```
//!
//! Refusals travel as ready `Response`s (Avito's error body) out of the handlers.

#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};

use crate::{sign, unix_now, Fault, Inner, Push, Sent, World, TEXT_LIMIT};

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/token/", post(token))
        .route("/core/v1/accounts/self", get(account))
        .route("/messenger/v3/webhook", post(subscribe))
        .route("/messenger/v1/subscriptions", post(subscriptions))
        .route("/messenger/v1/webhook/unsubscribe", post(unsubscribe))
        .route("/messenger/v2/accounts/{uid}/chats", get(chats))
        .route("/messenger/v2/accounts/{uid}/chats/{chat}", get(chat))
        .route("/messenger/v3/accounts/{uid}/chats/{chat}/messages/", get(messages))
        .route("/messenger/v1/accounts/{uid}/chats/{chat}/messages", post(send_text))
        .route("/messenger/v1/accounts/{uid}/chats/{chat}/messages/image", post(send_image))
        .route("/messenger/v1/accounts/{uid}/chats/{chat}/read", post(read))
        .route("/messenger/v1/accounts/{uid}/uploadImages", post(upload))
        .route("/images/{size}/{id}", get(image))
        .route("/messenger/v1/accounts/{uid}/getVoiceFiles", get(voices))
        .route("/voices/{id}", get(voice))
        .fallback(|| async { error(404, "Not found") })
        .layer(DefaultBodyLimit::max(30 * 1024 * 1024))
        .with_state(inner)
}

/// Avito's error body: `{"error":{"code","message"}}`.
fn error(status: u16, message: &str) -> Response {
    let body = json!({"error": {"code": status, "message": message}});
    (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), Json(body)).into_response()
}

/// A validation error: Avito's body with the offending `fields`.
fn invalid(field: &str, message: &str) -> Response {
    let body = json!({"error": {"code": 400, "message": "Bad Request", "fields": {field: message}}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn fault_response(f: Fault) -> Response {
    match f {
        Fault::TooManyRequests => {
            let mut r = error(429, "Too Many Requests");
            r.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
            r
        }
        Fault::Status(500) => error(500, "Error while processing request. Please, contact support"),
        Fault::Status(503) => error(503, "Service temporarily unavailable. Please, contact support"),
        Fault::Status(402) => error(402, "Payment required"),
        Fault::Status(s) => error(s, "Simulated failure"),
    }
}

#[derive(serde::Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn token(State(inner): State<Arc<Inner>>, Form(f): Form<TokenForm>) -> Response {
    let mut w = inner.world();
    if f.grant_type.as_deref() != Some("client_credentials") {
        let body =
            json!({"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    if f.client_id.as_deref() != Some(w.client_id.as_str())
        || f.client_secret.as_deref() != Some(w.client_secret.as_str())
    {
        let body = json!({"error": "invalid_client", "error_description": "invalid client id or secret"});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let token = w.next("tok-");
    let ttl = w.token_ttl;
    w.tokens.insert(token.clone(), Instant::now() + ttl);
    w.tokens_issued += 1;
    // `expires_in` is whole seconds; a sub-second life (tests) still says 1.
    let expires_in = ttl.as_secs().max(1);
    Json(json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})).into_response()
}

/// Runs `f` when the request's bearer token is live and the path's account is the token's;
/// a queued fault answers first.
fn authorised<T>(
    inner: &Inner,
    headers: &HeaderMap,
    uid: Option<&str>,
    messenger: bool,
    f: impl FnOnce(&mut World) -> Result<T, Response>,
) -> Result<T, Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    let mut w = inner.world();
    match w.tokens.get(token) {
        None => return Err(error(401, "Unauthorized")),
        Some(until) if *until <= Instant::now() => {
            w.refused_expired += 1;
            return Err(error(401, "Unauthorized"));
        }
        Some(_) => {}
    }
    if let Some(uid) = uid {
        if uid != w.user_id.to_string() {
            return Err(error(403, "Forbidden"));
        }
    }
    if messenger && !w.tariff {
        return Err(error(402, "Payment required"));
    }
    if let Some(fault) = w.faults.pop_front() {
        return Err(fault_response(fault));
    }
    f(&mut w)
}

fn answer(r: Result<Value, Response>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e,
    }
}

async fn account(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    answer(authorised(&inner, &headers, None, false, |w| {
        Ok(json!({"id": w.user_id, "name": w.name, "email": "shop@example.org", "phone": "79005550000",
                  "profile_url": format!("https://www.avito.ru/user/{}/profile", w.user_id)}))
    }))
}

fn url_of(body: &Value) -> Result<String, Response> {
    match body["url"].as_str() {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => Ok(u.to_string()),
        _ => Err(invalid("url", "url must be an http(s) address")),
    }
}

async fn subscribe(State(inner): State<Arc<Inner>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    answer(authorised(&inner, &headers, None, true, |w| {
        w.webhook = Some(url_of(&body)?);
        Ok(json!({"ok": true}))
    }))
}

async fn subscriptions(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    answer(authorised(&inner, &headers, None, true, |w| {
        let list: Vec<Value> = w.webhook.iter().map(|u| json!({"url": u, "version": "3"})).collect();
        Ok(json!({"subscriptions": list}))
    }))
}

async fn unsubscribe(State(inner): State<Arc<Inner>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    answer(authorised(&inner, &headers, None, true, |w| {
        let url = url_of(&body)?;
        if w.webhook.as_deref() == Some(url.as_str()) {
            w.webhook = None;
        }
        Ok(json!({"ok": true}))
    }))
}

fn number(q: &HashMap<String, String>, name: &str, default: i64, min: i64, max: i64) -> Result<i64, Response> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(invalid(name, &format!("{name} must be a number from {min} to {max}"))),
        },
    }
}

async fn chats(
    State(inner): State<Arc<Inner>>,
    Path(uid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    answer(authorised(&inner, &headers, Some(&uid), true, |w| {
        let limit = number(&q, "limit", 100, 1, 100)?;
        let offset = number(&q, "offset", 0, 0, 1000)?;
        let unread_only = q.get("unread_only").is_some_and(|v| v == "true");
        let mut list: Vec<&crate::Chat> = w
            .chats
            .values()
            .filter(|c| !unread_only || c.messages.iter().any(|m| m["direction"] == "in" && m["is_read"] == false))
            .collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.updated));
        let page: Vec<Value> =
            list.into_iter().skip(offset as usize).take(limit as usize).map(|c| w.chat_json(c)).collect();
        Ok(json!({"chats": page}))
    }))
}

async fn chat(
    State(inner): State<Arc<Inner>>,
    Path((uid, chat_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let delay = inner.world().chat_delay;
    tokio::time::sleep(delay).await;
    answer(authorised(&inner, &headers, Some(&uid), true, |w| match w.chats.get(&chat_id) {
        Some(c) => Ok(w.chat_json(c)),
        None => Err(error(404, "Not found")),
    }))
}

async fn messages(
    State(inner): State<Arc<Inner>>,
    Path((uid, chat_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    answer(authorised(&inner, &headers, Some(&uid), true, |w| {
        let limit = number(&q, "limit", 100, 1, 100)?;
        let offset = number(&q, "offset", 0, 0, 1000)?;
        let chat = w.chats.get(&chat_id).ok_or_else(|| error(404, "Not found"))?;
        // Newest first, as Avito lists them.
        let page: Vec<Value> = chat.messages.iter().rev().skip(offset as usize).take(limit as usize).cloned().collect();
        Ok(Value::Array(page))
    }))
}

/// Stores an outgoing message in a chat okno may write to; the chat must exist (Avito has no
/// way to start a chat with someone who never wrote).
fn store_out(w: &mut World, chat_id: &str, kind: &str, content: Value, sent: Sent) -> Result<Value, Response> {
    let user_id = w.user_id;
    let chat = w.chats.get_mut(chat_id).ok_or_else(|| error(404, "Not found"))?;
    if chat.closed {
        return Err(error(403, "Forbidden: the user has restricted messages from you"));
    }
    let now = unix_now();
    let msg = json!({"id": sent.id, "author_id": user_id, "created": now, "direction": "out", "type": kind,
                     "content": content, "is_read": false, "read": null});
    chat.messages.push(msg.clone());
    chat.updated = now;
    w.sent.push(sent);
    Ok(json!({"id": msg["id"], "created": now, "direction": "out", "type": kind, "content": content}))
}

/// Avito's webhook reports every message in the account's chats, the seller's own included
/// (`author_id` = the account): a sent message comes back to okno as such an echo.
fn echo(inner: &Arc<Inner>, chat_id: &str, r: &Result<Value, Response>) {
    let Ok(msg) = r else { return };
    let body = {
        let w = inner.world();
        if !w.echo_sent || w.webhook.is_none() {
            return;
        }
        let Some(chat) = w.chats.get(chat_id) else { return };
        let now = unix_now();
        let mut value = json!({"id": msg["id"], "chat_id": chat_id, "user_id": w.user_id, "author_id": w.user_id,
            "created": now, "type": msg["type"], "chat_type": if chat.item.is_some() { "u2i" } else { "u2u" },
            "content": msg["content"], "published_at": crate::rfc3339(now)});
        if let Some(item) = &chat.item {
            value["item_id"] = json!(item.id);
        }
        json!({"id": format!("evt-echo-{}", msg["id"].as_str().unwrap_or("")), "version": "v3.0.0", "timestamp": now,
               "payload": {"type": "message", "value": value}})
    };
    let inner = inner.clone();
    tokio::spawn(async move {
        push(&inner, body.to_string().into_bytes()).await;
    });
}

async fn send_text(
    State(inner): State<Arc<Inner>>,
    Path((uid, chat_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let r = authorised(&inner, &headers, Some(&uid), true, |w| {
        let Some(Json(body)) = body else { return Err(invalid("message", "a JSON body is required")) };
        if body["type"].as_str().is_some_and(|t| t != "text") {
            return Err(invalid("type", "type must be text"));
        }
        let text = body["message"]["text"].as_str().unwrap_or("");
        if text.trim().is_empty() {
            return Err(invalid("message.text", "text is required"));
        }
        if text.chars().count() > TEXT_LIMIT {
            return Err(invalid("message.text", "text must be at most 1000 characters"));
        }
        let id = w.next("out-");
        let sent = Sent {
            id,
            chat_id: chat_id.clone(),
            kind: "text".into(),
            text: Some(text.to_string()),
            image_id: None,
            at: Instant::now(),
        };
        store_out(w, &chat_id, "text", json!({"text": text}), sent)
    });
    echo(&inner, &chat_id, &r);
    answer(r)
}

async fn send_image(
    State(inner): State<Arc<Inner>>,
    Path((uid, chat_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let base = inner.base.clone();
    let r = authorised(&inner, &headers, Some(&uid), true, |w| {
        let image_id = body.as_ref().and_then(|b| b.0["image_id"].as_str()).unwrap_or("").to_string();
        if !w.images.contains_key(&image_id) {
            return Err(invalid("image_id", "unknown image_id"));
        }
        let id = w.next("out-");
        let sizes = json!({"1280x960": format!("{base}/images/1280x960/{image_id}"),
                           "140x105": format!("{base}/images/140x105/{image_id}")});
        let sent = Sent {
            id,
            chat_id: chat_id.clone(),
            kind: "image".into(),
            text: None,
            image_id: Some(image_id),
            at: Instant::now(),
        };
        store_out(w, &chat_id, "image", json!({"image": {"sizes": sizes}}), sent)
    });
    echo(&inner, &chat_id, &r);
    answer(r)
}

async fn read(
    State(inner): State<Arc<Inner>>,
    Path((uid, chat_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(authorised(&inner, &headers, Some(&uid), true, |w| {
        let chat = w.chats.get_mut(&chat_id).ok_or_else(|| error(404, "Not found"))?;
        let now = unix_now();
        for m in chat.messages.iter_mut().filter(|m| m["direction"] == "in") {
            m["is_read"] = json!(true);
            if m["read"].is_null() {
                m["read"] = json!(now);
            }
        }
        w.reads.push(chat_id.clone());
        Ok(json!({"ok": true}))
    }))
}

/// JPEG, HEIC, GIF, BMP or PNG, at most 24 MB (`uploadImages`).
fn image_kind(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if data.starts_with(b"BM") {
        Some("image/bmp")
    } else if data.len() > 12 && &data[4..8] == b"ftyp" && (&data[8..12] == b"heic" || &data[8..12] == b"mif1") {
        Some("image/heic")
    } else {
        None
    }
}

async fn upload(
    State(inner): State<Arc<Inner>>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    if let Err(e) = authorised(&inner, &headers, Some(&uid), true, |_| Ok(())) {
        return e;
    }
    let mut file = None;
    let mut count = 0;
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("uploadfile[]") {
            count += 1;
            if let Ok(data) = field.bytes().await {
                file = Some(data);
            }
        }
    }
    if count != 1 {
        return invalid("uploadfile[]", "exactly one image per request");
    }
    let Some(data) = file else { return invalid("uploadfile[]", "the file could not be read") };
    if data.len() > 24 * 1024 * 1024 {
        return invalid("uploadfile[]", "the image is larger than 24 MB");
    }
    let Some(mime) = image_kind(&data) else {
        return invalid("uploadfile[]", "only JPEG, HEIC, GIF, BMP and PNG images are accepted");
    };
    let base = inner.base.clone();
    let mut w = inner.world();
    let id = w.next("img-");
    w.images.insert(id.clone(), (data, mime.to_string()));
    Json(json!({id.clone(): {"1280x960": format!("{base}/images/1280x960/{id}"),
                             "140x105": format!("{base}/images/140x105/{id}")}}))
    .into_response()
}

async fn image(State(inner): State<Arc<Inner>>, Path((_size, id)): Path<(String, String)>) -> Response {
    let found = inner.world().images.get(&id).cloned();
    match found {
        Some((data, mime)) => ([(axum::http::header::CONTENT_TYPE, mime)], data).into_response(),
        None => error(404, "Not found"),
    }
}

async fn voices(
    State(inner): State<Arc<Inner>>,
    Path(uid): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let base = inner.base.clone();
    answer(authorised(&inner, &headers, Some(&uid), true, |w| {
        let ids: Vec<&str> = q
            .iter()
            .filter(|(k, _)| k == "voice_ids")
            .flat_map(|(_, v)| v.split(','))
            .filter(|v| !v.is_empty())
            .collect();
        if ids.is_empty() {
            return Err(invalid("voice_ids", "voice_ids is required"));
        }
        let urls: serde_json::Map<String, Value> = ids
            .into_iter()
            .filter(|id| w.voices.contains_key(*id))
            .map(|id| (id.to_string(), json!(format!("{base}/voices/{id}"))))
            .collect();
        Ok(json!({"voices_urls": urls}))
    }))
}

async fn voice(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> Response {
    let found = inner.world().voices.get(&id).cloned();
    match found {
        Some(data) => ([(axum::http::header::CONTENT_TYPE, "audio/mp4")], data).into_response(),
        None => error(404, "Not found"),
    }
}

/// Delivers `body` to the subscribed URL: each attempt waits at most the deadline; an answer
/// other than 200 in time is a failure, delivered again (three attempts).
pub(crate) async fn push(inner: &Inner, body: Vec<u8>) -> bool {
    let (url, secret, deadline) = {
        let w = inner.world();
        let Some(url) = w.webhook.clone() else { return false };
        (url, w.client_secret.clone(), w.deadline)
    };
    let signature = sign(secret.as_bytes(), &body);
    for attempt in 1..=3u32 {
        let started = Instant::now();
        let resp = inner
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header(crate::SIGNATURE_HEADER, &signature)
            .timeout(deadline)
            .body(body.clone())
            .send()
            .await;
        let elapsed = started.elapsed();
        let status = resp.ok().map(|r| r.status().as_u16());
        let ok = status == Some(200) && elapsed <= deadline;
        inner.world().pushes.push(Push { url: url.clone(), body: body.clone(), status, elapsed, ok, attempt });
        if ok {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
    }
    false
}
