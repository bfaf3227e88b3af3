//! The website widget benchmark: okno (a separate process, SQLite) with one widget channel and
//! `visitors` visitors, each from an address of their own (okno trusts the benchmark as a
//! proxy, so its per-address limits apply to each visitor as they would on the internet).
//!
//! 1. each visitor starts a session, writes once and opens a live stream (SSE), 64 at a time;
//! 2. with every stream open, an operator's reply is queued through the API into each visitor's
//!    conversation, paced at `rate` a second; each reply is timed from its POST to the moment
//!    its event arrives on its visitor's stream: p50, p99, max, and any that never came;
//! 3. okno's memory (RSS): idle, with every stream open, and its peak.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::server::Okno;
use crate::{hwm_kb, percentile, rss_kb};

const SITE: &str = "https://shop.example";

/// A visitor's own address: 10.x.y.z by their number.
fn address(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, (i & 255).max(1))
}

/// When each reply (by okno's message id) arrived on its visitor's stream.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

pub async fn run(okno: &Path, visitors: usize, rate: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("okno-bench-widget-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let settings = [("OKNO_HTTP__TRUSTED_PROXIES", "[\"127.0.0.1\"]")];
    let server = Okno::start_with(okno, &dir, None, &settings).await?;
    println!(
        "okno widget benchmark — SQLite, {visitors} visitors, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let config = json!({"origins": [SITE]});
    let ch = server
        .call(reqwest::Method::POST, "/channels", Some(json!({"kind": "widget", "name": "bench", "config": config})))
        .await?;
    let ch = ch["id"].as_str().with_context(|| format!("no channel id: {ch}"))?.to_string();
    let idle = rss_kb(server.pid()).unwrap_or(0);
    let base = format!("{}/widget/{ch}", server.base);
    // One connection per visitor, as browsers have.
    let http = reqwest::Client::builder().pool_max_idle_per_host(visitors + 64).build()?;

    // 1. Sessions, a first message each, streams.
    let started = Instant::now();
    let people: Vec<(usize, String, String)> = futures::stream::iter(0..visitors)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            async move { visitor_writes(&http, &base, i).await.map(|(token, msg)| (i, token, msg)) }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let arrivals: Arrivals = Arc::default();
    let mut convs = Vec::with_capacity(visitors);
    for (i, token, msg) in &people {
        let m = server.call(reqwest::Method::GET, &format!("/messages/{msg}"), None).await?;
        convs.push(m["conversation_id"].as_str().context("conversation")?.to_string());
        let resp = http
            .get(format!("{base}/stream"))
            .query(&[("token", token.as_str()), ("after", msg.as_str())])
            .header("origin", SITE)
            .header("x-forwarded-for", address(*i))
            .send()
            .await?;
        if resp.status() != 200 {
            bail!("stream {i}: {}", resp.status());
        }
        tokio::spawn(listen(resp, arrivals.clone()));
    }
    println!(
        "{} visitors with a session, a first message and a live stream in {:.1} s",
        people.len(),
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let streaming = rss_kb(server.pid()).unwrap_or(0);

    // 2. One reply to each visitor, paced.
    let every = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut sent: Vec<(String, Instant)> = Vec::with_capacity(visitors);
    let started = Instant::now();
    let mut next = Instant::now();
    for (n, conv) in convs.iter().enumerate() {
        tokio::time::sleep_until(next.into()).await;
        next += every;
        let at = Instant::now();
        let r = server
            .call(
                reqwest::Method::POST,
                &format!("/conversations/{conv}/messages"),
                Some(json!({"text": format!("Ответ №{n}")})),
            )
            .await?;
        sent.push((r["id"].as_str().with_context(|| format!("reply not queued: {r}"))?.to_string(), at));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.lock().map(|a| a.len()).unwrap_or(0) < sent.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = arrivals.lock().map(|a| a.clone()).unwrap_or_default();
    let mut latencies: Vec<Duration> =
        sent.iter().filter_map(|(id, at)| got.get(id).map(|arrived| arrived.saturating_duration_since(*at))).collect();
    latencies.sort();
    let missing = sent.len() - latencies.len();
    println!(
        "{} replies at {rate}/s over {:.1} s reached their visitors' streams: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {missing} never arrived",
        latencies.len(),
        started.elapsed().as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!(
        "okno RSS: idle {:.1} MB, {} streams open {:.1} MB, peak {:.1} MB",
        idle as f64 / 1024.0,
        people.len(),
        streaming as f64 / 1024.0,
        hwm_kb(server.pid()).unwrap_or(0) as f64 / 1024.0
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Visitor `i` starts a session and writes once; returns their token and message id.
async fn visitor_writes(http: &reqwest::Client, base: &str, i: usize) -> Result<(String, String)> {
    let s: Value = http
        .post(format!("{base}/session"))
        .header("origin", SITE)
        .header("x-forwarded-for", address(i))
        .json(&json!({}))
        .send()
        .await?
        .json()
        .await?;
    let token = s["token"].as_str().with_context(|| format!("no session: {s}"))?.to_string();
    let m: Value = http
        .post(format!("{base}/messages"))
        .header("origin", SITE)
        .header("x-forwarded-for", address(i))
        .header("x-okno-visitor", &token)
        .json(&json!({"echo_id": "hello", "text": format!("Здравствуйте, я посетитель №{i}")}))
        .send()
        .await?
        .json()
        .await?;
    let id = m["id"].as_str().with_context(|| format!("not stored: {m}"))?.to_string();
    Ok((token, id))
}

/// Reads a stream, noting when each message event arrived.
async fn listen(resp: reqwest::Response, arrivals: Arrivals) {
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        let now = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let is_message = block.lines().any(|l| l == "event: message");
            let id = block.lines().find_map(|l| l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")));
            if let (true, Some(id)) = (is_message, id) {
                if let Ok(mut a) = arrivals.lock() {
                    a.entry(id.trim().to_string()).or_insert(now);
                }
            }
        }
    }
}
