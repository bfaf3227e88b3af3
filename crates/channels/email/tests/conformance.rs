//! The channel conformance suite (`okno_channel::conformance`) for e-mail, against the test
//! kit's real Postfix and Dovecot: a person's mail is delivered through Postfix to okno's
//! mailbox and read by the platform's poll; what okno sends is read back from the person's
//! mailbox; a busy or refusing server is Postfix answering `RCPT TO` with a 4xx or a 5xx.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::conformance::{self, Fault, Harness, Memory};
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{Context, Platform, Received};
use okno_channel_email::{parse, Email};
use okno_domain::model::{Channel, ChannelKind, Identity};
use okno_testkit::email::{email_config, okno_mailbox, person_mailbox, PASSWORD};
use okno_testkit::mail::MailServer;
use serde_json::{json, Value};

struct MailHarness {
    server: &'static MailServer,
    platform: Arc<Email>,
    cx: Context,
    okno: String,
    person: String,
    /// The poll cursor before and after the person's last mail.
    cursors: Mutex<(Option<String>, Option<String>)>,
    /// Mails the person's mailbox held when the suite last looked.
    seen: Mutex<usize>,
}

impl MailHarness {
    async fn poll(&self, channel: &Channel, cursor: Option<String>) -> Vec<Received> {
        let polled =
            self.platform.poll(&self.cx, channel, cursor.as_deref(), &Memory::default()).await.expect("a poll");
        polled.items
    }
}

#[async_trait]
impl Harness for MailHarness {
    fn platform(&self) -> Arc<dyn Platform> {
        self.platform.clone()
    }
    fn context(&self) -> Context {
        self.cx.clone()
    }
    fn good_config(&self) -> Value {
        email_config(self.server, &self.okno, "Магазин")
    }
    fn bad_config(&self) -> Value {
        let mut config = self.good_config();
        config["imap"]["password"] = json!("wrong");
        config["smtp"]["password"] = json!("wrong");
        config
    }

    async fn person(&self, channel: &Channel) -> Identity {
        Identity {
            id: "identity-1".into(),
            contact_id: "contact-1".into(),
            channel_id: channel.id.clone(),
            kind: ChannelKind::Email,
            user_id: self.person.clone(),
            chat_id: self.person.clone(),
            username: None,
            display_name: Some("Анна".into()),
            is_group: false,
            blocked: false,
            opted_out: false,
            last_seen_at: None,
        }
    }

    async fn person_writes(&self, channel: &Channel, _: &Identity, text: &str) -> Vec<Received> {
        let n = self.server.fetch_all(&self.okno, PASSWORD).await.len();
        let mail = format!(
            "From: Анна <{}>\r\nTo: {}\r\nSubject: Вопрос\r\nMessage-ID: <q-{n}@shop.test>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n",
            self.person, self.okno
        );
        self.server.deliver(mail.as_bytes(), &self.person, &[&self.okno]).await.unwrap();
        self.server.wait_for(&self.okno, n + 1).await;
        let before = self.cursors.lock().unwrap().1.clone();
        let got = self.poll(channel, before.clone()).await;
        let after = got.iter().rev().find_map(|r| r.cursor.clone()).or(before.clone());
        *self.cursors.lock().unwrap() = (before, after);
        got
    }

    async fn redelivered(&self, channel: &Channel, _: &Identity) -> Vec<Received> {
        // The cursor was not stored (okno stopped before): the same mail is read again.
        let before = self.cursors.lock().unwrap().0.clone();
        self.poll(channel, before).await
    }

    async fn person_presses(&self, _: &Channel, _: &Identity, _: &str, _: &str) -> Vec<Received> {
        Vec::new() // a mail has no buttons: never asked
    }
    async fn person_edits(&self, _: &Channel, _: &Identity, _: &str) -> Option<Vec<Received>> {
        None
    }
    async fn person_blocks(&self, _: &Channel, _: &Identity) -> Option<Vec<Received>> {
        None
    }

    async fn shown(&self, person: &Identity) -> Vec<String> {
        // The suite looks once after each send that went through: that mail is waited for
        // (Postfix hands it to Dovecot a moment later).
        let seen = *self.seen.lock().unwrap();
        let got = self.server.wait_for(&person.chat_id, seen + 1).await;
        *self.seen.lock().unwrap() = got.len();
        got.iter().map(|raw| parse(raw).unwrap().full_text).collect()
    }
    async fn shown_buttons(&self, _: &Identity) -> Vec<String> {
        Vec::new()
    }

    fn fail_next_send(&self, fault: Fault) -> bool {
        let reply = match fault {
            Fault::TooManyRequests => "450 4.7.1 Too much mail, slow down",
            Fault::ServerError => "451 4.3.0 Temporary lookup failure",
            Fault::Refused => "550 5.1.1 No such user here",
        };
        self.server.refuse_next(&self.person, reply);
        true
    }
}

#[tokio::test]
async fn email_passes_the_channel_conformance_suite() {
    let Some(server) = MailServer::shared() else { return };
    let dir = std::env::temp_dir().join(format!("okno-email-conf-{}", okno_domain::ids::new_id()));
    let h = MailHarness {
        server,
        platform: Arc::new(Email::default()),
        cx: Context {
            http: SafeClient::new(true, Duration::from_secs(10)).expect("client"),
            public_url: "http://okno.test".into(),
            files: FileStore::new(dir.join("files")).expect("file store"),
            max_download: 20 * 1024 * 1024,
            poll_timeout: Duration::from_secs(1),
        },
        okno: okno_mailbox(server),
        person: person_mailbox(server, "anna"),
        cursors: Mutex::new((None, None)),
        seen: Mutex::new(0),
    };
    conformance::run(&h).await;
    let _ = std::fs::remove_dir_all(&dir);
}
