//! The simulated world: groups (their bot tokens), chats, people, messages, uploads,
//! subscriptions and the records tests read back. One mutex guards it all; it is never held
//! across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;

use crate::{CallbackAnswer, Fault, Sent, WebhookAttempt};

/// Shared by the handle, the HTTP server and the webhook senders.
pub(crate) struct Inner {
    world: Mutex<World>,
    pub(crate) http: reqwest::Client,
    /// Webhook deliveries in flight at once: a platform delivers through a bounded pool of
    /// connections, not one per event (20,000 events at once would exhaust the receiver's
    /// file descriptors, which no real platform does).
    pub(crate) pushing: tokio::sync::Semaphore,
    pub(crate) base: String,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) done: watch::Sender<bool>,
}

/// Webhook deliveries in flight at once.
const PUSHES_IN_FLIGHT: usize = 128;

impl Inner {
    pub(crate) fn new(addr: std::net::SocketAddr) -> std::io::Result<Inner> {
        // A webhook must answer 200 within 5 seconds (apiok.ru graph.user.subscribe).
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| std::io::Error::other(format!("building the webhook HTTP client: {e}")))?;
        Ok(Inner {
            world: Mutex::new(World { groups: HashMap::new(), retry_first: Duration::from_millis(50), max_retries: 5 }),
            http,
            pushing: tokio::sync::Semaphore::new(PUSHES_IN_FLIGHT),
            base: format!("http://{addr}"),
            addr,
            stop: watch::channel(false).0,
            done: watch::channel(false).0,
        })
    }

    pub(crate) async fn stopping(&self) {
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|s| *s).await;
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Everything the simulator knows.
pub(crate) struct World {
    /// By access token.
    pub groups: HashMap<String, Group>,
    pub retry_first: Duration,
    pub max_retries: u32,
}

/// Milliseconds since the Unix epoch (`timestamp` fields).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(1)
}

/// A person the group knows.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub name: String,
    /// Whether they allowed the group's messages (graph.user.messages: "User must allow to
    /// receive group messages before it can be sent to him").
    pub allowed: bool,
}

/// A chat: a group chat, or the dialog of one person with the group.
#[derive(Debug, Clone)]
pub(crate) struct Chat {
    pub title: String,
    /// For dialogs: the person (`user:…`).
    pub user: Option<String>,
}

/// A stored message.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub chat_id: String,
    pub json: Value,
}

/// One group and everything its bot token can see or has done.
pub(crate) struct Group {
    pub id: i64,
    pub name: String,
    seq: u64,
    pub people: HashMap<String, Person>,
    pub chats: HashMap<String, Chat>,
    pub messages: HashMap<String, Msg>,
    pub presses: HashMap<String, (String, Instant)>,
    /// Subscriptions: (url, time).
    pub subscriptions: Vec<(String, i64)>,
    /// Upload slots: slot → (type, token, bytes once uploaded).
    pub uploads: HashMap<String, (String, String, Option<Bytes>)>,
    pub files: HashMap<String, Bytes>,
    pub last_event: Option<Value>,
    pub sent: Vec<Sent>,
    pub answers: Vec<CallbackAnswer>,
    pub attempts: Vec<WebhookAttempt>,
    pub calls: HashMap<String, usize>,
    pub faults: VecDeque<Fault>,
}

impl Group {
    pub(crate) fn new(id: i64, name: &str) -> Group {
        Group {
            id,
            name: name.to_string(),
            seq: 0,
            people: HashMap::new(),
            chats: HashMap::new(),
            messages: HashMap::new(),
            presses: HashMap::new(),
            subscriptions: Vec::new(),
            uploads: HashMap::new(),
            files: HashMap::new(),
            last_event: None,
            sent: Vec::new(),
            answers: Vec::new(),
            attempts: Vec::new(),
            calls: HashMap::new(),
            faults: VecDeque::new(),
        }
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A message id shaped like the platform's: `mid:<chat>.<hex>` (apiok.ru examples).
    pub(crate) fn next_mid(&mut self, chat_id: &str) -> String {
        let n = self.next_seq();
        format!("mid:{}.{:x}", chat_id.trim_start_matches("chat:"), 0x15ce_a67d_0000u64 + n)
    }

    /// The dialog chat of a person with the group.
    pub(crate) fn dialog_of(&self, user: &str) -> Option<String> {
        self.chats.iter().find(|(_, c)| c.user.as_deref() == Some(user)).map(|(id, _)| id.clone())
    }
}
