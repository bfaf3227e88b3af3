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
pub mod channels;
pub mod contacts;
pub mod conversations;
pub mod messages;
pub mod tokens;
pub mod webhooks;

pub fn routes(settings: &Settings) -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(crate::openapi::document))
        .route("/channels", post(channels::create).get(channels::list))
        .route("/channels/{id}", get(channels::get).patch(channels::update).delete(channels::delete))
        .route("/contacts", post(contacts::upsert).get(contacts::list))
        .route("/contacts/{id}", get(contacts::get).patch(contacts::update))
        .route("/contacts/{id}/merge", post(contacts::merge))
        .route("/contacts/{id}/link", post(contacts::link))
        .route("/conversations", get(conversations::list))
        .route("/conversations/{id}", get(conversations::get).patch(conversations::update))
        .route("/conversations/{id}/messages", get(conversations::messages).post(conversations::reply))
        .route("/conversations/{id}/chat-action", post(conversations::chat_action))
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

/// Platform keyboard options of a send request.
#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema)]
pub struct KeyboardOptions {
    /// A reply keyboard: rows of button labels (a press arrives as an ordinary text message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_keyboard: Option<Vec<Vec<String>>>,
    /// Hide the reply keyboard after one press.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_time_keyboard: bool,
    /// Remove a reply keyboard shown earlier.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove_keyboard: bool,
}

impl KeyboardOptions {
    /// The message options to store, after checking them.
    pub fn into_options(self) -> Result<serde_json::Value, okno_domain::Error> {
        if let Some(rows) = &self.reply_keyboard {
            if rows.is_empty()
                || rows.iter().any(|r| r.is_empty() || r.iter().any(|b| b.trim().is_empty() || b.len() > 200))
            {
                return Err(okno_domain::Error::invalid(
                    "invalid_buttons",
                    "`reply_keyboard` needs rows of 1..200-character labels",
                ));
            }
            if self.remove_keyboard {
                return Err(okno_domain::Error::invalid(
                    "invalid_buttons",
                    "`reply_keyboard` and `remove_keyboard` exclude each other",
                ));
            }
        }
        serde_json::to_value(&self).map_err(|e| okno_domain::Error::internal(e.to_string()))
    }
}
