//! The shipped examples render the way a newcomer copies them: every rule with its sample event,
//! and with each of that event's fields missing or null; every bot's forms with their optional
//! steps skipped and the person's optional contact fields empty. Nothing a person reads or the
//! business system receives ever says `None`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use okno_engine::bots::def::{BotDef, FieldKind};
use okno_engine::events::{preview, RuleSpec};
use okno_engine::render::{RenderLimits, Renderer};
use okno_engine::templates;
use serde_json::{json, Value};

fn examples(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    files
}

fn json_file(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every string inside a preview or a rendered body, for the `None` check.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn assert_no_none(what: &str, v: &Value) {
    let mut all = Vec::new();
    strings(v, &mut all);
    for s in all {
        assert!(!s.contains("None"), "{what}: `None` reached the output: {s:?}");
    }
}

/// A contact as the business system may leave it: a name and an external id, nothing else.
fn sparse_contact() -> Value {
    json!({"id": "c-1", "name": "Пётр Петров", "phone": null, "email": null, "external_id": "1c-0001",
           "groups": [], "attrs": {}})
}

/// The shipped examples are trusted: rendered here, without worker processes.
fn renderer() -> Renderer {
    Renderer::in_process(RenderLimits::default())
}

#[tokio::test]
async fn every_example_rule_renders_its_sample_event_and_survives_missing_or_null_fields() {
    let r = renderer();
    let events: Vec<Value> = examples("events", "json").iter().map(|p| json_file(p)).collect();
    for path in examples("rules", "json") {
        let spec = RuleSpec::parse(&json_file(&path)).unwrap_or_else(|e| panic!("{}: {}", path.display(), e.message));
        let what = path.file_name().unwrap().to_string_lossy().to_string();
        let sample = events
            .iter()
            .find(|e| e["type"] == spec.event.as_str())
            .unwrap_or_else(|| panic!("{what}: no sample event of type {} in examples/events", spec.event));
        let data = &sample["data"];

        let full =
            preview(&r, &spec, data, &sparse_contact()).await.unwrap_or_else(|e| panic!("{what}: {}", e.message));
        assert!(!full["text"].as_str().unwrap_or("").trim().is_empty(), "{what}: an empty message");
        assert_no_none(&what, &full);

        // Each field of the sample missing, then null: the rule either renders without `None`
        // or refuses with the clear «lacks a field» reason — never a hole or a `None`.
        for key in data.as_object().unwrap().keys() {
            for variant in ["missing", "null"] {
                let mut d = data.clone();
                match variant {
                    "missing" => d.as_object_mut().unwrap().remove(key),
                    _ => d.as_object_mut().unwrap().insert(key.clone(), Value::Null),
                };
                let case = format!("{what} with data.{key} {variant}");
                match preview(&r, &spec, &d, &sparse_contact()).await {
                    Ok(v) => assert_no_none(&case, &v),
                    Err(e) => assert!(
                        e.message.contains("lacks a field") || e.message.contains("missing"),
                        "{case}: an unclear refusal: {}",
                        e.message
                    ),
                }
            }
        }
        // A field the template marks optional with `default(…)` renders when absent or null.
        for key in data.as_object().unwrap().keys() {
            let marked = spec.template.text().contains(&format!("data.{key} | default"))
                || spec.template.text().contains(&format!("data.{key}|default"));
            if !marked {
                continue;
            }
            for d in [
                {
                    let mut d = data.clone();
                    d.as_object_mut().unwrap().remove(key);
                    d
                },
                {
                    let mut d = data.clone();
                    d[key] = Value::Null;
                    d
                },
            ] {
                let v = preview(&r, &spec, &d, &sparse_contact())
                    .await
                    .unwrap_or_else(|e| panic!("{what}: optional data.{key} absent: {}", e.message));
                assert_no_none(&what, &v);
            }
        }
    }
}

/// A value a person could have typed for a step of this kind.
fn answer(kind: FieldKind) -> Value {
    match kind {
        FieldKind::Text => json!("Прошу выдать справку"),
        FieldKind::Number => json!(3),
        FieldKind::Date => json!("2027-07-15"),
        FieldKind::Choice => json!("Ежегодный"),
        FieldKind::Phone => json!("+79990001122"),
        FieldKind::File => json!("att-0001"),
        FieldKind::Confirm => json!(true),
    }
}

/// Renders every string of a request body (the bot sends each as a template).
fn render_body(body: &Value, ctx: &Value) -> okno_domain::Result<Value> {
    Ok(match body {
        Value::String(s) => Value::String(templates::render(s, ctx)?),
        Value::Array(a) => Value::Array(a.iter().map(|x| render_body(x, ctx)).collect::<okno_domain::Result<_>>()?),
        Value::Object(o) => {
            let mut m = serde_json::Map::new();
            for (k, v) in o {
                m.insert(k.clone(), render_body(v, ctx)?);
            }
            Value::Object(m)
        }
        other => other.clone(),
    })
}

#[test]
fn every_example_bot_form_submits_with_its_optional_steps_skipped() {
    let mut optional_steps = 0;
    for path in examples("bots", "yaml") {
        let def = BotDef::parse(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.message));
        for (name, form) in &def.forms {
            // Skipped optional steps are null in `form`, as the bot records them.
            let mut fields = serde_json::Map::new();
            for step in &form.steps {
                let value = if step.optional { Value::Null } else { answer(step.kind) };
                optional_steps += usize::from(step.optional);
                fields.insert(step.field.clone(), value);
            }
            let ctx = json!({"contact": sparse_contact(), "form": fields, "tz": "Europe/Moscow",
                             "bot": {"name": def.name, "channel_id": "ch-1"}});
            let what = format!("{} form {name}", path.file_name().unwrap().to_string_lossy());
            if let Some(confirm) = &form.confirm {
                let text = templates::render(confirm, &ctx).unwrap_or_else(|e| panic!("{what}: {}", e.message));
                assert_no_none(&what, &json!(text));
            }
            if let Some(req) = &form.submit.request {
                let url = templates::render(&req.url, &ctx).unwrap_or_else(|e| panic!("{what}: {}", e.message));
                assert_no_none(&what, &json!(url));
                if let Some(body) = &req.body {
                    let sent = render_body(body, &ctx).unwrap_or_else(|e| panic!("{what}: {}", e.message));
                    assert_no_none(&what, &sent);
                    for step in form.steps.iter().filter(|s| s.optional) {
                        if let Some(v) = sent.get(&step.field) {
                            assert_eq!(v, "", "{what}: the skipped `{}` reaches the business system empty", step.field);
                        }
                    }
                }
            }
        }
    }
    assert!(optional_steps > 0, "the examples have optional steps to skip");
}
