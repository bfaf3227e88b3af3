//! A thin client for the MAX Bot API and the wire types okno reads. The token goes in the
//! `Authorization` header as it is (no `Bearer`, never in the query: the platform no longer
//! takes it there). `api_base` is configurable: the platform moved hosts twice, and the tests
//! point it at the simulator.

use std::time::Duration;

use reqwest::multipart;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use okno_channel::http::{describe, FetchError, Fetched, SafeClient};

/// The platform's current API host.
pub const DEFAULT_API_BASE: &str = "https://platform-api2.max.ru";

/// Update kinds okno asks for (webhook subscriptions and long polls).
pub const UPDATE_TYPES: &[&str] = &[
    "message_created",
    "message_edited",
    "message_callback",
    "bot_started",
    "bot_stopped",
    "bot_added",
    "bot_removed",
    "user_removed",
];

/// What went wrong with a Bot API call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The platform answered with its error body `{"code", "message"}` (or `success: false`).
    #[error("{message} ({code})")]
    Max { status: u16, code: String, message: String },
    /// No usable answer (connection, timeout, a body that is not the platform's).
    #[error("{0}")]
    Network(String),
}

impl ApiError {
    /// The platform's error code (`verify.token`, `chat.denied`…), if it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Max { code, .. } => Some(code),
            ApiError::Network(_) => None,
        }
    }
}

/// One bot's API.
#[derive(Clone)]
pub struct BotApi {
    http: SafeClient,
    base: String,
    token: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    error: Option<String>,
}

impl BotApi {
    pub fn new(http: SafeClient, base: &str, token: &str) -> Self {
        Self { http, base: base.trim_end_matches('/').to_string(), token: token.to_string() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Calls `method path?query` with an optional JSON body and returns the answer's JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<Value, ApiError> {
        let mut req = self
            .http
            .request(method, &self.url(path))
            .map_err(|e| ApiError::Network(self.redact(&e.message)))?
            .header(reqwest::header::AUTHORIZATION, &self.token)
            .query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        Self::answer(req.send().await).await.map_err(|e| self.redact_error(e))
    }

    /// The token must never reach logs, messages or webhooks through an error text.
    fn redact(&self, text: &str) -> String {
        if self.token.is_empty() {
            return text.to_string();
        }
        text.replace(&self.token, "<token>")
    }

    fn redact_error(&self, e: ApiError) -> ApiError {
        match e {
            ApiError::Network(t) => ApiError::Network(self.redact(&t)),
            ApiError::Max { status, code, message } => ApiError::Max { status, code, message: self.redact(&message) },
        }
    }

    async fn answer(sent: reqwest::Result<reqwest::Response>) -> Result<Value, ApiError> {
        let resp = sent.map_err(|e| ApiError::Network(describe(&e)))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| ApiError::Network(describe(&e)))?;
        let excerpt = || String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
        if (200..300).contains(&status) {
            let v: Value = serde_json::from_slice(&body).map_err(|e| {
                ApiError::Network(format!("HTTP {status} with an unreadable body ({e}): {}", excerpt()))
            })?;
            // Mutating calls answer `SimpleQueryResult`; `success: false` on a 200 is a failure.
            if v.get("success").and_then(Value::as_bool) == Some(false) {
                let message = v.get("message").and_then(Value::as_str).unwrap_or("the platform refused").to_string();
                return Err(ApiError::Max { status, code: "success.false".into(), message });
            }
            return Ok(v);
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) if e.code.is_some() || e.message.is_some() => Err(ApiError::Max {
                status,
                code: e.code.unwrap_or_else(|| format!("http.{status}")),
                message: e.message.filter(|m| !m.is_empty()).or(e.error).unwrap_or_else(|| format!("HTTP {status}")),
            }),
            _ if status >= 500 => Err(ApiError::Max { status, code: format!("http.{status}"), message: excerpt() }),
            _ => Err(ApiError::Max {
                status,
                code: format!("http.{status}"),
                message: format!("HTTP {status}: {}", excerpt()),
            }),
        }
    }

    /// `GET /me`.
    pub async fn me(&self) -> Result<User, ApiError> {
        let v = self.call(Method::GET, "/me", &[], None, Some(Duration::from_secs(15))).await?;
        serde_json::from_value(v).map_err(|e| ApiError::Network(format!("GET /me: an unreadable bot: {e}")))
    }

    /// `GET /updates` from `marker`, long-polling up to `timeout_secs` (at most 90).
    pub async fn updates(&self, marker: Option<&str>, timeout_secs: u64) -> Result<UpdateList, ApiError> {
        let timeout = timeout_secs.min(90);
        let mut query = vec![("limit", "100".to_string()), ("timeout", timeout.to_string())];
        query.push(("types", UPDATE_TYPES.join(",")));
        if let Some(m) = marker {
            query.push(("marker", m.to_string()));
        }
        let v = self.call(Method::GET, "/updates", &query, None, Some(Duration::from_secs(timeout + 15))).await?;
        serde_json::from_value(v).map_err(|e| ApiError::Network(format!("GET /updates: an unreadable answer: {e}")))
    }

    /// Uploads bytes to an upload URL `POST /uploads` gave, in the form field `data`.
    pub async fn upload(&self, url: &str, form: multipart::Form) -> Result<Value, ApiError> {
        let req = self.http.post(url).map_err(|e| ApiError::Network(self.redact(&e.message)))?.multipart(form);
        let resp = req.send().await.map_err(|e| ApiError::Network(describe(&e)))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| ApiError::Network(describe(&e)))?;
        if !(200..300).contains(&status) {
            let parsed: Option<ErrorBody> = serde_json::from_str(&text).ok();
            return Err(ApiError::Max {
                status,
                code: parsed.as_ref().and_then(|p| p.code.clone()).unwrap_or_else(|| format!("http.{status}")),
                message: parsed.and_then(|p| p.message).unwrap_or_else(|| format!("upload: HTTP {status}")),
            });
        }
        // Video and audio answer XML (`<retval>1</retval>`): their token came with the URL.
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Downloads a file a person sent, by the URL in its attachment.
    pub async fn download(&self, url: &str, max: u64) -> Result<Fetched, FetchError> {
        self.http.fetch_limited(url, max).await
    }
}

// --- wire types (the fields okno reads) -----------------------------------------------------

/// A person or a bot.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub user_id: i64,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub is_bot: bool,
}

impl User {
    /// The name people see.
    pub fn full_name(&self) -> String {
        let first = self.first_name.as_deref().unwrap_or_default().trim();
        let last = self.last_name.as_deref().unwrap_or_default().trim();
        let joined = format!("{first} {last}").trim().to_string();
        if !joined.is_empty() {
            return joined;
        }
        self.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| format!("MAX {}", self.user_id))
    }
}

/// `GET /updates`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct UpdateList {
    #[serde(default)]
    pub updates: Vec<Value>,
    /// Where the next poll starts (`null` when there is nothing yet).
    #[serde(default)]
    pub marker: Option<Value>,
}

impl UpdateList {
    /// The marker as okno stores it: a string, whatever JSON type carried it.
    pub fn marker(&self) -> Option<String> {
        match self.marker.as_ref()? {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }
}
