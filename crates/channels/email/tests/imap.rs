//! Reading a real Dovecot mailbox (the test kit's, on 127.0.0.1) over TLS, STARTTLS and plain
//! IMAP: the new mail by UID and in order, nothing twice once the cursor moved, a batch cut at
//! its size, a refused login named as one, and a UIDVALIDITY change seen with the mail kept.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use okno_channel_email::{parse, EmailConfig, ImapError, Inbox};
use okno_testkit::mail::{unique_address, MailServer};
use serde_json::json;

const PASSWORD: &str = "mailbox-password-0123";

/// A mailbox of its own on the kit's server; the channel's configuration reading it over `tls`.
fn mailbox(server: &MailServer, tls: &str) -> (EmailConfig, String) {
    let okno = unique_address("support", "shop.test");
    server.create_mailbox(&okno, PASSWORD);
    let port = match tls {
        "tls" => server.imaps_addr().port(),
        _ => server.imap_addr().port(),
    };
    let cfg = EmailConfig::from_value(&json!({
        "imap": {"host": "127.0.0.1", "port": port, "tls": tls, "username": okno, "password": PASSWORD},
        "smtp": {"host": "127.0.0.1", "port": server.smtps_addr().port(), "tls": "tls", "username": okno, "password": PASSWORD},
        "from": okno,
        "ca_cert": server.cert_pem(),
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    (cfg, okno)
}

/// A customer's mail number `n`, built as any mail program would.
fn mail(to: &str, n: usize) -> Vec<u8> {
    lettre::Message::builder()
        .from("Ольга <olga@okno.test>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject(format!("Заказ {n}"))
        .message_id(Some(format!("<q-{n}-{to}>")))
        .body(format!("Вопрос номер {n}\r\n"))
        .unwrap()
        .formatted()
}

async fn deliver(server: &MailServer, to: &str, from_n: usize, to_n: usize) {
    // One at a time: Postfix may deliver mail handed to it together in any order.
    for n in from_n..to_n {
        server.deliver(&mail(to, n), "olga@okno.test", &[to]).await.unwrap();
        server.wait_for(to, n + 1).await;
    }
}

#[tokio::test]
async fn new_mail_is_read_by_uid_in_order_once_over_tls_starttls_and_plain() {
    let Some(server) = MailServer::shared() else { return };
    for tls in ["tls", "starttls", "none"] {
        let (cfg, okno) = mailbox(server, tls);
        deliver(server, &okno, 0, 3).await;
        let mut inbox = Inbox::open(&cfg.imap, cfg.ca_cert.as_deref()).await.unwrap_or_else(|e| panic!("{tls}: {e}"));
        let first = inbox.fetch_after(0, 100).await.unwrap();
        let subjects: Vec<String> = first.iter().map(|f| parse(&f.raw).unwrap().subject.unwrap_or_default()).collect();
        assert_eq!(subjects, ["Заказ 0", "Заказ 1", "Заказ 2"], "{tls}");
        assert!(first.windows(2).all(|w| w[0].uid < w[1].uid), "{tls}: in UID order");
        let last = first.last().unwrap().uid;
        assert!(inbox.fetch_after(last, 100).await.unwrap().is_empty(), "{tls}: nothing twice");

        deliver(server, &okno, 3, 4).await;
        let next = inbox.fetch_after(last, 100).await.unwrap();
        assert_eq!(next.len(), 1, "{tls}");
        assert_eq!(parse(&next[0].raw).unwrap().text.trim(), "Вопрос номер 3", "{tls}");
        // A batch is cut at its size, oldest first.
        let two = inbox.fetch_after(0, 2).await.unwrap();
        assert_eq!(two.iter().map(|f| f.uid).collect::<Vec<_>>(), first[..2].iter().map(|f| f.uid).collect::<Vec<_>>());
        inbox.close().await;
    }
}

#[tokio::test]
async fn a_wrong_password_is_a_refused_login() {
    let Some(server) = MailServer::shared() else { return };
    let (mut cfg, _) = mailbox(server, "tls");
    cfg.imap.password = "not-the-password".into();
    match Inbox::open(&cfg.imap, cfg.ca_cert.as_deref()).await {
        Err(ImapError::Login(why)) => assert!(!why.is_empty()),
        other => panic!("a refused login: {other:?}"),
    }
    // Without the kit's certificate authority, TLS itself is refused.
    cfg.imap.password = PASSWORD.into();
    match Inbox::open(&cfg.imap, None).await {
        Err(ImapError::Connection(why)) => assert!(why.contains("TLS"), "{why}"),
        other => panic!("an untrusted certificate is refused: {other:?}"),
    }
}

#[tokio::test]
async fn a_new_uidvalidity_is_seen_and_the_mail_is_still_there() {
    let Some(server) = MailServer::shared() else { return };
    let (cfg, okno) = mailbox(server, "starttls");
    deliver(server, &okno, 0, 2).await;
    let mut inbox = Inbox::open(&cfg.imap, cfg.ca_cert.as_deref()).await.unwrap();
    let before = (inbox.uid_validity, inbox.fetch_after(0, 100).await.unwrap().len());
    inbox.close().await;
    server.reset_uidvalidity(&okno);
    let mut inbox = Inbox::open(&cfg.imap, cfg.ca_cert.as_deref()).await.unwrap();
    assert_ne!(inbox.uid_validity, before.0, "UIDs start over");
    assert_eq!(inbox.fetch_after(0, 100).await.unwrap().len(), before.1, "the same mail, under new UIDs");
    inbox.close().await;
}

/// Dovecot has IDLE: a wait for mail ends when a mail comes, not at its (long) time limit,
/// and the session goes on reading after it; a mail fetched again by UID is the same mail.
#[tokio::test]
async fn an_idle_wait_ends_when_mail_comes_and_a_mail_is_fetched_again_by_uid() {
    let Some(server) = MailServer::shared() else { return };
    let (cfg, okno) = mailbox(server, "tls");
    let inbox = Inbox::open(&cfg.imap, cfg.ca_cert.as_deref()).await.unwrap();
    assert!(inbox.idle, "Dovecot offers IDLE");
    let (to, srv) = (okno.clone(), server);
    let send = async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        srv.deliver(&mail(&to, 7), "olga@okno.test", &[&to]).await.unwrap();
    };
    // Ten minutes is the limit asked; the test's own bound is far shorter, so only the mail
    // can end the wait in time.
    let waited = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let (inbox, ()) = tokio::join!(inbox.wait(std::time::Duration::from_secs(600)), send);
        inbox
    })
    .await
    .expect("the wait ends when the mail comes, not at its ten minutes");
    let mut inbox = waited.unwrap();
    let got = inbox.fetch_after(0, 10).await.unwrap();
    assert_eq!(got.len(), 1, "the mail that ended the wait is read in the same session");
    let again = inbox.fetch_uid(got[0].uid).await.unwrap().expect("the same UID");
    assert_eq!(again, got[0]);
    assert_eq!(inbox.fetch_uid(got[0].uid + 100).await.unwrap(), None, "no such UID");
    inbox.close().await;
}
