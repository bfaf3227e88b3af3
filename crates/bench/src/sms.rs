//! The SMS benchmark: okno (a separate process) against the gateway simulator (in this
//! process), Twilio's shape (its requests are signed, so okno verifies every one), the
//! simulator's rate limit and okno's pacing off:
//!
//! 1. inbound: texts from 1,000 people pushed to okno's hook by 32 concurrent clients, timed
//!    until okno has stored them all;
//! 2. outbound: replies queued in their conversations, timed until the gateway has them all;
//! 3. delivery reports: a signed `delivered` status callback for each SMS sent, pushed by 32
//!    concurrent clients, timed until okno has answered them all and the last message shows
//!    `delivered`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use okno_testkit::sms::{HookCall, Report, SmsSim};
use serde_json::json;

use crate::server::Okno;

const SID: &str = "AC00000000000000000000000000bench";
const AUTH: &str = "bench-auth-token-0001";
const NUMBER: &str = "+15005550006";
const SECRET: &str = "bench-callback-secret-0123456789";
const PEOPLE: usize = 1_000;

/// Pushes `calls` from 32 concurrent clients; the number answered 2xx.
async fn push_all(sim: &SmsSim, calls: Vec<HookCall>) -> usize {
    let calls = Arc::new(calls);
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (sim, calls, next, ok) = (sim.clone(), calls.clone(), next.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(call) = calls.get(n) else { break };
                if sim.push(call).await.is_some_and(|s| (200..300).contains(&s)) {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    ok.load(Ordering::Relaxed)
}

pub async fn run(okno: &Path, n: usize, outbound: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("okno-bench-sms-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let sim = SmsSim::start().await;
    sim.set_rate_limit(None);
    let acct = sim.add_twilio(SID, AUTH, NUMBER, 1_000_000.0);
    let server = Okno::start(okno, &dir, None).await?;
    println!(
        "okno sms benchmark (Twilio shape, signed callbacks) — SQLite, simulator in the benchmark process, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let config = json!({"provider": "twilio", "account_sid": SID, "auth_token": AUTH, "sender": NUMBER,
                        "api_base": sim.api_base(), "callback_secret": SECRET, "limits": {}});
    let ch = server
        .call(reqwest::Method::POST, "/channels", Some(json!({"kind": "sms", "name": "bench", "config": config})))
        .await?;
    let ch = ch["id"].as_str().with_context(|| format!("no channel id: {ch}"))?.to_string();
    sim.set_callback(&acct, &format!("{}/hooks/{ch}?secret={SECRET}", server.base));

    // 1. Inbound texts.
    let calls: Vec<HookCall> = (0..n)
        .map(|i| sim.text_call(&acct, &format!("+7900{:07}", i % PEOPLE), &format!("Где мой заказ №{i}?")))
        .collect();
    let started = Instant::now();
    let got = push_all(&sim, calls).await;
    let t = started.elapsed();
    if got < n {
        bail!("okno accepted {got} of {n} texts (signature or secret refused?)");
    }
    println!(
        "inbound texts: {got} of {n} from {PEOPLE} people stored in {:.2} s = {:.0} msg/s",
        t.as_secs_f64(),
        got as f64 / t.as_secs_f64()
    );

    // 2. Outbound replies.
    let convs = server.conversations().await?;
    let started = Instant::now();
    let queued = server.queue_replies(&convs, outbound).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
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

    // 3. Delivery reports for everything sent.
    let all = sim.sent();
    // okno records the provider's id once the send returns: let the last ones settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls: Vec<HookCall> = all.iter().map(|s| sim.report_call(s, Report::Delivered)).collect();
    let started = Instant::now();
    let got = push_all(&sim, calls).await;
    let t = started.elapsed();
    println!(
        "delivery reports: {got} of {} signed status callbacks applied in {:.2} s = {:.0} reports/s",
        all.len(),
        t.as_secs_f64(),
        got as f64 / t.as_secs_f64()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
