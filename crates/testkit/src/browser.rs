//! A headless Chromium driven over WebDriver for the UI's browser tests: Debian's `chromium`
//! and `chromium-driver` (paths overridable with `CHROMIUM` and `CHROMEDRIVER`), never a
//! downloaded browser. Without them a test is skipped with a note, unless
//! `UI_TEST_REQUIRED=1`, which makes a missing browser a failure. `SCREENSHOTS=1` makes
//! [`Browser::screenshot`] save pictures to `docs/screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::eventually;

/// Browser tests take turns: two Chromiums at once on a two-core machine only slow both.
pub static BROWSER_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session over WebDriver.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    _driver: tokio::process::Child,
}

impl Drop for Browser {
    /// Ends the browser session even when a test fails half-way, so no Chromium outlives the
    /// test (chromedriver itself is killed on drop). A plain blocking HTTP request: drop cannot
    /// wait for the async client.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let Some(rest) = self.session.strip_prefix("http://") else { return };
        let Some((host, path)) = rest.split_once('/') else { return };
        let Ok(mut conn) = std::net::TcpStream::connect(host) else { return };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let request =
            format!("DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        if conn.write_all(request.as_bytes()).is_err() {
            return;
        }
        // Wait for the whole answer (the session is gone then), not for the connection to close.
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
        }
    }
}

fn browser_paths() -> Option<(PathBuf, PathBuf)> {
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let driver = PathBuf::from(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into()));
    if chromium.exists() && driver.exists() {
        return Some((chromium, driver));
    }
    if std::env::var("UI_TEST_REQUIRED").is_ok_and(|v| v == "1") {
        panic!(
            "UI_TEST_REQUIRED=1 but {} or {} is missing (apt-get install -y chromium chromium-driver)",
            chromium.display(),
            driver.display()
        );
    }
    eprintln!(
        "skipped: no browser ({} / {}); set UI_TEST_REQUIRED=1 to fail instead",
        chromium.display(),
        driver.display()
    );
    None
}

impl Browser {
    pub async fn start() -> Option<Browser> {
        let (chromium, driver) = browser_paths()?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let up = eventually(20, || async {
            let r = http.get(format!("{base}/status")).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            (v["value"]["ready"] == true).then_some(())
        })
        .await;
        assert!(up.is_some(), "chromedriver did not start");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-dev-shm-usage", "--window-size=1280,860", "--lang=en-US"],
            }
        }}});
        let r: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let id = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {r}"));
        Some(Browser { http, session: format!("{base}/session/{id}"), _driver: child })
    }

    pub async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if v["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// Opens a page of the UI and waits until its live stream is up and its content current.
    pub async fn open(&self, url: &str) {
        self.goto(url).await;
        self.wait_for(10, "return window.oknoLive === true").await;
    }

    pub async fn find(&self, css: &str) -> String {
        let v = self.cmd(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v[ELEMENT].as_str().unwrap().to_string()
    }

    /// Clicks the element `css` names now (live updates may have replaced the one seen before).
    pub async fn click(&self, css: &str) {
        let script =
            format!("var e = document.querySelector({}); if (!e) return false; e.click(); return true", json!(css));
        assert_eq!(self.js(&script).await, json!(true), "nothing to click at {css}");
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{e}/clear"), Some(json!({}))).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{e}/value"), Some(json!({"text": text}))).await;
    }

    /// Types into the element without clearing it first (keys such as Tab are `\u{E004}`).
    pub async fn type_into_keep(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{e}/value"), Some(json!({"text": text}))).await;
    }

    pub async fn js(&self, script: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    pub async fn js_async(&self, script: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/async", Some(json!({"script": script, "args": []}))).await
    }

    pub async fn path(&self) -> String {
        self.js("return location.pathname").await.as_str().unwrap().to_string()
    }

    pub async fn text(&self, css: &str) -> String {
        let script = format!("var e = document.querySelector({}); return e ? e.innerText : null", json!(css));
        self.js(&script).await.as_str().unwrap_or("").to_string()
    }

    /// Waits until `script` returns something truthy.
    pub async fn wait_for(&self, secs: u64, script: &str) -> Value {
        let found = eventually(secs, || async {
            let v = self.js(script).await;
            (!v.is_null() && v != json!(false) && v != json!("") && v != json!(0)).then_some(v)
        })
        .await;
        found.unwrap_or_else(|| panic!("the page never satisfied: {script}"))
    }

    /// Emulates a screen of `width`×`height` CSS pixels (a phone), or the window again with `None`.
    /// (Resizing the headless window itself stalls the next navigation for a minute.)
    pub async fn screen(&self, size: Option<(u32, u32)>) {
        let body = match size {
            Some((width, height)) => json!({"cmd": "Emulation.setDeviceMetricsOverride",
                "params": {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": true}}),
            None => json!({"cmd": "Emulation.clearDeviceMetricsOverride", "params": {}}),
        };
        self.cmd(reqwest::Method::POST, "/goog/cdp/execute", Some(body)).await;
    }

    /// Saves a screenshot to `docs/screenshots/NAME.png` when `SCREENSHOTS=1`.
    pub async fn screenshot(&self, name: &str) {
        if std::env::var("SCREENSHOTS").as_deref() != Ok("1") {
            return;
        }
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Signs in on the login form at `base` and waits for the live inbox.
    pub async fn login(&self, base: &str, login: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        self.type_into("#login", login).await;
        self.type_into("#password", password).await;
        self.click("#sign-in").await;
        self.wait_for(10, "return location.pathname === '/ui/inbox' && window.oknoLive === true").await;
    }

    /// Ends the session (the browser closes); dropping the `Browser` does the same.
    pub async fn quit(self) {}
}
