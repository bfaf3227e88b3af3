//! Contacts kept in step with a business system's: a page of the system's contacts written in
//! one transaction (each found by its `external_id`, else by its phone or e-mail among the
//! contacts no system claims yet, else made), and okno's contacts read in the order they
//! changed, for the way back.
//!
//! Each contact remembers, in `attrs[<mark key>]`, a digest of what was last exchanged with
//! the system: a contact whose digest still matches has not changed since, so it is not sent
//! back — the end of echoes between the two sides.

use async_trait::async_trait;
use okno_domain::ids::ContactId;
use okno_domain::model::{Contact, ContactInput};
use okno_domain::time::Millis;
use okno_domain::Result;
use serde_json::{json, Value};

use crate::contacts::{apply_contact, contact_event, insert_contact, load_contacts};
use crate::db::{args, Conn};
use crate::sql::{on, SqlStore};

/// The most contacts to write in one [`ContactSyncStore::sync_contacts`] call.
pub const MAX_SYNC_PAGE: usize = 250;

/// A contact as a business system has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedContact {
    /// okno's `external_id` for it (e.g. `amo-1234`).
    pub external_id: String,
    pub name: Option<String>,
    /// Normalised (`+` and digits).
    pub phone: Option<String>,
    /// Lowercase.
    pub email: Option<String>,
    /// The digest kept in `attrs[mark]`.
    pub digest: String,
}

/// What became of one synced contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    Created(ContactId),
    /// An existing contact: found by its external id, or claimed by its phone or e-mail.
    Updated(ContactId),
    /// Found, and nothing differed.
    Unchanged(ContactId),
}

#[async_trait]
pub trait ContactSyncStore: Send + Sync + 'static {
    /// Writes a business system's contacts in one transaction (see the module's words); `mark`
    /// is the attrs key of the digests.
    async fn sync_contacts(&self, mark: &str, rows: Vec<SyncedContact>) -> Result<Vec<Synced>>;
    /// Contacts changed after `after` (`updated_at`, `id`), in that order, at most `limit`.
    async fn contacts_changed_since(&self, after: (Millis, String), limit: u32) -> Result<Vec<Contact>>;
    /// Gives a contact its external id and digest after okno sent it to a business system
    /// (an external id it has already is kept).
    async fn mark_synced(&self, mark: &str, marks: Vec<(ContactId, Option<String>, String)>) -> Result<()>;
}

async fn find(c: &mut dyn Conn, row: &SyncedContact) -> Result<Option<(String, bool)>> {
    if let Some(r) = c.row("SELECT id FROM contacts WHERE external_id = $1", args![&row.external_id]).await? {
        return Ok(Some((r.s("id")?, false)));
    }
    // The same person met in okno first (they wrote from a messenger, or came from a file).
    for (col, v) in [("phone", &row.phone), ("email", &row.email)] {
        if let Some(v) = v {
            let sql =
                format!("SELECT id FROM contacts WHERE {col} = $1 AND external_id IS NULL ORDER BY created_at LIMIT 1");
            if let Some(r) = c.row(&sql, args![v]).await? {
                return Ok(Some((r.s("id")?, true)));
            }
        }
    }
    Ok(None)
}

async fn attrs_of(c: &mut dyn Conn, id: &str) -> Result<Value> {
    let row = c.row("SELECT attrs FROM contacts WHERE id = $1", args![id]).await?;
    Ok(match row {
        Some(r) => r.js("attrs")?,
        None => json!({}),
    })
}

#[async_trait]
impl ContactSyncStore for SqlStore {
    async fn sync_contacts(&self, mark: &str, rows: Vec<SyncedContact>) -> Result<Vec<Synced>> {
        let mark = mark.to_string();
        on!(self.write, |c| {
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                match find(c, row).await? {
                    Some((id, claimed)) => {
                        let mut attrs = attrs_of(c, &id).await?;
                        if !claimed && attrs.get(&mark).and_then(Value::as_str) == Some(row.digest.as_str()) {
                            out.push(Synced::Unchanged(ContactId::from(id)));
                            continue;
                        }
                        if !attrs.is_object() {
                            attrs = json!({});
                        }
                        attrs[&mark] = json!(row.digest);
                        let input = ContactInput {
                            external_id: claimed.then(|| row.external_id.clone()),
                            name: row.name.clone(),
                            phone: row.phone.clone(),
                            email: row.email.clone(),
                            attrs: Some(attrs),
                            ..Default::default()
                        };
                        apply_contact(c, &id, &input).await?;
                        contact_event(c, &id, json!({})).await?;
                        out.push(Synced::Updated(ContactId::from(id)));
                    }
                    None => {
                        let input = ContactInput {
                            external_id: Some(row.external_id.clone()),
                            name: row.name.clone(),
                            phone: row.phone.clone(),
                            email: row.email.clone(),
                            attrs: Some(json!({ mark.as_str(): row.digest })),
                            ..Default::default()
                        };
                        let id = insert_contact(c, &input).await?;
                        contact_event(c, &id, json!({})).await?;
                        out.push(Synced::Created(ContactId::from(id)));
                    }
                }
            }
            Ok(out)
        })
    }

    async fn contacts_changed_since(&self, after: (Millis, String), limit: u32) -> Result<Vec<Contact>> {
        on!(self.read, |c| {
            let ids: Vec<String> = c
                .rows(
                    "SELECT id FROM contacts WHERE updated_at > $1 OR (updated_at = $1 AND id > $2) \
                     ORDER BY updated_at, id LIMIT $3",
                    args![after.0, after.1.as_str(), i64::from(limit.clamp(1, 1000))],
                )
                .await?
                .iter()
                .map(|r| r.s("id"))
                .collect::<Result<_>>()?;
            let mut found = load_contacts(c, &ids).await?;
            found.sort_by(|a, b| (a.updated_at, a.id.as_str()).cmp(&(b.updated_at, b.id.as_str())));
            Ok(found)
        })
    }

    async fn mark_synced(&self, mark: &str, marks: Vec<(ContactId, Option<String>, String)>) -> Result<()> {
        let mark = mark.to_string();
        on!(self.write, |c| {
            for (id, external_id, digest) in &marks {
                let mut attrs = attrs_of(c, id.as_str()).await?;
                if !attrs.is_object() {
                    attrs = json!({});
                }
                attrs[&mark] = json!(digest);
                let keeps = c
                    .row("SELECT external_id FROM contacts WHERE id = $1", args![id.as_str()])
                    .await?
                    .map(|r| r.os("external_id"))
                    .transpose()?
                    .flatten()
                    .is_some();
                let input = ContactInput {
                    external_id: if keeps { None } else { external_id.clone() },
                    attrs: Some(attrs),
                    ..Default::default()
                };
                apply_contact(c, id.as_str(), &input).await?;
            }
            Ok(())
        })
    }
}
