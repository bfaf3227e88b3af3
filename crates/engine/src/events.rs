//! Business events → rules → notifications.
//!
//! ```text
//!   POST /events ─► event + `process_event` job (one transaction; the key makes it idempotent)
//!   process_event ─► for each active rule of the event's type:
//!        condition false ─► skip
//!        delay ─► `notify_rule` job at the computed time (survives restarts)
//!        else ─► resolve recipients ─► per person: render ─► notify (once per person per event)
//!                 unresolved recipients and render failures are recorded with their reason
//!   everything it came to (notifications, outcomes, reasons, survey runs, delayed rules' jobs)
//!   ─► the store in one transaction with the end of the job: a retry starts from nothing
//! ```
//! A notification that later fails for good on one channel is re-sent on the person's next
//! channel by the store, in the same transaction that records the failure.

use std::collections::HashSet;

use okno_domain::ids::ContactId;
use okno_domain::model::{check_button_url, normalize_phone, Button, Keyboard};
use okno_domain::time::{now_ms, parse_rfc3339, Millis};
use okno_domain::{Error, Result};
use okno_store::{
    ContactFilter, EventRecord, Job, NewAttachment, NotMade, Notification, Processed, QueuedAction, RuleOutcome,
    RuleRecord, Unresolved,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::connectors::actions::ActionSpec;
use crate::render::Renderer;
use crate::templates;
use crate::worker::Outcome;
use crate::Engine;

/// A rule as administrators write it (API or rules file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// The event type it reacts to, e.g. `payment.received`.
    pub event: String,
    /// An expression over the event, e.g. `data.amount > 100000 && data.priority == "critical"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Who gets it: `{"external_id": "{{ data.manager_id }}"}`, `{"contact_id": "…"}`,
    /// `{"phone": "…"}`, `{"email": "…"}`, `{"group": "…"}`. None: the rule only acts in a
    /// business system (`actions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<RecipientSpec>,
    /// The message, a MiniJinja template over `data`, `event`, `contact`; or, for platforms
    /// that need a pre-approved template outside their window, `{"text", "name", "language",
    /// "params"}` — the text where free text may go, the platform's template elsewhere, its
    /// params templates over the same data.
    #[serde(default, skip_serializing_if = "RuleText::is_empty")]
    pub template: RuleText,
    /// Rows of buttons: `{"text", "url"}` (a template), `{"text", "answer"}` (recorded against
    /// the event), or `{"text", "data"}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Vec<ButtonSpec>>,
    /// Send relative to a time in the event instead of at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DelaySpec>,
    /// A file to attach: fetched from a URL the event names, or one uploaded earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentSpec>,
    /// What the rule does in a business system, besides or instead of a message: an amoCRM
    /// note, field, stage or task (see [`crate::connectors::actions`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionSpec>,
}

/// A rule's message: its text alone, or with the platform template to send where only one may go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RuleText {
    Text(String),
    WithTemplate(PlatformTemplate),
}

impl Default for RuleText {
    fn default() -> Self {
        RuleText::Text(String::new())
    }
}

/// A pre-approved platform template beside the free text; `params` are MiniJinja templates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformTemplate {
    pub text: String,
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub params: Vec<String>,
}

impl RuleText {
    /// No message: the rule only acts in a business system.
    pub fn is_empty(&self) -> bool {
        matches!(self, RuleText::Text(t) if t.is_empty())
    }

    pub fn text(&self) -> &str {
        match self {
            RuleText::Text(t) => t,
            RuleText::WithTemplate(p) => &p.text,
        }
    }

    pub fn platform(&self) -> Option<&PlatformTemplate> {
        match self {
            RuleText::Text(_) => None,
            RuleText::WithTemplate(p) => Some(p),
        }
    }
}

impl PlatformTemplate {
    /// Checks the name, language and every parameter's syntax.
    pub fn check(&self) -> Result<()> {
        if self.name.trim().is_empty() || self.language.trim().is_empty() || self.params.len() > 100 {
            return Err(Error::invalid(
                "invalid_template",
                "a platform template needs `name`, `language` and at most 100 `params`",
            ));
        }
        for p in &self.params {
            templates::check_template(p)?;
        }
        Ok(())
    }

    /// The message options naming this template with its params rendered over `ctx`.
    pub async fn options(&self, renderer: &Renderer, ctx: &Value) -> Result<Value> {
        let mut params = Vec::with_capacity(self.params.len());
        for p in &self.params {
            params.push(renderer.render(p, ctx).await?);
        }
        let t = okno_domain::model::TemplateRef { name: self.name.clone(), language: self.language.clone(), params };
        Ok(json!({ okno_domain::channel::TEMPLATE_OPTION: t }))
    }
}

/// One recipient entry; exactly one field is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonSpec {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// `{"before": "data.visit_at", "by": "24h"}` or `{"after": "data.shipped_at", "by": "2h"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelaySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// `30m`, `2h`, `1d`.
    pub by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentSpec {
    /// A URL template, e.g. `{{ data.invoice_url }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The id of a file posted earlier (`POST /api/v1/attachments`), e.g. `{{ data.file_id }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `30s`, `15m`, `2h`, `1d` → milliseconds.
pub fn parse_duration(text: &str) -> Result<i64> {
    okno_domain::time::parse_duration(text).ok_or_else(|| {
        Error::invalid("invalid_delay", format!("`{text}` is not a duration like 30s, 15m, 2h or 1d (up to 100 years)"))
    })
}

impl RuleSpec {
    /// Parses and checks a rule: every template and the condition compile, each recipient and
    /// button names one thing. Errors carry the line and column.
    pub fn parse(v: &Value) -> Result<RuleSpec> {
        let spec: RuleSpec = serde_json::from_value(v.clone())
            .map_err(|e| Error::invalid("invalid_rule", format!("the rule is not valid: {e}")))?;
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> Result<()> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(Error::invalid("invalid_rule", "`name` must be 1..200 characters"));
        }
        if self.event.trim().is_empty() {
            return Err(Error::invalid("invalid_rule", "`event` names the event type the rule reacts to"));
        }
        if self.recipients.is_empty() && self.actions.is_empty() {
            return Err(Error::invalid(
                "invalid_rule",
                "`recipients` needs at least one entry (or the rule names `actions` in a business system)",
            ));
        }
        if !self.recipients.is_empty() && self.template.is_empty() {
            return Err(Error::invalid("invalid_rule", "`template` is the message the recipients get"));
        }
        for a in &self.actions {
            a.check()?;
        }
        templates::check_template(self.template.text())?;
        if let Some(p) = self.template.platform() {
            p.check()?;
        }
        if let Some(c) = &self.condition {
            templates::check_condition(c)?;
        }
        for r in &self.recipients {
            let set =
                [&r.external_id, &r.contact_id, &r.phone, &r.email, &r.group].iter().filter(|f| f.is_some()).count();
            if set != 1 {
                return Err(Error::invalid(
                    "invalid_rule",
                    "each recipient names exactly one of external_id, contact_id, phone, email, group",
                ));
            }
            for t in [&r.external_id, &r.phone, &r.email, &r.group].into_iter().flatten() {
                templates::check_template(t)?;
            }
        }
        check_buttons(&self.buttons, "invalid_rule")?;
        if let Some(d) = &self.delay {
            if d.before.is_some() == d.after.is_some() {
                return Err(Error::invalid("invalid_delay", "`delay` names exactly one of `before` and `after`"));
            }
            parse_duration(&d.by)?;
        }
        if let Some(a) = &self.attachment {
            if a.url.is_some() == a.attachment_id.is_some() {
                return Err(Error::invalid(
                    "invalid_rule",
                    "`attachment` names exactly one of `url` and `attachment_id`",
                ));
            }
            for t in [&a.url, &a.attachment_id, &a.name].into_iter().flatten() {
                templates::check_template(t)?;
            }
        }
        Ok(())
    }
}

/// Checks rows of buttons: each has a text and exactly one of url, answer, data; templates
/// compile.
pub(crate) fn check_buttons(rows: &[Vec<ButtonSpec>], code: &'static str) -> Result<()> {
    for b in rows.iter().flatten() {
        let set = [&b.url, &b.answer, &b.data].iter().filter(|f| f.is_some()).count();
        if b.text.trim().is_empty() || set != 1 {
            return Err(Error::invalid(
                code,
                format!("button `{}` needs a text and exactly one of url, answer, data", b.text),
            ));
        }
        if let Some(u) = &b.url {
            templates::check_template(u)?;
            // A link without a template is checked now; a rendered one when it is rendered.
            if !u.contains("{{") && !u.contains("{%") {
                check_button_url(u)?;
            }
        }
        templates::check_template(&b.text)?;
    }
    Ok(())
}

/// Renders one person's message in one trip to a render worker: its text (`None`: no
/// template, the text is the caller's) and rows of buttons — URL buttons (links checked as
/// every button's are), answer buttons (`answer:` data, recorded when pressed) and plain data
/// buttons.
pub(crate) async fn render_message(
    renderer: &Renderer,
    text: Option<&str>,
    rows: &[Vec<ButtonSpec>],
    ctx: &Value,
) -> Result<Rendered> {
    let mut srcs: Vec<&str> = text.into_iter().collect();
    for b in rows.iter().flatten() {
        srcs.push(&b.text);
        srcs.extend(b.url.as_deref());
    }
    let mut texts = renderer.render_all(&srcs, ctx).await?.into_iter();
    let mut next = || texts.next().ok_or_else(|| Error::internal("a render answered for fewer templates"));
    let text = match text {
        Some(_) => next()?,
        None => String::new(),
    };
    let mut buttons = Vec::new();
    for row in rows {
        let mut out = Vec::new();
        for b in row {
            let text = next()?;
            out.push(match (&b.url, &b.answer, &b.data) {
                (Some(u), _, _) => {
                    let url = next()?;
                    if url.trim().is_empty() {
                        return Err(Error::unprocessable(
                            "template_failed",
                            format!("the link of button `{text}` is missing: `{u}` rendered empty"),
                        ));
                    }
                    check_button_url(&url)?;
                    Button { text, url: Some(url), data: None }
                }
                (None, Some(a), _) => Button { text, data: Some(format!("answer:{a}")), url: None },
                (None, None, d) => Button { text, data: d.clone(), url: None },
            });
        }
        buttons.push(out);
    }
    Ok(Rendered { text, buttons })
}

/// A rule's actions in business systems, queued with the rest of what the event came to.
fn queue_actions(rule: &RuleRecord, spec: &RuleSpec, done: &mut Processed) {
    for (index, a) in spec.actions.iter().enumerate() {
        done.connector_actions.push(QueuedAction {
            rule_id: rule.id.clone(),
            index,
            connector_id: a.connector.clone(),
        });
    }
}

/// The context templates and conditions see.
pub(crate) fn context(ev: &EventRecord) -> Value {
    json!({"event": {"id": ev.id, "type": ev.event_type, "key": ev.key}, "data": ev.data})
}

/// Reads a dotted path (`data.visit_at`) from the context.
fn lookup<'a>(ctx: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(ctx, |v, key| v.get(key))
}

/// Why a recipient entry names nobody: a stable code (see [`Unresolved::code`]), the
/// recipient as rendered, and the reason in words.
#[derive(Debug, Clone)]
pub(crate) struct Unreached {
    pub code: &'static str,
    pub value: Option<String>,
    pub reason: String,
}

impl Unreached {
    /// The record of it under `rule_id` (a rule, or `survey:<id>`), the entry labelled `recipient`.
    pub(crate) fn record(self, rule_id: &str, recipient: String) -> Unresolved {
        Unresolved {
            rule_id: rule_id.to_string(),
            recipient,
            reason: self.reason,
            code: Some(self.code.to_string()),
            value: self.value,
            contact_id: None,
        }
    }
}

/// What rendering one person's message produced.
pub struct Rendered {
    pub text: String,
    pub buttons: Keyboard,
}

impl Engine {
    /// Checks a rule and stores it (by name).
    pub async fn put_rule(&self, spec: &Value) -> Result<RuleRecord> {
        let rule = RuleSpec::parse(spec)?;
        self.check_actions(&rule).await?;
        let stored = serde_json::to_value(&rule).map_err(|e| Error::internal(e.to_string()))?;
        self.store.put_rule(&rule.name, &rule.event, stored).await
    }

    /// Renders a rule for sample data and a sample contact, without sending.
    pub async fn preview(&self, spec: &RuleSpec, data: &Value, contact: &Value) -> Result<Value> {
        preview(&self.renderer, spec, data, contact).await
    }

    /// Runs the rules of one event (the `process_event` job). Only reads until the end: the
    /// notifications of every rule that sends at once, the reasons people were not reached,
    /// the rules' outcomes, the surveys it starts, the event's status and the end of the job
    /// are written in one transaction, so a store error anywhere before it leaves nothing
    /// behind and the retry writes everything once.
    pub(crate) async fn process_event(&self, job: &Job) -> Result<Outcome> {
        let ev = match self.store.get_event_row(&job.ref_id).await {
            Ok(ev) => ev,
            Err(e) if e.is_not_found() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        if matches!(ev.status.as_str(), "processed" | "no_rule") {
            return Ok(Outcome::Done);
        }
        let ctx = context(&ev);
        let mut matched = 0;
        // Everything the event comes to, kept with it so its page can say why.
        let mut done = Processed::default();
        for rule in self.store.rules_for(&ev.event_type).await? {
            let outcome = |what: &str| RuleOutcome::new(&rule.id, &rule.name, what);
            let spec: RuleSpec = match serde_json::from_value(rule.spec.clone()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(rule = %rule.name, error = %e, "a stored rule no longer parses");
                    done.rules.push(RuleOutcome { detail: Some(e.to_string()), ..outcome("invalid") });
                    continue;
                }
            };
            if let Some(c) = &spec.condition {
                match self.renderer.condition(c, &ctx).await {
                    Ok(true) => {}
                    Ok(false) => {
                        done.rules.push(RuleOutcome { detail: Some(c.clone()), ..outcome("not_matched") });
                        continue;
                    }
                    Err(e) => {
                        let note = Unreached { code: "condition_error", value: None, reason: e.message.clone() };
                        done.unresolved.push(note.record(&rule.id, "condition".into()));
                        done.rules.push(RuleOutcome { detail: Some(e.message), ..outcome("condition_error") });
                        continue;
                    }
                }
            }
            matched += 1;
            if let Some(at) = delayed_until(&spec, &ctx, &rule, &mut done.unresolved)? {
                // The rule's own job is queued with this outcome, when the event's processing
                // commits: it cannot run before the event is complete, nor twice after a retry.
                done.rules.push(RuleOutcome { run_at: Some(at), ..outcome("scheduled") });
                continue;
            }
            done.rules.push(outcome("matched"));
            self.prepare_rule(&ev, &rule, &spec, &mut done).await?;
            queue_actions(&rule, &spec, &mut done);
        }
        // Surveys this event starts count as matched rules.
        matched += self.start_event_surveys(&ev, &mut done).await?;
        let status = if matched == 0 { "no_rule" } else { "processed" };
        let (_, held) = self.store.complete_event(&ev.id, status, done, job.seq, &self.owner).await?;
        self.wake();
        Ok(Outcome::Ended { failed: false, held })
    }

    /// Runs one delayed rule (the `notify_rule` job): its notifications, the reasons for those
    /// not reached, its outcome and the end of the job in one transaction.
    pub(crate) async fn process_rule(&self, job: &Job) -> Result<Outcome> {
        let Some((event_id, rule_id)) = job.ref_id.split_once(':') else { return Ok(Outcome::Done) };
        let ev = match self.store.get_event_row(event_id).await {
            Ok(ev) => ev,
            Err(e) if e.is_not_found() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        let rule = match self.store.get_rule(rule_id).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        let spec: RuleSpec = serde_json::from_value(rule.spec.clone()).map_err(|e| Error::internal(e.to_string()))?;
        let mut done =
            Processed { rules: vec![RuleOutcome::new(&rule.id, &rule.name, "matched")], ..Default::default() };
        self.prepare_rule(&ev, &rule, &spec, &mut done).await?;
        queue_actions(&rule, &spec, &mut done);
        let (_, held) = self.store.complete_rule(&ev.id, done, job.seq, &self.owner).await?;
        self.wake();
        Ok(Outcome::Ended { failed: false, held })
    }

    /// The notifications a rule makes for an event, added to `done`: recipients resolved, one
    /// message rendered per person; recipients that name nobody and people no message could
    /// be made for are added with their reasons. Nothing is written here.
    async fn prepare_rule(
        &self,
        ev: &EventRecord,
        rule: &RuleRecord,
        spec: &RuleSpec,
        done: &mut Processed,
    ) -> Result<()> {
        if spec.recipients.is_empty() {
            return Ok(());
        }
        let ctx = context(ev);
        let mut people: Vec<ContactId> = Vec::new();
        for r in &spec.recipients {
            let label = serde_json::to_string(r).unwrap_or_default();
            match self.resolve(r, &ctx).await? {
                Ok(ids) => people.extend(ids),
                Err(why) => done.unresolved.push(why.record(&rule.id, label)),
            }
        }
        let mut seen = HashSet::new();
        people.retain(|id| seen.insert(id.clone()));
        // A phone number reaches a person by SMS, an address by e-mail, when their messengers
        // do not.
        self.reach_by_address(&people).await?;
        let not_made = |contact_id: &str, code: &str, error: String| NotMade {
            rule_id: rule.id.clone(),
            contact_id: contact_id.to_string(),
            code: code.to_string(),
            error,
        };
        let attachment_ids = match &spec.attachment {
            None => Vec::new(),
            Some(a) => match self.rule_attachment(a, &ctx).await {
                Ok(id) => vec![id],
                Err(e) => {
                    let error = format!("the attachment could not be prepared: {}", e.message);
                    done.not_made.extend(people.iter().map(|id| not_made(id, "attachment_failed", error.clone())));
                    return Ok(());
                }
            },
        };
        // Contacts removed since they were resolved are left out.
        for contact in self.store.get_contacts(&people).await? {
            let contact_id = contact.id.clone();
            let mut person_ctx = ctx.clone();
            person_ctx["tz"] = contact.attrs.get("tz").cloned().unwrap_or_else(|| json!(self.cfg.default_timezone));
            person_ctx["contact"] = serde_json::to_value(&contact).unwrap_or(Value::Null);
            let rendered = match render_for(&self.renderer, spec, &person_ctx).await {
                Ok(r) => r,
                Err(e) => {
                    done.not_made.push(not_made(&contact_id, "template_failed", e.message));
                    continue;
                }
            };
            let options = match spec.template.platform() {
                None => json!({}),
                Some(p) => match p.options(&self.renderer, &person_ctx).await {
                    Ok(o) => o,
                    Err(e) => {
                        done.not_made.push(not_made(&contact_id, "template_failed", e.message));
                        continue;
                    }
                },
            };
            done.notifications.push(Notification {
                event_id: ev.id.clone(),
                rule_id: rule.id.clone(),
                recipient: contact
                    .external_id
                    .clone()
                    .map_or_else(|| format!("contact {contact_id}"), |e| format!("external_id {e}")),
                contact_id: contact_id.to_string(),
                text: rendered.text,
                buttons: rendered.buttons,
                attachment_ids: attachment_ids.clone(),
                options,
            });
        }
        Ok(())
    }

    /// The contacts a recipient entry names, or why there are none (the outer error is the
    /// store's: the work is tried again rather than recorded as a reason).
    pub(crate) async fn resolve(
        &self,
        r: &RecipientSpec,
        ctx: &Value,
    ) -> Result<std::result::Result<Vec<ContactId>, Unreached>> {
        let (kind, value) = match recipient_value(&self.renderer, r, ctx).await {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(Unreached { code: "recipient_failed", value: None, reason: e.message })),
        };
        let find = |filter: ContactFilter| self.store.contact_ids(filter);
        let ids = match kind {
            "contact_id" => match self.store.get_contact(&ContactId::from(&value)).await {
                Ok(c) => vec![c.id],
                Err(e) if e.is_not_found() => Vec::new(),
                Err(e) => return Err(e),
            },
            "external_id" => find(ContactFilter { external_id: Some(value.clone()), ..Default::default() }).await?,
            "phone" => match normalize_phone(&value) {
                Ok(phone) => find(ContactFilter { phone: Some(phone), ..Default::default() }).await?,
                Err(e) => {
                    return Ok(Err(Unreached { code: "recipient_failed", value: Some(value), reason: e.message }))
                }
            },
            "email" => find(ContactFilter { email: Some(value.clone()), ..Default::default() }).await?,
            _ => find(ContactFilter { group: Some(value.clone()), ..Default::default() }).await?,
        };
        if !ids.is_empty() {
            return Ok(Ok(ids));
        }
        let (code, reason) = match kind {
            "contact_id" => ("unknown_contact_id", format!("unknown contact id `{value}`")),
            "external_id" => ("unknown_external_id", format!("unknown external id `{value}`")),
            "group" => ("empty_group", format!("group `{value}` has no contacts")),
            other => ("no_contact", format!("no contact with {other} `{value}`")),
        };
        Ok(Err(Unreached { code, value: Some(value), reason }))
    }

    /// Fetches or finds a rule's attachment once per event; returns its id.
    async fn rule_attachment(&self, a: &AttachmentSpec, ctx: &Value) -> Result<String> {
        if let Some(t) = &a.attachment_id {
            let id = self.renderer.render(t, ctx).await?;
            return Ok(self.store.get_attachment(id.trim()).await?.id);
        }
        let url = self.renderer.render(a.url.as_deref().unwrap_or_default(), ctx).await?;
        let fetched = self
            .http
            .fetch_limited(url.trim(), self.cfg.max_attachment_bytes)
            .await
            .map_err(|e| Error::unprocessable("attachment_failed", format!("{url}: {e}")))?;
        let sha256 =
            self.files.put(&fetched.body).await.map_err(|e| Error::internal(format!("attachment store: {e}")))?;
        let name = match &a.name {
            Some(t) => self.renderer.render(t, ctx).await?,
            None => url.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("file").to_string(),
        };
        let mime = fetched.mime.unwrap_or_else(|| "application/octet-stream".into());
        let att = self
            .store
            .insert_attachment(NewAttachment { message_id: None, name, mime, size: fetched.body.len() as i64, sha256 })
            .await?;
        Ok(att.id)
    }
}

/// When a delayed rule should run, if later than now. A rule whose base time is not a time
/// goes out at once, and a note saying why is added to `notes`.
fn delayed_until(
    spec: &RuleSpec,
    ctx: &Value,
    rule: &RuleRecord,
    notes: &mut Vec<Unresolved>,
) -> Result<Option<Millis>> {
    let Some(d) = &spec.delay else { return Ok(None) };
    let by = parse_duration(&d.by)?;
    let (path, sign) = match (&d.before, &d.after) {
        (Some(p), _) => (p, -1),
        (None, Some(p)) => (p, 1),
        _ => return Ok(None),
    };
    let base = lookup(ctx, path).and_then(Value::as_str).and_then(|s| {
        parse_rfc3339(s).or_else(|| {
            s.parse::<jiff::civil::Date>()
                .ok()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp().as_millisecond())
        })
    });
    let Some(base) = base else {
        // Without the time the rule is measured from, it goes out at once (and says why).
        let reason = format!("`{path}` is not a time; sent without the delay");
        let note = Unreached { code: "delay_ignored", value: Some(path.clone()), reason };
        notes.push(note.record(&rule.id, path.clone()));
        return Ok(None);
    };
    let at = base + sign * by;
    Ok((at > now_ms() + 1_000).then_some(at))
}

/// The entry's kind and its rendered value.
/// Renders a rule for sample data and a sample contact, without sending: whether it matches,
/// the text and buttons, and each recipient (or why it cannot be found from the data).
pub async fn preview(renderer: &Renderer, spec: &RuleSpec, data: &Value, contact: &Value) -> Result<Value> {
    let ev = EventRecord {
        id: "preview".into(),
        event_type: spec.event.clone(),
        key: "preview".into(),
        data: data.clone(),
        status: "preview".into(),
        send_at: None,
        created_at: now_ms(),
        processed_at: None,
        deliveries: vec![],
        unresolved: vec![],
        rules: vec![],
    };
    let mut ctx = context(&ev);
    let matches = match &spec.condition {
        Some(c) => renderer.condition(c, &ctx).await?,
        None => true,
    };
    ctx["contact"] = contact.clone();
    ctx["tz"] = contact.get("attrs").and_then(|a| a.get("tz")).cloned().unwrap_or_else(|| json!("UTC"));
    let rendered = render_for(renderer, spec, &ctx).await?;
    let mut recipients: Vec<Value> = Vec::new();
    for r in &spec.recipients {
        recipients.push(match recipient_value(renderer, r, &ctx).await {
            Ok((kind, value)) => json!({kind: value}),
            // A render too large or too slow is the preview's answer, not a recipient's note.
            Err(e) if matches!(&*e.code, "template_too_large" | "template_too_slow") => return Err(e),
            Err(e) => json!({"error": e.message}),
        });
    }
    Ok(json!({"matches": matches, "text": rendered.text, "buttons": rendered.buttons, "recipients": recipients}))
}

async fn recipient_value(renderer: &Renderer, r: &RecipientSpec, ctx: &Value) -> Result<(&'static str, String)> {
    let (kind, tmpl) = if let Some(t) = &r.external_id {
        ("external_id", t)
    } else if let Some(t) = &r.contact_id {
        ("contact_id", t)
    } else if let Some(t) = &r.phone {
        ("phone", t)
    } else if let Some(t) = &r.email {
        ("email", t)
    } else if let Some(t) = &r.group {
        ("group", t)
    } else {
        return Err(Error::invalid("invalid_rule", "an empty recipient"));
    };
    let value = renderer.render(tmpl, ctx).await?.trim().to_string();
    if value.is_empty() {
        return Err(Error::unprocessable("empty_recipient", format!("`{tmpl}` rendered empty")));
    }
    Ok((kind, value))
}

/// The text and buttons of one person's message.
async fn render_for(renderer: &Renderer, spec: &RuleSpec, ctx: &Value) -> Result<Rendered> {
    render_message(renderer, Some(spec.template.text()), &spec.buttons, ctx).await
}
