//! Polling mode against the simulator: the first poll starts at the present, later ones hand
//! over buyers' messages newer than the cursor (oldest first, with their ad, the seller's own
//! left out), the cursor rides on the last one, and a cursor not yet stored gives the same
//! messages again — nothing is lost between a poll and its storing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use async_trait::async_trait;
use okno_avito_sim::AvitoSim;
use okno_channel::files::FileStore;
use okno_channel::http::SafeClient;
use okno_channel::{ChannelState, Context, InboundEvent, Platform, Polled};
use okno_channel_avito::Avito;
use okno_domain::model::{Channel, ChannelKind};
use serde_json::{json, Value};

const ACCOUNT: i64 = 31_337;

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

fn texts(p: &Polled) -> Vec<(String, String)> {
    p.items
        .iter()
        .filter_map(|r| match &r.event {
            InboundEvent::Message(m) => Some((m.sender.user_id.clone(), m.text.clone().unwrap_or_default())),
            _ => None,
        })
        .collect()
}

fn cursor_of(p: &Polled) -> Option<String> {
    assert!(p.items.iter().rev().skip(1).all(|r| r.cursor.is_none()), "the cursor rides on the last item only");
    p.items.last().and_then(|r| r.cursor.clone())
}

#[tokio::test]
async fn polling_hands_over_buyers_messages_once_stored_and_again_until_then() {
    let sim = AvitoSim::start("poll-client", "poll-secret", ACCOUNT).await;
    let cx = Context {
        http: SafeClient::new(true, Duration::from_secs(5)).unwrap(),
        public_url: "http://127.0.0.1:1".into(),
        files: FileStore::new(std::env::temp_dir().join(format!("okno-avito-poll-{}", std::process::id()))).unwrap(),
        max_download: 1024,
        poll_timeout: Duration::from_millis(300),
    };
    let avito = Avito::default();
    let config = json!({"client_id": "poll-client", "client_secret": "poll-secret", "user_id": ACCOUNT,
                        "api_base": sim.api_base(), "mode": "polling"});
    let connected = avito.connect(&cx, &config, None).await.unwrap();
    let channel = Channel {
        id: "ch-poll".into(),
        kind: ChannelKind::Avito,
        name: "Avito".into(),
        status: "active".into(),
        status_detail: None,
        info: connected.info,
        config: connected.config,
        created_at: 0,
    };
    assert!(avito.polls(&channel));
    assert!(avito.capabilities(&channel.config).polling);
    avito.apply_receive_mode(&cx, &channel).await.unwrap();
    assert_eq!(sim.webhook(), None, "polling subscribes no webhook");

    let start = avito.poll(&cx, &channel, None, &NoState).await.unwrap();
    assert!(texts(&start).is_empty());
    let start = cursor_of(&start).expect("the first poll gives the present as the cursor");

    let bike = sim.add_item(42, "Велосипед", "12 000 ₽");
    let boris = sim.buyer(55, "Борис");
    let anna = sim.buyer(66, "Анна");
    boris.write(Some(&bike), "Ещё продаётся?").await;
    anna.write(None, "Здравствуйте").await;
    sim.seller_writes(&boris.chat(Some(&bike)), "Да").await;

    boris.write(Some(&bike), "Можно посмотреть сегодня?").await;

    let first = avito.poll(&cx, &channel, Some(&start), &NoState).await.unwrap();
    let got = texts(&first);
    // Two chats written in the same second come in either order; one chat's keep theirs.
    let boris_said: Vec<&str> = got.iter().filter(|(u, _)| u == "55").map(|(_, t)| t.as_str()).collect();
    assert_eq!(boris_said, ["Ещё продаётся?", "Можно посмотреть сегодня?"], "{got:?}");
    assert!(got.contains(&("66".into(), "Здравствуйте".into())) && got.len() == 3, "{got:?}");
    let InboundEvent::Message(m) = &first
        .items
        .iter()
        .find(|r| matches!(&r.event, InboundEvent::Message(m) if m.sender.user_id == "55"))
        .unwrap()
        .event
    else {
        panic!("a message")
    };
    assert_eq!(
        m.context,
        Some(json!({"avito_item": {"id": 42, "title": "Велосипед", "url": bike.url, "price": "12 000 ₽"}}))
    );
    assert_eq!(m.sender.display_name.as_deref(), Some("Борис"));
    assert_eq!(m.sender.chat_id, boris.chat(Some(&bike)));
    let next = cursor_of(&first).expect("a cursor past them");

    // Not stored yet (a crash): the same cursor gives the same messages again.
    let again = avito.poll(&cx, &channel, Some(&start), &NoState).await.unwrap();
    assert_eq!(texts(&again), texts(&first));
    // Stored: nothing new, within the poll's time.
    let started = std::time::Instant::now();
    let quiet = avito.poll(&cx, &channel, Some(&next), &NoState).await.unwrap();
    assert!(quiet.items.is_empty(), "{:?}", quiet.items);
    assert!(started.elapsed() >= Duration::from_millis(300), "a quiet poll waits its time");
    // A message in the same second as the cursor still comes, once.
    boris.write(Some(&bike), "А торг?").await;
    let later = avito.poll(&cx, &channel, Some(&next), &NoState).await.unwrap();
    assert_eq!(texts(&later), [("55".into(), "А торг?".into())]);
    let last = cursor_of(&later).unwrap();
    assert!(avito.poll(&cx, &channel, Some(&last), &NoState).await.unwrap().items.is_empty());
    assert!(sim.reads().is_empty(), "reading by polling does not mark chats read");
}
