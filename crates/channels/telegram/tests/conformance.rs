//! The channel conformance suite (`okno_channel::conformance`) for Telegram, against the Bot
//! API simulator: updates reach okno by long polling from a cursor the harness keeps, as the
//! engine keeps it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::conformance::{self, Fault, Harness};
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, Platform, Received};
use okno_channel_telegram::Telegram;
use okno_domain::model::{Channel, ChannelKind, Identity};
use okno_telegram_sim::{SimUser, TelegramSim};
use serde_json::{json, Value};

const TOKEN: &str = "424242:conformance-secret";
const PERSON: i64 = 777_001;

struct Tg {
    sim: TelegramSim,
    cx: Context,
    user: SimUser,
    /// Where the next poll starts, and where the last one started (for a redelivery).
    cursor: Mutex<(Option<String>, Option<String>)>,
    last_written: Mutex<i64>,
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

/// Button data kept in memory (the engine keeps it in the store).
#[derive(Default)]
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

impl Tg {
    async fn poll_from(&self, channel: &Channel, from: Option<String>) -> Vec<Received> {
        for _ in 0..20 {
            let polled = Telegram.poll(&self.cx, channel, from.as_deref(), &NoState).await.expect("getUpdates");
            if !polled.items.is_empty() {
                let next = polled.items.last().and_then(|r| r.cursor.clone());
                *self.cursor.lock().unwrap() = (next, from);
                return polled.items;
            }
        }
        panic!("no update came");
    }

    async fn poll(&self, channel: &Channel) -> Vec<Received> {
        let from = self.cursor.lock().unwrap().0.clone();
        self.poll_from(channel, from).await
    }
}

#[async_trait]
impl Harness for Tg {
    fn platform(&self) -> Arc<dyn Platform> {
        Arc::new(Telegram)
    }

    fn context(&self) -> Context {
        self.cx.clone()
    }

    fn good_config(&self) -> Value {
        json!({"token": TOKEN, "api_base": self.sim.api_base(), "mode": "polling",
               "limits": {"per_second": 0, "per_chat_per_second": 0, "per_chat_burst": 0, "per_group_per_minute": 0}})
    }

    fn bad_config(&self) -> Value {
        json!({"token": "999:unknown", "api_base": self.sim.api_base()})
    }

    async fn person(&self, channel: &Channel) -> Identity {
        // A person who has started the bot: Telegram lets a bot write only to them.
        self.user.send_text("/start");
        self.poll(channel).await;
        Identity {
            id: "identity-1".into(),
            contact_id: "contact-1".into(),
            channel_id: channel.id.clone(),
            kind: ChannelKind::Telegram,
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
        // The offset was not stored: Telegram hands the same update out again.
        let from = self.cursor.lock().unwrap().1.clone();
        self.poll_from(channel, from).await
    }

    async fn person_presses(&self, channel: &Channel, _: &Identity, external_id: &str, data: &str) -> Vec<Received> {
        let message_id: i64 = external_id.split_once(':').and_then(|(_, m)| m.parse().ok()).expect("chat:message");
        self.user.press(message_id, data);
        self.poll(channel).await
    }

    async fn person_edits(&self, channel: &Channel, _: &Identity, text: &str) -> Option<Vec<Received>> {
        let id = *self.last_written.lock().unwrap();
        self.user.edit(id, text);
        Some(self.poll(channel).await)
    }

    async fn person_blocks(&self, channel: &Channel, _: &Identity) -> Option<Vec<Received>> {
        self.user.block();
        let got = self.poll(channel).await;
        self.user.unblock();
        self.poll(channel).await;
        Some(got)
    }

    async fn shown(&self, _: &Identity) -> Vec<String> {
        self.sim
            .sent_to(TOKEN, PERSON)
            .into_iter()
            .filter(|s| s.method == "sendMessage")
            .filter_map(|s| s.plain)
            .collect()
    }

    async fn shown_buttons(&self, _: &Identity) -> Vec<String> {
        let last = self.sim.sent_to(TOKEN, PERSON).into_iter().rev().find(|s| s.method == "sendMessage");
        let markup = last.and_then(|s| s.reply_markup).unwrap_or_default();
        markup["inline_keyboard"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .filter_map(|b| b["text"].as_str().map(str::to_string))
            .collect()
    }

    fn fail_next_send(&self, fault: Fault) -> bool {
        match fault {
            Fault::TooManyRequests => {
                self.sim.fail_next(TOKEN, "sendMessage", 429, "Too Many Requests: retry after 1", Some(1))
            }
            Fault::ServerError => self.sim.fail_next(TOKEN, "sendMessage", 502, "Bad Gateway", None),
            Fault::Refused => {
                self.sim.fail_next(TOKEN, "sendMessage", 403, "Forbidden: bot was blocked by the user", None)
            }
        }
        true
    }
}

#[tokio::test]
async fn telegram_passes_the_channel_conformance_suite() {
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "conformance_bot");
    sim.set_limits(false);
    let dir = std::env::temp_dir().join(format!("okno-tg-conformance-{}", std::process::id()));
    let files = FileStore::new(dir.join("files")).expect("file store");
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).expect("client"),
        public_url: "http://127.0.0.1:1".into(),
        files,
        max_download: 20 * 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    };
    let user = sim.user(TOKEN, PERSON, "Анна");
    let h =
        Tg { sim, cx, user, cursor: Mutex::new((None, None)), last_written: Mutex::new(0), _files: tempdir::Dir(dir) };
    conformance::run(&h).await;
}
