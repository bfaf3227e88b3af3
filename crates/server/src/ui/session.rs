//! Operator sessions: a cookie holding a random secret, the session kept in the store under
//! the secret's SHA-256, a CSRF token bound to it, logout, and a limit on failed logins.
//!
//! Every request looks its session up in the store (one indexed read, joined with the
//! operator), so a logout, a disabled account or a new password ends a session in every okno
//! process on the database at once, and nothing about sessions lives in a process's memory
//! but the failed-login counters.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use okno_domain::model::{Operator, Role};
use okno_domain::signing;
use okno_domain::time::{now_ms, Millis};
use serde_json::json;

use super::{i18n::Lang, Form, Ui};
use crate::client_addr::{ClientAddr, TrustedProxies};
use crate::AppState;

pub const COOKIE: &str = "okno_session";
const PRELOGIN_COOKIE: &str = "okno_prelogin";
/// How long a session lasts without logging in again.
pub(crate) const TTL_MS: Millis = 12 * 3600 * 1000;
/// Failed logins allowed within [`WINDOW`]: for one login from one client address, from one
/// address whatever the login, and for one login from addresses it has never signed in from
/// (so a guesser with many addresses gets no more, while its owner, at an address it signed in
/// from before, is not locked out by them).
const MAX_FAILS_PER_LOGIN_AND_ADDR: usize = 5;
const MAX_FAILS_PER_ADDR: usize = 20;
const MAX_FAILS_PER_LOGIN: usize = 20;
/// Wrong current passwords allowed on «my account» within [`WINDOW`].
const MAX_FAILS_OF_CURRENT_PASSWORD: usize = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered per login as ones it signed in from.
const KNOWN_ADDRS_PER_LOGIN: usize = 32;
/// Bytes of randomness in a session secret.
const SECRET_BYTES: usize = 32;

/// Cookie settings, the trusted proxies, and the process's memory of failed logins.
pub struct Sessions {
    secure: bool,
    /// Who may tell okno the client's address.
    pub proxies: TrustedProxies,
    fails: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Addresses each login signed in from, newest last.
    known: Mutex<HashMap<String, VecDeque<IpAddr>>>,
}

/// The limits one login attempt counts against: `(key, limit)`.
fn login_keys(login: &str, addr: IpAddr) -> [(String, usize); 3] {
    let login = login.to_lowercase();
    // One IPv6 client usually holds a whole /64: its addresses count as one.
    let addr = match addr {
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, 64).map_or(addr, |n| IpAddr::V6(n.network())),
        v4 => v4,
    };
    [
        (format!("login+addr:{login}|{addr}"), MAX_FAILS_PER_LOGIN_AND_ADDR),
        (format!("addr:{addr}"), MAX_FAILS_PER_ADDR),
        (format!("login:{login}"), MAX_FAILS_PER_LOGIN),
    ]
}

/// What the store keeps of a session secret.
pub fn session_hash(secret: &str) -> String {
    signing::sha256_hex(secret.as_bytes())
}

/// A cookie value that can be a session secret (lowercase hex of the right length): anything
/// else is refused without asking the store.
fn well_formed(secret: &str) -> bool {
    secret.len() == SECRET_BYTES * 2 && secret.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Sessions {
    pub fn new(secure: bool, proxies: TrustedProxies) -> Sessions {
        Sessions { secure, proxies, fails: Mutex::new(HashMap::new()), known: Mutex::new(HashMap::new()) }
    }

    /// The limit a login attempt from `addr` is held by, if any. The limit for the login as a
    /// whole does not hold at an address it signed in from before.
    pub(super) fn login_blocked(&self, login: &str, addr: IpAddr) -> Option<String> {
        let keys = login_keys(login, addr);
        let known = self.known_addr(login, addr);
        let applying: Vec<(String, usize)> =
            keys.into_iter().filter(|(k, _)| !(known && k.starts_with("login:"))).collect();
        self.blocked_key(&applying)
    }

    /// Counts a failed login; returns the limits this failure used up.
    pub(super) fn login_failed(&self, login: &str, addr: IpAddr) -> Vec<String> {
        let keys = login_keys(login, addr);
        self.record_failure(&keys);
        let fails = self.fails.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter().filter(|(k, max)| fails.get(k).is_some_and(|q| q.len() == *max)).map(|(k, _)| k.clone()).collect()
    }

    /// Remembers that `login` signed in from `addr`.
    fn login_succeeded(&self, login: &str, addr: IpAddr) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() > 100_000 {
            known.clear();
        }
        let q = known.entry(login.to_lowercase()).or_default();
        q.retain(|a| *a != addr);
        q.push_back(addr);
        if q.len() > KNOWN_ADDRS_PER_LOGIN {
            q.pop_front();
        }
    }

    fn known_addr(&self, login: &str, addr: IpAddr) -> bool {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.get(&login.to_lowercase()).is_some_and(|q| q.contains(&addr))
    }

    /// The CSRF token of the session with `secret`: an HMAC of the secret, so it proves the
    /// form came from a page that session opened, and it never reveals the secret.
    pub fn csrf_for(&self, secret: &str) -> String {
        signing::sign(secret.as_bytes(), b"okno-csrf").trim_start_matches("sha256=")[..32].to_string()
    }

    /// Whether any of `keys` has used up its failed attempts.
    fn blocked(&self, keys: &[(String, usize)]) -> bool {
        self.blocked_key(keys).is_some()
    }

    /// The first of `keys` that has used up its failed attempts (old ones slide out).
    fn blocked_key(&self, keys: &[(String, usize)]) -> Option<String> {
        let mut fails = self.fails.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        keys.iter()
            .find(|(k, max)| {
                let q = fails.entry(k.clone()).or_default();
                while q.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
                    q.pop_front();
                }
                q.len() >= *max
            })
            .map(|(k, _)| k.clone())
    }

    fn record_failure(&self, keys: &[(String, usize)]) {
        let mut fails = self.fails.lock().unwrap_or_else(|p| p.into_inner());
        if fails.len() > 100_000 {
            // Bounded memory under a flood of made-up logins: forget the oldest picture.
            fails.clear();
        }
        for (k, _) in keys {
            fails.entry(k.clone()).or_default().push_back(Instant::now());
        }
    }

    pub(crate) fn cookie(&self, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}");
        // Cookie values here are hex: always a valid header value.
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The operator of the request's session cookie, if it is a valid session.
pub async fn signed_in(state: &AppState, headers: &HeaderMap) -> okno_domain::Result<Option<(Operator, String)>> {
    let Some(secret) = cookie_value(headers, COOKIE).filter(|v| well_formed(v)) else { return Ok(None) };
    Ok(state.engine.store.session_operator(&session_hash(&secret)).await?.map(|op| (op, secret)))
}

/// Starts a session for `login`: records it and returns the cookie's value.
pub async fn start_session(state: &AppState, login: &str, addr: Option<String>) -> okno_domain::Result<String> {
    let secret = okno_domain::ids::random_hex(SECRET_BYTES);
    state.engine.store.create_session(&session_hash(&secret), login, now_ms() + TTL_MS, addr.as_deref()).await?;
    Ok(secret)
}

/// A cookie's value from the request headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A logged-in operator.
pub struct Session {
    pub operator: Operator,
    pub csrf: String,
    pub lang: Lang,
    /// The cookie's secret (the store knows only its hash).
    secret: String,
}

impl Session {
    pub fn role(&self) -> Role {
        self.operator.role
    }

    /// The store's key of this session.
    pub fn hash(&self) -> String {
        session_hash(&self.secret)
    }

    /// Checks a form's CSRF token (field `csrf` or header `x-csrf-token`) and the request's
    /// origin; a mismatch is a 403.
    pub fn check_csrf(&self, headers: &HeaderMap, form: &Form) -> Option<Response> {
        let given = form.get("csrf").or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
        let ok = given.is_some_and(|g| signing::secrets_equal(g, &self.csrf)) && same_origin(headers);
        (!ok).then(|| forbidden_csrf(self.lang))
    }

    /// The refusal of a form post: a bad CSRF token, or a role without `p`.
    pub fn refuse_post(
        &self,
        ui: &Ui,
        headers: &HeaderMap,
        form: &Form,
        p: okno_domain::model::Permission,
    ) -> Option<Response> {
        self.check_csrf(headers, form).or_else(|| super::refuse(ui, self, p))
    }
}

/// A cross-site `Origin` is refused even with a token.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    origin.split_once("://").is_some_and(|(_, rest)| rest == host)
}

pub(crate) fn forbidden_csrf(lang: Lang) -> Response {
    let msg = super::i18n::t(lang, "csrf_failed");
    (
        StatusCode::FORBIDDEN,
        axum::response::Html(format!("<!doctype html><meta charset=utf-8><h1>403</h1><p>{msg}</p>")),
    )
        .into_response()
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let to_login = || {
            // A page asked for by a person goes to the login form; a part of a page asked for
            // by the window's script (`x-okno-fragment`) is answered 401, so the script sends
            // the person to log in instead of pasting the login form into the list.
            if parts.method == axum::http::Method::GET && !parts.headers.contains_key("x-okno-fragment") {
                Redirect::to("/login").into_response()
            } else {
                (StatusCode::UNAUTHORIZED, "log in again").into_response()
            }
        };
        let (operator, secret) = match signed_in(state, &parts.headers).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(to_login()),
            Err(e) => return Err(crate::error::ApiError(e).into_response()),
        };
        // The language kept with the account (chosen in any browser), else this browser's.
        let lang = operator.lang.as_deref().and_then(Lang::parse).unwrap_or_else(|| Lang::of(&parts.headers));
        Ok(Session { csrf: state.ui.sessions.csrf_for(&secret), lang, operator, secret })
    }
}

/// `GET /login`
pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    if matches!(signed_in(&state, &headers).await, Ok(Some(_))) {
        return Redirect::to("/ui/inbox").into_response();
    }
    login_form(&state, lang, StatusCode::OK, None, "").await
}

async fn login_form(state: &AppState, lang: Lang, status: StatusCode, error: Option<&str>, login: &str) -> Response {
    let ui = &state.ui;
    let token = okno_domain::ids::random_hex(16);
    // A fresh install has nobody to sign in as: the page says how to make the first administrator.
    let first_run = matches!(state.engine.store.has_operators().await, Ok(false));
    let html = ui.render_bare(
        "login.html",
        lang,
        json!({"csrf": token, "error": error.map(|e| super::i18n::t(lang, e)), "login": login, "first_run": first_run}),
    );
    let mut resp = (status, html).into_response();
    resp.headers_mut().append(header::SET_COOKIE, ui.sessions.cookie(PRELOGIN_COOKIE, &token, 3600));
    resp
}

/// `POST /login`
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let ui = &state.ui;
    let lang = Lang::of(&headers);
    let pre = cookie_value(&headers, PRELOGIN_COOKIE);
    let csrf_ok =
        matches!((pre, form.get("csrf")), (Some(a), Some(b)) if signing::secrets_equal(&a, b)) && same_origin(&headers);
    if !csrf_ok {
        return forbidden_csrf(lang);
    }
    let login = form.get("login").unwrap_or("").trim().to_string();
    let password = form.get("password").unwrap_or("").to_string();
    if let Some(limit) = ui.sessions.login_blocked(&login, addr) {
        tracing::info!(login = %login, addr = %addr, limit = %limit, "a login attempt refused: too many failures");
        return login_form(&state, lang, StatusCode::TOO_MANY_REQUESTS, Some("too_many_logins"), &login).await;
    }
    // A local operator's password, or the directory's word (docs/security.md).
    let account = match crate::directory::authenticate(&state, &login, password).await {
        Ok(crate::directory::Verdict::SignIn(account)) => account,
        Ok(crate::directory::Verdict::Refused { target, reason }) => {
            login_failed(&state, &login, &target, addr).await;
            return login_form(&state, lang, StatusCode::UNAUTHORIZED, Some(reason), &login).await;
        }
        Ok(crate::directory::Verdict::Unavailable) => {
            return login_form(&state, lang, StatusCode::SERVICE_UNAVAILABLE, Some("directory_unavailable"), &login)
                .await
        }
        Err(e) => return crate::error::ApiError(e).into_response(),
    };
    // Said only to someone who knows the password.
    if account.disabled {
        return login_form(&state, lang, StatusCode::FORBIDDEN, Some("account_disabled"), &login).await;
    }
    // A code still owed (two-factor sign-in): no session yet.
    if let Some(resp) = super::two_factor::second_step(&state, &account.operator, addr).await {
        return resp;
    }
    match open_session(&state, &account.operator, addr, "password").await {
        Ok(cookie) => {
            let mut resp = Redirect::to("/ui/inbox").into_response();
            resp.headers_mut().append(header::SET_COOKIE, cookie);
            resp.headers_mut().append(header::SET_COOKIE, ui.sessions.cookie(PRELOGIN_COOKIE, "", 0));
            resp
        }
        Err(e) if e.kind == okno_domain::ErrorKind::Forbidden => {
            login_form(&state, lang, StatusCode::FORBIDDEN, Some("account_disabled"), &login).await
        }
        Err(e) => crate::error::ApiError(e).into_response(),
    }
}

/// Starts the session of an operator who proved who they are (`how`: `password`, `totp`,
/// `recovery_code`, `totp_setup`), writes `operator.login` to the audit log, and returns the
/// session cookie. A disabled operator is refused (`Forbidden`).
pub(super) async fn open_session(
    state: &AppState,
    operator: &Operator,
    addr: IpAddr,
    how: &str,
) -> okno_domain::Result<HeaderValue> {
    let secret = start_session(state, &operator.login, Some(addr.to_string())).await?;
    let _ = state
        .engine
        .store
        .audit(okno_store::NewAudit {
            actor: format!("operator:{}", operator.login),
            action: "operator.login".into(),
            target: operator.id.clone(),
            detail: json!({"addr": addr.to_string(), "by": how}),
        })
        .await;
    state.ui.sessions.login_succeeded(&operator.login, addr);
    Ok(state.ui.sessions.cookie(COOKIE, &secret, TTL_MS / 1000))
}

/// Counts a failed login and writes it, and any limit it used up, to the audit and server logs.
async fn login_failed(state: &AppState, login: &str, target: &str, addr: IpAddr) {
    let used_up = state.ui.sessions.login_failed(login, addr);
    tracing::warn!(login = %login, addr = %addr, "a failed login");
    let mut entries = vec![("operator.login_failed", json!({"login": login, "addr": addr.to_string()}))];
    for limit in used_up {
        let limit = limit.split(':').next().unwrap_or_default().to_string();
        tracing::warn!(login = %login, addr = %addr, limit = %limit, "logins locked for 15 minutes: too many failures");
        entries.push(("operator.login_locked", json!({"login": login, "addr": addr.to_string(), "limit": limit})));
    }
    for (action, detail) in entries {
        let entry = okno_store::NewAudit {
            actor: format!("address:{addr}"),
            action: action.into(),
            target: target.into(),
            detail,
        };
        if let Err(e) = state.engine.store.audit(entry).await {
            tracing::warn!(error = %e, action, "could not write the audit log");
        }
    }
}

/// `POST /logout`: ends the session in the store (so everywhere) and clears the cookie.
pub async fn logout(State(state): State<AppState>, session: Session, headers: HeaderMap, form: Form) -> Response {
    if let Some(r) = session.check_csrf(&headers, &form) {
        return r;
    }
    if let Err(e) = state.engine.store.end_session(&session.hash()).await {
        return crate::error::ApiError(e).into_response();
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(header::SET_COOKIE, state.ui.sessions.cookie(COOKIE, "", 0));
    resp
}

/// Checks the signed-in operator's current password (before they change it), under the same
/// limit of failed attempts as the login form: a stolen session cannot guess it either.
pub async fn verify_current_password(ui: &Ui, s: &Session, password: String) -> okno_domain::Result<()> {
    let keys = [(format!("password:{}", s.operator.login.to_lowercase()), MAX_FAILS_OF_CURRENT_PASSWORD)];
    let forbidden = |key: &str| {
        okno_domain::Error::new(okno_domain::ErrorKind::Forbidden, "wrong_password", super::i18n::t(s.lang, key))
    };
    if ui.sessions.blocked(&keys) {
        return Err(forbidden("too_many_logins"));
    }
    if !check_password(Some(s.operator.password_hash.clone()), password).await {
        ui.sessions.record_failure(&keys);
        return Err(forbidden("wrong_current_password"));
    }
    Ok(())
}

/// Whether `password` matches the argon2 `hash` (off the async threads: a verification takes
/// tens of milliseconds). Without a hash a dummy verification runs all the same.
pub async fn check_password(hash: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(hash.as_deref(), &password)).await.unwrap_or(false)
}

/// Checks a password against an argon2 hash. Without a hash (no such operator) a dummy
/// verification still runs, so the answer takes as long either way.
fn verify_password(hash: Option<&str>, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default());
    let parsed = PasswordHash::new(hash.unwrap_or(dummy)).or_else(|_| PasswordHash::new(dummy));
    let Ok(parsed) = parsed else { return false };
    argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && hash.is_some()
}

/// An argon2id hash of a password, as `okno user create` stores it.
pub fn hash_password(password: &str) -> okno_domain::Result<String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| okno_domain::Error::internal(format!("hashing a password: {e}")))
}
