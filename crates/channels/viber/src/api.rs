//! A thin client for the Viber REST Bot API: every call is a `POST {api_base}/{method}` of JSON
//! with the header `X-Viber-Auth-Token`; Viber answers HTTP 200 with `{"status",
//! "status_message", …}` where `status` 0 is success (research §4, `viber-bot-python`'s
//! `api_request_sender.py`).

use okno_channel::http::SafeClient;
use serde_json::Value;

pub const DEFAULT_API_BASE: &str = "https://chatapi.viber.com/pa";

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// Viber answered with a non-zero `status`.
    Viber {
        status: i64,
        message: String,
    },
    /// An HTTP error without Viber's envelope (a proxy, an outage).
    Http(u16),
    Network(String),
}

/// Viber's name for a `status` code (the REST API's error table).
pub fn status_name(status: i64) -> &'static str {
    match status {
        0 => "ok",
        1 => "invalidUrl",
        2 => "invalidAuthToken",
        3 => "badData",
        4 => "missingData",
        5 => "receiverNotRegistered",
        6 => "receiverNotSubscribed",
        7 => "publicAccountBlocked",
        8 => "publicAccountNotFound",
        9 => "publicAccountSuspended",
        10 => "webhookNotSet",
        11 => "receiverNoSuitableDevice",
        12 => "tooManyRequests",
        13 => "apiVersionNotSupported",
        14 => "incompatibleWithVersion",
        15 => "publicAccountNotAuthorized",
        16 => "inchatReplyMessageNotAllowed",
        17 => "publicAccountIsNotInline",
        18 => "noPublicChat",
        19 => "cannotSendBroadcast",
        20 => "broadcastNotAllowed",
        21 => "unsupportedCountry",
        22 => "paymentUnsupported",
        23 => "freeMessagesExceeded",
        24 => "noBalance",
        _ => "generalError",
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Viber { status, message } if message.is_empty() || message == status_name(*status) => {
                write!(f, "{status}: {}", status_name(*status))
            }
            ApiError::Viber { status, message } => write!(f, "{status}: {} ({message})", status_name(*status)),
            ApiError::Http(code) => write!(f, "Viber answered HTTP {code}"),
            ApiError::Network(e) => write!(f, "{e}"),
        }
    }
}

/// One bot's client.
#[derive(Clone)]
pub struct ViberApi {
    http: SafeClient,
    base: String,
    token: String,
}

impl ViberApi {
    pub fn new(http: SafeClient, base: &str, token: &str) -> Self {
        ViberApi { http, base: base.trim_end_matches('/').to_string(), token: token.to_string() }
    }

    /// One call; the answer when `status` is 0.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, ApiError> {
        let url = format!("{}/{method}", self.base);
        let req = self.http.post(&url).map_err(|e| ApiError::Network(e.message))?;
        let r = req
            .header("X-Viber-Auth-Token", &self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| ApiError::Network(okno_channel::http::describe(&e)))?;
        let code = r.status().as_u16();
        let bytes = r.bytes().await.map_err(|e| ApiError::Network(okno_channel::http::describe(&e)))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let Some(status) = v.get("status").and_then(Value::as_i64) else {
            return Err(ApiError::Http(if code == 200 { 502 } else { code }));
        };
        if status != 0 {
            let message: String = v["status_message"].as_str().unwrap_or_default().chars().take(300).collect();
            return Err(ApiError::Viber { status, message });
        }
        Ok(v)
    }

    pub async fn account_info(&self) -> Result<Value, ApiError> {
        self.call("get_account_info", &serde_json::json!({})).await
    }
}
