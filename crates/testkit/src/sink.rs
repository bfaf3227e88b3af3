//! An HTTP endpoint that records every request okno makes to it, checks `X-Okno-Signature`,
//! and answers as the test tells it to (e.g. 500 twice, then 200).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::Value;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub raw: Bytes,
    pub body: Value,
    /// Whether `X-Okno-Signature` matched the sink's secret.
    pub signature_ok: bool,
    /// The status the sink answered.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Inner {
    secret: String,
    received: Vec<Received>,
    /// Statuses to answer, in order; when empty, `default_status`.
    script: VecDeque<u16>,
    default_status: u16,
    delay: Duration,
    /// Files served to GET requests, by path.
    files: HashMap<String, (String, Vec<u8>)>,
}

/// A recording HTTP endpoint on 127.0.0.1.
#[derive(Clone)]
pub struct Sink {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Sink {
    /// Starts a sink that checks signatures made with `secret` and answers 200.
    pub async fn start(secret: &str) -> Sink {
        let inner =
            Arc::new(Mutex::new(Inner { secret: secret.to_string(), default_status: 200, ..Default::default() }));
        let app = Router::new().fallback(any(record)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("sink address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink { url: format!("http://{addr}"), inner }
    }

    /// Answers these statuses to the next requests, then the default.
    pub fn script(&self, statuses: &[u16]) {
        self.lock().script.extend(statuses.iter().copied());
    }

    /// The status answered once the script is used up.
    pub fn answer(&self, status: u16) {
        self.lock().default_status = status;
    }

    /// Waits this long before answering each request.
    pub fn delay(&self, d: Duration) {
        self.lock().delay = d;
    }

    /// Serves `data` at `path` to GET requests (for attachment downloads).
    pub fn serve_file(&self, path: &str, mime: &str, data: &[u8]) -> String {
        self.lock().files.insert(path.to_string(), (mime.to_string(), data.to_vec()));
        format!("{}{path}", self.url)
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Requests answered with 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| (200..300).contains(&r.answered)).collect()
    }

    /// Waits until at least `n` requests were answered with 2xx.
    pub async fn wait_accepted(&self, n: usize, secs: u64) -> Vec<Received> {
        crate::eventually(secs, || async {
            let got = self.accepted();
            (got.len() >= n).then_some(got)
        })
        .await
        .unwrap_or_else(|| panic!("the sink accepted {} requests, expected {n} within {secs}s", self.accepted().len()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn record(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    if method == Method::GET {
        let file = inner.lock().ok().and_then(|i| i.files.get(uri.path()).cloned());
        return match file {
            Some((mime, data)) => ([("content-type", mime)], data).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    let delay = inner.lock().map(|i| i.delay).unwrap_or_default();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    let signature_ok = headers
        .get("x-okno-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| okno_domain::signing::verify(inner.secret.as_bytes(), &raw, sig));
    let status = inner.script.pop_front().unwrap_or(inner.default_status);
    let headers =
        headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string()))).collect();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    inner.received.push(Received { path: uri.path().to_string(), headers, raw, body, signature_ok, answered: status });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR).into_response()
}
