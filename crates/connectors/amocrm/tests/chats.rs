//! The Chats API (amojo) against the simulator: the channel connected, the person's and
//! okno's operators' messages put into amoCRM (a retry does not double them), a wrong secret
//! refused, an amoCRM user's answer received through the signed one-shot webhook and read,
//! and its delivery reported back.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use okno_amocrm_sim::AmoSim;
use okno_connector_amocrm::chats::{read_hook, Attachment, ChatHook, ChatMessage, Delivery, MediaKind, Participant};
use okno_connector_amocrm::{ChatsClient, ChatsError, PER_SECOND};

const CHANNEL: &str = "f90ba33d-c9d9-44da-b76c-c349b0ecbe41";
const SECRET: &str = "5a44c5dff55f3c15a4cce8d7c4cc27e207c7e189";

/// okno's end of the channel's webhooks: checks and reads each, answering as `answer` says.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Result<ChatHook, String>>>>,
}

async fn receiver(delay: Duration) -> Receiver {
    let got: Arc<Mutex<Vec<Result<ChatHook, String>>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hooks/amojo/{scope}",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let sig = headers.get("x-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                let read = read_hook(SECRET, &sig, &body).map_err(|e| e.to_string());
                let ok = read.is_ok();
                seen.lock().unwrap().push(read);
                tokio::time::sleep(delay).await;
                if ok {
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/amojo/:scope_id", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, got }
}

fn anna() -> Participant {
    Participant {
        id: "okno-contact-17".into(),
        name: "Анна".into(),
        phone: Some("+79001234567".into()),
        ..Default::default()
    }
}

async fn connected(hook_url: &str) -> (AmoSim, ChatsClient, String) {
    let sim = AmoSim::start("romashka").await;
    sim.add_user("Ольга Менеджер", "olga@romashka.ru");
    sim.add_channel(CHANNEL, SECRET, hook_url);
    let chats = ChatsClient::new(&sim.amojo_base(), CHANNEL, SECRET, PER_SECOND).unwrap();
    let conn = chats.connect(&sim.amojo_id(), "okno", "v2").await.unwrap();
    assert_eq!(conn.scope_id, format!("{CHANNEL}_{}", sim.amojo_id()));
    (sim, chats, conn.scope_id)
}

#[tokio::test]
async fn the_person_s_message_goes_in_once_however_often_it_is_sent() {
    let (sim, chats, scope) = connected("http://127.0.0.1:9/unused").await;
    let msg = ChatMessage::from_person(
        "okno-msg-1",
        "okno-conv-1",
        anna(),
        "Здравствуйте! Где мой заказ?",
        1_700_000_000_000,
    );
    let first = chats.send_message(&scope, &msg).await.unwrap();
    let again = chats.send_message(&scope, &msg).await.unwrap();
    assert_eq!(first, again, "the same answer for the same msgid");
    assert_eq!((first.ref_id.as_str(), first.conversation_id.as_str()), ("okno-msg-1", "okno-conv-1"));
    let stored = sim.chat_messages("okno-conv-1");
    assert_eq!(stored.len(), 1, "a retry does not double the message");
    assert!(stored[0].from_person);
    assert_eq!(stored[0].text, "Здравствуйте! Где мой заказ?");
    assert_eq!(sim.conversations()[0].person.phone.as_deref(), Some("+79001234567"));

    let photo = ChatMessage {
        msgid: "okno-msg-2".into(),
        text: String::new(),
        attachment: Some(Attachment {
            kind: MediaKind::Picture,
            url: "https://okno.example/files/p.jpg".into(),
            file_name: "p.jpg".into(),
            file_size: 51_200,
        }),
        ..msg
    };
    chats.send_message(&scope, &photo).await.unwrap();
    let stored = sim.chat_messages("okno-conv-1");
    assert_eq!((stored[1].kind.as_str(), stored[1].media.as_str()), ("picture", "https://okno.example/files/p.jpg"));
}

#[tokio::test]
async fn an_operator_s_message_names_the_amocrm_user() {
    let (sim, chats, scope) = connected("http://127.0.0.1:9/unused").await;
    let user = sim.add_user("Пётр Курьер", "petr@romashka.ru");
    let operator = Participant {
        id: "okno-operator-3".into(),
        name: "Пётр".into(),
        ref_id: Some(sim.user_amojo_id(user)),
        ..Default::default()
    };
    let msg =
        ChatMessage::from_operator("okno-msg-9", "okno-conv-2", operator, anna(), "Заказ в пути", 1_700_000_000_000);
    chats.send_message(&scope, &msg).await.unwrap();
    let stored = &sim.chat_messages("okno-conv-2")[0];
    assert!(!stored.from_person);
    assert_eq!(stored.sender_ref_id.as_deref(), Some(sim.user_amojo_id(user).as_str()));
    assert_eq!(sim.conversations()[0].person.id, "okno-contact-17", "the receiver is the conversation's person");
}

#[tokio::test]
async fn a_wrong_secret_or_an_unknown_scope_is_told_apart() {
    let (sim, _, scope) = connected("http://127.0.0.1:9/unused").await;
    let wrong = ChatsClient::new(&sim.amojo_base(), CHANNEL, "not the secret", PER_SECOND).unwrap();
    let msg = ChatMessage::from_person("m", "c", anna(), "Привет", 0);
    let e = wrong.send_message(&scope, &msg).await.unwrap_err();
    assert!(matches!(e, ChatsError::Forbidden(_)), "{e:?}");
    assert!(!e.is_passing(), "a retry cannot fix a wrong secret");

    let right = ChatsClient::new(&sim.amojo_base(), CHANNEL, SECRET, PER_SECOND).unwrap();
    let e = right.send_message(&format!("{CHANNEL}_someone-else"), &msg).await.unwrap_err();
    assert!(matches!(e, ChatsError::NotFound(_)), "{e:?}");
    let e = right.connect("no-such-account", "okno", "v2").await.unwrap_err();
    assert!(matches!(e, ChatsError::NotFound(_)), "{e:?}");
    assert_eq!(sim.amojo_log().iter().filter(|(_, _, s)| *s == 403).count(), 1);
    assert!(sim.chat_messages("c").is_empty());
}

#[tokio::test]
async fn an_amocrm_user_s_answer_arrives_signed_and_its_delivery_is_reported() {
    let okno = receiver(Duration::ZERO).await;
    let (sim, chats, scope) = connected(&okno.url).await;
    let msg = ChatMessage::from_person("okno-msg-1", "okno-conv-1", anna(), "Где мой заказ?", 1_700_000_000_000);
    chats.send_message(&scope, &msg).await.unwrap();

    let hook = sim.user_reply("okno-conv-1", "Уже едет, будет через час").await;
    assert!(hook.acknowledged, "{hook:?}");
    assert!(hook.url.ends_with(&format!("/hooks/amojo/{scope}")), "the scope filled into the URL: {}", hook.url);
    let read = okno.got.lock().unwrap()[0].clone().unwrap();
    assert_eq!(read.conversation.client_id.as_deref(), Some("okno-conv-1"));
    assert_eq!(read.receiver.id, "okno-contact-17");
    assert_eq!(read.message.text, "Уже едет, будет через час");
    assert_eq!(read.sender.name, "Ольга Менеджер");
    assert_eq!(read.message.id, hook.msgid);

    chats.delivery_status(&scope, &read.message.id, &Delivery::Delivered).await.unwrap();
    chats.delivery_status(&scope, &read.message.id, &Delivery::Read).await.unwrap();
    let failed = Delivery::Failed { code: 905, text: String::new() };
    assert!(matches!(chats.delivery_status(&scope, &read.message.id, &failed).await, Err(ChatsError::Invalid(_))));
    let reply = sim.chat_messages("okno-conv-1").into_iter().find(|m| m.msgid == read.message.id).unwrap();
    assert_eq!(reply.statuses.iter().map(|s| s.status).collect::<Vec<_>>(), vec![1, 2]);
    let unknown = chats.delivery_status(&scope, "no-such-message", &Delivery::Delivered).await.unwrap_err();
    assert!(matches!(unknown, ChatsError::NotFound(_)), "{unknown:?}");
}

#[tokio::test]
async fn a_slow_answer_to_a_webhook_loses_it_for_good() {
    let okno = receiver(Duration::from_millis(800)).await;
    let (sim, chats, scope) = connected(&okno.url).await;
    sim.chat_hook_deadline(Duration::from_millis(300));
    chats.send_message(&scope, &ChatMessage::from_person("m1", "c1", anna(), "Алло", 0)).await.unwrap();
    let hook = sim.user_reply("c1", "Слушаю").await;
    assert_eq!((hook.acknowledged, hook.status), (false, None), "no answer inside the deadline");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(sim.chat_hooks().len(), 1, "amojo never sends it again");
    assert_eq!(okno.got.lock().unwrap().len(), 1);
}
