//! okno's amoCRM connector: the parts that speak amoCRM.
//!
//! - [`client`]: the REST API v4 with a long-lived token — the account, deals (read with their
//!   contacts, moved, given a responsible user), notes, contacts, users, webhook subscriptions —
//!   at most 7 calls a second, amoCRM's errors told apart (a revoked token, a blocked account,
//!   a refused request, a passing failure);
//! - [`hook`]: the account webhooks amoCRM posts (form-encoded, PHP bracket keys) read into the
//!   events okno acts on.
//!
//! Its counterpart in tests is `okno-amocrm-sim` (`crates/connectors/amocrm-sim`).

pub mod client;
pub mod hook;

pub use client::{
    exchange, Account, AmoClient, AmoError, Contact, Grant, Lead, LeadPatch, OAuthClient, Tokens, User, PER_SECOND,
};
pub use hook::{events, tree, HookError, HookEvent};
