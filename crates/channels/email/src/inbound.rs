//! A mail read from the folder as okno's inbound event, and one poll of the folder.
//!
//! - A person's mail becomes a message: the sender's address is the person, the text the
//!   operator reads is the message's text (the subject when the body is empty), the mail's
//!   `Message-ID` its platform id (so a mail read twice is stored once), `In-Reply-To` the
//!   message it answers, the subject and ids its `context`, the conversation okno's reply
//!   address tag names (for an answer from an address okno does not know); its files (and the whole mail,
//!   when the text was cut) are put into okno's file store as the mail is read.
//! - A bounce of okno's own mail is [`InboundEvent::Bounced`]: that message failed, with the
//!   server's words, and the address marked unreachable; a delayed-delivery notice and an automatic reply are nothing okno keeps, nor is
//!   okno's own mail found in the folder.
//!
//! The poll cursor is `"<uidvalidity>:<last uid>"`, carried by every event read, so okno moves
//! it only past what it stored; when the folder's UIDVALIDITY changed the folder is read from
//! the start, and the `Message-ID`s keep what was stored from coming in twice.

use okno_channel::{Context, InboundAttachment, InboundEvent, InboundMessage, InboundSender, Received};
use okno_domain::channel::UNSUBSCRIBE;
use serde_json::json;

use crate::imap::Fetched;
use crate::parse::{parse, MailKind, ParsedMail};

/// How a file inside a stored mail is named until it is fetched.
pub const PART_SCHEME: &str = "email-part:";

/// The name of the whole mail as it came, kept beside a message whose text was cut.
pub const ORIGINAL_NAME: &str = "original.eml";

/// How okno's reply address tag names a conversation: `support+c<conversation id>@shop.ru`.
pub const TAG_PREFIX: &str = "c";

/// The conversation a reply address tag names, when it is one of okno's: `c` and an id's 32
/// hex digits (mail systems may change the case of an address).
pub fn tagged_conversation(tag: Option<&str>) -> Option<String> {
    let id = tag?.strip_prefix(TAG_PREFIX).or_else(|| tag?.strip_prefix("C"))?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// Where reading stopped: the folder's numbering and the last UID stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub uid_validity: u32,
    pub last_uid: u32,
}

impl Cursor {
    /// Reads `"<uidvalidity>:<last uid>"`.
    pub fn parse(s: &str) -> Option<Cursor> {
        let (v, u) = s.trim().split_once(':')?;
        Some(Cursor { uid_validity: v.parse().ok()?, last_uid: u.parse().ok()? })
    }

    pub fn encode(&self) -> String {
        format!("{}:{}", self.uid_validity, self.last_uid)
    }

    /// The UID reading goes on after in a folder numbered `uid_validity`: the cursor's, or 0
    /// (the start) when there is no cursor or the numbering changed.
    pub fn after(cursor: Option<Cursor>, uid_validity: u32) -> u32 {
        cursor.filter(|c| c.uid_validity == uid_validity).map_or(0, |c| c.last_uid)
    }
}

/// One read mail as okno's event; `own` is the channel's address.
pub fn event(channel_id: &str, own: &str, mail: &ParsedMail, uid_validity: u32, uid: u32) -> InboundEvent {
    match &mail.kind {
        MailKind::Bounce(b) => match (&b.original_message_id, b.is_permanent()) {
            (Some(id), true) => InboundEvent::Bounced {
                external_id: id.clone(),
                reason: match (&b.status, &b.diagnostic) {
                    (_, Some(d)) => format!("the mail came back: {d}"),
                    (Some(s), None) => format!("the mail came back: {s}"),
                    (None, None) => "the mail came back undelivered".to_string(),
                },
            },
            _ => InboundEvent::Ignore,
        },
        MailKind::AutoReply => InboundEvent::Ignore,
        MailKind::Personal => {
            let Some(from) = mail.from.as_ref().filter(|p| !p.address.trim().is_empty()) else {
                return InboundEvent::Ignore;
            };
            let address = from.address.trim().to_lowercase();
            if address == own.trim().to_lowercase() {
                return InboundEvent::Ignore;
            }
            let text = if mail.text.trim().is_empty() { mail.subject.clone() } else { Some(mail.text.clone()) };
            // The nearest of the ids it answers that okno wrote, else the nearest at all.
            let thread = mail.thread_ids();
            let answers = thread.iter().find(|id| id.starts_with("okno.")).or(thread.first()).map(|id| id.to_string());
            InboundEvent::Message(Box::new(InboundMessage {
                channel_id: channel_id.into(),
                sender: InboundSender {
                    user_id: address.clone(),
                    chat_id: address.clone(),
                    username: None,
                    display_name: from.name.clone(),
                    phone: None,
                    email: Some(address),
                    is_group: false,
                },
                external_id: mail.message_id.clone().unwrap_or_else(|| format!("uid-{uid_validity}-{uid}")),
                text,
                attachments: Vec::new(),
                // A mail to `List-Unsubscribe`'s address (`support+unsubscribe@…`) is the press of
                // the broadcast's "unsubscribe" button.
                button_data: (mail.reply_tag(own).as_deref() == Some("unsubscribe")).then(|| UNSUBSCRIBE.to_string()),
                reply_to: None,
                reply_to_external: answers,
                author: None,
                member: None,
                bot_turn: false,
                subscription: None,
                survey: Default::default(),
                context: Some(json!({"email": {"subject": mail.subject, "message_id": mail.message_id,
                                               "references": mail.references, "tag": mail.reply_tag(own)}})),
                conversation_hint: tagged_conversation(mail.reply_tag(own).as_deref()),
            }))
        }
    }
}

/// One read mail as what okno receives: its event (a mail that cannot be read at all is
/// passed over as [`InboundEvent::Ignore`], never retried forever), its files put into okno's
/// file store, with the cursor after it.
pub async fn received(cx: &Context, channel_id: &str, own: &str, uid_validity: u32, fetched: &Fetched) -> Received {
    let event = match parse(&fetched.raw) {
        Ok(mail) => {
            let mut event = event(channel_id, own, &mail, uid_validity, fetched.uid);
            if let InboundEvent::Message(m) = &mut event {
                m.attachments = keep_files(cx, &mail, PartRef { uid_validity, uid: fetched.uid }).await;
            }
            event
        }
        Err(_) => InboundEvent::Ignore,
    };
    let mut r = Received::new(event);
    r.cursor = Some(Cursor { uid_validity, last_uid: fetched.uid }.encode());
    r
}

/// Where a mail lies in the folder, for naming its files there.
#[derive(Debug, Clone, Copy)]
struct PartRef {
    uid_validity: u32,
    uid: u32,
}

/// A mail's files, and the whole mail when the operator reads less than it said (quoted
/// history, signature, HTML made plain), kept in okno's file store as the mail is read: the
/// poll holds their bytes already, and a mail may later be moved or deleted from the folder.
/// A file okno cannot write now stays a reference into the folder, fetched later; one over
/// okno's download limit is kept as a note.
async fn keep_files(cx: &Context, mail: &ParsedMail, at: PartRef) -> Vec<InboundAttachment> {
    let PartRef { uid_validity, uid } = at;
    let mut files: Vec<(String, String, &[u8], String)> = mail
        .attachments
        .iter()
        .enumerate()
        .map(|(n, a)| (a.name.clone(), a.mime.clone(), a.bytes.as_slice(), n.to_string()))
        .collect();
    if mail.text.trim() != mail.full_text.trim() || mail.has_html {
        files.push((ORIGINAL_NAME.to_string(), "message/rfc822".to_string(), mail.raw.as_slice(), "original".into()));
    }
    let mut kept = Vec::with_capacity(files.len());
    for (name, mime, bytes, part) in files {
        let size = bytes.len() as i64;
        if bytes.len() as u64 > cx.max_download {
            let limit = cx.max_download / (1024 * 1024);
            let note = format!("not kept: the file is larger than the {limit} MB limit");
            kept.push(InboundAttachment::Failed { name, mime, size, note });
            continue;
        }
        kept.push(match cx.files.put(bytes).await {
            Ok(sha256) => InboundAttachment::Stored { name, mime, size, sha256 },
            Err(e) => {
                tracing::warn!(error = %e, "a mail's file could not be written now; it will be fetched from the folder");
                InboundAttachment::Url { name, mime, url: format!("{PART_SCHEME}{uid_validity}:{uid}:{part}") }
            }
        });
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_reads_back_and_starts_over_on_a_new_numbering() {
        let c = Cursor { uid_validity: 1_765_033_258, last_uid: 42 };
        assert_eq!(Cursor::parse(&c.encode()), Some(c));
        assert_eq!(Cursor::after(Some(c), 1_765_033_258), 42);
        assert_eq!(Cursor::after(Some(c), 7), 0, "another UIDVALIDITY: from the start");
        assert_eq!(Cursor::after(None, 7), 0);
        for bad in ["", "1", "a:b", "1:", ":2", "1:2:3", "-1:2"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}
