//! OK (Odnoklassniki) in tests: a group's bot connected to okno through the API, served by the
//! Graph API simulator, which pushes its events to okno's hook over real HTTP.

use okno_ok_sim::OkSim;
use serde_json::json;

use crate::TestApp;

impl TestApp {
    /// Connects the OK group whose key is `token` (registered in `sim`); returns the channel id.
    /// okno subscribes its hook with the simulator on connecting.
    pub async fn ok_channel(&self, sim: &OkSim, token: &str) -> String {
        let a = self
            .post(
                "/api/v1/channels",
                json!({"kind": "ok", "name": "OK", "config": {"token": token, "api_base": sim.api_base()}}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        a.body["id"].as_str().expect("channel id").to_string()
    }
}
