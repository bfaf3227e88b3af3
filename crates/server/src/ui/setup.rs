//! First-run setup: a fresh install has no operators, so okno prints a one-time link
//! (`/setup?token=…`) where the first administrator chooses a login and password and is signed
//! in at once.
//!
//! ```text
//!  okno serve, no operators ──▶ setup_link(): a random secret, its SHA-256 kept for 24 h ──▶ log
//!  GET  /setup?token=S ──▶ usable? the form : "already done, sign in" / "link used or expired"
//!  POST /setup ──▶ store.complete_setup(): every link used up, the administrator created ──▶ inbox
//! ```
//!
//! Each process that starts on a database without operators adds its own link; the first
//! administrator created through any of them ends them all.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use okno_domain::time::now_ms;
use serde::Deserialize;
use serde_json::json;

use super::i18n::{t, Lang};
use super::session;
use super::Form;
use crate::AppState;

/// How long a setup link works.
const LINK_TTL_MS: i64 = 24 * 3600 * 1000;
/// Passwords are at least this long, as `okno user create` asks.
const MIN_PASSWORD: usize = 8;
const MAX_LOGIN: usize = 64;

/// A new one-time setup link when okno has no operator yet: `{base}/setup?token=…`.
pub async fn setup_link(store: &dyn okno_store::Store, base: &str) -> okno_domain::Result<Option<String>> {
    if store.has_operators().await? {
        return Ok(None);
    }
    let secret = okno_domain::ids::random_hex(32);
    store.add_setup_token(&crate::auth::token_hash(&secret), now_ms() + LINK_TTL_MS).await?;
    Ok(Some(format!("{}/setup?token={secret}", base.trim_end_matches('/'))))
}

#[derive(Debug, Default, Deserialize)]
pub struct SetupQuery {
    #[serde(default)]
    pub token: String,
}

/// The page in one of its three states: the form, setup already done, or a link that no
/// longer works.
fn page(state: &AppState, lang: Lang, status: StatusCode, ctx: serde_json::Value) -> Response {
    let mut resp = state.ui.render_bare("setup.html", lang, ctx);
    *resp.status_mut() = status;
    resp
}

async fn link_state(state: &AppState, token: &str) -> okno_domain::Result<&'static str> {
    if state.engine.store.has_operators().await? {
        return Ok("done");
    }
    if !token.is_empty() && state.engine.store.setup_token_usable(&crate::auth::token_hash(token)).await? {
        return Ok("form");
    }
    Ok("invalid")
}

/// `GET /setup?token=…`
pub async fn setup_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<SetupQuery>) -> Response {
    let lang = Lang::of(&headers);
    match link_state(&state, &q.token).await {
        Ok("form") => page(&state, lang, StatusCode::OK, json!({"state": "form", "token": q.token, "login": "admin"})),
        Ok(other) => page(&state, lang, StatusCode::OK, json!({"state": other})),
        Err(e) => crate::error::ApiError(e).into_response(),
    }
}

/// `POST /setup`: creates the first administrator and signs them in.
pub async fn setup(
    State(state): State<AppState>,
    crate::client_addr::ClientAddr(addr): crate::client_addr::ClientAddr,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let lang = Lang::of(&headers);
    if !session::same_origin(&headers) {
        return session::forbidden_csrf(lang);
    }
    let token = form.get("token").unwrap_or("").to_string();
    let login = form.get("login").unwrap_or("").trim().to_string();
    let password = form.get("password").unwrap_or("").to_string();
    let again = form.get("password2").unwrap_or("").to_string();
    let problem = if login.is_empty() || login.chars().count() > MAX_LOGIN || login.chars().any(char::is_whitespace) {
        Some("setup_bad_login")
    } else if password.chars().count() < MIN_PASSWORD {
        Some("setup_short_password")
    } else if password != again {
        Some("setup_passwords_differ")
    } else {
        None
    };
    if let Some(key) = problem {
        // The link is checked first, so a dead link is not answered with a form error.
        return match link_state(&state, &token).await {
            Ok("form") => page(
                &state,
                lang,
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"state": "form", "token": token, "login": login, "error": t(lang, key)}),
            ),
            Ok(other) => page(&state, lang, StatusCode::FORBIDDEN, json!({"state": other})),
            Err(e) => crate::error::ApiError(e).into_response(),
        };
    }
    let hash = match tokio::task::spawn_blocking(move || session::hash_password(&password)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return crate::error::ApiError(e).into_response(),
        Err(e) => return crate::error::ApiError(okno_domain::Error::internal(e.to_string())).into_response(),
    };
    let operator = match state.engine.store.complete_setup(&crate::auth::token_hash(&token), &login, &hash).await {
        Ok(op) => op,
        Err(e) if e.code == "setup_done" => return page(&state, lang, StatusCode::CONFLICT, json!({"state": "done"})),
        Err(e) if e.code == "setup_link_invalid" => {
            return page(&state, lang, StatusCode::FORBIDDEN, json!({"state": "invalid"}))
        }
        Err(e) => return crate::error::ApiError(e).into_response(),
    };
    tracing::info!(login = %operator.login, "the first administrator was created through the setup link");
    let secret = match session::start_session(&state, &operator.login, Some(addr.to_string())).await {
        Ok(s) => s,
        // Created, but no session: the login form works with the new password.
        Err(_) => return Redirect::to("/login").into_response(),
    };
    let mut resp = Redirect::to("/ui/inbox").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, state.ui.sessions.cookie(session::COOKIE, &secret, session::TTL_MS / 1000));
    resp
}
