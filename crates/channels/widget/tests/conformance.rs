//! The channel conformance suite (`okno_channel::conformance`) for the website widget. The
//! widget has no outside platform: the "simulator" is a visitor — envelopes signed the way
//! okno's visitor API signs them are handed to `receive`, and what the adapter delivers is
//! recorded the way a visitor's stream is rung (and made to fail on demand).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::conformance::{self, Fault, Harness};
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, HookRequest, Platform, Received, SendError};
use okno_channel_widget::identity::{envelope_signature, new_token, visitor_id};
use okno_channel_widget::live::{Deliver, Notice};
use okno_channel_widget::{Widget, SIGNATURE_HEADER};
use okno_domain::model::{Channel, ChannelKind, Identity, Message};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

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

/// What visitors were shown, and the next delivery's fault.
#[derive(Default)]
struct Visitors {
    shown: Mutex<Vec<(String, Arc<Message>)>>,
    fault: Mutex<Option<Fault>>,
}

#[async_trait]
impl Deliver for Visitors {
    async fn ring(&self, _channel: &str, visitor: &str, notice: Notice) -> Result<(), SendError> {
        match self.fault.lock().unwrap().take() {
            Some(Fault::TooManyRequests) => {
                return Err(SendError::Retry { reason: "slow down".into(), after: Some(Duration::from_secs(1)) })
            }
            Some(Fault::ServerError) => return Err(SendError::retry("the store is away")),
            Some(Fault::Refused) => return Err(SendError::permanent("the visitor is gone")),
            None => {}
        }
        if let Notice::Message(m) = notice {
            self.shown.lock().unwrap().push((visitor.to_string(), m));
        }
        Ok(())
    }
}

struct WidgetHarness {
    visitors: Arc<Visitors>,
    cx: Context,
    token: String,
    last: Mutex<Option<Value>>,
}

impl WidgetHarness {
    async fn deliver(&self, channel: &Channel, envelope: &Value) -> Vec<Received> {
        *self.last.lock().unwrap() = Some(envelope.clone());
        let body = serde_json::to_vec(envelope).unwrap();
        let secret = channel.config["secret"].as_str().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&envelope_signature(secret, &body)).unwrap());
        self.platform()
            .receive(&self.cx, channel, &HookRequest::new(&headers, &body), &NoState)
            .await
            .expect("a signed envelope is accepted")
    }
}

#[async_trait]
impl Harness for WidgetHarness {
    fn platform(&self) -> Arc<dyn Platform> {
        Arc::new(Widget::with_delivery(self.visitors.clone()))
    }
    fn context(&self) -> Context {
        self.cx.clone()
    }
    fn good_config(&self) -> Value {
        json!({"origins": ["https://shop.example"], "title": "Чат"})
    }
    fn bad_config(&self) -> Value {
        json!({"origins": ["shop.example/path"]})
    }

    async fn person(&self, channel: &Channel) -> Identity {
        let id = visitor_id(&self.token);
        Identity {
            id: "identity-1".into(),
            contact_id: "contact-1".into(),
            channel_id: channel.id.clone(),
            kind: ChannelKind::Widget,
            user_id: id.clone(),
            chat_id: id,
            username: None,
            display_name: None,
            is_group: false,
            blocked: false,
            opted_out: false,
            last_seen_at: None,
        }
    }

    async fn person_writes(&self, channel: &Channel, person: &Identity, text: &str) -> Vec<Received> {
        let echo = okno_domain::ids::random_hex(8);
        self.deliver(channel, &json!({"visitor": person.user_id, "echo_id": echo, "text": text})).await
    }

    async fn redelivered(&self, channel: &Channel, _: &Identity) -> Vec<Received> {
        let last = self.last.lock().unwrap().clone().expect("a message before");
        self.deliver(channel, &last).await
    }

    async fn person_presses(&self, channel: &Channel, person: &Identity, _: &str, data: &str) -> Vec<Received> {
        let echo = okno_domain::ids::random_hex(8);
        self.deliver(channel, &json!({"visitor": person.user_id, "echo_id": echo, "button": data})).await
    }
    async fn person_edits(&self, _: &Channel, _: &Identity, _: &str) -> Option<Vec<Received>> {
        None // visitors do not edit what they sent
    }
    async fn person_blocks(&self, _: &Channel, _: &Identity) -> Option<Vec<Received>> {
        None // a visitor leaves the page; nothing is reported
    }

    async fn shown(&self, person: &Identity) -> Vec<String> {
        let shown = self.visitors.shown.lock().unwrap();
        shown.iter().filter(|(v, _)| *v == person.chat_id).filter_map(|(_, m)| m.text.clone()).collect()
    }
    async fn shown_buttons(&self, person: &Identity) -> Vec<String> {
        let shown = self.visitors.shown.lock().unwrap();
        let last = shown.iter().rev().find(|(v, _)| *v == person.chat_id);
        last.map(|(_, m)| m.buttons.iter().flatten().map(|b| b.text.clone()).collect()).unwrap_or_default()
    }

    fn fail_next_send(&self, fault: Fault) -> bool {
        *self.visitors.fault.lock().unwrap() = Some(fault);
        true
    }
}

#[tokio::test]
async fn the_widget_passes_the_channel_conformance_suite() {
    let dir = std::env::temp_dir().join(format!("okno-widget-{}", okno_domain::ids::new_id()));
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).expect("client"),
        public_url: "http://okno.test".into(),
        files: FileStore::new(dir.join("files")).expect("file store"),
        max_download: 20 * 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    };
    let h = WidgetHarness { visitors: Arc::default(), cx, token: new_token(), last: Mutex::new(None) };
    conformance::run(&h).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_unsigned_or_forged_envelope_is_refused() {
    let dir = std::env::temp_dir().join(format!("okno-widget-{}", okno_domain::ids::new_id()));
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).expect("client"),
        public_url: "http://okno.test".into(),
        files: FileStore::new(dir.join("files")).expect("file store"),
        max_download: 1024,
        poll_timeout: Duration::from_secs(1),
    };
    let connected = Widget::default().connect(&cx, &json!({"origins": ["https://shop.example"]}), None).await.unwrap();
    let channel = Channel {
        id: "w1".into(),
        kind: ChannelKind::Widget,
        name: "site".into(),
        status: "active".into(),
        status_detail: None,
        info: connected.info,
        config: connected.config,
        created_at: 0,
    };
    let body =
        serde_json::to_vec(&json!({"visitor": visitor_id(&new_token()), "echo_id": "e1", "text": "hi"})).unwrap();
    let none = Widget::default().receive(&cx, &channel, &HookRequest::new(&HeaderMap::new(), &body), &NoState).await;
    assert_eq!(none.unwrap_err().code, "bad_signature");
    let mut headers = HeaderMap::new();
    let forged = envelope_signature("0123456789abcdef0123456789abcdef", &body);
    headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&forged).unwrap());
    let forged = Widget::default().receive(&cx, &channel, &HookRequest::new(&headers, &body), &NoState).await;
    assert_eq!(forged.unwrap_err().code, "bad_signature", "signed with another secret");
    let _ = std::fs::remove_dir_all(dir);
}
