//! Several okno processes on one PostgreSQL, and PostgreSQL going away for a moment.

use std::collections::HashSet;

use okno_testkit::{eventually, Sink, TestApp, TestDb};
use serde_json::json;
use sqlx::{Connection, Executor};

use super::*;

fn sent_count(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("okno_deliveries_total{") && l.contains("kind=\"send\"") && l.contains("outcome=\"sent\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_share_the_work_and_send_nothing_twice() {
    let Some(db) = TestDb::postgres().await else { return };
    let url = db.url.clone();
    let a = TestApp::spawn_on(db, |_| {}).await;
    let b = TestApp::spawn_on(TestDb::borrowed(&url), |_| {}).await;
    let sink = Sink::start(SECRET).await;
    sink.delay(std::time::Duration::from_millis(3));
    let ch = a.webhook_channel(&format!("{}/out", sink.url), SECRET).await;
    let mut convs = Vec::new();
    for n in 0..10 {
        convs.push(inbound_conversation(&a, &ch, &format!("u{n}")).await);
    }
    let mut ids = HashSet::new();
    for round in 0..20 {
        for (n, conv) in convs.iter().enumerate() {
            let app = if n % 2 == 0 { &a } else { &b };
            let r =
                app.post(&format!("/api/v1/conversations/{conv}/messages"), json!({"text": format!("{round}")})).await;
            assert_eq!(r.status, 202, "{r:?}");
            ids.insert(r.body["id"].as_str().unwrap().to_string());
        }
    }
    sink.wait_accepted(200, 60).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let got = sink.accepted();
    let unique: HashSet<_> = got.iter().map(|r| r.body["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(unique, ids, "every message arrived");
    assert_eq!(got.len(), 200, "and none twice");
    let ma = a.http.get(format!("{}/metrics", a.url)).send().await.unwrap().text().await.unwrap();
    let mb = b.http.get(format!("{}/metrics", b.url)).send().await.unwrap().text().await.unwrap();
    let (sa, sb) = (sent_count(&ma), sent_count(&mb));
    assert_eq!(sa + sb, 200);
    assert!(sa > 0 && sb > 0, "both processes took part: {sa} + {sb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_fails_requests_cleanly_and_they_work_again_after() {
    let Some(db) = TestDb::postgres().await else { return };
    let (admin, name) = db.postgres_admin().map(|(a, n)| (a.to_string(), n.to_string())).unwrap();
    let app = TestApp::spawn_on(db, |s| s.database.acquire_timeout_ms = 1000).await;
    let sink = Sink::start(SECRET).await;
    let ch = app.webhook_channel(&sink.url, SECRET).await;
    inbound_conversation(&app, &ch, "u-0").await;

    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    conn.execute(&*format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await.unwrap();
    conn.execute(&*format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        .await
        .unwrap();
    let ready = app.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 503, "{ready:?}");
    let a = app.inbound(&ch, SECRET, &message("m-1", "u-1", "while down")).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.code(), "store_unavailable");

    conn.execute(&*format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await.unwrap();
    let back = eventually(10, || async {
        let r = app.inbound(&ch, SECRET, &message("m-1", "u-1", "while down")).await;
        (r.status == 200).then_some(r)
    })
    .await
    .expect("requests succeed again");
    assert_eq!(back.body["duplicate"], false, "the failed attempt wrote nothing");
    assert_eq!(app.get("/api/v1/conversations").await.body["items"].as_array().unwrap().len(), 2);
}
