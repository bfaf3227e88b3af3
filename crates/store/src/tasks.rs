//! Tasks posted to a group chat that exactly one executor can take. The claim is a single
//! conditional `UPDATE … WHERE status = 'open'`: among presses arriving at the same instant —
//! through one process or several on one PostgreSQL — exactly one changes the row, and that
//! one writes the `task.claimed` webhook deliveries in the same transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use okno_domain::model::{EventType, Page};
use okno_domain::time::{now_ms, Millis};
use okno_domain::{Error, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::audit::write_audit;
use crate::db::{args, Conn, Row};
use crate::outbox::insert_job;
use crate::sql::{on, SqlStore};
use crate::webhooks::emit;
use crate::{JobKind, NewAudit, PageRequest};

/// The person who took a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Executor {
    /// Their id on the platform (Telegram user id).
    pub user_id: String,
    pub name: String,
    pub username: Option<String>,
    /// The okno contact the person is linked to, if any.
    pub contact_id: Option<String>,
}

/// A task and who took it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub id: String,
    pub channel_id: String,
    pub chat_id: String,
    /// The platform id of the task's message in the group.
    pub message_id: Option<String>,
    pub title: String,
    pub text: String,
    pub private_text: Option<String>,
    pub data: Value,
    /// Only members of this contact group may take the task.
    pub group: Option<String>,
    /// `open` or `claimed`.
    pub status: String,
    pub claimed_by: Option<Executor>,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub claimed_at: Option<Millis>,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub created_at: Millis,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub updated_at: Millis,
    /// Grows with every claim and release.
    #[serde(skip)]
    pub version: i64,
    /// The version the group message shows.
    #[serde(skip)]
    pub shown_version: i64,
    /// An open task is posted again this long (ms) after it was posted or given back.
    pub reoffer_after: Option<i64>,
    /// Times it has been posted again.
    pub reoffers: i64,
    /// The most times it will be posted again.
    pub reoffer_times: i64,
}

impl Task {
    pub fn is_open(&self) -> bool {
        self.status == "open"
    }
}

/// A task to store, already posted to its chat.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: String,
    pub channel_id: String,
    pub chat_id: String,
    pub message_id: Option<String>,
    pub title: String,
    pub text: String,
    pub private_text: Option<String>,
    pub data: Value,
    pub group: Option<String>,
    /// Post it again this long (ms) after it was posted while nobody has taken it.
    pub reoffer_after: Option<i64>,
    /// At most this many times.
    pub reoffer_times: i64,
}

/// A person pressing "take", as the platform describes them.
#[derive(Debug, Clone)]
pub struct Claimant {
    pub user_id: String,
    pub name: String,
    pub username: Option<String>,
}

/// What a press of "take" did.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// This press won; the task is theirs now.
    Won(Task),
    /// The person had already taken it.
    AlreadyYours(Task),
    /// Someone else has it.
    Taken(Task),
    /// The task is limited to a contact group the person is not in.
    NotAllowed(Task),
}

/// What a person may do with a task.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// The contact the person is linked to on the task's channel.
    pub contact_id: Option<String>,
    /// Whether the task's group (if any) admits them.
    pub allowed: bool,
}

/// Filters for listing tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<String>,
    pub channel_id: Option<String>,
}

/// A group chat a channel's bot is in, as okno has seen it: someone wrote there, or a task
/// was posted there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupChat {
    pub channel_id: String,
    pub chat_id: String,
    /// The group's title, when someone has written there.
    pub title: Option<String>,
}

/// The tasks' storage.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// `audit`, when given, is written in the same transaction.
    async fn create_task(&self, new: NewTask, audit: Option<NewAudit>) -> Result<Task>;
    async fn get_task(&self, id: &str) -> Result<Task>;
    /// The newest first.
    async fn list_tasks(&self, filter: TaskFilter, page: PageRequest) -> Result<Page<Task>>;
    /// The first press wins atomically; a win emits `task.claimed` in the same transaction.
    async fn claim_task(&self, id: &str, who: Claimant) -> Result<ClaimOutcome>;
    /// Opens a claimed task again. With `by`, only that person (the executor) may.
    async fn release_task(&self, id: &str, by: Option<&str>) -> Result<Task>;
    /// Records that an open task was posted again as `message_id`, if it is still as the job
    /// `job_ref` saw it (see `reoffer_ref`); schedules the next time, if any. `None` when it
    /// changed meanwhile (nothing was recorded).
    async fn record_reoffer(&self, job_ref: &str, message_id: &str) -> Result<Option<Task>>;
    /// Records that the group message now shows `version`.
    async fn mark_task_shown(&self, id: &str, version: i64) -> Result<()>;
    /// Whether a person on the task's channel may take it (and see its details).
    async fn task_access(&self, id: &str, user_id: &str) -> Result<Access>;
    /// The group chats okno knows (a party its platform reported as a group, or a chat one of
    /// the latest tasks went to), by title; a chat once. At most
    /// [`GROUP_CHATS`] of each kind, read through indexes (never the whole contact base).
    async fn group_chats(&self) -> Result<Vec<GroupChat>>;
    /// The titles of these group chats (`(channel_id, chat_id)`), where okno knows one: one
    /// lookup per chat by its party's key.
    async fn group_titles(&self, chats: &[(String, String)]) -> Result<HashMap<(String, String), String>>;
}

/// Most group chats of each kind (seen, tasked) the task form offers.
pub const GROUP_CHATS: i64 = 500;

const TASK_COLS: &str = "id, channel_id, chat_id, message_id, title, text, private_text, data, grp, status, \
     claimed_user_id, claimed_name, claimed_username, claimed_contact_id, claimed_at, version, shown_version, \
     created_at, updated_at, reoffer_after, reoffers, reoffer_times";

fn task_from(row: &Row) -> Result<Task> {
    let claimed_by = match row.os("claimed_user_id")? {
        Some(user_id) => Some(Executor {
            user_id,
            name: row.os("claimed_name")?.unwrap_or_default(),
            username: row.os("claimed_username")?,
            contact_id: row.os("claimed_contact_id")?,
        }),
        None => None,
    };
    Ok(Task {
        id: row.s("id")?,
        channel_id: row.s("channel_id")?,
        chat_id: row.s("chat_id")?,
        message_id: row.os("message_id")?,
        title: row.s("title")?,
        text: row.s("text")?,
        private_text: row.os("private_text")?,
        data: row.js("data")?,
        group: row.os("grp")?,
        status: row.s("status")?,
        claimed_by,
        claimed_at: row.oi("claimed_at")?,
        created_at: row.i("created_at")?,
        updated_at: row.i("updated_at")?,
        version: row.i("version")?,
        shown_version: row.i("shown_version")?,
        reoffer_after: row.oi("reoffer_after")?,
        reoffers: row.i("reoffers")?,
        reoffer_times: row.i("reoffer_times")?,
    })
}

async fn load_task(c: &mut dyn Conn, id: &str) -> Result<Task> {
    let row = c
        .row(&format!("SELECT {TASK_COLS} FROM tasks WHERE id = $1"), args![id])
        .await?
        .ok_or_else(|| Error::not_found("task", id))?;
    task_from(&row)
}

/// The person's contact on a channel and whether `group` (if any) holds it.
async fn access(c: &mut dyn Conn, channel_id: &str, user_id: &str, group: Option<&str>) -> Result<Access> {
    let contact_id = c
        .row("SELECT contact_id FROM identities WHERE channel_id = $1 AND user_id = $2", args![channel_id, user_id])
        .await?
        .map(|r| r.s("contact_id"))
        .transpose()?;
    let allowed = match (group, &contact_id) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(g), Some(contact)) => c
            .row("SELECT 1 AS one FROM contact_groups WHERE contact_id = $1 AND grp = $2", args![contact, g])
            .await?
            .is_some(),
    };
    Ok(Access { contact_id, allowed })
}

/// What `task.claimed` carries: the task, the executor, and the linked contact.
async fn claimed_event(c: &mut dyn Conn, task: &Task) -> Result<Value> {
    let contact = match task.claimed_by.as_ref().and_then(|e| e.contact_id.as_deref()) {
        Some(id) => c
            .row("SELECT id, external_id, name, phone, email, attrs FROM contacts WHERE id = $1", args![id])
            .await?
            .map(|r| -> Result<Value> {
                Ok(json!({
                    "id": r.s("id")?, "external_id": r.os("external_id")?, "name": r.os("name")?,
                    "phone": r.os("phone")?, "email": r.os("email")?, "attrs": r.js("attrs")?,
                }))
            })
            .transpose()?,
        None => None,
    };
    Ok(json!({"task": task, "executor": task.claimed_by, "contact": contact}))
}

/// A re-post job names the task as it was when the job was queued (`id:version:reoffers`): a
/// claim, a release or another re-post in between makes the job stale.
pub fn reoffer_ref(task: &Task) -> String {
    format!("{}:{}:{}", task.id, task.version, task.reoffers)
}

/// Queues the next re-post of an open task, when it has re-posts left.
async fn schedule_reoffer(c: &mut dyn Conn, task: &Task, from: i64) -> Result<()> {
    if let Some(after) = task.reoffer_after.filter(|_| task.reoffers < task.reoffer_times && task.is_open()) {
        c.exec(
            "INSERT INTO jobs (kind, ref_id, queue_key, run_at, created_at) VALUES ($1, $2, $3, $4, $5)",
            args![JobKind::TaskReoffer.as_str(), reoffer_ref(task), format!("task:{}", task.id), from + after, from],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl TaskStore for SqlStore {
    async fn create_task(&self, new: NewTask, audit: Option<NewAudit>) -> Result<Task> {
        on!(self.write, |c| {
            let known = c.row("SELECT id FROM channels WHERE id = $1 AND deleted = 0", args![&new.channel_id]).await?;
            if known.is_none() {
                return Err(Error::not_found("channel", &new.channel_id));
            }
            let now = now_ms();
            c.exec(
                "INSERT INTO tasks (id, channel_id, chat_id, message_id, title, text, private_text, data, grp, status, \
                 version, shown_version, created_at, updated_at, reoffer_after, reoffer_times) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', 0, 0, $10, $10, $11, $12)",
                args![
                    &new.id,
                    &new.channel_id,
                    &new.chat_id,
                    &new.message_id,
                    &new.title,
                    &new.text,
                    &new.private_text,
                    new.data.to_string(),
                    &new.group,
                    now,
                    new.reoffer_after,
                    new.reoffer_times
                ],
            )
            .await?;
            let task = load_task(c, &new.id).await?;
            schedule_reoffer(c, &task, now).await?;
            write_audit(c, audit.as_ref()).await?;
            Ok(task)
        })
    }

    async fn get_task(&self, id: &str) -> Result<Task> {
        let id = id.to_owned();
        on!(self.read, |c| load_task(c, &id).await)
    }

    async fn list_tasks(&self, filter: TaskFilter, page: PageRequest) -> Result<Page<Task>> {
        on!(self.read, |c| {
            let mut sql = format!("SELECT {TASK_COLS} FROM tasks WHERE 1 = 1");
            let mut params: Vec<crate::db::Arg> = Vec::new();
            if let Some(status) = &filter.status {
                params.push(status.into());
                sql.push_str(&format!(" AND status = ${}", params.len()));
            }
            if let Some(channel_id) = &filter.channel_id {
                params.push(channel_id.into());
                sql.push_str(&format!(" AND channel_id = ${}", params.len()));
            }
            if let Some(cursor) = &page.cursor {
                params.push(cursor.into());
                sql.push_str(&format!(" AND id < ${}", params.len()));
            }
            params.push((i64::from(page.limit) + 1).into());
            sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));
            let mut items = c.rows(&sql, &params).await?.iter().map(task_from).collect::<Result<Vec<_>>>()?;
            let more = items.len() > page.limit as usize;
            items.truncate(page.limit as usize);
            let next = if more { items.last().map(|t| t.id.clone()) } else { None };
            Ok(Page { items, next })
        })
    }

    async fn claim_task(&self, id: &str, who: Claimant) -> Result<ClaimOutcome> {
        let id = id.to_owned();
        on!(self.write, |c| {
            let task = load_task(c, &id).await?;
            let access = access(c, &task.channel_id, &who.user_id, task.group.as_deref()).await?;
            if task.claimed_by.as_ref().is_some_and(|e| e.user_id == who.user_id) {
                return Ok(ClaimOutcome::AlreadyYours(task));
            }
            if !task.is_open() {
                return Ok(ClaimOutcome::Taken(task));
            }
            if !access.allowed {
                return Ok(ClaimOutcome::NotAllowed(task));
            }
            let now = now_ms();
            // The one statement that decides: it changes the row only while the task is open.
            let won = c
                .exec(
                    "UPDATE tasks SET status = 'claimed', claimed_user_id = $2, claimed_name = $3, \
                     claimed_username = $4, claimed_contact_id = $5, claimed_at = $6, version = version + 1, \
                     updated_at = $6 WHERE id = $1 AND status = 'open'",
                    args![&id, &who.user_id, &who.name, &who.username, &access.contact_id, now],
                )
                .await?
                == 1;
            let task = load_task(c, &id).await?;
            if !won {
                return Ok(match &task.claimed_by {
                    Some(e) if e.user_id == who.user_id => ClaimOutcome::AlreadyYours(task),
                    _ => ClaimOutcome::Taken(task),
                });
            }
            let data = claimed_event(c, &task).await?;
            emit(c, EventType::TaskClaimed, data).await?;
            // A task a business system asked for (through a connector) is told back to it.
            if let Some(connector) = task.data.get("connector").and_then(Value::as_str) {
                let queue = format!("connector:{connector}");
                insert_job(c, JobKind::ConnectorTaskTaken, &task.id, Some(&queue), now).await?;
            }
            Ok(ClaimOutcome::Won(task))
        })
    }

    async fn release_task(&self, id: &str, by: Option<&str>) -> Result<Task> {
        let (id, by) = (id.to_owned(), by.map(str::to_owned));
        on!(self.write, |c| {
            let task = load_task(c, &id).await?;
            let Some(executor) = &task.claimed_by else {
                return Err(Error::conflict("task_not_claimed", "the task is open: nobody has taken it"));
            };
            if by.as_ref().is_some_and(|b| *b != executor.user_id) {
                return Err(Error::new(
                    okno_domain::ErrorKind::Forbidden,
                    "not_the_executor",
                    "only the person who took the task can give it back",
                ));
            }
            let changed = c
                .exec(
                    "UPDATE tasks SET status = 'open', claimed_user_id = NULL, claimed_name = NULL, \
                     claimed_username = NULL, claimed_contact_id = NULL, claimed_at = NULL, version = version + 1, \
                     updated_at = $3 WHERE id = $1 AND status = 'claimed' AND claimed_user_id = $2",
                    args![&id, &executor.user_id, now_ms()],
                )
                .await?;
            if changed != 1 {
                return Err(Error::conflict("task_changed", "the task changed meanwhile; read it again"));
            }
            let released = load_task(c, &id).await?;
            let data =
                json!({"task": released, "executor": executor, "by": if by.is_some() { "executor" } else { "api" }});
            emit(c, EventType::TaskReleased, data).await?;
            // Offered again from now: the released task gets its full time before a re-post.
            c.exec("UPDATE tasks SET reoffers = 0 WHERE id = $1", args![&id]).await?;
            let released = load_task(c, &id).await?;
            schedule_reoffer(c, &released, now_ms()).await?;
            Ok(released)
        })
    }

    async fn record_reoffer(&self, job_ref: &str, message_id: &str) -> Result<Option<Task>> {
        let message_id = message_id.to_owned();
        let mut parts = job_ref.splitn(3, ':');
        let id = parts.next().unwrap_or_default().to_string();
        let version: i64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(-1);
        let reoffers: i64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(-1);
        on!(self.write, |c| {
            let now = now_ms();
            let changed = c
                .exec(
                    "UPDATE tasks SET message_id = $2, reoffers = reoffers + 1, shown_version = version, updated_at = $3 \
                     WHERE id = $1 AND status = 'open' AND version = $4 AND reoffers = $5",
                    args![&id, &message_id, now, version, reoffers],
                )
                .await?;
            if changed == 0 {
                return Ok(None);
            }
            let task = load_task(c, &id).await?;
            schedule_reoffer(c, &task, now).await?;
            Ok(Some(task))
        })
    }

    async fn mark_task_shown(&self, id: &str, version: i64) -> Result<()> {
        let id = id.to_owned();
        on!(self.write, |c| {
            c.exec("UPDATE tasks SET shown_version = $2 WHERE id = $1 AND shown_version < $2", args![&id, version])
                .await?;
            Ok(())
        })
    }

    async fn task_access(&self, id: &str, user_id: &str) -> Result<Access> {
        let (id, user_id) = (id.to_owned(), user_id.to_owned());
        on!(self.read, |c| {
            let task = load_task(c, &id).await?;
            access(c, &task.channel_id, &user_id, task.group.as_deref()).await
        })
    }

    async fn group_chats(&self) -> Result<Vec<GroupChat>> {
        on!(self.read, |c| {
            // The groups the platforms reported; the condition is the partial index
            // `identities_groups`' own.
            let seen = c
                .rows(
                    "SELECT i.channel_id, i.chat_id, i.display_name FROM identities i \
                     JOIN channels ch ON ch.id = i.channel_id \
                     WHERE i.is_group = 1 AND ch.deleted = 0 LIMIT $1",
                    args![GROUP_CHATS],
                )
                .await?;
            // The chats of the latest tasks, newest first through the primary key.
            let tasked = c
                .rows(
                    "SELECT t.channel_id, t.chat_id FROM (SELECT channel_id, chat_id FROM tasks ORDER BY id DESC \
                     LIMIT $1) t JOIN channels ch ON ch.id = t.channel_id WHERE ch.deleted = 0",
                    args![GROUP_CHATS * 4],
                )
                .await?;
            let mut chats: Vec<GroupChat> = Vec::new();
            for r in &seen {
                chats.push(GroupChat {
                    channel_id: r.s("channel_id")?,
                    chat_id: r.s("chat_id")?,
                    title: r.os("display_name")?,
                });
            }
            for r in &tasked {
                let (channel_id, chat_id) = (r.s("channel_id")?, r.s("chat_id")?);
                if !chats.iter().any(|g| g.channel_id == channel_id && g.chat_id == chat_id) {
                    chats.push(GroupChat { channel_id, chat_id, title: None });
                }
            }
            chats.sort_by(|a, b| {
                (a.title.is_none(), &a.title, &a.chat_id).cmp(&(b.title.is_none(), &b.title, &b.chat_id))
            });
            Ok(chats)
        })
    }

    async fn group_titles(&self, chats: &[(String, String)]) -> Result<HashMap<(String, String), String>> {
        let mut wanted = chats.to_vec();
        wanted.sort();
        wanted.dedup();
        on!(self.read, |c| {
            let mut titles = HashMap::new();
            // A group's party has the chat's id as its user id: the unique key (channel_id, user_id).
            for (channel_id, chat_id) in wanted {
                let row = c
                    .row(
                        "SELECT display_name FROM identities WHERE channel_id = $1 AND user_id = $2",
                        args![&channel_id, &chat_id],
                    )
                    .await?;
                if let Some(title) = row.map(|r| r.os("display_name")).transpose()?.flatten() {
                    titles.insert((channel_id, chat_id), title);
                }
            }
            Ok(titles)
        })
    }
}
