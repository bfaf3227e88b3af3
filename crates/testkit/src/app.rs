//! A real okno on a random port with its own store, and typed helpers to drive it over HTTP.

use std::path::PathBuf;

use okno_domain::model::Role;
use okno_domain::signing;
use okno_server::{Running, Settings};
use okno_store::testing::TestDb;
use serde_json::{json, Value};

/// A running okno for one test.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub http: reqwest::Client,
    /// An admin token.
    pub token: String,
    pub settings: Settings,
    pub running: Option<Running>,
    pub db: TestDb,
    pub data_dir: PathBuf,
}

/// A JSON answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// The okno binary beside the running test binary (`target/<profile>/okno`, built by cargo for
/// the okno package's tests): okno started inside a test renders templates in worker processes
/// of that binary, as the real server does with itself.
pub fn okno_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let name = format!("okno{}", std::env::consts::EXE_SUFFIX);
    let found = exe.ancestors().skip(1).take(2).map(|dir| dir.join(&name)).find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("no okno binary near {}: build it (cargo build -p okno)", exe.display()))
}

/// Settings for tests: port 0, private targets allowed (the sink is on loopback), fast retries.
pub fn test_settings(db: &TestDb, data_dir: PathBuf) -> Settings {
    let mut s = Settings {
        listen: "127.0.0.1:0".into(),
        data_dir,
        database_url: Some(secrecy::SecretString::from(db.url.clone())),
        secret_key: Some(secrecy::SecretString::from(db.secret_key())),
        allow_private_targets: true,
        ..Default::default()
    };
    s.delivery.retry_base_ms = 20;
    s.delivery.retry_max_ms = 200;
    s.delivery.poll_interval_ms = 50;
    s.delivery.send_max_attempts = 4;
    s.delivery.webhook_max_attempts = 4;
    s.delivery.lease_secs = 5;
    s.delivery.http_timeout_secs = 5;
    s.delivery.shutdown_grace_secs = 2;
    s.polling.poll_timeout_secs = 1;
    s.polling.poller_check_ms = 100;
    s.polling.conflict_wait_secs = 1;
    s.templates.worker_program = Some(okno_binary());
    s
}

impl TestApp {
    /// okno on a fresh SQLite file.
    pub async fn spawn() -> TestApp {
        Self::spawn_on(TestDb::sqlite(), |_| {}).await
    }

    /// okno on the given database, with settings adjusted by `tweak`.
    pub async fn spawn_on(db: TestDb, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let data_dir = std::env::temp_dir().join(format!("okno-app-{}", okno_domain::ids::new_id()));
        let mut settings = test_settings(&db, data_dir.clone());
        tweak(&mut settings);
        let store = okno_server::open_store(&settings).await.expect("open store");
        let secret = okno_server::auth::new_token();
        store.create_token("test-admin", Role::Admin, &okno_server::auth::token_hash(&secret)).await.expect("token");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let running = okno_server::start_with(&settings, store, listener).await.expect("start okno");
        TestApp {
            url: format!("http://{}", running.addr),
            http: reqwest::Client::new(),
            token: secret,
            settings,
            running: Some(running),
            db,
            data_dir,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("the app is running")
    }

    /// Stops the server and starts it again on the same database and data folder, as an
    /// administrator restarting okno would.
    pub async fn restart(&mut self) {
        self.stop().await;
        let store = okno_server::open_store(&self.settings).await.expect("reopen store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let running = okno_server::start_with(&self.settings, store, listener).await.expect("restart okno");
        self.url = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    /// Stops the server gracefully.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    /// A new token with `role`.
    pub async fn token_for(&self, role: Role) -> String {
        let secret = okno_server::auth::new_token();
        self.running()
            .engine
            .store
            .create_token(&format!("test-{role}"), role, &okno_server::auth::token_hash(&secret))
            .await
            .expect("token");
        secret
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None, Some(&self.token)).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call("POST", path, Some(body), Some(&self.token)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call("PATCH", path, Some(body), Some(&self.token)).await
    }
    pub async fn delete(&self, path: &str) -> Answer {
        self.call("DELETE", path, None, Some(&self.token)).await
    }

    /// Creates a webhook channel sending to `outbound_url`; returns its id.
    pub async fn webhook_channel(&self, outbound_url: &str, secret: &str) -> String {
        let a = self
            .post(
                "/api/v1/channels",
                json!({"kind": "webhook", "name": "site", "config": {"outbound_url": outbound_url, "secret": secret}}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        a.body["id"].as_str().expect("channel id").to_string()
    }

    /// Connects a Telegram bot served by `sim`; returns the channel id.
    pub async fn telegram_channel(&self, sim: &okno_telegram_sim::TelegramSim, token: &str, mode: &str) -> String {
        let a = self
            .post(
                "/api/v1/channels",
                json!({"kind": "telegram", "name": "bot", "config": {"token": token, "api_base": sim.api_base(), "mode": mode}}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        a.body["id"].as_str().expect("channel id").to_string()
    }

    /// Waits until a conversation with a message matching `pred` exists; returns that message.
    pub async fn wait_message(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let found = crate::eventually(10, || async {
            let convs = self.get("/api/v1/conversations?limit=500").await;
            for c in convs.body["items"].as_array()?.iter() {
                let id = c["id"].as_str()?;
                let msgs = self.get(&format!("/api/v1/conversations/{id}/messages?limit=500")).await;
                if let Some(m) = msgs.body["items"].as_array()?.iter().find(|m| pred(m)) {
                    return Some(m.clone());
                }
            }
            None
        })
        .await;
        found.expect("the expected message was recorded")
    }

    /// Posts a signed inbound message to a webhook channel.
    pub async fn inbound(&self, channel_id: &str, secret: &str, body: &Value) -> Answer {
        let raw = serde_json::to_vec(body).expect("json");
        let sig = signing::sign(secret.as_bytes(), &raw);
        self.raw_hook(channel_id, raw, Some(&sig)).await
    }

    /// Posts raw bytes to a channel hook with an optional signature.
    pub async fn raw_hook(&self, channel_id: &str, raw: Vec<u8>, sig: Option<&str>) -> Answer {
        let mut req = self
            .http
            .post(format!("{}/hooks/{channel_id}", self.url))
            .header("content-type", "application/json")
            .body(raw);
        if let Some(s) = sig {
            req = req.header("x-okno-signature", s);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
