//! The channel conformance suite (`okno_channel::conformance`) for WhatsApp, against the
//! WhatsApp Cloud API simulator: a person's messages reach okno as Meta's signed webhooks,
//! handed to `receive` with their signature; a refusal is a person who left WhatsApp (131026).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::conformance::{self, Fault, Harness};
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, HookRequest, Platform, Received};
use okno_channel_whatsapp::WhatsApp;
use okno_domain::model::{Channel, ChannelKind, Identity};
use okno_whatsapp_sim::{Fault as SimFault, SimPerson, WaSim, Written};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

const TOKEN: &str = "EAAG-conformance-token";
const NUMBER_ID: &str = "106540352242922";
const SECRET: &str = "app-secret-conformance";
const PERSON: &str = "79005550001";

struct Harnessed {
    sim: WaSim,
    cx: Context,
    person: SimPerson,
    last: Mutex<Option<Written>>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Button data is short here: no token is ever needed.
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

impl Harnessed {
    async fn received(&self, channel: &Channel, w: Written) -> Vec<Received> {
        let mut headers = HeaderMap::new();
        headers.insert("x-hub-signature-256", HeaderValue::from_str(&w.signature).unwrap());
        let got =
            WhatsApp.receive(&self.cx, channel, &HookRequest::new(&headers, &w.body), &NoState).await.expect("receive");
        *self.last.lock().unwrap() = Some(w);
        got
    }
}

#[async_trait]
impl Harness for Harnessed {
    fn platform(&self) -> Arc<dyn Platform> {
        Arc::new(WhatsApp)
    }

    fn context(&self) -> Context {
        self.cx.clone()
    }

    fn good_config(&self) -> Value {
        json!({"token": TOKEN, "phone_number_id": NUMBER_ID, "app_secret": SECRET, "verify_token": "verify-me",
               "api_base": self.sim.api_base()})
    }

    fn bad_config(&self) -> Value {
        json!({"token": "EAAG-not-this-one", "phone_number_id": NUMBER_ID, "app_secret": SECRET,
               "verify_token": "verify-me", "api_base": self.sim.api_base()})
    }

    async fn person(&self, channel: &Channel) -> Identity {
        // The person writes first: the 24-hour window opens.
        let w = self.person.write("Здравствуйте").await;
        self.received(channel, w).await;
        Identity {
            id: "identity-1".into(),
            contact_id: "contact-1".into(),
            channel_id: channel.id.clone(),
            kind: ChannelKind::Whatsapp,
            user_id: PERSON.into(),
            chat_id: PERSON.into(),
            username: None,
            display_name: Some("Анна".into()),
            is_group: false,
            blocked: false,
            opted_out: false,
            last_seen_at: None,
        }
    }

    async fn person_writes(&self, channel: &Channel, _: &Identity, text: &str) -> Vec<Received> {
        let w = self.person.write(text).await;
        self.received(channel, w).await
    }

    async fn redelivered(&self, channel: &Channel, _: &Identity) -> Vec<Received> {
        let w = self.last.lock().unwrap().clone().expect("something was delivered");
        self.received(channel, w).await
    }

    async fn person_presses(&self, channel: &Channel, _: &Identity, external_id: &str, data: &str) -> Vec<Received> {
        let w = self.person.press(external_id, data).await;
        self.received(channel, w).await
    }

    async fn person_edits(&self, _: &Channel, _: &Identity, _: &str) -> Option<Vec<Received>> {
        None
    }

    async fn person_blocks(&self, _: &Channel, _: &Identity) -> Option<Vec<Received>> {
        // WhatsApp never tells a business it was blocked.
        None
    }

    async fn shown(&self, _: &Identity) -> Vec<String> {
        self.person.shown()
    }

    async fn shown_buttons(&self, _: &Identity) -> Vec<String> {
        self.sim.sent_to(PERSON).last().map(|s| s.buttons()).unwrap_or_default()
    }

    fn fail_next_send(&self, fault: Fault) -> bool {
        match fault {
            Fault::TooManyRequests => self.sim.fail_next(SimFault::Throughput),
            Fault::ServerError => self.sim.fail_next(SimFault::Status(500)),
            Fault::Refused => self.person.leave(),
        }
        true
    }
}

#[tokio::test]
async fn whatsapp_passes_the_channel_conformance_suite() {
    let sim = WaSim::start().await;
    sim.add_number(NUMBER_ID, TOKEN, "+7 900 555-01-01", "Окна Плюс", SECRET);
    let dir = std::env::temp_dir().join(format!("okno-wa-conformance-{}", std::process::id()));
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).expect("client"),
        public_url: "http://127.0.0.1:1".into(),
        files: FileStore::new(dir.join("files")).expect("file store"),
        max_download: 20 * 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    };
    let person = sim.person(PERSON, "Анна");
    let h = Harnessed { sim, cx, person, last: Mutex::new(None), _dir: TempDir(dir) };
    conformance::run(&h).await;
}
