//! An amoCRM (API v4) simulator for okno's integration tests and benchmarks.
//!
//! It serves amoCRM's REST shapes over real HTTP on 127.0.0.1 under [`AmoSim::api_base`] (as
//! `https://<subdomain>.amocrm.ru`) and sends account webhooks the way amoCRM does. Where each
//! behaviour comes from (`../shared/research/C_business_connectors.md` §1, which cites amoCRM's
//! developer pages and its official PHP library `amocrm/amocrm-api-php`):
//!
//! * **Auth** (§1.1): every call carries `Authorization: Bearer <token>` — a long-lived token or
//!   an OAuth access token; an unknown, expired or revoked one is **401**
//!   (`{"title":"Unauthorized","type":…,"status":401,"detail":…}`). OAuth:
//!   `POST /oauth2/access_token` (JSON) exchanges an authorization code or a refresh token for
//!   `{"token_type":"Bearer","expires_in","access_token","refresh_token"}`; each refresh gives a
//!   new refresh token and the old one stops working; a wrong client, code or refresh token is
//!   400 (`{"hint","title","type","status","detail"}`).
//! * **Limits** (§1.2): at most **7 requests a second per integration** (token) and 50 per
//!   account; over that, **429** — with an HTML body, as amoCRM answers (the PHP library only
//!   recognises 429 by a non-JSON body); [`BLOCK_AFTER`] refusals within a minute block the
//!   account: every later call is **403** until [`AmoSim::unblock`] (support unblocks it).
//! * **Shapes** (§1.2, §1.4, §1.5): `application/hal+json`; errors `application/problem+json`
//!   with `validation-errors` on 400; an empty list is **204**.
//!   `GET /api/v4/account`, `GET /api/v4/leads/{id}[?with=contacts]`, `PATCH /api/v4/leads/{id}`
//!   (`status_id`, `pipeline_id`, `responsible_user_id`, `updated_by`, `name`, `price`),
//!   `PATCH /api/v4/leads` (an array, each with `id`), `POST /api/v4/leads/{id}/notes` (an
//!   array of `{"note_type":"common","params":{"text"}}`), `GET /api/v4/leads/{id}/notes`,
//!   `GET /api/v4/users`, `GET /api/v4/contacts/{id}`, `GET|POST /api/v4/webhooks`.
//! * **Account webhooks** (§1.3): `POST`, `application/x-www-form-urlencoded`, PHP bracket keys
//!   (`leads[status][0][id]=…&leads[status][0][status_id]=…&account[subdomain]=…`); amoCRM waits
//!   **2 s** and counts only 100–299 as delivered; a failed hook is sent again — after 5 min,
//!   15 min, 15 min and 1 h in amoCRM, [`AmoSim::retry_pace`] apart here (compressed time).
//!   Every hook and its outcome is kept ([`AmoSim::hooks`]). Contacts send `add_contact`,
//!   `update_contact` and `delete_contact` (`contacts[add][0][…]`, `contacts[update][0][…]`,
//!   `contacts[delete][0][id]`), whether a manager ([`AmoSim::add_contact`],
//!   [`AmoSim::update_contact`], [`AmoSim::delete_contact`]) or the API made the change.
//! * **Contacts** (§1.2, §1.5): `GET /api/v4/contacts` pages with `page` and `limit` (at most
//!   [`MAX_PAGE`]), `filter[updated_at][from|to]`, `filter[id]`, `query`,
//!   `order[updated_at|id]=asc|desc`, `with=leads`; `_links.next` while more pages follow, 204
//!   past the last. `POST` and `PATCH /api/v4/contacts` take an array of at most [`MAX_WRITE`]
//!   contacts (more is a 400 with `validation-errors`), phones and e-mails in
//!   `custom_fields_values` by `field_code` `PHONE`/`EMAIL` (or their `field_id`) with an
//!   `enum_code` (`WORK`, `MOB`, …); the answer echoes each row's `request_id` (its index when
//!   none is given); a field sent replaces all its values; `updated_at` moves on every change.
//! * **Deals' custom fields** (§1.4): `custom_fields_values` on `PATCH /api/v4/leads[/{id}]`,
//!   by `field_id` of fields made with [`AmoSim::add_lead_field`]; a field's values are
//!   replaced whole; an unknown field, an unknown `enum_id` or a value of the wrong type is 400.
//! * **Tasks**: `POST /api/v4/tasks` (an array: `text`, `complete_till`, `entity_type`
//!   `leads`/`contacts`, `entity_id`, `responsible_user_id`, `task_type_id` 1 call or 2 meeting),
//!   read back with [`AmoSim::tasks`].
//! * **Chats API "amojo"** (§1.7) on its own address, [`AmoSim::amojo_base`]: see [`amojo`].
//!
//! Not simulated: TLS, the OAuth authorization-code screen, companies, catalogs, events,
//! disabling a hook after 100 failures.
//!
//! A test starts it with [`AmoSim::start`], fills the account with [`AmoSim::add_user`],
//! [`AmoSim::add_contact`] and [`AmoSim::add_lead`], plays a manager with
//! [`AmoSim::move_lead`] (which sends the `status_lead` hook), and reads back what okno wrote
//! with [`AmoSim::lead`], [`AmoSim::notes`], [`AmoSim::contact`], [`AmoSim::tasks`] and
//! [`AmoSim::peak_per_second`].

pub mod amojo;
mod contacts;
mod server;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Requests one integration (token) may make in a second.
pub const PER_TOKEN: usize = 7;
/// Requests the whole account may make in a second.
pub const PER_ACCOUNT: usize = 50;
/// Refusals for too many requests within a minute after which the account is blocked (403).
pub const BLOCK_AFTER: usize = 20;
/// How long amoCRM waits for a webhook's answer.
pub const HOOK_DEADLINE: Duration = Duration::from_secs(2);
/// How many times a webhook is sent in all (the first and four retries).
pub const HOOK_ATTEMPTS: usize = 5;
/// The status every pipeline has: "successfully realised".
pub const WON: i64 = 142;
/// The status every pipeline has: "closed and not realised".
pub const LOST: i64 = 143;
/// The most entities one list page holds.
pub const MAX_PAGE: usize = 250;
/// The most entities one write (`POST`/`PATCH` of an array) may carry.
pub const MAX_WRITE: usize = 250;
/// The `field_id` of the contacts' phones (`field_code` `PHONE`).
pub const PHONE_FIELD: i64 = 1;
/// The `field_id` of the contacts' e-mails (`field_code` `EMAIL`).
pub const EMAIL_FIELD: i64 = 2;

/// A contact, its phones and e-mails with their `enum_code`s.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: i64,
    pub name: String,
    pub first_name: String,
    pub last_name: String,
    pub responsible_user_id: i64,
    /// (value, enum_code)
    pub phones: Vec<(String, String)>,
    /// (value, enum_code)
    pub emails: Vec<(String, String)>,
    pub created_at: i64,
    pub updated_at: i64,
    pub updated_by: i64,
}

/// A task on a deal or a contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: i64,
    pub text: String,
    pub complete_till: i64,
    /// `leads` or `contacts`; empty for a task on nothing.
    pub entity_type: String,
    pub entity_id: i64,
    pub responsible_user_id: i64,
    pub task_type_id: i64,
    pub created_by: i64,
}

/// A custom field of the deals.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadField {
    pub id: i64,
    pub name: String,
    /// `text`, `numeric`, `checkbox`, `date` or `select`.
    pub field_type: String,
    /// A select's options: (enum_id, value).
    pub enums: Vec<(i64, String)>,
}

/// A deal.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    pub id: i64,
    pub name: String,
    pub price: i64,
    pub status_id: i64,
    pub pipeline_id: i64,
    pub responsible_user_id: i64,
    pub contact_ids: Vec<i64>,
    pub updated_by: i64,
    pub updated_at: i64,
}

/// A note on a deal.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub id: i64,
    pub lead_id: i64,
    pub note_type: String,
    pub text: String,
}

/// A webhook amoCRM sent, and how each attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub destination: String,
    pub body: String,
    /// Each attempt's HTTP status (0: no answer within [`HOOK_DEADLINE`]).
    pub attempts: Vec<u16>,
}

impl Hook {
    pub fn delivered(&self) -> bool {
        self.attempts.last().is_some_and(|s| (100..300).contains(s))
    }
}

#[derive(Default)]
pub(crate) struct World {
    pub(crate) account_id: i64,
    pub(crate) subdomain: String,
    /// token → the user it acts as.
    pub(crate) tokens: HashMap<String, i64>,
    /// OAuth access tokens' ends.
    pub(crate) expires: HashMap<String, Instant>,
    /// An OAuth integration: client id → its secret.
    pub(crate) integrations: HashMap<String, String>,
    /// Authorization codes not yet exchanged → (client id, user).
    pub(crate) codes: HashMap<String, (String, i64)>,
    /// Refresh tokens still good → (client id, user).
    pub(crate) refresh: HashMap<String, (String, i64)>,
    /// How long an OAuth access token lives.
    pub(crate) access_ttl: Duration,
    /// Refreshes so far.
    pub(crate) refreshes: usize,
    pub(crate) users: BTreeMap<i64, Value>,
    pub(crate) contacts: BTreeMap<i64, Contact>,
    pub(crate) lead_fields: BTreeMap<i64, LeadField>,
    /// deal → field → its values, as amoCRM writes them back.
    pub(crate) lead_values: BTreeMap<i64, BTreeMap<i64, Vec<Value>>>,
    pub(crate) tasks: Vec<Task>,
    /// Seconds added to the wall clock ([`AmoSim::advance`]).
    pub(crate) clock_offset: i64,
    /// Every call let through the gate: its token and when.
    pub(crate) admitted: Vec<(String, Instant)>,
    pub(crate) chats: amojo::Chats,
    pub(crate) leads: BTreeMap<i64, Lead>,
    pub(crate) pipelines: BTreeMap<i64, Vec<i64>>,
    pub(crate) notes: Vec<Note>,
    pub(crate) webhooks: Vec<(String, Vec<String>)>,
    pub(crate) hooks: Vec<Hook>,
    pub(crate) next_id: i64,
    /// When each token's and the account's recent requests came.
    pub(crate) recent: HashMap<String, VecDeque<Instant>>,
    pub(crate) refusals: VecDeque<Instant>,
    pub(crate) blocked: bool,
    /// Every request: method, path, status.
    pub(crate) log: Vec<(String, String, u16)>,
}

impl World {
    pub(crate) fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// The account's clock: unix seconds, moved on by [`AmoSim::advance`].
    pub(crate) fn now(&self) -> i64 {
        unix_now() + self.clock_offset
    }

    /// The destinations subscribed to `setting`.
    pub(crate) fn subscribed(&self, setting: &str) -> Vec<String> {
        self.webhooks.iter().filter(|(_, s)| s.iter().any(|x| x == setting)).map(|(d, _)| d.clone()).collect()
    }
}

pub(crate) struct Inner {
    pub(crate) world: Mutex<World>,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) retry_pace: Mutex<Duration>,
    pub(crate) amojo_base: String,
    /// How long a chat webhook waits for its answer (amojo: 5 s).
    pub(crate) chat_hook_deadline: Mutex<Duration>,
}

impl Inner {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running simulator: one amoCRM account.
#[derive(Clone)]
pub struct AmoSim {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

/// Sends `body` to every destination subscribed to `setting`, in the background.
pub(crate) fn fire(inner: &Arc<Inner>, destinations: Vec<String>, body: String) {
    for destination in destinations {
        tokio::spawn(server::deliver(inner.clone(), destination, body.clone()));
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl AmoSim {
    /// Starts an account `subdomain` on 127.0.0.1 with one pipeline (statuses 10, 20, 30 and
    /// the closing 142 and 143) and no users, tokens or deals.
    pub async fn start(subdomain: &str) -> AmoSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("amocrm-sim: binding 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("amocrm-sim: local address: {e}"));
        let base = format!("http://{addr}");
        let amojo_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("amocrm-sim: binding 127.0.0.1:0 for amojo: {e}"));
        let amojo_addr =
            amojo_listener.local_addr().unwrap_or_else(|e| panic!("amocrm-sim: amojo's local address: {e}"));
        let mut world =
            World { account_id: 31_337_000, subdomain: subdomain.to_string(), next_id: 1000, ..World::default() };
        world.pipelines.insert(7000, vec![10, 20, 30, WON, LOST]);
        let inner = Arc::new(Inner {
            world: Mutex::new(world),
            base: base.clone(),
            http: reqwest::Client::builder()
                .timeout(HOOK_DEADLINE)
                .build()
                .unwrap_or_else(|e| panic!("amocrm-sim: an HTTP client: {e}")),
            retry_pace: Mutex::new(Duration::from_millis(200)),
            amojo_base: format!("http://{amojo_addr}"),
            chat_hook_deadline: Mutex::new(amojo::HOOK_DEADLINE),
        });
        let app = server::router(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let chats = amojo::router(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(amojo_listener, chats).await;
        });
        AmoSim { inner, addr }
    }

    /// What okno is configured with as `api_base` (`https://<subdomain>.amocrm.ru`).
    pub fn api_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The pipeline every deal starts in.
    pub fn pipeline(&self) -> i64 {
        7000
    }

    /// A user of the account (a manager or an executor); returns their id.
    pub fn add_user(&self, name: &str, email: &str) -> i64 {
        let mut w = self.inner.world();
        let id = w.id();
        w.users.insert(
            id,
            json!({"id": id, "name": name, "email": email, "lang": "ru", "amojo_id": amojo::user_amojo_id(id),
                   "rights": {"is_active": true, "is_admin": false}}),
        );
        id
    }

    /// A token that acts as `user_id` (a long-lived token of a private integration).
    pub fn add_token(&self, user_id: i64) -> String {
        let token = format!("amo-{}-{}", user_id, self.inner.world().id());
        self.inner.world().tokens.insert(token.clone(), user_id);
        token
    }

    /// An OAuth integration with its client id and secret.
    pub fn add_integration(&self, client_id: &str, client_secret: &str) {
        self.inner.world().integrations.insert(client_id.to_string(), client_secret.to_string());
    }

    /// The authorization code an administrator gets for `client_id` acting as `user_id` (good
    /// for one exchange).
    pub fn auth_code(&self, client_id: &str, user_id: i64) -> String {
        let mut w = self.inner.world();
        let code = format!("code-{}", w.id());
        w.codes.insert(code.clone(), (client_id.to_string(), user_id));
        code
    }

    /// How long OAuth access tokens live from now on (amoCRM: 24 hours).
    pub fn access_ttl(&self, ttl: Duration) {
        self.inner.world().access_ttl = ttl;
    }

    /// Refresh-token exchanges so far.
    pub fn refreshes(&self) -> usize {
        self.inner.world().refreshes
    }

    /// The token stops working (revoked in amoCRM, or expired): every call with it is 401.
    pub fn revoke(&self, token: &str) {
        self.inner.world().tokens.remove(token);
    }

    /// A manager adds a contact with a phone and an e-mail (both `WORK`); returns its id. The
    /// `add_contact` webhook is sent.
    pub fn add_contact(&self, name: &str, phone: &str, email: &str) -> i64 {
        let mut w = self.inner.world();
        let id = w.id();
        let now = w.now();
        let contact = Contact {
            id,
            name: name.to_string(),
            first_name: name.to_string(),
            last_name: String::new(),
            responsible_user_id: 0,
            phones: vec![(phone.to_string(), "WORK".to_string())],
            emails: vec![(email.to_string(), "WORK".to_string())],
            created_at: now,
            updated_at: now,
            updated_by: 0,
        };
        let body = contacts::hook("add", &[&contact], &w);
        w.contacts.insert(id, contact);
        fire(&self.inner, w.subscribed("add_contact"), body);
        id
    }

    /// A manager changes a contact's name and, when given, its phones or e-mails (each
    /// replaces all of that kind); `updated_at` moves and the `update_contact` webhook is sent.
    pub fn update_contact(&self, id: i64, name: &str, phones: Option<&[&str]>, emails: Option<&[&str]>, by_user: i64) {
        let mut w = self.inner.world();
        let now = w.now();
        let c = w.contacts.get_mut(&id).unwrap_or_else(|| panic!("amocrm-sim: no contact {id}"));
        c.name = name.to_string();
        let work = |v: &[&str]| v.iter().map(|x| (x.to_string(), "WORK".to_string())).collect();
        if let Some(p) = phones {
            c.phones = work(p);
        }
        if let Some(e) = emails {
            c.emails = work(e);
        }
        c.updated_at = now;
        c.updated_by = by_user;
        let c = c.clone();
        let body = contacts::hook("update", &[&c], &w);
        fire(&self.inner, w.subscribed("update_contact"), body);
    }

    /// A manager deletes a contact: the `delete_contact` webhook is sent.
    pub fn delete_contact(&self, id: i64) {
        let mut w = self.inner.world();
        w.contacts.remove(&id).unwrap_or_else(|| panic!("amocrm-sim: no contact {id}"));
        let body = contacts::delete_hook(&[id], &w);
        fire(&self.inner, w.subscribed("delete_contact"), body);
    }

    /// A contact as amoCRM keeps it.
    pub fn contact(&self, id: i64) -> Contact {
        self.inner.world().contacts.get(&id).cloned().unwrap_or_else(|| panic!("amocrm-sim: no contact {id}"))
    }

    /// How many contacts the account holds (cheap, unlike [`AmoSim::contacts`]).
    pub fn contact_count(&self) -> usize {
        self.inner.world().contacts.len()
    }

    /// Every contact, by id.
    pub fn contacts(&self) -> Vec<Contact> {
        self.inner.world().contacts.values().cloned().collect()
    }

    /// Moves the account's clock on by `seconds` (`updated_at` and the filters read it), so a
    /// test sees changes in distinct seconds without waiting.
    pub fn advance(&self, seconds: i64) {
        self.inner.world().clock_offset += seconds;
    }

    /// The account's clock now, unix seconds.
    pub fn now(&self) -> i64 {
        self.inner.world().now()
    }

    /// A custom field of the deals, `field_type` `text`, `numeric`, `checkbox`, `date` or
    /// `select` (with `options`); returns its id and its options' `enum_id`s.
    pub fn add_lead_field(&self, name: &str, field_type: &str, options: &[&str]) -> (i64, Vec<i64>) {
        let mut w = self.inner.world();
        let id = w.id();
        let enums: Vec<(i64, String)> = options.iter().map(|o| (w.id(), o.to_string())).collect();
        let ids = enums.iter().map(|(e, _)| *e).collect();
        w.lead_fields.insert(id, LeadField { id, name: name.to_string(), field_type: field_type.to_string(), enums });
        (id, ids)
    }

    /// A deal's custom field values: field id → its values (`{"value": …}` or
    /// `{"enum_id": …, "value": …}`).
    pub fn lead_fields(&self, lead_id: i64) -> BTreeMap<i64, Vec<Value>> {
        self.inner.world().lead_values.get(&lead_id).cloned().unwrap_or_default()
    }

    /// The tasks made so far, in order.
    pub fn tasks(&self) -> Vec<Task> {
        self.inner.world().tasks.clone()
    }

    /// The most calls one integration (token) made in any one second, among those let
    /// through; a client keeping amoCRM's limit never goes past [`PER_TOKEN`].
    pub fn peak_per_second(&self) -> usize {
        let w = self.inner.world();
        let mut by_token: HashMap<&str, Vec<Instant>> = HashMap::new();
        for (token, at) in &w.admitted {
            by_token.entry(token.as_str()).or_default().push(*at);
        }
        by_token.values().map(|times| peak(times, Duration::from_secs(1))).max().unwrap_or(0)
    }

    /// A deal at status 10 of the pipeline, with `contact` as its main contact.
    pub fn add_lead(&self, name: &str, price: i64, responsible_user_id: i64, contact: Option<i64>) -> i64 {
        let mut w = self.inner.world();
        let id = w.id();
        let lead = Lead {
            id,
            name: name.to_string(),
            price,
            status_id: 10,
            pipeline_id: 7000,
            responsible_user_id,
            contact_ids: contact.into_iter().collect(),
            updated_by: responsible_user_id,
            updated_at: w.now(),
        };
        w.leads.insert(id, lead);
        id
    }

    /// A manager moves a deal to `status_id`: the deal changes and every webhook subscribed to
    /// `status_lead` is sent (in the background, with retries); returns at once.
    pub fn move_lead(&self, lead_id: i64, status_id: i64, by_user: i64) {
        let (hooks, body) = {
            let mut w = self.inner.world();
            let subdomain = w.subdomain.clone();
            let account_id = w.account_id;
            let now = w.now();
            let lead = w.leads.get_mut(&lead_id).unwrap_or_else(|| panic!("amocrm-sim: no deal {lead_id}"));
            let old = lead.status_id;
            lead.status_id = status_id;
            lead.updated_by = by_user;
            lead.updated_at = now;
            let l = lead.clone();
            let body = status_hook(&l, old, by_user, &subdomain, account_id);
            (w.subscribed("status_lead"), body)
        };
        fire(&self.inner, hooks, body);
    }

    /// How far apart webhook retries are (amoCRM: minutes; here 200 ms unless set).
    pub fn retry_pace(&self, pace: Duration) {
        *self.inner.retry_pace.lock().unwrap_or_else(|e| e.into_inner()) = pace;
    }

    pub fn lead(&self, id: i64) -> Lead {
        self.inner.world().leads.get(&id).cloned().unwrap_or_else(|| panic!("amocrm-sim: no deal {id}"))
    }

    pub fn notes(&self, lead_id: i64) -> Vec<Note> {
        self.inner.world().notes.iter().filter(|n| n.lead_id == lead_id).cloned().collect()
    }

    /// The webhooks sent so far, with their attempts.
    pub fn hooks(&self) -> Vec<Hook> {
        self.inner.world().hooks.clone()
    }

    /// Subscribes `destination` to `settings` (as `POST /api/v4/webhooks` does).
    pub fn subscribe(&self, destination: &str, settings: &[&str]) {
        let mut w = self.inner.world();
        w.webhooks.retain(|(d, _)| d != destination);
        w.webhooks.push((destination.to_string(), settings.iter().map(|s| s.to_string()).collect()));
    }

    /// Requests so far: method, path, status.
    pub fn log(&self) -> Vec<(String, String, u16)> {
        self.inner.world().log.clone()
    }

    /// Whether the account is blocked for too many requests.
    pub fn blocked(&self) -> bool {
        self.inner.world().blocked
    }

    /// Support unblocks the account.
    pub fn unblock(&self) {
        let mut w = self.inner.world();
        w.blocked = false;
        w.refusals.clear();
    }

    #[doc(hidden)]
    pub fn base(&self) -> &str {
        &self.inner.base
    }
}

/// The most of `times` (in order) inside any one window of length `window`.
fn peak(times: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for (end, t) in times.iter().enumerate() {
        while t.duration_since(times[start]) >= window {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    best
}

/// The form-encoded body of a `status_lead` hook, bracket keys and all, as amoCRM writes it.
fn status_hook(l: &Lead, old_status: i64, by_user: i64, subdomain: &str, account_id: i64) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    let p = "leads[status][0]";
    for (k, v) in [
        ("id", l.id.to_string()),
        ("name", l.name.clone()),
        ("status_id", l.status_id.to_string()),
        ("old_status_id", old_status.to_string()),
        ("price", l.price.to_string()),
        ("responsible_user_id", l.responsible_user_id.to_string()),
        ("last_modified", l.updated_at.to_string()),
        ("modified_user_id", by_user.to_string()),
        ("created_user_id", l.responsible_user_id.to_string()),
        ("date_create", l.updated_at.to_string()),
        ("pipeline_id", l.pipeline_id.to_string()),
        ("account_id", account_id.to_string()),
    ] {
        f.append_pair(&format!("{p}[{k}]"), &v);
    }
    f.append_pair(&format!("{p}[custom_fields][0][id]"), "66339");
    f.append_pair(&format!("{p}[custom_fields][0][name]"), "Источник");
    f.append_pair(&format!("{p}[custom_fields][0][values][0][value]"), "Сайт");
    f.append_pair(&format!("{p}[custom_fields][1][id]"), "72333");
    f.append_pair(&format!("{p}[custom_fields][1][name]"), "Дата доставки");
    f.append_pair(&format!("{p}[custom_fields][1][values][0]"), "1542067200");
    f.append_pair("account[subdomain]", subdomain);
    f.append_pair("account[id]", &account_id.to_string());
    f.finish()
}
