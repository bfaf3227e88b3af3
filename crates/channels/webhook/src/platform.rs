//! The webhook channel as okno's engine sees it: a configuration checked locally (the
//! receiver's address through the guarded client, a secret long enough to sign with), inbound
//! requests verified by signature, sends throttled by the channel's own limits.

use std::sync::Arc;

use async_trait::async_trait;
use okno_channel::schema::{text, Field, FieldKind, Schema};
use okno_channel::throttle::Throttled;
use okno_channel::{
    Adapter, Brand, Buttons, Capabilities, ChannelState, Connected, Context, HookRequest, InboundEvent, Platform,
    Received, TextLimit, TextUnit,
};
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::{Error, Result};
use serde_json::Value;

use crate::{parse_inbound, WebhookAdapter, WebhookConfig, MAX_TEXT, SIGNATURE_HEADER};

/// The generic webhook platform.
pub struct Webhook;

#[async_trait]
impl Platform for Webhook {
    /// The generic channel's receiver downloads files by links signed with its secret.
    fn file_link_secret(&self, channel: &Channel) -> Option<String> {
        channel.config.get("secret").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    fn title(&self) -> &'static str {
        "Webhook"
    }

    fn brand(&self) -> Brand {
        Brand {
            color: "#6B7280",
            mark: r##"<path d="M7 14.5a2.5 2.5 0 1 0 2.3 3.5h5.4M12 6.5a2.5 2.5 0 0 0-1.2 4.7L8 16m6.2-5.5 2.8 4.8a2.5 2.5 0 1 0 1.5-1.3" stroke="#fff" stroke-width="1.5" fill="none" stroke-linecap="round"/>"##,
        }
    }

    fn schema(&self) -> Schema {
        Schema::new(
            text("Connect your site or app (webhook)", "Подключить сайт или приложение (вебхук)"),
            vec![
                Field::new("outbound_url", text("Receiver's address", "Адрес получателя"), FieldKind::Url)
                    .help(text(
                        "okno POSTs each outgoing message here, signed",
                        "сюда okno отправляет каждое исходящее сообщение с подписью",
                    ))
                    .placeholder("https://example.org/okno")
                    .required(),
                Field::new("secret", text("Signing secret", "Секрет подписи"), FieldKind::Text)
                    .help(text(
                        "at least 16 characters; signs both directions (X-Okno-Signature)",
                        "не короче 16 символов; им подписываются запросы в обе стороны",
                    ))
                    .required()
                    .secret(),
                Field::new(
                    "buttons",
                    text("The receiver shows buttons", "Получатель показывает кнопки"),
                    FieldKind::Bool,
                )
                .help(text(
                    "off: buttons go as numbered lines people answer with the number",
                    "если нет — кнопки уходят нумерованными строками, и человек отвечает номером",
                )),
                Field::new("limits", text("Rate limits", "Ограничения скорости"), FieldKind::Json).api_only(),
            ],
        )
    }

    fn capabilities(&self, config: &Value) -> Capabilities {
        let mut caps = Capabilities::text_only(TextLimit { max: MAX_TEXT, unit: TextUnit::Bytes });
        if config.get("buttons").and_then(Value::as_bool).unwrap_or(true) {
            caps.buttons =
                Some(Buttons { inline: true, reply_keyboard: false, max_per_row: 8, max_rows: 20, max_label: 64 });
        }
        caps
    }

    async fn connect(&self, cx: &Context, config: &Value, _previous: Option<&Value>) -> Result<Connected> {
        let cfg = WebhookConfig::parse(config, &cx.http)?;
        let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Connected { config, info: Value::Object(Default::default()) })
    }

    fn adapter(&self, cx: &Context, channel: &Channel, _state: Arc<dyn ChannelState>) -> Result<Arc<dyn Adapter>> {
        let cfg: WebhookConfig = okno_channel::config_of(channel)?;
        let limits = cfg.limits.clone().unwrap_or_default();
        let inner = WebhookAdapter::new(cx.http.clone(), cfg, channel.id.to_string(), cx.public_url.clone());
        Ok(Arc::new(Throttled::new(inner, &limits)))
    }

    async fn receive(
        &self,
        cx: &Context,
        channel: &Channel,
        request: &HookRequest<'_>,
        _state: &dyn ChannelState,
    ) -> Result<Vec<Received>> {
        let (headers, body) = (request.headers, request.body);
        let secret = channel.config.get("secret").and_then(Value::as_str).unwrap_or_default();
        let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        let msg = parse_inbound(&channel.id, secret, signature, body, &cx.http)?;
        Ok(vec![Received::new(InboundEvent::Message(Box::new(msg)))])
    }
}
