//! Sending through a real Postfix (the test kit's, on 127.0.0.1): over TLS from the first byte
//! and over STARTTLS with a login, the mail arriving in the customer's Dovecot mailbox as okno
//! built it (threading ids, Cyrillic, a file); a wrong password and a recipient Postfix will not
//! relay to refused for good with the server's words; and the bounce Postfix returns for an
//! unknown mailbox read back as a bounce of okno's own message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use okno_channel::SendError;
use okno_channel_email::{compose, parse, EmailConfig, MailKind, Outgoing, OutgoingFile, Smtp, Thread};
use okno_testkit::mail::{unique_address, MailServer};
use serde_json::json;

const PASSWORD: &str = "mailbox-password-0123";

/// okno's mailbox and a customer's, both on the kit's server; the channel's configuration with
/// its SMTP side on `port` secured by `tls`.
fn mailboxes(server: &MailServer, tls: &str, port: u16) -> (EmailConfig, String) {
    let okno = unique_address("support", "shop.test");
    let customer = unique_address("olga", "okno.test");
    server.create_mailbox(&okno, PASSWORD);
    server.create_mailbox(&customer, PASSWORD);
    let imap = server.imaps_addr();
    let cfg = EmailConfig::from_value(&json!({
        "imap": {"host": "127.0.0.1", "port": imap.port(), "tls": "tls", "username": okno, "password": PASSWORD},
        "smtp": {"host": "127.0.0.1", "port": port, "tls": tls, "username": okno, "password": PASSWORD},
        "from": format!("Магазин «Окно» <{okno}>"),
        "ca_cert": server.cert_pem(),
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    (cfg, customer)
}

fn smtp(cfg: &EmailConfig) -> Smtp {
    Smtp::new(&cfg.smtp, &cfg.sender().unwrap(), cfg.ca_cert.as_deref()).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_reply_goes_over_tls_and_starttls_and_arrives_as_built() {
    let Some(server) = MailServer::shared() else { return };
    for (tls, port) in [("tls", server.smtps_addr().port()), ("starttls", server.smtp_addr().port())] {
        let (cfg, customer) = mailboxes(server, tls, port);
        let out = smtp(&cfg);
        out.check().await.unwrap_or_else(|e| panic!("{tls}: {e}\n{}", server.log_text()));
        let file =
            OutgoingFile {
                name: "Счёт №17.pdf".into(), mime: "application/pdf".into(), bytes: vec![7u8; 70_000]
            };
        let mail = compose(
            &cfg.sender().unwrap(),
            &Outgoing {
                id: format!("m-{tls}-1"),
                to: customer.clone(),
                to_name: Some("Ольга".into()),
                subject: "Где мой заказ?".into(),
                text: "Здравствуйте, Ольга! Заказ приедет завтра.".into(),
                reply_tag: Some("c17".into()),
                thread: Some(Thread { message_id: "q-1@okno.test".into(), references: vec!["q-0@okno.test".into()] }),
                attachments: vec![file.clone()],
                unsubscribe: None,
            },
        )
        .unwrap();
        out.send(&mail).await.unwrap_or_else(|e| panic!("{tls}: {e}\n{}", server.log_text()));
        let got = server.wait_for(&customer, 1).await;
        let read = parse(&got[0]).unwrap();
        assert_eq!(read.message_id.as_deref(), Some(mail.message_id.as_str()), "{tls}");
        assert_eq!(read.subject.as_deref(), Some("Re: Где мой заказ?"), "{tls}");
        assert_eq!(read.in_reply_to, ["q-1@okno.test"], "{tls}");
        assert_eq!(read.references, ["q-0@okno.test", "q-1@okno.test"], "{tls}");
        assert!(read.text.contains("Заказ приедет завтра."), "{tls}: {}", read.text);
        assert_eq!(read.attachments.len(), 1, "{tls}");
        assert_eq!((read.attachments[0].name.as_str(), &read.attachments[0].bytes), (file.name.as_str(), &file.bytes));
    }
}

#[tokio::test]
async fn a_wrong_password_and_a_recipient_postfix_will_not_relay_to_are_refused_with_its_words() {
    let Some(server) = MailServer::shared() else { return };
    let (mut cfg, _) = mailboxes(server, "tls", server.smtps_addr().port());
    let good = smtp(&cfg);
    let mail = compose(
        &cfg.sender().unwrap(),
        &Outgoing {
            id: "m-relay".into(),
            to: "someone@example.com".into(),
            subject: "Тест".into(),
            text: "Текст".into(),
            ..Default::default()
        },
    )
    .unwrap();
    match good.send(&mail).await {
        Err(SendError::Permanent { reason, .. }) => assert!(reason.contains("Relay access denied"), "{reason}"),
        other => panic!("a relay refusal is for good: {other:?}"),
    }

    cfg.smtp.password = "not-the-password".into();
    let wrong = smtp(&cfg);
    let why = wrong.check().await.expect_err("a wrong password is refused");
    assert!(why.contains("535") || why.to_lowercase().contains("authentication"), "{why}");
}

#[tokio::test]
async fn an_unknown_mailbox_bounces_and_the_bounce_names_okno_s_message() {
    let Some(server) = MailServer::shared() else { return };
    let (cfg, _) = mailboxes(server, "starttls", server.smtp_addr().port());
    let okno = cfg.sender().unwrap().address;
    let nobody = unique_address("nobody", "okno.test");
    let mail = compose(
        &cfg.sender().unwrap(),
        &Outgoing {
            id: "m-bounce-1".into(),
            to: nobody.clone(),
            subject: "Ваш заказ".into(),
            text: "Заказ готов.".into(),
            ..Default::default()
        },
    )
    .unwrap();
    smtp(&cfg).send(&mail).await.unwrap_or_else(|e| panic!("accepted for delivery: {e}"));
    let back = server.wait_for(&okno, 1).await;
    let bounce = parse(&back[0]).unwrap();
    let MailKind::Bounce(b) = &bounce.kind else { panic!("a bounce: {:?}", bounce.kind) };
    assert_eq!(b.original_message_id.as_deref(), Some(mail.message_id.as_str()), "{b:?}");
    assert_eq!(b.recipient.as_deref().map(str::to_lowercase), Some(nobody.to_lowercase()), "{b:?}");
    assert!(b.is_permanent(), "{b:?}");
}
