//! Rate limits as a wrapper around any adapter: a token bucket for the whole account and one
//! per chat, both optional, so a channel never sends faster than its platform allows.

use std::num::NonZeroU32;
use std::sync::Arc;

use crate::DeliveryTarget;
use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use okno_domain::model::ChannelKind;
use serde::Deserialize;

use crate::{Adapter, Post, Posted, PressAnswer, SendError, Sent};

/// Limits for one channel. Absent values mean "no limit".
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Messages per second over the whole account.
    pub per_second: Option<u32>,
    /// Messages per minute to one chat.
    pub per_chat_per_minute: Option<u32>,
    /// How many messages may go at once before the rate applies.
    pub burst: Option<u32>,
}

/// An adapter that waits for its rate limits before each send.
pub struct Throttled<A> {
    inner: A,
    global: Option<DefaultDirectRateLimiter>,
    per_chat: Option<DefaultKeyedRateLimiter<String>>,
}

impl<A: Adapter> Throttled<A> {
    pub fn new(inner: A, limits: &Limits) -> Self {
        let burst = limits.burst.and_then(NonZeroU32::new);
        let global = limits.per_second.and_then(NonZeroU32::new).map(|n| {
            let q = Quota::per_second(n);
            governor::RateLimiter::direct(burst.map_or(q, |b| q.allow_burst(b)))
        });
        let per_chat = limits.per_chat_per_minute.and_then(NonZeroU32::new).map(|n| {
            let q = Quota::per_minute(n);
            governor::RateLimiter::keyed(burst.map_or(q, |b| q.allow_burst(b)))
        });
        Self { inner, global, per_chat }
    }
}

#[async_trait]
impl<A: Adapter> Adapter for Throttled<A> {
    fn kind(&self) -> ChannelKind {
        self.inner.kind()
    }

    async fn send(&self, target: &DeliveryTarget) -> Result<Sent, SendError> {
        // The chat's own limit first: waiting on it must not hold a slot of the global budget.
        if let Some(per_chat) = &self.per_chat {
            per_chat.until_key_ready(&self.inner.chat_key(target)).await;
        }
        if let Some(global) = &self.global {
            global.until_ready().await;
        }
        self.inner.send(target).await
    }

    fn chat_key(&self, target: &DeliveryTarget) -> String {
        self.inner.chat_key(target)
    }

    async fn edit_buttons(
        &self,
        target: &DeliveryTarget,
        buttons: &okno_domain::model::Keyboard,
    ) -> Result<(), SendError> {
        self.inner.edit_buttons(target, buttons).await
    }

    async fn chat_action(&self, chat_id: &str, action: &str) -> Result<(), SendError> {
        self.inner.chat_action(chat_id, action).await
    }

    async fn mark_read(&self, chat_id: &str, external_id: &str) -> Result<(), SendError> {
        self.inner.mark_read(chat_id, external_id).await
    }

    async fn set_commands(&self, commands: &[(String, String)]) -> Result<(), SendError> {
        self.inner.set_commands(commands).await
    }

    async fn answer_press(&self, press_id: &str, answer: &PressAnswer) -> Result<(), SendError> {
        self.inner.answer_press(press_id, answer).await
    }

    async fn post(&self, post: &Post) -> Result<Posted, SendError> {
        self.inner.post(post).await
    }

    async fn edit_post(&self, at: &Posted, post: &Post) -> Result<(), SendError> {
        self.inner.edit_post(at, post).await
    }

    async fn clear_buttons(&self, at: &Posted) -> Result<(), SendError> {
        self.inner.clear_buttons(at).await
    }

    async fn delete_post(&self, at: &Posted) -> Result<(), SendError> {
        self.inner.delete_post(at).await
    }

    fn posted(&self, external_id: &str) -> Option<Posted> {
        self.inner.posted(external_id)
    }
}

/// Any adapter behind an `Arc` is an adapter.
#[async_trait]
impl<A: Adapter + ?Sized> Adapter for Arc<A> {
    fn kind(&self) -> ChannelKind {
        (**self).kind()
    }
    async fn send(&self, target: &DeliveryTarget) -> Result<Sent, SendError> {
        (**self).send(target).await
    }
    fn chat_key(&self, target: &DeliveryTarget) -> String {
        (**self).chat_key(target)
    }
    async fn edit_buttons(
        &self,
        target: &DeliveryTarget,
        buttons: &okno_domain::model::Keyboard,
    ) -> Result<(), SendError> {
        (**self).edit_buttons(target, buttons).await
    }
    async fn chat_action(&self, chat_id: &str, action: &str) -> Result<(), SendError> {
        (**self).chat_action(chat_id, action).await
    }

    async fn mark_read(&self, chat_id: &str, external_id: &str) -> Result<(), SendError> {
        (**self).mark_read(chat_id, external_id).await
    }

    async fn set_commands(&self, commands: &[(String, String)]) -> Result<(), SendError> {
        (**self).set_commands(commands).await
    }

    async fn answer_press(&self, press_id: &str, answer: &PressAnswer) -> Result<(), SendError> {
        (**self).answer_press(press_id, answer).await
    }

    async fn post(&self, post: &Post) -> Result<Posted, SendError> {
        (**self).post(post).await
    }

    async fn edit_post(&self, at: &Posted, post: &Post) -> Result<(), SendError> {
        (**self).edit_post(at, post).await
    }

    async fn clear_buttons(&self, at: &Posted) -> Result<(), SendError> {
        (**self).clear_buttons(at).await
    }

    async fn delete_post(&self, at: &Posted) -> Result<(), SendError> {
        (**self).delete_post(at).await
    }

    fn posted(&self, external_id: &str) -> Option<Posted> {
        (**self).posted(external_id)
    }
}
