//! Counterparties and employees as people okno can write to: a name, a code, phones and
//! e-mail addresses.
//!
//! Typical configurations (BP 3.0, UT 11, UNF, ZUP — built on the standard subsystems library)
//! keep contacts in the object's tabular part `КонтактнаяИнформация`: one row per value, `Тип`
//! saying what it is (`Телефон`, `АдресЭлектроннойПочты`, `Адрес`, …), the typed fields
//! `НомерТелефона` (digits, country code first) and `АдресЭП`, and `Представление`, the value as
//! a person typed it. The typed field is read first and `Представление` is the fallback (older
//! rows and hand-filled ones have only it). Which entity set, which fields and which kinds is a
//! [`FieldMap`] the connector's configuration holds.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::wire::{flag, text, Record};

/// Where a configuration keeps what okno reads of a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FieldMap {
    /// The entity set, e.g. `Catalog_Контрагенты`.
    pub entity_set: String,
    /// A `$filter` every read adds (e.g. `IsFolder eq false`: a hierarchical catalog's groups
    /// are not people); empty for none.
    pub filter: String,
    /// The field holding the name.
    pub name_field: String,
    /// The field holding the code (shown to people; the reference is the key).
    pub code_field: String,
    /// The tabular part holding contact information; empty when the configuration has none.
    pub contact_part: String,
    /// In that tabular part: the field saying what a row is.
    pub kind_field: String,
    /// The kind of a phone row.
    pub phone_kind: String,
    /// The kind of an e-mail row.
    pub email_kind: String,
    /// The typed field of a phone row.
    pub phone_field: String,
    /// The typed field of an e-mail row.
    pub email_field: String,
    /// The value as typed, read when the typed field is empty.
    pub presentation_field: String,
    /// Fields of the object itself holding a phone (configurations without the tabular part).
    pub phone_attributes: Vec<String>,
    /// Fields of the object itself holding an e-mail address.
    pub email_attributes: Vec<String>,
}

impl Default for FieldMap {
    fn default() -> Self {
        FieldMap::counterparties()
    }
}

impl FieldMap {
    /// `Catalog_Контрагенты` of a typical configuration: elements only, contacts in
    /// `КонтактнаяИнформация`.
    pub fn counterparties() -> FieldMap {
        FieldMap {
            entity_set: "Catalog_Контрагенты".into(),
            filter: "IsFolder eq false".into(),
            name_field: "Description".into(),
            code_field: "Code".into(),
            contact_part: "КонтактнаяИнформация".into(),
            kind_field: "Тип".into(),
            phone_kind: "Телефон".into(),
            email_kind: "АдресЭлектроннойПочты".into(),
            phone_field: "НомерТелефона".into(),
            email_field: "АдресЭП".into(),
            presentation_field: "Представление".into(),
            phone_attributes: Vec::new(),
            email_attributes: Vec::new(),
        }
    }

    /// `Catalog_Сотрудники` (UNF, ZUP): not hierarchical, contacts in `КонтактнаяИнформация`.
    pub fn employees() -> FieldMap {
        FieldMap {
            entity_set: "Catalog_Сотрудники".into(), filter: String::new(), ..FieldMap::counterparties()
        }
    }

    /// The fields a read asks for (`$select`): the standard ones, the mapped ones, the tabular
    /// part.
    pub fn select(&self) -> Vec<String> {
        let mut fields: Vec<String> = ["Ref_Key", "DataVersion", "DeletionMark"].map(String::from).to_vec();
        for f in [&self.name_field, &self.code_field, &self.contact_part]
            .into_iter()
            .chain(&self.phone_attributes)
            .chain(&self.email_attributes)
        {
            if !f.is_empty() && !fields.contains(f) {
                fields.push(f.clone());
            }
        }
        fields
    }
}

/// A counterparty or an employee, as okno keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The 1C reference (`Ref_Key`, a GUID): okno's `external_id`.
    pub ref_key: String,
    /// 1C's version of the object: changes on every write, says nothing about order.
    pub data_version: String,
    pub code: String,
    pub description: String,
    /// Marked for deletion in 1C (still there until an administrator deletes marked objects).
    pub deletion_mark: bool,
    /// Phones as `+<digits>`, without repeats, in 1C's order.
    pub phones: Vec<String>,
    /// E-mail addresses in lower case, without repeats, in 1C's order.
    pub emails: Vec<String>,
}

impl Person {
    /// A person from an object of the mapped entity set; `None` when it has no `Ref_Key`.
    pub fn from_record(record: &Record, map: &FieldMap) -> Option<Person> {
        let ref_key = text(record, "Ref_Key").to_ascii_lowercase();
        if !crate::wire::is_guid(&ref_key) {
            return None;
        }
        let mut phones = Vec::new();
        let mut emails = Vec::new();
        let rows = record.get(&map.contact_part).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for row in rows.iter().filter_map(Value::as_object) {
            let kind = text(row, &map.kind_field);
            let typed_or_shown = |typed: &str| {
                let v = text(row, typed);
                if v.trim().is_empty() {
                    text(row, &map.presentation_field)
                } else {
                    v
                }
            };
            if kind == map.phone_kind {
                push_new(&mut phones, normalize_phone(&typed_or_shown(&map.phone_field)));
            } else if kind == map.email_kind {
                push_new(&mut emails, normalize_email(&typed_or_shown(&map.email_field)));
            }
        }
        for f in &map.phone_attributes {
            push_new(&mut phones, normalize_phone(&text(record, f)));
        }
        for f in &map.email_attributes {
            push_new(&mut emails, normalize_email(&text(record, f)));
        }
        Some(Person {
            ref_key,
            data_version: text(record, "DataVersion"),
            code: text(record, &map.code_field).trim().to_string(),
            description: text(record, &map.name_field).trim().to_string(),
            deletion_mark: flag(record, "DeletionMark"),
            phones,
            emails,
        })
    }
}

fn push_new(list: &mut Vec<String>, value: Option<String>) {
    if let Some(v) = value {
        if !list.contains(&v) {
            list.push(v);
        }
    }
}

/// A phone as 1C holds it, as `+<digits>`: `79161234567` (the typed field: country code
/// first, no plus), `+7 (916) 123-45-67, доб. 12` (an extension is dropped), `8 916 123 45 67`
/// (the Russian trunk prefix is `+7`), `916 123-45-67` (ten digits: a Russian number without
/// its country code). `None` when it is not a phone (fewer than 5 or more than 15 digits,
/// letters in the number).
pub fn normalize_phone(raw: &str) -> Option<String> {
    let lower = raw.to_lowercase();
    // The number ends where an extension or a second number begins.
    let cut = ["доб", "ext", "вн.", ",", ";", "/"].iter().filter_map(|m| lower.find(m)).min().unwrap_or(lower.len());
    let number = lower.get(..cut)?.trim();
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || " +-().\u{a0}".contains(c)) {
        return None;
    }
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let plus = number.starts_with('+');
    let digits = match (plus, digits.len(), digits.as_bytes().first()) {
        (false, 11, Some(b'8')) => format!("7{}", &digits[1..]),
        (false, 10, Some(b'9')) => format!("7{digits}"),
        _ => digits,
    };
    (5..=15).contains(&digits.len()).then(|| format!("+{digits}"))
}

/// An e-mail address in lower case; `None` when it is not one (no `@`, an empty side, a space).
pub fn normalize_email(raw: &str) -> Option<String> {
    let lower = raw.trim().to_lowercase();
    let e = lower.trim_start_matches("mailto:").to_string();
    let (local, domain) = e.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && e.len() <= 320
        && !e.chars().any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
    ok.then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn record(v: Value) -> Record {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_counterparty_reads_with_its_contacts() {
        let r = record(json!({
            "Ref_Key": "A103CB54-42EE-11EC-A7A0-F10AB59A067E", "DataVersion": "AAAAAQAAAAA=", "DeletionMark": false,
            "Code": "000000012 ", "Description": " ООО «Ромашка» ",
            "КонтактнаяИнформация": [
                {"LineNumber": "1", "Тип": "Телефон", "Представление": "+7 916 123-45-67", "НомерТелефона": "79161234567"},
                {"LineNumber": "2", "Тип": "АдресЭлектроннойПочты", "Представление": "Ivan@Example.com", "АдресЭП": ""},
                {"LineNumber": "3", "Тип": "Телефон", "Представление": "8 (916) 123-45-67, доб. 5", "НомерТелефона": ""},
                {"LineNumber": "4", "Тип": "Адрес", "Представление": "г. Москва, ул. Тверская, 7"},
                {"LineNumber": "5", "Тип": "Телефон", "Представление": "звонить секретарю"}
            ]
        }));
        let p = Person::from_record(&r, &FieldMap::counterparties()).unwrap();
        assert_eq!(p.ref_key, "a103cb54-42ee-11ec-a7a0-f10ab59a067e");
        assert_eq!((p.code.as_str(), p.description.as_str()), ("000000012", "ООО «Ромашка»"));
        assert_eq!(p.phones, vec!["+79161234567"], "the same number twice is one, words are no number");
        assert_eq!(p.emails, vec!["ivan@example.com"], "the presentation when the typed field is empty");
        assert!(!p.deletion_mark);
        assert_eq!(Person::from_record(&record(json!({"Description": "x"})), &FieldMap::counterparties()), None);
    }

    #[test]
    fn a_map_without_the_tabular_part_reads_plain_fields() {
        let map = FieldMap {
            contact_part: String::new(),
            phone_attributes: vec!["Телефон".into()],
            email_attributes: vec!["Почта".into()],
            ..FieldMap::employees()
        };
        let r = record(json!({"Ref_Key": "a103cb54-42ee-11ec-a7a0-f10ab59a067e", "Description": "Иванова",
                              "Телефон": "9161234567", "Почта": "ivanova@shop.ru", "DeletionMark": true}));
        let p = Person::from_record(&r, &map).unwrap();
        assert_eq!(
            (p.phones, p.emails, p.deletion_mark),
            (vec!["+79161234567".into()], vec!["ivanova@shop.ru".into()], true)
        );
        assert_eq!(map.select(), ["Ref_Key", "DataVersion", "DeletionMark", "Description", "Code", "Телефон", "Почта"]);
    }

    #[test]
    fn phones_are_written_one_way() {
        for (raw, want) in [
            ("79161234567", Some("+79161234567")),
            ("+7 (916) 123-45-67", Some("+79161234567")),
            ("8 916 123 45 67", Some("+79161234567")),
            ("916-123-45-67", Some("+79161234567")),
            ("+375 29 123-45-67", Some("+375291234567")),
            ("+7 495 123-45-67 доб. 123", Some("+74951234567")),
            ("+7 495 1234567, +7 916 1234567", Some("+74951234567")),
            ("12-34", None),
            ("тел. 12345", None),
            ("", None),
            ("+1234567890123456", None),
        ] {
            assert_eq!(normalize_phone(raw).as_deref(), want, "{raw}");
        }
        assert_eq!(normalize_email(" Anna@Shop.RU "), Some("anna@shop.ru".into()));
        for bad in ["anna", "@shop.ru", "anna@", "an na@shop.ru", "anna@shop", "a@b@c.ru"] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
    }

    proptest! {
        /// Any text: a phone of 5–15 digits after a plus, or nothing; never a panic. A phone
        /// read again is itself.
        #[test]
        fn any_text_is_a_phone_or_none(raw in "\\PC{0,40}") {
            if let Some(p) = normalize_phone(&raw) {
                prop_assert!(p.starts_with('+'));
                prop_assert!((6..=16).contains(&p.len()) && p[1..].bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(normalize_phone(&p), Some(p.clone()));
            }
        }

        /// Numbers written the ways people write them come out the same.
        #[test]
        fn one_number_many_spellings(rest in "[0-9]{10}") {
            let spaced = format!("+7 ({}) {}-{}-{}", &rest[..3], &rest[3..6], &rest[6..8], &rest[8..]);
            let want = format!("+7{rest}");
            prop_assert_eq!(normalize_phone(&format!("7{rest}")), Some(want.clone()));
            prop_assert_eq!(normalize_phone(&spaced), Some(want.clone()));
            prop_assert_eq!(normalize_phone(&format!("8{rest}")), Some(want));
        }

        /// Any tabular part, however odd its rows, reads without a panic.
        #[test]
        fn any_contact_rows_read(rows in proptest::collection::vec((0u8..4, "\\PC{0,25}", "\\PC{0,25}"), 0..12)) {
            let rows: Vec<Value> = rows.into_iter().map(|(k, typed, shown)| {
                let kind = ["Телефон", "АдресЭлектроннойПочты", "Адрес", ""][usize::from(k)];
                json!({"Тип": kind, "НомерТелефона": typed, "АдресЭП": typed, "Представление": shown})
            }).collect();
            let r = record(json!({"Ref_Key": "a103cb54-42ee-11ec-a7a0-f10ab59a067e", "КонтактнаяИнформация": rows}));
            let p = Person::from_record(&r, &FieldMap::counterparties()).unwrap();
            prop_assert!(p.phones.iter().all(|x| normalize_phone(x).as_ref() == Some(x)));
            prop_assert!(p.emails.iter().all(|x| normalize_email(x).as_ref() == Some(x)));
        }
    }
}
