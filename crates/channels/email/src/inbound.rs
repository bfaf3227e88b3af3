//! A mail read from the folder as okno's inbound event, and one poll of the folder.
//!
//! - A person's mail becomes a message: the sender's address is the person, the text the
//!   operator reads is the message's text (the subject when the body is empty), the mail's
//!   `Message-ID` its platform id (so a mail read twice is stored once), `In-Reply-To` the
//!   message it answers, the subject and ids its `context`, and each file a reference
//!   `email-part:<uidvalidity>:<uid>:<n>` to be fetched from the folder.
//! - A bounce of okno's own mail is the status `failed` of that message, with the server's
//!   words; a delayed-delivery notice and an automatic reply are nothing okno keeps, nor is
//!   okno's own mail found in the folder.
//!
//! The poll cursor is `"<uidvalidity>:<last uid>"`, carried by every event read, so okno moves
//! it only past what it stored; when the folder's UIDVALIDITY changed the folder is read from
//! the start, and the `Message-ID`s keep what was stored from coming in twice.

use okno_channel::{InboundAttachment, InboundEvent, InboundMessage, InboundSender, Received};
use okno_domain::channel::UNSUBSCRIBE;
use okno_domain::model::MessageStatus;
use serde_json::json;

use crate::config::EmailConfig;
use crate::imap::{Fetched, ImapError, Inbox};
use crate::parse::{parse, MailKind, ParsedMail};

/// How a file inside a stored mail is named until it is fetched.
pub const PART_SCHEME: &str = "email-part:";

/// The name of the whole mail as it came, kept beside a message whose text was cut.
pub const ORIGINAL_NAME: &str = "original.eml";

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
            (Some(id), true) => InboundEvent::Status {
                external_id: id.clone(),
                status: MessageStatus::Failed,
                reason: Some(match (&b.status, &b.diagnostic) {
                    (_, Some(d)) => format!("the mail came back: {d}"),
                    (Some(s), None) => format!("the mail came back: {s}"),
                    (None, None) => "the mail came back undelivered".to_string(),
                }),
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
            let mut attachments: Vec<InboundAttachment> = mail
                .attachments
                .iter()
                .enumerate()
                .map(|(n, a)| InboundAttachment::Url {
                    name: a.name.clone(),
                    mime: a.mime.clone(),
                    url: format!("{PART_SCHEME}{uid_validity}:{uid}:{n}"),
                })
                .collect();
            // What the operator reads is cut (quoted history, signature, HTML made plain):
            // the mail as it came stays downloadable beside it.
            if mail.text.trim() != mail.full_text.trim() || mail.has_html {
                attachments.push(InboundAttachment::Url {
                    name: ORIGINAL_NAME.to_string(),
                    mime: "message/rfc822".to_string(),
                    url: format!("{PART_SCHEME}{uid_validity}:{uid}:original"),
                });
            }
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
                attachments,
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
            }))
        }
    }
}

/// One read mail as what okno receives: its event (a mail that cannot be read at all is
/// passed over as [`InboundEvent::Ignore`], never retried forever) with the cursor after it.
pub fn received(channel_id: &str, own: &str, uid_validity: u32, fetched: &Fetched) -> Received {
    let event = match parse(&fetched.raw) {
        Ok(mail) => event(channel_id, own, &mail, uid_validity, fetched.uid),
        Err(_) => InboundEvent::Ignore,
    };
    let mut r = Received::new(event);
    r.cursor = Some(Cursor { uid_validity, last_uid: fetched.uid }.encode());
    r
}

/// One poll: opens the folder, reads at most `max` mails after `cursor` and closes it; each
/// event carries the cursor that follows it.
pub async fn poll_once(
    cfg: &EmailConfig,
    channel_id: &str,
    cursor: Option<&str>,
    max: usize,
) -> Result<Vec<Received>, ImapError> {
    let own = cfg.sender().map(|s| s.address).unwrap_or_default();
    let mut inbox = Inbox::open(&cfg.imap, cfg.ca_cert.as_deref()).await?;
    let uid_validity = inbox.uid_validity;
    let after = Cursor::after(cursor.and_then(Cursor::parse), uid_validity);
    let read = inbox.fetch_after(after, max).await;
    inbox.close().await;
    Ok(read?.iter().map(|f| received(channel_id, &own, uid_validity, f)).collect())
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
