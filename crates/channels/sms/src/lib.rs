//! The SMS channel: one `sms` kind over SMS.ru, SMSC.ru and Twilio-shaped gateways. Message
//! length in parts and its cost ([`segments`]), the gateways' wire and error codes
//! ([`gateway`]), delivery reports and people's texts from the hook ([`inbound`]), and the
//! platform okno's engine drives ([`Sms`]).

pub mod gateway;
pub mod inbound;
pub mod segments;

mod platform;

pub use platform::{hook_url, Sms, SmsAdapter, SECRET_PARAM};
