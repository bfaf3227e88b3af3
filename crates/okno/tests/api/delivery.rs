//! The delivery engine against a misbehaving endpoint: retries, give-up, permanent failures,
//! retry-after, per-conversation order.

use std::time::{Duration, Instant};

use okno_testkit::{eventually, Sink, TestApp};
use serde_json::json;

use super::*;

#[tokio::test]
async fn endpoint_answering_500_then_200_gets_the_message_once_it_recovers() {
    let (app, sink, ch) = app_with_channel().await;
    let conv = inbound_conversation(&app, &ch, "u-1").await;
    sink.script(&[500, 500]);
    let id = reply(&app, &conv, json!({"text": "hello"})).await;
    let m = final_status(&app, &id).await;
    assert_eq!(m["status"], "sent");
    let all = sink.received();
    assert_eq!(all.len(), 3, "two failures, one success");
    assert!(all.iter().all(|r| r.body["id"] == id.as_str()), "the same id each time, so the receiver can deduplicate");
}

#[tokio::test]
async fn endpoint_that_never_recovers_ends_failed_with_the_reason() {
    let (app, sink, ch) = app_with_channel().await;
    let conv = inbound_conversation(&app, &ch, "u-1").await;
    sink.answer(503);
    let id = reply(&app, &conv, json!({"text": "hello"})).await;
    let m = final_status(&app, &id).await;
    assert_eq!(m["status"], "failed");
    let error = m["error"].as_str().unwrap();
    assert!(error.contains("gave up after 4 attempts") && error.contains("503"), "{error}");
    assert_eq!(sink.received().len(), 4, "the retry budget of the test settings");
}

#[tokio::test]
async fn a_rejected_message_is_retried_then_fails_with_the_reason() {
    let (app, sink, ch) = app_with_channel().await;
    let conv = inbound_conversation(&app, &ch, "u-1").await;
    sink.answer(400);
    let id = reply(&app, &conv, json!({"text": "hello"})).await;
    let m = final_status(&app, &id).await;
    assert_eq!(m["status"], "failed");
    assert!(m["error"].as_str().unwrap().contains("HTTP 400"), "{m}");
    assert_eq!(sink.received().len(), 4, "the contract retries every non-2xx answer within the budget");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let app = TestApp::spawn().await;
    let sink = Sink::start(SECRET).await;
    // A tiny server answering 429 with Retry-After: 1 once, then 200.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let h = hits.clone();
    let router = axum::Router::new().fallback(move || {
        let h = h.clone();
        async move {
            let mut h = h.lock().unwrap();
            h.push(Instant::now());
            if h.len() == 1 {
                (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down")
            } else {
                (axum::http::StatusCode::OK, [("retry-after", "0")], "ok")
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    let ch = app.webhook_channel(&format!("http://{addr}/out"), SECRET).await;
    let conv = inbound_conversation(&app, &ch, "u-1").await;
    let id = reply(&app, &conv, json!({"text": "hello"})).await;
    let m = final_status(&app, &id).await;
    assert_eq!(m["status"], "sent");
    let hits = hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 2);
    assert!(
        hits[1] - hits[0] >= Duration::from_millis(950),
        "waited {:?}, the endpoint asked for 1 s",
        hits[1] - hits[0]
    );
    let _ = tx.send(());
    drop(sink);
}

#[tokio::test]
async fn messages_to_one_conversation_arrive_in_order() {
    let (app, sink, ch) = app_with_channel().await;
    let conv = inbound_conversation(&app, &ch, "u-1").await;
    let other = inbound_conversation(&app, &ch, "u-2").await;
    sink.script(&[500, 200, 500]);
    let mut ids = Vec::new();
    for n in 0..15 {
        ids.push(reply(&app, &conv, json!({"text": format!("part {n}")})).await);
        reply(&app, &other, json!({"text": format!("other {n}")})).await;
    }
    let got = sink.wait_accepted(30, 20).await;
    let order: Vec<_> = got
        .iter()
        .filter(|r| r.body["to"]["id"] == "u-1")
        .map(|r| r.body["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, ids, "failures and retries do not reorder a conversation");
}

#[tokio::test]
async fn outgoing_webhooks_retry_then_deliver_and_keep_a_log() {
    let (app, _sink, ch) = app_with_channel().await;
    let hooks = Sink::start("hook-secret-0123456789").await;
    hooks.script(&[500]);
    let sub = app
        .post(
            "/api/v1/webhooks",
            json!({"url": hooks.url, "events": ["message.received"], "secret": "hook-secret-0123456789"}),
        )
        .await;
    let sub_id = sub.body["id"].as_str().unwrap();
    inbound_conversation(&app, &ch, "u-1").await;
    let got = hooks.wait_accepted(1, 10).await;
    let all = hooks.received();
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0].header("x-okno-delivery"),
        all[1].header("x-okno-delivery"),
        "a retry carries the same delivery id"
    );
    assert!(got[0].signature_ok);
    let log = eventually(5, || async {
        let l = app.get(&format!("/api/v1/webhooks/{sub_id}/deliveries")).await;
        (l.body["items"][0]["status"] == "delivered").then_some(l)
    })
    .await
    .expect("the log shows the delivery");
    assert_eq!(log.body["items"][0]["attempts"], 2);
    assert_eq!(log.body["items"][0]["last_status_code"], 200);
}

#[tokio::test]
async fn a_webhook_receiver_that_never_recovers_is_marked_failed() {
    let (app, _sink, ch) = app_with_channel().await;
    let hooks = Sink::start("hook-secret-0123456789").await;
    hooks.answer(500);
    let sub = app.post("/api/v1/webhooks", json!({"url": hooks.url, "events": ["message.received"]})).await;
    assert_eq!(sub.status, 201);
    assert_eq!(sub.body["secret"].as_str().unwrap().len(), 48, "a generated secret is shown once");
    let sub_id = sub.body["id"].as_str().unwrap();
    inbound_conversation(&app, &ch, "u-1").await;
    let log = eventually(15, || async {
        let l = app.get(&format!("/api/v1/webhooks/{sub_id}/deliveries")).await;
        (l.body["items"][0]["status"] == "failed").then_some(l)
    })
    .await
    .expect("the delivery ends failed");
    assert!(log.body["items"][0]["last_error"].as_str().unwrap().contains("gave up after 4 attempts"));
    assert_eq!(hooks.received().len(), 4);
}

#[tokio::test]
async fn a_send_slower_than_its_lease_is_not_taken_over_and_repeated() {
    let app = TestApp::spawn_on(okno_testkit::TestDb::sqlite(), |s| s.delivery.lease_secs = 1).await;
    let sink = Sink::start(SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", sink.url), SECRET).await;
    let conv = inbound_conversation(&app, &ch, "u-1").await;
    sink.delay(Duration::from_millis(2500));
    let id = reply(&app, &conv, json!({"text": "slow receiver"})).await;
    assert_eq!(final_status(&app, &id).await["status"], "sent");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.received().len(), 1, "the lease was renewed while the send was under way");
}

/// Slow sends holding almost every worker slot do not make a new reply wait for the poll (or
/// for them): the workers claim for the few free slots at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_goes_out_at_once_while_slow_sends_hold_most_worker_slots() {
    let app = TestApp::spawn_on(okno_testkit::TestDb::sqlite(), |s| {
        s.delivery.workers = 64;
        s.delivery.poll_interval_ms = 30_000;
        s.delivery.http_timeout_secs = 30;
    })
    .await;
    let slow = Sink::start(SECRET).await;
    let fast = Sink::start(SECRET).await;
    let slow_ch = app.webhook_channel(&format!("{}/out", slow.url), SECRET).await;
    let fast_ch = app.webhook_channel(&format!("{}/out", fast.url), SECRET).await;
    let mut slow_convs = Vec::new();
    for i in 0..60 {
        slow_convs.push(inbound_conversation(&app, &slow_ch, &format!("slow-{i}")).await);
    }
    let fast_conv = inbound_conversation(&app, &fast_ch, "fast").await;
    slow.delay(Duration::from_secs(8));
    for conv in &slow_convs {
        reply(&app, conv, json!({"text": "slow"})).await;
    }
    // 60 of the 64 slots are taken by sends that answer in 8 s (claimed within milliseconds;
    // the last assertion below shows they still held them).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let queued = Instant::now();
    reply(&app, &fast_conv, json!({"text": "fast"})).await;
    fast.wait_accepted(1, 10).await;
    let took = queued.elapsed();
    assert!(took < Duration::from_secs(4), "the reply waited {took:?} for a free slot");
    assert_eq!(slow.accepted().len(), 0, "the slow sends were still holding their slots");
}
