//! The channel conformance suite (`okno_channel::conformance`) for OK, against the Graph API
//! simulator: each event the simulator would push to the webhook is handed to `receive` with
//! the hook address's query, as okno's server hands it on.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::conformance::{self, Fault, Harness};
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, HookRequest, Platform, Received};
use okno_channel_ok::Odnoklassniki;
use okno_domain::model::{Channel, ChannelKind, Identity};
use okno_ok_sim::{OkSim, SimUser};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

const TOKEN: &str = "tkn18YdUJZe:CQABPOJKAKEKEKEKE";
const PERSON: i64 = 577_001;

struct OkHarness {
    sim: OkSim,
    cx: Context,
    user: SimUser,
    _files: tempdir::Dir,
}

mod tempdir {
    /// A folder removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Button data handed back as it was given (the engine keeps it in the store).
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

/// The query of the channel's hook address, as okno's server hands it to the platform.
fn hook_query(channel: &Channel) -> String {
    let secret = channel.config["webhook_secret"].as_str().expect("a webhook secret is made on connecting");
    format!("secret={secret}")
}

impl OkHarness {
    /// The simulator's last event, delivered to the channel's hook.
    async fn deliver(&self, channel: &Channel) -> Vec<Received> {
        let event = self.sim.last_event(TOKEN).expect("the simulator emitted an event");
        Odnoklassniki
            .receive(
                &self.cx,
                channel,
                &HookRequest::new(&HeaderMap::new(), event.to_string().as_bytes())
                    .with_query(Some(&hook_query(channel))),
                &NoState,
            )
            .await
            .expect("the event is accepted")
    }
}

#[async_trait]
impl Harness for OkHarness {
    fn platform(&self) -> Arc<dyn Platform> {
        Arc::new(Odnoklassniki)
    }

    fn context(&self) -> Context {
        self.cx.clone()
    }

    fn good_config(&self) -> Value {
        json!({"token": TOKEN, "api_base": self.sim.api_base()})
    }

    fn bad_config(&self) -> Value {
        json!({"token": "tkn1unknown:XYZ", "api_base": self.sim.api_base()})
    }

    async fn person(&self, channel: &Channel) -> Identity {
        Identity {
            id: "identity-1".into(),
            contact_id: "contact-1".into(),
            channel_id: channel.id.clone(),
            kind: ChannelKind::Ok,
            user_id: self.user.user_id().to_string(),
            chat_id: self.user.chat_id().to_string(),
            username: None,
            display_name: Some("Анна".into()),
            is_group: false,
            blocked: false,
            opted_out: false,
            last_seen_at: None,
        }
    }

    async fn person_writes(&self, channel: &Channel, _: &Identity, text: &str) -> Vec<Received> {
        self.user.send_text(text);
        self.deliver(channel).await
    }

    async fn redelivered(&self, channel: &Channel, _: &Identity) -> Vec<Received> {
        // OK delivers again when okno's answer did not arrive within 5 seconds.
        self.deliver(channel).await
    }

    async fn person_presses(&self, channel: &Channel, _: &Identity, external_id: &str, data: &str) -> Vec<Received> {
        self.user.press(external_id, data);
        self.deliver(channel).await
    }

    async fn person_edits(&self, _: &Channel, _: &Identity, _: &str) -> Option<Vec<Received>> {
        None // OK reports no edits to a group's bot
    }

    async fn person_blocks(&self, _: &Channel, _: &Identity) -> Option<Vec<Received>> {
        None // OK reports no block: a send is refused with PERMISSION_DENIED instead
    }

    async fn shown(&self, person: &Identity) -> Vec<String> {
        self.sim.sent(TOKEN).into_iter().filter(|s| s.chat_id == person.chat_id).map(|s| s.text).collect()
    }

    async fn shown_buttons(&self, person: &Identity) -> Vec<String> {
        let last = self.sim.sent(TOKEN).into_iter().rev().find(|s| s.chat_id == person.chat_id);
        last.map(|s| s.attachments)
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["type"] == "INLINE_KEYBOARD")
            .flat_map(|a| a["payload"]["keyboard"]["buttons"].as_array().cloned().unwrap_or_default())
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .filter_map(|b| b["text"].as_str().map(str::to_string))
            .collect()
    }

    fn fail_next_send(&self, fault: Fault) -> bool {
        let f = match fault {
            Fault::TooManyRequests => okno_ok_sim::Fault::Error(8),
            Fault::ServerError => okno_ok_sim::Fault::Status(502),
            Fault::Refused => okno_ok_sim::Fault::Error(10),
        };
        self.sim.fail_next(TOKEN, f);
        true
    }
}

fn context(dir: &std::path::Path) -> Context {
    Context {
        http: SafeClient::new(true, Duration::from_secs(10)).expect("client"),
        public_url: "http://okno.test".into(),
        files: FileStore::new(dir.join("files")).expect("file store"),
        max_download: 20 * 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn ok_passes_the_channel_conformance_suite() {
    let sim = OkSim::start().await;
    sim.add_group(TOKEN, 57_000_000_000_001, "okno shop");
    let dir = std::env::temp_dir().join(format!("okno-ok-conformance-{}", std::process::id()));
    let user = sim.user(TOKEN, PERSON, "Анна");
    let h = OkHarness { cx: context(&dir), sim, user, _files: tempdir::Dir(dir) };
    conformance::run(&h).await;
}
