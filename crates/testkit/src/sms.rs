//! SMS in tests: the gateway simulator (SMS.ru, SMSC, Twilio), and connecting okno to an
//! account it serves with the hook address pasted into the simulator, as an administrator
//! pastes it into the provider's panel.

use serde_json::{json, Value};

use crate::TestApp;

pub use okno_sms_sim::{count_parts, Attempt, Fault, HookCall, Provider, Report, Sent, SmsSim};

/// The hook secret the test channels choose.
pub const CALLBACK_SECRET: &str = "sms-callback-secret-0123456789";

impl TestApp {
    /// Connects an `sms` channel with `config` (the provider's fields; `api_base` and the
    /// callback secret are added) and points the simulator's `account` at its hook address;
    /// returns the channel id.
    pub async fn sms_channel(&self, sim: &SmsSim, account: &str, mut config: Value) -> String {
        config["api_base"] = json!(sim.api_base());
        config["callback_secret"] = json!(CALLBACK_SECRET);
        let a = self.post("/api/v1/channels", json!({"kind": "sms", "name": "SMS", "config": config})).await;
        assert_eq!(a.status, 201, "{a:?}");
        let id = a.body["id"].as_str().expect("channel id").to_string();
        sim.set_callback(account, &self.sms_hook(&id));
        id
    }

    /// The address an SMS gateway calls for the channel.
    pub fn sms_hook(&self, channel_id: &str) -> String {
        okno_channel_sms_hook(&self.running().public_url, channel_id)
    }
}

fn okno_channel_sms_hook(public_url: &str, channel_id: &str) -> String {
    format!("{}/hooks/{channel_id}?secret={CALLBACK_SECRET}", public_url.trim_end_matches('/'))
}
