//! `NewMessageBody` as the platform checks it (max-bot-api-schemas `NewMessageBody`,
//! `AttachmentRequest`, `Button`; dev.max.ru keyboard page), turned into the attachments a
//! message then carries (`Attachment`).

use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::server::ApiError;
use crate::state::Bot;

/// `NewMessageBody.text` `maxLength: 4000`.
pub(crate) const MAX_TEXT: usize = 4000;

/// A checked message body.
pub(crate) struct Checked {
    /// `None`: the key was absent or null.
    pub text: Option<String>,
    pub format: Option<String>,
    /// `None`: absent or null (an edit keeps the old ones); `Some(vec![])` removes them.
    pub attachments: Option<Vec<Value>>,
    /// The request attachments as sent, for the record.
    pub raw_attachments: Vec<Value>,
    /// `link` (reply or forward).
    pub link: Option<(String, String)>,
}

/// Checks a `NewMessageBody`; `base` is the simulator's address for file URLs.
pub(crate) fn check(bot: &Bot, body: &Value, base: &str) -> Result<Checked, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::payload("Request body must be a JSON object"));
    };
    let text = match obj.get("text") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::payload("text: must be a string")),
    };
    if let Some(t) = &text {
        // `maxLength` counts characters; the body is UTF-8 JSON.
        let n = t.chars().count();
        if n > MAX_TEXT {
            return Err(ApiError::payload(&format!("text: size must be between 0 and {MAX_TEXT}, got {n}")));
        }
    }
    let format = match obj.get("format") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) if f == "markdown" || f == "html" => Some(f.clone()),
        Some(other) => return Err(ApiError::payload(&format!("format: unknown value {other}"))),
    };
    let (attachments, raw_attachments) = match obj.get("attachments") {
        None | Some(Value::Null) => (None, Vec::new()),
        Some(Value::Array(list)) => (Some(attachments(bot, list, base)?), list.clone()),
        Some(_) => return Err(ApiError::payload("attachments: must be an array")),
    };
    let link = match obj.get("link") {
        None | Some(Value::Null) => None,
        Some(l) => {
            let kind = l["type"].as_str().unwrap_or_default();
            if kind != "reply" && kind != "forward" {
                return Err(ApiError::payload("link.type: must be reply or forward"));
            }
            let mid = l["mid"].as_str().unwrap_or_default();
            if !bot.messages.contains_key(mid) {
                return Err(ApiError::payload("link.mid: message not found"));
            }
            Some((kind.to_string(), mid.to_string()))
        }
    };
    Ok(Checked { text, format, attachments, raw_attachments, link })
}

/// The attachments of a new message, checked: upload tokens must be processed, a `file` or
/// `audio` must be the only attachment besides a keyboard (schema `FileAttachmentRequest`,
/// `AudioAttachmentRequest`: "Должен быть единственным вложением"; [3P] a MAX client
/// library's table of `400 proto.payload` answers), keyboards must fit.
fn attachments(bot: &Bot, list: &[Value], base: &str) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    let mut keyboards = 0;
    let mut solitary = 0;
    for a in list {
        let kind = a["type"].as_str().unwrap_or_default();
        let payload = &a["payload"];
        let converted = match kind {
            "inline_keyboard" => {
                keyboards += 1;
                keyboard(payload)?;
                json!({"type": "inline_keyboard", "payload": {"buttons": payload["buttons"]}})
            }
            "image" => {
                if let Some(url) = payload["url"].as_str() {
                    json!({"type": "image", "payload": {"url": url, "token": format!("url-{}", url.len())}})
                } else {
                    let token = payload["token"]
                        .as_str()
                        .map(str::to_string)
                        .or_else(|| {
                            payload["photos"]
                                .as_object()
                                .and_then(|m| m.values().next())
                                .and_then(|p| p["token"].as_str())
                                .map(str::to_string)
                        })
                        .ok_or_else(|| ApiError::payload("image: payload needs url, token or photos"))?;
                    ready(bot, &token)?;
                    json!({"type": "image", "payload": {"photo_id": token.len(), "token": token, "url": format!("{base}/files/{token}")}})
                }
            }
            "video" | "audio" | "file" => {
                let token = payload["token"]
                    .as_str()
                    .ok_or_else(|| ApiError::payload(&format!("{kind}: payload.token is required")))?;
                ready(bot, token)?;
                if kind != "video" {
                    solitary += 1;
                }
                let mut m = Map::new();
                m.insert("type".into(), kind.into());
                m.insert("payload".into(), json!({"url": format!("{base}/files/{token}"), "token": token}));
                if kind == "file" {
                    let upload = bot.uploads.values().find(|u| u.token == token);
                    let name = upload.and_then(|u| u.name.clone()).unwrap_or_else(|| "file".into());
                    let size = upload.and_then(|u| u.bytes.as_ref()).map(|b| b.len()).unwrap_or(0);
                    m.insert("filename".into(), name.into());
                    m.insert("size".into(), size.into());
                }
                Value::Object(m)
            }
            "sticker" | "contact" | "share" => a.clone(),
            "location" => {
                // `latitude`/`longitude` sit at the top level, not in a payload (schema
                // `LocationAttachmentRequest`).
                if !a["latitude"].is_number() || !a["longitude"].is_number() {
                    return Err(ApiError::payload("location: latitude and longitude are required"));
                }
                a.clone()
            }
            other => return Err(ApiError::payload(&format!("attachments: unknown type {other:?}"))),
        };
        out.push(converted);
    }
    if keyboards > 1 {
        return Err(ApiError::payload("Only one inline_keyboard attachment is allowed"));
    }
    let others = list.len() - keyboards;
    if solitary > 0 && (solitary > 1 || others > 1) {
        return Err(ApiError::payload("Must be only one file attachment in message"));
    }
    Ok(out)
}

/// An upload token may be attached once its file arrived and was processed; before that the
/// platform answers `attachment.not.ready` (go client `stabs/error.attachment.not.ready.json`,
/// dev.max.ru POST /uploads).
fn ready(bot: &Bot, token: &str) -> Result<(), ApiError> {
    if bot.files.contains_key(token) {
        return Ok(());
    }
    let Some(upload) = bot.uploads.values().find(|u| u.token == token) else {
        return Err(ApiError::payload("Invalid attachment token"));
    };
    match upload.ready_at {
        Some(at) if upload.bytes.is_some() && Instant::now() >= at => Ok(()),
        _ => Err(ApiError::new(400, "attachment.not.ready", "Key: errors.process.attachment.file.not.processed")),
    }
}

/// Keyboard limits (dev.max.ru keyboard page, schema `Button`): at most 210 buttons in at most
/// 30 rows of at most 7; a row holding a link, open_app, request_geo_location or
/// request_contact button holds at most 3; `text` 1–128 characters; a callback or clipboard
/// `payload` up to 1024; a link `url` up to 2048.
pub(crate) fn keyboard(payload: &Value) -> Result<(), ApiError> {
    let Some(rows) = payload["buttons"].as_array() else {
        return Err(ApiError::payload("inline_keyboard: payload.buttons is required"));
    };
    if rows.is_empty() {
        return Err(ApiError::payload("inline_keyboard: buttons must not be empty"));
    }
    if rows.len() > 30 {
        return Err(ApiError::payload("inline_keyboard: at most 30 rows"));
    }
    let mut total = 0;
    for row in rows {
        let Some(row) = row.as_array() else {
            return Err(ApiError::payload("inline_keyboard: each row must be an array"));
        };
        total += row.len();
        let wide = row.iter().any(|b| {
            matches!(b["type"].as_str(), Some("link" | "open_app" | "request_geo_location" | "request_contact"))
        });
        let max = if wide { 3 } else { 7 };
        if row.len() > max {
            return Err(ApiError::payload(&format!("inline_keyboard: at most {max} buttons in this row")));
        }
        for b in row {
            button(b)?;
        }
    }
    if total > 210 {
        return Err(ApiError::payload("inline_keyboard: at most 210 buttons"));
    }
    Ok(())
}

fn button(b: &Value) -> Result<(), ApiError> {
    let kind = b["type"].as_str().unwrap_or_default();
    let text = b["text"].as_str().unwrap_or_default();
    if !(1..=128).contains(&text.chars().count()) {
        return Err(ApiError::payload("button.text: size must be between 1 and 128"));
    }
    let limit = |field: &str, max: usize| -> Result<(), ApiError> {
        match b[field].as_str() {
            Some(v) if v.chars().count() <= max => Ok(()),
            Some(_) => Err(ApiError::payload(&format!("button.{field}: size must be at most {max}"))),
            None => Err(ApiError::payload(&format!("button.{field}: is required for {kind} buttons"))),
        }
    };
    match kind {
        "callback" | "clipboard" => limit("payload", 1024),
        "link" => limit("url", 2048),
        "open_app" => match b["web_app"].as_str() {
            Some(_) => Ok(()),
            None => Err(ApiError::payload("Field 'webApp' cannot be null")),
        },
        "request_contact" | "request_geo_location" | "message" => Ok(()),
        other => Err(ApiError::payload(&format!("button.type: unknown type {other:?}"))),
    }
}
