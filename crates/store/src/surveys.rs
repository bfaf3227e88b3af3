//! Surveys: a run per survey, person and trigger key; questions sent one after another; one
//! answer per run and question. Every step — starting a run, recording an answer, reminding,
//! expiring — is one transaction that also writes what follows from it: the next question or
//! the thanks (messages with their `send` jobs), the `survey.answered`/`survey.completed`
//! webhook deliveries, the reminder and deadline jobs. A person answers one survey at a time:
//! a run started while another of theirs is active waits (`queued`) and starts when that one
//! ends.

use std::collections::HashMap;

use async_trait::async_trait;
use okno_domain::channel::SurveyTurn;
use okno_domain::ids::{new_id, random_hex, ChannelId, ContactId, MessageId};
use okno_domain::model::{EventType, Page};
use okno_domain::surveys::{AnswerRecord, AnswerTally, Input, RunCounts, SurveySpec};
use okno_domain::time::{now_ms, to_rfc3339, Millis};
use okno_domain::{Error, ErrorKind, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::audit::write_audit;
use crate::db::{args, Arg, Conn, Row};
use crate::outbox::{enqueue, insert_job};
use crate::sql::{on, SqlStore};
use crate::webhooks::emit;
use crate::{InboundMessage, JobKind, NewAudit, OutboundRequest, PageRequest, Recipient};

/// A stored survey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Survey {
    pub id: String,
    /// `false` once deleted: no new runs; answers and results stay.
    pub active: bool,
    #[serde(flatten)]
    pub spec: SurveySpec,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub created_at: Millis,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub updated_at: Millis,
    /// The current link of a date trigger's scan chain.
    #[serde(skip)]
    pub scan_token: Option<String>,
}

/// One person's pass through a survey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurveyRun {
    pub id: String,
    pub survey_id: String,
    pub contact_id: String,
    /// What started it: `manual` (or the key given to `start`), `event:<id>`, `date:<field>:<day>`.
    pub key: String,
    /// `queued`, `active`, `completed`, `expired`, `unreachable` or `cancelled`.
    pub status: String,
    /// The index of the question being asked (the number answered so far).
    pub step: i64,
    pub channel_id: Option<String>,
    pub error: Option<String>,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub deadline_at: Option<Millis>,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub reminded_at: Option<Millis>,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub started_at: Option<Millis>,
    #[serde(with = "okno_domain::time::rfc3339::option")]
    pub finished_at: Option<Millis>,
    #[serde(with = "okno_domain::time::rfc3339")]
    pub created_at: Millis,
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub contact_id: ContactId,
    pub key: String,
}

/// What starting a run for one person did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StartOutcome {
    /// The first question is on its way.
    Started {
        contact_id: String,
        run_id: String,
    },
    /// The person is answering another survey; this one follows.
    Queued {
        contact_id: String,
        run_id: String,
    },
    /// This person already has a run with this key: not asked again.
    Already {
        contact_id: String,
        run_id: String,
        status: String,
    },
    /// The person is answering this survey right now (under another key).
    Busy {
        contact_id: String,
        run_id: String,
    },
    /// No channel reaches the person.
    Unreachable {
        contact_id: String,
        run_id: String,
        reason: String,
    },
    UnknownContact {
        contact_id: String,
    },
}

/// Filters of a survey's runs.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub status: Option<String>,
    pub contact_id: Option<String>,
}

/// An inbound message handed to the surveys (a press of a survey button, or a text while the
/// person has a survey running).
#[derive(Debug, Clone)]
pub struct SurveyInput {
    pub message_id: MessageId,
    pub contact_id: ContactId,
    pub channel_id: ChannelId,
    /// `survey:<run>:<step>:<option>` button data.
    pub button: Option<String>,
    pub text: Option<String>,
}

/// What an inbound message did to a survey.
#[derive(Debug, Clone, PartialEq)]
pub enum InputOutcome {
    /// Stored; the next question (or the thanks, when `completed`) is queued.
    Recorded { completed: bool },
    /// That question was answered already (a double press): nothing changed.
    Duplicate,
    /// Not a usable answer: a hint and the question again are queued.
    Hinted,
    /// The run is over (`completed`/`expired`); the person was told so.
    Closed,
    /// Not an answer to any running survey (left to the bot).
    NotAnswer,
}

/// The surveys' storage.
#[async_trait]
pub trait SurveyStore: Send + Sync + 'static {
    /// Stores a checked survey; a date trigger's first scan is queued with it. An active survey
    /// of the same name is a conflict.
    async fn create_survey(&self, spec: SurveySpec) -> Result<Survey>;
    async fn get_survey(&self, id: &str) -> Result<Survey>;
    /// Active surveys first, newest first.
    async fn list_surveys(&self, page: PageRequest) -> Result<Page<Survey>>;
    /// Stops new runs (triggers and starts) and cancels queued ones; running ones finish.
    async fn deactivate_survey(&self, id: &str) -> Result<Survey>;
    /// Active surveys started by events of this type.
    async fn surveys_for_event(&self, event_type: &str) -> Result<Vec<Survey>>;
    /// Starts runs, each at most once per (survey, person, key). One transaction.
    /// `audit`, when given, is written in the same transaction.
    async fn start_survey(
        &self,
        survey_id: &str,
        runs: Vec<NewRun>,
        audit: Option<NewAudit>,
    ) -> Result<Vec<StartOutcome>>;
    /// Reads an answer (see [`InputOutcome`]).
    async fn survey_input(&self, input: SurveyInput) -> Result<InputOutcome>;
    /// Sends the reminder of an unanswered run (once); `false` when there is nothing to remind.
    async fn remind_survey_run(&self, run_id: &str) -> Result<bool>;
    /// Closes a run whose deadline has come; `false` when it had ended already.
    async fn expire_survey_run(&self, run_id: &str) -> Result<bool>;
    async fn get_survey_run(&self, id: &str) -> Result<SurveyRun>;
    /// Newest first.
    async fn list_survey_runs(&self, survey_id: &str, filter: RunFilter, page: PageRequest) -> Result<Page<SurveyRun>>;
    async fn survey_run_counts(&self, survey_id: &str) -> Result<RunCounts>;
    /// The run counts of several surveys in one grouped read (a survey without runs has none
    /// in the map).
    async fn survey_run_counts_of(&self, survey_ids: &[String]) -> Result<HashMap<String, RunCounts>>;
    /// The answers counted by question, option and value — what the results need — answered
    /// within `[from, to)` when given.
    async fn survey_tallies(
        &self,
        survey_id: &str,
        from: Option<Millis>,
        to: Option<Millis>,
    ) -> Result<Vec<AnswerTally>>;
    /// The newest answers to each of `question_ids` (at most `per_question` each), newest first,
    /// with the person's name and external id.
    async fn latest_answers(
        &self,
        survey_id: &str,
        question_ids: &[String],
        per_question: u32,
    ) -> Result<Vec<AnswerRecord>>;
    /// Every answer, oldest first, with the person's name and external id.
    async fn survey_answers(&self, survey_id: &str) -> Result<Vec<AnswerRecord>>;
    /// Contacts whose attributes hold `field` (a prefilter: the caller reads the date).
    async fn date_candidates(&self, field: &str) -> Result<Vec<(String, Value)>>;
    /// Queues the next scan of a date-triggered survey at `at`, if `token` is still the current
    /// link of its chain (`false`: a stale duplicate, or the survey is inactive).
    async fn next_survey_scan(&self, survey_id: &str, token: &str, at: Millis) -> Result<bool>;
}

const SURVEY_COLS: &str = "id, spec, active, scan_token, created_at, updated_at";

fn survey_from(row: &Row) -> Result<Survey> {
    let spec: SurveySpec = serde_json::from_value(row.js("spec")?)
        .map_err(|e| Error::internal(format!("a stored survey no longer parses: {e}")))?;
    Ok(Survey {
        id: row.s("id")?,
        active: row.flag("active")?,
        spec,
        created_at: row.i("created_at")?,
        updated_at: row.i("updated_at")?,
        scan_token: row.os("scan_token")?,
    })
}

/// The survey, if there is one (inside the caller's transaction).
pub(crate) async fn load_survey_in(c: &mut dyn Conn, id: &str) -> Result<Option<Survey>> {
    c.row(&format!("SELECT {SURVEY_COLS} FROM surveys WHERE id = $1"), args![id])
        .await?
        .map(|r| survey_from(&r))
        .transpose()
}

async fn load_survey(c: &mut dyn Conn, id: &str) -> Result<Survey> {
    let row = c
        .row(&format!("SELECT {SURVEY_COLS} FROM surveys WHERE id = $1"), args![id])
        .await?
        .ok_or_else(|| Error::not_found("survey", id))?;
    survey_from(&row)
}

const RUN_COLS: &str = "id, survey_id, contact_id, run_key, status, step, channel_id, error, deadline_at, \
     reminded_at, started_at, finished_at, created_at";

fn run_from(row: &Row) -> Result<SurveyRun> {
    Ok(SurveyRun {
        id: row.s("id")?,
        survey_id: row.s("survey_id")?,
        contact_id: row.s("contact_id")?,
        key: row.s("run_key")?,
        status: row.s("status")?,
        step: row.i("step")?,
        channel_id: row.os("channel_id")?,
        error: row.os("error")?,
        deadline_at: row.oi("deadline_at")?,
        reminded_at: row.oi("reminded_at")?,
        started_at: row.oi("started_at")?,
        finished_at: row.oi("finished_at")?,
        created_at: row.i("created_at")?,
    })
}

async fn load_run(c: &mut dyn Conn, id: &str) -> Result<Option<SurveyRun>> {
    c.row(&format!("SELECT {RUN_COLS} FROM survey_runs WHERE id = $1"), args![id])
        .await?
        .map(|r| run_from(&r))
        .transpose()
}

const ANSWER_COLS: &str = "a.run_id, a.contact_id, k.name, k.external_id, a.question_id, a.answer, a.value, \
     a.option_index, a.created_at";

fn answer_from(r: &Row) -> Result<AnswerRecord> {
    Ok(AnswerRecord {
        run_id: r.s("run_id")?,
        contact_id: r.s("contact_id")?,
        contact_name: r.os("name")?,
        external_id: r.os("external_id")?,
        question_id: r.s("question_id")?,
        answer: r.s("answer")?,
        value: r.oi("value")?,
        option: r.oi("option_index")?,
        created_at: r.i("created_at")?,
    })
}

/// The run counts of several surveys: one statement, the runs grouped by survey and status and
/// the runs with an answer by survey.
async fn run_counts(c: &mut dyn Conn, survey_ids: &[String]) -> Result<HashMap<String, RunCounts>> {
    let mut out: HashMap<String, RunCounts> = HashMap::new();
    if survey_ids.is_empty() {
        return Ok(out);
    }
    let args: Vec<Arg> = survey_ids.iter().map(|id| Arg::from(id.as_str())).collect();
    let listed = (1..=args.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
    let rows = c
        .rows_planned(
            &format!(
                "SELECT survey_id, status, COUNT(*) AS n FROM survey_runs WHERE survey_id IN ({listed}) \
                 GROUP BY survey_id, status \
                 UNION ALL SELECT survey_id, '' AS status, COUNT(DISTINCT run_id) AS n FROM survey_answers \
                 WHERE survey_id IN ({listed}) GROUP BY survey_id"
            ),
            &args,
        )
        .await?;
    for row in &rows {
        let counts = out.entry(row.s("survey_id")?).or_default();
        let n = row.i("n")?;
        match row.s("status")?.as_str() {
            // The runs someone answered: not a state of its own.
            "" => {
                counts.responded = n;
                continue;
            }
            "active" => counts.active = n,
            "queued" => counts.queued = n,
            "completed" => counts.completed = n,
            "expired" => counts.expired = n,
            "unreachable" => counts.unreachable = n,
            _ => {}
        }
        counts.total += n;
    }
    Ok(out)
}

/// Starts runs of an active `survey` (see `SurveyStore::start_survey`) inside the caller's
/// transaction: the surveys an event starts begin in the transaction that ends the event's
/// processing.
pub(crate) async fn start_runs(c: &mut dyn Conn, survey: &Survey, runs: Vec<NewRun>) -> Result<Vec<StartOutcome>> {
    let mut out = Vec::with_capacity(runs.len());
    for r in runs {
        let contact_id = r.contact_id.to_string();
        if c.row("SELECT id FROM contacts WHERE id = $1", args![&contact_id]).await?.is_none() {
            out.push(StartOutcome::UnknownContact { contact_id });
            continue;
        }
        let now = now_ms();
        let existing = c
            .row(
                "SELECT id, status FROM survey_runs WHERE survey_id = $1 AND contact_id = $2 AND run_key = $3",
                args![&survey.id, &contact_id, &r.key],
            )
            .await?;
        let run_id = match existing {
            // Someone no channel reached may be reachable now.
            Some(row) if row.s("status")? == "unreachable" => row.s("id")?,
            Some(row) => {
                out.push(StartOutcome::Already { contact_id, run_id: row.s("id")?, status: row.s("status")? });
                continue;
            }
            None => {
                let running = c
                    .row(
                        "SELECT id FROM survey_runs WHERE survey_id = $1 AND contact_id = $2 \
                         AND status IN ('active', 'queued')",
                        args![&survey.id, &contact_id],
                    )
                    .await?;
                if let Some(row) = running {
                    out.push(StartOutcome::Busy { contact_id, run_id: row.s("id")? });
                    continue;
                }
                let id = new_id();
                // Two processes starting the same run at once: one row, the other is told.
                let inserted = c
                    .exec(
                        "INSERT INTO survey_runs (id, survey_id, contact_id, run_key, status, step, created_at, \
                         updated_at) VALUES ($1, $2, $3, $4, 'queued', 0, $5, $5) \
                         ON CONFLICT (survey_id, contact_id, run_key) DO NOTHING",
                        args![&id, &survey.id, &contact_id, &r.key, now],
                    )
                    .await?;
                if inserted == 0 {
                    let row = c
                        .one(
                            "SELECT id, status FROM survey_runs WHERE survey_id = $1 AND contact_id = $2 \
                             AND run_key = $3",
                            args![&survey.id, &contact_id, &r.key],
                        )
                        .await?;
                    out.push(StartOutcome::Already { contact_id, run_id: row.s("id")?, status: row.s("status")? });
                    continue;
                }
                id
            }
        };
        if active_run_of(c, &contact_id).await?.is_some() {
            c.exec(
                "UPDATE survey_runs SET status = 'queued', error = NULL, updated_at = $2 WHERE id = $1",
                args![&run_id, now],
            )
            .await?;
            out.push(StartOutcome::Queued { contact_id, run_id });
            continue;
        }
        out.push(match activate(c, &run_id, survey, &contact_id).await? {
            Ok(()) => StartOutcome::Started { contact_id, run_id },
            Err(reason) => StartOutcome::Unreachable { contact_id, run_id, reason },
        });
    }
    Ok(out)
}

/// Whether an inbound message goes to the surveys rather than the bot: a press of a survey
/// button, or a text that may answer one from a person with a survey running.
/// `running`: whether the contact has an active run, when the caller has read it already.
pub(crate) async fn takes_inbound(
    c: &mut dyn Conn,
    contact_id: &str,
    msg: &InboundMessage,
    running: Option<bool>,
) -> Result<bool> {
    match (msg.survey, running) {
        (SurveyTurn::No, _) => Ok(false),
        (SurveyTurn::Press, _) => Ok(true),
        (SurveyTurn::IfRunning, Some(running)) => Ok(running),
        (SurveyTurn::IfRunning, None) => Ok(c
            .row("SELECT id FROM survey_runs WHERE contact_id = $1 AND status = 'active' LIMIT 1", args![contact_id])
            .await?
            .is_some()),
    }
}

/// Moves `other`'s survey runs and answers to `keep` (contact merge). A run `keep` already has
/// under the same survey and key stays the kept one; the other's stays behind with its answers.
pub(crate) async fn merge_contacts(c: &mut dyn Conn, keep: &str, other: &str) -> Result<()> {
    c.exec(
        "UPDATE survey_runs SET contact_id = $1 WHERE contact_id = $2 AND NOT EXISTS (SELECT 1 FROM survey_runs k \
         WHERE k.contact_id = $1 AND k.survey_id = survey_runs.survey_id AND k.run_key = survey_runs.run_key)",
        args![keep, other],
    )
    .await?;
    c.exec(
        "UPDATE survey_answers SET contact_id = $1 WHERE contact_id = $2 \
         AND run_id IN (SELECT id FROM survey_runs WHERE contact_id = $1)",
        args![keep, other],
    )
    .await?;
    Ok(())
}

/// A message from survey `survey_id` to a person; `None` channel: where they last wrote. Its
/// author, `survey:<id>`, lets the thread name the survey.
fn outbound(
    survey_id: &str,
    contact_id: &str,
    channel_id: Option<ChannelId>,
    text: String,
    buttons: okno_domain::model::Keyboard,
) -> OutboundRequest {
    OutboundRequest {
        to: Recipient::Contact(contact_id.into()),
        channel_id,
        text: Some(text),
        buttons,
        attachment_ids: Vec::new(),
        idempotency_key: None,
        author: Some(format!("survey:{survey_id}")),
        reply_to: None,
        options: json!({}),
    }
}

/// Errors that mean "this person cannot be reached", as opposed to a failing database.
fn unreachable(e: &Error) -> bool {
    matches!(e.kind, ErrorKind::Unprocessable | ErrorKind::NotFound)
}

/// Sends the first question of a run and schedules its reminder and deadline; a person no
/// channel reaches makes the run `unreachable`. Returns whether it started.
async fn activate(
    c: &mut dyn Conn,
    run_id: &str,
    survey: &Survey,
    contact_id: &str,
) -> Result<std::result::Result<(), String>> {
    let now = now_ms();
    let spec = &survey.spec;
    let deadline = now + spec.deadline_ms()?;
    let (text, buttons) = spec.question_message(run_id, 0, spec.intro.as_deref());
    match enqueue(c, outbound(&survey.id, contact_id, spec.channel_id.clone(), text, buttons)).await {
        Ok((message, _)) => {
            c.exec(
                "UPDATE survey_runs SET status = 'active', step = 0, channel_id = $2, error = NULL, deadline_at = $3, \
                 started_at = $4, updated_at = $4 WHERE id = $1",
                args![run_id, &message.channel_id, deadline, now],
            )
            .await?;
            insert_job(c, JobKind::SurveyExpire, run_id, None, deadline).await?;
            if let Some(before) = spec.reminder_ms() {
                if deadline - before > now {
                    insert_job(c, JobKind::SurveyRemind, run_id, None, deadline - before).await?;
                }
            }
            Ok(Ok(()))
        }
        Err(e) if unreachable(&e) => {
            c.exec(
                "UPDATE survey_runs SET status = 'unreachable', error = $2, updated_at = $3 WHERE id = $1",
                args![run_id, &e.message, now],
            )
            .await?;
            Ok(Err(e.message))
        }
        Err(e) => Err(e),
    }
}

/// Starts the person's oldest queued run, if any (after their current one ended).
async fn promote_next(c: &mut dyn Conn, contact_id: &str) -> Result<()> {
    // A queued run that turns out unreachable is marked so and gives way to the next one, so
    // the loop ends when one starts or none is left.
    loop {
        let Some(row) = c
            .row(
                "SELECT id, survey_id FROM survey_runs WHERE contact_id = $1 AND status = 'queued' \
                 ORDER BY created_at, id LIMIT 1",
                args![contact_id],
            )
            .await?
        else {
            return Ok(());
        };
        let survey = load_survey(c, &row.s("survey_id")?).await?;
        if activate(c, &row.s("id")?, &survey, contact_id).await?.is_ok() {
            return Ok(());
        }
    }
}

/// Queues a message to the person; one no channel reaches any more is left out, so that what
/// they answered is still recorded.
async fn tell(c: &mut dyn Conn, req: crate::OutboundRequest) -> Result<()> {
    match enqueue(c, req).await {
        Ok(_) => Ok(()),
        Err(e) if unreachable(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn active_run_of(c: &mut dyn Conn, contact_id: &str) -> Result<Option<SurveyRun>> {
    c.row(
        &format!(
            "SELECT {RUN_COLS} FROM survey_runs WHERE contact_id = $1 AND status = 'active' \
             ORDER BY started_at DESC, id DESC LIMIT 1"
        ),
        args![contact_id],
    )
    .await?
    .map(|r| run_from(&r))
    .transpose()
}

/// The person as webhooks show them.
async fn contact_json(c: &mut dyn Conn, id: &str) -> Result<Value> {
    Ok(c.row("SELECT id, external_id, name, phone, email FROM contacts WHERE id = $1", args![id])
        .await?
        .map(|r| -> Result<Value> {
            Ok(json!({"id": r.s("id")?, "external_id": r.os("external_id")?, "name": r.os("name")?,
                "phone": r.os("phone")?, "email": r.os("email")?}))
        })
        .transpose()?
        .unwrap_or_else(|| json!({"id": id})))
}

#[async_trait]
impl SurveyStore for SqlStore {
    async fn create_survey(&self, spec: SurveySpec) -> Result<Survey> {
        on!(self.write, |c| {
            let taken = c.row("SELECT id FROM surveys WHERE name = $1 AND active = 1", args![&spec.name]).await?;
            if let Some(row) = taken {
                return Err(Error::conflict(
                    "survey_exists",
                    format!(
                        "an active survey `{}` exists (id {}); delete it first or pick another name",
                        spec.name,
                        row.s("id")?
                    ),
                ));
            }
            if let Some(ch) = &spec.channel_id {
                if c.row("SELECT id FROM channels WHERE id = $1 AND deleted = 0", args![ch]).await?.is_none() {
                    return Err(Error::not_found("channel", ch));
                }
            }
            let id = new_id();
            let now = now_ms();
            let token = matches!(spec.trigger, okno_domain::surveys::Trigger::Date { .. }).then(|| random_hex(8));
            let stored = serde_json::to_string(&spec).map_err(|e| Error::internal(e.to_string()))?;
            c.exec(
                "INSERT INTO surveys (id, name, spec, trigger_kind, trigger_event, active, scan_token, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7)",
                args![&id, &spec.name, stored, spec.trigger.kind(), spec.trigger.event(), &token, now],
            )
            .await?;
            if let Some(t) = &token {
                insert_job(c, JobKind::SurveyScan, &format!("{id}:{t}"), None, now).await?;
            }
            load_survey(c, &id).await
        })
    }

    async fn get_survey(&self, id: &str) -> Result<Survey> {
        let id = id.to_owned();
        on!(self.read, |c| load_survey(c, &id).await)
    }

    async fn list_surveys(&self, page: PageRequest) -> Result<Page<Survey>> {
        on!(self.read, |c| {
            // The cursor is `<active><id>`, the sort key.
            let cursor = page.cursor.clone().unwrap_or_else(|| "2".into());
            let rows = c
                .rows(
                    &format!(
                        "SELECT {SURVEY_COLS} FROM surveys WHERE (CAST(active AS TEXT) || id) < $1 \
                         ORDER BY active DESC, id DESC LIMIT $2"
                    ),
                    args![&cursor, i64::from(page.limit) + 1],
                )
                .await?;
            let mut items = rows.iter().map(survey_from).collect::<Result<Vec<_>>>()?;
            let more = items.len() > page.limit as usize;
            items.truncate(page.limit as usize);
            let next = if more { items.last().map(|s| format!("{}{}", u8::from(s.active), s.id)) } else { None };
            Ok(Page { items, next })
        })
    }

    async fn deactivate_survey(&self, id: &str) -> Result<Survey> {
        let id = id.to_owned();
        on!(self.write, |c| {
            load_survey(c, &id).await?;
            let now = now_ms();
            c.exec("UPDATE surveys SET active = 0, scan_token = NULL, updated_at = $2 WHERE id = $1", args![&id, now])
                .await?;
            c.exec(
                "UPDATE survey_runs SET status = 'cancelled', finished_at = $2, updated_at = $2 \
                 WHERE survey_id = $1 AND status = 'queued'",
                args![&id, now],
            )
            .await?;
            load_survey(c, &id).await
        })
    }

    async fn surveys_for_event(&self, event_type: &str) -> Result<Vec<Survey>> {
        let event_type = event_type.to_owned();
        on!(self.read, |c| {
            let rows = c
                .rows(
                    &format!("SELECT {SURVEY_COLS} FROM surveys WHERE trigger_event = $1 AND active = 1 ORDER BY id"),
                    args![&event_type],
                )
                .await?;
            rows.iter().map(survey_from).collect()
        })
    }

    async fn start_survey(
        &self,
        survey_id: &str,
        runs: Vec<NewRun>,
        audit: Option<NewAudit>,
    ) -> Result<Vec<StartOutcome>> {
        let survey_id = survey_id.to_owned();
        on!(self.write, |c| {
            let survey = load_survey(c, &survey_id).await?;
            if !survey.active {
                return Err(Error::conflict("survey_inactive", "the survey was deleted: it starts no new runs"));
            }
            let out = start_runs(c, &survey, runs).await?;
            write_audit(c, audit.as_ref()).await?;
            Ok(out)
        })
    }

    async fn survey_input(&self, input: SurveyInput) -> Result<InputOutcome> {
        on!(self.write, |c| {
            let press = match &input.button {
                Some(data) => match okno_domain::surveys::parse_button(data) {
                    Some(p) => Some(p),
                    None => return Ok(InputOutcome::NotAnswer),
                },
                None => None,
            };
            let run = match &press {
                Some((run_id, ..)) => load_run(c, run_id).await?.filter(|r| r.contact_id == input.contact_id),
                None => active_run_of(c, &input.contact_id).await?,
            };
            let Some(mut run) = run else { return Ok(InputOutcome::NotAnswer) };
            // The same message handled again (its job ran twice: a crash after the commit) is
            // not an answer to the next question.
            let seen =
                c.row("SELECT 1 AS one FROM survey_answers WHERE message_id = $1", args![&input.message_id]).await?;
            if seen.is_some() {
                return Ok(InputOutcome::Duplicate);
            }
            let survey = load_survey(c, &run.survey_id).await?;
            let reply_on = Some(input.channel_id.clone());
            // Past its deadline (the expiry job has not run yet): expired now, not answered.
            if run.status == "active" && run.deadline_at.is_some_and(|d| d <= now_ms()) {
                let expired = c
                    .exec(
                        "UPDATE survey_runs SET status = 'expired', finished_at = $2, updated_at = $2 \
                         WHERE id = $1 AND status = 'active'",
                        args![&run.id, now_ms()],
                    )
                    .await?;
                if expired > 0 {
                    promote_next(c, &run.contact_id).await?;
                }
                run.status = "expired".into();
            }
            if run.status != "active" {
                let text = match run.status.as_str() {
                    "completed" => "Спасибо, ваши ответы уже записаны.",
                    "expired" => "Время для ответов на этот опрос истекло. Спасибо!",
                    "cancelled" => "Этот опрос больше не проводится. Спасибо!",
                    _ => return Ok(InputOutcome::NotAnswer),
                };
                if let Err(e) =
                    enqueue(c, outbound(&run.survey_id, &input.contact_id, reply_on, text.into(), Vec::new())).await
                {
                    if !unreachable(&e) {
                        return Err(e);
                    }
                }
                return Ok(InputOutcome::Closed);
            }
            let step = run.step as usize;
            let given = match &press {
                Some((_, s, _)) if *s < step => return Ok(InputOutcome::Duplicate),
                Some((_, s, _)) if *s > step => return Ok(InputOutcome::NotAnswer),
                Some((_, _, option)) => Input::Option(*option),
                None => Input::Text(input.text.clone().unwrap_or_default()),
            };
            let spec = &survey.spec;
            let Some(question) = spec.questions.get(step) else { return Ok(InputOutcome::NotAnswer) };
            let answer = match spec.interpret(step, &given) {
                Ok(a) => a,
                Err(hint) => {
                    let (text, buttons) = spec.question_message(&run.id, step, Some(&hint));
                    tell(c, outbound(&survey.id, &input.contact_id, reply_on, text, buttons)).await?;
                    return Ok(InputOutcome::Hinted);
                }
            };
            let now = now_ms();
            let advanced = c
                .exec(
                    "UPDATE survey_runs SET step = step + 1, updated_at = $3 WHERE id = $1 AND step = $2 AND status = 'active'",
                    args![&run.id, run.step, now],
                )
                .await?;
            if advanced == 0 {
                return Ok(InputOutcome::Duplicate);
            }
            c.exec(
                "INSERT INTO survey_answers (id, run_id, survey_id, contact_id, question_id, answer, value, option_index, \
                 message_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                args![
                    new_id(),
                    &run.id,
                    &survey.id,
                    &run.contact_id,
                    &question.id,
                    &answer.text,
                    answer.value,
                    answer.option,
                    &input.message_id,
                    now
                ],
            )
            .await?;
            let contact = contact_json(c, &run.contact_id).await?;
            let survey_ref = json!({"id": survey.id, "name": spec.name});
            emit(
                c,
                EventType::SurveyAnswered,
                json!({
                    "survey": survey_ref, "run_id": run.id, "key": run.key, "contact": contact,
                    "question": {"id": question.id, "text": question.text, "kind": question.kind, "index": step},
                    "answer": answer.text, "value": answer.value, "option": answer.option,
                    "message_id": input.message_id, "answered_at": to_rfc3339(now),
                }),
            )
            .await?;
            let completed = step + 1 >= spec.questions.len();
            if completed {
                c.exec(
                    "UPDATE survey_runs SET status = 'completed', finished_at = $2, updated_at = $2 WHERE id = $1",
                    args![&run.id, now],
                )
                .await?;
                tell(c, outbound(&survey.id, &input.contact_id, reply_on, spec.thanks_text().into(), Vec::new()))
                    .await?;
                let mut answers = serde_json::Map::new();
                for row in c
                    .rows("SELECT question_id, answer, value FROM survey_answers WHERE run_id = $1", args![&run.id])
                    .await?
                {
                    answers
                        .insert(row.s("question_id")?, json!({"answer": row.s("answer")?, "value": row.oi("value")?}));
                }
                emit(
                    c,
                    EventType::SurveyCompleted,
                    json!({"survey": survey_ref, "run_id": run.id, "key": run.key, "contact": contact,
                        "answers": answers, "completed_at": to_rfc3339(now)}),
                )
                .await?;
                promote_next(c, &run.contact_id).await?;
            } else {
                let (text, buttons) = spec.question_message(&run.id, step + 1, None);
                tell(c, outbound(&survey.id, &input.contact_id, reply_on, text, buttons)).await?;
            }
            Ok(InputOutcome::Recorded { completed })
        })
    }

    async fn remind_survey_run(&self, run_id: &str) -> Result<bool> {
        let run_id = run_id.to_owned();
        on!(self.write, |c| {
            let Some(run) = load_run(c, &run_id).await? else { return Ok(false) };
            let now = now_ms();
            if run.status != "active" || run.reminded_at.is_some() || run.deadline_at.is_some_and(|d| d <= now) {
                return Ok(false);
            }
            let survey = load_survey(c, &run.survey_id).await?;
            let spec = &survey.spec;
            let (text, buttons) = spec.question_message(&run.id, run.step as usize, Some(spec.reminder_prefix()));
            c.exec("UPDATE survey_runs SET reminded_at = $2, updated_at = $2 WHERE id = $1", args![&run.id, now])
                .await?;
            match enqueue(
                c,
                outbound(&survey.id, &run.contact_id, run.channel_id.clone().map(ChannelId::from), text, buttons),
            )
            .await
            {
                Ok(_) => Ok(true),
                Err(e) if unreachable(&e) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    async fn expire_survey_run(&self, run_id: &str) -> Result<bool> {
        let run_id = run_id.to_owned();
        on!(self.write, |c| {
            let Some(run) = load_run(c, &run_id).await? else { return Ok(false) };
            let now = now_ms();
            // A run whose deadline moved (started again after being queued) waits for its own job.
            if run.status != "active" || run.deadline_at.is_some_and(|d| d > now) {
                return Ok(false);
            }
            let expired = c
                .exec(
                    "UPDATE survey_runs SET status = 'expired', finished_at = $2, updated_at = $2 \
                     WHERE id = $1 AND status = 'active'",
                    args![&run.id, now],
                )
                .await?;
            // Ended meanwhile (answered, or expired by a late answer): someone else promoted.
            if expired == 0 {
                return Ok(false);
            }
            promote_next(c, &run.contact_id).await?;
            Ok(true)
        })
    }

    async fn get_survey_run(&self, id: &str) -> Result<SurveyRun> {
        let id = id.to_owned();
        on!(self.read, |c| load_run(c, &id).await?.ok_or_else(|| Error::not_found("survey_run", &id)))
    }

    async fn list_survey_runs(&self, survey_id: &str, filter: RunFilter, page: PageRequest) -> Result<Page<SurveyRun>> {
        let survey_id = survey_id.to_owned();
        on!(self.read, |c| {
            load_survey(c, &survey_id).await?;
            let mut sql = format!("SELECT {RUN_COLS} FROM survey_runs WHERE survey_id = $1");
            let mut params: Vec<crate::db::Arg> = vec![survey_id.clone().into()];
            if let Some(status) = &filter.status {
                params.push(status.into());
                sql.push_str(&format!(" AND status = ${}", params.len()));
            }
            if let Some(contact) = &filter.contact_id {
                params.push(contact.into());
                sql.push_str(&format!(" AND contact_id = ${}", params.len()));
            }
            if let Some(cursor) = &page.cursor {
                params.push(cursor.into());
                sql.push_str(&format!(" AND id < ${}", params.len()));
            }
            params.push((i64::from(page.limit) + 1).into());
            sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));
            let mut items = c.rows(&sql, &params).await?.iter().map(run_from).collect::<Result<Vec<_>>>()?;
            let more = items.len() > page.limit as usize;
            items.truncate(page.limit as usize);
            let next = if more { items.last().map(|r| r.id.clone()) } else { None };
            Ok(Page { items, next })
        })
    }

    async fn survey_run_counts(&self, survey_id: &str) -> Result<RunCounts> {
        let survey_id = survey_id.to_owned();
        on!(self.read, |c| {
            load_survey(c, &survey_id).await?;
            let mut counts = run_counts(c, std::slice::from_ref(&survey_id)).await?;
            Ok(counts.remove(&survey_id).unwrap_or_default())
        })
    }

    async fn survey_run_counts_of(&self, survey_ids: &[String]) -> Result<HashMap<String, RunCounts>> {
        let survey_ids = survey_ids.to_vec();
        on!(self.read, |c| run_counts(c, &survey_ids).await)
    }

    async fn survey_tallies(
        &self,
        survey_id: &str,
        from: Option<Millis>,
        to: Option<Millis>,
    ) -> Result<Vec<AnswerTally>> {
        let survey_id = survey_id.to_owned();
        on!(self.read, |c| {
            load_survey(c, &survey_id).await?;
            let rows = c
                .rows(
                    "SELECT question_id, option_index, value, COUNT(*) AS n FROM survey_answers \
                     WHERE survey_id = $1 AND created_at >= $2 AND created_at < $3 \
                     GROUP BY question_id, option_index, value",
                    args![&survey_id, from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(AnswerTally {
                        question_id: r.s("question_id")?,
                        option: r.oi("option_index")?,
                        value: r.oi("value")?,
                        count: r.i("n")?,
                    })
                })
                .collect()
        })
    }

    async fn latest_answers(
        &self,
        survey_id: &str,
        question_ids: &[String],
        per_question: u32,
    ) -> Result<Vec<AnswerRecord>> {
        let (survey_id, question_ids) = (survey_id.to_owned(), question_ids.to_vec());
        on!(self.read, |c| {
            load_survey(c, &survey_id).await?;
            let mut out = Vec::new();
            // One read per question, newest first through the index on (survey_id, created_at):
            // a page of answers, never the whole survey's.
            for q in &question_ids {
                let rows = c
                    .rows(
                        &format!(
                            "SELECT {ANSWER_COLS} FROM survey_answers a LEFT JOIN contacts k ON k.id = a.contact_id \
                             WHERE a.survey_id = $1 AND a.question_id = $2 ORDER BY a.created_at DESC, a.id DESC LIMIT $3"
                        ),
                        args![&survey_id, q, i64::from(per_question)],
                    )
                    .await?;
                for r in &rows {
                    out.push(answer_from(r)?);
                }
            }
            Ok(out)
        })
    }

    async fn survey_answers(&self, survey_id: &str) -> Result<Vec<AnswerRecord>> {
        let survey_id = survey_id.to_owned();
        on!(self.read, |c| {
            load_survey(c, &survey_id).await?;
            let rows = c
                .rows(
                    &format!(
                        "SELECT {ANSWER_COLS} FROM survey_answers a LEFT JOIN contacts k ON k.id = a.contact_id \
                         WHERE a.survey_id = $1 ORDER BY a.created_at, a.id"
                    ),
                    args![&survey_id],
                )
                .await?;
            rows.iter().map(answer_from).collect()
        })
    }

    async fn date_candidates(&self, field: &str) -> Result<Vec<(String, Value)>> {
        let pattern = format!("%\"{}\"%", field.replace(['%', '\\', '"'], ""));
        on!(self.read, |c| {
            let rows = c.rows("SELECT id, attrs FROM contacts WHERE attrs LIKE $1", args![&pattern]).await?;
            rows.iter().map(|r| Ok((r.s("id")?, r.js("attrs")?))).collect()
        })
    }

    async fn next_survey_scan(&self, survey_id: &str, token: &str, at: Millis) -> Result<bool> {
        let (survey_id, token) = (survey_id.to_owned(), token.to_owned());
        on!(self.write, |c| {
            let next = random_hex(8);
            let changed = c
                .exec(
                    "UPDATE surveys SET scan_token = $3 WHERE id = $1 AND scan_token = $2 AND active = 1",
                    args![&survey_id, &token, &next],
                )
                .await?;
            if changed == 0 {
                return Ok(false);
            }
            insert_job(c, JobKind::SurveyScan, &format!("{survey_id}:{next}"), None, at).await?;
            Ok(true)
        })
    }
}
