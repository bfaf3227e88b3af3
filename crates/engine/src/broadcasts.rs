//! Broadcasts: checking a request, choosing the audience, and feeding the recipients into the
//! outbox a slice at a time.
//!
//! ```text
//!   POST /broadcasts ─► checked ─► stored + first slice job (at send_at)
//!   slice job: audience written out once ─► next pending people ─► text rendered per person
//!     ─► messages + bulk-lane send jobs, people marked queued (one transaction) ─► next slice
//!   the next slice waits while the bulk lane holds enough work for the channels' pace
//! ```

use std::time::Duration;

use okno_domain::ids::ContactId;
use okno_domain::masking::{mask_email, mask_phone};
use okno_domain::model::{Button, Contact, Permission, Role};
use okno_domain::time::{now_ms, parse_rfc3339};
use okno_domain::{Error, ErrorKind, Result};
use okno_store::{Broadcast, BroadcastItem, ContactFilter, NewBroadcast, PageRequest};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::events::{check_buttons, render_message, ButtonSpec, PlatformTemplate};
use crate::templates;
use crate::worker::Outcome;
use crate::Engine;

/// A broadcast as integrators and the UI post it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastSpec {
    pub name: String,
    pub audience: Audience,
    /// The message, a MiniJinja template over `contact` (name, external_id, attrs, groups…).
    pub text: String,
    /// Rows of buttons, as in rules: `{"text", "url"}`, `{"text", "answer"}`, `{"text", "data"}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Vec<ButtonSpec>>,
    /// The pre-approved template to send where only one may go (WhatsApp outside its window):
    /// `{"name", "language", "params"}`, the params templates over `contact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateSpec>,
    /// Ids of files uploaded earlier (`POST /api/v1/attachments`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
    /// Start at this time (RFC 3339) instead of now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<String>,
    /// At most this many messages per second; absent: as fast as each channel's limits allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// The text of an "unsubscribe" button added under the message; absent: no button (people
    /// can still write «стоп»).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe_button: Option<String>,
    /// The subject of its e-mails (a MiniJinja template over `contact`, like the text);
    /// absent: the e-mail channel's own subject for new mails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Rendered over the masked contact (`+7999•••••22`, `i•••@example.ru`): set by okno from
    /// the role that made the broadcast, whatever the request said, so that a role without the
    /// right to personal data cannot read it through a template.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub masked: bool,
}

/// A platform template as a broadcast names it (the text is the broadcast's own).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub params: Vec<String>,
}

impl TemplateSpec {
    fn platform(&self, text: &str) -> PlatformTemplate {
        PlatformTemplate {
            text: text.to_string(),
            name: self.name.clone(),
            language: self.language.clone(),
            params: self.params.clone(),
        }
    }
}

/// Who gets a broadcast: the union of groups, an explicit list and a filter.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contact_ids: Vec<ContactId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<AudienceFilter>,
}

/// Contacts whose fields match: all given conditions hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceFilter {
    /// Member of this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Attributes equal to these values, e.g. `{"city": "Казань", "vip": true}`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attrs: Map<String, Value>,
    /// Text in the name, phone, email or external id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Has an identity on a channel of this kind (`telegram`, `webhook`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_kind: Option<String>,
}

/// Most people in one slice.
const SLICE: usize = 500;
/// Contacts read per page while the audience is worked out.
const AUDIENCE_PAGE: u32 = 500;

impl BroadcastSpec {
    /// Parses and checks a broadcast: the template and buttons compile, the audience names
    /// someone, the time and pace make sense.
    pub fn parse(v: &Value) -> Result<BroadcastSpec> {
        let spec: BroadcastSpec = serde_json::from_value(v.clone())
            .map_err(|e| Error::invalid("invalid_broadcast", format!("the broadcast is not valid: {e}")))?;
        if spec.name.trim().is_empty() || spec.name.chars().count() > 200 {
            return Err(Error::invalid("invalid_broadcast", "`name` must be 1..200 characters"));
        }
        if spec.text.trim().is_empty() && spec.attachments.is_empty() {
            return Err(Error::invalid("invalid_broadcast", "a broadcast needs `text` or `attachments`"));
        }
        if spec.text.chars().count() > 4096 {
            return Err(Error::invalid("invalid_broadcast", "`text` is limited to 4096 characters"));
        }
        templates::check_template(&spec.text)?;
        if let Some(t) = &spec.template {
            t.platform(&spec.text).check()?;
        }
        check_buttons(&spec.buttons, "invalid_broadcast")?;
        let a = &spec.audience;
        if a.groups.is_empty() && a.contact_ids.is_empty() && a.filter.is_none() {
            return Err(Error::invalid(
                "invalid_broadcast",
                "`audience` names `groups`, `contact_ids` or a `filter` (or several)",
            ));
        }
        if let Some(at) = &spec.send_at {
            parse_rfc3339(at).ok_or_else(|| {
                Error::invalid("invalid_broadcast", format!("`send_at` is not an RFC 3339 time: `{at}`"))
            })?;
        }
        if spec.rate == Some(0) || spec.rate.is_some_and(|r| r > 10_000) {
            return Err(Error::invalid("invalid_broadcast", "`rate` is 1..10000 messages per second"));
        }
        if spec.unsubscribe_button.as_ref().is_some_and(|t| t.trim().is_empty()) {
            return Err(Error::invalid("invalid_broadcast", "`unsubscribe_button` needs a text"));
        }
        Ok(spec)
    }
}

/// What a template sees of a person: `masked`, the phone and e-mail as a role without the
/// right to personal data sees them.
fn person(contact: &Contact, masked: bool) -> Value {
    let first = contact.name.as_deref().and_then(|n| n.split_whitespace().next()).unwrap_or_default();
    let (phone, email) = match masked {
        false => (contact.phone.clone(), contact.email.clone()),
        true => (contact.phone.as_deref().map(mask_phone), contact.email.as_deref().map(mask_email)),
    };
    json!({"contact": {
        "id": contact.id, "external_id": contact.external_id, "name": contact.name, "first_name": first,
        "phone": phone, "email": email, "groups": contact.groups, "attrs": contact.attrs,
    }})
}

impl Engine {
    /// `paused` or `cancelled` when a broadcast's queued sends must wait or be dropped; read
    /// from the store at most once a second (a pause reaches the sends within a second).
    pub(crate) fn broadcast_held(&self, id: &str) -> Option<String> {
        let cache = self.held.lock().ok()?;
        cache.1.get(id).cloned()
    }

    /// Refreshes the held broadcasts when they are more than a second old.
    pub(crate) async fn refresh_held(&self) {
        let fresh = self.held.lock().is_ok_and(|c| c.0.is_some_and(|at| at.elapsed() < Duration::from_secs(1)));
        if fresh {
            return;
        }
        match self.store.held_broadcasts().await {
            Ok(list) => {
                if let Ok(mut cache) = self.held.lock() {
                    *cache = (Some(std::time::Instant::now()), list.into_iter().collect());
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the paused broadcasts"),
        }
    }

    /// Checks a broadcast and stores it; it starts at `send_at` (or at once) in the background.
    /// `role`, the maker's: without the right to personal data, the text is rendered over the
    /// masked contact and the audience cannot be searched by text (which looks into phone
    /// numbers and e-mails, and would tell whether a number belongs to someone).
    pub async fn create_broadcast(&self, body: &Value, created_by: Option<String>, role: Role) -> Result<Broadcast> {
        let mut spec = BroadcastSpec::parse(body)?;
        spec.masked = !role.allows(Permission::PersonalData);
        if spec.masked && spec.audience.filter.as_ref().is_some_and(|f| f.q.is_some()) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                "forbidden",
                "`audience.filter.q` searches phone numbers and e-mails, which this role may not see; \
                 choose the people by group, attributes or a list",
            ));
        }
        let ids = &spec.audience.contact_ids;
        if !ids.is_empty() {
            let found: std::collections::HashSet<ContactId> =
                self.store.get_contacts(ids).await?.into_iter().map(|c| c.id).collect();
            let unknown: Vec<&ContactId> = ids.iter().filter(|id| !found.contains(*id)).collect();
            if !unknown.is_empty() {
                let shown: Vec<&str> = unknown.iter().take(5).map(|s| s.as_str()).collect();
                return Err(Error::unprocessable(
                    "unknown_contact",
                    format!("{} contact id(s) are unknown: {}", unknown.len(), shown.join(", ")),
                ));
            }
        }
        for a in &spec.attachments {
            self.store.get_attachment(a).await.map_err(|e| match e.is_not_found() {
                true => Error::unprocessable("unknown_attachment", format!("no attachment `{a}`")),
                false => e,
            })?;
        }
        let send_at = spec.send_at.as_deref().and_then(parse_rfc3339);
        let stored = serde_json::to_value(&spec).map_err(|e| Error::internal(e.to_string()))?;
        // People okno has only a phone number for are reached by SMS, only an address by e-mail.
        if self.sms_channel().await?.is_some() || self.email_channel().await?.is_some() {
            let audience = self.audience(&spec.audience).await?;
            self.reach_by_address(&audience).await?;
        }
        let new = NewBroadcast { name: spec.name.clone(), spec: stored, send_at, created_by };
        let broadcast = self.store.create_broadcast(new).await?;
        self.wake();
        Ok(broadcast)
    }

    /// The contacts a broadcast goes to, in a stable order, each once (also the count the UI
    /// shows before a broadcast starts).
    pub async fn audience(&self, a: &Audience) -> Result<Vec<ContactId>> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut add = |id: ContactId, out: &mut Vec<ContactId>| {
            if seen.insert(id.clone()) {
                out.push(id);
            }
        };
        for id in &a.contact_ids {
            add(id.clone(), &mut out);
        }
        for g in &a.groups {
            let filter = ContactFilter { group: Some(g.clone()), ..Default::default() };
            for id in self.store.contact_ids(filter).await? {
                add(id, &mut out);
            }
        }
        if let Some(f) = &a.filter {
            let filter = ContactFilter { group: f.group.clone(), q: f.q.clone(), ..Default::default() };
            let mut cursor = None;
            loop {
                let page =
                    self.store.find_contacts(filter.clone(), PageRequest { limit: AUDIENCE_PAGE, cursor }).await?;
                for c in &page.items {
                    let attrs_match = f.attrs.iter().all(|(k, v)| c.attrs.get(k) == Some(v));
                    let kind_match = f
                        .channel_kind
                        .as_deref()
                        .is_none_or(|kind| c.identities.iter().any(|i| i.kind.as_str() == kind));
                    if attrs_match && kind_match {
                        add(c.id.clone(), &mut out);
                    }
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// One slice of a broadcast: writes the audience out the first time, then queues the next
    /// people at the broadcast's pace, and comes back for the next slice.
    pub(crate) async fn feed_broadcast(&self, id: &str) -> Result<Outcome> {
        let b = match self.store.broadcast_plan(id).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        let now = now_ms();
        match b.status.as_str() {
            "running" => {}
            "scheduled" if b.send_at.is_some_and(|at| at > now) => {
                let wait = b.send_at.unwrap_or(now) - now;
                return Ok(Outcome::Again(Duration::from_millis(wait as u64)));
            }
            "scheduled" => {}
            // Paused, cancelled or done: resuming queues a new slice.
            _ => return Ok(Outcome::Done),
        }
        let spec: BroadcastSpec = serde_json::from_value(b.spec.clone())
            .map_err(|e| Error::internal(format!("a stored broadcast does not read back: {e}")))?;
        if !b.expanded {
            let ids = self.audience(&spec.audience).await?;
            let total = self.store.expand_broadcast(id, ids).await?;
            tracing::info!(broadcast = id, total, "broadcast started");
        }
        // The slice: what the pace allows since the last one, and no more than the bulk lane
        // can take without holding more than a few seconds of the channels' work.
        let (slice, wait, cap) = match spec.rate {
            Some(rate) => {
                let rate = rate as usize;
                let slice = rate.clamp(1, SLICE);
                (slice, Duration::from_secs_f64(slice as f64 / rate as f64), (rate * 2).max(20) as i64)
            }
            None => (SLICE, Duration::ZERO, (SLICE * 2) as i64),
        };
        let backlog = self.store.bulk_backlog().await?;
        if backlog >= cap {
            return Ok(Outcome::Again(Duration::from_millis(200)));
        }
        let take = slice.min((cap - backlog) as usize).max(1);
        let pending = self.store.pending_recipients(id, take as u32).await?;
        if pending.is_empty() {
            return Ok(match self.store.finish_broadcast(id).await? {
                true => {
                    tracing::info!(broadcast = id, "broadcast done");
                    Outcome::Done
                }
                // The last sends are out (or retrying): looked at again now and then.
                false => Outcome::Again(Duration::from_secs(2)),
            });
        }
        let mut buttons = spec.buttons.clone();
        if let Some(text) = &spec.unsubscribe_button {
            buttons.push(vec![ButtonSpec {
                text: text.clone(),
                url: None,
                answer: None,
                data: Some(okno_store::UNSUBSCRIBE.to_string()),
            }]);
        }
        let plain = !spec.text.contains("{{") && !spec.text.contains("{%");
        let mut items = Vec::with_capacity(pending.len());
        for p in pending {
            let Some(contact) = p.contact else {
                items.push(BroadcastItem::Fail {
                    contact_id: p.contact_id,
                    reason: "the contact no longer exists".into(),
                });
                continue;
            };
            let ctx = person(&contact, spec.masked);
            let text = (!plain).then_some(spec.text.as_str());
            let options = match &spec.template {
                None => Ok(json!({})),
                Some(t) => t.platform(&spec.text).options(&self.renderer, &ctx).await,
            };
            let rendered = match options {
                Ok(options) => render_message(&self.renderer, text, &buttons, &ctx).await.map(|r| (r, options)),
                Err(e) => Err(e),
            };
            let rendered = match (rendered, &spec.subject) {
                (Ok((r, mut options)), Some(subject)) => match self.renderer.render(subject, &ctx).await {
                    Ok(subject) if options.is_object() => {
                        options[okno_domain::channel::SUBJECT_OPTION] = json!(subject.trim());
                        Ok((r, options))
                    }
                    Ok(_) => Ok((r, options)),
                    Err(e) => Err(e),
                },
                (other, _) => other,
            };
            items.push(match rendered {
                Ok((r, options)) => BroadcastItem::Send {
                    contact_id: contact.id,
                    text: if plain { spec.text.clone() } else { r.text },
                    buttons: r.buttons.into_iter().filter(|r: &Vec<Button>| !r.is_empty()).collect(),
                    attachment_ids: spec.attachments.clone(),
                    options,
                },
                Err(e) => BroadcastItem::Fail { contact_id: contact.id, reason: e.message },
            });
        }
        let queued = self.store.queue_broadcast(id, items).await?;
        if queued > 0 {
            self.wake_bulk();
        }
        Ok(Outcome::Again(wait))
    }
}
