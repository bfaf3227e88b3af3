//! The bot definition: what administrators write (YAML or JSON, see docs/bots.md), parsed and
//! checked as a whole before it replaces a running bot. Every error names its line.

use std::collections::{BTreeMap, HashSet};

use okno_domain::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::parse_duration;
use crate::templates;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotDef {
    pub name: String,
    #[serde(default)]
    pub access: Access,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_prompt: Option<String>,
    #[serde(default = "default_idle")]
    pub idle_timeout: String,
    #[serde(default = "default_start")]
    pub start: String,
    #[serde(default)]
    pub http: HttpDefaults,
    #[serde(default)]
    pub texts: Texts,
    #[serde(default)]
    pub menus: BTreeMap<String, Menu>,
    #[serde(default)]
    pub forms: BTreeMap<String, Form>,
    #[serde(default)]
    pub lookups: BTreeMap<String, Lookup>,
    #[serde(default)]
    pub feeds: BTreeMap<String, Feed>,
    #[serde(default)]
    pub commands: Vec<Command>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
}

fn default_idle() -> String {
    "30m".into()
}
fn default_start() -> String {
    "main".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    #[default]
    Anyone,
    LinkedOnly,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// The bot's stock phrases; each has a Russian default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    pub back: Option<String>,
    pub home: Option<String>,
    pub cancel: Option<String>,
    pub unknown: Option<String>,
    pub expired: Option<String>,
    pub error: Option<String>,
    pub not_allowed: Option<String>,
    pub stale: Option<String>,
    pub cancelled: Option<String>,
    pub skip: Option<String>,
    pub send: Option<String>,
    pub edit: Option<String>,
    pub edit_which: Option<String>,
    pub more: Option<String>,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub yes: Option<String>,
    pub no: Option<String>,
    pub already_sent: Option<String>,
    pub no_news: Option<String>,
}

impl Texts {
    pub fn back(&self) -> &str {
        self.back.as_deref().unwrap_or("◀ Назад")
    }
    pub fn home(&self) -> &str {
        self.home.as_deref().unwrap_or("🏠 В начало")
    }
    pub fn cancel(&self) -> &str {
        self.cancel.as_deref().unwrap_or("Отмена")
    }
    pub fn unknown(&self) -> &str {
        self.unknown.as_deref().unwrap_or("Не понял. Выберите пункт меню.")
    }
    pub fn expired(&self) -> &str {
        self.expired.as_deref().unwrap_or("Вы долго не отвечали, начнём сначала.")
    }
    pub fn error(&self) -> &str {
        self.error.as_deref().unwrap_or("Сервис временно недоступен. Попробуйте позже.")
    }
    pub fn not_allowed(&self) -> &str {
        self.not_allowed.as_deref().unwrap_or("Этот раздел вам недоступен.")
    }
    pub fn stale(&self) -> &str {
        self.stale.as_deref().unwrap_or("Это меню устарело, вот актуальное.")
    }
    pub fn cancelled(&self) -> &str {
        self.cancelled.as_deref().unwrap_or("Отменено.")
    }
    pub fn skip(&self) -> &str {
        self.skip.as_deref().unwrap_or("Пропустить")
    }
    pub fn send(&self) -> &str {
        self.send.as_deref().unwrap_or("Отправить")
    }
    pub fn edit(&self) -> &str {
        self.edit.as_deref().unwrap_or("Изменить")
    }
    pub fn edit_which(&self) -> &str {
        self.edit_which.as_deref().unwrap_or("Что изменить?")
    }
    pub fn more(&self) -> &str {
        self.more.as_deref().unwrap_or("Подробнее")
    }
    pub fn prev(&self) -> &str {
        self.prev.as_deref().unwrap_or("◀")
    }
    pub fn next(&self) -> &str {
        self.next.as_deref().unwrap_or("▶")
    }
    pub fn yes(&self) -> &str {
        self.yes.as_deref().unwrap_or("Да")
    }
    pub fn no(&self) -> &str {
        self.no.as_deref().unwrap_or("Нет")
    }
    pub fn already_sent(&self) -> &str {
        self.already_sent.as_deref().unwrap_or("Уже отправлено.")
    }
    pub fn no_news(&self) -> &str {
        self.no_news.as_deref().unwrap_or("Новостей пока нет.")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Menu {
    pub text: String,
    #[serde(default = "one")]
    pub columns: usize,
    pub items: Vec<Item>,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(rename = "do")]
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "ActionRepr")]
pub enum Action {
    Menu(String),
    Back,
    Home,
    Reply(ReplySpec),
    News(NewsSpec),
    Lookup(String),
    Form(String),
    Handoff(HandoffSpec),
    Ask(String),
}

/// An action as written: a word (`back`) or a map with one key (`{menu: reports}`).
#[derive(Deserialize)]
#[serde(untagged)]
enum ActionRepr {
    Word(String),
    Map(serde_json::Map<String, Value>),
}

impl TryFrom<ActionRepr> for Action {
    type Error = String;

    fn try_from(r: ActionRepr) -> std::result::Result<Action, String> {
        let map = match r {
            ActionRepr::Word(w) => {
                return match w.as_str() {
                    "back" => Ok(Action::Back),
                    "home" => Ok(Action::Home),
                    "handoff" => Ok(Action::Handoff(HandoffSpec::default())),
                    other => {
                        Err(format!("unknown action `{other}`: use back, home, handoff or a map like {{menu: ID}}"))
                    }
                };
            }
            ActionRepr::Map(m) => m,
        };
        let mut entries = map.into_iter();
        let (Some((key, value)), None) = (entries.next(), entries.next()) else {
            return Err("an action is a map with one key, e.g. {menu: reports}".into());
        };
        fn read<T: serde::de::DeserializeOwned>(key: &str, v: Value) -> std::result::Result<T, String> {
            serde_json::from_value(v).map_err(|e| format!("`{key}`: {e}"))
        }
        Ok(match key.as_str() {
            "menu" => Action::Menu(read(&key, value)?),
            "lookup" => Action::Lookup(read(&key, value)?),
            "form" => Action::Form(read(&key, value)?),
            "ask" => Action::Ask(read(&key, value)?),
            "reply" => Action::Reply(read(&key, value)?),
            "news" if value.is_null() => Action::News(NewsSpec { limit: 5 }),
            "news" => Action::News(read(&key, value)?),
            "handoff" if value.is_null() => Action::Handoff(HandoffSpec::default()),
            "handoff" => Action::Handoff(read(&key, value)?),
            "back" => Action::Back,
            "home" => Action::Home,
            other => {
                return Err(format!(
                    "unknown action `{other}`: use menu, back, home, reply, news, lookup, form, handoff or ask"
                ))
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewsSpec {
    #[serde(default = "five")]
    pub limit: u32,
}

fn five() -> u32 {
    5
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<String>,
    pub request: Request,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListShow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<CardShow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileShow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_found: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    #[default]
    #[serde(alias = "get")]
    GET,
    #[serde(alias = "post")]
    POST,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default)]
    pub method: Method,
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListShow {
    pub items: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub button: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<String>,
    #[serde(default = "five_usize")]
    pub page_size: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty: Option<String>,
}

fn five_usize() -> usize {
    5
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardShow {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileShow {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Form {
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
    pub submit: Submit,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    #[default]
    Text,
    Number,
    Date,
    Choice,
    Phone,
    File,
    Confirm,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub field: String,
    pub ask: String,
    #[serde(rename = "type", default)]
    pub kind: FieldKind,
    #[serde(default)]
    pub optional: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feed {
    pub to: FeedTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedTarget {
    pub group: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Only members of these contact groups may use it (none: everyone the bot serves).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(rename = "do")]
    pub action: Action,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contains: Vec<String>,
    /// Only members of these contact groups trigger it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(rename = "do")]
    pub action: Action,
}

/// Commands every bot understands.
pub const BUILTIN_COMMANDS: &[&str] = &["start", "menu", "cancel", "unanswered"];

impl BotDef {
    /// Parses a definition (YAML or JSON) and checks it whole.
    pub fn parse(source: &str) -> Result<BotDef> {
        if source.trim().is_empty() {
            return Err(invalid("the bot definition is empty".into()));
        }
        let def: BotDef = serde_yaml_ng::from_str(source).map_err(|e| {
            let at = e.location().map(|l| format!("line {}, column {}: ", l.line(), l.column())).unwrap_or_default();
            invalid(format!("{at}{e}"))
        })?;
        Checker { src: source, def: &def }.run()?;
        Ok(def)
    }

    /// The definition back from its stored JSON form.
    pub fn from_stored(spec: &Value) -> Result<BotDef> {
        serde_json::from_value(spec.clone()).map_err(|e| Error::internal(format!("a stored bot no longer reads: {e}")))
    }

    pub fn idle_ms(&self) -> i64 {
        parse_duration(&self.idle_timeout).unwrap_or(30 * 60_000)
    }

    pub fn timeout_ms(&self, request: &Request) -> u64 {
        request
            .timeout
            .as_deref()
            .or(self.http.timeout.as_deref())
            .and_then(|t| parse_duration(t).ok())
            .map_or(10_000, |ms| ms.max(1) as u64)
    }
}

fn invalid(message: String) -> Error {
    Error::invalid("invalid_bot", message)
}

struct Checker<'a> {
    src: &'a str,
    def: &'a BotDef,
}

impl Checker<'_> {
    /// The line where `needle` first appears in the source (as a key or value), for errors
    /// found after parsing.
    fn line_of(&self, needle: &str) -> String {
        let first = needle.lines().next().unwrap_or_default().trim();
        if first.is_empty() {
            return String::new();
        }
        self.src.lines().position(|l| l.contains(first)).map(|i| format!("line {}: ", i + 1)).unwrap_or_default()
    }

    fn fail(&self, anchor: &str, what: String) -> Error {
        invalid(format!("{}{what}", self.line_of(anchor)))
    }

    fn template(&self, src: &str, place: &str) -> Result<()> {
        templates::check_template(src).map_err(|e| self.fail(src, format!("{place}: {}", e.message)))
    }

    fn duration(&self, text: &str, place: &str) -> Result<()> {
        parse_duration(text).map(|_| ()).map_err(|e| self.fail(text, format!("{place}: {}", e.message)))
    }

    fn run(&self) -> Result<()> {
        let d = self.def;
        if d.name.trim().is_empty() {
            return Err(self.fail("name:", "`name` must not be empty".into()));
        }
        self.duration(&d.idle_timeout, "`idle_timeout`")?;
        if let Some(t) = &d.http.timeout {
            self.duration(t, "`http.timeout`")?;
        }
        if let Some(p) = &d.link_prompt {
            self.template(p, "`link_prompt`")?;
        }
        if !d.menus.contains_key(&d.start) {
            return Err(self.fail(&d.start, format!("the start menu `{}` is not among `menus`", d.start)));
        }
        for (id, menu) in &d.menus {
            let place = format!("menu `{id}`");
            self.template(&menu.text, &place)?;
            if menu.items.is_empty() {
                return Err(self.fail(&format!("{id}:"), format!("{place} has no items")));
            }
            if menu.columns == 0 || menu.columns > 8 {
                return Err(self.fail(&format!("{id}:"), format!("{place}: `columns` must be 1..8")));
            }
            for (n, item) in menu.items.iter().enumerate() {
                let place = format!("{place}, item {}", n + 1);
                if item.text.trim().is_empty() || item.text.chars().count() > 64 {
                    return Err(self.fail(&item.text, format!("{place}: the button text must be 1..64 characters")));
                }
                self.action(&item.action, &format!("{place} (`{}`)", item.text))?;
            }
        }
        for (id, lookup) in &d.lookups {
            self.lookup(id, lookup)?;
        }
        for (id, form) in &d.forms {
            self.form(id, form)?;
        }
        for (id, feed) in &d.feeds {
            let place = format!("feed `{id}`");
            if feed.to.group.trim().is_empty() {
                return Err(self.fail(&format!("{id}:"), format!("{place}: `to.group` names the recipients' group")));
            }
            for t in [&feed.prompt, &feed.sent, &feed.answer].into_iter().flatten() {
                self.template(t, &place)?;
            }
        }
        let mut seen = HashSet::new();
        for c in &d.commands {
            let name = c.command.trim_start_matches('/');
            let ok = !name.is_empty()
                && name.len() <= 32
                && name.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
            if !ok {
                return Err(self.fail(
                    &c.command,
                    format!("command `{}`: use 1..32 lowercase Latin letters, digits and _", c.command),
                ));
            }
            if c.description.as_deref().is_some_and(|d| d.trim().is_empty() || d.chars().count() > 256) {
                return Err(
                    self.fail(&c.command, format!("command `/{name}`: `description` must be 1..256 characters"))
                );
            }
            if BUILTIN_COMMANDS.contains(&name) || !seen.insert(name.to_string()) {
                return Err(self.fail(&c.command, format!("command `/{name}` is built in or defined twice")));
            }
            self.action(&c.action, &format!("command `/{name}`"))?;
        }
        for (n, t) in d.triggers.iter().enumerate() {
            let place = format!("trigger {}", n + 1);
            match (&t.pattern, t.contains.is_empty()) {
                (Some(p), true) => {
                    regex::Regex::new(p)
                        .map_err(|e| self.fail(p, format!("{place}: the pattern is not valid: {e}")))?;
                }
                (None, false) => {}
                _ => return Err(self.fail("triggers:", format!("{place} names exactly one of `match` and `contains`"))),
            }
            self.action(&t.action, &place)?;
        }
        Ok(())
    }

    fn action(&self, a: &Action, place: &str) -> Result<()> {
        let d = self.def;
        let missing = |kind: &str, id: &str| self.fail(id, format!("{place} refers to an unknown {kind} `{id}`"));
        match a {
            Action::Menu(id) if !d.menus.contains_key(id) => Err(missing("menu", id)),
            Action::Lookup(id) if !d.lookups.contains_key(id) => Err(missing("lookup", id)),
            Action::Form(id) if !d.forms.contains_key(id) => Err(missing("form", id)),
            Action::Ask(id) if !d.feeds.contains_key(id) => Err(missing("feed", id)),
            Action::Reply(r) => {
                if r.text.is_none() && r.files.is_empty() {
                    return Err(self.fail("reply", format!("{place}: `reply` needs `text` or `files`")));
                }
                if let Some(t) = &r.text {
                    self.template(t, place)?;
                }
                Ok(())
            }
            Action::Handoff(h) => h.text.as_ref().map_or(Ok(()), |t| self.template(t, place)),
            Action::News(n) if n.limit == 0 || n.limit > 20 => {
                Err(self.fail("news", format!("{place}: `news.limit` must be 1..20")))
            }
            _ => Ok(()),
        }
    }

    fn request(&self, r: &Request, place: &str) -> Result<()> {
        self.template(&r.url, place)?;
        if r.url.starts_with('/') && self.def.http.base_url.is_none() {
            return Err(self.fail(&r.url, format!("{place}: a relative `url` needs `http.base_url`")));
        }
        for v in r.headers.values() {
            self.template(v, place)?;
        }
        if let Some(t) = &r.timeout {
            self.duration(t, place)?;
        }
        if let Some(body) = &r.body {
            if r.method == Method::GET {
                return Err(self.fail("body:", format!("{place}: a GET request has no `body`; use `method: POST`")));
            }
            self.body_templates(body, place)?;
        }
        Ok(())
    }

    fn body_templates(&self, v: &Value, place: &str) -> Result<()> {
        match v {
            Value::String(s) => self.template(s, place),
            Value::Array(items) => items.iter().try_for_each(|i| self.body_templates(i, place)),
            Value::Object(map) => map.values().try_for_each(|i| self.body_templates(i, place)),
            _ => Ok(()),
        }
    }

    fn lookup(&self, id: &str, l: &Lookup) -> Result<()> {
        let place = format!("lookup `{id}`");
        let shows = [l.text.is_some(), l.list.is_some(), l.card.is_some(), l.file.is_some()];
        if shows.iter().filter(|s| **s).count() != 1 {
            return Err(self.fail(
                &format!("{id}:"),
                format!("{place} shows its answer exactly one way: `text`, `list`, `card` or `file`"),
            ));
        }
        self.request(&l.request, &place)?;
        for t in [&l.ask, &l.text, &l.not_found].into_iter().flatten() {
            self.template(t, &place)?;
        }
        if let Some(list) = &l.list {
            for t in [&list.text, &list.value, &list.empty].into_iter().flatten() {
                self.template(t, &place)?;
            }
            self.template(&list.button, &place)?;
            if list.page_size == 0 || list.page_size > 20 {
                return Err(self.fail("page_size", format!("{place}: `page_size` must be 1..20")));
            }
            match &list.then {
                Some(then) if !self.def.lookups.contains_key(then) => {
                    return Err(self.fail(then, format!("{place}: `then` refers to an unknown lookup `{then}`")));
                }
                Some(_) => {}
                None => return Err(self.fail("list:", format!("{place}: `list.then` names the lookup a press runs"))),
            }
        }
        if let Some(card) = &l.card {
            for t in [Some(&card.text), card.detail.as_ref(), card.photo.as_ref()].into_iter().flatten() {
                self.template(t, &place)?;
            }
        }
        if let Some(f) = &l.file {
            for t in [Some(&f.name), f.caption.as_ref()].into_iter().flatten() {
                self.template(t, &place)?;
            }
        }
        Ok(())
    }

    fn form(&self, id: &str, f: &Form) -> Result<()> {
        let place = format!("form `{id}`");
        if f.steps.is_empty() {
            return Err(self.fail(&format!("{id}:"), format!("{place} has no steps")));
        }
        let mut fields = HashSet::new();
        for s in &f.steps {
            let place = format!("{place}, field `{}`", s.field);
            if s.field.trim().is_empty() || !fields.insert(s.field.clone()) {
                return Err(self.fail(&s.field, format!("{place}: field names must be present and unique")));
            }
            self.template(&s.ask, &place)?;
            if s.kind == FieldKind::Choice && s.options.is_empty() {
                return Err(self.fail(&s.field, format!("{place}: a `choice` needs `options`")));
            }
            if let (Some(a), Some(b)) = (s.min, s.max) {
                if a > b {
                    return Err(self.fail(&s.field, format!("{place}: `min` is above `max`")));
                }
            }
            if let Some(p) = &s.pattern {
                regex::Regex::new(p).map_err(|e| self.fail(p, format!("{place}: the pattern is not valid: {e}")))?;
            }
        }
        if let Some(c) = &f.confirm {
            self.template(c, &place)?;
        }
        let s = &f.submit;
        if s.event.is_none() && s.request.is_none() && s.reply.is_none() {
            return Err(self.fail("submit", format!("{place}: `submit` needs `event`, `request` or `reply`")));
        }
        if let Some(r) = &s.request {
            self.request(r, &place)?;
        }
        if let Some(r) = &s.reply {
            self.template(r, &place)?;
        }
        if s.event.as_deref().is_some_and(|e| e.trim().is_empty()) {
            return Err(self.fail("event", format!("{place}: `submit.event` is empty")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: Тест
access: linked_only
http: {base_url: "http://1c.local/hs/bot"}
menus:
  main:
    text: Главное меню
    items:
      - {text: Отчёты, groups: [Руководители], do: {menu: reports}}
      - {text: Товар, do: {lookup: search}}
      - {text: Отпуск, do: {form: vacation}}
      - {text: Директору, do: {ask: director}}
      - {text: Оператор, do: {handoff: {text: Соединяю}}}
  reports:
    text: Отчёты
    items:
      - {text: Назад, do: back}
lookups:
  search:
    ask: Что ищем?
    request: {url: "/products?q={{ input | urlencode }}"}
    list: {items: items, button: "{{ item.name }}", value: "{{ item.code }}", then: card}
  card:
    request: {url: "/products/{{ input }}"}
    card: {text: "{{ answer.name }}", photo: "{{ answer.photo }}"}
forms:
  vacation:
    steps:
      - {field: start, ask: С какого числа?, type: date}
      - {field: days, ask: Сколько дней?, type: number, min: 1, max: 28}
    confirm: "С {{ form.start }} на {{ form.days }} дн.?"
    submit: {event: vacation.requested, reply: Готово}
feeds:
  director: {to: {group: Директор}}
commands:
  - {command: news, do: {news: {limit: 3}}}
triggers:
  - {match: "^\\d{6}$", do: {lookup: card}}
"#;

    fn err(src: &str) -> String {
        BotDef::parse(src).expect_err("must be refused").message
    }

    #[test]
    fn a_complete_definition_parses_with_defaults() {
        let d = BotDef::parse(GOOD).unwrap();
        assert_eq!(d.access, Access::LinkedOnly);
        assert_eq!(d.start, "main");
        assert_eq!(d.idle_ms(), 30 * 60_000);
        assert_eq!(d.menus["main"].items[0].action, Action::Menu("reports".into()));
        assert_eq!(d.menus["reports"].items[0].action, Action::Back);
        assert_eq!(d.lookups["search"].list.as_ref().unwrap().page_size, 5);
        assert_eq!(d.forms["vacation"].steps[1].kind, FieldKind::Number);
        // The stored JSON form reads back the same.
        let back = BotDef::from_stored(&serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(back.menus.len(), 2);
    }

    #[test]
    fn json_is_accepted_too() {
        let src = r#"{"name": "J", "menus": {"main": {"text": "M", "items": [{"text": "A", "do": "home"}]}}}"#;
        assert_eq!(BotDef::parse(src).unwrap().menus["main"].items[0].action, Action::Home);
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let e = err("name: X\nmenus:\n  main:\n    text: [unclosed\n");
        assert!(e.contains("line "), "{e}");
        let e = err("name: X\nmenus: {main: {text: M, items: [{text: A, do: home}]}}\nbogus: 1\n");
        assert!(e.contains("line 3") && e.contains("bogus"), "{e}");
    }

    #[test]
    fn unknown_references_point_at_their_line() {
        let src = GOOD.replace("do: {menu: reports}", "do: {menu: reportz}");
        let e = err(&src);
        let line = src.lines().position(|l| l.contains("reportz")).unwrap() + 1;
        assert!(e.contains(&format!("line {line}:")) && e.contains("unknown menu `reportz`"), "{e}");
        assert!(err(&GOOD.replace("then: card", "then: kard")).contains("unknown lookup `kard`"));
        assert!(err(&GOOD.replace("{ask: director}", "{ask: boss}")).contains("unknown feed `boss`"));
        assert!(err(&GOOD.replace("{form: vacation}", "{form: sick}")).contains("unknown form `sick`"));
    }

    #[test]
    fn template_and_pattern_errors_are_refused_with_position() {
        let e = err(&GOOD.replace("{{ answer.name }}", "{{ answer.name }"));
        assert!(e.contains("line ") && e.contains("template error"), "{e}");
        let e = err(&GOOD.replace(r#"^\\d{6}$"#, "^(unclosed"));
        assert!(e.contains("trigger 1") && e.contains("pattern"), "{e}");
    }

    #[test]
    fn structural_mistakes_are_named() {
        assert!(err(&GOOD.replace("start: ", "x: ").replace("  main:\n", "  home:\n")).contains("start menu `main`"));
        assert!(err(&GOOD.replace("max: 28", "max: 0")).contains("`min` is above `max`"));
        assert!(err(&GOOD.replace("card: {text:", "text: x\n    card: {text:")).contains("exactly one way"));
        assert!(err(&GOOD.replace("command: news", "command: start")).contains("built in"));
        assert!(err(&GOOD.replace("idle_timeout", "x").replace("access: linked_only", "idle_timeout: 5 parsecs"))
            .contains("idle_timeout"));
        assert!(err(&GOOD.replace("http: {base_url: \"http://1c.local/hs/bot\"}", "")).contains("base_url"));
        assert!(err("").contains("empty"));
    }
}
