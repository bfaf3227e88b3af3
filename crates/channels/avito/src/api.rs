//! A thin client for Avito's Messenger API, with its tokens.
//!
//! Avito issues a token for an application's own account by client credentials
//! (`POST /token`, form-encoded `grant_type=client_credentials&client_id&client_secret` →
//! `{"access_token","expires_in","token_type"}`, valid 24 hours). okno keeps one token per
//! application in [`Tokens`], takes a new one shortly before the old one expires, and, when
//! Avito still answers 401 (a token revoked or expired early), takes a new one and repeats the
//! call once. Errors come as `{"error":{"code","message"}}` (the Messenger API) or OAuth's
//! `{"error":"invalid_client","error_description"}` (`/token`, as third-party clients read it).
//! Sources: `Авторизация.json` and `Мессенджер.json` of developers.avito.ru.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use okno_channel::http::{describe, retry_after, SafeClient};
use reqwest::{multipart, Method};
use serde_json::Value;

/// Avito's API address.
pub const DEFAULT_API_BASE: &str = "https://api.avito.ru";

/// What went wrong with a call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// Avito answered with an error.
    #[error("HTTP {status}: {message}")]
    Avito { status: u16, message: String, retry_after: Option<Duration> },
    /// `/token` refused the client credentials.
    #[error("Avito refused the client credentials: {0}")]
    Credentials(String),
    /// No usable answer (connection, timeout, a body that is not Avito's).
    #[error("{0}")]
    Network(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Avito { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Reads Avito's error body, whatever status carried it.
pub fn avito_error(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> ApiError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = &v["error"];
    let message = match (e["message"].as_str(), e.as_str(), v["error_description"].as_str()) {
        (Some(m), _, _) => {
            let fields = e.get("fields").filter(|f| f.is_object()).map(|f| format!(" {f}")).unwrap_or_default();
            format!("{m}{fields}")
        }
        (None, Some(code), Some(d)) => format!("{code}: {d}"),
        (None, Some(code), None) => code.to_string(),
        _ => {
            let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
            if shown.trim().is_empty() {
                format!("HTTP {status}")
            } else {
                shown
            }
        }
    };
    ApiError::Avito { status, message, retry_after: retry_after(headers) }
}

/// A token and when okno stops using it.
#[derive(Debug, Clone)]
struct Token {
    value: String,
    renew_at: Instant,
}

/// One application's token, taken by one caller at a time (the others wait for it).
type Slot = Arc<tokio::sync::Mutex<Option<Token>>>;

/// Tokens by application, shared by every channel of one okno process: one token per
/// application is enough, whichever channel or hook needs it.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

impl Tokens {
    fn slot(&self, key: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(key.to_string()).or_default().clone()
    }
}

/// How long before its expiry a token is replaced: a tenth of its life, at most five minutes.
fn margin(expires_in: Duration) -> Duration {
    (expires_in / 10).min(Duration::from_secs(300))
}

/// One Avito account's API.
#[derive(Clone)]
pub struct AvitoApi {
    http: SafeClient,
    base: String,
    client_id: String,
    client_secret: String,
    user_id: String,
    tokens: Tokens,
}

impl AvitoApi {
    pub fn new(
        http: SafeClient,
        base: &str,
        client_id: &str,
        client_secret: &str,
        user_id: &str,
        tokens: Tokens,
    ) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            user_id: user_id.to_string(),
            tokens,
        }
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    fn key(&self) -> String {
        let secret = okno_domain::signing::sha256_hex(self.client_secret.as_bytes());
        format!("{}|{}|{secret}", self.base, self.client_id)
    }

    fn redact(&self, text: &str) -> String {
        if self.client_secret.is_empty() {
            return text.to_string();
        }
        text.replace(&self.client_secret, "<client_secret>")
    }

    /// `POST /token` by client credentials.
    pub async fn issue_token(&self) -> Result<(String, Duration), ApiError> {
        let url = format!("{}/token", self.base);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
        ];
        let req = self
            .http
            .post(&url)
            .map_err(|e| ApiError::Network(e.message))?
            .form(&form)
            .timeout(Duration::from_secs(20));
        let resp = req.send().await.map_err(|e| ApiError::Network(self.redact(&describe(&e))))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| ApiError::Network(describe(&e)))?;
        if !(200..300).contains(&status) {
            let e = avito_error(status, &headers, &body);
            return Err(match e {
                ApiError::Avito { status, message, .. } if (400..500).contains(&status) && status != 429 => {
                    ApiError::Credentials(self.redact(&message))
                }
                other => other,
            });
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::Network(format!("HTTP {status} from /token with an unreadable body: {e}")))?;
        let token = v["access_token"].as_str().filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(ApiError::Network("Avito's /token answered without an access_token".into()));
        };
        let expires_in = v["expires_in"].as_f64().filter(|s| s.is_finite() && *s > 0.0).unwrap_or(86_400.0);
        Ok((token.to_string(), Duration::from_secs_f64(expires_in.min(10.0 * 86_400.0))))
    }

    /// A live token: the kept one, or a new one when it is near its expiry (or `stale`, the
    /// one Avito just refused).
    async fn token(&self, stale: Option<&str>) -> Result<String, ApiError> {
        let slot = self.tokens.slot(&self.key());
        let mut kept = slot.lock().await;
        if let Some(t) = kept.as_ref() {
            if t.renew_at > Instant::now() && Some(t.value.as_str()) != stale {
                return Ok(t.value.clone());
            }
        }
        let (value, expires_in) = self.issue_token().await?;
        *kept = Some(Token { value: value.clone(), renew_at: Instant::now() + expires_in - margin(expires_in) });
        Ok(value)
    }

    /// `method {base}{path}` with a JSON body or a multipart form, authorised; the answer's
    /// JSON. A 401 takes a new token and repeats the call once.
    async fn call_with(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        form: Option<&(Vec<u8>, String, String)>,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut stale: Option<String> = None;
        loop {
            let token = self.token(stale.as_deref()).await?;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .map_err(|e| ApiError::Network(e.message))?
                .bearer_auth(&token)
                .timeout(timeout)
                .query(query);
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some((data, name, mime)) = form {
                let part = multipart::Part::bytes(data.clone())
                    .file_name(name.clone())
                    .mime_str(mime)
                    .map_err(|e| ApiError::Network(format!("bad MIME type `{mime}`: {e}")))?;
                req = req.multipart(multipart::Form::new().part("uploadfile[]", part));
            }
            let resp = req.send().await.map_err(|e| ApiError::Network(describe(&e)))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.map_err(|e| ApiError::Network(describe(&e)))?;
            if status == 401 && stale.is_none() {
                stale = Some(token);
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(avito_error(status, &headers, &bytes));
            }
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::Network(format!(
                    "HTTP {status} with an unreadable body ({e}): {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ))
            });
        }
    }

    /// A JSON call.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        self.call_with(method, path, query, body, None, Duration::from_secs(30)).await
    }

    /// Takes a token (or finds a live one): the check that Avito accepts the client credentials.
    pub async fn check_credentials(&self) -> Result<(), ApiError> {
        self.token(None).await.map(|_| ())
    }

    /// `GET /core/v1/accounts/self`: the account the credentials belong to.
    pub async fn account(&self) -> Result<Value, ApiError> {
        self.call(Method::GET, "/core/v1/accounts/self", &[], None).await
    }

    fn chat_path(&self, version: &str, chat_id: &str) -> String {
        let chat: String = url::form_urlencoded::byte_serialize(chat_id.as_bytes()).collect();
        format!("/messenger/{version}/accounts/{}/chats/{chat}", self.user_id)
    }

    /// `GET /messenger/v2/accounts/{user_id}/chats/{chat_id}`: a chat with its item, within
    /// `timeout` (a webhook's answer waits on it).
    pub async fn chat(&self, chat_id: &str, timeout: Duration) -> Result<Value, ApiError> {
        self.call_with(Method::GET, &self.chat_path("v2", chat_id), &[], None, None, timeout).await
    }

    /// `GET /messenger/v2/accounts/{user_id}/chats?limit=100&offset=…&chat_types=u2i,u2u`: a
    /// page of chats, the latest updated first.
    pub async fn chats(&self, offset: u32) -> Result<Vec<Value>, ApiError> {
        let path = format!("/messenger/v2/accounts/{}/chats", self.user_id);
        let query =
            [("limit", "100".to_string()), ("offset", offset.to_string()), ("chat_types", "u2i,u2u".to_string())];
        let v = self.call(Method::GET, &path, &query, None).await?;
        Ok(v["chats"].as_array().cloned().unwrap_or_default())
    }

    /// `GET /messenger/v3/accounts/{user_id}/chats/{chat_id}/messages/` (the trailing slash is
    /// Avito's): the latest 100 messages. The swagger types the answer as a bare array; some
    /// clients read `.messages` — both are taken. It does not mark the chat read.
    pub async fn messages(&self, chat_id: &str) -> Result<Vec<Value>, ApiError> {
        let path = format!("{}/messages/", self.chat_path("v3", chat_id));
        let v = self.call(Method::GET, &path, &[("limit", "100".to_string())], None).await?;
        Ok(match v {
            Value::Array(list) => list,
            other => other["messages"].as_array().cloned().unwrap_or_default(),
        })
    }

    /// `POST …/chats/{chat_id}/messages` `{"message":{"text"},"type":"text"}`.
    pub async fn send_text(&self, chat_id: &str, text: &str) -> Result<Value, ApiError> {
        let body = serde_json::json!({"message": {"text": text}, "type": "text"});
        self.call(Method::POST, &format!("{}/messages", self.chat_path("v1", chat_id)), &[], Some(&body)).await
    }

    /// `POST /messenger/v1/accounts/{user_id}/uploadImages` with one `uploadfile[]`: the
    /// image's id (the key of the answer).
    pub async fn upload_image(&self, data: Vec<u8>, name: &str, mime: &str) -> Result<String, ApiError> {
        let path = format!("/messenger/v1/accounts/{}/uploadImages", self.user_id);
        let form = (data, name.to_string(), mime.to_string());
        let v = self.call_with(Method::POST, &path, &[], None, Some(&form), Duration::from_secs(120)).await?;
        v.as_object()
            .and_then(|o| o.keys().next().cloned())
            .ok_or_else(|| ApiError::Network("Avito answered an upload without the image's id".into()))
    }

    /// `POST …/chats/{chat_id}/messages/image` `{"image_id"}`.
    pub async fn send_image(&self, chat_id: &str, image_id: &str) -> Result<Value, ApiError> {
        let body = serde_json::json!({"image_id": image_id});
        self.call(Method::POST, &format!("{}/messages/image", self.chat_path("v1", chat_id)), &[], Some(&body)).await
    }

    /// `GET /messenger/v1/accounts/{user_id}/getVoiceFiles?voice_ids=…` → `{"voices_urls":
    /// {id: url}}`: a voice message's download address (valid an hour).
    pub async fn voice_url(&self, voice_id: &str) -> Result<Option<String>, ApiError> {
        let path = format!("/messenger/v1/accounts/{}/getVoiceFiles", self.user_id);
        let v = self.call(Method::GET, &path, &[("voice_ids", voice_id.to_string())], None).await?;
        Ok(v["voices_urls"][voice_id].as_str().map(str::to_string))
    }

    /// `POST …/chats/{chat_id}/read`.
    pub async fn read(&self, chat_id: &str) -> Result<Value, ApiError> {
        self.call(Method::POST, &format!("{}/read", self.chat_path("v1", chat_id)), &[], None).await
    }

    /// `POST /messenger/v3/webhook` `{"url"}`.
    pub async fn subscribe(&self, url: &str) -> Result<Value, ApiError> {
        self.call(Method::POST, "/messenger/v3/webhook", &[], Some(&serde_json::json!({"url": url}))).await
    }

    /// `POST /messenger/v1/subscriptions`: the subscribed URLs.
    pub async fn subscriptions(&self) -> Result<Vec<String>, ApiError> {
        let v = self.call(Method::POST, "/messenger/v1/subscriptions", &[], None).await?;
        Ok(v["subscriptions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["url"].as_str().map(str::to_string))
            .collect())
    }

    /// `POST /messenger/v1/webhook/unsubscribe` `{"url"}`.
    pub async fn unsubscribe(&self, url: &str) -> Result<Value, ApiError> {
        self.call(Method::POST, "/messenger/v1/webhook/unsubscribe", &[], Some(&serde_json::json!({"url": url}))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avitos_error_bodies_are_read() {
        let h = reqwest::header::HeaderMap::new();
        let e = avito_error(402, &h, br#"{"error":{"code":402,"message":"Payment required"}}"#);
        assert_eq!(e.to_string(), "HTTP 402: Payment required");
        let e = avito_error(400, &h, br#"{"error":"invalid_client","error_description":"invalid client"}"#);
        assert_eq!(e.to_string(), "HTTP 400: invalid_client: invalid client");
        let e = avito_error(400, &h, br#"{"error":{"code":400,"message":"Bad Request","fields":{"x":"y"}}}"#);
        assert!(e.to_string().contains(r#"{"x":"y"}"#), "{e}");
        assert_eq!(avito_error(502, &h, b"").to_string(), "HTTP 502: HTTP 502");
    }

    #[test]
    fn a_token_is_renewed_a_tenth_of_its_life_early_at_most_five_minutes() {
        assert_eq!(margin(Duration::from_secs(86_400)), Duration::from_secs(300));
        assert_eq!(margin(Duration::from_secs(10)), Duration::from_secs(1));
    }
}
