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
    assert!(b.js("return !!document.querySelector('a[href=\"/ui/admin/channels\"]')").await == true);

    // The same link again: setup is done.
    b.goto(&link).await;
    assert!(b.text("#setup-done").await.contains("Sign in"), "{}", b.text("body").await);
}
