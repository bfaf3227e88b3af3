//! The test kit's mail server: what goes in over SMTP comes out over IMAP, byte for byte, and
//! nothing goes anywhere else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::Write;

use base64::Engine;
use okno_testkit::mail::{unique_address, ImapSecurity, MailServer};

const PASSWORD: &str = "mail-secret";

/// "Заказ №42 готов" as an RFC 2047 encoded word.
fn cyrillic_subject() -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode("Заказ №42 готов");
    format!("=?UTF-8?B?{encoded}?=")
}

fn message(from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Sun, 06 Dec 2026 12:00:00 +0300\r\nMessage-ID: <{id}@shop.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n",
        id = okno_domain::ids::new_id(),
    )
    .into_bytes()
}

fn lossy(messages: &[Vec<u8>]) -> String {
    messages.iter().map(|m| String::from_utf8_lossy(m)).collect::<Vec<_>>().join("\n----\n")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn mailbox(mail: &MailServer, prefix: &str) -> String {
    let address = unique_address(prefix, "okno.test");
    mail.create_mailbox(&address, PASSWORD);
    address
}

#[tokio::test]
async fn a_cyrillic_subject_comes_back_byte_for_byte_over_every_kind_of_imap_connection() {
    let Some(mail) = MailServer::shared() else { return };
    let support = mailbox(mail, "support");
    let subject = cyrillic_subject();
    let sent = message("Покупатель <buyer@shop.test>", &support, &subject, "Когда доставка?\r\n.точка в начале строки");

    mail.deliver(&sent, "buyer@shop.test", &[&support]).await.unwrap();

    assert_eq!(mail.wait_for(&support, 1).await.len(), 1);
    for security in [ImapSecurity::Plain, ImapSecurity::StartTls, ImapSecurity::Tls] {
        let got = mail.fetch_all_over(security, &support, PASSWORD).await;
        assert_eq!(got.len(), 1, "{security:?}");
        assert!(contains(&got[0], format!("Subject: {subject}\r\n").as_bytes()), "{security:?}");
        assert!(contains(&got[0], "\r\n\r\nКогда доставка?\r\n.точка в начале строки\r\n".as_bytes()), "{security:?}");
        // Dovecot adds its trace headers in front of the message as it was sent.
        assert!(got[0].ends_with(&sent), "{security:?}: {}", String::from_utf8_lossy(&got[0]));
    }
}

#[tokio::test]
async fn imap_over_tls_refuses_a_wrong_password() {
    let Some(mail) = MailServer::shared() else { return };
    let support = mailbox(mail, "support");
    let fetched = tokio::spawn({
        let support = support.clone();
        async move { mail.fetch_all_over(ImapSecurity::Tls, &support, "not-the-password").await }
    })
    .await;
    assert!(fetched.is_err(), "a wrong password was let in");
}

#[tokio::test]
async fn a_two_megabyte_attachment_comes_back_whole() {
    let Some(mail) = MailServer::shared() else { return };
    let support = mailbox(mail, "support");
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let attachment: Vec<u8> = (0..2 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&attachment);
    let lines: Vec<&str> = encoded.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let sent = format!(
        "From: buyer@shop.test\r\nTo: {support}\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nthe invoice\r\n\
         --b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"invoice.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
        lines.join("\r\n")
    );

    mail.deliver(sent.as_bytes(), "buyer@shop.test", &[&support]).await.unwrap();

    let got = mail.wait_for(&support, 1).await;
    let text = String::from_utf8(got[0].clone()).unwrap();
    let part = text.split("Content-Transfer-Encoding: base64\r\n\r\n").nth(1).unwrap();
    let body: String = part.split("\r\n--b1--").next().unwrap().split("\r\n").collect();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(body).unwrap(), attachment);
}

#[tokio::test]
async fn a_reset_gives_a_new_uidvalidity_and_keeps_the_messages() {
    let Some(mail) = MailServer::shared() else { return };
    let support = mailbox(mail, "support");
    for n in 1..=2 {
        let sent = message("buyer@shop.test", &support, &format!("question {n}"), "?");
        mail.deliver(&sent, "buyer@shop.test", &[&support]).await.unwrap();
    }
    let mut before = mail.wait_for(&support, 2).await;
    let uidvalidity = mail.uidvalidity(&support).await;

    mail.reset_uidvalidity(&support);

    assert_ne!(mail.uidvalidity(&support).await, uidvalidity);
    // The new UIDs follow the Maildir's file order, not the order of arrival.
    let mut after = mail.fetch_all(&support, PASSWORD).await;
    before.sort();
    after.sort();
    assert!(after == before, "before:\n{}\nafter:\n{}", lossy(&before), lossy(&after));
}

#[tokio::test]
async fn mail_for_another_domain_is_refused_and_never_leaves() {
    let Some(mail) = MailServer::shared() else { return };
    let support = mailbox(mail, "support");
    let sent = message(&support, "someone@example.com", "hello", "out there?");

    let refused = mail.deliver(&sent, &support, &["someone@example.com"]).await.unwrap_err();
    let mixed = mail.deliver(&sent, &support, &[&support, "someone@example.com"]).await.unwrap_err();

    assert!(refused.starts_with("554") && refused.contains("Relay access denied"), "{refused}");
    assert!(mixed.contains("Relay access denied"), "{mixed}");
    // Refused at RCPT: no queue id, no delivery attempt, no bounce to the sender either.
    let log = mail.log_text();
    assert!(log.contains("NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 554 5.7.1 <someone@example.com>"), "{log}");
    assert!(!log.contains("to=<someone@example.com>, relay="), "{log}");
    assert!(mail.fetch_all(&support, PASSWORD).await.is_empty());
}

#[tokio::test]
async fn mail_for_an_unknown_mailbox_at_a_test_domain_bounces_to_the_sender() {
    let Some(mail) = MailServer::shared() else { return };
    let support = mailbox(mail, "support");
    let nobody = unique_address("nobody", "shop.test");
    let sent = message(&support, &nobody, "hello", "anyone?");

    mail.deliver(&sent, &support, &[&nobody]).await.unwrap();

    let bounce = String::from_utf8_lossy(&mail.wait_for(&support, 1).await[0]).into_owned();
    assert!(bounce.contains("Undelivered Mail Returned to Sender"), "{bounce}");
    assert!(bounce.contains(&format!("<{nobody}>")), "{bounce}");
}

#[tokio::test]
async fn two_mailboxes_do_not_see_each_others_mail() {
    let Some(mail) = MailServer::shared() else { return };
    let anna = mailbox(mail, "anna");
    let boris = unique_address("boris", "shop.test");
    mail.create_mailbox(&boris, "boris-secret");

    mail.deliver(&message("x@shop.test", &anna, "for anna", "a"), "x@shop.test", &[&anna]).await.unwrap();
    mail.deliver(&message("x@shop.test", &boris, "for boris", "b"), "x@shop.test", &[&boris]).await.unwrap();
    mail.deliver(&message("x@shop.test", &anna, "for anna again", "a"), "x@shop.test", &[&anna]).await.unwrap();

    let anna_got = mail.wait_for(&anna, 2).await;
    let boris_got = mail.wait_for(&boris, 1).await;
    assert_eq!(anna_got.len(), 2);
    assert_eq!(boris_got.len(), 1);
    assert!(anna_got.iter().all(|m| contains(m, b"Subject: for anna") && !contains(m, b"for boris")));
    assert!(contains(&boris_got[0], b"Subject: for boris\r\n"));
    // Each password opens its own mailbox only.
    let crossed = tokio::spawn({
        let boris = boris.clone();
        async move { mail.fetch_all(&boris, PASSWORD).await }
    })
    .await;
    assert!(crossed.is_err(), "anna's password opened boris's mailbox");
}

/// Writes `line` and reads the whole reply.
fn smtp(stream: &mut (impl std::io::Read + std::io::Write), line: Option<&str>) -> String {
    if let Some(line) = line {
        stream.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }
    let mut reply = Vec::new();
    let mut byte = [0];
    // A reply ends with a line whose code is followed by a space.
    while !reply.ends_with(b"\r\n")
        || reply.rsplit(|b| *b == b'\n').nth(1).is_some_and(|last| last.get(3) == Some(&b'-'))
    {
        stream.read_exact(&mut byte).unwrap();
        reply.push(byte[0]);
    }
    String::from_utf8(reply).unwrap()
}

#[tokio::test]
async fn smtp_over_tls_takes_mail_from_a_logged_in_mailbox_for_the_test_domains_only() {
    let Some(mail) = MailServer::shared() else { return };
    let support = mailbox(mail, "support");
    let customer = unique_address("customer", "shop.test");
    mail.create_mailbox(&customer, "customer-secret");
    let (smtp_addr, smtps_addr, cert, login) =
        (mail.smtp_addr(), mail.smtps_addr(), mail.cert_pem().to_string(), support.clone());
    let sent = message(&support, &customer, "Ваш заказ готов", "Заберите в любое время.");
    let to_send = sent.clone();

    let (plain_ehlo, auth, queued, relayed) = tokio::task::spawn_blocking(move || {
        let mut plain = std::net::TcpStream::connect(smtp_addr).unwrap();
        smtp(&mut plain, None);
        let plain_ehlo = smtp(&mut plain, Some("EHLO client.test"));
        use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()).unwrap();
        let config =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let conn = rustls::ClientConnection::new(config.into(), ServerName::try_from("127.0.0.1").unwrap()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(smtps_addr).unwrap());
        smtp(&mut tls, None);
        smtp(&mut tls, Some("EHLO client.test"));
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{login}\0{PASSWORD}"));
        let auth = smtp(&mut tls, Some(&format!("AUTH PLAIN {token}")));
        smtp(&mut tls, Some(&format!("MAIL FROM:<{login}>")));
        smtp(&mut tls, Some(&format!("RCPT TO:<{}>", customer_of(&to_send))));
        smtp(&mut tls, Some("DATA"));
        tls.write_all(&to_send).unwrap();
        let queued = smtp(&mut tls, Some("."));
        smtp(&mut tls, Some(&format!("MAIL FROM:<{login}>")));
        let relayed = smtp(&mut tls, Some("RCPT TO:<someone@example.com>"));
        (plain_ehlo, auth, queued, relayed)
    })
    .await
    .unwrap();

    assert!(plain_ehlo.contains("250-STARTTLS") && plain_ehlo.contains("AUTH PLAIN"), "{plain_ehlo}");
    assert!(auth.starts_with("235"), "{auth}");
    assert!(queued.starts_with("250"), "{queued}");
    // A login does not open the way out.
    assert!(relayed.starts_with("554") && relayed.contains("Relay access denied"), "{relayed}");
    let got = mail.wait_for(&customer, 1).await;
    assert!(got[0].ends_with(&sent), "{}", String::from_utf8_lossy(&got[0]));
    // ESMTPSA: received over TLS (S) from a logged-in client (A).
    assert!(contains(&got[0], b"(Postfix) with ESMTPSA id"), "{}", String::from_utf8_lossy(&got[0]));
}

/// The `To:` address of a message made by [`message`].
fn customer_of(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.lines().find_map(|l| l.strip_prefix("To: ")).unwrap().to_string()
}

#[tokio::test]
async fn a_server_of_its_own_stops_listening_when_dropped() {
    let Some(own) = MailServer::start() else { return };
    let addrs = [own.smtp_addr(), own.smtps_addr(), own.imap_addr(), own.imaps_addr()];
    assert!(addrs.iter().all(|a| std::net::TcpStream::connect(a).is_ok()));

    drop(own);

    for addr in addrs {
        assert!(std::net::TcpStream::connect(addr).is_err(), "{addr} still listens");
    }
}
