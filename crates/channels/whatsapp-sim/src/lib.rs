//! A WhatsApp Cloud API simulator for okno's integration tests and benchmarks.
//!
//! It speaks Meta's Graph API wire format over real HTTP on 127.0.0.1 under
//! [`WaSim::api_base`] (`http://127.0.0.1:PORT/v21.0`, as `https://graph.facebook.com/v21.0`)
//! and pushes webhooks the way Meta does. Where each behaviour comes from:
//!
//! * **Meta's Cloud API reference** (developers.facebook.com, read through the search tools and
//!   summarised in `research/B_messenger_specs.md` §2): `POST /{phone_number_id}/messages` with
//!   `messaging_product: whatsapp` and its answer `{"messaging_product","contacts":[{"input",
//!   "wa_id"}],"messages":[{"id"}]}` (§2.6); `POST /{phone_number_id}/media` multipart
//!   (`file`, `type`, `messaging_product`) → `{"id"}`; `GET /{media_id}` →
//!   `{"messaging_product","url","mime_type","sha256","file_size","id"}` and the URL fetched with
//!   the bearer token (checked against the `whatsapp-cloud-api` crate's `MediaResponse` and
//!   the Kapso/whatsapp-api-js `ServerMediaRetrieveResponse` types); mark as read
//!   `{"status":"read","message_id"}` → `{"success":true}` (§2.6, official Node SDK).
//! * **Webhooks** (§2.2–2.5): `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw
//!   body)>`, the `hub.mode`/`hub.verify_token`/`hub.challenge` check of the callback URL,
//!   the `entry[].changes[].value.{messages,contacts,statuses}` envelope; statuses `sent`,
//!   `delivered`, `read`, `failed` with `errors[{code,title,message,error_data{details}}]`;
//!   Meta may deliver duplicates and out of order (§2.3, [3P] 360dialog).
//! * **Error codes** ("WhatsApp error codes" page, and YCloud's copy of its table with HTTP
//!   statuses, §2.8): the body `{"error":{"message":"(#code) title","type":"OAuthException",
//!   "code","error_subcode"?,"error_data":{"messaging_product","details"},"fbtrace_id"}}`;
//!   190 (token, 401), 100 (invalid parameter, 400), 130429 (throughput, 429), 131056 (pair
//!   rate, 400), 131047 (re-engagement, outside the 24-hour window), 131026 (undeliverable),
//!   131009 (parameter value not valid: button limits), 132000/132001 (template parameters /
//!   template missing), 131000 (500).
//! * **Limits**: 80 messages a second per number ("Throughput" page, May 2026); the pair rate
//!   of about one message per 6 seconds to one person ([3P] dev.to wapgrowai) with a burst of
//!   45 [INF: Meta describes the pair rate as burst-tolerant without a figure here; the burst is
//!   settable]; text body 4,096 characters; interactive body 1,024; ≤ 3 reply buttons with
//!   titles ≤ 20 and ids ≤ 256; lists ≤ 10 rows in total, row titles ≤ 24, ids ≤ 200,
//!   descriptions ≤ 72, the list button ≤ 20 (§2.6, SDK `ButtonObject`, `RowObject`).
//! * **The 24-hour window** (§2.7): free-form messages only within 24 hours of the person's
//!   last message; templates always. By default the simulator refuses a free-form send outside
//!   the window synchronously with 131047 (what okno's engine must never cause, as it refuses up
//!   front); [`WindowMode::FailedStatus`] instead accepts it and pushes a `failed` status with
//!   131047, as the research notes Cloud API does [INF].
//!
//! Not simulated: TLS, the Business Manager (templates are registered with
//! [`WaSim::add_template`], not reviewed), message tiers and quality ratings, pricing objects
//! beyond a fixed `pricing` block, flows, calls, groups, reactions sent by the business.
//!
//! A test starts it with [`WaSim::start`], registers a number with [`WaSim::add_number`], sets
//! okno's callback with [`WaSim::subscribe`], plays people with [`SimPerson`], and reads back
//! what okno sent with [`WaSim::sent`] and friends. Those helpers panic on a mistake.

mod server;
mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::state::{Inner, Number, Person};

/// A running simulator; cheap to clone (all clones share one server and one state).
#[derive(Clone)]
pub struct WaSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WaSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaSim").field("api_base", &self.api_base()).finish()
    }
}

/// One message okno sent that the simulator accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The `wamid` answered.
    pub id: String,
    /// The recipient's `wa_id`.
    pub to: String,
    /// `text`, `image`, `document`, `interactive`, `template`…
    pub kind: String,
    /// The request body as sent.
    pub body: Value,
    /// The text a person sees: a text's body, a caption, an interactive body, or
    /// `template:<name>` with its parameters.
    pub shown: Option<String>,
    pub at: Instant,
}

impl Sent {
    /// The labels of an interactive message's buttons or list rows.
    pub fn buttons(&self) -> Vec<String> {
        let i = &self.body["interactive"];
        let mut out: Vec<String> = i["action"]["buttons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["reply"]["title"].as_str().map(str::to_string))
            .collect();
        for section in i["action"]["sections"].as_array().into_iter().flatten() {
            out.extend(
                section["rows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["title"].as_str().map(str::to_string)),
            );
        }
        if let Some(d) = i["action"]["parameters"]["display_text"].as_str() {
            out.push(d.to_string());
        }
        out
    }

    /// The ids of an interactive message's buttons or list rows, in order.
    pub fn button_ids(&self) -> Vec<String> {
        let i = &self.body["interactive"];
        let mut out: Vec<String> = i["action"]["buttons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["reply"]["id"].as_str().map(str::to_string))
            .collect();
        for section in i["action"]["sections"].as_array().into_iter().flatten() {
            out.extend(
                section["rows"].as_array().into_iter().flatten().filter_map(|r| r["id"].as_str().map(str::to_string)),
            );
        }
        out
    }
}

/// One webhook request the simulator made.
#[derive(Debug, Clone)]
pub struct Push {
    pub url: String,
    /// The exact body bytes signed.
    pub body: Vec<u8>,
    /// `X-Hub-Signature-256`.
    pub signature: String,
    /// The status okno answered (`None`: no answer).
    pub status: Option<u16>,
    pub attempt: u32,
}

/// A failure the next Graph API call answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// That HTTP status with Meta's error body (code 131000 for a 500, 2 for a 503…).
    Status(u16),
    /// 429 with code 130429, as when the throughput is exceeded.
    Throughput,
    /// 400 with code 131056, the pair rate.
    PairRate,
    /// Any of Meta's errors: HTTP status, code, title, details.
    Meta { status: u16, code: i64, title: String, details: String },
}

/// What a free-form send outside the 24-hour window gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowMode {
    /// 400 with code 131047, synchronously.
    Refuse,
    /// Accepted with a `wamid`, then a `failed` status with 131047 pushed.
    FailedStatus,
}

impl WaSim {
    /// Starts on 127.0.0.1:0. Test helper: panics when the port cannot be bound.
    pub async fn start() -> WaSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("whatsapp-sim: binding 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("whatsapp-sim: local address: {e}"));
        let inner = Arc::new(Inner::new(addr));
        let app = server::router(inner.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("whatsapp-sim: the HTTP server stopped: {e}");
            }
        });
        WaSim { inner }
    }

    /// `http://127.0.0.1:PORT/v21.0`: what okno is configured with instead of
    /// `https://graph.facebook.com/v21.0`.
    pub fn api_base(&self) -> String {
        format!("{}/v21.0", self.inner.base)
    }

    /// Registers a business phone number: its id, the access token that may use it, the
    /// number shown (`+7 900 555-01-01`), its verified name and the app secret webhooks are
    /// signed with.
    pub fn add_number(&self, phone_number_id: &str, token: &str, display: &str, verified_name: &str, app_secret: &str) {
        let mut w = self.inner.world();
        w.numbers.insert(
            phone_number_id.to_string(),
            Number::new(phone_number_id, token, display, verified_name, app_secret),
        );
    }

    fn with<T>(&self, f: impl FnOnce(&mut Number) -> T) -> T {
        let mut w = self.inner.world();
        let n = w.numbers.values_mut().next().unwrap_or_else(|| panic!("whatsapp-sim: call add_number first"));
        f(n)
    }

    /// Sets the callback URL as the App Dashboard does: Meta first checks it with
    /// `GET ?hub.mode=subscribe&hub.challenge=…&hub.verify_token=…` and keeps it only when
    /// the answer is 200 with the challenge as the body. `Err` carries what went wrong.
    pub async fn subscribe(&self, url: &str, verify_token: &str) -> Result<(), String> {
        let challenge = format!("{}", rand::random::<u32>());
        let resp = self
            .inner
            .http
            .get(url)
            .query(&[
                ("hub.mode", "subscribe"),
                ("hub.challenge", challenge.as_str()),
                ("hub.verify_token", verify_token),
            ])
            .send()
            .await
            .map_err(|e| format!("the callback URL could not be reached: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if status != 200 || body != challenge {
            return Err(format!("the callback URL or verify token couldn't be validated (HTTP {status}: {body})"));
        }
        self.with(|n| n.webhook = Some(url.to_string()));
        Ok(())
    }

    /// Sets the callback URL without the check (for tests that push by hand).
    pub fn set_webhook(&self, url: Option<&str>) {
        self.with(|n| n.webhook = url.map(str::to_string));
    }

    /// Meta's rate limits (throughput, pair rate) on (the default) or off.
    pub fn set_limits(&self, on: bool) {
        self.with(|n| n.limits_on = on);
    }

    /// The throughput per second and the pair rate (seconds between messages to one person,
    /// burst) enforced while limits are on (defaults 80, 6 s, 45).
    pub fn set_rates(&self, per_second: u32, pair_seconds: f64, pair_burst: u32) {
        self.with(|n| {
            n.per_second = per_second;
            n.pair_seconds = pair_seconds;
            n.pair_burst = pair_burst;
        });
    }

    /// What a free-form send outside the window gets (default [`WindowMode::Refuse`]).
    pub fn set_window_mode(&self, mode: WindowMode) {
        self.with(|n| n.window_mode = mode);
    }

    /// Statuses pushed for each accepted message (default `sent`, `delivered`), when a
    /// callback URL is set. `&[]` turns them off.
    pub fn set_auto_statuses(&self, statuses: &[&str]) {
        self.with(|n| n.auto_statuses = statuses.iter().map(|s| s.to_string()).collect());
    }

    /// How long after accepting a message its statuses are pushed (default 200 ms: Meta's
    /// statuses follow the send's answer; a receiver sees them after it has the `wamid`).
    pub fn set_status_delay(&self, delay: Duration) {
        self.with(|n| n.status_delay = delay);
    }

    /// Moves the simulator's clock forward (the 24-hour window is measured on it).
    pub fn advance(&self, by: Duration) {
        self.with(|n| n.clock_offset += by);
    }

    /// Registers an approved template: its name, language code and number of body parameters.
    pub fn add_template(&self, name: &str, language: &str, params: usize) {
        self.with(|n| n.templates.insert((name.to_string(), language.to_string()), params));
    }

    /// The next Graph API call fails with `fault`; several queue up.
    pub fn fail_next(&self, fault: Fault) {
        self.with(|n| n.faults.push_back(fault));
    }

    /// A WhatsApp user who can write to the number (their `wa_id` is their phone in digits).
    pub fn person(&self, wa_id: &str, name: &str) -> SimPerson {
        assert!(wa_id.bytes().all(|b| b.is_ascii_digit()), "whatsapp-sim: a wa_id is digits");
        self.with(|n| {
            n.people.entry(wa_id.to_string()).or_insert_with(|| Person { name: name.to_string(), ..Person::default() });
        });
        SimPerson { sim: self.clone(), wa_id: wa_id.to_string() }
    }

    /// Every accepted message, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.with(|n| n.sent.clone())
    }

    pub fn sent_count(&self) -> usize {
        self.with(|n| n.sent.len())
    }

    /// The accepted messages to one person.
    pub fn sent_to(&self, wa_id: &str) -> Vec<Sent> {
        self.with(|n| n.sent.iter().filter(|s| s.to == wa_id).cloned().collect())
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
                let shown: Vec<_> = sent.iter().map(|s| (s.to.clone(), s.shown.clone())).collect();
                panic!("whatsapp-sim: expected {count} messages within {secs}s, got {}: {shown:?}", sent.len());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Refused sends: (recipient, Meta's code), in order.
    pub fn refused(&self) -> Vec<(String, i64)> {
        self.with(|n| n.refused.clone())
    }

    /// Messages marked read by okno (`status: read`), by wamid.
    pub fn read_marks(&self) -> Vec<String> {
        self.with(|n| n.read_marks.clone())
    }

    /// Media uploaded by okno: (media id, file name, MIME type, size).
    pub fn uploads(&self) -> Vec<(String, String, String, usize)> {
        self.with(|n| {
            n.media
                .iter()
                .filter(|(_, m)| m.uploaded)
                .map(|(id, m)| (id.clone(), m.name.clone(), m.mime.clone(), m.data.len()))
                .collect()
        })
    }

    /// Every webhook request made, in order.
    pub fn pushes(&self) -> Vec<Push> {
        self.with(|n| n.pushes.clone())
    }

    /// Signs `body` the way Meta does: `sha256=<hex HMAC-SHA256(app secret, body)>`.
    pub fn sign(&self, body: &[u8]) -> String {
        let secret = self.with(|n| n.app_secret.clone());
        state::sign(secret.as_bytes(), body)
    }

    /// A webhook body `{"object":"whatsapp_business_account","entry":[{"changes":[{"value"}]}]}`
    /// around `value` (which gets the number's `metadata`).
    pub fn envelope(&self, mut value: Value) -> Value {
        let (id, display) = self.with(|n| (n.id_hint.clone(), n.display_digits()));
        value["messaging_product"] = json!("whatsapp");
        value["metadata"] = json!({"display_phone_number": display, "phone_number_id": id});
        json!({"object": "whatsapp_business_account",
               "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}]})
    }

    /// POSTs a body to the callback URL signed (retrying a non-200 answer a few times, as Meta
    /// does); returns okno's last status. Without a callback URL nothing is sent (`None`).
    pub async fn push(&self, body: &Value) -> Option<u16> {
        server::push(&self.inner, body.to_string().into_bytes()).await
    }

    /// Pushes statuses for sent messages: each `(wamid, status)` as one `statuses[]` item,
    /// `per_request` to a request, `parallel` requests at a time (a status storm when the
    /// list is long, duplicated and shuffled). Returns how many requests okno did not answer 200.
    pub async fn push_statuses(&self, statuses: &[(String, String)], per_request: usize, parallel: usize) -> usize {
        server::push_statuses(&self.inner, statuses, per_request.max(1), parallel.max(1)).await
    }

    /// A status storm for `wamids`: `sent`, `delivered` and `read` for each, every one
    /// `copies` times, shuffled — duplicated and out of order, as Meta may deliver them
    /// (research §2.3). Push it with [`WaSim::push_statuses`].
    pub fn storm(wamids: &[String], copies: usize) -> Vec<(String, String)> {
        use rand::seq::SliceRandom;
        let mut out = Vec::with_capacity(wamids.len() * 3 * copies);
        for id in wamids {
            for s in ["sent", "delivered", "read"] {
                for _ in 0..copies.max(1) {
                    out.push((id.clone(), s.to_string()));
                }
            }
        }
        out.shuffle(&mut rand::thread_rng());
        out
    }

    /// Pushes one status for an accepted message (`delivered`, `read`, `failed`…).
    pub async fn status(&self, wamid: &str, status: &str) -> Option<u16> {
        let item = self.with(|n| n.status_item(wamid, status, None));
        self.push(&self.envelope(json!({"statuses": [item]}))).await
    }

    /// The last body pushed, pushed again exactly (Meta's redelivery).
    pub async fn redeliver_last(&self) -> Option<u16> {
        let last = self.with(|n| n.pushes.last().map(|p| p.body.clone()));
        let body = last.unwrap_or_else(|| panic!("whatsapp-sim: nothing pushed yet"));
        server::push(&self.inner, body).await
    }

    /// The media bytes okno uploaded under `media_id`.
    pub fn media(&self, media_id: &str) -> Option<Vec<u8>> {
        self.with(|n| n.media.get(media_id).map(|m| m.data.to_vec()))
    }
}

/// A WhatsApp user writing to the business number. Each action makes the webhook Meta would
/// send, pushes it to the callback URL when one is set, and returns it.
#[derive(Clone)]
pub struct SimPerson {
    sim: WaSim,
    pub wa_id: String,
}

/// A webhook a person's action made.
#[derive(Debug, Clone)]
pub struct Written {
    /// The message's `wamid`.
    pub id: String,
    /// The body as pushed, and its signature.
    pub body: Vec<u8>,
    pub signature: String,
    /// okno's answer, when pushed.
    pub status: Option<u16>,
}

impl SimPerson {
    async fn write_message(&self, mut message: Value) -> Written {
        let (id, name) = self.sim.with(|n| {
            let id = n.next_wamid();
            let now = n.now();
            let p = n.people.entry(self.wa_id.clone()).or_default();
            p.last_inbound = Some(now);
            p.left = false;
            (id, p.name.clone())
        });
        message["from"] = json!(self.wa_id);
        message["id"] = json!(id);
        message["timestamp"] = json!(format!("{}", state::unix_now()));
        let body = self.sim.envelope(json!({
            "contacts": [{"profile": {"name": name}, "wa_id": self.wa_id}],
            "messages": [message],
        }));
        let bytes = body.to_string().into_bytes();
        let signature = self.sim.sign(&bytes);
        let status = server::push(&self.sim.inner, bytes.clone()).await;
        Written { id, body: bytes, signature, status }
    }

    /// Writes a text.
    pub async fn write(&self, text: &str) -> Written {
        self.write_message(json!({"type": "text", "text": {"body": text}})).await
    }

    /// Writes a text quoting a message (`context.id`).
    pub async fn reply(&self, to_wamid: &str, text: &str) -> Written {
        self.write_message(json!({"type": "text", "text": {"body": text},
            "context": {"from": self.sim.with(|n| n.display_digits()), "id": to_wamid}}))
            .await
    }

    /// Sends a media file (`image`, `document`, `audio`, `video`, `sticker`; `voice` is an
    /// `audio` with `voice: true`), kept for `GET /{media_id}`.
    pub async fn send_media(
        &self,
        kind: &str,
        data: &[u8],
        mime: &str,
        filename: Option<&str>,
        caption: Option<&str>,
    ) -> Written {
        let media_id = self.sim.with(|n| n.store_media(data, mime, filename.unwrap_or("file"), false));
        let (kind, voice) = if kind == "voice" { ("audio", true) } else { (kind, false) };
        let mut obj = json!({"id": media_id, "mime_type": mime, "sha256": state::sha256_b64(data)});
        if let Some(f) = filename {
            obj["filename"] = json!(f);
        }
        if let Some(c) = caption {
            obj["caption"] = json!(c);
        }
        if voice {
            obj["voice"] = json!(true);
        }
        self.write_message(json!({"type": kind, kind: obj})).await
    }

    /// Shares a location.
    pub async fn send_location(&self, lat: f64, lon: f64, name: Option<&str>, address: Option<&str>) -> Written {
        let mut l = json!({"latitude": lat, "longitude": lon});
        if let Some(n) = name {
            l["name"] = json!(n);
        }
        if let Some(a) = address {
            l["address"] = json!(a);
        }
        self.write_message(json!({"type": "location", "location": l})).await
    }

    /// Shares a contact card.
    pub async fn send_contact(&self, name: &str, phone: &str) -> Written {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        self.write_message(
            json!({"type": "contacts", "contacts": [{"name": {"formatted_name": name, "first_name": name},
            "phones": [{"phone": phone, "type": "CELL", "wa_id": digits}]}]}),
        )
        .await
    }

    /// Presses a reply button (by its id) under the message `on`.
    pub async fn press(&self, on: &str, id: &str) -> Written {
        let title = self.find_title(on, id);
        self.write_message(json!({"type": "interactive", "context": {"from": "", "id": on},
            "interactive": {"type": "button_reply", "button_reply": {"id": id, "title": title}}}))
            .await
    }

    /// Picks a list row (by its id) of the message `on`.
    pub async fn pick(&self, on: &str, id: &str) -> Written {
        let title = self.find_title(on, id);
        self.write_message(json!({"type": "interactive", "context": {"from": "", "id": on},
            "interactive": {"type": "list_reply", "list_reply": {"id": id, "title": title}}}))
            .await
    }

    /// Presses the button labelled `label` under the last interactive message sent to them
    /// (a reply button or a list row); panics when there is none.
    pub async fn choose(&self, label: &str) -> Written {
        let last = self.sim.sent_to(&self.wa_id).into_iter().rev().find(|s| s.kind == "interactive");
        let last = last.unwrap_or_else(|| panic!("whatsapp-sim: no interactive message was sent to {}", self.wa_id));
        let labels = last.buttons();
        let at = labels
            .iter()
            .position(|l| l == label)
            .unwrap_or_else(|| panic!("whatsapp-sim: no `{label}` in {labels:?}"));
        let id = last.button_ids()[at].clone();
        if last.body["interactive"]["type"] == "list" {
            self.pick(&last.id, &id).await
        } else {
            self.press(&last.id, &id).await
        }
    }

    /// Presses a template's quick-reply button.
    pub async fn quick_reply(&self, on: &str, payload: &str, text: &str) -> Written {
        self.write_message(json!({"type": "button", "context": {"from": "", "id": on},
            "button": {"payload": payload, "text": text}}))
            .await
    }

    fn find_title(&self, on: &str, id: &str) -> String {
        let sent = self.sim.sent().into_iter().find(|s| s.id == on);
        sent.and_then(|s| s.button_ids().iter().position(|i| i == id).map(|at| s.buttons()[at].clone()))
            .unwrap_or_else(|| id.chars().take(20).collect())
    }

    /// Reads every message sent to them: `read` statuses pushed.
    pub async fn read_all(&self) {
        for s in self.sim.sent_to(&self.wa_id) {
            self.sim.status(&s.id, "read").await;
        }
    }

    /// Leaves WhatsApp (or never accepted its terms): sends to them are refused with 131026.
    pub fn leave(&self) {
        self.sim.with(|n| n.people.entry(self.wa_id.clone()).or_default().left = true);
    }

    /// The texts they were shown, oldest first.
    pub fn shown(&self) -> Vec<String> {
        self.sim.sent_to(&self.wa_id).into_iter().filter_map(|s| s.shown).collect()
    }
}
