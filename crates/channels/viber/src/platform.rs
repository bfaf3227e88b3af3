//! Viber as okno's engine sees it: connecting a bot (the token checked with
//! `get_account_info`), `set_webhook` with the event types once the channel exists (Viber
//! checks the address with a signed `webhook` callback at once), callbacks verified by
//! `X-Viber-Content-Signature`, the welcome message answering `conversation_started`, signed
//! file links Viber downloads, and `viber://pa?chatURI=…&context=<code>` links carrying a link
//! code.

use std::sync::Arc;

use async_trait::async_trait;
use okno_channel::schema::{text, Field, FieldKind, Schema};
use okno_channel::{
    Adapter, Brand, Buttons, Capabilities, ChannelState, Connected, Context, FileLimits, HookAnswer, HookRequest,
    InboundEvent, Platform, Received, TextLimit, TextUnit,
};
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::{signing, Error, ErrorKind, Result};
use serde_json::{json, Value};

use crate::adapter::{CAPTION_LIMIT, LABEL_LIMIT, MAX_BUTTONS, MAX_PER_ROW, TEXT_LIMIT};
use crate::api::{ApiError, ViberApi};
use crate::webhook::{self, button_token};
use crate::{ViberAdapter, ViberConfig};

/// The header Viber signs callbacks in.
const SIGNATURE_HEADER: &str = "x-viber-content-signature";
/// Largest file okno hands Viber (its files: 50 MB).
const FILE_LIMIT: u64 = 50 * 1024 * 1024;
/// The events okno asks for (`message`, `subscribed`, `unsubscribed`, `conversation_started`
/// come anyway).
pub const EVENT_TYPES: [&str; 6] =
    ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"];

/// The Viber platform.
pub struct Viber;

fn config_of(channel: &Channel) -> Result<ViberConfig> {
    okno_channel::config_of(channel)
}

fn api(cx: &Context, cfg: &ViberConfig) -> ViberApi {
    ViberApi::new(cx.http.clone(), &cfg.api_base, &cfg.token)
}

fn refused(e: ApiError, what: &str) -> Error {
    match e {
        ApiError::Viber { status: 2 | 7 | 8 | 9 | 15, .. } => {
            Error::invalid("invalid_viber_token", format!("Viber refused the token: {e}"))
        }
        ApiError::Viber { status: 1, .. } => {
            Error::invalid("viber_webhook_refused", format!("Viber could not reach okno's hook address: {e}"))
        }
        ApiError::Viber { .. } | ApiError::Http(_) => {
            Error::unavailable("viber_unreachable", format!("Viber refused {what}: {e}"))
        }
        ApiError::Network(reason) => {
            Error::unavailable("viber_unreachable", format!("cannot reach the Viber API: {reason}"))
        }
    }
}

fn new_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl Platform for Viber {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Viber
    }

    fn title(&self) -> &'static str {
        "Viber"
    }

    fn brand(&self) -> Brand {
        Brand {
            color: "#7360F2",
            mark: r##"<path d="M12 5.5c-3.6 0-6 2-6 5.3 0 1.9.8 3.3 2.2 4.2v2.5l2.2-1.6c.5.1 1 .1 1.6.1 3.6 0 6-2 6-5.2S15.6 5.5 12 5.5zm2.6 7.2c-.3.4-.8.6-1.2.5-1.6-.4-3.1-1.7-3.7-3.3-.1-.4 0-.9.4-1.2l.4-.3c.2-.1.4 0 .5.1l.6.9c.1.2.1.4-.1.5l-.3.2c.3.8 1 1.5 1.8 1.8l.2-.3c.1-.2.4-.2.5-.1l.9.6c.2.1.2.4.1.5z" fill="#fff"/>"##,
        }
    }

    fn schema(&self) -> Schema {
        Schema::new(
            text("Connect a Viber bot", "Подключить бота Viber"),
            vec![
                Field::new(
                    "token",
                    text(
                        "The bot's token (Viber Admin Panel → the bot → Edit → Your app key)",
                        "Токен бота (панель администратора Viber → бот → изменить → ключ приложения)",
                    ),
                    FieldKind::Text,
                )
                .required()
                .secret()
                .help(text(
                    "okno checks every callback's X-Viber-Content-Signature with it and sets the webhook itself.",
                    "okno проверяет им подпись каждого обращения Viber и само устанавливает вебхук.",
                )),
                Field::new(
                    "sender_name",
                    text("Sender name (up to 28 characters)", "Имя отправителя (до 28 символов)"),
                    FieldKind::Text,
                )
                .help(text("The bot's name when empty.", "Если пусто — имя бота.")),
                Field::new(
                    "sender_avatar",
                    text("Sender picture address", "Адрес картинки отправителя"),
                    FieldKind::Url,
                )
                .advanced(),
                Field::new("welcome", text("Welcome message", "Приветствие"), FieldKind::Text).help(text(
                    "Sent when a person opens the chat: the one moment a bot may write first.",
                    "Отправляется, когда человек открывает чат: единственный момент, когда бот может написать первым.",
                )),
                Field::new("api_base", text("Viber API address", "Адрес API Viber"), FieldKind::Url)
                    .help(text(
                        "Leave it empty for Viber's; set it for a test simulator.",
                        "Оставьте пустым для Viber; укажите для тестового симулятора.",
                    ))
                    .placeholder(crate::api::DEFAULT_API_BASE)
                    .advanced(),
                Field::new("bot_name", text("Bot name", "Имя бота"), FieldKind::Text).internal(),
                Field::new("uri", text("Bot address", "Адрес бота"), FieldKind::Text).internal(),
                Field::new("file_secret", text("File link key", "Ключ ссылок на файлы"), FieldKind::Text)
                    .internal()
                    .secret(),
            ],
        )
    }

    fn capabilities(&self, config: &Value) -> Capabilities {
        let uri_known = config.get("uri").and_then(Value::as_str).is_some_and(|u| !u.is_empty());
        Capabilities {
            buttons: Some(Buttons {
                inline: false,
                reply_keyboard: true,
                max_per_row: MAX_PER_ROW,
                max_rows: MAX_BUTTONS,
                max_label: LABEL_LIMIT,
            }),
            edit: false,
            delete: false,
            groups: false,
            deep_links: uri_known,
            link_codes: true,
            posts: false,
            text: TextLimit { max: TEXT_LIMIT, unit: TextUnit::Chars },
            splits_long_text: true,
            files: Some(FileLimits {
                max_upload: FILE_LIMIT,
                max_download: FILE_LIMIT,
                caption: Some(TextLimit { max: CAPTION_LIMIT, unit: TextUnit::Chars }),
            }),
            receipts: true,
            service_window: None,
            chat_actions: false,
            polling: false,
            webhook: true,
            unread_by_email: None,
        }
    }

    /// Checks the token with `get_account_info`: nothing is saved when Viber refuses it. The
    /// bot's name and `uri` are kept for the sender name and deep links, and a key for file
    /// links is made (kept across changes).
    async fn connect(&self, cx: &Context, config: &Value, previous: Option<&Value>) -> Result<Connected> {
        let mut cfg: ViberConfig = serde_json::from_value(config.clone())
            .map_err(|e| Error::invalid("invalid_channel_config", format!("viber channel config: {e}")))?;
        let base = url::Url::parse(&cfg.api_base)
            .map_err(|e| Error::invalid("invalid_channel_config", format!("`api_base` is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::invalid("invalid_channel_config", "`api_base` must be an http(s) URL"));
        }
        cfg.token = cfg.token.trim().to_string();
        if cfg.token.is_empty() || cfg.token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid("invalid_channel_config", "`token` is one word without spaces"));
        }
        if cfg.sender_name.as_deref().is_some_and(|n| n.chars().count() > 28) {
            return Err(Error::invalid("invalid_channel_config", "`sender_name` is at most 28 characters"));
        }
        if cfg.welcome.as_deref().is_some_and(|w| w.chars().count() > TEXT_LIMIT) {
            return Err(Error::invalid("invalid_channel_config", "`welcome` is at most 7000 characters"));
        }
        let account = api(cx, &cfg).account_info().await.map_err(|e| refused(e, "the token"))?;
        cfg.bot_name = account["name"].as_str().map(str::to_string);
        cfg.uri = account["uri"].as_str().filter(|u| !u.is_empty()).map(str::to_string);
        cfg.file_secret = previous
            .and_then(|p| p.get("file_secret"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| Some(new_secret()));
        let info = json!({"id": account["id"], "name": account["name"], "uri": account["uri"],
                          "subscribers_count": account["subscribers_count"]});
        let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Connected { config, info })
    }

    /// `set_webhook` with okno's hook address and the event types; Viber calls the address
    /// before it answers, so the channel is already stored.
    async fn apply_receive_mode(&self, cx: &Context, channel: &Channel) -> Result<()> {
        let cfg = config_of(channel)?;
        let url = format!("{}/hooks/{}", cx.public_url.trim_end_matches('/'), channel.id);
        let body = json!({"url": url, "event_types": EVENT_TYPES, "send_name": true, "send_photo": true});
        api(cx, &cfg).call("set_webhook", &body).await.map_err(|e| refused(e, "the webhook"))?;
        Ok(())
    }

    fn adapter(&self, cx: &Context, channel: &Channel, state: Arc<dyn ChannelState>) -> Result<Arc<dyn Adapter>> {
        let cfg = config_of(channel)?;
        Ok(Arc::new(ViberAdapter::new(api(cx, &cfg), cfg, state, &cx.public_url, channel.id.as_ref())))
    }

    /// `X-Viber-Content-Signature` (hex HMAC-SHA256 of the raw body keyed with the token) is
    /// checked in constant time before the body is read.
    async fn receive(
        &self,
        _cx: &Context,
        channel: &Channel,
        request: &HookRequest<'_>,
        state: &dyn ChannelState,
    ) -> Result<Vec<Received>> {
        let cfg = config_of(channel)?;
        let signature = request
            .headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| request.query_param("sig"))
            .unwrap_or_default();
        let expected = format!("sha256={}", signature.trim().to_ascii_lowercase());
        if cfg.token.is_empty()
            || signature.is_empty()
            || !signing::verify(cfg.token.as_bytes(), request.body, &expected)
        {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "bad_signature",
                "X-Viber-Content-Signature does not match",
            ));
        }
        let body: Value = serde_json::from_slice(request.body)
            .map_err(|e| Error::invalid("invalid_json", format!("not a Viber callback: {e}")))?;
        if webhook::event_name(&body).is_none() {
            return Err(Error::invalid("invalid_json", "a Viber callback is a JSON object with `event`"));
        }
        let event = match webhook::parse(&channel.id, &body) {
            InboundEvent::Message(mut msg) => {
                if let Some(token) = msg.button_data.as_deref().and_then(button_token) {
                    match state.button_data(token).await? {
                        Some(data) => msg.button_data = Some(data),
                        None => tracing::warn!(channel = %channel.id, token, "a press carried an unknown token"),
                    }
                }
                InboundEvent::Message(msg)
            }
            other => other,
        };
        Ok(vec![Received::new(event)])
    }

    /// `conversation_started` is answered with the welcome message, when the channel has one.
    fn hook_answer(&self, channel: &Channel, request: &HookRequest<'_>) -> HookAnswer {
        let Ok(cfg) = config_of(channel) else { return HookAnswer::Json };
        let Some(welcome) = cfg.welcome.as_deref().filter(|w| !w.trim().is_empty()) else { return HookAnswer::Json };
        let started = serde_json::from_slice::<Value>(request.body)
            .ok()
            .is_some_and(|b| webhook::event_name(&b) == Some("conversation_started"));
        if !started {
            return HookAnswer::Json;
        }
        HookAnswer::Body(json!({"sender": cfg.sender(), "type": "text", "text": welcome}))
    }

    fn file_link_secret(&self, channel: &Channel) -> Option<String> {
        channel.config.get("file_secret").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
    }

    /// `viber://pa?chatURI=<uri>&context=<code>`: the chat opens and Viber reports the code as
    /// `conversation_started`'s `context`.
    fn deep_link(&self, channel: &Channel, code: &str) -> Option<String> {
        let uri = channel
            .config
            .get("uri")
            .or_else(|| channel.info.get("uri"))
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())?;
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        Some(format!("viber://pa?chatURI={}&context={}", enc(uri), enc(code)))
    }
}
