//! The channel conformance suite (`okno_channel::conformance`) for Viber, against the Viber
//! REST Bot API simulator: a person's messages reach okno as Viber's signed callbacks, handed
//! to `receive` with their signature; a refusal is a person who unsubscribed (status 6).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::conformance::{self, Fault, Harness};
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, HookRequest, Platform, Received};
use okno_channel_viber::Viber;
use okno_domain::model::{Channel, ChannelKind, Identity};
use okno_viber_sim::{Callback, Fault as SimFault, SimPerson, ViberSim};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

const TOKEN: &str = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9";
const PERSON: &str = "01234567890A=";

struct Harnessed {
    sim: ViberSim,
    cx: Context,
    person: SimPerson,
    last: Mutex<Option<Callback>>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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

impl Harnessed {
    async fn received(&self, channel: &Channel, c: Callback) -> Vec<Received> {
        let mut headers = HeaderMap::new();
        headers.insert("x-viber-content-signature", HeaderValue::from_str(&c.signature).unwrap());
        let got =
            Viber.receive(&self.cx, channel, &HookRequest::new(&headers, &c.body), &NoState).await.expect("receive");
        *self.last.lock().unwrap() = Some(c);
        got
    }
}

#[async_trait]
impl Harness for Harnessed {
    fn platform(&self) -> Arc<dyn Platform> {
        Arc::new(Viber)
    }

    fn context(&self) -> Context {
        self.cx.clone()
    }

    fn good_config(&self) -> Value {
        json!({"token": TOKEN, "api_base": self.sim.api_base()})
    }

    fn bad_config(&self) -> Value {
        json!({"token": "not-this-token", "api_base": self.sim.api_base()})
    }

    async fn person(&self, channel: &Channel) -> Identity {
        // The person writes first: that subscribes them.
        let c = self.person.write("Здравствуйте").await;
        self.received(channel, c).await;
        Identity {
            id: "identity-1".into(),
            contact_id: "contact-1".into(),
            channel_id: channel.id.clone(),
            kind: ChannelKind::Viber,
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
        let c = self.person.write(text).await;
        self.received(channel, c).await
    }

    async fn redelivered(&self, channel: &Channel, _: &Identity) -> Vec<Received> {
        let c = self.last.lock().unwrap().clone().expect("something was delivered");
        self.received(channel, c).await
    }

    async fn person_presses(&self, channel: &Channel, _: &Identity, _external_id: &str, data: &str) -> Vec<Received> {
        let label = match data {
            "answer:yes" => "Да",
            "answer:no" => "Нет",
            other => panic!("unexpected button data {other}"),
        };
        let c = self.person.press(label).await;
        self.received(channel, c).await
    }

    async fn person_edits(&self, _: &Channel, _: &Identity, _: &str) -> Option<Vec<Received>> {
        None // Viber has no edits of a person's messages.
    }

    async fn person_blocks(&self, channel: &Channel, _: &Identity) -> Option<Vec<Received>> {
        let c = self.person.unsubscribe().await;
        let got = self.received(channel, c).await;
        // Back again for the rest of the suite.
        let c = self.person.subscribe().await;
        self.received(channel, c).await;
        Some(got)
    }

    async fn shown(&self, _: &Identity) -> Vec<String> {
        self.person.shown()
    }

    async fn shown_buttons(&self, _: &Identity) -> Vec<String> {
        self.sim.sent_to(PERSON).last().map(|s| s.buttons()).unwrap_or_default()
    }

    fn fail_next_send(&self, fault: Fault) -> bool {
        match fault {
            Fault::TooManyRequests => self.sim.fail_next(SimFault::Status(12)),
            Fault::ServerError => self.sim.fail_next(SimFault::Http(500)),
            Fault::Refused => self.person.leave(),
        }
        true
    }
}

#[tokio::test]
async fn viber_passes_the_channel_conformance_suite() {
    let sim = ViberSim::start().await;
    sim.add_bot(TOKEN, "Окна Плюс", "oknaplus");
    // Sending needs a webhook set: point it at a listener that answers 200.
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = hook.local_addr().unwrap();
    tokio::spawn(async move {
        let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "{}" }));
        let _ = axum::serve(hook, app).await;
    });
    let dir = std::env::temp_dir().join(format!("okno-viber-conformance-{}", std::process::id()));
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).expect("client"),
        public_url: "http://127.0.0.1:1".into(),
        files: FileStore::new(dir.join("files")).expect("file store"),
        max_download: 20 * 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    };
    let api = okno_channel_viber::api::ViberApi::new(cx.http.clone(), &sim.api_base(), TOKEN);
    api.call("set_webhook", &json!({"url": format!("http://{hook_addr}/hook")})).await.expect("set_webhook");
    let person = sim.person(PERSON, "Анна");
    let h = Harnessed { sim: sim.clone(), cx, person, last: Mutex::new(None), _dir: TempDir(dir) };
    conformance::run(&h).await;
}
