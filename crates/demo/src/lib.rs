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

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use okno_domain::model::Role;
use okno_domain::{Error, Result};
use okno_onec_sim::OneCSim;
use okno_server::{Extras, Running, Settings};
use okno_telegram_sim::TelegramSim;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub mod api;
pub mod cast;
mod console;
mod pages;
mod phone;
pub mod world;

pub use world::World;

/// The demo administrator's login in the operator window.
pub const ADMIN_LOGIN: &str = "admin";
/// The demo administrator's password (shown on the login page: this okno holds no real data).
pub const ADMIN_PASSWORD: &str = "okno-demo";

/// Largest file a visitor sends from the phone page.
const PHONE_FILE_LIMIT: usize = 10 * 1024 * 1024;

/// How many posts of the console the demo remembers.
const POSTED_KEPT: usize = 50;

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
}

impl Shared {
    pub(crate) fn record(&self, p: Posted) {
        let mut posted = self.posted.lock().unwrap_or_else(|e| e.into_inner());
        if posted.len() >= POSTED_KEPT {
            posted.pop_front();
        }
        posted.push_back(p);
    }

    pub(crate) fn posted(&self) -> Vec<Posted> {
        self.posted.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

/// A running demo.
pub struct Demo {
    /// `http://127.0.0.1:8080` — okno's address.
    pub url: String,
    /// An admin API token of this okno, for trying the API with curl.
    pub api_token: String,
    /// The data folder.
    pub data_dir: PathBuf,
    /// Whether the folder is removed when the demo stops (the default, fresh one is).
    pub throwaway: bool,
    /// The running okno.
    running: Running,
    shared: Arc<Shared>,
}

impl Demo {
    /// Starts the demo on the configured listen address. `data_dir`: the folder to use (new or
    /// empty); `None` makes a fresh throwaway one.
    pub async fn start(settings: &Settings, data_dir: Option<PathBuf>) -> Result<Demo> {
        let addr = settings.listen_addr()?;
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::invalid(
                "listen_failed",
                format!(
                    "cannot listen on {addr}: {e} (is another okno running there? \
                     OKNO_LISTEN=127.0.0.1:8081 okno demo uses another port)"
                ),
            )
        })?;
        Demo::start_on(settings, data_dir, listener).await
    }

    /// Starts the demo on `listener` (tests bind port 0).
    pub async fn start_on(settings: &Settings, data_dir: Option<PathBuf>, listener: TcpListener) -> Result<Demo> {
        refuse_configured_database(settings)?;
        let (data_dir, throwaway) = prepare_folder(data_dir)?;
        match Demo::launch(settings, &data_dir, throwaway, listener).await {
            Ok(demo) => Ok(demo),
            Err(e) => {
                if throwaway {
                    let _ = std::fs::remove_dir_all(&data_dir);
                }
                Err(e)
            }
        }
    }

    async fn launch(settings: &Settings, data_dir: &Path, throwaway: bool, listener: TcpListener) -> Result<Demo> {
        let mut settings = settings.clone();
        settings.data_dir = data_dir.to_path_buf();
        settings.database_url = None;
        // The simulators listen on 127.0.0.1: okno may call them.
        settings.allow_private_targets = true;
        // New channels are polled within a third of a second, so the demo starts quickly.
        settings.telegram.poller_check_ms = settings.telegram.poller_check_ms.min(300);

        let store = okno_server::open_store(&settings).await?;
        let hash = okno_server::ui::hash_password(ADMIN_PASSWORD)?;
        store.create_operator(ADMIN_LOGIN, Role::Admin, &hash).await?;
        let api_token = okno_server::auth::new_token();
        store.create_token("demo", Role::Admin, &okno_server::auth::token_hash(&api_token)).await?;

        let sim = TelegramSim::try_start()
            .await
            .map_err(|e| Error::internal(format!("starting the simulated Telegram: {e}")))?;
        let hook_secret = okno_domain::ids::random_hex(16);
        let options =
            okno_onec_sim::Options { today: None, webhook_secret: Some(hook_secret.clone()), ..Default::default() };
        let onec = OneCSim::start_with(options)
            .await
            .map_err(|e| Error::internal(format!("starting the simulated 1C: {e}")))?;

        let addr = listener.local_addr().map_err(|e| Error::internal(format!("the listener: {e}")))?;
        let url = format!("http://{}", local_address(addr));
        let shared = Arc::new(Shared {
            sim: sim.clone(),
            onec: onec.clone(),
            api: api::Api::new(&url, &api_token)?,
            world: OnceLock::new(),
            pages: pages::Pages::new()?,
            stop: CancellationToken::new(),
            admin_login: ADMIN_LOGIN,
            posted: Mutex::new(VecDeque::new()),
        });
        let notice = okno_server::ui::DemoNotice {
            phone_url: "/demo/phone".into(),
            console_url: "/demo/console".into(),
            login: ADMIN_LOGIN.into(),
            password: ADMIN_PASSWORD.into(),
        };
        let extras = Extras { routes: Some(routes(shared.clone())), demo: Some(notice) };
        let running = okno_server::start_with_extras(&settings, store, listener, extras).await?;
        let demo = Demo { url, api_token, data_dir: data_dir.to_path_buf(), throwaway, running, shared };
        match world::populate(&demo.shared.api, &sim, &onec, &hook_secret).await {
            Ok(world) => {
                let _ = demo.shared.world.set(world);
                Ok(demo)
            }
            Err(e) => {
                demo.shared.stop.cancel();
                demo.running.stop().await;
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

    /// Waits until the demo has been told to stop and has stopped; removes a throwaway folder.
    pub async fn wait(self) {
        let stop = self.shared.stop.clone();
        let token = self.running.shutdown_token();
        tokio::spawn(async move {
            token.cancelled().await;
            stop.cancel();
        });
        self.running.wait().await;
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
            self.data_dir.display().to_string()
        };
        format!(
            "\nokno demo is running: the real okno, with a simulated Telegram and a simulated 1C.\n\
             Nothing here reaches a real messenger or business system. Data folder: {folder}\n\n\
             \x20 Operator window  {url}/            login: {ADMIN_LOGIN}   password: {ADMIN_PASSWORD}\n\
             \x20 Phone            {url}/demo/phone   be a customer, a manager, an employee, a courier\n\
             \x20 1C console       {url}/demo/console post 1C's events and tasks, see what 1C received\n\
             \x20 REST API         {url}/api/v1   token: {token}\n\n\
             Try first:\n\
             \x20 1. Phone → Наталья Белова → «Стройторг · магазин» → Start → «💬 Связаться с менеджером»,\n\
             \x20    write a question; answer it from the operator window.\n\
             \x20 2. 1C console → «order.blocked»; phone → Пётр Петров → press «✅ Согласую отгрузку»;\n\
             \x20    the console shows 1C received the answer.\n\
             \x20 3. 1C console → «Post the task»; phone → Дмитрий Соколов and Сергей Попов press «Взять»\n\
             \x20    in «{group}» — only the first gets the task.\n\
             Every scenario, step by step: docs/demo.md. Stop with Ctrl-C.\n",
            token = self.api_token,
            group = cast::GROUP.title,
        )
    }
}

/// The address to print: a wildcard listen address is reached on 127.0.0.1.
fn local_address(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), addr.port())
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
/// could hold a real okno's data).
fn prepare_folder(dir: Option<PathBuf>) -> Result<(PathBuf, bool)> {
    let Some(dir) = dir else {
        let fresh = std::env::temp_dir().join(format!("okno-demo-{}", okno_domain::ids::random_hex(6)));
        std::fs::create_dir_all(&fresh).map_err(|e| {
            Error::invalid("data_dir_unusable", format!("cannot create the folder `{}`: {e}", fresh.display()))
        })?;
        return Ok((fresh, true));
    };
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir).map_err(|e| {
                Error::invalid("data_dir_unusable", format!("cannot create the folder `{}`: {e}", dir.display()))
            })?;
        }
        Err(e) => {
            return Err(Error::invalid("data_dir_unusable", format!("cannot read the folder `{}`: {e}", dir.display())))
        }
    }
    Ok((dir, false))
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
        .with_state(shared)
}
