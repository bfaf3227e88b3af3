//! The delivery workers: they drain the outbox.
//!
//! ```text
//!   ┌─► claim due jobs (leases; per-conversation order) ──► spawn one task per job ─┐
//!   │      send ──► adapter (throttled) ──► sent | failed | retry at backoff/retry-after
//!   │      webhook ──► signed POST ──► delivered | failed | retry
//!   │      fetch_attachments ──► download (size-limited) ──► attachment store
//!   └── wait: a wake-up (new work here), a finished task, or the poll interval ◄────┘
//! ```
//!
//! Under load the loop fills the live lane's slots a quarter at a time, fewer at most every few
//! milliseconds, in power-of-two sizes: a claim costs about the same for one job or sixteen,
//! and finished jobs and wake-ups come thousands of times a second.
//!
//! On shutdown the loop stops claiming, waits for in-flight jobs (up to the grace period) and
//! hands back every lease it still holds, so another process takes over at once. A process
//! that dies without that loses nothing: its leases expire and are claimed again.

use std::sync::Arc;
use std::time::Duration;

use okno_channel::http::{describe, FetchError};
use okno_channel::SendError;
use okno_domain::ids::{ChannelId, MessageId};
use okno_domain::model::MessageStatus;
use okno_domain::signing;
use okno_domain::time::now_ms;
use okno_domain::ErrorKind;
use okno_store::{DeliveryAttempt, FetchedAttachment, IdentityFlag, Job, JobKind, SentMessage, Store};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// The least time between two claims for the live lane.
const CLAIM_SPACING: Duration = Duration::from_millis(5);

/// How many jobs to claim for `free` slots: the largest power of two not above it, so that the
/// store sees a handful of claim sizes (each a statement it keeps prepared), never more jobs
/// than slots. The rest stay free for the next claim.
fn claim_size(free: usize) -> u32 {
    let free = u32::try_from(free).unwrap_or(u32::MAX).max(1);
    1 << free.ilog2()
}

/// Which lane a finished job was claimed from.
enum Lane {
    Live,
    Bulk,
}

impl Engine {
    /// Runs the workers until `shutdown` is cancelled, then drains and releases.
    pub async fn run_workers(self: Arc<Self>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.cfg.workers.max(1)));
        let bulk_slots = Arc::new(Semaphore::new(self.cfg.bulk_workers.max(1)));
        // Whether broadcast sends may be waiting: looked for after a wake-up for that lane, a
        // finished broadcast send or a poll, not on every turn of the loop.
        let mut bulk_due = true;
        let finisher = Finisher::start(self.store.clone(), self.owner.clone());
        let mut tasks = JoinSet::new();
        let poll = Duration::from_millis(self.cfg.poll_interval_ms.max(10));
        // Leases are renewed while their jobs run (a slow upload or a long wait on a rate limit
        // must not let another worker take the same job): one statement for all of them.
        let mut renew = tokio::time::interval(Duration::from_millis((self.cfg.lease_ms / 3).max(10) as u64));
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The poll is a deadline, not a pause after each turn: under steady live traffic the
        // loop never sits idle for a whole interval, yet a broadcast send whose retry came due
        // must still be looked for.
        let mut next_look = tokio::time::Instant::now() + poll;
        // A claim costs about as much whether it takes one job or sixteen, and under load
        // finished jobs and new work (a wake-up each) come thousands of times a second: so
        // slots are filled together once a quarter of them are free, and fewer at most once
        // every `CLAIM_SPACING`. Alone, a job waits for no one.
        let together = (self.cfg.workers / 4).max(1);
        let mut want = true;
        let mut last_claim = tokio::time::Instant::now() - CLAIM_SPACING;
        loop {
            let free = slots.available_permits();
            let now = tokio::time::Instant::now();
            if free > 0 && want && (free >= together || now >= last_claim + CLAIM_SPACING) {
                last_claim = now;
                let ask = claim_size(free);
                match self.store.claim_lane(&self.owner, okno_store::LANE_LIVE, ask, self.cfg.lease_ms).await {
                    Ok(jobs) => {
                        // All that was asked for: more may be waiting.
                        want = jobs.len() == ask as usize;
                        for job in jobs {
                            let Ok(permit) = slots.clone().acquire_owned().await else { break };
                            let (engine, finisher) = (self.clone(), finisher.clone());
                            tasks.spawn(async move {
                                engine.process(job, &finisher).await;
                                drop(permit);
                                Lane::Live
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming jobs failed; will retry"),
                }
            }
            let free_bulk = bulk_slots.available_permits();
            if bulk_due && free_bulk > 0 {
                let ask = claim_size(free_bulk);
                match self.store.claim_lane(&self.owner, okno_store::LANE_BULK, ask, self.cfg.lease_ms).await {
                    Ok(jobs) => {
                        bulk_due = jobs.len() == ask as usize;
                        for job in jobs {
                            let Ok(permit) = bulk_slots.clone().acquire_owned().await else { break };
                            let (engine, finisher) = (self.clone(), finisher.clone());
                            tasks.spawn(async move {
                                engine.process(job, &finisher).await;
                                drop(permit);
                                Lane::Bulk
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming broadcast sends failed; will retry"),
                }
            }
            let claim_at = last_claim + CLAIM_SPACING;
            let free = slots.available_permits();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => want = true,
                _ = self.wake_bulk.notified() => bulk_due = true,
                // A finished job frees a slot and may let the next one in its queue go; a
                // finished live job leaves the broadcast lane as it was. A task that panicked
                // may have held either lane.
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    want = true;
                    bulk_due |= !matches!(done, Ok(Lane::Live));
                    // The jobs that finished with it are counted on this turn too.
                    while let Some(done) = tasks.try_join_next() {
                        bulk_due |= !matches!(done, Ok(Lane::Live));
                    }
                }
                // Work is waiting for the spacing to pass.
                _ = tokio::time::sleep_until(claim_at), if want && free > 0 && free < together => {}
                _ = tokio::time::sleep_until(next_look) => {}
                _ = renew.tick(), if !tasks.is_empty() => {
                    if let Err(e) = self.store.extend_leases(&self.owner, self.cfg.lease_ms).await {
                        tracing::warn!(error = %e, "renewing leases failed");
                    }
                }
            }
            let now = tokio::time::Instant::now();
            if now >= next_look {
                bulk_due = true;
                want = true;
                next_look = now + poll;
            }
        }
        let grace = Duration::from_millis(self.cfg.shutdown_grace_ms);
        let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("shutdown grace period over; abandoning in-flight jobs to their leases");
            tasks.abort_all();
        }
        match self.store.release_jobs(&self.owner).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "handed back leased jobs"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not release leases; they will expire"),
        }
    }

    /// Runs one job to an outcome. Store errors leave the job to be retried, up to twice the
    /// send budget.
    async fn process(&self, job: Job, finisher: &Finisher) {
        let kind = job.kind.as_str();
        let outcome = self.run_job(&job, finisher).await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) if job.attempts >= self.cfg.send_max_attempts * 2 => {
                tracing::error!(job = job.seq, kind, error = %e, "a job kept failing in the store; giving up");
                let reason = format!("gave up: {}", e.message);
                match job.kind {
                    JobKind::Send => self
                        .fail_send(&MessageId::from(&job.ref_id), &reason, None, &job)
                        .await
                        .unwrap_or(Outcome::Failed),
                    // A broadcast is never left running without its feeder: it keeps trying, slowly.
                    JobKind::Broadcast => Outcome::Again(Duration::from_secs(60)),
                    _ => Outcome::Failed,
                }
            }
            Err(e) => {
                tracing::warn!(job = job.seq, kind, error = %e, "job hit a store error; retrying");
                Outcome::Retry(e.message, None)
            }
        };
        let label = match &outcome {
            Outcome::Done | Outcome::Ended { failed: false, .. } => "sent",
            Outcome::Failed | Outcome::Ended { failed: true, .. } => "failed",
            Outcome::Retry(..) | Outcome::Again(..) => "retry",
        };
        self.metrics.delivery(kind, label);
        let ended = match outcome {
            Outcome::Ended { held, .. } => Ok(held),
            Outcome::Done | Outcome::Failed => self.store.complete_job(job.seq, &self.owner).await,
            Outcome::Again(after) => {
                self.wake_after(after, job.lane == okno_store::LANE_BULK);
                self.store.reschedule_job(job.seq, &self.owner, now_ms() + after.as_millis() as i64).await
            }
            Outcome::Retry(reason, after) => {
                let delay = after.unwrap_or_else(|| self.backoff(job.attempts));
                self.store.retry_job(job.seq, &self.owner, now_ms() + delay.as_millis() as i64, &reason).await
            }
        };
        match ended {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job = job.seq, kind, "the job's lease was lost while it ran; its new owner decides")
            }
            Err(e) => tracing::warn!(job = job.seq, error = %e, "could not record a job's end; its lease will expire"),
        }
    }

    async fn run_job(&self, job: &Job, finisher: &Finisher) -> okno_domain::Result<Outcome> {
        match job.kind {
            JobKind::Send => self.process_send(job, finisher).await,
            JobKind::Webhook => self.process_webhook(job).await,
            JobKind::FetchAttachments => self.process_fetch(job).await,
            JobKind::ProcessEvent => self.process_event(job).await,
            JobKind::NotifyRule => self.process_rule(job).await,
            JobKind::BotStep => self.isolated_bot_step(&MessageId::from(&job.ref_id)).await,
            JobKind::Broadcast => self.feed_broadcast(&job.ref_id).await,
            JobKind::TaskReoffer => self.reoffer_task(&job.ref_id).await,
            JobKind::Unsnooze => self.store.wake_snoozed(&job.ref_id).await.map(|_| Outcome::Done),
            JobKind::UnreadByEmail => self.unread_by_email(&MessageId::from(&job.ref_id)).await.map(|()| Outcome::Done),
            JobKind::ConnectorEvent => self.connector_event(&job.ref_id).await.map(connector_outcome),
            JobKind::ConnectorTaskTaken => self.connector_task_taken(&job.ref_id).await.map(connector_outcome),
            JobKind::ConnectorAction => self.connector_action(&job.ref_id).await.map(connector_outcome),
            JobKind::ConnectorPoll => self.connector_poll(&job.ref_id).await.map(|polled| match polled {
                None => Outcome::Done,
                Some(p) => match p.outcome {
                    crate::connectors::Outcome::Retry(why) | crate::connectors::Outcome::Held(why) => {
                        Outcome::Retry(why, None)
                    }
                    crate::connectors::Outcome::Reconfigured(why) => Outcome::Retry(why, Some(Duration::ZERO)),
                    _ => Outcome::Again(p.again),
                },
            }),
            JobKind::SurveyAnswer => self.survey_answer_job(&MessageId::from(&job.ref_id)).await,
            JobKind::SurveyRemind => self.survey_remind_job(&job.ref_id).await,
            JobKind::SurveyExpire => self.survey_expire_job(&job.ref_id).await,
            JobKind::SurveyScan => self.survey_scan_job(&job.ref_id).await,
        }
    }

    /// Wakes the workers once `after` has passed (a job rescheduled for a short while is not
    /// left waiting for the next poll).
    fn wake_after(&self, after: Duration, bulk: bool) {
        let wake = move |engine: &Engine| if bulk { engine.wake_bulk() } else { engine.wake() };
        if after.is_zero() {
            wake(self);
            return;
        }
        if after > Duration::from_secs(5) {
            return;
        }
        if let Some(engine) = self.self_ref() {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                wake(&engine);
            });
        }
    }

    /// A bot's turn runs administrator-written logic: should it ever panic, the turn ends as
    /// failed (and is logged) instead of holding its lease — and the conversation's queue —
    /// for ever.
    async fn isolated_bot_step(&self, message_id: &MessageId) -> okno_domain::Result<Outcome> {
        let Some(engine) = self.self_ref() else {
            return Ok(Outcome::Retry("the engine is shutting down".into(), None));
        };
        let id = message_id.clone();
        match tokio::spawn(async move { engine.bot_step(&id).await }).await {
            Ok(done) => done.map(|()| Outcome::Done),
            Err(e) if e.is_panic() => {
                tracing::error!(message = %message_id, "a bot's turn panicked; it is dropped");
                Ok(Outcome::Failed)
            }
            Err(e) => Err(okno_domain::Error::internal(format!("a bot's turn was cancelled: {e}"))),
        }
    }

    async fn process_send(&self, job: &Job, finisher: &Finisher) -> okno_domain::Result<Outcome> {
        let message_id = MessageId::from(&job.ref_id);
        let target = match self.store.delivery_target(&message_id).await {
            Ok(t) => t,
            Err(e) if e.kind == ErrorKind::NotFound && e.code == "message_not_found" => return Ok(Outcome::Done),
            Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Unprocessable) => {
                return self.fail_send(&message_id, &e.message, None, job).await;
            }
            Err(e) => return Err(e),
        };
        if target.message.status != MessageStatus::Queued {
            // Sent before a crash cut the job short: nothing more to do.
            return Ok(Outcome::Done);
        }
        if job.lane == okno_store::LANE_BULK {
            // Paused or cancelled after this send was queued.
            self.refresh_held().await;
            let broadcast = target.message.author.as_deref().and_then(|a| a.strip_prefix("broadcast:"));
            match broadcast.and_then(|b| self.broadcast_held(b)).as_deref() {
                Some("paused") => return Ok(Outcome::Again(Duration::from_secs(2))),
                Some("cancelled") => {
                    return self.fail_send(&message_id, "the broadcast was cancelled", None, job).await
                }
                _ => {}
            }
        }
        let adapter = match self.adapter_for(&target.channel) {
            Ok(a) => a,
            Err(e) => return self.fail_send(&message_id, &e.message, None, job).await,
        };
        // The customer-service window: closed, a message goes out as its template or not at all.
        let mut target = target;
        let caps = self.capabilities(&target.channel)?;
        if let Some(window) = crate::window::Window::of(&caps, &target.identity, okno_domain::time::now_ms()) {
            if !window.open {
                if target.options.get(okno_domain::channel::TEMPLATE_OPTION).is_none() {
                    let platform = self.platform(&target.channel).map(|p| p.title()).unwrap_or("this platform");
                    return self.fail_send(&message_id, &window.refusal(platform), None, job).await;
                }
                if !target.options.is_object() {
                    target.options = serde_json::json!({});
                }
                target.options[okno_domain::channel::WINDOW_CLOSED_OPTION] = serde_json::json!(true);
            }
        }
        match adapter.send(&target).await {
            Ok(sent) => {
                // An operator's answer the person may not see at once (a website visitor who left
                // the page) is checked again later, and sent by e-mail if still unread.
                let unread_check = caps
                    .unread_by_email
                    .filter(|_| crate::unread::written_by_a_person(target.message.author.as_deref()))
                    .map(|after| okno_domain::time::now_ms() + after.as_millis() as i64);
                let sent = SentMessage {
                    message_id: message_id.clone(),
                    external_id: sent.external_id,
                    seq: job.seq,
                    unread_check,
                };
                let held = finisher.finish(sent).await?;
                Ok(Outcome::Ended { failed: false, held })
            }
            Err(SendError::Moved { chat_id }) => {
                self.store.move_chat(&target.channel.id, &target.identity.chat_id, &chat_id).await?;
                Ok(Outcome::Retry(format!("the chat moved to {chat_id}"), Some(Duration::ZERO)))
            }
            Err(SendError::Permanent { reason, flag }) => {
                tracing::info!(message = %job.ref_id, %reason, "send failed for good");
                self.fail_send(&message_id, &reason, flag, job).await
            }
            Err(SendError::Retry { reason, after }) => {
                if job.attempts >= self.cfg.send_max_attempts {
                    let reason = format!("gave up after {} attempts: {reason}", job.attempts);
                    self.fail_send(&message_id, &reason, None, job).await
                } else {
                    tracing::debug!(message = %job.ref_id, attempt = job.attempts, %reason, "send will be retried");
                    Ok(Outcome::Retry(reason, after))
                }
            }
        }
    }

    /// Marks a message failed and ends its send job in one transaction.
    async fn fail_send(
        &self,
        message_id: &MessageId,
        reason: &str,
        flag: Option<IdentityFlag>,
        job: &Job,
    ) -> okno_domain::Result<Outcome> {
        let held = self.store.fail_send(message_id, reason, flag, job.seq, &self.owner).await?;
        Ok(Outcome::Ended { failed: true, held })
    }

    async fn process_webhook(&self, job: &Job) -> okno_domain::Result<Outcome> {
        let pending = match self.store.pending_delivery(&job.ref_id).await {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        if pending.delivery.status != "pending" {
            return Ok(Outcome::Done);
        }
        let body =
            serde_json::to_vec(&pending.delivery.body).map_err(|e| okno_domain::Error::internal(e.to_string()))?;
        let answer = match self.http.post(&pending.url) {
            Err(e) => Err((None, e.message, None)),
            Ok(req) => {
                let sent = req
                    .header("content-type", "application/json")
                    .header("x-okno-event", &pending.delivery.event_type)
                    .header("x-okno-delivery", &pending.delivery.id)
                    .header("x-okno-signature", signing::sign(pending.secret.as_bytes(), &body))
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status().is_success() => Ok(i64::from(resp.status().as_u16())),
                    Ok(resp) => {
                        let code = resp.status().as_u16();
                        let after = okno_channel::http::retry_after(resp.headers());
                        Err((Some(i64::from(code)), format!("the receiver answered HTTP {code}"), after))
                    }
                    Err(e) => Err((None, describe(&e), None)),
                }
            }
        };
        match answer {
            Ok(status_code) => {
                self.store
                    .record_delivery_attempt(&pending.delivery.id, DeliveryAttempt::Delivered { status_code })
                    .await?;
                Ok(Outcome::Done)
            }
            Err((status_code, error, _)) if job.attempts >= self.cfg.webhook_max_attempts => {
                let error = format!("gave up after {} attempts: {error}", job.attempts);
                self.store
                    .record_delivery_attempt(&pending.delivery.id, DeliveryAttempt::Failed { status_code, error })
                    .await?;
                Ok(Outcome::Failed)
            }
            Err((status_code, error, after)) => {
                self.store
                    .record_delivery_attempt(
                        &pending.delivery.id,
                        DeliveryAttempt::Retrying { status_code, error: error.clone() },
                    )
                    .await?;
                Ok(Outcome::Retry(error, after))
            }
        }
    }

    async fn process_fetch(&self, job: &Job) -> okno_domain::Result<Outcome> {
        let message = match self.store.get_message(&MessageId::from(&job.ref_id)).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        let last_try = job.attempts >= self.cfg.send_max_attempts;
        let mut results = Vec::new();
        for a in message.attachments.iter().filter(|a| a.state == "pending") {
            let Some(url) = &a.source_url else { continue };
            let limit = self.cfg.max_attachment_bytes;
            // An http(s) address is fetched as it is; anything else names a file the way the
            // channel's platform does, and the platform fetches it.
            let web = url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            let fetched = if web {
                self.http.fetch_limited(url, limit).await
            } else {
                self.fetch_from_platform(&message.channel_id, url).await
            };
            match fetched {
                Ok(fetched) => {
                    let sha = self
                        .files
                        .put(&fetched.body)
                        .await
                        .map_err(|e| okno_domain::Error::internal(format!("attachment store: {e}")))?;
                    results.push(FetchedAttachment::Stored {
                        id: a.id.clone(),
                        size: fetched.body.len() as i64,
                        sha256: sha,
                        // A generic type from the server says less than the type the sender declared.
                        mime: fetched.mime.filter(|m| m != "application/octet-stream"),
                    });
                }
                Err(FetchError::TooLarge { limit }) => results.push(FetchedAttachment::Failed {
                    id: a.id.clone(),
                    note: format!("not downloaded: the file is larger than the {} MB limit", limit / (1024 * 1024)),
                }),
                Err(FetchError::Refused(reason)) => results
                    .push(FetchedAttachment::Failed { id: a.id.clone(), note: format!("not downloaded: {reason}") }),
                Err(FetchError::Network(reason)) if last_try => results.push(FetchedAttachment::Failed {
                    id: a.id.clone(),
                    note: format!("not downloaded after {} attempts: {reason}", job.attempts),
                }),
                Err(FetchError::Network(reason)) => return Ok(Outcome::Retry(reason, None)),
            }
        }
        self.store.finish_attachments(&message.id, results).await?;
        Ok(Outcome::Done)
    }
}

/// How a job ended this time.
pub(crate) enum Outcome {
    /// Finished (sent, delivered, stored, or nothing left to do).
    Done,
    /// Finished, and the job was ended in the same transaction that recorded the result;
    /// `held` is `false` when the lease had been lost (the job is its new owner's).
    Ended { failed: bool, held: bool },
    /// Finished for good without success; the reason is on the message or delivery.
    Failed,
    /// Try again: after the given time, or after the backoff.
    Retry(String, Option<Duration>),
    /// Did its part; run again after this long (a job that works in slices).
    Again(Duration),
}

/// A connector's job as the worker ends it: a refusal is on the connector's status already.
fn connector_outcome(o: crate::connectors::Outcome) -> Outcome {
    match o {
        crate::connectors::Outcome::Retry(why) | crate::connectors::Outcome::Held(why) => Outcome::Retry(why, None),
        crate::connectors::Outcome::Reconfigured(why) => Outcome::Retry(why, Some(Duration::ZERO)),
        crate::connectors::Outcome::Done | crate::connectors::Outcome::Refused(_) => Outcome::Done,
    }
}

/// Most sends recorded in one transaction.
const FINISH_BATCH: usize = 64;

type Finished = (SentMessage, oneshot::Sender<okno_domain::Result<bool>>);

/// Records sends that went out: those that finish while one transaction is being written are
/// written together in the next (one commit, one read of the subscriptions and one delete for
/// all of them), so nothing waits on a timer and a lone send is written at once.
#[derive(Clone)]
struct Finisher {
    queue: mpsc::UnboundedSender<Finished>,
}

impl Finisher {
    /// Starts the recording task; it ends when the last handle is dropped.
    fn start(store: Arc<dyn Store>, owner: String) -> Finisher {
        let (queue, mut pending) = mpsc::unbounded_channel::<Finished>();
        tokio::spawn(async move {
            while let Some(first) = pending.recv().await {
                let mut batch = vec![first];
                while batch.len() < FINISH_BATCH {
                    match pending.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                let (sent, answers): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                match store.finish_sends(sent.clone(), &owner).await {
                    Ok(held) => {
                        for (answer, held) in answers.into_iter().zip(held) {
                            let _ = answer.send(Ok(held));
                        }
                    }
                    // One at a time, so that a problem with one message is reported for it alone.
                    Err(_) if sent.len() > 1 => {
                        for (one, answer) in sent.into_iter().zip(answers) {
                            let held = store.finish_sends(vec![one], &owner).await.map(|h| h.first() == Some(&true));
                            let _ = answer.send(held);
                        }
                    }
                    Err(e) => {
                        for answer in answers {
                            let _ = answer.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        Finisher { queue }
    }

    /// Marks a message sent and ends its job; `false` when the lease had been lost.
    async fn finish(&self, sent: SentMessage) -> okno_domain::Result<bool> {
        let (answer, held) = oneshot::channel();
        self.queue.send((sent, answer)).map_err(|_| okno_domain::Error::internal("the send recorder has stopped"))?;
        held.await.map_err(|_| okno_domain::Error::internal("the send recorder dropped a send"))?
    }
}

impl Engine {
    /// A file an inbound message named by its platform's own reference.
    async fn fetch_from_platform(
        &self,
        channel_id: &str,
        reference: &str,
    ) -> Result<okno_channel::http::Fetched, FetchError> {
        let channel = self.channel(&ChannelId::from(channel_id)).await.map_err(|e| FetchError::Refused(e.message))?;
        let platform = self.platform(&channel).map_err(|e| FetchError::Refused(e.message))?;
        platform.fetch(&self.context, &channel, reference).await
    }
}

#[cfg(test)]
mod tests {
    use super::claim_size;

    #[test]
    fn claims_come_in_powers_of_two_never_above_the_free_slots() {
        let sizes: Vec<u32> = [1, 2, 3, 15, 16, 17, 31, 33, 63, 64].into_iter().map(claim_size).collect();
        assert_eq!(sizes, [1, 2, 2, 8, 16, 16, 16, 32, 32, 64]);
    }
}
