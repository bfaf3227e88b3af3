//! The soak with faults (issue 15): okno under mixed load — signed inbound messages, business
//! events a rule turns into notifications, replies in conversations, a broadcast, operators'
//! live pages — while its processes are killed with SIGKILL every few seconds and started
//! again, and on PostgreSQL the database itself is restarted once. At the end: every inbound
//! message okno answered 2xx is stored once, every event reached each of its people once,
//! every broadcast recipient once, every reply went out in its conversation's order, and no
//! job is left in the outbox.
//!
//! Short in CI (20 s of load each). By hand, longer and with bigger numbers:
//!
//! ```sh
//! SOAK_SECS=600 cargo test -p okno --release --test soak -- --nocapture
//! ```
//!
//! PostgreSQL is a cluster of the test's own (`initdb` in a temporary folder, as the
//! `postgres` user when run as root), so that restarting it touches nobody else's tests.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod harness;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{sign_in_at, Okno, SECRET};
use okno_testkit::{eventually, Sink};
use serde_json::{json, Value};

/// How big a run is: `SOAK_SECS` seconds of load (default 20, the CI form); the numbers of
/// people grow with it.
struct Plan {
    load: Duration,
    kill_every: Duration,
    broadcast_people: usize,
    event_people: usize,
    conversations: usize,
    inbound_lanes: usize,
    /// Pause between two requests of one lane: the load is held at a rate, not pushed as
    /// hard as the two shared cores allow, so that the figures say what was held.
    pace: Duration,
}

impl Plan {
    fn from_env() -> Plan {
        let secs: u64 = std::env::var("SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
        let long = secs > 60;
        Plan {
            load: Duration::from_secs(secs),
            kill_every: Duration::from_secs(3),
            broadcast_people: if long { 2_000 } else { 200 },
            event_people: 4,
            conversations: 4,
            inbound_lanes: 3,
            pace: Duration::from_millis(40),
        }
    }
}

// --- PostgreSQL of the test's own -----------------------------------------------------------

/// A PostgreSQL cluster made for one test in a temporary folder: started on a free port,
/// restarted when the test says, stopped and removed when dropped.
struct OwnPostgres {
    base: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Run as root: the server refuses root, so its commands run as `postgres`.
    as_postgres: bool,
}

impl OwnPostgres {
    /// `None` (with a note) when no PostgreSQL server is installed here, unless
    /// `PG_TEST_REQUIRED=1`.
    fn start() -> Option<OwnPostgres> {
        let Some(bin) = postgres_bin() else {
            if std::env::var("PG_TEST_REQUIRED").is_ok_and(|v| v == "1") {
                panic!("PG_TEST_REQUIRED=1 but no PostgreSQL server programs under /usr/lib/postgresql");
            }
            eprintln!("skipping the PostgreSQL soak: no initdb under /usr/lib/postgresql");
            return None;
        };
        let uid = Command::new("id").arg("-u").output().unwrap();
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let base = std::env::temp_dir().join(format!("okno-soak-pg-{}", okno_domain::ids::new_id()));
        std::fs::create_dir_all(&base).unwrap();
        let pg = OwnPostgres { base, bin, port: harness::free_port(), as_postgres };
        if as_postgres {
            let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&pg.base).status().unwrap();
            assert!(chown.success(), "the folder is given to the postgres user");
        }
        let data = pg.data();
        pg.run("initdb", &["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D", data.to_str().unwrap()]);
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", pg.port, pg.base.display());
        let log = pg.base.join("server.log");
        pg.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &opts, "-w", "-t", "60", "start"],
        );
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = c.args(args).current_dir(&self.base).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An immediate restart: the server stops as if it crashed (no checkpoint, every session
    /// cut) and starts again with crash recovery.
    fn restart(&self) {
        // The log file again: without it the new server would write to pg_ctl's output, which
        // this test reads to its end.
        let log = self.base.join("server.log");
        let (data, log) = (self.data(), log.to_str().unwrap().to_string());
        self.run("pg_ctl", &["-D", data.to_str().unwrap(), "-l", &log, "-m", "immediate", "-w", "-t", "60", "restart"]);
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
        } else {
            Command::new(&program).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// The newest PostgreSQL server's programs (`/usr/lib/postgresql/<version>/bin`).
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

// --- The load ---------------------------------------------------------------------------------

/// What the clients did, as they saw it.
#[derive(Default)]
struct Record {
    /// Inbound `message_id` → the okno message id of its 2xx answer.
    inbound: HashMap<String, String>,
    /// Event numbers answered 2xx.
    events: Vec<u64>,
    /// Per conversation's person: (sequence number, okno message id) of each reply answered 2xx.
    replies: HashMap<String, Vec<(u64, String)>>,
    /// Requests that failed (no answer, or not 2xx) and were tried again.
    failed_tries: u64,
    /// Items that never got a 2xx (gave up after a minute).
    given_up: u64,
}

/// The clients' shared state: where okno listens, what they did, and when to stop.
struct Load {
    bases: Vec<String>,
    token: String,
    channel: String,
    record: Mutex<Record>,
    stop: AtomicBool,
    live_notifies: AtomicU64,
    live_reconnects: AtomicU64,
}

impl Load {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap()
    }

    /// POSTs `body` to `path` until some okno answers 2xx, going round the processes (a killed
    /// one refuses; a restarting database answers 503); the answer, or `None` after a minute.
    async fn post(&self, http: &reqwest::Client, lane: usize, path: &str, body: &Value, signed: bool) -> Option<Value> {
        let raw = serde_json::to_vec(body).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        for attempt in 0.. {
            let base = &self.bases[(lane + attempt) % self.bases.len()];
            let mut req = http.post(format!("{base}{path}")).header("content-type", "application/json");
            req = if signed {
                req.header("x-okno-signature", okno_domain::signing::sign(SECRET.as_bytes(), &raw))
            } else {
                req.bearer_auth(&self.token)
            };
            if let Ok(resp) = req.body(raw.clone()).send().await {
                if resp.status().is_success() {
                    if let Ok(v) = resp.json::<Value>().await {
                        return Some(v);
                    }
                }
            }
            self.record().failed_tries += 1;
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.record().given_up += 1;
        None
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Signed inbound messages from five people per lane, each `message_id` sent again until
/// answered 2xx (okno drops a repeat by its id).
async fn inbound_lane(load: Arc<Load>, lane: usize, pace: Duration) {
    let http = client();
    let path = format!("/hooks/{}", load.channel);
    for k in 0.. {
        if load.stopped() {
            break;
        }
        let id = format!("in-{lane}-{k}");
        let body =
            json!({"message_id": id, "user": {"id": format!("c{lane}-{}", k % 5)}, "text": format!("soak {id}")});
        if let Some(v) = load.post(&http, lane + k, &path, &body, true).await {
            load.record().inbound.insert(id, v["id"].as_str().unwrap().to_string());
        }
        tokio::time::sleep(pace).await;
    }
}

/// Business events with an idempotency key each, posted again until answered 2xx.
async fn event_lane(load: Arc<Load>, pace: Duration) {
    let http = client();
    for n in 0u64.. {
        if load.stopped() {
            break;
        }
        let body = json!({"type": "soak.ping", "key": format!("ev-{n}"), "data": {"n": n}});
        if load.post(&http, n as usize, "/api/v1/events", &body, false).await.is_some() {
            load.record().events.push(n);
        }
        tokio::time::sleep(pace).await;
    }
}

/// Replies in one conversation, one after the other, each with an idempotency key.
async fn reply_lane(load: Arc<Load>, person: String, conversation: String, pace: Duration) {
    let http = client();
    let path = format!("/api/v1/conversations/{conversation}/messages");
    for seq in 0u64.. {
        if load.stopped() {
            break;
        }
        let body = json!({"text": format!("{person} {seq}"), "idempotency_key": format!("{person}-{seq}")});
        if let Some(v) = load.post(&http, seq as usize, &path, &body, false).await {
            load.record().replies.entry(person.clone()).or_default().push((seq, v["id"].as_str().unwrap().to_string()));
        }
        tokio::time::sleep(pace).await;
    }
}

/// An operator's live page on one process, read as it streams; opened again (signed in
/// again if need be) whenever its process goes away.
async fn live_reader(load: Arc<Load>, base: String) {
    let http = reqwest::Client::new();
    let mut cookie: Option<String> = None;
    while !load.stopped() {
        if cookie.is_none() {
            cookie = sign_in_at(&base, "soak", "correct horse battery").await.ok();
        }
        let Some(c) = &cookie else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let resp = http.get(format!("{base}/ui/live")).header("cookie", format!("okno_session={c}")).send().await;
        let mut resp = match resp {
            Ok(r) if r.status() == 200 => r,
            Ok(_) => {
                cookie = None;
                load.live_reconnects.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(_) => {
                load.live_reconnects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        let mut carry = String::new();
        while !load.stopped() {
            match tokio::time::timeout(Duration::from_secs(1), resp.chunk()).await {
                Err(_) => continue,
                Ok(Ok(Some(chunk))) => {
                    carry.push_str(&String::from_utf8_lossy(&chunk));
                    const NOTIFY: &str = "event: notify\n";
                    let n = carry.matches(NOTIFY).count() as u64;
                    load.live_notifies.fetch_add(n, Ordering::Relaxed);
                    if let Some(at) = carry.rfind(NOTIFY) {
                        carry.drain(..at + NOTIFY.len());
                    }
                    // Only a tail that may hold the start of a split event name is kept.
                    if carry.len() > 64 {
                        let cut = (carry.len() - 32..carry.len()).find(|&i| carry.is_char_boundary(i)).unwrap();
                        carry.drain(..cut);
                    }
                }
                Ok(_) => {
                    load.live_reconnects.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

// --- Setting up the world -----------------------------------------------------------------------

/// A webhook channel to the sink, a rule that notifies the `soak-ev` group of each
/// `soak.ping` event, and the people: event recipients, broadcast recipients, and the
/// conversations replies go to. Returns the channel and each reply person's conversation.
async fn world(okno: &Okno, token: &str, sink: &Sink, plan: &Plan) -> (String, Vec<(String, String)>) {
    let ch = okno
        .call(
            reqwest::Method::POST,
            "/api/v1/channels",
            token,
            Some(json!({"kind": "webhook", "name": "soak", "config": {"outbound_url": sink.url, "secret": SECRET}})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rule = json!({"name": "soak", "event": "soak.ping", "recipients": [{"group": "soak-ev"}],
                      "template": "ev {{ data.n }}"});
    let r = okno.call(reqwest::Method::POST, "/api/v1/rules", token, Some(rule)).await;
    assert!(r["id"].is_string(), "{r}");

    let mut people: Vec<(String, Option<&str>)> = Vec::new();
    people.extend((0..plan.event_people).map(|i| (format!("e{i}"), Some("soak-ev"))));
    people.extend((0..plan.broadcast_people).map(|i| (format!("b{i}"), Some("soak-bc"))));
    people.extend((0..plan.conversations).map(|i| (format!("r{i}"), None)));
    let people = Arc::new(people);
    let lanes = (0..8).map(|lane| {
        let (people, base, ch, token) = (people.clone(), okno.url(""), ch.clone(), token.to_string());
        tokio::spawn(async move {
            let http = client();
            let mut convs = Vec::new();
            for (person, group) in people.iter().skip(lane).step_by(8) {
                let body =
                    serde_json::to_vec(&json!({"message_id": "hi", "user": {"id": person}, "text": "hi"})).unwrap();
                let m: Value = http
                    .post(format!("{base}/hooks/{ch}"))
                    .header("x-okno-signature", okno_domain::signing::sign(SECRET.as_bytes(), &body))
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let msg: Value = http
                    .get(format!("{base}/api/v1/messages/{}", m["id"].as_str().unwrap()))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                match group {
                    Some(group) => {
                        let contact = msg["contact_id"].as_str().unwrap();
                        let r = http
                            .patch(format!("{base}/api/v1/contacts/{contact}"))
                            .bearer_auth(&token)
                            .json(&json!({"groups": [group]}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                    }
                    None => convs.push((person.clone(), msg["conversation_id"].as_str().unwrap().to_string())),
                }
            }
            convs
        })
    });
    let mut convs = Vec::new();
    for lane in lanes {
        convs.extend(lane.await.unwrap());
    }
    (ch, convs)
}

// --- Reading the outcome ----------------------------------------------------------------------

/// Where the test reads the database directly at the end.
enum Database {
    Postgres(String),
    Sqlite(PathBuf),
}

impl Database {
    /// Rows of two columns, text and a count.
    async fn pairs(&self, sql: &str) -> Vec<(String, i64)> {
        match self {
            Database::Postgres(url) => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_as::<_, (String, i64)>(sql).fetch_all(&mut conn).await.unwrap()
            }
            Database::Sqlite(path) => {
                let (path, sql) = (path.clone(), sql.to_string());
                tokio::task::spawn_blocking(move || {
                    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                        .unwrap();
                    conn.busy_timeout(Duration::from_secs(30)).unwrap();
                    let mut st = conn.prepare(&sql).unwrap();
                    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).unwrap();
                    rows.map(Result::unwrap).collect()
                })
                .await
                .unwrap()
            }
        }
    }

    /// Jobs left in the outbox, by kind.
    async fn jobs(&self) -> Vec<(String, i64)> {
        self.pairs("SELECT kind, CAST(COUNT(*) AS BIGINT) FROM jobs GROUP BY kind ORDER BY kind").await
    }
}

/// The figures of one run, printed at its end.
#[derive(Debug, Default)]
struct Figures {
    backend: &'static str,
    processes: usize,
    load_secs: f64,
    inbound_accepted: usize,
    inbound_stored: usize,
    inbound_lost: usize,
    inbound_twice: usize,
    events: usize,
    notifications_expected: usize,
    notifications_distinct: usize,
    notifications_raw: usize,
    replies: usize,
    replies_distinct: usize,
    replies_raw: usize,
    replies_out_of_order: usize,
    broadcast_total: usize,
    broadcast_distinct: usize,
    broadcast_raw: usize,
    lost: usize,
    duplicates_at_person: usize,
    raw_redeliveries: usize,
    kills: usize,
    postgres_restarts: usize,
    postgres_back_secs: f64,
    max_restart_secs: f64,
    max_resume_secs: f64,
    failed_tries: u64,
    given_up: u64,
    live_notifies: u64,
    live_reconnects: u64,
    jobs_left: Vec<(String, i64)>,
    drain_secs: f64,
}

impl Figures {
    fn print(&self) {
        let per = |n: usize| n as f64 / self.load_secs;
        eprintln!(
            "\nsoak on {} ({} okno process(es)), {:.0} s of load:\n\
             \x20 inbound: {} accepted (2xx), {} stored, {} lost, {} stored twice ({:.1}/s held)\n\
             \x20 events: {} accepted ({:.1}/s), notifications {} expected, {} reached the person, {} requests at the sink\n\
             \x20 replies: {} accepted ({:.1}/s), {} reached the person, {} requests, {} out of order\n\
             \x20 broadcast: {} recipients, {} reached, {} requests\n\
             \x20 faults: {} kills (SIGKILL), {} PostgreSQL restart(s) (every process ready {:.1} s after), \
             a killed okno answering again up to {:.0} ms after the kill, deliveries flowing again up to {:.0} ms after it\n\
             \x20 clients: {} failed tries retried, {} given up; live pages: {} notifications read, {} reconnects\n\
             \x20 drained {:.1} s after the load; jobs left: {:?}\n\
             \x20 LOST: {}   DUPLICATES AT THE PERSON: {}   raw redeliveries (same message id again): {}\n",
            self.backend,
            self.processes,
            self.load_secs,
            self.inbound_accepted,
            self.inbound_stored,
            self.inbound_lost,
            self.inbound_twice,
            per(self.inbound_accepted),
            self.events,
            per(self.events),
            self.notifications_expected,
            self.notifications_distinct,
            self.notifications_raw,
            self.replies,
            per(self.replies),
            self.replies_distinct,
            self.replies_raw,
            self.replies_out_of_order,
            self.broadcast_total,
            self.broadcast_distinct,
            self.broadcast_raw,
            self.kills,
            self.postgres_restarts,
            self.postgres_back_secs,
            self.max_restart_secs * 1000.0,
            self.max_resume_secs * 1000.0,
            self.failed_tries,
            self.given_up,
            self.live_notifies,
            self.live_reconnects,
            self.drain_secs,
            self.jobs_left,
            self.lost,
            self.duplicates_at_person,
            self.raw_redeliveries,
        );
    }
}

/// What the sink received, per kind of message: person → (what it was about → message ids),
/// and how many requests in all.
#[derive(Default)]
struct AtSink {
    /// (event number, person) → message ids.
    events: HashMap<(u64, String), HashSet<String>>,
    events_raw: usize,
    /// person → message ids.
    broadcast: HashMap<String, HashSet<String>>,
    broadcast_raw: usize,
    /// person → ids in the order they first arrived, with their sequence numbers.
    replies: HashMap<String, Vec<(u64, String)>>,
    replies_raw: usize,
    /// Anything else (nothing is expected).
    other: Vec<String>,
}

fn at_sink(sink: &Sink) -> AtSink {
    let mut out = AtSink::default();
    let mut seen_reply: HashSet<String> = HashSet::new();
    for r in sink.accepted() {
        let id = r.body["id"].as_str().unwrap_or_default().to_string();
        let person = r.body["to"]["id"].as_str().unwrap_or_default().to_string();
        let text = r.body["text"].as_str().unwrap_or_default();
        if let Some(n) = text.strip_prefix("ev ").and_then(|n| n.parse().ok()) {
            out.events.entry((n, person)).or_default().insert(id);
            out.events_raw += 1;
        } else if text == "bc soak" {
            out.broadcast.entry(person).or_default().insert(id);
            out.broadcast_raw += 1;
        } else if let Some(seq) = text.strip_prefix(&format!("{person} ")).and_then(|n| n.parse().ok()) {
            out.replies_raw += 1;
            if seen_reply.insert(id.clone()) {
                out.replies.entry(person).or_default().push((seq, id));
            }
        } else {
            out.other.push(text.to_string());
        }
    }
    out
}

// --- The run ------------------------------------------------------------------------------------

/// One soak: `procs` already made (not started) on one database; `pg` restarted once midway
/// when given.
async fn soak(mut procs: Vec<Okno>, db: Database, pg: Option<&OwnPostgres>, backend: &'static str) -> Figures {
    let plan = Plan::from_env();
    let token = procs[0].token();
    let made = procs[0].run(&["user", "create", "--login", "soak", "--role", "admin"], Some("correct horse battery\n"));
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    for n in 1..procs.len() {
        let (first, rest) = procs.split_at_mut(n);
        rest[0].share_key_of(&first[0]);
    }
    for p in procs.iter_mut() {
        p.start().await;
    }
    let sink = Sink::start(SECRET).await;
    let setup = Instant::now();
    let (channel, convs) = world(&procs[0], &token, &sink, &plan).await;
    eprintln!(
        "soak on {backend}: {} people set up in {:.1} s; {} s of load, a kill every {} s",
        plan.event_people + plan.broadcast_people + plan.conversations,
        setup.elapsed().as_secs_f64(),
        plan.load.as_secs(),
        plan.kill_every.as_secs()
    );

    let load = Arc::new(Load {
        bases: procs.iter().map(|p| p.url("")).collect(),
        token: token.clone(),
        channel,
        record: Mutex::default(),
        stop: AtomicBool::new(false),
        live_notifies: AtomicU64::new(0),
        live_reconnects: AtomicU64::new(0),
    });
    let mut lanes = Vec::new();
    for lane in 0..plan.inbound_lanes {
        lanes.push(tokio::spawn(inbound_lane(load.clone(), lane, plan.pace)));
    }
    lanes.push(tokio::spawn(event_lane(load.clone(), plan.pace * 2)));
    for (person, conv) in &convs {
        lanes.push(tokio::spawn(reply_lane(load.clone(), person.clone(), conv.clone(), plan.pace * 2)));
    }
    for base in &load.bases {
        lanes.push(tokio::spawn(live_reader(load.clone(), base.clone())));
    }

    // The faults, from this task: a kill every few seconds (each process in turn), restarted at
    // once; the database restarted once; the broadcast started a third of the way in.
    let started = Instant::now();
    let broadcast_at = started + plan.load / 3;
    let pg_restart_at = started + plan.load / 2;
    let mut broadcast: Option<String> = None;
    let mut pg_restarted = pg.is_none();
    let mut figures = Figures { backend, processes: procs.len(), ..Figures::default() };
    let mut restarts: Vec<Duration> = Vec::new();
    let resumes = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut watchers = Vec::new();
    let mut next_kill = started + plan.kill_every;
    while Instant::now() < started + plan.load {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = Instant::now();
        if broadcast.is_none() && now >= broadcast_at {
            let b = procs[0]
                .call(
                    reqwest::Method::POST,
                    "/api/v1/broadcasts",
                    &token,
                    Some(json!({"name": "soak", "audience": {"groups": ["soak-bc"]}, "text": "bc soak"})),
                )
                .await;
            eprintln!("{:5.1} s: broadcast started", started.elapsed().as_secs_f64());
            broadcast = Some(b["id"].as_str().unwrap_or_else(|| panic!("the broadcast is created: {b}")).to_string());
        }
        if !pg_restarted && now >= pg_restart_at {
            let pg = pg.unwrap();
            let at = Instant::now();
            eprintln!("{:5.1} s: PostgreSQL restarting", started.elapsed().as_secs_f64());
            pg.restart();
            let http = client();
            let ready = eventually(60, || async {
                for p in &procs {
                    let r = http.get(p.url("/readyz")).send().await.ok()?;
                    (r.status() == 200).then_some(())?;
                }
                Some(())
            })
            .await;
            assert!(ready.is_some(), "every okno is ready again after PostgreSQL restarted");
            figures.postgres_back_secs = at.elapsed().as_secs_f64();
            eprintln!("{:5.1} s: every okno ready again", started.elapsed().as_secs_f64());
            figures.postgres_restarts += 1;
            pg_restarted = true;
            next_kill = Instant::now() + plan.kill_every;
        }
        if now >= next_kill {
            let victim = figures.kills % procs.len();
            let killed = Instant::now();
            procs[victim].kill9();
            figures.kills += 1;
            eprintln!("{:5.1} s: okno {victim} killed", started.elapsed().as_secs_f64());
            // Deliveries flowing again: on a single process after its restart, on several
            // through the survivors.
            let single = procs.len() == 1;
            let before = sink.accepted().len();
            if !single {
                watchers.push(tokio::spawn(resume_watch(sink.clone(), before, killed, resumes.clone())));
            }
            procs[victim].start().await;
            restarts.push(killed.elapsed());
            if single {
                let before = sink.accepted().len();
                watchers.push(tokio::spawn(resume_watch(sink.clone(), before, killed, resumes.clone())));
            }
            next_kill = Instant::now() + plan.kill_every;
        }
    }
    figures.load_secs = started.elapsed().as_secs_f64();
    load.stop.store(true, Ordering::Relaxed);
    eprintln!("{:5.1} s: load stopped", started.elapsed().as_secs_f64());
    for lane in lanes {
        tokio::time::timeout(Duration::from_secs(90), lane).await.expect("a client lane ends").unwrap();
    }
    for w in watchers {
        w.await.unwrap();
    }

    // Drain: everything accepted reaches its people and the outbox empties, with every
    // process up. No lease has to run out for it (a minute): a dead process's work is taken
    // back at once.
    let broadcast = broadcast.expect("the broadcast was started");
    let drained = Instant::now();
    let expected_notifications = load.record().events.len() * plan.event_people;
    let expected_replies: usize = load.record().replies.values().map(Vec::len).sum();
    let done = eventually(45, || async {
        let b = procs[0].call(reqwest::Method::GET, &format!("/api/v1/broadcasts/{broadcast}"), &token, None).await;
        let s = at_sink(&sink);
        let replies: usize = s.replies.values().map(Vec::len).sum();
        let ok = b["status"] == "done"
            && s.events.len() >= expected_notifications
            && replies >= expected_replies
            && db.jobs().await.is_empty();
        ok.then_some(())
    })
    .await;
    figures.drain_secs = drained.elapsed().as_secs_f64();
    // Stragglers: a repeat still on its way would show here.
    tokio::time::sleep(Duration::from_secs(1)).await;
    figures.jobs_left = db.jobs().await;
    if done.is_none() {
        eprintln!("the run did not drain within 45 s; the checks below say what is missing");
    }

    // The checks.
    let record = std::mem::take(&mut *load.record());
    let s = at_sink(&sink);
    figures.failed_tries = record.failed_tries;
    figures.given_up = record.given_up;
    figures.live_notifies = load.live_notifies.load(Ordering::Relaxed);
    figures.live_reconnects = load.live_reconnects.load(Ordering::Relaxed);
    figures.max_restart_secs = restarts.iter().max().copied().unwrap_or_default().as_secs_f64();
    figures.max_resume_secs = resumes.lock().unwrap().iter().max().copied().unwrap_or_default().as_secs_f64();

    // Inbound: stored once each, under the id okno answered.
    let stored = db
        .pairs(&format!(
            "SELECT external_id, CAST(COUNT(*) AS BIGINT) FROM messages \
             WHERE channel_id = '{}' AND direction = 'in' AND external_id LIKE 'in-%' GROUP BY external_id",
            load.channel
        ))
        .await;
    let stored: HashMap<String, i64> = stored.into_iter().collect();
    let ids = db
        .pairs(&format!(
            "SELECT id, CAST(0 AS BIGINT) FROM messages WHERE channel_id = '{}' AND direction = 'in' \
             AND external_id LIKE 'in-%'",
            load.channel
        ))
        .await;
    let stored_ids: HashSet<String> = ids.into_iter().map(|(id, _)| id).collect();
    figures.inbound_accepted = record.inbound.len();
    figures.inbound_stored = stored.len();
    let mut lost_inbound = Vec::new();
    for (mid, okno_id) in &record.inbound {
        if !stored.contains_key(mid) || !stored_ids.contains(okno_id) {
            lost_inbound.push(mid.clone());
        }
    }
    figures.inbound_lost = lost_inbound.len();
    figures.inbound_twice = stored.values().filter(|&&n| n > 1).count();

    // Events: each person of each event once.
    figures.events = record.events.len();
    figures.notifications_expected = expected_notifications;
    let mut lost_notifications = Vec::new();
    let mut twice_notifications = Vec::new();
    let people: Vec<String> = (0..plan.event_people).map(|i| format!("e{i}")).collect();
    for &n in &record.events {
        for p in &people {
            match s.events.get(&(n, p.clone())).map(HashSet::len) {
                None => lost_notifications.push(format!("event {n} to {p}")),
                Some(1) => {}
                Some(k) => twice_notifications.push(format!("event {n} to {p}: {k} messages")),
            }
        }
    }
    figures.notifications_distinct = s.events.len();
    figures.notifications_raw = s.events_raw;

    // Replies: each once, in each conversation's order.
    figures.replies = expected_replies;
    let mut lost_replies = Vec::new();
    let mut twice_replies = Vec::new();
    let mut out_of_order = Vec::new();
    for (person, sent) in &record.replies {
        let got = s.replies.get(person).cloned().unwrap_or_default();
        let got_ids: HashSet<&String> = got.iter().map(|(_, id)| id).collect();
        for (seq, id) in sent {
            if !got_ids.contains(id) {
                lost_replies.push(format!("{person} {seq}"));
            }
        }
        let mut seqs: BTreeMap<u64, usize> = BTreeMap::new();
        for (seq, _) in &got {
            *seqs.entry(*seq).or_default() += 1;
        }
        twice_replies
            .extend(seqs.iter().filter(|(_, &k)| k > 1).map(|(seq, k)| format!("{person} {seq}: {k} messages")));
        for pair in got.windows(2) {
            if pair[1].0 <= pair[0].0 {
                out_of_order.push(format!("{person}: {} after {}", pair[1].0, pair[0].0));
            }
        }
    }
    figures.replies_distinct = s.replies.values().map(Vec::len).sum();
    figures.replies_raw = s.replies_raw;
    figures.replies_out_of_order = out_of_order.len();

    // The broadcast: every recipient once.
    let b = procs[0].call(reqwest::Method::GET, &format!("/api/v1/broadcasts/{broadcast}"), &token, None).await;
    figures.broadcast_total = b["total"].as_u64().unwrap_or(0) as usize;
    figures.broadcast_distinct = s.broadcast.len();
    figures.broadcast_raw = s.broadcast_raw;
    let mut lost_broadcast = Vec::new();
    let twice_broadcast: Vec<String> = s
        .broadcast
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(p, ids)| format!("{p}: {} messages", ids.len()))
        .collect();
    for i in 0..plan.broadcast_people {
        if !s.broadcast.contains_key(&format!("b{i}")) {
            lost_broadcast.push(format!("b{i}"));
        }
    }

    figures.lost = lost_inbound.len() + lost_notifications.len() + lost_replies.len() + lost_broadcast.len();
    figures.duplicates_at_person =
        figures.inbound_twice + twice_notifications.len() + twice_replies.len() + twice_broadcast.len();
    // Distinct message ids (not people): what arrived beyond them is the same message again.
    let distinct_out: usize = s.events.values().map(HashSet::len).sum::<usize>()
        + figures.replies_distinct
        + s.broadcast.values().map(HashSet::len).sum::<usize>();
    let raw_out = figures.notifications_raw + figures.replies_raw + figures.broadcast_raw;
    figures.raw_redeliveries = raw_out - distinct_out.min(raw_out);
    figures.print();
    for p in procs.iter_mut() {
        p.terminate();
    }

    let sample = |v: &Vec<String>| v.iter().take(10).cloned().collect::<Vec<_>>().join("; ");
    assert!(figures.kills >= 2, "the run killed okno at least twice ({} kills)", figures.kills);
    assert!(s.other.is_empty(), "nothing but the soak's messages went out: {:?}", &s.other[..s.other.len().min(5)]);
    assert_eq!(figures.given_up, 0, "every request was answered 2xx in the end");
    assert!(lost_inbound.is_empty(), "inbound answered 2xx and not stored: {}", sample(&lost_inbound));
    assert_eq!(figures.inbound_twice, 0, "inbound stored twice");
    assert!(
        lost_notifications.is_empty(),
        "{} notifications lost: {}",
        lost_notifications.len(),
        sample(&lost_notifications)
    );
    assert!(twice_notifications.is_empty(), "a person got an event twice: {}", sample(&twice_notifications));
    assert!(lost_replies.is_empty(), "{} replies lost: {}", lost_replies.len(), sample(&lost_replies));
    assert!(twice_replies.is_empty(), "a reply reached its person twice: {}", sample(&twice_replies));
    assert!(out_of_order.is_empty(), "replies out of order: {}", sample(&out_of_order));
    assert_eq!(b["status"], "done", "the broadcast finished: {b}");
    assert_eq!(
        (figures.broadcast_total, b["sent"].as_u64().unwrap_or(0) as usize),
        (plan.broadcast_people, plan.broadcast_people),
        "{b}"
    );
    assert!(
        lost_broadcast.is_empty(),
        "{} broadcast recipients not reached: {}",
        lost_broadcast.len(),
        sample(&lost_broadcast)
    );
    assert!(twice_broadcast.is_empty(), "a broadcast recipient got two messages: {}", sample(&twice_broadcast));
    assert!(figures.jobs_left.is_empty(), "jobs stuck in the outbox: {:?}", figures.jobs_left);
    assert!(figures.live_notifies > 0, "the live pages heard of the traffic");
    figures
}

/// Records how long after `killed` the sink accepted something beyond the first `before`.
async fn resume_watch(sink: Sink, before: usize, killed: Instant, into: Arc<Mutex<Vec<Duration>>>) {
    let got = eventually(30, || async { (sink.accepted().len() > before).then(|| killed.elapsed()) }).await;
    into.lock().unwrap().push(got.unwrap_or(Duration::from_secs(30)));
}

fn soak_okno(database_url: Option<String>) -> Okno {
    let mut o = Okno::new();
    // The production lease (a minute): work a killed process held must be taken back at once,
    // not when its lease runs out, or the drain below does not finish.
    o.lease_secs = 60;
    o.database_url = database_url;
    // okno's own errors, not the request log's line for every 503 while PostgreSQL restarts.
    o.env.push(("OKNO_LOG_LEVEL", "error,tower_http=off".into()));
    o.env.push(("OKNO_TEMPLATES__WORKERS", "2".into()));
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_three_processes_killed_in_turn_and_the_database_restarted_lose_and_repeat_nothing() {
    let Some(pg) = OwnPostgres::start() else { return };
    {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::PgConnection::connect(&pg.url("postgres")).await.unwrap();
        conn.execute("CREATE DATABASE okno").await.unwrap();
    }
    let url = pg.url("okno");
    let procs = (0..3).map(|_| soak_okno(Some(url.clone()))).collect();
    let f = soak(procs, Database::Postgres(url), Some(&pg), "PostgreSQL").await;
    assert_eq!(f.postgres_restarts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_one_process_killed_every_few_seconds_loses_and_repeats_nothing_and_resumes_within_5_s() {
    let okno = soak_okno(None);
    let file = okno.dir.join("okno-data/okno.db");
    let f = soak(vec![okno], Database::Sqlite(file), None, "SQLite").await;
    assert!(f.max_resume_secs < 5.0, "deliveries flowed again {:.1} s after a kill", f.max_resume_secs);
}
