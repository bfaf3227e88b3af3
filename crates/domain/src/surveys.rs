//! Surveys as pure data: the definition an administrator writes (questions, deadline, reminder,
//! trigger), how a question looks as a message, how an answer is read from a press or a typed
//! text, and the results (counts per option, averages, NPS) and their CSV export. The store
//! runs the surveys; this module only decides.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Button, Keyboard};
use crate::time::{to_rfc3339, Millis};
use crate::{Error, Result};

/// Button data of an answer: `survey:<run id>:<question index>:<option index>`.
pub const BUTTON_PREFIX: &str = "survey:";

/// Most questions in one survey.
const MAX_QUESTIONS: usize = 50;
/// Most options of one choice question (Telegram shows them all as buttons).
const MAX_OPTIONS: usize = 20;
/// Longest text of a question, intro or thanks (Telegram's message limit with room to spare).
const MAX_TEXT: usize = 3500;

/// A survey as administrators write it (`POST /api/v1/surveys`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveySpec {
    pub name: String,
    /// Sent before the first question (in the same message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intro: Option<String>,
    pub questions: Vec<Question>,
    /// Sent after the last answer. Default: «Спасибо! Ваши ответы записаны.»
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thanks: Option<String>,
    /// How long a person has to answer, from the first question: `30s`, `15m`, `2h`, `3d`.
    /// Default `3d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// A reminder this long before the deadline (once, with the unanswered question again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder: Option<String>,
    /// The reminder's text, put before the question. Default: «Напоминаем об опросе.»
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_text: Option<String>,
    /// Send on this channel; default: where the person last wrote, else their preferred channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<crate::ids::ChannelId>,
    /// What starts the survey besides `POST /surveys/{id}/start`. Default: manual only.
    #[serde(default)]
    pub trigger: Trigger,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Stable id used in results, webhooks and CSV (e.g. `nps`); default `q1`, `q2`…
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub text: String,
    pub kind: QuestionKind,
    /// `choice`: the buttons, as texts or `{"text", "value"}` (a number for averages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Choice>,
    /// `scale`: the lowest and highest number (e.g. 1–5, or 0–10 for NPS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// Answer buttons.
    Choice,
    /// Number buttons from `min` to `max`.
    Scale,
    /// A free-text answer.
    Text,
}

/// A choice option: `"Да"` or `{"text": "Да", "value": 1}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Choice {
    Plain(String),
    Valued {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<i64>,
    },
}

impl Choice {
    pub fn text(&self) -> &str {
        match self {
            Choice::Plain(t) | Choice::Valued { text: t, .. } => t,
        }
    }

    pub fn value(&self) -> Option<i64> {
        match self {
            Choice::Plain(_) => None,
            Choice::Valued { value, .. } => *value,
        }
    }
}

/// What starts a survey on its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// Only `POST /surveys/{id}/start`.
    #[default]
    Manual,
    /// A business event: the person `recipient` names (like a rule's recipient, e.g.
    /// `{"external_id": "{{ data.client_id }}"}`) gets the survey once per event.
    Event {
        event: String,
        recipient: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        condition: Option<String>,
    },
    /// A date in the contact's attributes plus `offset_days` (e.g. `hired_on` + 7), sent at
    /// `hour` o'clock (default 10) in `timezone` (default: the contact's `attrs.tz`, else the
    /// server's). Dates more than `window_days` (default 3) in the past are not caught up.
    Date {
        field: String,
        #[serde(default)]
        offset_days: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hour: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window_days: Option<i64>,
    },
}

impl Trigger {
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Event { .. } => "event",
            Trigger::Date { .. } => "date",
        }
    }

    /// The event type an event trigger reacts to.
    pub fn event(&self) -> Option<&str> {
        match self {
            Trigger::Event { event, .. } => Some(event),
            _ => None,
        }
    }
}

/// `30s`, `15m`, `2h`, `3d` → milliseconds.
pub fn parse_duration(field: &str, text: &str) -> Result<Millis> {
    let ms = crate::time::parse_duration(text).ok_or_else(|| {
        Error::invalid("invalid_survey", format!("`{field}`: `{text}` is not a duration like 30m, 2h or 3d"))
    })?;
    if !(1_000..=366 * 86_400_000).contains(&ms) {
        return Err(Error::invalid("invalid_survey", format!("`{field}` must be between 1s and 366d")));
    }
    Ok(ms)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("invalid_survey", message)
}

impl SurveySpec {
    /// Parses and checks a definition; fills in default question ids. The error says which
    /// field is wrong.
    pub fn parse(v: &Value) -> Result<SurveySpec> {
        let mut spec: SurveySpec =
            serde_json::from_value(v.clone()).map_err(|e| invalid(format!("the survey is not valid: {e}")))?;
        for (i, q) in spec.questions.iter_mut().enumerate() {
            if q.id.trim().is_empty() {
                q.id = format!("q{}", i + 1);
            }
        }
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> Result<()> {
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(invalid("`name` must be 1..200 characters"));
        }
        if self.questions.is_empty() {
            return Err(invalid("`questions` needs at least one question"));
        }
        if self.questions.len() > MAX_QUESTIONS {
            return Err(invalid(format!("a survey has at most {MAX_QUESTIONS} questions")));
        }
        for (field, text) in [("intro", &self.intro), ("thanks", &self.thanks), ("reminder_text", &self.reminder_text)]
        {
            if text.as_ref().is_some_and(|t| t.trim().is_empty() || t.chars().count() > MAX_TEXT) {
                return Err(invalid(format!("`{field}` must be 1..{MAX_TEXT} characters")));
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (i, q) in self.questions.iter().enumerate() {
            let at = format!("question {} (`{}`)", i + 1, q.id);
            if !ids.insert(q.id.as_str()) {
                return Err(invalid(format!("{at}: the id is used twice")));
            }
            if q.id.len() > 64 || !q.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(invalid(format!("{at}: an id is 1..64 letters, digits, `_` or `-`")));
            }
            if q.text.trim().is_empty() || q.text.chars().count() > MAX_TEXT {
                return Err(invalid(format!("{at}: `text` must be 1..{MAX_TEXT} characters")));
            }
            match q.kind {
                QuestionKind::Choice => {
                    if q.options.len() < 2 || q.options.len() > MAX_OPTIONS {
                        return Err(invalid(format!("{at}: a choice question needs 2..{MAX_OPTIONS} `options`")));
                    }
                    if q.options.iter().any(|o| o.text().trim().is_empty() || o.text().chars().count() > 64) {
                        return Err(invalid(format!("{at}: each option's text must be 1..64 characters")));
                    }
                    if q.min.is_some() || q.max.is_some() {
                        return Err(invalid(format!("{at}: `min`/`max` belong to scale questions")));
                    }
                }
                QuestionKind::Scale => {
                    let (Some(min), Some(max)) = (q.min, q.max) else {
                        return Err(invalid(format!("{at}: a scale question needs `min` and `max` (e.g. 0 and 10)")));
                    };
                    if min >= max || max.checked_sub(min).is_none_or(|d| d > 10) {
                        return Err(invalid(format!("{at}: `min` < `max`, at most 11 numbers (e.g. 0..10)")));
                    }
                    if !q.options.is_empty() {
                        return Err(invalid(format!("{at}: `options` belong to choice questions")));
                    }
                }
                QuestionKind::Text => {
                    if !q.options.is_empty() || q.min.is_some() || q.max.is_some() {
                        return Err(invalid(format!("{at}: a text question has no `options`, `min` or `max`")));
                    }
                }
            }
        }
        let deadline = self.deadline_ms()?;
        if let Some(r) = &self.reminder {
            let before = parse_duration("reminder", r)?;
            if before >= deadline {
                return Err(invalid(
                    "`reminder` is sent that long before the deadline: it must be shorter than `deadline`",
                ));
            }
        }
        if self.channel_id.as_ref().is_some_and(|c| c.trim().is_empty()) {
            return Err(invalid("`channel_id` is empty"));
        }
        match &self.trigger {
            Trigger::Manual => {}
            Trigger::Event { event, recipient, .. } => {
                if event.trim().is_empty() {
                    return Err(invalid("`trigger.event` names the event type, e.g. `order.completed`"));
                }
                if !recipient.is_object() {
                    return Err(invalid(
                        "`trigger.recipient` names the person, e.g. {\"external_id\": \"{{ data.client_id }}\"}",
                    ));
                }
            }
            Trigger::Date { field, offset_days, hour, window_days, .. } => {
                let name_ok = field.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if field.trim().is_empty() || field.len() > 100 || !name_ok {
                    return Err(invalid("`trigger.field` names a date attribute of the contact, e.g. `hired_on`"));
                }
                if offset_days.abs() > 3660 {
                    return Err(invalid("`trigger.offset_days` must be within ±3660"));
                }
                if hour.is_some_and(|h| h > 23) {
                    return Err(invalid("`trigger.hour` is 0..23"));
                }
                if window_days.is_some_and(|w| !(0..=60).contains(&w)) {
                    return Err(invalid("`trigger.window_days` is 0..60"));
                }
            }
        }
        Ok(())
    }

    /// The time a person has to answer.
    pub fn deadline_ms(&self) -> Result<Millis> {
        match &self.deadline {
            Some(d) => parse_duration("deadline", d),
            None => Ok(3 * 86_400_000),
        }
    }

    /// How long before the deadline the reminder goes, if any.
    pub fn reminder_ms(&self) -> Option<Millis> {
        self.reminder.as_deref().and_then(|r| parse_duration("reminder", r).ok())
    }

    pub fn thanks_text(&self) -> &str {
        self.thanks.as_deref().unwrap_or("Спасибо! Ваши ответы записаны.")
    }

    pub fn reminder_prefix(&self) -> &str {
        self.reminder_text.as_deref().unwrap_or("Напоминаем об опросе.")
    }

    /// Question `step` as a message for run `run_id`: its text (after `prefix`, if any) and
    /// its answer buttons.
    pub fn question_message(&self, run_id: &str, step: usize, prefix: Option<&str>) -> (String, Keyboard) {
        let Some(q) = self.questions.get(step) else { return (self.thanks_text().to_string(), Vec::new()) };
        let text = match prefix {
            Some(p) => format!("{p}\n\n{}", q.text),
            None => q.text.clone(),
        };
        let data = |i: usize| Some(format!("{BUTTON_PREFIX}{run_id}:{step}:{i}"));
        let labels: Vec<String> = match q.kind {
            QuestionKind::Choice => q.options.iter().map(|o| o.text().to_string()).collect(),
            QuestionKind::Scale => scale_values(q).map(|v| v.to_string()).collect(),
            QuestionKind::Text => Vec::new(),
        };
        // Numbers fit six to a row; short labels three; longer ones get a row each.
        let per_row = match q.kind {
            QuestionKind::Scale => 6,
            _ if labels.iter().all(|l| l.chars().count() <= 12) => 3,
            _ => 1,
        };
        let buttons: Vec<Button> =
            labels.into_iter().enumerate().map(|(i, text)| Button { text, data: data(i), url: None }).collect();
        (text, buttons.chunks(per_row).map(<[Button]>::to_vec).collect())
    }

    /// Reads an answer to question `step`: a pressed option, or a typed text. `Err` carries the
    /// hint to send back (with the question again).
    pub fn interpret(&self, step: usize, input: &Input) -> std::result::Result<Answer, String> {
        let Some(q) = self.questions.get(step) else { return Err(String::new()) };
        let by_index = |i: usize| -> Option<Answer> {
            match q.kind {
                QuestionKind::Choice => q.options.get(i).map(|o| Answer {
                    text: o.text().to_string(),
                    value: o.value(),
                    option: Some(i as i64),
                }),
                QuestionKind::Scale => scale_values(q).nth(i).map(|v| Answer {
                    text: v.to_string(),
                    value: Some(v),
                    option: Some(i as i64),
                }),
                QuestionKind::Text => None,
            }
        };
        let hint = match q.kind {
            QuestionKind::Choice => "Пожалуйста, выберите один из вариантов кнопкой ниже.".to_string(),
            QuestionKind::Scale => {
                format!("Пожалуйста, выберите число от {} до {} кнопкой ниже.", q.min.unwrap_or(0), q.max.unwrap_or(0))
            }
            QuestionKind::Text => "Пожалуйста, напишите ответ сообщением.".to_string(),
        };
        match input {
            Input::Option(i) => by_index(*i).ok_or(hint),
            Input::Text(t) => {
                let t = t.trim();
                if t.is_empty() {
                    return Err(hint);
                }
                match q.kind {
                    QuestionKind::Text => {
                        Ok(Answer { text: t.chars().take(4000).collect(), value: None, option: None })
                    }
                    QuestionKind::Scale => t
                        .parse::<i64>()
                        .ok()
                        .and_then(|n| scale_values(q).position(|v| v == n))
                        .and_then(by_index)
                        .ok_or(hint),
                    QuestionKind::Choice => {
                        let lower = t.to_lowercase();
                        if let Some(i) = q.options.iter().position(|o| o.text().trim().to_lowercase() == lower) {
                            return by_index(i).ok_or(hint);
                        }
                        // A typed number: the option with that value, else (no values) its number.
                        let Ok(n) = t.parse::<i64>() else { return Err(hint) };
                        let valued = q.options.iter().any(|o| o.value().is_some());
                        let i = if valued {
                            q.options.iter().position(|o| o.value() == Some(n))
                        } else {
                            usize::try_from(n).ok().and_then(|n| n.checked_sub(1)).filter(|i| *i < q.options.len())
                        };
                        i.and_then(by_index).ok_or(hint)
                    }
                }
            }
        }
    }

    /// Whether a question is a 0–10 scale, scored as NPS.
    pub fn is_nps(q: &Question) -> bool {
        q.kind == QuestionKind::Scale && q.min == Some(0) && q.max == Some(10)
    }
}

fn scale_values(q: &Question) -> impl Iterator<Item = i64> {
    let (min, max) = (q.min.unwrap_or(0), q.max.unwrap_or(-1));
    min..=max
}

/// What a person sent in answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The index of a pressed option.
    Option(usize),
    Text(String),
}

/// One recorded answer: the text as shown, the number (option value, scale number), and
/// which option was chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    pub value: Option<i64>,
    pub option: Option<i64>,
}

/// A press of a survey button: run id, question index, option index.
pub fn parse_button(data: &str) -> Option<(String, usize, usize)> {
    let rest = data.strip_prefix(BUTTON_PREFIX)?;
    let mut parts = rest.split(':');
    let run = parts.next()?.to_string();
    let step = parts.next()?.parse().ok()?;
    let option = parts.next()?.parse().ok()?;
    (parts.next().is_none() && !run.is_empty()).then_some((run, step, option))
}

/// One stored answer, with who gave it (for results and CSV).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerRecord {
    pub run_id: String,
    pub contact_id: String,
    pub contact_name: Option<String>,
    pub external_id: Option<String>,
    pub question_id: String,
    pub answer: String,
    pub value: Option<i64>,
    pub option: Option<i64>,
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: Millis,
}

/// How many answers to a question share one option and value (what the results are counted
/// from, so a survey's whole set of answers need not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerTally {
    pub question_id: String,
    /// The chosen option's index (a choice question).
    pub option: Option<i64>,
    /// The answer's value (a scale, or a choice option's value).
    pub value: Option<i64>,
    pub count: i64,
}

/// How many runs of a survey are in each state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunCounts {
    /// Everyone the survey was started for.
    pub total: i64,
    /// Waiting for answers.
    pub active: i64,
    /// Waiting for another survey of the same person to end.
    pub queued: i64,
    pub completed: i64,
    /// The deadline passed before the last answer.
    pub expired: i64,
    /// No channel reaches the person.
    pub unreachable: i64,
    /// Runs with at least one answer.
    pub responded: i64,
}

/// The results of a survey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Results {
    pub survey_id: String,
    pub runs: RunCounts,
    pub questions: Vec<QuestionResults>,
}

/// The results of one question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuestionResults {
    pub id: String,
    pub text: String,
    pub kind: QuestionKind,
    /// How many people answered it.
    pub answers: i64,
    /// Choice and scale questions: every option with its count (zero included).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<OptionCount>,
    /// The mean of the numeric answers, if any.
    pub average: Option<f64>,
    /// 0–10 scales: the Net Promoter Score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nps: Option<Nps>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptionCount {
    pub text: String,
    pub value: Option<i64>,
    pub count: i64,
}

/// NPS = % promoters (9–10) − % detractors (0–6), rounded to one decimal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Nps {
    pub score: f64,
    pub promoters: i64,
    pub passives: i64,
    pub detractors: i64,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl SurveySpec {
    /// Tallies answers per question.
    pub fn results(&self, survey_id: &str, runs: RunCounts, answers: &[AnswerRecord]) -> Results {
        let mut tallies: Vec<AnswerTally> = Vec::new();
        for a in answers {
            match tallies
                .iter_mut()
                .find(|t| t.question_id == a.question_id && t.option == a.option && t.value == a.value)
            {
                Some(t) => t.count += 1,
                None => tallies.push(AnswerTally {
                    question_id: a.question_id.clone(),
                    option: a.option,
                    value: a.value,
                    count: 1,
                }),
            }
        }
        self.results_of(survey_id, runs, &tallies)
    }

    /// The results from answers already counted by question, option and value.
    pub fn results_of(&self, survey_id: &str, runs: RunCounts, tallies: &[AnswerTally]) -> Results {
        let questions = self
            .questions
            .iter()
            .map(|q| {
                let mine: Vec<&AnswerTally> = tallies.iter().filter(|t| t.question_id == q.id).collect();
                let count =
                    |f: &dyn Fn(&AnswerTally) -> bool| mine.iter().filter(|t| f(t)).map(|t| t.count).sum::<i64>();
                let options = match q.kind {
                    QuestionKind::Choice => q
                        .options
                        .iter()
                        .enumerate()
                        .map(|(i, o)| OptionCount {
                            text: o.text().to_string(),
                            value: o.value(),
                            count: count(&|t| t.option == Some(i as i64)),
                        })
                        .collect(),
                    QuestionKind::Scale => scale_values(q)
                        .map(|v| OptionCount {
                            text: v.to_string(),
                            value: Some(v),
                            count: count(&|t| t.value == Some(v)),
                        })
                        .collect(),
                    QuestionKind::Text => Vec::new(),
                };
                let valued = count(&|t| t.value.is_some());
                let sum: f64 = mine.iter().filter_map(|t| t.value.map(|v| v as f64 * t.count as f64)).sum();
                let average = (valued > 0).then(|| round2(sum / valued as f64));
                let nps = (SurveySpec::is_nps(q) && valued > 0).then(|| {
                    let promoters = count(&|t| t.value.is_some_and(|v| v >= 9));
                    let detractors = count(&|t| t.value.is_some_and(|v| v <= 6));
                    Nps {
                        score: round1((promoters as f64 - detractors as f64) * 100.0 / valued as f64),
                        promoters,
                        passives: valued - promoters - detractors,
                        detractors,
                    }
                });
                QuestionResults {
                    id: q.id.clone(),
                    text: q.text.clone(),
                    kind: q.kind,
                    answers: count(&|_| true),
                    options,
                    average,
                    nps,
                }
            })
            .collect();
        Results { survey_id: survey_id.to_string(), runs, questions }
    }

    /// One CSV row per answer (RFC 4180 quoting), in the order given, with a header.
    pub fn csv(&self, answers: &[AnswerRecord]) -> String {
        let mut out =
            String::from("run_id,contact_id,name,external_id,question_id,question,answer,value,answered_at\r\n");
        for a in answers {
            let question = self.questions.iter().find(|q| q.id == a.question_id).map_or("", |q| q.text.as_str());
            let fields = [
                a.run_id.as_str(),
                &a.contact_id,
                a.contact_name.as_deref().unwrap_or(""),
                a.external_id.as_deref().unwrap_or(""),
                &a.question_id,
                question,
                &a.answer,
                &a.value.map(|v| v.to_string()).unwrap_or_default(),
                &to_rfc3339(a.created_at),
            ];
            let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&row.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A CSV field, quoted when it holds a comma, quote or line break. A leading `=`, `+`, `-` or
/// `@` (or a tab or carriage return) gets a `'` so spreadsheet programs do not run a person's answer as a formula.
fn csv_field(f: &str) -> String {
    let f = if f.starts_with(['=', '+', '-', '@', '\t', '\r']) && f.parse::<f64>().is_err() {
        format!("'{f}")
    } else {
        f.into()
    };
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nps_survey() -> SurveySpec {
        SurveySpec::parse(&json!({
            "name": "NPS",
            "questions": [
                {"id": "nps", "text": "Порекомендуете нас?", "kind": "scale", "min": 0, "max": 10},
                {"text": "Удобно?", "kind": "choice", "options": [{"text": "Да", "value": 1}, {"text": "Нет", "value": 0}]},
                {"text": "Что улучшить?", "kind": "text"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn bad_definitions_say_what_is_wrong() {
        let cases = [
            (json!({"name": "x", "questions": []}), "at least one question"),
            (json!({"name": "x", "questions": [{"text": "a", "kind": "choice", "options": ["один"]}]}), "2..20"),
            (json!({"name": "x", "questions": [{"text": "a", "kind": "scale", "min": 1}]}), "`min` and `max`"),
            (
                json!({"name": "x", "questions": [{"text": "a", "kind": "scale", "min": -2, "max": i64::MAX}]}),
                "at most 11 numbers",
            ),
            (json!({"name": "x", "questions": [{"text": "a", "kind": "text"}], "deadline": "soon"}), "deadline"),
            (
                json!({"name": "x", "questions": [{"text": "a", "kind": "text"}], "deadline": "1h", "reminder": "2h"}),
                "shorter than `deadline`",
            ),
            (json!({"name": "x", "questions": [{"text": "a", "kind": "poll"}]}), "unknown variant"),
            (json!({"name": "x", "questions": [{"text": "a", "kind": "text"}], "trigger": {"kind": "date"}}), "field"),
        ];
        for (spec, words) in cases {
            let e = SurveySpec::parse(&spec).unwrap_err();
            assert_eq!(e.code, "invalid_survey");
            assert!(e.message.contains(words), "{spec}: {}", e.message);
        }
    }

    #[test]
    fn typed_answers_are_read_like_presses() {
        let s = nps_survey();
        assert_eq!(s.interpret(0, &Input::Text(" 9 ".into())).unwrap().value, Some(9));
        assert!(s.interpret(0, &Input::Text("11".into())).unwrap_err().contains("от 0 до 10"));
        assert_eq!(s.interpret(1, &Input::Text("да".into())).unwrap().option, Some(0));
        assert_eq!(s.interpret(1, &Input::Text("0".into())).unwrap().text, "Нет");
        assert!(s.interpret(1, &Input::Text("может быть".into())).is_err());
        assert_eq!(s.interpret(2, &Input::Text("Быстрее".into())).unwrap().text, "Быстрее");
        assert!(s.interpret(2, &Input::Option(0)).is_err());
    }

    #[test]
    fn nps_counts_promoters_minus_detractors() {
        let s = nps_survey();
        let rec = |v: i64| AnswerRecord {
            run_id: "r".into(),
            contact_id: "c".into(),
            contact_name: None,
            external_id: None,
            question_id: "nps".into(),
            answer: v.to_string(),
            value: Some(v),
            option: Some(v),
            created_at: 0,
        };
        let answers: Vec<_> = [10, 9, 8, 6, 0, 10].into_iter().map(rec).collect();
        let r = s.results("s", RunCounts::default(), &answers);
        let nps = r.questions[0].nps.clone().unwrap();
        assert_eq!((nps.promoters, nps.passives, nps.detractors), (3, 1, 2));
        assert_eq!(nps.score, 16.7);
        assert_eq!(r.questions[0].average, Some(7.17));
        assert_eq!(r.questions[0].options[10].count, 2);
    }

    #[test]
    fn csv_quotes_commas_quotes_newlines_and_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_field("-5"), "-5");
    }

    #[test]
    fn buttons_carry_run_step_and_option() {
        let s = nps_survey();
        let (_, kb) = s.question_message("r1", 0, None);
        assert_eq!(kb.len(), 2);
        assert_eq!(kb[0].len(), 6);
        let data = kb[1][4].data.clone().unwrap();
        assert_eq!(parse_button(&data), Some(("r1".into(), 0, 10)));
        assert_eq!(parse_button("survey:r1:0"), None);
    }
}
