//! One poll of a real Dovecot folder (the test kit's): a person's mail as a message with its
//! sender, text, thread and files, a bounce as the failure of okno's message, an automatic
//! reply as nothing kept, each with the cursor that follows it; nothing twice past the cursor;
//! and after a UIDVALIDITY change the folder read again with the same platform ids, so what was
//! stored is not stored twice.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use okno_channel::{InboundAttachment, InboundEvent};
use okno_channel_email::{poll_once, Cursor, EmailConfig};
use okno_testkit::mail::{unique_address, MailServer};
use serde_json::json;

const PASSWORD: &str = "mailbox-password-0123";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test]
async fn a_poll_reads_messages_bounces_and_auto_replies_each_with_its_cursor() {
    let Some(server) = MailServer::shared() else { return };
    let okno = unique_address("support", "shop.test");
    server.create_mailbox(&okno, PASSWORD);
    let cfg = EmailConfig::from_value(&json!({
        "imap": {"host": "127.0.0.1", "port": server.imaps_addr().port(), "tls": "tls", "username": okno, "password": PASSWORD},
        "smtp": {"host": "127.0.0.1", "port": server.smtps_addr().port(), "tls": "tls", "username": okno, "password": PASSWORD},
        "from": format!("Магазин <{okno}>"),
        "ca_cert": server.cert_pem(),
    }))
    .unwrap();
    // A customer's reply with a file, a bounce of okno's mail, a vacation notice, one at a time
    // so the UIDs follow this order.
    for (n, name) in ["thunderbird_reply.eml", "postfix_dsn.eml", "vacation_autoreply.eml"].iter().enumerate() {
        server.deliver(&fixture(name), "someone@okno.test", &[&okno]).await.unwrap();
        server.wait_for(&okno, n + 1).await;
    }

    let read = poll_once(&cfg, "ch-1", None, 100).await.unwrap();
    assert_eq!(read.len(), 3);
    let cursors: Vec<Cursor> = read.iter().map(|r| Cursor::parse(r.cursor.as_deref().unwrap()).unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0].last_uid < w[1].last_uid && w[0].uid_validity == w[1].uid_validity));

    let InboundEvent::Message(m) = &read[0].event else { panic!("a message: {:?}", read[0].event) };
    assert_eq!(m.sender.user_id, "ivan.petrov@mail.ru");
    assert_eq!(m.sender.display_name.as_deref(), Some("Иван Петров"));
    assert_eq!(m.external_id, "8f3c2a1e-5b7d-4c19-9e0a-7d2b1c4e6f80@mail.ru");
    assert!(m.reply_to_external.as_deref().is_some_and(|id| id.starts_with("okno.")), "{:?}", m.reply_to_external);
    assert!(m.text.as_deref().is_some_and(|t| !t.contains("> ")), "quoted history trimmed: {:?}", m.text);
    assert!(m.context.as_ref().is_some_and(|c| c["email"]["subject"].is_string()), "{:?}", m.context);
    match m.attachments.first() {
        Some(InboundAttachment::Url { url, .. }) => {
            assert_eq!(url, &format!("email-part:{}:{}:0", cursors[0].uid_validity, cursors[0].last_uid))
        }
        other => panic!("the file as a reference into the folder: {other:?}"),
    }
    match &read[1].event {
        InboundEvent::Bounced { external_id, reason: why } => {
            assert_eq!(external_id, "okno.01JEXAMPLE0200@shop.ru");
            assert!(why.contains("came back"), "{why}");
        }
        other => panic!("a bounce fails okno's message: {other:?}"),
    }
    assert!(matches!(read[2].event, InboundEvent::Ignore), "{:?}", read[2].event);

    // Past the cursor: nothing; one more mail: that one.
    let last = read[2].cursor.clone().unwrap();
    assert!(poll_once(&cfg, "ch-1", Some(&last), 100).await.unwrap().is_empty());
    server.deliver(&fixture("koi8r.eml"), "someone@okno.test", &[&okno]).await.unwrap();
    server.wait_for(&okno, 4).await;
    let next = poll_once(&cfg, "ch-1", Some(&last), 100).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(matches!(&next[0].event, InboundEvent::Message(m) if m.text.as_deref().is_some_and(|t| !t.is_empty())));

    // A new numbering: the folder again, under the same platform ids.
    let ids = |rs: &[okno_channel::Received]| -> Vec<String> {
        let mut v: Vec<String> = rs
            .iter()
            .filter_map(|r| match &r.event {
                InboundEvent::Message(m) => Some(m.external_id.clone()),
                _ => None,
            })
            .collect();
        v.sort();
        v
    };
    let before = [ids(&read), ids(&next)].concat();
    server.reset_uidvalidity(&okno);
    let again = poll_once(&cfg, "ch-1", next[0].cursor.as_deref(), 100).await.unwrap();
    assert_eq!(again.len(), 4, "read from the start");
    let mut before = before;
    before.sort();
    assert_eq!(ids(&again), before, "the same platform ids: stored once");
    let c = Cursor::parse(again[0].cursor.as_deref().unwrap()).unwrap();
    assert_ne!(c.uid_validity, cursors[0].uid_validity);
}
