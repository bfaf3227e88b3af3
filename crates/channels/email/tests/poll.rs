//! The platform's poll of a real Dovecot folder (the test kit's): a person's mail as a message
//! with its sender, text and thread, its file and the whole mail put into okno's file store, a
//! bounce as the failure of okno's message, an automatic
//! reply as nothing kept, each with the cursor that follows it; nothing twice past the cursor;
//! and after a UIDVALIDITY change the folder read again with the same platform ids, so what was
//! stored is not stored twice.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use okno_channel::conformance::Memory;
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{Context, InboundAttachment, InboundEvent, Platform, Received};
use okno_channel_email::{parse, Cursor, Email};
use okno_domain::model::{Channel, ChannelKind};
use okno_testkit::email::{email_config, okno_mailbox};
use okno_testkit::mail::MailServer;
use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// What the engine hands a poll; files go to `dir`.
fn context(dir: &std::path::Path) -> Context {
    Context {
        http: SafeClient::new(true, Duration::from_secs(10)).expect("client"),
        public_url: "http://okno.test".into(),
        files: FileStore::new(dir.to_path_buf()).expect("file store"),
        max_download: 20 * 1024 * 1024,
        poll_timeout: Duration::from_millis(200),
    }
}

fn channel(config: Value) -> Channel {
    Channel {
        id: "ch-1".into(),
        kind: ChannelKind::Email,
        name: "mail".into(),
        status: "active".into(),
        status_detail: None,
        info: json!({}),
        config,
        created_at: 0,
    }
}

async fn poll(email: &Email, cx: &Context, channel: &Channel, cursor: Option<&str>) -> Vec<Received> {
    email.poll(cx, channel, cursor, &Memory::default()).await.unwrap().items
}

#[tokio::test]
async fn a_poll_reads_messages_bounces_and_auto_replies_each_with_its_cursor() {
    let Some(server) = MailServer::shared() else { return };
    let okno = okno_mailbox(server);
    let config = email_config(server, &okno, "Магазин");
    let dir = std::env::temp_dir().join(format!("okno-email-poll-{}", okno_domain::ids::new_id()));
    let (email, cx, channel) = (Email::default(), context(&dir), channel(config));
    // A customer's reply with a file, a bounce of okno's mail, a vacation notice, one at a time
    // so the UIDs follow this order.
    for (n, name) in ["thunderbird_reply.eml", "postfix_dsn.eml", "vacation_autoreply.eml"].iter().enumerate() {
        server.deliver(&fixture(name), "someone@okno.test", &[&okno]).await.unwrap();
        server.wait_for(&okno, n + 1).await;
    }

    let read = poll(&email, &cx, &channel, None).await;
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
    // The file and the whole mail (its quoted history was cut) are in the file store already,
    // byte for byte as the mail carried them.
    let mail = parse(&fixture("thunderbird_reply.eml")).unwrap();
    let stored: Vec<(String, Vec<u8>)> = m
        .attachments
        .iter()
        .map(|a| match a {
            InboundAttachment::Stored { name, sha256, size, .. } => {
                let bytes = std::fs::read(cx.files.path(sha256).unwrap()).unwrap();
                assert_eq!(bytes.len() as i64, *size, "{name}");
                (name.clone(), bytes)
            }
            other => panic!("a file kept as the mail is read: {other:?}"),
        })
        .collect();
    assert_eq!(stored.len(), mail.attachments.len() + 1, "{stored:?}");
    assert_eq!(stored[0], (mail.attachments[0].name.clone(), mail.attachments[0].bytes.clone()));
    let (name, original) = stored.last().unwrap();
    assert_eq!(name, "original.eml");
    let original = parse(original).unwrap();
    assert_eq!((original.message_id, original.full_text), (mail.message_id, mail.full_text), "the mail as it came");
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
    assert!(poll(&email, &cx, &channel, Some(&last)).await.is_empty());
    server.deliver(&fixture("koi8r.eml"), "someone@okno.test", &[&okno]).await.unwrap();
    server.wait_for(&okno, 4).await;
    let next = poll(&email, &cx, &channel, Some(&last)).await;
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
    let again = poll(&email, &cx, &channel, next[0].cursor.as_deref()).await;
    assert_eq!(again.len(), 4, "read from the start");
    let mut before = before;
    before.sort();
    assert_eq!(ids(&again), before, "the same platform ids: stored once");
    let c = Cursor::parse(again[0].cursor.as_deref().unwrap()).unwrap();
    assert_ne!(c.uid_validity, cursors[0].uid_validity);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_file_over_the_download_limit_is_kept_as_a_note() {
    let Some(server) = MailServer::shared() else { return };
    let okno = okno_mailbox(server);
    let config = email_config(server, &okno, "Магазин");
    let dir = std::env::temp_dir().join(format!("okno-email-poll-{}", okno_domain::ids::new_id()));
    let mut cx = context(&dir);
    cx.max_download = 1024;
    let (email, channel) = (Email::default(), channel(config));
    let big =
        lettre::message::Attachment::new("scan.pdf".into()).body(vec![b'%'; 4096], "application/pdf".parse().unwrap());
    let mail = lettre::Message::builder()
        .from("olga@okno.test".parse().unwrap())
        .to(okno.parse().unwrap())
        .subject("Скан")
        .multipart(
            lettre::message::MultiPart::mixed()
                .singlepart(lettre::message::SinglePart::plain("Во вложении.".to_string()))
                .singlepart(big),
        )
        .unwrap()
        .formatted();
    server.deliver(&mail, "olga@okno.test", &[&okno]).await.unwrap();
    server.wait_for(&okno, 1).await;

    let read = poll(&email, &cx, &channel, None).await;
    let InboundEvent::Message(m) = &read[0].event else { panic!("a message: {:?}", read[0].event) };
    assert_eq!(m.text.as_deref(), Some("Во вложении."));
    match &m.attachments[..] {
        [InboundAttachment::Failed { name, size, note, .. }] => {
            assert_eq!((name.as_str(), *size), ("scan.pdf", 4096));
            assert!(note.contains("limit"), "{note}");
        }
        other => panic!("the file named, with why it was not kept: {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
