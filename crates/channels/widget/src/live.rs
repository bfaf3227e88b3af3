//! Waking visitors' live streams inside one okno process.
//!
//! A visitor's stream reads the store: what it shows is what okno keeps, so a reconnect misses
//! nothing and a message sent by another okno process on the same PostgreSQL still arrives
//! (the stream also reads on its own every few seconds). This hub only makes it read at once:
//! the adapter rings the visitor's bell after a send, the visitor API after the visitor wrote
//! (their other tabs), and "typing…" travels through it alone (it is never stored).
//!
//! ```text
//!  Adapter::send ──ring(channel, visitor, Message)──► bell ──► each stream of the visitor: read the store
//!  Adapter::chat_action ──ring(…, Typing)──────────► bell ──► each stream: event `typing`
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use okno_channel::SendError;
use okno_domain::model::Message;
use tokio::sync::broadcast;

/// What a visitor's stream is told.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A message to them was sent: read the store.
    Message(Arc<Message>),
    /// The visitor wrote (in another tab, perhaps): read the store.
    Stored,
    /// An operator is typing.
    Typing,
}

/// Where the widget's adapter delivers: the process's [`Live`] hub in okno, a recording one
/// in the conformance suite.
#[async_trait]
pub trait Deliver: Send + Sync + 'static {
    /// Rings the streams of `visitor` on `channel`.
    async fn ring(&self, channel: &str, visitor: &str, notice: Notice) -> Result<(), SendError>;
}

/// The process's bells, one per visitor with a stream open.
#[derive(Default)]
pub struct Live {
    bells: Mutex<HashMap<(String, String), broadcast::Sender<Notice>>>,
}

/// The hub every widget channel of this process shares.
pub fn hub() -> Arc<Live> {
    static HUB: OnceLock<Arc<Live>> = OnceLock::new();
    HUB.get_or_init(|| Arc::new(Live::default())).clone()
}

impl Live {
    /// A receiver of `visitor`'s notices. Bells nobody listens to any more are dropped here.
    pub fn subscribe(&self, channel: &str, visitor: &str) -> broadcast::Receiver<Notice> {
        let mut bells = self.bells.lock().unwrap_or_else(|p| p.into_inner());
        bells.retain(|_, tx| tx.receiver_count() > 0);
        bells.entry((channel.to_string(), visitor.to_string())).or_insert_with(|| broadcast::channel(64).0).subscribe()
    }

    /// Tells `visitor`'s streams; nobody listening is no error (the visitor reads the store
    /// when they come back).
    pub fn notify(&self, channel: &str, visitor: &str, notice: Notice) {
        let bells = self.bells.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = bells.get(&(channel.to_string(), visitor.to_string())) {
            let _ = tx.send(notice);
        }
    }

    /// How many visitors have a stream open in this process.
    pub fn listening(&self) -> usize {
        let bells = self.bells.lock().unwrap_or_else(|p| p.into_inner());
        bells.values().filter(|tx| tx.receiver_count() > 0).count()
    }
}

#[async_trait]
impl Deliver for Live {
    async fn ring(&self, channel: &str, visitor: &str, notice: Notice) -> Result<(), SendError> {
        self.notify(channel, visitor, notice);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_visitors_streams_are_rung_and_nobody_elses() {
        let live = Live::default();
        let mut a1 = live.subscribe("ch", "wa");
        let mut a2 = live.subscribe("ch", "wa");
        let mut b = live.subscribe("ch", "wb");
        live.notify("ch", "wa", Notice::Typing);
        assert!(matches!(a1.recv().await, Ok(Notice::Typing)));
        assert!(matches!(a2.recv().await, Ok(Notice::Typing)));
        assert!(b.try_recv().is_err(), "another visitor is not rung");
        live.notify("other", "wa", Notice::Typing);
        assert!(a1.try_recv().is_err(), "another channel's visitor of the same id is not rung");
        drop((a1, a2));
        assert_eq!(live.listening(), 1);
        let _c = live.subscribe("ch", "wc");
        assert_eq!(live.bells.lock().unwrap().len(), 2, "the bell nobody listened to was dropped");
    }
}
