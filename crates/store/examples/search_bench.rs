//! How long the inbox search takes over many messages: records `MESSAGES` inbound messages
//! (Russian texts, 1,000 people) in a fresh database, then times searches through
//! `list_conversations` with a text filter (one page of 50, as the inbox shows), and the
//! backfill that indexes messages written before the index existed.
//!
//! `cargo run --release -p okno-store --example search_bench` (SQLite) or
//! `… --example search_bench -- --postgres` (a fresh database on the local PostgreSQL);
//! `MESSAGES=…` changes the count (default 100,000).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program: a failure is a crash

use std::time::{Duration, Instant};

use okno_store::testing::TestDb;
use okno_store::{ConversationFilter, InboundMessage, PageRequest, Store};

const PEOPLE: usize = 1_000;

const WORDS: &[&str] = &[
    "здравствуйте",
    "когда",
    "будет",
    "доставка",
    "спасибо",
    "оплатил",
    "счёт",
    "можно",
    "перенести",
    "на",
    "субботу",
    "курьер",
    "не",
    "приехал",
    "где",
    "мой",
    "адрес",
    "изменился",
    "пожалуйста",
    "перезвоните",
    "хорошо",
    "жду",
    "ответа",
    "товар",
    "пришёл",
    "сломанный",
    "вернуть",
    "деньги",
    "скидка",
    "работает",
];

/// A message: a few words, every tenth one about an order («Заказ №…»), one in 20,000 with a
/// rare word.
fn text(n: usize) -> String {
    let mut words: Vec<&str> = (0..8).map(|i| WORDS[(n * 7 + i * 13 + n / 3) % WORDS.len()]).collect();
    words[0] = if n.is_multiple_of(2) { "Здравствуйте," } else { words[0] };
    let mut t = words.join(" ");
    if n.is_multiple_of(10) {
        t.push_str(&format!(" Заказ №{}", 100_000 + n));
    }
    if n % 20_000 == 7 {
        t.push_str(" ПЕРЕКЛАДИНА");
    }
    t
}

fn message(channel: &str, n: usize) -> InboundMessage {
    okno_store::testing::inbound_text(channel, &format!("u{}", n % PEOPLE), &format!("m{n}"), &text(n))
}

/// Median and slowest of `runs` searches for `q`, and how many conversations the first found.
async fn time_search(store: &dyn Store, q: &str, runs: usize) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut found = 0;
    for _ in 0..runs {
        let f = ConversationFilter { text: Some(q.into()), ..Default::default() };
        let t = Instant::now();
        let page = store.list_conversations(f, PageRequest::new(Some(50), None)).await.unwrap();
        times.push(t.elapsed());
        found = page.items.len();
    }
    times.sort();
    (times[times.len() / 2], times[times.len() - 1], found)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let postgres = std::env::args().any(|a| a == "--postgres");
    let messages: usize = std::env::var("MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let db = if postgres { TestDb::postgres().await.expect("PostgreSQL at PG_TEST_URL") } else { TestDb::sqlite() };
    let store = db.open().await;
    let ch = okno_store::testing::webhook_channel(&*store, "site").await;
    let backend = if postgres { "PostgreSQL" } else { "SQLite" };
    println!("{backend}: recording {messages} messages from {PEOPLE} people…");
    let t = Instant::now();
    // Two writers at a time, as two requests would.
    let mut n = 0;
    while n < messages {
        let (a, b) = (message(&ch, n), message(&ch, n + 1));
        let (s1, s2) = (store.clone(), store.clone());
        let (r1, r2) = tokio::join!(s1.record_inbound(a), async move {
            if n + 1 < messages {
                s2.record_inbound(b).await.map(Some)
            } else {
                Ok(None)
            }
        });
        r1.unwrap();
        r2.unwrap();
        n += 2;
    }
    let took = t.elapsed();
    println!(
        "  recorded in {:.1} s ({:.0} messages/s, each with its search copy)",
        took.as_secs_f64(),
        messages as f64 / took.as_secs_f64()
    );

    // The trigram index catches up (okno does it each second, here all at once).
    let t = Instant::now();
    let mut caught = 0;
    loop {
        let n = store.catch_up_search_index(2_000).await.unwrap();
        if n == 0 {
            break;
        }
        caught += n;
    }
    if caught > 0 {
        println!(
            "  trigram index caught up with {caught} messages in {:.1} s ({:.0} messages/s)",
            t.elapsed().as_secs_f64(),
            caught as f64 / t.elapsed().as_secs_f64()
        );
    }
    // For scale: the inbox without a search reads its page the same way (each conversation
    // with its contact and last message).
    let mut times = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        store.list_conversations(ConversationFilter::default(), PageRequest::new(Some(50), None)).await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!("  the newest 50 conversations, no search: median {:.1} ms", times[10].as_secs_f64() * 1e3);
    for (q, what) in [
        ("перекладина", "a rare word (5 messages in 100,000)"),
        ("ПЕРЕКЛАДИНА", "the same in capitals"),
        ("Заказ №100010", "an order number (1 message)"),
        ("заказ", "a common word (every 10th message)"),
        ("доставка", "a very common word"),
        ("ок", "two letters (reads the whole table)"),
        ("абракадабра", "no match"),
    ] {
        let (median, slowest, found) = time_search(&*store, q, 21).await;
        println!(
            "  search «{q}» — {what}: median {:.1} ms, slowest {:.1} ms, {found} conversations",
            median.as_secs_f64() * 1e3,
            slowest.as_secs_f64() * 1e3
        );
    }

    // A second's messages not yet in the trigram index (read with LIKE meanwhile).
    for n in messages..messages + 2_000 {
        store.record_inbound(message(&ch, n)).await.unwrap();
    }
    let (median, _, found) = time_search(&*store, "перекладина", 21).await;
    println!(
        "  with 2,000 new messages not yet in the index, «перекладина»: median {:.1} ms, {found} conversations",
        median.as_secs_f64() * 1e3
    );
    let (median, _, _) = time_search(&*store, "заказ", 21).await;
    println!("  … and «заказ»: median {:.1} ms", median.as_secs_f64() * 1e3);
    // The backfill after an upgrade: the copies removed, as a database an older okno wrote,
    // then every message indexed again, a slice at a time.
    db.execute_raw(&[
        "DELETE FROM message_search",
        "DELETE FROM message_search_backfill",
        "INSERT INTO message_search_backfill (id, after) VALUES (1, '')",
    ])
    .await;
    let t = Instant::now();
    let mut read = 0;
    loop {
        let n = store.backfill_search(2_000).await.unwrap();
        if n == 0 {
            break;
        }
        read += n;
    }
    loop {
        if store.catch_up_search_index(2_000).await.unwrap() == 0 {
            break;
        }
    }
    let took = t.elapsed();
    println!(
        "  backfill of {read} messages (and their trigram index): {:.1} s ({:.0} messages/s)",
        took.as_secs_f64(),
        read as f64 / took.as_secs_f64()
    );
    let (median, _, found) = time_search(&*store, "перекладина", 21).await;
    println!("  after it, «перекладина»: median {:.1} ms, {found} conversations", median.as_secs_f64() * 1e3);
    if std::env::var("KEEP").is_ok_and(|v| v == "1") {
        println!("  kept: {}", db.url);
        std::mem::forget(db);
    }
}
