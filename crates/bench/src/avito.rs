//! The Avito benchmark: okno (a separate process) against the Avito Messenger API simulator
//! (in this process), okno's pacing off.
//!
//! 1. inbound: buyers' message webhooks from 1,000 buyers (each in a chat about one of 50 ads),
//!    64 at a time, timed until okno has stored them all (its `inbound_messages` counter), with
//!    the answer times the simulator measured against Avito's 2-second deadline;
//! 2. outbound: replies queued through the API, timed until the simulator accepted them all
//!    (each comes back to okno as the seller's own message, which okno skips, as with Avito).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use okno_testkit::avito::{AvitoSim, Buyer, Item};
use serde_json::json;

use crate::server::Okno;

const CLIENT_ID: &str = "bench-client";
const CLIENT_SECRET: &str = "bench-client-secret";
const ACCOUNT: i64 = 123_456_789;
const BUYERS: usize = 1_000;
const ITEMS: usize = 50;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

pub async fn run(okno: &Path, n: usize, outbound: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("okno-bench-avito-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let sim = AvitoSim::start(CLIENT_ID, CLIENT_SECRET, ACCOUNT).await;
    let server = Okno::start(okno, &dir, None).await?;
    println!(
        "okno avito benchmark — SQLite, simulator in the benchmark process, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let config = json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "user_id": ACCOUNT,
                        "api_base": sim.api_base(), "limits": {"per_second": 0, "per_chat_per_minute": 0}});
    let ch = server
        .call(reqwest::Method::POST, "/channels", Some(json!({"kind": "avito", "name": "bench", "config": config})))
        .await?;
    ch["id"].as_str().with_context(|| format!("no channel id: {ch}"))?;
    let items: Vec<Item> =
        (0..ITEMS).map(|i| sim.add_item(1_000 + i as i64, &format!("Товар {i}"), "1 000 ₽")).collect();
    let buyers: Vec<Buyer> = (0..BUYERS).map(|i| sim.buyer(5_000_000 + i as i64, "Покупатель")).collect();
    let limit = Duration::from_secs(300);

    // 1. Inbound webhooks.
    let before = server.inbound("avito").await?;
    let started = Instant::now();
    let delivered = futures::stream::iter(0..n)
        .map(|i| {
            let (b, item) = (buyers[i % BUYERS].clone(), items[i % BUYERS % ITEMS].clone());
            async move { b.write(Some(&item), &format!("Вопрос №{i}: ещё продаётся?")).await.delivered }
        })
        .buffer_unordered(64)
        .filter(|d| futures::future::ready(*d))
        .count()
        .await;
    let pushed = started.elapsed();
    let got = server.wait_inbound("avito", before + n as u64, limit).await? - before;
    let t = started.elapsed();
    let pushes = sim.pushes();
    let mut times: Vec<Duration> = pushes.iter().map(|p| p.elapsed).collect();
    times.sort();
    let late = pushes.iter().filter(|p| !p.ok).count();
    println!(
        "inbound, webhook: {got} of {n} messages from {BUYERS} buyers stored in {:.2} s = {:.0} msg/s ({delivered} delivered in {:.2} s; answer p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {late} attempts late or refused)",
        t.as_secs_f64(),
        got as f64 / t.as_secs_f64(),
        pushed.as_secs_f64(),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );

    // 2. Outbound.
    let convs = server.conversations().await?;
    let started = Instant::now();
    let queued = server.queue_replies(&convs, outbound).await?;
    let deadline = Instant::now() + limit;
    while sim.sent_count() < outbound && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = started.elapsed();
    let sent = sim.sent_count();
    println!(
        "outbound: {sent} of {outbound} replies to {} conversations queued in {:.2} s, sent {:.2} s after the first was queued = {:.0} msg/s (tokens issued: {})",
        convs.len(),
        queued.as_secs_f64(),
        t.as_secs_f64(),
        sent as f64 / t.as_secs_f64(),
        sim.tokens_issued()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
