//! Link codes: a person sends `/start CODE` (a deep link opened) or types the code, and their
//! messenger account joins the contact the code was made for; okno answers either way.

use okno_domain::ids::ContactId;
use okno_domain::model::Channel;
use okno_domain::Result;
use okno_store::{InboundSender, LinkOutcome, OutboundRequest, Recipient};
use serde_json::json;

use crate::Engine;

impl Engine {
    /// Redeems a link code and answers the person.
    pub(super) async fn link(
        &self,
        channel: &Channel,
        code: &str,
        explicit: bool,
        sender: InboundSender,
        contact_id: &ContactId,
    ) -> Result<()> {
        let outcome = self.store.redeem_link_code(code, &channel.id, sender).await?;
        // A typed word that merely looks like a code (an order number…) is an ordinary message.
        if outcome == LinkOutcome::Unknown && !explicit {
            return Ok(());
        }
        let (to, text) = match outcome {
            LinkOutcome::Linked(contact) => {
                let name = contact.name.clone().unwrap_or_default();
                let text = if name.is_empty() {
                    "Готово! Ваш аккаунт связан.".to_string()
                } else {
                    format!("Готово! Ваш аккаунт связан: {name}.")
                };
                (contact.id.clone(), text)
            }
            LinkOutcome::Expired => (contact_id.clone(), "Срок действия кода истёк. Попросите новый код.".into()),
            LinkOutcome::AlreadyUsed => (contact_id.clone(), "Этот код уже использован. Попросите новый код.".into()),
            LinkOutcome::Unknown => (contact_id.clone(), "Код не найден. Проверьте его или попросите новый.".into()),
        };
        self.send(OutboundRequest {
            to: Recipient::Contact(to),
            channel_id: Some(channel.id.clone()),
            text: Some(text),
            buttons: Vec::new(),
            attachment_ids: Vec::new(),
            idempotency_key: None,
            author: Some("okno".into()),
            reply_to: None,
            options: json!({}),
        })
        .await?;
        Ok(())
    }
}

/// A link code in a private message: `/start CODE` from a deep link (`true`: explicit), or the
/// bare code typed in.
pub(super) fn link_code(text: &str) -> Option<(String, bool)> {
    let (code, explicit) = okno_store::start_payload(text).map(|c| (c, true)).unwrap_or((text.trim(), false));
    okno_store::is_link_code(code).then(|| (code.to_string(), explicit))
}
