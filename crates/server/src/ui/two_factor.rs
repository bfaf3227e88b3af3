//! Two-factor sign-in with an authenticator app (TOTP, RFC 6238: six digits, 30-second steps,
//! one step of clock drift either way), for operators who turn it on and for every operator of
//! the roles `ui.two_factor_required_for` names.
//!
//! A login whose password is right but that still owes a code gets no session: it gets a
//! challenge (a random secret in the `okno_2fa` cookie, its hash in the store, ten minutes) and
//! the code page. There a code is taken once — its step must be newer than the last accepted,
//! checked and recorded in one statement — or a recovery code, which is deleted as it is used.
//! Wrong codes count against the challenge (five end it) and against the login's failure
//! limits, and are written to the audit log. An operator of a role that requires two factors
//! and has none sets up the authenticator on that page before their first session.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use okno_domain::model::{Operator, Role};
use okno_domain::signing;
use okno_domain::time::{now_ms, Millis};
use okno_store::NewAudit;
use serde_json::json;
use totp_rs::{Algorithm, Secret, TOTP};

use super::i18n::{t, Lang};
use super::session::{cookie_value, same_origin, session_hash, Session};
use super::{Form, Ui};
use crate::client_addr::ClientAddr;
use crate::AppState;

pub const CHALLENGE_COOKIE: &str = "okno_2fa";
/// How long a login may wait for its code.
const CHALLENGE_TTL_MS: Millis = 10 * 60 * 1000;
/// Wrong codes one challenge may take before the login starts over.
const MAX_CODE_FAILURES: i64 = 5;
/// Seconds in a step, and steps of drift accepted either way.
const STEP_SECS: u64 = 30;
const SKEW_STEPS: u64 = 1;
/// Recovery codes given when two-factor sign-in is turned on.
const RECOVERY_CODES: usize = 10;

/// A new authenticator secret: 160 random bits, in base32 as apps take it.
pub fn new_secret() -> String {
    Secret::generate_secret().to_encoded().to_string()
}

fn totp(secret: &str, login: &str) -> okno_domain::Result<TOTP> {
    let bytes = Secret::Encoded(secret.to_string())
        .to_bytes()
        .map_err(|e| okno_domain::Error::internal(format!("an authenticator secret is not base32: {e:?}")))?;
    // The account name may not hold a colon in an otpauth link.
    TOTP::new(Algorithm::SHA1, 6, 0, STEP_SECS, bytes, Some("okno".into()), login.replace(':', "_"))
        .map_err(|e| okno_domain::Error::internal(format!("an authenticator secret is unusable: {e}")))
}

/// The step whose code `code` is, for `secret` at `now_secs` give or take [`SKEW_STEPS`]; none
/// for a wrong code or one that is not six digits (spaces are ignored).
pub fn code_step(secret: &str, code: &str, now_secs: u64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret, "").ok()?;
    let now = now_secs / STEP_SECS;
    (now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS)
        .rev()
        .find(|step| signing::secrets_equal(&totp.generate(step * STEP_SECS), &code))
        .and_then(|step| i64::try_from(step).ok())
}

/// The `otpauth://` link an authenticator app takes, and it drawn as a QR code (SVG).
fn enrolment_view(secret: &str, login: &str) -> okno_domain::Result<serde_json::Value> {
    let url = totp(secret, login)?.get_url();
    let qr = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| okno_domain::Error::internal(format!("drawing the QR code: {e}")))?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    // Inline in the page: the drawing without its XML declaration.
    let qr = qr.find("<svg").map_or(qr.as_str(), |i| &qr[i..]).to_string();
    // The secret in groups of four, for typing into an app by hand.
    let grouped: Vec<String> = secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    Ok(json!({"url": url, "qr": qr, "secret": grouped.join(" ")}))
}

/// New recovery codes as shown once, and their hashes as kept.
fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let h = okno_domain::ids::random_hex(5);
            format!("{}-{}", &h[..5], &h[5..])
        })
        .collect();
    let hashes = codes.iter().map(|c| recovery_hash(c)).collect();
    (codes, hashes)
}

/// A recovery code's hash, however it was typed (case, dashes, spaces).
fn recovery_hash(code: &str) -> String {
    let norm: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
    signing::sha256_hex(format!("okno-recovery:{norm}").as_bytes())
}

fn now_secs() -> u64 {
    u64::try_from(now_ms() / 1000).unwrap_or(0)
}

/// Whether operators of `role` must sign in with a code.
fn required(ui: &Ui, role: Role) -> bool {
    ui.two_factor_required.contains(&role)
}

/// After a right password: the response that asks for the second step, when the operator owes
/// one (two-factor sign-in on, or required for their role); none when the session may start.
pub async fn second_step(state: &AppState, operator: &Operator, addr: std::net::IpAddr) -> Option<Response> {
    let st = match state.engine.store.totp_state(&operator.id).await {
        Ok(st) => st,
        Err(e) => return Some(crate::error::ApiError(e).into_response()),
    };
    if !st.enabled && !required(&state.ui, operator.role) {
        return None;
    }
    let secret = okno_domain::ids::random_hex(32);
    let added = state
        .engine
        .store
        .add_login_challenge(&session_hash(&secret), &operator.id, now_ms() + CHALLENGE_TTL_MS, Some(&addr.to_string()))
        .await;
    if let Err(e) = added {
        return Some(crate::error::ApiError(e).into_response());
    }
    let mut resp = Redirect::to("/login/code").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, state.ui.sessions.cookie(CHALLENGE_COOKIE, &secret, CHALLENGE_TTL_MS / 1000));
    Some(resp)
}

/// The challenge of this browser, if it has a live one.
async fn challenge(state: &AppState, headers: &HeaderMap) -> Option<(String, okno_store::LoginChallenge)> {
    let secret = cookie_value(headers, CHALLENGE_COOKIE).filter(|v| v.len() == 64)?;
    let found = state.engine.store.login_challenge(&session_hash(&secret)).await.ok()??;
    Some((secret, found))
}

/// The code page: a code, or the authenticator's setup when the operator has none yet.
async fn code_page(
    state: &AppState,
    lang: Lang,
    secret: &str,
    operator: &Operator,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let st = match state.engine.store.totp_state(&operator.id).await {
        Ok(st) => st,
        Err(e) => return crate::error::ApiError(e).into_response(),
    };
    let mut setup = serde_json::Value::Null;
    if !st.enabled {
        // Setting up: the same authenticator secret until it is confirmed, so a reload does
        // not invalidate what the app has scanned.
        let pending = match st.secret {
            Some(s) => s,
            None => {
                let s = new_secret();
                if let Err(e) = state.engine.store.begin_totp(&operator.id, &s).await {
                    return crate::error::ApiError(e).into_response();
                }
                s
            }
        };
        setup = match enrolment_view(&pending, &operator.login) {
            Ok(v) => v,
            Err(e) => return crate::error::ApiError(e).into_response(),
        };
    }
    let html = state.ui.render_bare(
        "login_code.html",
        lang,
        json!({
            "csrf": state.ui.sessions.csrf_for(secret), "login": operator.login, "setup": setup,
            "error": error.map(|e| t(lang, e)),
        }),
    );
    (status, html).into_response()
}

/// `GET /login/code`
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    match challenge(&state, &headers).await {
        Some((secret, c)) => code_page(&state, lang, &secret, &c.operator, StatusCode::OK, None).await,
        None => Redirect::to("/login").into_response(),
    }
}

/// `POST /login/code`: `code` — six digits from the app, or a recovery code.
pub async fn submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let lang = Lang::of(&headers);
    let Some((secret, c)) = challenge(&state, &headers).await else {
        return Redirect::to("/login").into_response();
    };
    let csrf_ok = form.get("csrf").is_some_and(|g| signing::secrets_equal(g, &state.ui.sessions.csrf_for(&secret)))
        && same_origin(&headers);
    if !csrf_ok {
        return super::session::forbidden_csrf(lang);
    }
    let op = c.operator;
    let hash = session_hash(&secret);
    if state.ui.sessions.login_blocked(&op.login, addr).is_some() {
        let _ = state.engine.store.end_login_challenge(&hash).await;
        return Redirect::to("/login").into_response();
    }
    let code = form.get("code").unwrap_or("").trim().to_string();
    let st = match state.engine.store.totp_state(&op.id).await {
        Ok(st) => st,
        Err(e) => return crate::error::ApiError(e).into_response(),
    };
    let Some(totp_secret) = st.secret.clone() else {
        // Reset meanwhile by an administrator: start over.
        let _ = state.engine.store.end_login_challenge(&hash).await;
        return Redirect::to("/login").into_response();
    };
    let accepted = match code_step(&totp_secret, &code, now_secs()) {
        Some(step) if st.enabled => {
            state.engine.store.take_totp_step(&op.id, step).await.map(|ok| ok.then_some("totp"))
        }
        Some(step) => {
            // The first code of an authenticator being set up: it is on from now.
            let (codes, hashes) = new_recovery_codes();
            let actor = format!("operator:{}", op.login);
            match state.engine.store.enable_totp(&op.id, step, &hashes, &actor).await {
                Ok(()) => {
                    let _ = state.engine.store.end_login_challenge(&hash).await;
                    return finish(&state, lang, &op, addr, "totp_setup", Some(codes)).await;
                }
                Err(e) => Err(e),
            }
        }
        None if st.enabled && !code.is_empty() => state
            .engine
            .store
            .take_recovery_code(&op.id, &recovery_hash(&code))
            .await
            .map(|ok| ok.then_some("recovery_code")),
        None => Ok(None),
    };
    match accepted {
        Ok(Some(how)) => {
            let _ = state.engine.store.end_login_challenge(&hash).await;
            finish(&state, lang, &op, addr, how, None).await
        }
        Ok(None) => {
            let failures = state.engine.store.challenge_failed(&hash).await.unwrap_or(i64::MAX);
            code_failed(&state, &op, addr, failures).await;
            if failures >= MAX_CODE_FAILURES {
                let _ = state.engine.store.end_login_challenge(&hash).await;
                let mut resp = Redirect::to("/login").into_response();
                resp.headers_mut().append(header::SET_COOKIE, state.ui.sessions.cookie(CHALLENGE_COOKIE, "", 0));
                return resp;
            }
            code_page(&state, lang, &secret, &op, StatusCode::UNAUTHORIZED, Some("bad_code")).await
        }
        Err(e) => crate::error::ApiError(e).into_response(),
    }
}

/// A wrong code: counted against the login's limits, and in the audit and server logs.
async fn code_failed(state: &AppState, op: &Operator, addr: std::net::IpAddr, failures: i64) {
    state.ui.sessions.login_failed(&op.login, addr);
    tracing::warn!(login = %op.login, addr = %addr, failures, "a wrong sign-in code");
    let entry = NewAudit {
        actor: format!("address:{addr}"),
        action: "operator.login_code_failed".into(),
        target: op.id.clone(),
        detail: json!({"login": op.login, "addr": addr.to_string(), "failures": failures}),
    };
    if let Err(e) = state.engine.store.audit(entry).await {
        tracing::warn!(error = %e, "could not write the audit log");
    }
}

/// Starts the session of a login that gave its code; right after an authenticator was set up,
/// the page shows the recovery codes once before the inbox.
async fn finish(
    state: &AppState,
    lang: Lang,
    op: &Operator,
    addr: std::net::IpAddr,
    how: &str,
    recovery: Option<Vec<String>>,
) -> Response {
    let mut resp = match recovery {
        None => Redirect::to("/ui/inbox").into_response(),
        Some(codes) => {
            let html = state.ui.render_bare("login_code.html", lang, json!({"login": op.login, "recovery": codes}));
            html.into_response()
        }
    };
    match super::session::open_session(state, op, addr, how).await {
        Ok(cookie) => {
            resp.headers_mut().append(header::SET_COOKIE, cookie);
            resp.headers_mut().append(header::SET_COOKIE, state.ui.sessions.cookie(CHALLENGE_COOKIE, "", 0));
            resp
        }
        Err(e) if e.kind == okno_domain::ErrorKind::Forbidden => Redirect::to("/login").into_response(),
        Err(e) => crate::error::ApiError(e).into_response(),
    }
}

// «My account»: turning two-factor sign-in on and off.

/// What the account page shows of two-factor sign-in.
pub async fn account_view(state: &AppState, s: &Session) -> okno_domain::Result<serde_json::Value> {
    let st = state.engine.store.totp_state(&s.operator.id).await?;
    let setup = match (&st.secret, st.enabled) {
        (Some(secret), false) => enrolment_view(secret, &s.operator.login)?,
        _ => serde_json::Value::Null,
    };
    Ok(json!({
        "enabled": st.enabled, "setup": setup, "recovery_left": st.recovery_left,
        "required": required(&state.ui, s.operator.role),
    }))
}

/// `POST /ui/account/two-factor`: `action` = `begin` (show a new authenticator to scan),
/// `confirm` (its first `code`: on, with recovery codes shown once), `cancel` (drop the one
/// being set up) or `off` (needs the `current` password and a `code`; refused where the role
/// requires two factors).
pub async fn change(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    if let Some(r) = s.check_csrf(&headers, &form) {
        return r;
    }
    let lang = s.lang;
    let actor = format!("operator:{}", s.operator.login);
    let result: okno_domain::Result<Option<Vec<String>>> = async {
        let store = &state.engine.store;
        match form.get("action").unwrap_or("") {
            "begin" => store.begin_totp(&s.operator.id, &new_secret()).await.map(|()| None),
            "cancel" => {
                let st = store.totp_state(&s.operator.id).await?;
                if !st.enabled {
                    store.reset_totp(&s.operator.login, &actor).await?;
                }
                Ok(None)
            }
            "confirm" => {
                let st = store.totp_state(&s.operator.id).await?;
                let secret = st.secret.filter(|_| !st.enabled).ok_or_else(|| {
                    okno_domain::Error::conflict("totp_not_started", t(lang, "two_factor_not_started"))
                })?;
                let step = code_step(&secret, form.get("code").unwrap_or(""), now_secs())
                    .ok_or_else(|| okno_domain::Error::invalid("bad_code", t(lang, "bad_code")))?;
                let (codes, hashes) = new_recovery_codes();
                store.enable_totp(&s.operator.id, step, &hashes, &actor).await?;
                Ok(Some(codes))
            }
            "off" => {
                if required(&state.ui, s.operator.role) {
                    return Err(okno_domain::Error::new(
                        okno_domain::ErrorKind::Forbidden,
                        "two_factor_required",
                        t(lang, "two_factor_required"),
                    ));
                }
                super::session::verify_current_password(&state.ui, &s, form.get("current").unwrap_or("").into())
                    .await?;
                let st = store.totp_state(&s.operator.id).await?;
                let code = form.get("code").unwrap_or("");
                let step = st.secret.as_deref().and_then(|secret| code_step(secret, code, now_secs()));
                let ok = match step {
                    Some(step) => store.take_totp_step(&s.operator.id, step).await?,
                    None => {
                        !code.trim().is_empty()
                            && store.take_recovery_code(&s.operator.id, &recovery_hash(code)).await?
                    }
                };
                if !ok {
                    return Err(okno_domain::Error::invalid("bad_code", t(lang, "bad_code")));
                }
                store.reset_totp(&s.operator.login, &actor).await?;
                Ok(None)
            }
            other => Err(okno_domain::Error::invalid("invalid_action", format!("no action `{other}`"))),
        }
    }
    .await;
    match result {
        Ok(None) => Redirect::to("/ui/account#two-factor").into_response(),
        Ok(Some(codes)) => super::account::render_with_codes(&state, &s, codes).await,
        Err(e) => {
            let mut resp = super::account::render_error(&state, &s, e).await;
            if resp.status() == StatusCode::OK {
                *resp.status_mut() = StatusCode::BAD_REQUEST;
            }
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B: the SHA-1 secret "12345678901234567890", eight digits there; the
    // last six of each are what a six-digit authenticator shows.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn codes_are_those_of_rfc_6238_and_a_step_of_drift_either_way_is_accepted() {
        assert_eq!(code_step(RFC_SECRET, "287082", 59), Some(1));
        assert_eq!(code_step(RFC_SECRET, "081804", 1_111_111_109), Some(37_037_036));
        assert_eq!(code_step(RFC_SECRET, "050471", 1_111_111_111), Some(37_037_037));
        assert_eq!(code_step(RFC_SECRET, "005924", 1_234_567_890), Some(41_152_263));
        assert_eq!(code_step(RFC_SECRET, "279037", 2_000_000_000), Some(66_666_666));
        // One step early or late still counts, two do not.
        assert_eq!(code_step(RFC_SECRET, "005924", 1_234_567_890 + 30), Some(41_152_263));
        assert_eq!(code_step(RFC_SECRET, "005924", 1_234_567_890 - 30), Some(41_152_263));
        assert_eq!(code_step(RFC_SECRET, "005924", 1_234_567_890 + 60), None);
        assert_eq!(code_step(RFC_SECRET, " 005 924 ", 1_234_567_890), Some(41_152_263));
    }

    #[test]
    fn anything_but_six_digits_is_no_code() {
        for bad in ["", "00592", "0059240", "00592a", "٠٠٥٩٢٤", "005924\0"] {
            assert_eq!(code_step(RFC_SECRET, bad, 1_234_567_890), None, "{bad:?}");
        }
    }

    #[test]
    fn a_new_secret_is_160_bits_and_gives_an_otpauth_link_and_a_qr_code() {
        let s = new_secret();
        assert_eq!(Secret::Encoded(s.clone()).to_bytes().unwrap().len(), 20);
        assert_ne!(s, new_secret());
        let v = enrolment_view(&s, "anna:ivanova").unwrap();
        let url = v["url"].as_str().unwrap();
        assert!(url.starts_with("otpauth://totp/okno:anna_ivanova?"), "{url}");
        assert!(url.contains(&format!("secret={s}")), "{url}");
        assert!(v["qr"].as_str().unwrap().starts_with("<svg"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_match_however_typed() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = hashes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let c = &codes[0];
        assert_eq!(recovery_hash(&c.to_uppercase()), hashes[0]);
        assert_eq!(recovery_hash(&c.replace('-', " ")), hashes[0]);
        assert_ne!(recovery_hash(&codes[1]), hashes[0]);
    }
}
