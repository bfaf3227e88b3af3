//! Live updates: one Server-Sent Events stream per open page.
//!
//! ```text
//!  every second: read the newest conversations (and the open one)
//!      ├─ anything changed in the list     → event `inbox`         (the page refetches its list)
//!      ├─ the open conversation changed    → event `conversation`  (the page refetches the thread)
//!      └─ a new inbound message in a conversation of mine or nobody's
//!                                          → event `notify` {title, body, url} (pop-up + sound)
//! ```
//!
//! It reads the store rather than listening to this process, so a message recorded by any
//! process sharing the database shows up, and a browser that reconnects misses nothing: the
//! page it refetches is the truth.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use okno_domain::model::{Conversation, Direction, Permission};
use okno_store::{ConversationFilter, PageRequest};
use serde::Deserialize;
use serde_json::json;

use super::Session;
use crate::AppState;

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    /// The conversation the page shows, if any.
    pub conv: Option<String>,
}

struct Watch {
    state: AppState,
    me: String,
    conv: Option<String>,
    /// Conversation id → (updated_at, unread, status, assignee, last message id and status).
    list: Option<HashMap<String, String>>,
    /// Last inbound message id seen per conversation.
    last_in: HashMap<String, String>,
    open: Option<String>,
    started: bool,
    queue: std::collections::VecDeque<Event>,
}

fn fingerprint(c: &Conversation) -> String {
    let last = c.last_message.as_ref();
    format!(
        "{}|{}|{}|{:?}|{:?}|{}|{}",
        c.updated_at,
        c.unread,
        c.status,
        c.assignee,
        c.labels,
        last.map(|m| m.id.as_str()).unwrap_or(""),
        last.map(|m| m.status.as_str()).unwrap_or("")
    )
}

impl Watch {
    async fn step(&mut self) -> okno_domain::Result<()> {
        let store = &self.state.engine.store;
        let page = store.list_conversations(ConversationFilter::default(), PageRequest::new(Some(100), None)).await?;
        let now: HashMap<String, String> = page.items.iter().map(|c| (c.id.clone(), fingerprint(c))).collect();
        let first = self.list.is_none();
        if self.list.as_ref().is_some_and(|before| *before != now) {
            self.queue.push_back(Event::default().event("inbox").data("changed"));
        }
        for c in &page.items {
            let Some(m) = c.last_message.as_ref().filter(|m| m.direction == Direction::In) else { continue };
            let before = self.last_in.insert(c.id.clone(), m.id.clone());
            let new = !first && before.as_deref() != Some(m.id.as_str());
            let for_me = c.assignee.is_none() || c.assignee.as_deref() == Some(self.me.as_str());
            if new && for_me {
                let name = super::inbox::display_name(&c.contact, okno_domain::model::Role::Restricted);
                let body: String = m.text.clone().unwrap_or_default().chars().take(120).collect();
                let data =
                    json!({"title": name, "body": body, "url": format!("/ui/conversations/{}", c.id), "conv": c.id});
                self.queue.push_back(Event::default().event("notify").data(data.to_string()));
            }
        }
        self.list = Some(now);
        if let Some(id) = self.conv.clone() {
            let c = match store.get_conversation(&id).await {
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
                self.queue.push_back(Event::default().event("conversation").data(id.clone()));
            }
            self.open = Some(fp);
        }
        Ok(())
    }
}

/// `GET /ui/events?conv=ID`
pub async fn events(State(state): State<AppState>, s: Session, Query(q): Query<LiveQuery>) -> Response {
    if !s.role().allows(Permission::Read) {
        return axum::http::StatusCode::FORBIDDEN.into_response();
    }
    let stop = state.shutdown.clone();
    let watch = Watch {
        state,
        me: s.operator.login.clone(),
        conv: q.conv.filter(|c| !c.is_empty()),
        list: None,
        last_in: HashMap::new(),
        open: None,
        started: false,
        queue: Default::default(),
    };
    Sse::new(stream(watch, stop)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

fn stream(watch: Watch, stop: tokio_util::sync::CancellationToken) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(Some(watch), move |w| {
        let stop = stop.clone();
        async move {
            let mut w = w?;
            if !w.started {
                w.started = true;
                // The first reading is the baseline; tell the page the stream is up.
                if let Err(e) = w.step().await {
                    tracing::warn!(error = %e.message, "live updates: the first reading failed");
                }
                return Some((Ok(Event::default().event("ready").data("ok").retry(Duration::from_secs(2))), Some(w)));
            }
            loop {
                if let Some(ev) = w.queue.pop_front() {
                    return Some((Ok(ev), Some(w)));
                }
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                if let Err(e) = w.step().await {
                    // A busy or unreachable store: try again next second; the page keeps what it shows.
                    tracing::warn!(error = %e.message, "live updates: reading the store failed");
                }
            }
        }
    })
}
