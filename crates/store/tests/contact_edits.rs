//! Contacts created and edited by operators, on SQLite and on the local PostgreSQL: a new
//! contact never takes an external id another has, an edit empties fields and replaces groups
//! and attributes, a form drawn before someone else's change is refused, an edit that changes
//! nothing writes nothing, and every change is one `contact.updated` event and one audit line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use okno_domain::model::{ContactInput, EventType};
use okno_domain::ErrorKind;
use okno_store::{ContactEdit, ContactField, NewWebhook, PageRequest, Store};
use serde_json::json;

const ACTOR: &str = "operator:olga";

async fn hook(store: &dyn Store) -> String {
    let new = NewWebhook {
        url: "https://example.org/hook".into(),
        events: vec![EventType::ContactUpdated],
        secret: "k".into(),
    };
    store.create_webhook(new).await.unwrap().id
}

async fn events(store: &dyn Store, hook: &str) -> Vec<serde_json::Value> {
    let page = store.list_deliveries(hook, PageRequest::new(Some(100), None)).await.unwrap();
    page.items.into_iter().map(|d| d.body).collect()
}

async fn audit_lines(store: &dyn Store) -> Vec<(String, String, serde_json::Value)> {
    let page = store.list_audit(PageRequest::new(Some(100), None)).await.unwrap();
    page.items.into_iter().map(|a| (a.action, a.actor, a.detail)).collect()
}

fn input(json: serde_json::Value) -> ContactInput {
    serde_json::from_value::<ContactInput>(json).unwrap().normalize().unwrap()
}

async fn a_new_contact_never_takes_an_external_id_another_has(store: Arc<dyn Store>) {
    let hook = hook(&*store).await;
    let made = store
        .create_contact(
            input(json!({"name": " Анна ", "phone": "8 (912) 000-11-22", "external_id": "1c-1", "groups": ["b", "a"]})),
            ACTOR,
        )
        .await
        .unwrap();
    assert_eq!(made.name.as_deref(), Some("Анна"));
    assert_eq!(made.phone.as_deref(), Some("+79120001122"), "normalised as the API does");
    assert_eq!(made.groups, ["a", "b"]);
    let again = store.create_contact(input(json!({"name": "Другая", "external_id": "1c-1"})), ACTOR).await.unwrap_err();
    assert_eq!((again.kind, &*again.code), (ErrorKind::Conflict, "external_id_taken"));
    assert_eq!(store.get_contact(&made.id).await.unwrap().name.as_deref(), Some("Анна"), "the other is untouched");
    // Without an external id a second person of the same name is a new contact.
    let twin = store.create_contact(input(json!({"name": "Анна"})), ACTOR).await.unwrap();
    assert_ne!(twin.id, made.id);

    let sent = events(&*store, &hook).await;
    assert_eq!(sent.len(), 2, "one contact.updated per contact made, none for the refusal: {sent:?}");
    assert!(sent.iter().any(|e| e["data"]["id"] == made.id.as_str() && e["data"]["phone"] == "+79120001122"));
    let audit = audit_lines(&*store).await;
    assert_eq!(audit.len(), 2);
    let line = audit.iter().find(|(_, _, d)| d["fields"].as_array().is_some_and(|f| f.len() == 4)).unwrap();
    assert_eq!((line.0.as_str(), line.1.as_str()), ("contact.create", ACTOR));
    assert_eq!(line.2["fields"], json!(["external_id", "name", "phone", "groups"]));
}

async fn an_edit_sets_empties_and_replaces_fields_once(store: Arc<dyn Store>) {
    let c = store
        .create_contact(
            input(json!({"name": "Пётр", "email": "petr@example.com", "external_id": "1c-7", "groups": ["vip"], "attrs": {"city": "Казань"}})),
            ACTOR,
        )
        .await
        .unwrap();
    let hook = hook(&*store).await;
    let edit = ContactEdit {
        set: input(
            json!({"name": "Пётр Сидоров", "phone": "+7 999 123-45-67", "groups": ["clients"], "attrs": {"visits": 2}}),
        ),
        clear: vec![ContactField::Email, ContactField::ExternalId],
        seen_at: Some(c.updated_at),
    };
    let after = store.edit_contact(&c.id, edit, ACTOR).await.unwrap();
    assert_eq!(after.name.as_deref(), Some("Пётр Сидоров"));
    assert_eq!(after.phone.as_deref(), Some("+79991234567"));
    assert_eq!((after.email, after.external_id), (None, None), "emptied");
    assert_eq!(after.groups, ["clients"], "the groups are replaced");
    assert_eq!(after.attrs, json!({"visits": 2}), "the attributes are replaced");
    assert!(after.updated_at > c.updated_at);
    // The search follows the edit: the emptied email no longer finds the contact, the new phone does.
    let find = |q: &str| okno_store::ContactFilter { q: Some(q.into()), ..Default::default() };
    assert!(store.find_contacts(find("petr@"), PageRequest::new(None, None)).await.unwrap().items.is_empty());
    assert_eq!(store.find_contacts(find("9991234"), PageRequest::new(None, None)).await.unwrap().items.len(), 1);

    // The same values again change nothing and write nothing.
    let same = ContactEdit {
        set: input(
            json!({"name": "Пётр Сидоров", "phone": "+79991234567", "groups": ["clients"], "attrs": {"visits": 2}}),
        ),
        clear: vec![ContactField::Email],
        seen_at: Some(after.updated_at),
    };
    let unchanged = store.edit_contact(&c.id, same, ACTOR).await.unwrap();
    assert_eq!(unchanged.updated_at, after.updated_at);

    let sent = events(&*store, &hook).await;
    assert_eq!(sent.len(), 1, "one event for the one real change: {sent:?}");
    assert_eq!(sent[0]["type"], "contact.updated");
    assert_eq!(sent[0]["data"]["name"], "Пётр Сидоров");
    let audit = audit_lines(&*store).await;
    let updates: Vec<_> = audit.iter().filter(|(a, _, _)| a == "contact.update").collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].2["fields"], json!(["external_id", "name", "phone", "email", "groups", "attrs"]));
    assert!(store.edit_contact("no-such-id", ContactEdit::default(), ACTOR).await.unwrap_err().is_not_found());
}

async fn a_form_drawn_before_another_change_is_refused(store: Arc<dyn Store>) {
    let c = store.create_contact(input(json!({"name": "Ольга"})), ACTOR).await.unwrap();
    let first =
        ContactEdit {
            set: input(json!({"name": "Ольга К."})), seen_at: Some(c.updated_at), ..Default::default()
        };
    store.edit_contact(&c.id, first, ACTOR).await.unwrap();
    // A second operator's form was drawn before the first edit.
    let late = ContactEdit {
        set: input(json!({"name": "Ольга Ивановна"})),
        seen_at: Some(c.updated_at),
        ..Default::default()
    };
    let e = store.edit_contact(&c.id, late, "operator:boris").await.unwrap_err();
    assert_eq!((e.kind, &*e.code), (ErrorKind::Conflict, "contact_changed"));
    assert_eq!(store.get_contact(&c.id).await.unwrap().name.as_deref(), Some("Ольга К."), "the first edit stays");

    // An external id another contact has is refused, and nothing of the edit is kept.
    store.create_contact(input(json!({"name": "Иван", "external_id": "1c-9"})), ACTOR).await.unwrap();
    let now = store.get_contact(&c.id).await.unwrap();
    let taken = ContactEdit {
        set: input(json!({"name": "Ольга Петровна", "external_id": "1c-9"})),
        seen_at: Some(now.updated_at),
        ..Default::default()
    };
    let e = store.edit_contact(&c.id, taken, ACTOR).await.unwrap_err();
    assert_eq!(e.code, "external_id_taken");
    let kept = store.get_contact(&c.id).await.unwrap();
    assert_eq!((kept.name.as_deref(), kept.external_id), (Some("Ольга К."), None));
}

okno_store::both_backends!(
    a_new_contact_never_takes_an_external_id_another_has,
    an_edit_sets_empties_and_replaces_fields_once,
    a_form_drawn_before_another_change_is_refused,
);
