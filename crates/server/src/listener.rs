//! The HTTP server's accept loop. Each connection is served by hyper with a deadline on the
//! request's headers and one on its body, so a client that trickles bytes (a header line, or a
//! body byte, every few seconds) is disconnected instead of holding a connection for ever.
//!
//! ```text
//! accept ─▶ connection (HTTP/1.1, header deadline) ─▶ request body behind a deadline ─▶ router
//!    ▲                                                            │
//!    └─────── until stopped; then open connections finish their requests and close
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a client may take to send a request.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// For the request line and headers.
    pub header_timeout: Duration,
    /// For the body, unless it keeps arriving at `body_min_bytes_per_sec`.
    pub body_timeout: Duration,
    pub body_min_bytes_per_sec: u64,
}

impl ReadLimits {
    pub fn of(s: &crate::settings::Http) -> ReadLimits {
        ReadLimits {
            header_timeout: Duration::from_secs(s.header_timeout_secs),
            body_timeout: Duration::from_secs(s.body_timeout_secs),
            body_min_bytes_per_sec: s.body_min_bytes_per_sec,
        }
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then waits for open connections to
/// finish the requests they are in.
pub async fn serve(listener: TcpListener, app: Router, limits: ReadLimits, stop: CancellationToken) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let req = req.map(|body| Body::new(TimedBody::new(Body::new(body), limits)));
            app.clone().oneshot(req)
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "a connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A request body that fails once its client is too slow: after `body_timeout`, unless what
/// has arrived averages `body_min_bytes_per_sec` since the request began.
struct TimedBody {
    inner: Body,
    started: Instant,
    received: u64,
    limits: ReadLimits,
    deadline: Pin<Box<Sleep>>,
}

impl TimedBody {
    fn new(inner: Body, limits: ReadLimits) -> TimedBody {
        let started = Instant::now();
        TimedBody { inner, started, received: 0, limits, deadline: Box::pin(tokio::time::sleep(limits.body_timeout)) }
    }

    /// When the body must be complete, given what has arrived.
    fn due(&self) -> Instant {
        let earned = match self.limits.body_min_bytes_per_sec {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(self.received as f64 / rate as f64),
        };
        self.started + self.limits.body_timeout.max(earned)
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => loop {
                if self.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let due = self.due();
                if Instant::now() >= due {
                    tracing::info!(
                        received = self.received,
                        "a request body arrived too slowly: the connection is closed"
                    );
                    return Poll::Ready(Some(Err(axum::Error::new("the request body arrived too slowly"))));
                }
                // Bytes that arrived meanwhile earned more time: wait until then.
                self.deadline.as_mut().reset(due);
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
