//! The tasks pages: jobs posted to a group chat that exactly one person can take — their
//! status, the group and channel, who took each and when, the data — and posting a new one to
//! a group the channel knows (the same engine path as `POST /api/v1/tasks`: posted before the
//! answer, so the platform's refusal is shown on the form). Viewing needs `Read`; posting and
//! giving a task back need `Write`, as in the API. Details meant for the executor (the client's
//! phone…) are masked for roles without the right to see personal data.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use okno_domain::model::{Channel, Permission};
use okno_engine::tasks::TaskRequest;
use okno_store::{GroupChat, PageRequest, Task, TaskFilter};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::events::full_time;
use super::{channel_map, channel_view, error_page, refuse, short_time, Form, Session};
use crate::masking;
use crate::AppState;

fn t(s: &Session, key: &str) -> String {
    super::i18n::t(s.lang, key)
}

/// Filters of the list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TasksQuery {
    /// `open` or `claimed`.
    pub status: Option<String>,
    pub channel: Option<String>,
    pub cursor: Option<String>,
}

/// Group chats' titles by `(channel_id, chat_id)`.
type Titles = HashMap<(String, String), String>;

/// What a group chat is called on screen: its title, else its id.
fn chat_label(title: Option<&String>, chat_id: &str) -> String {
    title.map_or_else(|| chat_id.to_string(), |title| format!("{title} ({chat_id})"))
}

/// The titles of the chats of these tasks: one indexed lookup per chat.
async fn titles_of(state: &AppState, tasks: &[&Task]) -> okno_domain::Result<Titles> {
    let chats: Vec<(String, String)> = tasks.iter().map(|t| (t.channel_id.clone(), t.chat_id.clone())).collect();
    state.engine.store.group_titles(&chats).await
}

fn executor_view(task: &Task) -> Value {
    match &task.claimed_by {
        Some(e) => json!({
            "name": e.name, "username": e.username, "contact_id": e.contact_id, "user_id": e.user_id,
            "at": task.claimed_at.map(short_time), "at_full": task.claimed_at.map(full_time),
        }),
        None => Value::Null,
    }
}

fn row_view(task: &Task, titles: &Titles, channels: &HashMap<&str, &Channel>) -> Value {
    let title = titles.get(&(task.channel_id.clone(), task.chat_id.clone()));
    json!({
        "id": task.id, "title": task.title, "status": task.status,
        "chat": chat_label(title, &task.chat_id),
        "channel": channel_view(channels.get(task.channel_id.as_str()).copied()),
        "by": executor_view(task), "created": short_time(task.created_at),
    })
}

/// `GET /ui/tasks`
pub async fn page(State(state): State<AppState>, s: Session, Query(q): Query<TasksQuery>) -> Response {
    list_page(&state, &s, q, None, Value::Null).await
}

/// The list with the form; `error` and the form as filled in after a refused post.
async fn list_page(state: &AppState, s: &Session, q: TasksQuery, error: Option<String>, form: Value) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, s, Permission::Read) {
        return r;
    }
    let status = q.status.clone().filter(|v| !v.is_empty());
    if status.as_deref().is_some_and(|v| v != "open" && v != "claimed") {
        let e = okno_domain::Error::invalid("invalid_status", "`status` is `open` or `claimed`");
        return error_page(ui, s, e);
    }
    let store = &state.engine.store;
    let loaded = async {
        let filter = TaskFilter { status: status.clone(), channel_id: q.channel.clone().filter(|c| !c.is_empty()) };
        let page = store.list_tasks(filter, PageRequest::new(Some(50), q.cursor.clone())).await?;
        let channels = store.list_channels().await?;
        let titles = titles_of(state, &page.items.iter().collect::<Vec<_>>()).await?;
        // The form's list of groups, for those who may post.
        let chats = if s.role().allows(Permission::Write) { store.group_chats().await? } else { Vec::new() };
        Ok::<_, okno_domain::Error>((page, channels, titles, chats))
    }
    .await;
    let (page, channels, titles, chats) = match loaded {
        Ok(v) => v,
        Err(e) => return error_page(ui, s, e),
    };
    let carrying: Vec<&Channel> = channels.iter().filter(|c| state.engine.carries_tasks(c).unwrap_or(false)).collect();
    let by_id = channel_map(&channels);
    let rows: Vec<Value> = page.items.iter().map(|task| row_view(task, &titles, &by_id)).collect();
    let chat_options: Vec<Value> = chats
        .iter()
        .filter(|g| carrying.iter().any(|c| c.id == g.channel_id))
        .map(|g: &GroupChat| {
            let channel = by_id.get(g.channel_id.as_str()).map_or("?", |c| c.name.as_str());
            json!({
                "value": format!("{} {}", g.channel_id, g.chat_id),
                "label": format!("{} · {channel}", chat_label(g.title.as_ref(), &g.chat_id)),
            })
        })
        .collect();
    let next_query = page.next.as_ref().map(|cursor| {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        if let Some(v) = &status {
            pairs.append_pair("status", v);
        }
        if let Some(v) = q.channel.as_deref().filter(|c| !c.is_empty()) {
            pairs.append_pair("channel", v);
        }
        pairs.append_pair("cursor", cursor);
        pairs.finish()
    });
    let mut resp = ui.render(
        "tasks.html",
        s,
        json!({
            "title": t(s, "tk_tasks"), "nav": "tasks", "rows": rows, "next_query": next_query,
            "f": {"status": status, "channel": q.channel},
            "channels": carrying.iter().map(|c| json!({"id": c.id, "name": c.name})).collect::<Vec<_>>(),
            "all_channels": channels.iter().map(|c| json!({"id": c.id, "name": c.name})).collect::<Vec<_>>(),
            "chats": chat_options, "can_post": s.role().allows(Permission::Write),
            "error": error, "form": form,
        }),
    );
    if error.is_some() {
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    resp
}

/// What the form holds, to fill it in again.
fn echo(form: &Form) -> Value {
    let mut v = Map::new();
    for k in ["chat", "channel_id", "chat_id", "title", "text", "private_text", "group", "reoffer_after", "data"] {
        v.insert(k.to_string(), json!(form.get(k).unwrap_or("")));
    }
    Value::Object(v)
}

/// The task the form describes, checked as the API checks it (the engine checks the rest).
fn request_of(s: &Session, form: &Form) -> okno_domain::Result<TaskRequest> {
    let invalid = |key: &str| okno_domain::Error::invalid("invalid_task", t(s, key));
    // A chat id typed in wins over the list of known groups.
    let (channel_id, chat_id) = match (form.field("chat_id"), form.field("chat")) {
        (Some(chat), _) => (form.field("channel_id").ok_or_else(|| invalid("tk_err_channel"))?, chat),
        (None, Some(known)) => {
            let (channel, chat) = known.split_once(' ').ok_or_else(|| invalid("tk_err_chat"))?;
            (channel.to_string(), chat.to_string())
        }
        (None, None) => return Err(invalid("tk_err_chat")),
    };
    let data = match form.field("data") {
        None => json!({}),
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Err(invalid("tk_err_data_object")),
            Err(e) => {
                let message = format!("{}: {e}", t(s, "tk_err_data_json"));
                return Err(okno_domain::Error::invalid("invalid_task", message));
            }
        },
    };
    let reoffer_after = form
        .field("reoffer_after")
        .map(|d| {
            okno_engine::events::parse_duration(&d).map_err(|e| okno_domain::Error::invalid("invalid_task", e.message))
        })
        .transpose()?;
    Ok(TaskRequest {
        channel_id,
        chat_id,
        title: form.get("title").unwrap_or_default().to_string(),
        text: form.get("text").unwrap_or_default().to_string(),
        private_text: form.field("private_text"),
        data,
        group: form.field("group"),
        reoffer_after,
        reoffer_times: None,
    })
}

/// `POST /ui/tasks`: posts a task to the chosen group (`chat` = "channel chat" from the list,
/// or `channel_id` + `chat_id`), with `title`, `text`, optional `private_text`, `group`,
/// `reoffer_after` and `data` (a JSON object).
pub async fn create(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    if let Some(r) = s.refuse_post(&state.ui, &headers, &form, Permission::Write) {
        return r;
    }
    let posted = match request_of(&s, &form) {
        Ok(req) => state.engine.create_task(req, Some(&format!("operator:{}", s.operator.login))).await,
        Err(e) => Err(e),
    };
    match posted {
        Ok(task) => Redirect::to(&format!("/ui/tasks/{}", task.id)).into_response(),
        Err(e) => list_page(&state, &s, TasksQuery::default(), Some(e.message), echo(&form)).await,
    }
}

/// `GET /ui/tasks/{id}`
pub async fn detail(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    let store = &state.engine.store;
    let loaded = async {
        let task = store.get_task(&id).await?;
        let channels = store.list_channels().await?;
        // The one label the page needs: its chat's title.
        let titles = titles_of(&state, &[&task]).await?;
        Ok::<_, okno_domain::Error>((task, channels, titles))
    }
    .await;
    let (task, channels, titles) = match loaded {
        Ok(v) => v,
        Err(e) => return error_page(ui, &s, e),
    };
    let personal = s.role().allows(Permission::PersonalData);
    let private_text =
        task.private_text.as_deref().map(|p| if personal { p.to_string() } else { masking::mask_text(p) });
    let data = if personal { task.data.clone() } else { masking::mask_json(&task.data) };
    let mut fields = Vec::new();
    super::events::flatten("", &data, &mut fields);
    let by_id = channel_map(&channels);
    ui.render(
        "task.html",
        &s,
        json!({
            "title": task.title, "nav": "tasks", "row": row_view(&task, &titles, &by_id),
            "task": {
                "id": task.id, "text": task.text, "private_text": private_text, "group": task.group,
                "message_id": task.message_id, "created": full_time(task.created_at), "updated": full_time(task.updated_at),
                "reoffer_after": task.reoffer_after.map(|ms| format!("{} {}", ms / 60_000, t(&s, "tk_minutes"))),
                "reoffers": task.reoffers, "reoffer_times": task.reoffer_times,
            },
            "fields": fields.into_iter().map(|(k, v)| json!({"path": k, "value": v})).collect::<Vec<_>>(),
            "can_release": task.claimed_by.is_some() && s.role().allows(Permission::Write),
        }),
    )
}

/// `POST /ui/tasks/{id}/release`: opens a taken task again; the group message gets its buttons
/// back (as `POST /api/v1/tasks/{id}/release`).
pub async fn release(
    State(state): State<AppState>,
    s: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if let Some(r) = s.refuse_post(&state.ui, &headers, &form, Permission::Write) {
        return r;
    }
    match state.engine.release_task(&id).await {
        Ok(_) => {
            super::admin::audit(&state, &s, "task.release", &id, json!({})).await;
            Redirect::to(&format!("/ui/tasks/{id}")).into_response()
        }
        Err(e) => error_page(&state.ui, &s, e),
    }
}
