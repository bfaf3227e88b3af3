//! E-mail in tests: okno connected to a mailbox of the test kit's own Postfix and Dovecot
//! ([`crate::mail::MailServer`]), over TLS from the first byte on both sides, trusting the
//! server's certificate authority through the channel's `ca_cert`.

use serde_json::{json, Value};

use crate::mail::{unique_address, MailServer};
use crate::TestApp;

/// The password of every mailbox the helpers make.
pub const PASSWORD: &str = "mailbox-password";

/// A fresh mailbox at `okno.test` for okno to read and write as; returns its address.
pub fn okno_mailbox(server: &MailServer) -> String {
    let address = unique_address("support", "okno.test");
    server.create_mailbox(&address, PASSWORD);
    address
}

/// A fresh mailbox at `shop.test` for a person who writes to okno; returns its address.
pub fn person_mailbox(server: &MailServer, prefix: &str) -> String {
    let address = unique_address(prefix, "shop.test");
    server.create_mailbox(&address, PASSWORD);
    address
}

/// The `email` channel configuration for `address` on `server`, as the contract names it.
pub fn email_config(server: &MailServer, address: &str, name: &str) -> Value {
    json!({
        "imap": {"host": "127.0.0.1", "port": server.imaps_addr().port(), "tls": "tls",
                 "username": address, "password": PASSWORD},
        "smtp": {"host": "127.0.0.1", "port": server.smtps_addr().port(), "tls": "tls",
                 "username": address, "password": PASSWORD},
        "from": format!("{name} <{address}>"),
        "ca_cert": server.cert_pem(),
    })
}

impl TestApp {
    /// Connects an `email` channel reading and writing as `address`; returns the channel id.
    pub async fn email_channel(&self, server: &MailServer, address: &str) -> String {
        let config = email_config(server, address, "Магазин «Окно»");
        let a = self.post("/api/v1/channels", json!({"kind": "email", "name": "Почта", "config": config})).await;
        assert_eq!(a.status, 201, "{a:?}");
        a.body["id"].as_str().expect("channel id").to_string()
    }
}
