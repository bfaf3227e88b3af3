//! Contacts as operators create and edit them by hand (the web UI's contact form). The same
//! normalised [`ContactInput`] and the same unique external id as the API's upsert, the same
//! `contact.updated` event, with what a person at a form needs besides:
//!
//! - a new contact never updates an existing one: an external id that is taken is refused
//!   (`external_id_taken`) instead of silently rewriting the other person;
//! - an edit can empty a field (the API's `PATCH` only sets them);
//! - an edit made on a form drawn before someone else's change is refused (`contact_changed`)
//!   rather than overwriting that change;
//! - each change and its audit line are one transaction; an edit that changes nothing writes
//!   nothing (no event, no audit line).

use async_trait::async_trait;
use okno_domain::ids::new_id;
use okno_domain::model::{Contact, ContactInput};
use okno_domain::time::{now_ms, Millis};
use okno_domain::{Error, ErrorKind, Result};
use serde_json::{json, Value};

use crate::db::{args, Conn};
use crate::sql::{apply_contact, contact_event, insert_contact, load_contact, on, SqlStore};
use crate::statements::to_json;

/// A field of a contact that an edit can empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactField {
    ExternalId,
    Name,
    Phone,
    Email,
}

impl ContactField {
    /// The field's name in the API (and in the audit line).
    pub fn as_str(self) -> &'static str {
        match self {
            ContactField::ExternalId => "external_id",
            ContactField::Name => "name",
            ContactField::Phone => "phone",
            ContactField::Email => "email",
        }
    }

    fn column(self) -> &'static str {
        // The column is the API's field name; kept separate so the SQL never takes a string
        // from outside.
        self.as_str()
    }
}

/// An operator's edit of a contact.
#[derive(Debug, Clone, Default)]
pub struct ContactEdit {
    /// Fields to set, already normalised ([`ContactInput::normalize`]); `None` leaves a field
    /// as it is. `groups` and `attrs`, when given, replace the contact's whole set.
    pub set: ContactInput,
    /// Fields to empty.
    pub clear: Vec<ContactField>,
    /// The contact's `updated_at` when the form was drawn: if it changed since, the edit is
    /// refused (`contact_changed`). `None` skips the check.
    pub seen_at: Option<Millis>,
}

/// Contacts created and edited by operators.
#[async_trait]
pub trait ContactEditStore: Send + Sync + 'static {
    /// A new contact, with the audit line `contact.create` by `actor`; emits `contact.updated`.
    /// An external id another contact has is a conflict (`external_id_taken`).
    async fn create_contact(&self, input: ContactInput, actor: &str) -> Result<Contact>;
    /// Applies `edit`, with the audit line `contact.update` naming the changed fields; emits
    /// `contact.updated`. Nothing changed: nothing written. Conflicts: `contact_changed` (the
    /// contact changed after `seen_at`), `external_id_taken`; `contact_empty` when it would
    /// keep none of name, phone, email and external id.
    async fn edit_contact(&self, id: &str, edit: ContactEdit, actor: &str) -> Result<Contact>;
}

fn external_id_taken(ext: &str) -> Error {
    Error::conflict("external_id_taken", format!("the external id `{ext}` belongs to another contact"))
}

/// The external id's owner other than `except`, if any.
async fn owner_of(c: &mut dyn Conn, ext: &str, except: Option<&str>) -> Result<Option<String>> {
    let row = c.row("SELECT id FROM contacts WHERE external_id = $1", args![ext]).await?;
    let id = row.map(|r| r.s("id")).transpose()?;
    Ok(id.filter(|id| Some(id.as_str()) != except))
}

/// A unique violation while writing an external id means another writer took it first.
fn taken_on_conflict(e: Error, ext: Option<&String>) -> Error {
    match ext {
        Some(ext) if e.kind == ErrorKind::Conflict => external_id_taken(ext),
        _ => e,
    }
}

async fn audit(c: &mut dyn Conn, actor: &str, action: &str, target: &str, detail: Value) -> Result<()> {
    c.exec(
        "INSERT INTO audit_log (id, at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        args![new_id(), now_ms(), actor, action, target, to_json(&detail)],
    )
    .await?;
    Ok(())
}

/// The fields `edit` would change on `before`, by their API names.
fn changes(before: &Contact, edit: &ContactEdit) -> Vec<&'static str> {
    let s = &edit.set;
    let mut out = Vec::new();
    let text_fields = [
        (ContactField::ExternalId, &s.external_id, &before.external_id),
        (ContactField::Name, &s.name, &before.name),
        (ContactField::Phone, &s.phone, &before.phone),
        (ContactField::Email, &s.email, &before.email),
    ];
    for (field, new, old) in text_fields {
        let cleared = edit.clear.contains(&field) && old.is_some();
        let set = new.as_ref().is_some_and(|v| Some(v) != old.as_ref());
        if cleared || set {
            out.push(field.as_str());
        }
    }
    if let Some(groups) = &s.groups {
        let (mut new, mut old) = (groups.clone(), before.groups.clone());
        new.sort();
        new.dedup();
        old.sort();
        if new != old {
            out.push("groups");
        }
    }
    if s.attrs.as_ref().is_some_and(|a| *a != before.attrs) {
        out.push("attrs");
    }
    if s.preferred_channel_id.as_ref().is_some_and(|p| Some(p) != before.preferred_channel_id.as_ref()) {
        out.push("preferred_channel_id");
    }
    out
}

async fn create(c: &mut dyn Conn, input: &ContactInput, actor: &str) -> Result<Contact> {
    if let Some(ext) = &input.external_id {
        if owner_of(c, ext, None).await?.is_some() {
            return Err(external_id_taken(ext));
        }
    }
    let id = insert_contact(c, input).await.map_err(|e| taken_on_conflict(e, input.external_id.as_ref()))?;
    let contact = contact_event(c, &id, json!({})).await?;
    let fields: Vec<&str> = [
        ("external_id", contact.external_id.is_some()),
        ("name", contact.name.is_some()),
        ("phone", contact.phone.is_some()),
        ("email", contact.email.is_some()),
        ("groups", !contact.groups.is_empty()),
        ("attrs", contact.attrs.as_object().is_some_and(|a| !a.is_empty())),
    ]
    .into_iter()
    .filter_map(|(f, set)| set.then_some(f))
    .collect();
    audit(c, actor, "contact.create", &id, json!({"fields": fields})).await?;
    Ok(contact)
}

fn contact_changed() -> Error {
    Error::conflict("contact_changed", "the contact was changed by someone else after this form was opened")
}

/// Whether `before` with `edit` applied keeps none of name, phone, email and external id.
fn left_empty(before: &Contact, edit: &ContactEdit) -> bool {
    let s = &edit.set;
    [
        (ContactField::ExternalId, &s.external_id, &before.external_id),
        (ContactField::Name, &s.name, &before.name),
        (ContactField::Phone, &s.phone, &before.phone),
        (ContactField::Email, &s.email, &before.email),
    ]
    .into_iter()
    .all(|(field, new, old)| new.is_none() && (old.is_none() || edit.clear.contains(&field)))
}

async fn edit(c: &mut dyn Conn, id: &str, edit: &ContactEdit, actor: &str) -> Result<Contact> {
    // The check is the first write: the row is locked until this transaction ends, so two
    // operators saving forms drawn at the same moment cannot both pass it. On PostgreSQL the
    // second one's statement waits for the first to commit and then finds `updated_at` moved
    // on (0 rows); on SQLite writers take turns anyway.
    let locked = match edit.seen_at {
        Some(seen) => {
            c.exec("UPDATE contacts SET updated_at = updated_at WHERE id = $1 AND updated_at = $2", args![id, seen])
                .await?
        }
        None => c.exec("UPDATE contacts SET updated_at = updated_at WHERE id = $1", args![id]).await?,
    };
    if locked == 0 {
        // Either there is no such contact (not found) or it moved on since the form was drawn.
        load_contact(c, id).await?;
        return Err(contact_changed());
    }
    let before = load_contact(c, id).await?;
    let changed = changes(&before, edit);
    if changed.is_empty() {
        return Ok(before);
    }
    if left_empty(&before, edit) {
        return Err(Error::invalid(
            "contact_empty",
            "a contact keeps at least one of name, phone, email and external id",
        ));
    }
    if let Some(ext) = &edit.set.external_id {
        if owner_of(c, ext, Some(id)).await?.is_some() {
            return Err(external_id_taken(ext));
        }
    }
    for field in &edit.clear {
        c.exec(&format!("UPDATE contacts SET {} = NULL WHERE id = $1", field.column()), args![id]).await?;
    }
    apply_contact(c, id, &edit.set).await.map_err(|e| taken_on_conflict(e, edit.set.external_id.as_ref()))?;
    // `updated_at` moves on even within the millisecond of the last change, so a form drawn
    // before this edit is told apart from one drawn after it.
    let stamp = now_ms().max(before.updated_at + 1);
    c.exec("UPDATE contacts SET updated_at = $1 WHERE id = $2", args![stamp, id]).await?;
    let contact = contact_event(c, id, json!({})).await?;
    audit(c, actor, "contact.update", id, json!({"fields": changed})).await?;
    Ok(contact)
}

#[async_trait]
impl ContactEditStore for SqlStore {
    async fn create_contact(&self, input: ContactInput, actor: &str) -> Result<Contact> {
        let actor = actor.to_owned();
        on!(self.write, |c| create(c, &input, &actor).await)
    }

    async fn edit_contact(&self, id: &str, change: ContactEdit, actor: &str) -> Result<Contact> {
        let (id, actor) = (id.to_owned(), actor.to_owned());
        on!(self.write, |c| edit(c, &id, &change, &actor).await)
    }
}
