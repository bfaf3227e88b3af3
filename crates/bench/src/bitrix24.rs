//! The contact-sync benchmark with Bitrix24: okno (a separate process) against the portal
//! simulator (in this process) on the standard plan's leaky bucket — 2 requests a second, 50
//! at most, a `batch` of up to 50 commands counted once.
//!
//! 1. from Bitrix24: `n` contacts in the portal, a connector (an inbound webhook) made with
//!    `direction: from_bitrix24`; timed until the last of them is in okno. okno reads the first
//!    page of 50 alone, the rest 50 pages a `batch`: the floor is those calls at 2 a second.
//! 2. to Bitrix24: `n` contacts made in okno (through its API, before the clock starts), a
//!    connector made with `direction: to_bitrix24`; timed until the portal holds them all. The floor is 50 `crm.contact.add` a batch at 2 batches a second (the bucket's first 48
//!    requests go at once, so okno may beat it by 24 s).
//!
//! Both end with a duplicate check and the requests the portal refused for its limit.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use okno_bitrix24_sim::Bitrix24Sim;
use serde_json::json;

use crate::server::Okno;

/// The standard plan's requests a second.
const PER_SECOND: f64 = 2.0;
/// Rows a page, commands a batch.
const PAGE: f64 = 50.0;
const BATCH: f64 = 50.0;

pub async fn run(okno: &Path, n: usize) -> Result<()> {
    println!(
        "contact sync with Bitrix24 — {n} contacts each way, the portal's bucket {PER_SECOND} requests/s (50 at most), batches of {BATCH}, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    from_bitrix24(okno, n).await?;
    to_bitrix24(okno, n).await
}

async fn from_bitrix24(okno: &Path, n: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("okno-bench-b24-in-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let b24 = Bitrix24Sim::start().await;
    let mut last = 0;
    for i in 0..n {
        last = b24.add_contact(&format!("Клиент{i}"), "Портала", &format!("+7900{i:07}"), &format!("c{i}@example.org"));
    }
    let webhook = b24.webhook_url(b24.admin());
    let server = Okno::start(okno, &dir, None).await?;
    let started = Instant::now();
    let made = server
        .call(
            reqwest::Method::POST,
            "/connectors",
            Some(json!({"kind": "bitrix24", "name": "Bitrix24", "config": {"webhook_url": webhook,
                "contacts": {"direction": "from_bitrix24", "every": 3600}}})),
        )
        .await?;
    made["id"].as_str().with_context(|| format!("the connector: {made}"))?;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let found = server.call(reqwest::Method::GET, &format!("/contacts?external_id=b24-{last}"), None).await?;
        if found["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the contacts did not arrive within an hour");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed().as_secs_f64();
    // user.current when connecting, the first page, then batches of 50 pages.
    let calls = 2.0 + ((n as f64 - PAGE).max(0.0) / (PAGE * BATCH)).ceil();
    let floor = calls / PER_SECOND;
    let in_okno = server.count_contacts().await?;
    let requests = b24.log().len();
    println!(
        "from Bitrix24: {n} contacts in {took:.1} s = {:.0} contacts/s; floor {floor:.1} s ({calls} requests at {PER_SECOND}/s) → {:.2}× the floor; okno holds {in_okno} contacts (duplicates: {}); {requests} requests, {} refused for the limit",
        n as f64 / took,
        took / floor,
        in_okno.saturating_sub(n),
        b24.over_limit()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn to_bitrix24(okno: &Path, n: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("okno-bench-b24-out-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let b24 = Bitrix24Sim::start().await;
    let webhook = b24.webhook_url(b24.admin());
    let server = Arc::new(Okno::start(okno, &dir, None).await?);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (server, next) = (server.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let body = json!({"name": format!("Покупатель{i} Окно"), "phone": format!("+7901{i:07}")});
                if let Err(e) = server.call(reqwest::Method::POST, "/contacts", Some(body)).await {
                    eprintln!("a contact was not made: {e}");
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let started = Instant::now();
    let made = server
        .call(
            reqwest::Method::POST,
            "/connectors",
            Some(json!({"kind": "bitrix24", "name": "Bitrix24", "config": {"webhook_url": webhook,
                "contacts": {"direction": "to_bitrix24", "every": 3600}}})),
        )
        .await?;
    made["id"].as_str().with_context(|| format!("the connector: {made}"))?;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let (held, _) = b24.count("CONTACT");
        if held >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("the portal did not get the contacts within an hour: {held}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let floor = (n as f64 / BATCH).ceil() / PER_SECOND;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (held, phones) = b24.count("CONTACT");
    println!(
        "to Bitrix24: {n} contacts in {took:.1} s = {:.0} contacts/s; floor {floor:.1} s ({BATCH} a batch at {PER_SECOND}/s) → {:.2}× the floor; the portal holds {held} with {phones} distinct phones (duplicates: {}); {} requests, {} refused for the limit",
        n as f64 / took,
        took / floor,
        held.saturating_sub(phones.min(n)),
        b24.log().len(),
        b24.over_limit()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
