//! Telegram in the engine: connecting a bot (token check, command menu, receive mode),
//! receiving updates by long polling or webhook, and what each update does.
//!
//! Polling, one task per bot, held by one process at a time through a lease:
//! ```text
//!   ┌─► take/renew the lease ─(held elsewhere)─► wait, try again
//!   │   getUpdates(offset, timeout) ─► for each update: handle (stored durably)
//!   │                                   then offset = update_id + 1 (stored)
//!   │   409 conflict / 401 ─► channel status `error` with Telegram's words, slow retry
//!   └── channel deleted or switched to webhook ─► release the lease, stop
//! ```
//! A crash between handling an update and storing the offset makes Telegram send the update
//! again; handling is idempotent (messages de-duplicate on their platform id, edits and
//! membership changes are absolute), so nothing is lost or doubled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use okno_channels::telegram::api::{ApiError, BotApi, Update, ALLOWED_UPDATES};
use okno_channels::telegram::updates::{self, Action};
use okno_channels::telegram::TelegramConfig;
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::{signing, Error, ErrorKind, Result};
use okno_store::{ChannelPatch, InboundMessage, LinkOutcome, OutboundRequest, Recipient};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// How long a poller's lease lasts; it is renewed on every poll.
const POLL_LEASE_MS: i64 = 90_000;

impl Engine {
    pub(crate) fn bot_api(&self, cfg: &TelegramConfig) -> BotApi {
        BotApi::new(self.http.clone(), &cfg.api_base, &cfg.token)
    }

    /// Checks a Telegram config: the token with `getMe` (nothing is saved when Telegram
    /// refuses it), the command menu with `setMyCommands`. Returns the config to store and the
    /// bot's public facts.
    pub(crate) async fn connect_telegram(&self, config: &Value, previous: Option<&Value>) -> Result<(Value, Value)> {
        let mut cfg: TelegramConfig = serde_json::from_value(config.clone())
            .map_err(|e| Error::invalid("invalid_channel_config", format!("telegram channel config: {e}")))?;
        if !matches!(cfg.mode.as_str(), "polling" | "webhook") {
            return Err(Error::invalid("invalid_channel_config", "`mode` is `polling` or `webhook`"));
        }
        let base = url::Url::parse(&cfg.api_base)
            .map_err(|e| Error::invalid("invalid_channel_config", format!("`api_base` is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::invalid("invalid_channel_config", "`api_base` must be an http(s) URL"));
        }
        let token_ok = cfg
            .token
            .split_once(':')
            .is_some_and(|(id, rest)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty());
        if !token_ok {
            return Err(Error::invalid(
                "invalid_bot_token",
                "a bot token looks like `123456:ABC-DEF…` (from @BotFather)",
            ));
        }
        let api = self.bot_api(&cfg);
        let me = api.get_me().await.map_err(|e| match e {
            ApiError::Telegram { description, .. } => {
                Error::invalid("invalid_bot_token", format!("Telegram refused the token: {description}"))
            }
            ApiError::Network(reason) => {
                Error::unavailable("telegram_unreachable", format!("cannot reach the Bot API: {reason}"))
            }
        })?;
        if !cfg.commands.is_empty() {
            api.call::<Value>("setMyCommands", json!({"commands": cfg.commands}), None)
                .await
                .map_err(|e| Error::invalid("invalid_commands", format!("Telegram refused the command menu: {e}")))?;
        }
        // Keep the webhook secret across updates; make one when first needed.
        let kept = previous.and_then(|p| p.get("webhook_secret")).and_then(Value::as_str).map(str::to_string);
        cfg.webhook_secret = cfg.webhook_secret.or(kept).or_else(|| Some(okno_domain::ids::random_hex(32)));
        let info = json!({"username": me.username, "bot_id": me.id, "first_name": me.first_name, "mode": cfg.mode});
        let stored = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        Ok((stored, info))
    }

    /// Makes Telegram deliver the way the channel says: `setWebhook` to
    /// `{public_url}/hooks/{id}` with the secret, or `deleteWebhook` so polling works.
    pub async fn apply_receive_mode(&self, channel: &Channel) -> Result<()> {
        if channel.kind != ChannelKind::Telegram {
            return Ok(());
        }
        let cfg = telegram_config(channel)?;
        let api = self.bot_api(&cfg);
        let (method, params) = if cfg.mode == "webhook" {
            let url = format!("{}/hooks/{}", self.cfg.public_url, channel.id);
            ("setWebhook", json!({"url": url, "secret_token": cfg.webhook_secret, "allowed_updates": ALLOWED_UPDATES}))
        } else {
            ("deleteWebhook", json!({}))
        };
        let mut result = api.call::<Value>(method, params.clone(), None).await;
        // setWebhook is limited to one change a second: a short wait is worth it.
        for _ in 0..3 {
            match &result {
                Err(ApiError::Telegram { code: 429, retry_after, .. }) if retry_after.unwrap_or(1) <= 5 => {
                    tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1))).await;
                    result = api.call::<Value>(method, params.clone(), None).await;
                }
                _ => break,
            }
        }
        result.map(|_| ()).map_err(|e| {
            Error::unprocessable("telegram_refused", format!("Telegram refused to switch to {} mode: {e}", cfg.mode))
        })?;
        // A conflict reported by the previous mode is over.
        if channel.status != "active" {
            self.set_status(&channel.id, "active", None).await;
        }
        self.wake_pollers();
        Ok(())
    }

    /// Handles a request Telegram made to `/hooks/{id}`: the secret header is checked in
    /// constant time and the update handled (stored) before the answer.
    pub(crate) async fn receive_telegram_hook(
        &self,
        channel: &Channel,
        secret: Option<&str>,
        body: &[u8],
    ) -> Result<Option<String>> {
        let cfg = telegram_config(channel)?;
        let expected = cfg.webhook_secret.unwrap_or_default();
        if expected.is_empty() || !secret.is_some_and(|s| signing::secrets_equal(s, &expected)) {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "bad_secret",
                "X-Telegram-Bot-Api-Secret-Token does not match",
            ));
        }
        let update: Update = serde_json::from_slice(body)
            .map_err(|e| Error::invalid("invalid_json", format!("not a Telegram update: {e}")))?;
        self.handle_update(channel, &update).await
    }

    /// What one update does. Returns the id of the message it recorded, if any.
    pub async fn handle_update(&self, channel: &Channel, update: &Update) -> Result<Option<String>> {
        if let Some(q) =
            update.callback_query.as_ref().filter(|q| q.data.as_deref().is_some_and(crate::tasks::is_task_data))
        {
            return self.task_press(channel, q).await;
        }
        let parsed = updates::parse(&channel.id, update);
        if let Some(id) = parsed.callback_query_id.clone() {
            self.answer_callback(channel, id);
        }
        match parsed.action {
            Action::Inbound(msg) => self.telegram_inbound(channel, *msg).await,
            Action::Edit { user_id, external_id, text } => {
                let m = self.store.record_edit(&channel.id, &user_id, &external_id, text).await?;
                Ok(m.map(|m| m.id))
            }
            Action::Membership { user_id, blocked } => {
                self.store.set_identity_blocked(&channel.id, &user_id, blocked).await?;
                Ok(None)
            }
            Action::Migrated { from, to } => {
                self.store.move_chat(&channel.id, &from, &to).await?;
                Ok(None)
            }
            Action::Ignore => Ok(None),
        }
    }

    async fn telegram_inbound(&self, channel: &Channel, mut msg: InboundMessage) -> Result<Option<String>> {
        if let Some(token) = msg.button_data.as_deref().and_then(updates::callback_token) {
            match self.store.callback_data(&channel.id, token).await? {
                Some(data) => msg.button_data = Some(data),
                None => tracing::warn!(channel = %channel.id, token, "a button press carried an unknown token"),
            }
        }
        let private = !msg.sender.chat_id.starts_with('-');
        // `/start CODE` from a deep link, or the bare code typed in.
        let text = msg.text.as_deref().filter(|_| private);
        let code = text
            .and_then(|t| updates::start_payload(t).map(|c| (c, true)).or(Some((t.trim(), false))))
            .filter(|(c, _)| okno_store::is_link_code(c))
            .map(|(c, explicit)| (c.to_string(), explicit));
        let task_start = text.and_then(crate::tasks::start_task).map(|id| (id, msg.sender.user_id.clone()));
        let sender = msg.sender.clone();
        msg.bot_turn = self.has_bot(&channel.id).await;
        let inbound = self.store.record_inbound(msg).await?;
        if !inbound.duplicate {
            self.metrics.inbound(ChannelKind::Telegram.as_str());
            if let Some((code, explicit)) = code {
                self.link(channel, &code, explicit, sender, &inbound.message.contact_id).await?;
            }
            match &task_start {
                Some((task_id, user_id)) => self.task_start(channel, user_id, task_id).await,
                None => self.after_inbound(&inbound.message).await?,
            }
            self.wake();
        }
        Ok(Some(inbound.message.id))
    }

    /// Redeems a link code and answers the person.
    async fn link(
        &self,
        channel: &Channel,
        code: &str,
        explicit: bool,
        sender: okno_store::InboundSender,
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

    /// Answers a button press at once, so the user's spinner stops; the press itself is
    /// recorded and delivered as `button.pressed`.
    fn answer_callback(&self, channel: &Channel, callback_query_id: String) {
        let Ok(cfg) = telegram_config(channel) else { return };
        let api = self.bot_api(&cfg);
        tokio::spawn(async move {
            let params = json!({"callback_query_id": callback_query_id});
            if let Err(e) = api.call::<Value>("answerCallbackQuery", params, Some(Duration::from_secs(5))).await {
                tracing::warn!(error = %e, "answerCallbackQuery failed");
            }
        });
    }

    /// Downloads a Telegram file (`tg-file:<file_id>`) through `getFile`.
    pub(crate) async fn fetch_telegram_file(
        &self,
        channel_id: &str,
        file_id: &str,
    ) -> std::result::Result<okno_channels::http::Fetched, okno_channels::http::FetchError> {
        use okno_channels::http::FetchError;
        let channel = self.channel(channel_id).await.map_err(|e| FetchError::Refused(e.message))?;
        let cfg = telegram_config(&channel).map_err(|e| FetchError::Refused(e.message))?;
        let api = self.bot_api(&cfg);
        let file: okno_channels::telegram::api::File =
            match api.call("getFile", json!({"file_id": file_id}), None).await {
                Ok(f) => f,
                Err(ApiError::Telegram { code, description, .. }) if code < 500 && code != 429 => {
                    return Err(FetchError::Refused(description))
                }
                Err(e) => return Err(FetchError::Network(e.to_string())),
            };
        let path = file.file_path.ok_or_else(|| FetchError::Refused("Telegram gave no file path".into()))?;
        let limit = self.cfg.max_attachment_bytes.min(updates::DOWNLOAD_LIMIT);
        api.download(&path, limit).await
    }

    // --- polling ---------------------------------------------------------------------------

    pub(crate) fn wake_pollers(&self) {
        self.pollers_wake.notify_one();
    }

    /// Keeps one poller running per Telegram channel in polling mode (each takes the
    /// channel's lease before it polls, so across processes exactly one polls a bot).
    pub async fn run_pollers(self: Arc<Self>, shutdown: CancellationToken) {
        let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            match self.store.list_channels().await {
                Ok(channels) => {
                    let wanted: Vec<&Channel> = channels
                        .iter()
                        .filter(|c| {
                            c.kind == ChannelKind::Telegram && telegram_config(c).is_ok_and(|cfg| cfg.mode == "polling")
                        })
                        .collect();
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
                // Another process polls this bot; the supervisor will look again.
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
            let Ok(cfg) = telegram_config(&channel) else { break };
            if cfg.mode != "polling" {
                break;
            }
            let offset = match self.store.poll_offset(&channel_id).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(channel = %channel_id, error = %e, "reading the poll offset failed");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let api = self.bot_api(&cfg);
            let polled = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = api.get_updates(offset, self.cfg.poll_timeout_secs) => r,
            };
            match polled {
                Ok(batch) => {
                    backoff = Duration::from_secs(1);
                    if channel.status != "active" {
                        self.set_status(&channel_id, "active", None).await;
                    }
                    // The offset moves past an update only once it is stored.
                    let mut confirmed = None;
                    for update in &batch {
                        if let Err(e) = self.handle_update(&channel, update).await {
                            tracing::warn!(channel = %channel_id, update = update.update_id, error = %e, "handling an update failed");
                            tokio::time::sleep(backoff).await;
                            break;
                        }
                        confirmed = Some(update.update_id + 1);
                    }
                    if let Some(next) = confirmed {
                        if let Err(e) = self.store.set_poll_offset(&channel_id, next).await {
                            tracing::warn!(channel = %channel_id, error = %e, "storing the poll offset failed");
                        }
                    }
                }
                Err(ApiError::Telegram { code, description, retry_after, .. }) => {
                    tracing::warn!(channel = %channel_id, code, %description, "getUpdates failed");
                    let wait = match code {
                        429 => Duration::from_secs(retry_after.unwrap_or(5)),
                        409 | 401 | 404 => {
                            self.set_status(&channel_id, "error", Some(description)).await;
                            Duration::from_millis(self.cfg.poll_conflict_wait_ms)
                        }
                        _ => backoff,
                    };
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(wait) => {} }
                }
                Err(ApiError::Network(reason)) => {
                    tracing::warn!(channel = %channel_id, %reason, "getUpdates failed");
                    tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(backoff) => {} }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        let _ = self.store.drop_channel_lease(&channel_id, &self.owner).await;
    }

    async fn set_status(&self, channel_id: &str, status: &str, detail: Option<String>) {
        let patch = ChannelPatch { status: Some((status.to_string(), detail)), ..Default::default() };
        if let Err(e) = self.store.update_channel(channel_id, patch).await {
            tracing::warn!(channel = %channel_id, error = %e, "recording the channel status failed");
        }
        self.forget_channel(channel_id);
    }
}

/// The Telegram config stored on a channel.
pub(crate) fn telegram_config(channel: &Channel) -> Result<TelegramConfig> {
    serde_json::from_value(channel.config.clone()).map_err(|e| Error::invalid("invalid_channel_config", e.to_string()))
}
