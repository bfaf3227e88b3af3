//! MAX as okno's engine sees it: connecting a bot (`GET /me`), its receive mode (a webhook
//! subscription with a secret, or none for long polling), updates read into inbound events,
//! files people send, and `max.ru` deep links.
//!
//! Polling hands back a batch with the marker that follows it on its last item only: the
//! engine stores the marker once the whole batch is handled, so a crash in between makes MAX
//! send the batch again, and handling it again changes nothing (messages de-duplicate on their
//! `mid`, presses on their callback id; edits and membership changes are absolute).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::http::{FetchError, Fetched};
use okno_channel::schema::{text, Choice, Field, FieldKind, Schema};
use okno_channel::{
    Adapter, Brand, Buttons, Capabilities, ChannelState, Connected, Context, FileLimits, HookRequest, InboundEvent,
    Platform, PollError, Polled, Received, TextLimit, TextUnit,
};
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::{signing, Error, ErrorKind, Result};
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{ApiError, BotApi, UPDATE_TYPES};
use crate::format::TEXT_LIMIT;
use crate::updates::{self, Parsed};
use crate::{MaxAdapter, MaxConfig};

/// The header MAX sends a subscription's secret in.
const SECRET_HEADER: &str = "x-max-bot-api-secret";
/// Largest file okno sends: MAX takes far larger files (4 GB), okno reads a file whole.
const UPLOAD_LIMIT: u64 = 256 * 1024 * 1024;

/// The MAX platform.
pub struct Max;

fn config_of(channel: &Channel) -> Result<MaxConfig> {
    okno_channel::config_of(channel)
}

fn api(cx: &Context, cfg: &MaxConfig) -> BotApi {
    BotApi::new(cx.http.clone(), &cfg.api_base, &cfg.token)
}

fn bot_id(channel: &Channel) -> Option<i64> {
    channel.info.get("bot_id").and_then(Value::as_i64)
}

/// What one update means, with the button press to answer; long button data read back.
async fn received(channel: &Channel, update: &Value, state: &dyn ChannelState) -> Result<Vec<Received>> {
    let mut out = Vec::new();
    for Parsed { event, press_id } in updates::parse(&channel.id, bot_id(channel), update) {
        let event = match event {
            InboundEvent::Message(mut msg) => {
                if let Some(token) = msg.button_data.as_deref().and_then(updates::callback_token) {
                    match state.button_data(token).await? {
                        Some(data) => msg.button_data = Some(data),
                        None => tracing::warn!(channel = %channel.id, token, "a button press carried an unknown token"),
                    }
                }
                InboundEvent::Message(msg)
            }
            other => other,
        };
        out.push(Received { event, press_id, cursor: None });
    }
    Ok(out)
}

fn refused(e: ApiError) -> Error {
    match e {
        ApiError::Max { status: 401 | 403 | 404, message, code } => {
            Error::invalid("invalid_bot_token", format!("MAX refused the token: {message} ({code})"))
        }
        ApiError::Max { message, code, .. } => {
            Error::unavailable("max_unreachable", format!("MAX did not confirm the token: {message} ({code})"))
        }
        ApiError::Network(reason) => {
            Error::unavailable("max_unreachable", format!("cannot reach the MAX Bot API: {reason}"))
        }
    }
}

#[async_trait]
impl Platform for Max {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Max
    }

    fn title(&self) -> &'static str {
        "MAX"
    }

    fn brand(&self) -> Brand {
        Brand {
            color: "#7B3FF2",
            mark: r##"<path d="M12 5.5c-3.9 0-6.8 2.8-6.8 6.4 0 1.5.5 2.9 1.4 4l-.6 2.6 2.7-.9c1 .5 2.1.8 3.3.8 3.9 0 6.8-2.8 6.8-6.5S15.9 5.5 12 5.5zm0 2.3c2.5 0 4.4 1.8 4.4 4.1S14.5 16 12 16s-4.4-1.8-4.4-4.1S9.5 7.8 12 7.8z" fill="#fff"/>"##,
        }
    }

    fn schema(&self) -> Schema {
        const MODES: &[Choice] = &[
            Choice {
                value: "polling",
                label: text(
                    "Polling: okno asks MAX (works without a public address)",
                    "Опрос: okno сам спрашивает MAX (работает без публичного адреса)",
                ),
            },
            Choice {
                value: "webhook",
                label: text(
                    "Webhook: MAX calls okno (needs a public https address on port 443)",
                    "Вебхук: MAX сам обращается к okno (нужен публичный https-адрес на порту 443)",
                ),
            },
        ];
        Schema::new(
            text("Connect a MAX bot", "Подключить бота MAX"),
            vec![
                Field::new(
                    "token",
                    text(
                        "Bot token (business.max.ru → Chat bots → Settings)",
                        "Токен бота (кабинет «MAX для бизнеса» → Чат-боты → Настройки)",
                    ),
                    FieldKind::Text,
                )
                .required()
                .secret(),
                Field::new("mode", text("How okno receives messages", "Как okno получает сообщения"), FieldKind::Choice(MODES))
                    .help(text(
                        "In webhook mode MAX reaches okno at OKNO_PUBLIC_URL.",
                        "В режиме вебхука MAX обращается к okno по адресу из OKNO_PUBLIC_URL.",
                    )),
                Field::new("api_base", text("MAX Bot API address", "Адрес MAX Bot API"), FieldKind::Url)
                    .help(text(
                        "Leave it empty for MAX itself; set it when MAX moves its API or for a test simulator.",
                        "Оставьте пустым для самого MAX; укажите, если MAX сменит адрес API, или для тестового симулятора.",
                    ))
                    .placeholder(crate::api::DEFAULT_API_BASE)
                    .advanced(),
                Field::new("limits", text("Rate limits", "Ограничения скорости"), FieldKind::Json)
                    .help(text(
                        "{\"per_second\": 30, \"per_chat_per_second\": 2}: MAX's documented limits when absent; 0 turns one off",
                        "{\"per_second\": 30, \"per_chat_per_second\": 2}: по умолчанию — документированные MAX; 0 отключает",
                    ))
                    .api_only(),
                Field::new("webhook_secret", text("Webhook secret", "Секрет вебхука"), FieldKind::Text).secret().internal(),
            ],
        )
    }

    fn capabilities(&self, _config: &Value) -> Capabilities {
        Capabilities {
            buttons: Some(Buttons {
                inline: true,
                reply_keyboard: false,
                max_per_row: 7,
                max_rows: 30,
                max_label: 128,
            }),
            edit: true,
            delete: true,
            groups: true,
            deep_links: true,
            link_codes: true,
            posts: true,
            text: TextLimit { max: TEXT_LIMIT, unit: TextUnit::Chars },
            splits_long_text: true,
            files: Some(FileLimits {
                max_upload: UPLOAD_LIMIT,
                max_download: UPLOAD_LIMIT,
                caption: Some(TextLimit { max: TEXT_LIMIT, unit: TextUnit::Chars }),
            }),
            receipts: false,
            service_window: None,
            chat_actions: false,
            polling: true,
            webhook: true,
            unread_by_email: None,
        }
    }

    /// Checks the token with `GET /me`: nothing is saved when MAX refuses it.
    async fn connect(&self, cx: &Context, config: &Value, previous: Option<&Value>) -> Result<Connected> {
        let mut cfg: MaxConfig = serde_json::from_value(config.clone())
            .map_err(|e| Error::invalid("invalid_channel_config", format!("max channel config: {e}")))?;
        if !matches!(cfg.mode.as_str(), "polling" | "webhook") {
            return Err(Error::invalid("invalid_channel_config", "`mode` is `polling` or `webhook`"));
        }
        let base = url::Url::parse(&cfg.api_base)
            .map_err(|e| Error::invalid("invalid_channel_config", format!("`api_base` is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::invalid("invalid_channel_config", "`api_base` must be an http(s) URL"));
        }
        cfg.token = cfg.token.trim().to_string();
        if cfg.token.is_empty() || cfg.token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid("invalid_bot_token", "a MAX bot token is one word (from business.max.ru)"));
        }
        let me = api(cx, &cfg).me().await.map_err(refused)?;
        // Keep the webhook secret across changes; make one when first needed. MAX takes
        // 5–256 of [A-Za-z0-9_-].
        let kept = previous.and_then(|p| p.get("webhook_secret")).and_then(Value::as_str).map(str::to_string);
        cfg.webhook_secret = cfg.webhook_secret.or(kept).or_else(|| Some(okno_domain::ids::random_hex(32)));
        let info = json!({"username": me.username, "bot_id": me.user_id, "name": me.full_name(), "mode": cfg.mode});
        let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Connected { config, info })
    }

    /// Webhook mode: subscribes `{public_url}/hooks/{id}` with the secret. Polling: removes
    /// every subscription, since MAX does not answer long polls while one exists.
    async fn apply_receive_mode(&self, cx: &Context, channel: &Channel) -> Result<()> {
        let cfg = config_of(channel)?;
        let api = api(cx, &cfg);
        let fail = |e: ApiError| {
            Error::unprocessable("max_refused", format!("MAX refused to switch to {} mode: {e}", cfg.mode))
        };
        let url = format!("{}/hooks/{}", cx.public_url, channel.id);
        if cfg.mode == "webhook" {
            let body = json!({"url": url, "secret": cfg.webhook_secret, "update_types": UPDATE_TYPES});
            api.call(Method::POST, "/subscriptions", &[], Some(&body), None).await.map_err(fail)?;
            return Ok(());
        }
        let list = api.call(Method::GET, "/subscriptions", &[], None, None).await.map_err(fail)?;
        for sub in list["subscriptions"].as_array().into_iter().flatten() {
            if let Some(u) = sub["url"].as_str() {
                api.call(Method::DELETE, "/subscriptions", &[("url", u.to_string())], None, None)
                    .await
                    .map_err(fail)?;
            }
        }
        Ok(())
    }

    fn adapter(&self, cx: &Context, channel: &Channel, state: Arc<dyn ChannelState>) -> Result<Arc<dyn Adapter>> {
        let cfg = config_of(channel)?;
        let limits = cfg.limits.clone().unwrap_or_default();
        Ok(Arc::new(MaxAdapter::with_limits(api(cx, &cfg), state, cx.files.clone(), &limits)))
    }

    /// The secret header is checked in constant time before the body is read.
    async fn receive(
        &self,
        _cx: &Context,
        channel: &Channel,
        request: &HookRequest<'_>,
        state: &dyn ChannelState,
    ) -> Result<Vec<Received>> {
        let (headers, body) = (request.headers, request.body);
        let cfg = config_of(channel)?;
        let expected = cfg.webhook_secret.unwrap_or_default();
        let secret = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok());
        if expected.is_empty() || !secret.is_some_and(|s| signing::secrets_equal(s, &expected)) {
            return Err(Error::new(ErrorKind::Unauthorized, "bad_secret", "X-Max-Bot-Api-Secret does not match"));
        }
        let update: Value = serde_json::from_slice(body)
            .map_err(|e| Error::invalid("invalid_json", format!("not a MAX update: {e}")))?;
        if !update.is_object() {
            return Err(Error::invalid("invalid_json", "a MAX update is a JSON object"));
        }
        received(channel, &update, state).await
    }

    fn polls(&self, channel: &Channel) -> bool {
        config_of(channel).is_ok_and(|cfg| cfg.mode == "polling")
    }

    /// `GET /updates` from the stored marker. The marker that follows the batch rides on its
    /// last item; a poll that brought nothing but moved the marker hands back one `Ignore`
    /// carrying it, so that the next poll does not start over (without a marker MAX gives only
    /// the latest update).
    async fn poll(
        &self,
        cx: &Context,
        channel: &Channel,
        cursor: Option<&str>,
        state: &dyn ChannelState,
    ) -> std::result::Result<Polled, PollError> {
        let cfg = config_of(channel).map_err(|e| PollError::Refused(e.message))?;
        let cursor = match cursor {
            Some(c) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit() || b == b'-') => Some(c),
            Some(c) => {
                tracing::warn!(channel = %channel.id, cursor = c, "the stored marker is not a number; starting over");
                None
            }
            None => None,
        };
        // Without a marker MAX hands out only the latest update and drops the rest, so the
        // first poll asks for the marker at once rather than parking: what arrives while a
        // parked poll waited would be dropped but for its last.
        let timeout = if cursor.is_some() { cx.poll_timeout.as_secs() } else { 0 };
        let list = match api(cx, &cfg).updates(cursor, timeout).await {
            Ok(list) => list,
            Err(ApiError::Max { status, code, message }) => {
                let reason = format!("{message} ({code})");
                return Err(match status {
                    429 => PollError::Wait(Duration::from_secs(5)),
                    401 | 403 => PollError::Refused(reason),
                    405 => PollError::Refused(format!(
                        "{reason}: MAX does not answer long polls while a webhook subscription exists"
                    )),
                    _ => PollError::Network(reason),
                });
            }
            Err(ApiError::Network(reason)) => return Err(PollError::Network(reason)),
        };
        let next = list.marker();
        let mut items = Vec::with_capacity(list.updates.len());
        for update in &list.updates {
            match received(channel, update, state).await {
                Ok(r) => items.extend(r),
                // The batch waits for the next poll, which starts at the same marker again.
                Err(e) => return Err(PollError::Network(format!("reading an update failed: {e}"))),
            }
        }
        if next.is_some() && next.as_deref() != cursor {
            match items.last_mut() {
                Some(last) => last.cursor = next,
                None => items.push(Received { event: InboundEvent::Ignore, press_id: None, cursor: next }),
            }
        }
        Ok(Polled { items })
    }

    /// A file named `max-file:<url>`, downloaded within okno's limit.
    async fn fetch(
        &self,
        cx: &Context,
        channel: &Channel,
        reference: &str,
    ) -> std::result::Result<Fetched, FetchError> {
        let Some(url) = reference.strip_prefix(updates::FILE_SCHEME) else {
            return Err(FetchError::Refused(format!("not a MAX file: {reference}")));
        };
        let cfg = config_of(channel).map_err(|e| FetchError::Refused(e.message))?;
        api(cx, &cfg).download(url, cx.max_download.min(UPLOAD_LIMIT)).await
    }

    /// `https://max.ru/<bot>?start=<code>`, once the bot's username is known.
    fn deep_link(&self, channel: &Channel, code: &str) -> Option<String> {
        let bot = channel.info.get("username").and_then(Value::as_str).filter(|b| !b.is_empty())?;
        Some(format!("https://max.ru/{bot}?start={code}"))
    }
}
