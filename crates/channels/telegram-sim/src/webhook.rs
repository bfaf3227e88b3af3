//! The webhook sender: while a webhook is set, each pending update is POSTed in order as one
//! JSON Update, with `X-Telegram-Bot-Api-Secret-Token` when a secret is set. A 2xx answer
//! removes the update; anything else is retried with back-off. Telegram backs off up to a
//! minute or more; the simulator starts at 100 ms and doubles up to 2 s so tests stay fast.
//!
//! Not simulated: answering a delivery with a method call in the response body, and
//! parallel delivery across chats (`max_connections`).

use std::sync::Arc;
use std::time::Duration;

use crate::state::{unix_now, Inner};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Delivers updates of one bot for as long as webhook `generation` is the current one.
pub(crate) async fn deliver(inner: Arc<Inner>, token: String, generation: u64) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if *inner.stop.borrow() {
            return;
        }
        let (next, mut changes) = {
            let mut world = inner.world();
            let Ok(bot) = world.bot(&token) else { return };
            let hook = match &bot.webhook {
                Some(h) if bot.webhook_generation == generation => h.clone(),
                _ => return,
            };
            let changes = bot.changed.subscribe();
            let next = bot.updates.front().map(|u| (u.id, u.to_json(), hook.url, hook.secret));
            (next, changes)
        };
        let Some((update_id, body, url, secret)) = next else {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = inner.stopping() => return,
            }
            continue;
        };
        let mut request =
            inner.http.post(&url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
        if let Some(s) = &secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", s);
        }
        let outcome = match request.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("Wrong response from the webhook: {}", r.status())),
            Err(e) if e.is_connect() => Err("Connection refused".to_string()),
            Err(e) if e.is_timeout() => Err("Read timeout expired".to_string()),
            Err(e) => Err(e.to_string()),
        };
        {
            let mut world = inner.world();
            let Ok(bot) = world.bot(&token) else { return };
            if bot.webhook_generation != generation {
                return;
            }
            match &outcome {
                Ok(()) => {
                    if bot.updates.front().is_some_and(|u| u.id == update_id) {
                        bot.updates.pop_front();
                    }
                }
                Err(message) => {
                    if let Some(h) = bot.webhook.as_mut() {
                        h.last_error = Some((unix_now(), message.clone()));
                    }
                }
            }
        }
        match outcome {
            Ok(()) => backoff = FIRST_BACKOFF,
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
