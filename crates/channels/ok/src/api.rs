//! A thin client for OK's Graph API bot methods (`https://api.ok.ru/graph/...`): the group's
//! token goes as the query parameter `access_token`, every POST says
//! `Content-Type: application/json;charset=utf-8`, and a refusal is OK's REST error
//! envelope `{"error_code", "error_msg", "error_data"}` (answered with HTTP 200).

use std::time::Duration;

use okno_channel::http::{describe, SafeClient};
use serde_json::Value;

/// OK's own address.
pub const DEFAULT_API_BASE: &str = "https://api.ok.ru";

/// OK's error codes okno tells apart (OK's REST error list).
pub mod codes {
    /// `UNKNOWN`: a passing failure on OK's side.
    pub const UNKNOWN: i64 = 1;
    /// `SERVICE`: the service is unavailable for a while.
    pub const SERVICE: i64 = 2;
    /// `FLOOD_BLOCKED`: too many calls.
    pub const FLOOD_BLOCKED: i64 = 8;
    /// `PERMISSION_DENIED`: the person has not allowed the group's messages.
    pub const PERMISSION_DENIED: i64 = 10;
    /// `PARAM_API_KEY` / `PARAM_SESSION_EXPIRED` and others about the key: the token is bad.
    pub const PARAM_SESSION_EXPIRED: i64 = 102;
    /// `PARAM_SESSION_KEY`-family codes (101–104) all mean the key was refused.
    pub const TOKEN: std::ops::RangeInclusive<i64> = 101..=104;
    /// `NOT_FOUND`: no such chat or message.
    pub const NOT_FOUND: i64 = 300;
}

/// What went wrong with a Graph API call.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// OK answered with its error envelope.
    Ok { code: i64, message: String },
    /// An HTTP status other than 200 (a proxy's 502, OK's own 5xx, a 429).
    Status { status: u16, body: String, retry_after: Option<Duration> },
    /// No answer (connection, timeout) or one that is not JSON.
    Network(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Ok { code, message } => write!(f, "{message} (OK error {code})"),
            ApiError::Status { status, body, .. } => write!(f, "HTTP {status}: {body}"),
            ApiError::Network(reason) => f.write_str(reason),
        }
    }
}

/// One group's Graph API.
#[derive(Clone)]
pub struct GraphApi {
    http: SafeClient,
    base: String,
    token: String,
}

impl GraphApi {
    pub fn new(http: SafeClient, base: &str, token: &str) -> Self {
        GraphApi { http, base: base.trim_end_matches('/').to_string(), token: token.to_string() }
    }

    /// `{base}/graph/{path}?access_token=…&{query}`; the query's values are encoded here.
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<String, ApiError> {
        let mut url = url::Url::parse(&format!("{}/graph/{path}", self.base))
            .map_err(|e| ApiError::Network(format!("`{}` is not a usable API address: {e}", self.base)))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("access_token", &self.token);
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url.to_string())
    }

    /// The token rides in every URL; error texts (which reach logs and messages) never carry it.
    fn redact(&self, text: &str) -> String {
        if self.token.is_empty() {
            return text.to_string();
        }
        text.replace(&self.token, "<token>")
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, ApiError> {
        let url = self.url(path, query)?;
        let req = self.http.get(&url).map_err(|e| ApiError::Network(self.redact(&e.message)))?;
        self.answer(req.send().await).await
    }

    pub async fn post(&self, path: &str, query: &[(&str, &str)], body: &Value) -> Result<Value, ApiError> {
        let url = self.url(path, query)?;
        let req = self
            .http
            .post(&url)
            .map_err(|e| ApiError::Network(self.redact(&e.message)))?
            .header(reqwest::header::CONTENT_TYPE, "application/json;charset=utf-8")
            .body(body.to_string());
        self.answer(req.send().await).await
    }

    async fn answer(&self, sent: reqwest::Result<reqwest::Response>) -> Result<Value, ApiError> {
        let resp = sent.map_err(|e| ApiError::Network(self.redact(&describe(&e))))?;
        let status = resp.status().as_u16();
        let retry_after = okno_channel::http::retry_after(resp.headers());
        let body = resp.bytes().await.map_err(|e| ApiError::Network(self.redact(&describe(&e))))?;
        let text = || self.redact(&String::from_utf8_lossy(&body[..body.len().min(300)]));
        if status != 200 {
            return Err(ApiError::Status { status, body: text(), retry_after });
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::Network(format!("an answer that is not JSON ({e}): {}", text())))?;
        if let Some(code) = v.get("error_code").and_then(Value::as_i64) {
            let message = v.get("error_msg").and_then(Value::as_str).unwrap_or("unknown error");
            return Err(ApiError::Ok { code, message: self.redact(message) });
        }
        Ok(v)
    }
}
