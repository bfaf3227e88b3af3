//! Channel adapters. Each platform implements [`Adapter`]: map a stored outbound message to
//! the platform's wire format, send it, and classify what went wrong (retry, retry after a
//! given time, or give up with a readable reason). Throttling is a wrapper around an adapter
//! ([`throttle::Throttled`]), not code inside it; outgoing HTTP to addresses users supply goes
//! through one guarded client ([`http::SafeClient`]).

use std::time::Duration;

use async_trait::async_trait;
use okno_domain::model::{ChannelKind, Keyboard};
use okno_store::{DeliveryTarget, IdentityFlag};

pub mod files;
pub mod http;
pub mod telegram;
pub mod throttle;
pub mod webhook;

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

    /// Shows "typing…"/"uploading…" in a chat while something slow is prepared.
    async fn chat_action(&self, chat_id: &str, action: &str) -> Result<(), SendError> {
        let _ = (chat_id, action);
        Ok(())
    }
}
