//! Reading VK events (Callback API and Bots Long Poll deliver the same `{type, object,
//! group_id, event_id}`): what each one means for okno. Messages in private and in group
//! conversations (peer ids from 2,000,000,000), with files and replies; a deep link's `ref`
//! as `/start <ref>`; edits; callback-button presses (`message_event`); a person allowing or
//! forbidding the community's messages. Everything is read from untyped JSON: a field missing
//! or of another type makes the event ignored, never a panic.

use okno_channel::{InboundAttachment, InboundMessage, InboundSender};
use serde_json::Value;

use crate::text::{read_payload, Payload};

/// Peer ids of group conversations start here (`2000000000 + chat_id`).
pub const CHAT_PEER_BASE: i64 = 2_000_000_000;
/// Source-URL scheme of a file named in a VK message, downloaded by [`crate::Vk`]'s `fetch`.
pub const FILE_SCHEME: &str = "vk-file:";

/// What an event asks okno to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// A new message or a button press (`button_data` set; the payload may be a token).
    Inbound(Box<InboundMessage>),
    Edit {
        user_id: String,
        external_id: String,
        text: Option<String>,
    },
    Membership {
        user_id: String,
        blocked: bool,
    },
    /// The Callback API's confirmation request (answered with the confirmation string).
    Confirmation,
    Ignore,
}

/// A parsed event: the action, the press to answer, and whether the press's data is a token
/// for data okno keeps.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub action: Action,
    /// `<event_id>:<user_id>:<peer_id>`: what `messages.sendMessageEventAnswer` needs.
    pub press_id: Option<String>,
    pub token: Option<String>,
}

impl Parsed {
    fn just(action: Action) -> Self {
        Parsed { action, press_id: None, token: None }
    }
}

/// The platform id okno keeps for a VK message: its conversation and its number in it
/// (`conversation_message_id`; a community sees chat messages without a global id).
pub fn external_id(peer_id: i64, cmid: i64) -> String {
    format!("{peer_id}:{cmid}")
}

/// The conversation and number an external id names.
pub fn parse_external(external: &str) -> Option<(i64, i64)> {
    let (p, c) = external.split_once(':')?;
    Some((p.parse().ok()?, c.parse().ok()?))
}

/// What a press id names: the event, who pressed, where.
pub fn parse_press_id(press_id: &str) -> Option<(&str, i64, i64)> {
    let mut it = press_id.rsplitn(3, ':');
    let peer = it.next()?.parse().ok()?;
    let user = it.next()?.parse().ok()?;
    let event = it.next()?;
    (!event.is_empty()).then_some((event, user, peer))
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn person(user_id: i64) -> InboundSender {
    InboundSender {
        user_id: user_id.to_string(),
        chat_id: user_id.to_string(),
        username: None,
        display_name: None,
        phone: None,
        email: None,
        is_group: false,
    }
}

/// The party of a conversation: the person in private, the group conversation otherwise.
fn sender(peer_id: i64, from_id: i64) -> InboundSender {
    if peer_id >= CHAT_PEER_BASE {
        InboundSender {
            user_id: peer_id.to_string(),
            chat_id: peer_id.to_string(),
            username: None,
            display_name: None,
            phone: None,
            email: None,
            is_group: true,
        }
    } else {
        person(from_id)
    }
}

/// The object of `message_new`: `{message, client_info}` since 5.103, the message itself before.
fn message_of(object: &Value) -> &Value {
    match object.get("message") {
        Some(m) if m.is_object() => m,
        _ => object,
    }
}

fn file(url: Option<&str>, name: String, mime: &str) -> Option<InboundAttachment> {
    let url = url.filter(|u| u.starts_with("http://") || u.starts_with("https://"))?;
    Some(InboundAttachment::Url { name, mime: mime.to_string(), url: format!("{FILE_SCHEME}{url}") })
}

fn mime_of(ext: &str) -> &'static str {
    match ext.to_ascii_lowercase().as_str() {
        "pdf" => "application/pdf",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "txt" => "text/plain",
        "zip" => "application/zip",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// The files of a message: the largest size of a photo, documents, voice messages; a video or
/// an audio track VK gives bots no file for is kept as a note with its link.
fn attachments(m: &Value) -> Vec<InboundAttachment> {
    let mut out = Vec::new();
    for a in m.get("attachments").and_then(Value::as_array).into_iter().flatten() {
        let kind = a.get("type").and_then(Value::as_str).unwrap_or_default();
        let body = a.get(kind).unwrap_or(&Value::Null);
        let got = match kind {
            "photo" => {
                let best = body.get("sizes").and_then(Value::as_array).and_then(|sizes| {
                    sizes.iter().max_by_key(|s| {
                        int(s.get("width").unwrap_or(&Value::Null)).unwrap_or(0)
                            * int(s.get("height").unwrap_or(&Value::Null)).unwrap_or(0)
                    })
                });
                let url = best.and_then(|s| s.get("url")).and_then(Value::as_str);
                file(url, "photo.jpg".into(), "image/jpeg")
            }
            "doc" => {
                let ext = body.get("ext").and_then(Value::as_str).unwrap_or_default();
                let title = body.get("title").and_then(Value::as_str).unwrap_or("document").to_string();
                file(body.get("url").and_then(Value::as_str), title, mime_of(ext))
            }
            "audio_message" => {
                let (url, name, mime) = match body.get("link_ogg").and_then(Value::as_str) {
                    Some(u) => (Some(u), "voice.ogg", "audio/ogg"),
                    None => (body.get("link_mp3").and_then(Value::as_str), "voice.mp3", "audio/mpeg"),
                };
                file(url, name.into(), mime)
            }
            "video" | "audio" => {
                let owner = int(body.get("owner_id").unwrap_or(&Value::Null)).unwrap_or(0);
                let id = int(body.get("id").unwrap_or(&Value::Null)).unwrap_or(0);
                let title = body.get("title").and_then(Value::as_str).unwrap_or(kind).to_string();
                Some(InboundAttachment::Failed {
                    name: title,
                    mime: if kind == "video" { "video/mp4" } else { "audio/mpeg" }.into(),
                    size: 0,
                    note: format!(
                        "VK gives a community no file for a {kind}; it is at https://vk.com/{kind}{owner}_{id}"
                    ),
                })
            }
            _ => None,
        };
        out.extend(got);
    }
    out
}

/// The text okno reads: a deep link's `ref` is `/start <ref>` (okno's neutral form of
/// "started with a payload"), VK's Start button `/start`, otherwise what the person wrote.
fn text_of(m: &Value) -> Option<String> {
    if let Some(r) = m.get("ref").and_then(Value::as_str).map(str::trim).filter(|r| !r.is_empty()) {
        return Some(format!("/start {r}"));
    }
    let start = m
        .get("payload")
        .and_then(read_payload)
        .is_some_and(|p| matches!(p, Payload::Raw(r) if r.replace(' ', "") == "{\"command\":\"start\"}"));
    if start {
        return Some("/start".into());
    }
    m.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_string)
}

fn message_new(channel_id: &str, object: &Value) -> Action {
    let m = message_of(object);
    let (Some(peer), Some(from), Some(cmid)) = (
        m.get("peer_id").and_then(int),
        m.get("from_id").and_then(int),
        m.get("conversation_message_id").and_then(int),
    ) else {
        return Action::Ignore;
    };
    // The community's own messages, and other communities' bots in a chat, are not people.
    if from <= 0 || m.get("out").and_then(int) == Some(1) {
        return Action::Ignore;
    }
    let text = text_of(m);
    let files = attachments(m);
    if text.is_none() && files.is_empty() {
        return Action::Ignore;
    }
    let group = peer >= CHAT_PEER_BASE;
    let reply_to_external = m.get("reply_message").and_then(|r| {
        let rp = r.get("peer_id").and_then(int).unwrap_or(peer);
        r.get("conversation_message_id").and_then(int).map(|c| external_id(rp, c))
    });
    Action::Inbound(Box::new(InboundMessage {
        channel_id: channel_id.into(),
        sender: sender(peer, from),
        external_id: external_id(peer, cmid),
        text,
        attachments: files,
        button_data: None,
        reply_to: None,
        reply_to_external,
        author: group.then(|| format!("vk.com/id{from}")),
        member: group.then(|| person(from)),
        bot_turn: false,
        subscription: None,
        survey: Default::default(),
        context: None,
        conversation_hint: None,
    }))
}

fn message_edit(object: &Value) -> Action {
    let m = message_of(object);
    let (Some(peer), Some(from), Some(cmid)) = (
        m.get("peer_id").and_then(int),
        m.get("from_id").and_then(int),
        m.get("conversation_message_id").and_then(int),
    ) else {
        return Action::Ignore;
    };
    // VK reports the community's own edits too.
    if from <= 0 || m.get("out").and_then(int) == Some(1) {
        return Action::Ignore;
    }
    Action::Edit {
        user_id: sender(peer, from).user_id,
        external_id: external_id(peer, cmid),
        text: m.get("text").and_then(Value::as_str).map(str::to_string),
    }
}

fn message_event(channel_id: &str, object: &Value) -> Parsed {
    let (Some(user), Some(peer), Some(event_id)) = (
        object.get("user_id").and_then(int),
        object.get("peer_id").and_then(int),
        object.get("event_id").and_then(Value::as_str).filter(|e| !e.is_empty() && !e.contains(':')),
    ) else {
        return Parsed::just(Action::Ignore);
    };
    let (data, token) = match object.get("payload").and_then(read_payload) {
        Some(Payload::Data(d)) => (d, None),
        Some(Payload::Token(t)) => (t.clone(), Some(t)),
        Some(Payload::Raw(r)) => (r, None),
        None => (String::new(), None),
    };
    let group = peer >= CHAT_PEER_BASE;
    let origin = object.get("conversation_message_id").and_then(int).map(|c| external_id(peer, c));
    Parsed {
        action: Action::Inbound(Box::new(InboundMessage {
            channel_id: channel_id.into(),
            sender: sender(peer, user),
            external_id: format!("ev:{event_id}"),
            text: None,
            attachments: Vec::new(),
            button_data: Some(data),
            reply_to: None,
            reply_to_external: origin,
            author: group.then(|| format!("vk.com/id{user}")),
            member: Some(person(user)),
            bot_turn: false,
            subscription: None,
            survey: Default::default(),
            context: None,
            conversation_hint: None,
        })),
        press_id: Some(format!("{event_id}:{user}:{peer}")),
        token,
    }
}

/// Reads one event.
pub fn parse(channel_id: &str, event: &Value) -> Parsed {
    let object = event.get("object").unwrap_or(&Value::Null);
    match event.get("type").and_then(Value::as_str).unwrap_or_default() {
        "confirmation" => Parsed::just(Action::Confirmation),
        "message_new" => Parsed::just(message_new(channel_id, object)),
        "message_edit" => Parsed::just(message_edit(object)),
        "message_event" => message_event(channel_id, object),
        kind @ ("message_allow" | "message_deny") => match object.get("user_id").and_then(int) {
            Some(user) if user > 0 => {
                Parsed::just(Action::Membership { user_id: user.to_string(), blocked: kind == "message_deny" })
            }
            _ => Parsed::just(Action::Ignore),
        },
        _ => Parsed::just(Action::Ignore),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inbound(p: Parsed) -> InboundMessage {
        match p.action {
            Action::Inbound(m) => *m,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn a_private_message_with_a_reply_and_the_largest_photo() {
        let e = json!({"type": "message_new", "group_id": 1, "event_id": "e1", "object": {"message": {
            "id": 9, "peer_id": 7, "from_id": 7, "conversation_message_id": 3, "out": 0, "text": "смотрите",
            "attachments": [{"type": "photo", "photo": {"sizes": [
                {"type": "s", "width": 75, "height": 50, "url": "https://sun.userapi.com/s.jpg"},
                {"type": "x", "width": 604, "height": 403, "url": "https://sun.userapi.com/x.jpg"}]}}],
            "reply_message": {"conversation_message_id": 2, "peer_id": 7, "from_id": -1, "text": "?"}}}});
        let m = inbound(parse("ch", &e));
        assert_eq!(m.external_id, "7:3");
        assert_eq!(m.text.as_deref(), Some("смотрите"));
        assert_eq!(m.reply_to_external.as_deref(), Some("7:2"));
        assert!(!m.sender.is_group && m.member.is_none());
        assert!(
            matches!(&m.attachments[0], InboundAttachment::Url { url, .. } if url == "vk-file:https://sun.userapi.com/x.jpg")
        );
    }

    #[test]
    fn a_chat_message_belongs_to_the_chat_with_the_person_as_member() {
        let e = json!({"type": "message_new", "object": {"message": {
            "id": 0, "peer_id": 2_000_000_005i64, "from_id": 42, "conversation_message_id": 17, "text": "готово"}}});
        let m = inbound(parse("ch", &e));
        assert!(m.sender.is_group);
        assert_eq!(m.sender.user_id, "2000000005");
        assert_eq!(m.member.as_ref().map(|p| p.user_id.as_str()), Some("42"));
        assert_eq!(m.external_id, "2000000005:17");
    }

    #[test]
    fn a_deep_link_ref_becomes_start_with_the_code() {
        let e = json!({"type": "message_new", "object": {"message": {"peer_id": 7, "from_id": 7,
            "conversation_message_id": 1, "text": "Начать", "payload": "{\"command\":\"start\"}", "ref": "K7Q2", "ref_source": "vk.me"}}});
        assert_eq!(inbound(parse("ch", &e)).text.as_deref(), Some("/start K7Q2"));
        let plain = json!({"type": "message_new", "object": {"message": {"peer_id": 7, "from_id": 7,
            "conversation_message_id": 1, "text": "Начать", "payload": "{\"command\":\"start\"}"}}});
        assert_eq!(inbound(parse("ch", &plain)).text.as_deref(), Some("/start"));
    }

    #[test]
    fn presses_edits_and_permission_changes() {
        let e = json!({"type": "message_event", "object": {"user_id": 42, "peer_id": 2_000_000_001i64,
            "event_id": "abc", "payload": "{\"d\":\"task:take:1\"}", "conversation_message_id": 5}});
        let p = parse("ch", &e);
        assert_eq!(p.press_id.as_deref(), Some("abc:42:2000000001"));
        assert_eq!(parse_press_id("abc:42:2000000001"), Some(("abc", 42, 2_000_000_001)));
        let m = inbound(p);
        assert_eq!(m.button_data.as_deref(), Some("task:take:1"));
        assert_eq!(m.reply_to_external.as_deref(), Some("2000000001:5"));
        assert_eq!(m.member.as_ref().map(|p| p.user_id.as_str()), Some("42"));

        let edit = json!({"type": "message_edit", "object": {"peer_id": 7, "from_id": 7, "conversation_message_id": 3, "text": "исправлено"}});
        assert!(
            matches!(parse("ch", &edit).action, Action::Edit { user_id, external_id, text } if user_id == "7" && external_id == "7:3" && text.as_deref() == Some("исправлено"))
        );
        let own = json!({"type": "message_edit", "object": {"peer_id": 7, "from_id": -1, "out": 1, "conversation_message_id": 4, "text": "x"}});
        assert!(matches!(parse("ch", &own).action, Action::Ignore));
        let deny = json!({"type": "message_deny", "object": {"user_id": 7}});
        assert!(matches!(parse("ch", &deny).action, Action::Membership { blocked: true, .. }));
        let allow = json!({"type": "message_allow", "object": {"user_id": 7, "key": "k"}});
        assert!(matches!(parse("ch", &allow).action, Action::Membership { blocked: false, .. }));
        assert!(matches!(parse("ch", &json!({"type": "confirmation", "group_id": 1})).action, Action::Confirmation));
    }

    #[test]
    fn videos_are_noted_and_documents_fetched() {
        let e = json!({"type": "message_new", "object": {"message": {"peer_id": 7, "from_id": 7, "conversation_message_id": 1, "text": "",
            "attachments": [{"type": "video", "video": {"owner_id": 7, "id": 5, "title": "v"}},
                            {"type": "doc", "doc": {"title": "счёт.pdf", "ext": "pdf", "url": "https://vk.com/doc7_1"}}]}}});
        let m = inbound(parse("ch", &e));
        assert!(matches!(&m.attachments[0], InboundAttachment::Failed { note, .. } if note.contains("video7_5")));
        assert!(
            matches!(&m.attachments[1], InboundAttachment::Url { name, mime, .. } if name == "счёт.pdf" && mime == "application/pdf")
        );
    }
}
