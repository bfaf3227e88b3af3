//! The simulated world: business numbers, their people, messages, media, templates, rate
//! buckets and everything tests read back. One mutex guards it; it is never held across an
//! `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{Fault, Push, Sent, WindowMode};

/// The 24-hour customer-service window (research §2.7).
pub(crate) const WINDOW: Duration = Duration::from_secs(24 * 3600);

pub(crate) struct Inner {
    world: Mutex<World>,
    /// For webhook pushes and the callback check.
    pub(crate) http: reqwest::Client,
    /// `http://127.0.0.1:PORT`
    pub(crate) base: String,
}

impl Inner {
    pub(crate) fn new(addr: std::net::SocketAddr) -> Inner {
        // Meta gives a webhook a few seconds to answer before it counts as failed.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_else(|e| panic!("whatsapp-sim: building the HTTP client: {e}"));
        Inner { world: Mutex::new(World::default()), http, base: format!("http://{addr}") }
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
pub(crate) struct World {
    pub(crate) numbers: HashMap<String, Number>,
}

impl World {
    /// The number a bearer token may use.
    pub(crate) fn by_token(&mut self, token: &str) -> Option<&mut Number> {
        self.numbers.values_mut().find(|n| n.token == token)
    }
}

#[derive(Default)]
pub(crate) struct Person {
    pub(crate) name: String,
    /// When they last wrote, on the simulator's clock.
    pub(crate) last_inbound: Option<Instant>,
    /// Sends to them are refused with 131026.
    pub(crate) left: bool,
}

pub(crate) struct Media {
    pub(crate) data: Bytes,
    pub(crate) mime: String,
    pub(crate) name: String,
    /// Uploaded by okno (rather than sent by a person).
    pub(crate) uploaded: bool,
}

pub(crate) struct Number {
    pub(crate) id_hint: String,
    pub(crate) token: String,
    pub(crate) display: String,
    pub(crate) verified_name: String,
    pub(crate) app_secret: String,
    pub(crate) webhook: Option<String>,
    pub(crate) limits_on: bool,
    pub(crate) per_second: u32,
    pub(crate) pair_seconds: f64,
    pub(crate) pair_burst: u32,
    pub(crate) window_mode: WindowMode,
    pub(crate) auto_statuses: Vec<String>,
    pub(crate) status_delay: Duration,
    pub(crate) clock_offset: Duration,
    pub(crate) templates: HashMap<(String, String), usize>,
    pub(crate) faults: VecDeque<Fault>,
    pub(crate) people: HashMap<String, Person>,
    pub(crate) sent: Vec<Sent>,
    pub(crate) refused: Vec<(String, i64)>,
    pub(crate) read_marks: Vec<String>,
    pub(crate) media: HashMap<String, Media>,
    pub(crate) pushes: Vec<Push>,
    /// Recipients of accepted messages, by wamid (statuses name them).
    pub(crate) recipients: HashMap<String, String>,
    seq: u64,
    /// Accepted sends in the last second (throughput).
    pub(crate) recent: VecDeque<Instant>,
    /// Pair-rate buckets: tokens and when they were counted.
    pub(crate) pair: HashMap<String, (f64, Instant)>,
}

impl Number {
    pub(crate) fn new(id: &str, token: &str, display: &str, verified_name: &str, app_secret: &str) -> Number {
        Number {
            id_hint: id.to_string(),
            token: token.to_string(),
            display: display.to_string(),
            verified_name: verified_name.to_string(),
            app_secret: app_secret.to_string(),
            webhook: None,
            limits_on: true,
            per_second: 80,
            pair_seconds: 6.0,
            pair_burst: 45,
            window_mode: WindowMode::Refuse,
            auto_statuses: vec!["sent".into(), "delivered".into()],
            status_delay: Duration::from_millis(200),
            clock_offset: Duration::ZERO,
            templates: HashMap::new(),
            faults: VecDeque::new(),
            people: HashMap::new(),
            sent: Vec::new(),
            refused: Vec::new(),
            read_marks: Vec::new(),
            media: HashMap::new(),
            pushes: Vec::new(),
            recipients: HashMap::new(),
            seq: 0,
            recent: VecDeque::new(),
            pair: HashMap::new(),
        }
    }

    /// The simulator's clock.
    pub(crate) fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }

    pub(crate) fn display_digits(&self) -> String {
        self.display.chars().filter(char::is_ascii_digit).collect()
    }

    pub(crate) fn next_wamid(&mut self) -> String {
        self.seq += 1;
        format!("wamid.HBgL{}{:012}FQIAERgS", self.id_hint.len(), self.seq)
    }

    pub(crate) fn store_media(&mut self, data: &[u8], mime: &str, name: &str, uploaded: bool) -> String {
        self.seq += 1;
        let id = format!("{}{:08}", 1_000_000 + self.id_hint.len(), self.seq);
        self.media.insert(
            id.clone(),
            Media { data: Bytes::copy_from_slice(data), mime: mime.to_string(), name: name.to_string(), uploaded },
        );
        id
    }

    /// Whether the person wrote within the last 24 hours.
    pub(crate) fn window_open(&self, wa_id: &str) -> bool {
        let now = self.now();
        self.people.get(wa_id).and_then(|p| p.last_inbound).is_some_and(|t| now.saturating_duration_since(t) < WINDOW)
    }

    /// Meta's throughput and pair rate: `Some(code)` when this send exceeds one.
    pub(crate) fn over_limit(&mut self, to: &str) -> Option<i64> {
        if !self.limits_on {
            return None;
        }
        let now = Instant::now();
        while self.recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            self.recent.pop_front();
        }
        if self.per_second > 0 && self.recent.len() >= self.per_second as usize {
            return Some(130429);
        }
        if self.pair_seconds > 0.0 {
            let burst = f64::from(self.pair_burst.max(1));
            let (tokens, at) = self.pair.entry(to.to_string()).or_insert((burst, now));
            let refilled = (*tokens + now.duration_since(*at).as_secs_f64() / self.pair_seconds).min(burst);
            if refilled < 1.0 {
                *tokens = refilled;
                *at = now;
                return Some(131056);
            }
            *tokens = refilled - 1.0;
            *at = now;
        }
        self.recent.push_back(now);
        None
    }

    /// One `statuses[]` item for an accepted message (Meta's shape, research §2.5).
    pub(crate) fn status_item(&self, wamid: &str, status: &str, error: Option<(i64, &str, &str)>) -> Value {
        let to = self.recipients.get(wamid).cloned().unwrap_or_default();
        let mut item =
            json!({"id": wamid, "status": status, "timestamp": format!("{}", unix_now()), "recipient_id": to});
        if status == "sent" || status == "delivered" {
            item["conversation"] = json!({"id": "CONVERSATION_ID", "origin": {"type": "service"}});
            item["pricing"] = json!({"billable": true, "pricing_model": "CBP", "category": "service"});
        }
        if let Some((code, title, details)) = error {
            item["errors"] = json!([{"code": code, "title": title, "message": title,
                "error_data": {"details": details},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]);
        }
        item
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, Meta's `X-Hub-Signature-256`.
pub(crate) fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A file's SHA-256 as the media object carries it.
pub(crate) fn sha256_b64(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_match_the_research_vectors() {
        // research §2.3: HMAC_SHA256("secret", "test").
        assert_eq!(
            super::sign(b"secret", b"test"),
            "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
        );
    }
}
