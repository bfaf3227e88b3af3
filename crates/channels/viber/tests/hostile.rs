//! Hostile callbacks: a bad or missing signature is refused, malformed JSON is a clear error,
//! and the parser never panics on any JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use async_trait::async_trait;
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, HookRequest, Platform};
use okno_channel_viber::{webhook, Viber};
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::ErrorKind;
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

const TOKEN: &str = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9";

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

fn channel() -> Channel {
    Channel {
        id: "ch-viber".into(),
        kind: ChannelKind::Viber,
        name: "v".into(),
        status: "active".into(),
        status_detail: None,
        info: json!({}),
        config: json!({"token": TOKEN}),
        created_at: 0,
    }
}

fn cx() -> Context {
    let dir = std::env::temp_dir().join(format!("okno-viber-hostile-{}", std::process::id()));
    Context {
        http: SafeClient::new(true, Duration::from_secs(5)).unwrap(),
        public_url: "http://127.0.0.1:1".into(),
        files: FileStore::new(dir).unwrap(),
        max_download: 1024,
        poll_timeout: Duration::from_secs(1),
    }
}

async fn receive(body: &[u8], sig: Option<&str>) -> okno_domain::Result<Vec<okno_channel::Received>> {
    let mut h = HeaderMap::new();
    if let Some(s) = sig {
        h.insert("x-viber-content-signature", HeaderValue::from_str(s).unwrap());
    }
    Viber.receive(&cx(), &channel(), &HookRequest::new(&h, body), &NoState).await
}

#[tokio::test]
async fn the_documented_test_vector_verifies_and_forgeries_are_refused() {
    let body = br#"{"event":"webhook","timestamp":1457764197627,"message_token":241256543215}"#;
    let sig = "bd52434b46be1542d32bfa5e3332b757b927e183c5ef3b20a5f9877207dc55b9";
    assert_eq!(okno_viber_sim::sign(TOKEN, body), sig, "the research's test vector");
    assert!(receive(body, Some(sig)).await.is_ok());
    for bad in [None, Some(""), Some("00"), Some(&sig[1..])] {
        let e = receive(body, bad).await.expect_err("refused");
        assert_eq!(e.kind, ErrorKind::Unauthorized, "{bad:?}");
    }
    let junk = b"{not json";
    let e = receive(junk, Some(&okno_viber_sim::sign(TOKEN, junk))).await.expect_err("malformed");
    assert_eq!(e.kind, ErrorKind::Invalid);
    let no_event = b"[1,2,3]";
    assert!(receive(no_event, Some(&okno_viber_sim::sign(TOKEN, no_event))).await.is_err());
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,30}".prop_map(Value::from),
        prop_oneof![
            Just("message"),
            Just("seen"),
            Just("failed"),
            Just("conversation_started"),
            Just("subscribed"),
            Just("unsubscribed"),
            Just("delivered"),
            Just("text"),
            Just("picture"),
            Just("okno-btn:x")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::hash_map(
                prop_oneof![
                    Just("event".to_string()),
                    Just("message".to_string()),
                    Just("sender".to_string()),
                    Just("user".to_string()),
                    Just("id".to_string()),
                    Just("type".to_string()),
                    Just("text".to_string()),
                    Just("media".to_string()),
                    Just("message_token".to_string()),
                    Just("context".to_string()),
                    Just("user_id".to_string()),
                    ".{0,8}".prop_map(String::from)
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn the_parser_never_panics(v in arb_json()) {
        let _ = webhook::parse("ch", &v);
    }
}
