//! Posts: messages okno writes on its own behalf into a chat — a task offered to a group,
//! its details sent privately — rather than stored messages the outbox delivers. Okno keeps
//! their ids to edit or take them down later. Their text is a list of [`Span`]s, so each
//! platform renders its own markup (Telegram's HTML, another's Markdown or plain text).

use okno_domain::model::Keyboard;

/// A piece of a post's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Plain(String),
    Bold(String),
    Italic(String),
    /// A person in the chat, named so that the platform notifies them where it can.
    Mention {
        user_id: String,
        name: String,
    },
}

/// A post to write into a chat, or to replace one with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Post {
    pub chat_id: String,
    pub text: Vec<Span>,
    /// Buttons under it: a press comes back as an inbound press with the button's data.
    pub buttons: Keyboard,
    /// The post answers this message of the same chat, where the platform threads replies.
    pub reply_to: Option<String>,
}

impl Post {
    pub fn to(chat_id: impl Into<String>) -> Self {
        Post { chat_id: chat_id.into(), ..Default::default() }
    }

    pub fn plain(mut self, text: impl Into<String>) -> Self {
        self.text.push(Span::Plain(text.into()));
        self
    }

    pub fn bold(mut self, text: impl Into<String>) -> Self {
        self.text.push(Span::Bold(text.into()));
        self
    }

    pub fn italic(mut self, text: impl Into<String>) -> Self {
        self.text.push(Span::Italic(text.into()));
        self
    }

    pub fn mention(mut self, user_id: impl Into<String>, name: impl Into<String>) -> Self {
        self.text.push(Span::Mention { user_id: user_id.into(), name: name.into() });
        self
    }

    /// The text without markup: what a platform without formatting shows.
    pub fn plain_text(&self) -> String {
        self.text
            .iter()
            .map(|s| match s {
                Span::Plain(t) | Span::Bold(t) | Span::Italic(t) => t.as_str(),
                Span::Mention { name, .. } => name.as_str(),
            })
            .collect()
    }
}

/// Where a post landed: the chat as the platform names it (which may differ from how it was
/// addressed, e.g. `@channel` → its number) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub chat_id: String,
    pub message_id: String,
}

/// How a button press is answered: a short notice, a notice the person must dismiss, or a
/// link the client opens (a chat with the bot, where a platform allows it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PressAnswer {
    pub text: Option<String>,
    pub alert: bool,
    pub url: Option<String>,
}

impl PressAnswer {
    /// Answered without a word: the client just stops waiting.
    pub fn silent() -> Self {
        Self::default()
    }

    pub fn note(text: impl Into<String>) -> Self {
        PressAnswer { text: Some(text.into()), ..Default::default() }
    }

    pub fn alert(text: impl Into<String>) -> Self {
        PressAnswer { text: Some(text.into()), alert: true, url: None }
    }

    pub fn url(url: impl Into<String>) -> Self {
        PressAnswer { url: Some(url.into()), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posts_plain_text_keeps_the_words_and_the_names() {
        let p = Post::to("-1").bold("Замер").plain("\n\n").mention("42", "Иван").italic(" ok");
        assert_eq!(p.plain_text(), "Замер\n\nИван ok");
        assert_eq!(p.chat_id, "-1");
    }
}
