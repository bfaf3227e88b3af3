//! VK as okno's engine sees it: connecting a community token (`groups.getById`), its receive
//! mode (a Callback API server added with okno's secret, or Bots Long Poll turned on), the
//! Callback API's confirmation handshake, events read into inbound events, files named in
//! messages, and `vk.me` deep links whose `ref` arrives with the person's first message.
//!
//! Long polling hands the cursor `{server, key, ts}` back with the last event of a batch: the
//! engine stores it only once the events are stored, so a crash in between makes the next
//! poll start from the older `ts` and VK send the events again, which changes nothing
//! (messages de-duplicate on their platform id).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use okno_channel::http::{FetchError, Fetched};
use okno_channel::schema::{text, Choice, Field, FieldKind, Schema};
use okno_channel::{
    Adapter, Brand, Buttons, Capabilities, ChannelState, Connected, Context, FileLimits, HookAnswer, HookRequest,
    InboundEvent, InboundMessage, Platform, PollError, Polled, Received, TextLimit, TextUnit,
};
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::{signing, Error, ErrorKind, Result};
use serde_json::{json, Value};

use crate::api::{ApiError, Check, LongPollServer, VkApi, API_VERSION};
use crate::events::{self, Action, FILE_SCHEME};
use crate::text::TEXT_LIMIT;
use crate::{VkAdapter, VkConfig};

/// Largest file okno downloads from VK, and sends as a document.
const FILE_LIMIT: u64 = 200 * 1024 * 1024;
/// The events okno asks VK for, in either receive mode.
const EVENTS: &[&str] = &["message_new", "message_edit", "message_event", "message_allow", "message_deny"];
/// The title okno's Callback API server carries in the community's settings (VK allows 14
/// characters).
const SERVER_TITLE: &str = "okno";

/// The VK platform.
pub struct Vk;

fn config_of(channel: &Channel) -> Result<VkConfig> {
    okno_channel::config_of(channel)
}

fn group_of(cfg: &VkConfig) -> Result<i64> {
    cfg.group_id.ok_or_else(|| Error::invalid("invalid_channel_config", "the channel has no `group_id`"))
}

/// A VK refusal while setting the channel up, as okno's error.
fn refused(what: &str, e: ApiError) -> Error {
    match e {
        ApiError::Vk { code: 5 | 27, message } => {
            Error::invalid("invalid_token", format!("VK refused the community token: {message}"))
        }
        ApiError::Vk { code: 15 | 7, message } => Error::invalid(
            "token_lacks_rights",
            format!("{what}: {message}. Give the token the `manage` permission, or turn `manage_settings` off and set it up in the community's settings"),
        ),
        ApiError::Vk { code, message } => Error::unprocessable("vk_refused", format!("{what}: {message} (VK error {code})")),
        ApiError::Http(s) => Error::unavailable("vk_unreachable", format!("{what}: VK answered HTTP {s}")),
        ApiError::Network(reason) => Error::unavailable("vk_unreachable", format!("{what}: cannot reach VK: {reason}")),
    }
}

/// Who a message names by id only and needs a name for: the person in a private chat, the
/// member in a group.
fn unnamed(msg: &InboundMessage) -> Option<&str> {
    match (&msg.member, msg.sender.is_group) {
        (Some(m), _) => Some(m.user_id.as_str()),
        (None, false) => Some(msg.sender.user_id.as_str()),
        (None, true) => None,
    }
}

/// Names VK gave (by API address and person), kept for an hour so a person is asked after
/// once, not at every message: each call counts against the community's budget, which sends
/// need.
type Names = HashMap<(String, String), (String, Instant)>;

fn known_names() -> &'static Mutex<Names> {
    static NAMES: OnceLock<Mutex<Names>> = OnceLock::new();
    NAMES.get_or_init(Default::default)
}

const NAME_KEPT: Duration = Duration::from_secs(3600);

fn known_name(known: &Names, api: &VkApi, id: &str) -> Option<String> {
    known
        .get(&(api.base().to_string(), id.to_string()))
        .filter(|(_, at)| at.elapsed() < NAME_KEPT)
        .map(|(n, _)| n.clone())
}

/// People's names as VK shows them: events name people by id only. One `users.get` for every
/// person of a batch not named before, asked again once after VK's "too many requests"; a
/// message whose person stays unnamed is kept all the same.
async fn name_people(api: &VkApi, items: &mut [Received]) {
    let msgs = || {
        items.iter().filter_map(|r| match &r.event {
            InboundEvent::Message(m) => Some(&**m),
            _ => None,
        })
    };
    let mut wanted: Vec<String> = {
        let known = known_names().lock().unwrap_or_else(|e| e.into_inner());
        msgs().filter_map(unnamed).filter(|id| known_name(&known, api, id).is_none()).map(str::to_string).collect()
    };
    wanted.sort();
    wanted.dedup();
    if !wanted.is_empty() {
        let mut got = api.names(&wanted).await;
        if let Err(ApiError::Vk { code: 6, .. }) = got {
            tokio::time::sleep(Duration::from_secs(1)).await;
            got = api.names(&wanted).await;
        }
        match got {
            Ok(names) => {
                let mut known = known_names().lock().unwrap_or_else(|e| e.into_inner());
                if known.len() > 100_000 {
                    known.retain(|_, (_, at)| at.elapsed() < NAME_KEPT);
                }
                let now = Instant::now();
                known.extend(names.into_iter().map(|(id, name)| ((api.base().to_string(), id), (name, now))));
            }
            Err(e) => tracing::debug!(error = %e, people = wanted.len(), "users.get failed; the people stay unnamed"),
        }
    }
    let known = known_names().lock().unwrap_or_else(|e| e.into_inner());
    for r in items.iter_mut() {
        let InboundEvent::Message(msg) = &mut r.event else { continue };
        let Some(name) = unnamed(msg).and_then(|id| known_name(&known, api, id)) else { continue };
        if let Some(m) = &mut msg.member {
            m.display_name = Some(name.clone());
        }
        if msg.sender.is_group {
            msg.author = Some(name);
        } else {
            msg.sender.display_name = Some(name);
        }
    }
}

/// What one event means, with the press to answer; data behind a token is looked up.
async fn received(channel: &Channel, event: &Value, state: &dyn ChannelState) -> Result<Received> {
    let parsed = events::parse(&channel.id, event);
    let event = match parsed.action {
        Action::Inbound(mut msg) => {
            if let Some(token) = &parsed.token {
                match state.button_data(token).await? {
                    Some(data) => msg.button_data = Some(data),
                    None => tracing::warn!(channel = %channel.id, token, "a button press carried an unknown token"),
                }
            }
            InboundEvent::Message(msg)
        }
        Action::Edit { user_id, external_id, text } => InboundEvent::Edit { user_id, external_id, text },
        Action::Membership { user_id, blocked } => InboundEvent::Membership { user_id, blocked },
        Action::Confirmation | Action::Ignore => InboundEvent::Ignore,
    };
    Ok(Received { event, press_id: parsed.press_id, cursor: None })
}

fn cursor_of(lp: &LongPollServer) -> String {
    serde_json::to_string(lp).unwrap_or_default()
}

fn poll_refusal(e: ApiError) -> PollError {
    match e {
        ApiError::Vk { code: 6 | 9 | 29, .. } => PollError::Wait(std::time::Duration::from_secs(2)),
        ApiError::Vk { code: 1 | 10, message } => PollError::Network(message),
        ApiError::Vk { code, message } => PollError::Refused(format!("{message} (VK error {code})")),
        ApiError::Http(s) => PollError::Network(format!("VK answered HTTP {s}")),
        ApiError::Network(reason) => PollError::Network(reason),
    }
}

/// The Callback API servers of the community that point at `url`.
async fn servers_at(api: &VkApi, group: i64, url: &str) -> std::result::Result<Vec<i64>, ApiError> {
    let list = api.call("groups.getCallbackServers", &[("group_id", group.to_string())]).await?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["url"].as_str() == Some(url))
        .filter_map(|s| s["id"].as_i64())
        .collect())
}

fn event_switches(extra: &mut Vec<(&'static str, String)>) {
    extra.push(("api_version", API_VERSION.to_string()));
    for e in EVENTS {
        extra.push((e, "1".into()));
    }
}

#[async_trait]
impl Platform for Vk {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Vk
    }

    fn title(&self) -> &'static str {
        "VK"
    }

    fn brand(&self) -> Brand {
        Brand {
            color: "#0077FF",
            mark: r##"<path d="M12.8 16.6c-5 0-7.9-3.4-8-9.2h2.5c.1 4.2 2 6 3.4 6.4V7.4h2.4v3.6c1.4-.2 2.9-1.8 3.4-3.6h2.3c-.4 2.2-2 3.8-3.2 4.5 1.2.6 3.1 2 3.8 4.7h-2.6c-.5-1.7-1.9-3-3.7-3.2v3.2h-.3z" fill="#fff"/>"##,
        }
    }

    fn schema(&self) -> Schema {
        const MODES: &[Choice] = &[
            Choice {
                value: "polling",
                label: text(
                    "Long Poll: okno asks VK (works without a public address)",
                    "Long Poll: okno сам спрашивает VK (работает без публичного адреса)",
                ),
            },
            Choice {
                value: "webhook",
                label: text(
                    "Callback API: VK calls okno (needs a public https address)",
                    "Callback API: VK сам обращается к okno (нужен публичный https-адрес)",
                ),
            },
        ];
        Schema::new(
            text("Connect a VK community", "Подключить сообщество VK"),
            vec![
                Field::new("token", text("Community access token", "Ключ доступа сообщества"), FieldKind::Text)
                    .help(text(
                        "Community settings → Work with API → Access tokens: with the messages permission (and manage for okno to set up receiving).",
                        "Настройки сообщества → Работа с API → Ключи доступа: с правом на сообщения (и на управление, чтобы okno сам настроил получение).",
                    ))
                    .placeholder("vk1.a.…")
                    .required()
                    .secret(),
                Field::new("group_id", text("Community number", "Номер сообщества"), FieldKind::Integer)
                    .help(text("Filled from the token when empty.", "Если не указан, берётся из ключа."))
                    .placeholder("123456789"),
                Field::new("mode", text("How okno receives messages", "Как okno получает сообщения"), FieldKind::Choice(MODES))
                    .help(text(
                        "With the Callback API, VK reaches okno at OKNO_PUBLIC_URL.",
                        "С Callback API VK обращается к okno по адресу из OKNO_PUBLIC_URL.",
                    )),
                Field::new("manage_settings", text("okno sets receiving up in VK", "okno сам настраивает получение в VK"), FieldKind::Bool)
                    .help(text(
                        "Adds the Callback API server or turns Long Poll on; needs the token's manage permission. Off: set it up in the community's settings.",
                        "Добавляет сервер Callback API или включает Long Poll; нужно право ключа на управление. Выключено: настройте в сообществе сами.",
                    ))
                    .advanced(),
                Field::new("secret", text("Callback API secret key", "Секретный ключ Callback API"), FieldKind::Text)
                    .help(text(
                        "Generated by okno when empty; set it when you add the server in VK yourself.",
                        "Если пусто, okno создаст сам; укажите, если добавляете сервер в VK сами.",
                    ))
                    .secret()
                    .advanced(),
                Field::new("confirmation", text("Callback API confirmation string", "Строка подтверждения Callback API"), FieldKind::Text)
                    .help(text(
                        "Read from VK when the token may; otherwise copy it from the Callback API settings.",
                        "Берётся из VK, если ключ позволяет; иначе скопируйте её из настроек Callback API.",
                    ))
                    .advanced(),
                Field::new("api_base", text("VK API address", "Адрес VK API"), FieldKind::Url)
                    .help(text("Leave it empty for VK itself; set it for a test simulator.", "Оставьте пустым для самого VK; укажите для тестового симулятора."))
                    .placeholder("https://api.vk.com/method")
                    .advanced(),
                Field::new("limits", text("Rate limits", "Ограничения скорости"), FieldKind::Json)
                    .help(text("{\"per_second\": 20}: VK's limit for a community token when absent", "{\"per_second\": 20}: по умолчанию — предел VK для ключа сообщества"))
                    .api_only(),
            ],
        )
    }

    fn capabilities(&self, _config: &Value) -> Capabilities {
        Capabilities {
            buttons: Some(Buttons { inline: true, reply_keyboard: false, max_per_row: 5, max_rows: 6, max_label: 40 }),
            edit: true,
            delete: true,
            groups: true,
            deep_links: true,
            link_codes: true,
            posts: true,
            text: TextLimit { max: TEXT_LIMIT, unit: TextUnit::Chars },
            splits_long_text: true,
            files: Some(FileLimits {
                max_upload: FILE_LIMIT,
                max_download: FILE_LIMIT,
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

    /// Checks the token with `groups.getById` (nothing is saved when VK refuses it), fills the
    /// community's id, keeps or makes the Callback API secret and reads the confirmation
    /// string.
    async fn connect(&self, cx: &Context, config: &Value, previous: Option<&Value>) -> Result<Connected> {
        let mut cfg: VkConfig = serde_json::from_value(config.clone())
            .map_err(|e| Error::invalid("invalid_channel_config", format!("vk channel config: {e}")))?;
        if !matches!(cfg.mode.as_str(), "polling" | "webhook") {
            return Err(Error::invalid("invalid_channel_config", "`mode` is `polling` or `webhook`"));
        }
        let base = url::Url::parse(&cfg.api_base)
            .map_err(|e| Error::invalid("invalid_channel_config", format!("`api_base` is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::invalid("invalid_channel_config", "`api_base` must be an http(s) URL"));
        }
        if cfg.token.trim().is_empty() || cfg.token.chars().any(char::is_whitespace) {
            return Err(Error::invalid("invalid_token", "the community access token is empty or has spaces in it"));
        }
        if let Some(s) = &cfg.secret {
            if s.is_empty() || s.len() > 50 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(Error::invalid("invalid_channel_config", "`secret` is 1 to 50 latin letters and digits"));
            }
        }
        let api = cfg.api(cx.http.clone());
        let got = api.call("groups.getById", &[]).await.map_err(|e| refused("checking the token", e))?;
        // 5.199 answers {"groups": [...]}, older versions a list.
        let group = got.get("groups").and_then(|g| g.get(0)).or_else(|| got.get(0)).cloned().unwrap_or(Value::Null);
        let Some(id) = group["id"].as_i64() else {
            return Err(Error::invalid(
                "invalid_token",
                "the token is not a community token: groups.getById named no community",
            ));
        };
        if let Some(given) = cfg.group_id.filter(|g| *g != id) {
            return Err(Error::invalid(
                "invalid_channel_config",
                format!("the token belongs to community {id}, not {given}"),
            ));
        }
        cfg.group_id = Some(id);
        let kept = previous.and_then(|p| p.get("secret")).and_then(Value::as_str).map(str::to_string);
        cfg.secret = cfg.secret.or(kept).or_else(|| Some(okno_domain::ids::random_hex(16)));
        if cfg.confirmation.is_none() {
            match api.call("groups.getCallbackConfirmationCode", &[("group_id", id.to_string())]).await {
                Ok(v) => cfg.confirmation = v["code"].as_str().map(str::to_string),
                Err(e) if cfg.mode == "webhook" => {
                    return Err(refused("reading the Callback API confirmation string", e))
                }
                Err(e) => {
                    tracing::info!(group = id, error = %e, "no Callback API confirmation string; fine for Long Poll")
                }
            }
        }
        let name = group["name"].as_str().unwrap_or_default();
        let screen = group["screen_name"].as_str().map(str::to_string).unwrap_or_else(|| format!("club{id}"));
        let info = json!({"name": name, "screen_name": screen, "group_id": id, "mode": cfg.mode});
        let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Connected { config, info })
    }

    /// Callback API: okno's server at `{public_url}/hooks/{id}` added (or updated) with the
    /// secret and the events okno reads — VK confirms it at once, and okno answers with the
    /// confirmation string. Long Poll: turned on with the same events, and okno's Callback API
    /// server removed. Nothing when the administrator sets it up (`manage_settings: false`).
    async fn apply_receive_mode(&self, cx: &Context, channel: &Channel) -> Result<()> {
        let cfg = config_of(channel)?;
        if !cfg.manage_settings {
            return Ok(());
        }
        let group = group_of(&cfg)?;
        let api = cfg.api(cx.http.clone());
        let url = format!("{}/hooks/{}", cx.public_url, channel.id);
        let existing = servers_at(&api, group, &url).await.map_err(|e| refused("listing Callback API servers", e))?;
        if cfg.mode == "webhook" {
            let secret = cfg.secret.clone().unwrap_or_default();
            let server_id = match existing.first() {
                Some(id) => {
                    let params = [
                        ("group_id", group.to_string()),
                        ("server_id", id.to_string()),
                        ("url", url.clone()),
                        ("title", SERVER_TITLE.to_string()),
                        ("secret_key", secret),
                    ];
                    api.call("groups.editCallbackServer", &params)
                        .await
                        .map_err(|e| refused("updating the Callback API server", e))?;
                    *id
                }
                None => {
                    let params = [
                        ("group_id", group.to_string()),
                        ("url", url.clone()),
                        ("title", SERVER_TITLE.to_string()),
                        ("secret_key", secret),
                    ];
                    let v = api
                        .call("groups.addCallbackServer", &params)
                        .await
                        .map_err(|e| refused("adding the Callback API server", e))?;
                    v["server_id"].as_i64().ok_or_else(|| {
                        Error::unprocessable("vk_refused", format!("groups.addCallbackServer gave no server_id: {v}"))
                    })?
                }
            };
            let mut params = vec![("group_id", group.to_string()), ("server_id", server_id.to_string())];
            event_switches(&mut params);
            api.call("groups.setCallbackSettings", &params)
                .await
                .map_err(|e| refused("choosing the Callback API events", e))?;
        } else {
            for id in existing {
                api.call(
                    "groups.deleteCallbackServer",
                    &[("group_id", group.to_string()), ("server_id", id.to_string())],
                )
                .await
                .map_err(|e| refused("removing the Callback API server", e))?;
            }
            let mut params = vec![("group_id", group.to_string()), ("enabled", "1".to_string())];
            event_switches(&mut params);
            api.call("groups.setLongPollSettings", &params).await.map_err(|e| refused("turning Long Poll on", e))?;
        }
        Ok(())
    }

    fn adapter(&self, cx: &Context, channel: &Channel, state: Arc<dyn ChannelState>) -> Result<Arc<dyn Adapter>> {
        let cfg = config_of(channel)?;
        Ok(Arc::new(VkAdapter::new(cfg.api(cx.http.clone()), state, cx.files.clone())))
    }

    /// The request must name this community and carry its `secret` (compared in constant
    /// time); the confirmation request, which VK sends before any secret is set, only the
    /// community.
    async fn receive(
        &self,
        cx: &Context,
        channel: &Channel,
        request: &HookRequest<'_>,
        state: &dyn ChannelState,
    ) -> Result<Vec<Received>> {
        let body = request.body;
        let cfg = config_of(channel)?;
        let event: Value = serde_json::from_slice(body)
            .map_err(|e| Error::invalid("invalid_json", format!("not a VK Callback API event: {e}")))?;
        let group = event.get("group_id").and_then(Value::as_i64);
        if group.is_none() || group != cfg.group_id {
            return Err(Error::new(ErrorKind::Unauthorized, "wrong_community", "the event is for another community"));
        }
        let expected = cfg.secret.clone().unwrap_or_default();
        let given = event.get("secret").and_then(Value::as_str);
        let confirmation = event.get("type").and_then(Value::as_str) == Some("confirmation");
        let secret_ok = given.is_some_and(|s| !expected.is_empty() && signing::secrets_equal(s, &expected));
        let unsigned_confirmation = confirmation && given.is_none();
        if !(secret_ok || unsigned_confirmation) {
            return Err(Error::new(ErrorKind::Unauthorized, "bad_secret", "the Callback API secret does not match"));
        }
        let api = cfg.api(cx.http.clone());
        let mut items = vec![received(channel, &event, state).await?];
        name_people(&api, &mut items).await;
        Ok(items)
    }

    /// VK's Callback API wants `ok` for every event, and the confirmation string for its
    /// confirmation request.
    fn hook_answer(&self, channel: &Channel, request: &HookRequest<'_>) -> HookAnswer {
        let body = request.body;
        let confirmation = serde_json::from_slice::<Value>(body)
            .ok()
            .is_some_and(|v| v.get("type").and_then(Value::as_str) == Some("confirmation"));
        if confirmation {
            let code = config_of(channel).ok().and_then(|c| c.confirmation).unwrap_or_default();
            return HookAnswer::Text(code);
        }
        HookAnswer::Text("ok".into())
    }

    fn polls(&self, channel: &Channel) -> bool {
        config_of(channel).is_ok_and(|cfg| cfg.mode == "polling")
    }

    /// One `a_check` from the stored `{server, key, ts}`, getting a new server or key when VK
    /// says the old one is gone.
    async fn poll(
        &self,
        cx: &Context,
        channel: &Channel,
        cursor: Option<&str>,
        state: &dyn ChannelState,
    ) -> std::result::Result<Polled, PollError> {
        let cfg = config_of(channel).map_err(|e| PollError::Refused(e.message))?;
        let group = group_of(&cfg).map_err(|e| PollError::Refused(e.message))?;
        let api = cfg.api(cx.http.clone());
        let stored = cursor.and_then(|c| match serde_json::from_str::<LongPollServer>(c) {
            Ok(lp) => Some(lp),
            Err(_) => {
                tracing::warn!(channel = %channel.id, cursor = c, "the stored Long Poll cursor is unreadable; starting over");
                None
            }
        });
        let mut lp = match stored.clone() {
            Some(lp) => lp,
            None => api.long_poll_server(group).await.map_err(poll_refusal)?,
        };
        let wait = cx.poll_timeout.as_secs();
        let (ts, updates) = match api.check(&lp, wait).await.map_err(poll_refusal)? {
            Check::Events { ts, updates } => (ts, updates),
            failed => {
                lp = match failed {
                    Check::History(Some(ts)) => LongPollServer { ts, ..lp },
                    Check::KeyExpired => {
                        let fresh = api.long_poll_server(group).await.map_err(poll_refusal)?;
                        LongPollServer { ts: lp.ts, ..fresh }
                    }
                    _ => api.long_poll_server(group).await.map_err(poll_refusal)?,
                };
                // The fresh key or ts is kept; the next poll asks with it.
                let mut keep = Received::new(InboundEvent::Ignore);
                keep.cursor = Some(cursor_of(&lp));
                return Ok(Polled { items: vec![keep] });
            }
        };
        let next = LongPollServer { ts, ..lp };
        let mut items = Vec::with_capacity(updates.len() + 1);
        for update in &updates {
            match received(channel, update, state).await {
                Ok(r) => items.push(r),
                // The next poll starts from this batch's `ts` again.
                Err(e) if items.is_empty() => return Err(PollError::Network(format!("reading an event failed: {e}"))),
                Err(e) => {
                    tracing::warn!(channel = %channel.id, error = %e, "reading an event failed");
                    return Ok(Polled { items });
                }
            }
        }
        name_people(&api, &mut items).await;
        if stored.as_ref() != Some(&next) {
            match items.last_mut() {
                Some(last) => last.cursor = Some(cursor_of(&next)),
                None => {
                    let mut keep = Received::new(InboundEvent::Ignore);
                    keep.cursor = Some(cursor_of(&next));
                    items.push(keep);
                }
            }
        }
        Ok(Polled { items })
    }

    /// A file named `vk-file:<url>`: the address VK gave in the message, downloaded through
    /// okno's guarded client.
    async fn fetch(
        &self,
        cx: &Context,
        _channel: &Channel,
        reference: &str,
    ) -> std::result::Result<Fetched, FetchError> {
        let Some(url) = reference.strip_prefix(FILE_SCHEME) else {
            return Err(FetchError::Refused(format!("not a VK file: {reference}")));
        };
        cx.http.fetch_limited(url, cx.max_download.min(FILE_LIMIT)).await
    }

    /// `https://vk.me/<community>?ref=<code>`: VK hands the `ref` over with the person's first
    /// message.
    fn deep_link(&self, channel: &Channel, code: &str) -> Option<String> {
        let screen = channel.info.get("screen_name").and_then(Value::as_str).filter(|s| !s.is_empty())?;
        Some(format!("https://vk.me/{screen}?ref={code}"))
    }
}
