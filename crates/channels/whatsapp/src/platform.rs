//! WhatsApp as okno's engine sees it: connecting a Cloud API phone number (the token checked
//! with `GET /{phone_number_id}`), Meta's callback verification (`hub.challenge`), webhooks
//! verified by `X-Hub-Signature-256` and read into messages and delivery receipts, media
//! downloaded by id, and `wa.me` links carrying a link code as the first message's text.
//!
//! The webhook itself is set in Meta's App Dashboard (WhatsApp → Configuration → Callback URL
//! `{public_url}/hooks/{channel_id}` and the verify token), not by an API call: okno only
//! answers Meta's check.

use std::sync::Arc;

use async_trait::async_trait;
use okno_channel::http::{FetchError, Fetched};
use okno_channel::schema::{text, Field, FieldKind, Schema};
use okno_channel::{
    Adapter, Brand, Buttons, Capabilities, ChannelState, Connected, Context, FileLimits, HookAnswer, HookRequest,
    InboundEvent, Platform, Received, TextLimit, TextUnit,
};
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::{signing, Error, ErrorKind, Result};
use serde_json::{json, Value};

use crate::adapter::{CAPTION_LIMIT, MAX_LIST_ROWS, ROW_TITLE_LIMIT, TEXT_LIMIT};
use crate::api::{ApiError, GraphApi};
use crate::webhook::{self, MEDIA_SCHEME};
use crate::{WhatsAppAdapter, WhatsAppConfig};

/// The header Meta signs webhooks in.
const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Largest file okno sends (WhatsApp's documents: 100 MB).
const UPLOAD_LIMIT: u64 = 100 * 1024 * 1024;

/// The WhatsApp platform.
pub struct WhatsApp;

fn config_of(channel: &Channel) -> Result<WhatsAppConfig> {
    okno_channel::config_of(channel)
}

fn api(cx: &Context, cfg: &WhatsAppConfig) -> GraphApi {
    GraphApi::new(cx.http.clone(), &cfg.api_base, &cfg.token, &cfg.phone_number_id)
}

fn refused(e: ApiError) -> Error {
    match e {
        ApiError::Meta { status, code, .. } if matches!(code, 190 | 0 | 10 | 100 | 200..=299) && status < 500 => {
            Error::invalid(
                "invalid_whatsapp_credentials",
                format!("WhatsApp refused the token or the phone number id: {e}"),
            )
        }
        ApiError::Meta { .. } => {
            Error::unavailable("whatsapp_unreachable", format!("WhatsApp did not confirm the number: {e}"))
        }
        ApiError::Network(reason) => {
            Error::unavailable("whatsapp_unreachable", format!("cannot reach the WhatsApp Cloud API: {reason}"))
        }
    }
}

fn one_word(value: &str, field: &str) -> Result<String> {
    let v = value.trim().to_string();
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid("invalid_channel_config", format!("`{field}` is one word without spaces")));
    }
    Ok(v)
}

#[async_trait]
impl Platform for WhatsApp {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Whatsapp
    }

    fn title(&self) -> &'static str {
        "WhatsApp"
    }

    fn brand(&self) -> Brand {
        Brand {
            color: "#25D366",
            mark: r##"<path d="M12 5.2a6.8 6.8 0 0 0-5.9 10.2l-.9 3.4 3.5-.9A6.8 6.8 0 1 0 12 5.2zm3.4 9.4c-.2.4-.9.8-1.3.8-.3 0-.7.1-2.3-.6-1.9-.8-3.1-2.8-3.2-2.9-.1-.1-.8-1-.8-2s.5-1.4.7-1.6c.2-.2.4-.2.5-.2h.4c.1 0 .3 0 .4.3l.6 1.4c.1.1.1.2 0 .4l-.3.4-.3.3c-.1.1-.2.2-.1.4.1.2.5.9 1.2 1.5.8.7 1.5.9 1.7 1 .2.1.3.1.4-.1l.6-.7c.1-.2.3-.1.4-.1l1.3.6c.2.1.3.1.4.2.1.1.1.5-.1.9z" fill="#fff"/>"##,
        }
    }

    fn schema(&self) -> Schema {
        Schema::new(
            text("Connect a WhatsApp Business number", "Подключить бизнес-номер WhatsApp"),
            vec![
                Field::new(
                    "token",
                    text(
                        "Access token of a system user (Meta Business Suite → System users), with whatsapp_business_messaging",
                        "Постоянный токен системного пользователя (бизнес-настройки Meta → Системные пользователи) с правом на отправку сообщений",
                    ),
                    FieldKind::Text,
                )
                .required()
                .secret(),
                Field::new(
                    "phone_number_id",
                    text("Phone number ID (App Dashboard → WhatsApp → API Setup)", "ID номера телефона (кабинет разработчика Meta → WhatsApp → настройка API)"),
                    FieldKind::Text,
                )
                .required(),
                Field::new(
                    "app_secret",
                    text("App secret (App Dashboard → App settings → Basic)", "Секрет приложения (кабинет разработчика Meta → настройки приложения → основные)"),
                    FieldKind::Text,
                )
                .required()
                .secret()
                .help(text(
                    "okno checks every webhook's X-Hub-Signature-256 with it.",
                    "okno проверяет им подпись каждого вебхука.",
                )),
                Field::new(
                    "verify_token",
                    text("Verify token (any word; the same in WhatsApp → Configuration)", "Проверочный токен (любое слово; то же — в настройках вебхука WhatsApp у Meta)"),
                    FieldKind::Text,
                )
                .required()
                .secret()
                .help(text(
                    "Callback URL in Meta's dashboard: OKNO_PUBLIC_URL/hooks/<channel id>; subscribe to the messages field.",
                    "Адрес вебхука в кабинете Meta — адрес приёма, показанный у канала на этой странице; включите подписку на сообщения.",
                )),
                Field::new("api_base", text("Graph API address", "Адрес API Meta"), FieldKind::Url)
                    .help(text(
                        "Leave it empty for Meta's (with its version); set it for a newer version or a test simulator.",
                        "Оставьте пустым для Meta (с версией API); укажите для новой версии или тестового симулятора.",
                    ))
                    .placeholder(crate::api::DEFAULT_API_BASE)
                    .advanced(),
                Field::new("limits", text("Rate limits", "Ограничения скорости"), FieldKind::Json)
                    .help(text(
                        "{\"per_second\": 80, \"pair_seconds\": 6, \"pair_burst\": 45}: Meta's when absent; 0 turns one off",
                        "{\"per_second\": 80, \"pair_seconds\": 6, \"pair_burst\": 45}: по умолчанию — как у Meta; 0 отключает",
                    ))
                    .api_only(),
                Field::new("templates", text("Approved templates", "Одобренные шаблоны"), FieldKind::Json)
                    .help(text(
                        "[{\"name\": \"order_update\", \"language\": \"ru\", \"params\": [\"order\", \"date\"]}]: the templates Meta approved, offered when the 24-hour window is closed",
                        "[{\"name\": \"order_update\", \"language\": \"ru\", \"params\": [\"order\", \"date\"]}]: шаблоны, одобренные Meta; их можно отправить, когда 24-часовое окно закрыто",
                    ))
                    .api_only(),
                Field::new("display_phone_number", text("Phone number", "Номер телефона"), FieldKind::Text).internal(),
            ],
        )
    }

    fn capabilities(&self, config: &Value) -> Capabilities {
        let number_known = config.get("display_phone_number").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        Capabilities {
            // Up to 3 reply buttons, or a list of up to 10 rows shown one under another; more
            // choices go as numbered lines (the adapter decides per message).
            buttons: Some(Buttons {
                inline: true,
                reply_keyboard: false,
                max_per_row: 1,
                max_rows: MAX_LIST_ROWS,
                max_label: ROW_TITLE_LIMIT,
            }),
            edit: false,
            delete: false,
            groups: false,
            deep_links: number_known,
            link_codes: true,
            posts: false,
            text: TextLimit { max: TEXT_LIMIT, unit: TextUnit::Chars },
            splits_long_text: true,
            files: Some(FileLimits {
                max_upload: UPLOAD_LIMIT,
                max_download: UPLOAD_LIMIT,
                caption: Some(TextLimit { max: CAPTION_LIMIT, unit: TextUnit::Chars }),
            }),
            receipts: true,
            service_window: Some(std::time::Duration::from_secs(24 * 3600)),
            chat_actions: false,
            polling: false,
            webhook: true,
            unread_by_email: None,
        }
    }

    /// Checks the token on the phone number (`GET /{phone_number_id}?fields=
    /// display_phone_number,verified_name`): nothing is saved when Meta refuses it. The number
    /// is kept in the configuration for `wa.me` links.
    async fn connect(&self, cx: &Context, config: &Value, _previous: Option<&Value>) -> Result<Connected> {
        let mut cfg: WhatsAppConfig = serde_json::from_value(config.clone())
            .map_err(|e| Error::invalid("invalid_channel_config", format!("whatsapp channel config: {e}")))?;
        let base = url::Url::parse(&cfg.api_base)
            .map_err(|e| Error::invalid("invalid_channel_config", format!("`api_base` is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::invalid("invalid_channel_config", "`api_base` must be an http(s) URL"));
        }
        cfg.token = one_word(&cfg.token, "token")?;
        cfg.app_secret = one_word(&cfg.app_secret, "app_secret")?;
        cfg.verify_token = one_word(&cfg.verify_token, "verify_token")?;
        cfg.phone_number_id = cfg.phone_number_id.trim().to_string();
        if cfg.phone_number_id.is_empty() || !cfg.phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(
                "invalid_channel_config",
                "`phone_number_id` is the number's ID in digits (API Setup)",
            ));
        }
        let number = api(cx, &cfg).phone_number().await.map_err(refused)?;
        let display = number["display_phone_number"].as_str().unwrap_or_default().to_string();
        let digits: String = display.chars().filter(char::is_ascii_digit).collect();
        cfg.display_phone_number = (!digits.is_empty()).then_some(digits);
        let info = json!({
            "phone_number_id": cfg.phone_number_id,
            "display_phone_number": display,
            "verified_name": number["verified_name"],
        });
        let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Connected { config, info })
    }

    fn adapter(&self, cx: &Context, channel: &Channel, state: Arc<dyn ChannelState>) -> Result<Arc<dyn Adapter>> {
        let cfg = config_of(channel)?;
        let limits = cfg.limits.clone().unwrap_or_default();
        Ok(Arc::new(WhatsAppAdapter::new(api(cx, &cfg), state, cx.files.clone(), &limits)))
    }

    /// `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app secret) is checked in
    /// constant time before the body is read.
    async fn receive(
        &self,
        _cx: &Context,
        channel: &Channel,
        request: &HookRequest<'_>,
        state: &dyn ChannelState,
    ) -> Result<Vec<Received>> {
        let cfg = config_of(channel)?;
        let signature = request.headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if cfg.app_secret.is_empty() || !signing::verify(cfg.app_secret.as_bytes(), request.body, signature) {
            return Err(Error::new(ErrorKind::Unauthorized, "bad_signature", "X-Hub-Signature-256 does not match"));
        }
        let body: Value = serde_json::from_slice(request.body)
            .map_err(|e| Error::invalid("invalid_json", format!("not a WhatsApp webhook: {e}")))?;
        if !body.is_object() {
            return Err(Error::invalid("invalid_json", "a WhatsApp webhook is a JSON object"));
        }
        let mut out = Vec::new();
        for event in webhook::parse(&channel.id, &body) {
            let event = match event {
                InboundEvent::Message(mut msg) => {
                    if let Some(token) = msg.button_data.as_deref().and_then(webhook::button_token) {
                        match state.button_data(token).await? {
                            Some(data) => msg.button_data = Some(data),
                            None => {
                                tracing::warn!(channel = %channel.id, token, "a button answer carried an unknown token")
                            }
                        }
                    }
                    InboundEvent::Message(msg)
                }
                other => other,
            };
            out.push(Received::new(event));
        }
        Ok(out)
    }

    /// Meta's check of the callback URL: `hub.mode=subscribe` and the configured
    /// `hub.verify_token` are answered with `hub.challenge`; anything else is refused.
    fn verify_hook(&self, channel: &Channel, request: &HookRequest<'_>) -> Option<Result<HookAnswer>> {
        let refuse = |m: &str| Some(Err(Error::new(ErrorKind::Forbidden, "bad_verify_token", m.to_string())));
        let Ok(cfg) = config_of(channel) else { return refuse("the channel has no WhatsApp configuration") };
        if request.query_param("hub.mode").as_deref() != Some("subscribe") {
            return refuse("hub.mode is not subscribe");
        }
        let token = request.query_param("hub.verify_token").unwrap_or_default();
        if cfg.verify_token.is_empty() || !signing::secrets_equal(&token, &cfg.verify_token) {
            return refuse("hub.verify_token does not match");
        }
        match request.query_param("hub.challenge") {
            Some(c) if !c.is_empty() && c.len() <= 256 => Some(Ok(HookAnswer::Text(c))),
            _ => refuse("no hub.challenge"),
        }
    }

    /// A media file named `wa-media:<id>`: its URL from `GET /{id}`, then the file, both with
    /// the token.
    async fn fetch(
        &self,
        cx: &Context,
        channel: &Channel,
        reference: &str,
    ) -> std::result::Result<Fetched, FetchError> {
        let Some(id) = reference.strip_prefix(MEDIA_SCHEME) else {
            return Err(FetchError::Refused(format!("not a WhatsApp media file: {reference}")));
        };
        let cfg = config_of(channel).map_err(|e| FetchError::Refused(e.message))?;
        api(cx, &cfg).download(id, cx.max_download.min(UPLOAD_LIMIT)).await
    }

    /// `https://wa.me/<number>?text=<code>`: the chat opens with the code typed, the person
    /// sends it.
    fn deep_link(&self, channel: &Channel, code: &str) -> Option<String> {
        let number = channel
            .config
            .get("display_phone_number")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                let shown = channel.info.get("display_phone_number")?.as_str()?;
                Some(shown.chars().filter(char::is_ascii_digit).collect())
            })
            .filter(|n: &String| !n.is_empty())?;
        let text: String = url::form_urlencoded::byte_serialize(code.as_bytes()).collect();
        Some(format!("https://wa.me/{number}?text={text}"))
    }
}
