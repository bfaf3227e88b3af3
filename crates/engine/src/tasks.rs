//! Tasks posted to a Telegram group that exactly one executor can take.
//!
//! ```text
//!   POST /api/v1/tasks ─► sendMessage to the group: title, text, [Взять] [Подробнее]
//!   [Взять]      ─► claim in the store (one conditional UPDATE decides, task.claimed written
//!                   with it) ─► the press answered: "yours" / "taken by …" / "not allowed"
//!                   └ the winner only: the group message edited (who took it, no buttons),
//!                     the winner told privately — or in the group by mention when the bot
//!                     may not write to them
//!   [Подробнее]  ─► private_text sent privately; a person who never started the bot gets
//!                   the link t.me/<bot>?start=task-<id>, and `/start task-<id>` sends it
//!   [Отказаться] ─► (the executor, privately) the task is open again, the buttons come back
//! ```
//! The group message is edited from the stored state; `version`/`shown_version` let a later
//! press redo an edit a crash cut off.

use std::time::Duration;

use okno_channel_telegram::api::{ApiError, BotApi, SentMessage};
use okno_channel_telegram::format::{escape_html, utf16_len};
use okno_domain::ids::new_id;
use okno_domain::model::{Channel, ChannelKind};
use okno_domain::time::now_ms;
use okno_domain::{Error, ErrorKind, Result};
use okno_store::{ClaimOutcome, Claimant, Executor, NewAudit, NewTask, Task};
use serde_json::{json, Value};

use crate::worker::Outcome;
use crate::Engine;

/// Button data of "take".
const TAKE: &str = "task:take:";
/// Button data of "details".
const DETAILS: &str = "task:info:";
/// Button data of "give it back" (in the executor's private chat).
const DROP: &str = "task:drop:";
/// The deep-link parameter that asks for a task's details: `/start task-<id>`.
const START: &str = "task-";
/// A claim whose group message still shows the old state after this long is shown again on
/// the next press (the edit was cut off).
const REDO_EDIT_AFTER_MS: i64 = 30_000;
/// Longest title and text, in UTF-16 units, so the whole message stays within Telegram's 4096.
pub const TITLE_LIMIT: usize = 256;
pub const TEXT_LIMIT: usize = 3000;
pub const PRIVATE_TEXT_LIMIT: usize = 3500;

/// The labels of the task's buttons, as the people in the chat see them.
const TAKE_LABEL: &str = "Взять";
const DETAILS_LABEL: &str = "Подробнее";
const DROP_LABEL: &str = "Отказаться";

/// The label of a task button by its data (the group message is okno's own, not a stored
/// message, so a press cannot find its label there).
pub fn button_label(data: &str) -> Option<&'static str> {
    [(TAKE, TAKE_LABEL), (DETAILS, DETAILS_LABEL), (DROP, DROP_LABEL)]
        .into_iter()
        .find(|(prefix, _)| data.starts_with(prefix))
        .map(|(_, label)| label)
}

/// Whether a button's data belongs to a task.
pub fn is_task_data(data: &str) -> bool {
    data.starts_with("task:")
}

/// The task a `/start task-<id>` asks for.
pub(crate) fn start_task(text: &str) -> Option<String> {
    crate::receiving::start_payload(text)
        .and_then(|p| p.strip_prefix(START))
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

/// `POST /api/v1/tasks`, checked.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    pub channel_id: String,
    pub chat_id: String,
    pub title: String,
    pub text: String,
    pub private_text: Option<String>,
    pub data: Value,
    pub group: Option<String>,
    /// Post it again when nobody has taken it this long (ms) after it was posted.
    pub reoffer_after: Option<i64>,
    /// At most this many times (default 3).
    pub reoffer_times: Option<i64>,
}

impl TaskRequest {
    /// Trims and checks the fields.
    pub fn validate(mut self) -> Result<Self> {
        self.title = self.title.trim().to_string();
        self.chat_id = self.chat_id.trim().to_string();
        self.group = self.group.map(|g| g.trim().to_string());
        self.private_text = self.private_text.filter(|p| !p.trim().is_empty());
        let bad = |m: &str| Err(Error::invalid("invalid_task", m.to_string()));
        if self.title.is_empty() || utf16_len(&self.title) > TITLE_LIMIT {
            return bad("`title` is 1..256 characters");
        }
        if utf16_len(&self.text) > TEXT_LIMIT {
            return bad("`text` is at most 3000 characters");
        }
        if self.private_text.as_deref().is_some_and(|p| utf16_len(p) > PRIVATE_TEXT_LIMIT) {
            return bad("`private_text` is at most 3500 characters");
        }
        if self.chat_id.is_empty() {
            return bad("`chat_id` names the group chat (e.g. -1001234567890)");
        }
        if self.group.as_deref().is_some_and(str::is_empty) {
            return bad("`group` must not be empty");
        }
        if self.reoffer_after.is_some_and(|ms| !(1_000..=30 * 86_400_000).contains(&ms)) {
            return bad("`reoffer_after` is between 1s and 30d");
        }
        if self.reoffer_times.is_some_and(|n| !(1..=20).contains(&n)) {
            return bad("`reoffer_times` is 1..20");
        }
        Ok(self)
    }
}

/// A Bot API call; a short flood wait (429 with `retry_after` up to 10 s) is waited out.
async fn call<T: serde::de::DeserializeOwned>(api: &BotApi, method: &str, params: Value) -> Result<T, ApiError> {
    let mut waits = 0;
    loop {
        match api.call(method, params.clone(), Some(Duration::from_secs(20))).await {
            Err(ApiError::Telegram { code: 429, retry_after, .. }) if retry_after.unwrap_or(1) <= 10 && waits < 5 => {
                waits += 1;
                tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1).max(1))).await;
            }
            other => return other,
        }
    }
}

fn refused(what: &str, e: ApiError) -> Error {
    match e {
        ApiError::Telegram { code, description, .. } if code != 429 && code < 500 => {
            Error::unprocessable("telegram_refused", format!("Telegram refused {what}: {description}"))
        }
        other => Error::unavailable("telegram_unavailable", format!("Telegram did not take {what}: {other}")),
    }
}

/// Telegram refuses to write to a person who never started the bot (or blocked it).
fn cannot_write(e: &ApiError) -> bool {
    matches!(e, ApiError::Telegram { code: 403, .. })
}

/// A mention of the executor that works without a username.
fn mention(e: &Executor) -> String {
    let name = if e.name.trim().is_empty() { "исполнитель" } else { e.name.as_str() };
    let mut out = format!("<a href=\"tg://user?id={}\">{}</a>", escape_html(&e.user_id), escape_html(name));
    if let Some(u) = &e.username {
        out.push_str(&format!(" (@{})", escape_html(u)));
    }
    out
}

/// The group message for the task's current state.
fn group_text(task: &Task) -> String {
    let mut out = format!("<b>{}</b>", escape_html(&task.title));
    if !task.text.trim().is_empty() {
        out.push_str(&format!("\n\n{}", escape_html(&task.text)));
    }
    if let Some(e) = &task.claimed_by {
        out.push_str(&format!("\n\n✅ Задачу взял(а): {}", mention(e)));
    }
    out
}

/// The buttons of an open task (none once it is taken).
fn group_buttons(task: &Task) -> Option<Value> {
    if !task.is_open() {
        return None;
    }
    let mut row = vec![json!({"text": TAKE_LABEL, "callback_data": format!("{TAKE}{}", task.id)})];
    if task.private_text.is_some() {
        row.push(json!({"text": DETAILS_LABEL, "callback_data": format!("{DETAILS}{}", task.id)}));
    }
    Some(json!({"inline_keyboard": [row]}))
}

fn taken_by(task: &Task) -> String {
    match &task.claimed_by {
        Some(e) => {
            let who = match &e.username {
                Some(u) => format!("{} (@{u})", e.name),
                None => e.name.clone(),
            };
            format!("Задачу уже взял(а) {who}.")
        }
        None => "Задачу уже взяли.".into(),
    }
}

fn not_allowed(task: &Task) -> String {
    format!(
        "Эту задачу могут взять только участники группы «{}». Если вы в ней, свяжите аккаунт с ботом.",
        task.group.as_deref().unwrap_or_default()
    )
}

/// At most 200 characters, as answerCallbackQuery takes.
fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The bot's private-chat link that asks for a task's details.
fn start_link(channel: &Channel, task_id: &str) -> Option<String> {
    let bot = channel.info.get("username").and_then(Value::as_str).filter(|u| !u.is_empty())?;
    Some(format!("https://t.me/{bot}?start={START}{task_id}"))
}

impl Engine {
    fn task_api(&self, channel: &Channel) -> Result<BotApi> {
        if channel.kind != ChannelKind::Telegram {
            return Err(Error::unprocessable(
                "unsupported_channel",
                format!("tasks are posted to Telegram groups; channel {} is a {} channel", channel.id, channel.kind),
            ));
        }
        let cfg: okno_channel_telegram::TelegramConfig = okno_channel::config_of(channel)?;
        Ok(BotApi::new(self.http.clone(), &cfg.api_base, &cfg.token))
    }

    /// Posts a task to its group with "take" (and "details") and stores it.
    /// Posted `by` an operator (`operator:<login>`), the audit line `task.create` is written
    /// in the transaction that stores the task.
    pub async fn create_task(&self, req: TaskRequest, by: Option<&str>) -> Result<Task> {
        let req = req.validate()?;
        let channel = self.channel(&req.channel_id).await?;
        let api = self.task_api(&channel)?;
        let draft = Task {
            id: new_id(),
            channel_id: channel.id.clone(),
            chat_id: req.chat_id.clone(),
            message_id: None,
            title: req.title,
            text: req.text,
            private_text: req.private_text,
            data: req.data,
            group: req.group,
            status: "open".into(),
            claimed_by: None,
            claimed_at: None,
            created_at: now_ms(),
            updated_at: now_ms(),
            version: 0,
            shown_version: 0,
            reoffer_after: None,
            reoffers: 0,
            reoffer_times: 0,
        };
        let mut params = json!({"chat_id": req.chat_id, "text": group_text(&draft), "parse_mode": "HTML"});
        if let Some(b) = group_buttons(&draft) {
            params["reply_markup"] = b;
        }
        let sent: SentMessage = call(&api, "sendMessage", params).await.map_err(|e| refused("the task", e))?;
        let audit = by.map(|actor| NewAudit {
            actor: actor.to_string(),
            action: "task.create".into(),
            target: draft.id.clone(),
            detail: json!({"title": draft.title, "channel_id": draft.channel_id, "chat_id": sent.chat.id.to_string()}),
        });
        let stored = self
            .store
            .create_task(
                NewTask {
                    id: draft.id,
                    channel_id: draft.channel_id,
                    // The numeric id: presses name the chat by it.
                    chat_id: sent.chat.id.to_string(),
                    message_id: Some(sent.message_id.to_string()),
                    title: draft.title,
                    text: draft.text,
                    private_text: draft.private_text,
                    data: draft.data,
                    group: draft.group,
                    reoffer_after: req.reoffer_after,
                    reoffer_times: if req.reoffer_after.is_some() { req.reoffer_times.unwrap_or(3) } else { 0 },
                },
                audit,
            )
            .await;
        if stored.is_err() {
            // Nobody could take a task okno does not know: take the message down again.
            let params = json!({"chat_id": sent.chat.id, "message_id": sent.message_id});
            let _ = call::<Value>(&api, "deleteMessage", params).await;
        }
        stored
    }

    /// Posts an open task nobody has taken again at the bottom of its group chat; the old post
    /// loses its buttons and points down to the new one. `job_ref` is the task as the job saw it
    /// (`okno_store::reoffer_ref`): a task claimed, given back or re-posted since is left alone.
    pub(crate) async fn reoffer_task(&self, job_ref: &str) -> Result<Outcome> {
        let id = job_ref.split(':').next().unwrap_or_default();
        let task = match self.store.get_task(id).await {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        if !task.is_open() || okno_store::reoffer_ref(&task) != job_ref {
            return Ok(Outcome::Done);
        }
        let channel = self.channel(&task.channel_id).await?;
        let api = self.task_api(&channel)?;
        let mut params = json!({"chat_id": task.chat_id, "text": group_text(&task), "parse_mode": "HTML"});
        if let Some(b) = group_buttons(&task) {
            params["reply_markup"] = b;
        }
        let sent: SentMessage = match call(&api, "sendMessage", params).await {
            Ok(s) => s,
            Err(ApiError::Telegram { code, description, .. }) if code != 429 && code < 500 => {
                tracing::warn!(task = %task.id, %description, "Telegram refused to post the task again");
                return Ok(Outcome::Failed);
            }
            Err(e) => return Ok(Outcome::Retry(format!("posting the task again: {e}"), None)),
        };
        let old = task.message_id.as_deref().and_then(|m| m.parse::<i64>().ok());
        match self.store.record_reoffer(job_ref, &sent.message_id.to_string()).await? {
            Some(_) => {
                if let Some(old) = old {
                    let text = format!("{}\n\n<i>⬇️ Задача опубликована заново ниже.</i>", group_text(&task));
                    let params =
                        json!({"chat_id": task.chat_id, "message_id": old, "text": text, "parse_mode": "HTML"});
                    if let Err(e) = call::<Value>(&api, "editMessageText", params).await {
                        tracing::warn!(task = %task.id, error = %e, "the old post of a re-posted task was not edited");
                    }
                }
            }
            None => {
                // Taken on the old post in the meantime: the new post is not needed.
                let params = json!({"chat_id": sent.chat.id, "message_id": sent.message_id});
                let _ = call::<Value>(&api, "deleteMessage", params).await;
            }
        }
        Ok(Outcome::Done)
    }

    /// Opens a taken task again (for its executor) and puts the buttons back in the group.
    pub async fn release_task(&self, id: &str) -> Result<Task> {
        let task = self.store.release_task(id, None).await?;
        let channel = self.channel(&task.channel_id).await?;
        self.show_task(&channel, &task.id).await;
        self.store.get_task(id).await
    }

    /// Edits the group message to show the task as stored now.
    async fn show_task(&self, channel: &Channel, id: &str) {
        let (Ok(api), Ok(task)) = (self.task_api(channel), self.store.get_task(id).await) else { return };
        let Some(message_id) = task.message_id.as_deref().and_then(|m| m.parse::<i64>().ok()) else { return };
        let mut params =
            json!({"chat_id": task.chat_id, "message_id": message_id, "text": group_text(&task), "parse_mode": "HTML"});
        if let Some(b) = group_buttons(&task) {
            params["reply_markup"] = b;
        }
        match call::<Value>(&api, "editMessageText", params).await {
            Ok(_) => {}
            Err(ApiError::Telegram { description, .. }) if description.contains("message is not modified") => {}
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "editing the task's group message failed");
                return;
            }
        }
        if let Err(e) = self.store.mark_task_shown(&task.id, task.version).await {
            tracing::warn!(task = %task.id, error = %e, "recording the shown task state failed");
        }
    }

    /// Redoes the group edit of a change made long enough ago that its own edit must have been
    /// cut off.
    fn show_if_stale(&self, channel: &Channel, task: &Task) {
        if task.version == task.shown_version || now_ms() - task.updated_at < REDO_EDIT_AFTER_MS {
            return;
        }
        self.after_press(channel, &task.id, None);
    }

    /// Runs the group edit (and the winner's message) after the press is answered.
    fn after_press(&self, channel: &Channel, id: &str, winner: Option<Task>) {
        let Some(engine) = self.self_ref() else { return };
        let (channel, id) = (channel.clone(), id.to_string());
        tokio::spawn(async move {
            engine.show_task(&channel, &id).await;
            if let Some(task) = winner {
                engine.tell_winner(&channel, &task).await;
            }
        });
    }

    /// Tells the executor the task is theirs, privately with the details and a way to give it
    /// back; in the group by mention when the bot may not write to them.
    async fn tell_winner(&self, channel: &Channel, task: &Task) {
        let (Ok(api), Some(e)) = (self.task_api(channel), task.claimed_by.as_ref()) else { return };
        let private = json!({
            "chat_id": e.user_id,
            "text": private_text(task, true),
            "parse_mode": "HTML",
            "reply_markup": {"inline_keyboard": [[{"text": "Отказаться", "callback_data": format!("{DROP}{}", task.id)}]]},
        });
        let err = match call::<Value>(&api, "sendMessage", private).await {
            Ok(_) => return,
            Err(err) => err,
        };
        if !cannot_write(&err) {
            tracing::warn!(task = %task.id, error = %err, "telling the executor failed");
            return;
        }
        let mut public = json!({
            "chat_id": task.chat_id,
            "text": format!(
                "{}, задача «{}» ваша. Подробности бот пришлёт в личные сообщения — откройте чат с ним.",
                mention(e),
                escape_html(&task.title)
            ),
            "parse_mode": "HTML",
        });
        if let Some(m) = task.message_id.as_deref().and_then(|m| m.parse::<i64>().ok()) {
            public["reply_parameters"] = json!({"message_id": m, "allow_sending_without_reply": true});
        }
        if let Some(link) = start_link(channel, &task.id) {
            public["reply_markup"] = json!({"inline_keyboard": [[{"text": "Открыть чат с ботом", "url": link}]]});
        }
        if let Err(err) = call::<Value>(&api, "sendMessage", public).await {
            tracing::warn!(task = %task.id, error = %err, "telling the executor in the group failed");
        }
    }

    /// A press of a task button: claim, details or give back. The press is answered here
    /// with what happened (instead of the plain answer other buttons get).
    pub(crate) async fn task_press(&self, channel: &Channel, q: &Press) -> Result<Option<String>> {
        let data = q.data.as_str();
        let who = q.who.clone();
        let api = self.task_api(channel)?;
        let answer = if let Some(id) = data.strip_prefix(TAKE) {
            self.press_take(channel, id, who).await
        } else if let Some(id) = data.strip_prefix(DETAILS) {
            self.press_details(channel, &api, id, &who).await
        } else if let Some(id) = data.strip_prefix(DROP) {
            self.press_drop(channel, &api, id, &who, q).await
        } else {
            Ok(Answer::alert("Эта кнопка больше не работает."))
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) if e.is_not_found() => Answer::alert("Задача не найдена: возможно, её уже сняли."),
            Err(e) => {
                // The store is unavailable: the press is answered, and Telegram (webhook) or the
                // poller delivers it again.
                answer_callback(&api, &q.id, Answer::note("Не получилось, нажмите ещё раз через минуту.")).await;
                return Err(e);
            }
        };
        answer_callback(&api, &q.id, answer).await;
        Ok(None)
    }

    async fn press_take(&self, channel: &Channel, id: &str, who: Claimant) -> Result<Answer> {
        Ok(match self.store.claim_task(id, who).await? {
            ClaimOutcome::Won(task) => {
                self.wake();
                self.after_press(channel, &task.id, Some(task.clone()));
                Answer::alert(&format!("Задача «{}» ваша!", task.title))
            }
            ClaimOutcome::AlreadyYours(task) => {
                self.show_if_stale(channel, &task);
                Answer::note("Эта задача уже ваша.")
            }
            ClaimOutcome::Taken(task) => {
                self.show_if_stale(channel, &task);
                Answer::alert(&taken_by(&task))
            }
            ClaimOutcome::NotAllowed(task) => Answer::alert(&not_allowed(&task)),
        })
    }

    async fn press_details(&self, channel: &Channel, api: &BotApi, id: &str, who: &Claimant) -> Result<Answer> {
        let task = self.store.get_task(id).await?;
        if let Some(refusal) = self.details_refusal(&task, &who.user_id).await? {
            return Ok(Answer::alert(&refusal));
        }
        let mine = task.claimed_by.as_ref().is_some_and(|e| e.user_id == who.user_id);
        let params = details_message(&task, &who.user_id, mine);
        Ok(match call::<Value>(api, "sendMessage", params).await {
            Ok(_) => Answer::note("Подробности — в личных сообщениях с ботом."),
            Err(e) if cannot_write(&e) => match start_link(channel, &task.id) {
                Some(url) => Answer::url(url),
                None => Answer::alert("Напишите боту в личные сообщения, и он пришлёт подробности."),
            },
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "sending the task's details failed");
                Answer::alert("Не получилось отправить подробности, попробуйте позже.")
            }
        })
    }

    /// Why a person may not see a task's details, if they may not.
    async fn details_refusal(&self, task: &Task, user_id: &str) -> Result<Option<String>> {
        if task.claimed_by.as_ref().is_some_and(|e| e.user_id != user_id) {
            return Ok(Some(taken_by(task)));
        }
        if !self.store.task_access(&task.id, user_id).await?.allowed {
            return Ok(Some(not_allowed(task)));
        }
        Ok(None)
    }

    async fn press_drop(&self, channel: &Channel, api: &BotApi, id: &str, who: &Claimant, q: &Press) -> Result<Answer> {
        match self.store.release_task(id, Some(&who.user_id)).await {
            Ok(task) => {
                if let Some((chat, message)) = q.origin {
                    // The button goes with the task.
                    let params = json!({"chat_id": chat, "message_id": message});
                    let _ = call::<Value>(api, "editMessageReplyMarkup", params).await;
                }
                self.after_press(channel, &task.id, None);
                Ok(Answer::note("Вы отказались от задачи, она снова доступна в группе."))
            }
            Err(e) if e.kind == ErrorKind::Forbidden => Ok(Answer::alert("Эта задача не ваша.")),
            Err(e) if e.kind == ErrorKind::Conflict => Ok(Answer::note("Задача уже снова открыта.")),
            Err(e) => Err(e),
        }
    }

    /// `/start task-<id>` from a private chat: the person followed the link a press of
    /// "details" gave them, or the one their win was announced with.
    pub(crate) async fn task_start(&self, channel: &Channel, user_id: &str, task_id: &str) {
        if let Err(e) = self.send_task_details(channel, user_id, task_id).await {
            tracing::warn!(task = task_id, error = %e, "answering /start for a task failed");
        }
    }

    async fn send_task_details(&self, channel: &Channel, user_id: &str, task_id: &str) -> Result<()> {
        let api = self.task_api(channel)?;
        let text = match self.store.get_task(task_id).await {
            Ok(task) => match self.details_refusal(&task, user_id).await? {
                Some(refusal) => refusal,
                None => {
                    let mine = task.claimed_by.as_ref().is_some_and(|e| e.user_id == user_id);
                    let params = details_message(&task, user_id, mine);
                    call::<Value>(&api, "sendMessage", params).await.map_err(|e| refused("the details", e))?;
                    return Ok(());
                }
            },
            Err(e) if e.is_not_found() => "Задача не найдена: возможно, её уже сняли.".into(),
            Err(e) => return Err(e),
        };
        call::<Value>(&api, "sendMessage", json!({"chat_id": user_id, "text": text}))
            .await
            .map_err(|e| refused("the answer", e))?;
        Ok(())
    }
}

/// The private message with a task's details: "take" while it is open, "give back" for its
/// executor.
fn details_message(task: &Task, user_id: &str, mine: bool) -> Value {
    let mut params = json!({"chat_id": user_id, "text": private_text(task, mine), "parse_mode": "HTML"});
    let button = if mine {
        Some(json!({"text": DROP_LABEL, "callback_data": format!("{DROP}{}", task.id)}))
    } else if task.is_open() {
        Some(json!({"text": TAKE_LABEL, "callback_data": format!("{TAKE}{}", task.id)}))
    } else {
        None
    };
    if let Some(b) = button {
        params["reply_markup"] = json!({"inline_keyboard": [[b]]});
    }
    params
}

fn private_text(task: &Task, mine: bool) -> String {
    let mut out = if mine {
        format!("Задача «<b>{}</b>» ваша.", escape_html(&task.title))
    } else {
        format!("<b>{}</b>", escape_html(&task.title))
    };
    if !task.text.trim().is_empty() {
        out.push_str(&format!("\n\n{}", escape_html(&task.text)));
    }
    if let Some(p) = &task.private_text {
        out.push_str(&format!("\n\n{}", escape_html(p)));
    }
    out
}

/// How a press is answered.
struct Answer {
    text: Option<String>,
    show_alert: bool,
    url: Option<String>,
}

impl Answer {
    fn note(text: &str) -> Self {
        Self { text: Some(short(text)), show_alert: false, url: None }
    }
    fn alert(text: &str) -> Self {
        Self { text: Some(short(text)), show_alert: true, url: None }
    }
    fn url(url: String) -> Self {
        Self { text: None, show_alert: false, url: Some(url) }
    }
}

/// A press of a task's button, as the channel reported it.
pub(crate) struct Press {
    pub id: String,
    pub data: String,
    pub who: Claimant,
    /// The chat and message the button is on.
    pub origin: Option<(i64, i64)>,
}

impl Press {
    /// The press a message records, when it is one on a task's button.
    pub(crate) fn of(press_id: Option<&str>, msg: &okno_channel::InboundMessage) -> Option<Press> {
        let data = msg.button_data.as_deref().filter(|d| is_task_data(d))?;
        let person = msg.member.as_ref().unwrap_or(&msg.sender);
        let origin = msg.reply_to_external.as_deref().and_then(|e| {
            let (chat, message) = e.split_once(':')?;
            Some((chat.parse().ok()?, message.parse().ok()?))
        });
        Some(Press {
            id: press_id?.to_string(),
            data: data.to_string(),
            who: Claimant {
                user_id: person.user_id.clone(),
                name: person.display_name.clone().unwrap_or_default(),
                username: person.username.clone(),
            },
            origin,
        })
    }
}

async fn answer_callback(api: &BotApi, id: &str, a: Answer) {
    let mut params = json!({"callback_query_id": id});
    if let Some(t) = a.text {
        params["text"] = t.into();
    }
    if a.show_alert {
        params["show_alert"] = true.into();
    }
    if let Some(u) = a.url {
        params["url"] = u.into();
    }
    if let Err(e) = api.call::<Value>("answerCallbackQuery", params, Some(Duration::from_secs(5))).await {
        tracing::warn!(error = %e, "answerCallbackQuery failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_links_name_the_task() {
        assert_eq!(start_task("/start task-0192abc").as_deref(), Some("0192abc"));
        assert_eq!(start_task("/start@hub_bot task-1").as_deref(), Some("1"));
        assert_eq!(start_task("/start task-"), None);
        assert_eq!(start_task("/start AB12CD34"), None);
        assert_eq!(start_task("task-1"), None);
        // Button data stays within Telegram's 64 bytes.
        let id = new_id();
        assert!(format!("{TAKE}{id}").len() <= 64 && format!("{DETAILS}{id}").len() <= 64);
        assert!(format!("{START}{id}").len() <= 64, "and the start parameter within 64 characters");
    }

    #[test]
    fn requests_are_checked() {
        let ok = TaskRequest {
            channel_id: "c".into(),
            chat_id: " -100 ".into(),
            title: " Доставка ".into(),
            text: String::new(),
            private_text: Some("  ".into()),
            data: json!({}),
            group: None,
            reoffer_after: None,
            reoffer_times: None,
        };
        let v = ok.clone().validate().unwrap();
        assert_eq!((v.title.as_str(), v.chat_id.as_str(), v.private_text), ("Доставка", "-100", None));
        let no_title = TaskRequest { title: " ".into(), ..ok.clone() };
        let too_soon = TaskRequest { reoffer_after: Some(10), ..ok.clone() };
        assert_eq!(too_soon.validate().unwrap_err().code, "invalid_task");
        let too_often = TaskRequest { reoffer_after: Some(60_000), reoffer_times: Some(21), ..ok.clone() };
        assert_eq!(too_often.validate().unwrap_err().code, "invalid_task");
        assert_eq!(no_title.validate().unwrap_err().code, "invalid_task");
        let long = TaskRequest { text: "я".repeat(3001), ..ok.clone() };
        assert!(long.validate().is_err());
        let no_chat = TaskRequest { chat_id: "".into(), ..ok };
        assert!(no_chat.validate().is_err());
    }

    #[test]
    fn the_group_message_names_the_executor_safely() {
        let mut task = Task {
            id: "t1".into(),
            channel_id: "c".into(),
            chat_id: "-1".into(),
            message_id: Some("5".into()),
            title: "Замер <окна>".into(),
            text: "Адрес & время".into(),
            private_text: Some("+7999".into()),
            data: json!({}),
            group: None,
            status: "open".into(),
            claimed_by: None,
            claimed_at: None,
            created_at: 0,
            updated_at: 0,
            version: 0,
            shown_version: 0,
            reoffer_after: None,
            reoffers: 0,
            reoffer_times: 0,
        };
        assert_eq!(group_text(&task), "<b>Замер &lt;окна&gt;</b>\n\nАдрес &amp; время");
        let buttons = group_buttons(&task).unwrap();
        assert_eq!(buttons["inline_keyboard"][0][0]["callback_data"], "task:take:t1");
        assert_eq!(buttons["inline_keyboard"][0][1]["callback_data"], "task:info:t1");
        // A press is named by the label its button showed.
        for n in 0..2 {
            let b = &buttons["inline_keyboard"][0][n];
            assert_eq!(button_label(b["callback_data"].as_str().unwrap()), b["text"].as_str());
        }
        let mine = details_message(&task, "42", true);
        let drop = &mine["reply_markup"]["inline_keyboard"][0][0];
        assert_eq!(button_label(drop["callback_data"].as_str().unwrap()), Some("Отказаться"));
        assert_eq!(button_label("bot:item:main:0:abc"), None);
        task.status = "claimed".into();
        task.claimed_by = Some(Executor {
            user_id: "42".into(),
            name: "Иван <Петров>".into(),
            username: Some("ivan".into()),
            contact_id: None,
        });
        assert!(group_buttons(&task).is_none());
        assert!(group_text(&task)
            .ends_with("✅ Задачу взял(а): <a href=\"tg://user?id=42\">Иван &lt;Петров&gt;</a> (@ivan)"));
        assert_eq!(taken_by(&task), "Задачу уже взял(а) Иван <Петров> (@ivan).");
    }
}
