//! Wake-ups across processes: several okno processes on one PostgreSQL database tell each
//! other at once that there is something new, instead of finding it at their next poll.
//!
//! ```text
//!  process A: new work (a job queued, a message recorded) ──► NOTIFY okno_changes, 'A'
//!                                                                   │ (at commit, to every listener)
//!  process B: LISTEN okno_changes ◄─────────────────────────────────┘
//!                 └─► wake B's workers and B's live pages (not for B's own announcements)
//! ```
//!
//! Announcements carry no data: whoever hears one looks in the store as it would after a poll,
//! so a missed one costs only the poll interval, which stays as the safety net. A listening
//! session that was lost is opened again and reported as one announcement, since some may
//! have been missed meanwhile. SQLite has one process per database: nothing to tell.

use okno_domain::Result;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use crate::error::db;

/// The PostgreSQL channel the announcements go by.
pub(crate) const CHANNEL: &str = "okno_changes";

/// Listens for announcements of processes other than `me`; each reaches the receiver as one
/// `()`, announcements that come while one is waiting folded into it. The listening stops
/// when the receiver is dropped.
pub(crate) async fn listen(url: &str, me: &str) -> Result<mpsc::Receiver<()>> {
    let mut listener = PgListener::connect(url).await.map_err(db)?;
    listener.listen(CHANNEL).await.map_err(db)?;
    let (tx, rx) = mpsc::channel(1);
    let me = me.to_string();
    tokio::spawn(async move {
        loop {
            let heard = tokio::select! {
                _ = tx.closed() => return,
                heard = listener.try_recv() => heard,
            };
            match heard {
                Ok(Some(n)) if n.payload() == me => continue,
                // Another process's announcement, or the session was lost and opened again
                // (`None`): what came meanwhile is unknown, so look.
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "listening for other processes' wake-ups failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
            // A full channel already holds a wake-up: this one is folded into it.
            let _ = tx.try_send(());
        }
    });
    Ok(rx)
}
