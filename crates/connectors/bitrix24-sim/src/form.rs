//! PHP's view of parameters: `application/x-www-form-urlencoded` bodies and query strings whose
//! keys are bracket paths (`fields[PHONE][0][VALUE]=…`, `select[]=ID`), read into a JSON tree,
//! and a JSON tree written back as such pairs (the form Bitrix24 posts events in).

use serde_json::{Map, Value};

/// The deepest bracket path read.
const MAX_DEPTH: usize = 16;

/// A form or query string as a tree; `None` when a key is no bracket path.
pub(crate) fn parse(body: &[u8]) -> Option<Map<String, Value>> {
    let mut root = Map::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        let path = path_of(&key)?;
        insert(&mut root, &path, value.into_owned());
    }
    Some(root)
}

/// `a[b][]` → `["a", "b", ""]` (an empty segment appends).
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
    let key = if first.is_empty() { node.len().to_string() } else { first.clone() };
    if rest.is_empty() {
        node.insert(key, Value::String(value));
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

/// A JSON tree as bracket-keyed form pairs, in order: `{"data":{"FIELDS":{"ID":"7"}}}` →
/// `data[FIELDS][ID]=7`; `true`/`false` as `1`/empty, as PHP's `http_build_query` writes them.
pub(crate) fn encode(tree: &Map<String, Value>) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in tree {
        flatten(k, v, &mut f);
    }
    f.finish()
}

fn flatten(key: &str, v: &Value, f: &mut url::form_urlencoded::Serializer<'_, String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                flatten(&format!("{key}[{k}]"), v, f);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{key}[{i}]"), v, f);
            }
        }
        Value::Null => {}
        Value::Bool(b) => {
            f.append_pair(key, if *b { "1" } else { "" });
        }
        Value::Number(n) => {
            f.append_pair(key, &n.to_string());
        }
        Value::String(s) => {
            f.append_pair(key, s);
        }
    }
}

/// The items of a list however it came: a JSON array, or an object keyed `0`, `1`, … (a form).
pub(crate) fn items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => {
            let mut kv: Vec<(&String, &Value)> = m.iter().collect();
            kv.sort_by_key(|(k, _)| k.parse::<u64>().unwrap_or(u64::MAX));
            kv.into_iter().map(|(_, v)| v).collect()
        }
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// A number however it came (`5`, `"5"`).
pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Text however it came (`"a"`, `5`).
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "Y" } else { "N" }.to_string()),
        _ => None,
    }
}

/// A flag however it came (`true`, `1`, `"1"`, `"Y"`, `"true"`).
pub(crate) fn flag(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        Value::String(s) => matches!(s.trim().to_ascii_uppercase().as_str(), "1" | "Y" | "TRUE"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracket_keys_become_a_tree_and_come_back() {
        let t =
            parse(b"event=ONCRMDEALUPDATE&data[FIELDS][ID]=759&select[]=ID&select[]=NAME&auth[application_token]=x")
                .unwrap();
        assert_eq!(t["data"]["FIELDS"]["ID"], "759");
        assert_eq!(items(&t["select"]).len(), 2);
        assert_eq!(parse(encode(&t).as_bytes()).unwrap(), t);
        assert!(parse(b"[a]=1").is_none());
    }
}
