//! The 1C integrator's kit (`integrations/1c`) against a running okno: the JSON bodies its BSL
//! modules build are exactly its example files, and those bodies do what the kit's README
//! promises — a contact upserted by its 1C reference, an event accepted once per idempotency
//! key and delivered by a rule.

use std::collections::BTreeSet;
use std::path::PathBuf;

use okno_testkit::{eventually, Sink, TestApp};
use serde_json::Value;

use super::SECRET;

fn kit(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../integrations/1c").join(path)
}

fn example(name: &str) -> Value {
    let text = std::fs::read_to_string(kit(&format!("examples/{name}"))).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn bsl(path: &str) -> String {
    std::fs::read_to_string(kit(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The names a BSL function puts into structures: every `.Вставить("name"` in its body.
fn inserted(source: &str, function: &str) -> BTreeSet<String> {
    let start = source.find(&format!("Функция {function}(")).unwrap_or_else(|| panic!("no function {function}"));
    let body = &source[start..];
    let body = &body[..body.find("КонецФункции").unwrap()];
    body.split(".Вставить(\"").skip(1).map(|rest| rest[..rest.find('"').unwrap()].to_string()).collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn the_bsl_modules_build_exactly_the_example_bodies() {
    let module = bsl("src/CommonModules/Окно/Module.bsl");
    let order = bsl("src/Documents/ЗаказКлиента/ObjectModule.bsl");
    let (contact, event) = (example("contact.json"), example("event.json"));

    let contact_fields: BTreeSet<String> = keys(&contact).union(&keys(&contact["attrs"])).cloned().collect();
    assert_eq!(inserted(&module, "ТелоКонтакта"), contact_fields, "ТелоКонтакта builds contact.json");
    let event_fields: BTreeSet<String> = keys(&event).into_iter().chain(["recipient".to_string()]).collect();
    assert_eq!(inserted(&module, "ТелоСобытия"), event_fields, "ТелоСобытия builds event.json's envelope");
    let mut data = inserted(&order, "ДанныеЗаказаДляОкна");
    data.insert("recipient".into());
    assert_eq!(data, keys(&event["data"]), "the order's data is event.json's data");
    // The HTTP service reads the webhook fields the example carries.
    let service = bsl("src/HTTPServices/ОкноСервис/Module.bsl");
    let hook = example("webhook-button-pressed.json");
    for field in ["type", "data", "button_data", "contact_id"] {
        assert!(service.contains(&format!("\"{field}\"")), "the service reads `{field}`");
        assert!(hook.get(field).or_else(|| hook["data"].get(field)).is_some(), "the example has `{field}`");
    }
    for header in ["X-Okno-Signature", "X-Okno-Delivery", "X-Okno-Event"] {
        assert!(service.contains(header), "the service reads {header}");
    }
}

#[tokio::test]
async fn the_kit_s_bodies_upsert_a_contact_and_deliver_an_event_once() {
    let app = TestApp::spawn().await;
    let sink = Sink::start(SECRET).await;
    let ch = app.webhook_channel(&format!("{}/out", sink.url), SECRET).await;

    // ОкноОбновитьКонтакт: the first write creates, the next ones update the same contact.
    let mut contact = example("contact.json");
    let external_id = contact["external_id"].as_str().unwrap().to_string();
    let created = app.post("/api/v1/contacts", contact.clone()).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["phone"], "+79161234567");
    assert_eq!(created.body["attrs"]["1c_code"], "000000012");
    contact["name"] = "ООО «Ромашка и партнёры»".into();
    let updated = app.post("/api/v1/contacts", contact).await;
    assert_eq!((updated.status, &updated.body["id"]), (200, &created.body["id"]), "{updated:?}");
    let found = app.get(&format!("/api/v1/contacts?external_id={external_id}")).await;
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(found.body["items"][0]["name"], "ООО «Ромашка и партнёры»");

    // The contact writes to okno's channel (in life: it pressed /start with a link code).
    let id = created.body["id"].as_str().unwrap().to_string();
    let sender =
        okno_store::InboundSender { user_id: "u-romashka".into(), chat_id: "u-romashka".into(), ..Default::default() };
    app.running().engine.store.attach_identity(&id.as_str().into(), &ch.as_str().into(), sender).await.unwrap();
    let rule = app.post("/api/v1/rules", example("rule.json")).await;
    assert_eq!(rule.status, 201, "{rule:?}");

    // ОкноОтправитьСобытие → the job: the body, the same key in the Idempotency-Key header.
    let event = example("event.json");
    let key = event["key"].as_str().unwrap().to_string();
    let send = || {
        app.http
            .post(format!("{}/api/v1/events", app.url))
            .bearer_auth(&app.token)
            .header("Idempotency-Key", &key)
            .header("content-type", "application/json; charset=utf-8")
            .body(serde_json::to_vec(&event).unwrap())
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["duplicate"], false);

    let delivered = sink.wait_accepted(1, 20).await;
    assert_eq!(delivered[0].body["to"]["id"], "u-romashka");
    let text = delivered[0].body["text"].as_str().unwrap();
    assert!(text.contains("УТ-000123") && text.contains("15400.5"), "{text}");
    let settled = eventually(20, || async {
        let e = app.get(&format!("/api/v1/events/{}", first["id"].as_str().unwrap())).await;
        let d = e.body["deliveries"].as_array()?.clone();
        (d.len() == 1 && d[0]["status"] != "queued").then_some(e.body)
    })
    .await
    .expect("the event settles");
    assert_eq!(settled["key"], key.as_str());
    assert_eq!(settled["deliveries"][0]["contact_id"], id.as_str());
    assert!(settled["unresolved"].as_array().unwrap().is_empty(), "{settled}");

    // The job's retry after a lost answer: the same key is taken, nothing is sent again.
    let again = send().await.unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!((again["duplicate"].as_bool(), &again["id"]), (Some(true), &first["id"]));
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(sink.accepted().len(), 1, "one message for one key");
}
