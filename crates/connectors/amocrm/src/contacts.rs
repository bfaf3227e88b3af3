//! Contacts in bulk: pages of the contacts changed since a moment, and batches of new or
//! changed contacts with their phones and e-mails.
//!
//! amoCRM lists at most [`MAX_PAGE`] entities a page and answers 204 past the last one; it
//! takes up to 250 entities a write but recommends [`MAX_BATCH`], which okno keeps: a larger
//! batch is refused here, before any call. Phones and e-mails travel as `custom_fields_values`
//! by `field_code` (`PHONE`, `EMAIL`), each value with the `enum_code` `WORK` — the kind amoCRM
//! gives a value that names none. Every row may carry okno's `request_id`, which amoCRM echoes
//! in its answer so the answer's ids can be matched to the batch's rows.

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{AmoClient, AmoError, Contact};

/// The most contacts okno writes in one call (amoCRM's recommendation; its hard limit is 250).
pub const MAX_BATCH: usize = 50;
/// The most entities amoCRM lists in one page.
pub const MAX_PAGE: u32 = 250;

/// A contact to add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewContact {
    pub name: String,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
    /// `None`: the token's user.
    pub responsible_user_id: Option<i64>,
    /// okno's id of the row, echoed in the answer.
    pub request_id: Option<String>,
}

/// Changes to one contact; `None` leaves a part as it is, `Some(vec![])` clears phones or
/// e-mails (amoCRM replaces a field's values whole).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactUpdate {
    pub id: i64,
    pub name: Option<String>,
    pub phones: Option<Vec<String>>,
    pub emails: Option<Vec<String>>,
    pub responsible_user_id: Option<i64>,
    /// okno's id of the row, echoed in the answer.
    pub request_id: Option<String>,
}

/// One row of a batch as amoCRM answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub id: i64,
    /// okno's `request_id`, or the row's index when none was sent.
    pub request_id: String,
}

/// Which contacts a page holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactQuery {
    /// From 1.
    pub page: u32,
    /// At most [`MAX_PAGE`].
    pub limit: u32,
    /// Only contacts changed at or after this unix time, oldest change first.
    pub updated_since: Option<i64>,
    /// Read each contact's deals too (`with=leads`).
    pub with_leads: bool,
}

impl Default for ContactQuery {
    fn default() -> Self {
        ContactQuery { page: 1, limit: MAX_PAGE, updated_since: None, with_leads: false }
    }
}

/// A page of contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactPage {
    pub contacts: Vec<Contact>,
    pub page: u32,
    /// Whether amoCRM links a next page.
    pub more: bool,
}

fn values(code: &str, values: &[String]) -> Value {
    json!({"field_code": code, "values": values.iter().map(|v| json!({"value": v, "enum_code": "WORK"})).collect::<Vec<_>>()})
}

impl NewContact {
    fn to_json(&self) -> Value {
        let mut v = json!({"name": self.name});
        let mut fields = Vec::new();
        if !self.phones.is_empty() {
            fields.push(values("PHONE", &self.phones));
        }
        if !self.emails.is_empty() {
            fields.push(values("EMAIL", &self.emails));
        }
        if !fields.is_empty() {
            v["custom_fields_values"] = Value::Array(fields);
        }
        if let Some(u) = self.responsible_user_id {
            v["responsible_user_id"] = json!(u);
        }
        if let Some(r) = &self.request_id {
            v["request_id"] = json!(r);
        }
        v
    }
}

impl ContactUpdate {
    fn to_json(&self) -> Value {
        let mut v = json!({"id": self.id});
        if let Some(n) = &self.name {
            v["name"] = json!(n);
        }
        let mut fields = Vec::new();
        if let Some(p) = &self.phones {
            fields.push(values("PHONE", p));
        }
        if let Some(e) = &self.emails {
            fields.push(values("EMAIL", e));
        }
        if !fields.is_empty() {
            v["custom_fields_values"] = Value::Array(fields);
        }
        if let Some(u) = self.responsible_user_id {
            v["responsible_user_id"] = json!(u);
        }
        if let Some(r) = &self.request_id {
            v["request_id"] = json!(r);
        }
        v
    }
}

/// A contact as amoCRM shows it, with the phones and e-mails of its custom fields.
pub(crate) fn contact_of(v: &Value) -> Option<Contact> {
    let values = |code: &str| -> Vec<String> {
        v.get("custom_fields_values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|f| f.get("field_code").and_then(Value::as_str) == Some(code))
            .flat_map(|f| f.get("values").and_then(Value::as_array).cloned().unwrap_or_default())
            .filter_map(|x| x.get("value").and_then(Value::as_str).map(str::to_string))
            .collect()
    };
    Some(Contact {
        id: v.get("id")?.as_i64()?,
        name: v.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
        phones: values("PHONE"),
        emails: values("EMAIL"),
        responsible_user_id: v.get("responsible_user_id").and_then(Value::as_i64),
        updated_at: v.get("updated_at").and_then(Value::as_i64).unwrap_or(0),
        lead_ids: v
            .pointer("/_embedded/leads")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| l.get("id").and_then(Value::as_i64))
            .collect(),
    })
}

/// The rows of a batch's answer, `_embedded.contacts[{id, request_id}]`.
fn written(v: Option<Value>, sent: usize) -> Result<Vec<Written>, AmoError> {
    let rows: Vec<Written> = v
        .as_ref()
        .and_then(|v| v.pointer("/_embedded/contacts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let request_id = match r.get("request_id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            Some(Written { id: r.get("id")?.as_i64()?, request_id })
        })
        .collect();
    if rows.len() != sent {
        return Err(AmoError::Unavailable(format!("amoCRM answered {} of {sent} contacts", rows.len())));
    }
    Ok(rows)
}

fn batch_size(n: usize) -> Result<(), AmoError> {
    if n > MAX_BATCH {
        return Err(AmoError::Invalid(format!("{n} contacts in one call; okno writes at most {MAX_BATCH}")));
    }
    Ok(())
}

impl AmoClient {
    /// One page of contacts; an empty page (amoCRM's 204) has none and no more.
    pub async fn contacts_page(&self, q: &ContactQuery) -> Result<ContactPage, AmoError> {
        if q.limit == 0 || q.limit > MAX_PAGE || q.page == 0 {
            return Err(AmoError::Invalid(format!(
                "page {} of {} contacts: pages start at 1 and hold 1–{MAX_PAGE}",
                q.page, q.limit
            )));
        }
        // The serializer is not `Sync`: it is gone before the call awaits, so the future is `Send`.
        let path = {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("page", &q.page.to_string()).append_pair("limit", &q.limit.to_string());
            if let Some(from) = q.updated_since {
                query
                    .append_pair("filter[updated_at][from]", &from.to_string())
                    .append_pair("order[updated_at]", "asc");
            }
            if q.with_leads {
                query.append_pair("with", "leads");
            }
            format!("/api/v4/contacts?{}", query.finish())
        };
        let Some(v) = self.call(Method::GET, &path, None).await? else {
            return Ok(ContactPage { contacts: Vec::new(), page: q.page, more: false });
        };
        let contacts = v
            .pointer("/_embedded/contacts")
            .and_then(Value::as_array)
            .ok_or_else(|| AmoError::Unavailable("amoCRM's page holds no contacts".into()))?
            .iter()
            .map(|c| contact_of(c).ok_or_else(|| AmoError::Unavailable("a contact without an id".into())))
            .collect::<Result<Vec<_>, _>>()?;
        let more = v.pointer("/_links/next/href").is_some();
        Ok(ContactPage { contacts, page: q.page, more })
    }

    /// Every contact changed at or after `since` (unix seconds), oldest change first, read
    /// page by page.
    pub async fn contacts_changed_since(&self, since: i64) -> Result<Vec<Contact>, AmoError> {
        let mut q = ContactQuery { updated_since: Some(since), ..ContactQuery::default() };
        let mut all = Vec::new();
        loop {
            let page = self.contacts_page(&q).await?;
            all.extend(page.contacts);
            if !page.more {
                return Ok(all);
            }
            q.page += 1;
        }
    }

    /// Adds contacts in one call (at most [`MAX_BATCH`]); the answer's rows in the batch's
    /// order, each with its new id and the row's `request_id`.
    pub async fn add_contacts(&self, contacts: &[NewContact]) -> Result<Vec<Written>, AmoError> {
        batch_size(contacts.len())?;
        if contacts.is_empty() {
            return Ok(Vec::new());
        }
        let body = Value::Array(contacts.iter().map(NewContact::to_json).collect());
        written(self.call(Method::POST, "/api/v4/contacts", Some(&body)).await?, contacts.len())
    }

    /// Changes contacts in one call (at most [`MAX_BATCH`]); amoCRM takes all rows or none.
    pub async fn update_contacts(&self, updates: &[ContactUpdate]) -> Result<Vec<Written>, AmoError> {
        batch_size(updates.len())?;
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let body = Value::Array(updates.iter().map(ContactUpdate::to_json).collect());
        written(self.call(Method::PATCH, "/api/v4/contacts", Some(&body)).await?, updates.len())
    }
}
