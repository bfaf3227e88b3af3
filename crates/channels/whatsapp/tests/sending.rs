//! WhatsApp against its simulator beyond the conformance suite: templates (and the simulator's
//! refusals of unknown ones and wrong parameter counts), the 24-hour window, menus as buttons,
//! lists and numbered lines, files uploaded and downloaded, mark-as-read, Meta's callback check,
//! `wa.me` links and the pair rate waited out.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{
    Adapter, ChannelState, Context, DeliveryTarget, HookAnswer, HookRequest, InboundAttachment, InboundEvent, Platform,
    SendError,
};
use okno_channel_whatsapp::WhatsApp;
use okno_domain::model::{
    Attachment, Button, Channel, ChannelKind, Direction, Identity, Keyboard, Message, MessageStatus,
};
use okno_whatsapp_sim::{Fault, WaSim};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

const TOKEN: &str = "EAAG-sending";
const NUMBER_ID: &str = "100200300";
const SECRET: &str = "app-secret";
const PERSON: &str = "79001112233";

#[derive(Default)]
struct Tokens(std::sync::Mutex<Vec<String>>);

#[async_trait]
impl ChannelState for Tokens {
    async fn button_token(&self, data: &str) -> okno_domain::Result<String> {
        let mut t = self.0.lock().unwrap();
        t.push(data.to_string());
        Ok((t.len() - 1).to_string())
    }
    async fn button_data(&self, token: &str) -> okno_domain::Result<Option<String>> {
        Ok(token.parse::<usize>().ok().and_then(|i| self.0.lock().unwrap().get(i).cloned()))
    }
    async fn set_message_options(&self, _: &str, _: Value) -> okno_domain::Result<()> {
        Ok(())
    }
}

struct World {
    sim: WaSim,
    cx: Context,
    channel: Channel,
    adapter: Arc<dyn Adapter>,
    state: Arc<Tokens>,
}

async fn world(limits: Value) -> World {
    let sim = WaSim::start().await;
    sim.add_number(NUMBER_ID, TOKEN, "+7 900 555-01-01", "Окна Плюс", SECRET);
    let dir = std::env::temp_dir().join(format!("okno-wa-sending-{}-{}", std::process::id(), rand_suffix()));
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).unwrap(),
        public_url: "http://127.0.0.1:1".into(),
        files: FileStore::new(dir).unwrap(),
        max_download: 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    };
    let config = json!({"token": TOKEN, "phone_number_id": NUMBER_ID, "app_secret": SECRET, "verify_token": "vt",
                        "api_base": sim.api_base(), "limits": limits});
    let connected = WhatsApp.connect(&cx, &config, None).await.unwrap();
    let channel = Channel {
        id: "wa-1".into(),
        kind: ChannelKind::Whatsapp,
        name: "WhatsApp".into(),
        status: "active".into(),
        status_detail: None,
        info: connected.info,
        config: connected.config,
        created_at: 0,
    };
    let state = Arc::new(Tokens::default());
    let adapter = WhatsApp.adapter(&cx, &channel, state.clone()).unwrap();
    World { sim, cx, channel, adapter, state }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn target(w: &World, text: Option<&str>, buttons: Keyboard, options: Value) -> DeliveryTarget {
    DeliveryTarget {
        message: Message {
            id: "m1".into(),
            conversation_id: "c".into(),
            contact_id: "p".into(),
            channel_id: w.channel.id.clone(),
            direction: Direction::Out,
            text: text.map(str::to_string),
            attachments: Vec::new(),
            buttons,
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
            id: "i".into(),
            contact_id: "p".into(),
            channel_id: w.channel.id.clone(),
            kind: ChannelKind::Whatsapp,
            user_id: PERSON.into(),
            chat_id: PERSON.into(),
            username: None,
            display_name: None,
            is_group: false,
            blocked: false,
            opted_out: false,
            last_seen_at: None,
        },
        reply_to_external: None,
        options,
    }
}

fn cb(t: &str) -> Button {
    Button { text: t.into(), data: Some(format!("menu:{t}")), url: None }
}

async fn receive(w: &World, body: &[u8], sig: &str) -> Vec<InboundEvent> {
    let mut headers = HeaderMap::new();
    headers.insert("x-hub-signature-256", HeaderValue::from_str(sig).unwrap());
    let got = WhatsApp.receive(&w.cx, &w.channel, &HookRequest::new(&headers, body), w.state.as_ref()).await.unwrap();
    got.into_iter().map(|r| r.event).collect()
}

#[tokio::test]
async fn connect_reads_the_number_and_refuses_a_bad_token() {
    let w = world(json!(null)).await;
    assert_eq!(w.channel.info["verified_name"], "Окна Плюс");
    assert_eq!(w.channel.config["display_phone_number"], "79005550101");
    assert_eq!(WhatsApp.deep_link(&w.channel, "K7Q2").as_deref(), Some("https://wa.me/79005550101?text=K7Q2"));
    assert!(WhatsApp.capabilities(&w.channel.config).receipts);
    let bad = json!({"token": "EAAG-wrong", "phone_number_id": NUMBER_ID, "app_secret": SECRET, "verify_token": "vt", "api_base": w.sim.api_base()});
    let e = WhatsApp.connect(&w.cx, &bad, None).await.unwrap_err();
    assert_eq!(e.code, "invalid_whatsapp_credentials", "{e}");
    assert!(!e.message.contains("EAAG-wrong"));
    let other = json!({"token": TOKEN, "phone_number_id": "999", "app_secret": SECRET, "verify_token": "vt", "api_base": w.sim.api_base()});
    assert!(WhatsApp.connect(&w.cx, &other, None).await.is_err());
}

#[tokio::test]
async fn the_callback_check_answers_the_challenge_only_for_the_verify_token() {
    let w = world(json!(null)).await;
    let headers = HeaderMap::new();
    let q = |s: &'static str| HookRequest::new(&headers, b"").with_query(Some(s));
    assert_eq!(
        WhatsApp
            .verify_hook(&w.channel, &q("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=vt"))
            .unwrap()
            .unwrap(),
        HookAnswer::Text("1158201444".into())
    );
    assert!(WhatsApp
        .verify_hook(&w.channel, &q("hub.mode=subscribe&hub.challenge=1&hub.verify_token=nope"))
        .unwrap()
        .is_err());
    assert!(WhatsApp
        .verify_hook(&w.channel, &q("hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=vt"))
        .unwrap()
        .is_err());
}

#[tokio::test]
async fn templates_go_out_by_name_and_the_simulator_checks_them() {
    let w = world(json!(null)).await;
    w.sim.person(PERSON, "Анна");
    w.sim.add_template("order_update", "ru", 2);
    // No text, a template named: it goes out as the template, window or not.
    let t = target(
        &w,
        None,
        Vec::new(),
        json!({"template": {"name": "order_update", "language": "ru", "params": ["№1042", "завтра"]}}),
    );
    w.adapter.send(&t).await.unwrap();
    let sent = w.sim.sent_to(PERSON);
    assert_eq!(sent[0].kind, "template");
    assert_eq!(sent[0].body["template"]["language"]["code"], "ru");
    assert_eq!(sent[0].shown.as_deref(), Some("template:order_update(№1042|завтра)"));
    let wrong =
        target(&w, None, Vec::new(), json!({"template": {"name": "order_update", "language": "ru", "params": ["1"]}}));
    assert!(
        matches!(w.adapter.send(&wrong).await, Err(SendError::Permanent { reason, .. }) if reason.starts_with("132000"))
    );
    let unknown = target(&w, None, Vec::new(), json!({"template": {"name": "nope", "language": "ru", "params": []}}));
    assert!(
        matches!(w.adapter.send(&unknown).await, Err(SendError::Permanent { reason, .. }) if reason.starts_with("132001"))
    );
    // Text outside the window is refused (131047); with the window closed flag the template goes.
    let text = target(&w, Some("Ваш заказ готов"), Vec::new(), json!({}));
    assert!(
        matches!(w.adapter.send(&text).await, Err(SendError::Permanent { reason, .. }) if reason.starts_with("131047: Re-engagement message"))
    );
    let closed = target(
        &w,
        Some("Ваш заказ готов"),
        Vec::new(),
        json!({"window_closed": true, "template": {"name": "order_update", "language": "ru", "params": ["a", "b"]}}),
    );
    w.adapter.send(&closed).await.unwrap();
}

#[tokio::test]
async fn the_window_opens_when_the_person_writes_and_closes_after_24_hours() {
    let w = world(json!(null)).await;
    let p = w.sim.person(PERSON, "Анна");
    p.write("Здравствуйте").await;
    w.adapter.send(&target(&w, Some("Здравствуйте!"), Vec::new(), json!({}))).await.unwrap();
    w.sim.advance(Duration::from_secs(23 * 3600));
    w.adapter.send(&target(&w, Some("Ещё здесь"), Vec::new(), json!({}))).await.unwrap();
    w.sim.advance(Duration::from_secs(3600));
    assert!(w.adapter.send(&target(&w, Some("Поздно"), Vec::new(), json!({}))).await.is_err());
    assert_eq!(w.sim.refused(), vec![(PERSON.to_string(), 131047)]);
}

#[tokio::test]
async fn menus_become_buttons_lists_or_numbered_lines_within_metas_limits() {
    let w = world(json!(null)).await;
    let p = w.sim.person(PERSON, "Анна");
    p.write("меню").await;
    w.adapter
        .send(&target(&w, Some("Выберите"), vec![vec![cb("Да"), cb("Нет"), cb("Позже")]], json!({})))
        .await
        .unwrap();
    assert_eq!(w.sim.sent_to(PERSON).last().unwrap().buttons(), vec!["Да", "Нет", "Позже"]);
    let four = vec![vec![cb("Новости"), cb("Отчёты")], vec![cb("Оплата"), cb("Оператор с очень длинным именем")]];
    w.adapter.send(&target(&w, Some("Меню"), four, json!({}))).await.unwrap();
    let list = w.sim.sent_to(PERSON).last().unwrap().clone();
    assert_eq!(list.body["interactive"]["type"], "list");
    assert_eq!(list.buttons().len(), 4);
    // The person picks a row: the press carries the data.
    let picked = p.choose("Оплата").await;
    let events = receive(&w, &picked.body, &picked.signature).await;
    let InboundEvent::Message(m) = &events[0] else { panic!("{events:?}") };
    assert_eq!(m.button_data.as_deref(), Some("menu:Оплата"));
    // Eleven choices: numbered lines.
    let eleven: Keyboard = (1..=11).map(|i| vec![cb(&format!("Пункт {i}"))]).collect();
    w.adapter.send(&target(&w, Some("Всё"), eleven, json!({}))).await.unwrap();
    let last = w.sim.sent_to(PERSON).last().unwrap().clone();
    assert_eq!(last.kind, "text");
    assert!(last.shown.unwrap().contains("11. Пункт 11"));
    // Long data goes behind a token and comes back whole.
    let long = "x".repeat(300);
    w.adapter
        .send(&target(
            &w,
            Some("Длинно"),
            vec![vec![Button { text: "Ок".into(), data: Some(long.clone()), url: None }]],
            json!({}),
        ))
        .await
        .unwrap();
    let pressed = p.choose("Ок").await;
    let events = receive(&w, &pressed.body, &pressed.signature).await;
    let InboundEvent::Message(m) = &events[0] else { panic!("{events:?}") };
    assert_eq!(m.button_data.as_deref(), Some(long.as_str()));
    // A single link: a cta_url button.
    let link = Button { text: "Сайт".into(), data: None, url: Some("https://example.org".into()) };
    w.adapter.send(&target(&w, Some("Наш сайт"), vec![vec![link]], json!({}))).await.unwrap();
    assert_eq!(w.sim.sent_to(PERSON).last().unwrap().body["interactive"]["type"], "cta_url");
}

#[tokio::test]
async fn the_simulator_refuses_four_reply_buttons_like_meta() {
    let w = world(json!(null)).await;
    w.sim.person(PERSON, "Анна").write("x").await;
    let body = json!({"messaging_product": "whatsapp", "to": PERSON, "type": "interactive", "interactive": {"type": "button",
        "body": {"text": "?"}, "action": {"buttons": (0..4).map(|i| json!({"type": "reply", "reply": {"id": i.to_string(), "title": i.to_string()}})).collect::<Vec<_>>()}}});
    let resp = reqwest::Client::new()
        .post(format!("{}/{NUMBER_ID}/messages", w.sim.api_base()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], 131009);
}

#[tokio::test]
async fn files_are_uploaded_and_sent_by_id_and_inbound_media_downloaded() {
    let w = world(json!(null)).await;
    let p = w.sim.person(PERSON, "Анна");
    let written = p.send_media("document", b"%PDF-1.4 test", "application/pdf", Some("act.pdf"), Some("Акт")).await;
    let events = receive(&w, &written.body, &written.signature).await;
    let InboundEvent::Message(m) = &events[0] else { panic!("{events:?}") };
    assert_eq!(m.text.as_deref(), Some("Акт"));
    let InboundAttachment::Url { url, name, .. } = &m.attachments[0] else { panic!("{m:?}") };
    assert_eq!(name, "act.pdf");
    let fetched = WhatsApp.fetch(&w.cx, &w.channel, url).await.unwrap();
    assert_eq!(&fetched.body[..], b"%PDF-1.4 test");
    assert!(WhatsApp.fetch(&w.cx, &w.channel, "wa-media:../../etc").await.is_err());

    let sha = w.cx.files.put(b"\x89PNG fake").await.unwrap();
    let mut t = target(&w, Some("Схема"), Vec::new(), json!({}));
    t.message.attachments.push(Attachment {
        id: "a".into(),
        name: "plan.png".into(),
        mime: "image/png".into(),
        size: 9,
        url: String::new(),
        sha256: sha,
        state: "ready".into(),
        note: None,
        source_url: None,
        message_id: None,
    });
    w.adapter.send(&t).await.unwrap();
    let last = w.sim.sent_to(PERSON).last().unwrap().clone();
    assert_eq!(last.kind, "image");
    assert_eq!(last.shown.as_deref(), Some("Схема"));
    let id = last.body["image"]["id"].as_str().unwrap();
    assert_eq!(w.sim.media(id).unwrap(), b"\x89PNG fake");
}

#[tokio::test]
async fn replies_quote_and_reads_are_marked() {
    let w = world(json!(null)).await;
    let p = w.sim.person(PERSON, "Анна");
    let written = p.write("Вопрос").await;
    let mut t = target(&w, Some("Ответ"), Vec::new(), json!({}));
    t.reply_to_external = Some(written.id.clone());
    let sent = w.adapter.send(&t).await.unwrap();
    assert_eq!(w.sim.sent_to(PERSON).last().unwrap().body["context"]["message_id"], written.id.as_str());
    w.adapter.mark_read(PERSON, &written.id).await.unwrap();
    assert_eq!(w.sim.read_marks(), vec![written.id.clone()]);
    // The person quotes okno's message: reply_to_external names it.
    let quoted = p.reply(sent.external_id.as_deref().unwrap(), "Спасибо").await;
    let events = receive(&w, &quoted.body, &quoted.signature).await;
    let InboundEvent::Message(m) = &events[0] else { panic!("{events:?}") };
    assert_eq!(m.reply_to_external, sent.external_id);
}

#[tokio::test]
async fn the_pair_rate_is_kept_by_the_adapter_and_a_refusal_retried_after_six_seconds() {
    // Limits off in okno, on in the simulator with a burst of 2: the third send is refused
    // with 131056 and the engine is told to wait 6 s.
    let w = world(json!({"per_second": 0, "pair_seconds": 0})).await;
    w.sim.set_rates(80, 6.0, 2);
    w.sim.person(PERSON, "Анна").write("x").await;
    w.adapter.send(&target(&w, Some("1"), Vec::new(), json!({}))).await.unwrap();
    w.adapter.send(&target(&w, Some("2"), Vec::new(), json!({}))).await.unwrap();
    match w.adapter.send(&target(&w, Some("3"), Vec::new(), json!({}))).await {
        Err(SendError::Retry { after, reason }) => {
            assert_eq!(after, Some(Duration::from_secs(6)));
            assert!(reason.starts_with("131056"));
        }
        other => panic!("{other:?}"),
    }
    w.sim.fail_next(Fault::Status(503));
    assert!(matches!(
        w.adapter.send(&target(&w, Some("4"), Vec::new(), json!({}))).await,
        Err(SendError::Retry { .. })
    ));
}

#[tokio::test]
async fn statuses_from_the_simulator_are_read_as_receipts() {
    let w = world(json!(null)).await;
    let p = w.sim.person(PERSON, "Анна");
    p.write("x").await;
    let sent = w.adapter.send(&target(&w, Some("y"), Vec::new(), json!({}))).await.unwrap();
    let id = sent.external_id.unwrap();
    let body = w.sim.envelope(json!({"statuses": [
        {"id": id, "status": "read", "recipient_id": PERSON},
        {"id": id, "status": "delivered", "recipient_id": PERSON},
        {"id": id, "status": "failed", "errors": [{"code": 131047, "title": "Re-engagement message"}]}]}));
    let bytes = body.to_string().into_bytes();
    let events = receive(&w, &bytes, &w.sim.sign(&bytes)).await;
    assert!(matches!(&events[0], InboundEvent::Status { status: MessageStatus::Read, .. }));
    assert!(matches!(&events[1], InboundEvent::Status { status: MessageStatus::Delivered, .. }));
    assert!(
        matches!(&events[2], InboundEvent::Status { status: MessageStatus::Failed, reason: Some(r), .. } if r == "131047: Re-engagement message")
    );
}
