//! amoCRM's account webhooks: `application/x-www-form-urlencoded` bodies whose keys are PHP
//! bracket paths (`leads[status][0][id]=…&account[subdomain]=…`), read into a tree and then
//! into the events okno acts on.
//!
//! The tree keeps every key as amoCRM wrote it — numbers included (`[0]`, and `linked_leads_id`
//! keyed by ids) — as object keys; a key given twice keeps the last value; a key that is both
//! a value and a branch (`a=1&a[b]=2`) keeps the branch. Nothing here panics on any input.

use serde_json::{Map, Value};

/// The most pairs one body may hold (a real hook has tens to a few hundred).
const MAX_PAIRS: usize = 10_000;
/// The deepest bracket path read (`leads[status][0][custom_fields][0][values][0][value]` is 7).
const MAX_DEPTH: usize = 12;

/// Why a body is not an amoCRM webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("the body has more than {MAX_PAIRS} fields")]
    TooLarge,
    #[error("`{0}` is not a bracket path amoCRM writes")]
    BadKey(String),
}

/// A form body as a tree of objects and strings.
pub fn tree(body: &[u8]) -> Result<Value, HookError> {
    let mut root = Map::new();
    for (n, (key, value)) in url::form_urlencoded::parse(body).enumerate() {
        if n >= MAX_PAIRS {
            return Err(HookError::TooLarge);
        }
        let path = path_of(&key).ok_or_else(|| HookError::BadKey(key.chars().take(100).collect()))?;
        insert(&mut root, &path, value.into_owned());
    }
    Ok(Value::Object(root))
}

/// `a[b][0]` → `["a", "b", "0"]`; `None` for what is not such a path.
fn path_of(key: &str) -> Option<Vec<String>> {
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return None;
    }
    let mut path = vec![head.to_string()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        path.push(inner[..close].to_string());
        rest = &inner[close + 1..];
        if path.len() > MAX_DEPTH {
            return None;
        }
    }
    Some(path)
}

fn insert(node: &mut Map<String, Value>, path: &[String], value: String) {
    let Some((first, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        if !node.get(first).is_some_and(Value::is_object) {
            node.insert(first.clone(), Value::String(value));
        }
        return;
    }
    let child = node.entry(first.clone()).or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    if let Value::Object(m) = child {
        insert(m, rest, value);
    }
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
        assert_eq!(tree(b"").unwrap(), Value::Object(Map::new()));
        let deep = format!("a{}=1", "[x]".repeat(MAX_DEPTH + 1));
        assert!(tree(deep.as_bytes()).is_err());
    }

    proptest::proptest! {
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
