//! The 1C console: the visitor plays the business system. It posts the sample events of
//! `examples/events` and the sample task of `examples/tasks` to okno's API as 1C would, starts
//! a survey or a broadcast, and shows what the simulated 1C received — the bots' lookups and
//! forms, and okno's signed webhooks (answers, claimed tasks, survey answers).
//!
//! ```text
//!  GET  /demo/console                  the page
//!  GET  /demo/api/console              samples, what was posted (with okno's deliveries), what 1C received
//!  POST /demo/api/console/event        {"file", "new_key"?}
//!  POST /demo/api/console/task
//!  POST /demo/api/console/survey       {"survey_id", "person"}
//!  POST /demo/api/console/broadcast    {"group", "text"}
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use okno_domain::{Error, ErrorKind};
use okno_server::error::{parse_json, ApiResult, RawBody};
use okno_server::ui::i18n::Lang;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::cast::{self, EVENTS, GROUP, PEOPLE, RULES, TASK};
use crate::texts::t;
use crate::{Posted, Shared};

/// How many of the latest posts the console follows, and how much of 1C's log it shows.
const SHOWN: usize = 12;
const RECEIVED_SHOWN: usize = 40;

/// `GET /demo/console`
pub async fn page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.pages.render("console.html", &headers, json!({"nav": "console", "admin_login": shared.admin_login}))
}

/// Who a rule's recipients are for this event's data, as names of the cast: `{{ data.FIELD }}`
/// external ids and contact groups (other recipients show as what they are).
fn recipients(event: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for (_, text) in RULES {
        let Ok(rule) = serde_json::from_str::<Value>(text) else { continue };
        if rule["event"] != event["type"] {
            continue;
        }
        for r in rule["recipients"].as_array().into_iter().flatten() {
            if let Some(template) = r["external_id"].as_str() {
                let field = template.trim_start_matches("{{").trim_end_matches("}}").trim();
                let id = field.strip_prefix("data.").and_then(|f| event["data"][f].as_str()).unwrap_or(field);
                names.push(cast::person_by_external_id(id).map(|p| p.name.to_string()).unwrap_or(id.to_string()));
            } else if let Some(group) = r["group"].as_str() {
                names.extend(
                    PEOPLE.iter().filter(|p| p.groups.contains(&group)).map(|p| format!("{} ({group})", p.name)),
                );
            } else if r.get("contact_id").is_some() {
                names.push("subscriber".into());
            }
        }
    }
    names.dedup();
    names
}

fn sample(file: &str) -> Result<Value, Error> {
    let (_, text) = EVENTS.iter().find(|(f, _)| *f == file).ok_or_else(|| Error::not_found("demo_sample", file))?;
    serde_json::from_str(text).map_err(|e| Error::internal(format!("examples/events/{file} is not JSON: {e}")))
}

/// A contact's name: the cast's, else okno's (a customer okno met first has no external id),
/// asked once.
async fn name_of(shared: &Shared, contact_id: &str) -> String {
    let known = shared
        .world
        .get()
        .and_then(|w| w.contacts.iter().find(|(_, id)| id.as_str() == contact_id))
        .and_then(|(key, _)| cast::person(key));
    if let Some(p) = known {
        return p.name.to_string();
    }
    if let Some(name) = shared.names.lock().unwrap_or_else(|e| e.into_inner()).get(contact_id) {
        return name.clone();
    }
    match shared.api.get(&format!("/contacts/{contact_id}")).await.and_then(|r| r.ok("a contact")) {
        Ok(c) => {
            let name = c["name"].as_str().unwrap_or(contact_id).to_string();
            shared.names.lock().unwrap_or_else(|e| e.into_inner()).insert(contact_id.to_string(), name.clone());
            name
        }
        Err(_) => contact_id.to_string(),
    }
}

/// What the console shows of a posted event: its status and whom okno reached. Asked of okno
/// until the event is settled (processed, nothing left queued); from then on it stays as it is.
async fn event_view(shared: &Shared, id: &str) -> Result<Value, Error> {
    if let Some(v) = shared.settled.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
        return Ok(v.clone());
    }
    let ev = shared.api.get(&format!("/events/{id}")).await?.ok("the posted event")?;
    let mut deliveries = Vec::new();
    let mut settled = matches!(ev["status"].as_str(), Some("processed" | "no_rule"));
    for d in ev["deliveries"].as_array().into_iter().flatten() {
        let name = name_of(shared, d["contact_id"].as_str().unwrap_or("")).await;
        settled &= matches!(d["status"].as_str(), Some("sent" | "delivered" | "read" | "failed"));
        deliveries.push(json!({"name": name, "status": d["status"], "error": d["error"]}));
    }
    let view = json!({"id": id, "status": ev["status"], "deliveries": deliveries, "unresolved": ev["unresolved"]});
    if settled {
        shared.settled.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), view.clone());
    }
    Ok(view)
}

/// A press okno told 1C about (`button.pressed`), in words: who pressed which button, and what
/// the button was — an answer to a notification or a broadcast, a bot's menu, a task's, a
/// survey's.
async fn press_view(shared: &Shared, data: &Value) -> Value {
    let button = data["button_data"].as_str().unwrap_or_default();
    let kind = if data.get("event_id").is_some_and(|v| !v.is_null()) {
        "answer"
    } else if data.get("broadcast_id").is_some_and(|v| !v.is_null()) {
        "broadcast"
    } else if button.starts_with("bot:") {
        "bot_menu"
    } else if button.starts_with("task:") {
        "task"
    } else if button.starts_with(okno_domain::surveys::BUTTON_PREFIX) {
        "survey"
    } else {
        "button"
    };
    let label = data["button_label"].as_str().filter(|l| !l.trim().is_empty()).unwrap_or(button);
    let who = match data["contact_id"].as_str() {
        Some(id) => Some(name_of(shared, id).await),
        None => None,
    };
    json!({"who": who, "label": label, "kind": kind, "answer": data["answer"]})
}

/// `GET /demo/api/console`
pub async fn state(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let lang = Lang::of(&headers);
    let events: Vec<Value> = EVENTS
        .iter()
        .filter_map(|(file, text)| {
            let e: Value = serde_json::from_str(text).ok()?;
            Some(json!({"file": file, "type": e["type"], "key": e["key"], "data": e["data"], "recipients": recipients(&e)}))
        })
        .collect();
    let posted: Vec<Posted> = shared.latest_posted(SHOWN);
    let mut shown = Vec::new();
    for p in posted {
        let mut v = json!({"what": p.what, "file": p.file, "at": p.at, "status": p.status, "answer": p.answer});
        if let Some(id) = &p.event_id {
            v["event"] = event_view(&shared, id).await?;
        }
        if let Some(id) = &p.task_id {
            v["task"] = shared.api.get(&format!("/tasks/{id}")).await?.ok("the posted task")?;
        }
        shown.push(v);
    }
    let received: Vec<Value> = shared
        .onec
        .latest_requests(RECEIVED_SHOWN, "/okno")
        .iter()
        .map(|r| json!({"seq": r.seq, "at": r.at, "method": r.method, "path": r.path, "query": r.query, "body": r.body, "status": r.status}))
        .collect();
    let mut webhooks = Vec::new();
    for w in shared.onec.latest_webhooks(RECEIVED_SHOWN) {
        let mut v = json!({"at": w.at, "event": w.event, "data": w.body["data"]});
        if w.event == "button.pressed" {
            v["press"] = press_view(&shared, &w.body["data"]).await;
        }
        webhooks.push(v);
    }
    let world = shared.world.get().cloned().unwrap_or_default();
    let surveys: Vec<Value> = world.surveys.iter().map(|(name, id)| json!({"id": id, "name": name})).collect();
    let people: Vec<Value> = PEOPLE
        .iter()
        .filter(|p| p.external_id.is_some())
        .map(|p| json!({"key": p.key, "name": p.name, "role": t(lang, &format!("demo_role_{}", p.role))}))
        .collect();
    let groups: BTreeSet<&str> = PEOPLE.iter().flat_map(|p| p.groups.iter().copied()).collect();
    let task: Value = serde_json::from_str(TASK).unwrap_or(Value::Null);
    Ok(Json(json!({
        "events": events, "posted": shown, "received": received, "webhooks": webhooks,
        "surveys": surveys, "people": people, "groups": groups,
        "task": {"title": task["title"], "text": task["text"], "group": GROUP.title},
    })))
}

/// A body of the console's actions (their `X-Okno-Demo` header is checked before, for every
/// action of the demo).
fn demo_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Error> {
    parse_json(body).map_err(|e| e.0)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostEvent {
    file: String,
    #[serde(default)]
    new_key: bool,
}

/// How soon after a sample visit is posted its reminder (sent a day before the visit) arrives.
const VISIT_REMINDER_IN_MS: i64 = 5_000;

/// `POST /demo/api/console/event`: posts a sample event as 1C would. The first post of a sample
/// uses its own key, so posting it again shows okno refusing a duplicate; `new_key` makes a
/// new event of it. Dates the demo can fill are set to tomorrow (a visit to a day and a few seconds from
/// now, so its reminder arrives at once), and `order.stage_changed`
/// goes to whoever asked the shop bot about the order (1C remembers them).
pub async fn post_event(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let lang = Lang::of(&headers);
    let req: PostEvent = demo_body(&body)?;
    let mut event = sample(&req.file)?;
    if event["data"].get("subscriber").is_some() {
        let order = event["data"]["order"].as_str().unwrap_or_default().to_string();
        let Some(subscriber) = shared.onec.subscriber(&order) else {
            return Err(Error::new(ErrorKind::Conflict, "demo_no_subscriber", t(lang, "demo_no_subscriber")).into());
        };
        event["data"]["subscriber"] = json!(subscriber);
    }
    let tomorrow = shared.onec.today().checked_add(jiff::Span::new().days(1)).unwrap_or_else(|_| shared.onec.today());
    if event["data"].get("eta").is_some() {
        // 10:00 in Moscow.
        event["data"]["eta"] = json!(format!("{tomorrow}T07:00:00Z"));
    }
    if event["data"].get("ready_at").is_some() {
        event["data"]["ready_at"] = json!(tomorrow.to_string());
    }
    if event["data"].get("visit_at").is_some() {
        // The reminder goes a day before the visit: a visit a day and a few seconds from now
        // shows it arriving while one watches.
        let visit = okno_domain::time::now_ms() + 24 * 3_600_000 + VISIT_REMINDER_IN_MS;
        event["data"]["visit_at"] = json!(okno_domain::time::to_rfc3339(visit));
    }
    if req.new_key {
        let key = event["key"].as_str().unwrap_or("demo").to_string();
        event["key"] = json!(format!("{key}-{}", okno_domain::ids::random_hex(3)));
    }
    let what = event["type"].as_str().unwrap_or("?").to_string();
    let reply = shared.api.post("/events", &event).await?;
    let event_id = reply.body["id"].as_str().map(str::to_string);
    shared.record(Posted {
        what,
        file: Some(req.file),
        at: okno_domain::time::now_ms(),
        status: reply.status,
        answer: reply.body.clone(),
        event_id,
        task_id: None,
    });
    Ok(Json(json!({"status": reply.status, "answer": reply.body, "sent": event})))
}

/// `POST /demo/api/console/task`: posts the sample task to the couriers' group.
pub async fn post_task(State(shared): State<Arc<Shared>>) -> ApiResult<Json<Value>> {
    let world = shared.world.get().ok_or_else(not_ready)?;
    let mut task: Value = serde_json::from_str(TASK)
        .map_err(|e| Error::internal(format!("examples/tasks/task.json is not JSON: {e}")))?;
    task["channel_id"] = json!(world.channels.get(GROUP.bot).cloned().unwrap_or_default());
    task["chat_id"] = json!(GROUP.chat_id);
    let reply = shared.api.post("/tasks", &task).await?;
    let task_id = reply.body["id"].as_str().map(str::to_string);
    shared.record(Posted {
        what: "task".into(),
        file: None,
        at: okno_domain::time::now_ms(),
        status: reply.status,
        answer: reply.body.clone(),
        event_id: None,
        task_id,
    });
    Ok(Json(json!({"status": reply.status, "answer": reply.body})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartSurvey {
    survey_id: String,
    person: String,
}

/// `POST /demo/api/console/survey`: asks one person a survey now (a new run each time).
pub async fn start_survey(State(shared): State<Arc<Shared>>, RawBody(body): RawBody) -> ApiResult<Json<Value>> {
    let req: StartSurvey = demo_body(&body)?;
    let world = shared.world.get().ok_or_else(not_ready)?;
    let contact =
        world.contacts.get(req.person.as_str()).ok_or_else(|| Error::not_found("demo_person", &req.person))?;
    if !world.surveys.iter().any(|(_, id)| *id == req.survey_id) {
        return Err(Error::not_found("demo_survey", &req.survey_id).into());
    }
    let start = json!({"contact_ids": [contact], "key": format!("demo-{}", okno_domain::ids::random_hex(4))});
    let reply = shared.api.post(&format!("/surveys/{}/start", req.survey_id), &start).await?;
    shared.record(Posted {
        what: "survey".into(),
        file: None,
        at: okno_domain::time::now_ms(),
        status: reply.status,
        answer: reply.body.clone(),
        event_id: None,
        task_id: None,
    });
    Ok(Json(json!({"status": reply.status, "answer": reply.body})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broadcast {
    group: String,
    text: String,
}

/// `POST /demo/api/console/broadcast`: one message to a contact group, now.
pub async fn broadcast(State(shared): State<Arc<Shared>>, RawBody(body): RawBody) -> ApiResult<Json<Value>> {
    let req: Broadcast = demo_body(&body)?;
    if !PEOPLE.iter().any(|p| p.groups.contains(&req.group.as_str())) {
        return Err(Error::not_found("demo_group", &req.group).into());
    }
    let body = json!({"name": format!("{} · {}", req.group, okno_domain::time::to_rfc3339(okno_domain::time::now_ms())),
                      "audience": {"groups": [req.group]}, "text": req.text});
    let reply = shared.api.post("/broadcasts", &body).await?;
    shared.record(Posted {
        what: "broadcast".into(),
        file: None,
        at: okno_domain::time::now_ms(),
        status: reply.status,
        answer: reply.body.clone(),
        event_id: None,
        task_id: None,
    });
    Ok(Json(json!({"status": reply.status, "answer": reply.body})))
}

fn not_ready() -> Error {
    Error::unavailable("demo_starting", "the demo is still being set up; try again in a moment")
}
