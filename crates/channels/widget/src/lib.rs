//! okno's website chat widget (`widget` channels): one `<script>` tag on a company's site
//! gives visitors a chat bubble and window that talk to okno's operators and bots.
//!
//! ```text
//!  the site: <script src="OKNO/widget/{channel_id}.js" async>   (assets/widget.js, SCRIPT)
//!     │  session, messages, files, history, live stream (SSE)   okno's server: crates/server/src/widget.rs
//!     ▼
//!  visitor's message ─► signed Envelope ─► Platform::receive ─► the engine's inbound path
//!  operator's reply ─► the outbox ─► WidgetAdapter::send ─► live::hub rings the visitor's stream
//! ```
//!
//! This crate holds what is the channel's own: the configuration ([`config`]), who a visitor
//! is and how it is proved ([`identity`]), the visitor's requests ([`visitor`]), the bells
//! that wake streams ([`live`]), the platform ([`platform`]) and the script.

pub mod config;
pub mod identity;
pub mod live;
pub mod platform;
pub mod visitor;

pub use config::WidgetConfig;
pub use platform::{Widget, WidgetAdapter, MAX_FILE, SIGNATURE_HEADER, STREAM_POLL};

/// The widget's script, served at `/widget/{channel_id}.js` (the same for every channel: it
/// reads its channel and okno's address from its own `src`).
pub const SCRIPT: &str = include_str!("../assets/widget.js");

#[cfg(test)]
mod tests {
    use std::io::Write;

    /// The script's budget: 50 KB gzipped.
    pub const BUDGET: usize = 50 * 1024;

    #[test]
    fn the_script_is_within_its_budget_gzipped() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(super::SCRIPT.as_bytes()).unwrap_or_else(|e| panic!("gzip: {e}"));
        let size = gz.finish().unwrap_or_else(|e| panic!("gzip: {e}")).len();
        eprintln!("widget.js: {} bytes, {size} bytes gzipped", super::SCRIPT.len());
        assert!(size <= BUDGET, "widget.js is {size} bytes gzipped, over the {BUDGET}-byte budget");
    }

    #[test]
    fn the_script_asks_nothing_of_third_parties_and_runs_no_strings() {
        let code: String = super::SCRIPT
            .lines()
            .filter(|l| !l.trim_start().starts_with("/*") && !l.trim_start().starts_with('*'))
            .collect::<String>()
            .replace("\"http://www.w3.org/2000/svg\"", "SVG_NS");
        for banned in ["eval(", "new Function", "http://", "https://", "document.write", "setTimeout(\"", "innerHTML ="]
        {
            assert!(!code.contains(banned), "widget.js must not use `{banned}`");
        }
    }
}
