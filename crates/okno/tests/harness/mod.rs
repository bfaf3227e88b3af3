//! The real `okno` binary as a test drives it: started with `OKNO_*` settings on a data
//! folder of its own, killed with real signals, talked to over HTTP as a platform, an
//! integration and an operator would. Shared by `process.rs` and `soak.rs`.

#![allow(dead_code)] // each test binary uses part of the harness

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use okno_testkit::{eventually, Sink};
use serde_json::{json, Value};

pub const SECRET: &str = "0123456789abcdef-secret";

pub struct Okno {
    pub dir: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
    pub http: reqwest::Client,
    /// The jobs' lease: short, so that the crash tests do not wait long for what a dead
    /// process left, unless a test shows that nothing waits for it at all.
    pub lease_secs: u64,
    /// `OKNO_DATABASE_URL`, when not the data folder's SQLite file.
    pub database_url: Option<String>,
    /// Delivery workers, and how often the outbox is looked at when nothing wakes them.
    pub workers: usize,
    pub poll_ms: u64,
    /// More `OKNO_*` settings for this test.
    pub env: Vec<(&'static str, String)>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Okno {
    pub fn new() -> Okno {
        let dir = std::env::temp_dir().join(format!("okno-proc-{}", okno_domain::ids::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        Okno {
            dir,
            port: free_port(),
            child: None,
            http: reqwest::Client::new(),
            lease_secs: 2,
            database_url: None,
            workers: 4,
            poll_ms: 100,
            env: Vec::new(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_okno"));
        c.current_dir(&self.dir)
            .env("OKNO_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("OKNO_ALLOW_PRIVATE_TARGETS", "true")
            .env("OKNO_DELIVERY__LEASE_SECS", self.lease_secs.to_string())
            .env("OKNO_DELIVERY__POLL_INTERVAL_MS", self.poll_ms.to_string())
            .env("OKNO_DELIVERY__WORKERS", self.workers.to_string())
            .env("OKNO_DELIVERY__RETRY_BASE_MS", "50")
            .env("OKNO_LOG_LEVEL", "warn");
        if let Some(url) = &self.database_url {
            c.env("OKNO_DATABASE_URL", url);
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.cmd();
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            // A command that exits without reading its input (`--help`, a refused argument)
            // closes the pipe first; that is its answer, not the test's failure.
            match child.stdin.take().unwrap().write_all(input.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.unwrap(),
            }
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    pub fn token(&self) -> String {
        let out = self.run(&["token", "create", "--name", "t", "--role", "admin"], None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_string()
    }

    pub async fn start(&mut self) {
        let child = self.cmd().arg("serve").stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
        self.child = Some(child);
        let url = self.url("/healthz");
        let up = eventually(20, || async { self.http.get(&url).send().await.ok().filter(|r| r.status() == 200) }).await;
        assert!(up.is_some(), "okno did not come up");
    }

    /// Processes on one database share the key that seals its credentials: `self` takes
    /// `other`'s (made by its first command).
    pub fn share_key_of(&self, other: &Okno) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(self.dir.join("okno-data")).unwrap();
        std::fs::copy(other.dir.join("okno-data/secret.key"), self.dir.join("okno-data/secret.key")).unwrap();
    }

    pub fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let ok = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        assert!(ok.success());
        child.wait().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    /// A webhook channel to `sink`, ten conversations, and `per` replies queued in each.
    pub async fn queue_replies(&self, token: &str, sink: &Sink, per: usize) -> HashSet<String> {
        let mut ids = HashSet::new();
        for conv in self.conversations(token, sink, 10).await {
            for n in 0..per {
                ids.insert(self.reply(token, &conv, &format!("{n}")).await);
            }
        }
        ids
    }

    /// Posts a signed inbound message to a webhook channel's hook.
    pub async fn hook(&self, channel: &str, body: &Value) -> reqwest::Response {
        let body = serde_json::to_vec(body).unwrap();
        self.http
            .post(self.url(&format!("/hooks/{channel}")))
            .header("x-okno-signature", okno_domain::signing::sign(SECRET.as_bytes(), &body))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Queues a reply in a conversation; returns the message's id.
    pub async fn reply(&self, token: &str, conv: &str, text: &str) -> String {
        let path = format!("/api/v1/conversations/{conv}/messages");
        let r = self.call(reqwest::Method::POST, &path, token, Some(json!({"text": text}))).await;
        r["id"].as_str().unwrap().to_string()
    }

    /// A webhook channel to `sink` and `n` people who wrote in on it; returns their
    /// conversations.
    pub async fn conversations(&self, token: &str, sink: &Sink, n: usize) -> Vec<String> {
        let ch = self
            .call(
                reqwest::Method::POST,
                "/api/v1/channels",
                token,
                Some(json!({"kind": "webhook", "name": "s", "config": {"outbound_url": sink.url, "secret": SECRET}})),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut convs = Vec::new();
        for u in 0..n {
            let resp =
                self.hook(&ch, &json!({"message_id": "hi", "user": {"id": format!("u{u}")}, "text": "hi"})).await;
            let m: Value = resp.json().await.unwrap();
            let msg = self
                .call(reqwest::Method::GET, &format!("/api/v1/messages/{}", m["id"].as_str().unwrap()), token, None)
                .await;
            convs.push(msg["conversation_id"].as_str().unwrap().to_string());
        }
        convs
    }
}

impl Drop for Okno {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn unique_ids(sink: &Sink) -> HashSet<String> {
    sink.accepted().iter().map(|r| r.body["id"].as_str().unwrap().to_string()).collect()
}

/// Signs an operator in (made with `okno user create`) on `okno`'s window; returns the
/// session cookie.
pub async fn sign_in(okno: &Okno, login: &str, password: &str) -> String {
    sign_in_at(&okno.url(""), login, password).await.unwrap()
}

/// Signs an operator in on the okno at `base` (`http://127.0.0.1:PORT`); the session cookie,
/// or what went wrong (an okno being restarted answers nothing).
pub async fn sign_in_at(base: &str, login: &str, password: &str) -> Result<String, String> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = http.get(format!("{base}/login")).send().await.map_err(|e| e.to_string())?;
    let pre = set_cookie(&page, "okno_prelogin").ok_or("the login page sets its cookie")?;
    let html = page.text().await.map_err(|e| e.to_string())?;
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).ok_or("no csrf")?;
    let done = http
        .post(format!("{base}/login"))
        .header("cookie", format!("okno_prelogin={pre}"))
        .form(&[("csrf", csrf), ("login", login), ("password", password)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if done.status() != 303 {
        return Err(format!("signing in answered {}", done.status()));
    }
    set_cookie(&done, "okno_session").ok_or_else(|| "no session cookie".to_string())
}

/// The value of the cookie `name` set by a response.
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}
