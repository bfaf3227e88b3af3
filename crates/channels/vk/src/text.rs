//! Text and buttons for VK: messages are plain text of at most 4,096 characters (VK answers
//! 914 "Message is too long" beyond it, where client libraries split), posts name people as
//! `[id<n>|name]`, and a button's payload is JSON of at most 255 characters.

use okno_channel::Span;
use serde_json::{json, Value};

/// Most characters in one message.
pub const TEXT_LIMIT: usize = 4096;
/// Longest button payload, in characters.
pub const PAYLOAD_LIMIT: usize = 255;
/// Longest button label, in characters.
pub const LABEL_LIMIT: usize = 40;

/// Splits `text` into parts of at most `limit` characters, preferring to cut after a blank
/// line, then a line break, then a space; a single over-long word is cut hard. Parts keep
/// their order; nothing is dropped except the separators at the cuts.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > limit {
        let end = rest.char_indices().nth(limit).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..end];
        let cut =
            ["\n\n", "\n", " "].iter().find_map(|sep| window.rfind(sep).filter(|&at| at > 0).map(|at| (at, sep.len())));
        let (head, skip) = match cut {
            Some((at, len)) => (&rest[..at], len),
            None => (window, 0),
        };
        parts.push(head.to_string());
        rest = &rest[head.len() + skip..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_string());
    }
    parts
}

/// A post's text: VK shows no bold or italic from a community, so spans are plain; a mention
/// is `[id<n>|name]`, which VK shows as a link to the person and notifies them.
pub fn render_spans(spans: &[Span]) -> String {
    let mut out = String::new();
    for s in spans {
        match s {
            Span::Plain(t) | Span::Bold(t) | Span::Italic(t) => out.push_str(t),
            Span::Mention { user_id, name } if user_id.bytes().all(|b| b.is_ascii_digit()) && !user_id.is_empty() => {
                let name: String = name.chars().filter(|c| !matches!(c, '[' | ']' | '|')).collect();
                out.push_str(&format!("[id{user_id}|{name}]"));
            }
            Span::Mention { name, .. } => out.push_str(name),
        }
    }
    out
}

/// The payload of a callback button carrying `data` itself, when it fits.
pub fn button_payload(data: &str) -> Option<String> {
    let p = json!({ "d": data }).to_string();
    (p.chars().count() <= PAYLOAD_LIMIT).then_some(p)
}

/// The payload of a callback button standing for data kept by okno under `token`.
pub fn token_payload(token: &str) -> String {
    json!({ "t": token }).to_string()
}

/// What a pressed button's payload carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Data(String),
    Token(String),
    /// Another bot's or an older keyboard's payload: kept as it came.
    Raw(String),
}

/// Reads a payload as VK delivers it: a JSON string, or already parsed.
pub fn read_payload(v: &Value) -> Option<Payload> {
    let parsed = match v {
        Value::String(s) => serde_json::from_str::<Value>(s).unwrap_or(Value::String(s.clone())),
        Value::Null => return None,
        other => other.clone(),
    };
    if let Some(d) = parsed.get("d").and_then(Value::as_str) {
        return Some(Payload::Data(d.to_string()));
    }
    if let Some(t) = parsed.get("t").and_then(Value::as_str) {
        return Some(Payload::Token(t.to_string()));
    }
    Some(Payload::Raw(match parsed {
        Value::String(s) => s,
        other => other.to_string(),
    }))
}

/// A label cut to VK's length.
pub fn label(text: &str) -> String {
    text.chars().take(LABEL_LIMIT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_split_on_boundaries_in_order() {
        let text = format!("{}\n\n{}", "а".repeat(4090), "б".repeat(10));
        assert_eq!(split(&text, TEXT_LIMIT), vec!["а".repeat(4090), "б".repeat(10)]);
        let hard = "x".repeat(9000);
        let parts = split(&hard, TEXT_LIMIT);
        assert_eq!(parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(), vec![4096, 4096, 808]);
        assert_eq!(split("", TEXT_LIMIT), vec![String::new()]);
    }

    #[test]
    fn payloads_round_trip_and_long_data_needs_a_token() {
        let p = button_payload("task:take:1").unwrap();
        assert_eq!(read_payload(&Value::String(p.clone())), Some(Payload::Data("task:take:1".into())));
        assert_eq!(read_payload(&serde_json::from_str(&p).unwrap()), Some(Payload::Data("task:take:1".into())));
        assert_eq!(button_payload(&"x".repeat(300)), None);
        assert_eq!(read_payload(&Value::String(token_payload("7"))), Some(Payload::Token("7".into())));
        assert_eq!(
            read_payload(&json!("{\"command\":\"start\"}")),
            Some(Payload::Raw("{\"command\":\"start\"}".into()))
        );
    }

    #[test]
    fn mentions_link_the_person_and_cannot_break_out() {
        let spans = vec![
            Span::Bold("Задача".into()),
            Span::Plain(": ".into()),
            Span::Mention { user_id: "42".into(), name: "Иван [x|y]".into() },
        ];
        assert_eq!(render_spans(&spans), "Задача: [id42|Иван xy]");
    }
}
