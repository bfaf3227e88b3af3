//! `/api/v1/reports`: aggregates over answers to notifications, e.g. the average service
//! rating per manager per period (seed 001: «отчёт по отзывам клиентов в разрезе менеджеров»).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use okno_domain::model::Permission;
use okno_domain::time::{now_ms, parse_rfc3339};
use okno_domain::Error;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiQuery, ApiResult};
use crate::AppState;

/// `GET /api/v1/reports/answers` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnswersQuery {
    /// The event type the answers were given to, e.g. `order.completed`.
    pub event: String,
    /// A field of the event's data to group by, e.g. `manager` (default: one group).
    pub group_by: Option<String>,
    /// RFC 3339; default: 30 days ago.
    pub from: Option<String>,
    /// RFC 3339; default: now.
    pub to: Option<String>,
}

/// Answers of one group as they are counted.
#[derive(Default)]
struct Tally {
    numbers: Vec<f64>,
    answers: BTreeMap<String, usize>,
    count: usize,
}

/// One group of answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerGroup {
    pub group: String,
    pub count: usize,
    /// The mean of the numeric answers, if any were numeric.
    pub average: Option<f64>,
    /// How often each answer was given.
    pub answers: BTreeMap<String, usize>,
}

#[utoipa::path(get, path = "/api/v1/reports/answers", tag = "reports", params(AnswersQuery), responses((status = 200)))]
pub async fn answers(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<AnswersQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    auth.require(Permission::Read)?;
    let time = |t: &Option<String>, default: i64| match t {
        Some(t) => {
            parse_rfc3339(t).ok_or_else(|| Error::invalid("invalid_query", format!("`{t}` is not an RFC 3339 time")))
        }
        None => Ok(default),
    };
    let to = time(&q.to, now_ms() + 1)?;
    let from = time(&q.from, to - 30 * 86_400_000)?;
    let rows = state.engine.store.answers(&q.event, from, to).await?;
    let items = tally(rows, q.group_by.as_deref());
    Ok(Json(serde_json::json!({"items": items, "next": null})))
}

/// Answers grouped by a field of their event's data (`manager` or `data.manager`), with counts
/// and the mean of the numeric ones.
pub fn tally(rows: Vec<okno_store::AnswerRow>, group_by: Option<&str>) -> Vec<AnswerGroup> {
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    for r in rows {
        let group = match group_by {
            Some(path) => path
                .trim_start_matches("data.")
                .split('.')
                .try_fold(&r.event_data, |v, k| v.get(k))
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                .unwrap_or_else(|| "—".into()),
            None => "all".into(),
        };
        let entry = groups.entry(group).or_default();
        if let Ok(n) = r.value.trim().replace(',', ".").parse::<f64>() {
            entry.numbers.push(n);
        }
        *entry.answers.entry(r.value).or_default() += 1;
        entry.count += 1;
    }
    groups
        .into_iter()
        .map(|(group, Tally { numbers: nums, answers, count })| AnswerGroup {
            group,
            count,
            average: (!nums.is_empty()).then(|| (nums.iter().sum::<f64>() / nums.len() as f64 * 100.0).round() / 100.0),
            answers,
        })
        .collect()
}
