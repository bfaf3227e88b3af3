//! Taking back the work of processes that are gone: at start (a restart after a crash finds
//! its predecessor's leases) and then every [`REAP_EVERY`] (another okno on the same
//! PostgreSQL was killed). How a process is known to be alive: `okno_store::liveness`.

use std::sync::Arc;
use std::time::Duration;

use okno_domain::Result;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// How often other processes are looked at. A lock test per owner holding leases; a
/// process's work resumes within this of its death.
pub const REAP_EVERY: Duration = Duration::from_secs(1);

impl Engine {
    /// Shows this process alive for the store's life, then takes back at once what processes
    /// that are gone left leased. On SQLite, fails when another okno runs on the same file.
    pub async fn come_alive(&self) -> Result<()> {
        self.store.hold_liveness(&self.owner).await?;
        self.reap().await;
        Ok(())
    }

    /// Looks for processes that are gone every [`REAP_EVERY`] until `shutdown`.
    pub async fn run_reaper(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REAP_EVERY) => self.reap().await,
            }
        }
    }

    async fn reap(&self) {
        match self.store.reclaim_dead(&self.owner).await {
            Ok(dead) if !dead.is_empty() => {
                // Their jobs are due now and their bots unpolled: look at once.
                self.wake_bulk();
                self.pollers_wake.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.message, "looking for processes that are gone failed"),
        }
    }
}
