//! The phone: a small Telegram client over the simulated Telegram, in the browser. The visitor
//! picks who they are, sees that person's chats (each bot of the company, the couriers' group),
//! writes, presses buttons, replies to a message, sends a file, and sees what the bots answer —
//! live. Everything goes through the simulator's client-side checks, so nothing a visitor types
//! can break it.
//!
//! ```text
//!  GET  /demo/phone                          the page
//!  GET  /demo/api/people                     who can be played
//!  GET  /demo/api/phone/{person}             their chats, newest message first
//!  GET  /demo/api/phone/{person}/{chat}      one chat: Telegram Message objects, presses, reply keyboard
//!  POST /demo/api/phone/{person}/{chat}/send|press|start|file
//!  GET  /demo/api/files/{bot}/{file_id}      a photo or document of a chat
//!  GET  /demo/api/live                       Server-Sent Events: "something changed"
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::Stream;
use okno_domain::{Error, ErrorKind};
use okno_server::error::{parse_json, ApiQuery, ApiResult, RawBody};
use okno_server::ui::i18n::Lang;
use okno_telegram_sim::{SimError, SimUser};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::cast::{self, BotSpec, PersonSpec, BOTS, GROUP, PEOPLE};
use crate::texts::t;
use crate::Shared;

/// One chat on a person's phone: a bot's private chat or the couriers' group.
enum Chat {
    Bot(&'static BotSpec),
    Group,
}

impl Chat {
    fn parse(key: &str, p: &PersonSpec) -> Result<Chat, Error> {
        if key == GROUP.key {
            if !GROUP.members.contains(&p.key) {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    "demo_not_a_member",
                    format!("{} is not in the group «{}»", p.name, GROUP.title),
                ));
            }
            return Ok(Chat::Group);
        }
        cast::bot(key).map(Chat::Bot).ok_or_else(|| Error::not_found("demo_chat", key))
    }

    /// The bot whose chat it is (the group's bot for the group).
    fn bot(&self) -> Result<&'static BotSpec, Error> {
        match self {
            Chat::Bot(b) => Ok(b),
            Chat::Group => cast::bot(GROUP.bot).ok_or_else(|| Error::internal("the cast's group has no bot")),
        }
    }

    /// The Telegram chat id on the person's phone.
    fn chat_id(&self, p: &PersonSpec) -> i64 {
        match self {
            Chat::Bot(_) => p.tg_id,
            Chat::Group => GROUP.chat_id,
        }
    }
}

/// The simulator's refusals as the demo's errors.
fn sim_error(e: SimError) -> Error {
    match e {
        SimError::Invalid(reason) => Error::invalid("demo_refused", reason),
        SimError::UnknownMessage { message_id, .. } => Error::not_found("demo_message", &message_id.to_string()),
        SimError::UnknownChat(id) => Error::not_found("demo_chat", &id.to_string()),
        SimError::UnknownBot(_) => Error::internal("the simulated Telegram lost a bot"),
    }
}

fn person(key: &str) -> Result<&'static PersonSpec, Error> {
    cast::person(key).ok_or_else(|| Error::not_found("demo_person", key))
}

/// A person's view of who they are.
fn person_view(p: &PersonSpec, lang: Lang) -> Value {
    let initials: String = p.name.split_whitespace().filter_map(|w| w.chars().next()).take(2).collect();
    json!({
        "key": p.key, "name": p.name, "username": p.username, "initials": initials,
        "role": t(lang, &format!("demo_role_{}", p.role)), "hint": t(lang, &format!("demo_hint_{}", p.role)),
        "external_id": p.external_id,
    })
}

/// `GET /demo/phone`
pub async fn page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.pages.render("phone.html", &headers, json!({"nav": "phone", "admin_login": shared.admin_login}))
}

/// `GET /demo/api/people`
pub async fn people(headers: HeaderMap) -> Json<Value> {
    let lang = Lang::of(&headers);
    Json(json!({"people": PEOPLE.iter().map(|p| person_view(p, lang)).collect::<Vec<_>>()}))
}

/// A chat's summary for the chat list.
fn summary(shared: &Shared, p: &PersonSpec, chat: &Chat, lang: Lang) -> Result<Value, Error> {
    let bot = chat.bot()?;
    let chat_id = chat.chat_id(p);
    let (key, title, kind, started) = match chat {
        Chat::Bot(b) => (b.key, b.title, "bot", shared.sim.started(b.token, p.tg_id).map_err(sim_error)?),
        Chat::Group => (GROUP.key, GROUP.title, "group", true),
    };
    let messages = match shared.sim.timeline(bot.token, chat_id) {
        Ok(m) => m,
        Err(SimError::UnknownChat(_)) => Vec::new(),
        Err(e) => return Err(sim_error(e)),
    };
    let last = messages.last().map(|m| {
        let text = m["text"].as_str().or_else(|| m["caption"].as_str()).map(str::to_string).unwrap_or_else(|| {
            if m.get("photo").is_some() {
                t(lang, "demo_photo")
            } else if m.get("document").is_some() {
                format!("📄 {}", m["document"]["file_name"].as_str().unwrap_or(""))
            } else {
                String::new()
            }
        });
        json!({"text": text, "date": m["date"], "mine": m["from"]["id"] == p.tg_id, "id": m["message_id"]})
    });
    Ok(json!({
        "key": key, "title": title, "kind": kind, "username": bot.username, "started": started,
        "last": last, "count": messages.len(),
    }))
}

/// `GET /demo/api/phone/{person}`: the person's chats, the one with the newest message first.
pub async fn chats(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let lang = Lang::of(&headers);
    let p = person(&key)?;
    let mut list = Vec::new();
    if GROUP.members.contains(&p.key) {
        list.push(summary(&shared, p, &Chat::Group, lang)?);
    }
    for b in BOTS {
        list.push(summary(&shared, p, &Chat::Bot(b), lang)?);
    }
    // Newest first, as a messenger lists chats; chats never opened keep the cast's order.
    list.sort_by_key(|c| std::cmp::Reverse(c["last"]["date"].as_i64().unwrap_or(0)));
    Ok(Json(json!({"person": person_view(p, lang), "chats": list})))
}

/// `GET /demo/api/phone/{person}/{chat}`: the chat as the person sees it.
pub async fn chat(
    State(shared): State<Arc<Shared>>,
    Path((key, chat_key)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let lang = Lang::of(&headers);
    let p = person(&key)?;
    let chat = Chat::parse(&chat_key, p)?;
    let bot = chat.bot()?;
    let chat_id = chat.chat_id(p);
    let (messages, keyboard, presses) = match shared.sim.timeline(bot.token, chat_id) {
        Ok(m) => {
            let keyboard = shared.sim.reply_keyboard(bot.token, chat_id).map_err(sim_error)?;
            let presses = shared.sim.presses(bot.token, chat_id).map_err(sim_error)?;
            (m, keyboard, presses)
        }
        Err(SimError::UnknownChat(_)) => (Vec::new(), None, Vec::new()),
        Err(e) => return Err(sim_error(e).into()),
    };
    // A person sees only their own presses and the answers to them, as on Telegram.
    let presses: Vec<Value> = presses
        .into_iter()
        .filter(|x| x.user_id == p.tg_id)
        .map(|x| {
            json!({
                "id": x.id, "message_id": x.message_id, "after_message_id": x.after_message_id,
                "label": x.label, "date": x.date,
                "answer": x.answer.map(|a| json!({"text": a.text, "alert": a.show_alert, "url": a.url})),
            })
        })
        .collect();
    // Only the button texts: the keyboard's other fields mean nothing to the page.
    let keyboard = keyboard.map(|k| {
        k["keyboard"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                row.as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| b["text"].as_str().or_else(|| b.as_str()).unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    });
    let bots: Vec<Value> = BOTS.iter().map(|b| json!({"key": b.key, "username": b.username})).collect();
    Ok(Json(json!({
        "chat": summary(&shared, p, &chat, lang)?,
        "me": p.tg_id,
        "files": format!("/demo/api/files/{}/", bot.key),
        "members": if matches!(chat, Chat::Group) { GROUP.members.iter().filter_map(|m| cast::person(m)).map(|m| m.name).collect::<Vec<_>>() } else { Vec::new() },
        "messages": messages,
        "presses": presses,
        "keyboard": keyboard,
        "bots": bots,
    })))
}

/// The person as a Telegram user of the chat's bot, checking they may write there.
fn user_in(shared: &Shared, p: &PersonSpec, chat: &Chat) -> Result<SimUser, Error> {
    let bot = chat.bot()?;
    match chat {
        Chat::Bot(b) => {
            if !shared.sim.started(b.token, p.tg_id).map_err(sim_error)? {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "demo_not_started",
                    format!("{} has not started @{} yet: press Start first", p.name, b.username),
                ));
            }
            shared.sim.try_user(b.token, p.tg_id, p.name).map_err(sim_error)
        }
        Chat::Group => {
            shared.sim.try_member(bot.token, p.tg_id, p.name).map(|u| u.with_username(p.username)).map_err(sim_error)
        }
    }
}

/// A body of the phone's actions (their `X-Okno-Demo` header is checked before, for every
/// action of the demo).
fn checked_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Error> {
    parse_json(body).map_err(|e| e.0)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    text: String,
    #[serde(default)]
    reply_to: Option<i64>,
}

/// `POST /demo/api/phone/{person}/{chat}/send` `{"text", "reply_to"?}`
pub async fn send(
    State(shared): State<Arc<Shared>>,
    Path((key, chat_key)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let req: Send = checked_body(&body)?;
    let p = person(&key)?;
    let chat = Chat::parse(&chat_key, p)?;
    let user = user_in(&shared, p, &chat)?;
    let id = match (&chat, req.reply_to) {
        (Chat::Bot(_), Some(to)) => user.try_reply(to, &req.text),
        (Chat::Bot(_), None) => user.try_send_text(&req.text),
        (Chat::Group, _) => {
            let bot = chat.bot()?;
            let group = shared.sim.try_group(bot.token, GROUP.chat_id, GROUP.title).map_err(sim_error)?;
            group.try_send_text(&user, &req.text)
        }
    }
    .map_err(sim_error)?;
    Ok(Json(json!({"message_id": id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Press {
    message_id: i64,
    data: String,
}

/// `POST /demo/api/phone/{person}/{chat}/press` `{"message_id", "data"}`
pub async fn press(
    State(shared): State<Arc<Shared>>,
    Path((key, chat_key)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let req: Press = checked_body(&body)?;
    let p = person(&key)?;
    let chat = Chat::parse(&chat_key, p)?;
    let user = user_in(&shared, p, &chat)?;
    let id = match &chat {
        Chat::Bot(_) => user.try_press(req.message_id, &req.data),
        Chat::Group => {
            let bot = chat.bot()?;
            let group = shared.sim.try_group(bot.token, GROUP.chat_id, GROUP.title).map_err(sim_error)?;
            group.try_press(&user, req.message_id, &req.data)
        }
    }
    .map_err(sim_error)?;
    Ok(Json(json!({"id": id})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Start {
    #[serde(default)]
    payload: Option<String>,
}

/// `POST /demo/api/phone/{person}/{chat}/start` `{"payload"?}`: the person presses Start in a
/// bot (opened from a `t.me/<bot>?start=<payload>` link when there is a payload).
pub async fn start(
    State(shared): State<Arc<Shared>>,
    Path((key, chat_key)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let req: Start = if body.iter().all(u8::is_ascii_whitespace) { Start::default() } else { checked_body(&body)? };
    let p = person(&key)?;
    let Chat::Bot(bot) = Chat::parse(&chat_key, p)? else {
        return Err(Error::invalid("demo_not_a_bot", "Start is pressed in a bot's chat, not in a group").into());
    };
    let text = match req.payload.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        // Telegram takes 1-64 characters of A-Z, a-z, 0-9, _ and - after ?start=.
        Some(payload)
            if payload.len() <= 64 && payload.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            format!("/start {payload}")
        }
        Some(_) => {
            return Err(Error::invalid("demo_bad_payload", "a start parameter is 1-64 letters, digits, _ or -").into())
        }
        None => "/start".to_string(),
    };
    let user = shared.sim.try_user(bot.token, p.tg_id, p.name).map_err(sim_error)?.with_username(p.username);
    let id = user.try_send_text(&text).map_err(sim_error)?;
    Ok(Json(json!({"message_id": id})))
}

#[derive(Deserialize)]
pub struct FileQuery {
    name: String,
    #[serde(default)]
    caption: Option<String>,
}

/// `POST /demo/api/phone/{person}/{chat}/file?name=…&caption=…` with the file as the body:
/// a JPEG, PNG or WebP goes as a photo, anything else as a document.
pub async fn file(
    State(shared): State<Arc<Shared>>,
    Path((key, chat_key)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<FileQuery>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let p = person(&key)?;
    let chat = Chat::parse(&chat_key, p)?;
    if matches!(chat, Chat::Group) {
        return Err(Error::invalid("demo_not_a_bot", "files are sent to bots on the demo's phone").into());
    }
    let user = user_in(&shared, p, &chat)?;
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "application/octet-stream".into());
    let id = if matches!(mime.as_str(), "image/jpeg" | "image/png" | "image/webp") {
        user.try_send_photo(&body, q.caption.as_deref())
    } else {
        user.try_send_document(&body, &q.name, &mime)
    }
    .map_err(sim_error)?;
    Ok(Json(json!({"message_id": id})))
}

/// Types a browser may show inline; anything else is offered as a download, so a document
/// someone sent (an HTML file…) never runs as a page of okno.
const INLINE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/webp", "image/gif"];

/// `GET /demo/api/files/{bot}/{file_id}`
pub async fn download(
    State(shared): State<Arc<Shared>>,
    Path((bot_key, file_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let bot = cast::bot(&bot_key).ok_or_else(|| Error::not_found("demo_chat", &bot_key))?;
    let f = shared
        .sim
        .file(bot.token, &file_id)
        .map_err(sim_error)?
        .ok_or_else(|| Error::not_found("demo_file", &file_id))?;
    // Photos carry no name or type; their bytes say what they are.
    let mime = f.mime.clone().unwrap_or_else(|| {
        if f.bytes.starts_with(b"\x89PNG") {
            "image/png".into()
        } else {
            "image/jpeg".into()
        }
    });
    let inline = INLINE_TYPES.contains(&mime.as_str());
    let name: String =
        f.name.clone().unwrap_or_else(|| "file".into()).chars().filter(|c| *c != '"' && !c.is_control()).collect();
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline { "inline" } else { "attachment" },
        name.replace(|c: char| !c.is_ascii(), "_")
    );
    let mut resp = f.bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(if inline { &mime } else { "application/octet-stream" })
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    Ok(resp)
}

/// `GET /demo/api/live`: an event `change` whenever anything in any chat or at the simulated
/// 1C changes (a burst becomes one event), `ready` first; ends when okno stops.
pub async fn live(State(shared): State<Arc<Shared>>) -> Response {
    let watch = Watch { chats: shared.sim.activity(), onec: shared.onec.changes(), stop: shared.stop.clone() };
    let mut resp =
        Sse::new(changes(watch)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// What one live stream waits on.
struct Watch {
    chats: tokio::sync::watch::Receiver<u64>,
    onec: tokio::sync::watch::Receiver<u64>,
    stop: tokio_util::sync::CancellationToken,
}

fn changes(watch: Watch) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((watch, false), |(mut w, started)| async move {
        if !started {
            w.chats.borrow_and_update();
            w.onec.borrow_and_update();
            return Some((Ok(Event::default().event("ready").data("1")), (w, true)));
        }
        tokio::select! {
            _ = w.stop.cancelled() => return None,
            r = w.chats.changed() => r.ok()?,
            r = w.onec.changed() => r.ok()?,
        }
        // A burst (a bot's three messages, a task's edits) becomes one event.
        tokio::time::sleep(Duration::from_millis(100)).await;
        w.chats.borrow_and_update();
        w.onec.borrow_and_update();
        Some((Ok(Event::default().event("change").data("1")), (w, true)))
    })
}
