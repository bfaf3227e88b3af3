//! People reached by their phone number. A channel that writes to phone numbers (SMS) reaches
//! every contact okno has a number for, not only those who wrote to it: before a notification
//! or a broadcast goes out, each such contact is given an identity on it. Never seen there,
//! that identity comes last in the person's chain — the step a notification falls back to
//! when the messengers fail.

use okno_domain::ids::ContactId;
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::Result;

use crate::Engine;

/// How a phone number names a person on an SMS channel: its digits (`+7 900 123-45-67` →
/// `79001234567`).
pub fn sms_number(phone: &str) -> Option<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 5).then_some(digits)
}

impl Engine {
    /// The channel that reaches people by phone number, if okno has one.
    pub async fn sms_channel(&self) -> Result<Option<Channel>> {
        Ok(self
            .store
            .list_channels()
            .await?
            .into_iter()
            .find(|c| c.kind == ChannelKind::Sms && c.status == "active" && self.platform(c).is_ok()))
    }

    /// Gives the contacts `ids` that have a phone number an identity on the first active SMS
    /// channel, where they have none.
    pub async fn reach_by_phone(&self, ids: &[ContactId]) -> Result<()> {
        let Some(sms) = self.sms_channel().await? else { return Ok(()) };
        for chunk in ids.chunks(500) {
            let people: Vec<(ContactId, String)> = self
                .store
                .get_contacts(chunk)
                .await?
                .into_iter()
                .filter(|c| !c.identities.iter().any(|i| i.channel_id == sms.id))
                .filter_map(|c| Some((c.id.clone(), sms_number(c.phone.as_deref()?)?)))
                .collect();
            self.store.add_phone_identities(&sms.id, people).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_number_is_its_digits() {
        assert_eq!(super::sms_number("+7 (900) 123-45-67").as_deref(), Some("79001234567"));
        assert_eq!(super::sms_number("12"), None);
    }
}
