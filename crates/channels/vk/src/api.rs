//! A thin client for the VK API: `POST {api_base}/<method>` with a form body carrying
//! `access_token` and `v` (VK takes no JSON bodies), the `{"response"}` / `{"error"}` envelope
//! (errors come with HTTP 200), the Bots Long Poll check and the upload servers. Every call
//! waits for the community's request budget first (20 requests a second for a community token).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota};
use reqwest::multipart;
use serde_json::Value;

use okno_channel::http::{describe, SafeClient};

/// VK's API endpoint.
pub const DEFAULT_API_BASE: &str = "https://api.vk.com/method";
/// The API version okno speaks (events are asked for in this version too).
pub const API_VERSION: &str = "5.199";
/// Requests a second VK allows a community token.
pub const COMMUNITY_RPS: u32 = 20;

/// What went wrong with a VK call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// VK answered `{"error": {"error_code", "error_msg"}}`.
    #[error("VK error {code}: {message}")]
    Vk { code: i64, message: String },
    /// The gateway in front of the API answered an HTTP error.
    #[error("VK answered HTTP {0}")]
    Http(u16),
    /// No usable answer (connection, timeout, a body that is not the envelope).
    #[error("{0}")]
    Network(String),
}

/// One community's API.
#[derive(Clone)]
pub struct VkApi {
    http: SafeClient,
    base: String,
    token: String,
    pace: Option<Arc<DefaultDirectRateLimiter>>,
}

/// The one pacer of a community token in this process. VK counts every call of a token
/// against one budget, so the sender, the webhook's and the poller's `users.get` and the
/// uploads all wait in the same line, whichever client made them.
fn shared_pace(token: &str, per_second: u32) -> Option<Arc<DefaultDirectRateLimiter>> {
    type Pacers = HashMap<(String, u32), Arc<DefaultDirectRateLimiter>>;
    static PACERS: OnceLock<Mutex<Pacers>> = OnceLock::new();
    let n = NonZeroU32::new(per_second)?;
    let mut pacers = PACERS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let key = (token.to_string(), per_second);
    if let Some(p) = pacers.get(&key) {
        return Some(p.clone());
    }
    // Stay a little under VK's figure: VK counts from arrival, okno from departure. No burst:
    // a full second's worth sent at once leaves VK's budget empty, and requests that then
    // arrive bunched by the network are refused (error 6).
    let quota = Quota::with_period(Duration::from_secs(1).mul_f64(1.05 / f64::from(n.get())))?;
    let pacer = Arc::new(governor::RateLimiter::direct(quota.allow_burst(NonZeroU32::MIN)));
    pacers.insert(key, pacer.clone());
    Some(pacer)
}

/// A Bots Long Poll server (`groups.getLongPollServer`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LongPollServer {
    pub server: String,
    pub key: String,
    pub ts: String,
}

/// One `a_check` answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Events from the asked `ts`, and the `ts` to ask next.
    Events { ts: String, updates: Vec<Value> },
    /// `failed: 1`: the history for that `ts` is gone; go on from the given one.
    History(Option<String>),
    /// `failed: 2`: the key expired; get a new one, keep the `ts`.
    KeyExpired,
    /// `failed: 3` (or any other): the information was lost; get a new key and `ts`.
    Lost,
}

impl VkApi {
    /// A client paced at `per_second` requests a second (`0`: unpaced).
    pub fn new(http: SafeClient, base: &str, token: &str, per_second: u32) -> Self {
        let pace = shared_pace(token, per_second);
        Self { http, base: base.trim_end_matches('/').to_string(), token: token.to_string(), pace }
    }

    /// The API address this client calls.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// People's names (`users.get`, up to 1,000 ids in one call): id → "First Last".
    pub async fn names(&self, ids: &[String]) -> Result<HashMap<String, String>, ApiError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(1000) {
            let v = self.call("users.get", &[("user_ids", chunk.join(","))]).await?;
            for u in v.as_array().into_iter().flatten() {
                let Some(id) = u["id"].as_i64() else { continue };
                let first = u["first_name"].as_str().unwrap_or_default();
                let last = u["last_name"].as_str().unwrap_or_default();
                let name = format!("{first} {last}").trim().to_string();
                if !name.is_empty() {
                    out.insert(id.to_string(), name);
                }
            }
        }
        Ok(out)
    }

    /// Calls a method with form parameters; `access_token` and `v` are added.
    pub async fn call(&self, method: &str, params: &[(&str, String)]) -> Result<Value, ApiError> {
        if let Some(p) = &self.pace {
            p.until_ready().await;
        }
        let mut form: Vec<(&str, String)> = params.to_vec();
        form.push(("access_token", self.token.clone()));
        form.push(("v", API_VERSION.to_string()));
        let url = format!("{}/{method}", self.base);
        let req = self.http.post(&url).map_err(|e| ApiError::Network(self.redact(&e.message)))?.form(&form);
        let resp = req.send().await.map_err(|e| ApiError::Network(self.redact(&describe(&e))))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| ApiError::Network(self.redact(&describe(&e))))?;
        if status >= 400 {
            return Err(ApiError::Http(status));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::Network(format!(
                "HTTP {status} with an unreadable body ({e}): {}",
                self.redact(&String::from_utf8_lossy(&body[..body.len().min(200)]))
            ))
        })?;
        envelope(v).map_err(|e| match e {
            ApiError::Vk { code, message } => ApiError::Vk { code, message: self.redact(&message) },
            other => other,
        })
    }

    /// Posts a file to an upload server VK named; returns the server's JSON answer.
    pub async fn upload(&self, upload_url: &str, form: multipart::Form) -> Result<Value, ApiError> {
        if let Some(p) = &self.pace {
            p.until_ready().await;
        }
        let req = self.http.post(upload_url).map_err(|e| ApiError::Network(e.message))?.multipart(form);
        let resp = req.send().await.map_err(|e| ApiError::Network(describe(&e)))?;
        let status = resp.status().as_u16();
        if status >= 400 {
            return Err(ApiError::Http(status));
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| ApiError::Network(format!("the upload server's answer is unreadable: {}", describe(&e))))?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Err(ApiError::Vk { code: 100, message: format!("the upload was refused: {err}") });
        }
        Ok(v)
    }

    /// `groups.getLongPollServer`.
    pub async fn long_poll_server(&self, group_id: i64) -> Result<LongPollServer, ApiError> {
        let v = self.call("groups.getLongPollServer", &[("group_id", group_id.to_string())]).await?;
        let field = |k: &str| match &v[k] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match (field("server"), field("key"), field("ts")) {
            (Some(server), Some(key), Some(ts)) => Ok(LongPollServer { server, key, ts }),
            _ => Err(ApiError::Network(format!("groups.getLongPollServer gave no server, key and ts: {v}"))),
        }
    }

    /// One `a_check`, waiting up to `wait` seconds for events.
    pub async fn check(&self, lp: &LongPollServer, wait: u64) -> Result<Check, ApiError> {
        let wait = wait.min(90);
        let req = self
            .http
            .get(&lp.server)
            .map_err(|e| ApiError::Network(e.message))?
            .query(&[("act", "a_check"), ("key", lp.key.as_str()), ("ts", lp.ts.as_str()), ("wait", &wait.to_string())])
            .timeout(Duration::from_secs(wait + 15));
        let resp = req.send().await.map_err(|e| ApiError::Network(describe(&e)))?;
        let status = resp.status().as_u16();
        if status >= 400 {
            return Err(ApiError::Http(status));
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| ApiError::Network(format!("the Long Poll answer is unreadable: {}", describe(&e))))?;
        Ok(read_check(&v))
    }

    /// The token never reaches logs or messages.
    fn redact(&self, text: &str) -> String {
        if self.token.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.token, "<token>")
        }
    }
}

/// A `ts` as VK gives it: a string, or a number in older answers.
fn ts_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads an `a_check` answer.
pub fn read_check(v: &Value) -> Check {
    match v.get("failed").and_then(Value::as_i64) {
        Some(1) => Check::History(v.get("ts").and_then(ts_of)),
        Some(2) => Check::KeyExpired,
        Some(_) => Check::Lost,
        None => match (v.get("ts").and_then(ts_of), v.get("updates").and_then(Value::as_array)) {
            (Some(ts), Some(updates)) => Check::Events { ts, updates: updates.clone() },
            _ => Check::Lost,
        },
    }
}

/// The `response` of an envelope, or its error.
pub fn envelope(v: Value) -> Result<Value, ApiError> {
    if let Some(err) = v.get("error") {
        return Err(ApiError::Vk {
            code: err.get("error_code").and_then(Value::as_i64).unwrap_or(0),
            message: err.get("error_msg").and_then(Value::as_str).unwrap_or("unknown VK error").to_string(),
        });
    }
    match v {
        Value::Object(mut o) => {
            o.remove("response").ok_or_else(|| ApiError::Network("VK's answer has neither response nor error".into()))
        }
        other => Err(ApiError::Network(format!("VK's answer is not an object: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_and_long_poll_answers_are_read() {
        assert_eq!(envelope(json!({"response": 5})), Ok(json!(5)));
        assert_eq!(
            envelope(json!({"error": {"error_code": 901, "error_msg": "Can't send", "request_params": []}})),
            Err(ApiError::Vk { code: 901, message: "Can't send".into() })
        );
        assert!(matches!(envelope(json!([1])), Err(ApiError::Network(_))));
        assert_eq!(read_check(&json!({"failed": 1, "ts": 30})), Check::History(Some("30".into())));
        assert_eq!(read_check(&json!({"failed": 2})), Check::KeyExpired);
        assert_eq!(read_check(&json!({"failed": 3})), Check::Lost);
        assert_eq!(read_check(&json!({"ts": "5", "updates": []})), Check::Events { ts: "5".into(), updates: vec![] });
    }
}
