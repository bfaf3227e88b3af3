//! «Getting started»: what a new administrator does first, shown in the empty conversation pane
//! until it is all done — each step checked off by what okno holds, not by a click.
//!
//! ```text
//!  inbox page (administrator, no conversation open) ──▶ channels? operators? tokens? rules? bots?
//!      └── any step left ──▶ the checklist with a link to the page that does it
//! ```

use okno_domain::model::Permission;
use serde_json::{json, Value};

use super::Session;
use crate::AppState;

/// The steps for an administrator, or `None` when there is nothing left to do (or the operator
/// may not configure okno). Five small reads, made only for the full inbox page.
pub async fn checklist(state: &AppState, s: &Session) -> okno_domain::Result<Option<Value>> {
    if !s.role().allows(Permission::Configure) {
        return Ok(None);
    }
    let store = &state.engine.store;
    let steps = [
        ("channel", !store.list_channels().await?.is_empty(), "/ui/admin/channels"),
        ("operators", store.list_operators().await?.len() > 1, "/ui/admin/operators"),
        ("token", !store.list_tokens().await?.is_empty(), "/ui/admin/tokens"),
        ("rules", !store.list_rules().await?.is_empty(), "/ui/admin/rules"),
        ("bot", !store.list_bots().await?.is_empty(), "/ui/admin/bots"),
    ];
    if steps.iter().all(|(_, done, _)| *done) {
        return Ok(None);
    }
    let done = steps.iter().filter(|(_, done, _)| *done).count();
    Ok(Some(json!({
        "done": done,
        "total": steps.len(),
        "steps": steps.iter().map(|(key, done, href)| json!({"key": key, "done": done, "href": href})).collect::<Vec<_>>(),
    })))
}
