//! The MAX channel (VK's national messenger): the Bot API client and wire types ([`api`]),
//! text formatting ([`format`]), sending ([`MaxAdapter`]), reading updates ([`updates`]) and
//! the platform okno's engine drives ([`Max`]: connecting a bot, its webhook subscription or
//! long polling, files, `max.ru` deep links).

pub mod api;
pub mod format;
pub mod updates;

mod adapter;
mod platform;

pub use adapter::{MaxAdapter, MaxConfig, MaxLimits};
pub use platform::Max;
