//! Reports: messages per channel per day, first response and resolution time per operator,
//! ratings per manager (answers to notifications) — as server-drawn SVG charts and CSV.
//!
//! The message figures are counted by reading the conversations changed in the period and
//! their messages (at most [`MAX_CONVERSATIONS`] conversations and [`MAX_MESSAGES`]
//! messages; the page says when it stopped early). Ratings come from the store's own query.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use okno_domain::model::{Direction, Permission};
use okno_domain::time::{now_ms, Millis};
use okno_store::{ConversationFilter, PageRequest};
use serde::Deserialize;
use serde_json::json;

use super::{error_page, refuse, Session};
use crate::AppState;

const MAX_CONVERSATIONS: usize = 5_000;
const MAX_MESSAGES: usize = 200_000;
const DAY_MS: Millis = 86_400_000;

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    /// The period: the last N days (1..92, default 14).
    pub days: Option<i64>,
    /// The event type rated answers belong to (default `order.completed`).
    pub event: Option<String>,
    /// The event field naming the manager (default `manager`).
    pub group_by: Option<String>,
    /// For the CSV: `messages`, `operators` or `ratings`.
    pub report: Option<String>,
}

/// What the period's conversations add up to.
#[derive(Default)]
struct Figures {
    /// (day, channel id) → messages.
    per_day: BTreeMap<(String, String), u64>,
    /// operator → first response times (ms), one per conversation.
    first_response: BTreeMap<String, Vec<Millis>>,
    /// assignee → resolution times (ms).
    resolution: BTreeMap<String, Vec<Millis>>,
    partial: bool,
}

fn day_of(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

async fn figures(state: &AppState, from: Millis) -> okno_domain::Result<Figures> {
    let store = &state.engine.store;
    let mut f = Figures::default();
    let (mut cursor, mut convs, mut msgs) = (None, 0usize, 0usize);
    'pages: loop {
        let page = store.list_conversations(ConversationFilter::default(), PageRequest::new(Some(200), cursor)).await?;
        for c in &page.items {
            if c.updated_at < from {
                break 'pages;
            }
            convs += 1;
            if convs > MAX_CONVERSATIONS || msgs > MAX_MESSAGES {
                f.partial = true;
                break 'pages;
            }
            let mut first_in: Option<Millis> = None;
            let mut answered = false;
            let mut mcursor = None;
            loop {
                let mp = store.list_messages(&c.id, PageRequest::new(Some(500), mcursor)).await?;
                for m in &mp.items {
                    if m.created_at < from {
                        continue;
                    }
                    msgs += 1;
                    *f.per_day.entry((day_of(m.created_at), m.channel_id.clone())).or_default() += 1;
                    match m.direction {
                        Direction::In if first_in.is_none() => first_in = Some(m.created_at),
                        Direction::Out if !answered => {
                            if let (Some(t0), Some(op)) =
                                (first_in, m.author.as_deref().and_then(|a| a.strip_prefix("operator:")))
                            {
                                f.first_response.entry(op.to_string()).or_default().push(m.created_at - t0);
                                answered = true;
                            }
                        }
                        _ => {}
                    }
                }
                match mp.next {
                    Some(n) => mcursor = Some(n),
                    None => break,
                }
            }
            if c.status == okno_domain::model::ConversationStatus::Resolved {
                if let (Some(a), Some(t0)) = (&c.assignee, first_in) {
                    f.resolution.entry(a.clone()).or_default().push(c.updated_at - t0);
                }
            }
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    Ok(f)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const COLORS: &[&str] = &["#2AABEE", "#6B7280", "#22c55e", "#f59e0b", "#a855f7", "#ef4444"];

/// Stacked bars: one per day, one colour per channel.
fn day_chart(days: &[String], series: &[(String, Vec<u64>)], kinds: &[&str]) -> String {
    let color = |i: usize| match kinds.get(i).copied() {
        Some("telegram") if kinds.iter().filter(|k| **k == "telegram").count() == 1 => "#2AABEE",
        Some("webhook") if kinds.iter().filter(|k| **k == "webhook").count() == 1 => "#6B7280",
        _ => COLORS[(i + 2) % COLORS.len()],
    };
    let (w, h, left, bottom) = (760.0, 220.0, 40.0, 24.0);
    let totals: Vec<u64> = (0..days.len()).map(|i| series.iter().map(|(_, v)| v[i]).sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = (w - left) / days.len().max(1) as f64;
    let mut svg = format!(
        r##"<svg class="chart" viewBox="0 0 {w} {}" role="img" aria-label="messages per day"><line x1="{left}" y1="{h}" x2="{w}" y2="{h}" stroke="#ccc"/><text x="0" y="12" font-size="11">{}</text>"##,
        h + bottom + 22.0,
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
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                step * 0.7,
                color(si),
                esc(day),
                esc(name),
                values[i]
            );
        }
        if days.len() <= 16 || i % 2 == 0 {
            let _ = write!(svg, r#"<text x="{x:.1}" y="{}" font-size="10">{}</text>"#, h + 14.0, esc(&day[5..]));
        }
    }
    let mut lx = left;
    for (si, (name, _)) in series.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
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
            r##"<text x="0" y="{:.1}" font-size="12">{}</text><rect x="{left}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="#2563eb"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"##,
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

fn median(v: &mut [Millis]) -> Millis {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

struct Report {
    days: Vec<String>,
    series: Vec<(String, Vec<u64>)>,
    /// The channel kind of each series (its colour).
    kinds: Vec<&'static str>,
    /// operator, conversations answered, median first response (min), resolved, median resolution (min)
    operators: Vec<(String, usize, f64, usize, f64)>,
    ratings: Vec<crate::api::reports::AnswerGroup>,
    partial: bool,
    event: String,
    group_by: String,
    period: i64,
}

async fn build(state: &AppState, q: &ReportQuery) -> okno_domain::Result<Report> {
    let period = q.days.unwrap_or(14);
    if !(1..=92).contains(&period) {
        return Err(okno_domain::Error::invalid("invalid_days", "the period is 1..92 days"));
    }
    let now = now_ms();
    let from = (now / DAY_MS - (period - 1)) * DAY_MS;
    let mut f = figures(state, from).await?;
    let days: Vec<String> = (0..period).map(|i| day_of(from + i * DAY_MS)).collect();
    let channels = state.engine.store.list_channels().await?;
    let mut ids: Vec<&String> = f.per_day.keys().map(|(_, c)| c).collect();
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
            let values =
                days.iter().map(|d| f.per_day.get(&(d.clone(), (*id).clone())).copied().unwrap_or(0)).collect();
            (name, values)
        })
        .collect();
    let mut names: Vec<String> = f.first_response.keys().chain(f.resolution.keys()).cloned().collect();
    names.sort();
    names.dedup();
    let operators = names
        .into_iter()
        .map(|n| {
            let fr = f.first_response.get_mut(&n).map(|v| (v.len(), minutes(median(v)))).unwrap_or((0, 0.0));
            let rs = f.resolution.get_mut(&n).map(|v| (v.len(), minutes(median(v)))).unwrap_or((0, 0.0));
            (n, fr.0, fr.1, rs.0, rs.1)
        })
        .collect();
    let event = q.event.clone().filter(|e| !e.trim().is_empty()).unwrap_or_else(|| "order.completed".into());
    let group_by = q.group_by.clone().filter(|e| !e.trim().is_empty()).unwrap_or_else(|| "manager".into());
    let rows = state.engine.store.answers(&event, from, now + 1).await?;
    let ratings = crate::api::reports::tally(rows, Some(&group_by));
    Ok(Report { days, series, kinds, operators, ratings, partial: f.partial, event, group_by, period })
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
    let op_rows: Vec<(String, f64, String)> =
        r.operators.iter().map(|o| (o.0.clone(), o.2, format!("{} min · {}", o.2, o.1))).collect();
    let res_rows: Vec<(String, f64, String)> =
        r.operators.iter().filter(|o| o.3 > 0).map(|o| (o.0.clone(), o.4, format!("{} min · {}", o.4, o.3))).collect();
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
    ui.render(
        "reports.html",
        &s,
        json!({
            "title": super::i18n::t(s.lang, "reports"), "nav": "reports",
            "days": r.period, "event": r.event, "group_by": r.group_by, "partial": r.partial, "total": total,
            "messages_svg": day_chart(&r.days, &r.series, &r.kinds),
            "first_svg": (!op_rows.is_empty()).then(|| bar_chart(&op_rows)),
            "resolution_svg": (!res_rows.is_empty()).then(|| bar_chart(&res_rows)),
            "ratings_svg": (!rating_rows.is_empty()).then(|| bar_chart(&rating_rows)),
            "operators": r.operators.iter().map(|o| json!({"name": o.0, "answered": o.1, "first": o.2, "resolved": o.3, "resolution": o.4})).collect::<Vec<_>>(),
            "ratings": r.ratings.iter().map(|g| json!({"group": g.group, "count": g.count, "average": g.average})).collect::<Vec<_>>(),
        }),
    )
}

/// `GET /ui/reports.csv?report=messages|operators|ratings&days=`
pub async fn csv(State(state): State<AppState>, s: Session, Query(q): Query<ReportQuery>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Read) {
        return r;
    }
    let r = match build(&state, &q).await {
        Ok(r) => r,
        Err(e) => return error_page(ui, &s, e),
    };
    let q_str =
        |v: &str| if v.contains([',', '"', '\n']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_string() };
    let which = q.report.as_deref().unwrap_or("messages");
    let mut out = String::new();
    match which {
        "messages" => {
            out.push_str("day,channel,messages\r\n");
            for (i, d) in r.days.iter().enumerate() {
                for (name, v) in &r.series {
                    let _ = write!(out, "{d},{},{}\r\n", q_str(name), v[i]);
                }
            }
        }
        "operators" => {
            out.push_str(
                "operator,conversations_answered,median_first_response_min,resolved,median_resolution_min\r\n",
            );
            for o in &r.operators {
                let _ = write!(out, "{},{},{},{},{}\r\n", q_str(&o.0), o.1, o.2, o.3, o.4);
            }
        }
        "ratings" => {
            out.push_str("manager,answers,average\r\n");
            for g in &r.ratings {
                let _ = write!(
                    out,
                    "{},{},{}\r\n",
                    q_str(&g.group),
                    g.count,
                    g.average.map(|a| a.to_string()).unwrap_or_default()
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
