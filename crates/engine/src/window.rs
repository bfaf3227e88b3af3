//! The customer-service window. Some platforms let a business write freely only for a while
//! after the person last wrote (WhatsApp: 24 hours, declared by the platform as
//! `Capabilities::service_window`); outside it only a pre-approved template may go out.
//!
//! okno knows per identity when the window closes (the person's last message opens it again),
//! and acts on it twice:
//! - **up front**, when a message is queued: free text to a person whose window is closed is
//!   refused with the reason (`window_closed`), so the operator or integrator picks a template
//!   instead of watching the send fail;
//! - **at hand-over**, when the worker sends: a message that names a template goes out as the
//!   template (`window_closed` in its options tells the adapter); one without is failed with
//!   the reason, and a notification steps on to the person's next channel.

use std::time::Duration;

use okno_channel::Capabilities;
use okno_domain::ids::{ChannelId, ConversationId};
use okno_domain::model::{Identity, TemplateRef};
use okno_domain::time::Millis;
use okno_domain::{Error, Result};
use okno_store::{OutboundRequest, Recipient};
use serde::Serialize;

use crate::Engine;

/// Where a person's window stands on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub open: bool,
    /// When it closes (closed: when it closed); `None` when the person never wrote.
    pub closes_at: Option<Millis>,
}

impl Window {
    /// The window of `identity` at `now`; `None` on platforms without one.
    pub fn of(caps: &Capabilities, identity: &Identity, now: Millis) -> Option<Window> {
        let length = caps.service_window?;
        let closes_at = identity.last_seen_at.map(|seen| seen.saturating_add(millis(length)));
        Some(Window { open: closes_at.is_some_and(|at| now < at), closes_at })
    }

    /// Why free text cannot go out now.
    pub fn refusal(&self, platform: &str) -> String {
        let when = match self.closes_at {
            Some(at) => format!(" (it closed at {})", okno_domain::time::to_rfc3339(at)),
            None => " (the person has not written yet)".to_string(),
        };
        format!(
            "the customer-service window of {platform} is closed{when}: outside it only an approved template may be sent — name one in `template`"
        )
    }
}

fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// Checks a template against the ones registered on a channel (`templates` in its
/// configuration: `[{"name", "language", "params": ["order", "date"]}]`); a channel that
/// registers none takes any.
pub fn check_registered(config: &serde_json::Value, t: &TemplateRef) -> Result<()> {
    let Some(list) = config.get("templates").and_then(|v| v.as_array()).filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    let found = list.iter().find(|r| {
        r.get("name").and_then(|v| v.as_str()) == Some(t.name.as_str())
            && r.get("language").and_then(|v| v.as_str()) == Some(t.language.as_str())
    });
    let Some(found) = found else {
        let known: Vec<String> = list
            .iter()
            .filter_map(|r| Some(format!("{} ({})", r.get("name")?.as_str()?, r.get("language")?.as_str()?)))
            .collect();
        return Err(Error::unprocessable(
            "unknown_template",
            format!("the channel has no template `{}` in `{}`; it has: {}", t.name, t.language, known.join(", ")),
        ));
    };
    let wanted = found.get("params").and_then(|p| p.as_array()).map_or(0, Vec::len);
    if wanted != t.params.len() {
        return Err(Error::unprocessable(
            "template_params",
            format!("template `{}` takes {wanted} parameter(s), {} given", t.name, t.params.len()),
        ));
    }
    Ok(())
}

/// The template a request names, if any.
pub fn template_of(req: &OutboundRequest) -> Option<TemplateRef> {
    serde_json::from_value(req.options.get(okno_domain::channel::TEMPLATE_OPTION)?.clone()).ok()
}

impl Engine {
    /// The window of the identity a conversation's replies go to (or `channel_id`'s), if its
    /// platform has one.
    pub async fn conversation_window(
        &self,
        conversation_id: &ConversationId,
        channel_id: Option<&ChannelId>,
    ) -> Result<Option<Window>> {
        let conv = self.store.get_conversation(conversation_id).await?;
        let Some(channel_id) = channel_id.cloned().or(conv.last_inbound_channel_id.clone()) else {
            return Ok(None);
        };
        let Some(identity) = conv.contact.identities.iter().find(|i| i.channel_id == channel_id) else {
            return Ok(None);
        };
        let channel = self.channel(&channel_id).await?;
        Ok(Window::of(&self.capabilities(&channel)?, identity, okno_domain::time::now_ms()))
    }

    /// Refuses free text to a person whose window is closed, before it is queued. Requests
    /// whose channel okno picks later (a contact without a channel, an external id) are
    /// checked at hand-over instead.
    pub(crate) async fn check_window(&self, req: &OutboundRequest) -> Result<()> {
        let (conv, channel) = match &req.to {
            Recipient::Conversation(id) => (id.clone(), req.channel_id.clone()),
            _ => return Ok(()),
        };
        if !self.any_window().await? {
            return Ok(());
        }
        if let Some(t) = template_of(req) {
            // A template the channel's list does not hold would only fail at the platform.
            let conversation = self.store.get_conversation(&conv).await?;
            if let Some(ch) = channel.clone().or(conversation.last_inbound_channel_id) {
                let channel = self.channel(&ch).await?;
                check_registered(&channel.config, &t)?;
            }
            return Ok(());
        }
        match self.conversation_window(&conv, channel.as_ref()).await? {
            Some(w) if !w.open => {
                let conv = self.store.get_conversation(&conv).await?;
                let title = match channel.or(conv.last_inbound_channel_id) {
                    Some(id) => self.channel(&id).await.ok().and_then(|c| self.platform(&c).ok().map(|p| p.title())),
                    None => None,
                };
                Err(Error::unprocessable("window_closed", w.refusal(title.unwrap_or("this platform"))))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use okno_channel::{TextLimit, TextUnit};
    use okno_domain::model::ChannelKind;

    use super::*;

    fn seen(at: Option<Millis>) -> Identity {
        Identity {
            id: "i".into(),
            contact_id: "c".into(),
            channel_id: "wa".into(),
            kind: ChannelKind::Whatsapp,
            user_id: "79001234567".into(),
            chat_id: "79001234567".into(),
            username: None,
            display_name: None,
            is_group: false,
            blocked: false,
            opted_out: false,
            last_seen_at: at,
        }
    }

    #[test]
    fn a_template_must_be_one_the_channel_registered_with_its_parameters() {
        let t = |name: &str, n: usize| TemplateRef {
            name: name.into(),
            language: "ru".into(),
            params: vec!["x".into(); n],
        };
        let config =
            serde_json::json!({"templates": [{"name": "order_update", "language": "ru", "params": ["order", "date"]}]});
        assert!(check_registered(&config, &t("order_update", 2)).is_ok());
        assert_eq!(check_registered(&config, &t("order_update", 1)).unwrap_err().code, "template_params");
        let unknown = check_registered(&config, &t("promo", 0)).unwrap_err();
        assert_eq!(unknown.code, "unknown_template");
        assert!(unknown.message.contains("order_update (ru)"), "{}", unknown.message);
        assert!(check_registered(&serde_json::json!({}), &t("anything", 3)).is_ok(), "none registered: any goes");
    }

    #[test]
    fn the_window_closes_a_day_after_the_persons_last_message() {
        let mut caps = Capabilities::text_only(TextLimit { max: 4096, unit: TextUnit::Chars });
        assert_eq!(Window::of(&caps, &seen(Some(0)), 1), None, "no window on this platform");
        caps.service_window = Some(Duration::from_secs(24 * 3600));
        let day = 24 * 3600 * 1000;
        let open = Window::of(&caps, &seen(Some(1_000)), 1_000 + day - 1).unwrap();
        assert_eq!(open, Window { open: true, closes_at: Some(1_000 + day) });
        let closed = Window::of(&caps, &seen(Some(1_000)), 1_000 + day).unwrap();
        assert!(!closed.open);
        assert!(closed.refusal("WhatsApp").contains("closed at 1970-01-02T00:00:01"), "{}", closed.refusal("WhatsApp"));
        let never = Window::of(&caps, &seen(None), 5).unwrap();
        assert_eq!(never, Window { open: false, closes_at: None });
    }
}
