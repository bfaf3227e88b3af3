//! Webhook push: each update is POSTed to each subscription that wants it, as one bare
//! `Update` object (go client `stabs/webhook.*.json`), with `X-Max-Bot-Api-Secret` when the
//! subscription has a secret. Only HTTP 200 counts as delivered ("любой другой код ответа …
//! считается ошибкой доставки", dev.max.ru POST /subscriptions); anything else is retried on
//! the [`crate::state::RetryPolicy`] schedule, then dropped.
//!
//! ```text
//! push_update ─▶ one task per (subscription, update):
//!   attempt 1 ─▶ 200? done : sleep(first) ─▶ attempt 2 ─▶ … sleep(first·factor^k) … ─▶ give up
//! ```
//!
//! Updates are delivered independently, so a failing one does not hold the others back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::state::{Inner, Subscription};
use crate::WebhookAttempt;

/// Starts delivering `update` to each of `subs`.
pub(crate) fn spawn_deliveries(inner: &Arc<Inner>, token: &str, update: &Value, subs: Vec<Subscription>) {
    for sub in subs {
        tokio::spawn(deliver(inner.clone(), token.to_string(), update.clone(), sub));
    }
}

async fn deliver(inner: Arc<Inner>, token: String, update: Value, sub: Subscription) {
    let policy = inner.world().retry;
    let update_type = update["update_type"].as_str().unwrap_or_default().to_string();
    let body = update.to_string();
    let mut wait = policy.first;
    for attempt in 1..=policy.max_retries + 1 {
        if *inner.stop.borrow() || !still_subscribed(&inner, &token, &sub.url) {
            return;
        }
        let mut request =
            inner.http.post(&sub.url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
        if let Some(s) = &sub.secret {
            request = request.header("X-Max-Bot-Api-Secret", s);
        }
        let status = request.send().await.ok().map(|r| r.status().as_u16());
        {
            let mut world = inner.world();
            let Some(bot) = world.bot(&token) else { return };
            bot.attempts.push(WebhookAttempt {
                url: sub.url.clone(),
                update_type: update_type.clone(),
                secret: sub.secret.clone(),
                status,
                attempt,
                at: Instant::now(),
            });
        }
        if status == Some(200) {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.stopping() => return,
        }
        wait = Duration::from_secs_f64(wait.as_secs_f64() * policy.factor);
    }
}

fn still_subscribed(inner: &Inner, token: &str, url: &str) -> bool {
    let mut world = inner.world();
    world.bot(token).is_some_and(|b| b.subscriptions.iter().any(|s| s.url == url))
}
