//! The three gateways' wire: the configuration, the balance call that checks credentials, the
//! send call, and each provider's error codes classified.
//!
//! Sources (`E_more_channels.md` §4 and the official pages and clients it names):
//! * SMS.ru — `POST /sms/send` (`api_id`, `to`, `msg`, `from`, `json=1`) answering
//!   `{"status":"OK","sms":{"<phone>":{"status":"OK","sms_id"}|{"status":"ERROR","status_code","status_text"}},"balance"}`,
//!   `GET /my/balance?api_id&json=1` → `{"status":"OK","balance"}`; request codes 200–233,
//!   300–302, 500 (sms.ru/api pages; Bitrix24's production provider).
//! * SMSC.ru — `POST /sys/send.php` (`login`, `psw`, `phones`, `mes`, `sender`, `fmt=3`,
//!   `charset=utf-8`) answering `{"id","cnt"}` or `{"error","error_code"}`, `GET
//!   /sys/balance.php?login&psw&fmt=3` → `{"balance"}`; error codes 1–9 (smsc.ru/api/http).
//! * Twilio — `POST /2010-04-01/Accounts/{sid}/Messages.json` form `To`, `From`, `Body`,
//!   `StatusCallback`, HTTP Basic `sid:token`, 201 `{"sid","status",…}`, errors
//!   `{"code","message","more_info","status"}`, 429 with code 20429 and `Retry-After`;
//!   `GET /2010-04-01/Accounts/{sid}.json` and `…/Balance.json` (twilio docs; twilio-python's
//!   `api/v2010` resources).

use std::time::Duration;

use okno_channel::http::SafeClient;
use okno_channel::throttle::Limits;
use okno_channel::{IdentityFlag, SendError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which gateway a channel sends through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Smsru,
    Smsc,
    Twilio,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Smsru => "SMS.ru",
            Provider::Smsc => "SMSC.ru",
            Provider::Twilio => "Twilio",
        }
    }

    pub fn default_base(self) -> &'static str {
        match self {
            Provider::Smsru => "https://sms.ru",
            Provider::Smsc => "https://smsc.ru",
            Provider::Twilio => "https://api.twilio.com",
        }
    }

    /// The most parts okno sends as one message: SMS.ru refuses more than 8 (code 205); the
    /// others take more, and 10 parts (670 Cyrillic characters) is already a letter.
    pub fn max_parts(self) -> u32 {
        match self {
            Provider::Smsru => 8,
            Provider::Smsc | Provider::Twilio => 10,
        }
    }
}

/// A stored `sms` channel's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SmsConfig {
    pub provider: Provider,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// A number, or a numeric string ("2.95").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_per_segment: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// The secret of the hook address, chosen by the administrator (who pastes the address
    /// into the provider's panel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_secret: Option<String>,
    /// The secret okno made, used when no `callback_secret` is chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl SmsConfig {
    pub fn base(&self) -> String {
        given(&self.api_base).unwrap_or(self.provider.default_base()).trim_end_matches('/').to_string()
    }

    /// The secret the hook address carries.
    pub fn hook_secret(&self) -> Option<&str> {
        given(&self.callback_secret).or(given(&self.webhook_secret))
    }

    pub fn sender(&self) -> Option<&str> {
        given(&self.sender)
    }

    /// The price of one part, when configured as a non-negative number.
    pub fn price(&self) -> Option<f64> {
        let p = match self.price_per_segment.as_ref()? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().replace(',', ".").parse::<f64>().ok(),
            _ => None,
        }?;
        (p.is_finite() && p >= 0.0).then_some(p)
    }

    /// The credentials the provider needs, or which one is missing.
    pub fn check_credentials(&self) -> Result<(), String> {
        let need: &[(&str, &Option<String>)] = match self.provider {
            Provider::Smsru => &[("api_id", &self.api_id)],
            Provider::Smsc => &[("login", &self.login), ("password", &self.password)],
            Provider::Twilio => &[("account_sid", &self.account_sid), ("auth_token", &self.auth_token)],
        };
        for (name, v) in need {
            if given(v).is_none() {
                return Err(format!("`{name}` is required for {}", self.provider.name()));
            }
        }
        if self.provider == Provider::Twilio && self.sender().is_none() {
            return Err(
                "`sender` is required for Twilio: the number (or Messaging Service's sender) texts come from".into()
            );
        }
        Ok(())
    }
}

/// What went wrong on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum WireError {
    Network(String),
    /// An HTTP status the provider's envelope does not explain.
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// The provider's own error: its code and words.
    Provider {
        code: i64,
        text: String,
        status: u16,
        retry_after: Option<Duration>,
    },
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Network(e) => write!(f, "{e}"),
            WireError::Status { status, body, .. } => write!(f, "HTTP {status}: {body}"),
            WireError::Provider { code, text, .. } => write!(f, "{text} (code {code})"),
        }
    }
}

/// One provider account.
#[derive(Clone)]
pub struct Gateway {
    http: SafeClient,
    pub cfg: SmsConfig,
}

/// What the balance call says.
#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    pub amount: Option<String>,
    pub currency: Option<String>,
}

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or_default()
}

/// A number or numeric string as text.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

impl Gateway {
    pub fn new(http: SafeClient, cfg: SmsConfig) -> Self {
        Gateway { http, cfg }
    }

    async fn call(&self, req: Result<reqwest::RequestBuilder, okno_domain::Error>) -> Result<(u16, Value), WireError> {
        let req = req.map_err(|e| WireError::Network(e.message))?;
        let resp = req.send().await.map_err(|e| WireError::Network(okno_channel::http::describe(&e)))?;
        let status = resp.status().as_u16();
        let retry_after = okno_channel::http::retry_after(resp.headers());
        let body = resp.text().await.map_err(|e| WireError::Network(okno_channel::http::describe(&e)))?;
        match serde_json::from_str::<Value>(&body) {
            Ok(v) if v.is_object() => Ok((status, v)),
            _ => Err(WireError::Status { status, body: body.chars().take(300).collect(), retry_after }),
        }
        .and_then(|(status, v)| {
            if self.cfg.provider == Provider::Twilio && status >= 400 {
                let code = v["code"].as_i64().unwrap_or(i64::from(status));
                let text = v["message"].as_str().unwrap_or("Twilio refused the request").to_string();
                return Err(WireError::Provider { code, text, status, retry_after });
            }
            if status >= 500 || status == 429 {
                return Err(WireError::Status { status, body: v.to_string(), retry_after });
            }
            Ok((status, v))
        })
    }

    /// The provider's own "who am I" call: SMS.ru `my/balance`, SMSC `balance.php`, Twilio the
    /// account resource then its balance.
    pub async fn balance(&self) -> Result<Balance, WireError> {
        let c = &self.cfg;
        let base = c.base();
        match c.provider {
            Provider::Smsru => {
                let url = format!("{base}/my/balance");
                let (_, v) =
                    self.call(self.http.get(&url).map(|r| r.query(&[("api_id", s(&c.api_id)), ("json", "1")]))).await?;
                smsru_ok(&v)?;
                Ok(Balance { amount: text_of(&v["balance"]), currency: Some("RUB".into()) })
            }
            Provider::Smsc => {
                let url = format!("{base}/sys/balance.php");
                let q = [("login", s(&c.login)), ("psw", s(&c.password)), ("fmt", "3"), ("cur", "1")];
                let (_, v) = self.call(self.http.get(&url).map(|r| r.query(&q))).await?;
                smsc_ok(&v)?;
                Ok(Balance { amount: text_of(&v["balance"]), currency: v["currency"].as_str().map(str::to_string) })
            }
            Provider::Twilio => {
                let sid = s(&c.account_sid);
                let auth = |r: reqwest::RequestBuilder| r.basic_auth(sid, Some(s(&c.auth_token)));
                let url = format!("{base}/2010-04-01/Accounts/{sid}.json");
                let (_, account) = self.call(self.http.get(&url).map(auth)).await?;
                if account["status"].as_str().is_some_and(|st| st != "active") {
                    return Err(WireError::Provider {
                        code: 20005,
                        text: format!("the Twilio account is {}", account["status"].as_str().unwrap_or_default()),
                        status: 403,
                        retry_after: None,
                    });
                }
                let url = format!("{base}/2010-04-01/Accounts/{sid}/Balance.json");
                match self.call(self.http.get(&url).map(auth)).await {
                    Ok((_, b)) => Ok(Balance {
                        amount: text_of(&b["balance"]),
                        currency: b["currency"].as_str().map(str::to_string),
                    }),
                    // Subaccounts and API keys may not read the balance: the account answered.
                    Err(_) => Ok(Balance { amount: None, currency: None }),
                }
            }
        }
    }

    /// Sends `text` to `phone` (E.164 digits); returns the provider's id for the message.
    pub async fn send(&self, phone: &str, text: &str, status_callback: Option<&str>) -> Result<String, SendError> {
        let c = &self.cfg;
        let base = c.base();
        match c.provider {
            Provider::Smsru => {
                let mut form = vec![("api_id", s(&c.api_id)), ("to", phone), ("msg", text), ("json", "1")];
                if let Some(from) = c.sender() {
                    form.push(("from", from));
                }
                let url = format!("{base}/sms/send");
                let (_, v) = self.call(self.http.post(&url).map(|r| r.form(&form))).await.map_err(classify_smsru)?;
                smsru_ok(&v).map_err(classify_smsru)?;
                let one = v["sms"].get(phone).or_else(|| v["sms"].as_object().and_then(|m| m.values().next()));
                let one = one.ok_or_else(|| SendError::retry(format!("SMS.ru answered without the number: {v}")))?;
                smsru_ok(one).map_err(classify_smsru)?;
                one["sms_id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| SendError::retry(format!("SMS.ru gave no sms_id: {one}")))
            }
            Provider::Smsc => {
                let mut form = vec![
                    ("login", s(&c.login)),
                    ("psw", s(&c.password)),
                    ("phones", phone),
                    ("mes", text),
                    ("fmt", "3"),
                    ("charset", "utf-8"),
                ];
                if let Some(from) = c.sender() {
                    form.push(("sender", from));
                }
                let url = format!("{base}/sys/send.php");
                let (_, v) = self.call(self.http.post(&url).map(|r| r.form(&form))).await.map_err(classify_smsc)?;
                smsc_ok(&v).map_err(classify_smsc)?;
                let id = text_of(&v["id"]).ok_or_else(|| SendError::retry(format!("SMSC gave no id: {v}")))?;
                Ok(smsc_external_id(&id, phone))
            }
            Provider::Twilio => {
                let sid = s(&c.account_sid);
                let to = format!("+{phone}");
                let mut form = vec![("To", to.as_str()), ("From", c.sender().unwrap_or_default()), ("Body", text)];
                if let Some(cb) = status_callback {
                    form.push(("StatusCallback", cb));
                }
                let url = format!("{base}/2010-04-01/Accounts/{sid}/Messages.json");
                let req = self.http.post(&url).map(|r| r.basic_auth(sid, Some(s(&c.auth_token))).form(&form));
                let (_, v) = self.call(req).await.map_err(classify_twilio)?;
                v["sid"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| SendError::retry(format!("Twilio gave no sid: {v}")))
            }
        }
    }
}

/// SMSC names a message by its id and the phone (`status.php?id&phone`), and so does okno.
pub fn smsc_external_id(id: &str, phone: &str) -> String {
    format!("{id}:{phone}")
}

fn smsru_ok(v: &Value) -> Result<(), WireError> {
    if v["status"] == "OK" {
        return Ok(());
    }
    Err(WireError::Provider {
        code: v["status_code"].as_i64().unwrap_or(0),
        text: v["status_text"].as_str().unwrap_or("SMS.ru refused the request").to_string(),
        status: 200,
        retry_after: None,
    })
}

fn smsc_ok(v: &Value) -> Result<(), WireError> {
    if v.get("error").is_none() && v.get("error_code").is_none() {
        return Ok(());
    }
    Err(WireError::Provider {
        code: v["error_code"].as_i64().unwrap_or(0),
        text: v["error"].as_str().unwrap_or("SMSC refused the request").to_string(),
        status: 200,
        retry_after: None,
    })
}

fn transport(e: WireError) -> SendError {
    match e {
        WireError::Network(m) => SendError::retry(m),
        WireError::Status { status: 429, body, retry_after } => SendError::Retry {
            reason: format!("HTTP 429: {body}"),
            after: Some(retry_after.unwrap_or(Duration::from_secs(1))),
        },
        WireError::Status { status, body, retry_after } if status >= 500 => {
            SendError::Retry { reason: format!("HTTP {status}: {body}"), after: retry_after }
        }
        e => SendError::permanent(e.to_string()),
    }
}

fn gone(reason: String, flag: IdentityFlag) -> SendError {
    SendError::Permanent { reason, flag: Some(flag) }
}

/// SMS.ru's request codes (sms.ru/api/send; `E_more_channels.md` §4.1).
pub fn classify_smsru(e: WireError) -> SendError {
    let WireError::Provider { code, text, .. } = e else { return transport(e) };
    let reason = format!("SMS.ru: {text} (code {code})");
    match code {
        // Service unavailable, server error: soon again.
        220 | 500 => SendError::Retry { reason, after: Some(Duration::from_secs(1)) },
        // The same text to the same number within a minute.
        231 => SendError::Retry { reason, after: Some(Duration::from_secs(60)) },
        // Bad recipient; in the account's stop-list; in SMS.ru's spam list; foreign numbers off.
        202 => gone(reason, IdentityFlag::Blocked),
        209 | 215 => gone(reason, IdentityFlag::OptedOut),
        200 | 300 | 301 | 302 => SendError::permanent(format!("{reason}; check the channel's api_id")),
        _ => SendError::permanent(reason),
    }
}

/// SMSC's send error codes (smsc.ru/api/http/send; `E_more_channels.md` §4.2).
pub fn classify_smsc(e: WireError) -> SendError {
    let WireError::Provider { code, text, .. } = e else { return transport(e) };
    let reason = format!("SMSC: {text} (code {code})");
    match code {
        // The IP is blocked for a while after frequent errors; too many requests at once.
        4 => SendError::Retry { reason, after: Some(Duration::from_secs(60)) },
        9 => SendError::Retry { reason, after: Some(Duration::from_secs(2)) },
        7 | 8 => gone(reason, IdentityFlag::Blocked),
        2 => SendError::permanent(format!("{reason}; check the channel's login and password")),
        _ => SendError::permanent(reason),
    }
}

/// Twilio's error codes (twilio.com/docs/api/errors; `E_more_channels.md` §4.3).
pub fn classify_twilio(e: WireError) -> SendError {
    let WireError::Provider { code, text, status, retry_after } = e else { return transport(e) };
    let reason = format!("Twilio: {text} (code {code})");
    match (code, status) {
        (20429, _) | (_, 429) => {
            SendError::Retry { reason, after: Some(retry_after.unwrap_or(Duration::from_secs(1))) }
        }
        (_, s) if s >= 500 => SendError::Retry { reason, after: retry_after },
        // Not a valid phone number; not a mobile number.
        (21211 | 21614, _) => gone(reason, IdentityFlag::Blocked),
        // The person replied STOP to this sender.
        (21610, _) => gone(reason, IdentityFlag::OptedOut),
        (20003, _) => SendError::permanent(format!("{reason}; check the channel's account_sid and auth_token")),
        _ => SendError::permanent(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(code: i64, text: &str) -> WireError {
        WireError::Provider { code, text: text.into(), status: 200, retry_after: None }
    }

    #[test]
    fn provider_codes_are_classified() {
        assert!(
            matches!(classify_smsru(p(201, "Не хватает средств")), SendError::Permanent { flag: None, reason } if reason.contains("Не хватает средств"))
        );
        assert!(matches!(
            classify_smsru(p(202, "Неправильно указан номер")),
            SendError::Permanent { flag: Some(IdentityFlag::Blocked), .. }
        ));
        assert!(matches!(
            classify_smsru(p(215, "спам")),
            SendError::Permanent { flag: Some(IdentityFlag::OptedOut), .. }
        ));
        assert!(matches!(classify_smsru(p(220, "недоступен")), SendError::Retry { after: Some(_), .. }));
        assert!(matches!(classify_smsc(p(3, "no money")), SendError::Permanent { flag: None, .. }));
        assert!(
            matches!(classify_smsc(p(9, "duplicate request")), SendError::Retry { after: Some(d), .. } if d >= Duration::from_secs(1))
        );
        assert!(matches!(
            classify_smsc(p(7, "invalid number")),
            SendError::Permanent { flag: Some(IdentityFlag::Blocked), .. }
        ));
        let tw = |code, status| WireError::Provider { code, text: "x".into(), status, retry_after: None };
        assert!(matches!(classify_twilio(tw(20429, 429)), SendError::Retry { after: Some(_), .. }));
        assert!(matches!(classify_twilio(tw(20500, 500)), SendError::Retry { .. }));
        assert!(matches!(
            classify_twilio(tw(21610, 400)),
            SendError::Permanent { flag: Some(IdentityFlag::OptedOut), .. }
        ));
        assert!(matches!(classify_twilio(tw(21606, 400)), SendError::Permanent { flag: None, .. }));
        let st = |status| WireError::Status { status, body: "x".into(), retry_after: None };
        assert!(matches!(classify_smsru(st(503)), SendError::Retry { .. }));
        assert!(matches!(classify_smsc(st(429)), SendError::Retry { after: Some(_), .. }));
        assert!(matches!(classify_smsc(WireError::Network("reset".into())), SendError::Retry { .. }));
    }

    #[test]
    fn prices_are_read_from_numbers_or_strings() {
        let cfg = |v: Value| -> SmsConfig {
            serde_json::from_value(serde_json::json!({"provider": "smsru", "price_per_segment": v}))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(cfg(serde_json::json!(2.95)).price(), Some(2.95));
        assert_eq!(cfg(serde_json::json!("3,10")).price(), Some(3.1));
        assert_eq!(cfg(serde_json::json!(-1)).price(), None);
        assert_eq!(cfg(serde_json::json!("дорого")).price(), None);
    }
}
