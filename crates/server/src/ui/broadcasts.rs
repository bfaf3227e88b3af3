//! The broadcasts page: mailings with their progress (refreshed while one runs), a form to
//! start one for contact groups, pause / resume / cancel, and a mailing's report (failures by
//! reason, answers to its buttons, people who opted out). Needs the `Write` permission, as the
//! API does.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use okno_domain::model::Permission;
use okno_store::{Broadcast, BroadcastAction, PageRequest};
use serde_json::{json, Value};

use super::{error_page, refuse, short_time, Form, Session};
use crate::AppState;

fn t(s: &Session, key: &str) -> String {
    super::i18n::t(s.lang, key)
}

fn view(b: &Broadcast) -> Value {
    let share = |n: i64| if b.counts.total > 0 { n * 100 / b.counts.total } else { 0 };
    json!({
        "id": b.id, "name": b.name, "status": b.status, "created": short_time(b.created_at),
        "send_at": b.send_at.map(short_time), "total": b.counts.total, "sent": b.counts.sent,
        "failed": b.counts.failed, "pending": b.counts.pending, "skipped": b.counts.skipped,
        "cancelled": b.counts.cancelled, "sent_pct": share(b.counts.sent), "failed_pct": share(b.counts.failed),
        "groups": b.spec["audience"]["groups"], "text": b.spec["text"],
    })
}

/// `GET /ui/broadcasts`
pub async fn page(State(state): State<AppState>, s: Session) -> Response {
    list_page(&state, &s, None, Value::Null).await
}

async fn list_page(state: &AppState, s: &Session, error: Option<String>, form: Value) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, s, Permission::Write) {
        return r;
    }
    let list = match state.engine.store.list_broadcasts(PageRequest::new(Some(50), None)).await {
        Ok(l) => l,
        Err(e) => return error_page(ui, s, e),
    };
    let rows: Vec<Value> = list.items.iter().map(view).collect();
    let live = list.items.iter().any(|b| b.status == "running" || b.status == "scheduled");
    let mut resp = ui.render(
        "broadcasts.html",
        s,
        json!({"title": t(s, "broadcasts"), "nav": "broadcasts", "rows": rows, "live": live, "error": error, "form": form}),
    );
    if error.is_some() {
        *resp.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    resp
}

/// `POST /ui/broadcasts`: `name`, `groups` (comma-separated), `text`, `send_at` (RFC 3339,
/// optional), `unsubscribe` (the button's text, optional).
pub async fn create(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    if let Some(r) = s.refuse_post(&state.ui, &headers, &form, Permission::Write) {
        return r;
    }
    let groups: Vec<String> = form
        .field("groups")
        .unwrap_or_default()
        .split(',')
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();
    let mut body = json!({
        "name": form.field("name").unwrap_or_default(),
        "audience": {"groups": groups},
        "text": form.get("text").unwrap_or_default(),
    });
    if let Some(at) = form.field("send_at") {
        body["send_at"] = json!(at);
    }
    if let Some(u) = form.field("unsubscribe") {
        body["unsubscribe_button"] = json!(u);
    }
    let echo = json!({"name": body["name"], "groups": form.field("groups"), "text": body["text"], "send_at": form.field("send_at"), "unsubscribe": form.field("unsubscribe")});
    match state.engine.create_broadcast(&body, Some(format!("operator:{}", s.operator.login))).await {
        Ok(b) => {
            super::admin::audit(&state, &s, "broadcast.create", &b.id, json!({"name": b.name})).await;
            Redirect::to(&format!("/ui/broadcasts/{}", b.id)).into_response()
        }
        Err(e) => list_page(&state, &s, Some(e.message), echo).await,
    }
}

/// `GET /ui/broadcasts/{id}`: the report.
pub async fn report(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Write) {
        return r;
    }
    let loaded = async {
        let b = state.engine.store.get_broadcast(&id).await?;
        let report = state.engine.store.broadcast_report(&id).await?;
        let failed = state
            .engine
            .store
            .broadcast_recipients(&id, Some("failed".into()), PageRequest::new(Some(50), None))
            .await?;
        Ok::<_, okno_domain::Error>((b, report, failed))
    }
    .await;
    let (b, report, failed) = match loaded {
        Ok(v) => v,
        Err(e) => return error_page(ui, &s, e),
    };
    let live = b.status == "running" || b.status == "scheduled";
    ui.render(
        "broadcasts.html",
        &s,
        json!({
            "title": b.name, "nav": "broadcasts", "detail": view(&b), "live": live,
            "reasons": report.failed_by_reason, "answers": report.answers, "unsubscribed": report.unsubscribed,
            "failed": failed.items,
        }),
    )
}

/// `POST /ui/broadcasts/{id}/{action}`: `pause`, `resume` or `cancel`.
pub async fn control(
    State(state): State<AppState>,
    s: Session,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: Form,
) -> Response {
    if let Some(r) = s.refuse_post(&state.ui, &headers, &form, Permission::Write) {
        return r;
    }
    let action = match action.as_str() {
        "pause" => BroadcastAction::Pause,
        "resume" => BroadcastAction::Resume,
        "cancel" => BroadcastAction::Cancel,
        other => {
            return error_page(
                &state.ui,
                &s,
                okno_domain::Error::invalid("invalid_action", format!("no action `{other}`")),
            )
        }
    };
    match state.engine.store.control_broadcast(&id, action).await {
        Ok(_) => {
            state.engine.wake();
            super::admin::audit(&state, &s, "broadcast.control", &id, json!({"action": format!("{action:?}")})).await;
            Redirect::to(&format!("/ui/broadcasts/{id}")).into_response()
        }
        Err(e) => error_page(&state.ui, &s, e),
    }
}
