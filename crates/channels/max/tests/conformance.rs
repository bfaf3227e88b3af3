//! The channel conformance suite (`okno_channel::conformance`) for MAX, against the MAX Bot API
//! simulator: updates reach okno by long polling from a marker the harness keeps, as the
//! engine keeps it; a refusal is the person stopping the bot.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::conformance::{self, Fault, Harness};
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, InboundEvent, Platform, Received};
use okno_channel_max::Max;
use okno_domain::model::{Channel, ChannelKind, Identity};
use okno_max_sim::{Fault as SimFault, MaxSim, SimUser};
use serde_json::{json, Value};

const TOKEN: &str = "max-conformance-token";
const PERSON: i64 = 5_550_001;

struct Harnessed {
    sim: MaxSim,
    cx: Context,
    user: SimUser,
    /// Where the next poll starts, and where the last one started (for a redelivery).
    cursor: Mutex<(Option<String>, Option<String>)>,
    last_written: Mutex<String>,
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
    /// Polls from `from` until something other than a bare marker move arrives.
    async fn poll_from(&self, channel: &Channel, from: Option<String>) -> Vec<Received> {
        let mut at = from;
        for _ in 0..20 {
            let polled = Max.poll(&self.cx, channel, at.as_deref(), &NoState).await.expect("GET /updates");
            let next = polled.items.iter().rev().find_map(|r| r.cursor.clone());
            let real: Vec<Received> =
                polled.items.into_iter().filter(|r| !matches!(r.event, InboundEvent::Ignore)).collect();
            if !real.is_empty() {
                *self.cursor.lock().unwrap() = (next.or(at.clone()), at);
                return real;
            }
            at = next.or(at);
        }
        panic!("no update came");
    }

    async fn poll(&self, channel: &Channel) -> Vec<Received> {
        let from = self.cursor.lock().unwrap().0.clone();
        self.poll_from(channel, from).await
    }
}

#[async_trait]
impl Harness for Harnessed {
    fn platform(&self) -> Arc<dyn Platform> {
        Arc::new(Max)
    }

    fn context(&self) -> Context {
        self.cx.clone()
    }

    fn good_config(&self) -> Value {
        json!({"token": TOKEN, "api_base": self.sim.api_base(), "mode": "polling"})
    }

    fn bad_config(&self) -> Value {
        json!({"token": "not-this-bot", "api_base": self.sim.api_base()})
    }

    async fn person(&self, channel: &Channel) -> Identity {
        // The person presses Start: the first poll (no marker) gets that latest update.
        self.user.start(None);
        self.poll(channel).await;
        Identity {
            id: "identity-1".into(),
            contact_id: "contact-1".into(),
            channel_id: channel.id.clone(),
            kind: ChannelKind::Max,
            user_id: PERSON.to_string(),
            chat_id: PERSON.to_string(),
            username: None,
            display_name: Some("Анна".into()),
            is_group: false,
            blocked: false,
            opted_out: false,
            last_seen_at: None,
        }
    }

    async fn person_writes(&self, channel: &Channel, _: &Identity, text: &str) -> Vec<Received> {
        *self.last_written.lock().unwrap() = self.user.send_text(text);
        self.poll(channel).await
    }

    async fn redelivered(&self, channel: &Channel, _: &Identity) -> Vec<Received> {
        // The marker was not stored: MAX hands the same update out again.
        let from = self.cursor.lock().unwrap().1.clone();
        self.poll_from(channel, from).await
    }

    async fn person_presses(&self, channel: &Channel, _: &Identity, external_id: &str, data: &str) -> Vec<Received> {
        self.user.press(external_id, data);
        self.poll(channel).await
    }

    async fn person_edits(&self, channel: &Channel, _: &Identity, text: &str) -> Option<Vec<Received>> {
        let mid = self.last_written.lock().unwrap().clone();
        self.user.edit(&mid, text);
        Some(self.poll(channel).await)
    }

    async fn person_blocks(&self, channel: &Channel, _: &Identity) -> Option<Vec<Received>> {
        self.user.stop_bot();
        let got = self.poll(channel).await;
        self.user.start(None);
        self.poll(channel).await;
        Some(got)
    }

    async fn shown(&self, _: &Identity) -> Vec<String> {
        self.sim
            .sent_to(TOKEN, self.sim.dialog_id(PERSON))
            .into_iter()
            .filter(|s| s.method == "POST /messages")
            .filter_map(|s| s.text)
            .collect()
    }

    async fn shown_buttons(&self, _: &Identity) -> Vec<String> {
        let last = self
            .sim
            .sent_to(TOKEN, self.sim.dialog_id(PERSON))
            .into_iter()
            .rev()
            .find(|s| s.method == "POST /messages");
        last.map(|s| s.attachments)
            .unwrap_or_default()
            .iter()
            .filter(|a| a["type"] == "inline_keyboard")
            .flat_map(|a| a["payload"]["buttons"].as_array().cloned().unwrap_or_default())
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .filter_map(|b| b["text"].as_str().map(str::to_string))
            .collect()
    }

    fn fail_next_send(&self, fault: Fault) -> bool {
        match fault {
            Fault::TooManyRequests => self.sim.fail_next(TOKEN, SimFault::RateLimited),
            Fault::ServerError => self.sim.fail_next(TOKEN, SimFault::Status(502)),
            // The person stops the bot: MAX refuses every send to them from then on.
            Fault::Refused => self.user.stop_bot(),
        }
        true
    }
}

#[tokio::test]
async fn max_passes_the_channel_conformance_suite() {
    let sim = MaxSim::start().await;
    sim.add_bot(TOKEN, "conformance_bot");
    let dir = std::env::temp_dir().join(format!("okno-max-conformance-{}", std::process::id()));
    let files = FileStore::new(dir.join("files")).expect("file store");
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).expect("client"),
        public_url: "http://127.0.0.1:1".into(),
        files,
        max_download: 20 * 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    };
    let user = sim.user(TOKEN, PERSON, "Анна");
    let h = Harnessed {
        sim,
        cx,
        user,
        cursor: Mutex::new((None, None)),
        last_written: Mutex::new(String::new()),
        _files: tempdir::Dir(dir),
    };
    conformance::run(&h).await;
}
