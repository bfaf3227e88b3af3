//! The WhatsApp benchmark: okno (a separate process) against the WhatsApp Cloud API simulator
//! (in this process), Meta's limits off in both.
//!
//! 1. inbound: signed message webhooks from 1,000 people, 64 at a time, timed until okno has
//!    stored them all (its `inbound_messages` counter);
//! 2. outbound: replies queued through the API, timed until the simulator accepted them all;
//! 3. status webhooks: one `delivered` status per webhook for the first half of the sent
//!    messages, 64 at a time;
//! 4. the status storm: every sent message's `sent`, `delivered` and `read`, each twice,
//!    shuffled, 100 statuses to a webhook, 16 webhooks at a time — timed until every webhook
//!    was answered (okno answers once the receipts are applied), then every message checked to
//!    stand at `read`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use okno_testkit::whatsapp::{SimPerson, WaSim};
use serde_json::json;

use crate::server::Okno;

const TOKEN: &str = "EAAG-bench-token";
const NUMBER_ID: &str = "106540352242922";
const SECRET: &str = "bench-app-secret";
const VERIFY: &str = "bench-verify";
const PEOPLE: usize = 1_000;

pub async fn run(okno: &Path, n: usize, outbound: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("okno-bench-whatsapp-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let sim = WaSim::start().await;
    sim.add_number(NUMBER_ID, TOKEN, "+7 900 555-01-01", "Бенчмарк", SECRET);
    sim.set_limits(false);
    sim.set_auto_statuses(&[]);
    let server = Okno::start(okno, &dir, None).await?;
    println!(
        "okno whatsapp benchmark — SQLite, simulator in the benchmark process, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let config = json!({"token": TOKEN, "phone_number_id": NUMBER_ID, "app_secret": SECRET, "verify_token": VERIFY,
                        "api_base": sim.api_base(), "limits": {"per_second": 0, "pair_seconds": 0}});
    let ch = server
        .call(reqwest::Method::POST, "/channels", Some(json!({"kind": "whatsapp", "name": "bench", "config": config})))
        .await?;
    let ch = ch["id"].as_str().with_context(|| format!("no channel id: {ch}"))?.to_string();
    if let Err(e) = sim.subscribe(&format!("{}/hooks/{ch}", server.base), VERIFY).await {
        bail!("Meta's callback check failed: {e}");
    }
    let people: Vec<SimPerson> = (0..PEOPLE).map(|i| sim.person(&format!("7900{:07}", i), "Покупатель")).collect();
    let limit = Duration::from_secs(300);

    // 1. Inbound message webhooks.
    let before = server.inbound("whatsapp").await?;
    let started = Instant::now();
    let answered = futures::stream::iter(0..n)
        .map(|i| {
            let p = people[i % PEOPLE].clone();
            async move { p.write(&format!("Где мой заказ №{i}?")).await.status }
        })
        .buffer_unordered(64)
        .filter(|s| futures::future::ready(*s == Some(200)))
        .count()
        .await;
    let pushed = started.elapsed();
    let got = server.wait_inbound("whatsapp", before + n as u64, limit).await? - before;
    let t = started.elapsed();
    println!(
        "inbound, webhook: {got} of {n} messages from {PEOPLE} people stored in {:.2} s = {:.0} msg/s ({answered} webhooks answered 200 in {:.2} s)",
        t.as_secs_f64(),
        got as f64 / t.as_secs_f64(),
        pushed.as_secs_f64()
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
        "outbound: {sent} of {outbound} replies to {} conversations queued in {:.2} s, sent {:.2} s after the first was queued = {:.0} msg/s",
        convs.len(),
        queued.as_secs_f64(),
        t.as_secs_f64(),
        sent as f64 / t.as_secs_f64()
    );
    // okno records each message's wamid as the send returns; let the last ones land.
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.count_status(&convs, "sent").await? < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let wamids: Vec<String> = sim.sent().into_iter().map(|s| s.id).collect();

    // 3. Status webhooks, one status each.
    let half: Vec<(String, String)> =
        wamids[..wamids.len() / 2].iter().map(|id| (id.clone(), "delivered".into())).collect();
    let started = Instant::now();
    let failed = sim.push_statuses(&half, 1, 64).await;
    let t = started.elapsed();
    println!(
        "status webhooks: {} single-status webhooks applied in {:.2} s = {:.0} webhooks/s ({failed} not answered 200)",
        half.len(),
        t.as_secs_f64(),
        half.len() as f64 / t.as_secs_f64()
    );

    // 4. The status storm.
    let storm = WaSim::storm(&wamids, 2);
    let started = Instant::now();
    let failed = sim.push_statuses(&storm, 100, 16).await;
    let applied = started.elapsed();
    let read = server.count_status(&convs, "read").await?;
    println!(
        "status storm: {} messages × 3 statuses, each twice, shuffled = {} statuses in {} webhooks of 100, applied in {:.2} s = {:.0} statuses/s ({failed} webhooks not answered 200); {read} of {} messages at `read` after it",
        wamids.len(),
        storm.len(),
        storm.len().div_ceil(100),
        applied.as_secs_f64(),
        storm.len() as f64 / applied.as_secs_f64(),
        wamids.len()
    );
    if read < wamids.len() {
        println!("  NOT every message reached its highest status");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
