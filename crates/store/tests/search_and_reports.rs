//! Message search and report figures in the store, on SQLite and on the local PostgreSQL:
//! the text of any message in a conversation is found in any case and alphabet (and edited
//! text as edited), messages older than the index are found once the backfill ran, and the
//! report aggregates are exact for a known set of messages, answers and broadcasts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use okno_domain::ids::{ConversationId, MessageId};
use okno_domain::model::{ContactInput, ConversationStatus};
use okno_store::testing::{inbound_text as message, webhook_channel as channel, TestDb};
use okno_store::{
    BroadcastItem, ContactFilter, ConversationFilter, ConversationPatch, NewBroadcast, OutboundRequest, PageRequest,
    Recipient, SentMessage, Store, LANE_BULK, LANE_LIVE,
};
use serde_json::json;

/// Records an inbound message; returns (message id, conversation id).
async fn inbound(store: &dyn Store, ch: &str, user: &str, id: &str, text: &str) -> (MessageId, ConversationId) {
    let m = store.record_inbound(message(ch, user, id, text)).await.unwrap().message;
    (m.id, m.conversation_id)
}

async fn reply(store: &dyn Store, conv: &ConversationId, text: &str, author: &str) -> MessageId {
    let req = OutboundRequest {
        to: Recipient::Conversation(conv.clone()),
        channel_id: None,
        text: Some(text.into()),
        buttons: vec![],
        attachment_ids: vec![],
        idempotency_key: None,
        author: Some(author.into()),
        reply_to: None,
        options: json!({}),
    };
    store.enqueue_outbound(req).await.unwrap().0.id
}

async fn found(store: &dyn Store, text: &str) -> Vec<ConversationId> {
    let f = ConversationFilter { text: Some(text.into()), ..Default::default() };
    let mut ids: Vec<ConversationId> = store
        .list_conversations(f, PageRequest::new(Some(100), None))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    ids
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

async fn any_message_is_found_in_any_case_and_alphabet(store: Arc<dyn Store>, _db: &TestDb) {
    let ch = channel(&*store, "site").await;
    let (_, ann) = inbound(&*store, &ch, "ann", "a1", "Где мой Заказ №1042? 100% оплачен").await;
    reply(&*store, &ann, "Ваш заказ передан в доставку", "operator:anna").await;
    inbound(&*store, &ch, "ann", "a2", "Спасибо!").await;
    let (_, boris) = inbound(&*store, &ch, "boris", "b1", "ЗАКАЗ не пришёл").await;
    let (hello_id, carl) = inbound(&*store, &ch, "carl", "c1", "Hello, is anybody there?").await;

    let both = sorted(vec![ann.clone(), boris.clone()]);
    // Found before the trigram index caught up (SQLite reads the new rows with LIKE) and after.
    assert_eq!(found(&*store, "ЗАКАЗ").await, both);
    let caught = store.catch_up_search_index(3).await.unwrap() + store.catch_up_search_index(100).await.unwrap();
    let expected = if store.backend() == okno_store::Backend::Sqlite { 5 } else { 0 };
    assert_eq!(caught, expected, "five copies to add (SQLite); PostgreSQL keeps its own index");
    assert_eq!(store.catch_up_search_index(100).await.unwrap(), 0);
    assert_eq!(found(&*store, "заказ").await, both, "an older message, any case");
    assert_eq!(found(&*store, "ЗАКАЗ").await, both);
    assert_eq!(found(&*store, "  Заказ ").await, both, "blanks around are ignored");
    assert_eq!(found(&*store, "заказ №1042").await, vec![ann.clone()], "a phrase");
    assert_eq!(found(&*store, "ДОСТАВКУ").await, vec![ann.clone()], "an outbound message too");
    assert_eq!(found(&*store, "HELLO").await, vec![carl.clone()]);
    assert_eq!(found(&*store, "№1").await, vec![ann.clone()], "two characters");
    assert_eq!(found(&*store, "зА").await, both, "two characters, any case");
    assert_eq!(found(&*store, "%").await, vec![ann.clone()], "LIKE's wildcards are plain text");
    assert_eq!(found(&*store, "_").await, Vec::<String>::new());
    assert_eq!(found(&*store, "\"заказ").await, Vec::<String>::new(), "a quote is plain text too");
    assert_eq!(found(&*store, "нет такого").await, Vec::<String>::new());

    // With the other filters, and a page at a time.
    let open_only = ConversationFilter {
        text: Some("заказ".into()),
        status: Some(ConversationStatus::Resolved),
        ..Default::default()
    };
    assert!(store.list_conversations(open_only, PageRequest::new(Some(10), None)).await.unwrap().items.is_empty());
    let f = ConversationFilter { text: Some("заказ".into()), ..Default::default() };
    let first = store.list_conversations(f.clone(), PageRequest::new(Some(1), None)).await.unwrap();
    assert_eq!(first.items.len(), 1);
    let rest = store.list_conversations(f, PageRequest::new(Some(1), first.next)).await.unwrap();
    assert_eq!(sorted(vec![first.items[0].id.clone(), rest.items[0].id.clone()]), both);

    // A message after the index caught up is found too.
    let (_, dora) = inbound(&*store, &ch, "dora", "d1", "Где ЗАКАЗ?").await;
    assert_eq!(found(&*store, "заказ").await, sorted(vec![ann.clone(), boris.clone(), dora.clone()]));
    store.catch_up_search_index(100).await.unwrap();
    assert_eq!(found(&*store, "заказ").await.len(), 3);
    // An edit is searched as edited (in the index already, or not yet).
    store.record_edit(&ch, "carl", "c1", Some("Пока, ЗАКАЗ отменяю".into())).await.unwrap();
    assert_eq!(found(&*store, "hello").await, Vec::<String>::new());
    assert_eq!(found(&*store, "заказ").await.len(), 4);
    store.record_edit(&ch, "dora", "d1", Some("Где посылка?".into())).await.unwrap();
    assert_eq!(found(&*store, "заказ").await.len(), 3, "edited before it reached the index");
    store.catch_up_search_index(100).await.unwrap();
    assert_eq!(found(&*store, "посылка").await, vec![dora.clone()]);
    assert_eq!(found(&*store, "заказ").await.len(), 3);
    store.record_edit(&ch, "carl", "c1", None).await.unwrap();
    assert_eq!(found(&*store, "отменяю").await, Vec::<String>::new());
    assert_eq!(store.get_message(&hello_id).await.unwrap().text, None);

    // A merge keeps the messages findable in the conversation they moved to.
    let ann_contact = store.get_conversation(&ann).await.unwrap().contact.id;
    let boris_contact = store.get_conversation(&boris).await.unwrap().contact.id;
    store.merge_contacts(&ann_contact, &boris_contact, None).await.unwrap();
    let after = found(&*store, "не пришёл").await;
    assert_eq!(after.len(), 1);
    assert_eq!(store.get_conversation(&after[0]).await.unwrap().contact.id, ann_contact);
}

async fn messages_older_than_the_index_are_found_after_the_backfill(store: Arc<dyn Store>, db: &TestDb) {
    let ch = channel(&*store, "site").await;
    let mut convs = Vec::new();
    for n in 0..5 {
        convs.push(inbound(&*store, &ch, &format!("u{n}"), &format!("m{n}"), &format!("Старый ЗАКАЗ {n}")).await.1);
    }
    // Nothing to backfill on a database that started with the index.
    assert_eq!(store.backfill_search(100).await.unwrap(), 5, "the first pass reads what is there");
    assert_eq!(store.backfill_search(100).await.unwrap(), 0);
    // As an okno before the index left them: no copies, and the backfill still to run.
    db.execute_raw(&[
        "DELETE FROM message_search".to_string(),
        "INSERT INTO message_search_backfill (id, after) VALUES (1, '')".to_string(),
    ])
    .await;
    assert!(found(&*store, "заказ").await.is_empty());
    // A message written meanwhile is indexed with it, and not twice by the backfill.
    let (_, new) = inbound(&*store, &ch, "u9", "m9", "Новый заказ").await;
    let mut read = 0;
    loop {
        let n = store.backfill_search(2).await.unwrap();
        if n == 0 {
            break;
        }
        read += n;
    }
    assert_eq!(read, 6);
    convs.push(new);
    assert_eq!(found(&*store, "заказ").await, sorted(convs));
    assert_eq!(found(&*store, "старый заказ 3").await.len(), 1);
    while store.catch_up_search_index(2).await.unwrap() > 0 {}
    assert_eq!(found(&*store, "заказ").await.len(), 6, "the same once in the trigram index");
}

const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;

async fn report_figures_are_exact(store: Arc<dyn Store>, db: &TestDb) {
    let site = channel(&*store, "site").await;
    let tg = channel(&*store, "tg").await;
    // Three conversations; day 0 is 2026-03-02 (UTC), 10:00.
    let day0 = 20_514 * DAY;
    let t0 = day0 + 10 * 60 * MIN;
    let (x_in, x) = inbound(&*store, &site, "x", "x1", "Вопрос").await;
    let x_reply = reply(&*store, &x, "Ответ", "operator:anna").await;
    let (y_in, y) = inbound(&*store, &site, "y", "y1", "Вопрос").await;
    let y_reply = reply(&*store, &y, "Ответ", "operator:anna").await;
    let y_more = reply(&*store, &y, "Ещё", "operator:boris").await;
    let (z_in, z) = inbound(&*store, &tg, "z", "z1", "Вопрос").await;
    let z_bot = reply(&*store, &z, "Бот", "bot:menu").await;
    let z_reply = reply(&*store, &z, "Ответ", "operator:boris").await;
    let (w_in, _w) = inbound(&*store, &tg, "w", "w1", "Давно").await;
    for (conv, who) in [(&x, "anna"), (&y, "anna")] {
        let patch = ConversationPatch {
            status: Some(ConversationStatus::Resolved),
            assignee: Some(Some(who.into())),
            ..Default::default()
        };
        store.update_conversation(conv, patch).await.unwrap();
    }
    let at = |id: &str, ms: i64| format!("UPDATE messages SET created_at = {ms} WHERE id = '{id}'");
    db.execute_raw(&[
        at(&x_in, t0),
        at(&x_reply, t0 + MIN),
        at(&y_in, t0 + DAY),
        at(&y_reply, t0 + DAY + 3 * MIN),
        at(&y_more, t0 + DAY + 4 * MIN),
        at(&z_in, t0 + DAY),
        at(&z_bot, t0 + DAY + MIN),
        at(&z_reply, t0 + DAY + 2 * MIN),
        // Before the period: neither counted nor a first message.
        at(&w_in, day0 - DAY),
        format!("UPDATE conversations SET updated_at = {} WHERE id = '{x}'", t0 + 5 * MIN),
        format!("UPDATE conversations SET updated_at = {} WHERE id = '{y}'", t0 + DAY + 10 * MIN),
    ])
    .await;
    let (from, to) = (day0, day0 + 2 * DAY);

    let days = store.messages_per_day(from, to).await.unwrap();
    let got: Vec<(i64, &str, i64)> =
        days.iter().map(|d| (d.day - 20_514, if d.channel_id == site { "site" } else { "tg" }, d.messages)).collect();
    assert_eq!(got, [(0, "site", 2), (1, "site", 3), (1, "tg", 3)]);

    // anna answered x after 1 min and y after 3: median of two is the upper one; boris z after 2
    // (the bot's message does not count; boris's second message in y is not a first answer).
    let first = store.first_responses(from, to).await.unwrap();
    let first: Vec<(&str, i64, i64)> = first.iter().map(|f| (f.operator.as_str(), f.count, f.median_ms)).collect();
    assert_eq!(first, [("anna", 2, 3 * MIN), ("boris", 1, 2 * MIN)]);
    // x resolved 5 min after its first message, y 10 min after.
    let res = store.resolutions(from, to).await.unwrap();
    let res: Vec<(&str, i64, i64)> = res.iter().map(|f| (f.operator.as_str(), f.count, f.median_ms)).collect();
    assert_eq!(res, [("anna", 2, 10 * MIN)]);
    // A later period holds nothing.
    assert!(store.first_responses(to, to + DAY).await.unwrap().is_empty());
    assert!(store.messages_per_day(to, to + DAY).await.unwrap().is_empty());
}

async fn broadcast_results_count_each_outcome(store: Arc<dyn Store>, db: &TestDb) {
    let ch = channel(&*store, "site").await;
    let mut people = Vec::new();
    for u in ["a", "b", "c", "d"] {
        people.push(
            store.record_inbound(message(&ch, u, &format!("hi-{u}"), "Здравствуйте")).await.unwrap().message.contact_id,
        );
    }
    let new = |name: &str| NewBroadcast {
        name: name.into(),
        spec: json!({"text": "Скидка"}),
        send_at: None,
        created_by: None,
    };
    let id = store.create_broadcast(new("Акция")).await.unwrap().id;
    let old = store.create_broadcast(new("Прошлогодняя")).await.unwrap().id;
    db.execute_raw(&[format!("UPDATE broadcasts SET created_at = 1000 WHERE id = '{old}'")]).await;
    store.expand_broadcast(&id, people.clone()).await.unwrap();
    let send = |c: &str| BroadcastItem::Send {
        contact_id: c.into(),
        text: "Скидка".into(),
        buttons: vec![],
        attachment_ids: vec![],
        options: serde_json::json!({}),
    };
    let items = vec![
        send(&people[0]),
        send(&people[1]),
        send(&people[2]),
        BroadcastItem::Fail { contact_id: people[3].clone(), reason: "the template failed".into() },
    ];
    store.queue_broadcast(&id, items).await.unwrap();
    for job in store.claim_lane("t", LANE_LIVE, 100, 60_000).await.unwrap() {
        store.complete_job(job.seq, "t").await.unwrap();
    }
    let recipients = store.broadcast_recipients(&id, None, PageRequest::new(Some(10), None)).await.unwrap().items;
    let msg =
        |c: &str| MessageId::from(recipients.iter().find(|r| r.contact_id == c).unwrap().message_id.clone().unwrap());
    let (ma, mb) = (msg(&people[0]), msg(&people[1]));
    for job in store.claim_lane("t", LANE_BULK, 100, 60_000).await.unwrap() {
        if job.ref_id == ma || job.ref_id == mb {
            store
                .finish_sends(
                    vec![SentMessage {
                        message_id: job.ref_id.into(),
                        external_id: None,
                        seq: job.seq,
                        unread_check: None,
                    }],
                    "t",
                )
                .await
                .unwrap();
        }
    }
    // a answers with a button, b presses "unsubscribe".
    for (user, data, reply_to) in [("a", "answer:yes", &ma), ("b", "unsubscribe", &mb)] {
        let mut press = message(&ch, user, &format!("press-{user}"), "");
        press.text = None;
        press.button_data = Some(data.into());
        press.reply_to = Some(reply_to.clone());
        store.record_inbound(press).await.unwrap();
    }

    let results = store.broadcast_results(10_000, okno_domain::time::now_ms() + 1, 10).await.unwrap();
    assert_eq!(results.len(), 1, "the old one is outside the period");
    let r = &results[0];
    assert_eq!((r.name.as_str(), r.status.as_str()), ("Акция", "running"));
    assert_eq!((r.total, r.sent, r.failed, r.pending, r.skipped, r.answered, r.unsubscribed), (4, 2, 1, 1, 0, 1, 1));
    // The same as the broadcast's own report.
    let report = store.broadcast_report(&id).await.unwrap();
    assert_eq!((report.counts.sent, report.counts.failed, report.counts.pending), (r.sent, r.failed, r.pending));
    assert_eq!(store.broadcast_results(0, 2_000, 10).await.unwrap()[0].id, old);
}

/// A search limited to names and external ids (for a role that may not see phones and
/// emails) finds in any case and alphabet, never by a phone or an email, and fills its page
/// with people it may show: a name match is not hidden behind phone-only matches.
async fn a_name_only_search_never_finds_by_phone_or_email(store: Arc<dyn Store>, _db: &TestDb) {
    let contact = |name: Option<&str>, phone: Option<&str>, email: Option<&str>, ext: Option<&str>| ContactInput {
        name: name.map(str::to_string),
        phone: phone.map(str::to_string),
        email: email.map(str::to_string),
        external_id: ext.map(str::to_string),
        ..Default::default()
    };
    // Eleven people whose phone holds «77», made first (the list is in id order).
    for n in 0..11 {
        let phone = format!("+7912000{n:02}77");
        store.upsert_contact(contact(None, Some(&phone), None, None)).await.unwrap();
    }
    let olga = store
        .upsert_contact(contact(Some("ОЛЬГА Касса 77"), Some("+79990001122"), Some("kassa77@example.org"), None))
        .await
        .unwrap()
        .0
        .id;
    let ext = store
        .upsert_contact(contact(Some("Склад"), Some("+79990003344"), Some("sklad@example.org"), Some("1С-Склад-77")))
        .await
        .unwrap()
        .0
        .id;
    let find = |q: &str, names_only: bool, limit: u32| {
        let filter = ContactFilter { q: Some(q.into()), q_names_only: names_only, ..Default::default() };
        let store = store.clone();
        async move {
            let page = store.find_contacts(filter, PageRequest::new(Some(limit), None)).await.unwrap();
            page.items.into_iter().map(|c| c.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(find("77", true, 11).await, vec![olga.clone(), ext.clone()], "the name and the external id");
    assert_eq!(find("77", false, 50).await.len(), 13, "everyone, by any field");
    assert_eq!(find("ольга", true, 10).await, vec![olga.clone()], "any case, in Cyrillic too");
    assert_eq!(find("с-склад", true, 10).await, vec![ext.clone()], "the external id, any case");
    assert!(find("0001122", true, 10).await.is_empty(), "not by a phone");
    assert!(find("kassa77@", true, 10).await.is_empty(), "not by an email");
    assert!(find("склад +7999", true, 10).await.is_empty(), "not across fields");
    assert_eq!(find("склад +7999", false, 10).await, vec![ext.clone()]);
    assert_eq!(find("0001122", false, 10).await, vec![olga]);
}

okno_store::both_backends!(
    with_db
    a_name_only_search_never_finds_by_phone_or_email,
    any_message_is_found_in_any_case_and_alphabet,
    messages_older_than_the_index_are_found_after_the_backfill,
    report_figures_are_exact,
    broadcast_results_count_each_outcome,
);
