//! MAX in tests: the MAX Bot API simulator, and connecting okno to a bot it serves.

use serde_json::json;

use crate::TestApp;

pub use okno_max_sim::{CallbackAnswer, Fault, MaxSim, Sent, SimGroup, SimUser, SubscriptionInfo, WebhookAttempt};

impl TestApp {
    /// Connects a MAX bot served by `sim` in `mode` (`polling` or `webhook`); returns the
    /// channel id.
    pub async fn max_channel(&self, sim: &MaxSim, token: &str, mode: &str) -> String {
        let a = self
            .post(
                "/api/v1/channels",
                json!({"kind": "max", "name": "MAX", "config": {"token": token, "api_base": sim.api_base(), "mode": mode}}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        a.body["id"].as_str().expect("channel id").to_string()
    }
}
