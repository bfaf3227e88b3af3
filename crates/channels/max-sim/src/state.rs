//! The simulated world: bots, their chats, messages, uploads, update queues, webhook
//! subscriptions, rate buckets and everything the tests read back. One mutex guards it all;
//! it is never held across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::{CallbackAnswer, Fault, Sent, WebhookAttempt};

/// Shared by the handle, the HTTP server and the webhook senders.
pub(crate) struct Inner {
    world: Mutex<World>,
    /// Client for webhook deliveries.
    pub(crate) http: reqwest::Client,
    /// `http://127.0.0.1:PORT`
    pub(crate) base: String,
    /// `127.0.0.1:PORT`
    pub(crate) addr: std::net::SocketAddr,
    /// Set to stop the server.
    pub(crate) stop: watch::Sender<bool>,
    /// Set once the server has stopped.
    pub(crate) done: watch::Sender<bool>,
}

impl Inner {
    pub(crate) fn new(addr: std::net::SocketAddr) -> std::io::Result<Inner> {
        // The platform gives a webhook 30 s to answer (dev.max.ru POST /subscriptions).
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| std::io::Error::other(format!("building the webhook HTTP client: {e}")))?;
        Ok(Inner {
            world: Mutex::new(World {
                bots: HashMap::new(),
                limits_on: true,
                processing: Duration::from_millis(300),
                retry: RetryPolicy::default(),
            }),
            http,
            base: format!("http://{addr}"),
            addr,
            stop: watch::channel(false).0,
            done: watch::channel(false).0,
        })
    }

    /// Resolves once the server is told to stop.
    pub(crate) async fn stopping(&self) {
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|s| *s).await;
    }

    /// Locks the world; a panic elsewhere (a failed test assertion) does not poison it for
    /// the server.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How a failed webhook delivery is retried. The platform retries up to 10 times, the first
/// after 60 s and each later one 2.5 times later (dev.max.ru POST /subscriptions); the
/// simulator keeps the shape and scales the time down (60 ms first) so tests stay fast.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub first: Duration,
    pub factor: f64,
    pub max_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { first: Duration::from_millis(60), factor: 2.5, max_retries: 10 }
    }
}

/// Everything the simulator knows.
pub(crate) struct World {
    pub bots: HashMap<String, Bot>,
    pub limits_on: bool,
    /// How long an uploaded file stays "not processed" (`attachment.not.ready`).
    pub processing: Duration,
    pub retry: RetryPolicy,
}

impl World {
    pub(crate) fn bot(&mut self, token: &str) -> Option<&mut Bot> {
        self.bots.get_mut(token)
    }
}

/// Milliseconds since the Unix epoch: every MAX time field (schema description,
/// "Resources format").
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(1)
}

/// A dialog's chat id for a user. Dialog ids are positive and differ from the user id
/// (go client `stabs/update.bot_started.json`: chat 182182182, user 123456789).
pub(crate) fn dialog_id(user_id: i64) -> i64 {
    1_000_000_000_000 + user_id
}

/// A token bucket: `cap` tokens, refilled at `per_sec`.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    cap: f64,
    per_sec: f64,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(per_sec: f64) -> Bucket {
        Bucket { tokens: per_sec, cap: per_sec, per_sec, at: Instant::now() }
    }

    /// Takes a token if one is free.
    pub(crate) fn try_take(&mut self) -> bool {
        let now = Instant::now();
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.cap);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// 30 requests per second per bot (dev.max.ru POST /uploads: "максимальное количество
/// запросов в секунду на platform-api.max.ru — 30 rps").
pub(crate) const BOT_RPS: f64 = 30.0;
/// 2 sends per second into one dialog, chat or channel (dev.max.ru POST /messages and
/// POST /answers).
pub(crate) const CHAT_RPS: f64 = 2.0;

/// A dialog (with one person) or a group chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChatKind {
    Dialog,
    Chat,
}

impl ChatKind {
    /// `Recipient.chat_type` as the stubs spell it ("dialog", "chat").
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChatKind::Dialog => "dialog",
            ChatKind::Chat => "chat",
        }
    }
}

/// A chat the bot is in.
#[derive(Debug, Clone)]
pub(crate) struct Chat {
    pub kind: ChatKind,
    /// For dialogs: the person.
    pub user_id: Option<i64>,
    /// Whether the bot may write here: false once the person stopped the bot, or the bot was
    /// removed from the group.
    pub open: bool,
}

/// A person the bot knows.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub name: String,
}

/// A message as stored: its current JSON (edits applied) and who wrote it.
#[derive(Debug, Clone)]
pub(crate) struct StoredMessage {
    pub chat_id: i64,
    pub from_bot: bool,
    pub json: Value,
}

/// A button press waiting for `POST /answers`.
#[derive(Debug, Clone)]
pub(crate) struct Press {
    pub chat_id: i64,
    pub mid: String,
    pub at: Instant,
    pub answered: bool,
}

/// An upload slot from `POST /uploads` and what became of it.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub kind: String,
    /// The attach token (known from the start for video and audio).
    pub token: String,
    /// Set when the file arrived.
    pub bytes: Option<Bytes>,
    pub name: Option<String>,
    /// When processing ends and the token can be attached.
    pub ready_at: Option<Instant>,
}

/// One `POST /subscriptions`.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub url: String,
    pub secret: Option<String>,
    pub update_types: Option<Vec<String>>,
    pub time: i64,
}

/// One bot and everything it can see or has done.
pub(crate) struct Bot {
    pub user_id: i64,
    pub name: String,
    pub username: String,
    seq: u64,
    /// Long-poll queue: (marker number, Update).
    pub updates: VecDeque<(i64, Value)>,
    pub next_marker: i64,
    /// The last update made, for replays.
    pub last_update: Option<Value>,
    /// Bumped whenever a long poll may have something new.
    pub changed: watch::Sender<u64>,
    pub subscriptions: Vec<Subscription>,
    pub chats: HashMap<i64, Chat>,
    pub people: HashMap<i64, Person>,
    pub messages: HashMap<String, StoredMessage>,
    pub presses: HashMap<String, Press>,
    pub uploads: HashMap<String, Upload>,
    /// Files people sent, by token, for download.
    pub files: HashMap<String, Bytes>,
    pub sent: Vec<Sent>,
    pub answers: Vec<CallbackAnswer>,
    pub attempts: Vec<WebhookAttempt>,
    pub calls: HashMap<String, usize>,
    pub rate_limited: usize,
    pub bucket: Bucket,
    pub chat_buckets: HashMap<i64, Bucket>,
    pub faults: VecDeque<Fault>,
}

impl Bot {
    pub(crate) fn new(user_id: i64, name: &str, username: &str) -> Bot {
        Bot {
            user_id,
            name: name.to_string(),
            username: username.to_string(),
            seq: 0,
            updates: VecDeque::new(),
            next_marker: 25_493_970,
            last_update: None,
            changed: watch::channel(0u64).0,
            subscriptions: Vec::new(),
            chats: HashMap::new(),
            people: HashMap::new(),
            messages: HashMap::new(),
            presses: HashMap::new(),
            uploads: HashMap::new(),
            files: HashMap::new(),
            sent: Vec::new(),
            answers: Vec::new(),
            attempts: Vec::new(),
            calls: HashMap::new(),
            rate_limited: 0,
            bucket: Bucket::new(BOT_RPS),
            chat_buckets: HashMap::new(),
            faults: VecDeque::new(),
        }
    }

    /// A number unique within this bot.
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A new message id shaped like the platform's (`mid.` and 32 hex digits, go client stubs).
    pub(crate) fn next_mid(&mut self) -> String {
        let n = self.next_seq();
        format!("mid.{:016x}{:016x}", self.user_id as u64, n)
    }

    /// The bot as a `User`.
    pub(crate) fn me_json(&self) -> Value {
        json!({
            "user_id": self.user_id, "first_name": self.name, "username": self.username,
            "is_bot": true, "last_activity_time": now_ms(), "name": self.name,
        })
    }

    /// A person as a `User`.
    pub(crate) fn person_json(&self, user_id: i64) -> Value {
        let name = self.people.get(&user_id).map(|p| p.name.clone()).unwrap_or_else(|| format!("User {user_id}"));
        json!({
            "user_id": user_id, "first_name": name, "is_bot": false,
            "last_activity_time": now_ms(), "name": name,
        })
    }

    /// `Recipient` of a message in a chat.
    pub(crate) fn recipient_json(&self, chat_id: i64, sender_is_bot: bool) -> Value {
        match self.chats.get(&chat_id) {
            Some(c) if c.kind == ChatKind::Dialog => {
                // In a person's message the recipient user is the bot; in the bot's, the person
                // (go client stubs `update.message_created`, `update.message_callback`).
                let user = if sender_is_bot { c.user_id.unwrap_or_default() } else { self.user_id };
                json!({"chat_id": chat_id, "chat_type": ChatKind::Dialog.as_str(), "user_id": user})
            }
            _ => json!({"chat_id": chat_id, "chat_type": ChatKind::Chat.as_str()}),
        }
    }

    /// Queues an update for the long poll, or for each webhook subscription that wants it, and
    /// returns the subscriptions to deliver it to.
    pub(crate) fn push_update(&mut self, update: Value) -> Vec<Subscription> {
        self.last_update = Some(update.clone());
        if self.subscriptions.is_empty() {
            let marker = self.next_marker;
            self.next_marker += 1;
            self.updates.push_back((marker, update));
            self.bump();
            return Vec::new();
        }
        let kind = update["update_type"].as_str().unwrap_or_default().to_string();
        self.subscriptions
            .iter()
            .filter(|s| s.update_types.as_ref().is_none_or(|t| t.is_empty() || t.contains(&kind)))
            .cloned()
            .collect()
    }

    /// Wakes long polls.
    pub(crate) fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}
