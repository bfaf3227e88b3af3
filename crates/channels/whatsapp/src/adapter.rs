//! Sending to WhatsApp: `POST /{phone_number_id}/messages` with `messaging_product: whatsapp`.
//! Plain text split under 4,096 characters (WhatsApp renders its own `*bold*` marks, but okno
//! sends texts as they are), replies by `context.message_id`, files uploaded with
//! `POST /{phone_number_id}/media` and sent by id with their caption, okno's button menus as
//! interactive reply buttons (≤ 3, titles ≤ 20), a list (≤ 10 rows, titles ≤ 24) or numbered
//! lines beyond that, a single link as a `cta_url` button, and approved templates when the
//! message must go out as one (outside the 24-hour window). Paced at Meta's limits: 80 messages a
//! second per number, and a pair rate of about one message per 6 seconds per person with a
//! burst allowed. Sources: `research/B_messenger_specs.md` §2.6–2.8, Meta's "Throughput" and
//! "WhatsApp error codes" pages.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use okno_channel::files::FileStore;
use okno_channel::{Adapter, ChannelState, DeliveryTarget, SendError, Sent};
use okno_domain::model::{Attachment, ChannelKind, Keyboard};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{ApiError, GraphApi, DEFAULT_API_BASE};
use crate::webhook::TOKEN_PREFIX;

/// Longest text message body, in characters.
pub const TEXT_LIMIT: usize = 4096;
/// Longest media caption and interactive body, in characters.
pub const CAPTION_LIMIT: usize = 1024;
/// Reply buttons in one message, and their longest title.
pub const MAX_REPLY_BUTTONS: usize = 3;
pub const BUTTON_TITLE_LIMIT: usize = 20;
/// Rows in one list message, and their longest title and description.
pub const MAX_LIST_ROWS: usize = 10;
pub const ROW_TITLE_LIMIT: usize = 24;
pub const ROW_DESCRIPTION_LIMIT: usize = 72;
/// Longest reply-button id and list-row id.
pub const BUTTON_ID_LIMIT: usize = 256;
pub const ROW_ID_LIMIT: usize = 200;
/// The list's open button ("Выбрать").
const LIST_BUTTON: &str = "Выбрать";

/// The channel's configuration (`config` of `POST /api/v1/channels`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppConfig {
    /// A system user's permanent access token (`whatsapp_business_messaging`).
    pub token: String,
    pub phone_number_id: String,
    /// Signs webhooks (`X-Hub-Signature-256`).
    pub app_secret: String,
    /// What okno expects in `hub.verify_token` when Meta checks the callback URL.
    pub verify_token: String,
    #[serde(default = "default_api_base")]
    pub api_base: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<WhatsAppLimits>,
    /// The number in digits, read on connect (kept by okno): `wa.me` links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    /// The message templates Meta approved for this number, as okno offers them outside the
    /// 24-hour window: `[{"name", "language", "params": ["order", "date"]}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<RegisteredTemplate>,
}

/// An approved template, registered in okno with its language and its parameters' names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisteredTemplate {
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub params: Vec<String>,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_string()
}

/// Meta's limits; `0` turns one off (a simulator without limits, as in the benchmark).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsAppLimits {
    /// Messages a second per phone number (Meta's default throughput: 80).
    pub per_second: u32,
    /// Seconds between messages to one person (the pair rate: about 6).
    pub pair_seconds: u32,
    /// Messages one person may be sent at once before the pair rate applies.
    pub pair_burst: u32,
}

impl Default for WhatsAppLimits {
    fn default() -> Self {
        Self { per_second: 80, pair_seconds: 6, pair_burst: 45 }
    }
}

struct Limiter {
    global: Option<DefaultDirectRateLimiter>,
    pair: Option<DefaultKeyedRateLimiter<String>>,
}

impl Limiter {
    fn new(l: &WhatsAppLimits) -> Self {
        let global = (l.per_second > 0).then(|| {
            let period = Duration::from_secs(1).mul_f64(1.05 / f64::from(l.per_second));
            governor::RateLimiter::direct(
                Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)),
            )
        });
        let pair = (l.pair_seconds > 0).then(|| {
            let burst = NonZeroU32::new(l.pair_burst).unwrap_or(NonZeroU32::MIN);
            let period = Duration::from_secs(u64::from(l.pair_seconds)).mul_f64(1.05);
            governor::RateLimiter::keyed(
                Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(burst),
            )
        });
        Limiter { global, pair }
    }

    async fn ready(&self, chat: &str) {
        if let Some(p) = &self.pair {
            p.until_key_ready(&chat.to_string()).await;
        }
        if let Some(g) = &self.global {
            g.until_ready().await;
        }
    }
}

/// Maps a Graph API error onto what the delivery engine should do. Codes from Meta's "WhatsApp
/// error codes" page: throughput (130429), pair rate (131056), app and account rate limits
/// (4, 80007) are waited out; Meta's own failures (1, 2, 131000, 131016, 5xx) retried; the rest
/// — the 24-hour window (131047), an undeliverable recipient (131026), an unsupported type
/// (131051), invalid parameters (100, 131008, 131009), templates (132xxx), the token (190) —
/// end the message with Meta's code and words.
pub fn classify(e: ApiError) -> SendError {
    let (status, code) = match &e {
        ApiError::Network(reason) => return SendError::retry(reason.clone()),
        ApiError::Meta { status, code, .. } => (*status, *code),
    };
    let reason = e.to_string();
    match code {
        130429 => SendError::Retry { reason, after: Some(Duration::from_secs(1)) },
        131056 => SendError::Retry { reason, after: Some(Duration::from_secs(6)) },
        4 | 80007 | 133016 => SendError::Retry { reason, after: Some(Duration::from_secs(60)) },
        1 | 2 | 131000 | 131016 => SendError::retry(reason),
        0 if status == 429 => SendError::Retry { reason, after: Some(Duration::from_secs(1)) },
        _ if status >= 500 => SendError::retry(reason),
        _ => SendError::permanent(reason),
    }
}

/// How a keyboard goes out on WhatsApp.
#[derive(Debug, Clone, PartialEq)]
pub enum Menu {
    /// Up to 3 reply buttons: (title, data).
    Buttons(Vec<(String, String)>),
    /// Up to 10 list rows: (title, description, data).
    List(Vec<(String, Option<String>, String)>),
    /// One link button (`cta_url`): (label, url).
    Link(String, String),
    /// Numbered lines under the text (more than 10 choices).
    Numbered,
}

fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut out: String = text.chars().take(limit.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The form a keyboard takes, and the link lines that go under the text beside it.
pub fn menu(kb: &Keyboard) -> (Option<Menu>, Vec<String>) {
    let all: Vec<_> = kb.iter().flatten().collect();
    if all.is_empty() {
        return (None, Vec::new());
    }
    let callbacks: Vec<_> = all.iter().filter(|b| b.url.is_none() && b.data.is_some()).collect();
    let links: Vec<_> = all.iter().filter(|b| b.url.is_some()).collect();
    if callbacks.is_empty() && links.len() == 1 {
        let b = links[0];
        return (Some(Menu::Link(cut(&b.text, BUTTON_TITLE_LIMIT), b.url.clone().unwrap_or_default())), Vec::new());
    }
    let lines: Vec<String> = links.iter().map(|b| format!("{}: {}", b.text, b.url.as_deref().unwrap_or(""))).collect();
    if callbacks.is_empty() {
        return (None, lines);
    }
    let data = |b: &&&okno_domain::model::Button| b.data.clone().unwrap_or_default();
    if callbacks.len() <= MAX_REPLY_BUTTONS && callbacks.iter().all(|b| b.text.chars().count() <= BUTTON_TITLE_LIMIT) {
        let items = callbacks.iter().map(|b| (label(&b.text), data(b))).collect();
        return (Some(Menu::Buttons(items)), lines);
    }
    if callbacks.len() <= MAX_LIST_ROWS {
        let items = callbacks
            .iter()
            .map(|b| {
                let long = b.text.chars().count() > ROW_TITLE_LIMIT;
                (cut(&label(&b.text), ROW_TITLE_LIMIT), long.then(|| cut(&b.text, ROW_DESCRIPTION_LIMIT)), data(b))
            })
            .collect();
        return (Some(Menu::List(items)), lines);
    }
    (Some(Menu::Numbered), Vec::new())
}

fn label(t: &str) -> String {
    if t.trim().is_empty() {
        "·".to_string()
    } else {
        t.to_string()
    }
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

/// One message of a delivery.
#[derive(Debug)]
enum Step<'a> {
    File {
        att: &'a Attachment,
        caption: Option<String>,
    },
    Text(String),
    /// The interactive message carrying the menu, with its body.
    Menu(String),
}

/// The WhatsApp media type of a stored file (Meta's supported media types).
fn media_type(att: &Attachment) -> &'static str {
    let mime = att.mime.as_str();
    let mb = 1024 * 1024;
    if matches!(mime, "image/jpeg" | "image/png") && att.size <= 5 * mb {
        "image"
    } else if matches!(mime, "video/mp4" | "video/3gpp") && att.size <= 16 * mb {
        "video"
    } else if matches!(mime, "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg")
        && att.size <= 16 * mb
    {
        "audio"
    } else if mime == "image/webp" && att.size <= 500 * 1024 {
        "sticker"
    } else {
        "document"
    }
}

/// The messages that deliver an outgoing one, in order: each file alone (the text as the last
/// file's caption when it fits and there is no menu), the text split under the limit, and the
/// menu on the last text (whose part is then kept under the interactive body's limit).
fn steps<'a>(attachments: &'a [Attachment], text: &str, has_menu: bool) -> Vec<Step<'a>> {
    let files: Vec<&Attachment> = attachments.iter().filter(|a| a.state == "ready").collect();
    let captionable = |a: &Attachment| media_type(a) != "audio" && media_type(a) != "sticker";
    let as_caption = !has_menu
        && !text.is_empty()
        && text.chars().count() <= CAPTION_LIMIT
        && files.last().is_some_and(|a| captionable(a));
    let mut out = Vec::new();
    let n = files.len();
    for (i, att) in files.into_iter().enumerate() {
        out.push(Step::File { att, caption: (as_caption && i + 1 == n).then(|| text.to_string()) });
    }
    if as_caption {
        return out;
    }
    let mut parts = if text.is_empty() { Vec::new() } else { split(text, TEXT_LIMIT) };
    if has_menu {
        let last = parts.pop().unwrap_or_default();
        let mut tail = split(&last, CAPTION_LIMIT);
        let body = tail.pop().unwrap_or_default();
        parts.extend(tail);
        out.extend(parts.into_iter().map(Step::Text));
        out.push(Step::Menu(if body.trim().is_empty() { "·".to_string() } else { body }));
    } else {
        out.extend(parts.into_iter().map(Step::Text));
    }
    out
}

/// Where a message's options record how many of its parts are already delivered.
const PROGRESS: &str = "sent_parts";

/// One phone number, sending.
pub struct WhatsAppAdapter {
    api: GraphApi,
    state: Arc<dyn ChannelState>,
    files: FileStore,
    limiter: Limiter,
}

fn wamid(answer: &Value) -> Result<String, SendError> {
    answer["messages"][0]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| SendError::retry("WhatsApp answered a send without the message's id"))
}

/// A WhatsApp recipient: the person's number in digits (their `wa_id`).
fn recipient(chat: &str) -> Result<String, SendError> {
    let digits = chat.trim().trim_start_matches('+');
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SendError::permanent(format!("`{chat}` is not a WhatsApp number")));
    }
    Ok(digits.to_string())
}

impl WhatsAppAdapter {
    pub fn new(api: GraphApi, state: Arc<dyn ChannelState>, files: FileStore, limits: &WhatsAppLimits) -> Self {
        Self { api, state, files, limiter: Limiter::new(limits) }
    }

    pub fn api(&self) -> &GraphApi {
        &self.api
    }

    /// One send, paced; a throughput or pair-rate refusal is waited out a few times here
    /// before the engine is asked to retry later.
    async fn post(&self, to: &str, body: &Value) -> Result<String, SendError> {
        let mut waits = 0;
        loop {
            self.limiter.ready(to).await;
            match self.api.send(body).await {
                Err(ApiError::Meta { code: 130429, .. }) if waits < 3 => {
                    waits += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                other => return wamid(&other.map_err(classify)?),
            }
        }
    }

    async fn payload(&self, data: &str, limit: usize) -> Result<String, SendError> {
        okno_channel::button_payload(self.state.as_ref(), data, data.chars().count() <= limit, TOKEN_PREFIX).await
    }

    /// The `interactive` object for a menu with `body`.
    async fn interactive(&self, menu: &Menu, body: &str) -> Result<Option<Value>, SendError> {
        Ok(Some(match menu {
            Menu::Buttons(items) => {
                let mut buttons = Vec::new();
                for (title, data) in items {
                    let id = self.payload(data, BUTTON_ID_LIMIT).await?;
                    buttons.push(json!({"type": "reply", "reply": {"id": id, "title": title}}));
                }
                json!({"type": "button", "body": {"text": body}, "action": {"buttons": buttons}})
            }
            Menu::List(items) => {
                let mut rows = Vec::new();
                for (title, description, data) in items {
                    let id = self.payload(data, ROW_ID_LIMIT).await?;
                    let mut row = json!({"id": id, "title": title});
                    if let Some(d) = description {
                        row["description"] = json!(d);
                    }
                    rows.push(row);
                }
                json!({"type": "list", "body": {"text": body},
                       "action": {"button": LIST_BUTTON, "sections": [{"rows": rows}]}})
            }
            Menu::Link(label, url) => json!({"type": "cta_url", "body": {"text": body},
                "action": {"name": "cta_url", "parameters": {"display_text": label, "url": url}}}),
            Menu::Numbered => return Ok(None),
        }))
    }

    async fn upload(&self, att: &Attachment) -> Result<String, SendError> {
        let data = self
            .files
            .read(&att.sha256)
            .await
            .map_err(|e| SendError::permanent(format!("attachment `{}` is not in the store: {e}", att.name)))?;
        self.api.upload(data.to_vec(), &att.name, &att.mime).await.map_err(classify)
    }

    async fn send_template(&self, to: &str, t: &DeliveryTarget) -> Result<Sent, SendError> {
        let Some(template) = t.template_to_send() else { return Err(SendError::permanent("no template")) };
        let mut tpl = json!({"name": template.name, "language": {"code": template.language}});
        if !template.params.is_empty() {
            let params: Vec<Value> = template.params.iter().map(|p| json!({"type": "text", "text": p})).collect();
            tpl["components"] = json!([{"type": "body", "parameters": params}]);
        }
        let body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                          "type": "template", "template": tpl});
        Ok(Sent { external_id: Some(self.post(to, &body).await?) })
    }
}

#[async_trait]
impl Adapter for WhatsAppAdapter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Whatsapp
    }

    async fn send(&self, t: &DeliveryTarget) -> Result<Sent, SendError> {
        let to = recipient(&t.identity.chat_id)?;
        if t.template_to_send().is_some() {
            return self.send_template(&to, t).await;
        }
        let (menu, link_lines) = menu(&t.message.buttons);
        let mut text = t.message.text.clone().unwrap_or_default();
        if menu == Some(Menu::Numbered) {
            text = okno_channel::numbered_text(&text, &t.message.buttons);
        }
        for line in &link_lines {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line);
        }
        let has_menu = matches!(menu, Some(Menu::Buttons(_) | Menu::List(_) | Menu::Link(..)));
        let steps = steps(&t.message.attachments, &text, has_menu);
        if steps.is_empty() {
            return Err(SendError::permanent("the message has neither text nor a file ready to send"));
        }
        let done = t.options.get(PROGRESS).and_then(Value::as_u64).unwrap_or(0) as usize;
        let total = steps.len();
        let mut last = None;
        for (i, step) in steps.into_iter().enumerate().skip(done) {
            let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to});
            match step {
                Step::Text(part) => {
                    body["type"] = json!("text");
                    body["text"] = json!({"preview_url": false, "body": part});
                }
                Step::File { att, caption } => {
                    let kind = media_type(att);
                    let id = self.upload(att).await?;
                    let mut media = json!({"id": id});
                    if let Some(c) = caption {
                        media["caption"] = json!(c);
                    }
                    if kind == "document" {
                        media["filename"] = json!(att.name);
                    }
                    body["type"] = json!(kind);
                    body[kind] = media;
                }
                Step::Menu(text) => {
                    let Some(menu) = &menu else { unreachable!("a menu step has a menu") };
                    match self.interactive(menu, &text).await? {
                        Some(i) => {
                            body["type"] = json!("interactive");
                            body["interactive"] = i;
                        }
                        None => {
                            body["type"] = json!("text");
                            body["text"] = json!({"preview_url": false, "body": text});
                        }
                    }
                }
            }
            if let Some(r) = t.reply_to_external.as_deref().filter(|_| i == 0) {
                body["context"] = json!({"message_id": r});
            }
            last = Some(match self.post(&to, &body).await {
                Ok(id) => id,
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

    /// `POST /{phone_number_id}/messages {"status": "read", "message_id"}`: blue ticks.
    async fn mark_read(&self, _chat_id: &str, external_id: &str) -> Result<(), SendError> {
        let body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": external_id});
        self.api.send(&body).await.map(|_| ()).map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use okno_domain::model::Button;

    fn cb(t: &str) -> Button {
        Button { text: t.into(), data: Some(format!("d:{t}")), url: None }
    }

    fn meta(status: u16, code: i64) -> ApiError {
        ApiError::Meta { status, code, subcode: None, title: "t".into(), details: None }
    }

    #[test]
    fn errors_are_classified_by_metas_code() {
        assert!(
            matches!(classify(meta(429, 130429)), SendError::Retry { after: Some(a), .. } if a == Duration::from_secs(1))
        );
        assert!(
            matches!(classify(meta(400, 131056)), SendError::Retry { after: Some(a), .. } if a == Duration::from_secs(6))
        );
        assert!(matches!(classify(meta(400, 80007)), SendError::Retry { .. }));
        assert!(matches!(classify(meta(400, 4)), SendError::Retry { .. }));
        assert!(matches!(classify(meta(500, 131000)), SendError::Retry { .. }));
        assert!(matches!(classify(meta(503, 0)), SendError::Retry { .. }));
        for code in [131047, 131026, 131051, 100, 190, 132000, 132001, 131009] {
            assert!(
                matches!(classify(meta(400, code)), SendError::Permanent { reason, .. } if reason.starts_with(&code.to_string()))
            );
        }
    }

    #[test]
    fn keyboards_become_buttons_a_list_or_numbered_lines() {
        assert!(matches!(menu(&vec![vec![cb("Да"), cb("Нет")]]).0, Some(Menu::Buttons(b)) if b.len() == 2));
        let four = vec![vec![cb("1"), cb("2")], vec![cb("3"), cb("4")]];
        assert!(matches!(menu(&four).0, Some(Menu::List(r)) if r.len() == 4));
        let long = vec![vec![cb("Очень длинная надпись на кнопке")]];
        assert!(matches!(menu(&long).0, Some(Menu::List(r)) if r[0].0.chars().count() == 24 && r[0].1.is_some()));
        let eleven: Keyboard = (0..11).map(|i| vec![cb(&i.to_string())]).collect();
        assert_eq!(menu(&eleven).0, Some(Menu::Numbered));
        let link = Button { text: "Сайт".into(), data: None, url: Some("https://example.org".into()) };
        assert_eq!(menu(&vec![vec![link.clone()]]).0, Some(Menu::Link("Сайт".into(), "https://example.org".into())));
        let (m, lines) = menu(&vec![vec![cb("Да"), link]]);
        assert!(matches!(m, Some(Menu::Buttons(_))));
        assert_eq!(lines, vec!["Сайт: https://example.org".to_string()]);
    }

    #[test]
    fn a_long_text_with_a_menu_keeps_the_last_part_under_the_body_limit() {
        let long = "слово ".repeat(1500);
        let plan = steps(&[], long.trim_end(), true);
        let Some(Step::Menu(body)) = plan.last() else { panic!("the menu goes last") };
        assert!(body.chars().count() <= CAPTION_LIMIT);
        assert!(plan.len() >= 3);
    }

    #[test]
    fn limits_default_to_metas_and_turn_off() {
        let cfg: WhatsAppConfig = serde_json::from_value(json!({"token": "t", "phone_number_id": "1",
            "app_secret": "s", "verify_token": "v", "limits": {"per_second": 0, "pair_seconds": 0}}))
        .unwrap_or_else(|e| panic!("{e}"));
        let l = Limiter::new(&cfg.limits.unwrap_or_default());
        assert!(l.global.is_none() && l.pair.is_none());
        let l = Limiter::new(&WhatsAppLimits::default());
        assert!(l.global.is_some() && l.pair.is_some());
    }
}
