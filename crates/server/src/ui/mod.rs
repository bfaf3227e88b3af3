//! The operator web UI, the "single window": server-rendered pages (MiniJinja templates
//! embedded in the binary), a little hand-written JavaScript, live updates over Server-Sent
//! Events. Mounted at `/login`, `/logout` and `/ui/...`; `/` leads to the inbox.
//!
//! ```text
//!  browser ──GET──▶ page handler ──▶ store ──▶ view model (JSON) ──▶ template ──▶ HTML
//!     ▲  └─POST form (csrf)──▶ action ──▶ engine/store ──▶ 303 back to the page
//!     └── EventSource /ui/live ◀── watcher: reads the store each second, says what changed
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;
use okno_domain::model::{Channel, Message, Permission};
use okno_domain::time::Millis;
use serde_json::{json, Value};

use crate::AppState;

pub mod account;
pub mod admin;
pub mod authors;
pub mod broadcasts;
pub mod canned;
pub mod contacts;
pub mod events;
pub mod i18n;
pub mod inbox;
pub mod live;
pub mod local_time;
pub mod onboarding;
pub mod panel;
pub mod reports;
pub mod session;
pub mod setup;
pub mod surveys;
pub mod tasks;
pub mod two_factor;

use i18n::Lang;
pub use session::{hash_password, Session};

/// Templates and sessions, built once at start.
pub struct Ui {
    env: Environment<'static>,
    /// `ui.contact_url`: the business system's card of a contact.
    pub contact_url: Option<String>,
    pub sessions: session::Sessions,
    /// `ui.two_factor_required_for`: roles whose operators sign in with a code too.
    pub two_factor_required: Vec<okno_domain::model::Role>,
    pub canned: canned::CannedStore,
    /// The conversation list the live streams share.
    pub feed: live::Feed,
    /// Set by a program embedding okno that has something to say on every page (okno demo:
    /// that it is a demonstration).
    pub notice: Option<Notice>,
}

/// A text in both of the UI's languages, given by a program embedding okno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Localized {
    pub en: String,
    pub ru: String,
}

impl Localized {
    pub fn new(en: impl Into<String>, ru: impl Into<String>) -> Localized {
        Localized { en: en.into(), ru: ru.into() }
    }

    /// The text in `lang`.
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Ru => &self.ru,
        }
    }
}

/// What a program embedding okno says in the operator UI: a banner on every page (a badge, a
/// text and links to its own pages) and, when it has one, a word on the login page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The short tag the banner starts with.
    pub badge: Localized,
    /// The banner's text.
    pub text: Localized,
    /// Links after the text: the label and the address.
    pub links: Vec<(Localized, String)>,
    /// Said on the login page, with the links; `None` says nothing there.
    pub login: Option<Localized>,
}

impl Notice {
    /// The notice in one language, as the templates read it.
    fn view(&self, lang: Lang) -> Value {
        let links: Vec<Value> =
            self.links.iter().map(|(label, href)| json!({"label": label.get(lang), "href": href})).collect();
        json!({
            "badge": self.badge.get(lang), "text": self.text.get(lang), "links": links,
            "login": self.login.as_ref().map(|l| l.get(lang)),
        })
    }
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("login.html", include_str!("templates/login.html")),
    ("login_code.html", include_str!("templates/login_code.html")),
    ("setup.html", include_str!("templates/setup.html")),
    ("onboarding.html", include_str!("templates/onboarding.html")),
    ("inbox.html", include_str!("templates/inbox.html")),
    ("inbox_list.html", include_str!("templates/inbox_list.html")),
    ("conversation.html", include_str!("templates/conversation.html")),
    ("thread.html", include_str!("templates/thread.html")),
    ("panel.html", include_str!("templates/panel.html")),
    ("contacts.html", include_str!("templates/contacts.html")),
    ("contact.html", include_str!("templates/contact.html")),
    ("admin_channels.html", include_str!("templates/admin_channels.html")),
    ("admin_tokens.html", include_str!("templates/admin_tokens.html")),
    ("admin_webhooks.html", include_str!("templates/admin_webhooks.html")),
    ("admin_connectors.html", include_str!("templates/admin_connectors.html")),
    ("admin_rules.html", include_str!("templates/admin_rules.html")),
    ("admin_audit.html", include_str!("templates/admin_audit.html")),
    ("admin_bots.html", include_str!("templates/admin_bots.html")),
    ("reports.html", include_str!("templates/reports.html")),
    ("admin_canned.html", include_str!("templates/admin_canned.html")),
    ("admin_operators.html", include_str!("templates/admin_operators.html")),
    ("broadcasts.html", include_str!("templates/broadcasts.html")),
    ("account.html", include_str!("templates/account.html")),
    ("error.html", include_str!("templates/error.html")),
    // Contacts, broadcasts, administration.
    ("contact_form.html", include_str!("templates/contact_form.html")),
    ("contact_merge_list.html", include_str!("templates/contact_merge_list.html")),
    ("broadcast_new.html", include_str!("templates/broadcast_new.html")),
    // Events, tasks and surveys.
    ("events.html", include_str!("templates/events.html")),
    ("event.html", include_str!("templates/event.html")),
    ("tasks.html", include_str!("templates/tasks.html")),
    ("task.html", include_str!("templates/task.html")),
    ("surveys.html", include_str!("templates/surveys.html")),
    ("survey.html", include_str!("templates/survey.html")),
];

/// See the `kind_title` template function.
pub(crate) fn kind_title(lang: Lang, titles: &std::collections::HashMap<String, &'static str>, kind: &str) -> String {
    let key = format!("kind_{kind}");
    let text = i18n::t(lang, &key);
    if text != key {
        return text;
    }
    titles.get(kind).map(|t| t.to_string()).unwrap_or_else(|| kind.to_string())
}

const APP_JS: &str = include_str!("assets/app.js");
/// Scripts and styles only from okno itself (inline style attributes allowed), no framing.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
const APP_CSS: &str = include_str!("assets/app.css");

impl Ui {
    pub fn new(
        settings: &crate::Settings,
        public_url: &str,
        platforms: &okno_engine::Platforms,
    ) -> okno_domain::Result<Ui> {
        let mut env = Environment::new();
        for (name, src) in TEMPLATES {
            env.add_template(name, src)
                .map_err(|e| okno_domain::Error::internal(format!("UI template {name}: {e}")))?;
        }
        // Each platform's colour and mark, for the `logo` macro.
        let brands: serde_json::Map<String, Value> = platforms
            .all()
            .into_iter()
            .map(|p| {
                let b = p.brand();
                (p.kind().as_str().to_string(), json!({"title": p.title(), "color": b.color, "mark": b.mark}))
            })
            .collect();
        env.add_global("brands", minijinja::Value::from_serialize(&brands));
        env.add_function("t", |state: &minijinja::State, key: &str| -> String {
            let lang = state.lookup("lang").and_then(|v| v.as_str().and_then(Lang::parse)).unwrap_or(Lang::En);
            i18n::t(lang, key)
        });
        // A channel kind's name: the translated `kind_<kind>` where there is one, else the
        // platform's own title, else the kind as stored.
        let titles: std::collections::HashMap<String, &'static str> =
            platforms.all().into_iter().map(|p| (p.kind().as_str().to_string(), p.title())).collect();
        env.add_function("kind_title", move |state: &minijinja::State, kind: &str| -> String {
            let lang = state.lookup("lang").and_then(|v| v.as_str().and_then(Lang::parse)).unwrap_or(Lang::En);
            kind_title(lang, &titles, kind)
        });
        let proxies = crate::client_addr::TrustedProxies::parse(&settings.http.trusted_proxies)?;
        let sessions = session::Sessions::new(public_url.starts_with("https://"), proxies);
        let two_factor_required = settings
            .ui
            .two_factor_required_for
            .iter()
            .map(|r| okno_domain::model::Role::parse(r))
            .collect::<okno_domain::Result<Vec<_>>>()
            .map_err(|e| {
                okno_domain::Error::invalid("invalid_setting", format!("ui.two_factor_required_for: {}", e.message))
            })?;
        Ok(Ui {
            env,
            sessions,
            two_factor_required,
            contact_url: settings.ui.contact_url.clone(),
            canned: canned::CannedStore::new(&settings.data_dir),
            feed: live::Feed::new(),
            notice: None,
        })
    }

    fn render_with(&self, name: &str, ctx: Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(&ctx)) {
            Ok(html) => {
                let mut resp = Html(html).into_response();
                let h = resp.headers_mut();
                // Pages hold personal data: not cached, not framed, scripts only from okno.
                h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
                h.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
                h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
                h.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("same-origin"));
                h.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static(CSP));
                resp
            }
            Err(e) => {
                tracing::error!(template = name, error = %e, "a UI template failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be drawn; the server log has the details")
                    .into_response()
            }
        }
    }

    fn notice_view(&self, lang: Lang) -> Value {
        self.notice.as_ref().map(|n| n.view(lang)).unwrap_or(Value::Null)
    }

    /// A page outside the logged-in layout (the login form).
    pub fn render_bare(&self, name: &str, lang: Lang, mut ctx: Value) -> Response {
        ctx["lang"] = json!(lang.code());
        ctx["notice"] = self.notice_view(lang);
        self.render_with(name, ctx)
    }

    /// A page of the logged-in layout: `ctx` plus who is logged in.
    pub fn render(&self, name: &str, s: &Session, mut ctx: Value) -> Response {
        ctx["lang"] = json!(s.lang.code());
        ctx["csrf"] = json!(s.csrf);
        ctx["me"] = json!({
            "login": s.operator.login,
            "role": s.operator.role.as_str(),
            "admin": s.operator.role.allows(Permission::Configure),
        });
        ctx["notice"] = self.notice_view(s.lang);
        self.render_with(name, ctx)
    }
}

/// Messages indexed per slice of the search backfill, and per batch of the trigram index.
const SEARCH_SLICE: u32 = 2_000;

/// The UI's upkeep, started with the server:
///
/// ```text
///  once:          index the text of messages written before the search index existed
///                 (a slice per transaction, so other writes go in between)
///  every second:  SQLite: add the messages written since to the trigram index, in one batch
///  every hour:    remove expired sessions (a login removes them too)
/// ```
pub fn spawn_upkeep(state: &crate::AppState) {
    let (store, stop) = (state.engine.store.clone(), state.shutdown.clone());
    tokio::spawn(async move {
        let pause = |secs| {
            let stop = stop.clone();
            async move {
                tokio::select! {
                    _ = stop.cancelled() => false,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(secs)) => true,
                }
            }
        };
        let mut indexed = 0u64;
        loop {
            match store.backfill_search(SEARCH_SLICE).await {
                Ok(0) => break,
                Ok(n) => indexed += n,
                Err(e) => {
                    tracing::warn!(error = %e.message, "indexing old messages for search failed; trying again");
                    if !pause(5).await {
                        return;
                    }
                }
            }
            if stop.is_cancelled() {
                return;
            }
        }
        if indexed > 0 {
            tracing::info!(messages = indexed, "older messages indexed for search");
        }
        let mut swept_at: Option<std::time::Instant> = None;
        loop {
            // A full batch means more are waiting: go on at once.
            match store.catch_up_search_index(SEARCH_SLICE).await {
                Ok(n) if n == u64::from(SEARCH_SLICE) => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e.message, "updating the search index failed; trying again"),
            }
            if swept_at.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(3600)) {
                if let Err(e) = store.sweep_sessions().await {
                    tracing::warn!(error = %e.message, "sweeping expired sessions failed");
                }
                swept_at = Some(std::time::Instant::now());
            }
            if !pause(1).await {
                return;
            }
        }
    });
}

/// A urlencoded form body.
#[derive(Default)]
pub struct Form(HashMap<String, String>);

impl Form {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// A non-empty, trimmed field.
    pub fn field(&self, k: &str) -> Option<String> {
        self.get(k).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = crate::error::RawBody::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        Ok(Form(url::form_urlencoded::parse(&body.0).into_owned().collect()))
    }
}

/// Everything under `/login`, `/logout`, `/ui`.
pub fn routes(max_attachment_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/inbox") }))
        .route("/login", get(session::login_page).post(session::login))
        .route("/login/code", get(two_factor::page).post(two_factor::submit))
        .route("/logout", post(session::logout))
        .route("/setup", get(setup::setup_page).post(setup::setup))
        .route("/lang/{code}", get(set_lang))
        .route("/ui/assets/app.js", get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }))
        .route("/ui/assets/app.css", get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }))
        .route("/ui", get(|| async { Redirect::to("/ui/inbox") }))
        .route("/ui/inbox", get(inbox::inbox))
        .route("/ui/events", get(events::page))
        .route("/ui/live", get(live::events))
        .route("/ui/conversations/{id}", get(inbox::conversation))
        .route("/ui/conversations/{id}/reply", post(inbox::reply))
        .route("/ui/conversations/{id}/typing", post(inbox::typing))
        .route("/ui/conversations/{id}/update", post(inbox::update))
        .route("/ui/messages/{id}/retry", post(inbox::retry))
        .route("/ui/attachments", post(inbox::upload).layer(axum::extract::DefaultBodyLimit::max(max_attachment_bytes)))
        .route("/ui/attachments/{id}", get(inbox::download))
        .route("/ui/contacts", get(contacts::list))
        .route("/ui/contacts.csv", get(contacts::export))
        .route("/ui/contacts/{id}", get(contacts::card))
        .route("/ui/contacts/{id}/merge", post(contacts::merge))
        .route("/ui/admin/channels", get(admin::channels).post(admin::create_channel))
        .route("/ui/admin/tokens", get(admin::tokens).post(admin::create_token))
        .route("/ui/admin/tokens/{id}/revoke", post(admin::revoke_token))
        .route("/ui/admin/webhooks", get(admin::webhooks))
        .route("/ui/admin/connectors", get(admin::connectors).post(admin::create_connector))
        .route("/ui/admin/connectors/{id}/{action}", post(admin::change_connector))
        .route("/ui/admin/rules", get(admin::rules).post(admin::preview_rule))
        .route("/ui/admin/audit", get(admin::audit_log))
        .route("/ui/admin/canned", get(canned::page).post(canned::change))
        .route("/ui/admin/operators", get(admin::operators).post(admin::create_operator))
        .route("/ui/admin/operators/change", post(admin::change_operator))
        .route("/ui/account", get(account::page))
        .route("/ui/account/password", post(account::change_password))
        .route("/ui/account/two-factor", post(two_factor::change))
        .route("/ui/broadcasts", get(broadcasts::page).post(broadcasts::create))
        .route("/ui/broadcasts/{id}", get(broadcasts::report))
        .route("/ui/broadcasts/{id}/{action}", post(broadcasts::control))
        .route("/ui/reports", get(reports::page))
        .route("/ui/reports.csv", get(reports::csv))
        .route("/ui/admin/bots", get(admin::bots).post(admin::put_bot))
        // Contacts created and edited by hand, merged by search, linked to a messenger.
        .route("/ui/contacts/new", get(contacts::new_form).post(contacts::create))
        .route("/ui/contacts/{id}/edit", get(contacts::edit_form).post(contacts::save))
        .route("/ui/contacts/{id}/link", post(contacts::link))
        .route("/ui/contacts/{id}/merge-search", get(contacts::merge_search))
        .route("/ui/broadcasts/new", get(broadcasts::new_form))
        // Events, tasks and surveys.
        .route("/ui/events/{id}", get(events::detail))
        .route("/ui/tasks", get(tasks::page).post(tasks::create))
        .route("/ui/tasks/{id}", get(tasks::detail))
        .route("/ui/tasks/{id}/release", post(tasks::release))
        .route("/ui/surveys", get(surveys::list))
        .route("/ui/surveys/{id}", get(surveys::detail))
        .route("/ui/surveys/{id}/start", post(surveys::start))
        .route("/ui/surveys/{id}/results.csv", get(surveys::results_csv))
}

fn asset(body: &'static str, mime: &'static str) -> Response {
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

/// `GET /lang/{ru|en}`: remembers the language and goes back.
async fn set_lang(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path(code): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(lang) = Lang::parse(&code) else {
        return (StatusCode::NOT_FOUND, "unknown language").into_response();
    };
    // Signed in: kept with the account too, so every browser the operator uses shows it.
    if let Ok(Some((operator, _))) = session::signed_in(&state, &headers).await {
        if let Err(e) = state.engine.store.set_operator_lang(&operator.login, lang.code()).await {
            tracing::warn!(error = %e, "could not keep the operator's language");
        }
    }
    // Back to the page the link was on, if it was ours.
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .map(|u| format!("{}{}", u.path(), u.query().map(|q| format!("?{q}")).unwrap_or_default()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/ui/inbox".into());
    let cookie = format!("okno_lang={}; Path=/; SameSite=Lax; Max-Age=31536000", lang.code());
    let mut resp = Redirect::to(&back).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// An error page in the layout: not found, forbidden, invalid input.
pub fn error_page(ui: &Ui, s: &Session, e: okno_domain::Error) -> Response {
    let status = crate::error::status_of(e.kind);
    let message = if e.kind == okno_domain::ErrorKind::Internal {
        tracing::error!(code = %e.code, message = %e.message, "internal error in the UI");
        i18n::t(s.lang, "error_title")
    } else {
        e.message
    };
    let mut resp = ui.render(
        "error.html",
        s,
        json!({"title": i18n::t(s.lang, "error_title"), "message": message, "code": e.code}),
    );
    *resp.status_mut() = status;
    resp
}

/// The error page when the operator's role lacks `p`; `None` when it has it.
pub fn refuse(ui: &Ui, s: &Session, p: Permission) -> Option<Response> {
    (!s.role().allows(p)).then(|| {
        error_page(
            ui,
            s,
            okno_domain::Error::new(okno_domain::ErrorKind::Forbidden, "forbidden", i18n::t(s.lang, "forbidden")),
        )
    })
}

/// The view of a channel: what a row or a message shows about it.
pub fn channel_view(ch: Option<&Channel>) -> Value {
    match ch {
        Some(c) => json!({
            "id": c.id, "name": c.name, "kind": c.kind.as_str(), "status": c.status,
            "username": c.info.get("username"),
        }),
        None => json!({"id": "", "name": "?", "kind": "unknown"}),
    }
}

pub fn channel_map(channels: &[Channel]) -> HashMap<&str, &Channel> {
    channels.iter().map(|c| (c.id.as_str(), c)).collect()
}

/// `14:05` today, `12.03 14:05` this year, else `12.03.2025`.
pub fn short_time(ms: Millis) -> String {
    let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else { return String::new() };
    let now = jiff::Timestamp::now();
    let (t, n) = (ts.to_zoned(jiff::tz::TimeZone::UTC), now.to_zoned(jiff::tz::TimeZone::UTC));
    if t.date() == n.date() {
        t.strftime("%H:%M").to_string()
    } else if t.year() == n.year() {
        t.strftime("%d.%m %H:%M").to_string()
    } else {
        t.strftime("%d.%m.%Y").to_string()
    }
}

/// A message as the thread shows it, its author and any button press named as people read
/// them ([`authors`]).
pub fn message_view(m: &Message, channels: &HashMap<&str, &Channel>, names: &authors::Names, lang: Lang) -> Value {
    let author = m.author.clone().unwrap_or_default();
    json!({
        "id": m.id,
        "dir": m.direction.as_str(),
        "text": m.text,
        "status": m.status.as_str(),
        "error": m.error,
        "time": short_time(m.created_at),
        "iso": okno_domain::time::to_rfc3339(m.created_at),
        "author": names.author(lang, m).map(|a| a.view()),
        "by_rule": author.starts_with("event:"),
        "pressed": authors::pressed(lang, m),
        "edited": m.edited,
        "attachments": m.attachments.iter().map(|a| json!({"name": a.name, "size": a.size, "url": format!("/ui/attachments/{}", a.id), "state": a.state})).collect::<Vec<_>>(),
        "buttons": m.buttons.iter().map(|r| r.iter().map(|b| b.text.clone()).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "channel": channel_view(channels.get(m.channel_id.as_str()).copied()),
    })
}

/// Shared state for the UI, reachable from [`AppState`].
pub type SharedUi = Arc<Ui>;
