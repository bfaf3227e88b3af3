//! Personal data hidden from roles without [`Permission::PersonalData`] (seed 003: phone
//! numbers are not shown to everyone). The same masking serves the web UI, the API's contact
//! and conversation answers, and exports, so a restricted caller never sees the full value.

use okno_domain::model::{Contact, Conversation, Permission, Role};

/// `+79990001122` → `+7999•••••22`: enough to tell two numbers apart, not enough to call.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 4 {
        return "•".repeat(chars.len());
    }
    let head = chars.len().min(5).saturating_sub(if chars.len() < 9 { 3 } else { 0 });
    let tail = 2;
    let hidden = chars.len().saturating_sub(head + tail);
    let mut out: String = chars[..head].iter().collect();
    out.push_str(&"•".repeat(hidden));
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// `ivan.petrov@example.com` → `i•••@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".to_string(),
    }
}

/// Masks a contact's phone and email in place unless `role` may see them.
pub fn contact(role: Role, c: &mut Contact) {
    if role.allows(Permission::PersonalData) {
        return;
    }
    c.phone = c.phone.as_deref().map(mask_phone);
    c.email = c.email.as_deref().map(mask_email);
}

/// Masks the contact inside a conversation.
pub fn conversation(role: Role, c: &mut Conversation) {
    contact(role, &mut c.contact);
}

/// Digits a run needs to be taken for a phone number in free text: fewer are amounts, dates,
/// document numbers.
const PHONE_DIGITS: usize = 10;

/// Free text (a task's details, an event's field, a survey answer) with the phone numbers and
/// emails in it masked: a run of digits, spaces, `+ - ( )` holding ten digits or more is a
/// phone; a word with `@` and a dot after it is an email.
pub fn mask_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '+' || c.is_ascii_digit() {
            // The longest run of phone characters from here, ending on a digit.
            let mut end = i;
            let mut last_digit = None;
            while end < chars.len() && (chars[end].is_ascii_digit() || " +-()".contains(chars[end])) {
                if chars[end].is_ascii_digit() {
                    last_digit = Some(end);
                }
                end += 1;
            }
            if let Some(last) = last_digit {
                let run: String = chars[i..=last].iter().collect();
                let digits = run.chars().filter(char::is_ascii_digit).count();
                // Part of a longer word (`ID123…`) is not a phone.
                let glued = i > 0 && chars[i - 1].is_alphanumeric();
                if digits >= PHONE_DIGITS && !glued {
                    out.push_str(&mask_phone(&run));
                    i = last + 1;
                    continue;
                }
            }
        }
        if !c.is_whitespace() && !"<>()[]{},;:\"'«»".contains(c) {
            let mut end = i;
            while end < chars.len() && !chars[end].is_whitespace() && !"<>()[]{},;\"'«»".contains(chars[end]) {
                end += 1;
            }
            let word: String = chars[i..end].iter().collect();
            let word = word.trim_end_matches(['.', '!', '?']);
            let is_email = word
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'));
            if is_email {
                out.push_str(&mask_email(word));
                i += word.chars().count();
                continue;
            }
            // Not an email: copy the word as it is (a phone may not start inside it).
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// JSON (an event's data, a task's data) as a restricted role may see it: every string with
/// its phones and emails masked, and every value under a key that names a phone or an email.
pub fn mask_json(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(mask_text(s)),
        Value::Array(items) => Value::Array(items.iter().map(mask_json).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = k.to_lowercase();
                    let personal = ["phone", "email", "mail", "телефон", "почта"].iter().any(|p| key.contains(p));
                    let masked = match v {
                        Value::String(s) if personal && s.contains('@') => Value::String(mask_email(s)),
                        Value::String(s) if personal => Value::String(mask_phone(s)),
                        Value::Number(n) if personal => Value::String(mask_phone(&n.to_string())),
                        other => mask_json(other),
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_and_emails_in_free_text_are_masked_and_other_numbers_are_not() {
        let text =
            "Клиент: Ольга, +7 999 123-45-67, ivan.petrov@example.com; заказ ЗК-000123 на 1 250 000 ₽ от 2026-11-22.";
        let masked = mask_text(text);
        assert!(!masked.contains("123-45"), "{masked}");
        assert!(!masked.contains("ivan.petrov"), "{masked}");
        assert!(masked.contains("i•••@example.com"), "{masked}");
        assert!(masked.contains("+7 99"), "{masked}");
        for kept in ["Клиент: Ольга", "ЗК-000123", "1 250 000 ₽", "2026-11-22"] {
            assert!(masked.contains(kept), "{kept} in {masked}");
        }
        assert_eq!(mask_text("89991234567"), mask_phone("89991234567"));
        assert_eq!(mask_text("ID79991234567"), "ID79991234567", "part of a word");
    }

    #[test]
    fn json_is_masked_by_value_and_by_key() {
        let v = serde_json::json!({"client_phone": 79991234567_i64, "note": "звонить +79991234567",
            "contact": {"Email": "a.b@c.ru"}, "amount": 1250000, "items": ["x@y.org"]});
        let m = mask_json(&v);
        assert_eq!(m["client_phone"], mask_phone("79991234567"));
        assert_eq!(m["note"], format!("звонить {}", mask_phone("+79991234567")));
        assert_eq!(m["contact"]["Email"], "a•••@c.ru");
        assert_eq!(m["amount"], 1250000);
        assert_eq!(m["items"][0], "x•••@y.org");
    }

    #[test]
    fn a_phone_keeps_its_country_prefix_and_last_two_digits() {
        assert_eq!(mask_phone("+79990001122"), "+7999•••••22");
        assert!(!mask_phone("+79990001122").contains("000112"));
        assert_eq!(mask_phone("123"), "•••");
        assert_eq!(mask_phone("12345678"), "12••••78");
    }

    #[test]
    fn an_email_keeps_its_first_letter_and_domain() {
        assert_eq!(mask_email("ivan.petrov@example.com"), "i•••@example.com");
        assert_eq!(mask_email("nonsense"), "•••");
    }
}
