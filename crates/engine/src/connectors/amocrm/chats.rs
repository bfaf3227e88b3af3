//! amoCRM's chats ("amojo"): okno as a chat channel of the amoCRM account. The people who
//! write to okno's chosen channels (Telegram, MAX, WhatsApp…) appear in amoCRM's chats, and
//! amoCRM's users answer them there (see [`crate::connectors::desk`]).
//!
//! ```json
//! "chats": {"channel_id": "<from amoCRM's support>", "secret": "<the channel's secret>",
//!           "account_id": "<the account's amojo_id>", "channels": ["<okno channel id>", …]}
//! ```
//!
//! amoCRM's support registers the chat channel with the webhook address
//! `{public_url}/hooks/amojo/:scope_id`; okno connects it to the account when the connector is
//! made (the scope it gets names the connector in that address). amojo posts an answer once
//! and waits 5 s: okno checks the signature, stores the answer as an outbound message and
//! answers at once; the delivery is reported back when the person's messenger took it.

use okno_connector_amocrm::chats::{
    read_hook, ChatHookError, ChatMessage, ChatsClient, ChatsError, Delivery, Participant,
};
use okno_domain::model::{Connector, ConnectorKind};
use okno_domain::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use super::AmoConfig;
use crate::connectors::desk::DeskReply;
use crate::connectors::{HookRequest, Outcome};
use crate::Engine;

/// amojo's address for Russian accounts.
pub const AMOJO_BASE: &str = "https://amojo.amocrm.ru";
/// Where the standing job keeps its place among the channels' messages.
const PLACE: &str = "chats_place";

/// The connector's chat channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chats {
    /// The chat channel's id, given by amoCRM's support.
    pub channel_id: String,
    pub secret: String,
    /// The account's id in the Chats API (`GET /api/v4/account?with=amojo_id`).
    pub account_id: String,
    /// okno's channels whose conversations amoCRM's users answer.
    pub channels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amojo_base: Option<String>,
    /// The channel's name in amoCRM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Made by okno when it connects the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<String>,
}

impl Chats {
    pub(super) fn check(&self) -> std::result::Result<(), String> {
        if [&self.channel_id, &self.secret, &self.account_id].iter().any(|f| f.trim().is_empty()) {
            return Err("`chats` needs `channel_id`, `secret` and `account_id`".into());
        }
        if self.channels.is_empty() {
            return Err("`chats.channels` names okno's channels whose conversations amoCRM answers".into());
        }
        Ok(())
    }

    fn client(&self) -> std::result::Result<ChatsClient, ChatsError> {
        ChatsClient::new(self.amojo_base.as_deref().unwrap_or(AMOJO_BASE), &self.channel_id, &self.secret, 7)
    }
}

fn unavailable(e: ChatsError) -> Error {
    Error::new(ErrorKind::Unavailable, "amojo_unavailable", e.to_string())
}

fn outcome(e: ChatsError) -> Outcome {
    match e {
        ChatsError::TooManyRequests | ChatsError::Unavailable(_) => Outcome::Retry(e.to_string()),
        ChatsError::Forbidden(_) => Outcome::Held(e.to_string()),
        ChatsError::NotFound(_) | ChatsError::Invalid(_) => Outcome::Refused(e.to_string()),
    }
}

/// Connects the chat channel to the account (the scope it answers is kept), after checking
/// okno's channels exist.
pub(super) async fn connect(engine: &Engine, chats: &mut Chats) -> Result<()> {
    for ch in &chats.channels {
        engine.channel(&ch.as_str().into()).await?;
    }
    let client = chats.client().map_err(unavailable)?;
    let title = chats.title.clone().unwrap_or_else(|| "okno".into());
    let connection = client.connect(&chats.account_id, &title, "v2").await.map_err(|e| match e {
        ChatsError::Forbidden(d) | ChatsError::NotFound(d) | ChatsError::Invalid(d) => {
            Error::invalid("invalid_credentials", format!("amoCRM's chats refused the channel: {d}"))
        }
        e => unavailable(e),
    })?;
    chats.scope_id = Some(connection.scope_id);
    Ok(())
}

/// The people's new messages on the chosen channels, put into amoCRM's chats.
pub(super) async fn mirror(engine: &Engine, connector: &Connector, chats: &Chats) -> Result<Outcome> {
    let Some(scope) = &chats.scope_id else { return Ok(Outcome::Done) };
    let (slice, last) = engine.desk_slice(connector, PLACE, &chats.channels).await?;
    if last.is_none() {
        return Ok(Outcome::Done);
    }
    let client = chats.client().map_err(unavailable)?;
    let mut connector = connector.clone();
    for m in &slice {
        let person = Participant {
            id: m.contact.id.to_string(),
            name: m.name(),
            phone: m.contact.phone.clone(),
            email: m.contact.email.clone(),
            ..Default::default()
        };
        let msg = ChatMessage::from_person(
            m.message.id.as_str(),
            m.message.conversation_id.as_str(),
            person,
            &m.text(),
            m.message.created_at,
        );
        if let Err(e) = client.send_message(scope, &msg).await {
            let detail = serde_json::json!({"outcome": e.to_string()});
            engine.audit_connector_call(&connector, "amocrm.chats.send", m.message.id.as_str(), detail).await;
            return Ok(outcome(e));
        }
        connector = engine.desk_passed(&connector, PLACE, &m.message).await?;
    }
    if let Some(last) = last {
        engine.desk_passed(&connector, PLACE, &last).await?;
    }
    Ok(Outcome::Done)
}

/// How an amoCRM user's answer went, told to amoCRM (`what`: `<okno message>:<amojo msgid>`).
pub(super) async fn delivery(engine: &Engine, connector: &Connector, cfg: &AmoConfig, what: &str) -> Result<Outcome> {
    let (Some(chats), Some((message_id, msgid))) = (&cfg.chats, what.split_once(':')) else { return Ok(Outcome::Done) };
    let Some(scope) = &chats.scope_id else { return Ok(Outcome::Done) };
    let status = match engine.desk_delivery(message_id).await? {
        None => return Ok(Outcome::Retry("the answer is still on its way to the person".into())),
        Some(Ok(())) => Delivery::Delivered,
        Some(Err(why)) => Delivery::Failed { code: 905, text: why },
    };
    let client = chats.client().map_err(unavailable)?;
    let done = client.delivery_status(scope, msgid, &status).await;
    let detail = serde_json::json!({"status": format!("{status:?}"),
                                    "outcome": done.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())});
    engine.audit_connector_call(connector, "amocrm.chats.delivery", msgid, detail).await;
    Ok(match done {
        Ok(()) => Outcome::Done,
        Err(e) => outcome(e),
    })
}

impl Engine {
    /// An answer amoCRM's chats posted to `/hooks/amojo/{scope_id}`: the connector found by
    /// its scope, the signature checked, the answer stored before amoCRM is answered.
    pub async fn amojo_hook(&self, scope_id: &str, req: &HookRequest<'_>) -> Result<()> {
        let mut found = None;
        for c in self.store.list_connectors().await? {
            if c.kind != ConnectorKind::Amocrm {
                continue;
            }
            if let Ok(cfg) = AmoConfig::parse(&c.config) {
                if cfg.chats.as_ref().and_then(|ch| ch.scope_id.as_deref()) == Some(scope_id) {
                    found = Some((c, cfg));
                    break;
                }
            }
        }
        let Some((connector, cfg)) = found else { return Err(Error::not_found("chat scope", scope_id)) };
        let Some(chats) = &cfg.chats else { return Err(Error::not_found("chat scope", scope_id)) };
        let signature = req.header("x-signature").unwrap_or_default();
        let hook = read_hook(&chats.secret, signature, req.body).map_err(|e| match e {
            ChatHookError::BadSignature => Error::new(ErrorKind::Unauthorized, "bad_signature", e.to_string()),
            e => Error::invalid("invalid_hook", e.to_string()),
        })?;
        // okno named its conversations in amoCRM by their own ids.
        let conversation = hook.conversation.client_id.clone().unwrap_or_default();
        if conversation.is_empty() {
            return Err(Error::unprocessable(
                "unknown_conversation",
                "amoCRM's user wrote first in a chat okno did not start; okno answers people who wrote to it",
            ));
        }
        let mut text = hook.message.text.clone();
        if !hook.message.media.is_empty() {
            let name = if hook.message.file_name.is_empty() { "file" } else { hook.message.file_name.as_str() };
            text = [text, format!("📎 {name}: {}", hook.message.media)]
                .into_iter()
                .filter(|t| !t.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n");
        }
        let author = if hook.sender.name.trim().is_empty() {
            "amoCRM".to_string()
        } else {
            format!("amoCRM: {}", hook.sender.name)
        };
        let reply =
            DeskReply { conversation_id: conversation.as_str().into(), text, author, key: hook.message.id.clone() };
        self.desk_reply(&connector, reply).await?;
        Ok(())
    }
}
