//! Personal data hidden from roles without [`Permission::PersonalData`] (seed 003: phone
//! numbers are not shown to everyone). The same masking serves the web UI, the API's contact
//! and conversation answers, and exports, so a restricted caller never sees the full value.

pub use okno_domain::masking::{contact, mask_email, mask_phone};
use okno_domain::model::{Conversation, Permission, Role};
use okno_store::{EventRecord, EventSummary};

/// Masks the contact inside a conversation.
pub fn conversation(role: Role, c: &mut Conversation) {
    contact(role, &mut c.contact);
}

/// Masks an event in place unless `role` may see personal data: its key, its data, what its
/// rules said (a condition, an error), the errors of its deliveries and everything about the
/// recipients it could not reach. The API's `GET /api/v1/events/{id}` and the event's page
/// both show it through here.
pub fn event(role: Role, e: &mut EventRecord) {
    if role.allows(Permission::PersonalData) {
        return;
    }
    e.key = mask_text(&e.key);
    e.data = mask_json(&e.data);
    for r in &mut e.rules {
        r.detail = r.detail.as_deref().map(mask_text);
    }
    for d in &mut e.deliveries {
        d.error = d.error.as_deref().map(mask_text);
    }
    for u in &mut e.unresolved {
        u.recipient = mask_text(&u.recipient);
        u.reason = mask_text(&u.reason);
        u.value = u.value.as_deref().map(mask_text);
    }
}

/// Masks an event of a list in place unless `role` may see personal data: its key and its
/// data (`GET /api/v1/events` and the events page).
pub fn event_summary(role: Role, e: &mut EventSummary) {
    if role.allows(Permission::PersonalData) {
        return;
    }
    e.key = mask_text(&e.key);
    e.data = mask_json(&e.data);
}

/// Digits a run needs to be taken for a phone number in free text: fewer are amounts, dates,
/// document numbers.
const PHONE_DIGITS: usize = 10;

/// What may stand between the digits of a phone as people write it: blanks (also the no-break
/// and thin spaces word processors put there), hyphens and dashes, dots, brackets.
fn phone_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{a0}'
            | '\u{202f}'
            | '\u{2009}'
            | '\u{2007}'
            | '-'
            | '\u{2010}'
            | '\u{2011}'
            | '\u{2013}'
            | '.'
            | '('
            | ')'
    )
}

/// Characters that end a word when looking for an email.
fn word_break(c: char) -> bool {
    c.is_whitespace() || "<>()[]{},;:\"'«»=/|\\".contains(c)
}

/// The length of a date at the start of `chars` (`22.11.2026`, `2026-11-22`, `22/11/2026`;
/// a year 1900–2099, a month, a day), if one is there and ends where its digits end.
fn date_at(chars: &[char]) -> Option<usize> {
    let group = |from: usize| -> (usize, u32) {
        let digits: String = chars.get(from..).unwrap_or_default().iter().take_while(|c| c.is_ascii_digit()).collect();
        (digits.len(), digits.parse().unwrap_or(0))
    };
    let sep = |at: usize| chars.get(at).copied().filter(|c| matches!(c, '.' | '-' | '/'));
    let (a, x) = group(0);
    let first = sep(a)?;
    let (b, y) = group(a + 1);
    if sep(a + 1 + b) != Some(first) {
        return None;
    }
    let (c, z) = group(a + 2 + b);
    let year = |v: u32| (1900..=2099).contains(&v);
    let (month, day) = (|v: u32| (1..=12).contains(&v), |v: u32| (1..=31).contains(&v));
    let day_first = (1..=2).contains(&a) && (1..=2).contains(&b) && c == 4 && day(x) && month(y) && year(z);
    let year_first = a == 4 && b == 2 && c == 2 && year(x) && month(y) && day(z);
    (day_first || year_first).then_some(a + b + c + 2)
}

/// The number that starts at `chars[0]` (a `+` or a digit) as a phone would be written:
/// groups of digits with up to three separators between them (`8 (999) 123-45-67`), ending on
/// a digit. Returns its length and whether it is a phone: ten digits or more, and not an
/// amount written in thousands (`1 250 000 000`). A group followed by `:` and a digit is a
/// time's hour, not part of the number.
fn phone_at(chars: &[char]) -> (usize, bool) {
    let plus = chars.first() == Some(&'+');
    let mut i = usize::from(plus);
    // (start, end) of each group of digits, and the separators before each group after the first.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut gaps: Vec<String> = Vec::new();
    let mut gap = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            let end = i + chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if !groups.is_empty() {
                // A date after a number (`000123-2026-11-22`) is not the rest of a phone.
                if date_at(&chars[i..]).is_some() {
                    break;
                }
                gaps.push(std::mem::take(&mut gap));
            }
            groups.push((i, end));
            i = end;
        } else if phone_separator(c) && gap.chars().count() < 3 {
            gap.push(c);
            i += 1;
        } else {
            break;
        }
    }
    let hour =
        |g: &(usize, usize)| chars.get(g.1) == Some(&':') && chars.get(g.1 + 1).is_some_and(char::is_ascii_digit);
    if groups.len() > 1 && groups.last().is_some_and(hour) {
        groups.pop();
        gaps.pop();
    }
    let Some(last) = groups.last() else { return (0, false) };
    let digits: usize = groups.iter().map(|(a, b)| b - a).sum();
    let blank =
        |g: &String| g.chars().count() == 1 && g.chars().all(|c| matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}'));
    let thousands = !plus
        && groups.len() > 1
        && (1..=3).contains(&(groups[0].1 - groups[0].0))
        && groups[1..].iter().all(|(a, b)| b - a == 3)
        && gaps.iter().all(blank);
    (last.1, digits >= PHONE_DIGITS && !thousands)
}

/// Free text (a task's details, an event's field, a survey answer, a delivery error) with the
/// phone numbers and emails in it masked. A phone starts at a `+` or a digit that does not
/// continue a word (`Телефон:+7…`, `тел.8…`, `phone=+7…`, `#7…`, `client/+7…` all do start one;
/// `ID79991234567` does not) and runs over digits and separators (blanks of any width, hyphens,
/// dots, brackets) holding ten digits or more; dates are not phones. A word with `@` and a dot
/// after it is an email.
pub fn mask_text(text: &str) -> String {
    mask_phones(&mask_emails(text))
}

fn mask_emails(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if word_break(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let end = i + chars[i..].iter().take_while(|c| !word_break(**c)).count();
        let word: String = chars[i..end].iter().collect();
        let trimmed = word.trim_end_matches(['.', '!', '?']);
        let is_email = trimmed
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'));
        if is_email {
            out.push_str(&mask_email(trimmed));
            out.push_str(&word[trimmed.len()..]);
        } else {
            out.push_str(&word);
        }
        i = end;
    }
    out
}

fn mask_phones(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts = (c == '+' || c.is_ascii_digit()) && (i == 0 || !chars[i - 1].is_alphanumeric());
        if starts {
            if let Some(len) = date_at(&chars[i..]) {
                out.extend(&chars[i..i + len]);
                i += len;
                continue;
            }
            let (len, phone) = phone_at(&chars[i..]);
            if phone {
                let run: String = chars[i..i + len].iter().collect();
                out.push_str(&mask_phone(&run));
                i += len;
                continue;
            }
            // Not a phone: the digits are copied, and no phone starts inside them.
            let skip = 1 + chars[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            out.extend(&chars[i..i + skip]);
            i += skip;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Whether a JSON key names a phone or an email (`client_phone`, `tel`, `Mobile`, `e-mail`,
/// `телефон`, `моб`, `почта`…).
fn personal_key(key: &str) -> bool {
    let key = key.to_lowercase();
    const PARTS: [&str; 11] =
        ["phone", "mail", "mobile", "msisdn", "whatsapp", "viber", "телефон", "почт", "мобильн", "сотов", "номер_тел"];
    const WORDS: [&str; 8] = ["tel", "mob", "cell", "fax", "тел", "моб", "факс", "contact_number"];
    PARTS.iter().any(|p| key.contains(p))
        || key.split(|c: char| !c.is_alphanumeric()).any(|w| WORDS.contains(&w))
        || WORDS.contains(&key.as_str())
}

/// A number long enough to be a phone number: ten integer digits or more.
fn phone_like_number(n: &serde_json::Number) -> bool {
    let text = n.to_string();
    let integer = text.trim_start_matches('-').split(['.', 'e', 'E']).next().unwrap_or("");
    integer.len() >= PHONE_DIGITS
}

/// JSON (an event's data, a task's data) as a restricted role may see it: every string with
/// its phones and emails masked, every number of ten digits or more masked, and every value
/// under a key that names a phone or an email masked whole.
pub fn mask_json(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(mask_text(s)),
        Value::Number(n) if phone_like_number(n) => Value::String(mask_phone(&n.to_string())),
        Value::Array(items) => Value::Array(items.iter().map(mask_json).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let masked = match v {
                        Value::String(s) if personal_key(k) && s.contains('@') => Value::String(mask_email(s)),
                        Value::String(s) if personal_key(k) => Value::String(mask_phone(s)),
                        Value::Number(n) if personal_key(k) => Value::String(mask_phone(&n.to_string())),
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
    #![allow(clippy::unwrap_used)] // test code

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

    /// The spellings a review found left in clear, each masked whole.
    #[test]
    fn phones_glued_to_punctuation_are_masked() {
        let cases = [
            ("Телефон:+79991234567", "Телефон:", "+79991234567"),
            ("тел.89991234567", "тел.", "89991234567"),
            ("phone=+79991234567", "phone=", "+79991234567"),
            ("#79991234567", "#", "79991234567"),
            ("client/+79991234567", "client/", "+79991234567"),
            ("тел:+7 999 123-45-67", "тел:", "+7 999 123-45-67"),
            ("+7\u{a0}999\u{a0}123\u{a0}45\u{a0}67", "", "+7\u{a0}999\u{a0}123\u{a0}45\u{a0}67"),
            ("звонить +7\u{202f}999\u{202f}123-45-67!", "звонить ", "+7\u{202f}999\u{202f}123-45-67"),
            ("(8.999.123.45.67)", "(", "8.999.123.45.67"),
        ];
        for (text, before, phone) in cases {
            let masked = mask_text(text);
            let expected = text.replacen(phone, &mask_phone(phone), 1);
            assert_eq!(masked, expected, "{text}");
            assert!(masked.starts_with(before));
            let digits = masked.chars().filter(char::is_ascii_digit).count();
            assert!(digits <= 6, "{text} → {masked}");
        }
    }

    #[test]
    fn dates_times_amounts_and_document_numbers_stay_as_they_are() {
        for text in [
            "Доставка 22.11.2026 14:00–16:00",
            "2026-11-22T14:05:00Z",
            "сумма 1 250 000 000 ₽",
            "ПКО-000123-2026-11-22",
            "счёт №12345 от 01.12.2026",
            "ИНН 7701234567 КПП 770101001",
        ] {
            let masked = mask_text(text);
            if text.starts_with("ИНН") {
                // Ten digits in a row are taken for a phone: better hidden than shown.
                assert_ne!(masked, text);
                continue;
            }
            assert_eq!(masked, text);
        }
    }

    /// A tiny deterministic generator: the same cases on every run.
    struct Cases(u64);

    impl Cases {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[(self.next() % from.len() as u64) as usize]
        }
        fn digits(&mut self, n: usize) -> String {
            (0..n).map(|_| char::from(b'0' + (self.next() % 10) as u8)).collect()
        }
    }

    /// A phone as people write it: a country or trunk prefix, then groups of digits with one
    /// kind of separator (or none), sometimes the area code in brackets.
    fn spelled(g: &mut Cases) -> String {
        let prefix = g.pick(&["+7", "8", "7", "+375", "+1", "+49"]);
        let national = g.digits(10);
        let sep = g.pick(&["", " ", "-", ".", "\u{a0}", "\u{202f}"]);
        let (area, rest) = national.split_at(3);
        let (a, rest) = rest.split_at(3);
        let (b, c) = rest.split_at(2);
        let area = if g.next().is_multiple_of(3) { format!(" ({area}) ") } else { format!("{sep}{area}{sep}") };
        let area = if sep.is_empty() && !area.contains('(') { area.trim().to_string() } else { area };
        format!("{prefix}{area}{a}{sep}{b}{sep}{c}")
    }

    #[test]
    fn generated_phones_in_any_spelling_and_context_never_show_more_than_six_digits() {
        let mut g = Cases(0x9e37_79b9_7f4a_7c15);
        let before = [
            "",
            " ",
            "Телефон:",
            "тел.",
            "тел:",
            "phone=",
            "tel:",
            "#",
            "client/",
            "(",
            "«",
            "[",
            "\n",
            "звонить ",
            "номер: ",
            "моб.",
            "WhatsApp:",
            "\u{a0}",
            "\"",
            "'",
            "{",
            "=",
            "—",
        ];
        let after = ["", ".", ",", ")", "»", ";", "!", "\n", " — Ольга", "]", "\"", "'", "}", "?", " доб."];
        for _ in 0..5_000 {
            let phone = spelled(&mut g);
            let (b, a) = (g.pick(&before), g.pick(&after));
            let text = format!("{b}{phone}{a}");
            let masked = mask_text(&text);
            let shown = masked.chars().filter(char::is_ascii_digit).count();
            assert!(shown <= 6, "{text:?} → {masked:?}");
            assert!(masked.starts_with(b) && masked.ends_with(a), "the context stays: {text:?} → {masked:?}");
            // The same number in a JSON string, and as a bare number.
            let json = mask_json(&serde_json::json!({"note": text}));
            assert_eq!(json["note"], masked);
        }
    }

    #[test]
    fn json_is_masked_by_value_and_by_key() {
        let v = serde_json::json!({"client_phone": 79991234567_i64, "note": "звонить +79991234567",
            "contact": {"Email": "a.b@c.ru"}, "amount": 1250000, "items": ["x@y.org"],
            "tel": 79991234567_i64, "clientMobile": "8 999 123 45 67", "Телефон": "+7 999 123-45-67",
            "whatsapp": "79991234567", "моб": "89991234567", "order": 100500, "big": 79991234567_i64});
        let m = mask_json(&v);
        assert_eq!(m["client_phone"], mask_phone("79991234567"));
        assert_eq!(m["note"], format!("звонить {}", mask_phone("+79991234567")));
        assert_eq!(m["contact"]["Email"], "a•••@c.ru");
        assert_eq!(m["amount"], 1250000);
        assert_eq!(m["items"][0], "x•••@y.org");
        assert_eq!(m["tel"], mask_phone("79991234567"));
        assert_eq!(m["clientMobile"], mask_phone("8 999 123 45 67"));
        assert_eq!(m["Телефон"], mask_phone("+7 999 123-45-67"));
        assert_eq!(m["whatsapp"], mask_phone("79991234567"));
        assert_eq!(m["моб"], mask_phone("89991234567"));
        assert_eq!(m["order"], 100500, "a short number under another key stays");
        assert_eq!(m["big"], mask_phone("79991234567"), "any number of ten digits or more is masked");
        assert!(!personal_key("hotel") && !personal_key("title") && personal_key("tel_2"));
    }

    #[test]
    fn a_phone_keeps_its_country_prefix_and_last_two_digits() {
        assert_eq!(mask_phone("+79990001122"), "+7999•••••22");
        assert!(!mask_phone("+79990001122").contains("000112"));
        assert_eq!(mask_phone("123"), "•••");
        assert_eq!(mask_phone("12345678"), "12••••78");
        assert_eq!(mask_phone("89990001122"), "8999•••••22", "four digits at the start, with or without a plus");
        assert_eq!(mask_phone("+7 999 000-11-22"), "+7 99•••••••••22");
    }

    #[test]
    fn an_email_keeps_its_first_letter_and_domain() {
        assert_eq!(mask_email("ivan.petrov@example.com"), "i•••@example.com");
        assert_eq!(mask_email("nonsense"), "•••");
    }
}
