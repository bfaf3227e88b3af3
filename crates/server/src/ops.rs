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
