//! Sending through the Avito simulator: tokens taken by client credentials and renewed before
//! they expire (or after Avito refuses one), photos uploaded and sent, chats marked read, texts
//! kept under Avito's 1,000 characters, and connecting refused with a clear reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_avito_sim::{AvitoSim, Fault};
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{Adapter, ChannelState, Context, DeliveryTarget, Platform};
use okno_channel_avito::Avito;
use okno_domain::model::{Attachment, Channel, ChannelKind, Direction, Identity, Message, MessageStatus};
use serde_json::{json, Value};

const CLIENT_ID: &str = "sending-client";
const CLIENT_SECRET: &str = "sending-secret";
const ACCOUNT: i64 = 4_242_424;

struct NoState;

#[async_trait]
impl ChannelState for NoState {
    async fn button_token(&self, data: &str) -> okno_domain::Result<String> {
        Ok(data.to_string())
    }
    async fn button_data(&self, _: &str) -> okno_domain::Result<Option<String>> {
        Ok(None)
    }
    async fn set_message_options(&self, _: &str, _: Value) -> okno_domain::Result<()> {
        Ok(())
    }
}

struct World {
    sim: AvitoSim,
    avito: Avito,
    cx: Context,
    channel: Channel,
}

async fn world() -> World {
    let sim = AvitoSim::start(CLIENT_ID, CLIENT_SECRET, ACCOUNT).await;
    let dir = std::env::temp_dir().join(format!("okno-avito-sending-{}", okno_domain::ids::new_id()));
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(10)).unwrap(),
        public_url: "http://127.0.0.1:1".into(),
        files: FileStore::new(dir).unwrap(),
        max_download: 1024 * 1024,
        poll_timeout: Duration::from_secs(1),
    };
    let avito = Avito::default();
    let config = json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "user_id": ACCOUNT.to_string(),
                        "api_base": sim.api_base(), "limits": {"per_second": 0, "per_chat_per_minute": 0}});
    let connected = avito.connect(&cx, &config, None).await.expect("connects");
    let channel = Channel {
        id: "ch-avito".into(),
        kind: ChannelKind::Avito,
        name: "Avito".into(),
        status: "active".into(),
        status_detail: None,
        info: connected.info,
        config: connected.config,
        created_at: 0,
    };
    World { sim, avito, cx, channel }
}

fn target(channel: &Channel, chat_id: &str, text: Option<&str>, attachments: Vec<Attachment>) -> DeliveryTarget {
    DeliveryTarget {
        message: Message {
            id: format!("msg-{}", okno_domain::ids::new_id()).into(),
            conversation_id: "conv".into(),
            contact_id: "contact".into(),
            channel_id: channel.id.clone(),
            direction: Direction::Out,
            text: text.map(str::to_string),
            attachments,
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
        channel: channel.clone(),
        identity: Identity {
            id: "identity".into(),
            contact_id: "contact".into(),
            channel_id: channel.id.clone(),
            kind: ChannelKind::Avito,
            user_id: "55".into(),
            chat_id: chat_id.into(),
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

fn adapter(w: &World) -> Arc<dyn Adapter> {
    w.avito.adapter(&w.cx, &w.channel, Arc::new(NoState)).unwrap()
}

#[tokio::test]
async fn an_expired_token_is_replaced_and_the_message_still_goes() {
    let w = world().await;
    let chat = w.sim.buyer(55, "Борис").chat(None);
    let a = adapter(&w);
    a.send(&target(&w.channel, &chat, Some("первое"), Vec::new())).await.unwrap();
    let issued = w.sim.tokens_issued();
    // Avito stops taking the token early: the call is refused 401, a new token is taken, the
    // call repeated once.
    w.sim.expire_tokens();
    a.send(&target(&w.channel, &chat, Some("второе"), Vec::new())).await.unwrap();
    assert_eq!(w.sim.refused_expired(), 1, "the stale token was tried once");
    assert_eq!(w.sim.tokens_issued(), issued + 1);
    let texts: Vec<_> = w.sim.sent_to(&chat).into_iter().filter_map(|s| s.text).collect();
    assert_eq!(texts, ["первое", "второе"]);
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires() {
    let w = world().await;
    let chat = w.sim.buyer(55, "Борис").chat(None);
    w.sim.set_token_ttl(Duration::from_secs(1));
    // Tokens issued so far (connecting) live a day: forget them by taking short ones.
    w.sim.expire_tokens();
    let a = adapter(&w);
    a.send(&target(&w.channel, &chat, Some("раз"), Vec::new())).await.unwrap();
    let refused = w.sim.refused_expired();
    let issued = w.sim.tokens_issued();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.send(&target(&w.channel, &chat, Some("два"), Vec::new())).await.unwrap();
    assert_eq!(w.sim.refused_expired(), refused, "a token near its end is not used");
    assert_eq!(w.sim.tokens_issued(), issued + 1);
}

#[tokio::test]
async fn a_photo_is_uploaded_and_sent_before_the_text_and_the_chat_is_marked_read() {
    let w = world().await;
    let chat = w.sim.buyer(55, "Борис").chat(None);
    let png = b"\x89PNG\r\n\x1a\n-a-tiny-picture".to_vec();
    let sha = w.cx.files.put(&png).await.unwrap();
    let att = Attachment {
        id: "att-1".into(),
        name: "plan.png".into(),
        mime: "image/png".into(),
        size: png.len() as i64,
        url: String::new(),
        sha256: sha,
        state: "ready".into(),
        note: None,
        source_url: None,
        message_id: None,
    };
    let sent = adapter(&w).send(&target(&w.channel, &chat, Some("Вот схема"), vec![att.clone()])).await.unwrap();
    let got = w.sim.sent_to(&chat);
    assert_eq!(got.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(), ["image", "text"]);
    let (bytes, mime) = w.sim.image(got[0].image_id.as_deref().unwrap()).unwrap();
    assert_eq!((bytes, mime.as_str()), (png, "image/png"));
    assert_eq!(sent.external_id.as_deref(), Some(got[1].id.as_str()));

    let pdf = Attachment { name: "счёт.pdf".into(), mime: "application/pdf".into(), ..att };
    let e = adapter(&w).send(&target(&w.channel, &chat, None, vec![pdf])).await.unwrap_err();
    assert!(e.to_string().contains("photos only"), "{e}");

    adapter(&w).mark_read(&chat, "whatever").await.unwrap();
    assert_eq!(w.sim.reads(), vec![chat]);
}

#[tokio::test]
async fn texts_stay_under_avitos_limit_and_a_missing_chat_is_refused_for_good() {
    let w = world().await;
    let chat = w.sim.buyer(55, "Борис").chat(None);
    let long = "а".repeat(1000) + " " + &"б".repeat(10);
    adapter(&w).send(&target(&w.channel, &chat, Some(&long), Vec::new())).await.unwrap();
    let parts: Vec<String> = w.sim.sent_to(&chat).into_iter().filter_map(|s| s.text).collect();
    assert_eq!(parts, ["а".repeat(1000), "б".repeat(10)]);
    let e = adapter(&w).send(&target(&w.channel, "no-such-chat", Some("привет"), Vec::new())).await.unwrap_err();
    assert!(matches!(e, okno_channel::SendError::Permanent { .. }), "{e:?}");
    w.sim.fail_next(Fault::Status(402));
    let e = adapter(&w).send(&target(&w.channel, &chat, Some("привет"), Vec::new())).await.unwrap_err();
    assert!(e.to_string().contains("tariff"), "{e}");
}

#[tokio::test]
async fn connecting_refuses_a_bad_secret_a_foreign_account_and_a_missing_tariff() {
    let w = world().await;
    assert_eq!(w.sim.tokens_issued(), 1, "connecting keeps the token it checked the credentials with");
    let cfg = |secret: &str, user: Value| json!({"client_id": CLIENT_ID, "client_secret": secret, "user_id": user, "api_base": w.sim.api_base()});
    let e = w.avito.connect(&w.cx, &cfg("wrong", json!(ACCOUNT)), None).await.unwrap_err();
    assert_eq!(e.code, "invalid_avito_credentials", "{e:?}");
    assert!(!e.message.contains("wrong"), "the secret is not echoed: {e:?}");
    let e = w.avito.connect(&w.cx, &cfg(CLIENT_SECRET, json!(999)), None).await.unwrap_err();
    assert_eq!(e.code, "invalid_avito_credentials", "{e:?}");
    let e = w.avito.connect(&w.cx, &cfg(CLIENT_SECRET, json!("12ab")), None).await.unwrap_err();
    assert_eq!(e.code, "invalid_channel_config", "{e:?}");
    // Past the token and the account, the Messenger call answers 402 without the tariff.
    w.sim.set_tariff(false);
    let e = w.avito.connect(&w.cx, &cfg(CLIENT_SECRET, json!(ACCOUNT)), None).await.unwrap_err();
    assert_eq!(e.code, "avito_tariff_required", "{e:?}");
    w.sim.set_tariff(true);
    // The secret is kept across a change.
    let again = w.avito.connect(&w.cx, &cfg(CLIENT_SECRET, json!(ACCOUNT)), Some(&w.channel.config)).await.unwrap();
    assert_eq!(again.config["webhook_secret"], w.channel.config["webhook_secret"]);
    assert_eq!(again.info["name"], "Окна Плюс");
}

proptest::proptest! {
    #[test]
    fn any_text_splits_under_the_limit_whole_and_in_order(text in "[а-яa-z \n]{0,3000}", limit in 1usize..1200) {
        let parts = okno_channel_avito::split(&text, limit);
        proptest::prop_assert!(parts.iter().all(|p| p.chars().count() <= limit), "{parts:?}");
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let joined = parts.iter().map(|p| words(p)).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ");
        // A hard cut inside a word splits it in two: compare without any whitespace then.
        let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        proptest::prop_assert_eq!(squeeze(&joined), squeeze(&text));
    }
}
