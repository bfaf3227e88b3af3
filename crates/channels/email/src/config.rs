//! The `email` channel's configuration, as the contract names it:
//! `{"imap": {"host", "port", "tls", "username", "password", "mailbox"},
//!   "smtp": {"host", "port", "tls", "username", "password"}, "from"}`.

use std::fmt;

use lettre::message::Mailbox;
use okno_domain::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// How a connection to the mail server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// TLS from the first byte (IMAP 993, SMTP 465).
    #[default]
    Tls,
    /// A plain connection upgraded with STARTTLS (IMAP 143, SMTP 587).
    Starttls,
    /// No encryption: only for a server on this machine (the password would cross the network
    /// in the clear otherwise).
    None,
}

/// The IMAP side: where people's mail is read from.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImapConfig {
    pub host: String,
    /// The port; by default 993 with `tls`, 143 otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: Tls,
    pub username: String,
    pub password: String,
    /// The folder read, `INBOX` by default.
    #[serde(default = "inbox")]
    pub mailbox: String,
}

/// The SMTP side: how okno's answers leave.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpConfig {
    pub host: String,
    /// The port; by default 465 with `tls`, 587 with `starttls`, 25 with `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: Tls,
    pub username: String,
    pub password: String,
    /// Connections okno keeps open to the server and sends over at once; by default
    /// [`crate::smtp::CONNECTIONS`]. More sends mail faster through a server that takes it
    /// (a company's own Postfix); public mail services limit how many one login may open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
}

/// The most SMTP connections a channel may keep.
pub const MAX_CONNECTIONS: u32 = 32;

/// A mailbox as the configuration stores it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailConfig {
    pub imap: ImapConfig,
    pub smtp: SmtpConfig,
    /// The address okno writes from, with an optional display name:
    /// `support@shop.ru` or `Магазин «Окно» <support@shop.ru>`.
    pub from: String,
    /// A certificate authority (PEM) trusted beside the public ones, for a mail server whose
    /// certificate a company signs itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// The subject of a mail that answers none of the person's (a notice, a broadcast without
    /// a subject of its own); by default "Message from {from's name}".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The key okno signs its unsubscribe links with: made by okno when the mailbox connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe_secret: Option<String>,
}

fn inbox() -> String {
    "INBOX".to_string()
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("invalid_channel_config", message.into())
}

impl fmt::Debug for ImapConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &"[hidden]")
            .field("mailbox", &self.mailbox)
            .finish()
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &"[hidden]")
            .finish()
    }
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("imap", &self.imap)
            .field("smtp", &self.smtp)
            .field("from", &self.from)
            .field("ca_cert", &self.ca_cert.as_ref().map(|_| "[PEM]"))
            .field("subject", &self.subject)
            .field("unsubscribe_secret", &self.unsubscribe_secret.as_ref().map(|_| "[hidden]"))
            .finish()
    }
}

impl ImapConfig {
    /// The port connected to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            Tls::Tls => 993,
            Tls::Starttls | Tls::None => 143,
        })
    }
}

impl SmtpConfig {
    /// The port connected to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            Tls::Tls => 465,
            Tls::Starttls => 587,
            Tls::None => 25,
        })
    }

    /// Connections to keep and send over at once.
    pub fn connections(&self) -> usize {
        self.connections.map_or(crate::smtp::CONNECTIONS, |n| n.clamp(1, MAX_CONNECTIONS) as usize)
    }
}

/// The sender okno writes as: the configured `from`, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The display name, when the configuration gives one.
    pub name: Option<String>,
    /// `support@shop.ru`.
    pub address: String,
}

impl Sender {
    /// Reads `support@shop.ru` or `Name <support@shop.ru>`.
    pub fn parse(from: &str) -> Result<Sender> {
        let from = from.trim();
        if from.is_empty() {
            return Err(invalid("`from` is required: the address okno writes from"));
        }
        let mailbox: Mailbox =
            from.parse().map_err(|e| invalid(format!("`from`: `{from}` is not an e-mail address ({e})")))?;
        let name = mailbox.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        Ok(Sender { name, address: mailbox.email.to_string() })
    }

    /// The part after `@`: okno's Message-IDs are made in it.
    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }

    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        self.address.rsplit_once('@').map(|(l, _)| l).unwrap_or_default()
    }

    /// The address with a plus-tag: `support+<tag>@shop.ru`.
    pub fn tagged(&self, tag: &str) -> String {
        format!("{}+{tag}@{}", self.local_part(), self.domain())
    }
}

impl EmailConfig {
    /// Reads a stored or submitted configuration and checks it.
    pub fn from_value(value: &serde_json::Value) -> Result<EmailConfig> {
        let cfg: EmailConfig =
            serde_json::from_value(value.clone()).map_err(|e| invalid(format!("email channel config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field, naming the first one that is wrong.
    pub fn validate(&self) -> Result<()> {
        check_server("imap", &self.imap.host, self.imap.port, self.imap.tls)?;
        check_login("imap", &self.imap.username, &self.imap.password)?;
        let mailbox = self.imap.mailbox.trim();
        if mailbox.is_empty() || mailbox.chars().any(|c| c.is_control()) {
            return Err(invalid("`imap.mailbox` must name a folder, e.g. INBOX"));
        }
        check_server("smtp", &self.smtp.host, self.smtp.port, self.smtp.tls)?;
        check_login("smtp", &self.smtp.username, &self.smtp.password)?;
        if self.smtp.connections.is_some_and(|n| n == 0 || n > MAX_CONNECTIONS) {
            return Err(invalid(format!("`smtp.connections` is 1 to {MAX_CONNECTIONS}")));
        }
        if self.ca_cert.as_deref().is_some_and(|pem| !pem.contains("-----BEGIN CERTIFICATE-----")) {
            return Err(invalid("`ca_cert` is a certificate in PEM (-----BEGIN CERTIFICATE-----…)"));
        }
        let sender = self.sender()?;
        if !sender.domain().contains('.') && sender.domain() != "localhost" {
            return Err(invalid(format!("`from`: `{}` needs a full domain", sender.address)));
        }
        Ok(())
    }

    /// The configured `from`, read.
    pub fn sender(&self) -> Result<Sender> {
        Sender::parse(&self.from)
    }
}

fn check_server(side: &str, host: &str, port: Option<u16>, tls: Tls) -> Result<()> {
    let host = host.trim();
    if host.is_empty() {
        return Err(invalid(format!("`{side}.host` is required")));
    }
    if host.contains("://") || host.contains('/') {
        return Err(invalid(format!("`{side}.host` is a host name such as mail.shop.ru, not a URL")));
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@') {
        return Err(invalid(format!("`{side}.host`: `{host}` is not a host name")));
    }
    if port == Some(0) {
        return Err(invalid(format!("`{side}.port` must be 1..65535")));
    }
    if tls == Tls::None && !is_loopback(host) {
        return Err(invalid(format!(
            "`{side}.tls` is `none` for {host}: the password would travel unencrypted; \
             use `tls` or `starttls` (`none` is only for a server on this machine)"
        )));
    }
    Ok(())
}

fn check_login(side: &str, username: &str, password: &str) -> Result<()> {
    if username.trim().is_empty() {
        return Err(invalid(format!("`{side}.username` is required")));
    }
    if password.is_empty() {
        return Err(invalid(format!("`{side}.password` is required")));
    }
    if username.contains(['\r', '\n']) || password.contains(['\r', '\n']) {
        return Err(invalid(format!("`{side}.username` and `{side}.password` are one line each")));
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> serde_json::Value {
        json!({
            "imap": {"host": "imap.shop.ru", "port": 993, "tls": "tls", "username": "support@shop.ru",
                     "password": "secret", "mailbox": "INBOX"},
            "smtp": {"host": "smtp.shop.ru", "port": 587, "tls": "starttls", "username": "support@shop.ru",
                     "password": "secret"},
            "from": "Магазин «Окно» <support@shop.ru>"
        })
    }

    fn refusal(v: serde_json::Value) -> String {
        match EmailConfig::from_value(&v) {
            Ok(cfg) => panic!("accepted {cfg:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_complete_configuration_is_read() {
        let cfg = EmailConfig::from_value(&good()).unwrap();
        assert_eq!(cfg.imap.port(), 993);
        assert_eq!(cfg.smtp.port(), 587);
        assert_eq!(cfg.smtp.tls, Tls::Starttls);
        let sender = cfg.sender().unwrap();
        assert_eq!(sender.name.as_deref(), Some("Магазин «Окно»"));
        assert_eq!(sender.address, "support@shop.ru");
        assert_eq!(sender.domain(), "shop.ru");
        assert_eq!(sender.tagged("c42"), "support+c42@shop.ru");
    }

    #[test]
    fn ports_and_mailbox_have_defaults() {
        let mut v = good();
        v["imap"].as_object_mut().unwrap().remove("port");
        v["imap"].as_object_mut().unwrap().remove("mailbox");
        v["imap"].as_object_mut().unwrap().remove("tls");
        v["smtp"].as_object_mut().unwrap().remove("port");
        let cfg = EmailConfig::from_value(&v).unwrap();
        assert_eq!((cfg.imap.port(), cfg.imap.mailbox.as_str(), cfg.imap.tls), (993, "INBOX", Tls::Tls));
        assert_eq!(cfg.smtp.port(), 587);
        v["smtp"]["tls"] = json!("tls");
        assert_eq!(EmailConfig::from_value(&v).unwrap().smtp.port(), 465);
        assert_eq!(cfg.smtp.connections(), crate::smtp::CONNECTIONS);
    }

    #[test]
    fn smtp_connections_are_one_to_thirty_two() {
        let mut v = good();
        v["smtp"]["connections"] = json!(16);
        assert_eq!(EmailConfig::from_value(&v).unwrap().smtp.connections(), 16);
        for bad in [json!(0), json!(33), json!(-1), json!("many")] {
            v["smtp"]["connections"] = bad.clone();
            assert!(EmailConfig::from_value(&v).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bare_from_address_has_no_name() {
        let mut v = good();
        v["from"] = json!("support@shop.ru");
        let sender = EmailConfig::from_value(&v).unwrap().sender().unwrap();
        assert_eq!(sender, Sender { name: None, address: "support@shop.ru".into() });
    }

    #[test]
    fn a_configuration_round_trips_through_json() {
        let cfg = EmailConfig::from_value(&good()).unwrap();
        let again = EmailConfig::from_value(&serde_json::to_value(&cfg).unwrap()).unwrap();
        assert_eq!(cfg, again);
    }

    #[test]
    fn missing_or_wrong_fields_are_named() {
        let mut v = good();
        v["imap"]["host"] = json!(" ");
        assert!(refusal(v).contains("`imap.host` is required"));

        let mut v = good();
        v["smtp"]["host"] = json!("smtps://smtp.shop.ru");
        assert!(refusal(v).contains("not a URL"));

        let mut v = good();
        v["smtp"]["port"] = json!(0);
        assert!(refusal(v).contains("`smtp.port`"));

        let mut v = good();
        v["smtp"]["port"] = json!(70000);
        assert!(refusal(v).contains("email channel config"));

        let mut v = good();
        v["imap"]["password"] = json!("");
        assert!(refusal(v).contains("`imap.password` is required"));

        let mut v = good();
        v["smtp"]["username"] = json!("");
        assert!(refusal(v).contains("`smtp.username` is required"));

        let mut v = good();
        v["imap"]["mailbox"] = json!("");
        assert!(refusal(v).contains("`imap.mailbox`"));

        let mut v = good();
        v["imap"]["tls"] = json!("ssl");
        assert!(refusal(v).contains("email channel config"));

        let mut v = good();
        v.as_object_mut().unwrap().remove("from");
        assert!(refusal(v).contains("from"));

        let mut v = good();
        v["from"] = json!("Магазин");
        assert!(refusal(v).contains("`from`"));

        let mut v = good();
        v["from"] = json!("support@shop");
        assert!(refusal(v).contains("full domain"));
    }

    #[test]
    fn plain_connections_are_only_for_this_machine() {
        let mut v = good();
        v["smtp"]["tls"] = json!("none");
        assert!(refusal(v.clone()).contains("unencrypted"));
        v["smtp"]["host"] = json!("127.0.0.1");
        v["imap"]["host"] = json!("localhost");
        v["imap"]["tls"] = json!("none");
        v["imap"].as_object_mut().unwrap().remove("port");
        v["smtp"].as_object_mut().unwrap().remove("port");
        let cfg = EmailConfig::from_value(&v).unwrap();
        assert_eq!((cfg.imap.port(), cfg.smtp.port()), (143, 25));
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let mut v = good();
        v["unsubscribe_secret"] = json!("k3y-of-the-links");
        let cfg = EmailConfig::from_value(&v).unwrap();
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("\"secret\"") && !shown.contains("k3y-of-the-links"), "{shown}");
    }
}
