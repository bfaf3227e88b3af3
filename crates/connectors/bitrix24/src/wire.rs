//! Reading Bitrix24's values as they come: numbers as numbers or strings (`"43"`), flags as
//! `true`, `1`, `"Y"`, lists as arrays or objects keyed `0`, `1`, … (from forms).

use serde_json::{Map, Value};

/// A number however it came (`5`, `"5"`).
pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64))
        }
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Text however it came (`"a"`, `5`); `null` and `false` are none.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("Y".into()),
        _ => None,
    }
}

/// A flag however it came.
pub(crate) fn flag(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        Value::String(s) => matches!(s.trim().to_ascii_uppercase().as_str(), "1" | "Y" | "TRUE"),
        _ => false,
    }
}

/// The items of a list, whichever way it came.
pub(crate) fn items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => {
            let mut kv: Vec<(&String, &Value)> = m.iter().collect();
            kv.sort_by_key(|(k, _)| k.parse::<u64>().unwrap_or(u64::MAX));
            kv.into_iter().map(|(_, v)| v).collect()
        }
        _ => Vec::new(),
    }
}

/// A field's number.
pub(crate) fn int_at(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(int)
}

/// A field's text, empty text as none.
pub(crate) fn text_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(text).filter(|s| !s.is_empty())
}

/// An object's fields (an empty map for anything else).
pub(crate) fn object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}
