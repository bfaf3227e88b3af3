//! The people a test plays: [`SimUser`] writes to the community, presses buttons, allows or
//! denies its messages; [`SimChat`] is a group conversation. Every action becomes an event
//! (schema `callback_*` objects) for Long Poll and the Callback API.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::callback;
use crate::keyboard;
use crate::state::{Event, Group, Inner};

/// A person writing to the community in a private conversation (peer id = user id).
#[derive(Clone)]
pub struct SimUser {
    pub(crate) inner: Arc<Inner>,
    pub(crate) token: String,
    pub(crate) id: i64,
}

impl std::fmt::Debug for SimUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimUser").field("id", &self.id).finish()
    }
}

fn act<T>(
    inner: &Arc<Inner>,
    token: &str,
    f: impl FnOnce(&mut Group) -> (T, Vec<(Value, Vec<crate::state::CallbackServer>)>),
) -> T {
    let (out, group_id, pushes) = {
        let mut world = inner.world();
        let g = world.group(token).unwrap_or_else(|| panic!("vk-sim: no community with this token"));
        let (out, pushes) = f(g);
        (out, g.id, pushes)
    };
    for (event, servers) in pushes {
        callback::spawn_pushes(inner, group_id, &event, servers);
    }
    out
}

/// A person's message: stored and emitted as `message_new` with `client_info`.
fn incoming(inner: &Arc<Inner>, token: &str, peer_id: i64, from_id: i64, fields: Value) -> i64 {
    act(inner, token, |g| {
        if let Some(p) = g.people.get_mut(&from_id) {
            // Writing to a community allows its messages.
            if peer_id == from_id {
                p.allowed = true;
            }
        }
        let m = g.store(peer_id, from_id, false, fields);
        let id = m["id"].as_i64().unwrap_or_default();
        let push = g.push_event("message_new", json!({"message": m, "client_info": Group::client_info()}));
        (id, vec![push])
    })
}

/// A press of a callback button: `message_event`; returns the `event_id`.
fn press(inner: &Arc<Inner>, token: &str, peer_id: i64, user_id: i64, message_id: i64, payload: &str) -> String {
    act(inner, token, |g| {
        let m = g.messages.get(&message_id).unwrap_or_else(|| panic!("vk-sim: no message {message_id}"));
        let payloads = keyboard::callback_payloads(&m.json["keyboard"]);
        assert!(
            payloads.iter().any(|p| p == payload),
            "vk-sim: message {message_id} has no callback button with payload {payload:?}"
        );
        let cmid = m.json["conversation_message_id"].clone();
        let n = g.next_seq();
        let event_id = format!("{:x}{n:08x}", g.id);
        g.events.insert(event_id.clone(), Event { user_id, peer_id, at: Instant::now() });
        let push = g.push_event(
            "message_event",
            json!({"user_id": user_id, "peer_id": peer_id, "event_id": event_id, "payload": payload, "conversation_message_id": cmid}),
        );
        (event_id, vec![push])
    })
}

impl SimUser {
    /// The person's id (and their conversation's peer id).
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Writes to the community; returns the message id.
    pub fn send_text(&self, text: &str) -> i64 {
        incoming(&self.inner, &self.token, self.id, self.id, json!({"text": text}))
    }

    /// Opens the community's chat from a deep link `vk.me/club<id>?ref=<ref>` and presses
    /// Start: a `message_new` carrying `ref`, `ref_source` and the Start payload
    /// `{"command":"start"}` (dev.vk.com keyboard page).
    pub fn start(&self, r#ref: Option<&str>) -> i64 {
        let mut fields = json!({"text": "Начать", "payload": "{\"command\":\"start\"}"});
        if let Some(r) = r#ref {
            fields["ref"] = r.into();
            fields["ref_source"] = "vk.me".into();
        }
        incoming(&self.inner, &self.token, self.id, self.id, fields)
    }

    /// Presses a text button: its label is sent as a message with the button's `payload`.
    pub fn press_text(&self, label: &str, payload: &str) -> i64 {
        incoming(&self.inner, &self.token, self.id, self.id, json!({"text": label, "payload": payload}))
    }

    /// Presses a callback button on a community message; returns the `event_id`.
    pub fn press(&self, message_id: i64, payload: &str) -> String {
        press(&self.inner, &self.token, self.id, self.id, message_id, payload)
    }

    /// Edits a message the person wrote: its text replaced and `message_edit` emitted with
    /// the message as it now is (schema `callback_type` `message_edit`, object
    /// `messages_message`).
    pub fn edit(&self, message_id: i64, text: &str) {
        let id = self.id;
        act(&self.inner, &self.token, |g| {
            let m = g.messages.get_mut(&message_id).unwrap_or_else(|| panic!("vk-sim: no message {message_id}"));
            assert!(!m.out && m.json["from_id"] == id, "vk-sim: message {message_id} is not the person's");
            m.json["text"] = text.into();
            m.json["update_time"] = crate::state::unix_now().into();
            let json = m.json.clone();
            ((), vec![g.push_event("message_edit", json)])
        });
    }

    /// Sends a document: a `doc` attachment whose `url` serves the bytes.
    pub fn send_doc(&self, bytes: &[u8], title: &str) -> i64 {
        let base = self.inner.base.clone();
        let (doc_id, key) = act(&self.inner, &self.token, |g| {
            let id = 700_000_000 + g.next_seq() as i64;
            let key = format!("in{}_{id}", self.id);
            g.files.insert(key.clone(), Bytes::copy_from_slice(bytes));
            ((id, key), Vec::new())
        });
        let ext = title.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
        let attachment = json!({"type": "doc", "doc": {
            "id": doc_id, "owner_id": self.id, "title": title, "size": bytes.len(), "ext": ext,
            "url": format!("{base}/files/{key}"), "date": crate::state::unix_now(), "type": 1,
        }});
        incoming(&self.inner, &self.token, self.id, self.id, json!({"text": "", "attachments": [attachment]}))
    }

    /// Allows the community's messages: `message_allow` with the widget `key`.
    pub fn allow(&self, key: &str) {
        let id = self.id;
        act(&self.inner, &self.token, |g| {
            if let Some(p) = g.people.get_mut(&id) {
                p.allowed = true;
            }
            ((), vec![g.push_event("message_allow", json!({"user_id": id, "key": key}))])
        });
    }

    /// Forbids the community's messages: `message_deny`; sends then answer 901.
    pub fn deny(&self) {
        let id = self.id;
        act(&self.inner, &self.token, |g| {
            if let Some(p) = g.people.get_mut(&id) {
                p.allowed = false;
            }
            ((), vec![g.push_event("message_deny", json!({"user_id": id}))])
        });
    }

    /// The community blacklists the person: sends answer 900.
    pub fn blacklist(&self) {
        let id = self.id;
        act(&self.inner, &self.token, |g| {
            if let Some(p) = g.people.get_mut(&id) {
                p.blacklisted = true;
            }
            ((), Vec::new())
        });
    }
}

/// A group conversation (peer id ≥ 2000000000) with the community in it.
#[derive(Clone)]
pub struct SimChat {
    pub(crate) inner: Arc<Inner>,
    pub(crate) token: String,
    pub(crate) peer_id: i64,
}

impl std::fmt::Debug for SimChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimChat").field("peer_id", &self.peer_id).finish()
    }
}

impl SimChat {
    /// The peer id (`2000000000 + chat_id`).
    pub fn peer_id(&self) -> i64 {
        self.peer_id
    }

    /// A member writes; returns the message id.
    pub fn send_text(&self, from: &SimUser, text: &str) -> i64 {
        incoming(&self.inner, &self.token, self.peer_id, from.id, json!({"text": text}))
    }

    /// A member presses a callback button on a community message; returns the `event_id`.
    pub fn press(&self, from: &SimUser, message_id: i64, payload: &str) -> String {
        press(&self.inner, &self.token, self.peer_id, from.id, message_id, payload)
    }

    /// The community is removed from the conversation: sends answer 917.
    pub fn kick_community(&self) {
        let peer = self.peer_id;
        act(&self.inner, &self.token, |g| {
            g.chats.remove(&peer);
            ((), Vec::new())
        });
    }
}
