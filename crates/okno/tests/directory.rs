//! Operators from an LDAP directory, through the real login form over HTTP, against a real
//! OpenLDAP `slapd` the test kit starts ([`okno_testkit::slapd`]: its people and groups are
//! drawn there). Without `slapd` each test is skipped with a note, unless
//! `LDAP_TEST_REQUIRED=1` (set by `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::Duration;

use okno_domain::model::Role;
use okno_server::directory::LdapSettings;
use okno_testkit::slapd::{self, person, Slapd};
use okno_testkit::{eventually, TestApp, TestDb};
use serde_json::Value;

/// A browser without JavaScript: keeps cookies, does not follow redirects.
struct Client {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Client {
    fn new(app: &TestApp) -> Client {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Client { http, base: app.url.clone(), cookies: BTreeMap::new() }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let resp = req.header("cookie", cookie).send().await.unwrap();
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

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn login(&mut self, login: &str, password: &str) -> Page {
        let page = self.get("/login").await;
        let marker = "name=\"csrf\" value=\"";
        let start = page.body.find(marker).expect("the login form") + marker.len();
        let csrf = page.body[start..].split('"').next().unwrap().to_string();
        let form = [("csrf", csrf.as_str()), ("login", login), ("password", password)];
        let req = self.http.post(format!("{}/login", self.base)).form(&form);
        self.send(req).await
    }

    /// Whether the session cookie still opens the inbox.
    async fn signed_in(&self) -> bool {
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let req = self.http.get(format!("{}/ui/inbox", self.base)).header("cookie", cookie);
        req.send().await.unwrap().status() == 200
    }
}

/// okno with `[ldap]` set by `ldap`.
async fn app_with(ldap: LdapSettings) -> TestApp {
    TestApp::spawn_on(TestDb::sqlite(), move |s| s.ldap = ldap).await
}

async fn signs_in(app: &TestApp, login: &str, password: &str) -> Client {
    let mut c = Client::new(app);
    let p = c.login(login, password).await;
    assert_eq!((p.status, p.location.as_deref()), (303, Some("/ui/inbox")), "{login}: {}", p.body);
    assert!(c.signed_in().await);
    c
}

async fn role_of(app: &TestApp, login: &str) -> Option<(Role, bool)> {
    let a = app.running().engine.store.operator_account(login).await.unwrap()?;
    Some((a.operator.role, a.disabled))
}

/// The audit lines with `action`.
async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    let a = app.get("/api/v1/audit?limit=200").await;
    a.body["items"].as_array().unwrap().iter().filter(|e| e["action"] == action).cloned().collect()
}

#[tokio::test]
async fn a_directory_user_signs_in_with_the_highest_role_of_their_nested_groups() {
    let Some(dir) = Slapd::start() else { return };
    let app = app_with(dir.settings()).await;

    // ivan is three groups down from okno-operators (and in a loop of groups).
    signs_in(&app, "ivan", &slapd::password("ivan")).await;
    assert_eq!(role_of(&app, "ivan").await, Some((Role::Operator, false)));
    let dn = app.running().engine.store.operator_directory_dn("ivan").await.unwrap();
    assert_eq!(dn.as_deref(), Some(person("ivan").as_str()), "marked as a directory account");
    // anna is in okno-admins and, through support-team, okno-operators: admin wins.
    signs_in(&app, "anna", &slapd::password("anna")).await;
    assert_eq!(role_of(&app, "anna").await, Some((Role::Admin, false)));
    // olga is a uniqueMember of okno-viewers.
    signs_in(&app, "olga", &slapd::password("olga")).await;
    assert_eq!(role_of(&app, "olga").await, Some((Role::Restricted, false)));

    // A second sign-in is the same account; the directory's spelling of the login is kept.
    signs_in(&app, "IVAN", &slapd::password("ivan")).await;
    let accounts = app.running().engine.store.operator_accounts().await.unwrap();
    let logins: Vec<&str> = accounts.iter().map(|a| a.operator.login.as_str()).collect();
    assert_eq!(logins, ["anna", "ivan", "olga"]);
    assert_eq!(audit(&app, "operator.directory_create").await.len(), 3);
    assert_eq!(audit(&app, "operator.login").await.len(), 4);

    // Without the walk of nested groups ivan is in no mapped group.
    let mut direct = dir.settings();
    direct.nested_groups = okno_server::directory::NestedGroups::None;
    let flat = app_with(direct).await;
    let p = Client::new(&flat).login("ivan", &slapd::password("ivan")).await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains("in no group that may use okno"), "{}", p.body);
    signs_in(&flat, "anna", &slapd::password("anna")).await;
}

#[tokio::test]
async fn wrong_passwords_unknown_users_twins_and_people_without_a_group_are_refused() {
    let Some(dir) = Slapd::start() else { return };
    let app = app_with(dir.settings()).await;

    for (login, password, says) in [
        ("ivan", "wrong-pass", "Wrong login or password"),
        ("nobody", "nobody-pass", "Wrong login or password"),
        ("twin", "twin-pass", "Wrong login or password"),
        ("petr", "petr-pass", "in no group that may use okno"),
    ] {
        let mut c = Client::new(&app);
        let p = c.login(login, password).await;
        assert_eq!(p.status, 401, "{login}: {}", p.body);
        assert!(p.body.contains(says), "{login}: {}", p.body);
        assert!(!c.cookies.contains_key("okno_session"), "{login}");
        assert!(role_of(&app, login).await.is_none(), "{login} got no account");
    }
    let failed = audit(&app, "operator.login_failed").await;
    assert_eq!(failed.len(), 4, "{failed:?}");
    // The wrong password was the directory's to refuse: it saw ivan's bind.
    assert_eq!(dir.binds_as(&person("ivan")), 1);
    // Five failures for one login lock it out, as for local accounts, even with the right password.
    for _ in 0..4 {
        Client::new(&app).login("ivan", "wrong-pass").await;
    }
    assert_eq!(Client::new(&app).login("ivan", &slapd::password("ivan")).await.status, 429);
}

#[tokio::test]
async fn an_empty_password_is_refused_without_any_bind() {
    let Some(dir) = Slapd::start() else { return };
    let app = app_with(dir.settings()).await;
    // The counter counts: a wrong password is one service bind and one user bind.
    let before = dir.binds();
    assert_eq!(Client::new(&app).login("ivan", "wrong").await.status, 401);
    assert!(
        eventually(5, || async { (dir.binds() == before + 2).then_some(()) }).await.is_some(),
        "{}",
        dir.log_text()
    );

    let before = dir.binds();
    for blank in ["", " ", "\t  "] {
        let p = Client::new(&app).login("ivan", blank).await;
        assert_eq!(p.status, 401, "{}", p.body);
        assert!(p.body.contains("Wrong login or password"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dir.binds(), before, "no bind at all for a blank password");
    assert_eq!(dir.binds_as(&person("ivan")), 1);
    assert_eq!(audit(&app, "operator.login_failed").await.len(), 4, "counted as failed logins");
}

#[tokio::test]
async fn a_filter_injection_in_the_login_matches_nobody() {
    let Some(dir) = Slapd::start() else { return };
    let app = app_with(dir.settings()).await;
    // Unescaped, each of these would find ivan alone (or everyone) and his password would
    // sign in as him.
    for login in ["iva*", "ivan)(objectClass=*", "*)(uid=ivan", "*", "*)(uid=*"] {
        let mut c = Client::new(&app);
        let p = c.login(login, &slapd::password("ivan")).await;
        assert_eq!(p.status, 401, "{login}: {}", p.body);
        assert!(!c.cookies.contains_key("okno_session"), "{login}");
    }
    assert_eq!(dir.binds_as(&person("ivan")), 0, "no entry matched, so nobody's password was tried");
    assert!(app.running().engine.store.operator_accounts().await.unwrap().is_empty());
    assert!(dir.log_text().contains(r"(uid=iva\2A)"), "the filter carried the escaped login");
}

#[tokio::test]
async fn ldaps_and_starttls_work_and_an_untrusted_certificate_is_refused() {
    let Some(dir) = Slapd::start() else { return };
    let ldaps = LdapSettings { url: Some(dir.ldaps_url.clone()), ca_file: Some(dir.ca_file.clone()), ..dir.settings() };
    let starttls = LdapSettings { starttls: true, ca_file: Some(dir.ca_file.clone()), ..dir.settings() };
    for (name, ldap) in [("ldaps", ldaps.clone()), ("starttls", starttls.clone())] {
        let mut app = app_with(ldap).await;
        let mut c = Client::new(&app);
        let p = c.login("ivan", &slapd::password("ivan")).await;
        assert_eq!(p.status, 303, "{name}: {}", p.body);
        // Its re-checks would bind while the binds are counted below.
        app.stop().await;
    }
    let log = dir.log_text();
    assert!(log.contains("EXT oid=1.3.6.1.4.1.1466.20037"), "StartTLS was asked for");
    assert!(log.contains("ssf=128") || log.contains("ssf=256"), "binds went over TLS");

    // Another CA, or the system's roots: the directory's certificate is not trusted.
    let untrusted = [
        ("ldaps, another CA", LdapSettings { ca_file: Some(dir.other_ca_file.clone()), ..ldaps.clone() }),
        ("ldaps, system roots", LdapSettings { ca_file: None, ..ldaps }),
        ("starttls, another CA", LdapSettings { ca_file: Some(dir.other_ca_file.clone()), ..starttls }),
    ];
    for (name, ldap) in untrusted {
        let app = app_with(ldap).await;
        let binds = dir.binds();
        let p = Client::new(&app).login("ivan", &slapd::password("ivan")).await;
        assert_eq!(p.status, 503, "{name}: {}", p.body);
        assert!(p.body.contains("cannot be reached"), "{name}: {}", p.body);
        assert_eq!(dir.binds(), binds, "{name}: nothing was sent");
    }
}

#[tokio::test]
async fn a_user_taken_out_of_the_group_loses_their_live_session_within_the_recheck() {
    let Some(dir) = Slapd::start() else { return };
    let app = app_with(dir.settings()).await;
    let ivan = signs_in(&app, "ivan", &slapd::password("ivan")).await;
    let olga = signs_in(&app, "olga", &slapd::password("olga")).await;

    // The nested link that made ivan an operator goes.
    dir.remove_member("cn=support-team,ou=groups,dc=example,dc=org", "cn=support-night,ou=groups,dc=example,dc=org")
        .await;
    let ended = eventually(10, || async { (!ivan.signed_in().await).then_some(()) }).await;
    assert!(ended.is_some(), "ivan's session ended");
    assert_eq!(role_of(&app, "ivan").await, Some((Role::Operator, true)), "disabled in okno");
    let lines = audit(&app, "operator.directory_disable").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["detail"]["reason"], "in no group ldap.roles maps");
    assert!(olga.signed_in().await, "others stay signed in");

    // Signing in again is refused; back in the group, the account is enabled again.
    let p = Client::new(&app).login("ivan", &slapd::password("ivan")).await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains("in no group that may use okno"), "{}", p.body);
    dir.add_member(slapd::OPERATORS_GROUP, &person("ivan")).await;
    signs_in(&app, "ivan", &slapd::password("ivan")).await;
    assert_eq!(role_of(&app, "ivan").await, Some((Role::Operator, false)));
}

#[tokio::test]
async fn a_sign_in_the_directory_now_refuses_ends_the_sessions_open_elsewhere_at_once() {
    let Some(dir) = Slapd::start() else { return };
    // No re-check within the test: only the sign-in can end the session.
    let app = app_with(LdapSettings { recheck_secs: 3_600, ..dir.settings() }).await;
    let at_work = signs_in(&app, "ivan", &slapd::password("ivan")).await;
    dir.remove_member("cn=support-team,ou=groups,dc=example,dc=org", "cn=support-night,ou=groups,dc=example,dc=org")
        .await;
    assert!(at_work.signed_in().await, "nothing has asked the directory yet");

    // A wrong password proves nothing and changes nothing.
    assert_eq!(Client::new(&app).login("ivan", "wrong").await.status, 401);
    assert!(at_work.signed_in().await);
    // The right one: refused, and the session at work ends with it.
    let p = Client::new(&app).login("ivan", &slapd::password("ivan")).await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains("in no group that may use okno"), "{}", p.body);
    assert!(!at_work.signed_in().await);
    assert_eq!(role_of(&app, "ivan").await, Some((Role::Operator, true)));
    assert_eq!(audit(&app, "operator.directory_disable").await.len(), 1);
}

#[tokio::test]
async fn a_locked_or_deleted_entry_ends_sessions_and_a_lower_group_lowers_the_role() {
    let Some(dir) = Slapd::start() else { return };
    let app = app_with(dir.settings()).await;
    let ivan = signs_in(&app, "ivan", &slapd::password("ivan")).await;
    let olga = signs_in(&app, "olga", &slapd::password("olga")).await;
    let anna = signs_in(&app, "anna", &slapd::password("anna")).await;
    assert_eq!(role_of(&app, "anna").await, Some((Role::Admin, false)));

    dir.lock(&person("ivan")).await;
    dir.delete(&person("olga")).await;
    dir.remove_member(slapd::ADMINS_GROUP, &person("anna")).await;
    let done = eventually(10, || async {
        (!ivan.signed_in().await
            && !olga.signed_in().await
            && role_of(&app, "anna").await == Some((Role::Operator, false)))
        .then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "ivan: {:?}, olga: {:?}, anna: {:?}",
        role_of(&app, "ivan").await,
        role_of(&app, "olga").await,
        role_of(&app, "anna").await
    );
    assert!(anna.signed_in().await, "a lower role keeps the session");
    let reasons: Vec<String> = audit(&app, "operator.directory_disable")
        .await
        .iter()
        .map(|e| format!("{}: {}", e["detail"]["login"].as_str().unwrap(), e["detail"]["reason"].as_str().unwrap()))
        .collect();
    assert!(reasons.contains(&"ivan: locked in the directory".to_string()), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("olga: the directory entry is gone")), "{reasons:?}");
    let role_lines = audit(&app, "operator.role").await;
    assert_eq!(role_lines.len(), 1, "{role_lines:?}");
    assert_eq!(
        (role_lines[0]["detail"]["from"].as_str(), role_lines[0]["detail"]["to"].as_str()),
        (Some("admin"), Some("operator"))
    );
    // The lock holds at the login form too, though this slapd would still accept the bind.
    assert_eq!(Client::new(&app).login("ivan", &slapd::password("ivan")).await.status, 401);
}

#[tokio::test]
async fn a_directory_outage_is_a_clear_refusal_never_a_sign_in() {
    let Some(mut dir) = Slapd::start() else { return };
    // A service account the directory refuses: the password typed is never tried.
    let refused = app_with(LdapSettings { bind_password: Some("not-it".into()), ..dir.settings() }).await;
    let p = Client::new(&refused).login("ivan", &slapd::password("ivan")).await;
    assert_eq!(p.status, 503, "{}", p.body);
    assert_eq!(dir.binds_as(&person("ivan")), 0);

    let app = app_with(dir.settings()).await;
    let ivan = signs_in(&app, "ivan", &slapd::password("ivan")).await;
    dir.kill();
    let p = Client::new(&app).login("anna", &slapd::password("anna")).await;
    assert_eq!(p.status, 503, "{}", p.body);
    assert!(p.body.contains("The directory that checks passwords cannot be reached now"), "{}", p.body);
    assert!(role_of(&app, "anna").await.is_none());
    // A known directory operator is not let in on the strength of okno's own records either.
    assert_eq!(Client::new(&app).login("ivan", &slapd::password("ivan")).await.status, 503);
    assert!(audit(&app, "operator.login_failed").await.is_empty(), "an outage is not the person's failure");
    // Sessions opened before stay while the directory cannot be asked (rechecks keep trying).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(ivan.signed_in().await);

    // Nothing listening at all.
    let closed = LdapSettings { url: Some("ldap://127.0.0.1:9".into()), ..dir.settings() };
    let app = app_with(closed).await;
    assert_eq!(Client::new(&app).login("ivan", "ivan-pass").await.status, 503);
}

#[tokio::test]
async fn a_local_account_keeps_its_login_and_the_directory_is_not_asked() {
    let Some(dir) = Slapd::start() else { return };
    let app = app_with(dir.settings()).await;
    let hash = okno_server::ui::hash_password("local password 1").unwrap();
    app.running().engine.store.create_operator("ivan", Role::Restricted, &hash).await.unwrap();

    assert_eq!(Client::new(&app).login("ivan", &slapd::password("ivan")).await.status, 401);
    signs_in(&app, "ivan", "local password 1").await;
    assert_eq!(role_of(&app, "ivan").await, Some((Role::Restricted, false)), "not the directory's role");
    assert_eq!(dir.binds_as(&person("ivan")), 0, "the directory was never asked about ivan");
    // The directory's ivan, reached by another spelling, does not take the local account either.
    assert_eq!(Client::new(&app).login("Ivan", &slapd::password("ivan")).await.status, 401);
    assert_eq!(app.running().engine.store.operator_directory_dn("ivan").await.unwrap(), None);
}

#[tokio::test]
async fn a_bind_password_sealed_by_okno_secrets_seal_is_opened_with_the_key() {
    let Some(dir) = Slapd::start() else { return };
    let db = TestDb::sqlite();
    let key = db.secret_key();
    let mut seal = std::process::Command::new(okno_testkit::app::okno_binary())
        .args(["secrets", "seal"])
        .env("OKNO_SECRET_KEY", &key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    seal.stdin.take().unwrap().write_all(format!("{}\n", slapd::SERVICE_PASSWORD).as_bytes()).unwrap();
    let out = seal.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sealed = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(sealed.starts_with("sealed:v1:") && !sealed.contains(slapd::SERVICE_PASSWORD), "{sealed}");

    let ldap = LdapSettings { bind_password: Some(sealed.clone().into()), ..dir.settings() };
    let app = TestApp::spawn_on(db, move |s| s.ldap = ldap).await;
    signs_in(&app, "ivan", &slapd::password("ivan")).await;

    // Under another key the sealed value does not open: okno does not start.
    let mut settings = app.settings.clone();
    settings.secret_key = Some(okno_store::seal::SecretKey::generate().to_base64().into());
    let err = okno_server::directory::Directory::from_settings(&settings).unwrap_err();
    assert!(err.message.contains("ldap.bind_password"), "{}", err.message);
}
