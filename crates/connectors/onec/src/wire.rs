//! 1C's OData wire format as okno reads and writes it: query strings 1C parses (spaces as
//! `%20`, never `+`), filter literals, JSON pages (`{"odata.metadata", "value": [...]}`) and
//! error bodies (`{"odata.error": {"code", "message": {"lang", "value"}}}`).
//!
//! Everything here takes text from outside; bad input is an error, never a panic.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{Map, Value};

/// One object of an entity set, as 1C wrote it.
pub type Record = Map<String, Value>;

/// The most objects one page may hold (1C has no limit; okno asks for at most this many).
pub const MAX_PAGE: usize = 5_000;

/// What is percent-encoded in a query value. 1C decodes `%XX` but reads `+` as a plus, so a
/// space must go as `%20` — and a `+` as `%2B`, an `&` or `=` escaped; Cyrillic goes as UTF-8.
const QUERY_VALUE: &AsciiSet =
    &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'%').add(b'&').add(b'+').add(b'<').add(b'=').add(b'>').add(b'`');

/// What is percent-encoded in a path segment (an entity set's name, Cyrillic included).
const PATH_SEGMENT: &AsciiSet = &QUERY_VALUE.add(b'/').add(b'?').add(b'{').add(b'}');

/// An entity set's name in a URL path: `Catalog_Контрагенты` → `Catalog_%D0%9A…`.
pub fn path_segment(name: &str) -> String {
    utf8_percent_encode(name, PATH_SEGMENT).to_string()
}

/// A query string from `(name, value)` pairs, each value percent-encoded the way 1C reads it.
pub fn query_string(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE))).collect::<Vec<_>>().join("&")
}

/// A string literal for `$filter`: `'…'` with a quote doubled.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Whether `text` is a GUID as 1C writes `Ref_Key` (`8-4-4-4-12` hex digits).
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `Ref_Key eq guid'…' or Ref_Key eq guid'…'` for these keys (each checked to be a GUID, so
/// nothing else can reach the filter).
pub fn keys_filter(keys: &[&str]) -> Result<String, String> {
    let mut parts = Vec::with_capacity(keys.len());
    for k in keys {
        if !is_guid(k) {
            return Err(format!("`{}` is not a GUID", k.chars().take(60).collect::<String>()));
        }
        parts.push(format!("Ref_Key eq guid'{}'", k.to_ascii_lowercase()));
    }
    Ok(parts.join(" or "))
}

/// Why a body is not what 1C answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("1C's answer is not JSON: {0}")]
    NotJson(String),
    #[error("1C's answer has no `value` list of objects")]
    NoValue,
    #[error("1C's page holds more than {MAX_PAGE} objects")]
    TooLarge,
}

/// A page of an entity set: the objects of `value`, in 1C's order. A UTF-8 BOM is skipped.
pub fn parse_page(body: &[u8]) -> Result<Vec<Record>, WireError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let v: Value = serde_json::from_slice(body).map_err(|e| WireError::NotJson(e.to_string()))?;
    let Value::Object(mut top) = v else { return Err(WireError::NoValue) };
    let Some(Value::Array(items)) = top.remove("value") else { return Err(WireError::NoValue) };
    if items.len() > MAX_PAGE {
        return Err(WireError::TooLarge);
    }
    items.into_iter().map(|i| if let Value::Object(m) = i { Ok(m) } else { Err(WireError::NoValue) }).collect()
}

/// One object (`Set(guid'…')` answers the object itself, not a page).
pub fn parse_object(body: &[u8]) -> Result<Record, WireError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match serde_json::from_slice(body).map_err(|e| WireError::NotJson(e.to_string()))? {
        Value::Object(m) => Ok(m),
        _ => Err(WireError::NoValue),
    }
}

/// 1C's error: its code (a number as text, e.g. `"14"`) and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ODataFault {
    pub code: String,
    pub message: String,
}

/// The `odata.error` of a body, or `None` when the body is not one (an HTML page of the web
/// server, an empty body).
pub fn parse_error(body: &[u8]) -> Option<ODataFault> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("odata.error")?;
    let code = match e.get("code") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let message = match e.get("message") {
        Some(Value::Object(m)) => m.get("value").and_then(Value::as_str).unwrap_or_default().to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    Some(ODataFault { code, message: message.chars().take(500).collect() })
}

/// A field as text: strings as they are, numbers and booleans written out, anything else "".
pub fn text(record: &Record, field: &str) -> String {
    match record.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// A boolean field; 1C writes `true`/`false`, older publications `"true"`.
pub fn flag(record: &Record, field: &str) -> bool {
    match record.get(field) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_page_as_1c_writes_it_reads_back() {
        let body = "\u{feff}{\"odata.metadata\": \"http://h/b/odata/standard.odata/$metadata#Catalog_Контрагенты\",\
            \"value\": [{\"Ref_Key\": \"b1c89d9c-cb6a-11e6-aede-5404a6b4b8ed\", \"DataVersion\": \"AAAABwAAAAA=\",\
            \"DeletionMark\": false, \"Description\": \"ООО «Ромашка»\"}]}";
        let page = parse_page(body.as_bytes()).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(text(&page[0], "Description"), "ООО «Ромашка»");
        assert!(!flag(&page[0], "DeletionMark"));
        assert_eq!(parse_page(b"{\"value\": 1}"), Err(WireError::NoValue));
        assert_eq!(parse_page(b"{\"d\": {\"results\": []}}"), Err(WireError::NoValue));
        assert!(matches!(parse_page(b"<html>"), Err(WireError::NotJson(_))));
    }

    #[test]
    fn errors_read_with_their_code_and_words() {
        let body = r#"{"odata.error": {"code": "14", "message": {"lang": "ru", "value": "Ошибка при разборе опции запроса $filter"}}}"#;
        let f = parse_error(body.as_bytes()).unwrap();
        assert_eq!((f.code.as_str(), f.message.as_str()), ("14", "Ошибка при разборе опции запроса $filter"));
        assert_eq!(parse_error(b"<html>401</html>"), None);
        assert_eq!(parse_error(br#"{"odata.error": {"code": 9}}"#).unwrap().code, "9");
    }

    #[test]
    fn queries_are_encoded_as_1c_reads_them() {
        assert_eq!(
            path_segment("Catalog_Контрагенты"),
            "Catalog_%D0%9A%D0%BE%D0%BD%D1%82%D1%80%D0%B0%D0%B3%D0%B5%D0%BD%D1%82%D1%8B"
        );
        let q = query_string(&[("$filter", "Code eq 'a+b & c'".into()), ("$format", "json".into())]);
        assert_eq!(q, "$filter=Code%20eq%20'a%2Bb%20%26%20c'&$format=json", "a space is %20, never +");
        assert_eq!(quote("O'Brien"), "'O''Brien'");
        assert_eq!(
            keys_filter(&["B1C89D9C-CB6A-11E6-AEDE-5404A6B4B8ED"]).unwrap(),
            "Ref_Key eq guid'b1c89d9c-cb6a-11e6-aede-5404a6b4b8ed'"
        );
        assert!(keys_filter(&["x' or true or 'y"]).is_err(), "only GUIDs reach the filter");
    }

    proptest! {
        /// Any bytes: a page or a clear error, never a panic; the same for errors and objects.
        #[test]
        fn any_body_is_read_or_refused(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_page(&body);
            let _ = parse_error(&body);
            let _ = parse_object(&body);
        }

        /// Pages made of objects with any text read back with that text.
        #[test]
        fn pages_read_back(names in proptest::collection::vec("\\PC{0,30}", 0..20)) {
            let value: Vec<Value> = names.iter().map(|n| serde_json::json!({"Description": n, "DeletionMark": true})).collect();
            let body = serde_json::to_vec(&serde_json::json!({"odata.metadata": "m", "value": value})).unwrap();
            let page = parse_page(&body).unwrap();
            prop_assert_eq!(page.len(), names.len());
            for (r, n) in page.iter().zip(&names) {
                prop_assert_eq!(&text(r, "Description"), n);
                prop_assert!(flag(r, "DeletionMark"));
            }
        }

        /// Any text in a filter literal survives quoting and encoding: decoding the query
        /// gives the literal back, and no raw space or `+` is ever sent.
        #[test]
        fn literals_survive_quoting_and_encoding(s in "\\PC{0,40}") {
            let q = query_string(&[("$filter", format!("Description eq {}", quote(&s)))]);
            prop_assert!(!q.contains(' ') && !q.contains('+'));
            let raw = q.strip_prefix("$filter=").unwrap();
            let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().unwrap();
            prop_assert_eq!(decoded.to_string(), format!("Description eq {}", quote(&s)));
        }
    }
}
