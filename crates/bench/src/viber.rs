//! The Viber benchmark: okno (a separate process) against the Viber REST Bot API simulator (in
//! this process), the simulator's 100-unanswered-messages rule off.
//!
//! 1. inbound: signed `message` callbacks from 1,000 people, 64 at a time, timed until okno has
//!    stored them all (its `inbound_messages` counter);
//! 2. outbound: replies queued through the API, timed until the simulator accepted them all;
//! 3. receipts: a signed `delivered` callback for every sent message and then a `seen` for
//!    every one, 64 at a time — timed until every callback was answered (okno answers once the
//!    receipt is applied), then every message checked to stand at `read`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use okno_testkit::viber::{SimPerson, ViberSim};
use serde_json::json;

use crate::server::Okno;

const TOKEN: &str = "4453b6ac-bench-viber-token";
const PEOPLE: usize = 1_000;

/// Pushes one receipt callback per sent message, 64 at a time; returns how many were not
/// answered 200.
async fn receipts(sim: &ViberSim, sent: &[(i64, String)], seen: bool) -> usize {
    futures::stream::iter(sent.iter().cloned())
        .map(|(token, user)| async move {
            let cb = if seen { sim.seen(token, &user).await } else { sim.delivered(token, &user).await };
            cb.answer.map(|(s, _)| s)
        })
        .buffer_unordered(64)
        .filter(|s| futures::future::ready(*s != Some(200)))
        .count()
        .await
}

pub async fn run(okno: &Path, n: usize, outbound: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("okno-bench-viber-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let sim = ViberSim::start().await;
    sim.add_bot(TOKEN, "Бенчмарк", "benchbot");
    sim.set_unanswered_limit(usize::MAX);
    let server = Okno::start(okno, &dir, None).await?;
    println!(
        "okno viber benchmark — SQLite, simulator in the benchmark process, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let config = json!({"token": TOKEN, "api_base": sim.api_base()});
    let ch = server
        .call(reqwest::Method::POST, "/channels", Some(json!({"kind": "viber", "name": "bench", "config": config})))
        .await?;
    ch["id"].as_str().with_context(|| format!("no channel id: {ch}"))?;
    let people: Vec<SimPerson> = (0..PEOPLE).map(|i| sim.person(&format!("bench{i:05}=="), "Покупатель")).collect();
    let limit = Duration::from_secs(300);

    // 1. Inbound message callbacks.
    let before = server.inbound("viber").await?;
    let started = Instant::now();
    let answered = futures::stream::iter(0..n)
        .map(|i| {
            let p = people[i % PEOPLE].clone();
            async move { p.write(&format!("Где мой заказ №{i}?")).await.answer.map(|(s, _)| s) }
        })
        .buffer_unordered(64)
        .filter(|s| futures::future::ready(*s == Some(200)))
        .count()
        .await;
    let pushed = started.elapsed();
    let got = server.wait_inbound("viber", before + n as u64, limit).await? - before;
    let t = started.elapsed();
    println!(
        "inbound, webhook: {got} of {n} messages from {PEOPLE} people stored in {:.2} s = {:.0} msg/s ({answered} callbacks answered 200 in {:.2} s)",
        t.as_secs_f64(),
        got as f64 / t.as_secs_f64(),
        pushed.as_secs_f64()
    );

    // 2. Outbound.
    let convs = server.conversations().await?;
    let before_out = sim.sent_count();
    let started = Instant::now();
    let queued = server.queue_replies(&convs, outbound).await?;
    let deadline = Instant::now() + limit;
    while sim.sent_count() - before_out < outbound && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = started.elapsed();
    let sent = sim.sent_count() - before_out;
    println!(
        "outbound: {sent} of {outbound} replies to {} conversations queued in {:.2} s, sent {:.2} s after the first was queued = {:.0} msg/s",
        convs.len(),
        queued.as_secs_f64(),
        t.as_secs_f64(),
        sent as f64 / t.as_secs_f64()
    );
    // okno records each message's token as the send returns; let the last ones land.
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.count_status(&convs, "sent").await? < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let tokens: Vec<(i64, String)> = sim.sent().into_iter().map(|s| (s.token, s.receiver)).collect();

    // 3. Receipts: delivered, then seen.
    for (seen, name) in [(false, "delivered"), (true, "seen")] {
        let started = Instant::now();
        let failed = receipts(&sim, &tokens, seen).await;
        let t = started.elapsed();
        println!(
            "receipts, `{name}`: {} signed callbacks applied in {:.2} s = {:.0} callbacks/s ({failed} not answered 200)",
            tokens.len(),
            t.as_secs_f64(),
            tokens.len() as f64 / t.as_secs_f64()
        );
    }
    let read = server.count_status(&convs, "read").await?;
    println!("{read} of {} messages at `read` after the receipts", tokens.len());
    if read < tokens.len() {
        println!("  NOT every message reached `read`");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
