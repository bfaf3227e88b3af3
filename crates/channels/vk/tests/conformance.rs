//! The channel conformance suite (`okno_channel::conformance`) for VK, against the VK
//! simulator: events reach okno by Bots Long Poll from a cursor the harness keeps, as the
//! engine keeps it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::conformance::{self, Fault, Harness};
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, InboundEvent, Platform, Received};
use okno_channel_vk::text::{read_payload, Payload};
use okno_channel_vk::Vk;
use okno_domain::model::{Channel, ChannelKind, Identity};
use okno_vk_sim::{SimUser, VkSim};
use serde_json::{json, Value};

const TOKEN: &str = "vk1.a.conformance";
const GROUP: i64 = 5151;
const PERSON: i64 = 777_001;

struct VkHarness {
    sim: VkSim,
    cx: Context,
    user: SimUser,
    /// Where the next poll starts, and where the last poll with events started.
    cursor: Mutex<(Option<String>, Option<String>)>,
    last_written: Mutex<i64>,
    _files: Dir,
}

/// A folder removed when dropped.
struct Dir(std::path::PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Button data as it came (the engine keeps tokens in the store).
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

fn is_event(r: &Received) -> bool {
    !matches!(r.event, InboundEvent::Ignore)
}

impl VkHarness {
    /// Polls from `from` until events come; the cursor moves as the engine moves it.
    async fn poll_from(&self, channel: &Channel, mut from: Option<String>) -> Vec<Received> {
        for _ in 0..20 {
            let polled = Vk.poll(&self.cx, channel, from.as_deref(), &NoState).await.expect("a_check");
            let next = polled.items.iter().rev().find_map(|r| r.cursor.clone());
            if polled.items.iter().any(is_event) {
                *self.cursor.lock().unwrap() = (next.or(from.clone()), from);
                return polled.items.into_iter().filter(is_event).collect();
            }
            if next.is_some() {
                from = next;
            }
        }
        panic!("no event came");
    }

    async fn poll(&self, channel: &Channel) -> Vec<Received> {
        let from = self.cursor.lock().unwrap().0.clone();
        self.poll_from(channel, from).await
    }

    /// The simulator's message id for the community's message `peer:cmid`.
    fn message_id(&self, external: &str) -> i64 {
        let (peer, cmid) = external.split_once(':').expect("peer:cmid");
        let (peer, cmid): (i64, i64) = (peer.parse().unwrap(), cmid.parse().unwrap());
        self.sim
            .sent(TOKEN)
            .into_iter()
            .filter(|s| s.method == "messages.send" && s.peer_id == peer)
            .map(|s| s.message_id)
            .find(|id| self.sim.message(TOKEN, *id).is_some_and(|m| m["conversation_message_id"] == json!(cmid)))
            .expect("the message was sent")
    }

    fn sent_to_person(&self) -> Vec<okno_vk_sim::Sent> {
        self.sim.sent(TOKEN).into_iter().filter(|s| s.method == "messages.send" && s.peer_id == PERSON).collect()
    }
}

#[async_trait]
impl Harness for VkHarness {
    fn platform(&self) -> Arc<dyn Platform> {
        Arc::new(Vk)
    }

    fn context(&self) -> Context {
        self.cx.clone()
    }

    fn good_config(&self) -> Value {
        json!({"token": TOKEN, "api_base": format!("{}/method", self.sim.api_base()), "mode": "polling",
               "limits": {"per_second": 0}})
    }

    fn bad_config(&self) -> Value {
        json!({"token": "vk1.a.unknown", "api_base": format!("{}/method", self.sim.api_base())})
    }

    async fn person(&self, channel: &Channel) -> Identity {
        // Long Poll hands out what happens from the first poll on: okno starts polling first.
        let first = Vk.poll(&self.cx, channel, None, &NoState).await.expect("the first poll");
        let cursor = first.items.iter().rev().find_map(|r| r.cursor.clone());
        assert!(cursor.is_some(), "the first poll keeps where it got to");
        *self.cursor.lock().unwrap() = (cursor, None);
        Identity {
            id: "identity-1".into(),
            contact_id: "contact-1".into(),
            channel_id: channel.id.clone(),
            kind: ChannelKind::Vk,
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
        // The cursor was not stored: the next poll starts from the older ts again.
        let from = self.cursor.lock().unwrap().1.clone();
        self.poll_from(channel, from).await
    }

    async fn person_presses(&self, channel: &Channel, _: &Identity, external_id: &str, data: &str) -> Vec<Received> {
        let id = self.message_id(external_id);
        let message = self.sim.message(TOKEN, id).unwrap();
        let payload = message["keyboard"]["buttons"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .filter_map(|b| b["action"]["payload"].as_str().map(str::to_string))
            .find(|p| read_payload(&Value::String(p.clone())) == Some(Payload::Data(data.to_string())))
            .expect("a button with that data");
        self.user.press(id, &payload);
        self.poll(channel).await
    }

    async fn person_edits(&self, channel: &Channel, _: &Identity, text: &str) -> Option<Vec<Received>> {
        let id = *self.last_written.lock().unwrap();
        self.user.edit(id, text);
        Some(self.poll(channel).await)
    }

    async fn person_blocks(&self, channel: &Channel, _: &Identity) -> Option<Vec<Received>> {
        self.user.deny();
        let got = self.poll(channel).await;
        self.user.allow("conformance");
        self.poll(channel).await;
        Some(got)
    }

    async fn shown(&self, _: &Identity) -> Vec<String> {
        self.sent_to_person().into_iter().map(|s| s.text).collect()
    }

    async fn shown_buttons(&self, _: &Identity) -> Vec<String> {
        let keyboard = self.sent_to_person().pop().and_then(|s| s.keyboard).unwrap_or_default();
        keyboard["buttons"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .filter_map(|b| b["action"]["label"].as_str().map(str::to_string))
            .collect()
    }

    fn fail_next_send(&self, fault: Fault) -> bool {
        let f = match fault {
            Fault::TooManyRequests => okno_vk_sim::Fault::Error(6),
            Fault::ServerError => okno_vk_sim::Fault::Status(502),
            Fault::Refused => okno_vk_sim::Fault::Error(901),
        };
        self.sim.fail_next(TOKEN, f);
        true
    }
}

async fn context(tag: &str) -> (Context, Dir) {
    let dir = std::env::temp_dir().join(format!("okno-vk-{tag}-{}", std::process::id()));
    let files = FileStore::new(dir.join("files")).expect("file store");
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).expect("client"),
        public_url: "http://127.0.0.1:1".into(),
        files,
        max_download: 20 * 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    };
    (cx, Dir(dir))
}

#[tokio::test]
async fn vk_passes_the_channel_conformance_suite() {
    let sim = VkSim::start().await;
    sim.add_group(TOKEN, GROUP, "Пекарня «Окно»");
    let (cx, dir) = context("conformance").await;
    let user = sim.user(TOKEN, PERSON, "Анна Петрова");
    let h = VkHarness { sim, cx, user, cursor: Mutex::new((None, None)), last_written: Mutex::new(0), _files: dir };
    conformance::run(&h).await;
}
