//! An Avito Messenger API simulator for okno's integration tests and benchmarks.
//!
//! It speaks Avito's wire format over real HTTP on 127.0.0.1 under [`AvitoSim::api_base`] (as
//! `https://api.avito.ru`) and pushes webhooks the way Avito does. Where each behaviour comes
//! from:
//!
//! * **Avito's own OpenAPI documents** `Авторизация.json` and `Мессенджер.json` (copies of
//!   developers.avito.ru, as vendored in the public repository `p141592/avito_python_api`,
//!   `docs/avito/api/`) [SPEC]:
//!   * `POST /token` with `grant_type=client_credentials&client_id&client_secret`
//!     (form-encoded) → `{"access_token","expires_in","token_type":"Bearer"}`; a token lives
//!     24 hours ("Время действия токена ограничено - 24 часа");
//!   * `GET /messenger/v2/accounts/{user_id}/chats` (`limit` 1–100, `offset` ≤ 1000,
//!     `unread_only`, `chat_types`), `GET …/chats/{chat_id}`: a chat with `id`, `created`,
//!     `updated`, `users[{id,name}]`, `last_message` and `context{type:"item",
//!     value{id,title,url,price_string,status_id,user_id}}`;
//!   * `GET /messenger/v3/accounts/{user_id}/chats/{chat_id}/messages/` (trailing slash) →
//!     the swagger's bare array of messages (`id`, `author_id`, `created`, `direction`,
//!     `type`, `content`, `is_read`, `read`); it does not mark the chat read;
//!   * `POST /messenger/v1/accounts/{user_id}/chats/{chat_id}/messages`
//!     `{"message":{"text"},"type":"text"}`, the text at most 1,000 characters →
//!     `{"id","created","direction":"out","type":"text","content":{"text"}}`;
//!   * `POST /messenger/v1/accounts/{user_id}/uploadImages` (multipart `uploadfile[]`) →
//!     `{"<image_id>":{"1280x960":url,"140x105":url}}`, then
//!     `POST …/chats/{chat_id}/messages/image` `{"image_id"}`;
//!   * `POST …/chats/{chat_id}/read` → `{"ok":true}`;
//!   * `POST /messenger/v3/webhook` `{"url"}` → `{"ok":true}`, `POST /messenger/v1/subscriptions`
//!     → `{"subscriptions":[{"url","version":"3"}]}`, `POST /messenger/v1/webhook/unsubscribe`;
//!   * the webhook body `{"id","version","timestamp","payload":{"type":"message","value":{
//!     "id","chat_id","user_id","author_id","created","type","chat_type","content",
//!     "item_id","read","published_at"}}}`, `user_id` always the subscribed account;
//!   * errors `{"error":{"code","message"}}` with statuses 400, 401, 402, 403, 404, 500, 503.
//! * **The 2-second deadline** (the webhook page of developers.avito.ru, as quoted in the
//!   project's research notes): a subscriber must answer 200 within 2 s. The simulator waits
//!   at most that long, counts a late or missing answer as failed, and delivers again.
//!   How often and how soon Avito retries is not documented [INF]: three attempts here, 100 ms
//!   and 200 ms apart.
//! * **Third-party clients** found by code search [3P]: `GET /core/v1/accounts/self` →
//!   `{"id","name","email","phone","profile_url"}` (used to check an account's id); a refused
//!   client secret answered with OAuth's `{"error":"invalid_client","error_description"}`;
//!   the header `x-avito-messenger-signature`, which the simulator fills with the hex
//!   HMAC-SHA256 of the body keyed with the client secret — Avito documents no algorithm, so
//!   okno must not depend on it (it checks a secret in the address it registered instead).
//! * Echoes: the webhook reports every message of the account's chats, so the seller's own —
//!   okno's replies among them — come back with `author_id` = the account ([3P] practice: the
//!   clients found skip them); the simulator pushes one for each message okno sends.
//! * Rate limits are not stated by Avito [INF]: off by default; [`AvitoSim::fail_next`] makes
//!   a call answer 429 with `Retry-After`.
//!
//! * Voice messages: `content.voice.voice_id`, and `GET /messenger/v1/accounts/{user_id}/
//!   getVoiceFiles?voice_ids=` → `{"voices_urls":{id:url}}` (opus in MP4, each URL valid an hour
//!   [SPEC]; the simulator's do not expire).
//!
//! Not simulated: TLS, the authorization-code flow, deleting messages, blacklists,
//! u2u chats beyond their type.
//!
//! A test starts it with [`AvitoSim::start`] (one seller account), lists items with
//! [`AvitoSim::add_item`], plays buyers with [`Buyer`], and reads back what okno sent with
//! [`AvitoSim::sent`]. Those helpers panic on a mistake.

mod server;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Longest text message, in characters (`sendMessageRequestBody.message.text`: maxLength 1000).
pub const TEXT_LIMIT: usize = 1000;
/// How long Avito waits for a webhook's answer.
pub const WEBHOOK_DEADLINE: Duration = Duration::from_secs(2);
/// The signature header Avito sends with webhooks (algorithm undocumented).
pub const SIGNATURE_HEADER: &str = "x-avito-messenger-signature";

/// An ad a chat is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: i64,
    pub title: String,
    /// `price_string`, with its currency: `12 000 ₽`.
    pub price: String,
    pub url: String,
}

/// One message okno sent that the simulator accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: String,
    pub chat_id: String,
    /// `text` or `image`.
    pub kind: String,
    pub text: Option<String>,
    pub image_id: Option<String>,
    pub at: Instant,
}

/// One webhook delivery attempt.
#[derive(Debug, Clone)]
pub struct Push {
    pub url: String,
    pub body: Vec<u8>,
    /// okno's status (`None`: no answer within the deadline, or no connection).
    pub status: Option<u16>,
    pub elapsed: Duration,
    /// Answered 200 within the deadline.
    pub ok: bool,
    pub attempt: u32,
}

/// A failure the next Messenger API call (not `/token`) answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// That HTTP status with Avito's error body.
    Status(u16),
    /// 429 with `Retry-After: 1`.
    TooManyRequests,
}

#[derive(Debug, Clone)]
pub(crate) struct Chat {
    pub id: String,
    pub buyer: i64,
    pub item: Option<Item>,
    pub created: i64,
    pub updated: i64,
    pub messages: Vec<Value>,
    /// The buyer blocked the seller: sends are refused (403).
    pub closed: bool,
}

pub(crate) struct World {
    pub client_id: String,
    pub client_secret: String,
    pub user_id: i64,
    pub name: String,
    pub token_ttl: Duration,
    pub tokens: HashMap<String, Instant>,
    pub tokens_issued: u32,
    pub refused_expired: u32,
    pub tariff: bool,
    pub echo_sent: bool,
    pub chat_delay: Duration,
    pub webhook: Option<String>,
    pub deadline: Duration,
    pub chats: BTreeMap<String, Chat>,
    pub buyers: HashMap<i64, String>,
    pub items: HashMap<i64, Item>,
    pub images: HashMap<String, (bytes::Bytes, String)>,
    pub voices: HashMap<String, bytes::Bytes>,
    pub sent: Vec<Sent>,
    pub reads: Vec<String>,
    pub faults: VecDeque<Fault>,
    pub pushes: Vec<Push>,
    pub seq: u64,
}

impl World {
    pub fn next(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}{:08x}", self.seq * 2654435761 % 0xffff_ffff)
    }

    pub fn chat_json(&self, chat: &Chat) -> Value {
        let buyer = self.buyers.get(&chat.buyer).cloned().unwrap_or_default();
        let mut v = json!({
            "id": chat.id,
            "created": chat.created,
            "updated": chat.updated,
            "users": [{"id": self.user_id, "name": self.name}, {"id": chat.buyer, "name": buyer}],
        });
        if let Some(item) = &chat.item {
            v["context"] = json!({"type": "item", "value": {
                "id": item.id, "title": item.title, "url": item.url, "price_string": item.price,
                "status_id": 10, "user_id": self.user_id,
                "images": {"count": 1, "main": {"140x105": format!("{}/img/item-{}.jpg", "https://static.avito.example", item.id)}},
            }});
        }
        if let Some(last) = chat.messages.last() {
            v["last_message"] = last.clone();
        }
        v
    }
}

pub(crate) struct Inner {
    pub base: String,
    pub http: reqwest::Client,
    world: Mutex<World>,
}

impl Inner {
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `1973-03-04T13:33:09Z` for a unix time.
pub(crate) fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The hex HMAC-SHA256 of `body` keyed with `secret`: what the simulator puts in
/// [`SIGNATURE_HEADER`] (a guess at Avito's undocumented algorithm).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return String::new() };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A running simulator with one seller account; cheap to clone.
#[derive(Clone)]
pub struct AvitoSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AvitoSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvitoSim").field("api_base", &self.api_base()).finish()
    }
}

impl AvitoSim {
    /// Starts on 127.0.0.1:0 with a seller account: its application's `client_id` and
    /// `client_secret`, and its Avito user id. Test helper: panics when the port cannot be bound.
    pub async fn start(client_id: &str, client_secret: &str, user_id: i64) -> AvitoSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("avito-sim: binding 127.0.0.1:0: {e}"));
        let addr: SocketAddr = listener.local_addr().unwrap_or_else(|e| panic!("avito-sim: local address: {e}"));
        let world = World {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            user_id,
            name: "Окна Плюс".into(),
            token_ttl: Duration::from_secs(86_400),
            tokens: HashMap::new(),
            tokens_issued: 0,
            refused_expired: 0,
            tariff: true,
            echo_sent: true,
            chat_delay: Duration::ZERO,
            webhook: None,
            deadline: WEBHOOK_DEADLINE,
            chats: BTreeMap::new(),
            buyers: HashMap::new(),
            items: HashMap::new(),
            images: HashMap::new(),
            voices: HashMap::new(),
            sent: Vec::new(),
            reads: Vec::new(),
            faults: VecDeque::new(),
            pushes: Vec::new(),
            seq: 0,
        };
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_else(|e| panic!("avito-sim: HTTP client: {e}"));
        let inner = Arc::new(Inner { base: format!("http://{addr}"), http, world: Mutex::new(world) });
        let app = server::router(inner.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("avito-sim: the HTTP server stopped: {e}");
            }
        });
        AvitoSim { inner }
    }

    /// `http://127.0.0.1:PORT`: what okno is configured with instead of `https://api.avito.ru`.
    pub fn api_base(&self) -> String {
        self.inner.base.clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.inner.world())
    }

    /// How long the tokens issued from now on live (Avito: 24 hours).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.with(|w| w.token_ttl = ttl);
    }

    /// Every token issued so far stops working (answered 401 from now on).
    pub fn expire_tokens(&self) {
        let past = Instant::now();
        self.with(|w| w.tokens.values_mut().for_each(|t| *t = past));
    }

    /// How many tokens `/token` issued.
    pub fn tokens_issued(&self) -> u32 {
        self.with(|w| w.tokens_issued)
    }

    /// How many calls were refused 401 because their token had expired.
    pub fn refused_expired(&self) -> u32 {
        self.with(|w| w.refused_expired)
    }

    /// Whether the account's tariff includes the Messenger API (by default it does); without it
    /// every Messenger call answers 402.
    pub fn set_tariff(&self, included: bool) {
        self.with(|w| w.tariff = included);
    }

    /// Whether messages okno sends come back to its webhook as the seller's own, as Avito
    /// reports every message in the account's chats (on by default).
    pub fn set_echo(&self, on: bool) {
        self.with(|w| w.echo_sent = on);
    }

    /// How long `GET …/chats/{chat_id}` takes to answer (a slow Avito).
    pub fn set_chat_delay(&self, delay: Duration) {
        self.with(|w| w.chat_delay = delay);
    }

    /// How long okno may take to answer a webhook (Avito: 2 s).
    pub fn set_deadline(&self, deadline: Duration) {
        self.with(|w| w.deadline = deadline);
    }

    /// The webhook URL okno subscribed (`POST /messenger/v3/webhook`).
    pub fn webhook(&self) -> Option<String> {
        self.with(|w| w.webhook.clone())
    }

    /// Lists an ad of the seller's.
    pub fn add_item(&self, id: i64, title: &str, price: &str) -> Item {
        let item = Item {
            id,
            title: title.to_string(),
            price: price.to_string(),
            url: format!("https://www.avito.ru/moskva/tovary/item_{id}"),
        };
        self.with(|w| w.items.insert(id, item.clone()));
        item
    }

    /// A buyer (an Avito user) with `id` and `name`.
    pub fn buyer(&self, id: i64, name: &str) -> Buyer {
        self.with(|w| w.buyers.insert(id, name.to_string()));
        Buyer { sim: self.clone(), id }
    }

    /// The next Messenger API call fails with `fault`; several queue up.
    pub fn fail_next(&self, fault: Fault) {
        self.with(|w| w.faults.push_back(fault));
    }

    /// Every accepted message, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.with(|w| w.sent.clone())
    }

    /// How many messages were accepted.
    pub fn sent_count(&self) -> usize {
        self.with(|w| w.sent.len())
    }

    /// The accepted messages into one chat.
    pub fn sent_to(&self, chat_id: &str) -> Vec<Sent> {
        self.with(|w| w.sent.iter().filter(|s| s.chat_id == chat_id).cloned().collect())
    }

    /// Waits until at least `count` messages were accepted; panics with what was sent after `secs`.
    pub async fn wait_sent(&self, count: usize, secs: u64) -> Vec<Sent> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let sent = self.sent();
            if sent.len() >= count {
                return sent;
            }
            if Instant::now() > deadline {
                let shown: Vec<_> = sent.iter().map(|s| (s.chat_id.clone(), s.text.clone())).collect();
                panic!("avito-sim: expected {count} messages within {secs}s, got {}: {shown:?}", sent.len());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Chats okno marked read, in order.
    pub fn reads(&self) -> Vec<String> {
        self.with(|w| w.reads.clone())
    }

    /// The bytes of an image (uploaded by okno, or sent by a buyer).
    pub fn image(&self, image_id: &str) -> Option<(Vec<u8>, String)> {
        self.with(|w| w.images.get(image_id).map(|(b, m)| (b.to_vec(), m.clone())))
    }

    /// Every webhook delivery attempt, in order.
    pub fn pushes(&self) -> Vec<Push> {
        self.with(|w| w.pushes.clone())
    }

    /// The signature the simulator puts on `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let secret = self.with(|w| w.client_secret.clone());
        sign(secret.as_bytes(), body)
    }

    /// A webhook body around a message `value` (`{"id","version","timestamp","payload"}`).
    pub fn envelope(&self, value: Value) -> Value {
        let id = self.with(|w| w.next("evt-"));
        json!({"id": id, "version": "v3.0.0", "timestamp": unix_now(),
               "payload": {"type": "message", "value": value}})
    }

    /// POSTs `body` to the subscribed URL as Avito does (deadline, retries); returns whether
    /// one attempt was answered 200 in time. Without a subscription nothing is sent (`false`).
    pub async fn push(&self, body: &Value) -> bool {
        server::push(&self.inner, body.to_string().into_bytes()).await
    }

    /// The last body pushed, pushed again exactly (a redelivery).
    pub async fn redeliver_last(&self) -> bool {
        let last = self.with(|w| w.pushes.last().map(|p| p.body.clone()));
        let body = last.unwrap_or_else(|| panic!("avito-sim: nothing pushed yet"));
        server::push(&self.inner, body).await
    }

    /// The seller writes in a chat from Avito's own app: stored, and pushed to the webhook as
    /// Avito does (an "echo" whose `author_id` is the account's own id).
    pub async fn seller_writes(&self, chat_id: &str, text: &str) -> Written {
        let user_id = self.with(|w| w.user_id);
        write(self, chat_id, user_id, "text", json!({"text": text})).await
    }

    /// A chat's messages as Avito keeps them (`GET …/messages/`).
    pub fn messages(&self, chat_id: &str) -> Vec<Value> {
        self.with(|w| w.chats.get(chat_id).map(|c| c.messages.clone()).unwrap_or_default())
    }
}

/// An Avito user who writes to the seller about an ad. Each action makes the webhook Avito
/// would send, pushes it to the subscribed URL, and returns it.
#[derive(Clone)]
pub struct Buyer {
    sim: AvitoSim,
    pub id: i64,
}

/// A webhook an action made.
#[derive(Debug, Clone)]
pub struct Written {
    /// The message's id.
    pub id: String,
    pub chat_id: String,
    /// The body as pushed.
    pub body: Vec<u8>,
    /// The signature header sent with it.
    pub signature: String,
    /// One attempt was answered 200 within the deadline.
    pub delivered: bool,
}

async fn write(sim: &AvitoSim, chat_id: &str, author: i64, kind: &str, content: Value) -> Written {
    let (value, id) = sim.with(|w| {
        let id = w.next("msg-");
        let now = unix_now();
        let user_id = w.user_id;
        let chat = w.chats.get_mut(chat_id).unwrap_or_else(|| panic!("avito-sim: no chat {chat_id}"));
        let direction = if author == user_id { "out" } else { "in" };
        chat.messages.push(json!({"id": id, "author_id": author, "created": now, "direction": direction,
            "type": kind, "content": content, "is_read": false, "read": null}));
        chat.updated = now;
        let mut value = json!({"id": id, "chat_id": chat_id, "user_id": user_id, "author_id": author, "created": now,
            "type": kind, "chat_type": if chat.item.is_some() { "u2i" } else { "u2u" }, "content": content,
            "published_at": rfc3339(now)});
        if let Some(item) = &chat.item {
            value["item_id"] = json!(item.id);
        }
        (value, id)
    });
    let body = sim.envelope(value).to_string().into_bytes();
    let signature = sim.sign(&body);
    let delivered = server::push(&sim.inner, body.clone()).await;
    Written { id, chat_id: chat_id.to_string(), body, signature, delivered }
}

impl Buyer {
    /// The chat this buyer has about `item` (`None`: a chat about no ad), opened when new.
    pub fn chat(&self, item: Option<&Item>) -> String {
        self.sim.with(|w| {
            let found = w
                .chats
                .values()
                .find(|c| c.buyer == self.id && c.item.as_ref().map(|i| i.id) == item.map(|i| i.id))
                .map(|c| c.id.clone());
            if let Some(id) = found {
                return id;
            }
            let id = format!("u2i-{}", w.next(""));
            let now = unix_now();
            w.chats.insert(
                id.clone(),
                Chat {
                    id: id.clone(),
                    buyer: self.id,
                    item: item.cloned(),
                    created: now,
                    updated: now,
                    messages: Vec::new(),
                    closed: false,
                },
            );
            id
        })
    }

    /// Writes `text` in the chat about `item`.
    pub async fn write(&self, item: Option<&Item>, text: &str) -> Written {
        let chat = self.chat(item);
        write(&self.sim, &chat, self.id, "text", json!({"text": text})).await
    }

    /// Sends a photo in the chat about `item`: kept by the simulator and named by its sizes'
    /// URLs, as Avito does.
    pub async fn send_image(&self, item: Option<&Item>, data: &[u8], mime: &str) -> Written {
        let chat = self.chat(item);
        let (image_id, base) = self.sim.with(|w| {
            let id = w.next("img-");
            w.images.insert(id.clone(), (bytes::Bytes::copy_from_slice(data), mime.to_string()));
            (id, self.sim.inner.base.clone())
        });
        let sizes = json!({"1280x960": format!("{base}/images/1280x960/{image_id}"),
                           "140x105": format!("{base}/images/140x105/{image_id}")});
        write(&self.sim, &chat, self.id, "image", json!({"image": {"sizes": sizes}})).await
    }

    /// Sends a voice message (opus in MP4), fetched through `getVoiceFiles`.
    pub async fn send_voice(&self, item: Option<&Item>, data: &[u8]) -> Written {
        let chat = self.chat(item);
        let voice_id = self.sim.with(|w| {
            let id = w.next("voice-");
            w.voices.insert(id.clone(), bytes::Bytes::copy_from_slice(data));
            id
        });
        write(&self.sim, &chat, self.id, "voice", json!({"voice": {"voice_id": voice_id}})).await
    }

    /// Blocks the seller: okno's sends into their chats are refused from now on.
    pub fn block(&self) {
        self.sim.with(|w| w.chats.values_mut().filter(|c| c.buyer == self.id).for_each(|c| c.closed = true));
    }

    /// The texts the buyer was shown (in every chat of theirs), oldest first.
    pub fn shown(&self) -> Vec<String> {
        self.sim.with(|w| {
            let chats: Vec<&String> = w.chats.values().filter(|c| c.buyer == self.id).map(|c| &c.id).collect();
            w.sent.iter().filter(|s| chats.contains(&&s.chat_id)).filter_map(|s| s.text.clone()).collect()
        })
    }
}
