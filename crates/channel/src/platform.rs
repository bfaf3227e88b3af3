//! The platform interface: one implementation per channel kind, listed in the binary's
//! registry. A platform is stateless; what it needs of okno comes through [`Context`] (the
//! guarded HTTP client, okno's public address, the attachment store) and, per channel, a
//! [`ChannelState`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use okno_domain::model::{Channel, ChannelKind, MessageStatus};
use okno_domain::Result;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::files::FileStore;
use crate::http::{FetchError, Fetched, SafeClient};
use crate::schema::Schema;
use crate::{Adapter, Capabilities, InboundMessage};

/// What a platform may use of okno.
#[derive(Clone)]
pub struct Context {
    /// For addresses users and administrators give (guarded against private targets).
    pub http: SafeClient,
    /// The base URL platforms use to reach okno (`{public_url}/hooks/{channel_id}`).
    pub public_url: String,
    /// Files okno keeps: attachments to upload.
    pub files: FileStore,
    /// Largest file okno downloads.
    pub max_download: u64,
    /// Long-poll timeout a poller asks of its platform.
    pub poll_timeout: Duration,
}

/// A request a platform made to `/hooks/{channel_id}`, as okno's server read it.
#[derive(Debug, Clone, Copy)]
pub struct HookRequest<'a> {
    pub headers: &'a HeaderMap,
    /// The query string, for platforms that sign nothing and are given an unguessable hook
    /// address instead.
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

impl<'a> HookRequest<'a> {
    pub fn new(headers: &'a HeaderMap, body: &'a [u8]) -> Self {
        HookRequest { headers, query: None, body }
    }

    pub fn with_query(self, query: Option<&'a str>) -> Self {
        HookRequest { query, ..self }
    }

    /// A parameter of the query string, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

/// What must outlive a call, kept by okno for one channel.
#[async_trait]
pub trait ChannelState: Send + Sync {
    /// A short token that stands for button data too long for the platform.
    async fn button_token(&self, data: &str) -> Result<String>;
    /// The data a token stands for (`None`: unknown).
    async fn button_data(&self, token: &str) -> Result<Option<String>>;
    /// Records a sending message's options (how many parts of a long text are out), so a
    /// send retried after a crash does not repeat them.
    async fn set_message_options(&self, message_id: &str, options: Value) -> Result<()>;
    /// What a conversation is about on its platform, as the latest inbound message that said
    /// so named it (its `context`): an e-mail answer reads the subject and threading ids of
    /// the mail it answers here. `None` by default, for states that keep no conversations.
    async fn conversation_context(&self, conversation_id: &str) -> Result<Option<Value>> {
        let _ = conversation_id;
        Ok(None)
    }
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The configuration to store (with what okno generated, e.g. a webhook secret).
    pub config: Value,
    /// Public facts about the account to show (the bot's name…).
    pub info: Value,
}

/// What a platform reported.
#[derive(Debug, Clone)]
pub enum InboundEvent {
    /// A new message or a button press (`button_data`).
    Message(Box<InboundMessage>),
    /// A message was edited.
    Edit { user_id: String, external_id: String, text: Option<String> },
    /// The person blocked (`true`) or unblocked (`false`) the bot.
    Membership { user_id: String, blocked: bool },
    /// A group chat got a new id.
    Migrated { from: String, to: String },
    /// A message okno sent (named by the platform's id for it) was sent, delivered, read or
    /// failed: a delivery receipt. okno moves a message's status forward only (`sent` →
    /// `delivered` → `read`; `failed` until it was delivered), so receipts repeated or out of
    /// order change nothing.
    Status { external_id: String, status: MessageStatus, reason: Option<String> },
    /// Nothing okno keeps.
    Ignore,
}

/// One inbound event as received, with what the engine owes the platform for it.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: InboundEvent,
    /// A button press to answer ([`Adapter::answer_press`]).
    pub press_id: Option<String>,
    /// Polling: where the next poll starts once this event is stored.
    pub cursor: Option<String>,
}

impl Received {
    pub fn new(event: InboundEvent) -> Self {
        Received { event, press_id: None, cursor: None }
    }
}

/// What one poll brought.
#[derive(Debug, Clone, Default)]
pub struct Polled {
    pub items: Vec<Received>,
}

/// What okno answers a platform's webhook request with, once its events are stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HookAnswer {
    /// okno's own JSON (`{"id", "duplicate"}`): for platforms that take any 2xx.
    #[default]
    Json,
    /// A set plain-text body the platform expects (VK: `ok`, or its confirmation string).
    Text(String),
    /// A JSON body the platform takes as a reply (Viber: the welcome message answering
    /// `conversation_started`, the one moment a bot may write first).
    Body(Value),
    /// A page for a person's browser (an e-mail's unsubscribe link).
    Html(String),
}

/// What okno's estimate of one message says: how many parts a platform that charges by the
/// part (SMS segments) sends it as, and what that costs.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Parts the text goes out as (one SMS segment each).
    pub parts: u32,
    /// How the text is encoded (`gsm7`, `ucs2`…).
    pub encoding: String,
    /// The price of one part, when the channel's configuration names one.
    pub price_per_part: Option<f64>,
    pub currency: Option<String>,
}

/// Why a poll failed.
#[derive(Debug, Clone, PartialEq)]
pub enum PollError {
    /// Someone else receives for this account (another poller, a webhook), or the credentials
    /// are refused: the channel shows `reason` and the poller waits long.
    Refused(String),
    /// The platform asked to wait.
    Wait(Duration),
    /// Worth another try soon.
    Network(String),
}

/// How a platform is drawn: its colour (charts, the round logo) and its mark, SVG elements
/// drawn in white over the coloured circle of a 24×24 view box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brand {
    pub color: &'static str,
    pub mark: &'static str,
}

/// One messenger platform.
#[async_trait]
pub trait Platform: Send + Sync + 'static {
    fn kind(&self) -> ChannelKind;
    /// The platform's name as people know it.
    fn title(&self) -> &'static str;
    /// Its colour and mark.
    fn brand(&self) -> Brand {
        Brand { color: "#9CA3AF", mark: "" }
    }
    /// The configuration's fields.
    fn schema(&self) -> Schema;
    /// What a channel with this configuration can do.
    fn capabilities(&self, config: &Value) -> Capabilities;

    /// Checks a configuration (against the platform when it has credentials: nothing is saved
    /// when they are refused) and returns what to store and show. `previous` is the stored
    /// configuration when one is being changed.
    async fn connect(&self, cx: &Context, config: &Value, previous: Option<&Value>) -> Result<Connected>;

    /// Makes the platform deliver the way the channel says (a webhook registered or removed).
    async fn apply_receive_mode(&self, cx: &Context, channel: &Channel) -> Result<()> {
        let _ = (cx, channel);
        Ok(())
    }

    /// The sender for a stored channel.
    fn adapter(&self, cx: &Context, channel: &Channel, state: Arc<dyn ChannelState>) -> Result<Arc<dyn Adapter>>;

    /// Verifies and parses a request the platform made to `/hooks/{channel_id}`.
    async fn receive(
        &self,
        cx: &Context,
        channel: &Channel,
        request: &HookRequest<'_>,
        state: &dyn ChannelState,
    ) -> Result<Vec<Received>>;

    /// The address the platform delivers to, as an administrator pastes it into the platform's
    /// settings where okno cannot register it itself: `{public_url}/hooks/{channel_id}`, with
    /// the secret query of a platform that signs nothing.
    fn hook_address(&self, public_url: &str, channel: &Channel) -> String {
        format!("{public_url}/hooks/{}", channel.id)
    }

    /// A request to the hook address with `GET` (`/hooks/{channel_id}`): a platform's
    /// verification (WhatsApp's `hub.challenge`) or a person following a link okno sent (an
    /// e-mail's unsubscribe link). `Some(Ok(answer))` answers it 200, `Some(Err(_))` refuses
    /// it, `None` means the platform makes no such request.
    fn verify_hook(&self, channel: &Channel, request: &HookRequest<'_>) -> Option<Result<HookAnswer>> {
        let _ = (channel, request);
        None
    }

    /// The answer to a webhook request [`Platform::receive`] accepted.
    fn hook_answer(&self, channel: &Channel, request: &HookRequest<'_>) -> HookAnswer {
        let _ = (channel, request);
        HookAnswer::Json
    }

    /// Whether this channel is to be polled (one poller across every okno process).
    fn polls(&self, channel: &Channel) -> bool {
        let _ = channel;
        false
    }

    /// One long poll from `cursor` (`None`: from where the platform keeps it).
    async fn poll(
        &self,
        cx: &Context,
        channel: &Channel,
        cursor: Option<&str>,
        state: &dyn ChannelState,
    ) -> std::result::Result<Polled, PollError> {
        let _ = (cx, channel, cursor, state);
        Err(PollError::Refused(format!("{} channels are not polled", self.kind())))
    }

    /// Downloads a file an inbound message named by the platform's own reference (an
    /// [`crate::InboundAttachment::Url`] whose URL is not http(s)).
    async fn fetch(
        &self,
        cx: &Context,
        channel: &Channel,
        reference: &str,
    ) -> std::result::Result<Fetched, FetchError> {
        let _ = (cx, channel);
        Err(FetchError::Refused(format!("{} channels name no files by `{reference}`", self.kind())))
    }

    /// How `text` goes out on a channel with `config` and what it costs, for platforms that
    /// charge by the part (`None`: one message, no price known). Shown before a broadcast starts.
    fn estimate(&self, config: &Value, text: &str) -> Option<Estimate> {
        let _ = (config, text);
        None
    }

    /// The key okno signs links to this channel's files with (`/hooks/{channel_id}/files/…`),
    /// for platforms that download outbound files from okno by URL (`None`: no such links).
    fn file_link_secret(&self, channel: &Channel) -> Option<String> {
        let _ = channel;
        None
    }

    /// A link that opens a chat with this channel's bot carrying `code` (`None`: the person
    /// sends the code as a message).
    fn deep_link(&self, channel: &Channel, code: &str) -> Option<String> {
        let _ = (channel, code);
        None
    }
}
