//! VK: the community simulator, and connecting a community it serves to okno.

pub use okno_vk_sim::*;

use serde_json::json;

use crate::TestApp;

impl TestApp {
    /// Connects the community `token` names in `sim`, receiving by `mode` (`polling` for Bots
    /// Long Poll, `webhook` for the Callback API); returns the channel id.
    pub async fn vk_channel(&self, sim: &VkSim, token: &str, mode: &str) -> String {
        let a = self
            .post(
                "/api/v1/channels",
                json!({"kind": "vk", "name": "VK", "config": {"token": token, "api_base": format!("{}/method", sim.api_base()), "mode": mode}}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        a.body["id"].as_str().expect("channel id").to_string()
    }
}
