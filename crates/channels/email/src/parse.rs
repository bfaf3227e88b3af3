//! An inbound mail, from its raw RFC 822 bytes to what okno keeps: who wrote, the threading
//! headers, the text the operator reads (quoted history and signatures cut off), the files, and
//! whether a person wrote it at all (an auto-reply, a bounce).

use std::borrow::Cow;

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};
use okno_domain::error::{Error, Result};

use crate::html::html_to_text;
use crate::trim::visible_text;

/// An inbound mail as okno keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMail {
    /// Who wrote (the first `From` mailbox).
    pub from: Option<Person>,
    pub subject: Option<String>,
    /// The `Date` header, RFC 3339.
    pub date: Option<String>,
    /// `Message-ID` without its angle brackets.
    pub message_id: Option<String>,
    /// `In-Reply-To` ids, without angle brackets.
    pub in_reply_to: Vec<String>,
    /// `References` ids, oldest first, without angle brackets.
    pub references: Vec<String>,
    /// Addresses in `To`, `Cc` and `Delivered-To`: where the mail was sent (reply tags live here).
    pub recipients: Vec<String>,
    /// What the operator reads: the new text, without quoted history and signature.
    pub text: String,
    /// The whole body as text, quotes and signature included.
    pub full_text: String,
    /// The mail has an HTML body (its look is in the original, not in the text).
    pub has_html: bool,
    /// Files, inline images among them.
    pub attachments: Vec<Attachment>,
    /// A person's mail, an auto-reply or a bounce.
    pub kind: MailKind,
    /// The mail as it arrived, for download.
    pub raw: Vec<u8>,
}

/// A mailbox with its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub address: String,
    pub name: Option<String>,
}

/// A file carried by a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    /// `type/subtype`, lower case.
    pub mime: String,
    pub bytes: Vec<u8>,
    /// Shown inside the HTML body (`Content-Disposition: inline` or referenced by `Content-ID`).
    pub inline: bool,
    /// `Content-ID` without angle brackets.
    pub content_id: Option<String>,
}

/// Whether a person wrote the mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailKind {
    /// Someone wrote it.
    Personal,
    /// A machine answered for someone (a vacation notice, a ticket receipt, a newsletter).
    AutoReply,
    /// The mail system returned a message okno sent.
    Bounce(Bounce),
}

/// A delivery status notification (RFC 3464) about a message okno sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bounce {
    /// The recipient who could not be reached.
    pub recipient: Option<String>,
    /// `failed`, `delayed`, `delivered`…
    pub action: Option<String>,
    /// The enhanced status code, e.g. `5.1.1`.
    pub status: Option<String>,
    /// The remote server's words, e.g. `smtp; 550 5.1.1 <x@y.ru>: Recipient address rejected`.
    pub diagnostic: Option<String>,
    /// The `Message-ID` of the returned message (without angle brackets).
    pub original_message_id: Option<String>,
}

impl Bounce {
    /// A permanent failure (status 5.x.x, or action `failed` without a status).
    pub fn is_permanent(&self) -> bool {
        match &self.status {
            Some(s) => s.starts_with('5'),
            None => self.action.as_deref() == Some("failed"),
        }
    }
}

impl ParsedMail {
    /// The plus-tag okno put in its own address (`support+<tag>@shop.ru`), read from the
    /// addresses the mail was sent to; `mailbox` is okno's address.
    pub fn reply_tag(&self, mailbox: &str) -> Option<String> {
        self.recipients.iter().find_map(|a| reply_tag(a, mailbox))
    }

    /// Ids this mail answers, nearest first: `In-Reply-To`, then `References` newest first.
    pub fn thread_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        for id in self.in_reply_to.iter().chain(self.references.iter().rev()) {
            if !ids.contains(&id.as_str()) {
                ids.push(id);
            }
        }
        ids
    }
}

/// The tag in `address` when it is `mailbox` with a plus-tag: `reply_tag("support+c42@shop.ru",
/// "support@shop.ru") == Some("c42")`. Local parts and domains compare case-insensitively.
pub fn reply_tag(address: &str, mailbox: &str) -> Option<String> {
    let address = strip_brackets(address.trim());
    let (local, domain) = address.rsplit_once('@')?;
    let (own_local, own_domain) = mailbox.trim().rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(own_domain) {
        return None;
    }
    let (base, tag) = local.split_once('+')?;
    let own_base = own_local.split_once('+').map_or(own_local, |(b, _)| b);
    if !base.eq_ignore_ascii_case(own_base) || tag.is_empty() {
        return None;
    }
    if tag.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"')) {
        return None;
    }
    Some(tag.to_string())
}

/// Reads a raw mail. Refuses only what is not a mail at all (no headers, nothing readable).
pub fn parse(raw: &[u8]) -> Result<ParsedMail> {
    let message =
        MessageParser::default().parse(raw).ok_or_else(|| Error::invalid("invalid_mail", "not an e-mail message"))?;
    if message.headers().is_empty() {
        return Err(Error::invalid("invalid_mail", "not an e-mail message: no headers"));
    }
    let from = message.from().and_then(|a| a.first()).and_then(|a| {
        let address = a.address()?.trim();
        (!address.is_empty()).then(|| Person {
            address: address.to_string(),
            name: a.name().map(str::trim).filter(|n| !n.is_empty() && *n != address).map(str::to_string),
        })
    });
    let subject = message.subject().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let date = message.date().map(|d| d.to_rfc3339());
    let message_id = message.message_id().map(|id| strip_brackets(id.trim()).to_string()).filter(|s| !s.is_empty());
    let in_reply_to = ids_of(&message, "In-Reply-To");
    let references = ids_of(&message, "References");

    let mut recipients = Vec::new();
    for list in message.to().into_iter().chain(message.cc()) {
        recipients.extend(list.iter().filter_map(|a| a.address()).map(|a| a.trim().to_string()));
    }
    for (name, value) in message.headers_raw() {
        if name.eq_ignore_ascii_case("Delivered-To") || name.eq_ignore_ascii_case("X-Original-To") {
            recipients.push(strip_brackets(value.trim()).to_string());
        }
    }
    recipients.retain(|a| !a.is_empty());

    let bounce = bounce_of(&message);
    let full_text = body_text(&message);
    let text = if bounce.is_some() { full_text.trim().to_string() } else { visible_text(&full_text) };
    let attachments = attachments_of(&message, bounce.is_some());
    let kind = match bounce {
        Some(b) => MailKind::Bounce(b),
        None if is_auto_reply(&message) => MailKind::AutoReply,
        None => MailKind::Personal,
    };
    Ok(ParsedMail {
        from,
        subject,
        date,
        message_id,
        in_reply_to,
        references,
        recipients,
        text,
        full_text: full_text.trim_end().to_string(),
        has_html: message.parts.iter().any(|p| matches!(p.body, PartType::Html(_))),
        attachments,
        kind,
        raw: raw.to_vec(),
    })
}

fn strip_brackets(id: &str) -> &str {
    id.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(id).trim()
}

/// The message ids in a header, read from its raw value so that ids a parser would not accept
/// (no `@`, stray spaces) are kept too.
fn ids_of(message: &Message<'_>, header: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for (name, value) in message.headers_raw() {
        if !name.eq_ignore_ascii_case(header) {
            continue;
        }
        let value = value.replace(['\r', '\n'], " ");
        if value.contains('<') {
            for piece in value.split('<').skip(1) {
                if let Some((id, _)) = piece.split_once('>') {
                    push_id(&mut ids, id);
                }
            }
        } else {
            for id in value.split_whitespace() {
                push_id(&mut ids, id);
            }
        }
    }
    ids
}

fn push_id(ids: &mut Vec<String>, id: &str) {
    let id = id.trim();
    if !id.is_empty() && !id.contains(char::is_whitespace) && !ids.iter().any(|i| i == id) {
        ids.push(id.to_string());
    }
}

/// The body as text: the first plain part, or the first HTML part made plain (also when the
/// plain part is empty, as some clients send it).
fn body_text(message: &Message<'_>) -> String {
    let part_text = |id: Option<&u32>| match id.and_then(|id| message.parts.get(*id as usize)).map(|p| &p.body) {
        Some(PartType::Text(text)) => text.to_string(),
        Some(PartType::Html(html)) => html_to_text(html),
        _ => String::new(),
    };
    let mut text = part_text(message.text_body.first());
    if text.trim().is_empty() {
        text = part_text(message.html_body.first());
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

fn header_raw<'a>(message: &'a Message<'_>, name: &str) -> Option<&'a str> {
    message.headers_raw().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

/// RFC 3834's `Auto-Submitted`, and what vacation programs and list servers use besides.
fn is_auto_reply(message: &Message<'_>) -> bool {
    if let Some(v) = header_raw(message, "Auto-Submitted") {
        let v = v.split(';').next().unwrap_or_default().trim();
        if !v.is_empty() && !v.eq_ignore_ascii_case("no") {
            return true;
        }
    }
    if header_raw(message, "X-Autoreply").is_some() || header_raw(message, "X-Autorespond").is_some() {
        return true;
    }
    if let Some(v) = header_raw(message, "X-Auto-Response-Suppress") {
        // Exchange marks its own out-of-office answers with `All` or `OOF` here.
        if v.eq_ignore_ascii_case("all") || v.split(',').any(|p| p.trim().eq_ignore_ascii_case("oof")) {
            return true;
        }
    }
    header_raw(message, "Precedence").is_some_and(|v| {
        let v = v.to_ascii_lowercase();
        matches!(v.as_str(), "bulk" | "auto_reply" | "junk" | "auto-reply")
    })
}

/// A delivery status notification: `multipart/report; report-type=delivery-status` with its
/// `message/delivery-status` part, and the returned message or its headers.
fn bounce_of(message: &Message<'_>) -> Option<Bounce> {
    let root = message.root_part();
    let ct = root.content_type()?;
    let report_type = ct.attribute("report-type").unwrap_or_default();
    if !ct.c_type.eq_ignore_ascii_case("multipart")
        || !ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
        || !(report_type.eq_ignore_ascii_case("delivery-status")
            || report_type.eq_ignore_ascii_case("global-delivery-status"))
    {
        return None;
    }
    let mut bounce = Bounce::default();
    for part in &message.parts {
        let Some(ct) = part.content_type() else { continue };
        let (t, s) = (ct.c_type.to_ascii_lowercase(), ct.subtype().unwrap_or_default().to_ascii_lowercase());
        match (t.as_str(), s.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") => {
                read_status(&String::from_utf8_lossy(part.contents()), &mut bounce)
            }
            ("text", "rfc822-headers") | ("message", "rfc822-headers" | "global-headers")
                if bounce.original_message_id.is_none() =>
            {
                bounce.original_message_id = returned_message_id(part);
            }
            ("message", "rfc822" | "global") if bounce.original_message_id.is_none() => {
                bounce.original_message_id = match &part.body {
                    PartType::Message(m) => m.message_id().map(|id| strip_brackets(id).to_string()),
                    _ => returned_message_id(part),
                };
            }
            _ => {}
        }
    }
    Some(bounce)
}

fn returned_message_id(part: &MessagePart<'_>) -> Option<String> {
    let headers = MessageParser::default().parse_headers(part.contents())?;
    headers.message_id().map(|id| strip_brackets(id).to_string()).filter(|id| !id.is_empty())
}

/// Reads the per-recipient fields of a `message/delivery-status` body (RFC 3464 §2.3): the first
/// recipient's, since okno sends each mail to one person.
fn read_status(body: &str, bounce: &mut Bounce) {
    // Fields may be folded over several lines: unfold first.
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let typed = |v: &str| v.split_once(';').map_or(v, |(_, a)| a).trim().to_string();
    for (name, value) in fields {
        match name.as_str() {
            "final-recipient" | "original-recipient" if bounce.recipient.is_none() => {
                bounce.recipient = Some(strip_brackets(&typed(&value)).to_string()).filter(|r| !r.is_empty())
            }
            "action" if bounce.action.is_none() => bounce.action = Some(value.to_ascii_lowercase()),
            "status" if bounce.status.is_none() => bounce.status = value.split_whitespace().next().map(str::to_string),
            "diagnostic-code" if bounce.diagnostic.is_none() => bounce.diagnostic = Some(value),
            _ => {}
        }
    }
}

/// Every part that is a file: attachments and inline images. A bounce's report parts are the
/// mail system's bookkeeping, not files, and are left out.
fn attachments_of(message: &Message<'_>, bounce: bool) -> Vec<Attachment> {
    let mut out = Vec::new();
    for id in &message.attachments {
        let Some(part) = message.parts.get(*id as usize) else { continue };
        let mime = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(s) => format!("{}/{}", ct.c_type, s),
                None => ct.c_type.to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".to_string())
            .to_ascii_lowercase();
        if bounce
            && matches!(
                mime.as_str(),
                "message/delivery-status"
                    | "message/global-delivery-status"
                    | "text/rfc822-headers"
                    | "message/rfc822"
                    | "message/global"
                    | "message/rfc822-headers"
                    | "message/global-headers"
            )
        {
            continue;
        }
        let bytes: Cow<'_, [u8]> = match &part.body {
            PartType::Message(m) => Cow::Borrowed(m.raw_message()),
            PartType::Text(t) | PartType::Html(t) => Cow::Borrowed(t.as_bytes()),
            PartType::Binary(b) | PartType::InlineBinary(b) => Cow::Borrowed(b.as_ref()),
            PartType::Multipart(_) => continue,
        };
        let content_id = part.content_id().map(|c| strip_brackets(c.trim()).to_string()).filter(|c| !c.is_empty());
        let inline = matches!(part.body, PartType::InlineBinary(_))
            || part.content_disposition().is_some_and(|d| d.is_inline())
            || (content_id.is_some() && part.content_disposition().is_none_or(|d| !d.is_attachment()));
        let name = part
            .attachment_name()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .or_else(|| match &part.body {
                PartType::Message(m) => m.subject().map(|s| format!("{s}.eml")),
                _ => None,
            })
            .unwrap_or_else(|| default_name(&mime, out.len() + 1));
        out.push(Attachment { name, mime, bytes: bytes.into_owned(), inline, content_id });
    }
    out
}

fn default_name(mime: &str, n: usize) -> String {
    let ext = match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "application/pdf" => "pdf",
        "message/rfc822" => "eml",
        "text/plain" => "txt",
        "text/html" => "html",
        _ => "bin",
    };
    format!("attachment-{n}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(headers: &str, body: &str) -> ParsedMail {
        let raw = format!("{headers}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}");
        parse(raw.as_bytes()).unwrap()
    }

    const BASE: &str = "From: Ivan <ivan@mail.ru>\r\nTo: support@shop.ru\r\nSubject: Hi\r\nMessage-ID: <a.1@mail.ru>";

    #[test]
    fn the_reply_tag_is_read_from_okno_s_own_address_only() {
        assert_eq!(reply_tag("support+c42@shop.ru", "support@shop.ru").as_deref(), Some("c42"));
        assert_eq!(reply_tag("<Support+C42@Shop.RU>", "support@shop.ru").as_deref(), Some("C42"));
        assert_eq!(reply_tag("support+a+b@shop.ru", "support@shop.ru").as_deref(), Some("a+b"));
        assert_eq!(reply_tag("support@shop.ru", "support@shop.ru"), None);
        assert_eq!(reply_tag("support+@shop.ru", "support@shop.ru"), None);
        assert_eq!(reply_tag("sales+c42@shop.ru", "support@shop.ru"), None);
        assert_eq!(reply_tag("support+c42@evil.ru", "support@shop.ru"), None);
        assert_eq!(reply_tag("support+c42", "support@shop.ru"), None);
        assert_eq!(reply_tag("support+c 42@shop.ru", "support@shop.ru"), None);
    }

    #[test]
    fn the_reply_tag_is_found_in_to_cc_or_delivered_to() {
        let cc = mail(&format!("{BASE}\r\nCc: Shop <support+t1@shop.ru>"), "x");
        assert_eq!(cc.reply_tag("support@shop.ru").as_deref(), Some("t1"));
        let delivered = mail(&format!("Delivered-To: support+t2@shop.ru\r\n{BASE}"), "x");
        assert_eq!(delivered.reply_tag("support@shop.ru").as_deref(), Some("t2"));
        assert_eq!(mail(BASE, "x").reply_tag("support@shop.ru"), None);
    }

    #[test]
    fn threading_ids_lose_their_brackets_and_keep_their_order() {
        let m = mail(
            &format!(
                "{BASE}\r\nIn-Reply-To: <p.3@shop.ru>\r\nReferences: <p.1@shop.ru>\r\n <p.2@shop.ru>  <p.3@shop.ru>"
            ),
            "x",
        );
        assert_eq!(m.message_id.as_deref(), Some("a.1@mail.ru"));
        assert_eq!(m.in_reply_to, ["p.3@shop.ru"]);
        assert_eq!(m.references, ["p.1@shop.ru", "p.2@shop.ru", "p.3@shop.ru"]);
        assert_eq!(m.thread_ids(), ["p.3@shop.ru", "p.2@shop.ru", "p.1@shop.ru"]);
    }

    #[test]
    fn ids_without_brackets_are_kept() {
        let m = mail(&format!("{BASE}\r\nIn-Reply-To: p.3@shop.ru"), "x");
        assert_eq!(m.in_reply_to, ["p.3@shop.ru"]);
    }

    #[test]
    fn the_sender_s_name_is_optional() {
        let m = mail("From: ivan@mail.ru\r\nSubject: x", "x");
        assert_eq!(m.from, Some(Person { address: "ivan@mail.ru".into(), name: None }));
        let m = mail("From: \"ivan@mail.ru\" <ivan@mail.ru>\r\nSubject: x", "x");
        assert_eq!(m.from.unwrap().name, None);
        assert_eq!(mail("Subject: x", "x").from, None);
    }

    #[test]
    fn automatic_mail_is_recognised_by_its_headers() {
        for header in [
            "Auto-Submitted: auto-replied",
            "Auto-Submitted: auto-generated",
            "Auto-Submitted: auto-replied; owner-email=\"a@b.ru\"",
            "X-Autoreply: yes",
            "X-Autorespond: Out of office",
            "Precedence: bulk",
            "Precedence: junk",
            "Precedence: auto_reply",
            "X-Auto-Response-Suppress: All",
        ] {
            assert_eq!(mail(&format!("{BASE}\r\n{header}"), "x").kind, MailKind::AutoReply, "{header}");
        }
        for header in ["Auto-Submitted: no", "Auto-Submitted: No", "Precedence: list", "X-Mailer: Outlook"] {
            assert_eq!(mail(&format!("{BASE}\r\n{header}"), "x").kind, MailKind::Personal, "{header}");
        }
    }

    #[test]
    fn a_bounce_with_the_whole_returned_message_names_its_id() {
        let raw = "From: Mail Delivery System <Mailer-Daemon@mx.mail.ru>\r\n\
            To: support@shop.ru\r\nSubject: Mail delivery failed\r\n\
            Content-Type: multipart/report; report-type=\"delivery-status\"; boundary=\"B\"\r\n\r\n\
            --B\r\nContent-Type: text/plain\r\n\r\nA message could not be delivered.\r\n\
            --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.mail.ru\r\n\r\n\
            Final-Recipient: rfc822;<gone@mail.ru>\r\nAction: delayed\r\nStatus: 4.4.1 (timeout)\r\n\r\n\
            --B\r\nContent-Type: message/rfc822\r\n\r\nFrom: support@shop.ru\r\nTo: gone@mail.ru\r\n\
            Message-ID: <okno.9@shop.ru>\r\nSubject: x\r\n\r\nbody\r\n--B--\r\n";
        let m = parse(raw.as_bytes()).unwrap();
        let MailKind::Bounce(b) = m.kind else { panic!("{:?}", m.kind) };
        assert_eq!(b.recipient.as_deref(), Some("gone@mail.ru"));
        assert_eq!(b.action.as_deref(), Some("delayed"));
        assert_eq!(b.status.as_deref(), Some("4.4.1"));
        assert_eq!(b.original_message_id.as_deref(), Some("okno.9@shop.ru"));
        assert!(!b.is_permanent());
        assert!(m.attachments.is_empty());
    }

    #[test]
    fn a_report_of_another_type_is_not_a_bounce() {
        let raw = "From: a@b.ru\r\nSubject: read\r\n\
            Content-Type: multipart/report; report-type=disposition-notification; boundary=\"B\"\r\n\r\n\
            --B\r\nContent-Type: text/plain\r\n\r\nRead.\r\n--B--\r\n";
        assert!(!matches!(parse(raw.as_bytes()).unwrap().kind, MailKind::Bounce(_)));
    }

    #[test]
    fn what_is_not_a_mail_is_refused() {
        assert!(parse(b"").is_err());
        assert!(parse(b"\r\n\r\n").is_err());
    }

    #[test]
    fn an_empty_plain_part_gives_way_to_the_html_part() {
        let raw = "From: a@b.ru\r\nSubject: x\r\nContent-Type: multipart/alternative; boundary=\"B\"\r\n\r\n\
            --B\r\nContent-Type: text/plain\r\n\r\n\r\n--B\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>there</b></p>\r\n--B--\r\n";
        assert_eq!(parse(raw.as_bytes()).unwrap().text, "Hello there");
    }

    #[test]
    fn the_date_is_kept_in_utc_offset_form() {
        let m = mail(&format!("{BASE}\r\nDate: Sun, 6 Dec 2026 16:02:07 +0300"), "x");
        assert_eq!(m.date.as_deref(), Some("2026-12-06T16:02:07+03:00"));
    }

    #[test]
    fn a_file_name_split_over_rfc2231_continuations_in_windows_1251_is_decoded() {
        // "Счёт №7.pdf" in windows-1251, split in two as Mail.ru and The Bat! do.
        let raw = "From: a@b.ru\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
            --B\r\nContent-Type: text/plain\r\n\r\nsee file\r\n\
            --B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;\r\n\
            \tfilename*0*=windows-1251''%D1%F7%B8%F2%20%B9;\r\n\tfilename*1*=7.pdf\r\n\
            Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--B--\r\n";
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].name, "Счёт №7.pdf");
        assert_eq!(m.attachments[0].bytes, b"%PDF");
        assert_eq!(m.text, "see file");
    }

    #[test]
    fn an_empty_body_reads_as_empty_text() {
        let m = mail(BASE, "");
        assert_eq!((m.text.as_str(), m.full_text.as_str()), ("", ""));
    }
}
