//! How long an SMS is, in the parts an operator bills, and people's phone numbers.
//!
//! Source: 3GPP TS 23.038 (the GSM 7-bit default alphabet and its extension table) as the
//! research file summarises it (`E_more_channels.md` §4.4): one SMS carries 140 bytes — 160
//! GSM-7 characters, or 70 UCS-2 units; a concatenated message loses 6 bytes a part to its
//! header — 153 GSM-7 characters or 67 UCS-2 units a part. Any character outside GSM-7 turns
//! the whole message into UCS-2 (Cyrillic does); an extension character (`^ { } \ [ ~ ] | €`
//! and the form feed) costs two GSM-7 characters; a character outside the BMP (most emoji)
//! costs two UTF-16 units.

/// The GSM 7-bit default alphabet (3GPP TS 23.038 §6.2.1), in table order.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table (reached by an escape, so each costs two characters).
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// How a text is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }

    /// What one SMS alone carries, and one part of a concatenated SMS.
    pub fn capacity(self) -> (usize, usize) {
        match self {
            Encoding::Gsm7 => (160, 153),
            Encoding::Ucs2 => (70, 67),
        }
    }
}

/// How a text goes out: its encoding, its length in that encoding's units, its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub encoding: Encoding,
    /// GSM-7 septets (extension characters count two) or UTF-16 units.
    pub units: usize,
    pub parts: u32,
}

fn gsm7_cost(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Counts `text` the way an SMS centre does.
pub fn count(text: &str) -> Count {
    let gsm: Option<usize> = text.chars().map(gsm7_cost).sum();
    let (encoding, units) = match gsm {
        Some(n) => (Encoding::Gsm7, n),
        None => (Encoding::Ucs2, text.encode_utf16().count()),
    };
    let (single, part) = encoding.capacity();
    let parts = if units <= single { 1 } else { units.div_ceil(part) };
    Count { encoding, units, parts: u32::try_from(parts).unwrap_or(u32::MAX) }
}

/// A phone number as okno keeps it for SMS: E.164 digits without the `+` (`79001234567`).
/// Spaces, dashes, dots and brackets are dropped; `00` before a country code is the `+`; a
/// Russian number written the domestic way (`8 900 …`, 11 digits) or without its country code
/// (`900 …`, 10 digits starting with 9) becomes `7…`. `None`: not a phone number (letters, too
/// short or long for E.164).
pub fn normalise_phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.chars().any(|c| !(c.is_ascii_digit() || " -().+\u{a0}".contains(c))) {
        return None;
    }
    let plus = raw.starts_with('+');
    if raw.chars().skip(1).any(|c| c == '+') {
        return None;
    }
    let mut digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if !plus {
        if let Some(rest) = digits.strip_prefix("00") {
            digits = rest.to_string();
        } else if digits.len() == 11 && digits.starts_with('8') {
            digits.replace_range(0..1, "7");
        } else if digits.len() == 10 && digits.starts_with('9') {
            digits.insert(0, '7');
        }
    }
    // E.164: at most 15 digits; no country code starts with 0; the shortest numbers in use
    // are 8 digits with their country code.
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return None;
    }
    Some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gsm7_texts_fit_160_then_153_a_part() {
        assert_eq!(count(""), Count { encoding: Encoding::Gsm7, units: 0, parts: 1 });
        assert_eq!(count(&"a".repeat(160)).parts, 1);
        assert_eq!(count(&"a".repeat(161)).parts, 2);
        assert_eq!(count(&"a".repeat(306)).parts, 2);
        assert_eq!(count(&"a".repeat(307)).parts, 3);
        assert_eq!(count("Order #1042 @ 5€").units, 17, "€ costs two");
        assert_eq!(count(&"{".repeat(80)).parts, 1, "80 extension characters are 160 septets");
        assert_eq!(count(&"{".repeat(81)).parts, 2);
        assert_eq!(count("Ärger über Öl, ñ, à, É").encoding, Encoding::Gsm7, "the accented letters GSM-7 has");
    }

    #[test]
    fn anything_else_is_ucs2_at_70_then_67_a_part() {
        let ru = "Ваш заказ №1042 готов";
        assert_eq!(count(ru).encoding, Encoding::Ucs2);
        assert_eq!(count(&"я".repeat(70)).parts, 1);
        assert_eq!(count(&"я".repeat(71)).parts, 2);
        assert_eq!(count(&"я".repeat(134)).parts, 2);
        assert_eq!(count(&"я".repeat(135)).parts, 3);
        assert_eq!(count("👋").units, 2, "outside the BMP: two UTF-16 units");
        assert_eq!(count(&format!("{}á", "a".repeat(100))).encoding, Encoding::Ucs2, "á is not in GSM-7");
        assert_eq!(count("ç").encoding, Encoding::Ucs2, "only the capital Ç is in GSM-7");
    }

    #[test]
    fn phone_numbers_are_normalised_to_e164_digits() {
        for raw in
            ["+7 (900) 123-45-67", "8 900 123 45 67", "89001234567", "9001234567", "79001234567", "007 900 1234567"]
        {
            assert_eq!(normalise_phone(raw).as_deref(), Some("79001234567"), "{raw}");
        }
        assert_eq!(normalise_phone("+1 415-555-0100").as_deref(), Some("14155550100"));
        assert_eq!(normalise_phone("+44 20 7946 0958").as_deref(), Some("442079460958"));
        for bad in ["", "abc", "+7 900 12", "12345", "+7900123456789012", "7900+1234567", "0900123456"] {
            assert_eq!(normalise_phone(bad), None, "{bad:?}");
        }
    }

    fn gsm_char() -> impl Strategy<Value = char> {
        prop::sample::select(GSM7_BASIC.chars().chain(GSM7_EXTENSION.chars()).collect::<Vec<_>>())
    }

    proptest! {
        /// GSM-7 texts: units are the characters plus one per extension character, and the
        /// parts are exactly what the 160/153 rule gives; every part count is the least that
        /// holds the text.
        #[test]
        fn gsm7_counts_hold(text in prop::collection::vec(gsm_char(), 0..700).prop_map(|v| v.into_iter().collect::<String>())) {
            let c = count(&text);
            prop_assert_eq!(c.encoding, Encoding::Gsm7);
            let ext = text.chars().filter(|ch| GSM7_EXTENSION.contains(*ch)).count();
            prop_assert_eq!(c.units, text.chars().count() + ext);
            let parts = c.parts as usize;
            if c.units <= 160 { prop_assert_eq!(parts, 1); } else {
                prop_assert!(parts * 153 >= c.units && (parts - 1) * 153 < c.units);
            }
        }

        /// Any text: one non-GSM character makes it UCS-2 counted in UTF-16 units; parts never
        /// shrink when the text grows.
        #[test]
        fn any_text_is_counted(text in "\\PC{0,400}", more in "\\PC{0,20}") {
            let c = count(&text);
            if c.encoding == Encoding::Ucs2 {
                prop_assert!(text.chars().any(|ch| gsm7_cost(ch).is_none()));
                prop_assert_eq!(c.units, text.encode_utf16().count());
                let parts = c.parts as usize;
                if c.units <= 70 { prop_assert_eq!(parts, 1); } else {
                    prop_assert!(parts * 67 >= c.units && (parts - 1) * 67 < c.units);
                }
            }
            let longer = count(&format!("{text}{more}"));
            prop_assert!(longer.parts >= c.parts);
        }

        /// Normalised numbers are 8–15 digits, normalising one again as an international number
        /// (`+` before it) changes nothing, and the way a
        /// number is written (spaces, dashes, brackets, +7 or 8) does not matter.
        #[test]
        fn the_normaliser_is_stable(body in "9[0-9]{9}", sep in prop::sample::select(vec!["", " ", "-", "."]), any in "[ -~]{0,20}") {
            let plain = format!("7{body}");
            let written = format!("+7 ({}){sep}{}{sep}{}{sep}{}", &body[..3], &body[3..6], &body[6..8], &body[8..]);
            prop_assert_eq!(normalise_phone(&written), Some(plain.clone()));
            prop_assert_eq!(normalise_phone(&format!("8{body}")), Some(plain.clone()));
            prop_assert_eq!(normalise_phone(&body), Some(plain.clone()));
            if let Some(n) = normalise_phone(&any) {
                prop_assert!((8..=15).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(normalise_phone(&format!("+{n}")), Some(n.clone()));
            }
        }
    }
}
