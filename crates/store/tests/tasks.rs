//! Tasks in the store, on SQLite and on the local PostgreSQL: of many claims at once exactly
//! one wins and writes exactly one `task.claimed` delivery; later claims see who has it;
//! a contact group limits who may take; release opens the task again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use okno_domain::ids::{ChannelId, ContactId};
use okno_domain::model::{ChannelKind, ContactInput, EventType};
use okno_store::testing::TestDb;
use okno_store::{
    ClaimOutcome, Claimant, InboundMessage, InboundSender, NewChannel, NewTask, NewWebhook, PageRequest, Store,
    TaskFilter,
};
use serde_json::json;

async fn channel(store: &dyn Store) -> ChannelId {
    store
        .create_channel(NewChannel {
            kind: ChannelKind::Telegram,
            name: "bot".into(),
            config: json!({"token": "1:x"}),
            info: json!({"username": "hub_bot"}),
        })
        .await
        .unwrap()
        .id
}

async fn task(store: &dyn Store, channel_id: &str, group: Option<&str>) -> String {
    let id = okno_domain::ids::new_id();
    store
        .create_task(
            NewTask {
                id: id.clone(),
                channel_id: channel_id.into(),
                chat_id: "-100".into(),
                message_id: Some("7".into()),
                title: "Доставка".into(),
                text: "Забрать со склада".into(),
                private_text: Some("+79990001122".into()),
                data: json!({"deal": 42}),
                group: group.map(str::to_string),
                reoffer_after: None,
                reoffer_times: 0,
            },
            None,
        )
        .await
        .unwrap();
    id
}

fn who(n: usize) -> Claimant {
    Claimant {
        user_id: format!("{}", 1000 + n), name: format!("Исполнитель {n}"), username: Some(format!("ex{n}"))
    }
}

/// A person who wrote to the bot privately (so okno knows them as a contact).
async fn known_person(store: &dyn Store, channel_id: &str, n: usize) -> ContactId {
    let user = who(n).user_id;
    let inbound = store
        .record_inbound(InboundMessage {
            channel_id: channel_id.into(),
            sender: InboundSender { user_id: user.clone(), chat_id: user.clone(), ..Default::default() },
            external_id: format!("{user}:1"),
            text: Some("/start".into()),
            attachments: Vec::new(),
            button_data: None,
            reply_to: None,
            reply_to_external: None,
            author: None,
            member: None,
            bot_turn: false,
            subscription: None,
            survey: Default::default(),
            context: None,
            conversation_hint: None,
        })
        .await
        .unwrap();
    inbound.message.contact_id
}

async fn one_of_many_claims_wins(store: Arc<dyn Store>) {
    let ch = channel(&*store).await;
    let hook = store
        .create_webhook(NewWebhook {
            url: "https://crm.example.org/okno".into(),
            events: vec![EventType::TaskClaimed],
            secret: "k".into(),
            created_by: None,
        })
        .await
        .unwrap();
    let contact = known_person(&*store, &ch, 3).await;
    for round in 0..10 {
        let id = task(&*store, &ch, None).await;
        let claims = (0..20).map(|n| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.claim_task(&id, who(n)).await.unwrap() })
        });
        let outcomes: Vec<ClaimOutcome> =
            futures::future::join_all(claims).await.into_iter().map(Result::unwrap).collect();
        let winners: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                ClaimOutcome::Won(t) => Some(t.claimed_by.clone().unwrap()),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        let winner = &winners[0];
        for o in &outcomes {
            match o {
                ClaimOutcome::Won(_) => {}
                ClaimOutcome::Taken(t) => assert_eq!(t.claimed_by.as_ref(), Some(winner), "losers see the winner"),
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        let stored = store.get_task(&id).await.unwrap();
        assert_eq!(stored.status, "claimed");
        assert_eq!(stored.claimed_by.as_ref(), Some(winner));
        assert_eq!(stored.version, 1, "one change of owner");
        if winner.user_id == who(3).user_id {
            assert_eq!(winner.contact_id.as_deref(), Some(contact.as_str()), "the linked contact is named");
        } else {
            assert_eq!(winner.contact_id, None);
        }
        // A second claim after the fact changes nothing.
        match store.claim_task(&id, who(99)).await.unwrap() {
            ClaimOutcome::Taken(t) => assert_eq!(t.claimed_by.as_ref(), Some(winner)),
            other => panic!("{other:?}"),
        }
        let winner_n: usize = winner.user_id.parse::<usize>().unwrap() - 1000;
        assert!(matches!(store.claim_task(&id, who(winner_n)).await.unwrap(), ClaimOutcome::AlreadyYours(_)));
    }
    let log = store.list_deliveries(&hook.id, PageRequest::new(Some(100), None)).await.unwrap();
    assert_eq!(log.items.len(), 10, "exactly one task.claimed per task");
    for d in &log.items {
        assert_eq!(d.event_type, "task.claimed");
        let data = &d.body["data"];
        assert_eq!(data["task"]["status"], "claimed");
        assert_eq!(data["task"]["data"], json!({"deal": 42}));
        assert_eq!(data["executor"], data["task"]["claimed_by"]);
        assert!(data["executor"]["name"].as_str().unwrap().starts_with("Исполнитель"));
        if data["executor"]["contact_id"].is_string() {
            assert_eq!(data["contact"]["id"], data["executor"]["contact_id"]);
        } else {
            assert!(data["contact"].is_null());
        }
    }
    assert_eq!(store.claim_jobs("t", 100, 60_000).await.unwrap().len(), 10, "each delivery has its job");
}

async fn groups_limit_who_may_take_and_release_reopens(store: Arc<dyn Store>) {
    let ch = channel(&*store).await;
    let member = known_person(&*store, &ch, 1).await;
    store
        .update_contact(&member, ContactInput { groups: Some(vec!["couriers".into()]), ..Default::default() })
        .await
        .unwrap();
    known_person(&*store, &ch, 2).await;
    let id = task(&*store, &ch, Some("couriers")).await;

    assert!(!store.task_access(&id, &who(2).user_id).await.unwrap().allowed, "a contact outside the group");
    assert!(!store.task_access(&id, &who(5).user_id).await.unwrap().allowed, "a stranger okno has no contact for");
    assert!(store.task_access(&id, &who(1).user_id).await.unwrap().allowed);
    assert!(matches!(store.claim_task(&id, who(2)).await.unwrap(), ClaimOutcome::NotAllowed(_)));
    assert!(matches!(store.claim_task(&id, who(5)).await.unwrap(), ClaimOutcome::NotAllowed(_)));
    assert!(store.get_task(&id).await.unwrap().is_open());
    let ClaimOutcome::Won(t) = store.claim_task(&id, who(1)).await.unwrap() else { panic!("the member takes it") };
    assert_eq!(t.claimed_by.unwrap().contact_id.as_deref(), Some(member.as_str()));

    // Only the executor gives it back; then it is open for the next one.
    let e = store.release_task(&id, Some(&who(2).user_id)).await.unwrap_err();
    assert_eq!(e.code, "not_the_executor");
    let open = store.release_task(&id, Some(&who(1).user_id)).await.unwrap();
    assert!(open.is_open() && open.claimed_by.is_none() && open.claimed_at.is_none());
    assert_eq!(open.version, 2);
    assert_eq!(store.release_task(&id, None).await.unwrap_err().code, "task_not_claimed");
    assert!(matches!(store.claim_task(&id, who(1)).await.unwrap(), ClaimOutcome::Won(_)));
    let again = store.release_task(&id, None).await.unwrap();
    assert!(again.is_open(), "the API releases for the executor");

    // What the group message shows only moves forward.
    store.mark_task_shown(&id, 3).await.unwrap();
    store.mark_task_shown(&id, 1).await.unwrap();
    assert_eq!(store.get_task(&id).await.unwrap().shown_version, 3);

    assert!(store.get_task("nope").await.unwrap_err().is_not_found());
    assert!(store.claim_task("nope", who(1)).await.unwrap_err().is_not_found());
}

async fn reoffers_follow_the_task_and_a_release_is_announced(store: Arc<dyn Store>) {
    let ch = channel(&*store).await;
    let hook = store
        .create_webhook(NewWebhook {
            url: "https://example.org/h".into(),
            events: vec![EventType::TaskReleased],
            secret: "k".into(),
            created_by: None,
        })
        .await
        .unwrap();
    let id = okno_domain::ids::new_id();
    let created = store
        .create_task(
            NewTask {
                id: id.clone(),
                channel_id: ch.to_string(),
                chat_id: "-100".into(),
                message_id: Some("7".into()),
                title: "Перевод".into(),
                text: "5 страниц".into(),
                private_text: None,
                data: json!({}),
                group: None,
                reoffer_after: Some(1),
                reoffer_times: 2,
            },
            None,
        )
        .await
        .unwrap();
    let reoffer_jobs = |store: Arc<dyn Store>| async move {
        let jobs = store.claim_jobs("t", 100, 60_000).await.unwrap();
        let refs: Vec<String> =
            jobs.iter().filter(|j| j.kind == okno_store::JobKind::TaskReoffer).map(|j| j.ref_id.clone()).collect();
        for j in jobs {
            store.complete_job(j.seq, "t").await.unwrap();
        }
        refs
    };
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let first = reoffer_jobs(store.clone()).await;
    assert_eq!(first, vec![okno_store::reoffer_ref(&created)]);
    // Re-posted once; a job that saw the task before is stale and records nothing.
    let t = store.record_reoffer(&first[0], "8").await.unwrap().unwrap();
    assert_eq!((t.reoffers, t.message_id.as_deref()), (1, Some("8")));
    assert!(store.record_reoffer(&first[0], "9").await.unwrap().is_none());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = reoffer_jobs(store.clone()).await;
    assert_eq!(second.len(), 1);
    // Claimed before the second re-post: that job records nothing either.
    store.claim_task(&id, who(1)).await.unwrap();
    assert!(store.record_reoffer(&second[0], "10").await.unwrap().is_none());
    assert_eq!(store.get_task(&id).await.unwrap().message_id.as_deref(), Some("8"));
    // Released: announced in the same transaction, and offered afresh.
    let open = store.release_task(&id, Some(&who(1).user_id)).await.unwrap();
    assert_eq!(open.reoffers, 0);
    let d = store.list_deliveries(&hook.id, PageRequest::new(Some(10), None)).await.unwrap();
    assert_eq!(d.items.len(), 1);
    assert_eq!(d.items[0].body["data"]["executor"]["user_id"], who(1).user_id.as_str());
    assert_eq!(d.items[0].body["data"]["by"], "executor");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(reoffer_jobs(store.clone()).await, vec![okno_store::reoffer_ref(&open)]);
}

async fn tasks_list_newest_first_by_status(store: Arc<dyn Store>) {
    let ch = channel(&*store).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(task(&*store, &ch, None).await);
    }
    store.claim_task(&ids[1], who(1)).await.unwrap();
    let page = store.list_tasks(TaskFilter::default(), PageRequest::new(Some(3), None)).await.unwrap();
    let got: Vec<_> = page.items.iter().map(|t| t.id.clone()).collect();
    assert_eq!(got, vec![ids[4].clone(), ids[3].clone(), ids[2].clone()]);
    let rest = store.list_tasks(TaskFilter::default(), PageRequest::new(Some(3), page.next)).await.unwrap();
    assert_eq!(rest.items.iter().map(|t| t.id.clone()).collect::<Vec<_>>(), vec![ids[1].clone(), ids[0].clone()]);
    assert!(rest.next.is_none());
    let claimed = store
        .list_tasks(
            TaskFilter { status: Some("claimed".into()), channel_id: Some(ch.to_string()) },
            PageRequest::new(None, None),
        )
        .await
        .unwrap();
    assert_eq!(claimed.items.len(), 1);
    assert_eq!(claimed.items[0].id, ids[1]);
    let unknown = store
        .create_task(
            NewTask {
                id: "x".into(),
                channel_id: "no-such-channel".into(),
                chat_id: "-1".into(),
                message_id: None,
                title: "t".into(),
                text: "t".into(),
                private_text: None,
                data: json!({}),
                group: None,
                reoffer_after: None,
                reoffer_times: 0,
            },
            None,
        )
        .await;
    assert!(unknown.unwrap_err().is_not_found());
}

/// The group chats the task form offers: groups people wrote in (by title) and chats tasks
/// went to, each once; private chats and other kinds of channel are not offered.
async fn group_chats_are_the_groups_seen_and_the_chats_tasked(store: Arc<dyn Store>) {
    let ch = channel(&*store).await;
    let site = store
        .create_channel(NewChannel {
            kind: ChannelKind::Webhook,
            name: "site".into(),
            config: json!({"outbound_url": "https://example.org/in", "secret": "s"}),
            info: json!({}),
        })
        .await
        .unwrap()
        .id;
    // The webhook platform reports people only; Telegram's group ids start with '-'.
    let written = |channel: &str, chat: &str, title: &str| InboundMessage {
        channel_id: channel.into(),
        sender: InboundSender {
            user_id: chat.into(),
            chat_id: chat.into(),
            display_name: Some(title.into()),
            is_group: channel == ch && chat.starts_with('-'),
            ..Default::default()
        },
        external_id: format!("{chat}:1"),
        text: Some("привет".into()),
        attachments: vec![],
        button_data: None,
        reply_to: None,
        reply_to_external: None,
        author: None,
        member: None,
        bot_turn: false,
        subscription: None,
        survey: Default::default(),
        context: None,
        conversation_hint: None,
    };
    store.record_inbound(written(&ch, "-1001", "Склад")).await.unwrap();
    store.record_inbound(written(&ch, "-1002", "Курьеры")).await.unwrap();
    store.record_inbound(written(&ch, "7001", "Анна")).await.unwrap();
    store.record_inbound(written(&site, "-5", "не Telegram")).await.unwrap();
    // A task in a group seen and one in a group nobody wrote in yet (`-100`).
    task(&*store, &ch, None).await;
    store
        .create_task(
            NewTask {
                id: okno_domain::ids::new_id(),
                channel_id: ch.to_string(),
                chat_id: "-1001".into(),
                message_id: Some("8".into()),
                title: "t".into(),
                text: "t".into(),
                private_text: None,
                data: json!({}),
                group: None,
                reoffer_after: None,
                reoffer_times: 0,
            },
            None,
        )
        .await
        .unwrap();
    let chats = store.group_chats().await.unwrap();
    let got: Vec<(&str, &str, Option<&str>)> =
        chats.iter().map(|g| (g.channel_id.as_str(), g.chat_id.as_str(), g.title.as_deref())).collect();
    assert_eq!(
        got,
        vec![
            (ch.as_str(), "-1002", Some("Курьеры")),
            (ch.as_str(), "-1001", Some("Склад")),
            (ch.as_str(), "-100", None)
        ]
    );
    // A task's page looks up its one chat's title.
    let pair = |chat: &str| (ch.to_string(), chat.to_string());
    let titles = store.group_titles(&[pair("-1001"), pair("-100"), pair("-1001"), pair("7001")]).await.unwrap();
    assert_eq!(titles.get(&pair("-1001")).map(String::as_str), Some("Склад"));
    assert!(!titles.contains_key(&pair("-100")), "a chat nobody wrote in has no title");
    assert_eq!(titles.len(), 2, "a private chat's party is found by its key too: {titles:?}");
    assert!(store.group_titles(&[]).await.unwrap().is_empty());
}

okno_store::both_backends!(
    one_of_many_claims_wins,
    groups_limit_who_may_take_and_release_reopens,
    tasks_list_newest_first_by_status,
    reoffers_follow_the_task_and_a_release_is_announced,
    group_chats_are_the_groups_seen_and_the_chats_tasked,
);

/// Two stores (two processes' worth of connections) on one PostgreSQL claim at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_postgres_agree_on_one_winner() {
    let Some(db) = TestDb::postgres().await else { return };
    let a = db.open().await;
    let b = TestDb::borrowed(&db.url).open().await;
    let ch = channel(&*a).await;
    for round in 0..20 {
        let id = task(&*a, &ch, None).await;
        let claims = (0..20).map(|n| {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            let id = id.clone();
            tokio::spawn(async move { store.claim_task(&id, who(n)).await.unwrap() })
        });
        let won = futures::future::join_all(claims)
            .await
            .into_iter()
            .filter(|o| matches!(o.as_ref().unwrap(), ClaimOutcome::Won(_)))
            .count();
        assert_eq!(won, 1, "round {round}");
    }
}
