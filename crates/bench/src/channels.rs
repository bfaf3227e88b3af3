//! The MAX, VK and OK benchmarks: okno (a separate process) against the platform's simulator
//! (in this process), as `telegram.rs` does for Telegram.
//!
//! 1. the simulator's limits off and okno's pacing off (`limits` in the channel's config) —
//!    inbound messages from 1,000 people through long polling (MAX, VK; OK has none) and
//!    through the webhook, timed until okno has stored them all (its `inbound_messages`
//!    counter); outbound replies from the queue to the simulator;
//! 2. the simulator's limits on and okno's default pacing — a broadcast to 1,000 people: the
//!    time it takes, the rate, and the simulator's rate-limit refusals (429 on MAX, error 6/9
//!    on VK; the OK simulator has no limits, OK publishes none).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use okno_testkit::max::MaxSim;
use okno_testkit::ok_sim::OkSim;
use okno_testkit::vk::VkSim;
use serde_json::{json, Value};

use crate::server::Okno;

const TOKEN: &str = "bench-token-0001";
const LIMITED: &str = "bench-token-0002";
const TEXT: &str = "Новости недели: скидки до 30%";
const PEOPLE: usize = 1_000;

/// Which platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Max,
    Vk,
    Ok,
    /// Its own benchmark (`whatsapp.rs`): webhooks only, and the status storm.
    Whatsapp,
    /// SMS in Twilio's shape (`sms.rs`).
    Sms,
    /// Its own benchmark (`avito.rs`): webhooks and replies into buyers' chats.
    Avito,
    /// Its own benchmark (`viber.rs`): callbacks, replies and receipts.
    Viber,
    /// Its own benchmark (`email.rs`): a real Postfix and Dovecot, fetch and send.
    Email,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Max => "max",
            Kind::Vk => "vk",
            Kind::Ok => "ok",
            Kind::Whatsapp => "whatsapp",
            Kind::Sms => "sms",
            Kind::Avito => "avito",
            Kind::Viber => "viber",
            Kind::Email => "email",
        }
    }
}

/// One simulator, whichever platform.
enum Sim {
    Max(MaxSim),
    Vk(VkSim),
    Ok(OkSim),
}

/// One person on a simulator.
enum Person {
    Max(okno_testkit::max::SimUser),
    Vk(okno_testkit::vk::SimUser),
    Ok(okno_testkit::ok_sim::SimUser),
}

impl Person {
    fn send_text(&self, text: &str) {
        match self {
            Person::Max(u) => {
                u.send_text(text);
            }
            Person::Vk(u) => {
                u.send_text(text);
            }
            Person::Ok(u) => {
                u.send_text(text);
            }
        }
    }
}

impl Sim {
    async fn start(kind: Kind) -> Sim {
        match kind {
            Kind::Max => Sim::Max(MaxSim::start().await),
            Kind::Vk => Sim::Vk(VkSim::start().await),
            Kind::Ok => Sim::Ok(OkSim::start().await),
            Kind::Whatsapp | Kind::Sms | Kind::Avito | Kind::Viber | Kind::Email => {
                unreachable!(
                    "whatsapp, sms, avito, viber and email run their own benchmarks (whatsapp.rs, sms.rs, avito.rs, viber.rs, email.rs)"
                )
            }
        }
    }

    fn add(&self, token: &str, n: i64) {
        match self {
            Sim::Max(s) => {
                s.add_bot(token, &format!("bench_bot_{n}"));
            }
            Sim::Vk(s) => s.add_group(token, 7_000 + n, "Магазин"),
            Sim::Ok(s) => s.add_group(token, 7_000 + n, "Магазин"),
        }
    }

    /// The simulator's platform limits; the OK simulator has none.
    fn set_limits(&self, on: bool) {
        match self {
            Sim::Max(s) => s.set_limits(on),
            Sim::Vk(s) => s.set_limits(on),
            Sim::Ok(_) => {}
        }
    }

    /// The receive modes to measure: MAX and VK poll or take a webhook, OK only the webhook.
    fn modes(&self) -> &'static [&'static str] {
        match self {
            Sim::Ok(_) => &["webhook"],
            _ => &["polling", "webhook"],
        }
    }

    /// The channel's config; `unpaced` turns okno's own pacing off.
    fn config(&self, token: &str, mode: &str, unpaced: bool) -> Value {
        let mut c = match self {
            Sim::Max(s) => json!({"token": token, "api_base": s.api_base(), "mode": mode}),
            Sim::Vk(s) => json!({"token": token, "api_base": format!("{}/method", s.api_base()), "mode": mode}),
            Sim::Ok(s) => json!({"token": token, "api_base": s.api_base()}),
        };
        if unpaced {
            c["limits"] = match self {
                Sim::Max(_) => json!({"per_second": 0, "per_chat_per_second": 0}),
                Sim::Vk(_) => json!({"per_second": 0}),
                Sim::Ok(_) => json!({}),
            };
        }
        c
    }

    fn person(&self, token: &str, id: i64, name: &str) -> Person {
        match self {
            Sim::Max(s) => Person::Max(s.user(token, id, name)),
            Sim::Vk(s) => Person::Vk(s.user(token, id, name)),
            Sim::Ok(s) => Person::Ok(s.user(token, id, name)),
        }
    }

    fn sent(&self, token: &str) -> usize {
        match self {
            Sim::Max(s) => s.sent_count(token),
            Sim::Vk(s) => s.sent_count(token),
            Sim::Ok(s) => s.sent_count(token),
        }
    }

    fn mailed(&self, token: &str) -> usize {
        match self {
            Sim::Max(s) => s.sent(token).iter().filter(|m| m.text.as_deref() == Some(TEXT)).count(),
            Sim::Vk(s) => s.sent(token).iter().filter(|m| m.text == TEXT).count(),
            Sim::Ok(s) => s.sent(token).iter().filter(|m| m.text == TEXT).count(),
        }
    }

    /// Rate-limit refusals the simulator answered (`None`: it has no limits).
    fn refused(&self, token: &str) -> Option<usize> {
        match self {
            Sim::Max(s) => Some(s.rate_limited(token)),
            Sim::Vk(s) => Some(s.rate_limited(token)),
            Sim::Ok(_) => None,
        }
    }
}

/// Waits until the simulator has `target` sends from `token`; the count reached.
async fn wait_sent(sim: &Sim, token: &str, target: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let n = sim.sent(token);
        if n >= target || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn channel(server: &Okno, name: &str, kind: Kind, config: Value) -> Result<String> {
    let ch = server
        .call(reqwest::Method::POST, "/channels", Some(json!({"kind": kind.name(), "name": name, "config": config})))
        .await?;
    Ok(ch["id"].as_str().with_context(|| format!("no channel id: {ch}"))?.to_string())
}

pub async fn run(okno: &Path, kind: Kind, n: usize, outbound: usize) -> Result<()> {
    if kind == Kind::Sms {
        return crate::sms::run(okno, n, outbound).await;
    }
    let dir = std::env::temp_dir().join(format!("okno-bench-{}-{}", kind.name(), okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let sim = Sim::start(kind).await;
    sim.add(TOKEN, 1);
    sim.set_limits(false);
    let server = Okno::start(okno, &dir, None).await?;
    println!(
        "okno {} benchmark — SQLite, simulator in the benchmark process, {} cores",
        kind.name(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let people: Vec<Person> = (0..PEOPLE).map(|i| sim.person(TOKEN, 10_000 + i as i64, "Покупатель")).collect();
    let limit = Duration::from_secs(300);

    // 1. Limits off: inbound by each receive mode, then outbound.
    let mut ch: Option<String> = None;
    for mode in sim.modes() {
        let config = sim.config(TOKEN, mode, true);
        match &ch {
            None => ch = Some(channel(&server, "bench", kind, config).await?),
            Some(id) => {
                let r = server
                    .call(reqwest::Method::PATCH, &format!("/channels/{id}"), Some(json!({"config": {"mode": mode}})))
                    .await?;
                if r["id"].is_null() {
                    bail!("switching to {mode}: {r}");
                }
            }
        }
        // Let the poller (or the subscription) settle before the burst.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = server.inbound(kind.name()).await?;
        let started = Instant::now();
        for i in 0..n {
            people[i % PEOPLE].send_text(&format!("Где мой заказ №{i}? ({mode})"));
        }
        let made = started.elapsed();
        let got = server.wait_inbound(kind.name(), before + n as u64, limit).await? - before;
        let t = started.elapsed();
        println!(
            "inbound, {mode}: {got} of {n} messages from {PEOPLE} people stored in {:.2} s = {:.0} msg/s (the simulator made them in {:.2} s)",
            t.as_secs_f64(),
            got as f64 / t.as_secs_f64(),
            made.as_secs_f64()
        );
    }
    let convs = server.conversations().await?;
    let before = sim.sent(TOKEN);
    let started = Instant::now();
    let queued = server.queue_replies(&convs, outbound).await?;
    let got = wait_sent(&sim, TOKEN, before + outbound, limit).await - before;
    let t = started.elapsed();
    println!(
        "outbound: {got} of {outbound} replies to {} conversations queued in {:.2} s, sent {:.2} s after the first was queued = {:.0} msg/s",
        convs.len(),
        queued.as_secs_f64(),
        t.as_secs_f64(),
        got as f64 / t.as_secs_f64()
    );

    // 2. Limits on, okno's default pacing: a broadcast to 1,000 people.
    sim.add(LIMITED, 2);
    sim.set_limits(true);
    let mode = sim.modes()[0];
    channel(&server, "limited", kind, sim.config(LIMITED, mode, false)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = server.inbound(kind.name()).await?;
    for i in 0..PEOPLE {
        sim.person(LIMITED, 500_000 + i as i64, "Сотрудник").send_text("привет");
    }
    let got = server.wait_inbound(kind.name(), before + PEOPLE as u64, limit).await? - before;
    if got < PEOPLE as u64 {
        bail!("only {got} of {PEOPLE} people's messages arrived");
    }
    let refused_before = sim.refused(LIMITED);
    let b = server
        .call(
            reqwest::Method::POST,
            "/broadcasts",
            Some(json!({"name": "limited", "audience": {"filter": {"q": "Сотрудник"}}, "text": TEXT})),
        )
        .await?;
    let id = b["id"].as_str().with_context(|| format!("no broadcast id: {b}"))?.to_string();
    let started = Instant::now();
    // The steady state: after the first tenth is out.
    let mut steady: Option<(Duration, usize, Option<usize>)> = None;
    loop {
        let mailed = sim.mailed(LIMITED);
        if steady.is_none() && mailed >= PEOPLE / 10 {
            steady = Some((started.elapsed(), mailed, sim.refused(LIMITED)));
        }
        let b = server.call(reqwest::Method::GET, &format!("/broadcasts/{id}"), None).await?;
        if b["status"] == "done" && mailed >= PEOPLE.min(b["total"].as_u64().unwrap_or(0) as usize) {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            println!("  the limited broadcast did not finish: {b}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = started.elapsed();
    let mailed = sim.mailed(LIMITED);
    let (t_a, n_a, r_a) = steady.unwrap_or((Duration::ZERO, 0, refused_before));
    let refused = match (sim.refused(LIMITED), refused_before, r_a) {
        (Some(end), Some(start), Some(mid)) => {
            format!("{} in all, {} after the first tenth (steady state)", end - start, end - mid)
        }
        _ => "n/a (the OK simulator has no limits)".to_string(),
    };
    println!(
        "limits on: broadcast to {mailed} people done in {:.1} s = {:.1} msg/s; steady rate after the first tenth {:.1} msg/s; rate-limit refusals: {refused}",
        t.as_secs_f64(),
        mailed as f64 / t.as_secs_f64(),
        (mailed - n_a) as f64 / (t - t_a).as_secs_f64().max(0.001),
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
