//! The website widget in tests: connecting a `widget` channel, and a [`Visitor`] that calls
//! the visitor API the way the widget's script does (with the site's `Origin`), reading the
//! live stream as Server-Sent Events.

use std::time::Duration;

use serde_json::{json, Value};

use crate::app::Answer;
use crate::TestApp;

/// The secret the test channels sign customers' ids with.
pub const WIDGET_SECRET: &str = "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2";
/// The site the test channels are embedded on.
pub const SITE: &str = "https://shop.example";

/// `hex(HMAC-SHA256(secret, id))`: what a site's server computes for a logged-in customer.
pub fn customer_hash(secret: &str, id: &str) -> String {
    okno_domain::signing::sign(secret.as_bytes(), id.as_bytes()).trim_start_matches("sha256=").to_string()
}

impl TestApp {
    /// Connects a `widget` channel embedded on `origins` with [`WIDGET_SECRET`] and `extra`
    /// configuration; returns its id.
    pub async fn widget_channel(&self, origins: &[&str], extra: Value) -> String {
        let mut config = json!({"origins": origins, "secret": WIDGET_SECRET});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            config[k] = v;
        }
        let a = self.post("/api/v1/channels", json!({"kind": "widget", "name": "Site", "config": config})).await;
        assert_eq!(a.status, 201, "{a:?}");
        a.body["id"].as_str().expect("channel id").to_string()
    }

    /// A visitor of the widget channel `channel_id` on a page of `origin`.
    pub fn visitor(&self, channel_id: &str, origin: &str) -> Visitor {
        Visitor {
            http: reqwest::Client::new(),
            base: format!("{}/widget/{channel_id}", self.url),
            origin: origin.to_string(),
            token: None,
        }
    }
}

/// A visitor's browser, as the script drives the API.
pub struct Visitor {
    pub http: reqwest::Client,
    /// `http://127.0.0.1:PORT/widget/{channel_id}`
    pub base: String,
    pub origin: String,
    /// The token the session call gave (kept in localStorage by the script).
    pub token: Option<String>,
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
}

impl Visitor {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).header("origin", &self.origin);
        if let Some(t) = &self.token {
            req = req.header("x-okno-visitor", t);
        }
        req
    }

    /// Starts (or resumes, with the kept token) a session; `customer` is the site's signed
    /// customer, if any. Keeps the token of a successful answer.
    pub async fn session(&mut self, customer: Option<Value>) -> Answer {
        let body = json!({"token": self.token, "customer": customer});
        let a =
            answer(self.request(reqwest::Method::POST, "/session").json(&body).send().await.expect("session")).await;
        if a.status == 200 {
            self.token = a.body["token"].as_str().map(str::to_string);
        }
        a
    }

    /// Posts a JSON body to `path`.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        answer(self.request(reqwest::Method::POST, path).json(&body).send().await.expect("post")).await
    }

    /// Writes `text` with the browser's `echo_id`.
    pub async fn send(&self, echo_id: &str, text: &str) -> Answer {
        self.post("/messages", json!({"echo_id": echo_id, "text": text})).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        answer(self.request(reqwest::Method::GET, path).send().await.expect("get")).await
    }

    /// Uploads `bytes` as `name`.
    pub async fn upload(&self, name: &str, bytes: &[u8]) -> Answer {
        let req = self.request(reqwest::Method::POST, "/files").query(&[("name", name)]).body(bytes.to_vec());
        answer(req.send().await.expect("upload")).await
    }

    /// Opens the live stream, resuming after `last_event_id` when given.
    pub async fn stream(&self, last_event_id: Option<&str>) -> EventStream {
        let token = self.token.clone().expect("a session first");
        let mut req = self
            .http
            .get(format!("{}/stream", self.base))
            .query(&[("token", token)])
            .header("origin", &self.origin)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.expect("stream");
        assert_eq!(resp.status(), 200, "the stream opens");
        EventStream { resp, buf: String::new() }
    }
}

/// A live stream being read.
pub struct EventStream {
    resp: reqwest::Response,
    buf: String,
}

impl EventStream {
    /// The next event (keep-alive comments skipped), or `None` when none comes within `secs`.
    pub async fn next(&mut self, secs: u64) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(e) = parse_event(&block) {
                    return Some(e);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk()).await.ok()?.ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event named `name`, skipping others.
    pub async fn next_named(&mut self, name: &str, secs: u64) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now()).as_secs().max(1);
            let e = self.next(left).await?;
            if e.event == name {
                return Some(e);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
        }
    }
}

fn parse_event(block: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data) = (None, "message".to_string(), String::new());
    let mut any = false;
    for line in block.lines() {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        any = true;
        let (field, value) =
            line.split_once(':').map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v))).unwrap_or((line, ""));
        match field {
            "id" => id = Some(value.to_string()),
            "event" => event = value.to_string(),
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
    }
    any.then(|| SseEvent { id, event, data: serde_json::from_str(&data).unwrap_or(Value::String(data)) })
}
