//! What the gateways POST to okno's hook: delivery reports and people's texts, per provider,
//! read into inbound events. Parsing never panics; a request okno cannot read is an error.
//!
//! Sources:
//! * Twilio — status callbacks (form `MessageSid`, `MessageStatus` queued/sending/sent/
//!   delivered/undelivered/failed/read, `ErrorCode`), incoming messages (form `MessageSid`,
//!   `From`, `To`, `Body`, `NumMedia`, `MediaUrl{N}`, `MediaContentType{N}`), both signed in
//!   `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, URL + every POST parameter sorted by
//!   name as name+value)) (twilio.com/docs/usage/webhooks/webhooks-security; twilio-node's
//!   `webhooks.js` `getExpectedTwilioSignature`).
//! * SMS.ru — the callback POSTs `data[0]`, `data[1]`… each `sms_status\n<sms_id>\n<code>…`;
//!   codes 102 sent, 103 delivered, 110 read, 104–108 and 150 failed (sms.ru/api/status;
//!   the SmsRu .NET `CallbackHandler`); it is answered with the text `100`. SMS.ru documents no
//!   incoming SMS by callback: other line types are ignored.
//! * SMSC — the handler gets form fields `id`, `phone`, `status`, `err` for a report (statuses
//!   1 delivered, 2 read, 3 expired, 20 undeliverable, 22 bad number, 23 prohibited, 24 no
//!   funds, 25 unavailable), and `phone`, `mes`, `to` for a text to a virtual number
//!   (smsc.ru/api/http/miscellaneous/callback; the status list of /status_messages).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use okno_channel::{InboundAttachment, InboundEvent, InboundMessage, InboundSender, Received};
use okno_domain::model::MessageStatus;

use crate::gateway::{smsc_external_id, Provider};
use crate::segments::normalise_phone;

/// The form fields of a request body, in order.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Twilio's signature of a request to `url` with form `params`.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `given` is Twilio's signature of the request (compared in constant time).
pub fn twilio_signed(auth_token: &str, url: &str, params: &[(String, String)], given: &str) -> bool {
    let expected = twilio_signature(auth_token, url, params);
    !given.is_empty() && okno_domain::signing::secrets_equal(&expected, given)
}

fn status(external_id: String, status: MessageStatus, reason: Option<String>) -> Received {
    Received::new(InboundEvent::Status { external_id, status, reason })
}

fn message(
    channel_id: &str,
    phone: String,
    external_id: String,
    text: Option<String>,
    attachments: Vec<InboundAttachment>,
) -> Received {
    let sender = InboundSender {
        user_id: phone.clone(),
        chat_id: phone.clone(),
        username: None,
        display_name: Some(format!("+{phone}")),
        phone: Some(format!("+{phone}")),
        email: None,
        is_group: false,
    };
    Received::new(InboundEvent::Message(Box::new(InboundMessage {
        channel_id: channel_id.into(),
        sender,
        external_id,
        text,
        attachments,
        button_data: None,
        reply_to: None,
        reply_to_external: None,
        author: None,
        member: None,
        bot_turn: false,
        subscription: None,
        survey: Default::default(),
        context: None,
        conversation_hint: None,
    })))
}

/// Reads a (verified) hook request of `provider`.
pub fn parse(provider: Provider, channel_id: &str, body: &[u8]) -> Result<Vec<Received>, String> {
    let f = form(body);
    match provider {
        Provider::Twilio => twilio(channel_id, &f).map(|r| vec![r]),
        Provider::Smsru => smsru(&f),
        Provider::Smsc => smsc(channel_id, &f).map(|r| vec![r]),
    }
}

fn twilio(channel_id: &str, f: &[(String, String)]) -> Result<Received, String> {
    let sid = field(f, "MessageSid").or(field(f, "SmsSid")).filter(|s| !s.is_empty());
    let sid = sid.ok_or("no MessageSid")?.to_string();
    let st = field(f, "MessageStatus").or(field(f, "SmsStatus")).unwrap_or_default();
    let incoming = field(f, "Body").is_some() && matches!(st, "" | "received" | "receiving");
    if incoming {
        let from = field(f, "From").and_then(normalise_phone).ok_or("no phone number in From")?;
        let body = field(f, "Body").unwrap_or_default();
        let media: usize = field(f, "NumMedia").and_then(|n| n.parse().ok()).unwrap_or(0).min(10);
        let mut attachments = Vec::new();
        for i in 0..media {
            if let Some(url) = field(f, &format!("MediaUrl{i}")).filter(|u| u.starts_with("http")) {
                let mime = field(f, &format!("MediaContentType{i}")).unwrap_or("application/octet-stream");
                let ext = mime.rsplit('/').next().unwrap_or("bin");
                attachments.push(InboundAttachment::Url {
                    name: format!("mms-{i}.{ext}"),
                    mime: mime.into(),
                    url: url.into(),
                });
            }
        }
        let text = (!body.is_empty()).then(|| body.to_string());
        return Ok(message(channel_id, from, sid, text, attachments));
    }
    let reason = || {
        let code = field(f, "ErrorCode").filter(|c| !c.is_empty());
        let msg = field(f, "ErrorMessage").filter(|c| !c.is_empty());
        Some(match (code, msg) {
            (Some(c), Some(m)) => format!("Twilio: {m} (error {c})"),
            (Some(c), None) => format!("Twilio: {st} (error {c})"),
            (None, Some(m)) => format!("Twilio: {m}"),
            (None, None) => format!("Twilio: {st}"),
        })
    };
    Ok(match st {
        "sent" => status(sid, MessageStatus::Sent, None),
        "delivered" => status(sid, MessageStatus::Delivered, None),
        "read" => status(sid, MessageStatus::Read, None),
        "undelivered" | "failed" => status(sid, MessageStatus::Failed, reason()),
        _ => Received::new(InboundEvent::Ignore),
    })
}

/// SMS.ru's delivery states (sms.ru/api/status).
pub fn smsru_state(code: i64) -> Option<(MessageStatus, Option<&'static str>)> {
    Some(match code {
        102 => (MessageStatus::Sent, None),
        103 => (MessageStatus::Delivered, None),
        110 => (MessageStatus::Read, None),
        104 => (MessageStatus::Failed, Some("не может быть доставлено: истекло время жизни сообщения")),
        105 => (MessageStatus::Failed, Some("не может быть доставлено: удалено оператором")),
        106 => (MessageStatus::Failed, Some("не может быть доставлено: сбой в телефоне")),
        107 => (MessageStatus::Failed, Some("не может быть доставлено: неизвестная причина")),
        108 => (MessageStatus::Failed, Some("не может быть доставлено: отклонено")),
        150 => (MessageStatus::Failed, Some("не может быть доставлено: не найден маршрут на данный номер")),
        _ => return None,
    })
}

fn smsru(f: &[(String, String)]) -> Result<Vec<Received>, String> {
    let items: Vec<&str> = f.iter().filter(|(k, _)| k.starts_with("data[")).map(|(_, v)| v.as_str()).collect();
    if items.is_empty() {
        return Err("no data[] fields".into());
    }
    Ok(items
        .into_iter()
        .map(|item| {
            let lines: Vec<&str> = item.lines().map(str::trim).collect();
            match lines.as_slice() {
                ["sms_status", id, code, ..] if !id.is_empty() => {
                    match code.parse::<i64>().ok().and_then(smsru_state) {
                        Some((st, reason)) => {
                            status(id.to_string(), st, reason.map(|r| format!("SMS.ru: {r} (код {code})")))
                        }
                        None => Received::new(InboundEvent::Ignore),
                    }
                }
                _ => Received::new(InboundEvent::Ignore),
            }
        })
        .collect())
}

/// SMSC's delivery states (smsc.ru/api/http/status_messages).
pub fn smsc_state(code: i64) -> Option<(MessageStatus, Option<&'static str>)> {
    Some(match code {
        1 => (MessageStatus::Delivered, None),
        2 => (MessageStatus::Read, None),
        3 => (MessageStatus::Failed, Some("просрочено")),
        20 => (MessageStatus::Failed, Some("невозможно доставить")),
        22 => (MessageStatus::Failed, Some("неверный номер")),
        23 => (MessageStatus::Failed, Some("запрещено")),
        24 => (MessageStatus::Failed, Some("недостаточно средств")),
        25 => (MessageStatus::Failed, Some("недоступный номер")),
        _ => return None,
    })
}

fn smsc(channel_id: &str, f: &[(String, String)]) -> Result<Received, String> {
    let phone = field(f, "phone").and_then(normalise_phone).ok_or("no phone")?;
    if let Some(mes) = field(f, "mes") {
        // A text to the account's virtual number: named by SMSC's id when it gives one.
        let id = match field(f, "id").filter(|i| !i.is_empty()) {
            Some(id) => format!("in:{id}"),
            None => {
                let sent = field(f, "sent").or(field(f, "time")).unwrap_or_default();
                let key = format!("{phone}\n{sent}\n{mes}");
                format!("in:{}", &okno_domain::signing::sha256_hex(key.as_bytes())[..24])
            }
        };
        return Ok(message(channel_id, phone, id, Some(mes.to_string()).filter(|m| !m.is_empty()), Vec::new()));
    }
    let id = field(f, "id").filter(|i| !i.is_empty()).ok_or("no id")?;
    let code: i64 = field(f, "status").and_then(|s| s.trim().parse().ok()).ok_or("no status")?;
    Ok(match smsc_state(code) {
        Some((st, reason)) => {
            let err = field(f, "err").filter(|e| !e.is_empty() && *e != "0");
            let reason = reason.map(|r| match err {
                Some(e) => format!("SMSC: {r} (статус {code}, ошибка {e})"),
                None => format!("SMSC: {r} (статус {code})"),
            });
            status(smsc_external_id(id, &phone), st, reason)
        }
        None => Received::new(InboundEvent::Ignore),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(r: &Received) -> &InboundEvent {
        &r.event
    }

    #[test]
    fn twilios_example_signature_is_reproduced() {
        // The worked example of Twilio's webhook-security page (also in twilio-node's tests).
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(twilio_signature("12345", url, &params), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(twilio_signed("12345", url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!twilio_signed("12346", url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn reports_and_texts_are_read() {
        let r = parse(Provider::Twilio, "c", b"MessageSid=SM1&MessageStatus=undelivered&ErrorCode=30003").unwrap();
        assert!(
            matches!(event(&r[0]), InboundEvent::Status { status: MessageStatus::Failed, reason: Some(m), .. } if m.contains("30003"))
        );
        let r = parse(Provider::Twilio, "c", b"MessageSid=SM2&From=%2B79001234567&To=%2B15005550006&Body=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82&NumMedia=0").unwrap();
        assert!(
            matches!(event(&r[0]), InboundEvent::Message(m) if m.sender.user_id == "79001234567" && m.text.as_deref() == Some("Привет"))
        );
        let r = parse(Provider::Smsru, "c", b"data%5B0%5D=sms_status%0A000000-10000001%0A103%0A1700000000&data%5B1%5D=sms_status%0A000000-10000002%0A106").unwrap();
        assert!(
            matches!(event(&r[0]), InboundEvent::Status { status: MessageStatus::Delivered, external_id, .. } if external_id == "000000-10000001")
        );
        assert!(matches!(event(&r[1]), InboundEvent::Status { status: MessageStatus::Failed, reason: Some(_), .. }));
        let r = parse(Provider::Smsc, "c", b"id=42&phone=79001234567&status=20&err=1").unwrap();
        assert!(
            matches!(event(&r[0]), InboundEvent::Status { status: MessageStatus::Failed, external_id, .. } if external_id == "42:79001234567")
        );
        let r =
            parse(Provider::Smsc, "c", b"phone=79001234567&mes=%D0%94%D0%B0&to=79990000000&sent=1700000000").unwrap();
        assert!(matches!(event(&r[0]), InboundEvent::Message(m) if m.text.as_deref() == Some("Да")));
        assert!(parse(Provider::Smsru, "c", b"").is_err());
        assert!(parse(Provider::Smsc, "c", b"phone=abc&status=1").is_err());
    }
}
