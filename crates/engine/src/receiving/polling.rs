//! Polling, one task per polled channel, held by one process at a time through a lease:
//! ```text
//!   ┌─► take/renew the lease ─(held elsewhere)─► stop; the supervisor looks again
//!   │   poll(cursor) ─► for each event: handle (stored durably), then cursor = its cursor (stored)
//!   │   refused (another poller, a webhook, bad credentials) ─► channel `error` with the
//!   │                                                          platform's words, slow retry
//!   └── channel deleted or no longer polled ─► release the lease, stop
//! ```
//! A crash between handling an event and storing the cursor makes the platform send the event
//! again; handling is idempotent, so nothing is lost or doubled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use okno_channel::PollError;
use okno_domain::ids::ChannelId;
use okno_domain::model::Channel;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// How long a poller's lease lasts; it is renewed on every poll.
const POLL_LEASE_MS: i64 = 90_000;

impl Engine {
    pub(crate) fn wake_pollers(&self) {
        self.pollers_wake.notify_one();
    }

    /// Keeps one poller running per channel its platform polls (each takes the channel's lease
    /// before it polls, so across processes exactly one polls an account).
    pub async fn run_pollers(self: Arc<Self>, shutdown: CancellationToken) {
        let mut running: HashMap<ChannelId, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            match self.store.list_channels().await {
                Ok(channels) => {
                    let wanted: Vec<&Channel> =
                        channels.iter().filter(|c| self.platform(c).is_ok_and(|p| p.polls(c))).collect();
                    running.retain(|id, task| !task.is_finished() && wanted.iter().any(|c| &c.id == id));
                    for ch in wanted {
                        if !running.contains_key(&ch.id) {
                            let engine = self.clone();
                            let id = ch.id.clone();
                            let stop = shutdown.clone();
                            running.insert(
                                ch.id.clone(),
                                tokio::spawn(async move { engine.poll_channel(id, stop).await }),
                            );
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing channels for polling failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.pollers_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(self.cfg.poller_check_ms)) => {}
            }
        }
        for (_, task) in running {
            let _ = task.await;
        }
    }

    async fn poll_channel(self: Arc<Self>, channel_id: ChannelId, shutdown: CancellationToken) {
        let mut backoff = Duration::from_secs(1);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match self.store.take_channel_lease(&channel_id, &self.owner, POLL_LEASE_MS).await {
                Ok(true) => {}
                // Another process polls this channel; the supervisor will look again.
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(channel = %channel_id, error = %e, "taking the polling lease failed");
                    return;
                }
            }
            let channel = match self.store.get_channel(&channel_id).await {
                Ok(c) => c,
                Err(_) => break,
            };
            let Ok(platform) = self.platform(&channel).cloned() else { break };
            if !platform.polls(&channel) {
                break;
            }
            let cursor = match self.store.poll_cursor(&channel_id).await {
                Ok(cursor) => cursor,
                Err(e) => {
                    tracing::warn!(channel = %channel_id, error = %e, "reading the poll cursor failed");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let state = self.channel_state(&channel_id);
            let polled = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = platform.poll(&self.context, &channel, cursor.as_deref(), state.as_ref()) => r,
            };
            match polled {
                Ok(polled) => {
                    backoff = Duration::from_secs(1);
                    if channel.status != "active" {
                        self.set_status(&channel_id, "active", None).await;
                    }
                    // The cursor moves past an event only once it is stored.
                    let mut confirmed = None;
                    for received in polled.items {
                        let next = received.cursor.clone();
                        if let Err(e) = self.handle_received(&channel, received).await {
                            tracing::warn!(channel = %channel_id, error = %e, "handling a polled event failed");
                            tokio::time::sleep(backoff).await;
                            break;
                        }
                        confirmed = next.or(confirmed);
                    }
                    if let Some(next) = confirmed {
                        if let Err(e) = self.store.set_poll_cursor(&channel_id, &next).await {
                            tracing::warn!(channel = %channel_id, error = %e, "storing the poll cursor failed");
                        }
                    }
                }
                Err(e) => {
                    // A poll refused because the channel was switched to its webhook (or
                    // deleted) meanwhile is not the channel's error: the poller just stops.
                    let still_polled = match self.store.get_channel(&channel_id).await {
                        Ok(now) => platform.polls(&now),
                        Err(e) => !e.is_not_found(),
                    };
                    if matches!(e, PollError::Refused(_)) && !still_polled {
                        break;
                    }
                    tracing::warn!(channel = %channel_id, kind = %channel.kind, error = ?e, "polling failed");
                    let wait = match e {
                        PollError::Wait(wait) => wait,
                        PollError::Refused(reason) => {
                            self.set_status(&channel_id, "error", Some(reason)).await;
                            Duration::from_millis(self.cfg.poll_conflict_wait_ms)
                        }
                        PollError::Network(_) => backoff,
                    };
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(wait) => {} }
                }
            }
        }
        let _ = self.store.drop_channel_lease(&channel_id, &self.owner).await;
    }
}
