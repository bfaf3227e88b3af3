//! The demo's two pages (the phone and the 1C console) and their static files: small
//! server-rendered shells in the visitor's language (the operator UI's `okno_lang` cookie) that
//! a hand-written script fills from the demo's JSON endpoints. Scripts only from okno, as in
//! the operator UI.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use okno_domain::{Error, Result};
use okno_server::ui::i18n::Lang;
use serde_json::{json, Map, Value};

use crate::texts;

/// The same policy as the operator UI: scripts and styles only from okno, no framing.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("phone.html", include_str!("templates/phone.html")),
    ("console.html", include_str!("templates/console.html")),
];

/// `/demo/assets/demo.css`
pub const CSS: &str = include_str!("assets/demo.css");
/// `/demo/assets/phone.js`
pub const PHONE_JS: &str = include_str!("assets/phone.js");
/// `/demo/assets/console.js`
pub const CONSOLE_JS: &str = include_str!("assets/console.js");

/// The texts the scripts show, handed to them as JSON in the page (keys of [`crate::texts`]).
pub const SCRIPT_TEXTS: &[&str] = &[
    "demo_start",
    "demo_send",
    "demo_write",
    "demo_reply",
    "demo_edited",
    "demo_you_pressed",
    "demo_not_started",
    "demo_no_messages",
    "demo_back",
    "demo_attach",
    "demo_open_bot",
    "demo_group_members",
    "demo_post",
    "demo_post_again",
    "demo_duplicate",
    "demo_accepted",
    "demo_nothing_yet",
    "demo_failed",
    "demo_recipients",
    "demo_delivered_to",
    "demo_unresolved",
    "demo_status",
    "demo_received_nothing",
    "demo_task_claimed_by",
    "demo_task_open",
    "demo_started_survey",
    "demo_broadcast_created",
    "demo_live_off",
    "demo_photo",
    "demo_subscriber",
    "demo_pressed",
    "demo_press_answer",
    "demo_press_broadcast",
    "demo_press_bot_menu",
    "demo_press_task",
    "demo_press_survey",
    "demo_press_button",
];

/// The templates, built once.
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// Loads the templates; a broken one is a programming error reported at start.
    pub fn new() -> Result<Pages> {
        let mut env = Environment::new();
        for (name, src) in TEMPLATES {
            env.add_template(name, src).map_err(|e| Error::internal(format!("demo template {name}: {e}")))?;
        }
        env.add_function("t", |state: &minijinja::State, key: &str| -> String {
            let lang = state.lookup("lang").and_then(|v| v.as_str().and_then(Lang::parse)).unwrap_or(Lang::En);
            texts::t(lang, key)
        });
        Ok(Pages { env })
    }

    /// Renders a page in the visitor's language with the scripts' texts.
    pub fn render(&self, name: &str, headers: &HeaderMap, mut ctx: Value) -> Response {
        let lang = Lang::of(headers);
        let texts: Map<String, Value> =
            SCRIPT_TEXTS.iter().map(|k| (k.to_string(), json!(texts::t(lang, k)))).collect();
        ctx["lang"] = json!(lang.code());
        ctx["texts"] = Value::Object(texts);
        match self.env.get_template(name).and_then(|t| t.render(&ctx)) {
            Ok(html) => {
                let mut resp = Html(html).into_response();
                let h = resp.headers_mut();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
                h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
                h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
                h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
                resp
            }
            Err(e) => {
                tracing::error!(template = name, error = %e, "a demo page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be drawn; the server log has the details")
                    .into_response()
            }
        }
    }
}

/// A static file of the pages.
pub fn asset(body: &'static str, mime: &'static str) -> Response {
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

    use super::*;

    /// Every `t("…")` of the templates and every text the scripts use.
    fn keys() -> Vec<String> {
        let mut keys: Vec<String> = SCRIPT_TEXTS.iter().map(|k| k.to_string()).collect();
        for (_, src) in TEMPLATES {
            for part in src.split("t(\"").skip(1).chain(src.split("t('").skip(1)) {
                // `t("demo_title_" ~ nav)` is built from a prefix; its keys are added below.
                if let Some(k) = part.split(['"', '\'']).next().filter(|k| !k.ends_with('_')) {
                    keys.push(k.to_string());
                }
            }
        }
        for nav in ["phone", "console"] {
            keys.push(format!("demo_title_{nav}"));
        }
        for p in crate::cast::PEOPLE {
            keys.push(format!("demo_role_{}", p.role));
            keys.push(format!("demo_hint_{}", p.role));
        }
        keys.push("demo_no_subscriber".into());
        keys
    }

    #[test]
    fn every_text_of_the_pages_is_in_both_languages() {
        for k in keys() {
            assert_ne!(texts::t(Lang::En, &k), k, "{k} has no English text");
            assert_ne!(texts::t(Lang::Ru, &k), k, "{k} has no Russian text");
        }
    }

    #[test]
    fn the_pages_render_in_russian_and_english() {
        let pages = Pages::new().unwrap();
        for (cookie, needle) in [("okno_lang=ru", "Вы —"), ("okno_lang=en", "You are")] {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, HeaderValue::from_static(cookie));
            let resp = pages.render("phone.html", &headers, json!({"nav": "phone", "admin_login": "admin"}));
            assert_eq!(resp.status(), StatusCode::OK);
            assert!(resp.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'self'"));
            let body = futures::executor::block_on(axum::body::to_bytes(resp.into_body(), 1 << 20)).unwrap();
            let html = String::from_utf8(body.to_vec()).unwrap();
            assert!(html.contains(needle), "{cookie}: {html}");
            assert!(html.contains("id=\"demo-texts\""), "the scripts get their texts");
        }
    }
}
