//! The README walkthrough as a test: inbound → conversation → reply → signed outbound →
//! status webhook.

use okno_testkit::{eventually, Sink};
use serde_json::json;

use super::*;

#[tokio::test]
async fn inbound_message_becomes_a_conversation_and_the_reply_reaches_the_site() {
    let (app, sink, ch) = app_with_channel().await;
    let hooks = Sink::start("hook-secret-0123456789").await;
    let sub = app
        .post("/api/v1/webhooks", json!({"url": format!("{}/events", hooks.url), "events": ["message.received", "message.status"], "secret": "hook-secret-0123456789"}))
        .await;
    assert_eq!(sub.status, 201, "{sub:?}");

    let a = app.inbound(&ch, SECRET, &json!({"message_id": "m-1", "user": {"id": "u-42", "name": "Ivan", "phone": "+79990001122"}, "text": "hello"})).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["duplicate"], false);
    let in_id = a.body["id"].as_str().unwrap().to_string();

    let list = app.get("/api/v1/conversations?status=open").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let conv = &list.body["items"][0];
    assert_eq!(conv["contact"]["name"], "Ivan");
    assert_eq!(conv["contact"]["phone"], "+79990001122");
    assert_eq!(conv["unread"], 1);
    assert_eq!(conv["last_message"]["text"], "hello");
    let conv_id = conv["id"].as_str().unwrap();

    let reply = app
        .post(&format!("/api/v1/conversations/{conv_id}/messages"), json!({"text": "Здравствуйте! Чем помочь?", "buttons": [[{"text": "Заказ", "data": "order"}, {"text": "Сайт", "url": "https://example.org"}]]}))
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.body["status"], "queued");
    let out_id = reply.body["id"].as_str().unwrap().to_string();

    let got = sink.wait_accepted(1, 10).await;
    let out = &got[0];
    assert!(out.signature_ok, "outbound is signed with the channel secret");
    assert_eq!(out.path, "/out");
    assert_eq!(out.body["id"], out_id.as_str());
    assert_eq!(out.body["to"]["id"], "u-42");
    assert_eq!(out.body["text"], "Здравствуйте! Чем помочь?");
    assert_eq!(out.body["buttons"][0][0]["data"], "order");
    assert_eq!(out.body["buttons"][0][1]["url"], "https://example.org");

    let sent = eventually(5, || async {
        let m = app.get(&format!("/api/v1/messages/{out_id}")).await;
        (m.body["status"] == "sent").then_some(m)
    })
    .await
    .expect("the reply is marked sent");
    assert_eq!(sent.body["direction"], "out");

    let events = hooks.wait_accepted(2, 10).await;
    let received =
        events.iter().find(|e| e.header("x-okno-event") == Some("message.received")).expect("message.received");
    assert!(received.signature_ok);
    assert_eq!(received.body["type"], "message.received");
    assert_eq!(received.body["data"]["id"], in_id.as_str());
    assert!(received.header("x-okno-delivery").is_some_and(|d| !d.is_empty()));
    let status = events.iter().find(|e| e.header("x-okno-event") == Some("message.status")).expect("message.status");
    assert_eq!(status.body["data"]["status"], "sent");
    assert_eq!(status.body["data"]["message_id"], out_id.as_str());
    let ids: std::collections::HashSet<_> =
        events.iter().map(|e| e.header("x-okno-delivery").unwrap().to_string()).collect();
    assert_eq!(ids.len(), events.len(), "delivery ids are unique");

    let log = app.get(&format!("/api/v1/webhooks/{}/deliveries", sub.body["id"].as_str().unwrap())).await;
    assert!(log.body["items"].as_array().unwrap().iter().all(|d| d["status"] == "delivered"));

    let history = app.get(&format!("/api/v1/conversations/{conv_id}/messages")).await;
    let texts: Vec<_> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["direction"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts, vec!["in", "out"], "oldest first");
}

#[tokio::test]
async fn a_replayed_message_id_is_accepted_once() {
    let (app, sink, ch) = app_with_channel().await;
    let body = message("m-7", "u-1", "once");
    let first = app.inbound(&ch, SECRET, &body).await;
    let second = app.inbound(&ch, SECRET, &body).await;
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    assert_eq!(second.body["id"], first.body["id"]);
    assert_eq!(second.body["duplicate"], true);
    let conv = app.get("/api/v1/conversations").await;
    let conv_id = conv.body["items"][0]["id"].as_str().unwrap();
    let msgs = app.get(&format!("/api/v1/conversations/{conv_id}/messages")).await;
    assert_eq!(msgs.body["items"].as_array().unwrap().len(), 1);
    drop(sink);
}

#[tokio::test]
async fn button_presses_arrive_as_button_pressed_events() {
    let (app, _sink, ch) = app_with_channel().await;
    let hooks = Sink::start("hook-secret-0123456789").await;
    app.post(
        "/api/v1/webhooks",
        json!({"url": hooks.url, "events": ["button.pressed"], "secret": "hook-secret-0123456789"}),
    )
    .await;
    let conv = inbound_conversation(&app, &ch, "u-5").await;
    let out = app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            json!({"text": "Rate us", "buttons": [[{"text": "5", "data": "rate:5"}]]}),
        )
        .await;
    let out_id = out.body["id"].as_str().unwrap();
    let press = app
        .inbound(
            &ch,
            SECRET,
            &json!({"message_id": "p-1", "user": {"id": "u-5"}, "button": {"data": "rate:5", "reply_to": out_id}}),
        )
        .await;
    assert_eq!(press.status, 200, "{press:?}");
    let got = hooks.wait_accepted(1, 10).await;
    assert_eq!(got[0].body["type"], "button.pressed");
    assert_eq!(got[0].body["data"]["button_data"], "rate:5");
    assert_eq!(got[0].body["data"]["reply_to"], out_id);
}

#[tokio::test]
async fn send_by_external_id_is_idempotent() {
    let (app, sink, ch) = app_with_channel().await;
    let conv = inbound_conversation(&app, &ch, "u-9").await;
    let contact_id =
        app.get(&format!("/api/v1/conversations/{conv}")).await.body["contact"]["id"].as_str().unwrap().to_string();
    let up = app.patch(&format!("/api/v1/contacts/{contact_id}"), json!({"external_id": "1c-000123"})).await;
    assert_eq!(up.status, 200, "{up:?}");
    let body = json!({"external_id": "1c-000123", "text": "Оплата получена", "idempotency_key": "pay-77"});
    let a = app.post("/api/v1/messages", body.clone()).await;
    let b = app.post("/api/v1/messages", body).await;
    assert_eq!(a.status, 202, "{a:?}");
    assert_eq!(b.body["id"], a.body["id"]);
    sink.wait_accepted(1, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.accepted().len(), 1, "the repeated key sent nothing");
}

#[tokio::test]
async fn conversation_status_assignee_and_labels_change_and_notify() {
    let (app, _sink, ch) = app_with_channel().await;
    let hooks = Sink::start("hook-secret-0123456789").await;
    app.post(
        "/api/v1/webhooks",
        json!({"url": hooks.url, "events": ["conversation.updated"], "secret": "hook-secret-0123456789"}),
    )
    .await;
    let conv = inbound_conversation(&app, &ch, "u-3").await;
    let p = app
        .patch(
            &format!("/api/v1/conversations/{conv}"),
            json!({"status": "resolved", "assignee": "anna", "labels": ["vip"], "read": true}),
        )
        .await;
    assert_eq!(p.status, 200, "{p:?}");
    assert_eq!(p.body["status"], "resolved");
    assert_eq!(p.body["assignee"], "anna");
    assert_eq!(p.body["unread"], 0);
    let un = app.patch(&format!("/api/v1/conversations/{conv}"), json!({"assignee": null})).await;
    assert_eq!(un.body["assignee"], serde_json::Value::Null);
    assert_eq!(app.get("/api/v1/conversations?assignee=none").await.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/v1/conversations?label=vip").await.body["items"].as_array().unwrap().len(), 1);
    let got = hooks.wait_accepted(2, 10).await;
    assert_eq!(got[0].body["data"]["status"], "resolved");
}

#[tokio::test]
async fn conversation_list_pages_with_a_cursor() {
    let (app, _sink, ch) = app_with_channel().await;
    for n in 0..5 {
        inbound_conversation(&app, &ch, &format!("p{n}")).await;
    }
    let first = app.get("/api/v1/conversations?limit=2").await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let mut seen: Vec<String> =
        first.body["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    let mut next = first.body["next"].as_str().map(str::to_string);
    while let Some(c) = next {
        let page = app.get(&format!("/api/v1/conversations?limit=2&cursor={c}")).await;
        seen.extend(page.body["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()));
        next = page.body["next"].as_str().map(str::to_string);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);
}
