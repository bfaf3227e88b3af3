//! Bitrix24: seed 004 from configuration, the portal's contacts kept in step, okno as an Open
//! Lines connector and the portal's calls in the people's history.
//!
//! ```json
//! {"webhook_url": "https://romashka.bitrix24.ru/rest/1/<code>/", "application_token": "<outgoing webhook's>",
//!  "plan": "standard",
//!  "tasks": [{"stage_id": "PREPARATION", "channel_id": "<a channel with groups>", "chat_id": "-1001…",
//!             "group": "Курьеры", "taken_stage_id": "EXECUTING"}]}
//! ```
//!
//! or, as a local application (OAuth; Open Lines and offline events need it):
//!
//! ```json
//! {"app": {"client_id": "local.…", "client_secret": "…", "rest_base": "https://romashka.bitrix24.ru/rest/",
//!          "code": "<authorization code>"},
//!  "application_token": "<the application's>", "tasks": […],
//!  "contacts": {"direction": "both"}, "openlines": {"line": 1, "channels": ["<okno channel>"]},
//!  "calls": {}}
//! ```
//!
//! ```text
//!  app: CRM events bound offline (event.bind event_type=offline, okno's auth_connector)
//!       ─► the standing job: event.offline.get clear=0 ─► the process id kept ─► a job per
//!          record (queued, committed) ─► event.offline.clear ─► the kept id dropped
//!       Open Lines and call events bound online to {public_url}/hooks/connectors/{id}/{secret}
//!  webhook: the portal's outgoing webhook posts to the same address
//!  a post ─► application_token checked (constant time) ─► a job queued / an answer stored ─► 200
//!  a deal's job ─► the deal read ─► at a configured stage: a task (or a business event)
//!  the task taken ─► ASSIGNED_BY_ID, a timeline comment, the next stage
//! ```
//!
//! Every write okno makes carries `auth_connector`, so the portal does not queue it back as an
//! offline event. An executor is matched to a portal user by their contact's `external_id`
//! (`b24-user-<id>`), else by the contact's e-mail among the portal's users.

use std::sync::{Arc, OnceLock};

use okno_connector_bitrix24::event::{Change, CrmEntity};
use okno_connector_bitrix24::{
    exchange, B24Client, B24Error, DealPatch, Event as B24Event, Grant, Limits, OAuthApp, OfflineQuery, Tokens,
};
use okno_domain::ids::ConnectorId;
use okno_domain::model::Connector;
use okno_domain::{Error, ErrorKind, Result};
use okno_store::{JobKind, NewEvent, Task};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub mod calls;
pub mod contacts;
pub mod openlines;

use super::actions::{field_value, Act, Rendered};
use super::poll::{Polled, IDLE};
use super::Outcome;
use crate::tasks::TaskRequest;
use crate::Engine;

/// How an executor's contact names their portal user: `b24-user-<id>`.
pub const USER_PREFIX: &str = "b24-user-";
/// Bitrix24's authorization server.
pub const OAUTH_SERVER: &str = "https://oauth.bitrix.info";
/// How long before its end an access token (an hour's) is refreshed.
const REFRESH_AHEAD_MS: i64 = 10 * 60 * 1000;
/// How often the offline queue is drained.
const OFFLINE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// The most offline records one drain takes (a few reservations of 50).
const OFFLINE_ROUNDS: usize = 20;
/// Where a reservation of the offline queue is kept while its records are handled.
const OFFLINE_PLACE: &str = "offline_process";

/// The portal's plan: its leaky bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// 2 requests a second, 50 at most.
    #[default]
    Standard,
    /// 5 a second, 250 at most.
    Enterprise,
}

impl Plan {
    pub fn limits(self) -> Limits {
        match self {
            Plan::Standard => Limits::STANDARD,
            Plan::Enterprise => Limits::ENTERPRISE,
        }
    }
}

/// A Bitrix24 connector's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct B24Config {
    /// An inbound webhook: `https://<portal>/rest/<user id>/<code>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// A local application instead of a webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<App>,
    /// What the portal's posts carry in `auth[application_token]`: the application's, or the
    /// outgoing webhook's. Without it okno takes no posts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_token: Option<String>,
    #[serde(default)]
    pub plan: Plan,
    /// The stages whose deals (or smart-process items) become tasks or events.
    #[serde(default)]
    pub tasks: Vec<StageTask>,
    /// Contacts kept in step with the portal's (see [`contacts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<contacts::ContactSync>,
    /// okno as an Open Lines connector (see [`openlines`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openlines: Option<openlines::OpenLines>,
    /// The portal's call records (see [`calls`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<calls::Calls>,
    /// The secret in okno's hook address (made by okno).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A local application: its credentials, the portal's REST address and the tokens okno keeps
/// (an authorization `code` exchanged at once, or the pair the installation gave).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub client_id: String,
    pub client_secret: String,
    /// `https://<portal>.bitrix24.ru/rest/` (the installation's `client_endpoint`).
    pub rest_base: String,
    /// The authorization server; Bitrix24's own unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_server: Option<String>,
    /// Given by the administrator; exchanged at once and not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token ends (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl App {
    fn oauth(&self) -> OAuthApp {
        OAuthApp {
            server: self.oauth_server.clone().unwrap_or_else(|| OAUTH_SERVER.to_string()),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
        }
    }

    fn tokens(&self) -> Tokens {
        Tokens {
            access_token: self.access_token.clone().unwrap_or_default(),
            refresh_token: self.refresh_token.clone().unwrap_or_default(),
            expires_in: 3600,
            expires: None,
            member_id: None,
            client_endpoint: None,
            scope: None,
            user_id: None,
        }
    }

    /// Keeps a new pair of tokens.
    fn keep(&mut self, t: &Tokens) {
        self.access_token = Some(t.access_token.clone());
        self.refresh_token = Some(t.refresh_token.clone());
        self.expires_at = Some(okno_domain::time::now_ms() + t.expires_in.max(0) * 1000);
        self.code = None;
    }

    fn due(&self) -> bool {
        self.expires_at.unwrap_or(0) - okno_domain::time::now_ms() < REFRESH_AHEAD_MS
    }
}

/// A stage whose records become tasks (or business events), and where the tasks go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageTask {
    /// The stage a record is moved to (`PREPARATION`, `C1:NEW`, `DT128_5:PREPARATION`).
    pub stage_id: String,
    /// A smart process's `entityTypeId` (≥ 128); deals unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type_id: Option<i64>,
    /// The channel and group chat the task is posted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// Only members of this contact group may take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The stage the record moves to once someone took the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_stage_id: Option<String>,
    /// Instead of a task: a business event of this type (`bitrix24.deal.stage`) rules act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

impl StageTask {
    /// The record kind it watches: `deal`, or `item<entityTypeId>`.
    fn entity(&self) -> Entity {
        match self.entity_type_id {
            Some(t) if t != 2 => Entity::Item(t),
            _ => Entity::Deal,
        }
    }
}

/// A record a stage task watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entity {
    Deal,
    Item(i64),
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("invalid_connector_config", message.into())
}

impl B24Config {
    fn parse(config: &Value) -> Result<B24Config> {
        let cfg: B24Config =
            serde_json::from_value(config.clone()).map_err(|e| invalid(format!("bitrix24 connector config: {e}")))?;
        match (&cfg.webhook_url, &cfg.app) {
            (Some(u), None) if webhook_shaped(u) => {}
            (Some(_), None) => {
                return Err(invalid(
                    "`webhook_url` is an inbound webhook's address, https://<portal>/rest/<user id>/<code>/",
                ))
            }
            (None, Some(a)) => {
                let given = [&a.client_id, &a.client_secret, &a.rest_base].iter().all(|f| !f.trim().is_empty());
                if !given || (a.code.is_none() && a.refresh_token.is_none()) {
                    return Err(invalid(
                        "`app` needs `client_id`, `client_secret`, `rest_base` and an authorization `code` \
                         (or the installation's `access_token` and `refresh_token`)",
                    ));
                }
                let base = url::Url::parse(a.rest_base.trim()).map_err(|e| invalid(format!("`app.rest_base`: {e}")))?;
                if !matches!(base.scheme(), "http" | "https") {
                    return Err(invalid("`app.rest_base` is the portal's https://<portal>/rest/"));
                }
            }
            _ => return Err(invalid("give an inbound `webhook_url`, or a local `app` — one of them")),
        }
        if cfg.application_token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(invalid("`application_token` is empty"));
        }
        for t in &cfg.tasks {
            if t.stage_id.trim().is_empty() {
                return Err(invalid("each of `tasks` names its `stage_id`"));
            }
            let posts = t.channel_id.as_deref().is_some_and(|c| !c.trim().is_empty())
                && t.chat_id.as_deref().is_some_and(|c| !c.trim().is_empty());
            match (&t.event, posts) {
                (Some(e), false) if !e.trim().is_empty() => {}
                (None, true) => {}
                _ => {
                    return Err(invalid(
                        "each of `tasks` names a `channel_id` and the group's `chat_id`, or an `event` type instead",
                    ))
                }
            }
            if t.entity_type_id.is_some_and(|e| e != 2 && e < 128) {
                return Err(invalid("`entity_type_id` is a smart process's (128 and above)"));
            }
        }
        if let Some(c) = &cfg.contacts {
            c.check().map_err(invalid)?;
        }
        if let Some(o) = &cfg.openlines {
            o.check().map_err(invalid)?;
            if cfg.app.is_none() {
                return Err(invalid("Open Lines take a local `app`: Bitrix24 refuses `imconnector` to webhooks"));
            }
        }
        if let Some(c) = &cfg.calls {
            c.check().map_err(invalid)?;
        }
        Ok(cfg)
    }

    /// The stage task a record at `stage` is posted from.
    fn stage(&self, entity: Entity, stage: &str) -> Option<&StageTask> {
        self.tasks.iter().find(|t| t.entity() == entity && t.stage_id == stage)
    }

    fn watches_deals(&self) -> bool {
        self.tasks.iter().any(|t| t.entity() == Entity::Deal)
    }

    fn watches_items(&self) -> bool {
        self.tasks.iter().any(|t| matches!(t.entity(), Entity::Item(_)))
    }

    fn pulls_contacts(&self) -> bool {
        self.contacts.as_ref().is_some_and(|c| c.direction != contacts::Direction::ToBitrix24)
    }

    /// The CRM events okno queues offline (an application's).
    fn offline_events(&self) -> Vec<&'static str> {
        let mut events = Vec::new();
        if self.watches_deals() {
            events.extend(["ONCRMDEALADD", "ONCRMDEALUPDATE"]);
        }
        if self.watches_items() {
            events.extend(["ONCRMDYNAMICITEMADD", "ONCRMDYNAMICITEMUPDATE"]);
        }
        if self.pulls_contacts() {
            events.extend(["ONCRMCONTACTADD", "ONCRMCONTACTUPDATE"]);
            if self.contacts.as_ref().is_some_and(|c| c.companies) {
                events.extend(["ONCRMCOMPANYADD", "ONCRMCOMPANYUPDATE"]);
            }
        }
        events
    }

    /// The events the portal posts to okno's address.
    fn online_events(&self) -> Vec<&'static str> {
        let mut events = Vec::new();
        if self.openlines.is_some() {
            events.push("ONIMCONNECTORMESSAGEADD");
        }
        if self.calls.is_some() {
            events.push("ONVOXIMPLANTCALLEND");
        }
        events
    }
}

/// `https://<portal>/rest/<user id>/<code>/`.
fn webhook_shaped(u: &str) -> bool {
    let Ok(parsed) = url::Url::parse(u.trim()) else { return false };
    let segments: Vec<&str> = parsed.path_segments().map(|s| s.filter(|x| !x.is_empty()).collect()).unwrap_or_default();
    matches!(parsed.scheme(), "http" | "https")
        && segments.len() >= 3
        && segments[segments.len() - 3] == "rest"
        && segments[segments.len() - 2].chars().all(|c| c.is_ascii_digit())
}

/// okno's source key on the portal: its writes carry it, its offline queue is keyed by it.
fn source_key(id: &ConnectorId) -> String {
    format!("okno_{}", &id.as_str()[..12.min(id.as_str().len())])
}

fn hook_address(engine: &Engine, id: &ConnectorId, secret: &str) -> String {
    format!("{}/hooks/connectors/{id}/{secret}", engine.cfg.public_url.trim_end_matches('/'))
}

fn unavailable(e: B24Error) -> Error {
    Error::new(ErrorKind::Unavailable, "bitrix24_unavailable", e.to_string())
}

/// A refusal when connecting: the credentials (400 `invalid_credentials`), or the portal away.
fn refused(e: B24Error) -> Error {
    match e {
        B24Error::Unauthorized(_)
        | B24Error::ExpiredToken(_)
        | B24Error::InvalidToken(_)
        | B24Error::AccessDenied(_) => Error::invalid("invalid_credentials", e.to_string()),
        B24Error::Config(d) => invalid(d),
        e => unavailable(e),
    }
}

/// What a Bitrix24 error means for a job.
fn outcome(e: B24Error) -> Outcome {
    match e {
        B24Error::Limit(_) | B24Error::Unavailable(_) => Outcome::Retry(e.to_string()),
        B24Error::Unauthorized(_)
        | B24Error::ExpiredToken(_)
        | B24Error::InvalidToken(_)
        | B24Error::AccessDenied(_) => Outcome::Held(e.to_string()),
        // The record was deleted meanwhile: nothing left to do for it.
        B24Error::NotFound(_) => Outcome::Done,
        B24Error::Invalid(_) | B24Error::BatchTooLong(_) | B24Error::Config(_) => Outcome::Refused(e.to_string()),
    }
}

/// A client for a configuration (not cached: connecting checks the credentials afresh).
fn client_of(id: &ConnectorId, cfg: &B24Config) -> std::result::Result<B24Client, B24Error> {
    let limits = cfg.plan.limits();
    let client = match (&cfg.webhook_url, &cfg.app) {
        (Some(u), _) => B24Client::webhook(u.trim(), limits)?,
        (None, Some(a)) => B24Client::app(a.rest_base.trim(), a.oauth(), a.tokens(), limits)?,
        (None, None) => return Err(B24Error::Config("neither a webhook nor an application".into())),
    };
    Ok(client.with_auth_connector(&source_key(id)))
}

/// Checks a configuration and its credentials with the portal, binds the events okno needs
/// (an application's), registers the Open Lines connector.
pub(crate) async fn connect(engine: &Engine, id: &ConnectorId, secret: &str, config: &Value) -> Result<(Value, Value)> {
    let mut cfg = B24Config::parse(config)?;
    for t in &cfg.tasks {
        if let Some(ch) = &t.channel_id {
            let channel = engine.channel(&ch.as_str().into()).await?;
            if !engine.carries_tasks(&channel)? {
                return Err(invalid(format!(
                    "channel {} has no group chats with buttons to post tasks to",
                    channel.id
                )));
            }
        }
    }
    if let Some(a) = &mut cfg.app {
        if let Some(code) = a.code.clone() {
            let tokens = exchange(&a.oauth(), Grant::Code(&code)).await.map_err(|e| match e {
                B24Error::InvalidToken(d) => {
                    Error::invalid("invalid_credentials", format!("Bitrix24 refused the authorization code: {d}"))
                }
                e => unavailable(e),
            })?;
            a.keep(&tokens);
        } else if a.due() || a.access_token.is_none() {
            let refresh = a.refresh_token.clone().unwrap_or_default();
            let tokens = exchange(&a.oauth(), Grant::Refresh(&refresh)).await.map_err(|e| match e {
                B24Error::InvalidToken(d) => Error::invalid(
                    "invalid_credentials",
                    format!("Bitrix24 refused the refresh token: {d}; give a new authorization `code`"),
                ),
                e => unavailable(e),
            })?;
            a.keep(&tokens);
        }
    }
    let client = client_of(id, &cfg).map_err(refused)?;
    let me = client.call("user.current", json!({})).await.map_err(refused)?;
    let user = [me.result.get("NAME"), me.result.get("LAST_NAME")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let address = hook_address(engine, id, secret);
    if cfg.app.is_some() {
        let online = cfg.online_events();
        if !online.is_empty() && cfg.application_token.is_none() {
            return Err(invalid(
                "`application_token` (the application's, from its installation) is needed to take the portal's posts",
            ));
        }
        let bound = client.handlers().await.map_err(refused)?;
        for event in cfg.offline_events() {
            if !bound.iter().any(|h| h.offline && h.event.eq_ignore_ascii_case(event)) {
                client.bind_offline(event).await.map_err(refused)?;
            }
        }
        for event in online {
            if !bound.iter().any(|h| !h.offline && h.event.eq_ignore_ascii_case(event) && h.handler == address) {
                client.bind(event, &address).await.map_err(refused)?;
            }
        }
        if let Some(ol) = &mut cfg.openlines {
            openlines::connect(engine, &client, id, ol).await?;
        }
    }
    cfg.secret = Some(secret.to_string());
    let portal = cfg
        .webhook_url
        .as_deref()
        .or(cfg.app.as_ref().map(|a| a.rest_base.as_str()))
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(|h| h.to_string()))
        .unwrap_or_default();
    let mode = if cfg.app.is_some() { "app" } else { "webhook" };
    let info = json!({"portal": portal, "mode": mode, "user": user, "address": address});
    let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
    Ok((config, info))
}

/// What the portal posted: its `application_token` checked, then each event queued as a job,
/// an operator's answer stored — all before the answer.
pub(crate) async fn hook(engine: &Engine, connector: &Connector, body: &[u8]) -> Result<usize> {
    let cfg = B24Config::parse(&connector.config)?;
    let envelope = okno_connector_bitrix24::parse(body).map_err(|e| Error::invalid("invalid_hook", e.to_string()))?;
    if !envelope.comes_from(cfg.application_token.as_deref().unwrap_or_default()) {
        return Err(Error::new(
            ErrorKind::Unauthorized,
            "bad_application_token",
            "the post does not carry the portal's application_token",
        ));
    }
    let n = match envelope.event {
        B24Event::ConnectorMessages { connector: name, line, messages } => {
            openlines::replies(engine, connector, &cfg, &name, line, messages).await?
        }
        B24Event::CallEnded(_) if cfg.calls.is_some() => {
            queue(engine, connector, "calls").await?;
            1
        }
        other => match job_of(&cfg, &other) {
            Some(what) => {
                queue(engine, connector, &what).await?;
                1
            }
            None => 0,
        },
    };
    if n > 0 {
        engine.wake();
    }
    Ok(n)
}

/// The job a CRM event comes to, if okno acts on it.
fn job_of(cfg: &B24Config, event: &B24Event) -> Option<String> {
    match event {
        B24Event::Crm { entity: CrmEntity::Deal, change: Change::Added | Change::Updated, id }
            if cfg.watches_deals() =>
        {
            Some(format!("deal:{id}"))
        }
        B24Event::Item { entity_type_id, id, change: Change::Added | Change::Updated }
            if cfg.stage_watches_item(*entity_type_id) =>
        {
            Some(format!("item:{entity_type_id}:{id}"))
        }
        B24Event::Crm { entity: CrmEntity::Contact, change: Change::Added | Change::Updated, id }
            if cfg.pulls_contacts() =>
        {
            Some(format!("contact:{id}"))
        }
        B24Event::Crm { entity: CrmEntity::Company, change: Change::Added | Change::Updated, id }
            if cfg.pulls_contacts() && cfg.contacts.as_ref().is_some_and(|c| c.companies) =>
        {
            Some(format!("company:{id}"))
        }
        _ => None,
    }
}

impl B24Config {
    fn stage_watches_item(&self, entity_type_id: i64) -> bool {
        self.tasks.iter().any(|t| t.entity() == Entity::Item(entity_type_id))
    }
}

/// Queues a `ConnectorEvent` job `<id>:<what>`, one record's jobs in order.
async fn queue(engine: &Engine, connector: &Connector, what: &str) -> Result<()> {
    let job = format!("{}:{what}", connector.id);
    let queue = format!("connector:{}:{what}", connector.id);
    engine.store.queue_job(JobKind::ConnectorEvent, &job, Some(&queue)).await
}

/// The task okno posts for a record at a stage: one per record and stage, however often the
/// portal repeats itself. Short enough for a button's data.
fn task_id(connector: &ConnectorId, entity: Entity, id: i64, stage: &str) -> String {
    let kind = match entity {
        Entity::Deal => "deal".to_string(),
        Entity::Item(t) => format!("item{t}"),
    };
    let h = Sha256::digest(format!("{kind}:{id}:{stage}").as_bytes());
    format!("b24-{connector}-{}", hex::encode(&h[..8]))
}

/// The connector with an access token good for a while yet (an application's refreshed first,
/// the rotated pair kept before it is used), or the outcome that stops the job.
async fn fresh(engine: &Engine, connector: &Connector) -> Result<std::result::Result<(Connector, B24Config), Outcome>> {
    let cfg = B24Config::parse(&connector.config)?;
    if !cfg.app.as_ref().is_some_and(App::due) {
        return Ok(Ok((connector.clone(), cfg)));
    }
    let _one = engine.amocrm_refresh.lock().await;
    let connector = engine.store.get_connector(&connector.id).await?;
    let mut cfg = B24Config::parse(&connector.config)?;
    let Some(a) = cfg.app.as_mut().filter(|a| a.due()) else { return Ok(Ok((connector, cfg))) };
    let refresh = a.refresh_token.clone().unwrap_or_default();
    let tokens = exchange(&a.oauth(), Grant::Refresh(&refresh)).await;
    let detail = json!({"outcome": tokens.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())});
    engine.audit_connector_call(&connector, "bitrix24.oauth.refresh", connector.id.as_str(), detail).await;
    let tokens = match tokens {
        Ok(t) => t,
        Err(e) => return Ok(Err(outcome(e))),
    };
    a.keep(&tokens);
    let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
    let patch = okno_store::ConnectorPatch { config: Some(config), ..Default::default() };
    let updated = engine.store.update_connector(&connector.id, patch).await?;
    // The kept client goes on with the new pair: its bucket is the portal's, whatever the token.
    if let Ok(mut all) = clients().lock() {
        if let Some(entry) = all.get_mut(&connector.id).filter(|e| e.0 == connector.config) {
            entry.1.set_tokens(tokens);
            entry.0 = updated.config.clone();
        }
    }
    Ok(Ok((updated, cfg)))
}

/// The clients, kept per connector while its configuration holds (the bucket with them).
fn clients() -> &'static super::Clients<B24Client> {
    static CLIENTS: OnceLock<super::Clients<B24Client>> = OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

/// The connector's client: the kept one while the configuration is the same.
fn client(connector: &Connector, cfg: &B24Config) -> Result<Arc<B24Client>> {
    let mut all = clients().lock().map_err(|_| Error::internal("the Bitrix24 clients' lock"))?;
    if let Some((config, c)) = all.get(&connector.id) {
        if *config == connector.config {
            return Ok(c.clone());
        }
    }
    let c = Arc::new(client_of(&connector.id, cfg).map_err(unavailable)?);
    all.insert(connector.id.clone(), (connector.config.clone(), c.clone()));
    Ok(c)
}

/// Drops a connector's kept client (changed or deleted).
pub(crate) fn forget(id: &ConnectorId) {
    if let Ok(mut all) = clients().lock() {
        all.remove(id);
    }
}

/// Keeps the tokens the client moved to by itself (the portal expired one early): a refresh
/// token works once, so the one kept must be the newest.
async fn keep_tokens(engine: &Engine, connector: &Connector, client: &B24Client) -> Result<()> {
    let Some(t) = client.tokens() else { return Ok(()) };
    let _one = engine.amocrm_refresh.lock().await;
    let connector = engine.store.get_connector(&connector.id).await?;
    let mut cfg = B24Config::parse(&connector.config)?;
    let Some(a) = cfg.app.as_mut() else { return Ok(()) };
    if a.access_token.as_deref() == Some(t.access_token.as_str()) || t.access_token.is_empty() {
        return Ok(());
    }
    a.keep(&t);
    let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
    let patch = okno_store::ConnectorPatch { config: Some(config.clone()), ..Default::default() };
    engine.store.update_connector(&connector.id, patch).await?;
    if let Ok(mut all) = clients().lock() {
        if let Some(entry) = all.get_mut(&connector.id) {
            entry.0 = config;
        }
    }
    Ok(())
}

/// A `ConnectorEvent` job: `deal:<id>`, `item:<type>:<id>`, `contact:<id>`, `company:<id>`,
/// `calls`, `delivery:<okno message>:<chat>:<message>`.
pub(crate) async fn event(engine: &Engine, connector: &Connector, what: &str) -> Result<Outcome> {
    let (connector, cfg) = match fresh(engine, connector).await? {
        Ok(fresh) => fresh,
        Err(stop) => return Ok(stop),
    };
    let connector = &connector;
    let client = client(connector, &cfg)?;
    let parts: Vec<&str> = what.split(':').collect();
    let num = |s: Option<&&str>| s.and_then(|s| s.parse::<i64>().ok());
    let outcome = match parts.first().copied() {
        Some("delivery") => openlines::delivery(engine, connector, &cfg, &client, &parts[1..]).await?,
        Some("deal") => match num(parts.get(1)) {
            Some(id) => staged(engine, connector, &cfg, &client, Entity::Deal, id).await?,
            None => Outcome::Done,
        },
        Some("item") => match (num(parts.get(1)), num(parts.get(2))) {
            (Some(t), Some(id)) => staged(engine, connector, &cfg, &client, Entity::Item(t), id).await?,
            _ => Outcome::Done,
        },
        Some(kind @ ("contact" | "company")) => match num(parts.get(1)) {
            Some(id) => contacts::one(engine, &client, kind == "company", id).await?,
            None => Outcome::Done,
        },
        Some("calls") => match &cfg.calls {
            Some(_) => calls::pull(engine, connector, &client).await?,
            None => Outcome::Done,
        },
        _ => Outcome::Done,
    };
    keep_tokens(engine, connector, &client).await?;
    Ok(outcome)
}

/// A record as okno reads it for a stage task.
struct Staged {
    title: String,
    stage: String,
    sum: Option<String>,
    contact_id: Option<i64>,
    data: Value,
}

/// A deal or item read: at a configured stage, its task posted (or its event accepted).
async fn staged(
    engine: &Engine,
    connector: &Connector,
    cfg: &B24Config,
    client: &B24Client,
    entity: Entity,
    id: i64,
) -> Result<Outcome> {
    let read = match entity {
        Entity::Deal => client.deal(id).await.map(|d| Staged {
            title: d.title.clone().unwrap_or_else(|| format!("Сделка {id}")),
            stage: d.stage_id.clone().unwrap_or_default(),
            sum: d.opportunity.clone(),
            contact_id: d.contact_id,
            data: json!({"deal_id": id, "stage_id": d.stage_id, "category_id": d.category_id, "title": d.title,
                         "opportunity": d.opportunity, "assigned_by_id": d.assigned_by_id,
                         "contact_id": d.contact_id, "company_id": d.company_id}),
        }),
        Entity::Item(t) => client.item(t, id).await.map(|i| Staged {
            title: i.title.clone().unwrap_or_else(|| format!("Элемент {id}")),
            stage: i.stage_id.clone().unwrap_or_default(),
            sum: i.fields.get("opportunity").map(|v| v.to_string().trim_matches('"').to_string()),
            contact_id: i.fields.get("contactId").and_then(Value::as_i64).filter(|c| *c > 0),
            data: json!({"item_id": id, "entity_type_id": t, "stage_id": i.stage_id, "title": i.title,
                         "assigned_by_id": i.assigned_by_id}),
        }),
    };
    let record = match read {
        Ok(r) => r,
        Err(e) => return Ok(outcome(e)),
    };
    let action = if entity == Entity::Deal { "bitrix24.deal.read" } else { "bitrix24.item.read" };
    engine.audit_connector_call(connector, action, &id.to_string(), json!({"stage_id": record.stage})).await;
    let Some(stage) = cfg.stage(entity, &record.stage).cloned() else { return Ok(Outcome::Done) };
    let mut data = record.data.clone();
    data["connector"] = json!(connector.id);
    if let Some(event_type) = &stage.event {
        let kind = match entity {
            Entity::Deal => "deal".to_string(),
            Entity::Item(t) => format!("item{t}"),
        };
        let event = NewEvent {
            event_type: event_type.clone(),
            key: format!("bitrix24:{}:{kind}:{id}:{}", connector.id, record.stage),
            data,
            send_at: None,
        };
        let (_, duplicate) = engine.store.accept_event(event).await?;
        if !duplicate {
            engine.wake();
        }
        return Ok(Outcome::Done);
    }
    let tid = task_id(&connector.id, entity, id, &record.stage);
    match engine.store.get_task(&tid).await {
        Ok(_) => return Ok(Outcome::Done),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let private = match record.contact_id {
        Some(c) => match client.contact(c).await {
            Ok(c) => {
                let name =
                    [c.name.as_deref(), c.last_name.as_deref()].iter().flatten().copied().collect::<Vec<_>>().join(" ");
                let mut lines = vec![format!("Клиент: {name}")];
                lines.extend(c.phones.iter().map(|p| format!("Телефон: {}", p.value)));
                lines.extend(c.emails.iter().map(|e| format!("E-mail: {}", e.value)));
                Some(lines.join("\n"))
            }
            Err(B24Error::NotFound(_)) => None,
            Err(e) => return Ok(outcome(e)),
        },
        None => None,
    };
    let noun = if entity == Entity::Deal { "Сделка" } else { "Заявка" };
    let sum = record.sum.as_deref().and_then(|s| s.parse::<f64>().ok()).filter(|s| *s > 0.0);
    let text = match sum {
        Some(s) => format!("{noun} «{}», сумма {} ₽", record.title, s.round() as i64),
        None => format!("{noun} «{}»", record.title),
    };
    let mut reference = json!({"id": id, "stage_id": record.stage});
    if let Entity::Item(t) = entity {
        reference["entity_type_id"] = json!(t);
    }
    let req = TaskRequest {
        channel_id: stage.channel_id.clone().unwrap_or_default(),
        chat_id: stage.chat_id.clone().unwrap_or_default(),
        title: record.title.chars().take(256).collect(),
        text,
        private_text: private,
        data: json!({"connector": connector.id, "bitrix24": reference}),
        group: stage.group.clone(),
        reoffer_after: None,
        reoffer_times: None,
    };
    engine.create_task_as(tid, req, Some(&format!("connector:{}", connector.id))).await?;
    Ok(Outcome::Done)
}

/// A `ConnectorTaskTaken` job: the record gets its executor as responsible (when they are one
/// of the portal's users), a timeline comment with who and when, and the next stage.
pub(crate) async fn task_taken(engine: &Engine, connector: &Connector, task: &Task) -> Result<Outcome> {
    let (connector, cfg) = match fresh(engine, connector).await? {
        Ok(fresh) => fresh,
        Err(stop) => return Ok(stop),
    };
    let connector = &connector;
    let (Some(id), Some(stage)) = (
        task.data.pointer("/bitrix24/id").and_then(Value::as_i64),
        task.data.pointer("/bitrix24/stage_id").and_then(Value::as_str),
    ) else {
        return Ok(Outcome::Done);
    };
    let entity = match task.data.pointer("/bitrix24/entity_type_id").and_then(Value::as_i64) {
        Some(t) => Entity::Item(t),
        None => Entity::Deal,
    };
    // Only a task this connector posted writes to the portal: anyone may put `data.connector`
    // on a task made through the API, but not the connector's task id.
    if task.id != task_id(&connector.id, entity, id, stage) {
        return Ok(Outcome::Done);
    }
    let Some(executor) = &task.claimed_by else { return Ok(Outcome::Done) };
    let client = client(connector, &cfg)?;
    let user = match executor_user(engine, &client, executor.contact_id.as_deref()).await {
        Ok(u) => u,
        Err(e) => return Ok(outcome(e)),
    };
    let next = cfg.stage(entity, stage).and_then(|s| s.taken_stage_id.clone());
    let target = id.to_string();
    if user.is_some() || next.is_some() {
        let done = match entity {
            Entity::Deal => {
                let patch = DealPatch { stage_id: next.clone(), assigned_by_id: user, ..Default::default() };
                client.update_deal(id, &patch).await
            }
            Entity::Item(t) => {
                let mut fields = serde_json::Map::new();
                if let Some(u) = user {
                    fields.insert("assignedById".into(), json!(u));
                }
                if let Some(s) = &next {
                    fields.insert("stageId".into(), json!(s));
                }
                let mut params = json!({"entityTypeId": t, "id": id, "fields": fields});
                if let Some(key) = client.auth_connector() {
                    params["auth_connector"] = json!(key);
                }
                client.call("crm.item.update", params).await.map(|_| ())
            }
        };
        let action = if entity == Entity::Deal { "bitrix24.deal.update" } else { "bitrix24.item.update" };
        let detail = json!({"assigned_by_id": user, "stage_id": next,
                            "outcome": done.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())});
        engine.audit_connector_call(connector, action, &target, detail).await;
        if let Err(e) = done {
            return Ok(outcome(e));
        }
    }
    let who = match &executor.username {
        Some(u) => format!("{} (@{u})", executor.name),
        None => executor.name.clone(),
    };
    let when = task.claimed_at.map(okno_domain::time::to_rfc3339).unwrap_or_default();
    let text = format!("Задачу «{}» взял(а) {who} в okno, {when}", task.title);
    let entity_type = match entity {
        Entity::Deal => "deal".to_string(),
        Entity::Item(t) => format!("dynamic_{t}"),
    };
    let noted = client.add_timeline_comment(&entity_type, id, &text).await;
    let detail = json!({"text": text, "outcome": noted.as_ref().map(|id| format!("comment {id}")).unwrap_or_else(|e| e.to_string())});
    engine.audit_connector_call(connector, "bitrix24.timeline.comment.add", &target, detail).await;
    keep_tokens(engine, connector, &client).await?;
    Ok(match noted {
        Ok(_) => Outcome::Done,
        Err(e) => outcome(e),
    })
}

/// The portal user an executor's contact names: `b24-user-<id>` as its external id, else its
/// e-mail among the portal's users.
async fn executor_user(
    engine: &Engine,
    client: &B24Client,
    contact_id: Option<&str>,
) -> std::result::Result<Option<i64>, B24Error> {
    let Some(contact_id) = contact_id else { return Ok(None) };
    let Ok(contact) = engine.store.get_contact(&contact_id.into()).await else { return Ok(None) };
    if let Some(id) =
        contact.external_id.as_deref().and_then(|x| x.strip_prefix(USER_PREFIX)).and_then(|x| x.parse().ok())
    {
        return Ok(Some(id));
    }
    let Some(email) = contact.email.as_deref() else { return Ok(None) };
    let users = client.users(json!({"ACTIVE": true})).await?;
    Ok(users.iter().find(|u| u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(email))).map(|u| u.id))
}

/// A rule's action on a deal (see [`super::actions`]): a timeline comment, a field, a stage.
pub(crate) async fn rule_action(engine: &Engine, connector: &Connector, a: &Rendered) -> Result<Outcome> {
    let (connector, cfg) = match fresh(engine, connector).await? {
        Ok(fresh) => fresh,
        Err(stop) => return Ok(stop),
    };
    let connector = &connector;
    let deal = match a.number(&a.deal, "deal") {
        Ok(n) => n,
        Err(refused) => return Ok(refused),
    };
    let client = client(connector, &cfg)?;
    let target = deal.to_string();
    let (action, detail, done) = match a.act {
        Act::Note => {
            let done = client.add_timeline_comment("deal", deal, &a.text).await.map(|id| format!("comment {id}"));
            ("bitrix24.timeline.comment.add", json!({"text": a.text}), done)
        }
        Act::Stage => {
            let stage = a.stage.trim().to_string();
            if stage.is_empty() {
                return Ok(Outcome::Refused("the rule's stage action: `stage` rendered empty".into()));
            }
            let patch = DealPatch { stage_id: Some(stage.clone()), ..Default::default() };
            let done = client.update_deal(deal, &patch).await.map(|()| "ok".to_string());
            ("bitrix24.deal.update", json!({"stage_id": stage}), done)
        }
        Act::Field => {
            let field = a.field.trim().to_string();
            if field.is_empty() {
                return Ok(Outcome::Refused("the rule's field action: `field` rendered empty".into()));
            }
            let value = field_value(&a.value);
            let mut patch = DealPatch::default();
            patch.custom.insert(field.clone(), value.clone());
            let done = client.update_deal(deal, &patch).await.map(|()| "ok".to_string());
            ("bitrix24.deal.update", json!({"field": field, "value": value}), done)
        }
        Act::Task => {
            return Ok(Outcome::Refused(
                "Bitrix24 connectors take `note`, `field` and `stage` actions; `task` is not built for them".into(),
            ))
        }
    };
    let mut detail = detail;
    detail["outcome"] = json!(done.as_ref().cloned().unwrap_or_else(|e| e.to_string()));
    engine.audit_connector_call(connector, action, &target, detail).await;
    keep_tokens(engine, connector, &client).await?;
    Ok(match done {
        Ok(_) => Outcome::Done,
        Err(B24Error::NotFound(d)) => Outcome::Refused(format!("Bitrix24 has no deal {deal}: {d}")),
        Err(e) => outcome(e),
    })
}

/// The connector's standing work: the offline queue drained, people's messages carried into
/// the open line, contacts kept in step, call records pulled — each when due.
pub(crate) async fn poll(engine: &Engine, connector: &Connector) -> Result<Polled> {
    let (connector, cfg) = match fresh(engine, connector).await? {
        Ok(fresh) => fresh,
        Err(stop) => return Ok(Polled { outcome: stop, again: OFFLINE_EVERY }),
    };
    let client = client(&connector, &cfg)?;
    let mut again = IDLE;
    let mut result = Outcome::Done;
    let mut note = |o: Outcome| {
        if matches!(result, Outcome::Done) {
            result = o;
        }
    };
    if cfg.app.is_some() && !cfg.offline_events().is_empty() {
        note(drain(engine, &connector, &cfg, &client).await?);
        again = again.min(OFFLINE_EVERY);
    }
    if let Some(ol) = &cfg.openlines {
        note(openlines::mirror(engine, &connector, ol, &client).await?);
        again = again.min(openlines::EVERY);
    }
    if let Some(sync) = cfg.contacts.clone() {
        let (o, next) = contacts::due_sync(engine, &connector, &client, &sync).await?;
        note(o);
        again = again.min(next);
    }
    if let Some(c) = &cfg.calls {
        let (o, next) = calls::due_pull(engine, &connector, &client, c).await?;
        note(o);
        again = again.min(next);
    }
    keep_tokens(engine, &connector, &client).await?;
    Ok(Polled { outcome: result, again })
}

/// Drains okno's offline queue: each reservation kept before its records are handled (a job
/// queued for each), cleared after — a crash in between reads the same reservation again.
async fn drain(engine: &Engine, connector: &Connector, cfg: &B24Config, client: &B24Client) -> Result<Outcome> {
    for _ in 0..OFFLINE_ROUNDS {
        let kept = engine.store.connector_place(&connector.id, OFFLINE_PLACE).await?.filter(|p| !p.is_empty());
        let query = OfflineQuery { process_id: kept.clone(), ..Default::default() };
        let batch = match client.offline_events(&query).await {
            Ok(b) => b,
            Err(e) => return Ok(outcome(e)),
        };
        let Some(pid) = batch.process_id.clone().or(kept) else { return Ok(Outcome::Done) };
        if batch.events.is_empty() {
            engine.store.keep_connector_place(&connector.id, OFFLINE_PLACE, "").await?;
            return Ok(Outcome::Done);
        }
        engine.store.keep_connector_place(&connector.id, OFFLINE_PLACE, &pid).await?;
        let mut queued = 0;
        for e in &batch.events {
            let Ok(env) = okno_connector_bitrix24::parse(&offline_body(e)) else { continue };
            if let Some(what) = job_of(cfg, &env.event) {
                queue(engine, connector, &what).await?;
                queued += 1;
            }
        }
        if queued > 0 {
            engine.wake();
        }
        let cleared = client.clear_offline(&pid, &[]).await;
        let detail = json!({"count": batch.events.len(), "queued": queued,
                            "outcome": cleared.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())});
        engine.audit_connector_call(connector, "bitrix24.event.offline", &pid, detail).await;
        if let Err(e) = cleared {
            return Ok(outcome(e));
        }
        engine.store.keep_connector_place(&connector.id, OFFLINE_PLACE, "").await?;
        if batch.events.len() < query.limit as usize {
            return Ok(Outcome::Done);
        }
    }
    Ok(Outcome::Done)
}

/// An offline record as the form body an online post of it would be (read by the same parser).
fn offline_body(e: &okno_connector_bitrix24::OfflineEvent) -> Vec<u8> {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    f.append_pair("event", &e.event);
    fn put(key: &str, v: &Value, f: &mut url::form_urlencoded::Serializer<'_, String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| put(&format!("{key}[{k}]"), v, f)),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| put(&format!("{key}[{i}]"), v, f)),
            Value::String(s) => {
                f.append_pair(key, s);
            }
            Value::Number(n) => {
                f.append_pair(key, &n.to_string());
            }
            Value::Bool(_) | Value::Null => {}
        }
    }
    put("data", &e.data, &mut f);
    f.finish().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook() -> Value {
        json!({"webhook_url": "https://p.bitrix24.ru/rest/1/abc/", "application_token": "tok",
               "tasks": [{"stage_id": "PREPARATION", "channel_id": "c", "chat_id": "-1", "taken_stage_id": "EXECUTING"}]})
    }

    #[test]
    fn a_configuration_is_checked_field_by_field() {
        let cfg = B24Config::parse(&webhook()).unwrap();
        assert_eq!(
            cfg.stage(Entity::Deal, "PREPARATION").and_then(|s| s.taken_stage_id.clone()).as_deref(),
            Some("EXECUTING")
        );
        assert!(cfg.stage(Entity::Deal, "NEW").is_none());
        assert!(cfg.stage(Entity::Item(128), "PREPARATION").is_none(), "a deal's stage is not an item's");
        assert_eq!(cfg.plan.limits(), Limits::STANDARD);
        let mut app = webhook();
        app.as_object_mut().unwrap().remove("webhook_url");
        app["app"] = json!({"client_id": "local.1", "client_secret": "s", "rest_base": "https://p.bitrix24.ru/rest/", "code": "x"});
        app["plan"] = json!("enterprise");
        app["openlines"] = json!({"line": 1, "channels": ["ch"]});
        let parsed = B24Config::parse(&app).unwrap();
        assert_eq!(parsed.plan.limits(), Limits::ENTERPRISE);
        assert_eq!(parsed.online_events(), vec!["ONIMCONNECTORMESSAGEADD"]);
        assert_eq!(parsed.offline_events(), vec!["ONCRMDEALADD", "ONCRMDEALUPDATE"]);
        app["webhook_url"] = json!("https://p.bitrix24.ru/rest/1/abc/");
        assert!(B24Config::parse(&app).is_err(), "not both");
        for (field, bad) in [
            ("webhook_url", json!("https://p.bitrix24.ru/")),
            ("plan", json!("gold")),
            ("application_token", json!(" ")),
            ("tasks", json!([{"stage_id": "", "channel_id": "c", "chat_id": "-1"}])),
            ("tasks", json!([{"stage_id": "NEW"}])),
            ("tasks", json!([{"stage_id": "NEW", "channel_id": "c", "chat_id": "-1", "event": "x"}])),
            ("tasks", json!([{"stage_id": "NEW", "event": "x", "entity_type_id": 31}])),
            ("openlines", json!({"line": 1, "channels": ["ch"]})),
            ("unknown", json!(1)),
        ] {
            let mut v = webhook();
            v[field] = bad.clone();
            assert!(B24Config::parse(&v).is_err(), "{field}: {bad}");
        }
        let mut event = webhook();
        event["tasks"] = json!([{"stage_id": "DT128_1:NEW", "entity_type_id": 128, "event": "bitrix24.item.stage"}]);
        let cfg = B24Config::parse(&event).unwrap();
        assert!(cfg.stage(Entity::Item(128), "DT128_1:NEW").is_some());
        assert_eq!(cfg.offline_events(), vec!["ONCRMDYNAMICITEMADD", "ONCRMDYNAMICITEMUPDATE"]);
    }

    #[test]
    fn a_task_is_one_per_record_and_stage_and_fits_a_button() {
        let c = ConnectorId::from(okno_domain::ids::new_id());
        let a = task_id(&c, Entity::Deal, 12_345_678, "C12:FINAL_INVOICE");
        assert_eq!(a, task_id(&c, Entity::Deal, 12_345_678, "C12:FINAL_INVOICE"));
        assert_ne!(a, task_id(&c, Entity::Deal, 12_345_678, "C12:WON"));
        assert_ne!(a, task_id(&c, Entity::Item(128), 12_345_678, "C12:FINAL_INVOICE"));
        assert!(format!("task:take:{a}").len() <= 64, "{a}");
    }

    #[test]
    fn an_offline_record_reads_as_its_online_post() {
        let e = okno_connector_bitrix24::OfflineEvent {
            id: 1,
            message_id: "m".into(),
            event: "ONCRMDEALUPDATE".into(),
            timestamp: None,
            data: json!({"FIELDS": {"ID": "759"}}),
            object_id: Some(759),
        };
        let env = okno_connector_bitrix24::parse(&offline_body(&e)).unwrap();
        assert_eq!(job_of(&B24Config::parse(&webhook()).unwrap(), &env.event).as_deref(), Some("deal:759"));
    }
}
