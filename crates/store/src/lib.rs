//! okno's storage. One [`Store`] trait, made of one trait per aggregate, each defined beside its
//! SQL and its row mapping:
//!
//! | module | trait | owns |
//! |---|---|---|
//! | `channels` | [`ChannelStore`] | channels and their sealed configuration |
//! | `calls` | [`CallStore`] | calls from the company's telephony, in each contact's history |
//! | `contact_sync` | [`ContactSyncStore`] | contacts kept in step with a business system's, without echoes |
//! | `connectors` | [`ConnectorStore`] | connectors to business systems and their sealed configuration |
//! | `contacts` | [`ContactStore`], [`ContactEditStore`] | contacts, identities, merging; hand edits |
//! | `link_codes` | [`LinkCodeStore`] | one-time codes linking a person to a contact |
//! | `conversations` | [`ConversationStore`] | recording inbound messages; conversations, messages, notes |
//! | `attachments` | [`AttachmentStore`] | messages' files |
//! | `outbox` | [`OutboxStore`] | queueing outbound messages, send results, jobs and their leases |
//! | `receiving` | [`ReceivingStore`] | pollers' leases and cursors, button tokens, platform details |
//! | `webhooks` | [`WebhookStore`] | outgoing webhook subscriptions and deliveries |
//! | `events` | [`EventStore`] | business events: accepting, listing, completing |
//! | `rules` | [`RuleStore`] | the rules events run |
//! | `notifications` | [`NotificationStore`] | the messages an event sends, and their fallback |
//! | `broadcasts`, `surveys`, `tasks`, `bots` | [`BroadcastStore`], [`SurveyStore`], [`TaskStore`], [`BotStore`] | those capabilities |
//! | `operators`, `two_factor`, `directory` | [`OperatorStore`], [`TwoFactorStore`], [`DirectoryStore`] | operators, sign-in |
//! | `tokens`, `audit` | [`TokenStore`], [`AuditStore`] | API tokens; the audit log |
//! | `search`, `reports` | [`SearchStore`], [`ReportStore`] | message search; reports |
//! | `processes` | [`ProcessStore`] | liveness, announcements, backups, upkeep |
//! | `visitors` | [`VisitorStore`] | a website widget's visitor: their identity and messages |
//!
//! One SQL implementation ([`SqlStore`], in `sql`) runs on SQLite and on PostgreSQL, chosen by
//! the URL scheme, each with its own migrations folder (identical names). Every operation that
//! causes later work writes that work into the `jobs` outbox in the same transaction, so an
//! acknowledged request is never lost.
//!
//! The conformance suite in [`conformance`] (feature `conformance`) exercises every operation
//! and runs against both backends.

use async_trait::async_trait;
use okno_domain::ids::{ChannelId, ContactId, ConversationId, MessageId};
use okno_domain::model::*;
use okno_domain::time::Millis;
use serde_json::Value;

mod attachments;
mod audit;
mod bots;
mod broadcasts;
mod calls;
mod channels;
mod connectors;
mod contact_sync;
mod contacts;
mod conversations;
mod db;
mod directory;
mod error;
mod events;
mod link_codes;
mod lite;
pub mod liveness;
mod migrations;
mod notifications;
mod operators;
mod outbox;
mod pg;
mod processes;
mod receiving;
mod reports;
pub mod restore;
mod rules;
pub mod seal;
mod search;
mod signals;
pub use okno_domain::channel::{
    DeliveryTarget, IdentityFlag, InboundAttachment, InboundMessage, InboundSender, SubscriptionChange, SurveyTurn,
};
pub use signals::{Announcements, Heard};
mod sql;
mod statements;
mod surveys;
mod tasks;
mod tokens;
mod two_factor;
mod visitors;
mod webhooks;

#[cfg(any(test, feature = "conformance"))]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test code
pub mod conformance;
#[cfg(any(test, feature = "conformance"))]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test code
pub mod testing;

pub use attachments::AttachmentStore;
pub use audit::AuditStore;
pub use bots::{BotRecord, BotStore, NewNews, News, Relay};
pub use broadcasts::{
    Broadcast, BroadcastAction, BroadcastCounts, BroadcastItem, BroadcastRecipient, BroadcastReport, BroadcastStore,
    NewBroadcast, Pending, UNSUBSCRIBE,
};
pub use calls::{CallStore, NewCall};
pub use channels::ChannelStore;
pub use connectors::{new_connector_id, ConnectorPatch, ConnectorStore, NewConnector};
pub use contact_sync::{ContactSyncStore, Synced, SyncedContact, MAX_SYNC_PAGE};
pub use contacts::{ContactEdit, ContactEditStore, ContactField, ContactStore};
pub use conversations::ConversationStore;
pub use directory::{DirectoryOperator, DirectorySignIn, DirectoryStore};
pub use events::{
    EventCounts, EventFilter, EventStore, EventSummary, NotMade, Processed, QueuedAction, RuleOutcome, SurveyStart,
    EVENT_STATUSES,
};
pub use link_codes::{holds_link_code, is_link_code, start_payload, LinkCodeStore};
pub use notifications::NotificationStore;
pub use operators::{AccountChange, OperatorAccount, OperatorStore};
pub use outbox::OutboxStore;
pub use processes::ProcessStore;
pub use receiving::{Receipt, ReceivingStore};
pub use reports::{AnswerCount, BroadcastResult, DayCount, OperatorFigure, ReportStore};
pub use rules::RuleStore;
pub use search::SearchStore;
pub use sql::{backend_of as sql_backend_of, SqlStore};
pub use surveys::{InputOutcome, NewRun, RunFilter, StartOutcome, Survey, SurveyInput, SurveyRun, SurveyStore};
pub use tasks::{
    reoffer_ref, Access, ClaimOutcome, Claimant, Executor, GroupChat, NewTask, Task, TaskFilter, TaskStore,
};
pub use tokens::TokenStore;
pub use two_factor::{LoginChallenge, TotpState, TwoFactorStore};
pub use visitors::{VisitorPage, VisitorStore};
pub use webhooks::WebhookStore;

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Tuning knobs the store takes from the configuration.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long SQLite waits for a lock before giving up.
    pub busy_timeout_ms: u64,
    /// SQLite: wait for the disk on every commit (`FULL`, survives power loss) or only at
    /// checkpoints (`NORMAL`, survives a killed process; faster).
    pub sqlite_full_sync: bool,
    /// How long a request waits for a free connection.
    pub acquire_timeout_ms: u64,
    /// Connections for reads (PostgreSQL: all work).
    pub max_connections: u32,
    /// Seals secrets on write and opens them on read ([`seal`]). `None` keeps them as given:
    /// only for tests and tools that hold no secrets — okno itself always passes one.
    pub sealer: Option<std::sync::Arc<seal::Sealer>>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            busy_timeout_ms: 5_000,
            acquire_timeout_ms: 5_000,
            max_connections: 8,
            sqlite_full_sync: false,
            sealer: None,
        }
    }
}

/// Kinds of outbox work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Send an outbound message through its channel.
    Send,
    /// POST an event to an outgoing webhook subscription.
    Webhook,
    /// Download the attachments of an inbound message named by URL.
    FetchAttachments,
    /// Run the rules for a business event.
    ProcessEvent,
    /// Run one rule for one event (scheduled relative to a date in the event).
    NotifyRule,
    /// Run a channel's bot for one inbound message.
    BotStep,
    /// Feed a broadcast's next recipients into the outbox, at its pace.
    Broadcast,
    /// Post a task nobody has taken again.
    TaskReoffer,
    /// Open a snoozed conversation again.
    Unsnooze,
    /// Read an inbound message as the answer to the sender's running survey.
    SurveyAnswer,
    /// Remind a person of an unanswered survey (scheduled before its deadline).
    SurveyRemind,
    /// Close a survey run whose deadline has come.
    SurveyExpire,
    /// Start a date-triggered survey for the contacts whose date has come (periodic).
    SurveyScan,
    /// Send an operator's answer a person has not read by e-mail (a website visitor who left).
    UnreadByEmail,
    /// Act on what a business system reported to a connector (`<connector id>:<what>`).
    ConnectorEvent,
    /// Tell a business system who took the task it asked for (the task's `data.connector`).
    ConnectorTaskTaken,
    /// Do what a rule names in a business system (`<event id>:<rule id>:<action index>`).
    ConnectorAction,
    /// A connector's standing work, run again and again while it lives (`<connector id>`).
    ConnectorPoll,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Send => "send",
            JobKind::Webhook => "webhook",
            JobKind::FetchAttachments => "fetch_attachments",
            JobKind::ProcessEvent => "process_event",
            JobKind::NotifyRule => "notify_rule",
            JobKind::BotStep => "bot_step",
            JobKind::Broadcast => "broadcast",
            JobKind::TaskReoffer => "task_reoffer",
            JobKind::Unsnooze => "unsnooze",
            JobKind::SurveyAnswer => "survey_answer",
            JobKind::SurveyRemind => "survey_remind",
            JobKind::SurveyExpire => "survey_expire",
            JobKind::SurveyScan => "survey_scan",
            JobKind::UnreadByEmail => "unread_by_email",
            JobKind::ConnectorEvent => "connector_event",
            JobKind::ConnectorTaskTaken => "connector_task_taken",
            JobKind::ConnectorAction => "connector_action",
            JobKind::ConnectorPoll => "connector_poll",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "send" => JobKind::Send,
            "webhook" => JobKind::Webhook,
            "fetch_attachments" => JobKind::FetchAttachments,
            "process_event" => JobKind::ProcessEvent,
            "notify_rule" => JobKind::NotifyRule,
            "bot_step" => JobKind::BotStep,
            "broadcast" => JobKind::Broadcast,
            "task_reoffer" => JobKind::TaskReoffer,
            "unsnooze" => JobKind::Unsnooze,
            "survey_answer" => JobKind::SurveyAnswer,
            "survey_remind" => JobKind::SurveyRemind,
            "survey_expire" => JobKind::SurveyExpire,
            "survey_scan" => JobKind::SurveyScan,
            "unread_by_email" => JobKind::UnreadByEmail,
            "connector_event" => JobKind::ConnectorEvent,
            "connector_task_taken" => JobKind::ConnectorTaskTaken,
            "connector_action" => JobKind::ConnectorAction,
            "connector_poll" => JobKind::ConnectorPoll,
            _ => return None,
        })
    }
}

/// The outbox lane of conversations, notifications and everything else.
pub const LANE_LIVE: i64 = 0;
/// The outbox lane of broadcast sends: workers keep their own capacity for it, so a broadcast
/// never makes live work wait.
pub const LANE_BULK: i64 = 1;

/// A claimed piece of outbox work.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub seq: i64,
    pub kind: JobKind,
    pub ref_id: String,
    /// Jobs with the same key run one at a time, in order (a conversation id for sends).
    pub queue_key: Option<String>,
    /// Attempts so far, including this one.
    pub attempts: i64,
    /// 0: live work (conversations, notifications); 1: broadcast sends, claimed after live work.
    pub lane: i64,
}

/// A new channel.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub kind: ChannelKind,
    pub name: String,
    pub config: Value,
    pub info: Value,
}

/// Changes to a channel; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct ChannelPatch {
    pub name: Option<String>,
    pub config: Option<Value>,
    pub info: Option<Value>,
    pub status: Option<(String, Option<String>)>,
}

/// Filters for listing contacts; all set filters must match.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    pub external_id: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub group: Option<String>,
    /// Case-insensitive substring of name, phone, email or external id.
    pub q: Option<String>,
    /// `q` looks at the name and the external id only: a role that may not see phones and
    /// emails must not find a person by them.
    pub q_names_only: bool,
}

/// Filters for listing conversations.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub status: Option<ConversationStatus>,
    pub contact_id: Option<ContactId>,
    pub channel_id: Option<ChannelId>,
    /// `Some(None)`: unassigned only.
    pub assignee: Option<Option<String>>,
    pub label: Option<String>,
    /// Text in any of the conversation's messages, case-insensitive in every alphabet.
    pub text: Option<String>,
}

/// Changes to a conversation; `assignee: Some(None)` unassigns.
#[derive(Debug, Clone, Default)]
pub struct ConversationPatch {
    pub status: Option<ConversationStatus>,
    pub assignee: Option<Option<String>>,
    pub labels: Option<Vec<String>>,
    /// Marks everything read.
    pub mark_read: bool,
    /// Snoozes it: `pending` until then (or until the person writes), then open again.
    pub snooze_until: Option<Millis>,
}

/// An operator's private note on a conversation (never sent).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Note {
    pub id: String,
    pub conversation_id: ConversationId,
    /// Who wrote it (`operator:anna`, `token:crm`).
    pub author: String,
    pub text: String,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub created_at: Millis,
}

/// One page request: at most `limit` items after `cursor`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

impl PageRequest {
    pub fn new(limit: Option<u32>, cursor: Option<String>) -> Self {
        Self { limit: limit.unwrap_or(50).clamp(1, 500), cursor }
    }
}

/// What recording an inbound message produced.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub message: Message,
    /// The message had been recorded before (same sender and platform id).
    pub duplicate: bool,
}

/// Who an outbound message goes to.
#[derive(Debug, Clone)]
pub enum Recipient {
    Conversation(ConversationId),
    Contact(ContactId),
    ExternalId(String),
}

/// An outbound message to queue.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub to: Recipient,
    pub channel_id: Option<ChannelId>,
    pub text: Option<String>,
    pub buttons: Keyboard,
    /// Ids of attachments already in the store.
    pub attachment_ids: Vec<String>,
    pub idempotency_key: Option<String>,
    pub author: Option<String>,
    pub reply_to: Option<MessageId>,
    /// Platform sending options, e.g. `{"reply_keyboard": [["Да", "Нет"]]}` or
    /// `{"remove_keyboard": true}`.
    pub options: Value,
}

/// A message that went out, with the send job that sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub message_id: MessageId,
    /// The platform's id for it.
    pub external_id: Option<String>,
    /// The send job.
    pub seq: i64,
    /// When set, an `UnreadByEmail` job for the message runs at this time (written with the
    /// send, so it is never lost between the two).
    pub unread_check: Option<Millis>,
}

/// A business event to accept.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: String,
    pub key: String,
    pub data: Value,
    /// Process it at this time instead of now.
    pub send_at: Option<Millis>,
}

/// A business event with what became of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub key: String,
    pub data: Value,
    /// `accepted`, `scheduled`, `processed`, or `no_rule` (no rule matched).
    pub status: String,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub send_at: Option<Millis>,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub created_at: Millis,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub processed_at: Option<Millis>,
    pub deliveries: Vec<EventDelivery>,
    pub unresolved: Vec<Unresolved>,
    /// What each rule of the event's type (and each survey it starts) made of it.
    pub rules: Vec<RuleOutcome>,
}

/// One person an event reached, or tried to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventDelivery {
    pub rule_id: String,
    pub contact_id: String,
    pub channel_id: Option<String>,
    pub message_id: Option<String>,
    /// The message's status, or `failed` when no message could be made.
    pub status: String,
    pub error: Option<String>,
    /// The conversation the message is in.
    pub conversation_id: Option<String>,
    /// Why no message could be made: `template_failed` or `attachment_failed`.
    pub code: Option<String>,
    /// The channels tried, in order (more than one after a fallback).
    pub tried: Vec<String>,
}

/// A recipient a rule named that could not be reached, and why.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Unresolved {
    pub rule_id: String,
    pub recipient: String,
    pub reason: String,
    /// The reason as a stable code: `unknown_external_id`, `unknown_contact_id`, `no_contact`
    /// (no contact with that phone or email), `empty_group`, `recipient_failed` (the recipient
    /// could not be rendered), `no_identity`, `blocked`, `unreachable` (a survey could not
    /// start), `condition_error`, `delay_ignored`; `null` for records older than the codes.
    pub code: Option<String>,
    /// The recipient as rendered for this event: the external id, phone, email or group.
    pub value: Option<String>,
    /// The contact, when one was found but could not be reached.
    pub contact_id: Option<String>,
}

/// A stored rule: its name, event type and its whole definition.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleRecord {
    pub id: String,
    pub name: String,
    pub event: String,
    pub spec: Value,
    pub active: bool,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub created_at: Millis,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub updated_at: Millis,
}

/// A message an event sends one person.
#[derive(Debug, Clone)]
pub struct Notification {
    pub event_id: String,
    pub rule_id: String,
    pub contact_id: String,
    /// How the event's record names this person should no channel reach them, e.g.
    /// `external_id 1c-7`.
    pub recipient: String,
    pub text: String,
    pub buttons: Keyboard,
    pub attachment_ids: Vec<String>,
    /// Sending options: the platform template the message goes out as where it must.
    pub options: Value,
}

/// What sending a notification did.
#[derive(Debug, Clone)]
pub enum NotifyOutcome {
    Queued(Box<Message>),
    /// This person already got this event (from this or another rule).
    AlreadyNotified,
    /// No channel reaches the person; the reason is recorded as unresolved (under the
    /// notification's `recipient`).
    Unreachable(String),
}

/// One answer to a notification, with the event it answers.
#[derive(Debug, Clone)]
pub struct AnswerRow {
    pub event_id: String,
    pub event_data: Value,
    pub contact_id: String,
    pub value: String,
    pub created_at: Millis,
}

/// A one-time code that links a messenger identity to a contact.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkCode {
    pub code: String,
    pub contact_id: ContactId,
    pub expires_at: Millis,
}

/// What redeeming a link code did.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkOutcome {
    /// The identity now belongs to this contact.
    Linked(Box<Contact>),
    Expired,
    AlreadyUsed,
    Unknown,
}

/// A file the attachment store now holds.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub message_id: Option<MessageId>,
    pub name: String,
    pub mime: String,
    pub size: i64,
    pub sha256: String,
}

/// The outcome of fetching one attachment.
#[derive(Debug, Clone)]
pub enum FetchedAttachment {
    Stored { id: String, size: i64, sha256: String, mime: Option<String> },
    Failed { id: String, note: String },
}

/// A new outgoing webhook subscription.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<EventType>,
    pub secret: String,
    /// Who creates it (`token:<id>`); `None` for an administrator's own.
    pub created_by: Option<String>,
}

/// The result of one attempt to deliver a webhook.
#[derive(Debug, Clone)]
pub enum DeliveryAttempt {
    Delivered {
        status_code: i64,
    },
    /// Will be retried (the job is rescheduled separately).
    Retrying {
        status_code: Option<i64>,
        error: String,
    },
    Failed {
        status_code: Option<i64>,
        error: String,
    },
}

/// An audit log line to append.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Value,
}

/// A webhook delivery with what is needed to send it.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub delivery: WebhookDelivery,
    pub url: String,
    pub secret: String,
}

/// The storage contract the rest of okno holds (`Arc<dyn Store>`): the traits of every
/// aggregate, each in its own module with its SQL and its row mapping. Their methods are
/// callable on a `dyn Store` without naming them. Every method is one transaction.
#[async_trait]
pub trait Store:
    ChannelStore
    + CallStore
    + ContactSyncStore
    + ConnectorStore
    + ContactStore
    + ContactEditStore
    + LinkCodeStore
    + ConversationStore
    + AttachmentStore
    + OutboxStore
    + ReceivingStore
    + WebhookStore
    + EventStore
    + RuleStore
    + NotificationStore
    + BroadcastStore
    + SurveyStore
    + TaskStore
    + BotStore
    + OperatorStore
    + TwoFactorStore
    + DirectoryStore
    + TokenStore
    + AuditStore
    + SearchStore
    + ReportStore
    + ProcessStore
    + VisitorStore
    + Send
    + Sync
    + 'static
{
    /// Which database engine the store runs on.
    fn backend(&self) -> Backend;
}
