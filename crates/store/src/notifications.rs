//! Notifications: the messages an event sends people, queued on each person's preferred channel
//! (else the one they used last), never twice for one event, with who could not be reached and
//! why. When a notification fails for good on one channel, the same text goes to the person's
//! next channel ([`fall_back`], in the transaction that records the failure).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use okno_domain::ids::{new_id, ChannelId};
use okno_domain::model::{Identity, Message};
use okno_domain::routing::next_identity;
use okno_domain::time::now_ms;
use okno_domain::{Error, Result};

use crate::contacts::{identity_from, load_contact, IDENTITY_COLS};
use crate::conversations::current_conversation;
use crate::db::{args, Arg, Conn};
use crate::outbox::{enqueue, insert_outbounds, Outbound};
use crate::sql::{on, SqlStore};
use crate::statements::{exec_rows, query_rows, to_json, value_rows, INSERT_ROWS};
use crate::{Notification, NotifyOutcome, OutboundRequest, Recipient, LANE_LIVE};

/// Notifications: queueing the messages an event sends people.
#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Queues one person's notification on their preferred channel, else the one they used
    /// last; never twice for one event. A permanent failure later falls back to the next
    /// channel the person has.
    async fn notify(&self, n: Notification) -> Result<NotifyOutcome>;
    /// `notify` for several people in one transaction.
    async fn notify_all(&self, ns: Vec<Notification>) -> Result<Vec<NotifyOutcome>>;
}

#[async_trait]
impl NotificationStore for SqlStore {
    async fn notify(&self, n: Notification) -> Result<NotifyOutcome> {
        on!(self.write, |c| {
            let mut out = notify_many(c, vec![n]).await?;
            out.pop().ok_or_else(|| Error::internal("a notification without an outcome"))
        })
    }

    async fn notify_all(&self, ns: Vec<Notification>) -> Result<Vec<NotifyOutcome>> {
        on!(self.write, |c| notify_many(c, ns).await)
    }
}

/// Queues people's notifications (see `NotificationStore::notify`) with a few multi-row statements for all
/// of them — a rule's recipients: one read, then one insert per table — instead of six
/// statements a person.
pub(crate) async fn notify_many(c: &mut dyn Conn, ns: Vec<Notification>) -> Result<Vec<NotifyOutcome>> {
    let mut out = Vec::with_capacity(ns.len());
    // A person named twice is queued once: later mentions count as already notified.
    let mut seen = HashSet::new();
    if ns.windows(2).any(|w| w[0].event_id != w[1].event_id) {
        for n in ns {
            out.extend(notify_chunk(c, vec![n], &mut seen).await?);
        }
        return Ok(out);
    }
    let mut rest = ns.into_iter();
    loop {
        let chunk: Vec<Notification> = rest.by_ref().take(INSERT_ROWS).collect();
        if chunk.is_empty() {
            return Ok(out);
        }
        out.extend(notify_chunk(c, chunk, &mut seen).await?);
    }
}

/// One person as `notify_many` reads them: their preferred channel, whether they already have
/// the event, their current conversation and the identities that reach them.
#[derive(Default)]
pub(crate) struct Reachable {
    preferred: Option<ChannelId>,
    known: bool,
    conversation_id: Option<String>,
    identities: Vec<Identity>,
}

async fn notify_chunk(
    c: &mut dyn Conn,
    ns: Vec<Notification>,
    seen: &mut HashSet<String>,
) -> Result<Vec<NotifyOutcome>> {
    let event_id = ns[0].event_id.clone();
    let mut args = vec![Arg::from(event_id.as_str())];
    let mut listed = Vec::with_capacity(ns.len());
    for n in &ns {
        args.push(Arg::from(n.contact_id.as_str()));
        listed.push(format!("${}", args.len()));
    }
    let rows = query_rows(
            c,
            &format!(
                "SELECT c.id AS person, c.preferred_channel_id, \
                 EXISTS (SELECT 1 FROM event_deliveries d WHERE d.event_id = $1 AND d.contact_id = c.id) AS known, \
                 (SELECT v.id FROM conversations v WHERE v.contact_id = c.id ORDER BY v.id DESC LIMIT 1) AS conversation_id, \
                 {IDENTITY_COLS} \
                 FROM contacts c LEFT JOIN identities i ON i.contact_id = c.id LEFT JOIN channels ch ON ch.id = i.channel_id \
                 WHERE c.id IN ({}) ORDER BY c.id, i.created_at, i.id",
                listed.join(", ")
            ),
            &args,
            ns.len(),
        )
        .await?;
    let mut people: HashMap<String, Reachable> = HashMap::new();
    for row in &rows {
        let person = people.entry(row.s("person")?).or_default();
        person.preferred = row.oid("preferred_channel_id")?;
        person.known = row.flag("known")?;
        person.conversation_id = row.os("conversation_id")?;
        if row.os("id")?.is_some() {
            person.identities.push(identity_from(row)?);
        }
    }
    // What each notification comes to; `None` for those to be queued below.
    let mut outcomes: Vec<Option<NotifyOutcome>> = Vec::with_capacity(ns.len());
    let mut unresolved = Vec::new();
    let mut queued = Vec::new();
    for n in ns {
        if seen.contains(&n.contact_id) {
            outcomes.push(Some(NotifyOutcome::AlreadyNotified));
            continue;
        }
        let Some(person) = people.get(&n.contact_id) else {
            // No such contact: removed since it was notified, or never there.
            let known = c
                .row(
                    "SELECT id FROM event_deliveries WHERE event_id = $1 AND contact_id = $2",
                    args![&n.event_id, &n.contact_id],
                )
                .await?;
            match known {
                Some(_) => outcomes.push(Some(NotifyOutcome::AlreadyNotified)),
                None => return Err(Error::not_found("contact", &n.contact_id)),
            }
            continue;
        };
        if person.known {
            outcomes.push(Some(NotifyOutcome::AlreadyNotified));
            continue;
        }
        let Some(identity) = next_identity(person.preferred.as_ref(), &person.identities, &[]) else {
            let (code, reason) = if person.identities.is_empty() {
                ("no_identity", "no identity on any channel")
            } else {
                ("blocked", "blocked on every channel")
            };
            unresolved.push((n.rule_id.clone(), n.recipient.clone(), reason, code, n.contact_id.clone()));
            outcomes.push(Some(NotifyOutcome::Unreachable(reason.into())));
            continue;
        };
        seen.insert(n.contact_id.clone());
        let channel_id = identity.channel_id.clone();
        let conversation_id = match &person.conversation_id {
            Some(id) => id.clone(),
            None => current_conversation(c, &n.contact_id, false).await?.0,
        };
        let req = OutboundRequest {
            to: Recipient::Contact(n.contact_id.as_str().into()),
            channel_id: Some(channel_id.clone()),
            text: Some(n.text),
            buttons: n.buttons,
            attachment_ids: n.attachment_ids,
            idempotency_key: None,
            author: Some(format!("event:{}", n.event_id)),
            reply_to: None,
            options: n.options,
        };
        queued.push((n.rule_id, n.contact_id, conversation_id, channel_id, req));
        outcomes.push(None);
    }
    let now = now_ms();
    if !unresolved.is_empty() {
        let mut args = Vec::with_capacity(unresolved.len() * 6 + 2);
        for (rule_id, recipient, reason, code, contact_id) in &unresolved {
            args.extend([
                Arg::from(new_id()),
                Arg::from(rule_id),
                Arg::from(recipient),
                Arg::from(*reason),
                Arg::from(*code),
                Arg::from(contact_id),
            ]);
        }
        let rows = value_rows("(?, ?, ?, ?, ?, ?, $E, $T)", unresolved.len())
            .replace("$E", &format!("${}", args.len() + 1))
            .replace("$T", &format!("${}", args.len() + 2));
        args.extend([Arg::from(event_id.as_str()), Arg::from(now)]);
        let sql = format!(
            "INSERT INTO event_unresolved (id, rule_id, recipient, reason, code, contact_id, event_id, created_at) VALUES {rows}"
        );
        exec_rows(c, &sql, &args, unresolved.len()).await?;
    }
    let mut messages = Vec::new().into_iter();
    if !queued.is_empty() {
        let items: Vec<Outbound> = queued
            .iter()
            .map(|(_, contact_id, conversation_id, channel_id, req)| Outbound {
                req,
                contact_id,
                conversation_id,
                channel_id,
            })
            .collect();
        let written = insert_outbounds(c, &items, LANE_LIVE).await?;
        let mut args = Vec::with_capacity(queued.len() * 6 + 2);
        for ((rule_id, contact_id, _, channel_id, _), message) in queued.iter().zip(&written) {
            args.extend([
                Arg::from(new_id()),
                Arg::from(rule_id),
                Arg::from(contact_id),
                Arg::from(channel_id),
                Arg::from(message.id.as_str()),
                Arg::from(to_json(&vec![channel_id])),
            ]);
        }
        let rows = value_rows("(?, ?, ?, ?, ?, ?, $E, $T)", queued.len())
            .replace("$E", &format!("${}", args.len() + 1))
            .replace("$T", &format!("${}", args.len() + 2));
        args.extend([Arg::from(event_id.as_str()), Arg::from(now)]);
        exec_rows(
            c,
            &format!(
                "INSERT INTO event_deliveries (id, rule_id, contact_id, channel_id, message_id, tried, event_id, created_at) \
                 VALUES {rows}"
            ),
            &args,
            queued.len(),
        )
        .await?;
        messages = written.into_iter();
    }
    let mut result = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        result.push(match outcome {
            Some(o) => o,
            None => NotifyOutcome::Queued(Box::new(
                messages.next().ok_or_else(|| Error::internal("a queued notification has no message"))?,
            )),
        });
    }
    Ok(result)
}

/// After a notification failed for good on one channel: the same text on the person's next
/// channel, if they have one.
pub(crate) async fn fall_back(c: &mut dyn Conn, failed: &Message) -> Result<()> {
    let Some(row) = c.row("SELECT id, tried FROM event_deliveries WHERE message_id = $1", args![&failed.id]).await?
    else {
        return crate::broadcasts::fall_back(c, failed).await;
    };
    let mut tried: Vec<ChannelId> = serde_json::from_value(row.js("tried")?).unwrap_or_default();
    let contact = load_contact(c, &failed.contact_id).await?;
    let Some(next) = next_identity(contact.preferred_channel_id.as_ref(), &contact.identities, &tried) else {
        return Ok(());
    };
    let channel_id = next.channel_id.clone();
    let options = c.one("SELECT options FROM messages WHERE id = $1", args![&failed.id]).await?.js("options")?;
    let req = OutboundRequest {
        to: Recipient::Contact(failed.contact_id.clone()),
        channel_id: Some(channel_id.clone()),
        text: failed.text.clone(),
        buttons: failed.buttons.clone(),
        attachment_ids: Vec::new(),
        idempotency_key: None,
        author: failed.author.clone(),
        reply_to: None,
        options,
    };
    let (message, _) = enqueue(c, req).await?;
    tried.push(channel_id.clone());
    c.exec(
        "UPDATE event_deliveries SET message_id = $1, channel_id = $2, tried = $3 WHERE id = $4",
        args![&message.id, &channel_id, to_json(&tried), row.s("id")?],
    )
    .await?;
    Ok(())
}
