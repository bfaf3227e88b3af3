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
//!   Every hook and its outcome is kept ([`AmoSim::hooks`]).
//!
//! Not simulated: TLS, the OAuth authorization-code screen, custom fields' types, companies,
//! catalogs, the Chats API (amojo), tasks and events, disabling a hook after 100 failures.
//!
//! A test starts it with [`AmoSim::start`], fills the account with [`AmoSim::add_user`],
//! [`AmoSim::add_contact`] and [`AmoSim::add_lead`], plays a manager with
//! [`AmoSim::move_lead`] (which sends the `status_lead` hook), and reads back what okno wrote
//! with [`AmoSim::lead`] and [`AmoSim::notes`].

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
    pub(crate) contacts: BTreeMap<i64, Value>,
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
}

pub(crate) struct Inner {
    pub(crate) world: Mutex<World>,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) retry_pace: Mutex<Duration>,
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
        });
        let app = server::router(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
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
            json!({"id": id, "name": name, "email": email, "lang": "ru",
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

    /// A contact with a phone and an e-mail; returns its id.
    pub fn add_contact(&self, name: &str, phone: &str, email: &str) -> i64 {
        let mut w = self.inner.world();
        let id = w.id();
        let fields = json!([
            {"field_id": 1, "field_name": "Телефон", "field_code": "PHONE", "field_type": "multitext",
             "values": [{"value": phone, "enum_id": 11, "enum_code": "WORK"}]},
            {"field_id": 2, "field_name": "Email", "field_code": "EMAIL", "field_type": "multitext",
             "values": [{"value": email, "enum_id": 21, "enum_code": "WORK"}]},
        ]);
        w.contacts.insert(
            id,
            json!({"id": id, "name": name, "first_name": name, "last_name": "", "responsible_user_id": 0,
                   "custom_fields_values": fields, "updated_at": unix_now()}),
        );
        id
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
            updated_at: unix_now(),
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
            let lead = w.leads.get_mut(&lead_id).unwrap_or_else(|| panic!("amocrm-sim: no deal {lead_id}"));
            let old = lead.status_id;
            lead.status_id = status_id;
            lead.updated_by = by_user;
            lead.updated_at = unix_now();
            let l = lead.clone();
            let body = status_hook(&l, old, by_user, &subdomain, account_id);
            let hooks: Vec<String> = w
                .webhooks
                .iter()
                .filter(|(_, settings)| settings.iter().any(|s| s == "status_lead"))
                .map(|(d, _)| d.clone())
                .collect();
            (hooks, body)
        };
        for destination in hooks {
            tokio::spawn(server::deliver(self.inner.clone(), destination, body.clone()));
        }
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
