//! A channel configuration's schema, declared by its platform. One declaration drives the
//! API's validation, the OpenAPI document and the administration form, and marks the secrets
//! that are never echoed back.

use okno_domain::{Error, Result};
use serde_json::{json, Map, Value};

/// A text of the administration form, in the UI's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Text {
    pub en: &'static str,
    pub ru: &'static str,
}

/// A text in English and Russian.
pub const fn text(en: &'static str, ru: &'static str) -> Text {
    Text { en, ru }
}

/// One of a choice field's values, with its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub value: &'static str,
    pub label: Text,
}

/// What a field holds.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    Text,
    /// An http(s) URL.
    Url,
    /// One of the given values (the first is the default).
    Choice(&'static [Choice]),
    Bool,
    Integer,
    /// Any JSON (a list of commands, a block of limits): set through the API, not the form.
    Json,
}

/// One field of a configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: &'static str,
    /// The form's label.
    pub label: Text,
    /// One line under the field.
    pub help: Text,
    /// An example shown in the empty field.
    pub placeholder: &'static str,
    pub kind: FieldKind,
    pub required: bool,
    /// Never shown back (API answers, the form): tokens, signing secrets.
    pub secret: bool,
    /// Kept by okno itself (a generated secret): refused in input.
    pub internal: bool,
    /// Shown in the administration form (the rest is set through the API).
    pub in_form: bool,
    /// Shown folded in the form: rarely changed.
    pub advanced: bool,
}

impl Field {
    pub const fn new(name: &'static str, label: Text, kind: FieldKind) -> Self {
        Field {
            name,
            label,
            help: Text { en: "", ru: "" },
            placeholder: "",
            kind,
            required: false,
            secret: false,
            internal: false,
            in_form: true,
            advanced: false,
        }
    }

    pub const fn help(mut self, help: Text) -> Self {
        self.help = help;
        self
    }

    pub const fn placeholder(mut self, example: &'static str) -> Self {
        self.placeholder = example;
        self
    }

    pub const fn advanced(mut self) -> Self {
        self.advanced = true;
        self
    }

    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    pub const fn internal(mut self) -> Self {
        self.internal = true;
        self.in_form = false;
        self
    }

    pub const fn api_only(mut self) -> Self {
        self.in_form = false;
        self
    }
}

/// A platform's configuration: its fields, in the order a form shows them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    /// The form's heading ("Connect a Telegram bot").
    pub heading: Text,
    pub fields: Vec<Field>,
}

impl Schema {
    pub fn new(heading: Text, fields: Vec<Field>) -> Self {
        Schema { heading, fields }
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether `path` names a group of fields (`imap` for `imap.host`, `imap.port`…).
    pub fn is_group(&self, path: &str) -> bool {
        self.fields.iter().any(|f| f.name.strip_prefix(path).is_some_and(|rest| rest.starts_with('.')))
    }

    /// Checks a configuration as given to the API: an object, no unknown or internal fields,
    /// every required one present, each of its kind. A field named with a dot (`imap.host`)
    /// lives in a nested object (`{"imap": {"host": …}}`). The platform checks the rest (a
    /// token against its service) when it connects.
    pub fn check(&self, config: &Value) -> Result<()> {
        let bad = |m: String| Error::invalid("invalid_channel_config", m);
        let Some(obj) = config.as_object() else { return Err(bad("`config` must be an object".into())) };
        self.check_object(obj, "")?;
        for f in self.fields.iter().filter(|f| f.required) {
            let present =
                lookup(config, f.name).is_some_and(|v| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()));
            if !present {
                return Err(bad(format!("`{}` is required", f.name)));
            }
        }
        Ok(())
    }

    fn check_object(&self, obj: &Map<String, Value>, prefix: &str) -> Result<()> {
        let bad = |m: String| Error::invalid("invalid_channel_config", m);
        for (key, value) in obj {
            let name = format!("{prefix}{key}");
            if self.field(&name).is_none() && self.is_group(&name) {
                match value {
                    Value::Object(inner) => self.check_object(inner, &format!("{name}."))?,
                    Value::Null => {}
                    _ => return Err(bad(format!("`{name}` must be an object"))),
                }
                continue;
            }
            let Some(field) = self.field(&name) else {
                let mut known: Vec<&str> = self
                    .fields
                    .iter()
                    .filter(|f| !f.internal)
                    .filter_map(|f| f.name.strip_prefix(prefix))
                    .map(|rest| rest.split('.').next().unwrap_or(rest))
                    .collect();
                known.dedup();
                return Err(bad(format!("unknown field `{name}` (known: {})", known.join(", "))));
            };
            if field.internal {
                return Err(bad(format!("`{name}` is kept by okno and cannot be set")));
            }
            if value.is_null() && !field.required {
                continue;
            }
            let ok = match &field.kind {
                FieldKind::Text => value.is_string(),
                FieldKind::Url => value
                    .as_str()
                    .is_some_and(|u| url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))),
                FieldKind::Choice(choices) => value.as_str().is_some_and(|v| choices.iter().any(|c| c.value == v)),
                FieldKind::Bool => value.is_boolean(),
                FieldKind::Integer => value.is_i64() || value.is_u64(),
                FieldKind::Json => true,
            };
            if !ok && field.kind == FieldKind::Url {
                return Err(Error::invalid("invalid_url", format!("`{name}` must be an http(s) URL")));
            }
            if !ok {
                let want = match &field.kind {
                    FieldKind::Text => "a string".to_string(),
                    FieldKind::Url => "an http(s) URL".to_string(),
                    FieldKind::Choice(choices) => {
                        format!("one of {}", choices.iter().map(|c| c.value).collect::<Vec<_>>().join(", "))
                    }
                    FieldKind::Bool => "true or false".to_string(),
                    FieldKind::Integer => "an integer".to_string(),
                    FieldKind::Json => "JSON".to_string(),
                };
                return Err(bad(format!("`{name}` must be {want}")));
            }
        }
        Ok(())
    }

    /// The configuration as it may be shown: secrets and internal fields left out, inside
    /// nested groups too.
    pub fn redact(&self, config: &Value) -> Value {
        match config.as_object() {
            Some(obj) => Value::Object(self.redact_object(obj, "")),
            None => json!({}),
        }
    }

    fn redact_object(&self, obj: &Map<String, Value>, prefix: &str) -> Map<String, Value> {
        obj.iter()
            .filter_map(|(k, v)| {
                let name = format!("{prefix}{k}");
                match (self.field(&name), v) {
                    (Some(f), _) if f.secret || f.internal => None,
                    (None, Value::Object(inner)) if self.is_group(&name) => {
                        Some((k.clone(), Value::Object(self.redact_object(inner, &format!("{name}.")))))
                    }
                    _ => Some((k.clone(), v.clone())),
                }
            })
            .collect()
    }

    /// The configuration's JSON Schema, for the OpenAPI document (groups as nested objects).
    pub fn json_schema(&self) -> Value {
        let mut root = json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false});
        for f in self.fields.iter().filter(|f| !f.internal) {
            let mut p = match &f.kind {
                FieldKind::Text => json!({"type": "string"}),
                FieldKind::Url => json!({"type": "string", "format": "uri"}),
                FieldKind::Choice(choices) => {
                    json!({"type": "string", "enum": choices.iter().map(|c| c.value).collect::<Vec<_>>()})
                }
                FieldKind::Bool => json!({"type": "boolean"}),
                FieldKind::Integer => json!({"type": "integer"}),
                FieldKind::Json => json!({}),
            };
            let mut text = f.label.en.to_string();
            if !f.help.en.is_empty() {
                text = format!("{text}: {}", f.help.en);
            }
            if f.secret {
                text.push_str(" (write-only: never shown back)");
                p["writeOnly"] = json!(true);
            }
            p["description"] = json!(text);
            let mut at = &mut root;
            let mut parts = f.name.split('.').peekable();
            while let Some(part) = parts.next() {
                if f.required {
                    push_unique(&mut at["required"], part);
                }
                if parts.peek().is_none() {
                    at["properties"][part] = p;
                    break;
                }
                if at["properties"].get(part).is_none() {
                    at["properties"][part] =
                        json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false});
                }
                at = &mut at["properties"][part];
            }
        }
        root
    }
}

/// The value at a field's name in a configuration: `imap.host` is `config["imap"]["host"]`.
pub fn lookup<'a>(config: &'a Value, name: &str) -> Option<&'a Value> {
    name.split('.').try_fold(config, |v, part| v.as_object()?.get(part))
}

/// Sets the value at a field's name, making the nested objects on the way.
pub fn insert(config: &mut Map<String, Value>, name: &str, value: Value) {
    match name.split_once('.') {
        None => {
            config.insert(name.to_string(), value);
        }
        Some((head, rest)) => {
            let inner = config.entry(head.to_string()).or_insert_with(|| json!({}));
            if !inner.is_object() {
                *inner = json!({});
            }
            if let Value::Object(inner) = inner {
                insert(inner, rest, value);
            }
        }
    }
}

fn push_unique(list: &mut Value, name: &str) {
    if let Value::Array(items) = list {
        if !items.iter().any(|i| i == name) {
            items.push(json!(name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: &[Choice] = &[
        Choice { value: "polling", label: text("Polling", "Опрос") },
        Choice { value: "webhook", label: text("Webhook", "Вебхук") },
    ];

    fn schema() -> Schema {
        Schema::new(
            text("Connect", "Подключить"),
            vec![
                Field::new("token", text("Token", "Токен"), FieldKind::Text).required().secret(),
                Field::new("mode", text("Mode", "Режим"), FieldKind::Choice(MODES)),
                Field::new("api_base", text("API", "API"), FieldKind::Url).api_only(),
                Field::new("webhook_secret", text("", ""), FieldKind::Text).internal(),
            ],
        )
    }

    #[test]
    fn a_configuration_is_checked_field_by_field() {
        let s = schema();
        s.check(&json!({"token": "1:a", "mode": "webhook"})).unwrap();
        let msg = |v: Value| s.check(&v).unwrap_err().message;
        assert!(msg(json!({"mode": "polling"})).contains("`token` is required"));
        assert!(msg(json!({"token": "  "})).contains("`token` is required"));
        assert!(msg(json!({"token": "1:a", "mode": "push"})).contains("one of polling, webhook"));
        assert!(msg(json!({"token": "1:a", "api_base": "ftp://x"})).contains("http(s) URL"));
        assert_eq!(s.check(&json!({"token": "1:a", "api_base": "x"})).unwrap_err().code, "invalid_url");
        assert!(msg(json!({"token": "1:a", "tokne": "x"})).contains("unknown field `tokne`"));
        assert!(msg(json!({"token": "1:a", "webhook_secret": "x"})).contains("kept by okno"));
        assert!(msg(json!([1])).contains("must be an object"));
    }

    #[test]
    fn secrets_are_never_shown_back() {
        let shown = schema().redact(&json!({"token": "1:a", "mode": "webhook", "webhook_secret": "s", "extra": 1}));
        assert_eq!(shown, json!({"mode": "webhook", "extra": 1}));
        let js = schema().json_schema();
        assert_eq!(js["required"], json!(["token"]));
        assert_eq!(js["properties"]["token"]["writeOnly"], json!(true));
        assert!(js["properties"].get("webhook_secret").is_none());
    }

    fn grouped() -> Schema {
        Schema::new(
            text("Connect", "Подключить"),
            vec![
                Field::new("imap.host", text("IMAP server", "Сервер IMAP"), FieldKind::Text).required(),
                Field::new("imap.port", text("IMAP port", "Порт IMAP"), FieldKind::Integer),
                Field::new("imap.password", text("Password", "Пароль"), FieldKind::Text).required().secret(),
                Field::new("from", text("From", "Отправитель"), FieldKind::Text).required(),
            ],
        )
    }

    #[test]
    fn a_dotted_name_is_a_field_of_a_nested_object() {
        let s = grouped();
        let good = json!({"imap": {"host": "mail.shop.ru", "port": 993, "password": "p"}, "from": "a@shop.ru"});
        s.check(&good).unwrap();
        let msg = |v: Value| s.check(&v).unwrap_err().message;
        assert!(msg(json!({"imap": {"host": "h", "password": "p"}})).contains("`from` is required"));
        assert!(msg(json!({"imap": {"host": "h"}, "from": "f"})).contains("`imap.password` is required"));
        assert!(msg(json!({"imap": {"host": "h", "password": "p", "port": "x"}, "from": "f"}))
            .contains("`imap.port` must be an integer"));
        assert!(msg(json!({"imap": {"host": "h", "password": "p", "hots": 1}, "from": "f"}))
            .contains("unknown field `imap.hots` (known: host, port, password)"));
        assert!(msg(json!({"imap": "h", "from": "f"})).contains("`imap` must be an object"));
        assert_eq!(s.redact(&good), json!({"imap": {"host": "mail.shop.ru", "port": 993}, "from": "a@shop.ru"}));
        let js = s.json_schema();
        assert_eq!(js["required"], json!(["imap", "from"]));
        assert_eq!(js["properties"]["imap"]["required"], json!(["host", "password"]));
        assert_eq!(js["properties"]["imap"]["properties"]["password"]["writeOnly"], json!(true));
        let mut built = Map::new();
        insert(&mut built, "imap.host", json!("h"));
        insert(&mut built, "imap.port", json!(143));
        insert(&mut built, "from", json!("f"));
        assert_eq!(Value::Object(built), json!({"imap": {"host": "h", "port": 143}, "from": "f"}));
        assert_eq!(lookup(&good, "imap.port"), Some(&json!(993)));
        assert_eq!(lookup(&good, "smtp.port"), None);
    }

    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z_:/.0-9 ]{0,12}".prop_map(Value::from),
            prop::sample::select(vec!["token", "mode", "api_base", "webhook_secret", "polling", "https://x.org"])
                .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop::sample::select(vec!["token", "mode", "api_base", "webhook_secret", "other"])
                        .prop_map(String::from),
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any configuration is answered, never a panic: accepted ones hold every rule, refused
        /// ones say `invalid_channel_config` or `invalid_url`; redaction never shows a secret.
        #[test]
        fn any_configuration_is_checked_without_panic(config in json()) {
            let s = schema();
            match s.check(&config) {
                Ok(()) => {
                    let obj = config.as_object().expect("an object");
                    proptest::prop_assert!(obj.get("token").and_then(Value::as_str).is_some_and(|t| !t.trim().is_empty()));
                    proptest::prop_assert!(obj.get("webhook_secret").is_none());
                }
                Err(e) => proptest::prop_assert!(e.code == "invalid_channel_config" || e.code == "invalid_url", "{}", e.code),
            }
            let shown = s.redact(&config);
            proptest::prop_assert!(shown.get("token").is_none() && shown.get("webhook_secret").is_none());
        }
    }
}
