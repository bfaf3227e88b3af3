//! The one HTTP client for URLs that users supply (outgoing webhooks, the webhook channel,
//! attachment downloads). It refuses loopback, private, link-local and other non-public
//! addresses — checked on the resolved addresses, so DNS cannot smuggle them in — unless the
//! administrator allows private targets. A program embedding okno may name a few exact
//! addresses (IP and port) it runs services on beside okno; those alone are let through.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use okno_domain::{Error, Result};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Outgoing HTTP for user-supplied targets.
#[derive(Clone)]
pub struct SafeClient {
    client: reqwest::Client,
    allow_private: bool,
    /// Private addresses that may be called even so.
    exceptions: Arc<[SocketAddr]>,
}

/// The certificates in a PEM bundle (none for an empty one); a bundle that holds none is an
/// error, not a silent no-op.
pub fn extra_roots_of(pem: &[u8]) -> Result<Vec<reqwest::Certificate>> {
    if pem.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let roots = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|e| Error::invalid("invalid_certificate", format!("the extra roots are not PEM certificates: {e}")))?;
    if roots.is_empty() {
        return Err(Error::invalid("invalid_certificate", "the extra roots file holds no PEM certificate"));
    }
    Ok(roots)
}

impl SafeClient {
    pub fn new(allow_private: bool, timeout: Duration) -> Result<Self> {
        SafeClient::with_exceptions(allow_private, Vec::new(), timeout)
    }

    /// As [`SafeClient::new`], and URLs naming one of `exceptions` by its literal IP and port
    /// (`http://127.0.0.1:4001/…`) are called even when private targets are not allowed. A
    /// name that resolves to one is still refused: only the exact address is let through.
    pub fn with_exceptions(allow_private: bool, exceptions: Vec<SocketAddr>, timeout: Duration) -> Result<Self> {
        SafeClient::with_roots(allow_private, exceptions, timeout, &[])
    }

    /// As [`SafeClient::with_exceptions`], trusting the certificates in `extra_roots` (PEM,
    /// one or more) besides the public web's roots — a national root a platform requires (MAX
    /// asks for the Russian Минцифры root), or a company's own CA.
    pub fn with_roots(
        allow_private: bool,
        exceptions: Vec<SocketAddr>,
        timeout: Duration,
        extra_roots: &[u8],
    ) -> Result<Self> {
        let exceptions: Arc<[SocketAddr]> = exceptions.into();
        let allowed = exceptions.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if !allow_private && literal_private(attempt.url()) && !excepted(attempt.url(), &allowed) {
                attempt.error("redirect to a private address refused")
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder();
        for root in extra_roots_of(extra_roots)? {
            builder = builder.add_root_certificate(root);
        }
        let client = builder
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(redirect)
            // A proxy would resolve the name itself, past the address check.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .user_agent(concat!("okno/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client, allow_private, exceptions })
    }

    /// Checks that a URL is http(s) and, unless private targets are allowed, that a literal
    /// IP in it is public. Host names are checked again when they resolve.
    pub fn check_url(&self, raw: &str) -> Result<url::Url> {
        let url =
            url::Url::parse(raw).map_err(|e| Error::invalid("invalid_url", format!("`{raw}` is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(Error::invalid("invalid_url", format!("`{raw}` must be an http:// or https:// URL")));
        }
        if !self.allow_private && literal_private(&url) && !excepted(&url, &self.exceptions) {
            return Err(Error::invalid(
                "private_target",
                format!("`{raw}` points at a private address; set OKNO_ALLOW_PRIVATE_TARGETS=true to allow it"),
            ));
        }
        Ok(url)
    }

    /// A request builder for a checked URL.
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder> {
        Ok(self.client.post(self.check_url(url)?))
    }

    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder> {
        Ok(self.client.get(self.check_url(url)?))
    }

    /// A request builder with any method (`PUT`, `DELETE`…) for a checked URL.
    pub fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder> {
        Ok(self.client.request(method, self.check_url(url)?))
    }

    /// Downloads at most `max` bytes; a larger body is abandoned with [`Fetch::TooLarge`].
    pub async fn fetch_limited(&self, url: &str, max: u64) -> std::result::Result<Fetched, FetchError> {
        let resp = self
            .get(url)
            .map_err(|e| FetchError::Refused(e.message))?
            .send()
            .await
            .map_err(|e| FetchError::Network(describe(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                FetchError::Network(format!("HTTP {status}"))
            } else {
                FetchError::Refused(format!("HTTP {status}"))
            });
        }
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(FetchError::TooLarge { limit: max });
        }
        let mime = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let mut body = BytesMut::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| FetchError::Network(describe(&e)))?;
            if body.len() as u64 + chunk.len() as u64 > max {
                return Err(FetchError::TooLarge { limit: max });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body: body.freeze(), mime })
    }
}

/// A downloaded body.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Bytes,
    pub mime: Option<String>,
}

/// Why a download failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    #[error("the file is larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    /// Worth another try.
    #[error("{0}")]
    Network(String),
    /// Will not work however often it is tried.
    #[error("{0}")]
    Refused(String),
}

/// A readable account of a reqwest error, including its cause chain.
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Whether a URL names one of `exceptions` by its literal IP and port.
fn excepted(url: &url::Url, exceptions: &[SocketAddr]) -> bool {
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return false,
    };
    url.port_or_known_default().is_some_and(|port| exceptions.contains(&SocketAddr::new(ip, port)))
}

fn literal_private(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost"),
        None => true,
    }
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96), 6to4 (2002::/16) and IPv4-compatible (::/96) addresses
            // carry an IPv4 address; judge them by it.
            let embedded = |a: u16, b: u16| std::net::Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8);
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                return is_public(IpAddr::V4(embedded(seg[6], seg[7])));
            }
            if seg[0] == 0x2002 {
                return is_public(IpAddr::V4(embedded(seg[1], seg[2])));
            }
            if seg[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified() {
                return is_public(IpAddr::V4(embedded(seg[6], seg[7])));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] & 0xffc0) == 0xfec0
                || (seg[0] == 0x2001 && seg[1] == 0x0db8))
        }
    }
}

struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| allow_private || is_public(a.ip())).collect();
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    format!("`{host}` resolves only to private addresses, which are not allowed").into();
                return Err(err);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and treated as absent).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(24 * 3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "::127.0.0.1",
            "fec0::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must not be public");
        }
        for ip in ["8.8.8.8", "2a00:1450::1", "93.184.216.34"] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn literal_private_urls_are_refused_unless_allowed() {
        let strict = SafeClient::new(false, Duration::from_secs(1)).unwrap();
        assert_eq!(strict.check_url("http://127.0.0.1:9/x").unwrap_err().code, "private_target");
        assert_eq!(strict.check_url("http://localhost/x").unwrap_err().code, "private_target");
        assert_eq!(strict.check_url("ftp://example.org/x").unwrap_err().code, "invalid_url");
        assert!(strict.check_url("https://example.org/x").is_ok());
        let open = SafeClient::new(true, Duration::from_secs(1)).unwrap();
        assert!(open.check_url("http://127.0.0.1:9/x").is_ok());
    }

    #[tokio::test]
    async fn an_excepted_address_alone_is_called_when_private_targets_are_not_allowed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            }
        });
        let client = SafeClient::with_exceptions(false, vec![addr], Duration::from_secs(5)).unwrap();
        let answer = client.get(&format!("http://{addr}/hs/bot")).unwrap().send().await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "ok");
        // Another port of the same address, the address by a name, and any other private
        // address stay refused.
        let other_port = format!("http://127.0.0.1:{}/x", addr.port().wrapping_add(1).max(1));
        assert_eq!(client.check_url(&other_port).unwrap_err().code, "private_target");
        assert_eq!(
            client.check_url(&format!("http://localhost:{}/x", addr.port())).unwrap_err().code,
            "private_target"
        );
        assert_eq!(client.check_url("http://10.0.0.1/x").unwrap_err().code, "private_target");
        assert!(client.check_url("https://example.org/x").is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused() {
        use std::str::FromStr;
        // The literal check catches `localhost`; the resolver must catch it again for names that
        // only resolution reveals.
        let name = Name::from_str("localhost").unwrap();
        let strict = GuardedResolver { allow_private: false }.resolve(name).await;
        let err = strict.err().expect("loopback refused").to_string();
        assert!(err.contains("private"), "{err}");
        let open = GuardedResolver { allow_private: true }.resolve(Name::from_str("localhost").unwrap()).await;
        assert!(open.expect("allowed").any(|a| a.ip().is_loopback()));
    }
}
