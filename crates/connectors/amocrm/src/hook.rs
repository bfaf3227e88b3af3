//! amoCRM's account webhooks: `application/x-www-form-urlencoded` bodies whose keys are PHP
//! bracket paths (`leads[status][0][id]=…&account[subdomain]=…`), read into a tree and then
//! into the events okno acts on.
//!
//! The tree keeps every key as amoCRM wrote it — numbers included (`[0]`, and `linked_leads_id`
//! keyed by ids) — as object keys; a key given twice keeps the last value; a key that is both
//! a value and a branch (`a=1&a[b]=2`) keeps the branch. Nothing here panics on any input.

use okno_domain::form::{FormError, MAX_PAIRS};
use serde_json::Value;

/// Why a body is not an amoCRM webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("the body has more than {MAX_PAIRS} fields")]
    TooLarge,
    #[error("`{0}` is not a bracket path amoCRM writes")]
    BadKey(String),
}

/// A form body as a tree of objects and strings (see [`okno_domain::form`]).
pub fn tree(body: &[u8]) -> Result<Value, HookError> {
    okno_domain::form::bracket_tree(body).map(Value::Object).map_err(|e| match e {
        FormError::TooLarge => HookError::TooLarge,
        FormError::BadKey(k) => HookError::BadKey(k),
    })
}

/// What okno acts on in a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEvent {
    /// A deal moved to another status (`status_lead`); ids as the hook names them — okno reads
    /// the deal itself before acting.
    LeadStatus { lead_id: i64, status_id: i64, old_status_id: Option<i64>, pipeline_id: Option<i64> },
}

/// The events of a webhook body, in the order amoCRM listed them; entries of kinds okno does
/// not act on are passed over.
pub fn events(body: &[u8]) -> Result<Vec<HookEvent>, HookError> {
    let tree = tree(body)?;
    let int = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).and_then(|s| s.trim().parse::<i64>().ok());
    let mut out = Vec::new();
    if let Some(Value::Object(items)) = tree.pointer("/leads/status") {
        let mut items: Vec<(&String, &Value)> = items.iter().collect();
        items.sort_by_key(|(k, _)| k.parse::<u64>().unwrap_or(u64::MAX));
        for (_, item) in items {
            if let (Some(lead_id), Some(status_id)) = (int(item, "id"), int(item, "status_id")) {
                out.push(HookEvent::LeadStatus {
                    lead_id,
                    status_id,
                    old_status_id: int(item, "old_status_id"),
                    pipeline_id: int(item, "pipeline_id"),
                });
            }
        }
    }
    Ok(out)
}

/// A contact as a webhook describes it (`contacts[add][0][…]`, `contacts[update][0][…]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookContact {
    pub id: i64,
    pub name: String,
    /// The values of the `PHONE` custom field, in order.
    pub phones: Vec<String>,
    /// The values of the `EMAIL` custom field, in order.
    pub emails: Vec<String>,
    pub responsible_user_id: Option<i64>,
    /// Who changed it (0: a robot — an integration writing with `updated_by` 0).
    pub modified_user_id: Option<i64>,
    /// Unix seconds of the change.
    pub last_modified: Option<i64>,
}

/// What happened to a contact (`add_contact`, `update_contact`, `delete_contact`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactEvent {
    Added(HookContact),
    Updated(HookContact),
    Deleted { id: i64 },
}

/// The entries of `node` (an object keyed by indexes, or ids), in their numeric order.
fn entries(node: Option<&Value>) -> Vec<&Value> {
    let Some(Value::Object(items)) = node else { return Vec::new() };
    let mut items: Vec<(&String, &Value)> = items.iter().collect();
    items.sort_by_key(|(k, _)| k.parse::<u64>().unwrap_or(u64::MAX));
    items.into_iter().map(|(_, v)| v).collect()
}

fn int(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_str).and_then(|s| s.trim().parse::<i64>().ok())
}

/// The values of a contact's custom field `code`: `[values][0][value]=…` or `[values][0]=…`.
fn field_values(item: &Value, code: &str) -> Vec<String> {
    entries(item.get("custom_fields"))
        .into_iter()
        .filter(|f| f.get("code").and_then(Value::as_str) == Some(code))
        .flat_map(|f| entries(f.get("values")))
        .filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            other => other.get("value").and_then(Value::as_str).map(str::to_string),
        })
        .collect()
}

fn hook_contact(item: &Value) -> Option<HookContact> {
    if item.get("type").and_then(Value::as_str).is_some_and(|t| t != "contact") {
        return None; // a company: amoCRM sends both under `contacts`.
    }
    Some(HookContact {
        id: int(item, "id")?,
        name: item.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
        phones: field_values(item, "PHONE"),
        emails: field_values(item, "EMAIL"),
        responsible_user_id: int(item, "responsible_user_id"),
        modified_user_id: int(item, "modified_user_id"),
        last_modified: int(item, "last_modified"),
    })
}

/// The contact events of a webhook body: additions, then changes, then deletions, each in the
/// order amoCRM listed them; companies and entries without an id are passed over.
pub fn contact_events(body: &[u8]) -> Result<Vec<ContactEvent>, HookError> {
    let tree = tree(body)?;
    let mut out = Vec::new();
    for item in entries(tree.pointer("/contacts/add")) {
        out.extend(hook_contact(item).map(ContactEvent::Added));
    }
    for item in entries(tree.pointer("/contacts/update")) {
        out.extend(hook_contact(item).map(ContactEvent::Updated));
    }
    for item in entries(tree.pointer("/contacts/delete")) {
        let company = item.get("type").and_then(Value::as_str).is_some_and(|t| t != "contact");
        let id = match item {
            Value::String(s) => s.trim().parse::<i64>().ok(),
            other => int(other, "id"),
        };
        if let (Some(id), false) = (id, company) {
            out.push(ContactEvent::Deleted { id });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `status_lead` body (amoCRM's, as captured in a public test), as sent.
    const CAPTURED: &str = "leads%5Bstatus%5D%5B0%5D%5Bid%5D=10701093&leads%5Bstatus%5D%5B0%5D%5Bname%5D=%D0%A1%D0%B5%D0%BC%D0%B8%D0%BD%D0%B0%D1%80&leads%5Bstatus%5D%5B0%5D%5Bstatus_id%5D=142&leads%5Bstatus%5D%5B0%5D%5Bold_status_id%5D=20067736&leads%5Bstatus%5D%5B0%5D%5Bprice%5D=22500&leads%5Bstatus%5D%5B0%5D%5Bpipeline_id%5D=9217056&leads%5Bstatus%5D%5B0%5D%5Btags%5D%5B0%5D%5Bname%5D=%D0%BF%D0%BE%D0%B2%D1%82%D0%BE%D1%80%D0%BD%D0%BE%D0%B5+%D0%BE%D0%B1%D1%80%D0%B0%D1%89%D0%B5%D0%BD%D0%B8%D0%B5&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B0%5D%5Bvalues%5D%5B0%5D%5Bvalue%5D=%D0%A1%D0%B0%D0%B9%D1%82&leads%5Bstatus%5D%5B0%5D%5Bcustom_fields%5D%5B2%5D%5Bvalues%5D%5B0%5D=1542067200&account%5Bsubdomain%5D=apfitness";

    #[test]
    fn a_captured_status_hook_reads_as_the_deal_s_move() {
        let t = tree(CAPTURED.as_bytes()).unwrap();
        assert_eq!(t["account"]["subdomain"], "apfitness");
        assert_eq!(t["leads"]["status"]["0"]["name"], "Семинар");
        assert_eq!(t["leads"]["status"]["0"]["tags"]["0"]["name"], "повторное обращение");
        // Both shapes of a custom field's value: an object and a bare value.
        assert_eq!(t["leads"]["status"]["0"]["custom_fields"]["0"]["values"]["0"]["value"], "Сайт");
        assert_eq!(t["leads"]["status"]["0"]["custom_fields"]["2"]["values"]["0"], "1542067200");
        assert_eq!(
            events(CAPTURED.as_bytes()).unwrap(),
            vec![HookEvent::LeadStatus {
                lead_id: 10_701_093,
                status_id: 142,
                old_status_id: Some(20_067_736),
                pipeline_id: Some(9_217_056)
            }]
        );
    }

    #[test]
    fn several_deals_keep_their_order_and_other_hooks_are_passed_over() {
        let body = "leads[status][1][id]=2&leads[status][1][status_id]=20&leads[status][0][id]=1&leads[status][0][status_id]=10\
                    &leads[update][0][id]=3&contacts[add][0][id]=4&leads[status][2][name]=no-id";
        let ids: Vec<i64> = events(body.as_bytes())
            .unwrap()
            .into_iter()
            .map(|e| match e {
                HookEvent::LeadStatus { lead_id, .. } => lead_id,
            })
            .collect();
        assert_eq!(ids, vec![1, 2]);
    }

    #[test]
    fn keys_that_are_no_bracket_paths_are_refused() {
        for bad in ["[a]=1", "a[b=1", "a]b[=1", "a[b]c=1", "=1"] {
            assert!(matches!(tree(bad.as_bytes()), Err(HookError::BadKey(_))), "{bad}");
        }
        assert_eq!(tree(b"a=1&a[b]=2&a=3").unwrap()["a"]["b"], "2", "a branch is kept over a value");
        assert_eq!(tree(b"").unwrap(), Value::Object(serde_json::Map::new()));
        let deep = format!("a{}=1", "[x]".repeat(okno_domain::form::MAX_DEPTH + 1));
        assert!(tree(deep.as_bytes()).is_err());
    }

    /// A contact hook as amoCRM writes it: a phone with its numeric enum, an e-mail, deals keyed
    /// by id, then a company under the same key, which okno passes over.
    const CONTACTS: &str = "contacts[update][0][id]=9982719&contacts[update][0][name]=Анна&contacts[update][0][type]=contact\
        &contacts[update][0][responsible_user_id]=504141&contacts[update][0][modified_user_id]=0&contacts[update][0][last_modified]=1700000000\
        &contacts[update][0][custom_fields][0][id]=1&contacts[update][0][custom_fields][0][code]=PHONE\
        &contacts[update][0][custom_fields][0][values][0][value]=%2B79001234567&contacts[update][0][custom_fields][0][values][0][enum]=114611\
        &contacts[update][0][custom_fields][0][values][1][value]=%2B79007654321\
        &contacts[update][0][custom_fields][1][code]=EMAIL&contacts[update][0][custom_fields][1][values][0]=anna%40example.org\
        &contacts[update][0][linked_leads_id][9982719][ID]=9982719\
        &contacts[update][1][id]=5&contacts[update][1][type]=company\
        &contacts[add][0][id]=7&contacts[add][0][name]=Борис&contacts[delete][0][id]=8&contacts[delete][0][type]=contact\
        &contacts[delete][1]=9&account[subdomain]=romashka";

    #[test]
    fn contact_hooks_read_as_added_changed_and_deleted_contacts() {
        let evs = contact_events(CONTACTS.as_bytes()).unwrap();
        let anna = HookContact {
            id: 9_982_719,
            name: "Анна".into(),
            phones: vec!["+79001234567".into(), "+79007654321".into()],
            emails: vec!["anna@example.org".into()],
            responsible_user_id: Some(504_141),
            modified_user_id: Some(0),
            last_modified: Some(1_700_000_000),
        };
        let boris = HookContact {
            id: 7,
            name: "Борис".into(),
            phones: vec![],
            emails: vec![],
            responsible_user_id: None,
            modified_user_id: None,
            last_modified: None,
        };
        assert_eq!(
            evs,
            vec![
                ContactEvent::Added(boris),
                ContactEvent::Updated(anna),
                ContactEvent::Deleted { id: 8 },
                ContactEvent::Deleted { id: 9 }
            ]
        );
        assert!(events(CONTACTS.as_bytes()).unwrap().is_empty(), "no deal moved");
        assert!(contact_events(CAPTURED.as_bytes()).unwrap().is_empty(), "no contact in a deal's hook");
    }

    proptest::proptest! {
        /// Any bytes: contact events or a clear error, never a panic.
        #[test]
        fn any_body_is_read_or_refused_as_contacts(body in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = contact_events(&body);
        }

        /// Any form of bracket keys under `contacts[…]`: read or refused, never a panic, and
        /// every contact read has the id it was given.
        #[test]
        fn contact_shaped_bodies_never_panic(
            pairs in proptest::collection::vec(("(add|update|delete)", 0u8..3, "(id|name|type|custom_fields\\]\\[0\\]\\[code|custom_fields\\]\\[0\\]\\[values\\]\\[0)", "\\PC{0,12}"), 0..20)
        ) {
            let mut f = url::form_urlencoded::Serializer::new(String::new());
            for (action, i, key, value) in &pairs {
                f.append_pair(&format!("contacts[{action}][{i}][{key}]"), value);
            }
            let body = f.finish();
            for e in contact_events(body.as_bytes()).unwrap() {
                let id = match e {
                    ContactEvent::Added(c) | ContactEvent::Updated(c) => c.id,
                    ContactEvent::Deleted { id } => id,
                };
                let given = pairs.iter().any(|(_, _, k, v)| k == "id" && v.trim().parse::<i64>() == Ok(id));
                proptest::prop_assert!(given, "{id} was not in {body}");
            }
        }

        /// A contact written with any name, phones and e-mails reads back as written.
        #[test]
        fn well_formed_contact_hooks_read_back(
            id in 1i64..1_000_000_000,
            name in "\\PC{0,30}",
            phones in proptest::collection::vec("\\+7[0-9]{10}", 0..4),
            emails in proptest::collection::vec("[a-z]{1,8}@[a-z]{1,8}\\.ru", 0..3),
        ) {
            let mut f = url::form_urlencoded::Serializer::new(String::new());
            f.append_pair("contacts[add][0][id]", &id.to_string());
            f.append_pair("contacts[add][0][name]", &name);
            for (i, p) in phones.iter().enumerate() {
                f.append_pair(&format!("contacts[add][0][custom_fields][0][values][{i}][value]"), p);
            }
            f.append_pair("contacts[add][0][custom_fields][0][code]", "PHONE");
            for (i, e) in emails.iter().enumerate() {
                f.append_pair(&format!("contacts[add][0][custom_fields][1][values][{i}][value]"), e);
            }
            f.append_pair("contacts[add][0][custom_fields][1][code]", "EMAIL");
            let evs = contact_events(f.finish().as_bytes()).unwrap();
            let want = HookContact { id, name, phones, emails, responsible_user_id: None, modified_user_id: None, last_modified: None };
            proptest::prop_assert_eq!(evs, vec![ContactEvent::Added(want)]);
        }

        /// Any bytes: a tree or a clear error, never a panic; every event read names a deal.
        #[test]
        fn any_body_is_read_or_refused(body in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            if let Ok(evs) = events(&body) {
                for HookEvent::LeadStatus { .. } in evs {}
            }
        }

        /// Bodies made of bracket paths always read, and a deal's id and status come back.
        #[test]
        fn well_formed_hooks_read_back(id in 1i64..1_000_000_000, status in 1i64..100_000, name in "\\PC{0,40}") {
            let mut f = url::form_urlencoded::Serializer::new(String::new());
            f.append_pair("leads[status][0][id]", &id.to_string());
            f.append_pair("leads[status][0][name]", &name);
            f.append_pair("leads[status][0][status_id]", &status.to_string());
            let body = f.finish();
            let evs = events(body.as_bytes()).unwrap();
            proptest::prop_assert_eq!(evs, vec![HookEvent::LeadStatus { lead_id: id, status_id: status, old_status_id: None, pipeline_id: None }]);
        }
    }
}
