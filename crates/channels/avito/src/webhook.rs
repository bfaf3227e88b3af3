//! Reading Avito's webhooks (v3): `{"id","version","timestamp","payload":{"type":"message",
//! "value":{"id","chat_id","user_id","author_id","created","type","chat_type","content",
//! "item_id"?,"read"?,"published_at"}}}` (`WebhookMessage` in `Мессенджер.json`).
//!
//! `user_id` is the account the webhook is registered for; a message whose `author_id` is that
//! account is the seller's own (written in Avito's app, or okno's reply coming back) and is
//! skipped, so okno never answers itself. A buyer is their Avito user id (`author_id`), and the
//! chat okno answers in is the message's `chat_id` — Avito opens one chat per buyer and ad.
//! Content becomes text where it is text-like (a link, an ad, a place, a missed call) and an
//! attachment for a photo (its largest size). Parsing never panics: what it cannot read is
//! skipped, and a body that is not Avito's envelope is an error the hook answers 400.

use okno_channel::{InboundAttachment, InboundEvent, InboundMessage, InboundSender};
use serde_json::Value;

/// Reference scheme of a voice message, fetched through `getVoiceFiles`.
pub const VOICE_SCHEME: &str = "avito-voice:";

/// What one webhook carries, before okno adds the chat's ad.
#[derive(Debug, Clone)]
pub enum Hook {
    /// A buyer's message in a chat, about the ad `item_id` when the chat is about one.
    Message { message: Box<InboundMessage>, item_id: Option<i64> },
    /// The seller's own message (`author_id == user_id`): skipped.
    Own { chat_id: String },
    /// Nothing okno keeps (a system message, a deleted one, another payload type, a probe).
    Ignore(&'static str),
}

fn s(v: &Value) -> Option<&str> {
    v.as_str().filter(|x| !x.is_empty())
}

/// An id Avito sends as a number (and okno may meet as a string).
pub fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => n.as_i64().map(|n| n.to_string()),
        Value::String(t) if !t.is_empty() && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_digit()) => Some(t.clone()),
        _ => None,
    }
}

/// Reads one webhook body. `Err` says why the body is not Avito's envelope.
pub fn parse(channel_id: &str, account: &str, body: &Value) -> Result<Hook, String> {
    let Some(obj) = body.as_object() else { return Err("an Avito webhook is a JSON object".into()) };
    // An empty object is how Avito's docs suggest checking an address (`curl -d '{}'`).
    if obj.is_empty() {
        return Ok(Hook::Ignore("an empty probe"));
    }
    let payload = body.get("payload").filter(|p| p.is_object()).ok_or("no `payload` object")?;
    if payload["type"].as_str() != Some("message") {
        return Ok(Hook::Ignore("not a message"));
    }
    let value = payload.get("value").filter(|v| v.is_object()).ok_or("no `payload.value` object")?;
    parse_value(channel_id, account, value)
}

/// Reads one message as Avito describes it (`WebhookMessage`: `id`, `chat_id`, `user_id`,
/// `author_id`, `type`, `content`, `item_id`): a webhook's `payload.value`, or a message of the
/// messages list with its chat's id and ad added.
pub fn parse_value(channel_id: &str, account: &str, value: &Value) -> Result<Hook, String> {
    let id = s(&value["id"]).ok_or("the message has no `id`")?;
    let chat_id = s(&value["chat_id"]).ok_or("the message has no `chat_id`")?;
    if id.len() > 200 || chat_id.len() > 200 {
        return Err("an id longer than 200 characters".into());
    }
    if let Some(user) = id_of(&value["user_id"]) {
        if user != account {
            return Ok(Hook::Ignore("a message for another account"));
        }
    }
    let author = id_of(&value["author_id"]);
    let Some(author) = author.filter(|a| a != "0") else { return Ok(Hook::Ignore("a message without an author")) };
    if author == account {
        return Ok(Hook::Own { chat_id: chat_id.to_string() });
    }
    let content = &value["content"];
    let kind = value["type"].as_str().unwrap_or("text");
    let mut text: Option<String> = None;
    let mut attachments = Vec::new();
    match kind {
        "text" => text = s(&content["text"]).map(str::to_string),
        "image" => match largest(&content["image"]["sizes"]) {
            Some(url) => {
                attachments.push(InboundAttachment::Url { name: "photo.jpg".into(), mime: "image/jpeg".into(), url })
            }
            None => return Ok(Hook::Ignore("a photo without sizes")),
        },
        "link" => {
            let l = &content["link"];
            text = match (s(&l["text"]), s(&l["url"])) {
                (Some(t), Some(u)) if t != u => Some(format!("{t} {u}")),
                (Some(t), _) => Some(t.to_string()),
                (None, Some(u)) => Some(u.to_string()),
                _ => None,
            };
        }
        "item" => {
            let i = &content["item"];
            let parts: Vec<&str> =
                [s(&i["title"]), s(&i["price_string"]), s(&i["item_url"])].into_iter().flatten().collect();
            text = (!parts.is_empty()).then(|| format!("Объявление: {}", parts.join(", ")));
        }
        "location" => {
            let l = &content["location"];
            let place = s(&l["text"]).or_else(|| s(&l["title"]));
            let at = match (l["lat"].as_f64(), l["lon"].as_f64()) {
                (Some(lat), Some(lon)) => Some(format!("{lat:.6}, {lon:.6}")),
                _ => None,
            };
            text = match (place, at) {
                (Some(p), Some(a)) => Some(format!("Место: {p} ({a})")),
                (Some(p), None) => Some(format!("Место: {p}")),
                (None, Some(a)) => Some(format!("Место: {a}")),
                (None, None) => None,
            };
        }
        "call" => text = Some("Пропущенный звонок через Авито".into()),
        "voice" => match s(&content["voice"]["voice_id"]).filter(|v| v.len() <= 200) {
            Some(voice) => attachments.push(InboundAttachment::Url {
                name: "voice.mp4".into(),
                mime: "audio/mp4".into(),
                url: format!("{VOICE_SCHEME}{voice}"),
            }),
            None => return Ok(Hook::Ignore("a voice message without its id")),
        },
        "file" | "video" | "appCall" => attachments.push(InboundAttachment::Failed {
            name: kind.to_string(),
            mime: "application/octet-stream".into(),
            size: 0,
            note: format!("Avito does not hand `{kind}` messages to its API: open the chat in Avito"),
        }),
        "system" | "deleted" => return Ok(Hook::Ignore("a system or deleted message")),
        _ => return Ok(Hook::Ignore("an unknown message type")),
    }
    if text.is_none() && attachments.is_empty() {
        return Ok(Hook::Ignore("an empty message"));
    }
    let item_id = value["item_id"].as_i64().filter(|i| *i > 0);
    let message = InboundMessage {
        channel_id: channel_id.into(),
        sender: InboundSender { user_id: author, chat_id: chat_id.to_string(), ..InboundSender::default() },
        external_id: id.to_string(),
        text,
        attachments,
        button_data: None,
        reply_to: None,
        reply_to_external: None,
        author: None,
        member: None,
        bot_turn: false,
        subscription: None,
        survey: Default::default(),
        context: None,
        conversation_hint: None,
    };
    Ok(Hook::Message { message: Box::new(message), item_id })
}

/// The URL of a photo's largest size (`{"1280x960": url, "140x105": url}`).
fn largest(sizes: &Value) -> Option<String> {
    let area = |k: &str| {
        let (w, h) = k.split_once('x')?;
        Some(w.parse::<u64>().ok()?.saturating_mul(h.parse::<u64>().ok()?))
    };
    sizes
        .as_object()?
        .iter()
        .filter_map(|(k, v)| Some((area(k)?, s(v)?)))
        .filter(|(_, u)| u.starts_with("https://") || u.starts_with("http://"))
        .max_by_key(|(a, _)| *a)
        .map(|(_, u)| u.to_string())
}

/// What a chat is about, as okno keeps it with the messages (`InboundMessage::context`) and
/// hands to rules and webhooks: `{"avito_item": {"id","title","url","price"}}`.
/// `chat` is Avito's chat (`GET …/chats/{chat_id}`) when okno could read it.
pub fn item_context(item_id: Option<i64>, chat: Option<&Value>) -> Option<Value> {
    let v = chat.map(|c| &c["context"]).filter(|c| c["type"] == "item").map(|c| &c["value"]);
    let mut item = serde_json::Map::new();
    let id = v.and_then(|v| v["id"].as_i64()).or(item_id)?;
    item.insert("id".into(), id.into());
    if let Some(v) = v {
        for (from, to) in [("title", "title"), ("url", "url"), ("price_string", "price")] {
            if let Some(t) = s(&v[from]) {
                item.insert(to.into(), t.chars().take(500).collect::<String>().into());
            }
        }
    }
    Some(serde_json::json!({ "avito_item": item }))
}

/// The buyer's name in a chat (`users[]` other than the account).
pub fn buyer_name(chat: &Value, buyer: &str) -> Option<String> {
    chat["users"]
        .as_array()?
        .iter()
        .find(|u| id_of(&u["id"]).as_deref() == Some(buyer))
        .and_then(|u| s(&u["name"]))
        .map(|n| n.chars().take(200).collect())
}

/// The event a parsed webhook stands for (without the ad, which okno adds).
pub fn event(hook: Hook) -> InboundEvent {
    match hook {
        Hook::Message { message, .. } => InboundEvent::Message(message),
        Hook::Own { .. } | Hook::Ignore(_) => InboundEvent::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hook(value: Value) -> Value {
        json!({"id": "e1", "version": "v3.0.0", "timestamp": 1, "payload": {"type": "message", "value": value}})
    }

    #[test]
    fn a_buyers_text_is_a_message_and_the_sellers_own_is_skipped() {
        let v = json!({"id": "m1", "chat_id": "c1", "user_id": 77, "author_id": 55, "type": "text",
                       "content": {"text": "Ещё продаётся?"}, "item_id": 42, "chat_type": "u2i"});
        let Ok(Hook::Message { message, item_id }) = parse("ch", "77", &hook(v.clone())) else { panic!("a message") };
        assert_eq!((message.sender.user_id.as_str(), message.sender.chat_id.as_str()), ("55", "c1"));
        assert_eq!(message.text.as_deref(), Some("Ещё продаётся?"));
        assert_eq!(item_id, Some(42));
        let mut own = v;
        own["author_id"] = json!(77);
        assert!(matches!(parse("ch", "77", &hook(own)), Ok(Hook::Own { .. })));
    }

    #[test]
    fn a_photo_is_its_largest_size_and_odd_bodies_are_named() {
        let v = json!({"id": "m2", "chat_id": "c1", "user_id": 77, "author_id": 55, "type": "image",
            "content": {"image": {"sizes": {"140x105": "https://i/s.jpg", "1280x960": "https://i/l.jpg"}}}});
        let Ok(Hook::Message { message, .. }) = parse("ch", "77", &hook(v)) else { panic!("a message") };
        assert!(matches!(&message.attachments[0], InboundAttachment::Url { url, .. } if url == "https://i/l.jpg"));
        assert!(parse("ch", "77", &json!([1])).is_err());
        assert!(parse("ch", "77", &json!({"payload": 1})).is_err());
        assert!(matches!(parse("ch", "77", &json!({})), Ok(Hook::Ignore(_))));
    }

    #[test]
    fn the_context_names_the_ad_with_what_the_chat_tells() {
        let chat = json!({"context": {"type": "item", "value": {"id": 42, "title": "Велосипед",
            "url": "https://avito.ru/42", "price_string": "12 000 ₽"}}, "users": [{"id": 55, "name": "Борис"}]});
        assert_eq!(
            item_context(Some(42), Some(&chat)),
            Some(
                json!({"avito_item": {"id": 42, "title": "Велосипед", "url": "https://avito.ru/42", "price": "12 000 ₽"}})
            )
        );
        assert_eq!(item_context(Some(42), None), Some(json!({"avito_item": {"id": 42}})));
        assert_eq!(item_context(None, None), None);
        assert_eq!(buyer_name(&chat, "55").as_deref(), Some("Борис"));
    }
}
