//! Sending over SMTP (lettre on tokio, TLS by rustls): the mail [`compose`](crate::compose)
//! built goes to the channel's server byte for byte, the envelope sender the channel's own
//! address, over TLS from the first byte (`tls`, port 465), a connection upgraded with STARTTLS
//! (`starttls`, 587; the upgrade is required, never skipped) or, for a server on this machine
//! only, a plain one. okno logs in with the channel's login; connections are pooled, and at
//! most [`CONNECTIONS`] sends run at once, so each goes over a connection already open.
//!
//! What the server answers decides the message's fate: a 4xx reply (busy, greylisting, a
//! mailbox full for now), a timeout or a lost connection is passing — the outbox tries again;
//! a 5xx reply ends the message `failed` with the server's own words.
//! A 4xx reply is tried again after [`RETRY_AFTER`].

use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as Wire, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use okno_channel::SendError;
use okno_domain::error::{Error, Result};

use crate::compose::Composed;
use crate::config::{Sender, SmtpConfig, Tls};

/// How long one SMTP exchange may take before it counts as lost.
const TIMEOUT: Duration = Duration::from_secs(60);

/// SMTP connections one channel keeps open and sends over at once unless its `smtp.connections`
/// says otherwise. More sends than this wait for a connection rather than each opening its own
/// (a TLS handshake and a login per mail, and a server that slows down a client opening dozens).
pub const CONNECTIONS: usize = 8;

/// A channel's way out: its SMTP server, login and address.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Address,
    /// One permit per pooled connection.
    permits: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp").field("from", &self.from).finish_non_exhaustive()
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("invalid_channel_config", message.into())
}

impl Smtp {
    /// A sender for `cfg` writing as `from`; `ca_cert` (PEM) is trusted beside the public
    /// certificate authorities.
    pub fn new(cfg: &SmtpConfig, from: &Sender, ca_cert: Option<&str>) -> Result<Smtp> {
        let host = cfg.host.trim();
        let tls = || -> Result<TlsParameters> {
            let mut params = TlsParameters::builder(host.to_string());
            if let Some(pem) = ca_cert {
                let cert = Certificate::from_pem(pem.as_bytes()).map_err(|e| invalid(format!("`ca_cert`: {e}")))?;
                params = params.add_root_certificate(cert);
            }
            params.build_rustls().map_err(|e| invalid(format!("TLS for {host}: {e}")))
        };
        let wire = match cfg.tls {
            Tls::Tls => Wire::Wrapper(tls()?),
            Tls::Starttls => Wire::Required(tls()?),
            Tls::None => Wire::None,
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(cfg.port())
            .tls(wire)
            .credentials(Credentials::new(cfg.username.clone(), cfg.password.clone()))
            .timeout(Some(TIMEOUT))
            .pool_config(PoolConfig::new().max_size(cfg.connections() as u32))
            .build();
        let from = from.address.parse::<Address>().map_err(|e| invalid(format!("`from`: {e}")))?;
        Ok(Smtp { transport, from, permits: tokio::sync::Semaphore::new(cfg.connections()) })
    }

    /// Connects, says hello and logs in, as connecting a channel checks: `Err` carries what
    /// went wrong in words an administrator can act on.
    pub async fn check(&self) -> std::result::Result<(), String> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the SMTP server did not answer NOOP".into()),
            Err(e) => Err(format!("SMTP: {e}")),
        }
    }

    /// Sends one composed mail to its recipient.
    pub async fn send(&self, mail: &Composed) -> std::result::Result<(), SendError> {
        let to = mail
            .to
            .parse::<Address>()
            .map_err(|e| SendError::permanent(format!("`{}` is not an e-mail address: {e}", mail.to)))?;
        let envelope = Envelope::new(Some(self.from.clone()), vec![to])
            .map_err(|e| SendError::permanent(format!("the envelope: {e}")))?;
        let _connection =
            self.permits.acquire().await.map_err(|_| SendError::retry("the mail channel is shutting down"))?;
        self.transport.send_raw(&envelope, &mail.bytes).await.map(|_| ()).map_err(|e| classify(&e))
    }
}

/// How long a 4xx answer makes okno wait before trying again: SMTP says "later" without
/// saying when; mail servers come back after minutes, okno a little sooner.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// A failed exchange as the outbox reads it: 5xx is for good; a 4xx is tried again after
/// [`RETRY_AFTER`]; a lost connection or a timeout is tried again on the outbox's schedule.
pub fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    if e.is_permanent() {
        SendError::permanent(format!("the mail server refused it: {e}"))
    } else if e.is_transient() {
        SendError::Retry { reason: format!("the mail server asks to try later: {e}"), after: Some(RETRY_AFTER) }
    } else {
        SendError::retry(format!("the mail server: {e}"))
    }
}
