//! The Telegram channel: the Bot API client and wire types ([`api`]), text formatting
//! ([`format`]), sending ([`TelegramAdapter`]), reading updates ([`updates`]) and the platform
//! okno's engine drives ([`Telegram`]: connecting a bot, its webhook or long polling, files).

pub mod api;
pub mod format;
pub mod updates;

mod adapter;
mod platform;

pub use adapter::{Limiter, TelegramAdapter, TelegramConfig};
pub use platform::Telegram;
