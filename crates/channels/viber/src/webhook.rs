//! Reading Viber callbacks. Shapes from the REST Bot API's callback reference and the
//! `viber-bot-python` SDK's test payloads (`tests/api/viber_requests/*`), as summarised in
//! `research/B_messenger_specs.md` §4.3:
//!
//! * `message` — `sender{id,name,avatar}` and `message{type,text,media,file_name,…}`; a keyboard
//!   button's press is a `message` whose `text` is the button's `ActionBody`, which okno marks
//!   with [`BUTTON_PREFIX`];
//! * `subscribed` (`user`) / `unsubscribed` (`user_id`) — the person allowed or stopped the bot;
//! * `conversation_started` — the person opened the chat; a deep link's `context` becomes
//!   `/start <context>`, as a Telegram start payload (a link code links the contact);
//! * `delivered` / `seen` / `failed` (`message_token`, `desc`) — delivery receipts;
//! * `webhook` — Viber's check of the address, answered 200 and kept nothing of.
//!
//! A person's Viber id is opaque and stable per bot: it is both their user id and their chat id.
//! Parsing never panics and never fails: what it cannot read becomes [`InboundEvent::Ignore`].

use okno_channel::{InboundAttachment, InboundEvent, InboundMessage, InboundSender};
use okno_domain::model::MessageStatus;
use serde_json::Value;

/// Marks the `ActionBody` of okno's reply buttons, so a press is told from typed text.
pub const BUTTON_PREFIX: &str = "okno-btn:";
/// Prefix of button data okno keeps for long data (`okno-btn:okno:<token>`).
pub const TOKEN_PREFIX: &str = "okno:";

fn s(v: &Value) -> Option<&str> {
    v.as_str().filter(|x| !x.is_empty())
}

/// A `message_token` (a JSON number, or a string in some SDKs' payloads).
pub fn token_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(t) if !t.is_empty() && t.len() <= 40 => Some(t.clone()),
        _ => None,
    }
}

/// The event name, when the body is a Viber callback.
pub fn event_name(body: &Value) -> Option<&str> {
    body.get("event")?.as_str()
}

/// One callback as okno's event.
pub fn parse(channel_id: &str, body: &Value) -> InboundEvent {
    parse_inner(channel_id, body).unwrap_or(InboundEvent::Ignore)
}

fn sender(user: &Value) -> Option<InboundSender> {
    let id: String = s(&user["id"])?.chars().take(200).collect();
    Some(InboundSender {
        user_id: id.clone(),
        chat_id: id,
        username: None,
        display_name: s(&user["name"]).map(|n| n.chars().take(200).collect()),
        phone: None,
        email: None,
        is_group: false,
    })
}

fn parse_inner(channel_id: &str, body: &Value) -> Option<InboundEvent> {
    let receipt = |status: MessageStatus, reason: Option<String>| {
        Some(InboundEvent::Status { external_id: token_of(&body["message_token"])?, status, reason })
    };
    match event_name(body)? {
        "message" => {
            let sender = sender(&body["sender"])?;
            let external_id = token_of(&body["message_token"])?;
            message(channel_id, sender, external_id, &body["message"]).map(|m| InboundEvent::Message(Box::new(m)))
        }
        "subscribed" => Some(InboundEvent::Membership { user_id: sender(&body["user"])?.user_id, blocked: false }),
        "unsubscribed" => Some(InboundEvent::Membership { user_id: s(&body["user_id"])?.to_string(), blocked: true }),
        "conversation_started" => {
            let context = s(&body["context"])?.trim();
            if context.is_empty() || context.len() > 200 {
                return None;
            }
            let sender = sender(&body["user"])?;
            let external_id = format!("cs-{}", token_of(&body["message_token"])?);
            let mut m = blank(channel_id, sender, external_id);
            m.text = Some(format!("/start {context}"));
            Some(InboundEvent::Message(Box::new(m)))
        }
        "delivered" => receipt(MessageStatus::Delivered, None),
        "seen" => receipt(MessageStatus::Read, None),
        "failed" => {
            let desc = s(&body["desc"]).map(|d| d.chars().take(300).collect::<String>());
            receipt(MessageStatus::Failed, Some(desc.unwrap_or_else(|| "Viber reported the message failed".into())))
        }
        _ => None,
    }
}

fn blank(channel_id: &str, sender: InboundSender, external_id: String) -> InboundMessage {
    InboundMessage {
        channel_id: channel_id.into(),
        sender,
        external_id,
        text: None,
        attachments: Vec::new(),
        button_data: None,
        reply_to: None,
        reply_to_external: None,
        author: None,
        member: None,
        bot_turn: false,
        subscription: None,
        survey: Default::default(),
        context: None,
        conversation_hint: None,
    }
}

fn guess_mime(kind: &str, name: &str) -> String {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match (kind, ext.as_str()) {
        (_, "jpg" | "jpeg") => "image/jpeg",
        (_, "png") => "image/png",
        (_, "gif") => "image/gif",
        (_, "webp") => "image/webp",
        (_, "mp4") => "video/mp4",
        (_, "pdf") => "application/pdf",
        ("picture", _) => "image/jpeg",
        ("video", _) => "video/mp4",
        _ => "application/octet-stream",
    }
    .to_string()
}

fn message(channel_id: &str, sender: InboundSender, external_id: String, m: &Value) -> Option<InboundMessage> {
    let mut out = blank(channel_id, sender, external_id);
    let kind = m["type"].as_str().unwrap_or("");
    match kind {
        "text" => {
            let text = s(&m["text"])?;
            match text.strip_prefix(BUTTON_PREFIX) {
                Some(data) if !data.is_empty() => out.button_data = Some(data.to_string()),
                _ => out.text = Some(text.to_string()),
            }
        }
        "picture" | "video" | "file" | "sticker" => {
            let url = s(&m["media"])?;
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2000 {
                return None;
            }
            let name: String = match s(&m["file_name"]) {
                Some(n) => n.chars().take(200).collect(),
                None => match kind {
                    "picture" => "picture.jpg".into(),
                    "video" => "video.mp4".into(),
                    "sticker" => "sticker.png".into(),
                    _ => "file.bin".into(),
                },
            };
            let mime = guess_mime(kind, &name);
            out.attachments.push(InboundAttachment::Url { name, mime, url: url.to_string() });
            out.text = s(&m["text"]).map(str::to_string);
        }
        "location" => {
            let l = &m["location"];
            let (lat, lon) = (l["lat"].as_f64()?, l["lon"].as_f64()?);
            let mut t = format!("📍 {lat}, {lon}");
            if let Some(a) = s(&l["address"]) {
                t.push('\n');
                t.push_str(a);
            }
            out.text = Some(t);
        }
        "contact" => {
            let c = &m["contact"];
            let name = s(&c["name"]).unwrap_or("Contact");
            out.text = Some(match s(&c["phone_number"]) {
                Some(p) => format!("👤 {name}: {p}"),
                None => format!("👤 {name}"),
            });
        }
        "url" => out.text = Some(s(&m["media"])?.to_string()),
        other => {
            let shown: String = if other.is_empty() { "unknown" } else { other }.chars().take(40).collect();
            out.text = Some(format!("[Viber: a message of type `{shown}` okno cannot show]"));
        }
    }
    Some(out)
}

/// The token in button data okno made for long data (`okno:<token>`).
pub fn button_token(data: &str) -> Option<&str> {
    data.strip_prefix(TOKEN_PREFIX).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_sdks_payloads_are_read() {
        let m = json!({"event":"message","timestamp":1457764197627u64,"chat_hostname":"SN-1","message_token":4912661846655238145u64,
            "sender":{"id":"01234567890A=","name":"John McClane","avatar":"http://avatar.example.com","country":"UK","language":"en","api_version":1},
            "message":{"type":"text","text":"a message to the service","tracking_data":"tracking data"},"silent":false});
        let InboundEvent::Message(msg) = parse("ch", &m) else { panic!("a message") };
        assert_eq!(msg.external_id, "4912661846655238145");
        assert_eq!(msg.sender.user_id, "01234567890A=");
        assert_eq!(msg.sender.display_name.as_deref(), Some("John McClane"));
        assert_eq!(msg.text.as_deref(), Some("a message to the service"));

        let un = json!({"event":"unsubscribed","timestamp":1,"user_id":"01234567890A=","message_token":1});
        assert!(matches!(parse("ch", &un), InboundEvent::Membership { blocked: true, .. }));
        let sub = json!({"event":"subscribed","timestamp":1,"user":{"id":"01234567890A="},"message_token":1});
        assert!(matches!(parse("ch", &sub), InboundEvent::Membership { blocked: false, .. }));
        let f = json!({"event":"failed","timestamp":1,"message_token":7,"user_id":"x","desc":"failure description"});
        assert!(
            matches!(parse("ch", &f), InboundEvent::Status { status: MessageStatus::Failed, reason: Some(r), external_id } if r == "failure description" && external_id == "7")
        );
        let seen = json!({"event":"seen","timestamp":1,"message_token":7,"user_id":"x"});
        assert!(matches!(parse("ch", &seen), InboundEvent::Status { status: MessageStatus::Read, .. }));
    }

    #[test]
    fn conversation_started_with_context_is_a_start_payload() {
        let cs = json!({"event":"conversation_started","timestamp":1,"message_token":9,"type":"open",
            "context":"AB12CD34","user":{"id":"u1","name":"Анна"},"subscribed":false});
        let InboundEvent::Message(m) = parse("ch", &cs) else { panic!("a message") };
        assert_eq!(m.text.as_deref(), Some("/start AB12CD34"));
        assert_eq!(m.external_id, "cs-9");
        let bare = json!({"event":"conversation_started","timestamp":1,"message_token":9,"user":{"id":"u1"}});
        assert!(matches!(parse("ch", &bare), InboundEvent::Ignore));
    }

    #[test]
    fn presses_media_and_unknown_types() {
        let press = json!({"event":"message","message_token":1,"sender":{"id":"u"},"message":{"type":"text","text":"okno-btn:menu:2"}});
        let InboundEvent::Message(m) = parse("ch", &press) else { panic!() };
        assert_eq!(m.button_data.as_deref(), Some("menu:2"));
        assert_eq!(m.text, None);
        let pic = json!({"event":"message","message_token":2,"sender":{"id":"u"},"message":{"type":"file","media":"https://dl.viber.com/x","file_name":"счёт.pdf","size":10}});
        let InboundEvent::Message(m) = parse("ch", &pic) else { panic!() };
        assert!(
            matches!(&m.attachments[0], InboundAttachment::Url { name, mime, .. } if name == "счёт.pdf" && mime == "application/pdf")
        );
        let odd = json!({"event":"message","message_token":3,"sender":{"id":"u"},"message":{"type":"hologram"}});
        let InboundEvent::Message(m) = parse("ch", &odd) else { panic!() };
        assert!(m.text.unwrap_or_default().contains("hologram"));
        assert!(matches!(parse("ch", &json!({"event":"webhook","timestamp":1})), InboundEvent::Ignore));
        assert!(matches!(parse("ch", &json!([1, 2])), InboundEvent::Ignore));
    }
}
