//! Surveys in the store, on SQLite and on the local PostgreSQL: a run starts once per person
//! and key, and a person answers one survey at a time; a press or a text is an answer once
//! (a double press changes nothing) and writes the next question and `survey.answered`; the
//! deadline closes a run and later answers are refused politely; a date scan chain has one
//! live link.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use okno_domain::ids::{ChannelId, ContactId};
use okno_domain::model::{ContactInput, EventType};
use okno_domain::surveys::SurveySpec;
use okno_store::{
    InboundMessage, InboundSender, InputOutcome, JobKind, NewRun, NewWebhook, PageRequest, StartOutcome, Store,
    SurveyInput, SurveyTurn,
};
use serde_json::json;

async fn channel(store: &dyn Store) -> ChannelId {
    okno_store::testing::webhook_channel(store, "site").await
}

/// A message as the engine hands it over: a survey's button press or a typed text that may
/// answer a survey (the engine reads commands, link codes and opt-outs as none).
fn inbound(channel: &str, user: &str, msg_id: &str, text: Option<&str>, button: Option<String>) -> InboundMessage {
    let survey = match &button {
        Some(data) if data.starts_with(okno_domain::surveys::BUTTON_PREFIX) => SurveyTurn::Press,
        Some(_) => SurveyTurn::No,
        None => SurveyTurn::IfRunning,
    };
    InboundMessage {
        channel_id: channel.into(),
        sender: InboundSender { user_id: user.into(), chat_id: user.into(), ..Default::default() },
        external_id: msg_id.into(),
        text: text.map(str::to_string),
        attachments: Vec::new(),
        button_data: button,
        reply_to: None,
        reply_to_external: None,
        author: None,
        member: None,
        bot_turn: true,
        subscription: None,
        survey,
        context: None,
        conversation_hint: None,
    }
}

/// A person who wrote in once; returns the contact id.
async fn person(store: &dyn Store, ch: &str, user: &str) -> ContactId {
    store
        .record_inbound(inbound(ch, user, &format!("{user}-hello"), Some("hello"), None))
        .await
        .unwrap()
        .message
        .contact_id
}

fn spec(name: &str, deadline: &str) -> SurveySpec {
    SurveySpec::parse(&json!({
        "name": name,
        "intro": "Небольшой опрос",
        "questions": [
            {"id": "mood", "text": "Как дела?", "kind": "choice", "options": [{"text": "Хорошо", "value": 5}, {"text": "Плохо", "value": 1}]},
            {"id": "why", "text": "Почему?", "kind": "text"}
        ],
        "deadline": deadline,
        "reminder": "1s"
    }))
    .unwrap()
}

/// Claims every due job and ends it (round after round: a conversation's jobs come one at a
/// time); returns their kinds.
async fn drain(store: &dyn Store) -> Vec<JobKind> {
    let mut kinds = Vec::new();
    loop {
        let jobs = store.claim_jobs("t", 1000, 60_000).await.unwrap();
        if jobs.is_empty() {
            return kinds;
        }
        for j in jobs {
            store.complete_job(j.seq, "t").await.unwrap();
            kinds.push(j.kind);
        }
    }
}

fn run_id(o: &StartOutcome) -> String {
    match o {
        StartOutcome::Started { run_id, .. }
        | StartOutcome::Queued { run_id, .. }
        | StartOutcome::Already { run_id, .. }
        | StartOutcome::Busy { run_id, .. }
        | StartOutcome::Unreachable { run_id, .. } => run_id.clone(),
        StartOutcome::UnknownContact { .. } => panic!("no run: {o:?}"),
    }
}

async fn starts_once_per_key_and_one_survey_at_a_time(store: Arc<dyn Store>) {
    let ch = channel(&*store).await;
    let anna = person(&*store, &ch, "anna").await;
    let hr = store.create_survey(spec("HR", "1d")).await.unwrap();
    let dup = store.create_survey(spec("HR", "1d")).await.unwrap_err();
    assert_eq!(dup.code, "survey_exists");
    drain(&*store).await;
    let depth = store.queue_depth().await.unwrap();

    let first = store
        .start_survey(&hr.id, vec![NewRun { contact_id: anna.clone(), key: "manual".into() }], None)
        .await
        .unwrap();
    assert!(matches!(first[0], StartOutcome::Started { .. }), "{first:?}");
    // The first question, the reminder and the deadline.
    assert_eq!(store.queue_depth().await.unwrap(), depth + 3);
    assert_eq!(drain(&*store).await, vec![JobKind::Send], "the reminder and deadline wait");

    let again = store
        .start_survey(&hr.id, vec![NewRun { contact_id: anna.clone(), key: "manual".into() }], None)
        .await
        .unwrap();
    assert!(matches!(&again[0], StartOutcome::Already { status, .. } if status == "active"), "{again:?}");
    let other_key =
        store.start_survey(&hr.id, vec![NewRun { contact_id: anna.clone(), key: "q4".into() }], None).await.unwrap();
    assert!(matches!(other_key[0], StartOutcome::Busy { .. }), "{other_key:?}");
    assert!(drain(&*store).await.is_empty(), "nobody is asked twice");

    let nps = store.create_survey(spec("NPS", "1d")).await.unwrap();
    let queued = store
        .start_survey(&nps.id, vec![NewRun { contact_id: anna.clone(), key: "manual".into() }], None)
        .await
        .unwrap();
    assert!(matches!(queued[0], StartOutcome::Queued { .. }), "{queued:?}");

    let (stranger, _) =
        store.upsert_contact(ContactInput { name: Some("Без каналов".into()), ..Default::default() }).await.unwrap();
    let out = store
        .start_survey(
            &hr.id,
            vec![
                NewRun { contact_id: stranger.id.clone(), key: "manual".into() },
                NewRun { contact_id: "nobody".into(), key: "manual".into() },
            ],
            None,
        )
        .await
        .unwrap();
    assert!(matches!(&out[0], StartOutcome::Unreachable { reason, .. } if reason.contains("no identity")), "{out:?}");
    assert!(matches!(out[1], StartOutcome::UnknownContact { .. }), "{out:?}");
    let counts = store.survey_run_counts(&hr.id).await.unwrap();
    assert_eq!((counts.total, counts.active, counts.unreachable), (2, 1, 1));

    // Deleted: no new runs, the queued one is cancelled.
    let gone = store.deactivate_survey(&nps.id).await.unwrap();
    assert!(!gone.active);
    let refused = store.start_survey(&nps.id, vec![NewRun { contact_id: anna.clone(), key: "x".into() }], None).await;
    assert_eq!(refused.unwrap_err().code, "survey_inactive");
    assert_eq!(store.get_survey_run(&run_id(&queued[0])).await.unwrap().status, "cancelled");
    let listed = store.list_surveys(PageRequest::new(Some(1), None)).await.unwrap();
    assert_eq!(listed.items[0].id, hr.id, "active surveys first");
    let rest = store.list_surveys(PageRequest::new(Some(1), listed.next)).await.unwrap();
    assert_eq!(rest.items[0].id, nps.id);
    assert!(rest.next.is_none());
}

async fn answers_count_once_and_lead_to_the_next_question(store: Arc<dyn Store>) {
    let ch = channel(&*store).await;
    store
        .create_webhook(NewWebhook {
            url: "https://crm.example.org/okno".into(),
            events: vec![EventType::SurveyAnswered, EventType::SurveyCompleted],
            secret: "k".into(),
            created_by: None,
        })
        .await
        .unwrap();
    let boris = person(&*store, &ch, "boris").await;
    let hr = store.create_survey(spec("HR", "1d")).await.unwrap();
    let nps = store.create_survey(spec("NPS", "1d")).await.unwrap();
    let started = store
        .start_survey(&hr.id, vec![NewRun { contact_id: boris.clone(), key: "manual".into() }], None)
        .await
        .unwrap();
    let run = run_id(&started[0]);
    let queued = store
        .start_survey(&nps.id, vec![NewRun { contact_id: boris.clone(), key: "manual".into() }], None)
        .await
        .unwrap();
    drain(&*store).await;

    // A press is routed to the surveys, not to the bot.
    let data = format!("survey:{run}:0:1");
    let press = store.record_inbound(inbound(&ch, "boris", "p1", None, Some(data.clone()))).await.unwrap().message;
    assert_eq!(drain(&*store).await, vec![JobKind::SurveyAnswer]);
    let input = |id: &str, button: Option<String>, text: Option<&str>| SurveyInput {
        message_id: id.into(),
        contact_id: boris.clone(),
        channel_id: ch.clone(),
        button,
        text: text.map(str::to_string),
    };
    let got = store.survey_input(input(&press.id, Some(data.clone()), None)).await.unwrap();
    assert_eq!(got, InputOutcome::Recorded { completed: false });
    // The double press.
    assert_eq!(store.survey_input(input(&press.id, Some(data.clone()), None)).await.unwrap(), InputOutcome::Duplicate);
    let kinds = drain(&*store).await;
    assert_eq!(kinds.iter().filter(|k| **k == JobKind::Send).count(), 1, "one next question: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == JobKind::Webhook).count(), 1, "one survey.answered: {kinds:?}");

    // A command is the bot's; a text is the survey's.
    let command = InboundMessage { survey: SurveyTurn::No, ..inbound(&ch, "boris", "c1", Some("/menu"), None) };
    store.record_inbound(command).await.unwrap();
    assert_eq!(drain(&*store).await, vec![JobKind::BotStep]);
    let text = store.record_inbound(inbound(&ch, "boris", "t1", Some("Много работы"), None)).await.unwrap().message;
    assert_eq!(drain(&*store).await, vec![JobKind::SurveyAnswer]);
    let done = store.survey_input(input(&text.id, None, Some("Много работы"))).await.unwrap();
    assert_eq!(done, InputOutcome::Recorded { completed: true });
    // The typed answer handled again (a crash after its commit) does not answer the survey
    // that starts next.
    let again = store.survey_input(input(&text.id, None, Some("Много работы"))).await.unwrap();
    assert_eq!(again, InputOutcome::Duplicate);
    let kinds = drain(&*store).await;
    // Thanks + the queued survey's first question; survey.answered + survey.completed.
    assert_eq!(kinds.iter().filter(|k| **k == JobKind::Send).count(), 2, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == JobKind::Webhook).count(), 2, "{kinds:?}");
    assert_eq!(store.get_survey_run(&run).await.unwrap().status, "completed");
    assert_eq!(store.get_survey_run(&run_id(&queued[0])).await.unwrap().status, "active", "the next survey starts");

    let answers = store.survey_answers(&hr.id).await.unwrap();
    let got: Vec<_> = answers.iter().map(|a| (a.question_id.as_str(), a.answer.as_str(), a.value)).collect();
    assert_eq!(got, vec![("mood", "Плохо", Some(1)), ("why", "Много работы", None)]);
    let counts = store.survey_run_counts(&hr.id).await.unwrap();
    assert_eq!((counts.completed, counts.responded), (1, 1));
    // The same figures read for several surveys at once, and counted in the database.
    let idle = store.create_survey(spec("Пусто", "1d")).await.unwrap();
    let many = store.survey_run_counts_of(&[hr.id.clone(), nps.id.clone(), idle.id.clone()]).await.unwrap();
    assert_eq!(many.get(&hr.id), Some(&counts));
    assert_eq!(many.get(&nps.id), Some(&store.survey_run_counts(&nps.id).await.unwrap()));
    assert_eq!(many.get(&nps.id).map(|c| (c.total, c.active, c.responded)), Some((1, 1, 0)));
    assert!(!many.contains_key(&idle.id), "no runs, no entry");
    let tallies = store.survey_tallies(&hr.id, None, None).await.unwrap();
    assert_eq!(hr.spec.results_of(&hr.id, counts.clone(), &tallies), hr.spec.results(&hr.id, counts.clone(), &answers));
    assert_eq!(tallies.iter().map(|t| t.count).sum::<i64>(), 2);
    let later = okno_domain::time::now_ms() + 60_000;
    assert!(store.survey_tallies(&hr.id, Some(later), None).await.unwrap().is_empty(), "a period with no answers");
    let texts = store.latest_answers(&hr.id, &["why".to_string()], 20).await.unwrap();
    assert_eq!(texts.iter().map(|a| a.answer.as_str()).collect::<Vec<_>>(), vec!["Много работы"]);

    // Merged into the business contact (a link code): the run and answers follow the person.
    let (business, _) = store
        .upsert_contact(ContactInput {
            external_id: Some("1c-42".into()),
            name: Some("Борис".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    store.merge_contacts(&business.id, &boris, None).await.unwrap();
    assert_eq!(store.get_survey_run(&run).await.unwrap().contact_id, business.id);
    let answers = store.survey_answers(&hr.id).await.unwrap();
    assert!(answers.iter().all(|a| a.contact_id == business.id && a.external_id.as_deref() == Some("1c-42")));
    let boris = business.id.clone();
    let input = |id: &str, button: Option<String>, text: Option<&str>| SurveyInput {
        message_id: id.into(),
        contact_id: boris.clone(),
        channel_id: ch.clone(),
        button,
        text: text.map(str::to_string),
    };

    // The same press handled again (its job ran twice) records nothing more.
    let again = store.survey_input(input(&press.id, Some(data.clone()), None)).await.unwrap();
    assert_eq!(again, InputOutcome::Duplicate);
    // A later press on the finished survey: told so, nothing stored.
    let late = store.survey_input(input("late-press", Some(data), None)).await.unwrap();
    assert_eq!(late, InputOutcome::Closed);
    assert_eq!(store.survey_answers(&hr.id).await.unwrap().len(), 2);
}

async fn the_deadline_closes_a_run_and_later_answers_are_refused(store: Arc<dyn Store>) {
    let ch = channel(&*store).await;
    let vera = person(&*store, &ch, "vera").await;
    let hr = store.create_survey(spec("HR", "2s")).await.unwrap();
    let started = store
        .start_survey(&hr.id, vec![NewRun { contact_id: vera.clone(), key: "manual".into() }], None)
        .await
        .unwrap();
    let run = run_id(&started[0]);
    drain(&*store).await;
    assert!(!store.expire_survey_run(&run).await.unwrap(), "not before the deadline");
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    // The reminder job is due one second before the deadline.
    assert_eq!(drain(&*store).await, vec![JobKind::SurveyRemind]);
    assert!(store.remind_survey_run(&run).await.unwrap());
    assert!(!store.remind_survey_run(&run).await.unwrap(), "reminded once");
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    let kinds = drain(&*store).await;
    assert!(kinds.contains(&JobKind::SurveyExpire), "{kinds:?}");
    assert!(store.expire_survey_run(&run).await.unwrap());
    assert!(!store.expire_survey_run(&run).await.unwrap(), "expired once");
    assert_eq!(store.get_survey_run(&run).await.unwrap().status, "expired");

    // A text no longer goes to the survey; a press is answered politely and not stored.
    store.record_inbound(inbound(&ch, "vera", "t1", Some("Хорошо"), None)).await.unwrap();
    assert_eq!(drain(&*store).await, vec![JobKind::BotStep]);
    let press = format!("survey:{run}:0:0");
    let m = store.record_inbound(inbound(&ch, "vera", "p1", None, Some(press.clone()))).await.unwrap().message;
    let input = SurveyInput { message_id: m.id, contact_id: vera, channel_id: ch, button: Some(press), text: None };
    assert_eq!(store.survey_input(input).await.unwrap(), InputOutcome::Closed);
    assert!(store.survey_answers(&hr.id).await.unwrap().is_empty());
    assert_eq!(store.survey_run_counts(&hr.id).await.unwrap().expired, 1);
}

async fn a_date_scan_chain_has_one_live_link(store: Arc<dyn Store>) {
    let ch = channel(&*store).await;
    person(&*store, &ch, "gleb").await;
    let (hired, _) = store
        .upsert_contact(ContactInput {
            external_id: Some("emp-1".into()),
            attrs: Some(json!({"hired_on": "2026-11-15"})),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut body = serde_json::to_value(spec("7-й день", "1d")).unwrap();
    body["trigger"] = json!({"kind": "date", "field": "hired_on", "offset_days": 7});
    let survey = store.create_survey(SurveySpec::parse(&body).unwrap()).await.unwrap();
    let jobs = store.claim_jobs("t", 1000, 60_000).await.unwrap();
    let scan: Vec<_> = jobs.iter().filter(|j| j.kind == JobKind::SurveyScan).collect();
    assert_eq!(scan.len(), 1, "the first scan is queued with the survey");
    assert_eq!(scan[0].ref_id, format!("{}:{}", survey.id, survey.scan_token.clone().unwrap()));
    let token = survey.scan_token.clone().unwrap();
    assert!(store.next_survey_scan(&survey.id, &token, 0).await.unwrap());
    assert!(!store.next_survey_scan(&survey.id, &token, 0).await.unwrap(), "a stale link queues nothing");
    let candidates = store.date_candidates("hired_on").await.unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].0, hired.id);
    store.deactivate_survey(&survey.id).await.unwrap();
    let live = store.get_survey(&survey.id).await.unwrap().scan_token;
    assert!(live.is_none(), "a deleted survey's chain ends");
}

async fn starts_at_the_same_instant_ask_once(store: Arc<dyn Store>) {
    let ch = channel(&*store).await;
    let dina = person(&*store, &ch, "dina").await;
    let hr = store.create_survey(spec("HR", "1d")).await.unwrap();
    drain(&*store).await;
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, id, dina) = (store.clone(), hr.id.clone(), dina.clone());
        all.spawn(async move {
            store.start_survey(&id, vec![NewRun { contact_id: dina, key: "manual".into() }], None).await
        });
    }
    let mut started = 0;
    while let Some(done) = all.join_next().await {
        let out = done.unwrap().unwrap();
        started += usize::from(matches!(out[0], StartOutcome::Started { .. }));
    }
    assert_eq!(started, 1);
    assert_eq!(drain(&*store).await, vec![JobKind::Send], "one first question");
    assert_eq!(store.survey_run_counts(&hr.id).await.unwrap().total, 1);
}

okno_store::both_backends!(
    starts_once_per_key_and_one_survey_at_a_time,
    answers_count_once_and_lead_to_the_next_question,
    the_deadline_closes_a_run_and_later_answers_are_refused,
    a_date_scan_chain_has_one_live_link,
    starts_at_the_same_instant_ask_once,
);
