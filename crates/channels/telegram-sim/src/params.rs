//! Method parameters, read the way the Bot API server reads them: from the query string and
//! from an `application/x-www-form-urlencoded`, `application/json` or `multipart/form-data`
//! body. A JSON body is flattened: string values are decoded, every other value is kept as
//! its raw JSON text, so `{"reply_markup":{…}}` equals the form field `reply_markup={…}`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::Value;

use crate::methods::ApiError;

/// The largest request body the simulator reads; above the 50 MB document limit so that
/// "file is too big" can be answered for real uploads.
pub(crate) const BODY_LIMIT: usize = 128 * 1024 * 1024;

/// An uploaded multipart file part.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub name: Option<String>,
    pub mime: Option<String>,
    pub bytes: Bytes,
}

/// One parameter value.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    File(Upload),
}

/// All parameters of one call.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(HashMap<String, Param>);

impl Params {
    /// A text parameter (file parts are not text).
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(Param::Text(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// A text parameter that is present and not empty.
    pub(crate) fn non_empty(&self, name: &str) -> Option<&str> {
        self.text(name).filter(|s| !s.is_empty())
    }

    /// Any parameter.
    pub(crate) fn get(&self, name: &str) -> Option<&Param> {
        self.0.get(name)
    }

    /// An integer parameter: like the server, leading digits count and garbage reads as 0.
    pub(crate) fn int(&self, name: &str) -> Option<i64> {
        let raw = self.non_empty(name)?.trim();
        if let Ok(v) = raw.parse::<i64>() {
            return Some(v);
        }
        let (sign, digits) = match raw.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, raw),
        };
        let lead: String = digits.chars().take_while(char::is_ascii_digit).collect();
        Some(sign * lead.parse::<i64>().unwrap_or(0))
    }

    /// A boolean parameter: "true", "yes" and "1" (any case) are true, anything else false.
    pub(crate) fn bool(&self, name: &str) -> bool {
        self.text(name).map(|s| matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "1")).unwrap_or(false)
    }

    /// A JSON-serialized parameter: `None` when absent or empty, `Some(Err)` when unreadable.
    pub(crate) fn json(&self, name: &str) -> Option<Result<Value, serde_json::Error>> {
        let raw = self.non_empty(name)?;
        Some(serde_json::from_str(raw))
    }

    fn insert_text(&mut self, name: String, value: String) {
        self.0.insert(name, Param::Text(value));
    }
}

/// Reads every parameter of a request.
pub(crate) async fn read(req: Request) -> Result<Params, ApiError> {
    let mut params = Params::default();
    if let Some(query) = req.uri().query() {
        for (k, v) in form_pairs(query.as_bytes()) {
            params.insert_text(k, v);
        }
    }
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();

    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(req, &())
            .await
            .map_err(|e| ApiError::bad(&format!("can't parse multipart/form-data request: {e}")))?;
        loop {
            let field = multipart
                .next_field()
                .await
                .map_err(|e| ApiError::bad(&format!("can't parse multipart/form-data request: {e}")))?;
            let Some(field) = field else { break };
            let Some(name) = field.name().map(str::to_string) else {
                continue;
            };
            let file_name = field.file_name().map(str::to_string);
            let mime = field.content_type().map(str::to_string);
            let bytes = field
                .bytes()
                .await
                .map_err(|e| ApiError::bad(&format!("can't parse multipart/form-data request: {e}")))?;
            if file_name.is_some() {
                params.0.insert(name, Param::File(Upload { name: file_name, mime, bytes }));
            } else {
                params.insert_text(name, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
        return Ok(params);
    }

    let body = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
        .await
        .map_err(|_| ApiError::new(413, "Request Entity Too Large"))?;
    if content_type.starts_with("application/json") {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(params);
        }
        let value: Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::bad(&format!("can't parse JSON object: {e}")))?;
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        Value::String(s) => params.insert_text(k, s),
                        // A JSON null is taken as "not given": serializers often emit null for
                        // an absent optional field (an assumption; the server's reader is not
                        // documented on this point).
                        Value::Null => {}
                        other => params.insert_text(k, other.to_string()),
                    }
                }
            }
            Value::String(s) => params.insert_text("content".into(), s),
            _ => return Err(ApiError::bad("can't parse JSON object")),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in form_pairs(&body) {
            params.insert_text(k, v);
        }
    }
    Ok(params)
}

/// Splits `a=1&b=x%20y` into decoded pairs.
fn form_pairs(raw: &[u8]) -> Vec<(String, String)> {
    raw.split(|b| *b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = match part.iter().position(|b| *b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &part[part.len()..]),
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding with `+` as a space.
fn decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_percent_decoded() {
        let pairs = form_pairs(b"text=a+b%26c&chat_id=5&empty=&flag");
        assert_eq!(
            pairs,
            vec![
                ("text".to_string(), "a b&c".to_string()),
                ("chat_id".to_string(), "5".to_string()),
                ("empty".to_string(), String::new()),
                ("flag".to_string(), String::new()),
            ]
        );
        assert_eq!(decode(b"100%"), "100%");
        assert_eq!(decode(b"%F0%9F%8F%9F"), "🏟");
    }
}
