//! The product's nouns as they are stored and as the API shows them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::ids::{ChannelId, ContactId, ConversationId, IdentityId, MessageId};
use crate::time::{rfc3339, Millis};
use crate::{Error, Result};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(Error::invalid(
                        concat!("invalid_", stringify!($name)).to_ascii_lowercase(),
                        format!(
                            "`{other}` is not a valid {}; expected one of: {}",
                            stringify!($name).to_ascii_lowercase(),
                            [$($text),+].join(", ")
                        ),
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// What an API token or an operator may do.
    /// `restricted` is an operator who does not see contacts' phone numbers and emails.
    Role { Admin = "admin", Operator = "operator", Integration = "integration", Restricted = "restricted" }
);

string_enum!(
    /// The platform a channel speaks to: the kind names the integration contract fixes. A kind
    /// is usable when the running okno carries its platform (the server's registry); the API
    /// refuses the others as `unknown_channel_kind`.
    ChannelKind {
        Webhook = "webhook",
        Telegram = "telegram",
        Max = "max",
        Vk = "vk",
        Ok = "ok",
        Whatsapp = "whatsapp",
        Viber = "viber",
        Avito = "avito",
        Sms = "sms",
        Email = "email",
        Widget = "widget",
        Matrix = "matrix",
        Rocketchat = "rocketchat",
        Teams = "teams"
    }
);

string_enum!(
    /// Where a conversation stands.
    ConversationStatus { Bot = "bot", Open = "open", Pending = "pending", Resolved = "resolved" }
);

string_enum!(
    /// Inbound (from a person) or outbound (from okno).
    Direction { In = "in", Out = "out" }
);

string_enum!(
    /// A message's delivery state.
    MessageStatus {
        Received = "received",
        Queued = "queued",
        Sent = "sent",
        Delivered = "delivered",
        Read = "read",
        Failed = "failed",
    }
);

string_enum!(
    /// Outgoing webhook event types.
    EventType {
        MessageReceived = "message.received",
        MessageStatus = "message.status",
        MessageEdited = "message.edited",
        ButtonPressed = "button.pressed",
        ConversationUpdated = "conversation.updated",
        ContactUpdated = "contact.updated",
        TaskClaimed = "task.claimed",
        TaskReleased = "task.released",
        SurveyAnswered = "survey.answered",
        SurveyCompleted = "survey.completed",
    }
);

/// Which areas a role may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read channels, contacts, conversations, messages.
    Read,
    /// Send messages, change conversations, upsert contacts.
    Write,
    /// Channels, tokens, rules, bots, the audit log — and every webhook subscription and news
    /// item, whoever created it.
    Configure,
    /// Outgoing webhook subscriptions: a role without `Configure` sees and removes only its own.
    Subscribe,
    /// Publish news that bots show (business systems post theirs): a role without `Configure`
    /// withdraws only its own.
    PublishNews,
    /// See contacts' phone numbers and emails unmasked.
    PersonalData,
}

impl Role {
    /// The one table of what each role may do.
    pub fn allows(self, p: Permission) -> bool {
        matches!(
            (self, p),
            (Role::Admin, _)
                | (Role::Operator, Permission::Read | Permission::Write | Permission::PersonalData)
                | (
                    Role::Integration,
                    Permission::Read
                        | Permission::Write
                        | Permission::Subscribe
                        | Permission::PublishNews
                        | Permission::PersonalData
                )
                | (Role::Restricted, Permission::Read | Permission::Write)
        )
    }
}

/// One button; exactly one of `data` (a callback) and `url` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Button {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Rows of buttons.
pub type Keyboard = Vec<Vec<Button>>;

/// A pre-approved message template a platform keeps (WhatsApp's, for writing outside the
/// customer-service window), named by a message, a rule or a broadcast with the values of its
/// parameters in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TemplateRef {
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub params: Vec<String>,
}

/// Checks a button's link: only `http://`, `https://` and `tg://` links, so a button can never
/// carry a script (`javascript:`), a local file or a data URL to the person or to a webhook
/// channel's site. Every button okno sends passes here: those given to the API and those
/// rendered from templates (rules, broadcasts).
pub fn check_button_url(url: &str) -> Result<()> {
    if ["https://", "http://", "tg://"].iter().any(|p| url.starts_with(p)) {
        return Ok(());
    }
    let shown: String = url.chars().take(80).collect();
    Err(Error::invalid(
        "invalid_button_url",
        format!("a button link must start with http://, https:// or tg://, not `{shown}`"),
    ))
}

/// Checks a keyboard: non-empty texts, exactly one of data/url, sane sizes.
pub fn validate_keyboard(rows: &Keyboard) -> Result<()> {
    if rows.len() > 100 {
        return Err(Error::invalid("invalid_buttons", "at most 100 rows of buttons"));
    }
    for row in rows {
        if row.is_empty() || row.len() > 12 {
            return Err(Error::invalid("invalid_buttons", "each row holds 1 to 12 buttons"));
        }
        for b in row {
            if b.text.trim().is_empty() {
                return Err(Error::invalid("invalid_buttons", "a button needs a non-empty `text`"));
            }
            match (&b.data, &b.url) {
                (Some(d), None) if !d.is_empty() && d.len() <= 4096 => {}
                (None, Some(u)) if check_button_url(u).is_ok() => {}
                _ => {
                    return Err(Error::invalid(
                        "invalid_buttons",
                        format!(
                            "button `{}` needs exactly one of `data` (1..4096 bytes) or `url` (http/https)",
                            b.text
                        ),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// A connected account on a platform. `config` holds secrets and never leaves the server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Channel {
    #[schema(value_type = String)]
    pub id: ChannelId,
    pub kind: ChannelKind,
    pub name: String,
    /// `active`, `error` or `disabled`.
    pub status: String,
    /// The last problem the channel reported, if any.
    pub status_detail: Option<String>,
    /// Public facts about the account (e.g. a bot's username).
    pub info: Value,
    #[serde(skip)]
    pub config: Value,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub created_at: Millis,
}

string_enum!(
    /// The business systems okno connects to.
    ConnectorKind { Amocrm = "amocrm", Bitrix24 = "bitrix24", Onec = "onec", Pbx = "pbx" }
);

string_enum!(
    /// Which way a call went: the person called the company, or the company the person.
    CallDirection { In = "in", Out = "out" }
);

string_enum!(
    /// How a call ended.
    CallStatus { Answered = "answered", Missed = "missed", Busy = "busy", Failed = "failed" }
);

/// A phone call with a person, reported by the company's telephony (a Bitrix24 portal, a PBX).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Call {
    pub id: String,
    /// The connector that reported it.
    pub source: String,
    /// The telephony's own id for it.
    pub external_id: String,
    #[schema(value_type = String)]
    pub contact_id: ContactId,
    pub direction: CallDirection,
    pub status: CallStatus,
    /// The person's number.
    pub phone: String,
    /// Who took or made it on the company's side (a name, an extension).
    pub operator: Option<String>,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub started_at: Millis,
    /// Seconds of talk.
    pub duration: i64,
    pub recording_url: Option<String>,
}

/// A connection to a business system (a CRM account, a 1C base). `config` holds secrets and
/// never leaves the server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Connector {
    #[schema(value_type = String)]
    pub id: crate::ids::ConnectorId,
    pub kind: ConnectorKind,
    pub name: String,
    /// `active`, or `error` with `status_detail` saying what the business system refused.
    pub status: String,
    pub status_detail: Option<String>,
    /// Public facts about the account (its name, its address).
    pub info: Value,
    #[serde(skip)]
    pub config: Value,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub created_at: Millis,
}

/// A person the company talks to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Contact {
    #[schema(value_type = String)]
    pub id: ContactId,
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub groups: Vec<String>,
    #[schema(value_type = Object)]
    pub attrs: Value,
    #[schema(value_type = Option<String>)]
    pub preferred_channel_id: Option<ChannelId>,
    #[serde(default)]
    pub identities: Vec<Identity>,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: Millis,
}

/// A contact's address on one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Identity {
    #[schema(value_type = String)]
    pub id: IdentityId,
    #[schema(value_type = String)]
    pub contact_id: ContactId,
    #[schema(value_type = String)]
    pub channel_id: ChannelId,
    pub kind: ChannelKind,
    pub user_id: String,
    pub chat_id: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
    /// A group chat rather than one person (as the channel's platform said).
    #[serde(default)]
    pub is_group: bool,
    pub blocked: bool,
    pub opted_out: bool,
    #[serde(with = "rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub last_seen_at: Option<Millis>,
}

/// The fields a caller sets on a contact. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub groups: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub attrs: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub preferred_channel_id: Option<ChannelId>,
}

impl ContactInput {
    /// Trims and checks the fields; a phone keeps only `+` and digits, an e-mail address is
    /// lowercased.
    pub fn normalize(mut self) -> Result<Self> {
        fn clean(v: Option<String>) -> Option<String> {
            v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
        }
        self.external_id = clean(self.external_id);
        self.name = clean(self.name);
        // Addresses are kept in lower case, so a mail from `Anna@Shop.ru` finds the contact
        // whose address was typed `anna@shop.ru`.
        self.email = clean(self.email).map(|e| e.to_lowercase());
        if let Some(e) = &self.email {
            if !e.contains('@') || e.len() > 320 {
                return Err(Error::invalid("invalid_email", format!("`{e}` is not an email address")));
            }
        }
        self.phone = match clean(self.phone) {
            None => None,
            Some(p) => Some(normalize_phone(&p)?),
        };
        if let Some(groups) = &mut self.groups {
            for g in groups.iter_mut() {
                *g = g.trim().to_string();
                if g.is_empty() || g.len() > 200 {
                    return Err(Error::invalid("invalid_group", "group names are 1..200 characters"));
                }
            }
            groups.sort();
            groups.dedup();
        }
        if let Some(a) = &self.attrs {
            if !a.is_object() {
                return Err(Error::invalid("invalid_attrs", "`attrs` must be a JSON object"));
            }
        }
        Ok(self)
    }
}

/// `+7 (999) 000-11-22` → `+79990001122`. A Russian number written with the trunk prefix
/// (`8 999 000-11-22`, eleven digits starting with 8, no `+`) is the same `+7…` number.
pub fn normalize_phone(raw: &str) -> Result<String> {
    let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    let ok_chars = raw.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if !ok_chars || digits.len() < 5 || digits.len() > 15 {
        return Err(Error::invalid("invalid_phone", format!("`{raw}` is not a phone number")));
    }
    if !raw.contains('+') && digits.len() == 11 && digits.starts_with('8') {
        return Ok(format!("+7{}", &digits[1..]));
    }
    Ok(format!("+{digits}"))
}

/// A thread between the company and one contact, across channels.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conversation {
    #[schema(value_type = String)]
    pub id: ConversationId,
    pub contact: Contact,
    pub status: ConversationStatus,
    pub assignee: Option<String>,
    pub labels: Vec<String>,
    pub unread: i64,
    pub last_message: Option<Message>,
    /// The channel the contact last wrote from; replies go there by default.
    #[schema(value_type = Option<String>)]
    pub last_inbound_channel_id: Option<ChannelId>,
    /// Snoozed: `pending` until then (or until the person writes), then open again.
    #[serde(with = "rfc3339::option", default)]
    #[schema(value_type = Option<String>)]
    pub snoozed_until: Option<Millis>,
    /// When its last message (inbound or outbound) was written, or when it began: the inbox's
    /// order. Reading, status changes and other bookkeeping leave it alone.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub last_message_at: Millis,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub created_at: Millis,
    /// The last change of any kind (a message, a status, an assignee, labels).
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: Millis,
}

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    pub id: String,
    pub name: String,
    pub mime: String,
    pub size: i64,
    /// Where an API caller can download it.
    pub url: String,
    /// SHA-256 of the content; empty until the file is stored.
    #[serde(skip)]
    pub sha256: String,
    /// `ready`, `pending` (being fetched) or `failed`.
    pub state: String,
    /// Why a file could not be stored, if it could not.
    pub note: Option<String>,
    #[serde(skip)]
    pub source_url: Option<String>,
    /// The message the file belongs to (none for an upload not yet sent).
    #[serde(skip)]
    pub message_id: Option<MessageId>,
}

/// One message, in or out.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Message {
    #[schema(value_type = String)]
    pub id: MessageId,
    #[schema(value_type = String)]
    pub conversation_id: ConversationId,
    #[schema(value_type = String)]
    pub contact_id: ContactId,
    #[schema(value_type = String)]
    pub channel_id: ChannelId,
    pub direction: Direction,
    pub text: Option<String>,
    pub attachments: Vec<Attachment>,
    pub buttons: Keyboard,
    pub status: MessageStatus,
    pub error: Option<String>,
    /// The platform's own id for the message, once known.
    pub external_id: Option<String>,
    /// For a button press: the pressed button's data.
    pub button_data: Option<String>,
    /// For a button press: the label of the pressed button, as the person saw it (read at the
    /// press from the message that carried the buttons; `None` when okno did not send them).
    pub button_label: Option<String>,
    /// The okno message this one answers.
    #[schema(value_type = Option<String>)]
    pub reply_to: Option<MessageId>,
    pub edited: bool,
    /// Who sent an outbound message (an operator login or a token name).
    pub author: Option<String>,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: Millis,
}

/// An outgoing webhook subscription; `secret` never leaves the server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    #[serde(skip)]
    pub secret: String,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub created_at: Millis,
    /// The API token that created it (`token:<id>`); only it and administrators manage it.
    pub created_by: Option<String>,
}

/// One attempt-tracked delivery of an event to a subscription.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDelivery {
    pub id: String,
    pub webhook_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    #[schema(value_type = Object)]
    pub body: Value,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub created_at: Millis,
    #[serde(with = "rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub delivered_at: Option<Millis>,
}

/// An API token's public face; the secret is shown once, at creation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub created_at: Millis,
}

/// A web user.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Operator {
    pub id: String,
    pub login: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: String,
    /// The UI language the operator chose (`ru`, `en`), if any.
    pub lang: Option<String>,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub created_at: Millis,
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub detail: Value,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub at: Millis,
}

/// A page of results with the cursor of the next one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_normalized_and_garbage_rejected() {
        assert_eq!(normalize_phone("+7 (999) 000-11-22").unwrap(), "+79990001122");
        assert!(normalize_phone("call me").is_err());
        assert_eq!(normalize_phone("8 (999) 000-11-22").unwrap(), "+79990001122");
        assert_eq!(normalize_phone("+8 999 000 11 22").unwrap(), "+89990001122");
        assert!(normalize_phone("12").is_err());
    }

    #[test]
    fn keyboard_needs_exactly_one_action_per_button() {
        let both = vec![vec![Button { text: "x".into(), data: Some("a".into()), url: Some("https://a".into()) }]];
        assert!(validate_keyboard(&both).is_err());
        let ok = vec![vec![Button { text: "x".into(), data: Some("a".into()), url: None }]];
        assert!(validate_keyboard(&ok).is_ok());
    }

    #[test]
    fn roles_parse_and_gate() {
        assert_eq!(Role::parse("operator").unwrap(), Role::Operator);
        let err = Role::parse("root").unwrap_err();
        assert_eq!(err.code, "invalid_role");
        assert!(!Role::Operator.allows(Permission::Configure));
        assert!(Role::Integration.allows(Permission::Subscribe));
    }
}
