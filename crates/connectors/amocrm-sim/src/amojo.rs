//! amoCRM's Chats API ("amojo"): a messenger connected to amoCRM as a native chat channel, on
//! its own address ([`AmoSim::amojo_base`], as `https://amojo.amocrm.ru`).
//!
//! What it does, from amoCRM's chat API reference and Kommo's equivalent pages
//! (`research/C_business_connectors.md` §1.7):
//!
//! * **Signed requests.** Every call carries `Date` (RFC 2822, valid 15 minutes either way),
//!   `Content-Type: application/json`, `Content-MD5` (lowercase hex MD5 of the exact body bytes,
//!   of the empty string for a body-less call) and `X-Signature`: lowercase hex HMAC-SHA1, with
//!   the channel's secret, of `METHOD\nContent-MD5\nContent-Type\nDate\npath`. A wrong or
//!   stale signature or digest is **403**; a channel nobody registered is **404**. The error
//!   body amojo sends is not documented; here it is
//!   `{"error_code": <status>, "error_type": "…", "error_description": "…"}`.
//! * **Channels** are registered by amoCRM's support ([`AmoSim::add_channel`]: id, secret, and
//!   the webhook URL, where `:scope_id` is filled in). `POST /v2/origin/custom/{channel_id}/connect`
//!   `{"account_id": <the account's amojo_id>, "title", "hook_api_version": "v2"}` answers the
//!   `scope_id`, `{channel_id}_{amojo_id}`; `DELETE …/{channel_id}/disconnect` undoes it.
//! * **Messages**: `POST /v2/origin/custom/{scope_id}` with `event_type` `new_message` (or
//!   `edit_message`) and a `payload` (`timestamp`, `msgid`, `conversation_id`, `sender`, an
//!   optional `receiver`, `message` with `type` `text|file|picture|video|voice|audio|sticker|
//!   location|contact`, `silent`). Without `receiver` it is the person writing; with it, the
//!   business writing to the person (`sender.ref_id` names the user or the channel's bot). The
//!   conversation is made on its first message; a `msgid` seen before gives the first answer
//!   again and stores nothing (okno's retries do not double). `POST …/{scope_id}/chats` makes a
//!   conversation ahead of its first message.
//! * **Delivery status**: `POST …/{scope_id}/{msgid}/delivery_status`
//!   `{"msgid", "delivery_status": 1 delivered | 2 read | -1 error, "error_code": 901–905,
//!   "error"}` (905 needs the text), recorded on the message ([`ChatMessage::statuses`]).
//! * **Webhooks to the channel**: when an amoCRM user answers ([`AmoSim::user_reply`]), a JSON
//!   body (hook v2) is posted to the channel's URL with `X-Signature` = lowercase hex
//!   HMAC-SHA1 of the body with the channel secret; amojo waits [`HOOK_DEADLINE`], counts only
//!   200 as received and **never sends it again** ([`ChatHook`] records how it went).
//!
//! Not simulated: typing and reactions, history, the time window, amojo's own rate limit
//! (undocumented).

// Refusals travel as ready `Response`s out of the checks, as in the REST half.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::Router;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::{AmoSim, Inner};

/// How long amojo waits for the channel to answer a webhook.
pub const HOOK_DEADLINE: Duration = Duration::from_secs(5);
/// How far a request's `Date` may be from now.
pub const SIGNATURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The account's id in the Chats API (`GET /api/v4/account?with=amojo_id`).
pub const ACCOUNT_AMOJO_ID: &str = "af9945ff-1490-4cad-807d-945c15d88bec";
/// The most a request body may hold.
const MAX_BODY: usize = 4 << 20;

/// The message kinds amojo carries.
const KINDS: [&str; 9] = ["text", "contact", "file", "video", "picture", "voice", "audio", "sticker", "location"];

/// A conversation in a connected channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// The channel's own id of it (okno's `conversation_id`).
    pub conversation_id: String,
    /// amojo's id of it.
    pub amojo_id: String,
    pub scope_id: String,
    /// The person on the messenger's side.
    pub person: Person,
}

/// The person on the messenger's side of a conversation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Person {
    /// The channel's id of them.
    pub id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// A message in a conversation, whoever wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// amojo's id.
    pub msgid: String,
    /// The channel's id (`payload.msgid`); empty for an amoCRM user's answer.
    pub ref_id: String,
    pub conversation_id: String,
    /// Whether the person wrote it (no `receiver`).
    pub from_person: bool,
    /// The sender's id as given (the channel's id, or amojo's for an amoCRM user).
    pub sender_id: String,
    pub sender_name: String,
    /// For a message to the person: the amoCRM user's or the bot's amojo id.
    pub sender_ref_id: Option<String>,
    /// `text`, `picture`, `file`, …
    pub kind: String,
    pub text: String,
    pub media: String,
    pub file_name: String,
    pub file_size: i64,
    pub silent: bool,
    /// The delivery statuses the channel reported, in order.
    pub statuses: Vec<DeliveryStatus>,
}

/// A delivery status the channel reported for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryStatus {
    /// 1 delivered, 2 read, -1 not delivered.
    pub status: i64,
    pub error_code: Option<i64>,
    pub error: Option<String>,
}

/// A webhook amojo posted to the channel, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatHook {
    pub url: String,
    pub body: String,
    pub signature: String,
    /// amojo's id of the message it carries.
    pub msgid: String,
    /// The answer's status; `None`: no answer within the deadline (or no connection).
    pub status: Option<u16>,
    /// Answered 200 within the deadline. Either way it is never sent again.
    pub acknowledged: bool,
    pub elapsed: Duration,
}

/// A channel registered by support.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    secret: String,
    hook_url: String,
}

/// The Chats API's state, inside the account's world.
#[derive(Debug, Default)]
pub(crate) struct Chats {
    channels: HashMap<String, Channel>,
    /// Connected scopes → their channel.
    scopes: HashMap<String, String>,
    /// (scope, the channel's conversation id) → the conversation.
    conversations: BTreeMap<(String, String), Conversation>,
    messages: Vec<ChatMessage>,
    hooks: Vec<ChatHook>,
    /// Every request: method, path, status.
    log: Vec<(String, String, u16)>,
    next: u64,
}

impl Chats {
    /// A fresh id shaped like amojo's UUIDs.
    fn uuid(&mut self) -> String {
        self.next += 1;
        format!("{:08x}-5a5a-4b1d-9c0e-{:012x}", self.next, self.next * 7919)
    }
}

/// The amojo id of an amoCRM user.
pub(crate) fn user_amojo_id(user_id: i64) -> String {
    format!("{:08x}-0a0a-4e55-8000-{:012x}", user_id, user_id)
}

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/v2/origin/custom/{channel_id}/connect", post(connect))
        .route("/v2/origin/custom/{channel_id}/disconnect", delete(disconnect))
        .route("/v2/origin/custom/{scope_id}", post(message))
        .route("/v2/origin/custom/{scope_id}/chats", post(chat))
        .route("/v2/origin/custom/{scope_id}/{msgid}/delivery_status", post(delivery_status))
        .layer(axum::middleware::from_fn_with_state(inner.clone(), signed))
        .with_state(inner)
}

/// amojo's error body (its exact shape is not documented).
fn error(status: u16, kind: &str, description: &str) -> Response {
    let body = json!({"error_code": status, "error_type": kind, "error_description": description});
    (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), axum::Json(body)).into_response()
}

fn hex_hmac(secret: &str, data: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// Every request's signature is checked before its handler; each is logged with its status.
async fn signed(
    State(inner): State<Arc<Inner>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let answer = match axum::body::to_bytes(body, MAX_BODY).await {
        Err(_) => error(413, "BODY_TOO_LARGE", "the body is too large"),
        Ok(bytes) => match check(&inner, &parts.headers, &method, &path, &bytes) {
            Ok(()) => next.run(axum::extract::Request::from_parts(parts, Body::from(bytes))).await,
            Err(refused) => refused,
        },
    };
    inner.world().chats.log.push((method, path, answer.status().as_u16()));
    answer
}

/// The checks amojo makes of a request's headers, in order.
fn check(inner: &Inner, headers: &HeaderMap, method: &str, path: &str, body: &[u8]) -> Result<(), Response> {
    let scope = path.strip_prefix("/v2/origin/custom/").and_then(|rest| rest.split('/').next()).unwrap_or_default();
    let channel_id = scope.split('_').next().unwrap_or_default();
    let Some(channel) = inner.world().chats.channels.get(channel_id).cloned() else {
        return Err(error(404, "CHANNEL_NOT_FOUND", "no such channel"));
    };
    let head = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (date, content_type, md5, signature) =
        (head("date"), head("content-type"), head("content-md5"), head("x-signature"));
    if !content_type.starts_with("application/json") {
        return Err(error(400, "INVALID_CONTENT_TYPE", "Content-Type must be application/json"));
    }
    let when = jiff::fmt::rfc2822::parse(&date).map(|z| z.timestamp().as_second());
    let now = jiff::Timestamp::now().as_second();
    let window = SIGNATURE_WINDOW.as_secs() as i64;
    if !when.is_ok_and(|t| (now - t).abs() <= window) {
        return Err(error(403, "INVALID_DATE", "Date is missing, not RFC 2822, or off by more than 15 minutes"));
    }
    if md5 != hex::encode(Md5::digest(body)) {
        return Err(error(403, "INVALID_CONTENT_MD5", "Content-MD5 is not the body's"));
    }
    let expected = hex_hmac(&channel.secret, [method, &md5, &content_type, &date, path].join("\n").as_bytes());
    if signature != expected {
        return Err(error(403, "INVALID_SIGNATURE", "X-Signature does not match"));
    }
    Ok(())
}

fn field<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// `POST /v2/origin/custom/{channel_id}/connect`.
async fn connect(Path(channel_id): Path<String>, State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (account, title, version) = (field(&v, "/account_id"), field(&v, "/title"), field(&v, "/hook_api_version"));
    if account != ACCOUNT_AMOJO_ID {
        return error(404, "ACCOUNT_NOT_FOUND", "no account with this amojo id");
    }
    if title.trim().is_empty() {
        return error(400, "INVALID_REQUEST", "title is required");
    }
    if version != "v2" {
        return error(400, "INVALID_REQUEST", "hook_api_version v1 is no longer supported; use v2");
    }
    let scope_id = format!("{channel_id}_{account}");
    inner.world().chats.scopes.insert(scope_id.clone(), channel_id);
    let answer = json!({"account_id": account, "scope_id": scope_id, "title": title, "hook_api_version": version,
                        "is_time_window_disabled": true});
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// `DELETE /v2/origin/custom/{channel_id}/disconnect`.
async fn disconnect(Path(channel_id): Path<String>, State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let scope_id = format!("{channel_id}_{}", field(&v, "/account_id"));
    match inner.world().chats.scopes.remove(&scope_id) {
        Some(_) => StatusCode::OK.into_response(),
        None => error(404, "SCOPE_NOT_FOUND", "the channel is not connected to this account"),
    }
}

fn person(v: &Value) -> Person {
    let opt = |p: &str| Some(field(v, p).to_string()).filter(|s| !s.is_empty());
    Person {
        id: field(v, "/id").to_string(),
        name: field(v, "/name").to_string(),
        phone: opt("/profile/phone"),
        email: opt("/profile/email"),
    }
}

/// The conversation `conversation_id` of `scope`, made for `who` when new.
fn conversation(chats: &mut Chats, scope: &str, conversation_id: &str, who: Person) -> Conversation {
    let key = (scope.to_string(), conversation_id.to_string());
    if let Some(c) = chats.conversations.get(&key) {
        return c.clone();
    }
    let c = Conversation {
        conversation_id: conversation_id.to_string(),
        amojo_id: chats.uuid(),
        scope_id: scope.to_string(),
        person: who,
    };
    chats.conversations.insert(key, c.clone());
    c
}

/// `POST /v2/origin/custom/{scope_id}/chats`: a conversation before its first message.
async fn chat(Path(scope_id): Path<String>, State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut w = inner.world();
    if !w.chats.scopes.contains_key(&scope_id) {
        return error(404, "SCOPE_NOT_FOUND", "the channel is not connected to this account");
    }
    let (conversation_id, who) = (field(&v, "/conversation_id"), person(v.get("user").unwrap_or(&Value::Null)));
    if conversation_id.is_empty() || who.id.is_empty() {
        return error(400, "INVALID_REQUEST", "conversation_id and user.id are required");
    }
    let c = conversation(&mut w.chats, &scope_id, conversation_id, who);
    let answer = json!({"id": c.amojo_id, "user": {"id": c.amojo_id, "client_id": c.person.id, "name": c.person.name,
                        "phone": c.person.phone, "email": c.person.email}});
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// Why a message payload is refused, if it is.
fn refused(payload: &Value) -> Option<&'static str> {
    let m = payload.get("message").unwrap_or(&Value::Null);
    let kind = field(m, "/type");
    if field(payload, "/msgid").is_empty() {
        return Some("payload.msgid is required");
    }
    if field(payload, "/conversation_id").is_empty() && field(payload, "/conversation_ref_id").is_empty() {
        return Some("payload.conversation_id is required");
    }
    if field(payload, "/sender/id").is_empty() && field(payload, "/sender/ref_id").is_empty() {
        return Some("payload.sender.id is required");
    }
    if payload.get("receiver").is_some() && field(payload, "/sender/ref_id").is_empty() {
        return Some("a message to the person needs payload.sender.ref_id (a user's amojo_id or the bot's id)");
    }
    if payload.get("timestamp").and_then(Value::as_i64).is_none() {
        return Some("payload.timestamp is required");
    }
    if !KINDS.contains(&kind) {
        return Some("payload.message.type is not one amojo knows");
    }
    if kind == "text" && field(m, "/text").trim().is_empty() {
        return Some("payload.message.text is required for a text message");
    }
    let needs_file = matches!(kind, "file" | "video" | "picture");
    if needs_file
        && (field(m, "/media").is_empty() || field(m, "/file_name").is_empty() || m.get("file_size").is_none())
    {
        return Some("payload.message.media, file_name and file_size are required for a file");
    }
    if matches!(kind, "voice" | "audio" | "sticker") && field(m, "/media").is_empty() {
        return Some("payload.message.media is required");
    }
    None
}

/// `POST /v2/origin/custom/{scope_id}`: a message, new or edited.
async fn message(Path(scope_id): Path<String>, State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "INVALID_REQUEST", "the body is not JSON");
    };
    let event = field(&v, "/event_type");
    let payload = v.get("payload").unwrap_or(&Value::Null);
    let mut w = inner.world();
    if !w.chats.scopes.contains_key(&scope_id) {
        return error(404, "SCOPE_NOT_FOUND", "the channel is not connected to this account");
    }
    if event != "new_message" && event != "edit_message" {
        return error(400, "INVALID_REQUEST", "event_type must be new_message or edit_message");
    }
    if let Some(why) = refused(payload) {
        return error(400, "INVALID_REQUEST", why);
    }
    let chats = &mut w.chats;
    let ref_id = field(payload, "/msgid").to_string();
    let m = payload.get("message").unwrap_or(&Value::Null);
    let known = chats.messages.iter().position(|x| {
        x.ref_id == ref_id
            && chats.conversations.values().any(|c| c.scope_id == scope_id && c.conversation_id == x.conversation_id)
    });
    if event == "edit_message" {
        let Some(i) = known else { return error(404, "MESSAGE_NOT_FOUND", "no message with this msgid") };
        chats.messages[i].text = field(m, "/text").to_string();
        let answer = json!({"edit_message": {"msgid": chats.messages[i].msgid, "ref_id": ref_id}});
        return (StatusCode::OK, axum::Json(answer)).into_response();
    }
    let outgoing = payload.get("receiver").is_some();
    let ref_conversation = field(payload, "/conversation_ref_id");
    let mut conversation_id = field(payload, "/conversation_id").to_string();
    if conversation_id.is_empty() {
        // A reply to a conversation an amoCRM user began: amojo's id names it.
        match chats.conversations.values().find(|c| c.amojo_id == ref_conversation) {
            Some(c) => conversation_id = c.conversation_id.clone(),
            None => return error(404, "CONVERSATION_NOT_FOUND", "no conversation with this conversation_ref_id"),
        }
    }
    let who = person(payload.get(if outgoing { "receiver" } else { "sender" }).unwrap_or(&Value::Null));
    let c = conversation(chats, &scope_id, &conversation_id, who);
    let sender_id = field(payload, "/sender/id").to_string();
    let msgid = match known {
        Some(i) => chats.messages[i].msgid.clone(),
        None => {
            let msgid = chats.uuid();
            chats.messages.push(ChatMessage {
                msgid: msgid.clone(),
                ref_id: ref_id.clone(),
                conversation_id: conversation_id.clone(),
                from_person: !outgoing,
                sender_id: sender_id.clone(),
                sender_name: field(payload, "/sender/name").to_string(),
                sender_ref_id: Some(field(payload, "/sender/ref_id").to_string()).filter(|s| !s.is_empty()),
                kind: field(m, "/type").to_string(),
                text: field(m, "/text").to_string(),
                media: field(m, "/media").to_string(),
                file_name: field(m, "/file_name").to_string(),
                file_size: m.get("file_size").and_then(Value::as_i64).unwrap_or(0),
                silent: payload.get("silent").and_then(Value::as_bool).unwrap_or(false),
                statuses: Vec::new(),
            });
            msgid
        }
    };
    let answer = json!({"new_message": {"conversation_id": conversation_id, "sender_id": sender_id,
                        "receiver_id": c.amojo_id, "msgid": msgid, "ref_id": ref_id}});
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// `POST /v2/origin/custom/{scope_id}/{msgid}/delivery_status`.
async fn delivery_status(
    Path((scope_id, msgid)): Path<(String, String)>,
    State(inner): State<Arc<Inner>>,
    body: Bytes,
) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut w = inner.world();
    if !w.chats.scopes.contains_key(&scope_id) {
        return error(404, "SCOPE_NOT_FOUND", "the channel is not connected to this account");
    }
    if field(&v, "/msgid") != msgid {
        return error(400, "INVALID_REQUEST", "msgid must match the one in the path");
    }
    let status = v.get("delivery_status").and_then(Value::as_i64);
    let error_code = v.get("error_code").and_then(Value::as_i64);
    let text = Some(field(&v, "/error").to_string()).filter(|s| !s.is_empty());
    match (status, error_code) {
        (Some(1 | 2), _) => {}
        (Some(-1), Some(901..=904)) => {}
        (Some(-1), Some(905)) if text.is_some() => {}
        (Some(-1), Some(905)) => return error(400, "INVALID_REQUEST", "error_code 905 needs the error text"),
        (Some(-1), _) => return error(400, "INVALID_REQUEST", "delivery_status -1 needs error_code 901–905"),
        _ => return error(400, "INVALID_REQUEST", "delivery_status must be 1, 2 or -1"),
    }
    let Some(m) = w.chats.messages.iter_mut().find(|m| m.msgid == msgid) else {
        return error(404, "MESSAGE_NOT_FOUND", "no message with this msgid");
    };
    m.statuses.push(DeliveryStatus { status: status.unwrap_or(0), error_code, error: text });
    StatusCode::OK.into_response()
}

impl AmoSim {
    /// What okno is configured with as the Chats API's address (`https://amojo.amocrm.ru`).
    pub fn amojo_base(&self) -> String {
        self.inner.amojo_base.clone()
    }

    /// The account's id in the Chats API.
    pub fn amojo_id(&self) -> String {
        ACCOUNT_AMOJO_ID.to_string()
    }

    /// The amojo id of the account's user `user_id` (a message from them names it as
    /// `sender.ref_id`).
    pub fn user_amojo_id(&self, user_id: i64) -> String {
        user_amojo_id(user_id)
    }

    /// Support registers a chat channel: its id, its secret, and the URL its webhooks go to
    /// (`:scope_id` in it is filled in).
    pub fn add_channel(&self, channel_id: &str, secret: &str, hook_url: &str) {
        let channel = Channel { secret: secret.to_string(), hook_url: hook_url.to_string() };
        self.inner.world().chats.channels.insert(channel_id.to_string(), channel);
    }

    /// The scope the channel is connected with, if it is.
    pub fn scope_id(&self, channel_id: &str) -> Option<String> {
        let w = self.inner.world();
        w.chats.scopes.iter().find(|(_, c)| *c == channel_id).map(|(s, _)| s.clone())
    }

    /// Every conversation, by scope and the channel's id.
    pub fn conversations(&self) -> Vec<Conversation> {
        self.inner.world().chats.conversations.values().cloned().collect()
    }

    /// The messages of the channel's conversation `conversation_id`, in order.
    pub fn chat_messages(&self, conversation_id: &str) -> Vec<ChatMessage> {
        let w = self.inner.world();
        w.chats.messages.iter().filter(|m| m.conversation_id == conversation_id).cloned().collect()
    }

    /// The webhooks amojo posted so far.
    pub fn chat_hooks(&self) -> Vec<ChatHook> {
        self.inner.world().chats.hooks.clone()
    }

    /// The Chats API requests so far: method, path, status.
    pub fn amojo_log(&self) -> Vec<(String, String, u16)> {
        self.inner.world().chats.log.clone()
    }

    /// How long a chat webhook waits for its answer from now on (amojo: [`HOOK_DEADLINE`]).
    pub fn chat_hook_deadline(&self, deadline: Duration) {
        *self.inner.chat_hook_deadline.lock().unwrap_or_else(|e| e.into_inner()) = deadline;
    }

    /// The account's first user answers the person in conversation `conversation_id` from
    /// amoCRM: the signed webhook is posted once, given the deadline; returns how it went.
    pub async fn user_reply(&self, conversation_id: &str, text: &str) -> ChatHook {
        self.user_message(conversation_id, "text", text, "", "", 0).await
    }

    /// As [`AmoSim::user_reply`], with a file (`kind` `picture`, `file`, `video`, …) by URL.
    pub async fn user_reply_media(
        &self,
        conversation_id: &str,
        kind: &str,
        media: &str,
        file_name: &str,
        file_size: i64,
    ) -> ChatHook {
        self.user_message(conversation_id, kind, "", media, file_name, file_size).await
    }

    async fn user_message(
        &self,
        conversation_id: &str,
        kind: &str,
        text: &str,
        media: &str,
        file_name: &str,
        file_size: i64,
    ) -> ChatHook {
        let (url, secret, body, msgid) = {
            let mut w = self.inner.world();
            let (user_id, user_name) = w
                .users
                .iter()
                .next()
                .map(|(id, u)| (*id, u.get("name").and_then(Value::as_str).unwrap_or_default().to_string()))
                .unwrap_or((0, "Менеджер".to_string()));
            let c = w
                .chats
                .conversations
                .values()
                .find(|c| c.conversation_id == conversation_id)
                .cloned()
                .unwrap_or_else(|| panic!("amocrm-sim: no conversation {conversation_id}"));
            let channel_id = w.chats.scopes.get(&c.scope_id).cloned().unwrap_or_default();
            let channel = w
                .chats
                .channels
                .get(&channel_id)
                .cloned()
                .unwrap_or_else(|| panic!("amocrm-sim: the conversation's channel is not connected"));
            let msgid = w.chats.uuid();
            let now_ms = jiff::Timestamp::now().as_millisecond();
            let sender_id = user_amojo_id(user_id);
            let body = json!({
                "account_id": ACCOUNT_AMOJO_ID, "time": now_ms / 1000,
                "message": {
                    "receiver": {"id": c.person.id, "name": c.person.name, "phone": c.person.phone,
                                 "email": c.person.email, "client_id": c.person.id},
                    "sender": {"id": sender_id, "name": user_name},
                    "conversation": {"id": c.amojo_id, "client_id": c.conversation_id},
                    "timestamp": now_ms / 1000, "msec_timestamp": now_ms,
                    "message": {"id": msgid, "type": kind, "text": text, "markup": null, "tag": "",
                                "media": media, "thumbnail": "", "file_name": file_name, "file_size": file_size}
                }
            })
            .to_string();
            w.chats.messages.push(ChatMessage {
                msgid: msgid.clone(),
                ref_id: String::new(),
                conversation_id: conversation_id.to_string(),
                from_person: false,
                sender_id: sender_id.clone(),
                sender_name: user_name,
                sender_ref_id: Some(sender_id),
                kind: kind.to_string(),
                text: text.to_string(),
                media: media.to_string(),
                file_name: file_name.to_string(),
                file_size,
                silent: false,
                statuses: Vec::new(),
            });
            let url = channel.hook_url.replace(":scope_id", &c.scope_id);
            (url, channel.secret, body, msgid)
        };
        let signature = hex_hmac(&secret, body.as_bytes());
        let deadline = *self.inner.chat_hook_deadline.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let status = self
            .inner
            .http
            .post(&url)
            .header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("X-Signature", &signature)
            .timeout(deadline)
            .body(body.clone())
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16());
        let hook = ChatHook {
            url,
            body,
            signature,
            msgid,
            status,
            acknowledged: status == Some(200),
            elapsed: started.elapsed(),
        };
        self.inner.world().chats.hooks.push(hook.clone());
        hook
    }
}
