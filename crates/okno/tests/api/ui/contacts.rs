//! Contacts in the web UI over plain HTTP and in the browser: created and edited with the
//! API's checks (errors next to the fields, what was typed kept), a form drawn before
//! someone else's change, the audit log and the `contact.updated` webhook; what a restricted
//! operator may do; merging a contact found by search; a link code that ties a Telegram user
//! to the card; the card on a phone.

use okno_domain::model::Role;
use okno_testkit::browser::{Browser, BROWSER_TURN};
use okno_testkit::telegram::TelegramSim;
use okno_testkit::{Sink, TestApp};
use serde_json::json;

use super::{hidden, operator, post_form, sign_in, Client, PASSWORD, TOKEN};
use crate::SECRET;

/// The contact id a `303` to the card names.
fn card_id(location: Option<&str>) -> String {
    let at = location.expect("a redirect to the card");
    at.trim_start_matches("/ui/contacts/").split('?').next().unwrap().to_string()
}

/// Signs `login` in on a fresh client.
async fn signed_in(app: &TestApp, login: &str, role: Role) -> Client {
    operator(app, login, role).await;
    let mut c = Client::new(app);
    assert_eq!(c.login(login, PASSWORD).await.status, 303);
    c
}

#[tokio::test]
async fn an_operator_creates_a_contact_and_edits_it_with_errors_kept_next_to_the_fields() {
    let app = TestApp::spawn().await;
    let sink = Sink::start(SECRET).await;
    let hook = json!({"url": format!("{}/hook", sink.url), "events": ["contact.updated"], "secret": SECRET});
    assert_eq!(app.post("/api/v1/webhooks", hook).await.status, 201);
    let mut c = signed_in(&app, "olga", Role::Operator).await;

    let list = c.get("/ui/contacts").await;
    assert!(list.body.contains("href=\"/ui/contacts/new\""), "the list offers a new contact");
    let page = c.get("/ui/contacts/new").await;
    assert_eq!(page.status, 200);
    let csrf = hidden(&page.body, "csrf");
    let form = |name: &str, phone: &str, email: &str, ext: &str, groups: &str, attrs: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("name", name.to_string()),
            ("phone", phone.to_string()),
            ("email", email.to_string()),
            ("external_id", ext.to_string()),
            ("groups", groups.to_string()),
            ("attrs", attrs.to_string()),
        ]
    };

    // Every wrong field is named next to it, and what was typed stays in the form.
    let bad = post_form(&mut c, "/ui/contacts/new", &form("Анна", "12ab", "anna.example.com", "", "vip", "city")).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("id=\"err-phone\">«12ab» is not a phone number"), "{}", bad.body);
    assert!(bad.body.contains("id=\"err-email\">«anna.example.com» is not an email address"));
    assert!(bad.body.contains("id=\"err-attrs\">«city»: write an attribute as key=value"));
    assert!(
        bad.body.contains("value=\"12ab\"")
            && bad.body.contains("value=\"Анна\"")
            && bad.body.contains(">city</textarea>")
    );
    let empty = post_form(&mut c, "/ui/contacts/new", &form("", "", "", "", "vip", "")).await;
    assert_eq!(empty.status, 400);
    assert!(empty.body.contains("Fill in at least a name, phone, email or external id"));
    // In Russian, the same errors in Russian.
    c.cookies.insert("okno_lang".into(), "ru".into());
    let ru = post_form(&mut c, "/ui/contacts/new", &form("Анна", "12ab", "", "", "", "")).await;
    assert!(ru.body.contains("«12ab» — не номер телефона"), "{}", ru.body);
    c.cookies.insert("okno_lang".into(), "en".into());
    assert!(app.get("/api/v1/contacts").await.body["items"].as_array().unwrap().is_empty(), "nothing was made");

    // Made as the API makes it: the phone normalised, groups sorted, values read as JSON.
    let made = post_form(
        &mut c,
        "/ui/contacts/new",
        &form(
            " Анна Смирнова ",
            "8 (912) 000-11-22",
            "anna@example.com",
            "1c-42",
            "vip, clients",
            "city=Казань\nvisits=2",
        ),
    )
    .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let id = card_id(made.location.as_deref());
    let api = app.get(&format!("/api/v1/contacts/{id}")).await.body;
    assert_eq!(api["name"], "Анна Смирнова");
    assert_eq!(api["phone"], "+79120001122");
    assert_eq!(api["groups"], json!(["clients", "vip"]));
    assert_eq!(api["attrs"], json!({"city": "Казань", "visits": 2}));
    let card = c.get(made.location.as_deref().unwrap()).await;
    assert!(card.body.contains("id=\"flash\"") && card.body.contains("The contact is created."));

    // A second contact may not take the external id: the form points at the one who has it.
    let twin = post_form(&mut c, "/ui/contacts/new", &form("Другая Анна", "", "", "1c-42", "", "")).await;
    assert_eq!(twin.status, 409, "{}", twin.body);
    assert!(twin.body.contains("Another contact already has the external id «1c-42»"));
    assert!(twin.body.contains(&format!("href=\"/ui/contacts/{id}\" id=\"external-owner\"")));
    assert!(twin.body.contains("value=\"Другая Анна\""), "what was typed is kept");

    // The edit form holds the contact; an emptied field empties it.
    let edit = c.get(&format!("/ui/contacts/{id}/edit")).await;
    assert_eq!(edit.status, 200);
    assert!(edit.body.contains("value=\"+79120001122\"") && edit.body.contains("city=Казань\nvisits=2</textarea>"));
    let seen_at = hidden(&edit.body, "seen_at");
    let mut changed = form("Анна Смирнова-Котова", "+79120001122", "", "1c-42", "clients", "city=Казань\nvisits=3");
    changed.push(("seen_at", seen_at.clone()));
    let saved = post_form(&mut c, &format!("/ui/contacts/{id}/edit"), &changed).await;
    assert_eq!((saved.status, saved.location.as_deref()), (303, Some(&*format!("/ui/contacts/{id}?saved=1"))));
    let api = app.get(&format!("/api/v1/contacts/{id}")).await.body;
    assert_eq!((api["name"].as_str(), &api["email"]), (Some("Анна Смирнова-Котова"), &json!(null)));
    assert_eq!((&api["groups"], &api["attrs"]["visits"]), (&json!(["clients"]), &json!(3)));

    // A form drawn before that save is refused, keeps what was typed, and a second save
    // (now knowingly over the newer version) goes through.
    let mut late = form("Анна С.", "+79120001122", "", "1c-42", "clients", "");
    late.push(("seen_at", seen_at));
    let refused = post_form(&mut c, &format!("/ui/contacts/{id}/edit"), &late).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains("Someone changed this contact after you opened the form"));
    assert!(refused.body.contains("value=\"Анна С.\""));
    assert_eq!(app.get(&format!("/api/v1/contacts/{id}")).await.body["name"], "Анна Смирнова-Котова");
    late.pop();
    late.push(("seen_at", hidden(&refused.body, "seen_at")));
    assert_eq!(post_form(&mut c, &format!("/ui/contacts/{id}/edit"), &late).await.status, 303);
    assert_eq!(app.get(&format!("/api/v1/contacts/{id}")).await.body["name"], "Анна С.");

    // An edit may not empty everything a contact is known by, as a new contact may not lack it.
    let edit = c.get(&format!("/ui/contacts/{id}/edit")).await;
    let mut nothing = form("", "", "", "", "clients", "");
    nothing.push(("seen_at", hidden(&edit.body, "seen_at")));
    let refused = post_form(&mut c, &format!("/ui/contacts/{id}/edit"), &nothing).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("Fill in at least a name, phone, email or external id"), "{}", refused.body);
    let api = app.get(&format!("/api/v1/contacts/{id}")).await.body;
    assert_eq!((api["name"].as_str(), api["phone"].as_str()), (Some("Анна С."), Some("+79120001122")));

    // Without the form's token nothing changes.
    let forged: Vec<(&str, String)> = late.iter().filter(|(k, _)| *k != "csrf").cloned().collect();
    assert_eq!(post_form(&mut c, &format!("/ui/contacts/{id}/edit"), &forged).await.status, 403);

    // Each change reached the business system as `contact.updated` and is in the audit log.
    let sent = sink.wait_accepted(3, 15).await;
    assert!(sent.iter().all(|r| r.body["type"] == "contact.updated" && r.signature_ok));
    assert!(sent.iter().any(|r| r.body["data"]["name"] == "Анна С." && r.body["data"]["id"] == id.as_str()));
    let audit = app.get("/api/v1/audit").await.body["items"].clone();
    let lines: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["target"] == id.as_str())
        .map(|a| (a["action"].as_str().unwrap().to_string(), a["actor"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(lines.iter().filter(|(a, _)| a == "contact.update").count(), 2, "{lines:?}");
    assert!(lines.contains(&("contact.create".into(), "operator:olga".into())), "{lines:?}");
}

#[tokio::test]
async fn a_restricted_operator_edits_what_it_may_and_never_sees_a_phone_or_email() {
    let app = TestApp::spawn().await;
    let petr = app
        .post(
            "/api/v1/contacts",
            json!({"name": "Пётр", "phone": "+79991234567", "email": "petr@example.com", "external_id": "1c-7"}),
        )
        .await;
    let petr = petr.body["id"].as_str().unwrap().to_string();
    let ivan = app.post("/api/v1/contacts", json!({"name": "Иван"})).await.body["id"].as_str().unwrap().to_string();
    let mut rita = signed_in(&app, "rita", Role::Restricted).await;

    // The form shows the stored phone and email masked, with no field to change them.
    let page = rita.get(&format!("/ui/contacts/{petr}/edit")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("1234567") && !page.body.contains("petr@"), "{}", page.body);
    assert!(page.body.contains("+7999•••••67") && page.body.contains("p•••@example.com"));
    assert!(!page.body.contains("name=\"phone\"") && !page.body.contains("name=\"email\""));
    let csrf = hidden(&page.body, "csrf");
    let seen_at = hidden(&page.body, "seen_at");
    let form = |name: &str, phone: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("seen_at", seen_at.clone()),
            ("name", name.to_string()),
            ("phone", phone.to_string()),
            ("external_id", "1c-7".to_string()),
            ("groups", "vip".to_string()),
        ]
    };
    // A posted phone over the hidden one is refused, not applied.
    let r = post_form(&mut rita, &format!("/ui/contacts/{petr}/edit"), &form("Пётр", "+70000000000")).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("cannot change a phone number or email it cannot see"));
    // The rest saves, and the hidden phone and email are kept, not emptied.
    let r = post_form(&mut rita, &format!("/ui/contacts/{petr}/edit"), &form("Пётр Сидоров", "")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let api = app.get(&format!("/api/v1/contacts/{petr}")).await.body;
    assert_eq!((api["name"].as_str(), api["phone"].as_str()), (Some("Пётр Сидоров"), Some("+79991234567")));
    assert_eq!((api["email"].as_str(), &api["groups"]), (Some("petr@example.com"), &json!(["vip"])));

    // Where the card has none, a phone may be added (the person just said it).
    let page = rita.get(&format!("/ui/contacts/{ivan}/edit")).await;
    assert!(page.body.contains("name=\"phone\""));
    let add = vec![
        ("csrf", csrf.clone()),
        ("seen_at", hidden(&page.body, "seen_at")),
        ("name", "Иван".to_string()),
        ("phone", "+7 999 555-44-33".to_string()),
    ];
    assert_eq!(post_form(&mut rita, &format!("/ui/contacts/{ivan}/edit"), &add).await.status, 303);
    assert_eq!(app.get(&format!("/api/v1/contacts/{ivan}")).await.body["phone"], "+79995554433");
    let card = rita.get(&format!("/ui/contacts/{ivan}")).await;
    assert!(card.body.contains("+7999•••••33") && !card.body.contains("5554433"), "shown masked at once");

    // No link codes for this role, and a merge search does not find people by hidden numbers.
    assert!(!card.body.contains("id=\"link-start\""));
    assert_eq!(rita.post(&format!("/ui/contacts/{ivan}/link"), &[("csrf", &csrf)]).await.status, 403);
    let found = rita.get(&format!("/ui/contacts/{ivan}/merge-search?merge_q=1234567")).await;
    assert!(!found.body.contains(&petr), "{}", found.body);
    let found = rita.get(&format!("/ui/contacts/{ivan}/merge-search?merge_q=Сидоров")).await;
    assert!(found.body.contains(&petr) && found.body.contains("+7999•••••67") && !found.body.contains("1234567"));
    // A name match is found even behind more contacts whose hidden phones match the same text
    // than the search shows.
    for n in 0..12 {
        assert_eq!(app.post("/api/v1/contacts", json!({"phone": format!("+7912000{n:02}77")})).await.status, 201);
    }
    let named =
        app.post("/api/v1/contacts", json!({"name": "Касса 77"})).await.body["id"].as_str().unwrap().to_string();
    let found = rita.get(&format!("/ui/contacts/{ivan}/merge-search?merge_q=77")).await;
    assert!(found.body.contains(&named), "{}", found.body);
    assert!(!found.body.contains("•••••77"), "nobody found by a hidden phone: {}", found.body);

    // A new contact may be made with a phone, and is shown masked from then on.
    let made = rita
        .post(
            "/ui/contacts/new",
            &[("csrf", &csrf), ("name", "Ольга"), ("phone", "+7 912 111-22-33"), ("email", "olga@example.com")],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let card = rita.get(made.location.as_deref().unwrap()).await;
    assert!(card.body.contains("+7912•••••33") && !card.body.contains("1112233") && !card.body.contains("olga@"));
}

#[tokio::test]
async fn the_other_contact_is_found_by_search_seen_confirmed_and_merged() {
    let (app, _sink, ch) = crate::app_with_channel().await;
    let petr = app
        .post("/api/v1/contacts", json!({"name": "Пётр Сидоров", "external_id": "1c-7", "groups": ["vip"]}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The same person wrote on the website, as «Петя (сайт)», and left a phone there.
    let conv = crate::inbound_conversation(&app, &ch, "u-77").await;
    let site =
        app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"]["id"].as_str().unwrap().to_string();
    app.patch(&format!("/api/v1/contacts/{site}"), json!({"name": "Петя (сайт)", "phone": "+79990007788"})).await;
    let mut c = signed_in(&app, "olga", Role::Operator).await;

    // Found by name, by phone digits and by external id; never the card itself.
    for q in ["петя", "9990007788"] {
        let found = c.get(&format!("/ui/contacts/{petr}/merge-search?merge_q={}", urlencode(q))).await;
        assert_eq!(found.status, 200);
        assert!(found.body.contains(&format!("merge_with={site}")), "{q}: {}", found.body);
        assert!(!found.body.contains("<html"), "only the list, for the type-ahead");
    }
    let found = c.get(&format!("/ui/contacts/{site}/merge-search?merge_q=1c-7")).await;
    assert!(found.body.contains(&format!("merge_with={petr}")), "{}", found.body);
    let itself = c.get(&format!("/ui/contacts/{petr}/merge-search?merge_q=1c-7")).await;
    assert!(!itself.body.contains("merge_with="), "a card never offers itself: {}", itself.body);
    // Without a script, the card's search form does the same.
    let card = c.get(&format!("/ui/contacts/{petr}?merge_q={}", urlencode("Петя"))).await;
    assert!(card.body.contains(&format!("merge_with={site}")) && card.body.contains("id=\"merge-results\""));

    // Chosen: who it is, what moves, and a button; no raw id to paste anywhere.
    let confirm = c.get(&format!("/ui/contacts/{petr}?merge_with={site}")).await;
    assert!(
        confirm.body.contains("id=\"merge-confirm\"")
            && confirm.body.contains("Merge «Петя (сайт)» into «Пётр Сидоров»?")
    );
    assert!(confirm.body.contains("+79990007788"));
    assert!(!confirm.body.contains("name=\"other_id\" placeholder"), "no field to paste an id into");
    let csrf = hidden(&confirm.body, "csrf");
    assert_eq!(hidden(&confirm.body, "other_id"), site);

    let merged = c.post(&format!("/ui/contacts/{petr}/merge"), &[("csrf", &csrf), ("other_id", &site)]).await;
    assert_eq!((merged.status, merged.location.as_deref()), (303, Some(&*format!("/ui/contacts/{petr}?merged=1"))));
    assert_eq!(app.get(&format!("/api/v1/contacts/{site}")).await.status, 404, "the other card is gone");
    let kept = app.get(&format!("/api/v1/contacts/{petr}")).await.body;
    assert_eq!(kept["phone"], "+79990007788", "an empty field filled from the other");
    assert_eq!(kept["identities"][0]["user_id"], "u-77");
    assert_eq!(app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"]["id"], petr.as_str());
    let audit = app.get("/api/v1/audit").await.body.to_string();
    assert!(audit.contains("contact.merge") && audit.contains(&site));

    // Merging a contact into itself is a clear error in the operator's language.
    c.cookies.insert("okno_lang".into(), "ru".into());
    let same = c.post(&format!("/ui/contacts/{petr}/merge"), &[("csrf", &csrf), ("other_id", &petr)]).await;
    assert_eq!(same.status, 400);
    assert!(same.body.contains("Контакт нельзя объединить с самим собой"), "{}", same.body);
}

/// `s` as a query value.
fn urlencode(s: &str) -> String {
    let mut u = reqwest::Url::parse("http://x/").unwrap();
    u.query_pairs_mut().append_pair("q", s);
    u.query().unwrap().trim_start_matches("q=").to_string()
}

/// A page's text with the HTML escapes of `/` and quotes undone (links and values are
/// escaped in attributes).
fn unescaped(html: &str) -> String {
    html.replace("&#x2f;", "/").replace("&quot;", "\"").replace("&#x27;", "'")
}

#[tokio::test]
async fn a_link_code_from_the_card_ties_the_telegram_user_to_the_contact() {
    let app = TestApp::spawn().await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "okno_ui_bot");
    app.telegram_channel(&sim, TOKEN, "polling").await;
    let id = app.post("/api/v1/contacts", json!({"name": "Иван Петров", "external_id": "emp-42"})).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = signed_in(&app, "olga", Role::Operator).await;
    let card = c.get(&format!("/ui/contacts/{id}")).await;
    assert!(card.body.contains("id=\"link-start\""));
    let shown = c.post(&format!("/ui/contacts/{id}/link"), &[("csrf", &hidden(&card.body, "csrf"))]).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let code = shown.body.split("id=\"link-code-value\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    let page = unescaped(&shown.body);
    assert!(page.contains(&format!("value=\"https://t.me/okno_ui_bot?start={code}\"")), "{page}");

    sim.user(TOKEN, 7030, "Ivan").send_text(&format!("/start {code}"));
    let confirm = sim.wait_sent(TOKEN, 1, 10).await;
    assert_eq!(confirm[0].plain.as_deref(), Some("Готово! Ваш аккаунт связан: Иван Петров."));
    assert_eq!(app.get(&format!("/api/v1/contacts/{id}")).await.body["identities"][0]["user_id"], "7030");
    assert!(app.get("/api/v1/audit").await.body.to_string().contains("contact.link_code"));
}

// --- the browser -------------------------------------------------------------------------

#[tokio::test]
async fn in_the_browser_a_contact_is_created_edited_and_merged_by_search_and_reads_well_on_a_phone() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let (app, _sink, ch) = crate::app_with_channel().await;
    operator(&app, "olga", Role::Operator).await;
    // Someone wrote on the website with a long, unbroken user id.
    let long_user = format!("visitor-{}", "7".repeat(60));
    let inbound =
        json!({"message_id": "m-1", "user": {"id": long_user, "name": "Покупатель с сайта"}, "text": "Здравствуйте"});
    assert_eq!(app.inbound(&ch, SECRET, &inbound).await.status, 200);
    sign_in(&b, &app, "olga").await;

    // New contact from the list.
    b.open(&format!("{}/ui/contacts", app.url)).await;
    b.click("#new-contact").await;
    b.wait_for(10, "return document.querySelector('#contact-form')").await;
    b.type_into("#f-name", "Мария Иванова").await;
    b.type_into("#f-phone", "+7 (912) 345-67-89").await;
    b.type_into("#f-external_id", &format!("1c-{}", "9".repeat(50))).await;
    b.type_into("#f-groups", "клиенты").await;
    b.screenshot("contact-form").await;
    b.click("#contact-save").await;
    b.wait_for(10, "return document.querySelector('#flash')").await;
    assert_eq!(b.text("#contact-phone").await, "+79123456789");
    let maria = b.path().await.trim_start_matches("/ui/contacts/").to_string();

    // Edited: a wrong email is said next to the field; fixed, it saves.
    b.click("#edit-contact").await;
    b.wait_for(10, "return document.querySelector('#f-email')").await;
    b.type_into("#f-email", "maria-at-example").await;
    b.click("#contact-save").await;
    b.wait_for(10, "return document.querySelector('#err-email')").await;
    assert!(b.text("#err-email").await.contains("is not an email address"));
    b.type_into("#f-email", "maria@example.com").await;
    b.click("#contact-save").await;
    b.wait_for(10, "return document.querySelector('#flash')").await;
    assert_eq!(b.text("#contact-email").await, "maria@example.com");

    // The website visitor is found by typing a part of the name, chosen, confirmed, merged.
    b.type_into("#merge-q", "покупатель").await;
    b.wait_for(10, "return document.querySelector('#merge-results a.pick')").await;
    assert!(b.text("#merge-results").await.contains("Покупатель с сайта"));
    b.screenshot("contact-merge-search").await;
    b.click("#merge-results a.pick").await;
    b.wait_for(10, "return document.querySelector('#merge-confirm')").await;
    assert!(b.text("#merge-confirm").await.contains("Покупатель с сайта"));
    b.click("#merge-confirm-button").await;
    b.wait_for(10, "return document.querySelector('#flash')").await;
    assert!(b.text(".idents").await.contains(&long_user));
    let api = app.get(&format!("/api/v1/contacts/{maria}")).await.body;
    assert_eq!(api["identities"][0]["user_id"], long_user.as_str());
    b.screenshot("contact-card").await;

    // On a phone the card, with its long ids, fits the screen (and reads in Russian).
    b.goto(&format!("{}/lang/ru", app.url)).await;
    b.screen(Some((390, 844))).await;
    b.open(&format!("{}/ui/contacts/{maria}", app.url)).await;
    let width = b.js("return document.documentElement.scrollWidth").await.as_i64().unwrap();
    assert!(width <= 400, "no horizontal scrolling on a phone: {width}px");
    let id_right = b.js("return document.querySelector('#contact-id').getBoundingClientRect().right").await;
    assert!(id_right.as_f64().unwrap() <= 390.0, "the id stays on screen: {id_right}");
    b.screenshot("contact-phone").await;
    b.screen(None).await;
    b.quit().await;
}
