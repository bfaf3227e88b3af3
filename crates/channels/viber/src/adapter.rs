//! Sending to Viber: `POST {api_base}/send_message` with `receiver`, `sender.name` (≤ 28) and
//! the message. Text is split under 7,000 characters; okno's button menus go as a keyboard
//! (`reply` buttons whose `ActionBody` carries the data, `open-url` buttons for links; more than
//! 24 buttons go as numbered lines); one picture with a short text and a row or two of buttons
//! goes as one rich media card (the picture, the text and the buttons in one bubble, as a
//! product card reads best); pictures and files go by link — Viber has no upload, it
//! downloads the `media` URL, so okno hands it a signed, expiring link to its own copy
//! (`/hooks/{channel_id}/files/{attachment_id}`). Sources: `research/B_messenger_specs.md`
//! §4.4–4.5 and the send-message page of the REST Bot API.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::{Adapter, ChannelState, DeliveryTarget, IdentityFlag, SendError, Sent};
use okno_domain::model::{Attachment, ChannelKind, Keyboard};
use okno_domain::signing;
use okno_domain::time::now_ms;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{ApiError, ViberApi, DEFAULT_API_BASE};
use crate::webhook::{BUTTON_PREFIX, TOKEN_PREFIX};

/// Longest text message, in characters.
pub const TEXT_LIMIT: usize = 7000;
/// Longest picture description, in characters.
pub const CAPTION_LIMIT: usize = 512;
/// Longest sender name.
pub const SENDER_NAME_LIMIT: usize = 28;
/// Most buttons in one keyboard, most in a row (a row is 6 columns wide), longest label shown.
pub const MAX_BUTTONS: usize = 24;
pub const MAX_PER_ROW: usize = 6;
pub const LABEL_LIMIT: usize = 40;
/// Longest `ActionBody` okno writes [INF: Viber documents no figure; kept short].
pub const ACTION_BODY_LIMIT: usize = 250;
/// A rich media card: 6 columns, at most 7 rows (`ButtonsGroupRows` 1–7); the picture takes 3
/// rows, the text 2, each row of buttons 1. Sources: the REST Bot API's rich media section
/// (`ButtonsGroupColumns` 1–6, `ButtonsGroupRows` 1–7, `min_api_version` 2).
pub const CARD_ROWS: usize = 7;
const CARD_PICTURE_ROWS: usize = 3;
const CARD_TEXT_ROWS: usize = 2;
/// Longest text shown in a card's two rows; a longer text goes as a picture and a message
/// [INF: Viber documents no figure; about what two rows show].
pub const CARD_TEXT_LIMIT: usize = 200;
/// How long a file link okno hands Viber stays valid.
const LINK_TTL_MS: i64 = 24 * 3600 * 1000;

/// The channel's configuration (`config` of `POST /api/v1/channels`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViberConfig {
    /// The bot's authentication token (Viber Admin Panel → the bot → Edit → Your app key).
    pub token: String,
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The name shown as the sender (≤ 28 characters); the bot's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// A picture shown beside the sender name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_avatar: Option<String>,
    /// Sent to a person who opens the chat (`conversation_started`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome: Option<String>,
    /// Kept by okno: the bot's name and its `uri` (read on connect), the key of file links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_secret: Option<String>,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_string()
}

impl ViberConfig {
    /// The `sender` object of every message.
    pub fn sender(&self) -> Value {
        let name =
            self.sender_name.as_deref().or(self.bot_name.as_deref()).filter(|n| !n.trim().is_empty()).unwrap_or("okno");
        let mut s = json!({"name": cut(name, SENDER_NAME_LIMIT)});
        if let Some(a) = self.sender_avatar.as_deref().filter(|a| !a.is_empty()) {
            s["avatar"] = json!(a);
        }
        s
    }
}

/// Maps Viber's `status` onto what the delivery engine should do: "too many requests" (12),
/// Viber's general error and HTTP failures are retried; a person who unsubscribed (6) ends the
/// message and flags them blocked; the rest — bad data, an unknown receiver, the account
/// blocked or not found, an old client — end the message with Viber's code and words.
pub fn classify(e: ApiError) -> SendError {
    let reason = e.to_string();
    match e {
        ApiError::Network(_) => SendError::retry(reason),
        ApiError::Http(429) => SendError::Retry { reason, after: Some(Duration::from_secs(60)) },
        ApiError::Http(code) if code >= 500 || code == 408 => SendError::retry(reason),
        ApiError::Http(_) => SendError::permanent(reason),
        ApiError::Viber { status: 12, .. } => SendError::Retry { reason, after: Some(Duration::from_secs(60)) },
        ApiError::Viber { status: 6, .. } => SendError::Permanent { reason, flag: Some(IdentityFlag::Blocked) },
        ApiError::Viber { status: 1..=11 | 13..=24, .. } => SendError::permanent(reason),
        ApiError::Viber { .. } => SendError::retry(reason),
    }
}

fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut out: String = text.chars().take(limit.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Splits on paragraphs, lines, then words, keeping every character in order.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > limit {
        let end = rest.char_indices().nth(limit).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..end];
        let at =
            ["\n\n", "\n", " "].iter().find_map(|sep| window.rfind(sep).filter(|&at| at > 0).map(|at| (at, sep.len())));
        let (head, skip) = match at {
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

/// Whether a keyboard fits Viber's (at most 24 buttons); else it goes as numbered lines.
pub fn fits(kb: &Keyboard) -> bool {
    let n = kb.iter().flatten().count();
    n > 0 && n <= MAX_BUTTONS
}

/// okno's buttons as Viber's, each row sharing the 6 columns; `payload` turns button data into
/// `ActionBody`.
fn buttons(kb: &Keyboard, payload: &mut impl FnMut(&str) -> String) -> Vec<Value> {
    let mut buttons = Vec::new();
    for row in kb {
        let per_row = row.len().clamp(1, MAX_PER_ROW);
        let columns = (6 / per_row).max(1);
        for b in row {
            let label = if b.text.trim().is_empty() { "·".to_string() } else { cut(&b.text, LABEL_LIMIT) };
            let (action, body) = match &b.url {
                Some(url) => ("open-url", url.clone()),
                None => ("reply", payload(b.data.as_deref().unwrap_or(&b.text))),
            };
            buttons.push(json!({"ActionType": action, "ActionBody": body, "Text": label,
                "Columns": columns, "Rows": 1, "Silent": action == "reply"}));
        }
    }
    buttons
}

/// A keyboard as Viber's `keyboard` object; `payload` turns button data into `ActionBody`.
pub fn keyboard(kb: &Keyboard, mut payload: impl FnMut(&str) -> String) -> Value {
    json!({"Type": "keyboard", "DefaultHeight": false, "Buttons": buttons(kb, &mut payload)})
}

/// Whether one picture, `text` and `kb` fit one rich media card: the text at most
/// [`CARD_TEXT_LIMIT`] characters, every button row within the card's 7 rows (two beside a
/// text, four without), at most [`MAX_PER_ROW`] buttons a row.
pub fn fits_card(text: &str, kb: &Keyboard) -> bool {
    let text_rows = if text.trim().is_empty() { 0 } else { CARD_TEXT_ROWS };
    !kb.is_empty()
        && kb.iter().all(|r| !r.is_empty() && r.len() <= MAX_PER_ROW)
        && text.chars().count() <= CARD_TEXT_LIMIT
        && CARD_PICTURE_ROWS + text_rows + kb.len() <= CARD_ROWS
}

/// Text for a rich media cell, which reads Viber's small HTML: `<`, `>` and `&` escaped, line
/// breaks as `<br>`.
fn cell_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\n', "<br>")
}

/// One picture (`picture`, a link Viber downloads), a text and buttons as a `rich_media`
/// message: one card of 6 columns, the picture on top, the text under it, a row of cells per
/// row of buttons. `alt_text` carries the text for clients too old for rich media. Call it only
/// when [`fits_card`] holds.
pub fn card(picture: &str, text: &str, kb: &Keyboard, mut payload: impl FnMut(&str) -> String) -> Value {
    let mut cells = vec![json!({"Columns": 6, "Rows": CARD_PICTURE_ROWS, "ActionType": "none", "Image": picture})];
    let mut rows = CARD_PICTURE_ROWS;
    if !text.trim().is_empty() {
        cells.push(json!({"Columns": 6, "Rows": CARD_TEXT_ROWS, "ActionType": "none", "Text": cell_text(text),
            "TextSize": "medium", "TextVAlign": "middle", "TextHAlign": "left"}));
        rows += CARD_TEXT_ROWS;
    }
    cells.extend(buttons(kb, &mut payload));
    rows += kb.len();
    let alt = if text.trim().is_empty() { "·" } else { text };
    json!({"type": "rich_media", "min_api_version": 2, "alt_text": alt,
        "rich_media": {"Type": "rich_media", "ButtonsGroupColumns": 6, "ButtonsGroupRows": rows,
            "BgColor": "#FFFFFF", "Buttons": cells}})
}

/// Viber's message type for a stored file: a picture (JPEG, PNG, GIF up to 1 MB) or a file.
fn media_type(att: &Attachment) -> &'static str {
    if matches!(att.mime.as_str(), "image/jpeg" | "image/png" | "image/gif") && att.size <= 1024 * 1024 {
        "picture"
    } else {
        "file"
    }
}

/// A signed, expiring link to one of a channel's attachments, as okno serves it.
pub fn file_link(public_url: &str, channel_id: &str, secret: &str, attachment_id: &str) -> String {
    let exp = now_ms() + LINK_TTL_MS;
    let sig = signing::sign(secret.as_bytes(), format!("{attachment_id}.{exp}").as_bytes());
    format!(
        "{}/hooks/{channel_id}/files/{attachment_id}?exp={exp}&sig={}",
        public_url.trim_end_matches('/'),
        sig.trim_start_matches("sha256=")
    )
}

/// Where a message's options record how many of its parts are already delivered.
const PROGRESS: &str = "sent_parts";

/// One bot, sending.
pub struct ViberAdapter {
    api: ViberApi,
    config: ViberConfig,
    state: Arc<dyn ChannelState>,
    public_url: String,
    channel_id: String,
}

impl ViberAdapter {
    pub fn new(
        api: ViberApi,
        config: ViberConfig,
        state: Arc<dyn ChannelState>,
        public_url: &str,
        channel_id: &str,
    ) -> Self {
        Self { api, config, state, public_url: public_url.to_string(), channel_id: channel_id.to_string() }
    }

    /// The `ActionBody` of each data button, in order: the data itself, or a token for data
    /// longer than Viber should carry.
    async fn action_bodies(&self, kb: &Keyboard) -> Result<std::vec::IntoIter<String>, SendError> {
        let mut bodies = Vec::new();
        for b in kb.iter().flatten().filter(|b| b.url.is_none()) {
            let data = b.data.as_deref().unwrap_or(&b.text);
            let fits = BUTTON_PREFIX.len() + data.len() <= ACTION_BODY_LIMIT;
            bodies.push(okno_channel::button_payload(self.state.as_ref(), data, fits, TOKEN_PREFIX).await?);
        }
        Ok(bodies.into_iter())
    }

    async fn keyboard_of(&self, kb: &Keyboard) -> Result<Value, SendError> {
        let mut it = self.action_bodies(kb).await?;
        Ok(keyboard(kb, |_| format!("{BUTTON_PREFIX}{}", it.next().unwrap_or_default())))
    }

    fn link(&self, att: &Attachment) -> Result<String, SendError> {
        let secret =
            self.config.file_secret.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
                SendError::permanent("the Viber channel has no file key: connect it again to send files")
            })?;
        Ok(file_link(&self.public_url, &self.channel_id, secret, &att.id))
    }
}

#[async_trait]
impl Adapter for ViberAdapter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Viber
    }

    async fn send(&self, t: &DeliveryTarget) -> Result<Sent, SendError> {
        let receiver = t.identity.chat_id.trim();
        if receiver.is_empty() || receiver.len() > 200 {
            return Err(SendError::permanent(format!("`{receiver}` is not a Viber user id")));
        }
        let kb = &t.message.buttons;
        let mut text = t.message.text.clone().unwrap_or_default();
        let files: Vec<&Attachment> = t.message.attachments.iter().filter(|a| a.state == "ready").collect();
        let steps = match files.as_slice() {
            [one] if media_type(one) == "picture" && fits_card(&text, kb) => {
                let mut it = self.action_bodies(kb).await?;
                vec![card(&self.link(one)?, &text, kb, |_| format!("{BUTTON_PREFIX}{}", it.next().unwrap_or_default()))]
            }
            _ => self.messages(kb, &mut text, files).await?,
        };
        self.deliver(t, receiver, steps).await
    }
}

impl ViberAdapter {
    /// The message as Viber messages: each file by link, the text (a picture's description when
    /// short), the keyboard on the last one.
    async fn messages(
        &self,
        kb: &Keyboard,
        text: &mut String,
        files: Vec<&Attachment>,
    ) -> Result<Vec<Value>, SendError> {
        let with_keyboard = fits(kb);
        if !kb.is_empty() && !with_keyboard {
            *text = okno_channel::numbered_text(text, kb);
        }
        let as_caption = !with_keyboard
            && !text.is_empty()
            && text.chars().count() <= CAPTION_LIMIT
            && files.last().is_some_and(|a| media_type(a) == "picture");
        let mut steps: Vec<Value> = Vec::new();
        let n = files.len();
        for (i, att) in files.into_iter().enumerate() {
            let media = self.link(att)?;
            let mut m = match media_type(att) {
                "picture" => json!({"type": "picture", "media": media, "text": ""}),
                _ => json!({"type": "file", "media": media, "size": att.size.max(0), "file_name": cut(&att.name, 200)}),
            };
            if as_caption && i + 1 == n {
                m["text"] = json!(*text);
            }
            steps.push(m);
        }
        if !as_caption && !text.is_empty() {
            steps.extend(split(text, TEXT_LIMIT).into_iter().map(|p| json!({"type": "text", "text": p})));
        }
        if with_keyboard {
            if steps.is_empty() {
                steps.push(json!({"type": "text", "text": "·"}));
            }
            let k = self.keyboard_of(kb).await?;
            if let Some(last) = steps.last_mut() {
                last["keyboard"] = k;
            }
        }
        if steps.is_empty() {
            return Err(SendError::permanent("the message has neither text nor a file ready to send"));
        }
        Ok(steps)
    }

    /// Sends the messages in order, recording after each how many went, so a retry goes on
    /// from the first one not yet sent.
    async fn deliver(&self, t: &DeliveryTarget, receiver: &str, steps: Vec<Value>) -> Result<Sent, SendError> {
        let done = t.options.get(PROGRESS).and_then(Value::as_u64).unwrap_or(0) as usize;
        let total = steps.len();
        let mut last = None;
        for (i, mut body) in steps.into_iter().enumerate().skip(done) {
            body["receiver"] = json!(receiver);
            body["sender"] = self.config.sender();
            body["tracking_data"] = json!(t.message.id.to_string());
            let answer = match self.api.call("send_message", &body).await {
                Ok(a) => a,
                Err(e) => {
                    return Err(match classify(e) {
                        SendError::Permanent { reason, flag } if i > 0 => SendError::Permanent {
                            reason: format!("{reason} (after {i} of {total} parts were delivered)"),
                            flag,
                        },
                        other => other,
                    })
                }
            };
            let token = crate::webhook::token_of(&answer["message_token"])
                .ok_or_else(|| SendError::retry("Viber answered a send without its message_token"))?;
            last = Some(token);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use okno_domain::model::Button;

    #[test]
    fn status_codes_map_to_retry_or_permanent() {
        let v = |status| ApiError::Viber { status, message: String::new() };
        assert!(matches!(classify(v(12)), SendError::Retry { after: Some(_), .. }));
        assert!(matches!(classify(v(99)), SendError::Retry { .. }));
        assert!(matches!(classify(ApiError::Http(503)), SendError::Retry { .. }));
        assert!(
            matches!(classify(v(6)), SendError::Permanent { flag: Some(IdentityFlag::Blocked), reason } if reason.contains("receiverNotSubscribed"))
        );
        for s in [1, 2, 3, 4, 5, 7, 8, 13] {
            assert!(matches!(classify(v(s)), SendError::Permanent { flag: None, .. }), "{s}");
        }
    }

    #[test]
    fn keyboards_carry_data_and_links() {
        let kb = vec![
            vec![
                Button { text: "Да".into(), data: Some("y".into()), url: None },
                Button { text: "Нет".into(), data: Some("n".into()), url: None },
            ],
            vec![Button { text: "Сайт".into(), data: None, url: Some("https://example.org".into()) }],
        ];
        let k = keyboard(&kb, |d| format!("{BUTTON_PREFIX}{d}"));
        assert_eq!(k["Buttons"][0]["ActionBody"], "okno-btn:y");
        assert_eq!(k["Buttons"][0]["Columns"], 3);
        assert_eq!(k["Buttons"][2]["ActionType"], "open-url");
        assert_eq!(k["Buttons"][2]["Columns"], 6);
        let many: Keyboard =
            (0..25).map(|i| vec![Button { text: i.to_string(), data: Some(i.to_string()), url: None }]).collect();
        assert!(!fits(&many));
    }

    fn row(labels: &[&str]) -> Vec<Button> {
        labels.iter().map(|l| Button { text: l.to_string(), data: Some(format!("d:{l}")), url: None }).collect()
    }

    #[test]
    fn a_card_fits_seven_rows_and_a_short_text() {
        assert!(fits_card("Дверь", &vec![row(&["Заказать"]), row(&["Ещё"])]));
        assert!(!fits_card("Дверь", &vec![row(&["1"]), row(&["2"]), row(&["3"])]), "3 + 2 + 3 rows is over 7");
        assert!(fits_card("", &vec![row(&["1"]), row(&["2"]), row(&["3"]), row(&["4"])]), "no text: four rows");
        assert!(!fits_card("", &vec![row(&["1"]); 5]));
        assert!(!fits_card(&"д".repeat(CARD_TEXT_LIMIT + 1), &vec![row(&["Заказать"])]));
        assert!(!fits_card("Дверь", &vec![]), "no buttons: a picture with a description");
        assert!(!fits_card("Дверь", &vec![row(&["1", "2", "3", "4", "5", "6", "7"])]), "seven in a row");
    }

    #[test]
    fn a_card_lays_out_the_picture_the_text_and_the_buttons() {
        let kb = vec![row(&["Заказать", "Ещё"])];
        let c = card("https://okno.example/f/1", "Цена <b>\n12 400 ₽ & доставка", &kb, |d| {
            format!("{BUTTON_PREFIX}{d}")
        });
        assert_eq!(c["type"], "rich_media");
        assert_eq!(c["min_api_version"], 2);
        assert_eq!(c["alt_text"], "Цена <b>\n12 400 ₽ & доставка");
        let rm = &c["rich_media"];
        assert_eq!(rm["ButtonsGroupColumns"], 6);
        assert_eq!(rm["ButtonsGroupRows"], 6);
        let cells = rm["Buttons"].as_array().unwrap_or_else(|| panic!("cells"));
        assert_eq!(cells[0]["Image"], "https://okno.example/f/1");
        assert_eq!(cells[1]["Text"], "Цена &lt;b&gt;<br>12 400 ₽ &amp; доставка");
        assert_eq!(cells[2]["ActionBody"], "okno-btn:d:Заказать");
        assert_eq!(cells[3]["Columns"], 3);
        let area: i64 =
            cells.iter().map(|c| c["Columns"].as_i64().unwrap_or(0) * c["Rows"].as_i64().unwrap_or(0)).sum();
        assert_eq!(area, 6 * 6, "the cells fill the card: picture 3 rows, text 2, one row of two buttons");
    }

    #[test]
    fn sender_names_are_cut_to_vibers_limit() {
        let cfg: ViberConfig =
            serde_json::from_value(json!({"token": "t", "bot_name": "Очень длинное название магазина окон и дверей"}))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.sender()["name"].as_str().map(|n| n.chars().count()), Some(28));
    }
}
