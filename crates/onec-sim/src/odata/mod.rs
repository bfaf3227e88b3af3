//! The infobase's standard OData interface (`/odata/standard.odata`), read-only, as 1C
//! publishes it. Where each behaviour comes from: `shared/research/C_business_connectors.md` §3
//! and public records of real publications (1C's own `$metadata`, captured answers and probes
//! of live UT 11 / BP 3.0 bases):
//!
//! * **Auth**: HTTP Basic with an infobase user, the name in UTF-8 (Cyrillic names work);
//!   missing or wrong → **401** with `WWW-Authenticate: Basic`.
//! * **Entity sets** `Catalog_Контрагенты` (hierarchical: `Parent_Key`, `IsFolder`) and
//!   `Catalog_Сотрудники`, with the standard fields (`Ref_Key`, `DataVersion`, `DeletionMark`,
//!   `Predefined`, `PredefinedDataName`, `Code`, `Description`), their own, and the tabular part
//!   `КонтактнаяИнформация` (`LineNumber` as text, `Тип`, `Вид_Key`, `Представление`,
//!   `НомерТелефона`, `НомерТелефонаБезКодов`, `АдресЭП`, `ДоменноеИмяСервера`, `Значение`…);
//!   `$metadata` (EDMX, OData 3.0, namespace `StandardODATA`).
//! * **`DataVersion`**: an 8-byte per-object write counter in base64 (`AAAAAAAAAAA=` when
//!   created); every write — an edit, a deletion mark, a write changing nothing — replaces it.
//! * **Reads**: `GET {Set}` → `{"odata.metadata": "…/$metadata#{Set}", "value": [...]}`;
//!   `GET {Set}(guid'…')` → the object (`…#{Set}/@Element`); `$format=json` (or
//!   `Accept: application/json`) — otherwise Atom XML; `$filter` (see [`filter`]), `$select`
//!   (the tabular part selectable whole), `$orderby`, `$top` (the size of the answer — no
//!   `odata.nextLink`), `$skip`, `$inlinecount=allpages` (`"odata.count"` as text),
//!   `allowedOnly`. The query is percent-decoded only: a `+` stays a plus.
//! * **Errors** `{"odata.error": {"code", "message": {"lang": "ru", "value"}}}`: a `$filter`,
//!   `$top`, `$skip` or `$orderby` that does not parse → **400** code 14 «Ошибка при разборе
//!   опции запроса …»; a field it does not know (`$select`, `$orderby`, `$filter`) → **400**
//!   code 6 «Сегмент пути … не найден!»; an entity set not published → **404** (same words); an
//!   object not there → **404** code 9 «Экземпляр сущности не найден». Writes are not served
//!   (**405**).
//!
//! Not simulated: writes (`POST`/`PATCH`/`DELETE`, `Post()`), `$expand` and navigation
//! properties, documents and registers, virtual tables, TLS.

mod filter;
mod schema;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};

use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Map, Value};

pub use schema::CONTACT_PART;

use crate::{OneCSim, Shared};

/// Where the interface lives on the service's address.
pub const ODATA_PREFIX: &str = "/odata/standard.odata";
/// The infobase user the interface lets in unless [`OneCSim::set_odata_credentials`] says
/// otherwise.
pub const DEFAULT_ODATA_USER: &str = "Интеграция";
/// That user's password unless [`OneCSim::set_odata_credentials`] says otherwise.
pub const DEFAULT_ODATA_PASSWORD: &str = "okno-odata";
/// The counterparties' entity set.
pub const COUNTERPARTIES: &str = "Catalog_Контрагенты";
/// The employees' entity set.
pub const EMPLOYEES: &str = "Catalog_Сотрудники";

const EMPTY_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// What a row of contact information holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactKind {
    Phone,
    Email,
    Address,
}

impl ContactKind {
    fn type_name(self) -> &'static str {
        match self {
            ContactKind::Phone => "Телефон",
            ContactKind::Email => "АдресЭлектроннойПочты",
            ContactKind::Address => "Адрес",
        }
    }
}

/// A row of the `КонтактнаяИнформация` tabular part to give an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInfo {
    pub kind: ContactKind,
    /// `Представление`: the value as a person typed it.
    pub presentation: String,
    /// Whether the typed fields (`НомерТелефона`, `АдресЭП`…) are filled as the standard
    /// subsystems do; older and hand-loaded rows have only the presentation.
    pub typed: bool,
}

impl ContactInfo {
    /// A phone, typed fields filled (`+7 916 123-45-67` → `НомерТелефона` `79161234567`).
    pub fn phone(presentation: &str) -> ContactInfo {
        ContactInfo { kind: ContactKind::Phone, presentation: presentation.into(), typed: true }
    }
    /// An e-mail address, typed fields filled.
    pub fn email(address: &str) -> ContactInfo {
        ContactInfo { kind: ContactKind::Email, presentation: address.into(), typed: true }
    }
    /// A postal address.
    pub fn address(text: &str) -> ContactInfo {
        ContactInfo { kind: ContactKind::Address, presentation: text.into(), typed: true }
    }
    /// A row with only `Представление` filled.
    pub fn presentation_only(kind: ContactKind, text: &str) -> ContactInfo {
        ContactInfo { kind, presentation: text.into(), typed: false }
    }

    fn row(&self, owner: &str, line: usize, kind_key: &str) -> Value {
        let mut r = Map::new();
        for (name, edm) in schema::CONTACT_ROW {
            let v = match edm {
                schema::Edm::Guid => json!(EMPTY_GUID),
                _ => json!(""),
            };
            r.insert((*name).into(), v);
        }
        r.insert("Ref_Key".into(), json!(owner));
        r.insert("LineNumber".into(), json!(line.to_string()));
        r.insert("Тип".into(), json!(self.kind.type_name()));
        r.insert("Вид_Key".into(), json!(kind_key));
        r.insert("Представление".into(), json!(self.presentation));
        if self.typed {
            r.insert(
                "Значение".into(),
                json!(json!({"value": self.presentation, "type": self.kind.type_name()}).to_string()),
            );
            match self.kind {
                ContactKind::Phone => {
                    let mut digits: String = self.presentation.chars().filter(char::is_ascii_digit).collect();
                    if digits.len() == 11 && digits.starts_with('8') {
                        digits.replace_range(..1, "7");
                    }
                    let short = digits.get(digits.len().saturating_sub(7)..).unwrap_or("").to_string();
                    r.insert("НомерТелефона".into(), json!(digits));
                    r.insert("НомерТелефонаБезКодов".into(), json!(short));
                }
                ContactKind::Email => {
                    let domain = self.presentation.split_once('@').map(|(_, d)| d).unwrap_or("");
                    r.insert("АдресЭП".into(), json!(self.presentation));
                    r.insert("ДоменноеИмяСервера".into(), json!(domain));
                }
                ContactKind::Address => {
                    r.insert("Страна".into(), json!("РОССИЯ"));
                }
            }
        }
        Value::Object(r)
    }
}

/// One request the OData interface got.
#[derive(Debug, Clone)]
pub struct ODataRequest {
    pub method: String,
    /// The decoded path under the interface, e.g. `Catalog_Контрагенты`, `$metadata`,
    /// `Catalog_Контрагенты(guid'…')`.
    pub path: String,
    /// The query as sent, still encoded.
    pub raw_query: String,
    /// The query options, percent-decoded (a `+` stays a plus), in order.
    pub query: Vec<(String, String)>,
    /// The Basic user name sent ("" when none).
    pub user: String,
    /// The status answered; 0 while the answer is being made.
    pub status: u16,
    /// The request's number in arrival order, from 1.
    pub seq: u64,
}

impl ODataRequest {
    /// A query option, or "".
    pub fn q(&self, name: &str) -> &str {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

/// The interface's data and log.
pub(crate) struct ODataState {
    /// Entity set → its objects, in the order they were created.
    sets: HashMap<&'static str, Vec<Map<String, Value>>>,
    /// Writes per object (`Ref_Key` → counter behind `DataVersion`).
    writes: HashMap<String, u64>,
    codes: HashMap<&'static str, u64>,
    requests: VecDeque<ODataRequest>,
    seq: u64,
    /// Answer every request with this status (a web server in trouble).
    failing: Option<u16>,
    keys: std::collections::hash_map::RandomState,
    /// GUIDs made so far.
    minted: u64,
    /// Objects to delete once the request with this number is answered: (seq, set, key).
    scheduled: Vec<(u64, String, String)>,
    /// The infobase user let in and the password.
    user: String,
    password: String,
    /// `Вид_Key` of phone, e-mail and address rows.
    kinds: [String; 3],
}

impl ODataState {
    pub(crate) fn new() -> ODataState {
        let keys = std::collections::hash_map::RandomState::new();
        let mut s = ODataState {
            sets: schema::SETS.iter().map(|s| (s.name, Vec::new())).collect(),
            writes: HashMap::new(),
            codes: HashMap::new(),
            requests: VecDeque::new(),
            seq: 0,
            failing: None,
            keys,
            minted: 0,
            user: DEFAULT_ODATA_USER.into(),
            password: DEFAULT_ODATA_PASSWORD.into(),
            scheduled: Vec::new(),
            kinds: Default::default(),
        };
        s.kinds = [s.new_guid(), s.new_guid(), s.new_guid()];
        s
    }

    fn new_guid(&mut self) -> String {
        self.minted += 1;
        let mut a = self.keys.build_hasher();
        a.write_u64(self.minted);
        a.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0),
        );
        let x = a.finish();
        let mut b = self.keys.build_hasher();
        b.write_u64(x);
        let y = b.finish();
        let h = format!("{x:016x}{y:016x}");
        format!("{}-{}-11{}-{}-{}", &h[..8], &h[8..12], &h[14..16], &h[16..20], &h[20..32])
    }

    fn version(n: u64) -> String {
        base64::engine::general_purpose::STANDARD.encode(n.to_be_bytes())
    }

    fn find_mut(&mut self, set: &str, key: &str) -> Option<&mut Map<String, Value>> {
        let key = key.to_ascii_lowercase();
        self.sets.get_mut(set)?.iter_mut().find(|r| r.get("Ref_Key").and_then(Value::as_str) == Some(key.as_str()))
    }

    /// A write: the object's `DataVersion` replaced.
    fn bump(&mut self, set: &str, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        let n = {
            let w = self.writes.entry(key.clone()).or_insert(0);
            *w += 1;
            *w
        };
        match self.find_mut(set, &key) {
            Some(r) => {
                r.insert("DataVersion".into(), json!(ODataState::version(n)));
                true
            }
            None => false,
        }
    }

    fn contact_rows(&self, owner: &str, contacts: &[ContactInfo]) -> Value {
        Value::Array(
            contacts
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let kind = match c.kind {
                        ContactKind::Phone => &self.kinds[0],
                        ContactKind::Email => &self.kinds[1],
                        ContactKind::Address => &self.kinds[2],
                    };
                    c.row(owner, i + 1, kind)
                })
                .collect(),
        )
    }

    fn add(&mut self, set: &str, name: &str, folder: bool, contacts: &[ContactInfo]) -> Option<String> {
        let schema = schema::find(set)?;
        let key = self.new_guid();
        let code = {
            let c = self.codes.entry(schema.name).or_insert(0);
            *c += 1;
            format!("{:09}", *c)
        };
        let mut r = Map::new();
        for (n, e) in schema.columns() {
            let v = match e {
                schema::Edm::Guid => json!(EMPTY_GUID),
                schema::Edm::Boolean => json!(false),
                schema::Edm::Int64 => json!("0"),
                _ => json!(""),
            };
            r.insert(n.into(), v);
        }
        r.insert("Ref_Key".into(), json!(key));
        r.insert("DataVersion".into(), json!(ODataState::version(0)));
        r.insert("Code".into(), json!(code));
        r.insert("Description".into(), json!(name));
        if schema.hierarchical {
            r.insert("IsFolder".into(), json!(folder));
        }
        if schema.name == COUNTERPARTIES {
            r.insert("НаименованиеПолное".into(), json!(name));
            r.insert("ЮрФизЛицо".into(), json!("ЮрЛицо"));
        }
        r.insert(CONTACT_PART.into(), self.contact_rows(&key, contacts));
        self.writes.insert(key.clone(), 0);
        self.sets.get_mut(schema.name)?.push(r);
        Some(key)
    }
}

fn fault(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}});
    (status, [(header::CONTENT_TYPE, "application/json;charset=utf-8")], body.to_string()).into_response()
}

fn unknown_segment(name: &str) -> Response {
    fault(StatusCode::BAD_REQUEST, "6", &format!("Сегмент пути {name} не найден!"))
}

fn unparsable(option: &str) -> Response {
    fault(StatusCode::BAD_REQUEST, "14", &format!("Ошибка при разборе опции запроса {option}"))
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The Basic user and password of a request.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Answers a request under [`ODATA_PREFIX`]; `rest` is the encoded path after it.
pub(crate) fn handle(shared: &Shared, method: &Method, rest: &str, raw_query: &str, headers: &HeaderMap) -> Response {
    let path = decode(rest.trim_start_matches('/'));
    let query: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let sent = basic(headers);
    let mut g = shared.lock();
    let kept = g.kept();
    let (user, password) = (g.odata.user.clone(), g.odata.password.clone());
    let base = format!("http://{}{ODATA_PREFIX}", shared.addr);
    let o = &mut g.odata;
    o.seq += 1;
    let seq = o.seq;
    while o.requests.len() >= kept {
        o.requests.pop_front();
    }
    o.requests.push_back(ODataRequest {
        method: method.to_string(),
        path: path.clone(),
        raw_query: raw_query.to_string(),
        query: query.clone(),
        user: sent.as_ref().map(|(u, _)| u.clone()).unwrap_or_default(),
        status: 0,
        seq,
    });
    let response = answer(o, &base, method, &path, &query, headers, sent, (&user, &password));
    let status = response.status().as_u16();
    if let Some(r) = o.requests.iter_mut().rev().find(|r| r.seq == seq) {
        r.status = status;
    }
    let due: Vec<(u64, String, String)> = o.scheduled.iter().filter(|(at, _, _)| *at <= seq).cloned().collect();
    o.scheduled.retain(|(at, _, _)| *at > seq);
    for (_, set, key) in due {
        if let Some(list) = o.sets.get_mut(set.as_str()) {
            list.retain(|r| r.get("Ref_Key").and_then(Value::as_str) != Some(key.as_str()));
        }
    }
    drop(g);
    shared.ring();
    response
}

#[allow(clippy::too_many_arguments)]
fn answer(
    o: &ODataState,
    base: &str,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    sent: Option<(String, String)>,
    (user, password): (&str, &str),
) -> Response {
    if let Some(status) = o.failing {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (status, [(header::CONTENT_TYPE, "text/html")], "<html><body>Service Unavailable</body></html>")
            .into_response();
    }
    if !sent.is_some_and(|(u, p)| u == user && p == password) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"1C:Enterprise\"")], "")
            .into_response();
    }
    if method != Method::GET {
        return fault(StatusCode::METHOD_NOT_ALLOWED, "-1", "Запись через этот интерфейс не поддерживается");
    }
    if path.is_empty() {
        let sets: String = schema::SETS
            .iter()
            .map(|s| format!("<collection href=\"{0}\"><atom:title>{0}</atom:title></collection>", s.name))
            .collect();
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><service xmlns=\"http://www.w3.org/2007/app\" xmlns:atom=\"http://www.w3.org/2005/Atom\" xml:base=\"{base}\"><workspace><atom:title>Default</atom:title>{sets}</workspace></service>"
        );
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/xml;charset=utf-8")], xml).into_response();
    }
    if path == "$metadata" {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/xml;charset=utf-8")], schema::metadata())
            .into_response();
    }
    let (set_name, key) = match path.split_once('(') {
        Some((s, k)) => (s, Some(k)),
        None => (path, None),
    };
    let Some(set) = schema::find(set_name) else {
        return fault(StatusCode::NOT_FOUND, "6", &format!("Сегмент пути {set_name} не найден!"));
    };
    let records = o.sets.get(set.name).map(Vec::as_slice).unwrap_or_default();
    let opt = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    for (k, v) in query {
        let known = ["$format", "$filter", "$select", "$orderby", "$top", "$skip", "$inlinecount", "$expand"];
        if k.starts_with('$') && !known.contains(&k.as_str()) {
            return unparsable(k);
        }
        if k == "allowedOnly" && v != "true" && v != "false" {
            return fault(StatusCode::BAD_REQUEST, "14", "Неверное значение параметра allowedOnly");
        }
    }
    let json = match opt("$format") {
        Some("json" | "application/json") => true,
        Some("atom" | "xml" | "application/atom+xml") => false,
        Some(_) => return unparsable("$format"),
        None => {
            headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"))
        }
    };
    // $select
    let mut select: Option<Vec<String>> = None;
    if let Some(s) = opt("$select") {
        let mut fields = Vec::new();
        for f in s.split(',').map(str::trim) {
            if set.field(f).is_none() && f != CONTACT_PART {
                return unknown_segment(f);
            }
            fields.push(f.to_string());
        }
        select = Some(fields);
    }
    let shape = |r: &Map<String, Value>| -> Map<String, Value> {
        match &select {
            None => r.clone(),
            Some(fields) => r.iter().filter(|(k, _)| fields.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    };
    if let Some(k) = key {
        let Some(guid) = k.strip_prefix("guid'").and_then(|k| k.strip_suffix("')")) else {
            return fault(
                StatusCode::BAD_REQUEST,
                "1",
                &format!("Не удалось разобрать строку '{k}' как значение типа Edm.Guid!"),
            );
        };
        if !filter::is_guid(guid) {
            return fault(
                StatusCode::BAD_REQUEST,
                "1",
                &format!("Не удалось разобрать строку '{guid}' как значение типа Edm.Guid!"),
            );
        }
        let guid = guid.to_ascii_lowercase();
        return match records.iter().find(|r| r.get("Ref_Key").and_then(Value::as_str) == Some(guid.as_str())) {
            Some(r) => {
                let mut m = Map::new();
                m.insert("odata.metadata".into(), json!(format!("{base}/$metadata#{}/@Element", set.name)));
                m.extend(shape(r));
                json_ok(Value::Object(m))
            }
            None => fault(StatusCode::NOT_FOUND, "9", "Экземпляр сущности не найден"),
        };
    }
    // $filter
    let mut chosen: Vec<&Map<String, Value>> = match opt("$filter") {
        None => records.iter().collect(),
        Some(text) => match filter::parse(text, &|f| set.field(f)) {
            Ok(e) => records.iter().filter(|r| filter::eval(&e, r)).collect(),
            Err(filter::FilterError::UnknownField(f)) => return unknown_segment(&f),
            Err(filter::FilterError::Syntax(_)) => return unparsable("$filter"),
        },
    };
    // $orderby
    if let Some(text) = opt("$orderby") {
        let mut keys = Vec::new();
        for part in text.split(',') {
            let words: Vec<&str> = part.split(' ').filter(|w| !w.is_empty()).collect();
            let (field, desc) = match words.as_slice() {
                [f] => (*f, false),
                [f, "asc"] => (*f, false),
                [f, "desc"] => (*f, true),
                _ => return unparsable("$orderby"),
            };
            if set.field(field).is_none() {
                return unknown_segment(field);
            }
            keys.push((field.to_string(), desc));
        }
        chosen.sort_by(|a, b| {
            for (f, desc) in &keys {
                let (x, y) = (a.get(f).map(Value::to_string), b.get(f).map(Value::to_string));
                let ord = if *desc { y.cmp(&x) } else { x.cmp(&y) };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    // A count that does not parse names its option (`Err`).
    let number = |name: &'static str| -> Result<Option<usize>, &'static str> {
        match opt(name) {
            None => Ok(None),
            Some(v) => v.parse::<usize>().map(Some).map_err(|_| name),
        }
    };
    let (skip, top) = match (number("$skip"), number("$top")) {
        (Ok(s), Ok(t)) => (s.unwrap_or(0), t),
        (Err(name), _) | (_, Err(name)) => return unparsable(name),
    };
    let count = chosen.len();
    let page: Vec<Value> =
        chosen.into_iter().skip(skip).take(top.unwrap_or(usize::MAX)).map(|r| Value::Object(shape(r))).collect();
    let mut body = Map::new();
    body.insert("odata.metadata".into(), json!(format!("{base}/$metadata#{}", set.name)));
    match opt("$inlinecount") {
        None | Some("none") => {}
        Some("allpages") => {
            body.insert("odata.count".into(), json!(count.to_string()));
        }
        Some(_) => return unparsable("$inlinecount"),
    }
    if !json {
        return atom(base, set.name, &page);
    }
    body.insert("value".into(), Value::Array(page));
    json_ok(Value::Object(body))
}

fn json_ok(body: Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json;charset=utf-8")], body.to_string()).into_response()
}

/// The default format: an Atom feed (what a client forgetting `$format=json` gets).
fn atom(base: &str, set: &str, page: &[Value]) -> Response {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\" xmlns:d=\"http://schemas.microsoft.com/ado/2007/08/dataservices\" xmlns:m=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\" xml:base=\"{base}/\"><title type=\"text\">{set}</title>"
    );
    for r in page {
        x.push_str("<entry><content type=\"application/xml\"><m:properties>");
        for (k, v) in r.as_object().into_iter().flatten() {
            if !v.is_array() {
                let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                x.push_str(&format!("<d:{k}>{}</d:{k}>", esc(&text)));
            }
        }
        x.push_str("</m:properties></content></entry>");
    }
    x.push_str("</feed>");
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/atom+xml;type=feed;charset=utf-8")], x).into_response()
}

/// The OData interface, for tests: fill the catalogs, play users editing them, read the log.
impl OneCSim {
    /// The interface's base URL: `http://127.0.0.1:PORT/odata/standard.odata`.
    pub fn odata_url(&self) -> String {
        format!("http://{}{ODATA_PREFIX}", self.local_addr())
    }

    /// The infobase user and password the interface lets in.
    pub fn odata_credentials(&self) -> (String, String) {
        let g = self.shared.lock();
        (g.odata.user.clone(), g.odata.password.clone())
    }

    /// Lets in this infobase user with this password instead (the old one is refused).
    pub fn set_odata_credentials(&self, user: &str, password: &str) {
        let mut g = self.shared.lock();
        g.odata.user = user.into();
        g.odata.password = password.into();
    }

    /// Adds a counterparty (an element, not a group); returns its `Ref_Key`.
    pub fn add_counterparty(&self, name: &str, contacts: &[ContactInfo]) -> String {
        self.shared.lock().odata.add(COUNTERPARTIES, name, false, contacts).unwrap_or_default()
    }

    /// Adds a group of counterparties; returns its `Ref_Key`.
    pub fn add_counterparty_group(&self, name: &str) -> String {
        self.shared.lock().odata.add(COUNTERPARTIES, name, true, &[]).unwrap_or_default()
    }

    /// Adds an employee; returns its `Ref_Key`.
    pub fn add_employee(&self, name: &str, contacts: &[ContactInfo]) -> String {
        self.shared.lock().odata.add(EMPLOYEES, name, false, contacts).unwrap_or_default()
    }

    /// Writes fields of an object (a person editing it): the given fields replaced, the
    /// `DataVersion` new. `Ref_Key` and `DataVersion` cannot be written. `false` when there is
    /// no such object.
    pub fn change_record(&self, set: &str, ref_key: &str, fields: Value) -> bool {
        let mut g = self.shared.lock();
        let Some(r) = g.odata.find_mut(set, ref_key) else { return false };
        for (k, v) in fields.as_object().into_iter().flatten() {
            if k != "Ref_Key" && k != "DataVersion" && r.contains_key(k) {
                r.insert(k.clone(), v.clone());
            }
        }
        g.odata.bump(set, ref_key)
    }

    /// Replaces an object's contact information.
    pub fn set_contacts(&self, set: &str, ref_key: &str, contacts: &[ContactInfo]) -> bool {
        let mut g = self.shared.lock();
        let rows = g.odata.contact_rows(&ref_key.to_ascii_lowercase(), contacts);
        let Some(r) = g.odata.find_mut(set, ref_key) else { return false };
        r.insert(CONTACT_PART.into(), rows);
        g.odata.bump(set, ref_key)
    }

    /// Sets or clears an object's deletion mark (a write: the `DataVersion` changes).
    pub fn mark_for_deletion(&self, set: &str, ref_key: &str, mark: bool) -> bool {
        self.change_record(set, ref_key, json!({"DeletionMark": mark}))
    }

    /// Writes an object without changing anything (its `DataVersion` still changes).
    pub fn touch(&self, set: &str, ref_key: &str) -> bool {
        self.shared.lock().odata.bump(set, ref_key)
    }

    /// Deletes an object for good (an administrator deleting marked objects).
    pub fn delete_record(&self, set: &str, ref_key: &str) -> bool {
        let key = ref_key.to_ascii_lowercase();
        let mut g = self.shared.lock();
        let Some(list) = g.odata.sets.get_mut(set) else { return false };
        let before = list.len();
        list.retain(|r| r.get("Ref_Key").and_then(Value::as_str) != Some(key.as_str()));
        before != list.len()
    }

    /// Deletes an object for good right after the interface answers `requests` more requests —
    /// an administrator deleting objects while okno pages through the set.
    pub fn delete_after_requests(&self, set: &str, ref_key: &str, requests: u64) {
        let mut g = self.shared.lock();
        let at = g.odata.seq + requests.max(1);
        g.odata.scheduled.push((at, set.to_string(), ref_key.to_ascii_lowercase()));
    }

    /// An object as the interface answers it, without the OData envelope.
    pub fn record(&self, set: &str, ref_key: &str) -> Option<Value> {
        self.shared.lock().odata.find_mut(set, ref_key).map(|r| Value::Object(r.clone()))
    }

    /// Every object of an entity set, in the order they were created.
    pub fn records(&self, set: &str) -> Vec<Value> {
        self.shared
            .lock()
            .odata
            .sets
            .get(set)
            .map(|l| l.iter().cloned().map(Value::Object).collect())
            .unwrap_or_default()
    }

    /// Every OData request kept (the newest [`crate::Options::keep`]), oldest first.
    pub fn odata_requests(&self) -> Vec<ODataRequest> {
        self.shared.lock().odata.requests.iter().cloned().collect()
    }

    /// From now on every OData request is answered with this status and an HTML page (a web
    /// server in trouble); `None` answers normally again.
    pub fn odata_failing(&self, status: Option<u16>) {
        self.shared.lock().odata.failing = status;
    }
}
