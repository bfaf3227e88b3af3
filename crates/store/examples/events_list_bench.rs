//! How long a page of the events list takes over many events: writes `EVENTS` events (default
//! 200,000) straight into a fresh database — each with a rule's outcome and a person's message,
//! every tenth with an unreached recipient; half of them `payment.received`, 40 %
//! `order.shipped`, 1 % `stock.low`; 5 % `no_rule` — then times `list_events` as the events
//! page and `GET /api/v1/events` call it (a page of 50): unfiltered, by a common and a rare type,
//! by status, by key, by a period, and a deep page.
//!
//! `cargo run --release -p okno-store --example events_list_bench` (SQLite) or
//! `… --example events_list_bench -- --postgres` (a fresh database on the local PostgreSQL).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program: a failure is a crash

use std::time::{Duration, Instant};

use okno_store::testing::TestDb;
use okno_store::{EventFilter, PageRequest, Store};

/// The first event's time; each next one a second later.
const BASE_MS: i64 = 1_790_000_000_000;

/// `SELECT i FROM …` over 1..=n, as each backend writes it.
fn series(postgres: bool, n: usize) -> String {
    if postgres {
        format!("SELECT i FROM generate_series(1, {n}) AS s(i)")
    } else {
        format!("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s")
    }
}

/// `prefix` and the number `i` padded to 32 characters: ids that sort as they were made.
fn id(postgres: bool, prefix: &str, expr: &str) -> String {
    if postgres {
        format!("'{prefix}' || lpad(({expr})::text, {}, '0')", 32 - prefix.len())
    } else {
        format!("'{prefix}' || printf('%0{}d', {expr})", 32 - prefix.len())
    }
}

/// Median and slowest of `runs` calls of the list with `filter` (a page of 50).
async fn time_list(
    store: &dyn Store,
    filter: &EventFilter,
    cursor: Option<String>,
    runs: usize,
) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut found = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let page = store.list_events(filter.clone(), PageRequest::new(Some(50), cursor.clone())).await.unwrap();
        times.push(t.elapsed());
        found = page.items.len();
    }
    times.sort();
    (times[times.len() / 2], times[times.len() - 1], found)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let postgres = std::env::args().any(|a| a == "--postgres");
    let events: usize = std::env::var("EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let db = if postgres { TestDb::postgres().await.expect("PostgreSQL at PG_TEST_URL") } else { TestDb::sqlite() };
    let store = db.open().await;
    let ch = okno_store::testing::webhook_channel(&*store, "site").await;
    let m = store.record_inbound(okno_store::testing::inbound_text(&ch, "u-1", "m-1", "hi")).await.unwrap().message;
    let backend = if postgres { "PostgreSQL" } else { "SQLite" };
    println!("{backend}: writing {events} events with their outcomes, messages and reasons…");
    let t = Instant::now();
    let s = series(postgres, events);
    let (ev, msg) = (id(postgres, "e", "i"), id(postgres, "m", "i"));
    let (dl, un) = (id(postgres, "d", "i"), id(postgres, "u", "i"));
    let kind =
        "CASE WHEN i % 100 = 99 THEN 'stock.low' WHEN i % 2 = 0 THEN 'payment.received' ELSE 'order.shipped' END";
    let status = "CASE WHEN i % 20 = 7 THEN 'no_rule' ELSE 'processed' END";
    let message_status = "CASE WHEN i % 50 = 1 THEN 'failed' WHEN i % 50 = 2 THEN 'queued' ELSE 'sent' END";
    db.execute_raw(&[
        format!(
            "INSERT INTO events (id, type, key, data, status, created_at, processed_at) \
             SELECT {ev}, {kind}, 'key-' || i, '{{\"n\": 1}}', {status}, {BASE_MS} + i * 1000, {BASE_MS} + i * 1000 + 5 FROM ({s}) n"
        ),
        format!(
            "INSERT INTO event_rules (event_id, rule_id, rule_name, outcome, created_at, updated_at) \
             SELECT {ev}, 'r-1', 'оплата', CASE WHEN i % 20 = 7 THEN 'not_matched' ELSE 'matched' END, \
             {BASE_MS} + i * 1000, {BASE_MS} + i * 1000 FROM ({s}) n"
        ),
        format!(
            "INSERT INTO messages (id, conversation_id, contact_id, channel_id, direction, text, status, created_at, updated_at) \
             SELECT {msg}, '{conv}', '{contact}', '{ch}', 'out', 'Оплата получена', {message_status}, {BASE_MS} + i * 1000, \
             {BASE_MS} + i * 1000 FROM ({s}) n WHERE i % 20 <> 7",
            conv = m.conversation_id,
            contact = m.contact_id,
        ),
        format!(
            "INSERT INTO event_deliveries (id, event_id, rule_id, contact_id, channel_id, message_id, created_at) \
             SELECT {dl}, {ev}, 'r-1', '{contact}', '{ch}', {msg}, {BASE_MS} + i * 1000 FROM ({s}) n WHERE i % 20 <> 7",
            contact = m.contact_id,
        ),
        format!(
            "INSERT INTO event_unresolved (id, event_id, rule_id, recipient, reason, code, created_at) \
             SELECT {un}, {ev}, 'r-1', 'external_id x', 'unknown external id', 'unknown_external_id', {BASE_MS} + i * 1000 \
             FROM ({s}) n WHERE i % 10 = 3"
        ),
    ])
    .await;
    if postgres {
        // okno keeps PostgreSQL's statistics fresh as tables grow (`ProcessStore::refresh_statistics`).
        db.execute_raw(&["ANALYZE"]).await;
    }
    println!("  written in {:.1} s", t.elapsed().as_secs_f64());

    let at = |i: usize| BASE_MS + i as i64 * 1000;
    let deep = {
        // The cursor of a page deep in the list: the id 150,000 events back.
        let back = events.saturating_sub(150_000).max(1);
        Some(format!("e{back:031}"))
    };
    let cases: Vec<(&str, EventFilter, Option<String>)> = vec![
        ("no filter, the newest page", EventFilter::default(), None),
        ("no filter, a page 150,000 events back", EventFilter::default(), deep.clone()),
        (
            "type payment.received (50 %)",
            EventFilter { event_type: Some("payment.received".into()), ..Default::default() },
            None,
        ),
        ("type stock.low (1 %)", EventFilter { event_type: Some("stock.low".into()), ..Default::default() }, None),
        (
            "type stock.low, 150,000 events back",
            EventFilter { event_type: Some("stock.low".into()), ..Default::default() },
            deep,
        ),
        ("status processed (95 %)", EventFilter { status: Some("processed".into()), ..Default::default() }, None),
        ("status no_rule (5 %)", EventFilter { status: Some("no_rule".into()), ..Default::default() }, None),
        ("status accepted (none)", EventFilter { status: Some("accepted".into()), ..Default::default() }, None),
        ("key, exactly", EventFilter { key: Some(format!("key-{}", events / 2)), ..Default::default() }, None),
        (
            "a day, 100,000 events back",
            EventFilter {
                from: Some(at(events.saturating_sub(100_000))),
                to: Some(at(events.saturating_sub(100_000) + 86_400)),
                ..Default::default()
            },
            None,
        ),
        (
            "type stock.low and a day, 100,000 events back",
            EventFilter {
                event_type: Some("stock.low".into()),
                from: Some(at(events.saturating_sub(100_000))),
                to: Some(at(events.saturating_sub(100_000) + 86_400)),
                ..Default::default()
            },
            None,
        ),
    ];
    for (what, filter, cursor) in cases {
        let (median, slowest, found) = time_list(&*store, &filter, cursor, 11).await;
        println!(
            "  {what}: median {:.1} ms, slowest {:.1} ms, {found} events",
            median.as_secs_f64() * 1e3,
            slowest.as_secs_f64() * 1e3
        );
    }
}
