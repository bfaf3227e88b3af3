//! An outbound mail: okno's answer or broadcast, built with lettre's message builder and
//! threaded onto the customer's mail.

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment as FilePart, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use okno_domain::error::{Error, Result};

use crate::config::Sender;
use crate::parse::ParsedMail;

/// What okno sends.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    /// okno's id of the message: the `Message-ID` is `<okno.{id}@{domain of from}>`.
    pub id: String,
    /// The person's address.
    pub to: String,
    /// The person's name, when okno knows it.
    pub to_name: Option<String>,
    /// The subject; for a reply, the subject of the mail answered (`Re: ` is added once).
    pub subject: String,
    pub text: String,
    /// The conversation's tag, put in `Reply-To` as `support+<tag>@shop.ru`.
    pub reply_tag: Option<String>,
    /// The customer's mail this one answers.
    pub thread: Option<Thread>,
    pub attachments: Vec<OutgoingFile>,
    /// Set for broadcasts: RFC 8058 one-click unsubscription.
    pub unsubscribe: Option<Unsubscribe>,
}

/// The mail being answered, by its threading headers (ids without angle brackets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thread {
    /// Its `Message-ID`.
    pub message_id: String,
    /// Its `References` (or, when it had none, its `In-Reply-To`).
    pub references: Vec<String>,
}

impl Thread {
    /// The thread of an answer to `mail`: its `Message-ID`, after its `References` (or, when it
    /// has none, its `In-Reply-To`). `None` when the mail has no `Message-ID` to answer.
    pub fn answering(mail: &ParsedMail) -> Option<Thread> {
        let message_id = mail.message_id.clone()?;
        let references = if mail.references.is_empty() { mail.in_reply_to.clone() } else { mail.references.clone() };
        Some(Thread { message_id, references })
    }
}

/// A file to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingFile {
    pub name: String,
    pub mime: String,
    pub bytes: Vec<u8>,
}

/// Where a broadcast's recipient unsubscribes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// An https address that unsubscribes on a POST (RFC 8058).
    pub url: String,
    /// A `mailto:` address (with or without the `mailto:` prefix).
    pub mailto: String,
}

/// A built mail.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The `Message-ID`, without angle brackets: the platform id okno stores for threading.
    pub message_id: String,
    /// The envelope recipient.
    pub to: String,
    /// The mail as it goes over SMTP.
    pub bytes: Vec<u8>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("invalid_mail", message.into())
}

/// `Re: {subject}`, once: `Re: Re: Заказ` and `RE: Заказ` both become `Re: Заказ`.
pub fn reply_subject(subject: &str) -> String {
    let mut rest = subject.trim();
    loop {
        let lower = rest.to_lowercase();
        let cut = ["re:", "re :", "на:", "ответ:"].iter().find(|p| lower.starts_with(**p)).map(|p| p.chars().count());
        match cut {
            Some(n) => rest = rest[rest.char_indices().nth(n).map_or(rest.len(), |(i, _)| i)..].trim_start(),
            None => break,
        }
    }
    if rest.is_empty() {
        "Re:".to_string()
    } else {
        format!("Re: {rest}")
    }
}

/// okno's `Message-ID` for message `id` sent from `sender` (without angle brackets).
pub fn message_id(id: &str, sender: &Sender) -> String {
    format!("okno.{id}@{}", sender.domain())
}

/// The text as HTML: escaped, line breaks kept, web addresses made links.
pub fn text_to_html(text: &str) -> String {
    let mut body = String::with_capacity(text.len() + text.len() / 4);
    for (n, line) in text.lines().enumerate() {
        if n > 0 {
            body.push_str("<br>\n");
        }
        linkify_line(line, &mut body);
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n<body><div style=\"white-space: pre-wrap\">{body}</div></body></html>\n"
    )
}

fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn linkify_line(line: &str, out: &mut String) {
    let mut rest = line;
    while let Some(start) = find_url(rest) {
        escape_into(&rest[..start], out);
        let tail = &rest[start..];
        let mut end = tail.find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"')).unwrap_or(tail.len());
        // Punctuation closing a sentence is not part of the address.
        while end > 0 && tail[..end].ends_with(['.', ',', ';', ':', '!', '?', ')', '»', '\'']) {
            end -= tail[..end].chars().next_back().map_or(1, char::len_utf8);
        }
        let url = &tail[..end];
        if url.len() <= "https://".len() {
            escape_into(url, out);
        } else {
            out.push_str("<a href=\"");
            escape_into(url, out);
            out.push_str("\">");
            escape_into(url, out);
            out.push_str("</a>");
        }
        rest = &tail[end..];
        if end == 0 {
            // Nothing was taken: move past the scheme so the loop ends.
            let skip = tail.find("//").map_or(tail.len(), |i| i + 2);
            escape_into(&tail[..skip], out);
            rest = &tail[skip..];
        }
    }
    escape_into(rest, out);
}

fn find_url(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    [lower.find("https://"), lower.find("http://")].into_iter().flatten().min()
}

fn mailbox(name: Option<&str>, address: &str) -> Result<Mailbox> {
    let email = address.trim().parse().map_err(|e| invalid(format!("`{address}` is not an e-mail address ({e})")))?;
    Ok(Mailbox::new(name.map(str::trim).filter(|n| !n.is_empty()).map(str::to_string), email))
}

fn raw_header(name: &str, value: String) -> Result<HeaderValue> {
    if !value.is_ascii() || value.contains(['\r', '\n']) {
        return Err(invalid(format!("`{name}` must be one line of ASCII")));
    }
    let name = HeaderName::new_from_ascii(name.to_string()).map_err(|e| Error::internal(e.to_string()))?;
    Ok(HeaderValue::new(name, value))
}

fn bracketed(id: &str) -> String {
    format!("<{}>", id.trim().trim_start_matches('<').trim_end_matches('>'))
}

/// Builds the mail `out` from `sender`.
pub fn compose(sender: &Sender, out: &Outgoing) -> Result<Composed> {
    if out.id.is_empty() || !out.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(invalid("a message id is letters, digits, `-`, `_` and `.`"));
    }
    let id = message_id(&out.id, sender);
    let from = mailbox(sender.name.as_deref(), &sender.address)?;
    let to = mailbox(out.to_name.as_deref(), &out.to)?;
    let subject = match &out.thread {
        Some(_) => reply_subject(&out.subject),
        None => out.subject.trim().to_string(),
    };
    let mut builder =
        Message::builder().from(from).to(to.clone()).subject(subject).message_id(Some(bracketed(&id))).date_now();
    if let Some(tag) = &out.reply_tag {
        if tag.is_empty() || !tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(invalid("a reply tag is letters, digits, `-`, `_` and `.`"));
        }
        builder = builder.reply_to(mailbox(sender.name.as_deref(), &sender.tagged(tag))?);
    }
    if let Some(thread) = &out.thread {
        let parent = thread.message_id.trim();
        if parent.is_empty() || parent.contains(char::is_whitespace) {
            return Err(invalid("the answered mail's Message-ID is one word"));
        }
        let mut chain: Vec<String> = thread
            .references
            .iter()
            .map(|r| r.trim())
            .filter(|r| !r.is_empty() && !r.contains(char::is_whitespace) && *r != parent)
            .map(bracketed)
            .collect();
        chain.push(bracketed(parent));
        builder = builder.in_reply_to(bracketed(parent)).references(chain.join(" "));
    }
    if let Some(unsub) = &out.unsubscribe {
        if !unsub.url.starts_with("https://") {
            return Err(invalid("the unsubscribe address must be https"));
        }
        let mailto = unsub.mailto.trim();
        let mailto = if mailto.starts_with("mailto:") { mailto.to_string() } else { format!("mailto:{mailto}") };
        builder = builder
            .raw_header(raw_header("List-Unsubscribe", format!("<{}>, <{mailto}>", unsub.url))?)
            .raw_header(raw_header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".to_string())?);
    }

    let text = out.text.replace("\r\n", "\n");
    let body = MultiPart::alternative_plain_html(text.clone(), text_to_html(&text));
    let message = if out.attachments.is_empty() {
        builder.multipart(body)
    } else {
        let mut mixed = MultiPart::mixed().multipart(body);
        for file in &out.attachments {
            mixed = mixed.singlepart(file_part(file)?);
        }
        builder.multipart(mixed)
    }
    .map_err(|e| invalid(format!("the mail could not be built: {e}")))?;
    Ok(Composed { message_id: id, to: to.email.to_string(), bytes: message.formatted() })
}

fn file_part(file: &OutgoingFile) -> Result<SinglePart> {
    let content_type = ContentType::parse(&file.mime)
        .or_else(|_| ContentType::parse("application/octet-stream"))
        .map_err(|e| Error::internal(e.to_string()))?;
    let name = if file.name.trim().is_empty() { "file".to_string() } else { file.name.clone() };
    Ok(FilePart::new(name).body(file.bytes.clone(), content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re_is_added_once() {
        assert_eq!(reply_subject("Заказ №42"), "Re: Заказ №42");
        assert_eq!(reply_subject("Re: Заказ №42"), "Re: Заказ №42");
        assert_eq!(reply_subject("RE: re: Заказ"), "Re: Заказ");
        assert_eq!(reply_subject("Ответ: Заказ"), "Re: Заказ");
        assert_eq!(reply_subject("Return policy"), "Re: Return policy");
        assert_eq!(reply_subject(""), "Re:");
    }

    #[test]
    fn html_is_escaped_with_links_and_line_breaks() {
        let html = text_to_html("a <b> & \"c\"\nсм. https://shop.ru/o?a=1&b=2.");
        assert!(html.contains("a &lt;b&gt; &amp; &quot;c&quot;<br>\nсм. "), "{html}");
        assert!(
            html.contains(r#"<a href="https://shop.ru/o?a=1&amp;b=2">https://shop.ru/o?a=1&amp;b=2</a>."#),
            "{html}"
        );
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn a_bare_scheme_is_not_a_link() {
        let html = text_to_html("https:// and http://");
        assert!(!html.contains("<a "), "{html}");
    }
}
