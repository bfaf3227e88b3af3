//! Reading OK's webhook requests: what each one means for okno.
//!
//! A request is one JSON event (a list of them is read too): `MESSAGE_CREATED` — a person's
//! message in a dialog with the group or in a group chat (`sender.user_id`,
//! `recipient.chat_id`, `message{text, mid, attachments, reply_to}`) — and
//! `MESSAGE_CALLBACK` — a press of a `CALLBACK` button (`callbackId`, `payload`). Chat
//! events (`CHAT_SYSTEM`: titles, members joining) carry nothing okno keeps. The event does
//! not say whether its chat is a dialog or a group chat; the platform asks OK
//! (`GET /graph/me/chat/{chat_id}`) and hands the answer to [`received`].

use okno_channel::{InboundAttachment, InboundEvent, InboundMessage, InboundSender, Received};
use serde_json::Value;

/// The scheme of an attachment's reference, fetched by the platform: `ok-file:<url>`.
pub const FILE_SCHEME: &str = "ok-file:";
/// Prefix of a button's payload that stands for data kept by okno (too long for OK).
pub const TOKEN_PREFIX: &str = "okno:";

/// One event as OK sent it.
#[derive(Debug, Clone)]
pub struct Update {
    /// The chat it happened in (`chat:…`).
    pub chat_id: String,
    /// The person (`user:…`) and their name.
    pub user_id: String,
    pub user_name: Option<String>,
    pub what: What,
}

/// What happened.
#[derive(Debug, Clone)]
pub enum What {
    Message {
        mid: String,
        text: Option<String>,
        attachments: Vec<InboundAttachment>,
        reply_to: Option<String>,
    },
    Press {
        callback_id: String,
        payload: String,
    },
    /// Something okno does not keep (a chat event, a type it does not know).
    Other,
}

/// Whether a chat is a group chat, and its title, as OK describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatKind {
    pub group: bool,
    pub title: Option<String>,
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn update(v: &Value) -> Update {
    let chat_id = string(&v["recipient"]["chat_id"]).unwrap_or_default();
    let user_id = string(&v["sender"]["user_id"]).unwrap_or_default();
    let user_name = string(&v["sender"]["name"]);
    let kind = v["webhookType"].as_str().unwrap_or_default();
    let what = if chat_id.is_empty() || user_id.is_empty() {
        What::Other
    } else if kind == "MESSAGE_CALLBACK" || (kind.is_empty() && v.get("callbackId").is_some()) {
        match string(&v["callbackId"]) {
            Some(callback_id) => What::Press { callback_id, payload: string(&v["payload"]).unwrap_or_default() },
            None => What::Other,
        }
    } else if kind == "MESSAGE_CREATED" || (kind.is_empty() && v["message"].is_object()) {
        let m = &v["message"];
        match string(&m["mid"]) {
            Some(mid) => What::Message {
                mid,
                text: string(&m["text"]),
                attachments: attachments(m),
                reply_to: string(&m["reply_to"]).or_else(|| string(&m["reply_to"]["mid"])),
            },
            None => What::Other,
        }
    } else {
        What::Other
    };
    Update { chat_id, user_id, user_name, what }
}

/// The files of a message, each with a reference the platform downloads; a shared link, a
/// location or a contact becomes a line of text instead.
fn attachments(m: &Value) -> Vec<InboundAttachment> {
    let mut list: Vec<&Value> = m["attachments"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    if m["attachment"].is_object() {
        list.push(&m["attachment"]);
    }
    list.into_iter()
        .filter_map(|a| {
            let p = &a["payload"];
            let (name, mime) = match a["type"].as_str()? {
                "IMAGE" => ("image.jpg", "image/jpeg"),
                "VIDEO" => ("video.mp4", "video/mp4"),
                "AUDIO" => ("audio.mp3", "audio/mpeg"),
                "STICKER" => ("sticker.png", "image/png"),
                "FILE" => ("file", "application/octet-stream"),
                _ => return None,
            };
            let name = string(&p["name"]).or_else(|| string(&p["filename"])).unwrap_or_else(|| name.to_string());
            match p["url"].as_str().filter(|u| u.starts_with("https://") || u.starts_with("http://")) {
                Some(url) => {
                    Some(InboundAttachment::Url { name, mime: mime.into(), url: format!("{FILE_SCHEME}{url}") })
                }
                None => Some(InboundAttachment::Failed {
                    name,
                    mime: mime.into(),
                    size: 0,
                    note: "not downloaded: OK gave no address for this file".into(),
                }),
            }
        })
        .collect()
}

/// Text for attachments that are not files (a shared link, a location, a contact).
fn described(m: &Value) -> Option<String> {
    let list: Vec<&Value> = m["attachments"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    let lines: Vec<String> = list
        .into_iter()
        .filter_map(|a| {
            let p = &a["payload"];
            match a["type"].as_str()? {
                "SHARE" => string(&p["url"]),
                "LOCATION" => {
                    let (lat, lon) = (p["latitude"].as_f64()?, p["longitude"].as_f64()?);
                    Some(format!("{lat}, {lon}"))
                }
                "CONTACT" => string(&p["name"]).or_else(|| string(&p["vcfInfo"])),
                _ => None,
            }
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Reads a request's body: one event or a list of them. Events okno does not understand are
/// kept as [`What::Other`]; a message without text takes the text of its shared links,
/// locations and contacts. A body that is not JSON is an error.
pub fn parse(body: &[u8]) -> Result<Vec<Update>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not an OK webhook event: {e}"))?;
    let events: Vec<&Value> = match &v {
        Value::Array(list) => list.iter().collect(),
        Value::Object(_) => vec![&v],
        _ => return Err("an OK webhook event is a JSON object".into()),
    };
    Ok(events
        .into_iter()
        .map(|e| {
            let mut u = update(e);
            if let What::Message { text, .. } = &mut u.what {
                if text.is_none() {
                    *text = described(&e["message"]);
                }
            }
            u
        })
        .collect())
}

/// The person as okno keeps them.
fn person(u: &Update) -> InboundSender {
    InboundSender {
        user_id: u.user_id.clone(),
        chat_id: u.chat_id.clone(),
        username: None,
        display_name: u.user_name.clone(),
        phone: None,
        email: None,
        is_group: false,
    }
}

/// What one event means, given its chat. A press carries its `press_id`
/// (`<chat_id> <callbackId>`, what answering it needs).
pub fn received(channel_id: &str, u: &Update, chat: &ChatKind) -> Received {
    let sender = if chat.group {
        // A group chat is one party: the thread is with the chat, and replies go to it.
        InboundSender {
            user_id: u.chat_id.clone(),
            chat_id: u.chat_id.clone(),
            username: None,
            display_name: chat.title.clone(),
            phone: None,
            email: None,
            is_group: true,
        }
    } else {
        person(u)
    };
    let member = chat.group.then(|| {
        let mut p = person(u);
        p.chat_id = u.user_id.clone();
        p
    });
    let author = if chat.group { u.user_name.clone().or_else(|| Some(u.user_id.clone())) } else { None };
    let base = |external_id: String| InboundMessage {
        channel_id: channel_id.into(),
        sender: sender.clone(),
        external_id,
        text: None,
        attachments: Vec::new(),
        button_data: None,
        reply_to: None,
        reply_to_external: None,
        author: author.clone(),
        member: member.clone(),
        bot_turn: false,
        subscription: None,
        survey: Default::default(),
        context: None,
        conversation_hint: None,
    };
    match &u.what {
        What::Message { mid, text, attachments, reply_to } => {
            let mut m = base(mid.clone());
            m.text = text.clone();
            m.attachments = attachments.clone();
            m.reply_to_external = reply_to.clone();
            if m.text.is_none() && m.attachments.is_empty() {
                return Received::new(InboundEvent::Ignore);
            }
            Received::new(InboundEvent::Message(Box::new(m)))
        }
        What::Press { callback_id, payload } => {
            let mut m = base(format!("cb:{callback_id}"));
            m.button_data = Some(payload.clone());
            let mut r = Received::new(InboundEvent::Message(Box::new(m)));
            r.press_id = Some(press_id(&u.chat_id, callback_id));
            r
        }
        What::Other => Received::new(InboundEvent::Ignore),
    }
}

/// A press's id for [`okno_channel::Adapter::answer_press`]: the chat and the callback.
pub fn press_id(chat_id: &str, callback_id: &str) -> String {
    format!("{chat_id} {callback_id}")
}

/// The chat and the callback of a press id.
pub fn split_press_id(press_id: &str) -> Option<(&str, &str)> {
    press_id.split_once(' ').filter(|(c, id)| !c.is_empty() && !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(v: Value) -> Update {
        parse(v.to_string().as_bytes()).unwrap_or_default().remove(0)
    }

    #[test]
    fn a_dialog_message_is_the_person_and_a_group_message_is_the_chat_with_its_member() {
        let u = one(json!({"webhookType": "MESSAGE_CREATED", "sender": {"user_id": "user:1", "name": "Анна"},
            "recipient": {"chat_id": "chat:C1"}, "message": {"text": "привет", "mid": "mid:C1.1", "reply_to": "mid:C1.0"},
            "timestamp": 1}));
        let r = received("ch", &u, &ChatKind::default());
        let InboundEvent::Message(m) = r.event else { panic!("a message, got {:?}", r.event) };
        assert_eq!((m.sender.user_id.as_str(), m.sender.chat_id.as_str()), ("user:1", "chat:C1"));
        assert!(!m.sender.is_group && m.member.is_none());
        assert_eq!(m.external_id, "mid:C1.1");
        assert_eq!(m.reply_to_external.as_deref(), Some("mid:C1.0"));
        let g = received("ch", &u, &ChatKind { group: true, title: Some("Склад".into()) });
        let InboundEvent::Message(m) = g.event else { panic!("a message") };
        assert!(m.sender.is_group);
        assert_eq!(m.sender.user_id, "chat:C1");
        assert_eq!(m.sender.display_name.as_deref(), Some("Склад"));
        assert_eq!(m.member.as_ref().map(|p| p.user_id.as_str()), Some("user:1"));
        assert_eq!(m.author.as_deref(), Some("Анна"));
    }

    #[test]
    fn files_become_references_and_a_press_carries_its_answer_id() {
        let u = one(json!({"webhookType": "MESSAGE_CREATED", "sender": {"user_id": "user:1"},
            "recipient": {"chat_id": "chat:D1"}, "message": {"text": "", "mid": "mid:D1.2",
            "attachments": [{"type": "IMAGE", "payload": {"url": "https://i.mycdn.me/x.jpg"}},
                            {"type": "FILE", "payload": {"token": "t"}}, {"type": "SHARE", "payload": {"url": "https://ok.ru/x"}}]}}));
        let What::Message { text, attachments, .. } = &u.what else { panic!("a message") };
        assert_eq!(text.as_deref(), Some("https://ok.ru/x"));
        assert!(matches!(&attachments[0], InboundAttachment::Url { url, mime, .. }
            if url == "ok-file:https://i.mycdn.me/x.jpg" && mime == "image/jpeg"));
        assert!(matches!(&attachments[1], InboundAttachment::Failed { .. }));
        let p = one(json!({"webhookType": "MESSAGE_CALLBACK", "sender": {"user_id": "user:1"},
            "recipient": {"chat_id": "chat:D1"}, "callbackId": "cb1", "payload": "answer:yes"}));
        let r = received("ch", &p, &ChatKind::default());
        assert_eq!(r.press_id.as_deref(), Some("chat:D1 cb1"));
        assert_eq!(split_press_id("chat:D1 cb1"), Some(("chat:D1", "cb1")));
        let InboundEvent::Message(m) = r.event else { panic!("a press") };
        assert_eq!(m.button_data.as_deref(), Some("answer:yes"));
    }

    #[test]
    fn chat_events_and_strangers_are_ignored_and_garbage_is_an_error() {
        let u = one(
            json!({"webhookType": "CHAT_SYSTEM", "sender": {"user_id": "user:1"}, "recipient": {"chat_id": "chat:C1"}}),
        );
        assert!(matches!(received("ch", &u, &ChatKind::default()).event, InboundEvent::Ignore));
        assert!(parse(b"not json").is_err());
        assert!(parse(b"42").is_err());
        assert_eq!(parse(b"[]").map(|v| v.len()).ok(), Some(0));
    }
}
