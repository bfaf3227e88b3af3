//! Template renders: the shipped payment notification (text, a button's text and its link)
//! rendered here in the process and through the pool of render worker processes okno uses,
//! by 1 and by 8 concurrent callers — renders per second and latency per message.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use okno_engine::render::{RenderLimits, Renderer};
use serde_json::{json, Value};

use crate::percentile;

const TEXT: &str = "💰 Поступила оплата от {{ data.client }}: {{ data.amount | money }}\nДокумент: {{ data.document }}\nТекущий долг: {{ data.debt | money }}, кредитный лимит: {{ data.credit_limit | money }}";
const BUTTON: &str = "Открыть в 1С";
const LINK: &str = "{{ data.link }}";

fn context() -> Value {
    json!({"event": {"id": "ev-1", "type": "payment.received", "key": "ПКО-000123"},
           "data": {"manager_id": "1c-manager-petrov", "client": "ООО «Ромашка»", "amount": 1250000, "document": "ПКО № 123",
                    "debt": 350000, "credit_limit": 2000000, "link": "https://erp.example.com/e1cib/data/Document.ПКО?ref=123"},
           "tz": "Europe/Moscow", "contact": {"id": "c-1", "name": "Петров", "attrs": {}}})
}

/// `total` messages rendered by `callers` concurrent callers; prints the figures.
async fn measure(what: &str, renderer: Arc<Renderer>, callers: usize, total: usize) -> Result<()> {
    let ctx = Arc::new(context());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (renderer, ctx, next) = (renderer.clone(), ctx.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                renderer.render_all(&[TEXT, BUTTON, LINK], &ctx).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = started.elapsed();
    lat.sort();
    println!(
        "{what}, {callers} caller(s): {} messages in {:.2} s = {:.0} messages/s; p50 {:.3} ms, p99 {:.3} ms",
        lat.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
    );
    Ok(())
}

pub async fn run(okno: &Path, total: usize) -> Result<()> {
    println!(
        "template renders — one message (3 templates) per render, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let limits = RenderLimits { program: okno.to_path_buf(), ..RenderLimits::default() };
    let here = Arc::new(Renderer::in_process(limits.clone()));
    let killed = prometheus_client::metrics::family::Family::default();
    let pool = Arc::new(Renderer::pool(limits.clone(), killed));
    // Workers started before the clock runs, as a running okno has them.
    measure("warm-up", pool.clone(), limits.workers, 200).await?;
    for callers in [1, 8] {
        measure("in process", here.clone(), callers, total).await?;
        measure(&format!("worker pool ({} workers)", limits.workers), pool.clone(), callers, total).await?;
    }
    Ok(())
}
