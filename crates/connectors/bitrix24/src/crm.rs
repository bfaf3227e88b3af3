//! The CRM as okno reads and writes it: contacts and companies with their phones and e-mails
//! (multi-fields `[{"ID","VALUE","VALUE_TYPE"}]`), deals (stage, responsible, custom fields),
//! smart-process items (`crm.item.get`), timeline comments, the portal's users.
//!
//! Lists come 50 rows a page: [`ListQuery::start`] from [`Page::next`]; for a full walk,
//! order by `ID`, filter `>ID` by the last one and start at -1 (no total counted).

use serde_json::{json, Map, Value};

use crate::client::{B24Client, B24Error};
use crate::wire::{int, int_at, items, object, text_at};

/// A page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The `start` of the next page, if there is one.
    pub next: Option<u64>,
    /// All rows the filter finds (not counted with `start` -1).
    pub total: Option<u64>,
}

/// `filter`, `order`, `select`, `start` of a `*.list` call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListQuery {
    filter: Map<String, Value>,
    order: Map<String, Value>,
    select: Vec<String>,
    start: Option<i64>,
}

impl ListQuery {
    pub fn new() -> ListQuery {
        ListQuery::default()
    }

    /// One filter entry; the key carries its operation (`>DATE_MODIFY`, `=ORIGIN_ID`, `%NAME`,
    /// `@ID` with a list, `PHONE` exact).
    pub fn filter(mut self, key: &str, value: impl Into<Value>) -> ListQuery {
        self.filter.insert(key.to_string(), value.into());
        self
    }

    /// Sorts by `field`, ascending or not.
    pub fn order(mut self, field: &str, ascending: bool) -> ListQuery {
        self.order.insert(field.to_string(), json!(if ascending { "ASC" } else { "DESC" }));
        self
    }

    /// The fields to return (`*`, `UF_*`, and multi-fields by name: `PHONE`, `EMAIL`).
    pub fn select(mut self, fields: &[&str]) -> ListQuery {
        self.select = fields.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Where the page starts (0, 50, …; -1 for no total).
    pub fn start(mut self, start: i64) -> ListQuery {
        self.start = Some(start);
        self
    }

    fn params(&self) -> Value {
        let mut p = json!({"filter": self.filter, "order": self.order});
        if !self.select.is_empty() {
            p["select"] = json!(self.select);
        }
        if let Some(s) = self.start {
            p["start"] = json!(s);
        }
        p
    }
}

/// One value of a multi-field (a phone, an e-mail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiField {
    /// The value's own id (`None` for a new one).
    pub id: Option<i64>,
    pub value: String,
    /// `WORK`, `MOBILE`, `HOME`, `MAILING`, …
    pub value_type: String,
}

impl MultiField {
    /// A new value.
    pub fn new(value: &str, value_type: &str) -> MultiField {
        MultiField { id: None, value: value.to_string(), value_type: value_type.to_string() }
    }

    /// An existing value `id` changed to `value`.
    pub fn edit(id: i64, value: &str, value_type: &str) -> MultiField {
        MultiField { id: Some(id), value: value.to_string(), value_type: value_type.to_string() }
    }

    /// Removes the existing value `id` (Bitrix24 removes a value written empty).
    pub fn remove(id: i64) -> MultiField {
        MultiField { id: Some(id), value: String::new(), value_type: String::new() }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"VALUE": self.value});
        if !self.value_type.is_empty() {
            v["VALUE_TYPE"] = json!(self.value_type);
        }
        if let Some(id) = self.id {
            v["ID"] = json!(id);
        }
        v
    }

    fn read(list: Option<&Value>) -> Vec<MultiField> {
        list.map(items)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                Some(MultiField {
                    id: int_at(m, "ID"),
                    value: text_at(m, "VALUE")?,
                    value_type: text_at(m, "VALUE_TYPE").unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// A contact, as okno reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: i64,
    pub name: Option<String>,
    pub second_name: Option<String>,
    pub last_name: Option<String>,
    pub phones: Vec<MultiField>,
    pub emails: Vec<MultiField>,
    pub company_id: Option<i64>,
    pub assigned_by_id: Option<i64>,
    /// `DATE_MODIFY` as the portal writes it (ISO 8601 with its offset).
    pub date_modify: Option<String>,
    /// The external system and the id there (`ORIGINATOR_ID`, `ORIGIN_ID`).
    pub originator_id: Option<String>,
    pub origin_id: Option<String>,
    /// Every field returned, custom `UF_CRM_*` ones included.
    pub fields: Map<String, Value>,
}

impl Contact {
    fn read(v: &Value) -> Result<Contact, B24Error> {
        Ok(Contact {
            id: int_at(v, "ID").ok_or_else(|| B24Error::Unavailable("a contact without ID".into()))?,
            name: text_at(v, "NAME"),
            second_name: text_at(v, "SECOND_NAME"),
            last_name: text_at(v, "LAST_NAME"),
            phones: MultiField::read(v.get("PHONE")),
            emails: MultiField::read(v.get("EMAIL")),
            company_id: int_at(v, "COMPANY_ID").filter(|c| *c > 0),
            assigned_by_id: int_at(v, "ASSIGNED_BY_ID"),
            date_modify: text_at(v, "DATE_MODIFY"),
            originator_id: text_at(v, "ORIGINATOR_ID"),
            origin_id: text_at(v, "ORIGIN_ID"),
            fields: object(v),
        })
    }
}

/// A company, as okno reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Company {
    pub id: i64,
    pub title: Option<String>,
    pub phones: Vec<MultiField>,
    pub emails: Vec<MultiField>,
    pub assigned_by_id: Option<i64>,
    pub date_modify: Option<String>,
    pub originator_id: Option<String>,
    pub origin_id: Option<String>,
    pub fields: Map<String, Value>,
}

impl Company {
    fn read(v: &Value) -> Result<Company, B24Error> {
        Ok(Company {
            id: int_at(v, "ID").ok_or_else(|| B24Error::Unavailable("a company without ID".into()))?,
            title: text_at(v, "TITLE"),
            phones: MultiField::read(v.get("PHONE")),
            emails: MultiField::read(v.get("EMAIL")),
            assigned_by_id: int_at(v, "ASSIGNED_BY_ID"),
            date_modify: text_at(v, "DATE_MODIFY"),
            originator_id: text_at(v, "ORIGINATOR_ID"),
            origin_id: text_at(v, "ORIGIN_ID"),
            fields: object(v),
        })
    }
}

/// What okno writes of a contact or a company; unset fields are left as they are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PartyFields {
    /// A contact's `NAME`, `SECOND_NAME`, `LAST_NAME`.
    pub name: Option<String>,
    pub second_name: Option<String>,
    pub last_name: Option<String>,
    /// A company's `TITLE`.
    pub title: Option<String>,
    pub phones: Vec<MultiField>,
    pub emails: Vec<MultiField>,
    pub assigned_by_id: Option<i64>,
    pub company_id: Option<i64>,
    pub originator_id: Option<String>,
    pub origin_id: Option<String>,
    /// Any other field (`UF_CRM_…`, `COMMENTS`, …) as it is sent.
    pub custom: Map<String, Value>,
}

impl PartyFields {
    fn to_json(&self) -> Value {
        let mut f = self.custom.clone();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                f.insert(k.to_string(), v);
            }
        };
        put("NAME", self.name.clone().map(Value::from));
        put("SECOND_NAME", self.second_name.clone().map(Value::from));
        put("LAST_NAME", self.last_name.clone().map(Value::from));
        put("TITLE", self.title.clone().map(Value::from));
        put("ASSIGNED_BY_ID", self.assigned_by_id.map(Value::from));
        put("COMPANY_ID", self.company_id.map(Value::from));
        put("ORIGINATOR_ID", self.originator_id.clone().map(Value::from));
        put("ORIGIN_ID", self.origin_id.clone().map(Value::from));
        if !self.phones.is_empty() {
            put("PHONE", Some(self.phones.iter().map(MultiField::to_json).collect()));
        }
        if !self.emails.is_empty() {
            put("EMAIL", Some(self.emails.iter().map(MultiField::to_json).collect()));
        }
        Value::Object(f)
    }
}

/// A deal, as okno reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deal {
    pub id: i64,
    pub title: Option<String>,
    pub stage_id: Option<String>,
    pub category_id: Option<i64>,
    pub assigned_by_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub company_id: Option<i64>,
    pub opportunity: Option<String>,
    pub date_modify: Option<String>,
    /// Every field returned, custom `UF_CRM_*` ones included.
    pub fields: Map<String, Value>,
}

impl Deal {
    fn read(v: &Value) -> Result<Deal, B24Error> {
        Ok(Deal {
            id: int_at(v, "ID").ok_or_else(|| B24Error::Unavailable("a deal without ID".into()))?,
            title: text_at(v, "TITLE"),
            stage_id: text_at(v, "STAGE_ID"),
            category_id: int_at(v, "CATEGORY_ID"),
            assigned_by_id: int_at(v, "ASSIGNED_BY_ID"),
            contact_id: int_at(v, "CONTACT_ID").filter(|c| *c > 0),
            company_id: int_at(v, "COMPANY_ID").filter(|c| *c > 0),
            opportunity: text_at(v, "OPPORTUNITY"),
            date_modify: text_at(v, "DATE_MODIFY"),
            fields: object(v),
        })
    }
}

/// What okno changes of a deal.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DealPatch {
    pub stage_id: Option<String>,
    pub assigned_by_id: Option<i64>,
    /// Custom fields (`UF_CRM_…`) and any other field, as sent.
    pub custom: Map<String, Value>,
}

/// A smart-process item (or any `crm.item`), camelCase as `crm.item.get` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: i64,
    pub entity_type_id: i64,
    pub title: Option<String>,
    pub stage_id: Option<String>,
    pub assigned_by_id: Option<i64>,
    pub fields: Map<String, Value>,
}

/// A user of the portal.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub active: bool,
    pub fields: Map<String, Value>,
}

/// The most pages [`B24Client::users`] walks (a portal of 5000 users).
const USER_PAGES: usize = 100;

fn page<T>(reply: crate::client::Reply, read: impl Fn(&Value) -> Result<T, B24Error>) -> Result<Page<T>, B24Error> {
    let rows = match &reply.result {
        Value::Array(a) => a.iter().map(&read).collect::<Result<Vec<T>, B24Error>>()?,
        other => return Err(B24Error::Unavailable(format!("a list answered {other}"))),
    };
    Ok(Page { items: rows, next: reply.next, total: reply.total })
}

fn created_id(v: &Value) -> Result<i64, B24Error> {
    int(v).ok_or_else(|| B24Error::Unavailable(format!("the new record's id: {v}")))
}

impl B24Client {
    /// A page of contacts (`crm.contact.list`).
    pub async fn contacts(&self, query: &ListQuery) -> Result<Page<Contact>, B24Error> {
        page(self.call("crm.contact.list", query.params()).await?, Contact::read)
    }

    /// A contact with its phones, e-mails and custom fields (`crm.contact.get`).
    pub async fn contact(&self, id: i64) -> Result<Contact, B24Error> {
        Contact::read(&self.call("crm.contact.get", json!({ "id": id })).await?.result)
    }

    /// Adds a contact; returns its id. Carries the source key.
    pub async fn add_contact(&self, fields: &PartyFields) -> Result<i64, B24Error> {
        let params = self.as_source(json!({"fields": fields.to_json(), "params": {"REGISTER_SONET_EVENT": "N"}}));
        created_id(&self.call("crm.contact.add", params).await?.result)
    }

    /// Changes a contact (multi-field values by their id). Carries the source key.
    pub async fn update_contact(&self, id: i64, fields: &PartyFields) -> Result<(), B24Error> {
        let params =
            self.as_source(json!({"id": id, "fields": fields.to_json(), "params": {"REGISTER_SONET_EVENT": "N"}}));
        self.call("crm.contact.update", params).await.map(|_| ())
    }

    /// A page of companies (`crm.company.list`).
    pub async fn companies(&self, query: &ListQuery) -> Result<Page<Company>, B24Error> {
        page(self.call("crm.company.list", query.params()).await?, Company::read)
    }

    /// A company (`crm.company.get`).
    pub async fn company(&self, id: i64) -> Result<Company, B24Error> {
        Company::read(&self.call("crm.company.get", json!({ "id": id })).await?.result)
    }

    /// Adds a company; returns its id. Carries the source key.
    pub async fn add_company(&self, fields: &PartyFields) -> Result<i64, B24Error> {
        let params = self.as_source(json!({"fields": fields.to_json(), "params": {"REGISTER_SONET_EVENT": "N"}}));
        created_id(&self.call("crm.company.add", params).await?.result)
    }

    /// Changes a company. Carries the source key.
    pub async fn update_company(&self, id: i64, fields: &PartyFields) -> Result<(), B24Error> {
        let params =
            self.as_source(json!({"id": id, "fields": fields.to_json(), "params": {"REGISTER_SONET_EVENT": "N"}}));
        self.call("crm.company.update", params).await.map(|_| ())
    }

    /// A deal (`crm.deal.get`).
    pub async fn deal(&self, id: i64) -> Result<Deal, B24Error> {
        Deal::read(&self.call("crm.deal.get", json!({ "id": id })).await?.result)
    }

    /// Changes a deal's stage, responsible and fields (`crm.deal.update`). Carries the source key.
    pub async fn update_deal(&self, id: i64, patch: &DealPatch) -> Result<(), B24Error> {
        let mut fields = patch.custom.clone();
        if let Some(s) = &patch.stage_id {
            fields.insert("STAGE_ID".into(), json!(s));
        }
        if let Some(u) = patch.assigned_by_id {
            fields.insert("ASSIGNED_BY_ID".into(), json!(u));
        }
        let params = self.as_source(json!({"id": id, "fields": fields,
                                           "params": {"REGISTER_SONET_EVENT": "N"}}));
        self.call("crm.deal.update", params).await.map(|_| ())
    }

    /// Adds a comment to the timeline of a `deal`, `contact`, `company` or `lead`; returns its
    /// id. Carries the source key.
    pub async fn add_timeline_comment(
        &self,
        entity_type: &str,
        entity_id: i64,
        comment: &str,
    ) -> Result<i64, B24Error> {
        let params =
            self.as_source(json!({"fields": {"ENTITY_ID": entity_id, "ENTITY_TYPE": entity_type, "COMMENT": comment}}));
        created_id(&self.call("crm.timeline.comment.add", params).await?.result)
    }

    /// An item of `entity_type_id` (a smart process; 2 a deal, …) by `crm.item.get`.
    pub async fn item(&self, entity_type_id: i64, id: i64) -> Result<Item, B24Error> {
        let r = self.call("crm.item.get", json!({"entityTypeId": entity_type_id, "id": id})).await?;
        let v = r.result.get("item").cloned().unwrap_or(Value::Null);
        Ok(Item {
            id: int_at(&v, "id").ok_or_else(|| B24Error::Unavailable("an item without id".into()))?,
            entity_type_id: int_at(&v, "entityTypeId").unwrap_or(entity_type_id),
            title: text_at(&v, "title"),
            stage_id: text_at(&v, "stageId"),
            assigned_by_id: int_at(&v, "assignedById"),
            fields: object(&v),
        })
    }

    /// The portal's users matching `filter` (`{"ACTIVE": true}`, `{"ID": 5}`), every page.
    pub async fn users(&self, filter: Value) -> Result<Vec<User>, B24Error> {
        let mut out = Vec::new();
        let mut start = 0u64;
        for _ in 0..USER_PAGES {
            let r = self.call("user.get", json!({"FILTER": filter, "start": start})).await?;
            let next = r.next;
            let rows = page(r, |v| {
                Ok(User {
                    id: int_at(v, "ID").ok_or_else(|| B24Error::Unavailable("a user without ID".into()))?,
                    name: text_at(v, "NAME"),
                    last_name: text_at(v, "LAST_NAME"),
                    email: text_at(v, "EMAIL"),
                    active: v.get("ACTIVE").is_some_and(crate::wire::flag),
                    fields: object(v),
                })
            })?;
            out.extend(rows.items);
            match next {
                Some(n) => start = n,
                None => break,
            }
        }
        Ok(out)
    }
}
