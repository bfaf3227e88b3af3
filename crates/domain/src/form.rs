//! PHP's view of a form: `application/x-www-form-urlencoded` bodies whose keys are bracket paths
//! (`leads[status][0][id]=…`, `data[FIELDS][ID]=…`, `select[]=ID`), read into a JSON tree — what
//! amoCRM's and Bitrix24's webhooks post.
//!
//! Every key is kept as written — numbers included (`[0]`, ids) — as an object key; `a[]`
//! appends (the next free index); a key given twice keeps the last value; a key that is both a
//! value and a branch (`a=1&a[b]=2`) keeps the branch. Nothing here panics on any input.

use serde_json::{Map, Value};

/// The most pairs one body may hold (a real webhook has tens to a few hundred).
pub const MAX_PAIRS: usize = 10_000;
/// The deepest bracket path read (`data[MESSAGES][0][message][files][0][name]` is 6).
pub const MAX_DEPTH: usize = 16;

/// Why a body is not a bracket-keyed form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the body has more than {MAX_PAIRS} fields")]
    TooLarge,
    #[error("`{0}` is not a bracket path")]
    BadKey(String),
}

/// A form body as a tree of objects and strings.
pub fn bracket_tree(body: &[u8]) -> Result<Map<String, Value>, FormError> {
    let mut root = Map::new();
    for (n, (key, value)) in url::form_urlencoded::parse(body).enumerate() {
        if n >= MAX_PAIRS {
            return Err(FormError::TooLarge);
        }
        let path = bracket_path(&key).ok_or_else(|| FormError::BadKey(key.chars().take(100).collect()))?;
        insert(&mut root, &path, value.into_owned());
    }
    Ok(root)
}

/// `a[b][0]` → `["a", "b", "0"]` (`a[]` → `["a", ""]`); `None` for what is not such a path.
pub fn bracket_path(key: &str) -> Option<Vec<String>> {
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
    let key = if first.is_empty() { node.len().to_string() } else { first.clone() };
    if rest.is_empty() {
        if !node.get(&key).is_some_and(Value::is_object) {
            node.insert(key, Value::String(value));
        }
        return;
    }
    let child = node.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    if let Value::Object(m) = child {
        insert(m, rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bracket_keys_make_a_tree() {
        let t =
            bracket_tree(b"leads[status][0][id]=7&leads[status][0][status_id]=20&select[]=ID&select[]=NAME&a=1&a[b]=2")
                .unwrap();
        assert_eq!(
            Value::Object(t),
            json!({"leads": {"status": {"0": {"id": "7", "status_id": "20"}}},
                                            "select": {"0": "ID", "1": "NAME"}, "a": {"b": "2"}})
        );
        assert!(bracket_tree(b"[x]=1").is_err());
        assert!(bracket_tree(b"a[b=1").is_err());
        let deep = format!("a{}=1", "[x]".repeat(MAX_DEPTH));
        assert_eq!(
            bracket_tree(deep.as_bytes()),
            Err(FormError::BadKey(deep[..deep.len() - 2].chars().take(100).collect()))
        );
        let many = "a=1&".repeat(MAX_PAIRS + 1);
        assert_eq!(bracket_tree(many.as_bytes()), Err(FormError::TooLarge));
    }

    proptest::proptest! {
        #[test]
        fn any_body_is_read_or_refused_without_a_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = bracket_tree(&body);
        }
    }
}
