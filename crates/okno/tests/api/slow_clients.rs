//! Clients that send a request too slowly — a header line or a body byte now and then — are
//! disconnected, while everyone else is served.

use std::time::{Duration, Instant};

use okno_testkit::{TestApp, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// okno that gives a request's headers and body a second each.
async fn impatient() -> TestApp {
    TestApp::spawn_on(TestDb::sqlite(), |s| {
        s.http.header_timeout_secs = 1;
        s.http.body_timeout_secs = 1;
    })
    .await
}

/// Sends `head`, then `drip` every 200 ms; returns how long okno took to close the connection
/// (`None`: still open after `give_up`) and what it answered.
async fn trickle(app: &TestApp, head: &str, drip: &str, give_up: Duration) -> (Option<Duration>, String) {
    let addr = app.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < give_up {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return (Some(started.elapsed()), String::from_utf8_lossy(&answer).into()),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if stream.write_all(drip.as_bytes()).await.is_err() {
                    return (Some(started.elapsed()), String::from_utf8_lossy(&answer).into());
                }
            }
        }
    }
    (None, String::from_utf8_lossy(&answer).into())
}

#[tokio::test]
async fn slow_headers_and_slow_bodies_are_cut_off_while_others_are_served() {
    let app = impatient().await;
    let give_up = Duration::from_secs(6);
    let headers = trickle(&app, "GET /healthz HTTP/1.1\r\nHost: okno\r\n", "X-Slow: 1\r\n", give_up);
    let login = "POST /login HTTP/1.1\r\nHost: okno\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: 1000\r\n\r\nlogin=";
    let body = trickle(&app, login, "a", give_up);
    // A body the handler never reads: okno answers at once and does not wait for the rest.
    let unread = "POST /api/v1/contacts HTTP/1.1\r\nHost: okno\r\nContent-Length: 1000\r\n\r\n{";
    let unread = trickle(&app, unread, " ", give_up);
    let silent = trickle(&app, "", "", give_up);
    let served = async {
        let started = Instant::now();
        let mut statuses = Vec::new();
        while started.elapsed() < Duration::from_secs(2) {
            statuses.push(app.call("GET", "/api/v1/contacts", None, Some(&app.token)).await.status);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        statuses
    };
    let ((headers, _), (body, body_answer), (unread, _), (silent, _), statuses) =
        tokio::join!(headers, body, unread, silent, served);

    let headers = headers.expect("a client sending a header line every 200 ms is disconnected");
    assert!(headers < Duration::from_millis(2500), "after {headers:?}");
    let body = body.expect("a client sending a body byte every 200 ms is disconnected");
    assert!(body < Duration::from_millis(2500), "after {body:?}");
    assert!(!body_answer.starts_with("HTTP/1.1 2") && !body_answer.starts_with("HTTP/1.1 3"), "{body_answer}");
    let unread = unread.expect("a body nobody reads does not hold the connection");
    assert!(unread < Duration::from_millis(2500), "after {unread:?}");
    let silent = silent.expect("a connection that sends nothing is closed");
    assert!(silent < Duration::from_millis(2500), "after {silent:?}");
    assert!(statuses.len() >= 5 && statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test]
async fn a_body_that_keeps_arriving_at_a_fair_rate_is_served_past_the_timeout() {
    let app = impatient().await;
    let contact = format!("{{\"external_id\": \"slow-1\", \"name\": \"{}\"}}", "я".repeat(1500));
    let chunks: Vec<Vec<u8>> = contact.as_bytes().chunks(300).map(<[u8]>::to_vec).collect();
    let started = Instant::now();
    // About 3 KB over 1.6 s: longer than the timeout, faster than 1 KB/s.
    let stream = futures::StreamExt::then(futures::stream::iter(chunks), |c| async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        Ok::<_, std::io::Error>(c)
    });
    let resp = app
        .http
        .post(format!("{}/api/v1/contacts", app.url))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .header("content-length", contact.len())
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() > Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}
