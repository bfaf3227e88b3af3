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
//! An announcement carries its sender and, for work in the broadcast lane, the word `bulk`
//! (`'A bulk'`): a process whose live workers are all busy has nothing to look for after an
//! announcement of live work, and one without broadcasts need not look in the broadcast lane
//! after every message. Whoever hears one looks in the store as it would after a poll,
//! so a missed one costs only the poll interval, which stays as the safety net. A listening
//! session that was lost is opened again and reported as one announcement, since some may
//! have been missed meanwhile. SQLite has one process per database: nothing to tell.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use okno_domain::Result;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use crate::error::db;

/// The PostgreSQL channel the announcements go by.
pub(crate) const CHANNEL: &str = "okno_changes";

/// What was heard, several announcements folded into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// Some announcement was of broadcast-lane work (or the session was lost, so unknown).
    pub bulk: bool,
}

/// Other processes' announcements as they come.
pub struct Announcements {
    rx: mpsc::Receiver<()>,
    bulk: Arc<AtomicBool>,
}

impl Announcements {
    /// The next announcement (those that came while none was waited for, folded into it);
    /// `None` once the listening has stopped.
    pub async fn recv(&mut self) -> Option<Heard> {
        self.rx.recv().await?;
        Some(Heard { bulk: self.bulk.swap(false, Ordering::AcqRel) })
    }
}

/// The payload of `me`'s announcement.
pub(crate) fn payload(me: &str, bulk: bool) -> String {
    if bulk {
        format!("{me} bulk")
    } else {
        me.to_string()
    }
}

/// Listens for announcements of processes other than `me`. The listening stops when the
/// [`Announcements`] are dropped.
pub(crate) async fn listen(url: &str, me: &str) -> Result<Announcements> {
    let mut listener = PgListener::connect(url).await.map_err(db)?;
    listener.listen(CHANNEL).await.map_err(db)?;
    let (tx, rx) = mpsc::channel(1);
    let bulk = Arc::new(AtomicBool::new(false));
    let flag = bulk.clone();
    let me = me.to_string();
    tokio::spawn(async move {
        loop {
            let heard = tokio::select! {
                _ = tx.closed() => return,
                heard = listener.try_recv() => heard,
            };
            let is_bulk = match heard {
                Ok(Some(n)) => {
                    let (from, what) = n.payload().split_once(' ').unwrap_or((n.payload(), ""));
                    if from == me {
                        continue;
                    }
                    what == "bulk"
                }
                // The session was lost and opened again: what came meanwhile is unknown, so look
                // everywhere.
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "listening for other processes' wake-ups failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    true
                }
            };
            if is_bulk {
                flag.store(true, Ordering::Release);
            }
            // A full channel already holds a wake-up: this one is folded into it.
            let _ = tx.try_send(());
        }
    });
    Ok(Announcements { rx, bulk })
}
