//! First-run setup in a real browser: the login page of a fresh install says how to proceed,
//! the setup link's form makes the first administrator and lands them in the inbox, in both
//! languages.

use okno_testkit::browser::{Browser, BROWSER_TURN};
use okno_testkit::TestApp;

#[tokio::test]
async fn in_the_browser_the_first_administrator_is_made_through_the_setup_link() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let app = TestApp::spawn().await;
    let store = app.running().engine.store.clone();
    let link = okno_server::ui::setup::setup_link(&*store, &app.url).await.unwrap().expect("no operators yet");

    for lang in ["ru", "en"] {
        b.goto(&format!("{}/lang/{lang}", app.url)).await;
        b.goto(&format!("{}/login", app.url)).await;
        let hint = b.text("#first-run").await;
        let expected = if lang == "ru" { "Операторов пока нет" } else { "No operators yet" };
        assert!(hint.contains(expected) && hint.contains("okno user create"), "{lang}: {hint}");
        b.goto(&link).await;
        let title = b.text("h2").await;
        let expected =
            if lang == "ru" { "Первый администратор" } else { "Create the first administrator" };
        assert_eq!(title, expected);
        b.screenshot(&format!("setup-{lang}")).await;
    }

    // Two different passwords: said next to the form, the login kept.
    b.type_into("#setup-login", "olga").await;
    b.type_into("#setup-password", "correct horse battery").await;
    b.type_into("#setup-password2", "correct horse batterz").await;
    b.click("#setup-create").await;
    b.wait_for(10, "return document.querySelector('#setup-error')").await;
    assert_eq!(b.text("#setup-error").await, "The two passwords differ.");
    assert_eq!(b.js("return document.querySelector('#setup-login').value").await, "olga");

    b.type_into("#setup-password", "correct horse battery").await;
    b.type_into("#setup-password2", "correct horse battery").await;
    b.click("#setup-create").await;
    b.wait_for(10, "return location.pathname === '/ui/inbox' && window.oknoLive === true").await;
    assert!(b.text("#who").await.starts_with("olga"), "signed in as the new administrator");
    assert!(b.text("#onboarding").await.contains("Getting started"), "what to do first");
    b.screenshot("getting-started").await;
    assert!(b.js("return !!document.querySelector('a[href=\"/ui/admin/channels\"]')").await == true);

    // The same link again: setup is done.
    b.goto(&link).await;
    assert!(b.text("#setup-done").await.contains("Sign in"), "{}", b.text("body").await);
}

/// The steps checked off on the inbox of an administrator: `(step, done)` in order.
fn steps(html: &str) -> Vec<(String, bool)> {
    html.split("<li class=\"ob-step")
        .skip(1)
        .map(|li| {
            let done = li.starts_with(" done");
            let step = li.split("data-step=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_string();
            (step, done)
        })
        .collect()
}

#[tokio::test]
async fn a_new_administrator_is_shown_what_to_do_first_until_it_is_done() {
    use okno_domain::model::Role;
    use serde_json::json;
    let app = TestApp::spawn().await;
    super::ui::operator(&app, "olga", Role::Admin).await;
    let mut c = super::ui::Client::new(&app);
    assert_eq!(c.login("olga", super::ui::PASSWORD).await.status, 303);
    // TestApp made an API token already; the rest is still to do.
    let page = c.get("/ui/inbox").await.body;
    assert!(page.contains("id=\"onboarding\""), "{page}");
    assert_eq!(
        steps(&page),
        [("channel", false), ("operators", false), ("token", true), ("rules", false), ("bot", false)]
            .map(|(s, d)| (s.to_string(), d))
    );
    assert!(page.contains("href=\"/ui/admin/channels\""));

    // Each step is checked off by what okno holds.
    let sink = okno_testkit::Sink::start(super::SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", sink.url), super::SECRET).await;
    super::ui::operator(&app, "anna", Role::Operator).await;
    let rule = json!({"name": "Оплата", "event": "payment.received", "recipients": [{"external_id": "{{ data.id }}"}], "template": "Оплата"});
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    let page = c.get("/ui/inbox").await.body;
    let done: Vec<bool> = steps(&page).into_iter().map(|(_, d)| d).collect();
    assert_eq!(done, [true, true, true, true, false], "the bot is left");
    let bot = "name: Меню\\nstart: main\\nmenus:\\n  main:\\n    text: Здравствуйте\\n    items:\\n      - {text: Оператор, do: handoff}\\n";
    let r = reqwest::Client::new()
        .put(format!("{}/api/v1/bots/{ch}", app.url))
        .bearer_auth(&app.token)
        .header("content-type", "application/yaml")
        .body(bot.replace("\\n", "\n"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let page = c.get("/ui/inbox").await.body;
    assert!(!page.contains("id=\"onboarding\""), "all done: the checklist is gone");

    // An operator never sees it.
    let mut anna = super::ui::Client::new(&app);
    anna.login("anna", super::ui::PASSWORD).await;
    assert!(!anna.get("/ui/inbox").await.body.contains("id=\"onboarding\""));
}
