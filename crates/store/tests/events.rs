//! Business events in the store, on SQLite and on the local PostgreSQL: the list (newest
//! first, filters, pages, the figures of who got a message), and what is kept to explain an
//! event — each rule's outcome, each unreachable recipient's reason code, the contact and the
//! conversation of each delivery.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use okno_domain::ids::MessageId;
use okno_domain::model::ContactInput;
use okno_domain::surveys::SurveySpec;
use okno_store::testing::{inbound_text as message, webhook_channel as channel, TestDb};
use okno_store::{
    EventFilter, IdentityFlag, JobKind, NewEvent, NewRun, NotMade, Notification, NotifyOutcome, PageRequest, Processed,
    RuleOutcome, Store, SurveyStart, Unresolved,
};
use serde_json::json;

async fn event(store: &dyn Store, event_type: &str, key: &str) -> String {
    let new = NewEvent { event_type: event_type.into(), key: key.into(), data: json!({"key": key}), send_at: None };
    store.accept_event(new).await.unwrap().0.id
}

fn note(event_id: &str, rule_id: &str, contact_id: &str) -> Notification {
    Notification {
        event_id: event_id.into(),
        rule_id: rule_id.into(),
        contact_id: contact_id.into(),
        recipient: format!("contact {contact_id}"),
        text: "Оплата получена".into(),
        buttons: vec![],
        attachment_ids: vec![],
        options: serde_json::json!({}),
    }
}

async fn events_are_listed_newest_first_filtered_paged_and_counted(store: Arc<dyn Store>, db: &TestDb) {
    let ch = channel(&*store, "site").await;
    let ann = store.record_inbound(message(&ch, "ann", "m-ann", "hi")).await.unwrap().message.contact_id;
    let bob = store.record_inbound(message(&ch, "bob", "m-bob", "hi")).await.unwrap().message.contact_id;
    let cid = store.record_inbound(message(&ch, "cid", "m-cid", "hi")).await.unwrap().message.contact_id;
    let (lonely, _) =
        store.upsert_contact(ContactInput { name: Some("Без связи".into()), ..Default::default() }).await.unwrap();

    let paid = event(&*store, "payment.received", "pay-1").await;
    let shipped = event(&*store, "order.shipped", "ship-1").await;
    let paid2 = event(&*store, "payment.received", "pay-2").await;
    let later = store
        .accept_event(NewEvent {
            event_type: "order.shipped".into(),
            key: "ship-later".into(),
            data: json!({}),
            send_at: Some(okno_domain::time::now_ms() + 3_600_000),
        })
        .await
        .unwrap()
        .0
        .id;
    // Known times, so the time filter is exact whatever the clock did between the inserts.
    for (id, at) in [(&paid, 1_000), (&shipped, 2_000), (&paid2, 3_000), (&later, 4_000)] {
        db.execute_raw(&[format!("UPDATE events SET created_at = {at} WHERE id = '{id}'")]).await;
    }

    // What became of `paid`: ann sent, bob failed, cid queued, a template failure, two unreachable.
    let rule = store.put_rule("оплата", "payment.received", json!({"template": "x"})).await.unwrap();
    let outcomes = store
        .notify_all(vec![note(&paid, &rule.id, &ann), note(&paid, &rule.id, &bob), note(&paid, &rule.id, &cid)])
        .await
        .unwrap();
    let ids: Vec<MessageId> = outcomes
        .iter()
        .map(|o| match o {
            NotifyOutcome::Queued(m) => m.id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    store.mark_sent(&ids[0], Some("p-1".into())).await.unwrap();
    store.mark_failed(&ids[1], "Bad Request: chat not found", None).await.unwrap();
    let not_made = NotMade {
        rule_id: rule.id.clone(),
        contact_id: lonely.id.to_string(),
        code: "template_failed".into(),
        error: "the template could not be rendered".into(),
    };
    let unknown = Unresolved {
        rule_id: rule.id.clone(),
        recipient: "{\"external_id\": \"{{ data.manager_id }}\"}".into(),
        reason: "unknown external id `1c-manager-petrov`".into(),
        code: Some("unknown_external_id".into()),
        value: Some("1c-manager-petrov".into()),
        contact_id: None,
    };
    // A note about the rule, not a person left out: not counted.
    let note_only = Unresolved {
        rule_id: rule.id.clone(),
        recipient: "condition".into(),
        reason: "the condition could not be evaluated".into(),
        code: Some("condition_error".into()),
        ..Default::default()
    };
    let done = Processed {
        rules: vec![RuleOutcome::new(&rule.id, &rule.name, "matched")],
        unresolved: vec![unknown, note_only],
        not_made: vec![not_made],
        ..Default::default()
    };
    let job = store.claim_jobs("w", 100, 60_000).await.unwrap().into_iter().find(|j| j.ref_id == paid).unwrap();
    store.complete_event(&paid, "processed", done, job.seq, "w").await.unwrap();

    let all = |limit| store.list_events(EventFilter::default(), PageRequest::new(Some(limit), None));
    let page = all(10).await.unwrap();
    let order: Vec<&str> = page.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(order, vec![later.as_str(), paid2.as_str(), shipped.as_str(), paid.as_str()], "newest first");
    assert!(page.next.is_none());
    let first = page.items.iter().find(|e| e.id == paid).unwrap();
    assert_eq!(
        (first.event_type.as_str(), first.key.as_str(), first.status.as_str()),
        ("payment.received", "pay-1", "processed")
    );
    assert_eq!(first.data["key"], "pay-1");
    assert_eq!(first.matched_rules, 1);
    assert_eq!(
        (first.counts.sent, first.counts.queued, first.counts.failed, first.counts.unresolved),
        (1, 1, 2, 1),
        "ann sent, cid queued, bob's failure and the template failure, the unknown external id"
    );
    let quiet = page.items.iter().find(|e| e.id == shipped).unwrap();
    assert_eq!((quiet.counts.sent, quiet.counts.failed, quiet.matched_rules), (0, 0, 0));
    assert_eq!(page.items[0].status, "scheduled");
    assert!(page.items[0].send_at.is_some());

    // Pages of two: the cursor goes on where the first page ended, and the last has no next.
    let one = all(2).await.unwrap();
    assert_eq!(one.items.len(), 2);
    let cursor = one.next.clone().expect("more");
    let two = store.list_events(EventFilter::default(), PageRequest::new(Some(2), Some(cursor))).await.unwrap();
    assert_eq!(two.items.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec![shipped.as_str(), paid.as_str()]);
    assert!(two.next.is_none());

    let list = |filter: EventFilter| async {
        let page = store.list_events(filter, PageRequest::new(Some(50), None)).await.unwrap();
        page.items.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    let of_type = EventFilter { event_type: Some("payment.received".into()), ..Default::default() };
    assert_eq!(list(of_type).await, vec![paid2.clone(), paid.clone()]);
    let processed = EventFilter { status: Some("processed".into()), ..Default::default() };
    assert_eq!(list(processed).await, vec![paid.clone()]);
    let by_key = EventFilter { key: Some("ship-1".into()), ..Default::default() };
    assert_eq!(list(by_key).await, vec![shipped.clone()]);
    let window = EventFilter { from: Some(2_000), to: Some(4_000), ..Default::default() };
    assert_eq!(list(window).await, vec![paid2.clone(), shipped.clone()], "from is inclusive, to is not");
    let both = EventFilter { event_type: Some("order.shipped".into()), from: Some(3_000), ..Default::default() };
    assert_eq!(list(both).await, vec![later.clone()]);
    let bad = EventFilter { status: Some("done".into()), ..Default::default() };
    let err = store.list_events(bad, PageRequest::new(None, None)).await.unwrap_err();
    assert_eq!(err.code, "invalid_status");
}

async fn an_event_keeps_rule_outcomes_reason_codes_and_where_each_message_went(store: Arc<dyn Store>, db: &TestDb) {
    let web = channel(&*store, "site").await;
    let tg = channel(&*store, "telegram").await;
    let ann = store.record_inbound(message(&web, "ann", "m-1", "hi")).await.unwrap().message;
    store.record_inbound(message(&tg, "ann-tg", "m-2", "hi")).await.unwrap();
    // Ann on two channels, merged into one contact.
    let tg_contact = store.record_inbound(message(&tg, "ann-tg", "m-3", "again")).await.unwrap().message.contact_id;
    store.merge_contacts(&ann.contact_id, &tg_contact, None).await.unwrap();
    let (lonely, _) =
        store.upsert_contact(ContactInput { name: Some("Без связи".into()), ..Default::default() }).await.unwrap();
    let blocked = store.record_inbound(message(&web, "bob", "m-4", "hi")).await.unwrap().message.contact_id;
    store.set_identity_blocked(&web, "bob", true).await.unwrap();

    let ev = event(&*store, "order.shipped", "ord-1").await;
    let sends = store.put_rule("отгрузка", "order.shipped", json!({"template": "x"})).await.unwrap();
    let quiet = store.put_rule("крупная отгрузка", "order.shipped", json!({"template": "y"})).await.unwrap();
    let later = store.put_rule("напоминание", "order.shipped", json!({"template": "z"})).await.unwrap();
    let run_at = okno_domain::time::now_ms() + 86_400_000;
    let rules = vec![
        RuleOutcome::new(&sends.id, &sends.name, "matched"),
        RuleOutcome {
            detail: Some("data.total > 100000".into()),
            ..RuleOutcome::new(&quiet.id, &quiet.name, "not_matched")
        },
        RuleOutcome { run_at: Some(run_at), ..RuleOutcome::new(&later.id, &later.name, "scheduled") },
    ];
    let job = store.claim_jobs("w", 100, 60_000).await.unwrap().into_iter().find(|j| j.ref_id == ev).unwrap();
    let ns =
        vec![note(&ev, &sends.id, &ann.contact_id), note(&ev, &sends.id, &lonely.id), note(&ev, &sends.id, &blocked)];
    let done = Processed { notifications: ns, rules, ..Default::default() };
    let (outcomes, held) = store.complete_event(&ev, "processed", done, job.seq, "w").await.unwrap();
    assert!(held);
    let NotifyOutcome::Queued(first) = &outcomes[0] else { panic!("{:?}", outcomes[0]) };

    let record = store.get_event(&ev).await.unwrap();
    let rules: Vec<(&str, &str, Option<&str>)> =
        record.rules.iter().map(|r| (r.rule_name.as_str(), r.outcome.as_str(), r.detail.as_deref())).collect();
    assert_eq!(rules.len(), 3);
    assert!(rules.contains(&("отгрузка", "matched", None)));
    assert!(rules.contains(&("крупная отгрузка", "not_matched", Some("data.total > 100000"))), "{rules:?}");
    let scheduled = record.rules.iter().find(|r| r.rule_id == later.id).unwrap();
    assert_eq!((scheduled.outcome.as_str(), scheduled.run_at), ("scheduled", Some(run_at)));

    let d = &record.deliveries[0];
    assert_eq!(d.contact_id, ann.contact_id);
    assert_eq!(d.conversation_id.as_deref(), Some(first.conversation_id.as_str()), "a link to the conversation");
    assert_eq!(d.tried, vec![first.channel_id.clone()]);
    let reasons: Vec<(Option<&str>, Option<&str>)> =
        record.unresolved.iter().map(|u| (u.code.as_deref(), u.contact_id.as_deref())).collect();
    assert_eq!(
        reasons,
        vec![(Some("no_identity"), Some(lonely.id.as_str())), (Some("blocked"), Some(blocked.as_str()))],
        "the store names the reason and the contact"
    );

    // Refused for good on the first channel: the next one is tried and both are listed.
    store.mark_failed(&first.id, "Forbidden: bot was blocked by the user", Some(IdentityFlag::Blocked)).await.unwrap();
    let record = store.get_event(&ev).await.unwrap();
    assert_eq!(record.deliveries[0].tried.len(), 2, "{:?}", record.deliveries[0]);
    assert_ne!(record.deliveries[0].tried[0], record.deliveries[0].tried[1]);

    // The delayed rule's job was queued with its outcome, at its time.
    let delayed = format!("{ev}:{}", later.id);
    db.execute_raw(&[format!("UPDATE jobs SET run_at = 0 WHERE ref_id = '{delayed}'")]).await;
    let jobs = store.claim_jobs("w", 100, 60_000).await.unwrap();
    let turn: Vec<_> = jobs.iter().filter(|j| j.ref_id == delayed).collect();
    assert_eq!(turn.len(), 1, "one job for the delayed rule: {jobs:?}");
    assert_eq!(turn[0].kind, JobKind::NotifyRule);

    // The delayed rule's turn: matched, its time kept; its person queued in the same step.
    let (stranger, _) =
        store.upsert_contact(ContactInput { name: Some("Новый".into()), ..Default::default() }).await.unwrap();
    let sender = okno_store::InboundSender { user_id: "new".into(), chat_id: "new".into(), ..Default::default() };
    store.attach_identity(&stranger.id, &web, sender).await.unwrap();
    let turn_done = || Processed {
        notifications: vec![note(&ev, &later.id, &stranger.id)],
        rules: vec![RuleOutcome::new(&later.id, &later.name, "matched")],
        unresolved: vec![Unresolved {
            rule_id: later.id.clone(),
            recipient: "{\"group\": \"склад\"}".into(),
            reason: "group `склад` has no contacts".into(),
            code: Some("empty_group".into()),
            value: Some("склад".into()),
            contact_id: None,
        }],
        ..Default::default()
    };
    let (out, held) = store.complete_rule(&ev, turn_done(), turn[0].seq, "w").await.unwrap();
    assert!(held, "the rule's job ends with it");
    assert!(matches!(out[0], NotifyOutcome::Queued(_)));
    // Run again (another worker after a lost lease): nothing is written twice.
    let (again, _) = store.complete_rule(&ev, turn_done(), turn[0].seq, "w").await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    let record = store.get_event(&ev).await.unwrap();
    let ran = record.rules.iter().find(|r| r.rule_id == later.id).unwrap();
    assert_eq!((ran.outcome.as_str(), ran.run_at), ("matched", Some(run_at)));
    assert_eq!(record.rules.len(), 3, "replaced, not added");
    assert_eq!(record.deliveries.iter().filter(|d| d.contact_id == stranger.id).count(), 1);
    assert_eq!(record.unresolved.iter().filter(|u| u.code.as_deref() == Some("empty_group")).count(), 1);

    // A template failure keeps its code; a second failure for the same person changes nothing.
    let ev2 = event(&*store, "order.shipped", "ord-2").await;
    let failed = |code: &str, error: &str| NotMade {
        rule_id: sends.id.clone(),
        contact_id: lonely.id.to_string(),
        code: code.into(),
        error: error.into(),
    };
    let done = Processed {
        not_made: vec![failed("template_failed", "line 2: no field"), failed("attachment_failed", "other")],
        rules: vec![RuleOutcome::new(&sends.id, &sends.name, "matched")],
        ..Default::default()
    };
    let job = store.claim_jobs("w", 100, 60_000).await.unwrap().into_iter().find(|j| j.ref_id == ev2).unwrap();
    store.complete_event(&ev2, "processed", done, job.seq, "w").await.unwrap();
    let record = store.get_event(&ev2).await.unwrap();
    assert_eq!(record.deliveries.len(), 1);
    let d = &record.deliveries[0];
    assert_eq!(
        (d.status.as_str(), d.code.as_deref(), d.error.as_deref()),
        ("failed", Some("template_failed"), Some("line 2: no field"))
    );
    assert!(d.conversation_id.is_none() && d.tried.is_empty());
}

/// An event's processing completed twice with the same outcome — a retry after the first
/// commit, or a second worker after a lost lease — writes everything once: the person's
/// message, the unreached recipients and the notes, the rules' outcomes, the delayed rule's job.
async fn completing_an_event_twice_writes_everything_once(store: Arc<dyn Store>, db: &TestDb) {
    let web = channel(&*store, "site").await;
    let ann = store.record_inbound(message(&web, "ann", "m-1", "hi")).await.unwrap().message.contact_id;
    let (lonely, _) =
        store.upsert_contact(ContactInput { name: Some("Без связи".into()), ..Default::default() }).await.unwrap();
    let ev = event(&*store, "payment.received", "pay-7").await;
    let rule = store.put_rule("оплата", "payment.received", json!({"template": "x"})).await.unwrap();
    let later = store.put_rule("напоминание", "payment.received", json!({"template": "z"})).await.unwrap();
    let survey = SurveySpec::parse(&json!({
        "name": "Оценка", "questions": [{"id": "q", "text": "Как всё прошло?", "kind": "text"}],
    }))
    .unwrap();
    let survey = store.create_survey(survey).await.unwrap();
    let runs = |who: &[&str]| {
        who.iter().map(|c| NewRun { contact_id: (*c).into(), key: format!("event:{ev}") }).collect::<Vec<_>>()
    };
    let done = || Processed {
        surveys: vec![SurveyStart { survey_id: survey.id.clone(), runs: runs(&[&ann, &lonely.id]) }],
        notifications: vec![note(&ev, &rule.id, &ann), note(&ev, &rule.id, &lonely.id)],
        rules: vec![
            RuleOutcome::new(&rule.id, &rule.name, "matched"),
            RuleOutcome {
                run_at: Some(okno_domain::time::now_ms() + 3_600_000),
                ..RuleOutcome::new(&later.id, &later.name, "scheduled")
            },
        ],
        unresolved: vec![Unresolved {
            rule_id: rule.id.clone(),
            recipient: "{\"external_id\": \"1c-9\"}".into(),
            reason: "unknown external id `1c-9`".into(),
            code: Some("unknown_external_id".into()),
            value: Some("1c-9".into()),
            contact_id: None,
        }],
        ..Default::default()
    };
    let job = store.claim_jobs("w", 100, 60_000).await.unwrap().into_iter().find(|j| j.ref_id == ev).unwrap();
    let (first, held) = store.complete_event(&ev, "processed", done(), job.seq, "w").await.unwrap();
    assert!(held);
    assert!(matches!(first[0], NotifyOutcome::Queued(_)));
    let (second, held) = store.complete_event(&ev, "processed", done(), job.seq, "w").await.unwrap();
    assert!(second.is_empty() && !held, "the second completion writes nothing: {second:?}");

    let record = store.get_event(&ev).await.unwrap();
    assert_eq!(record.deliveries.len(), 1, "{:?}", record.deliveries);
    let mut codes: Vec<Option<&str>> = record.unresolved.iter().map(|u| u.code.as_deref()).collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![Some("no_identity"), Some("unknown_external_id"), Some("unreachable")],
        "each unreached person once, the survey's too"
    );
    let started = store.survey_run_counts(&survey.id).await.unwrap();
    assert_eq!((started.total, started.active, started.unreachable), (2, 1, 1), "{started:?}");
    assert_eq!(record.rules.len(), 2);
    let listed = store.list_events(EventFilter::default(), PageRequest::new(Some(10), None)).await.unwrap();
    let counts = &listed.items.iter().find(|e| e.id == ev).unwrap().counts;
    assert_eq!((counts.queued, counts.unresolved), (1, 3), "the figures count each person once");
    let delayed = format!("{ev}:{}", later.id);
    db.execute_raw(&[format!("UPDATE jobs SET run_at = 0 WHERE ref_id = '{delayed}'")]).await;
    let jobs = store.claim_jobs("w2", 100, 60_000).await.unwrap();
    assert_eq!(jobs.iter().filter(|j| j.ref_id == delayed).count(), 1, "one job for the delayed rule");
}

/// A delayed rule that ran before its event's own processing committed (its job from an
/// earlier run) stays `matched`: the event's later `scheduled` does not cover it, and the job
/// queued with that `scheduled` finds the rule done and writes nothing.
async fn a_delayed_rule_that_ran_before_the_event_completed_stays_matched(store: Arc<dyn Store>, db: &TestDb) {
    let web = channel(&*store, "site").await;
    let ann = store.record_inbound(message(&web, "ann", "m-1", "hi")).await.unwrap().message.contact_id;
    let ev = event(&*store, "visit.booked", "visit-1").await;
    let later = store.put_rule("напоминание", "visit.booked", json!({"template": "z"})).await.unwrap();
    let ran = Processed {
        notifications: vec![note(&ev, &later.id, &ann)],
        rules: vec![RuleOutcome::new(&later.id, &later.name, "matched")],
        ..Default::default()
    };
    let (out, _) = store.complete_rule(&ev, ran, -1, "w").await.unwrap();
    assert!(matches!(out[0], NotifyOutcome::Queued(_)));

    let run_at = okno_domain::time::now_ms() + 60_000;
    let done = Processed {
        rules: vec![RuleOutcome { run_at: Some(run_at), ..RuleOutcome::new(&later.id, &later.name, "scheduled") }],
        ..Default::default()
    };
    let job = store.claim_jobs("w", 100, 60_000).await.unwrap().into_iter().find(|j| j.ref_id == ev).unwrap();
    store.complete_event(&ev, "processed", done, job.seq, "w").await.unwrap();
    let record = store.get_event(&ev).await.unwrap();
    assert_eq!(record.rules.len(), 1);
    assert_eq!(record.rules[0].outcome, "matched", "never shown as waiting once it ran");

    // Its second turn writes nothing.
    let delayed = format!("{ev}:{}", later.id);
    db.execute_raw(&[format!("UPDATE jobs SET run_at = 0 WHERE ref_id = '{delayed}'")]).await;
    let job = store.claim_jobs("w", 100, 60_000).await.unwrap().into_iter().find(|j| j.ref_id == delayed).unwrap();
    let again = Processed {
        notifications: vec![note(&ev, &later.id, &ann)],
        rules: vec![RuleOutcome::new(&later.id, &later.name, "matched")],
        ..Default::default()
    };
    let (out, held) = store.complete_rule(&ev, again, job.seq, "w").await.unwrap();
    assert!(out.is_empty() && held, "{out:?}");
    assert_eq!(store.get_event(&ev).await.unwrap().deliveries.len(), 1);
}

okno_store::both_backends!(
    with_db events_are_listed_newest_first_filtered_paged_and_counted,
    an_event_keeps_rule_outcomes_reason_codes_and_where_each_message_went,
    completing_an_event_twice_writes_everything_once,
    a_delayed_rule_that_ran_before_the_event_completed_stays_matched,
);
