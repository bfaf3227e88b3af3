//! Contacts: the people okno talks to, with their identities on the channels ([`ContactStore`]:
//! the API's upsert, finding, merging two contacts into one, attaching an identity).
//!
//! And contacts as operators create and edit them by hand (the web UI's contact form,
//! [`ContactEditStore`]). The same normalised [`ContactInput`] and the same unique external id
//! as the API's upsert, the same `contact.updated` event, with what a person at a form needs
//! besides:
//!
//! - a new contact never updates an existing one: an external id that is taken is refused
//!   (`external_id_taken`) instead of silently rewriting the other person;
//! - an edit can empty a field (the API's `PATCH` only sets them);
//! - an edit made on a form drawn before someone else's change is refused (`contact_changed`)
//!   rather than overwriting that change;
//! - each change and its audit line are one transaction; an edit that changes nothing writes
//!   nothing (no event, no audit line).

use async_trait::async_trait;
use okno_domain::ids::{new_id, ChannelId, ContactId};
use okno_domain::model::{ChannelKind, Contact, ContactInput, EventType, Identity, Page};
use okno_domain::time::{now_ms, Millis};
use okno_domain::{Error, ErrorKind, Result};
use serde_json::{json, Value};

use crate::audit::write_audit;
use crate::channels::load_channel;
use crate::db::{args, Conn, Row};
use crate::sql::{on, SqlStore};
use crate::statements::{retry_conflicts, split_page, to_json, Sql};
use crate::webhooks::emit;
use crate::{ContactFilter, InboundSender, NewAudit, PageRequest};

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
    async fn edit_contact(&self, id: &ContactId, edit: ContactEdit, actor: &str) -> Result<Contact>;
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

    async fn edit_contact(&self, id: &ContactId, change: ContactEdit, actor: &str) -> Result<Contact> {
        let (id, actor) = (id.to_owned(), actor.to_owned());
        on!(self.write, |c| edit(c, &id, &change, &actor).await)
    }
}

/// Contacts and their identities on the channels. Changes emit `contact.updated`.
#[async_trait]
pub trait ContactStore: Send + Sync + 'static {
    /// With an `external_id`: insert or update that contact (`true` when created).
    /// Without: always a new contact.
    async fn upsert_contact(&self, input: ContactInput) -> Result<(Contact, bool)>;
    async fn update_contact(&self, id: &ContactId, input: ContactInput) -> Result<Contact>;
    async fn get_contact(&self, id: &ContactId) -> Result<Contact>;
    /// Several contacts at once, in the order of `ids`; ids of no contact are left out.
    async fn get_contacts(&self, ids: &[ContactId]) -> Result<Vec<Contact>>;
    async fn find_contacts(&self, filter: ContactFilter, page: PageRequest) -> Result<Page<Contact>>;
    /// Moves `other`'s identities, conversations and messages into `keep`, fills `keep`'s empty
    /// fields from `other`, unites the groups and removes `other`; `audit`, when given, is
    /// written in the same transaction.
    async fn merge_contacts(&self, keep: &ContactId, other: &ContactId, audit: Option<NewAudit>) -> Result<Contact>;
    /// Attaches an identity to a contact (e.g. after a link code), moving it if needed.
    async fn attach_identity(
        &self,
        contact_id: &ContactId,
        channel_id: &ChannelId,
        sender: InboundSender,
    ) -> Result<Identity>;
    /// Ids of the contacts matching a filter (all of them, no paging).
    async fn contact_ids(&self, filter: ContactFilter) -> Result<Vec<ContactId>>;
    /// Gives contacts an identity on a channel that reaches people by an address (SMS by phone
    /// number, e-mail by address): `(contact_id, address)` pairs, the address as the channel
    /// names people. An identity the address already has stays where it is. Never seen, the identity comes last among a
    /// person's channels. Returns how many were added.
    async fn add_address_identities(&self, channel_id: &ChannelId, people: Vec<(ContactId, String)>) -> Result<u64>;
}

#[async_trait]
impl ContactStore for SqlStore {
    async fn upsert_contact(&self, input: ContactInput) -> Result<(Contact, bool)> {
        // Two first upserts of one external id race on its unique key (PostgreSQL); the loser
        // runs again and updates what the winner made.
        retry_conflicts(|| {
            let input = input.clone();
            async move { on!(self.write, |c| upsert_contact_once(c, &input).await) }
        })
        .await
    }

    async fn update_contact(&self, id: &ContactId, input: ContactInput) -> Result<Contact> {
        let id = id.to_owned();
        on!(self.write, |c| {
            let id = id.as_str();
            apply_contact(c, id, &input).await?;
            let contact = contact_event(c, id, json!({})).await?;
            Ok(contact)
        })
    }

    async fn get_contact(&self, id: &ContactId) -> Result<Contact> {
        let id = id.to_owned();
        on!(self.read, |c| {
            let id = id.as_str();
            load_contact(c, id).await
        })
    }

    async fn get_contacts(&self, ids: &[ContactId]) -> Result<Vec<Contact>> {
        let ids = ids.to_vec();
        on!(self.read, |c| load_contacts(c, &ids).await)
    }

    async fn find_contacts(&self, f: ContactFilter, page: PageRequest) -> Result<Page<Contact>> {
        on!(self.read, |c| {
            let mut q = contact_query(&f);
            if let Some(c) = &page.cursor {
                q.push(" AND c.id > ").bind_s(c);
            }
            q.push(" ORDER BY c.id LIMIT ").bind_i(i64::from(page.limit) + 1);
            let ids = c.rows_planned(&q.text, &q.args).await?.iter().map(|r| r.s("id")).collect::<Result<Vec<_>>>()?;
            let (ids, next) = split_page(ids, page.limit, |id| id.clone());
            let mut items = Vec::with_capacity(ids.len());
            for id in ids {
                items.push(load_contact(c, &id).await?);
            }
            Ok(Page { items, next })
        })
    }

    async fn merge_contacts(&self, keep: &ContactId, other: &ContactId, audit: Option<NewAudit>) -> Result<Contact> {
        let keep = keep.to_owned();
        let other = other.to_owned();
        on!(self.write, |c| {
            let merged = merge(c, &keep, &other).await?;
            write_audit(c, audit.as_ref()).await?;
            Ok(merged)
        })
    }

    async fn attach_identity(
        &self,
        contact_id: &ContactId,
        channel_id: &ChannelId,
        sender: InboundSender,
    ) -> Result<Identity> {
        let contact_id = contact_id.to_owned();
        let channel_id = channel_id.to_owned();
        on!(self.write, |c| {
            let contact_id = contact_id.as_str();
            let channel_id = channel_id.as_str();
            load_contact(c, contact_id).await?;
            load_channel(c, channel_id).await?;
            let now = now_ms();
            c.exec(
                "INSERT INTO identities (id, contact_id, channel_id, user_id, chat_id, username, display_name, last_seen_at, created_at, is_group) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) \
                 ON CONFLICT (channel_id, user_id) DO UPDATE SET contact_id = $2, chat_id = $5, is_group = $9, \
                 username = COALESCE($6, identities.username), display_name = COALESCE($7, identities.display_name)",
            args![new_id(), contact_id, channel_id, &sender.user_id, &sender.chat_id, &sender.username, &sender.display_name, now, i64::from(sender.is_group)]).await?;
            let row = c
                .one(
                    &format!(
                        "SELECT {IDENTITY_COLS} FROM identities i JOIN channels ch ON ch.id = i.channel_id \
                 WHERE i.channel_id = $1 AND i.user_id = $2"
                    ),
                    args![channel_id, &sender.user_id],
                )
                .await?;
            let identity = identity_from(&row)?;
            contact_event(c, contact_id, json!({})).await?;
            Ok(identity)
        })
    }

    async fn contact_ids(&self, filter: ContactFilter) -> Result<Vec<ContactId>> {
        on!(self.read, |c| {
            let mut q = contact_query(&filter);
            q.push(" ORDER BY c.id");
            c.rows(&q.text, &q.args).await?.iter().map(|r| r.id("id")).collect()
        })
    }
    async fn add_address_identities(&self, channel_id: &ChannelId, people: Vec<(ContactId, String)>) -> Result<u64> {
        if people.is_empty() {
            return Ok(0);
        }
        let channel_id = channel_id.to_owned();
        on!(self.write, |c| {
            let now = now_ms();
            let mut added = 0;
            for (contact_id, number) in &people {
                added += c
                    .exec(
                        "INSERT INTO identities (id, contact_id, channel_id, user_id, chat_id, created_at, is_group) \
                         VALUES ($1, $2, $3, $4, $4, $5, 0) ON CONFLICT (channel_id, user_id) DO NOTHING",
                        args![new_id(), contact_id, &channel_id, number, now],
                    )
                    .await?;
            }
            Ok(added)
        })
    }
}

const CONTACT_COLS: &str = "id, external_id, name, phone, email, attrs, preferred_channel_id, created_at, updated_at";

pub(crate) const IDENTITY_COLS: &str = "i.id, i.contact_id, i.channel_id, ch.kind, i.user_id, i.chat_id, i.username, \
     i.display_name, i.is_group, i.blocked, i.opted_out, i.last_seen_at";

pub(crate) fn identity_from(row: &Row) -> Result<Identity> {
    Ok(Identity {
        id: row.id("id")?,
        contact_id: row.id("contact_id")?,
        channel_id: row.id("channel_id")?,
        kind: ChannelKind::parse(&row.s("kind")?)?,
        user_id: row.s("user_id")?,
        chat_id: row.s("chat_id")?,
        username: row.os("username")?,
        display_name: row.os("display_name")?,
        is_group: row.flag("is_group")?,
        blocked: row.flag("blocked")?,
        opted_out: row.flag("opted_out")?,
        last_seen_at: row.oi("last_seen_at")?,
    })
}

fn contact_from(row: &Row, groups: Vec<String>, identities: Vec<Identity>) -> Result<Contact> {
    Ok(Contact {
        id: row.id("id")?,
        external_id: row.os("external_id")?,
        name: row.os("name")?,
        phone: row.os("phone")?,
        email: row.os("email")?,
        groups,
        attrs: row.js("attrs")?,
        preferred_channel_id: row.oid("preferred_channel_id")?,
        identities,
        created_at: row.i("created_at")?,
        updated_at: row.i("updated_at")?,
    })
}

pub(crate) async fn load_contact(c: &mut dyn Conn, id: &str) -> Result<Contact> {
    let row = c
        .row(&format!("SELECT {CONTACT_COLS} FROM contacts WHERE id = $1"), args![id])
        .await?
        .ok_or_else(|| Error::not_found("contact", id))?;
    let groups = c
        .rows("SELECT grp FROM contact_groups WHERE contact_id = $1 ORDER BY grp", args![id])
        .await?
        .iter()
        .map(|r| r.s("grp"))
        .collect::<Result<Vec<_>>>()?;
    let identities = c
        .rows(
            &format!(
                "SELECT {IDENTITY_COLS} FROM identities i JOIN channels ch ON ch.id = i.channel_id \
         WHERE i.contact_id = $1 ORDER BY i.created_at, i.id"
            ),
            args![id],
        )
        .await?
        .iter()
        .map(identity_from)
        .collect::<Result<Vec<_>>>()?;
    contact_from(&row, groups, identities)
}

/// Several contacts in three queries per 500 (not one contact in three); the ids not found
/// are left out, the rest keep their order.
pub(crate) async fn load_contacts(c: &mut dyn Conn, ids: &[impl AsRef<str> + Sync]) -> Result<Vec<Contact>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let list = |start: &str, end: &str| {
            let mut q = Sql::new(start);
            for (n, id) in chunk.iter().enumerate() {
                q.push(if n == 0 { "" } else { ", " }).bind_s(id.as_ref());
            }
            q.push(end);
            q
        };
        let q = list(&format!("SELECT {CONTACT_COLS} FROM contacts WHERE id IN ("), ")");
        let rows = c.rows(&q.text, &q.args).await?;
        let q = list("SELECT contact_id, grp FROM contact_groups WHERE contact_id IN (", ") ORDER BY grp");
        let mut groups: std::collections::HashMap<String, Vec<String>> = Default::default();
        for r in c.rows(&q.text, &q.args).await? {
            groups.entry(r.s("contact_id")?).or_default().push(r.s("grp")?);
        }
        let q = list(
            &format!(
                "SELECT {IDENTITY_COLS} FROM identities i JOIN channels ch ON ch.id = i.channel_id WHERE i.contact_id IN ("
            ),
            ") ORDER BY i.created_at, i.id",
        );
        let mut identities: std::collections::HashMap<String, Vec<Identity>> = Default::default();
        for r in c.rows(&q.text, &q.args).await? {
            let identity = identity_from(&r)?;
            identities.entry(identity.contact_id.to_string()).or_default().push(identity);
        }
        let mut found: std::collections::HashMap<String, Row> =
            rows.into_iter().map(|r| Ok((r.s("id")?, r))).collect::<Result<_>>()?;
        for id in chunk {
            let id = id.as_ref();
            if let Some(row) = found.remove(id) {
                out.push(contact_from(
                    &row,
                    groups.remove(id).unwrap_or_default(),
                    identities.remove(id).unwrap_or_default(),
                )?);
            }
        }
    }
    Ok(out)
}

/// `%text%` for LIKE, with LIKE's own wildcards escaped.
fn like_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// `SELECT c.id FROM contacts c WHERE …` for a filter (every set field must match).
fn contact_query(f: &ContactFilter) -> Sql {
    let mut q = Sql::new("SELECT c.id FROM contacts c WHERE 1 = 1");
    if let Some(v) = &f.external_id {
        q.push(" AND c.external_id = ").bind_s(v);
    }
    if let Some(v) = &f.phone {
        q.push(" AND c.phone = ").bind_s(v);
    }
    if let Some(v) = &f.email {
        q.push(" AND c.email = ").bind_s(v);
    }
    if let Some(v) = &f.group {
        q.push(" AND EXISTS (SELECT 1 FROM contact_groups g WHERE g.contact_id = c.id AND g.grp = ")
            .bind_s(v)
            .push(")");
    }
    if let Some(v) = &f.q {
        if f.q_names_only {
            // `search` is the name, phone, email and external id (those set), lowercased by
            // okno (Unicode rules, unlike SQLite's lower()) and joined by blanks: the name is
            // its first `length(name)` characters and the external id its last
            // `length(external_id)`. (The rare letter whose lowercase is longer, such as `İ`,
            // only shortens the window; it never reaches into the phone or email.)
            let pattern = like_pattern(v);
            q.push(" AND ((c.name IS NOT NULL AND substr(c.search, 1, length(c.name)) LIKE ")
                .bind_s(pattern.clone())
                .push(
                    " ESCAPE '\\') OR (c.external_id IS NOT NULL AND \
                       substr(c.search, length(c.search) - length(c.external_id) + 1) LIKE ",
                )
                .bind_s(pattern)
                .push(" ESCAPE '\\'))");
        } else {
            q.push(" AND c.search LIKE ").bind_s(like_pattern(v)).push(" ESCAPE '\\'");
        }
    }
    q
}

fn search_text(name: &Option<String>, phone: &Option<String>, email: &Option<String>, ext: &Option<String>) -> String {
    [name, phone, email, ext].iter().filter_map(|v| v.as_deref()).collect::<Vec<_>>().join(" ").to_lowercase()
}

async fn set_groups(c: &mut dyn Conn, contact_id: &str, groups: &[String]) -> Result<()> {
    c.exec("DELETE FROM contact_groups WHERE contact_id = $1", args![contact_id]).await?;
    for g in groups {
        c.exec(
            "INSERT INTO contact_groups (contact_id, grp) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            args![contact_id, g],
        )
        .await?;
    }
    Ok(())
}

/// Rewrites a contact's search text from its name, phone, e-mail and external id.
pub(crate) async fn refresh_search(c: &mut dyn Conn, contact_id: &str) -> Result<()> {
    let row = c.one("SELECT name, phone, email, external_id FROM contacts WHERE id = $1", args![contact_id]).await?;
    let text = search_text(&row.os("name")?, &row.os("phone")?, &row.os("email")?, &row.os("external_id")?);
    c.exec("UPDATE contacts SET search = $1 WHERE id = $2", args![text, contact_id]).await?;
    Ok(())
}

/// Applies the set fields of `input` to an existing contact.
pub(crate) async fn apply_contact(c: &mut dyn Conn, id: &str, input: &ContactInput) -> Result<()> {
    let now = now_ms();
    let mut q = Sql::new("UPDATE contacts SET updated_at = ");
    q.bind_i(now);
    if let Some(v) = &input.external_id {
        q.push(", external_id = ").bind_s(v);
    }
    if let Some(v) = &input.name {
        q.push(", name = ").bind_s(v);
    }
    if let Some(v) = &input.phone {
        q.push(", phone = ").bind_s(v);
    }
    if let Some(v) = &input.email {
        q.push(", email = ").bind_s(v);
    }
    if let Some(v) = &input.attrs {
        q.push(", attrs = ").bind_s(to_json(v));
    }
    if let Some(v) = &input.preferred_channel_id {
        q.push(", preferred_channel_id = ").bind_s(v);
    }
    q.push(" WHERE id = ").bind_s(id);
    let done = c.exec(&q.text, &q.args).await?;
    if done == 0 {
        return Err(Error::not_found("contact", id));
    }
    if let Some(groups) = &input.groups {
        set_groups(c, id, groups).await?;
    }
    refresh_search(c, id).await
}

pub(crate) async fn insert_contact(c: &mut dyn Conn, input: &ContactInput) -> Result<String> {
    let id = new_id();
    let now = now_ms();
    c.exec(
        "INSERT INTO contacts (id, external_id, name, phone, email, attrs, preferred_channel_id, search, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    args![&id, &input.external_id, &input.name, &input.phone, &input.email, to_json(input.attrs.as_ref().unwrap_or(&json!({}))), &input.preferred_channel_id, search_text(&input.name, &input.phone, &input.email, &input.external_id), now]).await?;
    if let Some(groups) = &input.groups {
        set_groups(c, &id, groups).await?;
    }
    Ok(id)
}

pub(crate) async fn contact_event(c: &mut dyn Conn, id: &str, extra: Value) -> Result<Contact> {
    let contact = load_contact(c, id).await?;
    let mut data = serde_json::to_value(&contact).unwrap_or(Value::Null);
    if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
        d.extend(e);
    }
    emit(c, EventType::ContactUpdated, data).await?;
    Ok(contact)
}

/// Merges `other` into `keep` (see `ContactStore::merge_contacts`).
pub(crate) async fn merge(c: &mut dyn Conn, keep: &str, other: &str) -> Result<Contact> {
    if keep == other {
        return Err(Error::invalid("merge_same_contact", "a contact cannot be merged into itself"));
    }
    let a = load_contact(c, keep).await?;
    let b = load_contact(c, other).await?;
    c.exec("UPDATE identities SET contact_id = $1 WHERE contact_id = $2", args![keep, other]).await?;
    c.exec("UPDATE calls SET contact_id = $1 WHERE contact_id = $2", args![keep, other]).await?;
    // Questions relayed to or by the other contact (bots' answer-by-Reply feeds) are the kept one's.
    c.exec("UPDATE bot_relays SET recipient_contact_id = $1 WHERE recipient_contact_id = $2", args![keep, other])
        .await?;
    c.exec("UPDATE bot_relays SET asker_contact_id = $1 WHERE asker_contact_id = $2", args![keep, other]).await?;
    crate::broadcasts::merge(c, keep, other).await?;
    crate::surveys::merge_contacts(c, keep, other).await?;
    // One thread per person: the other contact's messages join the kept conversation.
    let kept_conv = c
        .row("SELECT id FROM conversations WHERE contact_id = $1 ORDER BY id DESC LIMIT 1", args![keep])
        .await?
        .map(|r| r.s("id"))
        .transpose()?;
    match &kept_conv {
        None => {
            c.exec("UPDATE conversations SET contact_id = $1 WHERE contact_id = $2", args![keep, other]).await?;
        }
        Some(conv) => {
            let moved_unread: i64 = c
                .one(
                    "SELECT CAST(COALESCE(SUM(unread), 0) AS BIGINT) AS n FROM conversations WHERE contact_id = $1",
                    args![other],
                )
                .await
                .and_then(|r| r.i("n"))?;
            for table in ["messages", "notes"] {
                c.exec(
                    &format!(
                        "UPDATE {table} SET conversation_id = $1 \
                         WHERE conversation_id IN (SELECT id FROM conversations WHERE contact_id = $2)"
                    ),
                    args![conv, other],
                )
                .await?;
            }
            c.exec("DELETE FROM conversations WHERE contact_id = $1", args![other]).await?;
            // The last message and the channel the person last wrote on may now be the other's.
            c.exec(
                "UPDATE conversations SET unread = unread + $1, updated_at = $2, \
                 last_message_id = (SELECT m.id FROM messages m WHERE m.conversation_id = $3 ORDER BY m.id DESC LIMIT 1), \
                 last_message_at = COALESCE((SELECT MAX(m.created_at) FROM messages m WHERE m.conversation_id = $3), \
                   last_message_at), \
                 last_inbound_channel_id = COALESCE((SELECT m.channel_id FROM messages m \
                   WHERE m.conversation_id = $3 AND m.direction = 'in' ORDER BY m.id DESC LIMIT 1), last_inbound_channel_id) \
                 WHERE id = $3",
            args![moved_unread, now_ms(), conv]).await?;
        }
    }
    c.exec("UPDATE messages SET contact_id = $1 WHERE contact_id = $2", args![keep, other]).await?;
    let mut groups = a.groups.clone();
    groups.extend(b.groups.iter().cloned());
    groups.sort();
    groups.dedup();
    let mut attrs = b.attrs.clone();
    if let (Value::Object(into), Value::Object(from)) = (&mut attrs, &a.attrs) {
        into.extend(from.clone());
    }
    // The other contact goes first so its unique external id is free to move.
    c.exec("DELETE FROM contacts WHERE id = $1", args![other]).await?;
    let fill = ContactInput {
        external_id: a.external_id.clone().or(b.external_id.clone()),
        name: a.name.clone().or(b.name.clone()),
        phone: a.phone.clone().or(b.phone.clone()),
        email: a.email.clone().or(b.email.clone()),
        groups: Some(groups),
        attrs: Some(attrs),
        preferred_channel_id: a.preferred_channel_id.clone().or(b.preferred_channel_id.clone()),
    };
    apply_contact(c, keep, &fill).await?;
    let contact = contact_event(c, keep, json!({"merged_from": other})).await?;
    Ok(contact)
}

async fn upsert_contact_once(c: &mut dyn Conn, input: &ContactInput) -> Result<(Contact, bool)> {
    {
        {
            let existing = match &input.external_id {
                Some(ext) => c
                    .row("SELECT id FROM contacts WHERE external_id = $1", args![ext])
                    .await?
                    .map(|r| r.s("id"))
                    .transpose()?,
                None => None,
            };
            let (id, created) = match existing {
                Some(id) => {
                    apply_contact(c, &id, input).await?;
                    (id, false)
                }
                None => (insert_contact(c, input).await?, true),
            };
            let contact = contact_event(c, &id, json!({})).await?;
            Ok((contact, created))
        }
    }
}
