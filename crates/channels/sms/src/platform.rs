//! SMS as okno's engine sees it: one `sms` kind over three gateways, connected by the
//! provider's balance call, sending one (concatenated) SMS per message, and reading delivery
//! reports and people's texts from the hook address (`/hooks/{id}?secret=…`; Twilio's requests
//! are also signed).

use std::sync::Arc;

use async_trait::async_trait;
use okno_channel::schema::{text, Choice, Field, FieldKind, Schema};
use okno_channel::throttle::{Limits, Throttled};
use okno_channel::{
    Adapter, Brand, Capabilities, ChannelState, Connected, Context, DeliveryTarget, Estimate, HookAnswer, HookRequest,
    Platform, Received, SendError, Sent, TextLimit, TextUnit,
};
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::{signing, Error, ErrorKind, Result};
use serde_json::{json, Value};

use crate::gateway::{Gateway, Provider, SmsConfig, WireError};
use crate::segments::{count, normalise_phone};

/// The query parameter of the hook address that carries okno's secret.
pub const SECRET_PARAM: &str = "secret";

const PROVIDERS: &[Choice] = &[
    Choice { value: "smsru", label: text("SMS.ru", "SMS.ru") },
    Choice { value: "smsc", label: text("SMSC.ru", "SMSC.ru") },
    Choice {
        value: "twilio", label: text("Twilio (or a gateway in its shape)", "Twilio (или шлюз того же вида)")
    },
];

/// The SMS platform.
pub struct Sms;

fn config_of(channel: &Channel) -> Result<SmsConfig> {
    okno_channel::config_of(channel)
}

/// The address the gateway calls: `{public_url}/hooks/{channel_id}?secret=…`.
pub fn hook_url(public_url: &str, channel_id: &str, secret: &str) -> String {
    format!("{}/hooks/{channel_id}?{SECRET_PARAM}={secret}", public_url.trim_end_matches('/'))
}

/// A steady pace no gateway complains of; `limits` in the configuration overrides it
/// (`{}` turns it off). None of the three publishes a per-account rate for HTTP sends: Twilio
/// queues what exceeds a sender's rate, SMS.ru and SMSC answer their own "too many" codes.
fn limits(cfg: &SmsConfig) -> Limits {
    cfg.limits.clone().unwrap_or(Limits { per_second: Some(20), per_chat_per_minute: Some(10), burst: Some(10) })
}

fn text_limit(provider: Provider) -> TextLimit {
    // Counted in UTF-16 units for the worst case, Cyrillic: 67 a part.
    TextLimit { max: provider.max_parts() as usize * 67, unit: TextUnit::Utf16 }
}

fn refused(provider: Provider, e: WireError) -> Error {
    match e {
        WireError::Provider { text, code, status, .. }
            if status < 500 && status != 429 && code != 220 && code != 500 =>
        {
            Error::invalid(
                "invalid_credentials",
                format!("{} refused the credentials: {text} (code {code})", provider.name()),
            )
        }
        WireError::Status { status, body, .. } if (400..500).contains(&status) && status != 429 => Error::invalid(
            "invalid_credentials",
            format!("{} refused the credentials: HTTP {status}: {body}", provider.name()),
        ),
        e => Error::unavailable("sms_unreachable", format!("cannot reach {}: {e}", provider.name())),
    }
}

#[async_trait]
impl Platform for Sms {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn title(&self) -> &'static str {
        "SMS"
    }

    fn brand(&self) -> Brand {
        Brand {
            color: "#10B981",
            mark: r##"<path d="M6 7.5h12a1.5 1.5 0 0 1 1.5 1.5v6a1.5 1.5 0 0 1-1.5 1.5h-7l-3.5 2.5v-2.5H6A1.5 1.5 0 0 1 4.5 15V9A1.5 1.5 0 0 1 6 7.5z" fill="none" stroke="#fff" stroke-width="1.8" stroke-linejoin="round"/>"##,
        }
    }

    fn schema(&self) -> Schema {
        Schema::new(
            text("Connect an SMS gateway", "Подключить SMS-шлюз"),
            vec![
                Field::new("provider", text("Provider", "Провайдер"), FieldKind::Choice(PROVIDERS)).required(),
                Field::new("sender", text("Sender", "Отправитель"), FieldKind::Text)
                    .help(text(
                        "An approved sender name (SMS.ru, SMSC) or your Twilio number in +E.164",
                        "Согласованное имя отправителя (SMS.ru, SMSC) или номер Twilio в международном формате",
                    )),
                Field::new("api_id", text("SMS.ru api_id", "Ключ API SMS.ru"), FieldKind::Text)
                    .help(text("SMS.ru: your account → API programmers → api_id", "SMS.ru: кабинет → Программистам → ключ"))
                    .secret(),
                Field::new("login", text("SMSC login", "Логин SMSC"), FieldKind::Text),
                Field::new("password", text("SMSC password", "Пароль SMSC"), FieldKind::Text)
                    .help(text(
                        "SMSC: the API password set in Settings → passwords",
                        "SMSC: пароль для API из раздела Настройки → пароли",
                    ))
                    .secret(),
                Field::new("account_sid", text("Twilio Account SID", "Идентификатор аккаунта Twilio"), FieldKind::Text)
                    .placeholder("AC…"),
                Field::new("auth_token", text("Twilio Auth Token", "Токен аккаунта Twilio"), FieldKind::Text)
                    .help(text("Twilio Console → Account info", "Консоль Twilio → сведения об аккаунте"))
                    .secret(),
                Field::new("price_per_segment", text("Price of one SMS part", "Цена одной части SMS"), FieldKind::Json)
                    .help(text(
                        "A number, shown with the cost of a broadcast before it starts",
                        "Число; по нему считается стоимость рассылки перед её началом",
                    ))
                    .api_only(),
                Field::new("currency", text("Currency", "Валюта"), FieldKind::Text)
                    .help(text("A three-letter currency code: RUB, USD…", "Трёхбуквенный код валюты"))
                    .advanced(),
                Field::new("api_base", text("Gateway API address", "Адрес API шлюза"), FieldKind::Url)
                    .help(text(
                        "Leave it empty for the provider itself; set it for a Twilio-shaped gateway or a simulator",
                        "Оставьте пустым для самого провайдера; укажите для шлюза вида Twilio или симулятора",
                    ))
                    .advanced(),
                Field::new("limits", text("Rate limits", "Ограничения скорости"), FieldKind::Json)
                    .help(text(
                        "{\"per_second\": 20, \"per_chat_per_minute\": 10, \"burst\": 10} when absent; a limit left out is off",
                        "{\"per_second\": 20, \"per_chat_per_minute\": 10, \"burst\": 10} по умолчанию; не указанный предел отключён",
                    ))
                    .api_only(),
                Field::new("callback_secret", text("Callback secret", "Секрет адреса уведомлений"), FieldKind::Text)
                    .help(text(
                        "16+ characters you choose; the provider calls {okno}/hooks/{channel id}?secret=<this>",
                        "От 16 символов на ваш выбор; он входит в адрес, который вызывает провайдер",
                    ))
                    .secret(),
                Field::new("webhook_secret", text("Hook secret", "Секрет адреса"), FieldKind::Text).secret().internal(),
            ],
        )
    }

    fn capabilities(&self, config: &Value) -> Capabilities {
        let provider =
            serde_json::from_value::<SmsConfig>(config.clone()).map(|c| c.provider).unwrap_or(Provider::Smsc);
        let mut caps = Capabilities::text_only(text_limit(provider));
        caps.link_codes = true;
        caps.receipts = true;
        caps
    }

    /// Checks the credentials with the provider's balance call (nothing is saved when it
    /// refuses them) and keeps the hook secret across changes.
    async fn connect(&self, cx: &Context, config: &Value, previous: Option<&Value>) -> Result<Connected> {
        let mut cfg: SmsConfig = serde_json::from_value(config.clone())
            .map_err(|e| Error::invalid("invalid_channel_config", format!("sms channel config: {e}")))?;
        cfg.check_credentials().map_err(|m| Error::invalid("invalid_channel_config", m))?;
        if cfg.price_per_segment.as_ref().is_some_and(|p| !p.is_null()) && cfg.price().is_none() {
            return Err(Error::invalid("invalid_channel_config", "`price_per_segment` must be a number ≥ 0"));
        }
        if cfg.provider == Provider::Twilio {
            let sender = cfg.sender().unwrap_or_default();
            if sender.starts_with('+') && normalise_phone(sender).is_none() {
                return Err(Error::invalid("invalid_channel_config", "`sender` must be a phone number in +E.164"));
            }
        }
        if cfg.callback_secret.as_deref().is_some_and(|c| {
            c.trim().len() < 16 || !c.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.~".contains(ch))
        }) {
            return Err(Error::invalid(
                "invalid_channel_config",
                "`callback_secret` must be 16 or more letters, digits, `-`, `_`, `.` or `~` (it goes in an address)",
            ));
        }
        let base = url::Url::parse(&cfg.base())
            .map_err(|e| Error::invalid("invalid_channel_config", format!("`api_base` is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::invalid("invalid_channel_config", "`api_base` must be an http(s) URL"));
        }
        let balance =
            Gateway::new(cx.http.clone(), cfg.clone()).balance().await.map_err(|e| refused(cfg.provider, e))?;
        let kept = previous.and_then(|p| p.get("webhook_secret")).and_then(Value::as_str).map(str::to_string);
        cfg.webhook_secret = cfg.webhook_secret.or(kept).or_else(|| Some(okno_domain::ids::random_hex(32)));
        let info = json!({
            "provider": cfg.provider.name(),
            "sender": cfg.sender(),
            "balance": balance.amount,
            "balance_currency": balance.currency,
        });
        let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Connected { config, info })
    }

    fn adapter(&self, cx: &Context, channel: &Channel, _state: Arc<dyn ChannelState>) -> Result<Arc<dyn Adapter>> {
        let cfg = config_of(channel)?;
        let callback = match (cfg.provider, cfg.hook_secret()) {
            (Provider::Twilio, Some(secret)) => Some(hook_url(&cx.public_url, &channel.id, secret)),
            _ => None,
        };
        let pace = limits(&cfg);
        let adapter = SmsAdapter { gateway: Gateway::new(cx.http.clone(), cfg), callback };
        Ok(Arc::new(Throttled::new(adapter, &pace)))
    }

    /// The secret in the address first (constant time), then Twilio's signature of the URL
    /// and form, then the body.
    async fn receive(
        &self,
        cx: &Context,
        channel: &Channel,
        request: &HookRequest<'_>,
        _state: &dyn ChannelState,
    ) -> Result<Vec<Received>> {
        let cfg = config_of(channel)?;
        let expected = cfg.hook_secret().unwrap_or_default().to_string();
        let given = request.query_param(SECRET_PARAM).unwrap_or_default();
        if expected.is_empty() || !signing::secrets_equal(&given, &expected) {
            return Err(Error::new(ErrorKind::Unauthorized, "bad_secret", "the hook address's secret does not match"));
        }
        if cfg.provider == Provider::Twilio {
            let url = format!(
                "{}/hooks/{}{}",
                cx.public_url.trim_end_matches('/'),
                channel.id,
                request.query.map(|q| format!("?{q}")).unwrap_or_default()
            );
            let signature = request.headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let token = cfg.auth_token.as_deref().unwrap_or_default();
            if !crate::inbound::twilio_signed(token, &url, &crate::inbound::form(request.body), signature) {
                return Err(Error::new(ErrorKind::Unauthorized, "bad_signature", "X-Twilio-Signature does not match"));
            }
        }
        crate::inbound::parse(cfg.provider, &channel.id, request.body).map_err(|e| Error::invalid("invalid_body", e))
    }

    /// SMS.ru resends a callback not answered with the text `100`; Twilio would text back a
    /// plain-text answer, so it gets an empty one.
    fn hook_answer(&self, channel: &Channel, _request: &HookRequest<'_>) -> HookAnswer {
        match config_of(channel).map(|c| c.provider) {
            Ok(Provider::Smsru) => HookAnswer::Text("100".into()),
            Ok(Provider::Twilio) => HookAnswer::Text(String::new()),
            _ => HookAnswer::Json,
        }
    }

    /// How many SMS parts `text` is, in which encoding, at the configured price.
    /// SMS.ru and SMSC are told this address by hand: it carries the hook's secret.
    fn hook_address(&self, public_url: &str, channel: &Channel) -> String {
        let base = format!("{public_url}/hooks/{}", channel.id);
        match config_of(channel).ok().as_ref().and_then(|c| c.hook_secret().map(str::to_string)) {
            Some(secret) => {
                format!("{base}?secret={}", url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>())
            }
            None => base,
        }
    }

    fn estimate(&self, config: &Value, text: &str) -> Option<Estimate> {
        let cfg = serde_json::from_value::<SmsConfig>(config.clone()).ok();
        let c = count(text);
        Some(Estimate {
            parts: c.parts,
            encoding: c.encoding.name().to_string(),
            price_per_part: cfg.as_ref().and_then(SmsConfig::price),
            currency: cfg.and_then(|c| c.currency).filter(|c| !c.trim().is_empty()),
        })
    }
}

/// Sends through one gateway account.
pub struct SmsAdapter {
    gateway: Gateway,
    /// Twilio's `StatusCallback`: the hook address.
    callback: Option<String>,
}

#[async_trait]
impl Adapter for SmsAdapter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    /// One SMS (concatenated when long): the text, with buttons as numbered lines. Files do not
    /// travel by SMS; a message of files alone is refused.
    async fn send(&self, t: &DeliveryTarget) -> std::result::Result<Sent, SendError> {
        let phone = normalise_phone(&t.identity.chat_id)
            .ok_or_else(|| SendError::permanent(format!("`{}` is not a phone number", t.identity.chat_id)))?;
        let mut text = t.message.text.clone().unwrap_or_default();
        if !t.message.buttons.is_empty() {
            text = okno_channel::numbered_text(&text, &t.message.buttons);
        }
        if text.trim().is_empty() {
            return Err(SendError::permanent("an SMS carries text only, and this message has none"));
        }
        let provider = self.gateway.cfg.provider;
        let c = count(&text);
        if c.parts > provider.max_parts() {
            return Err(SendError::permanent(format!(
                "the text is {} SMS parts ({}), more than the {} okno sends as one message through {}",
                c.parts,
                c.encoding.name(),
                provider.max_parts(),
                provider.name()
            )));
        }
        let id = self.gateway.send(&phone, &text, self.callback.as_deref()).await?;
        Ok(Sent { external_id: Some(id) })
    }

    fn chat_key(&self, target: &DeliveryTarget) -> String {
        normalise_phone(&target.identity.chat_id).unwrap_or_else(|| target.identity.chat_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_counts_parts_and_prices_them() {
        let cfg = json!({"provider": "smsru", "api_id": "x", "price_per_segment": 2.95, "currency": "RUB"});
        let e = Sms.estimate(&cfg, &"Привет ".repeat(20)).unwrap_or_else(|| panic!("an estimate"));
        assert_eq!((e.parts, e.encoding.as_str()), (3, "ucs2"), "140 UTF-16 units: 67 a part");
        assert_eq!((e.price_per_part, e.currency.as_deref()), (Some(2.95), Some("RUB")));
        let e = Sms
            .estimate(&json!({"provider": "twilio"}), &"Hello {name}! ".repeat(12))
            .unwrap_or_else(|| panic!("an estimate"));
        assert_eq!(
            (e.parts, e.encoding.as_str(), e.price_per_part),
            (2, "gsm7", None),
            "168 septets with the braces doubled"
        );
        let e = Sms.estimate(&json!({"provider": "smsc"}), "").unwrap_or_else(|| panic!("an estimate"));
        assert_eq!(e.parts, 1);
    }

    #[test]
    fn the_hook_address_an_administrator_pastes_carries_the_secret() {
        let channel = |config: Value| Channel {
            id: "ch-1".into(),
            kind: ChannelKind::Sms,
            name: "SMS".into(),
            status: "active".into(),
            status_detail: None,
            info: json!({}),
            config,
            created_at: 0,
        };
        let chosen = channel(json!({"provider": "smsru", "api_id": "x", "callback_secret": "my secret/16+chars"}));
        assert_eq!(
            Sms.hook_address("https://okno.example", &chosen),
            "https://okno.example/hooks/ch-1?secret=my+secret%2F16%2Bchars"
        );
        let made = channel(json!({"provider": "smsc", "webhook_secret": "generated-by-okno"}));
        assert_eq!(Sms.hook_address("https://o", &made), "https://o/hooks/ch-1?secret=generated-by-okno");
    }

    #[test]
    fn capabilities_follow_the_provider() {
        let caps = Sms.capabilities(&json!({"provider": "smsru"}));
        assert_eq!(caps.text.max, 8 * 67);
        assert!(caps.receipts && caps.link_codes && caps.buttons.is_none() && !caps.splits_long_text);
        assert_eq!(Sms.capabilities(&json!({"provider": "twilio"})).text.max, 10 * 67);
    }
}
