//! The OK (Odnoklassniki) channel: a group's bot through OK's Graph API. The client
//! ([`api`]), webhook events read into inbound events ([`inbound`]), sending ([`OkAdapter`])
//! and the platform okno's engine drives ([`Odnoklassniki`]: connecting a group's key, its
//! webhook subscription, files).

pub mod api;
pub mod inbound;

mod adapter;
mod platform;

pub use adapter::{classify, split, OkAdapter, OkConfig, SILENT_ANSWER, TEXT_LIMIT};
pub use platform::{hook_url, Odnoklassniki, SECRET_PARAM};
