//! The REST methods the portal answers, over the world held under its lock; and the events a
//! change fires (online posts collected for after the lock, offline records queued in place).

use serde_json::{json, Map, Value};

use crate::form::{flag, int, items, text};
use crate::server::Outgoing;
use crate::{
    iso_now, unix_now, Author, Call, ChatMessage, OfflineRecord, OlChat, OperatorMessage, StatusReport, World,
};
use crate::{BATCH_MAX, PAGE, STAGES};

/// A refusal in Bitrix24's shape: the HTTP status, `error`, `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) description: String,
}

pub(crate) fn fail(status: u16, code: &str, description: &str) -> Fail {
    Fail { status, code: code.to_string(), description: description.to_string() }
}

/// A method's answer: `result`, and `next`/`total` for lists.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    pub(crate) result: Value,
    pub(crate) next: Option<i64>,
    pub(crate) total: Option<i64>,
}

fn reply(result: Value) -> Result<Reply, Fail> {
    Ok(Reply { result, next: None, total: None })
}

/// Who calls: a webhook's employee, or an application acting as its user.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The bucket's key and the log's name: `webhook:{user}` / `app:{client_id}`.
    pub(crate) key: String,
    pub(crate) label: String,
    pub(crate) user: i64,
    pub(crate) app: Option<String>,
}

const WRONG_AUTH: &str = "Current authorization type is denied for this method Application context required";

/// A parameter by name, as PHP's REST layer reads it: any case.
fn param<'a>(params: &'a Value, name: &str) -> Option<&'a Value> {
    let obj = params.as_object()?;
    obj.get(name).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

fn need_app(caller: &Caller) -> Result<&str, Fail> {
    caller.app.as_deref().ok_or_else(|| fail(403, "WRONG_AUTH_TYPE", WRONG_AUTH))
}

fn need_admin(w: &World, caller: &Caller, what: &str) -> Result<(), Fail> {
    if w.users.get(&caller.user).is_some_and(|u| u.admin) {
        Ok(())
    } else {
        Err(fail(403, "ACCESS_DENIED", &format!("Access denied! {what} requires administrator access rights")))
    }
}

fn argument(name: &str) -> Fail {
    fail(400, "ERROR_ARGUMENT", &format!("Argument '{name}' is null or empty"))
}

/// `CONTACT`/`contact` → the world's key.
pub(crate) fn kind(name: &str) -> Option<&'static str> {
    match name.to_ascii_uppercase().as_str() {
        "CONTACT" => Some("CONTACT"),
        "COMPANY" => Some("COMPANY"),
        "DEAL" => Some("DEAL"),
        _ => None,
    }
}

const MULTI: [&str; 4] = ["PHONE", "EMAIL", "WEB", "IM"];

/// One method call (not `batch`). `source` is the call's `auth_connector`.
pub(crate) fn run(
    w: &mut World,
    caller: &Caller,
    method: &str,
    params: &Value,
    source: Option<&str>,
    fx: &mut Vec<Outgoing>,
) -> Result<Reply, Fail> {
    fn crm(m: &str) -> Option<(&'static str, &str)> {
        let rest = m.strip_prefix("crm.")?;
        let (entity, op) = rest.split_once('.')?;
        Some((kind(entity)?, op))
    }
    if let Some((k, op)) = crm(method) {
        return match op {
            "add" => {
                let fields = param(params, "fields").cloned().unwrap_or(Value::Null);
                add_entity(w, k, &fields, caller.user, source, fx)
                    .map(|id| Reply { result: json!(id), ..Reply::default() })
            }
            "update" => {
                let id = id_of(params)?;
                let fields = param(params, "fields").cloned().unwrap_or(Value::Null);
                update_entity(w, k, id, &fields, caller.user, source, fx).and_then(|_| reply(json!(true)))
            }
            "get" => {
                let id = id_of(params)?;
                let e = w.crm.get(k).and_then(|m| m.get(&id)).ok_or_else(|| fail(400, "", "Not found"))?;
                reply(Value::Object(e.clone()))
            }
            "delete" => {
                let id = id_of(params)?;
                delete_entity(w, k, id, source, fx).and_then(|_| reply(json!(true)))
            }
            "list" => {
                // The table is kept in id order, like the portal's primary key: `>ID` starts
                // the walk at its place instead of at the first row.
                let Some(table) = w.crm.get(k) else { return list(std::iter::empty(), params, true, true) };
                let after = param(params, "filter").and_then(|f| param(f, ">ID")).and_then(int);
                match after {
                    Some(a) => list(table.range(a.saturating_add(1)..).map(|(_, r)| r), params, true, true),
                    None => list(table.values(), params, true, true),
                }
            }
            _ => Err(fail(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")),
        };
    }
    match method {
        "user.get" => {
            let filter = param(params, "FILTER").cloned().unwrap_or_else(|| {
                let mut f = params.as_object().cloned().unwrap_or_default();
                f.retain(|k, _| !matches!(k.as_str(), "auth" | "start" | "sort" | "order" | "auth_connector"));
                Value::Object(f)
            });
            let mut q = Map::new();
            q.insert("filter".into(), filter);
            if let Some(s) = param(params, "start") {
                q.insert("start".into(), s.clone());
            }
            list(w.users.values().map(|u| &u.fields), &Value::Object(q), false, false)
        }
        "user.current" => {
            let u = w.users.get(&caller.user).ok_or_else(|| fail(401, "NO_AUTH_FOUND", "Wrong authorization data"))?;
            reply(Value::Object(u.fields.clone()))
        }
        "crm.item.get" => {
            let t = param(params, "entityTypeId").and_then(int).unwrap_or(0);
            let id = param(params, "id").and_then(int).unwrap_or(0);
            reply(json!({ "item": item_of(w, t, id)? }))
        }
        "crm.item.update" => {
            let t = param(params, "entityTypeId").and_then(int).unwrap_or(0);
            let id = param(params, "id").and_then(int).unwrap_or(0);
            let fields = param(params, "fields").cloned().unwrap_or(Value::Null);
            update_item(w, t, id, &fields, source, fx)?;
            reply(json!({ "item": item_of(w, t, id)? }))
        }
        "crm.timeline.comment.add" => timeline_comment(w, params, caller.user),
        "event.bind" => bind(w, caller, params),
        "event.unbind" => unbind(w, caller, params),
        "event.get" => {
            let app = need_app(caller)?;
            let rows: Vec<Value> = w
                .handlers
                .iter()
                .filter(|h| h.app.as_deref() == Some(app))
                .map(|h| {
                    json!({"event": h.event, "handler": h.url.clone().unwrap_or_default(),
                           "auth_type": h.auth_type.to_string(), "offline": i64::from(h.url.is_none()),
                           "connector": h.source})
                })
                .collect();
            reply(Value::Array(rows))
        }
        "event.offline.get" => offline_get(w, caller, params),
        "event.offline.clear" => offline_mark(w, caller, params, true),
        "event.offline.error" => offline_mark(w, caller, params, false),
        "event.offline.list" => offline_list(w, caller, params),
        "imconnector.register" => register(w, caller, params),
        "imconnector.unregister" => {
            let app = need_app(caller)?.to_string();
            let id = param(params, "ID").and_then(text).ok_or_else(|| argument("ID"))?;
            let removed = w.apps.get_mut(&app).and_then(|a| a.connectors.remove(&id)).is_some();
            reply(json!({ "result": removed }))
        }
        "imconnector.activate" => activate(w, caller, params),
        "imconnector.status" => {
            let app = need_app(caller)?;
            let connector = param(params, "CONNECTOR").and_then(text).ok_or_else(|| argument("CONNECTOR"))?;
            let line = param(params, "LINE").and_then(int).unwrap_or(0);
            let registered = w.apps.get(app).is_some_and(|a| a.connectors.contains_key(&connector));
            let active = registered && w.lines.get(&line).is_some_and(|(_, c)| c.get(&connector) == Some(&true));
            reply(json!({"LINE": line, "CONNECTOR": connector, "ERROR": false, "CONFIGURED": active, "STATUS": active}))
        }
        "imconnector.connector.data.set" => {
            need_app(caller)?;
            for name in ["CONNECTOR", "LINE", "DATA"] {
                param(params, name).ok_or_else(|| argument(name))?;
            }
            reply(json!(true))
        }
        "imconnector.send.messages" => send_messages(w, caller, params),
        "imconnector.send.status.delivery" => status_reports(w, caller, params, true),
        "imconnector.send.status.reading" => status_reports(w, caller, params, false),
        "imopenlines.config.list.get" => {
            let lines: Vec<Value> = w
                .lines
                .iter()
                .map(|(id, (name, _))| json!({"ID": id.to_string(), "LINE_NAME": name, "ACTIVE": "Y"}))
                .collect();
            reply(Value::Array(lines))
        }
        "voximplant.statistic.get" => {
            let mut q = Map::new();
            for (from, to) in [("FILTER", "filter"), ("start", "start")] {
                if let Some(v) = param(params, from) {
                    q.insert(to.into(), v.clone());
                }
            }
            if let Some(sort) = param(params, "SORT").and_then(text) {
                let dir = param(params, "ORDER").and_then(text).unwrap_or_else(|| "ASC".into());
                q.insert("order".into(), json!({ sort: dir }));
            }
            list(w.calls.iter(), &Value::Object(q), false, false)
        }
        _ => Err(fail(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")),
    }
}

fn id_of(params: &Value) -> Result<i64, Fail> {
    param(params, "id").and_then(int).filter(|id| *id > 0).ok_or_else(|| fail(400, "", "ID is not defined or invalid."))
}

/// A CRM entity as a manager or a method adds it; fires `ONCRM{KIND}ADD`.
pub(crate) fn add_entity(
    w: &mut World,
    k: &'static str,
    fields: &Value,
    user: i64,
    source: Option<&str>,
    fx: &mut Vec<Outgoing>,
) -> Result<i64, Fail> {
    let Some(obj) = fields.as_object() else { return Err(fail(400, "", "Parameter 'fields' must be array.")) };
    let id = w.id();
    let now = iso_now();
    let mut e = Map::new();
    e.insert("ID".into(), json!(id.to_string()));
    match k {
        "CONTACT" => {
            for f in
                ["NAME", "SECOND_NAME", "LAST_NAME", "COMPANY_ID", "ORIGINATOR_ID", "ORIGIN_ID", "TYPE_ID", "SOURCE_ID"]
            {
                e.insert(f.into(), Value::Null);
            }
        }
        "COMPANY" => {
            for f in ["TITLE", "COMPANY_TYPE", "ORIGINATOR_ID", "ORIGIN_ID"] {
                e.insert(f.into(), Value::Null);
            }
        }
        _ => {
            e.insert("TITLE".into(), Value::Null);
            e.insert("STAGE_ID".into(), json!("NEW"));
            e.insert("CATEGORY_ID".into(), json!("0"));
            e.insert("CURRENCY_ID".into(), json!("RUB"));
            e.insert("OPPORTUNITY".into(), json!("0.00"));
            e.insert("CONTACT_ID".into(), Value::Null);
            e.insert("COMPANY_ID".into(), Value::Null);
        }
    }
    for f in ["ASSIGNED_BY_ID", "CREATED_BY_ID", "MODIFY_BY_ID"] {
        e.insert(f.into(), json!(user.to_string()));
    }
    e.insert("DATE_CREATE".into(), json!(now));
    apply(w, k, &mut e, obj)?;
    e.insert("DATE_MODIFY".into(), json!(now));
    w.crm.entry(k).or_default().insert(id, e);
    fire(w, &format!("ONCRM{k}ADD"), json!({"FIELDS": {"ID": id.to_string()}}), None, source, fx);
    Ok(id)
}

/// Changes a CRM entity; fires `ONCRM{KIND}UPDATE`.
pub(crate) fn update_entity(
    w: &mut World,
    k: &'static str,
    id: i64,
    fields: &Value,
    user: i64,
    source: Option<&str>,
    fx: &mut Vec<Outgoing>,
) -> Result<(), Fail> {
    let Some(obj) = fields.as_object() else { return Err(fail(400, "", "Parameter 'fields' must be array.")) };
    let noun = match k {
        "CONTACT" => "Contact",
        "COMPANY" => "Company",
        _ => "Deal",
    };
    let mut e =
        w.crm.get(k).and_then(|m| m.get(&id)).cloned().ok_or_else(|| fail(400, "", &format!("{noun} is not found")))?;
    apply(w, k, &mut e, obj)?;
    e.insert("DATE_MODIFY".into(), json!(iso_now()));
    e.insert("MODIFY_BY_ID".into(), json!(user.to_string()));
    w.crm.entry(k).or_default().insert(id, e);
    fire(w, &format!("ONCRM{k}UPDATE"), json!({"FIELDS": {"ID": id.to_string()}}), None, source, fx);
    Ok(())
}

pub(crate) fn delete_entity(
    w: &mut World,
    k: &'static str,
    id: i64,
    source: Option<&str>,
    fx: &mut Vec<Outgoing>,
) -> Result<(), Fail> {
    w.crm.get_mut(k).and_then(|m| m.remove(&id)).ok_or_else(|| fail(400, "", "Not found"))?;
    fire(w, &format!("ONCRM{k}DELETE"), json!({"FIELDS": {"ID": id.to_string()}}), None, source, fx);
    Ok(())
}

/// Writes `fields` over an entity: scalars as Bitrix24 keeps them (text), multi-fields by item.
fn apply(w: &mut World, k: &str, e: &mut Map<String, Value>, fields: &Map<String, Value>) -> Result<(), Fail> {
    for (key, v) in fields {
        let key = key.to_ascii_uppercase();
        if key == "ID" {
            continue;
        }
        if MULTI.contains(&key.as_str()) {
            let mut list: Vec<Value> = e.get(&key).map(|l| items(l).into_iter().cloned().collect()).unwrap_or_default();
            for item in items(v) {
                let value = item.get("VALUE").and_then(text).unwrap_or_default();
                let value_type = item.get("VALUE_TYPE").and_then(text).unwrap_or_else(|| "WORK".into());
                match item.get("ID").and_then(int) {
                    Some(mid) => {
                        let at = list.iter().position(|x| x.get("ID").and_then(int) == Some(mid));
                        match (at, value.is_empty()) {
                            (Some(i), true) => {
                                list.remove(i);
                            }
                            (Some(i), false) => {
                                list[i]["VALUE"] = json!(value);
                                list[i]["VALUE_TYPE"] = json!(value_type);
                            }
                            (None, _) => {}
                        }
                    }
                    None if !value.is_empty() => {
                        let mid = w.id();
                        list.push(
                            json!({"ID": mid.to_string(), "VALUE_TYPE": value_type, "VALUE": value, "TYPE_ID": key}),
                        );
                    }
                    None => {}
                }
            }
            if k != "DEAL" {
                e.insert(format!("HAS_{key}"), json!(if list.is_empty() { "N" } else { "Y" }));
            }
            e.insert(key, Value::Array(list));
            continue;
        }
        if key == "STAGE_ID" && k == "DEAL" {
            let stage = text(v).unwrap_or_default();
            if !STAGES.contains(&stage.as_str()) {
                return Err(fail(400, "", &format!("Stage '{stage}' is not found in the deal's category.")));
            }
        }
        let stored = match v {
            Value::Null => Value::Null,
            Value::Array(_) | Value::Object(_) => v.clone(),
            other => text(other).map(Value::String).unwrap_or(Value::Null),
        };
        e.insert(key, stored);
    }
    Ok(())
}

/// A list's page: `filter`, `order`, `select`, `start` (50 a page; -1: no total). `by_id`: the
/// rows come in id order, so an id order needs no sort and `start=-1` reads only the page.
fn list<'a>(
    rows: impl Iterator<Item = &'a Map<String, Value>>,
    params: &Value,
    crm: bool,
    by_id: bool,
) -> Result<Reply, Fail> {
    let filter = param(params, "filter").and_then(Value::as_object);
    let keep = |r: &&Map<String, Value>| filter.is_none_or(|f| f.iter().all(|(k, v)| matches(r, k, v)));
    let (field, desc) = match param(params, "order").and_then(Value::as_object).and_then(|o| o.iter().next()) {
        Some((k, v)) => (k.to_ascii_uppercase(), text(v).is_some_and(|d| d.eq_ignore_ascii_case("DESC"))),
        None => ("ID".to_string(), false),
    };
    let select: Vec<String> =
        param(params, "select").map(|s| items(s).into_iter().filter_map(text).collect()).unwrap_or_default();
    let shown = |r: &Map<String, Value>| Value::Object(if crm { selected(r.clone(), &select) } else { r.clone() });
    let start = param(params, "start").and_then(int).unwrap_or(0);
    let skip = start.max(0) as usize;
    let mut kept: Vec<&Map<String, Value>> = if by_id && field == "ID" && !desc {
        if start < 0 {
            return reply(Value::Array(rows.filter(keep).take(PAGE).map(shown).collect()));
        }
        rows.filter(keep).collect()
    } else {
        let kept: Vec<&Map<String, Value>> = rows.filter(keep).collect();
        let keys: Vec<Key> = kept.iter().map(|r| Key::of(r.get(&field).unwrap_or(&Value::Null))).collect();
        let mut order: Vec<usize> = (0..kept.len()).collect();
        order.sort_by(|a, b| {
            let o = keys[*a].cmp(&keys[*b]);
            if desc {
                o.reverse()
            } else {
                o
            }
        });
        order.into_iter().map(|i| kept[i]).collect()
    };
    let total = kept.len();
    let page: Vec<Value> = kept.drain(skip.min(total)..).take(PAGE).map(shown).collect();
    if start < 0 {
        return reply(Value::Array(page));
    }
    let next = (skip + PAGE < total).then_some((skip + PAGE) as i64);
    Ok(Reply { result: Value::Array(page), next, total: Some(total as i64) })
}

/// `select` applied: `*` every plain field, `UF_*` the custom ones, multi-fields only by name.
fn selected(r: Map<String, Value>, select: &[String]) -> Map<String, Value> {
    let default = ["*".to_string(), "UF_*".to_string()];
    let select = if select.is_empty() { &default[..] } else { select };
    r.into_iter()
        .filter(|(k, _)| {
            k == "ID"
                || select.iter().any(|s| {
                    s.eq_ignore_ascii_case(k)
                        || (s == "*" && !k.starts_with("UF_") && !MULTI.contains(&k.as_str()))
                        || (s == "UF_*" && k.starts_with("UF_"))
                })
        })
        .collect()
}

/// One filter entry against a row: `>=DATE_MODIFY`, `%NAME`, `@ID`, `PHONE` (exact), ….
fn matches(r: &Map<String, Value>, key: &str, want: &Value) -> bool {
    const OPS: [&str; 13] = ["!@", "!=", "!%", ">=", "<=", "=%", "%=", "@", "!", "=", ">", "<", "%"];
    let (op, field) = OPS.iter().find_map(|op| key.strip_prefix(op).map(|f| (*op, f))).unwrap_or(("=", key));
    let field = field.to_ascii_uppercase();
    let have = r.get(&field).unwrap_or(&Value::Null);
    if MULTI.contains(&field.as_str()) {
        let wanted: Vec<String> = items(want).into_iter().filter_map(text).collect();
        let hit = items(have).iter().any(|i| i.get("VALUE").and_then(text).is_some_and(|v| wanted.contains(&v)));
        return if op.starts_with('!') { !hit } else { hit };
    }
    let have_text = text(have).unwrap_or_default();
    let any_of = |list: &Value| items(list).into_iter().filter_map(text).any(|x| x == have_text);
    match op {
        "@" => any_of(want),
        "!@" => !any_of(want),
        "%" | "=%" | "%=" => {
            let w = text(want).unwrap_or_default().trim_matches('%').to_lowercase();
            have_text.to_lowercase().contains(&w)
        }
        "!%" => !have_text.to_lowercase().contains(&text(want).unwrap_or_default().to_lowercase()),
        "!" | "!=" => {
            if want.is_array() {
                !any_of(want)
            } else {
                compare(have, want) != std::cmp::Ordering::Equal
            }
        }
        ">" => have != &Value::Null && compare(have, want).is_gt(),
        "<" => have != &Value::Null && compare(have, want).is_lt(),
        ">=" => have != &Value::Null && compare(have, want).is_ge(),
        "<=" => have != &Value::Null && compare(have, want).is_le(),
        _ => {
            if want.is_array() {
                any_of(want)
            } else if matches!(want, Value::Bool(_)) || matches!(have, Value::Bool(_)) {
                flag(want) == flag(have)
            } else {
                compare(have, want) == std::cmp::Ordering::Equal
            }
        }
    }
}

/// Numbers as numbers, dates as instants, else text.
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    Key::of(a).cmp(&Key::of(b))
}

/// A value as the portal orders it: numbers as numbers, moments as moments, else as text.
struct Key {
    text: String,
    number: Option<f64>,
    moment: Option<jiff::Timestamp>,
}

impl Key {
    fn of(v: &Value) -> Key {
        let text = text(v).unwrap_or_default();
        let number = text.trim().parse::<f64>().ok();
        let moment = if number.is_none() { text.parse::<jiff::Timestamp>().ok() } else { None };
        Key { text, number, moment }
    }

    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        if let (Some(x), Some(y)) = (self.number, other.number) {
            return x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
        }
        if let (Some(x), Some(y)) = (self.moment, other.moment) {
            return x.cmp(&y);
        }
        self.text.cmp(&other.text)
    }
}

/// `crm.item.get`'s item: a smart-process item, or a deal (2) in camelCase.
fn item_of(w: &World, t: i64, id: i64) -> Result<Value, Fail> {
    if t == 2 {
        let d = w.crm.get("DEAL").and_then(|m| m.get(&id)).ok_or_else(|| fail(400, "NOT_FOUND", "Item not found"))?;
        let mut out = Map::new();
        for (k, v) in d {
            if !k.starts_with("UF_") {
                out.insert(camel(k), v.clone());
            } else {
                out.insert(k.clone(), v.clone());
            }
        }
        if let Some(id) = out.get("id").and_then(int) {
            out.insert("id".into(), json!(id));
        }
        return Ok(Value::Object(out));
    }
    if !w.items.keys().any(|(tt, _)| *tt == t) {
        return Err(fail(400, "NOT_FOUND", "SPA not found"));
    }
    w.items.get(&(t, id)).cloned().map(Value::Object).ok_or_else(|| fail(400, "NOT_FOUND", "Item not found"))
}

/// `ASSIGNED_BY_ID` → `assignedById`.
fn camel(k: &str) -> String {
    let mut out = String::new();
    for (i, part) in k.split('_').enumerate() {
        let lower = part.to_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut c = lower.chars();
            if let Some(f) = c.next() {
                out.extend(f.to_uppercase());
                out.push_str(c.as_str());
            }
        }
    }
    out
}

pub(crate) fn add_item(w: &mut World, t: i64, title: &str, stage: &str, fx: &mut Vec<Outgoing>) -> i64 {
    let id = w.id();
    let now = iso_now();
    let item = json!({"id": id, "entityTypeId": t, "title": title, "stageId": stage, "categoryId": 0,
                      "assignedById": 1, "createdTime": now, "updatedTime": now, "contactId": null, "companyId": null});
    w.items.insert((t, id), item.as_object().cloned().unwrap_or_default());
    let data = json!({"FIELDS": {"ID": id.to_string(), "ENTITY_TYPE_ID": t.to_string()}});
    fire(w, "ONCRMDYNAMICITEMADD", data, None, None, fx);
    id
}

pub(crate) fn update_item(
    w: &mut World,
    t: i64,
    id: i64,
    fields: &Value,
    source: Option<&str>,
    fx: &mut Vec<Outgoing>,
) -> Result<(), Fail> {
    item_of(w, t, id)?;
    let Some(obj) = fields.as_object() else { return Err(fail(400, "", "Parameter 'fields' must be array.")) };
    if t == 2 {
        return Err(fail(400, "", "Deals change through crm.deal.update here"));
    }
    if let Some(item) = w.items.get_mut(&(t, id)) {
        for (k, v) in obj {
            if k != "id" && k != "entityTypeId" {
                item.insert(k.clone(), v.clone());
            }
        }
        item.insert("updatedTime".into(), json!(iso_now()));
    }
    let data = json!({"FIELDS": {"ID": id.to_string(), "ENTITY_TYPE_ID": t.to_string()}});
    fire(w, "ONCRMDYNAMICITEMUPDATE", data, None, source, fx);
    Ok(())
}

fn timeline_comment(w: &mut World, params: &Value, user: i64) -> Result<Reply, Fail> {
    let fields = param(params, "fields")
        .and_then(Value::as_object)
        .ok_or_else(|| fail(400, "", "Parameter 'fields' must be array."))?;
    let get = |k: &str| fields.get(k).or_else(|| fields.get(&k.to_lowercase()));
    let owner_kind = get("ENTITY_TYPE").and_then(text).unwrap_or_default();
    let owner = get("ENTITY_ID").and_then(int).unwrap_or(0);
    let comment = get("COMMENT").and_then(text).unwrap_or_default();
    if comment.trim().is_empty() {
        return Err(fail(400, "INVALID_ARG_VALUE", "COMMENT is required"));
    }
    let exists = kind(&owner_kind).is_some_and(|k| w.crm.get(k).is_some_and(|m| m.contains_key(&owner)));
    if !exists {
        return Err(fail(400, "OWNER_NOT_FOUND", "Owner not found"));
    }
    let id = w.id();
    w.comments.push(json!({"ID": id, "ENTITY_TYPE": owner_kind.to_lowercase(), "ENTITY_ID": owner,
                           "COMMENT": comment, "AUTHOR_ID": user, "CREATED": iso_now()}));
    reply(json!(id))
}

const EVENTS: [&str; 24] = [
    "ONCRMCONTACTADD",
    "ONCRMCONTACTUPDATE",
    "ONCRMCONTACTDELETE",
    "ONCRMCOMPANYADD",
    "ONCRMCOMPANYUPDATE",
    "ONCRMCOMPANYDELETE",
    "ONCRMDEALADD",
    "ONCRMDEALUPDATE",
    "ONCRMDEALDELETE",
    "ONCRMDEALMOVETOCATEGORY",
    "ONCRMLEADADD",
    "ONCRMLEADUPDATE",
    "ONCRMDYNAMICITEMADD",
    "ONCRMDYNAMICITEMUPDATE",
    "ONCRMDYNAMICITEMDELETE",
    "ONIMCONNECTORMESSAGEADD",
    "ONIMCONNECTORDIALOGSTART",
    "ONIMCONNECTORDIALOGFINISH",
    "ONIMCONNECTORSTATUSDELETE",
    "ONIMCONNECTORLINEDELETE",
    "ONVOXIMPLANTCALLSTART",
    "ONVOXIMPLANTCALLEND",
    "ONAPPUNINSTALL",
    "ONOFFLINEEVENT",
];

fn bind(w: &mut World, caller: &Caller, params: &Value) -> Result<Reply, Fail> {
    let app = need_app(caller)?.to_string();
    let event = param(params, "event").and_then(text).unwrap_or_default().to_ascii_uppercase();
    if !EVENTS.contains(&event.as_str()) {
        return Err(fail(400, "ERROR_EVENT_NOT_FOUND", "Event not found"));
    }
    let offline = param(params, "event_type").and_then(text).is_some_and(|t| t.eq_ignore_ascii_case("offline"));
    let source = param(params, "auth_connector").and_then(text).unwrap_or_default();
    let url = if offline {
        need_admin(w, caller, "Offline events binding")?;
        None
    } else {
        let h = param(params, "handler").and_then(text).unwrap_or_default();
        if !h.starts_with("http") {
            return Err(fail(400, "ERROR_HANDLER_URL_MISMATCH", "Wrong handler URL"));
        }
        Some(h)
    };
    let auth_type = param(params, "auth_type").and_then(int).unwrap_or(0);
    let dup = w
        .handlers
        .iter()
        .any(|h| h.app.as_deref() == Some(&app) && h.event == event && h.url == url && h.source == source);
    if dup {
        return Err(fail(400, "ERROR_HANDLER_ALREADY_EXIST", "Handler already binded"));
    }
    let id = w.id();
    let application_token = w.apps.get(&app).map(|a| a.app.application_token.clone()).unwrap_or_default();
    w.handlers.push(crate::Handler { id, event, url, app: Some(app), application_token, auth_type, source });
    reply(json!(true))
}

fn unbind(w: &mut World, caller: &Caller, params: &Value) -> Result<Reply, Fail> {
    let app = need_app(caller)?.to_string();
    let event = param(params, "event").and_then(text).map(|e| e.to_ascii_uppercase());
    let handler = param(params, "handler").and_then(text);
    let offline = param(params, "event_type").and_then(text).is_some_and(|t| t.eq_ignore_ascii_case("offline"));
    if offline {
        need_admin(w, caller, "Offline events unbinding")?;
    }
    let before = w.handlers.len();
    w.handlers.retain(|h| {
        let hit = h.app.as_deref() == Some(&app)
            && event.as_ref().is_none_or(|e| e == &h.event)
            && h.url.is_none() == offline
            && (offline || handler.as_ref().is_none_or(|u| Some(u) == h.url.as_ref()));
        !hit
    });
    reply(json!({ "count": before - w.handlers.len() }))
}

/// A change happened: online handlers get a post (after the lock), offline queues a record —
/// except the queue whose source made the change. `only_app` limits it to one application
/// (the Open Lines events of its connector).
pub(crate) fn fire(
    w: &mut World,
    event: &str,
    data: Value,
    only_app: Option<&str>,
    source: Option<&str>,
    fx: &mut Vec<Outgoing>,
) {
    let ts = unix_now();
    let mut queues: Vec<(String, String)> = Vec::new();
    let mut posts = Vec::new();
    for h in w.handlers.iter().filter(|h| h.event == event) {
        if only_app.is_some() && h.app.as_deref() != only_app {
            continue;
        }
        match (&h.url, &h.app) {
            (Some(url), app) => posts.push((h.id, url.clone(), app.clone(), h.application_token.clone())),
            (None, Some(app)) => {
                if source != Some(h.source.as_str()) && !queues.contains(&(app.clone(), h.source.clone())) {
                    queues.push((app.clone(), h.source.clone()));
                }
            }
            (None, None) => {}
        }
    }
    for (handler_id, url, app, application_token) in posts {
        let mut auth = json!({"domain": w.domain(), "client_endpoint": format!("{}/rest/", w.base),
                              "server_endpoint": format!("{}/rest/", w.base), "member_id": w.member_id,
                              "application_token": application_token});
        if let Some(app) = app {
            let user = w.apps.get(&app).map(|a| a.user).unwrap_or(1);
            let token = w.token("a");
            let ttl = w.access_ttl;
            let expires = std::time::Instant::now() + ttl;
            w.access.insert(token.clone(), crate::Access { client_id: app.clone(), user, expires });
            auth["access_token"] = json!(token);
            auth["expires"] = json!((ts + ttl.as_secs() as i64).to_string());
            auth["expires_in"] = json!(ttl.as_secs().to_string());
            auth["scope"] = json!("crm,imconnector,imopenlines,telephony,user");
            auth["status"] = json!("L");
            auth["user_id"] = json!(user.to_string());
        }
        let tree = json!({"event": event, "event_handler_id": handler_id.to_string(), "data": data,
                          "ts": ts.to_string(), "auth": auth});
        let body = tree.as_object().map(crate::form::encode).unwrap_or_default();
        fx.push(Outgoing { event: event.to_string(), url, body });
    }
    let object = data.pointer("/FIELDS/ID").and_then(text);
    for (app, queue_source) in queues {
        let existing = w.offline.iter_mut().find(|r| {
            r.app == app
                && r.source == queue_source
                && r.event == event
                && r.process_id.is_none()
                && object.is_some()
                && r.data.pointer("/FIELDS/ID").and_then(text) == object
        });
        match existing {
            Some(r) => {
                r.timestamp = iso_now();
                r.data = data.clone();
            }
            None => {
                let id = w.id();
                w.offline.push(OfflineRecord {
                    id,
                    message_id: format!("{id:x}"),
                    event: event.to_string(),
                    data: data.clone(),
                    timestamp: iso_now(),
                    process_id: None,
                    error: false,
                    app,
                    source: queue_source,
                });
            }
        }
    }
}

fn offline_json(r: &OfflineRecord, with_process: bool) -> Value {
    let mut v = json!({"ID": r.id.to_string(), "TIMESTAMP_X": r.timestamp, "EVENT_NAME": r.event,
                       "EVENT_DATA": r.data, "EVENT_ADDITIONAL": false, "MESSAGE_ID": r.message_id});
    if with_process {
        v["PROCESS_ID"] = json!(r.process_id.clone().unwrap_or_default());
        v["ERROR"] = json!(if r.error { "1" } else { "0" });
    }
    v
}

fn offline_get(w: &mut World, caller: &Caller, params: &Value) -> Result<Reply, Fail> {
    let app = need_app(caller)?.to_string();
    need_admin(w, caller, "Offline events")?;
    let source = param(params, "auth_connector").and_then(text).unwrap_or_default();
    let clear = param(params, "clear").is_none_or(flag);
    let with_errors = param(params, "error").is_some_and(flag);
    let limit = param(params, "limit").and_then(int).filter(|l| *l > 0).unwrap_or(50) as usize;
    let process = param(params, "process_id").and_then(text).filter(|p| !p.is_empty());
    let chosen: Vec<i64> = w
        .offline
        .iter()
        .filter(|r| r.app == app && r.source == source && (with_errors || !r.error))
        .filter(|r| match &process {
            Some(p) => r.process_id.as_ref() == Some(p),
            None => r.process_id.is_none(),
        })
        .take(limit)
        .map(|r| r.id)
        .collect();
    let events: Vec<Value> =
        w.offline.iter().filter(|r| chosen.contains(&r.id)).map(|r| offline_json(r, false)).collect();
    if clear {
        w.offline.retain(|r| !chosen.contains(&r.id));
        return reply(json!({"process_id": null, "events": events}));
    }
    let pid = match process {
        Some(p) => p,
        None => w.token("p"),
    };
    for r in w.offline.iter_mut().filter(|r| chosen.contains(&r.id)) {
        r.process_id = Some(pid.clone());
    }
    reply(json!({"process_id": pid, "events": events}))
}

/// `event.offline.clear` (`clear`) or `event.offline.error`: only the records the process
/// reserved, all of them or those named by `id` / `message_id`.
fn offline_mark(w: &mut World, caller: &Caller, params: &Value, clear: bool) -> Result<Reply, Fail> {
    let app = need_app(caller)?.to_string();
    need_admin(w, caller, "Offline events")?;
    let pid =
        param(params, "process_id").and_then(text).filter(|p| !p.is_empty()).ok_or_else(|| argument("process_id"))?;
    let ids: Vec<i64> = param(params, "id").map(|v| items(v).into_iter().filter_map(int).collect()).unwrap_or_default();
    let mids: Vec<String> =
        param(params, "message_id").map(|v| items(v).into_iter().filter_map(text).collect()).unwrap_or_default();
    let hit = |r: &OfflineRecord| {
        r.app == app
            && r.process_id.as_deref() == Some(pid.as_str())
            && if !ids.is_empty() { ids.contains(&r.id) } else { mids.is_empty() || mids.contains(&r.message_id) }
    };
    if clear {
        w.offline.retain(|r| !hit(r));
    } else {
        for r in w.offline.iter_mut() {
            if hit(r) {
                r.error = true;
            }
        }
    }
    reply(json!(true))
}

fn offline_list(w: &mut World, caller: &Caller, params: &Value) -> Result<Reply, Fail> {
    let app = need_app(caller)?.to_string();
    need_admin(w, caller, "Offline events")?;
    let source = param(params, "auth_connector").and_then(text).unwrap_or_default();
    let all: Vec<&OfflineRecord> = w.offline.iter().filter(|r| r.app == app && r.source == source).collect();
    let start = param(params, "start").and_then(int).unwrap_or(0).max(0) as usize;
    let page: Vec<Value> = all.iter().skip(start).take(PAGE).map(|r| offline_json(r, true)).collect();
    let next = (start + PAGE < all.len()).then_some((start + PAGE) as i64);
    Ok(Reply { result: Value::Array(page), next, total: Some(all.len() as i64) })
}

fn register(w: &mut World, caller: &Caller, params: &Value) -> Result<Reply, Fail> {
    let app = need_app(caller)?.to_string();
    let id = param(params, "ID").and_then(text).unwrap_or_default();
    if id.is_empty() {
        return reply(
            json!({"result": false, "error": "CONNECTOR_ID_REQUIRED", "error_description": "Connector ID not specified"}),
        );
    }
    if !id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return reply(
            json!({"result": false, "error": "CONNECTOR_ID_REQUIRED", "error_description": "Connector ID is [a-z0-9_] only"}),
        );
    }
    if param(params, "NAME").and_then(text).is_none_or(|n| n.is_empty()) {
        return reply(
            json!({"result": false, "error": "NAME_REQUIRED", "error_description": "Connector name not specified"}),
        );
    }
    if let Some(a) = w.apps.get_mut(&app) {
        a.connectors.insert(id, params.clone());
    }
    reply(json!({ "result": true }))
}

fn activate(w: &mut World, caller: &Caller, params: &Value) -> Result<Reply, Fail> {
    let app = need_app(caller)?.to_string();
    let connector =
        param(params, "CONNECTOR").and_then(text).filter(|c| !c.is_empty()).ok_or_else(|| argument("CONNECTOR"))?;
    let line = param(params, "LINE").and_then(int).ok_or_else(|| argument("LINE"))?;
    let active = param(params, "ACTIVE").ok_or_else(|| argument("ACTIVE"))?;
    let active = text(active).is_some_and(|a| !a.is_empty() && a != "0" && !a.eq_ignore_ascii_case("N"));
    if !w.apps.get(&app).is_some_and(|a| a.connectors.contains_key(&connector)) {
        return Err(fail(
            400,
            "IMCONNECTOR_NO_CORRECT_PROVIDER",
            "Failed to find a suitable provider for the connector",
        ));
    }
    let (_, states) = w
        .lines
        .get_mut(&line)
        .ok_or_else(|| fail(400, "NOT_ACTIVE_LINE", "The line with this ID is inactive or does not exist"))?;
    states.insert(connector, active);
    reply(json!(true))
}

/// The connector's line checked: registered by this application and active on the line.
fn connector_line(w: &World, caller: &Caller, params: &Value) -> Result<(String, String, i64), Fail> {
    let app = need_app(caller)?.to_string();
    let connector =
        param(params, "CONNECTOR").and_then(text).filter(|c| !c.is_empty()).ok_or_else(|| argument("CONNECTOR"))?;
    let line = param(params, "LINE").and_then(int).ok_or_else(|| argument("LINE"))?;
    if !w.apps.get(&app).is_some_and(|a| a.connectors.contains_key(&connector)) {
        return Err(fail(
            400,
            "IMCONNECTOR_NO_CORRECT_PROVIDER",
            "Failed to find a suitable provider for the connector",
        ));
    }
    if w.lines.get(&line).is_none_or(|(_, c)| c.get(&connector) != Some(&true)) {
        return Err(fail(400, "NOT_ACTIVE_LINE", "The line with this ID is inactive or does not exist"));
    }
    Ok((app, connector, line))
}

fn messages_of(params: &Value) -> Result<Vec<Value>, Fail> {
    let m = param(params, "MESSAGES").ok_or_else(|| argument("MESSAGES"))?;
    if !(m.is_array() || m.is_object()) {
        return Err(fail(400, "ERROR_ARGUMENT", "The value of an argument 'MESSAGES' must be of type array"));
    }
    let list: Vec<Value> = items(m).into_iter().cloned().collect();
    if list.is_empty() {
        return Err(argument("MESSAGES"));
    }
    Ok(list)
}

fn send_messages(w: &mut World, caller: &Caller, params: &Value) -> Result<Reply, Fail> {
    let (app, connector, line) = connector_line(w, caller, params)?;
    let list = messages_of(params)?;
    if list.iter().any(|m| ["user", "message", "chat"].iter().any(|k| !m.get(k).is_some_and(Value::is_object))) {
        return Err(fail(400, "ERROR_ARGUMENT", "The incorrect structure of a message inside MESSAGES parameter"));
    }
    let group = w
        .apps
        .get(&app)
        .and_then(|a| a.connectors.get(&connector))
        .and_then(|r| param(r, "CHAT_GROUP"))
        .is_some_and(flag);
    let mut results = Vec::new();
    for m in list {
        let user_id = m.pointer("/user/id").and_then(text).unwrap_or_default();
        let chat_ext = m.pointer("/chat/id").and_then(text).unwrap_or_default();
        let key = if group { chat_ext.clone() } else { user_id.clone() };
        let text_ = m.pointer("/message/text").and_then(text).unwrap_or_default();
        let ext_id = m.pointer("/message/id").and_then(text);
        let at = w.chats.iter().position(|c| c.line == line && c.connector == connector && c.key == key);
        let at = match at {
            Some(i) => i,
            None => {
                let (chat_id, session_id, portal_user) = (w.id(), w.id(), w.id());
                w.chats.push(OlChat {
                    chat_id,
                    session_id,
                    line,
                    connector: connector.clone(),
                    app: app.clone(),
                    key: key.clone(),
                    external_chat: chat_ext.clone(),
                    portal_user,
                    messages: Vec::new(),
                });
                w.chats.len() - 1
            }
        };
        let mid = w.id();
        let chat = &mut w.chats[at];
        chat.messages.push(ChatMessage {
            id: mid,
            author: Author::Customer,
            text: text_.clone(),
            external_id: ext_id.clone(),
        });
        let url = m.pointer("/chat/url").and_then(text).unwrap_or_default();
        results.push(json!({
            "user": chat.portal_user.to_string(),
            "message": {"id": ext_id, "date": {}, "text": text_, "files": []},
            "chat": {"id": chat_ext, "name": m.pointer("/chat/name").cloned().unwrap_or(Value::Null),
                     "description": format!("Link to the original post: {url}")},
            "extra": {},
            "SUCCESS": true,
            "session": {"ID": chat.session_id.to_string(), "CHAT_ID": chat.chat_id.to_string()},
        }));
    }
    reply(json!({"SUCCESS": true, "DATA": {"RESULT": results}}))
}

fn status_reports(w: &mut World, caller: &Caller, params: &Value, delivery: bool) -> Result<Reply, Fail> {
    let (_, connector, line) = connector_line(w, caller, params)?;
    for m in messages_of(params)? {
        let ids = m.pointer("/message/id").map(|v| items(v).into_iter().filter_map(text).collect()).unwrap_or_default();
        let report = StatusReport {
            connector: connector.clone(),
            line,
            chat_id: m.pointer("/im/chat_id").and_then(int).unwrap_or(0),
            message_id: m.pointer("/im/message_id").and_then(int).unwrap_or(0),
            external_ids: ids,
            external_chat: m.pointer("/chat/id").and_then(text).unwrap_or_default(),
        };
        if delivery {
            w.deliveries.push(report);
        } else {
            w.readings.push(report);
        }
    }
    reply(json!({"SUCCESS": true, "DATA": []}))
}

/// The chat a connector opened on `line` for an external chat or user id.
pub(crate) fn find_chat(w: &World, line: i64, chat: &str) -> Option<usize> {
    w.chats.iter().position(|c| c.line == line && (c.external_chat == chat || c.key == chat))
}

pub(crate) fn operator_reply(
    w: &mut World,
    line: i64,
    chat: &str,
    text_: &str,
    fx: &mut Vec<Outgoing>,
) -> Result<OperatorMessage, Fail> {
    let at = find_chat(w, line, chat).ok_or_else(|| fail(400, "CHAT_NOT_FOUND", "No Open Lines chat for it"))?;
    let mid = w.id();
    let operator = w.users.get(&1).and_then(|u| u.fields.get("NAME")).and_then(text).unwrap_or_default();
    let c = &mut w.chats[at];
    c.messages.push(ChatMessage { id: mid, author: Author::Operator, text: text_.to_string(), external_id: None });
    let (app, connector, chat_id, external) = (c.app.clone(), c.connector.clone(), c.chat_id, c.external_chat.clone());
    let signature = w
        .apps
        .get(&app)
        .and_then(|a| a.connectors.get(&connector))
        .and_then(|r| param(r, "NEED_SIGNATURE"))
        .is_some_and(flag);
    let shown = if signature { format!("[b]{operator}:[/b] [br]{text_}") } else { text_.to_string() };
    let data = json!({"CONNECTOR": connector, "LINE": line.to_string(),
                      "MESSAGES": [{"im": {"chat_id": chat_id, "message_id": mid},
                                    "message": {"user_id": 1, "text": shown},
                                    "chat": {"id": external}}]});
    fire(w, "ONIMCONNECTORMESSAGEADD", data, Some(&app), None, fx);
    Ok(OperatorMessage { chat_id, message_id: mid })
}

pub(crate) fn finish_dialog(w: &mut World, line: i64, chat: &str, fx: &mut Vec<Outgoing>) -> Result<(), Fail> {
    let at = find_chat(w, line, chat).ok_or_else(|| fail(400, "CHAT_NOT_FOUND", "No Open Lines chat for it"))?;
    let c = &w.chats[at];
    let data = json!({"CONNECTOR": c.connector, "LINE": line.to_string(),
                      "DATA": [{"connector": {"connector_id": c.connector, "line_id": line, "chat_id": c.external_chat, "user_id": c.key},
                                "session": {"id": c.session_id, "closed": "Y", "parent_id": 0, "close_term": 10},
                                "chat": {"id": c.chat_id}, "user": {"id": c.key}}]});
    let app = c.app.clone();
    fire(w, "ONIMCONNECTORDIALOGFINISH", data, Some(&app), None, fx);
    let next = w.id();
    w.chats[at].session_id = next;
    Ok(())
}

pub(crate) fn disconnect(w: &mut World, line: i64, connector: &str, fx: &mut Vec<Outgoing>) -> Result<(), Fail> {
    let (_, states) = w.lines.get_mut(&line).ok_or_else(|| fail(400, "NOT_ACTIVE_LINE", "No such line"))?;
    states.insert(connector.to_string(), false);
    let apps: Vec<String> =
        w.apps.iter().filter(|(_, a)| a.connectors.contains_key(connector)).map(|(k, _)| k.clone()).collect();
    for app in apps {
        fire(w, "ONIMCONNECTORSTATUSDELETE", json!({"connector": connector, "line": line}), Some(&app), None, fx);
    }
    Ok(())
}

pub(crate) fn add_call(w: &mut World, call: &Call, fx: &mut Vec<Outgoing>) -> i64 {
    let id = w.id();
    let call_id = format!("externalCall.{:032x}.{}", u128::from(id as u64) * 0x9e37_79b9, unix_now());
    let (crm_type, crm_id) = match &call.crm_entity {
        Some((t, i)) => (json!(t), json!(i.to_string())),
        None => (Value::Null, Value::Null),
    };
    let activity = w.id();
    let row = json!({
        "ID": id.to_string(), "PORTAL_USER_ID": call.portal_user_id.to_string(), "PORTAL_NUMBER": "reg1",
        "PHONE_NUMBER": call.phone_number, "CALL_ID": call_id, "EXTERNAL_CALL_ID": null, "CALL_CATEGORY": "external",
        "CALL_LOG": null, "CALL_DURATION": call.duration.to_string(), "CALL_START_DATE": call.start_date,
        "CALL_RECORD_URL": call.record_url, "CALL_VOTE": null, "COST": "0.0000", "COST_CURRENCY": "RUB",
        "CALL_FAILED_CODE": call.failed_code, "CALL_FAILED_REASON": if call.failed_code == "200" { "Success call" } else { "Call canceled" },
        "CRM_ENTITY_TYPE": crm_type, "CRM_ENTITY_ID": crm_id, "CRM_ACTIVITY_ID": activity.to_string(),
        "REST_APP_ID": null, "REST_APP_NAME": null, "TRANSCRIPT_ID": null, "TRANSCRIPT_PENDING": "N",
        "SESSION_ID": null, "REDIAL_ATTEMPT": null, "COMMENT": null, "RECORD_DURATION": null,
        "RECORD_FILE_ID": call.record_file_id, "CALL_TYPE": call.call_type.to_string(),
    });
    let data = json!({
        "CALL_ID": row["CALL_ID"], "CALL_TYPE": row["CALL_TYPE"], "PHONE_NUMBER": row["PHONE_NUMBER"],
        "PORTAL_NUMBER": row["PORTAL_NUMBER"], "PORTAL_USER_ID": row["PORTAL_USER_ID"], "CALL_DURATION": row["CALL_DURATION"],
        "CALL_START_DATE": row["CALL_START_DATE"], "COST": "0", "COST_CURRENCY": "RUB",
        "CALL_FAILED_CODE": row["CALL_FAILED_CODE"], "CALL_FAILED_REASON": row["CALL_FAILED_REASON"],
        "CRM_ACTIVITY_ID": row["CRM_ACTIVITY_ID"],
    });
    w.calls.push(row.as_object().cloned().unwrap_or_default());
    fire(w, "ONVOXIMPLANTCALLEND", data, None, None, fx);
    id
}

/// `batch`: up to [`BATCH_MAX`] commands run in order, `$result[…]` substituted, errors per key.
pub(crate) fn batch(
    w: &mut World,
    caller: &Caller,
    params: &Value,
    order: &[String],
    source: Option<&str>,
    fx: &mut Vec<Outgoing>,
) -> Result<Reply, Fail> {
    let halt = param(params, "halt").is_some_and(flag);
    let mut cmds: Vec<(String, String)> = match param(params, "cmd") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), text(v).unwrap_or_default())).collect(),
        Some(Value::Array(a)) => {
            a.iter().enumerate().map(|(i, v)| (i.to_string(), text(v).unwrap_or_default())).collect()
        }
        _ => return Err(argument("cmd")),
    };
    cmds.sort_by_key(|(k, _)| order.iter().position(|o| o == k).unwrap_or(usize::MAX));
    let (mut results, mut errors, mut totals, mut nexts, mut times) =
        (Map::new(), Map::new(), Map::new(), Map::new(), Map::new());
    for (n, (key, cmd)) in cmds.into_iter().enumerate() {
        let started = crate::server::now_f64();
        let outcome = if n >= BATCH_MAX {
            Err(fail(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded"))
        } else {
            let (method, query) = cmd.split_once('?').unwrap_or((cmd.as_str(), ""));
            let method = method.trim().trim_end_matches(".json").to_ascii_lowercase();
            let mut sub = Value::Object(crate::form::parse(query.as_bytes()).unwrap_or_default());
            substitute(&mut sub, &results);
            let sub_source = param(&sub, "auth_connector").and_then(text);
            if method == "batch" {
                Err(fail(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"))
            } else if let Some(f) = crate::server::blocked(w, &method) {
                Err(f)
            } else {
                run(w, caller, &method, &sub, sub_source.as_deref().or(source), fx)
            }
        };
        times.insert(key.clone(), crate::server::time_json(started, None));
        match outcome {
            Ok(r) => {
                results.insert(key.clone(), r.result);
                if let Some(t) = r.total {
                    totals.insert(key.clone(), json!(t));
                }
                if let Some(nx) = r.next {
                    nexts.insert(key.clone(), json!(nx));
                }
            }
            Err(f) => {
                errors.insert(key, json!({"error": f.code, "error_description": f.description}));
                if halt {
                    break;
                }
            }
        }
    }
    // PHP writes an empty associative array as `[]`.
    let php = |m: Map<String, Value>| if m.is_empty() { json!([]) } else { Value::Object(m) };
    reply(json!({"result": php(results), "result_error": php(errors), "result_total": php(totals),
                 "result_next": php(nexts), "result_time": php(times)}))
}

/// `$result[key][FIELD][0]` in a command's parameters → the earlier command's value.
fn substitute(v: &mut Value, results: &Map<String, Value>) {
    match v {
        Value::Object(m) => m.values_mut().for_each(|x| substitute(x, results)),
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, results)),
        Value::String(s) if s.contains("$result[") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(at) = rest.find("$result[") {
                out.push_str(&rest[..at]);
                let mut tail = &rest[at + "$result".len()..];
                let mut node: Option<&Value> = None;
                let mut first = true;
                while let Some(inner) = tail.strip_prefix('[') {
                    let Some(close) = inner.find(']') else { break };
                    let seg = &inner[..close];
                    node = if first {
                        results.get(seg)
                    } else {
                        node.and_then(|n| match n {
                            Value::Object(m) => m.get(seg),
                            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                            _ => None,
                        })
                    };
                    first = false;
                    tail = &inner[close + 1..];
                }
                out.push_str(&node.and_then(text).unwrap_or_default());
                rest = tail;
            }
            out.push_str(rest);
            *s = out;
        }
        _ => {}
    }
}
