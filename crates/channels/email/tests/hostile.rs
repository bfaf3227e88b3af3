//! Property tests: reading mail never panics on anything a mail server may hand over, and what
//! okno composes reads back exactly.
//!
//! Mangled mails start from the fixtures (real clients' shapes) and replace, cut, repeat or
//! splice in MIME syntax, so they reach past the first header into boundaries, encodings and
//! reports. The budget is `PROPTEST_CASES` cases per property (256 unless set).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use okno_channel_email::{
    compose, html_to_text, parse, reply_tag, visible_text, MailKind, Outgoing, OutgoingFile, Sender, Thread,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// Far above what any mail takes to read; a parser that loops fails here instead of hanging.
const BOUND: Duration = Duration::from_secs(2);

const FIXTURES: [&str; 6] = [
    "thunderbird_reply.eml",
    "outlook_reply_cp1251.eml",
    "gmail_html_only.eml",
    "koi8r.eml",
    "postfix_dsn.eml",
    "vacation_autoreply.eml",
];

fn fixtures() -> Vec<Vec<u8>> {
    FIXTURES
        .iter()
        .map(|f| std::fs::read(format!("{}/tests/fixtures/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap())
        .collect()
}

/// MIME syntax worth splicing in: it sends the parser down its less travelled paths.
const TOKENS: [&[u8]; 16] = [
    b"\r\n\r\n",
    b"\r\n--",
    b"--\r\n",
    b"=?utf-8?B?",
    b"=?koi8-r?Q?=F0=",
    b"?=",
    b"=\r\n",
    b"=E",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"filename*0*=utf-8''%D0%",
    b"charset=windows-1251",
    b"<html><script>",
    b"\xff\xfe\x00",
    b"Status: 5.1.1\r\nFinal-Recipient: rfc822;",
];

#[derive(Debug, Clone)]
enum Change {
    Replace(Index, Index, Vec<u8>),
    Cut(Index, Index),
    Repeat(Index, Index, u8),
    Splice(Index, Index),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (any::<Index>(), any::<Index>(), prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(a, b, v)| Change::Replace(a, b, v)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Change::Cut(a, b)),
        (any::<Index>(), any::<Index>(), 2..5u8).prop_map(|(a, b, n)| Change::Repeat(a, b, n)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Change::Splice(a, b)),
    ]
}

fn span(len: usize, a: &Index, b: &Index) -> (usize, usize) {
    if len == 0 {
        return (0, 0);
    }
    let start = a.index(len);
    let end = (start + b.index(64.min(len - start) + 1)).min(len);
    (start, end)
}

fn mangle(seed: &[u8], changes: &[Change]) -> Vec<u8> {
    let mut mail = seed.to_vec();
    for c in changes {
        match c {
            Change::Replace(a, b, with) => {
                let (s, e) = span(mail.len(), a, b);
                mail.splice(s..e, with.iter().copied());
            }
            Change::Cut(a, b) => {
                let (s, e) = span(mail.len(), a, b);
                mail.drain(s..e);
            }
            Change::Repeat(a, b, n) => {
                let (s, e) = span(mail.len(), a, b);
                let piece = mail[s..e].repeat(usize::from(*n));
                mail.splice(s..e, piece);
            }
            Change::Splice(a, which) => {
                let at = if mail.is_empty() { 0 } else { a.index(mail.len()) };
                let token = TOKENS[which.index(TOKENS.len())];
                mail.splice(at..at, token.iter().copied());
            }
        }
    }
    mail
}

fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(started.elapsed() < BOUND, "{what} took {:?}", started.elapsed());
    out
}

/// A line a person might write, that no trimming rule touches: words of Cyrillic and Latin
/// letters, digits and punctuation, one space apart.
fn word() -> impl Strategy<Value = String> {
    "[a-zA-Zа-яА-ЯёЁ0-9][a-zA-Zа-яА-ЯёЁ0-9,.!?«»()&<>\"'№%+=/—-]{0,12}"
}

fn line() -> impl Strategy<Value = String> {
    prop::collection::vec(word(), 1..10).prop_map(|w| w.join(" "))
}

fn text() -> impl Strategy<Value = String> {
    (line(), prop::collection::vec(prop_oneof![line(), Just(String::new())], 0..8), line()).prop_map(
        |(first, middle, last)| {
            let mut lines = vec![first];
            lines.extend(middle);
            lines.push(last);
            lines.join("\n")
        },
    )
}

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Zа-яА-ЯёЁ][a-zA-Zа-яА-ЯёЁ.,«»()\"@-]{0,10}", 1..4).prop_map(|w| w.join(" "))
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_read_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = bounded("arbitrary bytes", || parse(&bytes));
    }

    #[test]
    fn mangled_real_mails_are_read_or_refused(seed in any::<Index>(), changes in prop::collection::vec(change(), 0..8)) {
        let seeds = fixtures();
        let mail = mangle(&seeds[seed.index(seeds.len())], &changes);
        if let Ok(read) = bounded("a mangled mail", || parse(&mail)) {
            prop_assert_eq!(read.raw, mail);
            if let MailKind::Bounce(b) = read.kind {
                let _ = b.is_permanent();
            }
        }
    }

    #[test]
    fn text_helpers_never_panic(s in "\\PC{0,400}", addr in "\\PC{0,40}") {
        let _ = bounded("visible_text", || visible_text(&s));
        let _ = bounded("html_to_text", || html_to_text(&s));
        let _ = reply_tag(&addr, "support@shop.ru");
    }

    #[test]
    fn composed_mail_reads_back_exactly(
        body in text(),
        subject in line(),
        customer in name(),
        shop in name(),
        reply in any::<bool>(),
        tag in "[a-z0-9]{1,12}",
        file in prop::collection::vec(any::<u8>(), 0..1500),
        file_name in "[a-zA-Zа-яА-ЯёЁ0-9 №_-]{1,30}",
    ) {
        prop_assume!(visible_text(&body) == body);
        let sender = Sender { name: Some(shop.clone()), address: "support@shop.ru".into() };
        let out = Outgoing {
            id: "01JPROPTEST".into(),
            to: "client@mail.ru".into(),
            to_name: Some(customer),
            subject: subject.clone(),
            text: body.clone(),
            reply_tag: Some(tag.clone()),
            thread: reply.then(|| Thread { message_id: "parent.1@mail.ru".into(), references: vec!["okno.0@shop.ru".into()] }),
            attachments: vec![OutgoingFile { name: format!("{}.bin", file_name.trim()), mime: "application/octet-stream".into(), bytes: file.clone() }],
            unsubscribe: None,
        };
        let composed = compose(&sender, &out).unwrap();
        let back = parse(&composed.bytes).unwrap();
        prop_assert_eq!(&back.text, &body);
        let want_subject = if reply { format!("Re: {subject}") } else { subject.clone() };
        prop_assert_eq!(back.subject.as_deref(), Some(want_subject.as_str()));
        let from = back.from.clone().unwrap();
        prop_assert_eq!(from.name.as_deref(), Some(shop.as_str()));
        prop_assert_eq!(back.message_id.as_deref(), Some("okno.01JPROPTEST@shop.ru"));
        if reply {
            prop_assert_eq!(&back.in_reply_to, &vec!["parent.1@mail.ru".to_string()]);
            prop_assert_eq!(&back.references, &vec!["okno.0@shop.ru".to_string(), "parent.1@mail.ru".to_string()]);
        }
        prop_assert_eq!(back.attachments.len(), 1);
        prop_assert_eq!(&back.attachments[0].bytes, &file);
        prop_assert_eq!(&back.attachments[0].name, &format!("{}.bin", file_name.trim()));
        prop_assert_eq!(back.kind, MailKind::Personal);
        let message = mail_parser::MessageParser::default().parse(&composed.bytes).unwrap();
        let reply_to = message.reply_to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap().to_string();
        prop_assert_eq!(reply_tag(&reply_to, "support@shop.ru"), Some(tag));
    }
}
