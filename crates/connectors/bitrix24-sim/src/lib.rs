//! A Bitrix24 portal simulator for okno's integration tests and benchmarks.
//!
//! It serves Bitrix24's REST API over real HTTP on 127.0.0.1 and posts events the way a portal
//! does. Where each behaviour comes from (`../shared/research/C_business_connectors.md` §2,
//! which cites the official documentation repository `bitrix24/b24restdocs`):
//!
//! * **Two ways in** (§2.1): an inbound webhook `/rest/{user_id}/{code}/{method}[.json]`
//!   ([`Bitrix24Sim::webhook_url`]) acting as its employee, and a local application with OAuth
//!   (`/rest/{method}` with `auth` in the body or the query). The authorization server
//!   ([`Bitrix24Sim::oauth_server`]) answers `/oauth/token/?grant_type=authorization_code|
//!   refresh_token&client_id&client_secret&code|refresh_token` with access tokens living an hour
//!   ([`Bitrix24Sim::access_ttl`]) and a refresh token that rotates: each works once. Refusals:
//!   **401 `NO_AUTH_FOUND`** (no or unknown webhook, no token), **401 `expired_token`**,
//!   **401 `invalid_token`** (a token of an application since removed), `invalid_grant` /
//!   `invalid_client` from the authorization server.
//! * **The envelope** (§2.3): `{"result", "time"}` (+ `next`, `total` for lists); errors
//!   `{"error", "error_description"}` with the documented statuses; JSON or form bodies, PHP
//!   bracket keys (`fields[PHONE][0][VALUE]`).
//! * **Limits** (§2.2, `limits.md`): a leaky bucket per application or webhook — each request
//!   +1, the counter drained by Y once a second (in whole seconds), a request that would take it
//!   past X refused with **503 `QUERY_LIMIT_EXCEEDED`** and counted ([`Bitrix24Sim::over_limit`]);
//!   [`Limits::STANDARD`] (Y 2, X 50) or [`Limits::ENTERPRISE`] (5, 250). `batch` is one HTTP
//!   request and counts once ("the rate limit accounts for HTTP requests"). A method can be
//!   put over its execution-time budget ([`Bitrix24Sim::block_method`]): **429
//!   `OPERATION_TIME_LIMIT`** until `operating_reset_at`, also inside `batch`.
//! * **CRM** (§2.4): `crm.contact.*` and `crm.company.*` (`add/update/get/list/delete`, PHONE
//!   and EMAIL multi-fields `[{"ID","VALUE","VALUE_TYPE","TYPE_ID"}]`, edited by `ID`, removed
//!   by an empty `VALUE`), `crm.deal.add/get/update/list` (stages of category 0), `crm.item.get/
//!   update` (`entityTypeId`; smart processes, camelCase), `crm.timeline.comment.add`,
//!   `user.get`, `user.current`. Lists: `filter` with `=`, `!`, `<`, `>`, `<=`, `>=`, `%`, `@`
//!   prefixes (multi-fields by exact value), `order`, `select` (`*`, `UF_*`; multi-fields only
//!   when named), pages of 50 by `start`, `start=-1` without a total. Not found is **400** with an
//!   empty `error` (`crm.contact.get`) or `NOT_FOUND` (`crm.item.get`).
//! * **batch** (§2.5): ≤ 50 commands (`cmd` as `method?query` strings), `$result[key][field]…`
//!   references, `halt`, **200** with `result`/`result_error`/`result_total`/`result_next`/
//!   `result_time`; more than 50 ⇒ the commands past 50 fail `ERROR_BATCH_LENGTH_EXCEEDED`, a
//!   nested `batch` ⇒ `ERROR_BATCH_METHOD_NOT_ALLOWED`.
//! * **Events** (§2.6): `event.bind` (application context only, else **403 `WRONG_AUTH_TYPE`**),
//!   `event.unbind`, `event.get`. Online handlers get one form-encoded POST each — `event`,
//!   `event_handler_id`, `data[…]`, `ts`, `auth[…]` with `auth[application_token]` — no retry;
//!   each kept with its answer's status ([`Bitrix24Sim::events_sent`]). Offline handlers queue
//!   records per (application, `auth_connector`) keeping only the latest state per object;
//!   `event.offline.get` (`clear=0` reserves under a `process_id`, parallel gets see disjoint
//!   sets, `process_id` re-reads a reservation), `event.offline.clear` (only the reservation
//!   named), `event.offline.error`, `event.offline.list`; administrators only (**403
//!   `ACCESS_DENIED`**). A change made with an `auth_connector` is not queued for that source.
//! * **Open Lines connector** (§2.7): `imconnector.register` / `activate` / `status` /
//!   `connector.data.set` / `send.messages` / `send.status.delivery` / `send.status.reading`,
//!   application context only (**403 `WRONG_AUTH_TYPE`**); messages kept in an Open Lines chat
//!   per (line, connector, external user — or external chat with `CHAT_GROUP`), answered with
//!   the chat's `session`; [`Bitrix24Sim::operator_reply`] posts `ONIMCONNECTORMESSAGEADD`.
//! * **Telephony** (E §9): `voximplant.statistic.get` over seeded call records
//!   ([`Bitrix24Sim::add_call`], which also posts `ONVOXIMPLANTCALLEND`).
//!
//! Not simulated: TLS, scopes, the 60-second request timeout, the operating-time accounting
//! itself (a method is blocked by hand), per-IP sharing of the bucket, `onOfflineEvent`, the
//! CRM tracker, files.

mod form;
mod methods;
mod server;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// The leaky bucket of a plan: drained by `per_second` a second, refusing past `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_second: u32,
    pub burst: u32,
}

impl Limits {
    /// Every plan but Enterprise: 2 a second, 50 at most.
    pub const STANDARD: Limits = Limits { per_second: 2, burst: 50 };
    /// Enterprise: 5 a second, 250 at most.
    pub const ENTERPRISE: Limits = Limits { per_second: 5, burst: 250 };
}

/// The most commands one `batch` may carry.
pub const BATCH_MAX: usize = 50;
/// Rows in one page of a list.
pub const PAGE: usize = 50;
/// Stages of deal category 0, in order.
pub const STAGES: [&str; 7] = ["NEW", "PREPARATION", "PREPAYMENT_INVOICE", "EXECUTING", "FINAL_INVOICE", "WON", "LOSE"];
/// How long the portal waits for an event handler's answer.
pub const HANDLER_DEADLINE: Duration = Duration::from_secs(5);

/// A local application installed on the portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub client_id: String,
    pub client_secret: String,
    /// What the portal puts in `auth[application_token]` of every event it posts the app.
    pub application_token: String,
    pub member_id: String,
    /// The first pair, as `ONAPPINSTALL` gives it.
    pub access_token: String,
    pub refresh_token: String,
}

/// An event the portal posted to a handler, and how the handler answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentEvent {
    pub event: String,
    pub handler: String,
    /// The form-encoded body.
    pub body: String,
    /// The answer's HTTP status (0: no answer within [`HANDLER_DEADLINE`]).
    pub status: u16,
}

/// A record of an offline queue.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineRecord {
    pub id: i64,
    pub message_id: String,
    pub event: String,
    pub data: Value,
    pub timestamp: String,
    pub process_id: Option<String>,
    pub error: bool,
    /// The application whose queue it is, and the source key (`auth_connector`, empty for none).
    pub app: String,
    pub source: String,
}

/// Who wrote a message in an Open Lines chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    /// The customer, through the connector (`imconnector.send.messages`).
    Customer,
    /// An operator of the portal.
    Operator,
}

/// A message in an Open Lines chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// The portal's id of the message (`im.message_id`).
    pub id: i64,
    pub author: Author,
    pub text: String,
    /// The external system's id of a customer's message.
    pub external_id: Option<String>,
}

/// What the connector reported of the portal's messages (`imconnector.send.status.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub connector: String,
    pub line: i64,
    /// `im.chat_id`, `im.message_id`.
    pub chat_id: i64,
    pub message_id: i64,
    /// `message.id`: the external ids.
    pub external_ids: Vec<String>,
    pub external_chat: String,
}

/// An operator's message posted to the connector's handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorMessage {
    pub chat_id: i64,
    pub message_id: i64,
}

/// A call record, as `voximplant.statistic.get` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub portal_user_id: i64,
    pub phone_number: String,
    /// 1 outgoing, 2 incoming, 3 incoming redirected, 4 callback, 5 informational.
    pub call_type: i64,
    pub duration: i64,
    /// `CALL_START_DATE`, ISO 8601 with the offset.
    pub start_date: String,
    /// `200` answered, `304` missed, …
    pub failed_code: String,
    pub record_url: Option<String>,
    pub record_file_id: Option<i64>,
    /// `CONTACT`, `COMPANY` or `LEAD`, and the id.
    pub crm_entity: Option<(String, i64)>,
}

/// A logged request: the method, the answer's status, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedCall {
    pub method: String,
    pub status: u16,
    pub at: Instant,
    /// `webhook:{user}` or `app:{client_id}`.
    pub caller: String,
}

pub(crate) struct User {
    pub(crate) fields: Map<String, Value>,
    pub(crate) admin: bool,
}

pub(crate) struct AppState {
    pub(crate) app: App,
    pub(crate) user: i64,
    pub(crate) installed: bool,
    /// Connectors it registered: id → the registration's fields.
    pub(crate) connectors: BTreeMap<String, Value>,
}

pub(crate) struct Access {
    pub(crate) client_id: String,
    pub(crate) user: i64,
    pub(crate) expires: Instant,
}

pub(crate) struct Handler {
    pub(crate) id: i64,
    pub(crate) event: String,
    /// `None` for an offline handler.
    pub(crate) url: Option<String>,
    /// The application (`None`: an outgoing webhook made in the portal's interface).
    pub(crate) app: Option<String>,
    pub(crate) application_token: String,
    pub(crate) auth_type: i64,
    pub(crate) source: String,
}

pub(crate) struct Bucket {
    pub(crate) count: u64,
    pub(crate) second: u64,
}

/// An Open Lines chat a connector feeds.
pub(crate) struct OlChat {
    pub(crate) chat_id: i64,
    pub(crate) session_id: i64,
    pub(crate) line: i64,
    pub(crate) connector: String,
    pub(crate) app: String,
    /// The external user's id, or the external chat's with `CHAT_GROUP`.
    pub(crate) key: String,
    pub(crate) external_chat: String,
    pub(crate) portal_user: i64,
    pub(crate) messages: Vec<ChatMessage>,
}

pub(crate) struct World {
    pub(crate) base: String,
    pub(crate) member_id: String,
    pub(crate) limits: Limits,
    pub(crate) users: BTreeMap<i64, User>,
    /// Webhook code → the employee it acts as.
    pub(crate) webhooks: HashMap<String, i64>,
    pub(crate) apps: BTreeMap<String, AppState>,
    pub(crate) access: HashMap<String, Access>,
    /// Refresh tokens still good → (client id, user).
    pub(crate) refresh: HashMap<String, (String, i64)>,
    pub(crate) codes: HashMap<String, (String, i64)>,
    pub(crate) access_ttl: Duration,
    pub(crate) refreshes: usize,
    pub(crate) buckets: HashMap<String, Bucket>,
    /// Methods over their execution-time budget → until when (and its unix time).
    pub(crate) blocked: HashMap<String, (Instant, i64)>,
    /// Methods to block once they have answered so many more calls: (calls, for how long).
    pub(crate) block_after: HashMap<String, (usize, Duration)>,
    /// `CONTACT`, `COMPANY`, `DEAL` → id → fields as Bitrix24 returns them.
    pub(crate) crm: HashMap<&'static str, BTreeMap<i64, Map<String, Value>>>,
    /// Smart-process items: (entityTypeId, id) → camelCase fields.
    pub(crate) items: BTreeMap<(i64, i64), Map<String, Value>>,
    pub(crate) comments: Vec<Value>,
    pub(crate) handlers: Vec<Handler>,
    pub(crate) offline: Vec<OfflineRecord>,
    pub(crate) sent: Vec<SentEvent>,
    pub(crate) pending: usize,
    /// Open lines → connector → active.
    pub(crate) lines: BTreeMap<i64, (String, BTreeMap<String, bool>)>,
    pub(crate) chats: Vec<OlChat>,
    pub(crate) deliveries: Vec<StatusReport>,
    pub(crate) readings: Vec<StatusReport>,
    pub(crate) calls: Vec<Map<String, Value>>,
    pub(crate) log: Vec<LoggedCall>,
    pub(crate) over_limit: usize,
    pub(crate) next_id: i64,
}

impl World {
    pub(crate) fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// A token-like random-looking string (unique, not secret: this is a test double).
    pub(crate) fn token(&mut self, prefix: &str) -> String {
        let n = self.id();
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        format!("{prefix}{n:08x}{nanos:08x}{:016x}", (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(nanos))
    }

    pub(crate) fn domain(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }
}

pub(crate) struct Inner {
    pub(crate) world: Mutex<World>,
    pub(crate) http: reqwest::Client,
}

impl Inner {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Now as Bitrix24 writes dates: ISO 8601 with the portal's offset (+03:00).
pub(crate) fn iso_now() -> String {
    let offset = jiff::tz::Offset::constant(3);
    jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(offset)).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// A running simulator: one Bitrix24 portal.
#[derive(Clone)]
pub struct Bitrix24Sim {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl Bitrix24Sim {
    /// Starts a portal on 127.0.0.1 on the standard plan, with its administrator (user 1) and
    /// one open line (1).
    pub async fn start() -> Bitrix24Sim {
        Bitrix24Sim::start_with(Limits::STANDARD).await
    }

    /// Starts a portal whose bucket is `limits`.
    pub async fn start_with(limits: Limits) -> Bitrix24Sim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bitrix24-sim: binding 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("bitrix24-sim: local address: {e}"));
        let mut world = World {
            base: format!("http://{addr}"),
            member_id: format!("{:032x}", u128::from(addr.port()) * 0x9e37_79b9_7f4a_7c15),
            limits,
            users: BTreeMap::new(),
            webhooks: HashMap::new(),
            apps: BTreeMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            access_ttl: Duration::from_secs(3600),
            refreshes: 0,
            buckets: HashMap::new(),
            blocked: HashMap::new(),
            block_after: HashMap::new(),
            crm: HashMap::new(),
            items: BTreeMap::new(),
            comments: Vec::new(),
            handlers: Vec::new(),
            offline: Vec::new(),
            sent: Vec::new(),
            pending: 0,
            lines: BTreeMap::new(),
            chats: Vec::new(),
            deliveries: Vec::new(),
            readings: Vec::new(),
            calls: Vec::new(),
            log: Vec::new(),
            over_limit: 0,
            next_id: 100,
        };
        world
            .users
            .insert(1, User { fields: user_fields(1, "Администратор", "", "admin@portal.example"), admin: true });
        world.lines.insert(1, ("Открытая линия".to_string(), BTreeMap::new()));
        let inner = Arc::new(Inner {
            world: Mutex::new(world),
            http: reqwest::Client::builder()
                .timeout(HANDLER_DEADLINE)
                .build()
                .unwrap_or_else(|e| panic!("bitrix24-sim: an HTTP client: {e}")),
        });
        let app = server::router(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Bitrix24Sim { inner, addr }
    }

    /// The portal's address (`https://<portal>.bitrix24.ru` in life).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where an application calls methods (`client_endpoint`): `{base}/rest/`.
    pub fn rest_base(&self) -> String {
        format!("{}/rest/", self.base())
    }

    /// The authorization server (`https://oauth.bitrix.info` in life); tokens at `/oauth/token/`.
    pub fn oauth_server(&self) -> String {
        self.base()
    }

    /// The administrator every portal starts with.
    pub fn admin(&self) -> i64 {
        1
    }

    /// An employee; returns their id.
    pub fn add_user(&self, name: &str, last_name: &str, email: &str) -> i64 {
        let mut w = self.inner.world();
        let id = w.id();
        w.users.insert(id, User { fields: user_fields(id, name, last_name, email), admin: false });
        id
    }

    /// An inbound webhook acting as `user`: `{base}/rest/{user}/{code}/`.
    pub fn webhook_url(&self, user: i64) -> String {
        let mut w = self.inner.world();
        let code = w.token("");
        w.webhooks.insert(code.clone(), user);
        format!("{}/rest/{user}/{code}/", w.base)
    }

    /// The webhook is deleted: every call through it is 401 `NO_AUTH_FOUND`.
    pub fn revoke_webhook(&self, url: &str) {
        let code = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
        self.inner.world().webhooks.remove(&code);
    }

    /// Installs a local application as `user` (an administrator installs): its credentials,
    /// its application token and the first pair of tokens.
    pub fn install_app(&self, user: i64) -> App {
        let mut w = self.inner.world();
        let n = w.id();
        let client_id = format!("local.{n:x}.{:08}", n * 7919);
        let client_secret = w.token("s");
        let application_token = w.token("");
        let (access_token, refresh_token) = issue(&mut w, &client_id, user);
        let app = App {
            client_id: client_id.clone(),
            client_secret,
            application_token,
            member_id: w.member_id.clone(),
            access_token,
            refresh_token,
        };
        w.apps.insert(client_id, AppState { app: app.clone(), user, installed: true, connectors: BTreeMap::new() });
        app
    }

    /// An authorization code for the application (good for one exchange).
    pub fn auth_code(&self, client_id: &str) -> String {
        let mut w = self.inner.world();
        let user = w.apps.get(client_id).map(|a| a.user).unwrap_or(0);
        let code = w.token("c");
        w.codes.insert(code.clone(), (client_id.to_string(), user));
        code
    }

    /// The application is removed from the portal: its tokens are `invalid_token`, refreshing
    /// is `invalid_client`.
    pub fn uninstall_app(&self, client_id: &str) {
        let mut w = self.inner.world();
        if let Some(a) = w.apps.get_mut(client_id) {
            a.installed = false;
        }
        w.access.retain(|_, a| a.client_id != client_id);
        w.refresh.retain(|_, (c, _)| c != client_id);
    }

    /// How long access tokens issued from now on live (Bitrix24: an hour).
    pub fn access_ttl(&self, ttl: Duration) {
        self.inner.world().access_ttl = ttl;
    }

    /// Every access token issued so far expires now.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for a in self.inner.world().access.values_mut() {
            a.expires = now;
        }
    }

    /// Refresh-token exchanges so far.
    pub fn refreshes(&self) -> usize {
        self.inner.world().refreshes
    }

    /// An outgoing webhook made in the portal's interface: `event` posted to `url`; returns its
    /// application token.
    pub fn outgoing_webhook(&self, event: &str, url: &str) -> String {
        let mut w = self.inner.world();
        let id = w.id();
        let application_token = w.token("");
        w.handlers.push(Handler {
            id,
            event: event.to_ascii_uppercase(),
            url: Some(url.to_string()),
            app: None,
            application_token: application_token.clone(),
            auth_type: 0,
            source: String::new(),
        });
        application_token
    }

    /// A manager adds a contact; `ONCRMCONTACTADD` fires. Returns its id.
    pub fn add_contact(&self, name: &str, last_name: &str, phone: &str, email: &str) -> i64 {
        let fields = json!({"NAME": name, "LAST_NAME": last_name,
                            "PHONE": [{"VALUE": phone, "VALUE_TYPE": "WORK"}],
                            "EMAIL": [{"VALUE": email, "VALUE_TYPE": "WORK"}]});
        self.act(|w, fx| methods::add_entity(w, "CONTACT", &fields, 1, None, fx))
    }

    /// A manager changes a contact (`{"NAME": …, "PHONE": [{"ID": …, "VALUE": …}]}`);
    /// `ONCRMCONTACTUPDATE` fires.
    pub fn update_contact(&self, id: i64, fields: Value) {
        self.act(|w, fx| methods::update_entity(w, "CONTACT", id, &fields, 1, None, fx).map(|_| id));
    }

    /// A manager deletes a contact; `ONCRMCONTACTDELETE` fires.
    pub fn delete_contact(&self, id: i64) {
        self.act(|w, fx| methods::delete_entity(w, "CONTACT", id, None, fx).map(|_| id));
    }

    /// A manager adds a company; `ONCRMCOMPANYADD` fires. Returns its id.
    pub fn add_company(&self, title: &str, phone: &str, email: &str) -> i64 {
        let fields = json!({"TITLE": title, "PHONE": [{"VALUE": phone, "VALUE_TYPE": "WORK"}],
                            "EMAIL": [{"VALUE": email, "VALUE_TYPE": "WORK"}]});
        self.act(|w, fx| methods::add_entity(w, "COMPANY", &fields, 1, None, fx))
    }

    /// A manager changes a company; `ONCRMCOMPANYUPDATE` fires.
    pub fn update_company(&self, id: i64, fields: Value) {
        self.act(|w, fx| methods::update_entity(w, "COMPANY", id, &fields, 1, None, fx).map(|_| id));
    }

    /// A manager opens a deal at stage `NEW` for `contact`, assigned to `assigned`;
    /// `ONCRMDEALADD` fires. Returns its id.
    pub fn add_deal(&self, title: &str, contact: Option<i64>, assigned: i64) -> i64 {
        let fields = json!({"TITLE": title, "CONTACT_ID": contact, "ASSIGNED_BY_ID": assigned, "STAGE_ID": "NEW"});
        self.act(|w, fx| methods::add_entity(w, "DEAL", &fields, assigned, None, fx))
    }

    /// A manager moves a deal to `stage`; `ONCRMDEALUPDATE` fires.
    pub fn move_deal(&self, id: i64, stage: &str) {
        let fields = json!({ "STAGE_ID": stage });
        self.act(|w, fx| methods::update_entity(w, "DEAL", id, &fields, 1, None, fx).map(|_| id));
    }

    /// A manager changes a deal's fields (`ASSIGNED_BY_ID`, `UF_CRM_…`); `ONCRMDEALUPDATE` fires.
    pub fn update_deal(&self, id: i64, fields: Value) {
        self.act(|w, fx| methods::update_entity(w, "DEAL", id, &fields, 1, None, fx).map(|_| id));
    }

    /// A smart-process item of type `entity_type_id` (≥ 128); `ONCRMDYNAMICITEMADD` fires.
    pub fn add_item(&self, entity_type_id: i64, title: &str, stage: &str) -> i64 {
        self.act(|w, fx| Ok(methods::add_item(w, entity_type_id, title, stage, fx)))
    }

    /// A manager changes an item (camelCase fields); `ONCRMDYNAMICITEMUPDATE` fires.
    pub fn update_item(&self, entity_type_id: i64, id: i64, fields: Value) {
        self.act(|w, fx| methods::update_item(w, entity_type_id, id, &fields, None, fx).map(|_| id));
    }

    /// A contact, company or deal (`CONTACT`, `COMPANY`, `DEAL`) as `*.get` returns it.
    pub fn entity(&self, kind: &str, id: i64) -> Option<Map<String, Value>> {
        let kind = methods::kind(kind)?;
        self.inner.world().crm.get(kind).and_then(|m| m.get(&id)).cloned()
    }

    /// How many contacts, companies or deals the portal holds, and how many distinct first
    /// phone numbers among them (fewer than the rows: some are doubles).
    pub fn count(&self, kind: &str) -> (usize, usize) {
        let Some(kind) = methods::kind(kind) else { return (0, 0) };
        let w = self.inner.world();
        let Some(table) = w.crm.get(kind) else { return (0, 0) };
        let phones: std::collections::HashSet<&str> =
            table.values().filter_map(|r| r.get("PHONE")?.as_array()?.first()?.get("VALUE")?.as_str()).collect();
        (table.len(), phones.len())
    }

    /// A smart-process item's fields.
    pub fn item(&self, entity_type_id: i64, id: i64) -> Option<Map<String, Value>> {
        self.inner.world().items.get(&(entity_type_id, id)).cloned()
    }

    /// The timeline comments written so far (`{"ID","ENTITY_TYPE","ENTITY_ID","COMMENT"}`).
    pub fn timeline_comments(&self) -> Vec<Value> {
        self.inner.world().comments.clone()
    }

    /// A call ends: its record is kept for `voximplant.statistic.get` and `ONVOXIMPLANTCALLEND`
    /// fires. Returns the record's id.
    pub fn add_call(&self, call: Call) -> i64 {
        self.act(|w, fx| Ok(methods::add_call(w, &call, fx)))
    }

    /// Another open line; returns its id.
    pub fn add_open_line(&self, name: &str) -> i64 {
        let mut w = self.inner.world();
        let id = w.lines.keys().last().copied().unwrap_or(0) + 1;
        w.lines.insert(id, (name.to_string(), BTreeMap::new()));
        id
    }

    /// An operator answers in the chat the connector opened for `chat` (the external chat id, or
    /// the external user id without one) on `line`: the message is kept and
    /// `ONIMCONNECTORMESSAGEADD` is posted to the connector's application.
    pub fn operator_reply(&self, line: i64, chat: &str, text: &str) -> OperatorMessage {
        self.act(|w, fx| methods::operator_reply(w, line, chat, text, fx))
    }

    /// The operator closes the dialog: `ONIMCONNECTORDIALOGFINISH` is posted.
    pub fn finish_dialog(&self, line: i64, chat: &str) {
        self.act(|w, fx| methods::finish_dialog(w, line, chat, fx).map(|_| 0));
    }

    /// An administrator disconnects the connector from the line: `ONIMCONNECTORSTATUSDELETE`.
    pub fn disconnect_connector(&self, line: i64, connector: &str) {
        self.act(|w, fx| methods::disconnect(w, line, connector, fx).map(|_| 0));
    }

    /// The messages of the Open Lines chat for `chat` on `line`.
    pub fn chat_messages(&self, line: i64, chat: &str) -> Vec<ChatMessage> {
        let w = self.inner.world();
        methods::find_chat(&w, line, chat).map(|i| w.chats[i].messages.clone()).unwrap_or_default()
    }

    /// What `imconnector.send.status.delivery` reported.
    pub fn deliveries(&self) -> Vec<StatusReport> {
        self.inner.world().deliveries.clone()
    }

    /// What `imconnector.send.status.reading` reported.
    pub fn readings(&self) -> Vec<StatusReport> {
        self.inner.world().readings.clone()
    }

    /// Events posted so far, with the handlers' answers.
    pub fn events_sent(&self) -> Vec<SentEvent> {
        self.inner.world().sent.clone()
    }

    /// The offline queues as they stand.
    pub fn offline_queue(&self) -> Vec<OfflineRecord> {
        self.inner.world().offline.clone()
    }

    /// Waits (up to 10 s) until every event being posted has its answer.
    pub async fn settle(&self) {
        for _ in 0..1000 {
            if self.inner.world().pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `method` is over its execution-time budget for `period`: 429 `OPERATION_TIME_LIMIT`.
    pub fn block_method(&self, method: &str, period: Duration) {
        let reset = unix_now() + period.as_secs() as i64 + 1;
        self.inner.world().blocked.insert(method.to_ascii_lowercase(), (Instant::now() + period, reset));
    }

    /// `method` answers `calls` more calls (single or in a batch), then is blocked like
    /// [`Bitrix24Sim::block_method`] for `period`: a budget that runs out in the middle of work.
    pub fn block_method_after(&self, method: &str, calls: usize, period: Duration) {
        self.inner.world().block_after.insert(method.to_ascii_lowercase(), (calls, period));
    }

    /// Requests so far, in order.
    pub fn log(&self) -> Vec<LoggedCall> {
        self.inner.world().log.clone()
    }

    /// Requests refused with 503 `QUERY_LIMIT_EXCEEDED` so far.
    pub fn over_limit(&self) -> usize {
        self.inner.world().over_limit
    }

    /// Runs a manager's action on the world and posts the events it fired.
    fn act<T>(&self, f: impl FnOnce(&mut World, &mut Vec<server::Outgoing>) -> Result<T, methods::Fail>) -> T {
        let mut fx = Vec::new();
        let out = {
            let mut w = self.inner.world();
            f(&mut w, &mut fx)
        };
        server::post_events(&self.inner, fx);
        out.unwrap_or_else(|e| panic!("bitrix24-sim: {} {}", e.code, e.description))
    }
}

fn user_fields(id: i64, name: &str, last_name: &str, email: &str) -> Map<String, Value> {
    let v = json!({"ID": id.to_string(), "ACTIVE": true, "NAME": name, "LAST_NAME": last_name, "EMAIL": email,
                   "UF_DEPARTMENT": [1], "WORK_POSITION": "", "PERSONAL_MOBILE": ""});
    v.as_object().cloned().unwrap_or_default()
}

/// A new pair of tokens for `client_id` acting as `user`.
pub(crate) fn issue(w: &mut World, client_id: &str, user: i64) -> (String, String) {
    let access = w.token("a");
    let refresh = w.token("r");
    let ttl = w.access_ttl;
    w.access.insert(access.clone(), Access { client_id: client_id.to_string(), user, expires: Instant::now() + ttl });
    w.refresh.insert(refresh.clone(), (client_id.to_string(), user));
    (access, refresh)
}
