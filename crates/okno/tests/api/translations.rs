//! Every page in one language only: a crawl of the whole UI as an administrator, following every
//! link from the inbox, in Russian and in English. A Russian page may show none of the UI's own
//! English texts and no Latin word outside a short list of names (okno, Telegram, CSV…); an
//! English page none of the UI's Russian texts. What people and business systems wrote — names,
//! ids, JSON — is data, marked `translate="no"` (or shown in `<code>`/`<pre>`), and messages
//! people wrote are in `<bdi>` (a browser may still translate those for the operator); neither
//! is checked. `DUMP_PAGES=DIR` saves every page the crawl sees, to look at what it found.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Latin words a Russian page may show: names of products, platforms and formats.
const LATIN_ALLOWED: &[&str] = &[
    "okno",
    "Telegram",
    "CRM",
    "amoCRM",
    "GET",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "WhatsApp",
    "Meta",
    "Viber",
    "Avito",
    "MAX",
    "VK",
    "SMS",
    "SMSC",
    "Twilio",
    "Matrix",
    "CSV",
    "SVG",
    "JSON",
    "YAML",
    "API",
    "URL",
    "HTTP",
    "HTTPS",
    "HMAC",
    // Mail's protocols and the name IMAP gives the inbox folder.
    "IMAP",
    "SMTP",
    // Business systems' protocols.
    "OAuth",
    "OData",
    "TLS",
    "STARTTLS",
    "INBOX",
    "SHA",
    "NPS",
    "eNPS",
    "SSE",
    "RU",
    "EN",
    "ID",
    "UTC",
    "MSK",
    "Enter",
    "Ctrl",
    "Esc",
    "Tab",
    "Alt",
    "Shift",
    "MiniJinja",
    "Jinja",
    "webhook",
    "Widget",
];

/// Names written the same in every language, left out before the check.
const PROPER_NAMES: &[&str] = &["Telegram Bot API", "@BotFather", "Bot API", "Callback API", "Long Poll"];

/// The visible text of a page: text nodes and the attributes people read (placeholder, title,
/// aria-label, alt, the value of a button), outside scripts, styles, `<code>`, `<pre>`, `<kbd>`,
/// `<samp>` and any element marked `translate="no"`.
pub fn visible_text(html: &str) -> String {
    const VOID: &[&str] =
        &["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"];
    // The head holds the window title, which names the page's data (an event's type, a contact).
    // `bdi` holds what people wrote (a message, a preview) in whatever language they wrote it.
    const SKIP: &[&str] = &["head", "script", "style", "code", "pre", "kbd", "samp", "datalist", "bdi"];
    let mut out = String::new();
    // Open elements and whether their content is skipped.
    let mut stack: Vec<(String, bool)> = Vec::new();
    let skipping = |stack: &[(String, bool)]| stack.iter().any(|(_, s)| *s);
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if !skipping(&stack) {
                out.push_str(&decode(rest));
            }
            break;
        };
        if !skipping(&stack) {
            out.push_str(&decode(&rest[..lt]));
            out.push(' ');
        }
        rest = &rest[lt..];
        if rest.starts_with("<!--") {
            rest = rest.find("-->").map_or("", |e| &rest[e + 3..]);
            continue;
        }
        let Some(gt) = tag_end(rest) else { break };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim().to_ascii_lowercase();
            if let Some(pos) = stack.iter().rposition(|(n, _)| *n == name) {
                stack.truncate(pos);
            }
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/' && *c != '>')
            .collect::<String>()
            .to_ascii_lowercase();
        let attrs = attributes(tag);
        let data = attrs.get("translate").is_some_and(|v| v == "no");
        if !skipping(&stack) && !data {
            for a in ["placeholder", "title", "aria-label", "alt"] {
                if let Some(v) = attrs.get(a) {
                    out.push(' ');
                    out.push_str(v);
                    out.push(' ');
                }
            }
            let is_button = name == "button"
                || (name == "input"
                    && attrs.get("type").is_some_and(|t| t == "submit" || t == "button" || t == "reset"));
            if is_button && name == "input" {
                if let Some(v) = attrs.get("value") {
                    out.push(' ');
                    out.push_str(v);
                    out.push(' ');
                }
            }
        }
        let self_closing = tag.trim_end().ends_with('/');
        if !VOID.contains(&name.as_str()) && !self_closing {
            stack.push((name.clone(), data || SKIP.contains(&name.as_str())));
        }
    }
    out
}

/// The `>` that ends the tag at the start of `s`, outside quoted attribute values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn attributes(tag: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = tag.chars().skip_while(|c| !c.is_whitespace()).peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == '/') {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=' && !c.is_whitespace()).collect();
        if name.is_empty() {
            break;
        }
        let value = match chars.peek() {
            Some('"') | Some('\'') => {
                let q = chars.next().unwrap_or('"');
                chars.by_ref().take_while(|c| *c != q).collect()
            }
            Some(c) if !c.is_whitespace() => chars.by_ref().take_while(|c| !c.is_whitespace()).collect(),
            _ => String::new(),
        };
        out.insert(name.to_ascii_lowercase(), decode(&value));
    }
    out
}

fn decode(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// Words of Latin letters (three or more) in `text`, with addresses and e-mails left out.
fn latin_words(text: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    for token in text.split_whitespace() {
        // Addresses, e-mails, paths and identifiers (`manager_id`, `OKNO_PUBLIC_URL`,
        // `task.claimed`, `examples/surveys`) are not words.
        let inner_dot = token.trim_end_matches(['.', ',', ')', ';', ':']).contains('.');
        if token.contains("://") || token.contains('@') || token.contains('/') || token.contains('_') || inner_dot {
            continue;
        }
        for w in token.split(|c: char| !c.is_ascii_alphabetic()) {
            if w.len() >= 3 && token.chars().filter(|c| c.is_ascii_digit()).count() < 2 {
                words.insert(w.to_string());
            }
        }
    }
    words
}

/// A UI text found as a whole phrase in `page`.
fn contains_phrase(page: &str, phrase: &str) -> bool {
    let mut from = 0;
    while let Some(i) = page[from..].find(phrase) {
        let start = from + i;
        let end = start + phrase.len();
        // A dot or a dash inside an identifier (`order.completed`, `ЗК-4568-completed`) joins
        // words; at the end of a sentence it does not.
        let mut back = page[..start].chars().rev();
        let before = back.next();
        let before_joined = matches!(before, Some('.' | '-')) && back.next().is_some_and(char::is_alphanumeric);
        let mut ahead = page[end..].chars();
        let after = ahead.next();
        let after_joined = matches!(after, Some('.' | '-')) && ahead.next().is_some_and(char::is_alphanumeric);
        let word = |c: char| c.is_alphanumeric() || c == '_';
        if !before.is_some_and(word) && !after.is_some_and(word) && !before_joined && !after_joined {
            return true;
        }
        from = end;
    }
    false
}

/// What a page shows of the other language: (the language the page is in, what leaked).
pub fn leaks(lang: &str, html: &str) -> Vec<String> {
    let mut text = visible_text(html).split_whitespace().collect::<Vec<_>>().join(" ");
    for name in PROPER_NAMES {
        text = text.replace(name, " ");
    }
    let mut found = Vec::new();
    // okno's texts, and the demo's (its pages, and the notice it gives okno's pages).
    for (key, en, ru) in okno_server::ui::i18n::texts().iter().chain(okno_demo::texts::texts()) {
        if en == ru {
            continue;
        }
        let other = if lang == "ru" { en } else { ru };
        // Only texts with a word of their own: "OK", "—" and the like are the same everywhere.
        if other.chars().filter(|c| c.is_alphabetic()).count() < 3 || other.contains("{") {
            continue;
        }
        // On an English page the people's own Russian words (a bot's menu, a message) are
        // everywhere; a single Russian word there proves nothing, a Russian phrase of the UI does.
        if lang == "en" && other.split_whitespace().count() < 2 {
            continue;
        }
        let other = other.split_whitespace().collect::<Vec<_>>().join(" ");
        if contains_phrase(&text, &other) {
            found.push(format!("{key}: {other:?}"));
        }
    }
    if lang == "ru" {
        for w in latin_words(&text) {
            if !LATIN_ALLOWED.iter().any(|a| a.eq_ignore_ascii_case(&w)) {
                found.push(format!("the Latin word {w:?}"));
            }
        }
    }
    found
}

/// The same-site pages a page links to (GET), without fragments, downloads and actions.
pub fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("href=\"") {
        rest = &rest[i + 6..];
        let Some(end) = rest.find('"') else { break };
        let href = decode(&rest[..end]);
        let path = href.split('#').next().unwrap_or("").to_string();
        let ours = (path.starts_with("/ui/") && !path.starts_with("/ui/assets/"))
            || path == "/demo/phone"
            || path == "/demo/console";
        let file = path.split('?').next().unwrap_or("");
        let download = file.ends_with(".csv") || file.starts_with("/ui/attachments/") || file.contains("/download");
        if ours && !download {
            out.push(path);
        }
    }
    out
}

/// `/ui/contacts/0192ab…?x=1` → `/ui/contacts/{id}?x`: pages that differ only by ids and values.
fn shape_of(path: &str) -> String {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    let segs: Vec<String> = p
        .split('/')
        .map(|s| {
            if s.len() >= 16 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                "{id}".into()
            } else {
                s.into()
            }
        })
        .collect();
    let mut keys: Vec<&str> = q.split('&').filter_map(|kv| kv.split('=').next()).filter(|k| !k.is_empty()).collect();
    keys.sort();
    format!("{}?{}", segs.join("/"), keys.join("&"))
}

/// A signed-in browser without a browser: cookies, no redirects followed.
struct Visitor {
    http: reqwest::Client,
    base: String,
    session: String,
}

impl Visitor {
    async fn sign_in(base: &str, login: &str, password: &str) -> Visitor {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let page = http.get(format!("{base}/login")).send().await.unwrap();
        let pre = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
            .find(|c| c.starts_with("okno_prelogin="))
            .unwrap();
        let body = page.text().await.unwrap();
        let csrf = body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        let r = http
            .post(format!("{base}/login"))
            .header("cookie", pre)
            .form(&[("csrf", csrf.as_str()), ("login", login), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "signed in");
        let session = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
            .find(|c| c.starts_with("okno_session="))
            .unwrap();
        Visitor { http, base: base.to_string(), session }
    }

    async fn get(&self, path: &str, lang: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("{}; okno_lang={lang}", self.session))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// Visits every page reachable from `start` (one page of each shape, at most `max`), in both
/// languages; returns each problem as "LANG PATH: what", and the pages seen.
async fn crawl(v: &Visitor, start: &[&str], max: usize) -> (Vec<String>, BTreeSet<String>) {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut shapes: BTreeSet<String> = start.iter().map(|p| shape_of(p)).collect();
    let mut queue: VecDeque<String> = start.iter().map(|p| p.to_string()).collect();
    let mut problems = Vec::new();
    while let Some(path) = queue.pop_front() {
        if seen.len() >= max || !seen.insert(path.clone()) {
            continue;
        }
        for lang in ["ru", "en"] {
            let (status, body) = v.get(&path, lang).await;
            if let Ok(dir) = std::env::var("DUMP_PAGES") {
                let name = path.replace(['/', '?'], "_");
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(format!("{dir}/{lang}{name}.html"), &body);
            }
            if status != 200 {
                problems.push(format!("{lang} {path}: status {status}"));
                continue;
            }
            for leak in leaks(lang, &body) {
                problems.push(format!("{lang} {path}: {leak}"));
            }
            for l in links(&body) {
                if shapes.insert(shape_of(&l)) {
                    queue.push_back(l);
                }
            }
        }
    }
    (problems, seen)
}

#[tokio::test]
async fn no_page_shows_the_other_languages_words() {
    let app = world().await;
    let v = Visitor::sign_in(&app.url, "admin", PASSWORD).await;
    let (problems, seen) = crawl(&v, &["/ui/inbox", "/ui/account"], 200).await;
    assert!(seen.len() >= 15, "the crawl reached the pages: {seen:?}");
    assert!(problems.is_empty(), "{} problems on {} pages:\n{}", problems.len(), seen.len(), problems.join("\n"));
    drop(app);
}

#[tokio::test]
async fn no_page_of_the_demo_shows_the_other_languages_words() {
    // The demo company with something on every page: events of every sample, a task, a
    // broadcast, a survey asked, a customer who went through the shop bot's menu.
    let w = super::demo::start().await;
    let (status, _) = w.act("/demo/api/phone/belova/shop/start", serde_json::json!({})).await;
    assert_eq!(status, 200);
    let menu = w.wait_text("belova", "shop", 0, "Здесь можно узнать").await;
    w.press("belova", "shop", &menu, "🔍 Узнать статус заказа").await;
    w.say("belova", "shop", "100421").await;
    w.wait_text("belova", "shop", 0, "Заказ № 100421").await;
    w.say("belova", "shop", "Позовите, пожалуйста, менеджера").await;
    for (file, _) in okno_demo::cast::EVENTS {
        assert!(w.post_event(file).await["status"].as_u64().is_some());
    }
    let (status, _) = w.act("/demo/api/console/task", serde_json::json!({})).await;
    assert_eq!(status, 200);
    let (status, _) = w
        .act("/demo/api/console/broadcast", serde_json::json!({"group": "Курьеры", "text": "Склад открыт с 7:00."}))
        .await;
    assert_eq!(status, 200);
    let survey = w.demo().world().surveys[0].1.clone();
    let (status, _) =
        w.act("/demo/api/console/survey", serde_json::json!({"survey_id": survey, "person": "ivanova"})).await;
    assert_eq!(status, 200);

    let base = w.demo().url.clone();
    let v = Visitor::sign_in(&base, "admin", &w.demo().admin_password).await;
    let (problems, seen) = crawl(&v, &["/ui/inbox", "/ui/account", "/demo/phone", "/demo/console"], 300).await;
    for page in ["/ui/tasks/", "/ui/surveys/", "/ui/events/", "/ui/broadcasts/", "/ui/conversations/", "/demo/console"]
    {
        assert!(seen.iter().any(|p| p.starts_with(page)), "the crawl reached {page}: {seen:?}");
    }
    assert!(problems.is_empty(), "{} problems on {} pages:\n{}", problems.len(), seen.len(), problems.join("\n"));
}

const PASSWORD: &str = "correct horse battery";

/// okno with something on every page: an administrator, a website channel with people who
/// wrote and were answered, a note, a rule, a webhook, a token, a broadcast.
async fn world() -> okno_testkit::TestApp {
    use serde_json::json;
    let app = okno_testkit::TestApp::spawn().await;
    let hash = okno_server::ui::hash_password(PASSWORD).unwrap();
    app.running().engine.store.create_operator("admin", okno_domain::model::Role::Admin, &hash).await.unwrap();
    let sink = okno_testkit::Sink::start(super::SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", sink.url), super::SECRET).await;
    for (n, name) in ["Иван Петров", "Мария Сидорова"].iter().enumerate() {
        let m = json!({"message_id": format!("m-{n}"), "user": {"id": format!("u-{n}"), "name": name, "phone": format!("+7999000112{n}")},
                       "text": "Здравствуйте! Где мой заказ?"});
        app.inbound(&ch, super::SECRET, &m).await;
    }
    let convs = app.get("/api/v1/conversations").await.body;
    let conv = convs["items"][0]["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            json!({"text": "Заказ отгружен", "buttons": [[{"text": "Спасибо", "data": "thanks"}]]}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    app.post(&format!("/api/v1/conversations/{conv}/notes"), json!({"text": "Перезвонить после обеда"})).await;
    let rule = json!({"name": "Оплата", "event": "payment.received", "recipients": [{"external_id": "{{ data.manager_id }}"}],
                      "template": "Оплата {{ data.amount | money }}"});
    assert_eq!(app.post("/api/v1/rules", rule).await.status, 201);
    app.post(
        "/api/v1/events",
        json!({"type": "payment.received", "key": "k-1", "data": {"manager_id": "нет-такого", "amount": 10}}),
    )
    .await;
    app.post(
        "/api/v1/webhooks",
        json!({"url": "http://127.0.0.1:9/x", "events": ["message.received"], "secret": "0123456789abcdef-webhook"}),
    )
    .await;
    let people: Vec<String> =
        convs["items"].as_array().unwrap().iter().map(|c| c["contact"]["id"].as_str().unwrap().to_string()).collect();
    app.post(
        "/api/v1/broadcasts",
        json!({"name": "Скидки", "audience": {"contact_ids": people}, "text": "Скидка 10%"}),
    )
    .await;
    app
}

#[test]
fn the_text_of_a_page_leaves_out_scripts_data_and_code_but_keeps_buttons_and_hints() {
    let html = r#"<html><head><title>x</title><script>var Send = 1;</script></head><body>
      <h1>Входящие</h1><input placeholder="Search here"><button>Send</button>
      <span translate="no">Ivan Petrov</span><code>data.amount</code><pre>{"a": 1}</pre>
      <input type="submit" value="Apply"><input type="hidden" value="secret"><!-- Hidden comment -->
      <a href="/ui/contacts/0192abcdef0123456789" title="Open the card">Иван &amp; Ко</a></body></html>"#;
    let text = visible_text(html);
    for shown in ["Входящие", "Search here", "Send", "Apply", "Open the card", "Иван & Ко"] {
        assert!(text.contains(shown), "{shown} in {text}");
    }
    for hidden in ["var Send", "Ivan Petrov", "data.amount", "\"a\"", "secret", "Hidden comment"] {
        assert!(!text.contains(hidden), "{hidden} in {text}");
    }
    assert_eq!(links(html), ["/ui/contacts/0192abcdef0123456789"]);
    assert_eq!(shape_of("/ui/contacts/0192abcdef0123456789?q=x&a=1"), "/ui/contacts/{id}?a&q");
    let leaks = leaks("ru", html);
    assert!(leaks.iter().any(|l| l.contains("\"Search\"")), "{leaks:?}");
    assert!(!leaks.iter().any(|l| l.contains("Ivan")), "data is not checked: {leaks:?}");
}
