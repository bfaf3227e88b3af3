//! Which of a person's channels a message goes out on: the rule every sender follows — a
//! reply, a notification, a broadcast, and the next channel after one failed for good.

use crate::ids::ChannelId;
use crate::model::Identity;

/// The identity to reach a person on: their preferred channel, else the one they were last
/// seen on; never a blocked identity or a channel already `tried`.
pub fn next_identity<'a>(
    preferred: Option<&ChannelId>,
    identities: &'a [Identity],
    tried: &[ChannelId],
) -> Option<&'a Identity> {
    let open = |i: &&Identity| !i.blocked && !tried.contains(&i.channel_id);
    preferred
        .and_then(|p| identities.iter().filter(open).find(|i| &i.channel_id == p))
        .or_else(|| identities.iter().filter(open).max_by_key(|i| i.last_seen_at.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChannelKind;

    fn on(channel: &str, seen: Option<i64>, blocked: bool) -> Identity {
        Identity {
            id: format!("i-{channel}").into(),
            contact_id: "c".into(),
            channel_id: channel.into(),
            kind: ChannelKind::Webhook,
            user_id: "u".into(),
            chat_id: "u".into(),
            username: None,
            display_name: None,
            is_group: false,
            blocked,
            opted_out: false,
            last_seen_at: seen,
        }
    }

    #[test]
    fn the_preferred_channel_then_the_latest_seen_never_a_blocked_or_tried_one() {
        let people = [on("tg", Some(10), false), on("max", Some(30), false), on("vk", Some(20), false)];
        let pick = |preferred: Option<&str>, tried: &[&str]| {
            let tried: Vec<ChannelId> = tried.iter().map(|&t| t.into()).collect();
            next_identity(preferred.map(ChannelId::from).as_ref(), &people, &tried).map(|i| i.channel_id.to_string())
        };
        assert_eq!(pick(None, &[]).as_deref(), Some("max"), "the latest seen");
        assert_eq!(pick(Some("tg"), &[]).as_deref(), Some("tg"), "the preferred");
        assert_eq!(pick(Some("tg"), &["tg"]).as_deref(), Some("max"), "the preferred failed: the latest seen");
        assert_eq!(pick(None, &["max", "vk", "tg"]), None, "all tried");
        assert_eq!(pick(Some("gone"), &[]).as_deref(), Some("max"), "a preferred channel they are not on");
        let blocked = [on("tg", Some(50), true), on("vk", None, false)];
        assert_eq!(next_identity(None, &blocked, &[]).map(|i| i.channel_id.as_str()), Some("vk"));
        assert_eq!(next_identity(Some(&"tg".into()), &blocked, &[]).map(|i| i.channel_id.as_str()), Some("vk"));
        assert_eq!(next_identity(None, &[], &[]), None);
    }
}
