//! The conformance suite: every store operation, exercised the same way on every backend.
//! `tests/conformance.rs` instantiates each scenario for SQLite and for PostgreSQL.

use std::collections::HashSet;
use std::sync::Arc;

use okno_domain::ids::*;
use okno_domain::model::*;
use okno_domain::time::now_ms;
use okno_domain::ErrorKind;
use serde_json::json;

use crate::*;

fn sender(user: &str) -> InboundSender {
    InboundSender {
        user_id: user.into(),
        chat_id: user.into(),
        display_name: Some(format!("User {user}")),
        ..Default::default()
    }
}

fn inbound(channel: &str, user: &str, msg_id: &str, text: &str) -> InboundMessage {
    InboundMessage { sender: sender(user), ..crate::testing::inbound_text(channel, user, msg_id, text) }
}

async fn channel(store: &dyn Store, name: &str) -> Channel {
    store
        .create_channel(NewChannel {
            kind: ChannelKind::Webhook,
            name: name.into(),
            config: json!({"outbound_url": "https://example.org/in", "secret": "s"}),
            info: json!({}),
        })
        .await
        .unwrap()
}

async fn subscribe(store: &dyn Store, events: &[EventType]) -> Webhook {
    store
        .create_webhook(NewWebhook {
            url: "https://example.org/hook".into(),
            events: events.to_vec(),
            secret: "k".into(),
            created_by: None,
        })
        .await
        .unwrap()
}

/// Claims everything due and returns the jobs, completing none of them.
async fn claim_all(store: &dyn Store) -> Vec<Job> {
    store.claim_jobs("test", 1000, 60_000).await.unwrap()
}

fn send_req(to: Recipient, text: &str) -> OutboundRequest {
    OutboundRequest {
        to,
        channel_id: None,
        text: Some(text.into()),
        buttons: vec![],
        attachment_ids: vec![],
        idempotency_key: None,
        author: Some("test".into()),
        reply_to: None,
        options: json!({}),
    }
}

pub async fn channels_round_trip(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    assert_eq!(ch.status, "active");
    assert_eq!(ch.config["secret"], "s", "the store keeps secrets for the adapters");
    let patched = store
        .update_channel(
            &ch.id,
            ChannelPatch {
                name: Some("site 2".into()),
                status: Some(("error".into(), Some("boom".into()))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.name, "site 2");
    assert_eq!(patched.status_detail.as_deref(), Some("boom"));
    assert_eq!(store.list_channels().await.unwrap().len(), 1);
    store.delete_channel(&ch.id).await.unwrap();
    assert!(store.get_channel(&ch.id).await.unwrap_err().is_not_found());
    assert!(store.list_channels().await.unwrap().is_empty());
    assert!(store.delete_channel(&ch.id).await.unwrap_err().is_not_found());
}

/// A connector is kept with its configuration (secrets included, for the engine), changed,
/// listed and removed, like a channel.
pub async fn connectors_round_trip(store: Arc<dyn Store>) {
    use crate::{new_connector_id, ConnectorPatch, NewConnector};
    use okno_domain::model::ConnectorKind;
    let id = new_connector_id();
    let config = json!({"api_base": "https://romashka.amocrm.ru", "token": "long-lived", "secret": "hook"});
    let new = NewConnector {
        kind: ConnectorKind::Amocrm,
        name: "amoCRM".into(),
        config,
        info: json!({"subdomain": "romashka"}),
    };
    let made = store.create_connector(&id, new.clone()).await.unwrap();
    assert_eq!((made.id.clone(), made.kind, made.status.as_str()), (id.clone(), ConnectorKind::Amocrm, "active"));
    assert_eq!(made.config["token"], "long-lived", "the store keeps secrets for the engine");
    assert_eq!(store.get_connector(&id).await.unwrap().info["subdomain"], "romashka");
    assert!(store.create_connector(&id, new).await.is_err(), "one connector per id");
    let patch = ConnectorPatch {
        status: Some(("error".into(), Some("amoCRM refused the token (401)".into()))),
        config: Some(json!({"api_base": "https://romashka.amocrm.ru", "token": "new", "secret": "hook"})),
        ..Default::default()
    };
    let patched = store.update_connector(&id, patch).await.unwrap();
    assert_eq!((patched.status.as_str(), patched.config["token"].as_str()), ("error", Some("new")));
    assert_eq!(patched.status_detail.as_deref(), Some("amoCRM refused the token (401)"));
    assert_eq!(store.list_connectors().await.unwrap().len(), 1);
    assert_eq!(store.connector_place(&id, "onec:Catalog_Контрагенты").await.unwrap(), None);
    store.keep_connector_place(&id, "onec:Catalog_Контрагенты", "v1").await.unwrap();
    store.keep_connector_place(&id, "onec:Catalog_Контрагенты", "v2").await.unwrap();
    assert_eq!(store.connector_place(&id, "onec:Catalog_Контрагенты").await.unwrap().as_deref(), Some("v2"));
    // Made with its standing job.
    let jobs = store.claim_jobs("conformance", 100, 60_000).await.unwrap();
    assert!(jobs.iter().any(|j| j.kind == JobKind::ConnectorPoll && j.ref_id == id.as_str()), "{jobs:?}");
    store.delete_connector(&id).await.unwrap();
    assert!(store.get_connector(&id).await.unwrap_err().is_not_found());
    assert!(store.list_connectors().await.unwrap().is_empty());
    assert!(store.update_connector(&id, ConnectorPatch::default()).await.unwrap_err().is_not_found());
}

/// A business system's contacts written to okno: a person okno met first (same phone, no
/// external id) is claimed, not doubled; the same digest again changes nothing; a new digest
/// updates; okno's changes are read back in order; a mark keeps an external id already there.
pub async fn contacts_sync_claims_and_never_doubles(store: Arc<dyn Store>) {
    use crate::{Synced, SyncedContact};
    let met = store
        .upsert_contact(ContactInput {
            name: Some("Боря".into()),
            phone: Some("+79007654321".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    let row = |ext: &str, name: &str, phone: &str, digest: &str| SyncedContact {
        external_id: ext.into(),
        name: Some(name.into()),
        phone: Some(phone.into()),
        email: None,
        digest: digest.into(),
    };
    let first = store
        .sync_contacts(
            "crm_sync",
            vec![row("crm-1", "Борис", "+79007654321", "1:a"), row("crm-2", "Анна", "+79001112233", "2:a")],
        )
        .await
        .unwrap();
    assert_eq!(first[0], Synced::Updated(met.id.clone()), "claimed by phone");
    let anna = match &first[1] {
        Synced::Created(id) => id.clone(),
        other => panic!("Anna is new: {other:?}"),
    };
    let boris = store.get_contact(&met.id).await.unwrap();
    assert_eq!((boris.external_id.as_deref(), boris.name.as_deref()), (Some("crm-1"), Some("Борис")));
    assert_eq!(boris.attrs["crm_sync"], "1:a");
    let again = store.sync_contacts("crm_sync", vec![row("crm-1", "Борис", "+79007654321", "1:a")]).await.unwrap();
    assert_eq!(again, vec![Synced::Unchanged(met.id.clone())]);
    let changed = store.sync_contacts("crm_sync", vec![row("crm-2", "Анна П.", "+79001112233", "2:b")]).await.unwrap();
    assert_eq!(changed, vec![Synced::Updated(anna.clone())]);
    assert_eq!(store.get_contact(&anna).await.unwrap().name.as_deref(), Some("Анна П."));
    let all = store.contacts_changed_since((0, String::new()), 100).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(
        all.windows(2).all(|w| (w[0].updated_at, w[0].id.as_str()) <= (w[1].updated_at, w[1].id.as_str())),
        "in order"
    );
    let last = all.last().unwrap();
    assert!(store.contacts_changed_since((last.updated_at, last.id.to_string()), 100).await.unwrap().is_empty());
    store.mark_synced("crm_sync", vec![(anna.clone(), Some("other-9".into()), "9:c".into())]).await.unwrap();
    let a = store.get_contact(&anna).await.unwrap();
    assert_eq!((a.external_id.as_deref(), a.attrs["crm_sync"].as_str()), (Some("crm-2"), Some("9:c")), "its id kept");
}

/// Messages on some channels read on from a place: in time order, the place excluded, the
/// young ones left for later, at most the limit.
pub async fn messages_on_channels_read_on_from_a_place(store: Arc<dyn Store>) {
    let a = channel(&*store, "desk-a").await.id;
    let b = channel(&*store, "desk-b").await.id;
    let other = channel(&*store, "elsewhere").await.id;
    for (ch, n) in [(&a, 1), (&b, 2), (&other, 3), (&a, 4)] {
        store
            .record_inbound(inbound(ch.as_str(), &format!("u{n}"), &format!("m{n}"), &format!("text {n}")))
            .await
            .unwrap();
    }
    let now = now_ms() + 1000;
    let read = store.messages_on_channels(&[a.clone(), b.clone()], (0, String::new()), now, 10).await.unwrap();
    let texts: Vec<&str> = read.iter().filter_map(|m| m.text.as_deref()).collect();
    assert_eq!(texts, ["text 1", "text 2", "text 4"]);
    let place = (read[0].created_at, read[0].id.to_string());
    let on = store.messages_on_channels(&[a.clone(), b.clone()], place, now, 1).await.unwrap();
    assert_eq!(on.len(), 1);
    assert_eq!(on[0].text.as_deref(), Some("text 2"));
    assert!(
        store.messages_on_channels(std::slice::from_ref(&a), (0, String::new()), 0, 10).await.unwrap().is_empty(),
        "too young"
    );
    assert!(store.messages_on_channels(&[], (0, String::new()), now, 10).await.unwrap().is_empty());
}

/// A call lands under the contact with its number (one is made for a number nobody has), a
/// second report of the same call updates it rather than doubling it, the same id from
/// another source is another call, and a merge carries calls to the kept contact.
pub async fn calls_are_kept_once_under_the_number_s_contact(store: Arc<dyn Store>) {
    use crate::NewCall;
    use okno_domain::model::{CallDirection, CallStatus};
    let known = store
        .upsert_contact(ContactInput {
            external_id: Some("1c-call".into()),
            phone: Some("+79990001122".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    let call = |id: &str, phone: &str, status: CallStatus, duration: i64, rec: Option<&str>| NewCall {
        source: "pbx-1".into(),
        external_id: id.into(),
        phone: phone.into(),
        name: None,
        direction: CallDirection::In,
        status,
        operator: Some("101".into()),
        started_at: 1_700_000_000_000,
        duration,
        recording_url: rec.map(str::to_string),
    };
    let (first, new) = store.record_call(call("c1", "+79990001122", CallStatus::Answered, 0, None)).await.unwrap();
    assert!(new);
    assert_eq!(first.contact_id, known.id, "the contact with the number");
    let (ended, new) = store
        .record_call(call("c1", "+79990001122", CallStatus::Answered, 95, Some("https://pbx/r/c1.mp3")))
        .await
        .unwrap();
    assert!(!new, "the same call reported at its end");
    assert_eq!(
        (ended.id.clone(), ended.duration, ended.recording_url.as_deref()),
        (first.id.clone(), 95, Some("https://pbx/r/c1.mp3"))
    );
    let mut other_source = call("c1", "+79990001122", CallStatus::Missed, 0, None);
    other_source.source = "b24-1".into();
    assert!(store.record_call(other_source).await.unwrap().1, "another system's c1 is another call");
    assert_eq!(store.list_calls(&known.id, 10).await.unwrap().len(), 2);
    let (stranger, _) = store.record_call(call("c2", "+79995554433", CallStatus::Missed, 0, None)).await.unwrap();
    assert_ne!(stranger.contact_id, known.id);
    let made = store.get_contact(&stranger.contact_id).await.unwrap();
    assert_eq!(made.phone.as_deref(), Some("+79995554433"), "a contact made for a number nobody has");
    store.merge_contacts(&known.id, &stranger.contact_id, None).await.unwrap();
    let calls = store.list_calls(&known.id, 10).await.unwrap();
    assert_eq!(calls.len(), 3, "the merged contact's call came along");
    assert!(calls.iter().any(|c| c.external_id == "c2" && c.status == CallStatus::Missed));
}

/// Typed ids go in and come out of the store as the same ids, on every path that names them:
/// a channel, a contact with its identity and preferred channel, a conversation, an inbound
/// message and the outbound one that answers it, and the filters that take them.
pub async fn typed_ids_round_trip(store: Arc<dyn Store>) {
    let ch: ChannelId = channel(&*store, "site").await.id;
    assert_eq!(ch.as_str().len(), 32, "a new id is okno's usual UUIDv7: {ch}");
    assert_eq!(store.get_channel(&ch).await.unwrap().id, ch);
    let m = store.record_inbound(inbound(&ch, "u-ids", "ids-1", "hello")).await.unwrap().message;
    let (contact_id, conversation_id, message_id): (ContactId, ConversationId, MessageId) =
        (m.contact_id.clone(), m.conversation_id.clone(), m.id.clone());
    assert_eq!(m.channel_id, ch);

    let contact = store.get_contact(&contact_id).await.unwrap();
    assert_eq!(contact.id, contact_id);
    assert_eq!(contact.identities[0].contact_id, contact_id);
    assert_eq!(contact.identities[0].channel_id, ch);
    let contact = store
        .update_contact(&contact_id, ContactInput { preferred_channel_id: Some(ch.clone()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(contact.preferred_channel_id.as_ref(), Some(&ch));
    assert_eq!(store.get_contacts(std::slice::from_ref(&contact_id)).await.unwrap()[0].id, contact_id);

    let conv = store.get_conversation(&conversation_id).await.unwrap();
    assert_eq!((&conv.id, &conv.contact.id), (&conversation_id, &contact_id));
    assert_eq!(conv.last_inbound_channel_id.as_ref(), Some(&ch));
    assert_eq!(conv.last_message.as_ref().map(|l| &l.id), Some(&message_id));
    let filter =
        ConversationFilter { contact_id: Some(contact_id.clone()), channel_id: Some(ch.clone()), ..Default::default() };
    let listed = store.list_conversations(filter, PageRequest::new(None, None)).await.unwrap();
    assert_eq!(listed.items.iter().map(|c| &c.id).collect::<Vec<_>>(), vec![&conversation_id]);

    let got = store.get_message(&message_id).await.unwrap();
    assert_eq!(
        (&got.id, &got.conversation_id, &got.contact_id, &got.channel_id),
        (&message_id, &conversation_id, &contact_id, &ch)
    );
    let reply = OutboundRequest {
        reply_to: Some(message_id.clone()),
        channel_id: Some(ch.clone()),
        ..send_req(Recipient::Conversation(conversation_id.clone()), "answer")
    };
    let (out, _) = store.enqueue_outbound(reply).await.unwrap();
    assert_eq!((&out.conversation_id, &out.contact_id, &out.channel_id), (&conversation_id, &contact_id, &ch));
    let out = store.get_message(&out.id).await.unwrap();
    assert_eq!(out.reply_to.as_ref(), Some(&message_id));
    let target = store.delivery_target(&out.id).await.unwrap();
    assert_eq!((&target.channel.id, &target.identity.contact_id), (&ch, &contact_id));
    let page = store.list_messages(&conversation_id, PageRequest::new(None, None)).await.unwrap();
    assert_eq!(page.items.iter().map(|m| &m.id).collect::<Vec<_>>(), vec![&message_id, &out.id]);

    // An id serializes as the plain string the API has always shown.
    let json = serde_json::to_value(&got).unwrap();
    assert_eq!(json["id"], json!(message_id.as_str()));
    assert_eq!(json["conversation_id"], json!(conversation_id.as_str()));
    assert_eq!(serde_json::to_value(&conv).unwrap()["contact"]["id"], json!(contact_id.as_str()));
    assert!(store.get_message(&MessageId::from("nope")).await.unwrap_err().is_not_found());
}

pub async fn contacts_upsert_by_external_id_and_search(store: Arc<dyn Store>) {
    let hook = subscribe(&*store, &[EventType::ContactUpdated]).await;
    let input = ContactInput {
        external_id: Some("1c-0001".into()),
        name: Some("Иван Петров".into()),
        phone: Some("+79990001122".into()),
        groups: Some(vec!["sales".into(), "managers".into()]),
        attrs: Some(json!({"city": "Kazan"})),
        ..Default::default()
    };
    let (c, created) = store.upsert_contact(input).await.unwrap();
    assert!(created);
    assert_eq!(c.groups, vec!["managers", "sales"]);
    let (c2, created) = store
        .upsert_contact(ContactInput {
            external_id: Some("1c-0001".into()),
            email: Some("ivan@example.org".into()),
            groups: Some(vec!["sales".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(c2.id, c.id);
    assert_eq!(c2.name.as_deref(), Some("Иван Петров"), "unset fields are kept");
    assert_eq!(c2.email.as_deref(), Some("ivan@example.org"));
    assert_eq!(c2.groups, vec!["sales"], "groups are replaced");
    for n in 0..5 {
        store
            .upsert_contact(ContactInput {
                name: Some(format!("Buyer {n}")),
                groups: Some(vec!["buyers".into()]),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let by_ext = store
        .find_contacts(
            ContactFilter { external_id: Some("1c-0001".into()), ..Default::default() },
            PageRequest::new(None, None),
        )
        .await
        .unwrap();
    assert_eq!(by_ext.items.len(), 1);
    let by_q = store
        .find_contacts(ContactFilter { q: Some("иван".into()), ..Default::default() }, PageRequest::new(None, None))
        .await
        .unwrap();
    assert_eq!(by_q.items.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec![c.id.as_str()]);
    let by_phone = store
        .find_contacts(
            ContactFilter { phone: Some("+79990001122".into()), ..Default::default() },
            PageRequest::new(None, None),
        )
        .await
        .unwrap();
    assert_eq!(by_phone.items.len(), 1);
    let pct = store
        .find_contacts(ContactFilter { q: Some("%".into()), ..Default::default() }, PageRequest::new(None, None))
        .await
        .unwrap();
    assert!(pct.items.is_empty(), "LIKE wildcards in the query are literal");
    // Paging through the group two at a time visits each contact once.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .find_contacts(
                ContactFilter { group: Some("buyers".into()), ..Default::default() },
                PageRequest::new(Some(2), cursor),
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|c| c.id.clone()));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);
    let updates = store.list_deliveries(&hook.id, PageRequest::new(Some(100), None)).await.unwrap();
    assert_eq!(updates.items.len(), 7, "every contact change emits contact.updated");
    assert!(store.update_contact(&"nope".into(), ContactInput::default()).await.unwrap_err().is_not_found());
}

/// A group chat is what its platform said it is, not what its id looks like: kept on the
/// identity; no bot turn in a group; a person whose id looks like a group's is a person.
pub async fn a_group_is_a_property_of_its_identity(store: Arc<dyn Store>) {
    let ch = channel(&*store, "groups").await;
    let mut in_group = inbound(&ch.id, "-100", "g-1", "привет");
    in_group.sender.is_group = true;
    in_group.bot_turn = true;
    let g = store.record_inbound(in_group).await.unwrap().message;
    let group = store.get_contact(&g.contact_id).await.unwrap();
    assert!(group.identities[0].is_group, "kept on the identity");
    let jobs = claim_all(&*store).await;
    assert!(!jobs.iter().any(|j| j.kind == JobKind::BotStep), "no bot turn in a group: {jobs:?}");

    let mut person = inbound(&ch.id, "-7", "p-1", "стоп");
    person.bot_turn = true;
    person.subscription = Some(okno_domain::channel::SubscriptionChange {
        subscribed: false,
        answer: "Вы отписались.".into(),
    });
    let p = store.record_inbound(person).await.unwrap().message;
    let person = store.get_contact(&p.contact_id).await.unwrap();
    assert!(!person.identities[0].is_group);
    assert!(person.identities[0].opted_out, "a person's opt-out applies, whatever their id");
    let jobs = claim_all(&*store).await;
    assert!(!jobs.iter().any(|j| j.kind == JobKind::BotStep), "an opt-out is answered, not the bot's: {jobs:?}");
}

pub async fn inbound_creates_contact_identity_and_conversation_once(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let hook = subscribe(&*store, &[EventType::MessageReceived]).await;
    let first = store.record_inbound(inbound(&ch.id, "u-42", "m-1", "hello")).await.unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.message.status, MessageStatus::Received);
    let again = store.record_inbound(inbound(&ch.id, "u-42", "m-1", "hello")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.id, first.message.id);
    let other_user_same_id = store.record_inbound(inbound(&ch.id, "u-43", "m-1", "hi")).await.unwrap();
    assert!(!other_user_same_id.duplicate, "dedup is per sender");
    store.record_inbound(inbound(&ch.id, "u-42", "m-2", "are you there?")).await.unwrap();

    let conv = store.get_conversation(&first.message.conversation_id).await.unwrap();
    assert_eq!(conv.status, ConversationStatus::Open);
    assert_eq!(conv.unread, 2);
    assert_eq!(conv.last_message.as_ref().unwrap().text.as_deref(), Some("are you there?"));
    assert_eq!(conv.last_inbound_channel_id.as_deref(), Some(ch.id.as_str()));
    let contact = store.get_contact(&first.message.contact_id).await.unwrap();
    assert_eq!(contact.name.as_deref(), Some("User u-42"));
    assert_eq!(contact.identities.len(), 1);
    assert_eq!(contact.identities[0].user_id, "u-42");
    let msgs = store.list_messages(&conv.id, PageRequest::new(None, None)).await.unwrap();
    assert_eq!(msgs.items.iter().map(|m| m.text.clone().unwrap()).collect::<Vec<_>>(), vec!["hello", "are you there?"]);
    let deliveries = store.list_deliveries(&hook.id, PageRequest::new(Some(100), None)).await.unwrap();
    assert_eq!(deliveries.items.len(), 3, "one message.received per new message, none for the duplicate");
    assert_eq!(deliveries.items[0].body["type"], "message.received");

    // Writing again from a new chat under a new name: the identity follows, its username stays.
    store.set_identity_blocked(&ch.id, "u-42", true).await.unwrap();
    let mut moved_chat = inbound(&ch.id, "u-42", "m-3", "new phone, same me");
    moved_chat.sender.chat_id = "chat-9".into();
    moved_chat.sender.display_name = Some("Anna K.".into());
    moved_chat.sender.username = Some("anna".into());
    store.record_inbound(moved_chat).await.unwrap();
    let mut nameless = inbound(&ch.id, "u-42", "m-4", "and again");
    (nameless.sender.chat_id, nameless.sender.display_name) = ("chat-9".into(), None);
    store.record_inbound(nameless).await.unwrap();
    let identity = &store.get_contact(&first.message.contact_id).await.unwrap().identities[0];
    assert_eq!(
        (identity.chat_id.as_str(), identity.display_name.as_deref(), identity.username.as_deref(), identity.blocked),
        ("chat-9", Some("Anna K."), Some("anna"), false)
    );
    assert_eq!(store.get_conversation(&conv.id).await.unwrap().unread, 4);

    // The same phone on another channel joins the same contact and the same thread.
    let ch2 = channel(&*store, "app").await;
    let mut with_phone = inbound(&ch2.id, "app-7", "x-1", "from the app");
    with_phone.sender.phone = Some("+79990001122".into());
    store
        .update_contact(&contact.id, ContactInput { phone: Some("+79990001122".into()), ..Default::default() })
        .await
        .unwrap();
    let moved = store.record_inbound(with_phone).await.unwrap();
    assert_eq!(moved.message.contact_id, contact.id);
    assert_eq!(moved.message.conversation_id, conv.id);
    assert_eq!(store.get_contact(&contact.id).await.unwrap().identities.len(), 2);

    let missing = store.record_inbound(inbound("no-such-channel", "u", "m", "t")).await.unwrap_err();
    assert!(missing.is_not_found());
}

pub async fn resolved_conversation_reopens_on_new_message(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let hook = subscribe(&*store, &[EventType::ConversationUpdated]).await;
    let m = store.record_inbound(inbound(&ch.id, "u-1", "m-1", "hi")).await.unwrap().message;
    let resolved = store
        .update_conversation(
            &m.conversation_id,
            ConversationPatch {
                status: Some(ConversationStatus::Resolved),
                assignee: Some(Some("anna".into())),
                labels: Some(vec!["vip".into(), "vip".into(), "b2b".into()]),
                mark_read: true,
                snooze_until: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(resolved.status, ConversationStatus::Resolved);
    assert_eq!(resolved.labels, vec!["b2b", "vip"]);
    assert_eq!(resolved.unread, 0);
    let same = store.update_conversation(&m.conversation_id, ConversationPatch::default()).await.unwrap();
    assert_eq!(same.assignee.as_deref(), Some("anna"));
    store.record_inbound(inbound(&ch.id, "u-1", "m-2", "one more thing")).await.unwrap();
    let reopened = store.get_conversation(&m.conversation_id).await.unwrap();
    assert_eq!(reopened.status, ConversationStatus::Open);
    let events = store.list_deliveries(&hook.id, PageRequest::new(None, None)).await.unwrap();
    assert_eq!(events.items.len(), 2, "one for the resolve, one for the reopen; none for the no-op patch");

    let filtered = store
        .list_conversations(
            ConversationFilter { label: Some("vip".into()), ..Default::default() },
            PageRequest::new(None, None),
        )
        .await
        .unwrap();
    assert_eq!(filtered.items.len(), 1);
    let unassigned = store
        .list_conversations(
            ConversationFilter { assignee: Some(None), ..Default::default() },
            PageRequest::new(None, None),
        )
        .await
        .unwrap();
    assert!(unassigned.items.is_empty());
    let by_channel = store
        .list_conversations(
            ConversationFilter { channel_id: Some(ch.id.clone()), ..Default::default() },
            PageRequest::new(None, None),
        )
        .await
        .unwrap();
    assert_eq!(by_channel.items.len(), 1);
    assert!(store.update_conversation(&"nope".into(), ConversationPatch::default()).await.unwrap_err().is_not_found());
}

pub async fn conversations_page_by_recent_activity(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    for n in 0..7 {
        store.record_inbound(inbound(&ch.id, &format!("u-{n}"), "m", "hi")).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page =
            store.list_conversations(ConversationFilter::default(), PageRequest::new(Some(3), cursor)).await.unwrap();
        seen.extend(page.items.iter().map(|c| (c.updated_at, c.id.clone())));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "most recent activity first");
    let bad = store
        .list_conversations(ConversationFilter::default(), PageRequest::new(None, Some("garbage".into())))
        .await
        .unwrap_err();
    assert_eq!(bad.code, "invalid_cursor");
}

pub async fn outbound_writes_message_and_job_once(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let m = store.record_inbound(inbound(&ch.id, "u-1", "m-1", "hi")).await.unwrap().message;
    let mut req = send_req(Recipient::Conversation(m.conversation_id.clone()), "hello back");
    req.idempotency_key = Some("k-1".into());
    req.buttons = vec![vec![Button { text: "Yes".into(), data: Some("yes".into()), url: None }]];
    let (out, dup) = store.enqueue_outbound(req.clone()).await.unwrap();
    assert!(!dup);
    assert_eq!(out.status, MessageStatus::Queued);
    assert_eq!(out.direction, Direction::Out);
    assert_eq!(out.channel_id, ch.id);
    assert_eq!(out.buttons[0][0].data.as_deref(), Some("yes"));
    let (again, dup) = store.enqueue_outbound(req).await.unwrap();
    assert!(dup);
    assert_eq!(again.id, out.id);
    let jobs = claim_all(&*store).await;
    assert_eq!(jobs.len(), 1, "the idempotent retry queued nothing");
    assert_eq!(jobs[0].kind, JobKind::Send);
    assert_eq!(jobs[0].ref_id, out.id);
    let target = store.delivery_target(&out.id).await.unwrap();
    assert_eq!(target.identity.chat_id, "u-1");
    assert_eq!(target.channel.id, ch.id);

    // By contact id and by external id.
    store
        .update_contact(&m.contact_id, ContactInput { external_id: Some("ext-9".into()), ..Default::default() })
        .await
        .unwrap();
    let (by_ext, _) = store.enqueue_outbound(send_req(Recipient::ExternalId("ext-9".into()), "x")).await.unwrap();
    assert_eq!(by_ext.conversation_id, m.conversation_id);
    let (by_contact, _) =
        store.enqueue_outbound(send_req(Recipient::Contact(m.contact_id.clone()), "y")).await.unwrap();
    assert_eq!(by_contact.conversation_id, m.conversation_id);

    let (lonely, _) =
        store.upsert_contact(ContactInput { name: Some("No identity".into()), ..Default::default() }).await.unwrap();
    let err = store.enqueue_outbound(send_req(Recipient::Contact(lonely.id), "z")).await.unwrap_err();
    assert_eq!(err.code, "no_identity");
    let err = store.enqueue_outbound(send_req(Recipient::ExternalId("nobody".into()), "z")).await.unwrap_err();
    assert_eq!(err.code, "contact_not_found");
    let err = store.enqueue_outbound(send_req(Recipient::Conversation("nope".into()), "z")).await.unwrap_err();
    assert!(err.is_not_found());
    let mut wrong_channel = send_req(Recipient::Contact(m.contact_id.clone()), "z");
    wrong_channel.channel_id = Some("other".into());
    assert_eq!(store.enqueue_outbound(wrong_channel).await.unwrap_err().code, "no_identity");
}

pub async fn jobs_keep_order_per_queue_and_leases_expire(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let a = store.record_inbound(inbound(&ch.id, "a", "1", "hi")).await.unwrap().message;
    let b = store.record_inbound(inbound(&ch.id, "b", "1", "hi")).await.unwrap().message;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            store
                .enqueue_outbound(send_req(Recipient::Conversation(a.conversation_id.clone()), &format!("a{n}")))
                .await
                .unwrap()
                .0
                .id,
        );
    }
    let b_msg =
        store.enqueue_outbound(send_req(Recipient::Conversation(b.conversation_id.clone()), "b0")).await.unwrap().0;

    let first = store.claim_jobs("w1", 10, 60_000).await.unwrap();
    let refs: Vec<_> = first.iter().map(|j| j.ref_id.clone()).collect();
    assert_eq!(refs, vec![ids[0].clone(), b_msg.id.clone()], "one job per conversation at a time, oldest first");
    assert!(store.claim_jobs("w2", 10, 60_000).await.unwrap().is_empty(), "leased jobs block their queue");
    assert!(!store.complete_job(first[0].seq, "someone-else").await.unwrap(), "only the lease owner ends a job");
    assert!(store.complete_job(first[0].seq, "w1").await.unwrap());
    let next = store.claim_jobs("w2", 10, 60_000).await.unwrap();
    assert_eq!(next.iter().map(|j| j.ref_id.clone()).collect::<Vec<_>>(), vec![ids[1].clone()]);

    // A retry scheduled in the future holds the queue (order is kept) and is not claimable.
    assert_eq!(store.extend_leases("w2", 60_000).await.unwrap(), 1);
    assert_eq!(store.extend_leases("w9", 60_000).await.unwrap(), 0);
    assert!(store.retry_job(next[0].seq, "w2", now_ms() + 300, "busy").await.unwrap());
    assert!(store.claim_jobs("w2", 10, 60_000).await.unwrap().is_empty());
    assert!(!store.retry_job(next[0].seq, "w2", now_ms() - 1, "busy").await.unwrap(), "a released job has no owner");
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let again = store.claim_jobs("w2", 10, 1).await.unwrap();
    assert_eq!(again[0].seq, next[0].seq);
    assert_eq!(again[0].attempts, 2);

    // An expired lease (a crashed worker) is taken over.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let taken = store.claim_jobs("w3", 10, 60_000).await.unwrap();
    assert_eq!(taken.iter().map(|j| j.seq).collect::<Vec<_>>(), vec![next[0].seq]);
    assert_eq!(taken[0].attempts, 3);

    // A graceful shutdown hands leases back without counting an attempt.
    assert_eq!(store.release_jobs("w3").await.unwrap(), 1);
    let back = store.claim_jobs("w4", 10, 60_000).await.unwrap();
    assert_eq!(back[0].attempts, 3);
    assert_eq!(store.queue_depth().await.unwrap(), 3, "b0's lease is still held by w1; two of a's remain");
}

pub async fn concurrent_claims_never_share_a_job(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    for n in 0..60 {
        let m = store.record_inbound(inbound(&ch.id, &format!("u{n}"), "1", "hi")).await.unwrap().message;
        store.enqueue_outbound(send_req(Recipient::Conversation(m.conversation_id), "x")).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let jobs = store.claim_jobs(&format!("w{w}"), 7, 60_000).await.unwrap();
                if jobs.is_empty() {
                    break;
                }
                got.extend(jobs.into_iter().map(|j| j.seq));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 60, "every job claimed");
    assert_eq!(unique.len(), 60, "no job claimed twice");
}

/// Writers queue messages into the same few conversations while a worker drains the outbox:
/// what one writer queued to a conversation is taken in the order it was queued, a
/// conversation never has two messages out at once, and every one is taken.
pub async fn queues_stay_ordered_and_moving_under_concurrent_writers(store: Arc<dyn Store>) {
    const WRITERS: usize = 4;
    const EACH: usize = 30;
    let ch = channel(&*store, "site").await;
    let mut conversations = Vec::new();
    for user in ["a", "b", "c"] {
        conversations
            .push(store.record_inbound(inbound(&ch.id, user, "1", "hi")).await.unwrap().message.conversation_id);
    }
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, conversations) = (store.clone(), conversations.clone());
            tokio::spawn(async move {
                let mut queued = Vec::new();
                for n in 0..EACH {
                    let to = Recipient::Conversation(conversations[n % conversations.len()].clone());
                    queued.push(store.enqueue_outbound(send_req(to, &format!("{w}-{n}"))).await.unwrap().0.id);
                }
                queued
            })
        })
        .collect();
    let mut taken: Vec<Job> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while taken.len() < WRITERS * EACH {
        assert!(std::time::Instant::now() < deadline, "only {} of {} jobs taken", taken.len(), WRITERS * EACH);
        let jobs = store.claim_jobs("w", 8, 60_000).await.unwrap();
        let mut keys = HashSet::new();
        for job in &jobs {
            assert!(keys.insert(job.queue_key.clone()), "two jobs of one conversation leased at once");
        }
        for job in jobs {
            assert!(store.complete_job(job.seq, "w").await.unwrap());
            taken.push(job);
        }
        tokio::task::yield_now().await;
    }
    let position: std::collections::HashMap<String, usize> =
        taken.iter().enumerate().map(|(n, j)| (j.ref_id.clone(), n)).collect();
    for w in writers {
        let queued = w.await.unwrap();
        for (n, id) in queued.iter().enumerate() {
            for later in queued.iter().skip(n + conversations.len()).step_by(conversations.len()) {
                assert!(
                    position[id.as_str()] < position[later.as_str()],
                    "a writer's messages to one conversation went out of order"
                );
            }
        }
    }
    assert_eq!(store.queue_depth().await.unwrap(), 0);
}

pub async fn delivery_outcomes_update_message_identity_and_emit(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let hook = subscribe(&*store, &[EventType::MessageStatus]).await;
    let m = store.record_inbound(inbound(&ch.id, "u-1", "m-1", "hi")).await.unwrap().message;
    let (ok, _) =
        store.enqueue_outbound(send_req(Recipient::Conversation(m.conversation_id.clone()), "one")).await.unwrap();
    let (bad, _) =
        store.enqueue_outbound(send_req(Recipient::Conversation(m.conversation_id.clone()), "two")).await.unwrap();
    store.mark_sent(&ok.id, Some("platform-1".into())).await.unwrap();
    store.mark_sent(&ok.id, Some("platform-2".into())).await.unwrap();
    let sent = store.get_message(&ok.id).await.unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    assert_eq!(sent.external_id.as_deref(), Some("platform-1"), "a repeated outcome changes nothing");
    store.mark_failed(&bad.id, "Forbidden: bot was blocked by the user", Some(IdentityFlag::Blocked)).await.unwrap();
    let failed = store.get_message(&bad.id).await.unwrap();
    assert_eq!(failed.status, MessageStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("Forbidden: bot was blocked by the user"));
    let contact = store.get_contact(&m.contact_id).await.unwrap();
    assert!(contact.identities[0].blocked);
    let events = store.list_deliveries(&hook.id, PageRequest::new(None, None)).await.unwrap();
    assert_eq!(events.items.len(), 2);
    let statuses: HashSet<_> =
        events.items.iter().map(|d| d.body["data"]["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(statuses, HashSet::from(["sent".to_string(), "failed".to_string()]));
    let err = store
        .enqueue_outbound(send_req(Recipient::Conversation(m.conversation_id.clone()), "three"))
        .await
        .unwrap_err();
    assert_eq!(err.code, "recipient_blocked");
}

/// A batch of sends recorded at once: each sent message once, with its platform id, one
/// status event each, a message that failed meanwhile left failed, every job ended, and the
/// unread check a send asked for queued with it.
pub async fn a_batch_of_sends_is_recorded_once_each(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let hook = subscribe(&*store, &[EventType::MessageStatus]).await;
    let mut out = Vec::new();
    for i in 0..3 {
        let m = store.record_inbound(inbound(&ch.id, &format!("u-{i}"), "m-1", "hi")).await.unwrap().message;
        let req = send_req(Recipient::Conversation(m.conversation_id.clone()), &format!("ответ {i}"));
        out.push(store.enqueue_outbound(req).await.unwrap().0);
    }
    store.mark_failed(&out[2].id, "Bad Request: chat not found", None).await.unwrap();
    let jobs = claim_all(&*store).await;
    let seq = |id: &str| jobs.iter().find(|j| j.ref_id == id).map(|j| j.seq).unwrap();
    let sent = |i: usize, external: Option<&str>| SentMessage {
        message_id: out[i].id.clone(),
        external_id: external.map(str::to_string),
        seq: seq(&out[i].id),
        // The second asks for an unread check, due at once.
        unread_check: (i == 1).then(|| okno_domain::time::now_ms() - 1),
    };
    let batch = vec![sent(0, Some("p-0")), sent(1, None), sent(2, Some("p-2")), sent(0, Some("p-again"))];
    assert_eq!(store.finish_sends(batch, "test").await.unwrap(), vec![true; 4]);
    let stored = |i: usize| {
        let store = store.clone();
        let id = out[i].id.clone();
        async move {
            let m = store.get_message(&id).await.unwrap();
            (m.status, m.external_id)
        }
    };
    assert_eq!(stored(0).await, (MessageStatus::Sent, Some("p-0".to_string())));
    assert_eq!(stored(1).await, (MessageStatus::Sent, None));
    assert_eq!(stored(2).await.0, MessageStatus::Failed, "a failed message stays failed");
    let events = store.list_deliveries(&hook.id, PageRequest::new(None, None)).await.unwrap();
    let mut seen: Vec<(String, String)> = events
        .items
        .iter()
        .map(|d| {
            (
                d.body["data"]["message_id"].as_str().unwrap().to_string(),
                d.body["data"]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        (out[0].id.to_string(), "sent".to_string()),
        (out[1].id.to_string(), "sent".to_string()),
        (out[2].id.to_string(), "failed".to_string()),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    let left = claim_all(&*store).await;
    assert!(left.iter().all(|j| j.kind != JobKind::Send), "every send job ended");
    let checks: Vec<&str> =
        left.iter().filter(|j| j.kind == JobKind::UnreadByEmail).map(|j| j.ref_id.as_str()).collect();
    assert_eq!(checks, vec![out[1].id.as_str()], "the unread check asked for, once, with the send");
}

/// PostgreSQL: a table that has grown well past its planner statistics gets them afresh, once.
pub async fn statistics_follow_a_growing_table(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    for i in 0..600 {
        store.record_inbound(inbound(&ch.id, &format!("u-{}", i % 7), &format!("m-{i}"), "hi")).await.unwrap();
    }
    if store.backend() == Backend::Sqlite {
        assert!(store.refresh_statistics().await.unwrap().is_empty());
        return;
    }
    // The server's activity counts reach its statistics views within a second or so.
    let mut tables = Vec::new();
    for _ in 0..50 {
        tables = store.refresh_statistics().await.unwrap();
        if tables.iter().any(|t| t == "messages") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(tables.iter().any(|t| t == "messages"), "{tables:?}");
    let again = store.refresh_statistics().await.unwrap();
    assert!(!again.iter().any(|t| t == "messages"), "counted already: {again:?}");
}

pub async fn merge_moves_identities_conversations_and_fields(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let ch2 = channel(&*store, "app").await;
    let wa = store.record_inbound(inbound(&ch.id, "wa-1", "1", "from whatsapp")).await.unwrap().message;
    let tg = store.record_inbound(inbound(&ch2.id, "tg-1", "1", "from the app")).await.unwrap().message;
    store
        .update_contact(
            &wa.contact_id,
            ContactInput {
                external_id: Some("1c-77".into()),
                groups: Some(vec!["a".into()]),
                attrs: Some(json!({"x": 1, "y": 1})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .update_contact(
            &tg.contact_id,
            ContactInput {
                email: Some("p@example.org".into()),
                groups: Some(vec!["b".into()]),
                attrs: Some(json!({"y": 2, "z": 2})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // A question the other contact was asked through a bot's feed.
    let relay = crate::Relay {
        id: "relay-1".into(),
        channel_id: ch.id.clone(),
        feed: "director".into(),
        question_id: wa.id.clone(),
        asker_contact_id: wa.contact_id.clone(),
        asker_channel_id: ch.id.clone(),
        recipient_contact_id: tg.contact_id.clone(),
        relay_message_id: tg.id.clone(),
        answered_at: None,
        created_at: 1,
    };
    store.add_relay(relay).await.unwrap();
    store.add_note(&tg.conversation_id, "operator:anna", "звонить после 18:00").await.unwrap();
    let merged = store.merge_contacts(&wa.contact_id, &tg.contact_id, None).await.unwrap();
    let notes = store.list_notes(&wa.conversation_id).await.unwrap();
    assert_eq!(notes.len(), 1, "the other conversation's notes join the kept one");
    let open = store.open_relays(&ch.id, "director", &wa.contact_id).await.unwrap();
    assert_eq!(open.len(), 1, "the kept contact has the other's unanswered question");
    assert!(store.open_relays(&ch.id, "director", &tg.contact_id).await.unwrap().is_empty());
    assert_eq!(merged.external_id.as_deref(), Some("1c-77"));
    assert_eq!(merged.email.as_deref(), Some("p@example.org"));
    assert_eq!(merged.groups, vec!["a", "b"]);
    assert_eq!(merged.attrs, json!({"x": 1, "y": 1, "z": 2}), "the kept contact's attributes win");
    assert_eq!(merged.identities.len(), 2);
    assert!(store.get_contact(&tg.contact_id).await.unwrap_err().is_not_found());
    assert!(store.get_conversation(&tg.conversation_id).await.unwrap_err().is_not_found());
    let thread = store.list_messages(&wa.conversation_id, PageRequest::new(None, None)).await.unwrap();
    assert_eq!(thread.items.len(), 2, "one thread holds both channels' history");
    assert!(thread.items.iter().all(|m| m.contact_id == wa.contact_id));
    let conv = store.get_conversation(&wa.conversation_id).await.unwrap();
    assert_eq!(conv.unread, 2);
    assert_eq!(
        conv.last_inbound_channel_id.as_deref(),
        Some(ch2.id.as_str()),
        "a reply goes where the person last wrote, which may be the other contact's channel"
    );
    // The moved identity now routes to the kept contact.
    let next = store.record_inbound(inbound(&ch2.id, "tg-1", "2", "again")).await.unwrap().message;
    assert_eq!(next.conversation_id, wa.conversation_id);
    assert_eq!(
        store.merge_contacts(&wa.contact_id, &wa.contact_id, None).await.unwrap_err().code,
        "merge_same_contact"
    );
    assert!(store.merge_contacts(&wa.contact_id, &"gone".into(), None).await.unwrap_err().is_not_found());
}

pub async fn attach_identity_moves_a_person_to_a_contact(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let m = store.record_inbound(inbound(&ch.id, "u-5", "1", "hi")).await.unwrap().message;
    let (employee, _) =
        store.upsert_contact(ContactInput { external_id: Some("emp-5".into()), ..Default::default() }).await.unwrap();
    let id = store.attach_identity(&employee.id, &ch.id, sender("u-5")).await.unwrap();
    assert_eq!(id.contact_id, employee.id);
    assert_eq!(store.get_contact(&employee.id).await.unwrap().identities.len(), 1);
    assert!(store.get_contact(&m.contact_id).await.unwrap().identities.is_empty());
    assert!(store.attach_identity(&"nobody".into(), &ch.id, sender("u-5")).await.unwrap_err().is_not_found());
}

/// Messages arriving at once from a person okno knows but has no conversation with (an
/// identity made through the API) are recorded one after the other: one conversation, each
/// message counted, the newest one its last message; its reopening told once.
pub async fn concurrent_messages_from_a_known_person_share_one_conversation(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let (person, _) =
        store.upsert_contact(ContactInput { external_id: Some("crm-7".into()), ..Default::default() }).await.unwrap();
    store.attach_identity(&person.id, &ch.id, sender("u-7")).await.unwrap();
    let burst = |from: usize| {
        (from..from + 8)
            .map(|i| {
                let store = store.clone();
                let msg = inbound(&ch.id, "u-7", &format!("m-{i}"), &format!("сообщение {i}"));
                tokio::spawn(async move { store.record_inbound(msg).await.unwrap().message })
            })
            .collect::<Vec<_>>()
    };
    let mut ids = Vec::new();
    for task in burst(0) {
        ids.push(task.await.unwrap());
    }
    let convs = store
        .list_conversations(
            ConversationFilter { contact_id: Some(person.id.clone()), ..Default::default() },
            PageRequest::new(None, None),
        )
        .await
        .unwrap();
    assert_eq!(convs.items.len(), 1, "one conversation for the burst");
    let conv = store.get_conversation(&convs.items[0].id).await.unwrap();
    assert!(ids.iter().all(|m| m.conversation_id == conv.id));
    assert_eq!(conv.unread, 8);
    let newest = ids.iter().map(|m| m.id.clone()).max().unwrap();
    assert_eq!(conv.last_message.as_ref().map(|m| m.id.clone()), Some(newest), "the newest is the last");

    let hook = subscribe(&*store, &[EventType::ConversationUpdated]).await;
    store
        .update_conversation(
            &conv.id,
            ConversationPatch { status: Some(ConversationStatus::Resolved), ..Default::default() },
        )
        .await
        .unwrap();
    let before = store.list_deliveries(&hook.id, PageRequest::new(Some(100), None)).await.unwrap().items.len();
    let unread = store.get_conversation(&conv.id).await.unwrap().unread;
    for task in burst(8) {
        task.await.unwrap();
    }
    let conv = store.get_conversation(&conv.id).await.unwrap();
    assert_eq!((conv.status, conv.unread), (ConversationStatus::Open, unread + 8));
    let told = store.list_deliveries(&hook.id, PageRequest::new(Some(100), None)).await.unwrap().items.len();
    assert_eq!(told - before, 1, "the reopening is told once");
}

pub async fn url_attachments_defer_the_inbound_event(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let hook = subscribe(&*store, &[EventType::MessageReceived]).await;
    let mut msg = inbound(&ch.id, "u-1", "m-1", "see file");
    msg.attachments = vec![
        InboundAttachment::Url {
            name: "../../a.pdf".into(),
            mime: "application/pdf".into(),
            url: "https://example.org/a.pdf".into(),
        },
        InboundAttachment::Failed {
            name: "big.mov".into(),
            mime: "video/quicktime".into(),
            size: 30_000_000,
            note: "too large".into(),
        },
    ];
    let m = store.record_inbound(msg).await.unwrap().message;
    assert_eq!(m.attachments.len(), 2);
    assert_eq!(m.attachments[0].state, "pending");
    assert_eq!(m.attachments[0].name, "a.pdf", "only a base name is kept");
    assert_eq!(m.attachments[0].source_url.as_deref(), Some("https://example.org/a.pdf"));
    assert_eq!(m.attachments[1].note.as_deref(), Some("too large"));
    let jobs = claim_all(&*store).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, JobKind::FetchAttachments);
    assert!(store.list_deliveries(&hook.id, PageRequest::new(None, None)).await.unwrap().items.is_empty());
    store
        .finish_attachments(
            &m.id,
            vec![FetchedAttachment::Stored {
                id: m.attachments[0].id.clone(),
                size: 3,
                sha256: "abc".into(),
                mime: None,
            }],
        )
        .await
        .unwrap();
    let after = store.get_message(&m.id).await.unwrap();
    assert_eq!(after.attachments[0].state, "ready");
    assert_eq!(after.attachments[0].size, 3);
    let events = store.list_deliveries(&hook.id, PageRequest::new(None, None)).await.unwrap();
    assert_eq!(events.items.len(), 1);
    assert_eq!(events.items[0].body["data"]["attachments"][0]["state"], "ready");

    let stored = store
        .insert_attachment(NewAttachment {
            message_id: None,
            name: "C:\\temp\\r.txt".into(),
            mime: "text/plain".into(),
            size: 5,
            sha256: "ff".into(),
        })
        .await
        .unwrap();
    assert_eq!(store.get_attachment(&stored.id).await.unwrap().sha256, "ff");
    let mut out = send_req(Recipient::Conversation(m.conversation_id.clone()), "here");
    out.attachment_ids = vec![stored.id.clone()];
    let (sent, _) = store.enqueue_outbound(out).await.unwrap();
    assert_eq!(sent.attachments.len(), 1);
    assert_eq!(sent.attachments[0].name, "r.txt");
    let mut missing = send_req(Recipient::Conversation(m.conversation_id.clone()), "here");
    missing.attachment_ids = vec!["nope".into()];
    assert!(store.enqueue_outbound(missing).await.unwrap_err().is_not_found());
}

pub async fn webhooks_and_their_delivery_log(store: Arc<dyn Store>) {
    let all = subscribe(&*store, &[EventType::MessageReceived, EventType::ButtonPressed]).await;
    let other = subscribe(&*store, &[EventType::TaskClaimed]).await;
    assert_eq!(store.list_webhooks().await.unwrap().len(), 2);
    assert_eq!(store.get_webhook(&all.id).await.unwrap().events, vec!["message.received", "button.pressed"]);
    store.emit_event(EventType::TaskClaimed, json!({"task_id": "t1"})).await.unwrap();
    let log = store.list_deliveries(&other.id, PageRequest::new(None, None)).await.unwrap();
    assert_eq!(log.items.len(), 1);
    let d = &log.items[0];
    assert_eq!(d.status, "pending");
    assert_eq!(d.body["data"]["task_id"], "t1");
    assert!(d.body["created_at"].as_str().unwrap().ends_with('Z'));
    let pending = store.pending_delivery(&d.id).await.unwrap();
    assert_eq!(pending.secret, "k");
    store
        .record_delivery_attempt(&d.id, DeliveryAttempt::Retrying { status_code: Some(500), error: "HTTP 500".into() })
        .await
        .unwrap();
    store.record_delivery_attempt(&d.id, DeliveryAttempt::Delivered { status_code: 200 }).await.unwrap();
    let d = store.pending_delivery(&d.id).await.unwrap().delivery;
    assert_eq!(d.status, "delivered");
    assert_eq!(d.attempts, 2);
    assert_eq!(d.last_status_code, Some(200));
    assert!(d.delivered_at.is_some());
    assert!(store.list_deliveries(&all.id, PageRequest::new(None, None)).await.unwrap().items.is_empty());
    let jobs = claim_all(&*store).await;
    assert_eq!(jobs.len(), 1);
    store.delete_webhook(&other.id).await.unwrap();
    assert!(store.get_webhook(&other.id).await.unwrap_err().is_not_found());
    assert_eq!(store.queue_depth().await.unwrap(), 0, "a removed subscription's pending deliveries go with it");
    assert!(store.list_deliveries(&other.id, PageRequest::new(None, None)).await.unwrap_err().is_not_found());
}

pub async fn webhooks_and_news_keep_their_creator(store: Arc<dyn Store>) {
    let hook = store
        .create_webhook(NewWebhook {
            url: "https://example.org/hook".into(),
            events: vec![EventType::MessageReceived],
            secret: "k".into(),
            created_by: Some("token:t1".into()),
        })
        .await
        .unwrap();
    assert_eq!(hook.created_by.as_deref(), Some("token:t1"));
    assert_eq!(store.get_webhook(&hook.id).await.unwrap().created_by.as_deref(), Some("token:t1"));
    assert_eq!(subscribe(&*store, &[EventType::MessageReceived]).await.created_by, None);
    let news = store
        .create_news(NewNews {
            title: "T".into(),
            text: "news".into(),
            groups: vec![],
            attachment_id: None,
            created_by: Some("token:t2".into()),
        })
        .await
        .unwrap();
    assert_eq!(store.get_news(&news.id).await.unwrap().created_by.as_deref(), Some("token:t2"));
    assert_eq!(store.list_news(10).await.unwrap()[0].created_by.as_deref(), Some("token:t2"));
    store.delete_news(&news.id).await.unwrap();
    assert!(store.get_news(&news.id).await.unwrap_err().is_not_found());
}

pub async fn tokens_operators_and_audit(store: Arc<dyn Store>) {
    let t = store.create_token("1c", Role::Integration, "hash-1").await.unwrap();
    assert_eq!(store.token_by_hash("hash-1").await.unwrap().unwrap().role, Role::Integration);
    assert!(store.token_by_hash("hash-2").await.unwrap().is_none());
    assert_eq!(store.list_tokens().await.unwrap().len(), 1);
    let dup = store.create_token("again", Role::Admin, "hash-1").await.unwrap_err();
    assert_eq!(dup.kind, ErrorKind::Conflict);
    store.revoke_token(&t.id).await.unwrap();
    assert!(store.token_by_hash("hash-1").await.unwrap().is_none());
    assert!(store.revoke_token(&t.id).await.unwrap_err().is_not_found());

    store.create_operator("anna", Role::Operator, "$argon2id$x").await.unwrap();
    assert_eq!(store.operator_by_login("anna").await.unwrap().unwrap().password_hash, "$argon2id$x");
    assert_eq!(store.create_operator("anna", Role::Admin, "y").await.unwrap_err().code, "login_taken");
    assert!(store.operator_by_login("boris").await.unwrap().is_none());
    store.create_operator("boris", Role::Restricted, "$argon2id$y").await.unwrap();
    let all = store.list_operators().await.unwrap();
    let logins: Vec<(&str, Role)> = all.iter().map(|o| (o.login.as_str(), o.role)).collect();
    assert_eq!(logins, [("anna", Role::Operator), ("boris", Role::Restricted)]);

    for n in 0..3 {
        store
            .audit(NewAudit {
                actor: "admin".into(),
                action: format!("act{n}"),
                target: "x".into(),
                detail: json!({"n": n}),
            })
            .await
            .unwrap();
    }
    let page = store.list_audit(PageRequest::new(Some(2), None)).await.unwrap();
    assert_eq!(page.items.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(), vec!["act2", "act1"]);
    let rest = store.list_audit(PageRequest::new(Some(2), page.next)).await.unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next.is_none());
}

pub async fn setup_links_make_exactly_one_first_administrator(store: Arc<dyn Store>) {
    let later = okno_domain::time::now_ms() + 3_600_000;
    assert!(!store.has_operators().await.unwrap());
    // Two processes started on the fresh database: two links; an expired one beside them.
    store.add_setup_token("link-a", later).await.unwrap();
    store.add_setup_token("link-b", later).await.unwrap();
    store.add_setup_token("link-old", okno_domain::time::now_ms() - 1).await.unwrap();
    assert!(store.setup_token_usable("link-a").await.unwrap());
    assert!(!store.setup_token_usable("link-old").await.unwrap(), "an expired link");
    assert!(!store.setup_token_usable("nobody").await.unwrap(), "an unknown link");
    let err = store.complete_setup("nobody", "mallory", "$argon2id$m").await.unwrap_err();
    assert_eq!(err.code, "setup_link_invalid");
    assert!(!store.has_operators().await.unwrap(), "a refused setup creates nobody");
    // A wrong guess takes nothing away from the real links.
    assert!(store.setup_token_usable("link-a").await.unwrap());

    // Both links followed at the same moment: one first administrator.
    let (a, b) = tokio::join!(
        store.complete_setup("link-a", "anna", "$argon2id$a"),
        store.complete_setup("link-b", "boris", "$argon2id$b")
    );
    let made: Vec<_> = [a, b].into_iter().filter_map(|r| r.ok()).collect();
    assert_eq!(made.len(), 1, "exactly one first administrator");
    assert_eq!(made[0].role, Role::Admin);
    let all = store.list_operators().await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(store.has_operators().await.unwrap());

    // Once someone exists, a new link is never usable and setup is over.
    store.add_setup_token("link-e", later).await.unwrap();
    assert!(!store.setup_token_usable("link-e").await.unwrap());
    assert_eq!(store.complete_setup("link-e", "carol", "$argon2id$c").await.unwrap_err().code, "setup_done");
    let audit = store.list_audit(PageRequest::new(Some(10), None)).await.unwrap();
    assert!(audit.items.iter().any(|a| a.action == "operator.setup" && a.actor == "setup"), "{:?}", audit.items);
}

pub async fn ping_and_backup(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    let dir = std::env::temp_dir().join(format!("okno-backup-{}", okno_domain::ids::new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("copy.db");
    match store.backend() {
        Backend::Sqlite => {
            channel(&*store, "kept").await;
            store.backup(&dest).await.unwrap();
            let copy = SqlStore::open(&format!("sqlite://{}", dest.display()), StoreOptions::default()).await.unwrap();
            assert_eq!(copy.list_channels().await.unwrap()[0].name, "kept");
            copy.close().await;
            assert_eq!(store.backup(&dest).await.unwrap_err().code, "backup_exists");
        }
        Backend::Postgres => {
            assert_eq!(store.backup(&dest).await.unwrap_err().code, "backup_unsupported");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

pub async fn one_process_holds_a_channel_lease_and_the_cursor_persists(store: Arc<dyn Store>) {
    let ch = channel(&*store, "bot").await;
    assert!(store.take_channel_lease(&ch.id, "p1", 60_000).await.unwrap());
    assert!(!store.take_channel_lease(&ch.id, "p2", 60_000).await.unwrap(), "held by p1");
    assert!(store.take_channel_lease(&ch.id, "p1", 60_000).await.unwrap(), "the owner renews");
    store.drop_channel_lease(&ch.id, "p1").await.unwrap();
    assert!(store.take_channel_lease(&ch.id, "p2", 1).await.unwrap(), "free after release");
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    assert!(store.take_channel_lease(&ch.id, "p3", 60_000).await.unwrap(), "an expired lease is taken over");
    assert_eq!(store.poll_cursor(&ch.id).await.unwrap(), None);
    store.set_poll_cursor(&ch.id, "811000042").await.unwrap();
    assert_eq!(store.poll_cursor(&ch.id).await.unwrap().as_deref(), Some("811000042"));
    // A platform's cursor need not be a number.
    store.set_poll_cursor(&ch.id, "ts:1733000000:abc").await.unwrap();
    assert_eq!(store.poll_cursor(&ch.id).await.unwrap().as_deref(), Some("ts:1733000000:abc"));
    assert!(!store.take_channel_lease(&ch.id, "p1", 60_000).await.unwrap(), "setting the cursor keeps the lease");
}

pub async fn link_codes_link_once_and_fold_in_the_contact_okno_made(store: Arc<dyn Store>) {
    let ch = channel(&*store, "bot").await;
    let (employee, _) = store
        .upsert_contact(ContactInput {
            external_id: Some("emp-7".into()),
            name: Some("Пётр".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // The person wrote before linking, so okno made a contact for them.
    let first = store.record_inbound(inbound(&ch.id, "tg-7", "1", "привет")).await.unwrap().message;
    let code = store.create_link_code(&employee.id, 60_000, None).await.unwrap();
    assert!(crate::is_link_code(&code.code), "{}", code.code);
    let outcome = store.redeem_link_code(&code.code.to_lowercase(), &ch.id, sender("tg-7")).await.unwrap();
    let LinkOutcome::Linked(linked) = outcome else { panic!("{outcome:?}") };
    assert_eq!(linked.id, employee.id);
    assert_eq!(linked.identities.len(), 1);
    assert!(store.get_contact(&first.contact_id).await.unwrap_err().is_not_found(), "the made-up contact was merged");
    let thread = store.list_messages(&first.conversation_id, PageRequest::new(None, None)).await.unwrap();
    assert!(thread.items.iter().all(|m| m.contact_id == employee.id), "history moved with it");
    assert_eq!(store.redeem_link_code(&code.code, &ch.id, sender("tg-8")).await.unwrap(), LinkOutcome::AlreadyUsed);
    assert_eq!(store.redeem_link_code("ZZZZ9999", &ch.id, sender("tg-8")).await.unwrap(), LinkOutcome::Unknown);
    let short = store.create_link_code(&employee.id, 1, None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    assert_eq!(store.redeem_link_code(&short.code, &ch.id, sender("tg-8")).await.unwrap(), LinkOutcome::Expired);
    // A brand-new person is linked straight away.
    let fresh = store.create_link_code(&employee.id, 60_000, None).await.unwrap();
    assert!(matches!(
        store.redeem_link_code(&fresh.code, &ch.id, sender("tg-9")).await.unwrap(),
        LinkOutcome::Linked(_)
    ));
    assert_eq!(store.get_contact(&employee.id).await.unwrap().identities.len(), 2);
    assert!(store.create_link_code(&"nobody".into(), 1000, None).await.unwrap_err().is_not_found());
    assert!(!crate::is_link_code("PASSWORD") && !crate::is_link_code("12345678") && !crate::is_link_code("AB12"));
}

pub async fn edits_blocks_moves_buttons_and_reply_resolution(store: Arc<dyn Store>) {
    let ch = channel(&*store, "bot").await;
    let hook = subscribe(&*store, &[EventType::MessageEdited]).await;
    let m = store.record_inbound(inbound(&ch.id, "7", "7:1", "typo")).await.unwrap().message;
    let edited = store.record_edit(&ch.id, "7", "7:1", Some("fixed".into())).await.unwrap().unwrap();
    assert_eq!(edited.id, m.id);
    assert_eq!(edited.text.as_deref(), Some("fixed"));
    assert!(edited.edited);
    assert!(store.record_edit(&ch.id, "7", "7:999", Some("x".into())).await.unwrap().is_none());
    assert_eq!(store.list_deliveries(&hook.id, PageRequest::new(None, None)).await.unwrap().items.len(), 1);

    store.set_identity_blocked(&ch.id, "7", true).await.unwrap();
    assert!(store.get_contact(&m.contact_id).await.unwrap().identities[0].blocked);
    store.set_identity_blocked(&ch.id, "7", false).await.unwrap();
    assert!(!store.get_contact(&m.contact_id).await.unwrap().identities[0].blocked);

    // Replies name the platform message; okno resolves it to its own id. Group authors are kept.
    let (out, _) =
        store.enqueue_outbound(send_req(Recipient::Conversation(m.conversation_id.clone()), "question")).await.unwrap();
    store.mark_sent(&out.id, Some("7:2".into())).await.unwrap();
    let mut reply = inbound(&ch.id, "7", "7:3", "answer");
    reply.reply_to_external = Some("7:2".into());
    let r = store.record_inbound(reply).await.unwrap().message;
    assert_eq!(r.reply_to.as_deref(), Some(out.id.as_str()));
    let mut group = inbound(&ch.id, "-100", "-100:5", "в группе");
    group.author = Some("Ann (@ann)".into());
    let g = store.record_inbound(group).await.unwrap().message;
    assert_eq!(store.get_message(&g.id).await.unwrap().author.as_deref(), Some("Ann (@ann)"));
    store.move_chat(&ch.id, "-100", "-100500").await.unwrap();
    let moved = store.get_contact(&g.contact_id).await.unwrap();
    assert_eq!((moved.identities[0].chat_id.as_str(), moved.identities[0].user_id.as_str()), ("-100500", "-100500"));

    let buttons = vec![vec![Button { text: "ok".into(), data: Some("ok".into()), url: None }]];
    let updated = store.set_message_buttons(&out.id, buttons.clone()).await.unwrap();
    assert_eq!(updated.buttons, buttons);
    assert!(store.set_message_buttons(&out.id, vec![]).await.unwrap().buttons.is_empty());

    let long = "x".repeat(300);
    let t1 = store.callback_token(&ch.id, &long).await.unwrap();
    assert_eq!(store.callback_token(&ch.id, &long).await.unwrap(), t1, "same data, same token");
    assert_eq!(store.callback_data(&ch.id, &t1).await.unwrap().as_deref(), Some(long.as_str()));
    assert!(store.callback_data(&ch.id, "nope").await.unwrap().is_none());

    let mut opts = send_req(Recipient::Conversation(m.conversation_id.clone()), "choose");
    opts.options = json!({"reply_keyboard": [["Да", "Нет"]]});
    let (o, _) = store.enqueue_outbound(opts).await.unwrap();
    let target = store.delivery_target(&o.id).await.unwrap();
    assert_eq!(target.options["reply_keyboard"][0][1], "Нет");
    let mut answer = send_req(Recipient::Conversation(m.conversation_id.clone()), "re");
    answer.reply_to = Some(r.id.clone());
    let (a, _) = store.enqueue_outbound(answer).await.unwrap();
    assert_eq!(store.delivery_target(&a.id).await.unwrap().reply_to_external.as_deref(), Some("7:3"));
}

pub async fn events_are_idempotent_notify_once_fall_back_and_collect_answers(store: Arc<dyn Store>) {
    let tg = channel(&*store, "app").await;
    let wa = channel(&*store, "whatsapp").await;
    let hook = subscribe(&*store, &[EventType::ButtonPressed]).await;
    // A manager reachable on two channels; the most recent is `wa`.
    store.record_inbound(inbound(&tg.id, "tg-1", "1", "hi")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let m = store.record_inbound(inbound(&wa.id, "wa-1", "1", "hi")).await.unwrap().message;
    let tg_contact = store
        .find_contacts(
            ContactFilter { q: Some("user tg-1".into()), ..Default::default() },
            PageRequest::new(None, None),
        )
        .await
        .unwrap();
    let manager = store.merge_contacts(&m.contact_id, &tg_contact.items[0].id, None).await.unwrap();

    // Ten concurrent posts of one key: one event, one job.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .accept_event(NewEvent {
                    event_type: "payment.received".into(),
                    key: "pay-1".into(),
                    data: json!({"amount": 5}),
                    send_at: None,
                })
                .await
                .unwrap()
        }));
    }
    let mut ids = HashSet::new();
    let mut firsts = 0;
    for t in tasks {
        let (ev, dup) = t.await.unwrap();
        ids.insert(ev.id);
        firsts += usize::from(!dup);
    }
    assert_eq!((ids.len(), firsts), (1, 1));
    let event_id = ids.into_iter().next().unwrap();
    let jobs: Vec<_> = claim_all(&*store).await.into_iter().filter(|j| j.kind == JobKind::ProcessEvent).collect();
    assert_eq!(jobs.len(), 1);

    let rule = store.put_rule("оплата", "payment.received", json!({"template": "x"})).await.unwrap();
    let again = store.put_rule("оплата", "payment.received", json!({"template": "y"})).await.unwrap();
    assert_eq!(
        (again.id.as_str(), again.spec["template"].as_str()),
        (rule.id.as_str(), Some("y")),
        "rules upsert by name"
    );
    assert_eq!(store.rules_for("payment.received").await.unwrap().len(), 1);

    let note = |contact: &str| Notification {
        event_id: event_id.clone(),
        rule_id: rule.id.clone(),
        contact_id: contact.to_string(),
        recipient: format!("contact {contact}"),
        text: "Оплата 5 ₽".into(),
        buttons: vec![vec![Button { text: "5".into(), data: Some("answer:5".into()), url: None }]],
        attachment_ids: vec![],
        options: json!({}),
    };
    let NotifyOutcome::Queued(sent) = store.notify(note(&manager.id)).await.unwrap() else { panic!("queued") };
    assert_eq!(sent.channel_id, wa.id, "the most recently used channel");
    assert_eq!(
        serde_json::to_value(&*sent).unwrap(),
        serde_json::to_value(store.get_message(&sent.id).await.unwrap()).unwrap(),
        "the queued message as returned is the message as stored"
    );
    assert!(matches!(store.notify(note(&manager.id)).await.unwrap(), NotifyOutcome::AlreadyNotified));
    let (lonely, _) = store
        .upsert_contact(ContactInput { name: Some("Без мессенджера".into()), ..Default::default() })
        .await
        .unwrap();
    assert!(
        matches!(store.notify(note(&lonely.id)).await.unwrap(), NotifyOutcome::Unreachable(r) if r == "no identity on any channel")
    );
    let noted = Unresolved {
        rule_id: rule.id.clone(),
        recipient: "{\"external_id\": \"x\"}".into(),
        reason: "no identity on any channel".into(),
        ..Default::default()
    };
    // The event's processing ends: its note, and its job.
    let done = Processed { unresolved: vec![noted], ..Default::default() };
    let (_, held) = store.complete_event(&event_id, "processed", done, jobs[0].seq, "test").await.unwrap();
    assert!(held);

    // Blocked on `wa`: the same text goes out on `tg`.
    store.mark_failed(&sent.id, "Forbidden: bot was blocked by the user", Some(IdentityFlag::Blocked)).await.unwrap();
    let ev = store.get_event(&event_id).await.unwrap();
    assert_eq!(ev.deliveries.len(), 1);
    assert_eq!(ev.deliveries[0].channel_id.as_deref(), Some(tg.id.as_str()));
    let fallback_id = MessageId::from(ev.deliveries[0].message_id.clone().unwrap());
    assert_ne!(fallback_id, sent.id);
    assert_eq!(ev.deliveries[0].status, "queued");
    assert_eq!(ev.unresolved.len(), 2, "the store records an unreachable person itself");
    assert_eq!(
        (ev.unresolved[0].recipient.as_str(), ev.unresolved[0].reason.as_str()),
        (format!("contact {}", lonely.id).as_str(), "no identity on any channel")
    );
    store.mark_failed(&fallback_id, "Forbidden: user is deactivated", Some(IdentityFlag::Blocked)).await.unwrap();
    let ev = store.get_event(&event_id).await.unwrap();
    assert_eq!(
        (ev.deliveries[0].status.as_str(), ev.deliveries[0].error.as_deref()),
        ("failed", Some("Forbidden: user is deactivated")),
        "no third channel"
    );

    // An answer button on a notification that went out.
    let (ev2, _) = store
        .accept_event(NewEvent {
            event_type: "order.completed".into(),
            key: "ord-1".into(),
            data: json!({"manager": "Анна"}),
            send_at: None,
        })
        .await
        .unwrap();
    store.set_identity_blocked(&tg.id, "tg-1", false).await.unwrap();
    let n2 = Notification { event_id: ev2.id.clone(), ..note(&manager.id) };
    let NotifyOutcome::Queued(asked) = store.notify(n2).await.unwrap() else { panic!("queued") };
    store.mark_sent(&asked.id, Some("tg-1:77".into())).await.unwrap();
    let mut press = inbound(&tg.id, "tg-1", "cb:1", "");
    press.text = None;
    press.button_data = Some("answer:5".into());
    press.reply_to_external = Some("tg-1:77".into());
    store.record_inbound(press).await.unwrap();
    let rows = store.answers("order.completed", 0, now_ms() + 1000).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].value.as_str(), rows[0].event_data["manager"].as_str()), ("5", Some("Анна")));
    let pressed = store.list_deliveries(&hook.id, PageRequest::new(None, None)).await.unwrap();
    assert_eq!(pressed.items[0].body["data"]["event_id"], ev2.id.as_str());
    assert_eq!(pressed.items[0].body["data"]["answer"], "5");
    store.finish_event(&ev2.id, "processed").await.unwrap();
    assert_eq!(store.get_event(&ev2.id).await.unwrap().status, "processed");
    assert!(store.get_event("nope").await.unwrap_err().is_not_found());
}

/// A rule's people queued in one call, more of them than one multi-row statement holds: each
/// person once, every outcome in the order given, each message stored as returned, made its
/// conversation's last and queued in that order.
pub async fn notify_all_queues_each_person_once_in_order(store: Arc<dyn Store>) {
    let tg = channel(&*store, "app").await;
    let mut people = Vec::new();
    for i in 0..230 {
        let m = store.record_inbound(inbound(&tg.id, &format!("u{i}"), &format!("m{i}"), "hi")).await.unwrap();
        people.push(m.message.contact_id);
    }
    // Reachable but without a conversation yet; reachable by nothing.
    let (quiet, _) =
        store.upsert_contact(ContactInput { name: Some("Тихий".into()), ..Default::default() }).await.unwrap();
    store.attach_identity(&quiet.id, &tg.id, sender("quiet")).await.unwrap();
    let (lonely, _) = store
        .upsert_contact(ContactInput { name: Some("Без мессенджера".into()), ..Default::default() })
        .await
        .unwrap();
    let (ev, _) = store
        .accept_event(NewEvent {
            event_type: "stock.low".into(),
            key: "stock-1".into(),
            data: json!({}),
            send_at: None,
        })
        .await
        .unwrap();
    let rule = store.put_rule("остатки", "stock.low", json!({"template": "x"})).await.unwrap();
    let note = |contact: &str, i: usize| Notification {
        event_id: ev.id.clone(),
        rule_id: rule.id.clone(),
        contact_id: contact.to_string(),
        recipient: format!("contact {contact}"),
        text: format!("Остаток {i}"),
        buttons: vec![],
        attachment_ids: vec![],
        options: json!({}),
    };
    let NotifyOutcome::Queued(earlier) = store.notify(note(&people[5], 5)).await.unwrap() else { panic!("queued") };

    let mut ns: Vec<_> = people.iter().enumerate().map(|(i, p)| note(p, i)).collect();
    ns.extend([note(&quiet.id, 230), note(&lonely.id, 231), note(&people[0], 232), note(&lonely.id, 233)]);
    let out = store.notify_all(ns).await.unwrap();
    assert_eq!(out.len(), 234);
    let mut queued = Vec::new();
    for (i, outcome) in out.iter().enumerate() {
        match (i, outcome) {
            (5 | 232, NotifyOutcome::AlreadyNotified) => {}
            (231 | 233, NotifyOutcome::Unreachable(r)) => assert_eq!(r, "no identity on any channel"),
            (0..=230, NotifyOutcome::Queued(m)) => {
                let contact = if i == 230 { &quiet.id } else { &people[i] };
                assert_eq!((&m.contact_id, m.text.clone()), (contact, Some(format!("Остаток {i}"))), "outcome {i}");
                queued.push(m.clone());
            }
            (i, o) => panic!("outcome {i}: {o:?}"),
        }
    }
    assert_eq!(queued.len(), 230);
    // The last is the person who had no conversation: one was opened for them.
    for m in [&queued[0], &queued[199], &queued[200], &queued[229]] {
        assert_eq!(
            serde_json::to_value(&**m).unwrap(),
            serde_json::to_value(store.get_message(&m.id).await.unwrap()).unwrap(),
            "the queued message as returned is the message as stored"
        );
        let conversation = store.get_conversation(&m.conversation_id).await.unwrap();
        assert_eq!(conversation.last_message.map(|l| l.id), Some(m.id.clone()));
    }
    let sends: Vec<String> = claim_all(&*store)
        .await
        .into_iter()
        .filter(|j| j.kind == JobKind::Send && j.ref_id != earlier.id)
        .map(|j| j.ref_id)
        .collect();
    assert_eq!(sends, queued.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), "one send each, in order");
    let record = store.get_event(&ev.id).await.unwrap();
    assert_eq!(record.deliveries.len(), 231, "the earlier one and the 230 just queued");
    let delivered: HashSet<_> = record.deliveries.iter().filter_map(|d| d.message_id.clone()).collect();
    assert!(queued.iter().all(|m| delivered.contains(m.id.as_str())) && delivered.contains(earlier.id.as_str()));
    assert_eq!(
        record.unresolved.iter().map(|u| (u.recipient.clone(), u.reason.clone())).collect::<Vec<_>>(),
        vec![(format!("contact {}", lonely.id), "no identity on any channel".to_string()); 2]
    );
}

pub async fn sends_and_events_end_their_jobs_with_their_outcome(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let hook = subscribe(&*store, &[EventType::MessageStatus]).await;
    let m = store.record_inbound(inbound(&ch.id, "u-1", "m-1", "hi")).await.unwrap().message;
    let conv = Recipient::Conversation(m.conversation_id.clone());
    let (ok, _) = store.enqueue_outbound(send_req(conv.clone(), "one")).await.unwrap();
    let (bad, _) = store.enqueue_outbound(send_req(conv, "two")).await.unwrap();
    let sends = |jobs: Vec<Job>| jobs.into_iter().filter(|j| j.kind == JobKind::Send).collect::<Vec<_>>();

    // Sent: recorded by whoever sent it, but the job ends only for its lease owner.
    let first = sends(store.claim_jobs("w1", 10, 60_000).await.unwrap());
    assert_eq!(first.iter().map(|j| j.ref_id.as_str()).collect::<Vec<_>>(), vec![ok.id.as_str()]);
    assert!(!store.finish_send(&ok.id, Some("p-1".into()), first[0].seq, "someone-else").await.unwrap());
    assert_eq!(store.get_message(&ok.id).await.unwrap().status, MessageStatus::Sent);
    assert!(sends(store.claim_jobs("w2", 10, 60_000).await.unwrap()).is_empty(), "the job is still w1's");
    assert!(store.finish_send(&ok.id, Some("p-2".into()), first[0].seq, "w1").await.unwrap());
    assert!(!store.complete_job(first[0].seq, "w1").await.unwrap(), "the job has ended");
    let sent = store.get_message(&ok.id).await.unwrap();
    assert_eq!(sent.external_id.as_deref(), Some("p-1"), "a repeated outcome changes nothing");

    // Failed: the same, and the identity is flagged.
    let second = sends(store.claim_jobs("w1", 10, 60_000).await.unwrap());
    assert_eq!(second.iter().map(|j| j.ref_id.as_str()).collect::<Vec<_>>(), vec![bad.id.as_str()]);
    let reason = "Forbidden: bot was blocked by the user";
    assert!(!store.fail_send(&bad.id, reason, None, second[0].seq, "someone-else").await.unwrap());
    assert!(store.fail_send(&bad.id, reason, Some(IdentityFlag::Blocked), second[0].seq, "w1").await.unwrap());
    assert!(!store.complete_job(second[0].seq, "w1").await.unwrap(), "the job has ended");
    let failed = store.get_message(&bad.id).await.unwrap();
    assert_eq!((failed.status, failed.error.as_deref()), (MessageStatus::Failed, Some(reason)));
    let deliveries = store.list_deliveries(&hook.id, PageRequest::new(None, None)).await.unwrap();
    let mut statuses: Vec<_> =
        deliveries.items.iter().map(|d| d.body["data"]["status"].as_str().unwrap().to_string()).collect();
    statuses.sort();
    assert_eq!(statuses, vec!["failed", "sent"], "one message.status per outcome");
    store.set_identity_blocked(&ch.id, "u-1", false).await.unwrap();

    // An event: its notifications, its status and the end of its job in one transaction.
    let (ev, _) = store
        .accept_event(NewEvent {
            event_type: "order.paid".into(),
            key: "o-1".into(),
            data: json!({"n": 1}),
            send_at: None,
        })
        .await
        .unwrap();
    assert_eq!((ev.status.as_str(), ev.data["n"].as_i64()), ("accepted", Some(1)));
    let row = store.get_event_row(&ev.id).await.unwrap();
    assert_eq!((row.key.as_str(), row.created_at), ("o-1", ev.created_at));
    let job = store.claim_jobs("w1", 10, 60_000).await.unwrap().into_iter().find(|j| j.ref_id == ev.id).unwrap();
    assert_eq!(job.kind, JobKind::ProcessEvent);
    let rule = store.put_rule("paid", "order.paid", json!({"template": "x"})).await.unwrap();
    let (lonely, _) =
        store.upsert_contact(ContactInput { name: Some("Нет связи".into()), ..Default::default() }).await.unwrap();
    let groups = ContactInput { groups: Some(vec!["b".into(), "a".into()]), ..Default::default() };
    store.update_contact(&m.contact_id, groups).await.unwrap();
    let both = store.get_contacts(&[lonely.id.clone(), "gone".into(), m.contact_id.clone()]).await.unwrap();
    assert_eq!(both.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec![lonely.id.as_str(), m.contact_id.as_str()]);
    assert_eq!(
        serde_json::to_value(&both[1]).unwrap(),
        serde_json::to_value(store.get_contact(&m.contact_id).await.unwrap()).unwrap(),
        "a contact read with others is the contact read alone"
    );
    let note = |contact: &str| Notification {
        event_id: ev.id.clone(),
        rule_id: rule.id.clone(),
        contact_id: contact.to_string(),
        recipient: format!("contact {contact}"),
        text: "Оплачено".into(),
        buttons: vec![],
        attachment_ids: vec![],
        options: json!({}),
    };
    let done = || Processed { notifications: vec![note(&m.contact_id), note(&lonely.id)], ..Default::default() };
    // A worker whose lease was taken over completes the event, but leaves the job to its owner.
    let (outcomes, held) = store.complete_event(&ev.id, "processed", done(), job.seq, "someone-else").await.unwrap();
    assert!(!held, "another owner does not end the job");
    assert!(matches!(&outcomes[0], NotifyOutcome::Queued(msg) if msg.conversation_id == m.conversation_id));
    assert!(matches!(&outcomes[1], NotifyOutcome::Unreachable(r) if r == "no identity on any channel"));
    // The owner's own completion finds the event complete: it writes nothing and ends the job.
    let (outcomes, held) = store.complete_event(&ev.id, "processed", done(), job.seq, "w1").await.unwrap();
    assert!(outcomes.is_empty() && held, "{outcomes:?}");
    assert!(!store.complete_job(job.seq, "w1").await.unwrap(), "the job has ended");
    let done = store.get_event(&ev.id).await.unwrap();
    assert_eq!(done.status, "processed");
    assert!(done.processed_at.is_some());
    assert_eq!(done.deliveries.len(), 1);
    assert_eq!(done.unresolved.len(), 1);
    assert_eq!(done.unresolved[0].recipient, format!("contact {}", lonely.id));
}

/// Delivery receipts move a sent message's status forward only: repeated and out-of-order
/// receipts change nothing, a receipt for an id okno never sent is ignored, each change emits
/// `message.status` once, and a failure after `sent` records the platform's reason.
pub async fn receipts_only_move_a_status_forward(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let hook = subscribe(&*store, &[EventType::MessageStatus]).await;
    let m = store.record_inbound(inbound(&ch.id, "u-1", "m-1", "hi")).await.unwrap().message;
    let mut out = Vec::new();
    for (n, text) in ["one", "two", "three"].iter().enumerate() {
        let (msg, _) =
            store.enqueue_outbound(send_req(Recipient::Conversation(m.conversation_id.clone()), text)).await.unwrap();
        store.mark_sent(&msg.id, Some(format!("wamid.{n}"))).await.unwrap();
        out.push(msg);
    }
    let r = |id: &str, status: MessageStatus| Receipt { external_id: id.into(), status, reason: None };
    let changed = store
        .record_receipts(
            &ch.id,
            vec![
                // Read before delivered, delivered again, then sent: read stays.
                r("wamid.0", MessageStatus::Read),
                r("wamid.0", MessageStatus::Delivered),
                r("wamid.0", MessageStatus::Sent),
                // Delivered twice.
                r("wamid.1", MessageStatus::Delivered),
                r("wamid.1", MessageStatus::Delivered),
                Receipt {
                    external_id: "wamid.2".into(),
                    status: MessageStatus::Failed,
                    reason: Some("131047: Re-engagement message".into()),
                },
                // Delivered after failing: failed stays.
                r("wamid.2", MessageStatus::Delivered),
                r("wamid.unknown", MessageStatus::Read),
            ],
        )
        .await
        .unwrap();
    assert_eq!(changed, vec![out[0].id.clone(), out[1].id.clone(), out[2].id.clone()]);
    let status = |n: usize| {
        let store = store.clone();
        let id = out[n].id.clone();
        async move { store.get_message(&id).await.unwrap() }
    };
    assert_eq!(status(0).await.status, MessageStatus::Read);
    assert_eq!(status(1).await.status, MessageStatus::Delivered);
    let failed = status(2).await;
    assert_eq!(failed.status, MessageStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("131047: Re-engagement message"));
    // The same receipts again: nothing moves.
    let again = store.record_receipts(&ch.id, vec![r("wamid.1", MessageStatus::Sent)]).await.unwrap();
    assert!(again.is_empty());
    // Receipts on another channel name other messages.
    let other = channel(&*store, "other").await;
    assert!(store.record_receipts(&other.id, vec![r("wamid.1", MessageStatus::Read)]).await.unwrap().is_empty());
    assert_eq!(status(1).await.status, MessageStatus::Delivered);
    let events = store.list_deliveries(&hook.id, PageRequest::new(None, None)).await.unwrap();
    let mut seen: Vec<String> =
        events.items.iter().map(|d| d.body["data"]["status"].as_str().unwrap().to_string()).collect();
    seen.sort();
    // Three `sent`, then one change each.
    assert_eq!(seen, vec!["delivered", "failed", "read", "sent", "sent", "sent"]);
}

/// What a conversation is about on its platform (an Avito ad) is kept with the inbound
/// message, handed to webhooks with `message.received`, and read back as the conversation's
/// context — the latest message that named one.
pub async fn an_inbound_context_is_kept_and_sent_to_webhooks(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let hook = subscribe(&*store, &[EventType::MessageReceived]).await;
    let ad = json!({"avito_item": {"id": 42, "title": "Велосипед", "url": "https://avito.ru/42", "price": "12 000 ₽"}});
    let first =
        InboundMessage { context: Some(ad.clone()), ..inbound(&ch.id, "u-1", "m-1", "Ещё продаётся?") };
    let m = store.record_inbound(first).await.unwrap().message;
    assert_eq!(store.platform_context(&m.conversation_id).await.unwrap(), Some(ad.clone()));
    // A later message without one leaves it; another ad replaces it.
    store.record_inbound(inbound(&ch.id, "u-1", "m-2", "Торг уместен?")).await.unwrap();
    assert_eq!(store.platform_context(&m.conversation_id).await.unwrap(), Some(ad.clone()));
    let other = json!({"avito_item": {"id": 43, "title": "Самокат"}});
    store
        .record_inbound(InboundMessage {
            context: Some(other.clone()), ..inbound(&ch.id, "u-1", "m-3", "А этот?")
        })
        .await
        .unwrap();
    assert_eq!(store.platform_context(&m.conversation_id).await.unwrap(), Some(other));
    let events = store.list_deliveries(&hook.id, PageRequest::new(None, None)).await.unwrap();
    let with_ad: Vec<_> = events
        .items
        .iter()
        .filter(|d| d.body["data"]["context"] == ad)
        .map(|d| d.body["data"]["text"].clone())
        .collect();
    assert_eq!(with_ad, vec![json!("Ещё продаётся?")]);
    assert_eq!(events.items.len(), 3);
}

/// A receipt that comes before okno has written the platform's id of its message (the
/// platform's webhook outran the send's answer) waits, and is applied when the send records
/// that id — `delivered` then, not `sent`; receipts no message ever claims stay out of the way.
/// A mail's sender is the contact with that address (in any case); a new address makes a
/// contact that keeps it; a known person's address fills an empty e-mail field.
pub async fn an_e_mail_sender_is_the_contact_with_that_address(store: Arc<dyn Store>) {
    let mail = channel(&*store, "mail").await;
    let known = store
        .upsert_contact(
            ContactInput {
                external_id: Some("crm-77".into()),
                name: Some("Анна".into()),
                email: Some("Anna.Petrova@Shop.test".into()),
                ..Default::default()
            }
            .normalize()
            .unwrap(),
        )
        .await
        .unwrap()
        .0;
    assert_eq!(known.email.as_deref(), Some("anna.petrova@shop.test"), "addresses are kept lowercased");
    let mut from_anna = inbound(&mail.id, "anna.petrova@shop.test", "<m1@shop.test>", "Где мой заказ?");
    from_anna.sender.email = Some("ANNA.PETROVA@shop.test".into());
    let got = store.record_inbound(from_anna).await.unwrap();
    assert_eq!(got.message.contact_id, known.id, "the same address is the same contact");

    let mut stranger = inbound(&mail.id, "new@shop.test", "<m2@shop.test>", "Здравствуйте");
    stranger.sender.email = Some("new@shop.test".into());
    let made = store.record_inbound(stranger).await.unwrap();
    assert_ne!(made.message.contact_id, known.id);
    let made = store.get_contact(&made.message.contact_id).await.unwrap();
    assert_eq!(made.email.as_deref(), Some("new@shop.test"), "a new contact keeps the address it wrote from");

    // A person okno knew without an address (a chat) gets it; one with an address keeps theirs.
    let chat = channel(&*store, "chat").await;
    let person = store.record_inbound(inbound(&chat.id, "tg-5", "1", "привет")).await.unwrap();
    assert_eq!(store.get_contact(&person.message.contact_id).await.unwrap().email, None);
    let mut same_person = inbound(&chat.id, "tg-5", "2", "мой адрес");
    same_person.sender.email = Some("tg5@shop.test".into());
    store.record_inbound(same_person).await.unwrap();
    let person = store.get_contact(&person.message.contact_id).await.unwrap();
    assert_eq!(person.email.as_deref(), Some("tg5@shop.test"));
    let found = store
        .find_contacts(ContactFilter { q: Some("tg5@shop".into()), ..Default::default() }, PageRequest::new(None, None))
        .await
        .unwrap();
    assert_eq!(found.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), vec![person.id.clone()], "searchable");
    let mut again = inbound(&chat.id, "tg-5", "3", "другой адрес");
    again.sender.email = Some("other@shop.test".into());
    store.record_inbound(again).await.unwrap();
    assert_eq!(store.get_contact(&person.id).await.unwrap().email.as_deref(), Some("tg5@shop.test"));
}

/// A bounce blocks the identity the bounced message went to — only that one — and the person
/// writing from it again unblocks it.
pub async fn a_bounce_blocks_the_address_it_went_to(store: Arc<dyn Store>) {
    let mail = channel(&*store, "mail").await;
    let m =
        store.record_inbound(inbound(&mail.id, "gone@shop.test", "<g1@shop.test>", "привет")).await.unwrap().message;
    let other = store.record_inbound(inbound(&mail.id, "here@shop.test", "<h1@shop.test>", "привет")).await.unwrap();
    let (out, _) =
        store.enqueue_outbound(send_req(Recipient::Conversation(m.conversation_id.clone()), "ответ")).await.unwrap();
    store.mark_sent(&out.id, Some("okno.x1@okno.test".into())).await.unwrap();
    store.block_recipient(&mail.id, "no-such-message@okno.test").await.unwrap();
    assert!(!store.get_contact(&m.contact_id).await.unwrap().identities[0].blocked, "an unknown id blocks nobody");
    store.block_recipient(&mail.id, "okno.x1@okno.test").await.unwrap();
    assert!(store.get_contact(&m.contact_id).await.unwrap().identities[0].blocked);
    assert!(!store.get_contact(&other.message.contact_id).await.unwrap().identities[0].blocked, "only theirs");
    store.record_inbound(inbound(&mail.id, "gone@shop.test", "<g2@shop.test>", "я снова здесь")).await.unwrap();
    assert!(!store.get_contact(&m.contact_id).await.unwrap().identities[0].blocked, "writing again unblocks");
}

/// A stranger answering the conversation a message's hint names (e-mail: okno's reply address
/// tag) writes into it, named as the author, and becomes nobody's identity; a known person's
/// hint changes nothing, nor does a hint naming no conversation.
pub async fn a_stranger_answering_a_conversation_s_tag_writes_into_it(store: Arc<dyn Store>) {
    let mail = channel(&*store, "mail").await;
    let anna = store.record_inbound(inbound(&mail.id, "anna@shop.test", "<a1@shop.test>", "Где заказ?")).await.unwrap();
    let conversation = anna.message.conversation_id.to_string();
    let hinted = |user: &str, id: &str, hint: &str| {
        let mut m = inbound(&mail.id, user, id, "Отвечаю за Анну");
        m.sender.display_name = Some("Бухгалтерия".into());
        m.conversation_hint = Some(hint.to_string());
        m
    };

    let got = store.record_inbound(hinted("buh@shop.test", "<b1@shop.test>", &conversation.to_uppercase())).await;
    let got = got.unwrap().message;
    assert_eq!(got.conversation_id.as_str(), conversation, "the hinted conversation, whatever the case of the tag");
    assert_eq!(got.contact_id, anna.message.contact_id);
    assert_eq!(got.author.as_deref(), Some("Бухгалтерия <buh@shop.test>"));
    assert_eq!(store.get_message(&got.id).await.unwrap().author, got.author, "kept");
    let contact = store.get_contact(&anna.message.contact_id).await.unwrap();
    assert_eq!(contact.identities.len(), 1, "the stranger is not made one of Anna's identities");
    let again = store.record_inbound(hinted("buh@shop.test", "<b1@shop.test>", &conversation)).await.unwrap();
    assert!(again.duplicate, "the same mail twice is stored once");

    // Without the hint the stranger is a new person; a known person's hint is not followed.
    let alone = store.record_inbound(inbound(&mail.id, "buh@shop.test", "<b2@shop.test>", "А это я")).await.unwrap();
    assert_ne!(alone.message.contact_id, anna.message.contact_id);
    assert_eq!(alone.message.author, None);
    let own = store.record_inbound(hinted("buh@shop.test", "<b3@shop.test>", &conversation)).await.unwrap();
    assert_eq!(own.message.conversation_id, alone.message.conversation_id, "a known sender stays in their own");
    // A stranger whose address a contact keeps is that contact, whatever the tag says.
    let mut boris = hinted("boris@shop.test", "<bo1@shop.test>", &conversation);
    boris.sender.email = Some("boris@shop.test".into());
    let known = store
        .upsert_contact(
            ContactInput { email: Some("boris@shop.test".into()), ..Default::default() }.normalize().unwrap(),
        )
        .await
        .unwrap()
        .0;
    let by_address = store.record_inbound(boris).await.unwrap().message;
    assert_eq!(by_address.contact_id, known.id, "the contact with that address");
    assert_eq!(by_address.author, None);
    let nowhere = store.record_inbound(hinted("new@shop.test", "<n1@shop.test>", "0".repeat(32).as_str())).await;
    let nowhere = nowhere.unwrap().message;
    assert_ne!(nowhere.contact_id, anna.message.contact_id, "a hint naming no conversation: a new person");
    assert_eq!(nowhere.author, None);
}

pub async fn a_receipt_before_its_send_is_recorded_is_applied_then(store: Arc<dyn Store>) {
    let ch = channel(&*store, "site").await;
    let hook = subscribe(&*store, &[EventType::MessageStatus]).await;
    let m = store.record_inbound(inbound(&ch.id, "u-1", "m-1", "hi")).await.unwrap().message;
    let (early, _) =
        store.enqueue_outbound(send_req(Recipient::Conversation(m.conversation_id.clone()), "early")).await.unwrap();
    let r = |id: &str, status: MessageStatus| Receipt { external_id: id.into(), status, reason: None };
    let none = store
        .record_receipts(
            &ch.id,
            vec![r("wamid.early", MessageStatus::Delivered), r("wamid.never", MessageStatus::Read)],
        )
        .await
        .unwrap();
    assert!(none.is_empty(), "no message has these ids yet");
    assert_eq!(store.get_message(&early.id).await.unwrap().status, MessageStatus::Queued);
    store.mark_sent(&early.id, Some("wamid.early".into())).await.unwrap();
    assert_eq!(store.get_message(&early.id).await.unwrap().status, MessageStatus::Delivered, "the waiting receipt");
    // Applied once: the same id written again changes nothing, and a later read still moves it.
    store.mark_sent(&early.id, Some("wamid.early".into())).await.unwrap();
    store.record_receipts(&ch.id, vec![r("wamid.early", MessageStatus::Read)]).await.unwrap();
    assert_eq!(store.get_message(&early.id).await.unwrap().status, MessageStatus::Read);
    let events = store.list_deliveries(&hook.id, PageRequest::new(None, None)).await.unwrap();
    let mut seen: Vec<String> =
        events.items.iter().map(|d| d.body["data"]["status"].as_str().unwrap().to_string()).collect();
    seen.sort();
    assert_eq!(seen, vec!["delivered", "read", "sent"]);
    // Another message's send is not held up by a receipt nobody claims.
    let (later, _) =
        store.enqueue_outbound(send_req(Recipient::Conversation(m.conversation_id.clone()), "later")).await.unwrap();
    store.mark_sent(&later.id, Some("wamid.later".into())).await.unwrap();
    assert_eq!(store.get_message(&later.id).await.unwrap().status, MessageStatus::Sent);
}
