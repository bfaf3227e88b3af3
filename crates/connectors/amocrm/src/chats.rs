//! amoCRM's Chats API ("amojo"): okno as a native chat channel of amoCRM, on its own host
//! (`https://amojo.amocrm.ru`), with no OAuth — every call is signed with the channel's secret.
//!
//! ```text
//! support registers the channel ─► channel id + secret; okno's webhook URL
//! connect(account's amojo_id)    ─► scope_id              (after every install)
//! a person writes                ─► send_message(scope_id, ChatMessage::from_person)
//! okno's operator writes         ─► send_message(scope_id, ChatMessage::from_operator)
//! an amoCRM user answers         ◄─ webhook, signed: read_hook(secret, X-Signature, body)
//! okno delivered it              ─► delivery_status(scope_id, msgid, Delivered | Read | Failed)
//! ```
//!
//! The signature (amoCRM's chat API reference): `Date` in RFC 2822, `Content-Type:
//! application/json`, `Content-MD5` = lowercase hex MD5 of the exact body bytes (of the empty
//! string for a body-less call), and `X-Signature` = lowercase hex HMAC-SHA1 with the channel
//! secret of `METHOD\nContent-MD5\nContent-Type\nDate\npath` (the path without host or query);
//! a signature is good for 15 minutes. A webhook's `X-Signature` is the HMAC-SHA1 of its body
//! alone. amojo waits 5 s for a webhook's answer and never sends it again, so okno checks the
//! signature, keeps the message and answers at once.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The content type amojo accepts (the only one).
pub const CONTENT_TYPE: &str = "application/json";
/// The biggest webhook body read.
const MAX_HOOK: usize = 1 << 20;

/// What went wrong calling amojo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatsError {
    /// 403: the signature was refused — a wrong secret, or a clock off by more than 15 minutes.
    #[error("amojo refused the signature (403): {0}")]
    Forbidden(String),
    /// 404: the channel, the account, the scope or the message is unknown to amojo.
    #[error("amojo knows no such {0}")]
    NotFound(String),
    /// 400: amojo named what is wrong with the request (or okno refused to send it).
    #[error("amojo refused the request (400): {0}")]
    Invalid(String),
    /// 429: try again later.
    #[error("amojo asked to slow down (429)")]
    TooManyRequests,
    /// The network or amojo failed (5xx, a timeout): try again later.
    #[error("amojo is unreachable or failed: {0}")]
    Unavailable(String),
}

impl ChatsError {
    /// Whether trying the same call later may succeed.
    pub fn is_passing(&self) -> bool {
        matches!(self, ChatsError::TooManyRequests | ChatsError::Unavailable(_))
    }
}

/// The headers that sign one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub date: String,
    pub content_md5: String,
    pub signature: String,
}

/// Lowercase hex HMAC-SHA1 of `data` with `secret`.
fn hmac_hex(secret: &str, data: &[u8]) -> String {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail here.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// `at` as amojo's `Date` header: `Thu, 01 Jan 2023 12:00:00 +0000`.
pub fn http_date(at: jiff::Timestamp) -> String {
    at.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// Signs a request to amojo: `path` without host or query, `body` the exact bytes sent.
pub fn sign(secret: &str, method: &str, path: &str, body: &[u8], date: &str) -> Signed {
    let content_md5 = hex::encode(Md5::digest(body));
    let text = [method.to_uppercase().as_str(), &content_md5, CONTENT_TYPE, date, path].join("\n");
    Signed { date: date.to_string(), content_md5, signature: hmac_hex(secret, text.as_bytes()) }
}

/// The `X-Signature` amojo gives a webhook body.
pub fn hook_signature(secret: &str, body: &[u8]) -> String {
    hmac_hex(secret, body)
}

/// Whether `signature` (the webhook's `X-Signature`) is the body's, compared in constant time.
pub fn verify_hook(secret: &str, body: &[u8], signature: &str) -> bool {
    let Ok(given) = hex::decode(signature.trim()) else { return false };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// A channel connected to an account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Connection {
    pub account_id: String,
    pub scope_id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub hook_api_version: String,
}

/// A participant of a conversation on okno's side: the person (their id in okno) or one of
/// okno's operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Participant {
    /// okno's id of them (for an operator: an id okno keeps for them).
    pub id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub avatar: Option<String>,
    /// For the sender of a message to the person: the amoCRM user's `amojo_id`, or the
    /// channel's bot id.
    pub ref_id: Option<String>,
}

impl Participant {
    fn to_json(&self) -> Value {
        let mut v = json!({"id": self.id, "name": self.name});
        let mut profile = serde_json::Map::new();
        if let Some(p) = &self.phone {
            profile.insert("phone".into(), json!(p));
        }
        if let Some(e) = &self.email {
            profile.insert("email".into(), json!(e));
        }
        if !profile.is_empty() {
            v["profile"] = Value::Object(profile);
        }
        if let Some(a) = &self.avatar {
            v["avatar"] = json!(a);
        }
        if let Some(r) = &self.ref_id {
            v["ref_id"] = json!(r);
        }
        v
    }
}

/// The kind of a file sent by URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Picture,
    File,
    Video,
    Voice,
    Audio,
}

impl MediaKind {
    fn wire(self) -> &'static str {
        match self {
            MediaKind::Picture => "picture",
            MediaKind::File => "file",
            MediaKind::Video => "video",
            MediaKind::Voice => "voice",
            MediaKind::Audio => "audio",
        }
    }
}

/// A file amojo fetches by URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub kind: MediaKind,
    pub url: String,
    pub file_name: String,
    pub file_size: u64,
}

/// A message okno puts into amoCRM's chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// okno's id of the message: the same id again is the same message, so a retry does not
    /// double it.
    pub msgid: String,
    /// okno's id of the conversation.
    pub conversation_id: String,
    /// Unix milliseconds it was written.
    pub at_ms: i64,
    pub sender: Participant,
    /// Set for a message to the person (from okno's operator): the person.
    pub receiver: Option<Participant>,
    pub text: String,
    pub attachment: Option<Attachment>,
    /// An imported message: no notification, no new deal.
    pub silent: bool,
}

impl ChatMessage {
    /// A text the person wrote.
    pub fn from_person(msgid: &str, conversation_id: &str, person: Participant, text: &str, at_ms: i64) -> ChatMessage {
        ChatMessage {
            msgid: msgid.to_string(),
            conversation_id: conversation_id.to_string(),
            at_ms,
            sender: person,
            receiver: None,
            text: text.to_string(),
            attachment: None,
            silent: false,
        }
    }

    /// A text okno's operator wrote to the person; `operator.ref_id` names the amoCRM user
    /// (their `amojo_id`) or the channel's bot.
    pub fn from_operator(
        msgid: &str,
        conversation_id: &str,
        operator: Participant,
        person: Participant,
        text: &str,
        at_ms: i64,
    ) -> ChatMessage {
        ChatMessage {
            receiver: Some(person),
            ..ChatMessage::from_person(msgid, conversation_id, operator, text, at_ms)
        }
    }

    /// The body of `POST /v2/origin/custom/{scope_id}`; refuses what amojo would.
    pub fn to_json(&self) -> Result<Value, ChatsError> {
        if self.msgid.is_empty() || self.conversation_id.is_empty() || self.sender.id.is_empty() {
            return Err(ChatsError::Invalid("a message needs its msgid, conversation_id and sender id".into()));
        }
        if self.receiver.is_some() && self.sender.ref_id.is_none() {
            return Err(ChatsError::Invalid("a message to the person needs the sender's ref_id".into()));
        }
        let message = match &self.attachment {
            None if self.text.trim().is_empty() => return Err(ChatsError::Invalid("an empty message".into())),
            None => json!({"type": "text", "text": self.text}),
            Some(a) => {
                json!({"type": a.kind.wire(), "media": a.url, "file_name": a.file_name, "file_size": a.file_size, "text": self.text})
            }
        };
        let mut payload = json!({
            "timestamp": self.at_ms.div_euclid(1000), "msec_timestamp": self.at_ms,
            "msgid": self.msgid, "conversation_id": self.conversation_id,
            "sender": self.sender.to_json(), "message": message, "silent": self.silent,
        });
        if let Some(r) = &self.receiver {
            payload["receiver"] = r.to_json();
        }
        Ok(json!({"event_type": "new_message", "payload": payload}))
    }
}

/// amojo's answer to a message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Sent {
    pub conversation_id: String,
    #[serde(default)]
    pub sender_id: String,
    #[serde(default)]
    pub receiver_id: String,
    /// amojo's id of the message.
    pub msgid: String,
    /// okno's id of the message.
    #[serde(default)]
    pub ref_id: String,
}

/// What became of a message an amoCRM user sent through okno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    Read,
    /// Not delivered: `code` 901 the person deleted the chat, 902 the channel is off on okno's
    /// side, 903 an internal error, 904 no conversation could be made, 905 anything else
    /// (`text` shown to the user, required then).
    Failed {
        code: u16,
        text: String,
    },
}

/// okno's side of one chat channel.
pub struct ChatsClient {
    http: reqwest::Client,
    base: String,
    channel_id: String,
    secret: String,
    limiter: DefaultDirectRateLimiter,
}

impl std::fmt::Debug for ChatsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatsClient")
            .field("base", &self.base)
            .field("channel_id", &self.channel_id)
            .finish_non_exhaustive()
    }
}

impl ChatsClient {
    /// The channel `channel_id` with its `secret`, at `amojo_base` (`https://amojo.amocrm.ru`),
    /// making at most `per_second` calls a second (amojo documents no limit; okno keeps to
    /// amoCRM's).
    pub fn new(amojo_base: &str, channel_id: &str, secret: &str, per_second: u32) -> Result<ChatsClient, ChatsError> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| ChatsError::Unavailable(format!("an HTTP client: {e}")))?;
        let per_second = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(ChatsClient {
            http,
            base: amojo_base.trim_end_matches('/').to_string(),
            channel_id: channel_id.to_string(),
            secret: secret.to_string(),
            limiter: RateLimiter::direct(Quota::per_second(per_second)),
        })
    }

    /// One signed call; `Ok(None)` is an answer without a JSON body.
    async fn call(&self, method: Method, path: &str, body: &Value) -> Result<Option<Value>, ChatsError> {
        self.limiter.until_ready().await;
        let bytes = serde_json::to_vec(body).map_err(|e| ChatsError::Invalid(e.to_string()))?;
        let signed = sign(&self.secret, method.as_str(), path, &bytes, &http_date(jiff::Timestamp::now()));
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Date", &signed.date)
            .header("Content-Type", CONTENT_TYPE)
            .header("Content-MD5", &signed.content_md5)
            .header("X-Signature", &signed.signature)
            .body(bytes)
            .send()
            .await
            .map_err(|e| ChatsError::Unavailable(e.to_string()))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| ChatsError::Unavailable(e.to_string()))?;
        let detail = || error_detail(&text);
        match status {
            s if s.is_success() => Ok(serde_json::from_str(&text).ok()),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Err(ChatsError::Forbidden(detail())),
            StatusCode::NOT_FOUND => Err(ChatsError::NotFound(format!("{path}: {}", detail()))),
            StatusCode::TOO_MANY_REQUESTS => Err(ChatsError::TooManyRequests),
            s if s.is_client_error() => Err(ChatsError::Invalid(detail())),
            s => Err(ChatsError::Unavailable(format!("{s}: {}", detail()))),
        }
    }

    /// Connects the channel to the account whose Chats API id is `account_amojo_id`
    /// (`GET /api/v4/account?with=amojo_id`); needed after every install. `hook_api_version`
    /// is `v2` (v1 is retired).
    pub async fn connect(
        &self,
        account_amojo_id: &str,
        title: &str,
        hook_api_version: &str,
    ) -> Result<Connection, ChatsError> {
        let body = json!({"account_id": account_amojo_id, "title": title, "hook_api_version": hook_api_version});
        let v = self
            .call(Method::POST, &format!("/v2/origin/custom/{}/connect", self.channel_id), &body)
            .await?
            .ok_or_else(|| ChatsError::Unavailable("amojo's answer names no scope".into()))?;
        serde_json::from_value(v).map_err(|e| ChatsError::Unavailable(format!("amojo's connection: {e}")))
    }

    /// Disconnects the channel from the account.
    pub async fn disconnect(&self, account_amojo_id: &str) -> Result<(), ChatsError> {
        let body = json!({"account_id": account_amojo_id});
        self.call(Method::DELETE, &format!("/v2/origin/custom/{}/disconnect", self.channel_id), &body).await?;
        Ok(())
    }

    /// Puts a message into the chat; the conversation is made on its first message. Sending
    /// the same `msgid` again gives the same answer and no second message.
    pub async fn send_message(&self, scope_id: &str, message: &ChatMessage) -> Result<Sent, ChatsError> {
        let body = message.to_json()?;
        let v = self
            .call(Method::POST, &format!("/v2/origin/custom/{scope_id}"), &body)
            .await?
            .ok_or_else(|| ChatsError::Unavailable("amojo's answer names no message".into()))?;
        let sent = v.get("new_message").cloned().unwrap_or(Value::Null);
        serde_json::from_value(sent).map_err(|e| ChatsError::Unavailable(format!("amojo's answer: {e}")))
    }

    /// Reports what became of the message `msgid` (amojo's id, from the webhook) an amoCRM
    /// user sent.
    pub async fn delivery_status(&self, scope_id: &str, msgid: &str, delivery: &Delivery) -> Result<(), ChatsError> {
        let body = match delivery {
            Delivery::Delivered => json!({"msgid": msgid, "delivery_status": 1}),
            Delivery::Read => json!({"msgid": msgid, "delivery_status": 2}),
            Delivery::Failed { code, .. } if !(901..=905).contains(code) => {
                return Err(ChatsError::Invalid(format!("error code {code}: amojo knows 901–905")))
            }
            Delivery::Failed { code: 905, text } if text.trim().is_empty() => {
                return Err(ChatsError::Invalid("error code 905 needs its text".into()))
            }
            Delivery::Failed { code, text } => {
                json!({"msgid": msgid, "delivery_status": -1, "error_code": code, "error": text})
            }
        };
        self.call(Method::POST, &format!("/v2/origin/custom/{scope_id}/{msgid}/delivery_status"), &body).await?;
        Ok(())
    }
}

/// What amojo's error body says, whatever its shape.
fn error_detail(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => ["error_description", "detail", "error", "message", "error_type"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| text.chars().take(200).collect()),
        Err(_) => text.chars().take(200).collect(),
    }
}

/// Why a webhook is not one to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatHookError {
    #[error("the webhook's X-Signature is not its body's")]
    BadSignature,
    #[error("the webhook's body is larger than {MAX_HOOK} bytes")]
    TooLarge,
    #[error("the webhook is not amojo's message: {0}")]
    Malformed(String),
}

/// The person an amoCRM user answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HookReceiver {
    /// okno's id of the person.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
}

/// The amoCRM user who answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HookSender {
    /// Their amojo id.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// The conversation an answer belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HookConversation {
    /// amojo's id.
    pub id: String,
    /// okno's id; absent when the amoCRM user wrote first.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// The message itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HookMessage {
    /// amojo's id (for [`ChatsClient::delivery_status`]).
    pub id: String,
    /// `text`, `picture`, `file`, `video`, …
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: String,
    /// A file's URL (empty for a text).
    #[serde(default)]
    pub media: String,
    #[serde(default)]
    pub thumbnail: String,
    #[serde(default)]
    pub file_name: String,
    #[serde(default)]
    pub file_size: u64,
}

/// An answer from amoCRM, as amojo's webhook (v2) carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatHook {
    /// The account's amojo id.
    pub account_id: String,
    pub conversation: HookConversation,
    pub receiver: HookReceiver,
    pub sender: HookSender,
    pub message: HookMessage,
    /// Unix milliseconds it was written.
    pub at_ms: i64,
}

#[derive(Deserialize)]
struct HookBody {
    #[serde(default)]
    account_id: String,
    message: HookEnvelope,
}

#[derive(Deserialize)]
struct HookEnvelope {
    #[serde(default)]
    receiver: HookReceiver,
    #[serde(default)]
    sender: HookSender,
    conversation: HookConversation,
    #[serde(default)]
    timestamp: i64,
    #[serde(default)]
    msec_timestamp: i64,
    message: HookMessage,
}

/// Reads a webhook body (not checking its signature: see [`read_hook`]).
pub fn parse_hook(body: &[u8]) -> Result<ChatHook, ChatHookError> {
    if body.len() > MAX_HOOK {
        return Err(ChatHookError::TooLarge);
    }
    let b: HookBody = serde_json::from_slice(body).map_err(|e| ChatHookError::Malformed(e.to_string()))?;
    let m = b.message;
    if m.conversation.id.is_empty() || m.message.id.is_empty() {
        return Err(ChatHookError::Malformed("no conversation or message id".into()));
    }
    let at_ms = if m.msec_timestamp > 0 { m.msec_timestamp } else { m.timestamp.saturating_mul(1000) };
    Ok(ChatHook {
        account_id: b.account_id,
        conversation: m.conversation,
        receiver: m.receiver,
        sender: m.sender,
        message: m.message,
        at_ms,
    })
}

/// Checks a webhook's `X-Signature` against its body with the channel `secret`, then reads it.
pub fn read_hook(secret: &str, signature: &str, body: &[u8]) -> Result<ChatHook, ChatHookError> {
    if body.len() > MAX_HOOK {
        return Err(ChatHookError::TooLarge);
    }
    if !verify_hook(secret, body, signature) {
        return Err(ChatHookError::BadSignature);
    }
    parse_hook(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// amoCRM's own example (its "connecting a chat channel" page): the connect body's
    /// `Content-MD5` is the one it prints; the signature is HMAC-SHA1 over the five lines.
    #[test]
    fn a_request_is_signed_over_method_digest_type_date_and_path() {
        let body =
            br#"{"account_id":"af9945ff-1490-4cad-807d-945c15d88bec","title":"ScopeTitle","hook_api_version":"v2"}"#;
        let s = sign(
            "5a44c5dff55f3c15a4cce8d7c4cc27e207c7e189",
            "post",
            "/v2/origin/custom/f90ba33d-c9d9-44da-b76c-c349b0ecbe41/connect",
            body,
            "Thu, 29 Oct 2020 11:59:55 +0000",
        );
        assert_eq!(s.content_md5, "a5e8ae04332a6d0aac15f01ad05d40e3", "as amoCRM's example prints it");
        assert_eq!(sign("k", "GET", "/p", b"", "d").content_md5, "d41d8cd98f00b204e9800998ecf8427e", "MD5 of nothing");
        let manual = hmac_hex(
            "5a44c5dff55f3c15a4cce8d7c4cc27e207c7e189",
            format!(
                "POST\n{}\napplication/json\nThu, 29 Oct 2020 11:59:55 +0000\n/v2/origin/custom/f90ba33d-c9d9-44da-b76c-c349b0ecbe41/connect",
                s.content_md5
            )
            .as_bytes(),
        );
        assert_eq!(s.signature, manual);
        assert!(s.signature.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        // RFC 2202, test case 2.
        assert_eq!(hook_signature("Jefe", b"what do ya want for nothing?"), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        assert_eq!(http_date(jiff::Timestamp::from_second(1_603_972_795).unwrap()), "Thu, 29 Oct 2020 11:59:55 +0000");
    }

    /// A captured webhook body (hook v2), as amojo sends it.
    const CAPTURED: &str = r#"{"account_id":"2b13cae0-24f7-4058-b9ad-c13ee05e1b53","time":1695284360,"message":{"receiver":{"id":"3e056d0f-a553-4d94-9822-57c257891f22","name":"Сергей","phone":"89135292926"},"sender":{"id":"3cfae55d-387e-409f-9be4-4baab963ee02","name":""},"source":{"external_id":"c218c790-9be5-4dba-99f8-cbe2b408df25"},"conversation":{"id":"8bdd3f03-b37e-46d0-ace2-4ac5735ea484","client_id":"89135292926"},"timestamp":1695284360,"msec_timestamp":1695284360957,"message":{"id":"222006b5-c0e4-4695-b72d-280aeab6401e","type":"text","text":"как так","markup":null,"tag":"","media":"","thumbnail":"","file_name":"","file_size":0}}}"#;

    #[test]
    fn a_captured_answer_reads_with_its_conversation_person_and_text() {
        let secret = "5a44c5dff55f3c15a4cce8d7c4cc27e207c7e189";
        let sig = hook_signature(secret, CAPTURED.as_bytes());
        let h = read_hook(secret, &sig, CAPTURED.as_bytes()).unwrap();
        assert_eq!(h.conversation.id, "8bdd3f03-b37e-46d0-ace2-4ac5735ea484");
        assert_eq!(h.conversation.client_id.as_deref(), Some("89135292926"));
        assert_eq!((h.receiver.name.as_str(), h.receiver.phone.as_deref()), ("Сергей", Some("89135292926")));
        assert_eq!((h.message.kind.as_str(), h.message.text.as_str()), ("text", "как так"));
        assert_eq!(h.at_ms, 1_695_284_360_957);
        assert_eq!(read_hook("another secret", &sig, CAPTURED.as_bytes()), Err(ChatHookError::BadSignature));
        assert_eq!(read_hook(secret, "not hex", CAPTURED.as_bytes()), Err(ChatHookError::BadSignature));
        let tampered = CAPTURED.replace("как так", "как эдак");
        assert_eq!(read_hook(secret, &sig, tampered.as_bytes()), Err(ChatHookError::BadSignature));
        assert!(matches!(parse_hook(br#"{"message":{}}"#), Err(ChatHookError::Malformed(_))));
    }

    #[test]
    fn messages_amojo_would_refuse_are_refused_before_sending() {
        let person = Participant { id: "p1".into(), name: "Анна".into(), ..Default::default() };
        let ok = ChatMessage::from_person("m1", "c1", person.clone(), "Здравствуйте", 1_700_000_000_123);
        let v = ok.to_json().unwrap();
        assert_eq!(v["payload"]["timestamp"], 1_700_000_000);
        assert!(v["payload"].get("receiver").is_none(), "the person's message has no receiver");
        assert!(ChatMessage { text: " ".into(), ..ok.clone() }.to_json().is_err());
        assert!(ChatMessage { msgid: String::new(), ..ok.clone() }.to_json().is_err());
        let operator = Participant { id: "op-1".into(), name: "Оператор".into(), ..Default::default() };
        let no_ref = ChatMessage::from_operator("m2", "c1", operator.clone(), person.clone(), "Ответ", 0);
        assert!(no_ref.to_json().is_err(), "an operator's message names the amoCRM user or bot");
        let with_ref = Participant { ref_id: Some("bot-1".into()), ..operator };
        let v = ChatMessage::from_operator("m2", "c1", with_ref, person, "Ответ", 0).to_json().unwrap();
        assert_eq!(v["payload"]["receiver"]["id"], "p1");
    }

    proptest::proptest! {
        /// Any body signed with a secret verifies with that secret, and not with another or
        /// once a byte changed.
        #[test]
        fn a_hook_signature_round_trips(
            secret in "[a-f0-9]{1,40}",
            other in "[g-z]{1,10}",
            body in proptest::collection::vec(proptest::num::u8::ANY, 1..300),
            flip in 0usize..300,
        ) {
            let sig = hook_signature(&secret, &body);
            proptest::prop_assert!(verify_hook(&secret, &body, &sig));
            proptest::prop_assert!(verify_hook(&secret, &body, &sig.to_uppercase()), "hex of either case");
            proptest::prop_assert!(!verify_hook(&other, &body, &sig));
            let mut changed = body.clone();
            let i = flip % changed.len();
            changed[i] ^= 0x01;
            proptest::prop_assert!(!verify_hook(&secret, &changed, &sig));
        }

        /// A request's signature changes with each part it covers.
        #[test]
        fn a_request_signature_covers_method_path_body_and_date(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
            path in "/v2/origin/custom/[a-z0-9_-]{1,30}",
        ) {
            let date = "Mon, 03 Oct 2020 15:11:21 +0000";
            let s = sign("secret", "POST", &path, &body, date);
            proptest::prop_assert_ne!(&s.signature, &sign("secret", "GET", &path, &body, date).signature);
            proptest::prop_assert_ne!(&s.signature, &sign("secret", "POST", &format!("{path}x"), &body, date).signature);
            proptest::prop_assert_ne!(&s.signature, &sign("secret", "POST", &path, &[&body[..], b" "].concat(), date).signature);
            proptest::prop_assert_ne!(&s.signature, &sign("secret", "POST", &path, &body, "Mon, 03 Oct 2020 15:11:22 +0000").signature);
            proptest::prop_assert_eq!(&s, &sign("secret", "post", &path, &body, date));
        }

        /// Any bytes: a hook or a clear error, never a panic.
        #[test]
        fn any_hook_body_is_read_or_refused(body in proptest::collection::vec(proptest::num::u8::ANY, 0..500)) {
            let _ = parse_hook(&body);
            let _ = read_hook("s", "00", &body);
        }

        /// A well-formed answer with any text and ids reads back as written.
        #[test]
        fn well_formed_answers_read_back(
            conversation in "[a-z0-9-]{1,36}",
            client in proptest::option::of("[a-z0-9-]{1,36}"),
            msgid in "[a-z0-9-]{1,36}",
            text in "\\PC{0,200}",
            ms in 0i64..4_000_000_000_000,
        ) {
            let mut conv = json!({"id": conversation});
            if let Some(c) = &client {
                conv["client_id"] = json!(c);
            }
            let body = json!({"account_id": "a", "time": ms / 1000, "message": {
                "receiver": {"id": "p", "name": "n"}, "sender": {"id": "u", "name": "m"},
                "conversation": conv, "timestamp": ms / 1000, "msec_timestamp": ms,
                "message": {"id": msgid, "type": "text", "text": text}}}).to_string();
            let h = read_hook("k", &hook_signature("k", body.as_bytes()), body.as_bytes()).unwrap();
            proptest::prop_assert_eq!(h.conversation.id, conversation);
            proptest::prop_assert_eq!(h.conversation.client_id, client);
            proptest::prop_assert_eq!(h.message.id, msgid);
            proptest::prop_assert_eq!(h.message.text, text);
            proptest::prop_assert_eq!(h.at_ms, ms);
        }
    }
}
