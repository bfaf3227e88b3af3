//! The e-mail benchmark: okno (a separate process) against a real Postfix and Dovecot that
//! the test kit starts on 127.0.0.1 (Debian's packages; root only, as Postfix's master is).
//!
//! 1. fetch: `--inbound` mails from 100 people are put into okno's mailbox through Postfix
//!    first (not timed), then the channel is connected and okno reads the folder from the
//!    start — timed until it has stored them all (its `inbound_messages` counter);
//! 2. send: `--outbound` replies queued through the API, timed until Postfix has taken every
//!    one (okno marks a message `sent` once the SMTP server accepted it), then the people's
//!    mailboxes counted until Dovecot holds them all. The channel sends over [`SMTP_CONNECTIONS`]
//!    connections.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use okno_testkit::email::{email_config, okno_mailbox, person_mailbox};
use okno_testkit::mail::MailServer;
use serde_json::json;

use crate::server::Okno;

const PEOPLE: usize = 100;

/// The channel's `smtp.connections`: the test kit's Postfix on this machine takes 16 at once
/// (okno's default, 8, is for public mail services that limit them).
const SMTP_CONNECTIONS: u32 = 16;

fn mail(from: &str, to: &str, n: usize) -> Vec<u8> {
    format!(
        "From: Покупатель {n} <{from}>\r\nTo: {to}\r\nSubject: =?UTF-8?B?0JfQsNC60LDQtw==?= {n}\r\n\
         Message-ID: <bench-{n}@shop.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Здравствуйте! Где мой заказ №{n}? Оплатил вчера.\r\n\r\n-- \r\nС уважением, покупатель\r\n"
    )
    .into_bytes()
}

pub async fn run(okno: &Path, n: usize, outbound: usize) -> Result<()> {
    let Some(server) = MailServer::start() else { bail!("no mail server here (see above)") };
    let dir = std::env::temp_dir().join(format!("okno-bench-email-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir)?;
    let own = okno_mailbox(&server);
    let people: Vec<String> = (0..PEOPLE).map(|i| person_mailbox(&server, &format!("buyer{i}"))).collect();
    println!(
        "okno e-mail benchmark — SQLite, Postfix {} and Dovecot {} on 127.0.0.1, TLS on both sides, {} cores",
        version("postfix"),
        version("dovecot-imapd"),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );

    // The mail, into okno's mailbox before okno looks.
    let started = Instant::now();
    let refused = futures::stream::iter(0..n)
        .map(|i| {
            let (server, from, own) = (&server, people[i % PEOPLE].clone(), own.clone());
            async move { server.deliver(&mail(&from, &own, i), &from, &[&own]).await.is_err() }
        })
        .buffer_unordered(16)
        .filter(|refused| futures::future::ready(*refused))
        .count()
        .await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while server.count(&own).await < n - refused && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "setup: {n} mails handed to Postfix and delivered by Dovecot in {:.1} s ({refused} refused; not part of the figures)",
        started.elapsed().as_secs_f64()
    );

    // 1. Fetch.
    let okno = Okno::start(okno, &dir, None).await?;
    let before = okno.inbound("email").await?;
    let started = Instant::now();
    let mut config = email_config(&server, &own, "Бенчмарк");
    config["smtp"]["connections"] = json!(SMTP_CONNECTIONS);
    let ch = okno
        .call(reqwest::Method::POST, "/channels", Some(json!({"kind": "email", "name": "bench", "config": config})))
        .await?;
    ch["id"].as_str().with_context(|| format!("no channel id: {ch}"))?;
    let got = okno.wait_inbound("email", before + n as u64, Duration::from_secs(600)).await? - before;
    let t = started.elapsed();
    println!(
        "fetch: {got} of {n} mails read over IMAP (TLS) and stored in {:.2} s = {:.0} msg/s",
        t.as_secs_f64(),
        got as f64 / t.as_secs_f64()
    );

    // 2. Send.
    let convs = okno.conversations().await?;
    let before = okno.sends_done().await?;
    let started = Instant::now();
    let queued = okno.queue_replies(&convs, outbound).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut sent = 0;
    while Instant::now() < deadline {
        sent = (okno.sends_done().await? - before) as usize;
        if sent >= outbound {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = started.elapsed();
    println!(
        "send: {sent} of {outbound} replies to {} conversations queued in {:.2} s, taken by Postfix (SMTP, TLS, {SMTP_CONNECTIONS} connections) {:.2} s after the first was queued = {:.0} msg/s",
        convs.len(),
        queued.as_secs_f64(),
        t.as_secs_f64(),
        sent as f64 / t.as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut delivered = 0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    while Instant::now() < deadline {
        delivered = futures::stream::iter(people.iter())
            .map(|p| server.count(p))
            .buffer_unordered(8)
            .fold(0, |sum, c| futures::future::ready(sum + c))
            .await;
        if delivered >= sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "delivered: {delivered} of {sent} in the people's mailboxes {:.2} s after the first was queued",
        started.elapsed().as_secs_f64()
    );
    if let (Some(idle), Some(peak)) = (crate::rss_kb(okno.pid()), crate::hwm_kb(okno.pid())) {
        println!("okno's memory: RSS {} MB now, peak {} MB", idle / 1024, peak / 1024);
    }
    drop(okno);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A Debian package's version, or `?`.
fn version(package: &str) -> String {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "?".into())
}
