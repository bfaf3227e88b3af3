//! Surveys in the engine: checking a definition, starting runs (by hand, from a business
//! event, from a date in the contact's attributes), and the survey jobs.
//!
//! ```text
//!   start / event / date scan ─► store.start_survey: run + first question + reminder and
//!                                 deadline jobs (one transaction; once per person and key)
//!   inbound press or text ─► [`turn`]: may it answer a survey? ─► `survey_answer` job (queued
//!                            with the message by the store when the person has a survey running)
//!        ─► store.survey_input: answer + `survey.answered` + next question | thanks
//!   `survey_remind` ─► the unanswered question again, once
//!   `survey_expire` ─► the run ends `expired`; the person's next queued survey starts
//!   `survey_scan` (date triggers; every SCAN_EVERY) ─► start runs whose day has come
//!                                                    ─► queue the next scan (a chain)
//! ```

use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use okno_domain::ids::{ContactId, MessageId};
use okno_domain::model::{Button, Message};
use okno_domain::surveys::{SurveySpec, Trigger};
use okno_domain::time::now_ms;
use okno_domain::{Error, Result};
use okno_store::{
    ContactFilter, EventRecord, InputOutcome, NewAudit, NewRun, Processed, RuleOutcome, StartOutcome, Survey,
    SurveyInput, SurveyStart, SurveyTurn,
};
use serde_json::{json, Value};

use crate::events::{RecipientSpec, Unreached};
use crate::templates;
use crate::worker::Outcome;
use crate::Engine;

/// How often a date-triggered survey looks for contacts whose day has come.
pub const SCAN_EVERY: Duration = Duration::from_secs(15 * 60);

/// Days a missed date is still caught up by default (the server was down, the survey was
/// created a day late). Older dates are not surveyed: nobody is asked about their first week
/// a month after it.
pub const DEFAULT_WINDOW_DAYS: i64 = 3;

/// Whom a manual start asks.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub contact_ids: Vec<ContactId>,
    pub external_ids: Vec<String>,
    pub groups: Vec<String>,
    /// Runs are unique per person and key: the same key again asks nobody twice.
    pub key: Option<String>,
}

impl Engine {
    /// Checks a survey (the definition, its trigger's templates and time zone) and stores it.
    pub async fn create_survey(&self, body: &Value) -> Result<Survey> {
        let spec = SurveySpec::parse(body)?;
        match &spec.trigger {
            Trigger::Manual => {}
            Trigger::Event { recipient, condition, .. } => {
                let r: RecipientSpec = serde_json::from_value(recipient.clone()).map_err(|e| {
                    Error::invalid("invalid_survey", format!("`trigger.recipient` is not a recipient: {e}"))
                })?;
                let set = [&r.external_id, &r.contact_id, &r.phone, &r.email, &r.group]
                    .into_iter()
                    .filter(|f| f.is_some())
                    .collect::<Vec<_>>();
                if set.len() != 1 {
                    return Err(Error::invalid(
                        "invalid_survey",
                        "`trigger.recipient` names exactly one of external_id, contact_id, phone, email, group",
                    ));
                }
                for t in set.into_iter().flatten() {
                    templates::check_template(t)?;
                }
                if let Some(c) = condition {
                    templates::check_condition(c)?;
                }
            }
            Trigger::Date { timezone, .. } => {
                if let Some(tz) = timezone {
                    TimeZone::get(tz).map_err(|_| {
                        Error::invalid("invalid_survey", format!("`trigger.timezone`: unknown time zone `{tz}`"))
                    })?;
                }
            }
        }
        let survey = self.store.create_survey(spec).await?;
        self.wake();
        Ok(survey)
    }

    /// Starts a survey for the people named (contact ids, external ids, groups). Started `by`
    /// an operator (`operator:<login>`), the audit line `survey.start` is written in the
    /// transaction of the first batch of people.
    pub async fn start_survey(&self, id: &str, req: StartRequest, by: Option<&str>) -> Result<Vec<StartOutcome>> {
        let survey = self.store.get_survey(id).await?;
        if !survey.active {
            return Err(Error::conflict("survey_inactive", "the survey was deleted: it starts no new runs"));
        }
        let key = req.key.unwrap_or_else(|| "manual".into());
        if key.trim().is_empty() || key.len() > 100 {
            return Err(Error::invalid("invalid_start", "`key` must be 1..100 characters"));
        }
        if req.contact_ids.is_empty() && req.external_ids.is_empty() && req.groups.is_empty() {
            return Err(Error::invalid("invalid_start", "name people: `contact_ids`, `external_ids` or `groups`"));
        }
        let mut ids: Vec<ContactId> = req.contact_ids.clone();
        let mut outcomes = Vec::new();
        for ext in &req.external_ids {
            let found =
                self.store.contact_ids(ContactFilter { external_id: Some(ext.clone()), ..Default::default() }).await?;
            if found.is_empty() {
                outcomes.push(StartOutcome::UnknownContact { contact_id: format!("external_id:{ext}") });
            }
            ids.extend(found);
        }
        for g in &req.groups {
            ids.extend(self.store.contact_ids(ContactFilter { group: Some(g.clone()), ..Default::default() }).await?);
        }
        let mut seen = std::collections::HashSet::new();
        ids.retain(|i| seen.insert(i.clone()));
        let mut audit = by.map(|actor| NewAudit {
            actor: actor.to_string(),
            action: "survey.start".into(),
            target: id.to_string(),
            detail: json!({"groups": req.groups, "people": ids.len(), "key": key}),
        });
        if ids.is_empty() {
            // Nobody to ask: the start is still on record.
            self.store.start_survey(id, Vec::new(), audit.take()).await?;
        }
        // Several transactions of a few hundred people each: a large group does not hold the
        // database for long, and each batch is complete on its own.
        for chunk in ids.chunks(200) {
            let runs = chunk.iter().map(|c| NewRun { contact_id: c.clone(), key: key.clone() }).collect();
            outcomes.extend(self.store.start_survey(id, runs, audit.take()).await?);
            self.wake();
        }
        Ok(outcomes)
    }

    /// The surveys an event starts (the `process_event` job): the person each names gets the
    /// survey once per event. Returns how many surveys matched. What each survey made of the
    /// event (under `survey:<id>`), whom it starts for and whom it could not find are added to
    /// `done`; the runs start when the event's processing commits.
    pub(crate) async fn start_event_surveys(&self, ev: &EventRecord, done: &mut Processed) -> Result<usize> {
        let surveys = self.store.surveys_for_event(&ev.event_type).await?;
        let ctx = json!({"event": {"id": ev.id, "type": ev.event_type, "key": ev.key}, "data": ev.data});
        let mut matched = 0;
        for survey in surveys {
            let Trigger::Event { recipient, condition, .. } = &survey.spec.trigger else { continue };
            let label = format!("survey:{}", survey.id);
            let outcome = |what: &str| RuleOutcome::new(&label, &survey.spec.name, what);
            if let Some(c) = condition {
                match self.renderer.condition(c, &ctx).await {
                    Ok(true) => {}
                    Ok(false) => {
                        done.rules.push(RuleOutcome { detail: Some(c.clone()), ..outcome("not_matched") });
                        continue;
                    }
                    Err(e) => {
                        let note = Unreached { code: "condition_error", value: None, reason: e.message.clone() };
                        done.unresolved.push(note.record(&label, "condition".into()));
                        done.rules.push(RuleOutcome { detail: Some(e.message), ..outcome("condition_error") });
                        continue;
                    }
                }
            }
            matched += 1;
            done.rules.push(outcome("matched"));
            let who = recipient.to_string();
            let r: RecipientSpec = match serde_json::from_value(recipient.clone()) {
                Ok(r) => r,
                Err(e) => {
                    let why = Unreached { code: "recipient_failed", value: None, reason: e.to_string() };
                    done.unresolved.push(why.record(&label, who));
                    continue;
                }
            };
            let ids = match self.resolve(&r, &ctx).await? {
                Ok(ids) => ids,
                Err(why) => {
                    done.unresolved.push(why.record(&label, who));
                    continue;
                }
            };
            let key = format!("event:{}", ev.id);
            let runs = ids.into_iter().map(|contact_id| NewRun { contact_id, key: key.clone() }).collect();
            done.surveys.push(SurveyStart { survey_id: survey.id.clone(), runs });
        }
        Ok(matched)
    }

    /// Starts a date-triggered survey for every contact whose day has come; returns how many
    /// runs started (or queued). Safe to repeat: runs are keyed by the contact's date.
    pub async fn scan_survey(&self, survey: &Survey) -> Result<usize> {
        let Trigger::Date { field, offset_days, hour, timezone, window_days } = &survey.spec.trigger else {
            return Err(Error::unprocessable("not_date_triggered", "only a date-triggered survey is scanned"));
        };
        let now = jiff::Timestamp::now();
        let window = window_days.unwrap_or(DEFAULT_WINDOW_DAYS);
        let hour = i8::try_from(hour.unwrap_or(10)).unwrap_or(10);
        let mut runs = Vec::new();
        for (contact_id, attrs) in self.store.date_candidates(field).await? {
            let Some(day) = attrs.get(field).and_then(Value::as_str).and_then(parse_day) else { continue };
            let tz_name = timezone
                .clone()
                .or_else(|| attrs.get("tz").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| self.cfg.default_timezone.clone());
            let tz = TimeZone::get(&tz_name).unwrap_or(TimeZone::UTC);
            let local = now.to_zoned(tz);
            let today = local.date();
            let Ok(due) = day.checked_add(jiff::Span::new().days(*offset_days)) else { continue };
            let Ok(oldest) = today.checked_sub(jiff::Span::new().days(window)) else { continue };
            // A missed day is caught up at the same hour: nobody is asked at three in the morning.
            let come = due <= today && local.hour() >= hour;
            if come && due >= oldest {
                runs.push(NewRun { contact_id: contact_id.into(), key: format!("date:{field}:{day}") });
            }
        }
        let mut started = 0;
        for chunk in runs.chunks(200) {
            let outcomes = self.store.start_survey(&survey.id, chunk.to_vec(), None).await?;
            started += outcomes
                .iter()
                .filter(|o| matches!(o, StartOutcome::Started { .. } | StartOutcome::Queued { .. }))
                .count();
        }
        if started > 0 {
            self.wake();
        }
        Ok(started)
    }

    /// The `survey_scan` job: one link of a date-triggered survey's scan chain.
    pub(crate) async fn survey_scan_job(&self, target: &str) -> Result<Outcome> {
        let Some((survey_id, token)) = target.split_once(':') else { return Ok(Outcome::Done) };
        let survey = match self.store.get_survey(survey_id).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        if !survey.active || survey.scan_token.as_deref() != Some(token) {
            return Ok(Outcome::Done);
        }
        // A failing scan must not end the chain: the next link tries again.
        match self.scan_survey(&survey).await {
            Ok(0) => {}
            Ok(started) => tracing::info!(survey = %survey.id, started, "a date-triggered survey started runs"),
            Err(e) => tracing::warn!(survey = %survey.id, error = %e, "a date scan failed; the next one tries again"),
        }
        self.store.next_survey_scan(&survey.id, token, now_ms() + SCAN_EVERY.as_millis() as i64).await?;
        Ok(Outcome::Done)
    }

    /// The `survey_answer` job: an inbound message read as an answer. A text that answers no
    /// running survey (the survey ended meanwhile) goes to the channel's bot after all.
    pub(crate) async fn survey_answer_job(&self, message_id: &MessageId) -> Result<Outcome> {
        let m = match self.store.get_message(message_id).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        let button = m.button_data.clone().filter(|d| d.starts_with(okno_domain::surveys::BUTTON_PREFIX));
        let pressed = button.is_some();
        let input = SurveyInput {
            message_id: m.id.clone(),
            contact_id: m.contact_id.clone(),
            channel_id: m.channel_id.clone(),
            button,
            text: m.text.clone(),
        };
        let outcome = self.store.survey_input(input).await?;
        if outcome == InputOutcome::NotAnswer && !pressed && self.has_bot(&m.channel_id).await {
            self.store.queue_bot_step(&m.id, &m.conversation_id).await?;
        }
        self.wake();
        if pressed && matches!(outcome, InputOutcome::Recorded { .. }) {
            self.mark_answered(&m).await;
        }
        Ok(Outcome::Done)
    }

    /// Shows the chosen answer on the question's message, where the platform edits sent
    /// messages: its buttons give way to one
    /// «✓ answer» button (a press on it is a double press: nothing happens). Cosmetic: the answer
    /// is stored either way, so a failure is only logged.
    async fn mark_answered(&self, press: &Message) {
        let (Some(question_id), Some(data)) = (&press.reply_to, &press.button_data) else { return };
        match self.channel(&press.channel_id).await {
            Ok(ch) if self.capabilities(&ch).is_ok_and(|c| c.edit) => {}
            _ => return,
        }
        let Ok(question) = self.store.get_message(question_id).await else { return };
        let Some(chosen) = question.buttons.iter().flatten().find(|b| b.data.as_deref() == Some(data)) else { return };
        let mark = vec![vec![Button { text: format!("✓ {}", chosen.text), data: Some(data.clone()), url: None }]];
        if let Err(e) = self.edit_buttons(question_id, mark).await {
            tracing::debug!(message = %question_id, error = %e, "could not mark a survey question answered");
        }
    }

    pub(crate) async fn survey_remind_job(&self, run_id: &str) -> Result<Outcome> {
        if self.store.remind_survey_run(run_id).await? {
            self.wake();
        }
        Ok(Outcome::Done)
    }

    pub(crate) async fn survey_expire_job(&self, run_id: &str) -> Result<Outcome> {
        if self.store.expire_survey_run(run_id).await? {
            self.wake();
        }
        Ok(Outcome::Done)
    }
}

/// A date as business systems write it: `2026-11-15`, `2026-11-15T09:00:00+03:00`, `15.11.2026`.
fn parse_day(text: &str) -> Option<Date> {
    let t = text.trim();
    if let Some(iso) = t.get(..10).filter(|d| d.as_bytes().get(4) == Some(&b'-')) {
        return iso.parse().ok();
    }
    let mut parts = t.split('.');
    let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
    Date::new(y.trim().parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

/// Whether an inbound message may answer a survey: a press of a survey's button, or a typed
/// text in private that is no command and no link code. Opt-outs are the broadcasts'.
pub(crate) fn turn(msg: &okno_channel::InboundMessage) -> SurveyTurn {
    if msg.sender.is_group || msg.subscription.is_some() {
        return SurveyTurn::No;
    }
    if let Some(data) = &msg.button_data {
        return if data.starts_with(okno_domain::surveys::BUTTON_PREFIX) { SurveyTurn::Press } else { SurveyTurn::No };
    }
    let typed = msg.text.as_deref().map(str::trim).unwrap_or_default();
    if typed.is_empty() || typed.starts_with('/') || okno_store::holds_link_code(typed) {
        SurveyTurn::No
    } else {
        SurveyTurn::IfRunning
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn a_survey_takes_its_presses_and_plain_text_in_private() {
        let text = |t: &str| okno_store::testing::inbound_text("ch", "u", "m", t);
        assert_eq!(super::turn(&text("Много работы")), SurveyTurn::IfRunning);
        assert_eq!(super::turn(&text("/menu")), SurveyTurn::No, "a command is the bot's");
        assert_eq!(super::turn(&text("AB12CD34")), SurveyTurn::No, "a link code is linked");
        assert_eq!(super::turn(&text("  ")), SurveyTurn::No);
        let mut group = text("Хорошо");
        group.sender.is_group = true;
        assert_eq!(super::turn(&group), SurveyTurn::No, "a group answers no survey");
        let mut press = text("");
        press.button_data = Some(format!("{}run:0:1", okno_domain::surveys::BUTTON_PREFIX));
        assert_eq!(super::turn(&press), SurveyTurn::Press);
        press.button_data = Some("bot:item:main:1:abc".into());
        assert_eq!(super::turn(&press), SurveyTurn::No);
        let mut stop = text("стоп");
        stop.subscription = crate::receiving::subscription::asked(&stop);
        assert_eq!(super::turn(&stop), SurveyTurn::No, "an opt-out is the broadcasts'");
    }

    use super::*;

    #[test]
    fn dates_are_read_in_the_forms_business_systems_write() {
        let day = Date::new(2026, 11, 15).unwrap();
        assert_eq!(parse_day("2026-11-15"), Some(day));
        assert_eq!(parse_day("2026-11-15T09:00:00+03:00"), Some(day));
        assert_eq!(parse_day("15.11.2026"), Some(day));
        assert_eq!(parse_day("31.02.2026"), None);
        assert_eq!(parse_day("вчера"), None);
    }
}
