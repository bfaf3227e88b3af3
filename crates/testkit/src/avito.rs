//! Avito in tests: the Avito Messenger API simulator, and connecting okno to a seller account
//! it serves (okno subscribes its own hook address, with its secret, as it does with Avito).

use serde_json::{json, Value};

use crate::TestApp;

pub use okno_avito_sim::{AvitoSim, Buyer, Fault, Item, Push, Sent, Written};

/// The test account's facts.
pub const CLIENT_ID: &str = "avito-client-for-tests";
pub const CLIENT_SECRET: &str = "avito-client-secret-for-tests";
pub const ACCOUNT: i64 = 98_765_432;

impl TestApp {
    /// Starts a simulator for the test account and connects it to okno (with `limits` when
    /// given); returns the simulator and the channel id. Panics when the webhook is not
    /// subscribed to okno's hook address.
    pub async fn avito_channel(&self, limits: Option<Value>) -> (AvitoSim, String) {
        let sim = AvitoSim::start(CLIENT_ID, CLIENT_SECRET, ACCOUNT).await;
        let mut config = json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "user_id": ACCOUNT,
                                "api_base": sim.api_base()});
        if let Some(l) = limits {
            config["limits"] = l;
        }
        let a = self.post("/api/v1/channels", json!({"kind": "avito", "name": "Авито", "config": config})).await;
        assert_eq!(a.status, 201, "{a:?}");
        let id = a.body["id"].as_str().expect("channel id").to_string();
        let hook = sim.webhook().expect("okno subscribed its webhook");
        assert!(hook.starts_with(&format!("{}/hooks/{id}?secret=", self.running().public_url)), "{hook}");
        (sim, id)
    }
}
