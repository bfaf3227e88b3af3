//! Hostile input to the VK event reader and the Callback API endpoint: any JSON, any bytes, is
//! read or refused with an error, never a panic; a request without the community's secret is
//! refused before anything is read from it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use async_trait::async_trait;
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, HookAnswer, HookRequest, InboundEvent, Platform};
use okno_channel_vk::{events, Vk};
use okno_domain::model::{Channel, ChannelKind};
use proptest::prelude::*;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

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
        id: "ch-vk".into(),
        kind: ChannelKind::Vk,
        name: "vk".into(),
        status: "active".into(),
        status_detail: None,
        info: json!({"screen_name": "club7"}),
        config: json!({"token": "t", "group_id": 7, "api_base": "http://127.0.0.1:1/method", "mode": "webhook", "secret": "s3cret", "confirmation": "c0de"}),
        created_at: 0,
    }
}

fn context() -> Context {
    Context {
        http: SafeClient::new(true, Duration::from_secs(1)).unwrap(),
        public_url: "http://127.0.0.1:1".into(),
        files: FileStore::new(std::env::temp_dir().join(format!("okno-vk-hostile-{}", std::process::id()))).unwrap(),
        max_download: 1024,
        poll_timeout: Duration::from_secs(1),
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!(2_000_000_001i64)),
        "[a-z_:{}\"0-9]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::hash_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("object".to_string()),
                    Just("message".to_string()),
                    Just("peer_id".to_string()),
                    Just("from_id".to_string()),
                    Just("conversation_message_id".to_string()),
                    Just("payload".to_string()),
                    Just("attachments".to_string()),
                    Just("reply_message".to_string()),
                    Just("event_id".to_string()),
                    Just("user_id".to_string()),
                    Just("ref".to_string()),
                    "[a-z]{1,6}".prop_map(String::from),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event_type() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "message_new",
        "message_edit",
        "message_event",
        "message_allow",
        "message_deny",
        "confirmation",
        "x",
    ])
}

proptest! {
    #[test]
    fn any_event_is_read_without_panicking(kind in event_type(), object in any_json()) {
        let _ = events::parse("ch", &json!({"type": kind, "object": object, "group_id": 7}));
        let _ = events::parse("ch", &object);
    }

    #[test]
    fn any_body_is_answered_or_refused(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _ = rt.block_on(Vk.receive(&context(), &channel(), &HookRequest::new(&HeaderMap::new(), &body), &NoState));
        let _ = Vk.hook_answer(&channel(), &HookRequest::new(&HeaderMap::new(), &body));
    }
}

#[tokio::test]
async fn the_callback_api_is_confirmed_with_the_string_and_events_need_the_secret() {
    let (cx, ch) = (context(), channel());
    let confirm = json!({"type": "confirmation", "group_id": 7}).to_string();
    let got = Vk.receive(&cx, &ch, &HookRequest::new(&HeaderMap::new(), confirm.as_bytes()), &NoState).await.unwrap();
    assert!(matches!(got[0].event, InboundEvent::Ignore));
    assert_eq!(
        Vk.hook_answer(&ch, &HookRequest::new(&HeaderMap::new(), confirm.as_bytes())),
        HookAnswer::Text("c0de".into())
    );
    let other = json!({"type": "confirmation", "group_id": 8}).to_string();
    assert!(
        Vk.receive(&cx, &ch, &HookRequest::new(&HeaderMap::new(), other.as_bytes()), &NoState).await.is_err(),
        "another community"
    );

    let message = |secret: &str| {
        json!({"type": "message_new", "group_id": 7, "event_id": "e", "secret": secret, "object": {"message": {
            "id": 1, "peer_id": 5, "from_id": 5, "conversation_message_id": 1, "text": "hi"}}})
        .to_string()
    };
    let refused =
        Vk.receive(&cx, &ch, &HookRequest::new(&HeaderMap::new(), message("wrong").as_bytes()), &NoState).await;
    assert_eq!(refused.unwrap_err().code, "bad_secret");
    let got = Vk
        .receive(&cx, &ch, &HookRequest::new(&HeaderMap::new(), message("s3cret").as_bytes()), &NoState)
        .await
        .unwrap();
    assert!(matches!(&got[0].event, InboundEvent::Message(m) if m.text.as_deref() == Some("hi")));
    assert_eq!(
        Vk.hook_answer(&ch, &HookRequest::new(&HeaderMap::new(), message("s3cret").as_bytes())),
        HookAnswer::Text("ok".into())
    );
    assert_eq!(Vk.deep_link(&ch, "K7"), Some("https://vk.me/club7?ref=K7".into()));
}
