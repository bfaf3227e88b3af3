//! What visitors' browsers send, read and checked here so that any body gets a clear answer
//! and never a panic: the session call ([`SessionRequest`]), a message ([`SendRequest`]), and
//! the envelope okno's visitor API hands the channel for each message ([`Envelope`]), which
//! `Platform::receive` turns into an inbound message.

use okno_channel::{InboundAttachment, InboundMessage, InboundSender};
use okno_domain::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::identity::{valid_token, valid_visitor_id, MAX_CUSTOMER_ID};

/// Longest text a visitor may send, in characters.
pub const MAX_TEXT: usize = 4096;
/// Most files one message carries.
pub const MAX_FILES: usize = 10;
/// Longest name, phone, e-mail or file name.
const MAX_FIELD: usize = 200;

fn invalid(code: &'static str, message: impl Into<String>) -> Error {
    Error::invalid(code, message)
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    serde_json::from_slice(body).map_err(|e| invalid("invalid_body", format!("the request body is not valid: {e}")))
}

fn field(name: &str, v: Option<String>) -> Result<Option<String>> {
    let v = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if v.as_ref().is_some_and(|s| s.chars().count() > MAX_FIELD || s.chars().any(char::is_control)) {
        return Err(invalid(
            "invalid_field",
            format!("`{name}` is longer than {MAX_FIELD} characters or has control characters"),
        ));
    }
    Ok(v)
}

/// A logged-in customer as the site passes them, signed with the channel's secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// Hex HMAC-SHA256(secret, id).
    #[serde(default)]
    pub hash: String,
}

/// `POST /widget/{channel_id}/session`: a visitor starts or resumes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// The token the browser kept (absent on the first visit).
    #[serde(default)]
    pub token: Option<String>,
    /// The logged-in customer, when the site has one.
    #[serde(default)]
    pub customer: Option<Customer>,
}

impl SessionRequest {
    pub fn parse(body: &[u8]) -> Result<SessionRequest> {
        let mut r: SessionRequest = if body.iter().all(u8::is_ascii_whitespace) { parse(b"{}")? } else { parse(body)? };
        if r.token.as_deref().is_some_and(|t| !valid_token(t)) {
            return Err(invalid("invalid_token", "`token` is not a visitor token okno made"));
        }
        if let Some(c) = r.customer.as_mut() {
            c.id = c.id.trim().to_string();
            if c.id.is_empty() || c.id.len() > MAX_CUSTOMER_ID || c.id.chars().any(char::is_control) {
                return Err(invalid(
                    "invalid_customer",
                    format!("`customer.id` is 1 to {MAX_CUSTOMER_ID} bytes of text"),
                ));
            }
            c.name = field("customer.name", c.name.take())?;
            c.email = field("customer.email", c.email.take())?;
            c.phone = field("customer.phone", c.phone.take())?;
        }
        Ok(r)
    }
}

/// `POST /widget/{channel_id}/messages`: a visitor writes or presses a button.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The browser's own id for this message: a retried send with the same one is stored once.
    pub echo_id: String,
    #[serde(default)]
    pub text: Option<String>,
    /// Files the upload call stored.
    #[serde(default)]
    pub files: Vec<SentFile>,
    /// A pressed button's data.
    #[serde(default)]
    pub button: Option<String>,
    /// What the pre-chat form asked.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl SendRequest {
    pub fn parse(body: &[u8]) -> Result<SendRequest> {
        let mut r: SendRequest = parse(body)?;
        let echo_ok = (1..=64).contains(&r.echo_id.len())
            && r.echo_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !echo_ok {
            return Err(invalid("invalid_echo_id", "`echo_id` is 1 to 64 letters, digits, `-` or `_`"));
        }
        r.text = r.text.filter(|t| !t.trim().is_empty());
        if r.text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
            return Err(invalid("text_too_long", format!("`text` is longer than {MAX_TEXT} characters")));
        }
        if r.files.len() > MAX_FILES {
            return Err(invalid("too_many_files", format!("a message carries at most {MAX_FILES} files")));
        }
        if r.button.as_ref().is_some_and(|b| b.is_empty() || b.len() > 1024) {
            return Err(invalid("invalid_button", "`button` is 1 to 1024 bytes"));
        }
        if r.text.is_none() && r.files.is_empty() && r.button.is_none() {
            return Err(invalid("empty_message", "a message needs `text`, `files` or `button`"));
        }
        r.name = field("name", r.name.take())?;
        r.phone = field("phone", r.phone.take())?;
        r.email = field("email", r.email.take())?;
        Ok(r)
    }
}

/// A file in a visitor's message: the reference the upload call returned, with its name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentFile {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub mime: Option<String>,
}

impl SentFile {
    /// The file's name, cleaned (no path, no control characters, not empty).
    pub fn clean_name(&self) -> String {
        let base = self.name.rsplit(['/', '\\']).next().unwrap_or_default();
        let name: String = base.chars().filter(|c| !c.is_control()).take(MAX_FIELD).collect();
        if name.trim().is_empty() {
            "file".into()
        } else {
            name.trim().to_string()
        }
    }

    /// The type the visitor's browser named, when it is a plausible one.
    pub fn clean_mime(&self) -> String {
        let plausible = |m: &&String| {
            m.len() <= 100
                && m.split_once('/').is_some_and(|(a, b)| {
                    let ok =
                        |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b".+-_".contains(&c));
                    ok(a) && ok(b)
                })
        };
        self.mime.as_ref().filter(plausible).cloned().unwrap_or_else(|| "application/octet-stream".into())
    }
}

/// A file in an envelope: stored already, named by its content's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeFile {
    pub sha256: String,
    pub name: String,
    pub mime: String,
}

/// What okno's visitor API hands the channel's `receive` for one message, signed with the
/// channel's secret (`X-Okno-Widget-Signature`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// [`crate::identity::visitor_id`] of the visitor's token.
    pub visitor: String,
    pub echo_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<EnvelopeFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// How a file an envelope names is fetched: `widget-file:<sha256>`, read by `Platform::fetch`
/// from okno's file store.
pub const FILE_SCHEME: &str = "widget-file:";

impl Envelope {
    pub fn parse(body: &[u8]) -> Result<Envelope> {
        let e: Envelope = parse(body)?;
        if !valid_visitor_id(&e.visitor) {
            return Err(invalid("invalid_visitor", "not a visitor of this channel"));
        }
        let files_ok = e.files.iter().all(|f| f.sha256.len() == 64 && f.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
        if !files_ok || e.echo_id.is_empty() || e.echo_id.len() > 64 {
            return Err(invalid("invalid_envelope", "the envelope names a file or message id okno did not make"));
        }
        Ok(e)
    }

    /// The inbound message for channel `channel_id`. The platform id is the visitor's and the
    /// browser's echo id together, so a retried send is recorded once.
    pub fn into_inbound(self, channel_id: &str) -> InboundMessage {
        let attachments = self
            .files
            .into_iter()
            .map(|f| InboundAttachment::Url { name: f.name, mime: f.mime, url: format!("{FILE_SCHEME}{}", f.sha256) })
            .collect();
        let context = self.email.as_ref().map(|e| json!({"widget": {"email": e}}));
        InboundMessage {
            channel_id: channel_id.into(),
            sender: InboundSender {
                user_id: self.visitor.clone(),
                chat_id: self.visitor.clone(),
                username: None,
                display_name: self.name,
                phone: self.phone,
                // What a visitor typed proves no address: a contact is never joined by it.
                email: None,
                is_group: false,
            },
            external_id: format!("{}:{}", self.visitor, self.echo_id),
            text: self.text,
            attachments,
            button_data: self.button,
            reply_to: None,
            reply_to_external: None,
            author: None,
            member: None,
            bot_turn: false,
            subscription: None,
            survey: Default::default(),
            context,
            conversation_hint: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_are_checked() {
        let ok = SendRequest::parse(br#"{"echo_id": "e-1", "text": " hi "}"#).unwrap();
        assert_eq!(ok.text.as_deref(), Some(" hi "));
        let code = |b: &[u8]| SendRequest::parse(b).unwrap_err().code;
        assert_eq!(code(br#"{"echo_id": "e 1", "text": "x"}"#), "invalid_echo_id");
        assert_eq!(code(br#"{"echo_id": "e1", "text": "  "}"#), "empty_message");
        assert_eq!(code(br#"{"echo_id": "e1", "text": "x", "extra": 1}"#), "invalid_body");
        assert_eq!(code(format!(r#"{{"echo_id": "e1", "text": "{}"}}"#, "я".repeat(4097)).as_bytes()), "text_too_long");
        assert_eq!(code(br#"{"echo_id": "e1", "text": "x", "name": "a\u0000b"}"#), "invalid_field");
        assert_eq!(code(b"not json"), "invalid_body");
    }

    #[test]
    fn sessions_are_checked() {
        assert_eq!(SessionRequest::parse(b"").unwrap(), SessionRequest { token: None, customer: None });
        assert_eq!(SessionRequest::parse(br#"{"token": "nope"}"#).unwrap_err().code, "invalid_token");
        let c = SessionRequest::parse(br#"{"customer": {"id": " 42 ", "hash": "ab"}}"#).unwrap();
        assert_eq!(c.customer.unwrap().id, "42");
        assert_eq!(SessionRequest::parse(br#"{"customer": {"id": ""}}"#).unwrap_err().code, "invalid_customer");
    }

    #[test]
    fn an_envelope_becomes_one_inbound_message() {
        let visitor = crate::identity::visitor_id(&"a".repeat(32));
        let body = serde_json::to_vec(&json!({"visitor": visitor, "echo_id": "e1", "text": "hi", "name": "Анна",
            "files": [{"sha256": "b".repeat(64), "name": "a.png", "mime": "image/png"}]}))
        .unwrap();
        let m = Envelope::parse(&body).unwrap().into_inbound("ch1");
        assert_eq!(m.external_id, format!("{visitor}:e1"));
        assert_eq!(m.sender.display_name.as_deref(), Some("Анна"));
        assert!(matches!(&m.attachments[0], InboundAttachment::Url { url, .. } if url.starts_with(FILE_SCHEME)));
        assert!(Envelope::parse(br#"{"visitor": "someone", "echo_id": "e1"}"#).is_err());
    }

    proptest::proptest! {
        /// Any bytes are answered with a value or a coded error, never a panic; what is
        /// accepted holds the rules.
        #[test]
        fn any_body_is_answered(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(r) = SendRequest::parse(&body) {
                proptest::prop_assert!(r.text.is_some() || !r.files.is_empty() || r.button.is_some());
                proptest::prop_assert!(r.echo_id.len() <= 64);
            }
            if let Ok(r) = SessionRequest::parse(&body) {
                proptest::prop_assert!(r.token.as_deref().is_none_or(valid_token));
            }
            if let Ok(e) = Envelope::parse(&body) {
                proptest::prop_assert!(valid_visitor_id(&e.visitor));
            }
        }

        /// JSON-shaped bodies with the right keys and wild values reach the field checks.
        #[test]
        fn json_bodies_are_answered(
            echo in "[ -~]{0,70}", text in proptest::option::of(".{0,50}"),
            name in proptest::option::of(".{0,20}"), files in proptest::collection::vec("[ -~]{0,80}", 0..12),
            token in proptest::option::of("[0-9a-z]{0,70}"), id in ".{0,30}", hash in ".{0,70}",
        ) {
            let send = json!({"echo_id": echo, "text": text, "name": name, "files": files});
            let _ = SendRequest::parse(send.to_string().as_bytes());
            let session = json!({"token": token, "customer": {"id": id, "hash": hash, "name": name}});
            if let Ok(s) = SessionRequest::parse(session.to_string().as_bytes()) {
                let c = s.customer.unwrap();
                proptest::prop_assert!(!c.id.is_empty() && c.id.len() <= MAX_CUSTOMER_ID);
            }
            let env = json!({"visitor": id, "echo_id": echo, "text": text});
            let _ = Envelope::parse(env.to_string().as_bytes());
        }
    }
}
