//! Message templates and rule conditions.
//!
//! Templates are MiniJinja (Jinja2 syntax, which 1C and web people already know), sandboxed,
//! with strict undefined values — a template that needs a field the event lacks fails for that
//! recipient with a clear reason instead of sending a hole. Output is plain text: each channel
//! escapes it for its own markup when sending, so data can never break the formatting.
//!
//! Conditions are MiniJinja expressions over the same context, e.g.
//! `data.amount > 100000 && data.priority == "critical"` (`&&`, `||` and `!` are accepted
//! beside Jinja's `and`, `or`, `not`). They cannot call out, loop forever or touch anything
//! but the event.
//!
//! A missing or null value behaves as Jinja users expect: `{{ x | default('') }}` gives the
//! default for both, and a null printed on its own is empty — never the word `None` in a
//! message or in a request to the business system.
//!
//! Filters: `money` (`1250000 | money` → `1 250 000,00 ₽`, `money("USD")`), `date` (in the
//! recipient's time zone: `data.ship_at | date("%d.%m.%Y %H:%M")`), `plural` (Russian:
//! `data.count | plural("заказ", "заказа", "заказов")` → `5 заказов`).

use minijinja::value::Value as JValue;
use minijinja::{Environment, ErrorKind as JErrorKind, State, UndefinedBehavior};
use okno_domain::{Error, Result};
use serde_json::Value;

/// The sandboxed environment with okno's filters.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_fuel(Some(50_000));
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            return Ok(());
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.add_filter("default", default);
    env.add_filter("money", money);
    env.add_filter("date", date);
    env.add_filter("plural", plural);
    env
}

/// `line L, column C: …` for a template or condition error, from its byte range.
fn located(what: &str, src: &str, e: &minijinja::Error) -> Error {
    let position = match (e.line(), e.range()) {
        (Some(line), Some(range)) => {
            // The range may fall inside a character (a condition's range is in its Jinja
            // spelling, which differs in length from what was written).
            let mut start = range.start.min(src.len());
            while !src.is_char_boundary(start) {
                start -= 1;
            }
            let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
            let col = src[line_start..start].chars().count() + 1;
            format!("line {line}, column {col}: ")
        }
        (Some(line), None) => format!("line {line}: "),
        _ => String::new(),
    };
    let detail = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
    Error::invalid(format!("invalid_{what}"), format!("{what} error at {position}{detail}"))
}

/// Checks a template's syntax (at rule creation, never at send time).
pub fn check_template(src: &str) -> Result<()> {
    let env = environment();
    env.template_from_str(src).map(|_| ()).map_err(|e| located("template", src, &e))
}

/// Renders a template against a context, here in this process. Nothing bounds the memory a
/// template takes here: the server renders through [`crate::render::Renderer`], whose worker
/// processes call this with their memory limited; this is for them, and for tools and tests
/// that render templates they trust.
pub fn render(src: &str, ctx: &Value) -> Result<String> {
    render_bounded(src, ctx, usize::MAX)
}

/// As [`render`], refusing an output longer than `max_bytes` as soon as it grows past it.
pub fn render_bounded(src: &str, ctx: &Value, max_bytes: usize) -> Result<String> {
    let env = environment();
    let tmpl = env.template_from_str(src).map_err(|e| located("template", src, &e))?;
    let mut out = Bounded { out: Vec::new(), max: max_bytes, over: false };
    let rendered = tmpl.render_captured_to(JValue::from_serialize(ctx), &mut out);
    if out.over {
        return Err(too_large(max_bytes));
    }
    rendered.map_err(|e| {
        let detail = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
        let hint =
            if e.kind() == JErrorKind::UndefinedError { " (the event lacks a field the template uses)" } else { "" };
        Error::unprocessable("template_failed", format!("the template could not be rendered{hint}: {detail}"))
    })?;
    String::from_utf8(out.out).map_err(|e| Error::internal(format!("a template rendered invalid UTF-8: {e}")))
}

/// A template whose output or working memory is larger than allowed.
pub fn too_large(max_bytes: usize) -> Error {
    Error::unprocessable(
        "template_too_large",
        format!("the template's output is larger than the allowed {max_bytes} bytes"),
    )
}

/// A writer that refuses to grow past `max` bytes.
struct Bounded {
    out: Vec<u8>,
    max: usize,
    over: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len().saturating_add(buf.len()) > self.max {
            self.over = true;
            return Err(std::io::Error::other("the output is too large"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Jinja spelling of a condition that may use `&&`, `||` and `!`; string literals are kept. A
/// template's delimiters (`{{`, `%}`…) outside a string are refused: a condition is one
/// expression, and MiniJinja's expression reader fails on them by panicking.
fn jinja_condition(src: &str) -> Result<String> {
    let mut out = String::with_capacity(src.len() + 8);
    let mut chars = src.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if let Some(&next) = chars.peek() {
            if matches!((c, next), ('{', '{' | '%' | '#') | ('}' | '%' | '#', '}')) {
                return Err(Error::invalid(
                    "invalid_condition",
                    format!("condition error: `{c}{next}` is for templates; a condition is an expression like data.amount > 1000"),
                ));
            }
        }
        match c {
            '"' | '\'' => {
                quote = Some(c);
                out.push(c);
            }
            '&' if chars.peek() == Some(&'&') => {
                chars.next();
                out.push_str(" and ");
            }
            '|' if chars.peek() == Some(&'|') => {
                chars.next();
                out.push_str(" or ");
            }
            '!' if chars.peek() != Some(&'=') => out.push_str(" not "),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Checks a condition's syntax.
pub fn check_condition(src: &str) -> Result<()> {
    let env = environment();
    env.compile_expression(&jinja_condition(src)?).map(|_| ()).map_err(|e| located("condition", src, &e))
}

/// Evaluates a condition here in this process (see [`render`] on where the server evaluates
/// them); a missing field makes it false rather than an error.
pub fn eval_condition(src: &str, ctx: &Value) -> Result<bool> {
    let mut env = environment();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    let jinja = jinja_condition(src)?;
    let expr = env.compile_expression(&jinja).map_err(|e| located("condition", src, &e))?;
    expr.eval(JValue::from_serialize(ctx))
        .map(|v| v.is_true())
        .map_err(|e| Error::unprocessable("condition_failed", format!("the condition could not be evaluated: {e}")))
}

// --- filters ---------------------------------------------------------------------------------

/// `default(other = "", boolean = false)`: `other` when the value is missing or null (Jinja's own
/// filter takes a null as a value and prints it as `None`); with `boolean`, for any false value
/// (an empty string or list, zero) too.
fn default(v: JValue, other: Option<JValue>, boolean: Option<bool>) -> JValue {
    let missing = v.is_undefined() || v.is_none() || (boolean == Some(true) && !v.is_true());
    if missing {
        other.unwrap_or_else(|| JValue::from(""))
    } else {
        v
    }
}

/// A missing field reaching a filter is the same error as a missing field printed.
fn defined(v: &JValue, filter: &str) -> std::result::Result<(), minijinja::Error> {
    if v.is_undefined() || v.is_none() {
        return Err(minijinja::Error::new(JErrorKind::UndefinedError, format!("{filter}: the value is missing")));
    }
    Ok(())
}

fn number(v: &JValue) -> Option<f64> {
    if let Some(s) = v.as_str() {
        return s.trim().replace(' ', "").replace(',', ".").parse().ok();
    }
    f64::try_from(v.clone()).ok()
}

/// `1250000.5 | money` → `1 250 000,50 ₽`.
fn money(v: JValue, currency: Option<String>) -> std::result::Result<String, minijinja::Error> {
    defined(&v, "money")?;
    let n = number(&v)
        .ok_or_else(|| minijinja::Error::new(JErrorKind::InvalidOperation, format!("money: `{v}` is not a number")))?;
    let cents = (n.abs() * 100.0).round() as u128;
    let (whole, frac) = (cents / 100, cents % 100);
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push('\u{a0}');
        }
        grouped.push(ch);
    }
    let sign = if n < 0.0 && cents > 0 { "-" } else { "" };
    let cur = match currency.as_deref() {
        None | Some("RUB") | Some("₽") => "₽".to_string(),
        Some(c) => c.to_string(),
    };
    Ok(format!("{sign}{grouped},{frac:02}\u{a0}{cur}"))
}

/// A time (RFC 3339, or a date `YYYY-MM-DD`) shown in the recipient's time zone (`tz` in the
/// context, else UTC).
fn date(state: &State, v: JValue, fmt: Option<String>) -> std::result::Result<String, minijinja::Error> {
    defined(&v, "date")?;
    let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    let tz_name = state.lookup("tz").and_then(|t| t.as_str().map(str::to_string)).unwrap_or_else(|| "UTC".into());
    let tz = jiff::tz::TimeZone::get(&tz_name).map_err(|e| {
        minijinja::Error::new(JErrorKind::InvalidOperation, format!("date: unknown time zone `{tz_name}`: {e}"))
    })?;
    let bad =
        |e: String| minijinja::Error::new(JErrorKind::InvalidOperation, format!("date: `{text}` is not a time: {e}"));
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        let fmt = fmt.unwrap_or_else(|| "%d.%m.%Y %H:%M".into());
        return Ok(ts.to_zoned(tz).strftime(&fmt).to_string());
    }
    let day: jiff::civil::Date = text.parse().map_err(|e: jiff::Error| bad(e.to_string()))?;
    Ok(day.strftime(&fmt.unwrap_or_else(|| "%d.%m.%Y".into())).to_string())
}

/// Russian plural: `5 | plural("заказ", "заказа", "заказов")` → `5 заказов`.
fn plural(v: JValue, one: String, few: String, many: String) -> std::result::Result<String, minijinja::Error> {
    defined(&v, "plural")?;
    let n = number(&v)
        .ok_or_else(|| minijinja::Error::new(JErrorKind::InvalidOperation, format!("plural: `{v}` is not a number")))?;
    let i = n.abs().trunc() as u64;
    let word = if n.fract() != 0.0 {
        &few
    } else if i % 10 == 1 && i % 100 != 11 {
        &one
    } else if (2..=4).contains(&(i % 10)) && !(12..=14).contains(&(i % 100)) {
        &few
    } else {
        &many
    };
    Ok(format!("{v} {word}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_render_with_okno_filters() {
        let ctx = json!({"data": {"amount": 1250000.5, "n": 5, "at": "2026-11-22T09:30:00Z", "day": "2026-12-01"}, "tz": "Asia/Yekaterinburg"});
        let out = render("{{ data.amount | money }}; {{ data.n | plural('заказ', 'заказа', 'заказов') }}; {{ data.at | date }}; {{ data.day | date }}", &ctx).unwrap();
        assert_eq!(out, "1\u{a0}250\u{a0}000,50\u{a0}₽; 5 заказов; 22.11.2026 14:30; 01.12.2026");
        let p = |n: i64| render("{{ n | plural('день', 'дня', 'дней') }}", &json!({"n": n})).unwrap();
        assert_eq!(
            [p(1), p(2), p(11), p(21), p(22), p(25), p(112)],
            ["1 день", "2 дня", "11 дней", "21 день", "22 дня", "25 дней", "112 дней"]
        );
        assert_eq!(render("{{ x | money('USD') }}", &json!({"x": "-12,5"})).unwrap(), "-12,50\u{a0}USD");
    }

    #[test]
    fn output_is_plain_text_and_missing_fields_fail_clearly() {
        assert_eq!(
            render("{{ data.s }}", &json!({"data": {"s": "<b>&</b>"}})).unwrap(),
            "<b>&</b>",
            "escaping is the channel's job"
        );
        let err = render("Сумма: {{ data.amount }}", &json!({"data": {}})).unwrap_err();
        assert_eq!(err.code, "template_failed");
        assert!(err.message.contains("lacks a field"), "{}", err.message);
        let through_filter = render("Сумма: {{ data.amount | money }}", &json!({"data": {}})).unwrap_err();
        assert!(through_filter.message.contains("lacks a field"), "{}", through_filter.message);
    }

    #[test]
    fn missing_and_null_values_take_the_default_and_null_never_prints_none() {
        let ctx = json!({"form": {"comment": null, "days": 0, "scan": "file-1"}, "data": {"note": null}});
        let r = |src: &str| render(src, &ctx).unwrap();
        assert_eq!(r("[{{ form.comment | default('') }}]"), "[]", "null takes the default");
        assert_eq!(r("[{{ form.comment | default('нет') }}]"), "[нет]", "null takes any default");
        assert_eq!(r("{{ form.comment | default('нет') | upper }}"), "НЕТ", "and filters after it see the default");
        assert_eq!(r("[{{ form.missing | default('—') }}]"), "[—]", "a missing field takes the default");
        assert_eq!(r("[{{ form.missing | default }}]"), "[]", "the default default is empty");
        assert_eq!(r("[{{ form.scan | default('') }}]"), "[file-1]", "a value is kept");
        assert_eq!(r("[{{ form.days | default('нет') }}]"), "[0]", "zero is a value");
        assert_eq!(r("[{{ form.days | default('нет', true) }}]"), "[нет]", "unless falsy values are asked for");
        assert_eq!(r("[{{ data.note }}]"), "[]", "a null printed alone is empty, not None");
        assert_eq!(r("{{ form.comment or 'без комментария' }}"), "без комментария");
        assert!(render("{{ data.absent }}", &ctx).is_err(), "a missing field printed bare is still an error");
    }

    #[test]
    fn output_longer_than_allowed_is_refused() {
        let ctx = json!({"n": 50});
        assert_eq!(render_bounded("{{ 'ab' * n }}", &ctx, 100).unwrap().len(), 100);
        let err = render_bounded("{{ 'ab' * n }}!", &ctx, 100).unwrap_err();
        assert_eq!(err.code, "template_too_large");
        let err = render_bounded("{% for i in range(1000) %}строка {{ i }}\n{% endfor %}", &ctx, 1000).unwrap_err();
        assert_eq!(err.code, "template_too_large", "{}", err.message);
    }

    #[test]
    fn syntax_errors_point_at_line_and_column() {
        let err = check_template("Привет!\nСумма: {{ data.amount | money }\n").unwrap_err();
        assert_eq!(err.code, "invalid_template");
        assert!(err.message.contains("line 2"), "{}", err.message);
        let err = check_condition("data.amount > && 5").unwrap_err();
        assert_eq!(err.code, "invalid_condition");
        assert!(err.message.contains("line 1, column"), "{}", err.message);
    }

    #[test]
    fn conditions_accept_c_style_operators_outside_strings() {
        let ctx = json!({"data": {"amount": 150000, "priority": "critical", "note": "a && b"}});
        assert!(eval_condition(r#"data.amount > 100000 && data.priority == "critical""#, &ctx).unwrap());
        assert!(!eval_condition(r#"data.amount > 200000 || data.priority != "critical""#, &ctx).unwrap());
        assert!(eval_condition(r#"!(data.amount < 10) && data.note == "a && b""#, &ctx).unwrap());
        assert!(!eval_condition("data.missing > 3", &ctx).unwrap(), "a missing field is false");
    }
}
