//! Reading a form answer the way people type it: `1 500,5`, `05.03.2026`, `8 (999) 000-11-22`.

use okno_domain::model::normalize_phone;
use serde_json::{json, Value};

use super::def::{FieldKind, Step};

/// What a person sent for one step.
pub struct Answer<'a> {
    pub text: Option<&'a str>,
    /// The ids of files attached to the message.
    pub files: &'a [String],
}

/// The stored value of an answer, or the hint to show when it does not fit the step.
pub fn read(step: &Step, answer: &Answer) -> Result<Value, String> {
    let text = answer.text.map(str::trim).unwrap_or_default();
    match step.kind {
        FieldKind::File => {
            answer.files.first().map(|id| json!(id)).ok_or_else(|| "Пришлите файл или фотографию.".to_string())
        }
        _ if text.is_empty() => Err("Ответ не может быть пустым.".into()),
        FieldKind::Text => text_value(step, text),
        FieldKind::Number => number(step, text),
        FieldKind::Date => date(text).map(Value::String),
        FieldKind::Phone => phone(text).map(Value::String),
        FieldKind::Choice => text
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|n| step.options.get(n))
            .or_else(|| step.options.iter().find(|o| o.trim().to_lowercase() == text.to_lowercase()))
            .map(|o| json!(o))
            .ok_or_else(|| format!("Выберите один из вариантов: {}.", step.options.join(", "))),
        FieldKind::Confirm => match text.to_lowercase().as_str() {
            "да" | "yes" | "y" | "д" | "+" | "1" => Ok(json!(true)),
            "нет" | "no" | "n" | "н" | "-" | "2" => Ok(json!(false)),
            _ => Err("Ответьте «Да» или «Нет».".into()),
        },
    }
}

fn text_value(step: &Step, text: &str) -> Result<Value, String> {
    let n = text.chars().count();
    if let Some(min) = step.min_length.filter(|m| n < *m) {
        return Err(format!("Слишком коротко: нужно не меньше {min} символов."));
    }
    if let Some(max) = step.max_length.filter(|m| n > *m) {
        return Err(format!("Слишком длинно: не больше {max} символов."));
    }
    if let Some(p) = &step.pattern {
        let ok = regex::Regex::new(p).map(|r| r.is_match(text)).unwrap_or(false);
        if !ok {
            return Err("Ответ не подходит по формату, попробуйте ещё раз.".into());
        }
    }
    Ok(json!(text))
}

fn number(step: &Step, text: &str) -> Result<Value, String> {
    let cleaned: String = text.chars().filter(|c| !c.is_whitespace() && *c != '\u{a0}').collect();
    let n: f64 =
        cleaned.replace(',', ".").parse().map_err(|_| "Введите число, например 12 или 1 500,5.".to_string())?;
    if !n.is_finite() {
        return Err("Введите число.".into());
    }
    if let Some(min) = step.min.filter(|m| n < *m) {
        return Err(format!("Число должно быть не меньше {}.", show(min)));
    }
    if let Some(max) = step.max.filter(|m| n > *m) {
        return Err(format!("Число должно быть не больше {}.", show(max)));
    }
    Ok(if n.fract() == 0.0 && n.abs() < 9e15 { json!(n as i64) } else { json!(n) })
}

fn show(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// `ДД.ММ.ГГГГ`, `Д.М.ГГГГ`, `ДД/ММ/ГГГГ` or `ГГГГ-ММ-ДД` → `ГГГГ-ММ-ДД`.
pub fn date(text: &str) -> Result<String, String> {
    let hint = || "Введите дату в виде ДД.ММ.ГГГГ, например 05.03.2026.".to_string();
    let parts: Vec<&str> = text.split(['.', '/', '-']).map(str::trim).collect();
    let [a, b, c] = parts.as_slice() else { return Err(hint()) };
    let (y, m, d) = if a.len() == 4 { (*a, *b, *c) } else { (*c, *b, *a) };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i16>(), m.parse::<i8>(), d.parse::<i8>()) else { return Err(hint()) };
    if !(1900..=2200).contains(&y) {
        return Err(hint());
    }
    jiff::civil::Date::new(y, m, d).map(|d| d.to_string()).map_err(|_| "Такой даты нет в календаре.".to_string())
}

/// A phone number however it is written (a shared Telegram contact arrives as `Name 7999…`).
pub fn phone(text: &str) -> Result<String, String> {
    let candidate = normalize_phone(text).ok().or_else(|| {
        let start = text.find(|c: char| c.is_ascii_digit() || c == '+')?;
        normalize_phone(text[start..].trim()).ok()
    });
    // Ten digits starting with 9 are a Russian mobile number written without the country code.
    let candidate = candidate.map(|p| if p.len() == 11 && p.starts_with("+9") { format!("+7{}", &p[1..]) } else { p });
    candidate.ok_or_else(|| "Введите номер телефона, например +7 999 000-11-22.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: FieldKind) -> Step {
        Step {
            field: "f".into(),
            ask: "?".into(),
            kind,
            optional: false,
            min: None,
            max: None,
            min_length: None,
            max_length: None,
            pattern: None,
            options: vec![],
        }
    }

    fn text(step: &Step, t: &str) -> Result<Value, String> {
        read(step, &Answer { text: Some(t), files: &[] })
    }

    #[test]
    fn numbers_as_people_type_them() {
        let mut s = step(FieldKind::Number);
        assert_eq!(text(&s, "1 500,5").unwrap(), json!(1500.5));
        assert_eq!(text(&s, "14").unwrap(), json!(14));
        assert!(text(&s, "четырнадцать").unwrap_err().contains("число"));
        s.min = Some(1.0);
        s.max = Some(28.0);
        assert!(text(&s, "30").unwrap_err().contains("не больше 28"));
        assert!(text(&s, "0").unwrap_err().contains("не меньше 1"));
    }

    #[test]
    fn dates_in_russian_and_iso_order() {
        assert_eq!(date("05.03.2026").unwrap(), "2026-03-05");
        assert_eq!(date("5.3.2026").unwrap(), "2026-03-05");
        assert_eq!(date("2026-03-05").unwrap(), "2026-03-05");
        assert!(date("31.02.2026").unwrap_err().contains("нет в календаре"));
        assert!(date("завтра").unwrap_err().contains("ДД.ММ.ГГГГ"));
    }

    #[test]
    fn phones_choices_confirmations_files() {
        assert_eq!(phone("8 (999) 000-11-22").unwrap(), normalize_phone("8 (999) 000-11-22").unwrap());
        assert!(phone("Ann 79990001122").is_ok());
        assert_eq!(phone("999 000 11 22").unwrap(), "+79990001122");
        assert!(phone("не скажу").is_err());
        let mut c = step(FieldKind::Choice);
        c.options = vec!["Ежегодный".into(), "Без сохранения".into()];
        assert_eq!(text(&c, "ежегодный").unwrap(), json!("Ежегодный"));
        assert_eq!(text(&c, "2").unwrap(), json!("Без сохранения"), "the number shown where there are no buttons");
        assert!(text(&c, "Декрет").unwrap_err().contains("Ежегодный, Без сохранения"));
        assert_eq!(text(&step(FieldKind::Confirm), "Да").unwrap(), json!(true));
        let f = step(FieldKind::File);
        assert!(read(&f, &Answer { text: Some("вот"), files: &[] }).is_err());
        assert_eq!(read(&f, &Answer { text: None, files: &["a1".into()] }).unwrap(), json!("a1"));
    }

    #[test]
    fn text_limits_and_patterns() {
        let mut s = step(FieldKind::Text);
        s.max_length = Some(3);
        assert!(text(&s, "длинно").unwrap_err().contains("не больше 3"));
        s.max_length = None;
        s.pattern = Some(r"^\d{4}$".into());
        assert!(text(&s, "12a4").is_err());
        assert_eq!(text(&s, "1234").unwrap(), json!("1234"));
        assert!(text(&s, "   ").unwrap_err().contains("пустым"));
    }
}
