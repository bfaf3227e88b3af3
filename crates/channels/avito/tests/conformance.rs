//! The channel conformance suite (`okno_channel::conformance`) for Avito, against the Avito
//! Messenger API simulator: a buyer's messages reach okno as Avito's webhooks, handed to
//! `receive` with the hook address's secret; a refusal is a buyer who blocked the seller.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use okno_avito_sim::{AvitoSim, Buyer, Fault as SimFault, Item, Written};
use okno_channel::conformance::{self, Fault, Harness};
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, HookRequest, Platform, Received};
use okno_channel_avito::Avito;
use okno_domain::model::{Channel, ChannelKind, Identity};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

const CLIENT_ID: &str = "conformance-client";
const CLIENT_SECRET: &str = "conformance-secret";
const ACCOUNT: i64 = 100_200_300;
const BUYER: i64 = 555_001;

struct Harnessed {
    sim: AvitoSim,
    avito: Arc<Avito>,
    cx: Context,
    buyer: Buyer,
    item: Item,
    last: Mutex<Option<Written>>,
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
    async fn received(&self, channel: &Channel, w: Written) -> Vec<Received> {
        let headers = HeaderMap::new();
        let query = format!("secret={}", channel.config["webhook_secret"].as_str().expect("a hook secret"));
        let request = HookRequest::new(&headers, &w.body).with_query(Some(&query));
        let got = self.avito.receive(&self.cx, channel, &request, &NoState).await.expect("receive");
        *self.last.lock().unwrap() = Some(w);
        got
    }
}

#[async_trait]
impl Harness for Harnessed {
    fn platform(&self) -> Arc<dyn Platform> {
        self.avito.clone()
    }

    fn context(&self) -> Context {
        self.cx.clone()
    }

    fn good_config(&self) -> Value {
        json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "user_id": ACCOUNT, "api_base": self.sim.api_base()})
    }

    fn bad_config(&self) -> Value {
        json!({"client_id": CLIENT_ID, "client_secret": "not-the-secret", "user_id": ACCOUNT,
               "api_base": self.sim.api_base()})
    }

    async fn person(&self, channel: &Channel) -> Identity {
        // Avito writes only into chats buyers opened: the buyer writes first.
        let w = self.buyer.write(Some(&self.item), "Здравствуйте").await;
        let chat_id = w.chat_id.clone();
        self.received(channel, w).await;
        Identity {
            id: "identity-1".into(),
            contact_id: "contact-1".into(),
            channel_id: channel.id.clone(),
            kind: ChannelKind::Avito,
            user_id: BUYER.to_string(),
            chat_id,
            username: None,
            display_name: Some("Борис".into()),
            is_group: false,
            blocked: false,
            opted_out: false,
            last_seen_at: None,
        }
    }

    async fn person_writes(&self, channel: &Channel, _: &Identity, text: &str) -> Vec<Received> {
        let w = self.buyer.write(Some(&self.item), text).await;
        self.received(channel, w).await
    }

    async fn redelivered(&self, channel: &Channel, _: &Identity) -> Vec<Received> {
        let w = self.last.lock().unwrap().clone().expect("something was delivered");
        self.received(channel, w).await
    }

    async fn person_presses(&self, _: &Channel, _: &Identity, _: &str, _: &str) -> Vec<Received> {
        unreachable!("Avito shows no buttons: menus go as numbered lines")
    }

    async fn person_edits(&self, _: &Channel, _: &Identity, _: &str) -> Option<Vec<Received>> {
        None
    }

    async fn person_blocks(&self, _: &Channel, _: &Identity) -> Option<Vec<Received>> {
        // Avito does not tell a seller they were blocked.
        None
    }

    async fn shown(&self, _: &Identity) -> Vec<String> {
        self.buyer.shown()
    }

    async fn shown_buttons(&self, _: &Identity) -> Vec<String> {
        Vec::new()
    }

    fn fail_next_send(&self, fault: Fault) -> bool {
        match fault {
            Fault::TooManyRequests => self.sim.fail_next(SimFault::TooManyRequests),
            Fault::ServerError => self.sim.fail_next(SimFault::Status(500)),
            Fault::Refused => self.buyer.block(),
        }
        true
    }
}

#[tokio::test]
async fn avito_passes_the_channel_conformance_suite() {
    let sim = AvitoSim::start(CLIENT_ID, CLIENT_SECRET, ACCOUNT).await;
    let item = sim.add_item(42, "Велосипед горный", "12 000 ₽");
    let buyer = sim.buyer(BUYER, "Борис");
    let dir = std::env::temp_dir().join(format!("okno-avito-conformance-{}", std::process::id()));
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).expect("client"),
        public_url: "http://127.0.0.1:1".into(),
        files: FileStore::new(dir.join("files")).expect("file store"),
        max_download: 20 * 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    };
    let h = Harnessed {
        sim,
        avito: Arc::new(Avito::default()),
        cx,
        buyer,
        item,
        last: Mutex::new(None),
        _dir: TempDir(dir),
    };
    conformance::run(&h).await;
}
