//! The Callback API: the confirmation handshake when a server is added, and the push of every
//! event to each confirmed server with the community's `secret` in the body.
//!
//! ```text
//! addCallbackServer ─▶ POST {"type":"confirmation","group_id"} ─▶ body == code? status ok : failed
//! event ─▶ one task per (server, event):
//!   POST {type, event_id, v, object, group_id, secret} ─▶ 200 + body "ok"? done
//!     : sleep(first·2^k), POST again with X-Retry-Counter: k ─▶ … ─▶ give up after max_retries
//! ```
//!
//! A server must answer `ok` with HTTP 200 (dev.vk.com Callback API); retries carry
//! `X-Retry-Counter` ([3P] bot codebases that skip retried events). The retry delays are the
//! simulator's (VK documents only that it retries and stops after several errors in a row).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::state::{CallbackServer, Inner};
use crate::CallbackAttempt;

/// Sends the confirmation request to a server and records whether it answered the code.
pub(crate) async fn confirm(inner: Arc<Inner>, group_id: i64, server_id: i64) {
    let found = {
        let mut world = inner.world();
        world.group_by_id(group_id).and_then(|g| {
            let code = g.confirmation.clone();
            g.servers.iter().find(|s| s.id == server_id).map(|s| (s.url.clone(), code))
        })
    };
    let Some((url, code)) = found else { return };
    let body = json!({"type": "confirmation", "group_id": group_id});
    let answer = inner.http.post(&url).json(&body).send().await;
    let confirmed = match answer {
        Ok(r) if r.status().is_success() => r.text().await.map(|t| t.trim() == code).unwrap_or(false),
        _ => false,
    };
    let mut world = inner.world();
    if let Some(s) = world.group_by_id(group_id).and_then(|g| g.servers.iter_mut().find(|s| s.id == server_id)) {
        s.status = if confirmed { "ok" } else { "failed" }.into();
    }
}

/// Starts pushing `event` to each of `servers`.
pub(crate) fn spawn_pushes(inner: &Arc<Inner>, group_id: i64, event: &Value, servers: Vec<CallbackServer>) {
    for s in servers {
        tokio::spawn(push(inner.clone(), group_id, event.clone(), s));
    }
}

async fn push(inner: Arc<Inner>, group_id: i64, event: Value, server: CallbackServer) {
    let (first, max_retries) = {
        let world = inner.world();
        (world.retry_first, world.max_retries)
    };
    let mut body = event;
    if let Some(secret) = &server.secret_key {
        body["secret"] = secret.clone().into();
    }
    let kind = body["type"].as_str().unwrap_or_default().to_string();
    let mut wait = first;
    for retry in 0..=max_retries {
        if *inner.stop.borrow() {
            return;
        }
        let mut request = inner.http.post(&server.url).json(&body);
        if retry > 0 {
            request = request.header("X-Retry-Counter", retry.to_string());
        }
        let (status, text) = match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (Some(status), r.text().await.unwrap_or_default())
            }
            Err(_) => (None, String::new()),
        };
        let delivered = status == Some(200) && text.trim() == "ok";
        {
            let mut world = inner.world();
            let Some(g) = world.group_by_id(group_id) else { return };
            g.attempts.push(CallbackAttempt {
                url: server.url.clone(),
                event_type: kind.clone(),
                retry,
                status,
                answer: text,
                at: Instant::now(),
            });
        }
        if delivered {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.stopping() => return,
        }
        wait = Duration::from_secs_f64(wait.as_secs_f64() * 2.0);
    }
}
