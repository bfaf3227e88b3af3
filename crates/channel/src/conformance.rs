//! The channel conformance suite: one set of scenarios every platform runs against its own
//! simulator, the way the store's suite runs on both databases. A platform's crate implements
//! [`Harness`] for its simulator in `tests/conformance.rs` and calls [`run`]; each scenario
//! panics with its name and what it saw when the platform does not hold.
//!
//! The scenarios: a configuration with good credentials connects and one with bad ones is
//! refused; a person's text, a button press, an edit and a block arrive as the right events, and
//! the same message delivered twice carries the same platform id (okno records it once); a text
//! full of markup-sensitive characters is shown exactly; a text over the platform's limit
//! arrives split, in order, whole; buttons are shown (or numbered lines where there are none);
//! the platform's "too many requests" is waited out or retried after the time
//! it asked; a permanent refusal ends the send with the platform's reason; a 5xx is retried.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_domain::model::{Button, Channel, Direction, Identity, Keyboard, Message, MessageStatus};
use serde_json::{json, Value};

use crate::{Adapter, ChannelState, Context, DeliveryTarget, InboundEvent, Platform, Received, SendError};

/// A failure the simulator is told to answer the next send with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// "Too many requests", asking to wait `1` second.
    TooManyRequests,
    /// A server error.
    ServerError,
    /// A refusal that will never change (the person blocked the bot…).
    Refused,
}

/// A platform and its simulator, as the suite drives them.
#[async_trait]
pub trait Harness: Send + Sync {
    fn platform(&self) -> Arc<dyn Platform>;
    fn context(&self) -> Context;
    /// A configuration the simulator accepts, and one whose credentials it refuses.
    fn good_config(&self) -> Value;
    fn bad_config(&self) -> Value;
    /// A person the channel may write to (they have written to it first where the platform
    /// requires that), as okno keeps them.
    async fn person(&self, channel: &Channel) -> Identity;
    /// The person writes `text`; returns what okno receives for it (by webhook or poll).
    async fn person_writes(&self, channel: &Channel, person: &Identity, text: &str) -> Vec<Received>;
    /// The same delivery again (a platform's retry after a lost answer).
    async fn redelivered(&self, channel: &Channel, person: &Identity) -> Vec<Received>;
    /// The person presses a button with `data` on the message okno sent as `external_id`.
    async fn person_presses(
        &self,
        channel: &Channel,
        person: &Identity,
        external_id: &str,
        data: &str,
    ) -> Vec<Received>;
    /// The person edits the message they wrote last; `None` where the platform has no edits.
    async fn person_edits(&self, channel: &Channel, person: &Identity, text: &str) -> Option<Vec<Received>>;
    /// The person blocks the bot; `None` where the platform does not report it.
    async fn person_blocks(&self, channel: &Channel, person: &Identity) -> Option<Vec<Received>>;
    /// The texts the person has been shown, oldest first.
    async fn shown(&self, person: &Identity) -> Vec<String>;
    /// The button labels under the last message the person was shown.
    async fn shown_buttons(&self, person: &Identity) -> Vec<String>;
    /// The next send fails with `fault`; `false` where the platform has no such answer (the
    /// scenario is left out for it).
    fn fail_next_send(&self, fault: Fault) -> bool;
}

/// What the suite keeps for a channel: button data, in memory. A platform's own tests use it
/// wherever a poll, a webhook or an adapter needs the engine's [`ChannelState`].
#[derive(Default)]
pub struct Memory {
    buttons: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl ChannelState for Memory {
    async fn button_token(&self, data: &str) -> okno_domain::Result<String> {
        let mut b = self.buttons.lock().map_err(|_| okno_domain::Error::internal("poisoned"))?;
        b.push(data.to_string());
        Ok((b.len() - 1).to_string())
    }

    async fn button_data(&self, token: &str) -> okno_domain::Result<Option<String>> {
        let b = self.buttons.lock().map_err(|_| okno_domain::Error::internal("poisoned"))?;
        Ok(token.parse::<usize>().ok().and_then(|i| b.get(i).cloned()))
    }

    async fn set_message_options(&self, _message_id: &str, _options: Value) -> okno_domain::Result<()> {
        Ok(())
    }
}

fn target(channel: &Channel, person: &Identity, text: &str, buttons: Keyboard, n: usize) -> DeliveryTarget {
    let message = Message {
        id: format!("msg-{n}").into(),
        conversation_id: "conv".into(),
        contact_id: person.contact_id.clone(),
        channel_id: channel.id.clone(),
        direction: Direction::Out,
        text: Some(text.to_string()),
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
    };
    DeliveryTarget {
        message,
        channel: channel.clone(),
        identity: person.clone(),
        reply_to_external: None,
        options: json!({}),
    }
}

fn only_message(name: &str, got: &[Received]) -> crate::InboundMessage {
    let messages: Vec<_> = got
        .iter()
        .filter_map(|r| match &r.event {
            InboundEvent::Message(m) => Some((**m).clone()),
            _ => None,
        })
        .collect();
    assert_eq!(messages.len(), 1, "{name}: one message expected, got {got:?}");
    messages.into_iter().next().unwrap_or_else(|| unreachable!())
}

/// Runs every scenario against `h`.
pub async fn run(h: &dyn Harness) {
    let platform = h.platform();
    let cx = h.context();
    let kind = platform.kind();

    // Connecting.
    let refused = platform.connect(&cx, &h.bad_config(), None).await;
    assert!(refused.is_err(), "{kind}: bad credentials must be refused, got {refused:?}");
    let connected =
        platform.connect(&cx, &h.good_config(), None).await.unwrap_or_else(|e| panic!("{kind}: connect: {e}"));
    platform
        .schema()
        .check(&h.good_config())
        .unwrap_or_else(|e| panic!("{kind}: the schema refuses the good config: {e}"));
    let channel = Channel {
        id: format!("conformance-{kind}").into(),
        kind,
        name: "conformance".into(),
        status: "active".into(),
        status_detail: None,
        info: connected.info.clone(),
        config: connected.config.clone(),
        created_at: 0,
    };
    let caps = platform.capabilities(&channel.config);
    let state: Arc<dyn ChannelState> = Arc::new(Memory::default());
    let adapter: Arc<dyn Adapter> =
        platform.adapter(&cx, &channel, state.clone()).unwrap_or_else(|e| panic!("{kind}: adapter: {e}"));
    let person = h.person(&channel).await;

    // Inbound: a text, and the same delivery again with the same platform id.
    let first = only_message("inbound text", &h.person_writes(&channel, &person, "Здравствуйте! <b>&").await);
    assert_eq!(first.text.as_deref(), Some("Здравствуйте! <b>&"), "{kind}: inbound text");
    assert_eq!(first.sender.user_id, person.user_id, "{kind}: inbound sender");
    let again = only_message("redelivery", &h.redelivered(&channel, &person).await);
    assert_eq!(again.external_id, first.external_id, "{kind}: a redelivery keeps its platform id");

    // Outbound: markup-sensitive text shown exactly.
    let tricky = "1 < 2 && 3 > 2 — <b>не жирный</b> *звёзды* _черта_ [ссылка](x) `код` \\ #тег";
    let sent = adapter.send(&target(&channel, &person, tricky, Vec::new(), 1)).await;
    let sent = sent.unwrap_or_else(|e| panic!("{kind}: sending text: {e}"));
    assert_eq!(h.shown(&person).await.last().map(String::as_str), Some(tricky), "{kind}: text shown exactly");

    // A text over the limit: split, in order, whole — where the platform splits.
    if caps.splits_long_text {
        let sentence = "Строка номер {n} длинного письма, в котором важен порядок. ";
        let mut long = String::new();
        let mut n = 0;
        while caps.text.len(&long) <= caps.text.max * 2 {
            long.push_str(&sentence.replace("{n}", &n.to_string()));
            n += 1;
        }
        let before = h.shown(&person).await.len();
        adapter
            .send(&target(&channel, &person, long.trim_end(), Vec::new(), 2))
            .await
            .unwrap_or_else(|e| panic!("{kind}: long text: {e}"));
        let parts: Vec<String> = h.shown(&person).await.into_iter().skip(before).collect();
        assert!(parts.len() >= 3, "{kind}: a text over twice the limit goes in 3+ parts, got {}", parts.len());
        assert!(parts.iter().all(|p| caps.text.fits(p)), "{kind}: every part within the limit");
        let joined: String =
            parts.iter().map(|p| p.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join(" ");
        assert_eq!(joined, long.split_whitespace().collect::<Vec<_>>().join(" "), "{kind}: parts whole and in order");
    }

    // Buttons, or numbered lines where there are none.
    let kb = vec![vec![
        Button { text: "Да".into(), data: Some("answer:yes".into()), url: None },
        Button { text: "Нет".into(), data: Some("answer:no".into()), url: None },
    ]];
    let with_buttons = adapter.send(&target(&channel, &person, "Подходит?", kb, 3)).await;
    let with_buttons = with_buttons.unwrap_or_else(|e| panic!("{kind}: buttons: {e}"));
    if caps.buttons.is_some() {
        assert_eq!(h.shown_buttons(&person).await, vec!["Да", "Нет"], "{kind}: buttons shown");
        let external = with_buttons.external_id.clone().unwrap_or_default();
        let press = only_message("press", &h.person_presses(&channel, &person, &external, "answer:yes").await);
        assert_eq!(press.button_data.as_deref(), Some("answer:yes"), "{kind}: the press carries its data");
    } else {
        let last = h.shown(&person).await.last().cloned().unwrap_or_default();
        assert!(last.contains("1. Да") && last.contains("2. Нет"), "{kind}: numbered lines, got {last:?}");
    }

    // An edit and a block, where the platform reports them.
    if let Some(got) = h.person_edits(&channel, &person, "исправлено").await {
        let edit = got.iter().find_map(|r| match &r.event {
            InboundEvent::Edit { text, user_id, .. } => Some((text.clone(), user_id.clone())),
            _ => None,
        });
        assert_eq!(edit, Some((Some("исправлено".into()), person.user_id.clone())), "{kind}: edit, got {got:?}");
    }
    if let Some(got) = h.person_blocks(&channel, &person).await {
        let blocked = got.iter().any(
            |r| matches!(&r.event, InboundEvent::Membership { blocked: true, user_id } if *user_id == person.user_id),
        );
        assert!(blocked, "{kind}: a block is reported, got {got:?}");
    }
    let _ = sent;

    // Faults: too many requests waited out or retried after the time asked; a server error
    // retried; a refusal ended with the platform's reason.
    assert!(h.fail_next_send(Fault::TooManyRequests), "{kind}: every platform can ask to slow down");
    match adapter.send(&target(&channel, &person, "после паузы", Vec::new(), 4)).await {
        Ok(_) => {
            assert_eq!(h.shown(&person).await.last().map(String::as_str), Some("после паузы"), "{kind}: waited out")
        }
        Err(SendError::Retry { after, .. }) => {
            assert!(
                after.is_some_and(|a| a >= Duration::from_secs(1)),
                "{kind}: retried after the time asked, got {after:?}"
            )
        }
        Err(e) => panic!("{kind}: too many requests must be waited out or retried, got {e:?}"),
    }
    assert!(h.fail_next_send(Fault::ServerError), "{kind}: every platform can fail for a while");
    let e = adapter.send(&target(&channel, &person, "после сбоя", Vec::new(), 5)).await;
    assert!(matches!(e, Err(SendError::Retry { .. })), "{kind}: a 5xx is retried, got {e:?}");
    if h.fail_next_send(Fault::Refused) {
        match adapter.send(&target(&channel, &person, "не дойдёт", Vec::new(), 6)).await {
            Err(SendError::Permanent { reason, .. }) => assert!(!reason.is_empty(), "{kind}: the platform's reason"),
            other => panic!("{kind}: a refusal ends the send for good, got {other:?}"),
        }
    }
}
