//! The sample business system for tests: the simulated 1C of `okno-onec-sim`, with its
//! calendar pinned to 1 July 2026 so the texts tests compare (report dates, when a certificate
//! is ready) stay fixed, and a waiting helper that fails the test with everything received.
//!
//! The example bots in `examples/bots/` call `http://1c.local/hs/bot`; a test replaces that
//! string with [`BizSim::url`] (or calls [`BizSim::bind`]).

use std::time::Duration;

pub use okno_onec_sim::{
    report_pdf, report_xlsx, BizRequest, Mode, OneCSim, Options, Product, Webhook, EXAMPLE_BASE_URL, ORDERS, PHOTO_PNG,
    PRODUCTS, XLSX_MIME,
};

/// The simulated 1C for one test; every [`OneCSim`] method is available on it.
#[derive(Clone, Debug)]
pub struct BizSim(OneCSim);

impl std::ops::Deref for BizSim {
    type Target = OneCSim;

    fn deref(&self) -> &OneCSim {
        &self.0
    }
}

impl BizSim {
    /// Starts on 127.0.0.1:0 with today = 1 July 2026.
    pub async fn start() -> BizSim {
        let options = Options { today: Some(jiff::civil::date(2026, 7, 1)), ..Options::default() };
        BizSim(OneCSim::start_with(options).await.expect("biz-sim: starting on 127.0.0.1:0"))
    }

    /// Waits until at least `n` requests with this method and path arrived; panics with
    /// everything received after `secs`.
    pub async fn wait_requests(&self, method: &str, path: &str, n: usize, secs: u64) -> Vec<BizRequest> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.requests_to(method, path);
            if got.len() >= n {
                return got;
            }
            if tokio::time::Instant::now() >= deadline {
                let all: Vec<String> = self.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
                panic!(
                    "biz-sim: expected {n} × {method} {path} within {secs}s, got {}; all requests: {all:?}",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
