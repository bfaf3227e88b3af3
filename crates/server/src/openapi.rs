//! The OpenAPI document, generated from the handlers' annotations.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{api, AppState};

#[derive(OpenApi)]
#[openapi(
    info(title = "okno", description = "Self-hosted omnichannel messaging hub: the integration API.", license(name = "AGPL-3.0-only")),
    paths(
        api::channels::create, api::channels::list, api::channels::get, api::channels::update, api::channels::delete,
        api::connectors::create, api::connectors::list, api::connectors::get, api::connectors::update, api::connectors::delete, api::connectors::sync,
        api::contacts::upsert, api::contacts::list, api::contacts::get, api::contacts::update, api::contacts::merge, api::contacts::link, api::contacts::calls,
        api::conversations::list, api::conversations::get, api::conversations::update, api::conversations::messages,
        api::conversations::reply, api::conversations::chat_action, api::conversations::add_note, api::conversations::notes,
        api::messages::send, api::messages::get, api::messages::edit,
        api::webhooks::create, api::webhooks::list, api::webhooks::get, api::webhooks::delete, api::webhooks::deliveries,
        api::attachments::upload, api::attachments::download,
        api::tokens::create, api::tokens::list, api::tokens::revoke,
        api::audit::list,
        api::events::post, api::events::get, api::events::list,
        api::rules::put, api::rules::list, api::rules::get, api::rules::delete, api::rules::preview,
        api::bots::put, api::bots::check, api::bots::list, api::bots::get, api::bots::delete,
        api::bots::create_news, api::bots::list_news, api::bots::delete_news,
        api::reports::answers,
        api::tasks::create, api::tasks::list, api::tasks::get, api::tasks::release,
        api::broadcasts::create, api::broadcasts::estimate, api::broadcasts::list, api::broadcasts::get, api::broadcasts::pause,
        api::broadcasts::resume, api::broadcasts::cancel, api::broadcasts::recipients, api::broadcasts::report,
        api::surveys::create, api::surveys::list, api::surveys::get, api::surveys::delete, api::surveys::start,
        api::surveys::scan, api::surveys::results, api::surveys::results_csv, api::surveys::runs,
    ),
    modifiers(&Bearer),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /api/v1/openapi.json` (no token needed: it is documentation). Each channel kind's
/// configuration is described by its platform's schema (`<Kind>ChannelConfig`), and a
/// channel's `config` is one of them; a change to it is one of the same schemas with no field
/// required (`<Kind>ChannelConfigChanges`).
pub async fn document(State(state): State<AppState>) -> Json<Value> {
    Json(with_channel_configs(ApiDoc::openapi(), &state.engine.platforms))
}

fn with_channel_configs(doc: utoipa::openapi::OpenApi, platforms: &okno_engine::Platforms) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    let mut refs = Vec::new();
    let mut change_refs = Vec::new();
    let mut kinds = Vec::new();
    for p in platforms.all() {
        let kind = p.kind().as_str();
        let name = format!("{}ChannelConfig", p.title().replace(' ', ""));
        let mut schema = p.schema().json_schema();
        schema["description"] = json!(format!("`config` of a `{kind}` channel"));
        // A change names only the keys it changes: the same fields, none required.
        let mut changes = schema.clone();
        if let Some(fields) = changes.as_object_mut() {
            fields.remove("required");
        }
        changes["description"] = json!(format!("keys of a `{kind}` channel's `config` to change"));
        doc["components"]["schemas"][&name] = schema;
        doc["components"]["schemas"][format!("{name}Changes")] = changes;
        refs.push(json!({"$ref": format!("#/components/schemas/{name}")}));
        change_refs.push(json!({"$ref": format!("#/components/schemas/{name}Changes")}));
        kinds.push(kind);
    }
    for (body, refs) in [("CreateChannel", refs), ("UpdateChannel", change_refs)] {
        let config = &mut doc["components"]["schemas"][body]["properties"]["config"];
        if config.is_object() {
            config["oneOf"] = json!(refs);
        }
    }
    if doc["components"]["schemas"]["CreateChannel"]["properties"]["kind"].is_object() {
        doc["components"]["schemas"]["CreateChannel"]["properties"]["kind"]["enum"] = json!(kinds);
    }
    doc
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code
mod tests {
    use super::*;

    /// Typed ids are strings to the API: the document shows every id as a plain string (no
    /// `ContactId` schema of its own), and the `{id}` of a route is still described. A handler
    /// reads its path as a `String` for that reason: utoipa describes only plain path types.
    #[test]
    fn ids_are_plain_strings_in_the_document() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        for name in ["ContactId", "ConversationId", "MessageId", "ChannelId", "IdentityId"] {
            assert!(schemas.get(name).is_none(), "{name} has a schema of its own");
        }
        let string = json!({"type": "string"});
        for (schema, field) in [
            ("Channel", "id"),
            ("Contact", "id"),
            ("Identity", "contact_id"),
            ("Identity", "channel_id"),
            ("Conversation", "id"),
            ("Message", "id"),
            ("Message", "conversation_id"),
            ("Message", "contact_id"),
            ("Message", "channel_id"),
        ] {
            assert_eq!(schemas[schema]["properties"][field], string, "{schema}.{field}");
        }
        assert_eq!(schemas["Message"]["properties"]["reply_to"]["type"], json!(["string", "null"]));
        for route in
            ["/api/v1/channels/{id}", "/api/v1/contacts/{id}", "/api/v1/conversations/{id}", "/api/v1/messages/{id}"]
        {
            let params = &doc["paths"][route]["get"]["parameters"];
            assert_eq!(params, &json!([{"name": "id", "in": "path", "required": true, "schema": string}]), "{route}");
        }
    }
}
