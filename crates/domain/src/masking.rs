//! Personal data hidden from roles without [`Permission::PersonalData`] (seed 003: phone
//! numbers are not shown to everyone): the masked forms of a phone and an e-mail, and a
//! contact as such a role sees it. The server masks its answers and pages with these, and the
//! engine renders a broadcast made by such a role over the masked contact, so that no path —
//! a page, an API answer or a message's text — shows such a role what it may not see.

use crate::model::{Contact, Permission, Role};

/// `+79990001122` → `+7999•••••22`: enough to tell two numbers apart, not enough to call. At
/// most four digits are kept at the start (the country and operator code) and two at the end.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 4 {
        return "•".repeat(chars.len());
    }
    let head = if chars.len() < 9 {
        chars.len().min(5).saturating_sub(3)
    } else {
        // Up to five characters, ending after the fourth digit at the latest.
        let mut digits = 0;
        chars
            .iter()
            .take(5)
            .take_while(|c| {
                let more = digits < 4;
                digits += usize::from(c.is_ascii_digit());
                more
            })
            .count()
    };
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
