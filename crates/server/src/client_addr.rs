//! The address of the client behind a request. Directly connected, it is the peer. Behind a
//! reverse proxy okno is told to trust (`[http] trusted_proxies`), it is the rightmost address
//! of `X-Forwarded-For` that is not itself a trusted proxy: each proxy appends the address it
//! was reached from, so everything left of that may be written by the client and is ignored.
//! A peer that is not a trusted proxy cannot choose its address by sending the header.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;
use okno_domain::{Error, Result};

use crate::error::ApiError;
use crate::AppState;

/// The reverse proxies whose `X-Forwarded-For` okno believes.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses networks (`10.0.0.0/8`) or single addresses (`192.0.2.7`).
    pub fn parse(list: &[String]) -> Result<TrustedProxies> {
        let nets = list
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                    Error::invalid(
                        "invalid_config",
                        format!("http.trusted_proxies: `{s}` is not an address or a network like 10.0.0.0/8"),
                    )
                })
            })
            .collect::<Result<_>>()?;
        Ok(TrustedProxies(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // A hop okno cannot read ends the walk: the last trusted address stands.
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// An address as proxies write it: `192.0.2.7`, `2001:db8::1`, with or without a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip())).map(|ip| ip.to_canonical())
}

/// The client's address, for limits and logs.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> std::result::Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Err(ApiError(Error::internal("the connection's address is unknown")));
        };
        Ok(ClientAddr(state.ui.sessions.proxies.client(peer.ip(), &parts.headers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_direct_peer_cannot_choose_its_address() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        assert_eq!(proxies.client(ip("203.0.113.5"), &xff("198.51.100.1")), ip("203.0.113.5"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.7".into()]).unwrap();
        // The client wrote the first entry itself; the proxies appended the rest.
        let h = xff("1.1.1.1, 198.51.100.9, 192.0.2.7");
        assert_eq!(proxies.client(ip("10.0.0.2"), &h), ip("198.51.100.9"));
        assert_eq!(proxies.client(ip("10.0.0.2"), &xff("[2001:db8::1]:4711")), ip("2001:db8::1"));
        assert_eq!(proxies.client(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"));
        assert_eq!(proxies.client(ip("::ffff:10.0.0.2"), &xff("198.51.100.9")), ip("198.51.100.9"));
    }

    #[test]
    fn a_wrong_entry_is_a_clear_error() {
        let err = TrustedProxies::parse(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(err.message.contains("10.0.0.0/33"), "{}", err.message);
    }
}
