//! Events, tasks and surveys in the operator window, and the events list of the API: over plain
//! HTTP (the list's pages and filters, why a person got nothing and what to do, a rule whose
//! condition was false, a delivered message's channel and conversation, masking for the
//! restricted role) and in headless Chromium with the Telegram simulator (an event with one
//! delivered and one unresolved recipient; a task posted from the page reaching the group and
//! showing who took it; a survey started from the page, answered, and its results drawn).
//! `SCREENSHOTS=1` saves `events.png`, `tasks.png` and `surveys.png` to `docs/screenshots/`.

use okno_domain::model::Role;
use okno_testkit::browser::{Browser, BROWSER_TURN};
use okno_testkit::telegram::{Sent, TelegramSim};
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Value};

use super::SECRET;

const PASSWORD: &str = "correct horse battery";
const TOKEN: &str = "515151:pages-test-bot";

async fn operator(app: &TestApp, login: &str, role: Role) {
    let hash = okno_server::ui::hash_password(PASSWORD).unwrap();
    app.running().engine.store.create_operator(login, role, &hash).await.unwrap();
}

/// A signed-in operator over plain HTTP: a cookie jar that does not follow redirects.
struct Operator {
    http: reqwest::Client,
    base: String,
    cookies: String,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Operator {
    async fn sign_in(app: &TestApp, login: &str, lang: &str) -> Operator {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let form = http.get(format!("{}/login", app.url)).send().await.unwrap();
        let mut jar: Vec<String> = Vec::new();
        let keep = |resp: &reqwest::Response, jar: &mut Vec<String>| {
            for c in resp.headers().get_all("set-cookie") {
                let pair = c.to_str().unwrap().split(';').next().unwrap().to_string();
                let name = pair.split('=').next().unwrap().to_string();
                jar.retain(|p| !p.starts_with(&format!("{name}=")));
                jar.push(pair);
            }
        };
        keep(&form, &mut jar);
        let csrf = hidden(&form.text().await.unwrap(), "csrf");
        let resp = http
            .post(format!("{}/login", app.url))
            .header("cookie", jar.join("; "))
            .form(&[("csrf", csrf.as_str()), ("login", login), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 303, "{login} signs in");
        keep(&resp, &mut jar);
        jar.push(format!("okno_lang={lang}"));
        Operator { http, base: app.url.clone(), cookies: jar.join("; ") }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Page {
        let resp = req.header("cookie", &self.cookies).send().await.unwrap();
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        Page { status, location, body: resp.text().await.unwrap() }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    /// Posts a form, with the CSRF token read from `page` first.
    async fn post(&self, page: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = hidden(&self.get(page).await.body, "csrf");
        let mut fields = form.to_vec();
        fields.push(("csrf", &csrf));
        self.send(self.http.post(format!("{}{path}", self.base)).form(&fields)).await
    }
}

/// The value of the first hidden input named `name`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no `{name}` field in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// The part of a page from the element with `id` to the end of its section, with the
/// template engine's escapes (`&#x2f;`, `&quot;`…) read back.
fn section(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[start..];
    unescape(&rest[..rest.find("</section>").unwrap_or(rest.len())])
}

fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

async fn rule(app: &TestApp, body: Value) {
    let r = app.post("/api/v1/rules", body).await;
    assert_eq!(r.status, 201, "{r:?}");
}

async fn post_event(app: &TestApp, body: Value) -> String {
    let r = app.post("/api/v1/events", body).await;
    assert_eq!(r.status, 202, "{r:?}");
    r.body["id"].as_str().unwrap().to_string()
}

/// Waits until the event's rules have run and none of its messages is still queued.
async fn settled(app: &TestApp, id: &str) -> Value {
    eventually(15, || async {
        let e = app.get(&format!("/api/v1/events/{id}")).await.body;
        let done = e["status"] != "accepted"
            && e["deliveries"].as_array().is_some_and(|d| d.iter().all(|d| d["status"] != "queued"));
        done.then_some(e)
    })
    .await
    .expect("the event settles")
}

/// A person on the website channel (they wrote once), made the business contact `external_id`.
async fn site_person(app: &TestApp, ch: &str, user: &str, external_id: &str, name: &str) -> (String, String) {
    let conv = super::inbound_conversation(app, ch, user).await;
    let contact =
        app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"]["id"].as_str().unwrap().to_string();
    let r = app.patch(&format!("/api/v1/contacts/{contact}"), json!({"external_id": external_id, "name": name})).await;
    assert_eq!(r.status, 200, "{r:?}");
    (contact, conv)
}

// --- the API's list of events ------------------------------------------------------------

#[tokio::test]
async fn the_events_list_pages_newest_first_and_filters_by_type_status_key_and_time() {
    let (app, sink, ch) = super::app_with_channel().await;
    site_person(&app, &ch, "u-petrov", "1c-manager-petrov", "Петров").await;
    rule(
        &app,
        json!({"name": "оплата", "event": "payment.received", "recipients": [{"external_id": "{{ data.manager_id }}"}],
               "template": "Оплата {{ data.amount }} ₽"}),
    )
    .await;
    let mut ids = Vec::new();
    for (n, ty) in
        ["payment.received", "stock.low", "payment.received", "stock.low", "payment.received"].iter().enumerate()
    {
        let data = json!({"manager_id": "1c-manager-petrov", "amount": 100 * (n + 1), "client_phone": "+79991234567"});
        ids.push(post_event(&app, json!({"type": ty, "key": format!("k-{n}"), "data": data})).await);
    }
    for id in &ids {
        settled(&app, id).await;
    }
    sink.wait_accepted(3, 10).await;

    // Newest first, two a page, the cursor carrying on; the last page has no next.
    let first = app.get("/api/v1/events?limit=2").await;
    assert_eq!(first.status, 200, "{first:?}");
    let page_ids = |a: &Value| {
        a["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(page_ids(&first.body), vec![ids[4].clone(), ids[3].clone()]);
    let cursor = first.body["next"].as_str().expect("a next page").to_string();
    let second = app.get(&format!("/api/v1/events?limit=2&cursor={cursor}")).await;
    assert_eq!(page_ids(&second.body), vec![ids[2].clone(), ids[1].clone()]);
    let third = app.get(&format!("/api/v1/events?limit=2&cursor={}", second.body["next"].as_str().unwrap())).await;
    assert_eq!(page_ids(&third.body), vec![ids[0].clone()]);
    assert!(third.body["next"].is_null());

    // Each item: the event and, in figures, who got a message.
    let paid = &first.body["items"][0];
    assert_eq!(
        (paid["type"].as_str(), paid["key"].as_str(), paid["status"].as_str()),
        (Some("payment.received"), Some("k-4"), Some("processed"))
    );
    assert_eq!(paid["counts"], json!({"sent": 1, "queued": 0, "failed": 0, "unresolved": 0}));
    assert_eq!(paid["matched_rules"], 1);
    assert_eq!(paid["data"]["amount"], 500);
    assert!(paid["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(first.body["items"][1]["status"], "no_rule");

    let only = |path: String| {
        let app = &app;
        async move {
            let a = app.get(&path).await;
            assert_eq!(a.status, 200, "{path}: {a:?}");
            page_ids(&a.body)
        }
    };
    assert_eq!(only("/api/v1/events?type=stock.low".into()).await, vec![ids[3].clone(), ids[1].clone()]);
    assert_eq!(only("/api/v1/events?status=no_rule".into()).await, vec![ids[3].clone(), ids[1].clone()]);
    assert_eq!(only("/api/v1/events?status=processed&type=payment.received".into()).await.len(), 3);
    assert_eq!(only("/api/v1/events?key=k-2".into()).await, vec![ids[2].clone()]);
    // A time window from the third event's time: exactly the events accepted at or after it
    // (`from` inclusive), and before it the rest (`to` exclusive) — whatever times they share.
    let all = app.get("/api/v1/events?limit=10").await.body;
    let times: Vec<(String, i64)> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let at = okno_domain::time::parse_rfc3339(e["created_at"].as_str().unwrap()).unwrap();
            (e["id"].as_str().unwrap().to_string(), at)
        })
        .collect();
    let pivot = times.iter().find(|(id, _)| *id == ids[2]).unwrap().1;
    let since: Vec<String> = times.iter().filter(|(_, at)| *at >= pivot).map(|(id, _)| id.clone()).collect();
    let until: Vec<String> = times.iter().filter(|(_, at)| *at < pivot).map(|(id, _)| id.clone()).collect();
    assert!(since.contains(&ids[2]) && since.contains(&ids[4]));
    let pivot = urlencode(&okno_domain::time::to_rfc3339(pivot));
    assert_eq!(only(format!("/api/v1/events?from={pivot}")).await, since);
    assert_eq!(only(format!("/api/v1/events?to={pivot}")).await, until);
    assert_eq!(only("/api/v1/events?to=2999-01-01T00:00:00%2B03:00".into()).await.len(), 5);
    assert!(only("/api/v1/events?to=2000-01-01".into()).await.is_empty(), "a bare date is a day's midnight");
    assert_eq!(only("/api/v1/events?from=2000-01-01&type=stock.low".into()).await.len(), 2);

    // Bad filters are clear errors.
    for (path, code) in [
        ("/api/v1/events?status=done", "invalid_status"),
        ("/api/v1/events?from=yesterday", "invalid_time"),
        ("/api/v1/events?types=stock.low", "invalid_query"),
        ("/api/v1/events?limit=many", "invalid_query"),
    ] {
        let a = app.get(path).await;
        assert_eq!((a.status, a.code()), (400, code), "{path}: {a:?}");
    }

    // A restricted token sees the phone in the data masked, in the list and in the event.
    let restricted = app.token_for(Role::Restricted).await;
    let list = app.call("GET", "/api/v1/events?limit=1", None, Some(&restricted)).await;
    assert_eq!(list.body["items"][0]["data"]["client_phone"], "+7999•••••67", "{list:?}");
    let one = app.call("GET", &format!("/api/v1/events/{}", ids[4]), None, Some(&restricted)).await;
    assert_eq!(one.body["data"]["client_phone"], "+7999•••••67");
    assert_eq!(app.get("/api/v1/events?limit=1").await.body["items"][0]["data"]["client_phone"], "+79991234567");
    // The list is in the OpenAPI document.
    let doc = app.get("/api/v1/openapi.json").await.body;
    let params: Vec<&str> = doc["paths"]["/api/v1/events"]["get"]["parameters"]
        .as_array()
        .expect("GET /events documented with its filters")
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, vec!["type", "status", "key", "from", "to", "limit", "cursor"]);
}

/// An RFC 3339 time as a query value (`+` would read as a blank).
fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

// --- an event's page, over plain HTTP ----------------------------------------------------

#[tokio::test]
async fn an_event_for_a_person_who_does_not_exist_shows_that_reason_and_what_to_do() {
    let app = TestApp::spawn().await;
    operator(&app, "anna", Role::Operator).await;
    rule(
        &app,
        json!({"name": "Оплата — менеджеру", "event": "payment.received",
               "recipients": [{"external_id": "{{ data.manager_id }}"}], "template": "Оплата {{ data.amount }}"}),
    )
    .await;
    let id = post_event(&app, json!({"type": "payment.received", "key": "ПКО-1", "data": {"manager_id": "1c-manager-petrov", "amount": 1250000}})).await;
    let ev = settled(&app, &id).await;
    assert_eq!(ev["unresolved"][0]["code"], "unknown_external_id", "{ev}");
    assert_eq!(ev["unresolved"][0]["value"], "1c-manager-petrov");

    let en = Operator::sign_in(&app, "anna", "en").await;
    let page = en.get(&format!("/ui/events/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let people = section(&page.body, "event-people");
    assert!(people.contains("No contact has the external id «1c-manager-petrov»."), "{people}");
    assert!(people.contains("Create the contact with this external id"), "the advice: {people}");
    assert!(
        people.contains("href=\"/ui/contacts/new?external_id=1c-manager-petrov\""),
        "a button that starts the contact with the id to use: {people}"
    );
    assert!(people.contains("Link a messenger"), "and how to link their messenger");
    let form = en.get("/ui/contacts/new?external_id=1c-manager-petrov").await;
    assert!(form.body.contains("value=\"1c-manager-petrov\""), "the form starts with the external id");
    // The data it carried, readably.
    let data = section(&page.body, "event-data");
    assert!(data.contains("<dt>manager_id</dt><dd>1c-manager-petrov</dd>"), "{data}");
    assert!(data.contains("<dt>amount</dt><dd>1250000</dd>"), "{data}");
    assert!(section(&page.body, "event").contains("0 / 1"), "nobody of one got it");

    let ru = Operator::sign_in(&app, "anna", "ru").await;
    let page = ru.get(&format!("/ui/events/{id}")).await;
    let people = section(&page.body, "event-people");
    assert!(people.contains("Нет контакта с внешним id «1c-manager-petrov»."), "{people}");
    assert!(people.contains("Создайте контакт с этим внешним id"), "{people}");

    // The list shows it as not reached.
    let list = en.get("/ui/events").await;
    assert_eq!(list.status, 200);
    let body = unescape(&list.body);
    let row = &body[body.find(&format!("data-id=\"{id}\"")).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("payment.received") && row.contains("ПКО-1"), "{row}");
    assert!(row.contains("✗ 1 not reached"), "{row}");

    // Once the contact exists but has no messenger, the next event says that instead.
    let c = app.post("/api/v1/contacts", json!({"external_id": "1c-manager-petrov", "name": "Петров Иван"})).await;
    let contact = c.body["id"].as_str().unwrap().to_string();
    let id = post_event(
        &app,
        json!({"type": "payment.received", "key": "ПКО-2", "data": {"manager_id": "1c-manager-petrov", "amount": 5}}),
    )
    .await;
    settled(&app, &id).await;
    let page = en.get(&format!("/ui/events/{id}")).await;
    let people = section(&page.body, "event-people");
    assert!(people.contains("Петров Иван has no messenger linked to okno."), "{people}");
    assert!(people.contains(&format!("POST /api/v1/contacts/{contact}/link")), "{people}");
    assert!(people.contains(&format!("href=\"/ui/contacts/{contact}\"")), "a link to the card");
}

#[tokio::test]
async fn a_rule_whose_condition_was_false_is_shown_as_not_matched() {
    let (app, _sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    site_person(&app, &ch, "u-1", "1c-1", "Анна").await;
    rule(
        &app,
        json!({"name": "крупная оплата", "event": "payment.received", "condition": "data.amount > 100000",
                      "recipients": [{"external_id": "1c-1"}], "template": "Крупная оплата"}),
    )
    .await;
    rule(
        &app,
        json!({"name": "любая оплата", "event": "payment.received",
                      "recipients": [{"external_id": "1c-1"}], "template": "Оплата"}),
    )
    .await;
    let id = post_event(&app, json!({"type": "payment.received", "key": "p-1", "data": {"amount": 500}})).await;
    let ev = settled(&app, &id).await;
    let outcome =
        |name: &str| ev["rules"].as_array().unwrap().iter().find(|r| r["rule_name"] == name).cloned().unwrap();
    assert_eq!(outcome("крупная оплата")["outcome"], "not_matched", "{ev}");
    assert_eq!(outcome("крупная оплата")["detail"], "data.amount > 100000");
    assert_eq!(outcome("любая оплата")["outcome"], "matched");

    let en = Operator::sign_in(&app, "anna", "en").await;
    let page = en.get(&format!("/ui/events/{id}")).await;
    let rules = section(&page.body, "event-rules");
    let row = |name: &str| {
        let at = rules.find(&format!("data-rule=\"{name}\"")).unwrap_or_else(|| panic!("{name} in {rules}"));
        let rest = &rules[at..];
        rest[..rest.find("</tr>").unwrap()].to_string()
    };
    let quiet = row("крупная оплата");
    assert!(quiet.contains("did not match") && quiet.contains("the condition was false:"), "{quiet}");
    assert!(quiet.contains("data.amount > 100000"), "the condition itself: {quiet}");
    assert!(row("любая оплата").contains("✓ matched"));
    let ru = Operator::sign_in(&app, "anna", "ru").await;
    assert!(section(&ru.get(&format!("/ui/events/{id}")).await.body, "event-rules").contains("условие не выполнено"));

    // No rule of the type at all: the page says so and what to do.
    let id = post_event(&app, json!({"type": "order.lost", "key": "o-1", "data": {}})).await;
    settled(&app, &id).await;
    let page = en.get(&format!("/ui/events/{id}")).await;
    assert!(section(&page.body, "event").contains("No rule reacts to «order.lost»"), "{}", page.body);
}

#[tokio::test]
async fn an_event_that_reached_someone_shows_the_channel_and_a_link_to_the_conversation() {
    let (app, sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    let (contact, conv) = site_person(&app, &ch, "u-7", "1c-7", "Вера Сайтова").await;
    rule(
        &app,
        json!({"name": "отгрузка", "event": "order.shipped", "recipients": [{"external_id": "{{ data.client }}"}],
                      "template": "Заказ {{ data.order }} отгружен"}),
    )
    .await;
    let id =
        post_event(&app, json!({"type": "order.shipped", "key": "s-1", "data": {"client": "1c-7", "order": "ЗК-1"}}))
            .await;
    let ev = settled(&app, &id).await;
    assert_eq!(ev["deliveries"][0]["status"], "sent", "{ev}");
    assert_eq!(ev["deliveries"][0]["conversation_id"], conv.as_str());
    assert_eq!(sink.wait_accepted(1, 10).await.last().unwrap().body["text"], "Заказ ЗК-1 отгружен");

    let en = Operator::sign_in(&app, "anna", "en").await;
    let page = en.get(&format!("/ui/events/{id}")).await;
    let people = section(&page.body, "event-people");
    assert!(people.contains(&format!("data-contact=\"{contact}\"")) && people.contains("Вера Сайтова"), "{people}");
    assert!(people.contains("data-kind=\"webhook\"") && people.contains(" site "), "the channel: {people}");
    assert!(people.contains("data-status=\"sent\""), "the ticks: {people}");
    assert!(people.contains(&format!("href=\"/ui/conversations/{conv}\"")), "the conversation: {people}");
    assert!(!people.contains("class=\"person missed"), "nobody missed");
    assert!(section(&page.body, "event").contains("1 / 1"));
    let list = unescape(&en.get("/ui/events?type=order.shipped").await.body);
    assert!(list.contains("<b class=\"got\">1</b> / 1"), "{list}");
}

#[tokio::test]
async fn the_events_pages_refuse_bad_filters_clearly_and_the_live_stream_has_its_own_path() {
    let app = TestApp::spawn().await;
    operator(&app, "anna", Role::Operator).await;
    let en = Operator::sign_in(&app, "anna", "en").await;
    let page = en.get("/ui/events").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"events\"") && page.body.contains("id=\"nav-events\""));
    let resp = en
        .http
        .get(format!("{}/ui/live", app.url))
        .header("cookie", &en.cookies)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    // Bad filters are a clear page, not a panic.
    let bad = en.get("/ui/events?status=nonsense").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("invalid_status"));
    let bad = en.get("/ui/events?from=yesterday").await;
    assert_eq!(bad.status, 400);
    assert_eq!(en.get("/ui/events/no-such-event").await.status, 404);
    assert_eq!(en.get("/ui/tasks/no-such-task").await.status, 404);
    assert_eq!(en.get("/ui/surveys/no-such-survey").await.status, 404);
    assert_eq!(en.get("/ui/tasks?status=done").await.status, 400);
    for path in ["/ui/events", "/ui/tasks", "/ui/surveys"] {
        for lang in ["en", "ru"] {
            let op = Operator::sign_in(&app, "anna", lang).await;
            let p = op.get(path).await;
            assert_eq!(p.status, 200, "{path} {lang}");
            assert!(p.body.contains(&format!("<html lang=\"{lang}\">")));
        }
    }
    let ru = Operator::sign_in(&app, "anna", "ru").await;
    let nav = ru.get("/ui/tasks").await.body;
    assert!(nav.contains(">События<") && nav.contains(">Задачи<") && nav.contains(">Опросы<"), "the header in Russian");
    // Without a session the pages lead to the login form.
    let anon = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for path in ["/ui/events", "/ui/tasks", "/ui/surveys"] {
        let r = anon.get(format!("{}{path}", app.url)).send().await.unwrap();
        assert_eq!(r.headers()["location"], "/login", "{path}");
    }
}

/// The events page reads its period's dates in the operator's time zone, and its `to` date
/// holds that whole day: «22.11 to 22.11» in Moscow is the 22nd as Moscow lived it.
#[tokio::test]
async fn the_events_page_reads_a_period_in_the_operators_zone_to_the_end_of_its_last_day() {
    let (app, _sink, _ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    let mut ids = Vec::new();
    // 23:30 on the 21st, 00:30 and 23:30 on the 22nd, 00:30 on the 23rd — Moscow time (UTC+3).
    for (n, at) in ["2026-11-21T20:30:00Z", "2026-11-21T21:30:00Z", "2026-11-22T20:30:00Z", "2026-11-22T21:30:00Z"]
        .into_iter()
        .enumerate()
    {
        let id = post_event(&app, json!({"type": "day.test", "key": format!("day-{n}"), "data": {}})).await;
        let ms = okno_domain::time::parse_rfc3339(at).unwrap();
        app.db.execute_raw(&[format!("UPDATE events SET created_at = {ms} WHERE id = '{id}'")]).await;
        ids.push(id);
    }
    let anna = Operator::sign_in(&app, "anna", "en").await;
    let shown = |page: &str| ids.iter().map(|id| page.contains(&format!("data-id=\"{id}\""))).collect::<Vec<_>>();
    let page = anna.get("/ui/events?type=day.test&from=2026-11-22&to=2026-11-22&tz=Europe%2FMoscow").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(shown(&page.body), vec![false, true, true, false], "the 22nd in Moscow, all of it");
    assert!(
        unescape(&page.body).contains("name=\"tz\" value=\"Europe/Moscow\""),
        "the zone is kept for the next search"
    );
    let page = anna.get("/ui/events?type=day.test&from=2026-11-22&to=2026-11-22&tz=Asia%2FVladivostok").await;
    assert_eq!(
        shown(&page.body),
        vec![true, true, false, false],
        "the 22nd in Vladivostok (UTC+10) began ten hours before UTC's"
    );
    let page = anna.get("/ui/events?type=day.test&to=2026-11-21&tz=UTC").await;
    assert_eq!(shown(&page.body), vec![true, true, false, false], "to the end of the 21st in UTC");
    let bad = anna.get("/ui/events?from=2026-11-22&tz=Mars%2FOlympus").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let bad = anna.get("/ui/events?from=tomorrow").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}

/// A survey started by hand reads its pasted list as a broadcast does: too long a list is
/// refused in the operator's language, and the start is in the audit log.
#[tokio::test]
async fn a_survey_start_reads_its_list_as_a_broadcast_does() {
    let (app, _sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    site_person(&app, &ch, "u-1", "1c-1", "Анна").await;
    let survey = app
        .post(
            "/api/v1/surveys",
            json!({"name": "Отзыв", "questions": [{"id": "q", "text": "Как дела?", "kind": "text"}]}),
        )
        .await;
    let survey = survey.body["id"].as_str().unwrap().to_string();
    let anna = Operator::sign_in(&app, "anna", "ru").await;
    let page = format!("/ui/surveys/{survey}");
    let long: Vec<String> = (0..10_001).map(|n| format!("1c-{n}")).collect();
    let refused = anna.post(&page, &format!("{page}/start"), &[("list", &long.join("\n"))]).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(unescape(&refused.body).contains("В списке 10001 записей; за раз не больше 10000"), "{}", refused.body);
    let started = anna.post(&page, &format!("{page}/start"), &[("list", "1c-1, 1c-nobody")]).await;
    assert_eq!(started.status, 200, "{}", started.body);
    let audit = app.get("/api/v1/audit").await.body;
    let line = audit["items"].as_array().unwrap().iter().find(|a| a["action"] == "survey.start").unwrap().clone();
    assert_eq!((line["actor"].as_str(), line["target"].as_str()), (Some("operator:anna"), Some(survey.as_str())));
    assert_eq!(line["detail"]["people"], 1, "{line}");
}

/// The surveys and broadcasts lists show 50 a page with a link to the next, which goes on
/// where the first ended and shows the rest; the surveys' figures are each survey's own.
#[tokio::test]
async fn the_surveys_and_broadcasts_lists_page_on() {
    let (app, _sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    let (contact, _) = site_person(&app, &ch, "u-1", "1c-1", "Анна").await;
    for n in 0..52 {
        let body =
            json!({"name": format!("Опрос {n:02}"), "questions": [{"id": "q", "text": "Как дела?", "kind": "text"}]});
        assert_eq!(app.post("/api/v1/surveys", body).await.status, 201);
        let body = json!({"name": format!("Рассылка {n:02}"), "audience": {"contact_ids": [contact]}, "text": "Привет",
                          "send_at": "2099-01-01T09:00:00Z"});
        assert_eq!(app.post("/api/v1/broadcasts", body).await.status, 201);
    }
    let newest = app.get("/api/v1/surveys?limit=1").await.body["items"][0]["id"].as_str().unwrap().to_string();
    let started = app.post(&format!("/api/v1/surveys/{newest}/start"), json!({"contact_ids": [contact]})).await;
    assert_eq!(started.body["started"], 1, "{started:?}");
    let anna = Operator::sign_in(&app, "anna", "en").await;
    for (list, row, first, last) in [
        ("/ui/surveys", "<tr data-id=", "Опрос 51", "Опрос 00"),
        ("/ui/broadcasts", "<tr><td><a href=\"/ui/broadcasts/", "Рассылка 51", "Рассылка 00"),
    ] {
        let one = anna.get(list).await;
        assert_eq!(one.status, 200);
        assert_eq!(one.body.matches(row).count(), 50, "{list}: 50 on the first page");
        assert!(one.body.contains(first) && !one.body.contains(last), "{list}: the newest first");
        let next = one.body.split("id=\"next-page\"").next().and_then(|b| b.rsplit("href=\"").next()).unwrap();
        let next = next.split('"').next().unwrap().replace("&amp;", "&");
        assert!(next.starts_with(&format!("{list}?cursor=")), "{next}");
        let two = anna.get(&next).await;
        assert_eq!(two.body.matches(row).count(), 2, "{list}: the rest");
        assert!(two.body.contains(last) && !two.body.contains(first) && !two.body.contains("id=\"next-page\""));
    }
    // The figures of the one survey with a run are its own.
    let page = anna.get("/ui/surveys").await.body;
    let row = page.split(&format!("data-id=\"{newest}\"")).nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains("people 1 ·"), "{row}");
    assert_eq!(page.matches("people 0 ·").count(), 49, "the other surveys have nobody yet");
}

/// A restricted token and a restricted operator see an event alike, with every phone masked:
/// its key, its data, the condition a rule found false, a delivery's error — in the API's list
/// and record and on the events list and the event's page.
#[tokio::test]
async fn a_restricted_role_sees_an_event_masked_alike_in_the_api_and_on_the_pages() {
    let (app, _sink, ch) = super::app_with_channel().await;
    operator(&app, "rita", Role::Restricted).await;
    site_person(&app, &ch, "u-1", "1c-1", "Анна").await;
    // A template that fails on the data names the value in its error; a condition names a phone.
    rule(&app, json!({"name": "визит", "event": "call.back", "recipients": [{"external_id": "1c-1"}], "template": "{{ data.note | money }}"})).await;
    rule(&app, json!({"name": "звонок", "event": "call.back", "condition": "data.client_phone == \"+79990001122\"", "recipients": [{"external_id": "1c-1"}], "template": "x"})).await;
    let id = post_event(&app, json!({"type": "call.back", "key": "call-+79991234567", "data": {"client_phone": "+79991234567", "note": "перезвонить +7 999 765-43-21"}})).await;
    let full = settled(&app, &id).await;
    // In clear for the administrator: the test's phones are there to be hidden.
    let clear = full.to_string();
    for phone in ["+79991234567", "765-43-21", "+79990001122"] {
        assert!(clear.contains(phone), "{phone} in {clear}");
    }
    assert_eq!(full["deliveries"][0]["code"], "template_failed");
    let hidden = |text: &str| !["1234567", "765-43", "0001122"].iter().any(|p| text.contains(p));

    let restricted = app.token_for(Role::Restricted).await;
    let one = app.call("GET", &format!("/api/v1/events/{id}"), None, Some(&restricted)).await;
    assert!(hidden(&one.body.to_string()), "{}", one.body);
    assert_eq!(one.body["key"], "call-+7999•••••67");
    assert!(
        one.body["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["outcome"] == "not_matched" && r["detail"].as_str().is_some_and(|d| d.contains("+7999•••••22"))),
        "{}",
        one.body
    );
    let list = app.call("GET", "/api/v1/events?type=call.back", None, Some(&restricted)).await;
    assert!(hidden(&list.body.to_string()), "{}", list.body);
    assert_eq!(list.body["items"][0]["key"], one.body["key"]);

    let rita = Operator::sign_in(&app, "rita", "en").await;
    let page = unescape(&rita.get("/ui/events").await.body);
    assert!(page.contains("call-+7999•••••67") && hidden(&page), "{page}");
    let page = unescape(&rita.get(&format!("/ui/events/{id}")).await.body);
    assert!(page.contains("call-+7999•••••67") && hidden(&page), "{page}");
}

#[tokio::test]
async fn a_restricted_operator_sees_phones_masked_in_events_tasks_and_survey_answers() {
    let (app, _sink, ch) = super::app_with_channel().await;
    operator(&app, "rita", Role::Restricted).await;
    operator(&app, "anna", Role::Operator).await;
    site_person(&app, &ch, "u-1", "1c-1", "Анна").await;
    rule(&app, json!({"name": "визит", "event": "visit.booked", "recipients": [{"phone": "{{ data.client_phone }}"}], "template": "Ждём вас"})).await;
    let id = post_event(&app, json!({"type": "visit.booked", "key": "v-1", "data": {"client_phone": "+79991234567", "note": "перезвонить +7 999 765-43-21"}})).await;
    settled(&app, &id).await;
    let rita = Operator::sign_in(&app, "rita", "en").await;
    let page = unescape(&rita.get(&format!("/ui/events/{id}")).await.body);
    assert!(!page.contains("1234567") && !page.contains("765-43"), "{page}");
    assert!(page.contains("+7999•••••67"), "masked, still told apart: {page}");
    let anna = Operator::sign_in(&app, "anna", "en").await;
    let page = unescape(&anna.get(&format!("/ui/events/{id}")).await.body);
    assert!(page.contains("+79991234567") && page.contains("No contact has «+79991234567»."), "{page}");

    // A task's details for the executor: the client's phone.
    let store = app.running().engine.store.clone();
    let tg = store
        .create_channel(okno_store::NewChannel {
            kind: okno_domain::model::ChannelKind::Telegram,
            name: "bot".into(),
            config: json!({"token": "1:x"}),
            info: json!({"username": "pages_bot"}),
        })
        .await
        .unwrap();
    let task = store
        .create_task(
            okno_store::NewTask {
                id: okno_domain::ids::new_id(),
                channel_id: tg.id.to_string(),
                chat_id: "-100".into(),
                message_id: Some("1".into()),
                title: "Доставка".into(),
                text: "Забрать со склада".into(),
                private_text: Some("Клиент: Ольга, +7 999 123-45-67".into()),
                data: json!({"client_phone": "+79990001122", "lead_id": 4711}),
                group: None,
                reoffer_after: None,
                reoffer_times: 0,
            },
            None,
        )
        .await
        .unwrap();
    let page = unescape(&rita.get(&format!("/ui/tasks/{}", task.id)).await.body);
    assert!(
        page.contains("Клиент: Ольга, +7 99") && !page.contains("123-45-67") && !page.contains("0001122"),
        "{page}"
    );
    assert!(page.contains("4711"));
    let page = unescape(&anna.get(&format!("/ui/tasks/{}", task.id)).await.body);
    assert!(page.contains("+7 999 123-45-67") && page.contains("+79990001122"));

    // A survey's free-text answer, on the page and in the CSV.
    let survey = app
        .post(
            "/api/v1/surveys",
            json!({"name": "Отзыв", "questions": [{"id": "c", "text": "Как с вами связаться?", "kind": "text"}]}),
        )
        .await;
    let survey = survey.body["id"].as_str().unwrap().to_string();
    let contact =
        app.get("/api/v1/contacts?external_id=1c-1").await.body["items"][0]["id"].as_str().unwrap().to_string();
    let started = app.post(&format!("/api/v1/surveys/{survey}/start"), json!({"contact_ids": [contact]})).await;
    assert_eq!(started.body["started"], 1, "{started:?}");
    let answer = super::message("u-1-answer", "u-1", "Звоните на +7 999 765-43-21 после шести");
    assert_eq!(app.inbound(&ch, SECRET, &answer).await.status, 200);
    eventually(10, || async {
        (app.get(&format!("/api/v1/surveys/{survey}/results")).await.body["runs"]["completed"] == 1).then_some(())
    })
    .await
    .expect("answered");
    let page = unescape(&rita.get(&format!("/ui/surveys/{survey}")).await.body);
    assert!(page.contains("Звоните на +7 99") && !page.contains("765-43-21"), "{page}");
    let csv = rita.get(&format!("/ui/surveys/{survey}/results.csv")).await;
    assert_eq!(csv.status, 200);
    assert!(csv.body.contains("Звоните на") && !csv.body.contains("765-43-21"), "{}", csv.body);
    let csv = anna.get(&format!("/ui/surveys/{survey}/results.csv")).await;
    assert!(csv.body.contains("+7 999 765-43-21"));
}

// --- the browser ------------------------------------------------------------------------

/// A person reachable on the Telegram channel (they pressed Start): their contact id.
async fn telegram_person(app: &TestApp, sim: &TelegramSim, ch: &str, tg: i64, name: &str, extra: Value) -> String {
    let mut body = json!({"external_id": format!("1c-{tg}"), "name": name});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let c = app.post("/api/v1/contacts", body).await;
    assert_eq!(c.status, 201, "{c:?}");
    let id = c.body["id"].as_str().unwrap().to_string();
    sim.user(TOKEN, tg, name);
    let sender = okno_store::InboundSender { user_id: tg.to_string(), chat_id: tg.to_string(), ..Default::default() };
    app.running().engine.store.attach_identity(&id.as_str().into(), &ch.into(), sender).await.unwrap();
    id
}

async fn telegram_world() -> (TestApp, TelegramSim, String) {
    let app = TestApp::spawn().await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "okno_pages_bot");
    let ch = app.telegram_channel(&sim, TOKEN, "polling").await;
    operator(&app, "anna", Role::Operator).await;
    (app, sim, ch)
}

#[tokio::test]
async fn in_the_browser_an_event_shows_who_got_it_and_why_the_other_did_not() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let (app, sim, ch) = telegram_world().await;
    telegram_person(&app, &sim, &ch, 7301, "Иван Петров", json!({})).await;
    rule(
        &app,
        json!({"name": "Поступление оплаты — менеджеру", "event": "payment.received",
               "recipients": [{"external_id": "{{ data.manager_id }}"}, {"external_id": "{{ data.accountant_id }}"}],
               "template": "💰 Оплата от {{ data.client }}: {{ data.amount | money }}"}),
    )
    .await;
    rule(
        &app,
        json!({"name": "Крупная оплата — директору", "event": "payment.received", "condition": "data.amount > 5000000",
               "recipients": [{"group": "директор"}], "template": "Крупная оплата"}),
    )
    .await;
    let id = post_event(
        &app,
        json!({"type": "payment.received", "key": "ПКО-000123", "data": {"manager_id": "1c-7301", "accountant_id": "1c-accountant-sidorova",
               "client": "ООО «Ромашка»", "amount": 1250000, "document": "ПКО № 123"}}),
    )
    .await;
    settled(&app, &id).await;
    let sent = eventually(10, || async { sim.sent_to(TOKEN, 7301).into_iter().next() }).await.expect("Иван gets it");
    assert!(sent.plain.unwrap_or_default().starts_with("💰 Оплата от ООО «Ромашка»"));

    b.login(&app.url, "anna", PASSWORD).await;
    // From the header to the list to the event.
    b.click("#nav-events").await;
    b.wait_for(10, "return document.querySelector('#events') && window.oknoLive === true").await;
    assert!(b.text("#events").await.contains("1 / 2"), "{}", b.text("#events").await);
    b.click(&format!("#events tr[data-id='{id}'] a")).await;
    b.wait_for(10, "return document.querySelector('#event-people')").await;
    let people = b.text("#event-people").await;
    assert!(people.contains("Иван Петров") && people.contains("bot"), "the channel: {people}");
    assert!(people.contains("No contact has the external id «1c-accountant-sidorova»."), "{people}");
    assert!(people.contains("Create the contact with this external id"), "{people}");
    assert_eq!(b.js("return document.querySelector('#event-people tr.got .tick').dataset.status").await, "sent");
    let rules = b.text("#event-rules").await;
    assert!(rules.contains("Крупная оплата — директору") && rules.contains("did not match"), "{rules}");
    assert!(rules.contains("data.amount > 5000000"), "{rules}");
    assert!(b.text("#event-data").await.contains("ООО «Ромашка»"));
    b.screenshot("events").await;
    // The conversation link opens the thread with the notification in it.
    b.click("#event-people a.conv-link").await;
    b.wait_for(
        10,
        "return document.querySelector('#thread') && document.querySelector('#thread').innerText.includes('Оплата от')",
    )
    .await;

    // A phone-sized screen: the header wraps, nothing scrolls sideways.
    b.screen(Some((390, 844))).await;
    b.open(&format!("{}/ui/events/{id}", app.url)).await;
    let width = b.js("return document.documentElement.scrollWidth").await.as_i64().unwrap();
    assert!(width <= 400, "no horizontal scrolling on a phone: {width}px");
    b.screen(None).await;
}

#[tokio::test]
async fn in_the_browser_a_task_posted_from_the_page_reaches_the_group_and_shows_who_took_it() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let (app, sim, _ch) = telegram_world().await;
    let group = sim.group(TOKEN, -100_4242, "Курьеры Казань");
    let petr = sim.user(TOKEN, 7401, "Пётр Иванов").with_username("petr_iv");
    // Someone writes in the group: okno now knows it and offers it in the form.
    group.send_text(&petr, "Всем привет!");
    app.wait_message(|m| m["text"] == "Всем привет!").await;

    b.login(&app.url, "anna", PASSWORD).await;
    b.open(&format!("{}/ui/tasks", app.url)).await;
    assert!(b.text("#new-task").await.contains("Курьеры Казань"), "the group is offered");
    b.js("var f = document.querySelector('#new-task'); \
          f.querySelector('[name=chat]').selectedIndex = 1; \
          f.querySelector('[name=title]').value = 'Доставка: ул. Ленина, 5'; \
          f.querySelector('[name=text]').value = 'Забрать на складе №3 до 14:00. Оплата 1500 ₽.'; \
          f.querySelector('[name=private_text]').value = 'Клиент: Ольга, +7 999 123-45-67'; \
          f.querySelector('[name=data]').value = '{\"lead_id\": 4711}'; return 1")
        .await;
    b.click("#tk-post").await;
    b.wait_for(10, "return document.querySelector('#task')").await;
    assert!(b.text("#task-status").await.contains("open"));
    let posted = eventually(10, || async {
        sim.sent_to(TOKEN, -100_4242)
            .into_iter()
            .find(|s| s.method == "sendMessage" && s.plain.as_deref().unwrap_or("").contains("Ленина"))
    })
    .await
    .expect("the task reaches the group");
    assert!(posted.plain.as_deref().unwrap().contains("Забрать на складе №3"));
    assert!(!posted.plain.as_deref().unwrap().contains("123-45-67"), "the details stay out of the group");
    let take = button(&posted, "Взять");

    // Пётр takes it in the group; the tasks page shows him.
    group.press(&petr, posted.message_id, &take);
    let task_id = b.path().await.trim_start_matches("/ui/tasks/").to_string();
    eventually(10, || async {
        (app.get(&format!("/api/v1/tasks/{task_id}")).await.body["status"] == "claimed").then_some(())
    })
    .await
    .expect("claimed");
    // Another one, posted through the API, nobody has taken yet.
    let ch = app.get("/api/v1/channels").await.body["items"][0]["id"].as_str().unwrap().to_string();
    let other = app
        .post("/api/v1/tasks", json!({"channel_id": ch, "chat_id": -100_4242, "title": "Монтаж кондиционера: пр. Победы, 12", "text": "Завтра с 10:00"}))
        .await;
    assert_eq!(other.status, 201, "{other:?}");
    b.open(&format!("{}/ui/tasks", app.url)).await;
    let open_row = b.text(&format!("#tasks tr[data-id='{}']", other.body["id"].as_str().unwrap())).await;
    assert!(open_row.contains("open") && open_row.contains("—"), "{open_row}");
    let row = b.text(&format!("#tasks tr[data-id='{task_id}']")).await;
    assert!(row.contains("Пётр Иванов") && row.contains("@petr_iv") && row.contains("taken"), "{row}");
    assert!(row.contains("Курьеры Казань"), "{row}");
    b.js("document.querySelector('#new-task-box').open = true; return 1").await;
    b.screenshot("tasks").await;
    b.click(&format!("#tasks tr[data-id='{task_id}'] a")).await;
    b.wait_for(10, "return document.querySelector('#task-executor')").await;
    assert!(b.text("#task-executor").await.contains("Пётр Иванов"));
    assert!(b.text("#task").await.contains("lead_id"));
    // Given back from the page: open again, the group message gets its buttons back.
    b.click("#tk-release").await;
    b.wait_for(10, "return document.querySelector('#task-status') && document.querySelector('#task-status').innerText.includes('open')").await;
    eventually(10, || async {
        sim.sent_to(TOKEN, -100_4242)
            .into_iter()
            .rev()
            .find(|s| s.method == "editMessageText" && s.message_id == posted.message_id && s.reply_markup.is_some())
    })
    .await
    .expect("the buttons are back in the group");
}

#[tokio::test]
async fn posting_a_task_the_group_refuses_shows_telegrams_words_on_the_form() {
    let (app, sim, ch) = telegram_world().await;
    let _ = sim;
    let en = Operator::sign_in(&app, "anna", "en").await;
    // A chat the bot is not in.
    let p = en
        .post(
            "/ui/tasks",
            "/ui/tasks",
            &[("channel_id", ch.as_str()), ("chat_id", "-100999"), ("title", "Монтаж"), ("text", "Завтра в 9:00")],
        )
        .await;
    assert_eq!(p.status, 422, "{}", p.body);
    let error = section(&p.body, "error");
    assert!(error.contains("Telegram refused the task"), "{error}");
    assert!(p.body.contains("value=\"Монтаж\""), "the form keeps what was typed");
    // No group at all, and a title missing: clear errors, nothing posted.
    let p = en.post("/ui/tasks", "/ui/tasks", &[("title", "Монтаж")]).await;
    assert_eq!(p.status, 422);
    assert!(section(&p.body, "error").contains("Choose a group chat, or enter its id."));
    let ru = Operator::sign_in(&app, "anna", "ru").await;
    let p = ru.post("/ui/tasks", "/ui/tasks", &[("title", "Монтаж")]).await;
    assert!(section(&p.body, "error").contains("Выберите групповой чат или введите его id."), "{}", p.body);
    let p =
        en.post("/ui/tasks", "/ui/tasks", &[("channel_id", ch.as_str()), ("chat_id", "-100999"), ("title", " ")]).await;
    assert!(section(&p.body, "error").contains("`title` is 1..256 characters"), "{}", p.body);
    let p = en
        .post(
            "/ui/tasks",
            "/ui/tasks",
            &[("channel_id", ch.as_str()), ("chat_id", "-1"), ("title", "x"), ("data", "[1]")],
        )
        .await;
    assert!(section(&p.body, "error").contains("JSON object"));
    assert!(app.get("/api/v1/tasks").await.body["items"].as_array().unwrap().is_empty());
    // Without the form's token nothing is posted.
    let r = en
        .send(en.http.post(format!("{}/ui/tasks", app.url)).form(&[
            ("channel_id", ch.as_str()),
            ("chat_id", "-1"),
            ("title", "x"),
        ]))
        .await;
    assert_eq!(r.status, 403);
    assert!(r.location.is_none());
}

#[tokio::test]
async fn starting_a_survey_from_the_page_names_who_could_not_be_asked() {
    let (app, sink, ch) = super::app_with_channel().await;
    operator(&app, "anna", Role::Operator).await;
    let (reachable, _) = site_person(&app, &ch, "u-1", "1c-1", "Анна").await;
    app.post("/api/v1/contacts", json!({"external_id": "1c-2", "name": "Без мессенджера"})).await;
    let survey = app
        .post(
            "/api/v1/surveys",
            json!({"name": "Адаптация", "questions": [{"text": "Как первая неделя?", "kind": "text"}]}),
        )
        .await;
    let survey = survey.body["id"].as_str().unwrap().to_string();
    let page = format!("/ui/surveys/{survey}");
    let start = format!("/ui/surveys/{survey}/start");
    let en = Operator::sign_in(&app, "anna", "en").await;

    let p = en.post(&page, &start, &[("groups", " "), ("list", "")]).await;
    assert_eq!(p.status, 400, "{}", p.body);
    assert!(section(&p.body, "start-result").contains("Name people: contact groups or a list."));
    let ru = Operator::sign_in(&app, "anna", "ru").await;
    let p = ru.post(&page, &start, &[("list", "")]).await;
    assert!(section(&p.body, "start-result").contains("Укажите, кого спросить"));

    // A contact id, an external id, one without a messenger and one nobody has.
    let list = format!("{reachable}\n1c-2, 1c-404");
    let p = en.post(&page, &start, &[("list", &list)]).await;
    assert_eq!(p.status, 200, "{}", p.body);
    let result = section(&p.body, "start-result");
    assert!(result.contains("id=\"started-n\">1<"), "{result}");
    assert!(result.contains("unreachable 1") && result.contains("not found 1"), "{result}");
    assert!(result.contains("No contact with this id or external id: 1c-404"), "{result}");
    assert_eq!(
        sink.wait_accepted(1, 10).await.last().unwrap().body["text"],
        "Как первая неделя?",
        "the question went out"
    );
    // The same round again asks nobody twice.
    let p = en.post(&page, &start, &[("list", &reachable)]).await;
    let result = section(&p.body, "start-result");
    assert!(result.contains("id=\"started-n\">0<") && result.contains("asked before 1"), "{result}");
    let audit = app.get("/api/v1/audit").await.body;
    assert!(audit["items"].as_array().unwrap().iter().any(|a| a["action"] == "survey.start"), "{audit}");
}

/// The callback data of the button labelled `label`.
fn button(s: &Sent, label: &str) -> String {
    let rows = s.reply_markup.as_ref().and_then(|m| m["inline_keyboard"].as_array().cloned()).unwrap_or_default();
    rows.iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
        .find(|b| b["text"] == label)
        .and_then(|b| b["callback_data"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no button {label:?} in {:?}", s.reply_markup))
}

#[tokio::test]
async fn in_the_browser_a_survey_started_from_the_page_asks_and_its_results_are_drawn() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let (app, sim, ch) = telegram_world().await;
    let people = [(7501, "Анна Кузнецова"), (7502, "Борис Орлов"), (7503, "Вера Лебедева")];
    for (tg, name) in people {
        telegram_person(&app, &sim, &ch, tg, name, json!({"groups": ["клиенты"]})).await;
    }
    let survey = app
        .post(
            "/api/v1/surveys",
            json!({"name": "NPS после заказа", "questions": [
                {"id": "nps", "text": "Порекомендуете нас друзьям? (0–10)", "kind": "scale", "min": 0, "max": 10},
                {"id": "on_time", "text": "Привезли вовремя?", "kind": "choice", "options": [{"text": "Да", "value": 1}, {"text": "Нет", "value": 0}]},
                {"id": "comment", "text": "Что нам улучшить?", "kind": "text"}
            ], "thanks": "Спасибо!"}),
        )
        .await;
    assert_eq!(survey.status, 201, "{survey:?}");
    let survey = survey.body["id"].as_str().unwrap().to_string();

    b.login(&app.url, "anna", PASSWORD).await;
    b.click("#nav-surveys").await;
    b.wait_for(10, "return document.querySelector('#surveys') && window.oknoLive === true").await;
    assert!(b.text("#surveys").await.contains("NPS после заказа"));
    b.click(&format!("#surveys tr[data-id='{survey}'] a")).await;
    b.wait_for(10, "return document.querySelector('#start-survey')").await;
    b.type_into("#start-survey [name=groups]", "клиенты").await;
    b.click("#sv-start").await;
    b.wait_for(10, "return document.querySelector('#started-n')").await;
    assert_eq!(b.text("#started-n").await, "3");

    // The first question reached each of them; they answer.
    let first = |tg: i64| {
        let sim = &sim;
        async move {
            eventually(15, || async { sim.sent_to(TOKEN, tg).into_iter().find(|s| s.method == "sendMessage") })
                .await
                .unwrap_or_else(|| panic!("{tg} gets the first question"))
        }
    };
    let nth = |tg: i64, n: usize| {
        let sim = &sim;
        async move {
            eventually(15, || async { sim.sent_to(TOKEN, tg).into_iter().filter(|s| s.method == "sendMessage").nth(n) })
                .await
                .unwrap_or_else(|| panic!("{tg} gets message #{n}"))
        }
    };
    for ((tg, _), (score, on_time, comment)) in people.iter().zip([
        ("10", "Да", "Всё отлично"),
        ("9", "Да", "Быстрее отвечать в чате"),
        ("3", "Нет", "Курьер опоздал на час"),
    ]) {
        let q1 = first(*tg).await;
        assert!(q1.plain.as_deref().unwrap().contains("Порекомендуете"));
        let user = sim.user(TOKEN, *tg, people.iter().find(|p| p.0 == *tg).unwrap().1);
        user.press(q1.message_id, &button(&q1, score));
        let q2 = nth(*tg, 1).await;
        user.press(q2.message_id, &button(&q2, on_time));
        nth(*tg, 2).await;
        user.send_text(comment);
        nth(*tg, 3).await;
    }
    eventually(15, || async {
        let r = app.get(&format!("/api/v1/surveys/{survey}/results")).await.body;
        (r["runs"]["completed"] == 3).then_some(())
    })
    .await
    .expect("all three completed");

    b.open(&format!("{}/ui/surveys/{survey}", app.url)).await;
    let results = b.text("#survey-results").await;
    // As GET /results computes it: NPS (2 promoters − 1 detractor) / 3 = 33.3; average 7.33.
    assert!(results.contains("NPS: 33.3"), "{results}");
    assert!(results.contains("7.33"), "{results}");
    let on_time = b.text("#survey-results [data-question=on_time]").await;
    assert!(on_time.contains("Да") && on_time.contains("2") && on_time.contains("67%"), "{on_time}");
    assert!(results.contains("Курьер опоздал на час") && results.contains("Вера Лебедева"), "{results}");
    assert!(b.text("#survey-runs").await.contains("completed 3"), "{}", b.text("#survey-runs").await);
    b.screenshot("surveys").await;
    // The CSV link downloads every answer.
    let href = b.js("return document.querySelector('#survey-csv').getAttribute('href')").await;
    assert_eq!(href, format!("/ui/surveys/{survey}/results.csv"));
    let csv = b
        .js_async(&format!(
            "var done = arguments[0]; fetch('{}').then(function (r) {{ return r.text(); }}).then(done)",
            href.as_str().unwrap()
        ))
        .await;
    let csv = csv.as_str().unwrap();
    assert!(csv.starts_with('\u{feff}') || csv.starts_with("run_id"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 9, "a header and nine answers: {csv}");
    assert!(csv.contains("Курьер опоздал на час"));
}
