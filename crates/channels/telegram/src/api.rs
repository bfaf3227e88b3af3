//! A thin typed client for the Telegram Bot API and the wire types okno reads. `api_base` is
//! configurable: Telegram's own local Bot API server uses it, and so do the tests.

use std::time::Duration;

use reqwest::multipart;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use okno_channel::http::{describe, SafeClient};

/// The default Bot API endpoint.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// Update kinds okno asks for.
pub const ALLOWED_UPDATES: &[&str] = &["message", "edited_message", "callback_query", "my_chat_member"];

/// What went wrong with a Bot API call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// Telegram answered `ok: false`.
    #[error("{description}")]
    Telegram { code: u16, description: String, retry_after: Option<u64>, migrate_to_chat_id: Option<i64> },
    /// No usable answer (connection, timeout, a body that is not the envelope).
    #[error("{0}")]
    Network(String),
}

/// One bot's API.
#[derive(Clone)]
pub struct BotApi {
    http: SafeClient,
    base: String,
    token: String,
}

#[derive(Deserialize)]
struct Envelope<T> {
    ok: bool,
    result: Option<T>,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
    migrate_to_chat_id: Option<i64>,
}

impl BotApi {
    pub fn new(http: SafeClient, base: &str, token: &str) -> Self {
        Self { http, base: base.trim_end_matches('/').to_string(), token: token.to_string() }
    }

    fn url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.base, self.token)
    }

    /// Calls a method with a JSON body.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
        timeout: Option<Duration>,
    ) -> Result<T, ApiError> {
        let mut req =
            self.http.post(&self.url(method)).map_err(|e| ApiError::Network(self.redact(&e.message)))?.json(&params);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        Self::answer(req.send().await).await.map_err(|e| self.redact_error(e))
    }

    /// Calls a method with a multipart body (file uploads).
    pub async fn call_multipart<T: DeserializeOwned>(
        &self,
        method: &str,
        form: multipart::Form,
    ) -> Result<T, ApiError> {
        let req =
            self.http.post(&self.url(method)).map_err(|e| ApiError::Network(self.redact(&e.message)))?.multipart(form);
        Self::answer(req.send().await).await.map_err(|e| self.redact_error(e))
    }

    /// The token is part of every URL; error texts (which reach logs, messages and webhooks)
    /// must never carry it.
    fn redact(&self, text: &str) -> String {
        text.replace(&self.token, "<token>")
    }

    fn redact_error(&self, e: ApiError) -> ApiError {
        match e {
            ApiError::Network(t) => ApiError::Network(self.redact(&t)),
            ApiError::Telegram { code, description, retry_after, migrate_to_chat_id } => {
                ApiError::Telegram { code, description: self.redact(&description), retry_after, migrate_to_chat_id }
            }
        }
    }

    async fn answer<T: DeserializeOwned>(sent: reqwest::Result<reqwest::Response>) -> Result<T, ApiError> {
        let resp = sent.map_err(|e| ApiError::Network(describe(&e)))?;
        let status = resp.status().as_u16();
        let header_retry = okno_channel::http::retry_after(resp.headers()).map(|d| d.as_secs());
        let body = resp.bytes().await.map_err(|e| ApiError::Network(describe(&e)))?;
        let env: Envelope<T> = serde_json::from_slice(&body).map_err(|e| {
            ApiError::Network(format!(
                "HTTP {status} with an unreadable body ({e}): {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))
        })?;
        match (env.ok, env.result) {
            (true, Some(result)) => Ok(result),
            _ => Err(ApiError::Telegram {
                code: env.error_code.unwrap_or(status),
                description: env.description.unwrap_or_else(|| format!("HTTP {status}")),
                retry_after: env.parameters.as_ref().and_then(|p| p.retry_after).or(header_retry),
                migrate_to_chat_id: env.parameters.and_then(|p| p.migrate_to_chat_id),
            }),
        }
    }

    pub async fn get_me(&self) -> Result<User, ApiError> {
        self.call("getMe", json!({}), None).await
    }

    /// Long-polls for updates; the HTTP timeout is the poll timeout plus a margin.
    pub async fn get_updates(&self, offset: i64, timeout_secs: u64) -> Result<Vec<Update>, ApiError> {
        let params =
            json!({"offset": offset, "timeout": timeout_secs, "limit": 100, "allowed_updates": ALLOWED_UPDATES});
        self.call("getUpdates", params, Some(Duration::from_secs(timeout_secs + 15))).await
    }

    /// Downloads a file by its `file_path` (from `getFile`).
    pub async fn download(
        &self,
        file_path: &str,
        max: u64,
    ) -> Result<okno_channel::http::Fetched, okno_channel::http::FetchError> {
        use okno_channel::http::FetchError;
        let url = format!("{}/file/bot{}/{file_path}", self.base, self.token);
        self.http.fetch_limited(&url, max).await.map_err(|e| match e {
            FetchError::Network(t) => FetchError::Network(self.redact(&t)),
            FetchError::Refused(t) => FetchError::Refused(self.redact(&t)),
            other => other,
        })
    }
}

// --- wire types (the fields okno reads) -----------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
}

impl User {
    pub fn full_name(&self) -> String {
        match &self.last_name {
            Some(l) => format!("{} {l}", self.first_name),
            None => self.first_name.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    pub message: Option<Message>,
    pub edited_message: Option<Message>,
    pub callback_query: Option<CallbackQuery>,
    pub my_chat_member: Option<ChatMemberUpdated>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub date: i64,
    pub chat: Chat,
    pub from: Option<User>,
    pub text: Option<String>,
    pub caption: Option<String>,
    pub photo: Option<Vec<PhotoSize>>,
    pub document: Option<FileRef>,
    pub voice: Option<FileRef>,
    pub video: Option<FileRef>,
    pub sticker: Option<FileRef>,
    pub contact: Option<SharedContact>,
    pub reply_to_message: Option<Box<Message>>,
    pub migrate_to_chat_id: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PhotoSize {
    pub file_id: String,
    pub width: i64,
    pub height: i64,
    pub file_size: Option<u64>,
}

/// Document, voice, video and sticker share the fields okno needs.
#[derive(Debug, Clone, Deserialize)]
pub struct FileRef {
    pub file_id: String,
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
    pub file_size: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SharedContact {
    pub phone_number: String,
    pub first_name: String,
    pub user_id: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    pub message: Option<Value>,
    pub data: Option<String>,
}

impl CallbackQuery {
    /// The chat and message the pressed button was on, when Telegram says.
    pub fn origin(&self) -> Option<(i64, i64)> {
        let m = self.message.as_ref()?;
        Some((m.get("chat")?.get("id")?.as_i64()?, m.get("message_id")?.as_i64()?))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMemberUpdated {
    pub chat: Chat,
    pub from: User,
    pub new_chat_member: ChatMember,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMember {
    pub status: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct File {
    pub file_id: String,
    pub file_size: Option<u64>,
    pub file_path: Option<String>,
}

/// A sent message, as Telegram returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct SentMessage {
    pub message_id: i64,
    pub chat: Chat,
}
