//! What okno composes, okno reads back the same: threading, subject, text, files, Cyrillic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use okno_channel_email::{
    compose, parse, reply_tag, Composed, MailKind, Outgoing, OutgoingFile, Sender, Thread, Unsubscribe,
};

fn sender() -> Sender {
    Sender::parse("Магазин «Окно» <support@shop.ru>").unwrap()
}

fn reply() -> Outgoing {
    Outgoing {
        id: "01JEXAMPLE0300".into(),
        to: "ivan.petrov@mail.ru".into(),
        to_name: Some("Иван Петров".into()),
        subject: "Re: Заказ №1042".into(),
        text: "Здравствуйте, Иван!\n\nЗаказ передан курьеру: https://shop.ru/track/1042.\nСпасибо & до встречи <3"
            .into(),
        reply_tag: Some("c42".into()),
        thread: Some(Thread {
            message_id: "8f3c2a1e@mail.ru".into(),
            references: vec!["okno.01JEXAMPLE0001@shop.ru".into()],
        }),
        ..Outgoing::default()
    }
}

fn headers(mail: &Composed) -> String {
    let raw = String::from_utf8_lossy(&mail.bytes);
    // Unfolded: long headers are folded onto continuation lines.
    raw.split("\r\n\r\n").next().unwrap().replace("\r\n ", " ").replace("\r\n\t", " ")
}

#[test]
fn a_reply_threads_onto_the_customers_mail() {
    let composed = compose(&sender(), &reply()).unwrap();
    assert_eq!(composed.message_id, "okno.01JEXAMPLE0300@shop.ru");
    assert_eq!(composed.to, "ivan.petrov@mail.ru");

    let back = parse(&composed.bytes).unwrap();
    assert_eq!(back.message_id.as_deref(), Some("okno.01JEXAMPLE0300@shop.ru"));
    assert_eq!(back.in_reply_to, ["8f3c2a1e@mail.ru"]);
    assert_eq!(back.references, ["okno.01JEXAMPLE0001@shop.ru", "8f3c2a1e@mail.ru"]);
    assert_eq!(back.subject.as_deref(), Some("Re: Заказ №1042"), "Re: once, not twice");
    assert_eq!(back.text, reply().text);
    assert_eq!(back.kind, MailKind::Personal);
    let from = back.from.unwrap();
    assert_eq!((from.address.as_str(), from.name.as_deref()), ("support@shop.ru", Some("Магазин «Окно»")));
    assert_eq!(back.recipients, ["ivan.petrov@mail.ru"]);
}

#[test]
fn the_reply_to_address_carries_the_conversation_tag() {
    let composed = compose(&sender(), &reply()).unwrap();
    let message = mail_parser::MessageParser::default().parse(&composed.bytes).unwrap();
    let reply_to = message.reply_to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap();
    assert_eq!(reply_to, "support+c42@shop.ru");
    assert_eq!(reply_tag(reply_to, "support@shop.ru").as_deref(), Some("c42"));
}

#[test]
fn a_first_mail_keeps_its_subject_and_has_no_thread() {
    let out = Outgoing { thread: None, subject: "Re: счёт".into(), ..reply() };
    let back = parse(&compose(&sender(), &out).unwrap().bytes).unwrap();
    assert_eq!(back.subject.as_deref(), Some("Re: счёт"));
    assert!(back.in_reply_to.is_empty() && back.references.is_empty());
}

#[test]
fn the_html_part_is_the_text_escaped_with_clickable_links() {
    let composed = compose(&sender(), &reply()).unwrap();
    let message = mail_parser::MessageParser::default().parse(&composed.bytes).unwrap();
    let html = message.body_html(0).unwrap();
    assert!(html.contains(r#"<a href="https://shop.ru/track/1042">https://shop.ru/track/1042</a>."#), "{html}");
    assert!(html.contains("Спасибо &amp; до встречи &lt;3"), "{html}");
    assert!(html.contains("<br>"), "{html}");
}

#[test]
fn files_arrive_whole_with_their_cyrillic_names() {
    let pdf: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let out = Outgoing {
        attachments: vec![
            OutgoingFile {
                name: "Счёт №77 (декабрь).pdf".into(), mime: "application/pdf".into(), bytes: pdf.clone()
            },
            OutgoingFile {
                name: "заметка.txt".into(),
                mime: "text/plain; charset=utf-8".into(),
                bytes: "Привет".into(),
            },
        ],
        ..reply()
    };
    let back = parse(&compose(&sender(), &out).unwrap().bytes).unwrap();
    assert_eq!(back.text, reply().text);
    let files: Vec<_> = back.attachments.iter().map(|a| (a.name.as_str(), a.mime.as_str(), a.bytes.clone())).collect();
    assert_eq!(
        files,
        [
            ("Счёт №77 (декабрь).pdf", "application/pdf", pdf),
            ("заметка.txt", "text/plain", "Привет".as_bytes().to_vec()),
        ]
    );
}

#[test]
fn a_broadcast_offers_one_click_unsubscription() {
    let out = Outgoing {
        thread: None,
        reply_tag: None,
        subject: "Акция недели".into(),
        unsubscribe: Some(Unsubscribe {
            url: "https://okno.shop.ru/u/abc123".into(),
            mailto: "support+unsubscribe-abc123@shop.ru".into(),
        }),
        ..reply()
    };
    let composed = compose(&sender(), &out).unwrap();
    let head = headers(&composed);
    assert!(
        head.contains("List-Unsubscribe: <https://okno.shop.ru/u/abc123>, <mailto:support+unsubscribe-abc123@shop.ru>"),
        "{head}"
    );
    assert!(head.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{head}");
    assert!(!head.contains("Reply-To"), "{head}");
}

#[test]
fn unsafe_header_values_are_refused() {
    let bad_url = Outgoing {
        unsubscribe: Some(Unsubscribe { url: "http://okno.shop.ru/u".into(), mailto: "a@shop.ru".into() }),
        ..reply()
    };
    assert!(compose(&sender(), &bad_url).is_err());
    let injected = Outgoing {
        unsubscribe: Some(Unsubscribe { url: "https://x.ru/\r\nBcc: all@x.ru".into(), mailto: "a@shop.ru".into() }),
        ..reply()
    };
    assert!(compose(&sender(), &injected).is_err());
    assert!(compose(&sender(), &Outgoing { to: "not an address".into(), ..reply() }).is_err());
    assert!(compose(&sender(), &Outgoing { reply_tag: Some("a b".into()), ..reply() }).is_err());
    assert!(compose(&sender(), &Outgoing { id: "x@y".into(), ..reply() }).is_err());
    let thread = Thread { message_id: "a b".into(), references: vec![] };
    assert!(compose(&sender(), &Outgoing { thread: Some(thread), ..reply() }).is_err());
}

#[test]
fn a_subject_with_a_line_break_stays_one_header() {
    let out = Outgoing { subject: "Заказ\r\nBcc: all@x.ru".into(), thread: None, ..reply() };
    let composed = compose(&sender(), &out).unwrap();
    let raw = String::from_utf8_lossy(&composed.bytes).to_string();
    assert!(!raw.contains("\r\nBcc:"), "{raw}");
}

#[test]
fn an_answer_to_a_customer_mail_continues_its_thread() {
    let raw = std::fs::read(format!("{}/tests/fixtures/thunderbird_reply.eml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let customer = parse(&raw).unwrap();
    let thread = Thread::answering(&customer).unwrap();
    let out = Outgoing {
        subject: customer.subject.clone().unwrap(),
        to: customer.from.clone().unwrap().address,
        thread: Some(thread),
        ..reply()
    };
    let back = parse(&compose(&sender(), &out).unwrap().bytes).unwrap();
    assert_eq!(back.subject.as_deref(), Some("Re: Заказ №1042: подтвердите адрес"));
    assert_eq!(back.in_reply_to, ["8f3c2a1e-5b7d-4c19-9e0a-7d2b1c4e6f80@mail.ru"]);
    assert_eq!(back.references, ["okno.01JEXAMPLE0001@shop.ru", "8f3c2a1e-5b7d-4c19-9e0a-7d2b1c4e6f80@mail.ru"]);
}

#[test]
fn a_mail_without_references_is_answered_after_its_in_reply_to() {
    let raw = b"From: a@b.ru\r\nMessage-ID: <m.2@b.ru>\r\nIn-Reply-To: <m.1@shop.ru>\r\nSubject: x\r\n\r\nhi\r\n";
    let thread = Thread::answering(&parse(raw).unwrap()).unwrap();
    assert_eq!(thread, Thread { message_id: "m.2@b.ru".into(), references: vec!["m.1@shop.ru".into()] });
    assert_eq!(Thread::answering(&parse(b"From: a@b.ru\r\nSubject: x\r\n\r\nhi").unwrap()), None);
}
