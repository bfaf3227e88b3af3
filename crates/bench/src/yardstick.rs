//! The yardstick: okno's core figures as a share of what this machine allows in the same minutes.
//!
//! Absolute figures drift with the machine (a shared VM runs anywhere from quiet to busy); a
//! ratio measured against a ceiling taken in the same minutes does not. The ceiling is the least
//! a server can do for the same work, on the same backend with okno's settings, driven by the
//! same load generator:
//!
//! - **inbound**: an axum server on 127.0.0.1 that checks each hook request's signature, parses
//!   its JSON and inserts one row (deduplicated on the message id), answering 200 once that
//!   insert is committed — one durable insert per request;
//! - **outbound**: as many senders as okno has delivery workers (a webhook channel sets no
//!   limits of its own), each taking the next queued message: one read, one signed POST to a
//!   fresh local sink, one update marking it sent.
//!
//! SQLite: WAL, okno's `synchronous`, busy timeout and foreign keys, one writer thread that the
//! statements are queued to (as okno's store queues its operations) and as many reader threads
//! as okno opens. PostgreSQL: a pool of okno's size, JIT off as in okno's sessions, on a fresh
//! database dropped afterwards. The ceiling runs on its own tokio runtime, as okno runs in its
//! own process with a runtime of the same size.
//!
//! A round is the ceiling's run, then okno's; rounds alternate so both sides see the same
//! machine, and the ratios are taken within each round.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use okno_domain::time::now_ms;
use okno_testkit::{Sink, TestDb};
use rusqlite::OptionalExtension;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::{percentile, SECRET};

/// The hook path's channel id on the ceiling's server.
const CHANNEL: &str = "ceiling";

/// What both sides of a round are given.
pub(crate) struct Plan {
    pub(crate) postgres: bool,
    pub(crate) inbound: usize,
    pub(crate) senders: usize,
    pub(crate) outbound: usize,
    pub(crate) concurrency: usize,
}

/// One run's two rates.
#[derive(Clone, Copy)]
pub(crate) struct Figures {
    /// Inbound messages acknowledged per second.
    pub(crate) inbound: f64,
    /// The machine's CPU time per inbound message, in µs (every process: the server, the
    /// database, the load generator).
    pub(crate) inbound_cpu: f64,
    /// Outbound messages delivered to the sink per second.
    pub(crate) delivered: f64,
    /// The machine's CPU time per delivered message, in µs.
    pub(crate) delivered_cpu: f64,
}

/// CPU time used from a point on, read from `/proc` in clock ticks (Linux's `USER_HZ`, 100 a
/// second): the whole machine's busy time, and one process's. When a run keeps every core
/// busy, its rate can be no more than the cores' time divided by the CPU time per message.
pub(crate) struct Cpu {
    machine: u64,
    process: Option<(u32, u64)>,
}

const TICK_US: f64 = 10_000.0;

impl Cpu {
    pub(crate) fn start(pid: Option<u32>) -> Cpu {
        Cpu { machine: machine_ticks().unwrap_or(0), process: pid.map(|p| (p, process_ticks(p).unwrap_or(0))) }
    }

    /// Since `start`: µs per item of the machine and of the process.
    pub(crate) fn per_item(&self, items: usize) -> (f64, Option<f64>) {
        let n = items.max(1) as f64;
        let machine = machine_ticks().unwrap_or(0).saturating_sub(self.machine) as f64 * TICK_US / n;
        let process =
            self.process.map(|(pid, t)| process_ticks(pid).unwrap_or(0).saturating_sub(t) as f64 * TICK_US / n);
        (machine, process)
    }
}

/// The machine's busy ticks: every state but idle and waiting on the disk (`/proc/stat`).
fn machine_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is counted in user)
    Some(v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum())
}

/// A process's user and system ticks (`/proc/<pid>/stat`, fields 14 and 15).
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The cores this machine has, for the bound `cores ÷ CPU time per message`.
pub(crate) fn cores() -> f64 {
    std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(1.0)
}

/// The inbound load generator, for okno and the ceiling alike: `total` signed messages from
/// `senders` people posted to `url` by `concurrency` clients. The latencies of the requests
/// answered 200 (sorted), and the time the whole run took.
pub(crate) async fn drive_inbound(
    http: &reqwest::Client,
    url: &str,
    total: usize,
    senders: usize,
    concurrency: usize,
) -> (Vec<Duration>, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let results: Vec<Vec<Duration>> = futures::stream::iter(0..concurrency)
        .map(|_| {
            let http = http.clone();
            let next = next.clone();
            let url = url.to_string();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let body = serde_json::to_vec(&json!({
                        "message_id": format!("m-{n}"),
                        "user": {"id": format!("user-{}", n % senders), "name": format!("Покупатель {}", n % senders)},
                        "text": format!("Здравствуйте, где мой заказ №{n}?"),
                    }))
                    .unwrap_or_default();
                    let sig = okno_domain::signing::sign(SECRET.as_bytes(), &body);
                    let t = Instant::now();
                    let resp = http.post(&url).header("x-okno-signature", sig).body(body).send().await;
                    match resp {
                        Ok(r) if r.status() == 200 => lat.push(t.elapsed()),
                        Ok(r) => eprintln!("inbound answered {}", r.status()),
                        Err(e) => eprintln!("inbound failed: {e}"),
                    }
                }
                lat
            })
        })
        .buffer_unordered(concurrency)
        .map(|r| r.unwrap_or_default())
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut lat: Vec<Duration> = results.into_iter().flatten().collect();
    lat.sort();
    (lat, elapsed)
}

/// Waits until the sink has accepted `total` deliveries, `limit` passes or `done` says the
/// senders stopped; how many it accepted. Polled the same way for okno and the ceiling.
pub(crate) async fn wait_delivered(sink: &Sink, total: usize, limit: Duration, done: impl Fn() -> bool) -> usize {
    let deadline = Instant::now() + limit;
    while sink.accepted().len() < total && Instant::now() < deadline && !done() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.accepted().len()
}

/// okno's settings that the ceiling shares: okno's defaults, as the benchmark starts it.
#[derive(Clone)]
struct Tuning {
    busy_timeout_ms: u64,
    full_sync: bool,
    /// SQLite: reader connections; PostgreSQL: the pool.
    connections: u32,
    acquire_timeout_ms: u64,
    /// Messages sent at once.
    senders: usize,
}

impl Tuning {
    fn okno() -> Tuning {
        let settings = okno_server::Settings::default();
        let store = settings.store_options();
        Tuning {
            busy_timeout_ms: store.busy_timeout_ms,
            full_sync: store.sqlite_full_sync,
            connections: store.max_connections,
            acquire_timeout_ms: store.acquire_timeout_ms,
            senders: settings.delivery.workers,
        }
    }
}

// --- storage -------------------------------------------------------------------------------

const SQLITE_SCHEMA: &str = "
CREATE TABLE inbound (id INTEGER PRIMARY KEY, message_id TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,
    user_name TEXT, text TEXT NOT NULL, received_at INTEGER NOT NULL);
CREATE TABLE outbound (id INTEGER PRIMARY KEY, user_id TEXT NOT NULL, text TEXT NOT NULL,
    status TEXT NOT NULL, sent_at INTEGER);";

const PG_SCHEMA: [&str; 2] = [
    "CREATE TABLE inbound (id BIGSERIAL PRIMARY KEY, message_id TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,
        user_name TEXT, text TEXT NOT NULL, received_at BIGINT NOT NULL)",
    "CREATE TABLE outbound (id BIGINT PRIMARY KEY, user_id TEXT NOT NULL, text TEXT NOT NULL,
        status TEXT NOT NULL, sent_at BIGINT)",
];

const INSERT: &str = "INSERT INTO inbound (message_id, user_id, user_name, text, received_at) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO NOTHING";
const READ: &str = "SELECT user_id, text FROM outbound WHERE id = $1 AND status = 'queued'";
const MARK: &str = "UPDATE outbound SET status = 'sent', sent_at = $2 WHERE id = $1";

/// Conversations the queued replies are spread over (the core run's conversation list).
const CONVERSATIONS: usize = 500;

/// One inbound message as the ceiling keeps it.
struct Received {
    message_id: String,
    user_id: String,
    user_name: Option<String>,
    text: String,
}

/// A statement for SQLite: `$N` as `?N` (SQLite numbers `$N` by first appearance).
fn lite(sql: &str) -> String {
    sql.replace('$', "?")
}

type Job = Box<dyn FnOnce(&mut rusqlite::Connection) + Send>;

/// SQLite as okno's store runs it: one writer thread, reader threads beside it (WAL).
struct Lite {
    writer: crossbeam_channel::Sender<Job>,
    readers: crossbeam_channel::Sender<Job>,
}

fn connect(path: &Path, t: &Tuning) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_millis(t.busy_timeout_ms))?;
    let sync = if t.full_sync { "FULL" } else { "NORMAL" };
    conn.execute_batch(&format!("PRAGMA foreign_keys = ON; PRAGMA synchronous = {sync};"))?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

fn serve_jobs(name: String, mut conn: rusqlite::Connection, jobs: crossbeam_channel::Receiver<Job>) -> Result<()> {
    std::thread::Builder::new().name(name).spawn(move || {
        while let Ok(job) = jobs.recv() {
            job(&mut conn);
        }
    })?;
    Ok(())
}

impl Lite {
    fn open(path: &Path, t: &Tuning) -> Result<Lite> {
        let writer = connect(path, t)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.execute_batch(SQLITE_SCHEMA)?;
        let (writer_tx, writer_rx) = crossbeam_channel::unbounded();
        serve_jobs("ceiling-sqlite-writer".into(), writer, writer_rx)?;
        let (reader_tx, reader_rx) = crossbeam_channel::unbounded();
        for n in 0..t.connections.max(1) {
            serve_jobs(format!("ceiling-sqlite-reader-{n}"), connect(path, t)?, reader_rx.clone())?;
        }
        Ok(Lite { writer: writer_tx, readers: reader_tx })
    }

    /// Runs `f` on a connection's thread; its answer.
    async fn on<T, F>(to: &crossbeam_channel::Sender<Job>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        to.send(Box::new(move |conn: &mut rusqlite::Connection| {
            let _ = reply.send(f(conn));
        }))
        .map_err(|_| anyhow!("the SQLite thread stopped"))?;
        Ok(answer.await.context("the SQLite thread dropped a request")??)
    }
}

/// The ceiling's database.
enum Db {
    Lite(Lite),
    Pg(PgPool),
}

impl Db {
    /// One durable insert.
    async fn insert(&self, m: Received) -> Result<()> {
        let at = now_ms();
        match self {
            Db::Lite(l) => {
                Lite::on(&l.writer, move |c| {
                    c.prepare_cached(&lite(INSERT))?.execute(rusqlite::params![
                        m.message_id,
                        m.user_id,
                        m.user_name,
                        m.text,
                        at
                    ])
                })
                .await?;
            }
            Db::Pg(pool) => {
                sqlx::query(INSERT)
                    .bind(m.message_id)
                    .bind(m.user_id)
                    .bind(m.user_name)
                    .bind(m.text)
                    .bind(at)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Queues `total` replies (before the clock runs).
    async fn fill(&self, total: usize) -> Result<()> {
        match self {
            Db::Lite(l) => {
                Lite::on(&l.writer, move |c| {
                    let tx = c.transaction()?;
                    {
                        let mut stmt = tx.prepare(
                            "INSERT INTO outbound (id, user_id, text, status) VALUES (?1, ?2, ?3, 'queued')",
                        )?;
                        for n in 1..=total {
                            stmt.execute(rusqlite::params![
                                n as i64,
                                format!("user-{}", n % CONVERSATIONS),
                                format!("Ваш заказ №{n} отгружен")
                            ])?;
                        }
                    }
                    tx.commit()
                })
                .await?;
            }
            Db::Pg(pool) => {
                sqlx::query(
                    "INSERT INTO outbound (id, user_id, text, status) \
                     SELECT g, 'user-' || (g % $2), 'Ваш заказ №' || g || ' отгружен', 'queued' FROM generate_series(1, $1) g",
                )
                .bind(total as i64)
                .bind(CONVERSATIONS as i64)
                .execute(pool)
                .await?;
                sqlx::query("ANALYZE outbound").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// One read: a queued reply's recipient and text.
    async fn read(&self, id: i64) -> Result<Option<(String, String)>> {
        match self {
            Db::Lite(l) => {
                Lite::on(&l.readers, move |c| {
                    c.prepare_cached(&lite(READ))?.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional()
                })
                .await
            }
            Db::Pg(pool) => Ok(sqlx::query_as(READ).bind(id).fetch_optional(pool).await?),
        }
    }

    /// One update: the reply is sent.
    async fn mark_sent(&self, id: i64) -> Result<()> {
        let at = now_ms();
        match self {
            Db::Lite(l) => {
                Lite::on(&l.writer, move |c| c.prepare_cached(&lite(MARK))?.execute(rusqlite::params![id, at])).await?;
            }
            Db::Pg(pool) => {
                sqlx::query(MARK).bind(id).bind(at).execute(pool).await?;
            }
        }
        Ok(())
    }
}

async fn open_pg(url: &str, t: &Tuning) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?.options([("jit", "off")]);
    let pool = PgPoolOptions::new()
        .max_connections(t.connections.max(2))
        .acquire_timeout(Duration::from_millis(t.acquire_timeout_ms))
        .connect_with(options)
        .await?;
    for stmt in PG_SCHEMA {
        sqlx::query(stmt).execute(&pool).await?;
    }
    Ok(pool)
}

// --- the ceiling's server and senders ------------------------------------------------------

async fn hook(
    State(db): State<Arc<Db>>,
    UrlPath(channel): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if channel != CHANNEL {
        return StatusCode::NOT_FOUND;
    }
    let signed = headers
        .get("x-okno-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| okno_domain::signing::verify(SECRET.as_bytes(), &body, sig));
    if !signed {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else { return StatusCode::BAD_REQUEST };
    let text = |v: &Value| v.as_str().map(str::to_string);
    let (Some(message_id), Some(user_id), Some(body_text)) =
        (text(&v["message_id"]), text(&v["user"]["id"]), text(&v["text"]))
    else {
        return StatusCode::BAD_REQUEST;
    };
    let m = Received { message_id, user_id, user_name: text(&v["user"]["name"]), text: body_text };
    match db.insert(m).await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            eprintln!("ceiling: insert failed: {e:#}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// One sender: takes the next queued reply until none is left; one read, one signed POST, one
/// update each.
async fn send(db: Arc<Db>, http: reqwest::Client, url: String, next: Arc<AtomicUsize>, total: usize) -> Result<()> {
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= total {
            return Ok(());
        }
        let id = n as i64 + 1;
        let Some((user, text)) = db.read(id).await? else { continue };
        let body = serde_json::to_vec(&json!({"id": format!("out-{id}"), "to": {"id": user}, "text": text}))?;
        let sig = okno_domain::signing::sign(SECRET.as_bytes(), &body);
        let r = http
            .post(&url)
            .header("x-okno-signature", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if r.status() == 200 {
            db.mark_sent(id).await?;
        } else {
            eprintln!("ceiling: the sink answered {}", r.status());
        }
    }
}

/// The ceiling's run: inbound, then outbound, on a fresh database; prints and returns its figures.
pub(crate) async fn ceiling(plan: &Plan) -> Result<Figures> {
    let rt = tokio::runtime::Builder::new_multi_thread().thread_name("ceiling").enable_all().build()?;
    let dir = std::env::temp_dir().join(format!("okno-bench-ceiling-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let figures = measure(plan, &rt, &dir).await;
    rt.shutdown_background();
    let _ = std::fs::remove_dir_all(&dir);
    figures
}

async fn measure(plan: &Plan, rt: &tokio::runtime::Runtime, dir: &Path) -> Result<Figures> {
    let t = Tuning::okno();
    let pg = if plan.postgres { Some(TestDb::postgres().await.context("PostgreSQL is not reachable")?) } else { None };
    let db = match &pg {
        Some(pg) => {
            let (url, t) = (pg.url.clone(), t.clone());
            Db::Pg(rt.spawn(async move { open_pg(&url, &t).await }).await??)
        }
        None => Db::Lite(Lite::open(&dir.join("ceiling.db"), &t)?),
    };
    let db = Arc::new(db);
    let figures = drive(plan, &t, rt, db.clone()).await;
    if let Db::Pg(pool) = &*db {
        let pool = pool.clone();
        rt.spawn(async move { pool.close().await }).await?;
    }
    figures
}

async fn drive(plan: &Plan, t: &Tuning, rt: &tokio::runtime::Runtime, db: Arc<Db>) -> Result<Figures> {
    let backend = if plan.postgres {
        format!("PostgreSQL, a pool of {}", t.connections.max(2))
    } else {
        format!("SQLite WAL, synchronous {}", if t.full_sync { "FULL" } else { "NORMAL" })
    };
    println!("ceiling — {backend}: one insert per inbound message; one read, POST and update per reply");

    // --- inbound: one durable insert per request -------------------------------------------
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/hooks/{channel}", post(hook)).with_state(db.clone());
    rt.spawn(async move {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                if let Err(e) = axum::serve(listener, app).await {
                    eprintln!("ceiling: the server stopped: {e}");
                }
            }
            Err(e) => eprintln!("ceiling: cannot listen: {e}"),
        }
    });
    let http = reqwest::Client::builder().pool_max_idle_per_host(plan.concurrency * 2).build()?;
    let url = format!("http://{addr}/hooks/{CHANNEL}");
    let cpu = Cpu::start(None);
    let (lat, elapsed) = drive_inbound(&http, &url, plan.inbound, plan.senders, plan.concurrency).await;
    let (inbound_cpu, _) = cpu.per_item(lat.len());
    let inbound = lat.len() as f64 / elapsed.as_secs_f64();
    println!(
        "ceiling inbound: {} requests in {:.2} s = {:.0} req/s, each one insert committed; ack p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {inbound_cpu:.0} µs of the machine's CPU per request",
        lat.len(),
        elapsed.as_secs_f64(),
        inbound,
        percentile(&lat, 0.50).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    if lat.len() != plan.inbound {
        println!("  WARNING: {} of {} inbound requests did not get 200", plan.inbound - lat.len(), plan.inbound);
    }

    // --- outbound: one read, one POST, one update per reply --------------------------------
    {
        let (db, total) = (db.clone(), plan.outbound);
        rt.spawn(async move { db.fill(total).await }).await??;
    }
    let sink = Sink::start(SECRET).await;
    let sender = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let out_url = format!("{}/out", sink.url);
    let cpu = Cpu::start(None);
    let started = Instant::now();
    let senders: Vec<_> = (0..t.senders.max(1))
        .map(|_| rt.spawn(send(db.clone(), sender.clone(), out_url.clone(), next.clone(), plan.outbound)))
        .collect();
    let delivered =
        wait_delivered(&sink, plan.outbound, Duration::from_secs(600), || senders.iter().all(|s| s.is_finished()))
            .await;
    let all = started.elapsed();
    for s in senders {
        s.await??;
    }
    let (delivered_cpu, _) = cpu.per_item(delivered);
    let rate = delivered as f64 / all.as_secs_f64();
    println!(
        "ceiling outbound: {delivered} delivered to the sink by {} senders in {:.2} s = {:.0} msg/s (read → signed POST → update); {delivered_cpu:.0} µs of the machine's CPU per message",
        t.senders,
        all.as_secs_f64(),
        rate
    );
    Ok(Figures { inbound, inbound_cpu, delivered: rate, delivered_cpu })
}

// --- the ratios ------------------------------------------------------------------------------

/// Prints each round's ratios and their spread.
pub(crate) fn report(postgres: bool, rounds: &[(Figures, Figures)]) {
    if rounds.is_empty() {
        return;
    }
    let backend = if postgres { "PostgreSQL" } else { "SQLite" };
    println!();
    println!("yardstick — {backend}: okno ÷ the ceiling measured just before it, round by round");
    for (i, (c, o)) in rounds.iter().enumerate() {
        println!(
            "  round {}: inbound {:.0} ÷ {:.0} /s = {:.2}×; outbound delivered {:.0} ÷ {:.0} /s = {:.2}×",
            i + 1,
            o.inbound,
            c.inbound,
            o.inbound / c.inbound,
            o.delivered,
            c.delivered,
            o.delivered / c.delivered,
        );
    }
    let spread = |f: &dyn Fn(&(Figures, Figures)) -> f64| {
        rounds.iter().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    let cores = cores();
    for (what, cpu, ceiling_cpu) in [
        ("inbound ", spread(&|(_, o)| o.inbound_cpu), spread(&|(c, _)| c.inbound_cpu)),
        ("outbound", spread(&|(_, o)| o.delivered_cpu), spread(&|(c, _)| c.delivered_cpu)),
    ] {
        println!(
            "  {what} CPU (every process on the machine): okno {:.0}–{:.0} µs per message, the ceiling {:.0}–{:.0} µs; {cores:.0} cores bound okno to {:.0}–{:.0} msg/s",
            cpu.0,
            cpu.1,
            ceiling_cpu.0,
            ceiling_cpu.1,
            cores * 1e6 / cpu.1,
            cores * 1e6 / cpu.0,
        );
    }
    for (what, ratio, okno, ceiling) in [
        ("inbound ", spread(&|(c, o)| o.inbound / c.inbound), spread(&|(_, o)| o.inbound), spread(&|(c, _)| c.inbound)),
        (
            "outbound",
            spread(&|(c, o)| o.delivered / c.delivered),
            spread(&|(_, o)| o.delivered),
            spread(&|(c, _)| c.delivered),
        ),
    ] {
        println!(
            "  {what}: okno at {:.2}–{:.2}× its ceiling (okno {:.0}–{:.0} /s, ceiling {:.0}–{:.0} /s)",
            ratio.0, ratio.1, okno.0, okno.1, ceiling.0, ceiling.1
        );
    }
}
