//! The operator's window: the list, the thread with its reply box and the contact panel side by
//! side on a wide screen and one at a time on a phone; keyboard shortcuts; button presses and
//! authors as people read them, in both languages; the inbox ordered by the last message and
//! never by reading; the unread marker — over plain HTTP and in a real headless Chromium.
//! `SCREENSHOTS=1` saves `docs/screenshots/window-ru.png` and `window-en.png`: the window with
//! a conversation where a customer went through the bot's menu, answered a broadcast and got an
//! operator's reply.

use std::time::Duration;

use okno_domain::model::Role;
use okno_testkit::browser::{Browser, BROWSER_TURN};
use okno_testkit::telegram::{Sent, SimUser, TelegramSim};
use okno_testkit::{eventually, TestApp, TestDb};
use serde_json::json;

use super::ui::{hidden, operator, sign_in, Client};
use super::SECRET;

const TOKEN: &str = "555001:window-test-bot";

/// A shop's bot: a menu with a submenu and a handoff to operators. (No emoji in the labels:
/// the test machine's Chromium has no emoji font, and the screenshots would show boxes.)
const BOT: &str = r#"
name: Помощник Стройторга
texts: {back: Назад, home: В начало}
menus:
  main:
    text: Здравствуйте! Это магазин «Стройторг». Чем помочь?
    items:
      - text: Доставка и оплата
        do: {menu: delivery}
      - text: Связаться с оператором
        do: {handoff: {text: Соединяю с оператором. Опишите вопрос — вам ответят здесь же.}}
  delivery:
    text: Доставка по городу — 1–2 дня, за город — до 4 дней. Оплата картой или при получении.
    items:
      - text: Когда привезут мой заказ?
        do: {reply: {text: Курьер позвонит за час до приезда. Номер заказа есть в SMS.}}
      - text: Связаться с оператором
        do: {handoff: {text: Соединяю с оператором. Опишите вопрос — вам ответят здесь же.}}
"#;

/// The text on screen: tags dropped, entities decoded, whitespace folded.
fn visible(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for ch in html.chars() {
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
    let out = out
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The inline buttons of a message the bot sent, as (label, callback data).
fn buttons(s: &Sent) -> Vec<(String, String)> {
    let rows = s.reply_markup.as_ref().and_then(|m| m["inline_keyboard"].as_array().cloned()).unwrap_or_default();
    rows.iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
        .map(|b| (b["text"].as_str().unwrap_or("").to_string(), b["callback_data"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// The shop: okno with a Telegram bot and a website chat, and Maria, a customer of the
/// business system reachable on both.
struct Shop {
    app: TestApp,
    sim: TelegramSim,
    site: String,
    maria: SimUser,
    contact: String,
    /// The callback data of every button Maria pressed.
    pressed: std::sync::Mutex<Vec<String>>,
}

const MARIA_TG: i64 = 7001;

impl Shop {
    async fn open() -> Shop {
        let app = TestApp::spawn_on(TestDb::sqlite(), |s| {
            s.ui.contact_url = Some("https://crm.stroytorg.example/clients/{external_id}".into());
        })
        .await;
        let sim = TelegramSim::start().await;
        sim.add_bot(TOKEN, "stroytorg_bot");
        let tg = app
            .post(
                "/api/v1/channels",
                json!({"kind": "telegram", "name": "Стройторг · Telegram",
                       "config": {"token": TOKEN, "api_base": sim.api_base(), "mode": "polling"}}),
            )
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_string();
        let sink = okno_testkit::Sink::start(SECRET).await;
        let site = app
            .post(
                "/api/v1/channels",
                json!({"kind": "webhook", "name": "Сайт", "config": {"outbound_url": format!("{}/out", sink.url), "secret": SECRET}}),
            )
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_string();
        std::mem::forget(sink); // it serves until the test process ends
        let r = app
            .http
            .put(format!("{}/api/v1/bots/{tg}", app.url))
            .bearer_auth(&app.token)
            .header("content-type", "application/yaml")
            .body(BOT)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
        let c = app
            .post(
                "/api/v1/contacts",
                json!({"external_id": "1С-00042", "name": "Мария Соколова", "phone": "+79161234567",
                       "email": "maria.sokolova@example.ru", "groups": ["Розница", "Весна-2026"],
                       "attrs": {"Город": "Тверь", "Бонусные баллы": 1240}, "preferred_channel_id": tg}),
            )
            .await;
        assert_eq!(c.status, 201, "{c:?}");
        let contact = c.body["id"].as_str().unwrap().to_string();
        let store = &app.running().engine.store;
        let sender = |user: &str, username: Option<&str>| okno_store::InboundSender {
            user_id: user.into(),
            chat_id: user.into(),
            username: username.map(str::to_string),
            display_name: Some("Мария".into()),
            ..Default::default()
        };
        store
            .attach_identity(
                &contact.as_str().into(),
                &tg.as_str().into(),
                sender(&MARIA_TG.to_string(), Some("maria_s")),
            )
            .await
            .unwrap();
        store.attach_identity(&contact.as_str().into(), &site.as_str().into(), sender("site-42", None)).await.unwrap();
        let maria = sim.user(TOKEN, MARIA_TG, "Мария");
        Shop { app, sim, site, maria, contact, pressed: Default::default() }
    }

    fn sent(&self) -> Vec<Sent> {
        self.sim.sent_to(TOKEN, MARIA_TG)
    }

    /// Waits for a message to Maria whose text contains `text`.
    async fn wait_sent(&self, text: &str) -> Sent {
        eventually(15, || async {
            self.sent().into_iter().rev().find(|s| s.plain.as_deref().unwrap_or("").contains(text))
        })
        .await
        .unwrap_or_else(|| panic!("Maria gets {text:?}; she got {:?}", self.sent()))
    }

    /// Maria presses the newest button labelled `label` and okno records the press.
    async fn press(&self, label: &str) {
        let (message_id, data) = eventually(15, || async {
            self.sent()
                .into_iter()
                .rev()
                .find_map(|s| buttons(&s).into_iter().find(|(t, _)| t == label).map(|(_, data)| (s.message_id, data)))
        })
        .await
        .unwrap_or_else(|| panic!("no button {label:?} in {:?}", self.sent()));
        self.maria.press(message_id, &data);
        self.app.wait_message(|m| m["button_data"] == data.as_str()).await;
        self.pressed.lock().unwrap().push(data);
    }

    async fn says(&self, text: &str) {
        self.maria.send_text(text);
        self.app.wait_message(|m| m["text"] == text).await;
    }

    /// Maria's conversation.
    async fn conversation(&self) -> String {
        let list = self.app.get(&format!("/api/v1/conversations?contact_id={}", self.contact)).await;
        list.body["items"][0]["id"].as_str().unwrap().to_string()
    }

    /// Maria answers a spring broadcast, then goes through the bot's menu to an operator with
    /// a question about it.
    async fn maria_talks(&self) {
        let b = self
            .app
            .post(
                "/api/v1/broadcasts",
                json!({"name": "Весенняя акция", "audience": {"contact_ids": [self.contact]},
                       "text": "Весенняя акция: −10% на садовую технику до 31 марта.",
                       "buttons": [[{"text": "Интересно", "answer": "yes"}, {"text": "Не сейчас", "answer": "no"}]]}),
            )
            .await;
        assert_eq!(b.status, 201, "{b:?}");
        self.wait_sent("Весенняя акция").await;
        self.press("Интересно").await;
        self.says("/start").await;
        self.press("Доставка и оплата").await;
        self.press("Связаться с оператором").await;
        self.wait_sent("Соединяю с оператором").await;
        self.says("Газонокосилку из акции привезут вместе с заказом №1042?").await;
    }
}

/// Someone else writes on the website chat.
async fn visitor(app: &TestApp, site: &str, user: &str, name: &str, text: &str) -> String {
    let body = json!({"message_id": format!("{user}-{}", okno_domain::ids::new_id()), "user": {"id": user, "name": name}, "text": text});
    let a = app.inbound(site, SECRET, &body).await;
    assert_eq!(a.status, 200, "{a:?}");
    let m = app.get(&format!("/api/v1/messages/{}", a.body["id"].as_str().unwrap())).await;
    m.body["conversation_id"].as_str().unwrap().to_string()
}

async fn signed_in(app: &TestApp, login: &str, role: Role, lang: &str) -> Client {
    operator(app, login, role).await;
    let mut c = Client::new(app);
    assert_eq!(c.login(login, super::ui::PASSWORD).await.status, 303);
    c.get(&format!("/lang/{lang}")).await;
    c
}

// --- plain HTTP ----------------------------------------------------------------------------

#[tokio::test]
async fn presses_and_authors_read_as_people_read_them_in_both_languages() {
    let shop = Shop::open().await;
    shop.maria_talks().await;
    let conv = shop.conversation().await;
    let app = &shop.app;
    // A survey she answers with a button, a rule's notification, a reply from the business
    // system's API token, an operator's reply, and a press of a button okno no longer knows.
    let survey = app
        .post(
            "/api/v1/surveys",
            json!({"name": "Качество доставки", "thanks": "Спасибо!", "deadline": "1d",
                   "questions": [{"id": "on_time", "text": "Заказ привезли вовремя?", "kind": "choice",
                                  "options": [{"text": "Да", "value": 1}, {"text": "Нет", "value": 0}]}]}),
        )
        .await;
    assert_eq!(survey.status, 201, "{survey:?}");
    let started = app
        .post(
            &format!("/api/v1/surveys/{}/start", survey.body["id"].as_str().unwrap()),
            json!({"contact_ids": [shop.contact]}),
        )
        .await;
    assert_eq!(started.body["started"], 1, "{started:?}");
    shop.wait_sent("Заказ привезли вовремя?").await;
    shop.press("Да").await;
    let rule = json!({"name": "Заказ отгружен", "event": "order.shipped", "recipients": [{"external_id": "{{ data.client }}"}],
                      "template": "Заказ №{{ data.order }} отгружен"});
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    let ev = app
        .post(
            "/api/v1/events",
            json!({"type": "order.shipped", "key": "ship-1042", "data": {"client": "1С-00042", "order": 1042}}),
        )
        .await;
    assert_eq!(ev.status, 202, "{ev:?}");
    shop.wait_sent("Заказ №1042 отгружен").await;
    let secret = okno_server::auth::new_token();
    app.running()
        .engine
        .store
        .create_token("1С:УТ", Role::Integration, &okno_server::auth::token_hash(&secret))
        .await
        .unwrap();
    let sent = app
        .call(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(json!({"text": "Счёт №77 оплачен"})),
            Some(&secret),
        )
        .await;
    assert_eq!(sent.status, 202, "{sent:?}");
    let stale = json!({"message_id": "w-9", "user": {"id": "site-42"}, "button": {"data": "bot:item:old:7:c0ffee"}});
    assert_eq!(app.inbound(&shop.site, SECRET, &stale).await.status, 200);
    shop.pressed.lock().unwrap().push("bot:item:old:7:c0ffee".into());

    let mut ru = signed_in(app, "anna", Role::Operator, "ru").await;
    // The list previews the last message, a press, the same way.
    let list = visible(&ru.get("/ui/inbox?fragment=1").await.body);
    assert!(list.contains("▣ нажата кнопка меню бота"), "{list}");
    let token = hidden(&ru.get(&format!("/ui/conversations/{conv}")).await.body, "csrf");
    let r = ru
        .post(&format!("/ui/conversations/{conv}/reply"), &[("csrf", &token), ("text", "Да, привезём вместе.")])
        .await;
    assert_eq!(r.status, 303);

    let page = ru.get(&format!("/ui/conversations/{conv}")).await;
    let text = visible(&page.body);
    for shown in [
        "нажата кнопка «Доставка и оплата»",
        "нажата кнопка «Связаться с оператором»",
        "нажата кнопка «Интересно»",
        "нажата кнопка «Да»",
        "нажата кнопка меню бота",
        "бот «Помощник Стройторга»",
        "рассылка «Весенняя акция»",
        "опрос «Качество доставки»",
        "уведомление «Заказ отгружен»",
        "API-токен «1С:УТ»",
    ] {
        assert!(text.contains(shown), "{shown:?} in {text}");
    }
    assert!(page.body.contains("class=\"author author-operator\" translate=\"no\">anna<"), "the operator by login");
    for english in ["pressed", "bot \"", "broadcast", "survey", "notification", "API token"] {
        assert!(!text.contains(english), "no English in the Russian window: {english:?} in {text}");
    }
    let pressed = shop.pressed.lock().unwrap().clone();
    for raw in pressed.iter().map(String::as_str).chain(["broadcast:", "token:", "survey:", "event:", "operator:"]) {
        assert!(!page.body.contains(raw), "the stored key {raw:?} is not shown");
    }

    let mut en = ru.clone();
    en.get("/lang/en").await;
    let text = visible(&en.get(&format!("/ui/conversations/{conv}")).await.body);
    for shown in [
        "pressed \"Доставка и оплата\"",
        "pressed \"Интересно\"",
        "pressed \"Да\"",
        "pressed a bot menu button",
        "bot \"Помощник Стройторга\"",
        "broadcast \"Весенняя акция\"",
        "survey \"Качество доставки\"",
        "notification \"Заказ отгружен\"",
        "API token \"1С:УТ\"",
    ] {
        assert!(text.contains(shown), "{shown:?} in {text}");
    }
    // The API keeps the data and adds the label.
    let msgs = app.get(&format!("/api/v1/conversations/{conv}/messages?limit=100")).await.body;
    let press = msgs["items"].as_array().unwrap().iter().find(|m| m["button_label"] == "Доставка и оплата").unwrap();
    assert!(press["button_data"].as_str().unwrap().starts_with("bot:item:"), "{press}");
}

#[tokio::test]
async fn opening_a_conversation_keeps_the_inbox_order_and_its_time_and_clears_only_its_unread_marker() {
    let (app, _sink, ch) = super::app_with_channel().await;
    let first = visitor(&app, &ch, "u-1", "Ирина", "Подскажите статус заказа 5521").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = visitor(&app, &ch, "u-2", "Олег", "Есть ли доставка в Клин?").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let third = visitor(&app, &ch, "u-3", "Вера", "Спасибо, всё получила").await;
    let order = |html: &str| -> Vec<String> {
        html.split("<li class=\"conv")
            .skip(1)
            .map(|li| li.split("data-id=\"").nth(1).unwrap().split('"').next().unwrap().to_string())
            .collect()
    };
    let row = |html: &str, id: &str| -> String {
        let at = html.find(&format!("data-id=\"{id}\"")).unwrap();
        let start = html[..at].rfind("<li").unwrap();
        html[start..start + html[start..].find("</li>").unwrap()].to_string()
    };
    let mut c = signed_in(&app, "anna", Role::Operator, "en").await;
    let inbox = c.get("/ui/inbox").await.body;
    assert_eq!(order(&inbox), [third.as_str(), second.as_str(), first.as_str()], "newest message first");
    assert!(row(&inbox, &first).contains("conv unread"), "bold: {}", row(&inbox, &first));
    assert!(row(&inbox, &first).contains("class=\"badge\""), "with its counter");

    // Opening the oldest: the list beside it keeps the order, its row is current and read, its
    // time is still its last message's.
    let page = c.get(&format!("/ui/conversations/{first}")).await.body;
    assert_eq!(order(&page), [third.as_str(), second.as_str(), first.as_str()], "opening did not move it");
    let opened = row(&page, &first);
    assert!(opened.contains("current") && !opened.contains("unread") && !opened.contains("badge"), "{opened}");
    let last = app.get(&format!("/api/v1/conversations/{first}")).await.body;
    assert_eq!(last["unread"], 0);
    let at = last["last_message"]["created_at"].as_str().unwrap();
    assert_eq!(last["last_message_at"], at);
    assert!(opened.contains(&format!("datetime=\"{at}\"")), "the time of the last message: {opened}");
    let list = c.get("/ui/inbox?fragment=1").await.body;
    assert_eq!(order(&list), [third.as_str(), second.as_str(), first.as_str()]);
    assert!(!row(&list, &first).contains("unread"), "read now");
    assert!(row(&list, &second).contains("unread"), "the others stay unread");

    // Taking it and resolving it are not messages either.
    let token = hidden(&page, "csrf");
    for action in ["assign_me", "resolve"] {
        let r = c.post(&format!("/ui/conversations/{first}/update"), &[("csrf", &token), ("action", action)]).await;
        assert_eq!(r.status, 303);
    }
    assert_eq!(order(&c.get("/ui/inbox?fragment=1").await.body), [third.as_str(), second.as_str(), first.as_str()]);
    let api: Vec<String> = app.get("/api/v1/conversations").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(api, [third.as_str(), second.as_str(), first.as_str()], "the API keeps the same order");

    // An answer is a message: it brings the conversation up.
    let r = c
        .post(&format!("/ui/conversations/{first}/reply"), &[("csrf", &token), ("text", "Заказ 5521 у курьера")])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(order(&c.get("/ui/inbox?fragment=1").await.body), [first.as_str(), third.as_str(), second.as_str()]);
    // The window's script gets 204 instead of a redirect, and the page's filters stay in the
    // conversations' links.
    let r = c
        .send(
            c.http
                .post(format!("{}/ui/conversations/{second}/update", app.url))
                .header("x-okno-fragment", "1")
                .form(&[("csrf", token.as_str()), ("action", "assign_me")]),
        )
        .await;
    assert_eq!(r.status, 204);
    let filtered = c.get(&format!("/ui/conversations/{second}?assignee=mine&status=open")).await.body;
    assert_eq!(order(&filtered), [second.as_str()], "only mine and open beside it");
    assert!(
        filtered.contains(&format!("href=\"/ui/conversations/{second}?status=open&amp;assignee=mine\"")),
        "{filtered}"
    );
    let bad = c.get(&format!("/ui/conversations/{second}?fragment=everything")).await;
    assert_eq!(bad.status, 400, "an unknown part is a clear error");
}

/// What the window's script asks for behaves as a script needs: a refresh of page 2 stays on
/// page 2 with the filters; a tab out of sight does not read what arrives; an ended session
/// answers 401, never the login form pasted into the list.
#[tokio::test]
async fn the_windows_refreshes_keep_the_page_leave_hidden_tabs_unread_and_answer_401_when_logged_out() {
    let (app, _sink, ch) = super::app_with_channel().await;
    let mut ids = Vec::new();
    for i in 0..53 {
        ids.push(visitor(&app, &ch, &format!("u-{i}"), &format!("Гость {i}"), "Здравствуйте").await);
    }
    let mut c = signed_in(&app, "anna", Role::Operator, "en").await;
    let first = c.get("/ui/inbox?status=open").await.body;
    assert!(!first.contains("id=\"first-page\""), "page 1 has no way back");
    let next = first.split("id=\"next-page\"").next().unwrap();
    let next = next.rsplit("href=\"").next().unwrap().split('"').next().unwrap().replace("&amp;", "&");
    assert!(next.starts_with("?status=open&cursor="), "the next page keeps the filter: {next}");
    let second = c.get(&format!("/ui/inbox{next}")).await.body;
    let src = second.split("id=\"conv-list\" data-live=\"inbox\" data-src=\"").nth(1).unwrap();
    let src = src.split('"').next().unwrap().replace("&amp;", "&").replace("&#x2f;", "/");
    assert_eq!(src, format!("/ui/inbox{next}"), "the live refresh asks for the same page");
    let refreshed = c.get(&format!("{src}&fragment=1")).await.body;
    let rows = refreshed.matches("<li class=\"conv").count();
    assert_eq!(rows, 3, "page 2 of 53: the three oldest");
    assert!(refreshed.contains(&format!("data-id=\"{}\"", ids[0])) && refreshed.contains("id=\"first-page\""));

    // The tab out of sight: the thread is refreshed, its new message stays unread.
    let conv = &ids[52];
    let thread = |background: bool| {
        format!("/ui/conversations/{conv}?fragment=thread{}", if background { "&background=1" } else { "" })
    };
    assert_eq!(c.get(&thread(true)).await.status, 200);
    assert_eq!(
        app.get(&format!("/api/v1/conversations/{conv}")).await.body["unread"],
        1,
        "not read behind a hidden tab"
    );
    assert_eq!(c.get(&thread(false)).await.status, 200);
    assert_eq!(app.get(&format!("/api/v1/conversations/{conv}")).await.body["unread"], 0, "read when looked at");

    // Logged out: a person's page goes to the login form, the script's fragment gets 401.
    let token = hidden(&c.get("/ui/inbox").await.body, "csrf");
    assert_eq!(c.post("/logout", &[("csrf", &token)]).await.status, 303);
    let page = c.get("/ui/inbox?fragment=1").await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/login")));
    let url = format!("{}/ui/inbox?fragment=1", app.url);
    let fragment = c.send(c.http.get(url).header("x-okno-fragment", "1")).await;
    assert_eq!(fragment.status, 401);
    assert!(!fragment.body.contains("<form"), "no login form to paste: {}", fragment.body);
}

#[tokio::test]
async fn the_api_pages_conversations_by_last_message_without_repeats_while_messages_arrive() {
    let (app, _sink, ch) = super::app_with_channel().await;
    let mut everyone = Vec::new();
    for n in 0..12 {
        everyone.push(visitor(&app, &ch, &format!("p-{n}"), &format!("Person {n}"), "hello").await);
    }
    let all: Vec<String> = app.get("/api/v1/conversations?limit=100").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    everyone.reverse();
    assert_eq!(all, everyone, "newest first");

    let (mut seen, mut moved) = (Vec::<String>::new(), Vec::<String>::new());
    let mut cursor: Option<String> = None;
    let mut round = 0;
    loop {
        let path = match &cursor {
            // A cursor is `<millis>.<hex id>`: nothing to escape.
            Some(c) => format!("/api/v1/conversations?limit=3&cursor={c}"),
            None => "/api/v1/conversations?limit=3".to_string(),
        };
        let page = app.get(&path).await.body;
        seen.extend(page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()));
        let Some(next) = page["next"].as_str() else { break };
        cursor = Some(next.to_string());
        // Meanwhile: an answer in a conversation already read, a customer not reached yet
        // writes again, a status changes, and somebody new writes.
        let done = seen[round % seen.len()].clone();
        super::reply(&app, &done, json!({"text": format!("answer {round}")})).await;
        moved.push(done);
        if let Some(ahead) = all.iter().rev().find(|id| !seen.contains(id) && !moved.contains(id)).cloned() {
            let n = all.len() - 1 - all.iter().position(|i| *i == ahead).unwrap();
            visitor(&app, &ch, &format!("p-{n}"), &format!("Person {n}"), "me again").await;
            moved.push(ahead);
        }
        let status = all.iter().find(|id| !seen.contains(id) && !moved.contains(id)).cloned();
        if let Some(id) = status {
            assert_eq!(
                app.patch(&format!("/api/v1/conversations/{id}"), json!({"status": "resolved"})).await.status,
                200
            );
        }
        visitor(&app, &ch, &format!("new-{round}"), "New", "hi").await;
        round += 1;
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "nothing twice: {seen:?}");
    for id in all.iter().filter(|id| !moved.contains(id)) {
        assert!(seen.contains(id), "{id} kept its place (a status change is not a message) and was paged over");
    }
    assert!(round >= 2);
}

#[tokio::test]
async fn the_contact_panel_shows_the_person_their_channels_groups_attributes_and_other_conversations() {
    let shop = Shop::open().await;
    let app = &shop.app;
    shop.says("Здравствуйте!").await;
    let conv = shop.conversation().await;
    // An older conversation of hers, from before okno kept one thread per person.
    app.db
        .execute_raw(&[format!(
            "INSERT INTO conversations (id, contact_id, status, labels, unread, last_message_at, created_at, updated_at) \
             VALUES ('0000older', '{}', 'resolved', '[]', 0, 1000, 1000, 1000)",
            shop.contact
        )])
        .await;
    app.running().engine.store.set_identity_blocked(&shop.site.as_str().into(), "site-42", true).await.unwrap();

    let mut c = signed_in(app, "anna", Role::Operator, "ru").await;
    let page = c.get(&format!("/ui/conversations/{conv}")).await.body;
    let panel = page[page.find("id=\"contact-panel\"").unwrap()..].replace("&#x2f;", "/");
    let text = visible(&panel);
    for shown in [
        "Мария Соколова",
        "+79161234567",
        "maria.sokolova@example.ru",
        "1С-00042",
        "Розница",
        "Весна-2026",
        "Город",
        "Тверь",
        "Бонусные баллы",
        "1240",
        "Стройторг · Telegram @maria_s активен",
        "Сайт Мария заблокирован",
        "Другие диалоги",
        "Решён",
    ] {
        assert!(text.contains(shown), "{shown:?} in the panel: {text}");
    }
    assert!(panel.contains("href=\"https://crm.stroytorg.example/clients/1%D0%A1-00042\""), "{panel}");
    assert!(panel.contains("href=\"/ui/conversations/0000older\""), "the other conversation");
    assert!(!panel.contains(&format!("href=\"/ui/conversations/{conv}\"")), "not this one");
    assert!(panel.contains(&format!("href=\"/ui/contacts/{}\"", shop.contact)), "the full card");
    let fragment = c.get(&format!("/ui/conversations/{conv}?fragment=panel")).await;
    assert_eq!(fragment.status, 200);
    assert!(visible(&fragment.body).contains("Тверь") && !fragment.body.contains("<html"), "the panel alone");

    // A restricted operator sees the panel masked, as everywhere.
    let mut rita = signed_in(app, "rita", Role::Restricted, "en").await;
    let page = rita.get(&format!("/ui/conversations/{conv}")).await.body;
    let text = visible(&page[page.find("id=\"contact-panel\"").unwrap()..]);
    assert!(text.contains("+7916•••••67") && text.contains("m•••@example.ru"), "{text}");
    assert!(!page.contains("1234567") && !page.contains("maria.sokolova"), "nowhere on the page");
}

// --- the browser ---------------------------------------------------------------------------

/// Where an element is on screen: left, right, width, height (0 when hidden).
async fn rect(b: &Browser, css: &str) -> (f64, f64, f64, f64) {
    let v = b
        .js(&format!(
            "var e = document.querySelector({}); if (!e) return [0, 0, 0, 0]; var r = e.getBoundingClientRect(); \
             return [r.left, r.right, r.width, r.height];",
            json!(css)
        ))
        .await;
    let n = |i: usize| v[i].as_f64().unwrap();
    (n(0), n(1), n(2), n(3))
}

/// Presses a key on whatever has the focus (WebDriver's key actions, as a person would).
async fn key(b: &Browser, k: &str) {
    let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
        {"type": "keyDown", "value": k}, {"type": "keyUp", "value": k}]}]});
    b.cmd(reqwest::Method::POST, "/actions", Some(actions)).await;
}

/// A desktop screen of `width`×`height` CSS pixels, for the screenshots (`Browser::screen`
/// emulates a phone).
async fn desktop(b: &Browser, width: u32, height: u32) {
    let body = json!({"cmd": "Emulation.setDeviceMetricsOverride",
        "params": {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}});
    b.cmd(reqwest::Method::POST, "/goog/cdp/execute", Some(body)).await;
}

/// Three people wrote on the website, oldest first; anna, an operator, signed in in `b`.
async fn three_waiting(b: &Browser) -> (TestApp, okno_testkit::Sink, String, [String; 3]) {
    let (app, sink, ch) = super::app_with_channel().await;
    let oldest = visitor(&app, &ch, "u-1", "Ирина", "Подскажите статус заказа 5521").await;
    let middle = visitor(&app, &ch, "u-2", "Олег", "Есть ли доставка в Клин?").await;
    let newest = visitor(&app, &ch, "u-3", "Вера", "Спасибо, всё получила").await;
    operator(&app, "anna", Role::Operator).await;
    sign_in(b, &app, "anna").await;
    (app, sink, ch, [oldest, middle, newest])
}

async fn current(b: &Browser) -> String {
    b.path().await.trim_start_matches("/ui/conversations/").to_string()
}

#[tokio::test]
async fn in_the_browser_three_panes_stay_while_shortcuts_move_reply_assign_and_resolve() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let (app, _sink, _, [oldest, middle, newest]) = three_waiting(&b).await;

    // Three panes side by side: the list, the thread (none picked yet), and no panel yet.
    let (_, list_right, list_w, _) = rect(&b, "#list-pane").await;
    let (pane_left, _, pane_w, _) = rect(&b, "#conv-pane").await;
    assert!(list_w > 200.0 && pane_w > 400.0 && list_right <= pane_left + 1.0, "side by side");
    assert!(b.text("#pick").await.contains("Choose a conversation"));
    assert!(
        b.js("return document.querySelector('#conv-list li.conv').classList.contains('unread')").await == json!(true)
    );
    b.js("window.__same_page = true; document.getElementById('conv-list').scrollTop = 0; return 1").await;

    // j opens the first conversation in the pane; the list is the same list, the page the same page.
    key(&b, "j").await;
    b.wait_for(10, "return document.querySelector('#thread-wrap') && window.oknoLive").await;
    assert_eq!(current(&b).await, newest);
    let (_, main_right, _, _) = rect(&b, ".conv-main").await;
    let (panel_left, _, panel_w, panel_h) = rect(&b, "#contact-panel").await;
    assert!(panel_w > 200.0 && panel_h > 100.0 && main_right <= panel_left + 1.0, "the contact panel on the right");
    assert!(b.text("#contact-panel").await.contains("Вера"));
    assert_eq!(b.js("return window.__same_page === true").await, json!(true), "no reload");
    assert_eq!(b.js("return document.querySelector('#conv-list li.current').dataset.id").await, json!(newest));
    b.wait_for(
        10,
        &format!("return !document.querySelector('#conv-list li[data-id=\"{newest}\"]').classList.contains('unread')"),
    )
    .await;
    key(&b, "j").await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{middle}') && window.oknoLive")).await;
    key(&b, "j").await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{oldest}') && window.oknoLive")).await;
    assert!(b.text("#thread").await.contains("Подскажите статус заказа 5521"));
    key(&b, "j").await; // the last one: nowhere further
    key(&b, "k").await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{middle}') && window.oknoLive")).await;
    assert_eq!(b.js("return window.__same_page === true").await, json!(true), "still no reload");
    assert!(b.text("#conv-list").await.contains("Ирина"), "the list is still there");
    // Back in the browser's history goes to the conversation before.
    b.js("history.back(); return 1").await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{oldest}') && document.querySelector('#thread').innerText.includes('5521')")).await;
    key(&b, "k").await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{middle}') && window.oknoLive")).await;

    // r puts the cursor in the reply box; letters typed there are text, not shortcuts.
    key(&b, "r").await;
    assert_eq!(b.js("return document.activeElement.id").await, "reply-text");
    key(&b, "j").await;
    key(&b, "e").await;
    assert_eq!(b.js("return document.getElementById('reply-text').value").await, "je");
    assert_eq!(current(&b).await, middle, "no move while typing");
    b.type_into("#reply-text", "Да, доставляем в Клин по четвергам.").await;
    b.type_into_keep("#reply-text", "\u{E009}\u{E007}").await; // Ctrl+Enter sends
    b.wait_for(15, "return document.querySelector('#thread').innerText.includes('по четвергам')").await;
    assert_eq!(b.js("return document.getElementById('reply-text').value").await, "", "the box is emptied");
    key(&b, "\u{E00C}").await; // Esc leaves the box
    assert_ne!(b.js("return document.activeElement.id").await, "reply-text");
    // The answer moved the conversation up; the list shows it without a reload.
    b.wait_for(10, &format!("return document.querySelector('#conv-list li.conv').dataset.id === '{middle}'")).await;

    // a takes it, e resolves it.
    key(&b, "a").await;
    b.wait_for(10, "return document.querySelector('#conv-assignee') && document.querySelector('#conv-assignee').innerText.includes('anna')").await;
    key(&b, "e").await;
    b.wait_for(10, "return document.querySelector('#conv-status').dataset.status === 'resolved'").await;
    let api = app.get(&format!("/api/v1/conversations/{middle}")).await.body;
    assert_eq!((api["assignee"].as_str(), api["status"].as_str()), (Some("anna"), Some("resolved")));
    assert_eq!(b.js("return window.__same_page === true").await, json!(true), "actions did not reload the page");

    // ? lists the shortcuts; Esc closes the list.
    key(&b, "?").await;
    let help = b.text("#shortcuts").await;
    for k in ["next conversation", "previous conversation", "reply", "resolve", "assign to me"] {
        assert!(help.contains(k), "{k} in {help}");
    }
    b.screenshot("window-shortcuts").await;
    key(&b, "\u{E00C}").await;
    assert_eq!(b.js("return document.getElementById('shortcuts').hidden").await, json!(true));

    // A phone: one pane at a time, no sideways scrolling.
    b.screen(Some((390, 844))).await;
    b.open(&format!("{}/ui/conversations/{oldest}", app.url)).await;
    assert_eq!(rect(&b, "#list-pane").await.2, 0.0, "the list is a page of its own");
    assert!(rect(&b, "#reply-text").await.2 > 300.0, "the reply box fills the width");
    let width = b.js("return document.documentElement.scrollWidth").await.as_i64().unwrap();
    assert!(width <= 400, "no horizontal scrolling on a phone: {width}px");
    b.screenshot("conversation-phone").await;
    b.open(&format!("{}/ui/inbox", app.url)).await;
    assert_eq!(rect(&b, "#conv-pane").await.2, 0.0, "the inbox alone");
    key(&b, "j").await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{middle}')")).await;
    b.screen(None).await;
    b.quit().await;
}

/// A key pressed as a keyboard with another layout sends it: `key` is the character typed,
/// `code` the key's place (`KeyJ` types «о» on a Russian layout).
fn keydown(key: &str, code: &str) -> String {
    format!(
        "document.body.dispatchEvent(new KeyboardEvent('keydown', {{key: {}, code: {}, bubbles: true, cancelable: true}}));",
        json!(key),
        json!(code)
    )
}

#[tokio::test]
async fn in_the_browser_live_refreshes_keep_what_is_typed_and_shortcuts_work_on_a_russian_layout() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let (app, _sink, ch, [oldest, middle, newest]) = three_waiting(&b).await;

    // «о» where j is on the keyboard opens the first conversation; «л» (k) goes back.
    b.js(&format!("{} return 1", keydown("о", "KeyJ"))).await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{newest}') && window.oknoLive")).await;
    b.js(&format!("{} return 1", keydown("о", "KeyJ"))).await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{middle}') && window.oknoLive")).await;
    b.js(&format!("{} return 1", keydown("л", "KeyK"))).await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{newest}') && window.oknoLive")).await;

    // Two presses faster than the answers: two rows down, and that one stays open.
    b.js(&format!("{0} {0} return 1", keydown("j", "KeyJ"))).await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{oldest}') && window.oknoLive")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(current(&b).await, oldest, "no late answer took the pane back");
    assert!(b.text("#thread").await.contains("5521"));

    // A reply begun here waits while another conversation is looked at.
    b.type_into("#reply-text", "Проверяю заказ, минуту").await;
    key(&b, "\u{E00C}").await;
    key(&b, "k").await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{middle}') && window.oknoLive")).await;
    assert_eq!(b.js("return document.getElementById('reply-text').value").await, "", "not in another's box");
    key(&b, "j").await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{oldest}') && window.oknoLive")).await;
    assert_eq!(b.js("return document.getElementById('reply-text').value").await, "Проверяю заказ, минуту");

    // Labels being typed when the customer writes again: the thread shows the new message and
    // the field keeps what was typed, with the cursor in it.
    b.type_into("#labels-input", "срочно, vip").await;
    visitor(&app, &ch, "u-1", "Ирина", "Номер заказа 5521, оплачен картой").await;
    b.wait_for(10, "return document.querySelector('#thread').innerText.includes('оплачен картой')").await;
    assert_eq!(b.js("return document.getElementById('labels-input').value").await, "срочно, vip");
    assert_eq!(b.js("return document.activeElement.id").await, "labels-input");
    b.js("document.getElementById('labels-input').form.requestSubmit(); return 1").await;
    let labels = eventually(10, || async {
        let labels = app.get(&format!("/api/v1/conversations/{oldest}")).await.body["labels"].clone();
        (labels != json!([])).then_some(labels)
    })
    .await;
    assert_eq!(labels, Some(json!(["vip", "срочно"])));

    // The reply goes, and its draft with it. (Her new message put her first in the list.)
    b.type_into_keep("#reply-text", "\u{E009}\u{E007}").await;
    b.wait_for(15, "return document.querySelector('#thread').innerText.includes('минуту')").await;
    key(&b, "\u{E00C}").await;
    key(&b, "j").await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{newest}') && window.oknoLive")).await;
    key(&b, "k").await;
    b.wait_for(10, &format!("return location.pathname.endsWith('{oldest}') && window.oknoLive")).await;
    assert_eq!(b.js("return document.getElementById('reply-text').value").await, "", "sent, so no draft");
    b.quit().await;
}

/// Scrolls the thread so that it starts at the broadcast: the picture shows the broadcast, the
/// bot's menu and the presses, and the operator's reply at the bottom.
const SHOW_FROM_THE_BROADCAST: &str = "var t = document.querySelector('#thread-wrap .thread'); \
    var li = Array.from(t.children).find(function (e) { return e.innerText.includes('Весенняя акция:'); }); \
    t.scrollTop += li.getBoundingClientRect().top - t.getBoundingClientRect().top - 4; return 1";

#[tokio::test]
async fn in_the_browser_the_window_shows_a_real_conversation_in_russian_and_in_english() {
    let _turn = BROWSER_TURN.lock().await;
    let Some(b) = Browser::start().await else { return };
    let shop = Shop::open().await;
    shop.maria_talks().await;
    let app = &shop.app;
    visitor(app, &shop.site, "v-1", "Ирина (сайт)", "Подскажите статус заказа 5521").await;
    let sim_oleg = shop.sim.user(TOKEN, 7002, "Олег");
    sim_oleg.send_text("/start");
    app.wait_message(|m| m["text"] == "/start" && m["contact_id"] != shop.contact.as_str()).await;
    visitor(app, &shop.site, "v-2", "Вера Ким", "Можно ли оплатить при получении?").await;
    let conv = shop.conversation().await;
    operator(app, "anna", Role::Operator).await;
    desktop(&b, 1440, 1000).await;
    sign_in(&b, app, "anna").await;
    b.goto(&format!("{}/lang/ru", app.url)).await;
    b.open(&format!("{}/ui/inbox", app.url)).await;

    // Maria's row, opened from the list; the operator answers her.
    b.click(&format!("#conv-list li[data-id=\"{conv}\"] a")).await;
    b.wait_for(10, "return document.querySelector('#reply-text') && window.oknoLive").await;
    b.type_into("#reply-text", "Да, привезём вместе с заказом. Скидка уже учтена.").await;
    b.click("#reply-send").await;
    b.wait_for(15, "return document.querySelector('#thread li.msg.out:last-child .author-operator')").await;
    let presses = b.js("return Array.from(document.querySelectorAll('#thread .pressed')).map(function (e) { return e.innerText; })").await;
    assert_eq!(
        presses,
        json!([
            "▣ нажата кнопка «Интересно»",
            "▣ нажата кнопка «Доставка и оплата»",
            "▣ нажата кнопка «Связаться с оператором»"
        ])
    );
    let thread = b.text("#thread").await;
    assert!(thread.contains("бот «Помощник Стройторга»") && thread.contains("рассылка «Весенняя акция»"), "{thread}");
    let panel = b.text("#contact-panel").await;
    assert!(panel.contains("Мария Соколова") && panel.contains("1С-00042") && panel.contains("Тверь"), "{panel}");
    b.js(SHOW_FROM_THE_BROADCAST).await;
    b.screenshot("window-ru").await;

    b.goto(&format!("{}/lang/en", app.url)).await;
    b.open(&format!("{}/ui/conversations/{conv}", app.url)).await;
    let presses = b.js("return Array.from(document.querySelectorAll('#thread .pressed')).map(function (e) { return e.innerText; })").await;
    assert_eq!(presses[1], "▣ pressed \"Доставка и оплата\"");
    let thread = b.text("#thread").await;
    assert!(
        thread.contains("bot \"Помощник Стройторга\"") && thread.contains("broadcast \"Весенняя акция\""),
        "{thread}"
    );
    b.js(SHOW_FROM_THE_BROADCAST).await;
    b.screenshot("window-en").await;
    b.screen(None).await;
    b.quit().await;
}
