//! An Odnoklassniki (OK.ru) Bot API simulator for okno's integration tests.
//!
//! It speaks the group-chat Bot API of OK's Graph API over real HTTP on 127.0.0.1 — the paths
//! of `https://api.ok.ru/graph/...` under [`OkSim::api_base`] — with the token as the query
//! parameter `access_token`. Where each behaviour comes from:
//!
//! * **apiok.ru / new.apiok.ru** Graph API pages (stored copies) and **apiok/documentation**
//!   (`docs/method/en/graph.user/*`): `GET /graph/me/info` (the token's group),
//!   `POST /graph/me/subscribe {"url"}` → `{"success":true}`, `GET /graph/me/subscriptions`,
//!   `POST /graph/me/unsubscribe`; webhook delivery as a JSON POST that must be answered 200
//!   within 5 s or is retried; the webhook message shape (`sender.user_id`,
//!   `recipient.chat_id`, `message{text, seq, mid, attachments}`, `timestamp` in ms); sending
//!   with `POST /graph/me/messages/{chat_id}` and `POST /graph/{chat_id}/messages`
//!   (`recipient` + `message{text, attachment|attachments, reply_to}`); direct messages to
//!   people who allowed them, `{"success":[…],"chat_ids":[…]}` for `user_ids`; at most 5
//!   attachments and one `IMAGE` by URL; `POST /graph/{chat_id}/answer?callbackId=` for
//!   callback buttons; `GET /graph/me/chat/{chat_id}`; `Content-Type:
//!   application/json;charset=utf-8` required on POSTs; ids as `user:…`, `chat:…`,
//!   `mid:…`.
//! * **Third-party OK bot clients** (marked `[3P]`; weaker): `webhookType`
//!   (`MESSAGE_CREATED`, `MESSAGE_CALLBACK`) with `callbackId` and `payload` on callbacks;
//!   the `INLINE_KEYBOARD` shape (`payload.keyboard.buttons`, `CALLBACK`/`LINK`/
//!   `REQUEST_CONTACT`/`REQUEST_GEO_LOCATION`); `GET /graph/me/fileUploadUrl?type=` →
//!   `{url, token}` and the multipart field `file`; errors as
//!   `{"error_code","error_msg","error_data"}` on HTTP 200 with an `invocation-error` header,
//!   codes from OK's REST list (102 `PARAM_SESSION_EXPIRED`, 100 `PARAM`, 10
//!   `PERMISSION_DENIED`, 300 `NOT_FOUND`).
//!
//! Not simulated, because no source found documents it: long polling (`graph.user.updates`:
//! its path and marker semantics are unverified), rate limits and text-length limits (none
//! published; inject errors such as 8 `FLOOD_BLOCKED` with [`OkSim::fail_next`]), a webhook
//! signature (none exists — okno must protect the URL itself), the upload host's answer, the
//! 8-hour removal of a failing webhook, chat control (`chat_control`, `sender_action`).

mod server;
mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::state::{now_ms, Chat, Group, Inner, Msg, Person};

/// A running simulator; cheap to clone.
#[derive(Clone)]
pub struct OkSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OkSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OkSim").field("api_base", &self.inner.base).finish()
    }
}

/// One successful message the group's bot posted.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `graph.user.messages` or `graph.chat.messages`.
    pub method: String,
    /// The chat (`chat:…`).
    pub chat_id: String,
    /// The new message (`mid:…`).
    pub mid: String,
    /// `message.text`.
    pub text: String,
    /// `message.attachment(s)` as sent.
    pub attachments: Vec<Value>,
    /// `message.reply_to`.
    pub reply_to: Option<String>,
    /// When the simulator accepted it.
    pub at: Instant,
}

/// One `graph.chat.answer`.
#[derive(Debug, Clone)]
pub struct CallbackAnswer {
    /// The answered press.
    pub callback_id: String,
    /// The chat.
    pub chat_id: String,
    /// The answer message's text.
    pub text: String,
    /// Time from the press to the answer.
    pub after: Duration,
}

/// One webhook delivery attempt.
#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    /// Where.
    pub url: String,
    /// The event's `webhookType`.
    pub webhook_type: String,
    /// The status answered (`None`: no answer within 5 s, or refused).
    pub status: Option<u16>,
    /// 1 for the first delivery.
    pub attempt: u32,
    /// When.
    pub at: Instant,
}

/// A failure the next API call of a group answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// An OK error code in the error envelope, e.g. 8 (`FLOOD_BLOCKED`), 2 (`SERVICE`).
    Error(i64),
    /// An HTTP status (e.g. 502).
    Status(u16),
}

impl OkSim {
    /// Starts on 127.0.0.1:0. Test helper: panics when the port cannot be bound.
    pub async fn start() -> OkSim {
        OkSim::try_start().await.unwrap_or_else(|e| panic!("ok-sim: starting on 127.0.0.1:0: {e}"))
    }

    /// Starts on 127.0.0.1 on a free port.
    pub async fn try_start() -> std::io::Result<OkSim> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::new(addr)?);
        let app = server::router(inner.clone());
        let server = inner.clone();
        tokio::spawn(async move {
            let stopping = server.clone();
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move { stopping.stopping().await });
            if let Err(e) = serve.await {
                eprintln!("ok-sim: the HTTP server stopped: {e}");
            }
            server.done.send_replace(true);
        });
        Ok(OkSim { inner })
    }

    /// Stops the server.
    pub fn stop(&self) {
        self.inner.stop.send_replace(true);
    }

    /// E.g. `http://127.0.0.1:PORT` (instead of `https://api.ok.ru`).
    pub fn api_base(&self) -> String {
        self.inner.base.clone()
    }

    fn must<T>(&self, token: &str, f: impl FnOnce(&mut Group) -> T) -> T {
        let mut world = self.inner.world();
        let g = world
            .groups
            .get_mut(token)
            .unwrap_or_else(|| panic!("ok-sim: no group with this token; call add_group first"));
        f(g)
    }

    /// Registers a group with its bot token (Settings → Messages → «Работа с API»).
    pub fn add_group(&self, token: &str, group_id: i64, name: &str) {
        self.inner.world().groups.entry(token.to_string()).or_insert_with(|| Group::new(group_id, name));
    }

    /// The webhook retry schedule: first retry after `first`, doubling, at most `max_retries`.
    pub fn set_webhook_retry(&self, first: Duration, max_retries: u32) {
        let mut w = self.inner.world();
        w.retry_first = first;
        w.max_retries = max_retries;
    }

    /// The next API call of the group fails with `fault`; several queue up.
    pub fn fail_next(&self, token: &str, fault: Fault) {
        self.must(token, |g| g.faults.push_back(fault));
    }

    /// A person who allowed the group's messages, with a dialog chat (`chat:D<id>`).
    pub fn user(&self, token: &str, user_id: i64, name: &str) -> SimUser {
        let user = format!("user:{user_id}");
        let chat = format!("chat:D{user_id:x}");
        self.must(token, |g| {
            g.people.insert(user.clone(), Person { name: name.to_string(), allowed: true });
            g.chats.insert(chat.clone(), Chat { title: name.to_string(), user: Some(user.clone()) });
        });
        SimUser { inner: self.inner.clone(), token: token.to_string(), user, chat }
    }

    /// A group chat with the bot in it (`chat:C…`).
    pub fn chat(&self, token: &str, chat_id: &str, title: &str) -> SimChat {
        assert!(chat_id.starts_with("chat:"), "ok-sim: chat ids look like chat:C3ecb9d02a600");
        self.must(token, |g| g.chats.insert(chat_id.to_string(), Chat { title: title.to_string(), user: None }));
        SimChat { inner: self.inner.clone(), token: token.to_string(), chat: chat_id.to_string() }
    }

    /// Every successful post, in order.
    pub fn sent(&self, token: &str) -> Vec<Sent> {
        self.must(token, |g| g.sent.clone())
    }

    /// How many messages were sent, without copying them (a benchmark asks often).
    pub fn sent_count(&self, token: &str) -> usize {
        self.must(token, |g| g.sent.len())
    }

    /// Every callback answer, in order.
    pub fn callback_answers(&self, token: &str) -> Vec<CallbackAnswer> {
        self.must(token, |g| g.answers.clone())
    }

    /// Every webhook delivery attempt, in order.
    pub fn webhook_attempts(&self, token: &str) -> Vec<WebhookAttempt> {
        self.must(token, |g| g.attempts.clone())
    }

    /// How many calls of `"<METHOD> <path pattern>"` the group made.
    pub fn calls(&self, token: &str, key: &str) -> usize {
        self.must(token, |g| g.calls.get(key).copied().unwrap_or(0))
    }

    /// The last event the group emitted, as it is pushed to the webhooks (for tests that hand
    /// it to a receiver themselves).
    pub fn last_event(&self, token: &str) -> Option<Value> {
        self.must(token, |g| g.last_event.clone())
    }

    /// Every subscribed webhook address.
    pub fn subscriptions(&self, token: &str) -> Vec<String> {
        self.must(token, |g| g.subscriptions.iter().map(|(u, _)| u.clone()).collect())
    }

    /// Sends the last event to the webhooks again, unchanged.
    pub fn replay_last_event(&self, token: &str) {
        let (event, urls) = self.must(token, |g| {
            let e = g.last_event.clone().unwrap_or_else(|| panic!("ok-sim: no event to replay"));
            (e, g.subscriptions.iter().map(|(u, _)| u.clone()).collect())
        });
        server::push(&self.inner, token, event, urls);
    }
}

/// Emits an event to every subscription.
fn emit(inner: &Arc<Inner>, token: &str, g: &mut Group, event: Value) {
    g.last_event = Some(event.clone());
    let urls = g.subscriptions.iter().map(|(u, _)| u.clone()).collect();
    server::push(inner, token, event, urls);
}

fn act<T>(inner: &Arc<Inner>, token: &str, f: impl FnOnce(&mut Group) -> T) -> T {
    let mut world = inner.world();
    let g = world.groups.get_mut(token).unwrap_or_else(|| panic!("ok-sim: no group with this token"));
    f(g)
}

/// A person's message in a chat: `MESSAGE_CREATED`; returns the `mid`.
fn incoming(inner: &Arc<Inner>, token: &str, chat: &str, user: &str, mut message: Value) -> String {
    act(inner, token, |g| {
        let mid = g.next_mid(chat);
        let n = g.next_seq();
        message["mid"] = mid.clone().into();
        message["seq"] = (98_211_000_000_000_000i64 + n as i64).into();
        let name = g.people.get(user).map(|p| p.name.clone()).unwrap_or_default();
        let event = json!({
            "webhookType": "MESSAGE_CREATED",
            "sender": {"user_id": user, "name": name},
            "recipient": {"chat_id": chat},
            "message": message,
            "timestamp": now_ms(),
        });
        g.messages.insert(mid.clone(), Msg { chat_id: chat.to_string(), json: event.clone() });
        emit(inner, token, g, event);
        mid
    })
}

/// A press of a `CALLBACK` button on a bot message: `MESSAGE_CALLBACK` with `callbackId` and
/// `payload` ([3P]); returns the `callbackId`.
fn press(inner: &Arc<Inner>, token: &str, chat: &str, user: &str, mid: &str, payload: &str) -> String {
    act(inner, token, |g| {
        let m = g.messages.get(mid).unwrap_or_else(|| panic!("ok-sim: no message {mid}"));
        assert_eq!(m.chat_id, chat, "ok-sim: message {mid} is in another chat");
        let has = m.json["message"]["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["type"] == "INLINE_KEYBOARD")
            .flat_map(|a| a["payload"]["keyboard"]["buttons"].as_array().cloned().unwrap_or_default())
            .flat_map(|r| r.as_array().cloned().unwrap_or_default())
            .any(|b| b["type"] == "CALLBACK" && b["payload"].as_str() == Some(payload));
        assert!(has, "ok-sim: message {mid} has no CALLBACK button with payload {payload:?}");
        let n = g.next_seq();
        let callback_id = format!("cb{:x}.{n}", g.id);
        g.presses.insert(callback_id.clone(), (chat.to_string(), Instant::now()));
        let name = g.people.get(user).map(|p| p.name.clone()).unwrap_or_default();
        let event = json!({
            "webhookType": "MESSAGE_CALLBACK",
            "sender": {"user_id": user, "name": name},
            "recipient": {"chat_id": chat},
            "callbackId": callback_id,
            "payload": payload,
            "timestamp": now_ms(),
        });
        emit(inner, token, g, event);
        callback_id
    })
}

/// A person in their dialog with the group.
#[derive(Clone)]
pub struct SimUser {
    inner: Arc<Inner>,
    token: String,
    user: String,
    chat: String,
}

impl std::fmt::Debug for SimUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimUser").field("user", &self.user).finish()
    }
}

impl SimUser {
    /// `user:<id>`.
    pub fn user_id(&self) -> &str {
        &self.user
    }

    /// Their dialog chat with the group (`chat:…`).
    pub fn chat_id(&self) -> &str {
        &self.chat
    }

    /// Writes to the group; returns the `mid`.
    pub fn send_text(&self, text: &str) -> String {
        incoming(&self.inner, &self.token, &self.chat, &self.user, json!({"text": text}))
    }

    /// Sends a file: a `FILE` attachment whose `payload.url` serves the bytes.
    pub fn send_file(&self, bytes: &[u8]) -> String {
        let base = self.inner.base.clone();
        let token = act(&self.inner, &self.token, |g| {
            let n = g.next_seq();
            let t = format!("in{}_{n}", g.id);
            g.files.insert(t.clone(), Bytes::copy_from_slice(bytes));
            t
        });
        let a = json!({"type": "FILE", "payload": {"url": format!("{base}/files/{token}"), "token": token}});
        incoming(&self.inner, &self.token, &self.chat, &self.user, json!({"text": "", "attachments": [a]}))
    }

    /// Presses a `CALLBACK` button on a bot message in their dialog; returns the `callbackId`.
    pub fn press(&self, mid: &str, payload: &str) -> String {
        press(&self.inner, &self.token, &self.chat, &self.user, mid, payload)
    }

    /// Forbids the group's messages: sends answer 10 `PERMISSION_DENIED`.
    pub fn disallow(&self) {
        act(&self.inner, &self.token, |g| {
            if let Some(p) = g.people.get_mut(&self.user) {
                p.allowed = false;
            }
        });
    }
}

/// A group chat.
#[derive(Clone)]
pub struct SimChat {
    inner: Arc<Inner>,
    token: String,
    chat: String,
}

impl std::fmt::Debug for SimChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimChat").field("chat", &self.chat).finish()
    }
}

impl SimChat {
    /// `chat:…`.
    pub fn chat_id(&self) -> &str {
        &self.chat
    }

    /// A member writes; returns the `mid`.
    pub fn send_text(&self, from: &SimUser, text: &str) -> String {
        incoming(&self.inner, &self.token, &self.chat, &from.user, json!({"text": text}))
    }

    /// A member presses a `CALLBACK` button; returns the `callbackId`.
    pub fn press(&self, from: &SimUser, mid: &str, payload: &str) -> String {
        press(&self.inner, &self.token, &self.chat, &from.user, mid, payload)
    }
}
