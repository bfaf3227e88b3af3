//! The `keyboard` parameter of `messages.send`/`messages.edit`, checked as VK checks it
//! (dev.vk.com bots keyboard page: "Keyboard format is invalid" is error 911).

use serde_json::Value;

/// Why a keyboard was refused (the text after "Keyboard format is invalid: ").
pub(crate) type Refusal = String;

/// Checks a keyboard JSON string. Limits (dev.vk.com keyboard page): a standard keyboard at
/// most 5 × 10 with 40 buttons, an inline one at most 5 × 6 with 10; `one_time` is not
/// supported inline; `{"buttons":[]}` removes the keyboard. A `label` up to 40 characters and
/// a `payload` up to 255 are from older VK docs ([INF] in the research notes).
pub(crate) fn check(raw: &str) -> Result<Value, Refusal> {
    let k: Value = serde_json::from_str(raw).map_err(|e| format!("not JSON: {e}"))?;
    let Some(rows) = k["buttons"].as_array() else {
        return Err("buttons is required".into());
    };
    let inline = k["inline"].as_bool().unwrap_or(false);
    if inline && k["one_time"].as_bool() == Some(true) {
        return Err("one_time is not supported for inline keyboards".into());
    }
    let (max_rows, max_total) = if inline { (6, 10) } else { (10, 40) };
    if rows.len() > max_rows {
        return Err(format!("at most {max_rows} rows"));
    }
    let mut total = 0;
    for row in rows {
        let Some(row) = row.as_array() else {
            return Err("each row must be an array".into());
        };
        if row.len() > 5 {
            return Err("at most 5 buttons in a row".into());
        }
        total += row.len();
        for b in row {
            button(b)?;
        }
    }
    if total > max_total {
        return Err(format!("at most {max_total} buttons"));
    }
    Ok(k)
}

fn button(b: &Value) -> Result<(), Refusal> {
    let action = &b["action"];
    let kind = action["type"].as_str().unwrap_or_default();
    let needs_label = matches!(kind, "text" | "callback" | "open_link" | "open_app");
    match kind {
        "text" | "callback" | "open_link" | "location" | "vkpay" | "open_app" | "open_photo" => {}
        other => return Err(format!("unknown action type {other:?}")),
    }
    if needs_label {
        let label = action["label"].as_str().unwrap_or_default();
        if label.is_empty() || label.chars().count() > 40 {
            return Err("label must have 1 to 40 characters".into());
        }
    }
    if kind == "open_link" && action["link"].as_str().is_none_or(str::is_empty) {
        return Err("open_link needs a link".into());
    }
    if let Some(p) = action.get("payload").filter(|p| !p.is_null()) {
        let Some(p) = p.as_str() else {
            return Err("payload must be a string".into());
        };
        if p.chars().count() > 255 {
            return Err("payload is longer than 255 characters".into());
        }
    }
    if let Some(c) = b.get("color").and_then(Value::as_str) {
        if !matches!(c, "primary" | "secondary" | "negative" | "positive" | "default") {
            return Err(format!("unknown color {c:?}"));
        }
    }
    Ok(())
}

/// The `callback` buttons' payloads of a keyboard.
pub(crate) fn callback_payloads(k: &Value) -> Vec<String> {
    k["buttons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter(|b| b["action"]["type"] == "callback")
        .map(|b| b["action"]["payload"].as_str().unwrap_or_default().to_string())
        .collect()
}
