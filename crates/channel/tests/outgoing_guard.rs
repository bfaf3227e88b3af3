//! Attacks on okno's outgoing requests (webhook subscriptions, a webhook channel's site,
//! attachment downloads — every URL a user or a sender supplies): a redirect, a host name or
//! another spelling of an address must not lead okno to a private address it was not allowed
//! to call. Two local servers stand in: one okno may call (an exception, as the tests' sinks
//! are), one it must never reach (the company's internal service).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use okno_channel::http::SafeClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers every request with `response` and counts the requests.
async fn server(response: impl Fn(SocketAddr) -> String + Send + Sync + 'static) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = response(addr);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (addr, hits)
}

fn redirect_to(location: String) -> impl Fn(SocketAddr) -> String + Send + Sync + 'static {
    move |_| format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

fn ok(_: SocketAddr) -> String {
    "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret".to_string()
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_redirect_or_a_name_never_leads_to_a_private_address() {
    let (internal, internal_hits) = server(ok).await;
    let port = internal.port();
    // Where an allowed site redirects to: the internal service by its address, by a name that
    // resolves to it, and by other spellings of the same address.
    for location in [
        format!("http://127.0.0.1:{port}/admin"),
        format!("http://localhost:{port}/admin"),
        format!("http://2130706433:{port}/admin"),
        format!("http://0x7f.0.0.1:{port}/admin"),
        format!("http://[::ffff:127.0.0.1]:{port}/admin"),
    ] {
        let (site, site_hits) = server(redirect_to(location.clone())).await;
        let client = SafeClient::with_exceptions(false, vec![site], WAIT).unwrap();
        let sent = client.get(&format!("http://{site}/hook")).unwrap().send().await;
        assert!(sent.is_err(), "the redirect to {location} was followed: {sent:?}");
        assert_eq!(site_hits.load(Ordering::SeqCst), 1, "the allowed site itself was called");

        // Allowed private targets (a company's own network, by its administrator's choice):
        // the same redirect is followed — the servers work, the guard is what refused.
        let open = SafeClient::new(true, WAIT).unwrap();
        let body = open.get(&format!("http://{site}/hook")).unwrap().send().await.unwrap().text().await.unwrap();
        assert_eq!(body, "secret", "{location}");
    }
    assert_eq!(internal_hits.load(Ordering::SeqCst), 5, "reached only by the client allowed to");
}

#[tokio::test]
async fn a_private_address_in_any_spelling_is_refused_before_any_request() {
    let client = SafeClient::new(false, WAIT).unwrap();
    for url in [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.0.1/",
        "http://[fd00::1]/",
    ] {
        let refused = client.check_url(url).unwrap_err();
        assert_eq!(refused.code, "private_target", "{url}: {refused:?}");
    }
    for url in ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://example.com/", "http://", "javascript:alert(1)"]
    {
        let refused = client.check_url(url).unwrap_err();
        assert_eq!(refused.code, "invalid_url", "{url}: {refused:?}");
    }
}

#[tokio::test]
async fn a_name_is_checked_where_it_resolves_and_an_exception_is_its_exact_address_only() {
    let (internal, hits) = server(ok).await;
    // A name passes the first look (names can be anything) and is refused where it resolves,
    // before a connection: what DNS rebinding would play on. The name: one this machine's
    // /etc/hosts gives a loopback address (its host name, usually).
    let client = SafeClient::new(false, WAIT).unwrap();
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let name = hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.first().is_some_and(|a| a.starts_with("127.") || *a == "::1"))
        .flat_map(|w| w.into_iter().skip(1).map(str::to_string).collect::<Vec<_>>())
        .find(|n| !n.eq_ignore_ascii_case("localhost") && !n.ends_with(".localhost") && !n.starts_with("ip6-"));
    let url = match &name {
        Some(name) => format!("http://{name}:{}/", internal.port()),
        None => {
            eprintln!("no name for a loopback address in /etc/hosts: the resolver's check is not tried here");
            format!("http://localhost:{}/", internal.port())
        }
    };
    if name.is_some() {
        client.check_url(&url).unwrap();
        let err = client.get(&url).unwrap().send().await.unwrap_err();
        assert!(format!("{err:?}").contains("private addresses"), "{err:?}");
        let open = SafeClient::new(true, WAIT).unwrap();
        assert_eq!(open.get(&url).unwrap().send().await.unwrap().status(), 200, "the name does lead there");
        hits.store(0, Ordering::SeqCst);
    }
    // An exception lets through its literal address and port, not a name for it.
    let excepted = SafeClient::with_exceptions(false, vec![internal], WAIT).unwrap();
    let refused = match excepted.get(&url) {
        Err(_) => true,
        Ok(request) => request.send().await.is_err(),
    };
    assert!(refused, "a name for the excepted address");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let by_address = excepted.get(&format!("http://{internal}/")).unwrap().send().await.unwrap();
    assert_eq!(by_address.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
