//! The HTTP side: SMS.ru at `/sms/send` and `/my/balance`, SMSC at `/sys/*.php`, Twilio at
//! `/2010-04-01/Accounts/…`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, RawForm, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::json;

use crate::world::{count_parts, Inner, Provider};
use crate::{Fault, Sent};

type Q = Query<HashMap<String, String>>;

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/my/balance", get(smsru_balance).post(smsru_balance))
        .route("/sms/send", get(smsru_send).post(smsru_send))
        .route("/sys/balance.php", get(smsc_balance).post(smsc_balance))
        .route("/sys/send.php", get(smsc_send).post(smsc_send))
        .route("/2010-04-01/Accounts/{file}", get(twilio_account))
        .route("/2010-04-01/Accounts/{sid}/Balance.json", get(twilio_balance))
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(twilio_send))
        .route("/media/{n}", get(media))
        .with_state(inner)
}

/// An MMS file, as Twilio serves `MediaUrl{N}` (public unless media auth is switched on).
async fn media(State(inner): State<Arc<Inner>>, Path(n): Path<u64>) -> Response {
    match inner.world().media.get(&n).cloned() {
        Some((mime, bytes)) => ([(header::CONTENT_TYPE, mime)], bytes).into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// Query and form fields together (both providers take GET or POST).
fn params(q: HashMap<String, String>, body: &[u8]) -> HashMap<String, String> {
    let mut p = q;
    p.extend(url::form_urlencoded::parse(body).into_owned());
    p
}

/// Why a send is refused, before it is put in the provider's words.
enum Refusal {
    TooMany,
    Server,
    Funds,
    BadNumber,
    Blacklisted,
    BadSender,
    TooLong(u32),
}

/// The checks every gateway makes, in one order: injected faults, the rate, the number, the
/// stop-list, the sender, the length, the balance; then the SMS is recorded and charged.
fn accept(
    inner: &Inner,
    account: &str,
    to: &str,
    text: &str,
    sender: Option<&str>,
    callback: Option<&str>,
    max_parts: u32,
) -> Result<Sent, Refusal> {
    let mut w = inner.world();
    if let Some(f) = w.faults.pop_front() {
        return Err(match f {
            Fault::TooManyRequests => Refusal::TooMany,
            Fault::ServerError => Refusal::Server,
            Fault::Refused => Refusal::Blacklisted,
        });
    }
    let rate = w.rate;
    let blacklisted = w.blacklist.contains(to.trim_start_matches('+'));
    let Some(a) = w.accounts.get_mut(account) else { return Err(Refusal::Server) };
    if let Some(limit) = rate {
        let now = Instant::now();
        if now.duration_since(a.window.0) >= Duration::from_secs(1) {
            a.window = (now, 0);
        }
        if a.window.1 >= limit {
            w.rate_limited += 1;
            return Err(Refusal::TooMany);
        }
        a.window.1 += 1;
    }
    let digits = to.trim_start_matches('+');
    if !(10..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::BadNumber);
    }
    if blacklisted {
        return Err(Refusal::Blacklisted);
    }
    if !a.senders.is_empty() && !sender.is_some_and(|s| a.senders.contains(s)) {
        return Err(Refusal::BadSender);
    }
    let (parts, encoding) = count_parts(text);
    if parts > max_parts {
        return Err(Refusal::TooLong(parts));
    }
    let cost = a.price * f64::from(parts);
    if a.provider != Provider::Twilio && a.balance + 1e-9 < cost {
        return Err(Refusal::Funds);
    }
    a.balance -= cost;
    let provider = a.provider;
    w.seq += 1;
    let n = w.seq;
    let id = match provider {
        Provider::Smsru => format!("{:06}-{:08}", 202_612, 10_000_000 + n),
        Provider::Smsc => format!("{}", 5_000 + n),
        Provider::Twilio => format!("SM{:032x}", 0x5a5a_0000_u64 + n),
    };
    let sent = Sent {
        provider,
        account: account.to_string(),
        id,
        to: digits.to_string(),
        sender: sender.map(str::to_string),
        text: text.to_string(),
        parts,
        encoding,
        status_callback: callback.map(str::to_string),
        at: Instant::now(),
    };
    w.sent.push(sent.clone());
    Ok(sent)
}

fn currency_of(inner: &Inner, account: &str) -> &'static str {
    inner.world().accounts.get(account).map(|a| a.currency).unwrap_or("RUB")
}

fn balance_of(inner: &Inner, account: &str) -> f64 {
    inner.world().accounts.get(account).map(|a| (a.balance * 100.0).round() / 100.0).unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// SMS.ru

fn smsru_error(code: i64, text: &str) -> serde_json::Value {
    json!({"status": "ERROR", "status_code": code, "status_text": text})
}

fn smsru_account(inner: &Inner, p: &HashMap<String, String>) -> Option<String> {
    let key = format!("smsru:{}", p.get("api_id").map(String::as_str).unwrap_or_default());
    inner.world().accounts.contains_key(&key).then_some(key)
}

/// `my/balance`: `{"status":"OK","status_code":100,"balance":…}`; an unknown api_id is 200.
async fn smsru_balance(State(inner): State<Arc<Inner>>, Query(q): Q, RawForm(body): RawForm) -> Response {
    let p = params(q, &body);
    let Some(key) = smsru_account(&inner, &p) else {
        return Json(smsru_error(200, "Неправильный api_id")).into_response();
    };
    Json(json!({"status": "OK", "status_code": 100, "balance": balance_of(&inner, &key)})).into_response()
}

/// `sms/send`: per-number results under `sms`; SMS.ru refuses more than 8 parts (205).
async fn smsru_send(State(inner): State<Arc<Inner>>, Query(q): Q, RawForm(body): RawForm) -> Response {
    let p = params(q, &body);
    let Some(key) = smsru_account(&inner, &p) else {
        return Json(smsru_error(200, "Неправильный api_id")).into_response();
    };
    let to = p.get("to").cloned().unwrap_or_default();
    let msg = p.get("msg").cloned().unwrap_or_default();
    if msg.is_empty() {
        return Json(smsru_error(203, "Нет текста сообщения")).into_response();
    }
    let one = match accept(&inner, &key, &to, &msg, p.get("from").map(String::as_str), None, 8) {
        Ok(sent) => json!({"status": "OK", "status_code": 100, "sms_id": sent.id}),
        Err(Refusal::Server) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "<html>500 Internal Server Error</html>").into_response()
        }
        Err(Refusal::TooMany) => {
            return Json(smsru_error(220, "Сервис временно недоступен, попробуйте чуть позже")).into_response()
        }
        Err(Refusal::TooLong(_)) => {
            return Json(smsru_error(205, "Сообщение слишком длинное (превышает 8 СМС)")).into_response()
        }
        Err(Refusal::Funds) => smsru_error(201, "Не хватает средств на лицевом счету"),
        Err(Refusal::BadNumber) => {
            smsru_error(202, "Неправильно указан номер телефона получателя, либо на него нет маршрута")
        }
        Err(Refusal::Blacklisted) => smsru_error(215, "Номер находится в стоп-листе SMS.ru"),
        Err(Refusal::BadSender) => smsru_error(204, "Имя отправителя не согласовано с администрацией"),
    };
    let mut sms = serde_json::Map::new();
    sms.insert(to.trim_start_matches('+').to_string(), one);
    Json(json!({"status": "OK", "status_code": 100, "sms": sms, "balance": balance_of(&inner, &key)})).into_response()
}

// ---------------------------------------------------------------------------------------------
// SMSC

fn smsc_error(code: i64, text: &str) -> Response {
    Json(json!({"error": text, "error_code": code})).into_response()
}

fn smsc_account(inner: &Inner, p: &HashMap<String, String>) -> Option<String> {
    let key = format!("smsc:{}", p.get("login").map(String::as_str).unwrap_or_default());
    let psw = p.get("psw").map(String::as_str).unwrap_or_default();
    let w = inner.world();
    w.accounts.get(&key).filter(|a| a.secret == psw).map(|_| key)
}

/// `balance.php?fmt=3`: `{"balance":"…","currency":"RUB"}`; bad login: error 2.
async fn smsc_balance(State(inner): State<Arc<Inner>>, Query(q): Q, RawForm(body): RawForm) -> Response {
    let p = params(q, &body);
    let Some(key) = smsc_account(&inner, &p) else { return smsc_error(2, "authorise error") };
    Json(json!({"balance": format!("{:.2}", balance_of(&inner, &key)), "currency": currency_of(&inner, &key)}))
        .into_response()
}

/// `send.php?fmt=3`: `{"id","cnt"}` or `{"error","error_code"}`.
async fn smsc_send(State(inner): State<Arc<Inner>>, Query(q): Q, RawForm(body): RawForm) -> Response {
    let p = params(q, &body);
    let Some(key) = smsc_account(&inner, &p) else { return smsc_error(2, "authorise error") };
    if p.get("fmt").map(String::as_str) != Some("3") {
        return (StatusCode::OK, "ERROR = 1 (parameters error: okno-sim answers fmt=3 only)").into_response();
    }
    if p.get("charset").map(String::as_str) != Some("utf-8") {
        return smsc_error(1, "parameters error (charset must be utf-8: the default is windows-1251)");
    }
    let phones = p.get("phones").cloned().unwrap_or_default();
    let mes = p.get("mes").cloned().unwrap_or_default();
    if mes.is_empty() {
        return smsc_error(1, "parameters error");
    }
    match accept(&inner, &key, &phones, &mes, p.get("sender").map(String::as_str), None, 20) {
        Ok(sent) => Json(json!({"id": sent.id.parse::<u64>().unwrap_or(0), "cnt": sent.parts})).into_response(),
        Err(Refusal::Server) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
        Err(Refusal::TooMany) => smsc_error(9, "duplicate request, wait a minute"),
        Err(Refusal::Funds) => smsc_error(3, "no money"),
        Err(Refusal::BadNumber) => smsc_error(7, "invalid number"),
        Err(Refusal::Blacklisted) => smsc_error(8, "message to the number cannot be delivered"),
        Err(Refusal::BadSender) => smsc_error(6, "message is denied (sender)"),
        Err(Refusal::TooLong(n)) => smsc_error(6, &format!("message is denied (too long: {n} parts)")),
    }
}

// ---------------------------------------------------------------------------------------------
// Twilio

fn twilio_error(status: u16, code: i64, message: &str) -> Response {
    let body = json!({"code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status});
    let mut r = (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), Json(body)).into_response();
    if status == 429 {
        r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    r
}

/// HTTP Basic `AccountSid:AuthToken`; anything else is 401 / 20003.
fn twilio_auth(inner: &Inner, headers: &HeaderMap, sid: &str) -> Result<String, Box<Response>> {
    let denied = || Box::new(twilio_error(401, 20003, "Authenticate"));
    let raw = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let decoded = raw
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(denied)?;
    let (user, token) = decoded.split_once(':').ok_or_else(denied)?;
    let key = format!("twilio:{sid}");
    let w = inner.world();
    match w.accounts.get(&key) {
        Some(a) if user == sid && a.secret == token => Ok(key),
        _ => Err(denied()),
    }
}

async fn twilio_account(State(inner): State<Arc<Inner>>, headers: HeaderMap, Path(file): Path<String>) -> Response {
    let Some(sid) = file.strip_suffix(".json") else {
        return twilio_error(404, 20404, "The requested resource was not found");
    };
    if let Err(r) = twilio_auth(&inner, &headers, sid) {
        return *r;
    }
    Json(json!({"sid": sid, "friendly_name": "okno test account", "status": "active", "type": "Full"})).into_response()
}

async fn twilio_balance(State(inner): State<Arc<Inner>>, headers: HeaderMap, Path(sid): Path<String>) -> Response {
    let key = match twilio_auth(&inner, &headers, &sid) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    Json(json!({"account_sid": sid, "balance": format!("{:.2}", balance_of(&inner, &key)), "currency": currency_of(&inner, &key)})).into_response()
}

/// `Messages.json`: 201 with the message resource; `Body` at most 1600 characters (21617).
async fn twilio_send(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    RawForm(body): RawForm,
) -> Response {
    let key = match twilio_auth(&inner, &headers, &sid) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let p = params(HashMap::new(), &body);
    let to = p.get("To").cloned().unwrap_or_default();
    let from = p.get("From").cloned().unwrap_or_default();
    let text = p.get("Body").cloned().unwrap_or_default();
    if !to.starts_with('+') {
        return twilio_error(400, 21211, &format!("The 'To' number {to} is not a valid phone number."));
    }
    if text.is_empty() {
        return twilio_error(400, 21602, "Message body is required.");
    }
    if text.chars().count() > 1600 {
        return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.");
    }
    match accept(&inner, &key, &to, &text, Some(&from), p.get("StatusCallback").map(String::as_str), u32::MAX) {
        Ok(sent) => (
            StatusCode::CREATED,
            Json(json!({
                "sid": sent.id, "account_sid": sid, "status": "queued", "to": to, "from": from, "body": text,
                "num_segments": sent.parts.to_string(), "num_media": "0", "direction": "outbound-api",
                "api_version": "2010-04-01", "price": null, "error_code": null, "error_message": null,
                "uri": format!("/2010-04-01/Accounts/{sid}/Messages/{}.json", sent.id),
            })),
        )
            .into_response(),
        Err(Refusal::Server) => twilio_error(500, 20500, "Internal Server Error"),
        Err(Refusal::TooMany) => twilio_error(429, 20429, "Too Many Requests"),
        Err(Refusal::BadNumber) => {
            twilio_error(400, 21211, &format!("The 'To' number {to} is not a valid phone number."))
        }
        Err(Refusal::Blacklisted) => twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
        Err(Refusal::BadSender) => twilio_error(
            400,
            21606,
            "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination.",
        ),
        Err(Refusal::Funds | Refusal::TooLong(_)) => twilio_error(400, 21617, "The message cannot be sent."),
    }
}
