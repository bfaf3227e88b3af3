//! The e-mail channel (`email`): a mailbox read over IMAP and answered over SMTP.
//!
//! Here so far is the part that needs no network:
//!
//! - [`config`]: the channel's configuration as the contract names it (`imap`, `smtp`, `from`),
//!   checked field by field;
//! - [`parse`]: an inbound mail from its raw bytes — sender, subject, threading ids, the text an
//!   operator reads (HTML made plain, quoted history and signatures cut off, the full text and
//!   the raw mail kept), files, auto-replies and bounces, and okno's reply tag;
//! - [`compose`]: okno's answer or broadcast as a mail — threaded onto the customer's mail, with
//!   text and HTML parts, files, a tagged `Reply-To` and one-click unsubscription.
//!
//! - [`smtp`]: sending over SMTP (TLS, STARTTLS, a login, pooled connections), a 4xx reply
//!   tried again and a 5xx ending the message with the server's words.
//!
//! - [`imap`]: reading the folder over IMAP (TLS, STARTTLS, a login) by UID, nothing marked
//!   seen, so a cursor of (UIDVALIDITY, last UID) can be kept by whoever stores the mail.
//!
//! - [`inbound`]: a read mail as okno's event (a person's mail a message, a bounce the failure
//!   of okno's message, an automatic reply nothing) and one poll with its cursor.
//!
//! Not here yet: IDLE, matching a sender to a contact by address, fetching files out of a
//! stored mail, and the `Platform` implementation that registers the channel with okno.

pub mod compose;
pub mod config;
pub mod html;
pub mod imap;
pub mod inbound;
pub mod parse;
pub mod smtp;
pub mod trim;

pub use compose::{compose, reply_subject, Composed, Outgoing, OutgoingFile, Thread, Unsubscribe};
pub use config::{EmailConfig, ImapConfig, Sender, SmtpConfig, Tls};
pub use html::html_to_text;
pub use imap::{Fetched, ImapError, Inbox};
pub use inbound::{poll_once, Cursor};
pub use parse::{parse, reply_tag, Attachment, Bounce, MailKind, ParsedMail, Person};
pub use smtp::Smtp;
pub use trim::visible_text;
