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
use okno_domain::model::MessageStatus;
use serde_json::json;

use crate::config::EmailConfig;
use crate::imap::{ImapError, Inbox};
use crate::parse::{parse, MailKind, ParsedMail};

/// How a file inside a stored mail is named until it is fetched.
pub const PART_SCHEME: &str = "email-part:";

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
            let attachments = mail
                .attachments
                .iter()
                .enumerate()
                .map(|(n, a)| InboundAttachment::Url {
                    name: a.name.clone(),
                    mime: a.mime.clone(),
                    url: format!("{PART_SCHEME}{uid_validity}:{uid}:{n}"),
                })
                .collect();
            InboundEvent::Message(Box::new(InboundMessage {
                channel_id: channel_id.into(),
                sender: InboundSender {
                    user_id: address.clone(),
                    chat_id: address,
                    username: None,
                    display_name: from.name.clone(),
                    phone: None,
                    is_group: false,
                },
                external_id: mail.message_id.clone().unwrap_or_else(|| format!("uid-{uid_validity}-{uid}")),
                text,
                attachments,
                button_data: None,
                reply_to: None,
                reply_to_external: mail.in_reply_to.first().cloned(),
                author: None,
                member: None,
                bot_turn: false,
                subscription: None,
                survey: Default::default(),
                context: Some(json!({"email": {"subject": mail.subject, "message_id": mail.message_id,
                                               "references": mail.references}})),
            }))
        }
    }
}

/// One poll: opens the folder, reads at most `max` mails after `cursor` and closes it; each
/// event carries the cursor that follows it. A mail that cannot be read at all is passed over
/// as [`InboundEvent::Ignore`] (its cursor still moves), never retried forever.
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
    Ok(read?
        .into_iter()
        .map(|f| {
            let event = match parse(&f.raw) {
                Ok(mail) => event(channel_id, &own, &mail, uid_validity, f.uid),
                Err(_) => InboundEvent::Ignore,
            };
            let mut r = Received::new(event);
            r.cursor = Some(Cursor { uid_validity, last_uid: f.uid }.encode());
            r
        })
        .collect())
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
