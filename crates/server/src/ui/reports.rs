//! Reports: messages per channel per day, first response and resolution time per operator,
//! ratings per manager (answers to notifications), broadcast results — as server-drawn SVG
//! charts and CSV.
//!
//! Every figure is computed by the store (`ReportStore`): grouped and counted by the database,
//! medians ranked there too, so a period of any size costs the same few rows here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::i18n::Lang;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use okno_domain::model::Permission;
use okno_domain::time::{now_ms, Millis};
use okno_store::{AnswerCount, BroadcastResult, OperatorFigure};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error_page, refuse, Session};
use crate::AppState;

const DAY_MS: Millis = 86_400_000;
/// Broadcasts one report shows (the newest of the period).
const MAX_BROADCASTS: u32 = 100;

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    /// The period: the last N days (1..366, default 14).
    pub days: Option<i64>,
    /// The event type rated answers belong to (default `order.completed`).
    pub event: Option<String>,
    /// The event field naming the manager (default `manager`).
    pub group_by: Option<String>,
    /// For the CSV: `messages`, `operators`, `ratings` or `broadcasts`.
    pub report: Option<String>,
}

fn day_of(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const COLORS: &[&str] = &["#2AABEE", "#6B7280", "#22c55e", "#f59e0b", "#a855f7", "#ef4444"];

/// Stacked bars: one per day, one colour per channel.
/// A series takes its platform's colour (`brands[i]`) when it is the only one of its kind.
fn day_chart(
    lang: Lang,
    days: &[String],
    series: &[(String, Vec<u64>)],
    kinds: &[&str],
    brands: &[Option<&str>],
) -> String {
    let color = |i: usize| match (kinds.get(i), brands.get(i).copied().flatten()) {
        (Some(kind), Some(brand)) if kinds.iter().filter(|k| *k == kind).count() == 1 => brand,
        _ => COLORS[(i + 2) % COLORS.len()],
    };
    let (w, h, left, bottom) = (760.0, 220.0, 40.0, 24.0);
    let totals: Vec<u64> = (0..days.len()).map(|i| series.iter().map(|(_, v)| v[i]).sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = (w - left) / days.len().max(1) as f64;
    let mut svg = format!(
        r##"<svg class="chart" viewBox="0 0 {w} {}" role="img" aria-label="{}"><line x1="{left}" y1="{h}" x2="{w}" y2="{h}" stroke="#ccc"/><text x="0" y="12" font-size="11">{}</text>"##,
        h + bottom + 22.0,
        esc(&super::i18n::t(lang, "messages_per_day")),
        max as u64
    );
    for (i, day) in days.iter().enumerate() {
        let mut y = h;
        let x = left + i as f64 * step + step * 0.15;
        for (si, (name, values)) in series.iter().enumerate() {
            let v = values[i] as f64;
            if v == 0.0 {
                continue;
            }
            let bh = v / max * (h - 16.0);
            y -= bh;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title translate="no">{} {}: {}</title></rect>"#,
                step * 0.7,
                color(si),
                esc(day),
                esc(name),
                values[i]
            );
        }
        if i % days.len().div_ceil(16).max(1) == 0 {
            let _ = write!(svg, r#"<text x="{x:.1}" y="{}" font-size="10">{}</text>"#, h + 14.0, esc(&day[5..]));
        }
    }
    let mut lx = left;
    for (si, (name, _)) in series.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" font-size="11" translate="no">{}</text>"#,
            h + bottom + 6.0,
            color(si),
            lx + 14.0,
            h + bottom + 15.0,
            esc(name)
        );
        lx += 24.0 + 7.0 * name.chars().count() as f64;
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars: one per row, labelled with the value.
fn bar_chart(rows: &[(String, f64, String)]) -> String {
    let (w, row_h, left) = (760.0, 22.0, 160.0);
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1e-9);
    let mut svg = format!(r#"<svg class="chart" viewBox="0 0 {w} {}" role="img">"#, rows.len() as f64 * row_h + 4.0);
    for (i, (label, v, text)) in rows.iter().enumerate() {
        let y = i as f64 * row_h;
        let bw = v / max * (w - left - 90.0);
        let _ = write!(
            svg,
            r##"<text x="0" y="{:.1}" font-size="12" translate="no">{}</text><rect x="{left}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="#2563eb"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"##,
            y + 15.0,
            esc(label),
            y + 3.0,
            row_h - 6.0,
            left + bw + 6.0,
            y + 15.0,
            esc(text)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn minutes(ms: Millis) -> f64 {
    (ms as f64 / 60_000.0 * 10.0).round() / 10.0
}

/// One operator's row: conversations answered, median first response (min), resolved,
/// median resolution (min).
struct OperatorRow {
    name: String,
    answered: i64,
    first: f64,
    resolved: i64,
    resolution: f64,
}

/// One manager's ratings: answers, the mean of the numeric ones.
struct Rating {
    group: String,
    count: i64,
    average: Option<f64>,
}

struct Report {
    days: Vec<String>,
    series: Vec<(String, Vec<u64>)>,
    /// The channel kind of each series (its colour).
    kinds: Vec<&'static str>,
    operators: Vec<OperatorRow>,
    ratings: Vec<Rating>,
    broadcasts: Vec<BroadcastResult>,
    event: String,
    group_by: String,
    period: i64,
}

fn operator_rows(first: Vec<OperatorFigure>, resolved: Vec<OperatorFigure>) -> Vec<OperatorRow> {
    let mut rows: BTreeMap<String, OperatorRow> = BTreeMap::new();
    let blank =
        |name: &str| OperatorRow { name: name.to_string(), answered: 0, first: 0.0, resolved: 0, resolution: 0.0 };
    for f in first {
        let r = rows.entry(f.operator.clone()).or_insert_with(|| blank(&f.operator));
        (r.answered, r.first) = (f.count, minutes(f.median_ms));
    }
    for f in resolved {
        let r = rows.entry(f.operator.clone()).or_insert_with(|| blank(&f.operator));
        (r.resolved, r.resolution) = (f.count, minutes(f.median_ms));
    }
    rows.into_values().collect()
}

/// Answers counted per group and value → per group: answers and the mean of the numeric ones
/// (as `GET /api/v1/reports/answers` reads them).
fn ratings_of(counts: Vec<AnswerCount>) -> Vec<Rating> {
    // (count, sum of numbers, how many numbers)
    let mut groups: BTreeMap<String, (i64, f64, i64)> = BTreeMap::new();
    for c in counts {
        let group = match c.group.as_deref().and_then(|g| serde_json::from_str::<Value>(g).ok()) {
            Some(Value::Null) | None => "—".to_string(),
            Some(Value::String(s)) => s,
            Some(v) => v.to_string(),
        };
        let g = groups.entry(group).or_default();
        g.0 += c.count;
        if let Ok(n) = c.value.trim().replace(',', ".").parse::<f64>() {
            g.1 += n * c.count as f64;
            g.2 += c.count;
        }
    }
    groups
        .into_iter()
        .map(|(group, (count, sum, numbers))| Rating {
            group,
            count,
            average: (numbers > 0).then(|| (sum / numbers as f64 * 100.0).round() / 100.0),
        })
        .collect()
}

async fn build(state: &AppState, q: &ReportQuery) -> okno_domain::Result<Report> {
    let period = q.days.unwrap_or(14);
    if !(1..=366).contains(&period) {
        return Err(okno_domain::Error::invalid("invalid_days", "the period is 1..366 days"));
    }
    let store = &state.engine.store;
    let now = now_ms();
    let from = (now / DAY_MS - (period - 1)) * DAY_MS;
    let to = now + 1;
    let first_day = from / DAY_MS;
    let days: Vec<String> = (0..period).map(|i| day_of(from + i * DAY_MS)).collect();
    let counts = store.messages_per_day(from, to).await?;
    let channels = store.list_channels().await?;
    let mut ids: Vec<&String> = counts.iter().map(|c| &c.channel_id).collect();
    ids.sort();
    ids.dedup();
    let kinds = ids
        .iter()
        .map(|id| channels.iter().find(|c| &c.id == *id).map(|c| c.kind.as_str()).unwrap_or("unknown"))
        .collect();
    let series = ids
        .iter()
        .map(|id| {
            let name = channels.iter().find(|c| &c.id == *id).map(|c| c.name.clone()).unwrap_or_else(|| (*id).clone());
            let mut values = vec![0u64; days.len()];
            for c in counts.iter().filter(|c| &c.channel_id == *id) {
                if let Some(v) = usize::try_from(c.day - first_day).ok().and_then(|i| values.get_mut(i)) {
                    *v += c.messages.max(0) as u64;
                }
            }
            (name, values)
        })
        .collect();
    let operators = operator_rows(store.first_responses(from, to).await?, store.resolutions(from, to).await?);
    let event = q.event.clone().filter(|e| !e.trim().is_empty()).unwrap_or_else(|| "order.completed".into());
    let group_by = q.group_by.clone().filter(|e| !e.trim().is_empty()).unwrap_or_else(|| "manager".into());
    let path: Vec<String> = group_by.trim_start_matches("data.").split('.').map(str::to_string).collect();
    let ratings = ratings_of(store.answer_counts(&event, &path, from, to).await?);
    let broadcasts = store.broadcast_results(from, to, MAX_BROADCASTS).await?;
    Ok(Report { days, series, kinds, operators, ratings, broadcasts, event, group_by, period })
}

/// Stacked horizontal bars, one per broadcast: sent, failed, waiting.
fn broadcast_chart(lang: Lang, rows: &[BroadcastResult]) -> String {
    let (w, row_h, left) = (760.0, 22.0, 160.0);
    let max = rows.iter().map(|b| b.total.max(b.sent + b.failed + b.pending)).max().unwrap_or(0).max(1) as f64;
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {w} {}" role="img" aria-label="{}">"#,
        rows.len() as f64 * row_h + 4.0,
        esc(&super::i18n::t(lang, "broadcast_results"))
    );
    for (i, b) in rows.iter().enumerate() {
        let y = i as f64 * row_h;
        let _ = write!(svg, r#"<text x="0" y="{:.1}" font-size="12" translate="no">{}</text>"#, y + 15.0, esc(&b.name));
        let mut x = left;
        for (n, colour, what) in
            [(b.sent, "#16a34a", "bc_sent"), (b.failed, "#dc2626", "bc_failed"), (b.pending, "#93c5fd", "bc_pending")]
        {
            if n == 0 {
                continue;
            }
            let bw = n as f64 / max * (w - left - 150.0);
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="{colour}"><title>{} · {}: {n}</title></rect>"#,
                y + 3.0,
                row_h - 6.0,
                esc(&b.name),
                esc(&super::i18n::t(lang, what))
            );
            x += bw;
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12">{} · {} · {} | {} · {}</text>"#,
            x + 6.0,
            y + 15.0,
            b.sent,
            b.failed,
            b.pending,
            b.answered,
            b.unsubscribed
        );
    }
    svg.push_str("</svg>");
    svg
}

/// `GET /ui/reports`
pub async fn page(State(state): State<AppState>, s: Session, Query(q): Query<ReportQuery>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    let r = match build(&state, &q).await {
        Ok(r) => r,
        Err(e) => return error_page(ui, &s, e),
    };
    let op_rows: Vec<(String, f64, String)> = r
        .operators
        .iter()
        .filter(|o| o.answered > 0)
        .map(|o| (o.name.clone(), o.first, format!("{} min · {}", o.first, o.answered)))
        .collect();
    let res_rows: Vec<(String, f64, String)> = r
        .operators
        .iter()
        .filter(|o| o.resolved > 0)
        .map(|o| (o.name.clone(), o.resolution, format!("{} min · {}", o.resolution, o.resolved)))
        .collect();
    let rating_rows: Vec<(String, f64, String)> = r
        .ratings
        .iter()
        .map(|g| {
            (
                g.group.clone(),
                g.average.unwrap_or(0.0),
                format!("{} · {}", g.average.map(|a| a.to_string()).unwrap_or("—".into()), g.count),
            )
        })
        .collect();
    let total: u64 = r.series.iter().flat_map(|(_, v)| v.iter()).sum();
    let brands: Vec<Option<&str>> = r
        .kinds
        .iter()
        .map(|k| {
            let kind = okno_domain::model::ChannelKind::parse(k).ok()?;
            state.engine.platforms.get(kind).ok().map(|p| p.brand().color)
        })
        .collect();
    ui.render(
        "reports.html",
        &s,
        json!({
            "title": super::i18n::t(s.lang, "reports"), "nav": "reports",
            "days": r.period, "event": r.event, "group_by": r.group_by, "total": total,
            "messages_svg": day_chart(s.lang, &r.days, &r.series, &r.kinds, &brands),
            "first_svg": (!op_rows.is_empty()).then(|| bar_chart(&op_rows)),
            "resolution_svg": (!res_rows.is_empty()).then(|| bar_chart(&res_rows)),
            "ratings_svg": (!rating_rows.is_empty()).then(|| bar_chart(&rating_rows)),
            "broadcasts_svg": (!r.broadcasts.is_empty()).then(|| broadcast_chart(s.lang, &r.broadcasts)),
            "broadcasts": r.broadcasts,
            "operators": r.operators.iter().map(|o| json!({"name": o.name, "answered": o.answered, "first": o.first, "resolved": o.resolved, "resolution": o.resolution})).collect::<Vec<_>>(),
            "ratings": r.ratings.iter().map(|g| json!({"group": g.group, "count": g.count, "average": g.average})).collect::<Vec<_>>(),
        }),
    )
}

/// A CSV field: quoted when it holds a separator, and a leading `=`, `+`, `-`, `@`, tab or CR
/// defused, so a spreadsheet does not run it as a formula.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{v}") } else { v.to_string() };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// `GET /ui/reports.csv?report=messages|operators|ratings|broadcasts&days=`
pub async fn csv(State(state): State<AppState>, s: Session, Query(q): Query<ReportQuery>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    let r = match build(&state, &q).await {
        Ok(r) => r,
        Err(e) => return error_page(ui, &s, e),
    };
    let which = q.report.as_deref().unwrap_or("messages");
    let mut out = String::new();
    match which {
        "messages" => {
            out.push_str("day,channel,messages\r\n");
            for (i, d) in r.days.iter().enumerate() {
                for (name, v) in &r.series {
                    let _ = write!(out, "{d},{},{}\r\n", csv_field(name), v[i]);
                }
            }
        }
        "operators" => {
            out.push_str(
                "operator,conversations_answered,median_first_response_min,resolved,median_resolution_min\r\n",
            );
            for o in &r.operators {
                let _ = write!(
                    out,
                    "{},{},{},{},{}\r\n",
                    csv_field(&o.name),
                    o.answered,
                    o.first,
                    o.resolved,
                    o.resolution
                );
            }
        }
        "ratings" => {
            out.push_str("manager,answers,average\r\n");
            for g in &r.ratings {
                let avg = g.average.map(|a| a.to_string()).unwrap_or_default();
                let _ = write!(out, "{},{},{avg}\r\n", csv_field(&g.group), g.count);
            }
        }
        "broadcasts" => {
            out.push_str("broadcast,id,created,status,total,sent,failed,waiting,opted_out,answered,unsubscribed\r\n");
            for b in &r.broadcasts {
                let _ = write!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{}\r\n",
                    csv_field(&b.name),
                    b.id,
                    okno_domain::time::to_rfc3339(b.created_at),
                    b.status,
                    b.total,
                    b.sent,
                    b.failed,
                    b.pending,
                    b.skipped,
                    b.answered,
                    b.unsubscribed
                );
            }
        }
        other => {
            return error_page(
                ui,
                &s,
                okno_domain::Error::invalid("invalid_report", format!("unknown report `{other}`")),
            );
        }
    }
    let disposition = format!("attachment; filename=\"okno-{which}.csv\"");
    ([("content-type", "text/csv; charset=utf-8".to_string()), ("content-disposition", disposition)], out)
        .into_response()
}
