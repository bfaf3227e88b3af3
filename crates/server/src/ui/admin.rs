//! Administration pages: channels (status and errors, and a form per platform generated from
//! its configuration schema),
//! API tokens, outgoing webhooks with their delivery log, rules with a live template
//! preview, and the audit log. Every page needs the `Configure` permission.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use okno_domain::model::{ChannelKind, Permission, Role};
use okno_store::{AccountChange, NewAudit, NewChannel, PageRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{channel_view, error_page, refuse, short_time, Form, Session};
use crate::AppState;

pub(crate) async fn audit(state: &AppState, s: &Session, action: &str, target: &str, detail: Value) {
    let entry = NewAudit {
        actor: format!("operator:{}", s.operator.login),
        action: action.into(),
        target: target.into(),
        detail,
    };
    if let Err(e) = state.engine.store.audit(entry).await {
        tracing::warn!(error = %e, action, "could not write the audit log");
    }
}

fn t(s: &Session, key: &str) -> String {
    super::i18n::t(s.lang, key)
}

/// A state word (`active`, `error`, `pending`…) in the operator's language: the text of
/// `prefix` + the word, or the word itself when there is none (a state added later still shows).
fn state_text(s: &Session, prefix: &str, word: &str) -> String {
    let key = format!("{prefix}{word}");
    let text = t(s, &key);
    if text == key {
        word.to_string()
    } else {
        text
    }
}

/// `GET /ui/admin/channels`
pub async fn channels(State(state): State<AppState>, s: Session) -> Response {
    channels_page(&state, &s, None, Value::Null).await
}

async fn channels_page(state: &AppState, s: &Session, error: Option<String>, form: Value) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, s, Permission::Configure) {
        return r;
    }
    let list = match state.engine.store.list_channels().await {
        Ok(l) => l,
        Err(e) => return error_page(ui, s, e),
    };
    let rows: Vec<Value> = list
        .iter()
        .map(|c| {
            let mut v = channel_view(Some(c));
            v["status_detail"] = json!(c.status_detail);
            v["created"] = json!(short_time(c.created_at));
            v["inbound_url"] = json!(match state.engine.platform(c) {
                Ok(p) => p.hook_address(&state.public_url, c),
                Err(_) => format!("{}/hooks/{}", state.public_url, c.id),
            });
            v["status_text"] = json!(state_text(s, "ch_st_", &c.status));
            v
        })
        .collect();
    let platforms: Vec<Value> =
        state.engine.platforms.all().into_iter().map(|p| platform_form(s, p.as_ref(), &form)).collect();
    let mut resp = ui.render(
        "admin_channels.html",
        s,
        json!({"title": t(s, "channels"), "nav": "admin", "sub": "channels", "rows": rows, "error": error, "form": form, "platforms": platforms}),
    );
    if error.is_some() {
        *resp.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    resp
}

/// One platform's form, from its configuration schema, in the operator's language; `echo` is
/// what was typed when the form comes back with an error (secrets never).
fn platform_form(s: &Session, platform: &dyn okno_channel::Platform, echo: &Value) -> Value {
    use okno_channel::schema::{FieldKind, Text};
    let lang = |t: &Text| if s.lang == super::i18n::Lang::Ru { t.ru } else { t.en }.to_string();
    let schema = platform.schema();
    let kind = platform.kind().as_str();
    let mine = echo["kind"].as_str() == Some(kind);
    let fields: Vec<Value> = schema
        .fields
        .iter()
        .filter(|f| f.in_form && !f.internal)
        .map(|f| {
            let (input, choices) = match &f.kind {
                FieldKind::Choice(cs) => {
                    ("choice", cs.iter().map(|c| json!({"value": c.value, "label": lang(&c.label)})).collect())
                }
                FieldKind::Bool => ("bool", Vec::new()),
                FieldKind::Url => ("url", Vec::new()),
                FieldKind::Integer => ("number", Vec::new()),
                FieldKind::Text | FieldKind::Json => ("text", Vec::new()),
            };
            let value = if mine && !f.secret { echo["fields"][f.name].clone() } else { Value::Null };
            json!({"name": f.name, "label": lang(&f.label), "help": lang(&f.help), "input": input, "choices": choices,
                   "required": f.required, "secret": f.secret, "advanced": f.advanced, "placeholder": f.placeholder,
                   "value": value})
        })
        .collect();
    json!({"kind": kind, "heading": lang(&schema.heading), "name": if mine { echo["name"].clone() } else { json!(platform.title()) },
           "fields": fields})
}

/// `POST /ui/admin/channels`: connects a channel of the form's `kind` from its platform's
/// form (`name` and the schema's fields).
pub async fn create_channel(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    use okno_channel::schema::FieldKind;
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Configure) {
        return r;
    }
    let kind = match form.field("kind").as_deref().map(ChannelKind::parse) {
        Some(Ok(kind)) => kind,
        _ => {
            let e = okno_domain::Error::invalid("invalid_channelkind", "choose the kind of channel to connect");
            return channels_page(&state, &s, Some(e.message), Value::Null).await;
        }
    };
    let platform = match state.engine.platforms.get(kind) {
        Ok(p) => p.clone(),
        Err(e) => return channels_page(&state, &s, Some(e.message), Value::Null).await,
    };
    let schema = platform.schema();
    let name = form.field("name").unwrap_or_else(|| platform.title().to_string());
    let mut config = serde_json::Map::new();
    let mut shown = serde_json::Map::new();
    for f in schema.fields.iter().filter(|f| f.in_form && !f.internal) {
        let value = match f.kind {
            // An unticked box sends nothing: absent is `false` in the form.
            FieldKind::Bool => Some(json!(form.field(f.name).is_some())),
            FieldKind::Integer => form.field(f.name).map(|v| v.parse::<i64>().map_or(json!(v), |n| json!(n))),
            _ => form.field(f.name).map(|v| json!(v)),
        };
        if let Some(v) = value {
            if !f.secret {
                shown.insert(f.name.to_string(), v.clone());
            }
            // `imap.host` goes to `{"imap": {"host": …}}`.
            okno_channel::schema::insert(&mut config, f.name, v);
        }
    }
    let config = Value::Object(config);
    let echo = json!({"kind": kind.as_str(), "name": name, "fields": shown});
    let result = async {
        if name.len() > 200 {
            return Err(okno_domain::Error::invalid("invalid_name", "the name is at most 200 characters"));
        }
        let (config, info) = state.engine.validate_channel(kind, &config, None).await?;
        let ch = state.engine.store.create_channel(NewChannel { kind, name: name.clone(), config, info }).await?;
        if let Err(e) = state.engine.apply_receive_mode(&ch).await {
            let _ = state.engine.store.delete_channel(&ch.id).await;
            return Err(e);
        }
        Ok(ch)
    }
    .await;
    match result {
        Ok(ch) => {
            audit(&state, &s, "channel.create", &ch.id, json!({"kind": kind.as_str(), "name": ch.name})).await;
            Redirect::to("/ui/admin/channels").into_response()
        }
        Err(e) => channels_page(&state, &s, Some(e.message), echo).await,
    }
}

/// `GET /ui/admin/tokens`
pub async fn tokens(State(state): State<AppState>, s: Session) -> Response {
    tokens_page(&state, &s, None).await
}

async fn tokens_page(state: &AppState, s: &Session, created: Option<String>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, s, Permission::Configure) {
        return r;
    }
    match state.engine.store.list_tokens().await {
        Ok(list) => ui.render(
            "admin_tokens.html",
            s,
            json!({
                "title": t(s, "tokens"), "nav": "admin", "sub": "tokens", "created": created,
                "roles": Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                "rows": list.iter().map(|k| json!({"id": k.id, "name": k.name, "role": k.role.as_str(), "created": short_time(k.created_at)})).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => error_page(ui, s, e),
    }
}

/// `POST /ui/admin/tokens`: `name`, `role`; the secret is shown once on the answer page.
pub async fn create_token(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Configure) {
        return r;
    }
    let result = async {
        let name = form
            .field("name")
            .filter(|n| n.len() <= 100)
            .ok_or_else(|| okno_domain::Error::invalid("invalid_name", "the name must be 1..100 characters"))?;
        let role = Role::parse(form.get("role").unwrap_or(""))?;
        let secret = crate::auth::new_token();
        let token = state.engine.store.create_token(&name, role, &crate::auth::token_hash(&secret)).await?;
        Ok::<_, okno_domain::Error>((token, secret))
    }
    .await;
    match result {
        Ok((token, secret)) => {
            audit(&state, &s, "token.create", &token.id, json!({"name": token.name, "role": token.role})).await;
            let mut resp = tokens_page(&state, &s, Some(secret)).await;
            resp.headers_mut()
                .insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => error_page(ui, &s, e),
    }
}

/// `POST /ui/admin/tokens/{id}/revoke`
pub async fn revoke_token(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Configure) {
        return r;
    }
    match state.engine.store.revoke_token(&id).await {
        Ok(()) => {
            audit(&state, &s, "token.revoke", &id, json!({})).await;
            Redirect::to("/ui/admin/tokens").into_response()
        }
        Err(e) => error_page(ui, &s, e),
    }
}

/// `GET /ui/admin/webhooks`: each subscription with its latest deliveries.
pub async fn webhooks(State(state): State<AppState>, s: Session) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Configure) {
        return r;
    }
    let result = async {
        let mut rows = Vec::new();
        for w in state.engine.store.list_webhooks().await? {
            let deliveries = state.engine.store.list_deliveries(&w.id, PageRequest::new(Some(20), None)).await?;
            rows.push(json!({
                "id": w.id, "url": w.url, "events": w.events, "active": w.active, "created": short_time(w.created_at),
                "deliveries": deliveries.items.iter().map(|d| json!({
                    "id": d.id, "event": d.event_type, "status": d.status, "attempts": d.attempts,
                    "status_text": state_text(&s, "wh_st_", &d.status),
                    "code": d.last_status_code, "error": d.last_error, "created": short_time(d.created_at),
                })).collect::<Vec<_>>(),
            }));
        }
        Ok::<_, okno_domain::Error>(rows)
    }
    .await;
    match result {
        Ok(rows) => ui.render(
            "admin_webhooks.html",
            &s,
            json!({"title": t(&s, "webhooks"), "nav": "admin", "sub": "webhooks", "rows": rows}),
        ),
        Err(e) => error_page(ui, &s, e),
    }
}

/// `GET /ui/admin/connectors`: each connector with its status (a refused token shows here),
/// its latest calls into the business system with their outcomes, a form to give it a new
/// token, and a form per kind to connect another.
pub async fn connectors(State(state): State<AppState>, s: Session) -> Response {
    connectors_page(&state, &s, None, Value::Null).await
}

async fn connectors_page(state: &AppState, s: &Session, error: Option<String>, echo: Value) -> Response {
    use okno_domain::model::ConnectorKind;
    use okno_engine::connectors::form::{self, Input};
    let ui = &state.ui;
    if let Some(r) = refuse(ui, s, Permission::Configure) {
        return r;
    }
    let result = async {
        let journal = state.engine.store.list_audit(PageRequest::new(Some(200), None)).await?.items;
        let rows: Vec<Value> = state
            .engine
            .store
            .list_connectors()
            .await?
            .into_iter()
            .map(|c| {
                let actor = format!("connector:{}", c.id);
                let calls: Vec<Value> = journal
                    .iter()
                    .filter(|e| e.actor == actor)
                    .take(10)
                    .map(|e| {
                        let outcome = e.detail.get("outcome").and_then(Value::as_str).unwrap_or("ok");
                        let failed = outcome != "ok" && !outcome.starts_with("note ") && !outcome.starts_with("task ");
                        json!({"at": short_time(e.at), "action": e.action, "target": e.target, "outcome": outcome,
                               "failed": failed})
                    })
                    .collect();
                let takes_token = c.kind == ConnectorKind::Amocrm && c.config.get("token").is_some();
                json!({"id": c.id, "kind": c.kind, "name": c.name, "status": c.status, "detail": c.status_detail,
                       "account": c.info.get("account"), "subdomain": c.info.get("subdomain"),
                       "address": c.info.get("address"),
                       "created": short_time(c.created_at), "calls": calls, "takes_token": takes_token})
            })
            .collect();
        // The channels a stage's tasks can be posted to.
        let mut task_channels = Vec::new();
        for ch in state.engine.store.list_channels().await? {
            if state.engine.carries_tasks(&ch).unwrap_or(false) {
                task_channels.push(json!({"value": ch.id, "label": format!("{} ({})", ch.name, ch.kind.as_str())}));
            }
        }
        let ru = s.lang == super::i18n::Lang::Ru;
        let kinds: Vec<Value> = form::KINDS
            .iter()
            .copied()
            .map(|kind| {
                let mine = echo["kind"].as_str() == Some(kind.as_str());
                let fields: Vec<Value> = form::fields(kind)
                    .iter()
                    .map(|f| {
                        let value = if mine && f.input != Input::Secret { echo["fields"][f.name].clone() } else { Value::Null };
                        json!({"name": f.name, "label": if ru { f.ru } else { f.en }, "help": if ru { f.help_ru } else { f.help_en },
                               "input": f.input, "required": f.required, "value": value,
                               "choices": if f.input == Input::Channel { task_channels.clone() } else { Vec::new() }})
                    })
                    .collect();
                let name = if mine { echo["name"].clone() } else { json!(kind_name(kind)) };
                json!({"kind": kind.as_str(), "title": kind_name(kind), "name": name, "fields": fields})
            })
            .collect();
        Ok::<_, okno_domain::Error>((rows, kinds))
    }
    .await;
    match result {
        Ok((rows, kinds)) => {
            let mut resp = ui.render(
                "admin_connectors.html",
                s,
                json!({"title": t(s, "connectors"), "nav": "admin", "sub": "connectors", "rows": rows, "kinds": kinds,
                       "error": error}),
            );
            if error.is_some() {
                *resp.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            }
            resp
        }
        Err(e) => error_page(ui, s, e),
    }
}

fn kind_name(kind: okno_domain::model::ConnectorKind) -> &'static str {
    use okno_domain::model::ConnectorKind;
    match kind {
        ConnectorKind::Amocrm => "amoCRM",
        ConnectorKind::Bitrix24 => "Bitrix24",
        ConnectorKind::Onec => "1C:Enterprise",
        ConnectorKind::Pbx => "PBX",
    }
}

/// `POST /ui/admin/connectors`: connects a business system from its kind's form (the same
/// checks as the API: the token is tried, okno's address subscribed).
pub async fn create_connector(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    use okno_domain::model::ConnectorKind;
    use okno_engine::connectors::form::{self, Input};
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Configure) {
        return r;
    }
    let Some(Ok(kind)) = form.field("kind").as_deref().map(ConnectorKind::parse) else {
        let e = okno_domain::Error::invalid("invalid_connector_kind", "choose the business system to connect");
        return connectors_page(&state, &s, Some(e.message), Value::Null).await;
    };
    let name = form.field("name").unwrap_or_else(|| kind_name(kind).to_string());
    let config = form::config(kind, |f| form.field(f));
    let shown: serde_json::Map<String, Value> = form::fields(kind)
        .iter()
        .filter(|f| f.input != Input::Secret)
        .filter_map(|f| form.field(f.name).map(|v| (f.name.to_string(), json!(v))))
        .collect();
    let echo = json!({"kind": kind.as_str(), "name": name, "fields": shown});
    match state.engine.create_connector(kind, &name, config).await {
        Ok(c) => {
            audit(&state, &s, "connector.create", c.id.as_str(), json!({"kind": kind.as_str(), "name": c.name})).await;
            Redirect::to("/ui/admin/connectors").into_response()
        }
        Err(e) => connectors_page(&state, &s, Some(e.message), echo).await,
    }
}

/// `POST /ui/admin/connectors/{id}/{action}`: `token` gives a connector a new token (after
/// amoCRM refused the old one), `sync` runs its standing work now, `delete` disconnects it.
pub async fn change_connector(
    State(state): State<AppState>,
    s: Session,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Configure) {
        return r;
    }
    let id = okno_domain::ids::ConnectorId::from(id.as_str());
    let done = match action.as_str() {
        "token" => {
            let token = form.field("token").map(|t| t.trim().to_string()).unwrap_or_default();
            if token.is_empty() {
                Err(okno_domain::Error::invalid("invalid_connector_config", "paste the new token"))
            } else {
                state.engine.update_connector(&id, None, Some(json!({"token": token}))).await.map(|_| ())
            }
        }
        "delete" => state.engine.delete_connector(&id).await,
        "sync" => state.engine.sync_connector_now(&id).await,
        _ => Err(okno_domain::Error::not_found("action", &action)),
    };
    match done {
        Ok(()) => {
            audit(&state, &s, &format!("connector.{action}"), id.as_str(), json!({})).await;
            Redirect::to("/ui/admin/connectors").into_response()
        }
        Err(e) if e.is_not_found() => error_page(ui, &s, e),
        Err(e) => connectors_page(&state, &s, Some(e.message), Value::Null).await,
    }
}

/// `GET /ui/admin/rules`
pub async fn rules(State(state): State<AppState>, s: Session) -> Response {
    let sample = json!({
        "rule": r#"{"name": "paid", "event": "payment.received", "recipients": [{"external_id": "{{ data.client_id }}"}], "template": "Оплата {{ data.amount }} ₽ получена"}"#,
        "data": r#"{"client_id": "1c-7", "amount": 1500}"#,
    });
    rules_page(&state, &s, sample).await
}

async fn rules_page(state: &AppState, s: &Session, preview: Value) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, s, Permission::Configure) {
        return r;
    }
    match state.engine.store.list_rules().await {
        Ok(list) => ui.render(
            "admin_rules.html",
            s,
            json!({
                "title": t(s, "rules"), "nav": "admin", "sub": "rules", "preview": preview,
                "rows": list.iter().map(|r| json!({
                    "id": r.id, "name": r.name, "event": r.event, "active": r.active,
                    "spec": serde_json::to_string_pretty(&r.spec).unwrap_or_default(),
                    "updated": short_time(r.updated_at),
                })).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => error_page(ui, s, e),
    }
}

/// `POST /ui/admin/rules`: previews a rule (`rule`, `data` as JSON) without saving it.
pub async fn preview_rule(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    if let Some(r) = s.refuse_post(&state.ui, &headers, &form, Permission::Configure) {
        return r;
    }
    let rule_text = form.get("rule").unwrap_or("").to_string();
    let data_text = form.get("data").unwrap_or("{}").to_string();
    // Where the JSON breaks, in the operator's language.
    let not_json = |key: &str, e: serde_json::Error| {
        let text = t(&s, key).replace("{line}", &e.line().to_string()).replace("{column}", &e.column().to_string());
        okno_domain::Error::invalid("invalid_json", text)
    };
    let result = async {
        let rule: Value = serde_json::from_str(&rule_text).map_err(|e| not_json("rule_not_json", e))?;
        let data: Value = serde_json::from_str(&data_text).map_err(|e| not_json("rule_data_not_json", e))?;
        let spec = okno_engine::events::RuleSpec::parse(&rule)?;
        state.engine.preview(&spec, &data, &Value::Null).await
    }
    .await;
    let preview = match result {
        Ok(v) => {
            json!({"rule": rule_text, "data": data_text, "result": serde_json::to_string_pretty(&v).unwrap_or_default()})
        }
        Err(e) => json!({"rule": rule_text, "data": data_text, "error": e.message}),
    };
    rules_page(&state, &s, preview).await
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    pub cursor: Option<String>,
}

/// `GET /ui/admin/audit`
pub async fn audit_log(State(state): State<AppState>, s: Session, Query(q): Query<AuditQuery>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, &s, Permission::Configure) {
        return r;
    }
    match state.engine.store.list_audit(PageRequest::new(Some(100), q.cursor)).await {
        Ok(page) => ui.render(
            "admin_audit.html",
            &s,
            json!({
                "title": t(&s, "audit"), "nav": "admin", "sub": "audit", "next": page.next,
                "rows": page.items.iter().map(|a| {
                    // A known action is said in words beside its code; an unknown one by its code.
                    let key = format!("audit_{}", a.action.replace('.', "_"));
                    let text = t(&s, &key);
                    json!({
                        "actor": super::authors::sender(s.lang, &a.actor).name, "action": a.action,
                        "action_text": (text != key).then_some(text),
                        "target": a.target, "detail": a.detail.to_string(), "at": short_time(a.at),
                    })
                }).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => error_page(ui, &s, e),
    }
}

/// `GET /ui/admin/bots`
pub async fn bots(State(state): State<AppState>, s: Session) -> Response {
    bots_page(&state, &s, json!({})).await
}

async fn bots_page(state: &AppState, s: &Session, result: Value) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, s, Permission::Configure) {
        return r;
    }
    let loaded = async {
        let channels = state.engine.store.list_channels().await?;
        let bots = state.engine.store.list_bots().await?;
        Ok::<_, okno_domain::Error>((channels, bots))
    }
    .await;
    let (channels, bots) = match loaded {
        Ok(v) => v,
        Err(e) => return error_page(ui, s, e),
    };
    let map = super::channel_map(&channels);
    let mut resp = ui.render(
        "admin_bots.html",
        s,
        json!({
            "title": t(s, "bots"), "nav": "admin", "sub": "bots", "result": result,
            "channels": channels.iter().map(|c| channel_view(Some(c))).collect::<Vec<_>>(),
            "rows": bots.iter().map(|b| json!({
                "channel": channel_view(map.get(b.channel_id.as_str()).copied()), "channel_id": b.channel_id,
                "name": b.name, "updated": short_time(b.updated_at), "source": b.source,
            })).collect::<Vec<_>>(),
        }),
    );
    if result.get("error").is_some() {
        *resp.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    resp
}

/// `POST /ui/admin/bots`: `action` = `check` | `save`, `channel_id`, `source` (YAML or JSON).
pub async fn put_bot(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    if let Some(r) = s.refuse_post(&state.ui, &headers, &form, Permission::Configure) {
        return r;
    }
    let source = form.get("source").unwrap_or("").to_string();
    let channel_id = form.field("channel_id").unwrap_or_default();
    let save = form.get("action") == Some("save");
    let outcome = async {
        let def = okno_engine::bots::def::BotDef::parse(&source)?;
        let summary = format!(
            "{} — {}: {}; {}: {}; {}: {}",
            def.name,
            t(&s, "bot_menus"),
            def.menus.keys().cloned().collect::<Vec<_>>().join(", "),
            t(&s, "bot_forms"),
            def.forms.keys().cloned().collect::<Vec<_>>().join(", "),
            t(&s, "bot_lookups"),
            def.lookups.keys().cloned().collect::<Vec<_>>().join(", "),
        );
        if save {
            let bot = state.engine.put_bot(&channel_id, &source).await?;
            audit(&state, &s, "bot.put", &channel_id, json!({"name": bot.name})).await;
        }
        Ok::<_, okno_domain::Error>(summary)
    }
    .await;
    let result = match outcome {
        Ok(summary) => json!({"ok": summary, "saved": save, "source": source, "channel_id": channel_id}),
        Err(e) => json!({"error": e.message, "source": source, "channel_id": channel_id}),
    };
    bots_page(&state, &s, result).await
}

/// `GET /ui/admin/operators`: operators (role, enabled, open sessions) with what an
/// administrator may change, what each role may do, and a form to add one.
pub async fn operators(State(state): State<AppState>, s: Session) -> Response {
    operators_page(&state, &s, None).await
}

async fn operators_page(state: &AppState, s: &Session, error: Option<okno_domain::Error>) -> Response {
    let ui = &state.ui;
    if let Some(r) = refuse(ui, s, Permission::Configure) {
        return r;
    }
    let list = match state.engine.store.operator_accounts().await {
        Ok(l) => l,
        Err(e) => return error_page(ui, s, e),
    };
    // Whether each has two-factor sign-in on (a handful of operators: one read each).
    let mut two_factor = Vec::with_capacity(list.len());
    for a in &list {
        match state.engine.store.totp_state(&a.operator.id).await {
            Ok(st) => two_factor.push(st.enabled),
            Err(e) => return error_page(ui, s, e),
        }
    }
    let perms = [
        Permission::Read,
        Permission::Write,
        Permission::PersonalData,
        Permission::Subscribe,
        Permission::PublishNews,
        Permission::Configure,
    ];
    let roles: Vec<Value> = Role::ALL
        .iter()
        .map(|r| json!({"name": r.as_str(), "allows": perms.iter().map(|p| r.allows(*p)).collect::<Vec<_>>()}))
        .collect();
    let status = error.as_ref().map(|e| crate::error::status_of(e.kind));
    let mut resp = ui.render(
        "admin_operators.html",
        s,
        json!({
            "title": t(s, "operators"), "nav": "admin", "sub": "operators", "roles": roles,
            // The store's refusals in the operator's language.
            "error": error.map(|e| if e.code == "last_admin" { t(s, "last_admin") } else { e.message }),
            "role_names": Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "rows": list.iter().zip(two_factor).map(|(a, two_factor)| json!({
                "login": a.operator.login, "role": a.operator.role.as_str(), "created": short_time(a.operator.created_at),
                "disabled": a.disabled, "sessions": a.sessions, "me": a.operator.login == s.operator.login,
                "two_factor": two_factor,
            })).collect::<Vec<_>>(),
        }),
    );
    if let Some(st) = status {
        *resp.status_mut() = st;
    }
    resp
}

/// The rules every new password follows (the form, the account page and the CLI).
pub(crate) fn check_new_password(password: &str) -> okno_domain::Result<()> {
    let n = password.chars().count();
    if n < 8 {
        return Err(okno_domain::Error::invalid("weak_password", "the password needs at least 8 characters"));
    }
    if n > 256 {
        return Err(okno_domain::Error::invalid("invalid_password", "the password is at most 256 characters"));
    }
    Ok(())
}

/// An argon2id hash of a password that passed [`check_new_password`], off the async threads.
pub(crate) async fn new_password_hash(password: &str) -> okno_domain::Result<String> {
    check_new_password(password)?;
    let password = password.to_string();
    tokio::task::spawn_blocking(move || super::hash_password(&password))
        .await
        .map_err(|e| okno_domain::Error::internal(format!("hashing: {e}")))?
}

/// `POST /ui/admin/operators`: `login`, `role`, `password` (at least 8 characters).
pub async fn create_operator(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Configure) {
        return r;
    }
    let result = async {
        let login = form
            .field("login")
            .filter(|l| l.len() <= 100)
            .ok_or_else(|| okno_domain::Error::invalid("invalid_login", "the login must be 1..100 characters"))?;
        let role = Role::parse(form.get("role").unwrap_or(""))?;
        let hash = new_password_hash(form.get("password").unwrap_or("")).await?;
        state.engine.store.create_operator(&login, role, &hash).await
    }
    .await;
    match result {
        Ok(op) => {
            audit(&state, &s, "operator.create", &op.id, json!({"login": op.login, "role": op.role})).await;
            Redirect::to("/ui/admin/operators").into_response()
        }
        Err(e) => operators_page(&state, &s, Some(e)).await,
    }
}

/// `POST /ui/admin/operators/change`: `login` and `action` — `disable`, `enable`, `role` (with
/// `role`) or `password` (with `password`). Disabling and a new password end the operator's
/// sessions everywhere; an administrator cannot disable themselves, and the last
/// administrator stays one.
pub async fn change_operator(State(state): State<AppState>, s: Session, headers: HeaderMap, form: Form) -> Response {
    let ui = &state.ui;
    if let Some(r) = s.refuse_post(ui, &headers, &form, Permission::Configure) {
        return r;
    }
    let login = form.field("login").unwrap_or_default();
    let myself = login == s.operator.login;
    let result = async {
        if form.get("action") == Some("reset_two_factor") {
            let actor = format!("operator:{}", s.operator.login);
            state.engine.store.reset_totp(&login, &actor).await?;
            return state
                .engine
                .store
                .operator_account(&login)
                .await?
                .ok_or_else(|| okno_domain::Error::not_found("operator", &login));
        }
        let change = match form.get("action").unwrap_or("") {
            "disable" if myself => {
                return Err(okno_domain::Error::conflict("cannot_disable_self", t(&s, "cannot_disable_self")))
            }
            "disable" => AccountChange::Disable,
            "enable" => AccountChange::Enable,
            "role" => AccountChange::Role(Role::parse(form.get("role").unwrap_or(""))?),
            "password" => AccountChange::Password(new_password_hash(form.get("password").unwrap_or("")).await?),
            other => {
                return Err(okno_domain::Error::invalid("invalid_action", format!("no action `{other}`")));
            }
        };
        // A new password set for oneself here keeps this session, as on the account page.
        let keep = myself.then(|| s.hash());
        let actor = format!("operator:{}", s.operator.login);
        state.engine.store.change_operator(&login, change, &actor, keep.as_deref()).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/ui/admin/operators").into_response(),
        Err(e) => operators_page(&state, &s, Some(e)).await,
    }
}
