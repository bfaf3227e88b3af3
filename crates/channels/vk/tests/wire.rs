//! VK beyond the conformance suite, against the simulator: a send tried twice posts once,
//! files go through the upload servers, a reply in a group conversation names the message,
//! a person who forbade messages is flagged, posts are edited and taken down, and Long Poll
//! gets over an expired key, lost history and lost information.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{
    Adapter, ChannelState, Context, DeliveryTarget, IdentityFlag, InboundEvent, Platform, Post, SendError,
};
use okno_channel_vk::Vk;
use okno_domain::model::{Attachment, Button, Channel, ChannelKind, Direction, Identity, Message, MessageStatus};
use okno_vk_sim::VkSim;
use serde_json::{json, Value};

const TOKEN: &str = "vk1.a.wire";
const GROUP: i64 = 4242;

struct NoState;

#[async_trait]
impl ChannelState for NoState {
    async fn button_token(&self, data: &str) -> okno_domain::Result<String> {
        Ok(data.len().to_string())
    }
    async fn button_data(&self, _: &str) -> okno_domain::Result<Option<String>> {
        Ok(None)
    }
    async fn set_message_options(&self, _: &str, _: Value) -> okno_domain::Result<()> {
        Ok(())
    }
}

struct World {
    sim: VkSim,
    cx: Context,
    channel: Channel,
    adapter: Arc<dyn Adapter>,
    _dir: Dir,
}

struct Dir(std::path::PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn world(tag: &str) -> World {
    let sim = VkSim::start().await;
    sim.add_group(TOKEN, GROUP, "Окно");
    let dir = std::env::temp_dir().join(format!("okno-vk-wire-{tag}-{}", std::process::id()));
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).unwrap(),
        public_url: "http://127.0.0.1:1".into(),
        files: FileStore::new(dir.join("files")).unwrap(),
        max_download: 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    };
    let config = json!({"token": TOKEN, "api_base": format!("{}/method", sim.api_base()), "mode": "polling"});
    let connected = Vk.connect(&cx, &config, None).await.unwrap();
    let channel = Channel {
        id: "ch".into(),
        kind: ChannelKind::Vk,
        name: "vk".into(),
        status: "active".into(),
        status_detail: None,
        info: connected.info,
        config: connected.config,
        created_at: 0,
    };
    let adapter = Vk.adapter(&cx, &channel, Arc::new(NoState)).unwrap();
    World { sim, cx, channel, adapter, _dir: Dir(dir) }
}

fn target(w: &World, id: &str, peer: i64, text: &str) -> DeliveryTarget {
    DeliveryTarget {
        message: Message {
            id: id.into(),
            conversation_id: "conv".into(),
            contact_id: "contact".into(),
            channel_id: w.channel.id.clone(),
            direction: Direction::Out,
            text: Some(text.into()),
            attachments: Vec::new(),
            buttons: Vec::new(),
            status: MessageStatus::Queued,
            error: None,
            external_id: None,
            button_data: None,
            button_label: None,
            reply_to: None,
            edited: false,
            author: None,
            created_at: 0,
            updated_at: 0,
        },
        channel: w.channel.clone(),
        identity: Identity {
            id: "identity".into(),
            contact_id: "contact".into(),
            channel_id: w.channel.id.clone(),
            kind: ChannelKind::Vk,
            user_id: peer.to_string(),
            chat_id: peer.to_string(),
            username: None,
            display_name: None,
            is_group: false,
            blocked: false,
            opted_out: false,
            last_seen_at: None,
        },
        reply_to_external: None,
        options: json!({}),
    }
}

#[tokio::test]
async fn a_send_tried_twice_posts_once_and_a_forbidding_person_is_flagged() {
    let w = world("twice").await;
    let ann = w.sim.user(TOKEN, 11, "Ann");
    let t = target(&w, "msg-1", 11, "Добрый день");
    let first = w.adapter.send(&t).await.unwrap();
    let again = w.adapter.send(&t).await.unwrap();
    assert_eq!(first, again, "the same message, by its random_id");
    assert_eq!(w.sim.sent(TOKEN).len(), 1);

    ann.deny();
    match w.adapter.send(&target(&w, "msg-2", 11, "ещё")).await {
        Err(SendError::Permanent { reason, flag }) => {
            assert_eq!(flag, Some(IdentityFlag::Blocked));
            assert!(reason.contains("without permission"), "{reason}");
        }
        other => panic!("901 ends the send for good: {other:?}"),
    }
    // More buttons than VK's inline keyboard holds go under the input field instead.
    ann.allow("k");
    let mut many = target(&w, "msg-3", 11, "Выберите");
    let button = |n: usize| Button { text: format!("Вариант {n}"), data: Some(format!("v:{n}")), url: None };
    many.message.buttons = (0..3).map(|row| (0..4).map(|n| button(row * 4 + n)).collect()).collect();
    w.adapter.send(&many).await.unwrap();
    let kb = w.sim.sent(TOKEN).pop().unwrap().keyboard.unwrap();
    assert_eq!(kb["inline"], false, "12 buttons are more than an inline keyboard's 10");
}

#[tokio::test]
async fn files_go_through_the_upload_servers_and_replies_name_the_message() {
    let w = world("files").await;
    let ann = w.sim.user(TOKEN, 12, "Ann");
    let chat = w.sim.chat(TOKEN, 3, "Команда");
    let photo = w.cx.files.put(b"\x89PNG fake").await.unwrap();
    let doc = w.cx.files.put(b"%PDF-1.4 fake").await.unwrap();
    let att = |name: &str, mime: &str, sha: &str| Attachment {
        id: name.into(),
        name: name.into(),
        mime: mime.into(),
        size: 9,
        url: String::new(),
        sha256: sha.into(),
        state: "ready".into(),
        note: None,
        source_url: None,
        message_id: None,
    };
    let mut t = target(&w, "msg-f", 12, "Счёт и фото");
    t.message.attachments = vec![att("a.png", "image/png", &photo), att("счёт.pdf", "application/pdf", &doc)];
    w.adapter.send(&t).await.unwrap();
    let sent = w.sim.sent(TOKEN).pop().unwrap();
    let parts: Vec<&str> = sent.attachment.split(',').collect();
    assert!(
        parts[0].starts_with(&format!("photo-{GROUP}_")) && parts[1].starts_with(&format!("doc-{GROUP}_")),
        "{parts:?}"
    );
    let doc_id: i64 = parts[1].rsplit('_').next().unwrap().parse().unwrap();
    assert_eq!(w.sim.doc(TOKEN, doc_id).unwrap(), ("счёт.pdf".to_string(), b"%PDF-1.4 fake".to_vec()));
    drop(ann);

    // A reply in a group conversation, to a member's message known by its number.
    let member = w.sim.user(TOKEN, 13, "Bob");
    chat.send_text(&member, "вопрос");
    let mut r = target(&w, "msg-r", chat.peer_id(), "ответ");
    r.reply_to_external = Some(format!("{}:1", chat.peer_id()));
    let sent = w.adapter.send(&r).await.unwrap();
    let id = w.sim.sent(TOKEN).pop().unwrap().message_id;
    assert_eq!(w.sim.message(TOKEN, id).unwrap()["reply_message"]["text"], "вопрос");
    assert_eq!(sent.external_id, Some(format!("{}:2", chat.peer_id())));
}

#[tokio::test]
async fn posts_are_written_edited_cleared_and_deleted_by_their_number() {
    let w = world("posts").await;
    let chat = w.sim.chat(TOKEN, 5, "Исполнители");
    let post = Post::to(chat.peer_id().to_string()).bold("Замер").plain("\n\nУл. Ленина, 5");
    let mut with_buttons = post.clone();
    with_buttons.buttons =
        vec![vec![Button { text: "Взять".into(), data: Some("task:take:1".into()), url: None }]];
    let at = w.adapter.post(&with_buttons).await.unwrap();
    assert_eq!(at.chat_id, chat.peer_id().to_string());
    assert_eq!(w.adapter.posted(&format!("{}:{}", at.chat_id, at.message_id)), Some(at.clone()));
    let id = w.sim.sent(TOKEN).pop().unwrap().message_id;
    assert_eq!(w.sim.message(TOKEN, id).unwrap()["text"], "Замер\n\nУл. Ленина, 5");
    w.adapter.edit_post(&at, &post.clone().plain("\nВзято")).await.unwrap();
    assert_eq!(w.sim.message(TOKEN, id).unwrap()["text"], "Замер\n\nУл. Ленина, 5\nВзято");
    w.adapter.clear_buttons(&at).await.unwrap();
    assert_eq!(w.sim.message(TOKEN, id).unwrap()["keyboard"]["buttons"], json!([]));
    w.adapter.delete_post(&at).await.unwrap();
    assert!(w.sim.message(TOKEN, id).is_none());
    chat.kick_community();
    let refused = w.adapter.post(&post).await;
    assert!(matches!(refused, Err(SendError::Permanent { ref reason, .. }) if reason.contains("917")), "{refused:?}");
}

async fn events(w: &World, cursor: &mut Option<String>) -> Vec<InboundEvent> {
    for _ in 0..10 {
        let polled = Vk.poll(&w.cx, &w.channel, cursor.as_deref(), &NoState).await.unwrap();
        if let Some(c) = polled.items.iter().rev().find_map(|r| r.cursor.clone()) {
            *cursor = Some(c);
        }
        let got: Vec<InboundEvent> =
            polled.items.into_iter().map(|r| r.event).filter(|e| !matches!(e, InboundEvent::Ignore)).collect();
        if !got.is_empty() {
            return got;
        }
    }
    panic!("no event came");
}

fn text_of(e: &InboundEvent) -> Option<String> {
    match e {
        InboundEvent::Message(m) => m.text.clone(),
        _ => None,
    }
}

#[tokio::test]
async fn long_poll_gets_over_an_expired_key_lost_history_and_lost_information() {
    let w = world("longpoll").await;
    let ann = w.sim.user(TOKEN, 14, "Ann");
    let mut cursor = None;
    let first = Vk.poll(&w.cx, &w.channel, None, &NoState).await.unwrap();
    cursor = first.items.iter().rev().find_map(|r| r.cursor.clone()).or(cursor);
    assert!(cursor.is_some(), "the first poll keeps where it got to");

    ann.send_text("один");
    assert_eq!(text_of(&events(&w, &mut cursor).await[0]).as_deref(), Some("один"));
    w.sim.expire_longpoll_key(TOKEN);
    ann.send_text("два");
    assert_eq!(text_of(&events(&w, &mut cursor).await[0]).as_deref(), Some("два"), "a new key, the same ts");
    ann.send_text("три");
    w.sim.drop_longpoll_history(TOKEN);
    // What VK no longer holds is gone; okno goes on from the ts VK gives.
    let renewed = Vk.poll(&w.cx, &w.channel, cursor.as_deref(), &NoState).await.unwrap();
    let next = renewed.items.iter().rev().find_map(|r| r.cursor.clone());
    assert!(next.is_some() && next != cursor, "VK's new ts is kept");
    cursor = next;
    ann.send_text("четыре");
    assert_eq!(text_of(&events(&w, &mut cursor).await[0]).as_deref(), Some("четыре"), "on from VK's ts");
    w.sim.lose_longpoll_information(TOKEN);
    let renewed = Vk.poll(&w.cx, &w.channel, cursor.as_deref(), &NoState).await.unwrap();
    let next = renewed.items.iter().rev().find_map(|r| r.cursor.clone());
    assert!(next.is_some() && next != cursor, "a new key and ts are kept");
    cursor = next;
    ann.send_text("пять");
    let got = events(&w, &mut cursor).await;
    assert_eq!(got.iter().rev().find_map(text_of).as_deref(), Some("пять"));
}

/// VK counts every call of a community token against one budget. People writing in a burst
/// while okno sends are all named — with one `users.get` for the batch, asked through the
/// same pacer as the sends, so VK refuses nothing — and a person named once is not asked
/// after again.
#[tokio::test]
async fn a_burst_of_new_people_is_named_in_one_call_within_the_token_budget() {
    let w = world("names").await;
    w.sim.set_limits(true);
    // Where Long Poll stands, then 40 people write at once.
    let first = Vk.poll(&w.cx, &w.channel, None, &NoState).await.unwrap();
    let mut cursor = first.items.iter().rev().find_map(|r| r.cursor.clone());
    w.sim.user(TOKEN, 900, "Первый Пришедший");
    let people: Vec<_> = (0..40).map(|i| w.sim.user(TOKEN, 1000 + i, &format!("Сотрудник Номер{i}"))).collect();
    for p in &people {
        p.send_text("привет");
    }
    // Meanwhile okno answers the first person 25 times: the sends and the naming share VK's
    // 20 requests a second.
    let targets: Vec<_> = (0..25).map(|n| target(&w, &format!("answer-{n}"), 900, "ответ")).collect();
    let sender = {
        let adapter = w.adapter.clone();
        tokio::spawn(async move {
            for t in &targets {
                adapter.send(t).await.unwrap();
            }
        })
    };
    let calls_before = w.sim.calls(TOKEN, "users.get");
    let mut named = std::collections::HashMap::new();
    while named.len() < people.len() {
        for e in events(&w, &mut cursor).await {
            if let InboundEvent::Message(m) = e {
                named.insert(m.sender.user_id.clone(), m.sender.display_name.clone());
            }
        }
    }
    sender.await.unwrap();
    for (i, p) in people.iter().enumerate() {
        assert_eq!(
            named.get(&p.id().to_string()).cloned().flatten().as_deref(),
            Some(format!("Сотрудник Номер{i}").as_str()),
            "person {i} is named"
        );
    }
    let calls = w.sim.calls(TOKEN, "users.get") - calls_before;
    assert!(calls <= 3, "the burst was named in a few batched calls, not one each: {calls}");
    assert_eq!(w.sim.rate_limited(TOKEN), 0, "VK refused nothing");
    // Named once: the next message of a known person asks VK nothing.
    people[0].send_text("ещё");
    let calls_before = w.sim.calls(TOKEN, "users.get");
    let got = events(&w, &mut cursor).await;
    assert!(
        matches!(&got[0], InboundEvent::Message(m) if m.sender.display_name.as_deref() == Some("Сотрудник Номер0"))
    );
    assert_eq!(w.sim.calls(TOKEN, "users.get"), calls_before);
}
