//! Receiving without a webhook: Avito has no long polling, so okno reads the account's chats
//! (`GET /messenger/v2/…/chats`, the latest updated first) and, for each chat updated since
//! the cursor, its latest messages (`GET /messenger/v3/…/messages/`), every few seconds until a
//! poll's time is up.
//!
//! ```text
//!   cursor {t, ids} ─► chats updated at or after t ─► their messages created at or after t,
//!   minus `ids` (those at t already handed over) and the seller's own ─► oldest first
//!   ─► the next cursor rides on the last one (stored by the engine once they all are)
//! ```
//!
//! Time on Avito is whole seconds, so the cursor keeps the ids already handed over at its
//! second. Reading messages does not mark chats read: operators still see them unread on Avito.
//! The first poll starts at the present; earlier messages stay on Avito.

use std::time::{Duration, Instant};

use okno_channel::{Context, InboundEvent, PollError, Polled, Received};
use okno_domain::model::Channel;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{ApiError, AvitoApi};
use crate::webhook::{self, Hook};

/// How often chats are looked at within one poll.
pub const INTERVAL: Duration = Duration::from_secs(3);
/// Chats Avito lists at most (`offset` ≤ 1000, 100 a page).
const MAX_OFFSET: u32 = 1000;

/// Where polling stands: the second of the latest message handed over, and those of its ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub t: i64,
    #[serde(default)]
    pub ids: Vec<String>,
}

impl Cursor {
    /// A stored cursor; anything unreadable starts at the present.
    pub fn parse(stored: Option<&str>) -> Option<Cursor> {
        serde_json::from_str(stored?).ok()
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn covers(&self, created: i64, id: &str) -> bool {
        created < self.t || (created == self.t && self.ids.iter().any(|i| i == id))
    }
}

fn poll_error(e: ApiError) -> PollError {
    match e {
        ApiError::Avito { status: 429, retry_after, .. } => {
            PollError::Wait(retry_after.unwrap_or(Duration::from_secs(5)).max(Duration::from_secs(1)))
        }
        ApiError::Avito { status: 401..=403, message, .. } => PollError::Refused(format!("Avito refused: {message}")),
        ApiError::Credentials(reason) => PollError::Refused(reason),
        e => PollError::Network(e.to_string()),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// One message found, with its chat.
struct Found {
    created: i64,
    id: String,
    chat: Value,
    message: Value,
}

/// Messages from buyers newer than `since`, oldest first, with their chats.
async fn look(api: &AvitoApi, account: &str, since: &Cursor) -> Result<Vec<Found>, PollError> {
    let mut chats = Vec::new();
    let mut offset = 0;
    loop {
        let page = api.chats(offset).await.map_err(poll_error)?;
        let full = page.len() == 100;
        let mut older = false;
        for chat in page {
            // A chat with no `updated` is looked at: better read once more than miss it.
            match chat["updated"].as_i64() {
                Some(u) if u < since.t => older = true,
                _ => chats.push(chat),
            }
        }
        offset += 100;
        if !full || older || offset > MAX_OFFSET - 100 {
            break;
        }
    }
    let mut found = Vec::new();
    for chat in chats {
        let Some(chat_id) = chat["id"].as_str().filter(|c| !c.is_empty()) else { continue };
        // Avito lists the newest first: reversed, a chat's messages keep their order within a
        // second, which the stable sort by time below leaves alone.
        for message in api.messages(chat_id).await.map_err(poll_error)?.into_iter().rev() {
            let (Some(created), Some(id)) = (message["created"].as_i64(), message["id"].as_str()) else { continue };
            if since.covers(created, id) || webhook::id_of(&message["author_id"]).as_deref() == Some(account) {
                continue;
            }
            found.push(Found { created, id: id.to_string(), chat: chat.clone(), message });
        }
    }
    found.sort_by_key(|f| f.created);
    Ok(found)
}

/// The cursor past `found` (which is sorted).
fn next_cursor(since: &Cursor, found: &[Found]) -> Cursor {
    let Some(last) = found.last() else { return since.clone() };
    let mut ids: Vec<String> = if last.created == since.t { since.ids.clone() } else { Vec::new() };
    ids.extend(found.iter().filter(|f| f.created == last.created).map(|f| f.id.clone()));
    Cursor { t: last.created, ids }
}

fn received(channel: &Channel, account: &str, f: &Found) -> Option<Received> {
    let item_id = (f.chat["context"]["type"] == "item").then(|| f.chat["context"]["value"]["id"].as_i64()).flatten();
    let mut value = f.message.clone();
    value["chat_id"] = f.chat["id"].clone();
    value["user_id"] = Value::Null;
    let Ok(Hook::Message { mut message, .. }) = webhook::parse_value(&channel.id, account, &value) else { return None };
    message.context = webhook::item_context(item_id, Some(&f.chat));
    message.sender.display_name = webhook::buyer_name(&f.chat, &message.sender.user_id);
    Some(Received::new(InboundEvent::Message(message)))
}

/// One poll from `cursor`: looks every [`INTERVAL`] until something comes or `cx.poll_timeout`
/// is up. The first poll (no cursor) hands back the present as the cursor.
pub async fn poll(cx: &Context, channel: &Channel, api: &AvitoApi, cursor: Option<&str>) -> Result<Polled, PollError> {
    let account = api.user_id().to_string();
    let Some(since) = Cursor::parse(cursor) else {
        let start = Cursor { t: now(), ids: Vec::new() };
        let mut r = Received::new(InboundEvent::Ignore);
        r.cursor = Some(start.encode());
        return Ok(Polled { items: vec![r] });
    };
    let until = Instant::now() + cx.poll_timeout;
    loop {
        let found = look(api, &account, &since).await?;
        if !found.is_empty() {
            let next = next_cursor(&since, &found);
            let mut items: Vec<Received> = found.iter().filter_map(|f| received(channel, &account, f)).collect();
            // What was found but is nothing okno keeps (a system message) still moves the cursor.
            if items.is_empty() {
                items.push(Received::new(InboundEvent::Ignore));
            }
            if let Some(last) = items.last_mut() {
                last.cursor = Some(next.encode());
            }
            return Ok(Polled { items });
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Polled::default());
        }
        tokio::time::sleep(left.min(INTERVAL)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_covers_its_second_only_for_the_ids_it_names() {
        let c = Cursor { t: 100, ids: vec!["a".into()] };
        assert!(c.covers(99, "x") && c.covers(100, "a"));
        assert!(!c.covers(100, "b") && !c.covers(101, "a"));
        assert_eq!(Cursor::parse(Some(&c.encode())), Some(c));
        assert_eq!(Cursor::parse(Some("garbage")), None);
    }
}
