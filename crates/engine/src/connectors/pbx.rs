//! A company's own PBX (Asterisk, FreePBX, a cloud PBX): its calls posted to okno, signed, go
//! into the callers' history; each becomes a business event (`call.answered`, `call.missed`…)
//! that rules can act on — "a missed call: tell the manager".
//!
//! ```json
//! {"signing_secret": "<16+ characters, shared with the PBX's script>"}
//! ```
//!
//! The PBX posts to `/hooks/connectors/{id}/{secret}`, header `X-Okno-Signature:
//! sha256=<hex HMAC-SHA256(signing_secret, raw body)>`, one call or `{"calls": [...]}`:
//!
//! ```json
//! {"call_id": "1733565000.42", "direction": "in", "status": "missed", "phone": "+7 999 000-11-22",
//!  "name": "Анна", "operator": "101", "started_at": "2026-12-07T10:30:00Z", "duration": 0,
//!  "recording_url": "https://pbx.example/rec/1733565000.42.mp3"}
//! ```
//!
//! The same `call_id` again (the PBX reports a call at its start and at its end) updates the
//! call. Calls are stored before the PBX is answered.

use okno_domain::ids::ConnectorId;
use okno_domain::model::{normalize_phone, Call, CallDirection, CallStatus, Connector};
use okno_domain::time::parse_rfc3339;
use okno_domain::{signing, Error, ErrorKind, Result};
use okno_store::{NewCall, NewEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::HookRequest;
use crate::Engine;

/// The header a PBX signs its posts with.
pub const SIGNATURE_HEADER: &str = "x-okno-signature";

/// A PBX connector's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbxConfig {
    pub signing_secret: String,
    /// The secret in okno's hook address (made by okno).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("invalid_connector_config", message.into())
}

impl PbxConfig {
    fn parse(config: &Value) -> Result<PbxConfig> {
        let cfg: PbxConfig =
            serde_json::from_value(config.clone()).map_err(|e| invalid(format!("pbx connector config: {e}")))?;
        if cfg.signing_secret.chars().count() < 16 {
            return Err(invalid("`signing_secret` is at least 16 characters"));
        }
        Ok(cfg)
    }
}

/// Checks the configuration; the PBX needs nothing from okno but its address.
pub(crate) fn connect(engine: &Engine, id: &ConnectorId, secret: &str, config: &Value) -> Result<(Value, Value)> {
    let mut cfg = PbxConfig::parse(config)?;
    cfg.secret = Some(secret.to_string());
    let address = format!("{}/hooks/connectors/{id}/{secret}", engine.cfg.public_url.trim_end_matches('/'));
    let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
    Ok((config, json!({"address": address})))
}

/// One call as a PBX posts it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    call_id: String,
    direction: String,
    status: String,
    phone: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    operator: Option<String>,
    started_at: String,
    #[serde(default)]
    duration: i64,
    #[serde(default)]
    recording_url: Option<String>,
}

/// Most calls in one post.
const MAX_CALLS: usize = 500;

/// Reads a PBX's post into calls, or says what is wrong with it (and with which call).
pub fn parse_calls(source: &str, body: &[u8]) -> Result<Vec<NewCall>> {
    let bad_json = |e: serde_json::Error| {
        Error::invalid("invalid_call", format!("the body is not a call or {{\"calls\": […]}}: {e}"))
    };
    let mut parsed: Value = serde_json::from_slice(body).map_err(bad_json)?;
    let calls: Vec<CallBody> = match parsed.get_mut("calls").map(Value::take) {
        Some(many) => serde_json::from_value(many).map_err(bad_json)?,
        None => vec![serde_json::from_value(parsed).map_err(bad_json)?],
    };
    if calls.len() > MAX_CALLS {
        return Err(Error::invalid("invalid_call", format!("at most {MAX_CALLS} calls in one post")));
    }
    calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let bad = |what: String| Error::invalid("invalid_call", format!("call {i}: {what}"));
            if c.call_id.trim().is_empty() || c.call_id.len() > 200 {
                return Err(bad("`call_id` is 1..200 characters".into()));
            }
            let direction = CallDirection::parse(&c.direction).map_err(|_| bad("`direction` is in or out".into()))?;
            let status =
                CallStatus::parse(&c.status).map_err(|_| bad("`status` is answered, missed, busy or failed".into()))?;
            let phone = normalize_phone(&c.phone).map_err(|e| bad(format!("`phone`: {}", e.message)))?;
            let started_at = parse_rfc3339(&c.started_at)
                .ok_or_else(|| bad(format!("`started_at` `{}` is not an RFC 3339 time", c.started_at)))?;
            if !(0..=7 * 24 * 3600).contains(&c.duration) {
                return Err(bad("`duration` is seconds, 0 up to a week".into()));
            }
            if let Some(u) = &c.recording_url {
                let ok = url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                if !ok || u.len() > 2000 {
                    return Err(bad("`recording_url` is an http(s) address".into()));
                }
            }
            let short =
                |v: Option<String>| v.map(|s| s.trim().chars().take(200).collect::<String>()).filter(|s| !s.is_empty());
            Ok(NewCall {
                source: source.to_string(),
                external_id: c.call_id.trim().to_string(),
                phone,
                name: short(c.name),
                direction,
                status,
                operator: short(c.operator),
                started_at,
                duration: c.duration,
                recording_url: c.recording_url,
            })
        })
        .collect()
}

/// The PBX's post: its signature checked, every call stored, and an event for each.
pub(crate) async fn hook(engine: &Engine, connector: &Connector, req: &HookRequest<'_>) -> Result<usize> {
    let cfg = PbxConfig::parse(&connector.config)?;
    let Some(sig) = req.header(SIGNATURE_HEADER) else {
        return Err(Error::new(ErrorKind::Unauthorized, "missing_signature", "the X-Okno-Signature header is missing"));
    };
    if !signing::verify(cfg.signing_secret.as_bytes(), req.body, sig) {
        return Err(Error::new(ErrorKind::Unauthorized, "bad_signature", "X-Okno-Signature does not match the body"));
    }
    let calls = parse_calls(connector.id.as_str(), req.body)?;
    let n = calls.len();
    for call in calls {
        let (kept, _) = engine.store.record_call(call).await?;
        engine.call_event(&kept).await?;
    }
    Ok(n)
}

impl Engine {
    /// A call as a business event, `call.<status>`: once per call and status, however often it
    /// is reported.
    pub(crate) async fn call_event(&self, call: &Call) -> Result<()> {
        let event = NewEvent {
            event_type: format!("call.{}", call.status.as_str()),
            key: format!("call:{}:{}:{}", call.source, call.external_id, call.status.as_str()),
            data: json!({"call_id": call.external_id, "contact_id": call.contact_id, "phone": call.phone,
                         "direction": call.direction, "status": call.status, "operator": call.operator,
                         "started_at": okno_domain::time::to_rfc3339(call.started_at), "duration": call.duration,
                         "recording_url": call.recording_url, "connector": call.source}),
            send_at: None,
        };
        let (_, duplicate) = self.store.accept_event(event).await?;
        if !duplicate {
            self.wake();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_call_is_read_with_its_number_normalised() {
        let body = br#"{"call_id": "1733.42", "direction": "in", "status": "missed", "phone": "+7 (999) 000-11-22",
                        "started_at": "2026-12-07T10:30:00Z", "operator": " 101 "}"#;
        let calls = parse_calls("k", body).unwrap();
        assert_eq!(calls[0].phone, "+79990001122");
        assert_eq!(calls[0].operator.as_deref(), Some("101"));
        assert_eq!((calls[0].direction, calls[0].status), (CallDirection::In, CallStatus::Missed));
        let many = br#"{"calls": [{"call_id": "a", "direction": "out", "status": "answered", "phone": "+79990001122",
                        "started_at": "2026-12-07T10:30:00+03:00", "duration": 61}]}"#;
        assert_eq!(parse_calls("k", many).unwrap()[0].duration, 61);
    }

    #[test]
    fn a_bad_call_says_what_is_wrong() {
        let base = json!({"call_id": "a", "direction": "in", "status": "answered", "phone": "+79990001122",
                          "started_at": "2026-12-07T10:30:00Z"});
        for (field, bad, says) in [
            ("direction", json!("sideways"), "direction"),
            ("status", json!("ok"), "status"),
            ("phone", json!("call me"), "phone"),
            ("started_at", json!("yesterday"), "started_at"),
            ("duration", json!(-1), "duration"),
            ("recording_url", json!("file:///etc/passwd"), "recording_url"),
            ("call_id", json!(""), "call_id"),
            ("extra", json!(1), "unknown field"),
        ] {
            let mut v = base.clone();
            v[field] = bad;
            let e = parse_calls("k", v.to_string().as_bytes()).unwrap_err();
            assert!(e.message.contains(says), "{field}: {}", e.message);
        }
        let many = json!({"calls": vec![base; MAX_CALLS + 1]});
        assert!(parse_calls("k", many.to_string().as_bytes()).is_err(), "too many in one post");
    }

    proptest! {
        #[test]
        fn any_body_is_read_or_refused_without_a_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_calls("k", &body);
        }

        #[test]
        fn any_json_call_is_read_or_refused_without_a_panic(
            id in ".{0,30}", dir in "(in|out|x)", st in "(answered|missed|busy|failed|y)",
            phone in "[+0-9 ()a-]{0,20}", at in ".{0,30}", dur in any::<i64>(),
        ) {
            let v = json!({"call_id": id, "direction": dir, "status": st, "phone": phone, "started_at": at, "duration": dur});
            if let Ok(calls) = parse_calls("k", v.to_string().as_bytes()) {
                prop_assert!(calls[0].phone.starts_with('+') || calls[0].phone.chars().all(|c| c.is_ascii_digit()));
                prop_assert!((0..=7 * 24 * 3600).contains(&calls[0].duration));
            }
        }
    }
}
