//! What a message to many people costs before it goes: on platforms that charge by the part
//! (SMS segments), each person's channel is worked out the way the sender will pick it, and
//! the text's parts are counted the platform's way ([`okno_channel::Platform::estimate`]).

use std::collections::BTreeMap;

use okno_domain::ids::{ChannelId, ContactId};
use okno_domain::routing::next_identity;
use okno_domain::Result;
use serde::Serialize;

use crate::Engine;

/// The cost of a text to an audience on one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelEstimate {
    pub channel_id: ChannelId,
    pub channel_name: String,
    pub kind: String,
    /// People of the audience this channel reaches.
    pub people: usize,
    /// Parts the text goes out as, per person (SMS segments).
    pub parts: u32,
    pub encoding: String,
    /// `people × parts`.
    pub total_parts: u64,
    pub price_per_part: Option<f64>,
    /// `total_parts × price_per_part`, when the channel names a price.
    pub cost: Option<f64>,
    pub currency: Option<String>,
}

/// People per channel, and those no channel reaches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub people: usize,
    /// Channels that charge by the part (others are left out: one message each).
    pub channels: Vec<ChannelEstimate>,
    /// People no channel reaches.
    pub unreachable: usize,
}

impl Engine {
    /// How `text` to the contacts `ids` goes out, on channels that charge by the part. The
    /// text is counted as written: personal fields make one person's text longer or shorter.
    pub async fn estimate(&self, ids: &[ContactId], text: &str) -> Result<Estimate> {
        let mut per_channel: BTreeMap<ChannelId, usize> = BTreeMap::new();
        let mut unreachable = 0;
        // A person with only a phone number is reached by SMS, one with only an e-mail
        // address by e-mail (`addresses`).
        let sms = self.sms_channel().await?.map(|c| c.id);
        let email = self.email_channel().await?.map(|c| c.id);
        for chunk in ids.chunks(500) {
            for c in self.store.get_contacts(chunk).await? {
                let by_phone =
                    || sms.clone().filter(|_| c.phone.as_deref().and_then(crate::addresses::sms_number).is_some());
                let by_email =
                    || email.clone().filter(|_| c.email.as_deref().and_then(crate::addresses::mail_address).is_some());
                match next_identity(c.preferred_channel_id.as_ref(), &c.identities, &[]).map(|i| i.channel_id.clone()) {
                    Some(channel) => *per_channel.entry(channel).or_default() += 1,
                    None => match by_phone().or_else(by_email) {
                        Some(channel) => *per_channel.entry(channel).or_default() += 1,
                        None => unreachable += 1,
                    },
                }
            }
        }
        let mut channels = Vec::new();
        for (channel_id, people) in per_channel {
            let Ok(channel) = self.channel(&channel_id).await else { continue };
            let Ok(platform) = self.platform(&channel) else { continue };
            let Some(e) = platform.estimate(&channel.config, text) else { continue };
            let total_parts = people as u64 * u64::from(e.parts);
            channels.push(ChannelEstimate {
                channel_id,
                channel_name: channel.name.clone(),
                kind: channel.kind.to_string(),
                people,
                parts: e.parts,
                encoding: e.encoding,
                total_parts,
                price_per_part: e.price_per_part,
                cost: e.price_per_part.map(|p| (p * total_parts as f64 * 100.0).round() / 100.0),
                currency: e.currency,
            });
        }
        Ok(Estimate { people: ids.len(), channels, unreachable })
    }
}
