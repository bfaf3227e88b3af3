//! `okno demo`: okno on a throwaway folder with its simulators built in, so every scenario of
//! the product can be tried in minutes without a token from any platform.
//!
//! ```text
//!   okno (SQLite in a fresh folder, the usual listen address)
//!     ├── /ui, /api/v1 …             the real product; the operator UI marked as the demo
//!     ├── /demo/phone                play a customer, a manager, an employee, a courier
//!     └── /demo/console              play 1C: post events and tasks, see what 1C received
//!   the simulated Telegram (127.0.0.1, a free port)  ◀── okno polls it for five bots
//!   the simulated 1C (127.0.0.1, a free port)        ◀── the example bots' lookups and forms,
//!                                                        okno's signed webhooks
//! ```
//!
//! At start the demo fills okno through its own API — channels, the example bots, rules and
//! surveys, the people as contacts — and each person links their Telegram with a link code, as
//! a real employee would. [`Demo::instructions`] says where to go.
//!
//! Its pages act with an administrator's token for whoever reaches them, so the demo listens
//! only on a loopback address (unless told [`Options::public`]) and answers only to the names
//! of that address, and its folder is marked as the demo's ([`MARKER`]) so that `okno serve`
//! never takes it for a real okno's.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use okno_domain::model::Role;
use okno_domain::{Error, ErrorKind, Result};
use okno_onec_sim::OneCSim;
use okno_server::error::ApiError;
use okno_server::ui::i18n::Lang;
use okno_server::ui::{Localized, Notice};
use okno_server::{Extras, Running, Settings};
use okno_telegram_sim::{Retention, TelegramSim};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub mod api;
pub mod cast;
mod console;
mod pages;
mod phone;
pub mod texts;
pub mod world;

pub use world::World;

/// The demo administrator's login in the operator window.
pub const ADMIN_LOGIN: &str = "admin";

/// The file that marks a folder as the demo's. `okno serve` refuses such a folder: its
/// administrator's password and API token were printed, and its channels call simulators
/// that are gone.
pub const MARKER: &str = "okno-demo.txt";

const MARKER_TEXT: &str = "This folder was made by `okno demo`: a demonstration with made-up people, whose \
administrator's password and API token were printed in the terminal, and whose channels call a simulated \
Telegram and 1C that stopped with the demo. `okno serve` does not run on it; give okno a folder of its own.\n";

/// Largest file a visitor sends from the phone page.
const PHONE_FILE_LIMIT: usize = 10 * 1024 * 1024;

/// How many posts of the console the demo remembers.
const POSTED_KEPT: usize = 50;

/// What the simulated Telegram keeps per bot while the demo runs (however long that is): the
/// newest presses with their answers (the phone shows those), send records (the demo reads
/// none), and files people and bots sent (up to ten of the phone's largest).
pub const TELEGRAM_RETENTION: Retention = Retention { sent: 200, presses: 500, file_bytes: 100 * 1024 * 1024 };

/// How many requests, and how many webhooks, the simulated 1C keeps (the console shows the
/// newest few dozen).
pub const ONEC_KEPT: usize = 1_000;

/// One thing the console posted to okno, with okno's answer.
#[derive(Debug, Clone)]
pub(crate) struct Posted {
    pub what: String,
    pub file: Option<String>,
    pub at: i64,
    pub status: u16,
    pub answer: Value,
    pub event_id: Option<String>,
    pub task_id: Option<String>,
}

/// What the demo's pages reach.
pub(crate) struct Shared {
    pub sim: TelegramSim,
    pub onec: OneCSim,
    pub api: api::Api,
    /// Set once the company is in okno.
    pub world: OnceLock<World>,
    pub pages: pages::Pages,
    /// Ends the live streams when the demo stops.
    pub stop: CancellationToken,
    pub admin_login: &'static str,
    posted: Mutex<VecDeque<Posted>>,
    /// What the console shows of a posted event once okno has settled it (it no longer
    /// changes), by event id.
    pub settled: Mutex<HashMap<String, Value>>,
    /// Contact names okno told the console, by contact id.
    pub names: Mutex<HashMap<String, String>>,
}

impl Shared {
    pub(crate) fn record(&self, p: Posted) {
        let mut posted = self.posted.lock().unwrap_or_else(|e| e.into_inner());
        if posted.len() >= POSTED_KEPT {
            if let Some(old) = posted.pop_front() {
                if let Some(id) = old.event_id {
                    self.settled.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                }
            }
        }
        posted.push_back(p);
    }

    /// The newest `n` posts, newest first.
    pub(crate) fn latest_posted(&self, n: usize) -> Vec<Posted> {
        self.posted.lock().unwrap_or_else(|e| e.into_inner()).iter().rev().take(n).cloned().collect()
    }
}

/// How a demo is started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The folder to use (new or empty; kept when the demo stops); `None`: a fresh throwaway
    /// one, removed at the end.
    pub data_dir: Option<PathBuf>,
    /// Listen on an address other computers reach. Anyone who reaches the demo then acts
    /// through its pages with its administrator's token; without this, a listen address
    /// other than a loopback one is refused, and requests naming another host are too.
    pub public: bool,
    /// Cancelled to stop the demo while it starts (Ctrl-C): starting then ends with the error
    /// `demo_cancelled`, everything it started stopped and a throwaway folder removed.
    pub cancel: CancellationToken,
}

/// The two simulators. Both are stopped when this is dropped, so no way out of a failed or
/// cancelled start leaves them running.
pub(crate) struct Simulators {
    pub telegram: TelegramSim,
    pub onec: OneCSim,
}

impl Simulators {
    /// Starts both on free ports of 127.0.0.1; `hook_secret` is what 1C checks okno's webhooks
    /// with.
    pub(crate) async fn start(hook_secret: &str) -> Result<Simulators> {
        let telegram = TelegramSim::try_start()
            .await
            .map_err(|e| Error::internal(format!("starting the simulated Telegram: {e}")))?;
        telegram.set_retention(TELEGRAM_RETENTION);
        let options = okno_onec_sim::Options {
            today: None,
            webhook_secret: Some(hook_secret.to_string()),
            keep: Some(ONEC_KEPT),
        };
        match OneCSim::start_with(options).await {
            Ok(onec) => Ok(Simulators { telegram, onec }),
            Err(e) => {
                telegram.stop();
                Err(Error::internal(format!("starting the simulated 1C: {e}")))
            }
        }
    }

    /// Their addresses: the only private ones okno may call (unless it is configured to call
    /// any).
    fn addresses(&self) -> Vec<SocketAddr> {
        vec![self.telegram.local_addr(), self.onec.local_addr()]
    }
}

impl Drop for Simulators {
    fn drop(&mut self) {
        self.telegram.stop();
        self.onec.stop();
    }
}

/// The demo's data folder, and whether it goes when the demo stops.
#[derive(Clone, Copy)]
struct Folder<'a> {
    dir: &'a Path,
    throwaway: bool,
}

/// A running demo.
pub struct Demo {
    /// `http://127.0.0.1:8080` — okno's address.
    pub url: String,
    /// An admin API token of this okno, for trying the API with curl.
    pub api_token: String,
    /// The password of the demo administrator ([`ADMIN_LOGIN`]), new for every demo.
    pub admin_password: String,
    /// The data folder.
    pub data_dir: PathBuf,
    /// Whether the folder is removed when the demo stops (the default, fresh one is).
    pub throwaway: bool,
    /// Whether it listens for other computers ([`Options::public`]).
    pub public: bool,
    /// The running okno.
    running: Running,
    shared: Arc<Shared>,
    sims: Simulators,
}

impl Demo {
    /// Starts the demo on the configured listen address.
    pub async fn start(settings: &Settings, options: Options) -> Result<Demo> {
        let addr = settings.listen_addr()?;
        refuse_public_address(addr, options.public)?;
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::invalid(
                "listen_failed",
                format!(
                    "cannot listen on {addr}: {e} (is another okno running there? \
                     OKNO_LISTEN=127.0.0.1:8081 okno demo uses another port)"
                ),
            )
        })?;
        Demo::start_on(settings, options, listener).await
    }

    /// Starts the demo on `listener` (tests bind port 0).
    pub async fn start_on(settings: &Settings, options: Options, listener: TcpListener) -> Result<Demo> {
        let addr = listener.local_addr().map_err(|e| Error::internal(format!("the listener: {e}")))?;
        refuse_public_address(addr, options.public)?;
        refuse_configured_database(settings)?;
        let (data_dir, throwaway) = prepare_folder(options.data_dir.clone())?;
        let hook_secret = okno_domain::ids::random_hex(16);
        let started = match Simulators::start(&hook_secret).await {
            Ok(sims) => {
                let folder = Folder { dir: &data_dir, throwaway };
                Demo::launch(settings, folder, listener, &options, sims, &hook_secret).await
            }
            Err(e) => Err(e),
        };
        if started.is_err() && throwaway {
            let _ = std::fs::remove_dir_all(&data_dir);
        }
        started
    }

    /// Starts okno beside the simulators and sets the company up. Every way out but success
    /// stops what it started (the simulators with `sims`).
    async fn launch(
        settings: &Settings,
        folder: Folder<'_>,
        listener: TcpListener,
        options: &Options,
        sims: Simulators,
        hook_secret: &str,
    ) -> Result<Demo> {
        let mut settings = settings.clone();
        settings.data_dir = folder.dir.to_path_buf();
        settings.database_url = None;
        // New channels are polled within a third of a second, so the demo starts quickly.
        settings.polling.poller_check_ms = settings.polling.poller_check_ms.min(300);

        let store = okno_server::open_store(&settings).await?;
        let admin_password = new_password();
        let hash = okno_server::ui::hash_password(&admin_password)?;
        store.create_operator(ADMIN_LOGIN, Role::Admin, &hash).await?;
        let api_token = okno_server::auth::new_token();
        store.create_token("demo", Role::Admin, &okno_server::auth::token_hash(&api_token)).await?;
        if options.cancel.is_cancelled() {
            return Err(cancelled());
        }

        let addr = listener.local_addr().map_err(|e| Error::internal(format!("the listener: {e}")))?;
        let url = format!("http://{}", local_address(addr));
        let shared = Arc::new(Shared {
            sim: sims.telegram.clone(),
            onec: sims.onec.clone(),
            api: api::Api::new(&url, &api_token)?,
            world: OnceLock::new(),
            pages: pages::Pages::new()?,
            stop: CancellationToken::new(),
            admin_login: ADMIN_LOGIN,
            posted: Mutex::new(VecDeque::new()),
            settled: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
        });
        let extras = Extras {
            routes: Some(routes(shared.clone())),
            notice: Some(notice(&admin_password, options.public)),
            allowed_hosts: (!options.public).then(|| local_hosts(addr)),
            private_target_exceptions: sims.addresses(),
        };
        let running = okno_server::start_with_extras(&settings, store, listener, extras).await?;
        let demo = Demo {
            url,
            api_token,
            admin_password,
            data_dir: folder.dir.to_path_buf(),
            throwaway: folder.throwaway,
            public: options.public,
            running,
            shared,
            sims,
        };
        let populated = tokio::select! {
            biased;
            _ = options.cancel.cancelled() => Err(cancelled()),
            world = world::populate(&demo.shared.api, &demo.sims.telegram, &demo.sims.onec, hook_secret) => world,
        };
        match populated {
            Ok(world) => {
                let _ = demo.shared.world.set(world);
                Ok(demo)
            }
            Err(e) => {
                demo.stop().await;
                Err(e)
            }
        }
    }

    /// The company as okno knows it (channel and contact ids).
    pub fn world(&self) -> &World {
        // Set before `start` returns; a Demo never exists without it.
        self.shared.world.get().unwrap_or_else(|| unreachable!("a Demo is returned only once populated"))
    }

    /// The simulated Telegram.
    pub fn telegram(&self) -> &TelegramSim {
        &self.shared.sim
    }

    /// The simulated 1C.
    pub fn onec(&self) -> &OneCSim {
        &self.shared.onec
    }

    /// The running okno.
    pub fn running(&self) -> &Running {
        &self.running
    }

    /// A token that stops the demo when cancelled (Ctrl-C in the binary).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.running.shutdown_token()
    }

    /// Waits until the demo has been told to stop and has stopped — okno, then the
    /// simulators; removes a throwaway folder.
    pub async fn wait(self) {
        let stop = self.shared.stop.clone();
        let token = self.running.shutdown_token();
        tokio::spawn(async move {
            token.cancelled().await;
            stop.cancel();
        });
        self.running.wait().await;
        self.sims.telegram.stop();
        self.sims.onec.stop();
        if self.throwaway {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }

    /// Stops the demo; removes a throwaway folder.
    pub async fn stop(self) {
        self.shared.stop.cancel();
        self.running.shutdown_token().cancel();
        self.wait().await;
    }

    /// What to print at start: where to go, with what credentials, and what to try first.
    pub fn instructions(&self) -> String {
        let url = &self.url;
        let folder = if self.throwaway {
            format!("{} (removed when the demo stops)", self.data_dir.display())
        } else {
            format!("{} (kept; marked as the demo's, so okno serve will not run on it)", self.data_dir.display())
        };
        let public = if self.public {
            "\n\x20 --public: anyone who reaches this address can use the phone and the 1C console, which act\n\
             \x20 with the administrator's token, and sign in with the password above if they learn it.\n"
        } else {
            ""
        };
        format!(
            "\nokno demo is running: the real okno, with a simulated Telegram and a simulated 1C.\n\
             Nothing here reaches a real messenger or business system. Data folder: {folder}\n\n\
             \x20 Operator window  {url}/            login: {ADMIN_LOGIN}   password: {password}\n\
             \x20 Phone            {url}/demo/phone   be a customer, a manager, an employee, a courier\n\
             \x20 1C console       {url}/demo/console post 1C's events and tasks, see what 1C received\n\
             \x20 REST API         {url}/api/v1   token: {token}\n{public}\n\
             Try first:\n\
             \x20 1. Phone → Наталья Белова → «Стройторг · магазин» → Start → «💬 Связаться с менеджером»,\n\
             \x20    write a question; answer it from the operator window.\n\
             \x20 2. 1C console → «order.blocked»; phone → Пётр Петров → press «✅ Согласую отгрузку»;\n\
             \x20    the console shows 1C received the answer.\n\
             \x20 3. 1C console → «Post the task»; phone → Дмитрий Соколов and Сергей Попов press «Взять»\n\
             \x20    in «{group}» — only the first gets the task.\n\
             Every scenario, step by step: docs/demo.md. Stop with Ctrl-C.\n",
            password = self.admin_password,
            token = self.api_token,
            group = cast::GROUP.title,
        )
    }
}

/// Whether `dir` was made by `okno demo` (holds [`MARKER`]).
pub fn made_by_demo(dir: &Path) -> bool {
    dir.join(MARKER).exists()
}

/// The error of a start cancelled by [`Options::cancel`].
fn cancelled() -> Error {
    Error::unavailable("demo_cancelled", "okno demo was stopped while it was starting")
}

/// A new password for the demo administrator: 64 random bits in four groups, easy to copy.
fn new_password() -> String {
    let hex = okno_domain::ids::random_hex(8);
    hex.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}

/// The banner of okno's operator UI, and its word on the login page: the administrator's
/// password there only when the demo listens on a loopback address (everyone who reaches the
/// page sits at this computer).
fn notice(password: &str, public: bool) -> Notice {
    let login = |lang| format!("{}: {ADMIN_LOGIN} / {password}", texts::t(lang, "demo_admin"));
    Notice {
        badge: texts::localized("demo_badge"),
        text: texts::localized("demo_banner"),
        links: vec![
            (texts::localized("demo_open_phone"), "/demo/phone".into()),
            (texts::localized("demo_open_console"), "/demo/console".into()),
        ],
        login: (!public).then(|| Localized::new(login(Lang::En), login(Lang::Ru))),
    }
}

/// The demo listens where only this computer reaches it, unless told to be public: its pages
/// act with an administrator's token for whoever opens them.
fn refuse_public_address(addr: SocketAddr, public: bool) -> Result<()> {
    if public || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(Error::invalid(
        "demo_listen_not_local",
        format!(
            "okno demo listens only on this computer (127.0.0.1, ::1), and {addr} is reachable from others: \
             anyone who reached it could use the demo's pages, which act with its administrator's token. \
             Leave OKNO_LISTEN (and listen in okno.toml) unset or at 127.0.0.1:PORT, or run okno demo --public \
             to show it on a network you trust"
        ),
    ))
}

/// The names a browser on this computer reaches the demo by (the `Host` it sends): any other
/// is a page of another site whose name was pointed at this address.
fn local_hosts(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let own = match addr.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let mut names = vec!["127.0.0.1".to_string(), "localhost".to_string(), "[::1]".to_string()];
    if !names.contains(&own) {
        names.push(own);
    }
    let mut hosts: Vec<String> = names.iter().map(|n| format!("{n}:{port}")).collect();
    // A browser leaves out the default port.
    if port == 80 {
        hosts.extend(names);
    }
    hosts
}

/// The address to print: a wildcard listen address is reached on 127.0.0.1.
fn local_address(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

/// The demo keeps its database in its own folder: a configured database (PostgreSQL or a
/// SQLite file elsewhere) is someone's real data, and the demo never touches it.
fn refuse_configured_database(settings: &Settings) -> Result<()> {
    if settings.database_url.is_none() {
        return Ok(());
    }
    let postgres = settings.database_url().starts_with("postgres");
    let which = if postgres { "a PostgreSQL database" } else { "a database" };
    Err(Error::invalid(
        "demo_database_configured",
        format!(
            "okno demo runs on SQLite in a folder of its own and never touches {which} named in the settings; \
             unset OKNO_DATABASE_URL (or database_url in okno.toml) to run the demo"
        ),
    ))
}

/// A new or empty folder, or a fresh throwaway one; never a folder with something in it (it
/// could hold a real okno's data). The folder is marked as the demo's before anything else
/// goes in.
fn prepare_folder(dir: Option<PathBuf>) -> Result<(PathBuf, bool)> {
    let (dir, throwaway) = match dir {
        None => {
            let fresh = std::env::temp_dir().join(format!("okno-demo-{}", okno_domain::ids::random_hex(6)));
            create_folder(&fresh)?;
            (fresh, true)
        }
        Some(dir) => {
            match std::fs::read_dir(&dir) {
                Ok(mut entries) => {
                    if entries.next().is_some() {
                        return Err(Error::invalid(
                            "demo_folder_not_empty",
                            format!(
                                "okno demo starts only on an empty folder, and `{}` has files in it \
                                 (maybe a real okno's data); give --data-dir a new folder, or leave it out \
                                 for a fresh throwaway one",
                                dir.display()
                            ),
                        ));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_folder(&dir)?,
                Err(e) => {
                    return Err(Error::invalid(
                        "data_dir_unusable",
                        format!("cannot read the folder `{}`: {e}", dir.display()),
                    ))
                }
            }
            (dir, false)
        }
    };
    if let Err(e) = std::fs::write(dir.join(MARKER), MARKER_TEXT) {
        if throwaway {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return Err(Error::invalid(
            "data_dir_unusable",
            format!("cannot write in the folder `{}`: {e}", dir.display()),
        ));
    }
    Ok((dir, throwaway))
}

fn create_folder(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::invalid("data_dir_unusable", format!("cannot create the folder `{}`: {e}", dir.display())))
}

/// The demo's actions (every POST) need the `X-Okno-Demo` header, which a page of another
/// site cannot send without the browser asking first (and okno never says yes). Checked
/// before anything else, the body included, is read.
async fn demo_header_first(req: Request, next: Next) -> Response {
    if req.method() == Method::POST && !req.headers().contains_key("x-okno-demo") {
        return ApiError(Error::new(
            ErrorKind::Forbidden,
            "demo_header_missing",
            "the demo's actions come from its own pages (the X-Okno-Demo header is missing)",
        ))
        .into_response();
    }
    next.run(req).await
}

/// Everything under `/demo`.
fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/demo", get(|| async { Redirect::to("/demo/phone") }))
        .route("/demo/phone", get(phone::page))
        .route("/demo/console", get(console::page))
        .route("/demo/assets/demo.css", get(|| async { pages::asset(pages::CSS, "text/css; charset=utf-8") }))
        .route(
            "/demo/assets/phone.js",
            get(|| async { pages::asset(pages::PHONE_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/demo/assets/console.js",
            get(|| async { pages::asset(pages::CONSOLE_JS, "text/javascript; charset=utf-8") }),
        )
        .route("/demo/api/people", get(phone::people))
        .route("/demo/api/live", get(phone::live))
        .route("/demo/api/phone/{person}", get(phone::chats))
        .route("/demo/api/phone/{person}/{chat}", get(phone::chat))
        .route("/demo/api/phone/{person}/{chat}/send", post(phone::send))
        .route("/demo/api/phone/{person}/{chat}/press", post(phone::press))
        .route("/demo/api/phone/{person}/{chat}/start", post(phone::start))
        .route("/demo/api/phone/{person}/{chat}/file", post(phone::file).layer(DefaultBodyLimit::max(PHONE_FILE_LIMIT)))
        .route("/demo/api/files/{bot}/{file_id}", get(phone::download))
        .route("/demo/api/console", get(console::state))
        .route("/demo/api/console/event", post(console::post_event))
        .route("/demo/api/console/task", post(console::post_task))
        .route("/demo/api/console/survey", post(console::start_survey))
        .route("/demo/api/console/broadcast", post(console::broadcast))
        .layer(axum::middleware::from_fn(demo_header_first))
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

    use super::*;

    /// Starts okno beside freshly started simulators with `settings` and `options`, expecting
    /// it to fail; returns the error once both simulators are seen stopped.
    async fn failed_launch(settings: Settings, options: Options) -> Error {
        let dir = std::env::temp_dir().join(format!("okno-demo-unit-{}", okno_domain::ids::random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let sims = Simulators::start("0123456789abcdef").await.unwrap();
        let (telegram, onec) = (sims.telegram.clone(), sims.onec.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let folder = Folder { dir: &dir, throwaway: false };
        let outcome = Demo::launch(&settings, folder, listener, &options, sims, "0123456789abcdef").await;
        let _ = std::fs::remove_dir_all(&dir);
        let Err(e) = outcome else { panic!("the start was expected to fail") };
        assert!(telegram.is_stopping() && onec.is_stopping(), "{}: both simulators are told to stop", e.message);
        telegram.stopped().await;
        onec.stopped().await;
        for addr in [telegram.local_addr(), onec.local_addr()] {
            assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "nothing listens on {addr} any more");
        }
        e
    }

    #[tokio::test]
    async fn a_setup_okno_refuses_stops_both_simulators() {
        // Every call of the setup is larger than okno takes.
        let mut settings = Settings { listen: "127.0.0.1:0".into(), ..Default::default() };
        settings.limits.max_body_bytes = 16;
        settings.delivery.shutdown_grace_secs = 1;
        let e = failed_launch(settings, Options::default()).await;
        assert!(e.message.contains("setting up the demo: webhooks"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_start_cancelled_stops_both_simulators() {
        let options = Options::default();
        options.cancel.cancel();
        let e = failed_launch(Settings::default(), options).await;
        assert_eq!(e.code, "demo_cancelled");
    }

    #[test]
    fn only_a_loopback_address_is_taken_unless_the_demo_is_public() {
        for local in ["127.0.0.1:8080", "127.0.0.5:8080", "[::1]:8080"] {
            assert!(refuse_public_address(local.parse().unwrap(), false).is_ok(), "{local}");
        }
        for reachable in ["0.0.0.0:8080", "192.168.1.10:8080", "[::]:8080"] {
            let e = refuse_public_address(reachable.parse().unwrap(), false).unwrap_err();
            assert_eq!(e.code, "demo_listen_not_local", "{reachable}");
            assert!(refuse_public_address(reachable.parse().unwrap(), true).is_ok(), "{reachable} when public");
        }
    }

    #[test]
    fn the_demo_answers_to_the_names_of_its_loopback_address() {
        assert_eq!(
            local_hosts("127.0.0.1:8080".parse().unwrap()),
            ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"].map(String::from)
        );
        assert_eq!(
            local_hosts("127.0.0.5:80".parse().unwrap()),
            [
                "127.0.0.1:80",
                "localhost:80",
                "[::1]:80",
                "127.0.0.5:80",
                "127.0.0.1",
                "localhost",
                "[::1]",
                "127.0.0.5"
            ]
            .map(String::from)
        );
    }

    #[test]
    fn every_demo_has_a_password_of_its_own() {
        let (a, b) = (new_password(), new_password());
        assert_ne!(a, b);
        assert_eq!(a.len(), 19, "{a}");
        assert_eq!(a.split('-').count(), 4, "{a}");
    }

    #[test]
    fn the_login_page_shows_the_password_only_when_the_demo_is_not_public() {
        let local = notice("abcd-ef01-2345-6789", false);
        assert_eq!(local.login.unwrap().en, "Demo administrator: admin / abcd-ef01-2345-6789");
        assert!(notice("abcd-ef01-2345-6789", true).login.is_none());
    }
}
