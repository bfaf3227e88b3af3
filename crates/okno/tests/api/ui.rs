//! The operator web UI: sessions, CSRF, login limits and masking over plain HTTP, and the
//! main flows in a real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`; never downloaded by a test).
//!
//! Without a browser the browser tests are skipped with a note, unless `UI_TEST_REQUIRED=1`
//! (set by `.ci/run`), which makes a missing browser a failure. `SCREENSHOTS=1` saves
//! screenshots of the main pages to `docs/screenshots/`.

use std::time::Duration;

use okno_domain::model::Role;
use okno_testkit::telegram::TelegramSim;
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Value};

use super::SECRET;

// Contacts, broadcasts and administration pages, with this module's client and helpers.
mod channel_forms;
mod contacts;
mod pages;
mod two_factor;

const TOKEN: &str = "123456:ABC-ui-test-token";
pub(super) const PASSWORD: &str = "correct horse battery";

pub(super) async fn operator(app: &TestApp, login: &str, role: Role) {
    let hash = okno_server::ui::hash_password(PASSWORD).unwrap();
    app.running().engine.store.create_operator(login, role, &hash).await.unwrap();
}

// --- plain HTTP: a cookie-carrying client that does not follow redirects ------------------

#[derive(Clone)]
pub(super) struct Client {
    pub(super) http: reqwest::Client,
    base: String,
    pub(super) cookies: std::collections::BTreeMap<String, String>,
}

pub(super) struct Page {
    pub(super) status: u16,
    pub(super) location: Option<String>,
    pub(super) body: String,
}

impl Client {
    pub(super) fn new(app: &TestApp) -> Client {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Client { http, base: app.url.clone(), cookies: Default::default() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub(super) async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let resp = req.header("cookie", self.cookie_header()).send().await.unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let first = c.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        Page { status, location, body: resp.text().await.unwrap() }
    }

    pub(super) async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub(super) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    pub(super) async fn post_owned(&mut self, path: &str, form: &[(&str, String)]) -> Page {
        let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.post(path, &f).await
    }

    /// The login form's one-time token (and its cookie).
    async fn login_token(&mut self) -> String {
        let page = self.get("/login").await;
        hidden(&page.body, "csrf")
    }

    pub(super) async fn login(&mut self, login: &str, password: &str) -> Page {
        let csrf = self.login_token().await;
        self.post("/login", &[("csrf", &csrf), ("login", login), ("password", password)]).await
    }
}

/// Posts a form of owned values.
async fn post_form(c: &mut Client, path: &str, form: &[(&str, String)]) -> Page {
    c.post_owned(path, form).await
}

/// The value of the first hidden input named `name`.
pub(super) fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no `{name}` field in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_the_sixth_attempt_is_limited_even_when_right() {
    let app = TestApp::spawn().await;
    operator(&app, "anna", Role::Operator).await;
    let mut c = Client::new(&app);
    for _ in 0..5 {
        let p = c.login("anna", "wrong password").await;
        assert_eq!(p.status, 401, "{}", p.body);
        assert!(p.body.contains("Wrong login or password"));
    }
    let p = c.login("anna", PASSWORD).await;
    assert_eq!(p.status, 429, "the limit holds even for the right password");
    assert!(p.body.contains("Too many failed attempts"));
    assert!(!c.cookies.contains_key("okno_session"));

    let mut other = Client::new(&app);
    operator(&app, "boris", Role::Operator).await;
    let p = other.login("boris", PASSWORD).await;
    assert_eq!((p.status, p.location.as_deref()), (303, Some("/ui/inbox")), "other logins are not blocked");
}

/// Logs in with `X-Forwarded-For: addr`, the login form fetched the same way.
async fn login_from(c: &mut Client, addr: &str, login: &str, password: &str) -> Page {
    let page = c.send(c.http.get(format!("{}/login", c.base)).header("x-forwarded-for", addr)).await;
    let csrf = hidden(&page.body, "csrf");
    let form = [("csrf", csrf.as_str()), ("login", login), ("password", password)];
    c.send(c.http.post(format!("{}/login", c.base)).header("x-forwarded-for", addr).form(&form)).await
}

/// okno behind a reverse proxy on this computer (the tests' connections come from 127.0.0.1).
async fn behind_a_proxy() -> TestApp {
    TestApp::spawn_on(okno_testkit::TestDb::sqlite(), |s| s.http.trusted_proxies = vec!["127.0.0.0/8".into()]).await
}

#[tokio::test]
async fn behind_a_trusted_proxy_a_guesser_cannot_lock_out_operators_at_other_addresses() {
    let app = behind_a_proxy().await;
    operator(&app, "anna", Role::Operator).await;
    operator(&app, "boris", Role::Operator).await;
    let mut attacker = Client::new(&app);
    for i in 0..5 {
        let p = login_from(&mut attacker, "198.51.100.1, 203.0.113.66", "anna", "guess").await;
        assert_eq!(p.status, 401, "attempt {i}");
    }
    let p = login_from(&mut attacker, "203.0.113.66", "anna", PASSWORD).await;
    assert_eq!(p.status, 429, "the guesser's address is limited for anna, even with the right password");
    for i in 0..15 {
        let p = login_from(&mut attacker, "203.0.113.66", &format!("user{i}"), "guess").await;
        assert_eq!(p.status, 401, "user{i}");
    }
    let p = login_from(&mut attacker, "203.0.113.66", "carl", "guess").await;
    assert_eq!(p.status, 429, "20 failures from one address limit it for every login");

    // Anna and Boris, at their own addresses behind the same proxy, sign in.
    let mut anna = Client::new(&app);
    let p = login_from(&mut anna, "198.51.100.10", "anna", PASSWORD).await;
    assert_eq!((p.status, p.location.as_deref()), (303, Some("/ui/inbox")));
    let mut boris = Client::new(&app);
    assert_eq!(login_from(&mut boris, "198.51.100.11", "boris", PASSWORD).await.status, 303);

    // Failures and locks are in the audit log, with the client's address.
    let audit = app.get("/api/v1/audit?limit=100").await;
    let rows = audit.body["items"].as_array().unwrap();
    let failed = rows.iter().filter(|r| r["action"] == "operator.login_failed").count();
    assert_eq!(failed, 20);
    let locked: Vec<&Value> = rows.iter().filter(|r| r["action"] == "operator.login_locked").collect();
    assert_eq!(locked.len(), 2, "{locked:?}");
    assert!(locked.iter().all(|r| r["actor"] == "address:203.0.113.66" && r["detail"]["addr"] == "203.0.113.66"));
    let limits: Vec<&str> = locked.iter().map(|r| r["detail"]["limit"].as_str().unwrap()).collect();
    assert!(limits.contains(&"login+addr") && limits.contains(&"addr"), "{limits:?}");
}

#[tokio::test]
async fn a_guesser_with_many_addresses_does_not_lock_an_operator_out_where_they_signed_in_before() {
    let app = behind_a_proxy().await;
    operator(&app, "anna", Role::Operator).await;
    let mut anna = Client::new(&app);
    assert_eq!(login_from(&mut anna, "198.51.100.10", "anna", PASSWORD).await.status, 303);
    let mut attacker = Client::new(&app);
    for i in 1..=20 {
        let p = login_from(&mut attacker, &format!("203.0.113.{i}"), "anna", "guess").await;
        assert_eq!(p.status, 401, "attempt {i}");
    }
    let p = login_from(&mut attacker, "203.0.113.99", "anna", PASSWORD).await;
    assert_eq!(p.status, 429, "the account is limited at addresses it never signed in from");
    let mut again = Client::new(&app);
    let p = login_from(&mut again, "198.51.100.10", "anna", PASSWORD).await;
    assert_eq!(p.status, 303, "but not at the address anna signed in from before");
}

#[tokio::test]
async fn a_guesser_rotating_ipv6_addresses_in_one_network_is_limited_as_one_address() {
    let app = behind_a_proxy().await;
    let mut attacker = Client::new(&app);
    for i in 0..20 {
        let p = login_from(&mut attacker, &format!("2001:db8:1:2::{i:x}"), &format!("user{i}"), "guess").await;
        assert_eq!(p.status, 401, "attempt {i}");
    }
    let p = login_from(&mut attacker, "2001:db8:1:2:ffff::1", "someone", "guess").await;
    assert_eq!(p.status, 429, "the /64 is one client");
    let p = login_from(&mut attacker, "2001:db8:1:3::1", "someone", "guess").await;
    assert_eq!(p.status, 401, "the next network is another");
}

#[tokio::test]
async fn a_direct_peers_forwarded_for_is_ignored() {
    let app = TestApp::spawn().await;
    operator(&app, "anna", Role::Operator).await;
    let mut attacker = Client::new(&app);
    for i in 0..5 {
        let p = login_from(&mut attacker, &format!("203.0.113.{i}"), "anna", "guess").await;
        assert_eq!(p.status, 401);
    }
    let p = login_from(&mut attacker, "198.51.100.77", "anna", PASSWORD).await;
    assert_eq!(p.status, 429, "a made-up address does not escape the limit of the real one");
    let audit = app.get("/api/v1/audit").await;
    let failed =
        audit.body["items"].as_array().unwrap().iter().find(|r| r["action"] == "operator.login_failed").cloned();
    assert_eq!(failed.unwrap()["detail"]["addr"], "127.0.0.1");
}

#[tokio::test]
async fn the_session_cookie_is_httponly_samesite_and_logout_ends_it() {
    let app = TestApp::spawn().await;
    operator(&app, "anna", Role::Operator).await;
    let mut c = Client::new(&app);
    assert_eq!(c.get("/ui/inbox").await.location.as_deref(), Some("/login"), "pages need a login");

    let csrf = c.login_token().await;
    let resp = c
        .http
        .post(format!("{}/login", app.url))
        .header("cookie", c.cookie_header())
        .form(&[("csrf", csrf.as_str()), ("login", "anna"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let set: Vec<String> =
        resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let session = set.iter().find(|c| c.starts_with("okno_session=")).expect("a session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"), "{session}");
    let value = session.split(';').next().unwrap().trim_start_matches("okno_session=").to_string();
    c.cookies.insert("okno_session".into(), value.clone());

    let raw = c.http.get(format!("{}/ui/inbox", app.url)).header("cookie", c.cookie_header()).send().await.unwrap();
    let header = |n: &str| raw.headers().get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("cache-control"), "no-store", "pages with personal data are not cached");
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    let inbox = c.get("/ui/inbox").await;
    assert_eq!(inbox.status, 200);
    assert!(inbox.body.contains("anna"));
    let token = hidden(&inbox.body, "csrf");
    let out = c.post("/logout", &[("csrf", &token)]).await;
    assert_eq!(out.location.as_deref(), Some("/login"));
    assert!(!c.cookies.contains_key("okno_session"), "the cookie is cleared");

    // The old cookie, replayed, no longer opens anything.
    c.cookies.insert("okno_session".into(), value);
    assert_eq!(c.get("/ui/inbox").await.location.as_deref(), Some("/login"));
    // Nor does a forged one.
    c.cookies.insert("okno_session".into(), "616e6e61.99999999999999.00.deadbeef".into());
    assert_eq!(c.get("/ui/inbox").await.location.as_deref(), Some("/login"));
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_from_another_site_are_refused() {
    let (app, _sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    let conv = super::inbound_conversation(&app, &ch, "u-csrf").await;
    let mut c = Client::new(&app);

    // The login form itself needs its token.
    let p = c.post("/login", &[("login", "anna"), ("password", PASSWORD)]).await;
    assert_eq!(p.status, 403);
    assert_eq!(c.login("anna", PASSWORD).await.status, 303);

    let path = format!("/ui/conversations/{conv}/update");
    let p = c.post(&path, &[("action", "resolve")]).await;
    assert_eq!(p.status, 403, "no token");
    let p = c.post(&path, &[("action", "resolve"), ("csrf", "0123456789abcdef0123456789abcdef")]).await;
    assert_eq!(p.status, 403, "a wrong token");
    let page = c.get(&format!("/ui/conversations/{conv}")).await;
    let token = hidden(&page.body, "csrf");
    let req = c
        .http
        .post(format!("{}{path}", app.url))
        .header("origin", "https://evil.example")
        .form(&[("action", "resolve"), ("csrf", token.as_str())]);
    assert_eq!(c.send(req).await.status, 403, "the right token from another site");
    assert_eq!(app.get(&format!("/api/v1/conversations/{conv}")).await.body["status"], "open", "nothing changed");

    let p = c.post(&path, &[("action", "resolve"), ("csrf", &token)]).await;
    assert_eq!(p.status, 303);
    assert_eq!(app.get(&format!("/api/v1/conversations/{conv}")).await.body["status"], "resolved");
}

#[tokio::test]
async fn every_page_renders_for_an_administrator_in_both_languages() {
    every_page_renders(TestApp::spawn().await).await;
}

#[tokio::test]
async fn every_page_renders_on_postgresql_too() {
    let Some(db) = okno_testkit::TestDb::postgres().await else { return };
    every_page_renders(TestApp::spawn_on(db, |_| {}).await).await;
}

async fn every_page_renders(app: TestApp) {
    let sink = okno_testkit::Sink::start(SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", sink.url), SECRET).await;
    operator(&app, "admin", Role::Admin).await;
    let conv = super::inbound_conversation(&app, &ch, "u-pages").await;
    let contact =
        app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"]["id"].as_str().unwrap().to_string();
    let w = app.post("/api/v1/webhooks", json!({"url": "http://127.0.0.1:9/x", "events": ["message.received"], "secret": "0123456789abcdef-webhook"})).await;
    assert_eq!(w.status, 201, "{w:?}");
    let mut c = Client::new(&app);
    assert_eq!(c.login("admin", PASSWORD).await.status, 303);
    let pages = [
        "/ui/inbox".to_string(),
        "/ui/inbox?status=open&assignee=mine&q=User".into(),
        format!("/ui/inbox?channel={ch}&label=x"),
        format!("/ui/conversations/{conv}"),
        "/ui/contacts?q=User".into(),
        format!("/ui/contacts/{contact}"),
        "/ui/admin/channels".into(),
        "/ui/admin/tokens".into(),
        "/ui/admin/webhooks".into(),
        "/ui/admin/rules".into(),
        "/ui/admin/audit".into(),
        "/ui/admin/bots".into(),
        "/ui/reports".into(),
        "/ui/admin/canned".into(),
        "/ui/admin/operators".into(),
        "/ui/broadcasts".into(),
        "/ui/account".into(),
        "/ui/reports?days=366".into(),
    ];
    for lang in ["en", "ru"] {
        c.cookies.insert("okno_lang".into(), lang.into());
        for p in &pages {
            let page = c.get(p).await;
            assert_eq!(page.status, 200, "{p} ({lang}): {}", page.body);
            assert!(page.body.contains(&format!("<html lang=\"{lang}\">")), "{p}");
        }
    }
    assert!(c.get("/ui/inbox").await.body.contains("Входящие"), "Russian texts");
    let bad = c.get("/ui/conversations/no-such-id").await;
    assert_eq!(bad.status, 404);
    let bad = c.get("/ui/inbox?status=nonsense").await;
    assert_eq!(bad.status, 400, "a clear error, not a panic");

    // Rule preview renders the template without saving anything.
    let page = c.get("/ui/admin/rules").await;
    let token = hidden(&page.body, "csrf");
    let rule = r#"{"name": "paid", "event": "payment.received", "recipients": [{"external_id": "{{ data.client }}"}], "template": "Оплачено {{ data.amount }} ₽"}"#;
    let p = c
        .post("/ui/admin/rules", &[("csrf", &token), ("rule", rule), ("data", r#"{"client": "1c-7", "amount": 1500}"#)])
        .await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("Оплачено 1500 ₽"), "{}", p.body);
    assert!(app.get("/api/v1/rules").await.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_operator_starts_a_broadcast_watches_it_and_cancels_another() {
    let app = TestApp::spawn().await;
    let sink = okno_testkit::Sink::start(SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", sink.url), SECRET).await;
    for n in 0..3 {
        let conv = super::inbound_conversation(&app, &ch, &format!("u-bc-{n}")).await;
        let contact =
            app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"]["id"].as_str().unwrap().to_string();
        app.patch(&format!("/api/v1/contacts/{contact}"), json!({"groups": ["clients"]})).await;
    }
    operator(&app, "anna", Role::Operator).await;
    let mut c = Client::new(&app);
    assert_eq!(c.login("anna", PASSWORD).await.status, 303);
    let page = c.get("/ui/broadcasts").await;
    assert_eq!(page.status, 200);
    let csrf = hidden(&page.body, "csrf");
    // The audience is counted first; only then is there a start button.
    assert!(!page.body.contains("id=\"bc-start\""), "no start before a count");
    let form = |action: &'static str, text: &'static str, counted: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("action", action.to_string()),
            ("name", "Акция".to_string()),
            ("groups", "clients".to_string()),
            ("text", text.to_string()),
            ("unsubscribe", String::new()),
            ("counted", counted.to_string()),
        ]
    };
    let counted = post_form(&mut c, "/ui/broadcasts", &form("count", "Скидка 10%", "")).await;
    assert_eq!(counted.status, 200, "{}", counted.body);
    assert!(counted.body.contains("<b id=\"count\">3</b>"), "{}", counted.body);
    assert!(counted.body.contains("id=\"bc-start\""));
    assert!(counted.body.contains("value=\"Скидка 10%\"") || counted.body.contains(">Скидка 10%</textarea>"), "kept");
    // A template error is shown on the form, which keeps what was typed.
    let bad = post_form(&mut c, "/ui/broadcasts", &form("start", "{{ contact.name ", "3")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("template error at line 1"), "{}", bad.body);
    assert!(bad.body.contains("value=\"Акция\""));
    // A start with a count that is no longer true shows the new count instead.
    let stale = post_form(&mut c, "/ui/broadcasts", &form("start", "Скидка 10%", "2")).await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(stale.body.contains("<b id=\"count\">3</b>"));
    let made = post_form(&mut c, "/ui/broadcasts", &form("start", "Скидка 10%", "3")).await;
    assert_eq!(made.status, 303, "{}", made.body);
    let at = made.location.unwrap();
    okno_testkit::eventually(10, || async {
        (sink.accepted().iter().filter(|r| r.body["text"] == "Скидка 10%").count() == 3).then_some(())
    })
    .await
    .expect("the broadcast reaches the group");
    let report = okno_testkit::eventually(10, || async {
        let p = c.clone().get(&at).await;
        p.body.contains("st-done").then_some(p)
    })
    .await
    .expect("the report shows it done");
    assert!(report.body.contains("3 · "), "{}", report.body);
    assert!(report.body.contains("id=\"bc-audience\">clients<"), "{}", report.body);
    // The broadcast results report counts it.
    let csv = c.get("/ui/reports.csv?report=broadcasts").await.body;
    let id = at.rsplit('/').next().unwrap();
    assert!(
        csv.starts_with("broadcast,id,created,status,total,sent,failed,waiting,opted_out,answered,unsubscribed\r\n")
    );
    let line = csv.lines().find(|l| l.contains(id)).unwrap_or_else(|| panic!("{csv}"));
    assert!(line.starts_with("Акция,") && line.ends_with(",done,3,3,0,0,0,0,0"), "{line}");
    assert!(c.get("/ui/reports").await.body.contains("id=\"report-broadcasts\""));
    // A scheduled one is cancelled from its page.
    let later = c
        .post(
            "/ui/broadcasts",
            &[
                ("csrf", &csrf),
                ("action", "start"),
                ("counted", "3"),
                ("name", "Позже"),
                ("groups", "clients"),
                ("text", "Потом"),
                ("send_at", "2099-01-01T00:00:00Z"),
            ],
        )
        .await;
    let at = later.location.unwrap();
    let page = c.get(&at).await;
    assert!(page.body.contains("bc-cancel"), "{}", page.body);
    let id = at.rsplit('/').next().unwrap();
    let done = c.post(&format!("/ui/broadcasts/{id}/cancel"), &[("csrf", &csrf)]).await;
    assert_eq!(done.status, 303);
    assert_eq!(app.get(&format!("/api/v1/broadcasts/{id}")).await.body["status"], "cancelled");
    let again = c.post(&format!("/ui/broadcasts/{id}/cancel"), &[("csrf", &csrf)]).await;
    assert_eq!(again.status, 409, "{}", again.body);
    let forged = c.post(&format!("/ui/broadcasts/{id}/pause"), &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_notes_stay_with_operators_and_a_snoozed_conversation_wakes_up() {
    let app = TestApp::spawn().await;
    let sink = okno_testkit::Sink::start(SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", sink.url), SECRET).await;
    let conv = super::inbound_conversation(&app, &ch, "u-notes").await;
    // Notes through the API: kept, listed, never sent.
    let r = app
        .post(&format!("/api/v1/conversations/{conv}/notes"), json!({"text": "Клиент VIP, звонить после 18:00"}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(app.post(&format!("/api/v1/conversations/{conv}/notes"), json!({"text": "  "})).await.status, 400);
    assert_eq!(app.post("/api/v1/conversations/nope/notes", json!({"text": "x"})).await.status, 404);
    // And through the page: the note button keeps it private.
    operator(&app, "anna", Role::Operator).await;
    let mut c = Client::new(&app);
    assert_eq!(c.login("anna", PASSWORD).await.status, 303);
    let page = c.get(&format!("/ui/conversations/{conv}")).await;
    let csrf = hidden(&page.body, "csrf");
    let r = c
        .post(
            &format!("/ui/conversations/{conv}/reply"),
            &[("csrf", &csrf), ("text", "Обещал перезвонить"), ("as_note", "1")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let notes = app.get(&format!("/api/v1/conversations/{conv}/notes")).await.body;
    let texts: Vec<_> =
        notes["items"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(texts, vec!["Клиент VIP, звонить после 18:00", "Обещал перезвонить"]);
    assert_eq!(notes["items"][1]["author"], "operator:anna");
    let page = c.get(&format!("/ui/conversations/{conv}")).await;
    assert!(page.body.contains("msg note") && page.body.contains("Обещал перезвонить"), "{}", page.body);
    let messages = app.get(&format!("/api/v1/conversations/{conv}/messages")).await.body;
    assert_eq!(messages["items"].as_array().unwrap().len(), 1, "a note is not a message");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(sink.received().is_empty(), "nothing was sent");

    // Snoozed for a moment through the API: pending, then open again by itself.
    let at = okno_domain::time::to_rfc3339(okno_domain::time::now_ms() + 1_500);
    let r = app.patch(&format!("/api/v1/conversations/{conv}"), json!({"snoozed_until": at})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!((r.body["status"].as_str(), r.body["snoozed_until"].is_string()), (Some("pending"), true));
    let woke = okno_testkit::eventually(10, || async {
        let v = app.get(&format!("/api/v1/conversations/{conv}")).await.body;
        (v["status"] == "open").then_some(v)
    })
    .await
    .expect("the snoozed conversation opens again at its time");
    assert!(woke["snoozed_until"].is_null());
    // Snoozed for a day from the page; the person writes: open at once.
    let r = c.post(&format!("/ui/conversations/{conv}/update"), &[("csrf", &csrf), ("action", "snooze_1d")]).await;
    assert_eq!(r.status, 303);
    assert!(c.get(&format!("/ui/conversations/{conv}")).await.body.contains("conv-snoozed"));
    assert_eq!(app.get(&format!("/api/v1/conversations/{conv}")).await.body["status"], "pending");
    let again = app.inbound(&ch, SECRET, &super::message("u-notes-2", "u-notes", "Есть новости?")).await;
    assert_eq!(again.status, 200);
    let v = app.get(&format!("/api/v1/conversations/{conv}")).await.body;
    assert_eq!((v["status"].as_str(), v["snoozed_until"].is_null()), (Some("open"), true), "{v}");
    let past =
        app.patch(&format!("/api/v1/conversations/{conv}"), json!({"snoozed_until": "2001-01-01T00:00:00Z"})).await;
    assert_eq!((past.status, past.body["error"]["code"].as_str()), (400, Some("invalid_snooze")));
}

#[tokio::test]
async fn the_language_an_operator_chooses_follows_them_to_another_browser() {
    let app = TestApp::spawn().await;
    operator(&app, "olga", Role::Operator).await;
    let mut first = Client::new(&app);
    assert_eq!(first.login("olga", PASSWORD).await.status, 303);
    first.cookies.insert("okno_lang".into(), "en".into());
    assert!(first.get("/ui/inbox").await.body.contains("<html lang=\"en\">"));
    assert_eq!(first.get("/lang/ru").await.status, 303);
    assert!(first.get("/ui/inbox").await.body.contains("<html lang=\"ru\">"));
    // Another browser, which has never chosen: Russian after signing in, as the account says.
    let mut second = Client::new(&app);
    second.cookies.insert("okno_lang".into(), "en".into());
    assert_eq!(second.login("olga", PASSWORD).await.status, 303);
    assert!(second.get("/ui/inbox").await.body.contains("<html lang=\"ru\">"));
    // Switching back there is kept too.
    second.get("/lang/en").await;
    assert!(first.get("/ui/inbox").await.body.contains("<html lang=\"en\">"));
    // Signed out, the switch only sets the browser's cookie.
    let mut stranger = Client::new(&app);
    assert_eq!(stranger.get("/lang/ru").await.status, 303);
    assert_eq!(stranger.cookies.get("okno_lang").map(String::as_str), Some("ru"));
}

#[tokio::test]
async fn an_operator_without_configure_does_not_reach_administration() {
    let app = TestApp::spawn().await;
    operator(&app, "olga", Role::Operator).await;
    let mut c = Client::new(&app);
    assert_eq!(c.login("olga", PASSWORD).await.status, 303);
    assert_eq!(c.get("/ui/admin/channels").await.status, 403);
    assert!(!c.get("/ui/inbox").await.body.contains("/ui/admin/channels"), "no link either");
}

#[tokio::test]
async fn the_api_masks_phones_and_emails_for_a_restricted_token() {
    let (app, _sink, ch) = super::app_with_channel().await;
    let contact = app
        .post("/api/v1/contacts", json!({"external_id": "1c-42", "name": "Иван Петров", "phone": "+79990001122", "email": "ivan@example.com"}))
        .await;
    let id = contact.body["id"].as_str().unwrap().to_string();
    let inbound = json!({"message_id": "m-1", "user": {"id": "u-1", "name": "Иван Петров", "phone": "+79990001122"}, "text": "hello"});
    assert_eq!(app.inbound(&ch, SECRET, &inbound).await.status, 200);
    let restricted = app.token_for(Role::Restricted).await;

    let seen = app.call("GET", &format!("/api/v1/contacts/{id}"), None, Some(&restricted)).await;
    assert_eq!(seen.status, 200);
    assert_eq!(seen.body["phone"], "+7999•••••22");
    assert_eq!(seen.body["email"], "i•••@example.com");
    assert_eq!(seen.body["name"], "Иван Петров");
    let all = app.call("GET", "/api/v1/contacts?q=Иван", None, Some(&restricted)).await;
    assert!(!all.body.to_string().contains("0001122"), "{all:?}");
    assert!(!all.body["items"].as_array().unwrap().is_empty(), "found by name");
    let by_digits = app.call("GET", "/api/v1/contacts?q=0001122", None, Some(&restricted)).await;
    assert!(by_digits.body["items"].as_array().unwrap().is_empty(), "not found by a number it may not see");
    let by_phone = app.call("GET", "/api/v1/contacts?phone=%2B79990001122", None, Some(&restricted)).await;
    assert_eq!(by_phone.status, 403);
    let convs = app.call("GET", "/api/v1/conversations", None, Some(&restricted)).await;
    assert!(!convs.body.to_string().contains("0001122"), "{convs:?}");
    let upd =
        app.call("PATCH", &format!("/api/v1/contacts/{id}"), Some(json!({"name": "Иван"})), Some(&restricted)).await;
    assert_eq!((upd.status, upd.body["phone"].as_str()), (200, Some("+7999•••••22")));

    let operator = app.token_for(Role::Operator).await;
    let full = app.call("GET", &format!("/api/v1/contacts/{id}"), None, Some(&operator)).await;
    assert_eq!(full.body["phone"], "+79990001122", "roles with the right see it whole");
}

#[tokio::test]
async fn a_failed_reply_shows_its_reason_and_retry_sends_it_again() {
    let (app, sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    let conv = super::inbound_conversation(&app, &ch, "u-fail").await;
    let mut c = Client::new(&app);
    assert_eq!(c.login("anna", PASSWORD).await.status, 303);
    sink.answer(400);
    let page = c.get(&format!("/ui/conversations/{conv}")).await;
    let token = hidden(&page.body, "csrf");
    let p = c
        .post(
            &format!("/ui/conversations/{conv}/reply"),
            &[("csrf", &token), ("text", "Счёт во вложении"), ("idem", "k1")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    // The same form sent twice (a double click) makes one message.
    c.post(
        &format!("/ui/conversations/{conv}/reply"),
        &[("csrf", &token), ("text", "Счёт во вложении"), ("idem", "k1")],
    )
    .await;
    let failed = eventually(15, || async {
        let msgs = app.get(&format!("/api/v1/conversations/{conv}/messages")).await.body;
        let out: Vec<Value> =
            msgs["items"].as_array().unwrap().iter().filter(|m| m["direction"] == "out").cloned().collect();
        (out.len() == 1 && out[0]["status"] == "failed").then(|| out[0].clone())
    })
    .await
    .expect("one outbound message, failed");
    assert_eq!(failed["author"], "operator:anna");

    let page = c.get(&format!("/ui/conversations/{conv}")).await;
    assert!(page.body.contains("HTTP 400"), "the reason is shown");
    assert!(page.body.contains(&format!("/ui/messages/{}/retry", failed["id"].as_str().unwrap())));
    sink.answer(200);
    let before = sink.accepted().len();
    let p = c.post(&format!("/ui/messages/{}/retry", failed["id"].as_str().unwrap()), &[("csrf", &token)]).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let got = sink.wait_accepted(before + 1, 15).await;
    assert_eq!(got.last().unwrap().body["text"], "Счёт во вложении");
    let p = c.post(&format!("/ui/messages/{conv}/retry"), &[("csrf", &token)]).await;
    assert_eq!(p.status, 404, "not a message");
}

#[tokio::test]
async fn a_reply_carries_an_uploaded_attachment_and_operators_can_download_files() {
    let (app, sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    let conv = super::inbound_conversation(&app, &ch, "u-file").await;
    let mut c = Client::new(&app);
    assert_eq!(c.login("anna", PASSWORD).await.status, 303);
    let page = c.get(&format!("/ui/conversations/{conv}")).await;
    let token = hidden(&page.body, "csrf");
    let upload = |csrf: Option<String>| {
        let mut req = c
            .http
            .post(format!("{}/ui/attachments?name=invoice.pdf", app.url))
            .header("content-type", "application/pdf")
            .header("cookie", c.cookie_header())
            .body(b"%PDF-1.4 test".to_vec());
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        req
    };
    assert_eq!(upload(None).send().await.unwrap().status(), 403, "uploads need the token too");
    let r = upload(Some(token.clone())).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let att: Value = r.json().await.unwrap();
    let att_id = att["id"].as_str().unwrap().to_string();
    let p = c
        .post(&format!("/ui/conversations/{conv}/reply"), &[("csrf", &token), ("text", ""), ("attachments", &att_id)])
        .await;
    assert_eq!(p.status, 303, "a reply of only a file: {}", p.body);
    let got = sink.wait_accepted(1, 15).await;
    assert_eq!(got[0].body["attachments"][0]["name"], "invoice.pdf");
    let file = c.get(&format!("/ui/attachments/{att_id}")).await;
    assert_eq!((file.status, file.body.as_str()), (200, "%PDF-1.4 test"));
    let raw = c.http.get(format!("{}/ui/attachments/{att_id}", app.url)).header("cookie", c.cookie_header());
    let raw = raw.send().await.unwrap();
    assert_eq!(raw.headers()["x-content-type-options"], "nosniff");
    assert_eq!(raw.headers()["content-security-policy"], "sandbox; default-src 'none'");
    let p = c.post(&format!("/ui/conversations/{conv}/reply"), &[("csrf", &token), ("text", "  ")]).await;
    assert_eq!(p.status, 400, "an empty reply is a clear error");
}

#[tokio::test]
async fn the_contacts_export_is_masked_for_a_restricted_operator() {
    let app = TestApp::spawn().await;
    operator(&app, "rita", Role::Restricted).await;
    operator(&app, "olga", Role::Operator).await;
    for (ext, name, phone) in [("1c-1", "Анна, \"Ромашка\"", "+79990000001"), ("1c-2", "=HYPERLINK(1)", "+79990000002")]
    {
        let r = app
            .post(
                "/api/v1/contacts",
                json!({"external_id": ext, "name": name, "phone": phone, "email": "a@example.com"}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let mut rita = Client::new(&app);
    rita.login("rita", PASSWORD).await;
    let csv = rita.get("/ui/contacts.csv").await;
    assert_eq!(csv.status, 200);
    assert!(csv.body.starts_with("id,external_id,name,phone,email,groups,channels\r\n"));
    assert!(!csv.body.contains("0000001") && !csv.body.contains("a@example.com"), "{}", csv.body);
    assert!(csv.body.contains("+7999•••••01"));
    assert!(csv.body.contains("\"Анна, \"\"Ромашка\"\"\""), "quoted: {}", csv.body);
    assert!(csv.body.contains(",'=HYPERLINK(1),"), "a formula is defused: {}", csv.body);
    let mut olga = Client::new(&app);
    olga.login("olga", PASSWORD).await;
    assert!(olga.get("/ui/contacts.csv?q=Анна").await.body.contains("+79990000001"));
}

#[tokio::test]
async fn the_bots_page_checks_a_definition_and_attaches_it_to_a_channel() {
    let (app, _sink, ch) = super::app_with_channel().await;
    operator(&app, "admin", Role::Admin).await;
    let mut c = Client::new(&app);
    c.login("admin", PASSWORD).await;
    let token = hidden(&c.get("/ui/admin/bots").await.body, "csrf");
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/bots/support.yaml")).unwrap();

    let broken = c
        .post(
            "/ui/admin/bots",
            &[("csrf", &token), ("action", "check"), ("channel_id", &ch), ("source", "name: x\nmenus: [")],
        )
        .await;
    assert_eq!(broken.status, 400);
    assert!(broken.body.contains("id=\"bot-error\""), "{}", broken.body);
    let checked = c
        .post("/ui/admin/bots", &[("csrf", &token), ("action", "check"), ("channel_id", &ch), ("source", &source)])
        .await;
    assert_eq!(checked.status, 200, "{}", checked.body);
    assert!(checked.body.contains("id=\"bot-ok\""));
    assert_eq!(app.get("/api/v1/bots").await.body["items"].as_array().unwrap().len(), 0, "a check saves nothing");
    let saved = c
        .post("/ui/admin/bots", &[("csrf", &token), ("action", "save"), ("channel_id", &ch), ("source", &source)])
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let bots = app.get("/api/v1/bots").await.body;
    assert_eq!(bots["items"][0]["channel_id"], ch.as_str());
    let audit = app.get("/api/v1/audit").await.body.to_string();
    assert!(audit.contains("bot.put") && audit.contains("operator:admin"), "{audit}");
}

#[tokio::test]
async fn the_contact_card_links_the_external_id_to_the_business_system() {
    let app = TestApp::spawn_on(okno_testkit::TestDb::sqlite(), |s| {
        s.ui.contact_url = Some("https://crm.example.com/contacts/{external_id}".into());
    })
    .await;
    operator(&app, "anna", Role::Operator).await;
    let id = app.post("/api/v1/contacts", json!({"external_id": "1c/7 Б", "name": "Пётр"})).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = Client::new(&app);
    c.login("anna", PASSWORD).await;
    let card = c.get(&format!("/ui/contacts/{id}")).await.body.replace("&#x2f;", "/");
    assert!(card.contains("href=\"https://crm.example.com/contacts/1c%2F7%20%D0%91\""), "{card}");
    let bad = okno_server::Settings {
        ui: okno_server::settings::Ui { contact_url: Some("crm/{id}".into()), ..Default::default() },
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().message.contains("ui.contact_url"));
}

#[tokio::test]
async fn reports_count_messages_per_channel_and_first_responses_per_operator_as_svg_and_csv() {
    let (app, sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    let conv = super::inbound_conversation(&app, &ch, "u-r1").await;
    super::inbound_conversation(&app, &ch, "u-r2").await;
    let mut c = Client::new(&app);
    c.login("anna", PASSWORD).await;
    let token = hidden(&c.get(&format!("/ui/conversations/{conv}")).await.body, "csrf");
    c.post(&format!("/ui/conversations/{conv}/reply"), &[("csrf", &token), ("text", "Добрый день")]).await;
    c.post(&format!("/ui/conversations/{conv}/update"), &[("csrf", &token), ("action", "assign_me")]).await;
    c.post(&format!("/ui/conversations/{conv}/update"), &[("csrf", &token), ("action", "resolve")]).await;
    sink.wait_accepted(1, 15).await;

    let page = c.get("/ui/reports").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<svg class=\"chart\"") && page.body.contains("<rect"), "a drawn chart");
    let today = okno_domain::time::to_rfc3339(okno_domain::time::now_ms())[..10].to_string();
    let messages = c.get("/ui/reports.csv?report=messages&days=7").await;
    assert!(messages.body.starts_with("day,channel,messages\r\n"));
    assert!(messages.body.contains(&format!("{today},site,3\r\n")), "two in, one out today: {}", messages.body);
    assert_eq!(messages.body.lines().count(), 1 + 7, "a row per day");
    let ops = c.get("/ui/reports.csv?report=operators").await;
    let anna = ops.body.lines().find(|l| l.starts_with("anna,")).unwrap_or_else(|| panic!("{}", ops.body));
    let cols: Vec<&str> = anna.split(',').collect();
    assert_eq!((cols[1], cols[3]), ("1", "1"), "one conversation answered, one resolved: {anna}");
    assert!(c.get("/ui/reports.csv?report=ratings").await.body.starts_with("manager,answers,average"));
    assert_eq!(c.get("/ui/reports?days=0").await.status, 400);
    assert_eq!(c.get("/ui/reports.csv?report=nonsense").await.status, 400);
}

#[tokio::test]
async fn a_customer_who_moved_from_the_website_to_telegram_has_one_thread_with_both_channels() {
    let (app, sink, site) = super::app_with_channel().await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "okno_ui_bot");
    let tg = app.telegram_channel(&sim, TOKEN, "polling").await;
    operator(&app, "anna", Role::Operator).await;
    let first = super::inbound_conversation(&app, &site, "u-moved").await;
    let web_contact =
        app.get(&format!("/api/v1/conversations/{first}")).await.body["contact"]["id"].as_str().unwrap().to_string();
    sim.user(TOKEN, 7002, "Olga").send_text("Это я, пишу теперь из Telegram");
    let m = app.wait_message(|m| m["text"] == "Это я, пишу теперь из Telegram").await;
    let tg_contact = m["contact_id"].as_str().unwrap().to_string();
    assert_ne!(web_contact, tg_contact, "two people until an operator links them");

    // The operator merges the Telegram person into the website contact from the card.
    let mut c = Client::new(&app);
    c.login("anna", PASSWORD).await;
    let token = hidden(&c.get(&format!("/ui/contacts/{web_contact}")).await.body, "csrf");
    let p = c.post(&format!("/ui/contacts/{web_contact}/merge"), &[("csrf", &token), ("other_id", &tg_contact)]).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let card = c.get(&format!("/ui/contacts/{web_contact}")).await.body;
    assert!(
        card.contains("data-kind=\"telegram\"") && card.contains("data-kind=\"webhook\""),
        "identities on both channels"
    );

    let convs = app.get(&format!("/api/v1/conversations?contact_id={web_contact}")).await.body;
    let conv = convs["items"][0]["id"].as_str().unwrap().to_string();
    let page = c.get(&format!("/ui/conversations/{conv}")).await.body;
    assert!(page.contains("hello") && page.contains("пишу теперь из Telegram"), "the whole history in one thread");
    let thread = &page[page.find("id=\"thread\"").unwrap()..];
    assert!(
        thread.contains("data-kind=\"webhook\"") && thread.contains("data-kind=\"telegram\""),
        "each message with its channel"
    );
    // The reply goes where the person wrote last: Telegram, unless the operator picks the site.
    let select = &page[page.find("id=\"reply-channel\"").unwrap()..];
    let selected = &select[..select.find("selected").unwrap()];
    assert!(selected.ends_with(&format!("value=\"{tg}\" ")), "{select}");
    // (The browser posts the selected channel, as here.)
    c.post(
        &format!("/ui/conversations/{conv}/reply"),
        &[("csrf", &token), ("text", "Видим вас в Telegram"), ("channel_id", &tg)],
    )
    .await;
    assert_eq!(sim.wait_sent(TOKEN, 1, 15).await[0].chat_id, 7002);
    c.post(
        &format!("/ui/conversations/{conv}/reply"),
        &[("csrf", &token), ("text", "И на сайте"), ("channel_id", &site)],
    )
    .await;
    assert_eq!(sink.wait_accepted(1, 15).await[0].body["text"], "И на сайте");
}

#[tokio::test]
async fn canned_responses_are_kept_by_an_administrator_and_a_bare_shortcut_is_expanded() {
    let (app, sink, ch) = super::app_with_channel().await;
    operator(&app, "admin", Role::Admin).await;
    let conv = super::inbound_conversation(&app, &ch, "u-canned").await;
    let mut c = Client::new(&app);
    c.login("admin", PASSWORD).await;
    let token = hidden(&c.get("/ui/admin/canned").await.body, "csrf");
    let bad = c
        .post("/ui/admin/canned", &[("csrf", &token), ("action", "put"), ("shortcut", "two words"), ("text", "x")])
        .await;
    assert_eq!(bad.status, 400);
    for (k, v) in [("hello", "Здравствуйте! Чем помочь?"), ("bye", "До свидания")] {
        let p = c.post("/ui/admin/canned", &[("csrf", &token), ("action", "put"), ("shortcut", k), ("text", v)]).await;
        assert_eq!(p.status, 303, "{}", p.body);
    }
    c.post("/ui/admin/canned", &[("csrf", &token), ("action", "delete"), ("shortcut", "bye")]).await;
    let list = c.get("/ui/admin/canned").await.body;
    assert!(list.contains("/hello") && !list.contains("/bye"), "{list}");
    let page = c.get(&format!("/ui/conversations/{conv}")).await.body;
    assert!(page.contains("\"shortcut\":\"hello\""), "the page knows the responses");
    c.post(&format!("/ui/conversations/{conv}/reply"), &[("csrf", &token), ("text", "/hello")]).await;
    assert_eq!(sink.wait_accepted(1, 15).await[0].body["text"], "Здравствуйте! Чем помочь?");
    c.post(&format!("/ui/conversations/{conv}/reply"), &[("csrf", &token), ("text", "/hello there")]).await;
    assert_eq!(sink.wait_accepted(2, 15).await[1].body["text"], "/hello there", "only a bare shortcut is expanded");
}

#[tokio::test]
async fn a_notification_from_a_rule_is_shown_inline_in_the_thread_and_marked() {
    let (app, sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    let conv = super::inbound_conversation(&app, &ch, "u-rule").await;
    let contact =
        app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"]["id"].as_str().unwrap().to_string();
    assert_eq!(app.patch(&format!("/api/v1/contacts/{contact}"), json!({"external_id": "1c-7"})).await.status, 200);
    let rule = json!({"name": "paid", "event": "payment.received", "recipients": [{"external_id": "{{ data.client }}"}],
                      "template": "Оплата {{ data.amount }} ₽ получена"});
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    let ev = app
        .post(
            "/api/v1/events",
            json!({"type": "payment.received", "key": "pay-1", "data": {"client": "1c-7", "amount": 1500}}),
        )
        .await;
    assert_eq!(ev.status, 202, "{ev:?}");
    sink.wait_accepted(1, 15).await;
    let mut c = Client::new(&app);
    c.login("anna", PASSWORD).await;
    let page = c.get(&format!("/ui/conversations/{conv}")).await.body;
    // The thread, not the list beside it (which previews the same text).
    let page = &page[page.find("id=\"thread\"").unwrap()..];
    let at = page.find("Оплата 1500 ₽ получена").unwrap_or_else(|| panic!("{page}"));
    let li = &page[page[..at].rfind("<li").unwrap()..at];
    assert!(li.contains("class=\"msg out rule"), "{li}");
    assert!(li.contains("class=\"tag author author-rule\""), "marked as a notification: {li}");
    assert!(
        li.contains("notification &#34;paid&#34;") || li.contains("notification &quot;paid&quot;"),
        "by its rule: {li}"
    );
}

#[tokio::test]
async fn an_administrator_adds_an_operator_who_can_then_sign_in() {
    let app = TestApp::spawn().await;
    operator(&app, "admin", Role::Admin).await;
    let mut c = Client::new(&app);
    c.login("admin", PASSWORD).await;
    let page = c.get("/ui/admin/operators").await;
    assert!(page.body.contains("restricted"), "the roles table");
    let token = hidden(&page.body, "csrf");
    let weak = c
        .post(
            "/ui/admin/operators",
            &[("csrf", &token), ("login", "vera"), ("role", "restricted"), ("password", "short")],
        )
        .await;
    assert_eq!(weak.status, 400);
    let p = c
        .post(
            "/ui/admin/operators",
            &[("csrf", &token), ("login", "vera"), ("role", "restricted"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let dup = c
        .post("/ui/admin/operators", &[("csrf", &token), ("login", "vera"), ("role", "admin"), ("password", PASSWORD)])
        .await;
    assert_eq!(dup.status, 409);
    assert!(c.get("/ui/admin/operators").await.body.contains("vera"));
    let mut vera = Client::new(&app);
    assert_eq!(vera.login("vera", PASSWORD).await.status, 303);
    assert!(vera.get("/ui/inbox").await.body.contains("(operator without personal data)"));
}

#[tokio::test]
async fn the_ratings_report_averages_answers_per_manager() {
    let (app, sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    let rule: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rules/07_rate_the_service.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    for (user, manager, rating) in [("u-a", "Петров", 5usize), ("u-b", "Петров", 4), ("u-c", "Сидорова", 2)]
    {
        let conv = super::inbound_conversation(&app, &ch, user).await;
        let contact =
            app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"]["id"].as_str().unwrap().to_string();
        app.patch(&format!("/api/v1/contacts/{contact}"), json!({"external_id": format!("client-{user}")})).await;
        let data = json!({"client_id": format!("client-{user}"), "order": "ЗК-1", "manager": manager});
        app.post("/api/v1/events", json!({"type": "order.completed", "key": format!("done-{user}"), "data": data}))
            .await;
        let asked = eventually(15, || async {
            let msgs = app.get(&format!("/api/v1/conversations/{conv}/messages")).await.body;
            msgs["items"].as_array().unwrap().iter().find(|m| m["direction"] == "out" && m["status"] == "sent").cloned()
        })
        .await
        .expect("the rating question was sent");
        let press = json!({"message_id": format!("press-{user}"), "user": {"id": user},
            "button": {"data": asked["buttons"][0][rating - 1]["data"], "reply_to": asked["id"]}});
        assert_eq!(app.inbound(&ch, SECRET, &press).await.status, 200);
    }
    sink.wait_accepted(3, 15).await;
    let mut c = Client::new(&app);
    c.login("anna", PASSWORD).await;
    let csv = eventually(10, || async {
        let body = Client { http: c.http.clone(), base: c.base.clone(), cookies: c.cookies.clone() }
            .get("/ui/reports.csv?report=ratings")
            .await
            .body;
        body.contains("Сидорова").then_some(body)
    })
    .await
    .expect("the answers are counted");
    assert!(csv.contains("Петров,2,4.5\r\n") && csv.contains("Сидорова,1,2\r\n"), "{csv}");
    let page = c.get("/ui/reports").await.body;
    let ratings = &page[page.find("id=\"report-ratings\"").unwrap()..];
    assert!(ratings.contains("<svg") && ratings.contains("Петров"), "a chart of the ratings");
}

/// The CSRF token of a page the client can open.
async fn token_of(c: &mut Client, path: &str) -> String {
    let page = c.get(path).await;
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    hidden(&page.body, "csrf")
}

/// Several processes share one database only on PostgreSQL (a second okno on a SQLite file
/// is refused: `process.rs`), so this runs there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_are_disabled_and_changed_and_their_sessions_end_on_every_process_on_postgresql() {
    let Some(db) = okno_testkit::TestDb::postgres().await else { return };
    let url = db.url.clone();
    operators_across_processes(db, &url).await;
}

/// Two okno processes on one database (each with its own data folder): `a` where the
/// administrator works, `b` where olga does.
async fn operators_across_processes(db: okno_testkit::TestDb, url: &str) {
    let a = TestApp::spawn_on(db, |_| {}).await;
    let b = TestApp::spawn_on(okno_testkit::TestDb::borrowed(url), |_| {}).await;
    operator(&a, "admin", Role::Admin).await;
    operator(&a, "olga", Role::Operator).await;
    let mut admin = Client::new(&a);
    assert_eq!(admin.login("admin", PASSWORD).await.status, 303);
    let mut olga = Client::new(&b);
    assert_eq!(olga.login("olga", PASSWORD).await.status, 303);
    assert_eq!(olga.get("/ui/inbox").await.status, 200);
    // The same cookie opens the other process too: sessions live in the database.
    let mut olga_on_a = Client { base: a.url.clone(), ..olga.clone() };
    assert_eq!(olga_on_a.get("/ui/inbox").await.status, 200);

    let page = admin.get("/ui/admin/operators").await;
    assert!(page.body.contains("data-login=\"olga\""), "{}", page.body);
    let csrf = hidden(&page.body, "csrf");
    let change = |action: &str, extra: Option<(&'static str, &'static str)>| {
        let mut f = vec![("csrf", csrf.clone()), ("login", "olga".to_string()), ("action", action.to_string())];
        if let Some((k, v)) = extra {
            f.push((k, v.to_string()));
        }
        f
    };
    // Disabled on process a: olga's open session on process b ends at her next request, and
    // she cannot sign in again.
    let r = post_form(&mut admin, "/ui/admin/operators/change", &change("disable", None)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(olga.get("/ui/inbox").await.location.as_deref(), Some("/login"), "ended on the other process");
    assert_eq!(olga.post("/logout", &[("csrf", "x")]).await.status, 401, "forms too");
    let mut again = Client::new(&b);
    let refused = again.login("olga", PASSWORD).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("This account is disabled"));
    assert!(!again.cookies.contains_key("okno_session"));
    let wrong = again.login("olga", "not her password").await;
    assert_eq!(wrong.status, 401, "a wrong password does not learn that the account is disabled");
    assert!(admin.get("/ui/admin/operators").await.body.contains("op-enable"));

    // Enabled again, then given another role: it shows at her next request on the other process.
    assert_eq!(post_form(&mut admin, "/ui/admin/operators/change", &change("enable", None)).await.status, 303);
    let mut olga = Client::new(&b);
    assert_eq!(olga.login("olga", PASSWORD).await.status, 303);
    assert!(olga.get("/ui/inbox").await.body.contains("(operator)"));
    let r = post_form(&mut admin, "/ui/admin/operators/change", &change("role", Some(("role", "restricted")))).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(olga.get("/ui/inbox").await.body.contains("(operator without personal data)"));
    let bad = post_form(&mut admin, "/ui/admin/operators/change", &change("role", Some(("role", "root")))).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("not a valid role"));

    // A new password set by the administrator: her session ends; the old password is refused.
    let short =
        post_form(&mut admin, "/ui/admin/operators/change", &change("password", Some(("password", "short")))).await;
    assert_eq!(short.status, 400);
    assert_eq!(olga.get("/ui/inbox").await.status, 200, "a refused change ends nothing");
    let r = post_form(
        &mut admin,
        "/ui/admin/operators/change",
        &change("password", Some(("password", "a new long password"))),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(olga.get("/ui/inbox").await.location.as_deref(), Some("/login"));
    let mut olga = Client::new(&b);
    assert_eq!(olga.login("olga", PASSWORD).await.status, 401);
    assert_eq!(olga.login("olga", "a new long password").await.status, 303);

    // A logout on one process ends the session on the other.
    let mut olga_on_a = Client { base: a.url.clone(), ..olga.clone() };
    let token = token_of(&mut olga_on_a, "/ui/inbox").await;
    assert_eq!(olga_on_a.post("/logout", &[("csrf", &token)]).await.status, 303);
    assert_eq!(olga.get("/ui/inbox").await.location.as_deref(), Some("/login"));

    // The administrator cannot disable themselves, nor leave okno without an administrator.
    let own = |action: &str, role: &str| {
        vec![("csrf", csrf.clone()), ("login", "admin".into()), ("action", action.into()), ("role", role.into())]
    };
    let r = post_form(&mut admin, "/ui/admin/operators/change", &own("disable", "")).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("You cannot disable yourself"));
    let r = post_form(&mut admin, "/ui/admin/operators/change", &own("role", "operator")).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("last administrator"));
    let forged =
        admin.post("/ui/admin/operators/change", &[("csrf", "forged"), ("login", "olga"), ("action", "enable")]).await;
    assert_eq!(forged.status, 403);
    let unknown = post_form(
        &mut admin,
        "/ui/admin/operators/change",
        &[("csrf", csrf.clone()), ("login", "nobody".into()), ("action", "disable".into())],
    )
    .await;
    assert_eq!(unknown.status, 404);

    // Not an administrator: no way in.
    let mut olga = Client::new(&b);
    assert_eq!(olga.login("olga", "a new long password").await.status, 303);
    let token = token_of(&mut olga, "/ui/inbox").await;
    let r =
        olga.post("/ui/admin/operators/change", &[("csrf", &token), ("login", "admin"), ("action", "disable")]).await;
    assert_eq!(r.status, 403);

    // Every change is in the audit log, by whom.
    let audit = a.get("/api/v1/audit?limit=100").await.body.to_string();
    for action in ["operator.disable", "operator.enable", "operator.role", "operator.password"] {
        assert!(audit.contains(action), "{action}: {audit}");
    }
    assert!(audit.contains("operator:admin"));
}

#[tokio::test]
async fn an_operator_changes_their_own_password_with_the_current_one() {
    let app = TestApp::spawn().await;
    operator(&app, "anna", Role::Operator).await;
    let mut here = Client::new(&app);
    let mut elsewhere = Client::new(&app);
    assert_eq!(here.login("anna", PASSWORD).await.status, 303);
    assert_eq!(elsewhere.login("anna", PASSWORD).await.status, 303);
    let page = here.get("/ui/account").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"my-sessions\">2<"), "{}", page.body);
    let csrf = hidden(&page.body, "csrf");
    let form = |current: &str, new: &str, repeat: &str| {
        vec![("csrf", csrf.clone()), ("current", current.into()), ("password", new.into()), ("repeat", repeat.into())]
    };
    let wrong =
        post_form(&mut here, "/ui/account/password", &form("guess", "brand new secret", "brand new secret")).await;
    assert_eq!(wrong.status, 403);
    assert!(wrong.body.contains("The current password is wrong"));
    let differ =
        post_form(&mut here, "/ui/account/password", &form(PASSWORD, "brand new secret", "brand new secreT")).await;
    assert_eq!(differ.status, 400);
    assert!(differ.body.contains("differ"));
    let short = post_form(&mut here, "/ui/account/password", &form(PASSWORD, "short", "short")).await;
    assert_eq!(short.status, 400);
    assert!(short.body.contains("at least 8"));
    let no_token = here
        .post(
            "/ui/account/password",
            &[("current", PASSWORD), ("password", "brand new secret"), ("repeat", "brand new secret")],
        )
        .await;
    assert_eq!(no_token.status, 403);
    assert_eq!(elsewhere.get("/ui/inbox").await.status, 200, "nothing changed yet");

    let done =
        post_form(&mut here, "/ui/account/password", &form(PASSWORD, "brand new secret", "brand new secret")).await;
    assert_eq!((done.status, done.location.as_deref()), (303, Some("/ui/account?changed=1")));
    let page = here.get("/ui/account?changed=1").await;
    assert!(page.body.contains("id=\"password-changed\""), "this session stays: {}", page.body);
    assert_eq!(elsewhere.get("/ui/inbox").await.location.as_deref(), Some("/login"), "the other one ended");
    let mut fresh = Client::new(&app);
    assert_eq!(fresh.login("anna", PASSWORD).await.status, 401);
    assert_eq!(fresh.login("anna", "brand new secret").await.status, 303);
    let audit = app.get("/api/v1/audit").await.body.to_string();
    assert!(audit.contains("operator.password") && audit.contains("operator:anna"), "{audit}");

    // Guessing the current password from a session is limited like a login.
    let mut guesses = 0;
    loop {
        let r = post_form(&mut here, "/ui/account/password", &form("guess", "another secret", "another secret")).await;
        guesses += 1;
        if r.body.contains("Too many failed attempts") {
            break;
        }
        assert!(guesses < 10, "never limited");
    }
    assert!(guesses <= 6, "{guesses}");
}

#[tokio::test]
async fn the_inbox_search_finds_an_older_message_in_any_case() {
    inbox_search(TestApp::spawn().await).await;
}

#[tokio::test]
async fn the_inbox_search_finds_an_older_message_in_any_case_on_postgresql() {
    let Some(db) = okno_testkit::TestDb::postgres().await else { return };
    inbox_search(TestApp::spawn_on(db, |_| {}).await).await;
}

async fn inbox_search(app: TestApp) {
    let sink = okno_testkit::Sink::start(SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", sink.url), SECRET).await;
    operator(&app, "anna", Role::Operator).await;
    operator(&app, "rita", Role::Restricted).await;
    let say = |id: &str, user: &str, text: &str| json!({"message_id": id, "user": {"id": user, "name": format!("Покупатель {user}")}, "text": text});
    assert_eq!(app.inbound(&ch, SECRET, &say("p1", "u-petr", "Заказ 1042 не пришёл, где он?")).await.status, 200);
    for n in 0..3 {
        app.inbound(&ch, SECRET, &say(&format!("p{}", n + 2), "u-petr", &format!("Напоминаю ({n})"))).await;
    }
    let other = app.inbound(&ch, SECRET, &say("q1", "u-olga", "Спасибо, всё пришло")).await;
    assert_eq!(other.status, 200);
    let mut c = Client::new(&app);
    c.login("anna", PASSWORD).await;
    for q in ["заказ", "ЗАКАЗ", "Заказ%201042", "НЕ%20ПРИШЁЛ"] {
        let page = c.get(&format!("/ui/inbox?q={q}")).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Покупатель u-petr"), "{q}: {}", page.body);
        assert!(!page.body.contains("Покупатель u-olga"), "{q}");
    }
    // The last message is not what matched.
    assert!(c.get("/ui/inbox?q=заказ").await.body.contains("Напоминаю (2)"));
    let both = c.get("/ui/inbox?q=ПРИШ").await.body;
    assert!(both.contains("u-petr") && both.contains("u-olga"), "{both}");
    assert!(c.get("/ui/inbox?q=заказ&status=resolved").await.body.contains("No conversations match"));
    // The live refresh of a search shows the same.
    assert!(c.get("/ui/inbox?q=ЗАКАЗ&fragment=1").await.body.contains("u-petr"));
    // A restricted operator finds it by the text too.
    let mut rita = Client::new(&app);
    rita.login("rita", PASSWORD).await;
    assert!(rita.get("/ui/inbox?q=Заказ").await.body.contains("u-petr"));
}

#[tokio::test]
async fn a_broadcast_from_the_form_with_a_list_and_a_filter_reaches_exactly_those_people() {
    let (app, sink, ch) = super::app_with_channel().await;
    // Five people on the website; four in Kazan, one of them a VIP with an external id.
    let mut contacts = Vec::new();
    for n in 1..=5 {
        let conv = super::inbound_conversation(&app, &ch, &format!("u-{n}")).await;
        let id =
            app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"]["id"].as_str().unwrap().to_string();
        let city = if n == 4 { "Москва" } else { "Казань" };
        let body = json!({"attrs": {"city": city, "visits": n}, "external_id": format!("1c-{n}")});
        assert_eq!(app.patch(&format!("/api/v1/contacts/{id}"), body).await.status, 200);
        contacts.push(id);
    }
    // A sixth person, in Kazan, known to the business system but with no channel.
    app.post("/api/v1/contacts", json!({"external_id": "1c-6", "name": "Без канала", "attrs": {"city": "Казань"}}))
        .await;
    operator(&app, "anna", Role::Operator).await;
    let mut c = Client::new(&app);
    c.login("anna", PASSWORD).await;
    let csrf = token_of(&mut c, "/ui/broadcasts").await;
    let form = |action: &str, list: &str, attrs: &str, counted: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("action", action.to_string()),
            ("name", "Казань".to_string()),
            ("list", list.to_string()),
            ("f_attrs", attrs.to_string()),
            ("f_kind", "webhook".to_string()),
            ("text", "{{ contact.attrs.city }}: скидка".to_string()),
            ("buttons", "Интересно=yes\nНет".to_string()),
            ("unsubscribe", String::new()),
            ("counted", counted.to_string()),
        ]
    };
    // Kazan on the website: u-1, u-2, u-3, u-5 (u-6 has no channel, u-4 is in Moscow).
    let counted = post_form(&mut c, "/ui/broadcasts", &form("count", "", "city=Казань", "")).await;
    assert_eq!(counted.status, 200, "{}", counted.body);
    assert!(counted.body.contains("<b id=\"count\">4</b>"), "{}", counted.body);
    // A number is compared as a number: visits=2 is u-2 alone.
    let two = post_form(&mut c, "/ui/broadcasts", &form("count", "", "city=Казань\nvisits=2", "")).await;
    assert!(two.body.contains("<b id=\"count\">1</b>"), "{}", two.body);
    // A list adds people by external id or contact id, each once: u-4 joins, u-1 is there already.
    let list = format!("1c-4, {}\n1c-1", contacts[0]);
    let counted = post_form(&mut c, "/ui/broadcasts", &form("count", &list, "city=Казань", "")).await;
    assert!(counted.body.contains("<b id=\"count\">5</b>"), "{}", counted.body);
    // Bad input is a clear error on the form, which keeps what was typed.
    let unknown = post_form(&mut c, "/ui/broadcasts", &form("count", "1c-404\n1c-1", "city=Казань", "")).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.body.contains("1c-404") && unknown.body.contains("match no contact"), "{}", unknown.body);
    assert!(unknown.body.contains("1c-404\n1c-1</textarea>"), "kept");
    let bad_attr = post_form(&mut c, "/ui/broadcasts", &form("count", "", "city", "")).await;
    assert_eq!(bad_attr.status, 400);
    assert!(bad_attr.body.contains("key=value"));
    let mut kind = form("count", "", "city=Казань", "");
    kind[5].1 = "fax".into();
    let bad_kind = post_form(&mut c, "/ui/broadcasts", &kind).await;
    assert!(bad_kind.status == 400 && bad_kind.body.contains("not a valid channelkind"), "{}", bad_kind.body);
    let nobody = post_form(&mut c, "/ui/broadcasts", &form("count", "", "city=Сочи", "")).await;
    assert!(nobody.body.contains("<b id=\"count\">0</b>") && !nobody.body.contains("id=\"bc-start\""));

    let made = post_form(&mut c, "/ui/broadcasts", &form("start", &list, "city=Казань", "5")).await;
    assert_eq!(made.status, 303, "{}", made.body);
    sink.wait_accepted(5, 15).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got: Vec<_> = sink
        .accepted()
        .into_iter()
        .filter(|r| r.body["text"].as_str().is_some_and(|t| t.ends_with("скидка")))
        .collect();
    assert!(got.len() >= 5);
    let mut to: Vec<String> = got.iter().map(|r| r.body["to"]["id"].as_str().unwrap().to_string()).collect();
    to.sort();
    assert_eq!(to, ["u-1", "u-2", "u-3", "u-4", "u-5"], "exactly the filtered and listed people, once each");
    let moscow = got.iter().find(|r| r.body["to"]["id"] == "u-4").unwrap();
    assert_eq!(moscow.body["text"], "Москва: скидка");
    let buttons = &got[0].body["buttons"];
    assert_eq!(
        (buttons[0][0]["text"].as_str(), buttons[1][0]["text"].as_str()),
        (Some("Интересно"), Some("Нет")),
        "{buttons}"
    );
    let at = made.location.unwrap();
    let page = c.get(&at).await.body;
    assert!(page.contains("city=Казань") && page.contains("webhook"), "the audience is shown: {page}");
    let audit = app.get("/api/v1/audit").await.body.to_string();
    assert!(audit.contains("broadcast.create") && audit.contains("\"counted\":5"), "{audit}");

    // A restricted operator may not filter by text (it would search phones they may not see).
    operator(&app, "rita", Role::Restricted).await;
    let mut rita = Client::new(&app);
    rita.login("rita", PASSWORD).await;
    let token = token_of(&mut rita, "/ui/broadcasts").await;
    let r = rita
        .post(
            "/ui/broadcasts",
            &[("csrf", &token), ("action", "count"), ("name", "x"), ("f_q", "+7999"), ("text", "x")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("your role may not see"), "{}", r.body);
}

// --- the browser -------------------------------------------------------------------------

use okno_testkit::browser::{Browser, BROWSER_TURN};

/// Signs `login` in with the test password and waits for the live inbox.
pub(super) async fn sign_in(b: &Browser, app: &TestApp, login: &str) {
    b.login(&app.url, login, PASSWORD).await;
}

/// Replaces the browser's notification and sound with recorders, so the test can see them.
const SPY: &str = "window.__notes = []; window.__beeps = 0;
    function N(title, o) { window.__notes.push([title, o && o.body]); }
    N.permission = 'granted'; N.requestPermission = function () { return Promise.resolve('granted'); };
    window.Notification = N;
    window.AudioContext = function () { window.__beeps++; throw new Error('no audio in tests'); };";

#[tokio::test]
async fn in_the_browser_a_message_arrives_live_is_answered_assigned_and_resolved() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let started = std::time::Instant::now();
    let app = TestApp::spawn().await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "okno_ui_bot");
    app.telegram_channel(&sim, TOKEN, "polling").await;
    operator(&app, "anna", Role::Operator).await;
    let canned = json!([{"shortcut": "shipped", "text": "Заказ №1042 передан в доставку"}, {"shortcut": "hello", "text": "Здравствуйте!"}]);
    std::fs::write(app.data_dir.join("ui-canned.json"), canned.to_string()).unwrap();

    b.goto(&format!("{}/login", app.url)).await;
    b.screenshot("login").await;
    sign_in(&b, &app, "anna").await;
    b.js(SPY).await;
    assert!(b.text("#conv-list").await.contains("No conversations"), "an empty inbox to start");

    // A customer writes on Telegram; the row appears without a reload, with the logo and a
    // pop-up and a sound.
    b.js("window.__same_page = true").await;
    let ann = sim.user(TOKEN, 7001, "Ann");
    ann.send_text("Где мой заказ №1042?");
    b.wait_for(15, "return document.querySelector('#conv-list .conv') && document.querySelector('#conv-list').innerText.includes('Где мой заказ')").await;
    assert_eq!(b.js("return window.__same_page === true").await, json!(true), "no reload happened");
    assert_eq!(b.js("return document.querySelector('#conv-list .conv svg.logo').dataset.kind").await, "telegram");
    assert!(b.text("#conv-list .conv .who").await.contains("Ann"));
    assert_eq!(b.text("#conv-list .conv .badge").await, "1", "one unread");
    let notes = b.wait_for(10, "return window.__notes.length && window.__notes").await;
    assert_eq!(notes[0], json!(["Ann", "Где мой заказ №1042?"]));
    assert!(b.js("return window.__beeps").await.as_i64().unwrap() >= 1, "a sound was played");
    assert!(b.text("#toasts").await.contains("Где мой заказ"), "an in-page pop-up too");
    b.screenshot("inbox-live").await;

    // Open it, answer it: the answer reaches the simulator.
    b.click("#conv-list .conv a").await;
    b.wait_for(10, "return document.querySelector('#reply-text') && window.oknoLive").await;
    assert!(b.text("#thread").await.contains("Где мой заказ №1042?"));
    // A canned response: "/sh" and Tab puts its text into the box.
    assert!(b.js("return document.getElementById('canned-menu').hidden").await == json!(true));
    b.type_into("#reply-text", "/sh").await;
    assert!(b.text("#canned-menu").await.contains("/shipped"), "the matching responses are listed");
    b.type_into_keep("#reply-text", "\u{E004}").await;
    assert_eq!(b.js("return document.getElementById('reply-text').value").await, "Заказ №1042 передан в доставку");
    b.click("#reply-send").await;
    let sent = sim.wait_sent(TOKEN, 1, 15).await;
    assert_eq!((sent[0].chat_id, sent[0].plain.as_deref()), (7001, Some("Заказ №1042 передан в доставку")));
    b.wait_for(15, "return document.querySelector('#thread li.msg.out[data-status=sent], #thread li.msg.out[data-status=delivered]')").await;
    assert!(b.text("#thread li.msg.out .author").await.contains("anna"), "the author is shown");

    // The customer answers again while the conversation is open: it appears live.
    ann.send_text("Спасибо!");
    b.wait_for(15, "return document.querySelector('#thread').innerText.includes('Спасибо!')").await;

    // Assign to me, then resolve.
    b.click("#act-assign").await;
    b.wait_for(10, "return document.querySelector('#conv-assignee') && document.querySelector('#conv-assignee').innerText.includes('anna')").await;
    b.click("#act-resolve").await;
    b.wait_for(10, "return document.querySelector('#conv-status').dataset.status === 'resolved'").await;
    let conv_id = b.path().await.trim_start_matches("/ui/conversations/").to_string();
    let conv = app.get(&format!("/api/v1/conversations/{conv_id}")).await.body;
    assert_eq!((conv["status"].as_str(), conv["assignee"].as_str()), (Some("resolved"), Some("anna")));

    // The inbox filters: mine + resolved shows it, unassigned does not.
    b.open(&format!("{}/ui/inbox?assignee=mine&status=resolved", app.url)).await;
    assert!(b.text("#conv-list").await.contains("Ann"));
    b.open(&format!("{}/ui/inbox?assignee=unassigned", app.url)).await;
    assert!(!b.text("#conv-list").await.contains("Ann"));

    // The contact card and the administration pages, for the screenshots and a sanity check.
    b.open(&format!("{}/ui/conversations/{conv_id}", app.url)).await;
    b.click("#contact-link").await;
    b.wait_for(10, "return document.querySelector('#contact-name')").await;
    assert!(b.text("#contact-name").await.contains("Ann"));
    assert!(b.text(".idents").await.contains("7001"));

    // A broadcast started from its page: the audience counted, then started; it reaches Ann.
    let ann_contact = conv["contact"]["id"].as_str().unwrap().to_string();
    app.patch(&format!("/api/v1/contacts/{ann_contact}"), json!({"groups": ["spring"]})).await;
    b.open(&format!("{}/ui/broadcasts/new", app.url)).await;
    b.js("document.querySelector('#new-broadcast [name=name]').value = 'Весенняя акция'; \
          document.querySelector('#new-broadcast [name=groups]').value = 'spring'; \
          document.querySelector('#new-broadcast [name=text]').value = 'Скидка 10% до конца марта'; \
          document.querySelector('#new-broadcast [name=buttons]').value = 'Интересно=yes\\nНе сейчас=no'; return 1")
        .await;
    b.click("#bc-count").await;
    b.wait_for(10, "return document.querySelector('#count')").await;
    assert_eq!(b.text("#count").await, "1");
    assert!(b.text("#audience-count").await.contains("Ann"), "who, for example");
    b.js("document.querySelector('#audience-count').scrollIntoView({block: 'center'}); return 1").await;
    b.screenshot("broadcast-form").await;
    b.click("#bc-start").await;
    b.wait_for(10, "return document.querySelector('#broadcast')").await;
    assert!(b.text("#broadcast").await.contains("Весенняя акция"));
    let got = sim.wait_sent(TOKEN, 2, 15).await;
    assert_eq!(got[1].plain.as_deref(), Some("Скидка 10% до конца марта"));
    b.screenshot("broadcast").await;

    // A phone-sized screen still shows the inbox.
    b.screen(Some((390, 844))).await;
    b.open(&format!("{}/ui/inbox", app.url)).await;
    let width = b.js("return document.documentElement.scrollWidth").await.as_i64().unwrap();
    assert!(width <= 400, "no horizontal scrolling on a phone: {width}px");
    b.screenshot("inbox-phone").await;
    b.screen(None).await;

    // Logout ends the session.
    b.click("#logout").await;
    b.wait_for(10, "return location.pathname === '/login'").await;
    b.goto(&format!("{}/ui/inbox", app.url)).await;
    assert_eq!(b.path().await, "/login");
    b.quit().await;
    eprintln!("browser flow took {:?}", started.elapsed());
}

#[tokio::test]
async fn in_the_browser_a_restricted_operator_sees_masked_phones_and_an_admin_sees_them_whole() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let (app, _sink, ch) = super::app_with_channel().await;
    operator(&app, "rita", Role::Restricted).await;
    operator(&app, "admin", Role::Admin).await;
    let c = app
        .post("/api/v1/contacts", json!({"external_id": "1c-7", "name": "Пётр Сидоров", "phone": "+79991234567", "email": "petr@example.com", "groups": ["vip"]}))
        .await;
    let id = c.body["id"].as_str().unwrap().to_string();
    let inbound =
        json!({"message_id": "m-1", "user": {"id": "u-7", "phone": "+79991234567"}, "text": "Когда будет счёт?"});
    assert_eq!(app.inbound(&ch, SECRET, &inbound).await.status, 200);

    sign_in(&b, &app, "rita").await;
    b.open(&format!("{}/ui/contacts/{id}", app.url)).await;
    assert_eq!(b.text("#contact-phone").await, "+7999•••••67");
    assert_eq!(b.text("#contact-email").await, "p•••@example.com");
    assert!(b.text("#masked-note").await.contains("hidden"));
    let source = b.js("return document.documentElement.outerHTML").await.as_str().unwrap().to_string();
    assert!(!source.contains("1234567") && !source.contains("petr@"), "the number is nowhere in the page");
    b.screenshot("contact-masked").await;
    b.open(&format!("{}/ui/contacts?q=1234567", app.url)).await;
    assert!(!b.text("#contacts").await.contains("Пётр"), "not found by the hidden number");
    b.open(&format!("{}/ui/inbox", app.url)).await;
    let inbox = b.js("return document.documentElement.outerHTML").await.as_str().unwrap().to_string();
    assert!(!inbox.contains("1234567"), "nor in the inbox");
    b.click("#logout").await;
    b.wait_for(10, "return location.pathname === '/login'").await;

    sign_in(&b, &app, "admin").await;
    b.open(&format!("{}/ui/contacts/{id}", app.url)).await;
    assert_eq!(b.text("#contact-phone").await, "+79991234567");

    // The same person writes from Telegram too; once merged, one card and one thread, and the
    // inbox shows every channel's conversations side by side.
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "okno_ui_bot");
    app.telegram_channel(&sim, TOKEN, "polling").await;
    sim.user(TOKEN, 7007, "Пётр").send_text("Продублирую в Telegram: счёт нужен до пятницы");
    let m = app.wait_message(|m| m["text"] == "Продублирую в Telegram: счёт нужен до пятницы").await;
    let merged = app.post(&format!("/api/v1/contacts/{id}/merge"), json!({"other_id": m["contact_id"]})).await;
    assert_eq!(merged.status, 200, "{merged:?}");
    sim.user(TOKEN, 7008, "Мария").send_text("Добрый день! Можно перенести доставку на субботу?");
    let inbound = json!({"message_id": "m-2", "user": {"id": "u-8", "name": "Ирина (сайт)"}, "text": "Подскажите статус заказа 5521"});
    assert_eq!(app.inbound(&ch, SECRET, &inbound).await.status, 200);
    app.wait_message(|m| m["text"] == "Добрый день! Можно перенести доставку на субботу?").await;
    let conv = app.get(&format!("/api/v1/conversations?contact_id={id}")).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    super::reply(&app, &conv, json!({"text": "Счёт выставлен, отправили на почту"})).await;
    b.open(&format!("{}/ui/inbox", app.url)).await;
    let kinds = b.js("return Array.from(document.querySelectorAll('#conv-list svg.logo')).map(function (e) { return e.dataset.kind; })").await;
    assert!(
        kinds.as_array().unwrap().contains(&json!("telegram")) && kinds.as_array().unwrap().contains(&json!("webhook")),
        "{kinds}"
    );
    b.screenshot("inbox").await;
    b.open(&format!("{}/ui/conversations/{conv}", app.url)).await;
    b.wait_for(15, "return document.querySelector('#thread li.msg.out[data-status=sent]')").await;
    let thread_kinds = b.js("return Array.from(document.querySelectorAll('#thread svg.logo')).map(function (e) { return e.dataset.kind; })").await;
    assert!(
        thread_kinds.as_array().unwrap().contains(&json!("telegram"))
            && thread_kinds.as_array().unwrap().contains(&json!("webhook"))
    );
    b.screenshot("conversation").await;
    b.open(&format!("{}/ui/contacts/{id}", app.url)).await;
    b.screenshot("contact").await;
    b.open(&format!("{}/ui/reports", app.url)).await;
    assert!(b.js("return document.querySelectorAll('#report-messages svg rect').length").await.as_i64().unwrap() >= 2);
    b.screenshot("reports").await;
    b.open(&format!("{}/ui/admin/channels", app.url)).await;
    b.screenshot("admin-channels").await;
    b.quit().await;
}

#[tokio::test]
async fn in_the_browser_an_operator_changes_their_password_and_an_administrator_disables_them() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let app = TestApp::spawn().await;
    operator(&app, "anna", Role::Operator).await;
    operator(&app, "admin", Role::Admin).await;
    sign_in(&b, &app, "anna").await;
    // «My account» from the name in the header.
    b.click("#who").await;
    b.wait_for(10, "return location.pathname === '/ui/account' && document.querySelector('#password-form')").await;
    b.type_into("#current", "not my password").await;
    b.type_into("#new-password", "a fresh long secret").await;
    b.type_into("#repeat-password", "a fresh long secret").await;
    b.click("#change-password").await;
    b.wait_for(10, "return document.querySelector('#error')").await;
    assert!(b.text("#error").await.contains("current password is wrong"));
    b.type_into("#current", PASSWORD).await;
    b.type_into("#new-password", "a fresh long secret").await;
    b.type_into("#repeat-password", "a fresh long secret").await;
    b.click("#change-password").await;
    b.wait_for(10, "return document.querySelector('#password-changed')").await;
    b.screenshot("account").await;
    b.click("#logout").await;
    b.wait_for(10, "return location.pathname === '/login'").await;
    b.type_into("#login", "anna").await;
    b.type_into("#password", "a fresh long secret").await;
    b.click("#sign-in").await;
    b.wait_for(10, "return location.pathname === '/ui/inbox'").await;

    // An administrator disables anna from another browser session: her open page's next
    // request leads to the login form.
    let mut admin = Client::new(&app);
    admin.login("admin", PASSWORD).await;
    let csrf = token_of(&mut admin, "/ui/admin/operators").await;
    let r =
        admin.post("/ui/admin/operators/change", &[("csrf", &csrf), ("login", "anna"), ("action", "disable")]).await;
    assert_eq!(r.status, 303);
    b.goto(&format!("{}/ui/contacts", app.url)).await;
    b.wait_for(10, "return location.pathname === '/login'").await;
    b.type_into("#login", "anna").await;
    b.type_into("#password", "a fresh long secret").await;
    b.click("#sign-in").await;
    b.wait_for(10, "return document.body.innerText.includes('This account is disabled')").await;

    // The operators page, as the administrator sees it.
    sign_in(&b, &app, "admin").await;
    b.open(&format!("{}/ui/admin/operators", app.url)).await;
    assert!(b.text("#operators tr[data-login=anna]").await.contains("disabled"));
    b.screenshot("admin-operators").await;
    b.quit().await;
}

#[tokio::test]
async fn in_the_browser_a_form_with_a_tampered_csrf_token_is_refused() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let (app, _sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    let conv = super::inbound_conversation(&app, &ch, "u-9").await;
    sign_in(&b, &app, "anna").await;
    b.open(&format!("{}/ui/conversations/{conv}", app.url)).await;

    // A script without the token (what a cross-site form would send) is refused.
    let status = b
        .js_async(&format!(
            "var done = arguments[arguments.length - 1];
             fetch('/ui/conversations/{conv}/update', {{method: 'POST', body: new URLSearchParams({{action: 'resolve'}})}})
               .then(function (r) {{ done(r.status); }});"
        ))
        .await;
    assert_eq!(status, 403);
    // The page's own form with its token altered is refused too.
    b.js("document.querySelectorAll('input[name=csrf]').forEach(function (i) { i.value = 'x' + i.value.slice(1); })")
        .await;
    b.click("#act-resolve").await;
    b.wait_for(10, "return document.body.innerText.includes('403')").await;
    assert_eq!(app.get(&format!("/api/v1/conversations/{conv}")).await.body["status"], "open");
    // And with the real token it works.
    b.open(&format!("{}/ui/conversations/{conv}", app.url)).await;
    b.click("#act-resolve").await;
    b.wait_for(10, "return document.querySelector('#conv-status') && document.querySelector('#conv-status').dataset.status === 'resolved'").await;
    b.quit().await;
}

#[tokio::test]
async fn in_the_browser_only_messages_in_my_or_unassigned_conversations_pop_up() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let (app, _sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    let boris = super::inbound_conversation(&app, &ch, "u-boris").await;
    let mine = super::inbound_conversation(&app, &ch, "u-anna").await;
    app.patch(&format!("/api/v1/conversations/{boris}"), json!({"assignee": "boris"})).await;
    app.patch(&format!("/api/v1/conversations/{mine}"), json!({"assignee": "anna"})).await;
    sign_in(&b, &app, "anna").await;
    b.js(SPY).await;

    let say = |user: &str, id: &str, text: &str| json!({"message_id": id, "user": {"id": user}, "text": text});
    app.inbound(&ch, SECRET, &say("u-boris", "b-2", "Вопрос для Бориса")).await;
    b.wait_for(10, "return document.querySelector('#conv-list').innerText.includes('Вопрос для Бориса')").await;
    app.inbound(&ch, SECRET, &say("u-anna", "a-2", "Вопрос для Анны")).await;
    let notes = b.wait_for(10, "return window.__notes.length && window.__notes").await;
    let texts: Vec<&str> = notes.as_array().unwrap().iter().map(|n| n[1].as_str().unwrap()).collect();
    assert_eq!(texts, ["Вопрос для Анны"], "a colleague's conversation stays quiet");
    b.quit().await;
}

/// The channels page offers a form per platform, made from its configuration schema: fields
/// with their labels in the operator's language, the rare ones folded; a refused form comes back
/// with what was typed, the secret left out; an accepted one connects the channel with the
/// schema's kinds (an unticked box is `false`).
#[tokio::test]
async fn channels_are_connected_from_forms_made_from_each_platforms_schema() {
    let app = TestApp::spawn().await;
    operator(&app, "admin", Role::Admin).await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "okno_forms_bot");
    let mut c = Client::new(&app);
    assert_eq!(c.login("admin", PASSWORD).await.status, 303);
    let page = c.get("/ui/admin/channels").await.body;
    for (kind, field) in
        [("telegram", "name=\"token\""), ("webhook", "name=\"outbound_url\""), ("ok", "name=\"token\"")]
    {
        let form = &page[page.find(&format!("id=\"channel-form-{kind}\"")).unwrap_or_else(|| panic!("{kind} form"))..];
        let form = &form[..form.find("</form>").unwrap()];
        assert!(form.contains(field) && form.contains(&format!("name=\"kind\" value=\"{kind}\"")), "{kind}: {form}");
        assert!(!form.contains("webhook_secret"), "{kind}: okno's own fields are not offered");
    }
    // The rare fields folded under one summary, each drawn like the others (label, type, help).
    let tg = &page[page.find("id=\"channel-form-telegram\"").unwrap()..];
    let folded = &tg[tg.find("<details").expect("folded fields")..tg.find("</details>").unwrap()];
    assert!(folded.contains("<summary>More settings</summary>"), "{folded}");
    assert!(folded.contains("Telegram Bot API address") && folded.contains("name=\"api_base\""), "{folded}");
    assert!(folded.contains("type=\"url\""), "a folded address is an address field: {folded}");
    let csrf = hidden(&page, "csrf");

    // A refused token: the error, the mode kept, the token not shown back.
    let refused = c
        .post(
            "/ui/admin/channels",
            &[
                ("csrf", &csrf),
                ("kind", "telegram"),
                ("name", "Бот"),
                ("token", "999:wrong-secret-token"),
                ("mode", "webhook"),
                ("api_base", &sim.api_base()),
            ],
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("Telegram refused the token"), "{}", refused.body);
    assert!(!refused.body.contains("999:wrong-secret-token"), "the token is never echoed");
    let telegram = &refused.body[refused.body.find("id=\"channel-form-telegram\"").unwrap()..];
    assert!(telegram.contains("value=\"webhook\" selected"), "the chosen mode kept");

    let ok = c
        .post(
            "/ui/admin/channels",
            &[
                ("csrf", &csrf),
                ("kind", "telegram"),
                ("name", "Бот"),
                ("token", TOKEN),
                ("mode", "polling"),
                ("api_base", &sim.api_base()),
            ],
        )
        .await;
    assert_eq!((ok.status, ok.location.as_deref()), (303, Some("/ui/admin/channels")), "{}", ok.body);
    let site = c
        .post(
            "/ui/admin/channels",
            &[
                ("csrf", &csrf),
                ("kind", "webhook"),
                ("name", "Сайт"),
                ("outbound_url", "https://example.org/okno"),
                ("secret", SECRET),
            ],
        )
        .await;
    assert_eq!(site.status, 303, "{}", site.body);
    let channels = app.running().engine.store.list_channels().await.unwrap();
    let tg = channels.iter().find(|c| c.name == "Бот").expect("the bot connected");
    assert_eq!(tg.info["username"], "okno_forms_bot");
    let wh = channels.iter().find(|c| c.name == "Сайт").expect("the site connected");
    assert_eq!(wh.config["buttons"], json!(false), "an unticked box is false");

    // In Russian, the same forms speak Russian.
    c.cookies.insert("okno_lang".into(), "ru".into());
    let ru = c.get("/ui/admin/channels").await.body;
    assert!(ru.contains("Подключить Telegram-бота") && ru.contains("Адрес получателя"), "Russian labels");
}
