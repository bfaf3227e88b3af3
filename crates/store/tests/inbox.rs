//! The inbox's order and a button press's label in the store, on SQLite and on the local
//! PostgreSQL: conversations are ordered by their last message (inbound or outbound) and never
//! by reading, status changes, notes or delivery receipts; reading clears the unread count and
//! nothing else; paging while messages arrive never shows a conversation twice nor loses one
//! that kept its place; a press keeps the label of the button it pressed even after that
//! message's buttons are gone; a notification names the rule that sent it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use okno_domain::ids::ConversationId;
use okno_domain::model::{Button, ConversationStatus, Message};
use okno_store::testing::{inbound_text, webhook_channel};
use okno_store::{
    ConversationFilter, ConversationPatch, InboundMessage, NewEvent, Notification, NotifyOutcome, OutboundRequest,
    PageRequest, Recipient, Store,
};
use serde_json::json;

/// Lets the clock move on, so two writes get different millisecond times and an order by time
/// is observable (the store breaks ties by id, which would hide a wrong order).
async fn tick() {
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
}

/// The conversation ids of the whole inbox, first to last, in pages of 50.
async fn inbox(store: &dyn Store) -> Vec<ConversationId> {
    let page = store.list_conversations(ConversationFilter::default(), PageRequest::new(Some(50), None)).await.unwrap();
    assert!(page.next.is_none());
    page.items.into_iter().map(|c| c.id).collect()
}

async fn write(store: &dyn Store, ch: &str, user: &str, id: &str, text: &str) -> Message {
    store.record_inbound(inbound_text(ch, user, id, text)).await.unwrap().message
}

fn reply(conv: &str, text: &str, buttons: Vec<Vec<Button>>) -> OutboundRequest {
    OutboundRequest {
        to: Recipient::Conversation(conv.into()),
        channel_id: None,
        text: Some(text.into()),
        buttons,
        attachment_ids: vec![],
        idempotency_key: None,
        author: Some("operator:anna".into()),
        reply_to: None,
        options: json!({}),
    }
}

fn button(text: &str, data: &str) -> Button {
    Button { text: text.into(), data: Some(data.into()), url: None }
}

async fn the_inbox_follows_the_last_message_and_bookkeeping_moves_nothing(store: Arc<dyn Store>) {
    let ch = webhook_channel(&*store, "site").await;
    let a = write(&*store, &ch, "u-a", "a-1", "first").await.conversation_id;
    tick().await;
    let b = write(&*store, &ch, "u-b", "b-1", "second").await.conversation_id;
    tick().await;
    let c_msg = write(&*store, &ch, "u-c", "c-1", "third").await;
    let c = c_msg.conversation_id.clone();
    assert_eq!(inbox(&*store).await, [c.as_str(), b.as_str(), a.as_str()], "newest message first");
    let shown = store.get_conversation(&c).await.unwrap();
    assert_eq!(shown.last_message_at, c_msg.created_at, "the list shows the last message's time");
    assert_eq!(shown.unread, 1);

    // Reading the oldest: its unread count clears, and nothing else moves, not even its time
    // of last change.
    tick().await;
    let before = store.get_conversation(&a).await.unwrap();
    let read =
        store.update_conversation(&a, ConversationPatch { mark_read: true, ..Default::default() }).await.unwrap();
    assert_eq!(read.unread, 0);
    assert_eq!((read.last_message_at, read.updated_at), (before.last_message_at, before.updated_at));
    assert_eq!(inbox(&*store).await, [c.as_str(), b.as_str(), a.as_str()], "reading did not move it");

    // Assigning, labelling, resolving, a note, a delivery receipt: changes, not messages.
    tick().await;
    let changed = store
        .update_conversation(
            &a,
            ConversationPatch {
                assignee: Some(Some("anna".into())),
                labels: Some(vec!["vip".into()]),
                status: Some(ConversationStatus::Resolved),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(changed.updated_at > before.updated_at, "a change is a change");
    assert_eq!(changed.last_message_at, before.last_message_at);
    store.add_note(&b, "operator:anna", "call back tomorrow").await.unwrap();
    assert_eq!(inbox(&*store).await, [c.as_str(), b.as_str(), a.as_str()], "bookkeeping did not move anything");

    // An operator's answer is a message: it brings its conversation up, with its time.
    tick().await;
    let (sent, _) = store.enqueue_outbound(reply(&a, "Готово", vec![])).await.unwrap();
    assert_eq!(inbox(&*store).await, [a.as_str(), c.as_str(), b.as_str()]);
    let a_now = store.get_conversation(&a).await.unwrap();
    assert_eq!(a_now.last_message_at, sent.created_at);
    assert_eq!(a_now.unread, 0, "an answer leaves the count alone");
    tick().await;
    store.mark_sent(&sent.id, Some("ext-1".into())).await.unwrap();
    assert_eq!(
        store.get_conversation(&a).await.unwrap().last_message_at,
        sent.created_at,
        "a receipt is not a message"
    );

    // The person writes again: up it goes, unread.
    tick().await;
    let again = write(&*store, &ch, "u-b", "b-2", "still there?").await;
    assert_eq!(inbox(&*store).await, [b.as_str(), a.as_str(), c.as_str()]);
    let b_now = store.get_conversation(&b).await.unwrap();
    assert_eq!((b_now.last_message_at, b_now.unread), (again.created_at, 2));

    // Filters keep the same order.
    let open = store
        .list_conversations(
            ConversationFilter { status: Some(ConversationStatus::Open), ..Default::default() },
            PageRequest::new(Some(10), None),
        )
        .await
        .unwrap();
    assert_eq!(open.items.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [b.as_str(), c.as_str()]);

    // A merge keeps the newer of the two last messages.
    let contact_a = store.get_conversation(&a).await.unwrap().contact.id;
    let contact_b = b_now.contact.id.clone();
    store.merge_contacts(&contact_a, &contact_b, None).await.unwrap();
    let merged = store.get_conversation(&a).await.unwrap();
    assert_eq!(merged.last_message_at, again.created_at, "the other's newer message counts");
    assert_eq!(inbox(&*store).await, [a.as_str(), c.as_str()]);
}

async fn paging_while_messages_arrive_repeats_nothing_and_loses_nothing_that_kept_its_place(store: Arc<dyn Store>) {
    let ch = webhook_channel(&*store, "site").await;
    for n in 0..24 {
        write(&*store, &ch, &format!("u-{n}"), &format!("m-{n}"), "hello").await;
        if n % 6 == 0 {
            tick().await;
        }
    }
    let everyone: Vec<ConversationId> = inbox(&*store).await;
    let mut seen: Vec<ConversationId> = Vec::new();
    let mut moved: Vec<ConversationId> = Vec::new();
    let mut cursor = None;
    let mut round = 0;
    loop {
        let page =
            store.list_conversations(ConversationFilter::default(), PageRequest::new(Some(4), cursor)).await.unwrap();
        seen.extend(page.items.iter().map(|c| c.id.clone()));
        let Some(next) = page.next else { break };
        cursor = Some(next);
        // Between pages: a message in a conversation already seen, one in a conversation not
        // seen yet (it moves ahead of the cursor), and a new person.
        tick().await;
        let done = seen[round % seen.len()].clone();
        let ahead = everyone.iter().rev().find(|id| !seen.contains(id) && !moved.contains(id)).cloned();
        for id in [Some(done), ahead].into_iter().flatten() {
            let contact = store.get_conversation(&id).await.unwrap().contact;
            let user = contact.identities[0].user_id.clone();
            write(&*store, &ch, &user, &format!("again-{round}-{user}"), "one more thing").await;
            moved.push(id);
        }
        write(&*store, &ch, &format!("new-{round}"), &format!("new-{round}"), "hi").await;
        round += 1;
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no conversation is shown twice: {seen:?}");
    for id in everyone.iter().filter(|id| !moved.contains(id)) {
        assert!(seen.contains(id), "{id} kept its place and was paged over");
    }
    // What moved ahead of the cursor is where a reader looks for news: above everything that
    // kept its place.
    let now = inbox(&*store).await;
    let place = |id: &ConversationId| now.iter().position(|f| f == id).unwrap();
    let lowest_moved = moved.iter().map(place).max().unwrap();
    let highest_kept = everyone.iter().filter(|id| !moved.contains(id)).map(place).min().unwrap();
    assert!(lowest_moved < highest_kept, "moved ones lead the list: {now:?}");
    assert!(round >= 3, "the pages interleaved with arrivals");
}

async fn a_press_keeps_the_label_of_the_button_it_pressed(store: Arc<dyn Store>) {
    let ch = webhook_channel(&*store, "site").await;
    let conv = write(&*store, &ch, "u-1", "m-1", "/start").await.conversation_id;
    let keyboard = vec![
        vec![button("📦 Мои заказы", "bot:item:main:0:4a9d6b")],
        vec![button("Оператор", "bot:item:main:1:77c0de")],
    ];
    let (menu, _) = store.enqueue_outbound(reply(&conv, "Главное меню", keyboard)).await.unwrap();
    let press = |id: &str, data: &str, reply_to: Option<&str>| InboundMessage {
        button_data: Some(data.into()),
        reply_to: reply_to.map(Into::into),
        text: None,
        ..inbound_text(&ch, "u-1", id, "")
    };

    // The platform names the message the press came from.
    let p = store.record_inbound(press("p-1", "bot:item:main:0:4a9d6b", Some(&menu.id))).await.unwrap().message;
    assert_eq!(p.button_label.as_deref(), Some("📦 Мои заказы"));
    assert_eq!(p.button_data.as_deref(), Some("bot:item:main:0:4a9d6b"), "the data is kept as it came");
    // It does not: the conversation's recent messages with buttons are searched.
    let p2 = store.record_inbound(press("p-2", "bot:item:main:1:77c0de", None)).await.unwrap().message;
    assert_eq!(p2.button_label.as_deref(), Some("Оператор"));

    // The buttons are removed from the message afterwards: the label stays with the press.
    store.set_message_buttons(&menu.id, vec![]).await.unwrap();
    assert_eq!(store.get_message(&p.id).await.unwrap().button_label.as_deref(), Some("📦 Мои заказы"));
    let listed = store.list_messages(&conv, PageRequest::new(Some(10), None)).await.unwrap().items;
    let labels: Vec<Option<&str>> = listed.iter().map(|m| m.button_label.as_deref()).collect();
    assert_eq!(labels, [None, None, Some("📦 Мои заказы"), Some("Оператор")]);

    // Data no message of this conversation carried has no label (the page says so readably).
    let unknown = store.record_inbound(press("p-3", "bot:item:gone:9:000000", None)).await.unwrap().message;
    assert_eq!(unknown.button_label, None);
    // Another person's buttons are not this person's: a press naming them gets no label.
    let other = write(&*store, &ch, "u-2", "o-1", "hi").await.conversation_id;
    let (theirs, _) =
        store.enqueue_outbound(reply(&other, "Оцените", vec![vec![button("5", "answer:5")]])).await.unwrap();
    let forged = store.record_inbound(press("p-4", "answer:5", Some(&theirs.id))).await.unwrap().message;
    assert_eq!(forged.button_label, None);
}

async fn a_notification_names_the_rule_that_sent_it(store: Arc<dyn Store>) {
    let ch = webhook_channel(&*store, "site").await;
    let hello = write(&*store, &ch, "u-1", "m-1", "hi").await;
    let (event, _) = store
        .accept_event(NewEvent {
            event_type: "order.shipped".into(),
            key: "o-1".into(),
            data: json!({"order": 1042}),
            send_at: None,
        })
        .await
        .unwrap();
    let rule = store.put_rule("Заказ отгружен", "order.shipped", json!({"template": "x"})).await.unwrap();
    let outcome = store
        .notify(Notification {
            event_id: event.id.clone(),
            rule_id: rule.id.clone(),
            contact_id: hello.contact_id.to_string(),
            recipient: "u-1".into(),
            text: "Заказ 1042 отгружен".into(),
            buttons: vec![],
            attachment_ids: vec![],
            options: serde_json::json!({}),
        })
        .await
        .unwrap();
    let NotifyOutcome::Queued(sent) = outcome else { panic!("queued: {outcome:?}") };
    let found = store.rules_of_messages(&[hello.id.clone(), sent.id.clone()]).await.unwrap();
    assert_eq!(found, [(sent.id.clone(), "Заказ отгружен".to_string())], "only the notification has a rule");
    assert!(store.rules_of_messages(&[]).await.unwrap().is_empty());
    store.delete_rule(&rule.id).await.unwrap();
    assert!(store.rules_of_messages(&[sent.id]).await.unwrap().is_empty(), "a deleted rule names nothing");
}

okno_store::both_backends!(
    a_notification_names_the_rule_that_sent_it,
    the_inbox_follows_the_last_message_and_bookkeeping_moves_nothing,
    paging_while_messages_arrive_repeats_nothing_and_loses_nothing_that_kept_its_place,
    a_press_keeps_the_label_of_the_button_it_pressed,
);
