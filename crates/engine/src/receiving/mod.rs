//! Receiving: what platforms report reaches okno by webhook ([`Engine::receive_hook`]) or by
//! long polling ([`Engine::run_pollers`]), and each event goes down one path.
//!
//! ```text
//!  POST /hooks/{id} ─► platform.receive (verify, parse) ─┐
//!  poller ─► platform.poll(cursor) ──────────────────────┤
//!                                                        ▼
//!   a message or a press, in order:
//!     1. a press on a task's button    ─► the task (taken, details, dropped); nothing recorded
//!     2. recorded once (a platform's redelivery is a duplicate and ends here) — in the same
//!        transaction a broadcast opt-out or answer and a survey answer are read
//!     3. a link code (`/start CODE` or the code typed) ─► the person linked, answered
//!     4. `/start task-<id>` ─► the task's details in private
//!     5. otherwise the channel's bot, or the operators' inbox
//!   an edit, a block or unblock, a group's new id ─► recorded as they are
//! ```
//!
//! Polling, one task per polled channel, held by one process at a time through a lease:
//! ```text
//!   ┌─► take/renew the lease ─(held elsewhere)─► stop; the supervisor looks again
//!   │   poll(cursor) ─► for each event: handle (stored durably), then cursor = its cursor (stored)
//!   │   refused (another poller, a webhook, bad credentials) ─► channel `error` with the
//!   │                                                          platform's words, slow retry
//!   └── channel deleted or no longer polled ─► release the lease, stop
//! ```
//! A crash between handling an event and storing the cursor makes the platform send the event
//! again; handling is idempotent, so nothing is lost or doubled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use okno_channel::{InboundEvent, InboundMessage, PollError, Received};
use okno_domain::model::Channel;
use okno_domain::Result;
use okno_store::{InboundSender, LinkOutcome, OutboundRequest, Recipient};
use reqwest::header::HeaderMap;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::tasks::Press;
use crate::{Engine, HookReply};

/// How long a poller's lease lasts; it is renewed on every poll.
const POLL_LEASE_MS: i64 = 90_000;

impl Engine {
    /// Handles a request to `POST /hooks/{channel_id}`: verified and parsed by the channel's
    /// platform, each event stored before the answer.
    pub async fn receive_hook(&self, channel_id: &str, headers: &HeaderMap, body: &[u8]) -> Result<HookReply> {
        let channel = self.channel(channel_id).await?;
        let platform = self.platform(&channel)?.clone();
        let state = self.channel_state(&channel.id);
        let events = platform.receive(&self.context, &channel, headers, body, state.as_ref()).await?;
        let mut reply = HookReply { id: None, duplicate: false };
        for received in events {
            let handled = self.handle_received(&channel, received).await?;
            if handled.id.is_some() {
                reply = handled;
            }
        }
        Ok(reply)
    }

    /// What one event does. Returns the message it recorded, if any.
    pub(crate) async fn handle_received(&self, channel: &Channel, received: Received) -> Result<HookReply> {
        let none = HookReply { id: None, duplicate: false };
        match received.event {
            InboundEvent::Message(msg) => self.inbound(channel, received.press_id.as_deref(), *msg).await,
            InboundEvent::Edit { user_id, external_id, text } => {
                let m = self.store.record_edit(&channel.id, &user_id, &external_id, text).await?;
                Ok(HookReply { id: m.map(|m| m.id), duplicate: false })
            }
            InboundEvent::Membership { user_id, blocked } => {
                self.store.set_identity_blocked(&channel.id, &user_id, blocked).await?;
                Ok(none)
            }
            InboundEvent::Migrated { from, to } => {
                self.store.move_chat(&channel.id, &from, &to).await?;
                Ok(none)
            }
            InboundEvent::Ignore => Ok(none),
        }
    }

    /// A message or a press, down the inbound path (see the module's map).
    async fn inbound(&self, channel: &Channel, press_id: Option<&str>, mut msg: InboundMessage) -> Result<HookReply> {
        // 1. A task's button.
        if let Some(press) = Press::of(press_id, &msg) {
            let id = self.task_press(channel, &press).await?;
            return Ok(HookReply { id, duplicate: false });
        }
        if let Some(id) = press_id {
            self.answer_press(channel, id);
        }
        // Link codes and task links are private words to the bot, on platforms that have them.
        let caps = self.capabilities(channel)?;
        let text = msg.text.as_deref().filter(|_| !msg.sender.is_group);
        let code = text.filter(|_| caps.link_codes).and_then(link_code);
        let task_start = text.filter(|_| caps.posts).and_then(crate::tasks::start_task);
        let sender = msg.sender.clone();
        // 2. Recorded once.
        msg.bot_turn = self.has_bot(&channel.id).await;
        let inbound = self.store.record_inbound(msg).await?;
        let reply = HookReply { id: Some(inbound.message.id.clone()), duplicate: inbound.duplicate };
        if inbound.duplicate {
            return Ok(reply);
        }
        self.metrics.inbound(channel.kind.as_str());
        // 3. A link code.
        if let Some((code, explicit)) = code {
            self.link(channel, &code, explicit, sender.clone(), &inbound.message.contact_id).await?;
        }
        match task_start {
            // 4. A task's details.
            Some(task_id) => self.task_start(channel, &sender.user_id, &task_id).await,
            // 5. The bot or the operators.
            None => self.after_inbound(&inbound.message).await?,
        }
        self.wake();
        Ok(reply)
    }

    /// Answers a button press at once, so the person's client stops waiting; the press itself
    /// is recorded and delivered as `button.pressed`.
    fn answer_press(&self, channel: &Channel, press_id: &str) {
        let Ok(adapter) = self.adapter_for(channel) else { return };
        let press_id = press_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = adapter.answer_press(&press_id, &okno_channel::PressAnswer::silent()).await {
                tracing::warn!(error = %e, "answering a button press failed");
            }
        });
    }

    /// Redeems a link code and answers the person.
    async fn link(
        &self,
        channel: &Channel,
        code: &str,
        explicit: bool,
        sender: InboundSender,
        contact_id: &str,
    ) -> Result<()> {
        let outcome = self.store.redeem_link_code(code, &channel.id, sender).await?;
        // A typed word that merely looks like a code (an order number…) is an ordinary message.
        if outcome == LinkOutcome::Unknown && !explicit {
            return Ok(());
        }
        let (to, text) = match outcome {
            LinkOutcome::Linked(contact) => {
                let name = contact.name.clone().unwrap_or_default();
                let text = if name.is_empty() {
                    "Готово! Ваш аккаунт связан.".to_string()
                } else {
                    format!("Готово! Ваш аккаунт связан: {name}.")
                };
                (contact.id.clone(), text)
            }
            LinkOutcome::Expired => (contact_id.to_string(), "Срок действия кода истёк. Попросите новый код.".into()),
            LinkOutcome::AlreadyUsed => {
                (contact_id.to_string(), "Этот код уже использован. Попросите новый код.".into())
            }
            LinkOutcome::Unknown => {
                (contact_id.to_string(), "Код не найден. Проверьте его или попросите новый.".into())
            }
        };
        self.send(OutboundRequest {
            to: Recipient::Contact(to),
            channel_id: Some(channel.id.clone()),
            text: Some(text),
            buttons: Vec::new(),
            attachment_ids: Vec::new(),
            idempotency_key: None,
            author: Some("okno".into()),
            reply_to: None,
            options: json!({}),
        })
        .await?;
        Ok(())
    }

    // --- polling ---------------------------------------------------------------------------

    pub(crate) fn wake_pollers(&self) {
        self.pollers_wake.notify_one();
    }

    /// Keeps one poller running per channel its platform polls (each takes the channel's lease
    /// before it polls, so across processes exactly one polls an account).
    pub async fn run_pollers(self: Arc<Self>, shutdown: CancellationToken) {
        let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            match self.store.list_channels().await {
                Ok(channels) => {
                    let wanted: Vec<&Channel> =
                        channels.iter().filter(|c| self.platform(c).is_ok_and(|p| p.polls(c))).collect();
                    running.retain(|id, task| !task.is_finished() && wanted.iter().any(|c| &c.id == id));
                    for ch in wanted {
                        if !running.contains_key(&ch.id) {
                            let engine = self.clone();
                            let id = ch.id.clone();
                            let stop = shutdown.clone();
                            running.insert(
                                ch.id.clone(),
                                tokio::spawn(async move { engine.poll_channel(id, stop).await }),
                            );
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing channels for polling failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.pollers_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(self.cfg.poller_check_ms)) => {}
            }
        }
        for (_, task) in running {
            let _ = task.await;
        }
    }

    async fn poll_channel(self: Arc<Self>, channel_id: String, shutdown: CancellationToken) {
        let mut backoff = Duration::from_secs(1);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match self.store.take_channel_lease(&channel_id, &self.owner, POLL_LEASE_MS).await {
                Ok(true) => {}
                // Another process polls this channel; the supervisor will look again.
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(channel = %channel_id, error = %e, "taking the polling lease failed");
                    return;
                }
            }
            let channel = match self.store.get_channel(&channel_id).await {
                Ok(c) => c,
                Err(_) => break,
            };
            let Ok(platform) = self.platform(&channel).cloned() else { break };
            if !platform.polls(&channel) {
                break;
            }
            let cursor = match self.store.poll_offset(&channel_id).await {
                Ok(o) => o.to_string(),
                Err(e) => {
                    tracing::warn!(channel = %channel_id, error = %e, "reading the poll cursor failed");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let state = self.channel_state(&channel_id);
            let polled = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = platform.poll(&self.context, &channel, Some(&cursor), state.as_ref()) => r,
            };
            match polled {
                Ok(polled) => {
                    backoff = Duration::from_secs(1);
                    if channel.status != "active" {
                        self.set_status(&channel_id, "active", None).await;
                    }
                    // The cursor moves past an event only once it is stored.
                    let mut confirmed = None;
                    for received in polled.items {
                        let next = received.cursor.clone();
                        if let Err(e) = self.handle_received(&channel, received).await {
                            tracing::warn!(channel = %channel_id, error = %e, "handling a polled event failed");
                            tokio::time::sleep(backoff).await;
                            break;
                        }
                        confirmed = next.or(confirmed);
                    }
                    if let Some(next) = confirmed.and_then(|c| c.parse::<i64>().ok()) {
                        if let Err(e) = self.store.set_poll_offset(&channel_id, next).await {
                            tracing::warn!(channel = %channel_id, error = %e, "storing the poll cursor failed");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(channel = %channel_id, kind = %channel.kind, error = ?e, "polling failed");
                    let wait = match e {
                        PollError::Wait(wait) => wait,
                        PollError::Refused(reason) => {
                            self.set_status(&channel_id, "error", Some(reason)).await;
                            Duration::from_millis(self.cfg.poll_conflict_wait_ms)
                        }
                        PollError::Network(_) => backoff,
                    };
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(wait) => {} }
                }
            }
        }
        let _ = self.store.drop_channel_lease(&channel_id, &self.owner).await;
    }
}

/// A link code in a private message: `/start CODE` from a deep link (`true`: explicit), or the
/// bare code typed in.
fn link_code(text: &str) -> Option<(String, bool)> {
    let (code, explicit) = okno_store::start_payload(text).map(|c| (c, true)).unwrap_or((text.trim(), false));
    okno_store::is_link_code(code).then(|| (code.to_string(), explicit))
}
