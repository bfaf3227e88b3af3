//! Sending to OK: `POST /graph/me/messages/{chat_id}` with the text split under the limit,
//! files uploaded through `GET /graph/me/fileUploadUrl` (at most 5 attachments a message),
//! an inline keyboard as an `INLINE_KEYBOARD` attachment (long button data kept by okno behind
//! a short token), replies by `reply_to`, press answers through `POST /graph/{chat_id}/answer`
//! — with every error classified.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::files::FileStore;
use okno_channel::{Adapter, ChannelState, DeliveryTarget, IdentityFlag, PressAnswer, SendError, Sent};
use okno_domain::model::{Attachment, ChannelKind, Keyboard};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{codes, ApiError, GraphApi, DEFAULT_API_BASE};
use crate::inbound::{split_press_id, TOKEN_PREFIX};

/// Longest text okno sends in one message, in characters. OK publishes no limit; this is the
/// limit of the messaging platform OK's bot API shares its design with (TamTam, 4000), kept
/// so that no message is cut by OK.
pub const TEXT_LIMIT: usize = 4000;
/// At most 5 attachments in a message (graph.chat.messages).
pub const MAX_ATTACHMENTS: usize = 5;
/// Longest button payload okno sends as it is; longer data goes behind a token.
pub const PAYLOAD_LIMIT: usize = 64;
/// How often a "too many calls" is waited out in place before the send is rescheduled.
const FLOOD_WAITS: u32 = 3;
/// What answers a press when okno has nothing to say: OK's answer must be a message.
pub const SILENT_ANSWER: &str = "✓";

/// The channel's configuration (`config` of `POST /api/v1/channels`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OkConfig {
    /// The group's API key (group settings → Messages → «Работа с API»).
    pub token: String,
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The secret okno put in the webhook's address (kept here, never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Rate limits (advanced): okno's steady pace when absent; a limit left out of it is off,
    /// so `{}` turns pacing off (for a simulator without limits, as in the benchmark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<okno_channel::throttle::Limits>,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_string()
}

/// One group's bot, sending.
pub struct OkAdapter {
    api: GraphApi,
    state: Arc<dyn ChannelState>,
    files: FileStore,
    http: okno_channel::http::SafeClient,
}

/// Maps a Graph API error onto what the delivery engine should do.
pub fn classify(e: ApiError) -> SendError {
    match e {
        ApiError::Network(reason) => SendError::retry(reason),
        ApiError::Status { status: 429, body, retry_after } => SendError::Retry {
            reason: format!("OK asked to slow down (HTTP 429): {body}"),
            after: Some(retry_after.unwrap_or(Duration::from_secs(1)).max(Duration::from_secs(1))),
        },
        ApiError::Status { status, body, .. } if status >= 500 => SendError::retry(format!("OK HTTP {status}: {body}")),
        ApiError::Status { status, body, .. } => SendError::permanent(format!("OK refused with HTTP {status}: {body}")),
        ApiError::Ok { code: codes::FLOOD_BLOCKED, message } => {
            SendError::Retry { reason: message, after: Some(Duration::from_secs(30)) }
        }
        ApiError::Ok { code: codes::UNKNOWN | codes::SERVICE, message } => SendError::retry(message),
        ApiError::Ok { code: codes::PERMISSION_DENIED, message } => {
            SendError::Permanent { reason: message, flag: Some(IdentityFlag::Blocked) }
        }
        ApiError::Ok { code, message } if codes::TOKEN.contains(&code) => {
            SendError::permanent(format!("the group's token was refused ({message}); check the channel's token"))
        }
        ApiError::Ok { message, .. } => SendError::permanent(message),
    }
}

/// Splits `text` into parts of at most `limit` characters, cutting after a blank line, then a
/// line break, then a space; a single over-long word is cut hard. Parts keep their order;
/// nothing is dropped except the separators at the cuts.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > limit {
        let end = rest.char_indices().nth(limit).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..end];
        let cut =
            ["\n\n", "\n", " "].iter().find_map(|sep| window.rfind(sep).filter(|&at| at > 0).map(|at| (at, sep.len())));
        let (head, skip) = match cut {
            Some((at, len)) => (&rest[..at], len),
            None => (window, 0),
        };
        parts.push(head.to_string());
        rest = &rest[head.len() + skip..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_string());
    }
    parts
}

/// One message of a delivery.
#[derive(Debug)]
struct Step<'a> {
    text: Option<String>,
    files: Vec<&'a Attachment>,
    keyboard: bool,
    reply: bool,
}

/// The messages that deliver one stored message, in order: its files in groups within the
/// attachment limit, then its text split under the limit. The keyboard rides on the last
/// message (taking one attachment's place), the reply on the first.
fn steps<'a>(attachments: &'a [Attachment], text: &str, keyboard: bool) -> Vec<Step<'a>> {
    let files: Vec<&Attachment> = attachments.iter().filter(|a| a.state == "ready").collect();
    let parts: Vec<String> = if text.is_empty() && !files.is_empty() { Vec::new() } else { split(text, TEXT_LIMIT) };
    let per = if keyboard && parts.is_empty() { MAX_ATTACHMENTS - 1 } else { MAX_ATTACHMENTS };
    let mut out: Vec<Step> =
        files.chunks(per).map(|c| Step { text: None, files: c.to_vec(), keyboard: false, reply: false }).collect();
    out.extend(parts.into_iter().map(|p| Step { text: Some(p), files: Vec::new(), keyboard: false, reply: false }));
    if let Some(last) = out.last_mut() {
        last.keyboard = keyboard;
    }
    if let Some(first) = out.first_mut() {
        first.reply = true;
    }
    out
}

/// Where a message's options record how many of its parts are already delivered.
const PROGRESS: &str = "sent_parts";

impl OkAdapter {
    pub fn new(
        api: GraphApi,
        state: Arc<dyn ChannelState>,
        files: FileStore,
        http: okno_channel::http::SafeClient,
    ) -> Self {
        OkAdapter { api, state, files, http }
    }

    /// A POST; "too many calls" is waited out in place a few times so a long text split in parts
    /// never sends a part twice.
    async fn post(&self, path: &str, query: &[(&str, &str)], body: &Value) -> Result<Value, SendError> {
        let mut waits = 0;
        loop {
            match self.api.post(path, query, body).await {
                Err(ApiError::Ok { code: codes::FLOOD_BLOCKED, .. }) if waits < FLOOD_WAITS => {
                    waits += 1;
                    tokio::time::sleep(Duration::from_secs(u64::from(waits))).await;
                }
                Err(ApiError::Status { status: 429, retry_after, .. })
                    if waits < FLOOD_WAITS && retry_after.is_none_or(|d| d <= Duration::from_secs(10)) =>
                {
                    waits += 1;
                    tokio::time::sleep(retry_after.unwrap_or(Duration::from_secs(1)).max(Duration::from_secs(1))).await;
                }
                other => return other.map_err(classify),
            }
        }
    }

    /// A button's payload: the data itself when it is short, else a token standing for it.
    async fn payload(&self, data: &str) -> Result<String, SendError> {
        okno_channel::button_payload(self.state.as_ref(), data, data.len() <= PAYLOAD_LIMIT, TOKEN_PREFIX).await
    }

    /// An `INLINE_KEYBOARD` attachment: `CALLBACK` buttons with a payload, `LINK` buttons.
    async fn keyboard(&self, rows: &Keyboard) -> Result<Value, SendError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut buttons = Vec::with_capacity(row.len());
            for b in row {
                buttons.push(match (&b.url, &b.data) {
                    (Some(url), _) => json!({"type": "LINK", "text": b.text, "url": url}),
                    (None, Some(data)) => {
                        json!({"type": "CALLBACK", "text": b.text, "intent": "DEFAULT", "payload": self.payload(data).await?})
                    }
                    (None, None) => {
                        return Err(SendError::permanent(format!("button `{}` has neither data nor url", b.text)))
                    }
                });
            }
            out.push(Value::Array(buttons));
        }
        Ok(json!({"type": "INLINE_KEYBOARD", "payload": {"keyboard": {"buttons": out}}}))
    }

    /// Uploads one file: an upload address and its token from OK, then the bytes as the
    /// multipart field `file`. Returns the attachment to send.
    async fn upload(&self, att: &Attachment) -> Result<Value, SendError> {
        let kind = match att.mime.as_str() {
            m if m.starts_with("image/") => "IMAGE",
            m if m.starts_with("video/") => "VIDEO",
            m if m.starts_with("audio/") => "AUDIO",
            _ => "FILE",
        };
        let slot = self.api.get("me/fileUploadUrl", &[("type", kind)]).await.map_err(classify)?;
        let url = slot["url"].as_str().ok_or_else(|| SendError::retry("OK gave no upload address"))?;
        let data = self
            .files
            .read(&att.sha256)
            .await
            .map_err(|e| SendError::permanent(format!("attachment `{}` is not in the store: {e}", att.name)))?;
        let part = reqwest::multipart::Part::bytes(data.to_vec())
            .file_name(att.name.clone())
            .mime_str(&att.mime)
            .map_err(|e| SendError::permanent(format!("bad MIME type `{}`: {e}", att.mime)))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let resp = self
            .http
            .post(url)
            .map_err(|e| SendError::permanent(format!("OK's upload address: {}", e.message)))?
            .multipart(form)
            .send()
            .await
            .map_err(|e| SendError::retry(format!("uploading `{}`: {}", att.name, okno_channel::http::describe(&e))))?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_server_error() {
            return Err(SendError::retry(format!("uploading `{}`: HTTP {status}", att.name)));
        }
        if !status.is_success() {
            return Err(SendError::permanent(format!("OK refused the file `{}`: HTTP {status}", att.name)));
        }
        let token = slot["token"]
            .as_str()
            .or(answer["token"].as_str())
            .ok_or_else(|| SendError::retry(format!("OK gave no token for `{}`", att.name)))?;
        Ok(json!({"type": kind, "payload": {"token": token}}))
    }

    async fn send_step(
        &self,
        chat: &str,
        step: &Step<'_>,
        keyboard: Option<&Value>,
        reply: Option<&str>,
    ) -> Result<Option<String>, SendError> {
        let mut attachments = Vec::with_capacity(step.files.len() + 1);
        for att in &step.files {
            attachments.push(self.upload(att).await?);
        }
        if let Some(k) = keyboard {
            attachments.push(k.clone());
        }
        let mut message = json!({});
        if let Some(t) = &step.text {
            message["text"] = json!(t);
        }
        if !attachments.is_empty() {
            message["attachments"] = Value::Array(attachments);
        }
        if let Some(r) = reply {
            message["reply_to"] = json!(r);
        }
        let body = json!({"recipient": {"chat_id": chat}, "message": message});
        let answer = self.post(&format!("me/messages/{chat}"), &[], &body).await?;
        Ok(answer["message_id"].as_str().or(answer["mid"].as_str()).map(str::to_string))
    }
}

#[async_trait]
impl Adapter for OkAdapter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Ok
    }

    async fn send(&self, t: &DeliveryTarget) -> Result<Sent, SendError> {
        let chat = t.identity.chat_id.as_str();
        if !chat.starts_with("chat:") {
            return Err(SendError::permanent(format!("`{chat}` is not an OK chat id (chat:…)")));
        }
        let keyboard = if t.message.buttons.is_empty() { None } else { Some(self.keyboard(&t.message.buttons).await?) };
        let text = t.message.text.clone().unwrap_or_default();
        let steps = steps(&t.message.attachments, &text, keyboard.is_some());
        // A retry after a failure part-way resumes after the parts already delivered.
        let done = t.options.get(PROGRESS).and_then(Value::as_u64).unwrap_or(0) as usize;
        let total = steps.len();
        let mut last = None;
        for (i, step) in steps.iter().enumerate().skip(done) {
            let kb = if step.keyboard { keyboard.as_ref() } else { None };
            let reply = if step.reply { t.reply_to_external.as_deref() } else { None };
            last = match self.send_step(chat, step, kb, reply).await {
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
        Ok(Sent { external_id: last })
    }

    /// `POST /graph/{chat_id}/answer?callbackId=`: OK's answer to a press is a message in the
    /// chat, so a press answered without words gets a short mark.
    async fn answer_press(&self, press_id: &str, answer: &PressAnswer) -> Result<(), SendError> {
        let Some((chat, callback)) = split_press_id(press_id) else {
            return Err(SendError::permanent(format!("`{press_id}` is not an OK press")));
        };
        let text = match (&answer.text, &answer.url) {
            (Some(t), Some(u)) => format!("{t}\n{u}"),
            (Some(t), None) => t.clone(),
            (None, Some(u)) => u.clone(),
            (None, None) => SILENT_ANSWER.to_string(),
        };
        let body = json!({"message": {"text": split(&text, TEXT_LIMIT).remove(0)}});
        self.post(&format!("{chat}/answer"), &[("callbackId", callback)], &body).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_errors_are_classified() {
        let ok = |code, m: &str| ApiError::Ok { code, message: m.into() };
        assert!(matches!(
            classify(ok(10, "PERMISSION_DENIED")),
            SendError::Permanent { flag: Some(IdentityFlag::Blocked), .. }
        ));
        assert!(matches!(classify(ok(8, "FLOOD_BLOCKED")), SendError::Retry { after: Some(_), .. }));
        assert!(matches!(classify(ok(2, "SERVICE")), SendError::Retry { .. }));
        assert_eq!(classify(ok(300, "NOT_FOUND : chat not found")), SendError::permanent("NOT_FOUND : chat not found"));
        assert!(
            matches!(classify(ok(102, "PARAM_SESSION_EXPIRED")), SendError::Permanent { flag: None, reason } if reason.contains("token"))
        );
        let status = |status| ApiError::Status { status, body: "x".into(), retry_after: None };
        assert!(matches!(classify(status(502)), SendError::Retry { .. }));
        assert!(
            matches!(classify(status(429)), SendError::Retry { after: Some(d), .. } if d >= Duration::from_secs(1))
        );
        assert!(matches!(classify(status(403)), SendError::Permanent { .. }));
        assert!(matches!(classify(ApiError::Network("reset".into())), SendError::Retry { .. }));
    }

    #[test]
    fn long_texts_split_whole_and_in_order() {
        let text = format!("{}\n\n{} {}", "а".repeat(3990), "б".repeat(30), "в".repeat(4100));
        let parts = split(&text, TEXT_LIMIT);
        assert!(parts.iter().all(|p| p.chars().count() <= TEXT_LIMIT));
        assert_eq!(parts[0], "а".repeat(3990));
        assert_eq!(parts.concat().chars().filter(|c| !c.is_whitespace()).count(), 3990 + 30 + 4100);
        assert_eq!(split("", 10), vec![String::new()]);
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
    fn files_go_five_a_message_then_the_text_with_the_keyboard_last_and_the_reply_first() {
        let files: Vec<Attachment> = (0..7).map(|n| file(&format!("{n}.pdf"))).collect();
        let plan = steps(&files, "Счета", true);
        assert_eq!(plan.iter().map(|s| s.files.len()).collect::<Vec<_>>(), vec![5, 2, 0]);
        assert!(plan[0].reply && !plan[1].reply && !plan[2].reply);
        assert!(plan[2].keyboard && plan[2].text.as_deref() == Some("Счета"));
        let plan = steps(&files[..5], "", true);
        assert_eq!(plan.iter().map(|s| s.files.len()).collect::<Vec<_>>(), vec![4, 1], "a keyboard takes a place");
        assert!(plan[1].keyboard);
    }
}
