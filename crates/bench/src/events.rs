//! The events benchmark: okno (a separate process, SQLite or PostgreSQL) with a Telegram bot on
//! the simulator (limits off), 300 people linked by link codes, and a rule with three recipients.
//!
//! `--idle-rules N` adds N rules of the same type whose condition is false (each leaves its
//! outcome with every event).
//!
//! 1. 2,000 events (`--paced-events`) paced at 200 per second: latency from the event's 202 to the first request
//!    that reaches the simulator for it (both clocks are this process's);
//! 2. 10,000 events (`--bulk-events`) × 3 recipients posted as fast as 32 clients can: every one of the 30,000
//!    messages must arrive, none twice.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use okno_testkit::telegram::TelegramSim;
use okno_testkit::TestDb;
use serde_json::json;

use crate::server::Okno;
use crate::telegram::drain;

const TOKEN: &str = "777000:events-bench";
const PEOPLE: i64 = 300;

fn key_of(text: &str) -> Option<&str> {
    text.split("ключ ").nth(1).map(|rest| rest.trim())
}

/// What to run: the backend and how many events each phase posts.
pub struct Plan {
    pub postgres: bool,
    /// A given PostgreSQL database instead of a fresh one.
    pub database_url: Option<String>,
    /// Events posted at 200 per second (phase 1).
    pub paced: usize,
    /// Events posted as fast as possible (phase 2; 0 skips it).
    pub bulk: usize,
    /// Rules of the event's type whose condition is false, besides the one that sends.
    pub idle_rules: usize,
    /// A second process on the database sends what the first accepts (PostgreSQL).
    pub across: bool,
}

/// The first process's settings when another sends for it: one delivery worker, which
/// [`hold_the_worker`] keeps busy.
const HELD: &[(&str, &str)] = &[
    ("OKNO_DELIVERY__WORKERS", "1"),
    ("OKNO_DELIVERY__BULK_WORKERS", "1"),
    ("OKNO_DELIVERY__HTTP_TIMEOUT_SECS", "3600"),
];
/// The second process looks for work only when told (a NOTIFY), or once a minute.
const WOKEN: &[(&str, &str)] = &[("OKNO_DELIVERY__POLL_INTERVAL_MS", "60000")];

/// Keeps `server`'s one delivery worker busy: a reply on a webhook channel whose site answers
/// after an hour. Returns the site.
async fn hold_the_worker(server: &Okno) -> Result<okno_testkit::Sink> {
    const SECRET: &str = "held-site-secret-0123";
    let site = okno_testkit::Sink::start(SECRET).await;
    site.delay(Duration::from_secs(3600));
    let ch = server
        .call(
            reqwest::Method::POST,
            "/channels",
            Some(json!({"kind": "webhook", "name": "slow site", "config": {"outbound_url": format!("{}/out", site.url), "secret": SECRET}})),
        )
        .await?;
    let ch = ch["id"].as_str().context("channel id")?.to_string();
    let body = serde_json::to_vec(&json!({"message_id": "held-1", "user": {"id": "held"}, "text": "Здравствуйте"}))?;
    let sig = okno_domain::signing::sign(SECRET.as_bytes(), &body);
    server.http.post(format!("{}/hooks/{ch}", server.base)).header("x-okno-signature", sig).body(body).send().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let conv = server.conversations().await?.into_iter().next().context("the held conversation")?;
    server
        .call(reqwest::Method::POST, &format!("/conversations/{conv}/messages"), Some(json!({"text": "ответ"})))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(site)
}

pub async fn run(okno: &Path, plan: Plan) -> Result<()> {
    let postgres = plan.postgres;
    let dir = std::env::temp_dir().join(format!("okno-bench-ev-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let pg = if postgres && plan.database_url.is_none() {
        Some(TestDb::postgres().await.context("PostgreSQL is not reachable")?)
    } else {
        None
    };
    let url = plan.database_url.clone().or_else(|| pg.as_ref().map(|d| d.url.clone()));
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "events_bench_bot");
    sim.set_limits(false);
    if plan.across && url.is_none() {
        bail!("--across needs PostgreSQL (--postgres)");
    }
    let server = Okno::start_with(okno, &dir, url.as_deref(), if plan.across { HELD } else { &[] }).await?;
    println!(
        "okno events benchmark — {}, simulator in the benchmark process, 2 cores",
        if postgres { "PostgreSQL" } else { "SQLite" }
    );
    // Across processes: the first process (which takes every request) has its one worker
    // held, so a second one on the database, told by NOTIFY, does all the sending.
    let mut _second = None;
    let mut _held_site = None;
    if plan.across {
        _held_site = Some(hold_the_worker(&server).await?);
        let dir_b = dir.join("b");
        std::fs::create_dir_all(dir_b.join("okno-data"))?;
        std::fs::copy(dir.join("okno-data/secret.key"), dir_b.join("okno-data/secret.key"))?;
        _second = Some(Okno::start_with(okno, &dir_b, url.as_deref(), WOKEN).await?);
        println!(
            "across processes: requests to process A, whose one delivery worker is held; process B sends (its poll once a minute, woken by NOTIFY)"
        );
    }
    server.unthrottled_bot(&sim, TOKEN).await?;
    // People, linked to Telegram the way real ones are: a code, then /start.
    for n in 0..PEOPLE {
        let c = server
            .call(
                reqwest::Method::POST,
                "/contacts",
                Some(json!({"external_id": format!("p-{n}"), "name": format!("Сотрудник {n}")})),
            )
            .await?;
        let id = c["id"].as_str().context("contact id")?.to_string();
        let link = server.call(reqwest::Method::POST, &format!("/contacts/{id}/link"), Some(json!({}))).await?;
        let code = link["code"].as_str().context("code")?.to_string();
        sim.user(TOKEN, 100_000 + n, "Сотрудник").send_text(&format!("/start {code}"));
    }
    drain(&sim, TOKEN, Duration::from_secs(120)).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.sent(TOKEN).len() < PEOPLE as usize {
        if Instant::now() > deadline {
            bail!("linking confirmations missing");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let baseline = sim.sent(TOKEN).len();
    server
        .call(
            reqwest::Method::POST,
            "/rules",
            Some(json!({"name": "три получателя", "event": "bench.happened",
                "recipients": [{"external_id": "{{ data.a }}"}, {"external_id": "{{ data.b }}"}, {"external_id": "{{ data.c }}"}],
                "template": "Событие для {{ contact.name }}, {{ data.amount | money }}, ключ {{ event.key }}"})),
        )
        .await?;
    for n in 0..plan.idle_rules {
        server
            .call(
                reqwest::Method::POST,
                "/rules",
                Some(json!({"name": format!("не про это {n}"), "event": "bench.happened",
                    "condition": format!("data.amount < 0 && data.a == \"p-{n}\""),
                    "recipients": [{"external_id": "{{ data.a }}"}], "template": "—"})),
            )
            .await?;
    }
    if plan.idle_rules > 0 {
        println!("{} more rules of the type, their condition false", plan.idle_rules);
    }
    let event = |n: usize, prefix: &str| {
        let p = n as i64 % PEOPLE;
        json!({"type": "bench.happened", "key": format!("{prefix}-{n}"),
               "data": {"a": format!("p-{p}"), "b": format!("p-{}", (p + 100) % PEOPLE), "c": format!("p-{}", (p + 200) % PEOPLE), "amount": n}})
    };

    // 1. Latency at 200 events/s.
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut tasks = Vec::new();
    for n in 0..plan.paced {
        tick.tick().await;
        let (http, base, token, body, accepted) =
            (server.http.clone(), server.base.clone(), server.token.clone(), event(n, "lat"), accepted.clone());
        tasks.push(tokio::spawn(async move {
            let key = body["key"].as_str().unwrap_or_default().to_string();
            let r = http.post(format!("{base}/api/v1/events")).bearer_auth(token).json(&body).send().await;
            if r.is_ok_and(|r| r.status() == 202) {
                if let Ok(mut a) = accepted.lock() {
                    a.insert(key, Instant::now());
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let want = baseline + 3 * plan.paced;
    let deadline = Instant::now() + Duration::from_secs(120);
    while sim.sent(TOKEN).len() < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut first: HashMap<String, Instant> = HashMap::new();
    for s in sim.sent(TOKEN).into_iter().skip(baseline) {
        if let Some(k) = s.plain.as_deref().and_then(key_of) {
            first.entry(k.to_string()).and_modify(|t| *t = (*t).min(s.at)).or_insert(s.at);
        }
    }
    let accepted = accepted.lock().map(|a| a.clone()).unwrap_or_default();
    let mut lat: Vec<Duration> =
        accepted.iter().filter_map(|(k, t)| first.get(k).map(|f| f.saturating_duration_since(*t))).collect();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default().as_secs_f64() * 1000.0
    };
    println!(
        "200 events/s for {:.0} s: {} accepted; event accepted → first request to the channel: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        plan.paced as f64 / 200.0,
        accepted.len(),
        pct(0.5),
        pct(0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );

    // 2. 10,000 events × 3 recipients, no loss, no duplicate.
    if plan.bulk == 0 {
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    let bulk_events = plan.bulk;
    let base_count = sim.sent(TOKEN).len();
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (http, base, token, next) = (server.http.clone(), server.base.clone(), server.token.clone(), next.clone());
        let make = event;
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= bulk_events {
                    break;
                }
                let _ =
                    http.post(format!("{base}/api/v1/events")).bearer_auth(&token).json(&make(n, "bulk")).send().await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let posted = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while sim.sent(TOKEN).len() < base_count + 3 * bulk_events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done = started.elapsed();
    let bulk: Vec<_> = sim.sent(TOKEN).into_iter().skip(base_count).collect();
    let pairs: HashSet<(i64, String)> =
        bulk.iter().filter_map(|s| s.plain.as_deref().and_then(key_of).map(|k| (s.chat_id, k.to_string()))).collect();
    println!(
        "{} events × 3 recipients: posted in {:.1} s ({:.0} events/s), {} messages sent in {:.1} s; distinct (person, event) pairs {} — lost {}, duplicates {}",
        bulk_events,
        posted.as_secs_f64(),
        bulk_events as f64 / posted.as_secs_f64(),
        bulk.len(),
        done.as_secs_f64(),
        pairs.len(),
        (3 * bulk_events).saturating_sub(pairs.len()),
        bulk.len() - pairs.len()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
