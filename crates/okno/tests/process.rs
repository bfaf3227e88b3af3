//! The real `okno` binary: the CLI contract, zero-config start, and crash safety proven with
//! real signals to a real process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use okno_testkit::{eventually, Sink};
use serde_json::json;

mod harness;
use harness::{free_port, set_cookie, sign_in, unique_ids, Okno, SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_send_loses_nothing() {
    let mut okno = Okno::new();
    let token = okno.token();
    okno.start().await;
    let sink = Sink::start(SECRET).await;
    sink.delay(Duration::from_millis(15));
    let ids = okno.queue_replies(&token, &sink, 20).await;
    assert_eq!(ids.len(), 200);
    sink.wait_accepted(30, 30).await;
    okno.kill9();
    let at_kill = sink.accepted().len();
    assert!(at_kill < 200, "the kill came mid-send ({at_kill} sent)");

    okno.start().await;
    let done = eventually(60, || async { (unique_ids(&sink) == ids).then_some(()) }).await;
    assert!(done.is_some(), "after the restart every message arrived: {} of 200", unique_ids(&sink).len());
    let total = sink.accepted().len();
    assert!(
        total - 200 <= 4,
        "only sends in flight at the kill (at most the 4 workers) may repeat; {} did",
        total - 200
    );
    for id in ids.iter().take(20) {
        let m = okno.call(reqwest::Method::GET, &format!("/api/v1/messages/{id}"), &token, None).await;
        assert_eq!(m["status"], "sent");
    }
}

/// After `kill -9` and a restart, the work the dead process held resumes at once — not when
/// its leases (a minute, as configured by default) run out, which held a conversation's
/// queue for that minute — and a second okno on the same data folder is refused with a
/// clear message while the first runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_kill_9_resumes_at_once_and_a_second_okno_on_the_same_data_is_refused() {
    let mut okno = Okno::new();
    okno.lease_secs = 60;
    let token = okno.token();
    okno.start().await;

    let mut second = okno
        .cmd()
        .env("OKNO_LISTEN", format!("127.0.0.1:{}", free_port()))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ended = None;
    for _ in 0..200 {
        ended = second.try_wait().unwrap();
        if ended.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if ended.is_none() {
        let _ = second.kill();
        panic!("a second okno on the same data folder kept running");
    }
    assert!(!ended.unwrap().success());
    let mut said = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut said).unwrap();
    assert!(said.contains("another okno is running on"), "{said}");
    assert!(okno.http.get(okno.url("/healthz")).send().await.unwrap().status() == 200, "the first runs on");

    // Slow sends, so that the kill leaves jobs leased (the four workers' and their queues').
    let sink = Sink::start(SECRET).await;
    sink.delay(Duration::from_millis(300));
    let ids = okno.queue_replies(&token, &sink, 5).await;
    sink.wait_accepted(5, 30).await;
    okno.kill9();
    sink.delay(Duration::from_millis(0));
    let at_kill = unique_ids(&sink).len();
    assert!(at_kill < ids.len(), "the kill came mid-send ({at_kill} sent)");

    okno.start().await;
    let restarted = std::time::Instant::now();
    let done = eventually(30, || async { (unique_ids(&sink) == ids).then_some(()) }).await;
    let took = restarted.elapsed();
    assert!(
        done.is_some(),
        "half a minute after the restart, {} of {} arrived: the dead process's leases held the rest",
        unique_ids(&sink).len(),
        ids.len()
    );
    eprintln!(
        "all {} replies out {:.1} s after the restart ({at_kill} were out at the kill)",
        ids.len(),
        took.as_secs_f64()
    );
}

/// Two okno processes on one PostgreSQL: when one is killed, the other takes up its leased
/// sends within seconds, not when the leases (a minute here) run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_surviving_process_takes_up_a_killed_ones_work_at_once() {
    let Some(db) = okno_testkit::TestDb::postgres().await else { return };
    let mut a = Okno::new();
    let mut b = Okno::new();
    for o in [&mut a, &mut b] {
        o.lease_secs = 60;
        o.database_url = Some(db.url.clone());
    }
    let token = a.token();
    b.share_key_of(&a);
    a.start().await;
    let sink = Sink::start(SECRET).await;
    sink.delay(Duration::from_millis(300));
    let ids = a.queue_replies(&token, &sink, 5).await;
    sink.wait_accepted(3, 30).await;
    b.start().await;
    a.kill9();
    sink.delay(Duration::from_millis(0));
    let killed = std::time::Instant::now();
    let done = eventually(30, || async { (unique_ids(&sink) == ids).then_some(()) }).await;
    assert!(
        done.is_some(),
        "half a minute after the kill, {} of {} arrived: the killed process's leases held the rest",
        unique_ids(&sink).len(),
        ids.len()
    );
    eprintln!("all {} replies out {:.1} s after the kill", ids.len(), killed.elapsed().as_secs_f64());
    b.terminate();
}

/// On PostgreSQL a process hears at once of work another one queued: an okno whose only
/// worker waits on a slow site hands a new reply to its idle neighbour right away, rather than
/// leaving it for its own worker to finish or for the neighbour's next poll (a minute here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_work_queued_by_a_busy_process_is_taken_by_an_idle_one_at_once() {
    let Some(db) = okno_testkit::TestDb::postgres().await else { return };
    let mut a = Okno::new();
    let mut b = Okno::new();
    for o in [&mut a, &mut b] {
        o.database_url = Some(db.url.clone());
        o.poll_ms = 60_000;
    }
    a.workers = 1;
    let token = a.token();
    b.share_key_of(&a);
    a.start().await;
    b.start().await;
    let sink = Sink::start(SECRET).await;
    let convs = a.conversations(&token, &sink, 2).await;
    const SLOW: Duration = Duration::from_secs(5);
    sink.delay(SLOW);
    // One of the two takes the first reply and waits on the site…
    a.reply(&token, &convs[0], "first").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // …and the other one sends the second meanwhile.
    let queued = std::time::Instant::now();
    let second = a.reply(&token, &convs[1], "second").await;
    let got = eventually(30, || async {
        sink.accepted().iter().any(|r| r.body["id"] == second.as_str()).then(|| queued.elapsed())
    })
    .await
    .expect("the second reply goes out");
    eprintln!(
        "the second reply was answered {:.2} s after it was queued (the site takes {} s)",
        got.as_secs_f64(),
        SLOW.as_secs()
    );
    assert!(
        got < SLOW + Duration::from_millis(2_500),
        "the second reply waited {got:?}: it was left for the busy process, or for the idle one's poll"
    );
    a.terminate();
    b.terminate();
}

/// Reads a live stream until its next event named `name` (what came before it is dropped).
async fn next_event(live: &mut reqwest::Response, seen: &mut String, name: &str) {
    let wanted = format!("event: {name}\n");
    loop {
        if let Some(at) = seen.find(&wanted) {
            seen.drain(..at + wanted.len());
            return;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), live.chunk()).await;
        let chunk = chunk.expect("the live stream says something").unwrap().expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// On PostgreSQL an operator's live page shows at once a message that another process
/// received, rather than at its process's next look at the list (every second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_live_page_shows_at_once_a_message_another_process_received() {
    let Some(db) = okno_testkit::TestDb::postgres().await else { return };
    let mut a = Okno::new();
    let mut b = Okno::new();
    for o in [&mut a, &mut b] {
        o.database_url = Some(db.url.clone());
    }
    let token = a.token();
    b.share_key_of(&a);
    let made = a.run(&["user", "create", "--login", "anna", "--role", "admin"], Some("correct horse battery\n"));
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    a.start().await;
    b.start().await;
    let sink = Sink::start(SECRET).await;
    a.conversations(&token, &sink, 1).await;
    let channel = a.call(reqwest::Method::GET, "/api/v1/channels", &token, None).await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Anna's inbox is open on B.
    let session = sign_in(&b, "anna", "correct horse battery").await;
    let mut live =
        b.http.get(b.url("/ui/live")).header("cookie", format!("okno_session={session}")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let mut seen = String::new();
    next_event(&mut live, &mut seen, "ready").await;

    // Messages arrive at A at spread moments of B's second.
    let mut waits = Vec::new();
    for n in 0..8u64 {
        tokio::time::sleep(Duration::from_millis(150 + n * 131 % 1000)).await;
        let sent = std::time::Instant::now();
        let body = json!({"message_id": format!("m{n}"), "user": {"id": "u0"}, "text": format!("{n}")});
        assert_eq!(a.hook(&channel, &body).await.status(), 200);
        next_event(&mut live, &mut seen, "notify").await;
        waits.push(sent.elapsed());
    }
    waits.sort();
    let median = waits[waits.len() / 2];
    eprintln!("the page on B heard of a message received by A after {waits:?}");
    assert!(median < Duration::from_millis(300), "the page waited {median:?} (median) for B's next look: {waits:?}");
    a.terminate();
    b.terminate();
}

/// The restore drill: traffic, a backup, the database wiped, the backup restored — okno
/// resumes with its history and sends what was queued, each once. Refused while okno runs,
/// and over a database that holds data without `--force`.
async fn restore_drill(mut okno: Okno, wipe: impl FnOnce(&Okno)) {
    // Sends wait long after a failure, so that those queued at the backup are still queued.
    okno.env.push(("OKNO_DELIVERY__RETRY_BASE_MS", "20000".into()));
    let token = okno.token();
    okno.start().await;
    let sink = Sink::start(SECRET).await;
    let convs = okno.conversations(&token, &sink, 3).await;
    sink.answer(503);
    let mut queued = HashSet::new();
    for conv in &convs {
        queued.insert(okno.reply(&token, conv, "после восстановления").await);
    }
    let tried = eventually(20, || async { (sink.received().len() >= 3).then_some(()) }).await;
    assert!(tried.is_some(), "each reply was tried once and waits for its retry");

    let running = okno.run(&["backup", "drill.backup"], None);
    assert!(
        running.status.success(),
        "a backup is taken while okno runs: {}",
        String::from_utf8_lossy(&running.stderr)
    );
    let refused = okno.run(&["restore", "drill.backup", "--force"], None);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("running") || why.contains("another okno"), "refused while okno runs: {why}");
    okno.terminate();
    let over = okno.run(&["restore", "drill.backup"], None);
    assert!(!over.status.success());
    assert!(String::from_utf8_lossy(&over.stderr).contains("--force"), "{}", String::from_utf8_lossy(&over.stderr));
    let junk = okno.dir.join("junk.backup");
    std::fs::write(&junk, b"not a backup").unwrap();
    let bad = okno.run(&["restore", "junk.backup", "--force"], None);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not"), "{}", String::from_utf8_lossy(&bad.stderr));

    wipe(&okno);
    let restored = okno.run(&["restore", "drill.backup", "--force"], None);
    let said = String::from_utf8_lossy(&restored.stdout);
    assert!(restored.status.success(), "{said}{}", String::from_utf8_lossy(&restored.stderr));
    assert!(said.contains("restored drill.backup:") && said.contains("queued jobs will run"), "{said}");

    sink.answer(200);
    okno.start().await;
    // The history is there…
    let list = okno.call(reqwest::Method::GET, "/api/v1/conversations", &token, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3, "{list}");
    // …and what was queued goes out, each once.
    let out = eventually(40, || async { (unique_ids(&sink) == queued).then_some(()) }).await;
    assert!(out.is_some(), "{} of 3 queued replies went out after the restore", unique_ids(&sink).len());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.accepted().len(), 3, "none twice");
    okno.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_drill_on_sqlite() {
    restore_drill(Okno::new(), |okno| {
        // The database's files go; the key stays, as it would be kept apart.
        for name in ["okno.db", "okno.db-wal", "okno.db-shm"] {
            let _ = std::fs::remove_file(okno.dir.join("okno-data").join(name));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_drill_on_postgresql() {
    let Some(db) = okno_testkit::TestDb::postgres().await else { return };
    let mut okno = Okno::new();
    okno.database_url = Some(db.url.clone());
    // The database is not wiped: `--force` replaces what it holds.
    restore_drill(okno, |_| {}).await;
}

/// Ten thousand people on a webhook channel (each wrote in once); returns the channel id.
async fn ten_thousand_people(okno: &Okno, token: &str, sink: &Sink, n: usize) -> String {
    let ch = okno
        .call(
            reqwest::Method::POST,
            "/api/v1/channels",
            token,
            Some(json!({"kind": "webhook", "name": "web", "config": {"outbound_url": sink.url, "secret": SECRET}})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = okno.url(&format!("/hooks/{ch}"));
    let lanes = (0..8).map(|lane| {
        let (http, url) = (okno.http.clone(), url.clone());
        tokio::spawn(async move {
            for u in (lane..n).step_by(8) {
                let body =
                    serde_json::to_vec(&json!({"message_id": "hi", "user": {"id": format!("p{u}")}, "text": "hi"}))
                        .unwrap();
                let resp = http
                    .post(&url)
                    .header("x-okno-signature", okno_domain::signing::sign(SECRET.as_bytes(), &body))
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
            }
        })
    });
    for lane in lanes {
        lane.await.unwrap();
    }
    ch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_killed_twice_reaches_every_person_exactly_once() {
    const PEOPLE: usize = 10_000;
    let mut okno = Okno::new();
    let token = okno.token();
    okno.start().await;
    let sink = Sink::start(SECRET).await;
    ten_thousand_people(&okno, &token, &sink, PEOPLE).await;
    let created = okno
        .call(
            reqwest::Method::POST,
            "/api/v1/broadcasts",
            &token,
            Some(json!({"name": "crash", "audience": {"filter": {"channel_kind": "webhook"}}, "text": "Акция"})),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    // Killed while the audience is being written or the first slices fed, then mid-send.
    tokio::time::sleep(Duration::from_millis(30)).await;
    okno.kill9();
    okno.start().await;
    sink.wait_accepted(PEOPLE / 3, 60).await;
    okno.kill9();
    let at_kill = sink.accepted().len();
    assert!(at_kill < PEOPLE, "the second kill came mid-send ({at_kill} sent)");
    okno.start().await;

    let done = eventually(120, || async {
        let b = okno.call(reqwest::Method::GET, &format!("/api/v1/broadcasts/{id}"), &token, None).await;
        (b["status"] == "done").then_some(b)
    })
    .await
    .expect("the broadcast finishes after the restarts");
    assert_eq!((&done["total"], &done["sent"], &done["failed"]), (&json!(PEOPLE), &json!(PEOPLE), &json!(0)), "{done}");
    // Per person: exactly one okno message (a repeat of a send in flight at a kill carries the
    // same message id, which the receiver uses to drop it).
    let mut per_person: std::collections::HashMap<String, HashSet<String>> = Default::default();
    let received = sink.accepted();
    for r in received.iter().filter(|r| r.body["text"] == "Акция") {
        let person = r.body["to"]["id"].as_str().unwrap().to_string();
        per_person.entry(person).or_default().insert(r.body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(per_person.len(), PEOPLE, "nobody skipped");
    assert!(per_person.values().all(|ids| ids.len() == 1), "nobody got two different messages");
    let repeats = received.iter().filter(|r| r.body["text"] == "Акция").count() - PEOPLE;
    assert!(
        repeats <= 2 * 8,
        "only sends in flight at a kill (at most 8 bulk workers each time) repeat; {repeats} did"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_sends_and_a_restart_does_the_rest_without_duplicates() {
    let mut okno = Okno::new();
    let token = okno.token();
    okno.start().await;
    let sink = Sink::start(SECRET).await;
    sink.delay(Duration::from_millis(15));
    let ids = okno.queue_replies(&token, &sink, 10).await;
    sink.wait_accepted(20, 30).await;
    let status = okno.terminate();
    assert!(status.success(), "graceful exit, got {status}");
    okno.start().await;
    let done = eventually(60, || async { (unique_ids(&sink) == ids).then_some(()) }).await;
    assert!(done.is_some(), "{} of 100 arrived", unique_ids(&sink).len());
    assert_eq!(sink.accepted().len(), 100, "a graceful stop repeats nothing");
}

/// A process's peak memory (`VmHWM`), in MB.
fn peak_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb / 1024
}

#[tokio::test]
async fn okno_serve_renders_in_workers_of_its_own_and_a_doubling_template_leaves_it_small() {
    let mut okno = Okno::new();
    // All the time it wants: what ends the doubling is the worker's memory, however busy the
    // machine running the tests.
    okno.env.push(("OKNO_TEMPLATES__TIMEOUT_MS", "60000".into()));
    okno.start().await;
    let token = okno.token();
    let preview = |template: &str| json!({"rule": {"name": "p", "event": "e", "recipients": [{"group": "g"}], "template": template}, "data": {"n": 3}});
    let bomb = "{% set ns = namespace(x='a') %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}";
    let r = okno.call(reqwest::Method::POST, "/api/v1/rules/preview", &token, Some(preview(bomb))).await;
    assert_eq!(r["error"]["code"], "template_too_large", "{r}");
    let r = okno.call(reqwest::Method::POST, "/api/v1/rules/preview", &token, Some(preview("{{ data.n * 2 }}"))).await;
    assert_eq!(r["text"], "6", "okno found itself as the render worker: {r}");
    let pid = okno.child.as_ref().unwrap().id();
    let peak = peak_mb(pid);
    assert!(peak < 256, "okno serve peaked at {peak} MB");
}

#[tokio::test]
async fn token_create_prints_the_token_alone_on_the_last_line_and_works_beside_a_running_server() {
    let mut okno = Okno::new();
    okno.start().await;
    let out = okno.run(&["token", "create", "--name", "1c", "--role", "integration"], None);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap();
    assert!(token.starts_with("okno_") && !token.contains(' '), "{stdout}");
    let resp = okno.http.get(okno.url("/api/v1/contacts")).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let bad = okno.run(&["token", "create", "--name", "x", "--role", "root"], None);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("root"));
}

#[test]
fn user_create_reads_the_password_from_stdin() {
    let okno = Okno::new();
    let out = okno.run(&["user", "create", "--login", "anna", "--role", "operator"], Some("correct horse battery\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = okno.run(&["user", "create", "--login", "anna", "--role", "operator"], Some("another password\n"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let short = okno.run(&["user", "create", "--login", "boris", "--role", "operator"], Some("123\n"));
    assert!(!short.status.success());
}

#[test]
fn users_are_listed_disabled_enabled_given_a_role_and_a_password_from_the_command_line() {
    let okno = Okno::new();
    let ok = |args: &[&str], stdin: Option<&str>| {
        let out = okno.run(args, stdin);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    ok(&["user", "create", "--login", "root", "--role", "admin"], Some("correct horse battery\n"));
    ok(&["user", "create", "--login", "anna", "--role", "operator"], Some("correct horse battery\n"));
    assert!(ok(&["user", "disable", "--login", "anna"], None).contains("disabled"));
    assert!(ok(&["user", "list"], None).contains("anna\toperator\tdisabled"));
    ok(&["user", "enable", "--login", "anna"], None);
    assert!(ok(&["user", "role", "--login", "anna", "--role", "restricted"], None).contains("restricted, active"));
    ok(&["user", "password", "--login", "anna"], Some("a brand new password\n"));
    let list = ok(&["user", "list"], None);
    assert!(list.contains("anna\trestricted\tactive") && list.contains("root\tadmin\tactive"), "{list}");
    // Clear refusals.
    let last = okno.run(&["user", "disable", "--login", "root"], None);
    assert!(!last.status.success());
    assert!(String::from_utf8_lossy(&last.stderr).contains("last administrator"));
    let nobody = okno.run(&["user", "enable", "--login", "nobody"], None);
    assert!(!nobody.status.success());
    let short = okno.run(&["user", "password", "--login", "anna"], Some("123\n"));
    assert!(!short.status.success() && String::from_utf8_lossy(&short.stderr).contains("at least 8"));
    // A lost phone: two-factor sign-in reset from the command line, audited as done by `cli`.
    assert!(ok(&["user", "reset-two-factor", "--login", "anna"], None).contains("had no two-factor sign-in"));
    let db = rusqlite::Connection::open(okno.dir.join("okno-data/okno.db")).unwrap();
    db.execute(
        "INSERT INTO operator_totp (operator_id, secret, created_at, enabled_at) \
         SELECT id, 'JBSWY3DPEHPK3PXP', 0, 0 FROM operators WHERE login = 'anna'",
        [],
    )
    .unwrap();
    assert!(ok(&["user", "reset-two-factor", "--login", "anna"], None).contains("two-factor sign-in is off"));
    let left: i64 = db.query_row("SELECT COUNT(*) FROM operator_totp", [], |r| r.get(0)).unwrap();
    let audited: i64 = db
        .query_row("SELECT COUNT(*) FROM audit_log WHERE action = 'operator.totp_reset' AND actor = 'cli'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!((left, audited), (0, 1));
    let nobody = okno.run(&["user", "reset-two-factor", "--login", "nobody"], None);
    assert!(!nobody.status.success());
}

#[test]
fn zero_config_creates_the_data_folder_in_the_working_directory() {
    let okno = Okno::new();
    let out = okno.run(&["migrate"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(okno.dir.join("okno-data/okno.db").exists());
}

#[test]
fn a_mistyped_database_url_is_a_clear_error_and_creates_nothing() {
    let okno = Okno::new();
    let mut c = okno.cmd();
    let out = c.env("OKNO_DATABASE_URL", "sqlit://okno.db").arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported database URL scheme `sqlit`"), "{err}");
    assert!(!okno.dir.join("okno.db").exists() && !okno.dir.join("okno-data").exists());
    let typo = okno.cmd().env("OKNO_LISTN", "x").arg("migrate").output().unwrap();
    assert_eq!(typo.status.code(), Some(2), "an unknown OKNO_ variable is reported");
    assert!(String::from_utf8_lossy(&typo.stderr).contains("listn"));
}

#[test]
fn default_config_is_a_valid_config_file() {
    let okno = Okno::new();
    let out = okno.run(&["default-config"], None);
    assert!(out.status.success());
    let path: &Path = &okno.dir.join("okno.toml");
    std::fs::write(path, &out.stdout).unwrap();
    let migrated = okno.run(&["--config", path.to_str().unwrap(), "migrate"], None);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let missing = okno.run(&["--config", "nope.toml", "migrate"], None);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn backup_writes_a_consistent_sqlite_copy() {
    let okno = Okno::new();
    okno.token();
    let out = okno.run(&["backup", "copy.db"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let copy = std::fs::read(okno.dir.join("copy.db")).unwrap();
    assert!(copy.starts_with(b"SQLite format 3\0"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(
            "of use only with the key (./okno-data/secret.key); keep a copy of the key, apart from the backups"
        ),
        "the backup names the key it needs: {said}"
    );
    let again = okno.run(&["backup", "copy.db"], None);
    assert!(!again.status.success(), "an existing file is not overwritten");
}

#[test]
fn rules_apply_loads_the_example_folder_and_refuses_a_broken_rule_with_its_position() {
    let okno = Okno::new();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rules");
    let out = okno.run(&["rules", "apply", examples.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files = std::fs::read_dir(&examples)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json"))
        .count();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), files, "one line per example rule");
    assert_eq!(files, 10, "the ten example rules");
    let broken = okno.dir.join("broken.json");
    std::fs::write(
        &broken,
        r#"[{"name": "ok", "event": "e", "recipients": [{"group": "g"}], "template": "fine"},
        {"name": "bad", "event": "e", "recipients": [{"group": "g"}], "template": "{% if %}"}]"#,
    )
    .unwrap();
    let out = okno.run(&["rules", "apply", broken.to_str().unwrap()], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.json") && err.contains("line 1"), "{err}");
}

/// `okno serve` with its log read line by line as it is written.
struct Logged {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Logged {
    fn serve(okno: &Okno) -> Logged {
        let mut child = okno.cmd().env("OKNO_LOG_LEVEL", "info").arg("serve").stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Logged { child, lines, seen: Vec::new() }
    }

    /// The first log line (from the start) containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else { break };
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!("okno never logged {needle:?}; it logged:\n{}", self.seen.join("\n"))
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_fresh_install_prints_a_setup_link_that_makes_the_first_administrator_once() {
    let okno = Okno::new();
    let mut server = Logged::serve(&okno);
    let listening = server.wait_for("okno is listening");
    assert!(
        listening.contains(&format!("http://127.0.0.1:{}/", okno.port)),
        "where the operator window is: {listening}"
    );
    let line = server.wait_for("/setup?token=");
    let link = line.split_whitespace().find(|w| w.contains("/setup?token=")).unwrap().trim_end_matches(',').to_string();
    assert!(link.starts_with(&format!("http://127.0.0.1:{}/setup?token=", okno.port)), "{line}");
    assert!(line.contains("okno user create"), "the command-line way is named too: {line}");

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // The login page of a fresh install says how to proceed.
    let login = http.get(okno.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(login.contains("id=\"first-run\"") && login.contains("/setup?token="), "{login}");

    let form = http.get(&link).send().await.unwrap().text().await.unwrap();
    assert!(form.contains("id=\"setup-form\""), "{form}");
    let token = link.split("token=").nth(1).unwrap().to_string();
    let post = |fields: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = okno.url("/setup");
        async move { http.post(url).form(&fields).send().await.unwrap() }
    };
    let short = post(vec![
        ("token", token.clone()),
        ("login", "anna".into()),
        ("password", "short".into()),
        ("password2", "short".into()),
    ])
    .await;
    assert_eq!(short.status(), 422);
    let body = short.text().await.unwrap();
    assert!(
        body.contains("at least 8") && body.contains("value=\"anna\""),
        "the form says why and keeps the login: {body}"
    );
    let forged = post(vec![
        ("token", "0".repeat(64)),
        ("login", "mallory".into()),
        ("password", "a long password".into()),
        ("password2", "a long password".into()),
    ])
    .await;
    assert_eq!(forged.status(), 403, "an unknown link makes nobody");

    let made = post(vec![
        ("token", token.clone()),
        ("login", "anna".into()),
        ("password", "correct horse battery".into()),
        ("password2", "correct horse battery".into()),
    ])
    .await;
    assert_eq!(made.status(), 303);
    assert_eq!(made.headers()["location"], "/ui/inbox");
    let session = set_cookie(&made, "okno_session").expect("signed in at once");
    let inbox =
        http.get(okno.url("/ui/inbox")).header("cookie", format!("okno_session={session}")).send().await.unwrap();
    assert_eq!(inbox.status(), 200, "the new administrator is in the inbox");
    assert!(inbox.text().await.unwrap().contains("/ui/admin/channels"), "as an administrator");

    // The link is spent; the login page no longer talks of setup.
    let again = http.get(&link).send().await.unwrap().text().await.unwrap();
    assert!(again.contains("id=\"setup-done\""), "{again}");
    let twice = post(vec![
        ("token", token.clone()),
        ("login", "boris".into()),
        ("password", "another long one".into()),
        ("password2", "another long one".into()),
    ])
    .await;
    assert_eq!(twice.status(), 409, "setup is over");
    assert!(twice.text().await.unwrap().contains("id=\"setup-done\""));
    let login = http.get(okno.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(!login.contains("id=\"first-run\""), "{login}");
    let list = okno.run(&["user", "list"], None);
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert_eq!(list.lines().count(), 1, "one operator: {list}");
    assert!(list.starts_with("anna\tadmin\tactive"), "{list}");

    // A restart with an administrator prints no setup link.
    drop(server);
    let mut server = Logged::serve(&okno);
    server.wait_for("no API tokens yet");
    assert!(!server.seen.iter().any(|l| l.contains("/setup?token=")), "{}", server.seen.join("\n"));
}

#[test]
fn user_create_help_lists_every_role() {
    let okno = Okno::new();
    let out = okno.run(&["user", "create", "--help"], None);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for role in ["admin", "operator", "restricted", "integration"] {
        assert!(help.contains(&format!("- {role}:")), "{role} in:\n{help}");
    }
    let bad = okno.run(&["user", "create", "--login", "x", "--role", "superuser"], Some("correct horse battery\n"));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values: admin, operator, restricted, integration"));
}

/// `okno demo` as the README runs it: it refuses a folder holding something and a configured
/// database, and on a fresh folder it prints where to go, serves the pages, and removes its
/// throwaway folder on SIGTERM.
#[tokio::test]
async fn okno_demo_refuses_data_it_could_harm_and_otherwise_starts_and_says_where_to_go() {
    let mut okno = Okno::new();
    let busy = okno.dir.join("okno-data");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("okno.db"), b"a real okno's data").unwrap();
    let out = okno.run(&["demo", "--data-dir", busy.to_str().unwrap()], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("starts only on an empty folder") && err.contains("okno-data"), "{err}");
    assert_eq!(std::fs::read(busy.join("okno.db")).unwrap(), b"a real okno's data");

    let out = okno.cmd().env("OKNO_DATABASE_URL", "postgres://okno@127.0.0.1/production").arg("demo").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("never touches a PostgreSQL database") && err.contains("OKNO_DATABASE_URL"), "{err}");

    // Where other computers would reach it, only when told to.
    let out = okno.cmd().env("OKNO_LISTEN", format!("0.0.0.0:{}", okno.port)).arg("demo").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("okno demo listens only on this computer") && err.contains("--public"), "{err}");

    let mut child = okno.cmd().arg("demo").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let text = instructions(&mut child);
    let base = okno.url("");
    for needle in [
        format!("{base}/            login: admin   password: "),
        format!("{base}/demo/phone"),
        format!("{base}/demo/console"),
    ] {
        assert!(text.contains(&needle), "{needle:?} in:\n{text}");
    }
    let password = text.split("password: ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    assert!(password.len() >= 16 && password != "okno-demo", "a password of this demo's own: {password}");
    let folder = text.split("Data folder: ").nth(1).unwrap().split(' ').next().unwrap().to_string();
    assert!(Path::new(&folder).join("okno.db").exists(), "{folder}");
    let phone = okno.http.get(okno.url("/demo/phone")).send().await.unwrap();
    assert_eq!(phone.status(), 200);
    let login = okno.http.get(okno.url("/login")).send().await.unwrap().text().await.unwrap().replace("&#x2f;", "/");
    assert!(login.contains(&format!("admin / {password}")), "the login page shows the demo credentials");
    let token = text.split("token: ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let channels = okno.call(reqwest::Method::GET, "/api/v1/channels", &token, None).await;
    assert_eq!(channels["items"].as_array().unwrap().len(), okno_demo::cast::BOTS.len(), "the printed token works");

    okno.child = Some(child);
    let status = okno.terminate();
    assert!(status.success(), "{status}");
    assert!(!Path::new(&folder).exists(), "the throwaway folder is removed");
}

/// What `okno demo` prints once it is ready, read from its stdout.
fn instructions(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    while !printed.iter().any(|l: &String| l.contains("Stop with Ctrl-C")) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => printed.push(line),
            Err(_) => panic!("okno demo printed no instructions: {printed:?}"),
        }
    }
    printed.join("\n")
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(ok.success());
}

/// Ctrl-C, SIGTERM or a closed terminal (SIGHUP) while the demo is still starting stop it
/// all the same, and its throwaway folder goes with it.
#[tokio::test]
async fn a_signal_while_okno_demo_starts_stops_it_and_removes_its_throwaway_folder() {
    let okno = Okno::new();
    for name in ["TERM", "HUP", "INT"] {
        let tmp = okno.dir.join(format!("tmp-{name}"));
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child =
            okno.cmd().env("TMPDIR", &tmp).arg("demo").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        // Its folder is made at the very start; the company takes a while longer to set up.
        let made =
            eventually(20, || async { std::fs::read_dir(&tmp).unwrap().next().map(|e| e.unwrap().path()) }).await;
        let folder = made.expect("okno demo makes its throwaway folder");
        signal(&child, name);
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(status.success(), "SIG{name}: {status}\n{err}");
        assert!(err.contains("okno demo: stopping"), "SIG{name}: {err}");
        assert!(!folder.exists(), "SIG{name}: the throwaway folder {} is removed\n{err}", folder.display());
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "SIG{name}: nothing is left behind");
    }
}

/// A folder kept with `--data-dir` holds the demo's administrator and token, printed for all
/// to see: `okno serve` refuses it.
#[tokio::test]
async fn okno_serve_refuses_a_folder_okno_demo_kept() {
    let mut okno = Okno::new();
    let kept = okno.dir.join("demo-data");
    let mut child = okno
        .cmd()
        .args(["demo", "--data-dir", kept.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let text = instructions(&mut child);
    assert!(text.contains("okno serve will not run on it"), "{text}");
    okno.child = Some(child);
    assert!(okno.terminate().success());
    assert!(kept.join("okno.db").exists(), "the folder is kept");

    let out = okno.cmd().env("OKNO_DATA_DIR", &kept).arg("serve").output().unwrap();
    assert!(!out.status.success(), "okno serve does not run on the demo's folder");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was made by `okno demo`") && err.contains("okno-demo.txt"), "{err}");
    // okno serve on a folder of its own still starts.
    okno.start().await;
}

/// Permission bits of every folder and file under `dir`, the folder included.
#[cfg(unix)]
fn modes_under(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = vec![(dir.to_path_buf(), std::fs::metadata(dir).unwrap().permissions().mode() & 0o777)];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(modes_under(&path));
        } else {
            out.push((path.clone(), std::fs::metadata(&path).unwrap().permissions().mode() & 0o777));
        }
    }
    out
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_is_private_and_an_open_one_is_tightened_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let okno = Okno::new();
    let token = okno.token();
    let data = okno.dir.join("okno-data");
    // A folder as an older okno left it under the usual umask: everyone may read it.
    for (path, _) in modes_under(&data) {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let child = okno.cmd().arg("serve").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let url = okno.url("/healthz");
    let up = eventually(20, || async { okno.http.get(&url).send().await.ok().filter(|r| r.status() == 200) }).await;
    assert!(up.is_some(), "okno did not come up");
    let resp = okno
        .http
        .post(okno.url("/api/v1/attachments?name=a.txt&mime=text/plain"))
        .bearer_auth(&token)
        .body("a file okno keeps")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(data.join("files").is_dir());
    let modes = modes_under(&data);
    assert!(modes.len() >= 5, "{modes:?}");
    for (path, mode) in &modes {
        let wanted = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(*mode, wanted, "{} is {mode:o}", path.display());
    }
    assert!(Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("other users could read"), "{log}");
}

#[tokio::test]
async fn secrets_rotate_moves_the_credentials_to_a_new_key_and_a_wrong_key_is_a_clear_refusal() {
    let mut okno = Okno::new();
    let token = okno.token();
    let key_file = okno.dir.join("okno-data/secret.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let sink = Sink::start(SECRET).await;
    okno.start().await;
    okno.queue_replies(&token, &sink, 1).await;
    let sent = sink.wait_accepted(10, 20).await;
    assert!(sent.iter().all(|r| r.signature_ok));

    let busy = okno.run(&["secrets", "rotate"], None);
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("another okno is running"), "{busy:?}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), old_key);

    assert!(okno.terminate().success());
    let out = okno.run(&["secrets", "rotate"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 stored credential(s) sealed again"), "{said}");
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!okno.dir.join("okno-data/secret.key.old").exists());

    // The channel's secret opens under the new key: an inbound message is checked and the
    // reply signed with it.
    okno.start().await;
    let convs = okno.call(reqwest::Method::GET, "/api/v1/conversations", &token, None).await;
    let conv = convs["items"][0]["id"].as_str().unwrap().to_string();
    let r = okno
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{conv}/messages"),
            &token,
            Some(json!({"text": "after the rotation"})),
        )
        .await;
    assert_eq!(r["status"], "queued", "{r}");
    let sent = sink.wait_accepted(11, 20).await;
    assert!(sent.iter().any(|r| r.body["text"] == "after the rotation" && r.signature_ok));
    assert!(okno.terminate().success());

    // The old key opens nothing: a clear refusal naming the key the secrets need.
    let refused = okno.cmd().env("OKNO_SECRET_KEY", old_key.trim()).arg("serve").output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    let new_id = okno_store::seal::SecretKey::parse(&new_key, "new").unwrap().id().to_string();
    assert!(err.contains(&format!("sealed under another key (id {new_id})")), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let backup = okno.run(&["backup", "copy.db"], None);
    assert!(backup.status.success());
    assert!(String::from_utf8_lossy(&backup.stdout).contains("secret.key"));
}
