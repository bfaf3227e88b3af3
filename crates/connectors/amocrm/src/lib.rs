//! okno's amoCRM connector: the parts that speak amoCRM.
//!
//! - [`client`]: the REST API v4 with a long-lived token — the account, deals (read with their
//!   contacts, moved, given a responsible user and custom field values), notes, tasks, users,
//!   webhook subscriptions — at most 7 calls a second, amoCRM's errors told apart (a revoked
//!   token, a blocked account, a refused request, a passing failure);
//! - [`contacts`]: contacts in bulk — pages of those changed since a moment, batches added or
//!   changed with their phones and e-mails;
//! - [`hook`]: the account webhooks amoCRM posts (form-encoded, PHP bracket keys) read into the
//!   events okno acts on: deals moved, contacts added, changed, deleted;
//! - [`chats`]: the Chats API ("amojo") that makes okno a native chat channel of amoCRM —
//!   signed calls, the connection, the person's and okno's messages, delivery statuses, and the
//!   signed webhooks amojo posts when an amoCRM user answers.
//!
//! Its counterpart in tests is `okno-amocrm-sim` (`crates/connectors/amocrm-sim`).

pub mod chats;
pub mod client;
pub mod contacts;
pub mod hook;

pub use chats::{ChatsClient, ChatsError};
pub use client::{
    exchange, Account, AmoClient, AmoError, Contact, FieldEntry, FieldValue, Grant, Lead, LeadPatch, NewTask,
    OAuthClient, TaskTarget, Tokens, User, PER_SECOND,
};
pub use contacts::{ContactPage, ContactQuery, ContactUpdate, NewContact, Written, MAX_BATCH};
pub use hook::{contact_events, events, tree, ContactEvent, HookContact, HookError, HookEvent};
