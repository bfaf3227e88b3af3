//! Live updates: one Server-Sent Events stream per open page, fed by one reader per process.
//!
//! ```text
//!  feed (one task per process, started by the first stream):
//!      when something may have changed (here, or in another process on the same PostgreSQL),
//!      else every second: read the newest 100 conversations → publish if anything changed
//!  each stream:
//!      on a new snapshot ├─ the list changed                → event `inbox` (the page refetches its list)
//!                        └─ a new inbound message in a conversation of mine or nobody's
//!                                                           → event `notify` {title, body, url}
//!      every second, or when its row in the list changed, if the page shows a conversation: read it
//!                        └─ it changed                      → event `conversation` (refetch the thread
//!                                                             and the contact panel)
//!      every second: is the session still valid?  no (logged out, disabled, new password) → end
//! ```
//!
//! Reading the store rather than listening inside this process means a message recorded by
//! any process sharing the database shows up, and a browser that reconnects misses nothing:
//! the fragment it refetches is the truth. However many operators watch, the list costs one
//! read per change (at most five a second) or per quiet second, per process.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use okno_domain::ids::{ConversationId, MessageId};
use okno_domain::model::{Conversation, Direction, Permission};
use okno_store::{ConversationFilter, PageRequest};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use super::Session;
use crate::AppState;

/// The newest conversations, once read (`None` until the first reading).
pub type Snapshot = Option<Arc<Vec<Conversation>>>;

/// Starts the process's reader of the conversation list (once) and hands out its snapshots.
pub struct Feed {
    rx: std::sync::OnceLock<watch::Receiver<Snapshot>>,
}

impl Feed {
    pub fn new() -> Feed {
        Feed { rx: std::sync::OnceLock::new() }
    }

    fn subscribe(&self, state: &AppState) -> watch::Receiver<Snapshot> {
        self.rx
            .get_or_init(|| {
                let (tx, rx) = watch::channel(None);
                tokio::spawn(read_list(state.clone(), tx));
                rx
            })
            .clone()
    }
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

async fn read_list(state: AppState, tx: watch::Sender<Snapshot>) {
    let store = state.engine.store.clone();
    let mut last: Option<Vec<String>> = None;
    loop {
        match store.list_conversations(ConversationFilter::default(), PageRequest::new(Some(100), None)).await {
            Ok(page) => {
                let prints: Vec<String> = page.items.iter().map(fingerprint).collect();
                if last.as_ref() != Some(&prints) {
                    last = Some(prints);
                    tx.send_replace(Some(Arc::new(page.items)));
                }
            }
            // A busy or unreachable store: try again next second; pages keep what they show.
            Err(e) => tracing::warn!(error = %e.message, "live updates: reading the conversations failed"),
        }
        // Next when something may have changed (here or in another process), at the latest in
        // a second; never more often than every `READ_GAP`, however busy the inbox.
        let gap = tokio::time::sleep(READ_GAP);
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = state.engine.changed() => gap.await,
        }
    }
}

/// The shortest time between two readings of the list.
const READ_GAP: Duration = Duration::from_millis(200);

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    /// The conversation the page shows, if any.
    pub conv: Option<String>,
}

struct Watch {
    state: AppState,
    feed: watch::Receiver<Snapshot>,
    me: String,
    /// The page's language, for what a pop-up says.
    lang: super::i18n::Lang,
    /// The store's key of the page's session, checked every second: a session ended anywhere
    /// ends its streams within a second.
    session: String,
    conv: Option<ConversationId>,
    /// Fingerprints of the list last seen.
    list: Option<Vec<String>>,
    /// Last inbound message id seen per conversation.
    last_in: HashMap<ConversationId, MessageId>,
    open: Option<String>,
    /// When to read the open conversation again.
    tick: tokio::time::Interval,
    /// The open conversation's row in the list changed: read it now, not at the next tick.
    recheck: bool,
    queue: VecDeque<Event>,
}

/// What the list row and the open conversation show, in a string that changes when they do
/// (the contact too: its name is the row's title, its channels are in the contact panel).
fn fingerprint(c: &Conversation) -> String {
    let last = c.last_message.as_ref();
    let reach: String = c
        .contact
        .identities
        .iter()
        .map(|i| format!("{}:{}{}", i.channel_id, u8::from(i.blocked), u8::from(i.opted_out)))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "{}|{}|{}|{}|{}|{:?}|{:?}|{}|{}|{}|{}",
        c.id,
        c.last_message_at,
        c.updated_at,
        c.unread,
        c.status,
        c.assignee,
        c.labels,
        last.map(|m| m.id.as_str()).unwrap_or(""),
        last.map(|m| m.status.as_str()).unwrap_or(""),
        c.contact.updated_at,
        reach
    )
}

impl Watch {
    /// Compares a new snapshot of the list with the last one seen.
    fn on_list(&mut self, items: &[Conversation]) {
        let prints: Vec<String> = items.iter().map(fingerprint).collect();
        let first = self.list.is_none();
        if self.list.as_ref().is_some_and(|before| *before != prints) {
            self.queue.push_back(Event::default().event("inbox").data("changed"));
        }
        if let Some(open) = &self.open {
            self.recheck |= items.iter().any(|c| Some(&c.id) == self.conv.as_ref() && fingerprint(c) != *open);
        }
        for c in items {
            let Some(m) = c.last_message.as_ref().filter(|m| m.direction == Direction::In) else { continue };
            let before = self.last_in.insert(c.id.clone(), m.id.clone());
            let new = !first && before.as_ref() != Some(&m.id);
            let for_me = c.assignee.is_none() || c.assignee.as_deref() == Some(self.me.as_str());
            if new && for_me {
                let name = super::inbox::display_name(&c.contact, okno_domain::model::Role::Restricted);
                // A press has no text: it says what was pressed.
                let text = m.text.clone().filter(|t| !t.is_empty()).or_else(|| super::authors::pressed(self.lang, m));
                let body: String = text.unwrap_or_default().chars().take(120).collect();
                let data =
                    json!({"title": name, "body": body, "url": format!("/ui/conversations/{}", c.id), "conv": c.id});
                self.queue.push_back(Event::default().event("notify").data(data.to_string()));
            }
        }
        self.list = Some(prints);
    }

    /// Whether the page's session is still valid (a store that does not answer keeps it: the
    /// next second asks again).
    async fn session_valid(&self) -> bool {
        match self.state.engine.store.session_operator(&self.session).await {
            Ok(found) => found.is_some(),
            Err(e) => {
                tracing::warn!(error = %e.message, "live updates: checking the session failed");
                true
            }
        }
    }

    /// Reads the open conversation and says whether it changed.
    async fn check_open(&mut self) -> okno_domain::Result<()> {
        let Some(id) = self.conv.clone() else { return Ok(()) };
        let c = match self.state.engine.store.get_conversation(&id).await {
            Ok(c) => c,
            Err(e) if e.is_not_found() => {
                // Merged away or removed: the page's refresh shows that; stop watching it.
                self.conv = None;
                self.queue.push_back(Event::default().event("conversation").data(id));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let fp = fingerprint(&c);
        if self.open.as_ref().is_some_and(|before| *before != fp) {
            self.queue.push_back(Event::default().event("conversation").data(id));
        }
        self.open = Some(fp);
        Ok(())
    }

    fn take_snapshot(&mut self) {
        let snapshot = self.feed.borrow_and_update().clone();
        if let Some(items) = snapshot {
            self.on_list(&items);
        }
    }
}

/// `GET /ui/live?conv=ID`: the live stream a page opens
pub async fn events(State(state): State<AppState>, s: Session, Query(q): Query<LiveQuery>) -> Response {
    if !s.role().allows(Permission::Read) {
        return axum::http::StatusCode::FORBIDDEN.into_response();
    }
    let feed = state.ui.feed.subscribe(&state);
    let stop = state.shutdown.clone();
    let watch = Watch {
        state,
        feed,
        me: s.operator.login.clone(),
        lang: s.lang,
        session: s.hash(),
        conv: q.conv.filter(|c| !c.is_empty()).map(ConversationId::from),
        list: None,
        last_in: HashMap::new(),
        open: None,
        tick: {
            let mut t = tokio::time::interval(Duration::from_secs(1));
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        },
        recheck: false,
        queue: VecDeque::new(),
    };
    Sse::new(stream(watch, stop)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

fn stream(watch: Watch, stop: tokio_util::sync::CancellationToken) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((watch, false), move |(mut w, started)| {
        let stop = stop.clone();
        async move {
            if !started {
                // The first readings are the baseline; tell the page the stream is up.
                w.take_snapshot();
                if let Err(e) = w.check_open().await {
                    tracing::warn!(error = %e.message, "live updates: reading the conversation failed");
                }
                let ready = Event::default().event("ready").data("ok").retry(Duration::from_secs(2));
                return Some((Ok(ready), (w, true)));
            }
            loop {
                if let Some(ev) = w.queue.pop_front() {
                    return Some((Ok(ev), (w, true)));
                }
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    changed = w.feed.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                        w.take_snapshot();
                        if std::mem::take(&mut w.recheck) {
                            if let Err(e) = w.check_open().await {
                                tracing::warn!(error = %e.message, "live updates: reading the conversation failed");
                            }
                        }
                    }
                    _ = w.tick.tick() => {
                        if !w.session_valid().await {
                            return None;
                        }
                        if let Err(e) = w.check_open().await {
                            tracing::warn!(error = %e.message, "live updates: reading the conversation failed");
                        }
                    }
                }
            }
        }
    })
}
