//! Tasks posted to a group chat that exactly one executor can take — on any platform whose
//! channels post, edit and carry buttons in groups ([`okno_channel::Capabilities::posts`]).
//!
//! ```text
//!   POST /api/v1/tasks ─► a post to the group: title, text, [Взять] [Подробнее]
//!   [Взять]      ─► claim in the store (one conditional UPDATE decides, task.claimed written
//!                   with it) ─► the press answered: "yours" / "taken by …" / "not allowed"
//!                   └ the winner only: the group post edited (who took it, no buttons),
//!                     the winner told privately — or in the group by mention when the bot
//!                     may not write to them
//!   [Подробнее]  ─► private_text sent privately; a person who never started the bot gets
//!                   the channel's deep link for `task-<id>`, and `/start task-<id>` sends it
//!   [Отказаться] ─► (the executor, privately) the task is open again, the buttons come back
//! ```
//! The group post is edited from the stored state; `version`/`shown_version` let a later
//! press redo an edit a crash cut off. Posts are written as [`Post`]s: each platform renders
//! the bold title and the mention in its own markup.

use okno_channel::{IdentityFlag, Post, Posted, PressAnswer, SendError, SharedAdapter};
use okno_domain::ids::{new_id, ChannelId};
use okno_domain::model::{Button, Channel, Keyboard};
use okno_domain::time::now_ms;
use okno_domain::{Error, ErrorKind, Result};
use okno_store::{ClaimOutcome, Claimant, Executor, NewAudit, NewTask, Task};
use serde_json::Value;

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
/// A claim whose group post still shows the old state after this long is shown again on
/// the next press (the edit was cut off).
const REDO_EDIT_AFTER_MS: i64 = 30_000;
/// Longest title and text, in UTF-16 units (the strictest count a platform uses), so the
/// whole post stays within a message's 4096.
pub const TITLE_LIMIT: usize = 256;
pub const TEXT_LIMIT: usize = 3000;
pub const PRIVATE_TEXT_LIMIT: usize = 3500;

/// The labels of the task's buttons, as the people in the chat see them.
const TAKE_LABEL: &str = "Взять";
const DETAILS_LABEL: &str = "Подробнее";
const DROP_LABEL: &str = "Отказаться";

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}
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
    okno_store::start_payload(text).and_then(|p| p.strip_prefix(START)).filter(|id| !id.is_empty()).map(str::to_string)
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

/// A person the platform will not let the bot write to first (they never opened a chat with
/// it, or blocked it).
fn cannot_write(e: &SendError) -> bool {
    matches!(e, SendError::Permanent { flag: Some(IdentityFlag::Blocked), .. })
}

fn button(text: &str, data: String) -> Button {
    Button { text: text.into(), data: Some(data), url: None }
}

/// A mention of the executor that works without a username.
fn mention(post: Post, e: &Executor) -> Post {
    let name = if e.name.trim().is_empty() { "исполнитель" } else { e.name.as_str() };
    let post = post.mention(&e.user_id, name);
    match &e.username {
        Some(u) => post.plain(format!(" (@{u})")),
        None => post,
    }
}

/// The title in bold and the text under it.
fn headed(post: Post, title: &str, text: &str) -> Post {
    let post = post.bold(title);
    if text.trim().is_empty() {
        post
    } else {
        post.plain(format!("\n\n{text}"))
    }
}

/// The group post for the task's current state.
fn group_post(task: &Task) -> Post {
    let mut post = headed(Post::to(&task.chat_id), &task.title, &task.text);
    if let Some(e) = &task.claimed_by {
        post = mention(post.plain("\n\n✅ Задачу взял(а): "), e);
    }
    post.buttons = group_buttons(task);
    post
}

/// The buttons of an open task (none once it is taken).
fn group_buttons(task: &Task) -> Keyboard {
    if !task.is_open() {
        return Vec::new();
    }
    let mut row = vec![button(TAKE_LABEL, format!("{TAKE}{}", task.id))];
    if task.private_text.is_some() {
        row.push(button(DETAILS_LABEL, format!("{DETAILS}{}", task.id)));
    }
    vec![row]
}

/// Where the group post is, once posted.
fn group_posted(task: &Task) -> Option<Posted> {
    task.message_id.as_ref().map(|m| Posted { chat_id: task.chat_id.clone(), message_id: m.clone() })
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

impl Engine {
    /// Whether tasks can be posted on this channel: its platform posts and edits, in group
    /// chats, with buttons under the post.
    pub fn carries_tasks(&self, channel: &Channel) -> Result<bool> {
        let caps = self.capabilities(channel)?;
        Ok(caps.posts && caps.groups && caps.buttons.is_some_and(|b| b.inline))
    }

    /// The channel's adapter, when its platform carries tasks.
    fn task_adapter(&self, channel: &Channel) -> Result<SharedAdapter> {
        if !self.carries_tasks(channel)? {
            return Err(Error::unprocessable(
                "unsupported_channel",
                format!(
                    "tasks are posted to group chats with buttons; channel {} is a {} channel, which has none",
                    channel.id, channel.kind
                ),
            ));
        }
        self.adapter_for(channel)
    }

    /// A platform's refusal as the API reports it: `<kind>_refused` with the platform's words,
    /// or `<kind>_unavailable` when it could not be reached.
    fn refused(&self, channel: &Channel, what: &str, e: SendError) -> Error {
        let title = self.platform(channel).map(|p| p.title()).unwrap_or("the platform");
        match e {
            SendError::Permanent { reason, .. } => {
                Error::unprocessable(format!("{}_refused", channel.kind), format!("{title} refused {what}: {reason}"))
            }
            other => Error::unavailable(
                format!("{}_unavailable", channel.kind),
                format!("{title} did not take {what}: {other}"),
            ),
        }
    }

    /// The link that opens the bot's private chat asking for a task's details.
    fn start_link(&self, channel: &Channel, task_id: &str) -> Option<String> {
        self.platform(channel).ok()?.deep_link(channel, &format!("{START}{task_id}"))
    }

    /// Posts a task to its group with "take" (and "details") and stores it.
    /// Posted `by` an operator (`operator:<login>`), the audit line `task.create` is written
    /// in the transaction that stores the task.
    pub async fn create_task(&self, req: TaskRequest, by: Option<&str>) -> Result<Task> {
        self.create_task_as(new_id(), req, by).await
    }

    /// [`Engine::create_task`] under an id the caller chose (a connector's: one task per deal
    /// and stage, however often the business system says so).
    pub async fn create_task_as(&self, id: String, req: TaskRequest, by: Option<&str>) -> Result<Task> {
        let req = req.validate()?;
        let channel = self.channel(&ChannelId::from(&req.channel_id)).await?;
        let adapter = self.task_adapter(&channel)?;
        let draft = Task {
            id,
            channel_id: channel.id.to_string(),
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
        let sent = adapter.post(&group_post(&draft)).await.map_err(|e| self.refused(&channel, "the task", e))?;
        let audit = by.map(|actor| NewAudit {
            actor: actor.to_string(),
            action: "task.create".into(),
            target: draft.id.clone(),
            detail: serde_json::json!({"title": draft.title, "channel_id": draft.channel_id, "chat_id": sent.chat_id}),
        });
        let stored = self
            .store
            .create_task(
                NewTask {
                    id: draft.id,
                    channel_id: draft.channel_id,
                    // The chat as the platform names it: presses name the chat so.
                    chat_id: sent.chat_id.clone(),
                    message_id: Some(sent.message_id.clone()),
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
            // Nobody could take a task okno does not know: take the post down again.
            let _ = adapter.delete_post(&sent).await;
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
        let channel = self.channel(&ChannelId::from(&task.channel_id)).await?;
        let adapter = self.task_adapter(&channel)?;
        let sent = match adapter.post(&group_post(&task)).await {
            Ok(s) => s,
            Err(SendError::Permanent { reason, .. }) => {
                tracing::warn!(task = %task.id, %reason, "the platform refused to post the task again");
                return Ok(Outcome::Failed);
            }
            Err(e) => return Ok(Outcome::Retry(format!("posting the task again: {e}"), None)),
        };
        match self.store.record_reoffer(job_ref, &sent.message_id).await? {
            Some(_) => {
                if let Some(old) = group_posted(&task) {
                    let mut post = group_post(&task).plain("\n\n").italic("⬇️ Задача опубликована заново ниже.");
                    post.buttons = Vec::new();
                    if let Err(e) = adapter.edit_post(&old, &post).await {
                        tracing::warn!(task = %task.id, error = %e, "the old post of a re-posted task was not edited");
                    }
                }
            }
            None => {
                // Taken on the old post in the meantime: the new post is not needed.
                let _ = adapter.delete_post(&sent).await;
            }
        }
        Ok(Outcome::Done)
    }

    /// Opens a taken task again (for its executor) and puts the buttons back in the group.
    pub async fn release_task(&self, id: &str) -> Result<Task> {
        let task = self.store.release_task(id, None).await?;
        let channel = self.channel(&ChannelId::from(&task.channel_id)).await?;
        self.show_task(&channel, &task.id).await;
        self.store.get_task(id).await
    }

    /// Edits the group post to show the task as stored now.
    async fn show_task(&self, channel: &Channel, id: &str) {
        let (Ok(adapter), Ok(task)) = (self.task_adapter(channel), self.store.get_task(id).await) else { return };
        let Some(at) = group_posted(&task) else { return };
        if let Err(e) = adapter.edit_post(&at, &group_post(&task)).await {
            tracing::warn!(task = %task.id, error = %e, "editing the task's group post failed");
            return;
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
        let (Ok(adapter), Some(e)) = (self.task_adapter(channel), task.claimed_by.as_ref()) else { return };
        let mut private = private_post(task, &e.user_id, true);
        private.buttons = vec![vec![button(DROP_LABEL, format!("{DROP}{}", task.id))]];
        let err = match adapter.post(&private).await {
            Ok(_) => return,
            Err(err) => err,
        };
        if !cannot_write(&err) {
            tracing::warn!(task = %task.id, error = %err, "telling the executor failed");
            return;
        }
        let mut public = mention(Post::to(&task.chat_id), e).plain(format!(
            ", задача «{}» ваша. Подробности бот пришлёт в личные сообщения — откройте чат с ним.",
            task.title
        ));
        public.reply_to = task.message_id.clone();
        if let Some(link) = self.start_link(channel, &task.id) {
            public.buttons =
                vec![vec![Button { text: "Открыть чат с ботом".into(), data: None, url: Some(link) }]];
        }
        if let Err(err) = adapter.post(&public).await {
            tracing::warn!(task = %task.id, error = %err, "telling the executor in the group failed");
        }
    }

    /// A press of a task button: claim, details or give back. The press is answered here
    /// with what happened (instead of the plain answer other buttons get).
    pub(crate) async fn task_press(&self, channel: &Channel, q: &Press) -> Result<Option<okno_domain::ids::MessageId>> {
        let data = q.data.as_str();
        let who = q.who.clone();
        let adapter = self.task_adapter(channel)?;
        let answer = if let Some(id) = data.strip_prefix(TAKE) {
            self.press_take(channel, id, who).await
        } else if let Some(id) = data.strip_prefix(DETAILS) {
            self.press_details(channel, &adapter, id, &who).await
        } else if let Some(id) = data.strip_prefix(DROP) {
            self.press_drop(channel, &adapter, id, &who, q).await
        } else {
            Ok(PressAnswer::alert("Эта кнопка больше не работает."))
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) if e.is_not_found() => PressAnswer::alert("Задача не найдена: возможно, её уже сняли."),
            Err(e) => {
                // The store is unavailable: the press is answered, and the platform (webhook)
                // or the poller delivers it again.
                answer_press(&adapter, &q.id, PressAnswer::note("Не получилось, нажмите ещё раз через минуту.")).await;
                return Err(e);
            }
        };
        answer_press(&adapter, &q.id, answer).await;
        Ok(None)
    }

    async fn press_take(&self, channel: &Channel, id: &str, who: Claimant) -> Result<PressAnswer> {
        Ok(match self.store.claim_task(id, who).await? {
            ClaimOutcome::Won(task) => {
                self.wake();
                self.after_press(channel, &task.id, Some(task.clone()));
                PressAnswer::alert(format!("Задача «{}» ваша!", task.title))
            }
            ClaimOutcome::AlreadyYours(task) => {
                self.show_if_stale(channel, &task);
                PressAnswer::note("Эта задача уже ваша.")
            }
            ClaimOutcome::Taken(task) => {
                self.show_if_stale(channel, &task);
                PressAnswer::alert(taken_by(&task))
            }
            ClaimOutcome::NotAllowed(task) => PressAnswer::alert(not_allowed(&task)),
        })
    }

    async fn press_details(
        &self,
        channel: &Channel,
        adapter: &SharedAdapter,
        id: &str,
        who: &Claimant,
    ) -> Result<PressAnswer> {
        let task = self.store.get_task(id).await?;
        if let Some(refusal) = self.details_refusal(&task, &who.user_id).await? {
            return Ok(PressAnswer::alert(refusal));
        }
        let mine = task.claimed_by.as_ref().is_some_and(|e| e.user_id == who.user_id);
        Ok(match adapter.post(&details_post(&task, &who.user_id, mine)).await {
            Ok(_) => PressAnswer::note("Подробности — в личных сообщениях с ботом."),
            Err(e) if cannot_write(&e) => match self.start_link(channel, &task.id) {
                Some(url) => PressAnswer::url(url),
                None => PressAnswer::alert("Напишите боту в личные сообщения, и он пришлёт подробности."),
            },
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "sending the task's details failed");
                PressAnswer::alert("Не получилось отправить подробности, попробуйте позже.")
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

    async fn press_drop(
        &self,
        channel: &Channel,
        adapter: &SharedAdapter,
        id: &str,
        who: &Claimant,
        q: &Press,
    ) -> Result<PressAnswer> {
        match self.store.release_task(id, Some(&who.user_id)).await {
            Ok(task) => {
                if let Some(at) = q.origin.as_deref().and_then(|o| adapter.posted(o)) {
                    // The button goes with the task.
                    let _ = adapter.clear_buttons(&at).await;
                }
                self.after_press(channel, &task.id, None);
                Ok(PressAnswer::note("Вы отказались от задачи, она снова доступна в группе."))
            }
            Err(e) if e.kind == ErrorKind::Forbidden => Ok(PressAnswer::alert("Эта задача не ваша.")),
            Err(e) if e.kind == ErrorKind::Conflict => Ok(PressAnswer::note("Задача уже снова открыта.")),
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
        let adapter = self.task_adapter(channel)?;
        let text = match self.store.get_task(task_id).await {
            Ok(task) => match self.details_refusal(&task, user_id).await? {
                Some(refusal) => refusal,
                None => {
                    let mine = task.claimed_by.as_ref().is_some_and(|e| e.user_id == user_id);
                    adapter
                        .post(&details_post(&task, user_id, mine))
                        .await
                        .map_err(|e| self.refused(channel, "the details", e))?;
                    return Ok(());
                }
            },
            Err(e) if e.is_not_found() => "Задача не найдена: возможно, её уже сняли.".into(),
            Err(e) => return Err(e),
        };
        adapter.post(&Post::to(user_id).plain(text)).await.map_err(|e| self.refused(channel, "the answer", e))?;
        Ok(())
    }
}

/// The private post with a task's details: "take" while it is open, "give back" for its
/// executor.
fn details_post(task: &Task, user_id: &str, mine: bool) -> Post {
    let mut post = private_post(task, user_id, mine);
    if mine {
        post.buttons = vec![vec![button(DROP_LABEL, format!("{DROP}{}", task.id))]];
    } else if task.is_open() {
        post.buttons = vec![vec![button(TAKE_LABEL, format!("{TAKE}{}", task.id))]];
    }
    post
}

fn private_post(task: &Task, user_id: &str, mine: bool) -> Post {
    let mut post = Post::to(user_id);
    if mine {
        post = post.plain("Задача «").bold(&task.title).plain("» ваша.");
        if !task.text.trim().is_empty() {
            post = post.plain(format!("\n\n{}", task.text));
        }
    } else {
        post = headed(post, &task.title, &task.text);
    }
    if let Some(p) = &task.private_text {
        post = post.plain(format!("\n\n{p}"));
    }
    post
}

/// A press of a task's button, as the channel reported it.
pub(crate) struct Press {
    pub id: String,
    pub data: String,
    pub who: Claimant,
    /// The platform's id of the message the button is on.
    pub origin: Option<String>,
}

impl Press {
    /// The press a message records, when it is one on a task's button.
    pub(crate) fn of(press_id: Option<&str>, msg: &okno_channel::InboundMessage) -> Option<Press> {
        let data = msg.button_data.as_deref().filter(|d| is_task_data(d))?;
        let person = msg.member.as_ref().unwrap_or(&msg.sender);
        Some(Press {
            id: press_id?.to_string(),
            data: data.to_string(),
            who: Claimant {
                user_id: person.user_id.clone(),
                name: person.display_name.clone().unwrap_or_default(),
                username: person.username.clone(),
            },
            origin: msg.reply_to_external.clone(),
        })
    }
}

async fn answer_press(adapter: &SharedAdapter, id: &str, answer: PressAnswer) {
    if let Err(e) = adapter.answer_press(id, &answer).await {
        tracing::warn!(error = %e, "answering a press failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use okno_channel::Span;
    use serde_json::json;

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
    fn the_group_post_names_the_executor() {
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
        let post = group_post(&task);
        assert_eq!(post.chat_id, "-1");
        assert_eq!(
            post.text,
            vec![Span::Bold("Замер <окна>".into()), Span::Plain("\n\nАдрес & время".into())],
            "the platform escapes: the task keeps its words as written"
        );
        let buttons = &post.buttons;
        assert_eq!(buttons[0][0].data.as_deref(), Some("task:take:t1"));
        assert_eq!(buttons[0][1].data.as_deref(), Some("task:info:t1"));
        // A press is named by the label its button showed.
        for b in &buttons[0] {
            assert_eq!(button_label(b.data.as_deref().unwrap()), Some(b.text.as_str()));
        }
        let mine = details_post(&task, "42", true);
        assert_eq!(mine.chat_id, "42");
        assert_eq!(button_label(mine.buttons[0][0].data.as_deref().unwrap()), Some("Отказаться"));
        assert_eq!(
            mine.plain_text(),
            "Задача «Замер <окна>» ваша.\n\nАдрес & время\n\n+7999",
            "the executor sees the private text"
        );
        assert_eq!(button_label("bot:item:main:0:abc"), None);
        task.status = "claimed".into();
        task.claimed_by = Some(Executor {
            user_id: "42".into(),
            name: "Иван <Петров>".into(),
            username: Some("ivan".into()),
            contact_id: None,
        });
        let post = group_post(&task);
        assert!(post.buttons.is_empty(), "a taken task has no buttons");
        assert_eq!(
            post.text[post.text.len() - 3..],
            [
                Span::Plain("\n\n✅ Задачу взял(а): ".into()),
                Span::Mention { user_id: "42".into(), name: "Иван <Петров>".into() },
                Span::Plain(" (@ivan)".into()),
            ]
        );
        assert_eq!(taken_by(&task), "Задачу уже взял(а) Иван <Петров> (@ivan).");
        let others = details_post(&task, "7", false);
        assert!(others.buttons.is_empty(), "nobody else may take a task taken");
    }
}
