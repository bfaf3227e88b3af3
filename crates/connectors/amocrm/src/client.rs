//! amoCRM's REST API v4, as okno calls it: `Authorization: Bearer <token>` (a long-lived token
//! or an OAuth access token), at most [`PER_SECOND`] calls a second, spaced evenly so no second
//! ever holds more (amoCRM counts per integration; over the limit it answers 429, and blocks
//! the account — 403 on every call — when that goes on).
//!
//! A 429 that comes anyway (another program on the same integration) is waited out and tried
//! again a few times; 401 (the token revoked or expired) and 403 (the account blocked) are
//! answers a retry cannot change and come back as such, for the connector's status.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

/// Calls okno makes to one amoCRM integration in a second.
pub const PER_SECOND: u32 = 7;
/// How often a call answered 429 is tried again before the error is returned.
const RETRIES_ON_429: u32 = 3;
/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong calling amoCRM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmoError {
    /// 401: the token is wrong, expired or revoked. A person must give okno a new one.
    #[error("amoCRM refused the token (401): {0}")]
    Unauthorized(String),
    /// 403: the account is blocked (too many requests before) or the user may not do this.
    #[error("amoCRM refused the call (403): {0}")]
    Forbidden(String),
    /// 400: amoCRM named what is wrong with the request.
    #[error("amoCRM refused the request (400): {0}")]
    Invalid(String),
    /// 204 or 404 where one entity was asked for.
    #[error("amoCRM has no {0}")]
    NotFound(String),
    /// 429 after every retry: try again later.
    #[error("amoCRM asked to slow down (429) after {RETRIES_ON_429} retries")]
    TooManyRequests,
    /// The network or amoCRM failed (5xx, a timeout): try again later.
    #[error("amoCRM is unreachable or failed: {0}")]
    Unavailable(String),
}

impl AmoError {
    /// Whether trying the same call later may succeed.
    pub fn is_passing(&self) -> bool {
        matches!(self, AmoError::TooManyRequests | AmoError::Unavailable(_))
    }
}

/// The account a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub subdomain: String,
}

/// A deal, as okno reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Lead {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub price: Option<i64>,
    pub status_id: i64,
    pub pipeline_id: i64,
    pub responsible_user_id: i64,
    /// The deal's contacts, the main one first.
    #[serde(skip)]
    pub contact_ids: Vec<i64>,
}

/// A user of the account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
}

/// A contact, with the phones and e-mails of its custom fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: i64,
    pub name: String,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
    pub responsible_user_id: Option<i64>,
    /// Unix seconds of the last change.
    pub updated_at: i64,
    /// The contact's deals, when read `with=leads`.
    pub lead_ids: Vec<i64>,
}

/// What okno changes of a deal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeadPatch {
    pub status_id: Option<i64>,
    pub pipeline_id: Option<i64>,
    pub responsible_user_id: Option<i64>,
    /// Custom fields to set; each field's values are replaced whole (none: cleared).
    pub custom_fields: Vec<FieldValue>,
}

/// A custom field's new values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldValue {
    pub field_id: i64,
    pub values: Vec<FieldEntry>,
}

/// One value of a custom field, by the field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldEntry {
    /// A text, URL, or a number written as text (`"12.5"`).
    Text(String),
    Number(i64),
    /// A checkbox.
    Flag(bool),
    /// A date: unix seconds.
    Date(i64),
    /// A select's option, by its `enum_id`.
    Choice(i64),
}

impl FieldValue {
    fn to_json(&self) -> Value {
        let values: Vec<Value> = self
            .values
            .iter()
            .map(|v| match v {
                FieldEntry::Text(t) => json!({"value": t}),
                FieldEntry::Number(n) | FieldEntry::Date(n) => json!({"value": n}),
                FieldEntry::Flag(b) => json!({"value": b}),
                FieldEntry::Choice(id) => json!({"enum_id": id}),
            })
            .collect();
        json!({"field_id": self.field_id, "values": if values.is_empty() { Value::Null } else { Value::Array(values) }})
    }
}

/// What a task is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskTarget {
    Lead(i64),
    Contact(i64),
}

/// A task to set for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    pub text: String,
    /// Unix seconds it is due.
    pub complete_till: i64,
    pub target: Option<TaskTarget>,
    /// `None`: the token's user.
    pub responsible_user_id: Option<i64>,
    /// 1 a call, 2 a meeting, or an account's own type; `None`: amoCRM's default.
    pub task_type_id: Option<i64>,
}

/// One amoCRM account, as one integration sees it.
pub struct AmoClient {
    http: reqwest::Client,
    base: String,
    /// The long-lived token, or the current OAuth access token (replaced on refresh).
    token: std::sync::RwLock<String>,
    limiter: DefaultDirectRateLimiter,
}

/// What amoCRM's OAuth gives: a pair of tokens and how long the access token lives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds.
    pub expires_in: i64,
}

/// An OAuth grant: the authorization code an administrator got, or the last refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant<'a> {
    Code(&'a str),
    Refresh(&'a str),
}

/// A private integration's OAuth credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OAuthClient<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub redirect_uri: &'a str,
}

/// Exchanges a grant for tokens at `{api_base}/oauth2/access_token`. A refresh token works
/// once: the answer's must be kept, the old one is dead.
pub async fn exchange(api_base: &str, client: OAuthClient<'_>, grant: Grant<'_>) -> Result<Tokens, AmoError> {
    let http = reqwest::Client::builder().timeout(TIMEOUT).build().map_err(|e| AmoError::Unavailable(e.to_string()))?;
    let (grant_type, key, value) = match grant {
        Grant::Code(c) => ("authorization_code", "code", c),
        Grant::Refresh(r) => ("refresh_token", "refresh_token", r),
    };
    let body = json!({"client_id": client.client_id, "client_secret": client.client_secret,
                      "redirect_uri": client.redirect_uri, "grant_type": grant_type, key: value});
    let resp = http
        .post(format!("{}/oauth2/access_token", api_base.trim_end_matches('/')))
        .json(&body)
        .send()
        .await
        .map_err(|e| AmoError::Unavailable(e.to_string()))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| AmoError::Unavailable(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_str(&text).map_err(|e| AmoError::Unavailable(format!("amoCRM's tokens: {e}")));
    }
    let hint = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("hint").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| problem_detail(&text));
    Err(match status {
        s if s.is_client_error() => AmoError::Unauthorized(format!("OAuth: {hint}")),
        s => AmoError::Unavailable(format!("OAuth: {s}: {hint}")),
    })
}

impl std::fmt::Debug for AmoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmoClient").field("base", &self.base).finish_non_exhaustive()
    }
}

impl AmoClient {
    /// A client of the account at `api_base` (`https://<subdomain>.amocrm.ru`) with `token`,
    /// making at most `per_second` calls a second (amoCRM's limit is [`PER_SECOND`]; paid
    /// packages allow more).
    pub fn new(api_base: &str, token: &str, per_second: u32) -> Result<AmoClient, AmoError> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| AmoError::Unavailable(format!("an HTTP client: {e}")))?;
        let per_second = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        // Evenly spaced, no burst: any one-second window holds at most `per_second` calls.
        let period = Duration::from_micros(1_000_000 / u64::from(per_second.get()) + 1_000);
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(per_second));
        Ok(AmoClient {
            http,
            base: api_base.trim_end_matches('/').to_string(),
            token: std::sync::RwLock::new(token.to_string()),
            limiter: RateLimiter::direct(quota),
        })
    }

    /// Calls with a new token from now on (an OAuth refresh).
    pub fn set_token(&self, token: &str) {
        if let Ok(mut t) = self.token.write() {
            *t = token.to_string();
        }
    }

    /// One call: waits its turn under the limit, retries a 429, reads amoCRM's errors.
    /// `Ok(None)` is amoCRM's 204 (nothing there).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, AmoError> {
        let mut attempt = 0;
        loop {
            self.limiter.until_ready().await;
            let token = self.token.read().map(|t| t.clone()).unwrap_or_default();
            let mut req = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| AmoError::Unavailable(e.to_string()))?;
            let status = resp.status();
            let text = resp.text().await.map_err(|e| AmoError::Unavailable(e.to_string()))?;
            let detail = || problem_detail(&text);
            match status {
                StatusCode::NO_CONTENT => return Ok(None),
                s if s.is_success() => {
                    return serde_json::from_str(&text)
                        .map(Some)
                        .map_err(|e| AmoError::Unavailable(format!("amoCRM's answer is not JSON: {e}")))
                }
                StatusCode::TOO_MANY_REQUESTS if attempt < RETRIES_ON_429 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1) * attempt).await;
                }
                StatusCode::TOO_MANY_REQUESTS => return Err(AmoError::TooManyRequests),
                StatusCode::UNAUTHORIZED => return Err(AmoError::Unauthorized(detail())),
                StatusCode::FORBIDDEN => return Err(AmoError::Forbidden(detail())),
                StatusCode::NOT_FOUND => return Err(AmoError::NotFound(path.to_string())),
                s if s.is_client_error() => return Err(AmoError::Invalid(detail())),
                s => return Err(AmoError::Unavailable(format!("{s}: {}", detail()))),
            }
        }
    }

    /// The account the token belongs to (connecting checks the token with it).
    pub async fn account(&self) -> Result<Account, AmoError> {
        let v = self
            .call(Method::GET, "/api/v4/account", None)
            .await?
            .ok_or_else(|| AmoError::NotFound("account".into()))?;
        serde_json::from_value(v).map_err(|e| AmoError::Unavailable(format!("the account: {e}")))
    }

    /// A deal with its contacts.
    pub async fn lead(&self, id: i64) -> Result<Lead, AmoError> {
        let v = self
            .call(Method::GET, &format!("/api/v4/leads/{id}?with=contacts"), None)
            .await?
            .ok_or_else(|| AmoError::NotFound(format!("deal {id}")))?;
        let mut lead: Lead =
            serde_json::from_value(v.clone()).map_err(|e| AmoError::Unavailable(format!("deal {id}: {e}")))?;
        let mut contacts: Vec<(bool, i64)> = v
            .pointer("/_embedded/contacts")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| {
                        Some((!c.get("is_main").and_then(Value::as_bool).unwrap_or(false), c.get("id")?.as_i64()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        contacts.sort();
        lead.contact_ids = contacts.into_iter().map(|(_, id)| id).collect();
        Ok(lead)
    }

    /// Changes a deal; `updated_by` 0 marks the change as a robot's, so its own echo in the
    /// webhooks can be told apart.
    pub async fn update_lead(&self, id: i64, patch: &LeadPatch) -> Result<(), AmoError> {
        let mut body = json!({"updated_by": 0});
        if let Some(s) = patch.status_id {
            body["status_id"] = json!(s);
        }
        if let Some(p) = patch.pipeline_id {
            body["pipeline_id"] = json!(p);
        }
        if let Some(u) = patch.responsible_user_id {
            body["responsible_user_id"] = json!(u);
        }
        if !patch.custom_fields.is_empty() {
            body["custom_fields_values"] = patch.custom_fields.iter().map(FieldValue::to_json).collect();
        }
        self.call(Method::PATCH, &format!("/api/v4/leads/{id}"), Some(&body)).await?;
        Ok(())
    }

    /// Adds a common note to a deal; returns the note's id.
    pub async fn add_note(&self, lead_id: i64, text: &str) -> Result<i64, AmoError> {
        let body = json!([{"note_type": "common", "params": {"text": text}}]);
        let v = self
            .call(Method::POST, &format!("/api/v4/leads/{lead_id}/notes"), Some(&body))
            .await?
            .ok_or_else(|| AmoError::NotFound(format!("deal {lead_id}")))?;
        v.pointer("/_embedded/notes/0/id")
            .and_then(Value::as_i64)
            .ok_or_else(|| AmoError::Unavailable("amoCRM's answer names no note".into()))
    }

    /// A contact with its phones and e-mails.
    pub async fn contact(&self, id: i64) -> Result<Contact, AmoError> {
        let v = self
            .call(Method::GET, &format!("/api/v4/contacts/{id}"), None)
            .await?
            .ok_or_else(|| AmoError::NotFound(format!("contact {id}")))?;
        crate::contacts::contact_of(&v).ok_or_else(|| AmoError::Unavailable(format!("contact {id} has no id")))
    }

    /// Sets a task; returns its id.
    pub async fn add_task(&self, task: &NewTask) -> Result<i64, AmoError> {
        let mut row = json!({"text": task.text, "complete_till": task.complete_till});
        match task.target {
            Some(TaskTarget::Lead(id)) => (row["entity_type"], row["entity_id"]) = (json!("leads"), json!(id)),
            Some(TaskTarget::Contact(id)) => (row["entity_type"], row["entity_id"]) = (json!("contacts"), json!(id)),
            None => {}
        }
        if let Some(u) = task.responsible_user_id {
            row["responsible_user_id"] = json!(u);
        }
        if let Some(t) = task.task_type_id {
            row["task_type_id"] = json!(t);
        }
        let v = self
            .call(Method::POST, "/api/v4/tasks", Some(&json!([row])))
            .await?
            .ok_or_else(|| AmoError::Unavailable("amoCRM's answer names no task".into()))?;
        v.pointer("/_embedded/tasks/0/id")
            .and_then(Value::as_i64)
            .ok_or_else(|| AmoError::Unavailable("amoCRM's answer names no task".into()))
    }

    /// The account's users.
    pub async fn users(&self) -> Result<Vec<User>, AmoError> {
        let Some(v) = self.call(Method::GET, "/api/v4/users?limit=250", None).await? else { return Ok(Vec::new()) };
        let users = v.pointer("/_embedded/users").cloned().unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(users).map_err(|e| AmoError::Unavailable(format!("the users: {e}")))
    }

    /// Subscribes `destination` to the account's webhooks `settings` (`status_lead`, …); the
    /// same destination again replaces its settings.
    pub async fn subscribe(&self, destination: &str, settings: &[&str]) -> Result<(), AmoError> {
        let body = json!({"destination": destination, "settings": settings, "sort": 10});
        self.call(Method::POST, "/api/v4/webhooks", Some(&body)).await?;
        Ok(())
    }
}

/// What an error body says: problem+json's `detail` and its validation errors, else the text.
fn problem_detail(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            let mut detail = v.get("detail").and_then(Value::as_str).unwrap_or("no detail").to_string();
            let errors: Vec<String> = v
                .get("validation-errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|e| e.get("errors").and_then(Value::as_array).cloned().unwrap_or_default())
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.get("path").and_then(Value::as_str).unwrap_or("?"),
                        e.get("detail").and_then(Value::as_str).unwrap_or("?")
                    )
                })
                .collect();
            if !errors.is_empty() {
                detail = format!("{detail} ({})", errors.join("; "));
            }
            detail
        }
        Err(_) => text.chars().take(200).collect(),
    }
}
