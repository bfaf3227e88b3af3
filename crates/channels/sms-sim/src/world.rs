//! The simulated world: accounts, the stop-list, the rate window, faults, what was sent and
//! pushed. One mutex guards it; it is never held across an `.await`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};

use crate::{Attempt, Fault, HookCall, Report, Sent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Smsru,
    Smsc,
    Twilio,
}

pub(crate) struct Account {
    pub provider: Provider,
    /// SMSC's password, Twilio's auth token, SMS.ru's api_id.
    pub secret: String,
    pub balance: f64,
    pub price: f64,
    pub currency: &'static str,
    pub callback: Option<String>,
    /// Twilio's number, SMSC's virtual number (digits).
    pub number: Option<String>,
    /// Approved senders; empty: any.
    pub senders: HashSet<String>,
    /// The rate window: its start and how many sends in it.
    pub window: (Instant, u32),
}

impl Account {
    pub(crate) fn new(provider: Provider, secret: &str, balance: f64, price: f64, currency: &'static str) -> Account {
        Account {
            provider,
            secret: secret.to_string(),
            balance,
            price,
            currency,
            callback: None,
            number: (provider == Provider::Smsc).then(|| "79990000000".to_string()),
            senders: HashSet::new(),
            window: (Instant::now(), 0),
        }
    }
}

pub(crate) struct World {
    pub accounts: HashMap<String, Account>,
    pub blacklist: HashSet<String>,
    pub rate: Option<u32>,
    pub rate_limited: usize,
    pub faults: VecDeque<Fault>,
    pub sent: Vec<Sent>,
    pub attempts: Vec<Attempt>,
    pub seq: u64,
    /// MMS media Twilio serves at `/media/{n}`: (MIME type, bytes).
    pub media: HashMap<u64, (String, Vec<u8>)>,
}

pub(crate) struct Inner {
    world: Mutex<World>,
    pub base: String,
    http: reqwest::Client,
}

pub(crate) fn unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1)
}

fn form(pairs: &[(&str, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Twilio's request signature (webhooks-security): base64 HMAC-SHA1 of the URL and every
/// parameter sorted by name, name+value, keyed by the auth token.
pub(crate) fn twilio_sign(token: &str, url: &str, pairs: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = pairs.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()) else { return String::new() };
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

const GSM7: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXT: &str = "\u{c}^{}\\[~]|€";

/// Parts and encoding of `text` as an SMS centre counts them (3GPP TS 23.038: GSM-7 160/153
/// with extension characters doubled, else UCS-2 70/67 in UTF-16 units).
pub fn count_parts(text: &str) -> (u32, &'static str) {
    let mut septets = 0usize;
    let mut gsm = true;
    for c in text.chars() {
        if GSM7.contains(c) {
            septets += 1;
        } else if GSM7_EXT.contains(c) {
            septets += 2;
        } else {
            gsm = false;
            break;
        }
    }
    let (units, single, part, name) =
        if gsm { (septets, 160, 153, "gsm7") } else { (text.encode_utf16().count(), 70, 67, "ucs2") };
    let parts = if units <= single { 1 } else { units.div_ceil(part) };
    (parts as u32, name)
}

impl Inner {
    pub(crate) fn new(addr: std::net::SocketAddr) -> std::io::Result<Inner> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| std::io::Error::other(format!("building the callback HTTP client: {e}")))?;
        Ok(Inner {
            world: Mutex::new(World {
                accounts: HashMap::new(),
                blacklist: HashSet::new(),
                rate: Some(50),
                rate_limited: 0,
                faults: VecDeque::new(),
                sent: Vec::new(),
                attempts: Vec::new(),
                seq: 0,
                media: HashMap::new(),
            }),
            base: format!("http://{addr}"),
            http,
        })
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn with<T>(&self, account: &str, f: impl FnOnce(&mut Account) -> T) -> T {
        let mut w = self.world();
        let a = w.accounts.get_mut(account).unwrap_or_else(|| panic!("sms-sim: no account {account}"));
        f(a)
    }

    pub(crate) fn report_call(&self, sent: &Sent, report: Report) -> HookCall {
        let w = self.world();
        let a = w.accounts.get(&sent.account).unwrap_or_else(|| panic!("sms-sim: no account {}", sent.account));
        match sent.provider {
            Provider::Smsru => {
                // sms.ru/api/status codes: 102 sent, 103 delivered, 110 read, 106 phone fault.
                let code = match report {
                    Report::Sent => 102,
                    Report::Delivered => 103,
                    Report::Read => 110,
                    Report::Failed => 106,
                };
                let url = a.callback.clone().unwrap_or_else(|| panic!("sms-sim: no callback address set"));
                let body = form(&[("data[0]", format!("sms_status\n{}\n{code}\n{}", sent.id, unix()))]);
                HookCall { url, body, headers: form_headers() }
            }
            Provider::Smsc => {
                // smsc.ru status_messages: 0 passed to the operator, 1 delivered, 2 read, 20
                // cannot be delivered (err: the operator's error code).
                let (status, err) = match report {
                    Report::Sent => (0, 0),
                    Report::Delivered => (1, 0),
                    Report::Read => (2, 0),
                    Report::Failed => (20, 1),
                };
                let url = a.callback.clone().unwrap_or_else(|| panic!("sms-sim: no callback address set"));
                let body = form(&[
                    ("id", sent.id.clone()),
                    ("phone", sent.to.clone()),
                    ("status", status.to_string()),
                    ("time", unix().to_string()),
                    ("ts", unix().to_string()),
                    ("err", err.to_string()),
                ]);
                HookCall { url, body, headers: form_headers() }
            }
            Provider::Twilio => {
                let (status, error) = match report {
                    Report::Sent => ("sent", None),
                    Report::Delivered => ("delivered", None),
                    Report::Read => ("read", None),
                    Report::Failed => ("undelivered", Some("30003")),
                };
                let url =
                    sent.status_callback.clone().unwrap_or_else(|| panic!("sms-sim: sent without StatusCallback"));
                let sid = sent.account.trim_start_matches("twilio:").to_string();
                let mut pairs = vec![
                    ("MessageSid", sent.id.clone()),
                    ("SmsSid", sent.id.clone()),
                    ("MessageStatus", status.to_string()),
                    ("SmsStatus", status.to_string()),
                    ("AccountSid", sid),
                    ("From", format!("+{}", a.number.clone().unwrap_or_default())),
                    ("To", format!("+{}", sent.to)),
                    ("ApiVersion", "2010-04-01".to_string()),
                ];
                if let Some(e) = error {
                    pairs.push(("ErrorCode", e.to_string()));
                }
                let signature = twilio_sign(&a.secret, &url, &pairs);
                let mut headers = form_headers();
                headers.push(("X-Twilio-Signature".into(), signature));
                HookCall { url, body: form(&pairs), headers }
            }
        }
    }

    pub(crate) fn text_call(&self, account: &str, from: &str, text: &str, media: Option<(&str, &[u8])>) -> HookCall {
        let mut w = self.world();
        w.seq += 1;
        let n = w.seq;
        if let Some((mime, bytes)) = media {
            w.media.insert(n, (mime.to_string(), bytes.to_vec()));
        }
        let base = self.base.clone();
        let a = w.accounts.get(account).unwrap_or_else(|| panic!("sms-sim: no account {account}"));
        let url = a.callback.clone().unwrap_or_else(|| panic!("sms-sim: no callback address set for {account}"));
        let from = from.trim_start_matches('+').to_string();
        let to = a.number.clone().unwrap_or_default();
        match a.provider {
            Provider::Smsru => panic!("sms-sim: SMS.ru documents no incoming texts"),
            Provider::Smsc => {
                let body = form(&[
                    ("id", format!("{}", 900_000 + n)),
                    ("phone", from),
                    ("mes", text.to_string()),
                    ("to", to),
                    ("sent", unix().to_string()),
                    ("time", unix().to_string()),
                ]);
                HookCall { url, body, headers: form_headers() }
            }
            Provider::Twilio => {
                let sid = account.trim_start_matches("twilio:").to_string();
                let mut pairs = vec![
                    ("MessageSid", format!("SM{:032x}", 0xfeed_0000_u64 + n)),
                    ("SmsSid", format!("SM{:032x}", 0xfeed_0000_u64 + n)),
                    ("SmsMessageSid", format!("SM{:032x}", 0xfeed_0000_u64 + n)),
                    ("AccountSid", sid),
                    ("From", format!("+{from}")),
                    ("To", format!("+{to}")),
                    ("Body", text.to_string()),
                    ("NumMedia", if media.is_some() { "1" } else { "0" }.to_string()),
                    ("NumSegments", count_parts(text).0.to_string()),
                    ("SmsStatus", "received".to_string()),
                    ("ApiVersion", "2010-04-01".to_string()),
                ];
                if let Some((mime, _)) = media {
                    pairs.push(("MediaUrl0", format!("{base}/media/{n}")));
                    pairs.push(("MediaContentType0", mime.to_string()));
                }
                let signature = twilio_sign(&a.secret, &url, &pairs);
                let mut headers = form_headers();
                headers.push(("X-Twilio-Signature".into(), signature));
                HookCall { url, body: form(&pairs), headers }
            }
        }
    }

    pub(crate) async fn push(&self, call: &HookCall) -> Option<u16> {
        let mut req = self.http.post(&call.url).body(call.body.clone());
        for (k, v) in &call.headers {
            req = req.header(k, v);
        }
        let (status, answer) = match req.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                (Some(s), r.text().await.unwrap_or_default())
            }
            Err(_) => (None, String::new()),
        };
        self.world().attempts.push(Attempt { url: call.url.clone(), status, answer });
        status
    }
}

fn form_headers() -> Vec<(String, String)> {
    vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())]
}
