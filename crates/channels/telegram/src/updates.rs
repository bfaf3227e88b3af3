//! Reading Telegram updates: what each one means for okno. Messages (private and group, with
//! media, contacts, replies), edits, button presses and membership changes (a user blocking or
//! unblocking the bot) map onto store operations; media becomes attachments fetched later
//! through `getFile` (the `tg-file:` source), within Telegram's 20 MB download limit.

use okno_channel::{InboundAttachment, InboundMessage, InboundSender};

use crate::adapter::TOKEN_PREFIX;
use crate::api::{FileRef, Message, Update, User};

/// Largest file the Bot API lets a bot download.
pub const DOWNLOAD_LIMIT: u64 = 20 * 1024 * 1024;
/// Source-URL scheme of an attachment still to be fetched through `getFile`.
pub const FILE_SCHEME: &str = "tg-file:";

/// What an update asks okno to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// A new message or a button press.
    Inbound(Box<InboundMessage>),
    /// A message was edited.
    Edit { user_id: String, external_id: String, text: Option<String> },
    /// The user blocked (`true`) or unblocked (`false`) the bot.
    Membership { user_id: String, blocked: bool },
    /// A group became a supergroup with a new id.
    Migrated { from: String, to: String },
    /// Nothing okno keeps.
    Ignore,
}

/// A parsed update: the action, and the callback query to answer, if any.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub action: Action,
    pub callback_query_id: Option<String>,
}

/// The platform id okno keeps for a Telegram message: chat and message id.
pub fn external_id(chat: i64, message_id: i64) -> String {
    format!("{chat}:{message_id}")
}

fn sender(chat_id: i64, chat_kind: &str, chat_title: Option<&str>, from: Option<&User>) -> InboundSender {
    if chat_kind == "private" {
        let from_name = from.map(User::full_name);
        InboundSender {
            user_id: from.map_or(chat_id, |u| u.id).to_string(),
            chat_id: chat_id.to_string(),
            username: from.and_then(|u| u.username.clone()),
            display_name: from_name,
            phone: None,
            email: None,
            is_group: false,
        }
    } else {
        // A group is one party: the thread is with the group, and replies go to it.
        InboundSender {
            user_id: chat_id.to_string(),
            chat_id: chat_id.to_string(),
            username: None,
            display_name: chat_title.map(str::to_string),
            phone: None,
            email: None,
            is_group: true,
        }
    }
}

fn file_attachment(f: &FileRef, default_name: &str, default_mime: &str) -> InboundAttachment {
    let name = f.file_name.clone().unwrap_or_else(|| default_name.to_string());
    let mime = f.mime_type.clone().unwrap_or_else(|| default_mime.to_string());
    attachment(&f.file_id, f.file_size, name, mime)
}

fn attachment(file_id: &str, size: Option<u64>, name: String, mime: String) -> InboundAttachment {
    match size {
        Some(size) if size > DOWNLOAD_LIMIT => InboundAttachment::Failed {
            name,
            mime,
            size: size as i64,
            note: format!(
                "not downloaded: {:.1} MB is over the {} MB a Telegram bot may download",
                size as f64 / 1_048_576.0,
                DOWNLOAD_LIMIT / 1_048_576
            ),
        },
        _ => InboundAttachment::Url { name, mime, url: format!("{FILE_SCHEME}{file_id}") },
    }
}

fn attachments(m: &Message) -> Vec<InboundAttachment> {
    let mut out = Vec::new();
    if let Some(sizes) = &m.photo {
        if let Some(best) =
            sizes.iter().max_by_key(|p| (i128::from(p.width) * i128::from(p.height), p.file_size.unwrap_or(0)))
        {
            out.push(attachment(&best.file_id, best.file_size, "photo.jpg".into(), "image/jpeg".into()));
        }
    }
    if let Some(d) = &m.document {
        out.push(file_attachment(d, "document", "application/octet-stream"));
    }
    if let Some(v) = &m.voice {
        out.push(file_attachment(v, "voice.ogg", "audio/ogg"));
    }
    if let Some(v) = &m.video {
        out.push(file_attachment(v, "video.mp4", "video/mp4"));
    }
    if let Some(s) = &m.sticker {
        out.push(file_attachment(s, "sticker.webp", "image/webp"));
    }
    out
}

fn message(channel_id: &str, m: &Message) -> InboundMessage {
    let mut sender = sender(m.chat.id, &m.chat.kind, m.chat.title.as_deref(), m.from.as_ref());
    let mut text = m.text.clone().or_else(|| m.caption.clone());
    if let Some(c) = &m.contact {
        let own = c.user_id.is_some() && c.user_id == m.from.as_ref().map(|u| u.id);
        if own && m.chat.kind == "private" {
            sender.phone = okno_domain::model::normalize_phone(&c.phone_number).ok();
        }
        text.get_or_insert_with(|| format!("{} {}", c.first_name, c.phone_number));
    }
    let author = (m.chat.kind != "private").then(|| m.from.as_ref().map(author_of)).flatten();
    InboundMessage {
        channel_id: channel_id.into(),
        sender,
        external_id: external_id(m.chat.id, m.message_id),
        text,
        attachments: attachments(m),
        button_data: None,
        reply_to: None,
        reply_to_external: m.reply_to_message.as_ref().map(|r| external_id(r.chat.id, r.message_id)),
        author,
        member: (m.chat.kind != "private").then(|| m.from.as_ref().map(person)).flatten(),
        bot_turn: false,
        subscription: None,
        survey: Default::default(),
        context: None,
        conversation_hint: None,
    }
}

/// A person inside a group, as okno keeps them.
fn person(u: &User) -> InboundSender {
    InboundSender {
        user_id: u.id.to_string(),
        chat_id: u.id.to_string(),
        username: u.username.clone(),
        display_name: Some(u.full_name()),
        phone: None,
        email: None,
        is_group: false,
    }
}

/// A message with no text, caption, file or contact: a service message.
fn is_service(m: &Message) -> bool {
    m.text.is_none()
        && m.caption.is_none()
        && m.photo.is_none()
        && m.document.is_none()
        && m.voice.is_none()
        && m.video.is_none()
        && m.sticker.is_none()
        && m.contact.is_none()
}

fn author_of(u: &User) -> String {
    match &u.username {
        Some(name) => format!("{} (@{name})", u.full_name()),
        None => u.full_name(),
    }
}

/// Reads one update.
pub fn parse(channel_id: &str, u: &Update) -> Parsed {
    let action = if let Some(m) = &u.message {
        match m.migrate_to_chat_id {
            Some(to) => Action::Migrated { from: m.chat.id.to_string(), to: to.to_string() },
            // Service messages (members joined, a group created or migrated…) carry nothing to keep.
            None if is_service(m) => Action::Ignore,
            None => Action::Inbound(Box::new(message(channel_id, m))),
        }
    } else if let Some(m) = &u.edited_message {
        let s = sender(m.chat.id, &m.chat.kind, m.chat.title.as_deref(), m.from.as_ref());
        Action::Edit {
            user_id: s.user_id,
            external_id: external_id(m.chat.id, m.message_id),
            text: m.text.clone().or_else(|| m.caption.clone()),
        }
    } else if let Some(q) = &u.callback_query {
        let origin = q.origin();
        let (chat, kind) = match origin {
            Some((chat, _)) if chat < 0 => (chat, "group"),
            Some((chat, _)) => (chat, "private"),
            None => (q.from.id, "private"),
        };
        let mut s = sender(chat, kind, None, Some(&q.from));
        if kind == "group" {
            s.display_name = None;
        }
        let data = q.data.clone().unwrap_or_default();
        return Parsed {
            action: Action::Inbound(Box::new(InboundMessage {
                channel_id: channel_id.into(),
                sender: s,
                external_id: format!("cb:{}", q.id),
                text: None,
                attachments: Vec::new(),
                button_data: Some(data),
                reply_to: None,
                reply_to_external: origin.map(|(c, m)| external_id(c, m)),
                author: (kind == "group").then(|| author_of(&q.from)),
                member: Some(person(&q.from)),
                bot_turn: false,
                subscription: None,
                survey: Default::default(),
                context: None,
                conversation_hint: None,
            })),
            callback_query_id: Some(q.id.clone()),
        };
    } else if let Some(m) = &u.my_chat_member {
        // In a private chat the person is the party; in a group, the group is.
        let user_id = if m.chat.kind == "private" { m.from.id.to_string() } else { m.chat.id.to_string() };
        match m.new_chat_member.status.as_str() {
            "kicked" | "left" => Action::Membership { user_id, blocked: true },
            "member" | "administrator" => Action::Membership { user_id, blocked: false },
            _ => Action::Ignore,
        }
    } else {
        Action::Ignore
    };
    Parsed { action, callback_query_id: None }
}

/// Button data sent as a token stands for the data kept in the store.
pub fn callback_token(data: &str) -> Option<&str> {
    data.strip_prefix(TOKEN_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(v: serde_json::Value) -> Update {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn private_text_with_reply_and_largest_photo() {
        let u = update(
            json!({"update_id": 1, "message": {"message_id": 5, "date": 1, "chat": {"id": 7, "type": "private"},
            "from": {"id": 7, "is_bot": false, "first_name": "Ann", "username": "ann"}, "caption": "look",
            "photo": [{"file_id": "s", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 100},
                      {"file_id": "l", "file_unique_id": "l", "width": 1280, "height": 960, "file_size": 90000}],
            "reply_to_message": {"message_id": 4, "date": 1, "chat": {"id": 7, "type": "private"}}}}),
        );
        let Action::Inbound(m) = parse("ch", &u).action else { panic!() };
        assert_eq!(m.external_id, "7:5");
        assert_eq!(m.text.as_deref(), Some("look"));
        assert_eq!(m.reply_to_external.as_deref(), Some("7:4"));
        assert_eq!(m.sender.display_name.as_deref(), Some("Ann"));
        assert!(matches!(&m.attachments[0], InboundAttachment::Url { url, .. } if url == "tg-file:l"));
    }

    #[test]
    fn files_over_twenty_megabytes_are_noted_not_dropped() {
        let u = update(
            json!({"update_id": 1, "message": {"message_id": 5, "date": 1, "chat": {"id": 7, "type": "private"},
            "document": {"file_id": "big", "file_unique_id": "b", "file_name": "film.mkv", "file_size": 30_000_000u64}}}),
        );
        let Action::Inbound(m) = parse("ch", &u).action else { panic!() };
        assert!(
            matches!(&m.attachments[0], InboundAttachment::Failed { note, name, .. } if note.contains("20 MB") && name == "film.mkv")
        );
    }

    #[test]
    fn group_messages_belong_to_the_group_with_the_author_kept() {
        let u = update(
            json!({"update_id": 1, "message": {"message_id": 9, "date": 1, "chat": {"id": -100, "type": "group", "title": "Склад"},
            "from": {"id": 7, "is_bot": false, "first_name": "Ann"}, "text": "готово"}}),
        );
        let Action::Inbound(m) = parse("ch", &u).action else { panic!() };
        assert_eq!(m.sender.user_id, "-100");
        assert_eq!(m.sender.display_name.as_deref(), Some("Склад"));
        assert_eq!(m.author.as_deref(), Some("Ann"));
        assert!(m.sender.is_group, "a group chat is marked as one");
        let member = m.member.as_ref().expect("the person inside the group");
        assert_eq!((member.user_id.as_str(), member.is_group), ("7", false));
        let private = update(
            json!({"update_id": 2, "message": {"message_id": 3, "date": 1, "chat": {"id": 7, "type": "private"},
            "from": {"id": 7, "is_bot": false, "first_name": "Ann"}, "text": "привет"}}),
        );
        let Action::Inbound(p) = parse("ch", &private).action else { panic!() };
        assert!(!p.sender.is_group && p.member.is_none(), "a private chat is one person");
    }

    #[test]
    fn own_contact_fills_the_phone_and_blocking_is_seen() {
        let u = update(
            json!({"update_id": 1, "message": {"message_id": 5, "date": 1, "chat": {"id": 7, "type": "private"},
            "from": {"id": 7, "is_bot": false, "first_name": "Ann"}, "contact": {"phone_number": "79990001122", "first_name": "Ann", "user_id": 7}}}),
        );
        let Action::Inbound(m) = parse("ch", &u).action else { panic!() };
        assert_eq!(m.sender.phone.as_deref(), Some("+79990001122"));
        let b = update(
            json!({"update_id": 2, "my_chat_member": {"chat": {"id": 7, "type": "private"}, "from": {"id": 7, "is_bot": false, "first_name": "Ann"},
            "date": 1, "old_chat_member": {"status": "member"}, "new_chat_member": {"status": "kicked"}}}),
        );
        assert!(matches!(parse("ch", &b).action, Action::Membership { blocked: true, .. }));
    }
}
