//! The contact panel beside an open conversation: who the person is (name, phone and email —
//! masked for roles without the right to see them —, the business system's id with a link to
//! its card), where they can be reached (every channel, blocked or unsubscribed), their groups,
//! attributes and other conversations, and a link to the full card.

use std::collections::HashMap;

use okno_domain::model::{Channel, Conversation, Permission, Role};
use okno_store::{ConversationFilter, PageRequest};
use serde_json::{json, Value};

use super::inbox::{display_name, row_view};
use super::{channel_view, short_time};
use crate::AppState;

/// Other conversations of the person the panel lists.
const OTHER_CONVERSATIONS: u32 = 20;

/// The business system's card of a contact: `ui.contact_url` with `{external_id}` filled in
/// (percent-encoded, so an id with `/` or `?` stays one path piece).
pub fn business_url(template: Option<&str>, external_id: Option<&str>) -> Option<String> {
    let (template, id) = (template?, external_id?);
    let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    Some(template.replace("{external_id}", &encoded.replace('+', "%20")))
}

/// The panel of `conv`, whose contact is already masked for the viewer's role.
pub async fn panel_view(
    state: &AppState,
    role: Role,
    conv: &Conversation,
    channels: &HashMap<&str, &Channel>,
) -> okno_domain::Result<Value> {
    let c = &conv.contact;
    let identities: Vec<Value> = c
        .identities
        .iter()
        .map(|i| {
            json!({
                "channel": channel_view(channels.get(i.channel_id.as_str()).copied()),
                "username": i.username, "display_name": i.display_name,
                "blocked": i.blocked, "opted_out": i.opted_out,
                "last_seen": i.last_seen_at.map(short_time),
            })
        })
        .collect();
    let attrs: Vec<(String, String)> = c
        .attrs
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let others = state
        .engine
        .store
        .list_conversations(
            ConversationFilter { contact_id: Some(c.id.clone()), ..Default::default() },
            PageRequest::new(Some(OTHER_CONVERSATIONS + 1), None),
        )
        .await?;
    let others: Vec<Value> = others
        .items
        .iter()
        .filter(|o| o.id != conv.id)
        .take(OTHER_CONVERSATIONS as usize)
        .map(|o| row_view(o, channels, role))
        .collect();
    Ok(json!({
        "id": c.id,
        "name": display_name(c, role),
        "masked": !role.allows(Permission::PersonalData),
        "phone": c.phone,
        "email": c.email,
        "external_id": c.external_id,
        "external_url": business_url(state.ui.contact_url.as_deref(), c.external_id.as_deref()),
        "groups": c.groups,
        "attrs": attrs,
        "identities": identities,
        "others": others,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_business_link_encodes_the_id_as_one_piece() {
        let tpl = Some("https://crm.example.com/contacts/{external_id}/card");
        assert_eq!(
            business_url(tpl, Some("1c 7/ä?x")).as_deref(),
            Some("https://crm.example.com/contacts/1c%207%2F%C3%A4%3Fx/card")
        );
        assert_eq!(business_url(None, Some("1c-7")), None);
        assert_eq!(business_url(tpl, None), None);
    }
}
