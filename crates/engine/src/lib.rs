//! The engine: everything okno does between the API and the platforms. It accepts inbound
//! messages from channel hooks, queues outbound ones, and runs the delivery workers that
//! drain the outbox through the channel adapters and the outgoing-webhook client.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use okno_channel::http::SafeClient;
use okno_channel::Adapter;
use okno_domain::ids::{ChannelId, ConversationId, MessageId};
use okno_domain::model::*;
use okno_domain::{Error, Result};
use okno_store::{OutboundRequest, PageRequest, Store};
pub use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::sync::Notify;

pub mod addresses;
pub mod bots;
pub mod broadcasts;
pub mod channels;
pub mod connectors;
pub mod contacts;
pub mod estimate;
pub mod events;
pub mod metrics;
mod reaper;
mod receiving;
pub mod render;
pub mod surveys;
pub mod tasks;
pub mod templates;
pub mod unread;
pub use reaper::REAP_EVERY;
mod wakeups;
pub mod window;
mod worker;

pub use channels::Platforms;
pub use metrics::Metrics;
pub use okno_channel::files::FileStore;

/// What a hook request produced.
#[derive(Debug, Clone, Default)]
pub struct HookReply {
    /// The message recorded, if the request carried one.
    pub id: Option<MessageId>,
    pub duplicate: bool,
    /// What the platform is answered.
    pub answer: okno_channel::HookAnswer,
}

/// How long another process's change to a channel may take to reach this one.
pub const CHANNEL_TTL: Duration = Duration::from_secs(2);

/// How the engine behaves; filled from the server's settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// The base URL platforms and receivers use to reach okno.
    pub public_url: String,
    pub allow_private_targets: bool,
    /// Private addresses (IP and port) okno may call even when private targets are not
    /// allowed: the services a program embedding okno runs beside it.
    pub private_target_exceptions: Vec<std::net::SocketAddr>,
    /// Certificates (PEM) trusted for outgoing HTTPS besides the public web's roots.
    pub extra_roots: Vec<u8>,
    /// Largest attachment okno downloads or accepts.
    pub max_attachment_bytes: u64,
    /// Jobs processed at once by this process.
    pub workers: usize,
    /// Broadcast sends processed at once, besides `workers` (the bulk lane's own capacity, so
    /// that a broadcast never takes the workers live conversations need).
    pub bulk_workers: usize,
    /// How long a claimed job stays leased before another process may take it.
    pub lease_ms: i64,
    /// How often idle workers look for due jobs written by other processes.
    pub poll_interval_ms: u64,
    pub send_max_attempts: i64,
    pub webhook_max_attempts: i64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub http_timeout_ms: u64,
    /// How long a graceful shutdown waits for in-flight jobs.
    pub shutdown_grace_ms: u64,
    /// Long-poll timeout a poller asks of its platform.
    pub poll_timeout_secs: u64,
    /// How often the poller supervisor looks for channels to poll.
    pub poller_check_ms: u64,
    /// How long a poller waits after a conflict (another poller, a webhook) before trying again.
    pub poll_conflict_wait_ms: u64,
    /// Time zone for dates in notifications when the contact has none (`attrs.tz`).
    pub default_timezone: String,
    /// Bounds of every template render, and the worker program that renders.
    pub templates: render::RenderLimits,
}

impl EngineConfig {
    pub fn new(data_dir: PathBuf, public_url: String) -> Self {
        Self {
            data_dir,
            public_url,
            allow_private_targets: false,
            private_target_exceptions: Vec::new(),
            extra_roots: Vec::new(),
            max_attachment_bytes: 20 * 1024 * 1024,
            workers: 64,
            bulk_workers: 8,
            lease_ms: 60_000,
            poll_interval_ms: 500,
            send_max_attempts: 10,
            webhook_max_attempts: 80,
            retry_base_ms: 1_000,
            retry_max_ms: 3_600_000,
            http_timeout_ms: 30_000,
            shutdown_grace_ms: 10_000,
            poll_timeout_secs: 25,
            poller_check_ms: 2_000,
            poll_conflict_wait_ms: 30_000,
            default_timezone: "UTC".into(),
            templates: render::RenderLimits::default(),
        }
    }
}

/// An adapter with the configuration it was built from.
type CachedAdapter = (Value, Arc<dyn Adapter>);

/// The running engine, shared by the API handlers and the workers.
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub cfg: EngineConfig,
    pub http: SafeClient,
    /// For addresses an administrator configured (a bot's `http.base_url`): these may be on
    /// the company's own network.
    pub admin_http: SafeClient,
    pub files: FileStore,
    pub metrics: Metrics,
    /// Renders every template and condition, in worker processes (see [`render`]).
    pub renderer: render::Renderer,
    /// The platforms okno speaks, by kind.
    pub platforms: Platforms,
    /// What the platforms may use of okno.
    context: okno_channel::Context,
    adapters: Mutex<HashMap<ChannelId, CachedAdapter>>,
    /// Recently read channels: every inbound request needs its channel's secret.
    channels: Mutex<HashMap<ChannelId, (std::time::Instant, Channel)>>,
    /// Whether some channel keeps a customer-service window, and when that was read: a send
    /// loads its conversation for the window only where there can be one.
    windows: Mutex<Option<(std::time::Instant, bool)>>,
    /// New live-lane work for this process's workers.
    wake: Notify,
    /// New broadcast-lane work for this process's workers.
    wake_bulk: Notify,
    pollers_wake: Notify,
    /// For this process's live pages: something may have changed ([`Engine::changed`]).
    changes: Notify,
    /// For the other processes on the database: there is something new ([`wakeups`]).
    announce: Notify,
    /// Whether what is to be announced includes broadcast-lane work.
    announce_bulk: std::sync::atomic::AtomicBool,
    /// This process's name on the leases it takes.
    owner: String,
    /// Whether each channel has a bot, recently read.
    bots: Mutex<HashMap<String, (std::time::Instant, bool)>>,
    /// Paused and cancelled broadcasts, recently read (their queued sends wait or are dropped).
    held: Mutex<(Option<std::time::Instant>, HashMap<String, String>)>,
    /// amoCRM connectors' clients (each with its rate limit), by connector.
    amocrm: connectors::Clients<okno_connector_amocrm::AmoClient>,
    /// One amoCRM OAuth refresh at a time in this process (a refresh token works once).
    amocrm_refresh: tokio::sync::Mutex<()>,
    /// The engine itself, for tasks that outlive a call.
    me: std::sync::Weak<Engine>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, cfg: EngineConfig, platforms: Platforms) -> Result<Arc<Self>> {
        let http = SafeClient::with_roots(
            cfg.allow_private_targets,
            cfg.private_target_exceptions.clone(),
            Duration::from_millis(cfg.http_timeout_ms),
            &cfg.extra_roots,
        )?;
        let files = FileStore::new(cfg.data_dir.join("files")).map_err(|e| {
            Error::invalid("data_dir_unusable", format!("cannot use `{}`: {e}", cfg.data_dir.display()))
        })?;
        let admin_http = SafeClient::new(true, Duration::from_millis(cfg.http_timeout_ms))?;
        let metrics = Metrics::new();
        let renderer = render::Renderer::pool(cfg.templates.clone(), metrics.render_kills());
        let context = okno_channel::Context {
            http: http.clone(),
            public_url: cfg.public_url.clone(),
            files: files.clone(),
            max_download: cfg.max_attachment_bytes,
            poll_timeout: Duration::from_secs(cfg.poll_timeout_secs),
        };
        Ok(Arc::new_cyclic(|me| Self {
            admin_http,
            amocrm: Default::default(),
            amocrm_refresh: tokio::sync::Mutex::new(()),
            me: me.clone(),
            bots: Mutex::new(HashMap::new()),
            held: Mutex::new((None, HashMap::new())),
            store,
            http,
            files,
            metrics,
            renderer,
            platforms,
            context,
            adapters: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            windows: Mutex::new(None),
            wake: Notify::new(),
            wake_bulk: Notify::new(),
            pollers_wake: Notify::new(),
            changes: Notify::new(),
            announce: Notify::new(),
            announce_bulk: std::sync::atomic::AtomicBool::new(false),
            owner: format!("{}-{}", std::process::id(), okno_domain::ids::random_hex(4)),
            cfg,
        }))
    }

    /// The engine as an `Arc`, for a task that outlives the call (none once it is shutting down).
    pub fn self_ref(&self) -> Option<Arc<Engine>> {
        self.me.upgrade()
    }

    /// Tells the workers that new live-lane work is due — this process's at once, the other
    /// processes' on the same database by an announcement ([`wakeups`]) — and the live pages
    /// that conversations may have changed.
    pub fn wake(&self) {
        self.wake.notify_one();
        self.changes.notify_one();
        self.announce.notify_one();
    }

    /// [`Engine::wake`] for broadcast-lane work (broadcast sends queued, paused ones resumed):
    /// only then do the workers look in that lane, besides their poll.
    pub fn wake_bulk(&self) {
        self.wake_bulk.notify_one();
        self.announce_bulk.store(true, std::sync::atomic::Ordering::Release);
        self.wake();
    }

    /// Replaces the buttons of a sent message on its platform (an empty keyboard removes them).
    pub async fn edit_buttons(&self, message_id: &MessageId, buttons: Keyboard) -> Result<Message> {
        validate_keyboard(&buttons)?;
        let target = self.store.delivery_target(message_id).await?;
        let adapter = self.adapter_for(&target.channel)?;
        adapter.edit_buttons(&target, &buttons).await.map_err(|e| match e {
            okno_channel::SendError::Retry { reason, .. } => Error::unavailable("platform_unavailable", reason),
            other => Error::unprocessable("edit_failed", other.to_string()),
        })?;
        self.store.set_message_buttons(message_id, buttons).await
    }

    /// Shows "typing…" (or "upload_document"…) in a conversation's chat while something slow
    /// is prepared.
    pub async fn chat_action(&self, conversation_id: &ConversationId, action: &str) -> Result<()> {
        let conv = self.store.get_conversation(conversation_id).await?;
        let Some(channel_id) = conv.last_inbound_channel_id.clone() else { return Ok(()) };
        let Some(identity) = conv.contact.identities.iter().find(|i| i.channel_id == channel_id) else { return Ok(()) };
        let channel = self.channel(&channel_id).await?;
        let adapter = self.adapter_for(&channel)?;
        adapter
            .chat_action(&identity.chat_id, action)
            .await
            .map_err(|e| Error::unprocessable("chat_action_failed", e.to_string()))
    }

    /// An operator read a conversation: its last inbound message is marked read on its
    /// platform (WhatsApp's blue ticks), in the background; a failure is only logged.
    pub fn mark_read_on_platform(&self, conversation_id: &ConversationId) {
        let Some(engine) = self.me.upgrade() else { return };
        let id = conversation_id.clone();
        tokio::spawn(async move {
            let last_inbound = async {
                // Pages run oldest first: the last inbound message is on the last page with one.
                let (mut cursor, mut last) = (None, None);
                for _ in 0..100 {
                    let page = engine.store.list_messages(&id, PageRequest::new(Some(500), cursor)).await?;
                    if let Some(m) = page.items.iter().rev().find(|m| m.direction == okno_domain::model::Direction::In)
                    {
                        last = Some(m.clone());
                    }
                    match page.next {
                        Some(n) => cursor = Some(n),
                        None => break,
                    }
                }
                let Some(m) = last else { return Ok::<_, Error>(None) };
                let conv = engine.store.get_conversation(&id).await?;
                let chat =
                    conv.contact.identities.iter().find(|i| i.channel_id == m.channel_id).map(|i| i.chat_id.clone());
                Ok(chat.zip(m.external_id.clone()).map(|(chat, ext)| (m.channel_id.clone(), chat, ext)))
            };
            let Ok(Some((channel_id, chat, external_id))) = last_inbound.await else { return };
            let Ok(channel) = engine.channel(&channel_id).await else { return };
            let Ok(adapter) = engine.adapter_for(&channel) else { return };
            if let Err(e) = adapter.mark_read(&chat, &external_id).await {
                tracing::debug!(channel = %channel_id, error = %e, "marking a message read failed");
            }
        });
    }

    // --- outbound --------------------------------------------------------------------------

    /// Validates and queues an outbound message.
    pub async fn send(&self, req: OutboundRequest) -> Result<(Message, bool)> {
        let has_text = req.text.as_ref().is_some_and(|t| !t.trim().is_empty());
        let template = window::template_of(&req);
        if !has_text && req.attachment_ids.is_empty() && template.is_none() {
            return Err(Error::invalid("empty_message", "a message needs `text`, `attachments` or a `template`"));
        }
        if let Some(t) = &template {
            if t.name.trim().is_empty() || t.language.trim().is_empty() || t.params.len() > 100 {
                return Err(Error::invalid(
                    "invalid_template",
                    "`template` needs a `name`, a `language` and at most 100 `params`",
                ));
            }
        }
        if req.text.as_ref().is_some_and(|t| t.len() > 65_536) {
            return Err(Error::invalid("text_too_long", "`text` is limited to 65536 bytes"));
        }
        validate_keyboard(&req.buttons)?;
        self.check_window(&req).await?;
        // A person okno has only a phone number or an e-mail address for is reached on the
        // channel that writes to it (`addresses`); only a send to a contact can need that, so
        // only it keeps a copy of the request for a second try.
        let retry = match &req.to {
            okno_store::Recipient::Contact(id) => Some((id.clone(), req.clone())),
            _ => None,
        };
        let out = match (self.store.enqueue_outbound(req).await, retry) {
            (Err(e), Some((id, req))) if e.code == "no_identity" => {
                self.reach_by_address(std::slice::from_ref(&id)).await?;
                self.store.enqueue_outbound(req).await?
            }
            (other, _) => other?,
        };
        self.wake();
        Ok(out)
    }

    /// Retry delay before attempt `attempts + 1`: exponential with jitter in [50%, 100%].
    pub fn backoff(&self, attempts: i64) -> Duration {
        let exp = attempts.clamp(1, 30) - 1;
        let raw = self.cfg.retry_base_ms.saturating_mul(1u64 << exp).min(self.cfg.retry_max_ms);
        let jittered = raw / 2 + rand::random::<u64>() % (raw / 2 + 1);
        Duration::from_millis(jittered.max(1))
    }
}
