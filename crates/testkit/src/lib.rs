//! The test kit: [`TestApp`] starts a real okno (HTTP server, workers, store) on a random
//! port with a fresh SQLite file or PostgreSQL database; [`Sink`] is a real HTTP endpoint
//! that records what okno sends to it and checks the signatures. Later platform simulators
//! live here too.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test-only code: a failed unwrap is a failed test

pub mod app;
pub mod avito;
pub mod biz;
pub mod browser;
pub mod email;
pub mod mail;
pub mod max;
mod ok;
pub mod sink;
pub mod slapd;
pub mod sms;
pub mod tls;
pub mod viber;
pub mod vk;
pub mod whatsapp;
pub mod widget;

pub use app::TestApp;
pub use biz::BizSim;
pub use okno_ok_sim as ok_sim;
pub use okno_store::testing::TestDb;
pub use okno_telegram_sim as telegram;
pub use sink::{Received, Sink};
pub use slapd::Slapd;
pub use tls::TlsSite;

/// Polls `check` every 20 ms until it yields a value or `secs` pass.
pub async fn eventually<T, F, Fut>(secs: u64, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
