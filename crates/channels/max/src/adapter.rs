//! Sending to MAX: plain text split under the 4,000-character limit, inline keyboards (long
//! callback data kept by okno behind a short token), files uploaded the MAX way (`POST
//! /uploads` → the upload host → attached by token, retried while the platform still
//! processes them), replies, edits and deletes — paced by the platform's limits (30 requests a
//! second per bot, 2 sends a second per chat) and with every error classified.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use okno_channel::files::FileStore;
use okno_channel::{Adapter, ChannelState, DeliveryTarget, IdentityFlag, Post, Posted, PressAnswer, SendError, Sent};
use okno_domain::model::{Attachment, ChannelKind, Keyboard};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{ApiError, BotApi, DEFAULT_API_BASE};
use crate::format::{render_spans, split, TEXT_LIMIT};
use crate::updates::TOKEN_PREFIX;

/// Longest callback `payload`, in characters.
const CALLBACK_PAYLOAD_LIMIT: usize = 1024;
/// Longest button label, in characters.
const LABEL_LIMIT: usize = 128;
/// Buttons in a row; a row holding a link button holds at most 3.
const ROW_LIMIT: usize = 7;
const LINK_ROW_LIMIT: usize = 3;
/// MAX gives no time to wait on a 429; a second is what its own clients wait first.
const RATE_WAIT: Duration = Duration::from_secs(1);
/// Waits for a file the platform is still processing (`attachment.not.ready`), as the
/// official clients make them.
const NOT_READY_WAITS: [u64; 3] = [1, 2, 4];

/// The channel's configuration (`config` of `POST /api/v1/channels`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxConfig {
    pub token: String,
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// `polling` (default) or `webhook`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// The webhook secret okno generated (kept here, never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Rate limits (advanced); MAX's documented ones when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<MaxLimits>,
}

/// MAX's limits (30 requests a second per bot, 2 sends a second per chat); `0` turns one off
/// (for a simulator without limits, as in the benchmark).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MaxLimits {
    pub per_second: u32,
    pub per_chat_per_second: u32,
}

impl Default for MaxLimits {
    fn default() -> Self {
        Self { per_second: 30, per_chat_per_second: 2 }
    }
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_string()
}

fn default_mode() -> String {
    "polling".to_string()
}

/// Token buckets for one bot: overall and per chat, each absent when turned off.
struct Limiter {
    global: Option<DefaultDirectRateLimiter>,
    chat: Option<DefaultKeyedRateLimiter<String>>,
}

impl Limiter {
    /// By default 30 a second overall and 2 a second per chat, each stretched a little: the
    /// platform measures from when a request arrives, okno from when it leaves.
    fn new(limits: &MaxLimits) -> Self {
        let second = Duration::from_secs(1);
        let quota = |n: u32, margin: f64| {
            Quota::with_period(second.mul_f64(margin / f64::from(n)))
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::MIN)
        };
        let on = |n: u32| (n > 0).then_some(n);
        Self {
            global: on(limits.per_second).map(|n| governor::RateLimiter::direct(quota(n, 1.05))),
            chat: on(limits.per_chat_per_second).map(|n| governor::RateLimiter::keyed(quota(n, 1.25))),
        }
    }

    async fn ready(&self, chat: Option<&str>) {
        if let (Some(c), Some(limiter)) = (chat, &self.chat) {
            limiter.until_key_ready(&c.to_string()).await;
        }
        if let Some(global) = &self.global {
            global.until_ready().await;
        }
    }
}

/// One bot, sending.
pub struct MaxAdapter {
    api: BotApi,
    state: Arc<dyn ChannelState>,
    files: FileStore,
    limiter: Limiter,
}

/// Where a message goes: a person by their user id, a group chat (negative id) by its chat id.
pub fn recipient(chat: &str) -> Result<(&'static str, String), SendError> {
    let id: i64 =
        chat.trim().parse().map_err(|_| SendError::permanent(format!("`{chat}` is not a MAX chat or user id")))?;
    Ok(if id < 0 { ("chat_id", id.to_string()) } else { ("user_id", id.to_string()) })
}

/// Maps a Bot API error onto what the delivery engine should do.
pub fn classify(e: ApiError) -> SendError {
    match e {
        ApiError::Network(reason) => SendError::retry(reason),
        ApiError::Max { status: 429, message, .. } => SendError::Retry { reason: message, after: Some(RATE_WAIT) },
        ApiError::Max { code, message, .. } if code == "attachment.not.ready" => {
            SendError::Retry { reason: format!("{message} ({code})"), after: Some(Duration::from_secs(2)) }
        }
        ApiError::Max { status, code, message } if status >= 500 => SendError::retry(format!("{message} ({code})")),
        ApiError::Max { status: 403, code, message }
            if code == "chat.denied" || message.contains("dialog.suspended") || code.contains("blocked") =>
        {
            SendError::Permanent { reason: format!("{message} ({code})"), flag: Some(IdentityFlag::Blocked) }
        }
        ApiError::Max { code, message, .. } => SendError::permanent(format!("{message} ({code})")),
    }
}

/// Where a message's options record how many of its parts are already delivered.
const PROGRESS: &str = "sent_parts";

/// One message of a delivery.
struct Step<'a> {
    file: Option<&'a Attachment>,
    text: Option<String>,
    keyboard: bool,
    reply: bool,
}

/// The messages that deliver an outgoing one, in order: each file alone (MAX takes a file or
/// audio only as a message's one attachment), the text riding on the last file when it fits,
/// else split under the limit; the keyboard goes on the last message, the reply on the first.
fn steps<'a>(attachments: &'a [Attachment], text: &str) -> Vec<Step<'a>> {
    let files: Vec<&Attachment> = attachments.iter().filter(|a| a.state == "ready").collect();
    let fits = text.chars().count() <= TEXT_LIMIT;
    let as_caption = !files.is_empty() && !text.is_empty() && fits;
    let parts: Vec<String> =
        if as_caption || (text.is_empty() && !files.is_empty()) { Vec::new() } else { split(text, TEXT_LIMIT) };
    let total = files.len() + parts.len();
    let mut out: Vec<Step<'a>> = Vec::with_capacity(total);
    let count = files.len();
    for (i, f) in files.into_iter().enumerate() {
        let last = i + 1 == count;
        out.push(Step {
            file: Some(f),
            text: (last && as_caption).then(|| text.to_string()),
            keyboard: false,
            reply: false,
        });
    }
    for p in parts {
        out.push(Step { file: None, text: Some(p), keyboard: false, reply: false });
    }
    if let Some(first) = out.first_mut() {
        first.reply = true;
    }
    if let Some(last) = out.last_mut() {
        last.keyboard = true;
    }
    out
}

/// The upload type of an attachment: images, videos and audio as themselves, the rest as files.
fn upload_type(att: &Attachment) -> &'static str {
    let mime = att.mime.as_str();
    let mb = 1024 * 1024;
    if matches!(mime, "image/jpeg" | "image/png" | "image/gif" | "image/bmp" | "image/tiff" | "image/heic")
        && att.size <= 50 * mb
    {
        "image"
    } else if matches!(mime, "video/mp4" | "video/quicktime" | "video/x-matroska" | "video/webm")
        && att.size <= 250 * mb
    {
        "video"
    } else if mime.starts_with("audio/") && att.size <= 256 * mb {
        "audio"
    } else {
        "file"
    }
}

/// A sent message's id in the platform's answer (`{"message": {"body": {"mid"}}}`).
fn mid_of(answer: &Value) -> Result<String, SendError> {
    answer["message"]["body"]["mid"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| SendError::retry("MAX answered a send without the message's id"))
}

/// Edits that change nothing are no failure for okno.
fn unchanged(e: &SendError) -> bool {
    matches!(e, SendError::Permanent { reason, .. } if reason.contains("not modified"))
}

impl MaxAdapter {
    /// An adapter paced at MAX's documented limits.
    pub fn new(api: BotApi, state: Arc<dyn ChannelState>, files: FileStore) -> Self {
        Self::with_limits(api, state, files, &MaxLimits::default())
    }

    /// An adapter paced at `limits` (a `0` turns that limit off).
    pub fn with_limits(api: BotApi, state: Arc<dyn ChannelState>, files: FileStore, limits: &MaxLimits) -> Self {
        Self { api, state, files, limiter: Limiter::new(limits) }
    }

    pub fn api(&self) -> &BotApi {
        &self.api
    }

    /// One API call, paced by the chat's budget when `pace` names it and by the bot's always; a
    /// 429 is waited out (a second, as MAX names no time) and the call repeated a few times.
    async fn call(
        &self,
        pace: Option<&str>,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, SendError> {
        let mut waits = 0;
        loop {
            self.limiter.ready(pace).await;
            match self.api.call(method.clone(), path, query, body, None).await {
                Err(ApiError::Max { status: 429, .. }) if waits < 3 => {
                    waits += 1;
                    tokio::time::sleep(RATE_WAIT).await;
                }
                other => return other.map_err(classify),
            }
        }
    }

    /// A send that attaches an uploaded file is repeated while MAX still processes the file.
    async fn send_message(&self, chat: &str, body: &Value) -> Result<String, SendError> {
        let (key, id) = recipient(chat)?;
        let query = [(key, id)];
        let mut waits = NOT_READY_WAITS.iter();
        loop {
            match self.call(Some(chat), Method::POST, "/messages", &query, Some(body)).await {
                Err(SendError::Retry { reason, .. }) if reason.contains("attachment.not.ready") => match waits.next() {
                    Some(s) => tokio::time::sleep(Duration::from_secs(*s)).await,
                    None => return Err(SendError::Retry { reason, after: Some(Duration::from_secs(5)) }),
                },
                other => return mid_of(&other?),
            }
        }
    }

    /// A callback button's payload: the data itself when it fits, else a short token that
    /// stands for it in okno's store.
    async fn callback_payload(&self, data: &str) -> Result<String, SendError> {
        okno_channel::button_payload(
            self.state.as_ref(),
            data,
            data.chars().count() <= CALLBACK_PAYLOAD_LIMIT,
            TOKEN_PREFIX,
        )
        .await
    }

    /// The `inline_keyboard` attachment for `rows`; rows wider than MAX allows wrap.
    async fn keyboard(&self, rows: &Keyboard) -> Result<Value, SendError> {
        let mut out: Vec<Value> = Vec::new();
        for row in rows {
            let mut buttons = Vec::with_capacity(row.len());
            for b in row {
                let text: String = b.text.chars().take(LABEL_LIMIT).collect();
                let text = if text.trim().is_empty() { "·".to_string() } else { text };
                buttons.push(match (&b.url, &b.data) {
                    (Some(url), _) => json!({"type": "link", "text": text, "url": url}),
                    (None, Some(data)) => {
                        json!({"type": "callback", "text": text, "payload": self.callback_payload(data).await?})
                    }
                    (None, None) => {
                        return Err(SendError::permanent(format!("button `{}` has neither data nor url", b.text)))
                    }
                });
            }
            let width = if buttons.iter().any(|b| b["type"] == "link") { LINK_ROW_LIMIT } else { ROW_LIMIT };
            out.extend(buttons.chunks(width).map(|c| Value::Array(c.to_vec())));
        }
        Ok(json!({"type": "inline_keyboard", "payload": {"buttons": out}}))
    }

    /// Uploads a stored file and returns the attachment that carries it.
    async fn upload(&self, att: &Attachment) -> Result<Value, SendError> {
        let kind = upload_type(att);
        let data = self
            .files
            .read(&att.sha256)
            .await
            .map_err(|e| SendError::permanent(format!("attachment `{}` is not in the store: {e}", att.name)))?;
        let slot = self.call(None, Method::POST, "/uploads", &[("type", kind.to_string())], None).await?;
        let url = slot["url"].as_str().ok_or_else(|| SendError::retry("MAX gave no upload address"))?;
        let part = Part::bytes(data.to_vec())
            .file_name(att.name.clone())
            .mime_str(&att.mime)
            .map_err(|e| SendError::permanent(format!("bad MIME type `{}`: {e}", att.mime)))?;
        let answer = self.api.upload(url, Form::new().part("data", part)).await.map_err(classify)?;
        let payload = match kind {
            // The upload host's answer `{"photos": {…}}` is itself the image's payload.
            "image" if answer.get("photos").is_some() => answer,
            "video" | "audio" => json!({"token": slot["token"]}),
            _ => json!({"token": answer["token"]}),
        };
        if payload.get("photos").is_none() && !payload["token"].is_string() {
            return Err(SendError::retry(format!("MAX's upload host gave no token for `{}`", att.name)));
        }
        Ok(json!({"type": kind, "payload": payload}))
    }

    /// Reads a sent message's current text and attachments other than its keyboard.
    async fn current(&self, mid: &str) -> Result<(Option<String>, Vec<Value>), SendError> {
        let path = format!("/messages/{}", url::form_urlencoded::byte_serialize(mid.as_bytes()).collect::<String>());
        let m = self.call(None, Method::GET, &path, &[], None).await?;
        let text = m["body"]["text"].as_str().map(str::to_string);
        let kept = m["body"]["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["type"] != "inline_keyboard")
            .map(|a| json!({"type": a["type"], "payload": a["payload"]}))
            .collect();
        Ok((text, kept))
    }

    /// Replaces a sent message's keyboard (`None` removes it). MAX replaces attachments as a
    /// whole and documents no meaning for a missing text, so the message's other attachments
    /// and its text are read back and sent again with it.
    async fn replace_keyboard(&self, mid: &str, keyboard: Option<Value>) -> Result<(), SendError> {
        let (text, mut attachments) = self.current(mid).await?;
        attachments.extend(keyboard);
        let mut body = json!({"attachments": attachments});
        if let Some(text) = text {
            body["text"] = json!(text);
        }
        self.put(mid, &body).await
    }

    async fn put(&self, mid: &str, body: &Value) -> Result<(), SendError> {
        match self.call(None, Method::PUT, "/messages", &[("message_id", mid.to_string())], Some(body)).await {
            Err(e) if unchanged(&e) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn post_body(&self, post: &Post) -> Result<Value, SendError> {
        let mut body = json!({"text": render_spans(&post.text), "format": "html"});
        body["attachments"] =
            if post.buttons.is_empty() { json!([]) } else { json!([self.keyboard(&post.buttons).await?]) };
        Ok(body)
    }
}

#[async_trait]
impl Adapter for MaxAdapter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Max
    }

    async fn send(&self, t: &DeliveryTarget) -> Result<Sent, SendError> {
        let chat = t.identity.chat_id.as_str();
        recipient(chat)?;
        let keyboard = if t.message.buttons.is_empty() { None } else { Some(self.keyboard(&t.message.buttons).await?) };
        let text = t.message.text.clone().unwrap_or_default();
        let steps = steps(&t.message.attachments, &text);
        if steps.is_empty() {
            return Err(SendError::permanent("the message has neither text nor a file ready to send"));
        }
        // A retry after a failure part-way resumes after the parts already delivered.
        let done = t.options.get(PROGRESS).and_then(Value::as_u64).unwrap_or(0) as usize;
        let total = steps.len();
        let mut last = None;
        for (i, step) in steps.into_iter().enumerate().skip(done) {
            let mut body = json!({});
            if let Some(text) = &step.text {
                body["text"] = json!(text);
            }
            let mut attachments = Vec::new();
            if let Some(att) = step.file {
                attachments.push(self.upload(att).await?);
            }
            if step.keyboard {
                attachments.extend(keyboard.clone());
            }
            if !attachments.is_empty() {
                body["attachments"] = Value::Array(attachments);
            }
            if let Some(r) = t.reply_to_external.as_deref().filter(|_| step.reply) {
                body["link"] = json!({"type": "reply", "mid": r});
            }
            last = Some(match self.send_message(chat, &body).await {
                Ok(mid) => mid,
                Err(SendError::Permanent { reason, flag }) if i > 0 => {
                    return Err(SendError::Permanent {
                        reason: format!("{reason} (after {i} of {total} parts were delivered)"),
                        flag,
                    })
                }
                Err(e) => return Err(e),
            });
            if i + 1 < total {
                let mut options = t.options.clone();
                if !options.is_object() {
                    options = json!({});
                }
                options[PROGRESS] = json!(i + 1);
                self.state
                    .set_message_options(&t.message.id, options)
                    .await
                    .map_err(|e| SendError::retry(format!("recording progress: {}", e.message)))?;
            }
        }
        Ok(Sent { external_id: last })
    }

    async fn edit_buttons(&self, t: &DeliveryTarget, buttons: &Keyboard) -> Result<(), SendError> {
        let Some(mid) = t.message.external_id.as_deref() else {
            return Err(SendError::permanent("the message has not been sent yet"));
        };
        let keyboard = if buttons.is_empty() { None } else { Some(self.keyboard(buttons).await?) };
        self.replace_keyboard(mid, keyboard).await
    }

    /// `POST /answers` with a notification: MAX has no separate alert or link answer, so a
    /// link is shown in the notification's text; a silent answer sends an empty one.
    async fn answer_press(&self, press_id: &str, answer: &PressAnswer) -> Result<(), SendError> {
        let mut note = answer.text.clone().unwrap_or_default();
        if let Some(url) = &answer.url {
            if !note.is_empty() {
                note.push(' ');
            }
            note.push_str(url);
        }
        let body = json!({"notification": note});
        self.call(None, Method::POST, "/answers", &[("callback_id", press_id.to_string())], Some(&body))
            .await
            .map(|_| ())
    }

    async fn post(&self, post: &Post) -> Result<Posted, SendError> {
        let mut body = self.post_body(post).await?;
        if post.buttons.is_empty() {
            if let Some(o) = body.as_object_mut() {
                o.remove("attachments");
            }
        }
        if let Some(r) = post.reply_to.as_deref() {
            body["link"] = json!({"type": "reply", "mid": r});
        }
        let (key, id) = recipient(&post.chat_id)?;
        let answer = self.call(None, Method::POST, "/messages", &[(key, id)], Some(&body)).await?;
        Ok(Posted { chat_id: post.chat_id.clone(), message_id: mid_of(&answer)? })
    }

    async fn edit_post(&self, at: &Posted, post: &Post) -> Result<(), SendError> {
        let body = self.post_body(post).await?;
        self.put(&at.message_id, &body).await
    }

    async fn clear_buttons(&self, at: &Posted) -> Result<(), SendError> {
        self.replace_keyboard(&at.message_id, None).await
    }

    /// MAX names a message by its `mid` alone: editing or deleting it needs no chat. The ids
    /// okno makes up for presses and starts name no message.
    fn posted(&self, external_id: &str) -> Option<Posted> {
        let made_up = external_id.starts_with("cb:") || external_id.starts_with("start:");
        (!external_id.is_empty() && !made_up)
            .then(|| Posted { chat_id: String::new(), message_id: external_id.to_string() })
    }

    async fn delete_post(&self, at: &Posted) -> Result<(), SendError> {
        let query = [("message_id", at.message_id.clone())];
        self.call(None, Method::DELETE, "/messages", &query, None).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max(status: u16, code: &str, message: &str) -> ApiError {
        ApiError::Max { status, code: code.into(), message: message.into() }
    }

    #[test]
    fn the_limits_are_read_from_the_config() {
        let cfg: MaxConfig = serde_json::from_value(json!({"token": "t"})).unwrap();
        assert_eq!(cfg.limits.unwrap_or_default(), MaxLimits { per_second: 30, per_chat_per_second: 2 });
        let cfg: MaxConfig =
            serde_json::from_value(json!({"token": "t", "limits": {"per_second": 0, "per_chat_per_second": 0}}))
                .unwrap();
        let limits = cfg.limits.clone().unwrap_or_default();
        assert_eq!(limits, MaxLimits { per_second: 0, per_chat_per_second: 0 });
        let off = Limiter::new(&limits);
        assert!(off.global.is_none() && off.chat.is_none());
        let cfg: MaxConfig = serde_json::from_value(json!({"token": "t", "limits": {"per_second": 10}})).unwrap();
        let limits = cfg.limits.unwrap_or_default();
        assert_eq!(limits, MaxLimits { per_second: 10, per_chat_per_second: 2 });
        let on = Limiter::new(&limits);
        assert!(on.global.is_some() && on.chat.is_some());
        assert!(serde_json::from_value::<MaxConfig>(json!({"token": "t", "limits": {"rps": 1}})).is_err());
    }

    #[test]
    fn max_errors_are_classified() {
        assert_eq!(
            classify(max(429, "too.many.requests", "Too many requests")),
            SendError::Retry { reason: "Too many requests".into(), after: Some(RATE_WAIT) }
        );
        assert!(matches!(
            classify(max(403, "chat.denied", "error.dialog.suspended")),
            SendError::Permanent { flag: Some(IdentityFlag::Blocked), .. }
        ));
        assert!(matches!(
            classify(max(404, "chat.not.found", "Chat 5 not found")),
            SendError::Permanent { flag: None, reason } if reason.contains("Chat 5 not found")
        ));
        assert!(matches!(classify(max(503, "service.unavailable", "x")), SendError::Retry { .. }));
        assert!(matches!(classify(max(400, "attachment.not.ready", "x")), SendError::Retry { .. }));
        assert!(matches!(classify(ApiError::Network("reset".into())), SendError::Retry { .. }));
    }

    #[test]
    fn people_are_written_to_by_user_id_and_groups_by_chat_id() {
        assert_eq!(recipient("42").ok(), Some(("user_id", "42".to_string())));
        assert_eq!(recipient("-7080").ok(), Some(("chat_id", "-7080".to_string())));
        assert!(recipient("@name").is_err());
    }

    fn file(name: &str) -> Attachment {
        Attachment {
            id: name.into(),
            name: name.into(),
            mime: "application/pdf".into(),
            size: 1,
            url: String::new(),
            sha256: String::new(),
            state: "ready".into(),
            note: None,
            source_url: None,
            message_id: None,
        }
    }

    #[test]
    fn a_message_goes_as_files_one_by_one_with_the_text_on_the_last() {
        let files = [file("a.pdf"), file("b.pdf")];
        let plan = steps(&files, "Счета");
        assert_eq!(plan.len(), 2);
        assert!(plan[0].reply && !plan[0].keyboard && plan[0].text.is_none());
        assert!(plan[1].keyboard && plan[1].text.as_deref() == Some("Счета"));
        let long = "слово ".repeat(1000);
        let plan = steps(&[], long.trim_end());
        assert_eq!(plan.len(), 2);
        assert!(plan[0].reply && !plan[0].keyboard && plan[1].keyboard && !plan[1].reply);
    }
}
