//! Hostile input: every parser of data that comes from outside okno, fed arbitrary and
//! mangled input. Each must answer — a value or a clear error — without a panic and in bounded
//! time; the API answers a 4xx with an error code, never a 5xx.
//!
//! | parser                              | where its input comes from                          |
//! |-------------------------------------|-----------------------------------------------------|
//! | Telegram updates                    | `getUpdates` and the Telegram webhook               |
//! | the webhook channel's inbound body  | any site, signed, at `/hooks/{channel_id}`          |
//! | bot definitions (YAML)              | an administrator, `okno bot apply`                  |
//! | rules, broadcasts, surveys (JSON)   | the API, the business system                        |
//! | templates and rule conditions       | rules, broadcasts, bots                             |
//! | durations, times, survey buttons    | API fields, forms, button data back from messengers |
//! | every write endpoint of the API     | integrators, and whoever holds a token              |
//!
//! Mangled input starts from real examples (the shipped `examples/`, real platform payloads) and
//! replaces, removes or repeats parts of them, so it reaches past the first check of each
//! parser. The budget is fixed: `PROPTEST_CASES` cases per parser (1,000 unless set). A new
//! parser of outside data joins this file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use okno_testkit::TestApp;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

/// What one call may take at most. Far above what any of them needs; a parser that loops or
/// backtracks without end on some input fails here instead of hanging the suite.
const BOUND: Duration = Duration::from_secs(2);

/// An error that tells the sender what is wrong with what it sent (not okno's own failure).
fn refused(e: &okno_domain::Error) -> bool {
    !matches!(e.kind, okno_domain::ErrorKind::Internal | okno_domain::ErrorKind::Unavailable) && !e.message.is_empty()
}

fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    assert!(took < BOUND, "{what} took {took:?}");
    out
}

// --- mangling ------------------------------------------------------------------------------

/// Any JSON value, nested a few levels, with the strings and numbers that break parsers.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("JSON has no NaN", |f| f.is_finite()).prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just(""),
            Just("{{"),
            Just("}}"),
            Just("{% for x in y %}"),
            Just("../../etc/passwd"),
            Just("javascript:alert(1)"),
            Just("-100"),
            Just("1e999"),
            Just("\u{0}"),
            Just("🙂\u{200d}🙂"),
            Just("2026-02-30T25:61:00Z"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,12}", inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One change to a JSON document.
#[derive(Debug, Clone)]
enum Change {
    /// The node at this place becomes this value.
    Replace(Index, Value),
    /// The node at this place goes (from its object or array).
    Remove(Index),
    /// The node at this place is nested this deep in arrays.
    Bury(Index, usize),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (any::<Index>(), any_json()).prop_map(|(i, v)| Change::Replace(i, v)),
        2 => any::<Index>().prop_map(Change::Remove),
        1 => (any::<Index>(), 1usize..200).prop_map(|(i, d)| Change::Bury(i, d)),
    ]
}

/// The number of nodes in a document.
fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// Applies `f` to the `n`-th node (depth first; 0 is the whole document). `f` answers whether
/// the node stays (`false`: it is removed from its parent).
fn at(v: &mut Value, n: &mut usize, f: &mut dyn FnMut(&mut Value) -> bool) -> bool {
    if *n == 0 {
        return f(v);
    }
    *n -= 1;
    match v {
        Value::Array(items) => {
            let mut i = 0;
            while i < items.len() {
                if *n == 0 || count(&items[i]) > *n {
                    if !at(&mut items[i], n, f) {
                        items.remove(i);
                    }
                    return true;
                }
                *n -= count(&items[i]);
                i += 1;
            }
        }
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let size = count(&map[&k]);
                if size > *n {
                    let keep = at(map.get_mut(&k).unwrap(), n, f);
                    if !keep {
                        map.remove(&k);
                    }
                    return true;
                }
                *n -= size;
            }
        }
        _ => {}
    }
    true
}

/// What a change does to the node it reaches; `false`: the node goes.
type NodeChange<'a> = Box<dyn FnMut(&mut Value) -> bool + 'a>;

fn mangle(seed: &Value, changes: &[Change]) -> Value {
    let mut doc = seed.clone();
    for c in changes {
        let total = count(&doc);
        let (i, mut f): (&Index, NodeChange) = match c {
            Change::Replace(i, new) => (
                i,
                Box::new(move |v: &mut Value| {
                    *v = new.clone();
                    true
                }),
            ),
            Change::Remove(i) => (i, Box::new(|_: &mut Value| false)),
            Change::Bury(i, depth) => (
                i,
                Box::new(move |v: &mut Value| {
                    for _ in 0..*depth {
                        *v = Value::Array(vec![v.take()]);
                    }
                    true
                }),
            ),
        };
        let mut n = i.index(total);
        if !at(&mut doc, &mut n, &mut *f) {
            doc = Value::Null;
        }
    }
    doc
}

/// One change to a text (a YAML file, a template).
#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, String),
    Delete(Index, usize),
    RepeatLine(Index, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let piece = prop_oneof![
        ".{0,12}",
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("{%".to_string()),
        Just("\n  - ".to_string()),
        Just(": ".to_string()),
        Just("&a [*a, *a, *a]".to_string()),
        Just("\t".to_string()),
        Just("'".to_string()),
    ];
    prop_oneof![
        (any::<Index>(), piece).prop_map(|(i, s)| Edit::Insert(i, s)),
        (any::<Index>(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), 1usize..50).prop_map(|(i, n)| Edit::RepeatLine(i, n)),
    ]
}

fn boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn edited(seed: &str, edits: &[Edit]) -> String {
    let mut s = seed.to_string();
    for e in edits {
        match e {
            Edit::Insert(i, piece) => {
                let at = boundary(&s, i.index(s.len() + 1));
                s.insert_str(at, piece);
            }
            Edit::Delete(i, n) => {
                let from = boundary(&s, i.index(s.len() + 1));
                let to = boundary(&s, from + n);
                s.replace_range(from..to, "");
            }
            Edit::RepeatLine(i, n) => {
                let lines: Vec<&str> = s.lines().collect();
                if lines.is_empty() {
                    continue;
                }
                let k = i.index(lines.len());
                let mut out: Vec<&str> = lines[..=k].to_vec();
                out.extend(std::iter::repeat_n(lines[k], *n));
                out.extend_from_slice(&lines[k + 1..]);
                s = out.join("\n");
            }
        }
    }
    s
}

// --- seeds ---------------------------------------------------------------------------------

fn examples(dir: &str, ext: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

fn json_examples(dir: &str) -> Vec<Value> {
    examples(dir, "json").iter().map(|s| serde_json::from_str(s).unwrap()).collect()
}

/// Updates as the Telegram Bot API sends them: a text from a person, a photo with a caption in
/// a group, a button press, the bot blocked, a group moved to a supergroup.
fn telegram_updates() -> Vec<Value> {
    let from = json!({"id": 111, "is_bot": false, "first_name": "Иван", "last_name": "Петров", "username": "ivan", "language_code": "ru"});
    let private = json!({"id": 111, "type": "private", "first_name": "Иван"});
    let group = json!({"id": -1001234, "type": "supergroup", "title": "Склад"});
    vec![
        json!({"update_id": 1, "message": {"message_id": 5, "date": 1_733_000_000, "chat": private, "from": from,
            "text": "/start 8K2QWZ", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}),
        json!({"update_id": 2, "message": {"message_id": 6, "date": 1_733_000_001, "chat": group, "from": from,
            "caption": "накладная", "photo": [{"file_id": "AgAC", "file_unique_id": "u1", "width": 90, "height": 90, "file_size": 1200},
                                              {"file_id": "AgAD", "file_unique_id": "u2", "width": 800, "height": 800}],
            "reply_to_message": {"message_id": 4, "date": 1_733_000_000, "chat": group, "text": "пришлите фото"}}}),
        json!({"update_id": 3, "callback_query": {"id": "cb1", "from": from, "chat_instance": "ci", "data": "bot:item:main:3:4a9d6b",
            "message": {"message_id": 7, "date": 1_733_000_002, "chat": private, "text": "Меню"}}}),
        json!({"update_id": 4, "my_chat_member": {"chat": private, "from": from, "date": 1_733_000_003,
            "old_chat_member": {"status": "member", "user": from}, "new_chat_member": {"status": "kicked", "user": from}}}),
        json!({"update_id": 5, "message": {"message_id": 8, "date": 1_733_000_004, "chat": {"id": -1234, "type": "group", "title": "Склад"},
            "from": from, "migrate_to_chat_id": -1001234}}),
        json!({"update_id": 6, "edited_message": {"message_id": 5, "date": 1_733_000_000, "edit_date": 1_733_000_010, "chat": private,
            "from": from, "text": "исправлено", "document": {"file_id": "BQAC", "file_unique_id": "d1", "file_name": "../../etc/passwd",
            "mime_type": "text/html", "file_size": 10}}}),
    ]
}

fn webhook_bodies() -> Vec<Value> {
    vec![
        json!({"message_id": "m-1", "user": {"id": "u-1", "name": "Иван", "phone": "+79995550011", "username": "ivan"}, "text": "Здравствуйте"}),
        json!({"message_id": 42, "user": {"id": 7}, "attachments": [{"url": "https://example.com/a.pdf", "name": "счёт.pdf", "mime": "application/pdf"}]}),
        json!({"message_id": "m-3", "user": {"id": "u-1"}, "button": {"data": "survey:abc:0:10", "reply_to": "m-2"}}),
    ]
}

fn broadcast_specs() -> Vec<Value> {
    vec![
        json!({"name": "Акция", "audience": {"filter": {"channel_kind": "telegram", "label": "vip"}}, "text": "Здравствуйте, {{ contact.name }}!",
            "buttons": [[{"text": "Подробнее", "url": "https://example.com/{{ contact.id }}"}]], "send_at": "2026-12-24T10:00:00+03:00", "rate": 20,
            "unsubscribe_button": "Отписаться"}),
        json!({"name": "Всем", "audience": {"contacts": ["c1", "c2"]}, "text": "Привет"}),
    ]
}

// --- the parsers ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn telegram_updates_never_panic(seed in any::<Index>(), changes in prop::collection::vec(change(), 1..6)) {
        let seeds = telegram_updates();
        let doc = mangle(&seeds[seed.index(seeds.len())], &changes);
        bounded("a Telegram update", || {
            if let Ok(update) = serde_json::from_value::<okno_channel_telegram::api::Update>(doc) {
                let _ = okno_channel_telegram::updates::parse("ch-1", &update);
            }
        });
    }

    #[test]
    fn webhook_bodies_are_read_or_refused(seed in any::<Index>(), changes in prop::collection::vec(change(), 0..6),
                                          junk in prop::collection::vec(any::<u8>(), 0..64), raw in any::<bool>()) {
        let seeds = webhook_bodies();
        let body = if raw { junk } else { serde_json::to_vec(&mangle(&seeds[seed.index(seeds.len())], &changes)).unwrap() };
        let client = okno_channel::http::SafeClient::new(false, Duration::from_secs(1)).unwrap();
        let sig = okno_domain::signing::sign(b"secret", &body);
        let read = bounded("a webhook body", || okno_channel_webhook::parse_inbound("ch-1", "secret", Some(&sig), &body, &client));
        if let Err(e) = read {
            prop_assert!(refused(&e), "{e:?}");
            prop_assert!(!e.message.is_empty());
        }
        // Unsigned, it is refused before it is read.
        let unsigned = okno_channel_webhook::parse_inbound("ch-1", "secret", None, &body, &client);
        prop_assert_eq!(unsigned.unwrap_err().code, "missing_signature");
    }

    #[test]
    fn bot_definitions_are_read_or_refused(seed in any::<Index>(), edits in prop::collection::vec(edit(), 1..8)) {
        let seeds = examples("bots", "yaml");
        let text = edited(&seeds[seed.index(seeds.len())], &edits);
        if let Err(e) = bounded("a bot definition", || okno_engine::bots::def::BotDef::parse(&text)) {
            prop_assert!(refused(&e), "{e:?}");
        }
    }

    #[test]
    fn rules_are_read_or_refused(seed in any::<Index>(), changes in prop::collection::vec(change(), 1..6)) {
        let seeds = json_examples("rules");
        let doc = mangle(&seeds[seed.index(seeds.len())], &changes);
        if let Err(e) = bounded("a rule", || okno_engine::events::RuleSpec::parse(&doc)) {
            prop_assert!(refused(&e), "{e:?}");
        }
    }

    #[test]
    fn surveys_are_read_or_refused(seed in any::<Index>(), changes in prop::collection::vec(change(), 1..6)) {
        let seeds = json_examples("surveys");
        let doc = mangle(&seeds[seed.index(seeds.len())], &changes);
        if let Err(e) = bounded("a survey", || okno_domain::surveys::SurveySpec::parse(&doc)) {
            prop_assert!(refused(&e), "{e:?}");
        }
    }

    #[test]
    fn broadcasts_are_read_or_refused(seed in any::<Index>(), changes in prop::collection::vec(change(), 1..6)) {
        let seeds = broadcast_specs();
        let doc = mangle(&seeds[seed.index(seeds.len())], &changes);
        if let Err(e) = bounded("a broadcast", || okno_engine::broadcasts::BroadcastSpec::parse(&doc)) {
            prop_assert!(refused(&e), "{e:?}");
        }
    }

    #[test]
    fn templates_and_conditions_are_checked_or_refused(seed in any::<Index>(), edits in prop::collection::vec(edit(), 1..8)) {
        let seeds: Vec<String> = json_examples("rules").iter()
            .flat_map(|r| [r["template"].as_str().unwrap_or("").to_string(), r["condition"].as_str().unwrap_or("data.amount > 1000 and data.stage in ['won', 'lost']").to_string()])
            .collect();
        let text = edited(&seeds[seed.index(seeds.len())], &edits);
        for (what, result) in [
            ("a template", bounded("a template", || okno_engine::templates::check_template(&text))),
            ("a condition", bounded("a condition", || okno_engine::templates::check_condition(&text))),
        ] {
            if let Err(e) = result {
                prop_assert!(refused(&e), "{what}: {e:?}");
            }
        }
    }

    #[test]
    fn durations_times_and_button_data_are_read_or_refused(text in prop_oneof![".{0,24}", "[0-9]{1,30}[smhdw]?", "[-+0-9:TZ.]{0,40}"]) {
        bounded("short texts", || {
            let _ = okno_engine::events::parse_duration(&text);
            let _ = okno_domain::surveys::parse_duration("after", &text);
            let _ = okno_domain::time::parse_rfc3339(&text);
            let _ = okno_domain::surveys::parse_button(&text);
        });
    }

    #[test]
    fn sign_in_codes_are_read_or_refused(text in prop_oneof![".{0,24}", "[0-9 ]{0,12}"], at in any::<u64>()) {
        const KEY: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let step = bounded("sign-in codes", || okno_server::ui::two_factor::code_step(KEY, &text, at));
        let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if step.is_some() {
            prop_assert!(digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
        }
    }
}

/// Cases per parser: `PROPTEST_CASES`, or 1,000.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1_000)
}

/// What the cases above found, kept as plain cases.
#[test]
fn what_the_harness_found_stays_fixed() {
    // A condition that closes a template's `}}` made MiniJinja's expression reader panic.
    for condition in ["}}", "}} data.x", "data.x %}", "{{ data.x }}"] {
        let e = okno_engine::templates::check_condition(condition).unwrap_err();
        assert_eq!(e.code, "invalid_condition", "{condition}: {e:?}");
        assert!(okno_engine::templates::eval_condition(condition, &json!({})).is_err());
    }
    assert!(okno_engine::templates::check_condition("data.note == '}}'").is_ok(), "inside a string it is text");
    // An error's place, counted in the condition's Jinja spelling, fell inside a character of
    // what was written.
    let e = okno_engine::templates::check_condition("data.priority == \"critical\" && da4Ö򢹷󛍌K=ta.status").unwrap_err();
    assert_eq!(e.code, "invalid_condition", "{e:?}");
    // A delay of 10^17 days overflowed the millisecond count.
    for delay in ["99999999999999999d", "9223372036854775807s"] {
        assert_eq!(okno_engine::events::parse_duration(delay).unwrap_err().code, "invalid_delay");
        assert_eq!(okno_domain::surveys::parse_duration("after", delay).unwrap_err().code, "invalid_survey");
    }
    assert_eq!(okno_engine::events::parse_duration("36500d").unwrap(), 36_500 * 86_400_000);
    // A photo's width times its height overflowed when the largest size was picked.
    let huge = json!({"file_id": "AgAX", "file_unique_id": "x", "width": i64::MAX, "height": i64::MAX});
    let update = json!({"update_id": 9, "message": {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"},
        "photo": [huge, {"file_id": "AgAY", "file_unique_id": "y", "width": 90, "height": 90}]}});
    let update: okno_channel_telegram::api::Update = serde_json::from_value(update).unwrap();
    let parsed = okno_channel_telegram::updates::parse("ch-1", &update);
    assert!(format!("{parsed:?}").contains("AgAX"), "the largest size is kept: {parsed:?}");
}

// --- the API -------------------------------------------------------------------------------

/// Every write endpoint of the API, with a body that it accepts.
fn endpoints() -> Vec<(&'static str, &'static str, Value)> {
    let rule = json_examples("rules").remove(0);
    let survey = json_examples("surveys").remove(0);
    let event = json_examples("events").remove(0);
    vec![
        (
            "POST",
            "/api/v1/contacts",
            json!({"name": "Иван", "phone": "+79995550011", "email": "ivan@example.ru", "external_id": "c-1", "labels": ["vip"]}),
        ),
        ("POST", "/api/v1/events", event),
        ("POST", "/api/v1/rules", rule.clone()),
        (
            "POST",
            "/api/v1/rules/preview",
            json!({"rule": rule, "event": {"type": "payment.received", "data": {"client": "ООО Ромашка"}}}),
        ),
        ("POST", "/api/v1/broadcasts", broadcast_specs().remove(0)),
        ("POST", "/api/v1/surveys", survey),
        (
            "POST",
            "/api/v1/webhooks",
            json!({"url": "https://example.com/hook", "events": ["message.received"], "secret": "s"}),
        ),
        (
            "POST",
            "/api/v1/channels",
            json!({"kind": "webhook", "name": "site", "config": {"outbound_url": "https://example.com/in", "secret": "s"}}),
        ),
        ("POST", "/api/v1/tasks", json!({"title": "Выезд", "candidates": [{"external_id": "c-1"}]})),
        ("POST", "/api/v1/news", json!({"title": "Новость", "text": "Текст"})),
    ]
}

#[test]
fn the_api_answers_any_body_with_a_clear_4xx_never_a_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = rt.block_on(TestApp::spawn());
    let endpoints = endpoints();
    let strategy =
        (any::<Index>(), prop::collection::vec(change(), 0..5), prop::collection::vec(any::<u8>(), 0..48), 0u8..4);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&strategy, |(which, changes, junk, how)| {
            let (method, path, seed) = &endpoints[which.index(endpoints.len())];
            let body = match how {
                0 => junk,
                1 => {
                    // Deeply nested: a body that would exhaust a recursive reader's stack.
                    let depth = 10_000 + junk.len();
                    format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
                }
                _ => serde_json::to_vec(&mangle(seed, &changes)).unwrap(),
            };
            let (status, answer) = rt.block_on(async {
                let resp = app
                    .http
                    .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", app.url))
                    .bearer_auth(&app.token)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.unwrap_or(Value::Null))
            });
            prop_assert!(
                status < 500,
                "{method} {path} answered {status} to {}: {answer}",
                String::from_utf8_lossy(&body)
            );
            if status >= 400 {
                prop_assert!(
                    answer["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
                    "{method} {path} {status}: {answer}"
                );
            }
            Ok(())
        })
        .unwrap();
    // After all that, okno still works.
    let ok = rt.block_on(app.post("/api/v1/contacts", json!({"name": "Мария"})));
    assert_eq!(ok.status, 201, "{:?}", ok.body);
}
