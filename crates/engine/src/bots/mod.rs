//! The bot engine: a channel's bot answers each inbound message in a private chat.
//!
//! ```text
//!   inbound message ─► `bot_step` job (ordered with the conversation's sends)
//!     reply to a relayed question? ─► the answer goes to whoever asked
//!     handed off to operators? ─► silent
//!     linked_only and not linked? ─► the link prompt, nothing else
//!     session expired mid-form? ─► "expired" + the start menu
//!     button / command / form answer / lookup input / feed question / menu choice / trigger
//!       ─► replies (sent in order, each with an idempotency key derived from the inbound
//!          message, so a retried step never sends twice) and the saved session
//! ```
//! Buttons carry what they do (`bot:item:<menu>:<n>:<tag>`, `bot:pick:<lookup>:<value>`…), so a
//! press on an old message still works while the definition still has that item.

pub mod def;
mod input;

use std::fmt::Write as _;
use std::time::Duration;

use okno_domain::ids::{ChannelId, ConversationId, MessageId};
use okno_domain::model::{Button, Channel, Contact, ConversationStatus, Direction, Keyboard, Message};
use okno_domain::time::now_ms;
use okno_domain::{Error, Result};
use okno_store::{
    BotRecord, ContactFilter, ConversationPatch, NewAttachment, NewEvent, OutboundRequest, Recipient, Relay,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::Engine;
use def::{Access, Action, BotDef, FieldKind, Form, Lookup, Method, Request};

/// A person's place in a bot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Session {
    /// The menu they are in (`None`: the start menu).
    #[serde(default)]
    menu: Option<String>,
    #[serde(default)]
    mode: Mode,
    /// The conversation is with operators; the bot is silent until it is resolved.
    #[serde(default)]
    handed_off: bool,
    /// Counts forms started, so a press on an old form's button is recognised.
    #[serde(default)]
    seq: u64,
    /// The last form submitted (its `seq`): a late "Отправить" for it is "already sent".
    #[serde(default)]
    submitted: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Mode {
    #[default]
    Menu,
    /// Waiting for a lookup's input.
    Lookup { lookup: String },
    Form {
        form: String,
        step: usize,
        values: Map<String, Value>,
        confirming: bool,
        editing: bool,
        seq: u64,
        /// Unique per form filled in: the submitted event's key and the request's
        /// `Idempotency-Key`, so a repeated submit is recognised downstream.
        #[serde(default)]
        key: String,
    },
    /// Each message is a question to a feed.
    Feed { feed: String },
    /// A list is on screen: a typed number picks its item (where there are no buttons).
    List { lookup: String, values: Vec<String> },
}

/// One message the bot sends.
#[derive(Debug, Default)]
struct Out {
    text: Option<String>,
    buttons: Keyboard,
    files: Vec<String>,
}

/// The menus and lookups a person may use.
#[derive(Default)]
struct Reach {
    menus: std::collections::HashSet<String>,
    lookups: std::collections::HashSet<String>,
}

/// What one inbound message asks of the bot.
enum Input {
    /// A button's data after `bot:`.
    Press(String),
    Command(String, String),
    Text(String),
    /// Files only.
    Files,
}

struct Turn<'a> {
    engine: &'a Engine,
    def: &'a BotDef,
    channel: Channel,
    conversation_id: ConversationId,
    contact: Contact,
    message: Message,
    session: Session,
    out: Vec<Out>,
}

fn button(text: &str, data: String) -> Button {
    Button { text: text.chars().take(64).collect(), data: Some(data), url: None }
}

/// A short fingerprint of an item's text: a press on a button whose item has changed is stale.
fn tag(text: &str) -> String {
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..3])
}

impl Engine {
    /// Queues the bot's turn for an inbound message that carried a link code, once the code
    /// is redeemed (the store queues every other message's turn with the message itself).
    pub(crate) async fn after_inbound(&self, message: &Message) -> Result<()> {
        let code = message.text.as_deref().is_some_and(okno_store::holds_link_code);
        if !code || message.direction != Direction::In || !self.has_bot(&message.channel_id).await {
            return Ok(());
        }
        self.store.queue_bot_step(&message.id, &message.conversation_id).await?;
        self.wake();
        Ok(())
    }

    pub(crate) async fn has_bot(&self, channel_id: &str) -> bool {
        if let Ok(cache) = self.bots.lock() {
            if let Some((at, has)) = cache.get(channel_id) {
                if at.elapsed() < crate::CHANNEL_TTL {
                    return *has;
                }
            }
        }
        let has = match self.store.get_bot(channel_id).await {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => {
                tracing::warn!(channel = channel_id, error = %e, "could not read the channel's bot");
                true
            }
        };
        if let Ok(mut cache) = self.bots.lock() {
            cache.insert(channel_id.to_string(), (std::time::Instant::now(), has));
        }
        has
    }

    /// Checks and attaches a bot definition to a channel.
    pub async fn put_bot(&self, channel_id: &str, source: &str) -> Result<BotRecord> {
        let def = BotDef::parse(source)?;
        self.channel(&ChannelId::from(channel_id)).await?;
        let spec = serde_json::to_value(&def).map_err(|e| Error::internal(e.to_string()))?;
        let rec = self.store.put_bot(channel_id, &def.name, source, spec).await?;
        if let Ok(mut cache) = self.bots.lock() {
            cache.remove(channel_id);
        }
        self.announce_commands(channel_id, &def).await;
        Ok(rec)
    }

    /// Shows the bot's commands in the platform's command menu, where it has one (unless the
    /// channel sets its own).
    async fn announce_commands(&self, channel_id: &str, def: &BotDef) {
        let Ok(channel) = self.channel(&ChannelId::from(channel_id)).await else { return };
        let Ok(adapter) = self.adapter_for(&channel) else { return };
        let mut commands = vec![("start".to_string(), "Главное меню".to_string())];
        for c in &def.commands {
            let name = c.command.trim_start_matches('/').to_string();
            let description = c.description.clone().unwrap_or_else(|| name.clone());
            commands.push((name, description));
        }
        if !def.forms.is_empty() {
            commands.push(("cancel".into(), "Отменить ввод".into()));
        }
        if !def.feeds.is_empty() {
            commands.push(("unanswered".into(), "Неотвеченные вопросы".into()));
        }
        if let Err(e) = adapter.set_commands(&commands).await {
            tracing::warn!(channel = channel_id, error = %e, "the platform did not take the bot's command menu");
        }
    }

    pub async fn delete_bot(&self, channel_id: &str) -> Result<()> {
        self.store.delete_bot(channel_id).await?;
        if let Ok(mut cache) = self.bots.lock() {
            cache.remove(channel_id);
        }
        Ok(())
    }

    /// Operators took or released a conversation: the bot goes silent on `open`/`pending` and
    /// answers again after `resolved`.
    pub async fn conversation_status_changed(
        &self,
        conversation_id: &ConversationId,
        status: ConversationStatus,
    ) -> Result<()> {
        let conv = self.store.get_conversation(conversation_id).await?;
        let handed_off = matches!(status, ConversationStatus::Open | ConversationStatus::Pending);
        for identity in &conv.contact.identities {
            let Some((state, _)) = self.store.bot_session(&identity.channel_id, &identity.user_id).await? else {
                if handed_off && self.has_bot(&identity.channel_id).await {
                    let s = Session { handed_off: true, ..Session::default() };
                    self.store.save_bot_session(&identity.channel_id, &identity.user_id, to_value(&s)).await?;
                }
                continue;
            };
            let mut s: Session = serde_json::from_value(state).unwrap_or_default();
            if s.handed_off != handed_off {
                s.handed_off = handed_off;
                if !handed_off {
                    s.mode = Mode::Menu;
                }
                self.store.save_bot_session(&identity.channel_id, &identity.user_id, to_value(&s)).await?;
            }
        }
        Ok(())
    }

    /// Whether the person's conversation was handed to operators by a bot on another channel
    /// (one conversation spans all of a person's channels).
    async fn handed_off_elsewhere(&self, contact: &Contact, here: &str) -> Result<bool> {
        for i in contact.identities.iter().filter(|i| i.channel_id != here) {
            if let Some((state, _)) = self.store.bot_session(&i.channel_id, &i.user_id).await? {
                if serde_json::from_value::<Session>(state).is_ok_and(|s| s.handed_off) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The bot's turn for one inbound message (the `bot_step` job).
    pub(crate) async fn bot_step(&self, message_id: &MessageId) -> Result<()> {
        let message = match self.store.get_message(message_id).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let bot = match self.store.get_bot(&message.channel_id).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let def = BotDef::from_stored(&bot.spec)?;
        let channel = self.channel(&message.channel_id).await?;
        let channel_id = channel.id.clone();
        let conv = self.store.get_conversation(&message.conversation_id).await?;
        let Some(identity) = conv.contact.identities.iter().find(|i| i.channel_id == channel.id).cloned() else {
            return Ok(());
        };
        if identity.is_group {
            return Ok(()); // group chats belong to people, not to the bot
        }
        let (session, fresh) = match self.store.bot_session(&channel.id, &identity.user_id).await? {
            Some((state, at)) => (serde_json::from_value(state).unwrap_or_default(), now_ms() - at <= def.idle_ms()),
            None => (Session::default(), true),
        };
        let mut turn = Turn {
            engine: self,
            def: &def,
            channel,
            conversation_id: conv.id.clone(),
            contact: conv.contact.clone(),
            message,
            session,
            out: Vec::new(),
        };
        if def.access == Access::LinkedOnly && turn.contact.external_id.is_none() {
            let prompt = def.link_prompt.clone().unwrap_or_else(|| {
                "Этот бот работает только для сотрудников. Отправьте код привязки, который вам выдали.".into()
            });
            let text = turn.render(&prompt, &json!({})).await;
            turn.say(text);
            return turn.finish(&identity.user_id, false).await;
        }
        if turn.relay_answer().await? {
            return turn.finish(&identity.user_id, false).await;
        }
        let with_operators = matches!(conv.status, ConversationStatus::Open | ConversationStatus::Pending);
        if turn.session.handed_off || (with_operators && conv.assignee.is_some()) {
            return Ok(()); // operators have it
        }
        if conv.status != ConversationStatus::Bot && !self.handed_off_elsewhere(&conv.contact, &channel_id).await? {
            let patch = ConversationPatch { status: Some(ConversationStatus::Bot), ..ConversationPatch::default() };
            self.store.update_conversation(&conv.id, patch).await?;
        }
        turn.sanitize();
        if !fresh && !matches!(turn.session.mode, Mode::Menu) {
            turn.session = Session { seq: turn.session.seq, ..Session::default() };
            turn.say(def.texts.expired().to_string());
            turn.show_menu(None).await;
        } else {
            if !fresh {
                turn.session.menu = None;
            }
            turn.handle().await?;
        }
        turn.finish(&identity.user_id, true).await
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Turn<'_> {
    fn say(&mut self, text: String) {
        self.out.push(Out { text: Some(text), ..Out::default() });
    }

    fn say_with(&mut self, text: String, buttons: Keyboard) {
        self.out.push(Out { text: Some(text), buttons, files: Vec::new() });
    }

    /// The context templates see.
    fn ctx(&self, extra: Value) -> Value {
        let mut ctx = json!({
            "contact": {
                "id": self.contact.id, "name": self.contact.name, "phone": self.contact.phone,
                "email": self.contact.email, "external_id": self.contact.external_id,
                "groups": self.contact.groups, "attrs": self.contact.attrs,
            },
            "bot": {"name": self.def.name, "channel_id": self.channel.id},
            "tz": self.contact.attrs.get("tz").cloned().unwrap_or_else(|| json!(self.engine.cfg.default_timezone)),
        });
        if let (Some(c), Value::Object(extra)) = (ctx.as_object_mut(), extra) {
            c.extend(extra);
        }
        ctx
    }

    /// Renders a template; a failure is logged and the bot's error text is used instead.
    async fn render(&self, src: &str, extra: &Value) -> String {
        self.try_render(src, extra).await.unwrap_or_else(|e| {
            tracing::warn!(bot = %self.def.name, channel = %self.channel.id, error = %e, "a bot template failed");
            self.def.texts.error().to_string()
        })
    }

    async fn try_render(&self, src: &str, extra: &Value) -> Result<String> {
        self.engine.renderer.render(src, &self.ctx(extra.clone())).await
    }

    fn input(&self) -> Input {
        if let Some(data) = self.message.button_data.as_deref() {
            if let Some(rest) = data.strip_prefix("bot:") {
                return Input::Press(rest.to_string());
            }
        }
        let text = self.message.text.as_deref().map(str::trim).unwrap_or_default();
        if let Some(cmd) = text.strip_prefix('/') {
            let (word, rest) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
            let word = word.split('@').next().unwrap_or_default().to_lowercase();
            return Input::Command(word, rest.trim().to_string());
        }
        if text.is_empty() {
            return Input::Files;
        }
        Input::Text(text.to_string())
    }

    fn files(&self) -> Vec<String> {
        self.message.attachments.iter().map(|a| a.id.clone()).collect()
    }

    async fn handle(&mut self) -> Result<()> {
        // Presses on buttons that are not the bot's (a notification's rating…) are not for it.
        if self.message.button_data.as_deref().is_some_and(|d| !d.starts_with("bot:")) {
            return Ok(());
        }
        match self.input() {
            Input::Command(cmd, rest) => self.command(&cmd, &rest).await,
            Input::Press(data) => self.press(&data).await,
            Input::Text(text) => self.text(&text).await,
            Input::Files => match self.session.mode.clone() {
                Mode::Form { .. } => self.form_answer(None).await,
                Mode::Feed { feed } => self.relay_question(&feed).await,
                _ => {
                    self.say(self.def.texts.unknown().to_string());
                    self.show_menu(self.session.menu.clone()).await;
                    Ok(())
                }
            },
        }
    }

    async fn command(&mut self, cmd: &str, rest: &str) -> Result<()> {
        match cmd {
            // A task's "details" link (`/start task-…`): the task engine answers it.
            "start" if rest.starts_with("task-") => Ok(()),
            "start" | "menu" => {
                self.session.mode = Mode::Menu;
                self.show_menu(None).await;
                Ok(())
            }
            "cancel" => self.cancel().await,
            "unanswered" => self.unanswered().await,
            other => match self.def.commands.iter().find(|c| c.command.trim_start_matches('/') == other) {
                Some(c) if !self.may_see(&c.groups) => {
                    self.say(self.def.texts.not_allowed().to_string());
                    Ok(())
                }
                Some(c) => {
                    let action = c.action.clone();
                    self.run(&action, None).await
                }
                None => self.text(&format!("/{other}")).await,
            },
        }
    }

    async fn cancel(&mut self) -> Result<()> {
        self.session.mode = Mode::Menu;
        self.say(self.def.texts.cancelled().to_string());
        self.show_menu(self.session.menu.clone()).await;
        Ok(())
    }

    async fn text(&mut self, text: &str) -> Result<()> {
        let texts = &self.def.texts;
        let cancel_word = text.eq_ignore_ascii_case("отмена") || text == texts.cancel();
        match self.session.mode.clone() {
            Mode::Form { .. } if cancel_word => return self.cancel().await,
            Mode::Form { .. } => return self.form_answer(Some(text)).await,
            Mode::Lookup { .. } | Mode::Feed { .. } if cancel_word || text == texts.home() => {
                self.session.mode = Mode::Menu;
                self.show_menu(None).await;
                return Ok(());
            }
            Mode::Lookup { lookup } => {
                // On failure the person stays where they were and may type again.
                if self.lookup(&lookup, text, 0, false).await? && matches!(self.session.mode, Mode::Lookup { .. }) {
                    self.session.mode = Mode::Menu;
                }
                return Ok(());
            }
            Mode::Feed { feed } => return self.relay_question(&feed).await,
            Mode::List { lookup, values } => {
                self.session.mode = Mode::Menu;
                let picked = text.parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|n| values.get(n));
                if let Some(value) = picked.cloned() {
                    return self.press(&format!("pick:{lookup}:{value}")).await;
                }
            }
            Mode::Menu => {}
        }
        // A number or an item's text typed by hand.
        let menu_id = self.current_menu();
        let visible = self.visible_items(&menu_id);
        let chosen =
            text.parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|n| visible.get(n).copied()).or_else(
                || visible.iter().copied().find(|&i| self.def.menus[&menu_id].items[i].text.eq_ignore_ascii_case(text)),
            );
        if let Some(index) = chosen {
            let action = self.def.menus[&menu_id].items[index].action.clone();
            return self.run(&action, None).await;
        }
        // The numbers after the items are "back" and "home", as the buttons are laid out.
        let number = text.parse::<usize>().ok();
        if menu_id != self.def.start && number == Some(visible.len() + 1) {
            return self.run(&Action::Back, None).await;
        }
        if menu_id != self.def.start && number == Some(visible.len() + 2) {
            return self.run(&Action::Home, None).await;
        }
        if text == texts.back() {
            return self.run(&Action::Back, None).await;
        }
        if text == texts.home() {
            return self.run(&Action::Home, None).await;
        }
        for t in self.def.triggers.iter().filter(|t| self.may_see(&t.groups)) {
            let input = match &t.pattern {
                Some(p) => regex::Regex::new(p).ok().and_then(|r| {
                    r.captures(text).map(|c| c.get(1).or(c.get(0)).map_or(text, |m| m.as_str()).to_string())
                }),
                None => {
                    let lower = text.to_lowercase();
                    t.contains.iter().any(|w| lower.contains(&w.to_lowercase())).then(|| text.to_string())
                }
            };
            if let Some(input) = input {
                let action = t.action.clone();
                return self.run(&action, Some(input)).await;
            }
        }
        self.say(self.def.texts.unknown().to_string());
        self.show_menu(Some(menu_id)).await;
        Ok(())
    }

    /// A press on one of the bot's buttons (`data` after `bot:`). What a button opens is
    /// checked against the person's groups now, not when the button was drawn.
    async fn press(&mut self, data: &str) -> Result<()> {
        let (kind, rest) = data.split_once(':').unwrap_or((data, ""));
        let reach = self.reach();
        match kind {
            "item" => {
                let parts: Vec<&str> = rest.splitn(3, ':').collect();
                let (menu_id, index, tag_now) = match parts.as_slice() {
                    [m, i, t] => (*m, i.parse::<usize>().unwrap_or(usize::MAX), *t),
                    _ => return self.stale().await,
                };
                let item = self.def.menus.get(menu_id).and_then(|m| m.items.get(index));
                let Some(item) = item.filter(|i| tag(&i.text) == tag_now) else { return self.stale().await };
                if !reach.menus.contains(menu_id) || !self.may_see(&item.groups) {
                    self.say(self.def.texts.not_allowed().to_string());
                    return Ok(());
                }
                self.session.mode = Mode::Menu;
                self.session.menu = Some(menu_id.to_string());
                let action = item.action.clone();
                self.run(&action, None).await
            }
            "back" => self.run(&Action::Back, None).await,
            "home" => self.run(&Action::Home, None).await,
            "page" | "pick" | "more" => {
                let (lookup, arg) = rest.split_once(':').unwrap_or((rest, ""));
                if !self.def.lookups.contains_key(lookup) {
                    return self.stale().await;
                }
                if !reach.lookups.contains(lookup) {
                    self.say(self.def.texts.not_allowed().to_string());
                    return Ok(());
                }
                self.session.mode = Mode::Menu;
                match kind {
                    "page" => {
                        let (page, input) = arg.split_once(':').unwrap_or((arg, ""));
                        self.lookup(lookup, input, page.parse().unwrap_or(0), false).await.map(|_| ())
                    }
                    "more" => self.lookup(lookup, arg, 0, true).await.map(|_| ()),
                    _ => {
                        let then = self.def.lookups[lookup].list.as_ref().and_then(|l| l.then.clone());
                        match then {
                            Some(then) => self.lookup(&then, arg, 0, false).await.map(|_| ()),
                            None => self.stale().await,
                        }
                    }
                }
            }
            "f" => {
                let parts: Vec<&str> = rest.splitn(4, ':').collect();
                let part = |n: usize| parts.get(n).copied().unwrap_or_default();
                self.form_press(part(0), part(1), part(2), part(3)).await
            }
            _ => self.stale().await,
        }
    }

    /// What the person can reach from the start menu, commands and triggers, given their groups.
    fn reach(&self) -> Reach {
        let d = self.def;
        let mut r = Reach::default();
        let mut todo = vec![d.start.clone()];
        let mut actions: Vec<&Action> = Vec::new();
        actions.extend(d.commands.iter().filter(|c| self.may_see(&c.groups)).map(|c| &c.action));
        actions.extend(d.triggers.iter().filter(|t| self.may_see(&t.groups)).map(|t| &t.action));
        loop {
            for a in actions.drain(..) {
                match a {
                    Action::Menu(m) => todo.push(m.clone()),
                    Action::Lookup(l) => {
                        let mut next = Some(l.clone());
                        while let Some(l) = next.take() {
                            if r.lookups.insert(l.clone()) {
                                next = d.lookups.get(&l).and_then(|x| x.list.as_ref()).and_then(|x| x.then.clone());
                            }
                        }
                    }
                    _ => {}
                }
            }
            let Some(menu) = todo.pop() else { break };
            if !r.menus.insert(menu.clone()) {
                continue;
            }
            if let Some(m) = d.menus.get(&menu) {
                actions.extend(m.items.iter().filter(|i| self.may_see(&i.groups)).map(|i| &i.action));
            }
        }
        r
    }

    /// A session saved under an earlier definition may point at a form, step, lookup or feed
    /// that is gone: the person starts again from the menu.
    fn sanitize(&mut self) {
        let d = self.def;
        let gone = match &self.session.mode {
            Mode::Menu => false,
            Mode::Lookup { lookup } | Mode::List { lookup, .. } => !d.lookups.contains_key(lookup),
            Mode::Feed { feed } => !d.feeds.contains_key(feed),
            Mode::Form { form, step, .. } => d.forms.get(form).is_none_or(|f| *step >= f.steps.len()),
        };
        if gone {
            self.session.mode = Mode::Menu;
            self.say(d.texts.stale().to_string());
        }
    }

    async fn stale(&mut self) -> Result<()> {
        self.say(self.def.texts.stale().to_string());
        self.show_menu(self.session.menu.clone()).await;
        Ok(())
    }

    fn current_menu(&self) -> String {
        self.session.menu.clone().filter(|m| self.def.menus.contains_key(m)).unwrap_or_else(|| self.def.start.clone())
    }

    fn may_see(&self, groups: &[String]) -> bool {
        groups.is_empty() || groups.iter().any(|g| self.contact.groups.contains(g))
    }

    fn visible_items(&self, menu_id: &str) -> Vec<usize> {
        self.def.menus.get(menu_id).map_or_else(Vec::new, |m| {
            m.items.iter().enumerate().filter(|(_, i)| self.may_see(&i.groups)).map(|(n, _)| n).collect()
        })
    }

    /// The menu that leads to `menu_id` (the first one with an item opening it).
    fn parent(&self, menu_id: &str) -> Option<String> {
        if menu_id == self.def.start {
            return None;
        }
        self.def
            .menus
            .iter()
            .find(|(id, m)| *id != menu_id && m.items.iter().any(|i| i.action == Action::Menu(menu_id.to_string())))
            .map(|(id, _)| id.clone())
    }

    fn nav_row(&self) -> Vec<Button> {
        vec![button(self.def.texts.back(), "bot:back".into()), button(self.def.texts.home(), "bot:home".into())]
    }

    fn home_row(&self) -> Vec<Button> {
        vec![button(self.def.texts.home(), "bot:home".into())]
    }

    async fn show_menu(&mut self, menu: Option<String>) {
        let id = menu.filter(|m| self.def.menus.contains_key(m)).unwrap_or_else(|| self.def.start.clone());
        self.session.menu = Some(id.clone());
        let menu = &self.def.menus[&id];
        let text = self.render(&menu.text, &json!({})).await;
        let visible = self.visible_items(&id);
        // Where the channel shows no buttons, its adapter numbers them; typed numbers are read
        // back in `text` in the same order.
        let mut rows: Keyboard = visible
            .chunks(menu.columns.max(1))
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|&n| {
                        let item = &menu.items[n];
                        button(&item.text, format!("bot:item:{id}:{n}:{}", tag(&item.text)))
                    })
                    .collect()
            })
            .collect();
        if id != self.def.start {
            rows.push(self.nav_row());
        }
        self.say_with(text, rows);
    }

    async fn run(&mut self, action: &Action, input: Option<String>) -> Result<()> {
        match action {
            Action::Menu(id) => {
                self.session.mode = Mode::Menu;
                self.show_menu(Some(id.clone())).await;
            }
            Action::Back => {
                self.session.mode = Mode::Menu;
                let up = self.parent(&self.current_menu());
                self.show_menu(up).await;
            }
            Action::Home => {
                self.session.mode = Mode::Menu;
                self.show_menu(None).await;
            }
            Action::Reply(r) => {
                let text = match &r.text {
                    Some(t) => Some(self.render(t, &json!({})).await),
                    None => None,
                };
                self.out.push(Out { text, buttons: Vec::new(), files: r.files.clone() });
            }
            Action::News(n) => self.news(n.limit).await?,
            Action::Lookup(id) => {
                let lookup = &self.def.lookups[id];
                match (input, &lookup.ask) {
                    (Some(input), _) => {
                        self.lookup(id, &input, 0, false).await?;
                    }
                    (None, Some(ask)) => {
                        let text = self.render(ask, &json!({})).await;
                        self.session.mode = Mode::Lookup { lookup: id.clone() };
                        self.say_with(text, vec![self.home_row()]);
                    }
                    (None, None) => {
                        self.lookup(id, "", 0, false).await?;
                    }
                }
            }
            Action::Form(id) => {
                self.session.seq += 1;
                self.session.mode = Mode::Form {
                    form: id.clone(),
                    step: 0,
                    values: Map::new(),
                    confirming: false,
                    editing: false,
                    seq: self.session.seq,
                    key: okno_domain::ids::new_id(),
                };
                self.ask_step().await;
            }
            Action::Handoff(h) => {
                let text = h.text.clone().unwrap_or_else(|| "Соединяю с оператором. Ответим здесь же.".into());
                let text = self.render(&text, &json!({})).await;
                self.session.mode = Mode::Menu;
                self.session.handed_off = true;
                let patch =
                    ConversationPatch { status: Some(ConversationStatus::Open), ..ConversationPatch::default() };
                self.engine.store.update_conversation(&self.conversation_id, patch).await?;
                self.say(text);
            }
            Action::Ask(feed) => {
                let prompt = self.def.feeds[feed].prompt.clone().unwrap_or_else(|| "Напишите ваш вопрос.".into());
                let text = self.render(&prompt, &json!({})).await;
                self.session.mode = Mode::Feed { feed: feed.clone() };
                self.say_with(text, vec![self.home_row()]);
            }
        }
        Ok(())
    }

    async fn news(&mut self, limit: u32) -> Result<()> {
        let items: Vec<_> = self
            .engine
            .store
            .list_news(200)
            .await?
            .into_iter()
            .filter(|n| self.may_see(&n.groups))
            .take(limit as usize)
            .collect();
        if items.is_empty() {
            self.say(self.def.texts.no_news().to_string());
        }
        for n in items.into_iter().rev() {
            let text = if n.title.trim().is_empty() { n.text } else { format!("{}\n\n{}", n.title, n.text) };
            self.out.push(Out { text: Some(text), buttons: Vec::new(), files: n.attachment_id.into_iter().collect() });
        }
        Ok(())
    }

    // --- lookups ------------------------------------------------------------------------------

    /// Runs a lookup with `input`, showing `page` of a list or the detailed card.
    async fn lookup(&mut self, id: &str, input: &str, page: usize, detail: bool) -> Result<bool> {
        let Some(lookup) = self.def.lookups.get(id).cloned() else { return self.stale().await.map(|()| false) };
        let action = if lookup.file.is_some() { "upload_document" } else { "typing" };
        let extra = json!({"input": input});
        let (body, mime) = match self.call(&lookup.request, &extra, action, id, None).await {
            Ok(Called::Body(body, mime)) => (body, mime),
            Ok(Called::NotFound) => {
                match &lookup.not_found {
                    Some(t) => {
                        let text = self.render(t, &extra).await;
                        self.say(text);
                    }
                    None => self.say(self.def.texts.error().to_string()),
                }
                return Ok(true);
            }
            Err(why) => {
                self.fail(id, &why);
                return Ok(false);
            }
        };
        if lookup.file.is_some() {
            if mime.starts_with("application/json") {
                self.fail(id, "a file was expected but the answer is JSON");
                return Ok(false);
            }
            self.send_file(&lookup, &extra, body, mime).await?;
            return Ok(true);
        }
        // JSON whatever the Content-Type says (1C HTTP services often answer text/plain).
        let answer: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                self.fail(id, &format!("the answer is not JSON ({mime}): {e}"));
                return Ok(false);
            }
        };
        let with_answer = json!({"input": input, "answer": answer});
        if let Some(t) = &lookup.text {
            return Ok(match self.try_render(t, &with_answer).await {
                Ok(text) => {
                    self.say(text);
                    true
                }
                Err(e) => {
                    self.fail(id, &e.message);
                    false
                }
            });
        }
        if let Some(card) = &lookup.card {
            let src = if detail { card.detail.as_ref().unwrap_or(&card.text) } else { &card.text };
            let text = match self.try_render(src, &with_answer).await {
                Ok(t) => t,
                Err(e) => {
                    self.fail(id, &e.message);
                    return Ok(false);
                }
            };
            let mut files = Vec::new();
            let photo_now = detail || card.detail.is_none();
            if let (true, Some(p)) = (photo_now, &card.photo) {
                match self.try_render(p, &with_answer).await.map(|u| u.trim().to_string()) {
                    Ok(url) if !url.is_empty() => match self.fetch_photo(&url).await {
                        Ok(att) => files.push(att),
                        Err(why) => {
                            tracing::warn!(bot = %self.def.name, lookup = id, %url, why, "card photo not fetched")
                        }
                    },
                    _ => {}
                }
            }
            let mut rows = Vec::new();
            if !detail && card.detail.is_some() {
                rows.push(vec![button(self.def.texts.more(), format!("bot:more:{id}:{input}"))]);
            }
            rows.push(self.home_row());
            self.out.push(Out { text: Some(text), buttons: rows, files });
            return Ok(true);
        }
        if let Some(list) = &lookup.list {
            let Some(items) = path(&answer, &list.items).and_then(Value::as_array) else {
                self.fail(id, &format!("the answer has no list at `{}`", list.items));
                return Ok(false);
            };
            if items.is_empty() {
                let text = match &list.empty {
                    Some(t) => self.render(t, &with_answer).await,
                    None => "Ничего не найдено.".into(),
                };
                self.say_with(text, vec![self.home_row()]);
                return Ok(true);
            }
            let pages = items.len().div_ceil(list.page_size);
            let page = page.min(pages - 1);
            let mut rows: Keyboard = Vec::new();
            let mut values = Vec::new();
            for (n, item) in items.iter().enumerate().skip(page * list.page_size).take(list.page_size) {
                let ctx = json!({"input": input, "answer": answer, "item": item});
                let label = self.try_render(&list.button, &ctx).await;
                let value = match &list.value {
                    Some(v) => self.try_render(v, &ctx).await,
                    None => Ok(n.to_string()),
                };
                match (label, value) {
                    (Ok(label), Ok(value)) => {
                        rows.push(vec![button(&label, format!("bot:pick:{id}:{}", value.trim()))]);
                        values.push(value.trim().to_string());
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        self.fail(id, &e.message);
                        return Ok(false);
                    }
                }
            }
            let mut paging = Vec::new();
            if page > 0 {
                paging.push(button(self.def.texts.prev(), format!("bot:page:{id}:{}:{input}", page - 1)));
            }
            if page + 1 < pages {
                paging.push(button(self.def.texts.next(), format!("bot:page:{id}:{}:{input}", page + 1)));
            }
            if !paging.is_empty() {
                rows.push(paging);
            }
            rows.push(self.home_row());
            let head = match &list.text {
                Some(t) => match self.try_render(t, &with_answer).await {
                    Ok(t) => t,
                    Err(e) => {
                        self.fail(id, &e.message);
                        return Ok(false);
                    }
                },
                None => "Выберите:".into(),
            };
            let text = if pages > 1 { format!("{head}\n(стр. {} из {pages})", page + 1) } else { head };
            self.say_with(text, rows);
            self.session.mode = Mode::List { lookup: id.to_string(), values };
        }
        Ok(true)
    }

    /// A lookup went wrong: the person gets the friendly text, the log gets the cause.
    fn fail(&mut self, what: &str, why: &str) {
        tracing::warn!(bot = %self.def.name, channel = %self.channel.id, step = what, why, "a bot request failed");
        self.say(self.def.texts.error().to_string());
    }

    async fn send_file(&mut self, lookup: &Lookup, extra: &Value, bytes: bytes::Bytes, mime: String) -> Result<()> {
        let Some(file) = &lookup.file else { return Ok(()) };
        let name = self.render(&file.name, extra).await;
        let sha256 = self.engine.files.put(&bytes).await.map_err(|e| Error::internal(format!("file store: {e}")))?;
        let att = self
            .engine
            .store
            .insert_attachment(NewAttachment { message_id: None, name, mime, size: bytes.len() as i64, sha256 })
            .await?;
        let caption = match &file.caption {
            Some(c) => Some(self.render(c, extra).await),
            None => None,
        };
        self.out.push(Out { text: caption, buttons: Vec::new(), files: vec![att.id] });
        Ok(())
    }

    async fn fetch_photo(&self, url: &str) -> std::result::Result<String, String> {
        let fetched = self
            .engine
            .http
            .fetch_limited(url, self.engine.cfg.max_attachment_bytes)
            .await
            .map_err(|e| e.to_string())?;
        let sha256 = self.engine.files.put(&fetched.body).await.map_err(|e| e.to_string())?;
        let name = url.rsplit('/').next().filter(|s| !s.is_empty() && s.contains('.')).unwrap_or("photo.jpg");
        let att = self
            .engine
            .store
            .insert_attachment(NewAttachment {
                message_id: None,
                name: name.split('?').next().unwrap_or(name).to_string(),
                mime: fetched.mime.unwrap_or_else(|| "image/jpeg".into()),
                size: fetched.body.len() as i64,
                sha256,
            })
            .await
            .map_err(|e| e.message)?;
        Ok(att.id)
    }

    /// Calls the business system, showing `action` ("typing"…) in the chat meanwhile.
    /// Calls the business system, showing `action` ("typing"…) in the chat meanwhile. A URL
    /// under `http.base_url` — the address the administrator configured — may be on the
    /// company's network; any other URL passes the same guard as outgoing webhooks.
    async fn call(
        &self,
        r: &Request,
        extra: &Value,
        action: &str,
        what: &str,
        idempotency_key: Option<&str>,
    ) -> std::result::Result<Called, String> {
        let mut url = self.try_render(&r.url, extra).await.map_err(|e| e.message)?.trim().to_string();
        let client = if url.starts_with('/') {
            let base = self.def.http.base_url.as_deref().unwrap_or_default().trim_end_matches('/');
            url = format!("{base}{url}");
            &self.engine.admin_http
        } else {
            &self.engine.http
        };
        let mut req = match r.method {
            Method::GET => client.get(&url),
            Method::POST => client.post(&url),
        }
        .map_err(|e| format!("{url}: {}", e.message))?;
        for (k, v) in self.def.http.headers.iter().chain(r.headers.iter()) {
            req = req.header(k.as_str(), self.try_render(v, extra).await.map_err(|e| e.message)?);
        }
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        if let Some(body) = &r.body {
            req = req.json(&self.render_body(body, extra).await?);
        }
        req = req.timeout(Duration::from_millis(self.def.timeout_ms(r)));
        let typing = self.keep_showing(action);
        let answer = async {
            let mut resp =
                req.send().await.map_err(|e| format!("{what}: {url}: {}", okno_channel::http::describe(&e)))?;
            let status = resp.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(Called::NotFound);
            }
            if !status.is_success() {
                return Err(format!("{what}: {url} answered {status}"));
            }
            let mime = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_string();
            let mut body = Vec::new();
            while let Some(chunk) =
                resp.chunk().await.map_err(|e| format!("{what}: {url}: {}", okno_channel::http::describe(&e)))?
            {
                body.extend_from_slice(&chunk);
                if body.len() as u64 > self.engine.cfg.max_attachment_bytes {
                    return Err(format!("{what}: {url}: the answer is larger than the attachment limit"));
                }
            }
            Ok(Called::Body(bytes::Bytes::from(body), mime))
        }
        .await;
        typing.abort();
        answer
    }

    /// Renders every string of a request body, all in one trip to a render worker.
    async fn render_body(&self, v: &Value, extra: &Value) -> std::result::Result<Value, String> {
        fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::String(s) => out.push(s),
                Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
                Value::Object(map) => map.values().for_each(|i| strings(i, out)),
                _ => {}
            }
        }
        fn refill(v: &Value, texts: &mut impl Iterator<Item = String>) -> Value {
            match v {
                Value::String(_) => Value::String(texts.next().unwrap_or_default()),
                Value::Array(items) => Value::Array(items.iter().map(|i| refill(i, texts)).collect()),
                Value::Object(map) => Value::Object(map.iter().map(|(k, i)| (k.clone(), refill(i, texts))).collect()),
                other => other.clone(),
            }
        }
        let mut srcs = Vec::new();
        strings(v, &mut srcs);
        let texts = self.engine.renderer.render_all(&srcs, &self.ctx(extra.clone())).await.map_err(|e| e.message)?;
        Ok(refill(v, &mut texts.into_iter()))
    }

    /// Shows a chat action now and every 4 seconds (Telegram shows one for 5) until aborted.
    fn keep_showing(&self, action: &str) -> tokio::task::JoinHandle<()> {
        let (engine, conv, action) = (self.engine.self_ref(), self.conversation_id.clone(), action.to_string());
        tokio::spawn(async move {
            let Some(engine) = engine else { return };
            loop {
                if let Err(e) = engine.chat_action(&conv, &action).await {
                    tracing::debug!(error = %e, "chat action not shown");
                }
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
        })
    }

    // --- forms --------------------------------------------------------------------------------

    #[allow(clippy::type_complexity)] // the fields of `Mode::Form`, read together
    fn form_state(&self) -> Option<(String, usize, Map<String, Value>, bool, bool, u64)> {
        match &self.session.mode {
            // Only a form and step the definition still has (see `sanitize`).
            Mode::Form { form, step, values, confirming, editing, seq, .. }
                if self.def.forms.get(form).is_some_and(|f| *step < f.steps.len()) =>
            {
                Some((form.clone(), *step, values.clone(), *confirming, *editing, *seq))
            }
            _ => None,
        }
    }

    async fn ask_step(&mut self) {
        let Some((form_id, step, values, confirming, _, seq)) = self.form_state() else { return };
        let form = &self.def.forms[&form_id];
        let texts = &self.def.texts;
        let at = if confirming { "c".to_string() } else { step.to_string() };
        let cancel = button(texts.cancel(), format!("bot:f:{seq}:{at}:cancel"));
        if confirming {
            let ctx = json!({"form": values});
            let text = match &form.confirm {
                Some(t) => self.render(t, &ctx).await,
                None => summary(form, &values),
            };
            let rows = vec![
                vec![button(texts.send(), format!("bot:f:{seq}:c:send"))],
                vec![button(texts.edit(), format!("bot:f:{seq}:c:edit")), cancel],
            ];
            self.say_with(text, rows);
            return;
        }
        let s = &form.steps[step];
        let text = self.render(&s.ask, &json!({"form": values})).await;
        let mut rows: Keyboard = Vec::new();
        match s.kind {
            FieldKind::Choice => {
                for (n, o) in s.options.iter().enumerate() {
                    rows.push(vec![button(o, format!("bot:f:{seq}:{at}:opt:{n}"))]);
                }
            }
            FieldKind::Confirm => rows.push(vec![
                button(texts.yes(), format!("bot:f:{seq}:{at}:opt:yes")),
                button(texts.no(), format!("bot:f:{seq}:{at}:opt:no")),
            ]),
            _ => {}
        }
        let mut last = Vec::new();
        if s.optional {
            last.push(button(texts.skip(), format!("bot:f:{seq}:{at}:skip")));
        }
        last.push(cancel);
        rows.push(last);
        self.say_with(text, rows);
    }

    /// A form button: `f:{seq}:{step}:{what}:{arg}`, `step` being `c` on the confirmation.
    /// A press meant for another step (a double tap, an older message) only asks the current
    /// step again.
    async fn form_press(&mut self, seq: &str, at: &str, what: &str, arg: &str) -> Result<()> {
        let current = self.form_state();
        let Some((form_id, step, _, confirming, _, _)) = current.filter(|s| s.5.to_string() == seq) else {
            if what == "send" && self.session.submitted.is_some_and(|s| s.to_string() == seq) {
                self.say(self.def.texts.already_sent().to_string());
            } else {
                self.stale().await?;
            }
            return Ok(());
        };
        let here = if confirming { "c".to_string() } else { step.to_string() };
        if what != "cancel" && at != here {
            self.ask_step().await;
            return Ok(());
        }
        let Some(form) = self.def.forms.get(&form_id) else { return self.stale().await };
        match what {
            "cancel" => self.cancel().await,
            "send" if confirming => self.submit().await,
            "edit" if confirming => {
                let rows: Keyboard = form
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(n, s)| vec![button(&s.field_label(), format!("bot:f:{seq}:c:field:{n}"))])
                    .collect();
                self.say_with(self.def.texts.edit_which().to_string(), rows);
                Ok(())
            }
            "field" if confirming => {
                let n: usize = arg.parse().unwrap_or(usize::MAX);
                if n >= form.steps.len() {
                    return self.stale().await;
                }
                if let Mode::Form { step, confirming, editing, .. } = &mut self.session.mode {
                    *step = n;
                    *confirming = false;
                    *editing = true;
                }
                self.ask_step().await;
                Ok(())
            }
            "skip" if !confirming && form.steps.get(step).is_some_and(|s| s.optional) => {
                self.store_answer(Value::Null).await
            }
            "opt" if !confirming => {
                let Some(s) = form.steps.get(step) else { return self.stale().await };
                let value = match (s.kind, arg) {
                    (FieldKind::Confirm, "yes") => json!(true),
                    (FieldKind::Confirm, "no") => json!(false),
                    (FieldKind::Choice, n) => match n.parse::<usize>().ok().and_then(|n| s.options.get(n)) {
                        Some(o) => json!(o),
                        None => return self.stale().await,
                    },
                    _ => return self.stale().await,
                };
                self.store_answer(value).await
            }
            _ => {
                self.ask_step().await;
                Ok(())
            }
        }
    }

    async fn form_answer(&mut self, text: Option<&str>) -> Result<()> {
        let Some((form_id, step, _, confirming, _, seq)) = self.form_state() else { return Ok(()) };
        let texts = &self.def.texts;
        let typed = text.map(str::trim).unwrap_or_default();
        if confirming {
            // Typed by hand where there are no buttons: the words or their numbers.
            let what = match typed {
                "1" => "send",
                "2" => "edit",
                t if t.eq_ignore_ascii_case(texts.send()) => "send",
                t if t.eq_ignore_ascii_case(texts.edit()) => "edit",
                _ => {
                    self.say(texts.unknown().to_string());
                    self.ask_step().await;
                    return Ok(());
                }
            };
            return self.form_press(&seq.to_string(), "c", what, "").await;
        }
        let s = &self.def.forms[&form_id].steps[step];
        if s.optional && typed.eq_ignore_ascii_case(texts.skip()) {
            return self.store_answer(Value::Null).await;
        }
        let files = self.files();
        match input::read(s, &input::Answer { text, files: &files }) {
            Ok(v) => self.store_answer(v).await,
            Err(hint) => {
                self.say(hint);
                self.ask_step().await;
                Ok(())
            }
        }
    }

    async fn store_answer(&mut self, value: Value) -> Result<()> {
        let Some((form_id, _, _, _, _, _)) = self.form_state() else { return Ok(()) };
        let form = &self.def.forms[&form_id];
        let has_confirm = form.confirm.is_some();
        let total = form.steps.len();
        let mut done = false;
        if let Mode::Form { step, values, confirming, editing, .. } = &mut self.session.mode {
            values.insert(form.steps[*step].field.clone(), value);
            if *editing {
                *editing = false;
                *confirming = true;
            } else if *step + 1 < total {
                *step += 1;
            } else if has_confirm {
                *confirming = true;
            } else {
                done = true;
            }
            if *confirming && !has_confirm {
                done = true;
            }
        }
        if done {
            return self.submit().await;
        }
        self.ask_step().await;
        Ok(())
    }

    async fn submit(&mut self) -> Result<()> {
        let Some((form_id, _, values, _, _, seq)) = self.form_state() else { return Ok(()) };
        let key = match &self.session.mode {
            Mode::Form { key, .. } if !key.is_empty() => key.clone(),
            _ => okno_domain::ids::new_id(),
        };
        let form = self.def.forms[&form_id].clone();
        let ctx = json!({"form": values});
        let mut answer = Value::Null;
        if let Some(r) = &form.submit.request {
            match self.call(r, &ctx, "typing", &form_id, Some(&key)).await {
                // The answer's JSON, if it is JSON, is `answer` for the reply.
                Ok(Called::Body(body, _)) => answer = serde_json::from_slice(&body).unwrap_or(Value::Null),
                Ok(Called::NotFound) => {
                    self.fail(&form_id, "the form's endpoint answered 404");
                    return Ok(());
                }
                Err(why) => {
                    // The answers are kept: "Отправить" can be pressed again later.
                    self.fail(&form_id, &why);
                    return Ok(());
                }
            }
        }
        if let Some(event) = &form.submit.event {
            let key = format!("bot-form:{key}");
            let data = json!({"form": values, "contact": self.ctx(json!({}))["contact"], "answer": answer});
            self.engine.store.accept_event(NewEvent { event_type: event.clone(), key, data, send_at: None }).await?;
            self.engine.wake();
        }
        self.session.mode = Mode::Menu;
        self.session.submitted = Some(seq);
        let text = match &form.submit.reply {
            Some(t) => self.render(t, &json!({"form": values, "answer": answer})).await,
            None => "Готово.".into(),
        };
        self.say(text);
        self.show_menu(self.session.menu.clone()).await;
        Ok(())
    }

    // --- answer-by-Reply feeds ---------------------------------------------------------------

    async fn relay_question(&mut self, feed_id: &str) -> Result<()> {
        let Some(feed) = self.def.feeds.get(feed_id).cloned() else { return self.stale().await };
        let filter = ContactFilter { group: Some(feed.to.group.clone()), ..ContactFilter::default() };
        let ids = self.engine.store.contact_ids(filter).await?;
        let question = self.message.text.clone().unwrap_or_default();
        let who = self.contact.name.clone().unwrap_or_else(|| "Без имени".into());
        let groups = if self.contact.groups.is_empty() {
            String::new()
        } else {
            format!(", {}", self.contact.groups.join(", "))
        };
        let mut delivered = 0;
        for id in ids.iter().filter(|id| **id != self.contact.id) {
            let recipient = self.engine.store.get_contact(id).await?;
            if !recipient.identities.iter().any(|i| i.channel_id == self.channel.id && !i.blocked) {
                continue;
            }
            let open = self.engine.store.open_relays(&self.channel.id, feed_id, id).await?.len() + 1;
            let text = format!(
                "❓ {who}{groups} ({}):\n{question}\n\nБез ответа: {open}. Ответьте на это сообщение (Reply).",
                self.channel.name
            );
            let req = OutboundRequest {
                to: Recipient::Contact(id.clone()),
                channel_id: Some(self.channel.id.clone()),
                text: Some(text),
                buttons: Vec::new(),
                attachment_ids: self.files(),
                idempotency_key: Some(format!("bot-relay:{}:{id}", self.message.id)),
                author: Some("bot".into()),
                reply_to: None,
                options: json!({}),
            };
            let (sent, _) = self.engine.send(req).await?;
            self.engine
                .store
                .add_relay(Relay {
                    id: okno_domain::ids::new_id(),
                    channel_id: self.channel.id.clone(),
                    feed: feed_id.to_string(),
                    question_id: self.message.id.clone(),
                    asker_contact_id: self.contact.id.clone(),
                    asker_channel_id: self.channel.id.clone(),
                    recipient_contact_id: id.clone(),
                    relay_message_id: sent.id,
                    answered_at: None,
                    created_at: now_ms(),
                })
                .await
                .or_else(|e| if e.kind == okno_domain::ErrorKind::Conflict { Ok(()) } else { Err(e) })?;
            delivered += 1;
        }
        if delivered == 0 {
            self.fail(feed_id, &format!("nobody in group `{}` can be reached on this channel", feed.to.group));
            return Ok(());
        }
        let sent = match &feed.sent {
            Some(t) => self.render(t, &json!({})).await,
            None => "Вопрос передан.".into(),
        };
        self.say_with(sent, vec![self.home_row()]);
        Ok(())
    }

    /// A Reply to a relayed question: the answer goes back to whoever asked. Returns whether
    /// the message was such an answer.
    async fn relay_answer(&mut self) -> Result<bool> {
        let Some(reply_to) = self.message.reply_to.clone() else { return Ok(false) };
        let Some(relay) = self.engine.store.relay_by_message(&reply_to).await? else { return Ok(false) };
        // Only the person the question went to answers it (their message follows merges).
        let sent_to = self.engine.store.get_message(&relay.relay_message_id).await?.contact_id;
        if sent_to != self.contact.id {
            return Ok(false);
        }
        let text = self.message.text.clone().unwrap_or_default();
        let template = self.def.feeds.get(&relay.feed).and_then(|f| f.answer.clone());
        let body = match template {
            Some(t) => self.render(&t, &json!({"text": text})).await,
            None => format!("Ответ:\n{text}"),
        };
        let question = self.engine.store.get_message(&relay.question_id).await?;
        // The question's message knows its contact even after contacts were merged.
        let req = OutboundRequest {
            to: Recipient::Contact(question.contact_id.clone()),
            channel_id: Some(relay.asker_channel_id.clone()),
            text: Some(body),
            buttons: Vec::new(),
            attachment_ids: self.files(),
            idempotency_key: Some(format!("bot-answer:{}", self.message.id)),
            author: Some(format!("bot-feed:{}", relay.feed)),
            reply_to: Some(question.id),
            options: json!({}),
        };
        self.engine.send(req).await?;
        self.engine.store.answer_question(&relay.question_id).await?;
        let left = self.engine.store.open_relays(&self.channel.id, &relay.feed, &self.contact.id).await?.len();
        self.say(format!("Ответ отправлен. Без ответа: {left}."));
        Ok(true)
    }

    async fn unanswered(&mut self) -> Result<()> {
        let mut lines = Vec::new();
        for feed in self.def.feeds.keys() {
            for r in self.engine.store.open_relays(&self.channel.id, feed, &self.contact.id).await? {
                // A question whose asker was merged into another contact still lists.
                let q = self.engine.store.get_message(&r.question_id).await.ok().and_then(|m| m.text);
                let who = match self.engine.store.get_contact(&r.asker_contact_id).await {
                    Ok(c) => c.name.unwrap_or_default(),
                    Err(_) => "—".into(),
                };
                lines.push(format!("{}. {who}: {}", lines.len() + 1, q.unwrap_or_default()));
            }
        }
        let text = if lines.is_empty() {
            "Неотвеченных вопросов нет.".to_string()
        } else {
            format!("Без ответа: {}\n{}", lines.len(), lines.join("\n"))
        };
        self.say(text);
        Ok(())
    }

    /// Sends the replies in order and saves the session.
    async fn finish(self, user_id: &str, save: bool) -> Result<()> {
        if save {
            let mut session = self.session.clone();
            // An operator may have taken the conversation while this turn ran (a slow lookup):
            // the bot never clears a handoff itself, so the stored one stands.
            if let Some((stored, _)) = self.engine.store.bot_session(&self.channel.id, user_id).await? {
                session.handed_off |= serde_json::from_value::<Session>(stored).is_ok_and(|s| s.handed_off);
            }
            self.engine.store.save_bot_session(&self.channel.id, user_id, to_value(&session)).await?;
        }
        for (n, out) in self.out.into_iter().enumerate() {
            let req = OutboundRequest {
                to: Recipient::Conversation(self.conversation_id.clone()),
                channel_id: Some(self.channel.id.clone()),
                text: out.text,
                buttons: out.buttons,
                attachment_ids: out.files,
                idempotency_key: Some(format!("bot:{}:{n}", self.message.id)),
                author: Some("bot".into()),
                reply_to: None,
                options: json!({}),
            };
            if let Err(e) = self.engine.send(req).await {
                tracing::warn!(bot = %self.def.name, error = %e, "a bot reply could not be queued");
            }
        }
        Ok(())
    }
}

/// What the business system answered: a body with its type, or 404.
enum Called {
    Body(bytes::Bytes, String),
    NotFound,
}

/// Reads a dotted path (`data.items`) from a JSON value; an empty path is the value itself.
fn path<'a>(v: &'a Value, p: &str) -> Option<&'a Value> {
    if p.trim().is_empty() {
        return Some(v);
    }
    p.split('.').try_fold(v, |v, key| match key.parse::<usize>() {
        Ok(n) => v.get(n),
        Err(_) => v.get(key),
    })
}

/// The answers as lines, for a form without its own `confirm` text.
fn summary(form: &Form, values: &Map<String, Value>) -> String {
    let mut out = String::from("Проверьте:");
    for s in &form.steps {
        let v = match values.get(&s.field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "—".into(),
            Some(v) => v.to_string(),
        };
        let _ = write!(out, "\n{}: {v}", s.field_label());
    }
    out
}

impl def::Step {
    /// How a field is named on buttons: its question, shortened.
    fn field_label(&self) -> String {
        let q = self.ask.lines().next().unwrap_or(&self.field).trim_end_matches(['?', ':', ' ']);
        let short: String = q.chars().take(40).collect();
        if short.is_empty() {
            self.field.clone()
        } else {
            short
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_tags() {
        let v = json!({"data": {"items": [{"a": 1}, {"a": 2}]}});
        assert_eq!(path(&v, "data.items.1.a"), Some(&json!(2)));
        assert_eq!(path(&v, ""), Some(&v));
        assert_eq!(path(&v, "data.nothing"), None);
        assert_eq!(tag("Отчёты"), tag("Отчёты"));
        assert_ne!(tag("Отчёты"), tag("Отчеты"));
        assert_eq!(tag("x").len(), 6);
    }
}
