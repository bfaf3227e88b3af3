//! Linking a contact to a person's messenger: a one-time code, and for every channel whose
//! platform makes one, the deep link that opens a chat carrying the code. The API's
//! `POST /api/v1/contacts/{id}/link` and the contact card in the web UI both start one here.

use okno_domain::ids::{ChannelId, ContactId};
use okno_domain::time::Millis;
use okno_domain::Result;
use okno_store::NewAudit;
use serde_json::json;

use crate::Engine;

/// How long a link code stays valid unless the caller says otherwise: seven days.
pub const LINK_TTL_MS: i64 = 7 * 24 * 3_600_000;

/// A started link: the code and where the person can use it.
#[derive(Debug, Clone)]
pub struct LinkOffer {
    pub code: String,
    pub expires_at: Millis,
    pub links: Vec<DeepLink>,
}

/// A link that opens one bot with the code.
#[derive(Debug, Clone)]
pub struct DeepLink {
    pub channel_id: ChannelId,
    pub channel_name: String,
    /// The bot's username.
    pub bot: String,
    pub url: String,
}

impl Engine {
    /// A one-time link code for `contact_id`, valid for `ttl_ms`, with a deep link per channel
    /// whose platform makes one (a bot whose name is not known yet has none). Started `by` an operator
    /// (`operator:<login>`), the audit line `contact.link_code` is written with the code.
    pub async fn link_offer(&self, contact_id: &ContactId, ttl_ms: i64, by: Option<&str>) -> Result<LinkOffer> {
        let audit = by.map(|actor| NewAudit {
            actor: actor.to_string(),
            action: "contact.link_code".into(),
            target: contact_id.to_string(),
            detail: json!({"valid_for_ms": ttl_ms}),
        });
        let code = self.store.create_link_code(contact_id, ttl_ms, audit).await?;
        let links = self
            .store
            .list_channels()
            .await?
            .into_iter()
            .filter_map(|ch| {
                let url = self.platform(&ch).ok()?.deep_link(&ch, &code.code)?;
                let bot = ch.info.get("username").and_then(|u| u.as_str()).unwrap_or_default().to_string();
                Some(DeepLink { channel_id: ch.id, channel_name: ch.name, bot, url })
            })
            .collect();
        Ok(LinkOffer { code: code.code, expires_at: code.expires_at, links })
    }
}
