//! The people a test plays: [`SimUser`] writes to the bot in a private chat, presses buttons,
//! blocks the bot; [`SimGroup`] is a group chat those users write in. Every action becomes an
//! update in the bot's queue, shaped as Telegram shapes it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::state::{unix_now, Access, Bot, Chat, ChatKind, Inner, Press, SERVICE_USER_ID};
use crate::SimError;

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

/// Longest text a client lets a person send, in UTF-16 code units.
const MAX_USER_TEXT: usize = 4096;

/// Longest file a client lets a person send (Telegram's 2 GB is far beyond what the simulator
/// keeps in memory; 20 MB is what a bot can download anyway).
const MAX_USER_FILE: usize = 20 * 1024 * 1024;

/// The panicking form of the test helpers: a refused action is a mistake in the test.
fn must<T>(r: Result<T, SimError>) -> T {
    r.unwrap_or_else(|e| panic!("telegram-sim: {e}"))
}

/// Checks a text the way a Telegram client does before sending it.
fn client_text(text: &str) -> Result<(), SimError> {
    if text.trim().is_empty() {
        return Err(SimError::Invalid("the message is empty".into()));
    }
    if text.encode_utf16().count() > MAX_USER_TEXT {
        return Err(SimError::Invalid(format!("the message is longer than {MAX_USER_TEXT} characters")));
    }
    Ok(())
}

/// The label of the inline button with callback `data` on a message, if there is one.
fn button_label(bot: &Bot, chat_id: i64, message_id: i64, data: &str) -> Option<String> {
    let stored = bot.chats.get(&chat_id)?.messages.get(&message_id)?;
    stored
        .markup
        .as_ref()
        .and_then(|m| m["inline_keyboard"].as_array())
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .find(|b| b["callback_data"].as_str() == Some(data))
        .map(|b| b["text"].as_str().unwrap_or_default().to_string())
}

/// Checks that `data` is the callback data of an inline button on the message, which is all
/// a client can press.
fn client_button(bot: &mut Bot, chat_id: i64, message_id: i64, data: &str) -> Result<(), SimError> {
    let chat = bot.chat_mut(chat_id)?;
    if !chat.messages.contains_key(&message_id) {
        return Err(SimError::UnknownMessage { chat_id, message_id });
    }
    match button_label(bot, chat_id, message_id, data) {
        Some(_) => Ok(()),
        None => Err(SimError::Invalid(format!("message {message_id} has no button with this data"))),
    }
}

/// Checks a file the way a client does before sending it.
fn client_file(bytes: &[u8]) -> Result<(), SimError> {
    if bytes.is_empty() {
        return Err(SimError::Invalid("the file is empty".into()));
    }
    if bytes.len() > MAX_USER_FILE {
        return Err(SimError::Invalid(format!("the file is larger than {} MB", MAX_USER_FILE / 1024 / 1024)));
    }
    Ok(())
}

/// A message from a person: stored and queued as a `message` update.
pub(crate) fn incoming(
    bot: &mut Bot,
    chat_id: i64,
    user_id: i64,
    fields: Map<String, Value>,
    reply_to: Option<i64>,
) -> Result<i64, SimError> {
    if let Some(r) = reply_to {
        if !bot.chat_mut(chat_id)?.messages.contains_key(&r) {
            return Err(SimError::UnknownMessage { chat_id, message_id: r });
        }
    }
    let from = bot.person_json(user_id);
    let (id, json) = bot.new_message(chat_id, from, fields, reply_to, false, None)?;
    // A client hides a one-time reply keyboard once the person has used it.
    if let Ok(chat) = bot.chat_mut(chat_id) {
        if chat.keyboard.as_ref().is_some_and(|k| k["one_time_keyboard"].as_bool() == Some(true)) {
            chat.keyboard = None;
        }
    }
    bot.push_update("message", json);
    Ok(id)
}

/// A button press on a bot message: a `callback_query` update; returns its id.
pub(crate) fn press(
    bot: &mut Bot,
    chat_id: i64,
    user_id: i64,
    message_id: i64,
    data: &str,
) -> Result<String, SimError> {
    let (id, body) = callback_query(bot, chat_id, user_id, message_id, data)?;
    bot.push_update("callback_query", body);
    Ok(id)
}

/// The CallbackQuery of a press, registered so it can be answered; returns its id and body.
fn callback_query(
    bot: &mut Bot,
    chat_id: i64,
    user_id: i64,
    message_id: i64,
    data: &str,
) -> Result<(String, Value), SimError> {
    let chat = bot.chat_mut(chat_id)?;
    let message = match chat.messages.get(&message_id) {
        Some(m) => m.json.clone(),
        None => return Err(SimError::UnknownMessage { chat_id, message_id }),
    };
    let after_message_id = chat.next_message_id - 1;
    let label = button_label(bot, chat_id, message_id, data).unwrap_or_default();
    let n = bot.next_seq();
    let id = format!("{}", 4_382_000_000_000_000_000u64 + (bot.id.rem_euclid(1_000_000) as u64) * 1_000_000 + n);
    bot.record_press(
        id.clone(),
        Press {
            at: Instant::now(),
            answered: false,
            user_id,
            chat_id,
            message_id,
            data: data.to_string(),
            label,
            after_message_id,
            date: unix_now(),
        },
    )?;
    bot.touch();
    let from = bot.person_json(user_id);
    let body = json!({
        "id": id,
        "from": from,
        "message": message,
        "chat_instance": format!("{}", -8_311_236_521_437_869_025i64 + chat_id),
        "data": data,
    });
    Ok((id, body))
}

impl SimUser {
    fn with_bot<T>(&self, f: impl FnOnce(&mut Bot) -> Result<T, SimError>) -> Result<T, SimError> {
        let mut world = self.inner.world();
        f(world.bot(&self.token)?)
    }

    fn send(&self, fields: Map<String, Value>, reply_to: Option<i64>) -> Result<i64, SimError> {
        self.with_bot(|bot| incoming(bot, self.id, self.id, fields, reply_to))
    }

    fn upload(
        &self,
        dir: &str,
        ext: &str,
        bytes: &[u8],
        name: Option<&str>,
        mime: &str,
    ) -> Result<Map<String, Value>, SimError> {
        self.with_bot(|bot| {
            Ok(bot
                .add_file(
                    dir,
                    ext,
                    bytes.len() as u64,
                    Some(Bytes::copy_from_slice(bytes)),
                    name.map(str::to_string),
                    Some(mime.to_string()),
                )
                .base_json())
        })
    }

    /// The user id (also the private chat id).
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Gives the person a public `@username` (shown in `from.username` from now on).
    pub fn with_username(self, username: &str) -> SimUser {
        let _ = self.with_bot(|bot| {
            if let Some(p) = bot.people.get_mut(&self.id) {
                p.username = Some(username.to_string());
            }
            Ok(())
        });
        self
    }

    /// Sends a text; returns its message_id. `/start x` gets a `bot_command` entity.
    /// Test helper: anything goes, and a missing chat panics.
    pub fn send_text(&self, text: &str) -> i64 {
        must(self.send(text_fields(text), None))
    }

    /// Sends a text as a client would: refused when empty or longer than 4096 characters.
    pub fn try_send_text(&self, text: &str) -> Result<i64, SimError> {
        client_text(text)?;
        self.send(text_fields(text), None)
    }

    /// Replies to a message of this chat; `reply_to_message` holds the replied message.
    pub fn reply(&self, to_message_id: i64, text: &str) -> i64 {
        must(self.try_reply(to_message_id, text))
    }

    /// Replies to a message of this chat as a client would (the message must exist).
    pub fn try_reply(&self, to_message_id: i64, text: &str) -> Result<i64, SimError> {
        client_text(text)?;
        self.send(text_fields(text), Some(to_message_id))
    }

    /// Edits one of the user's messages: an `edited_message` update.
    pub fn edit(&self, message_id: i64, new_text: &str) {
        let id = self.id;
        must(self.with_bot(|bot| {
            let stored = match bot.chat_mut(id)?.messages.get_mut(&message_id) {
                Some(m) if !m.from_bot => m,
                _ => return Err(SimError::UnknownMessage { chat_id: id, message_id }),
            };
            let fields = text_fields(new_text);
            if let Some(o) = stored.json.as_object_mut() {
                o.remove("entities");
                o.extend(fields);
                o.insert("edit_date".into(), unix_now().into());
            }
            let json = stored.json.clone();
            bot.touch();
            bot.push_update("edited_message", json);
            Ok(())
        }));
    }

    /// Sends a photo: 3 PhotoSize of increasing size, the largest is the real file.
    pub fn send_photo(&self, bytes: &[u8], caption: Option<&str>) -> i64 {
        must(self.photo(bytes, caption))
    }

    /// Sends a photo as a client would: not empty, at most 20 MB, a caption of at most 1024
    /// characters.
    pub fn try_send_photo(&self, bytes: &[u8], caption: Option<&str>) -> Result<i64, SimError> {
        client_file(bytes)?;
        if caption.is_some_and(|c| c.encode_utf16().count() > 1024) {
            return Err(SimError::Invalid("the caption is longer than 1024 characters".into()));
        }
        self.photo(bytes, caption)
    }

    fn photo(&self, bytes: &[u8], caption: Option<&str>) -> Result<i64, SimError> {
        let sizes = self.with_bot(|bot| Ok(bot.photo_sizes(&Bytes::copy_from_slice(bytes))))?;
        let mut fields = Map::new();
        fields.insert("photo".into(), sizes);
        if let Some(c) = caption.filter(|c| !c.trim().is_empty()) {
            fields.insert("caption".into(), c.into());
        }
        self.send(fields, None)
    }

    /// Sends a document with a file name and MIME type.
    pub fn send_document(&self, bytes: &[u8], name: &str, mime: &str) -> i64 {
        must(self.document(bytes, name, mime))
    }

    /// Sends a document as a client would: not empty, at most 20 MB, with a file name.
    pub fn try_send_document(&self, bytes: &[u8], name: &str, mime: &str) -> Result<i64, SimError> {
        client_file(bytes)?;
        if name.trim().is_empty() || name.chars().count() > 255 {
            return Err(SimError::Invalid("a file needs a name of 1 to 255 characters".into()));
        }
        self.document(bytes, name, mime)
    }

    fn document(&self, bytes: &[u8], name: &str, mime: &str) -> Result<i64, SimError> {
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("bin");
        let mut doc = self.upload("documents", ext, bytes, Some(name), mime)?;
        doc.insert("file_name".into(), name.into());
        doc.insert("mime_type".into(), mime.into());
        let mut fields = Map::new();
        fields.insert("document".into(), Value::Object(doc));
        self.send(fields, None)
    }

    /// Sends a voice message (OGG/Opus).
    pub fn send_voice(&self, bytes: &[u8]) -> i64 {
        let mut voice = must(self.upload("voice", "oga", bytes, None, "audio/ogg"));
        voice.insert("duration".into(), 1.into());
        voice.insert("mime_type".into(), "audio/ogg".into());
        let mut fields = Map::new();
        fields.insert("voice".into(), Value::Object(voice));
        must(self.send(fields, None))
    }

    /// Sends a video (MP4).
    pub fn send_video(&self, bytes: &[u8]) -> i64 {
        let mut video = must(self.upload("videos", "mp4", bytes, Some("video.mp4"), "video/mp4"));
        video.insert("width".into(), 640.into());
        video.insert("height".into(), 360.into());
        video.insert("duration".into(), 1.into());
        video.insert("file_name".into(), "video.mp4".into());
        video.insert("mime_type".into(), "video/mp4".into());
        let mut fields = Map::new();
        fields.insert("video".into(), Value::Object(video));
        must(self.send(fields, None))
    }

    /// Sends a sticker (static WEBP).
    pub fn send_sticker(&self, bytes: &[u8]) -> i64 {
        let mut sticker = must(self.upload("stickers", "webp", bytes, None, "image/webp"));
        sticker.insert("type".into(), "regular".into());
        sticker.insert("width".into(), 512.into());
        sticker.insert("height".into(), 512.into());
        sticker.insert("is_animated".into(), false.into());
        sticker.insert("is_video".into(), false.into());
        sticker.insert("emoji".into(), "👍".into());
        let mut fields = Map::new();
        fields.insert("sticker".into(), Value::Object(sticker));
        must(self.send(fields, None))
    }

    /// Sends a document bigger than the 20 MB download limit (no bytes are kept):
    /// getFile for it answers 400 "Bad Request: file is too big".
    pub fn send_big_document(&self, name: &str, size: u64) -> i64 {
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("bin");
        let mut doc = must(self.with_bot(|bot| {
            Ok(bot
                .add_file("documents", ext, size, None, Some(name.to_string()), Some("application/octet-stream".into()))
                .base_json())
        }));
        doc.insert("file_name".into(), name.into());
        doc.insert("mime_type".into(), "application/octet-stream".into());
        let mut fields = Map::new();
        fields.insert("document".into(), Value::Object(doc));
        must(self.send(fields, None))
    }

    /// Shares a contact; with `own`, `contact.user_id` is this user (their own number).
    pub fn send_contact(&self, phone: &str, own: bool) -> i64 {
        let first_name =
            must(self.with_bot(|bot| Ok(bot.people.get(&self.id).map(|p| p.first_name.clone()).unwrap_or_default())));
        let contact = if own {
            json!({"phone_number": phone, "first_name": first_name, "user_id": self.id})
        } else {
            // Someone else's contact without a Telegram account: no user_id.
            json!({"phone_number": phone, "first_name": "Contact"})
        };
        let mut fields = Map::new();
        fields.insert("contact".into(), contact);
        must(self.send(fields, None))
    }

    /// Presses an inline button of a bot message; returns the callback_query id. Test helper:
    /// any data may be pressed (a forged or stale button), and a missing message panics.
    pub fn press(&self, message_id: i64, data: &str) -> String {
        must(self.with_bot(|bot| press(bot, self.id, self.id, message_id, data)))
    }

    /// Presses an inline button as a client would: only a button that is on the message.
    pub fn try_press(&self, message_id: i64, data: &str) -> Result<String, SimError> {
        self.with_bot(|bot| {
            client_button(bot, self.id, message_id, data)?;
            press(bot, self.id, self.id, message_id, data)
        })
    }

    fn member_update(&self, old: &str, new: &str, access: Access) {
        let id = self.id;
        must(self.with_bot(|bot| {
            bot.chat_mut(id)?.access = access;
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
            Ok(())
        }));
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
        must(self.with_bot(|bot| {
            bot.chat_mut(id)?.access = Access::Deactivated;
            Ok(())
        }));
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
    fn with_bot<T>(&self, f: impl FnOnce(&mut Bot) -> Result<T, SimError>) -> Result<T, SimError> {
        let mut world = self.inner.world();
        f(world.bot(&self.token)?)
    }

    fn check_member(&self, from: &SimUser) -> Result<(), SimError> {
        if from.token != self.token {
            return Err(SimError::Invalid(format!("user {} belongs to another bot than group {}", from.id, self.id())));
        }
        Ok(())
    }

    /// The chat id (the supergroup's id after [`SimGroup::migrate`]).
    pub fn id(&self) -> i64 {
        self.id.load(Ordering::SeqCst)
    }

    /// `from` writes a text in the group; returns its message_id.
    pub fn send_text(&self, from: &SimUser, text: &str) -> i64 {
        must(self.write(from, text))
    }

    /// `from` writes a text in the group as a client would (not empty, at most 4096 characters).
    pub fn try_send_text(&self, from: &SimUser, text: &str) -> Result<i64, SimError> {
        client_text(text)?;
        self.write(from, text)
    }

    fn write(&self, from: &SimUser, text: &str) -> Result<i64, SimError> {
        self.check_member(from)?;
        let chat_id = self.id();
        self.with_bot(|bot| incoming(bot, chat_id, from.id, text_fields(text), None))
    }

    /// `from` presses an inline button of a bot message in the group; returns the
    /// callback_query id. Test helper: any data may be pressed.
    pub fn press(&self, from: &SimUser, message_id: i64, data: &str) -> String {
        must(self.check_member(from));
        let chat_id = self.id();
        must(self.with_bot(|bot| press(bot, chat_id, from.id, message_id, data)))
    }

    /// `from` presses an inline button in the group as a client would: only a button that is
    /// on the message.
    pub fn try_press(&self, from: &SimUser, message_id: i64, data: &str) -> Result<String, SimError> {
        self.check_member(from)?;
        let chat_id = self.id();
        self.with_bot(|bot| {
            client_button(bot, chat_id, message_id, data)?;
            press(bot, chat_id, from.id, message_id, data)
        })
    }

    /// `from` presses an inline button in the group, and instead of queueing the update the
    /// simulator returns it (a whole Update with its own `update_id`) for the test to deliver
    /// itself — e.g. many at once to a webhook, as Telegram does over its parallel webhook
    /// connections. The press can be answered like any other.
    pub fn press_update(&self, from: &SimUser, message_id: i64, data: &str) -> Value {
        must(self.check_member(from));
        let chat_id = self.id();
        must(self.with_bot(|bot| {
            let (_, body) = callback_query(bot, chat_id, from.id, message_id, data)?;
            Ok(json!({"update_id": bot.take_update_id(), "callback_query": body}))
        }))
    }

    /// The group becomes a supergroup with `new_id`: sends to the old id answer 400
    /// "Bad Request: group chat was upgraded to a supergroup chat" with
    /// `parameters.migrate_to_chat_id`. Like Telegram, it posts service messages with
    /// `migrate_to_chat_id` (old chat) and `migrate_from_chat_id` (new chat).
    pub fn migrate(&self, new_id: i64) {
        let old_id = self.id();
        must(self.with_bot(|bot| {
            let title = bot.chat_mut(old_id)?.title.clone();
            bot.chats.insert(new_id, Chat::new(ChatKind::Supergroup, &title, None));
            let mut to = Map::new();
            to.insert("migrate_to_chat_id".into(), new_id.into());
            incoming(bot, old_id, SERVICE_USER_ID, to, None)?;
            bot.chat_mut(old_id)?.migrated_to = Some(new_id);
            let mut from = Map::new();
            from.insert("migrate_from_chat_id".into(), old_id.into());
            incoming(bot, new_id, SERVICE_USER_ID, from, None)?;
            Ok(())
        }));
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
