//! WhatsApp in tests: the WhatsApp Cloud API simulator, and connecting okno to a business
//! number it serves with Meta's callback set to okno's hook address.

use serde_json::{json, Value};

use crate::TestApp;

pub use okno_whatsapp_sim::{Fault, Push, Sent, SimPerson, WaSim, WindowMode, Written};

/// The test number's facts.
pub const NUMBER_ID: &str = "106540352242922";
pub const APP_SECRET: &str = "wa-app-secret-for-tests";
pub const VERIFY_TOKEN: &str = "wa-verify-token";

impl TestApp {
    /// Registers a number with `token` in `sim`, connects it to okno (with `limits` when
    /// given) and sets Meta's callback to okno's hook address (checked with `hub.challenge`);
    /// returns the channel id.
    pub async fn whatsapp_channel(&self, sim: &WaSim, token: &str, limits: Option<Value>) -> String {
        sim.add_number(NUMBER_ID, token, "+7 900 555-01-01", "Окна Плюс", APP_SECRET);
        let mut config = json!({"token": token, "phone_number_id": NUMBER_ID, "app_secret": APP_SECRET,
                                "verify_token": VERIFY_TOKEN, "api_base": sim.api_base()});
        if let Some(l) = limits {
            config["limits"] = l;
        }
        let a = self.post("/api/v1/channels", json!({"kind": "whatsapp", "name": "WhatsApp", "config": config})).await;
        assert_eq!(a.status, 201, "{a:?}");
        let id = a.body["id"].as_str().expect("channel id").to_string();
        sim.subscribe(&format!("{}/hooks/{id}", self.url), VERIFY_TOKEN).await.expect("Meta's callback check passes");
        id
    }
}
