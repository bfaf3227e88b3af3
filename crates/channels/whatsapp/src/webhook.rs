//! Reading WhatsApp webhooks (the `messages` field of a `whatsapp_business_account`): every
//! `entry[].changes[].value` carries `messages` (with the senders' names in `contacts`) and
//! `statuses` — many of either in one request. Shapes from Meta's webhook reference
//! (developers.facebook.com, "messages" webhook) and the official Node SDK
//! (`WhatsApp/WhatsApp-Nodejs-SDK`, `src/types/webhooks.ts`), as summarised in
//! `research/B_messenger_specs.md` §2.4–2.5.
//!
//! A person's WhatsApp id (`wa_id`, `from`) is their phone number in digits: it is their user
//! id, their chat id and (with a `+`) their phone. Media become attachments named
//! `wa-media:<media id>`, downloaded later through [`crate::WhatsApp`]'s `fetch`. Parsing never
//! panics and never fails: what it cannot read is skipped.

use std::collections::HashMap;

use okno_channel::{InboundAttachment, InboundEvent, InboundMessage, InboundSender};
use okno_domain::model::MessageStatus;
use serde_json::Value;

use crate::api::describe_meta;

/// Reference scheme of a media file a person sent.
pub const MEDIA_SCHEME: &str = "wa-media:";
/// Prefix of button ids that stand for longer data kept by okno.
pub const TOKEN_PREFIX: &str = "okno:";

fn s(v: &Value) -> Option<&str> {
    v.as_str().filter(|x| !x.is_empty())
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Everything one webhook request reports, in order.
pub fn parse(channel_id: &str, body: &Value) -> Vec<InboundEvent> {
    let mut out = Vec::new();
    for entry in arr(&body["entry"]) {
        for change in arr(&entry["changes"]) {
            let field = change["field"].as_str().unwrap_or("messages");
            if field != "messages" {
                continue;
            }
            read_value(channel_id, &change["value"], &mut out);
        }
    }
    if out.is_empty() {
        out.push(InboundEvent::Ignore);
    }
    out
}

fn read_value(channel_id: &str, value: &Value, out: &mut Vec<InboundEvent>) {
    let names: HashMap<&str, &str> =
        arr(&value["contacts"]).iter().filter_map(|c| Some((s(&c["wa_id"])?, s(&c["profile"]["name"])?))).collect();
    for m in arr(&value["messages"]) {
        if let Some(msg) = message(channel_id, m, &names) {
            out.push(InboundEvent::Message(Box::new(msg)));
        }
    }
    for st in arr(&value["statuses"]) {
        if let Some(ev) = status(st) {
            out.push(ev);
        }
    }
    for e in arr(&value["errors"]) {
        tracing::warn!(channel = channel_id, error = %e, "WhatsApp reported an error for the number");
    }
}

/// One `statuses[]` item as a delivery receipt: `sent`, `delivered`, `read` (and `played`, a
/// voice message listened to, read for okno), or `failed` with Meta's first error as the reason.
pub fn status(st: &Value) -> Option<InboundEvent> {
    let external_id = s(&st["id"])?.to_string();
    let status = match st["status"].as_str()? {
        "sent" => MessageStatus::Sent,
        "delivered" => MessageStatus::Delivered,
        "read" | "played" => MessageStatus::Read,
        "failed" => MessageStatus::Failed,
        _ => return None,
    };
    let reason = arr(&st["errors"]).first().map(|e| {
        let code = e["code"].as_i64().unwrap_or(0);
        let title = s(&e["title"]).or_else(|| s(&e["message"])).unwrap_or("failed");
        describe_meta(code, title, s(&e["error_data"]["details"]))
    });
    let reason = match (status, reason) {
        (MessageStatus::Failed, None) => Some("WhatsApp reported the message failed".to_string()),
        (_, r) => r,
    };
    Some(InboundEvent::Status { external_id, status, reason })
}

fn extension(mime: &str) -> &'static str {
    match mime.split(';').next().unwrap_or("").trim() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "audio/ogg" => "ogg",
        "audio/mpeg" => "mp3",
        "audio/aac" => "aac",
        "audio/mp4" => "m4a",
        "audio/amr" => "amr",
        "application/pdf" => "pdf",
        _ => "bin",
    }
}

fn media(kind: &str, m: &Value) -> Option<(InboundAttachment, Option<String>)> {
    let id = s(&m["id"])?;
    if id.len() > 200 {
        return None;
    }
    let mime = s(&m["mime_type"]).unwrap_or("application/octet-stream").to_string();
    let name = match s(&m["filename"]) {
        Some(f) => f.chars().take(200).collect(),
        None => format!("{kind}.{}", extension(&mime)),
    };
    let caption = s(&m["caption"]).map(str::to_string);
    Some((InboundAttachment::Url { name, mime, url: format!("{MEDIA_SCHEME}{id}") }, caption))
}

fn location_text(l: &Value) -> Option<String> {
    let lat = l["latitude"].as_f64()?;
    let lon = l["longitude"].as_f64()?;
    let mut lines = Vec::new();
    let mut head = format!("📍 {lat}, {lon}");
    if let Some(n) = s(&l["name"]) {
        head = format!("📍 {n} ({lat}, {lon})");
    }
    lines.push(head);
    if let Some(a) = s(&l["address"]) {
        lines.push(a.to_string());
    }
    if let Some(u) = s(&l["url"]) {
        lines.push(u.to_string());
    }
    Some(lines.join("\n"))
}

fn contacts_text(cs: &Value) -> Option<String> {
    let lines: Vec<String> = arr(cs)
        .iter()
        .map(|c| {
            let name = s(&c["name"]["formatted_name"])
                .or_else(|| s(&c["name"]["first_name"]))
                .unwrap_or("Contact")
                .to_string();
            let phones: Vec<&str> = arr(&c["phones"]).iter().filter_map(|p| s(&p["phone"])).collect();
            if phones.is_empty() {
                format!("👤 {name}")
            } else {
                format!("👤 {name}: {}", phones.join(", "))
            }
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// One `messages[]` item; `None` for what okno keeps nothing of (reactions, system notices).
pub fn message(channel_id: &str, m: &Value, names: &HashMap<&str, &str>) -> Option<InboundMessage> {
    let from = s(&m["from"])?;
    let external_id = s(&m["id"])?.to_string();
    let kind = m["type"].as_str().unwrap_or("");
    let mut text: Option<String> = None;
    let mut attachments = Vec::new();
    let mut button_data = None;
    match kind {
        "text" => text = s(&m["text"]["body"]).map(str::to_string),
        "image" | "video" | "audio" | "document" | "sticker" | "voice" => {
            let (att, caption) = media(kind, &m[kind])?;
            attachments.push(att);
            text = caption;
        }
        "location" => text = location_text(&m["location"]),
        "contacts" => text = contacts_text(&m["contacts"]),
        "interactive" => {
            let i = &m["interactive"];
            let reply = match i["type"].as_str() {
                Some("button_reply") => &i["button_reply"],
                Some("list_reply") => &i["list_reply"],
                Some("nfm_reply") => {
                    text = s(&i["nfm_reply"]["response_json"]).map(str::to_string);
                    &Value::Null
                }
                _ => &Value::Null,
            };
            if let Some(id) = s(&reply["id"]) {
                button_data = Some(id.to_string());
                text = s(&reply["title"]).map(str::to_string);
            }
            if button_data.is_none() && text.is_none() {
                return None;
            }
        }
        // A template's quick-reply button.
        "button" => {
            let b = &m["button"];
            button_data = s(&b["payload"]).or_else(|| s(&b["text"])).map(str::to_string);
            text = s(&b["text"]).map(str::to_string);
            button_data.as_ref()?;
        }
        "reaction" | "system" | "ephemeral" | "request_welcome" => return None,
        other => {
            let shown = if other.is_empty() { "unknown" } else { other };
            let shown: String = shown.chars().take(40).collect();
            text = Some(format!("[WhatsApp: a message of type `{shown}` okno cannot show]"));
        }
    }
    let name = names.get(from).map(|n| n.to_string());
    let digits = from.bytes().all(|b| b.is_ascii_digit());
    Some(InboundMessage {
        channel_id: channel_id.into(),
        sender: InboundSender {
            user_id: from.to_string(),
            chat_id: from.to_string(),
            username: None,
            display_name: name,
            phone: digits.then(|| format!("+{from}")),
            email: None,
            is_group: false,
        },
        external_id,
        text,
        attachments,
        button_data,
        reply_to: None,
        reply_to_external: s(&m["context"]["id"]).map(str::to_string),
        author: None,
        member: None,
        bot_turn: false,
        subscription: None,
        survey: Default::default(),
        context: None,
        conversation_hint: None,
    })
}

/// The token in a button id okno made for long data (`okno:<token>`).
pub fn button_token(data: &str) -> Option<&str> {
    data.strip_prefix(TOKEN_PREFIX).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hook(value: Value) -> Value {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}]})
    }

    fn one(v: Value) -> InboundMessage {
        match parse("ch", &hook(v)).remove(0) {
            InboundEvent::Message(m) => *m,
            other => panic!("a message expected, got {other:?}"),
        }
    }

    #[test]
    fn metas_text_example_is_read() {
        let m = one(json!({"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
            "messages": [{"from": "16505551234", "id": "wamid.X", "timestamp": "1749416383", "type": "text",
                          "text": {"body": "Does it come in another color?"}, "context": {"from": "1555", "id": "wamid.OURS"}}]}));
        assert_eq!(m.text.as_deref(), Some("Does it come in another color?"));
        assert_eq!(m.sender.display_name.as_deref(), Some("Sheena Nelson"));
        assert_eq!(m.sender.phone.as_deref(), Some("+16505551234"));
        assert_eq!(m.reply_to_external.as_deref(), Some("wamid.OURS"));
    }

    #[test]
    fn media_locations_contacts_and_answers_are_read() {
        let m = one(json!({"messages": [{"from": "1", "id": "w1", "type": "document",
            "document": {"id": "MEDIA1", "mime_type": "application/pdf", "filename": "счёт.pdf", "caption": "вот"}}]}));
        assert_eq!(m.text.as_deref(), Some("вот"));
        assert!(
            matches!(&m.attachments[0], InboundAttachment::Url { url, name, .. } if url == "wa-media:MEDIA1" && name == "счёт.pdf")
        );
        let m = one(json!({"messages": [{"from": "1", "id": "w2", "type": "location",
            "location": {"latitude": 55.75, "longitude": 37.61, "name": "Офис", "address": "Тверская, 1"}}]}));
        assert_eq!(m.text.as_deref(), Some("📍 Офис (55.75, 37.61)\nТверская, 1"));
        let m = one(json!({"messages": [{"from": "1", "id": "w3", "type": "contacts",
            "contacts": [{"name": {"formatted_name": "Иван"}, "phones": [{"phone": "+7 900 000-00-00"}]}]}]}));
        assert_eq!(m.text.as_deref(), Some("👤 Иван: +7 900 000-00-00"));
        let m = one(json!({"messages": [{"from": "1", "id": "w4", "type": "interactive",
            "interactive": {"type": "list_reply", "list_reply": {"id": "menu:2", "title": "Отчёты"}}}]}));
        assert_eq!(m.button_data.as_deref(), Some("menu:2"));
        let m = one(json!({"messages": [{"from": "1", "id": "w5", "type": "button",
            "button": {"payload": "TRACK_1", "text": "Где заказ?"}}]}));
        assert_eq!(m.button_data.as_deref(), Some("TRACK_1"));
    }

    #[test]
    fn a_status_storm_is_read_whole() {
        let statuses: Vec<Value> = (0..50)
            .map(|i| {
                let st = ["sent", "delivered", "read"][i % 3];
                json!({"id": format!("wamid.{i}"), "status": st, "recipient_id": "1"})
            })
            .chain([json!({"id": "wamid.f", "status": "failed", "errors": [{"code": 131047, "title": "Re-engagement message"}]})])
            .collect();
        let got = parse("ch", &hook(json!({"statuses": statuses})));
        assert_eq!(got.len(), 51);
        assert!(
            matches!(&got[50], InboundEvent::Status { status: MessageStatus::Failed, reason: Some(r), .. } if r == "131047: Re-engagement message")
        );
    }
}
