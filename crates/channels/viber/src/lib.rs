//! The Viber channel (Viber REST Bot API): the client and Viber's `status` codes ([`api`]),
//! reading callbacks — messages, keyboard presses, subscriptions, `conversation_started` and
//! delivery receipts — ([`webhook`]), sending text, pictures and files by link and keyboards
//! ([`ViberAdapter`]), and the platform okno's engine drives ([`Viber`]: connecting a bot,
//! `set_webhook`, the `X-Viber-Content-Signature` check, the welcome message, `viber://pa`
//! links carrying a link code).

pub mod api;
pub mod webhook;

mod adapter;
mod platform;

pub use adapter::{classify, keyboard, ViberAdapter, ViberConfig};
pub use platform::Viber;
