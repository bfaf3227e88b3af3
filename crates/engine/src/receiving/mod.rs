//! Receiving: what platforms report reaches okno by webhook ([`Engine::receive_hook`]) or by
//! long polling ([`Engine::run_pollers`], in `polling`), and each event goes down one path.
//!
//! ```text
//!  POST /hooks/{id} ─► platform.receive (verify, parse) ─┐
//!  poller ─► platform.poll(cursor) ──────────────────────┤
//!                                                        ▼
//!   a message or a press, in order:
//!     1. a press on a task's button    ─► the task (taken, details, dropped); nothing recorded
//!        (`tasks`)
//!     2. read before it is recorded: a link code, a task link, a stop word or an
//!        "unsubscribe" press (`subscription`), whether it may answer a survey
//!        (`surveys::turn`), whether the bot takes its turn
//!     3. recorded once (a platform's redelivery is a duplicate and ends here) — in the same
//!        transaction a broadcast answer and the subscription change are stored, and the bot's
//!        or a running survey's turn is queued
//!     4. a link code (`/start CODE` or the code typed) ─► the person linked, answered
//!        (`link_codes`)
//!     5. `/start task-<id>` ─► the task's details in private
//!     6. otherwise the operators' inbox (the bot after a link code)
//!   an edit, a block or unblock, a group's new id ─► recorded as they are
//!   delivery receipts ─► a sent message's status moved forward (a webhook request's together)
//! ```

mod link_codes;
mod polling;
pub(crate) mod subscription;

use okno_channel::{HookAnswer, HookRequest, InboundEvent, InboundMessage, Received};
use okno_domain::ids::ChannelId;
use okno_domain::model::Channel;
use okno_domain::Result;
use okno_store::Receipt;

use crate::tasks::Press;
use crate::{Engine, HookReply};

impl Engine {
    /// Handles a request to `POST /hooks/{channel_id}`: verified and parsed by the channel's
    /// platform, each event stored before the answer.
    pub async fn receive_hook(&self, channel_id: &ChannelId, request: &HookRequest<'_>) -> Result<HookReply> {
        let channel = self.channel(channel_id).await?;
        let platform = self.platform(&channel)?.clone();
        let state = self.channel_state(&channel.id);
        let events = platform.receive(&self.context, &channel, request, state.as_ref()).await?;
        let mut reply = HookReply::default();
        // Delivery receipts come many to a request (a status storm): applied together.
        let mut receipts = Vec::new();
        for received in events {
            if let InboundEvent::Status { external_id, status, reason } = received.event {
                receipts.push(Receipt { external_id, status, reason });
                continue;
            }
            let handled = self.handle_received(&channel, received).await?;
            if handled.id.is_some() {
                reply = handled;
            }
        }
        self.store.record_receipts(&channel.id, receipts).await?;
        reply.answer = platform.hook_answer(&channel, request);
        Ok(reply)
    }

    /// Answers a platform's verification request, or a person's link, to `GET /hooks/{channel_id}`.
    pub async fn verify_hook(&self, channel_id: &ChannelId, request: &HookRequest<'_>) -> Result<HookAnswer> {
        let channel = self.channel(channel_id).await?;
        let platform = self.platform(&channel)?;
        platform.verify_hook(&channel, request).unwrap_or_else(|| {
            Err(okno_domain::Error::invalid(
                "no_verification",
                format!("{} channels make no verification requests", channel.kind),
            ))
        })
    }

    /// What one event does. Returns the message it recorded, if any.
    pub(crate) async fn handle_received(&self, channel: &Channel, received: Received) -> Result<HookReply> {
        let none = HookReply::default();
        match received.event {
            InboundEvent::Message(msg) => self.inbound(channel, received.press_id.as_deref(), *msg).await,
            InboundEvent::Edit { user_id, external_id, text } => {
                let m = self.store.record_edit(&channel.id, &user_id, &external_id, text).await?;
                Ok(HookReply { id: m.map(|m| m.id), ..Default::default() })
            }
            InboundEvent::Membership { user_id, blocked } => {
                self.store.set_identity_blocked(&channel.id, &user_id, blocked).await?;
                Ok(none)
            }
            InboundEvent::Migrated { from, to } => {
                self.store.move_chat(&channel.id, &from, &to).await?;
                Ok(none)
            }
            InboundEvent::Status { external_id, status, reason } => {
                self.store.record_receipts(&channel.id, vec![Receipt { external_id, status, reason }]).await?;
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
            return Ok(HookReply { id, ..Default::default() });
        }
        if let Some(id) = press_id {
            self.answer_press(channel, id);
        }
        // Link codes and task links are private words to the bot, on platforms that have them.
        let caps = self.capabilities(channel)?;
        let text = msg.text.as_deref().filter(|_| !msg.sender.is_group);
        let code = text.filter(|_| caps.link_codes).and_then(link_codes::link_code);
        let task_start = text.filter(|_| caps.posts).and_then(crate::tasks::start_task);
        let sender = msg.sender.clone();
        // 2. What it asks of broadcasts, and whether the bot answers it: in private, when it
        // is no link code (the bot's turn then comes after the code is redeemed) and no opt-out.
        msg.subscription = subscription::asked(&msg);
        msg.survey = crate::surveys::turn(&msg);
        msg.bot_turn = !msg.sender.is_group
            && msg.subscription.is_none()
            && !msg.text.as_deref().is_some_and(okno_store::holds_link_code)
            && self.has_bot(&channel.id).await;
        // 3. Recorded once.
        let inbound = self.store.record_inbound(msg).await?;
        let reply =
            HookReply { id: Some(inbound.message.id.clone()), duplicate: inbound.duplicate, ..Default::default() };
        if inbound.duplicate {
            return Ok(reply);
        }
        self.metrics.inbound(channel.kind.as_str());
        // 4. A link code.
        if let Some((code, explicit)) = code {
            self.link(channel, &code, explicit, sender.clone(), &inbound.message.contact_id).await?;
        }
        match task_start {
            // 5. A task's details.
            Some(task_id) => self.task_start(channel, &sender.user_id, &task_id).await,
            // 6. The bot after a link code; the operators see it in the inbox.
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
}
