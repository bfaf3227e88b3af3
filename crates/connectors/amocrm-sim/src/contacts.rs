//! Contacts, deals' custom fields and tasks: the list with its paging, filters and order, the
//! batch writes with their limit and validation errors, and the webhooks a change sends.

#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};

use crate::server::{hal, problem, validation, Actor};
use crate::{fire, Contact, Inner, LeadField, Task, World, EMAIL_FIELD, MAX_PAGE, MAX_WRITE, PHONE_FIELD};

/// A phone's `enum_code`s and their `enum_id`s.
const PHONE_ENUMS: [(&str, i64); 6] =
    [("WORK", 11), ("WORKDD", 12), ("MOB", 13), ("FAX", 14), ("HOME", 15), ("OTHER", 16)];
/// An e-mail's `enum_code`s and their `enum_id`s.
const EMAIL_ENUMS: [(&str, i64); 3] = [("WORK", 21), ("PRIV", 22), ("OTHER", 23)];
/// A page when `limit` is not given.
const DEFAULT_LIMIT: usize = 50;

fn enums(code: &str) -> &'static [(&'static str, i64)] {
    if code == "PHONE" {
        &PHONE_ENUMS
    } else {
        &EMAIL_ENUMS
    }
}

fn enum_id(code: &str, enum_code: &str) -> i64 {
    enums(code).iter().find(|(c, _)| *c == enum_code).map(|(_, id)| *id).unwrap_or(0)
}

/// A contact as `GET /api/v4/contacts` shows it.
pub(crate) fn contact_json(base: &str, c: &Contact, with_leads: bool, w: &World) -> Value {
    let field = |id: i64, name: &str, code: &str, values: &[(String, String)]| {
        json!({"field_id": id, "field_name": name, "field_code": code, "field_type": "multitext",
               "values": values.iter().map(|(v, e)| json!({"value": v, "enum_id": enum_id(code, e), "enum_code": e}))
                   .collect::<Vec<_>>()})
    };
    let mut fields = Vec::new();
    if !c.phones.is_empty() {
        fields.push(field(PHONE_FIELD, "Телефон", "PHONE", &c.phones));
    }
    if !c.emails.is_empty() {
        fields.push(field(EMAIL_FIELD, "Email", "EMAIL", &c.emails));
    }
    let mut v = json!({
        "id": c.id, "name": c.name, "first_name": c.first_name, "last_name": c.last_name,
        "responsible_user_id": c.responsible_user_id, "group_id": 0, "created_by": c.updated_by,
        "updated_by": c.updated_by, "created_at": c.created_at, "updated_at": c.updated_at,
        "closest_task_at": null, "is_deleted": false, "is_unsorted": false,
        "custom_fields_values": if fields.is_empty() { Value::Null } else { Value::Array(fields) },
        "account_id": w.account_id,
        "_links": {"self": {"href": format!("{base}/api/v4/contacts/{}", c.id)}},
        "_embedded": {"tags": [], "companies": []},
    });
    if with_leads {
        v["_embedded"]["leads"] = w
            .leads
            .values()
            .filter(|l| l.contact_ids.contains(&c.id))
            .map(|l| json!({"id": l.id, "_links": {"self": {"href": format!("{base}/api/v4/leads/{}", l.id)}}}))
            .collect();
    }
    v
}

/// What a list request asks for.
struct ListQuery {
    page: usize,
    limit: usize,
    from: Option<i64>,
    to: Option<i64>,
    ids: Vec<i64>,
    query: Option<String>,
    /// (key, descending)
    order: Option<(String, bool)>,
    with_leads: bool,
}

fn list_query(raw: Option<&str>) -> Result<ListQuery, Response> {
    let mut q = ListQuery {
        page: 1,
        limit: DEFAULT_LIMIT,
        from: None,
        to: None,
        ids: Vec::new(),
        query: None,
        order: None,
        with_leads: false,
    };
    let bad = |key: &str| validation("0", "InvalidType", key, "This value is not valid.");
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let int = || v.trim().parse::<i64>().map_err(|_| bad(&k));
        match k.as_ref() {
            "page" => q.page = usize::try_from(int()?).ok().filter(|p| *p >= 1).ok_or_else(|| bad("page"))?,
            "limit" => {
                q.limit = usize::try_from(int()?)
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| validation("0", "LessThanOrEqual", "limit", "This value should be 250 or less."))?
            }
            "filter[updated_at][from]" => q.from = Some(int()?),
            "filter[updated_at][to]" => q.to = Some(int()?),
            "filter[updated_at]" => {
                let t = int()?;
                (q.from, q.to) = (Some(t), Some(t));
            }
            "query" => q.query = Some(v.to_lowercase()),
            "with" => q.with_leads = v.split(',').any(|x| x.trim() == "leads"),
            k if k == "filter[id]" || k.starts_with("filter[id][") => q.ids.push(int()?),
            k if k.starts_with("order[") && k.ends_with(']') => {
                let key = &k[6..k.len() - 1];
                if key != "updated_at" && key != "id" && key != "created_at" {
                    return Err(bad(k));
                }
                let desc = match v.as_ref() {
                    "asc" => false,
                    "desc" => true,
                    _ => return Err(bad(k)),
                };
                q.order = Some((key.to_string(), desc));
            }
            _ => {}
        }
    }
    Ok(q)
}

fn matches(c: &Contact, q: &ListQuery) -> bool {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    q.from.is_none_or(|f| c.updated_at >= f)
        && q.to.is_none_or(|t| c.updated_at <= t)
        && (q.ids.is_empty() || q.ids.contains(&c.id))
        && q.query.as_ref().is_none_or(|needle| {
            let needle_digits = digits(needle);
            c.name.to_lowercase().contains(needle.as_str())
                || c.emails.iter().any(|(e, _)| e.to_lowercase().contains(needle.as_str()))
                || (needle_digits.len() >= 5 && c.phones.iter().any(|(p, _)| digits(p).contains(&needle_digits)))
        })
}

/// `GET /api/v4/contacts`: a page; 204 past the last.
pub(crate) async fn list(RawQuery(raw): RawQuery, State(inner): State<Arc<Inner>>) -> Response {
    let q = match list_query(raw.as_deref()) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let w = inner.world();
    let mut found: Vec<&Contact> = w.contacts.values().filter(|c| matches(c, &q)).collect();
    if let Some((key, desc)) = &q.order {
        found.sort_by_key(|c| match key.as_str() {
            "updated_at" => (c.updated_at, c.id),
            "created_at" => (c.created_at, c.id),
            _ => (c.id, 0),
        });
        if *desc {
            found.reverse();
        }
    }
    let skip = (q.page - 1).saturating_mul(q.limit);
    let page: Vec<Value> =
        found.iter().skip(skip).take(q.limit).map(|c| contact_json(&inner.base, c, q.with_leads, &w)).collect();
    if page.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let href = |page: usize| {
        let mut f = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes()) {
            if k != "page" {
                f.append_pair(&k, &v);
            }
        }
        f.append_pair("page", &page.to_string());
        json!({"href": format!("{}/api/v4/contacts?{}", inner.base, f.finish())})
    };
    let mut links = json!({"self": href(q.page)});
    if found.len() > skip + q.limit {
        links["next"] = href(q.page + 1);
    }
    if q.page > 1 {
        links["prev"] = href(q.page - 1);
    }
    hal(StatusCode::OK, json!({"_page": q.page, "_links": links, "_embedded": {"contacts": page}}))
}

/// `GET /api/v4/contacts/{id}`.
pub(crate) async fn one(Path(id): Path<i64>, RawQuery(raw): RawQuery, State(inner): State<Arc<Inner>>) -> Response {
    let with_leads = list_query(raw.as_deref()).map(|q| q.with_leads).unwrap_or(false);
    let w = inner.world();
    match w.contacts.get(&id) {
        Some(c) => hal(StatusCode::OK, contact_json(&inner.base, c, with_leads, &w)),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// A batch's rows: an array of objects, at most [`MAX_WRITE`].
fn rows(body: &[u8], what: &str) -> Result<Vec<Value>, Response> {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(body) else {
        return Err(problem(400, "Bad Request", &format!("an array of {what} is expected")));
    };
    if items.is_empty() {
        return Err(validation("0", "NotBlank", "", "This collection should contain 1 element or more."));
    }
    if items.len() > MAX_WRITE {
        return Err(validation(
            &MAX_WRITE.to_string(),
            "TooManyEntities",
            "",
            &format!("This collection should contain {MAX_WRITE} elements or less."),
        ));
    }
    Ok(items)
}

/// The row's `request_id`: the one sent, else its index.
fn request_id(item: &Value, index: usize) -> String {
    match item.get("request_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => index.to_string(),
    }
}

type Values = Vec<(String, String)>;

/// A row's `custom_fields_values`: the phones and the e-mails it sets (`None`: left as they are).
fn contact_fields(v: &Value, rid: &str) -> Result<(Option<Values>, Option<Values>), Response> {
    let (mut phones, mut emails) = (None, None);
    let fields = match v {
        Value::Null => return Ok((None, None)),
        Value::Array(a) => a,
        _ => return Err(validation(rid, "InvalidType", "custom_fields_values", "This value should be of type array.")),
    };
    for (i, f) in fields.iter().enumerate() {
        let code = match (f.get("field_code").and_then(Value::as_str), f.get("field_id").and_then(Value::as_i64)) {
            (Some("PHONE"), _) | (None, Some(PHONE_FIELD)) => "PHONE",
            (Some("EMAIL"), _) | (None, Some(EMAIL_FIELD)) => "EMAIL",
            _ => {
                let path = format!("custom_fields_values.{i}.field_id");
                return Err(validation(
                    rid,
                    "NotSupportedChoice",
                    &path,
                    "The value you selected is not a valid choice.",
                ));
            }
        };
        let mut values = Vec::new();
        for (j, x) in f.get("values").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = |k: &str| format!("custom_fields_values.{i}.values.{j}.{k}");
            let value = x.get("value").and_then(Value::as_str).map(str::trim).unwrap_or_default();
            if value.is_empty() {
                return Err(validation(rid, "NotBlank", &at("value"), "This value should not be blank."));
            }
            if code == "EMAIL" && !value.contains('@') {
                return Err(validation(rid, "InvalidEmail", &at("value"), "This value is not a valid email address."));
            }
            let enum_code = match (x.get("enum_code").and_then(Value::as_str), x.get("enum_id").and_then(Value::as_i64))
            {
                (Some(c), _) => enums(code).iter().find(|(e, _)| *e == c).map(|(e, _)| *e),
                (None, Some(id)) => enums(code).iter().find(|(_, e)| *e == id).map(|(e, _)| *e),
                (None, None) => Some("WORK"),
            };
            let Some(enum_code) = enum_code else {
                return Err(validation(
                    rid,
                    "NotSupportedChoice",
                    &at("enum_code"),
                    "The value you selected is not a valid choice.",
                ));
            };
            values.push((value.to_string(), enum_code.to_string()));
        }
        if code == "PHONE" {
            phones = Some(values);
        } else {
            emails = Some(values);
        }
    }
    Ok((phones, emails))
}

/// Applies one row to `c`; `Err` is the 400 naming what is wrong.
fn write_contact(c: &mut Contact, item: &Value, rid: &str, users: &[i64]) -> Result<(), Response> {
    let Some(obj) = item.as_object() else { return Err(validation(rid, "InvalidType", "", "an object is expected")) };
    let text = |k: &str| -> Result<Option<String>, Response> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(validation(rid, "InvalidType", k, "This value should be of type string.")),
        }
    };
    let (name, first, last) = (text("name")?, text("first_name")?, text("last_name")?);
    for (k, v) in obj {
        match k.as_str() {
            "id"
            | "request_id"
            | "name"
            | "first_name"
            | "last_name"
            | "custom_fields_values"
            | "_embedded"
            | "created_by"
            | "updated_by"
            | "created_at"
            | "updated_at" => {}
            "responsible_user_id" => match v.as_i64() {
                Some(u) if users.contains(&u) => c.responsible_user_id = u,
                _ => return Err(validation(rid, "NotSupportedChoice", k, "The user is not a member of the account.")),
            },
            other => {
                return Err(validation(rid, "NotWritable", other, "This field is not writable or has a wrong type."))
            }
        }
    }
    if let Some(f) = &first {
        c.first_name = f.clone();
    }
    if let Some(l) = &last {
        c.last_name = l.clone();
    }
    match name {
        Some(n) => c.name = n,
        None if first.is_some() || last.is_some() => {
            c.name = format!("{} {}", c.first_name, c.last_name).trim().to_string();
        }
        None => {}
    }
    let (phones, emails) = contact_fields(obj.get("custom_fields_values").unwrap_or(&Value::Null), rid)?;
    if let Some(p) = phones {
        c.phones = p;
    }
    if let Some(e) = emails {
        c.emails = e;
    }
    Ok(())
}

fn written(base: &str, c: &Contact, rid: &str) -> Value {
    json!({"id": c.id, "name": c.name, "updated_at": c.updated_at, "request_id": rid,
           "_links": {"self": {"href": format!("{base}/api/v4/contacts/{}", c.id)}}})
}

/// `POST /api/v4/contacts`: all rows or none; the `add_contact` hook for them.
pub(crate) async fn add(
    State(inner): State<Arc<Inner>>,
    Extension(Actor(user)): Extension<Actor>,
    body: Bytes,
) -> Response {
    let items = match rows(&body, "contacts") {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut w = inner.world();
    let users: Vec<i64> = w.users.keys().copied().collect();
    let now = w.now();
    let mut made = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let rid = request_id(item, i);
        let mut c = Contact {
            id: 0,
            name: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            responsible_user_id: user,
            phones: Vec::new(),
            emails: Vec::new(),
            created_at: now,
            updated_at: now,
            updated_by: user,
        };
        if item.get("id").is_some() {
            return validation(&rid, "NotWritable", "id", "This field is not writable.");
        }
        if let Err(r) = write_contact(&mut c, item, &rid, &users) {
            return r;
        }
        made.push((c, rid));
    }
    let mut answer = Vec::new();
    for (c, rid) in &mut made {
        c.id = w.id();
        answer.push(written(&inner.base, c, rid));
        w.contacts.insert(c.id, c.clone());
    }
    let body = hook("add", &made.iter().map(|(c, _)| c).collect::<Vec<_>>(), &w);
    fire(&inner, w.subscribed("add_contact"), body);
    hal(
        StatusCode::OK,
        json!({"_links": {"self": {"href": format!("{}/api/v4/contacts", inner.base)}}, "_embedded": {"contacts": answer}}),
    )
}

/// Changes the rows (each with `id`) all or none; the `update_contact` hook for them.
fn change(inner: &Arc<Inner>, user: i64, items: &[Value]) -> Result<Vec<Value>, Response> {
    let mut w = inner.world();
    let users: Vec<i64> = w.users.keys().copied().collect();
    let now = w.now();
    let mut next = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let rid = request_id(item, i);
        let Some(id) = item.get("id").and_then(Value::as_i64) else {
            return Err(validation(&rid, "NotBlank", "id", "This value should not be blank."));
        };
        let Some(mut c) = w.contacts.get(&id).cloned() else {
            return Err(validation(&rid, "NotFound", "id", "Contact not found."));
        };
        write_contact(&mut c, item, &rid, &users)?;
        c.updated_at = now;
        c.updated_by = user;
        next.push((c, rid));
    }
    let answer = next.iter().map(|(c, rid)| written(&inner.base, c, rid)).collect();
    for (c, _) in &next {
        w.contacts.insert(c.id, c.clone());
    }
    let body = hook("update", &next.iter().map(|(c, _)| c).collect::<Vec<_>>(), &w);
    fire(inner, w.subscribed("update_contact"), body);
    Ok(answer)
}

/// `PATCH /api/v4/contacts`: an array, each with `id`.
pub(crate) async fn update(
    State(inner): State<Arc<Inner>>,
    Extension(Actor(user)): Extension<Actor>,
    body: Bytes,
) -> Response {
    let answer = match rows(&body, "contacts").and_then(|items| change(&inner, user, &items)) {
        Ok(a) => a,
        Err(r) => return r,
    };
    hal(
        StatusCode::OK,
        json!({"_links": {"self": {"href": format!("{}/api/v4/contacts", inner.base)}}, "_embedded": {"contacts": answer}}),
    )
}

/// `PATCH /api/v4/contacts/{id}`: one object.
pub(crate) async fn update_one(
    Path(id): Path<i64>,
    State(inner): State<Arc<Inner>>,
    Extension(Actor(user)): Extension<Actor>,
    body: Bytes,
) -> Response {
    let Ok(Value::Object(mut item)) = serde_json::from_slice::<Value>(&body) else {
        return problem(400, "Bad Request", "an object is expected");
    };
    item.insert("id".into(), json!(id));
    match change(&inner, user, &[Value::Object(item)]) {
        Ok(mut a) => hal(StatusCode::OK, a.pop().unwrap_or(Value::Null)),
        Err(r) => r,
    }
}

/// A hook body for contacts `action` (`add`, `update`), bracket keys as amoCRM writes them.
pub(crate) fn hook(action: &str, contacts: &[&Contact], w: &World) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    for (i, c) in contacts.iter().enumerate() {
        let p = format!("contacts[{action}][{i}]");
        for (k, v) in [
            ("id", c.id.to_string()),
            ("name", c.name.clone()),
            ("responsible_user_id", c.responsible_user_id.to_string()),
            ("date_create", c.created_at.to_string()),
            ("last_modified", c.updated_at.to_string()),
            ("created_user_id", c.updated_by.to_string()),
            ("modified_user_id", c.updated_by.to_string()),
            ("account_id", w.account_id.to_string()),
            ("type", "contact".to_string()),
        ] {
            f.append_pair(&format!("{p}[{k}]"), &v);
        }
        let mut n = 0;
        for (id, name, code, values) in
            [(PHONE_FIELD, "Телефон", "PHONE", &c.phones), (EMAIL_FIELD, "Email", "EMAIL", &c.emails)]
        {
            if values.is_empty() {
                continue;
            }
            let q = format!("{p}[custom_fields][{n}]");
            f.append_pair(&format!("{q}[id]"), &id.to_string());
            f.append_pair(&format!("{q}[name]"), name);
            f.append_pair(&format!("{q}[code]"), code);
            for (j, (value, enum_code)) in values.iter().enumerate() {
                f.append_pair(&format!("{q}[values][{j}][value]"), value);
                f.append_pair(&format!("{q}[values][{j}][enum]"), &enum_id(code, enum_code).to_string());
            }
            n += 1;
        }
        for l in w.leads.values().filter(|l| l.contact_ids.contains(&c.id)) {
            f.append_pair(&format!("{p}[linked_leads_id][{}][ID]", l.id), &l.id.to_string());
        }
    }
    f.append_pair("account[subdomain]", &w.subdomain);
    f.append_pair("account[id]", &w.account_id.to_string());
    f.finish()
}

/// The `delete_contact` hook body.
pub(crate) fn delete_hook(ids: &[i64], w: &World) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    for (i, id) in ids.iter().enumerate() {
        f.append_pair(&format!("contacts[delete][{i}][id]"), &id.to_string());
        f.append_pair(&format!("contacts[delete][{i}][type]"), "contact");
    }
    f.append_pair("account[subdomain]", &w.subdomain);
    f.append_pair("account[id]", &w.account_id.to_string());
    f.finish()
}

/// A deal's `custom_fields_values` as written: field id → its new values (empty: cleared).
pub(crate) fn lead_values(
    defs: &BTreeMap<i64, LeadField>,
    v: &Value,
    request_id: usize,
) -> Result<Vec<(i64, Vec<Value>)>, Response> {
    let rid = request_id.to_string();
    let Value::Array(fields) = v else {
        return Err(validation(&rid, "InvalidType", "custom_fields_values", "This value should be of type array."));
    };
    let mut out = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let def = f.get("field_id").and_then(Value::as_i64).and_then(|id| defs.get(&id));
        let Some(def) = def else {
            let path = format!("custom_fields_values.{i}.field_id");
            return Err(validation(&rid, "NotSupportedChoice", &path, "The value you selected is not a valid choice."));
        };
        let mut values = Vec::new();
        for (j, x) in f.get("values").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let path = format!("custom_fields_values.{i}.values.{j}.value");
            let wrong =
                |kind: &str| validation(&rid, "InvalidType", &path, &format!("This value should be of type {kind}."));
            let value = x.get("value").unwrap_or(&Value::Null);
            let stored = match def.field_type.as_str() {
                "select" => {
                    let by_id = x.get("enum_id").and_then(Value::as_i64);
                    let by_text = value.as_str();
                    let found = def.enums.iter().find(|(id, v)| Some(*id) == by_id || Some(v.as_str()) == by_text);
                    let Some((id, text)) = found else {
                        let path = format!("custom_fields_values.{i}.values.{j}.enum_id");
                        return Err(validation(
                            &rid,
                            "NotSupportedChoice",
                            &path,
                            "The value you selected is not a valid choice.",
                        ));
                    };
                    json!({"value": text, "enum_id": id, "enum_code": null})
                }
                "numeric" => match value {
                    Value::Number(n) => json!({"value": n.to_string()}),
                    Value::String(s) if s.trim().parse::<f64>().is_ok() => json!({"value": s.trim()}),
                    _ => return Err(wrong("numeric")),
                },
                "checkbox" => match value {
                    Value::Bool(b) => json!({"value": b}),
                    _ => return Err(wrong("bool")),
                },
                "date" => match value.as_i64() {
                    Some(t) => json!({"value": t}),
                    None => return Err(wrong("int")),
                },
                _ => match value {
                    Value::String(s) if !s.is_empty() => json!({"value": s}),
                    Value::Number(n) => json!({"value": n.to_string()}),
                    _ => return Err(wrong("string")),
                },
            };
            values.push(stored);
        }
        out.push((def.id, values));
    }
    Ok(out)
}

/// A deal's `custom_fields_values` as amoCRM shows them (`null` when it has none).
pub(crate) fn lead_fields_json(w: &World, lead_id: i64) -> Value {
    let Some(values) = w.lead_values.get(&lead_id).filter(|v| !v.is_empty()) else { return Value::Null };
    values
        .iter()
        .map(|(id, vals)| {
            let def = w.lead_fields.get(id);
            json!({"field_id": id, "field_name": def.map(|d| d.name.as_str()), "field_code": null,
                   "field_type": def.map(|d| d.field_type.as_str()), "values": vals})
        })
        .collect()
}

fn task_json(base: &str, t: &Task) -> Value {
    json!({"id": t.id, "text": t.text, "complete_till": t.complete_till, "entity_type": t.entity_type,
           "entity_id": t.entity_id, "responsible_user_id": t.responsible_user_id, "task_type_id": t.task_type_id,
           "created_by": t.created_by, "is_completed": false, "result": [],
           "_links": {"self": {"href": format!("{base}/api/v4/tasks/{}", t.id)}}})
}

/// `GET /api/v4/tasks`: every task (204 when none).
pub(crate) async fn tasks(State(inner): State<Arc<Inner>>) -> Response {
    let w = inner.world();
    if w.tasks.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let tasks: Vec<Value> = w.tasks.iter().map(|t| task_json(&inner.base, t)).collect();
    hal(StatusCode::OK, json!({"_page": 1, "_embedded": {"tasks": tasks}}))
}

/// Reads one task row; `Err` is the 400 naming what is wrong.
fn read_task(w: &World, item: &Value, rid: &str, user: i64) -> Result<Task, Response> {
    let text = item.get("text").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Err(validation(rid, "NotBlank", "text", "This value should not be blank."));
    }
    let Some(complete_till) = item.get("complete_till").and_then(Value::as_i64) else {
        return Err(validation(rid, "NotBlank", "complete_till", "This value should not be blank."));
    };
    let entity_type = item.get("entity_type").and_then(Value::as_str).unwrap_or_default().to_string();
    let entity_id = item.get("entity_id").and_then(Value::as_i64).unwrap_or(0);
    let exists = match entity_type.as_str() {
        "" => entity_id == 0,
        "leads" => w.leads.contains_key(&entity_id),
        "contacts" => w.contacts.contains_key(&entity_id),
        _ => {
            return Err(validation(
                rid,
                "NotSupportedChoice",
                "entity_type",
                "The value you selected is not a valid choice.",
            ))
        }
    };
    if !exists {
        return Err(validation(rid, "NotFound", "entity_id", "Entity not found."));
    }
    let responsible_user_id = match item.get("responsible_user_id") {
        None | Some(Value::Null) => user,
        Some(v) => match v.as_i64().filter(|u| w.users.contains_key(u)) {
            Some(u) => u,
            None => {
                return Err(validation(
                    rid,
                    "NotSupportedChoice",
                    "responsible_user_id",
                    "The user is not a member of the account.",
                ))
            }
        },
    };
    let task_type_id = match item.get("task_type_id") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_i64().filter(|t| *t == 1 || *t == 2) {
            Some(t) => t,
            None => {
                return Err(validation(
                    rid,
                    "NotSupportedChoice",
                    "task_type_id",
                    "The value you selected is not a valid choice.",
                ))
            }
        },
    };
    Ok(Task {
        id: 0,
        text: text.to_string(),
        complete_till,
        entity_type,
        entity_id,
        responsible_user_id,
        task_type_id,
        created_by: user,
    })
}

/// `POST /api/v4/tasks`: all rows or none.
pub(crate) async fn add_tasks(
    State(inner): State<Arc<Inner>>,
    Extension(Actor(user)): Extension<Actor>,
    body: Bytes,
) -> Response {
    let items = match rows(&body, "tasks") {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut w = inner.world();
    let mut made = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let rid = request_id(item, i);
        match read_task(&w, item, &rid, user) {
            Ok(t) => made.push((t, rid)),
            Err(r) => return r,
        }
    }
    let mut answer = Vec::new();
    for (mut t, rid) in made {
        t.id = w.id();
        answer.push(json!({"id": t.id, "request_id": rid,
                           "_links": {"self": {"href": format!("{}/api/v4/tasks/{}", inner.base, t.id)}}}));
        w.tasks.push(t);
    }
    hal(
        StatusCode::OK,
        json!({"_links": {"self": {"href": format!("{}/api/v4/tasks", inner.base)}}, "_embedded": {"tasks": answer}}),
    )
}
