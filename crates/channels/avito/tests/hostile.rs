//! The webhook reader never panics, whatever Avito (or someone posing as it) sends; a request
//! without the hook address's secret is refused before its body is read; the seller's own
//! messages coming back are never taken for a buyer's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use async_trait::async_trait;
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, HookRequest, InboundEvent, Platform};
use okno_channel_avito::webhook::{parse, Hook};
use okno_channel_avito::Avito;
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::ErrorKind;
use proptest::prelude::*;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const ACCOUNT: &str = "777";

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just(777_i64), Just(0), Just(55)].prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field(), inner), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Field names Avito uses, so nested junk lands where the reader looks.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("payload".to_string()),
        Just("type".to_string()),
        Just("value".to_string()),
        Just("id".to_string()),
        Just("chat_id".to_string()),
        Just("user_id".to_string()),
        Just("author_id".to_string()),
        Just("content".to_string()),
        Just("text".to_string()),
        Just("image".to_string()),
        Just("sizes".to_string()),
        Just("item_id".to_string()),
        Just("link".to_string()),
        Just("location".to_string()),
        "[a-z0-9x_]{1,8}",
    ]
}

/// A plausible webhook with junk in its fields.
fn shaped() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just("text"),
        Just("image"),
        Just("link"),
        Just("item"),
        Just("location"),
        Just("call"),
        Just("voice"),
        Just("file"),
        Just("system"),
        Just("deleted"),
        Just("weird"),
    ];
    (any_json(), any_json(), any_json(), kind, any_json()).prop_map(|(id, chat, author, kind, content)| {
        json!({"id": "e", "payload": {"type": "message", "value": {"id": id, "chat_id": chat, "user_id": 777,
            "author_id": author, "type": kind, "content": content}}})
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_reader_never_panics_on_any_json(body in prop_oneof![any_json(), shaped()]) {
        if let Ok(Hook::Message { message, .. }) = parse("ch", ACCOUNT, &body) {
            prop_assert!(!message.external_id.is_empty());
            prop_assert!(!message.sender.chat_id.is_empty());
            prop_assert_ne!(message.sender.user_id.as_str(), ACCOUNT, "the seller's own message is never a buyer's");
            prop_assert!(message.text.is_some() || !message.attachments.is_empty());
        }
    }

    #[test]
    fn the_hook_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let headers = HeaderMap::new();
            let query = format!("secret={SECRET}");
            let got = Avito::default()
                .receive(&context(), &channel(), &HookRequest::new(&headers, &bytes).with_query(Some(&query)), &NoState)
                .await;
            if let Err(e) = got {
                assert_eq!(e.kind, ErrorKind::Invalid, "{e:?}");
            }
        });
    }
}

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

/// A channel whose API is nowhere (port 1): reading a chat's ad fails at once.
fn channel() -> Channel {
    Channel {
        id: "ch-avito".into(),
        kind: ChannelKind::Avito,
        name: "Avito".into(),
        status: "active".into(),
        status_detail: None,
        info: json!({}),
        config: json!({"client_id": "c", "client_secret": "s", "user_id": ACCOUNT, "webhook_secret": SECRET,
                       "api_base": "http://127.0.0.1:1"}),
        created_at: 0,
    }
}

fn context() -> Context {
    let dir = std::env::temp_dir().join(format!("okno-avito-hostile-{}", std::process::id()));
    Context {
        http: SafeClient::new(true, Duration::from_secs(2)).unwrap(),
        public_url: "http://127.0.0.1:1".into(),
        files: FileStore::new(dir).unwrap(),
        max_download: 1024,
        poll_timeout: Duration::from_secs(1),
    }
}

fn buyer_message(author: Value) -> Vec<u8> {
    json!({"id": "e1", "version": "v3.0.0", "timestamp": 1, "payload": {"type": "message", "value": {
        "id": "m1", "chat_id": "u2i-1", "user_id": 777, "author_id": author, "created": 1, "type": "text",
        "chat_type": "u2i", "content": {"text": "Здравствуйте"}, "item_id": 42}}})
    .to_string()
    .into_bytes()
}

async fn receive(query: Option<&str>, body: &[u8]) -> okno_domain::Result<Vec<okno_channel::Received>> {
    let headers = HeaderMap::new();
    Avito::default()
        .receive(&context(), &channel(), &HookRequest::new(&headers, body).with_query(query), &NoState)
        .await
}

#[tokio::test]
async fn a_request_without_the_secret_is_refused_before_it_is_read() {
    for query in [None, Some("secret=wrong"), Some("secret="), Some("other=0123456789abcdef0123456789abcdef")] {
        let e = receive(query, &buyer_message(json!(55))).await.unwrap_err();
        assert_eq!((e.kind, e.code.as_ref()), (ErrorKind::Unauthorized, "bad_secret"), "{query:?}");
    }
    // Even garbage is refused for its address first.
    let e = receive(Some("secret=wrong"), b"{not json").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unauthorized);
}

#[tokio::test]
async fn malformed_bodies_are_a_clear_400() {
    let q = format!("secret={SECRET}");
    for body in [&b"{not json"[..], b"[1,2]", b"\"text\"", br#"{"payload": {"type": "message"}}"#, b""] {
        let e = receive(Some(&q), body).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid, "{}", String::from_utf8_lossy(body));
        assert!(e.message.contains("not an Avito webhook"), "{e:?}");
    }
}

#[tokio::test]
async fn the_sellers_own_message_is_ignored_and_a_buyers_keeps_its_ad_even_when_the_chat_cannot_be_read() {
    let q = format!("secret={SECRET}");
    let own = receive(Some(&q), &buyer_message(json!(777))).await.unwrap();
    assert!(matches!(own[0].event, InboundEvent::Ignore), "{own:?}");
    let own_as_text = receive(Some(&q), &buyer_message(json!("777"))).await.unwrap();
    assert!(matches!(own_as_text[0].event, InboundEvent::Ignore), "{own_as_text:?}");
    let buyer = receive(Some(&q), &buyer_message(json!(55))).await.unwrap();
    let InboundEvent::Message(m) = &buyer[0].event else { panic!("a message: {buyer:?}") };
    assert_eq!(m.sender.user_id, "55");
    assert_eq!(m.context, Some(json!({"avito_item": {"id": 42}})));
    // An empty probe (how Avito's docs check an address) is answered, and keeps nothing.
    let probe = receive(Some(&q), b"{}").await.unwrap();
    assert!(matches!(probe[0].event, InboundEvent::Ignore));
}
