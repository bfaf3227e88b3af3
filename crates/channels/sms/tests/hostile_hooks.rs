//! Hook requests okno did not expect: the parser never panics on any body, a request without
//! the address's secret or (Twilio) with a wrong signature is refused before it is read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use async_trait::async_trait;
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, HookRequest, Platform};
use okno_channel_sms::gateway::Provider;
use okno_channel_sms::inbound::{parse, twilio_signature};
use okno_channel_sms::Sms;
use okno_domain::model::{Channel, ChannelKind};
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue};
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

fn channel(config: Value) -> Channel {
    Channel {
        id: "ch1".into(),
        kind: ChannelKind::Sms,
        name: "sms".into(),
        status: "active".into(),
        status_detail: None,
        info: json!({}),
        config,
        created_at: 0,
    }
}

fn cx() -> Context {
    Context {
        http: SafeClient::new(true, Duration::from_secs(5)).unwrap(),
        public_url: "https://okno.example".into(),
        files: FileStore::new(std::env::temp_dir().join(format!("okno-sms-hostile-{}", std::process::id()))).unwrap(),
        max_download: 1024,
        poll_timeout: Duration::from_secs(1),
    }
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "MessageSid",
            "MessageStatus",
            "SmsStatus",
            "ErrorCode",
            "From",
            "Body",
            "NumMedia",
            "MediaUrl0",
            "data[0]",
            "data[1]",
            "id",
            "phone",
            "status",
            "err",
            "mes",
            "to",
        ])
        .prop_map(String::from),
        "[a-zA-Z\\[\\]0-9]{0,8}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "sms_status\n000000-1\n103",
            "sms_status\n\n",
            "sms_status\nx\n99999999999999999999",
            "delivered",
            "failed",
            "received",
            "+79001234567",
            "8 (900) 123-45-67",
            "-1",
            "20",
            "1",
            "99",
            "http://x/y",
            "",
        ])
        .prop_map(String::from),
        "\\PC{0,30}",
    ]
}

proptest! {
    /// Any body, structured or not, for any provider: an answer, never a panic; every status
    /// event names a message and every message a phone number of digits.
    #[test]
    fn any_body_is_answered_without_panic(
        pairs in prop::collection::vec((field(), value()), 0..8),
        raw in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs { s.append_pair(k, v); }
        let body = s.finish();
        for p in [Provider::Twilio, Provider::Smsru, Provider::Smsc] {
            for b in [body.as_bytes(), raw.as_slice()] {
                if let Ok(events) = parse(p, "ch1", b) {
                    for r in events {
                        match r.event {
                            okno_channel::InboundEvent::Status { external_id, .. } => prop_assert!(!external_id.is_empty()),
                            okno_channel::InboundEvent::Message(m) => {
                                prop_assert!(m.sender.user_id.bytes().all(|c| c.is_ascii_digit()) && !m.sender.user_id.is_empty());
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn requests_without_the_secret_or_with_a_wrong_signature_are_refused() {
    let cx = cx();
    let body = "MessageSid=SM1&MessageStatus=delivered";
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let url = format!("https://okno.example/hooks/ch1?secret={SECRET}");
    let good_sig = twilio_signature("tok", &url, &params);
    let twilio = channel(
        json!({"provider": "twilio", "account_sid": "AC1", "auth_token": "tok", "sender": "+15005550006", "webhook_secret": SECRET}),
    );
    let call = |sig: Option<&str>, query: Option<String>| {
        let (cx, twilio) = (&cx, &twilio);
        let sig = sig.map(str::to_string);
        async move {
            let mut h = HeaderMap::new();
            if let Some(s) = sig {
                h.insert("x-twilio-signature", HeaderValue::from_str(&s).unwrap());
            }
            Sms.receive(cx, twilio, &HookRequest::new(&h, body.as_bytes()).with_query(query.as_deref()), &NoState).await
        }
    };
    let q = Some(format!("secret={SECRET}"));
    assert!(call(Some(&good_sig), q.clone()).await.is_ok());
    assert_eq!(call(None, q.clone()).await.unwrap_err().code, "bad_signature");
    assert_eq!(call(Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA="), q.clone()).await.unwrap_err().code, "bad_signature");
    assert_eq!(call(Some(&good_sig), None).await.unwrap_err().code, "bad_secret");
    assert_eq!(call(Some(&good_sig), Some("secret=0123".into())).await.unwrap_err().code, "bad_secret");
    // The signature covers the body: the same signature over another status is refused.
    let mut h = HeaderMap::new();
    h.insert("x-twilio-signature", HeaderValue::from_str(&good_sig).unwrap());
    let forged = "MessageSid=SM1&MessageStatus=failed";
    let r =
        Sms.receive(&cx, &twilio, &HookRequest::new(&h, forged.as_bytes()).with_query(q.as_deref()), &NoState).await;
    assert_eq!(r.unwrap_err().code, "bad_signature");

    let smsru = channel(json!({"provider": "smsru", "api_id": "x", "webhook_secret": SECRET}));
    let b = b"data%5B0%5D=sms_status%0A1%0A103";
    let h = HeaderMap::new();
    assert!(Sms.receive(&cx, &smsru, &HookRequest::new(&h, b).with_query(q.as_deref()), &NoState).await.is_ok());
    assert!(Sms.receive(&cx, &smsru, &HookRequest::new(&h, b).with_query(Some("secret=")), &NoState).await.is_err());
    let unset = channel(json!({"provider": "smsc", "login": "l", "password": "p"}));
    assert!(
        Sms.receive(&cx, &unset, &HookRequest::new(&h, b).with_query(Some("secret=")), &NoState).await.is_err(),
        "no secret kept: refused"
    );
}
