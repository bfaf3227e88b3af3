//! A MAX Bot API simulator for okno's integration tests and benchmarks.
//!
//! It speaks the real wire format over real HTTP on 127.0.0.1 — the paths of
//! `platform-api2.max.ru` under [`MaxSim::api_base`] — and enforces the platform's documented
//! limits and errors. Where each behaviour comes from:
//!
//! * **max-bot-api-schemas** (`max-messenger-bot/max-bot-api-schemas`, `schema_2026_07_01.yaml`,
//!   the dev.max.ru OpenAPI 0.0.32): the paths, `NewMessageBody.text` `maxLength: 4000`,
//!   button limits (`text` 1–128, callback `payload` ≤ 1024, link `url` ≤ 2048), `GET /updates`
//!   (`limit` 1–1000, `timeout` 0–90, `marker`, `types`; no marker → only the latest update;
//!   405 while a webhook is set), `SubscriptionRequestBody.secret` (`^[a-zA-Z0-9_-]{5,256}$`),
//!   the webhook retry policy (10 retries, 60 s then ×2.5) and the `X-Max-Bot-Api-Secret`
//!   header, `UploadType` (`image|video|audio|file`; `photo` refused), a file or audio attachment
//!   being the only one, the `Error` body `{"code","message"}`, `SimpleQueryResult`,
//!   30 rps per bot and 2 sends per second per chat.
//! * **max-bot-api-client-go** (`const.go`, `client.go`, `upload.go`, `stabs/*`): the raw token
//!   in the `Authorization` header (no `Bearer`, no query token), the upload form field `data`
//!   and its replies (`{"token"}`, `{"photos":{…}}`, `<retval>1</retval>`), update shapes
//!   without an update id, `verify.token`/`Invalid access_token` (401),
//!   `attachment.not.ready`.
//! * **max-bot-api-client-ts** (`client.ts`, `polling.ts`, `messages/api.ts`): the same header,
//!   429 and 5xx treated as retryable, `attachment.not.ready` retried.
//! * Third-party observations, weaker (marked `[3P]` at each use): the 429 body
//!   `{"code":"too.many.requests","message":"Too many requests. Limit is: N calls per second."}`
//!   (a live probe recorded in `love-apples/maxapi` PR #188), 403 `chat.denied` /
//!   `error.dialog.suspended` for a person who stopped the bot, 400 `proto.payload` for an
//!   invalid body, 404 `chat.not.found`.
//!
//! Not simulated: TLS and the port-443 rule for webhooks (tests serve plain HTTP on
//! 127.0.0.1), the 8-hour automatic unsubscribe, markup parsing of `markdown`/`html` text (the
//! text is kept as sent, the format is checked), the 7-day edit window, `GET /chats`, pins,
//! members, actions, videos and the resumable upload protocol.
//!
//! A test starts it with [`MaxSim::start`], registers a bot with [`MaxSim::add_bot`], plays
//! people with [`SimUser`] and [`SimGroup`], and reads back what the bot did with
//! [`MaxSim::sent`] and friends. Those helpers panic on a mistake (a test's failure).

mod body;
mod server;
mod state;
mod users;
mod webhook;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::state::{Bot, Inner, Person};
pub use crate::users::{SimGroup, SimUser};

/// A running simulator; cheap to clone (all clones share one server and one state).
#[derive(Clone)]
pub struct MaxSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MaxSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaxSim").field("api_base", &self.inner.base).finish()
    }
}

/// One successful send, edit, delete or callback answer that changed a message.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `POST /messages`, `PUT /messages`, `DELETE /messages` or `POST /answers`.
    pub method: String,
    /// The chat it went to.
    pub chat_id: i64,
    /// The message's `mid`.
    pub mid: String,
    /// `text` as sent (`None` when absent or on a delete).
    pub text: Option<String>,
    /// `format` as sent (`markdown` or `html`).
    pub format: Option<String>,
    /// `attachments` as sent.
    pub attachments: Vec<Value>,
    /// When the simulator accepted it.
    pub at: Instant,
}

/// One `POST /answers`.
#[derive(Debug, Clone)]
pub struct CallbackAnswer {
    /// The answered press.
    pub callback_id: String,
    /// The one-time notification, if any.
    pub notification: Option<String>,
    /// The new message body that replaced the pressed message, if any.
    pub message: Option<Value>,
    /// Time from the press to the answer.
    pub after: Duration,
}

/// One webhook delivery attempt.
#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    /// Where it went.
    pub url: String,
    /// The update's `update_type`.
    pub update_type: String,
    /// The `X-Max-Bot-Api-Secret` header sent, if any.
    pub secret: Option<String>,
    /// The HTTP status answered (`None`: no answer, e.g. refused or timed out).
    pub status: Option<u16>,
    /// Which attempt this was for the update (1 = the first delivery).
    pub attempt: u32,
    /// When it was made.
    pub at: Instant,
}

/// A webhook subscription as `GET /subscriptions` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionInfo {
    /// Where updates are POSTed.
    pub url: String,
    /// Sent as `X-Max-Bot-Api-Secret`.
    pub secret: Option<String>,
    /// The update types asked for, if set.
    pub update_types: Option<Vec<String>>,
}

/// A failure the next API call of a bot answers with, whatever it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// That HTTP status (e.g. 500, 502, 503) with the platform's error body.
    Status(u16),
    /// 429 `too.many.requests`, as when the bot exceeds its rate.
    RateLimited,
}

impl MaxSim {
    /// Starts on 127.0.0.1:0. Test helper: panics when the port cannot be bound.
    pub async fn start() -> MaxSim {
        MaxSim::try_start().await.unwrap_or_else(|e| panic!("max-sim: starting on 127.0.0.1:0: {e}"))
    }

    /// Starts on 127.0.0.1 on a free port.
    pub async fn try_start() -> std::io::Result<MaxSim> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::new(addr)?);
        let app = server::router(inner.clone());
        let server = inner.clone();
        tokio::spawn(async move {
            let stopping = server.clone();
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move { stopping.stopping().await });
            if let Err(e) = serve.await {
                eprintln!("max-sim: the HTTP server stopped: {e}");
            }
            server.done.send_replace(true);
        });
        Ok(MaxSim { inner })
    }

    /// Stops the server: parked long polls answer at once, webhook retries end.
    pub fn stop(&self) {
        self.inner.stop.send_replace(true);
    }

    /// Waits until the server has stopped and its port is free again.
    pub async fn stopped(&self) {
        let mut done = self.inner.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    /// E.g. `http://127.0.0.1:PORT`: what okno is configured with instead of
    /// `https://platform-api2.max.ru`.
    pub fn api_base(&self) -> String {
        self.inner.base.clone()
    }

    fn must_bot<T>(&self, token: &str, f: impl FnOnce(&mut Bot) -> T) -> T {
        let mut world = self.inner.world();
        let bot = world.bot(token).unwrap_or_else(|| panic!("max-sim: no bot with this token; call add_bot first"));
        f(bot)
    }

    /// Registers a bot with its token and returns its user id. Requests carrying any other
    /// token are answered 401 `verify.token`.
    pub fn add_bot(&self, token: &str, username: &str) -> i64 {
        assert!(!token.is_empty() && !token.contains(char::is_whitespace), "max-sim: a token has no spaces");
        let mut world = self.inner.world();
        let id = 229_000_000 + world.bots.len() as i64;
        world.bots.entry(token.to_string()).or_insert_with(|| Bot::new(id, username, username)).user_id
    }

    /// The platform's limits (30 rps per bot, 2 sends/s per chat) on (the default) or off (for
    /// throughput benchmarks).
    pub fn set_limits(&self, on: bool) {
        self.inner.world().limits_on = on;
    }

    /// How long an uploaded file stays unprocessed, answering `attachment.not.ready` when
    /// attached (default 300 ms).
    pub fn set_processing_time(&self, time: Duration) {
        self.inner.world().processing = time;
    }

    /// The webhook retry schedule: the first retry after `first`, each later one `factor`
    /// times later, at most `max_retries` (default 60 ms, ×2.5, 10 — the platform's schedule
    /// with seconds read as milliseconds).
    pub fn set_webhook_retry(&self, first: Duration, factor: f64, max_retries: u32) {
        self.inner.world().retry = state::RetryPolicy { first, factor, max_retries };
    }

    /// The next API call of the bot (any endpoint but `GET /updates`) fails with `fault`.
    /// Several calls queue up, one per call.
    pub fn fail_next(&self, token: &str, fault: Fault) {
        self.must_bot(token, |bot| bot.faults.push_back(fault));
    }

    /// A person who has started the bot and has a dialog with it. No update is made; use
    /// [`SimUser::start`] to play the Start button.
    pub fn user(&self, token: &str, user_id: i64, name: &str) -> SimUser {
        assert!(user_id > 0, "max-sim: user ids are positive");
        self.must_bot(token, |bot| {
            bot.people.insert(user_id, Person { name: name.to_string() });
            let chat = bot.chats.entry(state::dialog_id(user_id)).or_insert_with(|| state::Chat {
                kind: state::ChatKind::Dialog,
                user_id: Some(user_id),
                open: true,
            });
            chat.open = true;
        });
        SimUser { inner: self.inner.clone(), token: token.to_string(), id: user_id }
    }

    /// A person who never started the bot: sends to them answer 403 `chat.denied` until
    /// they press Start ([`SimUser::start`]).
    pub fn stranger(&self, token: &str, user_id: i64, name: &str) -> SimUser {
        let user = self.user(token, user_id, name);
        self.must_bot(token, |bot| {
            if let Some(c) = bot.chats.get_mut(&state::dialog_id(user_id)) {
                c.open = false;
            }
        });
        user
    }

    /// A group chat (negative id, as on the platform) the bot is an administrator of.
    pub fn group(&self, token: &str, chat_id: i64) -> SimGroup {
        assert!(chat_id < 0, "max-sim: group chat ids are negative");
        self.must_bot(token, |bot| {
            bot.chats.insert(chat_id, state::Chat { kind: state::ChatKind::Chat, user_id: None, open: true });
        });
        SimGroup { inner: self.inner.clone(), token: token.to_string(), id: chat_id }
    }

    /// The dialog chat id of a person (what `POST /messages?chat_id=` takes).
    pub fn dialog_id(&self, user_id: i64) -> i64 {
        state::dialog_id(user_id)
    }

    /// Every successful send, edit, delete and answer that changed a message, in order.
    pub fn sent(&self, token: &str) -> Vec<Sent> {
        self.must_bot(token, |bot| bot.sent.clone())
    }

    /// How many messages were sent, without copying them (a benchmark asks often).
    pub fn sent_count(&self, token: &str) -> usize {
        self.must_bot(token, |bot| bot.sent.len())
    }

    /// The successful sends/edits into one chat, in order.
    pub fn sent_to(&self, token: &str, chat_id: i64) -> Vec<Sent> {
        self.must_bot(token, |bot| bot.sent.iter().filter(|s| s.chat_id == chat_id).cloned().collect())
    }

    /// Waits until the bot has made at least `n` successful sends and returns them all; panics
    /// with what was sent if that takes longer than `secs`.
    pub async fn wait_sent(&self, token: &str, n: usize, secs: u64) -> Vec<Sent> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let sent = self.sent(token);
            if sent.len() >= n {
                return sent;
            }
            if Instant::now() >= deadline {
                let texts: Vec<_> = sent.iter().map(|s| (s.method.clone(), s.text.clone())).collect();
                panic!("max-sim: expected {n} sends within {secs}s, got {}: {texts:?}", sent.len());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A message as the chat shows it now (edits applied), by `mid`.
    pub fn message(&self, token: &str, mid: &str) -> Option<Value> {
        self.must_bot(token, |bot| bot.messages.get(mid).map(|m| m.json.clone()))
    }

    /// Every `POST /answers`, in order.
    pub fn callback_answers(&self, token: &str) -> Vec<CallbackAnswer> {
        self.must_bot(token, |bot| bot.answers.clone())
    }

    /// The webhook subscriptions.
    pub fn subscriptions(&self, token: &str) -> Vec<SubscriptionInfo> {
        self.must_bot(token, |bot| {
            bot.subscriptions
                .iter()
                .map(|s| SubscriptionInfo {
                    url: s.url.clone(),
                    secret: s.secret.clone(),
                    update_types: s.update_types.clone(),
                })
                .collect()
        })
    }

    /// Every webhook delivery attempt, in order.
    pub fn webhook_attempts(&self, token: &str) -> Vec<WebhookAttempt> {
        self.must_bot(token, |bot| bot.attempts.clone())
    }

    /// How many 429 answers the bot got.
    pub fn rate_limited(&self, token: &str) -> usize {
        self.must_bot(token, |bot| bot.rate_limited)
    }

    /// How many calls of `"<METHOD> <path>"` (e.g. `"POST /messages"`) the bot made, failed
    /// ones included.
    pub fn calls(&self, token: &str, method_and_path: &str) -> usize {
        self.must_bot(token, |bot| bot.calls.get(method_and_path).copied().unwrap_or(0))
    }

    /// How many updates wait for `GET /updates`.
    pub fn pending_updates(&self, token: &str) -> usize {
        self.must_bot(token, |bot| bot.updates.len())
    }

    /// Makes the last update again, exactly as it was (the platform redelivers; there is no
    /// update id to tell the copies apart).
    pub fn replay_last_update(&self, token: &str) {
        let (update, subs) = self.must_bot(token, |bot| {
            let update = bot.last_update.clone().unwrap_or_else(|| panic!("max-sim: no update to replay"));
            let subs = bot.push_update(update.clone());
            (update, subs)
        });
        webhook::spawn_deliveries(&self.inner, token, &update, subs);
    }
}
