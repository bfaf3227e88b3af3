//! okno's Bitrix24 connector: the parts that speak Bitrix24.
//!
//! - [`client`]: the REST transport — an inbound webhook or a local application with OAuth
//!   (tokens refreshed and rotated, exposed for storing), the portal's leaky bucket kept
//!   client-side, load refusals waited out, Bitrix24's errors told apart; `batch`;
//! - [`crm`]: contacts and companies with phones and e-mails, deals, smart-process items,
//!   timeline comments, users;
//! - [`handlers`]: subscriptions (`event.bind`) and the offline queue (`event.offline.*`);
//! - [`imconnector`]: okno as an Open Lines connector;
//! - [`telephony`]: call records;
//! - [`event`]: the events a portal posts (form-encoded, PHP bracket keys) read into the events
//!   okno acts on, and their `application_token` checked.
//!
//! Its counterpart in tests is `okno-bitrix24-sim` (`crates/connectors/bitrix24-sim`).

pub mod client;
pub mod crm;
pub mod event;
pub mod handlers;
pub mod imconnector;
pub mod telephony;
mod wire;

pub use client::{
    exchange, B24Client, B24Error, BatchReply, Command, Grant, Limits, OAuthApp, Refusal, Reply, Retry, Timing, Tokens,
    BATCH_MAX,
};
pub use crm::{Company, Contact, Deal, DealPatch, Item, ListQuery, MultiField, Page, PartyFields, User};
pub use event::{parse, token_matches, Envelope, Event, EventAuth, EventError};
pub use handlers::{Handler, OfflineBatch, OfflineEvent, OfflineQuery};
pub use imconnector::{Accepted, ConnectorRegistration, ConnectorStatus, CustomerMessage, FileLink, Receipt};
pub use telephony::{CallRecord, CallType};
