//! The HTTP side: `/method/<name>` with VK's envelope and errors, the Bots Long Poll server,
//! the upload servers and file downloads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};

use crate::state::{unix_now, CallbackServer, Doc, Group, Inner, CHAT_PEER_BASE};
use crate::{callback, keyboard, EventAnswer, Fault, Sent};

/// The simulator's routes.
pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/method/{name}", any(method))
        .route("/lp/{group_id}", get(long_poll))
        .route("/upload/photo/{group_id}", post(upload_photo))
        .route("/upload/doc/{group_id}", post(upload_doc))
        .route("/files/{key}", get(download))
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(inner)
}

/// A VK API error: `error_code` and `error_msg` (codes and texts from `VKCOM/vk-api-schema`
/// `errors.json`).
#[derive(Debug)]
pub(crate) struct VkError {
    code: i64,
    msg: String,
}

impl VkError {
    pub(crate) fn new(code: i64, msg: &str) -> VkError {
        VkError { code, msg: msg.into() }
    }

    /// The standard text of a code, as `errors.json` gives it.
    pub(crate) fn standard(code: i64) -> VkError {
        let msg = match code {
            1 => "Unknown error occurred",
            5 => "User authorization failed: invalid access_token (4).",
            6 => "Too many requests per second",
            7 => "Permission to perform this action is denied",
            9 => "Flood control",
            10 => "Internal server error",
            15 => "Access denied",
            29 => "Rate limit reached",
            100 => "One of the parameters specified was missing or invalid",
            104 => "Not found",
            900 => "Can't send messages for users from blacklist",
            901 => "Can't send messages for users without permission",
            902 => "Can't send messages to this user due to their privacy settings",
            911 => "Keyboard format is invalid",
            914 => "Message is too long",
            917 => "You don't have access to this chat",
            _ => "Unknown error occurred",
        };
        VkError::new(code, msg)
    }

    /// Error 100 naming the parameter.
    pub(crate) fn param(what: &str) -> VkError {
        VkError::new(100, &format!("One of the parameters specified was missing or invalid: {what}"))
    }
}

/// The request's parameters: the query string and a form or multipart body (VK takes no JSON
/// bodies, dev.vk.com api-requests).
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn str(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }

    pub(crate) fn int(&self, k: &str) -> Result<Option<i64>, VkError> {
        self.str(k).map(|v| v.parse::<i64>().map_err(|_| VkError::param(&format!("{k} not integer")))).transpose()
    }

    fn echo(&self, method: &str) -> Value {
        let mut list = vec![json!({"key": "method", "value": method})];
        let mut keys: Vec<_> = self.0.keys().filter(|k| *k != "access_token").collect();
        keys.sort();
        for k in keys {
            list.push(json!({"key": k, "value": self.0[k]}));
        }
        Value::Array(list)
    }
}

async fn read_params(req: Request) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    if let Ok(Query(q)) = Query::<Vec<(String, String)>>::try_from_uri(req.uri()) {
        out.extend(q);
    }
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        if let Ok(Form(f)) = Form::<Vec<(String, String)>>::from_request(req, &()).await {
            out.extend(f);
        }
    } else if content_type.starts_with("multipart/form-data") {
        if let Ok(mut m) = Multipart::from_request(req, &()).await {
            while let Ok(Some(field)) = m.next_field().await {
                let name = field.name().unwrap_or_default().to_string();
                if let Ok(text) = field.text().await {
                    out.insert(name, text);
                }
            }
        }
    }
    out
}

/// `/method/<name>`: the envelope `{"response": …}` or, with HTTP 200 all the same,
/// `{"error": {"error_code", "error_msg", "request_params"}}` (dev.vk.com; [3P] SDK structs).
async fn method(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !host.eq_ignore_ascii_case(&inner.addr.to_string()) {
        return (StatusCode::FORBIDDEN, "the simulator answers only at its own address").into_response();
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let params = Params(read_params(req).await);
    let token = params.str("access_token").map(str::to_string).or(bearer).unwrap_or_default();
    let outcome = dispatch(&inner, &name, &token, &params);
    match outcome {
        Ok(Reply::Json(v)) => Json(json!({"response": v})).into_response(),
        Ok(Reply::Status(s)) => {
            (StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_GATEWAY), "Bad Gateway").into_response()
        }
        Err(e) => {
            Json(json!({"error": {"error_code": e.code, "error_msg": e.msg, "request_params": params.echo(&name)}}))
                .into_response()
        }
    }
}

enum Reply {
    Json(Value),
    /// An injected HTTP failure (a gateway error in front of the API).
    Status(u16),
}

fn dispatch(inner: &Arc<Inner>, name: &str, token: &str, p: &Params) -> Result<Reply, VkError> {
    let base = inner.base.clone();
    let mut world = inner.world();
    let limits_on = world.limits_on;
    let Some(g) = world.group(token) else {
        return Err(VkError::standard(5));
    };
    *g.calls.entry(name.to_string()).or_default() += 1;
    if p.str("v").is_none() {
        return Err(VkError::new(8, "Invalid request: v is required"));
    }
    if let Some(f) = g.faults.pop_front() {
        return match f {
            Fault::Error(code) => {
                if code == 6 || code == 9 {
                    g.rate_limited += 1;
                }
                Err(VkError::standard(code))
            }
            Fault::Status(s) => Ok(Reply::Status(s)),
        };
    }
    if limits_on && !g.bucket.try_take() {
        g.rate_limited += 1;
        return Err(VkError::standard(6));
    }
    let group_id = g.id;
    let v = match name {
        "groups.getById" => json!({"groups": [{
            "id": g.id, "name": g.name, "screen_name": format!("club{}", g.id), "is_closed": 0, "type": "group",
        }], "profiles": []}),
        "groups.getLongPollServer" => {
            own_group(g, p)?;
            g.lp_lost = false;
            json!({"key": g.lp_key, "server": format!("{base}/lp/{}", g.id), "ts": g.lp_ts.to_string()})
        }
        "groups.setLongPollSettings" | "groups.setCallbackSettings" => {
            own_group(g, p)?;
            json!(1)
        }
        "groups.getCallbackConfirmationCode" => {
            own_group(g, p)?;
            json!({"code": g.confirmation})
        }
        "groups.addCallbackServer" => {
            own_group(g, p)?;
            let url = p.str("url").ok_or_else(|| VkError::param("url is undefined"))?.to_string();
            let title = p.str("title").ok_or_else(|| VkError::param("title is undefined"))?.to_string();
            if g.servers.len() >= 10 {
                return Err(VkError::new(2000, "Servers number limit is reached"));
            }
            let id = g.servers.iter().map(|s| s.id).max().unwrap_or(0) + 1;
            let secret_key = p.str("secret_key").map(str::to_string);
            g.servers.push(CallbackServer { id, url, title, secret_key, status: "unconfigured".into() });
            tokio::spawn(callback::confirm(inner.clone(), group_id, id));
            json!({"server_id": id})
        }
        "groups.editCallbackServer" => {
            own_group(g, p)?;
            let id = p.int("server_id")?.ok_or_else(|| VkError::param("server_id is undefined"))?;
            let s = g.servers.iter_mut().find(|s| s.id == id).ok_or_else(|| VkError::param("server_id is invalid"))?;
            if let Some(u) = p.str("url") {
                s.url = u.to_string();
            }
            if let Some(t) = p.str("title") {
                s.title = t.to_string();
            }
            if let Some(k) = p.str("secret_key") {
                s.secret_key = Some(k.to_string());
            }
            s.status = "unconfigured".into();
            tokio::spawn(callback::confirm(inner.clone(), group_id, id));
            json!(1)
        }
        "groups.getCallbackServers" => {
            own_group(g, p)?;
            let items: Vec<Value> = g
                .servers
                .iter()
                .map(|s| json!({"id": s.id, "title": s.title, "creator_id": 0, "url": s.url, "secret_key": s.secret_key.clone().unwrap_or_default(), "status": s.status}))
                .collect();
            json!({"count": items.len(), "items": items})
        }
        "groups.deleteCallbackServer" => {
            own_group(g, p)?;
            let id = p.int("server_id")?.ok_or_else(|| VkError::param("server_id is undefined"))?;
            g.servers.retain(|s| s.id != id);
            json!(1)
        }
        "users.get" => {
            let ids = p.str("user_ids").unwrap_or_default();
            let mut out = Vec::new();
            for id in ids.split(',').filter_map(|x| x.trim().parse::<i64>().ok()) {
                if let Some(person) = g.people.get(&id) {
                    let (first, last) = person.name.split_once(' ').unwrap_or((person.name.as_str(), ""));
                    out.push(json!({"id": id, "first_name": first, "last_name": last, "can_access_closed": true, "is_closed": false}));
                }
            }
            Value::Array(out)
        }
        "messages.send" => send(g, p)?,
        "messages.edit" => edit(g, p)?,
        "messages.delete" => delete(g, p)?,
        "messages.sendMessageEventAnswer" => event_answer(g, p)?,
        "photos.getMessagesUploadServer" => {
            json!({"album_id": -64, "upload_url": format!("{base}/upload/photo/{group_id}"), "group_id": 0})
        }
        "photos.saveMessagesPhoto" => save_photo(g, p)?,
        "docs.getMessagesUploadServer" => {
            let kind = p.str("type").unwrap_or("doc");
            if !matches!(kind, "doc" | "audio_message" | "graffiti") {
                return Err(VkError::param("type is invalid"));
            }
            json!({"upload_url": format!("{base}/upload/doc/{group_id}")})
        }
        "docs.save" => save_doc(g, p, &base)?,
        _ => return Err(VkError::new(3, "Unknown method passed")),
    };
    Ok(Reply::Json(v))
}

/// `group_id` must be the token's own community when given.
fn own_group(g: &Group, p: &Params) -> Result<(), VkError> {
    match p.int("group_id")? {
        Some(id) if id != g.id => Err(VkError::standard(15)),
        _ => Ok(()),
    }
}

/// Longest `message` accepted; longer is error 914. The schema's `messages.send.message`
/// says `maxLength: 9000`, but VK refuses more than 4,096 characters in one message, which
/// is where client libraries split (vkbottle `_send_chunked`, `stream.read(4096)`).
pub(crate) const MAX_TEXT: usize = 4096;

/// Whether the community may write to a peer: a person must have allowed messages (error
/// 901) and not be blacklisted (900); a group conversation must have the community in it
/// (917).
fn may_write(g: &Group, peer_id: i64) -> Result<(), VkError> {
    if peer_id >= CHAT_PEER_BASE {
        return if g.chats.contains_key(&peer_id) { Ok(()) } else { Err(VkError::standard(917)) };
    }
    match g.people.get(&peer_id) {
        Some(p) if p.blacklisted => Err(VkError::standard(900)),
        Some(p) if p.allowed => Ok(()),
        _ => Err(VkError::standard(901)),
    }
}

/// Parses `attachment` (`photo-1_2,doc-1_3`): each must be a saved photo or document of the
/// community.
fn attachments(g: &Group, raw: Option<&str>) -> Result<Vec<String>, VkError> {
    let mut out = Vec::new();
    for a in raw.unwrap_or_default().split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let owner = format!("-{}_", g.id);
        let known = if let Some(id) = a.strip_prefix("photo").and_then(|r| r.strip_prefix(&owner)) {
            id.split('_').next().and_then(|i| i.parse::<i64>().ok()).is_some_and(|i| g.photos.contains_key(&i))
        } else if let Some(id) = a.strip_prefix("doc").and_then(|r| r.strip_prefix(&owner)) {
            id.split('_').next().and_then(|i| i.parse::<i64>().ok()).is_some_and(|i| g.docs.contains_key(&i))
        } else {
            false
        };
        if !known {
            return Err(VkError::param(&format!("attachment {a} is invalid")));
        }
        out.push(a.to_string());
    }
    Ok(out)
}

/// `messages.send` (schema `messages.send`): to `peer_id` (or `user_id`, or up to 100
/// `peer_ids`); `random_id` makes it idempotent — the same `random_id` again returns the
/// first message's id and sends nothing (dev.vk.com: "checked for uniqueness over the whole
/// message history"; vkbottle: "otherwise VK deduplicates and silently drops"); 0 opts out.
fn send(g: &mut Group, p: &Params) -> Result<Value, VkError> {
    let peer_ids: Option<Vec<i64>> = p
        .str("peer_ids")
        .map(|s| {
            s.split(',').map(|x| x.trim().parse::<i64>().map_err(|_| VkError::param("peer_ids is invalid"))).collect()
        })
        .transpose()?;
    let single = p.int("peer_id")?.or(p.int("user_id")?);
    let targets = match (&peer_ids, single) {
        (Some(list), _) if list.len() > 100 => return Err(VkError::param("peer_ids: too many")),
        (Some(list), _) => list.clone(),
        (None, Some(peer)) => vec![peer],
        (None, None) => return Err(VkError::param("peer_id is undefined")),
    };
    let random_id = p.int("random_id")?.ok_or_else(|| VkError::param("random_id is a required parameter"))?;
    let text = p.str("message").unwrap_or_default().to_string();
    if text.chars().count() > MAX_TEXT {
        return Err(VkError::standard(914));
    }
    let attachment = attachments(g, p.str("attachment"))?;
    if text.is_empty() && attachment.is_empty() && p.str("sticker_id").is_none() {
        return Err(VkError::param("message is empty or invalid"));
    }
    let keyboard = p
        .str("keyboard")
        .map(keyboard::check)
        .transpose()
        .map_err(|why| VkError::new(911, &format!("Keyboard format is invalid: {why}")))?;
    if let Some(payload) = p.str("payload") {
        if payload.chars().count() > 1000 {
            return Err(VkError::param("payload is too long"));
        }
    }
    let reply_to = match p.int("reply_to")? {
        Some(id) => Some(id),
        None => forward_reply(g, p)?,
    };
    let mut results = Vec::new();
    for (i, peer) in targets.iter().enumerate() {
        // One random_id per request; with peer_ids each peer is a message of its own.
        let key = (random_id != 0).then(|| random_id.wrapping_add(i as i64 * 1_000_000_007));
        if let Some(id) = key.and_then(|k| g.random_ids.get(&k)).copied() {
            let cmid = g.messages.get(&id).map(|m| m.json["conversation_message_id"].clone()).unwrap_or(Value::Null);
            results.push(json!({"peer_id": peer, "message_id": id, "conversation_message_id": cmid}));
            continue;
        }
        if let Err(e) = may_write(g, *peer) {
            if peer_ids.is_none() {
                return Err(e);
            }
            results.push(json!({"peer_id": peer, "error": {"code": e.code, "description": e.msg}}));
            continue;
        }
        let mut fields = json!({"text": text, "random_id": random_id});
        if let Some(k) = &keyboard {
            fields["keyboard"] = k.clone();
        }
        if let Some(r) = reply_to {
            if let Some(m) = g.messages.get(&r) {
                fields["reply_message"] = m.json.clone();
            }
        }
        if !attachment.is_empty() {
            fields["attachments"] = json!(attachment
                .iter()
                .map(|a| json!({"type": a.split('-').next().unwrap_or("doc")}))
                .collect::<Vec<_>>());
        }
        let m = g.store(*peer, -g.id, true, fields);
        let id = m["id"].as_i64().unwrap_or_default();
        if let Some(k) = key {
            g.random_ids.insert(k, id);
        }
        g.sent.push(Sent {
            method: "messages.send".into(),
            peer_id: *peer,
            message_id: id,
            text: text.clone(),
            keyboard: keyboard.clone(),
            attachment: attachment.join(","),
            random_id,
            at: Instant::now(),
        });
        results
            .push(json!({"peer_id": peer, "message_id": id, "conversation_message_id": m["conversation_message_id"]}));
    }
    if peer_ids.is_some() {
        Ok(Value::Array(results))
    } else {
        Ok(results.into_iter().next().map(|r| r["message_id"].clone()).unwrap_or(Value::Null))
    }
}

/// The message a `forward` parameter answers: `{"peer_id", "conversation_message_ids": [n],
/// "is_reply": true}` (schema `messages.send.forward`; the way a community replies in a group
/// conversation, where it knows messages by their number only). A forward that is no reply
/// or names no known message answers nothing.
fn forward_reply(g: &Group, p: &Params) -> Result<Option<i64>, VkError> {
    let Some(raw) = p.str("forward") else { return Ok(None) };
    let f: Value = serde_json::from_str(raw).map_err(|_| VkError::param("forward is not JSON"))?;
    if f["is_reply"] != json!(true) && f["is_reply"] != json!(1) {
        return Ok(None);
    }
    let peer = f["peer_id"].as_i64().ok_or_else(|| VkError::param("forward.peer_id is undefined"))?;
    let Some(cmid) = f["conversation_message_ids"].get(0).and_then(Value::as_i64) else {
        return Err(VkError::param("forward.conversation_message_ids is undefined"));
    };
    Ok(g.messages
        .iter()
        .find(|(_, m)| m.json["peer_id"] == peer && m.json["conversation_message_id"] == cmid)
        .map(|(id, _)| *id))
}

/// Finds a message by `message_id` or `conversation_message_id` (+ `peer_id`).
fn find_message(g: &Group, p: &Params, id_key: &str, cmid_key: &str) -> Result<i64, VkError> {
    if let Some(id) = p.int(id_key)? {
        return if g.messages.contains_key(&id) { Ok(id) } else { Err(VkError::standard(104)) };
    }
    let cmid = p.int(cmid_key)?.ok_or_else(|| VkError::param(&format!("{id_key} is undefined")))?;
    let peer = p.int("peer_id")?.ok_or_else(|| VkError::param("peer_id is undefined"))?;
    g.messages
        .iter()
        .find(|(_, m)| m.json["peer_id"] == peer && m.json["conversation_message_id"] == cmid)
        .map(|(id, _)| *id)
        .ok_or_else(|| VkError::standard(104))
}

/// `messages.edit`: only the community's own messages; text and keyboard replaced.
fn edit(g: &mut Group, p: &Params) -> Result<Value, VkError> {
    let peer = p.int("peer_id")?.ok_or_else(|| VkError::param("peer_id is undefined"))?;
    let id = find_message(g, p, "message_id", "conversation_message_id")?;
    let text = p.str("message").map(str::to_string);
    if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
        return Err(VkError::standard(914));
    }
    let keyboard = p
        .str("keyboard")
        .map(keyboard::check)
        .transpose()
        .map_err(|why| VkError::new(911, &format!("Keyboard format is invalid: {why}")))?;
    let m = g.messages.get_mut(&id).ok_or_else(|| VkError::standard(104))?;
    if !m.out || m.json["peer_id"] != peer {
        return Err(VkError::standard(15));
    }
    if let Some(t) = &text {
        m.json["text"] = t.clone().into();
    }
    match &keyboard {
        Some(k) => m.json["keyboard"] = k.clone(),
        None => {
            if let Some(o) = m.json.as_object_mut() {
                o.remove("keyboard");
            }
        }
    }
    m.json["update_time"] = unix_now().into();
    g.sent.push(Sent {
        method: "messages.edit".into(),
        peer_id: peer,
        message_id: id,
        text: text.unwrap_or_default(),
        keyboard,
        attachment: String::new(),
        random_id: 0,
        at: Instant::now(),
    });
    Ok(json!(1))
}

/// `messages.delete` (response schema `messages_delete_full_response`: one item per message).
fn delete(g: &mut Group, p: &Params) -> Result<Value, VkError> {
    let ids: Vec<i64> = match p.str("message_ids") {
        Some(s) => s
            .split(',')
            .map(|x| x.trim().parse::<i64>().map_err(|_| VkError::param("message_ids is invalid")))
            .collect::<Result<_, _>>()?,
        None => vec![find_message(g, p, "message_id", "cmids")?],
    };
    let mut out = Vec::new();
    for id in ids {
        match g.messages.remove(&id) {
            Some(m) => {
                let peer = m.json["peer_id"].as_i64().unwrap_or_default();
                g.sent.push(Sent {
                    method: "messages.delete".into(),
                    peer_id: peer,
                    message_id: id,
                    text: String::new(),
                    keyboard: None,
                    attachment: String::new(),
                    random_id: 0,
                    at: Instant::now(),
                });
                out.push(json!({"peer_id": peer, "message_id": id, "conversation_message_id": m.json["conversation_message_id"], "response": 1}));
            }
            None => {
                out.push(json!({"message_id": id, "response": 0, "error": {"code": 104, "description": "Not found"}}))
            }
        }
    }
    Ok(Value::Array(out))
}

/// `messages.sendMessageEventAnswer(event_id, user_id, peer_id, event_data?)` (schema:
/// `event_data` `maxLength: 1000`; its `type` is `show_snackbar`, `open_link` or `open_app`).
fn event_answer(g: &mut Group, p: &Params) -> Result<Value, VkError> {
    let event_id = p.str("event_id").ok_or_else(|| VkError::param("event_id is undefined"))?.to_string();
    let user_id = p.int("user_id")?.ok_or_else(|| VkError::param("user_id is undefined"))?;
    let peer_id = p.int("peer_id")?.ok_or_else(|| VkError::param("peer_id is undefined"))?;
    let data = match p.str("event_data") {
        Some(d) if d.chars().count() > 1000 => return Err(VkError::param("event_data is too long")),
        Some(d) => {
            let v: Value = serde_json::from_str(d).map_err(|_| VkError::param("event_data is not JSON"))?;
            if !matches!(v["type"].as_str(), Some("show_snackbar" | "open_link" | "open_app")) {
                return Err(VkError::param("event_data.type is invalid"));
            }
            if v["type"] == "show_snackbar" && v["text"].as_str().is_none_or(|t| t.chars().count() > 90) {
                return Err(VkError::param("event_data.text must have at most 90 characters"));
            }
            Some(v)
        }
        None => None,
    };
    let event = g.events.get(&event_id).cloned().ok_or_else(|| VkError::param("event_id is invalid"))?;
    if event.user_id != user_id || event.peer_id != peer_id {
        return Err(VkError::param("event_id does not belong to this user_id and peer_id"));
    }
    g.events.remove(&event_id);
    g.answers.push(EventAnswer { event_id, user_id, peer_id, event_data: data, after: event.at.elapsed() });
    Ok(json!(1))
}

/// `photos.saveMessagesPhoto(photo, server, hash)`: the upload server's answer turned into a
/// photo (vkbottle `PhotoMessageUploader`).
fn save_photo(g: &mut Group, p: &Params) -> Result<Value, VkError> {
    let photo = p.str("photo").ok_or_else(|| VkError::param("photo is undefined"))?.to_string();
    let hash = p.str("hash").unwrap_or_default();
    let bytes = g.photo_uploads.get(&photo).cloned().ok_or_else(|| VkError::param("photos_list is invalid"))?;
    if hash != upload_hash(&photo) {
        return Err(VkError::param("hash is invalid"));
    }
    g.photo_uploads.remove(&photo);
    let id = 457_239_000 + g.next_seq() as i64;
    g.photos.insert(id, bytes);
    Ok(
        json!([{"id": id, "owner_id": -g.id, "album_id": -64, "access_key": format!("ak{id:x}"), "date": unix_now(), "sizes": [{"type": "x", "width": 604, "height": 453}]}]),
    )
}

/// `docs.save(file, title)` → `{"type":"doc","doc":{…}}`.
fn save_doc(g: &mut Group, p: &Params, base: &str) -> Result<Value, VkError> {
    let file = p.str("file").ok_or_else(|| VkError::param("file is undefined"))?.to_string();
    let (name, bytes) = g.doc_uploads.remove(&file).ok_or_else(|| VkError::param("file is invalid"))?;
    let title = p.str("title").map(str::to_string).unwrap_or(name);
    let id = 600_000_000 + g.next_seq() as i64;
    let ext = title.rsplit_once('.').map(|(_, e)| e.to_string()).unwrap_or_default();
    let size = bytes.len();
    let key = format!("doc{}_{id}", g.id);
    g.files.insert(key.clone(), bytes.clone());
    g.docs.insert(id, Doc { title: title.clone(), bytes });
    Ok(
        json!({"type": "doc", "doc": {"id": id, "owner_id": -g.id, "title": title, "size": size, "ext": ext, "date": unix_now(), "type": 1, "url": format!("{base}/files/{key}")}}),
    )
}

fn upload_hash(photo: &str) -> String {
    format!(
        "{:x}",
        photo.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    )
}

async fn first_file(mut form: Multipart, field_name: &str) -> Option<(String, bytes::Bytes)> {
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some(field_name) {
            let name = field.file_name().unwrap_or("file").to_string();
            return field.bytes().await.ok().map(|b| (name, b));
        }
    }
    None
}

/// The photo upload server: the file in the field `photo`; answers `{server, photo, hash}`
/// for `photos.saveMessagesPhoto` (`photo` is `"[]"` when no file came, as VK answers).
async fn upload_photo(State(inner): State<Arc<Inner>>, Path(group_id): Path<i64>, form: Multipart) -> Response {
    let file = first_file(form, "photo").await;
    let mut world = inner.world();
    let Some(g) = world.group_by_id(group_id) else {
        return (StatusCode::NOT_FOUND, "unknown upload server").into_response();
    };
    let Some((_, bytes)) = file else {
        return Json(json!({"server": 1, "photo": "[]", "hash": upload_hash("[]")})).into_response();
    };
    let n = g.next_seq();
    let photo = format!("[{{\"photo\":\"{:x}{n}\",\"sizes\":[]}}]", g.id);
    g.photo_uploads.insert(photo.clone(), bytes);
    Json(json!({"server": 851_234, "photo": photo, "hash": upload_hash(&photo)})).into_response()
}

/// The document upload server: the file in the field `file`; answers `{file}` for
/// `docs.save`.
async fn upload_doc(State(inner): State<Arc<Inner>>, Path(group_id): Path<i64>, form: Multipart) -> Response {
    let file = first_file(form, "file").await;
    let mut world = inner.world();
    let Some(g) = world.group_by_id(group_id) else {
        return (StatusCode::NOT_FOUND, "unknown upload server").into_response();
    };
    let Some((name, bytes)) = file else {
        return Json(json!({"error": "no file"})).into_response();
    };
    let n = g.next_seq();
    let key = format!("{}|{n}|{name}", g.id);
    g.doc_uploads.insert(key.clone(), (name, bytes));
    Json(json!({"file": key})).into_response()
}

async fn download(State(inner): State<Arc<Inner>>, Path(key): Path<String>) -> Response {
    let world = inner.world();
    for g in world.groups.values() {
        if let Some(b) = g.files.get(&key) {
            return (StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], b.clone()).into_response();
        }
    }
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// The Bots Long Poll server: `?act=a_check&key=&ts=&wait=` (dev.vk.com bots-long-poll).
/// Events numbered from `ts` on come back with the next `ts` (a string); none within `wait`
/// seconds (at most 90) gives an empty list. `{"failed":1,"ts":N}`: the history for that `ts`
/// is gone, go on from N; `{"failed":2}`: the key expired; `{"failed":3}`: the information
/// was lost, get a new key and ts (python273/vk_api `bot_longpoll.py`, vkbottle
/// `polling/base.py`).
async fn long_poll(
    State(inner): State<Arc<Inner>>,
    Path(group_id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if q.get("act").map(String::as_str) != Some("a_check") {
        return Json(json!({"failed": 4, "min_version": 0, "max_version": 0})).into_response();
    }
    let key = q.get("key").cloned().unwrap_or_default();
    let ts = q.get("ts").and_then(|t| t.parse::<i64>().ok());
    let wait = q.get("wait").and_then(|w| w.parse::<u64>().ok()).unwrap_or(0).min(90);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut changes = {
        let mut world = inner.world();
        let Some(g) = world.group_by_id(group_id) else {
            return Json(json!({"failed": 2})).into_response();
        };
        g.changed.subscribe()
    };
    loop {
        {
            let mut world = inner.world();
            let Some(g) = world.group_by_id(group_id) else {
                return Json(json!({"failed": 2})).into_response();
            };
            changes.borrow_and_update();
            if g.lp_lost {
                return Json(json!({"failed": 3})).into_response();
            }
            if key != g.lp_key {
                return Json(json!({"failed": 2})).into_response();
            }
            let Some(ts) = ts else {
                return Json(json!({"failed": 1, "ts": g.lp_ts})).into_response();
            };
            if ts < g.lp_oldest || ts > g.lp_ts {
                return Json(json!({"failed": 1, "ts": g.lp_ts})).into_response();
            }
            let updates: Vec<Value> = g.lp_events.iter().filter(|(n, _)| *n >= ts).map(|(_, e)| e.clone()).collect();
            if !updates.is_empty() || wait == 0 {
                return Json(json!({"ts": g.lp_ts.to_string(), "updates": updates})).into_response();
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(deadline) => break,
            _ = inner.stopping() => break,
        }
    }
    let ts = inner.world().group_by_id(group_id).map(|g| g.lp_ts).unwrap_or_default();
    Json(json!({"ts": ts.to_string(), "updates": []})).into_response()
}
