//! okno as a separate process for the benchmarks: a fresh data folder (or a given database),
//! an admin token made with `okno token create`, `okno serve` on a free port.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use okno_testkit::telegram::TelegramSim;
use serde_json::{json, Value};

/// A running `okno serve` and a client for its API.
pub(crate) struct Okno {
    child: Child,
    pub(crate) base: String,
    pub(crate) token: String,
    pub(crate) http: reqwest::Client,
}

impl Drop for Okno {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Okno {
    pub(crate) async fn start(okno: &Path, dir: &Path, database_url: Option<&str>) -> Result<Okno> {
        Okno::start_with(okno, dir, database_url, &[]).await
    }

    /// [`Okno::start`] with more `OKNO_*` settings.
    pub(crate) async fn start_with(
        okno: &Path,
        dir: &Path,
        database_url: Option<&str>,
        settings: &[(&str, &str)],
    ) -> Result<Okno> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let env = |c: &mut Command| {
            c.current_dir(dir)
                .env("OKNO_LISTEN", format!("127.0.0.1:{port}"))
                .env("OKNO_ALLOW_PRIVATE_TARGETS", "true")
                .env("OKNO_LOG_LEVEL", "warn")
                .env("OKNO_POLLING__POLLER_CHECK_MS", "200");
            if let Some(url) = database_url {
                c.env("OKNO_DATABASE_URL", url);
            }
            for (k, v) in settings {
                c.env(k, v);
            }
        };
        let mut cmd = Command::new(okno);
        env(&mut cmd);
        let out = cmd.args(["token", "create", "--name", "bench", "--role", "admin"]).output()?;
        if !out.status.success() {
            bail!("token create failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let token = String::from_utf8(out.stdout)?.lines().last().unwrap_or_default().trim().to_string();
        let mut cmd = Command::new(okno);
        env(&mut cmd);
        let child = cmd.arg("serve").stdout(Stdio::null()).stderr(Stdio::inherit()).spawn()?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().pool_max_idle_per_host(128).build()?;
        for _ in 0..100 {
            if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
                return Ok(Okno { child, base, token, http });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("okno did not start")
    }

    /// The server's process id (for its memory figures).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Connects a bot on the simulator with okno's own pacing off; returns the channel id.
    pub(crate) async fn unthrottled_bot(&self, sim: &TelegramSim, token: &str) -> Result<String> {
        let ch = self
            .call(
                reqwest::Method::POST,
                "/channels",
                Some(json!({"kind": "telegram", "name": "bench", "config": {"token": token, "api_base": sim.api_base(),
                    "limits": {"per_second": 0, "per_chat_per_second": 0, "per_chat_burst": 0, "per_group_per_minute": 0}}})),
            )
            .await?;
        Ok(ch["id"].as_str().context("channel id")?.to_string())
    }

    pub(crate) async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = self.http.request(method, format!("{}/api/v1{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        Ok(req.send().await?.json().await?)
    }

    /// okno's contacts, counted page by page through the API.
    pub(crate) async fn count_contacts(&self) -> Result<usize> {
        let mut count = 0;
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/contacts?limit=500&cursor={c}"),
                None => "/contacts?limit=500".to_string(),
            };
            let page = self.call(reqwest::Method::GET, &path, None).await?;
            count += page["items"].as_array().map_or(0, Vec::len);
            match page["next"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(count),
            }
        }
    }

    /// okno's `inbound_messages` counter for one channel kind (`telegram`, `viber`…).
    pub(crate) async fn inbound(&self, kind: &str) -> Result<u64> {
        self.counter("inbound_messages", &[&format!("channel_kind=\"{kind}\"")]).await
    }

    /// The sends okno finished as `sent` (its `deliveries` counter): one read however many
    /// messages, so waiting on it does not load okno the way reading every conversation does.
    pub(crate) async fn sends_done(&self) -> Result<u64> {
        self.counter("deliveries", &["kind=\"send\"", "outcome=\"sent\""]).await
    }

    /// The sum of a counter of okno's `/metrics` over the lines that carry every label given.
    async fn counter(&self, name: &str, labels: &[&str]) -> Result<u64> {
        let text = self.http.get(format!("{}/metrics", self.base)).send().await?.text().await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(name) && labels.iter().all(|label| l.contains(label)))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum())
    }

    /// Waits until okno's inbound counter for `kind` reaches `target` or `limit` passes; the
    /// count reached.
    pub(crate) async fn wait_inbound(&self, kind: &str, target: u64, limit: Duration) -> Result<u64> {
        let deadline = Instant::now() + limit;
        loop {
            let n = self.inbound(kind).await?;
            if n >= target || Instant::now() > deadline {
                return Ok(n);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many of okno's outbound messages stand at `status`, over the conversations `convs`.
    pub(crate) async fn count_status(&self, convs: &[String], status: &str) -> Result<usize> {
        let counts = futures::stream::iter(convs.iter().cloned())
            .map(|c| async move {
                let page =
                    self.call(reqwest::Method::GET, &format!("/conversations/{c}/messages?limit=500"), None).await?;
                Ok::<usize, anyhow::Error>(
                    page["items"]
                        .as_array()
                        .context("items")?
                        .iter()
                        .filter(|m| m["direction"] == "out" && m["status"] == status)
                        .count(),
                )
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        let mut n = 0;
        for c in counts {
            n += c?;
        }
        Ok(n)
    }

    pub(crate) async fn conversations(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/conversations?limit=500&cursor={c}"),
                None => "/conversations?limit=500".to_string(),
            };
            let page = self.call(reqwest::Method::GET, &path, None).await?;
            ids.extend(
                page["items"].as_array().context("items")?.iter().filter_map(|c| c["id"].as_str().map(str::to_string)),
            );
            match page["next"].as_str() {
                Some(n) => cursor = Some(n.to_string()),
                None => return Ok(ids),
            }
        }
    }

    /// Queues one reply in each conversation, `rounds` times, from 32 concurrent clients.
    pub(crate) async fn queue_replies(&self, convs: &[String], total: usize) -> Result<Duration> {
        let started = Instant::now();
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (http, base, token, convs, next) =
                (self.http.clone(), self.base.clone(), self.token.clone(), convs.to_vec(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let conv = &convs[n % convs.len()];
                    let _ = http
                        .post(format!("{base}/api/v1/conversations/{conv}/messages"))
                        .bearer_auth(&token)
                        .json(&json!({"text": format!("Ответ №{n}")}))
                        .send()
                        .await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(started.elapsed())
    }
}
