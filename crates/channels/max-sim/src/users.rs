//! The people a test plays: [`SimUser`] in a dialog with the bot, [`SimGroup`] a group chat.
//! Every action becomes an update shaped as the platform shapes it (max-bot-api-schemas
//! `Update` discriminator; go client `stabs/update.*.json`): no update id, `timestamp` in ms.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::server::emit;
use crate::state::{dialog_id, now_ms, Bot, Inner, Press, StoredMessage};

/// A person in a dialog with the bot.
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

/// The longest deep-link payload; a longer one is dropped silently (dev.max.ru deep links;
/// schema `BotStartedUpdate.payload` `maxLength: 512`).
const MAX_START_PAYLOAD: usize = 512;

fn with<T>(inner: &Arc<Inner>, token: &str, f: impl FnOnce(&mut Bot) -> T) -> T {
    let mut world = inner.world();
    let bot = world.bot(token).unwrap_or_else(|| panic!("max-sim: no bot with this token"));
    f(bot)
}

/// A person's message in a chat: stored and emitted as `message_created`; returns its `mid`.
fn incoming(inner: &Arc<Inner>, token: &str, chat_id: i64, user_id: i64, body: Value, link: Option<&str>) -> String {
    with(inner, token, |bot| {
        let mid = bot.next_mid();
        let seq = bot.next_seq() as i64;
        let mut b = body;
        b["mid"] = mid.clone().into();
        b["seq"] = seq.into();
        let mut m = json!({
            "sender": bot.person_json(user_id),
            "recipient": bot.recipient_json(chat_id, false),
            "timestamp": now_ms(),
            "body": b,
        });
        if let Some(l) = link {
            let quoted = bot.messages.get(l).map(|s| s.json["body"].clone());
            let quoted = quoted.unwrap_or_else(|| panic!("max-sim: no message {l} to reply to"));
            m["link"] = json!({"type": "reply", "message": quoted});
        }
        bot.messages.insert(mid.clone(), StoredMessage { chat_id, from_bot: false, json: m.clone() });
        let update =
            json!({"update_type": "message_created", "timestamp": now_ms(), "message": m, "user_locale": "ru"});
        emit(inner, token, bot, update);
        mid
    })
}

/// A press of a callback button on a bot message: emitted as `message_callback`; returns the
/// `callback_id`. Panics when the message has no callback button with that payload (a client
/// can press only what is there).
fn press(inner: &Arc<Inner>, token: &str, chat_id: i64, user_id: i64, mid: &str, payload: &str) -> String {
    with(inner, token, |bot| {
        let message = bot.messages.get(mid).map(|m| m.json.clone());
        let message = message.unwrap_or_else(|| panic!("max-sim: no message {mid}"));
        let has_button = message["body"]["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["type"] == "inline_keyboard")
            .flat_map(|a| a["payload"]["buttons"].as_array().cloned().unwrap_or_default())
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .any(|b| b["type"] == "callback" && b["payload"].as_str() == Some(payload));
        assert!(has_button, "max-sim: message {mid} has no callback button with payload {payload:?}");
        let n = bot.next_seq();
        let callback_id = format!("cb{:x}{n:08x}", bot.user_id);
        bot.presses
            .insert(callback_id.clone(), Press { chat_id, mid: mid.to_string(), at: Instant::now(), answered: false });
        let update = json!({
            "update_type": "message_callback",
            "timestamp": now_ms(),
            "callback": {"timestamp": now_ms(), "callback_id": callback_id, "payload": payload, "user": bot.person_json(user_id)},
            "message": message,
            "user_locale": "ru",
        });
        emit(inner, token, bot, update);
        callback_id
    })
}

impl SimUser {
    /// The person's user id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Their dialog's chat id.
    pub fn chat_id(&self) -> i64 {
        dialog_id(self.id)
    }

    /// Presses Start, from a deep link `https://max.ru/<bot>?start=<payload>` when `payload`
    /// is given: `bot_started` with `payload` (dropped when longer than 512 characters); the
    /// bot may write again afterwards.
    pub fn start(&self, payload: Option<&str>) {
        let chat_id = self.chat_id();
        let user_id = self.id;
        with(&self.inner, &self.token, |bot| {
            if let Some(c) = bot.chats.get_mut(&chat_id) {
                c.open = true;
            }
            let mut update = json!({
                "update_type": "bot_started", "timestamp": now_ms(), "chat_id": chat_id,
                "user": bot.person_json(user_id), "user_id": user_id, "user_locale": "ru",
            });
            if let Some(p) = payload.filter(|p| p.chars().count() <= MAX_START_PAYLOAD) {
                update["payload"] = p.into();
            }
            emit(&self.inner, &self.token, bot, update);
        });
    }

    /// Stops (blocks) the bot: `bot_stopped`; sends to them then answer 403 `chat.denied`.
    pub fn stop_bot(&self) {
        let chat_id = self.chat_id();
        let user_id = self.id;
        with(&self.inner, &self.token, |bot| {
            if let Some(c) = bot.chats.get_mut(&chat_id) {
                c.open = false;
            }
            let update = json!({
                "update_type": "bot_stopped", "timestamp": now_ms(), "chat_id": chat_id,
                "user": bot.person_json(user_id), "user_locale": "ru",
            });
            emit(&self.inner, &self.token, bot, update);
        });
    }

    /// Writes to the bot; returns the message's `mid`.
    pub fn send_text(&self, text: &str) -> String {
        incoming(&self.inner, &self.token, self.chat_id(), self.id, json!({"text": text}), None)
    }

    /// Replies to a message of the dialog; returns the reply's `mid`.
    pub fn reply(&self, to_mid: &str, text: &str) -> String {
        incoming(&self.inner, &self.token, self.chat_id(), self.id, json!({"text": text}), Some(to_mid))
    }

    /// Edits one of their messages: `message_edited`.
    pub fn edit(&self, mid: &str, text: &str) {
        with(&self.inner, &self.token, |bot| {
            let stored = bot.messages.get_mut(mid).unwrap_or_else(|| panic!("max-sim: no message {mid}"));
            stored.json["body"]["text"] = text.into();
            let m = stored.json.clone();
            emit(
                &self.inner,
                &self.token,
                bot,
                json!({"update_type": "message_edited", "timestamp": now_ms(), "message": m}),
            );
        });
    }

    /// Shares their contact (what a `request_contact` button sends): a `contact` attachment
    /// with a vCard.
    pub fn share_contact(&self, phone: &str) -> String {
        let name =
            with(&self.inner, &self.token, |bot| bot.people.get(&self.id).map(|p| p.name.clone()).unwrap_or_default());
        let vcf = format!("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nTEL;TYPE=cell:{phone}\r\nEND:VCARD\r\n");
        let contact = json!({"type": "contact", "payload": {"vcf_info": vcf, "max_info": {"user_id": self.id, "first_name": name, "is_bot": false}}});
        incoming(&self.inner, &self.token, self.chat_id(), self.id, json!({"text": "", "attachments": [contact]}), None)
    }

    /// Sends a file: a `file` attachment whose `payload.url` serves the bytes.
    pub fn send_file(&self, bytes: &[u8], name: &str) -> String {
        let (token, url) = self.store_file(bytes);
        let a = json!({"type": "file", "payload": {"url": url, "token": token}, "filename": name, "size": bytes.len()});
        incoming(&self.inner, &self.token, self.chat_id(), self.id, json!({"text": "", "attachments": [a]}), None)
    }

    /// Sends a photo: an `image` attachment whose `payload.url` serves the bytes.
    pub fn send_image(&self, bytes: &[u8]) -> String {
        let (token, url) = self.store_file(bytes);
        let a = json!({"type": "image", "payload": {"photo_id": bytes.len(), "token": token, "url": url}});
        incoming(&self.inner, &self.token, self.chat_id(), self.id, json!({"text": "", "attachments": [a]}), None)
    }

    fn store_file(&self, bytes: &[u8]) -> (String, String) {
        let base = self.inner.base.clone();
        with(&self.inner, &self.token, |bot| {
            let n = bot.next_seq();
            let token = format!("in_{}_{n}", bot.user_id);
            bot.files.insert(token.clone(), Bytes::copy_from_slice(bytes));
            let url = format!("{base}/files/{token}");
            (token, url)
        })
    }

    /// Presses a callback button on a bot message of the dialog; returns the `callback_id`.
    pub fn press(&self, mid: &str, payload: &str) -> String {
        press(&self.inner, &self.token, self.chat_id(), self.id, mid, payload)
    }
}

/// A group chat with the bot in it.
#[derive(Clone)]
pub struct SimGroup {
    pub(crate) inner: Arc<Inner>,
    pub(crate) token: String,
    pub(crate) id: i64,
}

impl std::fmt::Debug for SimGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimGroup").field("id", &self.id).finish()
    }
}

impl SimGroup {
    /// The chat id (negative).
    pub fn id(&self) -> i64 {
        self.id
    }

    /// A member writes; returns the message's `mid`.
    pub fn send_text(&self, from: &SimUser, text: &str) -> String {
        incoming(&self.inner, &self.token, self.id, from.id, json!({"text": text}), None)
    }

    /// A member presses a callback button on a bot message; returns the `callback_id`.
    pub fn press(&self, from: &SimUser, mid: &str, payload: &str) -> String {
        press(&self.inner, &self.token, self.id, from.id, mid, payload)
    }

    /// An administrator adds the bot (again): `bot_added`.
    pub fn add_bot(&self, by: &SimUser) {
        self.membership(by, true);
    }

    /// An administrator removes the bot: `bot_removed`; sends here then answer 403.
    pub fn remove_bot(&self, by: &SimUser) {
        self.membership(by, false);
    }

    fn membership(&self, by: &SimUser, added: bool) {
        let chat_id = self.id;
        with(&self.inner, &self.token, |bot| {
            if let Some(c) = bot.chats.get_mut(&chat_id) {
                c.open = added;
            }
            let kind = if added { "bot_added" } else { "bot_removed" };
            let update = json!({
                "update_type": kind, "timestamp": now_ms(), "chat_id": chat_id,
                "user": bot.person_json(by.id), "is_channel": false,
            });
            emit(&self.inner, &self.token, bot, update);
        });
    }
}
