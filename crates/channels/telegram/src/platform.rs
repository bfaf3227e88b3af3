//! Telegram as okno's engine sees it: connecting a bot (`getMe`, the command menu), its
//! receive mode (`setWebhook` with a secret, or `deleteWebhook` for long polling), updates
//! read into inbound events, files through `getFile`, and `t.me` deep links.
//!
//! Polling hands back each update with the offset that follows it: the engine stores that
//! offset only once the update is handled, so a crash in between makes Telegram send the
//! update again, and handling it again changes nothing (messages de-duplicate on their
//! platform id; edits and membership changes are absolute).

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
use serde_json::{json, Value};

use crate::api::{ApiError, BotApi, File, Update, ALLOWED_UPDATES};
use crate::format::{CAPTION_LIMIT, TEXT_LIMIT};
use crate::updates::{self, Action};
use crate::{TelegramAdapter, TelegramConfig};

/// The header Telegram sends a webhook's secret in.
const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// The Telegram platform.
pub struct Telegram;

fn config_of(channel: &Channel) -> Result<TelegramConfig> {
    okno_channel::config_of(channel)
}

fn api(cx: &Context, cfg: &TelegramConfig) -> BotApi {
    BotApi::new(cx.http.clone(), &cfg.api_base, &cfg.token)
}

/// What one update means, with the button press to answer and the offset after it.
async fn received(channel: &Channel, update: &Update, state: &dyn ChannelState) -> Result<Received> {
    let parsed = updates::parse(&channel.id, update);
    let event = match parsed.action {
        Action::Inbound(mut msg) => {
            if let Some(token) = msg.button_data.as_deref().and_then(updates::callback_token) {
                match state.button_data(token).await? {
                    Some(data) => msg.button_data = Some(data),
                    None => tracing::warn!(channel = %channel.id, token, "a button press carried an unknown token"),
                }
            }
            InboundEvent::Message(msg)
        }
        Action::Edit { user_id, external_id, text } => InboundEvent::Edit { user_id, external_id, text },
        Action::Membership { user_id, blocked } => InboundEvent::Membership { user_id, blocked },
        Action::Migrated { from, to } => InboundEvent::Migrated { from, to },
        Action::Ignore => InboundEvent::Ignore,
    };
    Ok(Received {
        event,
        press_id: parsed.callback_query_id,
        cursor: Some(update.update_id.saturating_add(1).to_string()),
    })
}

#[async_trait]
impl Platform for Telegram {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Telegram
    }

    fn title(&self) -> &'static str {
        "Telegram"
    }

    fn brand(&self) -> Brand {
        Brand {
            color: "#2AABEE",
            mark: r##"<path d="M5.4 11.8l11.1-4.3c.5-.2 1 .1.8.9l-1.9 8.9c-.1.6-.5.8-1 .5l-2.9-2.1-1.4 1.3c-.2.2-.3.3-.6.3l.2-3 5.4-4.9c.2-.2 0-.3-.3-.1l-6.7 4.2-2.9-.9c-.6-.2-.6-.6.2-.8z" fill="#fff"/>"##,
        }
    }

    fn schema(&self) -> Schema {
        const MODES: &[Choice] = &[
            Choice {
                value: "polling",
                label: text(
                    "Polling: okno asks Telegram (works without a public address)",
                    "Опрос: okno сам спрашивает Telegram (работает без публичного адреса)",
                ),
            },
            Choice {
                value: "webhook",
                label: text(
                    "Webhook: Telegram calls okno (needs a public https address)",
                    "Вебхук: Telegram сам обращается к okno (нужен публичный https-адрес)",
                ),
            },
        ];
        Schema::new(
            text("Connect a Telegram bot", "Подключить Telegram-бота"),
            vec![
                Field::new("token", text("Bot token (from @BotFather)", "Токен бота (от @BotFather)"), FieldKind::Text)
                    .placeholder("123456:ABC…")
                    .required()
                    .secret(),
                Field::new("mode", text("How okno receives messages", "Как okno получает сообщения"), FieldKind::Choice(MODES))
                    .help(text(
                        "In webhook mode Telegram reaches okno at OKNO_PUBLIC_URL.",
                        "В режиме вебхука Telegram обращается к okno по адресу из OKNO_PUBLIC_URL.",
                    )),
                Field::new("api_base", text("Telegram Bot API address", "Адрес Telegram Bot API"), FieldKind::Url)
                    .help(text(
                        "Leave it empty for Telegram itself; set it for your own Bot API server or a test simulator.",
                        "Оставьте пустым для самого Telegram; укажите для своего сервера Bot API или тестового симулятора.",
                    ))
                    .placeholder("https://api.telegram.org")
                    .advanced(),
                Field::new("commands", text("Command menu", "Меню команд"), FieldKind::Json)
                    .help(text(
                        "[{\"command\": \"start\", \"description\": \"…\"}], set with setMyCommands",
                        "[{\"command\": \"start\", \"description\": \"…\"}], задаётся через setMyCommands",
                    ))
                    .api_only(),
                Field::new("limits", text("Rate limits", "Ограничения скорости"), FieldKind::Json)
                    .help(text("Telegram's documented limits when absent", "по умолчанию — документированные Telegram"))
                    .api_only(),
                Field::new("webhook_secret", text("Webhook secret", "Секрет вебхука"), FieldKind::Text).secret().internal(),
            ],
        )
    }

    fn capabilities(&self, _config: &Value) -> Capabilities {
        Capabilities {
            buttons: Some(Buttons { inline: true, reply_keyboard: true, max_per_row: 8, max_rows: 100, max_label: 64 }),
            edit: true,
            delete: true,
            groups: true,
            deep_links: true,
            link_codes: true,
            posts: true,
            text: TextLimit { max: TEXT_LIMIT, unit: TextUnit::Utf16 },
            splits_long_text: true,
            files: Some(FileLimits {
                max_upload: 50 * 1024 * 1024,
                max_download: updates::DOWNLOAD_LIMIT,
                caption: Some(TextLimit { max: CAPTION_LIMIT, unit: TextUnit::Utf16 }),
            }),
            receipts: false,
            service_window: None,
            chat_actions: true,
            polling: true,
            webhook: true,
            unread_by_email: None,
        }
    }

    /// Checks the token with `getMe` (nothing is saved when Telegram refuses it) and sets the
    /// command menu with `setMyCommands`.
    async fn connect(&self, cx: &Context, config: &Value, previous: Option<&Value>) -> Result<Connected> {
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
        let api = api(cx, &cfg);
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
        let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Connected { config, info })
    }

    /// `setWebhook` to `{public_url}/hooks/{id}` with the secret, or `deleteWebhook` so that
    /// polling works.
    async fn apply_receive_mode(&self, cx: &Context, channel: &Channel) -> Result<()> {
        let cfg = config_of(channel)?;
        let api = api(cx, &cfg);
        let (method, params) = if cfg.mode == "webhook" {
            let url = format!("{}/hooks/{}", cx.public_url, channel.id);
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
        })
    }

    fn adapter(&self, cx: &Context, channel: &Channel, state: Arc<dyn ChannelState>) -> Result<Arc<dyn Adapter>> {
        let cfg = config_of(channel)?;
        Ok(Arc::new(TelegramAdapter::new(api(cx, &cfg), &cfg, state, cx.files.clone())))
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
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "bad_secret",
                "X-Telegram-Bot-Api-Secret-Token does not match",
            ));
        }
        let update: Update = serde_json::from_slice(body)
            .map_err(|e| Error::invalid("invalid_json", format!("not a Telegram update: {e}")))?;
        let mut one = received(channel, &update, state).await?;
        one.cursor = None;
        Ok(vec![one])
    }

    fn polls(&self, channel: &Channel) -> bool {
        config_of(channel).is_ok_and(|cfg| cfg.mode == "polling")
    }

    /// `getUpdates` from the stored offset.
    async fn poll(
        &self,
        cx: &Context,
        channel: &Channel,
        cursor: Option<&str>,
        state: &dyn ChannelState,
    ) -> std::result::Result<Polled, PollError> {
        let cfg = config_of(channel).map_err(|e| PollError::Refused(e.message))?;
        // Offset 0 asks for every update Telegram still holds; handling one again changes nothing.
        let offset = match cursor.map(str::parse::<i64>) {
            Some(Ok(offset)) => offset,
            Some(Err(_)) => {
                tracing::warn!(channel = %channel.id, cursor, "the stored update offset is not a number; starting over");
                0
            }
            None => 0,
        };
        let batch = match api(cx, &cfg).get_updates(offset, cx.poll_timeout.as_secs()).await {
            Ok(batch) => batch,
            // The engine logs the failure with the channel.
            Err(ApiError::Telegram { code, description, retry_after, .. }) => {
                return Err(match code {
                    429 => PollError::Wait(Duration::from_secs(retry_after.unwrap_or(5))),
                    409 | 401 | 404 => PollError::Refused(description),
                    _ => PollError::Network(description),
                });
            }
            Err(ApiError::Network(reason)) => return Err(PollError::Network(reason)),
        };
        let mut items = Vec::with_capacity(batch.len());
        for update in &batch {
            match received(channel, update, state).await {
                Ok(r) => items.push(r),
                // The rest waits for the next poll, which starts at this update again; when
                // nothing could be read, the engine backs off as after a failed poll.
                Err(e) if items.is_empty() => {
                    return Err(PollError::Network(format!("reading update {} failed: {e}", update.update_id)))
                }
                Err(e) => {
                    tracing::warn!(channel = %channel.id, update = update.update_id, error = %e, "reading an update failed");
                    break;
                }
            }
        }
        Ok(Polled { items })
    }

    /// A file named `tg-file:<file_id>`, downloaded through `getFile` within Telegram's limit.
    async fn fetch(
        &self,
        cx: &Context,
        channel: &Channel,
        reference: &str,
    ) -> std::result::Result<Fetched, FetchError> {
        let Some(file_id) = reference.strip_prefix(updates::FILE_SCHEME) else {
            return Err(FetchError::Refused(format!("not a Telegram file: {reference}")));
        };
        let cfg = config_of(channel).map_err(|e| FetchError::Refused(e.message))?;
        let api = api(cx, &cfg);
        let file: File = match api.call("getFile", json!({"file_id": file_id}), None).await {
            Ok(f) => f,
            Err(ApiError::Telegram { code, description, .. }) if code < 500 && code != 429 => {
                return Err(FetchError::Refused(description))
            }
            Err(e) => return Err(FetchError::Network(e.to_string())),
        };
        let path = file.file_path.ok_or_else(|| FetchError::Refused("Telegram gave no file path".into()))?;
        api.download(&path, cx.max_download.min(updates::DOWNLOAD_LIMIT)).await
    }

    /// `https://t.me/<bot>?start=<code>`, once the bot's username is known.
    fn deep_link(&self, channel: &Channel, code: &str) -> Option<String> {
        let bot = channel.info.get("username").and_then(Value::as_str).filter(|b| !b.is_empty())?;
        Some(format!("https://t.me/{bot}?start={code}"))
    }
}
