//! The Graph API paths the simulator serves, and webhook pushes.
//!
//! ```text
//! GET  /v21.0/{phone_number_id}?fields=…   the number (display_phone_number, verified_name)
//! GET  /v21.0/{media_id}                   a media file's short-lived URL
//! POST /v21.0/{phone_number_id}/messages   send (text, media, interactive, template) or mark read
//! POST /v21.0/{phone_number_id}/media      upload (multipart)
//! GET  /media-download/{media_id}          the file itself (bearer token required)
//! ```
//!
//! Refusals travel as ready `Response`s (Meta's error body) straight out of the handlers; their
//! size on the error path does not matter in a test simulator.

#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::{sign, Inner, Number};
use crate::{Fault, Push, Sent, WindowMode};

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/{version}/{id}", get(object))
        .route("/{version}/{id}/messages", post(messages))
        .route("/{version}/{id}/media", post(upload))
        .route("/media-download/{id}", get(download))
        .fallback(|| async { meta(400, 100, "Unsupported request", "Unknown path").into_response() })
        .layer(DefaultBodyLimit::max(110 * 1024 * 1024))
        .with_state(inner)
}

/// Meta's error body (research §2.8): `message` carries `(#code) title`.
fn meta(status: u16, code: i64, title: &str, details: &str) -> Response {
    let body = json!({"error": {
        "message": format!("(#{code}) {title}"),
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details},
        "fbtrace_id": "AbCdEfSimTrace",
    }});
    (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), Json(body)).into_response()
}

fn fault_response(f: Fault) -> Response {
    match f {
        Fault::Status(500) => {
            meta(500, 131000, "Something went wrong", "Message failed to send due to an unknown error.")
        }
        Fault::Status(s) if s >= 500 => meta(s, 2, "Service temporarily unavailable", "Try again later."),
        Fault::Status(s) => meta(s, 100, "Invalid parameter", "Simulated failure."),
        Fault::Throughput => throughput(),
        Fault::PairRate => pair_rate(),
        Fault::Meta { status, code, title, details } => meta(status, code, &title, &details),
    }
}

fn throughput() -> Response {
    meta(429, 130429, "Rate limit hit", "Cloud API message throughput has been reached.")
}

fn pair_rate() -> Response {
    meta(
        400,
        131056,
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
    )
}

fn invalid(details: &str) -> Response {
    meta(400, 131009, "Parameter value is not valid", details)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

fn bad_token() -> Response {
    meta(401, 190, "Invalid OAuth access token - Cannot parse access token", "")
}

/// Runs `f` on the number the request's token may use, checking the path's id names it.
fn authorised<T>(
    inner: &Inner,
    headers: &HeaderMap,
    f: impl FnOnce(&mut Number) -> Result<T, Response>,
) -> Result<T, Response> {
    let token = bearer(headers).ok_or_else(bad_token)?;
    let mut w = inner.world();
    let n = w.by_token(&token).ok_or_else(bad_token)?;
    f(n)
}

fn no_object(id: &str) -> Response {
    let shown: String = id.chars().take(40).collect();
    meta(
        400,
        100,
        "Invalid parameter",
        &format!("Unsupported get request. Object with ID '{shown}' does not exist, cannot be loaded due to missing permissions, or does not support this operation"),
    )
}

async fn object(
    State(inner): State<Arc<Inner>>,
    Path((_v, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let base = inner.base.clone();
    let r = authorised(&inner, &headers, |n| {
        if let Some(f) = n.faults.pop_front() {
            return Err(fault_response(f));
        }
        if id == n.id_hint {
            return Ok(json!({"display_phone_number": n.display, "verified_name": n.verified_name, "id": n.id_hint,
                             "quality_rating": "GREEN"}));
        }
        match n.media.get(&id) {
            Some(m) => Ok(json!({"messaging_product": "whatsapp", "url": format!("{base}/media-download/{id}"),
                "mime_type": m.mime, "sha256": crate::state::sha256_b64(&m.data), "file_size": m.data.len().to_string(), "id": id})),
            None => Err(no_object(&id)),
        }
    });
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e,
    }
}

async fn download(State(inner): State<Arc<Inner>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let r = authorised(&inner, &headers, |n| {
        n.media.get(&id).map(|m| (m.mime.clone(), m.data.clone())).ok_or_else(|| no_object(&id))
    });
    match r {
        Ok((mime, data)) => ([(axum::http::header::CONTENT_TYPE, mime)], data).into_response(),
        Err(e) => e,
    }
}

async fn upload(
    State(inner): State<Arc<Inner>>,
    Path((_v, id)): Path<(String, String)>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let checked = authorised(&inner, &headers, |n| {
        if id != n.id_hint {
            return Err(no_object(&id));
        }
        match n.faults.pop_front() {
            Some(f) => Err(fault_response(f)),
            None => Ok(()),
        }
    });
    if let Err(e) = checked {
        return e;
    }
    let (mut product, mut file) = (None, None);
    while let Ok(Some(field)) = form.next_field().await {
        match field.name().unwrap_or("") {
            "messaging_product" => product = field.text().await.ok(),
            "file" => {
                let name = field.file_name().unwrap_or("file").to_string();
                let mime = field.content_type().unwrap_or("application/octet-stream").to_string();
                if let Ok(data) = field.bytes().await {
                    file = Some((name, mime, data));
                }
            }
            _ => {}
        }
    }
    if product.as_deref() != Some("whatsapp") {
        return meta(400, 100, "Invalid parameter", "The parameter messaging_product is required.");
    }
    let Some((name, mime, data)) = file else {
        return meta(400, 100, "Invalid parameter", "The parameter file is required.");
    };
    let media_id =
        inner.world().by_token(&bearer(&headers).unwrap_or_default()).map(|n| n.store_media(&data, &mime, &name, true));
    Json(json!({"id": media_id})).into_response()
}

fn chars(v: &Value) -> usize {
    v.as_str().map(|s| s.chars().count()).unwrap_or(0)
}

/// The interactive limits (research §2.6); `Err` is Meta's 131009.
fn check_interactive(i: &Value) -> Result<String, Response> {
    let body = i["body"]["text"].as_str().unwrap_or("");
    if body.is_empty() {
        return Err(meta(
            400,
            131008,
            "Required parameter is missing",
            "The parameter interactive['body']['text'] is required.",
        ));
    }
    if body.chars().count() > 1024 {
        return Err(invalid("Param interactive['body']['text'] must be at most 1024 characters long."));
    }
    match i["type"].as_str() {
        Some("button") => {
            let buttons = i["action"]["buttons"].as_array().cloned().unwrap_or_default();
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(invalid("Param interactive['action']['buttons'] must have between 1 and 3 elements."));
            }
            let mut titles = std::collections::HashSet::new();
            for b in &buttons {
                let t = chars(&b["reply"]["title"]);
                if t == 0 || t > 20 {
                    return Err(invalid("Param interactive['action']['buttons'][]['reply']['title'] must be between 1 and 20 characters long."));
                }
                if !titles.insert(b["reply"]["title"].as_str().unwrap_or("").to_string()) {
                    return Err(invalid("Button titles must be unique within a message."));
                }
                let id = chars(&b["reply"]["id"]);
                if id == 0 || id > 256 {
                    return Err(invalid("Param interactive['action']['buttons'][]['reply']['id'] must be between 1 and 256 characters long."));
                }
            }
        }
        Some("list") => {
            let button = chars(&i["action"]["button"]);
            if button == 0 || button > 20 {
                return Err(invalid("Param interactive['action']['button'] must be between 1 and 20 characters long."));
            }
            let sections = i["action"]["sections"].as_array().cloned().unwrap_or_default();
            if sections.is_empty() || sections.len() > 10 {
                return Err(invalid("Param interactive['action']['sections'] must have between 1 and 10 elements."));
            }
            let rows: Vec<Value> =
                sections.iter().flat_map(|s| s["rows"].as_array().cloned().unwrap_or_default()).collect();
            if rows.is_empty() || rows.len() > 10 {
                return Err(invalid("Total row count exceed max allowed count: 10"));
            }
            for r in &rows {
                let (t, id, d) = (chars(&r["title"]), chars(&r["id"]), chars(&r["description"]));
                if t == 0 || t > 24 {
                    return Err(invalid("Param interactive['action']['sections'][]['rows'][]['title'] must be between 1 and 24 characters long."));
                }
                if id == 0 || id > 200 {
                    return Err(invalid("Param interactive['action']['sections'][]['rows'][]['id'] must be between 1 and 200 characters long."));
                }
                if d > 72 {
                    return Err(invalid("Param interactive['action']['sections'][]['rows'][]['description'] must be at most 72 characters long."));
                }
            }
        }
        Some("cta_url") => {
            let p = &i["action"]["parameters"];
            let t = chars(&p["display_text"]);
            if t == 0 || t > 20 || !p["url"].as_str().is_some_and(|u| u.starts_with("http")) {
                return Err(invalid("Param interactive['action']['parameters'] needs display_text (1-20 characters) and an http(s) url."));
            }
        }
        _ => return Err(meta(400, 131051, "Unsupported message type", "Unsupported interactive type.")),
    }
    Ok(body.to_string())
}

fn accepted(to: &str, id: &str, template: bool) -> Response {
    let mut m = json!({"id": id});
    if template {
        m["message_status"] = json!("accepted");
    }
    Json(json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}], "messages": [m]}))
        .into_response()
}

/// What one accepted send makes: the statuses to push afterwards.
type After = Vec<Value>;

fn send(n: &mut Number, body: &Value) -> Result<(Response, After), Response> {
    if let Some(f) = n.faults.pop_front() {
        return Err(fault_response(f));
    }
    if body["messaging_product"] != "whatsapp" {
        return Err(meta(400, 100, "Invalid parameter", "The parameter messaging_product is required."));
    }
    // Mark as read (official Node SDK `messages.status`).
    if body["status"] == "read" {
        let id = body["message_id"].as_str().unwrap_or("");
        if id.is_empty() {
            return Err(meta(400, 100, "Invalid parameter", "The parameter message_id is required."));
        }
        n.read_marks.push(id.to_string());
        return Ok((Json(json!({"success": true})).into_response(), Vec::new()));
    }
    let to: String = body["to"].as_str().unwrap_or("").trim_start_matches('+').to_string();
    if to.is_empty() || !to.bytes().all(|b| b.is_ascii_digit()) {
        return Err(meta(400, 100, "Invalid parameter", "The parameter to is not a valid phone number."));
    }
    let kind = body["type"].as_str().unwrap_or("text").to_string();
    let shown = match kind.as_str() {
        "text" => {
            let t = body["text"]["body"].as_str().unwrap_or("");
            if t.is_empty() {
                return Err(meta(
                    400,
                    131008,
                    "Required parameter is missing",
                    "The parameter text['body'] is required.",
                ));
            }
            if t.chars().count() > 4096 {
                return Err(meta(
                    400,
                    100,
                    "Invalid parameter",
                    "Param text['body'] must be at most 4096 characters long.",
                ));
            }
            Some(t.to_string())
        }
        "image" | "video" | "audio" | "document" | "sticker" => {
            let m = &body[kind.as_str()];
            match m["id"].as_str() {
                Some(id) if n.media.contains_key(id) => {}
                Some(_) => return Err(meta(400, 100, "Invalid parameter", "The media id is not valid.")),
                None if m["link"].is_string() => {}
                None => {
                    return Err(meta(
                        400,
                        131008,
                        "Required parameter is missing",
                        "A media message needs an id or a link.",
                    ))
                }
            }
            if chars(&m["caption"]) > 1024 {
                return Err(meta(400, 100, "Invalid parameter", "Param caption must be at most 1024 characters long."));
            }
            m["caption"].as_str().map(str::to_string)
        }
        "interactive" => Some(check_interactive(&body["interactive"])?),
        "template" => {
            let t = &body["template"];
            let key = (
                t["name"].as_str().unwrap_or("").to_string(),
                t["language"]["code"].as_str().unwrap_or("").to_string(),
            );
            let Some(expected) = n.templates.get(&key).copied() else {
                return Err(meta(
                    404,
                    132001,
                    "Template name does not exist in the translation",
                    &format!("template name ({}) does not exist in {}", key.0, key.1),
                ));
            };
            let params: Vec<String> = t["components"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["type"] == "body")
                .flat_map(|c| c["parameters"].as_array().cloned().unwrap_or_default())
                .map(|p| p["text"].as_str().unwrap_or("").to_string())
                .collect();
            if params.len() != expected {
                return Err(meta(400, 132000, "Number of parameters does not match the expected number of params",
                    &format!("body: number of localizable_params ({}) does not match the expected number of params ({expected})", params.len())));
            }
            Some(format!("template:{}({})", key.0, params.join("|")))
        }
        _ => return Err(meta(400, 131051, "Unsupported message type", "Message type is not currently supported.")),
    };
    let person_ok = n.people.get(&to).is_some_and(|p| !p.left);
    if !person_ok {
        n.refused.push((to.clone(), 131026));
        return Err(meta(
            400,
            131026,
            "Message Undeliverable",
            "Unable to deliver message. The recipient may not be a WhatsApp user.",
        ));
    }
    let mut after = Vec::new();
    let outside = kind != "template" && !n.window_open(&to);
    if outside && n.window_mode == WindowMode::Refuse {
        n.refused.push((to.clone(), 131047));
        return Err(meta(400, 131047, "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number."));
    }
    if let Some(code) = n.over_limit(&to) {
        n.refused.push((to.clone(), code));
        return Err(if code == 130429 { throughput() } else { pair_rate() });
    }
    let id = n.next_wamid();
    n.recipients.insert(id.clone(), to.clone());
    if outside {
        after.push(n.status_item(&id, "failed", Some((131047, "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number."))));
    } else {
        for s in n.auto_statuses.clone() {
            after.push(n.status_item(&id, &s, None));
        }
    }
    if !outside {
        n.sent.push(Sent {
            id: id.clone(),
            to: to.clone(),
            kind: kind.clone(),
            body: body.clone(),
            shown,
            at: Instant::now(),
        });
    }
    if n.webhook.is_none() {
        after.clear();
    }
    Ok((accepted(&to, &id, kind == "template"), after))
}

async fn messages(
    State(inner): State<Arc<Inner>>,
    Path((_v, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return meta(400, 100, "Invalid parameter", "The request body is not JSON.");
    };
    let r = authorised(&inner, &headers, |n| {
        if id != n.id_hint {
            return Err(no_object(&id));
        }
        send(n, &body)
    });
    match r {
        Ok((resp, after)) => {
            if !after.is_empty() {
                let inner = inner.clone();
                let delay = inner.world().numbers.values().next().map(|n| n.status_delay).unwrap_or_default();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let body = envelope(&inner, json!({"statuses": after}));
                    push(&inner, body.to_string().into_bytes()).await;
                });
            }
            resp
        }
        Err(e) => e,
    }
}

fn envelope(inner: &Inner, mut value: Value) -> Value {
    let (id, display) = {
        let w = inner.world();
        w.numbers.values().next().map(|n| (n.id_hint.clone(), n.display_digits())).unwrap_or_default()
    };
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({"display_phone_number": display, "phone_number_id": id});
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}]})
}

/// POSTs signed bytes to the callback URL; a non-200 answer is retried twice (Meta retries
/// failed deliveries, research §2.3, on a far longer schedule). `None` without a callback.
pub(crate) async fn push(inner: &Inner, body: Vec<u8>) -> Option<u16> {
    let (url, secret) = {
        let w = inner.world();
        let n = w.numbers.values().next()?;
        (n.webhook.clone()?, n.app_secret.clone())
    };
    let signature = sign(secret.as_bytes(), &body);
    let mut last = None;
    for attempt in 1..=3u32 {
        let resp = inner
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .body(body.clone())
            .send()
            .await;
        let status = resp.ok().map(|r| r.status().as_u16());
        {
            let mut w = inner.world();
            if let Some(n) = w.numbers.values_mut().next() {
                n.pushes.push(Push {
                    url: url.clone(),
                    body: body.clone(),
                    signature: signature.clone(),
                    status,
                    attempt,
                });
            }
        }
        last = status;
        if status == Some(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
    }
    last
}

/// Pushes `(wamid, status)` items in requests of `per_request`, `parallel` at a time.
pub(crate) async fn push_statuses(
    inner: &Arc<Inner>,
    statuses: &[(String, String)],
    per_request: usize,
    parallel: usize,
) -> usize {
    let bodies: Vec<Vec<u8>> = statuses
        .chunks(per_request)
        .map(|chunk| {
            let items: Vec<Value> = {
                let w = inner.world();
                let Some(n) = w.numbers.values().next() else { return Vec::new() };
                chunk.iter().map(|(id, s)| n.status_item(id, s, None)).collect()
            };
            envelope(inner, json!({"statuses": items})).to_string().into_bytes()
        })
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(bodies.into_iter()));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..parallel {
        let (inner, queue, failed) = (inner.clone(), queue.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some(body) = next else { break };
                if push(&inner, body).await != Some(200) {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    failed.load(std::sync::atomic::Ordering::Relaxed)
}
