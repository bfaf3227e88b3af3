//! Reading MAX updates: what each one means for okno. Messages (dialogs and group chats, with
//! files, contacts and replies), edits, button presses, a person starting the bot (from a deep
//! link with a payload or not) or stopping it, and the bot added to or removed from a group.
//! Files become attachments fetched later through [`crate::Max`]'s `fetch` (the `max-file:`
//! reference).
//!
//! MAX updates carry no update id: a redelivered message keeps its `mid`, a press its
//! `callback_id`, a start its person and time — those are the platform ids okno de-duplicates on.

use okno_channel::{InboundAttachment, InboundEvent, InboundMessage, InboundSender};
use serde::Deserialize;
use serde_json::Value;

use crate::api::User;

/// Reference scheme of a file a person sent, downloaded by `fetch`.
pub const FILE_SCHEME: &str = "max-file:";
/// Prefix of button data kept by okno behind a token (data longer than a callback payload).
pub const TOKEN_PREFIX: &str = "okno:";

/// One update, as far as okno reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_type: String,
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub callback: Option<Callback>,
    #[serde(default)]
    pub chat_id: Option<i64>,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub payload: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub sender: Option<User>,
    #[serde(default)]
    pub recipient: Option<Recipient>,
    #[serde(default)]
    pub link: Option<Link>,
    #[serde(default)]
    pub body: Option<Body>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Recipient {
    #[serde(default)]
    pub chat_id: Option<i64>,
    #[serde(default)]
    pub chat_type: Option<String>,
    #[serde(default)]
    pub user_id: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Body {
    pub mid: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Link {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: Option<LinkedBody>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LinkedBody {
    #[serde(default)]
    pub mid: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Callback {
    pub callback_id: String,
    #[serde(default)]
    pub payload: Option<String>,
    pub user: User,
}

/// What one update means, with the press to answer.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub event: InboundEvent,
    pub press_id: Option<String>,
}

impl Parsed {
    fn of(event: InboundEvent) -> Self {
        Parsed { event, press_id: None }
    }
}

impl Message {
    /// Whether the message is in a group chat (or a channel) rather than a dialog. Group ids are
    /// negative where the chat type is missing.
    fn in_group(&self) -> bool {
        let r = self.recipient.as_ref();
        match r.and_then(|r| r.chat_type.as_deref()) {
            Some("dialog") => false,
            Some(_) => true,
            None => r.and_then(|r| r.chat_id).is_some_and(|c| c < 0),
        }
    }

    fn chat_id(&self) -> Option<i64> {
        self.recipient.as_ref().and_then(|r| r.chat_id)
    }
}

/// A person, as okno keeps them: okno writes to a person by their user id (`?user_id=`), so
/// their chat is named by it too.
fn person(u: &User) -> InboundSender {
    InboundSender {
        user_id: u.user_id.to_string(),
        chat_id: u.user_id.to_string(),
        username: u.username.clone().filter(|n| !n.is_empty()),
        display_name: Some(u.full_name()),
        phone: None,
        email: None,
        is_group: false,
    }
}

/// A group chat as one party: the thread is with the group, and replies go to it.
fn group(chat_id: i64) -> InboundSender {
    InboundSender {
        user_id: chat_id.to_string(),
        chat_id: chat_id.to_string(),
        username: None,
        display_name: None,
        phone: None,
        email: None,
        is_group: true,
    }
}

fn author_of(u: &User) -> String {
    match u.username.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("{} (@{name})", u.full_name()),
        None => u.full_name(),
    }
}

/// Who a message is from: the person in a dialog, the group (with its member) in a group.
fn parties(m: &Message) -> Option<(InboundSender, Option<InboundSender>)> {
    let from = m.sender.as_ref();
    if m.in_group() {
        let chat = m.chat_id()?;
        Some((group(chat), from.map(person)))
    } else {
        Some((person(from?), None))
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A file's reference for `fetch`: its download URL, which must be http(s).
fn file_ref(payload: &Value) -> Option<String> {
    let url = str_of(payload, "url")?;
    (url.starts_with("https://") || url.starts_with("http://")).then(|| format!("{FILE_SCHEME}{url}"))
}

fn fetched(name: String, mime: &str, payload: &Value) -> InboundAttachment {
    match file_ref(payload) {
        Some(url) => InboundAttachment::Url { name, mime: mime.to_string(), url },
        None => InboundAttachment::Failed {
            name,
            mime: mime.to_string(),
            size: 0,
            note: "not downloaded: MAX gave no address for this file".into(),
        },
    }
}

/// A MIME type guessed from a file name, for files MAX names without one.
fn mime_of(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "zip" => "application/zip",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// A shared contact's name and phone, from its vCard.
fn vcard(vcf: &str) -> (Option<String>, Option<String>) {
    let mut name = None;
    let mut phone = None;
    for line in vcf.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let key = key.to_ascii_uppercase();
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if key == "FN" && name.is_none() {
            name = Some(value.to_string());
        } else if (key == "TEL" || key.starts_with("TEL;")) && phone.is_none() {
            phone = Some(value.to_string());
        }
    }
    (name, phone)
}

/// What a message's attachments bring: files, and a contact as text (and the sender's phone
/// when they shared their own).
struct Carried {
    files: Vec<InboundAttachment>,
    contact: Option<String>,
    own_phone: Option<String>,
    location: Option<String>,
}

fn carried(list: &[Value], sender: Option<i64>) -> Carried {
    let mut out = Carried { files: Vec::new(), contact: None, own_phone: None, location: None };
    for a in list {
        let kind = a.get("type").and_then(Value::as_str).unwrap_or_default();
        let payload = a.get("payload").unwrap_or(&Value::Null);
        match kind {
            "image" => out.files.push(fetched("photo.jpg".into(), "image/jpeg", payload)),
            "video" => out.files.push(fetched("video.mp4".into(), "video/mp4", payload)),
            "audio" => out.files.push(fetched("audio.mp3".into(), "audio/mpeg", payload)),
            "sticker" => out.files.push(fetched("sticker.webp".into(), "image/webp", payload)),
            "file" => {
                let name = str_of(a, "filename").unwrap_or("file").to_string();
                let mime = mime_of(&name);
                let size = a.get("size").and_then(Value::as_i64);
                out.files.push(match fetched(name.clone(), mime, payload) {
                    InboundAttachment::Failed { note, .. } => {
                        InboundAttachment::Failed { name, mime: mime.into(), size: size.unwrap_or(0), note }
                    }
                    ok => ok,
                });
            }
            "contact" => {
                let (name, phone) = vcard(str_of(payload, "vcf_info").unwrap_or_default());
                let info = payload.get("max_info");
                let name = name.or_else(|| info.and_then(|i| str_of(i, "first_name")).map(str::to_string));
                let owner = info.and_then(|i| i.get("user_id")).and_then(Value::as_i64);
                if let Some(p) = &phone {
                    if owner.is_some() && owner == sender {
                        out.own_phone = okno_domain::model::normalize_phone(p).ok();
                    }
                }
                let text = [name, phone].into_iter().flatten().collect::<Vec<_>>().join(" ");
                if !text.is_empty() {
                    out.contact = Some(text);
                }
            }
            "location" => {
                let lat = a.get("latitude").and_then(Value::as_f64);
                let lon = a.get("longitude").and_then(Value::as_f64);
                if let (Some(lat), Some(lon)) = (lat, lon) {
                    out.location = Some(format!("📍 {lat}, {lon}"));
                }
            }
            _ => {}
        }
    }
    out
}

fn message(channel_id: &str, m: &Message) -> Option<InboundMessage> {
    let body = m.body.as_ref()?;
    let (mut sender, member) = parties(m)?;
    let list = body.attachments.as_deref().unwrap_or_default();
    let c = carried(list, m.sender.as_ref().map(|u| u.user_id));
    let mut text = body.text.clone().filter(|t| !t.is_empty());
    if let Some(phone) = c.own_phone.filter(|_| !sender.is_group) {
        sender.phone = Some(phone);
    }
    text = text.or(c.contact).or(c.location);
    if text.is_none() && c.files.is_empty() {
        return None;
    }
    let reply = m
        .link
        .as_ref()
        .filter(|l| l.kind.as_deref() == Some("reply"))
        .and_then(|l| l.message.as_ref()?.mid.clone())
        .filter(|mid| !mid.is_empty());
    Some(InboundMessage {
        channel_id: channel_id.into(),
        author: member.as_ref().and(m.sender.as_ref()).map(author_of),
        sender,
        external_id: body.mid.clone(),
        text,
        attachments: c.files,
        button_data: None,
        reply_to: None,
        reply_to_external: reply,
        member,
        bot_turn: false,
        subscription: None,
        survey: Default::default(),
        context: None,
        conversation_hint: None,
    })
}

fn press(channel_id: &str, cb: &Callback, on: Option<&Message>) -> InboundMessage {
    let in_group = on.is_some_and(Message::in_group);
    let chat = on.and_then(Message::chat_id);
    let (sender, author) = match (in_group, chat) {
        (true, Some(chat)) => (group(chat), Some(author_of(&cb.user))),
        _ => (person(&cb.user), None),
    };
    InboundMessage {
        channel_id: channel_id.into(),
        sender,
        external_id: format!("cb:{}", cb.callback_id),
        text: None,
        attachments: Vec::new(),
        button_data: Some(cb.payload.clone().unwrap_or_default()),
        reply_to: None,
        reply_to_external: on.and_then(|m| m.body.as_ref()).map(|b| b.mid.clone()),
        author,
        member: Some(person(&cb.user)),
        bot_turn: false,
        subscription: None,
        survey: Default::default(),
        context: None,
        conversation_hint: None,
    }
}

/// A start from the bot's Start button or a deep link, as okno's neutral form of it: the text
/// `/start <payload>` (or `/start`), from the person. Its id is the person and the moment, the
/// same for a redelivery of this start.
fn started(channel_id: &str, u: &Update, user: &User) -> InboundMessage {
    let text = match u.payload.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => format!("/start {p}"),
        None => "/start".to_string(),
    };
    InboundMessage {
        channel_id: channel_id.into(),
        sender: person(user),
        external_id: format!("start:{}:{}", user.user_id, u.timestamp.unwrap_or_default()),
        text: Some(text),
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

/// Reads one update; `bot_id` is the bot's own user id (to tell the bot removed from a group
/// from another member leaving). Unknown or unreadable updates are ignored, never an error.
pub fn parse(channel_id: &str, bot_id: Option<i64>, raw: &Value) -> Vec<Parsed> {
    let Ok(u) = Update::deserialize(raw) else {
        return vec![Parsed::of(InboundEvent::Ignore)];
    };
    let ignore = || vec![Parsed::of(InboundEvent::Ignore)];
    // The bot's own messages (sent or edited by okno) come back in some chats: they are okno's.
    let own = u.message.as_ref().and_then(|m| m.sender.as_ref()).is_some_and(|s| bot_id == Some(s.user_id));
    if own && matches!(u.update_type.as_str(), "message_created" | "message_edited") {
        return ignore();
    }
    match u.update_type.as_str() {
        "message_created" => match u.message.as_ref().and_then(|m| message(channel_id, m)) {
            Some(m) => vec![Parsed::of(InboundEvent::Message(Box::new(m)))],
            None => ignore(),
        },
        "message_edited" => {
            let Some(m) = &u.message else { return ignore() };
            let (Some(body), Some((sender, _))) = (m.body.as_ref(), parties(m)) else { return ignore() };
            vec![Parsed::of(InboundEvent::Edit {
                user_id: sender.user_id,
                external_id: body.mid.clone(),
                text: body.text.clone(),
            })]
        }
        "message_callback" => {
            let Some(cb) = &u.callback else { return ignore() };
            vec![Parsed {
                event: InboundEvent::Message(Box::new(press(channel_id, cb, u.message.as_ref()))),
                press_id: Some(cb.callback_id.clone()),
            }]
        }
        "bot_started" => {
            let Some(user) = &u.user else { return ignore() };
            vec![
                Parsed::of(InboundEvent::Membership { user_id: user.user_id.to_string(), blocked: false }),
                Parsed::of(InboundEvent::Message(Box::new(started(channel_id, &u, user)))),
            ]
        }
        "bot_stopped" => match &u.user {
            Some(user) => {
                vec![Parsed::of(InboundEvent::Membership { user_id: user.user_id.to_string(), blocked: true })]
            }
            None => ignore(),
        },
        "bot_added" | "bot_removed" => match u.chat_id {
            Some(chat) => vec![Parsed::of(InboundEvent::Membership {
                user_id: chat.to_string(),
                blocked: u.update_type == "bot_removed",
            })],
            None => ignore(),
        },
        "user_removed" => {
            let is_bot = u.user.as_ref().is_some_and(|user| bot_id == Some(user.user_id));
            match u.chat_id {
                Some(chat) if is_bot => {
                    vec![Parsed::of(InboundEvent::Membership { user_id: chat.to_string(), blocked: true })]
                }
                _ => ignore(),
            }
        }
        _ => ignore(),
    }
}

/// Button data sent as a token stands for the data kept by okno.
pub fn callback_token(data: &str) -> Option<&str> {
    data.strip_prefix(TOKEN_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: i64, name: &str) -> Value {
        json!({"user_id": id, "first_name": name, "is_bot": false, "last_activity_time": 1})
    }

    fn only(v: Value) -> InboundEvent {
        let mut got = parse("ch", Some(9), &v);
        assert_eq!(got.len(), 1, "{got:?}");
        got.remove(0).event
    }

    fn inbound(v: Value) -> InboundMessage {
        match only(v) {
            InboundEvent::Message(m) => *m,
            other => panic!("a message expected, got {other:?}"),
        }
    }

    #[test]
    fn a_dialog_message_is_from_the_person_with_its_reply_and_file() {
        let m = inbound(json!({"update_type": "message_created", "timestamp": 5, "message": {
            "sender": user(7, "Анна"), "recipient": {"chat_id": 1007, "chat_type": "dialog", "user_id": 9},
            "link": {"type": "reply", "message": {"mid": "mid.1", "seq": 1, "text": "?"}},
            "body": {"mid": "mid.2", "seq": 2, "text": "вот", "attachments": [
                {"type": "file", "payload": {"url": "https://fu.example/f", "token": "t"}, "filename": "счёт.pdf", "size": 3}]}}}));
        assert_eq!((m.sender.user_id.as_str(), m.sender.chat_id.as_str(), m.sender.is_group), ("7", "7", false));
        assert_eq!(m.external_id, "mid.2");
        assert_eq!(m.reply_to_external.as_deref(), Some("mid.1"));
        assert!(m.member.is_none());
        assert!(matches!(&m.attachments[0],
            InboundAttachment::Url { name, mime, url } if name == "счёт.pdf" && mime == "application/pdf" && url == "max-file:https://fu.example/f"));
    }

    #[test]
    fn a_group_message_belongs_to_the_group_with_the_person_as_member() {
        let m = inbound(json!({"update_type": "message_created", "message": {
            "sender": user(7, "Анна"), "recipient": {"chat_id": -500, "chat_type": "chat"},
            "body": {"mid": "mid.3", "seq": 3, "text": "готово"}}}));
        assert!(m.sender.is_group);
        assert_eq!(m.sender.user_id, "-500");
        let member = m.member.expect("the person inside the group");
        assert_eq!((member.user_id.as_str(), member.is_group), ("7", false));
        assert_eq!(m.author.as_deref(), Some("Анна"));
    }

    #[test]
    fn a_press_carries_its_data_its_message_and_the_callback_to_answer() {
        let v = json!({"update_type": "message_callback", "callback": {"timestamp": 1, "callback_id": "cb1", "payload": "answer:yes", "user": user(7, "Анна")},
            "message": {"recipient": {"chat_id": -500, "chat_type": "chat"}, "body": {"mid": "mid.4", "seq": 4, "text": "Подходит?"}}});
        let got = parse("ch", None, &v);
        assert_eq!(got[0].press_id.as_deref(), Some("cb1"));
        let InboundEvent::Message(m) = &got[0].event else { panic!("a press expected") };
        assert_eq!(m.button_data.as_deref(), Some("answer:yes"));
        assert_eq!(m.reply_to_external.as_deref(), Some("mid.4"));
        assert!(m.sender.is_group);
        assert_eq!(m.member.as_ref().map(|p| p.user_id.as_str()), Some("7"));
    }

    #[test]
    fn a_start_with_a_payload_is_start_and_the_code() {
        let v = json!({"update_type": "bot_started", "timestamp": 77, "chat_id": 1007, "user": user(7, "Анна"), "payload": "K7Q2"});
        let got = parse("ch", None, &v);
        assert!(matches!(&got[0].event, InboundEvent::Membership { blocked: false, user_id } if user_id == "7"));
        let InboundEvent::Message(m) = &got[1].event else { panic!("a message expected") };
        assert_eq!(m.text.as_deref(), Some("/start K7Q2"));
        assert_eq!(m.external_id, "start:7:77", "a redelivered start keeps its id");
    }

    #[test]
    fn stopping_and_removing_the_bot_block_and_others_leaving_do_not() {
        let stop = json!({"update_type": "bot_stopped", "chat_id": 1007, "user": user(7, "Анна")});
        assert!(matches!(only(stop), InboundEvent::Membership { blocked: true, user_id } if user_id == "7"));
        let removed =
            json!({"update_type": "bot_removed", "chat_id": -500, "user": user(7, "Анна"), "is_channel": false});
        assert!(matches!(only(removed), InboundEvent::Membership { blocked: true, user_id } if user_id == "-500"));
        let bot_out =
            json!({"update_type": "user_removed", "chat_id": -500, "user": user(9, "bot"), "is_channel": false});
        assert!(matches!(only(bot_out), InboundEvent::Membership { blocked: true, .. }));
        let other_out =
            json!({"update_type": "user_removed", "chat_id": -500, "user": user(8, "Олег"), "is_channel": false});
        assert!(matches!(only(other_out), InboundEvent::Ignore));
    }

    #[test]
    fn an_own_contact_gives_the_phone_and_a_text() {
        let vcf = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Анна\r\nTEL;TYPE=cell:79990001122\r\nEND:VCARD\r\n";
        let m = inbound(json!({"update_type": "message_created", "message": {
            "sender": user(7, "Анна"), "recipient": {"chat_id": 1007, "chat_type": "dialog"},
            "body": {"mid": "mid.5", "seq": 5, "text": "", "attachments": [
                {"type": "contact", "payload": {"vcf_info": vcf, "max_info": {"user_id": 7, "first_name": "Анна"}}}]}}}));
        assert_eq!(m.sender.phone.as_deref(), Some("+79990001122"));
        assert_eq!(m.text.as_deref(), Some("Анна 79990001122"));
    }

    #[test]
    fn the_bots_own_messages_are_not_taken_for_a_persons() {
        let own = json!({"update_type": "message_created", "message": {
            "sender": {"user_id": 9, "first_name": "bot", "is_bot": true}, "recipient": {"chat_id": -500, "chat_type": "chat"},
            "body": {"mid": "mid.7", "seq": 7, "text": "Задача"}}});
        assert!(matches!(only(own.clone()), InboundEvent::Ignore));
        let mut edited = own;
        edited["update_type"] = json!("message_edited");
        assert!(matches!(only(edited), InboundEvent::Ignore));
    }

    #[test]
    fn an_edit_names_the_message_and_unknown_updates_are_ignored() {
        let e = only(json!({"update_type": "message_edited", "message": {
            "sender": user(7, "Анна"), "recipient": {"chat_id": 1007, "chat_type": "dialog"},
            "body": {"mid": "mid.6", "seq": 6, "text": "исправлено"}}}));
        assert!(matches!(e, InboundEvent::Edit { user_id, external_id, text }
            if user_id == "7" && external_id == "mid.6" && text.as_deref() == Some("исправлено")));
        assert!(matches!(only(json!({"update_type": "dialog_muted", "chat_id": 1})), InboundEvent::Ignore));
        assert!(matches!(only(json!({"no": "type"})), InboundEvent::Ignore));
        assert!(matches!(
            only(json!({"update_type": "message_created", "message": {"body": {"mid": "x", "text": "t"}}})),
            InboundEvent::Ignore
        ));
    }
}
