//! okno's HTTP server: the REST API (`/api/v1`), the channels' hooks (`/hooks/{id}`), the
//! operations endpoints, and the operator web UI (`/ui`). [`start`] opens the store, starts the delivery workers and serves on
//! a listener, so the binary and the tests start okno the same way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use okno_domain::{Error, Result};
use okno_engine::{Engine, EngineConfig};
use okno_store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod api;
pub mod auth;
pub mod client_addr;
pub mod data_dir;
pub mod directory;
pub mod error;
pub mod hooks;
pub mod listener;
pub mod masking;
pub mod openapi;
pub mod ops;
pub mod registry;
pub mod secrets;
pub mod settings;
pub mod ui;
pub mod widget;

pub use settings::Settings;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub public_url: Arc<str>,
    /// The operator web UI's templates and sessions.
    pub ui: Arc<ui::Ui>,
    /// Cancelled when okno stops (ends long-lived answers such as live-update streams).
    pub shutdown: CancellationToken,
    /// The LDAP directory operators sign in through, when `[ldap]` is on.
    pub directory: Option<Arc<directory::Directory>>,
}

/// The whole HTTP surface.
pub fn router(state: AppState, settings: &Settings) -> Router {
    router_with(state, settings, None, None)
}

/// The whole HTTP surface plus `extra` routes, which get the same body limit, tracing, request
/// metrics and host check as okno's own.
fn router_with(
    state: AppState,
    settings: &Settings,
    extra: Option<Router>,
    allowed_hosts: Option<ops::AllowedHosts>,
) -> Router {
    let own: Router = Router::new()
        .nest("/api/v1", api::routes(settings))
        .merge(hooks::routes())
        .merge(ops::routes())
        .merge(ui::routes(settings.limits.max_attachment_bytes))
        .merge(widget::routes())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .with_state(state.clone());
    let all = match extra {
        Some(extra) => own.merge(extra),
        None => own,
    };
    let all = all
        .layer(axum::middleware::from_fn_with_state(state, ops::count_requests))
        .layer(DefaultBodyLimit::max(settings.limits.max_body_bytes));
    let all = match allowed_hosts {
        Some(hosts) => all.layer(axum::middleware::from_fn_with_state(hosts, ops::only_allowed_hosts)),
        None => all,
    };
    all.layer(tower_http::trace::TraceLayer::new_for_http())
}

/// What a program embedding okno adds to it (`okno demo` does; `okno serve` adds nothing).
#[derive(Default)]
pub struct Extras {
    /// Routes served beside okno's own. Their paths must be ones okno does not use (the
    /// demo's live under `/demo`): a path served twice is a programming error axum refuses.
    pub routes: Option<Router>,
    /// What the operator UI says on every page and on the login page.
    pub notice: Option<ui::Notice>,
    /// The only `Host` names (with the port) okno answers to; any other gets 403
    /// `host_not_allowed` on every path, the embedder's included. A program serving okno on a
    /// loopback address passes the names of that address, so that a page of another site
    /// whose name was pointed at 127.0.0.1 (DNS rebinding) is not taken for okno. `None`:
    /// any host.
    pub allowed_hosts: Option<Vec<String>>,
    /// Private addresses (IP and port) okno may call even when private targets are not
    /// allowed: the services the program runs beside okno.
    pub private_target_exceptions: Vec<SocketAddr>,
}

/// A running okno: its address, its engine, and the handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    pub public_url: String,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    workers: JoinHandle<()>,
}

impl Running {
    /// Stops taking requests, lets in-flight jobs finish (or hands back their leases), and
    /// waits for both to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        let _ = self.workers.await;
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the server and workers have ended (after the token was cancelled).
    pub async fn wait(self) {
        let _ = self.server.await;
        let _ = self.workers.await;
    }
}

/// Opens the store named by the settings (migrating it), its secrets sealed under the key
/// ([`secrets`]), in a data folder only okno's user may read ([`data_dir`]).
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(secrets::open_sealed(settings).await?))
}

/// Every two seconds: fresh planner statistics for the tables that have outgrown theirs
/// (PostgreSQL; see `Store::refresh_statistics`).
fn spawn_statistics(store: Arc<dyn Store>, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            }
            match store.refresh_statistics().await {
                Ok(tables) if !tables.is_empty() => tracing::debug!(?tables, "planner statistics gathered"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e.message, "gathering planner statistics failed"),
            }
        }
    });
}

/// Starts okno on `listener` with an already opened store.
pub async fn start_with(settings: &Settings, store: Arc<dyn Store>, listener: TcpListener) -> Result<Running> {
    start_with_extras(settings, store, listener, Extras::default()).await
}

/// Starts okno on `listener` with an already opened store and what the embedding program adds.
pub async fn start_with_extras(
    settings: &Settings,
    store: Arc<dyn Store>,
    listener: TcpListener,
    extras: Extras,
) -> Result<Running> {
    let addr = listener.local_addr().map_err(|e| Error::internal(format!("listener: {e}")))?;
    let public_url = settings.public_url(addr);
    let mut cfg = engine_config(settings, PathBuf::from(&settings.data_dir), public_url.clone());
    cfg.private_target_exceptions = extras.private_target_exceptions;
    let engine = Engine::new(store, cfg, registry::platforms())?;
    engine.come_alive().await?;
    let shutdown = CancellationToken::new();
    let mut ui = ui::Ui::new(settings, &public_url, &engine.platforms)?;
    ui.notice = extras.notice;
    let ui = Arc::new(ui);
    let directory = directory::Directory::from_settings(settings)?;
    if let Some(d) = &directory {
        directory::spawn_recheck(engine.store.clone(), d.clone(), shutdown.clone());
    }
    let state = AppState {
        engine: engine.clone(),
        public_url: public_url.clone().into(),
        ui,
        shutdown: shutdown.clone(),
        directory,
    };
    ui::spawn_upkeep(&state);
    spawn_statistics(engine.store.clone(), shutdown.clone());
    let app = router_with(state, settings, extras.routes, extras.allowed_hosts.map(ops::AllowedHosts::new));
    let workers = {
        let (engine, stop) = (engine.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::join!(
                engine.clone().run_workers(stop.clone()),
                engine.clone().run_pollers(stop.clone()),
                engine.clone().run_reaper(stop.clone()),
                engine.clone().run_announcements(stop)
            );
            engine.store.end_liveness().await;
        })
    };
    let server =
        tokio::spawn(listener::serve(listener, app, listener::ReadLimits::of(&settings.http), shutdown.clone()));
    Ok(Running { addr, engine, public_url, shutdown, server, workers })
}

/// Opens the store, binds the configured address and starts okno.
pub async fn start(settings: &Settings) -> Result<Running> {
    let store = open_store(settings).await?;
    let addr = settings.listen_addr()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::invalid("listen_failed", format!("cannot listen on {addr}: {e}")))?;
    start_with(settings, store, listener).await
}

fn engine_config(s: &Settings, data_dir: PathBuf, public_url: String) -> EngineConfig {
    let d = &s.delivery;
    EngineConfig {
        data_dir,
        public_url,
        allow_private_targets: s.allow_private_targets,
        private_target_exceptions: Vec::new(),
        extra_roots: s.http.extra_roots().unwrap_or_default(),
        max_attachment_bytes: s.limits.max_attachment_bytes as u64,
        workers: d.workers,
        bulk_workers: d.bulk_workers,
        lease_ms: (d.lease_secs * 1000) as i64,
        poll_interval_ms: d.poll_interval_ms,
        send_max_attempts: d.send_max_attempts,
        webhook_max_attempts: d.webhook_max_attempts,
        retry_base_ms: d.retry_base_ms,
        retry_max_ms: d.retry_max_ms,
        http_timeout_ms: Duration::from_secs(d.http_timeout_secs).as_millis() as u64,
        shutdown_grace_ms: d.shutdown_grace_secs * 1000,
        poll_timeout_secs: s.polling.poll_timeout_secs,
        poller_check_ms: s.polling.poller_check_ms,
        poll_conflict_wait_ms: s.polling.conflict_wait_secs * 1000,
        default_timezone: s.default_timezone.clone(),
        templates: okno_engine::render::RenderLimits {
            program: s
                .templates
                .worker_program
                .clone()
                .unwrap_or_else(|| std::env::current_exe().unwrap_or_else(|_| PathBuf::from("okno"))),
            workers: s.templates.workers,
            timeout_ms: s.templates.timeout_ms,
            max_output_bytes: s.templates.max_output_bytes,
            max_memory_mb: s.templates.max_memory_mb,
        },
    }
}
