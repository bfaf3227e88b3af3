//! The e-mail channel (`email`): a mailbox read over IMAP and answered over SMTP.
//!
//! - [`config`]: the channel's configuration as the contract names it (`imap`, `smtp`, `from`),
//!   checked field by field;
//! - [`parse`]: an inbound mail from its raw bytes — sender, subject, threading ids, the text an
//!   operator reads (HTML made plain, quoted history and signatures cut off, the full text and
//!   the raw mail kept), files, auto-replies and bounces, and okno's reply tag;
//! - [`compose`]: okno's answer or broadcast as a mail — threaded onto the customer's mail, with
//!   text and HTML parts, files, a tagged `Reply-To` and one-click unsubscription;
//! - [`smtp`]: sending over SMTP (TLS, STARTTLS, a login, pooled connections), a 4xx reply
//!   tried again and a 5xx ending the message with the server's words;
//! - [`imap`]: reading the folder over IMAP (TLS, STARTTLS, a login) by UID, nothing marked
//!   seen, so a cursor of (UIDVALIDITY, last UID) can be kept by whoever stores the mail;
//! - [`inbound`]: a read mail as okno's event (a person's mail a message with its files kept,
//!   a bounce the failure of okno's message, an automatic reply nothing) and its cursor;
//! - [`platform`]: the channel as okno's engine drives it — connected by logging in to both
//!   servers, polled (IDLE where the server has it) with its session kept between polls,
//!   answered through the adapter; a file not kept at reading fetched out of the mail by UID;
//! - [`unsubscribe`]: a broadcast's one-click unsubscribe link (RFC 8058), signed by the channel.

pub mod compose;
pub mod config;
pub mod html;
pub mod imap;
pub mod inbound;
pub mod parse;
pub mod platform;
pub mod smtp;
pub mod trim;
pub mod unsubscribe;

pub use compose::{compose, reply_subject, Composed, Outgoing, OutgoingFile, Thread, Unsubscribe};
pub use config::{EmailConfig, ImapConfig, Sender, SmtpConfig, Tls};
pub use html::html_to_text;
pub use imap::{Fetched, ImapError, Inbox};
pub use inbound::{received, Cursor, ORIGINAL_NAME, PART_SCHEME};
pub use parse::{parse, reply_tag, Attachment, Bounce, MailKind, ParsedMail, Person};
pub use platform::{Email, EmailAdapter};
pub use smtp::Smtp;
pub use trim::visible_text;
