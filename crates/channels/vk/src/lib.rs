//! The VK channel: a community's messages. The VK API client ([`api`]), reading Callback API
//! and Bots Long Poll events ([`events`]), sending ([`VkAdapter`]) and the platform okno's
//! engine drives ([`Vk`]: connecting a community token, the confirmation handshake, long
//! polling, files, `vk.me` deep links).

pub mod api;
pub mod events;
pub mod text;

mod adapter;
mod platform;

pub use adapter::{classify, VkAdapter, VkConfig, VkLimits};
pub use platform::Vk;
