//! Knowing when a process is gone, on SQLite and on the local PostgreSQL: a process that shows
//! itself alive keeps its leases; once it is gone, another takes its jobs and its pollers back
//! at once instead of after the leases' minute. SQLite lets one such process use a database
//! file at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use okno_store::testing::{inbound_text, webhook_channel, TestDb};
use okno_store::{OutboundRequest, OutboxStore, ProcessStore, ReceivingStore, Recipient, SqlStore, Store};
use std::sync::Arc;

use serde_json::json;

const MINUTE: i64 = 60_000;

/// A conversation with three replies queued; returns how many jobs that made.
async fn three_replies(store: &dyn Store) -> usize {
    let ch = webhook_channel(store, "site").await;
    let conv = store.record_inbound(inbound_text(&ch, "u-1", "m-1", "hello")).await.unwrap().message.conversation_id;
    for n in 0..3 {
        let req = OutboundRequest {
            to: Recipient::Conversation(conv.clone()),
            channel_id: None,
            text: Some(format!("reply {n}")),
            buttons: vec![],
            attachment_ids: vec![],
            idempotency_key: None,
            author: Some("operator:anna".into()),
            reply_to: None,
            options: json!({}),
        };
        store.enqueue_outbound(req).await.unwrap();
    }
    3
}

async fn a_gone_process_leaves_its_work_at_once_and_a_live_one_keeps_it(_: Arc<dyn Store>, db: &TestDb) {
    let a = db.open_sql().await;
    a.hold_liveness("proc-a").await.unwrap();
    three_replies(&a).await;
    let mine = a.claim_jobs("proc-a", 10, MINUTE).await.unwrap();
    assert!(!mine.is_empty());
    assert!(a.take_channel_lease(&"ch-x".into(), "proc-a", MINUTE).await.unwrap());

    let sqlite = db.url.starts_with("sqlite");
    let b: SqlStore = SqlStore::open(&db.url, Default::default()).await.unwrap();
    if sqlite {
        // One process per SQLite file: the second is refused while the first runs.
        let refused = b.hold_liveness("proc-b").await.unwrap_err();
        assert_eq!(refused.code, "database_in_use");
        assert!(refused.message.contains("another okno is running on"), "{}", refused.message);
    } else {
        b.hold_liveness("proc-b").await.unwrap();
        // A alive: its leases are its own.
        assert!(b.reclaim_dead("proc-b").await.unwrap().is_empty());
        assert!(b.claim_jobs("proc-b", 10, MINUTE).await.unwrap().is_empty(), "A's queue is A's while it lives");
        assert!(!b.take_channel_lease(&"ch-x".into(), "proc-b", MINUTE).await.unwrap());
    }

    // A is gone (its store closed, as a killed process's connections and files are).
    a.close().await;
    drop(a);
    if sqlite {
        b.hold_liveness("proc-b").await.unwrap();
    }
    let dead = found_eventually(|| async { b.reclaim_dead("proc-b").await.unwrap() }).await;
    assert_eq!(dead, ["proc-a"]);
    let taken = b.claim_jobs("proc-b", 10, MINUTE).await.unwrap();
    assert_eq!(taken.len(), mine.len(), "A's jobs at once, in their order, not a minute later");
    assert_eq!(taken.iter().map(|j| j.seq).collect::<Vec<_>>(), mine.iter().map(|j| j.seq).collect::<Vec<_>>());
    assert!(b.take_channel_lease(&"ch-x".into(), "proc-b", MINUTE).await.unwrap(), "and its poller");
    assert!(b.reclaim_dead("proc-b").await.unwrap().is_empty(), "nobody else is gone");

    // A tool beside a running okno (it never shows itself alive) takes nothing back.
    let tool = db.open_sql().await;
    assert!(tool.reclaim_dead("tool").await.unwrap().is_empty());
    assert_eq!(b.extend_leases("proc-b", MINUTE).await.unwrap() as usize, taken.len());
}

/// PostgreSQL lets a closed session's lock go as the server notices the closed socket: looked
/// at again for a few seconds.
async fn found_eventually<F, Fut>(mut check: F) -> Vec<String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    for _ in 0..50 {
        let found = check().await;
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Vec::new()
}

/// Several processes on one PostgreSQL hear of each other's new work at once; each hears the
/// others, not itself. SQLite has no one else to tell.
async fn processes_on_one_database_hear_each_others_announcements(_: Arc<dyn Store>, db: &TestDb) {
    let a = db.open_sql().await;
    let b = db.open_sql().await;
    let Some(mut heard_by_b) = b.listen_announcements("proc-b").await.unwrap() else {
        assert!(db.url.starts_with("sqlite"), "PostgreSQL listens");
        a.announce("proc-a", false).await.unwrap();
        assert_eq!(a.processes_alive().await.unwrap(), None);
        return;
    };
    // Who is there to hear: the processes that show themselves alive.
    assert_eq!(a.processes_alive().await.unwrap(), Some(0));
    a.hold_liveness("proc-a").await.unwrap();
    assert_eq!(b.processes_alive().await.unwrap(), Some(1));
    b.hold_liveness("proc-b").await.unwrap();
    assert_eq!(a.processes_alive().await.unwrap(), Some(2));
    let mut heard_by_a = a.listen_announcements("proc-a").await.unwrap().unwrap();
    let wait = std::time::Duration::from_secs(5);

    a.announce("proc-a", false).await.unwrap();
    let heard = tokio::time::timeout(wait, heard_by_b.recv()).await.expect("B hears A").unwrap();
    assert!(!heard.bulk, "live work only");

    // B's own announcement reaches A, not B; several in a row are folded, none lost, and
    // broadcast-lane work among them is not lost in the folding.
    for bulk in [false, true, false] {
        b.announce("proc-b", bulk).await.unwrap();
    }
    let mut bulk = false;
    while !bulk {
        let heard = tokio::time::timeout(wait, heard_by_a.recv()).await.expect("A hears B's broadcast work").unwrap();
        bulk = heard.bulk;
    }
    let own = tokio::time::timeout(std::time::Duration::from_millis(300), heard_by_b.recv()).await;
    assert!(own.is_err(), "B does not hear itself");

    // A process that stops lets go before it is gone: the next look finds it gone, every time
    // (`okno restore` and `okno secrets rotate` look right after okno stopped).
    for round in 0..5 {
        b.end_liveness().await;
        assert_eq!(a.processes_alive().await.unwrap(), Some(1), "round {round}: B let go at once");
        b.hold_liveness("proc-b").await.unwrap();
        assert_eq!(a.processes_alive().await.unwrap(), Some(2));
    }
}

okno_store::both_backends!(
    with_db a_gone_process_leaves_its_work_at_once_and_a_live_one_keeps_it,
    processes_on_one_database_hear_each_others_announcements
);
