//! Link codes: a one-time code an operator hands a person (as a deep link or to type in) so
//! that the messenger account they write from is attached to the business system's contact for
//! them. A contact okno made on its own when the person first wrote is merged into that one.

use async_trait::async_trait;
use okno_domain::ids::{new_id, ChannelId, ContactId};
use okno_domain::time::now_ms;
use okno_domain::Result;
use serde_json::json;

use crate::audit::write_audit;
use crate::channels::load_channel;
use crate::contacts::{contact_event, load_contact, merge};
use crate::db::{args, Conn};
use crate::sql::{on, SqlStore};
use crate::{InboundSender, LinkCode, LinkOutcome, NewAudit};

/// Linking people to business contacts.
#[async_trait]
pub trait LinkCodeStore: Send + Sync + 'static {
    /// A new one-time code for `contact_id`, valid for `ttl_ms`; `audit`, when given, is
    /// written in the same transaction.
    async fn create_link_code(&self, contact_id: &ContactId, ttl_ms: i64, audit: Option<NewAudit>) -> Result<LinkCode>;
    /// Redeems a code for the person `sender` on `channel_id`. A contact okno made on its own
    /// for that person (no external id) is merged into the linked one.
    async fn redeem_link_code(&self, code: &str, channel_id: &ChannelId, sender: InboundSender) -> Result<LinkOutcome>;
}

#[async_trait]
impl LinkCodeStore for SqlStore {
    async fn create_link_code(&self, contact_id: &ContactId, ttl_ms: i64, audit: Option<NewAudit>) -> Result<LinkCode> {
        let contact_id = contact_id.to_owned();
        on!(self.write, |c| {
            load_contact(c, &contact_id).await?;
            let code = link_code();
            let now = now_ms();
            c.exec(
                "INSERT INTO link_codes (code, contact_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
                args![&code, &contact_id, now + ttl_ms, now],
            )
            .await?;
            write_audit(c, audit.as_ref()).await?;
            Ok(LinkCode { code, contact_id, expires_at: now + ttl_ms })
        })
    }

    async fn redeem_link_code(&self, code: &str, channel_id: &ChannelId, sender: InboundSender) -> Result<LinkOutcome> {
        let code = code.trim().to_uppercase();
        let channel_id = channel_id.to_owned();
        on!(self.write, |c| {
            let Some(row) =
                c.row("SELECT contact_id, expires_at, used_at FROM link_codes WHERE code = $1", args![&code]).await?
            else {
                return Ok(LinkOutcome::Unknown);
            };
            if row.oi("used_at")?.is_some() {
                return Ok(LinkOutcome::AlreadyUsed);
            }
            let now = now_ms();
            if row.i("expires_at")? < now {
                return Ok(LinkOutcome::Expired);
            }
            let target = row.s("contact_id")?;
            c.exec("UPDATE link_codes SET used_at = $1 WHERE code = $2", args![now, &code]).await?;
            let current = c
                .row(
                    "SELECT contact_id FROM identities WHERE channel_id = $1 AND user_id = $2",
                    args![&channel_id, &sender.user_id],
                )
                .await?
                .map(|r| r.s("contact_id"))
                .transpose()?;
            match current {
                Some(prev) if prev == target => {}
                Some(prev) => {
                    let prev_contact = load_contact(c, &prev).await?;
                    if prev_contact.external_id.is_none() {
                        // okno made that contact when the person first wrote: fold it in.
                        merge(c, &target, &prev).await?;
                    } else {
                        c.exec(
                            "UPDATE identities SET contact_id = $1 WHERE channel_id = $2 AND user_id = $3",
                            args![&target, &channel_id, &sender.user_id],
                        )
                        .await?;
                    }
                }
                None => {
                    load_channel(c, &channel_id).await?;
                    c.exec(
                        "INSERT INTO identities (id, contact_id, channel_id, user_id, chat_id, username, display_name, \
                         last_seen_at, created_at, is_group) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
                        args![
                            new_id(),
                            &target,
                            &channel_id,
                            &sender.user_id,
                            &sender.chat_id,
                            &sender.username,
                            &sender.display_name,
                            now,
                            i64::from(sender.is_group)
                        ],
                    )
                    .await?;
                }
            }
            let contact = contact_event(c, &target, json!({"linked_channel_id": channel_id})).await?;
            Ok(LinkOutcome::Linked(Box::new(contact)))
        })
    }
}

/// Eight characters people can read out and type without confusing 0/O or 1/I, at least one a
/// digit so an ordinary word is never taken for a code.
fn link_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    loop {
        let bytes = okno_domain::ids::random_hex(8);
        let code: String = bytes
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                let v = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("00"), 16).unwrap_or(0);
                ALPHABET[usize::from(v) % ALPHABET.len()] as char
            })
            .collect();
        if is_link_code(&code) {
            return code;
        }
    }
}

/// Whether a message carries a link code: `/start CODE` (a deep link) or the bare code.
pub fn holds_link_code(text: &str) -> bool {
    let t = text.trim();
    is_link_code(start_payload(t).unwrap_or(t))
}

/// A `/start PAYLOAD` command's payload: what a deep link to a bot carries (`/start@bot PAYLOAD`
/// in a group).
pub fn start_payload(text: &str) -> Option<&str> {
    let rest = text.trim().strip_prefix("/start")?;
    let rest = rest.strip_prefix('@').map_or(rest, |r| r.split_once(' ').map_or("", |(_, p)| p));
    let payload = rest.trim();
    (!payload.is_empty()).then_some(payload)
}

/// Whether a text has the shape of a link code (what a person would send bare).
pub fn is_link_code(text: &str) -> bool {
    let t = text.trim();
    t.len() == 8
        && t.chars().all(|ch| ch.is_ascii_alphanumeric())
        && t.chars().any(|ch| ch.is_ascii_digit())
        && t.chars().any(|ch| ch.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_payloads_and_link_codes_are_read() {
        assert_eq!(start_payload("/start ABC123"), Some("ABC123"));
        assert_eq!(start_payload("/start@shop_bot ABC123"), Some("ABC123"));
        assert_eq!(start_payload("/start"), None);
        assert_eq!(start_payload("/start@shop_bot"), None);
        assert_eq!(start_payload("hello"), None);
        assert!(holds_link_code("/start AB12CD34"));
        assert!(holds_link_code(" ab12cd34 "));
        assert!(!holds_link_code("/start task-1"));
        assert!(!holds_link_code("ABCDEFGH"));
    }
}
