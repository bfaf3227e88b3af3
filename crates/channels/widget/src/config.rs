//! A widget channel's configuration: the sites allowed to embed it (`origins`), the secret
//! logged-in customers' identities are signed with, and how the window looks and behaves
//! (title, colour, greeting, the pre-chat form, working hours and the offline form), and when
//! an answer the visitor has not read goes to them by e-mail.
//!
//! Everything here is checked when the channel connects, so a stored configuration is always
//! one the visitor API can serve without further checks.

use okno_domain::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Shortest secret okno accepts, in hex characters (128 bits).
pub const MIN_SECRET_HEX: usize = 32;
/// Longest greeting and title, in characters.
const MAX_TEXT: usize = 500;

/// A widget channel's stored configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WidgetConfig {
    /// The sites allowed to embed the widget, as browsers name them in `Origin`
    /// (`https://shop.example`, no path).
    pub origins: Vec<String>,
    /// Signs logged-in customers' ids (hex, at least 32 characters); generated when absent.
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    /// The bubble's and header's colour, `#rgb` or `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prechat: Option<Vec<PrechatField>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<Offline>,
    /// Seconds after which an operator's answer the visitor has not read goes to them by
    /// e-mail, when they left an address and okno has a mailbox; 0: never. Absent:
    /// [`EMAIL_AFTER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_after: Option<u64>,
}

/// How long an unread answer waits before it is sent by e-mail, unless the channel says.
pub const EMAIL_AFTER: u64 = 10 * 60;

/// The longest wait `email_after` may name: a week.
const MAX_EMAIL_AFTER: u64 = 7 * 24 * 3600;

/// One field the pre-chat form asks before the first message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrechatField {
    /// `name`, `phone` or `email`.
    pub field: String,
    #[serde(default)]
    pub required: bool,
}

/// Working hours; outside them the widget shows the offline form (the visitor leaves a
/// message and a way to reach them) instead of promising a live answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offline {
    /// The hours' time zone as an offset from UTC in minutes (Moscow: 180).
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// Working days, 1 = Monday … 7 = Sunday.
    pub days: Vec<u8>,
    /// `HH:MM`, local time.
    pub from: String,
    pub to: String,
    /// What the offline form says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn bad(message: impl Into<String>) -> Error {
    Error::invalid("invalid_channel_config", message)
}

impl WidgetConfig {
    /// Checks a configuration as given (the schema has checked its field names and types):
    /// the origins, the secret (generated when absent: kept from `previous` if it had one,
    /// new otherwise), the colour, texts and hours.
    pub fn parse(config: &Value, previous: Option<&Value>) -> Result<WidgetConfig> {
        let mut config = from_form(config.clone());
        let given = config.get("secret").and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty());
        if !given {
            let kept = previous.and_then(|p| p.get("secret")).and_then(Value::as_str).filter(|s| valid_secret(s));
            let secret = kept.map(str::to_string).unwrap_or_else(|| okno_domain::ids::random_hex(32));
            config["secret"] = json!(secret);
        }
        let mut cfg: WidgetConfig =
            serde_json::from_value(config).map_err(|e| bad(format!("widget channel config: {e}")))?;
        cfg.secret = cfg.secret.trim().to_ascii_lowercase();
        if !valid_secret(&cfg.secret) {
            return Err(bad(format!("`secret` must be at least {MIN_SECRET_HEX} hex characters (0-9, a-f)")));
        }
        if cfg.origins.is_empty() {
            return Err(bad("`origins` must name at least one site, e.g. [\"https://shop.example\"]"));
        }
        cfg.origins = cfg.origins.iter().map(|o| normalize_origin(o)).collect::<Result<_>>()?;
        cfg.origins.dedup();
        if let Some(c) = &cfg.color {
            if !valid_color(c) {
                return Err(bad("`color` must be #rgb or #rrggbb"));
            }
        }
        for (name, text) in [("greeting", &cfg.greeting), ("title", &cfg.title)] {
            if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
                return Err(bad(format!("`{name}` is longer than {MAX_TEXT} characters")));
            }
        }
        for f in cfg.prechat.iter().flatten() {
            if !matches!(f.field.as_str(), "name" | "phone" | "email") {
                return Err(bad(format!("`prechat` asks for name, phone or email, not `{}`", f.field)));
            }
        }
        if let Some(o) = &cfg.offline {
            o.check()?;
        }
        if cfg.email_after.is_some_and(|s| s > MAX_EMAIL_AFTER) {
            return Err(bad(format!("`email_after` is at most {MAX_EMAIL_AFTER} seconds (a week); 0 turns it off")));
        }
        Ok(cfg)
    }

    /// How long an unread answer waits before it goes by e-mail; `None`: it never does.
    pub fn unread_by_email(&self) -> Option<std::time::Duration> {
        let after = self.email_after.unwrap_or(EMAIL_AFTER);
        (after > 0).then(|| std::time::Duration::from_secs(after))
    }

    /// Whether a browser's `Origin` header names one of the channel's sites.
    pub fn allows_origin(&self, origin: &str) -> bool {
        normalize_origin(origin).is_ok_and(|o| self.origins.contains(&o))
    }

    /// What the script is told about the channel (nothing secret), with whether operators are
    /// working at `now_ms`.
    pub fn public(&self, now_ms: i64) -> Value {
        json!({
            "title": self.title,
            "color": self.color.clone().unwrap_or_else(|| "#2563EB".into()),
            "greeting": self.greeting,
            "prechat": self.prechat.clone().unwrap_or_default(),
            "online": self.offline.as_ref().is_none_or(|o| o.is_open(now_ms)),
            "offline_message": self.offline.as_ref().and_then(|o| o.message.clone()),
        })
    }
}

/// A configuration as the administration form sends it, made what the API takes: `origins`
/// as one text (separated by spaces, commas or lines, or a JSON list) becomes a list, and empty
/// optional texts are left out.
fn from_form(mut config: Value) -> Value {
    let Some(obj) = config.as_object_mut() else { return config };
    if let Some(text) = obj.get("origins").and_then(Value::as_str).map(str::to_string) {
        let list: Vec<String> = match serde_json::from_str::<Vec<String>>(&text) {
            Ok(list) => list,
            Err(_) => text.split([',', ' ', '\n', '\r', '\t']).filter(|o| !o.is_empty()).map(str::to_string).collect(),
        };
        obj.insert("origins".into(), json!(list));
    }
    // A number typed in the form arrives as text.
    if let Some(n) = obj.get("email_after").and_then(Value::as_str).map(|v| v.trim().parse::<u64>()) {
        match n {
            Ok(n) => obj.insert("email_after".into(), json!(n)),
            Err(_) => obj.remove("email_after"),
        };
    }
    for name in ["title", "greeting", "color", "secret"] {
        if obj.get(name).and_then(Value::as_str).is_some_and(|v| v.trim().is_empty()) {
            obj.remove(name);
        }
    }
    config
}

/// A secret okno accepts: hex, long enough.
pub fn valid_secret(s: &str) -> bool {
    s.len() >= MIN_SECRET_HEX && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn valid_color(c: &str) -> bool {
    let Some(hex) = c.strip_prefix('#') else { return false };
    matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An origin as browsers send it: `https://host[:port]`, lowercase, no path, query or user.
/// Plain `http` is accepted for loopback addresses only (a developer's own machine).
pub fn normalize_origin(origin: &str) -> Result<String> {
    let refuse = || bad(format!("`{origin}` is not a site's origin like https://shop.example"));
    let url = url::Url::parse(origin.trim()).map_err(|_| refuse())?;
    let host = url.host_str().ok_or_else(refuse)?;
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    let bare = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !scheme_ok || !bare {
        return Err(refuse());
    }
    Ok(url.origin().ascii_serialization())
}

impl Offline {
    fn check(&self) -> Result<()> {
        if self.days.iter().any(|d| !(1..=7).contains(d)) {
            return Err(bad("`offline.days` are 1 (Monday) to 7 (Sunday)"));
        }
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return Err(bad("`offline.utc_offset_minutes` is between -840 and 840"));
        }
        for t in [&self.from, &self.to] {
            if minutes(t).is_none() {
                return Err(bad(format!("`offline` hours are HH:MM, not `{t}`")));
            }
        }
        Ok(())
    }

    /// Whether `now_ms` (Unix milliseconds) falls in working hours.
    pub fn is_open(&self, now_ms: i64) -> bool {
        let local_min = now_ms.div_euclid(60_000) + i64::from(self.utc_offset_minutes);
        let day_index = local_min.div_euclid(24 * 60); // days since 1970-01-01, a Thursday
        let weekday = ((day_index + 3).rem_euclid(7) + 1) as u8; // 1 = Monday
        let minute = local_min.rem_euclid(24 * 60) as u32;
        let (Some(from), Some(to)) = (minutes(&self.from), minutes(&self.to)) else { return true };
        self.days.contains(&weekday) && from <= minute && minute < to
    }
}

/// `HH:MM` as minutes after midnight (`24:00` allowed as the day's end).
fn minutes(t: &str) -> Option<u32> {
    let (h, m) = t.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: Value) -> Result<WidgetConfig> {
        WidgetConfig::parse(&v, None)
    }

    #[test]
    fn origins_are_checked_and_normalized() {
        let c = cfg(json!({"origins": ["https://Shop.Example", "https://shop.example:8443/"]})).unwrap();
        assert_eq!(c.origins, vec!["https://shop.example", "https://shop.example:8443"]);
        assert!(c.allows_origin("https://shop.example"));
        assert!(!c.allows_origin("https://evil.example"));
        assert!(!c.allows_origin("http://shop.example"), "another scheme is another origin");
        assert!(!c.allows_origin("null"));
        for bad in
            ["http://shop.example", "https://shop.example/path", "shop.example", "ftp://x.org", "https://u@x.org"]
        {
            assert!(cfg(json!({"origins": [bad]})).is_err(), "{bad} must be refused");
        }
        assert!(cfg(json!({"origins": ["http://127.0.0.1:8080"]})).is_ok(), "loopback over http is a developer's");
        assert!(cfg(json!({"origins": []})).is_err());
    }

    #[test]
    fn the_forms_text_is_read_like_the_apis_list() {
        let form = json!({"origins": "https://a.example, https://b.example\nhttps://c.example", "title": "", "color": " ", "secret": ""});
        let c = cfg(form).unwrap();
        assert_eq!(c.origins, vec!["https://a.example", "https://b.example", "https://c.example"]);
        assert_eq!((c.title, c.color), (None, None));
        assert!(valid_secret(&c.secret), "an empty secret is generated");
        let listed = cfg(json!({"origins": "[\"https://a.example\"]"})).unwrap();
        assert_eq!(listed.origins, vec!["https://a.example"]);
        assert!(cfg(json!({"origins": " , "})).is_err(), "no site at all");
    }

    #[test]
    fn a_secret_is_generated_kept_or_checked() {
        let a = cfg(json!({"origins": ["https://a.example"]})).unwrap();
        assert!(valid_secret(&a.secret) && a.secret.len() == 64, "{}", a.secret);
        let prev = serde_json::to_value(&a).unwrap();
        let b = WidgetConfig::parse(&json!({"origins": ["https://a.example"]}), Some(&prev)).unwrap();
        assert_eq!(a.secret, b.secret, "a change without a secret keeps the old one");
        assert!(cfg(json!({"origins": ["https://a.example"], "secret": "short"})).is_err());
        assert!(cfg(json!({"origins": ["https://a.example"], "secret": "z".repeat(40)})).is_err());
        let own = "AB".repeat(16);
        assert_eq!(cfg(json!({"origins": ["https://a.example"], "secret": own})).unwrap().secret, "ab".repeat(16));
    }

    #[test]
    fn looks_and_forms_are_checked() {
        let base = |extra: Value| {
            let mut v = json!({"origins": ["https://a.example"]});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            cfg(v)
        };
        assert!(base(json!({"color": "#0af"})).is_ok());
        assert!(base(json!({"color": "blue"})).is_err());
        assert!(base(json!({"prechat": [{"field": "email", "required": true}]})).is_ok());
        assert!(base(json!({"prechat": [{"field": "passport"}]})).is_err());
        assert!(base(json!({"greeting": "x".repeat(501)})).is_err());
        assert!(base(json!({"offline": {"days": [8], "from": "09:00", "to": "18:00"}})).is_err());
        assert!(base(json!({"offline": {"days": [1], "from": "9", "to": "18:00"}})).is_err());
    }

    #[test]
    fn working_hours_follow_the_zone_and_the_week() {
        let o = Offline {
            utc_offset_minutes: 180,
            days: vec![1, 2, 3, 4, 5],
            from: "09:00".into(),
            to: "18:00".into(),
            message: None,
        };
        // 2026-12-07 is a Monday. 07:00 UTC = 10:00 in Moscow.
        let monday_7_utc = 1_796_626_800_000; // 2026-12-07T07:00:00Z
        assert!(o.is_open(monday_7_utc));
        assert!(!o.is_open(monday_7_utc - 2 * 3_600_000), "05:00 UTC is 08:00 in Moscow");
        assert!(!o.is_open(monday_7_utc - 24 * 3_600_000), "Sunday");
        assert!(!o.is_open(monday_7_utc + 8 * 3_600_000), "18:00 is closed");
    }
}
