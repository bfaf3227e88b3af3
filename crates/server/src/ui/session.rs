//! Operator sessions: a signed cookie, a CSRF token bound to it, logout, and a limit on failed
//! logins.
//!
//! The cookie is `<login hex>.<expires ms>.<nonce>.<HMAC>` signed with a key kept in the data
//! folder (`ui-session.key`), so sessions survive a restart and are valid on every process
//! that shares the data folder (attachments already require that). Logging out clears the
//! cookie and revokes its nonce in this process until it would have expired.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::Path;
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
use crate::AppState;

pub const COOKIE: &str = "okno_session";
const PRELOGIN_COOKIE: &str = "okno_prelogin";
/// How long a session lasts without logging in again.
const TTL_MS: Millis = 12 * 3600 * 1000;
/// Failed logins allowed per login name and per client address within [`WINDOW`].
const MAX_FAILS_PER_LOGIN: usize = 5;
const MAX_FAILS_PER_ADDR: usize = 20;
const WINDOW: Duration = Duration::from_secs(15 * 60);

/// The signing key and the process's memory of revoked sessions and failed logins.
pub struct Sessions {
    key: Vec<u8>,
    secure: bool,
    revoked: Mutex<HashMap<String, Millis>>,
    fails: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Sessions {
    /// Reads the key from `data_dir/ui-session.key`, creating it on first start.
    pub fn open(data_dir: &Path, secure: bool) -> okno_domain::Result<Sessions> {
        let path = data_dir.join("ui-session.key");
        let key = match std::fs::read_to_string(&path) {
            Ok(k) if k.trim().len() >= 64 => k.trim().to_string(),
            _ => {
                let k = okno_domain::ids::random_hex(32);
                write_private(&path, &k).map_err(|e| {
                    okno_domain::Error::invalid(
                        "data_dir_unusable",
                        format!("cannot write the session key `{}`: {e}", path.display()),
                    )
                })?;
                k
            }
        };
        Ok(Sessions {
            key: key.into_bytes(),
            secure,
            revoked: Mutex::new(HashMap::new()),
            fails: Mutex::new(HashMap::new()),
        })
    }

    fn sign(&self, payload: &str) -> String {
        signing::sign(&self.key, payload.as_bytes()).trim_start_matches("sha256=").to_string()
    }

    /// A new session cookie value for `login`.
    fn issue(&self, login: &str) -> String {
        let payload = format!("{}.{}.{}", hex_encode(login), now_ms() + TTL_MS, okno_domain::ids::random_hex(16));
        let sig = self.sign(&payload);
        format!("{payload}.{sig}")
    }

    /// The login and nonce of a valid, unexpired, unrevoked cookie.
    pub fn check(&self, value: &str) -> Option<(String, String)> {
        let (payload, sig) = value.rsplit_once('.')?;
        if !signing::secrets_equal(&self.sign(payload), sig) {
            return None;
        }
        let mut parts = payload.split('.');
        let login = hex_decode(parts.next()?)?;
        let expires: Millis = parts.next()?.parse().ok()?;
        let nonce = parts.next()?.to_string();
        if expires < now_ms() || self.lock_revoked().contains_key(&nonce) {
            return None;
        }
        Some((login, nonce))
    }

    /// The CSRF token of the session with `nonce`.
    pub fn csrf_for(&self, nonce: &str) -> String {
        self.sign(&format!("csrf.{nonce}"))[..32].to_string()
    }

    fn revoke(&self, nonce: &str) {
        let now = now_ms();
        let mut revoked = self.lock_revoked();
        revoked.retain(|_, exp| *exp > now);
        revoked.insert(nonce.to_string(), now + TTL_MS);
    }

    fn lock_revoked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Millis>> {
        // A panic while holding this lock leaves plain data behind; keep using it.
        self.revoked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether any of `keys` has used up its failed attempts.
    fn blocked(&self, keys: &[(String, usize)]) -> bool {
        let mut fails = self.fails.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        keys.iter().any(|(k, max)| {
            let q = fails.entry(k.clone()).or_default();
            while q.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
                q.pop_front();
            }
            q.len() >= *max
        })
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

    fn cookie(&self, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}");
        // Cookie values here are hex, digits and dots: always a valid header value.
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())
}

fn hex_encode(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
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
    nonce: String,
}

impl Session {
    pub fn role(&self) -> Role {
        self.operator.role
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
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    origin.split_once("://").is_some_and(|(_, rest)| rest == host)
}

fn forbidden_csrf(lang: Lang) -> Response {
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
        let ui = &state.ui;
        let found = cookie_value(&parts.headers, COOKIE).and_then(|v| ui.sessions.check(&v));
        let to_login = || {
            if parts.method == axum::http::Method::GET {
                Redirect::to("/login").into_response()
            } else {
                (StatusCode::UNAUTHORIZED, "log in again").into_response()
            }
        };
        let Some((login, nonce)) = found else { return Err(to_login()) };
        let operator = match state.engine.store.operator_by_login(&login).await {
            Ok(Some(op)) => op,
            Ok(None) => return Err(to_login()),
            Err(e) => return Err(crate::error::ApiError(e).into_response()),
        };
        // The language kept with the account (chosen in any browser), else this browser's.
        let lang = operator.lang.as_deref().and_then(Lang::parse).unwrap_or_else(|| Lang::of(&parts.headers));
        Ok(Session { csrf: ui.sessions.csrf_for(&nonce), lang, operator, nonce })
    }
}

/// `GET /login`
pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    if cookie_value(&headers, COOKIE).and_then(|v| state.ui.sessions.check(&v)).is_some() {
        return Redirect::to("/ui/inbox").into_response();
    }
    login_form(&state.ui, lang, StatusCode::OK, None, "")
}

fn login_form(ui: &Ui, lang: Lang, status: StatusCode, error: Option<&str>, login: &str) -> Response {
    let token = okno_domain::ids::random_hex(16);
    let html = ui.render_bare(
        "login.html",
        lang,
        json!({"csrf": token, "error": error.map(|e| super::i18n::t(lang, e)), "login": login}),
    );
    let mut resp = (status, html).into_response();
    resp.headers_mut().append(header::SET_COOKIE, ui.sessions.cookie(PRELOGIN_COOKIE, &token, 3600));
    resp
}

/// `POST /login`
pub async fn login(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
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
    let keys = [
        (format!("login:{}", login.to_lowercase()), MAX_FAILS_PER_LOGIN),
        (format!("addr:{}", addr.ip()), MAX_FAILS_PER_ADDR),
    ];
    if ui.sessions.blocked(&keys) {
        return login_form(ui, lang, StatusCode::TOO_MANY_REQUESTS, Some("too_many_logins"), &login);
    }
    let operator = match state.engine.store.operator_by_login(&login).await {
        Ok(op) => op,
        Err(e) => return crate::error::ApiError(e).into_response(),
    };
    let hash = operator.as_ref().map(|o| o.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || verify_password(hash.as_deref(), &password)).await.unwrap_or(false);
    let Some(operator) = operator.filter(|_| ok) else {
        ui.sessions.record_failure(&keys);
        return login_form(ui, lang, StatusCode::UNAUTHORIZED, Some("bad_login"), &login);
    };
    let _ = state
        .engine
        .store
        .audit(okno_store::NewAudit {
            actor: format!("operator:{}", operator.login),
            action: "operator.login".into(),
            target: operator.id.clone(),
            detail: json!({"addr": addr.ip().to_string()}),
        })
        .await;
    let mut resp = Redirect::to("/ui/inbox").into_response();
    let value = ui.sessions.issue(&operator.login);
    resp.headers_mut().append(header::SET_COOKIE, ui.sessions.cookie(COOKIE, &value, TTL_MS / 1000));
    resp.headers_mut().append(header::SET_COOKIE, ui.sessions.cookie(PRELOGIN_COOKIE, "", 0));
    resp
}

/// `POST /logout`
pub async fn logout(State(state): State<AppState>, session: Session, headers: HeaderMap, form: Form) -> Response {
    if let Some(r) = session.check_csrf(&headers, &form) {
        return r;
    }
    state.ui.sessions.revoke(&session.nonce);
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(header::SET_COOKIE, state.ui.sessions.cookie(COOKIE, "", 0));
    resp
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
