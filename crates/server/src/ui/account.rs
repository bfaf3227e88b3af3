//! "My account": every operator sees their login and role and changes their own password,
//! which needs the current one. A new password ends the operator's other sessions (other
//! browsers, other okno processes); this one stays signed in. Two-factor sign-in is turned on
//! and off here too (`two_factor.rs`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use okno_store::AccountChange;
use serde::Deserialize;
use serde_json::json;

use super::{Form, Session};
use crate::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct AccountQuery {
    /// `1` after a password change.
    pub changed: Option<String>,
}

/// `GET /ui/account`
pub async fn page(
    State(state): State<AppState>,
    s: Session,
    axum::extract::Query(q): axum::extract::Query<AccountQuery>,
) -> Response {
    render(&state, &s, None, q.changed.is_some()).await
}

async fn render(state: &AppState, s: &Session, error: Option<okno_domain::Error>, changed: bool) -> Response {
    render_page(state, s, error, changed, None).await
}

/// The page after a request that failed with `error`.
pub(super) async fn render_error(state: &AppState, s: &Session, error: okno_domain::Error) -> Response {
    render_page(state, s, Some(error), false, None).await
}

/// The page right after two-factor sign-in was turned on: its recovery codes, shown this once.
pub(super) async fn render_with_codes(state: &AppState, s: &Session, codes: Vec<String>) -> Response {
    render_page(state, s, None, false, Some(codes)).await
}

async fn render_page(
    state: &AppState,
    s: &Session,
    error: Option<okno_domain::Error>,
    changed: bool,
    recovery: Option<Vec<String>>,
) -> Response {
    let sessions = match state.engine.store.operator_account(&s.operator.login).await {
        Ok(a) => a.map_or(0, |a| a.sessions),
        Err(e) => return super::error_page(&state.ui, s, e),
    };
    let two_factor = match super::two_factor::account_view(state, s).await {
        Ok(v) => v,
        Err(e) => return super::error_page(&state.ui, s, e),
    };
    let status = error.as_ref().map(|e| crate::error::status_of(e.kind));
    let mut resp = state.ui.render(
        "account.html",
        s,
        json!({
            "title": super::i18n::t(s.lang, "my_account"), "nav": "account",
            "role": s.operator.role.as_str(), "sessions": sessions, "changed": changed,
            "error": error.map(|e| e.message), "two_factor": two_factor, "recovery": recovery,
        }),
    );
    if let Some(st) = status {
        *resp.status_mut() = st;
    }
    resp
}

/// `POST /ui/account/password`: `current`, `password`, `repeat`.
pub async fn change_password(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    if let Some(r) = s.check_csrf(&headers, &form) {
        return r;
    }
    let lang = s.lang;
    let result = async {
        let new = form.get("password").unwrap_or("");
        if form.get("repeat").unwrap_or("") != new {
            return Err(okno_domain::Error::invalid("password_mismatch", super::i18n::t(lang, "password_mismatch")));
        }
        let current = form.get("current").unwrap_or("").to_string();
        super::session::verify_current_password(&state.ui, &s, current).await?;
        let hash = super::admin::new_password_hash(new).await?;
        let actor = format!("operator:{}", s.operator.login);
        state
            .engine
            .store
            .change_operator(&s.operator.login, AccountChange::Password(hash), &actor, Some(&s.hash()))
            .await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/ui/account?changed=1").into_response(),
        Err(e) => {
            let mut resp = render(&state, &s, Some(e), false).await;
            if resp.status() == StatusCode::OK {
                *resp.status_mut() = StatusCode::BAD_REQUEST;
            }
            resp
        }
    }
}
