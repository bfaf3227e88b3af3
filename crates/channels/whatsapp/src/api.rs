//! A thin client for the WhatsApp Cloud API (Meta's Graph API) and its error body. The access
//! token goes as `Authorization: Bearer <token>` on every call, the media download included
//! (Meta's media URLs refuse requests without it). `api_base` carries the Graph API version
//! (`https://graph.facebook.com/v21.0`); tests point it at the simulator.
//!
//! Meta's error body (developers.facebook.com, "WhatsApp error codes" → "Error response syntax"):
//! `{"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429,
//! "error_subcode": 2494055, "error_data": {"messaging_product": "whatsapp", "details": "…"},
//! "fbtrace_id": "…"}}`. Meta asks clients to act on `code` and `error_data.details`; the title
//! inside `message` will be deprecated.

use std::time::Duration;

use bytes::BytesMut;
use okno_channel::http::{describe, FetchError, Fetched, SafeClient};
use reqwest::multipart;
use reqwest::Method;
use serde_json::Value;

/// The Graph API version okno was written against.
pub const DEFAULT_API_BASE: &str = "https://graph.facebook.com/v21.0";

/// What went wrong with a Graph API call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// Meta answered with its error body.
    #[error("{}", describe_meta(*code, title, details.as_deref()))]
    Meta { status: u16, code: i64, subcode: Option<i64>, title: String, details: Option<String> },
    /// No usable answer (connection, timeout, a body that is not Meta's).
    #[error("{0}")]
    Network(String),
}

/// `131047: Re-engagement message (Message failed to send because more than 24 hours …)`.
pub fn describe_meta(code: i64, title: &str, details: Option<&str>) -> String {
    match details.filter(|d| !d.is_empty() && *d != title) {
        Some(d) => format!("{code}: {title} ({d})"),
        None => format!("{code}: {title}"),
    }
}

/// The title inside Meta's `message`: `(#131047) Re-engagement message` → `Re-engagement message`.
pub fn title_of(message: &str) -> String {
    let m = message.trim();
    if let Some(rest) = m.strip_prefix("(#") {
        if let Some(end) = rest.find(')') {
            return rest[end + 1..].trim().to_string();
        }
    }
    m.to_string()
}

/// Reads Meta's error body, whatever status carried it.
pub fn meta_error(status: u16, body: &[u8]) -> ApiError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = &v["error"];
    match e["code"].as_i64().or_else(|| e["code"].as_str().and_then(|c| c.parse().ok())) {
        Some(code) => ApiError::Meta {
            status,
            code,
            subcode: e["error_subcode"].as_i64(),
            title: title_of(e["message"].as_str().unwrap_or("")),
            details: e["error_data"]["details"].as_str().map(str::to_string),
        },
        None if status >= 500 || status == 429 => ApiError::Meta {
            status,
            code: 0,
            subcode: None,
            title: format!("HTTP {status}"),
            details: Some(String::from_utf8_lossy(&body[..body.len().min(200)]).to_string()),
        },
        None => ApiError::Network(format!(
            "HTTP {status} without Meta's error body: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
    }
}

/// One phone number's API.
#[derive(Clone)]
pub struct GraphApi {
    http: SafeClient,
    base: String,
    token: String,
    phone_number_id: String,
}

impl GraphApi {
    pub fn new(http: SafeClient, base: &str, token: &str, phone_number_id: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            phone_number_id: phone_number_id.to_string(),
        }
    }

    pub fn phone_number_id(&self) -> &str {
        &self.phone_number_id
    }

    fn redact(&self, text: &str) -> String {
        if self.token.is_empty() {
            return text.to_string();
        }
        text.replace(&self.token, "<token>")
    }

    fn redact_error(&self, e: ApiError) -> ApiError {
        match e {
            ApiError::Network(t) => ApiError::Network(self.redact(&t)),
            ApiError::Meta { status, code, subcode, title, details } => ApiError::Meta {
                status,
                code,
                subcode,
                title: self.redact(&title),
                details: details.map(|d| self.redact(&d)),
            },
        }
    }

    /// `method {base}/{path}` with an optional JSON body; the answer's JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        let mut req = self
            .http
            .request(method, &url)
            .map_err(|e| ApiError::Network(self.redact(&e.message)))?
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30))
            .query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        Self::answer(req.send().await).await.map_err(|e| self.redact_error(e))
    }

    async fn answer(sent: reqwest::Result<reqwest::Response>) -> Result<Value, ApiError> {
        let resp = sent.map_err(|e| ApiError::Network(describe(&e)))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| ApiError::Network(describe(&e)))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).map_err(|e| {
                ApiError::Network(format!(
                    "HTTP {status} with an unreadable body ({e}): {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ))
            });
        }
        Err(meta_error(status, &body))
    }

    /// `GET /{phone_number_id}?fields=display_phone_number,verified_name`: the number's facts,
    /// and a check of the token.
    pub async fn phone_number(&self) -> Result<Value, ApiError> {
        let fields = [("fields", "display_phone_number,verified_name".to_string())];
        self.call(Method::GET, &self.phone_number_id.clone(), &fields, None).await
    }

    /// `POST /{phone_number_id}/messages`.
    pub async fn send(&self, body: &Value) -> Result<Value, ApiError> {
        self.call(Method::POST, &format!("{}/messages", self.phone_number_id), &[], Some(body)).await
    }

    /// `POST /{phone_number_id}/media` (multipart `file`, `type`, `messaging_product`): the
    /// uploaded file's media id.
    pub async fn upload(&self, data: Vec<u8>, name: &str, mime: &str) -> Result<String, ApiError> {
        let part = multipart::Part::bytes(data)
            .file_name(name.to_string())
            .mime_str(mime)
            .map_err(|e| ApiError::Network(format!("bad MIME type `{mime}`: {e}")))?;
        let form = multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime.to_string())
            .part("file", part);
        let url = format!("{}/{}/media", self.base, self.phone_number_id);
        let req = self
            .http
            .post(&url)
            .map_err(|e| ApiError::Network(self.redact(&e.message)))?
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(120))
            .multipart(form);
        let v = Self::answer(req.send().await).await.map_err(|e| self.redact_error(e))?;
        v["id"].as_str().map(str::to_string).ok_or_else(|| ApiError::Network("Meta gave no media id".into()))
    }

    /// Downloads a media file a person sent: `GET /{media_id}` gives a short-lived URL, which is
    /// fetched with the same bearer token, at most `max` bytes.
    pub async fn download(&self, media_id: &str, max: u64) -> Result<Fetched, FetchError> {
        if media_id.is_empty() || !media_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(FetchError::Refused(format!("`{media_id}` is not a WhatsApp media id")));
        }
        let meta = self.call(Method::GET, media_id, &[], None).await.map_err(|e| match e {
            ApiError::Meta { status, .. } if status >= 500 || status == 429 => FetchError::Network(e.to_string()),
            ApiError::Network(r) => FetchError::Network(r),
            e => FetchError::Refused(e.to_string()),
        })?;
        let url = meta["url"].as_str().ok_or_else(|| FetchError::Refused("Meta gave no media URL".into()))?;
        let declared = meta["mime_type"].as_str().map(str::to_string);
        let mut resp = self
            .http
            .get(url)
            .map_err(|e| FetchError::Refused(e.message))?
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| FetchError::Network(describe(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                FetchError::Network(format!("HTTP {status}"))
            } else {
                FetchError::Refused(format!("HTTP {status}"))
            });
        }
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(FetchError::TooLarge { limit: max });
        }
        let mime = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
            .or(declared);
        let mut body = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| FetchError::Network(describe(&e)))? {
            if body.len() as u64 + chunk.len() as u64 > max {
                return Err(FetchError::TooLarge { limit: max });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body: body.freeze(), mime })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metas_error_body_is_read() {
        let body = br#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"error_data":{"messaging_product":"whatsapp","details":"More than 24 hours"},"fbtrace_id":"A"}}"#;
        let e = meta_error(400, body);
        assert_eq!(e.to_string(), "131047: Re-engagement message (More than 24 hours)");
        assert!(matches!(meta_error(502, b"<html>"), ApiError::Meta { status: 502, code: 0, .. }));
        assert!(matches!(meta_error(404, b"nope"), ApiError::Network(_)));
        assert_eq!(title_of("(#100) Invalid parameter"), "Invalid parameter");
    }
}
