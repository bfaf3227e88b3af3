//! The Telegram channel: the Bot API client and wire types ([`api`]), text formatting
//! ([`format`]), sending ([`TelegramAdapter`]) and reading updates ([`updates`]).

pub mod api;
pub mod format;
pub mod updates;

mod adapter;

pub use adapter::{Limiter, TelegramAdapter, TelegramConfig};
