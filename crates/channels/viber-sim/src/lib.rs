//! A Viber REST Bot API simulator for okno's integration tests and benchmarks.
//!
//! It speaks Viber's wire format over real HTTP on 127.0.0.1 under [`ViberSim::api_base`]
//! (`http://127.0.0.1:PORT/pa`, as `https://chatapi.viber.com/pa`) and calls okno's webhook
//! the way Viber does. Where each behaviour comes from:
//!
//! * **Viber's REST Bot API reference** (developers.viber.com/docs/api/rest-bot-api, summarised
//!   in `research/B_messenger_specs.md` §4) and the official clients `Viber/viber-bot-python`
//!   (`viberbot/api/api_request_sender.py`, `consts.py`, `message_sender.py`) and
//!   `Viber/viber-bot-node`: every call is a `POST` of JSON with the header
//!   `X-Viber-Auth-Token` (the old SDK's `auth_token` in the body is taken too); answers are
//!   HTTP 200 with `{"status", "status_message", …}`; `status` 0 is success.
//! * **Endpoints**: `set_webhook` `{"url", "event_types", "send_name", "send_photo"}` →
//!   `{"event_types"}`, and before it answers Viber calls the URL with
//!   `{"event":"webhook","timestamp","chat_hostname","message_token"}`, failing the call unless
//!   the URL answers 200 (§4.1); `{"url": ""}` removes the webhook. `get_account_info` →
//!   `{"id","name","uri","icon","webhook","event_types","subscribers_count"}`;
//!   `send_message` → `{"message_token","chat_hostname"}`; `get_user_details`
//!   `{"id"}` → `{"user":{…}}`.
//! * **Callbacks** (§4.2–4.3, shapes from the python SDK's `tests/api/viber_requests`): every
//!   request carries `X-Viber-Content-Signature`, the lowercase hex HMAC-SHA256 of the raw body
//!   keyed with the auth token; events `message` (`sender{id,name,avatar,…}`,
//!   `message{type,text,media,…}`), `subscribed` (`user`), `unsubscribed` (`user_id`),
//!   `conversation_started` (`user`, `context`, `subscribed`; its answer's body may be one
//!   welcome message, sent to a person who is not subscribed), `delivered`/`seen`/`failed`
//!   (`message_token`, `user_id`, `desc`). A keyboard's `reply` button pressed arrives as a
//!   `message` whose text is the button's `ActionBody`.
//! * **Status codes** (§4.5, creators.viber.com "Errors" page for 1–4, the send-message page for
//!   12, the REST page for the rest): 1 invalidUrl, 2 invalidAuthToken, 3 badData, 4
//!   missingData, 5 receiverNotRegistered, 6 receiverNotSubscribed, 12 tooManyRequests.
//! * **Limits**: text ≤ 7,000 characters, `sender.name` required and ≤ 28 characters,
//!   `tracking_data` ≤ 4,000, JSON request ≤ 30 KB (the send-message page); a keyboard of at
//!   most 24 buttons [INF: the research's reading of the keyboard FAQ], `Columns` 1–6, `Rows`
//!   1–2; at most 100 messages to one person within an hour without their reply (send-message
//!   page; settable with [`ViberSim::set_unanswered_limit`]). Only a subscribed person may be
//!   messaged (status 6 otherwise); a person's first message subscribes them without a
//!   `subscribed` callback (§4.3).
//! * **Media** go by public URL (Viber has no upload): the simulator downloads every `media` it is
//!   given before accepting the message, as Viber's servers do, and refuses with status 3 a URL
//!   it cannot fetch.
//! * **Rich media**: `min_api_version` 2, a card's grid (`ButtonsGroupColumns` 1–6,
//!   `ButtonsGroupRows` 1–7), cells within it and at most 6 cards' worth, the action types rich
//!   media knows; a card's picture is downloaded as `media` is.
//!
//! Not simulated: TLS and the certificate check, `broadcast_message`, `get_online`, `post` to
//! channels, avatars' size, how a client draws a card (text that overflows its cells), billing.
//!
//! A test starts it with [`ViberSim::start`], registers a bot with [`ViberSim::add_bot`], plays
//! people with [`ViberSim::person`] and reads back what okno sent with [`ViberSim::sent_to`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

/// Largest JSON request Viber takes (30 KB).
pub const MAX_REQUEST: usize = 30 * 1024;
/// Longest text message, in characters.
pub const TEXT_LIMIT: usize = 7000;
/// Longest sender name.
pub const SENDER_NAME_LIMIT: usize = 28;
/// Most buttons in one keyboard.
pub const MAX_BUTTONS: usize = 24;

/// The callback signature: lowercase hex HMAC-SHA256 of `body` keyed with the auth token.
pub fn sign(token: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()) else {
        unreachable!("HMAC takes a key of any length")
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A failure the next `send_message` answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `status` with Viber's name for it, HTTP 200.
    Status(i64),
    /// An HTTP error without Viber's body.
    Http(u16),
}

/// One message okno sent that the simulator accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    pub token: i64,
    pub receiver: String,
    /// `text`, `picture`, `file`, `video`, `url`, `rich_media`…
    pub kind: String,
    pub body: Value,
    /// What the simulator downloaded from `media`.
    pub media: Option<Vec<u8>>,
    /// Whether it was the answer to `conversation_started`.
    pub welcome: bool,
}

impl Sent {
    /// The text, or a rich media message's `alt_text`.
    pub fn text(&self) -> Option<String> {
        self.body["text"].as_str().or(self.body["alt_text"].as_str()).map(str::to_string)
    }

    /// The buttons a person can press: the keyboard's, or a rich media message's cells that
    /// act (`ActionType` other than `none`).
    fn pressable(&self) -> Vec<&Value> {
        let keyboard = self.body["keyboard"]["Buttons"].as_array().into_iter().flatten();
        let cells = self.body["rich_media"]["Buttons"].as_array().into_iter().flatten();
        keyboard.chain(cells.filter(|b| b["ActionType"] != "none")).collect()
    }

    /// The labels of the buttons.
    pub fn buttons(&self) -> Vec<String> {
        self.pressable().into_iter().filter_map(|b| b["Text"].as_str().map(str::to_string)).collect()
    }

    /// The `ActionBody` of the button labelled `label`.
    pub fn action_body(&self, label: &str) -> Option<String> {
        self.pressable()
            .into_iter()
            .find(|b| b["Text"].as_str() == Some(label))
            .and_then(|b| b["ActionBody"].as_str().map(str::to_string))
    }
}

/// A callback the simulator signed (and delivered, when a webhook is set).
#[derive(Debug, Clone)]
pub struct Callback {
    pub body: Vec<u8>,
    pub signature: String,
    /// okno's HTTP status and answer body, when it was delivered.
    pub answer: Option<(u16, Value)>,
}

struct Bot {
    token: String,
    id: String,
    name: String,
    uri: String,
    webhook: String,
    event_types: Vec<String>,
}

#[derive(Default)]
struct PersonState {
    name: String,
    subscribed: bool,
    /// Messages sent since the person's last message (within the hour).
    unanswered: VecDeque<Instant>,
}

struct Inner {
    addr: SocketAddr,
    bots: Mutex<Vec<Bot>>,
    people: Mutex<HashMap<String, PersonState>>,
    sent: Mutex<Vec<Sent>>,
    faults: Mutex<VecDeque<Fault>>,
    next_token: Mutex<i64>,
    unanswered_limit: Mutex<usize>,
    set_webhook_calls: Mutex<Vec<Value>>,
    http: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    fn token(&self) -> i64 {
        let mut t = lock(&self.next_token);
        *t += 1;
        *t
    }
}

/// A running simulator; cheap to clone.
#[derive(Clone)]
pub struct ViberSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ViberSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViberSim").field("api_base", &self.api_base()).finish()
    }
}

/// A person on Viber, as a test plays them.
#[derive(Clone, Debug)]
pub struct SimPerson {
    sim: ViberSim,
    pub id: String,
    pub name: String,
}

impl ViberSim {
    /// Starts the simulator on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("viber-sim: binding 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("viber-sim: local address: {e}"));
        let inner = Arc::new(Inner {
            addr,
            bots: Mutex::default(),
            people: Mutex::default(),
            sent: Mutex::default(),
            faults: Mutex::default(),
            next_token: Mutex::new(5_741_311_803_571_721_000),
            unanswered_limit: Mutex::new(100),
            set_webhook_calls: Mutex::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap_or_else(|e| panic!("viber-sim: client: {e}")),
        });
        let app = Router::new()
            .route("/pa/{method}", post(call))
            .layer(DefaultBodyLimit::max(1024 * 1024))
            .with_state(inner.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("viber-sim: the HTTP server stopped: {e}");
            }
        });
        ViberSim { inner }
    }

    /// `http://127.0.0.1:PORT/pa`.
    pub fn api_base(&self) -> String {
        format!("http://{}/pa", self.inner.addr)
    }

    /// Registers a bot (a Viber public account) with its auth token.
    pub fn add_bot(&self, token: &str, name: &str, uri: &str) {
        lock(&self.inner.bots).push(Bot {
            token: token.into(),
            id: format!("pa:{}", uri),
            name: name.into(),
            uri: uri.into(),
            webhook: String::new(),
            event_types: Vec::new(),
        });
    }

    /// The webhook the bot has set, if any.
    pub fn webhook(&self, token: &str) -> Option<(String, Vec<String>)> {
        lock(&self.inner.bots)
            .iter()
            .find(|b| b.token == token && !b.webhook.is_empty())
            .map(|b| (b.webhook.clone(), b.event_types.clone()))
    }

    /// Every `set_webhook` request body received, oldest first.
    pub fn set_webhook_calls(&self) -> Vec<Value> {
        lock(&self.inner.set_webhook_calls).clone()
    }

    /// A person, not yet subscribed.
    pub fn person(&self, id: &str, name: &str) -> SimPerson {
        lock(&self.inner.people).entry(id.into()).or_default().name = name.into();
        SimPerson { sim: self.clone(), id: id.into(), name: name.into() }
    }

    /// The next send answers with `fault`.
    pub fn fail_next(&self, fault: Fault) {
        lock(&self.inner.faults).push_back(fault);
    }

    /// Messages one person may be sent without their reply within an hour.
    pub fn set_unanswered_limit(&self, n: usize) {
        *lock(&self.inner.unanswered_limit) = n;
    }

    /// Everything okno sent, oldest first.
    pub fn sent(&self) -> Vec<Sent> {
        lock(&self.inner.sent).clone()
    }

    /// How many messages okno sent, welcomes included.
    pub fn sent_count(&self) -> usize {
        lock(&self.inner.sent).len()
    }

    /// What okno sent to one person.
    pub fn sent_to(&self, id: &str) -> Vec<Sent> {
        self.sent().into_iter().filter(|s| s.receiver == id).collect()
    }

    /// Waits until `n` messages were sent to `id`.
    pub async fn wait_sent_to(&self, id: &str, n: usize) -> Vec<Sent> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.sent_to(id);
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                panic!("viber-sim: {n} messages to {id} expected, got {got:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn the_bot<R>(&self, f: impl FnOnce(&Bot) -> R) -> R {
        let bots = lock(&self.inner.bots);
        let bot = bots.first().unwrap_or_else(|| panic!("viber-sim: no bot registered"));
        f(bot)
    }

    /// Signs `event` with the bot's token and, when a webhook is set, calls it.
    pub async fn callback(&self, event: Value) -> Callback {
        let (token, url) = self.the_bot(|b| (b.token.clone(), b.webhook.clone()));
        let body = serde_json::to_vec(&event).unwrap_or_default();
        let signature = sign(&token, &body);
        let answer = if url.is_empty() {
            None
        } else {
            Some(deliver(&self.inner, &url, &body, &signature).await.unwrap_or((0, Value::Null)))
        };
        if let Some((200, welcome)) = &answer {
            if event["event"] == "conversation_started" && welcome.get("type").is_some() {
                let receiver = event["user"]["id"].as_str().unwrap_or_default().to_string();
                let mut w = welcome.clone();
                w["receiver"] = json!(receiver);
                let _ = accept(&self.inner, &w, true).await;
            }
        }
        Callback { body, signature, answer }
    }

    /// A delivery receipt for a sent message.
    pub async fn delivered(&self, message_token: i64, user_id: &str) -> Callback {
        self.callback(json!({"event": "delivered", "timestamp": now(), "chat_hostname": "SN-CHAT-05_",
            "message_token": message_token, "user_id": user_id}))
            .await
    }

    pub async fn seen(&self, message_token: i64, user_id: &str) -> Callback {
        self.callback(json!({"event": "seen", "timestamp": now(), "chat_hostname": "SN-CHAT-05_",
            "message_token": message_token, "user_id": user_id}))
            .await
    }

    pub async fn failed(&self, message_token: i64, user_id: &str, desc: &str) -> Callback {
        self.callback(json!({"event": "failed", "timestamp": now(), "chat_hostname": "SN-CHAT-05_",
            "message_token": message_token, "user_id": user_id, "desc": desc}))
            .await
    }
}

impl SimPerson {
    fn user(&self) -> Value {
        json!({"id": self.id, "name": self.name, "avatar": format!("https://media-direct.cdn.viber.com/download_photo?dlid={}", self.id.len()),
               "country": "RU", "language": "ru", "api_version": 10})
    }

    fn set(&self, f: impl FnOnce(&mut PersonState)) {
        f(lock(&self.sim.inner.people).entry(self.id.clone()).or_default());
    }

    /// Whether the bot may write to the person.
    pub fn subscribed(&self) -> bool {
        lock(&self.sim.inner.people).get(&self.id).is_some_and(|p| p.subscribed)
    }

    /// The person sends a message of Viber's shape (`{"type":"text","text":…}`, a picture…);
    /// their first message subscribes them.
    pub async fn send(&self, message: Value) -> Callback {
        self.set(|p| {
            p.subscribed = true;
            p.unanswered.clear();
        });
        let token = self.sim.inner.token();
        self.sim
            .callback(json!({"event": "message", "timestamp": now(), "chat_hostname": "SN-CHAT-05_",
                "message_token": token, "sender": self.user(), "message": message, "silent": false}))
            .await
    }

    /// The person writes `text`.
    pub async fn write(&self, text: &str) -> Callback {
        self.send(json!({"type": "text", "text": text})).await
    }

    /// The person presses the keyboard button labelled `label` under the last message they were
    /// sent: its `ActionBody` comes back as their message.
    pub async fn press(&self, label: &str) -> Callback {
        let body = self
            .sim
            .sent_to(&self.id)
            .iter()
            .rev()
            .find_map(|s| s.action_body(label))
            .unwrap_or_else(|| panic!("viber-sim: no button `{label}` was shown to {}", self.id));
        self.send(json!({"type": "text", "text": body})).await
    }

    /// The person opens the chat (a deep link's `context`, if any).
    pub async fn open(&self, context: Option<&str>) -> Callback {
        let token = self.sim.inner.token();
        let mut ev = json!({"event": "conversation_started", "timestamp": now(), "chat_hostname": "SN-CHAT-05_",
            "message_token": token, "type": "open", "user": self.user(), "subscribed": self.subscribed()});
        if let Some(c) = context {
            ev["context"] = json!(c);
        }
        self.sim.callback(ev).await
    }

    /// The person subscribes (presses "Subscribe" in the chat info).
    pub async fn subscribe(&self) -> Callback {
        self.set(|p| p.subscribed = true);
        let token = self.sim.inner.token();
        self.sim
            .callback(json!({"event": "subscribed", "timestamp": now(), "chat_hostname": "SN-CHAT-05_",
                "message_token": token, "user": self.user()}))
            .await
    }

    /// The person unsubscribes: the bot may no longer write (status 6).
    pub async fn unsubscribe(&self) -> Callback {
        self.set(|p| p.subscribed = false);
        let token = self.sim.inner.token();
        self.sim
            .callback(json!({"event": "unsubscribed", "timestamp": now(), "chat_hostname": "SN-CHAT-05_",
                "message_token": token, "user_id": self.id}))
            .await
    }

    /// Leaves silently (no callback), as when okno's copy of the subscription is stale.
    pub fn leave(&self) {
        self.set(|p| p.subscribed = false);
    }

    /// The texts the person was shown, oldest first.
    pub fn shown(&self) -> Vec<String> {
        self.sim.sent_to(&self.id).iter().filter_map(Sent::text).collect()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

async fn deliver(inner: &Inner, url: &str, body: &[u8], signature: &str) -> Result<(u16, Value), String> {
    let r = inner
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("x-viber-content-signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.bytes().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_slice(&text).unwrap_or(Value::Null)))
}

fn status_name(status: i64) -> &'static str {
    match status {
        0 => "ok",
        1 => "invalidUrl",
        2 => "invalidAuthToken",
        3 => "badData",
        4 => "missingData",
        5 => "receiverNotRegistered",
        6 => "receiverNotSubscribed",
        7 => "publicAccountBlocked",
        8 => "publicAccountNotFound",
        9 => "publicAccountSuspended",
        10 => "webhookNotSet",
        11 => "receiverNoSuitableDevice",
        12 => "tooManyRequests",
        _ => "generalError",
    }
}

fn fail(status: i64, why: &str) -> Response {
    let message = if why.is_empty() { status_name(status).to_string() } else { why.to_string() };
    Json(json!({"status": status, "status_message": message, "chat_hostname": "SN-CHAT-05_"})).into_response()
}

fn ok(mut extra: Value) -> Response {
    extra["status"] = json!(0);
    extra["status_message"] = json!("ok");
    Json(extra).into_response()
}

async fn call(
    State(inner): State<Arc<Inner>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > MAX_REQUEST {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request over 30 KB").into_response();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else { return fail(3, "badData: not JSON") };
    let token = headers
        .get("x-viber-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req["auth_token"].as_str().map(str::to_string));
    let Some(token) = token else { return fail(2, "missing_auth_token") };
    let known = lock(&inner.bots).iter().any(|b| b.token == token);
    if !known {
        return fail(2, "invalidAuthToken");
    }
    match method.as_str() {
        "set_webhook" => set_webhook(&inner, &token, &req).await,
        "get_account_info" => {
            let bots = lock(&inner.bots);
            let Some(b) = bots.iter().find(|b| b.token == token) else { return fail(2, "") };
            let subscribers = lock(&inner.people).values().filter(|p| p.subscribed).count();
            ok(json!({"id": b.id, "name": b.name, "uri": b.uri, "icon": "https://example.org/icon.png",
                "category": "Business", "subcategory": "Services", "country": "RU",
                "webhook": b.webhook, "event_types": b.event_types, "subscribers_count": subscribers,
                "members": [{"id": "admin1", "name": "Admin", "role": "admin"}]}))
        }
        "get_user_details" => {
            let Some(id) = req["id"].as_str() else { return fail(4, "missingData: id") };
            let people = lock(&inner.people);
            match people.get(id) {
                Some(p) => ok(json!({"user": {"id": id, "name": p.name, "language": "ru", "country": "RU",
                    "primary_device_os": "Android 13", "api_version": 10, "device_type": "SM-G991B"}})),
                None => fail(5, "receiverNotRegistered"),
            }
        }
        "send_message" => {
            if lock(&inner.bots).iter().any(|b| b.token == token && b.webhook.is_empty()) {
                return fail(10, "webhookNotSet");
            }
            let fault = lock(&inner.faults).pop_front();
            match fault {
                Some(Fault::Status(s)) => return fail(s, ""),
                Some(Fault::Http(code)) => {
                    return (StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY), "upstream error")
                        .into_response()
                }
                None => {}
            }
            match accept(&inner, &req, false).await {
                Ok(token) => ok(json!({"message_token": token, "chat_hostname": "SN-CHAT-05_"})),
                Err((status, why)) => fail(status, &why),
            }
        }
        _ => fail(3, "badData: unknown method"),
    }
}

async fn set_webhook(inner: &Inner, token: &str, req: &Value) -> Response {
    lock(&inner.set_webhook_calls).push(req.clone());
    let Some(url) = req["url"].as_str() else { return fail(4, "missingData: url") };
    let types: Vec<String> = req["event_types"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
        .unwrap_or_else(|| {
            ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"]
                .map(String::from)
                .to_vec()
        });
    if url.is_empty() {
        for b in lock(&inner.bots).iter_mut().filter(|b| b.token == token) {
            b.webhook.clear();
        }
        return ok(json!({}));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return fail(1, "invalidUrl");
    }
    // Viber checks the address with a signed `webhook` callback and wants HTTP 200.
    let check = json!({"event": "webhook", "timestamp": now(), "chat_hostname": "SN-CHAT-05_",
                       "message_token": inner.token()});
    let body = serde_json::to_vec(&check).unwrap_or_default();
    match deliver(inner, url, &body, &sign(token, &body)).await {
        Ok((200, _)) => {}
        Ok((code, _)) => return fail(1, &format!("Result[HttpRequest[POST {url}] error[HTTP {code}]]")),
        Err(e) => return fail(1, &format!("Result[HttpRequest[POST {url}] error[{e}]]")),
    }
    for b in lock(&inner.bots).iter_mut().filter(|b| b.token == token) {
        b.webhook = url.to_string();
        b.event_types = types.clone();
    }
    ok(json!({"event_types": types}))
}

fn check_keyboard(kb: &Value) -> Result<(), String> {
    if kb["Type"] != "keyboard" {
        return Err("badData: keyboard Type must be keyboard".into());
    }
    let Some(buttons) = kb["Buttons"].as_array() else { return Err("missingData: keyboard Buttons".into()) };
    if buttons.is_empty() || buttons.len() > MAX_BUTTONS {
        return Err(format!("badData: a keyboard holds 1 to {MAX_BUTTONS} buttons, got {}", buttons.len()));
    }
    for b in buttons {
        let cols = b["Columns"].as_i64().unwrap_or(6);
        let rows = b["Rows"].as_i64().unwrap_or(1);
        if !(1..=6).contains(&cols) || !(1..=2).contains(&rows) {
            return Err("badData: Columns 1-6, Rows 1-2".into());
        }
        let action = b["ActionType"].as_str().unwrap_or("reply");
        if !matches!(action, "reply" | "open-url" | "location-picker" | "share-phone" | "none") {
            return Err(format!("badData: ActionType {action}"));
        }
        if b["ActionBody"].as_str().is_none_or(str::is_empty) {
            return Err("missingData: ActionBody".into());
        }
    }
    Ok(())
}

/// Checks a `rich_media` message as the REST Bot API describes it: `min_api_version` at least
/// 2, `ButtonsGroupColumns` 1–6 and `ButtonsGroupRows` 1–7 (defaults 6 and 7), at most
/// 6 × columns × rows cells, each within one card and with an `ActionType` rich media knows
/// (`reply`, `open-url`, `none`); a `reply` or `open-url` cell needs its `ActionBody`.
/// [DOC rich media section; the `min_api_version` refusal's code is INF.]
fn check_rich_media(req: &Value) -> Result<(), String> {
    if req["min_api_version"].as_i64().unwrap_or(1) < 2 {
        return Err("badData: rich_media needs min_api_version 2".into());
    }
    let rm = &req["rich_media"];
    let cols = rm["ButtonsGroupColumns"].as_i64().unwrap_or(6);
    let rows = rm["ButtonsGroupRows"].as_i64().unwrap_or(7);
    if !(1..=6).contains(&cols) || !(1..=7).contains(&rows) {
        return Err("badData: ButtonsGroupColumns 1-6, ButtonsGroupRows 1-7".into());
    }
    let Some(cells) = rm["Buttons"].as_array().filter(|b| !b.is_empty()) else {
        return Err("missingData: rich_media Buttons".into());
    };
    if cells.len() as i64 > 6 * cols * rows {
        return Err(format!("badData: at most {} rich media cells", 6 * cols * rows));
    }
    for b in cells {
        let (c, r) = (b["Columns"].as_i64().unwrap_or(cols), b["Rows"].as_i64().unwrap_or(1));
        if !(1..=cols).contains(&c) || !(1..=rows).contains(&r) {
            return Err(format!("badData: a cell of {c}×{r} does not fit a card of {cols}×{rows}"));
        }
        let action = b["ActionType"].as_str().unwrap_or("reply");
        if !matches!(action, "reply" | "open-url" | "none") {
            return Err(format!("badData: ActionType {action} in rich media"));
        }
        if action != "none" && b["ActionBody"].as_str().is_none_or(str::is_empty) {
            return Err("missingData: ActionBody".into());
        }
    }
    Ok(())
}

/// Checks and records one message; the answer is its `message_token`.
async fn accept(inner: &Inner, req: &Value, welcome: bool) -> Result<i64, (i64, String)> {
    let receiver = req["receiver"].as_str().unwrap_or_default().to_string();
    if receiver.is_empty() {
        return Err((4, "missingData: receiver".into()));
    }
    let name = req["sender"]["name"].as_str().unwrap_or_default();
    if name.is_empty() || name.chars().count() > SENDER_NAME_LIMIT {
        return Err((3, format!("badData: sender.name is required, at most {SENDER_NAME_LIMIT} characters")));
    }
    if req["tracking_data"].as_str().is_some_and(|t| t.chars().count() > 4000) {
        return Err((3, "badData: tracking_data over 4000 characters".into()));
    }
    let kind = req["type"].as_str().unwrap_or_default().to_string();
    match kind.as_str() {
        "text" => {
            let text = req["text"].as_str().unwrap_or_default();
            if text.is_empty() {
                return Err((4, "missingData: text".into()));
            }
            if text.chars().count() > TEXT_LIMIT {
                return Err((3, format!("badData: text over {TEXT_LIMIT} characters")));
            }
        }
        "picture" | "video" | "file" | "url" => {
            if req["media"].as_str().is_none_or(str::is_empty) {
                return Err((4, "missingData: media".into()));
            }
            if kind == "file" && req["file_name"].as_str().is_none_or(str::is_empty) {
                return Err((4, "missingData: file_name".into()));
            }
            if kind == "picture" && req["text"].as_str().is_some_and(|t| t.chars().count() > 512) {
                return Err((3, "badData: picture description over 512 characters".into()));
            }
        }
        "rich_media" => check_rich_media(req).map_err(|e| (3, e))?,
        "contact" | "location" | "sticker" => {}
        _ => return Err((3, format!("badData: unknown type `{kind}`"))),
    }
    if !req["keyboard"].is_null() {
        check_keyboard(&req["keyboard"]).map_err(|e| (3, e))?;
    }
    {
        let limit = *lock(&inner.unanswered_limit);
        let mut people = lock(&inner.people);
        let Some(p) = people.get_mut(&receiver) else { return Err((5, "receiverNotRegistered".into())) };
        if !p.subscribed && !welcome {
            return Err((6, "receiverNotSubscribed".into()));
        }
        let hour_ago = Instant::now().checked_sub(Duration::from_secs(3600));
        p.unanswered.retain(|t| hour_ago.is_none_or(|h| *t > h));
        if p.unanswered.len() >= limit {
            return Err((12, "Too many requests".into()));
        }
        p.unanswered.push_back(Instant::now());
    }
    // A rich media card's picture is downloaded as a picture's `media` is.
    let card_image = req["rich_media"]["Buttons"]
        .as_array()
        .and_then(|cells| cells.iter().find_map(|c| c["Image"].as_str()))
        .filter(|_| kind == "rich_media");
    let media = match req["media"].as_str().filter(|_| kind != "url").or(card_image) {
        Some(url) => {
            let r = inner.http.get(url).send().await.map_err(|e| (3, format!("badData: media {url}: {e}")))?;
            if !r.status().is_success() {
                return Err((3, format!("badData: media {url} answered {}", r.status())));
            }
            Some(r.bytes().await.map_err(|e| (3, format!("badData: media: {e}")))?.to_vec())
        }
        None => None,
    };
    let token = inner.token();
    lock(&inner.sent).push(Sent { token, receiver, kind, body: req.clone(), media, welcome });
    Ok(token)
}
