//! The outbox's queue flags on SQLite and on the local PostgreSQL: a job whose `blocked` flag
//! was left set with nothing before it (the rare interleaving of concurrent transactions the
//! flag cannot see) is not claimed until the workers' sweep clears it, and the sweep clears
//! nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use okno_domain::model::ChannelKind;
use okno_store::testing::TestDb;
use okno_store::{InboundMessage, InboundSender, NewChannel, OutboundRequest, Recipient, Store};
use serde_json::json;
use sqlx::Connection;

/// Runs `sql` on the test database directly, outside the store.
async fn raw(db: &TestDb, sql: &str) -> u64 {
    if db.postgres_admin().is_some() {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap().rows_affected()
    } else {
        let path = db.url.strip_prefix("sqlite://").unwrap();
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute(sql, []).unwrap() as u64
    }
}

async fn scenario(db: TestDb) {
    let store = db.open().await;
    let channel = store
        .create_channel(NewChannel {
            kind: ChannelKind::Webhook,
            name: "site".into(),
            config: json!({"outbound_url": "https://example.org/in", "secret": "s"}),
            info: json!({}),
        })
        .await
        .unwrap()
        .id;
    let mut conversations = Vec::new();
    for user in ["a", "b"] {
        let m = InboundMessage {
            channel_id: channel.clone(),
            sender: InboundSender { user_id: user.into(), chat_id: user.into(), ..Default::default() },
            external_id: "1".into(),
            text: Some("hi".into()),
            attachments: vec![],
            button_data: None,
            reply_to: None,
            reply_to_external: None,
            author: None,
            bot_turn: false,
        };
        conversations.push(store.record_inbound(m).await.unwrap().message.conversation_id);
    }
    let send = |conversation: &str, text: &str| OutboundRequest {
        to: Recipient::Conversation(conversation.into()),
        channel_id: None,
        text: Some(text.into()),
        buttons: vec![],
        attachment_ids: vec![],
        idempotency_key: None,
        author: Some("test".into()),
        reply_to: None,
        options: json!({}),
    };
    let a1 = store.enqueue_outbound(send(&conversations[0], "a1")).await.unwrap().0.id;
    let a2 = store.enqueue_outbound(send(&conversations[0], "a2")).await.unwrap().0.id;
    let b1 = store.enqueue_outbound(send(&conversations[1], "b1")).await.unwrap().0.id;

    assert_eq!(store.unblock_jobs().await.unwrap(), 0, "the store's own flags need no sweep");
    // a1 is flagged as if a concurrent transaction had left it so.
    let flagged = raw(&db, &format!("UPDATE jobs SET blocked = 1 WHERE ref_id = '{a1}'")).await;
    assert_eq!(flagged, 1);
    let claimed: Vec<String> = store.claim_jobs("w", 10, 60_000).await.unwrap().into_iter().map(|j| j.ref_id).collect();
    assert_eq!(claimed, vec![b1.clone()], "a flagged job is not claimed, nor what waits behind it");

    assert_eq!(store.unblock_jobs().await.unwrap(), 1, "the sweep frees a1 and nothing else (a2 still waits)");
    let claimed: Vec<String> = store.claim_jobs("w", 10, 60_000).await.unwrap().into_iter().map(|j| j.ref_id).collect();
    assert_eq!(claimed, vec![a1.clone()]);
    // Ending a1 frees a2 without a sweep.
    let jobs = store.claim_jobs("w2", 10, 60_000).await.unwrap();
    assert!(jobs.is_empty(), "a2 waits while a1 is out");
    let depth = store.queue_depth().await.unwrap();
    assert_eq!(depth, 3);
    assert_eq!(raw(&db, &format!("DELETE FROM jobs WHERE ref_id = '{a1}'")).await, 1);
    let claimed: Vec<String> = store.claim_jobs("w", 10, 60_000).await.unwrap().into_iter().map(|j| j.ref_id).collect();
    assert_eq!(claimed, vec![a2], "the job after a1 is free as soon as a1 leaves");
    assert_eq!(store.unblock_jobs().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_flag_left_set_is_cleared_by_the_sweep() {
    scenario(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_flag_left_set_is_cleared_by_the_sweep() {
    let Some(db) = TestDb::postgres().await else { return };
    scenario(db).await;
}
