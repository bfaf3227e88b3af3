//! The Bot API methods that answer at once (everything but the `getUpdates` long poll and the
//! webhook sender), with Telegram's parameter rules, limits and exact error descriptions
//! (research notes B §1.2, §1.6, §1.7, §1.10).

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::html::{self, Parsed};
use crate::markdown;
use crate::params::{Param, Params, Upload};
use crate::state::{Access, Bot, Bucket, Hook, StoredMessage, World};
use crate::state::{CHAT_BURST, CHAT_PER_SEC, GROUP_PER_MINUTE};
use crate::{CallbackAnswer, Sent, SentFile, SimError};

/// Text length limit after entity parsing.
const MAX_TEXT: usize = 4096;
/// Caption length limit after entity parsing.
const MAX_CAPTION: usize = 1024;
/// Raw `text` limit before parsing, in bytes.
const MAX_RAW_TEXT_BYTES: usize = 32768;
/// `answerCallbackQuery` text limit.
const MAX_CALLBACK_TEXT: usize = 200;
/// `callback_data` limit, in bytes.
const MAX_CALLBACK_DATA: usize = 64;
/// Upload limits: photos 10 MB, other files 50 MB; downloads via getFile 20 MB.
const MAX_PHOTO_UPLOAD: u64 = 10 * 1024 * 1024;
const MAX_DOCUMENT_UPLOAD: u64 = 50 * 1024 * 1024;
pub(crate) const MAX_DOWNLOAD: u64 = 20 * 1024 * 1024;
/// More buttons than this is answered with "reply markup is too long" (an assumption: the
/// real limit is on the serialized size of the markup and is not documented).
const MAX_BUTTONS: usize = 100;

/// A failed call: `error_code`, `description`, optional `parameters`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub description: String,
    pub parameters: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(code: u16, description: &str) -> ApiError {
        ApiError { code, description: description.to_string(), parameters: None }
    }

    /// 400 with the "Bad Request: " prefix the server adds.
    pub(crate) fn bad(reason: &str) -> ApiError {
        ApiError::new(400, &format!("Bad Request: {reason}"))
    }

    /// 403 with the "Forbidden: " prefix.
    pub(crate) fn forbidden(reason: &str) -> ApiError {
        ApiError::new(403, &format!("Forbidden: {reason}"))
    }

    /// 409 with the "Conflict: " prefix.
    pub(crate) fn conflict(reason: &str) -> ApiError {
        ApiError::new(409, &format!("Conflict: {reason}"))
    }

    /// 429 with `retry_after` in the text, in `parameters` and (added by the server) in the
    /// `Retry-After` header.
    pub(crate) fn too_many(secs: u64) -> ApiError {
        ApiError {
            code: 429,
            description: format!("Too Many Requests: retry after {secs}"),
            parameters: Some(json!({"retry_after": secs})),
        }
    }

    /// A missing required parameter ("Parameter \"X\" is required" after the prefixer).
    pub(crate) fn required(name: &str) -> ApiError {
        ApiError::bad(&format!("parameter \"{name}\" is required"))
    }
}

/// A successful call: `result` and the optional `description`.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub result: Value,
    pub description: Option<&'static str>,
}

impl Reply {
    pub(crate) fn ok(result: Value) -> Reply {
        Reply { result, description: None }
    }

    fn described(result: Value, description: &'static str) -> Reply {
        Reply { result, description: Some(description) }
    }
}

/// What a method answers.
pub(crate) type Answer = Result<Reply, ApiError>;

impl From<SimError> for ApiError {
    /// A bot the server does not know is 401, as on Telegram; anything else the simulator
    /// refuses is a bad request in Telegram's words.
    fn from(e: SimError) -> ApiError {
        match e {
            SimError::UnknownBot(_) => ApiError::new(401, "Unauthorized"),
            SimError::UnknownChat(_) => ApiError::bad("chat not found"),
            SimError::UnknownMessage { .. } => ApiError::bad("message not found"),
            SimError::Invalid(reason) => ApiError::bad(&reason),
        }
    }
}

/// One bot with the world's knobs.
struct Ctx<'a> {
    bot: &'a mut Bot,
    limits: bool,
    callback_timeout: Duration,
}

fn ctx<'a>(world: &'a mut World, token: &str) -> Result<Ctx<'a>, ApiError> {
    let limits = world.limits_on;
    let callback_timeout = world.callback_timeout;
    Ok(Ctx { bot: world.bot(token)?, limits, callback_timeout })
}

/// Runs a method that answers at once; `method` is lower-cased. Unknown methods are 404.
pub(crate) fn call(world: &mut World, token: &str, method: &str, p: &Params) -> Answer {
    let mut cx = ctx(world, token)?;
    match method {
        "getme" => get_me(&cx),
        "sendmessage" => send_message(&mut cx, p),
        "sendphoto" => send_media(&mut cx, p, Media::Photo),
        "senddocument" => send_media(&mut cx, p, Media::Document),
        "editmessagetext" => edit_text(&mut cx, p),
        "editmessagereplymarkup" => edit_markup(&mut cx, p),
        "answercallbackquery" => answer_callback(&mut cx, p),
        "sendchataction" => chat_action(&mut cx, p),
        "getfile" => get_file(&mut cx, p),
        "deletemessage" => delete_message(&mut cx, p),
        "setmycommands" => set_commands(&mut cx, p),
        "getmycommands" => Ok(Reply::ok(match &cx.bot.commands {
            Value::Null => json!([]),
            c => c.clone(),
        })),
        "deletewebhook" => delete_webhook(&mut cx, p),
        "getwebhookinfo" => Ok(Reply::ok(webhook_info(cx.bot))),
        _ => Err(ApiError::new(404, "Not Found: method not found")),
    }
}

fn get_me(cx: &Ctx<'_>) -> Answer {
    let mut me = cx.bot.me_json();
    me["can_join_groups"] = true.into();
    me["can_read_all_group_messages"] = false.into();
    me["supports_inline_queries"] = false.into();
    me["can_connect_to_business"] = false.into();
    me["has_main_web_app"] = false.into();
    Ok(Reply::ok(me))
}

/// `chat_id`: required; only numeric ids are simulated (an `@username` is "chat not found").
fn chat_id(p: &Params) -> Result<i64, ApiError> {
    let raw = p.text("chat_id").map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return Err(ApiError::bad("chat_id is empty"));
    }
    raw.parse::<i64>().map_err(|_| ApiError::bad("chat not found"))
}

fn message_id(p: &Params) -> Result<i64, ApiError> {
    p.int("message_id").filter(|id| *id > 0).ok_or_else(|| ApiError::bad("message identifier is not specified"))
}

/// Whether the bot may write to the chat: unknown chats, upgraded groups, strangers, blocked
/// and deactivated users fail with Telegram's texts.
fn check_chat(bot: &Bot, chat_id: i64) -> Result<(), ApiError> {
    let Some(chat) = bot.chats.get(&chat_id) else {
        return Err(ApiError::bad("chat not found"));
    };
    if let Some(to) = chat.migrated_to {
        return Err(ApiError {
            code: 400,
            description: "Bad Request: group chat was upgraded to a supergroup chat".into(),
            parameters: Some(json!({"migrate_to_chat_id": to})),
        });
    }
    match chat.access {
        Access::Started => Ok(()),
        Access::Stranger => Err(ApiError::forbidden("bot can't initiate conversation with a user")),
        Access::Blocked => Err(ApiError::forbidden("bot was blocked by the user")),
        Access::Deactivated => Err(ApiError::forbidden("user is deactivated")),
    }
}

/// Flood control for send and edit methods: per bot 30/s, per chat 1/s with a burst of 3,
/// per group also 20/min. A refused call consumes nothing.
fn check_rate(bot: &mut Bot, limits: bool, chat_id: i64) -> Result<(), ApiError> {
    if !limits {
        return Ok(());
    }
    check_rate_at(bot, chat_id, Instant::now())
}

fn check_rate_at(bot: &mut Bot, chat_id: i64, now: Instant) -> Result<(), ApiError> {
    let global = bot.global_bucket.wait(now);
    let chat = bot.chat_buckets.entry(chat_id).or_insert_with(|| Bucket::new(CHAT_BURST, CHAT_PER_SEC)).wait(now);
    let group = if chat_id < 0 {
        bot.group_buckets
            .entry(chat_id)
            .or_insert_with(|| Bucket::new(GROUP_PER_MINUTE, GROUP_PER_MINUTE / 60.0))
            .wait(now)
    } else {
        0.0
    };
    let wait = global.max(chat).max(group);
    if wait > 0.0 {
        bot.rate_limited += 1;
        return Err(ApiError::too_many((wait.ceil() as u64).max(1)));
    }
    bot.global_bucket.take();
    if let Some(b) = bot.chat_buckets.get_mut(&chat_id) {
        b.take();
    }
    if let Some(b) = bot.group_buckets.get_mut(&chat_id) {
        b.take();
    }
    Ok(())
}

/// Length as Telegram's limits count it: UTF-16 code units.
pub(crate) fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Applies `parse_mode` (case-insensitive, as the server lower-cases it).
fn format(raw: &str, parse_mode: Option<&str>) -> Result<Parsed, ApiError> {
    let mode = parse_mode.map(str::to_ascii_lowercase).unwrap_or_default();
    let parsed = match mode.as_str() {
        "" => Ok(Parsed { text: raw.to_string(), entities: Vec::new() }),
        "html" => html::parse(raw),
        "markdownv2" => markdown::parse_v2(raw),
        "markdown" => markdown::parse_legacy(raw),
        _ => return Err(ApiError::bad("unsupported parse_mode")),
    };
    parsed.map_err(|reason| ApiError::bad(&format!("can't parse entities: {reason}")))
}

/// A parsed `reply_markup`.
#[derive(Debug, Clone)]
enum Markup {
    /// `{"inline_keyboard":[…]}` (validated, reduced to that one field).
    Inline(Value),
    /// ReplyKeyboardMarkup, ReplyKeyboardRemove or ForceReply, as given.
    Other(Value),
}

impl Markup {
    /// The inline keyboard a Message would carry (none when it has no buttons).
    fn inline(&self) -> Option<Value> {
        match self {
            Markup::Inline(v) => {
                let empty = v["inline_keyboard"]
                    .as_array()
                    .map(|rows| rows.iter().all(|r| r.as_array().is_none_or(Vec::is_empty)))
                    .unwrap_or(true);
                (!empty).then(|| v.clone())
            }
            Markup::Other(_) => None,
        }
    }

    fn into_value(self) -> Value {
        match self {
            Markup::Inline(v) | Markup::Other(v) => v,
        }
    }
}

/// Reads and validates `reply_markup` (JSON text in forms, a JSON value in JSON bodies).
fn reply_markup(p: &Params) -> Result<Option<Markup>, ApiError> {
    let Some(parsed) = p.json("reply_markup") else {
        return Ok(None);
    };
    let value = parsed.map_err(|_| ApiError::bad("can't parse reply keyboard markup JSON object"))?;
    let Some(obj) = value.as_object() else {
        return Err(ApiError::bad("object expected as reply markup"));
    };
    if let Some(rows) = obj.get("inline_keyboard") {
        return validate_inline(rows).map(|rows| Some(Markup::Inline(json!({"inline_keyboard": rows}))));
    }
    if obj.contains_key("keyboard") || obj.contains_key("remove_keyboard") || obj.contains_key("force_reply") {
        return Ok(Some(Markup::Other(value)));
    }
    // An object of no known markup type is ignored, as the server ignores unknown fields
    // (an assumption).
    Ok(None)
}

/// Inline keyboard rules: rows of button objects, each with a string `text` and an action;
/// `callback_data` is 1-64 bytes.
fn validate_inline(rows: &Value) -> Result<Value, ApiError> {
    let shape_error =
        || ApiError::bad("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays");
    let rows_arr = rows.as_array().ok_or_else(shape_error)?;
    let mut count = 0usize;
    for row in rows_arr {
        let buttons = row.as_array().ok_or_else(shape_error)?;
        for button in buttons {
            count += 1;
            let b = button.as_object().ok_or_else(|| {
                ApiError::bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
            })?;
            match b.get("text") {
                None => return Err(ApiError::bad("can't parse inline keyboard button: Can't find field \"text\"")),
                Some(Value::String(_)) => {}
                Some(_) => {
                    return Err(ApiError::bad(
                        "can't parse inline keyboard button: Field \"text\" must be of type String",
                    ))
                }
            }
            let mut has_action = false;
            if let Some(data) = b.get("callback_data") {
                let data = data.as_str().unwrap_or("");
                if data.len() > MAX_CALLBACK_DATA {
                    return Err(ApiError::bad("BUTTON_DATA_INVALID"));
                }
                // An empty callback_data counts as absent: the live API then answers "Text
                // buttons are unallowed" rather than BUTTON_DATA_INVALID.
                has_action |= !data.is_empty();
            }
            for action in [
                "url",
                "web_app",
                "login_url",
                "switch_inline_query",
                "switch_inline_query_current_chat",
                "switch_inline_query_chosen_chat",
                "copy_text",
                "callback_game",
                "pay",
            ] {
                match b.get(action) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) if action == "url" && s.is_empty() => {}
                    Some(_) => has_action = true,
                }
            }
            if !has_action {
                return Err(ApiError::bad(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
                ));
            }
        }
    }
    if count > MAX_BUTTONS {
        return Err(ApiError::bad("reply markup is too long"));
    }
    Ok(rows.clone())
}

/// `reply_parameters` {message_id, allow_sending_without_reply} or the legacy
/// `reply_to_message_id`.
fn reply_target(p: &Params) -> Result<Option<(i64, bool)>, ApiError> {
    if let Some(parsed) = p.json("reply_parameters") {
        let v = parsed.map_err(|_| ApiError::bad("can't parse reply parameters JSON object"))?;
        let Some(id) = v.get("message_id").and_then(Value::as_i64) else {
            return Err(ApiError::bad("message to be replied not found"));
        };
        let allow = v.get("allow_sending_without_reply").and_then(Value::as_bool).unwrap_or(false);
        return Ok(Some((id, allow)));
    }
    Ok(p.int("reply_to_message_id").filter(|id| *id > 0).map(|id| (id, p.bool("allow_sending_without_reply"))))
}

fn resolve_reply(bot: &Bot, chat_id: i64, target: Option<(i64, bool)>) -> Result<Option<i64>, ApiError> {
    let Some((id, allow)) = target else {
        return Ok(None);
    };
    let exists = bot.chats.get(&chat_id).is_some_and(|c| c.messages.contains_key(&id));
    match (exists, allow) {
        (true, _) => Ok(Some(id)),
        (false, true) => Ok(None),
        (false, false) => Err(ApiError::bad("message to be replied not found")),
    }
}

/// Checks a text the way sendMessage and editMessageText do.
fn checked_text(p: &Params) -> Result<(String, Option<String>, Parsed), ApiError> {
    let raw = p.text("text").unwrap_or("");
    if raw.len() > MAX_RAW_TEXT_BYTES {
        return Err(ApiError::bad("text is too long"));
    }
    let parse_mode = p.non_empty("parse_mode").map(str::to_string);
    let parsed = format(raw, parse_mode.as_deref())?;
    if parsed.text.trim().is_empty() {
        return Err(ApiError::bad("message text is empty"));
    }
    if utf16_len(&parsed.text) > MAX_TEXT {
        return Err(ApiError::bad("message is too long"));
    }
    Ok((raw.to_string(), parse_mode, parsed))
}

fn text_fields(parsed: &Parsed) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("text".into(), parsed.text.clone().into());
    if !parsed.entities.is_empty() {
        fields.insert("entities".into(), Value::Array(parsed.entities.clone()));
    }
    fields
}

fn send_message(cx: &mut Ctx<'_>, p: &Params) -> Answer {
    let chat_id = chat_id(p)?;
    let markup = reply_markup(p)?;
    let (raw, parse_mode, parsed) = checked_text(p)?;
    let target = reply_target(p)?;
    check_chat(cx.bot, chat_id)?;
    let reply_to = resolve_reply(cx.bot, chat_id, target)?;
    check_rate(cx.bot, cx.limits, chat_id)?;
    let from = cx.bot.me_json();
    let inline = markup.as_ref().and_then(Markup::inline);
    let (message_id, json) = cx.bot.new_message(chat_id, from, text_fields(&parsed), reply_to, true, inline)?;
    keep_keyboard(cx.bot, chat_id, markup.as_ref());
    cx.bot.record_sent(Sent {
        text: Some(raw),
        plain: Some(parsed.text),
        parse_mode,
        reply_markup: markup.map(Markup::into_value),
        reply_to_message_id: target.map(|t| t.0),
        ..Sent::new("sendMessage", chat_id, message_id)
    });
    Ok(Reply::ok(json))
}

/// Remembers the reply keyboard a message showed (or removed), as the client keeps it under
/// the input field.
fn keep_keyboard(bot: &mut Bot, chat_id: i64, markup: Option<&Markup>) {
    let Some(Markup::Other(v)) = markup else { return };
    let Some(chat) = bot.chats.get_mut(&chat_id) else { return };
    if v.get("keyboard").is_some() {
        chat.keyboard = Some(v.clone());
    } else if v.get("remove_keyboard").and_then(Value::as_bool) == Some(true) {
        chat.keyboard = None;
    }
}

/// sendPhoto or sendDocument.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Media {
    Photo,
    Document,
}

impl Media {
    fn field(self) -> &'static str {
        match self {
            Media::Photo => "photo",
            Media::Document => "document",
        }
    }

    fn method(self) -> &'static str {
        match self {
            Media::Photo => "sendPhoto",
            Media::Document => "sendDocument",
        }
    }

    fn max_upload(self) -> u64 {
        match self {
            Media::Photo => MAX_PHOTO_UPLOAD,
            Media::Document => MAX_DOCUMENT_UPLOAD,
        }
    }
}

/// Where the file of a sendPhoto/sendDocument comes from.
enum Source {
    Upload(Upload),
    /// A file_id the bot knows, or an HTTP URL (taken as fetched, never fetched).
    Ref(String),
}

fn send_media(cx: &mut Ctx<'_>, p: &Params, kind: Media) -> Answer {
    let field = kind.field();
    let missing = || ApiError::bad(&format!("there is no {field} in the request"));
    let chat_id = chat_id(p)?;
    let markup = reply_markup(p)?;
    let source = match p.get(field) {
        Some(Param::File(u)) => Source::Upload(u.clone()),
        Some(Param::Text(s)) if s.starts_with("attach://") => match p.get(&s["attach://".len()..]) {
            Some(Param::File(u)) => Source::Upload(u.clone()),
            _ => return Err(missing()),
        },
        Some(Param::Text(s)) if !s.trim().is_empty() => Source::Ref(s.trim().to_string()),
        _ => return Err(missing()),
    };
    if let Source::Upload(u) = &source {
        if u.bytes.is_empty() {
            // The text is an assumption.
            return Err(ApiError::bad("file must be non-empty"));
        }
        if u.bytes.len() as u64 > kind.max_upload() {
            // Telegram's exact answer to an oversized upload is not documented (it may also
            // be 413 "Request Entity Too Large"); this text is an assumption.
            return Err(ApiError::bad("file is too big"));
        }
    }
    let parse_mode = p.non_empty("parse_mode").map(str::to_string);
    let caption_raw = p.non_empty("caption").map(str::to_string);
    let caption = match &caption_raw {
        Some(c) => Some(format(c, parse_mode.as_deref())?),
        None => None,
    };
    if caption.as_ref().is_some_and(|c| utf16_len(&c.text) > MAX_CAPTION) {
        return Err(ApiError::bad("message caption is too long"));
    }
    let target = reply_target(p)?;
    let known = match &source {
        Source::Ref(r) => match cx.bot.files.get(r) {
            Some(f) => Some(f.clone()),
            None if r.starts_with("http://") || r.starts_with("https://") => None,
            None => return Err(ApiError::bad("wrong file identifier/HTTP URL specified")),
        },
        Source::Upload(_) => None,
    };
    check_chat(cx.bot, chat_id)?;
    let reply_to = resolve_reply(cx.bot, chat_id, target)?;
    check_rate(cx.bot, cx.limits, chat_id)?;

    let (bytes, name, mime) = match (&source, &known) {
        (Source::Upload(u), _) => (
            u.bytes.clone(),
            u.name.clone().unwrap_or_else(|| format!("{field}.bin")),
            u.mime.clone().unwrap_or_else(|| match kind {
                Media::Photo => "image/jpeg".into(),
                Media::Document => "application/octet-stream".into(),
            }),
        ),
        (Source::Ref(r), Some(f)) => {
            (f.bytes.clone().unwrap_or_default(), r.clone(), f.mime.clone().unwrap_or_default())
        }
        (Source::Ref(r), None) => (bytes::Bytes::new(), r.clone(), String::new()),
    };
    let mut fields = Map::new();
    match kind {
        Media::Photo => {
            let sizes = match &known {
                // Re-sending a known file: one PhotoSize pointing at it.
                Some(f) => {
                    let mut s = f.base_json();
                    s.insert("width".into(), 800.into());
                    s.insert("height".into(), 600.into());
                    json!([s])
                }
                None => cx.bot.photo_sizes(&bytes),
            };
            fields.insert("photo".into(), sizes);
        }
        Media::Document => {
            let file = match &known {
                Some(f) => f.clone(),
                None => {
                    let ext = name.rsplit_once('.').map(|(_, e)| e.to_string()).unwrap_or_else(|| "bin".into());
                    cx.bot.add_file(
                        "documents",
                        &ext,
                        bytes.len() as u64,
                        Some(bytes.clone()),
                        Some(name.clone()),
                        Some(mime.clone()),
                    )
                }
            };
            fields.insert("document".into(), Value::Object(file.document_json()));
        }
    }
    if let Some(c) = &caption {
        fields.insert("caption".into(), c.text.clone().into());
        if !c.entities.is_empty() {
            fields.insert("caption_entities".into(), Value::Array(c.entities.clone()));
        }
    }
    let from = cx.bot.me_json();
    let inline = markup.as_ref().and_then(Markup::inline);
    let (message_id, json) = cx.bot.new_message(chat_id, from, fields, reply_to, true, inline)?;
    keep_keyboard(cx.bot, chat_id, markup.as_ref());
    cx.bot.record_sent(Sent {
        plain: caption.map(|c| c.text),
        caption: caption_raw,
        parse_mode,
        reply_markup: markup.map(Markup::into_value),
        reply_to_message_id: target.map(|t| t.0),
        file: Some(SentFile { field: field.into(), name, mime, bytes: bytes.to_vec() }),
        ..Sent::new(kind.method(), chat_id, message_id)
    });
    Ok(Reply::ok(json))
}

/// The inline keyboard an edit sets (edits accept only inline keyboards).
fn edit_keyboard(p: &Params) -> Result<(Option<Value>, Option<Value>), ApiError> {
    match reply_markup(p)? {
        None => Ok((None, None)),
        Some(Markup::Other(_)) => Err(ApiError::bad("inline keyboard expected")),
        Some(m @ Markup::Inline(_)) => Ok((m.inline(), Some(m.into_value()))),
    }
}

fn not_modified() -> ApiError {
    ApiError::bad("message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message")
}

/// Finds a bot message to edit.
fn editable(bot: &mut Bot, chat_id: i64, message_id: i64) -> Result<&mut StoredMessage, ApiError> {
    let chat = bot.chats.get_mut(&chat_id).ok_or_else(|| ApiError::bad("chat not found"))?;
    let stored = chat.messages.get_mut(&message_id).ok_or_else(|| ApiError::bad("message to edit not found"))?;
    if !stored.from_bot {
        return Err(ApiError::bad("message can't be edited"));
    }
    Ok(stored)
}

fn set_or_remove(obj: &mut Value, key: &str, value: Option<Value>) {
    if let Some(o) = obj.as_object_mut() {
        match value {
            Some(v) => {
                o.insert(key.into(), v);
            }
            None => {
                o.remove(key);
            }
        }
    }
}

fn edit_text(cx: &mut Ctx<'_>, p: &Params) -> Answer {
    if p.non_empty("inline_message_id").is_some() {
        // Inline messages are not simulated.
        return Err(ApiError::bad("message to edit not found"));
    }
    let chat_id = chat_id(p)?;
    let message_id = message_id(p)?;
    let (keyboard, markup_given) = edit_keyboard(p)?;
    let (raw, parse_mode, parsed) = checked_text(p)?;
    check_chat(cx.bot, chat_id)?;
    let stored = editable(cx.bot, chat_id, message_id)?;
    if stored.json.get("text").is_none() {
        return Err(ApiError::bad("there is no text in the message to edit"));
    }
    let entities = (!parsed.entities.is_empty()).then(|| Value::Array(parsed.entities.clone()));
    // Without reply_markup the edit removes the keyboard, as on Telegram.
    if stored.json["text"] == parsed.text.as_str()
        && stored.json.get("entities") == entities.as_ref()
        && stored.markup == keyboard
    {
        return Err(not_modified());
    }
    check_rate(cx.bot, cx.limits, chat_id)?;
    let stored = editable(cx.bot, chat_id, message_id)?;
    stored.json["text"] = parsed.text.clone().into();
    set_or_remove(&mut stored.json, "entities", entities);
    set_or_remove(&mut stored.json, "reply_markup", keyboard.clone());
    stored.json["edit_date"] = crate::state::unix_now().into();
    stored.markup = keyboard;
    let json = stored.json.clone();
    cx.bot.touch();
    cx.bot.record_sent(Sent {
        text: Some(raw),
        plain: Some(parsed.text),
        parse_mode,
        reply_markup: markup_given,
        ..Sent::new("editMessageText", chat_id, message_id)
    });
    Ok(Reply::ok(json))
}

fn edit_markup(cx: &mut Ctx<'_>, p: &Params) -> Answer {
    if p.non_empty("inline_message_id").is_some() {
        return Err(ApiError::bad("message to edit not found"));
    }
    let chat_id = chat_id(p)?;
    let message_id = message_id(p)?;
    let (keyboard, markup_given) = edit_keyboard(p)?;
    check_chat(cx.bot, chat_id)?;
    let stored = editable(cx.bot, chat_id, message_id)?;
    if stored.markup == keyboard {
        return Err(not_modified());
    }
    check_rate(cx.bot, cx.limits, chat_id)?;
    let stored = editable(cx.bot, chat_id, message_id)?;
    set_or_remove(&mut stored.json, "reply_markup", keyboard.clone());
    stored.json["edit_date"] = crate::state::unix_now().into();
    stored.markup = keyboard;
    let json = stored.json.clone();
    cx.bot.touch();
    cx.bot.record_sent(Sent { reply_markup: markup_given, ..Sent::new("editMessageReplyMarkup", chat_id, message_id) });
    Ok(Reply::ok(json))
}

fn answer_callback(cx: &mut Ctx<'_>, p: &Params) -> Answer {
    let Some(id) = p.non_empty("callback_query_id") else {
        return Err(ApiError::required("callback_query_id"));
    };
    let text = p.non_empty("text");
    if text.is_some_and(|t| t.chars().count() > MAX_CALLBACK_TEXT) {
        // The error TDLib reports for an over-long answer text.
        return Err(ApiError::bad("MESSAGE_TOO_LONG"));
    }
    let too_old = || ApiError::bad("query is too old and response timeout expired or query ID is invalid");
    let timeout = cx.callback_timeout;
    let press = cx.bot.presses.get_mut(id).ok_or_else(too_old)?;
    if press.answered || press.at.elapsed() > timeout {
        return Err(too_old());
    }
    // Outside games, the only URLs a callback answer may open are links that start this bot.
    let url = p.non_empty("url");
    if let Some(u) = url {
        let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://")).unwrap_or(u);
        let ours = rest
            .strip_prefix("t.me/")
            .and_then(|r| r.split_once("?start="))
            .is_some_and(|(bot, payload)| bot.eq_ignore_ascii_case(&cx.bot.username) && start_payload_ok(payload));
        if !ours {
            return Err(ApiError::bad("URL_INVALID"));
        }
    }
    let press = cx.bot.presses.get_mut(id).ok_or_else(too_old)?;
    press.answered = true;
    let after = press.at.elapsed();
    cx.bot.record_answer(CallbackAnswer {
        callback_query_id: id.to_string(),
        text: text.map(str::to_string),
        show_alert: p.bool("show_alert"),
        url: url.map(str::to_string),
        after,
    });
    cx.bot.touch();
    Ok(Reply::ok(true.into()))
}

/// A deep-link `start` parameter: 1-64 characters of `A-Z a-z 0-9 _ -`.
fn start_payload_ok(payload: &str) -> bool {
    (1..=64).contains(&payload.len()) && payload.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The actions sendChatAction accepts.
const ACTIONS: &[&str] = &[
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

fn chat_action(cx: &mut Ctx<'_>, p: &Params) -> Answer {
    let chat_id = chat_id(p)?;
    let action = p.non_empty("action").unwrap_or("");
    if !ACTIONS.contains(&action) {
        return Err(ApiError::bad("wrong parameter action in request"));
    }
    check_chat(cx.bot, chat_id)?;
    cx.bot.record_action(chat_id, action.to_string());
    Ok(Reply::ok(true.into()))
}

fn get_file(cx: &mut Ctx<'_>, p: &Params) -> Answer {
    let Some(file_id) = p.non_empty("file_id") else {
        return Err(ApiError::required("file_id"));
    };
    let Some(file) = cx.bot.files.get(file_id.trim()) else {
        return Err(ApiError::bad("invalid file_id"));
    };
    if file.size > MAX_DOWNLOAD {
        return Err(ApiError::bad("file is too big"));
    }
    let mut v = file.base_json();
    v.insert("file_path".into(), file.path.clone().into());
    Ok(Reply::ok(Value::Object(v)))
}

fn delete_message(cx: &mut Ctx<'_>, p: &Params) -> Answer {
    let chat_id = chat_id(p)?;
    let message_id = message_id(p)?;
    let chat = cx.bot.chats.get_mut(&chat_id).ok_or_else(|| ApiError::bad("chat not found"))?;
    if chat.messages.remove(&message_id).is_none() {
        return Err(ApiError::bad("message to delete not found"));
    }
    cx.bot.touch();
    Ok(Reply::ok(true.into()))
}

fn set_commands(cx: &mut Ctx<'_>, p: &Params) -> Answer {
    let Some(parsed) = p.json("commands") else {
        return Err(ApiError::required("commands"));
    };
    let commands = parsed.map_err(|_| ApiError::bad("can't parse commands JSON object"))?;
    let Some(list) = commands.as_array() else {
        return Err(ApiError::bad("field \"commands\" must be of type Array"));
    };
    for c in list {
        let command = c.get("command").and_then(Value::as_str).unwrap_or("");
        let description = c.get("description").and_then(Value::as_str).unwrap_or("");
        let valid = (1..=32).contains(&command.len())
            && command.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
        if !valid {
            return Err(ApiError::bad("BOT_COMMAND_INVALID"));
        }
        if !(1..=256).contains(&description.chars().count()) {
            return Err(ApiError::bad("BOT_COMMAND_DESCRIPTION_INVALID"));
        }
    }
    cx.bot.commands = commands;
    Ok(Reply::ok(true.into()))
}

fn delete_webhook(cx: &mut Ctx<'_>, p: &Params) -> Answer {
    remove_webhook(cx.bot, p.bool("drop_pending_updates"))
}

fn remove_webhook(bot: &mut Bot, drop_pending: bool) -> Answer {
    if drop_pending {
        bot.updates.clear();
    }
    if bot.webhook.take().is_none() {
        return Ok(Reply::described(true.into(), "Webhook is already deleted"));
    }
    bot.webhook_generation += 1;
    bot.bump();
    Ok(Reply::described(true.into(), "Webhook was deleted"))
}

/// WebhookInfo: `url` is "" when no webhook is set.
pub(crate) fn webhook_info(bot: &Bot) -> Value {
    let mut v = json!({
        "url": "",
        "has_custom_certificate": false,
        "pending_update_count": bot.updates.len(),
    });
    if let Some(hook) = &bot.webhook {
        v["url"] = hook.url.clone().into();
        v["max_connections"] = hook.max_connections.into();
        if let Some((date, message)) = &hook.last_error {
            v["last_error_date"] = (*date).into();
            v["last_error_message"] = message.clone().into();
        }
    }
    if let Some(allowed) = &bot.allowed_updates {
        v["allowed_updates"] = json!(allowed);
    }
    v
}

/// Reads `allowed_updates`: `None` when not given (the previous setting stays).
pub(crate) fn allowed_updates(p: &Params) -> Result<Option<Vec<String>>, ApiError> {
    let Some(parsed) = p.json("allowed_updates") else {
        return Ok(None);
    };
    let list = parsed
        .ok()
        .and_then(|v| v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect::<Vec<_>>()))
        .ok_or_else(|| ApiError::bad("can't parse allowed updates JSON object"))?;
    Ok(Some(list))
}

/// setWebhook. On success with a new webhook it also returns the generation the delivery
/// task must serve.
pub(crate) fn set_webhook(world: &mut World, token: &str, p: &Params) -> Result<(Reply, Option<u64>), ApiError> {
    let cx = ctx(world, token)?;
    let bot = cx.bot;
    let drop_pending = p.bool("drop_pending_updates");
    // The server reads a missing url as "" — which removes the webhook.
    let url = p.text("url").unwrap_or("").trim().to_string();
    if url.is_empty() {
        return remove_webhook(bot, drop_pending).map(|r| (r, None));
    }
    // Real Telegram requires HTTPS (and ports 443, 80, 88 or 8443); the simulator also takes
    // http:// because the tests' receivers listen on plain loopback HTTP.
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host_ok = rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !host.starts_with(':')
    });
    if !host_ok || url.chars().any(char::is_whitespace) {
        return Err(ApiError::bad("invalid webhook URL specified"));
    }
    let secret = p.text("secret_token").filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(s) = &secret {
        if s.chars().count() > 256 {
            return Err(ApiError::bad("secret token is too long"));
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(ApiError::bad("secret token contains unallowed characters"));
        }
    }
    let allowed = allowed_updates(p)?;
    let max_connections = p.int("max_connections").unwrap_or(40).clamp(1, 100);
    let same = bot.webhook.as_ref().is_some_and(|h| {
        h.url == url
            && h.secret == secret
            && h.max_connections == max_connections
            && allowed.as_ref().is_none_or(|a| Some(a) == bot.allowed_updates.as_ref())
    });
    if same {
        if drop_pending {
            bot.updates.clear();
        }
        return Ok((Reply::described(true.into(), "Webhook is already set"), None));
    }
    if cx.limits && bot.last_webhook_set.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
        // setWebhook with a URL is limited to one per second.
        bot.rate_limited += 1;
        return Err(ApiError::too_many(1));
    }
    bot.last_webhook_set = Some(Instant::now());
    if drop_pending {
        bot.updates.clear();
    }
    if let Some(a) = allowed {
        bot.allowed_updates = Some(a);
    }
    bot.webhook =
        Some(Hook { url, secret, allowed_updates: bot.allowed_updates.clone(), max_connections, last_error: None });
    bot.webhook_generation += 1;
    bot.bump();
    Ok((Reply::described(true.into(), "Webhook was set"), Some(bot.webhook_generation)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after(e: ApiError) -> u64 {
        assert_eq!(e.code, 429);
        e.parameters.unwrap()["retry_after"].as_u64().unwrap()
    }

    #[test]
    fn a_group_gets_twenty_messages_a_minute_even_at_one_per_second() {
        let mut bot = Bot::new(1, "b");
        let t0 = Instant::now();
        let mut accepted = 0;
        let mut refused_at = None;
        for second in 0..60u64 {
            match check_rate_at(&mut bot, -42, t0 + Duration::from_secs(second)) {
                Ok(()) => accepted += 1,
                Err(e) => {
                    refused_at = Some((second, retry_after(e)));
                    break;
                }
            }
        }
        // 20 in the bucket plus one refilled every 3 s while they went out: the 30th, at
        // second 29, finds the bucket empty although the chat's own 1/s limit is kept.
        assert_eq!(accepted, 29);
        let (_, wait) = refused_at.expect("the group limit bites");
        assert!((1..=3).contains(&wait), "retry_after {wait}");
        assert_eq!(bot.rate_limited, 1);
    }

    #[test]
    fn a_bot_gets_thirty_messages_a_second_across_chats() {
        let mut bot = Bot::new(1, "b");
        let now = Instant::now();
        for chat in 1..=30 {
            check_rate_at(&mut bot, chat, now).unwrap();
        }
        assert_eq!(retry_after(check_rate_at(&mut bot, 31, now).unwrap_err()), 1);
        // A refused call consumed nothing: a moment later one more fits.
        check_rate_at(&mut bot, 31, now + Duration::from_millis(40)).unwrap();
    }

    #[test]
    fn a_private_chat_bursts_three_then_one_per_second() {
        let mut bot = Bot::new(1, "b");
        let t0 = Instant::now();
        for _ in 0..3 {
            check_rate_at(&mut bot, 7, t0).unwrap();
        }
        assert_eq!(retry_after(check_rate_at(&mut bot, 7, t0).unwrap_err()), 1);
        check_rate_at(&mut bot, 7, t0 + Duration::from_millis(1000)).unwrap();
        assert!(check_rate_at(&mut bot, 7, t0 + Duration::from_millis(1500)).is_err());
    }
}
