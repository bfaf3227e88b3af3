//! The benchmark. It starts the release `okno serve` as a separate process (SQLite in a
//! temporary folder, or a fresh PostgreSQL database), then measures:
//!
//! 1. idle memory (RSS) after start-up;
//! 2. inbound: signed messages posted to a webhook channel's hook by concurrent clients —
//!    each answer arrives only after the message is committed — throughput and latency;
//! 3. outbound: replies queued through the API and delivered to a local sink — enqueue rate
//!    and sustained send rate;
//! 4. peak memory during the run.
//!
//! Each okno run is preceded by the yardstick's ceiling (see `yardstick`): a minimal server doing
//! the least the same work needs on the same backend, measured in the same minutes; rounds of the
//! two alternate (`--rounds`), and okno's rates are printed as ratios of the ceiling's.
//!
//! `--render` measures template renders in process and through the render worker pool.
//!
//! Build first: `cargo build --release -p okno -p okno-bench`, then
//! `target/release/okno-bench [--postgres]`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use okno_testkit::{Sink, TestDb};
use serde_json::{json, Value};

mod avito;
mod bitrix24;
mod broadcast;
mod channels;
mod connectors;
mod email;
mod events;
mod render;
mod server;
mod sms;
mod telegram;
mod viber;
mod whatsapp;
mod widget;
mod yardstick;

use server::Okno;

const SECRET: &str = "bench-secret-0123456789";

#[derive(Parser)]
struct Args {
    /// The okno binary (default: `okno` beside this program).
    #[arg(long)]
    okno: Option<PathBuf>,
    /// Run on a fresh database on the local PostgreSQL instead of SQLite.
    #[arg(long)]
    postgres: bool,
    /// Inbound messages to post.
    #[arg(long, default_value_t = 20_000)]
    inbound: usize,
    /// Distinct senders among them.
    #[arg(long, default_value_t = 1_000)]
    senders: usize,
    /// Outbound messages to queue and deliver.
    #[arg(long, default_value_t = 10_000)]
    outbound: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measure the Telegram channel against the Bot API simulator instead.
    #[arg(long)]
    telegram: bool,
    /// Measure the MAX, VK, OK, WhatsApp, Viber, SMS or Avito channel against its simulator (e-mail: against a real
    /// Postfix and Dovecot) (`--inbound` messages per
    /// receive mode, `--outbound` replies, then a 1,000-person broadcast at the platform's limits).
    #[arg(long, value_enum)]
    channel: Option<channels::Kind>,
    /// Measure a broadcast to `--people` against the Telegram simulator, without and with limits.
    #[arg(long)]
    broadcast: bool,
    /// Broadcast: people in the audience.
    #[arg(long, default_value_t = 100_000)]
    people: usize,
    /// Measure template renders in process and through okno's render worker processes.
    #[arg(long)]
    render: bool,
    /// Render: messages rendered per measurement.
    #[arg(long, default_value_t = 20_000)]
    renders: usize,
    /// Measure business events → notifications (with --postgres for PostgreSQL).
    #[arg(long)]
    events: bool,
    /// Measure the website widget: `--visitors` live streams, a reply to each timed to its stream.
    #[arg(long)]
    widget: bool,
    /// Widget: visitors holding a live stream open.
    #[arg(long, default_value_t = 1_000)]
    visitors: usize,
    /// Widget: replies queued per second.
    #[arg(long, default_value_t = 200)]
    rate: usize,
    /// Events on PostgreSQL: a second okno process sends what the first accepts (the first's
    /// one delivery worker is held by a slow site), so the latency is across processes.
    #[arg(long)]
    across: bool,
    /// Events: how many are posted at 200 per second for the latency figure.
    #[arg(long, default_value_t = 2_000)]
    paced_events: usize,
    /// Events: how many are posted as fast as possible for the loss and duplicate check (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    bulk_events: usize,
    /// Events: rules of the same event type besides the one that sends, whose condition is
    /// false (each leaves its outcome with every event).
    #[arg(long, default_value_t = 0)]
    idle_rules: usize,
    /// Measure contact sync with amoCRM, `--contacts` each way, against its simulator at its limit.
    #[arg(long)]
    amocrm: bool,
    /// Measure contact sync with Bitrix24, `--contacts` each way, against its simulator at the
    /// standard plan's bucket (2 requests a second, 50 at most).
    #[arg(long)]
    bitrix24: bool,
    /// amoCRM and Bitrix24: contacts synced each way.
    #[arg(long, default_value_t = 100_000)]
    contacts: usize,
    /// Events: run on this PostgreSQL database (empty) instead of a fresh one, e.g. one with
    /// statement logging turned on to count statements per event.
    #[arg(long)]
    database_url: Option<String>,
    /// Core run: rounds of the yardstick, each the ceiling's run then okno's.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Core run: okno alone, once, without the yardstick's ceiling.
    #[arg(long)]
    no_yardstick: bool,
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let okno = match &args.okno {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("okno"),
    };
    if !okno.exists() {
        bail!("{} not found: build it with `cargo build --release -p okno`", okno.display());
    }
    if args.render {
        return render::run(&okno, args.renders).await;
    }
    if args.amocrm {
        return connectors::run(&okno, args.contacts).await;
    }
    if args.bitrix24 {
        return bitrix24::run(&okno, args.contacts).await;
    }
    if args.widget {
        return widget::run(&okno, args.visitors, args.rate).await;
    }
    if args.broadcast {
        return broadcast::run(&okno, args.people).await;
    }
    if args.channel == Some(channels::Kind::Avito) {
        return avito::run(&okno, args.inbound, args.outbound).await;
    }
    if args.channel == Some(channels::Kind::Email) {
        return email::run(&okno, args.inbound, args.outbound).await;
    }
    if args.channel == Some(channels::Kind::Viber) {
        return viber::run(&okno, args.inbound, args.outbound).await;
    }
    if args.channel == Some(channels::Kind::Whatsapp) {
        return whatsapp::run(&okno, args.inbound, args.outbound).await;
    }
    if let Some(kind) = args.channel {
        return channels::run(&okno, kind, args.inbound, args.outbound).await;
    }
    if args.telegram {
        return telegram::run(&okno, args.inbound, args.outbound).await;
    }
    if args.events {
        let plan = events::Plan {
            postgres: args.postgres || args.database_url.is_some(),
            database_url: args.database_url.clone(),
            paced: args.paced_events,
            bulk: args.bulk_events,
            idle_rules: args.idle_rules,
            across: args.across,
        };
        return events::run(&okno, plan).await;
    }
    if args.no_yardstick {
        return core(&okno, &args).await.map(|_| ());
    }
    let plan = yardstick::Plan {
        postgres: args.postgres,
        inbound: args.inbound,
        senders: args.senders,
        outbound: args.outbound,
        concurrency: args.concurrency,
    };
    let mut rounds = Vec::new();
    for round in 1..=args.rounds.max(1) {
        println!("\n— round {round}: the ceiling —");
        let ceiling = yardstick::ceiling(&plan).await?;
        println!("\n— round {round}: okno —");
        rounds.push((ceiling, core(&okno, &args).await?));
    }
    yardstick::report(args.postgres, &rounds);
    Ok(())
}

/// The core run on a fresh okno: inbound, then outbound; prints and returns its rates.
async fn core(okno: &Path, args: &Args) -> Result<yardstick::Figures> {
    let dir = std::env::temp_dir().join(format!("okno-bench-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let pg = if args.postgres { Some(TestDb::postgres().await.context("PostgreSQL is not reachable")?) } else { None };
    let server = Okno::start(okno, &dir, pg.as_ref().map(|d| d.url.as_str())).await?;
    let pid = server.pid();
    let (base, token) = (server.base.clone(), server.token.clone());
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency * 2).build()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kb(pid).unwrap_or(0);

    let backend = if args.postgres { "PostgreSQL" } else { "SQLite" };
    println!(
        "okno benchmark — {backend}, {} concurrent clients, {} cores",
        args.concurrency,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("idle RSS after start-up: {:.1} MB", idle_rss as f64 / 1024.0);

    let sink = Sink::start(SECRET).await;
    let ch: Value = http
        .post(format!("{base}/api/v1/channels"))
        .bearer_auth(&token)
        .json(&json!({"kind": "webhook", "name": "bench", "config": {"outbound_url": format!("{}/out", sink.url), "secret": SECRET}}))
        .send()
        .await?
        .json()
        .await?;
    let ch = ch["id"].as_str().context("channel id")?.to_string();

    // --- inbound ------------------------------------------------------------------------
    let url = format!("{base}/hooks/{ch}");
    let cpu = yardstick::Cpu::start(Some(pid));
    let (lat, elapsed) = yardstick::drive_inbound(&http, &url, args.inbound, args.senders, args.concurrency).await;
    let (inbound_cpu, okno_cpu) = cpu.per_item(lat.len());
    println!(
        "inbound: {} messages ({} senders) in {:.2} s = {:.0} msg/s accepted durably; ack p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        args.senders,
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    println!(
        "inbound CPU: {inbound_cpu:.0} µs of the machine per message, {:.0} µs of them okno's process",
        okno_cpu.unwrap_or(0.0)
    );
    if lat.len() != args.inbound {
        println!("  WARNING: {} of {} inbound requests did not get 200", args.inbound - lat.len(), args.inbound);
    }

    // --- outbound -----------------------------------------------------------------------
    let convs: Value =
        http.get(format!("{base}/api/v1/conversations?limit=500")).bearer_auth(&token).send().await?.json().await?;
    let convs: Vec<String> = convs["items"]
        .as_array()
        .context("conversations")?
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    let convs = Arc::new(convs);
    let cpu = yardstick::Cpu::start(Some(pid));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (http, next, convs, token, base) = (http.clone(), next.clone(), convs.clone(), token.clone(), base.clone());
        let total = args.outbound;
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let conv = &convs[n % convs.len()];
                let r = http
                    .post(format!("{base}/api/v1/conversations/{conv}/messages"))
                    .bearer_auth(&token)
                    .json(&json!({"text": format!("Ваш заказ №{n} отгружен")}))
                    .send()
                    .await;
                if !r.as_ref().is_ok_and(|r| r.status() == 202) {
                    eprintln!("enqueue failed: {:?}", r.map(|r| r.status()));
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let enqueue = started.elapsed();
    println!(
        "outbound: {} replies queued through the API in {:.2} s = {:.0} msg/s",
        args.outbound,
        enqueue.as_secs_f64(),
        args.outbound as f64 / enqueue.as_secs_f64()
    );
    let delivered = yardstick::wait_delivered(&sink, args.outbound, Duration::from_secs(600), || false).await;
    let all = started.elapsed();
    let (delivered_cpu, okno_cpu) = cpu.per_item(delivered);
    println!(
        "outbound: {} delivered to the sink {:.2} s after the first was queued = {:.0} msg/s sustained (queue → signed POST → marked sent)",
        delivered,
        all.as_secs_f64(),
        delivered as f64 / all.as_secs_f64()
    );
    println!(
        "outbound CPU: {delivered_cpu:.0} µs of the machine per message (queued and delivered), {:.0} µs of them okno's process",
        okno_cpu.unwrap_or(0.0)
    );
    println!("peak RSS during the run: {:.1} MB", hwm_kb(pid).unwrap_or(0) as f64 / 1024.0);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(yardstick::Figures {
        inbound: lat.len() as f64 / elapsed.as_secs_f64(),
        inbound_cpu,
        delivered: delivered as f64 / all.as_secs_f64(),
        delivered_cpu,
    })
}
