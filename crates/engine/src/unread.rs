//! Answers a person has not read, sent again by e-mail: a website visitor who asked and closed
//! the page still gets the operator's answer, at the address they left.
//!
//! ```text
//!  an operator's answer sent on a channel with `unread_by_email` (the widget)
//!      └─ with the send, in one transaction: an UnreadByEmail job, due that long after
//!  the job ─► nothing to do when the person read it, wrote again, or a later answer has a job
//!      of its own (that one carries this one too)
//!      └─ else: the answers since the person last wrote (and since the last such mail),
//!         in one mail to the contact's address through okno's e-mail channel, threaded on
//!         the conversation, so a reply to it comes back to the same conversation
//! ```
//!
//! The mail is written in the language of the answers it carries (Russian when any has
//! Cyrillic letters, English otherwise).

use okno_domain::channel::SUBJECT_OPTION;
use okno_domain::ids::MessageId;
use okno_domain::model::{Direction, Message, MessageStatus};
use okno_domain::Result;
use okno_store::{OutboundRequest, Recipient, VisitorPage};
use serde_json::json;

use crate::Engine;

/// The author of the mails written here: okno itself, for this reason.
pub const UNREAD_AUTHOR: &str = "okno:unread";

/// The person's recent messages on a channel read to find the answers to carry.
const LOOKBACK: u32 = 50;

/// Whether a person wrote this message (an operator, or a business system answering through
/// the API), not okno (a bot, a broadcast, a notification, a link code).
pub fn written_by_a_person(author: Option<&str>) -> bool {
    author.is_some_and(|a| a.starts_with("operator:") || a.starts_with("token:"))
}

impl Engine {
    /// The `UnreadByEmail` job of message `id` (see the module).
    pub(crate) async fn unread_by_email(&self, id: &MessageId) -> Result<()> {
        let m = match self.store.get_message(id).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        if !matches!(m.status, MessageStatus::Sent | MessageStatus::Delivered) {
            return Ok(());
        }
        let channel = self.channel(&m.channel_id).await?;
        if self.capabilities(&channel)?.unread_by_email.is_none() {
            return Ok(());
        }
        let Some(mailbox) = self.email_channel().await? else { return Ok(()) };
        let contact = self.store.get_contact(&m.contact_id).await?;
        if contact.email.as_deref().and_then(crate::addresses::mail_address).is_none() {
            return Ok(());
        }
        let recent = self.store.visitor_messages(&m.channel_id, &m.contact_id, VisitorPage::Latest, LOOKBACK).await?;
        let later = |x: &&Message| x.id.as_str() > m.id.as_str();
        if recent.iter().filter(later).any(|x| x.direction == Direction::In || written_by_a_person(x.author.as_deref()))
        {
            return Ok(());
        }
        let mailed = self.store.visitor_messages(&mailbox.id, &m.contact_id, VisitorPage::Latest, LOOKBACK).await?;
        let since = [
            mailed.iter().filter(|x| x.author.as_deref() == Some(UNREAD_AUTHOR)).map(|x| x.id.as_str()).max(),
            recent.iter().filter(|x| x.direction == Direction::In).map(|x| x.id.as_str()).max(),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or("");
        let answers: Vec<&Message> = recent
            .iter()
            .filter(|x| x.id.as_str() > since && x.id.as_str() <= m.id.as_str())
            .filter(|x| x.direction == Direction::Out && written_by_a_person(x.author.as_deref()))
            .filter(|x| matches!(x.status, MessageStatus::Sent | MessageStatus::Delivered))
            .collect();
        if answers.is_empty() {
            return Ok(());
        }
        let title = channel.config.get("title").and_then(|t| t.as_str()).filter(|t| !t.trim().is_empty());
        let (subject, text) = mail(title, &answers);
        let req = OutboundRequest {
            to: Recipient::Contact(m.contact_id.clone()),
            channel_id: Some(mailbox.id.clone()),
            text: Some(text),
            buttons: Vec::new(),
            attachment_ids: answers
                .iter()
                .flat_map(|a| &a.attachments)
                .filter(|f| f.state == "ready")
                .map(|f| f.id.clone())
                .collect(),
            idempotency_key: Some(format!("unread-by-email:{}", m.id)),
            author: Some(UNREAD_AUTHOR.to_string()),
            reply_to: None,
            options: json!({ SUBJECT_OPTION: subject }),
        };
        self.send(req).await?;
        Ok(())
    }
}

/// The mail's subject and text: the answers in order, between a line saying why the mail came
/// and one saying that a reply reaches the same conversation.
fn mail(title: Option<&str>, answers: &[&Message]) -> (String, String) {
    let russian = answers.iter().any(|a| a.text.as_deref().unwrap_or_default().chars().any(is_cyrillic));
    let body: Vec<String> = answers
        .iter()
        .map(|a| {
            let files: Vec<&str> = a.attachments.iter().map(|f| f.name.as_str()).collect();
            match (a.text.as_deref().map(str::trim).filter(|t| !t.is_empty()), files.is_empty()) {
                (Some(t), true) => t.to_string(),
                (Some(t), false) => format!("{t}\n📎 {}", files.join(", ")),
                (None, _) => format!("📎 {}", files.join(", ")),
            }
        })
        .collect();
    let body = body.join("\n\n");
    if russian {
        let subject = match title {
            Some(t) => format!("{t}: вам ответили"),
            None => "Вам ответили в чате на сайте".to_string(),
        };
        let text = format!(
            "Пока вас не было в чате на сайте, вам ответили:\n\n{body}\n\n\
             Ответьте на это письмо — ответ придёт в тот же разговор."
        );
        (subject, text)
    } else {
        let subject = match title {
            Some(t) => format!("{t}: you have an answer"),
            None => "You have an answer in the website chat".to_string(),
        };
        let text = format!(
            "While you were away from the chat on our website, you got an answer:\n\n{body}\n\n\
             Reply to this mail and your answer joins the same conversation."
        );
        (subject, text)
    }
}

fn is_cyrillic(c: char) -> bool {
    matches!(c, '\u{0400}'..='\u{04FF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use okno_domain::model::Attachment;

    fn answer(text: Option<&str>, files: &[&str]) -> Message {
        Message {
            id: "m".into(),
            conversation_id: "c".into(),
            contact_id: "p".into(),
            channel_id: "w".into(),
            direction: Direction::Out,
            text: text.map(str::to_string),
            attachments: files
                .iter()
                .map(|n| Attachment {
                    id: format!("a-{n}"),
                    message_id: None,
                    name: n.to_string(),
                    mime: "application/pdf".into(),
                    size: 1,
                    sha256: String::new(),
                    state: "ready".into(),
                    note: None,
                    source_url: None,
                    url: String::new(),
                })
                .collect(),
            buttons: Vec::new(),
            status: MessageStatus::Sent,
            error: None,
            external_id: None,
            button_data: None,
            button_label: None,
            reply_to: None,
            edited: false,
            author: Some("operator:anna".into()),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn the_mail_carries_every_answer_in_their_language() {
        let (a, b) = (answer(Some("Заказ приедет завтра."), &[]), answer(None, &["счёт.pdf"]));
        let (subject, text) = mail(Some("Магазин"), &[&a, &b]);
        assert_eq!(subject, "Магазин: вам ответили");
        assert!(text.starts_with("Пока вас не было"), "{text}");
        assert!(text.contains("Заказ приедет завтра.\n\n📎 счёт.pdf\n\n"), "{text}");
        let en = answer(Some("Your order ships tomorrow."), &["invoice.pdf"]);
        let (subject, text) = mail(None, &[&en]);
        assert_eq!(subject, "You have an answer in the website chat");
        assert!(text.contains("Your order ships tomorrow.\n📎 invoice.pdf"), "{text}");
    }

    #[test]
    fn only_people_s_answers_are_carried() {
        assert!(written_by_a_person(Some("operator:anna")));
        assert!(written_by_a_person(Some("token:crm")));
        for okno in [None, Some("bot"), Some("bot-feed:x"), Some("okno"), Some("broadcast:b1"), Some(UNREAD_AUTHOR)] {
            assert!(!written_by_a_person(okno), "{okno:?}");
        }
    }
}
