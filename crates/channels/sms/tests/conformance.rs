//! The channel conformance suite (`okno_channel::conformance`) for SMS, against the gateway
//! simulator, for the two providers that carry people's texts to okno (Twilio, SMSC): each
//! request the simulator would POST to the hook is handed to `receive` with its headers and
//! the hook address's query, as okno's server hands it on.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::conformance::{self, Fault, Harness};
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, HookRequest, Platform, Received};
use okno_channel_sms::{hook_url, Sms};
use okno_domain::model::{Channel, ChannelKind, Identity};
use okno_sms_sim::{HookCall, SmsSim};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

const PERSON: &str = "79001234567";

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

struct SmsHarness {
    sim: SmsSim,
    cx: Context,
    account: String,
    good: Value,
    bad: Value,
    last: std::sync::Mutex<Option<HookCall>>,
}

/// Hands a request the simulator made to the platform.
pub async fn deliver(cx: &Context, channel: &Channel, call: &HookCall) -> okno_domain::Result<Vec<Received>> {
    let mut headers = HeaderMap::new();
    for (k, v) in &call.headers {
        headers.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    Sms.receive(cx, channel, &HookRequest::new(&headers, call.body.as_bytes()).with_query(call.query()), &NoState).await
}

#[async_trait]
impl Harness for SmsHarness {
    fn platform(&self) -> Arc<dyn Platform> {
        Arc::new(Sms)
    }
    fn context(&self) -> Context {
        self.cx.clone()
    }
    fn good_config(&self) -> Value {
        self.good.clone()
    }
    fn bad_config(&self) -> Value {
        self.bad.clone()
    }

    async fn person(&self, channel: &Channel) -> Identity {
        // The administrator pastes the hook address into the provider's panel.
        let secret = channel.config["webhook_secret"].as_str().expect("a hook secret is made on connecting");
        self.sim.set_callback(&self.account, &hook_url(&self.cx.public_url, &channel.id, secret));
        Identity {
            id: "identity-1".into(),
            contact_id: "contact-1".into(),
            channel_id: channel.id.clone(),
            kind: ChannelKind::Sms,
            user_id: PERSON.into(),
            chat_id: PERSON.into(),
            username: None,
            display_name: None,
            is_group: false,
            blocked: false,
            opted_out: false,
            last_seen_at: None,
        }
    }

    async fn person_writes(&self, channel: &Channel, _: &Identity, text: &str) -> Vec<Received> {
        let call = self.sim.text_call(&self.account, &format!("+{PERSON}"), text);
        *self.last.lock().unwrap() = Some(call.clone());
        deliver(&self.cx, channel, &call).await.expect("the text is accepted")
    }

    async fn redelivered(&self, channel: &Channel, _: &Identity) -> Vec<Received> {
        let call = self.last.lock().unwrap().clone().expect("a text before");
        deliver(&self.cx, channel, &call).await.expect("the redelivery is accepted")
    }

    async fn person_presses(&self, _: &Channel, _: &Identity, _: &str, _: &str) -> Vec<Received> {
        Vec::new() // SMS has no buttons: never asked
    }
    async fn person_edits(&self, _: &Channel, _: &Identity, _: &str) -> Option<Vec<Received>> {
        None
    }
    async fn person_blocks(&self, _: &Channel, _: &Identity) -> Option<Vec<Received>> {
        None
    }

    async fn shown(&self, person: &Identity) -> Vec<String> {
        self.sim.sent_to(&person.chat_id).into_iter().map(|s| s.text).collect()
    }
    async fn shown_buttons(&self, _: &Identity) -> Vec<String> {
        Vec::new()
    }

    fn fail_next_send(&self, fault: Fault) -> bool {
        self.sim.fail_next(match fault {
            Fault::TooManyRequests => okno_sms_sim::Fault::TooManyRequests,
            Fault::ServerError => okno_sms_sim::Fault::ServerError,
            Fault::Refused => okno_sms_sim::Fault::Refused,
        });
        true
    }
}

pub fn context(dir: &std::path::Path) -> Context {
    Context {
        http: SafeClient::new(true, Duration::from_secs(10)).expect("client"),
        public_url: "http://okno.test".into(),
        files: FileStore::new(dir.join("files")).expect("file store"),
        max_download: 20 * 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    }
}

async fn run(provider: &str) {
    let sim = SmsSim::start().await;
    let base = sim.api_base();
    let (account, good, bad) = match provider {
        "twilio" => (
            sim.add_twilio("AC0123456789abcdef0123456789abcdef", "auth-token-1", "+15005550006", 20.0),
            json!({"provider": "twilio", "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "auth-token-1", "sender": "+15005550006", "api_base": base}),
            json!({"provider": "twilio", "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "wrong", "sender": "+15005550006", "api_base": base}),
        ),
        _ => (
            sim.add_smsc("okno-shop", "api-password", 500.0),
            json!({"provider": "smsc", "login": "okno-shop", "password": "api-password", "sender": "OknoShop", "api_base": base}),
            json!({"provider": "smsc", "login": "okno-shop", "password": "wrong", "api_base": base}),
        ),
    };
    let dir = std::env::temp_dir().join(format!("okno-sms-conformance-{provider}-{}", std::process::id()));
    let h = SmsHarness { cx: context(&dir), sim, account, good, bad, last: Default::default() };
    conformance::run(&h).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sms_through_twilio_passes_the_channel_conformance_suite() {
    run("twilio").await;
}

#[tokio::test]
async fn sms_through_smsc_passes_the_channel_conformance_suite() {
    run("smsc").await;
}
