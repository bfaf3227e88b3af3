//! Sending to Telegram: text as escaped HTML split under the length limit, inline and reply
//! keyboards (long callback data kept server-side behind a short token), photos and
//! documents uploaded from the attachment store, replies, edits — paced by Telegram's limits
//! and with every error classified.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use okno_channel::{ChannelState, DeliveryTarget, IdentityFlag};
use okno_domain::model::{Attachment, ChannelKind, Keyboard};
use reqwest::multipart::{Form, Part};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{ApiError, BotApi, SentMessage, DEFAULT_API_BASE};
use crate::format::{escape_html, render_spans, split, utf16_len, CAPTION_LIMIT, TEXT_LIMIT};
use okno_channel::files::FileStore;
use okno_channel::{Adapter, Post, Posted, PressAnswer, SendError, Sent};

/// Largest photo Telegram takes as a photo; larger images go as documents.
const PHOTO_LIMIT: i64 = 10 * 1024 * 1024;
/// Longest `callback_data`, in bytes.
const CALLBACK_DATA_LIMIT: usize = 64;
/// A 429 asking to wait at most this long is waited out in place (so a long text split in
/// parts never sends a part twice); longer waits reschedule the job.
const INLINE_WAIT_LIMIT: u64 = 10;

/// The channel's configuration (`config` of `POST /api/v1/channels`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    pub token: String,
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// `polling` (default) or `webhook`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// The bot's command menu, set with `setMyCommands`: `[{"command": "start", "description": "…"}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Value>,
    /// Rate limits; Telegram's documented defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<TelegramLimits>,
    /// The webhook secret okno generated (kept here, never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_string()
}

fn default_mode() -> String {
    "polling".to_string()
}

/// Telegram's limits ("My bot is hitting limits"); `0` turns one off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramLimits {
    pub per_second: u32,
    pub per_chat_per_second: u32,
    pub per_chat_burst: u32,
    pub per_group_per_minute: u32,
}

impl Default for TelegramLimits {
    fn default() -> Self {
        Self { per_second: 30, per_chat_per_second: 1, per_chat_burst: 3, per_group_per_minute: 20 }
    }
}

/// Token buckets for one bot: overall, per private chat, per group.
pub struct Limiter {
    global: Option<DefaultDirectRateLimiter>,
    private: Option<DefaultKeyedRateLimiter<i64>>,
    group: Option<DefaultKeyedRateLimiter<i64>>,
}

/// Stay this much under the overall limit: Telegram measures from when a request arrives, okno
/// from when it leaves, and the two drift apart by network jitter.
const MARGIN: f64 = 1.05;
/// Per chat the gaps are long (a second), so one late first request can eat a small margin;
/// Telegram's own figure there is only "about one per second".
const CHAT_MARGIN: f64 = 1.25;

/// One message every `per / n`, stretched by `margin`, with a burst.
fn quota(n: u32, per: Duration, burst: NonZeroU32, margin: f64) -> Option<Quota> {
    if n == 0 {
        return None;
    }
    Quota::with_period(per.mul_f64(margin / f64::from(n))).map(|q| q.allow_burst(burst))
}

impl Limiter {
    pub fn new(l: &TelegramLimits) -> Self {
        let burst = NonZeroU32::new(l.per_chat_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let (second, minute) = (Duration::from_secs(1), Duration::from_secs(60));
        Self {
            global: quota(l.per_second, second, NonZeroU32::MIN, MARGIN).map(governor::RateLimiter::direct),
            private: quota(l.per_chat_per_second, second, burst, CHAT_MARGIN).map(governor::RateLimiter::keyed),
            group: quota(l.per_group_per_minute, minute, NonZeroU32::MIN, MARGIN).map(governor::RateLimiter::keyed),
        }
    }

    /// Waits until one more message to `chat` is within every limit.
    pub async fn ready(&self, chat: i64) {
        let keyed = if chat < 0 { &self.group } else { &self.private };
        if let Some(k) = keyed {
            k.until_key_ready(&chat).await;
        }
        if let Some(g) = &self.global {
            g.until_ready().await;
        }
    }
}

/// One bot, sending.
pub struct TelegramAdapter {
    api: BotApi,
    state: Arc<dyn ChannelState>,
    files: FileStore,
    limiter: Limiter,
    /// The channel sets its own command menu: a bot's commands do not replace it.
    own_commands: bool,
}

impl TelegramAdapter {
    pub fn new(api: BotApi, config: &TelegramConfig, state: Arc<dyn ChannelState>, files: FileStore) -> Self {
        let limiter = Limiter::new(&config.limits.clone().unwrap_or_default());
        Self { api, state, files, limiter, own_commands: !config.commands.is_empty() }
    }

    pub fn api(&self) -> &BotApi {
        &self.api
    }

    /// One API call, paced by the chat's budget when `pace` names it (the outbox's sends; a
    /// post answers someone waiting — an API call, a press — and goes at once). A short 429 is
    /// waited out and the call repeated.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        pace: Option<i64>,
        method: &str,
        body: Body,
    ) -> Result<T, SendError> {
        let mut waits = 0;
        loop {
            if let Some(chat) = pace {
                self.limiter.ready(chat).await;
            }
            let result = match &body {
                Body::Json(v) => self.api.call(method, v.clone(), None).await,
                Body::Form(make) => self.api.call_multipart(method, make()?).await,
            };
            match result {
                Err(ApiError::Telegram { code: 429, retry_after: Some(s), .. })
                    if s <= INLINE_WAIT_LIMIT && waits < 3 =>
                {
                    waits += 1;
                    tokio::time::sleep(Duration::from_secs(s.max(1))).await;
                }
                other => return other.map_err(classify),
            }
        }
    }

    /// `callback_data` for a button: the data itself when it fits in 64 bytes, else a short
    /// token that stands for it in the store.
    async fn callback_data(&self, data: &str) -> Result<String, SendError> {
        okno_channel::button_payload(self.state.as_ref(), data, data.len() <= CALLBACK_DATA_LIMIT, TOKEN_PREFIX).await
    }

    async fn inline_keyboard(&self, rows: &Keyboard) -> Result<Value, SendError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut buttons = Vec::with_capacity(row.len());
            for b in row {
                buttons.push(match (&b.url, &b.data) {
                    (Some(url), _) => json!({"text": b.text, "url": url}),
                    (None, Some(data)) => json!({"text": b.text, "callback_data": self.callback_data(data).await?}),
                    (None, None) => {
                        return Err(SendError::permanent(format!("button `{}` has neither data nor url", b.text)))
                    }
                });
            }
            out.push(Value::Array(buttons));
        }
        Ok(json!({"inline_keyboard": out}))
    }

    /// The keyboard to attach: inline buttons, or a reply keyboard / its removal from the
    /// message's options.
    async fn markup(&self, t: &DeliveryTarget) -> Result<Option<Value>, SendError> {
        if !t.message.buttons.is_empty() {
            return Ok(Some(self.inline_keyboard(&t.message.buttons).await?));
        }
        let opts = &t.options;
        if let Some(rows) = opts.get("reply_keyboard").and_then(Value::as_array) {
            let keyboard: Vec<Value> = rows
                .iter()
                .map(|r| {
                    Value::Array(
                        r.as_array()
                            .into_iter()
                            .flatten()
                            .map(|b| json!({"text": b.as_str().unwrap_or_default()}))
                            .collect(),
                    )
                })
                .collect();
            let one_time = opts.get("one_time_keyboard").and_then(Value::as_bool).unwrap_or(false);
            return Ok(Some(json!({"keyboard": keyboard, "resize_keyboard": true, "one_time_keyboard": one_time})));
        }
        if opts.get("remove_keyboard").and_then(Value::as_bool) == Some(true) {
            return Ok(Some(json!({"remove_keyboard": true})));
        }
        Ok(None)
    }

    async fn send_text(
        &self,
        chat: i64,
        part: &str,
        markup: Option<Value>,
        reply_to: Option<i64>,
    ) -> Result<i64, SendError> {
        let mut params = json!({"chat_id": chat, "text": escape_html(part), "parse_mode": "HTML"});
        if let Some(m) = markup {
            params["reply_markup"] = m;
        }
        if let Some(r) = reply_to {
            params["reply_parameters"] = json!({"message_id": r, "allow_sending_without_reply": true});
        }
        let sent: SentMessage = self.call(Some(chat), "sendMessage", Body::Json(params)).await?;
        Ok(sent.message_id)
    }

    async fn send_file(
        &self,
        chat: i64,
        att: &Attachment,
        caption: Option<&str>,
        markup: Option<&Value>,
        reply_to: Option<i64>,
    ) -> Result<i64, SendError> {
        let as_photo =
            matches!(att.mime.as_str(), "image/jpeg" | "image/png" | "image/webp") && att.size <= PHOTO_LIMIT;
        let (method, field, action) = if as_photo {
            ("sendPhoto", "photo", "upload_photo")
        } else {
            ("sendDocument", "document", "upload_document")
        };
        let _ = self.chat_action(&chat.to_string(), action).await;
        let data = self
            .files
            .read(&att.sha256)
            .await
            .map_err(|e| SendError::permanent(format!("attachment `{}` is not in the store: {e}", att.name)))?;
        let (name, mime) = (att.name.clone(), att.mime.clone());
        let caption = caption.map(escape_html);
        let markup = markup.map(Value::to_string);
        let reply = reply_to.map(|r| json!({"message_id": r, "allow_sending_without_reply": true}).to_string());
        let make = move || -> Result<Form, SendError> {
            let part = Part::bytes(data.to_vec())
                .file_name(name.clone())
                .mime_str(&mime)
                .map_err(|e| SendError::permanent(format!("bad MIME type `{mime}`: {e}")))?;
            let mut form = Form::new().text("chat_id", chat.to_string()).part(field, part);
            if let Some(c) = &caption {
                form = form.text("caption", c.clone()).text("parse_mode", "HTML");
            }
            if let Some(m) = &markup {
                form = form.text("reply_markup", m.clone());
            }
            if let Some(r) = &reply {
                form = form.text("reply_parameters", r.clone());
            }
            Ok(form)
        };
        let sent: SentMessage = self.call(Some(chat), method, Body::Form(Box::new(make))).await?;
        Ok(sent.message_id)
    }
}

/// Where a message's options record how many of its parts are already delivered.
const PROGRESS: &str = "sent_parts";

/// One API call of a message.
enum Step<'a> {
    File { att: &'a Attachment, caption: Option<String>, markup: Option<Value>, reply: Option<i64> },
    Text { part: String, markup: Option<Value>, reply: Option<i64> },
}

/// The calls that deliver a message, in order: files first (a text that fits becomes the last
/// file's caption), then the text split under the limit; the keyboard rides on the last call,
/// the reply on the first.
fn steps<'a>(attachments: &'a [Attachment], text: &str, markup: Option<Value>, reply: Option<i64>) -> Vec<Step<'a>> {
    let files: Vec<&Attachment> = attachments.iter().filter(|a| a.state == "ready").collect();
    let as_caption = !files.is_empty() && !text.is_empty() && utf16_len(text) <= CAPTION_LIMIT;
    let parts: Vec<String> =
        if as_caption || (text.is_empty() && !files.is_empty()) { Vec::new() } else { split(text, TEXT_LIMIT) };
    let total = files.len() + parts.len();
    let mut out = Vec::with_capacity(total);
    for (i, att) in files.into_iter().enumerate() {
        let last = out.len() + 1 == total;
        let caption = (last && as_caption).then(|| text.to_string());
        out.push(Step::File {
            att,
            caption,
            markup: if last { markup.clone() } else { None },
            reply: if i == 0 { reply } else { None },
        });
    }
    for part in parts {
        let (first, last) = (out.is_empty(), out.len() + 1 == total);
        out.push(Step::Text {
            part,
            markup: if last { markup.clone() } else { None },
            reply: if first { reply } else { None },
        });
    }
    out
}

/// Prefix of a callback token standing for data longer than Telegram allows.
pub const TOKEN_PREFIX: &str = "okno:";

enum Body {
    Json(Value),
    /// Multipart forms cannot be cloned, so a retry builds a new one.
    Form(Box<dyn Fn() -> Result<Form, SendError> + Send + Sync>),
}

/// A post's message id as Telegram takes it.
fn post_message(at: &Posted) -> Result<i64, SendError> {
    at.message_id.parse().map_err(|_| SendError::permanent(format!("`{}` is not a Telegram message id", at.message_id)))
}

/// Edits that change nothing are refused with this; for okno they are done.
fn unchanged(reason: &str) -> bool {
    reason.contains("message is not modified")
}

fn message_in(external: &str, chat: i64) -> Option<i64> {
    let (c, m) = external.split_once(':')?;
    (c.parse::<i64>().ok()? == chat).then(|| m.parse().ok()).flatten()
}

/// Maps a Bot API error onto what the delivery engine should do.
pub fn classify(e: ApiError) -> SendError {
    match e {
        ApiError::Network(reason) => SendError::retry(reason),
        ApiError::Telegram { code: 429, description, retry_after, .. } => {
            SendError::Retry { reason: description, after: Some(Duration::from_secs(retry_after.unwrap_or(1).max(1))) }
        }
        ApiError::Telegram { migrate_to_chat_id: Some(to), .. } => SendError::Moved { chat_id: to.to_string() },
        ApiError::Telegram { code: 403, description, .. } => {
            SendError::Permanent { reason: description, flag: Some(IdentityFlag::Blocked) }
        }
        ApiError::Telegram { code: 401 | 404, description, .. } => {
            SendError::permanent(format!("the bot token was rejected ({description}); check the channel's token"))
        }
        ApiError::Telegram { code, description, .. } if code >= 500 => SendError::retry(description),
        ApiError::Telegram { description, .. } => SendError::permanent(description),
    }
}

#[async_trait]
impl Adapter for TelegramAdapter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Telegram
    }

    async fn send(&self, t: &DeliveryTarget) -> Result<Sent, SendError> {
        let chat: i64 = t
            .identity
            .chat_id
            .parse()
            .map_err(|_| SendError::permanent(format!("`{}` is not a Telegram chat id", t.identity.chat_id)))?;
        let reply_to = t.reply_to_external.as_deref().and_then(|e| message_in(e, chat));
        let markup = self.markup(t).await?;
        let text = t.message.text.clone().unwrap_or_default();
        let steps = steps(&t.message.attachments, &text, markup, reply_to);
        // A retry after a failure part-way resumes after the parts already delivered.
        let done = t.options.get(PROGRESS).and_then(Value::as_u64).unwrap_or(0) as usize;
        let total = steps.len();
        let mut last = 0;
        for (i, step) in steps.into_iter().enumerate().skip(done) {
            let sent = match step {
                Step::File { att, caption, markup, reply } => {
                    self.send_file(chat, att, caption.as_deref(), markup.as_ref(), reply).await
                }
                Step::Text { part, markup, reply } => self.send_text(chat, &part, markup, reply).await,
            };
            last = match sent {
                Ok(id) => id,
                Err(SendError::Permanent { reason, flag }) if i > 0 => {
                    return Err(SendError::Permanent {
                        reason: format!("{reason} (after {i} of {total} parts were delivered)"),
                        flag,
                    })
                }
                Err(e) => return Err(e),
            };
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
        Ok(Sent { external_id: Some(format!("{chat}:{last}")) })
    }

    async fn edit_buttons(&self, t: &DeliveryTarget, buttons: &Keyboard) -> Result<(), SendError> {
        let Some((chat, message_id)) = t.message.external_id.as_deref().and_then(|e| {
            let (c, m) = e.split_once(':')?;
            Some((c.parse::<i64>().ok()?, m.parse::<i64>().ok()?))
        }) else {
            return Err(SendError::permanent("the message has not been sent yet"));
        };
        let markup =
            if buttons.is_empty() { json!({"inline_keyboard": []}) } else { self.inline_keyboard(buttons).await? };
        let params = json!({"chat_id": chat, "message_id": message_id, "reply_markup": markup});
        match self.call::<Value>(Some(chat), "editMessageReplyMarkup", Body::Json(params)).await {
            Err(SendError::Permanent { reason, .. }) if unchanged(&reason) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn chat_action(&self, chat_id: &str, action: &str) -> Result<(), SendError> {
        let params = json!({"chat_id": chat_id, "action": action});
        self.api.call::<Value>("sendChatAction", params, None).await.map(|_| ()).map_err(classify)
    }

    async fn set_commands(&self, commands: &[(String, String)]) -> Result<(), SendError> {
        if self.own_commands {
            return Ok(());
        }
        let commands: Vec<Value> =
            commands.iter().map(|(c, d)| json!({"command": c.trim_start_matches('/'), "description": d})).collect();
        self.api.call::<Value>("setMyCommands", json!({"commands": commands}), None).await.map(|_| ()).map_err(classify)
    }

    async fn answer_press(&self, press_id: &str, answer: &PressAnswer) -> Result<(), SendError> {
        let mut params = json!({"callback_query_id": press_id});
        if let Some(text) = &answer.text {
            // answerCallbackQuery shows at most 200 characters.
            params["text"] = json!(text.chars().take(200).collect::<String>());
        }
        if answer.alert {
            params["show_alert"] = json!(true);
        }
        if let Some(url) = &answer.url {
            params["url"] = json!(url);
        }
        self.api
            .call::<Value>("answerCallbackQuery", params, Some(Duration::from_secs(5)))
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn post(&self, post: &Post) -> Result<Posted, SendError> {
        let mut params = json!({"chat_id": post.chat_id, "text": render_spans(&post.text), "parse_mode": "HTML"});
        if !post.buttons.is_empty() {
            params["reply_markup"] = self.inline_keyboard(&post.buttons).await?;
        }
        if let Some(r) = post.reply_to.as_deref().and_then(|r| r.parse::<i64>().ok()) {
            params["reply_parameters"] = json!({"message_id": r, "allow_sending_without_reply": true});
        }
        let sent: SentMessage = self.call(None, "sendMessage", Body::Json(params)).await?;
        Ok(Posted { chat_id: sent.chat.id.to_string(), message_id: sent.message_id.to_string() })
    }

    async fn edit_post(&self, at: &Posted, post: &Post) -> Result<(), SendError> {
        let mut params = json!({"chat_id": at.chat_id, "message_id": post_message(at)?,
                                "text": render_spans(&post.text), "parse_mode": "HTML"});
        if !post.buttons.is_empty() {
            params["reply_markup"] = self.inline_keyboard(&post.buttons).await?;
        }
        match self.call::<Value>(None, "editMessageText", Body::Json(params)).await {
            Err(SendError::Permanent { reason, .. }) if unchanged(&reason) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn clear_buttons(&self, at: &Posted) -> Result<(), SendError> {
        let params = json!({"chat_id": at.chat_id, "message_id": post_message(at)?});
        match self.call::<Value>(None, "editMessageReplyMarkup", Body::Json(params)).await {
            Err(SendError::Permanent { reason, .. }) if unchanged(&reason) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Telegram messages are known as `<chat>:<message>`.
    fn posted(&self, external_id: &str) -> Option<Posted> {
        let (chat, message) = external_id.split_once(':')?;
        Some(Posted { chat_id: chat.to_string(), message_id: message.to_string() })
    }

    async fn delete_post(&self, at: &Posted) -> Result<(), SendError> {
        let params = json!({"chat_id": at.chat_id, "message_id": post_message(at)?});
        self.call::<Value>(None, "deleteMessage", Body::Json(params)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegram_errors_are_classified() {
        let tg = |code, d: &str, retry_after, migrate| ApiError::Telegram {
            code,
            description: d.into(),
            retry_after,
            migrate_to_chat_id: migrate,
        };
        assert_eq!(
            classify(tg(429, "Too Many Requests: retry after 5", Some(5), None)),
            SendError::Retry { reason: "Too Many Requests: retry after 5".into(), after: Some(Duration::from_secs(5)) }
        );
        assert!(matches!(
            classify(tg(403, "Forbidden: bot was blocked by the user", None, None)),
            SendError::Permanent { flag: Some(IdentityFlag::Blocked), .. }
        ));
        assert_eq!(
            classify(tg(400, "Bad Request: group chat was upgraded", None, Some(-100123))),
            SendError::Moved { chat_id: "-100123".into() }
        );
        assert_eq!(
            classify(tg(400, "Bad Request: chat not found", None, None)),
            SendError::permanent("Bad Request: chat not found")
        );
        assert!(matches!(classify(tg(502, "Bad Gateway", None, None)), SendError::Retry { .. }));
        assert!(matches!(classify(ApiError::Network("reset".into())), SendError::Retry { .. }));
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
    fn a_message_is_planned_as_ordered_calls_with_reply_first_and_keyboard_last() {
        let kb = Some(json!({"inline_keyboard": []}));
        let long = format!("{}\n\n{}", "а".repeat(4090), "б".repeat(10));
        let plan = steps(&[], &long, kb.clone(), Some(7));
        assert_eq!(plan.len(), 2);
        assert!(matches!(&plan[0], Step::Text { reply: Some(7), markup: None, .. }));
        assert!(matches!(&plan[1], Step::Text { reply: None, markup: Some(_), part } if part == &"б".repeat(10)));

        let files = [file("a.pdf"), file("b.pdf")];
        let plan = steps(&files, "Счета", kb.clone(), Some(7));
        assert_eq!(plan.len(), 2, "a short text rides as the last caption");
        assert!(matches!(&plan[0], Step::File { caption: None, reply: Some(7), markup: None, .. }));
        assert!(matches!(&plan[1], Step::File { caption: Some(c), markup: Some(_), .. } if c == "Счета"));

        let plan = steps(&files[..1], &"x".repeat(2000), kb, None);
        assert!(matches!(&plan[0], Step::File { caption: None, markup: None, .. }));
        assert!(
            matches!(&plan[1], Step::Text { markup: Some(_), .. }),
            "a long caption becomes a text, keyboard on it"
        );
    }

    #[test]
    fn replies_only_point_at_messages_in_the_same_chat() {
        assert_eq!(message_in("42:7", 42), Some(7));
        assert_eq!(message_in("43:7", 42), None);
    }
}
