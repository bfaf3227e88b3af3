//! OK's webhook side against the simulator: the subscription, the secret in the hook address,
//! group chats, files, press answers; and the parser on any input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{
    ChannelState, Context, DeliveryTarget, HookRequest, InboundAttachment, InboundEvent, Platform, PressAnswer,
    SendError,
};
use okno_channel_ok::{hook_url, Odnoklassniki};
use okno_domain::model::{Attachment, Button, Channel, ChannelKind, Direction, Identity, Message, MessageStatus};
use okno_ok_sim::OkSim;
use proptest::prelude::*;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

const TOKEN: &str = "tkn18YdUJZe:CQABPOJKAKEKEKEKE";

struct NoState;

#[async_trait]
impl ChannelState for NoState {
    async fn button_token(&self, data: &str) -> okno_domain::Result<String> {
        Ok(data.to_string())
    }
    async fn button_data(&self, token: &str) -> okno_domain::Result<Option<String>> {
        Ok(Some(token.to_string()))
    }
    async fn set_message_options(&self, _: &str, _: Value) -> okno_domain::Result<()> {
        Ok(())
    }
}

struct World {
    sim: OkSim,
    cx: Context,
    channel: Channel,
    _dir: Dir,
}

struct Dir(std::path::PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn world(name: &str) -> World {
    let sim = OkSim::start().await;
    sim.add_group(TOKEN, 57_000_000_000_001, "okno shop");
    let dir = std::env::temp_dir().join(format!("okno-ok-{name}-{}", std::process::id()));
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).unwrap(),
        public_url: "http://okno.test".into(),
        files: FileStore::new(dir.join("files")).unwrap(),
        max_download: 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    };
    let connected =
        Odnoklassniki.connect(&cx, &json!({"token": TOKEN, "api_base": sim.api_base()}), None).await.unwrap();
    let channel = Channel {
        id: "ch-ok".into(),
        kind: ChannelKind::Ok,
        name: "OK".into(),
        status: "active".into(),
        status_detail: None,
        info: connected.info,
        config: connected.config,
        created_at: 0,
    };
    World { sim, cx, channel, _dir: Dir(dir) }
}

/// A request to the channel's hook address with query `q` and `body`.
async fn hook(w: &World, q: Option<&str>, body: &[u8]) -> okno_domain::Result<Vec<okno_channel::Received>> {
    let headers = HeaderMap::new();
    Odnoklassniki.receive(&w.cx, &w.channel, &HookRequest::new(&headers, body).with_query(q), &NoState).await
}

impl World {
    fn secret(&self) -> String {
        self.channel.config["webhook_secret"].as_str().unwrap().to_string()
    }

    async fn deliver(&self) -> Vec<okno_channel::Received> {
        let event = self.sim.last_event(TOKEN).unwrap();
        hook(self, Some(&format!("secret={}", self.secret())), event.to_string().as_bytes()).await.unwrap()
    }
}

#[tokio::test]
async fn connecting_shows_the_group_keeps_the_secret_and_refuses_a_bad_key() {
    let w = world("connect").await;
    assert_eq!(w.channel.info["name"], "okno shop");
    assert!(w.secret().len() >= 32, "an unguessable secret: {}", w.secret());
    let again = Odnoklassniki
        .connect(&w.cx, &json!({"token": TOKEN, "api_base": w.sim.api_base()}), Some(&w.channel.config))
        .await
        .unwrap();
    assert_eq!(again.config["webhook_secret"], w.channel.config["webhook_secret"], "kept across changes");
    let bad = Odnoklassniki.connect(&w.cx, &json!({"token": "tkn1nope:X", "api_base": w.sim.api_base()}), None).await;
    let e = bad.unwrap_err();
    assert_eq!(e.code, "invalid_token");
    assert!(e.message.contains("PARAM_SESSION_EXPIRED"), "OK's words: {}", e.message);
    assert!(Odnoklassniki.deep_link(&w.channel, "123456").is_none(), "OK opens a chat without a payload");
}

#[tokio::test]
async fn the_webhook_is_subscribed_with_the_secret_and_an_old_address_removed() {
    let mut w = world("subscribe").await;
    Odnoklassniki.apply_receive_mode(&w.cx, &w.channel).await.unwrap();
    let first = hook_url("http://okno.test", "ch-ok", &w.secret());
    assert_eq!(w.sim.subscriptions(TOKEN), vec![first.clone()]);
    w.channel.config["webhook_secret"] = json!("0123456789abcdef0123456789abcdef");
    Odnoklassniki.apply_receive_mode(&w.cx, &w.channel).await.unwrap();
    assert_eq!(
        w.sim.subscriptions(TOKEN),
        vec![hook_url("http://okno.test", "ch-ok", "0123456789abcdef0123456789abcdef")],
        "the address with the old secret is unsubscribed"
    );
}

#[tokio::test]
async fn a_request_without_the_secret_is_refused_before_it_is_read() {
    let w = world("forged").await;
    let user = w.sim.user(TOKEN, 1, "Анна");
    user.send_text("привет");
    let body = w.sim.last_event(TOKEN).unwrap().to_string();
    for q in ["", "secret=", "secret=0000", "other=1"] {
        let r = hook(&w, Some(q), body.as_bytes()).await;
        assert_eq!(r.unwrap_err().code, "bad_secret", "query {q:?}");
    }
    let r = hook(&w, None, body.as_bytes()).await;
    assert_eq!(r.unwrap_err().code, "bad_secret");
    let r = hook(&w, Some(&format!("secret={}", w.secret())), b"{not json").await;
    assert_eq!(r.unwrap_err().code, "invalid_json");
}

#[tokio::test]
async fn a_group_chat_is_one_party_with_the_person_as_member() {
    let w = world("group").await;
    let anna = w.sim.user(TOKEN, 1, "Анна");
    let chat = w.sim.chat(TOKEN, "chat:C3ecb9d02a600", "Склад");
    let mid = chat.send_text(&anna, "готово");
    let got = w.deliver().await;
    let InboundEvent::Message(m) = &got[0].event else { panic!("a message, got {got:?}") };
    assert_eq!(m.external_id, mid);
    assert!(m.sender.is_group);
    assert_eq!((m.sender.user_id.as_str(), m.sender.display_name.as_deref()), ("chat:C3ecb9d02a600", Some("Склад")));
    let member = m.member.as_ref().unwrap();
    assert_eq!((member.user_id.as_str(), member.display_name.as_deref()), ("user:1", Some("Анна")));
    assert!(!member.is_group);
}

#[tokio::test]
async fn a_file_is_named_by_reference_and_fetched() {
    let w = world("file").await;
    let anna = w.sim.user(TOKEN, 1, "Анна");
    anna.send_file(b"%PDF-1.4 hello");
    let got = w.deliver().await;
    let InboundEvent::Message(m) = &got[0].event else { panic!("a message, got {got:?}") };
    let InboundAttachment::Url { url, .. } = &m.attachments[0] else { panic!("a file to fetch") };
    assert!(url.starts_with("ok-file:http"), "{url}");
    let fetched = Odnoklassniki.fetch(&w.cx, &w.channel, url).await.unwrap();
    assert_eq!(&fetched.body[..], b"%PDF-1.4 hello");
    assert!(Odnoklassniki.fetch(&w.cx, &w.channel, "tg-file:x").await.is_err());
}

#[tokio::test]
async fn a_press_is_answered_in_its_chat() {
    let w = world("press").await;
    let anna = w.sim.user(TOKEN, 1, "Анна");
    let adapter = Odnoklassniki.adapter(&w.cx, &w.channel, Arc::new(NoState)).unwrap();
    let api = okno_channel_ok::api::GraphApi::new(w.cx.http.clone(), &w.sim.api_base(), TOKEN);
    let kb = json!({"type": "INLINE_KEYBOARD", "payload": {"keyboard": {"buttons": [[{"type": "CALLBACK", "text": "Да", "payload": "yes"}]]}}});
    let sent = api
        .post(
            &format!("me/messages/{}", anna.chat_id()),
            &[],
            &json!({"recipient": {"chat_id": anna.chat_id()}, "message": {"text": "?", "attachments": [kb]}}),
        )
        .await
        .unwrap();
    let callback = anna.press(sent["message_id"].as_str().unwrap(), "yes");
    let got = w.deliver().await;
    let press_id = got[0].press_id.clone().unwrap();
    adapter.answer_press(&press_id, &PressAnswer::silent()).await.unwrap();
    let answers = w.sim.callback_answers(TOKEN);
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].callback_id.as_str(), answers[0].chat_id.as_str()), (callback.as_str(), anna.chat_id()));
    assert_eq!(answers[0].text, okno_channel_ok::SILENT_ANSWER);
    let again = adapter.answer_press(&press_id, &PressAnswer::note("уже")).await;
    assert!(again.is_err(), "OK refuses a second answer to one press");
}

fn target(w: &World, chat_id: &str, text: &str, attachments: Vec<Attachment>, reply: Option<&str>) -> DeliveryTarget {
    let message = Message {
        id: "msg-1".into(),
        conversation_id: "conv".into(),
        contact_id: "contact".into(),
        channel_id: w.channel.id.clone(),
        direction: Direction::Out,
        text: Some(text.to_string()),
        attachments,
        buttons: vec![vec![Button { text: "Да".into(), data: Some("yes".into()), url: None }]],
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
    };
    let identity = Identity {
        id: "identity".into(),
        contact_id: "contact".into(),
        channel_id: w.channel.id.clone(),
        kind: ChannelKind::Ok,
        user_id: "user:1".into(),
        chat_id: chat_id.to_string(),
        username: None,
        display_name: None,
        is_group: false,
        blocked: false,
        opted_out: false,
        last_seen_at: None,
    };
    DeliveryTarget {
        message,
        channel: w.channel.clone(),
        identity,
        reply_to_external: reply.map(str::to_string),
        options: json!({}),
    }
}

#[tokio::test]
async fn files_are_uploaded_five_a_message_with_the_reply_first_and_the_buttons_last() {
    let w = world("files-out").await;
    let anna = w.sim.user(TOKEN, 1, "Анна");
    let asked = anna.send_text("пришлите счета");
    let mut files = Vec::new();
    for n in 0..6 {
        let body = format!("%PDF-1.4 счёт {n}");
        let sha = w.cx.files.put(body.as_bytes()).await.unwrap();
        files.push(Attachment {
            id: format!("a{n}"),
            name: format!("счёт-{n}.pdf"),
            mime: if n == 0 { "image/png".into() } else { "application/pdf".into() },
            size: body.len() as i64,
            url: String::new(),
            sha256: sha,
            state: "ready".into(),
            note: None,
            source_url: None,
            message_id: None,
        });
    }
    let adapter = Odnoklassniki.adapter(&w.cx, &w.channel, Arc::new(NoState)).unwrap();
    let sent = adapter.send(&target(&w, anna.chat_id(), "Ваши счета", files, Some(&asked))).await.unwrap();
    let shown = w.sim.sent(TOKEN);
    assert_eq!(shown.len(), 3, "five files, one file, then the text: {shown:?}");
    assert_eq!(sent.external_id.as_deref(), Some(shown[2].mid.as_str()), "the last message stands for it");
    let kinds =
        |i: usize| shown[i].attachments.iter().map(|a| a["type"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(kinds(0), vec!["IMAGE", "FILE", "FILE", "FILE", "FILE"]);
    assert_eq!(kinds(1), vec!["FILE"]);
    assert_eq!(kinds(2), vec!["INLINE_KEYBOARD"]);
    assert_eq!(shown[2].text, "Ваши счета");
    assert_eq!(shown[0].reply_to.as_deref(), Some(asked.as_str()), "the reply rides on the first message");
    assert!(shown[1].reply_to.is_none() && shown[2].reply_to.is_none());
    assert_eq!(w.sim.calls(TOKEN, "GET /graph/me/fileUploadUrl"), 6);

    let gone = adapter.send(&target(&w, "chat:Cnowhere", "куда?", Vec::new(), None)).await;
    assert!(
        matches!(&gone, Err(SendError::Permanent { reason, flag: None }) if reason.contains("NOT_FOUND")),
        "{gone:?}"
    );
    let not_ok = adapter.send(&target(&w, "12345", "куда?", Vec::new(), None)).await;
    assert!(matches!(not_ok, Err(SendError::Permanent { .. })), "{not_ok:?}");
}

proptest! {
    #[test]
    fn the_parser_never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = okno_channel_ok::inbound::parse(&body);
    }

    #[test]
    fn the_parser_never_panics_on_event_shaped_json(
        kind in prop_oneof![Just("MESSAGE_CREATED".to_string()), Just("MESSAGE_CALLBACK".to_string()), Just("CHAT_SYSTEM".to_string()), ".{0,8}"],
        user in prop_oneof![Just(json!("user:1")), Just(json!(5)), Just(json!(null)), Just(json!([1]))],
        chat in prop_oneof![Just(json!("chat:C1")), Just(json!({})), Just(json!(""))],
        text in prop_oneof![Just(json!("t")), Just(json!(1.5)), Just(json!(null)), Just(json!({"a": 1}))],
        attachment_type in prop_oneof![Just("IMAGE".to_string()), Just("FILE".to_string()), Just("SHARE".to_string()), Just("LOCATION".to_string()), Just("CONTACT".to_string()), ".{0,6}"],
        payload in prop_oneof![Just(json!({"url": "https://x/y"})), Just(json!("s")), Just(json!({"latitude": "a"})), Just(json!(null))],
        group in any::<bool>(),
    ) {
        let event = json!({"webhookType": kind, "sender": {"user_id": user, "name": text.clone()},
            "recipient": {"chat_id": chat}, "callbackId": text.clone(), "payload": text.clone(),
            "message": {"text": text.clone(), "mid": user.clone(), "reply_to": text,
                        "attachments": [{"type": attachment_type, "payload": payload}]}});
        for body in [event.to_string(), json!([event, 1, "x"]).to_string()] {
            let updates = okno_channel_ok::inbound::parse(body.as_bytes()).unwrap();
            for u in &updates {
                let kind = okno_channel_ok::inbound::ChatKind { group, title: None };
                let _ = okno_channel_ok::inbound::received("ch", u, &kind);
            }
        }
    }
}
