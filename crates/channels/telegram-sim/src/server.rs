//! The HTTP side: `/bot<token>/<method>` and `/file/bot<token>/<file_path>`, the response
//! envelope, and the `getUpdates` long poll.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::methods::{self, Answer, ApiError, Reply};
use crate::params::{self, Params, BODY_LIMIT};
use crate::state::Inner;
use crate::webhook;

/// Longest long poll the server allows (`LONG_POLL_MAX_TIMEOUT`).
const MAX_POLL_SECS: i64 = 50;

/// The simulator's routes: everything goes through one handler that reads the path the way
/// the Bot API server does.
pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new().fallback(handle).layer(DefaultBodyLimit::max(BODY_LIMIT)).with_state(inner)
}

/// The envelope: `{"ok":true,"result":…}` or `{"ok":false,"error_code":N,"description":…}`;
/// the HTTP status equals `error_code`, and a 429 carries `Retry-After`.
fn respond(answer: Answer) -> Response {
    match answer {
        Ok(Reply { result, description }) => {
            let mut body = json!({"ok": true, "result": result});
            if let Some(d) = description {
                body["description"] = d.into();
            }
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(e) => {
            let mut body = json!({"ok": false, "error_code": e.code, "description": e.description});
            if let Some(p) = &e.parameters {
                body["parameters"] = p.clone();
            }
            let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = (status, Json(body)).into_response();
            if let Some(secs) = e.parameters.as_ref().and_then(|p| p["retry_after"].as_u64()) {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            response
        }
    }
}

/// The server's token check: not starting with `0`, at most 80 characters, with a `:`.
pub(crate) fn token_well_formed(token: &str) -> bool {
    !token.is_empty() && !token.starts_with('0') && token.len() <= 80 && token.contains(':')
}

/// Whether the request names the simulator by its own address (`127.0.0.1:PORT`, as
/// [`crate::TelegramSim::api_base`] gives it): any other name is a page of another site whose
/// name was pointed at 127.0.0.1 (DNS rebinding), and the bots' tokens are no secret.
fn addressed_to(inner: &Inner, req: &Request) -> bool {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    let host = host.or_else(|| req.uri().authority().map(|a| a.as_str()));
    host.is_some_and(|h| h.eq_ignore_ascii_case(&inner.addr.to_string()))
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    if !addressed_to(&inner, &req) {
        return respond(Err(ApiError::new(403, "Forbidden: the simulator answers only at its own address")));
    }
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/file/bot") {
        return download(&inner, rest);
    }
    let Some(rest) = path.strip_prefix("/bot") else {
        return respond(Err(ApiError::new(404, "Not Found")));
    };
    let (token, method) = rest.split_once('/').unwrap_or((rest, ""));
    if !token_well_formed(token) {
        return respond(Err(ApiError::new(401, "Unauthorized: invalid token specified")));
    }
    let method = method.to_ascii_lowercase();
    {
        let mut world = inner.world();
        let Some(bot) = world.bots.get_mut(token) else {
            return respond(Err(ApiError::new(401, "Unauthorized")));
        };
        *bot.calls.entry(method.clone()).or_default() += 1;
        if let Some(at) = bot.faults.iter().position(|(m, _)| *m == method) {
            if let Some((_, fault)) = bot.faults.remove(at) {
                return respond(Err(fault));
            }
        }
    }
    if method.is_empty() || method.contains('/') {
        return respond(Err(ApiError::new(404, "Not Found: method not found")));
    }
    let params = match params::read(req).await {
        Ok(p) => p,
        Err(e) => return respond(Err(e)),
    };
    let answer = match method.as_str() {
        "getupdates" => get_updates(&inner, token, &params).await,
        "setwebhook" => {
            let outcome = methods::set_webhook(&mut inner.world(), token, &params);
            outcome.map(|(reply, generation)| {
                if let Some(g) = generation {
                    tokio::spawn(webhook::deliver(inner.clone(), token.to_string(), g));
                }
                reply
            })
        }
        _ => methods::call(&mut inner.world(), token, &method, &params),
    };
    respond(answer)
}

/// `GET /file/bot<token>/<file_path>`: the bytes the user sent.
fn download(inner: &Inner, rest: &str) -> Response {
    let not_found = || respond(Err(ApiError::new(404, "Not Found")));
    let Some((token, file_path)) = rest.split_once('/') else {
        return not_found();
    };
    let mut world = inner.world();
    let Some(bot) = world.bots.get_mut(token) else {
        return not_found();
    };
    let bytes = bot.files.values().find(|f| f.path == file_path).and_then(|f| f.bytes.clone());
    match bytes {
        Some(b) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], b).into_response(),
        None => not_found(),
    }
}

/// `getUpdates`: confirms by offset, returns at most `limit` updates, parks up to `timeout`
/// seconds when there are none. A newer getUpdates or a setWebhook ends a parked one with 409.
///
/// Not simulated: the real server's anti-busy-loop rules (a repeated offset within 3 s forces
/// timeout 3 or limit 1) and its 3 s delay between successive 409 answers.
async fn get_updates(inner: &Arc<Inner>, token: &str, p: &Params) -> Answer {
    let limit = p.int("limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = p.int("timeout").unwrap_or(0).clamp(0, MAX_POLL_SECS) as u64;
    let offset = p.int("offset").unwrap_or(0);
    let allowed = methods::allowed_updates(p)?;
    let (generation, mut changes) = {
        let mut world = inner.world();
        let bot = world.bot(token)?;
        if bot.webhook.is_some() {
            return Err(ApiError::conflict(
                "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            ));
        }
        if let Some(a) = allowed {
            bot.allowed_updates = Some(a);
        }
        // "An update is considered confirmed as soon as getUpdates is called with an offset
        // higher than its update_id"; a negative offset keeps only the last -offset updates;
        // an offset past anything that exists is ignored.
        if offset > 0 && offset <= bot.next_update_id {
            while bot.updates.front().is_some_and(|u| u.id < offset) {
                bot.updates.pop_front();
            }
        } else if offset < 0 {
            let keep = offset.unsigned_abs() as usize;
            while bot.updates.len() > keep {
                bot.updates.pop_front();
            }
        }
        bot.poll_generation += 1;
        // Wakes a parked poll so it can see it was superseded.
        bot.bump();
        (bot.poll_generation, bot.changed.subscribe())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        {
            let mut world = inner.world();
            let bot = world.bot(token)?;
            changes.borrow_and_update();
            if bot.poll_generation != generation {
                return Err(ApiError::conflict(
                    "terminated by other getUpdates request; make sure that only one bot instance is running",
                ));
            }
            if bot.webhook.is_some() {
                return Err(ApiError::conflict("terminated by setWebhook request"));
            }
            if !bot.updates.is_empty() || timeout == 0 {
                let result: Vec<Value> = bot.updates.iter().take(limit).map(|u| u.to_json()).collect();
                return Ok(Reply::ok(Value::Array(result)));
            }
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(Reply::ok(json!([])));
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(Reply::ok(json!([]))),
            // The server is stopping: a parked poll must not keep it up.
            _ = inner.stopping() => return Ok(Reply::ok(json!([]))),
        }
    }
}
