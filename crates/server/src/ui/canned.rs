//! Canned responses: short texts an operator inserts by typing `/shortcut` in the reply box.
//!
//! They are kept in `DATA_DIR/ui-canned.json` (every process sharing the data folder sees
//! the same list; each change rewrites the file atomically), edited on an administration page.
//! A reply that is exactly `/shortcut` is expanded on the server too, so it works without
//! the page's script.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use okno_domain::model::Permission;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{error_page, refuse, Form, Session};
use crate::AppState;

/// One canned response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Canned {
    pub shortcut: String,
    pub text: String,
}

/// The list and its file.
pub struct CannedStore {
    path: PathBuf,
    /// Serialises this process's read-modify-write of the file.
    lock: Mutex<()>,
}

impl CannedStore {
    pub fn new(data_dir: &Path) -> CannedStore {
        CannedStore { path: data_dir.join("ui-canned.json"), lock: Mutex::new(()) }
    }

    /// The list, sorted by shortcut; an absent file is an empty list.
    pub fn list(&self) -> okno_domain::Result<Vec<Canned>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| okno_domain::Error::internal(format!("{} is not a valid list: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(okno_domain::Error::internal(format!("reading {}: {e}", self.path.display()))),
        }
    }

    /// The text of `/shortcut`, if `text` is exactly one.
    pub fn expand(&self, text: &str) -> Option<String> {
        let key = text.trim().strip_prefix('/')?;
        self.list().ok()?.into_iter().find(|c| c.shortcut == key).map(|c| c.text)
    }

    fn change(&self, f: impl FnOnce(&mut Vec<Canned>)) -> okno_domain::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut list = self.list()?;
        f(&mut list);
        list.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
        let tmp = self.path.with_extension("json.tmp");
        let io = |e: std::io::Error| okno_domain::Error::internal(format!("writing {}: {e}", self.path.display()));
        let body = serde_json::to_vec_pretty(&list).map_err(|e| okno_domain::Error::internal(e.to_string()))?;
        std::fs::write(&tmp, body).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }

    /// Adds or replaces the response with this shortcut.
    pub fn put(&self, c: Canned) -> okno_domain::Result<()> {
        let valid = !c.shortcut.is_empty()
            && c.shortcut.len() <= 40
            && c.shortcut.chars().all(|ch| ch.is_alphanumeric() || ch == '_' || ch == '-');
        if !valid {
            return Err(okno_domain::Error::invalid(
                "invalid_shortcut",
                "a shortcut is 1..40 letters, digits, `_` or `-` (typed after `/`)",
            ));
        }
        if c.text.trim().is_empty() || c.text.len() > 4000 {
            return Err(okno_domain::Error::invalid("invalid_text", "the text is 1..4000 characters"));
        }
        self.change(|list| {
            list.retain(|x| x.shortcut != c.shortcut);
            list.push(c);
        })
    }

    pub fn delete(&self, shortcut: &str) -> okno_domain::Result<()> {
        self.change(|list| list.retain(|x| x.shortcut != shortcut))
    }
}

/// `GET /ui/admin/canned`
pub async fn page(State(state): State<AppState>, s: Session) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Configure) {
        return r;
    }
    match ui.canned.list() {
        Ok(list) => ui.render(
            "admin_canned.html",
            &s,
            json!({"title": super::i18n::t(s.lang, "canned"), "nav": "admin", "sub": "canned", "rows": list}),
        ),
        Err(e) => error_page(ui, &s, e),
    }
}

/// `POST /ui/admin/canned`: `action` = `put` (`shortcut`, `text`) | `delete` (`shortcut`).
pub async fn change(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Configure) {
        return r;
    }
    let shortcut = form.field("shortcut").unwrap_or_default().trim_start_matches('/').to_string();
    let result = match form.get("action") {
        Some("delete") => ui.canned.delete(&shortcut),
        _ => ui
            .canned
            .put(Canned { shortcut: shortcut.clone(), text: form.get("text").unwrap_or("").trim().to_string() }),
    };
    match result {
        Ok(()) => Redirect::to("/ui/admin/canned").into_response(),
        Err(e) => error_page(ui, &s, e),
    }
}
