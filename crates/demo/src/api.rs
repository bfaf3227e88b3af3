//! okno's REST API as the demo's 1C calls it: over real HTTP, with the demo's API token — the
//! same calls an integrator makes, so the demo shows them working rather than going around them.

use okno_domain::{Error, ErrorKind, Result};
use serde_json::Value;

/// A client of one okno's `/api/v1`.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// An answer of the API: its status and JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body (a JSON string when it was not JSON).
    pub body: Value,
}

impl Reply {
    /// The body when the status is 2xx, else an error carrying okno's code and message, of
    /// the kind okno's status says (a conflict stays a conflict, a missing thing not found).
    pub fn ok(self, what: &str) -> Result<Value> {
        if (200..300).contains(&self.status) {
            return Ok(self.body);
        }
        let code = self.body["error"]["code"].as_str().unwrap_or("unexpected_answer").to_string();
        let message =
            self.body["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| self.body.to_string());
        Err(Error::new(kind_of(self.status), code, format!("{what}: okno answered {}: {message}", self.status)))
    }
}

/// The kind of error an HTTP status of okno's API stands for (the inverse of okno's own
/// mapping); a status okno does not answer with is an answer the demo did not expect.
fn kind_of(status: u16) -> ErrorKind {
    match status {
        400 => ErrorKind::Invalid,
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        413 => ErrorKind::TooLarge,
        422 => ErrorKind::Unprocessable,
        429 | 502..=504 => ErrorKind::Unavailable,
        500..=599 => ErrorKind::Internal,
        _ => ErrorKind::Unprocessable,
    }
}

impl Api {
    /// A client of the okno at `base` (`http://127.0.0.1:PORT`) using `token`.
    pub fn new(base: &str, token: &str) -> Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| Error::internal(format!("building the demo's HTTP client: {e}")))?;
        Ok(Api { http, base: base.trim_end_matches('/').to_string(), token: token.to_string() })
    }

    /// Calls `method path` with a JSON body (or a raw one with its content type).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Body<'_>>) -> Result<Reply> {
        let mut req = self.http.request(method, format!("{}/api/v1{path}", self.base)).bearer_auth(&self.token);
        match body {
            Some(Body::Json(v)) => req = req.json(v),
            Some(Body::Raw(content_type, text)) => {
                req = req.header(reqwest::header::CONTENT_TYPE, content_type).body(text.to_string())
            }
            None => {}
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Error::unavailable("okno_unreachable", format!("calling okno's {path}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok(Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.call(reqwest::Method::POST, path, Some(Body::Json(body))).await
    }

    /// `PUT path` with a raw body of `content_type`.
    pub async fn put_raw(&self, path: &str, content_type: &str, body: &str) -> Result<Reply> {
        self.call(reqwest::Method::PUT, path, Some(Body::Raw(content_type, body))).await
    }
}

enum Body<'a> {
    Json(&'a Value),
    Raw(&'a str, &'a str),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

    use serde_json::json;

    use super::*;

    fn refused(status: u16, code: &str) -> Error {
        let body = json!({"error": {"code": code, "message": "no"}});
        Reply { status, body }.ok("posting").unwrap_err()
    }

    #[test]
    fn an_error_of_okno_keeps_its_kind_and_code() {
        for (status, kind) in [
            (400, ErrorKind::Invalid),
            (403, ErrorKind::Forbidden),
            (404, ErrorKind::NotFound),
            (409, ErrorKind::Conflict),
            (413, ErrorKind::TooLarge),
            (422, ErrorKind::Unprocessable),
            (503, ErrorKind::Unavailable),
            (500, ErrorKind::Internal),
        ] {
            let e = refused(status, "some_code");
            assert_eq!((e.kind, e.code.as_ref()), (kind, "some_code"), "{status}");
            assert!(e.message.contains(&format!("okno answered {status}")), "{}", e.message);
        }
    }

    #[test]
    fn a_success_is_the_body() {
        assert_eq!(Reply { status: 201, body: json!({"id": "1"}) }.ok("posting").unwrap(), json!({"id": "1"}));
    }
}
