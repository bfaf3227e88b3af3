//! The channel conformance suite (`okno_channel::conformance`) for the webhook channel. Its
//! counterpart is the receiving site: a small server here that checks each POST's signature,
//! records what it was sent, and answers the next one with a fault when told. Inbound requests
//! are signed as the contract says and handed to the platform as okno's hook route does.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use okno_channel::conformance::{self, Fault, Harness};
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, HookRequest, Platform, Received};
use okno_channel_webhook::{Webhook, SIGNATURE_HEADER};
use okno_domain::model::{Channel, ChannelKind, Identity};
use serde_json::{json, Value};

const SECRET: &str = "conformance-secret-0123456789";

/// What the receiving site was sent, and the fault it answers next.
#[derive(Default)]
struct Site {
    posts: Mutex<Vec<Value>>,
    fault: Mutex<Option<Fault>>,
}

async fn receive(State(site): State<Arc<Site>>, headers: HeaderMap, body: Bytes) -> Response {
    let sig = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !okno_domain::signing::verify(SECRET.as_bytes(), &body, sig) {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    match site.fault.lock().unwrap().take() {
        Some(Fault::TooManyRequests) => {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response()
        }
        Some(Fault::ServerError) => return (StatusCode::BAD_GATEWAY, "upstream down").into_response(),
        Some(Fault::Refused) | None => {}
    }
    let post: Value = serde_json::from_slice(&body).unwrap();
    let id = post["id"].clone();
    site.posts.lock().unwrap().push(post);
    (StatusCode::OK, axum::Json(json!({"id": format!("site-{}", id.as_str().unwrap_or_default())}))).into_response()
}

struct Wh {
    site: Arc<Site>,
    url: String,
    cx: Context,
    n: Mutex<u32>,
    last: Mutex<Vec<u8>>,
}

struct NoState;

#[async_trait]
impl ChannelState for NoState {
    async fn button_token(&self, data: &str) -> okno_domain::Result<String> {
        Ok(data.to_string())
    }
    async fn button_data(&self, token: &str) -> okno_domain::Result<Option<String>> {
        Ok(Some(token.to_string()))
    }
    async fn set_message_options(&self, _: &str, _: Value) -> okno_domain::Result<()> {
        Ok(())
    }
}

impl Wh {
    async fn deliver(&self, channel: &Channel, body: Vec<u8>) -> Vec<Received> {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, okno_domain::signing::sign(SECRET.as_bytes(), &body).parse().unwrap());
        *self.last.lock().unwrap() = body.clone();
        Webhook
            .receive(&self.cx, channel, &HookRequest::new(&headers, &body), &NoState)
            .await
            .expect("a signed request is taken")
    }

    fn next_id(&self) -> u32 {
        let mut n = self.n.lock().unwrap();
        *n += 1;
        *n
    }
}

#[async_trait]
impl Harness for Wh {
    fn platform(&self) -> Arc<dyn Platform> {
        Arc::new(Webhook)
    }

    fn context(&self) -> Context {
        self.cx.clone()
    }

    fn good_config(&self) -> Value {
        json!({"outbound_url": self.url, "secret": SECRET})
    }

    fn bad_config(&self) -> Value {
        json!({"outbound_url": self.url, "secret": "short"})
    }

    async fn person(&self, channel: &Channel) -> Identity {
        Identity {
            id: "identity-1".into(),
            contact_id: "contact-1".into(),
            channel_id: channel.id.clone(),
            kind: ChannelKind::Webhook,
            user_id: "site-user-1".into(),
            chat_id: "site-user-1".into(),
            username: None,
            display_name: Some("Анна".into()),
            is_group: false,
            blocked: false,
            opted_out: false,
            last_seen_at: None,
        }
    }

    async fn person_writes(&self, channel: &Channel, person: &Identity, text: &str) -> Vec<Received> {
        let body = json!({"message_id": format!("m-{}", self.next_id()), "user": {"id": person.user_id, "name": "Анна"}, "text": text});
        self.deliver(channel, serde_json::to_vec(&body).unwrap()).await
    }

    async fn redelivered(&self, channel: &Channel, _: &Identity) -> Vec<Received> {
        let body = self.last.lock().unwrap().clone();
        self.deliver(channel, body).await
    }

    async fn person_presses(&self, channel: &Channel, person: &Identity, _: &str, data: &str) -> Vec<Received> {
        let body = json!({"message_id": format!("p-{}", self.next_id()), "user": {"id": person.user_id}, "button": {"data": data}});
        self.deliver(channel, serde_json::to_vec(&body).unwrap()).await
    }

    /// The contract has no edits.
    async fn person_edits(&self, _: &Channel, _: &Identity, _: &str) -> Option<Vec<Received>> {
        None
    }

    /// Nor blocks: a site's person cannot block it.
    async fn person_blocks(&self, _: &Channel, _: &Identity) -> Option<Vec<Received>> {
        None
    }

    async fn shown(&self, person: &Identity) -> Vec<String> {
        let posts = self.site.posts.lock().unwrap();
        posts
            .iter()
            .filter(|p| p["to"]["id"] == json!(person.user_id))
            .filter_map(|p| p["text"].as_str().map(str::to_string))
            .collect()
    }

    async fn shown_buttons(&self, _: &Identity) -> Vec<String> {
        let posts = self.site.posts.lock().unwrap();
        let Some(last) = posts.last() else { return Vec::new() };
        last["buttons"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .filter_map(|b| b["text"].as_str().map(str::to_string))
            .collect()
    }

    /// By the contract every answer but a 2xx is retried: a site has no permanent refusal.
    fn fail_next_send(&self, fault: Fault) -> bool {
        if fault == Fault::Refused {
            return false;
        }
        *self.site.fault.lock().unwrap() = Some(fault);
        true
    }
}

#[tokio::test]
async fn the_webhook_channel_passes_the_channel_conformance_suite() {
    let site = Arc::new(Site::default());
    let app = axum::Router::new().route("/out", axum::routing::post(receive)).with_state(site.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/out", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = std::env::temp_dir().join(format!("okno-wh-conformance-{}", std::process::id()));
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).unwrap(),
        public_url: "http://127.0.0.1:1".into(),
        files: FileStore::new(dir.join("files")).unwrap(),
        max_download: 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    };
    let h = Wh { site, url, cx, n: Mutex::new(0), last: Mutex::new(Vec::new()) };
    conformance::run(&h).await;
    let _ = std::fs::remove_dir_all(dir);
}
