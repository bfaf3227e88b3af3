//! What a platform can do, declared by its crate. The engine reads these and degrades by
//! capability, never by kind: numbered lines where there are no buttons, a text split where it
//! is over the limit, a caption where files take one.

use std::time::Duration;

/// How a platform counts a text's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextUnit {
    Bytes,
    Chars,
    /// UTF-16 code units (Telegram).
    Utf16,
}

/// The longest text one message may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLimit {
    pub max: usize,
    pub unit: TextUnit,
}

impl TextLimit {
    /// `text`'s length in this limit's unit.
    pub fn len(&self, text: &str) -> usize {
        match self.unit {
            TextUnit::Bytes => text.len(),
            TextUnit::Chars => text.chars().count(),
            TextUnit::Utf16 => text.encode_utf16().count(),
        }
    }

    pub fn fits(&self, text: &str) -> bool {
        self.len(text) <= self.max
    }
}

/// Buttons a platform shows under a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buttons {
    /// Buttons attached to the message itself, pressed any time later.
    pub inline: bool,
    /// A keyboard that replaces the person's own (answers sent as text).
    pub reply_keyboard: bool,
    pub max_per_row: usize,
    pub max_rows: usize,
    /// Longest label, in characters.
    pub max_label: usize,
}

/// Files a platform carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// Largest file okno may send.
    pub max_upload: u64,
    /// Largest file okno may fetch from the platform.
    pub max_download: u64,
    /// A text may go with a file as its caption, up to this limit.
    pub caption: Option<TextLimit>,
}

/// Everything the engine asks about a platform before it sends or offers something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// `None`: no buttons — menus go as numbered lines people answer with a number.
    pub buttons: Option<Buttons>,
    /// Sent messages' text and buttons can be changed afterwards.
    pub edit: bool,
    pub delete: bool,
    /// Group chats, where one identity stands for many people.
    pub groups: bool,
    /// A link that opens a chat with the bot carrying a code ([`crate::Platform::deep_link`]).
    pub deep_links: bool,
    /// People link their account to a contact by sending the one-time code okno gave them
    /// (typed, or carried by a deep link). Off where the sender already proves who they are
    /// (a company's own site).
    pub link_codes: bool,
    /// okno writes posts of its own and edits them ([`crate::Adapter::post`]): tasks are offered
    /// this way, in group chats with inline buttons.
    pub posts: bool,
    pub text: TextLimit,
    /// The adapter splits a longer text into several messages itself, in order.
    pub splits_long_text: bool,
    /// `None`: text only.
    pub files: Option<FileLimits>,
    /// The platform reports delivery and reading.
    pub receipts: bool,
    /// Free-form messages may be sent only within this long after the person last wrote.
    pub service_window: Option<Duration>,
    /// "typing…" can be shown.
    pub chat_actions: bool,
    /// Inbound by long polling ([`crate::Platform::poll`]) and/or by webhook requests.
    pub polling: bool,
    pub webhook: bool,
    /// A person's message from an operator that the person has not read this long after it
    /// went out is sent again by e-mail, when they left an address and okno has a mailbox: a
    /// website visitor who closed the page still gets the answer.
    pub unread_by_email: Option<Duration>,
}

impl Capabilities {
    /// The least a channel can do: text within `text`, received by webhook.
    pub fn text_only(text: TextLimit) -> Self {
        Capabilities {
            buttons: None,
            edit: false,
            delete: false,
            groups: false,
            deep_links: false,
            link_codes: false,
            posts: false,
            text,
            splits_long_text: false,
            files: None,
            receipts: false,
            service_window: None,
            chat_actions: false,
            polling: false,
            webhook: true,
            unread_by_email: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_counted_in_the_platforms_unit() {
        let emoji = "Привет 👋";
        assert_eq!(TextLimit { max: 0, unit: TextUnit::Bytes }.len(emoji), 17);
        assert_eq!(TextLimit { max: 0, unit: TextUnit::Chars }.len(emoji), 8);
        assert_eq!(TextLimit { max: 0, unit: TextUnit::Utf16 }.len(emoji), 9);
        assert!(TextLimit { max: 9, unit: TextUnit::Utf16 }.fits(emoji));
        assert!(!TextLimit { max: 8, unit: TextUnit::Utf16 }.fits(emoji));
    }
}
