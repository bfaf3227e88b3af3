//! Sending to Avito: into the chat a buyer opened (Avito has no way to write to someone who
//! never wrote; a contact reached on Avito is a chat). Photos are uploaded
//! (`uploadImages`, one per request) and sent by id, each on its own; the text follows, split
//! under 1,000 characters; a menu goes as numbered lines under it (Avito shows no buttons),
//! answered with the number. How far a message got is recorded, so a send retried after a
//! failure does not repeat its first parts. Avito states no rate limits; okno paces a channel
//! at 5 messages a second and 60 a minute per chat unless `limits` says otherwise.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::files::FileStore;
use okno_channel::{Adapter, ChannelState, DeliveryTarget, SendError, Sent};
use okno_domain::model::{Attachment, ChannelKind};
use serde_json::{json, Value};

use crate::api::{ApiError, AvitoApi};

/// Longest text message, in characters (`sendMessageRequestBody`: maxLength 1000).
pub const TEXT_LIMIT: usize = 1000;
/// Largest image Avito takes (`uploadImages`: 24 MB).
pub const IMAGE_LIMIT: u64 = 24 * 1024 * 1024;
/// The image types `uploadImages` takes.
pub const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/bmp", "image/heic", "image/heif"];
/// Where a message's options record how many of its parts are already delivered.
const PROGRESS: &str = "sent_parts";

/// Why a call failed, as the engine acts on it.
pub fn classify(e: ApiError) -> SendError {
    match e {
        ApiError::Network(reason) => SendError::retry(reason),
        ApiError::Credentials(reason) => {
            SendError::permanent(format!("Avito refused the channel's client credentials ({reason}); check them"))
        }
        ApiError::Avito { status, message, retry_after } => match status {
            429 => SendError::Retry {
                reason: format!("Avito asked to slow down: {message}"),
                after: Some(retry_after.unwrap_or(Duration::from_secs(1)).max(Duration::from_secs(1))),
            },
            s if s >= 500 => SendError::retry(format!("Avito failed: HTTP {s}: {message}")),
            401 => SendError::retry(format!("Avito refused a fresh token: {message}")),
            402 => SendError::permanent(format!(
                "HTTP 402: {message} — the account's Avito Pro tariff does not include the Messenger API"
            )),
            s => SendError::permanent(format!("HTTP {s}: {message}")),
        },
    }
}

/// Splits on paragraphs, lines, then words, keeping every character in order.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > limit {
        let end = rest.char_indices().nth(limit).map_or(rest.len(), |(i, _)| i);
        // A separator right after the limit's last character cuts there too.
        let sep_end = rest[end..].chars().next().map_or(end, |c| end + c.len_utf8());
        let window = &rest[..sep_end];
        let at = ["\n\n", "\n", " "]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|&at| at > 0 && at <= end).map(|at| (at, sep.len())));
        let (head, skip) = match at {
            Some((at, len)) => (&rest[..at], len),
            None => (&rest[..end], 0),
        };
        parts.push(head.to_string());
        rest = &rest[head.len() + skip..];
    }
    if !rest.trim().is_empty() {
        parts.push(rest.to_string());
    }
    parts
}

/// One message of a delivery.
#[derive(Debug)]
enum Step<'a> {
    Image(&'a Attachment),
    Text(String),
}

/// The messages that deliver one stored message, in order: its photos, then its text.
fn steps<'a>(attachments: &'a [Attachment], text: &str) -> Result<Vec<Step<'a>>, SendError> {
    let mut out = Vec::new();
    for att in attachments.iter().filter(|a| a.state == "ready") {
        if !IMAGE_TYPES.contains(&att.mime.as_str()) {
            return Err(SendError::permanent(format!(
                "Avito carries photos only (JPEG, PNG, GIF, BMP, HEIC): `{}` is {}",
                att.name, att.mime
            )));
        }
        if att.size as u64 > IMAGE_LIMIT {
            return Err(SendError::permanent(format!("`{}` is larger than Avito's 24 MB", att.name)));
        }
        out.push(Step::Image(att));
    }
    out.extend(split(text, TEXT_LIMIT).into_iter().map(Step::Text));
    Ok(out)
}

/// One Avito account, sending.
pub struct AvitoAdapter {
    api: AvitoApi,
    state: Arc<dyn ChannelState>,
    files: FileStore,
}

impl AvitoAdapter {
    pub fn new(api: AvitoApi, state: Arc<dyn ChannelState>, files: FileStore) -> Self {
        Self { api, state, files }
    }

    async fn send_step(&self, chat: &str, step: &Step<'_>) -> Result<Option<String>, SendError> {
        let answer = match step {
            Step::Text(part) => self.api.send_text(chat, part).await.map_err(classify)?,
            Step::Image(att) => {
                let data =
                    self.files.read(&att.sha256).await.map_err(|e| {
                        SendError::permanent(format!("attachment `{}` is not in the store: {e}", att.name))
                    })?;
                let image = self.api.upload_image(data.to_vec(), &att.name, &att.mime).await.map_err(classify)?;
                self.api.send_image(chat, &image).await.map_err(classify)?
            }
        };
        Ok(answer["id"].as_str().map(str::to_string))
    }
}

#[async_trait]
impl Adapter for AvitoAdapter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Avito
    }

    async fn send(&self, t: &DeliveryTarget) -> Result<Sent, SendError> {
        let chat = t.identity.chat_id.trim();
        if chat.is_empty() {
            return Err(SendError::permanent(
                "the person has no Avito chat: Avito writes only into chats buyers opened",
            ));
        }
        let mut text = t.message.text.clone().unwrap_or_default();
        if !t.message.buttons.is_empty() {
            text = okno_channel::numbered_text(&text, &t.message.buttons);
        }
        let steps = steps(&t.message.attachments, &text)?;
        if steps.is_empty() {
            return Err(SendError::permanent("the message has neither text nor a photo ready to send"));
        }
        let done = t.options.get(PROGRESS).and_then(Value::as_u64).unwrap_or(0) as usize;
        let total = steps.len();
        let mut last = None;
        for (i, step) in steps.iter().enumerate().skip(done) {
            last = match self.send_step(chat, step).await {
                Ok(id) => id.or(last),
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

    /// `POST …/chats/{chat_id}/read`: Avito marks a whole chat read, not one message.
    async fn mark_read(&self, chat_id: &str, _external_id: &str) -> Result<(), SendError> {
        self.api.read(chat_id).await.map(|_| ()).map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avito(status: u16) -> ApiError {
        ApiError::Avito { status, message: "m".into(), retry_after: None }
    }

    #[test]
    fn errors_are_classified_by_status() {
        assert!(matches!(classify(avito(429)), SendError::Retry { after: Some(a), .. } if a >= Duration::from_secs(1)));
        assert!(matches!(classify(avito(500)), SendError::Retry { .. }));
        assert!(matches!(classify(avito(503)), SendError::Retry { .. }));
        assert!(matches!(classify(ApiError::Network("x".into())), SendError::Retry { .. }));
        assert!(matches!(classify(avito(402)), SendError::Permanent { reason, .. } if reason.contains("tariff")));
        for s in [400, 403, 404] {
            assert!(matches!(classify(avito(s)), SendError::Permanent { .. }), "{s}");
        }
        assert!(matches!(classify(ApiError::Credentials("bad".into())), SendError::Permanent { .. }));
    }

    #[test]
    fn a_long_text_is_split_whole_and_in_order_under_the_limit() {
        let long = "слово ".repeat(500);
        let parts = split(long.trim_end(), TEXT_LIMIT);
        assert!(parts.len() >= 3 && parts.iter().all(|p| p.chars().count() <= TEXT_LIMIT));
        assert_eq!(parts.join(" "), long.trim_end());
        assert_eq!(split("", TEXT_LIMIT), Vec::<String>::new());
    }
}
