//! The paths the simulator serves, and webhook deliveries.
//!
//! ```text
//! GET   /api/v4/account                     the account
//! GET   /api/v4/users                       its users (204 when none)
//! GET   /api/v4/contacts                    contacts, a page (204 past the last)
//! POST  /api/v4/contacts | PATCH            contacts added | changed (an array, at most 250)
//! GET   /api/v4/contacts/{id} | PATCH       a contact, phones and e-mails in custom_fields_values
//! GET   /api/v4/tasks | POST                tasks | add tasks (an array)
//! GET   /api/v4/leads/{id}?with=contacts    a deal
//! PATCH /api/v4/leads/{id} | /api/v4/leads  a deal | several (an array, each with `id`)
//! GET   /api/v4/leads/{id}/notes            a deal's notes (204 when none)
//! POST  /api/v4/leads/{id}/notes            notes (an array)
//! GET   /api/v4/webhooks | POST             the account's webhooks | subscribe
//! ```
//!
//! Every call passes the same gate first: the account's block, the token, the limits.
//! Refusals travel as ready `Response`s out of the handlers.

#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::Router;
use serde_json::{json, Value};

use crate::{contacts, unix_now, Hook, Inner, Lead, Note, HOOK_ATTEMPTS, PER_ACCOUNT, PER_TOKEN};

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    let api = Router::new()
        .route("/api/v4/account", get(account))
        .route("/api/v4/users", get(users))
        .route("/api/v4/contacts", get(contacts::list).post(contacts::add).patch(contacts::update))
        .route("/api/v4/contacts/{id}", get(contacts::one).patch(contacts::update_one))
        .route("/api/v4/tasks", get(contacts::tasks).post(contacts::add_tasks))
        .route("/api/v4/leads/{id}", get(lead).patch(patch_lead))
        .route("/api/v4/leads", patch(patch_leads))
        .route("/api/v4/leads/{id}/notes", get(notes).post(add_notes))
        .route("/api/v4/webhooks", get(webhooks).post(subscribe))
        .route_layer(axum::middleware::from_fn_with_state(inner.clone(), gated));
    Router::new()
        .merge(api)
        .route("/oauth2/access_token", axum::routing::post(access_token))
        .fallback(|| async { problem(404, "Not Found", "no such method") })
        .with_state(inner)
}

/// The user a call acts as (the token's), for `created_by` and defaults.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Actor(pub(crate) i64);

/// Every API call passes [`gate`] before its handler.
async fn gated(
    State(inner): State<Arc<Inner>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match gate(&inner, req.headers(), req.method(), req.uri()) {
        Ok(user) => {
            req.extensions_mut().insert(Actor(user));
            next.run(req).await
        }
        Err(refused) => refused,
    }
}

/// amoCRM's error body (`application/problem+json`).
pub(crate) fn problem(status: u16, title: &str, detail: &str) -> Response {
    let body = json!({"title": title, "type": "https://httpstatus.es/".to_string() + &status.to_string(),
                      "status": status, "detail": detail});
    let mut r = (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    r
}

/// A 400 with `validation-errors` for one entity of the request.
pub(crate) fn invalid(request_id: usize, path: &str, detail: &str) -> Response {
    validation(&request_id.to_string(), "NotSupportedChoice", path, detail)
}

/// A 400 with `validation-errors`: the row's `request_id`, amoCRM's error `code`, the field's
/// `path` (`custom_fields_values.0.values.0.value`) and what is wrong.
pub(crate) fn validation(request_id: &str, code: &str, path: &str, detail: &str) -> Response {
    let body = json!({
        "validation-errors": [{"request_id": request_id,
                               "errors": [{"code": code, "path": path, "detail": detail}]}],
        "title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400, "detail": "Request validation failed"
    });
    let mut r = (StatusCode::BAD_REQUEST, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    r
}

pub(crate) fn hal(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/hal+json"));
    r
}

/// The gate every call passes: a blocked account is 403, a bad token 401, a call over the
/// limits 429 (an HTML page, as amoCRM sends); too many of those block the account.
fn gate(inner: &Inner, headers: &HeaderMap, method: &Method, uri: &Uri) -> Result<i64, Response> {
    let mut w = inner.world();
    let path = uri.path().to_string();
    let answer = |w: &mut crate::World, status: u16, r: Response| -> Response {
        w.log.push((method.to_string(), path.clone(), status));
        r
    };
    if w.blocked {
        let r = problem(403, "Forbidden", "Account is blocked for exceeding the API limits");
        return Err(answer(&mut w, 403, r));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let expired = w.expires.get(&token).is_some_and(|end| Instant::now() >= *end);
    let Some(user) = w.tokens.get(&token).copied().filter(|_| !expired) else {
        let r = problem(401, "Unauthorized", "Access token is invalid, expired or revoked");
        return Err(answer(&mut w, 401, r));
    };
    let now = Instant::now();
    let second = Duration::from_secs(1);
    let mut over = false;
    for (key, limit) in [(token.clone(), PER_TOKEN), ("account".to_string(), PER_ACCOUNT)] {
        let q = w.recent.entry(key).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= second) {
            q.pop_front();
        }
        over |= q.len() >= limit;
    }
    if over {
        w.refusals.push_back(now);
        while w.refusals.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            w.refusals.pop_front();
        }
        if w.refusals.len() >= crate::BLOCK_AFTER {
            w.blocked = true;
        }
        let page =
            "<html><head><title>429 Too Many Requests</title></head><body><h1>429 Too Many Requests</h1></body></html>";
        let mut r = (StatusCode::TOO_MANY_REQUESTS, page).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        return Err(answer(&mut w, 429, r));
    }
    w.admitted.push((token.clone(), now));
    for key in [token, "account".to_string()] {
        w.recent.entry(key).or_default().push_back(now);
    }
    w.log.push((method.to_string(), path, 200));
    Ok(user)
}

async fn account(State(inner): State<Arc<Inner>>) -> Response {
    let w = inner.world();
    hal(
        StatusCode::OK,
        json!({"id": w.account_id, "name": "ООО «Ромашка»", "subdomain": w.subdomain, "currency": "RUB",
               "amojo_id": crate::amojo::ACCOUNT_AMOJO_ID,
               "_links": {"self": {"href": format!("{}/api/v4/account", inner.base)}}}),
    )
}

async fn users(State(inner): State<Arc<Inner>>) -> Response {
    let w = inner.world();
    if w.users.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let users: Vec<&Value> = w.users.values().collect();
    hal(
        StatusCode::OK,
        json!({"_total_items": users.len(), "_page": 1, "_page_count": 1, "_embedded": {"users": users}}),
    )
}

fn lead_json(base: &str, l: &Lead, with_contacts: bool, w: &crate::World) -> Value {
    let mut v = json!({
        "id": l.id, "name": l.name, "price": l.price, "responsible_user_id": l.responsible_user_id, "group_id": 0,
        "status_id": l.status_id, "pipeline_id": l.pipeline_id, "loss_reason_id": null, "created_by": l.responsible_user_id,
        "updated_by": l.updated_by, "created_at": l.updated_at, "updated_at": l.updated_at, "closed_at": null,
        "is_deleted": false, "custom_fields_values": crate::contacts::lead_fields_json(w, l.id), "account_id": 31_337_000,
        "_links": {"self": {"href": format!("{base}/api/v4/leads/{}", l.id)}},
        "_embedded": {"tags": []},
    });
    if with_contacts {
        v["_embedded"]["contacts"] = l
            .contact_ids
            .iter()
            .enumerate()
            .map(|(i, c)| json!({"id": c, "is_main": i == 0, "_links": {"self": {"href": format!("{base}/api/v4/contacts/{c}")}}}))
            .collect();
    }
    v
}

async fn lead(
    Path(id): Path<i64>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    State(inner): State<Arc<Inner>>,
) -> Response {
    let with_contacts = q.get("with").is_some_and(|w| w.split(',').any(|x| x == "contacts"));
    let w = inner.world();
    match w.leads.get(&id) {
        Some(l) => hal(StatusCode::OK, lead_json(&inner.base, l, with_contacts, &w)),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Applies one deal's changes; `Err` is the 400 naming what is wrong.
fn apply(w: &mut crate::World, id: i64, patch: &Value, request_id: usize) -> Result<Value, Response> {
    let Some(obj) = patch.as_object() else { return Err(invalid(request_id, "", "an object is expected")) };
    let now = w.now();
    let fields = match obj.get("custom_fields_values") {
        Some(v) => Some(crate::contacts::lead_values(&w.lead_fields, v, request_id)?),
        None => None,
    };
    let pipelines = w.pipelines.clone();
    let users: Vec<i64> = w.users.keys().copied().collect();
    let Some(lead) = w.leads.get_mut(&id) else { return Err(invalid(request_id, "id", "no such deal")) };
    let mut next = lead.clone();
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("id" | "request_id" | "custom_fields_values", _) => {}
            ("name", Value::String(s)) => next.name = s.clone(),
            ("price", Value::Number(n)) => next.price = n.as_i64().unwrap_or(next.price),
            ("status_id", Value::Number(n)) => next.status_id = n.as_i64().unwrap_or(-1),
            ("pipeline_id", Value::Number(n)) => next.pipeline_id = n.as_i64().unwrap_or(-1),
            ("responsible_user_id", Value::Number(n)) => {
                let user = n.as_i64().unwrap_or(-1);
                if !users.contains(&user) {
                    return Err(invalid(request_id, "responsible_user_id", "The user is not a member of the account."));
                }
                next.responsible_user_id = user;
            }
            ("updated_by", Value::Number(n)) => next.updated_by = n.as_i64().unwrap_or(0),
            (other, _) => return Err(invalid(request_id, other, "This field is not writable or has a wrong type.")),
        }
    }
    let statuses = pipelines.get(&next.pipeline_id);
    if !statuses.is_some_and(|s| s.contains(&next.status_id)) {
        return Err(invalid(request_id, "status_id", "The value you selected is not a valid choice."));
    }
    next.updated_at = now;
    *lead = next;
    let updated_at = lead.updated_at;
    if let Some(fields) = fields {
        let values = w.lead_values.entry(id).or_default();
        for (field, vals) in fields {
            if vals.is_empty() {
                values.remove(&field);
            } else {
                values.insert(field, vals);
            }
        }
    }
    Ok(json!({"id": id, "updated_at": updated_at, "request_id": request_id.to_string()}))
}

async fn patch_lead(Path(id): Path<i64>, State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
        return problem(400, "Bad Request", "Syntax error");
    };
    let mut w = inner.world();
    match apply(&mut w, id, &patch, 0) {
        Ok(mut done) => {
            done["_links"] = json!({"self": {"href": format!("{}/api/v4/leads/{id}", inner.base)}});
            hal(StatusCode::OK, done)
        }
        Err(r) => r,
    }
}

async fn patch_leads(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&body) else {
        return problem(400, "Bad Request", "an array of deals is expected");
    };
    if items.len() > 250 {
        return problem(400, "Bad Request", "at most 250 deals a request");
    }
    let mut w = inner.world();
    let mut done = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(id) = item.get("id").and_then(Value::as_i64) else { return invalid(i, "id", "id is required") };
        match apply(&mut w, id, item, i) {
            Ok(d) => done.push(d),
            Err(r) => return r,
        }
    }
    hal(
        StatusCode::OK,
        json!({"_links": {"self": {"href": format!("{}/api/v4/leads", inner.base)}}, "_embedded": {"leads": done}}),
    )
}

async fn notes(Path(id): Path<i64>, State(inner): State<Arc<Inner>>) -> Response {
    let w = inner.world();
    let notes: Vec<Value> = w
        .notes
        .iter()
        .filter(|n| n.lead_id == id)
        .map(|n| json!({"id": n.id, "entity_id": n.lead_id, "note_type": n.note_type, "params": {"text": n.text}}))
        .collect();
    if notes.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    hal(StatusCode::OK, json!({"_page": 1, "_embedded": {"notes": notes}}))
}

async fn add_notes(Path(id): Path<i64>, State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&body) else {
        return problem(400, "Bad Request", "an array of notes is expected");
    };
    let mut w = inner.world();
    if !w.leads.contains_key(&id) {
        return invalid(0, "entity_id", "no such deal");
    }
    let mut made = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let note_type = item.get("note_type").and_then(Value::as_str).unwrap_or_default().to_string();
        let text = item.pointer("/params/text").and_then(Value::as_str).unwrap_or_default().to_string();
        if note_type != "common" && note_type != "service_message" {
            return invalid(i, "note_type", "The value you selected is not a valid choice.");
        }
        if text.trim().is_empty() {
            return invalid(i, "params.text", "This value should not be blank.");
        }
        let note_id = w.id();
        w.notes.push(Note { id: note_id, lead_id: id, note_type, text });
        made.push(json!({"id": note_id, "entity_id": id, "request_id": i.to_string()}));
    }
    hal(StatusCode::OK, json!({"_embedded": {"notes": made}}))
}

async fn webhooks(State(inner): State<Arc<Inner>>) -> Response {
    let w = inner.world();
    if w.webhooks.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let hooks: Vec<Value> = w
        .webhooks
        .iter()
        .enumerate()
        .map(|(i, (d, s))| json!({"id": i + 1, "destination": d, "settings": s, "disabled": false, "sort": 10}))
        .collect();
    hal(StatusCode::OK, json!({"_total_items": hooks.len(), "_embedded": {"webhooks": hooks}}))
}

async fn subscribe(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let destination = v.get("destination").and_then(Value::as_str).unwrap_or_default().to_string();
    let settings: Vec<String> = v
        .get("settings")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if !destination.starts_with("http") || settings.is_empty() {
        return invalid(0, "destination", "a destination URL and settings are required");
    }
    let mut w = inner.world();
    w.webhooks.retain(|(d, _)| d != &destination);
    w.webhooks.push((destination.clone(), settings.clone()));
    let id = w.webhooks.len();
    hal(
        StatusCode::OK,
        json!({"id": id, "destination": destination, "settings": settings, "disabled": false, "sort": 10}),
    )
}

/// `POST /oauth2/access_token`: an authorization code or a refresh token for a new pair.
async fn access_token(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let refused = |detail: &str| {
        let body = json!({"hint": detail, "title": "Некорректный запрос", "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
                          "status": 400, "detail": "В запросе отсутствует ряд параметров или параметры невалидны"});
        let mut r = (StatusCode::BAD_REQUEST, body.to_string()).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        r
    };
    let mut w = inner.world();
    let client = field("client_id");
    if w.integrations.get(&client) != Some(&field("client_secret")) || field("redirect_uri").is_empty() {
        return refused("Client authentication failed");
    }
    let user = match field("grant_type").as_str() {
        "authorization_code" => match w.codes.remove(&field("code")) {
            Some((c, user)) if c == client => user,
            _ => return refused("Authorization code has been revoked"),
        },
        "refresh_token" => match w.refresh.remove(&field("refresh_token")) {
            Some((c, user)) if c == client => {
                w.refreshes += 1;
                user
            }
            _ => return refused("Token has been revoked"),
        },
        _ => return refused("The authorization grant type is not supported"),
    };
    let n = w.id();
    let (access, refresh) = (format!("access-{user}-{n}"), format!("refresh-{user}-{n}"));
    let ttl = w.access_ttl;
    w.tokens.insert(access.clone(), user);
    w.expires.insert(access.clone(), Instant::now() + ttl);
    w.refresh.insert(refresh.clone(), (client, user));
    let body = json!({"token_type": "Bearer", "expires_in": ttl.as_secs(), "server_time": unix_now(),
                      "access_token": access, "refresh_token": refresh});
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Sends one webhook: up to [`HOOK_ATTEMPTS`] times, each given [`crate::HOOK_DEADLINE`],
/// until an answer 100–299.
pub(crate) async fn deliver(inner: Arc<Inner>, destination: String, body: String) {
    let index = {
        let mut w = inner.world();
        w.hooks.push(Hook { destination: destination.clone(), body: body.clone(), attempts: Vec::new() });
        w.hooks.len() - 1
    };
    for attempt in 0..HOOK_ATTEMPTS {
        if attempt > 0 {
            let pace = *inner.retry_pace.lock().unwrap_or_else(|e| e.into_inner());
            tokio::time::sleep(pace).await;
        }
        let status = match inner
            .http
            .post(&destination)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        inner.world().hooks[index].attempts.push(status);
        if (100..300).contains(&status) {
            return;
        }
    }
}
