//! Bitrix24's REST API, as okno calls it: through an inbound webhook
//! (`https://<portal>/rest/{user_id}/{code}/{method}`) or as a local application with OAuth
//! (`https://<portal>/rest/{method}` with `auth=<access token>`), every call a JSON `POST`.
//!
//! ```text
//! call ─► the bucket (GCRA: Y a second, a burst of X − Y) ─► POST ─► 200 {"result", "time"}
//!                                                                 ├─ 401 expired_token ─► refresh once, again
//!                                                                 ├─ 503 QUERY_LIMIT_EXCEEDED ─► wait, again (bounded)
//!                                                                 ├─ 429 OPERATION_TIME_LIMIT ─► wait, again (bounded)
//!                                                                 └─ anything else ─► B24Error
//! ```
//!
//! The portal's leaky bucket (+1 a request, −Y at each whole second, refusing past X) is kept on
//! okno's side: a GCRA limiter of Y a second with a burst of X − Y never takes the portal's
//! counter past X, whatever the phase of its whole-second drain. A 503 that comes anyway
//! (another program on the same portal and address shares the bucket) is waited out with an
//! increasing delay; a method over its execution-time budget (429) is paused until the
//! `operating_reset_at` its last answer named, or with the same increasing delay. Both a bounded
//! number of times, then [`B24Error::Limit`].

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::wire::{int, text};

/// How long one call may take (the portal ends its own work at 60 s).
const TIMEOUT: Duration = Duration::from_secs(65);
/// The most commands one `batch` may carry.
pub const BATCH_MAX: usize = 50;

/// The portal's leaky bucket: drained by `per_second` a second, refusing past `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

impl Default for Limits {
    fn default() -> Self {
        Limits::STANDARD
    }
}

/// How refusals for load are waited out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// How many times one call is tried again after a 503 or a 429.
    pub attempts: u32,
    /// The first wait; each next one doubles.
    pub first_wait: Duration,
    /// The longest single wait.
    pub longest_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { attempts: 5, first_wait: Duration::from_secs(1), longest_wait: Duration::from_secs(60) }
    }
}

/// What the portal said when it refused: `error` and `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Refusal {
    pub code: String,
    pub description: String,
}

impl Refusal {
    /// A batch command's refusal (which has no HTTP status of its own) as the error the same
    /// refusal of a single call would be: a limit passes, a token or access refusal needs a
    /// person, the rest names what is wrong.
    pub fn into_error(self) -> B24Error {
        match self.code.as_str() {
            "QUERY_LIMIT_EXCEEDED" | "OPERATION_TIME_LIMIT" | "OVERLOAD_LIMIT" => B24Error::Limit(self),
            "expired_token" => B24Error::ExpiredToken(self),
            "invalid_token" => B24Error::InvalidToken(self),
            "NO_AUTH_FOUND" => B24Error::Unauthorized(self),
            "ACCESS_DENIED"
            | "insufficient_scope"
            | "WRONG_AUTH_TYPE"
            | "INVALID_CREDENTIALS"
            | "user_access_error" => B24Error::AccessDenied(self),
            code if is_not_found(code, &self.description) => B24Error::NotFound(self),
            _ => B24Error::Invalid(self),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code.is_empty(), self.description.is_empty()) {
            (false, false) => write!(f, "{}: {}", self.code, self.description),
            (false, true) => f.write_str(&self.code),
            _ => f.write_str(&self.description),
        }
    }
}

/// What went wrong calling Bitrix24.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum B24Error {
    /// 401: the portal does not know okno's credentials (`NO_AUTH_FOUND`: the webhook was
    /// deleted or its code is wrong). A person must give okno new ones.
    #[error("Bitrix24 refused the credentials (401): {0}")]
    Unauthorized(Refusal),
    /// `expired_token` that a refresh could not cure (an app without a refresh token).
    #[error("Bitrix24's access token expired: {0}")]
    ExpiredToken(Refusal),
    /// The portal or its authorization server no longer knows the application's tokens
    /// (`invalid_token`, `invalid_grant`, `invalid_client`: the app was removed, the refresh
    /// token is dead). The app must be installed or authorized again.
    #[error("Bitrix24 refused the application's tokens: {0}")]
    InvalidToken(Refusal),
    /// 403: the user or the method's context may not do this (`ACCESS_DENIED`,
    /// `insufficient_scope`, `WRONG_AUTH_TYPE`, `INVALID_CREDENTIALS`, `user_access_error`).
    #[error("Bitrix24 denied the call (403): {0}")]
    AccessDenied(Refusal),
    /// The method or the record does not exist (404, or 400 saying "not found").
    #[error("Bitrix24 has no such thing: {0}")]
    NotFound(Refusal),
    /// 400: Bitrix24 named what is wrong with the request.
    #[error("Bitrix24 refused the request (400): {0}")]
    Invalid(Refusal),
    /// A batch of more commands than [`BATCH_MAX`]: refused before sending.
    #[error("a batch holds at most {BATCH_MAX} commands, not {0}")]
    BatchTooLong(usize),
    /// `QUERY_LIMIT_EXCEEDED`, `OPERATION_TIME_LIMIT` or `OVERLOAD_LIMIT` after every retry:
    /// try again later.
    #[error("Bitrix24's limits refused the call after retries: {0}")]
    Limit(Refusal),
    /// The network or the portal failed (5xx, a timeout, an answer that is not Bitrix24's):
    /// try again later.
    #[error("Bitrix24 is unreachable or failed: {0}")]
    Unavailable(String),
    /// okno's settings for the portal cannot work (a webhook address of the wrong shape).
    #[error("the Bitrix24 settings are wrong: {0}")]
    Config(String),
}

impl B24Error {
    /// Whether trying the same call later may succeed.
    pub fn is_passing(&self) -> bool {
        matches!(self, B24Error::Limit(_) | B24Error::Unavailable(_))
    }

    /// Whether the portal refuses okno itself (a person must reconnect it).
    pub fn is_auth(&self) -> bool {
        matches!(self, B24Error::Unauthorized(_) | B24Error::ExpiredToken(_) | B24Error::InvalidToken(_))
    }
}

/// The `time` of an answer, what okno reads of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timing {
    /// Seconds the portal worked on the call.
    pub duration: f64,
    /// The method's accumulated execution time for this app or webhook.
    pub operating: f64,
    /// When the oldest minute of that accumulation drops out (unix seconds).
    pub operating_reset_at: Option<i64>,
    /// When the portal began the call, by its own clock (`date_start`, ISO 8601).
    pub date_start: Option<String>,
}

/// A method's answer: `result`, and for lists `next` and `total`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub result: Value,
    pub next: Option<u64>,
    pub total: Option<u64>,
    pub time: Timing,
}

/// A local application's OAuth credentials and its authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthApp {
    /// `https://oauth.bitrix.info` (tokens at `/oauth/token/`).
    pub server: String,
    pub client_id: String,
    pub client_secret: String,
}

/// What the authorization server gives: the pair, how long the access token lives, the portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token lives (an hour).
    #[serde(default = "hour", deserialize_with = "lenient_i64")]
    pub expires_in: i64,
    /// When it ends (unix seconds), when the server said.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub expires: Option<i64>,
    #[serde(default)]
    pub member_id: Option<String>,
    /// The portal's REST address (`https://<portal>/rest/`).
    #[serde(default)]
    pub client_endpoint: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub user_id: Option<i64>,
}

fn hour() -> i64 {
    3600
}

fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(int(&Value::deserialize(d)?).unwrap_or(3600))
}

fn lenient_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(int(&Value::deserialize(d)?))
}

/// An OAuth grant: the authorization code, or the last refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant<'a> {
    Code(&'a str),
    Refresh(&'a str),
}

/// Exchanges a grant for tokens at `{server}/oauth/token/`. A refresh token works once: the
/// answer's must be kept, the old one is dead.
pub async fn exchange(app: &OAuthApp, grant: Grant<'_>) -> Result<Tokens, B24Error> {
    let http = reqwest::Client::builder().timeout(TIMEOUT).build().map_err(|e| B24Error::Unavailable(e.to_string()))?;
    let (grant_type, key, value) = match grant {
        Grant::Code(c) => ("authorization_code", "code", c),
        Grant::Refresh(r) => ("refresh_token", "refresh_token", r),
    };
    let url = format!("{}/oauth/token/", app.server.trim_end_matches('/'));
    let query = [
        ("grant_type", grant_type),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.as_str()),
        (key, value),
    ];
    let resp = http.get(url).query(&query).send().await.map_err(|e| B24Error::Unavailable(e.to_string()))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| B24Error::Unavailable(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_str(&body).map_err(|e| B24Error::Unavailable(format!("the tokens: {e}")));
    }
    let refusal = refusal_of(&body);
    if status.is_client_error() {
        Err(B24Error::InvalidToken(refusal))
    } else {
        Err(B24Error::Unavailable(format!("OAuth: {status}: {refusal}")))
    }
}

enum Auth {
    /// `https://<portal>/rest/{user_id}/{code}/`.
    Webhook {
        base: String,
    },
    App(Box<AppAuth>),
}

struct AppAuth {
    rest_base: String,
    app: OAuthApp,
    tokens: RwLock<Tokens>,
    /// One refresh at a time: the refresh token works once.
    refreshing: tokio::sync::Mutex<()>,
    updates: watch::Sender<Tokens>,
}

/// One Bitrix24 portal, as okno's webhook or application sees it.
pub struct B24Client {
    http: reqwest::Client,
    auth: Auth,
    limiter: DefaultDirectRateLimiter,
    retry: Retry,
    auth_connector: Option<String>,
    /// The last `operating_reset_at` seen per method.
    reset_at: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for B24Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, base) = match &self.auth {
            Auth::Webhook { .. } => ("webhook", "(secret)".to_string()),
            Auth::App(a) => ("app", a.rest_base.clone()),
        };
        f.debug_struct("B24Client").field("auth", &kind).field("base", &base).finish_non_exhaustive()
    }
}

fn limiter(limits: Limits) -> DefaultDirectRateLimiter {
    let per_second = NonZeroU32::new(limits.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    // X − Y: the portal drains at whole seconds, so up to Y more can be counted than a
    // continuous drain would leave.
    let burst = NonZeroU32::new(limits.burst.saturating_sub(limits.per_second).max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst))
}

fn http() -> Result<reqwest::Client, B24Error> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| B24Error::Unavailable(format!("an HTTP client: {e}")))
}

impl B24Client {
    /// A client calling through the inbound webhook `url` (`https://<portal>/rest/{user_id}/{code}/`).
    pub fn webhook(url: &str, limits: Limits) -> Result<B24Client, B24Error> {
        let parsed = url::Url::parse(url).map_err(|e| B24Error::Config(format!("the webhook address: {e}")))?;
        let segments: Vec<&str> =
            parsed.path_segments().map(|s| s.filter(|x| !x.is_empty()).collect()).unwrap_or_default();
        let shaped = segments.len() >= 3
            && segments[segments.len() - 3] == "rest"
            && segments[segments.len() - 2].chars().all(|c| c.is_ascii_digit());
        if !shaped || !matches!(parsed.scheme(), "http" | "https") {
            return Err(B24Error::Config("a webhook address reads https://<portal>/rest/<user id>/<code>/".into()));
        }
        Ok(B24Client {
            http: http()?,
            auth: Auth::Webhook { base: format!("{}/", url.trim_end_matches('/')) },
            limiter: limiter(limits),
            retry: Retry::default(),
            auth_connector: None,
            reset_at: Mutex::new(HashMap::new()),
        })
    }

    /// A client calling as a local application at `rest_base` (`https://<portal>/rest/`) with
    /// `tokens`, refreshing them through `app`'s authorization server when they expire.
    pub fn app(rest_base: &str, app: OAuthApp, tokens: Tokens, limits: Limits) -> Result<B24Client, B24Error> {
        url::Url::parse(rest_base).map_err(|e| B24Error::Config(format!("the portal's address: {e}")))?;
        let (updates, _) = watch::channel(tokens.clone());
        Ok(B24Client {
            http: http()?,
            auth: Auth::App(Box::new(AppAuth {
                rest_base: format!("{}/", rest_base.trim_end_matches('/')),
                app,
                tokens: RwLock::new(tokens),
                refreshing: tokio::sync::Mutex::new(()),
                updates,
            })),
            limiter: limiter(limits),
            retry: Retry::default(),
            auth_connector: None,
            reset_at: Mutex::new(HashMap::new()),
        })
    }

    /// Waits out load refusals as `retry` says.
    pub fn with_retry(mut self, retry: Retry) -> B24Client {
        self.retry = retry;
        self
    }

    /// The source key okno's writes carry (`auth_connector`), so its own changes are not queued
    /// back to it as offline events; also the offline queue okno binds and reads.
    pub fn with_auth_connector(mut self, key: &str) -> B24Client {
        self.auth_connector = Some(key.to_string()).filter(|k| !k.is_empty());
        self
    }

    /// The source key, if any.
    pub fn auth_connector(&self) -> Option<&str> {
        self.auth_connector.as_deref()
    }

    /// The application's current tokens (`None` for a webhook): to be stored after a refresh.
    pub fn tokens(&self) -> Option<Tokens> {
        match &self.auth {
            Auth::App(a) => a.tokens.read().ok().map(|t| t.clone()),
            Auth::Webhook { .. } => None,
        }
    }

    /// Every pair the client moves to, as it moves (`None` for a webhook).
    pub fn token_updates(&self) -> Option<watch::Receiver<Tokens>> {
        match &self.auth {
            Auth::App(a) => Some(a.updates.subscribe()),
            Auth::Webhook { .. } => None,
        }
    }

    /// Calls with `tokens` from now on (an installation's or another process's refresh).
    pub fn set_tokens(&self, new: Tokens) {
        if let Auth::App(a) = &self.auth {
            if let Ok(mut t) = a.tokens.write() {
                *t = new.clone();
            }
            a.updates.send_replace(new);
        }
    }

    /// Refreshes the tokens unless another call already did since `used` was sent.
    async fn refresh(&self, used: &str) -> Result<(), B24Error> {
        let Auth::App(a) = &self.auth else { return Ok(()) };
        let AppAuth { app, tokens, refreshing, updates, .. } = &**a;
        let _one = refreshing.lock().await;
        let current = tokens.read().map(|t| t.clone()).map_err(|_| B24Error::Unavailable("tokens lock".into()))?;
        if current.access_token != used {
            return Ok(());
        }
        let fresh = exchange(app, Grant::Refresh(&current.refresh_token)).await?;
        if let Ok(mut t) = tokens.write() {
            *t = fresh.clone();
        }
        updates.send_replace(fresh);
        Ok(())
    }

    /// The address of a call, and the access token it carries (an app's).
    fn target(&self, method: &str) -> (String, Option<String>) {
        match &self.auth {
            Auth::Webhook { base } => (format!("{base}{method}"), None),
            Auth::App(a) => {
                let (rest_base, tokens) = (&a.rest_base, &a.tokens);
                let token = tokens.read().map(|t| t.access_token.clone()).unwrap_or_default();
                (format!("{rest_base}{method}"), Some(token))
            }
        }
    }

    /// How long to wait before attempt `n` (1-based) after a load refusal of `method`.
    fn wait(&self, method: &str, n: u32, code: &str) -> Duration {
        let backoff = self.retry.first_wait.saturating_mul(1u32 << (n - 1).min(16)).min(self.retry.longest_wait);
        if code == "OPERATION_TIME_LIMIT" {
            let reset = self.reset_at.lock().ok().and_then(|m| m.get(method).copied());
            if let Some(at) = reset {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
                if at > now {
                    return Duration::from_secs((at - now) as u64).min(self.retry.longest_wait);
                }
            }
        }
        backoff
    }

    /// One method call: waits its turn in the bucket, refreshes an expired token once, waits
    /// out load refusals, reads Bitrix24's errors. `params` go as they are — a write that
    /// should not come back as an offline event carries `auth_connector` itself.
    pub async fn call(&self, method: &str, params: Value) -> Result<Reply, B24Error> {
        self.send(method, Body { params: &params, batch: None, auth: None }).await
    }

    async fn send(&self, method: &str, body: Body<'_>) -> Result<Reply, B24Error> {
        let mut load_refusals = 0u32;
        let mut refreshed = false;
        loop {
            self.limiter.until_ready().await;
            let (url, token) = self.target(method);
            let body = Body { auth: token.as_deref(), ..body };
            let resp =
                self.http.post(url).json(&body).send().await.map_err(|e| B24Error::Unavailable(e.to_string()))?;
            let status = resp.status().as_u16();
            let text_ = resp.text().await.map_err(|e| B24Error::Unavailable(e.to_string()))?;
            if (200..300).contains(&status) {
                let reply = reply_of(&text_)?;
                if let (Some(at), Ok(mut m)) = (reply.time.operating_reset_at, self.reset_at.lock()) {
                    m.insert(method.to_string(), at);
                }
                return Ok(reply);
            }
            let refusal = refusal_of(&text_);
            match (status, refusal.code.as_str()) {
                (_, "expired_token") if !refreshed && token.is_some() => {
                    refreshed = true;
                    self.refresh(token.as_deref().unwrap_or_default()).await?;
                }
                (_, "expired_token") => return Err(B24Error::ExpiredToken(refusal)),
                (_, "invalid_token") => return Err(B24Error::InvalidToken(refusal)),
                (503, "QUERY_LIMIT_EXCEEDED") | (429, _) | (_, "OPERATION_TIME_LIMIT") => {
                    if load_refusals >= self.retry.attempts {
                        return Err(B24Error::Limit(refusal));
                    }
                    load_refusals += 1;
                    tokio::time::sleep(self.wait(method, load_refusals, &refusal.code)).await;
                }
                (_, "OVERLOAD_LIMIT") => return Err(B24Error::Limit(refusal)),
                (401, _) => return Err(B24Error::Unauthorized(refusal)),
                (403, _) => return Err(B24Error::AccessDenied(refusal)),
                (404, _) => return Err(B24Error::NotFound(refusal)),
                (400, code) if is_not_found(code, &refusal.description) => return Err(B24Error::NotFound(refusal)),
                (400, "ACCESS_DENIED") => return Err(B24Error::AccessDenied(refusal)),
                (400..=499, _) => return Err(B24Error::Invalid(refusal)),
                (s, _) => return Err(B24Error::Unavailable(format!("{s}: {refusal}"))),
            }
        }
    }

    /// Up to [`BATCH_MAX`] commands in one request (counted once by the bucket). A command's
    /// parameters may name an earlier command's answer as `$result[key][FIELD]`. With `halt`,
    /// the portal stops at the first failing command. The HTTP call fails as a whole only
    /// when the portal refuses the batch itself; each command's failure is in
    /// [`BatchReply::errors`].
    pub async fn batch(&self, commands: &[Command], halt: bool) -> Result<BatchReply, B24Error> {
        if commands.len() > BATCH_MAX {
            return Err(B24Error::BatchTooLong(commands.len()));
        }
        let mut cmd: Vec<(String, String)> = Vec::with_capacity(commands.len());
        for c in commands {
            if c.method.eq_ignore_ascii_case("batch") {
                return Err(B24Error::Invalid(Refusal {
                    code: "ERROR_BATCH_METHOD_NOT_ALLOWED".into(),
                    description: "a batch cannot hold a batch".into(),
                }));
            }
            if cmd.iter().any(|(k, _)| *k == c.key) {
                return Err(B24Error::Invalid(Refusal {
                    code: String::new(),
                    description: format!("the batch names `{}` twice", c.key),
                }));
            }
            cmd.push((c.key.clone(), c.encode()));
        }
        // The commands run in the order sent: `cmd` keeps it (a JSON map here would sort it).
        let reply = self.send("batch", Body { params: &Value::Null, batch: Some((halt, &cmd)), auth: None }).await?;
        Ok(BatchReply::read(&reply.result))
    }

    /// Adds the source key to a write's parameters.
    pub(crate) fn as_source(&self, mut params: Value) -> Value {
        if let (Some(key), Value::Object(m)) = (&self.auth_connector, &mut params) {
            m.insert("auth_connector".into(), json!(key));
        }
        params
    }
}

/// A call's body: the parameters in their order (a batch's commands in theirs), then `auth`.
#[derive(Clone, Copy)]
struct Body<'a> {
    params: &'a Value,
    batch: Option<(bool, &'a [(String, String)])>,
    auth: Option<&'a str>,
}

impl Serialize for Body<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        if let Some((halt, cmd)) = self.batch {
            m.serialize_entry("halt", &i32::from(halt))?;
            m.serialize_entry("cmd", &InOrder(cmd))?;
        } else if let Value::Object(o) = self.params {
            for (k, v) in o {
                if k != "auth" {
                    m.serialize_entry(k, v)?;
                }
            }
        } else if !self.params.is_null() {
            m.serialize_entry("params", self.params)?;
        }
        if let Some(a) = self.auth {
            m.serialize_entry("auth", a)?;
        }
        m.end()
    }
}

/// Pairs written as a JSON object in their order.
struct InOrder<'a>(&'a [(String, String)]);

impl Serialize for InOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

fn is_not_found(code: &str, description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    code == "NOT_FOUND"
        || code == "OWNER_NOT_FOUND"
        || code == "ERROR_NOT_FOUND"
        || d == "not found"
        || d.ends_with("is not found")
        || d.ends_with("not found.")
}

/// A success body read.
fn reply_of(body: &str) -> Result<Reply, B24Error> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| B24Error::Unavailable(format!("the answer is not JSON: {e}: {}", snippet(body))))?;
    if let Some(code) = v.get("error").and_then(text) {
        let description = v.get("error_description").and_then(text).unwrap_or_default();
        return Err(B24Error::Invalid(Refusal { code, description }));
    }
    let Some(result) = v.get("result").cloned() else {
        return Err(B24Error::Unavailable(format!("the answer has no result: {}", snippet(body))));
    };
    let t = v.get("time").cloned().unwrap_or(Value::Null);
    let float = |k: &str| t.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    Ok(Reply {
        result,
        next: v.get("next").and_then(int).and_then(|n| u64::try_from(n).ok()),
        total: v.get("total").and_then(int).and_then(|n| u64::try_from(n).ok()),
        time: Timing {
            duration: float("duration"),
            operating: float("operating"),
            operating_reset_at: t.get("operating_reset_at").and_then(int),
            date_start: t.get("date_start").and_then(text),
        },
    })
}

/// An error body read: `{"error","error_description"}`, else the text.
fn refusal_of(body: &str) -> Refusal {
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v.get("error").is_some() => Refusal {
            code: v.get("error").and_then(text).unwrap_or_default(),
            description: v.get("error_description").and_then(text).unwrap_or_default(),
        },
        _ => Refusal { code: String::new(), description: snippet(body) },
    }
}

fn snippet(body: &str) -> String {
    body.chars().take(200).collect()
}

/// One command of a batch: a key, a method, its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub key: String,
    pub method: String,
    pub params: Value,
}

impl Command {
    pub fn new(key: &str, method: &str, params: Value) -> Command {
        Command { key: key.to_string(), method: method.to_string(), params }
    }

    /// `method?a=1&fields[NAME]=…` as the batch's `cmd` carries it (`http_build_query`'s shape;
    /// `$result[…]` references survive it: the portal decodes before it substitutes).
    pub fn encode(&self) -> String {
        let mut f = url::form_urlencoded::Serializer::new(String::new());
        if let Value::Object(m) = &self.params {
            for (k, v) in m {
                build_query(k, v, &mut f);
            }
        }
        let query = f.finish();
        if query.is_empty() {
            self.method.clone()
        } else {
            format!("{}?{query}", self.method)
        }
    }
}

fn build_query(key: &str, v: &Value, f: &mut url::form_urlencoded::Serializer<'_, String>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| build_query(&format!("{key}[{k}]"), v, f)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| build_query(&format!("{key}[{i}]"), v, f)),
        Value::Null => {}
        Value::Bool(b) => {
            f.append_pair(key, if *b { "1" } else { "0" });
        }
        Value::Number(n) => {
            f.append_pair(key, &n.to_string());
        }
        Value::String(s) => {
            f.append_pair(key, s);
        }
    }
}

/// A batch's answer, per command key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchReply {
    pub results: BTreeMap<String, Value>,
    pub errors: BTreeMap<String, Refusal>,
    pub totals: BTreeMap<String, u64>,
    pub next: BTreeMap<String, u64>,
}

impl BatchReply {
    fn read(result: &Value) -> BatchReply {
        // An empty part comes as `[]` (PHP's empty array); a list-keyed batch as an array.
        let entries = |k: &str| -> Vec<(String, Value)> {
            match result.get(k) {
                Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                Some(Value::Array(a)) => a.iter().enumerate().map(|(i, v)| (i.to_string(), v.clone())).collect(),
                _ => Vec::new(),
            }
        };
        BatchReply {
            results: entries("result").into_iter().collect(),
            errors: entries("result_error")
                .into_iter()
                .map(|(k, v)| {
                    let r = Refusal {
                        code: v.get("error").and_then(text).unwrap_or_default(),
                        description: v.get("error_description").and_then(text).unwrap_or_default(),
                    };
                    (k, r)
                })
                .collect(),
            totals: entries("result_total")
                .into_iter()
                .filter_map(|(k, v)| Some((k, u64::try_from(int(&v)?).ok()?)))
                .collect(),
            next: entries("result_next")
                .into_iter()
                .filter_map(|(k, v)| Some((k, u64::try_from(int(&v)?).ok()?)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_encodes_as_http_build_query_does() {
        let c = Command::new(
            "c",
            "crm.contact.list",
            json!({"filter": {">ID": 5}, "select": ["ID", "PHONE"], "start": -1}),
        );
        let s = c.encode();
        assert!(s.starts_with("crm.contact.list?"), "{s}");
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(s.split_once('?').unwrap().1.as_bytes()).into_owned().collect();
        assert!(pairs.contains(&("filter[>ID]".into(), "5".into())), "{pairs:?}");
        assert!(pairs.contains(&("select[1]".into(), "PHONE".into())));
        assert_eq!(Command::new("u", "user.current", Value::Null).encode(), "user.current");
        let r = Command::new("d", "crm.deal.get", json!({"id": "$result[c][0][ID]"})).encode();
        let (_, q) = r.split_once('?').unwrap();
        assert_eq!(url::form_urlencoded::parse(q.as_bytes()).next().unwrap().1, "$result[c][0][ID]");
    }

    #[test]
    fn refusals_and_replies_are_read() {
        let r = refusal_of(r#"{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}"#);
        assert_eq!((r.code.as_str(), r.description.as_str()), ("QUERY_LIMIT_EXCEEDED", "Too many requests"));
        assert_eq!(refusal_of("<html>Bad Gateway</html>").description, "<html>Bad Gateway</html>");
        let ok = reply_of(
            r#"{"result":[1],"next":50,"total":"120","time":{"duration":0.1,"operating_reset_at":1778747792,"date_start":"2026-05-14T10:26:32+02:00"}}"#,
        )
        .unwrap();
        assert_eq!((ok.next, ok.total, ok.time.operating_reset_at), (Some(50), Some(120), Some(1_778_747_792)));
        assert_eq!(ok.time.date_start.as_deref(), Some("2026-05-14T10:26:32+02:00"));
        let refusal = |code: &str| Refusal { code: code.into(), description: "Method is blocked".into() };
        assert!(refusal("OPERATION_TIME_LIMIT").into_error().is_passing(), "a batch command over its time waits");
        assert!(refusal("expired_token").into_error().is_auth());
        assert!(matches!(refusal("ERROR_CORE").into_error(), B24Error::Invalid(_)));
        assert!(matches!(reply_of("{}"), Err(B24Error::Unavailable(_))));
        assert!(matches!(reply_of("nope"), Err(B24Error::Unavailable(_))));
        let empty =
            BatchReply::read(&json!({"result": [], "result_error": {"a": {"error": "x", "error_description": ""}},
                                               "result_total": [], "result_next": [], "result_time": []}));
        assert!(empty.results.is_empty());
        assert_eq!(empty.errors["a"].code, "x");
    }

    #[test]
    fn a_webhook_address_must_have_its_shape() {
        assert!(B24Client::webhook("https://p.bitrix24.ru/rest/1/abc/", Limits::STANDARD).is_ok());
        assert!(B24Client::webhook("https://p.bitrix24.ru/rest/1/abc", Limits::STANDARD).is_ok());
        for bad in ["https://p.bitrix24.ru/", "https://p.bitrix24.ru/rest/x/abc/", "ftp://p/rest/1/a/", "nonsense"] {
            assert!(matches!(B24Client::webhook(bad, Limits::STANDARD), Err(B24Error::Config(_))), "{bad}");
        }
    }
}
