//! Viber in tests: the Viber REST Bot API simulator, and connecting okno to a bot it serves
//! (okno sets the webhook itself; the simulator checks the address as Viber does).

use serde_json::{json, Value};

use crate::TestApp;

pub use okno_viber_sim::{sign, Callback, Fault, Sent, SimPerson, ViberSim};

/// The test bot's facts.
pub const BOT_NAME: &str = "Окна Плюс";
pub const BOT_URI: &str = "oknaplus";

impl TestApp {
    /// Registers a bot with `token` in `sim` and connects it to okno (with `extra` config
    /// fields merged in); returns the channel id.
    pub async fn viber_channel(&self, sim: &ViberSim, token: &str, extra: Option<Value>) -> String {
        sim.add_bot(token, BOT_NAME, BOT_URI);
        let mut config = json!({"token": token, "api_base": sim.api_base()});
        if let Some(Value::Object(m)) = extra {
            for (k, v) in m {
                config[k] = v;
            }
        }
        let a = self.post("/api/v1/channels", json!({"kind": "viber", "name": "Viber", "config": config})).await;
        assert_eq!(a.status, 201, "{a:?}");
        a.body["id"].as_str().expect("channel id").to_string()
    }
}
