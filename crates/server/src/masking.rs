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

#[cfg(test)]
mod tests {
    use super::*;

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
