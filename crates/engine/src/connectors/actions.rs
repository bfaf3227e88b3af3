//! Rules that act in a business system: a rule's result may be an amoCRM note, a field set, a
//! stage moved or a task made (in Bitrix24: a timeline comment, a field, a stage), not only a
//! message.
//!
//! ```json
//! {"name": "Оплата в сделку", "event": "payment.received",
//!  "actions": [{"connector": "<connector id>", "do": "note", "deal": "{{ data.lead_id }}",
//!               "text": "Оплата {{ data.amount }} ₽ получена"},
//!              {"connector": "<connector id>", "do": "stage", "deal": "{{ data.lead_id }}", "stage": "30"}]}
//! ```
//!
//! ```text
//!  the event's rule matches ─► one ConnectorAction job per action, committed with the rest of
//!      what the event came to (queue `connector:<id>`: one connector's actions in order)
//!  the job ─► the action's templates rendered over the event ─► the kind calls the system
//!      (written to the audit journal) ─► a passing failure retried, a refused token held
//! ```

use okno_domain::ids::ConnectorId;
use okno_domain::model::ConnectorKind;
use okno_domain::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Outcome;
use crate::events::RuleSpec;
use crate::templates;
use crate::Engine;

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    /// A note on the deal (`text`).
    Note,
    /// A field of the deal set (`field`: its id in amoCRM, its `UF_CRM_…` name in Bitrix24; `value`).
    Field,
    /// The deal moved to a stage (`stage`: amoCRM's status id, Bitrix24's `STAGE_ID`; and
    /// `pipeline` when it changes pipeline).
    Stage,
    /// A task on the deal (`text`, `due` from now, `responsible` user).
    Task,
}

impl Act {
    pub fn as_str(self) -> &'static str {
        match self {
            Act::Note => "note",
            Act::Field => "field",
            Act::Stage => "stage",
            Act::Task => "task",
        }
    }
}

/// A rule's action in a business system; every text but `connector`, `do` and `due` is a
/// MiniJinja template over the event (`data`, `event`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// The connector it goes through.
    pub connector: String,
    #[serde(rename = "do")]
    pub act: Act,
    /// The deal: amoCRM's lead id, Bitrix24's deal id.
    pub deal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// When a task is due, from the moment it is made: `30m`, `4h`, `1d` (a day unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    /// The user a task is for (amoCRM's user id); the deal's responsible user unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responsible: Option<String>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("invalid_rule", message.into())
}

impl ActionSpec {
    /// Each act has what it needs; every template compiles.
    pub(crate) fn check(&self) -> Result<()> {
        if self.connector.trim().is_empty() {
            return Err(invalid("each of `actions` names its `connector` (the connector's id)"));
        }
        let act = self.act.as_str();
        let need = |f: &Option<String>, name: &str| match f {
            Some(t) if !t.trim().is_empty() => Ok(()),
            _ => Err(invalid(format!("an action that does `{act}` needs `{name}`"))),
        };
        need(&Some(self.deal.clone()), "deal")?;
        match self.act {
            Act::Note | Act::Task => need(&self.text, "text")?,
            Act::Field => {
                need(&self.field, "field")?;
                need(&self.value, "value")?;
            }
            Act::Stage => need(&self.stage, "stage")?,
        }
        if let Some(d) = &self.due {
            if self.act != Act::Task {
                return Err(invalid("`due` is for an action that does `task`"));
            }
            crate::events::parse_duration(d)?;
        }
        for t in self.templates() {
            templates::check_template(t)?;
        }
        Ok(())
    }

    /// The templates, in the order [`Rendered`] takes them.
    fn templates(&self) -> [&str; 7] {
        fn s(f: &Option<String>) -> &str {
            f.as_deref().unwrap_or("")
        }
        [
            &self.deal,
            s(&self.text),
            s(&self.field),
            s(&self.value),
            s(&self.stage),
            s(&self.pipeline),
            s(&self.responsible),
        ]
    }
}

/// An action with its templates rendered over the event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rendered {
    pub act: Act,
    pub deal: String,
    pub text: String,
    pub field: String,
    pub value: String,
    pub stage: String,
    pub pipeline: String,
    pub responsible: String,
    /// Milliseconds from now a task is due.
    pub due_ms: i64,
}

impl Rendered {
    /// A number the action names (`what` says which, for the refusal).
    pub fn number(&self, text: &str, what: &str) -> std::result::Result<i64, Outcome> {
        text.trim().parse::<i64>().map_err(|_| {
            Outcome::Refused(format!(
                "the rule's {} action: `{what}` rendered `{text}`, not a number",
                self.act.as_str()
            ))
        })
    }

    /// An optional number (empty: none).
    pub fn maybe_number(&self, text: &str, what: &str) -> std::result::Result<Option<i64>, Outcome> {
        if text.trim().is_empty() {
            Ok(None)
        } else {
            self.number(text, what).map(Some)
        }
    }
}

impl Engine {
    /// The connectors a rule's actions name exist and do what is asked of them.
    pub(crate) async fn check_actions(&self, spec: &RuleSpec) -> Result<()> {
        for a in &spec.actions {
            let connector = match self.store.get_connector(&ConnectorId::from(a.connector.as_str())).await {
                Ok(c) => c,
                Err(e) if e.is_not_found() => {
                    return Err(invalid(format!("no connector `{}` (GET /api/v1/connectors lists them)", a.connector)))
                }
                Err(e) => return Err(e),
            };
            match connector.kind {
                ConnectorKind::Amocrm => {}
                ConnectorKind::Bitrix24 if a.act != Act::Task => {}
                ConnectorKind::Bitrix24 => return Err(invalid(
                    "Bitrix24 connectors take `note` (a timeline comment), `field` and `stage` actions; not `task` yet",
                )),
                other => return Err(invalid(format!("`{other}` connectors do not take rule actions yet"))),
            }
        }
        Ok(())
    }

    /// A `ConnectorAction` job: `<event id>:<rule id>:<action index>`.
    pub(crate) async fn connector_action(&self, job_ref: &str) -> Result<Outcome> {
        let mut parts = job_ref.rsplitn(2, ':');
        let (Some(index), Some(rest)) = (parts.next(), parts.next()) else { return Ok(Outcome::Done) };
        let (Some((event_id, rule_id)), Ok(index)) = (rest.split_once(':'), index.parse::<usize>()) else {
            return Ok(Outcome::Done);
        };
        let ev = match self.store.get_event_row(event_id).await {
            Ok(ev) => ev,
            Err(e) if e.is_not_found() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        let rule = match self.store.get_rule(rule_id).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        let spec: RuleSpec = serde_json::from_value(rule.spec.clone()).map_err(|e| Error::internal(e.to_string()))?;
        // A rule changed since: the action at that place is the one it has now, if any.
        let Some(action) = spec.actions.get(index) else { return Ok(Outcome::Done) };
        let Some(connector) = self.live_connector(&ConnectorId::from(action.connector.as_str())).await? else {
            tracing::warn!(rule = %rule.name, connector = %action.connector, "a rule's action names a deleted connector");
            return Ok(Outcome::Done);
        };
        let ctx = crate::events::context(&ev);
        let texts = match self.renderer.render_all(&action.templates(), &ctx).await {
            Ok(t) => t,
            Err(e) => {
                let why = format!("rule «{}»: the action's template failed: {}", rule.name, e.message);
                return self.note_outcome(&connector, Outcome::Refused(why)).await;
            }
        };
        let [deal, text, field, value, stage, pipeline, responsible]: [String; 7] =
            texts.try_into().map_err(|_| Error::internal("a render answered for fewer templates"))?;
        let due_ms = match &action.due {
            Some(d) => crate::events::parse_duration(d)?,
            None => 24 * 3600 * 1000,
        };
        let rendered = Rendered { act: action.act, deal, text, field, value, stage, pipeline, responsible, due_ms };
        let outcome = match connector.kind {
            ConnectorKind::Amocrm => super::amocrm::rule_action(self, &connector, &rendered).await?,
            ConnectorKind::Bitrix24 => super::bitrix24::rule_action(self, &connector, &rendered).await?,
            _ => Outcome::Done,
        };
        self.note_outcome(&connector, outcome).await
    }
}

/// The value a rule renders, as a JSON value for a field: a number stays a number.
pub(crate) fn field_value(text: &str) -> Value {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Value::from(n);
    }
    match t {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ActionSpec> {
        let a: ActionSpec = serde_json::from_value(v).map_err(|e| invalid(e.to_string()))?;
        a.check()?;
        Ok(a)
    }

    #[test]
    fn each_act_needs_its_fields() {
        let base = json!({"connector": "k1", "deal": "{{ data.lead_id }}"});
        let with = |extra: Value| {
            let mut v = base.clone();
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            v
        };
        assert!(parse(with(json!({"do": "note", "text": "Оплата {{ data.amount }}"}))).is_ok());
        assert!(parse(with(json!({"do": "note"}))).is_err(), "a note without text");
        assert!(parse(with(json!({"do": "field", "field": "501"}))).is_err(), "a field without value");
        assert!(parse(with(json!({"do": "field", "field": "501", "value": "{{ data.sum }}"}))).is_ok());
        assert!(parse(with(json!({"do": "stage"}))).is_err());
        assert!(parse(with(json!({"do": "stage", "stage": "30", "pipeline": "7000"}))).is_ok());
        assert!(parse(with(json!({"do": "task", "text": "Позвонить", "due": "2h"}))).is_ok());
        assert!(parse(with(json!({"do": "task", "text": "Позвонить", "due": "soon"}))).is_err(), "a bad due");
        assert!(parse(with(json!({"do": "note", "text": "x", "due": "2h"}))).is_err(), "due only for tasks");
        assert!(parse(with(json!({"do": "note", "text": "{{ broken"}))).is_err(), "a template that does not compile");
        assert!(parse(with(json!({"do": "email", "text": "x"}))).is_err(), "an unknown act");
        assert!(parse(json!({"connector": " ", "do": "note", "deal": "1", "text": "x"})).is_err());
        assert!(parse(json!({"connector": "k", "do": "note", "deal": "", "text": "x"})).is_err());
    }

    #[test]
    fn a_field_value_keeps_numbers_and_flags() {
        assert_eq!(field_value(" 42 "), json!(42));
        assert_eq!(field_value("true"), json!(true));
        assert_eq!(field_value("Оплачено"), json!("Оплачено"));
    }
}
