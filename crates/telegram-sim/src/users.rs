//! The people a test plays: [`SimUser`] writes to the bot in a private chat, presses buttons,
//! blocks the bot; [`SimGroup`] is a group chat those users write in. Every action becomes an
//! update in the bot's queue, shaped as Telegram shapes it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::state::{unix_now, Access, Bot, Chat, ChatKind, Inner, Press, SERVICE_USER_ID};

/// A person in a private chat with the bot (the private chat id is the user id).
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

/// `bot_command` entities the way Telegram detects them: `/cmd` or `/cmd@bot` not glued to a
/// word, a `/`, `<` or `>`. Offsets and lengths are in UTF-16 code units.
pub(crate) fn command_entities(text: &str) -> Vec<Value> {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut units = 0usize;
    let mut k = 0usize;
    while k < chars.len() {
        let c = chars[k];
        let prev_ok = k == 0 || !(word(chars[k - 1]) || matches!(chars[k - 1], '/' | '<' | '>'));
        if c == '/' && prev_ok {
            let mut j = k + 1;
            while j < chars.len() && ident(chars[j]) {
                j += 1;
            }
            let mut ok = (1..=64).contains(&(j - k - 1));
            if ok && j < chars.len() && chars[j] == '@' {
                let mut m = j + 1;
                while m < chars.len() && ident(chars[m]) {
                    m += 1;
                }
                if (3..=32).contains(&(m - j - 1)) {
                    j = m;
                } else {
                    ok = false;
                }
            }
            if ok && j < chars.len() && (word(chars[j]) || matches!(chars[j], '/' | '<' | '>')) {
                ok = false;
            }
            if ok {
                let length: usize = chars[k..j].iter().map(|c| c.len_utf16()).sum();
                out.push(json!({"offset": units, "length": length, "type": "bot_command"}));
                units += length;
                k = j;
                continue;
            }
        }
        units += c.len_utf16();
        k += 1;
    }
    out
}

fn text_fields(text: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("text".into(), text.into());
    let entities = command_entities(text);
    if !entities.is_empty() {
        m.insert("entities".into(), Value::Array(entities));
    }
    m
}

/// A message from a person: stored and queued as a `message` update.
pub(crate) fn incoming(
    bot: &mut Bot,
    chat_id: i64,
    user_id: i64,
    fields: Map<String, Value>,
    reply_to: Option<i64>,
) -> i64 {
    if let Some(r) = reply_to {
        assert!(
            bot.chat_mut(chat_id).messages.contains_key(&r),
            "telegram-sim: message {r} does not exist in chat {chat_id}"
        );
    }
    let from = bot.person_json(user_id);
    let (id, json) = bot.new_message(chat_id, from, fields, reply_to, false, None);
    bot.push_update("message", json);
    id
}

/// A button press on a bot message: a `callback_query` update; returns its id.
pub(crate) fn press(bot: &mut Bot, chat_id: i64, user_id: i64, message_id: i64, data: &str) -> String {
    let (id, body) = callback_query(bot, chat_id, user_id, message_id, data);
    bot.push_update("callback_query", body);
    id
}

/// The CallbackQuery of a press, registered so it can be answered; returns its id and body.
fn callback_query(bot: &mut Bot, chat_id: i64, user_id: i64, message_id: i64, data: &str) -> (String, Value) {
    let message = match bot.chat_mut(chat_id).messages.get(&message_id) {
        Some(m) => m.json.clone(),
        None => panic!("telegram-sim: message {message_id} does not exist in chat {chat_id}"),
    };
    let n = bot.next_seq();
    let id = format!("{}", 4_382_000_000_000_000_000u64 + (bot.id.rem_euclid(1_000_000) as u64) * 1_000_000 + n);
    bot.presses.insert(id.clone(), Press { at: Instant::now(), answered: false });
    let from = bot.person_json(user_id);
    let body = json!({
        "id": id,
        "from": from,
        "message": message,
        "chat_instance": format!("{}", -8_311_236_521_437_869_025i64 + chat_id),
        "data": data,
    });
    (id, body)
}

impl SimUser {
    fn with_bot<T>(&self, f: impl FnOnce(&mut Bot) -> T) -> T {
        let mut world = self.inner.world();
        f(world.bot(&self.token))
    }

    fn send(&self, fields: Map<String, Value>, reply_to: Option<i64>) -> i64 {
        self.with_bot(|bot| incoming(bot, self.id, self.id, fields, reply_to))
    }

    fn upload(&self, dir: &str, ext: &str, bytes: &[u8], name: Option<&str>, mime: &str) -> Map<String, Value> {
        self.with_bot(|bot| {
            bot.add_file(
                dir,
                ext,
                bytes.len() as u64,
                Some(Bytes::copy_from_slice(bytes)),
                name.map(str::to_string),
                Some(mime.to_string()),
            )
            .base_json()
        })
    }

    /// The user id (also the private chat id).
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Gives the person a public `@username` (shown in `from.username` from now on).
    pub fn with_username(self, username: &str) -> SimUser {
        self.with_bot(|bot| {
            if let Some(p) = bot.people.get_mut(&self.id) {
                p.username = Some(username.to_string());
            }
        });
        self
    }

    /// Sends a text; returns its message_id. `/start x` gets a `bot_command` entity.
    pub fn send_text(&self, text: &str) -> i64 {
        self.send(text_fields(text), None)
    }

    /// Replies to a message of this chat; `reply_to_message` holds the replied message.
    pub fn reply(&self, to_message_id: i64, text: &str) -> i64 {
        self.send(text_fields(text), Some(to_message_id))
    }

    /// Edits one of the user's messages: an `edited_message` update.
    pub fn edit(&self, message_id: i64, new_text: &str) {
        let id = self.id;
        self.with_bot(|bot| {
            let stored = match bot.chat_mut(id).messages.get_mut(&message_id) {
                Some(m) if !m.from_bot => m,
                _ => panic!("telegram-sim: user {id} has no message {message_id} to edit"),
            };
            let fields = text_fields(new_text);
            if let Some(o) = stored.json.as_object_mut() {
                o.remove("entities");
                o.extend(fields);
                o.insert("edit_date".into(), unix_now().into());
            }
            let json = stored.json.clone();
            bot.push_update("edited_message", json);
        });
    }

    /// Sends a photo: 3 PhotoSize of increasing size, the largest is the real file.
    pub fn send_photo(&self, bytes: &[u8], caption: Option<&str>) -> i64 {
        let sizes = self.with_bot(|bot| bot.photo_sizes(&Bytes::copy_from_slice(bytes)));
        let mut fields = Map::new();
        fields.insert("photo".into(), sizes);
        if let Some(c) = caption {
            fields.insert("caption".into(), c.into());
        }
        self.send(fields, None)
    }

    /// Sends a document with a file name and MIME type.
    pub fn send_document(&self, bytes: &[u8], name: &str, mime: &str) -> i64 {
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("bin");
        let mut doc = self.upload("documents", ext, bytes, Some(name), mime);
        doc.insert("file_name".into(), name.into());
        doc.insert("mime_type".into(), mime.into());
        let mut fields = Map::new();
        fields.insert("document".into(), Value::Object(doc));
        self.send(fields, None)
    }

    /// Sends a voice message (OGG/Opus).
    pub fn send_voice(&self, bytes: &[u8]) -> i64 {
        let mut voice = self.upload("voice", "oga", bytes, None, "audio/ogg");
        voice.insert("duration".into(), 1.into());
        voice.insert("mime_type".into(), "audio/ogg".into());
        let mut fields = Map::new();
        fields.insert("voice".into(), Value::Object(voice));
        self.send(fields, None)
    }

    /// Sends a video (MP4).
    pub fn send_video(&self, bytes: &[u8]) -> i64 {
        let mut video = self.upload("videos", "mp4", bytes, Some("video.mp4"), "video/mp4");
        video.insert("width".into(), 640.into());
        video.insert("height".into(), 360.into());
        video.insert("duration".into(), 1.into());
        video.insert("file_name".into(), "video.mp4".into());
        video.insert("mime_type".into(), "video/mp4".into());
        let mut fields = Map::new();
        fields.insert("video".into(), Value::Object(video));
        self.send(fields, None)
    }

    /// Sends a sticker (static WEBP).
    pub fn send_sticker(&self, bytes: &[u8]) -> i64 {
        let mut sticker = self.upload("stickers", "webp", bytes, None, "image/webp");
        sticker.insert("type".into(), "regular".into());
        sticker.insert("width".into(), 512.into());
        sticker.insert("height".into(), 512.into());
        sticker.insert("is_animated".into(), false.into());
        sticker.insert("is_video".into(), false.into());
        sticker.insert("emoji".into(), "👍".into());
        let mut fields = Map::new();
        fields.insert("sticker".into(), Value::Object(sticker));
        self.send(fields, None)
    }

    /// Sends a document bigger than the 20 MB download limit (no bytes are kept):
    /// getFile for it answers 400 "Bad Request: file is too big".
    pub fn send_big_document(&self, name: &str, size: u64) -> i64 {
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("bin");
        let mut doc = self.with_bot(|bot| {
            bot.add_file("documents", ext, size, None, Some(name.to_string()), Some("application/octet-stream".into()))
                .base_json()
        });
        doc.insert("file_name".into(), name.into());
        doc.insert("mime_type".into(), "application/octet-stream".into());
        let mut fields = Map::new();
        fields.insert("document".into(), Value::Object(doc));
        self.send(fields, None)
    }

    /// Shares a contact; with `own`, `contact.user_id` is this user (their own number).
    pub fn send_contact(&self, phone: &str, own: bool) -> i64 {
        let first_name =
            self.with_bot(|bot| bot.people.get(&self.id).map(|p| p.first_name.clone()).unwrap_or_default());
        let contact = if own {
            json!({"phone_number": phone, "first_name": first_name, "user_id": self.id})
        } else {
            // Someone else's contact without a Telegram account: no user_id.
            json!({"phone_number": phone, "first_name": "Contact"})
        };
        let mut fields = Map::new();
        fields.insert("contact".into(), contact);
        self.send(fields, None)
    }

    /// Presses an inline button of a bot message; returns the callback_query id.
    pub fn press(&self, message_id: i64, data: &str) -> String {
        self.with_bot(|bot| press(bot, self.id, self.id, message_id, data))
    }

    fn member_update(&self, old: &str, new: &str, access: Access) {
        let id = self.id;
        self.with_bot(|bot| {
            bot.chat_mut(id).access = access;
            let me = bot.me_json();
            let mut new_member = json!({"status": new, "user": me.clone()});
            if new == "kicked" {
                new_member["until_date"] = 0.into();
            }
            let mut old_member = json!({"status": old, "user": me});
            if old == "kicked" {
                old_member["until_date"] = 0.into();
            }
            let body = json!({
                "chat": bot.chat_json(id),
                "from": bot.person_json(id),
                "date": unix_now(),
                "old_chat_member": old_member,
                "new_chat_member": new_member,
            });
            bot.push_update("my_chat_member", body);
        });
    }

    /// Blocks the bot: a `my_chat_member` update with new status "kicked"; later sends to
    /// this chat answer 403 "Forbidden: bot was blocked by the user".
    pub fn block(&self) {
        self.member_update("member", "kicked", Access::Blocked);
    }

    /// Unblocks the bot: a `my_chat_member` update with new status "member".
    pub fn unblock(&self) {
        self.member_update("kicked", "member", Access::Started);
    }

    /// Deletes the account: sends answer 403 "Forbidden: user is deactivated".
    pub fn deactivate(&self) {
        let id = self.id;
        self.with_bot(|bot| bot.chat_mut(id).access = Access::Deactivated);
    }
}

/// A group chat (negative id) in which [`SimUser`]s write.
#[derive(Clone)]
pub struct SimGroup {
    pub(crate) inner: Arc<Inner>,
    pub(crate) token: String,
    /// Changes when the group is upgraded to a supergroup.
    pub(crate) id: Arc<AtomicI64>,
}

impl std::fmt::Debug for SimGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimGroup").field("id", &self.id()).finish()
    }
}

impl SimGroup {
    fn with_bot<T>(&self, f: impl FnOnce(&mut Bot) -> T) -> T {
        let mut world = self.inner.world();
        f(world.bot(&self.token))
    }

    fn check_member(&self, from: &SimUser) {
        assert!(
            from.token == self.token,
            "telegram-sim: user {} belongs to another bot than group {}",
            from.id,
            self.id()
        );
    }

    /// The chat id (the supergroup's id after [`SimGroup::migrate`]).
    pub fn id(&self) -> i64 {
        self.id.load(Ordering::SeqCst)
    }

    /// `from` writes a text in the group; returns its message_id.
    pub fn send_text(&self, from: &SimUser, text: &str) -> i64 {
        self.check_member(from);
        let chat_id = self.id();
        self.with_bot(|bot| incoming(bot, chat_id, from.id, text_fields(text), None))
    }

    /// `from` presses an inline button of a bot message in the group; returns the
    /// callback_query id.
    pub fn press(&self, from: &SimUser, message_id: i64, data: &str) -> String {
        self.check_member(from);
        let chat_id = self.id();
        self.with_bot(|bot| press(bot, chat_id, from.id, message_id, data))
    }

    /// `from` presses an inline button in the group, and instead of queueing the update the
    /// simulator returns it (a whole Update with its own `update_id`) for the test to deliver
    /// itself — e.g. many at once to a webhook, as Telegram does over its parallel webhook
    /// connections. The press can be answered like any other.
    pub fn press_update(&self, from: &SimUser, message_id: i64, data: &str) -> Value {
        self.check_member(from);
        let chat_id = self.id();
        self.with_bot(|bot| {
            let (_, body) = callback_query(bot, chat_id, from.id, message_id, data);
            json!({"update_id": bot.take_update_id(), "callback_query": body})
        })
    }

    /// The group becomes a supergroup with `new_id`: sends to the old id answer 400
    /// "Bad Request: group chat was upgraded to a supergroup chat" with
    /// `parameters.migrate_to_chat_id`. Like Telegram, it posts service messages with
    /// `migrate_to_chat_id` (old chat) and `migrate_from_chat_id` (new chat).
    pub fn migrate(&self, new_id: i64) {
        let old_id = self.id();
        self.with_bot(|bot| {
            let title = bot.chat_mut(old_id).title.clone();
            bot.chats.insert(new_id, Chat::new(ChatKind::Supergroup, &title, None));
            let mut to = Map::new();
            to.insert("migrate_to_chat_id".into(), new_id.into());
            incoming(bot, old_id, SERVICE_USER_ID, to, None);
            bot.chat_mut(old_id).migrated_to = Some(new_id);
            let mut from = Map::new();
            from.insert("migrate_from_chat_id".into(), old_id.into());
            incoming(bot, new_id, SERVICE_USER_ID, from, None);
        });
        self.id.store(new_id, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::command_entities;
    use serde_json::json;

    #[test]
    fn commands_are_found_where_telegram_finds_them() {
        assert_eq!(command_entities("/start x"), vec![json!({"offset":0,"length":6,"type":"bot_command"})]);
        assert_eq!(command_entities("hi /help@hub_bot"), vec![json!({"offset":3,"length":13,"type":"bot_command"})]);
        assert!(command_entities("a/b and http://x").is_empty());
    }
}
