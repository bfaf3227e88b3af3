//! okno as a Bitrix24 Open Lines connector: the people who write to okno's chosen channels
//! (Telegram, MAX, WhatsApp…) appear in an open line, and the portal's operators answer them
//! there (see [`crate::connectors::desk`]).
//!
//! ```json
//! "openlines": {"line": 1, "channels": ["<okno channel id>", …]}
//! ```
//!
//! ```text
//!  connect ─► imconnector.register (okno's connector id, its settings page)
//!          ─► imconnector.activate on the line ─► ONIMCONNECTORMESSAGEADD bound to okno's address
//!  the standing job ─► the people's new messages ─► imconnector.send.messages (okno's
//!      conversation as the chat, the contact as the user, okno's message id as the message's)
//!  an operator answers ─► ONIMCONNECTORMESSAGEADD ─► the answer stored (once per portal
//!      message) before the 200 ─► the person's messenger ─► imconnector.send.status.delivery
//! ```

use okno_connector_bitrix24::event::OperatorMessage;
use okno_connector_bitrix24::{B24Client, B24Error, ConnectorRegistration, CustomerMessage, Receipt};
use okno_domain::ids::{ConnectorId, MessageId};
use okno_domain::model::Connector;
use okno_domain::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{outcome, refused, B24Config};
use crate::connectors::desk::DeskReply;
use crate::connectors::Outcome;
use crate::Engine;

/// Where the standing job keeps its place among the channels' messages.
const PLACE: &str = "openlines_place";
/// How often the people's new messages are carried into the line.
pub(super) const EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// okno's icon in the portal's list of connectors.
const ICON: &str = "data:image/svg+xml;charset=US-ASCII,%3Csvg%20xmlns%3D%22http%3A%2F%2Fwww.w3.org%2F2000%2Fsvg%22%20viewBox%3D%220%200%2070%2071%22%3E%3Crect%20x%3D%2212%22%20y%3D%2212%22%20width%3D%2246%22%20height%3D%2246%22%20rx%3D%228%22%20fill%3D%22%23FFF%22%2F%3E%3C%2Fsvg%3E";

/// The connector's open line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenLines {
    /// The open line's id (Contact Center → Open Lines).
    pub line: i64,
    /// okno's channels whose conversations the portal's operators answer.
    pub channels: Vec<String>,
    /// The connector's name in the portal; `okno` unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// okno's connector id in the portal (made by okno).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
}

impl OpenLines {
    pub(super) fn check(&self) -> std::result::Result<(), String> {
        if self.line <= 0 {
            return Err("`openlines.line` is the open line's id".into());
        }
        if self.channels.is_empty() {
            return Err("`openlines.channels` names okno's channels whose conversations the portal answers".into());
        }
        Ok(())
    }
}

/// okno's connector id in the portal: lowercase, no dots.
fn connector_id(id: &ConnectorId) -> String {
    let tail: String = id.as_str().chars().filter(char::is_ascii_alphanumeric).take(12).collect();
    format!("okno_{}", tail.to_ascii_lowercase())
}

/// Registers okno's connector and turns it on for the line, after checking okno's channels.
pub(super) async fn connect(engine: &Engine, client: &B24Client, id: &ConnectorId, ol: &mut OpenLines) -> Result<()> {
    for ch in &ol.channels {
        engine.channel(&ch.as_str().into()).await?;
    }
    let name = connector_id(id);
    let registration = ConnectorRegistration {
        id: name.clone(),
        name: ol.name.clone().unwrap_or_else(|| "okno".into()),
        icon: ICON.into(),
        placement_handler: format!("{}/", engine.cfg.public_url.trim_end_matches('/')),
        chat_group: false,
    };
    client.register_connector(&registration).await.map_err(refused)?;
    client.activate_connector(&name, ol.line, true).await.map_err(|e| match e {
        B24Error::Invalid(d) | B24Error::NotFound(d) => {
            Error::invalid("invalid_connector_config", format!("Bitrix24 refused open line {}: {d}", ol.line))
        }
        e => refused(e),
    })?;
    ol.connector = Some(name);
    Ok(())
}

/// The people's new messages on the chosen channels, put into the open line.
pub(super) async fn mirror(
    engine: &Engine,
    connector: &Connector,
    ol: &OpenLines,
    client: &B24Client,
) -> Result<Outcome> {
    let Some(name) = &ol.connector else { return Ok(Outcome::Done) };
    let (slice, last) = engine.desk_slice(connector, PLACE, &ol.channels).await?;
    let Some(last) = last else { return Ok(Outcome::Done) };
    if !slice.is_empty() {
        let messages: Vec<CustomerMessage> = slice
            .iter()
            .map(|m| CustomerMessage {
                user_id: m.contact.id.to_string(),
                name: Some(m.name()),
                last_name: None,
                phone: m.contact.phone.clone(),
                email: m.contact.email.clone(),
                message_id: m.message.id.to_string(),
                date: m.message.created_at / 1000,
                text: m.text(),
                files: Vec::new(),
                chat_id: m.message.conversation_id.to_string(),
                chat_name: Some(m.name()),
                chat_url: None,
            })
            .collect();
        let sent = client.send_messages(name, ol.line, &messages).await;
        let detail = json!({"count": messages.len(),
                            "outcome": sent.as_ref().map(|a| format!("{} accepted", a.iter().filter(|a| a.success).count()))
                                .unwrap_or_else(|e| e.to_string())});
        engine.audit_connector_call(connector, "bitrix24.imconnector.send", &ol.line.to_string(), detail).await;
        if let Err(e) = sent {
            return Ok(outcome(e));
        }
    }
    engine.desk_passed(connector, PLACE, &last).await?;
    Ok(Outcome::Done)
}

/// An operator's signed text (`[b]Ольга:[/b] [br]…`) as okno shows it: the author apart, the
/// BB-codes gone.
pub(crate) fn read_operator_text(text: &str) -> (Option<String>, String) {
    let mut author = None;
    let mut rest = text.trim_start();
    if let Some(after) = rest.strip_prefix("[b]") {
        if let Some((name, tail)) = after.split_once(":[/b]") {
            if !name.contains('[') && name.chars().count() <= 100 {
                author = Some(name.trim().to_string()).filter(|n| !n.is_empty());
                rest = tail.trim_start();
                rest = rest.strip_prefix("[br]").unwrap_or(rest);
            }
        }
    }
    let mut out = rest.replace("[br]", "\n").replace("[BR]", "\n");
    for tag in ["b", "i", "u", "s", "B", "I", "U", "S"] {
        out = out.replace(&format!("[{tag}]"), "").replace(&format!("[/{tag}]"), "");
    }
    (author, out.trim().to_string())
}

/// Operators' answers the portal posted: each stored as an outbound message in the
/// conversation okno named as the chat (once per portal message) before the portal is answered.
pub(super) async fn replies(
    engine: &Engine,
    connector: &Connector,
    cfg: &B24Config,
    name: &str,
    line: i64,
    messages: Vec<OperatorMessage>,
) -> Result<usize> {
    let Some(ol) = &cfg.openlines else { return Ok(0) };
    if ol.connector.as_deref() != Some(name) || ol.line != line {
        return Ok(0);
    }
    let mut stored = 0;
    for m in messages {
        if m.external_chat.is_empty() {
            continue;
        }
        let (operator, mut text) = read_operator_text(&m.text);
        for (file, link) in &m.files {
            let file = if file.is_empty() { "file" } else { file.as_str() };
            text = [text, format!("📎 {file}: {link}")]
                .into_iter()
                .filter(|t| !t.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n");
        }
        let author = match operator {
            Some(o) => format!("Bitrix24: {o}"),
            None => "Bitrix24".to_string(),
        };
        let reply = DeskReply {
            conversation_id: m.external_chat.as_str().into(),
            text,
            author,
            key: format!("{}:{}", m.chat_id, m.message_id),
        };
        match engine.desk_reply(connector, reply).await {
            Ok(_) => stored += 1,
            // A chat okno did not start (an operator wrote first): nothing to answer.
            Err(e) if e.is_not_found() => {
                tracing::warn!(connector = %connector.id, chat = %m.external_chat, "an operator wrote in a chat okno does not know")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(stored)
}

/// How an operator's answer went, told to the portal (`what`: okno's message, the portal's
/// chat and message ids).
pub(super) async fn delivery(
    engine: &Engine,
    connector: &Connector,
    cfg: &B24Config,
    client: &B24Client,
    what: &[&str],
) -> Result<Outcome> {
    let (Some(ol), [message_id, chat_id, im_message_id]) = (&cfg.openlines, what) else { return Ok(Outcome::Done) };
    let (Some(name), Ok(chat_id), Ok(im_message_id)) =
        (&ol.connector, chat_id.parse::<i64>(), im_message_id.parse::<i64>())
    else {
        return Ok(Outcome::Done);
    };
    match engine.desk_delivery(message_id).await? {
        None => return Ok(Outcome::Retry("the answer is still on its way to the person".into())),
        Some(Err(why)) => {
            let detail = json!({"outcome": format!("not delivered: {why}")});
            engine.audit_connector_call(connector, "bitrix24.imconnector.delivery", message_id, detail).await;
            return Ok(Outcome::Done);
        }
        Some(Ok(())) => {}
    }
    let message = engine.store.get_message(&MessageId::from(*message_id)).await?;
    let receipt = Receipt {
        chat_id,
        message_id: im_message_id,
        external_ids: vec![message_id.to_string()],
        external_chat: message.conversation_id.to_string(),
        date: Some(okno_domain::time::now_ms() / 1000),
    };
    let done = client.send_delivery_status(name, ol.line, &[receipt]).await;
    let detail = json!({"outcome": done.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())});
    engine.audit_connector_call(connector, "bitrix24.imconnector.delivery", message_id, detail).await;
    Ok(match done {
        Ok(()) => Outcome::Done,
        Err(e) => outcome(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_operators_signed_text_is_read_apart_from_its_author() {
        assert_eq!(
            read_operator_text("[b]Ольга:[/b] [br]Заказ приедет [b]завтра[/b][br]до 12:00"),
            (Some("Ольга".to_string()), "Заказ приедет завтра\nдо 12:00".to_string())
        );
        assert_eq!(read_operator_text("Просто текст"), (None, "Просто текст".to_string()));
        assert_eq!(read_operator_text("[b]жирный[/b] текст"), (None, "жирный текст".to_string()));
        let c = ConnectorId::from("01F8-ABCD.ef");
        assert_eq!(connector_id(&c), "okno_01f8abcdef");
    }

    proptest! {
        #[test]
        fn any_text_is_read_without_a_panic(text in ".{0,200}") {
            let (author, body) = read_operator_text(&text);
            prop_assert!(author.is_none_or(|a| !a.is_empty()));
            prop_assert!(!body.contains("[br]"));
        }
    }
}
