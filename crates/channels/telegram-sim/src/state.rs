//! The simulated world: bots, their chats, stored messages and files, update queues, flood
//! buckets and everything the tests read back. One mutex guards it all; it is never held
//! across an `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::{CallbackAnswer, Retention, Sent, SimError};

/// Shared by the handle, the HTTP server and the webhook senders.
pub(crate) struct Inner {
    world: Mutex<World>,
    /// Client for webhook deliveries.
    pub(crate) http: reqwest::Client,
    /// `http://127.0.0.1:PORT`
    pub(crate) base: String,
    /// `127.0.0.1:PORT`
    pub(crate) addr: std::net::SocketAddr,
    /// Rung on every change a person would see in a chat (shared with every bot).
    pub(crate) activity: Arc<watch::Sender<u64>>,
    /// Set to stop the server.
    pub(crate) stop: watch::Sender<bool>,
    /// Set once the server has stopped.
    pub(crate) done: watch::Sender<bool>,
}

impl Inner {
    pub(crate) fn new(addr: std::net::SocketAddr) -> std::io::Result<Inner> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| std::io::Error::other(format!("building the webhook HTTP client: {e}")))?;
        Ok(Inner {
            world: Mutex::new(World {
                bots: HashMap::new(),
                limits_on: true,
                callback_timeout: Duration::from_secs(15),
                retention: Retention::ALL,
            }),
            http,
            base: format!("http://{addr}"),
            addr,
            activity: Arc::new(watch::channel(0u64).0),
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

/// Everything the simulator knows.
pub(crate) struct World {
    pub bots: HashMap<String, Bot>,
    pub limits_on: bool,
    /// How long after a press `answerCallbackQuery` is still accepted.
    pub callback_timeout: Duration,
    /// How much every bot keeps of what it records.
    pub retention: Retention,
}

impl World {
    /// The bot with this token.
    pub(crate) fn bot(&mut self, token: &str) -> Result<&mut Bot, SimError> {
        self.bots.get_mut(token).ok_or_else(|| SimError::UnknownBot(token.to_string()))
    }
}

/// Seconds since the Unix epoch, for `date` fields.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(1)
}

/// The user id Telegram uses for service messages.
pub(crate) const SERVICE_USER_ID: i64 = 777_000;

/// One queued update.
#[derive(Debug, Clone)]
pub(crate) struct QueuedUpdate {
    pub id: i64,
    pub kind: &'static str,
    pub body: Value,
}

impl QueuedUpdate {
    /// The Update object: `update_id` plus one field named after the kind.
    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("update_id".into(), self.id.into());
        m.insert(self.kind.into(), self.body.clone());
        Value::Object(m)
    }
}

/// The webhook as set by `setWebhook`.
#[derive(Debug, Clone)]
pub(crate) struct Hook {
    pub url: String,
    pub secret: Option<String>,
    pub allowed_updates: Option<Vec<String>>,
    pub max_connections: i64,
    pub last_error: Option<(i64, String)>,
}

/// A person the bot knows.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub id: i64,
    pub first_name: String,
    pub username: Option<String>,
}

/// A file the bot can `getFile` and download.
#[derive(Debug, Clone)]
pub(crate) struct StoredFile {
    pub file_id: String,
    pub unique_id: String,
    pub path: String,
    pub size: u64,
    /// `None` for files that only exist as metadata (the "big document").
    pub bytes: Option<Bytes>,
    pub name: Option<String>,
    pub mime: Option<String>,
}

impl StoredFile {
    /// `file_id`, `file_unique_id`, `file_size`: the fields every file object shares.
    pub(crate) fn base_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("file_id".into(), self.file_id.clone().into());
        m.insert("file_unique_id".into(), self.unique_id.clone().into());
        m.insert("file_size".into(), self.size.into());
        m
    }

    /// A Document object.
    pub(crate) fn document_json(&self) -> Map<String, Value> {
        let mut m = self.base_json();
        if let Some(name) = &self.name {
            m.insert("file_name".into(), name.clone().into());
        }
        if let Some(mime) = &self.mime {
            m.insert("mime_type".into(), mime.clone().into());
        }
        m
    }
}

/// Private, group or supergroup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ChatKind {
    Private,
    Group,
    Supergroup,
}

/// Whether the bot may write into a private chat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Access {
    Started,
    Stranger,
    Blocked,
    Deactivated,
}

/// A message as stored, to quote in replies and callback queries and to edit.
#[derive(Debug, Clone)]
pub(crate) struct StoredMessage {
    pub json: Value,
    pub from_bot: bool,
    /// The inline keyboard, if any (the only markup a Message carries).
    pub markup: Option<Value>,
}

/// A chat the bot is in.
#[derive(Debug, Clone)]
pub(crate) struct Chat {
    pub kind: ChatKind,
    pub title: String,
    /// For private chats: the person.
    pub user_id: Option<i64>,
    pub access: Access,
    pub migrated_to: Option<i64>,
    pub next_message_id: i64,
    pub messages: BTreeMap<i64, StoredMessage>,
    /// The reply keyboard the bot last showed here, until it removes it.
    pub keyboard: Option<Value>,
    /// The button presses made here, in order.
    pub presses: Vec<String>,
}

impl Chat {
    pub(crate) fn new(kind: ChatKind, title: &str, user_id: Option<i64>) -> Chat {
        Chat {
            kind,
            title: title.to_string(),
            user_id,
            access: Access::Started,
            migrated_to: None,
            next_message_id: 1,
            messages: BTreeMap::new(),
            keyboard: None,
            presses: Vec::new(),
        }
    }
}

/// A callback query the bot has not answered yet (or has).
#[derive(Debug, Clone)]
pub(crate) struct Press {
    pub at: Instant,
    pub answered: bool,
    /// Who pressed, in which chat, on which message, with which data.
    pub user_id: i64,
    pub chat_id: i64,
    pub message_id: i64,
    pub data: String,
    /// The button's text at the moment of the press ("" for data on no button).
    pub label: String,
    /// The newest message of the chat when the button was pressed (where a client shows it).
    pub after_message_id: i64,
    /// Seconds since the Unix epoch.
    pub date: i64,
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
    pub(crate) fn new(cap: f64, per_sec: f64) -> Bucket {
        Bucket { tokens: cap, cap, per_sec, at: Instant::now() }
    }

    /// Seconds until one token is free (0 when one is free now).
    pub(crate) fn wait(&mut self, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.cap);
        self.at = now;
        if self.tokens >= 1.0 {
            0.0
        } else {
            (1.0 - self.tokens) / self.per_sec
        }
    }

    pub(crate) fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

/// Per-chat limit: about one message per second with a short burst (Bot FAQ; §1.9).
pub(crate) const CHAT_BURST: f64 = 3.0;
pub(crate) const CHAT_PER_SEC: f64 = 1.0;
/// Per-group limit: 20 messages per minute.
pub(crate) const GROUP_PER_MINUTE: f64 = 20.0;
/// Per-bot limit: 30 messages per second.
pub(crate) const GLOBAL_PER_SEC: f64 = 30.0;

/// One bot and everything it can see or has done.
pub(crate) struct Bot {
    pub id: i64,
    pub username: String,
    seq: u64,
    pub updates: VecDeque<QueuedUpdate>,
    pub next_update_id: i64,
    pub allowed_updates: Option<Vec<String>>,
    /// Bumped on every change a long poll or a webhook sender may wait for.
    pub changed: watch::Sender<u64>,
    pub poll_generation: u64,
    pub webhook: Option<Hook>,
    pub webhook_generation: u64,
    pub last_webhook_set: Option<Instant>,
    pub chats: HashMap<i64, Chat>,
    pub people: HashMap<i64, Person>,
    pub files: HashMap<String, StoredFile>,
    /// The files with bytes, oldest first, and how many bytes they hold.
    file_order: VecDeque<String>,
    file_bytes: u64,
    pub sent: VecDeque<Sent>,
    /// Bytes of the files the send records hold.
    sent_bytes: u64,
    pub presses: HashMap<String, Press>,
    /// The presses, oldest first.
    press_order: VecDeque<String>,
    pub answers: VecDeque<CallbackAnswer>,
    pub actions: VecDeque<(i64, String)>,
    /// How much of the above is kept.
    pub retention: Retention,
    pub commands: Value,
    pub rate_limited: usize,
    pub calls: HashMap<String, usize>,
    /// Answers the next calls of these methods get instead of their own (a test's faults).
    pub faults: VecDeque<(String, crate::methods::ApiError)>,
    pub global_bucket: Bucket,
    pub chat_buckets: HashMap<i64, Bucket>,
    pub group_buckets: HashMap<i64, Bucket>,
    /// Rung on every change a person would see (the simulator's shared bell).
    pub activity: Arc<watch::Sender<u64>>,
}

impl Bot {
    pub(crate) fn new(id: i64, username: &str) -> Bot {
        let (changed, _) = watch::channel(0u64);
        Bot {
            id,
            username: username.to_string(),
            seq: 0,
            updates: VecDeque::new(),
            // "update_ids start from a certain positive number and increase sequentially".
            next_update_id: 100_000_001 + (id.rem_euclid(1000)) * 1000,
            allowed_updates: None,
            changed,
            poll_generation: 0,
            webhook: None,
            webhook_generation: 0,
            last_webhook_set: None,
            chats: HashMap::new(),
            people: HashMap::new(),
            files: HashMap::new(),
            file_order: VecDeque::new(),
            file_bytes: 0,
            sent: VecDeque::new(),
            sent_bytes: 0,
            presses: HashMap::new(),
            press_order: VecDeque::new(),
            answers: VecDeque::new(),
            actions: VecDeque::new(),
            retention: Retention::ALL,
            commands: Value::Null,
            rate_limited: 0,
            calls: HashMap::new(),
            faults: VecDeque::new(),
            global_bucket: Bucket::new(GLOBAL_PER_SEC, GLOBAL_PER_SEC),
            chat_buckets: HashMap::new(),
            group_buckets: HashMap::new(),
            activity: Arc::new(watch::channel(0u64).0),
        }
    }

    /// Tells watchers of the chats (the demo's phone page) that something changed.
    pub(crate) fn touch(&self) {
        self.activity.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Records a successful send or edit, dropping the oldest records beyond the retention —
    /// in number, and in the bytes of the files they hold (the newest is kept).
    pub(crate) fn record_sent(&mut self, sent: Sent) {
        let size = |s: &Sent| s.file.as_ref().map(|f| f.bytes.len() as u64).unwrap_or(0);
        self.sent_bytes += size(&sent);
        self.sent.push_back(sent);
        while self.sent.len() > self.retention.sent
            || (self.sent_bytes > self.retention.file_bytes && self.sent.len() > 1)
        {
            let Some(old) = self.sent.pop_front() else { break };
            self.sent_bytes -= size(&old);
        }
    }

    /// Records a sendChatAction, as many as send records are kept.
    pub(crate) fn record_action(&mut self, chat_id: i64, action: String) {
        self.actions.push_back((chat_id, action));
        while self.actions.len() > self.retention.sent {
            self.actions.pop_front();
        }
    }

    /// Records a button press in its chat; beyond the retention the oldest press goes, from
    /// its chat too, and can no longer be answered.
    pub(crate) fn record_press(&mut self, id: String, press: Press) -> Result<(), SimError> {
        let chat_id = press.chat_id;
        self.chat_mut(chat_id)?.presses.push(id.clone());
        self.presses.insert(id.clone(), press);
        self.press_order.push_back(id);
        while self.press_order.len() > self.retention.presses {
            let Some(old) = self.press_order.pop_front() else { break };
            if let Some(p) = self.presses.remove(&old) {
                if let Some(chat) = self.chats.get_mut(&p.chat_id) {
                    chat.presses.retain(|x| *x != old);
                }
            }
        }
        Ok(())
    }

    /// Records an answerCallbackQuery, as many as presses are kept.
    pub(crate) fn record_answer(&mut self, answer: CallbackAnswer) {
        self.answers.push_back(answer);
        while self.answers.len() > self.retention.presses {
            self.answers.pop_front();
        }
    }

    /// A number unique within this bot (file ids, callback ids).
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Wakes long polls and webhook senders.
    pub(crate) fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Queues an update unless `allowed_updates` filters it out. The filter applies when the
    /// update is created, as on the real server, which does not re-filter queued updates.
    /// The next update id, for an update the test delivers itself.
    pub(crate) fn take_update_id(&mut self) -> i64 {
        let id = self.next_update_id;
        self.next_update_id += 1;
        id
    }

    pub(crate) fn push_update(&mut self, kind: &'static str, body: Value) {
        let allowed = match &self.allowed_updates {
            Some(list) if !list.is_empty() => list.iter().any(|k| k == kind),
            // The default: everything except these three.
            _ => !matches!(kind, "chat_member" | "message_reaction" | "message_reaction_count"),
        };
        if !allowed {
            return;
        }
        let id = self.next_update_id;
        self.next_update_id += 1;
        self.updates.push_back(QueuedUpdate { id, kind, body });
        self.bump();
    }

    /// The bot as a User.
    pub(crate) fn me_json(&self) -> Value {
        json!({"id": self.id, "is_bot": true, "first_name": self.username, "username": self.username})
    }

    /// A person as a User.
    pub(crate) fn person_json(&self, user_id: i64) -> Value {
        match self.people.get(&user_id) {
            Some(p) => {
                let mut user = json!({"id": p.id, "is_bot": false, "first_name": p.first_name, "language_code": "en"});
                if let Some(u) = &p.username {
                    user["username"] = u.as_str().into();
                }
                user
            }
            None if user_id == SERVICE_USER_ID => {
                json!({"id": SERVICE_USER_ID, "is_bot": false, "first_name": "Telegram"})
            }
            None => json!({"id": user_id, "is_bot": false, "first_name": format!("User {user_id}")}),
        }
    }

    /// A chat as a Chat object.
    pub(crate) fn chat_json(&self, chat_id: i64) -> Value {
        let Some(chat) = self.chats.get(&chat_id) else {
            return json!({"id": chat_id, "type": "private"});
        };
        match chat.kind {
            ChatKind::Private => {
                let first_name =
                    chat.user_id.and_then(|u| self.people.get(&u)).map(|p| p.first_name.clone()).unwrap_or_default();
                json!({"id": chat_id, "first_name": first_name, "type": "private"})
            }
            ChatKind::Group => json!({"id": chat_id, "title": chat.title, "type": "group"}),
            ChatKind::Supergroup => {
                json!({"id": chat_id, "title": chat.title, "type": "supergroup"})
            }
        }
    }

    /// The chat.
    pub(crate) fn chat_mut(&mut self, chat_id: i64) -> Result<&mut Chat, SimError> {
        self.chats.get_mut(&chat_id).ok_or(SimError::UnknownChat(chat_id))
    }

    /// Stores a new message in a chat and returns its id and JSON. `fields` holds the content
    /// (text, photo, …); `reply_to` must be a message of the same chat.
    pub(crate) fn new_message(
        &mut self,
        chat_id: i64,
        from: Value,
        fields: Map<String, Value>,
        reply_to: Option<i64>,
        from_bot: bool,
        markup: Option<Value>,
    ) -> Result<(i64, Value), SimError> {
        let chat_json = self.chat_json(chat_id);
        let chat = self.chat_mut(chat_id)?;
        let message_id = chat.next_message_id;
        chat.next_message_id += 1;
        let mut m = Map::new();
        m.insert("message_id".into(), message_id.into());
        m.insert("from".into(), from);
        m.insert("chat".into(), chat_json);
        m.insert("date".into(), unix_now().into());
        m.extend(fields);
        if let Some(r) = reply_to {
            if let Some(stored) = chat.messages.get(&r) {
                // "the Message object in this field will not contain further reply_to_message
                // fields even if it itself is a reply"
                let mut quoted = stored.json.clone();
                if let Some(o) = quoted.as_object_mut() {
                    o.remove("reply_to_message");
                }
                m.insert("reply_to_message".into(), quoted);
            }
        }
        if let Some(k) = &markup {
            m.insert("reply_markup".into(), k.clone());
        }
        let json = Value::Object(m);
        chat.messages.insert(message_id, StoredMessage { json: json.clone(), from_bot, markup });
        self.touch();
        Ok((message_id, json))
    }

    /// Registers a file and returns it.
    pub(crate) fn add_file(
        &mut self,
        dir: &str,
        ext: &str,
        size: u64,
        bytes: Option<Bytes>,
        name: Option<String>,
        mime: Option<String>,
    ) -> StoredFile {
        let n = self.next_seq();
        let file = StoredFile {
            file_id: format!("BQACAgIAAxkBAAI{:06}{}{:04}", self.id.rem_euclid(1_000_000), dir.len(), n),
            unique_id: format!("AgAD{n:06}"),
            path: format!("{dir}/file_{n}.{ext}"),
            size,
            bytes,
            name,
            mime,
        };
        self.files.insert(file.file_id.clone(), file.clone());
        if let Some(b) = &file.bytes {
            self.file_bytes += b.len() as u64;
            self.file_order.push_back(file.file_id.clone());
            // The oldest files go first; the newest stays whatever its size.
            while self.file_bytes > self.retention.file_bytes && self.file_order.len() > 1 {
                let Some(old) = self.file_order.pop_front() else { break };
                if let Some(gone) = self.files.remove(&old) {
                    self.file_bytes -= gone.bytes.map(|b| b.len() as u64).unwrap_or(0);
                }
            }
        }
        file
    }

    /// Three PhotoSize of increasing size; the largest is the real file, the smaller ones are
    /// prefixes of it standing in for Telegram's thumbnails.
    pub(crate) fn photo_sizes(&mut self, bytes: &Bytes) -> Value {
        let len = bytes.len();
        let dims = [(90, 67, len / 16), (320, 240, len / 4), (800, 600, len)];
        let mut sizes = Vec::new();
        for (width, height, size) in dims {
            let size = size.max(1).min(len);
            let file =
                self.add_file("photos", "jpg", size as u64, Some(bytes.slice(..size)), None, Some("image/jpeg".into()));
            let mut m = file.base_json();
            m.insert("width".into(), width.into());
            m.insert("height".into(), height.into());
            sizes.push(Value::Object(m));
        }
        Value::Array(sizes)
    }
}
