//! The paths the portal serves, the gate every call passes, and event posts.
//!
//! ```text
//! GET|POST /rest/{user_id}/{code}/{method}[.json]   an inbound webhook's call
//! GET|POST /rest/{method}[.json]  (auth=<token>)    an application's call
//! GET|POST /oauth/token/                           the authorization server
//! ```
//!
//! A call: parameters read (query + JSON or form body) → who calls (401s) → the bucket (503)
//! → the method's time budget (429) → the method → `{"result","time"[,"next","total"]}` or
//! `{"error","error_description"}`; logged either way. Events a call fired are posted after
//! the world's lock is let go.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use crate::form;
use crate::methods::{self, fail, Caller, Fail, Reply};
use crate::{issue, unix_now, Bucket, Inner, LoggedCall, SentEvent, World};

/// An event post to make once the lock is let go.
pub(crate) struct Outgoing {
    pub(crate) event: String,
    pub(crate) url: String,
    pub(crate) body: String,
}

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/rest/{user}/{code}/{method}", get(webhook_call).post(webhook_call))
        .route("/rest/{method}", get(app_call).post(app_call))
        .route("/oauth/token/", get(token).post(token))
        .route("/oauth/token", get(token).post(token))
        .fallback(|| async { error(&fail(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")) })
        .with_state(inner)
}

async fn webhook_call(
    State(inner): State<Arc<Inner>>,
    Path((user, code, method)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&inner, Some((user, code)), &method, uri.query(), &headers, &body)
}

async fn app_call(
    State(inner): State<Arc<Inner>>,
    Path(method): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&inner, None, &method, uri.query(), &headers, &body)
}

pub(crate) fn now_f64() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The `time` object of an answer.
pub(crate) fn time_json(started: f64, reset_at: Option<i64>) -> Value {
    let finish = now_f64();
    let date = crate::iso_now();
    let mut t = json!({"start": started, "finish": finish, "duration": finish - started, "processing": finish - started,
                       "date_start": date, "date_finish": date, "operating": 0});
    if let Some(r) = reset_at {
        t["operating_reset_at"] = json!(r);
    }
    t
}

fn error(f: &Fail) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(json!({"error": f.code, "error_description": f.description}))).into_response()
}

/// Query and body as one tree: JSON when it looks like JSON, else a form.
fn read_params(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Option<Value> {
    let mut params = form::parse(query.unwrap_or_default().as_bytes())?;
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let trimmed = body.iter().position(|b| !b.is_ascii_whitespace()).map(|i| &body[i..]).unwrap_or_default();
    if json_type || trimmed.first() == Some(&b'{') {
        if !trimmed.is_empty() {
            match serde_json::from_slice::<Value>(trimmed).ok()? {
                Value::Object(m) => params.extend(m),
                _ => return None,
            }
        }
    } else {
        params.extend(form::parse(body)?);
    }
    Some(Value::Object(params))
}

/// The keys of a batch's `cmd` in the order sent: the commands run in it (the JSON tree here
/// sorts its keys).
fn cmd_order(query: Option<&str>, body: &[u8]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut add = |k: String| {
        if !keys.contains(&k) {
            keys.push(k);
        }
    };
    let json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let forms: [&[u8]; 2] = [query.unwrap_or_default().as_bytes(), if json { &[] } else { body }];
    for src in forms {
        for (k, _) in url::form_urlencoded::parse(src) {
            if let Some((key, _)) = k.strip_prefix("cmd[").and_then(|r| r.split_once(']')) {
                add(key.to_string());
            }
        }
    }
    if json {
        if let Ok(probe) = serde_json::from_slice::<Probe>(body) {
            probe.cmd.0.into_iter().for_each(add);
        }
    }
    keys
}

#[derive(serde::Deserialize)]
struct Probe {
    #[serde(default)]
    cmd: Keys,
}

/// An object's keys in order.
#[derive(Default)]
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("commands")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Keys, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Keys::default())
            }
        }
        d.deserialize_any(Visit)
    }
}

fn handle(
    inner: &Arc<Inner>,
    hook: Option<(String, String)>,
    method: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let started = now_f64();
    let method = method.trim_end_matches(".json").to_ascii_lowercase();
    let mut fx = Vec::new();
    let response = {
        let mut w = inner.world();
        let (label, outcome) = match read_params(query, headers, body) {
            Some(params) => serve(&mut w, hook, &method, &params, &cmd_order(query, body), &mut fx),
            None => (String::new(), Err(fail(400, "INVALID_REQUEST", "The request's parameters cannot be read"))),
        };
        let status = outcome.as_ref().map(|_| 200).unwrap_or_else(|f| f.status);
        w.log.push(LoggedCall { method: method.clone(), status, at: Instant::now(), caller: label });
        match outcome {
            Ok(r) => {
                let reset = w.blocked.get(&method).map(|(_, r)| *r);
                let mut v = json!({"result": r.result, "time": time_json(started, reset)});
                if let Some(n) = r.next {
                    v["next"] = json!(n);
                }
                if let Some(t) = r.total {
                    v["total"] = json!(t);
                }
                (StatusCode::OK, axum::Json(v)).into_response()
            }
            Err(f) => error(&f),
        }
    };
    post_events(inner, fx);
    response
}

/// The gate and the method; returns the caller's name for the log.
fn serve(
    w: &mut World,
    hook: Option<(String, String)>,
    method: &str,
    params: &Value,
    order: &[String],
    fx: &mut Vec<Outgoing>,
) -> (String, Result<Reply, Fail>) {
    let caller = match authenticate(w, hook, params) {
        Ok(c) => c,
        Err(f) => return (String::new(), Err(f)),
    };
    let label = caller.label.clone();
    if let Err(f) = take_from_bucket(w, &caller.key) {
        w.over_limit += 1;
        return (label, Err(f));
    }
    if let Some(f) = blocked(w, method) {
        return (label, Err(f));
    }
    let source = params.get("auth_connector").and_then(form::text);
    let outcome = if method == "batch" {
        methods::batch(w, &caller, params, order, source.as_deref(), fx)
    } else {
        methods::run(w, &caller, method, params, source.as_deref(), fx)
    };
    (label, outcome)
}

fn authenticate(w: &World, hook: Option<(String, String)>, params: &Value) -> Result<Caller, Fail> {
    let no_auth = || fail(401, "NO_AUTH_FOUND", "Wrong authorization data");
    if let Some((user, code)) = hook {
        let user: i64 = user.parse().map_err(|_| no_auth())?;
        return match w.webhooks.get(&code) {
            Some(u) if *u == user => {
                Ok(Caller { key: format!("webhook:{code}"), label: format!("webhook:{user}"), user, app: None })
            }
            _ => Err(no_auth()),
        };
    }
    let token = params.get("auth").and_then(form::text).filter(|t| !t.is_empty()).ok_or_else(no_auth)?;
    let access =
        w.access.get(&token).ok_or_else(|| fail(401, "invalid_token", "Unable to get application by token"))?;
    if Instant::now() >= access.expires {
        return Err(fail(401, "expired_token", "The access token provided has expired."));
    }
    Ok(Caller {
        key: format!("app:{}", access.client_id),
        label: format!("app:{}", access.client_id),
        user: access.user,
        app: Some(access.client_id.clone()),
    })
}

/// The leaky bucket: +1 a request, drained by Y at each whole second, at most X.
fn take_from_bucket(w: &mut World, key: &str) -> Result<(), Fail> {
    let second = unix_now().max(0) as u64;
    let limits = w.limits;
    let b = w.buckets.entry(key.to_string()).or_insert(Bucket { count: 0, second });
    let drained = second.saturating_sub(b.second) * u64::from(limits.per_second);
    b.count = b.count.saturating_sub(drained);
    b.second = second;
    if b.count + 1 > u64::from(limits.burst) {
        return Err(fail(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"));
    }
    b.count += 1;
    Ok(())
}

/// 429 while `method` is over its execution-time budget.
pub(crate) fn blocked(w: &mut World, method: &str) -> Option<Fail> {
    if let Some((calls, period)) = w.block_after.get_mut(method) {
        if *calls == 0 {
            let period = *period;
            w.block_after.remove(method);
            let reset = crate::unix_now() + period.as_secs() as i64 + 1;
            w.blocked.insert(method.to_string(), (Instant::now() + period, reset));
        } else {
            *calls -= 1;
        }
    }
    let (until, _) = *w.blocked.get(method)?;
    if Instant::now() >= until {
        w.blocked.remove(method);
        return None;
    }
    Some(fail(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."))
}

/// `/oauth/token/`: an authorization code or a refresh token for a new pair.
async fn token(State(inner): State<Arc<Inner>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = read_params(uri.query(), &headers, &body).unwrap_or(Value::Object(Map::new()));
    let field = |k: &str| params.get(k).and_then(form::text).unwrap_or_default();
    let refuse = |status: StatusCode, code: &str, description: &str| {
        (status, axum::Json(json!({"error": code, "error_description": description}))).into_response()
    };
    let mut w = inner.world();
    let client = field("client_id");
    let known = w.apps.get(&client).is_some_and(|a| a.installed && a.app.client_secret == field("client_secret"));
    if !known {
        return refuse(StatusCode::UNAUTHORIZED, "invalid_client", "Invalid client");
    }
    let user = match field("grant_type").as_str() {
        "authorization_code" => match w.codes.remove(&field("code")) {
            Some((c, user)) if c == client => user,
            _ => return refuse(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid authorization code"),
        },
        "refresh_token" => match w.refresh.remove(&field("refresh_token")) {
            Some((c, user)) if c == client => {
                w.refreshes += 1;
                user
            }
            _ => return refuse(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid refresh token"),
        },
        _ => return refuse(StatusCode::BAD_REQUEST, "invalid_request", "Unknown grant_type"),
    };
    let (access, refresh) = issue(&mut w, &client, user);
    let ttl = w.access_ttl.as_secs();
    let body = json!({"access_token": access, "client_endpoint": format!("{}/rest/", w.base), "domain": w.domain(),
                      "expires": unix_now() + ttl as i64, "expires_in": ttl, "member_id": w.member_id,
                      "refresh_token": refresh, "scope": "crm,imconnector,imopenlines,telephony,user",
                      "server_endpoint": format!("{}/rest/", w.base), "status": "L", "user_id": user});
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Posts each event once (Bitrix24 does not retry) and keeps the handler's answer.
pub(crate) fn post_events(inner: &Arc<Inner>, posts: Vec<Outgoing>) {
    if posts.is_empty() {
        return;
    }
    inner.world().pending += posts.len();
    for p in posts {
        let inner = inner.clone();
        tokio::spawn(async move {
            let status = match inner
                .http
                .post(&p.url)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(p.body.clone())
                .send()
                .await
            {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            let mut w = inner.world();
            w.sent.push(SentEvent { event: p.event, handler: p.url, body: p.body, status });
            w.pending = w.pending.saturating_sub(1);
        });
    }
}
