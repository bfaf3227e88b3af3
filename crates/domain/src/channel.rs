//! What a channel and the rest of okno hand each other: an inbound message as a channel parsed
//! it, and everything a channel needs to send one message.

use serde_json::Value;

use crate::ids::{ChannelId, MessageId};
use crate::model::{Channel, Identity, Message};

/// A person writing in on a channel, as the channel adapter parsed them.
#[derive(Debug, Clone, Default)]
pub struct InboundSender {
    pub user_id: String,
    pub chat_id: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub phone: Option<String>,
    /// The person's e-mail address, where the platform proves it (a mail's sender): a new
    /// person with the address of a contact okno knows is that contact.
    pub email: Option<String>,
    /// A group chat: one party, where the thread is with the group and replies go to it.
    pub is_group: bool,
}

/// An attachment named in an inbound message.
#[derive(Debug, Clone)]
pub enum InboundAttachment {
    /// To be downloaded by a `FetchAttachments` job.
    Url { name: String, mime: String, url: String },
    /// Already in okno's file store (the platform handed over the bytes with the message,
    /// as a mail does): kept at once, no download.
    Stored { name: String, mime: String, size: i64, sha256: String },
    /// Could not be stored; kept with a note so nothing disappears silently.
    Failed { name: String, mime: String, size: i64, note: String },
}

/// An inbound message as a channel adapter hands it to the store.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub channel_id: ChannelId,
    pub sender: InboundSender,
    /// The platform's message id, used for de-duplication.
    pub external_id: String,
    pub text: Option<String>,
    pub attachments: Vec<InboundAttachment>,
    /// Set for a button press.
    pub button_data: Option<String>,
    /// The okno message this one answers.
    pub reply_to: Option<MessageId>,
    /// The platform id of the message this one answers (resolved to `reply_to` when okno
    /// knows that message).
    pub reply_to_external: Option<String>,
    /// Who wrote it, when the sender is a group (the person inside it).
    pub author: Option<String>,
    /// The person inside a group who wrote or pressed, as the platform names them.
    pub member: Option<InboundSender>,
    /// The bot takes its turn on this message (set by the engine: the channel has a bot and
    /// nothing else claimed the message); queued with the message, private chats only.
    pub bot_turn: bool,
    /// The person opts out of broadcasts or back in with this message (set by the engine from
    /// a stop word or an "unsubscribe" press); applied and answered with the message.
    pub subscription: Option<SubscriptionChange>,
    /// Whether the message may answer a survey (set by the engine).
    pub survey: SurveyTurn,
    /// What the conversation is about on the platform (Avito: the ad a buyer writes about),
    /// kept with the message and passed to rules and webhooks.
    pub context: Option<Value>,
    /// The okno conversation the platform says this message continues (e-mail: the tag in the
    /// address okno's mail asked to be answered at). Used only when okno does not know the
    /// sender: their message joins that conversation, under its contact, with the sender
    /// named as its author, instead of opening a conversation with a new contact.
    pub conversation_hint: Option<String>,
}

/// Whether an inbound message may answer a survey.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SurveyTurn {
    /// No: a command, a link code, an opt-out, a group's message, another button.
    #[default]
    No,
    /// A press of a survey's button: the survey takes it (and answers a stale one politely).
    Press,
    /// Typed text: the survey takes it when the person has one running, the bot otherwise.
    IfRunning,
}

/// A change to a person's broadcast subscription, with okno's answer to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionChange {
    pub subscribed: bool,
    pub answer: String,
}

/// The button data of a broadcast's "unsubscribe" button (and the answer it records): a press
/// of it opts the person out of broadcasts.
pub const UNSUBSCRIBE: &str = "unsubscribe";

/// The message option naming an e-mail's subject (a broadcast's `subject`, rendered).
pub const SUBJECT_OPTION: &str = "subject";

/// The message option naming the template a message may go out as ([`crate::model::TemplateRef`]).
pub const TEMPLATE_OPTION: &str = "template";
/// The message option the engine sets when it hands a message over while the person's
/// customer-service window is closed: the message must go out as its template.
pub const WINDOW_CLOSED_OPTION: &str = "window_closed";

/// Everything a channel adapter needs to send one message.
#[derive(Debug, Clone)]
pub struct DeliveryTarget {
    pub message: Message,
    pub channel: Channel,
    pub identity: Identity,
    /// The platform id of the message being answered, if any.
    pub reply_to_external: Option<String>,
    /// The message's sending options.
    pub options: Value,
}

impl DeliveryTarget {
    /// The template this message goes out as, when it must: it names one and either has no
    /// text or the person's customer-service window is closed.
    pub fn template_to_send(&self) -> Option<crate::model::TemplateRef> {
        let template = serde_json::from_value(self.options.get(TEMPLATE_OPTION)?.clone()).ok()?;
        let no_text = self.message.text.as_deref().is_none_or(|t| t.trim().is_empty());
        let closed = self.options.get(WINDOW_CLOSED_OPTION).and_then(Value::as_bool).unwrap_or(false);
        (no_text || closed).then_some(template)
    }
}

/// A flag to set on an identity when a platform refuses it for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityFlag {
    Blocked,
    OptedOut,
}
