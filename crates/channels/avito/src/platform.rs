//! Avito as okno's engine sees it: connecting an account (a token by client credentials, then
//! the account and its Messenger API access checked with Avito's own calls: nothing is saved
//! when Avito refuses them), the webhook v3 subscription okno makes itself, webhooks read into
//! messages with the ad the chat is about, and replies through [`AvitoAdapter`].
//!
//! Webhook authenticity: Avito sends an `x-avito-messenger-signature` header whose algorithm it
//! does not document, so okno does not rely on it. It registers its hook address with a secret
//! of its own in the query (`/hooks/{channel_id}?secret=…`, 32 random bytes in hex, generated on
//! connect and kept across changes) and refuses any request without it.
//!
//! The 2-second deadline: a hook's answer waits on okno storing the message and on reading the
//! chat's ad (`GET /messenger/v2/…/chats/{chat_id}`, kept for ten minutes per chat). That read
//! gets at most 1.2 s, token included; past it the message is stored with the ad's id alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use okno_channel::http::{FetchError, Fetched};
use okno_channel::schema::{text, Choice, Field, FieldKind, Schema};
use okno_channel::throttle::{Limits, Throttled};
use okno_channel::{
    Adapter, Brand, Capabilities, ChannelState, Connected, Context, FileLimits, HookRequest, InboundEvent, Platform,
    PollError, Polled, Received, TextLimit, TextUnit,
};
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::{signing, Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::adapter::{AvitoAdapter, IMAGE_LIMIT, TEXT_LIMIT};
use crate::api::{ApiError, AvitoApi, Tokens, DEFAULT_API_BASE};
use crate::webhook::{self, Hook};

/// The receive modes, webhook first (the default).
const MODES: &[Choice] = &[
    Choice { value: "webhook", label: text("Webhook", "Вебхук") },
    Choice { value: "polling", label: text("Polling", "Опрос") },
];

/// The query parameter of the hook address that carries okno's secret.
pub const SECRET_PARAM: &str = "secret";
/// How long a webhook's answer may wait on reading the chat's ad.
const CHAT_READ_BUDGET: Duration = Duration::from_millis(1200);
/// How long a chat's ad and buyer name are kept.
const CHAT_TTL: Duration = Duration::from_secs(600);

/// The channel's configuration (`config` of `POST /api/v1/channels`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvitoConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The Avito account's number (a JSON number or a string of digits).
    #[serde(deserialize_with = "account_id")]
    pub user_id: String,
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// `webhook` (Avito calls okno) or `polling` (okno reads the chats every few seconds).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Pace of sending; Avito states none, okno's default is 5 a second and 60 a minute per chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// The secret in the hook address (kept by okno).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_string()
}

fn default_mode() -> String {
    "webhook".to_string()
}

fn account_id<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Number(n) if n.as_i64().is_some_and(|n| n > 0) => Ok(n.to_string()),
        Value::String(s)
            if !s.trim().is_empty() && s.trim().len() <= 20 && s.trim().bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(s.trim().to_string())
        }
        _ => Err(serde::de::Error::custom("`user_id` is the Avito account's number (digits)")),
    }
}

/// The default pace: 5 messages a second over the account, 60 a minute into one chat.
pub fn default_limits() -> Limits {
    Limits { per_second: Some(5), per_chat_per_minute: Some(60), burst: Some(5) }
}

/// The address Avito delivers to: `{public_url}/hooks/{channel_id}?secret=…`.
pub fn hook_url(public_url: &str, channel_id: &str, secret: &str) -> String {
    format!("{}/hooks/{channel_id}?{SECRET_PARAM}={secret}", public_url.trim_end_matches('/'))
}

/// The Avito platform. It keeps, per okno process, the tokens of the applications it acts for
/// and, for a few minutes, what chats are about: caches only, rebuilt on demand.
#[derive(Default)]
pub struct Avito {
    tokens: Tokens,
    chats: Arc<Mutex<HashMap<String, (Instant, Value)>>>,
}

fn config_of(channel: &Channel) -> Result<AvitoConfig> {
    okno_channel::config_of(channel)
}

fn one_word(value: &str, field: &str) -> Result<String> {
    let v = value.trim().to_string();
    if v.is_empty() || v.len() > 200 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid("invalid_channel_config", format!("`{field}` is one word without spaces")));
    }
    Ok(v)
}

impl Avito {
    fn api(&self, cx: &Context, cfg: &AvitoConfig) -> AvitoApi {
        AvitoApi::new(
            cx.http.clone(),
            &cfg.api_base,
            &cfg.client_id,
            &cfg.client_secret,
            &cfg.user_id,
            self.tokens.clone(),
        )
    }

    /// The chat (with its ad and users), from the cache or Avito within the budget.
    async fn chat(&self, cx: &Context, channel: &Channel, cfg: &AvitoConfig, chat_id: &str) -> Option<Value> {
        let key = format!("{}|{chat_id}", channel.id);
        if let Ok(cache) = self.chats.lock() {
            if let Some((at, chat)) = cache.get(&key) {
                if at.elapsed() < CHAT_TTL {
                    return Some(chat.clone());
                }
            }
        }
        let api = self.api(cx, cfg);
        let read = tokio::time::timeout(CHAT_READ_BUDGET, api.chat(chat_id, CHAT_READ_BUDGET)).await;
        match read {
            Ok(Ok(chat)) => {
                if let Ok(mut cache) = self.chats.lock() {
                    if cache.len() > 10_000 {
                        cache.retain(|_, (at, _)| at.elapsed() < CHAT_TTL);
                    }
                    cache.insert(key, (Instant::now(), chat.clone()));
                }
                Some(chat)
            }
            Ok(Err(e)) => {
                tracing::warn!(channel = %channel.id, chat_id, error = %e, "reading an Avito chat's ad failed");
                None
            }
            Err(_) => {
                tracing::warn!(channel = %channel.id, chat_id, "reading an Avito chat's ad took too long");
                None
            }
        }
    }
}

fn refused(e: ApiError) -> Error {
    match e {
        ApiError::Credentials(reason) => Error::invalid(
            "invalid_avito_credentials",
            format!("Avito refused the client_id or client_secret: {reason}"),
        ),
        ApiError::Avito { status: 402, message, .. } => Error::invalid(
            "avito_tariff_required",
            format!("Avito answered 402 ({message}): the Messenger API needs an Avito Pro tariff that includes it"),
        ),
        ApiError::Avito { status: 401 | 403 | 404, message, .. } => Error::invalid(
            "invalid_avito_credentials",
            format!("Avito refused the credentials for this `user_id` ({message}): is it the account's number?"),
        ),
        ApiError::Avito { status, message, .. } if status < 500 && status != 429 => {
            Error::invalid("invalid_avito_credentials", format!("Avito refused the account: HTTP {status}: {message}"))
        }
        e => Error::unavailable("avito_unreachable", format!("cannot reach Avito's API: {e}")),
    }
}

#[async_trait]
impl Platform for Avito {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Avito
    }

    fn title(&self) -> &'static str {
        "Avito"
    }

    fn brand(&self) -> Brand {
        Brand {
            color: "#00AAFF",
            mark: r##"<circle cx="15.6" cy="15.4" r="3.6" fill="#fff"/><circle cx="8.4" cy="15.9" r="2.3" fill="#fff"/><circle cx="15.9" cy="8.3" r="1.9" fill="#fff"/><circle cx="9" cy="8.8" r="3" fill="#fff"/>"##,
        }
    }

    fn schema(&self) -> Schema {
        Schema::new(
            text("Connect an Avito account", "Подключить аккаунт Авито"),
            vec![
                Field::new(
                    "client_id",
                    text(
                        "Client ID (Avito Pro → Settings → API access)",
                        "Идентификатор приложения (Авито Про → настройки → доступ к API)",
                    ),
                    FieldKind::Text,
                )
                .required(),
                Field::new(
                    "client_secret",
                    text("Client secret (same page)", "Секрет приложения (там же)"),
                    FieldKind::Text,
                )
                .required()
                .secret(),
                Field::new("user_id", text("Account number", "Номер аккаунта"), FieldKind::Json)
                    .required()
                    .help(text(
                        "The number in your Avito profile's address; the Messenger API needs a tariff that includes it.",
                        "Число из адреса вашего профиля на Авито; для мессенджера нужен тариф, который его включает.",
                    ))
                    .placeholder("123456789"),
                Field::new("mode", text("How messages arrive", "Как приходят сообщения"), FieldKind::Choice(MODES))
                    .help(text(
                        "Webhook: Avito calls okno at once (a public address is needed). Polling: okno reads the chats every few seconds.",
                        "Вебхук: Авито сразу сообщает okno (нужен публичный адрес). Опрос: okno читает чаты каждые несколько секунд.",
                    )),
                Field::new("api_base", text("API address", "Адрес API"), FieldKind::Url)
                    .help(text(
                        "Leave it empty for Avito's; set it for a test simulator.",
                        "Оставьте пустым для Авито; укажите для тестового симулятора.",
                    ))
                    .placeholder(DEFAULT_API_BASE)
                    .advanced(),
                Field::new("limits", text("Rate limits", "Ограничения скорости"), FieldKind::Json)
                    .help(text(
                        "{\"per_second\": 5, \"per_chat_per_minute\": 60, \"burst\": 5} by default; 0 turns one off",
                        "{\"per_second\": 5, \"per_chat_per_minute\": 60, \"burst\": 5} по умолчанию; 0 отключает",
                    ))
                    .api_only(),
                Field::new("webhook_secret", text("Hook secret", "Секрет адреса"), FieldKind::Text).secret().internal(),
            ],
        )
    }

    fn capabilities(&self, config: &Value) -> Capabilities {
        let polling = config.get("mode").and_then(Value::as_str) == Some("polling");
        let mut caps = Capabilities::text_only(TextLimit { max: TEXT_LIMIT, unit: TextUnit::Chars });
        caps.polling = polling;
        caps.webhook = !polling;
        caps.link_codes = true;
        caps.splits_long_text = true;
        caps.files = Some(FileLimits { max_upload: IMAGE_LIMIT, max_download: IMAGE_LIMIT, caption: None });
        caps
    }

    /// A token by client credentials (refused: `invalid_avito_credentials`), the account
    /// (`GET /core/v1/accounts/self`) and the Messenger API for `user_id`
    /// (`GET /messenger/v2/accounts/{user_id}/chats?limit=1`: 402 without the tariff).
    async fn connect(&self, cx: &Context, config: &Value, previous: Option<&Value>) -> Result<Connected> {
        let mut cfg: AvitoConfig = serde_json::from_value(config.clone())
            .map_err(|e| Error::invalid("invalid_channel_config", format!("avito channel config: {e}")))?;
        let base = url::Url::parse(&cfg.api_base)
            .map_err(|e| Error::invalid("invalid_channel_config", format!("`api_base` is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::invalid("invalid_channel_config", "`api_base` must be an http(s) URL"));
        }
        if !MODES.iter().any(|m| m.value == cfg.mode) {
            return Err(Error::invalid("invalid_channel_config", "`mode` is `webhook` or `polling`"));
        }
        cfg.client_id = one_word(&cfg.client_id, "client_id")?;
        cfg.client_secret = one_word(&cfg.client_secret, "client_secret")?;
        let api = self.api(cx, &cfg);
        api.check_credentials().await.map_err(refused)?;
        let account = api.account().await.map_err(refused)?;
        let path = format!("/messenger/v2/accounts/{}/chats", cfg.user_id);
        api.call(reqwest::Method::GET, &path, &[("limit", "1".to_string())], None).await.map_err(refused)?;
        let kept = previous.and_then(|p| p.get("webhook_secret")).and_then(Value::as_str).map(str::to_string);
        cfg.webhook_secret = cfg.webhook_secret.or(kept).or_else(|| Some(okno_domain::ids::random_hex(32)));
        let own = webhook::id_of(&account["id"]);
        let info = json!({
            "user_id": cfg.user_id,
            "name": if own.as_deref() == Some(cfg.user_id.as_str()) { account["name"].clone() } else { Value::Null },
            "profile_url": format!("https://www.avito.ru/user/{}/profile", cfg.user_id),
        });
        let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Connected { config, info })
    }

    /// Webhook mode: subscribes the hook address (`POST /messenger/v3/webhook`) and
    /// unsubscribes this channel's earlier addresses (another secret, another public address).
    /// Polling mode: unsubscribes them all.
    async fn apply_receive_mode(&self, cx: &Context, channel: &Channel) -> Result<()> {
        let cfg = config_of(channel)?;
        let secret = cfg.webhook_secret.clone().unwrap_or_default();
        let url = (cfg.mode == "webhook").then(|| hook_url(&cx.public_url, &channel.id, &secret));
        let api = self.api(cx, &cfg);
        let fail =
            |e: ApiError| Error::unprocessable("avito_refused", format!("Avito refused the webhook subscription: {e}"));
        if let Some(url) = &url {
            api.subscribe(url).await.map_err(fail)?;
        }
        let ours = format!("/hooks/{}?", channel.id);
        for old in api.subscriptions().await.map_err(fail)? {
            if url.as_ref() != Some(&old) && old.contains(&ours) {
                api.unsubscribe(&old).await.map_err(fail)?;
            }
        }
        Ok(())
    }

    fn adapter(&self, cx: &Context, channel: &Channel, state: Arc<dyn ChannelState>) -> Result<Arc<dyn Adapter>> {
        let cfg = config_of(channel)?;
        let limits = cfg.limits.clone().unwrap_or_else(default_limits);
        let adapter = AvitoAdapter::new(self.api(cx, &cfg), state, cx.files.clone());
        Ok(Arc::new(Throttled::new(adapter, &limits)))
    }

    /// The secret in the address first (constant time), then the body; a buyer's message
    /// gets the chat's ad and the buyer's name.
    async fn receive(
        &self,
        cx: &Context,
        channel: &Channel,
        request: &HookRequest<'_>,
        _state: &dyn ChannelState,
    ) -> Result<Vec<Received>> {
        let cfg = config_of(channel)?;
        let expected = cfg.webhook_secret.clone().unwrap_or_default();
        let given = request.query_param(SECRET_PARAM).unwrap_or_default();
        if expected.is_empty() || !signing::secrets_equal(&given, &expected) {
            return Err(Error::new(ErrorKind::Unauthorized, "bad_secret", "the hook address's secret does not match"));
        }
        let body: Value = serde_json::from_slice(request.body)
            .map_err(|e| Error::invalid("invalid_json", format!("not an Avito webhook: {e}")))?;
        let hook = webhook::parse(&channel.id, &cfg.user_id, &body)
            .map_err(|e| Error::invalid("invalid_body", format!("not an Avito webhook: {e}")))?;
        let event = match hook {
            Hook::Message { mut message, item_id } => {
                let chat = self.chat(cx, channel, &cfg, &message.sender.chat_id).await;
                message.context = webhook::item_context(item_id, chat.as_ref());
                message.sender.display_name =
                    chat.as_ref().and_then(|c| webhook::buyer_name(c, &message.sender.user_id));
                InboundEvent::Message(message)
            }
            other => webhook::event(other),
        };
        Ok(vec![Received::new(event)])
    }

    /// A voice message (`avito-voice:<id>`): its address from `getVoiceFiles`, then the file
    /// (opus in MP4).
    async fn fetch(
        &self,
        cx: &Context,
        channel: &Channel,
        reference: &str,
    ) -> std::result::Result<Fetched, FetchError> {
        let Some(voice) = reference.strip_prefix(webhook::VOICE_SCHEME) else {
            return Err(FetchError::Refused(format!("not an Avito voice message: {reference}")));
        };
        let cfg = config_of(channel).map_err(|e| FetchError::Refused(e.message))?;
        let url = match self.api(cx, &cfg).voice_url(voice).await {
            Ok(Some(url)) => url,
            Ok(None) => return Err(FetchError::Refused(format!("Avito knows no voice message `{voice}`"))),
            Err(e @ (ApiError::Network(_) | ApiError::Avito { status: 429 | 500.., .. })) => {
                return Err(FetchError::Network(e.to_string()))
            }
            Err(e) => return Err(FetchError::Refused(e.to_string())),
        };
        let mut fetched = cx.http.fetch_limited(&url, cx.max_download.min(IMAGE_LIMIT)).await?;
        if fetched.mime.as_deref().is_none_or(|m| m == "application/octet-stream") {
            fetched.mime = Some("audio/mp4".into());
        }
        Ok(fetched)
    }

    fn polls(&self, channel: &Channel) -> bool {
        config_of(channel).is_ok_and(|cfg| cfg.mode == "polling")
    }

    /// The chats updated since the cursor, read every few seconds ([`crate::polling`]).
    async fn poll(
        &self,
        cx: &Context,
        channel: &Channel,
        cursor: Option<&str>,
        _state: &dyn ChannelState,
    ) -> std::result::Result<Polled, PollError> {
        let cfg = config_of(channel).map_err(|e| PollError::Refused(e.message))?;
        crate::polling::poll(cx, channel, &self.api(cx, &cfg), cursor).await
    }

    /// okno subscribes this address itself; shown for reference, with its secret.
    fn hook_address(&self, public_url: &str, channel: &Channel) -> String {
        match config_of(channel).ok().and_then(|c| c.webhook_secret) {
            Some(secret) => hook_url(public_url, &channel.id, &secret),
            None => format!("{public_url}/hooks/{}", channel.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_number_is_taken_as_a_number_or_digits() {
        let cfg = |id: Value| {
            serde_json::from_value::<AvitoConfig>(json!({"client_id": "a", "client_secret": "b", "user_id": id}))
        };
        assert_eq!(cfg(json!(123)).map(|c| c.user_id).ok().as_deref(), Some("123"));
        assert_eq!(cfg(json!(" 456 ")).map(|c| c.user_id).ok().as_deref(), Some("456"));
        for bad in [json!("12a"), json!(-1), json!(""), json!(null), json!(1.5)] {
            assert!(cfg(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_hook_address_carries_the_secret() {
        assert_eq!(hook_url("https://o.example/", "ch-1", "abc"), "https://o.example/hooks/ch-1?secret=abc");
    }
}
