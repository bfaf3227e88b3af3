//! `/api/v1/tasks`: tasks posted to a Telegram group that exactly one executor can take
//! (docs/tasks.md). Creating one posts it at once, so Telegram's refusal (a chat the bot is not
//! in…) is the answer to the request.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use okno_domain::model::{Page, Permission};
use okno_domain::Error;
use okno_engine::tasks::TaskRequest;
use okno_store::{Task, TaskFilter};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiJson, ApiQuery, ApiResult};
use crate::AppState;

/// `POST /api/v1/tasks` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// A Telegram channel whose bot is in the group.
    pub channel_id: String,
    /// The group chat: its id as a number or a string (e.g. `-1001234567890`).
    #[schema(value_type = String)]
    pub chat_id: Value,
    /// Shown in bold (1..256 characters).
    pub title: String,
    /// What everyone in the group sees (up to 3000 characters).
    pub text: String,
    /// Sent privately to whoever presses "Подробнее" (up to 3500 characters), and to the executor.
    pub private_text: Option<String>,
    /// Anything the business system wants back in `task.claimed` (e.g. the deal id).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
    /// Only contacts in this contact group may take the task.
    pub group: Option<String>,
    /// Post the task again at the bottom of the chat when nobody has taken it this long after
    /// it was posted (or given back): `30m`, `2h`, `1d`.
    pub reoffer_after: Option<String>,
    /// At most this many times (1..20, default 3).
    pub reoffer_times: Option<u32>,
}

/// Filters of `GET /api/v1/tasks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// `open` or `claimed`.
    pub status: Option<String>,
    pub channel_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", request_body = CreateTask,
    responses((status = 201, description = "posted to the group; the task with `status: open`"),
        (status = 400, description = "`invalid_task`, `invalid_body`"), (status = 404, description = "no such channel"),
        (status = 422, description = "`<kind>_refused` with the platform's words, e.g. `telegram_refused` when the bot is not in the chat; `unsupported_channel` for a channel whose platform has no group posts"),
        (status = 503, description = "`<kind>_unavailable`: the platform could not be reached")))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateTask>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    auth.require(Permission::Write)?;
    let chat_id = match &body.chat_id {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_i64() => n.to_string(),
        _ => return Err(Error::invalid("invalid_task", "`chat_id` is the group's id, a number or a string").into()),
    };
    let data = match body.data {
        Value::Null => json!({}),
        d => d,
    };
    let reoffer_after = body
        .reoffer_after
        .as_deref()
        .map(|d| okno_engine::events::parse_duration(d).map_err(|e| Error::invalid("invalid_task", e.message)))
        .transpose()?;
    let task = state
        .engine
        .create_task(
            TaskRequest {
                channel_id: body.channel_id,
                chat_id,
                title: body.title,
                text: body.text,
                private_text: body.private_text,
                data,
                group: body.group,
                reoffer_after,
                reoffer_times: body.reoffer_times.map(i64::from),
            },
            None,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(task)))
}

#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(TaskQuery), responses((status = 200, description = "the newest first")))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> ApiResult<Json<Page<Task>>> {
    auth.require(Permission::Read)?;
    if q.status.as_deref().is_some_and(|s| s != "open" && s != "claimed") {
        return Err(Error::invalid("invalid_status", "`status` is `open` or `claimed`").into());
    }
    let page = okno_store::PageRequest::new(q.limit, q.cursor);
    let filter = TaskFilter { status: q.status, channel_id: q.channel_id };
    Ok(Json(state.engine.store.list_tasks(filter, page).await?))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks",
    responses((status = 200, description = "the task: `status` `open` | `claimed`, `claimed_by` null | {user_id, name, username, contact_id}"), (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Task>> {
    auth.require(Permission::Read)?;
    Ok(Json(state.engine.store.get_task(&id).await?))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/release", tag = "tasks",
    responses((status = 200, description = "open again; the group message shows the buttons again"), (status = 404),
        (status = 409, description = "`task_not_claimed`: nobody has it")))]
pub async fn release(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Task>> {
    auth.require(Permission::Write)?;
    let task = state.engine.release_task(&id).await?;
    super::channels::audit(&state, &auth, "task.release", &id, json!({})).await;
    Ok(Json(task))
}
