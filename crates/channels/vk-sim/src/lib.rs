//! A VK community-bot API simulator for okno's integration tests and benchmarks.
//!
//! It speaks the real wire format over real HTTP on 127.0.0.1 — `{api_base}/method/<name>`
//! with `access_token` and `v`, form-encoded or multipart bodies — and enforces VK's
//! documented limits and errors. Where each behaviour comes from:
//!
//! * **VKCOM/vk-api-schema** (copied in the research notes, `specs/vk/*.json`): method
//!   parameters (`messages.send`: `peer_id`, `user_id`, `peer_ids` ≤ 100, `random_id`,
//!   `keyboard`, `payload` ≤ 1000; `sendMessageEventAnswer.event_data` ≤ 1000), the error
//!   codes and texts (`errors.json`: 3, 5, 6, 8, 9, 15, 100, 104, 900, 901, 911, 914, 917),
//!   response shapes (`groups_long_poll_server` with a string `ts`, `addCallbackServer`
//!   → `server_id`, `messages_delete_full_response`), event shapes (`callback_base`
//!   `{type, event_id, v, object, group_id}`, `message_new` with `client_info`,
//!   `message_event`, `message_allow`, `message_deny`; `ref`/`ref_source` on a message from a
//!   deep link; `message_edit` with the message as it now is; `messages.send.forward` with
//!   `is_reply`, how a community answers a message known by its number).
//! * **dev.vk.com** (as quoted in the research notes and stored pages): the
//!   `{"error":{"error_code","error_msg","request_params"}}` envelope on HTTP 200, `v`
//!   mandatory, no JSON bodies; the Callback API confirmation string and `secret`, answer
//!   `ok` with 200 or be retried; Bots Long Poll `a_check` with `failed` 1/2/3 and `wait` ≤ 90;
//!   keyboards 5 × 10 with 40 buttons, inline 5 × 6 with 10, `one_time` not inline, 911.
//! * **Client libraries**: vkbottle (`polling/base.py` failure handling, `_send_chunked`
//!   splitting at 4,096 characters and the note that VK drops a message whose `random_id` was
//!   used before, the uploaders' field names `photo`/`file` and the
//!   `getMessagesUploadServer` → upload → `saveMessagesPhoto`/`docs.save` steps),
//!   `SevereCloud/vksdk` (20 requests/s for a community token).
//! * Weaker, marked `[INF]`/`[3P]` at each use: a button `label` ≤ 40 and `payload` ≤ 255,
//!   `X-Retry-Counter` on Callback API retries.
//!
//! The message limit: the schema says `maxLength: 9000` for `message`, but VK answers 914
//! "Message is too long" above 4,096 characters, where client libraries split; the simulator
//! enforces 4,096.
//!
//! Not simulated: captcha (14), `execute`, carousels (`template`), forwarding, stickers'
//! content, user tokens, the 24-hour edit window (909), Long Poll settings per event type
//! (every event goes to Long Poll and to every confirmed Callback API server).

mod callback;
mod keyboard;
mod server;
mod state;
mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::state::{Group, Inner, Person, CHAT_PEER_BASE};
pub use crate::users::{SimChat, SimUser};

/// A running simulator; cheap to clone.
#[derive(Clone)]
pub struct VkSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for VkSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VkSim").field("api_base", &self.inner.base).finish()
    }
}

/// One successful `messages.send`, `messages.edit` or `messages.delete`.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The method.
    pub method: String,
    /// Where.
    pub peer_id: i64,
    /// The message.
    pub message_id: i64,
    /// `message` as sent (empty on a delete).
    pub text: String,
    /// The `keyboard` as parsed JSON, if any.
    pub keyboard: Option<Value>,
    /// `attachment` as sent.
    pub attachment: String,
    /// `random_id` as sent (0 on edits and deletes).
    pub random_id: i64,
    /// When the simulator accepted it.
    pub at: Instant,
}

/// One `messages.sendMessageEventAnswer`.
#[derive(Debug, Clone)]
pub struct EventAnswer {
    /// The answered press.
    pub event_id: String,
    /// Who pressed.
    pub user_id: i64,
    /// Where.
    pub peer_id: i64,
    /// `event_data` as parsed JSON, if any.
    pub event_data: Option<Value>,
    /// Time from the press to the answer.
    pub after: Duration,
}

/// One Callback API push attempt.
#[derive(Debug, Clone)]
pub struct CallbackAttempt {
    /// The server's URL.
    pub url: String,
    /// The event's `type`.
    pub event_type: String,
    /// 0 for the first attempt, then the `X-Retry-Counter` sent.
    pub retry: u32,
    /// The HTTP status answered (`None`: no answer).
    pub status: Option<u16>,
    /// The body answered.
    pub answer: String,
    /// When.
    pub at: Instant,
}

/// A failure the next API call of a community answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A VK error with its standard text, e.g. 6 (too many requests per second), 9 (flood
    /// control), 10 (internal server error).
    Error(i64),
    /// An HTTP status from the gateway in front of the API (e.g. 502, 504).
    Status(u16),
}

impl VkSim {
    /// Starts on 127.0.0.1:0. Test helper: panics when the port cannot be bound.
    pub async fn start() -> VkSim {
        VkSim::try_start().await.unwrap_or_else(|e| panic!("vk-sim: starting on 127.0.0.1:0: {e}"))
    }

    /// Starts on 127.0.0.1 on a free port.
    pub async fn try_start() -> std::io::Result<VkSim> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::new(addr)?);
        let app = server::router(inner.clone());
        let server = inner.clone();
        tokio::spawn(async move {
            let stopping = server.clone();
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move { stopping.stopping().await });
            if let Err(e) = serve.await {
                eprintln!("vk-sim: the HTTP server stopped: {e}");
            }
            server.done.send_replace(true);
        });
        Ok(VkSim { inner })
    }

    /// Stops the server.
    pub fn stop(&self) {
        self.inner.stop.send_replace(true);
    }

    /// Waits until the server has stopped.
    pub async fn stopped(&self) {
        let mut done = self.inner.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    /// E.g. `http://127.0.0.1:PORT`: requests go to `{api_base}/method/<name>` (instead of
    /// `https://api.vk.com/method/<name>`).
    pub fn api_base(&self) -> String {
        self.inner.base.clone()
    }

    fn must<T>(&self, token: &str, f: impl FnOnce(&mut Group) -> T) -> T {
        let mut world = self.inner.world();
        let g =
            world.group(token).unwrap_or_else(|| panic!("vk-sim: no community with this token; call add_group first"));
        f(g)
    }

    /// Registers a community with its access token.
    pub fn add_group(&self, token: &str, group_id: i64, name: &str) {
        assert!(group_id > 0, "vk-sim: community ids are positive");
        self.inner.world().groups.entry(token.to_string()).or_insert_with(|| Group::new(group_id, name));
    }

    /// The string the Callback API server must answer the confirmation request with (what
    /// `groups.getCallbackConfirmationCode` returns).
    pub fn confirmation_code(&self, token: &str) -> String {
        self.must(token, |g| g.confirmation.clone())
    }

    /// VK's rate limit (20 requests/s per community token) on (the default) or off.
    pub fn set_limits(&self, on: bool) {
        self.inner.world().limits_on = on;
    }

    /// The Callback API retry schedule: the first retry after `first`, doubling, at most
    /// `max_retries` (default 50 ms, 5).
    pub fn set_callback_retry(&self, first: Duration, max_retries: u32) {
        let mut world = self.inner.world();
        world.retry_first = first;
        world.max_retries = max_retries;
    }

    /// The next API call of the community fails with `fault`; several queue up.
    pub fn fail_next(&self, token: &str, fault: Fault) {
        self.must(token, |g| g.faults.push_back(fault));
    }

    /// A person who has written to the community before (and so allowed its messages).
    pub fn user(&self, token: &str, user_id: i64, name: &str) -> SimUser {
        assert!(user_id > 0 && user_id < CHAT_PEER_BASE, "vk-sim: user ids are positive and below 2e9");
        self.must(token, |g| {
            g.people.insert(user_id, Person { name: name.to_string(), allowed: true, blacklisted: false });
        });
        SimUser { inner: self.inner.clone(), token: token.to_string(), id: user_id }
    }

    /// A person who never allowed the community's messages: sends answer 901 until they write
    /// or allow them.
    pub fn stranger(&self, token: &str, user_id: i64, name: &str) -> SimUser {
        let u = self.user(token, user_id, name);
        self.must(token, |g| {
            if let Some(p) = g.people.get_mut(&user_id) {
                p.allowed = false;
            }
        });
        u
    }

    /// A group conversation with the community in it; its peer id is `2000000000 + chat_id`.
    pub fn chat(&self, token: &str, chat_id: i64, title: &str) -> SimChat {
        assert!(chat_id > 0, "vk-sim: chat ids are positive");
        let peer_id = CHAT_PEER_BASE + chat_id;
        self.must(token, |g| g.chats.insert(peer_id, title.to_string()));
        SimChat { inner: self.inner.clone(), token: token.to_string(), peer_id }
    }

    /// The Long Poll key expires: polls with it answer `{"failed":2}`.
    pub fn expire_longpoll_key(&self, token: &str) {
        self.must(token, |g| {
            let n = g.next_seq();
            g.lp_key = format!("lpkey{}x{n}", g.id);
        });
    }

    /// The Long Poll history is dropped: polls with an older `ts` answer `{"failed":1,"ts":N}`.
    pub fn drop_longpoll_history(&self, token: &str) {
        self.must(token, |g| {
            g.lp_events.clear();
            g.lp_oldest = g.lp_ts;
        });
    }

    /// The Long Poll information is lost: polls answer `{"failed":3}` until a new key and ts
    /// are fetched.
    pub fn lose_longpoll_information(&self, token: &str) {
        self.expire_longpoll_key(token);
        self.must(token, |g| g.lp_lost = true);
    }

    /// Sends the last event again, with its `event_id` (VK: "If it passed twice or more — you
    /// should ignore it").
    pub fn replay_last_event(&self, token: &str) {
        let (group_id, event, servers) = self.must(token, |g| {
            let e = g.last_event.clone().unwrap_or_else(|| panic!("vk-sim: no event to replay"));
            let (e, s) = g.push_raw(e);
            (g.id, e, s)
        });
        callback::spawn_pushes(&self.inner, group_id, &event, servers);
    }

    /// Every successful send, edit and delete, in order.
    pub fn sent(&self, token: &str) -> Vec<Sent> {
        self.must(token, |g| g.sent.clone())
    }

    /// How many messages were sent, without copying them (a benchmark asks often).
    pub fn sent_count(&self, token: &str) -> usize {
        self.must(token, |g| g.sent.len())
    }

    /// Waits until at least `n` sends were made and returns them; panics after `secs`.
    pub async fn wait_sent(&self, token: &str, n: usize, secs: u64) -> Vec<Sent> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let sent = self.sent(token);
            if sent.len() >= n {
                return sent;
            }
            assert!(Instant::now() < deadline, "vk-sim: expected {n} sends within {secs}s, got {}", sent.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A message as the conversation shows it now (`messages_message`), by id.
    pub fn message(&self, token: &str, message_id: i64) -> Option<Value> {
        self.must(token, |g| g.messages.get(&message_id).map(|m| m.json.clone()))
    }

    /// Every `messages.sendMessageEventAnswer`, in order.
    pub fn event_answers(&self, token: &str) -> Vec<EventAnswer> {
        self.must(token, |g| g.answers.clone())
    }

    /// Every Callback API push attempt, in order.
    pub fn callback_attempts(&self, token: &str) -> Vec<CallbackAttempt> {
        self.must(token, |g| g.attempts.clone())
    }

    /// The status of each Callback API server (`unconfigured`, `ok`, `failed`), by id.
    pub fn callback_servers(&self, token: &str) -> Vec<(i64, String)> {
        self.must(token, |g| g.servers.iter().map(|s| (s.id, s.status.clone())).collect())
    }

    /// How many error 6/9 answers the community got.
    pub fn rate_limited(&self, token: &str) -> usize {
        self.must(token, |g| g.rate_limited)
    }

    /// How many calls of a method the community made, failed ones included.
    pub fn calls(&self, token: &str, method: &str) -> usize {
        self.must(token, |g| g.calls.get(method).copied().unwrap_or(0))
    }

    /// A saved document's title and bytes, by id.
    pub fn doc(&self, token: &str, doc_id: i64) -> Option<(String, Vec<u8>)> {
        self.must(token, |g| g.docs.get(&doc_id).map(|d| (d.title.clone(), d.bytes.to_vec())))
    }
}
