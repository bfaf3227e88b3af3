//! People reached by an address okno keeps on their contact: a phone number (SMS) or an
//! e-mail address. A channel that writes to such addresses reaches every contact okno has
//! one for, not only those who wrote to it: before a notification or a broadcast goes out,
//! each such contact is given an identity on it. Never seen there, that identity comes last in
//! the person's chain — the step a notification falls back to when the messengers fail.

use okno_domain::ids::ContactId;
use okno_domain::model::{Channel, ChannelKind, Contact};
use okno_domain::Result;

use crate::Engine;

/// How a phone number names a person on an SMS channel: its digits (`+7 900 123-45-67` →
/// `79001234567`).
pub fn sms_number(phone: &str) -> Option<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 5).then_some(digits)
}

/// How an e-mail address names a person on an e-mail channel: trimmed, in lower case, as the
/// channel reads a sender.
pub fn mail_address(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.rsplit_once('@')?;
    (!local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace)).then_some(email)
}

/// A contact's address as a channel names people, if they have one.
type AddressOf = fn(&Contact) -> Option<String>;

/// The kinds of channel that write to an address a contact keeps, and that address.
const BY_ADDRESS: [(ChannelKind, AddressOf); 2] = [
    (ChannelKind::Sms, |c| sms_number(c.phone.as_deref()?)),
    (ChannelKind::Email, |c| mail_address(c.email.as_deref()?)),
];

impl Engine {
    /// The first active channel of `kind`, if okno has one.
    async fn first_active(&self, kind: ChannelKind) -> Result<Option<Channel>> {
        Ok(self
            .store
            .list_channels()
            .await?
            .into_iter()
            .find(|c| c.kind == kind && c.status == "active" && self.platform(c).is_ok()))
    }

    /// The channel that reaches people by phone number, if okno has one.
    pub async fn sms_channel(&self) -> Result<Option<Channel>> {
        self.first_active(ChannelKind::Sms).await
    }

    /// The channel that reaches people by e-mail address, if okno has one.
    pub async fn email_channel(&self) -> Result<Option<Channel>> {
        self.first_active(ChannelKind::Email).await
    }

    /// Gives the contacts `ids` that have a phone number an identity on the first active SMS
    /// channel, and those with an e-mail address one on the first active e-mail channel,
    /// where they have none.
    pub async fn reach_by_address(&self, ids: &[ContactId]) -> Result<()> {
        for (kind, address) in BY_ADDRESS {
            let Some(channel) = self.first_active(kind).await? else { continue };
            for chunk in ids.chunks(500) {
                let people: Vec<(ContactId, String)> = self
                    .store
                    .get_contacts(chunk)
                    .await?
                    .into_iter()
                    .filter(|c| !c.identities.iter().any(|i| i.channel_id == channel.id))
                    .filter_map(|c| Some((c.id.clone(), address(&c)?)))
                    .collect();
                self.store.add_address_identities(&channel.id, people).await?;
            }
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

    #[test]
    fn an_address_is_lowercased_and_checked() {
        assert_eq!(super::mail_address(" Anna@Shop.Test ").as_deref(), Some("anna@shop.test"));
        for bad in ["anna", "@shop.test", "anna@localhost", "an na@shop.test"] {
            assert_eq!(super::mail_address(bad), None, "{bad}");
        }
    }
}
