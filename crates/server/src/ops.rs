//! Operations endpoints: liveness, readiness, Prometheus metrics, and request counting.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use okno_domain::{Error, ErrorKind};
use serde_json::json;

use crate::error::ApiError;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// 200 while the process runs.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when the database answers, 503 when it does not.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.engine.store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": {"code": e.code, "message": e.message}})),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let depth = state.engine.store.queue_depth().await.unwrap_or(-1);
    let body = state.engine.metrics.render(depth);
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

/// Unknown paths get the API's error shape.
pub async fn not_found(req: Request) -> ApiError {
    ApiError(Error::new(
        ErrorKind::NotFound,
        "route_not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    ))
}

/// A known path with another method gets the API's error shape too.
pub async fn method_not_allowed(req: Request) -> Response {
    let body = Json(
        json!({"error": {"code": "method_not_allowed", "message": format!("{} is not allowed on {}", req.method(), req.uri().path())}}),
    );
    (StatusCode::METHOD_NOT_ALLOWED, body).into_response()
}

/// Counts every request by method and status.
pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let resp = next.run(req).await;
    state.engine.metrics.http(&method, resp.status().as_u16());
    resp
}

/// The `Host` names (with the port) okno answers to, when the program embedding it restricts
/// them; see [`crate::Extras::allowed_hosts`].
#[derive(Debug, Clone)]
pub struct AllowedHosts(std::sync::Arc<[String]>);

impl AllowedHosts {
    /// `hosts` as a browser sends them: `127.0.0.1:8080`, `localhost:8080`, `[::1]:8080`.
    pub fn new(hosts: Vec<String>) -> AllowedHosts {
        AllowedHosts(hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect())
    }

    fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.0.contains(&host)
    }
}

/// Refuses a request whose `Host` (or, without one, the authority of its URI) is not one of
/// the allowed names — before its body is read.
pub async fn only_allowed_hosts(State(allowed): State<AllowedHosts>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
        .unwrap_or_default();
    if allowed.allows(&host) {
        return next.run(req).await;
    }
    let first = allowed.0.first().map(String::as_str).unwrap_or("");
    ApiError(Error::new(
        ErrorKind::Forbidden,
        "host_not_allowed",
        format!("this okno answers only at http://{first}/ (the address asked for was `{host}`)"),
    ))
    .into_response()
}
