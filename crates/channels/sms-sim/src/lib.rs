//! An SMS gateway simulator for okno's tests: SMS.ru, SMSC.ru and Twilio behind one HTTP
//! server on 127.0.0.1, each at its own paths, speaking its real wire format.
//!
//! Where each behaviour comes from (`../shared/research/E_more_channels.md` §4 and the
//! provider documentation and clients it names; checked again with the search tools):
//! * **SMS.ru** (sms.ru/api/send, /api/status, /api/balance; Bitrix24's provider; the SmsRu
//!   .NET `CallbackHandler`): `POST /sms/send` with `api_id`, `to`, `msg`, `from`, `json=1`
//!   answering `{"status":"OK","status_code":100,"sms":{"<phone>":{"status":"OK",
//!   "status_code":100,"sms_id"}},"balance"}`, a number that fails carrying `"status":"ERROR"`
//!   with its own `status_code`/`status_text` (201 no funds, 202 bad number, 204 sender not
//!   approved, 215 number in the spam list), the request failing as a whole with a top-level
//!   `ERROR` (200 bad api_id, 205 more than 8 parts, 220 service unavailable);
//!   `GET /my/balance`; callbacks as `data[N]` form fields `sms_status\n<id>\n<code>\n<time>`,
//!   answered with the text `100` or resent.
//! * **SMSC.ru** (smsc.ru/api/http: send, balance, status_messages, miscellaneous/callback):
//!   `POST /sys/send.php` (`login`, `psw`, `phones`, `mes`, `sender`, `fmt=3`, `charset`)
//!   answering `{"id","cnt"}` or `{"error","error_code"}` (2 bad login, 3 no funds, 6 message
//!   forbidden, 7 bad number, 8 cannot be delivered, 9 too many requests);
//!   `GET /sys/balance.php` → `{"balance","currency"}`; status callbacks as form fields `id`,
//!   `phone`, `status`, `err`, `time`; incoming texts as `phone`, `mes`, `to`, `sent`.
//! * **Twilio** (twilio.com/docs/messaging/api/message-resource, …/outbound-message-status-in-
//!   status-callbacks, …/usage/webhooks/webhooks-security; twilio-python's v2010 resources):
//!   HTTP Basic `AccountSid:AuthToken`; `GET /2010-04-01/Accounts/{sid}.json`,
//!   `…/Balance.json`; `POST …/Messages.json` form `To`, `From`, `Body`, `StatusCallback` →
//!   201 `{"sid":"SM…","status":"queued","num_segments",…}`; errors `{"code","message",
//!   "more_info","status"}` (20003 authenticate, 21211 invalid To, 21606 bad From, 21610
//!   unsubscribed recipient, 21617 over 1600 characters, 20429 too many requests with
//!   `Retry-After`); status callbacks and incoming messages as forms signed in
//!   `X-Twilio-Signature` (HMAC-SHA1 of URL + sorted name+value pairs, keyed by the token).
//!
//! Not simulated: SMS.ru incoming texts (none documented), Twilio's balance running out (Twilio
//! suspends the account rather than answering a send error okno could verify), SMSC's optional
//! callback checksum (its field is not documented where we could read it).

mod server;
mod world;

use std::sync::Arc;
use std::time::Instant;

pub use world::{count_parts, Provider};
use world::{Account, Inner};

/// A running simulator; cheap to clone.
#[derive(Clone)]
pub struct SmsSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SmsSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsSim").field("api_base", &self.inner.base).finish()
    }
}

/// One SMS a gateway accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    pub provider: Provider,
    /// The account key (`smsru:<api_id>`, `smsc:<login>`, `twilio:<sid>`).
    pub account: String,
    /// The provider's id (SMS.ru `sms_id`, SMSC `id`, Twilio `sid`).
    pub id: String,
    /// E.164 digits.
    pub to: String,
    pub sender: Option<String>,
    pub text: String,
    /// Parts and encoding as the simulator counted them (`gsm7`/`ucs2`).
    pub parts: u32,
    pub encoding: &'static str,
    /// Twilio's `StatusCallback`.
    pub status_callback: Option<String>,
    pub at: Instant,
}

/// A failure the next send answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The provider's "too many requests" (SMS.ru 220, SMSC 9, Twilio 429/20429).
    TooManyRequests,
    /// HTTP 500.
    ServerError,
    /// The recipient refused for good (SMS.ru 215, SMSC 8, Twilio 21610).
    Refused,
}

/// A delivery report to push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Sent,
    Delivered,
    Read,
    /// Undeliverable (SMS.ru 106 phone fault, SMSC 20, Twilio `undelivered` 30003).
    Failed,
}

/// A request the simulator makes (or would make) to a hook: for tests that hand it to a
/// platform themselves.
#[derive(Debug, Clone)]
pub struct HookCall {
    pub url: String,
    /// `application/x-www-form-urlencoded`.
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl HookCall {
    /// The URL's query string.
    pub fn query(&self) -> Option<&str> {
        self.url.split_once('?').map(|(_, q)| q)
    }
}

/// One push to a hook, as answered.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub url: String,
    pub status: Option<u16>,
    pub answer: String,
}

impl SmsSim {
    /// Starts on 127.0.0.1:0. Test helper: panics when the port cannot be bound.
    pub async fn start() -> SmsSim {
        SmsSim::try_start().await.unwrap_or_else(|e| panic!("sms-sim: starting on 127.0.0.1:0: {e}"))
    }

    pub async fn try_start() -> std::io::Result<SmsSim> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::new(addr)?);
        let app = server::router(inner.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("sms-sim: the HTTP server stopped: {e}");
            }
        });
        Ok(SmsSim { inner })
    }

    /// E.g. `http://127.0.0.1:PORT`, for every provider.
    pub fn api_base(&self) -> String {
        self.inner.base.clone()
    }

    fn add(&self, key: String, account: Account) -> String {
        self.inner.world().accounts.insert(key.clone(), account);
        key
    }

    /// An SMS.ru account with `balance` roubles (2.95 a part); returns its key.
    pub fn add_smsru(&self, api_id: &str, balance: f64) -> String {
        self.add(format!("smsru:{api_id}"), Account::new(Provider::Smsru, api_id, balance, 2.95, "RUB"))
    }

    /// An SMSC account with `balance` roubles (3.20 a part) and a virtual number for texts.
    pub fn add_smsc(&self, login: &str, password: &str, balance: f64) -> String {
        self.add(format!("smsc:{login}"), Account::new(Provider::Smsc, password, balance, 3.2, "RUB"))
    }

    /// A Twilio account whose number is `number` (+E.164).
    pub fn add_twilio(&self, sid: &str, token: &str, number: &str, balance: f64) -> String {
        let mut a = Account::new(Provider::Twilio, token, balance, 0.0079, "USD");
        a.number = Some(number.trim_start_matches('+').to_string());
        a.senders.insert(number.to_string());
        self.add(format!("twilio:{sid}"), a)
    }

    /// Only these sender names are approved (SMS.ru 204, SMSC 6, Twilio 21606 otherwise).
    pub fn approve_senders(&self, account: &str, senders: &[&str]) {
        self.inner.with(account, |a| a.senders.extend(senders.iter().map(|s| s.to_string())));
    }

    /// The address set in the provider's panel for callbacks (SMS.ru: apps → callback; SMSC:
    /// settings → handler URL; Twilio: the number's "A message comes in" webhook).
    pub fn set_callback(&self, account: &str, url: &str) {
        self.inner.with(account, |a| a.callback = Some(url.to_string()));
    }

    pub fn balance(&self, account: &str) -> f64 {
        self.inner.with(account, |a| a.balance)
    }

    pub fn set_balance(&self, account: &str, balance: f64) {
        self.inner.with(account, |a| a.balance = balance);
    }

    /// The number is on the provider's stop/spam list: sends to it are refused for good.
    pub fn blacklist(&self, phone: &str) {
        self.inner.world().blacklist.insert(phone.trim_start_matches('+').to_string());
    }

    /// Sends per second per account before the provider's "too many" answer; `None` turns the
    /// limit off (benchmarks). On at 50 a second from the start.
    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        self.inner.world().rate = per_second;
    }

    /// How many sends were refused as too many.
    pub fn rate_limited(&self) -> usize {
        self.inner.world().rate_limited
    }

    /// The next send (of any account) fails with `fault`; several queue up.
    pub fn fail_next(&self, fault: Fault) {
        self.inner.world().faults.push_back(fault);
    }

    /// Every accepted SMS, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.inner.world().sent.clone()
    }

    pub fn sent_count(&self) -> usize {
        self.inner.world().sent.len()
    }

    /// What reached `phone` (any form of the number), in order.
    pub fn sent_to(&self, phone: &str) -> Vec<Sent> {
        let p = phone.trim_start_matches('+');
        self.inner.world().sent.iter().filter(|s| s.to == p).cloned().collect()
    }

    /// Every push to a hook, in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.inner.world().attempts.clone()
    }

    /// The delivery report for `sent`, as the provider would POST it (SMS.ru and SMSC to the
    /// account's callback address, Twilio to the message's `StatusCallback`).
    pub fn report_call(&self, sent: &Sent, report: Report) -> HookCall {
        self.inner.report_call(sent, report)
    }

    /// Pushes `sent`'s delivery report; returns okno's answer status.
    pub async fn report(&self, sent: &Sent, report: Report) -> Option<u16> {
        let call = self.report_call(sent, report);
        self.push(&call).await
    }

    /// A person texts the account (Twilio: its number; SMSC: its virtual number), as the
    /// provider would POST it to the callback address.
    pub fn text_call(&self, account: &str, from: &str, text: &str) -> HookCall {
        self.inner.text_call(account, from, text, None)
    }

    /// A person sends an MMS with one file to a Twilio number (`MediaUrl0` served by the
    /// simulator at `/media/{n}`); returns okno's answer status.
    pub async fn mms(&self, account: &str, from: &str, text: &str, mime: &str, bytes: &[u8]) -> Option<u16> {
        let call = self.inner.text_call(account, from, text, Some((mime, bytes)));
        self.push(&call).await
    }

    /// A person texts the account; returns okno's answer status.
    pub async fn text(&self, account: &str, from: &str, text: &str) -> Option<u16> {
        let call = self.text_call(account, from, text);
        self.push(&call).await
    }

    /// Makes `call` over HTTP. SMS.ru's callback counts as taken only when answered `100`.
    pub async fn push(&self, call: &HookCall) -> Option<u16> {
        self.inner.push(call).await
    }
}
