//! The HTTP side: the Graph API bot paths under `/graph`, the upload host, file downloads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::state::{now_ms, Group, Inner, Msg};
use crate::{CallbackAnswer, Fault, Sent};

type Q = Query<HashMap<String, String>>;

/// The simulator's routes.
pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/graph/me/info", get(info))
        .route("/graph/me/subscribe", post(subscribe))
        .route("/graph/me/unsubscribe", post(unsubscribe))
        .route("/graph/me/subscriptions", get(subscriptions))
        .route("/graph/me/messages", post(send_direct))
        .route("/graph/me/messages/{chat_id}", post(send_me_chat))
        .route("/graph/me/chat/{chat_id}", get(chat_info))
        .route("/graph/me/fileUploadUrl", get(upload_url))
        .route("/graph/{chat_id}/messages", post(send_chat))
        .route("/graph/{chat_id}/answer", post(answer))
        .route("/upload/{slot}", post(upload))
        .route("/files/{token}", get(download))
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(inner)
}

/// OK's REST error: `{"error_code","error_msg","error_data"}` on HTTP 200 with the code in
/// an `invocation-error` header ([3P] OK clients read both; the codes and names are OK's
/// general REST list, e.g. `PARAM_SESSION_EXPIRED`, found in several OK SDKs).
#[derive(Debug)]
pub(crate) struct OkError {
    code: i64,
    msg: String,
}

impl OkError {
    pub(crate) fn new(code: i64, msg: &str) -> OkError {
        OkError { code, msg: msg.into() }
    }

    fn param(what: &str) -> OkError {
        OkError::new(100, &format!("PARAM : {what}"))
    }
}

impl IntoResponse for OkError {
    fn into_response(self) -> Response {
        let mut r = Json(json!({"error_code": self.code, "error_msg": self.msg, "error_data": null})).into_response();
        if let Ok(v) = HeaderValue::from_str(&self.code.to_string()) {
            r.headers_mut().insert("invocation-error", v);
        }
        r
    }
}

type Answer = Result<Value, OkError>;

fn respond(a: Answer) -> Response {
    match a {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The token is the query parameter `access_token` (apiok.ru Bot API); POSTs must say
/// `Content-Type: application/json;charset=utf-8` (every graph POST page). An unknown token
/// is `PARAM_SESSION_EXPIRED` (102).
fn gate(
    inner: &Inner,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    key: &str,
    post: bool,
) -> Result<String, Box<Response>> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !host.eq_ignore_ascii_case(&inner.addr.to_string()) {
        return Err(Box::new((StatusCode::FORBIDDEN, "the simulator answers only at its own address").into_response()));
    }
    let token = q.get("access_token").cloned().unwrap_or_default();
    let mut world = inner.world();
    let Some(g) = world.groups.get_mut(&token) else {
        return Err(Box::new(OkError::new(102, "PARAM_SESSION_EXPIRED : Session expired").into_response()));
    };
    *g.calls.entry(key.to_string()).or_default() += 1;
    if let Some(f) = g.faults.pop_front() {
        return Err(Box::new(match f {
            Fault::Error(code) => OkError::new(code, "Injected error").into_response(),
            Fault::Status(s) => {
                (StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_GATEWAY), "Bad Gateway").into_response()
            }
        }));
    }
    if post {
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !ct.starts_with("application/json") {
            return Err(Box::new(
                OkError::param("Content-Type must be application/json;charset=utf-8").into_response(),
            ));
        }
    }
    Ok(token)
}

fn with_group(inner: &Inner, token: &str, f: impl FnOnce(&mut Group) -> Answer) -> Answer {
    let mut world = inner.world();
    match world.groups.get_mut(token) {
        Some(g) => f(g),
        None => Err(OkError::new(102, "PARAM_SESSION_EXPIRED : Session expired")),
    }
}

fn parse(body: &Bytes) -> Answer {
    serde_json::from_slice(body).map_err(|_| OkError::param("body is not JSON"))
}

/// `GET /graph/me/info`: the token's group (apiok/documentation `graph.user.info`).
async fn info(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q) -> Response {
    let token = match gate(&inner, &headers, &q, "GET /graph/me/info", false) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    respond(with_group(&inner, &token, |g| Ok(json!({"name": g.name, "group_id": format!("group:{}", g.id)}))))
}

/// `POST /graph/me/subscribe {"url"}` → `{"success":true}` (graph.user.subscribe).
async fn subscribe(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q, body: Bytes) -> Response {
    let token = match gate(&inner, &headers, &q, "POST /graph/me/subscribe", true) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    respond(parse(&body).and_then(|b| {
        let url = b["url"].as_str().ok_or_else(|| OkError::param("url is required"))?.to_string();
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(OkError::param("url must be http: or https:"));
        }
        with_group(&inner, &token, |g| {
            g.subscriptions.retain(|(u, _)| *u != url);
            g.subscriptions.push((url, now_ms()));
            Ok(json!({"success": true}))
        })
    }))
}

async fn unsubscribe(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q, body: Bytes) -> Response {
    let token = match gate(&inner, &headers, &q, "POST /graph/me/unsubscribe", true) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    respond(parse(&body).and_then(|b| {
        let url = b["url"].as_str().unwrap_or_default().to_string();
        with_group(&inner, &token, |g| {
            let before = g.subscriptions.len();
            g.subscriptions.retain(|(u, _)| *u != url);
            Ok(json!({"success": g.subscriptions.len() < before}))
        })
    }))
}

async fn subscriptions(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q) -> Response {
    let token = match gate(&inner, &headers, &q, "GET /graph/me/subscriptions", false) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    respond(with_group(&inner, &token, |g| {
        let list: Vec<Value> = g.subscriptions.iter().map(|(u, t)| json!({"url": u, "time": t})).collect();
        Ok(json!({"subscriptions": list}))
    }))
}

/// At most 5 attachments in a message; only one `IMAGE` given by URL per request (apiok.ru
/// graph.chat.messages); an `INLINE_KEYBOARD` is `payload.keyboard.buttons`, rows of
/// `CALLBACK` (with `payload`), `LINK` (with `url`), `REQUEST_CONTACT`,
/// `REQUEST_GEO_LOCATION` buttons ([3P] OK bot client libraries). Returns the text and
/// attachments.
fn check_message(g: &Group, message: &Value) -> Result<(String, Vec<Value>), OkError> {
    let text = message["text"].as_str().unwrap_or_default().to_string();
    let mut list: Vec<Value> = message["attachments"].as_array().cloned().unwrap_or_default();
    if let Some(a) = message.get("attachment").filter(|a| !a.is_null()) {
        list.push(a.clone());
    }
    if text.is_empty() && list.is_empty() {
        return Err(OkError::param("message must have text or attachments"));
    }
    if list.len() > 5 {
        return Err(OkError::param("at most 5 attachments in a message"));
    }
    let mut url_images = 0;
    for a in &list {
        let p = &a["payload"];
        match a["type"].as_str().unwrap_or_default() {
            "IMAGE" if p["url"].is_string() => url_images += 1,
            "IMAGE" | "VIDEO" | "AUDIO" | "FILE" => {
                let token = p["token"].as_str().or(p["ref"].as_str()).unwrap_or_default();
                let uploaded =
                    g.uploads.values().any(|(_, t, b)| t == token && b.is_some()) || g.files.contains_key(token);
                if !uploaded {
                    return Err(OkError::param("attachment token is invalid"));
                }
            }
            "INLINE_KEYBOARD" => keyboard(p)?,
            "SHARE" | "CONTACT" | "LOCATION" | "MUSIC" | "CALL" | "PRESENT" | "STICKER" => {}
            other => return Err(OkError::param(&format!("unknown attachment type {other}"))),
        }
    }
    if url_images > 1 {
        return Err(OkError::param("only one IMAGE by url per request"));
    }
    Ok((text, list))
}

fn keyboard(p: &Value) -> Result<(), OkError> {
    let rows = p["keyboard"]["buttons"].as_array().ok_or_else(|| OkError::param("keyboard.buttons is required"))?;
    for b in rows.iter().flat_map(|r| r.as_array().cloned().unwrap_or_default()) {
        if b["text"].as_str().is_none_or(str::is_empty) {
            return Err(OkError::param("button text is required"));
        }
        match b["type"].as_str().unwrap_or_default() {
            "CALLBACK" if b["payload"].is_string() => {}
            "LINK" if b["url"].is_string() => {}
            "REQUEST_CONTACT" | "REQUEST_GEO_LOCATION" => {}
            other => return Err(OkError::param(&format!("button of type {other:?} is invalid"))),
        }
    }
    Ok(())
}

/// Stores the group's message in a chat and records it.
fn post_message(g: &mut Group, method: &str, chat_id: &str, message: &Value) -> Result<String, OkError> {
    let (text, attachments) = check_message(g, message)?;
    let mid = g.next_mid(chat_id);
    let n = g.next_seq();
    let mut m = json!({"text": text, "seq": 98_211_000_000_000_000i64 + n as i64, "mid": mid});
    if !attachments.is_empty() {
        m["attachments"] = Value::Array(attachments.clone());
    }
    let json = json!({"sender": {"user_id": format!("group:{}", g.id), "name": g.name}, "recipient": {"chat_id": chat_id}, "message": m, "timestamp": now_ms()});
    g.messages.insert(mid.clone(), Msg { chat_id: chat_id.to_string(), json });
    g.sent.push(Sent {
        method: method.into(),
        chat_id: chat_id.to_string(),
        mid: mid.clone(),
        text,
        attachments,
        reply_to: message["reply_to"].as_str().map(str::to_string),
        at: Instant::now(),
    });
    Ok(mid)
}

fn send_into_chat(inner: &Inner, token: &str, method: &str, chat_id: &str, body: &Bytes) -> Answer {
    let b = parse(body)?;
    with_group(inner, token, |g| {
        let Some(chat) = g.chats.get(chat_id) else {
            return Err(OkError::new(300, "NOT_FOUND : chat not found"));
        };
        if let Some(user) = chat.user.clone() {
            if !g.people.get(&user).is_some_and(|p| p.allowed) {
                return Err(OkError::new(10, "PERMISSION_DENIED : user has not allowed messages from the group"));
            }
        }
        let mid = post_message(g, method, chat_id, &b["message"])?;
        // The reply's `message_id` is [UNVERIFIED]: the docs show only `success`.
        Ok(json!({"success": true, "message_id": mid}))
    })
}

/// `POST /graph/me/messages/{chat_id}` (graph.user.messages).
async fn send_me_chat(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(chat_id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    match gate(&inner, &headers, &q, "POST /graph/me/messages/{chat_id}", true) {
        Ok(t) => respond(send_into_chat(&inner, &t, "graph.user.messages", &chat_id, &body)),
        Err(r) => *r,
    }
}

/// `POST /graph/{chat_id}/messages` (graph.chat.messages).
async fn send_chat(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(chat_id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    match gate(&inner, &headers, &q, "POST /graph/{chat_id}/messages", true) {
        Ok(t) => respond(send_into_chat(&inner, &t, "graph.chat.messages", &chat_id, &body)),
        Err(r) => *r,
    }
}

/// `POST /graph/me/messages` to people: `recipient.user_id`, or `recipient.user_ids` answered
/// with `{"success":[…],"chat_ids":[…]}` — a person who has not allowed the group's messages
/// gets `false` and `null` (graph.chat.messages "Direct user messages").
async fn send_direct(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q, body: Bytes) -> Response {
    let token = match gate(&inner, &headers, &q, "POST /graph/me/messages", true) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let normalize = |u: &str| if u.starts_with("user:") { u.to_string() } else { format!("user:{u}") };
    respond(parse(&body).and_then(|b| {
        with_group(&inner, &token, |g| {
            let recipient = &b["recipient"];
            let (many, users): (bool, Vec<String>) = if let Some(list) = recipient["user_ids"].as_array() {
                (true, list.iter().filter_map(Value::as_str).map(normalize).collect())
            } else if let Some(u) = recipient["user_id"].as_str() {
                (false, vec![normalize(u)])
            } else {
                return Err(OkError::param("recipient.user_id or recipient.user_ids is required"));
            };
            let mut success = Vec::new();
            let mut chat_ids = Vec::new();
            let mut mids = Vec::new();
            for u in users {
                let allowed = g.people.get(&u).is_some_and(|p| p.allowed);
                match g.dialog_of(&u).filter(|_| allowed) {
                    Some(chat) => {
                        mids.push(post_message(g, "graph.user.messages", &chat, &b["message"])?);
                        success.push(json!(true));
                        chat_ids.push(json!(chat));
                    }
                    None if many => {
                        success.push(json!(false));
                        chat_ids.push(Value::Null);
                    }
                    None => {
                        return Err(OkError::new(
                            10,
                            "PERMISSION_DENIED : user has not allowed messages from the group",
                        ))
                    }
                }
            }
            if many {
                Ok(json!({"success": success, "chat_ids": chat_ids}))
            } else {
                Ok(json!({"success": true, "chat_id": chat_ids[0], "message_id": mids[0]}))
            }
        })
    }))
}

/// `POST /graph/{chat_id}/answer?callbackId=` with a message (apiok.ru graph.chat.answer;
/// the path is `/graph/<chat>/answer`, not `/graph/me/answer`).
async fn answer(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(chat_id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let token = match gate(&inner, &headers, &q, "POST /graph/{chat_id}/answer", true) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let callback_id = q.get("callbackId").cloned().unwrap_or_default();
    respond(parse(&body).and_then(|b| {
        with_group(&inner, &token, |g| {
            let (pressed_in, at) =
                g.presses.get(&callback_id).cloned().ok_or_else(|| OkError::param("callbackId is invalid"))?;
            if pressed_in != chat_id {
                return Err(OkError::param("callbackId does not belong to this chat"));
            }
            if b["message"].is_null() {
                return Err(OkError::param("message is required"));
            }
            let (text, _) = check_message(g, &b["message"])?;
            g.presses.remove(&callback_id);
            g.answers.push(CallbackAnswer { callback_id, chat_id, text, after: at.elapsed() });
            Ok(json!({"success": true}))
        })
    }))
}

/// `GET /graph/me/chat/{chat_id}` (apiok/documentation graph.user.chat).
async fn chat_info(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(chat_id): Path<String>,
    Query(q): Q,
) -> Response {
    let token = match gate(&inner, &headers, &q, "GET /graph/me/chat/{chat_id}", false) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    respond(with_group(&inner, &token, |g| {
        let chat = g.chats.get(&chat_id).ok_or_else(|| OkError::new(300, "NOT_FOUND : chat not found"))?;
        let kind = if chat.user.is_some() { "DIALOG" } else { "GROUP_CHAT" };
        Ok(
            json!({"type": kind, "status": "ACTIVE", "title": chat.title, "chat_id": chat_id, "group_id": format!("group:{}", g.id), "lastEventTime": now_ms()}),
        )
    }))
}

/// `GET /graph/me/fileUploadUrl?type=` → `{url, token}` ([3P] OK bot clients: the token to
/// attach comes with the URL; the upload host's own answer is [UNVERIFIED]).
async fn upload_url(State(inner): State<Arc<Inner>>, headers: HeaderMap, Query(q): Q) -> Response {
    let token = match gate(&inner, &headers, &q, "GET /graph/me/fileUploadUrl", false) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let kind = q.get("type").cloned().unwrap_or_else(|| "FILE".into());
    let base = inner.base.clone();
    respond(with_group(&inner, &token, |g| {
        if !matches!(kind.as_str(), "IMAGE" | "VIDEO" | "AUDIO" | "FILE") {
            return Err(OkError::param("type must be IMAGE, VIDEO, AUDIO or FILE"));
        }
        let n = g.next_seq();
        let slot = format!("{}s{n}", g.id);
        let attach = format!("okfile{}_{n}", g.id);
        g.uploads.insert(slot.clone(), (kind.clone(), attach.clone(), None));
        Ok(json!({"url": format!("{base}/upload/{slot}"), "token": attach}))
    }))
}

/// The upload host: one multipart file in the field `file` ([3P] OK bot clients).
async fn upload(State(inner): State<Arc<Inner>>, Path(slot): Path<String>, mut form: Multipart) -> Response {
    let mut file = None;
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("file") {
            file = field.bytes().await.ok();
        }
    }
    let Some(bytes) = file else {
        return (StatusCode::BAD_REQUEST, "no file in the form field \"file\"").into_response();
    };
    let mut world = inner.world();
    let Some(entry) = world.groups.values_mut().find_map(|g| g.uploads.get_mut(&slot)) else {
        return (StatusCode::NOT_FOUND, "unknown upload url").into_response();
    };
    entry.2 = Some(bytes);
    Json(json!({"token": entry.1})).into_response()
}

async fn download(State(inner): State<Arc<Inner>>, Path(token): Path<String>) -> Response {
    let world = inner.world();
    for g in world.groups.values() {
        let found = g
            .files
            .get(&token)
            .cloned()
            .or_else(|| g.uploads.values().find(|(_, t, _)| *t == token).and_then(|(_, _, b)| b.clone()));
        if let Some(b) = found {
            return (StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], b).into_response();
        }
    }
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// Delivers an event to every subscription: a JSON POST that must get HTTP 200 within 5 s,
/// else it is tried again (graph.user.subscribe). No signature or secret is sent: none is
/// documented. Retries double from the configured first delay.
pub(crate) fn push(inner: &Arc<Inner>, token: &str, event: Value, urls: Vec<String>) {
    for url in urls {
        let inner = inner.clone();
        let token = token.to_string();
        let event = event.clone();
        tokio::spawn(async move {
            let (mut wait, max) = {
                let w = inner.world();
                (w.retry_first, w.max_retries)
            };
            let kind = event["webhookType"].as_str().unwrap_or_default().to_string();
            for attempt in 1..=max + 1 {
                if *inner.stop.borrow() {
                    return;
                }
                let Ok(_permit) = inner.pushing.acquire().await else { return };
                let status = inner
                    .http
                    .post(&url)
                    .header(header::CONTENT_TYPE.as_str(), "application/json;charset=utf-8")
                    .body(event.to_string())
                    .send()
                    .await
                    .ok()
                    .map(|r| r.status().as_u16());
                if let Some(g) = inner.world().groups.get_mut(&token) {
                    g.attempts.push(crate::WebhookAttempt {
                        url: url.clone(),
                        webhook_type: kind.clone(),
                        status,
                        attempt,
                        at: Instant::now(),
                    });
                }
                if status == Some(200) {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = inner.stopping() => return,
                }
                wait *= 2;
            }
        });
    }
}
