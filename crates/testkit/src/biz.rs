//! A sample business system — what a 1C HTTP service answering okno's bots looks like: a real
//! HTTP server on 127.0.0.1 with products, a stock report, orders, support tickets and HR
//! requests, that records every request it gets and can be told to misbehave (answer slowly,
//! fail with 500, answer something that is not the expected JSON).
//!
//! The example bots in `examples/bots/` call `http://1c.local/hs/bot`; a test replaces that
//! string with [`BizSim::url`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// The base URL the example bot files use; tests substitute [`BizSim::url`] for it.
pub const EXAMPLE_BASE_URL: &str = "http://1c.local/hs/bot";

/// The path prefix the sample service lives under, as a 1C HTTP service does.
const PREFIX: &str = "/hs/bot";

/// How the service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Correct answers.
    Normal,
    /// Correct answers, after this delay.
    Slow(Duration),
    /// 500 with a 1C-style error text to everything.
    Error500,
    /// 200 with a body that is not JSON at all (an HTML error page labelled as JSON).
    BadJson,
    /// 200 with valid JSON of an unexpected shape (none of the fields the bots use).
    WrongShape,
}

/// One request the service got.
#[derive(Debug, Clone)]
pub struct BizRequest {
    pub method: String,
    /// The path under the service's base URL, e.g. `/products` or `/orders/100421`.
    pub path: String,
    /// The decoded query parameters.
    pub query: BTreeMap<String, String>,
    /// The JSON body (`Value::Null` when there was none or it was not JSON).
    pub body: Value,
    /// Request headers, names lowercased.
    pub headers: HashMap<String, String>,
}

impl BizRequest {
    /// A query parameter, or "".
    pub fn q(&self, name: &str) -> &str {
        self.query.get(name).map(String::as_str).unwrap_or("")
    }
}

/// A product of the sample catalogue.
#[derive(Debug, Clone)]
pub struct Product {
    pub code: &'static str,
    pub name: &'static str,
    pub price: i64,
}

/// The catalogue, in the order searches return it. Seven drills ("дрель"), so a list of five
/// per page has two pages.
pub const PRODUCTS: &[Product] = &[
    Product { code: "DR-001", name: "Дрель ударная Bosch PSB 500", price: 5490 },
    Product { code: "DR-002", name: "Дрель-шуруповёрт Makita DF333", price: 8990 },
    Product { code: "DR-003", name: "Дрель аккумуляторная Интерскол ДА-12", price: 4350 },
    Product { code: "DR-004", name: "Дрель ударная Зубр ДУ-750", price: 3190 },
    Product { code: "DR-005", name: "Дрель безударная Metabo BE 650", price: 7800 },
    Product { code: "DR-006", name: "Дрель-миксер Ресанта ДМ-1200", price: 6250 },
    Product { code: "DR-007", name: "Дрель ударная DeWalt DWD024", price: 9900 },
    Product { code: "PF-001", name: "Перфоратор Bosch GBH 2-26", price: 15990 },
    Product { code: "SH-001", name: "Шуруповёрт Makita 6281DWPE", price: 11200 },
    Product { code: "UG-001", name: "Болгарка (УШМ) Интерскол 125/900", price: 3890 },
    Product { code: "LB-001", name: "Лобзик электрический Зубр Л-570", price: 2990 },
    Product { code: "SV-008", name: "Сверло по металлу 8 мм", price: 120 },
    Product { code: "SV-010", name: "Сверло по бетону 10 мм", price: 180 },
    Product { code: "BT-032", name: "Набор бит 32 шт.", price: 690 },
    Product { code: "LU-001", name: "Лазерный уровень ADA Cube", price: 4590 },
];

/// Orders the service knows: number and stage.
pub const ORDERS: &[(&str, &str)] =
    &[("100421", "В производстве"), ("100422", "Готов к выдаче"), ("100423", "Принят в работу")];

/// A 1×1 PNG, the product photo the service serves.
pub const PHOTO_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xdf, 0xc0, 0x00, 0x00, 0x04, 0x01, 0x01, 0x80, 0xc5, 0x2a, 0x18, 0x5d,
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The MIME type of the Excel report.
pub const XLSX_MIME: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

#[derive(Debug, Clone)]
struct Ticket {
    number: String,
    user: String,
    topic: String,
    text: String,
    status: &'static str,
}

struct Inner {
    base: String,
    mode: Mode,
    requests: Vec<BizRequest>,
    /// Order number → the okno contact id that last asked about it.
    subscribers: HashMap<String, String>,
    tickets: Vec<Ticket>,
    /// Numbers handed out per kind of request.
    counters: HashMap<&'static str, u32>,
}

/// The running sample business system; cheap to clone.
#[derive(Clone)]
pub struct BizSim {
    url: String,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for BizSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BizSim").field("url", &self.url).finish()
    }
}

impl BizSim {
    /// Starts on 127.0.0.1:0.
    pub async fn start() -> BizSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("biz-sim: binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("biz-sim: local address");
        let url = format!("http://{addr}{PREFIX}");
        let inner = Arc::new(Mutex::new(Inner {
            base: url.clone(),
            mode: Mode::Normal,
            requests: Vec::new(),
            subscribers: HashMap::new(),
            tickets: Vec::new(),
            counters: HashMap::new(),
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        BizSim { url, inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The base URL, e.g. `http://127.0.0.1:PORT/hs/bot` — what replaces [`EXAMPLE_BASE_URL`].
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A bot definition with the example base URL replaced by this service's.
    pub fn bind(&self, definition: &str) -> String {
        definition.replace(EXAMPLE_BASE_URL, &self.url)
    }

    /// How the following requests are answered.
    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<BizRequest> {
        self.lock().requests.clone()
    }

    /// The requests with this method (case-insensitive) and exact path.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<BizRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
            .cloned()
            .collect()
    }

    /// Waits until at least `n` requests with this method and path arrived; panics with
    /// everything received after `secs`.
    pub async fn wait_requests(&self, method: &str, path: &str, n: usize, secs: u64) -> Vec<BizRequest> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.requests_to(method, path);
            if got.len() >= n {
                return got;
            }
            if tokio::time::Instant::now() >= deadline {
                let all: Vec<String> = self.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
                panic!(
                    "biz-sim: expected {n} × {method} {path} within {secs}s, got {}; all requests: {all:?}",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The okno contact id that last looked up this order (sent as `?subscriber=`).
    pub fn subscriber(&self, order: &str) -> Option<String> {
        self.lock().subscribers.get(order).cloned()
    }

    /// The tickets of a user as (number, topic, text).
    pub fn tickets_of(&self, user: &str) -> Vec<(String, String, String)> {
        self.lock()
            .tickets
            .iter()
            .filter(|t| t.user == user)
            .map(|t| (t.number.clone(), t.topic.clone(), t.text.clone()))
            .collect()
    }
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

/// A small valid one-page PDF with an ASCII line of text.
pub fn report_pdf(line: &str) -> Vec<u8> {
    let stream = format!("BT /F1 14 Tf 40 780 Td ({line}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

/// Bytes that look like an XLSX (a ZIP local file header and a sheet name); enough for the
/// bots, which pass the file on without opening it.
pub fn report_xlsx() -> Vec<u8> {
    let mut out = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    out.extend_from_slice(
        b"xl/worksheets/sheet1.xml <sheetData><row><c t=\"inlineStr\"><is><t>Stock</t></is></c></row>",
    );
    out
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn product_json(p: &Product, base: &str) -> Value {
    let n = p.code.bytes().map(u64::from).sum::<u64>();
    json!({
        "code": p.code,
        "name": p.name,
        "price": p.price,
        "unit": "шт",
        "properties": [
            {"name": "Артикул", "value": p.code},
            {"name": "Гарантия", "value": "12 мес."},
            {"name": "Страна", "value": if p.name.contains("Интерскол") || p.name.contains("Зубр") { "Россия" } else { "Китай" }},
        ],
        "stock": [
            {"store": "Магазин на Ленина", "qty": n % 7},
            {"store": "Магазин на Мира", "qty": n % 5 + 1},
            {"store": "Центральный склад", "qty": n % 40 + 10},
        ],
        "prices": [
            {"point": "Розница", "price": p.price},
            {"point": "Опт", "price": p.price * 9 / 10},
        ],
        "photo_url": format!("{base}/photos/{}.png", p.code),
    })
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let raw: Bytes = axum::body::to_bytes(body, 1024 * 1024).await.unwrap_or_default();
    let path = parts.uri.path().strip_prefix(PREFIX).unwrap_or(parts.uri.path()).to_string();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let record = BizRequest { method: parts.method.to_string(), path: path.clone(), query, body, headers };
    let mode = {
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        g.requests.push(record.clone());
        g.mode
    };
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
    let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
    route(&mut g, &parts.method, &path, &record)
}

fn next_number(g: &mut Inner, kind: &'static str, prefix: &str) -> String {
    let n = g.counters.entry(kind).or_insert(0);
    *n += 1;
    format!("{prefix}-{:04}", *n)
}

fn route(g: &mut Inner, method: &Method, path: &str, r: &BizRequest) -> Response {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let body_str = |name: &str| r.body.get(name).and_then(Value::as_str).unwrap_or("").to_string();
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
            json!({"employee": r.q("employee"), "date": "2026-07-01", "checks": 14, "total": 125400.5}),
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
                        json!({"number": n, "stage": stage, "updated_at": "2026-07-01T09:30:00Z"}),
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
            json_response(StatusCode::CREATED, json!({"number": number, "ready": "2026-07-03"}))
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(url: &str) -> reqwest::Response {
        reqwest::get(url).await.unwrap()
    }

    #[tokio::test]
    async fn products_are_found_by_part_of_the_name_and_have_cards_with_photos() {
        let biz = BizSim::start().await;
        let found: Value =
            get(&format!("{}/products?q=%D0%94%D0%A0%D0%95%D0%9B%D0%AC", biz.url())).await.json().await.unwrap();
        assert_eq!(found["total"], 7, "«ДРЕЛЬ» finds the drills whatever the case: {found}");
        assert_eq!(found["items"][0]["name"], "Дрель ударная Bosch PSB 500");
        let none: Value = get(&format!("{}/products?q=xyz", biz.url())).await.json().await.unwrap();
        assert_eq!(none["items"].as_array().unwrap().len(), 0);

        let card: Value = get(&format!("{}/products/DR-002", biz.url())).await.json().await.unwrap();
        assert_eq!(card["name"], "Дрель-шуруповёрт Makita DF333");
        assert_eq!(card["stock"].as_array().unwrap().len(), 3);
        assert_eq!(card["prices"][1]["price"], 8091);
        let photo = get(card["photo_url"].as_str().unwrap()).await;
        assert_eq!(photo.headers()["content-type"], "image/png");
        assert_eq!(&photo.bytes().await.unwrap()[..], PHOTO_PNG);
        assert_eq!(get(&format!("{}/products/NOPE", biz.url())).await.status(), 404);

        let r = &biz.requests_to("GET", "/products")[0];
        assert_eq!(r.q("q"), "ДРЕЛЬ");
        assert_eq!(biz.requests().len(), 5);
    }

    #[tokio::test]
    async fn orders_remember_who_asked_and_unknown_numbers_are_404() {
        let biz = BizSim::start().await;
        let o: Value = get(&format!("{}/orders/100421?subscriber=c-1", biz.url())).await.json().await.unwrap();
        assert_eq!(o["stage"], "В производстве");
        assert_eq!(biz.subscriber("100421").as_deref(), Some("c-1"));
        assert_eq!(get(&format!("{}/orders/999999", biz.url())).await.status(), 404);
        assert_eq!(biz.subscriber("999999"), None);
    }

    #[tokio::test]
    async fn submissions_get_numbers_and_tickets_are_listed_per_user() {
        let biz = BizSim::start().await;
        let http = reqwest::Client::new();
        let post = |path: &str, body: Value| {
            let req = http.post(format!("{}{path}", biz.url())).json(&body);
            async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        assert_eq!(
            post("/tickets", json!({"user": "emp-1", "topic": "Принтер", "text": "Не печатает"})).await["number"],
            "HD-0001"
        );
        assert_eq!(
            post("/tickets", json!({"user": "emp-2", "topic": "1С", "text": "Ошибка"})).await["number"],
            "HD-0002"
        );
        let mine: Value = get(&format!("{}/tickets?user=emp-1", biz.url())).await.json().await.unwrap();
        assert_eq!(mine["items"].as_array().unwrap().len(), 1);
        assert_eq!(mine["items"][0]["topic"], "Принтер");
        let one: Value = get(&format!("{}/tickets/HD-0002", biz.url())).await.json().await.unwrap();
        assert_eq!(one["text"], "Ошибка");
        assert_eq!(get(&format!("{}/tickets/HD-0404", biz.url())).await.status(), 404);
        assert_eq!(post("/vacations", json!({"start": "2026-07-15"})).await["number"], "ОТП-0001");
        assert_eq!(post("/certificates", json!({})).await["number"], "СП-0001");
        assert_eq!(post("/sick_leaves", json!({})).await["number"], "БЛ-0001");
        let v = &biz.requests_to("POST", "/vacations")[0];
        assert_eq!(v.body["start"], "2026-07-15");
        assert_eq!(biz.tickets_of("emp-1")[0].2, "Не печатает");
    }

    #[tokio::test]
    async fn reports_are_files_with_their_content_types() {
        let biz = BizSim::start().await;
        let http = reqwest::Client::new();
        let pdf = http.post(format!("{}/reports/stock_pdf", biz.url())).json(&json!({})).send().await.unwrap();
        assert_eq!(pdf.headers()["content-type"], "application/pdf");
        let bytes = pdf.bytes().await.unwrap();
        assert!(bytes.starts_with(b"%PDF-1.4") && bytes.ends_with(b"%%EOF\n"));
        let text = String::from_utf8_lossy(&bytes);
        let xref: usize = text.rsplit("startxref\n").next().unwrap().lines().next().unwrap().parse().unwrap();
        assert!(text[xref..].starts_with("xref"), "startxref points at the table");
        let xlsx = http.post(format!("{}/reports/stock", biz.url())).json(&json!({})).send().await.unwrap();
        assert_eq!(xlsx.headers()["content-type"], XLSX_MIME);
        assert!(xlsx.bytes().await.unwrap().starts_with(b"PK\x03\x04"));
    }

    #[tokio::test]
    async fn misbehaviour_is_switchable() {
        let biz = BizSim::start().await;
        let url = format!("{}/orders/100421", biz.url());
        biz.set_mode(Mode::Error500);
        assert_eq!(get(&url).await.status(), 500);
        biz.set_mode(Mode::BadJson);
        let bad = get(&url).await;
        assert_eq!(bad.status(), 200);
        assert!(serde_json::from_slice::<Value>(&bad.bytes().await.unwrap()).is_err());
        biz.set_mode(Mode::WrongShape);
        let shape: Value = get(&url).await.json().await.unwrap();
        assert!(shape.get("stage").is_none());
        biz.set_mode(Mode::Slow(Duration::from_millis(300)));
        let t = std::time::Instant::now();
        assert_eq!(get(&url).await.status(), 200);
        assert!(t.elapsed() >= Duration::from_millis(300));
        biz.set_mode(Mode::Normal);
        assert_eq!(get(&url).await.status(), 200);
        assert_eq!(biz.requests().len(), 5, "every request is recorded, misbehaving or not");
        let bound = biz.bind("http:\n  base_url: http://1c.local/hs/bot\n");
        assert!(bound.contains(&biz.url()) && !bound.contains("1c.local"));
    }
}
