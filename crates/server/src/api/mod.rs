//! The REST API under `/api/v1`. Handlers are thin: authenticate, parse, call the engine or
//! the store, map the result.

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use okno_domain::model::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{AppState, Settings};

pub mod attachments;
pub mod audit;
pub mod bots;
pub mod broadcasts;
pub mod channels;
pub mod connectors;
pub mod contacts;
pub mod conversations;
pub mod events;
pub mod messages;
pub mod reports;
pub mod rules;
pub mod surveys;
pub mod tasks;
pub mod tokens;
pub mod webhooks;

pub fn routes(settings: &Settings) -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(crate::openapi::document))
        .route("/channels", post(channels::create).get(channels::list))
        .route("/channels/{id}", get(channels::get).patch(channels::update).delete(channels::delete))
        .route("/connectors", post(connectors::create).get(connectors::list))
        .route("/connectors/{id}", get(connectors::get).patch(connectors::update).delete(connectors::delete))
        .route("/connectors/{id}/sync", post(connectors::sync))
        .route("/contacts", post(contacts::upsert).get(contacts::list))
        .route("/contacts/{id}", get(contacts::get).patch(contacts::update))
        .route("/contacts/{id}/merge", post(contacts::merge))
        .route("/contacts/{id}/link", post(contacts::link))
        .route("/contacts/{id}/calls", get(contacts::calls))
        .route("/conversations", get(conversations::list))
        .route("/conversations/{id}", get(conversations::get).patch(conversations::update))
        .route("/conversations/{id}/messages", get(conversations::messages).post(conversations::reply))
        .route("/conversations/{id}/chat-action", post(conversations::chat_action))
        .route("/conversations/{id}/notes", post(conversations::add_note).get(conversations::notes))
        .route("/messages", post(messages::send))
        .route("/messages/{id}", get(messages::get).patch(messages::edit))
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/webhooks/{id}", get(webhooks::get).delete(webhooks::delete))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/attachments",
            post(attachments::upload).layer(DefaultBodyLimit::max(settings.limits.max_attachment_bytes)),
        )
        .route("/attachments/{id}", get(attachments::download))
        .route("/tokens", post(tokens::create).get(tokens::list))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/audit", get(audit::list))
        .route("/events", post(events::post).get(events::list))
        .route("/events/{id}", get(events::get))
        .route("/rules", post(rules::put).get(rules::list))
        .route("/rules/preview", post(rules::preview))
        .route("/rules/{id}", get(rules::get).delete(rules::delete))
        .route("/reports/answers", get(reports::answers))
        .route("/bots", get(bots::list))
        .route("/bots/check", post(bots::check))
        .route("/bots/{channel_id}", get(bots::get).put(bots::put).delete(bots::delete))
        .route("/news", post(bots::create_news).get(bots::list_news))
        .route("/news/{id}", axum::routing::delete(bots::delete_news))
        .route("/broadcasts", post(broadcasts::create).get(broadcasts::list))
        .route("/broadcasts/estimate", post(broadcasts::estimate))
        .route("/broadcasts/{id}", get(broadcasts::get))
        .route("/broadcasts/{id}/pause", post(broadcasts::pause))
        .route("/broadcasts/{id}/resume", post(broadcasts::resume))
        .route("/broadcasts/{id}/cancel", post(broadcasts::cancel))
        .route("/broadcasts/{id}/recipients", get(broadcasts::recipients))
        .route("/broadcasts/{id}/report", get(broadcasts::report))
        .route("/tasks", post(tasks::create).get(tasks::list))
        .route("/tasks/{id}", get(tasks::get))
        .route("/tasks/{id}/release", post(tasks::release))
        .route("/surveys", post(surveys::create).get(surveys::list))
        .route("/surveys/{id}", get(surveys::get).delete(surveys::delete))
        .route("/surveys/{id}/start", post(surveys::start))
        .route("/surveys/{id}/scan", post(surveys::scan))
        .route("/surveys/{id}/results", get(surveys::results))
        .route("/surveys/{id}/results.csv", get(surveys::results_csv))
        .route("/surveys/{id}/runs", get(surveys::runs))
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1..500, default 50.
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn request(&self) -> okno_store::PageRequest {
        okno_store::PageRequest::new(self.limit, self.cursor.clone())
    }
}

/// A list of plain items with no further pages.
pub fn all<T>(items: Vec<T>) -> Page<T> {
    Page { items, next: None }
}

/// An attachment reference in a send request: the id of an uploaded file.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRef {
    pub id: String,
}

/// The body of both send endpoints (`POST /conversations/{id}/messages` takes no recipient;
/// `POST /messages` takes exactly one of `contact_id` and `external_id`).
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    pub contact_id: Option<String>,
    pub external_id: Option<String>,
    pub text: Option<String>,
    /// Default: the channel the contact last wrote from.
    pub channel_id: Option<String>,
    #[serde(default)]
    pub buttons: Vec<Vec<okno_domain::model::Button>>,
    #[serde(default)]
    pub attachments: Vec<AttachmentRef>,
    /// The okno message this one answers.
    pub reply_to: Option<String>,
    /// The same key again returns the first message and sends nothing.
    pub idempotency_key: Option<String>,
    /// A reply keyboard: rows of button labels (a press arrives as an ordinary text message).
    pub reply_keyboard: Option<Vec<Vec<String>>>,
    /// Hide the reply keyboard after one press.
    #[serde(default)]
    pub one_time_keyboard: bool,
    /// Remove a reply keyboard shown earlier.
    #[serde(default)]
    pub remove_keyboard: bool,
    /// A pre-approved template to send instead of the text where the platform requires one
    /// (WhatsApp outside the 24-hour window); the text still goes where it may.
    pub template: Option<okno_domain::model::TemplateRef>,
}

impl SendBody {
    /// The outbound request to `to`, after checking what the types alone cannot.
    pub fn into_request(
        self,
        to: okno_store::Recipient,
        author: String,
    ) -> Result<okno_store::OutboundRequest, okno_domain::Error> {
        use okno_domain::Error;
        if self.idempotency_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
            return Err(Error::invalid("invalid_idempotency_key", "`idempotency_key` must be 1..200 characters"));
        }
        let mut options = serde_json::Map::new();
        if let Some(rows) = &self.reply_keyboard {
            if rows.is_empty()
                || rows.iter().any(|r| r.is_empty() || r.iter().any(|b| b.trim().is_empty() || b.len() > 200))
            {
                return Err(Error::invalid(
                    "invalid_buttons",
                    "`reply_keyboard` needs rows of 1..200-character labels",
                ));
            }
            if self.remove_keyboard {
                return Err(Error::invalid(
                    "invalid_buttons",
                    "`reply_keyboard` and `remove_keyboard` exclude each other",
                ));
            }
            options.insert("reply_keyboard".into(), serde_json::json!(rows));
            options.insert("one_time_keyboard".into(), serde_json::json!(self.one_time_keyboard));
        }
        if self.remove_keyboard {
            options.insert("remove_keyboard".into(), serde_json::json!(true));
        }
        if let Some(t) = &self.template {
            options.insert(okno_domain::channel::TEMPLATE_OPTION.into(), serde_json::json!(t));
        }
        Ok(okno_store::OutboundRequest {
            to,
            channel_id: self.channel_id.map(Into::into),
            text: self.text,
            buttons: self.buttons,
            attachment_ids: self.attachments.into_iter().map(|a| a.id).collect(),
            idempotency_key: self.idempotency_key,
            author: Some(author),
            reply_to: self.reply_to.map(Into::into),
            options: serde_json::Value::Object(options),
        })
    }
}
