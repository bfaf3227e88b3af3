//! amoCRM: seed 004 from configuration alone. A deal moved to a configured stage becomes an
//! okno task posted to the executors' group chat; the one executor who takes it is written
//! back — the deal's responsible user, a note with who and when, the deal moved on.
//!
//! ```json
//! {"api_base": "https://romashka.amocrm.ru", "token": "<long-lived token>",
//!  "tasks": [{"status_id": 20, "channel_id": "<a channel with groups>", "chat_id": "-1001…",
//!             "group": "Курьеры", "taken_status_id": 30}]}
//! ```
//!
//! An executor is matched to an amoCRM user by their contact's `external_id`
//! (`amo-user-<user id>`), else by the contact's e-mail among the account's users; unmatched,
//! the deal keeps its responsible user and the note still says who took it.

use std::sync::Arc;

use okno_connector_amocrm::{
    exchange, AmoClient, AmoError, Contact as AmoContact, ContactEvent, FieldEntry, FieldValue, Grant, HookEvent, Lead,
    LeadPatch, NewTask, OAuthClient, TaskTarget, Tokens, PER_SECOND,
};
use okno_domain::ids::ConnectorId;
use okno_domain::model::Connector;
use okno_domain::{Error, ErrorKind, Result};
use okno_store::{JobKind, Task};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub mod chats;
pub mod contacts;

use super::actions::{field_value, Act, Rendered};
use super::poll::{Polled, IDLE};
use super::Outcome;
use crate::tasks::TaskRequest;
use crate::Engine;

/// How an executor's contact names their amoCRM user: `amo-user-<id>`.
pub const USER_PREFIX: &str = "amo-user-";

/// An amoCRM connector's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmoConfig {
    /// `https://<subdomain>.amocrm.ru`.
    pub api_base: String,
    /// A long-lived token of the company's private integration (or `oauth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// OAuth instead of a long-lived token: okno refreshes the tokens before they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuth>,
    /// Calls a second (amoCRM allows 7 per integration; paid packages more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u32>,
    /// The stages whose deals become tasks.
    #[serde(default)]
    pub tasks: Vec<StageTask>,
    /// okno as a chat channel of the account (see [`chats`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chats: Option<chats::Chats>,
    /// Contacts kept in step with amoCRM's (see [`contacts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<contacts::ContactSync>,
    /// The secret in okno's hook address (made by okno).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A private integration's OAuth: the administrator gives the client id, secret, redirect
/// address and an authorization code (good 20 minutes, once); okno keeps the tokens it
/// exchanges the code for, and refreshes them (amoCRM's access tokens live a day, and each
/// refresh token works once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
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

impl OAuth {
    fn client(&self) -> OAuthClient<'_> {
        OAuthClient { client_id: &self.client_id, client_secret: &self.client_secret, redirect_uri: &self.redirect_uri }
    }

    /// Keeps a new pair of tokens.
    fn keep(&mut self, t: Tokens) {
        self.access_token = Some(t.access_token);
        self.refresh_token = Some(t.refresh_token);
        self.expires_at = Some(okno_domain::time::now_ms() + t.expires_in.max(0) * 1000);
        self.code = None;
    }
}

/// How long before its end an access token is refreshed.
const REFRESH_AHEAD_MS: i64 = 10 * 60 * 1000;

/// A stage whose deals become tasks, and where the tasks go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageTask {
    /// The stage (amoCRM's status id) a deal is moved to.
    pub status_id: i64,
    /// The pipeline, where the stage is one every pipeline has (142 won, 143 lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<i64>,
    /// The channel and group chat the task is posted to.
    pub channel_id: String,
    pub chat_id: String,
    /// Only members of this contact group may take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The stage the deal moves to once someone took the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_status_id: Option<i64>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("invalid_connector_config", message.into())
}

impl AmoConfig {
    fn parse(config: &Value) -> Result<AmoConfig> {
        let cfg: AmoConfig =
            serde_json::from_value(config.clone()).map_err(|e| invalid(format!("amocrm connector config: {e}")))?;
        let base = url::Url::parse(cfg.api_base.trim()).map_err(|e| invalid(format!("`api_base`: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(invalid("`api_base` is the account's address, https://<subdomain>.amocrm.ru"));
        }
        match (&cfg.token, &cfg.oauth) {
            (Some(t), None) if !t.trim().is_empty() => {}
            (None, Some(o)) => {
                let given = [&o.client_id, &o.client_secret, &o.redirect_uri].iter().all(|f| !f.trim().is_empty());
                if !given || (o.code.is_none() && o.refresh_token.is_none()) {
                    return Err(invalid(
                        "`oauth` needs `client_id`, `client_secret`, `redirect_uri` and an authorization `code`",
                    ));
                }
            }
            _ => return Err(invalid("give a long-lived `token`, or `oauth` with an authorization code — one of them")),
        }
        if cfg.per_second.is_some_and(|n| n == 0 || n > 100) {
            return Err(invalid("`per_second` is 1..100"));
        }
        for t in &cfg.tasks {
            if t.channel_id.trim().is_empty() || t.chat_id.trim().is_empty() {
                return Err(invalid("each of `tasks` names a `channel_id` and the group's `chat_id`"));
            }
        }
        if let Some(c) = &cfg.contacts {
            c.check().map_err(invalid)?;
        }
        if let Some(c) = &cfg.chats {
            c.check().map_err(invalid)?;
        }
        Ok(cfg)
    }

    /// What calls carry: the long-lived token, or the current access token.
    fn bearer(&self) -> &str {
        match (&self.token, &self.oauth) {
            (Some(t), _) => t,
            (None, Some(o)) => o.access_token.as_deref().unwrap_or_default(),
            (None, None) => "",
        }
    }

    fn stage(&self, status_id: i64) -> Option<&StageTask> {
        self.tasks.iter().find(|t| t.status_id == status_id)
    }

    /// The stage a deal at `status_id` in `pipeline_id` (when known) is posted from.
    fn stage_in(&self, status_id: i64, pipeline_id: Option<i64>) -> Option<&StageTask> {
        self.tasks.iter().find(|t| {
            t.status_id == status_id
                && (t.pipeline_id.is_none() || pipeline_id.is_none() || t.pipeline_id == pipeline_id)
        })
    }
}

/// Checks a configuration and its token with amoCRM and subscribes okno's hook address to
/// deals' moves.
pub(crate) async fn connect(engine: &Engine, id: &ConnectorId, secret: &str, config: &Value) -> Result<(Value, Value)> {
    let mut cfg = AmoConfig::parse(config)?;
    for t in &cfg.tasks {
        let channel = engine.channel(&t.channel_id.as_str().into()).await?;
        if !engine.carries_tasks(&channel)? {
            return Err(invalid(format!("channel {} has no group chats with buttons to post tasks to", channel.id)));
        }
    }
    if let Some(o) = &mut cfg.oauth {
        let due = o.expires_at.unwrap_or(0) - okno_domain::time::now_ms() < REFRESH_AHEAD_MS;
        if let (None, Some(refresh), true) = (&o.code, o.refresh_token.clone(), due) {
            let tokens = exchange(&cfg.api_base, o.client(), Grant::Refresh(&refresh)).await.map_err(|e| match e {
                AmoError::Unauthorized(d) => Error::invalid(
                    "invalid_credentials",
                    format!("amoCRM refused the refresh token: {d}; give a new `code`"),
                ),
                e => unavailable(e),
            })?;
            o.keep(tokens);
        }
        if let Some(code) = o.code.clone() {
            let tokens = exchange(&cfg.api_base, o.client(), Grant::Code(&code)).await.map_err(|e| match e {
                AmoError::Unauthorized(d) => {
                    Error::invalid("invalid_credentials", format!("amoCRM refused the code: {d}"))
                }
                e => unavailable(e),
            })?;
            o.keep(tokens);
        }
    }
    let client =
        AmoClient::new(&cfg.api_base, cfg.bearer(), cfg.per_second.unwrap_or(PER_SECOND)).map_err(unavailable)?;
    let account = client.account().await.map_err(|e| match e {
        AmoError::Unauthorized(d) => Error::invalid("invalid_credentials", format!("amoCRM refused the token: {d}")),
        e => unavailable(e),
    })?;
    let destination = format!("{}/hooks/connectors/{id}/{secret}", engine.cfg.public_url.trim_end_matches('/'));
    let mut settings = vec!["status_lead"];
    if cfg.contacts.as_ref().is_some_and(|c| c.direction != contacts::Direction::ToAmocrm) {
        settings.extend(["add_contact", "update_contact"]);
    }
    client.subscribe(&destination, &settings).await.map_err(unavailable)?;
    if let Some(chats) = &mut cfg.chats {
        chats::connect(engine, chats).await?;
    }
    cfg.secret = Some(secret.to_string());
    let info = json!({"account": account.name, "subdomain": account.subdomain, "account_id": account.id});
    let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
    Ok((config, info))
}

fn unavailable(e: AmoError) -> Error {
    Error::new(ErrorKind::Unavailable, "amocrm_unavailable", e.to_string())
}

/// amoCRM's webhook: each deal moved to a configured stage queued as a job; contacts added or
/// changed written at once (when contacts come from amoCRM).
pub(crate) async fn hook(engine: &Engine, connector: &Connector, body: &[u8]) -> Result<usize> {
    let events = okno_connector_amocrm::events(body).map_err(|e| Error::invalid("invalid_hook", e.to_string()))?;
    let cfg = AmoConfig::parse(&connector.config)?;
    let mut queued = 0;
    for e in events {
        let HookEvent::LeadStatus { lead_id, status_id, pipeline_id, .. } = e;
        if cfg.stage_in(status_id, pipeline_id).is_some() {
            let what = format!("{}:lead:{lead_id}:{status_id}", connector.id);
            let queue = format!("connector:{}:lead:{lead_id}", connector.id);
            engine.store.queue_job(JobKind::ConnectorEvent, &what, Some(&queue)).await?;
            queued += 1;
        }
    }
    let pulls = cfg.contacts.as_ref().is_some_and(|c| c.direction != contacts::Direction::ToAmocrm);
    if pulls {
        let people =
            okno_connector_amocrm::contact_events(body).map_err(|e| Error::invalid("invalid_hook", e.to_string()))?;
        let rows: Vec<_> = people
            .into_iter()
            .filter_map(|e| match e {
                ContactEvent::Added(c) | ContactEvent::Updated(c) => Some(contacts::synced(&AmoContact {
                    id: c.id,
                    name: c.name,
                    phones: c.phones,
                    emails: c.emails,
                    responsible_user_id: c.responsible_user_id,
                    updated_at: c.last_modified.unwrap_or(0),
                    lead_ids: Vec::new(),
                })),
                // A contact deleted in amoCRM stays in okno with its conversations.
                ContactEvent::Deleted { .. } => None,
            })
            .collect();
        queued += rows.len();
        for page in rows.chunks(okno_store::MAX_SYNC_PAGE) {
            engine.store.sync_contacts(contacts::MARK, page.to_vec()).await?;
        }
    }
    if queued > 0 {
        engine.wake();
    }
    Ok(queued)
}

/// The task okno posts for a deal at a stage: one per deal and stage, however often amoCRM
/// repeats its hook.
fn task_id(connector: &ConnectorId, lead_id: i64, status_id: i64) -> String {
    format!("amocrm-{connector}-{lead_id}-{status_id}")
}

/// What an amoCRM error means for the job.
fn outcome(e: AmoError) -> Outcome {
    match e {
        AmoError::TooManyRequests | AmoError::Unavailable(_) => Outcome::Retry(e.to_string()),
        AmoError::Unauthorized(_) | AmoError::Forbidden(_) => Outcome::Held(e.to_string()),
        // The deal was deleted meanwhile: nothing left to do for it.
        AmoError::NotFound(_) => Outcome::Done,
        AmoError::Invalid(_) => Outcome::Refused(e.to_string()),
    }
}

/// The connector with an access token good for a while yet: an OAuth one near its end is
/// refreshed first (one refresh at a time, the new pair kept before it is used), or the
/// outcome that stops the job.
async fn fresh(engine: &Engine, connector: &Connector) -> Result<std::result::Result<(Connector, AmoConfig), Outcome>> {
    let cfg = AmoConfig::parse(&connector.config)?;
    let due = |cfg: &AmoConfig| {
        cfg.oauth.as_ref().is_some_and(|o| o.expires_at.unwrap_or(0) - okno_domain::time::now_ms() < REFRESH_AHEAD_MS)
    };
    if !due(&cfg) {
        return Ok(Ok((connector.clone(), cfg)));
    }
    let _one = engine.amocrm_refresh.lock().await;
    // Another job may have refreshed it meanwhile.
    let connector = engine.store.get_connector(&connector.id).await?;
    let mut cfg = AmoConfig::parse(&connector.config)?;
    if !due(&cfg) {
        return Ok(Ok((connector, cfg)));
    }
    let Some(o) = cfg.oauth.as_mut() else { return Ok(Ok((connector, cfg))) };
    let refresh = o.refresh_token.clone().unwrap_or_default();
    let tokens = exchange(&cfg.api_base, o.client(), Grant::Refresh(&refresh)).await;
    let detail = json!({"outcome": tokens.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())});
    engine.audit_connector_call(&connector, "amocrm.oauth.refresh", connector.id.as_str(), detail).await;
    match tokens {
        Ok(t) => o.keep(t),
        Err(e) => return Ok(Err(outcome(e))),
    }
    let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
    let patch = okno_store::ConnectorPatch { config: Some(config), ..Default::default() };
    let connector = engine.store.update_connector(&connector.id, patch).await?;
    Ok(Ok((connector, cfg)))
}

/// A `ConnectorEvent` job: `lead:<lead id>:<status id>`.
pub(crate) async fn event(engine: &Engine, connector: &Connector, what: &str) -> Result<Outcome> {
    let (connector, _) = match fresh(engine, connector).await? {
        Ok(fresh) => fresh,
        Err(stop) => return Ok(stop),
    };
    let connector = &connector;
    if let Some(delivery) = what.strip_prefix("delivery:") {
        let cfg = AmoConfig::parse(&connector.config)?;
        return chats::delivery(engine, connector, &cfg, delivery).await;
    }
    let mut parts = what.split(':');
    let (Some("lead"), Some(lead_id), Some(status_id)) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(Outcome::Done);
    };
    let (Ok(lead_id), Ok(status_id)) = (lead_id.parse::<i64>(), status_id.parse::<i64>()) else {
        return Ok(Outcome::Done);
    };
    let cfg = AmoConfig::parse(&connector.config)?;
    let Some(stage) = cfg.stage(status_id).cloned() else { return Ok(Outcome::Done) };
    let id = task_id(&connector.id, lead_id, status_id);
    match engine.store.get_task(&id).await {
        Ok(_) => return Ok(Outcome::Done),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let client = engine.amo_client(connector, &cfg)?;
    // The deal as amoCRM has it now: a hook may be late, and the deal moved on since.
    let lead = match client.lead(lead_id).await {
        Ok(l) => l,
        Err(AmoError::NotFound(_)) => return Ok(Outcome::Done),
        Err(e) => return Ok(outcome(e)),
    };
    engine
        .audit_connector_call(connector, "amocrm.lead.read", &lead_id.to_string(), json!({"status_id": lead.status_id}))
        .await;
    if lead.status_id != status_id || cfg.stage_in(status_id, Some(lead.pipeline_id)).is_none() {
        return Ok(Outcome::Done);
    }
    let private = match lead.contact_ids.first() {
        Some(c) => match client.contact(*c).await {
            Ok(c) => {
                let mut lines = vec![format!("Клиент: {}", c.name)];
                lines.extend(c.phones.iter().map(|p| format!("Телефон: {p}")));
                lines.extend(c.emails.iter().map(|e| format!("E-mail: {e}")));
                Some(lines.join("\n"))
            }
            Err(AmoError::NotFound(_)) => None,
            Err(e) => return Ok(outcome(e)),
        },
        None => None,
    };
    let req = TaskRequest {
        channel_id: stage.channel_id.clone(),
        chat_id: stage.chat_id.clone(),
        title: lead.name.chars().take(256).collect(),
        text: task_text(&lead),
        private_text: private,
        data: json!({"connector": connector.id, "amocrm": {"lead_id": lead_id, "status_id": status_id}}),
        group: stage.group.clone(),
        reoffer_after: None,
        reoffer_times: None,
    };
    engine.create_task_as(id, req, Some(&format!("connector:{}", connector.id))).await?;
    Ok(Outcome::Done)
}

/// What the group sees of a deal: its name and sum (the client's details go to the executor
/// privately).
fn task_text(lead: &Lead) -> String {
    match lead.price.filter(|p| *p > 0) {
        Some(p) => format!("Сделка «{}», сумма {p} ₽", lead.name),
        None => format!("Сделка «{}»", lead.name),
    }
}

/// A `ConnectorTaskTaken` job: the deal gets its executor as responsible user (when they are
/// one of the account's users), a note with who and when, and the next stage.
pub(crate) async fn task_taken(engine: &Engine, connector: &Connector, task: &Task) -> Result<Outcome> {
    let (connector, _) = match fresh(engine, connector).await? {
        Ok(fresh) => fresh,
        Err(stop) => return Ok(stop),
    };
    let connector = &connector;
    let (Some(lead_id), Some(status_id)) = (
        task.data.pointer("/amocrm/lead_id").and_then(Value::as_i64),
        task.data.pointer("/amocrm/status_id").and_then(Value::as_i64),
    ) else {
        return Ok(Outcome::Done);
    };
    // Only a task this connector posted writes to amoCRM: anyone may put `data.connector` on a
    // task made through the API, but not the connector's task id.
    if task.id != task_id(&connector.id, lead_id, status_id) {
        return Ok(Outcome::Done);
    }
    let Some(executor) = &task.claimed_by else { return Ok(Outcome::Done) };
    let cfg = AmoConfig::parse(&connector.config)?;
    let client = engine.amo_client(connector, &cfg)?;
    let user = match executor_user(engine, &client, executor.contact_id.as_deref()).await {
        Ok(u) => u,
        Err(e) => return Ok(outcome(e)),
    };
    let patch = LeadPatch {
        responsible_user_id: user,
        status_id: cfg.stage(status_id).and_then(|s| s.taken_status_id),
        ..Default::default()
    };
    let target = lead_id.to_string();
    if patch != LeadPatch::default() {
        let done = client.update_lead(lead_id, &patch).await;
        let detail = json!({"responsible_user_id": patch.responsible_user_id, "status_id": patch.status_id,
                            "outcome": done.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())});
        engine.audit_connector_call(connector, "amocrm.lead.update", &target, detail).await;
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
    let noted = client.add_note(lead_id, &text).await;
    let detail = json!({"text": text, "outcome": noted.as_ref().map(|id| format!("note {id}")).unwrap_or_else(|e| e.to_string())});
    engine.audit_connector_call(connector, "amocrm.note.add", &target, detail).await;
    Ok(match noted {
        Ok(_) => Outcome::Done,
        Err(e) => outcome(e),
    })
}

/// The amoCRM user an executor's contact names: `amo-user-<id>` as its external id, else its
/// e-mail among the account's users.
async fn executor_user(
    engine: &Engine,
    client: &AmoClient,
    contact_id: Option<&str>,
) -> std::result::Result<Option<i64>, AmoError> {
    let Some(contact_id) = contact_id else { return Ok(None) };
    let Ok(contact) = engine.store.get_contact(&contact_id.into()).await else { return Ok(None) };
    if let Some(id) =
        contact.external_id.as_deref().and_then(|x| x.strip_prefix(USER_PREFIX)).and_then(|x| x.parse().ok())
    {
        return Ok(Some(id));
    }
    let Some(email) = contact.email.as_deref() else { return Ok(None) };
    let users = client.users().await?;
    Ok(users.iter().find(|u| u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(email))).map(|u| u.id))
}

/// A rule's action on a deal (see [`super::actions`]).
pub(crate) async fn rule_action(engine: &Engine, connector: &Connector, a: &Rendered) -> Result<Outcome> {
    let (connector, cfg) = match fresh(engine, connector).await? {
        Ok(fresh) => fresh,
        Err(stop) => return Ok(stop),
    };
    let connector = &connector;
    let lead_id = match a.number(&a.deal, "deal") {
        Ok(n) => n,
        Err(refused) => return Ok(refused),
    };
    let client = engine.amo_client(connector, &cfg)?;
    let target = lead_id.to_string();
    let (action, detail, done) = match a.act {
        Act::Note => {
            let done = client.add_note(lead_id, &a.text).await.map(|id| format!("note {id}"));
            ("amocrm.note.add", json!({"text": a.text}), done)
        }
        Act::Stage => {
            let (status_id, pipeline_id) = match (a.number(&a.stage, "stage"), a.maybe_number(&a.pipeline, "pipeline"))
            {
                (Ok(s), Ok(p)) => (s, p),
                (Err(refused), _) | (_, Err(refused)) => return Ok(refused),
            };
            let patch = LeadPatch { status_id: Some(status_id), pipeline_id, ..Default::default() };
            let done = client.update_lead(lead_id, &patch).await.map(|()| "ok".to_string());
            ("amocrm.lead.update", json!({"status_id": status_id, "pipeline_id": pipeline_id}), done)
        }
        Act::Field => {
            let field_id = match a.number(&a.field, "field") {
                Ok(n) => n,
                Err(refused) => return Ok(refused),
            };
            let value = field_value(&a.value);
            let entry = match &value {
                Value::Number(n) => FieldEntry::Number(n.as_i64().unwrap_or_default()),
                Value::Bool(b) => FieldEntry::Flag(*b),
                _ => FieldEntry::Text(a.value.clone()),
            };
            let patch =
                LeadPatch { custom_fields: vec![FieldValue { field_id, values: vec![entry] }], ..Default::default() };
            let done = client.update_lead(lead_id, &patch).await.map(|()| "ok".to_string());
            ("amocrm.lead.update", json!({"field_id": field_id, "value": value}), done)
        }
        Act::Task => {
            let responsible = match a.maybe_number(&a.responsible, "responsible") {
                Ok(r) => r,
                Err(refused) => return Ok(refused),
            };
            let due = (okno_domain::time::now_ms() + a.due_ms) / 1000;
            let task = NewTask {
                text: a.text.clone(),
                complete_till: due,
                target: Some(TaskTarget::Lead(lead_id)),
                responsible_user_id: responsible,
                task_type_id: None,
            };
            let done = client.add_task(&task).await.map(|id| format!("task {id}"));
            ("amocrm.task.add", json!({"text": a.text, "complete_till": due, "responsible_user_id": responsible}), done)
        }
    };
    let mut detail = detail;
    detail["outcome"] = json!(done.as_ref().cloned().unwrap_or_else(|e| e.to_string()));
    engine.audit_connector_call(connector, action, &target, detail).await;
    Ok(match done {
        Ok(_) => Outcome::Done,
        // A deal deleted meanwhile is no error for a deal-moving job, but a rule's action
        // that found no deal is worth showing.
        Err(AmoError::NotFound(d)) => Outcome::Refused(format!("amoCRM has no deal {lead_id}: {d}")),
        Err(e) => outcome(e),
    })
}

/// The connector's standing work: people's messages carried into amoCRM's chats (every
/// second), contacts kept in step (every `contacts.every`).
pub(crate) async fn poll(engine: &Engine, connector: &Connector) -> Result<Polled> {
    let cfg = AmoConfig::parse(&connector.config)?;
    let mut again = IDLE;
    let mut result = Outcome::Done;
    if let Some(chats) = &cfg.chats {
        result = chats::mirror(engine, connector, chats).await?;
        again = CHATS_EVERY;
    }
    let Some(sync) = cfg.contacts.clone() else { return Ok(Polled { outcome: result, again }) };
    let every = sync.every();
    let connector = engine.store.get_connector(&connector.id).await?;
    let last = connector.info.get("contacts_at").and_then(Value::as_i64).unwrap_or(0);
    let resumed = connector.info.get("contacts_more").and_then(Value::as_bool).unwrap_or(false);
    let due_in = (last + every.as_millis() as i64 - okno_domain::time::now_ms()).max(0);
    if due_in > 0 && !resumed {
        let next = std::time::Duration::from_millis(due_in as u64).min(again);
        return Ok(Polled { outcome: result, again: next });
    }
    let (connector, cfg) = match fresh(engine, &connector).await? {
        Ok(fresh) => fresh,
        Err(stop) => return Ok(Polled { outcome: stop, again: every.min(again) }),
    };
    let client = engine.amo_client(&connector, &cfg)?;
    let ran = contacts::sync(engine, &connector, &cfg, &client).await?;
    // A run amoCRM cut short (a limit, a token) is still due when the outbox tries again.
    let unfinished = ran.more || ran.outcome.tried_again();
    let mut places = vec![("contacts_more", json!(unfinished))];
    if !unfinished {
        places.push(("contacts_at", json!(okno_domain::time::now_ms())));
    }
    engine.keep_places(&connector, places).await?;
    let next = if ran.more { std::time::Duration::ZERO } else { every.min(again) };
    // A failed look at the chats shows too, unless the contacts' own outcome says more.
    let outcome = match (ran.outcome, result) {
        (Outcome::Done, other) => other,
        (own, _) => own,
    };
    Ok(Polled { outcome, again: next })
}

/// How often the people's new messages are carried into amoCRM's chats.
const CHATS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Engine {
    /// The connector's client, kept while its configuration holds (its rate limit with it).
    fn amo_client(&self, connector: &Connector, cfg: &AmoConfig) -> Result<Arc<AmoClient>> {
        let mut clients = self.amocrm.lock().map_err(|_| Error::internal("the amoCRM clients' lock"))?;
        if let Some((config, client)) = clients.get(&connector.id) {
            if *config == connector.config {
                return Ok(client.clone());
            }
        }
        let client = Arc::new(
            AmoClient::new(&cfg.api_base, cfg.bearer(), cfg.per_second.unwrap_or(PER_SECOND)).map_err(unavailable)?,
        );
        clients.insert(connector.id.clone(), (connector.config.clone(), client.clone()));
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_is_checked_field_by_field() {
        let good = json!({"api_base": "https://romashka.amocrm.ru", "token": "t",
                          "tasks": [{"status_id": 20, "channel_id": "c", "chat_id": "-1", "taken_status_id": 30}]});
        let cfg = AmoConfig::parse(&good).unwrap();
        assert_eq!(cfg.stage(20).and_then(|s| s.taken_status_id), Some(30));
        assert!(cfg.stage(21).is_none());
        assert_eq!(cfg.bearer(), "t");
        let mut oauth = good.clone();
        oauth.as_object_mut().unwrap().remove("token");
        oauth["oauth"] = json!({"client_id": "c", "client_secret": "s", "redirect_uri": "https://o", "code": "x"});
        assert!(AmoConfig::parse(&oauth).is_ok(), "OAuth instead of a token");
        oauth["token"] = json!("t");
        assert!(AmoConfig::parse(&oauth).is_err(), "not both");
        for (field, bad) in [
            ("api_base", json!("ftp://x")),
            ("api_base", json!("not a url")),
            ("token", json!(" ")),
            ("per_second", json!(0)),
            ("tasks", json!([{"status_id": 20, "channel_id": "", "chat_id": "-1"}])),
            ("tasks", json!([{"status_id": "20", "channel_id": "c", "chat_id": "-1"}])),
            ("unknown", json!(1)),
            ("oauth", json!({"client_id": "c", "client_secret": "s", "redirect_uri": "https://o"})),
        ] {
            let mut v = good.clone();
            v[field] = bad.clone();
            assert!(AmoConfig::parse(&v).is_err(), "{field}: {bad}");
        }
    }

    #[test]
    fn a_stage_every_pipeline_has_is_matched_in_its_pipeline_only() {
        let cfg = AmoConfig::parse(&json!({"api_base": "https://r.amocrm.ru", "token": "t", "tasks": [
            {"status_id": 142, "pipeline_id": 7000, "channel_id": "c", "chat_id": "-1"},
            {"status_id": 20, "channel_id": "c", "chat_id": "-2"}]}))
        .unwrap();
        assert!(cfg.stage_in(142, Some(7000)).is_some());
        assert!(cfg.stage_in(142, Some(8000)).is_none(), "won in another pipeline");
        assert!(cfg.stage_in(20, Some(8000)).is_some(), "a stage with no pipeline named matches any");
    }

    #[test]
    fn a_task_is_one_per_deal_and_stage() {
        let c = ConnectorId::from("k1");
        assert_eq!(task_id(&c, 5, 20), "amocrm-k1-5-20");
        assert_ne!(task_id(&c, 5, 20), task_id(&c, 5, 30));
    }
}
