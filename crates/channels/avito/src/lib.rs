//! The Avito channel (Avito Messenger API): the client with its client-credentials tokens
//! ([`api`]), reading webhooks v3 into messages with the ad a chat is about ([`webhook`]),
//! sending text and photos into buyers' chats and marking chats read ([`AvitoAdapter`]), and
//! the platform okno's engine drives ([`Avito`]: connecting an account, subscribing the
//! webhook with a secret address, answering inside Avito's 2 seconds).

pub mod api;
pub mod polling;
pub mod webhook;

mod adapter;
mod platform;

pub use adapter::{classify, split, AvitoAdapter, IMAGE_LIMIT, TEXT_LIMIT};
pub use platform::{default_limits, hook_url, Avito, AvitoConfig, SECRET_PARAM};
