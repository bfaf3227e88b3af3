//! okno's REST API as the demo's 1C calls it: over real HTTP, with the demo's API token — the
//! same calls an integrator makes, so the demo shows them working rather than going around them.

use okno_domain::{Error, ErrorKind, Result};
use serde_json::Value;

/// A client of one okno's `/api/v1`.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// An answer of the API: its status and JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body (a JSON string when it was not JSON).
    pub body: Value,
}

impl Reply {
    /// The body when the status is 2xx, else an error carrying okno's code and message.
    pub fn ok(self, what: &str) -> Result<Value> {
        if (200..300).contains(&self.status) {
            return Ok(self.body);
        }
        let code = self.body["error"]["code"].as_str().unwrap_or("unexpected_answer").to_string();
        let message =
            self.body["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| self.body.to_string());
        Err(Error::new(ErrorKind::Unprocessable, code, format!("{what}: okno answered {}: {message}", self.status)))
    }
}

impl Api {
    /// A client of the okno at `base` (`http://127.0.0.1:PORT`) using `token`.
    pub fn new(base: &str, token: &str) -> Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| Error::internal(format!("building the demo's HTTP client: {e}")))?;
        Ok(Api { http, base: base.trim_end_matches('/').to_string(), token: token.to_string() })
    }

    /// Calls `method path` with a JSON body (or a raw one with its content type).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Body<'_>>) -> Result<Reply> {
        let mut req = self.http.request(method, format!("{}/api/v1{path}", self.base)).bearer_auth(&self.token);
        match body {
            Some(Body::Json(v)) => req = req.json(v),
            Some(Body::Raw(content_type, text)) => {
                req = req.header(reqwest::header::CONTENT_TYPE, content_type).body(text.to_string())
            }
            None => {}
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Error::unavailable("okno_unreachable", format!("calling okno's {path}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok(Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.call(reqwest::Method::POST, path, Some(Body::Json(body))).await
    }

    /// `PUT path` with a raw body of `content_type`.
    pub async fn put_raw(&self, path: &str, content_type: &str, body: &str) -> Result<Reply> {
        self.call(reqwest::Method::PUT, path, Some(Body::Raw(content_type, body))).await
    }
}

enum Body<'a> {
    Json(&'a Value),
    Raw(&'a str, &'a str),
}
