//! The SQL implementation of [`Store`] for SQLite and PostgreSQL. Queries are written once,
//! with `$N` placeholders that both engines accept; the few dialect differences (claiming jobs
//! with `FOR UPDATE SKIP LOCKED`, backups) branch on [`Backend`].
//!
//! SQLite gets a single writer connection (writes queue in the pool instead of spinning on
//! the file lock) and a pool of readers; WAL lets the readers run beside the writer.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use okno_domain::ids::new_id;
use okno_domain::model::*;
use okno_domain::time::{now_ms, to_rfc3339, Millis};
use okno_domain::{Error, Result};
use serde_json::{json, Value};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Executor, Row};

use crate::error::db;
use crate::*;

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The store on SQLite or PostgreSQL.
#[derive(Clone)]
pub struct SqlStore {
    backend: Backend,
    write: AnyPool,
    read: AnyPool,
}

/// Which backend a database URL selects; anything else is a configuration error.
pub fn backend_of(url: &str) -> Result<Backend> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        other => Err(Error::invalid(
            "unsupported_database_url",
            format!("unsupported database URL scheme `{other}`: use sqlite://PATH or postgres://USER@HOST/DB"),
        )),
    }
}

impl SqlStore {
    /// Connects, creating a SQLite file (and its folder) if needed, and applies migrations.
    pub async fn open(url: &str, opts: StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let acquire = Duration::from_millis(opts.acquire_timeout_ms);
        let store = match backend {
            Backend::Sqlite => {
                let url = sqlite_url(url)?;
                let options = AnyConnectOptions::from_str(&url).map_err(db)?;
                let busy = opts.busy_timeout_ms;
                let pool = |max: u32| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .min_connections(1)
                        .acquire_timeout(acquire)
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                conn.execute(&*format!(
                                    "PRAGMA busy_timeout = {busy}; PRAGMA foreign_keys = ON; \
                                     PRAGMA synchronous = NORMAL;"
                                ))
                                .await?;
                                Ok(())
                            })
                        })
                };
                let write = pool(1).connect_with(options.clone()).await.map_err(db)?;
                sqlx::query("PRAGMA journal_mode = WAL").execute(&write).await.map_err(db)?;
                let read = pool(opts.max_connections.max(1)).connect_with(options).await.map_err(db)?;
                SqlStore { backend, write, read }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(opts.max_connections.max(2))
                    .acquire_timeout(acquire)
                    .connect(url)
                    .await
                    .map_err(db)?;
                SqlStore { backend, write: pool.clone(), read: pool }
            }
        };
        crate::migrations::migrator(backend)
            .run(&store.write)
            .await
            .map_err(|e| Error::internal(format!("database migration failed: {e}")))?;
        Ok(store)
    }

    async fn begin(&self) -> Result<Tx> {
        match self.backend {
            // IMMEDIATE takes the write lock up front, so a read-then-write transaction never
            // fails half-way when another process writes.
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await.map_err(db),
            Backend::Postgres => self.write.begin().await.map_err(db),
        }
    }

    /// Closes the pools (the SQLite file is checkpointed on the last close).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Adds `mode=rwc` so a new file is created, and creates the folder it lives in.
fn sqlite_url(url: &str) -> Result<String> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path.is_empty() || path == ":memory:" {
        return Err(Error::invalid("unsupported_database_url", "SQLite needs a file path: sqlite://PATH"));
    }
    if let Some(parent) = Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::invalid("data_dir_unusable", format!("cannot create `{}`: {e}", parent.display()))
            })?;
        }
    }
    let query = if query.is_empty() { "mode=rwc".to_string() } else { query.to_string() };
    Ok(format!("sqlite://{path}?{query}"))
}

// ---------------------------------------------------------------------------------------------
// Row decoding.

fn s(row: &AnyRow, col: &str) -> Result<String> {
    row.try_get::<String, _>(col).map_err(db)
}
fn os(row: &AnyRow, col: &str) -> Result<Option<String>> {
    row.try_get::<Option<String>, _>(col).map_err(db)
}
fn i(row: &AnyRow, col: &str) -> Result<i64> {
    row.try_get::<i64, _>(col).map_err(db)
}
fn oi(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    row.try_get::<Option<i64>, _>(col).map_err(db)
}
fn flag(row: &AnyRow, col: &str) -> Result<bool> {
    Ok(i(row, col)? != 0)
}
fn js(row: &AnyRow, col: &str) -> Result<Value> {
    let text = s(row, col)?;
    serde_json::from_str(&text).map_err(|e| Error::internal(format!("column {col} holds bad JSON: {e}")))
}
fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// A dynamically built statement with `$N` placeholders.
struct Sql {
    text: String,
    args: Vec<Arg>,
}

enum Arg {
    S(String),
    I(i64),
}

impl Sql {
    fn new(text: &str) -> Self {
        Self { text: text.to_string(), args: Vec::new() }
    }
    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }
    /// Appends a placeholder bound to `v`.
    fn bind_s(&mut self, v: impl Into<String>) -> &mut Self {
        self.args.push(Arg::S(v.into()));
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }
    fn bind_i(&mut self, v: i64) -> &mut Self {
        self.args.push(Arg::I(v));
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }
    fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::S(s) => q.bind(s.as_str()),
                Arg::I(i) => q.bind(*i),
            };
        }
        q
    }
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

fn search_text(name: &Option<String>, phone: &Option<String>, email: &Option<String>, ext: &Option<String>) -> String {
    [name, phone, email, ext].iter().filter_map(|v| v.as_deref()).collect::<Vec<_>>().join(" ").to_lowercase()
}

// ---------------------------------------------------------------------------------------------
// Loaders shared by several operations; each takes a connection so it can run inside a
// transaction.

const CHANNEL_COLS: &str = "id, kind, name, config, info, status, status_detail, created_at";

fn channel_from(row: &AnyRow) -> Result<Channel> {
    Ok(Channel {
        id: s(row, "id")?,
        kind: ChannelKind::parse(&s(row, "kind")?)?,
        name: s(row, "name")?,
        status: s(row, "status")?,
        status_detail: os(row, "status_detail")?,
        info: js(row, "info")?,
        config: js(row, "config")?,
        created_at: i(row, "created_at")?,
    })
}

async fn load_channel(conn: &mut AnyConnection, id: &str) -> Result<Channel> {
    let row = sqlx::query(&format!("SELECT {CHANNEL_COLS} FROM channels WHERE id = $1 AND deleted = 0"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("channel", id))?;
    channel_from(&row)
}

const IDENTITY_COLS: &str = "i.id, i.contact_id, i.channel_id, ch.kind, i.user_id, i.chat_id, i.username, \
     i.display_name, i.blocked, i.opted_out, i.last_seen_at";

fn identity_from(row: &AnyRow) -> Result<Identity> {
    Ok(Identity {
        id: s(row, "id")?,
        contact_id: s(row, "contact_id")?,
        channel_id: s(row, "channel_id")?,
        kind: ChannelKind::parse(&s(row, "kind")?)?,
        user_id: s(row, "user_id")?,
        chat_id: s(row, "chat_id")?,
        username: os(row, "username")?,
        display_name: os(row, "display_name")?,
        blocked: flag(row, "blocked")?,
        opted_out: flag(row, "opted_out")?,
        last_seen_at: oi(row, "last_seen_at")?,
    })
}

async fn load_contact(conn: &mut AnyConnection, id: &str) -> Result<Contact> {
    let row = sqlx::query(
        "SELECT id, external_id, name, phone, email, attrs, preferred_channel_id, created_at, updated_at \
         FROM contacts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?
    .ok_or_else(|| Error::not_found("contact", id))?;
    let groups = sqlx::query("SELECT grp FROM contact_groups WHERE contact_id = $1 ORDER BY grp")
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?
        .iter()
        .map(|r| s(r, "grp"))
        .collect::<Result<Vec<_>>>()?;
    let identities = sqlx::query(&format!(
        "SELECT {IDENTITY_COLS} FROM identities i JOIN channels ch ON ch.id = i.channel_id \
         WHERE i.contact_id = $1 ORDER BY i.created_at, i.id"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?
    .iter()
    .map(identity_from)
    .collect::<Result<Vec<_>>>()?;
    Ok(Contact {
        id: s(&row, "id")?,
        external_id: os(&row, "external_id")?,
        name: os(&row, "name")?,
        phone: os(&row, "phone")?,
        email: os(&row, "email")?,
        groups,
        attrs: js(&row, "attrs")?,
        preferred_channel_id: os(&row, "preferred_channel_id")?,
        identities,
        created_at: i(&row, "created_at")?,
        updated_at: i(&row, "updated_at")?,
    })
}

const MESSAGE_COLS: &str = "id, conversation_id, contact_id, channel_id, direction, text, buttons, status, error, \
     external_id, button_data, reply_to, edited, author, created_at, updated_at";

fn attachment_from(row: &AnyRow) -> Result<Attachment> {
    let id = s(row, "id")?;
    Ok(Attachment {
        url: format!("/api/v1/attachments/{id}"),
        id,
        name: s(row, "name")?,
        mime: s(row, "mime")?,
        size: i(row, "size")?,
        sha256: s(row, "sha256")?,
        state: s(row, "state")?,
        note: os(row, "note")?,
        source_url: os(row, "source_url")?,
    })
}

const ATTACHMENT_COLS: &str = "id, name, mime, size, sha256, state, note, source_url";

async fn message_from(conn: &mut AnyConnection, row: &AnyRow) -> Result<Message> {
    let id = s(row, "id")?;
    let attachments = sqlx::query(&format!(
        "SELECT {ATTACHMENT_COLS} FROM attachments WHERE message_id = $1 ORDER BY created_at, id"
    ))
    .bind(&id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?
    .iter()
    .map(attachment_from)
    .collect::<Result<Vec<_>>>()?;
    let buttons: Keyboard = serde_json::from_value(js(row, "buttons")?).unwrap_or_default();
    Ok(Message {
        id,
        conversation_id: s(row, "conversation_id")?,
        contact_id: s(row, "contact_id")?,
        channel_id: s(row, "channel_id")?,
        direction: Direction::parse(&s(row, "direction")?)?,
        text: os(row, "text")?,
        attachments,
        buttons,
        status: MessageStatus::parse(&s(row, "status")?)?,
        error: os(row, "error")?,
        external_id: os(row, "external_id")?,
        button_data: os(row, "button_data")?,
        reply_to: os(row, "reply_to")?,
        edited: flag(row, "edited")?,
        author: os(row, "author")?,
        created_at: i(row, "created_at")?,
        updated_at: i(row, "updated_at")?,
    })
}

async fn load_message(conn: &mut AnyConnection, id: &str) -> Result<Message> {
    let row = sqlx::query(&format!("SELECT {MESSAGE_COLS} FROM messages WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("message", id))?;
    message_from(conn, &row).await
}

const CONVERSATION_COLS: &str =
    "c.id, c.contact_id, c.status, c.assignee, c.labels, c.unread, c.last_message_id, c.last_inbound_channel_id, \
     c.created_at, c.updated_at";

async fn conversation_from(conn: &mut AnyConnection, row: &AnyRow) -> Result<Conversation> {
    let contact = load_contact(conn, &s(row, "contact_id")?).await?;
    let last_message = match os(row, "last_message_id")? {
        Some(id) => Some(load_message(conn, &id).await?),
        None => None,
    };
    Ok(Conversation {
        id: s(row, "id")?,
        contact,
        status: ConversationStatus::parse(&s(row, "status")?)?,
        assignee: os(row, "assignee")?,
        labels: serde_json::from_value(js(row, "labels")?).unwrap_or_default(),
        unread: i(row, "unread")?,
        last_message,
        last_inbound_channel_id: os(row, "last_inbound_channel_id")?,
        created_at: i(row, "created_at")?,
        updated_at: i(row, "updated_at")?,
    })
}

async fn load_conversation(conn: &mut AnyConnection, id: &str) -> Result<Conversation> {
    let row = sqlx::query(&format!("SELECT {CONVERSATION_COLS} FROM conversations c WHERE c.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("conversation", id))?;
    conversation_from(conn, &row).await
}

// ---------------------------------------------------------------------------------------------
// Writers used inside transactions.

/// Queues a job in the outbox.
async fn insert_job(
    conn: &mut AnyConnection,
    kind: JobKind,
    ref_id: &str,
    queue_key: Option<&str>,
    run_at: Millis,
) -> Result<()> {
    sqlx::query("INSERT INTO jobs (kind, ref_id, queue_key, run_at, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(kind.as_str())
        .bind(ref_id)
        .bind(queue_key)
        .bind(run_at)
        .bind(now_ms())
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Writes one delivery (and its job) per subscription that wants `event`.
async fn emit(conn: &mut AnyConnection, event: EventType, data: Value) -> Result<()> {
    let hooks =
        sqlx::query("SELECT id, events FROM webhooks WHERE active = 1").fetch_all(&mut *conn).await.map_err(db)?;
    let now = now_ms();
    let event_id = new_id();
    for hook in hooks {
        let events: Vec<String> = serde_json::from_value(js(&hook, "events")?).unwrap_or_default();
        if !events.iter().any(|e| e == event.as_str() || e == "*") {
            continue;
        }
        let delivery_id = new_id();
        let body = json!({"id": event_id, "type": event.as_str(), "created_at": to_rfc3339(now), "data": data});
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_type, body, status, created_at) \
             VALUES ($1, $2, $3, $4, 'pending', $5)",
        )
        .bind(&delivery_id)
        .bind(s(&hook, "id")?)
        .bind(event.as_str())
        .bind(to_json(&body))
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        insert_job(conn, JobKind::Webhook, &delivery_id, None, now).await?;
    }
    Ok(())
}

async fn set_groups(conn: &mut AnyConnection, contact_id: &str, groups: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM contact_groups WHERE contact_id = $1")
        .bind(contact_id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    for g in groups {
        sqlx::query("INSERT INTO contact_groups (contact_id, grp) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(contact_id)
            .bind(g)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    Ok(())
}

async fn refresh_search(conn: &mut AnyConnection, contact_id: &str) -> Result<()> {
    let row = sqlx::query("SELECT name, phone, email, external_id FROM contacts WHERE id = $1")
        .bind(contact_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    let text = search_text(&os(&row, "name")?, &os(&row, "phone")?, &os(&row, "email")?, &os(&row, "external_id")?);
    sqlx::query("UPDATE contacts SET search = $1 WHERE id = $2")
        .bind(text)
        .bind(contact_id)
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Applies the set fields of `input` to an existing contact.
async fn apply_contact(conn: &mut AnyConnection, id: &str, input: &ContactInput) -> Result<()> {
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
    let done = q.query().execute(&mut *conn).await.map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found("contact", id));
    }
    if let Some(groups) = &input.groups {
        set_groups(conn, id, groups).await?;
    }
    refresh_search(conn, id).await
}

async fn insert_contact(conn: &mut AnyConnection, input: &ContactInput) -> Result<String> {
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO contacts (id, external_id, name, phone, email, attrs, preferred_channel_id, search, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&id)
    .bind(&input.external_id)
    .bind(&input.name)
    .bind(&input.phone)
    .bind(&input.email)
    .bind(to_json(input.attrs.as_ref().unwrap_or(&json!({}))))
    .bind(&input.preferred_channel_id)
    .bind(search_text(&input.name, &input.phone, &input.email, &input.external_id))
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    if let Some(groups) = &input.groups {
        set_groups(conn, &id, groups).await?;
    }
    Ok(id)
}

async fn contact_event(conn: &mut AnyConnection, id: &str, extra: Value) -> Result<Contact> {
    let contact = load_contact(conn, id).await?;
    let mut data = serde_json::to_value(&contact).unwrap_or(Value::Null);
    if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
        d.extend(e);
    }
    emit(conn, EventType::ContactUpdated, data).await?;
    Ok(contact)
}

/// The contact's current conversation, created (or reopened) as needed.
async fn current_conversation(conn: &mut AnyConnection, contact_id: &str, reopen: bool) -> Result<(String, bool)> {
    let row = sqlx::query("SELECT id, status FROM conversations WHERE contact_id = $1 ORDER BY id DESC LIMIT 1")
        .bind(contact_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    let now = now_ms();
    match row {
        Some(row) => {
            let id = s(&row, "id")?;
            let reopened = reopen && s(&row, "status")? == ConversationStatus::Resolved.as_str();
            if reopened {
                sqlx::query("UPDATE conversations SET status = 'open', updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(&id)
                    .execute(&mut *conn)
                    .await
                    .map_err(db)?;
            }
            Ok((id, reopened))
        }
        None => {
            let id = new_id();
            sqlx::query(
                "INSERT INTO conversations (id, contact_id, status, created_at, updated_at) VALUES ($1, $2, 'open', $3, $3)",
            )
            .bind(&id)
            .bind(contact_id)
            .bind(now)
            .execute(conn)
            .await
            .map_err(db)?;
            Ok((id, false))
        }
    }
}

fn conversation_event_data(c: &Conversation) -> Value {
    json!({
        "id": c.id, "contact_id": c.contact.id, "status": c.status, "assignee": c.assignee,
        "labels": c.labels, "unread": c.unread,
    })
}

fn message_event_data(m: &Message) -> Value {
    serde_json::to_value(m).unwrap_or(Value::Null)
}

/// The event an inbound message raises.
fn inbound_event(m: &Message) -> EventType {
    if m.button_data.is_some() {
        EventType::ButtonPressed
    } else {
        EventType::MessageReceived
    }
}

// ---------------------------------------------------------------------------------------------

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(db)?;
        Ok(())
    }

    async fn backup(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(Error::conflict("backup_exists", format!("`{}` already exists", dest.display())));
        }
        match self.backend {
            Backend::Sqlite => {
                let path =
                    dest.to_str().ok_or_else(|| Error::invalid("invalid_path", "the backup path is not UTF-8"))?;
                sqlx::query("VACUUM INTO $1").bind(path).execute(&self.read).await.map_err(db)?;
                Ok(())
            }
            Backend::Postgres => Err(Error::unprocessable(
                "backup_unsupported",
                "on PostgreSQL use pg_dump (okno backup runs it for you from the command line)",
            )),
        }
    }

    // --- channels -----------------------------------------------------------------------------

    async fn create_channel(&self, new: NewChannel) -> Result<Channel> {
        let id = new_id();
        let now = now_ms();
        let mut conn = self.write.acquire().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO channels (id, kind, name, config, info, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(new.kind.as_str())
        .bind(&new.name)
        .bind(to_json(&new.config))
        .bind(to_json(&new.info))
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        load_channel(&mut conn, &id).await
    }

    async fn get_channel(&self, id: &str) -> Result<Channel> {
        let mut conn = self.read.acquire().await.map_err(db)?;
        load_channel(&mut conn, id).await
    }

    async fn list_channels(&self) -> Result<Vec<Channel>> {
        sqlx::query(&format!("SELECT {CHANNEL_COLS} FROM channels WHERE deleted = 0 ORDER BY id"))
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(channel_from)
            .collect()
    }

    async fn update_channel(&self, id: &str, patch: ChannelPatch) -> Result<Channel> {
        let mut tx = self.begin().await?;
        let mut q = Sql::new("UPDATE channels SET updated_at = ");
        q.bind_i(now_ms());
        if let Some(v) = &patch.name {
            q.push(", name = ").bind_s(v);
        }
        if let Some(v) = &patch.config {
            q.push(", config = ").bind_s(to_json(v));
        }
        if let Some(v) = &patch.info {
            q.push(", info = ").bind_s(to_json(v));
        }
        if let Some((status, detail)) = &patch.status {
            q.push(", status = ").bind_s(status);
            match detail {
                Some(d) => q.push(", status_detail = ").bind_s(d),
                None => q.push(", status_detail = NULL"),
            };
        }
        q.push(" WHERE deleted = 0 AND id = ").bind_s(id);
        if q.query().execute(&mut *tx).await.map_err(db)?.rows_affected() == 0 {
            return Err(Error::not_found("channel", id));
        }
        let channel = load_channel(&mut tx, id).await?;
        tx.commit().await.map_err(db)?;
        Ok(channel)
    }

    async fn delete_channel(&self, id: &str) -> Result<()> {
        let done = sqlx::query("UPDATE channels SET deleted = 1, updated_at = $1 WHERE id = $2 AND deleted = 0")
            .bind(now_ms())
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("channel", id));
        }
        Ok(())
    }

    // --- contacts -----------------------------------------------------------------------------

    async fn upsert_contact(&self, input: ContactInput) -> Result<(Contact, bool)> {
        let mut tx = self.begin().await?;
        let existing = match &input.external_id {
            Some(ext) => sqlx::query("SELECT id FROM contacts WHERE external_id = $1")
                .bind(ext)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?
                .map(|r| s(&r, "id"))
                .transpose()?,
            None => None,
        };
        let (id, created) = match existing {
            Some(id) => {
                apply_contact(&mut tx, &id, &input).await?;
                (id, false)
            }
            None => (insert_contact(&mut tx, &input).await?, true),
        };
        let contact = contact_event(&mut tx, &id, json!({})).await?;
        tx.commit().await.map_err(db)?;
        Ok((contact, created))
    }

    async fn update_contact(&self, id: &str, input: ContactInput) -> Result<Contact> {
        let mut tx = self.begin().await?;
        apply_contact(&mut tx, id, &input).await?;
        let contact = contact_event(&mut tx, id, json!({})).await?;
        tx.commit().await.map_err(db)?;
        Ok(contact)
    }

    async fn get_contact(&self, id: &str) -> Result<Contact> {
        let mut conn = self.read.acquire().await.map_err(db)?;
        load_contact(&mut conn, id).await
    }

    async fn find_contacts(&self, f: ContactFilter, page: PageRequest) -> Result<Page<Contact>> {
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
            q.push(" AND c.search LIKE ").bind_s(like_pattern(v)).push(" ESCAPE '\\'");
        }
        if let Some(c) = &page.cursor {
            q.push(" AND c.id > ").bind_s(c);
        }
        q.push(" ORDER BY c.id LIMIT ").bind_i(i64::from(page.limit) + 1);
        let mut conn = self.read.acquire().await.map_err(db)?;
        let ids = q
            .query()
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?
            .iter()
            .map(|r| s(r, "id"))
            .collect::<Result<Vec<_>>>()?;
        let (ids, next) = split_page(ids, page.limit, |id| id.clone());
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            items.push(load_contact(&mut conn, &id).await?);
        }
        Ok(Page { items, next })
    }

    async fn merge_contacts(&self, keep: &str, other: &str) -> Result<Contact> {
        if keep == other {
            return Err(Error::invalid("merge_same_contact", "a contact cannot be merged into itself"));
        }
        let mut tx = self.begin().await?;
        let a = load_contact(&mut tx, keep).await?;
        let b = load_contact(&mut tx, other).await?;
        sqlx::query("UPDATE identities SET contact_id = $1 WHERE contact_id = $2")
            .bind(keep)
            .bind(other)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // One thread per person: the other contact's messages join the kept conversation.
        let kept_conv = sqlx::query("SELECT id FROM conversations WHERE contact_id = $1 ORDER BY id DESC LIMIT 1")
            .bind(keep)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .map(|r| s(&r, "id"))
            .transpose()?;
        match &kept_conv {
            None => {
                sqlx::query("UPDATE conversations SET contact_id = $1 WHERE contact_id = $2")
                    .bind(keep)
                    .bind(other)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            Some(conv) => {
                let moved_unread: i64 = sqlx::query(
                    "SELECT CAST(COALESCE(SUM(unread), 0) AS BIGINT) AS n FROM conversations WHERE contact_id = $1",
                )
                .bind(other)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)
                .and_then(|r| i(&r, "n"))?;
                sqlx::query(
                    "UPDATE messages SET conversation_id = $1 \
                     WHERE conversation_id IN (SELECT id FROM conversations WHERE contact_id = $2)",
                )
                .bind(conv)
                .bind(other)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                sqlx::query("DELETE FROM conversations WHERE contact_id = $1")
                    .bind(other)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                sqlx::query(
                    "UPDATE conversations SET unread = unread + $1, updated_at = $2, \
                     last_message_id = (SELECT m.id FROM messages m WHERE m.conversation_id = $3 ORDER BY m.id DESC LIMIT 1) \
                     WHERE id = $3",
                )
                .bind(moved_unread)
                .bind(now_ms())
                .bind(conv)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
        }
        sqlx::query("UPDATE messages SET contact_id = $1 WHERE contact_id = $2")
            .bind(keep)
            .bind(other)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let mut groups = a.groups.clone();
        groups.extend(b.groups.iter().cloned());
        groups.sort();
        groups.dedup();
        let mut attrs = b.attrs.clone();
        if let (Value::Object(into), Value::Object(from)) = (&mut attrs, &a.attrs) {
            into.extend(from.clone());
        }
        // The other contact goes first so its unique external id is free to move.
        sqlx::query("DELETE FROM contacts WHERE id = $1").bind(other).execute(&mut *tx).await.map_err(db)?;
        let fill = ContactInput {
            external_id: a.external_id.clone().or(b.external_id.clone()),
            name: a.name.clone().or(b.name.clone()),
            phone: a.phone.clone().or(b.phone.clone()),
            email: a.email.clone().or(b.email.clone()),
            groups: Some(groups),
            attrs: Some(attrs),
            preferred_channel_id: a.preferred_channel_id.clone().or(b.preferred_channel_id.clone()),
        };
        apply_contact(&mut tx, keep, &fill).await?;
        let contact = contact_event(&mut tx, keep, json!({"merged_from": other})).await?;
        tx.commit().await.map_err(db)?;
        Ok(contact)
    }

    async fn attach_identity(&self, contact_id: &str, channel_id: &str, sender: InboundSender) -> Result<Identity> {
        let mut tx = self.begin().await?;
        load_contact(&mut tx, contact_id).await?;
        load_channel(&mut tx, channel_id).await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO identities (id, contact_id, channel_id, user_id, chat_id, username, display_name, last_seen_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (channel_id, user_id) DO UPDATE SET contact_id = $2, chat_id = $5, \
             username = COALESCE($6, identities.username), display_name = COALESCE($7, identities.display_name)",
        )
        .bind(new_id())
        .bind(contact_id)
        .bind(channel_id)
        .bind(&sender.user_id)
        .bind(&sender.chat_id)
        .bind(&sender.username)
        .bind(&sender.display_name)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let row = sqlx::query(&format!(
            "SELECT {IDENTITY_COLS} FROM identities i JOIN channels ch ON ch.id = i.channel_id \
             WHERE i.channel_id = $1 AND i.user_id = $2"
        ))
        .bind(channel_id)
        .bind(&sender.user_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let identity = identity_from(&row)?;
        contact_event(&mut tx, contact_id, json!({})).await?;
        tx.commit().await.map_err(db)?;
        Ok(identity)
    }

    // --- inbound and conversations ------------------------------------------------------------

    async fn record_inbound(&self, msg: InboundMessage) -> Result<Inbound> {
        // A concurrent first message from the same new person can race on the unique keys;
        // the loser simply runs again and finds what the winner wrote.
        let mut last = None;
        for _ in 0..3 {
            match self.record_inbound_once(&msg).await {
                Err(e) if e.kind == okno_domain::ErrorKind::Conflict => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::internal("inbound retry loop ended without a result")))
    }

    async fn list_conversations(&self, f: ConversationFilter, page: PageRequest) -> Result<Page<Conversation>> {
        let mut q = Sql::new(&format!("SELECT {CONVERSATION_COLS} FROM conversations c WHERE 1 = 1"));
        if let Some(v) = f.status {
            q.push(" AND c.status = ").bind_s(v.as_str());
        }
        if let Some(v) = &f.contact_id {
            q.push(" AND c.contact_id = ").bind_s(v);
        }
        if let Some(v) = &f.channel_id {
            q.push(" AND EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.channel_id = ")
                .bind_s(v)
                .push(")");
        }
        match &f.assignee {
            Some(Some(a)) => {
                q.push(" AND c.assignee = ").bind_s(a);
            }
            Some(None) => {
                q.push(" AND c.assignee IS NULL");
            }
            None => {}
        }
        if let Some(v) = &f.label {
            q.push(" AND c.labels LIKE ").bind_s(format!("%{}%", to_json(v)));
        }
        if let Some(cursor) = &page.cursor {
            let (at, id) = cursor
                .split_once('.')
                .and_then(|(a, b)| a.parse::<i64>().ok().map(|a| (a, b.to_string())))
                .ok_or_else(|| Error::invalid("invalid_cursor", "the cursor is not one this API returned"))?;
            q.push(" AND (c.updated_at < ").bind_i(at).push(" OR (c.updated_at = ").bind_i(at);
            q.push(" AND c.id < ").bind_s(id).push("))");
        }
        q.push(" ORDER BY c.updated_at DESC, c.id DESC LIMIT ").bind_i(i64::from(page.limit) + 1);
        let mut conn = self.read.acquire().await.map_err(db)?;
        let rows = q.query().fetch_all(&mut *conn).await.map_err(db)?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows.iter().take(page.limit as usize) {
            items.push(conversation_from(&mut conn, row).await?);
        }
        let next = (rows.len() > page.limit as usize)
            .then(|| items.last().map(|c: &Conversation| format!("{}.{}", c.updated_at, c.id)))
            .flatten();
        Ok(Page { items, next })
    }

    async fn get_conversation(&self, id: &str) -> Result<Conversation> {
        let mut conn = self.read.acquire().await.map_err(db)?;
        load_conversation(&mut conn, id).await
    }

    async fn update_conversation(&self, id: &str, patch: ConversationPatch) -> Result<Conversation> {
        let mut tx = self.begin().await?;
        let before = load_conversation(&mut tx, id).await?;
        let mut q = Sql::new("UPDATE conversations SET updated_at = ");
        q.bind_i(now_ms());
        if let Some(v) = patch.status {
            q.push(", status = ").bind_s(v.as_str());
        }
        match &patch.assignee {
            Some(Some(a)) => {
                q.push(", assignee = ").bind_s(a);
            }
            Some(None) => {
                q.push(", assignee = NULL");
            }
            None => {}
        }
        if let Some(labels) = &patch.labels {
            let mut labels = labels.clone();
            labels.sort();
            labels.dedup();
            q.push(", labels = ").bind_s(to_json(&labels));
        }
        if patch.mark_read {
            q.push(", unread = 0");
        }
        q.push(" WHERE id = ").bind_s(id);
        q.query().execute(&mut *tx).await.map_err(db)?;
        let after = load_conversation(&mut tx, id).await?;
        let changed =
            before.status != after.status || before.assignee != after.assignee || before.labels != after.labels;
        if changed {
            emit(&mut tx, EventType::ConversationUpdated, conversation_event_data(&after)).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(after)
    }

    async fn list_messages(&self, conversation_id: &str, page: PageRequest) -> Result<Page<Message>> {
        let mut conn = self.read.acquire().await.map_err(db)?;
        let exists = sqlx::query("SELECT id FROM conversations WHERE id = $1")
            .bind(conversation_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        if exists.is_none() {
            return Err(Error::not_found("conversation", conversation_id));
        }
        let mut q = Sql::new(&format!("SELECT {MESSAGE_COLS} FROM messages WHERE conversation_id = "));
        q.bind_s(conversation_id);
        if let Some(c) = &page.cursor {
            q.push(" AND id > ").bind_s(c);
        }
        q.push(" ORDER BY id LIMIT ").bind_i(i64::from(page.limit) + 1);
        let rows = q.query().fetch_all(&mut *conn).await.map_err(db)?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows.iter().take(page.limit as usize) {
            items.push(message_from(&mut conn, row).await?);
        }
        let next = (rows.len() > page.limit as usize).then(|| items.last().map(|m: &Message| m.id.clone())).flatten();
        Ok(Page { items, next })
    }

    // --- outbound -----------------------------------------------------------------------------

    async fn enqueue_outbound(&self, req: OutboundRequest) -> Result<(Message, bool)> {
        let mut tx = self.begin().await?;
        if let Some(key) = &req.idempotency_key {
            let existing = sqlx::query("SELECT id FROM messages WHERE idempotency_key = $1")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if let Some(row) = existing {
                let message = load_message(&mut tx, &s(&row, "id")?).await?;
                return Ok((message, true));
            }
        }
        let (contact_id, conversation_id) = match &req.to {
            Recipient::Conversation(id) => {
                let row = sqlx::query("SELECT contact_id FROM conversations WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?
                    .ok_or_else(|| Error::not_found("conversation", id))?;
                (s(&row, "contact_id")?, id.clone())
            }
            Recipient::Contact(id) => {
                load_contact(&mut tx, id).await?;
                let (conv, _) = current_conversation(&mut tx, id, false).await?;
                (id.clone(), conv)
            }
            Recipient::ExternalId(ext) => {
                let row = sqlx::query("SELECT id FROM contacts WHERE external_id = $1")
                    .bind(ext)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?
                    .ok_or_else(|| {
                        Error::new(
                            okno_domain::ErrorKind::NotFound,
                            "contact_not_found",
                            format!("no contact with external_id `{ext}`"),
                        )
                    })?;
                let id = s(&row, "id")?;
                let (conv, _) = current_conversation(&mut tx, &id, false).await?;
                (id, conv)
            }
        };
        let contact = load_contact(&mut tx, &contact_id).await?;
        let last_inbound = sqlx::query("SELECT last_inbound_channel_id FROM conversations WHERE id = $1")
            .bind(&conversation_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)
            .and_then(|r| os(&r, "last_inbound_channel_id"))?;
        let identity = choose_identity(&contact, req.channel_id.as_deref(), last_inbound.as_deref())?;
        if identity.blocked {
            return Err(Error::unprocessable(
                "recipient_blocked",
                format!("the contact has blocked channel {}; choose another channel", identity.channel_id),
            ));
        }
        let id = new_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, contact_id, channel_id, direction, text, buttons, status, \
             author, idempotency_key, reply_to, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'out', $5, $6, 'queued', $7, $8, $9, $10, $10)",
        )
        .bind(&id)
        .bind(&conversation_id)
        .bind(&contact_id)
        .bind(&identity.channel_id)
        .bind(&req.text)
        .bind(to_json(&req.buttons))
        .bind(&req.author)
        .bind(&req.idempotency_key)
        .bind(&req.reply_to)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        for att in &req.attachment_ids {
            let done = sqlx::query(
                "INSERT INTO attachments (id, message_id, name, mime, size, sha256, state, created_at) \
                 SELECT $1, $2, name, mime, size, sha256, state, $3 FROM attachments WHERE id = $4 AND state = 'ready'",
            )
            .bind(new_id())
            .bind(&id)
            .bind(now)
            .bind(att)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() == 0 {
                return Err(Error::not_found("attachment", att));
            }
        }
        insert_job(&mut tx, JobKind::Send, &id, Some(&conversation_id), now).await?;
        sqlx::query("UPDATE conversations SET last_message_id = $1, updated_at = $2 WHERE id = $3")
            .bind(&id)
            .bind(now)
            .bind(&conversation_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let message = load_message(&mut tx, &id).await?;
        tx.commit().await.map_err(db)?;
        Ok((message, false))
    }

    async fn get_message(&self, id: &str) -> Result<Message> {
        let mut conn = self.read.acquire().await.map_err(db)?;
        load_message(&mut conn, id).await
    }

    async fn delivery_target(&self, message_id: &str) -> Result<DeliveryTarget> {
        let mut conn = self.read.acquire().await.map_err(db)?;
        let message = load_message(&mut conn, message_id).await?;
        let channel = load_channel(&mut conn, &message.channel_id).await?;
        let row = sqlx::query(&format!(
            "SELECT {IDENTITY_COLS} FROM identities i JOIN channels ch ON ch.id = i.channel_id \
             WHERE i.contact_id = $1 AND i.channel_id = $2 ORDER BY i.last_seen_at DESC LIMIT 1"
        ))
        .bind(&message.contact_id)
        .bind(&message.channel_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
        .ok_or_else(|| Error::unprocessable("no_identity", "the contact no longer has an identity on this channel"))?;
        Ok(DeliveryTarget { message, channel, identity: identity_from(&row)? })
    }

    async fn mark_sent(&self, message_id: &str, external_id: Option<String>) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE messages SET status = 'sent', error = NULL, external_id = $1, updated_at = $2 WHERE id = $3 AND status = 'queued'",
        )
        .bind(&external_id)
        .bind(now_ms())
        .bind(message_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() > 0 {
            let m = load_message(&mut tx, message_id).await?;
            emit(&mut tx, EventType::MessageStatus, status_event_data(&m)).await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn mark_failed(&self, message_id: &str, error: &str, flag: Option<IdentityFlag>) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE messages SET status = 'failed', error = $1, updated_at = $2 WHERE id = $3 AND status = 'queued'",
        )
        .bind(error)
        .bind(now_ms())
        .bind(message_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() > 0 {
            let m = load_message(&mut tx, message_id).await?;
            if let Some(flag) = flag {
                let col = match flag {
                    IdentityFlag::Blocked => "blocked",
                    IdentityFlag::OptedOut => "opted_out",
                };
                sqlx::query(&format!("UPDATE identities SET {col} = 1 WHERE contact_id = $1 AND channel_id = $2"))
                    .bind(&m.contact_id)
                    .bind(&m.channel_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            emit(&mut tx, EventType::MessageStatus, status_event_data(&m)).await?;
        }
        tx.commit().await.map_err(db)
    }

    // --- attachments --------------------------------------------------------------------------

    async fn insert_attachment(&self, new: NewAttachment) -> Result<Attachment> {
        let id = new_id();
        let mut conn = self.write.acquire().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO attachments (id, message_id, name, mime, size, sha256, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'ready', $7)",
        )
        .bind(&id)
        .bind(&new.message_id)
        .bind(&new.name)
        .bind(&new.mime)
        .bind(new.size)
        .bind(&new.sha256)
        .bind(now_ms())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        drop(conn);
        self.get_attachment(&id).await
    }

    async fn get_attachment(&self, id: &str) -> Result<Attachment> {
        let row = sqlx::query(&format!("SELECT {ATTACHMENT_COLS} FROM attachments WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("attachment", id))?;
        attachment_from(&row)
    }

    async fn finish_attachments(&self, message_id: &str, results: Vec<FetchedAttachment>) -> Result<()> {
        let mut tx = self.begin().await?;
        for r in results {
            match r {
                FetchedAttachment::Stored { id, size, sha256, mime } => {
                    sqlx::query(
                        "UPDATE attachments SET state = 'ready', size = $1, sha256 = $2, mime = COALESCE($3, mime), note = NULL \
                         WHERE id = $4 AND message_id = $5",
                    )
                    .bind(size)
                    .bind(sha256)
                    .bind(mime)
                    .bind(&id)
                    .bind(message_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
                FetchedAttachment::Failed { id, note } => {
                    sqlx::query("UPDATE attachments SET state = 'failed', note = $1 WHERE id = $2 AND message_id = $3")
                        .bind(note)
                        .bind(&id)
                        .bind(message_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
            }
        }
        let m = load_message(&mut tx, message_id).await?;
        if m.attachments.iter().all(|a| a.state != "pending") {
            emit(&mut tx, inbound_event(&m), message_event_data(&m)).await?;
        }
        tx.commit().await.map_err(db)
    }

    // --- the outbox ---------------------------------------------------------------------------

    async fn claim_jobs(&self, owner: &str, limit: u32, lease_ms: i64) -> Result<Vec<Job>> {
        let now = now_ms();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
             WHERE seq IN (SELECT j.seq FROM jobs j WHERE j.run_at <= $3 \
               AND (j.lease_until IS NULL OR j.lease_until < $3) \
               AND (j.queue_key IS NULL OR NOT EXISTS \
                    (SELECT 1 FROM jobs p WHERE p.queue_key = j.queue_key AND p.seq < j.seq)) \
               ORDER BY j.seq LIMIT $4{lock}) \
             RETURNING seq, kind, ref_id, queue_key, attempts"
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.write)
            .await
            .map_err(db)?;
        let mut jobs = rows
            .iter()
            .map(|r| {
                let kind = s(r, "kind")?;
                Ok(Job {
                    seq: i(r, "seq")?,
                    kind: JobKind::parse(&kind).ok_or_else(|| Error::internal(format!("unknown job kind `{kind}`")))?,
                    ref_id: s(r, "ref_id")?,
                    queue_key: os(r, "queue_key")?,
                    attempts: i(r, "attempts")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| j.seq);
        Ok(jobs)
    }

    async fn complete_job(&self, seq: i64) -> Result<()> {
        sqlx::query("DELETE FROM jobs WHERE seq = $1").bind(seq).execute(&self.write).await.map_err(db)?;
        Ok(())
    }

    async fn retry_job(&self, seq: i64, at: Millis, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, run_at = $1, last_error = $2 WHERE seq = $3",
        )
        .bind(at)
        .bind(error)
        .bind(seq)
        .execute(&self.write)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn release_jobs(&self, owner: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.write)
        .await
        .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn queue_depth(&self) -> Result<i64> {
        sqlx::query("SELECT COUNT(*) AS n FROM jobs").fetch_one(&self.read).await.map_err(db).and_then(|r| i(&r, "n"))
    }

    // --- outgoing webhooks --------------------------------------------------------------------

    async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook> {
        let id = new_id();
        let events: Vec<&str> = new.events.iter().map(|e| e.as_str()).collect();
        sqlx::query("INSERT INTO webhooks (id, url, events, secret, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(&new.url)
            .bind(to_json(&events))
            .bind(&new.secret)
            .bind(now_ms())
            .execute(&self.write)
            .await
            .map_err(db)?;
        self.get_webhook(&id).await
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        sqlx::query("SELECT id, url, events, secret, active, created_at FROM webhooks ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(webhook_from)
            .collect()
    }

    async fn get_webhook(&self, id: &str) -> Result<Webhook> {
        let row = sqlx::query("SELECT id, url, events, secret, active, created_at FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("webhook", id))?;
        webhook_from(&row)
    }

    async fn delete_webhook(&self, id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        // Pending deliveries of a removed subscription are dropped with it.
        sqlx::query("DELETE FROM jobs WHERE kind = 'webhook' AND ref_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1)")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(id).execute(&mut *tx).await.map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("webhook", id));
        }
        tx.commit().await.map_err(db)
    }

    async fn list_deliveries(&self, webhook_id: &str, page: PageRequest) -> Result<Page<WebhookDelivery>> {
        self.get_webhook(webhook_id).await?;
        let mut q = Sql::new(
            "SELECT id, webhook_id, event_type, body, status, attempts, last_status_code, last_error, created_at, delivered_at \
             FROM webhook_deliveries WHERE webhook_id = ",
        );
        q.bind_s(webhook_id);
        if let Some(c) = &page.cursor {
            q.push(" AND id < ").bind_s(c);
        }
        q.push(" ORDER BY id DESC LIMIT ").bind_i(i64::from(page.limit) + 1);
        let rows = q.query().fetch_all(&self.read).await.map_err(db)?;
        let items = rows.iter().map(delivery_from).collect::<Result<Vec<_>>>()?;
        let (items, next) = split_page(items, page.limit, |d| d.id.clone());
        Ok(Page { items, next })
    }

    async fn pending_delivery(&self, id: &str) -> Result<PendingDelivery> {
        let row = sqlx::query(
            "SELECT d.id, d.webhook_id, d.event_type, d.body, d.status, d.attempts, d.last_status_code, d.last_error, \
             d.created_at, d.delivered_at, w.url, w.secret \
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("delivery", id))?;
        Ok(PendingDelivery { delivery: delivery_from(&row)?, url: s(&row, "url")?, secret: s(&row, "secret")? })
    }

    async fn record_delivery_attempt(&self, id: &str, attempt: DeliveryAttempt) -> Result<()> {
        let (status, code, error, delivered_at) = match attempt {
            DeliveryAttempt::Delivered { status_code } => ("delivered", Some(status_code), None, Some(now_ms())),
            DeliveryAttempt::Retrying { status_code, error } => ("pending", status_code, Some(error), None),
            DeliveryAttempt::Failed { status_code, error } => ("failed", status_code, Some(error), None),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, last_status_code = $2, last_error = $3, \
             delivered_at = $4 WHERE id = $5",
        )
        .bind(status)
        .bind(code)
        .bind(error)
        .bind(delivered_at)
        .bind(id)
        .execute(&self.write)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn emit_event(&self, event: EventType, data: Value) -> Result<()> {
        let mut tx = self.begin().await?;
        emit(&mut tx, event, data).await?;
        tx.commit().await.map_err(db)
    }

    // --- tokens, operators, audit -------------------------------------------------------------

    async fn create_token(&self, name: &str, role: Role, token_hash: &str) -> Result<ApiToken> {
        let id = new_id();
        let now = now_ms();
        sqlx::query("INSERT INTO api_tokens (id, name, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(name)
            .bind(role.as_str())
            .bind(token_hash)
            .bind(now)
            .execute(&self.write)
            .await
            .map_err(db)?;
        Ok(ApiToken { id, name: name.to_string(), role, created_at: now })
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        sqlx::query("SELECT id, name, role, created_at FROM api_tokens WHERE token_hash = $1 AND revoked = 0")
            .bind(token_hash)
            .fetch_optional(&self.read)
            .await
            .map_err(db)?
            .map(|r| token_from(&r))
            .transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        sqlx::query("SELECT id, name, role, created_at FROM api_tokens WHERE revoked = 0 ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(token_from)
            .collect()
    }

    async fn revoke_token(&self, id: &str) -> Result<()> {
        let done = sqlx::query("UPDATE api_tokens SET revoked = 1 WHERE id = $1 AND revoked = 0")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("token", id));
        }
        Ok(())
    }

    async fn create_operator(&self, login: &str, role: Role, password_hash: &str) -> Result<Operator> {
        let id = new_id();
        let now = now_ms();
        sqlx::query("INSERT INTO operators (id, login, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(login)
            .bind(role.as_str())
            .bind(password_hash)
            .bind(now)
            .execute(&self.write)
            .await
            .map_err(|e| match db(e) {
                err if err.kind == okno_domain::ErrorKind::Conflict => {
                    Error::conflict("login_taken", format!("an operator with login `{login}` already exists"))
                }
                err => err,
            })?;
        Ok(Operator { id, login: login.to_string(), role, password_hash: password_hash.to_string(), created_at: now })
    }

    async fn operator_by_login(&self, login: &str) -> Result<Option<Operator>> {
        sqlx::query("SELECT id, login, role, password_hash, created_at FROM operators WHERE login = $1")
            .bind(login)
            .fetch_optional(&self.read)
            .await
            .map_err(db)?
            .map(|r| {
                Ok(Operator {
                    id: s(&r, "id")?,
                    login: s(&r, "login")?,
                    role: Role::parse(&s(&r, "role")?)?,
                    password_hash: s(&r, "password_hash")?,
                    created_at: i(&r, "created_at")?,
                })
            })
            .transpose()
    }

    async fn audit(&self, e: NewAudit) -> Result<()> {
        sqlx::query("INSERT INTO audit_log (id, at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(new_id())
            .bind(now_ms())
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.target)
            .bind(to_json(&e.detail))
            .execute(&self.write)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn list_audit(&self, page: PageRequest) -> Result<Page<AuditEntry>> {
        let mut q = Sql::new("SELECT id, at, actor, action, target, detail FROM audit_log WHERE 1 = 1");
        if let Some(c) = &page.cursor {
            q.push(" AND id < ").bind_s(c);
        }
        q.push(" ORDER BY id DESC LIMIT ").bind_i(i64::from(page.limit) + 1);
        let items = q
            .query()
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: s(r, "id")?,
                    at: i(r, "at")?,
                    actor: s(r, "actor")?,
                    action: s(r, "action")?,
                    target: s(r, "target")?,
                    detail: js(r, "detail")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (items, next) = split_page(items, page.limit, |a| a.id.clone());
        Ok(Page { items, next })
    }
}

impl SqlStore {
    async fn record_inbound_once(&self, msg: &InboundMessage) -> Result<Inbound> {
        let mut tx = self.begin().await?;
        let dedup = format!("{}:{}", msg.sender.user_id, msg.external_id);
        let seen = sqlx::query("SELECT id FROM messages WHERE channel_id = $1 AND dedup_key = $2")
            .bind(&msg.channel_id)
            .bind(&dedup)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if let Some(row) = seen {
            let message = load_message(&mut tx, &s(&row, "id")?).await?;
            return Ok(Inbound { message, duplicate: true });
        }
        load_channel(&mut tx, &msg.channel_id).await?;
        let now = now_ms();
        let identity = sqlx::query("SELECT id, contact_id FROM identities WHERE channel_id = $1 AND user_id = $2")
            .bind(&msg.channel_id)
            .bind(&msg.sender.user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let contact_id = match identity {
            Some(row) => {
                let contact_id = s(&row, "contact_id")?;
                sqlx::query(
                    "UPDATE identities SET chat_id = $1, username = COALESCE($2, username), \
                     display_name = COALESCE($3, display_name), last_seen_at = $4 WHERE id = $5",
                )
                .bind(&msg.sender.chat_id)
                .bind(&msg.sender.username)
                .bind(&msg.sender.display_name)
                .bind(now)
                .bind(s(&row, "id")?)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                if let Some(phone) = &msg.sender.phone {
                    sqlx::query("UPDATE contacts SET phone = $1, updated_at = $2 WHERE id = $3 AND phone IS NULL")
                        .bind(phone)
                        .bind(now)
                        .bind(&contact_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                contact_id
            }
            None => {
                // A new person: the same phone means the same contact (omnichannel by phone).
                let by_phone = match &msg.sender.phone {
                    Some(p) => sqlx::query("SELECT id FROM contacts WHERE phone = $1 ORDER BY id LIMIT 1")
                        .bind(p)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db)?
                        .map(|r| s(&r, "id"))
                        .transpose()?,
                    None => None,
                };
                let contact_id = match by_phone {
                    Some(id) => id,
                    None => {
                        let input = ContactInput {
                            name: msg.sender.display_name.clone().or(msg.sender.username.clone()),
                            phone: msg.sender.phone.clone(),
                            ..Default::default()
                        };
                        insert_contact(&mut tx, &input).await?
                    }
                };
                sqlx::query(
                    "INSERT INTO identities (id, contact_id, channel_id, user_id, chat_id, username, display_name, \
                     last_seen_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                )
                .bind(new_id())
                .bind(&contact_id)
                .bind(&msg.channel_id)
                .bind(&msg.sender.user_id)
                .bind(&msg.sender.chat_id)
                .bind(&msg.sender.username)
                .bind(&msg.sender.display_name)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                contact_id
            }
        };
        let (conversation_id, reopened) = current_conversation(&mut tx, &contact_id, true).await?;
        let id = new_id();
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, contact_id, channel_id, direction, text, status, external_id, \
             button_data, reply_to, dedup_key, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'in', $5, 'received', $6, $7, $8, $9, $10, $10)",
        )
        .bind(&id)
        .bind(&conversation_id)
        .bind(&contact_id)
        .bind(&msg.channel_id)
        .bind(&msg.text)
        .bind(&msg.external_id)
        .bind(&msg.button_data)
        .bind(&msg.reply_to)
        .bind(&dedup)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let mut fetch = false;
        for a in &msg.attachments {
            let (name, mime, size, sha, state, note, source) = match a {
                InboundAttachment::Url { name, mime, url } => (name, mime, 0, "", "pending", None, Some(url.as_str())),
                InboundAttachment::Stored { name, mime, size, sha256 } => {
                    (name, mime, *size, sha256.as_str(), "ready", None, None)
                }
                InboundAttachment::Failed { name, mime, size, note } => {
                    (name, mime, *size, "", "failed", Some(note.as_str()), None)
                }
            };
            fetch |= state == "pending";
            sqlx::query(
                "INSERT INTO attachments (id, message_id, name, mime, size, sha256, state, note, source_url, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(new_id())
            .bind(&id)
            .bind(name)
            .bind(mime)
            .bind(size)
            .bind(sha)
            .bind(state)
            .bind(note)
            .bind(source)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        sqlx::query(
            "UPDATE conversations SET last_message_id = $1, unread = unread + 1, last_inbound_channel_id = $2, updated_at = $3 \
             WHERE id = $4",
        )
        .bind(&id)
        .bind(&msg.channel_id)
        .bind(now)
        .bind(&conversation_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let message = load_message(&mut tx, &id).await?;
        if fetch {
            insert_job(&mut tx, JobKind::FetchAttachments, &id, None, now).await?;
        } else {
            emit(&mut tx, inbound_event(&message), message_event_data(&message)).await?;
        }
        if reopened {
            let conv = load_conversation(&mut tx, &conversation_id).await?;
            emit(&mut tx, EventType::ConversationUpdated, conversation_event_data(&conv)).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(Inbound { message, duplicate: false })
    }
}

/// The identity an outbound message goes to: the requested channel, else where the contact
/// last wrote, else their preferred channel, else the most recently active identity.
fn choose_identity<'a>(
    contact: &'a Contact,
    requested: Option<&str>,
    last_inbound: Option<&str>,
) -> Result<&'a Identity> {
    let on = |ch: &str| contact.identities.iter().find(|i| i.channel_id == ch);
    if let Some(ch) = requested {
        return on(ch).ok_or_else(|| {
            Error::unprocessable("no_identity", format!("the contact has no identity on channel `{ch}`"))
        });
    }
    let candidates = [last_inbound, contact.preferred_channel_id.as_deref()];
    if let Some(found) = candidates.into_iter().flatten().filter_map(on).find(|i| !i.blocked) {
        return Ok(found);
    }
    contact
        .identities
        .iter()
        .filter(|i| !i.blocked)
        .max_by_key(|i| i.last_seen_at.unwrap_or(0))
        .or_else(|| contact.identities.first())
        .ok_or_else(|| Error::unprocessable("no_identity", "the contact has no identity on any channel"))
}

fn status_event_data(m: &Message) -> Value {
    json!({
        "message_id": m.id, "conversation_id": m.conversation_id, "contact_id": m.contact_id,
        "channel_id": m.channel_id, "status": m.status, "error": m.error, "external_id": m.external_id,
    })
}

fn webhook_from(row: &AnyRow) -> Result<Webhook> {
    Ok(Webhook {
        id: s(row, "id")?,
        url: s(row, "url")?,
        events: serde_json::from_value(js(row, "events")?).unwrap_or_default(),
        active: flag(row, "active")?,
        secret: s(row, "secret")?,
        created_at: i(row, "created_at")?,
    })
}

fn delivery_from(row: &AnyRow) -> Result<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: s(row, "id")?,
        webhook_id: s(row, "webhook_id")?,
        event_type: s(row, "event_type")?,
        status: s(row, "status")?,
        attempts: i(row, "attempts")?,
        last_status_code: oi(row, "last_status_code")?,
        last_error: os(row, "last_error")?,
        body: js(row, "body")?,
        created_at: i(row, "created_at")?,
        delivered_at: oi(row, "delivered_at")?,
    })
}

fn token_from(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: s(row, "id")?,
        name: s(row, "name")?,
        role: Role::parse(&s(row, "role")?)?,
        created_at: i(row, "created_at")?,
    })
}

/// Cuts a `limit + 1` fetch to `limit` items and derives the next cursor.
fn split_page<T>(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = if more { items.last().map(cursor) } else { None };
    (items, next)
}
