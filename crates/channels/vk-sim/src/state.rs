//! The simulated world: communities, the people and conversations they have, messages,
//! uploads, the Long Poll history, Callback API servers, rate buckets and everything the tests
//! read back. One mutex guards it all; it is never held across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::{CallbackAttempt, EventAnswer, Fault, Sent};

/// Shared by the handle, the HTTP server and the Callback API senders.
pub(crate) struct Inner {
    world: Mutex<World>,
    pub(crate) http: reqwest::Client,
    /// `http://127.0.0.1:PORT`
    pub(crate) base: String,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) done: watch::Sender<bool>,
}

impl Inner {
    pub(crate) fn new(addr: std::net::SocketAddr) -> std::io::Result<Inner> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| std::io::Error::other(format!("building the Callback API HTTP client: {e}")))?;
        Ok(Inner {
            world: Mutex::new(World {
                groups: HashMap::new(),
                limits_on: true,
                retry_first: Duration::from_millis(50),
                max_retries: 5,
            }),
            http,
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

    /// Locks the world; a failed test assertion elsewhere does not poison it.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Everything the simulator knows.
pub(crate) struct World {
    /// By access token.
    pub groups: HashMap<String, Group>,
    pub limits_on: bool,
    /// The Callback API's first retry delay (doubling) and how many retries it makes.
    pub retry_first: Duration,
    pub max_retries: u32,
}

impl World {
    pub(crate) fn group(&mut self, token: &str) -> Option<&mut Group> {
        self.groups.get_mut(token)
    }

    pub(crate) fn group_by_id(&mut self, id: i64) -> Option<&mut Group> {
        self.groups.values_mut().find(|g| g.id == id)
    }
}

/// Seconds since the Unix epoch (`date` fields).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(1)
}

/// Peer ids of group conversations start here (`2000000000 + chat_id`, schema
/// `messages.send.peer_id`).
pub(crate) const CHAT_PEER_BASE: i64 = 2_000_000_000;

/// Requests per second a community token may make (`LimitGroupToken = 20` in
/// `SevereCloud/vksdk` `api/api.go`, citing vk.com/dev/api_requests); beyond it, error 6.
pub(crate) const GROUP_RPS: f64 = 20.0;

/// How many Long Poll events are kept.
pub(crate) const LP_HISTORY: usize = 10_000;

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

/// A person the community knows.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub name: String,
    /// Whether they allowed the community's messages (wrote to it, or `message_allow`).
    pub allowed: bool,
    /// Whether the community blacklisted them (error 900).
    pub blacklisted: bool,
}

/// A stored message.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub json: Value,
    pub out: bool,
}

/// A callback-button press (`message_event`) waiting for `messages.sendMessageEventAnswer`.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub user_id: i64,
    pub peer_id: i64,
    pub at: Instant,
}

/// A Callback API server (`groups.addCallbackServer`).
#[derive(Debug, Clone)]
pub(crate) struct CallbackServer {
    pub id: i64,
    pub url: String,
    pub title: String,
    pub secret_key: Option<String>,
    /// `unconfigured`, `ok` once the URL answered the confirmation string, `failed`.
    pub status: String,
}

/// A document uploaded and saved.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub title: String,
    pub bytes: Bytes,
}

/// One community and everything it can see or has done.
pub(crate) struct Group {
    pub id: i64,
    pub name: String,
    pub confirmation: String,
    pub people: HashMap<i64, Person>,
    /// Group conversations the community is in, by peer id.
    pub chats: HashMap<i64, String>,
    pub messages: HashMap<i64, Msg>,
    pub next_message_id: i64,
    /// Per peer: the last `conversation_message_id`.
    pub cmids: HashMap<i64, i64>,
    /// `random_id` → the message it created (dedup over the whole history).
    pub random_ids: HashMap<i64, i64>,
    pub events: HashMap<String, Event>,
    seq: u64,
    // Long Poll.
    pub lp_key: String,
    /// The number of the next event.
    pub lp_ts: i64,
    /// The oldest event number still kept.
    pub lp_oldest: i64,
    pub lp_events: VecDeque<(i64, Value)>,
    /// Set to answer `{"failed":3}` until a new key is fetched.
    pub lp_lost: bool,
    pub changed: watch::Sender<u64>,
    pub servers: Vec<CallbackServer>,
    pub last_event: Option<Value>,
    // Uploads: photo upload results by `photo` string, saved photos, docs.
    pub photo_uploads: HashMap<String, Bytes>,
    pub photos: HashMap<i64, Bytes>,
    pub doc_uploads: HashMap<String, (String, Bytes)>,
    pub docs: HashMap<i64, Doc>,
    pub files: HashMap<String, Bytes>,
    // Records.
    pub sent: Vec<Sent>,
    pub answers: Vec<EventAnswer>,
    pub attempts: Vec<CallbackAttempt>,
    pub calls: HashMap<String, usize>,
    pub rate_limited: usize,
    pub bucket: Bucket,
    pub faults: VecDeque<Fault>,
}

impl Group {
    pub(crate) fn new(id: i64, name: &str) -> Group {
        Group {
            id,
            name: name.to_string(),
            confirmation: format!("{:08x}", (id as u64).wrapping_mul(2_654_435_761) & 0xffff_ffff),
            people: HashMap::new(),
            chats: HashMap::new(),
            messages: HashMap::new(),
            next_message_id: 1,
            cmids: HashMap::new(),
            random_ids: HashMap::new(),
            events: HashMap::new(),
            seq: 0,
            lp_key: format!("lpkey{id}x1"),
            lp_ts: 1,
            lp_oldest: 1,
            lp_events: VecDeque::new(),
            lp_lost: false,
            changed: watch::channel(0u64).0,
            servers: Vec::new(),
            last_event: None,
            photo_uploads: HashMap::new(),
            photos: HashMap::new(),
            doc_uploads: HashMap::new(),
            docs: HashMap::new(),
            files: HashMap::new(),
            sent: Vec::new(),
            answers: Vec::new(),
            attempts: Vec::new(),
            calls: HashMap::new(),
            rate_limited: 0,
            bucket: Bucket::new(GROUP_RPS),
            faults: VecDeque::new(),
        }
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Stores a message and returns its JSON (`messages_message`).
    pub(crate) fn store(&mut self, peer_id: i64, from_id: i64, out: bool, fields: Value) -> Value {
        let id = self.next_message_id;
        self.next_message_id += 1;
        let cmid = {
            let c = self.cmids.entry(peer_id).or_insert(0);
            *c += 1;
            *c
        };
        let mut m = json!({
            "id": id, "date": unix_now(), "peer_id": peer_id, "from_id": from_id, "text": "",
            "conversation_message_id": cmid, "out": i32::from(out), "version": id * 10,
            "attachments": [], "fwd_messages": [], "important": false, "is_hidden": false,
        });
        if let (Some(o), Some(f)) = (m.as_object_mut(), fields.as_object()) {
            for (k, v) in f {
                o.insert(k.clone(), v.clone());
            }
        }
        self.messages.insert(id, Msg { json: m.clone(), out });
        m
    }

    /// A new event for Long Poll and the confirmed Callback API servers: `{type, event_id, v,
    /// object, group_id}` (schema `callback_base`). Returns the servers to push it to.
    pub(crate) fn push_event(&mut self, kind: &str, object: Value) -> (Value, Vec<CallbackServer>) {
        let n = self.next_seq();
        let event = json!({
            "type": kind, "event_id": format!("{:040x}", (self.id as u128) << 64 | u128::from(n)),
            "v": "5.199", "object": object, "group_id": self.id,
        });
        self.push_raw(event)
    }

    /// Queues an event exactly as given (replays keep their `event_id`).
    pub(crate) fn push_raw(&mut self, event: Value) -> (Value, Vec<CallbackServer>) {
        self.last_event = Some(event.clone());
        self.lp_events.push_back((self.lp_ts, event.clone()));
        self.lp_ts += 1;
        // VK keeps a bounded history; older numbers answer `{"failed":1}`.
        while self.lp_events.len() > LP_HISTORY {
            self.lp_events.pop_front();
            self.lp_oldest = self.lp_events.front().map(|(n, _)| *n).unwrap_or(self.lp_ts);
        }
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        let servers = self.servers.iter().filter(|s| s.status == "ok").cloned().collect();
        (event, servers)
    }

    /// The `client_info` of `message_new` (schema `callback_info_for_bots`): what the
    /// person's client supports.
    pub(crate) fn client_info() -> Value {
        json!({
            "button_actions": ["text", "vkpay", "open_app", "location", "open_link", "callback", "intent_subscribe", "intent_unsubscribe"],
            "keyboard": true, "inline_keyboard": true, "carousel": true, "lang_id": 0,
        })
    }
}
