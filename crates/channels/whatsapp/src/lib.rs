//! The WhatsApp channel (WhatsApp Business Cloud API, on Meta's Graph API): the client and its
//! error body ([`api`]), reading webhooks — messages, button answers and delivery statuses —
//! ([`webhook`]), sending text, media, interactive buttons and lists, and templates
//! ([`WhatsAppAdapter`]), and the platform okno's engine drives ([`WhatsApp`]: connecting a
//! phone number, the `hub.challenge` handshake, the `X-Hub-Signature-256` check, media
//! downloads, `wa.me` links).

pub mod api;
pub mod webhook;

mod adapter;
mod platform;

pub use adapter::{classify, menu, Menu, WhatsAppAdapter, WhatsAppConfig, WhatsAppLimits};
pub use platform::WhatsApp;
