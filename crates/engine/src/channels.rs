//! Channels in the engine: the platform registry, a channel's configuration checked and
//! connected through its platform, the adapters that send (built once per configuration so
//! their rate limits hold), and the per-channel state platforms keep through okno.
//!
//! Nothing here knows one platform from another: each is found by its kind in [`Platforms`],
//! which the server fills from its registry.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use okno_channel::{Adapter, Capabilities, ChannelState, Platform};
use okno_domain::ids::{ChannelId, ConversationId, MessageId};
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::{Error, Result};
use okno_store::{ChannelPatch, Store};
use serde_json::Value;

use crate::Engine;

/// The platforms okno speaks, by kind.
#[derive(Clone, Default)]
pub struct Platforms {
    by_kind: HashMap<ChannelKind, Arc<dyn Platform>>,
}

impl Platforms {
    pub fn new(platforms: impl IntoIterator<Item = Arc<dyn Platform>>) -> Self {
        Platforms { by_kind: platforms.into_iter().map(|p| (p.kind(), p)).collect() }
    }

    /// The platform of `kind`.
    pub fn get(&self, kind: ChannelKind) -> Result<&Arc<dyn Platform>> {
        self.by_kind
            .get(&kind)
            .ok_or_else(|| Error::invalid("unknown_channel_kind", format!("okno has no `{kind}` channels")))
    }

    /// Every platform, in the order of their kinds' names.
    pub fn all(&self) -> Vec<&Arc<dyn Platform>> {
        let mut all: Vec<_> = self.by_kind.values().collect();
        all.sort_by_key(|p| p.kind().as_str());
        all
    }
}

/// What a platform keeps through okno for one channel: long button data, a long text's
/// progress.
struct KeptInStore {
    store: Arc<dyn Store>,
    channel_id: ChannelId,
}

#[async_trait]
impl ChannelState for KeptInStore {
    async fn button_token(&self, data: &str) -> Result<String> {
        self.store.callback_token(&self.channel_id, data).await
    }

    async fn button_data(&self, token: &str) -> Result<Option<String>> {
        self.store.callback_data(&self.channel_id, token).await
    }

    async fn set_message_options(&self, message_id: &str, options: Value) -> Result<()> {
        self.store.set_message_options(&MessageId::from(message_id), options).await
    }

    async fn conversation_context(&self, conversation_id: &str) -> Result<Option<Value>> {
        self.store.platform_context(&ConversationId::from(conversation_id)).await
    }
}

impl Engine {
    /// The platform of a channel.
    pub fn platform(&self, channel: &Channel) -> Result<&Arc<dyn Platform>> {
        self.platforms.get(channel.kind)
    }

    /// What a channel can do.
    pub fn capabilities(&self, channel: &Channel) -> Result<Capabilities> {
        Ok(self.platform(channel)?.capabilities(&channel.config))
    }

    /// The state a channel's platform keeps through okno.
    pub(crate) fn channel_state(&self, channel_id: &ChannelId) -> Arc<dyn ChannelState> {
        Arc::new(KeptInStore { store: self.store.clone(), channel_id: channel_id.clone() })
    }

    /// Checks a channel's configuration against its platform's schema, then connects it (a
    /// token checked with the platform…); returns the config to store and the public facts
    /// about the account. `previous` is the stored config when one is being changed: what okno
    /// itself keeps there may come back unchanged.
    pub async fn validate_channel(
        &self,
        kind: ChannelKind,
        config: &Value,
        previous: Option<&Value>,
    ) -> Result<(Value, Value)> {
        let platform = self.platforms.get(kind)?;
        let schema = platform.schema();
        let mut given = config.clone();
        if let (Some(given), Some(previous)) = (given.as_object_mut(), previous) {
            given.retain(|k, v| !schema.field(k).is_some_and(|f| f.internal && previous.get(k) == Some(v)));
        }
        schema.check(&given)?;
        let connected = platform.connect(&self.context, config, previous).await?;
        Ok((connected.config, connected.info))
    }

    /// Makes the platform deliver the way the channel says (a webhook registered or removed),
    /// and marks a channel that reported a problem active again.
    pub async fn apply_receive_mode(&self, channel: &Channel) -> Result<()> {
        self.platform(channel)?.apply_receive_mode(&self.context, channel).await?;
        // A conflict reported by the previous mode is over.
        if channel.status != "active" {
            self.set_status(&channel.id, "active", None).await;
        }
        self.wake_pollers();
        Ok(())
    }

    /// The adapter for a channel, built once per configuration and shared, so its rate
    /// limits hold across sends.
    pub(crate) fn adapter_for(&self, channel: &Channel) -> Result<Arc<dyn Adapter>> {
        let mut cache = self.adapters.lock().map_err(|_| Error::internal("adapter cache poisoned"))?;
        if let Some((config, adapter)) = cache.get(&channel.id) {
            if *config == channel.config {
                return Ok(adapter.clone());
            }
        }
        let adapter = self.platform(channel)?.adapter(&self.context, channel, self.channel_state(&channel.id))?;
        cache.insert(channel.id.clone(), (channel.config.clone(), adapter.clone()));
        Ok(adapter)
    }

    /// A channel, read through a short-lived cache. Changes made by this process apply at
    /// once ([`Engine::forget_channel`]); changes made by another process within
    /// [`crate::CHANNEL_TTL`].
    pub async fn channel(&self, id: &ChannelId) -> Result<Channel> {
        if let Ok(cache) = self.channels.lock() {
            if let Some((at, ch)) = cache.get(id) {
                if at.elapsed() < crate::CHANNEL_TTL {
                    return Ok(ch.clone());
                }
            }
        }
        let ch = self.store.get_channel(id).await?;
        if let Ok(mut cache) = self.channels.lock() {
            cache.insert(id.clone(), (std::time::Instant::now(), ch.clone()));
        }
        Ok(ch)
    }

    /// Drops a channel from the cache after it changed.
    pub fn forget_channel(&self, id: &ChannelId) {
        if let Ok(mut cache) = self.channels.lock() {
            cache.remove(id);
        }
        if let Ok(mut windows) = self.windows.lock() {
            *windows = None;
        }
    }

    /// Whether any channel keeps a customer-service window (read again after
    /// [`crate::CHANNEL_TTL`], or at once after a channel changed).
    pub(crate) async fn any_window(&self) -> Result<bool> {
        if let Ok(w) = self.windows.lock() {
            if let Some((at, any)) = *w {
                if at.elapsed() < crate::CHANNEL_TTL {
                    return Ok(any);
                }
            }
        }
        let any = self
            .store
            .list_channels()
            .await?
            .iter()
            .any(|c| self.capabilities(c).is_ok_and(|caps| caps.service_window.is_some()));
        if let Ok(mut w) = self.windows.lock() {
            *w = Some((std::time::Instant::now(), any));
        }
        Ok(any)
    }

    /// Records a channel's status (`active`, or `error` with the platform's words).
    pub(crate) async fn set_status(&self, channel_id: &ChannelId, status: &str, detail: Option<String>) {
        let patch = ChannelPatch { status: Some((status.to_string(), detail)), ..Default::default() };
        if let Err(e) = self.store.update_channel(channel_id, patch).await {
            tracing::warn!(channel = %channel_id, error = %e, "recording the channel status failed");
        }
        self.forget_channel(channel_id);
    }
}
