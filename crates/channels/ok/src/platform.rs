//! OK as okno's engine sees it: connecting a group's bot (`GET /graph/me/info`), its webhook
//! (`POST /graph/me/subscribe` to an address with a secret okno made, since OK signs nothing),
//! webhook events read into inbound events, and files downloaded from the addresses OK gives.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use okno_channel::http::{FetchError, Fetched};
use okno_channel::schema::{text, Field, FieldKind, Schema};
use okno_channel::throttle::{Limits, Throttled};
use okno_channel::{
    Adapter, Brand, Buttons, Capabilities, ChannelState, Connected, Context, FileLimits, HookRequest, InboundEvent,
    Platform, Received, TextLimit, TextUnit,
};
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::{signing, Error, ErrorKind, Result};
use serde_json::{json, Value};

use crate::adapter::{OkAdapter, OkConfig, TEXT_LIMIT};
use crate::api::{codes, ApiError, GraphApi};
use crate::inbound::{self, ChatKind, What, FILE_SCHEME, TOKEN_PREFIX};

/// The query parameter of the webhook address that carries okno's secret.
pub const SECRET_PARAM: &str = "secret";
/// Largest file okno sends or fetches (OK publishes no limit; a size its upload host takes).
const FILE_LIMIT: u64 = 50 * 1024 * 1024;

/// The OK (Odnoklassniki) platform: a group's bot.
pub struct Odnoklassniki;

fn config_of(channel: &Channel) -> Result<OkConfig> {
    okno_channel::config_of(channel)
}

fn api(cx: &Context, cfg: &OkConfig) -> GraphApi {
    GraphApi::new(cx.http.clone(), &cfg.api_base, &cfg.token)
}

/// The address OK delivers to: `{public_url}/hooks/{channel_id}?secret=…`.
pub fn hook_url(public_url: &str, channel_id: &str, secret: &str) -> String {
    format!("{}/hooks/{channel_id}?{SECRET_PARAM}={secret}", public_url.trim_end_matches('/'))
}

/// OK's pacing is not published: a steady pace well under what a group chat bears.
fn default_limits() -> Limits {
    Limits { per_second: Some(20), per_chat_per_minute: Some(60), burst: Some(5) }
}

/// The channel's pace: its configured `limits`, else [`default_limits`].
fn limits(cfg: &OkConfig) -> Limits {
    cfg.limits.clone().unwrap_or_else(default_limits)
}

/// Whether a chat is a group chat (`GET /graph/me/chat/{chat_id}`: `type` is `DIALOG` for a
/// person's dialog with the group).
async fn chat_kind(api: &GraphApi, chat_id: &str) -> Result<ChatKind> {
    match api.get(&format!("me/chat/{chat_id}"), &[]).await {
        Ok(v) => Ok(ChatKind {
            group: !v["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("DIALOG")),
            title: v["title"].as_str().filter(|t| !t.is_empty()).map(str::to_string),
        }),
        // OK retries a delivery that is not answered 200: a passing failure waits for that.
        Err(e @ (ApiError::Network(_) | ApiError::Status { .. })) => {
            Err(Error::unavailable("ok_unreachable", format!("cannot ask OK about chat {chat_id}: {e}")))
        }
        Err(ApiError::Ok { code: codes::UNKNOWN | codes::SERVICE | codes::FLOOD_BLOCKED, message }) => {
            Err(Error::unavailable("ok_unreachable", format!("OK did not describe chat {chat_id}: {message}")))
        }
        // A chat OK does not describe (gone, or the key changed): kept as a person's dialog.
        Err(e) => {
            tracing::warn!(chat_id, error = %e, "OK did not describe a chat; taking it as a dialog");
            Ok(ChatKind::default())
        }
    }
}

#[async_trait]
impl Platform for Odnoklassniki {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Ok
    }

    fn title(&self) -> &'static str {
        "OK"
    }

    fn brand(&self) -> Brand {
        Brand {
            color: "#EE8208",
            mark: r##"<circle cx="12" cy="8" r="3.2" fill="none" stroke="#fff" stroke-width="2"/><path d="M8 13.3c2.4 1.5 5.6 1.5 8 0M9.2 18.6l2.8-3.2 2.8 3.2" fill="none" stroke="#fff" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/>"##,
        }
    }

    fn schema(&self) -> Schema {
        Schema::new(
            text("Connect an OK group's bot", "Подключить бота группы в Одноклассниках"),
            vec![
                Field::new("token", text("Group API key", "Ключ API группы"), FieldKind::Text)
                    .help(text(
                        "In the group: Settings → Messages → «Работа с API» → get a key. A new key makes the old one stop working.",
                        "В группе: Настройки → Сообщения → «Работа с API» → получить ключ. Новый ключ отменяет старый.",
                    ))
                    .placeholder("tkn18YdUJZe:CQABPOJKAKEKEKEKE")
                    .required()
                    .secret(),
                Field::new("api_base", text("OK API address", "Адрес API Одноклассников"), FieldKind::Url)
                    .help(text(
                        "Leave it empty for OK itself; set it for a test simulator.",
                        "Оставьте пустым для самих Одноклассников; укажите для тестового симулятора.",
                    ))
                    .placeholder("https://api.ok.ru")
                    .advanced(),
                Field::new("limits", text("Rate limits", "Ограничения скорости"), FieldKind::Json)
                    .help(text(
                        "{\"per_second\": 20, \"per_chat_per_minute\": 60, \"burst\": 5} when absent; a limit left out is off",
                        "{\"per_second\": 20, \"per_chat_per_minute\": 60, \"burst\": 5} по умолчанию; не указанный предел отключён",
                    ))
                    .api_only(),
                Field::new("webhook_secret", text("Webhook secret", "Секрет вебхука"), FieldKind::Text).secret().internal(),
            ],
        )
    }

    fn capabilities(&self, _config: &Value) -> Capabilities {
        Capabilities {
            // OK states no button limits; these are those of the platform its bot API follows
            // (TamTam: 7 a row, 30 rows), labels kept short.
            buttons: Some(Buttons { inline: true, reply_keyboard: false, max_per_row: 7, max_rows: 30, max_label: 64 }),
            // graph.message.edit exists, but its address and answers are not published well
            // enough to rely on: okno does not edit or delete OK messages.
            edit: false,
            delete: false,
            groups: true,
            // A chat with a group opens without a payload: people type their code.
            deep_links: false,
            link_codes: true,
            posts: false,
            text: TextLimit { max: TEXT_LIMIT, unit: TextUnit::Chars },
            splits_long_text: true,
            files: Some(FileLimits { max_upload: FILE_LIMIT, max_download: FILE_LIMIT, caption: None }),
            receipts: false,
            service_window: None,
            chat_actions: false,
            polling: false,
            webhook: true,
            unread_by_email: None,
        }
    }

    /// Checks the key with `GET /graph/me/info` (nothing is saved when OK refuses it); keeps
    /// the webhook secret across changes, making one the first time.
    async fn connect(&self, cx: &Context, config: &Value, previous: Option<&Value>) -> Result<Connected> {
        let mut cfg: OkConfig = serde_json::from_value(config.clone())
            .map_err(|e| Error::invalid("invalid_channel_config", format!("ok channel config: {e}")))?;
        let base = url::Url::parse(&cfg.api_base)
            .map_err(|e| Error::invalid("invalid_channel_config", format!("`api_base` is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::invalid("invalid_channel_config", "`api_base` must be an http(s) URL"));
        }
        if cfg.token.trim().is_empty() || cfg.token.chars().any(char::is_whitespace) {
            return Err(Error::invalid(
                "invalid_token",
                "the group's API key is one word (Settings → Messages → «Работа с API»)",
            ));
        }
        let me = api(cx, &cfg).get("me/info", &[]).await.map_err(|e| match e {
            ApiError::Ok { code, message } if code != codes::SERVICE && code != codes::UNKNOWN => {
                Error::invalid("invalid_token", format!("OK refused the group's API key: {message}"))
            }
            ApiError::Status { status, body, .. } if (400..500).contains(&status) && status != 429 => {
                Error::invalid("invalid_token", format!("OK refused the group's API key: HTTP {status}: {body}"))
            }
            e => Error::unavailable("ok_unreachable", format!("cannot reach OK's API: {e}")),
        })?;
        let kept = previous.and_then(|p| p.get("webhook_secret")).and_then(Value::as_str).map(str::to_string);
        cfg.webhook_secret = cfg.webhook_secret.or(kept).or_else(|| Some(okno_domain::ids::random_hex(32)));
        let info = json!({
            "name": me["name"].as_str().unwrap_or_default(),
            "group_id": me["group_id"].clone(),
        });
        let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Connected { config, info })
    }

    /// Subscribes the channel's address and removes the group's earlier subscriptions to this
    /// channel (an old secret or public address).
    async fn apply_receive_mode(&self, cx: &Context, channel: &Channel) -> Result<()> {
        let cfg = config_of(channel)?;
        let secret = cfg.webhook_secret.clone().unwrap_or_default();
        if secret.is_empty() {
            return Err(Error::invalid(
                "invalid_channel_config",
                "the channel has no webhook secret; connect it again",
            ));
        }
        let api = api(cx, &cfg);
        let url = hook_url(&cx.public_url, &channel.id, &secret);
        let refused = |e: ApiError| Error::unprocessable("ok_refused", format!("OK refused the webhook: {e}"));
        let listed = api.get("me/subscriptions", &[]).await.map_err(refused)?;
        let ours = format!("/hooks/{}?", channel.id);
        for old in listed["subscriptions"].as_array().into_iter().flatten().filter_map(|s| s["url"].as_str()) {
            if old != url && old.contains(&ours) {
                api.post("me/unsubscribe", &[], &json!({"url": old})).await.map_err(refused)?;
            }
        }
        let answer = api.post("me/subscribe", &[], &json!({"url": url})).await.map_err(refused)?;
        if answer["success"] != json!(true) {
            return Err(Error::unprocessable("ok_refused", format!("OK did not subscribe the webhook: {answer}")));
        }
        Ok(())
    }

    fn adapter(&self, cx: &Context, channel: &Channel, state: Arc<dyn ChannelState>) -> Result<Arc<dyn Adapter>> {
        let cfg = config_of(channel)?;
        let adapter = OkAdapter::new(api(cx, &cfg), state, cx.files.clone(), cx.http.clone());
        Ok(Arc::new(Throttled::new(adapter, &limits(&cfg))))
    }

    /// The secret in the address is checked in constant time before the body is read.
    async fn receive(
        &self,
        cx: &Context,
        channel: &Channel,
        request: &HookRequest<'_>,
        state: &dyn ChannelState,
    ) -> Result<Vec<Received>> {
        let body = request.body;
        let cfg = config_of(channel)?;
        let expected = cfg.webhook_secret.clone().unwrap_or_default();
        let given = request.query_param(SECRET_PARAM).unwrap_or_default();
        if expected.is_empty() || !signing::secrets_equal(&given, &expected) {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "bad_secret",
                "the webhook address's secret does not match",
            ));
        }
        let updates = inbound::parse(body).map_err(|e| Error::invalid("invalid_json", e))?;
        let api = api(cx, &cfg);
        let mut chats: HashMap<String, ChatKind> = HashMap::new();
        let mut out = Vec::with_capacity(updates.len());
        for u in &updates {
            if matches!(u.what, What::Other) {
                out.push(Received::new(InboundEvent::Ignore));
                continue;
            }
            if !chats.contains_key(&u.chat_id) {
                let kind = chat_kind(&api, &u.chat_id).await?;
                chats.insert(u.chat_id.clone(), kind);
            }
            let kind = chats.get(&u.chat_id).cloned().unwrap_or_default();
            let mut r = inbound::received(&channel.id, u, &kind);
            if let InboundEvent::Message(m) = &mut r.event {
                if let Some(token) = m.button_data.as_deref().and_then(|d| d.strip_prefix(TOKEN_PREFIX)) {
                    match state.button_data(token).await? {
                        Some(data) => m.button_data = Some(data),
                        None => tracing::warn!(channel = %channel.id, token, "a button press carried an unknown token"),
                    }
                }
            }
            out.push(r);
        }
        Ok(out)
    }

    /// A file named `ok-file:<url>`, downloaded from the address OK gave.
    async fn fetch(
        &self,
        cx: &Context,
        _channel: &Channel,
        reference: &str,
    ) -> std::result::Result<Fetched, FetchError> {
        let Some(url) = reference.strip_prefix(FILE_SCHEME) else {
            return Err(FetchError::Refused(format!("not an OK file: {reference}")));
        };
        cx.http.fetch_limited(url, cx.max_download.min(FILE_LIMIT)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: Value) -> OkConfig {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_limits_are_read_from_the_config() {
        assert_eq!(limits(&cfg(json!({"token": "t"}))), default_limits());
        assert_eq!(limits(&cfg(json!({"token": "t", "limits": {}}))), Limits::default());
        assert_eq!(
            limits(&cfg(json!({"token": "t", "limits": {"per_second": 5}}))),
            Limits { per_second: Some(5), per_chat_per_minute: None, burst: None }
        );
        assert!(serde_json::from_value::<OkConfig>(json!({"token": "t", "limits": {"rps": 5}})).is_err());
    }
}
