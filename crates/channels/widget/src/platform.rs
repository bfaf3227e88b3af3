//! The widget as okno's engine sees it. There is no outside platform: okno itself serves the
//! visitors (`crates/server/src/widget.rs`), so
//!
//! - **connect** checks the configuration locally (origins, the secret, looks and hours);
//! - **receive** takes the envelopes okno's visitor API signs for each visitor's message
//!   (a request to `/hooks/{id}` signed by anyone else is refused), so visitors' messages go
//!   down the engine's inbound path like every platform's, stored before the visitor's 2xx;
//! - **send** has nothing to transmit: the message is in okno's store, which the visitor's
//!   stream reads. Sending makes it visible at once by ringing the visitor's streams in this
//!   process ([`crate::live`]); streams in other processes read it within a second.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_channel::http::{FetchError, Fetched};
use okno_channel::schema::{text, Field, FieldKind, Schema};
use okno_channel::{
    Adapter, Brand, Buttons, Capabilities, ChannelState, Connected, Context, DeliveryTarget, FileLimits, HookRequest,
    InboundEvent, Platform, Received, SendError, Sent, TextLimit, TextUnit,
};
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::{Error, ErrorKind, Result};
use serde_json::{json, Value};

use crate::config::WidgetConfig;
use crate::identity::{valid_visitor_id, verify_envelope};
use crate::live::{Deliver, Notice};
use crate::visitor::{Envelope, FILE_SCHEME, MAX_TEXT};

/// The header okno's visitor API signs envelopes in.
pub const SIGNATURE_HEADER: &str = "x-okno-widget-signature";
/// Largest file a visitor may upload, and okno may show them.
pub const MAX_FILE: u64 = 10 * 1024 * 1024;

/// The website chat widget platform.
#[derive(Clone)]
pub struct Widget {
    deliver: Arc<dyn Deliver>,
}

impl Default for Widget {
    /// The widget delivering to this process's visitors ([`crate::live::hub`]).
    fn default() -> Self {
        Widget { deliver: crate::live::hub() }
    }
}

impl Widget {
    /// A widget delivering through `deliver` (the conformance suite records what is shown).
    pub fn with_delivery(deliver: Arc<dyn Deliver>) -> Self {
        Widget { deliver }
    }
}

#[async_trait]
impl Platform for Widget {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Widget
    }

    fn title(&self) -> &'static str {
        "Widget"
    }

    fn brand(&self) -> Brand {
        Brand {
            color: "#2563EB",
            mark: r##"<path d="M6 7.5A1.5 1.5 0 0 1 7.5 6h9A1.5 1.5 0 0 1 18 7.5v6a1.5 1.5 0 0 1-1.5 1.5H11l-3.5 3v-3A1.5 1.5 0 0 1 6 13.5z" stroke="#fff" stroke-width="1.5" fill="none" stroke-linejoin="round"/>"##,
        }
    }

    fn schema(&self) -> Schema {
        Schema::new(
            text("Add a chat to your website", "Добавить чат на сайт"),
            vec![
                Field::new("origins", text("Sites", "Сайты"), FieldKind::Json)
                    .help(text(
                        "the sites that embed the widget: their addresses without paths, separated by commas",
                        "сайты, на которых стоит виджет: их адреса без путей, через запятую",
                    ))
                    .placeholder("https://shop.example, https://www.shop.example")
                    .required(),
                Field::new("secret", text("Identity secret", "Секрет подписи"), FieldKind::Text)
                    .help(text(
                        "signs logged-in customers' ids (64 hex characters); okno makes one when empty",
                        "им сайт подписывает номера вошедших клиентов (64 шестнадцатеричных символа); пусто — okno создаст сам",
                    ))
                    .secret()
                    .advanced(),
                Field::new("title", text("Window title", "Заголовок окна"), FieldKind::Text)
                    .placeholder("Чат с поддержкой"),
                Field::new("greeting", text("Greeting", "Приветствие"), FieldKind::Text)
                    .placeholder("Здравствуйте! Чем помочь?"),
                Field::new("color", text("Colour", "Цвет"), FieldKind::Text).placeholder("#2563EB"),
                Field::new("prechat", text("Pre-chat form", "Анкета перед чатом"), FieldKind::Json).api_only(),
                Field::new("offline", text("Working hours", "Часы работы"), FieldKind::Json).api_only(),
                Field::new("email_after", text("Unread answers by e-mail after", "Непрочитанный ответ — на почту через"), FieldKind::Integer)
                    .help(text(
                        "seconds; an operator's answer the visitor has not read by then goes to the e-mail they left (needs an e-mail channel); 0 — never",
                        "секунд; ответ оператора, который посетитель к этому времени не прочитал, уходит на оставленную им почту (нужен канал почты); 0 — никогда",
                    ))
                    .placeholder("600")
                    .advanced(),
            ],
        )
    }

    fn capabilities(&self, config: &Value) -> Capabilities {
        let mut caps = Capabilities::text_only(TextLimit { max: MAX_TEXT, unit: TextUnit::Chars });
        caps.buttons =
            Some(Buttons { inline: true, reply_keyboard: false, max_per_row: 4, max_rows: 10, max_label: 64 });
        caps.files = Some(FileLimits { max_upload: MAX_FILE, max_download: MAX_FILE, caption: Some(caps.text) });
        caps.chat_actions = true;
        // The site proves who its customers are (a signed id): no link codes.
        caps.link_codes = false;
        caps.receipts = true;
        caps.unread_by_email = match serde_json::from_value::<WidgetConfig>(config.clone()) {
            Ok(cfg) => cfg.unread_by_email(),
            Err(_) => None,
        };
        caps
    }

    async fn connect(&self, _cx: &Context, config: &Value, previous: Option<&Value>) -> Result<Connected> {
        let cfg = WidgetConfig::parse(config, previous)?;
        let info = json!({"origins": cfg.origins});
        let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Connected { config, info })
    }

    fn adapter(&self, _cx: &Context, channel: &Channel, _state: Arc<dyn ChannelState>) -> Result<Arc<dyn Adapter>> {
        Ok(Arc::new(WidgetAdapter { channel: channel.id.to_string(), deliver: self.deliver.clone() }))
    }

    async fn receive(
        &self,
        _cx: &Context,
        channel: &Channel,
        request: &HookRequest<'_>,
        _state: &dyn ChannelState,
    ) -> Result<Vec<Received>> {
        let cfg: WidgetConfig = okno_channel::config_of(channel)?;
        let signature = request.headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !verify_envelope(&cfg.secret, request.body, signature) {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "bad_signature",
                "widget visitors write through /widget/{channel_id}/messages",
            ));
        }
        let envelope = Envelope::parse(request.body)?;
        let msg = envelope.into_inbound(channel.id.as_str());
        Ok(vec![Received::new(InboundEvent::Message(Box::new(msg)))])
    }

    /// A file a visitor uploaded, from okno's own file store.
    async fn fetch(
        &self,
        cx: &Context,
        _channel: &Channel,
        reference: &str,
    ) -> std::result::Result<Fetched, FetchError> {
        let Some(sha) = reference.strip_prefix(FILE_SCHEME) else {
            return Err(FetchError::Refused(format!("widget channels name no files by `{reference}`")));
        };
        let body = cx.files.read(sha).await.map_err(|e| FetchError::Refused(format!("the uploaded file: {e}")))?;
        Ok(Fetched { body, mime: None })
    }
}

/// Sends to a visitor: the message is stored already; its visitor's streams are rung.
pub struct WidgetAdapter {
    channel: String,
    deliver: Arc<dyn Deliver>,
}

#[async_trait]
impl Adapter for WidgetAdapter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Widget
    }

    async fn send(&self, target: &DeliveryTarget) -> std::result::Result<Sent, SendError> {
        let visitor = &target.identity.chat_id;
        if !valid_visitor_id(visitor) {
            return Err(SendError::permanent(format!("`{visitor}` is not a visitor of a website chat")));
        }
        let message = Arc::new(target.message.clone());
        self.deliver.ring(&self.channel, visitor, Notice::Message(message)).await?;
        Ok(Sent { external_id: Some(target.message.id.to_string()) })
    }

    /// "Typing…" reaches the visitor's open streams; none open is no error.
    async fn chat_action(&self, chat_id: &str, action: &str) -> std::result::Result<(), SendError> {
        if action == "typing" && valid_visitor_id(chat_id) {
            self.deliver.ring(&self.channel, chat_id, Notice::Typing).await?;
        }
        Ok(())
    }
}

/// How long a visitor's stream waits for a bell before it reads the store on its own (a
/// message another okno process stored; this process's ring at once). Each stream adds up to a
/// second of its own, so a thousand streams do not read at the same moment.
pub const STREAM_POLL: Duration = Duration::from_secs(5);
