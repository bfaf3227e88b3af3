//! The contact-sync benchmark: okno (a separate process) against the amoCRM simulator (in
//! this process) at amoCRM's real limit, 7 calls a second per integration.
//!
//! 1. from amoCRM: `n` contacts in the account, a connector made with `direction:
//!    from_amocrm`; timed until the last of them is in okno. The floor is amoCRM's pages of
//!    250 at 7 a second.
//! 2. to amoCRM: `n` contacts made in okno (through its API, before the clock starts), a
//!    connector made with `direction: to_amocrm`; timed until amoCRM holds them all. The floor
//!    is 50 contacts a call at 7 calls a second.
//!
//! Both end with a duplicate check and the peak calls a second amoCRM saw.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use okno_amocrm_sim::AmoSim;
use serde_json::json;

use crate::server::Okno;

/// amoCRM's calls a second per integration.
const PER_SECOND: f64 = 7.0;
/// Contacts a page amoCRM lists, and a write okno makes.
const PAGE: f64 = 250.0;
const BATCH: f64 = 50.0;

pub async fn run(okno: &Path, n: usize) -> Result<()> {
    println!(
        "contact sync with amoCRM — {n} contacts each way, amoCRM's limit {PER_SECOND} calls/s, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    from_amocrm(okno, n).await?;
    to_amocrm(okno, n).await
}

async fn from_amocrm(okno: &Path, n: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("okno-bench-amo-in-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let amo = AmoSim::start("bench").await;
    let user = amo.add_user("Бенчмарк", "bench@example.org");
    let token = amo.add_token(user);
    let mut last = 0;
    for i in 0..n {
        last = amo.add_contact(&format!("Клиент {i}"), &format!("+7900{i:07}"), &format!("c{i}@example.org"));
    }
    let server = Okno::start(okno, &dir, None).await?;
    let started = Instant::now();
    let made = server
        .call(
            reqwest::Method::POST,
            "/connectors",
            Some(json!({"kind": "amocrm", "name": "amoCRM", "config": {"api_base": amo.api_base(), "token": token,
                "contacts": {"direction": "from_amocrm", "every": 3600}}})),
        )
        .await?;
    made["id"].as_str().with_context(|| format!("the connector: {made}"))?;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let found = server.call(reqwest::Method::GET, &format!("/contacts?external_id=amo-{last}"), None).await?;
        if found["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the contacts did not arrive within an hour");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let floor = (n as f64 / PAGE).ceil() / PER_SECOND;
    let in_okno = server.count_contacts().await?;
    println!(
        "from amoCRM: {n} contacts in {took:.1} s = {:.0} contacts/s; floor {floor:.1} s (pages of {PAGE} at {PER_SECOND}/s) → {:.2}× the floor; okno holds {in_okno} contacts (duplicates: {}); amoCRM's peak {} calls in a second",
        n as f64 / took,
        took / floor,
        in_okno.saturating_sub(n),
        amo.peak_per_second()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn to_amocrm(okno: &Path, n: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("okno-bench-amo-out-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let amo = AmoSim::start("bench").await;
    let user = amo.add_user("Бенчмарк", "bench@example.org");
    let token = amo.add_token(user);
    let server = Arc::new(Okno::start(okno, &dir, None).await?);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let made_at = Instant::now();
    for _ in 0..32 {
        let (server, next) = (server.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let body = json!({"name": format!("Покупатель {i}"), "phone": format!("+7901{i:07}")});
                if let Err(e) = server.call(reqwest::Method::POST, "/contacts", Some(body)).await {
                    eprintln!("a contact was not made: {e}");
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "to amoCRM: {n} contacts made in okno through its API in {:.1} s (before the clock starts)",
        made_at.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let made = server
        .call(
            reqwest::Method::POST,
            "/connectors",
            Some(json!({"kind": "amocrm", "name": "amoCRM", "config": {"api_base": amo.api_base(), "token": token,
                "contacts": {"direction": "to_amocrm", "every": 3600}}})),
        )
        .await?;
    made["id"].as_str().with_context(|| format!("the connector: {made}"))?;
    let deadline = Instant::now() + Duration::from_secs(3600);
    // Counted, not copied: reading 100,000 contacts ten times a second would hold the
    // simulated account's lock against okno's own calls.
    while amo.contact_count() < n {
        if Instant::now() > deadline {
            bail!("amoCRM did not get the contacts within an hour: {}", amo.contact_count());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let floor = (n as f64 / BATCH).ceil() / PER_SECOND;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = amo.contact_count();
    println!(
        "to amoCRM: {n} contacts in {took:.1} s = {:.0} contacts/s; floor {floor:.1} s ({BATCH} a call at {PER_SECOND}/s) → {:.2}× the floor; amoCRM holds {held} (duplicates: {}); amoCRM's peak {} calls in a second",
        n as f64 / took,
        took / floor,
        held.saturating_sub(n),
        amo.peak_per_second()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
