//! A Telegram Bot API simulator for okno's integration tests and benchmarks.
//!
//! It speaks the real wire format over real HTTP on 127.0.0.1 — `{api_base}/bot<token>/<method>`
//! and `{api_base}/file/bot<token>/<file_path>` — and enforces Telegram's documented limits and
//! exact error descriptions (research notes B §1): the response envelope, `getUpdates` long
//! polling with offsets and 409 conflicts, webhooks with the secret header, HTML/MarkdownV2
//! parsing, inline keyboard rules, flood control with 429 + `Retry-After`, blocked and
//! deactivated users, group-to-supergroup migration.
//!
//! A test starts it with [`TelegramSim::start`], registers a bot with [`TelegramSim::add_bot`],
//! plays people with [`SimUser`] and [`SimGroup`], and reads back what the bot did with
//! [`TelegramSim::sent`] and friends. Those helpers panic on a mistake (a test's failure).
//!
//! `okno demo` ships the simulator in the binary: there every action comes from a person on the
//! demo's phone page and goes through the `try_` methods, which check the input as a Telegram
//! client would and answer a [`SimError`] instead of panicking; [`TelegramSim::timeline`],
//! [`TelegramSim::presses`] and [`TelegramSim::activity`] let the page show each chat live.

mod error;
mod html;
mod markdown;
mod methods;
mod params;
mod server;
mod state;
mod users;
mod webhook;

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;

pub use crate::error::SimError;
use crate::state::{Access, Bot, Chat, ChatKind, Inner, Person};
pub use crate::users::{SimGroup, SimUser};

/// A running simulator; cheap to clone (all clones share one server and one state).
#[derive(Clone)]
pub struct TelegramSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TelegramSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSim").field("api_base", &self.inner.base).finish()
    }
}

/// One successful send*/edit* call of the bot.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The method as documented, e.g. "sendMessage", "editMessageReplyMarkup".
    pub method: String,
    /// The chat it went to.
    pub chat_id: i64,
    /// The new (or edited) message's id.
    pub message_id: i64,
    /// `text` as sent, before parse_mode parsing.
    pub text: Option<String>,
    /// The text or caption after parse_mode parsing (what the user sees).
    pub plain: Option<String>,
    /// `caption` as sent.
    pub caption: Option<String>,
    /// `parse_mode` as sent.
    pub parse_mode: Option<String>,
    /// `reply_markup` as sent (any keyboard kind); `None` on an edit that removed it.
    pub reply_markup: Option<serde_json::Value>,
    /// The message it replies to (`reply_parameters.message_id` or `reply_to_message_id`).
    pub reply_to_message_id: Option<i64>,
    /// The file of sendPhoto/sendDocument.
    pub file: Option<SentFile>,
    /// When the simulator accepted it.
    pub at: Instant,
}

impl Sent {
    /// A record of `method` on a message, every optional field empty (set the rest with
    /// struct update syntax).
    pub(crate) fn new(method: &str, chat_id: i64, message_id: i64) -> Sent {
        Sent {
            method: method.into(),
            chat_id,
            message_id,
            text: None,
            plain: None,
            caption: None,
            parse_mode: None,
            reply_markup: None,
            reply_to_message_id: None,
            file: None,
            at: std::time::Instant::now(),
        }
    }
}

/// The file of a sendPhoto/sendDocument. For an upload: the part's file name, content type
/// and bytes. For a file_id or URL: `name` is that string, and `bytes`/`mime` are the known
/// file's (empty for a URL, which the simulator never fetches).
#[derive(Debug, Clone)]
pub struct SentFile {
    /// "photo" or "document".
    pub field: String,
    /// File name.
    pub name: String,
    /// Content type.
    pub mime: String,
    /// Content.
    pub bytes: Vec<u8>,
}

/// One answerCallbackQuery.
#[derive(Debug, Clone)]
pub struct CallbackAnswer {
    /// The answered query.
    pub callback_query_id: String,
    /// The notification text, if any.
    pub text: Option<String>,
    /// Shown as an alert rather than a notification at the top.
    pub show_alert: bool,
    /// The `t.me/<bot>?start=…` link the client opens, if any.
    pub url: Option<String>,
    /// Time from the press to the answer.
    pub after: Duration,
}

/// How much of what it records the simulator keeps, per bot. The default,
/// [`Retention::ALL`], keeps everything: tests and benchmarks read it all back. A simulator
/// that runs for as long as someone likes (okno demo's) keeps the newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Records of send*/edit* calls ([`TelegramSim::sent`]), and as many sendChatAction.
    pub sent: usize,
    /// Button presses and their answers ([`TelegramSim::presses`]); an older press leaves its
    /// chat and can no longer be answered.
    pub presses: usize,
    /// Bytes of the files people and the bot sent; beyond it the oldest files are forgotten
    /// (`getFile` no longer knows them) — the newest is kept whatever its size. The send
    /// records hold copies of the bot's files and keep as many bytes of them.
    pub file_bytes: u64,
}

impl Retention {
    /// Everything, for as long as the simulator runs.
    pub const ALL: Retention = Retention { sent: usize::MAX, presses: usize::MAX, file_bytes: u64::MAX };
}

impl Default for Retention {
    fn default() -> Self {
        Retention::ALL
    }
}

/// A button press in a chat, as [`TelegramSim::presses`] lists it.
#[derive(Debug, Clone)]
pub struct ButtonPress {
    /// The callback query id.
    pub id: String,
    /// Who pressed.
    pub user_id: i64,
    /// Where.
    pub chat_id: i64,
    /// The message the button is on.
    pub message_id: i64,
    /// The button's callback data.
    pub data: String,
    /// The button's text when it was pressed ("" when no button carried that data).
    pub label: String,
    /// The chat's newest message at the moment of the press (where a client shows it).
    pub after_message_id: i64,
    /// Seconds since the Unix epoch.
    pub date: i64,
    /// The bot's answerCallbackQuery, once made.
    pub answer: Option<CallbackAnswer>,
}

/// A file kept by the simulator: what a person or the bot sent.
#[derive(Debug, Clone)]
pub struct SimFile {
    /// Content.
    pub bytes: Bytes,
    /// File name, when the file has one (documents do, photos do not).
    pub name: Option<String>,
    /// MIME type, when known.
    pub mime: Option<String>,
}

/// The webhook a bot has set.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookInfo {
    /// Where updates are POSTed.
    pub url: String,
    /// Sent as `X-Telegram-Bot-Api-Secret-Token`.
    pub secret_token: Option<String>,
    /// The update types asked for, if set.
    pub allowed_updates: Option<Vec<String>>,
}

impl TelegramSim {
    /// Starts on 127.0.0.1:0. `api_base()` is what okno is configured with. Test helper:
    /// panics when the port cannot be bound.
    pub async fn start() -> TelegramSim {
        TelegramSim::try_start().await.unwrap_or_else(|e| panic!("telegram-sim: starting on 127.0.0.1:0: {e}"))
    }

    /// Starts on 127.0.0.1 on a free port.
    pub async fn try_start() -> std::io::Result<TelegramSim> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::new(addr)?);
        let app = server::router(inner.clone());
        let server = inner.clone();
        tokio::spawn(async move {
            let stopping = server.clone();
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move { stopping.stopping().await });
            if let Err(e) = serve.await {
                eprintln!("telegram-sim: the HTTP server stopped: {e}");
            }
            server.done.send_replace(true);
        });
        Ok(TelegramSim { inner })
    }

    /// Stops the server: it takes no more connections, a parked `getUpdates` answers at once,
    /// webhook deliveries end. What it recorded stays readable.
    pub fn stop(&self) {
        self.inner.stop.send_replace(true);
    }

    /// Whether [`TelegramSim::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        *self.inner.stop.borrow()
    }

    /// Waits until the server has stopped (after [`TelegramSim::stop`]) and its last
    /// connection has ended; its port is free again.
    pub async fn stopped(&self) {
        let mut done = self.inner.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    /// The address the server listens on (127.0.0.1 and its port).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.inner.addr
    }

    /// E.g. "http://127.0.0.1:PORT"; requests go to `{api_base}/bot<token>/<method>`.
    pub fn api_base(&self) -> String {
        self.inner.base.clone()
    }

    fn with_bot<T>(&self, token: &str, f: impl FnOnce(&mut Bot) -> T) -> Result<T, SimError> {
        let mut world = self.inner.world();
        Ok(f(world.bot(token)?))
    }

    /// [`TelegramSim::with_bot`] for the test helpers: an unknown bot is the test's mistake.
    fn must_bot<T>(&self, token: &str, f: impl FnOnce(&mut Bot) -> T) -> T {
        self.with_bot(token, f).unwrap_or_else(|e| panic!("telegram-sim: {e}; call add_bot first"))
    }

    /// Registers a bot and returns its user id (the number before the `:` of the token, as on
    /// Telegram). Tokens must look like Telegram's (`123456:ABC…`); requests with unknown
    /// tokens get 401. Test helper: a malformed token panics.
    pub fn add_bot(&self, token: &str, username: &str) -> i64 {
        self.try_add_bot(token, username).unwrap_or_else(|e| panic!("telegram-sim: {e}"))
    }

    /// Registers a bot (again: the same bot) and returns its user id; a token that is not
    /// Telegram-shaped (`<digits>:<secret>`) is refused, as the server would answer 401.
    pub fn try_add_bot(&self, token: &str, username: &str) -> Result<i64, SimError> {
        if !server::token_well_formed(token) || token.contains('/') {
            return Err(SimError::Invalid(
                "not a Telegram-shaped bot token (<digits>:<secret>); the server would answer 401 \"Unauthorized: invalid token specified\"".into(),
            ));
        }
        let valid_name = (5..=32).contains(&username.len())
            && username.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && username.to_ascii_lowercase().ends_with("bot");
        if !valid_name {
            return Err(SimError::Invalid(format!(
                "{username:?} is not a bot username (5-32 letters, digits or _, ending in \"bot\")"
            )));
        }
        let mut world = self.inner.world();
        let id = token
            .split_once(':')
            .and_then(|(id, _)| id.parse::<i64>().ok())
            .unwrap_or_else(|| 5_000_000_000 + world.bots.len() as i64 + 1);
        let retention = world.retention;
        let bot = world.bots.entry(token.to_string()).or_insert_with(|| Bot::new(id, username));
        bot.activity = self.inner.activity.clone();
        bot.retention = retention;
        Ok(id)
    }

    /// The bot's next call of `method` (`sendMessage`…) fails with `code` and `description`
    /// as Telegram would answer (a 429 carries `retry_after`), whatever it asks: a test's
    /// fault — a 5xx, a flood wait, a refusal. Faults queue up in order.
    pub fn fail_next(&self, token: &str, method: &str, code: u16, description: &str, retry_after: Option<u64>) {
        let mut fault = methods::ApiError::new(code, description);
        if let Some(secs) = retry_after {
            fault.parameters = Some(serde_json::json!({"retry_after": secs}));
        }
        self.must_bot(token, |b| b.faults.push_back((method.to_ascii_lowercase(), fault)));
    }

    /// How much every bot keeps.
    pub fn retention(&self) -> Retention {
        self.inner.world().retention
    }

    /// How much every bot keeps from now on (what is already beyond it goes with the next
    /// record).
    pub fn set_retention(&self, retention: Retention) {
        let mut world = self.inner.world();
        world.retention = retention;
        for bot in world.bots.values_mut() {
            bot.retention = retention;
        }
    }

    /// Telegram's rate limits on (the default) or off (for throughput benchmarks).
    pub fn set_limits(&self, on: bool) {
        self.inner.world().limits_on = on;
    }

    /// How long after a press answerCallbackQuery is still accepted (default 15 s).
    pub fn set_callback_timeout(&self, timeout: Duration) {
        self.inner.world().callback_timeout = timeout;
    }

    /// A person who has started the bot, in a private chat (chat id == user id). Test helper:
    /// panics on an unknown bot or a user id that is not positive.
    pub fn user(&self, token: &str, user_id: i64, first_name: &str) -> SimUser {
        self.try_user(token, user_id, first_name).unwrap_or_else(|e| panic!("telegram-sim: {e}"))
    }

    /// A person who has started the bot (pressed Start), in a private chat (chat id == user
    /// id); a person met before keeps their chat and gets this name.
    pub fn try_user(&self, token: &str, user_id: i64, first_name: &str) -> Result<SimUser, SimError> {
        if user_id <= 0 {
            return Err(SimError::Invalid("user ids are positive".into()));
        }
        if first_name.trim().is_empty() || first_name.chars().count() > 64 {
            return Err(SimError::Invalid("a first name has 1 to 64 characters".into()));
        }
        self.with_bot(token, |bot| {
            let person = bot.people.entry(user_id).or_insert_with(|| Person {
                id: user_id,
                first_name: String::new(),
                username: None,
            });
            person.first_name = first_name.to_string();
            let chat = bot.chats.entry(user_id).or_insert_with(|| Chat::new(ChatKind::Private, "", Some(user_id)));
            if chat.access == Access::Stranger {
                chat.access = Access::Started;
            }
        })?;
        Ok(SimUser { inner: self.inner.clone(), token: token.to_string(), id: user_id })
    }

    /// A person the bot knows of — to write in a group with it — without touching their
    /// private chat (one who never started the bot still cannot be written to by it).
    pub fn try_member(&self, token: &str, user_id: i64, first_name: &str) -> Result<SimUser, SimError> {
        if user_id <= 0 {
            return Err(SimError::Invalid("user ids are positive".into()));
        }
        self.with_bot(token, |bot| {
            bot.people.entry(user_id).or_insert_with(|| Person {
                id: user_id,
                first_name: first_name.to_string(),
                username: None,
            });
        })?;
        Ok(SimUser { inner: self.inner.clone(), token: token.to_string(), id: user_id })
    }

    /// A person the bot knows of but who never started it: sends to their chat answer 403
    /// "Forbidden: bot can't initiate conversation with a user".
    pub fn stranger(&self, token: &str, user_id: i64) {
        self.must_bot(token, |bot| {
            bot.people.entry(user_id).or_insert_with(|| Person {
                id: user_id,
                first_name: format!("User {user_id}"),
                username: None,
            });
            let chat = bot.chats.entry(user_id).or_insert_with(|| Chat::new(ChatKind::Private, "", Some(user_id)));
            chat.access = Access::Stranger;
        })
    }

    /// A group chat (negative id) the bot is a member of, in which users write. Test helper:
    /// panics on an unknown bot or a group id that is not negative.
    pub fn group(&self, token: &str, chat_id: i64, title: &str) -> SimGroup {
        self.try_group(token, chat_id, title).unwrap_or_else(|e| panic!("telegram-sim: {e}"))
    }

    /// A group chat (negative id) the bot is a member of, in which users write.
    pub fn try_group(&self, token: &str, chat_id: i64, title: &str) -> Result<SimGroup, SimError> {
        if chat_id >= 0 {
            return Err(SimError::Invalid("group ids are negative".into()));
        }
        self.with_bot(token, |bot| {
            bot.chats.entry(chat_id).or_insert_with(|| Chat::new(ChatKind::Group, title, None));
        })?;
        Ok(SimGroup { inner: self.inner.clone(), token: token.to_string(), id: Arc::new(AtomicI64::new(chat_id)) })
    }

    /// Whether the person has started the bot (has a private chat the bot may write to).
    pub fn started(&self, token: &str, user_id: i64) -> Result<bool, SimError> {
        self.with_bot(token, |bot| bot.chats.get(&user_id).is_some_and(|c| c.access != Access::Stranger))
    }

    /// A chat as its members see it: every message still there, from both sides, oldest first,
    /// as Telegram `Message` objects with edits applied (`edit_date` set, the current text and
    /// inline keyboard).
    pub fn timeline(&self, token: &str, chat_id: i64) -> Result<Vec<Value>, SimError> {
        self.with_bot(token, |bot| {
            bot.chat_mut(chat_id).map(|c| c.messages.values().map(|m| m.json.clone()).collect())
        })?
    }

    /// The reply keyboard (`ReplyKeyboardMarkup`) the bot shows under the chat's input field,
    /// if any.
    pub fn reply_keyboard(&self, token: &str, chat_id: i64) -> Result<Option<Value>, SimError> {
        self.with_bot(token, |bot| bot.chat_mut(chat_id).map(|c| c.keyboard.clone()))?
    }

    /// The button presses made in a chat, oldest first, each with the bot's answer once given.
    pub fn presses(&self, token: &str, chat_id: i64) -> Result<Vec<ButtonPress>, SimError> {
        self.with_bot(token, |bot| {
            let ids = bot.chat_mut(chat_id)?.presses.clone();
            Ok(ids
                .into_iter()
                .filter_map(|id| {
                    let p = bot.presses.get(&id)?;
                    Some(ButtonPress {
                        answer: bot.answers.iter().rev().find(|a| a.callback_query_id == id).cloned(),
                        id,
                        user_id: p.user_id,
                        chat_id: p.chat_id,
                        message_id: p.message_id,
                        data: p.data.clone(),
                        label: p.label.clone(),
                        after_message_id: p.after_message_id,
                        date: p.date,
                    })
                })
                .collect())
        })?
    }

    /// A file of the bot's chats (sent by a person or by the bot), by `file_id`.
    pub fn file(&self, token: &str, file_id: &str) -> Result<Option<SimFile>, SimError> {
        self.with_bot(token, |bot| {
            bot.files.get(file_id).and_then(|f| {
                f.bytes.clone().map(|bytes| SimFile { bytes, name: f.name.clone(), mime: f.mime.clone() })
            })
        })
    }

    /// A receiver that sees a new value whenever anything a person would see changes in any
    /// chat of any bot: a message, an edit, a deletion, a press or its answer.
    pub fn activity(&self) -> watch::Receiver<u64> {
        self.inner.activity.subscribe()
    }

    /// Every successful send*/edit* call of the bot, in order.
    pub fn sent(&self, token: &str) -> Vec<Sent> {
        self.must_bot(token, |bot| bot.sent.iter().cloned().collect())
    }

    /// The successful send*/edit* calls into one chat, in order.
    pub fn sent_to(&self, token: &str, chat_id: i64) -> Vec<Sent> {
        self.must_bot(token, |bot| bot.sent.iter().filter(|s| s.chat_id == chat_id).cloned().collect())
    }

    /// Waits until the bot has made at least `n` successful send*/edit* calls and returns
    /// them all; panics with what was sent if that takes longer than `secs`.
    pub async fn wait_sent(&self, token: &str, n: usize, secs: u64) -> Vec<Sent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let sent = self.sent(token);
            if sent.len() >= n {
                return sent;
            }
            if tokio::time::Instant::now() >= deadline {
                let summary: Vec<String> = sent
                    .iter()
                    .map(|s| format!("{} to {}: {:?}", s.method, s.chat_id, s.plain.as_deref().unwrap_or("")))
                    .collect();
                let calls = self.must_bot(token, |bot| {
                    let mut c: Vec<String> = bot.calls.iter().map(|(m, n)| format!("{m}×{n}")).collect();
                    c.sort();
                    c.join(", ")
                });
                panic!(
                    "telegram-sim: expected at least {n} sends from bot {token:?} within {secs}s, got {}: {summary:?}; calls so far: [{calls}]",
                    sent.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every answerCallbackQuery, in order.
    pub fn callback_answers(&self, token: &str) -> Vec<CallbackAnswer> {
        self.must_bot(token, |bot| bot.answers.iter().cloned().collect())
    }

    /// Every sendChatAction as (chat_id, action), in order.
    pub fn chat_actions(&self, token: &str) -> Vec<(i64, String)> {
        self.must_bot(token, |bot| bot.actions.iter().cloned().collect())
    }

    /// The `commands` of the last setMyCommands (JSON null if never called).
    pub fn commands(&self, token: &str) -> serde_json::Value {
        self.must_bot(token, |bot| bot.commands.clone())
    }

    /// The webhook, if one is set.
    pub fn webhook(&self, token: &str) -> Option<WebhookInfo> {
        self.must_bot(token, |bot| {
            bot.webhook.as_ref().map(|h| WebhookInfo {
                url: h.url.clone(),
                secret_token: h.secret.clone(),
                allowed_updates: h.allowed_updates.clone(),
            })
        })
    }

    /// How many 429 answers the bot got.
    pub fn rate_limited(&self, token: &str) -> usize {
        self.must_bot(token, |bot| bot.rate_limited)
    }

    /// How many calls of a method (case-insensitive) the bot made, failed ones included.
    pub fn calls(&self, token: &str, method: &str) -> usize {
        let method = method.to_ascii_lowercase();
        self.must_bot(token, |bot| bot.calls.get(&method).copied().unwrap_or(0))
    }

    /// How many updates wait for getUpdates or the webhook.
    pub fn pending_updates(&self, token: &str) -> usize {
        self.must_bot(token, |bot| bot.updates.len())
    }
}
