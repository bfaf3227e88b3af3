//! The HTTP side: one handler that records the request, applies the misbehaviour mode, and
//! answers as the 1C HTTP service `hs/bot` would.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxumState};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use crate::catalogue::{product_json, report_pdf, report_xlsx, ORDERS, PHOTO_PNG, PRODUCTS, XLSX_MIME};
use crate::{BizRequest, Mode, Shared, State, Ticket, Webhook, PREFIX};

/// Largest request body read; 1C HTTP services take small JSON bodies.
const BODY_LIMIT: usize = 1024 * 1024;

/// Every path goes through one handler that reads it the way the 1C service does.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
}

fn not_found(what: &str) -> Response {
    json_response(StatusCode::NOT_FOUND, json!({"error": format!("{what} не найден")}))
}

fn file_response(mime: &str, name: &str, bytes: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, mime)
        .header(header::CONTENT_DISPOSITION, disposition)
        .body(Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn header_map(headers: &HeaderMap) -> std::collections::HashMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect()
}

async fn handle(AxumState(shared): AxumState<Arc<Shared>>, req: Request) -> Response {
    // Only requests naming the service by its own address (`127.0.0.1:PORT`): any other name
    // is a page of another site whose name was pointed at 127.0.0.1 (DNS rebinding).
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    let host = host.or_else(|| req.uri().authority().map(|a| a.as_str()));
    if !host.is_some_and(|h| h.eq_ignore_ascii_case(&shared.addr.to_string())) {
        return json_response(StatusCode::FORBIDDEN, json!({"error": "сервис отвечает только по своему адресу"}));
    }
    if let Some(rest) = req.uri().path().strip_prefix(crate::ODATA_PREFIX) {
        // The OData interface keeps its own log and answers on its own terms.
        let (method, headers) = (req.method().clone(), req.headers().clone());
        let query = req.uri().query().unwrap_or("").to_string();
        return crate::odata::handle(&shared, &method, rest, &query, &headers);
    }
    let (parts, body) = req.into_parts();
    let raw: Bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return json_response(StatusCode::PAYLOAD_TOO_LARGE, json!({"error": "тело запроса больше 1 МБ"})),
    };
    let path = parts.uri.path().strip_prefix(PREFIX).unwrap_or(parts.uri.path()).to_string();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let mut record = BizRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        query,
        body,
        headers: header_map(&parts.headers),
        status: 0,
        seq: 0,
        at: okno_domain::time::now_ms(),
    };
    // Recorded before answering: a call okno gives up on (a slow answer) is still seen.
    let (mode, seq) = {
        let mut state = shared.lock();
        while state.requests.len() >= state.kept() {
            state.requests.pop_front();
        }
        state.seq += 1;
        record.seq = state.seq;
        state.requests.push_back(record.clone());
        (state.mode, state.seq)
    };
    shared.ring();
    let response = if parts.method == Method::POST && path == "/okno" {
        // okno's own webhooks are the service's inbox, not a bot call: never misbehave there.
        take_webhook(&mut shared.lock(), &record, &raw)
    } else {
        answer(&shared, mode, &parts.method, &path, &record).await
    };
    let status = response.status().as_u16();
    if let Some(kept) = shared.lock().requests.iter_mut().rev().find(|r| r.seq == seq) {
        kept.status = status;
    }
    shared.ring();
    response
}

/// Answers a bot's call, misbehaving as `mode` says.
async fn answer(shared: &Shared, mode: Mode, method: &Method, path: &str, record: &BizRequest) -> Response {
    // The photo is a static file: served whatever the mode.
    if !path.starts_with("/photos/") {
        match mode {
            Mode::Normal => {}
            Mode::Slow(d) => tokio::time::sleep(d).await,
            Mode::Error500 => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "Ошибка при вызове метода контекста (Выполнить): Недостаточно прав",
                )
                    .into_response()
            }
            Mode::BadJson => {
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    "<html><body>Сеанс 1С завершён администратором</body></html>",
                )
                    .into_response()
            }
            Mode::WrongShape => return json_response(StatusCode::OK, json!({"result": "ok", "data": [1, 2, 3]})),
        }
    }
    route(&mut shared.lock(), method, path, record)
}

/// `POST /okno`: a signed webhook from okno. A wrong or missing signature is 401 (and kept in
/// the request log, so the demo shows the refusal); a delivery seen before is acknowledged again
/// without being recorded twice, as okno's docs ask of a receiver.
fn take_webhook(state: &mut State, r: &BizRequest, raw: &[u8]) -> Response {
    let signature = r.headers.get("x-okno-signature").map(String::as_str).unwrap_or("");
    let signed = state
        .options
        .webhook_secret
        .as_deref()
        .is_some_and(|secret| okno_domain::signing::verify(secret.as_bytes(), raw, signature));
    if !signed {
        return json_response(StatusCode::UNAUTHORIZED, json!({"error": "подпись X-Okno-Signature не сходится"}));
    }
    let delivery = r.headers.get("x-okno-delivery").cloned().unwrap_or_default();
    if !delivery.is_empty() && state.webhooks.iter().any(|w| w.delivery == delivery) {
        return json_response(StatusCode::OK, json!({"ok": true, "duplicate": true}));
    }
    while state.webhooks.len() >= state.kept() {
        state.webhooks.pop_front();
    }
    state.webhooks.push_back(Webhook {
        event: r.headers.get("x-okno-event").cloned().unwrap_or_default(),
        delivery,
        body: r.body.clone(),
        at: r.at,
    });
    json_response(StatusCode::OK, json!({"ok": true}))
}

fn next_number(g: &mut State, kind: &'static str, prefix: &str) -> String {
    let n = g.counters.entry(kind).or_insert(0);
    *n += 1;
    format!("{prefix}-{:04}", *n)
}

fn route(g: &mut State, method: &Method, path: &str, r: &BizRequest) -> Response {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let body_str = |name: &str| r.body.get(name).and_then(Value::as_str).unwrap_or("").to_string();
    let today = g.today();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["products"]) => {
            let q = r.q("q").trim().to_lowercase();
            let items: Vec<Value> = PRODUCTS
                .iter()
                .filter(|p| !q.is_empty() && p.name.to_lowercase().contains(&q))
                .map(|p| json!({"code": p.code, "name": p.name, "price": p.price}))
                .collect();
            json_response(StatusCode::OK, json!({"total": items.len(), "items": items}))
        }
        ("GET", ["products", code]) => match PRODUCTS.iter().find(|p| p.code == decode(code)) {
            Some(p) => json_response(StatusCode::OK, product_json(p, &g.base)),
            None => not_found("Товар"),
        },
        ("GET", ["photos", file]) if file.ends_with(".png") => file_response("image/png", file, PHOTO_PNG.to_vec()),
        ("POST", ["reports", "stock"]) => file_response(XLSX_MIME, "stock.xlsx", report_xlsx()),
        ("POST", ["reports", "stock_pdf"]) => {
            file_response("application/pdf", "stock.pdf", report_pdf("Stock by department"))
        }
        ("GET", ["reports", "my_sales"]) => json_response(
            StatusCode::OK,
            json!({"employee": r.q("employee"), "date": today.to_string(), "checks": 14, "total": 125400.5}),
        ),
        ("GET", ["orders", number]) => {
            let number = decode(number);
            match ORDERS.iter().find(|(n, _)| *n == number) {
                Some((n, stage)) => {
                    let subscriber = r.q("subscriber");
                    if !subscriber.is_empty() {
                        g.subscribers.insert(n.to_string(), subscriber.to_string());
                    }
                    json_response(
                        StatusCode::OK,
                        json!({"number": n, "stage": stage, "updated_at": format!("{today}T09:30:00Z")}),
                    )
                }
                None => not_found("Заказ"),
            }
        }
        ("POST", ["tickets"]) => {
            let number = next_number(g, "ticket", "HD");
            g.tickets.push(Ticket {
                number: number.clone(),
                user: body_str("user"),
                topic: body_str("topic"),
                text: body_str("text"),
                status: "Новая",
            });
            json_response(StatusCode::CREATED, json!({"number": number, "status": "Новая"}))
        }
        ("GET", ["tickets"]) => {
            let user = r.q("user");
            let items: Vec<Value> = g
                .tickets
                .iter()
                .filter(|t| t.user == user)
                .map(|t| json!({"number": t.number, "topic": t.topic, "text": t.text, "status": t.status}))
                .collect();
            json_response(StatusCode::OK, json!({"items": items}))
        }
        ("GET", ["tickets", number]) => match g.tickets.iter().find(|t| t.number == decode(number)) {
            Some(t) => json_response(
                StatusCode::OK,
                json!({"number": t.number, "topic": t.topic, "text": t.text, "status": t.status}),
            ),
            None => not_found("Заявка"),
        },
        ("POST", ["certificates"]) => {
            let number = next_number(g, "certificate", "СП");
            // Ready in two days; a date the calendar cannot hold (never in practice) falls back
            // to today rather than failing the request.
            let ready = today.checked_add(jiff::Span::new().days(2)).unwrap_or(today);
            json_response(StatusCode::CREATED, json!({"number": number, "ready": ready.to_string()}))
        }
        ("POST", ["vacations"]) => {
            let number = next_number(g, "vacation", "ОТП");
            json_response(StatusCode::CREATED, json!({"number": number}))
        }
        ("POST", ["sick_leaves"]) => {
            let number = next_number(g, "sick_leave", "БЛ");
            json_response(StatusCode::CREATED, json!({"number": number}))
        }
        _ => json_response(StatusCode::NOT_FOUND, json!({"error": format!("нет метода {method} {path}")})),
    }
}
