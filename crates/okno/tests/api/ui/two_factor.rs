//! Two-factor sign-in over plain HTTP: an operator turns it on from «my account» with a code
//! computed from the key the page shows (by an independent TOTP implementation, as an app
//! would), then signs in with password and code; a code and a recovery code are good once;
//! wrong codes end the attempt and count against the login limits; a role that requires two
//! factors sets the authenticator up before its first session and cannot turn it off; an
//! administrator resets it; the key is sealed at rest.

use okno_domain::model::Role;
use okno_testkit::{TestApp, TestDb};
use totp_rs::{Algorithm, Secret, TOTP};

use super::{hidden, operator, Client, Page, PASSWORD};

/// The code an authenticator app shows for `key` (as the page prints it), `ahead` steps from now.
fn code(key: &str, ahead: u64) -> String {
    let key: String = key.split_whitespace().collect();
    let totp =
        TOTP::new(Algorithm::SHA1, 6, 0, 30, Secret::Encoded(key).to_bytes().unwrap(), None, String::new()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    totp.generate(now + ahead * 30)
}

/// The authenticator key a page shows.
fn key_on(page: &Page) -> String {
    let marker = "id=\"totp-secret\" translate=\"no\">";
    let start = page.body.find(marker).unwrap_or_else(|| panic!("no key on the page: {}", page.body)) + marker.len();
    page.body[start..].split('<').next().unwrap().to_string()
}

/// The recovery codes a page shows once.
fn recovery_codes(page: &Page) -> Vec<String> {
    let start = page.body.find("<pre class=\"").expect("recovery codes");
    let inner = &page.body[start..];
    let inner = &inner[inner.find('>').unwrap() + 1..inner.find("</pre>").unwrap()];
    inner.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// Signs in up to the code page.
async fn password_step(c: &mut Client, login: &str) -> Page {
    let p = c.login(login, PASSWORD).await;
    assert_eq!((p.status, p.location.as_deref()), (303, Some("/login/code")), "{}", p.body);
    assert!(!c.cookies.contains_key("okno_session"), "no session before the code");
    c.get("/login/code").await
}

async fn send_code(c: &mut Client, page: &Page, code: &str) -> Page {
    let csrf = hidden(&page.body, "csrf");
    c.post("/login/code", &[("csrf", &csrf), ("code", code)]).await
}

async fn signed_in(c: &mut Client) -> bool {
    c.get("/ui/inbox").await.status == 200
}

/// Turns two-factor sign-in on from «my account»; returns the key and the recovery codes.
async fn turn_on(c: &mut Client) -> (String, Vec<String>) {
    let account = c.get("/ui/account").await;
    assert!(account.body.contains("id=\"two-factor-begin\""), "{}", account.body);
    let csrf = hidden(&account.body, "csrf");
    let begun = c.post("/ui/account/two-factor", &[("csrf", &csrf), ("action", "begin")]).await;
    assert_eq!(begun.status, 303);
    let setup = c.get("/ui/account").await;
    assert!(setup.body.contains("<svg"), "a QR code to scan");
    let key = key_on(&setup);
    let wrong = c.post("/ui/account/two-factor", &[("csrf", &csrf), ("action", "confirm"), ("code", "000000")]).await;
    assert_eq!(wrong.status, 400, "a wrong first code turns nothing on");
    let wrong_key = key_on(&wrong);
    assert_eq!(wrong_key, key, "the same key until it is confirmed");
    let done =
        c.post("/ui/account/two-factor", &[("csrf", &csrf), ("action", "confirm"), ("code", &code(&key, 0))]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let codes = recovery_codes(&done);
    assert_eq!(codes.len(), 10, "{codes:?}");
    assert!(c.get("/ui/account").await.body.contains("id=\"recovery-left\">10<"));
    (key, codes)
}

#[tokio::test]
async fn an_operator_turns_on_two_factor_sign_in_and_each_code_is_good_once() {
    let app = TestApp::spawn().await;
    operator(&app, "anna", Role::Operator).await;
    let mut c = Client::new(&app);
    assert_eq!(c.login("anna", PASSWORD).await.location.as_deref(), Some("/ui/inbox"), "a password alone, so far");
    let (key, recovery) = turn_on(&mut c).await;

    // A new browser: the password leads to the code page, and nothing else opens.
    let mut b = Client::new(&app);
    let page = password_step(&mut b, "anna").await;
    assert!(page.body.contains("id=\"code-form\""), "{}", page.body);
    assert!(!page.body.contains("totp-secret"), "the key is never shown at sign-in once set up");
    assert!(!signed_in(&mut b).await);
    // The code that confirmed the setup was taken then; the next step's is good, once.
    let used = send_code(&mut b, &page, &code(&key, 0)).await;
    assert_eq!(used.status, 401, "a code already used");
    assert!(used.body.contains("wrong or already used"), "{}", used.body);
    let next = code(&key, 1);
    let ok = send_code(&mut b, &used, &next).await;
    assert_eq!((ok.status, ok.location.as_deref()), (303, Some("/ui/inbox")), "{}", ok.body);
    assert!(signed_in(&mut b).await);
    assert!(!b.cookies.contains_key("okno_2fa"), "the challenge is over");

    let mut again = Client::new(&app);
    let page = password_step(&mut again, "anna").await;
    assert_eq!(send_code(&mut again, &page, &next).await.status, 401, "the same code does not sign in twice");
    // A recovery code, however typed, signs in once.
    let ok = send_code(&mut again, &page, &recovery[0].to_uppercase().replace('-', " ")).await;
    assert_eq!(ok.location.as_deref(), Some("/ui/inbox"), "{}", ok.body);
    let mut third = Client::new(&app);
    let page = password_step(&mut third, "anna").await;
    assert_eq!(send_code(&mut third, &page, &recovery[0]).await.status, 401, "a recovery code is good once");
    assert!(third.get("/ui/account").await.status != 200);
    assert!(again.get("/ui/account").await.body.contains("id=\"recovery-left\">9<"));

    // The audit log tells how each session began.
    let audit = app.get("/api/v1/audit").await.body;
    let by: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "operator.login")
        .map(|e| e["detail"]["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["recovery_code", "totp", "password"], "{audit}");
    assert!(audit.to_string().contains("operator.totp_enable"));

    // Turning it off needs the password and a code.
    let csrf = hidden(&again.get("/ui/account").await.body, "csrf");
    let form = [("csrf", csrf.as_str()), ("action", "off"), ("current", PASSWORD), ("code", "123456")];
    assert_eq!(again.post("/ui/account/two-factor", &form).await.status, 400, "a wrong code");
    let form = [("csrf", csrf.as_str()), ("action", "off"), ("current", PASSWORD), ("code", recovery[1].as_str())];
    assert_eq!(again.post("/ui/account/two-factor", &form).await.status, 303);
    let mut fourth = Client::new(&app);
    assert_eq!(fourth.login("anna", PASSWORD).await.location.as_deref(), Some("/ui/inbox"), "a password alone again");
}

#[tokio::test]
async fn wrong_codes_end_the_attempt_are_audited_and_count_against_the_login_limits() {
    let app = TestApp::spawn().await;
    operator(&app, "anna", Role::Operator).await;
    let mut c = Client::new(&app);
    c.login("anna", PASSWORD).await;
    let (key, _) = turn_on(&mut c).await;

    let mut b = Client::new(&app);
    let mut page = password_step(&mut b, "anna").await;
    for i in 0..4 {
        page = send_code(&mut b, &page, "111111").await;
        assert_eq!(page.status, 401, "wrong code {i}");
    }
    let last = send_code(&mut b, &page, "111111").await;
    assert_eq!((last.status, last.location.as_deref()), (303, Some("/login")), "the fifth ends the attempt");
    assert_eq!(b.get("/login/code").await.location.as_deref(), Some("/login"));
    // The right code is too late for that attempt, and the login's limit is used up here.
    let late = b.post("/login/code", &[("csrf", "x"), ("code", &code(&key, 1))]).await;
    assert_eq!(late.location.as_deref(), Some("/login"));
    assert_eq!(b.login("anna", PASSWORD).await.status, 429, "five wrong codes count as five failed logins");

    let audit = app.get("/api/v1/audit").await.body;
    let wrong =
        audit["items"].as_array().unwrap().iter().filter(|e| e["action"] == "operator.login_code_failed").count();
    assert_eq!(wrong, 5, "{audit}");
}

#[tokio::test]
async fn a_role_that_requires_two_factors_sets_it_up_before_its_first_session_and_cannot_turn_it_off() {
    let app = TestApp::spawn_on(TestDb::sqlite(), |s| s.ui.two_factor_required_for = vec!["admin".into()]).await;
    operator(&app, "root", Role::Admin).await;
    operator(&app, "anna", Role::Operator).await;
    let mut anna = Client::new(&app);
    assert_eq!(anna.login("anna", PASSWORD).await.location.as_deref(), Some("/ui/inbox"), "operators are not asked");

    let mut c = Client::new(&app);
    let page = password_step(&mut c, "root").await;
    assert!(page.body.contains("<svg"), "the setup: a QR code to scan");
    let key = key_on(&page);
    assert_eq!(key_on(&c.get("/login/code").await), key, "a reload shows the same key");
    assert!(!signed_in(&mut c).await, "no session before the authenticator is set up");
    let wrong = send_code(&mut c, &page, "000000").await;
    assert_eq!(wrong.status, 401);
    let done = send_code(&mut c, &wrong, &code(&key, 0)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(recovery_codes(&done).len(), 10, "the recovery codes, shown once");
    assert!(signed_in(&mut c).await, "the session began with the setup");

    let account = c.get("/ui/account").await;
    assert!(!account.body.contains("two-factor-turn-off"), "no way to turn it off is offered");
    let csrf = hidden(&account.body, "csrf");
    let form = [("csrf", csrf.as_str()), ("action", "off"), ("current", PASSWORD), ("code", "000000")];
    assert_eq!(c.post("/ui/account/two-factor", &form).await.status, 403, "required for administrators");

    // The key is kept sealed, never as the page showed it.
    let raw: Vec<String> = {
        let path = app.db.url.strip_prefix("sqlite://").unwrap().to_string();
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn.prepare("SELECT secret FROM operator_totp").unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(raw.len(), 1);
    assert!(raw[0].starts_with("sealed:v1:") && !raw[0].contains(&key.replace(' ', "")), "{raw:?}");

    // A lost phone: another administrator resets it, and the next sign-in sets up a new one.
    operator(&app, "vera", Role::Admin).await;
    let mut vera = Client::new(&app);
    let page = password_step(&mut vera, "vera").await;
    let vera_key = key_on(&page);
    send_code(&mut vera, &page, &code(&vera_key, 0)).await;
    let admin_page = vera.get("/ui/admin/operators").await;
    assert!(admin_page.body.contains("op-reset-two-factor"), "{}", admin_page.body);
    let csrf = hidden(&admin_page.body, "csrf");
    let reset = vera
        .post("/ui/admin/operators/change", &[("csrf", &csrf), ("login", "root"), ("action", "reset_two_factor")])
        .await;
    assert_eq!(reset.status, 303, "{}", reset.body);
    let mut again = Client::new(&app);
    let page = password_step(&mut again, "root").await;
    let new_key = key_on(&page);
    assert_ne!(new_key, key, "a new authenticator to set up");
    let audit = app.get("/api/v1/audit").await.body.to_string();
    assert!(audit.contains("operator.totp_reset") && audit.contains("operator:vera"), "{audit}");
}

#[tokio::test]
async fn two_factor_sign_in_works_on_postgresql_across_processes() {
    let Some(db) = TestDb::postgres().await else { return };
    let url = db.url.clone();
    let app = TestApp::spawn_on(db, |_| {}).await;
    let other = TestApp::spawn_on(TestDb::borrowed(&url), |_| {}).await;
    operator(&app, "anna", Role::Operator).await;
    let mut c = Client::new(&app);
    c.login("anna", PASSWORD).await;
    let (key, _) = turn_on(&mut c).await;
    // The password on one process, the code on the other.
    let mut b = Client::new(&app);
    let page = password_step(&mut b, "anna").await;
    let mut b2 = Client::new(&other);
    b2.cookies = b.cookies.clone();
    let next = code(&key, 1);
    let ok = send_code(&mut b2, &page, &next).await;
    assert_eq!(ok.location.as_deref(), Some("/ui/inbox"), "{}", ok.body);
    assert!(signed_in(&mut b2).await);
    // The code is spent for both processes.
    let mut d = Client::new(&app);
    let page = password_step(&mut d, "anna").await;
    assert_eq!(send_code(&mut d, &page, &next).await.status, 401);
}
