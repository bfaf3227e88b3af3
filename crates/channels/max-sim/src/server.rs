//! The HTTP side: the Bot API paths, the upload host and the file downloads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::body;
use crate::state::{now_ms, Bot, Bucket, ChatKind, Inner, StoredMessage, Subscription, Upload, CHAT_RPS};
use crate::{webhook, CallbackAnswer, Fault, Sent};

type Q = Query<HashMap<String, String>>;

/// The simulator's routes.
pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/updates", get(updates))
        .route("/subscriptions", get(subscriptions).post(subscribe).delete(unsubscribe))
        .route("/messages", post(send).put(edit).delete(delete))
        .route("/messages/{mid}", get(get_message))
        .route("/answers", post(answer))
        .route("/uploads", post(uploads))
        // The upload host (`fu.oneme.ru`, `iu.oneme.ru`, `vu.okcdn.ru` in production).
        .route("/upload/{slot}", post(upload))
        .route("/files/{token}", get(download))
        .fallback(|| async { ApiError::new(404, "not.found", "Path not found").into_response() })
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(inner)
}

/// The platform's error: an HTTP status and `{"code","message"}` (schema `Error`).
#[derive(Debug)]
pub(crate) struct ApiError {
    status: u16,
    code: String,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &str, message: &str) -> ApiError {
        ApiError { status, code: code.into(), message: message.into() }
    }

    /// 400 `proto.payload`: a body the platform cannot accept ([3P] observed answers).
    pub(crate) fn payload(message: &str) -> ApiError {
        ApiError::new(400, "proto.payload", message)
    }

    fn not_found(message: &str) -> ApiError {
        ApiError::new(404, "not.found", message)
    }

    /// 429 `too.many.requests` ([3P] live probe in `love-apples/maxapi` PR #188). Whether the
    /// platform adds `Retry-After` is [UNVERIFIED]; the simulator sends none.
    fn too_many(limit: &str) -> ApiError {
        ApiError::new(429, "too.many.requests", &format!("Too many requests. Limit is: {limit}."))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(json!({"code": self.code, "message": self.message}))).into_response()
    }
}

type Answer = Result<Response, ApiError>;

fn ok(v: Value) -> Answer {
    Ok((StatusCode::OK, Json(v)).into_response())
}

fn success() -> Answer {
    ok(json!({"success": true}))
}

fn respond(a: Answer) -> Response {
    a.unwrap_or_else(IntoResponse::into_response)
}

/// Checks the caller and counts the call: the simulator answers only at its own address
/// (another name pointed at 127.0.0.1 is a page of another site); the token is the raw
/// `Authorization` header (go `const.go` `AuthorizationHeader`, ts `client.ts`; a query
/// `access_token` is no longer accepted, dev.max.ru); a queued fault answers first; then the
/// 30 rps bucket.
fn gate(inner: &Inner, headers: &HeaderMap, key: &str, rate_counted: bool) -> Result<String, ApiError> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !host.eq_ignore_ascii_case(&inner.addr.to_string()) {
        return Err(ApiError::new(403, "access.denied", "The simulator answers only at its own address"));
    }
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut world = inner.world();
    let limits_on = world.limits_on;
    let Some(bot) = world.bot(&token) else {
        return Err(ApiError::new(401, "verify.token", "Invalid access_token"));
    };
    *bot.calls.entry(key.to_string()).or_default() += 1;
    if let Some(fault) = bot.faults.pop_front() {
        return Err(match fault {
            Fault::RateLimited => {
                bot.rate_limited += 1;
                ApiError::too_many("30 calls per second")
            }
            Fault::Status(503) => ApiError::new(503, "service.unavailable", "Service temporarily unavailable"),
            Fault::Status(s) => ApiError::new(s, "internal.error", "Internal server error"),
        });
    }
    if rate_counted && limits_on && !bot.bucket.try_take() {
        bot.rate_limited += 1;
        return Err(ApiError::too_many("30 calls per second"));
    }
    Ok(token)
}

/// Runs `f` on the authenticated bot.
fn with_bot<T>(inner: &Inner, token: &str, f: impl FnOnce(&mut Bot) -> Result<T, ApiError>) -> Result<T, ApiError> {
    let mut world = inner.world();
    let bot = world.bot(token).ok_or_else(|| ApiError::new(401, "verify.token", "Invalid access_token"))?;
    f(bot)
}

/// The 2-sends-per-second bucket of a chat (dev.max.ru POST /messages, POST /answers).
fn chat_rate(bot: &mut Bot, chat_id: i64, limits_on: bool) -> Result<(), ApiError> {
    if !limits_on {
        return Ok(());
    }
    if bot.chat_buckets.entry(chat_id).or_insert_with(|| Bucket::new(CHAT_RPS)).try_take() {
        Ok(())
    } else {
        bot.rate_limited += 1;
        Err(ApiError::too_many("2 messages per second per chat"))
    }
}

fn parse_json(bytes: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::payload(&format!("Invalid JSON: {e}")))
}

async fn me(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    respond((|| {
        let token = gate(&inner, &headers, "GET /me", true)?;
        with_bot(&inner, &token, |bot| Ok(bot.me_json())).and_then(ok)
    })())
}

/// `GET /updates`: `marker` confirms everything before it; no marker gives only the latest
/// update (schema `GET /updates`: "Если параметр marker не передан … вы получите только
/// последнее обновление"); parks up to `timeout` seconds (0–90) when nothing is pending;
/// 405 while a webhook subscription exists ("При активной подписке Long Polling не
/// работает"; the 405 is the schema's listed status, its body is [UNVERIFIED]).
async fn updates(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q) -> Response {
    let token = match gate(&inner, &headers, "GET /updates", false) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let int = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let limit = int("limit").unwrap_or(100);
    let timeout = int("timeout").unwrap_or(30);
    if !(1..=1000).contains(&limit) {
        return ApiError::payload("limit: must be between 1 and 1000").into_response();
    }
    if !(0..=90).contains(&timeout) {
        return ApiError::payload("timeout: must be between 0 and 90").into_response();
    }
    let marker = q.get("marker").filter(|m| !m.is_empty() && *m != "null").and_then(|m| m.parse::<i64>().ok());
    let types: Option<Vec<String>> =
        q.get("types").map(|t| t.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout as u64);
    let mut changes = {
        let mut world = inner.world();
        let Some(bot) = world.bot(&token) else {
            return ApiError::new(401, "verify.token", "Invalid access_token").into_response();
        };
        bot.changed.subscribe()
    };
    loop {
        {
            let mut world = inner.world();
            let Some(bot) = world.bot(&token) else {
                return ApiError::new(401, "verify.token", "Invalid access_token").into_response();
            };
            changes.borrow_and_update();
            if !bot.subscriptions.is_empty() {
                return ApiError::new(
                    405,
                    "method.not.allowed",
                    "Long polling is not available while a webhook subscription is active",
                )
                .into_response();
            }
            match marker {
                Some(m) => {
                    while bot.updates.front().is_some_and(|(n, _)| *n < m) {
                        bot.updates.pop_front();
                    }
                }
                None => {
                    while bot.updates.len() > 1 {
                        bot.updates.pop_front();
                    }
                }
            }
            let wanted = |u: &Value| {
                types.as_ref().is_none_or(|t| t.is_empty() || t.iter().any(|k| u["update_type"].as_str() == Some(k)))
            };
            // Updates of other types stay queued until a later marker confirms them.
            let batch: Vec<(i64, Value)> =
                bot.updates.iter().filter(|(_, u)| wanted(u)).take(limit as usize).cloned().collect();
            if let Some((last, _)) = batch.last() {
                let next = last + 1;
                let list: Vec<Value> = batch.into_iter().map(|(_, u)| u).collect();
                return (StatusCode::OK, Json(json!({"updates": list, "marker": next}))).into_response();
            }
            if timeout == 0 {
                break;
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(deadline) => break,
            _ = inner.stopping() => break,
        }
    }
    let next = marker.unwrap_or_else(|| inner.world().bot(&token).map(|b| b.next_marker).unwrap_or_default());
    (StatusCode::OK, Json(json!({"updates": [], "marker": next}))).into_response()
}

async fn subscriptions(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    respond((|| {
        let token = gate(&inner, &headers, "GET /subscriptions", true)?;
        with_bot(&inner, &token, |bot| {
            let list: Vec<Value> = bot
                .subscriptions
                .iter()
                .map(|s| json!({"url": s.url, "time": s.time, "update_types": s.update_types}))
                .collect();
            ok(json!({"subscriptions": list}))
        })
    })())
}

/// `POST /subscriptions` (schema `SubscriptionRequestBody`). The URL must be `https://`; the
/// simulator also takes `http://127.0.0.1` and `http://localhost`, where tests listen.
async fn subscribe(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    respond((|| {
        let token = gate(&inner, &headers, "POST /subscriptions", true)?;
        let b = parse_json(&body)?;
        let url = b["url"].as_str().ok_or_else(|| ApiError::payload("url: is required"))?.to_string();
        let local = url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost");
        if !url.starts_with("https://") && !local {
            return Err(ApiError::payload("url: must start with https://"));
        }
        let secret = match &b["secret"] {
            Value::Null => None,
            Value::String(s) => {
                let valid = (5..=256).contains(&s.len())
                    && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
                if !valid {
                    return Err(ApiError::payload("secret: must match ^[a-zA-Z0-9_-]{5,256}$"));
                }
                Some(s.clone())
            }
            _ => return Err(ApiError::payload("secret: must be a string")),
        };
        let update_types = b["update_types"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>());
        with_bot(&inner, &token, |bot| {
            bot.subscriptions.retain(|s| s.url != url);
            bot.subscriptions.push(Subscription { url, secret, update_types, time: now_ms() });
            // A parked long poll learns it is no longer allowed.
            bot.bump();
            success()
        })
    })())
}

async fn unsubscribe(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q) -> Response {
    respond((|| {
        let token = gate(&inner, &headers, "DELETE /subscriptions", true)?;
        let url = q.get("url").ok_or_else(|| ApiError::payload("url: is required"))?.clone();
        with_bot(&inner, &token, |bot| {
            let before = bot.subscriptions.len();
            bot.subscriptions.retain(|s| s.url != url);
            if bot.subscriptions.len() == before {
                return ok(json!({"success": false, "message": "Subscription not found"}));
            }
            success()
        })
    })())
}

/// The chat a send goes to: exactly one of `user_id` (that person's dialog) or `chat_id`
/// (schema POST /messages). An unknown chat is 404 `chat.not.found`; a person who stopped the
/// bot, or a group that removed it, is 403 `chat.denied` ([3P] observed answers).
fn target(bot: &Bot, q: &HashMap<String, String>) -> Result<i64, ApiError> {
    let user = q.get("user_id").map(|v| v.parse::<i64>().map_err(|_| ApiError::payload("user_id: must be a number")));
    let chat = q.get("chat_id").map(|v| v.parse::<i64>().map_err(|_| ApiError::payload("chat_id: must be a number")));
    let chat_id = match (user, chat) {
        (Some(u), None) => crate::state::dialog_id(u?),
        (None, Some(c)) => c?,
        _ => return Err(ApiError::payload("Exactly one of user_id or chat_id must be set")),
    };
    match bot.chats.get(&chat_id) {
        None => Err(ApiError::new(404, "chat.not.found", &format!("Chat {chat_id} not found"))),
        Some(c) if !c.open => Err(ApiError::new(403, "chat.denied", "error.dialog.suspended")),
        Some(_) => Ok(chat_id),
    }
}

async fn send(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q, body: Bytes) -> Response {
    respond((|| {
        let token = gate(&inner, &headers, "POST /messages", true)?;
        let b = parse_json(&body)?;
        let base = inner.base.clone();
        let mut world = inner.world();
        let limits_on = world.limits_on;
        let bot = world.bot(&token).ok_or_else(|| ApiError::new(401, "verify.token", "Invalid access_token"))?;
        let chat_id = target(bot, &q)?;
        let checked = body::check(bot, &b, &base)?;
        let attachments = checked.attachments.clone().unwrap_or_default();
        if checked.text.as_deref().is_none_or(str::is_empty) && attachments.is_empty() {
            return Err(ApiError::payload("Message must have text or attachments"));
        }
        chat_rate(bot, chat_id, limits_on)?;
        let mid = bot.next_mid();
        let seq = bot.next_seq() as i64;
        let mut m = json!({
            "sender": bot.me_json(),
            "recipient": bot.recipient_json(chat_id, true),
            "timestamp": now_ms(),
            "body": {"mid": mid, "seq": seq, "text": checked.text.clone().unwrap_or_default()},
        });
        if !attachments.is_empty() {
            m["body"]["attachments"] = Value::Array(attachments);
        }
        if let Some((kind, linked)) = &checked.link {
            let quoted = bot.messages.get(linked).map(|s| s.json["body"].clone()).unwrap_or(Value::Null);
            m["link"] = json!({"type": kind, "message": quoted});
        }
        bot.messages.insert(mid.clone(), StoredMessage { chat_id, from_bot: true, json: m.clone() });
        bot.sent.push(Sent {
            method: "POST /messages".into(),
            chat_id,
            mid,
            text: checked.text,
            format: checked.format,
            attachments: checked.raw_attachments,
            at: Instant::now(),
        });
        ok(json!({"message": m}))
    })())
}

/// Applies a checked body to a stored message: text replaced when given, attachments
/// replaced when given (`[]` removes them; null keeps them, schema `NewMessageBody`).
fn apply(stored: &mut StoredMessage, checked: &body::Checked) {
    if let Some(t) = &checked.text {
        stored.json["body"]["text"] = t.clone().into();
    }
    if let Some(a) = &checked.attachments {
        if a.is_empty() {
            if let Some(b) = stored.json["body"].as_object_mut() {
                b.remove("attachments");
            }
        } else {
            stored.json["body"]["attachments"] = Value::Array(a.clone());
        }
    }
}

fn message_id(q: &HashMap<String, String>) -> Result<String, ApiError> {
    q.get("message_id").filter(|m| !m.is_empty()).cloned().ok_or_else(|| ApiError::payload("message_id: is required"))
}

/// `PUT /messages`: only the bot's own messages.
async fn edit(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q, body: Bytes) -> Response {
    respond((|| {
        let token = gate(&inner, &headers, "PUT /messages", true)?;
        let mid = message_id(&q)?;
        let b = parse_json(&body)?;
        let base = inner.base.clone();
        with_bot(&inner, &token, |bot| {
            let checked = body::check(bot, &b, &base)?;
            let stored = bot.messages.get_mut(&mid).ok_or_else(|| ApiError::not_found("Message not found"))?;
            if !stored.from_bot {
                return Err(ApiError::new(403, "access.denied", "Bot can edit only its own messages"));
            }
            apply(stored, &checked);
            let chat_id = stored.chat_id;
            bot.sent.push(Sent {
                method: "PUT /messages".into(),
                chat_id,
                mid,
                text: checked.text,
                format: checked.format,
                attachments: checked.raw_attachments,
                at: Instant::now(),
            });
            success()
        })
    })())
}

async fn delete(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q) -> Response {
    respond((|| {
        let token = gate(&inner, &headers, "DELETE /messages", true)?;
        let mid = message_id(&q)?;
        with_bot(&inner, &token, |bot| {
            let stored = bot.messages.get(&mid).ok_or_else(|| ApiError::not_found("Message not found"))?;
            let chat_id = stored.chat_id;
            let dialog = bot.chats.get(&chat_id).is_some_and(|c| c.kind == ChatKind::Dialog);
            // In a dialog the bot deletes only its own messages; in a group, as administrator,
            // any (schema DELETE /messages: "если бот имеет разрешение").
            if dialog && !stored.from_bot {
                return Err(ApiError::new(403, "access.denied", "Not enough rights to delete the message"));
            }
            bot.messages.remove(&mid);
            bot.sent.push(Sent {
                method: "DELETE /messages".into(),
                chat_id,
                mid,
                text: None,
                format: None,
                attachments: Vec::new(),
                at: Instant::now(),
            });
            success()
        })
    })())
}

async fn get_message(State(inner): State<Arc<Inner>>, headers: HeaderMap, Path(mid): Path<String>) -> Response {
    respond((|| {
        let token = gate(&inner, &headers, "GET /messages/{mid}", true)?;
        with_bot(&inner, &token, |bot| {
            bot.messages.get(&mid).map(|m| m.json.clone()).ok_or_else(|| ApiError::not_found("Message not found"))
        })
        .and_then(ok)
    })())
}

/// `POST /answers?callback_id=`: a new message for the pressed one and/or a one-time
/// notification (schema `CallbackAnswer`); counts against the chat's 2 sends/s.
async fn answer(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q, body: Bytes) -> Response {
    respond((|| {
        let token = gate(&inner, &headers, "POST /answers", true)?;
        let id = q.get("callback_id").filter(|c| !c.trim().is_empty()).cloned();
        let id = id.ok_or_else(|| ApiError::payload("callback_id: is required"))?;
        let b = parse_json(&body)?;
        let base = inner.base.clone();
        let mut world = inner.world();
        let limits_on = world.limits_on;
        let bot = world.bot(&token).ok_or_else(|| ApiError::new(401, "verify.token", "Invalid access_token"))?;
        let press = bot.presses.get(&id).cloned().ok_or_else(|| ApiError::not_found("Callback not found"))?;
        let notification = b["notification"].as_str().map(str::to_string);
        let message = b.get("message").filter(|m| !m.is_null()).cloned();
        if notification.is_none() && message.is_none() {
            return Err(ApiError::payload("Either message or notification must be set"));
        }
        let checked = message.as_ref().map(|m| body::check(bot, m, &base)).transpose()?;
        chat_rate(bot, press.chat_id, limits_on)?;
        if let Some(checked) = &checked {
            if let Some(stored) = bot.messages.get_mut(&press.mid) {
                apply(stored, checked);
            }
        }
        if let Some(checked) = checked {
            bot.sent.push(Sent {
                method: "POST /answers".into(),
                chat_id: press.chat_id,
                mid: press.mid.clone(),
                text: checked.text,
                format: checked.format,
                attachments: checked.raw_attachments,
                at: Instant::now(),
            });
        }
        if let Some(p) = bot.presses.get_mut(&id) {
            p.answered = true;
        }
        bot.answers.push(CallbackAnswer { callback_id: id, notification, message, after: press.at.elapsed() });
        success()
    })())
}

/// `POST /uploads?type=`: an upload URL, and for video and audio the attach token at once
/// (schema POST /uploads, `UploadEndpoint`; `type=photo` is no longer supported).
async fn uploads(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q) -> Response {
    respond((|| {
        let token = gate(&inner, &headers, "POST /uploads", true)?;
        let kind = q.get("type").cloned().unwrap_or_default();
        if !matches!(kind.as_str(), "image" | "video" | "audio" | "file") {
            return Err(ApiError::payload(&format!(
                "type: unknown upload type {kind:?}; use image, video, audio or file"
            )));
        }
        let base = inner.base.clone();
        with_bot(&inner, &token, |bot| {
            let n = bot.next_seq();
            let slot = format!("{}x{n}", bot.user_id);
            let attach = format!("tok_{}_{n}_{kind}", bot.user_id);
            bot.uploads.insert(
                slot.clone(),
                Upload { kind: kind.clone(), token: attach.clone(), bytes: None, name: None, ready_at: None },
            );
            let url = format!("{base}/upload/{slot}");
            if kind == "video" || kind == "audio" {
                ok(json!({"url": url, "token": attach}))
            } else {
                ok(json!({"url": url}))
            }
        })
    })())
}

/// The upload host: one multipart file in the field `data` per URL (go `upload.go`); the
/// reply depends on the type: `{"token"}` for a file, `{"photos":{…}}` for an image, XML
/// `<retval>1</retval>` for video and audio (go `stabs/upload.video.response.xml`).
async fn upload(State(inner): State<Arc<Inner>>, Path(slot): Path<String>, mut form: Multipart) -> Response {
    let mut file = None;
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("data") {
            let name = field.file_name().map(str::to_string);
            match field.bytes().await {
                Ok(b) => file = Some((b, name)),
                Err(e) => return ApiError::payload(&format!("Reading the upload: {e}")).into_response(),
            }
        }
    }
    let Some((bytes, name)) = file else {
        return ApiError::payload("No file in the form field \"data\"").into_response();
    };
    let mut world = inner.world();
    let processing = world.processing;
    let found = world.bots.values_mut().find_map(|b| b.uploads.get_mut(&slot));
    let Some(upload) = found else {
        return ApiError::not_found("Upload URL not found").into_response();
    };
    if upload.bytes.is_some() {
        return ApiError::payload("Only one file can be uploaded per URL").into_response();
    }
    upload.bytes = Some(bytes);
    upload.name = name;
    upload.ready_at = Some(Instant::now() + processing);
    match upload.kind.as_str() {
        "file" => (StatusCode::OK, Json(json!({"token": upload.token}))).into_response(),
        "image" => (StatusCode::OK, Json(json!({"photos": {slot: {"token": upload.token}}}))).into_response(),
        _ => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n<retval>1</retval>",
        )
            .into_response(),
    }
}

/// A file's bytes by token: what a person sent, or what the bot uploaded.
async fn download(State(inner): State<Arc<Inner>>, Path(token): Path<String>) -> Response {
    let world = inner.world();
    for bot in world.bots.values() {
        let bytes = bot
            .files
            .get(&token)
            .cloned()
            .or_else(|| bot.uploads.values().find(|u| u.token == token).and_then(|u| u.bytes.clone()));
        if let Some(b) = bytes {
            return (StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], b).into_response();
        }
    }
    ApiError::not_found("File not found").into_response()
}

/// Queues an update and starts its webhook deliveries.
pub(crate) fn emit(inner: &Arc<Inner>, token: &str, bot: &mut Bot, update: Value) {
    let subs = bot.push_update(update.clone());
    webhook::spawn_deliveries(inner, token, &update, subs);
}
