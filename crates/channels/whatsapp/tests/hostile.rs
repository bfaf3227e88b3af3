//! The webhook reader never panics, whatever Meta (or someone posing as it) sends, and a
//! request without the right `X-Hub-Signature-256` is refused before it is read.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use async_trait::async_trait;
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, HookRequest, InboundEvent, Platform};
use okno_channel_whatsapp::webhook::parse;
use okno_channel_whatsapp::WhatsApp;
use okno_domain::model::{Channel, ChannelKind};
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Field names Meta uses, so nested junk lands where the reader looks.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("entry".to_string()),
        Just("changes".to_string()),
        Just("value".to_string()),
        Just("field".to_string()),
        Just("messages".to_string()),
        Just("statuses".to_string()),
        Just("contacts".to_string()),
        Just("errors".to_string()),
        Just("from".to_string()),
        Just("id".to_string()),
        Just("type".to_string()),
        Just("text".to_string()),
        Just("body".to_string()),
        Just("interactive".to_string()),
        Just("button_reply".to_string()),
        Just("list_reply".to_string()),
        Just("button".to_string()),
        Just("payload".to_string()),
        Just("image".to_string()),
        Just("location".to_string()),
        Just("latitude".to_string()),
        Just("context".to_string()),
        Just("status".to_string()),
        Just("code".to_string()),
        "[a-z_]{1,8}",
    ]
}

fn kind() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("text".to_string()),
        Just("image".to_string()),
        Just("document".to_string()),
        Just("location".to_string()),
        Just("contacts".to_string()),
        Just("interactive".to_string()),
        Just("button".to_string()),
        Just("reaction".to_string()),
        ".{0,10}",
    ]
}

fn channel() -> Channel {
    Channel {
        id: "ch".into(),
        kind: ChannelKind::Whatsapp,
        name: "wa".into(),
        status: "active".into(),
        status_detail: None,
        info: json!({}),
        config: json!({"token": "t", "phone_number_id": "1", "app_secret": "app_secret_123", "verify_token": "v"}),
        created_at: 0,
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

fn cx() -> Context {
    Context {
        http: SafeClient::new(true, Duration::from_secs(1)).unwrap(),
        public_url: "http://127.0.0.1:1".into(),
        files: FileStore::new(std::env::temp_dir().join("okno-wa-hostile")).unwrap(),
        max_download: 1024,
        poll_timeout: Duration::from_secs(1),
    }
}

fn receive(body: &[u8], signature: Option<&str>) -> okno_domain::Result<Vec<okno_channel::Received>> {
    let mut headers = HeaderMap::new();
    if let Some(s) = signature {
        if let Ok(v) = HeaderValue::from_str(s) {
            headers.insert("x-hub-signature-256", v);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(WhatsApp.receive(&cx(), &channel(), &HookRequest::new(&headers, body), &NoState))
}

#[test]
fn the_research_signature_vector_is_accepted() {
    // research §2.3: this body signed with `app_secret_123`.
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let sig = "sha256=02fe0c96d28c59ddb7cf81eff0ca05809b360ba73b63c28210b5906a0a107d1f";
    assert!(receive(body, Some(sig)).is_ok());
    assert!(receive(body, Some(&sig.replace("02fe", "02ff"))).is_err());
    assert!(receive(body, None).is_err());
    assert!(receive(body, Some("sha1=abc")).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_json_parses_without_panicking(v in any_json()) {
        prop_assert!(!parse("ch", &v).is_empty());
    }

    #[test]
    fn known_shapes_with_junk_fields_parse_without_panicking(
        k in kind(), inner in any_json(), ctx in any_json(), status in any_json(), errors in any_json(), contacts in any_json(),
    ) {
        let mut message = json!({"from": "79001234567", "id": "wamid.1", "type": k.clone(), "context": ctx});
        message[k.as_str()] = inner;
        let v = json!({"entry": [{"changes": [{"field": "messages", "value": {"contacts": contacts,
            "messages": [message], "statuses": [{"id": "wamid.2", "status": status, "errors": errors}]}}]}]});
        for e in parse("ch", &v) {
            if let InboundEvent::Message(m) = e {
                prop_assert!(!m.external_id.is_empty());
            }
        }
    }

    #[test]
    fn a_bad_signature_is_refused_whatever_the_body(body in prop::collection::vec(any::<u8>(), 0..300), sig in "sha256=[0-9a-f]{64}") {
        prop_assert!(receive(&body, Some(&sig)).is_err());
    }

    #[test]
    fn any_text_arrives_exactly(text in ".{1,300}") {
        let v = json!({"entry": [{"changes": [{"field": "messages", "value": {
            "messages": [{"from": "1", "id": "w", "type": "text", "text": {"body": text.clone()}}]}}]}]});
        let got = parse("ch", &v);
        let InboundEvent::Message(m) = &got[0] else { panic!("a message expected") };
        prop_assert_eq!(m.text.as_deref(), Some(text.as_str()));
    }
}
