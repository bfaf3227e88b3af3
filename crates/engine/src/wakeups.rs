//! Wake-ups across processes: what one okno process queues or records, the others on the
//! same PostgreSQL database hear of at once rather than at their next poll.
//!
//! ```text
//!  Engine::wake() ─┬─► this process's workers and live pages
//!                  └─► announce ──► store.announce ══ NOTIFY ══► the other processes
//!  the other processes' announcements ──► this process's workers and live pages
//! ```
//!
//! An announcement says whether it is of broadcast-lane work: only then do the hearers look in
//! that lane. Announcements are folded: however many wake-ups come while one is being sent, one more is
//! sent after it. They are sent only while another process is there to hear them: a process
//! says hello when it starts listening, whoever hears anyone knows it is not alone, and every
//! [`PEERS_EVERY`] the live processes are counted (a process alone on its database sends
//! nothing, so it pays nothing). On SQLite there is one process and nothing is sent. The poll
//! interval stays as the safety net for an announcement lost with a connection.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Engine;

/// How often a process counts the live processes on its database.
pub const PEERS_EVERY: Duration = Duration::from_secs(2);

impl Engine {
    /// Waits until conversations may have changed, in this process or another one (the live
    /// pages' reader looks again then rather than at its next second).
    pub async fn changed(&self) {
        self.changes.notified().await;
    }

    /// Sends this process's announcements and hears the others' until `shutdown`.
    pub async fn run_announcements(self: Arc<Self>, shutdown: CancellationToken) {
        let mut heard = loop {
            match self.store.listen_announcements(&self.owner).await {
                Ok(Some(rx)) => break rx,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e.message, "cannot hear other processes' wake-ups yet; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        };
        // Hello: whoever is there learns that it is not alone, and looks at the queue.
        if let Err(e) = self.store.announce(&self.owner, true).await {
            tracing::warn!(error = %e.message, "telling other processes of this one failed");
        }
        let mut others = true;
        let mut count = tokio::time::interval(PEERS_EVERY);
        count.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.announce.notified(), if others => {
                    let bulk = self.announce_bulk.swap(false, std::sync::atomic::Ordering::AcqRel);
                    if let Err(e) = self.store.announce(&self.owner, bulk).await {
                        tracing::warn!(error = %e.message, "telling other processes of new work failed");
                    }
                }
                got = heard.recv() => {
                    let Some(got) = got else { return };
                    others = true;
                    self.wake.notify_one();
                    if got.bulk {
                        self.wake_bulk.notify_one();
                    }
                    self.changes.notify_one();
                }
                _ = count.tick() => {
                    let alive = self.store.processes_alive().await;
                    // The first count comes after the hello; a count that fails keeps announcing.
                    others = alive.map_or(true, |n| n.is_none_or(|n| n > 1));
                }
            }
        }
    }
}
