//! okno's domain: the nouns of the product (channels, contacts, identities, conversations,
//! messages, webhooks, tokens) as plain types, the one error type with stable codes, and the
//! pure helpers (ids, time, signing) every other crate shares. Nothing here performs IO.

pub mod channel;
pub mod error;
pub mod files;
pub mod form;
pub mod ids;
pub mod masking;
pub mod model;
pub mod routing;
pub mod signing;
pub mod surveys;
pub mod time;

pub use error::{Error, ErrorKind, Result};
