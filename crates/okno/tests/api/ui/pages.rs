//! Broadcasts and administration pages in the web UI: the list of broadcasts comes first and
//! the form has its own page; a start time picked in the operator's time zone arrives as the
//! right UTC instant (over HTTP and from the browser's picker), a past one is refused next to
//! its field; the channels and rules pages — and every other page of contacts, broadcasts and
//! administration — hold no English in Russian.

use okno_domain::model::Role;
use okno_testkit::browser::{Browser, BROWSER_TURN};
use okno_testkit::TestApp;
use serde_json::{json, Value};

use super::{hidden, operator, post_form, sign_in, Client, PASSWORD};

/// okno with three people in the group `spring` on the webhook channel, and `olga` signed in.
async fn with_audience() -> (TestApp, okno_testkit::Sink, Client) {
    let (app, sink, ch) = crate::app_with_channel().await;
    for n in 0..3 {
        let conv = crate::inbound_conversation(&app, &ch, &format!("u-spring-{n}")).await;
        let contact =
            app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"]["id"].as_str().unwrap().to_string();
        app.patch(&format!("/api/v1/contacts/{contact}"), json!({"groups": ["spring"]})).await;
    }
    operator(&app, "olga", Role::Operator).await;
    let mut c = Client::new(&app);
    assert_eq!(c.login("olga", PASSWORD).await.status, 303);
    (app, sink, c)
}

/// A start of a broadcast to `spring` at `send_at` in the zone `tz` (none: the form's script
/// did not run).
fn start_form(csrf: &str, send_at: &str, tz: Option<&str>) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("csrf", csrf.to_string()),
        ("action", "start".to_string()),
        ("counted", "3".to_string()),
        ("name", "Весна".to_string()),
        ("groups", "spring".to_string()),
        ("text", "Весенняя скидка".to_string()),
        ("send_at", send_at.to_string()),
    ];
    if let Some(tz) = tz {
        f.push(("tz", tz.to_string()));
    }
    f
}

async fn broadcast(app: &TestApp, location: Option<&str>) -> Value {
    let id = location.expect("a redirect to the broadcast").rsplit('/').next().unwrap().to_string();
    app.get(&format!("/api/v1/broadcasts/{id}")).await.body
}

#[tokio::test]
async fn the_list_of_broadcasts_comes_first_and_the_form_has_its_own_page() {
    let (app, _sink, mut c) = with_audience().await;
    let list = c.get("/ui/broadcasts").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("id=\"broadcasts\"") && list.body.contains("href=\"/ui/broadcasts/new\""));
    assert!(
        !list.body.contains("id=\"new-broadcast\"") && !list.body.contains("name=\"text\""),
        "no form to scroll past"
    );

    let form = c.get("/ui/broadcasts/new").await;
    assert_eq!(form.status, 200);
    assert!(
        form.body.contains("id=\"new-broadcast\"") && form.body.contains("type=\"datetime-local\" name=\"send_at\"")
    );
    assert_eq!(hidden(&form.body, "tz"), "UTC", "without the page's script: the server's time zone, named");
    let csrf = hidden(&form.body, "csrf");
    let made = post_form(&mut c, "/ui/broadcasts", &start_form(&csrf, "2099-03-01T09:00", Some("Europe/Moscow"))).await;
    assert_eq!(made.status, 303, "{}", made.body);

    // The scheduled mailing is listed with its status and when it starts; still no form.
    let list = c.get("/ui/broadcasts").await.body;
    assert!(list.contains("Весна") && list.contains("st-scheduled"), "{list}");
    assert!(list.contains("datetime=\"2099-03-01T06:00:00Z\""), "{list}");
    assert!(!list.contains("<form method=\"post\" action=\"/ui/broadcasts\""));
    assert_eq!(app.get("/api/v1/broadcasts").await.body["items"][0]["name"], "Весна");
}

#[tokio::test]
async fn a_start_time_picked_in_the_operators_zone_arrives_as_utc_and_a_past_one_is_refused() {
    let (app, _sink, mut c) = with_audience().await;
    let csrf = hidden(&c.get("/ui/broadcasts/new").await.body, "csrf");

    // 09:00 in Moscow (+03:00) is 06:00 UTC; 09:00 on a July day in Berlin is 07:00 UTC.
    let moscow =
        post_form(&mut c, "/ui/broadcasts", &start_form(&csrf, "2099-03-01T09:00", Some("Europe/Moscow"))).await;
    assert_eq!(moscow.status, 303, "{}", moscow.body);
    let b = broadcast(&app, moscow.location.as_deref()).await;
    assert_eq!((b["send_at"].as_str(), b["status"].as_str()), (Some("2099-03-01T06:00:00Z"), Some("scheduled")));
    assert_eq!(b["spec"]["send_at"], "2099-03-01T06:00:00Z", "handed to the engine in UTC");
    let berlin =
        post_form(&mut c, "/ui/broadcasts", &start_form(&csrf, "2099-07-01T09:00", Some("Europe/Berlin"))).await;
    assert_eq!(broadcast(&app, berlin.location.as_deref()).await["send_at"], "2099-07-01T07:00:00Z");
    // Without the page's script the server's zone (UTC here) is used, as the page says.
    let plain = post_form(&mut c, "/ui/broadcasts", &start_form(&csrf, "2099-03-01T09:00", None)).await;
    assert_eq!(broadcast(&app, plain.location.as_deref()).await["send_at"], "2099-03-01T09:00:00Z");

    // A time that has passed is refused next to the field; the form keeps what was typed.
    let before = app.get("/api/v1/broadcasts").await.body["items"].as_array().unwrap().len();
    let past = post_form(&mut c, "/ui/broadcasts", &start_form(&csrf, "2020-03-01T09:00", Some("Europe/Moscow"))).await;
    assert_eq!(past.status, 400, "{}", past.body);
    let shown = past.body.replace("&#x2f;", "/");
    assert!(shown.contains("id=\"err-send_at\">2020-03-01 09:00 (Europe/Moscow) has already passed"), "{shown}");
    assert!(past.body.contains("value=\"2020-03-01T09:00\"") && past.body.contains(">Весенняя скидка</textarea>"));
    c.cookies.insert("okno_lang".into(), "ru".into());
    let past = post_form(&mut c, "/ui/broadcasts", &start_form(&csrf, "2020-03-01T09:00", None)).await;
    assert!(past.body.contains("2020-03-01 09:00 (UTC) уже прошло"), "{}", past.body);
    let nonsense = post_form(&mut c, "/ui/broadcasts", &start_form(&csrf, "завтра", None)).await;
    assert!(nonsense.status == 400 && nonsense.body.contains("«завтра» — не дата и время"));
    let zone = post_form(&mut c, "/ui/broadcasts", &start_form(&csrf, "2099-03-01T09:00", Some("Mars/Olympus"))).await;
    assert!(
        zone.status == 400 && zone.body.replace("&#x2f;", "/").contains("«Mars/Olympus» — неизвестный часовой пояс")
    );
    let after = app.get("/api/v1/broadcasts").await.body["items"].as_array().unwrap().len();
    assert_eq!(after, before, "nothing was scheduled by a refused form");
}

/// The visible text of `<main>`: tags, `<code>`, `<pre>`, `<textarea>`, `<svg>` and attribute
/// values dropped (identifiers, sample data and what the operator typed are not the UI's words).
fn visible_main(html: &str) -> String {
    let main = html.split("<main>").nth(1).and_then(|m| m.split("</main>").next()).unwrap_or("");
    let mut text = main.to_string();
    for tag in ["code", "pre", "textarea", "svg", "script", "style"] {
        while let Some(start) = text.find(&format!("<{tag}")) {
            let close = format!("</{tag}>");
            let end = text[start..].find(&close).map(|e| start + e + close.len()).unwrap_or(text.len());
            text.replace_range(start..end, " ");
        }
    }
    let mut out = String::new();
    let mut in_tag = false;
    for ch in text.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    out.replace("&#x2f;", "/").replace("&quot;", "\"").replace("&amp;", "&")
}

/// Latin words on a Russian page that are not names, formats or the operator's data.
fn english_words(text: &str) -> Vec<String> {
    const ALLOWED: &[&str] = &[
        "okno",
        "Telegram",
        "MAX",
        "OK",
        // VK and the names of its settings' sections, as VK's own Russian pages write them.
        "VK",
        // WhatsApp, its owner's name as its settings name it, and a number's «ID».
        "WhatsApp",
        "Meta",
        "ID",
        // SMS gateways' names.
        "SMS",
        "SMSC",
        "ru",
        "Twilio",
        // Avito, as the platform writes its name in Latin letters.
        "Avito",
        "Viber",
        // Mail's protocols and the name IMAP gives the inbox folder.
        "IMAP",
        "SMTP",
        "TLS",
        "STARTTLS",
        "INBOX",
        // The website chat, by its platform name.
        "Widget",
        "Callback",
        "Long",
        "Poll",
        "API",
        "JSON",
        "YAML",
        "HTTP",
        "https",
        "CSV",
        "Bot",
        "BotFather",
        "CRM",
        "UTC",
        "OKNO_PUBLIC_URL",
        "id",
    ];
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.len() >= 2 && w.chars().any(|c| c.is_ascii_alphabetic()))
        // Ids (hex, digits) are data, not words.
        .filter(|w| !w.chars().all(|c| c.is_ascii_hexdigit()))
        .filter(|w| !ALLOWED.contains(w))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_channels_and_rules_pages_and_the_other_pages_here_hold_no_english_in_russian() {
    let (app, _sink, ch) = crate::app_with_channel().await;
    // The operators' own names (of the channel, the person) are in Russian here, as they would be.
    assert_eq!(app.patch(&format!("/api/v1/channels/{ch}"), json!({"name": "Сайт"})).await.status, 200);
    let hello = json!({"message_id": "m-ru", "user": {"id": "70071", "name": "Покупатель"}, "text": "Здравствуйте"});
    let m = app.inbound(&ch, crate::SECRET, &hello).await.body["id"].as_str().unwrap().to_string();
    let contact = app.get(&format!("/api/v1/messages/{m}")).await.body["contact_id"].as_str().unwrap().to_string();
    let named = json!({"name": "Покупатель", "attrs": {"город": "Казань"}, "groups": ["постоянные"]});
    app.patch(&format!("/api/v1/contacts/{contact}"), named).await;
    let rule = json!({"name": "оплата", "event": "payment.received", "recipients": [{"contact_id": contact}], "template": "Оплата получена"});
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    let hook =
        json!({"url": "http://127.0.0.1:9/x", "events": ["message.received"], "secret": "0123456789abcdef-webhook"});
    assert_eq!(app.post("/api/v1/webhooks", hook).await.status, 201);
    let later = json!({"name": "Рассылка", "audience": {"groups": ["постоянные"]}, "text": "Привет", "send_at": "2099-01-01T00:00:00Z"});
    let later = app.post("/api/v1/broadcasts", later).await;
    assert_eq!(later.status, 201);
    let broadcast = later.body["id"].as_str().unwrap().to_string();
    operator(&app, "admin", Role::Admin).await;
    let mut c = Client::new(&app);
    assert_eq!(c.login("admin", PASSWORD).await.status, 303);
    c.cookies.insert("okno_lang".into(), "ru".into());

    // The words the channels and rules pages used to show in English.
    let channels = c.get("/ui/admin/channels").await.body;
    for former in ["Mode", "API base", ">Hook<", ">active<", ">polling<", ">webhook<"] {
        assert!(!channels.contains(former), "channels: `{former}` is still there");
    }
    assert!(channels.contains("работает") && channels.contains("Как okno получает сообщения"));
    let rules = c.get("/ui/admin/rules").await.body;
    for former in ["rule JSON", "data (JSON)", "(inactive)"] {
        assert!(!rules.contains(former), "rules: `{former}` is still there");
    }
    assert!(rules.contains("Правило (JSON)") && rules.contains("Пример данных события (JSON)"));
    // A preview of broken JSON says where, in Russian.
    let token = hidden(&rules, "csrf");
    let p = c.post("/ui/admin/rules", &[("csrf", &token), ("rule", "{\"name\": "), ("data", "{}")]).await;
    assert!(p.body.contains("Правило — не корректный JSON (строка 1, столбец 9)"), "{}", p.body);

    // No English on any page of contacts, broadcasts and administration.
    let pages = [
        "/ui/admin/channels".to_string(),
        "/ui/admin/rules".into(),
        "/ui/admin/tokens".into(),
        "/ui/admin/webhooks".into(),
        "/ui/admin/operators".into(),
        "/ui/admin/bots".into(),
        "/ui/admin/canned".into(),
        "/ui/contacts".into(),
        format!("/ui/contacts/{contact}"),
        format!("/ui/contacts/{contact}/edit"),
        format!("/ui/contacts/{contact}?merge_q=Покупатель"),
        "/ui/contacts/new".into(),
        "/ui/broadcasts".into(),
        "/ui/broadcasts/new".into(),
        format!("/ui/broadcasts/{broadcast}"),
    ];
    for path in &pages {
        let page = c.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        // The test's own token («test admin») and login (`admin`) are data, not the UI's words.
        let words: Vec<String> =
            english_words(&visible_main(&page.body)).into_iter().filter(|w| w != "test" && w != "admin").collect();
        assert!(words.is_empty(), "{path} shows English in Russian: {words:?}");
    }
    // The check itself sees English when there is some.
    c.cookies.insert("okno_lang".into(), "en".into());
    let english = english_words(&visible_main(&c.get("/ui/admin/channels").await.body));
    assert!(english.iter().any(|w| w == "Inbound"), "{english:?}");
}

// --- the browser -------------------------------------------------------------------------

#[tokio::test]
async fn in_the_browser_the_picker_is_read_in_the_browsers_time_zone() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let (app, _sink, _c) = with_audience().await;
    // The browser lives in Vladivostok (+10:00, no summer time).
    let zone = json!({"cmd": "Emulation.setTimezoneOverride", "params": {"timezoneId": "Asia/Vladivostok"}});
    b.cmd(reqwest::Method::POST, "/goog/cdp/execute", Some(zone)).await;
    sign_in(&b, &app, "olga").await;

    b.open(&format!("{}/ui/broadcasts", app.url)).await;
    b.click("#new-broadcast-link").await;
    b.wait_for(10, "return document.querySelector('#new-broadcast')").await;
    assert_eq!(b.text("[data-tz-name]").await, "Asia/Vladivostok", "the page names the zone it reads times in");
    b.type_into("#new-broadcast [name=name]", "Утренняя").await;
    b.type_into("#new-broadcast [name=groups]", "spring").await;
    b.type_into("#new-broadcast [name=text]", "Доброе утро").await;
    // What the picker yields once a date and a time are chosen in it.
    b.js("document.querySelector('#send-at').value = '2099-03-01T09:00'; return 1").await;
    b.click("#bc-count").await;
    b.wait_for(10, "return document.querySelector('#count')").await;
    assert_eq!(b.text("#count").await, "3");
    assert_eq!(b.js("return document.querySelector('#send-at').value").await, json!("2099-03-01T09:00"), "kept");
    b.click("#bc-start").await;
    b.wait_for(10, "return document.querySelector('#broadcast')").await;
    let id = b.path().await.rsplit('/').next().unwrap().to_string();
    let sent = app.get(&format!("/api/v1/broadcasts/{id}")).await.body;
    assert_eq!(sent["send_at"], "2099-02-28T23:00:00Z", "09:00 in Vladivostok");
    // Shown back in the browser's zone.
    assert!(b.text("#bc-send-at").await.contains("09:00"), "{}", b.text("#bc-send-at").await);
    b.open(&format!("{}/ui/broadcasts", app.url)).await;
    assert!(
        b.js("return document.querySelector('#broadcasts').getBoundingClientRect().top < 200").await == json!(true)
    );
    b.screenshot("broadcasts").await;
    b.quit().await;
}
