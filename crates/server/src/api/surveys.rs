//! `/api/v1/surveys`: questions sent one after another to people, by hand, after a business
//! event or on a date from the contact's attributes (docs/surveys.md); results with counts,
//! averages and NPS, and a CSV export.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use okno_domain::model::{Page, Permission};
use okno_domain::surveys::{AnswerRecord, Results};
use okno_domain::time::Millis;
use okno_engine::surveys::StartRequest;
use okno_store::{RunFilter, StartOutcome, Survey, SurveyRun};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::PageParams;
use crate::auth::Auth;
use crate::error::{ApiJson, ApiQuery, ApiResult};
use crate::AppState;

#[utoipa::path(post, path = "/api/v1/surveys", tag = "surveys",
    request_body(content = Object, description = "a survey: name, intro?, questions [{id?, text, kind: choice|scale|text, options?, min?, max?}], thanks?, deadline?, reminder?, reminder_text?, channel_id?, trigger? ({kind: manual} | {kind: event, event, recipient, condition?} | {kind: date, field, offset_days, hour?, timezone?, window_days?})"),
    responses((status = 201, description = "the survey with its `id`"),
        (status = 400, description = "`invalid_survey` saying which field is wrong"),
        (status = 404, description = "`channel_id` names no channel"),
        (status = 409, description = "`survey_exists`: an active survey has this name")))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Survey>)> {
    auth.require(Permission::Configure)?;
    let survey = state.engine.create_survey(&body).await?;
    super::channels::audit(&state, &auth, "survey.create", &survey.id, json!({"name": survey.spec.name})).await;
    Ok((StatusCode::CREATED, Json(survey)))
}

#[utoipa::path(get, path = "/api/v1/surveys", tag = "surveys", params(PageParams),
    responses((status = 200, description = "active surveys first, newest first")))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Survey>>> {
    auth.require(Permission::Read)?;
    Ok(Json(state.engine.store.list_surveys(page.request()).await?))
}

#[utoipa::path(get, path = "/api/v1/surveys/{id}", tag = "surveys", responses((status = 200), (status = 404)))]
pub async fn get(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Survey>> {
    auth.require(Permission::Read)?;
    Ok(Json(state.engine.store.get_survey(&id).await?))
}

#[utoipa::path(delete, path = "/api/v1/surveys/{id}", tag = "surveys",
    responses((status = 200, description = "deactivated (`active: false`): no new runs, queued ones cancelled; running ones finish; results stay"), (status = 404)))]
pub async fn delete(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Survey>> {
    auth.require(Permission::Configure)?;
    let survey = state.engine.store.deactivate_survey(&id).await?;
    super::channels::audit(&state, &auth, "survey.delete", &id, json!({})).await;
    Ok(Json(survey))
}

/// `POST /api/v1/surveys/{id}/start` body: whom to ask (any mix).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    #[serde(default)]
    pub contact_ids: Vec<String>,
    #[serde(default)]
    pub external_ids: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// A person gets one run per key (default `manual`): the same start again asks nobody
    /// twice; a new key (e.g. `2026-Q4`) asks again.
    pub key: Option<String>,
}

/// What a start did, in figures and per person.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartSummary {
    pub started: usize,
    pub queued: usize,
    pub already: usize,
    pub busy: usize,
    pub unreachable: usize,
    pub unknown: usize,
    /// One entry per person: `outcome` (`started`, `queued`, `already`, `busy`,
    /// `unreachable`, `unknown_contact`), `contact_id`, `run_id`, and `reason` or `status`.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<StartOutcome>,
}

#[utoipa::path(post, path = "/api/v1/surveys/{id}/start", tag = "surveys", request_body = StartBody,
    responses((status = 200, body = StartSummary, description = "first questions queued"), (status = 400, description = "`invalid_start`"),
        (status = 404), (status = 409, description = "`survey_inactive`")))]
pub async fn start(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<Json<StartSummary>> {
    auth.require(Permission::Write)?;
    let req = StartRequest {
        contact_ids: body.contact_ids.into_iter().map(Into::into).collect(),
        external_ids: body.external_ids,
        groups: body.groups,
        key: body.key,
    };
    let items = state.engine.start_survey(&id, req, None).await?;
    let count = |f: fn(&StartOutcome) -> bool| items.iter().filter(|o| f(o)).count();
    Ok(Json(StartSummary {
        started: count(|o| matches!(o, StartOutcome::Started { .. })),
        queued: count(|o| matches!(o, StartOutcome::Queued { .. })),
        already: count(|o| matches!(o, StartOutcome::Already { .. })),
        busy: count(|o| matches!(o, StartOutcome::Busy { .. })),
        unreachable: count(|o| matches!(o, StartOutcome::Unreachable { .. })),
        unknown: count(|o| matches!(o, StartOutcome::UnknownContact { .. })),
        items,
    }))
}

#[utoipa::path(post, path = "/api/v1/surveys/{id}/scan", tag = "surveys",
    responses((status = 200, description = "`{\"started\": n}`: a date-triggered survey checked now (it also checks itself every 15 minutes)"),
        (status = 404), (status = 422, description = "`not_date_triggered`")))]
pub async fn scan(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    auth.require(Permission::Write)?;
    let survey = state.engine.store.get_survey(&id).await?;
    if !survey.active {
        return Err(okno_domain::Error::conflict("survey_inactive", "the survey was deleted").into());
    }
    let started = state.engine.scan_survey(&survey).await?;
    Ok(Json(json!({"started": started})))
}

/// `?from=&to=` of the results: answers given within `[from, to)` (RFC 3339), e.g. one month's NPS.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Period {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Period {
    /// The period's ends, `[from, to)`.
    fn bounds(&self) -> Result<(Option<Millis>, Option<Millis>), okno_domain::Error> {
        let at = |name: &str, v: &Option<String>| match v {
            None => Ok(None),
            Some(t) => okno_domain::time::parse_rfc3339(t).map(Some).ok_or_else(|| {
                okno_domain::Error::invalid("invalid_period", format!("`{name}` is not an RFC 3339 time: `{t}`"))
            }),
        };
        Ok((at("from", &self.from)?, at("to", &self.to)?))
    }

    /// Keeps the answers given within the period.
    fn keep(&self, answers: &mut Vec<AnswerRecord>) -> Result<(), okno_domain::Error> {
        let (from, to) = self.bounds()?;
        answers.retain(|a| from.is_none_or(|f| a.created_at >= f) && to.is_none_or(|t| a.created_at < t));
        Ok(())
    }
}

#[utoipa::path(get, path = "/api/v1/surveys/{id}/results", tag = "surveys", params(Period),
    responses((status = 200, description = "`runs` (total, active, queued, completed, expired, unreachable, responded) and per question: `answers`, `options` [{text, value, count}], `average`, `nps` {score, promoters, passives, detractors} for 0–10 scales"), (status = 404)))]
pub async fn results(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiQuery(period): ApiQuery<Period>,
) -> ApiResult<Json<Results>> {
    auth.require(Permission::Read)?;
    let store = &state.engine.store;
    let survey = store.get_survey(&id).await?;
    let runs = store.survey_run_counts(&id).await?;
    // Counted in the database (by question, option and value), not read answer by answer.
    let (from, to) = period.bounds()?;
    let tallies = store.survey_tallies(&id, from, to).await?;
    Ok(Json(survey.spec.results_of(&survey.id, runs, &tallies)))
}

#[utoipa::path(get, path = "/api/v1/surveys/{id}/results.csv", tag = "surveys", params(Period),
    responses((status = 200, content_type = "text/csv", description = "one row per answer (UTF-8 with a BOM, for spreadsheet programs): run_id, contact_id, name, external_id, question_id, question, answer, value, answered_at"), (status = 404)))]
pub async fn results_csv(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiQuery(period): ApiQuery<Period>,
) -> ApiResult<Response> {
    auth.require(Permission::Read)?;
    let survey = state.engine.store.get_survey(&id).await?;
    let mut answers = state.engine.store.survey_answers(&id).await?;
    period.keep(&mut answers)?;
    let body = format!("\u{feff}{}", survey.spec.csv(&answers));
    let disposition = format!("attachment; filename=\"survey-{id}.csv\"");
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response())
}

/// Filters of `GET /api/v1/surveys/{id}/runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// `queued`, `active`, `completed`, `expired`, `unreachable`, `cancelled`.
    pub status: Option<String>,
    pub contact_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

const RUN_STATUSES: [&str; 6] = ["queued", "active", "completed", "expired", "unreachable", "cancelled"];

#[utoipa::path(get, path = "/api/v1/surveys/{id}/runs", tag = "surveys", params(RunQuery),
    responses((status = 200, description = "each person's run: status, step, deadline, reminder"), (status = 400), (status = 404)))]
pub async fn runs(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> ApiResult<Json<Page<SurveyRun>>> {
    auth.require(Permission::Read)?;
    if q.status.as_deref().is_some_and(|s| !RUN_STATUSES.contains(&s)) {
        return Err(okno_domain::Error::invalid(
            "invalid_status",
            format!("`status` is one of {}", RUN_STATUSES.join(", ")),
        )
        .into());
    }
    let page = okno_store::PageRequest::new(q.limit, q.cursor);
    let filter = RunFilter { status: q.status, contact_id: q.contact_id };
    Ok(Json(state.engine.store.list_survey_runs(&id, filter, page).await?))
}
