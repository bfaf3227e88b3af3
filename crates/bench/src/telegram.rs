//! The Telegram benchmark: okno (a separate process) against the Bot API simulator (in this
//! process).
//!
//! 1. limits off — inbound updates drained through long polling, then pushed to the webhook;
//!    outbound replies from queue to the simulator;
//! 2. limits on — 1,000 messages to 1,000 different chats: the time they take and the 429s.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use okno_testkit::telegram::TelegramSim;
use serde_json::json;

use crate::server::Okno;

const TOKEN: &str = "555000:bench-token";
const LIMITED: &str = "555001:bench-limited";

pub(crate) async fn drain(sim: &TelegramSim, token: &str, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while sim.pending_updates(token) > 0 {
        if Instant::now() > deadline {
            bail!("{} updates still pending", sim.pending_updates(token));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn wait_sent(sim: &TelegramSim, token: &str, n: usize, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while sim.sent(token).len() < n {
        if Instant::now() > deadline {
            bail!("only {} of {n} sent", sim.sent(token).len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub async fn run(okno: &Path, inbound: usize, outbound: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("okno-bench-tg-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "bench_bot");
    sim.set_limits(false);
    let server = Okno::start(okno, &dir, None).await?;
    println!("okno Telegram benchmark — SQLite, simulator in the benchmark process, 2 cores");
    let ch = server.unthrottled_bot(&sim, TOKEN).await?;

    // Inbound through long polling: a backlog of updates from 1,000 people, drained.
    let users: Vec<_> = (0..1000).map(|n| sim.user(TOKEN, 10_000 + n, "Покупатель")).collect();
    let started = Instant::now();
    for n in 0..inbound {
        users[n % users.len()].send_text(&format!("Где мой заказ №{n}?"));
    }
    drain(&sim, TOKEN, Duration::from_secs(600)).await?;
    let t = started.elapsed();
    println!(
        "inbound, long polling: {inbound} updates stored and confirmed in {:.2} s = {:.0} updates/s",
        t.as_secs_f64(),
        inbound as f64 / t.as_secs_f64()
    );

    // Inbound through the webhook.
    server
        .call(reqwest::Method::PATCH, &format!("/channels/{ch}"), Some(json!({"config": {"mode": "webhook"}})))
        .await?;
    let started = Instant::now();
    for n in 0..inbound {
        users[n % users.len()].send_text(&format!("Вебхук №{n}"));
    }
    drain(&sim, TOKEN, Duration::from_secs(600)).await?;
    let t = started.elapsed();
    println!("inbound, webhook: {inbound} updates pushed and stored in {:.2} s = {:.0} updates/s (the simulator pushes one at a time)", t.as_secs_f64(), inbound as f64 / t.as_secs_f64());

    // Outbound with the limits off.
    let convs = server.conversations().await?;
    let before = sim.sent(TOKEN).len();
    let started = Instant::now();
    let queued = server.queue_replies(&convs, outbound).await?;
    wait_sent(&sim, TOKEN, before + outbound, Duration::from_secs(600)).await?;
    let t = started.elapsed();
    println!(
        "outbound: {outbound} replies queued in {:.2} s, all sent {:.2} s after the first was queued = {:.0} msg/s",
        queued.as_secs_f64(),
        t.as_secs_f64(),
        outbound as f64 / t.as_secs_f64()
    );

    // Telegram's limits on: 1,000 messages to 1,000 different chats.
    sim.add_bot(LIMITED, "limited_bot");
    sim.set_limits(true);
    let ch2 = server
        .call(reqwest::Method::POST, "/channels", Some(json!({"kind": "telegram", "name": "limited", "config": {"token": LIMITED, "api_base": sim.api_base()}})))
        .await?;
    let ch2 = ch2["id"].as_str().context("channel id")?.to_string();
    let people: Vec<_> = (0..1000).map(|n| sim.user(LIMITED, 50_000 + n, "Сотрудник")).collect();
    for p in &people {
        p.send_text("привет");
    }
    drain(&sim, LIMITED, Duration::from_secs(120)).await?;
    let mut targets = Vec::new();
    let all = server.conversations().await?;
    for c in &all {
        let conv = server.call(reqwest::Method::GET, &format!("/conversations/{c}"), None).await?;
        if conv["last_inbound_channel_id"] == ch2.as_str() {
            targets.push(c.clone());
        }
    }
    let started = Instant::now();
    server.queue_replies(&targets, targets.len()).await?;
    wait_sent(&sim, LIMITED, targets.len(), Duration::from_secs(300)).await?;
    let t = started.elapsed();
    println!(
        "limits on: {} messages to {} different chats sent in {:.1} s ({:.1} msg/s), 429 answers: {}",
        targets.len(),
        targets.len(),
        t.as_secs_f64(),
        targets.len() as f64 / t.as_secs_f64(),
        sim.rate_limited(LIMITED)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
