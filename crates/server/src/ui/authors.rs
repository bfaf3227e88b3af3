//! Who wrote a message and what a press pressed, as people read them: an operator by login,
//! the bot, a broadcast, a survey, a rule and an API token by their names, a press by the label
//! of its button — never the keys the store keeps (`broadcast:<id>`, `token:admin`,
//! `bot:item:main:3:4a9d6b`).

use std::collections::{HashMap, HashSet};

use okno_domain::ids::{ChannelId, MessageId};
use okno_domain::model::{Direction, Message};
use okno_store::Store;
use serde_json::{json, Value};

use super::i18n::{t, Lang};

/// The names a thread's authors refer to, read once per thread.
#[derive(Debug, Default)]
pub struct Names {
    /// Channel id → the name of the bot attached to it.
    bots: HashMap<ChannelId, String>,
    broadcasts: HashMap<String, String>,
    surveys: HashMap<String, String>,
    /// Message id → the name of the rule that sent it.
    rules: HashMap<MessageId, String>,
}

/// An author on screen: what kind of sender (for its style) and the name to show.
#[derive(Debug, Clone, PartialEq)]
pub struct Author {
    /// `operator`, `bot`, `broadcast`, `survey`, `rule`, `token`, `system` or `person`.
    pub kind: &'static str,
    pub name: String,
}

impl Author {
    /// The author as the thread's template reads it: `{kind, name}`.
    pub fn view(&self) -> Value {
        json!({"kind": self.kind, "name": self.name})
    }
}

/// A store answer where "not found" means "nothing to name" (a deleted broadcast, a bot
/// detached from its channel): the author is then named by its kind alone.
fn found<T>(r: okno_domain::Result<T>) -> okno_domain::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

impl Names {
    /// Reads the names the outbound messages' authors refer to: each bot, broadcast and survey
    /// once, and the rules of all notifications in one query.
    pub async fn load(store: &dyn Store, messages: &[Message]) -> okno_domain::Result<Names> {
        let mut names = Names::default();
        let (mut bot_channels, mut broadcasts, mut surveys) = (HashSet::new(), HashSet::new(), HashSet::new());
        let mut notifications = Vec::new();
        for m in messages.iter().filter(|m| m.direction == Direction::Out) {
            let Some(author) = m.author.as_deref() else { continue };
            if author == "bot" || author.starts_with("bot-feed:") {
                bot_channels.insert(m.channel_id.clone());
            } else if let Some(id) = author.strip_prefix("broadcast:") {
                broadcasts.insert(id.to_string());
            } else if let Some(id) = author.strip_prefix("survey:") {
                surveys.insert(id.to_string());
            } else if author.starts_with("event:") {
                notifications.push(m.id.clone());
            }
        }
        for ch in bot_channels {
            if let Some(bot) = found(store.get_bot(ch.as_str()).await)? {
                names.bots.insert(ch, bot.name);
            }
        }
        for id in broadcasts {
            if let Some(b) = found(store.get_broadcast(&id).await)? {
                names.broadcasts.insert(id, b.name);
            }
        }
        for id in surveys {
            if let Some(s) = found(store.get_survey(&id).await)? {
                names.surveys.insert(id, s.spec.name);
            }
        }
        if !notifications.is_empty() {
            names.rules = store.rules_of_messages(&notifications).await?.into_iter().collect();
        }
        Ok(names)
    }

    /// Who wrote `m`, or `None` when nobody is named (the person in a private chat).
    pub fn author(&self, lang: Lang, m: &Message) -> Option<Author> {
        let author = m.author.as_deref().filter(|a| !a.is_empty())?;
        if m.direction == Direction::In {
            // A person inside a group chat, as the platform names them.
            return Some(Author { kind: "person", name: author.to_string() });
        }
        let named = |kind: &'static str, key: &str, name: Option<&String>| Author {
            kind,
            name: match name {
                Some(n) => t(lang, key).replace("{name}", n),
                None => t(lang, &format!("{key}_plain")),
            },
        };
        Some(if author == "bot" || author.starts_with("bot-feed:") {
            named("bot", "author_bot", self.bots.get(&m.channel_id))
        } else if let Some(id) = author.strip_prefix("broadcast:") {
            named("broadcast", "author_broadcast", self.broadcasts.get(id))
        } else if let Some(id) = author.strip_prefix("survey:") {
            named("survey", "author_survey", self.surveys.get(id))
        } else if author == "survey" {
            named("survey", "author_survey", None)
        } else if author.starts_with("event:") {
            named("rule", "author_rule", self.rules.get(&m.id))
        } else {
            sender(lang, author)
        })
    }
}

/// An author that needs no lookup: an operator, an API token, okno itself, or anything else as
/// it is written (notes use these).
pub fn sender(lang: Lang, author: &str) -> Author {
    if let Some(login) = author.strip_prefix("operator:") {
        Author { kind: "operator", name: login.to_string() }
    } else if let Some(name) = author.strip_prefix("token:") {
        Author { kind: "token", name: t(lang, "author_token").replace("{name}", name) }
    } else if author == "okno" {
        Author { kind: "system", name: "okno".into() }
    } else {
        Author { kind: "operator", name: author.to_string() }
    }
}

/// What a button press says on screen: «pressed "label"» with the label the person saw (kept
/// with the press, or a task's own button), else what the data tells of its kind — never the
/// data itself. `None` for a message that is not a press.
pub fn pressed(lang: Lang, m: &Message) -> Option<String> {
    let data = m.button_data.as_deref()?;
    let label =
        m.button_label.as_deref().filter(|l| !l.trim().is_empty()).or_else(|| okno_engine::tasks::button_label(data));
    if let Some(label) = label {
        return Some(t(lang, "pressed").replace("{label}", label));
    }
    Some(if let Some(value) = data.strip_prefix("answer:").filter(|v| !v.trim().is_empty()) {
        t(lang, "pressed_answer").replace("{value}", value)
    } else if data == okno_store::UNSUBSCRIBE {
        t(lang, "pressed_unsubscribe")
    } else if data.starts_with("bot:") {
        t(lang, "pressed_bot")
    } else if data.starts_with(okno_domain::surveys::BUTTON_PREFIX) {
        t(lang, "pressed_survey")
    } else {
        t(lang, "pressed_other")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(dir: Direction, author: Option<&str>, data: Option<&str>, label: Option<&str>) -> Message {
        Message {
            id: "m1".into(),
            conversation_id: "c".into(),
            contact_id: "p".into(),
            channel_id: "ch".into(),
            direction: dir,
            text: None,
            attachments: vec![],
            buttons: vec![],
            status: okno_domain::model::MessageStatus::Received,
            error: None,
            external_id: None,
            button_data: data.map(str::to_string),
            button_label: label.map(str::to_string),
            reply_to: None,
            edited: false,
            author: author.map(str::to_string),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn authors_are_named_by_what_they_are_in_both_languages() {
        let mut names = Names::default();
        names.bots.insert("ch".into(), "Помощник".into());
        names.broadcasts.insert("b1".into(), "Весенняя акция".into());
        names.surveys.insert("s1".into(), "Качество доставки".into());
        names.rules.insert("m1".into(), "Заказ отгружен".into());
        let out = |a: &str| message(Direction::Out, Some(a), None, None);
        let name = |lang, a: &str| names.author(lang, &out(a)).unwrap().name;
        assert_eq!(name(Lang::En, "operator:anna"), "anna");
        assert_eq!(name(Lang::En, "bot"), "bot \"Помощник\"");
        assert_eq!(name(Lang::Ru, "bot"), "бот «Помощник»");
        assert_eq!(name(Lang::Ru, "broadcast:b1"), "рассылка «Весенняя акция»");
        assert_eq!(name(Lang::En, "broadcast:b2"), "broadcast", "a deleted broadcast by its kind");
        assert_eq!(name(Lang::Ru, "survey:s1"), "опрос «Качество доставки»");
        assert_eq!(name(Lang::Ru, "survey"), "опрос");
        assert_eq!(name(Lang::En, "token:admin"), "API token \"admin\"");
        assert_eq!(name(Lang::Ru, "token:admin"), "API-токен «admin»");
        assert_eq!(name(Lang::Ru, "event:e1"), "уведомление «Заказ отгружен»");
        assert_eq!(names.author(Lang::En, &out("event:e1")).unwrap().kind, "rule");
        // An inbound author is a person in a group, whatever they call themselves.
        let person = names.author(Lang::En, &message(Direction::In, Some("bot"), None, None)).unwrap();
        assert_eq!((person.kind, person.name.as_str()), ("person", "bot"));
        assert_eq!(names.author(Lang::En, &message(Direction::In, None, None, None)), None);
    }

    #[test]
    fn a_press_shows_its_label_or_its_kind_never_its_data() {
        let press = |data: &str, label: Option<&str>| message(Direction::In, None, Some(data), label);
        let shown = |lang, data: &str, label: Option<&str>| pressed(lang, &press(data, label)).unwrap();
        assert_eq!(shown(Lang::En, "bot:item:main:3:4a9d6b", Some("📦 Orders")), "pressed \"📦 Orders\"");
        assert_eq!(shown(Lang::Ru, "bot:item:main:3:4a9d6b", Some("📦 Заказы")), "нажата кнопка «📦 Заказы»");
        assert_eq!(shown(Lang::Ru, "task:take:t1", None), "нажата кнопка «Взять»");
        assert_eq!(shown(Lang::En, "answer:yes", None), "answered \"yes\"");
        for (data, ru) in [
            ("bot:item:main:3:4a9d6b", "нажата кнопка меню бота"),
            ("survey:r1:0:10", "ответ на вопрос опроса"),
            ("unsubscribe", "нажата кнопка «Отписаться»"),
            ("0xdeadbeef", "нажата кнопка"),
        ] {
            let text = shown(Lang::Ru, data, None);
            assert_eq!(text, ru);
            assert!(!text.contains(data), "{text}");
        }
        assert_eq!(pressed(Lang::En, &message(Direction::In, None, None, None)), None);
    }
}
