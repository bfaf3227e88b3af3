//! Reading the mailbox over IMAP (async-imap on tokio, TLS by rustls): TLS from the first byte
//! (`tls`, port 993), a plain connection upgraded with STARTTLS (`starttls`, 143; the upgrade
//! is required) or, for a server on this machine only, plain IMAP; a login with the channel's
//! username and password; the folder opened read-write.
//!
//! Mail is read by UID: [`Inbox::fetch_after`] returns the messages with a UID above the last
//! one okno stored, in UID order, without marking them seen — so okno's cursor is the pair
//! (UIDVALIDITY, last UID), advanced only once what it covers is stored, and a changed
//! UIDVALIDITY means the UIDs start over. The certificates trusted are the system's roots and,
//! when the channel has one, its own `ca_cert`.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{ImapConfig, Tls};

/// How long connecting, logging in or one command may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A stream IMAP runs over: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

type Session = async_imap::Session<Box<dyn Io>>;

/// One mail as the server keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub uid: u32,
    /// The whole message, RFC 5322.
    pub raw: Vec<u8>,
}

/// An open, logged-in mailbox folder.
pub struct Inbox {
    session: Session,
    /// The folder's UIDVALIDITY: while it stays the same, a UID names the same message.
    pub uid_validity: u32,
    /// The server has IDLE (RFC 2177): [`Inbox::wait`] is told of new mail at once.
    pub idle: bool,
}

impl Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("uid_validity", &self.uid_validity)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

/// What went wrong, in words an administrator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImapError {
    /// The server could not be reached or the connection broke: try again later.
    #[error("IMAP {0}")]
    Connection(String),
    /// The server refused the login.
    #[error("IMAP: the server refused the login: {0}")]
    Login(String),
    /// The server answered a command with an error.
    #[error("IMAP: {0}")]
    Command(String),
}

/// A command's failure: a broken connection is one (try again on another), anything else the
/// server's answer.
fn command_error(what: &str, e: async_imap::error::Error) -> ImapError {
    match e {
        async_imap::error::Error::Io(_) | async_imap::error::Error::ConnectionLost => {
            ImapError::Connection(format!("{what}: {e}"))
        }
        e => ImapError::Command(format!("{what}: {e}")),
    }
}

async fn timed<T>(what: &str, f: impl std::future::Future<Output = Result<T, ImapError>>) -> Result<T, ImapError> {
    tokio::time::timeout(TIMEOUT, f).await.unwrap_or_else(|_| Err(ImapError::Connection(format!("{what}: timed out"))))
}

fn tls_connector(ca_cert: Option<&str>) -> Result<tokio_rustls::TlsConnector, ImapError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is one fewer root, not a reason to stop.
        let _ = roots.add(cert);
    }
    if let Some(pem) = ca_cert {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| ImapError::Connection(format!("`ca_cert`: {e}")))?;
            roots.add(cert).map_err(|e| ImapError::Connection(format!("`ca_cert`: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Connection(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn wrap(tcp: TcpStream, host: &str, ca_cert: Option<&str>) -> Result<Box<dyn Io>, ImapError> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| ImapError::Connection(format!("`{host}` is not a name TLS can check: {e}")))?;
    let tls = tls_connector(ca_cert)?
        .connect(name, tcp)
        .await
        .map_err(|e| ImapError::Connection(format!("TLS with {host}: {e}")))?;
    Ok(Box::new(tls))
}

/// Reads the server's greeting.
async fn greeted(client: &mut async_imap::Client<Box<dyn Io>>, host: &str) -> Result<(), ImapError> {
    match client.read_response().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ImapError::Connection(format!("{host} closed the connection before greeting"))),
        Err(e) => Err(ImapError::Connection(format!("{host}: {e}"))),
    }
}

impl Inbox {
    /// Connects, secures the connection as `cfg.tls` says, logs in and opens `cfg.mailbox`.
    pub async fn open(cfg: &ImapConfig, ca_cert: Option<&str>) -> Result<Inbox, ImapError> {
        timed("connecting", Inbox::open_now(cfg, ca_cert)).await
    }

    async fn open_now(cfg: &ImapConfig, ca_cert: Option<&str>) -> Result<Inbox, ImapError> {
        let host = cfg.host.trim();
        let tcp = TcpStream::connect((host, cfg.port()))
            .await
            .map_err(|e| ImapError::Connection(format!("{host}:{}: {e}", cfg.port())))?;
        let client = match cfg.tls {
            Tls::Tls => {
                let mut c = async_imap::Client::new(wrap(tcp, host, ca_cert).await?);
                greeted(&mut c, host).await?;
                c
            }
            Tls::Starttls => {
                let mut plain = async_imap::Client::new(tcp);
                match plain.read_response().await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(ImapError::Connection(format!("{host} closed the connection before greeting")))
                    }
                    Err(e) => return Err(ImapError::Connection(format!("{host}: {e}"))),
                }
                plain
                    .run_command_and_check_ok("STARTTLS", None)
                    .await
                    .map_err(|e| ImapError::Connection(format!("{host} refused STARTTLS: {e}")))?;
                // The upgraded connection has no greeting of its own.
                async_imap::Client::new(wrap(plain.into_inner(), host, ca_cert).await?)
            }
            Tls::None => {
                let mut c = async_imap::Client::new(Box::new(tcp) as Box<dyn Io>);
                greeted(&mut c, host).await?;
                c
            }
        };
        let mut session =
            client.login(&cfg.username, &cfg.password).await.map_err(|(e, _)| ImapError::Login(e.to_string()))?;
        let idle =
            session.capabilities().await.map_err(|e| ImapError::Command(format!("CAPABILITY: {e}")))?.has_str("IDLE");
        let folder = session
            .select(cfg.mailbox.trim())
            .await
            .map_err(|e| ImapError::Command(format!("opening `{}`: {e}", cfg.mailbox.trim())))?;
        let uid_validity = folder
            .uid_validity
            .ok_or_else(|| ImapError::Command(format!("`{}` has no UIDVALIDITY", cfg.mailbox.trim())))?;
        Ok(Inbox { session, uid_validity, idle })
    }

    /// The messages with a UID above `last_uid`, oldest first, at most `max` of them; none is
    /// marked seen.
    pub async fn fetch_after(&mut self, last_uid: u32, max: usize) -> Result<Vec<Fetched>, ImapError> {
        timed("fetching", async {
            // The server tells an open folder of new mail only when asked: NOOP first, so `*`
            // reaches what arrived since the last command.
            self.session.noop().await.map_err(|e| ImapError::Connection(format!("NOOP: {e}")))?;
            let from = last_uid.saturating_add(1);
            let stream = self
                .session
                .uid_fetch(format!("{from}:*"), "(UID BODY.PEEK[])")
                .await
                .map_err(|e| command_error("UID FETCH", e))?;
            let fetches: Vec<_> =
                stream.try_collect().await.map_err(|e| ImapError::Connection(format!("UID FETCH: {e}")))?;
            // `N:*` names the last message even when its UID is below N: keep only the new.
            let mut mail: Vec<Fetched> = fetches
                .iter()
                .filter_map(|f| Some(Fetched { uid: f.uid?, raw: f.body()?.to_vec() }))
                .filter(|f| f.uid > last_uid)
                .collect();
            mail.sort_by_key(|f| f.uid);
            mail.truncate(max);
            Ok(mail)
        })
        .await
    }

    /// One message by its UID (`None`: no longer in the folder), not marked seen.
    pub async fn fetch_uid(&mut self, uid: u32) -> Result<Option<Fetched>, ImapError> {
        timed("fetching", async {
            let stream = self
                .session
                .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
                .await
                .map_err(|e| command_error("UID FETCH", e))?;
            let fetches: Vec<_> =
                stream.try_collect().await.map_err(|e| ImapError::Connection(format!("UID FETCH: {e}")))?;
            Ok(fetches
                .iter()
                .find_map(|f| Some(Fetched { uid: f.uid?, raw: f.body()?.to_vec() }).filter(|f| f.uid == uid)))
        })
        .await
    }

    /// Waits up to `max` for the server to tell of a change in the folder (new mail): with
    /// IDLE where the server has it (renewed well within the 29 minutes RFC 2177 allows),
    /// else by sleeping `max` (at most a minute, so mail is still read promptly).
    pub async fn wait(self, max: Duration) -> Result<Inbox, ImapError> {
        if !self.idle {
            tokio::time::sleep(max.min(Duration::from_secs(60))).await;
            return Ok(self);
        }
        let Inbox { session, uid_validity, idle } = self;
        let max = max.min(Duration::from_secs(25 * 60));
        let mut handle = session.idle();
        timed("IDLE", async { handle.init().await.map_err(|e| ImapError::Connection(format!("IDLE: {e}"))) }).await?;
        {
            let (told, _stop) = handle.wait_with_timeout(max);
            // The server's keep-alives restart the crate's own timeout: the outer one bounds it.
            // New mail, the server's own timeout, or ours: all end the wait alike.
            if let Ok(Err(e)) = tokio::time::timeout(max + Duration::from_secs(1), told).await {
                return Err(ImapError::Connection(format!("IDLE: {e}")));
            }
        }
        let session = timed("ending IDLE", async {
            handle.done().await.map_err(|e| ImapError::Connection(format!("IDLE DONE: {e}")))
        })
        .await?;
        Ok(Inbox { session, uid_validity, idle })
    }

    /// Says goodbye to the server.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }
}
