//! The surveys pages: surveys with their trigger and how far their runs got; a survey's page
//! with its questions, the runs' progress, the results exactly as
//! `GET /api/v1/surveys/{id}/results` computes them (counts per option as bars, averages, NPS),
//! the latest free-text answers and runs, the CSV export, and starting it by hand for contact
//! groups and a pasted list of people (the engine path of `POST /api/v1/surveys/{id}/start`).
//! Viewing needs `Read`; starting needs `Write`, as in the API. Free-text answers are masked
//! for roles without the right to see personal data, on the page and in the CSV.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use okno_domain::ids::ContactId;
use okno_domain::model::Permission;
use okno_domain::surveys::{QuestionKind, Trigger};
use okno_engine::surveys::StartRequest;
use okno_store::{PageRequest, RunFilter, StartOutcome, Survey};
use serde::Deserialize;
use serde_json::{json, Value};

use super::events::full_time;
use super::inbox::display_name;
use super::{error_page, refuse, short_time, Form, Session};
use crate::masking;
use crate::AppState;

fn t(s: &Session, key: &str) -> String {
    super::i18n::t(s.lang, key)
}

/// What starts a survey, in words.
fn trigger_text(s: &Session, trigger: &Trigger) -> String {
    match trigger {
        Trigger::Manual => t(s, "sv_tr_manual"),
        Trigger::Event { event, condition, .. } => {
            let mut text = t(s, "sv_tr_event").replace("{event}", event);
            if let Some(c) = condition {
                text.push_str(&format!(" ({c})"));
            }
            text
        }
        Trigger::Date { field, offset_days, .. } => {
            let sign = if *offset_days < 0 { "−" } else { "+" };
            t(s, "sv_tr_date").replace("{field}", field).replace("{offset}", &format!("{sign} {}", offset_days.abs()))
        }
    }
}

/// `GET /ui/surveys`
pub async fn list(State(state): State<AppState>, s: Session, Query(q): Query<ListQuery>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    let store = &state.engine.store;
    let loaded = async {
        let page = store.list_surveys(PageRequest::new(Some(PAGE), q.cursor.clone())).await?;
        // The page's run counts in one grouped read, not three per survey.
        let ids: Vec<String> = page.items.iter().map(|sv| sv.id.clone()).collect();
        let counts = store.survey_run_counts_of(&ids).await?;
        let rows: Vec<Value> = page
            .items
            .iter()
            .map(|sv| {
                let runs = counts.get(&sv.id).cloned().unwrap_or_default();
                json!({
                    "id": sv.id, "name": sv.spec.name, "active": sv.active, "trigger": trigger_text(&s, &sv.spec.trigger),
                    "questions": sv.spec.questions.len(), "total": runs.total, "completed": runs.completed,
                    "active_runs": runs.active + runs.queued, "responded": runs.responded, "created": short_time(sv.created_at),
                })
            })
            .collect();
        Ok::<_, okno_domain::Error>((rows, page.next))
    }
    .await;
    match loaded {
        Ok((rows, next)) => ui.render(
            "surveys.html",
            &s,
            json!({"title": t(&s, "sv_surveys"), "nav": "surveys", "rows": rows, "next": next}),
        ),
        Err(e) => error_page(ui, &s, e),
    }
}

/// Surveys a page of the list shows.
const PAGE: u32 = 50;

/// The list's page: `cursor` is the previous page's `next`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub cursor: Option<String>,
}

/// The latest free-text answers a survey's page shows per question.
const LATEST_TEXTS: u32 = 20;

/// A share in whole percent, rounded (2 of 3 is 67%).
fn pct(n: i64, of: i64) -> i64 {
    if of > 0 {
        (n * 100 + of / 2) / of
    } else {
        0
    }
}

/// The survey's page; `started` is what a start just did.
async fn survey_page(state: &AppState, s: &Session, id: &str, started: Option<Value>, form: Value) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, s, Permission::Read) {
        return r;
    }
    match survey_view(state, s, id).await {
        Ok(mut ctx) => {
            ctx["started"] = started.unwrap_or(Value::Null);
            ctx["form"] = form;
            ui.render("survey.html", s, ctx)
        }
        Err(e) => error_page(ui, s, e),
    }
}

async fn survey_view(state: &AppState, s: &Session, id: &str) -> okno_domain::Result<Value> {
    let store = &state.engine.store;
    let survey: Survey = store.get_survey(id).await?;
    let runs = store.survey_run_counts(id).await?;
    // Counted in the database: the page needs the figures and the latest free-text answers,
    // never every answer.
    let tallies = store.survey_tallies(id, None, None).await?;
    let results = survey.spec.results_of(&survey.id, runs.clone(), &tallies);
    let text_questions: Vec<String> =
        survey.spec.questions.iter().filter(|q| q.kind == QuestionKind::Text).map(|q| q.id.clone()).collect();
    let answers = store.latest_answers(id, &text_questions, LATEST_TEXTS).await?;
    let personal = s.role().allows(Permission::PersonalData);
    let questions: Vec<Value> = survey
        .spec
        .questions
        .iter()
        .zip(&results.questions)
        .enumerate()
        .map(|(i, (q, r))| {
            let most = r.options.iter().map(|o| o.count).max().unwrap_or(0);
            let options: Vec<Value> = r
                .options
                .iter()
                .map(|o| {
                    json!({"text": o.text, "value": o.value, "count": o.count,
                           "pct": pct(o.count, r.answers), "width": pct(o.count, most)})
                })
                .collect();
            // The latest free-text answers, newest first.
            let texts: Vec<Value> = if q.kind == QuestionKind::Text {
                answers
                    .iter()
                    .filter(|a| a.question_id == q.id)
                    .map(|a| {
                        json!({
                            "text": if personal { a.answer.clone() } else { masking::mask_text(&a.answer) },
                            "who": a.contact_name.clone().unwrap_or_else(|| a.contact_id.clone()),
                            "contact_id": a.contact_id, "at": short_time(a.created_at),
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let kind = match q.kind {
                QuestionKind::Choice => "choice",
                QuestionKind::Scale => "scale",
                QuestionKind::Text => "text",
            };
            json!({
                "n": i + 1, "id": q.id, "text": q.text, "kind": kind, "min": q.min, "max": q.max,
                "answers": r.answers, "options": options, "average": r.average, "nps": r.nps, "texts": texts,
            })
        })
        .collect();
    let recent = store.list_survey_runs(id, RunFilter::default(), PageRequest::new(Some(20), None)).await?;
    let ids: Vec<ContactId> = recent.items.iter().map(|r| ContactId::from(&r.contact_id)).collect();
    let names: HashMap<String, String> =
        store.get_contacts(&ids).await?.iter().map(|c| (c.id.to_string(), display_name(c, s.role()))).collect();
    let total_questions = survey.spec.questions.len();
    let run_rows: Vec<Value> = recent
        .items
        .iter()
        .map(|r| {
            json!({
                "contact_id": r.contact_id, "name": names.get(&r.contact_id).cloned().unwrap_or_else(|| r.contact_id.clone()),
                "status": r.status, "step": r.step.min(total_questions as i64), "of": total_questions,
                "error": r.error.as_deref().map(|e| if personal { e.to_string() } else { masking::mask_text(e) }),
                "started": r.started_at.map(short_time), "deadline": r.deadline_at.map(full_time), "key": r.key,
            })
        })
        .collect();
    let total = runs.total;
    Ok(json!({
        "title": survey.spec.name, "nav": "surveys",
        "survey": {
            "id": survey.id, "name": survey.spec.name, "active": survey.active,
            "trigger": trigger_text(s, &survey.spec.trigger), "intro": survey.spec.intro,
            "deadline": survey.spec.deadline.clone().unwrap_or_else(|| "3d".into()), "reminder": survey.spec.reminder,
            "created": full_time(survey.created_at),
        },
        "runs": runs, "questions": questions, "recent": run_rows,
        "bar": {
            "completed": pct(runs.completed, total), "active": pct(runs.active + runs.queued, total),
            "expired": pct(runs.expired, total), "unreachable": pct(runs.unreachable, total),
        },
        "can_start": survey.active && s.role().allows(Permission::Write),
    }))
}

/// `GET /ui/surveys/{id}`
pub async fn detail(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    survey_page(&state, &s, &id, None, Value::Null).await
}

/// `POST /ui/surveys/{id}/start`: `groups` (comma-separated), `list` (contact ids or external
/// ids), `key` (optional: a person is asked once per key).
pub async fn start(
    State(state): State<AppState>,
    s: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if let Some(r) = s.refuse_post(&state.ui, &headers, &form, Permission::Write) {
        return r;
    }
    let echoed = json!({
        "groups": form.get("groups").unwrap_or(""), "list": form.get("list").unwrap_or(""), "key": form.get("key").unwrap_or(""),
    });
    let groups: Vec<String> =
        form.get("groups").unwrap_or("").split(',').map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect();
    let outcome = async {
        // The list read as a broadcast's is; entries that name nobody go to the engine as
        // external ids, which reports each as unknown.
        let list = super::broadcasts::read_people_list(&state, &s, form.get("list").unwrap_or("")).await?;
        let (contact_ids, external_ids) = (list.found, list.unknown);
        if groups.is_empty() && contact_ids.is_empty() && external_ids.is_empty() {
            return Err(okno_domain::Error::invalid("invalid_start", t(&s, "sv_err_nobody")));
        }
        let req = StartRequest { contact_ids, external_ids, groups: groups.clone(), key: form.field("key") };
        state.engine.start_survey(&id, req, Some(&format!("operator:{}", s.operator.login))).await
    }
    .await;
    let items = match outcome {
        Ok(items) => items,
        Err(e) => {
            let mut resp = survey_page(&state, &s, &id, Some(json!({"error": e.message})), echoed).await;
            *resp.status_mut() = crate::error::status_of(e.kind);
            return resp;
        }
    };
    let count = |f: fn(&StartOutcome) -> bool| items.iter().filter(|o| f(o)).count();
    let personal = s.role().allows(Permission::PersonalData);
    let problems: Vec<Value> = items
        .iter()
        .filter_map(|o| match o {
            StartOutcome::Unreachable { contact_id, reason, .. } => Some(json!({
                "contact_id": contact_id,
                "why": if personal { reason.clone() } else { masking::mask_text(reason) },
            })),
            StartOutcome::UnknownContact { contact_id } => Some(json!({
                "unknown": contact_id.strip_prefix("external_id:").unwrap_or(contact_id),
            })),
            _ => None,
        })
        .take(50)
        .collect();
    let summary = json!({
        "started": count(|o| matches!(o, StartOutcome::Started { .. })),
        "queued": count(|o| matches!(o, StartOutcome::Queued { .. })),
        "already": count(|o| matches!(o, StartOutcome::Already { .. } | StartOutcome::Busy { .. })),
        "unreachable": count(|o| matches!(o, StartOutcome::Unreachable { .. })),
        "unknown": count(|o| matches!(o, StartOutcome::UnknownContact { .. })),
        "problems": problems,
    });
    survey_page(&state, &s, &id, Some(summary), Value::Null).await
}

/// `GET /ui/surveys/{id}/results.csv`: every answer, as the API's export (free-text answers
/// masked for roles without the right to see personal data).
pub async fn results_csv(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    let loaded = async {
        let survey = state.engine.store.get_survey(&id).await?;
        let answers = state.engine.store.survey_answers(&id).await?;
        Ok::<_, okno_domain::Error>((survey, answers))
    }
    .await;
    let (survey, mut answers) = match loaded {
        Ok(v) => v,
        Err(e) => return error_page(ui, &s, e),
    };
    if !s.role().allows(Permission::PersonalData) {
        for a in &mut answers {
            a.answer = masking::mask_text(&a.answer);
        }
    }
    let body = format!("\u{feff}{}", survey.spec.csv(&answers));
    let disposition = format!("attachment; filename=\"survey-{id}.csv\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}
