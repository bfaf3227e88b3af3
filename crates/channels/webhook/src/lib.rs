//! The generic `webhook` channel: any website or app talks to okno with signed JSON.
//!
//! Inbound: `POST /hooks/{channel_id}` signed with `X-Okno-Signature: sha256=<hex>`.
//! Outbound: okno POSTs to the channel's `outbound_url`, signed the same way; the receiver
//! deduplicates on the message `id`. Attachments go out as signed, expiring download URLs.

use std::time::Duration;

mod platform;
pub use platform::Webhook;

use async_trait::async_trait;
use okno_channel::{DeliveryTarget, InboundAttachment, InboundMessage, InboundSender};
use okno_domain::model::{normalize_phone, ChannelKind, Keyboard};
use okno_domain::signing;
use okno_domain::time::now_ms;
use okno_domain::{Error, ErrorKind, Result};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};

use okno_channel::http::{describe, retry_after, SafeClient};
use okno_channel::throttle::Limits;
use okno_channel::{Adapter, SendError, Sent};

/// The signature header, inbound and outbound.
pub const SIGNATURE_HEADER: &str = "x-okno-signature";

/// How long a signed attachment URL stays valid.
const FILE_URL_TTL_MS: i64 = 24 * 3600 * 1000;

/// The channel's configuration (`config` of `POST /api/v1/channels`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub outbound_url: String,
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// `false` for a receiver that shows no buttons (an SMS gateway, a plain chat widget):
    /// buttons are sent as numbered lines of the text instead, and people answer with the number.
    #[serde(default = "shows_buttons")]
    pub buttons: bool,
}

fn shows_buttons() -> bool {
    true
}

impl WebhookConfig {
    /// Parses and checks a config object.
    pub fn parse(v: &Value, client: &SafeClient) -> Result<Self> {
        let cfg: WebhookConfig = serde_json::from_value(v.clone())
            .map_err(|e| Error::invalid("invalid_channel_config", format!("webhook channel config: {e}")))?;
        client.check_url(&cfg.outbound_url)?;
        if cfg.secret.len() < 16 {
            return Err(Error::invalid("weak_secret", "the webhook channel `secret` needs at least 16 characters"));
        }
        Ok(cfg)
    }
}

/// Sends to the channel's `outbound_url`.
pub struct WebhookAdapter {
    client: SafeClient,
    config: WebhookConfig,
    channel_id: String,
    public_url: String,
}

impl WebhookAdapter {
    pub fn new(client: SafeClient, config: WebhookConfig, channel_id: String, public_url: String) -> Self {
        Self { client, config, channel_id, public_url: public_url.trim_end_matches('/').to_string() }
    }
}

/// The signature that authorises downloading attachment `id` until `exp` (ms).
pub fn file_signature(secret: &str, attachment_id: &str, exp: i64) -> String {
    signing::sign(secret.as_bytes(), format!("{attachment_id}.{exp}").as_bytes())
}

/// Checks a signed attachment URL's `exp` and `sig`.
pub fn verify_file_signature(secret: &str, attachment_id: &str, exp: i64, sig: &str) -> bool {
    exp > now_ms() && signing::verify(secret.as_bytes(), format!("{attachment_id}.{exp}").as_bytes(), sig)
}

#[derive(Serialize)]
struct OutBody<'a> {
    id: &'a str,
    to: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    buttons: &'a Keyboard,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a str>,
}

#[async_trait]
impl Adapter for WebhookAdapter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    async fn send(&self, t: &DeliveryTarget) -> Result<Sent, SendError> {
        let exp = now_ms() + FILE_URL_TTL_MS;
        let attachments = t
            .message
            .attachments
            .iter()
            .map(|a| {
                let sig = file_signature(&self.config.secret, &a.id, exp);
                let url = format!(
                    "{}/hooks/{}/files/{}?exp={exp}&sig={}",
                    self.public_url,
                    self.channel_id,
                    a.id,
                    sig.trim_start_matches("sha256=")
                );
                json!({"name": a.name, "mime": a.mime, "size": a.size, "url": url})
            })
            .collect();
        let no_buttons = Keyboard::new();
        let numbered = (!self.config.buttons && !t.message.buttons.is_empty())
            .then(|| okno_channel::numbered_text(t.message.text.as_deref().unwrap_or_default(), &t.message.buttons));
        let body = OutBody {
            id: &t.message.id,
            to: json!({"id": t.identity.user_id}),
            text: numbered.as_deref().or(t.message.text.as_deref()),
            buttons: if self.config.buttons { &t.message.buttons } else { &no_buttons },
            attachments,
            reply_to: t.message.reply_to.as_deref(),
        };
        let raw =
            serde_json::to_vec(&body).map_err(|e| SendError::permanent(format!("cannot encode the message: {e}")))?;
        let req = self
            .client
            .post(&self.config.outbound_url)
            .map_err(|e| SendError::permanent(e.message))?
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signing::sign(self.config.secret.as_bytes(), &raw))
            .header("x-okno-event", "message")
            .body(raw);
        let resp = req.send().await.map_err(|e| SendError::retry(describe(&e)))?;
        let status = resp.status();
        if status.is_success() {
            let external_id = resp.json::<Value>().await.ok().and_then(|v| v.get("id").and_then(id_string));
            return Ok(Sent { external_id });
        }
        let after = retry_after(resp.headers());
        let text: String = resp.text().await.unwrap_or_default().chars().take(300).collect();
        let reason = format!(
            "the endpoint answered HTTP {}{}",
            status.as_u16(),
            if text.is_empty() { String::new() } else { format!(": {text}") }
        );
        Err(classify(status.as_u16(), reason, after))
    }

    fn chat_key(&self, t: &DeliveryTarget) -> String {
        t.identity.user_id.clone()
    }
}

/// Maps an HTTP answer: the contract says a 2xx means sent and every other answer is retried
/// (the retry budget then ends it with the reason).
pub fn classify(status: u16, reason: String, after: Option<Duration>) -> SendError {
    let _ = status;
    SendError::Retry { reason, after }
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

// --- inbound ---------------------------------------------------------------------------------

#[derive(Deserialize)]
struct InBody {
    #[serde(deserialize_with = "string_or_number")]
    message_id: String,
    user: InUser,
    text: Option<String>,
    #[serde(default)]
    attachments: Vec<InAttachment>,
    button: Option<InButton>,
}

#[derive(Deserialize)]
struct InUser {
    #[serde(deserialize_with = "string_or_number")]
    id: String,
    name: Option<String>,
    phone: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct InAttachment {
    name: Option<String>,
    mime: Option<String>,
    url: String,
}

#[derive(Deserialize)]
struct InButton {
    data: String,
    reply_to: Option<String>,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("expected a string or a number, got {other}"))),
    }
}

/// Limits on one inbound message.
pub(crate) const MAX_TEXT: usize = 65_536;
const MAX_ATTACHMENTS: usize = 10;

/// Verifies the signature and parses an inbound body into what the store records.
pub fn parse_inbound(
    channel_id: &str,
    secret: &str,
    signature: Option<&str>,
    body: &[u8],
    client: &SafeClient,
) -> Result<InboundMessage> {
    let Some(sig) = signature else {
        return Err(Error::new(ErrorKind::Unauthorized, "missing_signature", "the X-Okno-Signature header is missing"));
    };
    if !signing::verify(secret.as_bytes(), body, sig) {
        return Err(Error::new(ErrorKind::Unauthorized, "bad_signature", "X-Okno-Signature does not match the body"));
    }
    let parsed: InBody = serde_json::from_slice(body)
        .map_err(|e| Error::invalid("invalid_json", format!("the body is not a valid message: {e}")))?;
    let non_empty = |what: &str, v: &str| {
        if v.trim().is_empty() || v.len() > 200 {
            Err(Error::invalid("invalid_message", format!("`{what}` must be 1..200 characters")))
        } else {
            Ok(())
        }
    };
    non_empty("message_id", &parsed.message_id)?;
    non_empty("user.id", &parsed.user.id)?;
    if parsed.text.as_ref().is_some_and(|t| t.len() > MAX_TEXT) {
        return Err(Error::invalid("text_too_long", format!("`text` is limited to {MAX_TEXT} bytes")));
    }
    if parsed.attachments.len() > MAX_ATTACHMENTS {
        return Err(Error::invalid(
            "too_many_attachments",
            format!("at most {MAX_ATTACHMENTS} attachments per message"),
        ));
    }
    let text = parsed.text.filter(|t| !t.is_empty());
    if text.is_none() && parsed.attachments.is_empty() && parsed.button.is_none() {
        return Err(Error::invalid("empty_message", "a message needs `text`, `attachments` or `button`"));
    }
    let mut attachments = Vec::with_capacity(parsed.attachments.len());
    for a in parsed.attachments {
        client.check_url(&a.url)?;
        let name = a.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| file_name_of(&a.url));
        attachments.push(InboundAttachment::Url {
            name,
            mime: a.mime.unwrap_or_else(|| "application/octet-stream".into()),
            url: a.url,
        });
    }
    let phone = match parsed.user.phone.filter(|p| !p.trim().is_empty()) {
        Some(p) => Some(normalize_phone(&p)?),
        None => None,
    };
    let (button_data, reply_to) = match parsed.button {
        Some(b) if b.data.is_empty() || b.data.len() > 4096 => {
            return Err(Error::invalid("invalid_message", "`button.data` must be 1..4096 bytes"))
        }
        Some(b) => (Some(b.data), b.reply_to),
        None => (None, None),
    };
    Ok(InboundMessage {
        channel_id: channel_id.into(),
        sender: InboundSender {
            chat_id: parsed.user.id.clone(),
            user_id: parsed.user.id,
            username: parsed.user.username,
            display_name: parsed.user.name,
            phone,
            email: None,
            // The webhook contract speaks of people only.
            is_group: false,
        },
        external_id: parsed.message_id,
        text,
        attachments,
        button_data,
        reply_to: reply_to.map(Into::into),
        reply_to_external: None,
        author: None,
        member: None,
        bot_turn: false,
        subscription: None,
        survey: Default::default(),
        context: None,
        conversation_hint: None,
    })
}

fn file_name_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.path_segments().and_then(|mut s| s.next_back().map(str::to_string)))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "file".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> SafeClient {
        SafeClient::new(false, Duration::from_secs(1)).unwrap()
    }

    fn signed(body: &str) -> String {
        signing::sign(b"0123456789abcdef", body.as_bytes())
    }

    #[test]
    fn parses_a_signed_message_with_attachment_and_numeric_ids() {
        let body = r#"{"message_id": 17, "user": {"id": 42, "name": "Ivan", "phone": "+7 999 000-11-22"}, "text": "hello",
            "attachments": [{"url": "https://example.org/files/a.pdf"}]}"#;
        let m = parse_inbound("ch", "0123456789abcdef", Some(&signed(body)), body.as_bytes(), &client()).unwrap();
        assert_eq!(m.external_id, "17");
        assert_eq!(m.sender.user_id, "42");
        assert_eq!(m.sender.phone.as_deref(), Some("+79990001122"));
        match &m.attachments[0] {
            InboundAttachment::Url { name, mime, .. } => {
                assert_eq!(name, "a.pdf");
                assert_eq!(mime, "application/octet-stream");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_signatures_and_bodies_with_codes() {
        let body = r#"{"message_id": "m", "user": {"id": "u"}, "text": "x"}"#;
        let code = |sig: Option<&str>, body: &str| {
            parse_inbound("ch", "0123456789abcdef", sig, body.as_bytes(), &client()).unwrap_err().code
        };
        assert_eq!(code(None, body), "missing_signature");
        assert_eq!(code(Some("sha256=00"), body), "bad_signature");
        let bad = "{not json";
        assert_eq!(code(Some(&signed(bad)), bad), "invalid_json");
        let empty = r#"{"message_id": "m", "user": {"id": "u"}}"#;
        assert_eq!(code(Some(&signed(empty)), empty), "empty_message");
        let wrong_type = r#"{"message_id": "m", "user": {"id": ["u"]}, "text": "x"}"#;
        assert_eq!(code(Some(&signed(wrong_type)), wrong_type), "invalid_json");
        let private = r#"{"message_id": "m", "user": {"id": "u"}, "attachments": [{"url": "http://10.0.0.1/a"}]}"#;
        assert_eq!(code(Some(&signed(private)), private), "private_target");
    }

    #[test]
    fn button_press_keeps_data_and_reply_to() {
        let body = r#"{"message_id": "m-2", "user": {"id": "u"}, "button": {"data": "rate:5", "reply_to": "abc"}}"#;
        let m = parse_inbound("ch", "0123456789abcdef", Some(&signed(body)), body.as_bytes(), &client()).unwrap();
        assert_eq!(m.button_data.as_deref(), Some("rate:5"));
        assert_eq!(m.reply_to.as_deref(), Some("abc"));
    }

    #[test]
    fn file_urls_expire_and_are_bound_to_the_attachment() {
        let exp = now_ms() + 1000;
        let sig = file_signature("s", "att", exp);
        assert!(verify_file_signature("s", "att", exp, &sig));
        assert!(!verify_file_signature("s", "other", exp, &sig));
        let old = now_ms() - 1;
        assert!(!verify_file_signature("s", "att", old, &file_signature("s", "att", old)));
    }

    #[test]
    fn every_non_2xx_answer_is_retried() {
        assert!(matches!(classify(500, "x".into(), None), SendError::Retry { .. }));
        assert!(matches!(
            classify(429, "x".into(), Some(Duration::from_secs(3))),
            SendError::Retry { after: Some(_), .. }
        ));
        assert!(matches!(classify(400, "x".into(), None), SendError::Retry { .. }));
    }
}
