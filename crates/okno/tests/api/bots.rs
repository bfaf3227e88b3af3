//! Bots end to end: the example bots of `examples/bots/` loaded into okno, driven by people in
//! the Telegram simulator, answering from the sample business system (`okno_testkit::biz`).

use std::path::PathBuf;
use std::time::Duration;

use okno_testkit::biz::{self, BizSim, Mode};
use okno_testkit::telegram::{Sent, SimUser, TelegramSim};
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Value};

const TOKEN: &str = "777001:bots-test-token";

// Texts of the example files, as people see them.
const EMP_LINK_PROMPT: &str =
    "Это корпоративный бот компании «Стройторг». Попросите в отделе кадров код привязки и отправьте его сюда.";
const EMP_MAIN: &str = "Главное меню. Выберите раздел.";
const EMP_MAIN_ITEMS: &[&str] =
    &["📰 Новости", "📊 Отчёты", "🔎 Информация о товаре", "✉️ Обратная связь", "📚 Инструкции"];
const EMP_REPORTS: &str = "Отчёты. Выберите отчёт или группу отчётов.";
const EMP_DEPT_STOCK: &str = "Остатки подразделений. Отчёт сформируется в 1С и придёт файлом.";
const EMP_FEEDBACK: &str = "Кому задать вопрос? Ответ придёт сюда же.";
const EMP_UNKNOWN: &str = "Не понял. Выберите пункт меню.";
const EMP_NOT_ALLOWED: &str = "Этот раздел вам недоступен.";
const EMP_PRODUCT_ASK: &str = "Введите часть названия товара, например «дрель».";
const EXPIRED: &str = "Вы долго не отвечали, начнём сначала.";
const ORDER_MAIN: &str = "Здравствуйте! Здесь можно узнать, на каком этапе ваш заказ.";
const ORDER_ASK: &str = "Введите номер заказа — он есть в чеке и в SMS.";
const ORDER_ERROR: &str = "Не получилось узнать статус, попробуйте через несколько минут.";
const SUPPORT_MAIN: &str = "Горячая линия поддержки. Чем помочь?";
const SUPPORT_HANDOFF: &str = "Соединяю с исполнителем. Опишите вопрос — ответ придёт сюда.";
const DEFAULT_UNKNOWN: &str = "Не понял. Выберите пункт меню.";
const NBSP: char = '\u{a0}';

fn rub(amount: &str) -> String {
    format!("{}{NBSP}₽", amount.replace(' ', &NBSP.to_string()))
}

fn example(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"))
}

/// okno with a polling Telegram bot, the sample business system, and one example bot loaded.
struct Shop {
    app: TestApp,
    sim: TelegramSim,
    biz: BizSim,
    ch: String,
}

/// Loads a definition; returns (status, body).
pub(crate) async fn put_bot(app: &TestApp, ch: &str, yaml: &str) -> (u16, Value) {
    let r = app
        .http
        .put(format!("{}/api/v1/bots/{ch}", app.url))
        .bearer_auth(&app.token)
        .header("content-type", "application/yaml")
        .body(yaml.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn shop(file: &str, tweak: impl Fn(String) -> String) -> Shop {
    let app = TestApp::spawn().await;
    let sim = TelegramSim::start().await;
    sim.add_bot(TOKEN, "stroytorg_bot");
    let biz = BizSim::start().await;
    let ch = app.telegram_channel(&sim, TOKEN, "polling").await;
    let source = example(&format!("bots/{file}"));
    assert!(source.contains(biz::EXAMPLE_BASE_URL), "{file} calls {}", biz::EXAMPLE_BASE_URL);
    let (status, body) = put_bot(&app, &ch, &tweak(biz.bind(&source))).await;
    assert!(status == 200 || status == 201, "{file} loads: {status} {body}");
    Shop { app, sim, biz, ch }
}

/// The inline buttons of a message, row by row flattened, as (text, callback_data).
fn buttons(s: &Sent) -> Vec<(String, String)> {
    let Some(markup) = &s.reply_markup else { return vec![] };
    let rows = markup["inline_keyboard"].as_array().or_else(|| markup["keyboard"].as_array());
    rows.into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .map(|b| {
            let text = b["text"].as_str().or_else(|| b.as_str()).unwrap_or("").to_string();
            (text, b["callback_data"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

fn labels(s: &Sent) -> Vec<String> {
    buttons(s).into_iter().map(|(t, _)| t).collect()
}

/// A person in a private chat with the bot, with a cursor over what the bot sent them.
struct Person {
    sim: TelegramSim,
    user: SimUser,
    seen: usize,
}

impl Person {
    fn new(sim: &TelegramSim, id: i64, name: &str) -> Person {
        Person { sim: sim.clone(), user: sim.user(TOKEN, id, name), seen: 0 }
    }

    fn id(&self) -> i64 {
        self.user.id()
    }

    fn all(&self) -> Vec<Sent> {
        self.sim.sent_to(TOKEN, self.id())
    }

    fn transcript(&self) -> String {
        self.all()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mark = if i < self.seen { " " } else { "*" };
                format!("{mark}{i} {} {:?} {:?}", s.method, s.plain.as_deref().unwrap_or(""), labels(s))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn say(&self, text: &str) -> i64 {
        self.user.send_text(text)
    }

    /// Waits for the first message after the cursor that satisfies `pred`; moves the cursor past it.
    async fn expect(&mut self, what: &str, pred: impl Fn(&Sent) -> bool) -> Sent {
        let from = self.seen;
        let found =
            eventually(10, || async { self.all().into_iter().enumerate().skip(from).find(|(_, s)| pred(s)) }).await;
        match found {
            Some((i, s)) => {
                self.seen = i + 1;
                s
            }
            None => panic!("chat {}: expected {what}; the bot sent (* = new):\n{}", self.id(), self.transcript()),
        }
    }

    /// The next message with exactly this text.
    async fn text(&mut self, exact: &str) -> Sent {
        self.expect(&format!("the text {exact:?}"), |s| s.plain.as_deref() == Some(exact)).await
    }

    /// The next message containing every one of `parts`.
    async fn containing(&mut self, parts: &[&str]) -> Sent {
        self.expect(&format!("a message containing {parts:?}"), |s| {
            s.plain.as_deref().is_some_and(|p| parts.iter().all(|x| p.contains(x)))
        })
        .await
    }

    /// The next message (or the one just matched) carrying all these buttons.
    async fn with_buttons(&mut self, wanted: &[&str], include_last: bool) -> Sent {
        if include_last {
            self.seen = self.seen.saturating_sub(1);
        }
        self.expect(&format!("buttons {wanted:?}"), |s| {
            let have = labels(s);
            wanted.iter().all(|w| have.iter().any(|h| h == w))
        })
        .await
    }

    /// Waits until the bot has been quiet for 1.5 s (okno paces a chat at one message a second
    /// after a burst of three); moves the cursor to the end; returns what arrived meanwhile.
    async fn settle(&mut self) -> Vec<Sent> {
        let mut count = self.all().len();
        let mut quiet_since = tokio::time::Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while quiet_since.elapsed() < Duration::from_millis(1500) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.all().len();
            if now != count {
                count = now;
                quiet_since = tokio::time::Instant::now();
            }
        }
        let all = self.all();
        let new = all[self.seen.min(all.len())..].to_vec();
        self.seen = all.len();
        new
    }

    /// Presses the newest button with exactly this text (waiting for it to appear). A reply
    /// keyboard button is "pressed" by sending its text.
    async fn press(&mut self, label: &str) {
        self.press_where(label, |t| t == label).await;
    }

    async fn press_where(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
        let found = eventually(10, || async {
            self.all()
                .into_iter()
                .rev()
                .find_map(|s| buttons(&s).into_iter().find(|(t, _)| pred(t)).map(|(t, data)| (s.message_id, t, data)))
        })
        .await;
        match found {
            Some((message_id, _, data)) if !data.is_empty() => {
                self.user.press(message_id, &data);
            }
            Some((_, text, _)) => {
                self.say(&text);
            }
            None => panic!("chat {}: no button {what:?}; the bot sent:\n{}", self.id(), self.transcript()),
        }
    }

    /// Asserts the bot sends nothing more for `ms`.
    async fn silent_for(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let all = self.all();
        assert_eq!(all.len(), self.seen, "chat {}: the bot should be silent:\n{}", self.id(), self.transcript());
    }
}

/// A business contact (upserted by external id) who links their Telegram account with a code.
async fn employee(shop: &Shop, external_id: &str, name: &str, groups: &[&str], tg_id: i64) -> (Person, String) {
    let c =
        shop.app.post("/api/v1/contacts", json!({"external_id": external_id, "name": name, "groups": groups})).await;
    assert!(c.status == 201 || c.status == 200, "{c:?}");
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let link = shop.app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await;
    assert_eq!(link.status, 201, "{link:?}");
    let code = link.body["code"].as_str().unwrap();
    let mut p = Person::new(&shop.sim, tg_id, name);
    p.say(&format!("/start {code}"));
    eventually(10, || async {
        let c = shop.app.get(&format!("/api/v1/contacts/{contact_id}")).await;
        c.body["identities"].as_array().is_some_and(|i| !i.is_empty()).then_some(())
    })
    .await
    .expect("the code links the Telegram account");
    p.settle().await;
    (p, contact_id)
}

async fn conversation_of(app: &TestApp, contact_id: &str) -> String {
    eventually(10, || async {
        let convs = app.get(&format!("/api/v1/conversations?contact_id={contact_id}")).await;
        convs.body["items"][0]["id"].as_str().map(str::to_string)
    })
    .await
    .expect("the person has a conversation")
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n
            .as_f64()
            .map(|f| if f.fract() == 0.0 { format!("{}", f as i64) } else { f.to_string() })
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// The employee bot (seed 001)

#[tokio::test]
async fn employee_bot_gives_an_unlinked_person_the_link_prompt_and_nothing_else() {
    let shop = shop("employee.yaml", |s| s).await;
    let mut stranger = Person::new(&shop.sim, 9101, "Гость");
    for text in ["привет", "/start", "100421", "/menu", "📊 Отчёты"] {
        stranger.say(text);
        let got = stranger.text(EMP_LINK_PROMPT).await;
        assert!(buttons(&got).is_empty(), "no menu for a stranger: {got:?}");
    }
    stranger.silent_for(1500).await;
    assert_eq!(stranger.all().len(), 5, "one link prompt per message, nothing else");
    assert!(shop.biz.requests().is_empty(), "nothing is asked of the business system for a stranger");
}

#[tokio::test]
async fn employee_bot_hides_a_group_only_report_and_refuses_an_old_button_for_it() {
    let shop = shop("employee.yaml", |s| s).await;
    let (mut boss, _) = employee(&shop, "emp-boss", "Анна Руководитель", &["Руководители"], 9102).await;
    let (mut seller, _) = employee(&shop, "emp-seller", "Пётр Продавцов", &["Продавцы"], 9103).await;

    boss.say("/menu");
    let main = boss.text(EMP_MAIN).await;
    assert_eq!(labels(&main)[..5], EMP_MAIN_ITEMS.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]);
    boss.press("📊 Отчёты").await;
    let reports = boss.text(EMP_REPORTS).await;
    assert!(labels(&reports).contains(&"🏬 Остатки подразделений".to_string()), "{:?}", labels(&reports));
    boss.press("🏬 Остатки подразделений").await;
    boss.text(EMP_DEPT_STOCK).await;

    seller.say("/menu");
    seller.text(EMP_MAIN).await;
    seller.press("📊 Отчёты").await;
    let theirs = seller.text(EMP_REPORTS).await;
    assert!(labels(&theirs).contains(&"💰 Мои продажи за сегодня".to_string()));
    assert!(!labels(&theirs).contains(&"🏬 Остатки подразделений".to_string()), "{:?}", labels(&theirs));
    seller.press("💰 Мои продажи за сегодня").await;
    seller.text(&format!("Ваши продажи за 01.07.2026: 14 чеков на {}.", rub("125 400,50"))).await;
    let asked = shop.biz.wait_requests("GET", "/reports/my_sales", 1, 5).await;
    assert_eq!(asked[0].q("employee"), "emp-seller");
    assert_eq!(asked[0].headers.get("authorization").map(String::as_str), Some("Basic b2tubzpzZWNyZXQ="));

    // 1С takes Анна out of the group: her old button no longer opens the section.
    let moved = shop.app.post("/api/v1/contacts", json!({"external_id": "emp-boss", "groups": ["Продавцы"]})).await;
    assert_eq!(moved.status, 200, "{moved:?}");
    boss.press("🏬 Остатки подразделений").await;
    boss.text(EMP_NOT_ALLOWED).await;
    // A report inside the section she can no longer open: the whole path is checked, not
    // just the item's own groups.
    boss.press("Остатки по складам (Excel)").await;
    boss.text(EMP_NOT_ALLOWED).await;
    boss.settle().await;
    assert_eq!(
        boss.all().iter().filter(|s| s.plain.as_deref() == Some(EMP_DEPT_STOCK)).count(),
        1,
        "the restricted menu was shown only while she was allowed"
    );
    // Forged presses of a restricted lookup's paging and detail buttons are refused too.
    let last = seller.all().last().unwrap().message_id;
    seller.user.press(last, "bot:page:stock_xlsx:0:");
    seller.text(EMP_NOT_ALLOWED).await;
    seller.user.press(last, "bot:more:stock_pdf:x:y");
    seller.text(EMP_NOT_ALLOWED).await;
    assert!(shop.biz.requests_to("POST", "/reports/stock").is_empty());
}

#[tokio::test]
async fn a_manager_walks_the_report_tree_and_gets_the_report_as_a_file() {
    let shop = shop("employee.yaml", |s| s).await;
    let (mut boss, _) = employee(&shop, "emp-boss", "Анна Руководитель", &["Руководители"], 9104).await;
    boss.say("/menu");
    boss.text(EMP_MAIN).await;
    boss.press("📊 Отчёты").await;
    boss.text(EMP_REPORTS).await;
    boss.press("🏬 Остатки подразделений").await;
    let dept = boss.text(EMP_DEPT_STOCK).await;
    assert_eq!(
        labels(&dept)[..2],
        ["Остатки по складам (Excel)".to_string(), "Остатки по магазинам (PDF)".to_string()]
    );
    assert!(labels(&dept).iter().any(|l| l == "◀ Назад") && labels(&dept).iter().any(|l| l == "🏠 В начало"));

    boss.press("Остатки по складам (Excel)").await;
    let doc = boss.expect("the Excel report", |s| s.method == "sendDocument").await;
    let file = doc.file.as_ref().unwrap();
    assert_eq!(file.name, "Остатки по складам.xlsx");
    assert_eq!(file.mime, biz::XLSX_MIME);
    assert_eq!(file.bytes, biz::report_xlsx());
    assert_eq!(doc.caption.as_deref(), Some("Остатки по складам на сегодня"));
    assert!(
        shop.sim.chat_actions(TOKEN).iter().any(|(chat, a)| *chat == boss.id() && a == "upload_document"),
        "the person saw “sending a file…”: {:?}",
        shop.sim.chat_actions(TOKEN)
    );
    let asked = shop.biz.wait_requests("POST", "/reports/stock", 1, 5).await;
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].body, json!({"user": "emp-boss", "format": "xlsx"}));

    // The same menu message still works for the second report.
    boss.press("Остатки по магазинам (PDF)").await;
    let pdf = boss.expect("the PDF report", |s| s.method == "sendDocument").await;
    assert_eq!(pdf.file.as_ref().unwrap().name, "Остатки по магазинам.pdf");
    assert!(pdf.file.as_ref().unwrap().bytes.starts_with(b"%PDF-1.4"));

    // Back climbs one level.
    boss.press("◀ Назад").await;
    boss.text(EMP_REPORTS).await;
}

#[tokio::test]
async fn news_shows_only_the_items_for_the_persons_groups() {
    let shop = shop("employee.yaml", |s| s).await;
    for (title, text, groups) in [
        ("Новые ноутбуки", "Пришли новые компьютеры для отдела IT.", vec!["IT"]),
        ("Собрание продавцов", "В пятницу в 9:00 собрание в торговом зале.", vec!["Продавцы"]),
        ("С Днём строителя!", "Поздравляем всех с праздником.", vec![]),
    ] {
        let r = shop.app.post("/api/v1/news", json!({"title": title, "text": text, "groups": groups})).await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let (mut seller, _) = employee(&shop, "emp-seller", "Пётр Продавцов", &["Продавцы"], 9105).await;
    seller.say("/menu");
    seller.text(EMP_MAIN).await;
    seller.press("📰 Новости").await;
    seller.containing(&["Собрание продавцов"]).await;
    let shown: Vec<String> = seller.all().iter().filter_map(|s| s.plain.clone()).collect();
    let shown = shown.join("\n");
    assert!(shown.contains("В пятницу в 9:00 собрание в торговом зале."), "{shown}");
    seller.settle().await;
    let shown: String = seller.all().iter().filter_map(|s| s.plain.clone()).collect::<Vec<_>>().join("\n");
    assert!(shown.contains("С Днём строителя!"), "news for everyone is shown: {shown}");
    assert!(!shown.contains("Новые ноутбуки"), "IT news is not for a seller: {shown}");

    let (mut it, _) = employee(&shop, "emp-it", "Игорь Сисадминов", &["IT"], 9106).await;
    it.say("/news");
    it.containing(&["Новые ноутбуки"]).await;
    it.settle().await;
    let shown: String = it.all().iter().filter_map(|s| s.plain.clone()).collect::<Vec<_>>().join("\n");
    assert!(!shown.contains("Собрание продавцов"), "{shown}");
}

#[tokio::test]
async fn product_search_pages_through_results_and_shows_short_and_detailed_cards() {
    let shop = shop("employee.yaml", |s| s).await;
    // Attaching the bot put its commands in Telegram's command menu.
    let commands: Vec<String> = shop
        .sim
        .commands(TOKEN)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c["command"].as_str().unwrap(), c["description"].as_str().unwrap()))
        .collect();
    assert_eq!(
        commands,
        ["start=Главное меню", "news=Новости", "product=Информация о товаре", "unanswered=Неотвеченные вопросы"]
    );
    let (mut seller, _) = employee(&shop, "emp-seller", "Пётр Продавцов", &["Продавцы"], 9107).await;
    seller.say("/menu");
    seller.text(EMP_MAIN).await;
    seller.press("🔎 Информация о товаре").await;
    seller.text(EMP_PRODUCT_ASK).await;
    seller.say("дрель");
    let list = seller.containing(&["Найдено товаров: 7. Выберите товар."]).await;
    let button = |p: &biz::Product| {
        let price = format!("{} {:03},00", p.price / 1000, p.price % 1000);
        let price = if p.price < 1000 { format!("{},00", p.price) } else { price };
        format!("{} — {}", p.name, rub(&price))
    };
    let drills: Vec<String> = biz::PRODUCTS[..7].iter().map(button).collect();
    let first = labels(&list);
    for d in &drills[..5] {
        assert!(first.contains(d), "page 1 has {d}: {first:?}");
    }
    assert!(!first.contains(&drills[5]), "five per page: {first:?}");
    assert!(first.iter().any(|l| l == "▶"), "{first:?}");
    let searched = shop.biz.wait_requests("GET", "/products", 1, 5).await;
    assert_eq!(searched[0].q("q"), "дрель");

    seller.press("▶").await;
    let second = seller.with_buttons(&[&drills[5], &drills[6], "◀"], false).await;
    assert!(!labels(&second).contains(&drills[0]), "{:?}", labels(&second));
    assert!(!labels(&second).iter().any(|l| l == "▶"), "the last page has no ▶: {:?}", labels(&second));
    seller.press("◀").await;
    seller.with_buttons(&[&drills[0], &drills[4], "▶"], false).await;

    seller.press(&drills[2]).await;
    let card = seller.text(&format!("Дрель аккумуляторная Интерскол ДА-12\nЦена: {} за шт", rub("4 350,00"))).await;
    assert!(labels(&card).iter().any(|l| l == "Подробнее"), "{:?}", labels(&card));
    assert_eq!(shop.biz.wait_requests("GET", "/products/DR-003", 1, 5).await.len(), 1);

    seller.press("Подробнее").await;
    seller
        .containing(&[
            "Гарантия: 12 мес.",
            "Страна: Россия",
            "Остатки по магазинам:",
            "• Магазин на Ленина:",
            "• Центральный склад:",
            &format!("• Розница: {}", rub("4 350,00")),
            &format!("• Опт: {}", rub("3 915,00")),
        ])
        .await;
    let photo =
        eventually(10, || async { shop.sim.sent_to(TOKEN, seller.id()).into_iter().find(|s| s.method == "sendPhoto") })
            .await
            .expect("the detailed card comes with the product photo");
    let f = photo.file.unwrap();
    assert!(
        f.bytes == biz::PHOTO_PNG || f.name == format!("{}/photos/DR-003.png", shop.biz.url()),
        "the photo is the business system's: {} ({} bytes)",
        f.name,
        f.bytes.len()
    );
    assert!(shop.biz.requests().iter().all(|r| r.path != "/products" || r.q("q") == "дрель"));
}

#[tokio::test]
async fn a_question_to_the_director_is_answered_by_reply() {
    let shop = shop("employee.yaml", |s| s).await;
    let (mut director, _) = employee(&shop, "emp-director", "Иван Директоров", &["Директор"], 9201).await;
    let (mut seller, _) = employee(&shop, "emp-seller", "Пётр Продавцов", &["Продавцы"], 9202).await;

    seller.say("/menu");
    seller.text(EMP_MAIN).await;
    seller.press("✉️ Обратная связь").await;
    seller.text(EMP_FEEDBACK).await;
    seller.press("❓ Вопрос директору").await;
    seller.text("Напишите вопрос — директор ответит здесь же.").await;
    seller.say("Когда выдадут спецодежду?");
    seller.text("Вопрос передан директору.").await;
    let first =
        director.containing(&["Пётр Продавцов", "Продавцы", "Когда выдадут спецодежду?", "Без ответа: 1"]).await;
    // Still in the feed: the next message is one more question.
    seller.say("И будет ли премия за квартал?");
    seller.text("Вопрос передан директору.").await;
    director.containing(&["Пётр Продавцов", "И будет ли премия за квартал?", "Без ответа: 2"]).await;

    director.user.reply(first.message_id, "Выдадут в понедельник, на складе.");
    seller.text("Ответ директора:\nВыдадут в понедельник, на складе.").await;
    director.containing(&["Без ответа: 1"]).await;
    director.say("/unanswered");
    let left = director.containing(&["И будет ли премия за квартал?"]).await;
    assert!(!left.plain.as_deref().unwrap().contains("спецодежду"), "{left:?}");

    let second = director.all().into_iter().find(|s| s.plain.as_deref().is_some_and(|p| p.contains("премия"))).unwrap();
    director.user.reply(second.message_id, "Будет.");
    seller.text("Ответ директора:\nБудет.").await;
    director.containing(&["Без ответа: 0"]).await;
    director.say("/unanswered");
    let none = director.expect("the unanswered list", |s| s.plain.is_some()).await;
    let none = none.plain.unwrap();
    assert!(!none.contains("спецодежду") && !none.contains("премия"), "nothing is left: {none}");
    assert!(none.to_lowercase().contains("нет"), "{none}");
}

// ---------------------------------------------------------------------------------------------
// The employee self-service bot (seed 000)

const SS_MAIN: &str = "Мария Сидорова, что нужно оформить?";

#[tokio::test]
async fn a_form_half_filled_survives_a_restart() {
    let mut shop = shop("self_service.yaml", |s| s).await;
    let (mut maria, _) = employee(&shop, "emp-8", "Мария Сидорова", &["Рабочие"], 9310).await;
    maria.say("/start");
    maria.text(SS_MAIN).await;
    maria.press("🏖 Заявление на отпуск").await;
    maria.containing(&["С какого числа отпуск? (ДД.ММ.ГГГГ)"]).await;
    maria.say("15.07.2026");
    maria.containing(&["Сколько дней?"]).await;
    maria.settle().await;

    shop.app.restart().await;

    maria.say("14");
    maria.containing(&["Вид отпуска"]).await; // the form went on where it was
}

#[tokio::test]
async fn a_vacation_request_is_checked_edited_and_submitted_once_as_an_event_and_a_call() {
    let shop = shop("self_service.yaml", |s| s).await;
    // The HR department hears of every request through a rule on the bot's event.
    let rule = shop
        .app
        .post(
            "/api/v1/rules",
            json!({"name": "Заявление на отпуск — в отдел кадров", "event": "vacation.requested",
                   "recipients": [{"group": "Кадры"}],
                   "template": "Заявление на отпуск: {{ data.contact.name }}, с {{ data.form.start }}, {{ data.form.kind }}."}),
        )
        .await;
    assert_eq!(rule.status, 201, "{rule:?}");
    let (mut hr, _) = employee(&shop, "emp-hr", "Ольга Кадровик", &["Кадры"], 9301).await;
    let (mut maria, _) = employee(&shop, "emp-7", "Мария Сидорова", &["Рабочие"], 9302).await;

    maria.say("/start");
    maria.text(SS_MAIN).await;
    maria.press("🏖 Заявление на отпуск").await;
    maria.containing(&["С какого числа отпуск? (ДД.ММ.ГГГГ)"]).await;
    maria.say("15.07.2026");
    maria.containing(&["Сколько дней?"]).await;
    maria.say("40");
    maria.containing(&["Сколько дней?"]).await; // more than 28: asked again
    maria.say("14");
    let kind = maria.containing(&["Вид отпуска"]).await;
    assert_eq!(labels(&kind)[..2], ["Ежегодный".to_string(), "Без сохранения зарплаты".to_string()]);
    assert!(labels(&kind).iter().any(|l| l == "Отмена"), "every step can be cancelled: {:?}", labels(&kind));
    maria.press("Ежегодный").await;
    maria.containing(&["Телефон для связи во время отпуска"]).await;
    maria.say("8 (912) 345-67-89");
    let scan = maria.containing(&["Приложите скан заявления (фото или файл)"]).await;
    assert!(labels(&scan).iter().any(|l| l == "Пропустить"), "an optional step can be skipped: {:?}", labels(&scan));
    maria.user.send_document(b"%PDF-1.4 zayavlenie", "заявление.pdf", "application/pdf");
    let confirm =
        maria.containing(&["Отпуск с 15.07.2026, дней: 14 (Ежегодный), телефон +79123456789. Отправить?"]).await;
    for b in ["Отправить", "Изменить", "Отмена"] {
        assert!(labels(&confirm).iter().any(|l| l == b), "{b}: {:?}", labels(&confirm));
    }

    maria.press("Изменить").await;
    maria.press_where("the «Сколько дней» field", |t| !t.is_empty() && "Сколько дней?".starts_with(t)).await;
    maria.containing(&["Сколько дней?"]).await;
    maria.say("21");
    maria.containing(&["Отпуск с 15.07.2026, дней: 21 (Ежегодный), телефон +79123456789. Отправить?"]).await;
    assert!(shop.biz.requests_to("POST", "/vacations").is_empty(), "nothing is sent before «Отправить»");

    maria.press("Отправить").await;
    maria.text("Заявление отправлено, номер ОТП-0001.").await;
    maria.press("Отправить").await; // the same button once more
    maria.settle().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posts = shop.biz.requests_to("POST", "/vacations");
    assert_eq!(posts.len(), 1, "submitted once");
    let b = &posts[0].body;
    assert_eq!(text_of(&b["employee"]), "emp-7");
    assert_eq!(text_of(&b["start"]), "2026-07-15");
    assert_eq!(text_of(&b["days"]), "21");
    assert_eq!(text_of(&b["kind"]), "Ежегодный");
    assert_eq!(text_of(&b["phone"]), "+79123456789");
    assert!(!text_of(&b["scan"]).is_empty(), "the scan's attachment id: {b}");
    assert_eq!(posts[0].headers.get("authorization").map(String::as_str), Some("Basic b2tubzpzZWNyZXQ="));
    assert!(
        !maria.all().iter().any(|s| s.plain.as_deref() == Some("Заявление отправлено, номер ОТП-0002.")),
        "{}",
        maria.transcript()
    );

    // The event vacation.requested was posted once: the HR rule fired once.
    hr.text("Заявление на отпуск: Мария Сидорова, с 2026-07-15, Ежегодный.").await;
    hr.silent_for(1500).await;
}

#[tokio::test]
async fn a_skipped_optional_scan_reaches_the_business_system_empty_and_never_as_none() {
    let shop = shop("self_service.yaml", |s| s).await;
    let (mut maria, _) = employee(&shop, "emp-8", "Мария Сидорова", &["Рабочие"], 9303).await;
    maria.say("/start");
    maria.text(SS_MAIN).await;
    maria.press("🏖 Заявление на отпуск").await;
    maria.containing(&["С какого числа отпуск?"]).await;
    maria.say("01.08.2026");
    maria.containing(&["Сколько дней?"]).await;
    maria.say("7");
    maria.containing(&["Вид отпуска"]).await;
    maria.press("Ежегодный").await;
    maria.containing(&["Телефон для связи во время отпуска"]).await;
    maria.say("+7 912 000-11-22");
    maria.containing(&["Приложите скан заявления"]).await;
    maria.press("Пропустить").await;
    maria.containing(&["Отпуск с 01.08.2026, дней: 7 (Ежегодный), телефон +79120001122. Отправить?"]).await;
    maria.press("Отправить").await;
    maria.containing(&["Заявление отправлено"]).await;
    let posts = shop.biz.requests_to("POST", "/vacations");
    assert_eq!(posts.len(), 1, "submitted once");
    assert_eq!(posts[0].body["scan"], "", "the skipped scan is empty: {}", posts[0].body);
    assert!(!posts[0].body.to_string().contains("None"), "{}", posts[0].body);
}

#[tokio::test]
async fn a_certificate_is_ordered_and_a_double_press_submits_once() {
    let shop = shop("self_service.yaml", |s| s).await;
    let (mut maria, _) = employee(&shop, "emp-7", "Мария Сидорова", &[], 9303).await;
    maria.say("/menu");
    maria.text(SS_MAIN).await;
    maria.press("📄 Заказать справку").await;
    let kinds = maria.containing(&["Какая справка нужна?"]).await;
    assert_eq!(labels(&kinds)[..3], ["С места работы".to_string(), "2-НДФЛ".to_string(), "О стаже".to_string()]);
    maria.press("С места работы").await;
    maria.containing(&["Сколько экземпляров?"]).await;
    maria.say("2");
    maria.containing(&["Как получить справку?"]).await;
    maria.press("В отделе кадров").await;
    let confirm = maria
        .containing(&["Справка «С места работы», экземпляров: 2, получение: В отделе кадров. Отправить заявку?"])
        .await;
    let send = buttons(&confirm).into_iter().find(|(t, _)| t == "Отправить").expect("a send button");
    maria.user.press(confirm.message_id, &send.1);
    maria.user.press(confirm.message_id, &send.1);
    maria.text("Заявка на справку принята, номер СП-0001. Справка будет готова 03.07.2026.").await;
    maria.settle().await;
    let posts = shop.biz.requests_to("POST", "/certificates");
    assert_eq!(posts.len(), 1, "two presses, one request");
    assert_eq!(text_of(&posts[0].body["kind"]), "С места работы");
    assert_eq!(text_of(&posts[0].body["copies"]), "2");
    assert_eq!(text_of(&posts[0].body["delivery"]), "В отделе кадров");
    assert_eq!(text_of(&posts[0].body["employee"]), "emp-7");
}

#[tokio::test]
async fn a_form_cancelled_halfway_returns_to_the_menu_and_sends_nothing() {
    let shop = shop("self_service.yaml", |s| s).await;
    let (mut maria, _) = employee(&shop, "emp-7", "Мария Сидорова", &[], 9304).await;
    maria.say("/menu");
    maria.text(SS_MAIN).await;
    maria.press("🏖 Заявление на отпуск").await;
    maria.containing(&["С какого числа отпуск?"]).await;
    maria.say("15.07.2026");
    maria.containing(&["Сколько дней?"]).await;
    maria.press("Отмена").await;
    maria.with_buttons(&["📄 Заказать справку", "🏖 Заявление на отпуск"], false).await;
    maria.settle().await;
    assert!(maria.all().iter().rev().take(3).any(|s| s.plain.as_deref() == Some(SS_MAIN)), "{}", maria.transcript());
    // The form is over: a number now is not an answer to it.
    maria.say("14");
    maria.containing(&[DEFAULT_UNKNOWN]).await;

    // Typing «отмена» works as well.
    maria.press("🤒 Больничный").await;
    maria.containing(&["Дата открытия больничного листа (ДД.ММ.ГГГГ)"]).await;
    maria.say("отмена");
    maria.with_buttons(&["📄 Заказать справку", "🤒 Больничный"], false).await;
    maria.settle().await;
    assert!(shop.biz.requests().is_empty(), "nothing reached 1С: {:?}", shop.biz.requests());
}

#[tokio::test]
async fn a_form_abandoned_past_the_idle_timeout_starts_over() {
    let shop = shop("self_service.yaml", |s| s.replace("idle_timeout: 30m", "idle_timeout: 2s")).await;
    let (mut maria, _) = employee(&shop, "emp-7", "Мария Сидорова", &[], 9305).await;
    maria.say("/menu");
    maria.text(SS_MAIN).await;
    maria.press("🏖 Заявление на отпуск").await;
    maria.containing(&["С какого числа отпуск?"]).await;
    maria.say("15.07.2026");
    maria.containing(&["Сколько дней?"]).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    maria.say("14");
    maria.containing(&[EXPIRED]).await;
    maria.with_buttons(&["📄 Заказать справку", "🏖 Заявление на отпуск"], true).await;
    maria.settle().await;
    assert!(
        !maria.all().iter().any(|s| s.plain.as_deref().is_some_and(|p| p.contains("Вид отпуска"))),
        "the old form did not go on: {}",
        maria.transcript()
    );
    assert!(shop.biz.requests_to("POST", "/vacations").is_empty());
}

// ---------------------------------------------------------------------------------------------
// The order-status bot for customers (seed 000)

#[tokio::test]
async fn a_customer_asks_for_an_order_and_is_told_when_its_stage_changes() {
    let shop = shop("order_status.yaml", |s| s).await;
    let rule: Value = serde_json::from_str(&example("rules/order_stage.json")).unwrap();
    assert_eq!(shop.app.post("/api/v1/rules", rule).await.status, 201);

    let mut olga = Person::new(&shop.sim, 9401, "Ольга");
    olga.say("/start");
    let main = olga.text(ORDER_MAIN).await;
    assert_eq!(labels(&main)[..2], ["🔍 Узнать статус заказа".to_string(), "💬 Связаться с менеджером".to_string()]);
    olga.say("100421");
    olga.text("Заказ № 100421: В производстве.\nМы пришлём сообщение, когда этап изменится.").await;
    olga.say("999999");
    olga.text("Заказ № 999999 не найден. Проверьте номер.").await;
    olga.press("🔍 Узнать статус заказа").await;
    olga.text(ORDER_ASK).await;
    olga.say("100422");
    olga.text("Заказ № 100422: Готов к выдаче.\nМы пришлём сообщение, когда этап изменится.").await;

    let lookups = shop.biz.requests().into_iter().filter(|r| r.path.starts_with("/orders/")).count();
    assert_eq!(lookups, 3);
    let convs = shop.app.get(&format!("/api/v1/conversations?channel_id={}", shop.ch)).await;
    let contact_id = convs.body["items"][0]["contact"]["id"].as_str().unwrap().to_string();
    assert_eq!(shop.biz.subscriber("100421").as_deref(), Some(contact_id.as_str()), "1С knows whom to notify");

    // 1С moves the order on and posts the example event with the subscriber it remembered.
    let mut event: Value = serde_json::from_str(&example("events/order_stage_changed.json")).unwrap();
    event["data"]["subscriber"] = json!(shop.biz.subscriber("100421").unwrap());
    let posted = shop.app.post("/api/v1/events", event).await;
    assert_eq!(posted.status, 202, "{posted:?}");
    olga.text("Заказ № 100421: новый этап — «Готов к выдаче».\nМожно забирать с 26.11.2027.").await;
}

// ---------------------------------------------------------------------------------------------
// The support hotline (seed 000)

#[tokio::test]
async fn a_support_ticket_is_created_listed_and_the_executor_takes_over_the_chat() {
    let shop = shop("support.yaml", |s| s).await;
    let (mut oleg, contact_id) = employee(&shop, "emp-11", "Олег Кузнецов", &[], 9501).await;
    oleg.say("/menu");
    oleg.text(SUPPORT_MAIN).await;
    oleg.press("🆕 Создать заявку").await;
    oleg.containing(&["Что случилось?"]).await;
    oleg.press("Принтер").await;
    oleg.containing(&["Опишите проблему одним сообщением"]).await;
    oleg.say("Не печатает принтер в бухгалтерии");
    oleg.text("Заявка HD-0001 создана. Статус — «Новая».").await;
    let created = shop.biz.requests_to("POST", "/tickets");
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0].body,
        json!({"user": "emp-11", "topic": "Принтер", "text": "Не печатает принтер в бухгалтерии"})
    );

    oleg.say("/menu");
    oleg.text(SUPPORT_MAIN).await;
    oleg.press("📋 Мои заявки").await;
    let list = oleg.containing(&["Ваши заявки"]).await;
    assert!(labels(&list).contains(&"HD-0001 · Принтер · Новая".to_string()), "{:?}", labels(&list));
    assert_eq!(shop.biz.requests_to("GET", "/tickets")[0].q("user"), "emp-11");
    oleg.press("HD-0001 · Принтер · Новая").await;
    oleg.text("Заявка HD-0001 (Принтер): Новая\nНе печатает принтер в бухгалтерии").await;

    oleg.press("👨‍🔧 Написать исполнителю").await;
    oleg.text(SUPPORT_HANDOFF).await;
    let conv = conversation_of(&shop.app, &contact_id).await;
    assert_eq!(shop.app.get(&format!("/api/v1/conversations/{conv}")).await.body["status"], "open");
    oleg.say("Принтер HP в кабинете 204, горит оранжевая лампа");
    oleg.silent_for(1500).await;
    shop.app
        .wait_message(|m| m["text"] == "Принтер HP в кабинете 204, горит оранжевая лампа" && m["direction"] == "in")
        .await;

    let r = shop
        .app
        .post(&format!("/api/v1/conversations/{conv}/messages"), json!({"text": "Иду к вам, буду через 10 минут."}))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    oleg.text("Иду к вам, буду через 10 минут.").await;
    let resolved = shop.app.patch(&format!("/api/v1/conversations/{conv}"), json!({"status": "resolved"})).await;
    assert_eq!(resolved.status, 200, "{resolved:?}");
    oleg.say("Спасибо, заработало!");
    oleg.containing(&[DEFAULT_UNKNOWN]).await;
    assert_eq!(shop.app.get(&format!("/api/v1/conversations/{conv}")).await.body["status"], "bot");
}

// ---------------------------------------------------------------------------------------------
// Bad input

/// The `line N` a message points at.
fn line_of(message: &str) -> usize {
    let at = message.find("line ").unwrap_or_else(|| panic!("no line in {message:?}"));
    message[at + 5..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

fn line_containing(source: &str, needle: &str) -> usize {
    source.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[tokio::test]
async fn a_malformed_definition_is_refused_with_its_line_and_the_running_bot_stays() {
    let shop = shop("order_status.yaml", |s| s).await;
    let good = shop.biz.bind(&example("bots/employee.yaml"));

    let broken = good.replacen("    columns: 2", "    columns: [2", 1);
    let (status, body) = put_bot(&shop.app, &shop.ch, &broken).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_bot")), "{body}");
    let at = line_of(body["error"]["message"].as_str().unwrap());
    let want = line_containing(&broken, "columns: [2");
    assert!((want..=want + 2).contains(&at), "the syntax error is at line {want}, reported {at}: {body}");

    let unknown = good.replacen("do: {menu: department_stock}", "do: {menu: department_stok}", 1);
    let (status, body) = put_bot(&shop.app, &shop.ch, &unknown).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_bot")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert_eq!(line_of(message), line_containing(&unknown, "department_stok"), "{message}");
    assert!(message.contains("department_stok"), "{message}");

    let checked = shop
        .app
        .http
        .post(format!("{}/api/v1/bots/check", shop.app.url))
        .bearer_auth(&shop.app.token)
        .header("content-type", "application/yaml")
        .body(unknown.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(checked.status(), 400);

    // The order-status bot loaded first is still the one running.
    let current = shop.app.get(&format!("/api/v1/bots/{}", shop.ch)).await;
    assert_eq!(current.status, 200, "{current:?}");
    assert!(current.body.to_string().contains("Статус заказа"), "{}", current.body);
    let mut olga = Person::new(&shop.sim, 9601, "Ольга");
    olga.say("/start");
    olga.text(ORDER_MAIN).await;
}

#[tokio::test]
async fn lookup_failures_give_the_error_text_and_the_next_press_still_works() {
    let shop = shop("order_status.yaml", |s| s.replace("timeout: 10s", "timeout: 1s")).await;
    let mut olga = Person::new(&shop.sim, 9602, "Ольга");
    olga.say("/start");
    olga.text(ORDER_MAIN).await;

    for (mode, what) in [
        (Mode::Slow(Duration::from_secs(3)), "a timeout"),
        (Mode::Error500, "a 500"),
        (Mode::BadJson, "a body that is not JSON"),
        (Mode::WrongShape, "JSON without the fields the text needs"),
    ] {
        shop.biz.set_mode(mode);
        let started = std::time::Instant::now();
        olga.say("100421");
        let got = olga.expect(what, |s| s.plain.is_some()).await;
        assert_eq!(got.plain.as_deref(), Some(ORDER_ERROR), "{what}: {}", olga.transcript());
        if let Mode::Slow(_) = mode {
            assert!(started.elapsed() < Duration::from_millis(2900), "okno gave up after its 1 s timeout");
        }
    }
    shop.biz.set_mode(Mode::Normal);
    olga.press("🔍 Узнать статус заказа").await;
    olga.text(ORDER_ASK).await;
    olga.say("100421");
    olga.text("Заказ № 100421: В производстве.\nМы пришлём сообщение, когда этап изменится.").await;
    assert_eq!(shop.biz.requests().iter().filter(|r| r.path == "/orders/100421").count(), 5);
}

#[tokio::test]
async fn text_where_a_button_is_expected_gets_the_unknown_text_and_the_menu_again() {
    let shop = shop("employee.yaml", |s| s).await;
    let (mut seller, _) = employee(&shop, "emp-seller", "Пётр Продавцов", &["Продавцы"], 9603).await;
    seller.say("/menu");
    seller.text(EMP_MAIN).await;
    seller.say("покажи мне отчёт");
    seller.containing(&[EMP_UNKNOWN]).await;
    seller.with_buttons(EMP_MAIN_ITEMS, true).await;
    // A button's exact text typed by hand works like the press.
    seller.say("📊 Отчёты");
    seller.text(EMP_REPORTS).await;
    seller.say("/menu");
    seller.text(EMP_MAIN).await;
    seller.say("📚 Инструкции");
    seller.text("Инструкции по работе.").await;
    seller.press("Открытие и закрытие смены").await;
    seller.containing(&["Открытие смены: включите кассу", "снимите Z-отчёт"]).await;
    assert!(shop.biz.requests().is_empty());
}

/// A site that shows no buttons (`"buttons": false` on a webhook channel): menus arrive as
/// numbered lines and the person answers with the number.
#[tokio::test]
async fn on_a_channel_without_buttons_menus_are_numbered_and_numbers_choose() {
    let app = TestApp::spawn().await;
    let biz = BizSim::start().await;
    let sink = okno_testkit::Sink::start("site-secret-0123456789").await;
    let ch = app
        .post(
            "/api/v1/channels",
            json!({"kind": "webhook", "name": "Сайт без кнопок",
                   "config": {"outbound_url": format!("{}/out", sink.url), "secret": "site-secret-0123456789", "buttons": false}}),
        )
        .await;
    assert_eq!(ch.status, 201, "{ch:?}");
    let ch = ch.body["id"].as_str().unwrap().to_string();
    let (status, body) = put_bot(&app, &ch, &biz.bind(&example("bots/order_status.yaml"))).await;
    assert_eq!(status, 200, "{body}");

    let say = |n: usize, text: &str| json!({"message_id": format!("m-{n}"), "user": {"id": "site-1", "name": "Покупатель"}, "text": text});
    let r = app.inbound(&ch, "site-secret-0123456789", &say(1, "/start")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = sink.wait_accepted(1, 10).await;
    assert_eq!(
        got[0].body["text"],
        format!("{ORDER_MAIN}\n1. 🔍 Узнать статус заказа\n2. 💬 Связаться с менеджером"),
        "the menu is numbered in the text"
    );
    assert!(got[0].body.get("buttons").is_none(), "and no buttons are sent: {}", got[0].body);

    app.inbound(&ch, "site-secret-0123456789", &say(2, "1")).await;
    let got = sink.wait_accepted(2, 10).await;
    assert_eq!(got[1].body["text"], format!("{ORDER_ASK}\n1. 🏠 В начало"));
    app.inbound(&ch, "site-secret-0123456789", &say(3, "100421")).await;
    let got = sink.wait_accepted(3, 10).await;
    let answer = got[2].body["text"].as_str().unwrap();
    assert!(answer.starts_with("Заказ № 100421: "), "{answer}");
    let asked: Vec<_> = biz.requests().into_iter().filter(|r| r.path.starts_with("/orders/")).collect();
    assert_eq!(asked.len(), 1, "one lookup: {asked:?}");
}

/// A double tap on a choice answers only the step it was drawn for; a definition changed under
/// a half-filled form sends the person back to the menu instead of breaking their chat.
#[tokio::test]
async fn a_double_tap_answers_one_step_and_a_changed_definition_resets_a_form() {
    // Two choices in a row: the second tap on the first one must not answer the second.
    let shop = shop("self_service.yaml", |s| {
        s.replace(
            r#"      - {field: phone, ask: "Телефон для связи во время отпуска", type: phone}"#,
            r#"      - {field: paid, ask: "Оплатить заранее?", type: choice, options: [Да, Нет]}
      - {field: phone, ask: "Телефон для связи во время отпуска", type: phone}"#,
        )
    })
    .await;
    let (mut maria, _) = employee(&shop, "emp-9", "Мария Сидорова", &["Рабочие"], 9320).await;
    maria.say("/start");
    maria.text(SS_MAIN).await;
    maria.press("🏖 Заявление на отпуск").await;
    maria.containing(&["С какого числа отпуск?"]).await;
    maria.say("15.07.2026");
    maria.containing(&["Сколько дней?"]).await;
    maria.say("14");
    let kind = maria.containing(&["Вид отпуска"]).await;
    let data = buttons(&kind).into_iter().find(|(t, _)| t == "Ежегодный").map(|(_, d)| d).unwrap();
    maria.user.press(kind.message_id, &data);
    maria.user.press(kind.message_id, &data);
    maria.containing(&["Оплатить заранее?"]).await;
    maria.containing(&["Оплатить заранее?"]).await; // the second tap only asks again
    maria.settle().await;
    assert!(
        !maria.all().iter().any(|s| s.plain.as_deref().is_some_and(|t| t.contains("Телефон для связи"))),
        "the second step was not answered by the double tap"
    );

    // The administrator removes the form while Мария is in it.
    let without = biz_source(&shop, "self_service.yaml")
        .replace("        do: {form: vacation}", "        do: {form: certificate}")
        .replace("  vacation:\n", "  vacation_old:\n");
    let (status, body) = put_bot(&shop.app, &shop.ch, &without).await;
    assert_eq!(status, 200, "{body}");
    maria.say("Да");
    maria.text("Это меню устарело, вот актуальное.").await;
    maria.text(SS_MAIN).await;
    maria.press("📄 Заказать справку").await;
    maria.containing(&["Какая справка нужна?"]).await; // the bot goes on working
}

fn biz_source(shop: &Shop, file: &str) -> String {
    shop.biz.bind(&example(&format!("bots/{file}")))
}
