//! Subscriptions to the portal's events (`event.bind`, `event.unbind`, `event.get`; an
//! application's context only) and the offline queue (`event.offline.*`; an administrator's).
//!
//! ```text
//! event.offline.get clear=0 ─► {process_id, events} (hidden from other readers)
//!   events handled ─► event.offline.clear process_id   (only that reservation goes)
//!   an event failed ─► event.offline.error process_id message_id[]
//!   okno stopped midway ─► event.offline.get process_id ─► the same reservation again
//! ```
//!
//! The queue keeps only the latest state per object, so an offline event says *what* changed;
//! okno reads the record itself. With the client's source key (`auth_connector`) the binding
//! and the reads use okno's own queue, which okno's own writes do not fill.

use serde_json::{json, Value};

use crate::client::{B24Client, B24Error};
use crate::wire::{flag, int, int_at, items, text, text_at};

/// A subscription as `event.get` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub event: String,
    /// The address posted to; empty for an offline subscription.
    pub handler: String,
    pub auth_type: i64,
    pub offline: bool,
}

/// What to take from the offline queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineQuery {
    /// At most this many records (the portal's default is 50).
    pub limit: u32,
    /// Reserve the records under a process id until cleared (`clear=0`) instead of taking them
    /// away at once.
    pub reserve: bool,
    /// Read again the records of this reservation.
    pub process_id: Option<String>,
    /// Include records marked failed.
    pub with_errors: bool,
}

impl Default for OfflineQuery {
    fn default() -> Self {
        OfflineQuery { limit: 50, reserve: true, process_id: None, with_errors: false }
    }
}

/// A record of the offline queue.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineEvent {
    pub id: i64,
    pub message_id: String,
    /// `ONCRMDEALUPDATE`, …
    pub event: String,
    pub timestamp: Option<String>,
    /// `EVENT_DATA` (`{"FIELDS":{"ID":…}}` for CRM records; `false` when none).
    pub data: Value,
    /// `EVENT_DATA.FIELDS.ID`, when there.
    pub object_id: Option<i64>,
}

/// What `event.offline.get` gave.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineBatch {
    /// The reservation to clear (none when the records were taken away at once).
    pub process_id: Option<String>,
    pub events: Vec<OfflineEvent>,
}

impl B24Client {
    /// Subscribes `handler` to `event`: the portal will post it there (once, no retry).
    pub async fn bind(&self, event: &str, handler: &str) -> Result<(), B24Error> {
        self.call("event.bind", json!({"event": event, "handler": handler})).await.map(|_| ())
    }

    /// Queues `event` in okno's offline queue (the source key's, when the client has one).
    pub async fn bind_offline(&self, event: &str) -> Result<(), B24Error> {
        let params = self.as_source(json!({"event": event, "event_type": "offline"}));
        self.call("event.bind", params).await.map(|_| ())
    }

    /// Unsubscribes `handler` from `event`; returns how many subscriptions went.
    pub async fn unbind(&self, event: &str, handler: &str) -> Result<u64, B24Error> {
        let r = self.call("event.unbind", json!({"event": event, "handler": handler})).await?;
        Ok(r.result.get("count").and_then(int).unwrap_or(0).max(0) as u64)
    }

    /// Stops queueing `event` offline; returns how many subscriptions went.
    pub async fn unbind_offline(&self, event: &str) -> Result<u64, B24Error> {
        let r = self.call("event.unbind", json!({"event": event, "event_type": "offline"})).await?;
        Ok(r.result.get("count").and_then(int).unwrap_or(0).max(0) as u64)
    }

    /// The application's subscriptions (`event.get`).
    pub async fn handlers(&self) -> Result<Vec<Handler>, B24Error> {
        let r = self.call("event.get", json!({})).await?;
        Ok(items(&r.result)
            .into_iter()
            .map(|h| Handler {
                event: text_at(h, "event").unwrap_or_default(),
                handler: text_at(h, "handler").unwrap_or_default(),
                auth_type: int_at(h, "auth_type").unwrap_or(0),
                offline: h.get("offline").is_some_and(flag),
            })
            .collect())
    }

    /// Takes records from okno's offline queue (`event.offline.get`).
    pub async fn offline_events(&self, query: &OfflineQuery) -> Result<OfflineBatch, B24Error> {
        let mut params = json!({"limit": query.limit.max(1), "clear": i32::from(!query.reserve),
                                "error": i32::from(query.with_errors)});
        if let Some(p) = &query.process_id {
            params["process_id"] = json!(p);
        }
        let r = self.call("event.offline.get", self.as_source(params)).await?;
        let events = r
            .result
            .get("events")
            .map(items)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| {
                let data = e.get("EVENT_DATA").cloned().unwrap_or(Value::Bool(false));
                Some(OfflineEvent {
                    id: int_at(e, "ID")?,
                    message_id: e.get("MESSAGE_ID").and_then(text).unwrap_or_default(),
                    event: text_at(e, "EVENT_NAME")?.to_ascii_uppercase(),
                    timestamp: text_at(e, "TIMESTAMP_X"),
                    object_id: data.pointer("/FIELDS/ID").and_then(int),
                    data,
                })
            })
            .collect();
        Ok(OfflineBatch { process_id: r.result.get("process_id").and_then(text).filter(|p| !p.is_empty()), events })
    }

    /// Confirms a reservation handled: its records (all, or those `message_ids` name) go.
    pub async fn clear_offline(&self, process_id: &str, message_ids: &[String]) -> Result<(), B24Error> {
        let mut params = json!({ "process_id": process_id });
        if !message_ids.is_empty() {
            params["message_id"] = json!(message_ids);
        }
        self.call("event.offline.clear", self.as_source(params)).await.map(|_| ())
    }

    /// Marks records of a reservation as failed (`event.offline.error`).
    pub async fn fail_offline(&self, process_id: &str, message_ids: &[String]) -> Result<(), B24Error> {
        let params = json!({"process_id": process_id, "message_id": message_ids});
        self.call("event.offline.error", self.as_source(params)).await.map(|_| ())
    }
}
