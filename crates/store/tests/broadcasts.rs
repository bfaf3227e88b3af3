//! Broadcasts in the store, on SQLite and on the local PostgreSQL: the audience is written once,
//! each person is queued at most once and in the bulk lane, opted-out people are skipped,
//! pause/resume/cancel hold, answers and the "unsubscribe" button are recorded, and a failed
//! send falls back to the person's next channel.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use okno_domain::ids::{ContactId, MessageId};
use okno_domain::model::{ContactInput, EventType, MessageStatus};
use okno_store::testing::{inbound_text as message, webhook_channel as channel};
use okno_store::{
    BroadcastAction, BroadcastItem, IdentityFlag, InboundSender, NewBroadcast, NewWebhook, PageRequest, SentMessage,
    Store, SubscriptionChange, LANE_BULK, LANE_LIVE,
};
use serde_json::json;

/// A person who wrote in once: their contact id.
async fn person(store: &dyn Store, channel: &str, user: &str) -> ContactId {
    store
        .record_inbound(message(channel, user, &format!("hi-{user}"), "Здравствуйте"))
        .await
        .unwrap()
        .message
        .contact_id
}

async fn broadcast(store: &dyn Store) -> String {
    store
        .create_broadcast(NewBroadcast {
            name: "Акция".into(),
            spec: json!({"text": "Скидка"}),
            send_at: None,
            created_by: Some("test".into()),
        })
        .await
        .unwrap()
        .id
}

fn send(contact: &str) -> BroadcastItem {
    BroadcastItem::Send {
        contact_id: contact.into(),
        text: "Скидка 10%".into(),
        buttons: vec![],
        attachment_ids: vec![],
        options: serde_json::json!({}),
    }
}

/// Ends the broadcast's own slice job and returns the bulk-lane send jobs claimed.
async fn bulk_sends(store: &dyn Store) -> Vec<okno_store::Job> {
    for job in store.claim_lane("t", LANE_LIVE, 100, 60_000).await.unwrap() {
        store.complete_job(job.seq, "t").await.unwrap();
    }
    store.claim_lane("t", LANE_BULK, 100, 60_000).await.unwrap()
}

async fn each_person_is_queued_once_and_opted_out_people_are_skipped(store: Arc<dyn Store>) {
    let ch = channel(&*store, "web").await;
    let a = person(&*store, &ch, "a").await;
    let b = person(&*store, &ch, "b").await;
    let c = person(&*store, &ch, "c").await;
    // «стоп», read by the engine as an opt-out, opts c out and is answered (in the live lane).
    let mut stop = message(&ch, "c", "stop-c", "Стоп");
    stop.subscription = Some(SubscriptionChange {
        subscribed: false, answer: "Вы отписались от рассылок.".into()
    });
    let stop = store.record_inbound(stop).await.unwrap().message;
    let contact_c = store.get_contact(&c).await.unwrap();
    assert!(contact_c.identities[0].opted_out);
    let confirm = store.list_messages(&stop.conversation_id, PageRequest::new(Some(10), None)).await.unwrap();
    assert!(confirm.items.iter().any(|m| m.text.as_deref().unwrap_or_default().starts_with("Вы отписались")));
    let (nobody, _) =
        store.upsert_contact(ContactInput { name: Some("Без каналов".into()), ..Default::default() }).await.unwrap();

    let id = broadcast(&*store).await;
    let total = store.expand_broadcast(&id, vec![a.clone(), b.clone(), c.clone(), nobody.id.clone()]).await.unwrap();
    assert_eq!(total, 4);
    // Written again (a slice cut short by a crash): nobody twice.
    assert_eq!(store.expand_broadcast(&id, vec![b.clone(), a.clone()]).await.unwrap(), 4);
    let pending = store.pending_recipients(&id, 10).await.unwrap();
    let order: Vec<_> = pending.iter().map(|p| p.contact_id.clone()).collect();
    assert_eq!(order, vec![a.clone(), b.clone(), c.clone(), nobody.id.clone()]);

    let items = vec![send(&a), send(&b), send(&c), send(&nobody.id), send(&a)];
    assert_eq!(store.queue_broadcast(&id, items.clone()).await.unwrap(), 2, "a and b; a once");
    assert_eq!(store.queue_broadcast(&id, items).await.unwrap(), 0, "a slice run again queues nobody");
    assert!(store.pending_recipients(&id, 10).await.unwrap().is_empty());
    let bc = store.get_broadcast(&id).await.unwrap();
    assert_eq!((bc.counts.total, bc.counts.pending, bc.counts.skipped, bc.counts.failed), (4, 2, 1, 1));
    assert_eq!(store.bulk_backlog().await.unwrap(), 2);

    // Live work is claimed apart from the bulk lane: the stop confirmation is live.
    let live = store.claim_lane("t", LANE_LIVE, 100, 60_000).await.unwrap();
    assert!(live.iter().all(|j| j.lane == LANE_LIVE));
    assert!(live.iter().any(|j| j.kind == okno_store::JobKind::Send));
    for job in live {
        store.complete_job(job.seq, "t").await.unwrap();
    }
    let jobs = store.claim_lane("t", LANE_BULK, 100, 60_000).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(!store.finish_broadcast(&id).await.unwrap(), "two messages still queued");
    let sent = jobs
        .iter()
        .map(|j| SentMessage { message_id: j.ref_id.clone().into(), external_id: None, seq: j.seq, unread_check: None })
        .collect();
    store.finish_sends(sent, "t").await.unwrap();
    assert!(store.finish_broadcast(&id).await.unwrap());
    let bc = store.get_broadcast(&id).await.unwrap();
    assert_eq!(bc.status, "done");
    assert_eq!((bc.counts.sent, bc.counts.pending), (2, 0));
    let skipped =
        store.broadcast_recipients(&id, Some("skipped".into()), PageRequest::new(Some(10), None)).await.unwrap();
    assert_eq!(skipped.items.len(), 1);
    assert_eq!(skipped.items[0].contact_id, c);
    assert_eq!(skipped.items[0].reason.as_deref(), Some("opted out of broadcasts"));
    let report = store.broadcast_report(&id).await.unwrap();
    assert_eq!(report.failed_by_reason, vec![("no identity on any channel".to_string(), 1)]);
    // Paged one by one, every person comes once.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.broadcast_recipients(&id, None, PageRequest::new(Some(1), cursor)).await.unwrap();
        seen.extend(page.items.into_iter().map(|r| r.contact_id));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, vec![a, b, c, nobody.id]);
}

async fn pause_resume_and_cancel(store: Arc<dyn Store>) {
    let ch = channel(&*store, "web").await;
    let people: Vec<ContactId> = futures_people(&*store, &ch, 4).await;
    let id = broadcast(&*store).await;
    store.expand_broadcast(&id, people.clone()).await.unwrap();
    assert_eq!(store.queue_broadcast(&id, vec![send(&people[0])]).await.unwrap(), 1);
    let paused = store.control_broadcast(&id, BroadcastAction::Pause).await.unwrap();
    assert_eq!(paused.status, "paused");
    assert_eq!(
        store.queue_broadcast(&id, vec![send(&people[1])]).await.unwrap(),
        0,
        "a paused broadcast queues nobody"
    );
    let err = store.control_broadcast(&id, BroadcastAction::Pause).await.unwrap_err();
    assert_eq!(err.code, "broadcast_state");
    let resumed = store.control_broadcast(&id, BroadcastAction::Resume).await.unwrap();
    assert_eq!(resumed.status, "running");
    assert_eq!(store.queue_broadcast(&id, vec![send(&people[1])]).await.unwrap(), 1);
    // One send is being sent right now (leased); the other is still waiting.
    let jobs = bulk_sends(&*store).await;
    assert_eq!(jobs.len(), 2);
    store.release_jobs("t").await.unwrap();
    let leased = store.claim_lane("t", LANE_BULK, 1, 60_000).await.unwrap();
    assert_eq!(leased.len(), 1);
    let cancelled = store.control_broadcast(&id, BroadcastAction::Cancel).await.unwrap();
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(cancelled.counts.cancelled, 3, "two never queued and one queued but not taken");
    assert_eq!(cancelled.counts.pending, 1, "the one being sent goes out");
    assert_eq!(store.bulk_backlog().await.unwrap(), 1);
    let err = store.control_broadcast(&id, BroadcastAction::Resume).await.unwrap_err();
    assert_eq!(err.code, "broadcast_state");
    assert!(store.get_broadcast("nope").await.unwrap_err().is_not_found());
}

async fn futures_people(store: &dyn Store, ch: &str, n: usize) -> Vec<ContactId> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(person(store, ch, &format!("p{i}")).await);
    }
    out
}

async fn answers_unsubscribe_and_fall_back(store: Arc<dyn Store>) {
    let ch = channel(&*store, "web").await;
    let other = channel(&*store, "second").await;
    let hook = store
        .create_webhook(NewWebhook {
            url: "https://example.org/hook".into(),
            events: vec![EventType::ButtonPressed],
            secret: "k".into(),
            created_by: None,
        })
        .await
        .unwrap();
    let a = person(&*store, &ch, "a").await;
    let b = person(&*store, &ch, "b").await;
    let c = person(&*store, &ch, "c").await;
    store
        .attach_identity(&c, &other, InboundSender { user_id: "c2".into(), chat_id: "c2".into(), ..Default::default() })
        .await
        .unwrap();
    store
        .update_contact(&c, ContactInput { preferred_channel_id: Some(ch.clone()), ..Default::default() })
        .await
        .unwrap();
    let id = broadcast(&*store).await;
    store.expand_broadcast(&id, vec![a.clone(), b.clone(), c.clone()]).await.unwrap();
    store.queue_broadcast(&id, vec![send(&a), send(&b), send(&c)]).await.unwrap();
    let jobs = bulk_sends(&*store).await;
    let msg_of = |contact: &str| {
        let contact = contact.to_string();
        let store = store.clone();
        async move {
            let r =
                store.broadcast_recipients(&id_of(&store).await, None, PageRequest::new(Some(10), None)).await.unwrap();
            MessageId::from(r.items.into_iter().find(|r| r.contact_id == contact).unwrap().message_id.unwrap())
        }
    };
    let (ma, mb, mc) = (msg_of(&a).await, msg_of(&b).await, msg_of(&c).await);
    for j in &jobs {
        if j.ref_id != mc {
            store
                .finish_sends(
                    vec![SentMessage {
                        message_id: j.ref_id.clone().into(),
                        external_id: None,
                        seq: j.seq,
                        unread_check: None,
                    }],
                    "t",
                )
                .await
                .unwrap();
        }
    }
    // c's first channel refuses for good: the message goes to c's other channel, in the bulk lane.
    let jc = jobs.iter().find(|j| j.ref_id == mc).unwrap();
    store.fail_send(&mc, "blocked by the user", Some(IdentityFlag::Blocked), jc.seq, "t").await.unwrap();
    let again = store.claim_lane("t", LANE_BULK, 10, 60_000).await.unwrap();
    assert_eq!(again.len(), 1);
    let moved = store.get_message(&MessageId::from(&again[0].ref_id)).await.unwrap();
    assert_eq!((moved.channel_id.as_str(), moved.status), (other.as_str(), MessageStatus::Queued));
    assert_eq!(moved.contact_id, c);

    // a answers with a button, b presses "unsubscribe".
    let mut press = message(&ch, "a", "press-a", "");
    press.text = None;
    press.button_data = Some("answer:5".into());
    press.reply_to = Some(ma.clone());
    store.record_inbound(press).await.unwrap();
    let mut press = message(&ch, "b", "press-b", "");
    press.text = None;
    press.button_data = Some("unsubscribe".into());
    press.reply_to = Some(mb.clone());
    press.subscription = Some(SubscriptionChange {
        subscribed: false, answer: "Вы отписались от рассылок.".into()
    });
    store.record_inbound(press).await.unwrap();
    assert!(store.get_contact(&b).await.unwrap().identities[0].opted_out);
    assert!(!store.get_contact(&a).await.unwrap().identities[0].opted_out);
    let report = store.broadcast_report(&id).await.unwrap();
    assert_eq!(report.answers, vec![("5".to_string(), 1)]);
    assert_eq!(report.unsubscribed, 1);
    let pressed = store.list_deliveries(&hook.id, PageRequest::new(Some(10), None)).await.unwrap();
    let bodies: Vec<_> = pressed.items.iter().map(|d| d.body["data"].clone()).collect();
    assert!(bodies.iter().any(|d| d["broadcast_id"] == json!(id) && d["answer"] == "5"), "{bodies:?}");
    // «подписаться» opts b back in.
    let mut sub = message(&ch, "b", "sub-b", "подписаться");
    sub.subscription = Some(SubscriptionChange {
        subscribed: true, answer: "Вы снова подписаны на рассылки.".into()
    });
    store.record_inbound(sub).await.unwrap();
    assert!(!store.get_contact(&b).await.unwrap().identities[0].opted_out);
}

async fn a_merged_contact_keeps_their_place(store: Arc<dyn Store>) {
    let ch = channel(&*store, "web").await;
    let a = person(&*store, &ch, "a").await;
    let b = person(&*store, &ch, "b").await;
    let c = person(&*store, &ch, "c").await;
    let id = broadcast(&*store).await;
    store.expand_broadcast(&id, vec![a.clone(), c.clone()]).await.unwrap();
    // a merged into b (not in the audience): b takes a's place.
    store.merge_contacts(&b, &a, None).await.unwrap();
    let pending = store.pending_recipients(&id, 10).await.unwrap();
    let ids: Vec<_> = pending.iter().map(|p| p.contact_id.clone()).collect();
    assert_eq!(ids, vec![b.clone(), c.clone()]);
    // c merged into b too: b is in the broadcast already, so c's place is dropped.
    store.merge_contacts(&b, &c, None).await.unwrap();
    let pending = store.pending_recipients(&id, 10).await.unwrap();
    assert_eq!(pending.iter().map(|p| p.contact_id.clone()).collect::<Vec<_>>(), vec![b.clone()]);
    let items = pending.iter().map(|p| send(&p.contact_id)).collect();
    assert_eq!(store.queue_broadcast(&id, items).await.unwrap(), 1);
    let bc = store.get_broadcast(&id).await.unwrap();
    assert_eq!((bc.counts.total, bc.counts.pending, bc.counts.skipped), (2, 1, 1));
}

async fn id_of(store: &Arc<dyn Store>) -> String {
    store.list_broadcasts(PageRequest::new(Some(1), None)).await.unwrap().items[0].id.clone()
}

okno_store::both_backends!(
    each_person_is_queued_once_and_opted_out_people_are_skipped,
    pause_resume_and_cancel,
    answers_unsubscribe_and_fall_back,
    a_merged_contact_keeps_their_place
);
