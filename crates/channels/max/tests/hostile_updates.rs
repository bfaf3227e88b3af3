//! The update parser never panics, whatever MAX (or someone posing as it) sends: arbitrary
//! JSON, and updates of every known type with fields of the wrong kind or missing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use okno_channel::InboundEvent;
use okno_channel_max::updates::parse;
use proptest::prelude::*;
use serde_json::{json, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Field names MAX uses, so nested junk lands where the parser looks.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("update_type".to_string()),
        Just("message".to_string()),
        Just("body".to_string()),
        Just("mid".to_string()),
        Just("text".to_string()),
        Just("recipient".to_string()),
        Just("chat_id".to_string()),
        Just("chat_type".to_string()),
        Just("sender".to_string()),
        Just("user".to_string()),
        Just("user_id".to_string()),
        Just("callback".to_string()),
        Just("callback_id".to_string()),
        Just("payload".to_string()),
        Just("attachments".to_string()),
        Just("type".to_string()),
        Just("url".to_string()),
        Just("vcf_info".to_string()),
        Just("link".to_string()),
        "[a-z_]{1,8}",
    ]
}

fn update_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("message_created".to_string()),
        Just("message_edited".to_string()),
        Just("message_callback".to_string()),
        Just("bot_started".to_string()),
        Just("bot_stopped".to_string()),
        Just("bot_added".to_string()),
        Just("bot_removed".to_string()),
        Just("user_removed".to_string()),
        ".{0,16}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_json_parses_without_panicking(v in any_json()) {
        let got = parse("ch", Some(1), &v);
        prop_assert!(!got.is_empty());
    }

    #[test]
    fn known_updates_with_junk_fields_parse_without_panicking(
        kind in update_type(), message in any_json(), callback in any_json(), user in any_json(),
        chat in any_json(), payload in any_json(),
    ) {
        let v = json!({"update_type": kind, "timestamp": 1, "message": message, "callback": callback,
                       "user": user, "chat_id": chat, "payload": payload});
        for p in parse("ch", Some(1), &v) {
            if let InboundEvent::Message(m) = p.event {
                prop_assert!(!m.external_id.is_empty() || m.button_data.is_some());
            }
        }
    }

    #[test]
    fn any_text_from_a_person_arrives_exactly(text in ".{1,200}", user in 1i64..i64::MAX) {
        let v = json!({"update_type": "message_created", "message": {
            "sender": {"user_id": user, "first_name": "A", "is_bot": false},
            "recipient": {"chat_id": 5, "chat_type": "dialog"},
            "body": {"mid": "mid.1", "seq": 1, "text": text.clone()}}});
        let got = parse("ch", None, &v);
        let InboundEvent::Message(m) = &got[0].event else { panic!("a message expected, got {got:?}") };
        prop_assert_eq!(m.text.as_deref(), Some(text.as_str()));
        prop_assert_eq!(m.sender.user_id.clone(), user.to_string());
    }
}
