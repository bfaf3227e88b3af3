//! The broadcast benchmark: okno (a separate process) against the Bot API simulator (in this
//! process).
//!
//! 1. limits off — N people (default 100,000) each wrote to the bot once; one broadcast to all of
//!    them: the time until the audience is written out, the sustained send rate, okno's peak RSS;
//! 2. limits on — a broadcast to 1,500 people at Telegram's limits: the steady rate, the 429
//!    answers, and how long a customer who writes in the middle of it waits for the operator's
//!    answer (the operator answers the moment the message is in okno).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use okno_testkit::telegram::TelegramSim;
use serde_json::{json, Value};

use crate::server::Okno;
use crate::telegram::drain;
use crate::{hwm_kb, rss_kb};

const FREE: &str = "556000:bench-broadcast";
const LIMITED: &str = "556001:bench-broadcast-limited";
const TEXT: &str = "Новости недели: скидки до 30%";

fn mailed(sim: &TelegramSim, token: &str) -> usize {
    sim.sent(token).iter().filter(|s| s.plain.as_deref() == Some(TEXT)).count()
}

async fn people(sim: &TelegramSim, token: &str, first: i64, n: usize) -> Result<()> {
    for i in 0..n {
        sim.user(token, first + i as i64, "Клиент").send_text("/start");
    }
    drain(sim, token, Duration::from_secs(1200)).await
}

async fn broadcast(server: &Okno, kind_filter: &str) -> Result<String> {
    let b = server
        .call(
            reqwest::Method::POST,
            "/broadcasts",
            Some(json!({"name": "bench", "audience": {"filter": {"channel_kind": kind_filter}}, "text": TEXT})),
        )
        .await?;
    Ok(b["id"].as_str().with_context(|| format!("no broadcast id: {b}"))?.to_string())
}

async fn status(server: &Okno, id: &str) -> Result<Value> {
    server.call(reqwest::Method::GET, &format!("/broadcasts/{id}"), None).await
}

pub async fn run(okno: &Path, n: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("okno-bench-bc-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let sim = TelegramSim::start().await;
    sim.add_bot(FREE, "bench_mailing_bot");
    sim.set_limits(false);
    let server = Okno::start(okno, &dir, None).await?;
    let pid = server.pid();
    println!("okno broadcast benchmark — SQLite, simulator in the benchmark process, 2 cores");
    server.unthrottled_bot(&sim, FREE).await?;
    let started = Instant::now();
    people(&sim, FREE, 1_000_000, n).await?;
    println!("{n} people wrote in (contacts made) in {:.1} s", started.elapsed().as_secs_f64());
    let rss_before = rss_kb(pid).unwrap_or(0);

    // 1. No limits.
    let started = Instant::now();
    let id = broadcast(&server, "telegram").await?;
    let posted = started.elapsed();
    let mut written = None;
    let mut samples = Vec::new();
    let mut peak_rss = 0;
    loop {
        let b = status(&server, &id).await?;
        let t = started.elapsed();
        peak_rss = peak_rss.max(rss_kb(pid).unwrap_or(0));
        if written.is_none() && b["total"].as_u64().unwrap_or(0) as usize == n {
            written = Some(t);
        }
        samples.push((t, mailed(&sim, FREE)));
        if b["status"] == "done" {
            break;
        }
        if t > Duration::from_secs(1800) {
            bail!("the broadcast did not finish: {b}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let total_t = started.elapsed();
    let sent = mailed(&sim, FREE);
    // The sustained rate: between 10 % and 90 % of the people.
    let at = |share: f64| samples.iter().find(|(_, s)| *s as f64 >= share * n as f64).map(|(t, _)| *t);
    let (t10, t90) = (at(0.1).unwrap_or_default(), at(0.9).unwrap_or(total_t));
    let sustained = 0.8 * n as f64 / (t90 - t10).as_secs_f64().max(0.001);
    println!(
        "limits off: POST answered in {:.0} ms; the audience of {n} written out {:.2} s after the POST",
        posted.as_secs_f64() * 1000.0,
        written.unwrap_or_default().as_secs_f64()
    );
    println!(
        "limits off: {sent} sent (each person once: {}), all done in {:.1} s; sustained {sustained:.0} msg/s (10 %→90 %)",
        sent == n,
        total_t.as_secs_f64()
    );
    println!(
        "okno RSS: {} MB before the broadcast, peak {} MB during it (sampled), high-water mark of the whole run {} MB",
        rss_before / 1024,
        peak_rss / 1024,
        hwm_kb(pid).unwrap_or(0) / 1024
    );

    // 2. Telegram's limits, and a customer in the middle of it.
    sim.add_bot(LIMITED, "bench_limited_mailing_bot");
    sim.set_limits(true);
    let ch = server
        .call(
            reqwest::Method::POST,
            "/channels",
            Some(json!({"kind": "telegram", "name": "limited", "config": {"token": LIMITED, "api_base": sim.api_base()}})),
        )
        .await?;
    let ch = ch["id"].as_str().context("channel id")?.to_string();
    let limited_people = 1_500;
    for i in 0..limited_people {
        sim.user(LIMITED, 2_000_000 + i as i64, "Сотрудник").send_text("/start");
    }
    drain(&sim, LIMITED, Duration::from_secs(600)).await?;
    let b = server
        .call(
            reqwest::Method::POST,
            "/broadcasts",
            Some(json!({"name": "limited", "audience": {"filter": {"q": "Сотрудник"}}, "text": TEXT})),
        )
        .await?;
    let id = b["id"].as_str().context("broadcast id")?.to_string();
    let started = Instant::now();
    let rate_limited_before = sim.rate_limited(LIMITED);
    // Wait for the steady state, then a customer writes.
    while mailed(&sim, LIMITED) < 300 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (t_a, n_a) = (started.elapsed(), mailed(&sim, LIMITED));
    let customer = sim.user(LIMITED, 3_000_000, "Покупатель");
    let asked = Instant::now();
    customer.send_text("Где мой заказ?");
    let conv = loop {
        let list = server.call(reqwest::Method::GET, &format!("/conversations?channel_id={ch}&limit=5"), None).await?;
        let found = list["items"].as_array().and_then(|items| {
            items.iter().find(|c| c["contact"]["name"].as_str() == Some("Покупатель")).map(|c| c["id"].clone())
        });
        if let Some(id) = found {
            break id.as_str().unwrap_or_default().to_string();
        }
        if asked.elapsed() > Duration::from_secs(30) {
            bail!("the customer's message never showed up");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seen = asked.elapsed();
    server
        .call(reqwest::Method::POST, &format!("/conversations/{conv}/messages"), Some(json!({"text": "Заказ в пути"})))
        .await?;
    let answered = loop {
        if sim.sent_to(LIMITED, 3_000_000).iter().any(|s| s.plain.as_deref() == Some("Заказ в пути")) {
            break asked.elapsed();
        }
        if asked.elapsed() > Duration::from_secs(60) {
            bail!("the customer was never answered");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    loop {
        let b = status(&server, &id).await?;
        if b["status"] == "done" {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the limited broadcast did not finish: {b}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (t_b, n_b) = (started.elapsed(), mailed(&sim, LIMITED));
    println!(
        "limits on: {n_b} sent in {:.1} s; steady rate after the first 300: {:.1} msg/s; 429 answers: {}",
        t_b.as_secs_f64(),
        (n_b - n_a) as f64 / (t_b - t_a).as_secs_f64(),
        sim.rate_limited(LIMITED) - rate_limited_before
    );
    println!(
        "limits on: a customer who wrote mid-broadcast was in okno after {:.0} ms and had the operator's answer {:.0} ms after writing",
        seen.as_secs_f64() * 1000.0,
        answered.as_secs_f64() * 1000.0
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
