//! E-mail as okno's engine sees it: a mailbox connected by logging in to its IMAP and SMTP
//! servers, polled over IMAP (IDLE where the server has it) by one process at a time, and
//! answered over SMTP.
//!
//! ```text
//!  poll(cursor "<uidvalidity>:<uid>") ─► the mailbox's session (kept between polls)
//!      ├─ new mail after the cursor ─► events, each with the cursor after it
//!      ├─ none ─► IDLE until the server tells of mail (or the poll's time is up) ─► read again
//!      └─ each mail's files (and the mail itself when its text was cut) ─► okno's file store
//!  send(target) ─► the conversation's context (subject, Message-ID, References of the mail
//!      answered) ─► compose (threaded, text + HTML, files, Reply-To tagged with the
//!      conversation) ─► SMTP ─► external id = okno's Message-ID
//!  fetch("email-part:<uidvalidity>:<uid>:<n>") ─► that mail again by UID ─► its file n (or
//!      the whole mail, n = `original`), for a file that could not be written when read
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use okno_channel::http::{FetchError, Fetched as Download};
use okno_channel::schema::{text, Choice, Field, FieldKind, Schema};
use okno_channel::{
    Adapter, Brand, Capabilities, ChannelState, Connected, Context, DeliveryTarget, FileLimits, HookAnswer,
    HookRequest, InboundEvent, InboundMessage, InboundSender, Platform, PollError, Polled, Received, SendError, Sent,
    TextLimit, TextUnit,
};
use okno_domain::channel::{SUBJECT_OPTION, UNSUBSCRIBE};
use okno_domain::ids::ChannelId;
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::{Error, ErrorKind, Result};
use serde_json::{json, Value};

use crate::compose::{self, compose, Outgoing, OutgoingFile, Thread, Unsubscribe};
use crate::config::{EmailConfig, Sender};
use crate::imap::{Fetched, ImapError, Inbox};
use crate::inbound::{received, Cursor, PART_SCHEME, TAG_PREFIX};
use crate::parse::parse;
use crate::smtp::Smtp;
use crate::unsubscribe;

/// Mails read in one poll at most: the cursor is stored after each batch.
const BATCH: usize = 200;

/// The longest text okno sends in one mail (a mail has no real limit; this keeps a runaway
/// text from making a 10 MB mail).
const TEXT_LIMIT: usize = 100_000;

const TLS_MODES: &[Choice] = &[
    Choice { value: "tls", label: text("TLS (ports 993, 465)", "TLS (порты 993, 465)") },
    Choice { value: "starttls", label: text("STARTTLS (ports 143, 587)", "STARTTLS (порты 143, 587)") },
    Choice {
        value: "none",
        label: text("None (a server on this machine only)", "Без шифрования (только сервер на этой машине)"),
    },
];

/// Read mails whose files are being written at once.
const KEEPING: usize = 8;

/// IMAP sessions one channel uses at once to fetch files out of stored mail.
const FETCH_SESSIONS: usize = 4;

/// The e-mail platform. It keeps each polled mailbox's IMAP session between polls, and a few
/// sessions per mailbox for fetching files (keyed by the channel and its configuration), so a
/// busy mailbox is not logged in to again and again — a login is a TLS handshake and an
/// authentication, dearer than reading a mail.
#[derive(Default)]
pub struct Email {
    sessions: Mutex<HashMap<ChannelId, (Value, Inbox)>>,
    fetchers: Mutex<HashMap<ChannelId, Arc<Fetchers>>>,
}

/// One channel's sessions for fetching files: at most [`FETCH_SESSIONS`] in use, the idle
/// ones kept.
struct Fetchers {
    permits: tokio::sync::Semaphore,
    idle: Mutex<Vec<(Value, Inbox)>>,
}

fn config_of(channel: &Channel) -> Result<EmailConfig> {
    EmailConfig::from_value(&channel.config)
}

fn poll_error(e: ImapError) -> PollError {
    match e {
        ImapError::Connection(m) => PollError::Network(m),
        e @ (ImapError::Login(_) | ImapError::Command(_)) => PollError::Refused(e.to_string()),
    }
}

impl Email {
    /// The kept session for `channel` if its configuration is unchanged, else a new one.
    /// The channel's kept session (`true`) when its configuration has not changed, else a new
    /// one (`false`).
    async fn session(&self, channel: &Channel, cfg: &EmailConfig) -> std::result::Result<(Inbox, bool), ImapError> {
        let kept = self.sessions.lock().ok().and_then(|mut s| s.remove(&channel.id));
        match kept {
            Some((config, inbox)) if config == channel.config => return Ok((inbox, true)),
            Some((_, old)) => old.close().await,
            None => {}
        }
        Ok((Inbox::open(&cfg.imap, cfg.ca_cert.as_deref()).await?, false))
    }

    fn keep(&self, channel: &Channel, inbox: Inbox) {
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(channel.id.clone(), (channel.config.clone(), inbox));
        }
    }

    fn fetchers(&self, channel: &Channel) -> Arc<Fetchers> {
        let mut all = self.fetchers.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(channel.id.clone())
            .or_insert_with(|| {
                Arc::new(Fetchers {
                    permits: tokio::sync::Semaphore::new(FETCH_SESSIONS),
                    idle: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    /// Reads message `uid` with one of the channel's fetching sessions (opened when none is
    /// idle), then keeps the session for the next fetch.
    async fn fetch_mail(
        &self,
        channel: &Channel,
        cfg: &EmailConfig,
        part: PartRef,
    ) -> std::result::Result<Vec<u8>, FetchError> {
        let fetchers = self.fetchers(channel);
        let _turn = fetchers.permits.acquire().await.map_err(|_| FetchError::Network("shutting down".into()))?;
        let idle = fetchers.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut inbox = match idle {
            Some((config, inbox)) if config == channel.config => inbox,
            other => {
                if let Some((_, old)) = other {
                    old.close().await;
                }
                Inbox::open(&cfg.imap, cfg.ca_cert.as_deref()).await.map_err(|e| match e {
                    ImapError::Connection(m) => FetchError::Network(m),
                    e => FetchError::Refused(e.to_string()),
                })?
            }
        };
        if inbox.uid_validity != part.uid_validity {
            inbox.close().await;
            return Err(FetchError::Refused(
                "the folder was renumbered (UIDVALIDITY changed) since the mail came".into(),
            ));
        }
        match inbox.fetch_uid(part.uid).await {
            Ok(Some(mail)) => {
                if let Ok(mut idle) = fetchers.idle.lock() {
                    idle.push((channel.config.clone(), inbox));
                }
                Ok(mail.raw)
            }
            Ok(None) => {
                if let Ok(mut idle) = fetchers.idle.lock() {
                    idle.push((channel.config.clone(), inbox));
                }
                Err(FetchError::Refused("the mail is no longer in the folder".into()))
            }
            // A broken session is dropped; the outbox tries again with a new one.
            Err(e) => Err(FetchError::Network(e.to_string())),
        }
    }
}

#[async_trait]
impl Platform for Email {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn title(&self) -> &'static str {
        "E-mail"
    }

    fn brand(&self) -> Brand {
        Brand {
            color: "#F59E0B",
            mark: r##"<rect x="5" y="7.5" width="14" height="9.5" rx="1.5" fill="none" stroke="#fff" stroke-width="1.8"/><path d="M5.8 8.4 12 13l6.2-4.6" fill="none" stroke="#fff" stroke-width="1.8" stroke-linejoin="round"/>"##,
        }
    }

    fn schema(&self) -> Schema {
        Schema::new(
            text("Connect a mailbox", "Подключить почтовый ящик"),
            vec![
                Field::new("from", text("Address", "Адрес"), FieldKind::Text)
                    .placeholder("Магазин «Окно» <support@shop.ru>")
                    .help(text(
                        "The address okno reads and writes as, with the name people see",
                        "Адрес, с которого okno читает и отвечает, с именем, которое видят люди",
                    ))
                    .required(),
                Field::new("imap.host", text("IMAP server", "Сервер IMAP"), FieldKind::Text)
                    .placeholder("imap.shop.ru")
                    .required(),
                Field::new("imap.username", text("IMAP login", "Логин IMAP"), FieldKind::Text).required(),
                Field::new("imap.password", text("IMAP password", "Пароль IMAP"), FieldKind::Text)
                    .help(text(
                        "An app password where the provider asks for one (Yandex, Mail.ru, Gmail)",
                        "Пароль приложения, если почтовый сервис требует его для сторонних программ",
                    ))
                    .required()
                    .secret(),
                Field::new("imap.tls", text("IMAP encryption", "Шифрование IMAP"), FieldKind::Choice(TLS_MODES))
                    .advanced(),
                Field::new("imap.port", text("IMAP port", "Порт IMAP"), FieldKind::Integer)
                    .help(text("993 with TLS, 143 otherwise", "993 с TLS, иначе 143"))
                    .advanced(),
                Field::new("imap.mailbox", text("Folder", "Папка"), FieldKind::Text)
                    .placeholder("INBOX")
                    .advanced(),
                Field::new("smtp.host", text("SMTP server", "Сервер SMTP"), FieldKind::Text)
                    .placeholder("smtp.shop.ru")
                    .required(),
                Field::new("smtp.username", text("SMTP login", "Логин SMTP"), FieldKind::Text).required(),
                Field::new("smtp.password", text("SMTP password", "Пароль SMTP"), FieldKind::Text)
                    .required()
                    .secret(),
                Field::new("smtp.tls", text("SMTP encryption", "Шифрование SMTP"), FieldKind::Choice(TLS_MODES))
                    .advanced(),
                Field::new("smtp.port", text("SMTP port", "Порт SMTP"), FieldKind::Integer)
                    .help(text("465 with TLS, 587 with STARTTLS", "465 с TLS, 587 со STARTTLS"))
                    .advanced(),
                Field::new("smtp.connections", text("SMTP connections", "Соединений SMTP"), FieldKind::Integer)
                    .help(text(
                        "mails sent at once (1–32, 8 when empty): more for your own mail server, fewer for a public service that limits them",
                        "сколько писем отправлять одновременно (1–32, по умолчанию 8): больше — для своего почтового сервера, меньше — для публичного сервиса с ограничением",
                    ))
                    .placeholder("8")
                    .advanced(),
                Field::new("subject", text("Subject of new mails", "Тема новых писем"), FieldKind::Text)
                    .help(text(
                        "For mails that answer nothing (notices, broadcasts): \"Message from {name}\" when empty",
                        "Для писем, которые ни на что не отвечают (уведомления, рассылки); по умолчанию «Сообщение от {имя}»",
                    ))
                    .advanced(),
                Field::new("ca_cert", text("Certificate authority (PEM)", "Центр сертификации (PEM)"), FieldKind::Text)
                    .help(text(
                        "For a mail server whose certificate your company signs itself",
                        "Для почтового сервера с сертификатом, выпущенным вашей компанией",
                    ))
                    .api_only(),
                Field::new("unsubscribe_secret", text("Unsubscribe key", "Ключ ссылок отписки"), FieldKind::Text)
                    .secret()
                    .internal(),
            ],
        )
    }

    fn capabilities(&self, _config: &Value) -> Capabilities {
        let mut caps = Capabilities::text_only(TextLimit { max: TEXT_LIMIT, unit: TextUnit::Chars });
        caps.files = Some(FileLimits {
            // Most providers refuse mails over 25 MB, and files grow by a third in base64.
            max_upload: 18 * 1024 * 1024,
            max_download: 50 * 1024 * 1024,
            caption: Some(TextLimit { max: TEXT_LIMIT, unit: TextUnit::Chars }),
        });
        caps.link_codes = true;
        caps.polling = true;
        caps.webhook = false;
        caps
    }

    /// Logs in to both servers (nothing is saved when either refuses) and opens the folder.
    async fn connect(&self, _cx: &Context, config: &Value, previous: Option<&Value>) -> Result<Connected> {
        let mut cfg = EmailConfig::from_value(config)?;
        let kept = previous.and_then(|p| p.get("unsubscribe_secret")).and_then(Value::as_str).map(str::to_string);
        cfg.unsubscribe_secret = cfg.unsubscribe_secret.or(kept).or_else(|| Some(okno_domain::ids::random_hex(32)));
        let sender = cfg.sender()?;
        let smtp = Smtp::new(&cfg.smtp, &sender, cfg.ca_cert.as_deref())?;
        if let Err(why) = smtp.check().await {
            return Err(Error::invalid("invalid_credentials", format!("{why} ({})", cfg.smtp.host.trim())));
        }
        let inbox = Inbox::open(&cfg.imap, cfg.ca_cert.as_deref()).await.map_err(|e| match e {
            ImapError::Connection(m) => {
                Error::unavailable("email_unreachable", format!("cannot reach {}: {m}", cfg.imap.host.trim()))
            }
            e => Error::invalid("invalid_credentials", format!("{e} ({})", cfg.imap.host.trim())),
        })?;
        let info = json!({
            "address": sender.address,
            "name": sender.name,
            "mailbox": cfg.imap.mailbox,
            "idle": inbox.idle,
        });
        inbox.close().await;
        let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Connected { config, info })
    }

    fn adapter(&self, cx: &Context, channel: &Channel, state: Arc<dyn ChannelState>) -> Result<Arc<dyn Adapter>> {
        let cfg = config_of(channel)?;
        let sender = cfg.sender()?;
        let smtp = Smtp::new(&cfg.smtp, &sender, cfg.ca_cert.as_deref())?;
        let subject = cfg.subject.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| {
            format!("Сообщение от {}", sender.name.clone().unwrap_or_else(|| sender.address.clone()))
        });
        let unsubscribe =
            cfg.unsubscribe_secret.clone().map(|secret| (cx.public_url.clone(), channel.id.to_string(), secret));
        Ok(Arc::new(EmailAdapter { smtp, sender, subject, files: cx.files.clone(), state, unsubscribe }))
    }

    /// The one request an e-mail channel takes at its hook address: a person unsubscribing
    /// through a broadcast's link (the page's button, or their mail client's one-click POST),
    /// made the press of the broadcast's "unsubscribe" button.
    async fn receive(
        &self,
        _cx: &Context,
        channel: &Channel,
        request: &HookRequest<'_>,
        _state: &dyn ChannelState,
    ) -> Result<Vec<Received>> {
        let cfg = config_of(channel)?;
        let who = match unsubscribe::check(cfg.unsubscribe_secret.as_deref().unwrap_or_default(), request.query) {
            Some(Ok(who)) => who,
            Some(Err(why)) => return Err(Error::new(ErrorKind::Forbidden, "bad_signature", why)),
            None => {
                return Err(Error::invalid(
                    "not_a_webhook_channel",
                    "an e-mail channel reads its mailbox; its hook address takes unsubscribe links only",
                ))
            }
        };
        let sender = cfg.sender()?;
        let press = InboundMessage {
            channel_id: channel.id.clone(),
            sender: InboundSender {
                user_id: who.address.clone(),
                chat_id: who.address.clone(),
                email: Some(who.address.clone()),
                ..Default::default()
            },
            // One unsubscribing per mail, however often the link is used.
            external_id: format!("unsubscribe:{}", who.message_id),
            text: None,
            attachments: Vec::new(),
            button_data: Some(UNSUBSCRIBE.to_string()),
            reply_to: None,
            reply_to_external: Some(compose::message_id(&who.message_id, &sender)),
            author: None,
            member: None,
            bot_turn: false,
            subscription: None,
            survey: Default::default(),
            context: None,
            conversation_hint: None,
        };
        Ok(vec![Received::new(InboundEvent::Message(Box::new(press)))])
    }

    /// The page a person's browser shows after unsubscribing.
    fn hook_answer(&self, _channel: &Channel, _request: &HookRequest<'_>) -> HookAnswer {
        HookAnswer::Html(unsubscribe::done_page())
    }

    /// A person following a broadcast's unsubscribe link: a page with one button (a GET never
    /// unsubscribes; mail systems' link checkers follow every link).
    fn verify_hook(&self, channel: &Channel, request: &HookRequest<'_>) -> Option<Result<HookAnswer>> {
        let secret = config_of(channel).ok()?.unsubscribe_secret.unwrap_or_default();
        Some(Ok(HookAnswer::Html(match unsubscribe::check(&secret, request.query)? {
            Ok(who) => unsubscribe::confirm_page(&who),
            Err(why) => unsubscribe::refused_page(why),
        })))
    }

    fn polls(&self, _channel: &Channel) -> bool {
        true
    }

    /// Reads the mail after `cursor`; when there is none, waits (IDLE) up to the poll's time
    /// for some and reads again.
    async fn poll(
        &self,
        cx: &Context,
        channel: &Channel,
        cursor: Option<&str>,
        _state: &dyn ChannelState,
    ) -> std::result::Result<Polled, PollError> {
        let cfg = config_of(channel).map_err(|e| PollError::Refused(e.message))?;
        let own = cfg.sender().map(|s| s.address).unwrap_or_default();
        let (inbox, kept) = self.session(channel, &cfg).await.map_err(poll_error)?;
        let (inbox, mail) = match read_or_wait(inbox, cursor, cx.poll_timeout).await {
            // A kept session the server has closed since (its idle timeout, a restart, a
            // folder renumbered) is no failure of the mailbox: a new one reads the same.
            Err(ImapError::Connection(_)) if kept => {
                let inbox = Inbox::open(&cfg.imap, cfg.ca_cert.as_deref()).await.map_err(poll_error)?;
                read_or_wait(inbox, cursor, cx.poll_timeout).await
            }
            read => read,
        }
        .map_err(poll_error)?;
        let uid_validity = inbox.uid_validity;
        self.keep(channel, inbox);
        // Parsed and their files written a few at a time (each file is synced to disk), in
        // the folder's order so each cursor follows what came before it.
        let reading: Vec<_> = mail.iter().map(|f| received(cx, &channel.id, &own, uid_validity, f)).collect();
        let items = futures::stream::iter(reading).buffered(KEEPING).collect().await;
        Ok(Polled { items })
    }

    /// A file of a stored mail: the mail read again by its UID, its file `n` (or, for
    /// `original`, the whole mail as it arrived).
    async fn fetch(
        &self,
        cx: &Context,
        channel: &Channel,
        reference: &str,
    ) -> std::result::Result<Download, FetchError> {
        let part = PartRef::parse(reference)
            .ok_or_else(|| FetchError::Refused(format!("`{reference}` names no file of a mail")))?;
        let cfg = config_of(channel).map_err(|e| FetchError::Refused(e.message))?;
        let raw = self.fetch_mail(channel, &cfg, part).await?;
        let (body, mime) = match part.n {
            None => (raw, "message/rfc822".to_string()),
            Some(n) => {
                let parsed = parse(&raw).map_err(|e| FetchError::Refused(e.message))?;
                let file = parsed
                    .attachments
                    .into_iter()
                    .nth(n)
                    .ok_or_else(|| FetchError::Refused(format!("the mail has no file {n}")))?;
                (file.bytes, file.mime)
            }
        };
        if body.len() as u64 > cx.max_download {
            return Err(FetchError::TooLarge { limit: cx.max_download });
        }
        Ok(Download { body: Bytes::from(body), mime: Some(mime) })
    }
}

/// The mail after `cursor`; when there is none, waits (IDLE) up to `wait` for some and reads
/// again. The session is closed when it fails.
async fn read_or_wait(
    mut inbox: Inbox,
    cursor: Option<&str>,
    wait: std::time::Duration,
) -> std::result::Result<(Inbox, Vec<Fetched>), ImapError> {
    let after = Cursor::after(cursor.and_then(Cursor::parse), inbox.uid_validity);
    let mut read = inbox.fetch_after(after, BATCH).await;
    if matches!(&read, Ok(mail) if mail.is_empty()) {
        inbox = inbox.wait(wait).await?;
        read = inbox.fetch_after(after, BATCH).await;
    }
    match read {
        Ok(mail) => Ok((inbox, mail)),
        Err(e) => {
            inbox.close().await;
            Err(e)
        }
    }
}

/// A reference to a file inside a stored mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PartRef {
    uid_validity: u32,
    uid: u32,
    /// The file's place among the mail's files; `None`: the whole mail.
    n: Option<usize>,
}

impl PartRef {
    /// Reads `email-part:<uidvalidity>:<uid>:<n | original>`.
    fn parse(reference: &str) -> Option<PartRef> {
        let mut it = reference.strip_prefix(PART_SCHEME)?.split(':');
        let uid_validity = it.next()?.parse().ok()?;
        let uid = it.next()?.parse().ok()?;
        let n = match it.next()? {
            "original" => None,
            n => Some(n.parse().ok()?),
        };
        it.next().is_none().then_some(PartRef { uid_validity, uid, n })
    }
}

/// The conversation's tag in `Reply-To` (`support+c<conversation id>@shop.ru`), by which an
/// answer from another address finds its conversation; none where the mailbox's name leaves no
/// room for it (a local part is at most 64 characters).
fn reply_tag(sender: &Sender, conversation_id: &str) -> Option<String> {
    let tag = format!("{TAG_PREFIX}{conversation_id}");
    let fits = sender.tagged(&tag).rsplit_once('@').is_some_and(|(local, _)| local.len() <= 64);
    (fits && !conversation_id.is_empty()).then_some(tag)
}

/// Sends one mailbox's mail.
pub struct EmailAdapter {
    smtp: Smtp,
    sender: Sender,
    /// The subject of a mail that answers nothing.
    subject: String,
    files: okno_channel::files::FileStore,
    state: Arc<dyn ChannelState>,
    /// okno's public address, the channel's id and its key: where unsubscribe links point.
    unsubscribe: Option<(String, String, String)>,
}

impl EmailAdapter {
    /// What the conversation's latest mail said about itself: its subject and threading ids.
    async fn answered(&self, t: &DeliveryTarget) -> (Option<String>, Option<Thread>) {
        let context = self.state.conversation_context(t.message.conversation_id.as_str()).await.ok().flatten();
        let mail = context.as_ref().and_then(|c| c.get("email"));
        let subject = mail.and_then(|m| m["subject"].as_str()).map(str::to_string);
        let last = mail.and_then(|m| m["message_id"].as_str()).map(str::to_string);
        let references: Vec<String> = mail
            .and_then(|m| m["references"].as_array())
            .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        // An explicit reply names the mail it answers; otherwise the latest mail is answered.
        let thread = match (&t.reply_to_external, last) {
            (Some(id), Some(last)) if *id == last => Some(Thread { message_id: last, references }),
            (Some(id), _) => Some(Thread { message_id: id.clone(), references: Vec::new() }),
            (None, Some(last)) => Some(Thread { message_id: last, references }),
            (None, None) => None,
        };
        (subject, thread)
    }
}

#[async_trait]
impl Adapter for EmailAdapter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    /// One mail: the text (buttons as numbered lines to answer with), the files, threaded
    /// onto the person's latest mail with its subject, `Reply-To` tagged with the conversation.
    async fn send(&self, t: &DeliveryTarget) -> std::result::Result<Sent, SendError> {
        let mut text = t.message.text.clone().unwrap_or_default();
        // A broadcast's "unsubscribe" button becomes a link (in the text and in
        // `List-Unsubscribe`); the other buttons numbered lines to answer with.
        let mut buttons = t.message.buttons.clone();
        let mut unsubscribe_link = None;
        let before = buttons.iter().map(Vec::len).sum::<usize>();
        for row in &mut buttons {
            row.retain(|b| b.data.as_deref() != Some(UNSUBSCRIBE));
        }
        buttons.retain(|row| !row.is_empty());
        if buttons.iter().map(Vec::len).sum::<usize>() < before {
            if let Some((public_url, channel_id, secret)) = &self.unsubscribe {
                unsubscribe_link =
                    Some(unsubscribe::link(public_url, channel_id, secret, t.message.id.as_str(), &t.identity.chat_id));
            }
        }
        if !buttons.is_empty() {
            text = okno_channel::numbered_text(&text, &buttons);
        }
        if let Some(link) = &unsubscribe_link {
            text = format!("{}\n\n—\nОтписаться от рассылки: {link}", text.trim_end());
        }
        let mut attachments = Vec::new();
        for a in t.message.attachments.iter().filter(|a| a.state == "ready") {
            let bytes = self
                .files
                .read(&a.sha256)
                .await
                .map_err(|e| SendError::retry(format!("reading the file `{}`: {e}", a.name)))?;
            attachments.push(OutgoingFile { name: a.name.clone(), mime: a.mime.clone(), bytes: bytes.to_vec() });
        }
        if text.trim().is_empty() && attachments.is_empty() {
            return Err(SendError::permanent("the message has neither text nor files"));
        }
        let (answered_subject, thread) = self.answered(t).await;
        let given = t.options.get(SUBJECT_OPTION).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
        let subject = match (given, &thread, answered_subject) {
            (Some(s), _, _) => s.to_string(),
            (None, Some(_), Some(s)) => s,
            _ => self.subject.clone(),
        };
        // RFC 8058 asks for https: over plain http the link stays in the text only.
        let unsubscribe = unsubscribe_link
            .filter(|l| l.starts_with("https://"))
            .map(|url| Unsubscribe { url, mailto: self.sender.tagged("unsubscribe") });
        let outgoing = Outgoing {
            id: t.message.id.to_string(),
            to: t.identity.chat_id.clone(),
            to_name: t.identity.display_name.clone(),
            subject,
            text,
            reply_tag: reply_tag(&self.sender, t.message.conversation_id.as_str()),
            // A mail with a subject of its own (a broadcast's) starts a thread of its own.
            thread: if given.is_some() { None } else { thread },
            attachments,
            unsubscribe,
        };
        let mail = compose(&self.sender, &outgoing).map_err(|e| SendError::permanent(e.message))?;
        self.smtp.send(&mail).await?;
        Ok(Sent { external_id: Some(mail.message_id) })
    }

    fn chat_key(&self, target: &DeliveryTarget) -> String {
        target.identity.chat_id.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_reference_reads_back_and_nothing_else_does() {
        assert_eq!(PartRef::parse("email-part:1765:42:3"), Some(PartRef { uid_validity: 1765, uid: 42, n: Some(3) }));
        assert_eq!(
            PartRef::parse("email-part:1765:42:original"),
            Some(PartRef { uid_validity: 1765, uid: 42, n: None })
        );
        for bad in [
            "",
            "email-part:",
            "email-part:1:2",
            "email-part:1:2:3:4",
            "email-part:a:2:3",
            "https://x/1:2:3",
            "email-part:1:2:-1",
        ] {
            assert_eq!(PartRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_reply_tag_names_the_conversation_and_is_left_out_where_it_cannot_fit() {
        let sender = Sender::parse("support@shop.ru").unwrap();
        let tag = reply_tag(&sender, "01a24d475250712f812b3b5200e6f97d");
        assert_eq!(tag.as_deref(), Some("c01a24d475250712f812b3b5200e6f97d"));
        assert_eq!(
            crate::inbound::tagged_conversation(tag.as_deref()).as_deref(),
            Some("01a24d475250712f812b3b5200e6f97d")
        );
        let long = Sender::parse(&format!("{}@shop.ru", "x".repeat(60))).unwrap();
        assert_eq!(reply_tag(&long, "01a24d475250712f812b3b5200e6f97d"), None);
    }

    #[test]
    fn the_schema_takes_the_contract_s_configuration() {
        let config = json!({
            "imap": {"host": "imap.shop.ru", "port": 993, "tls": "tls", "username": "support@shop.ru",
                     "password": "p", "mailbox": "INBOX"},
            "smtp": {"host": "smtp.shop.ru", "port": 587, "tls": "starttls", "username": "support@shop.ru",
                     "password": "p"},
            "from": "Магазин <support@shop.ru>"
        });
        Email::default().schema().check(&config).unwrap();
        let shown = Email::default().schema().redact(&config);
        assert!(shown["imap"].get("password").is_none() && shown["smtp"].get("password").is_none());
        assert_eq!(shown["imap"]["host"], "imap.shop.ru");
        let caps = Email::default().capabilities(&config);
        assert!(caps.polling && !caps.webhook && caps.buttons.is_none() && caps.files.is_some() && caps.link_codes);
    }
}
