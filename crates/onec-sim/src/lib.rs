//! A sample 1C HTTP service — what a 1C:Enterprise HTTP service answering okno looks like: a
//! real HTTP server on 127.0.0.1 with products, a stock report, orders, support tickets and HR
//! requests (the lookups and forms of `examples/bots/`), and an endpoint that takes okno's
//! signed webhooks (`button.pressed`, `task.claimed`, `survey.answered`…) as 1C would.
//!
//! It records every request it gets, so `okno demo` can show what the business system received
//! and tests can check it, and it can be told to misbehave (answer slowly, fail with 500, answer
//! something that is not the expected JSON) to show how okno's bots cope.
//!
//! The example bots call `http://1c.local/hs/bot` ([`EXAMPLE_BASE_URL`]); [`OneCSim::bind`]
//! points a bot definition at a running service instead.
//!
//! The same address also serves the infobase's standard OData interface,
//! [`OneCSim::odata_url`] (`/odata/standard.odata`): counterparties and employees with their
//! contact information, read-only, with 1C's JSON, query options, errors and Basic auth; tests
//! add, edit, mark and delete objects ([`OneCSim::add_counterparty`],
//! [`OneCSim::change_record`], …) and read the request log ([`OneCSim::odata_requests`]).
//! What it enforces and where that comes from is in the `odata` module's docs.

mod catalogue;
mod odata;
mod service;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

pub use catalogue::{report_pdf, report_xlsx, Product, ORDERS, PHOTO_PNG, PRODUCTS, XLSX_MIME};
pub use odata::{
    ContactInfo, ContactKind, ODataRequest, CONTACT_PART, COUNTERPARTIES, DEFAULT_ODATA_PASSWORD, DEFAULT_ODATA_USER,
    EMPLOYEES, ODATA_PREFIX,
};

/// The base URL the example bot files use; [`OneCSim::bind`] puts [`OneCSim::url`] in its place.
pub const EXAMPLE_BASE_URL: &str = "http://1c.local/hs/bot";

/// The path prefix the service lives under, as a 1C HTTP service does.
const PREFIX: &str = "/hs/bot";

/// Requests (and, apart, webhooks) kept for reading back unless [`Options::keep`] says
/// otherwise; older ones are dropped first, so a service left running for days keeps a bounded
/// memory.
pub const DEFAULT_KEPT: usize = 10_000;

/// How the service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Correct answers.
    Normal,
    /// Correct answers, after this delay.
    Slow(Duration),
    /// 500 with a 1C-style error text to everything.
    Error500,
    /// 200 with a body that is not JSON at all (an HTML error page labelled as JSON).
    BadJson,
    /// 200 with valid JSON of an unexpected shape (none of the fields the bots use).
    WrongShape,
}

/// One request the service got.
#[derive(Debug, Clone)]
pub struct BizRequest {
    /// `GET`, `POST`…
    pub method: String,
    /// The path under the service's base URL, e.g. `/products` or `/orders/100421`.
    pub path: String,
    /// The decoded query parameters.
    pub query: BTreeMap<String, String>,
    /// The JSON body (`Value::Null` when there was none or it was not JSON).
    pub body: Value,
    /// Request headers, names lowercased.
    pub headers: HashMap<String, String>,
    /// The HTTP status the service answered; 0 while the answer is being made.
    pub status: u16,
    /// The request's number in arrival order, from 1.
    pub seq: u64,
    /// When it arrived, in milliseconds since the Unix epoch.
    pub at: i64,
}

impl BizRequest {
    /// A query parameter, or "".
    pub fn q(&self, name: &str) -> &str {
        self.query.get(name).map(String::as_str).unwrap_or("")
    }
}

/// One of okno's webhooks the service took in (`POST {url}/okno`).
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `X-Okno-Event`, e.g. `button.pressed`.
    pub event: String,
    /// `X-Okno-Delivery`: a repeated delivery is acknowledged and not recorded again.
    pub delivery: String,
    /// The whole JSON body: `{"id", "type", "created_at", "data"}`.
    pub body: Value,
    /// When it arrived, in milliseconds since the Unix epoch.
    pub at: i64,
}

/// How a service is started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The service's "today" (report dates, when a certificate is ready); default: the real
    /// date in Moscow. Tests pin it so the texts they compare stay fixed.
    pub today: Option<jiff::civil::Date>,
    /// The secret okno signs its webhooks with; without one, webhooks are refused with 401.
    pub webhook_secret: Option<String>,
    /// How many requests, and how many webhooks, are kept for reading back (the newest);
    /// default [`DEFAULT_KEPT`].
    pub keep: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    pub number: String,
    pub user: String,
    pub topic: String,
    pub text: String,
    pub status: &'static str,
}

/// Everything the service knows and has received.
pub(crate) struct State {
    pub base: String,
    pub mode: Mode,
    pub options: Options,
    pub requests: VecDeque<BizRequest>,
    /// The last request number handed out.
    pub seq: u64,
    pub webhooks: VecDeque<Webhook>,
    /// Order number → the okno contact id that last asked about it.
    pub subscribers: HashMap<String, String>,
    pub tickets: Vec<Ticket>,
    /// Numbers handed out per kind of request.
    pub counters: HashMap<&'static str, u32>,
    /// The OData interface's catalogs and log.
    pub odata: odata::ODataState,
}

impl State {
    /// How many requests and webhooks are kept.
    pub(crate) fn kept(&self) -> usize {
        self.options.keep.unwrap_or(DEFAULT_KEPT).max(1)
    }

    /// The service's today.
    pub(crate) fn today(&self) -> jiff::civil::Date {
        self.options.today.unwrap_or_else(|| {
            let zone = jiff::tz::TimeZone::get("Europe/Moscow").unwrap_or(jiff::tz::TimeZone::UTC);
            jiff::Timestamp::now().to_zoned(zone).date()
        })
    }
}

/// The state and the bell rung on every recorded request.
pub(crate) struct Shared {
    /// `127.0.0.1:PORT`: the only host the service answers to.
    pub(crate) addr: std::net::SocketAddr,
    state: Mutex<State>,
    changes: watch::Sender<u64>,
    /// Set to stop the server.
    stop: watch::Sender<bool>,
    /// Set once the server has stopped.
    done: watch::Sender<bool>,
}

impl Shared {
    /// Locks the state; a panic elsewhere does not poison it for the server.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells watchers (the demo's console) that something arrived.
    pub(crate) fn ring(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The running service; cheap to clone (clones share one server and one state).
#[derive(Clone)]
pub struct OneCSim {
    url: String,
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for OneCSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneCSim").field("url", &self.url).finish()
    }
}

impl OneCSim {
    /// Starts on 127.0.0.1 on a free port, with the real date and no webhook secret.
    pub async fn start() -> std::io::Result<OneCSim> {
        OneCSim::start_with(Options::default()).await
    }

    /// Starts on 127.0.0.1 on a free port.
    pub async fn start_with(options: Options) -> std::io::Result<OneCSim> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}{PREFIX}");
        let (changes, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            addr,
            state: Mutex::new(State {
                base: url.clone(),
                mode: Mode::Normal,
                options,
                requests: VecDeque::new(),
                seq: 0,
                webhooks: VecDeque::new(),
                subscribers: HashMap::new(),
                tickets: Vec::new(),
                counters: HashMap::new(),
                odata: odata::ODataState::new(),
            }),
            changes,
            stop: watch::channel(false).0,
            done: watch::channel(false).0,
        });
        let app = service::router(shared.clone());
        let server = shared.clone();
        tokio::spawn(async move {
            let mut stop = server.stop.subscribe();
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                eprintln!("onec-sim: the HTTP server stopped: {e}");
            }
            server.done.send_replace(true);
        });
        Ok(OneCSim { url, addr, shared })
    }

    /// Stops the server: it takes no more connections. What it recorded stays readable.
    pub fn stop(&self) {
        self.shared.stop.send_replace(true);
    }

    /// Whether [`OneCSim::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        *self.shared.stop.borrow()
    }

    /// Waits until the server has stopped (after [`OneCSim::stop`]) and its last connection
    /// has ended; its port is free again.
    pub async fn stopped(&self) {
        let mut done = self.shared.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    /// The base URL, e.g. `http://127.0.0.1:PORT/hs/bot` — what replaces [`EXAMPLE_BASE_URL`].
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The address the service listens on (127.0.0.1 and its port).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Where okno's webhooks go: `{url}/okno`.
    pub fn webhook_url(&self) -> String {
        format!("{}/okno", self.url)
    }

    /// A bot definition with the example base URL replaced by this service's.
    pub fn bind(&self, definition: &str) -> String {
        definition.replace(EXAMPLE_BASE_URL, &self.url)
    }

    /// How the following requests are answered.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().mode = mode;
    }

    /// The service's today.
    pub fn today(&self) -> jiff::civil::Date {
        self.shared.lock().today()
    }

    /// Every request kept (the newest [`Options::keep`]), oldest first; webhooks included.
    pub fn requests(&self) -> Vec<BizRequest> {
        self.shared.lock().requests.iter().cloned().collect()
    }

    /// How many requests, and how many webhooks, are kept.
    pub fn kept(&self) -> usize {
        self.shared.lock().kept()
    }

    /// The newest `n` requests kept, newest first, leaving out those to `except_path` — copies
    /// of those alone, however many are kept.
    pub fn latest_requests(&self, n: usize, except_path: &str) -> Vec<BizRequest> {
        self.shared.lock().requests.iter().rev().filter(|r| r.path != except_path).take(n).cloned().collect()
    }

    /// The newest `n` webhooks taken in, newest first.
    pub fn latest_webhooks(&self, n: usize) -> Vec<Webhook> {
        self.shared.lock().webhooks.iter().rev().take(n).cloned().collect()
    }

    /// The requests with this method (case-insensitive) and exact path.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<BizRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
            .cloned()
            .collect()
    }

    /// okno's webhooks taken in (signature checked, each delivery once), oldest first.
    pub fn webhooks(&self) -> Vec<Webhook> {
        self.shared.lock().webhooks.iter().cloned().collect()
    }

    /// The okno contact id that last looked up this order (sent as `?subscriber=`).
    pub fn subscriber(&self, order: &str) -> Option<String> {
        self.shared.lock().subscribers.get(order).cloned()
    }

    /// The tickets of a user as (number, topic, text).
    pub fn tickets_of(&self, user: &str) -> Vec<(String, String, String)> {
        self.shared
            .lock()
            .tickets
            .iter()
            .filter(|t| t.user == user)
            .map(|t| (t.number.clone(), t.topic.clone(), t.text.clone()))
            .collect()
    }

    /// A receiver that sees a new value each time a request or webhook is recorded.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }
}
