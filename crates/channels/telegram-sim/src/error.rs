//! What the simulator answers when asked to play something that cannot happen: a bot it does
//! not know, a chat or message that does not exist, input Telegram's client would not send.

/// A refused request to the simulator's Rust API (its HTTP side answers as Telegram does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// No bot has this token.
    UnknownBot(String),
    /// The bot has no chat with this id.
    UnknownChat(i64),
    /// The chat has no message with this id (or not one this action applies to).
    UnknownMessage {
        /// The chat looked in.
        chat_id: i64,
        /// The message asked for.
        message_id: i64,
    },
    /// Input a Telegram client would refuse to send, with the reason.
    Invalid(String),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::UnknownBot(token) => {
                // Only the bot's id (before the `:`) is shown: the rest is its secret.
                let id = token.split_once(':').map(|(id, _)| id).unwrap_or("?");
                write!(f, "no bot with id {id} is registered")
            }
            SimError::UnknownChat(chat) => write!(f, "chat {chat} does not exist"),
            SimError::UnknownMessage { chat_id, message_id } => {
                write!(f, "message {message_id} does not exist in chat {chat_id}")
            }
            SimError::Invalid(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for SimError {}
