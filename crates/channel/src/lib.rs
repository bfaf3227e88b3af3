//! The channel interface: what every messenger platform implements, and nothing else of okno.
//! This crate depends on `okno-domain` only; each platform is a crate of its own under
//! `crates/channels/` that depends on this one, and the engine drives them all alike.
//!
//! ```text
//!   Platform (one per kind, listed in the binary's registry)
//!     ├─ schema, capabilities, deep links        what the API, the forms and the engine ask
//!     ├─ connect(config) ─► stored config + what to show (the bot's name…)
//!     ├─ receive(request) ─► [InboundEvent]      a webhook request, verified and parsed
//!     ├─ poll(cursor) ─► [InboundEvent] + cursor  long polling, when the platform has it
//!     ├─ fetch(file ref) ─► bytes                 files named in inbound messages
//!     └─ adapter(channel) ─► Adapter              send, edit, answer a press, "typing…"
//! ```
//!
//! A platform keeps no state of its own beyond what it is given: the engine hands it a narrow
//! [`ChannelState`] for what must outlive a call (long button data, a long text's progress).
//! Outgoing HTTP to addresses users supply goes through one guarded client
//! ([`http::SafeClient`]); throttling is a wrapper around an adapter ([`throttle::Throttled`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_domain::model::{Channel, ChannelKind, Keyboard};

pub use okno_domain::channel::{DeliveryTarget, IdentityFlag, InboundAttachment, InboundMessage, InboundSender};

mod capabilities;
pub mod conformance;
pub mod files;
pub mod http;
mod platform;
pub mod post;
pub mod schema;
pub mod throttle;

pub use capabilities::{Buttons, Capabilities, FileLimits, TextLimit, TextUnit};
pub use platform::{
    Brand, ChannelState, Connected, Context, Estimate, HookAnswer, HookRequest, InboundEvent, Platform, PollError,
    Polled, Received,
};
pub use post::{Post, Posted, PressAnswer, Span};

/// A message's buttons as numbered lines under its text, for a receiver that shows no buttons:
/// `1. Новости`, and `Сайт: https://…` for a link. People answer with the number.
pub fn numbered_text(text: &str, buttons: &okno_domain::model::Keyboard) -> String {
    let mut out = text.to_string();
    for (n, b) in buttons.iter().flatten().enumerate() {
        if !out.is_empty() {
            out.push('\n');
        }
        match &b.url {
            Some(url) => out.push_str(&format!("{}: {url}", b.text)),
            None => out.push_str(&format!("{}. {}", n + 1, b.text)),
        }
    }
    out
}

#[cfg(test)]
mod numbered_tests {
    use okno_domain::model::Button;

    #[test]
    fn buttons_become_numbered_lines() {
        let b = |t: &str, url: Option<&str>| Button {
            text: t.into(),
            data: url.is_none().then(|| "x".into()),
            url: url.map(str::to_string),
        };
        let kb = vec![vec![b("Новости", None), b("Отчёты", None)], vec![b("Сайт", Some("https://example.org"))]];
        assert_eq!(super::numbered_text("Меню", &kb), "Меню\n1. Новости\n2. Отчёты\nСайт: https://example.org");
        assert_eq!(super::numbered_text("", &kb[..1].to_vec()), "1. Новости\n2. Отчёты");
    }
}

/// What a platform answered to a successful send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sent {
    /// The platform's id for the message, when it gives one.
    pub external_id: Option<String>,
}

/// Why a send did not go through, and what to do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// A passing failure (network, 5xx, rate limit): try again, after `after` if the platform
    /// said how long to wait.
    #[error("{reason}")]
    Retry { reason: String, after: Option<Duration> },
    /// The platform will never accept this message; `flag` marks the person unreachable.
    #[error("{reason}")]
    Permanent { reason: String, flag: Option<IdentityFlag> },
    /// The chat moved (a Telegram group became a supergroup): send again to `chat_id`.
    #[error("the chat moved to {chat_id}")]
    Moved { chat_id: String },
}

/// A button's data as a platform carries it: the data itself when it `fits` (and cannot be
/// mistaken for a token), else `prefix` and a short token that stands for it in okno's store.
pub async fn button_payload(
    state: &dyn ChannelState,
    data: &str,
    fits: bool,
    prefix: &str,
) -> Result<String, SendError> {
    if fits && !data.starts_with(prefix) {
        return Ok(data.to_string());
    }
    let token = state
        .button_token(data)
        .await
        .map_err(|e| SendError::retry(format!("storing long button data: {}", e.message)))?;
    Ok(format!("{prefix}{token}"))
}

impl SendError {
    pub fn retry(reason: impl Into<String>) -> Self {
        SendError::Retry { reason: reason.into(), after: None }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        SendError::Permanent { reason: reason.into(), flag: None }
    }
}

/// A connected platform account that can send.
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    fn kind(&self) -> ChannelKind;

    /// Sends one stored message to the identity in `target`.
    async fn send(&self, target: &DeliveryTarget) -> Result<Sent, SendError>;

    /// The chat a message is throttled under (its identity's chat by default).
    fn chat_key(&self, target: &DeliveryTarget) -> String {
        target.identity.chat_id.clone()
    }

    /// Replaces the buttons of a message sent earlier (an empty keyboard removes them).
    async fn edit_buttons(&self, target: &DeliveryTarget, buttons: &Keyboard) -> Result<(), SendError> {
        let _ = (target, buttons);
        Err(SendError::permanent(format!("{} channels cannot edit sent messages", self.kind())))
    }

    /// Tells the platform okno has read a person's message up to `external_id` (blue ticks), when
    /// an operator reads the conversation; platforms without read marks ignore it.
    async fn mark_read(&self, chat_id: &str, external_id: &str) -> Result<(), SendError> {
        let _ = (chat_id, external_id);
        Ok(())
    }

    /// Shows "typing…"/"uploading…" in a chat while something slow is prepared.
    async fn chat_action(&self, chat_id: &str, action: &str) -> Result<(), SendError> {
        let _ = (chat_id, action);
        Ok(())
    }

    /// Shows a bot's commands in the platform's command menu (`(command, description)`), where
    /// the platform has one and the channel does not set its own.
    async fn set_commands(&self, commands: &[(String, String)]) -> Result<(), SendError> {
        let _ = commands;
        Ok(())
    }

    /// Answers a button press so the person's client stops waiting, with a notice or a link
    /// where the answer has one (a task already taken…).
    async fn answer_press(&self, press_id: &str, answer: &PressAnswer) -> Result<(), SendError> {
        let _ = (press_id, answer);
        Ok(())
    }

    /// Writes a [`Post`] of okno's own into a chat. Platforms with group chats, inline buttons
    /// and editing implement the three post calls: tasks are offered through them.
    async fn post(&self, post: &Post) -> Result<Posted, SendError> {
        let _ = post;
        Err(SendError::permanent(format!("{} channels cannot post", self.kind())))
    }

    /// Replaces a post's text and buttons; a post already showing `post` is no error.
    async fn edit_post(&self, at: &Posted, post: &Post) -> Result<(), SendError> {
        let _ = (at, post);
        Err(SendError::permanent(format!("{} channels cannot edit sent messages", self.kind())))
    }

    /// Removes a post's buttons, leaving its text.
    async fn clear_buttons(&self, at: &Posted) -> Result<(), SendError> {
        let _ = at;
        Err(SendError::permanent(format!("{} channels cannot edit sent messages", self.kind())))
    }

    /// The post a message's platform id names (the message a pressed button was under).
    fn posted(&self, external_id: &str) -> Option<Posted> {
        let _ = external_id;
        None
    }

    /// Takes a post down.
    async fn delete_post(&self, at: &Posted) -> Result<(), SendError> {
        let _ = at;
        Err(SendError::permanent(format!("{} channels cannot delete messages", self.kind())))
    }
}

/// Shared by the engine and tests: the adapter for a channel, built by its platform.
pub type SharedAdapter = Arc<dyn Adapter>;

/// The platform-specific part of a stored channel configuration, read by its platform.
pub fn config_of<T: serde::de::DeserializeOwned>(channel: &Channel) -> okno_domain::Result<T> {
    serde_json::from_value::<T>(channel.config.clone()).map_err(|e| {
        okno_domain::Error::invalid("invalid_channel_config", format!("{} channel config: {e}", channel.kind))
    })
}
