//! The client against the amoCRM simulator: the token checked, a deal read with its contact,
//! moved and given a responsible user, a note added, amoCRM's refusals named; the limit kept
//! (the simulator refuses nothing okno sends, though a burst past the limit is refused and,
//! kept up, blocks the account); and account webhooks read back from what amoCRM posts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};

use okno_amocrm_sim::{AmoSim, WON};
use okno_connector_amocrm::{events, AmoClient, AmoError, HookEvent, LeadPatch, PER_SECOND};

/// What okno's side was posted: the content type and the body.
type Received = (String, Vec<u8>);

async fn account() -> (AmoSim, AmoClient, i64) {
    let sim = AmoSim::start("romashka").await;
    let manager = sim.add_user("Ольга Менеджер", "olga@romashka.ru");
    let token = sim.add_token(manager);
    let client = AmoClient::new(&sim.api_base(), &token, PER_SECOND).unwrap();
    (sim, client, manager)
}

#[tokio::test]
async fn a_deal_is_read_moved_assigned_and_noted() {
    let (sim, client, manager) = account().await;
    assert_eq!(client.account().await.unwrap().subdomain, "romashka");
    let courier = sim.add_user("Пётр Курьер", "petr@romashka.ru");
    let buyer = sim.add_contact("Анна Покупатель", "+7 900 123-45-67", "anna@example.org");
    let id = sim.add_lead("Доставка букета", 4500, manager, Some(buyer));

    let lead = client.lead(id).await.unwrap();
    assert_eq!((lead.name.as_str(), lead.status_id, lead.contact_ids.clone()), ("Доставка букета", 10, vec![buyer]));
    let c = client.contact(buyer).await.unwrap();
    assert_eq!((c.phones, c.emails), (vec!["+7 900 123-45-67".to_string()], vec!["anna@example.org".to_string()]));
    assert!(client.users().await.unwrap().iter().any(|u| u.id == courier && u.name == "Пётр Курьер"));

    let patch = LeadPatch { status_id: Some(20), responsible_user_id: Some(courier), ..Default::default() };
    client.update_lead(id, &patch).await.unwrap();
    let after = sim.lead(id);
    assert_eq!((after.status_id, after.responsible_user_id, after.updated_by), (20, courier, 0), "a robot's change");
    let note = client.add_note(id, "Взял Пётр Курьер в 12:03").await.unwrap();
    assert_eq!(
        sim.notes(id).iter().map(|n| (n.id, n.text.as_str())).collect::<Vec<_>>(),
        vec![(note, "Взял Пётр Курьер в 12:03")]
    );

    // amoCRM's refusals, named.
    let bad = client.update_lead(id, &LeadPatch { status_id: Some(99), ..Default::default() }).await.unwrap_err();
    assert!(matches!(&bad, AmoError::Invalid(d) if d.contains("status_id")), "{bad:?}");
    let nobody = client.update_lead(id, &LeadPatch { responsible_user_id: Some(1), ..Default::default() }).await;
    assert!(matches!(&nobody, Err(AmoError::Invalid(d)) if d.contains("responsible_user_id")), "{nobody:?}");
    assert!(matches!(client.lead(999_999).await, Err(AmoError::NotFound(_))));
    assert!(!bad.is_passing());
}

#[tokio::test]
async fn a_revoked_token_is_told_apart() {
    let sim = AmoSim::start("romashka").await;
    let token = sim.add_token(sim.add_user("Админ", "admin@romashka.ru"));
    let client = AmoClient::new(&sim.api_base(), &token, PER_SECOND).unwrap();
    client.account().await.unwrap();
    sim.revoke(&token);
    let e = client.account().await.unwrap_err();
    assert!(matches!(e, AmoError::Unauthorized(_)), "{e:?}");
    assert!(!e.is_passing(), "a new token is needed, not a retry");
}

#[tokio::test]
async fn okno_keeps_the_limit_and_a_burst_past_it_is_refused_then_blocked() {
    let (sim, client, _) = account().await;
    // Twenty calls as fast as okno makes them: all answered.
    for _ in 0..20 {
        client.account().await.unwrap();
    }
    let refused = sim.log().iter().filter(|(_, _, s)| *s == 429).count();
    assert_eq!(refused, 0, "okno never goes past {PER_SECOND} a second");

    // A program ignoring the limit on the same account: 429 as HTML, then a blocked account.
    let token = sim.add_token(sim.add_user("Другая интеграция", "x@romashka.ru"));
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let r = http.get(format!("{}/api/v4/account", sim.api_base())).bearer_auth(&token).send().await.unwrap();
        let html = r.headers().get("content-type").is_some_and(|c| c.to_str().unwrap().starts_with("text/html"));
        statuses.push((r.status().as_u16(), html));
    }
    assert!(statuses.contains(&(429, true)), "{statuses:?}");
    assert!(sim.blocked());
    let e = client.account().await.unwrap_err();
    assert!(matches!(e, AmoError::Forbidden(_)), "the whole account is blocked: {e:?}");
    sim.unblock();
    client.account().await.unwrap();
}

#[tokio::test]
async fn a_status_hook_is_posted_form_encoded_and_retried_until_answered() {
    let (sim, client, manager) = account().await;
    sim.retry_pace(std::time::Duration::from_millis(50));
    // okno's side: the first answer fails, the next ones take it.
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hooks/connectors/c1/s3cret",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let mut s = seen.lock().unwrap();
                let ct = headers.get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
                s.push((ct, body.to_vec()));
                if s.len() == 1 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/connectors/c1/s3cret", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    client.subscribe(&url, &["status_lead"]).await.unwrap();

    let id = sim.add_lead("Монтаж кондиционера", 12_000, manager, None);
    sim.move_lead(id, WON, manager);
    let hook = wait_for(|| sim.hooks().into_iter().find(|h| h.delivered())).await;
    assert_eq!(hook.attempts, vec![500, 200], "retried after the failure, then delivered");
    let (ct, body) = got.lock().unwrap()[1].clone();
    assert_eq!(ct, "application/x-www-form-urlencoded");
    assert_eq!(
        events(&body).unwrap(),
        vec![HookEvent::LeadStatus {
            lead_id: id,
            status_id: WON,
            old_status_id: Some(10),
            pipeline_id: Some(sim.pipeline())
        }]
    );
}

/// Polls `f` for up to 10 s.
async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("not within 10 s")
}

#[tokio::test]
async fn oauth_exchanges_a_code_and_each_refresh_token_works_once() {
    use okno_connector_amocrm::{exchange, Grant, OAuthClient};
    let sim = AmoSim::start("romashka").await;
    let admin = sim.add_user("Админ", "admin@romashka.ru");
    sim.add_integration("client-1", "client-secret");
    sim.access_ttl(std::time::Duration::from_millis(300));
    let app =
        OAuthClient { client_id: "client-1", client_secret: "client-secret", redirect_uri: "https://okno.example" };
    let code = sim.auth_code("client-1", admin);
    let first = exchange(&sim.api_base(), app, Grant::Code(&code)).await.unwrap();
    assert!(exchange(&sim.api_base(), app, Grant::Code(&code)).await.is_err(), "a code works once");
    let wrong = OAuthClient { client_secret: "nope", ..app };
    let refused = exchange(&sim.api_base(), wrong, Grant::Code(&sim.auth_code("client-1", admin))).await.unwrap_err();
    assert!(matches!(refused, AmoError::Unauthorized(_)), "{refused:?}");

    let client = AmoClient::new(&sim.api_base(), &first.access_token, PER_SECOND).unwrap();
    client.account().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(matches!(client.account().await, Err(AmoError::Unauthorized(_))), "the access token expired");
    let second = exchange(&sim.api_base(), app, Grant::Refresh(&first.refresh_token)).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token, "the refresh token rotates");
    client.set_token(&second.access_token);
    client.account().await.unwrap();
    let stale = exchange(&sim.api_base(), app, Grant::Refresh(&first.refresh_token)).await.unwrap_err();
    assert!(matches!(stale, AmoError::Unauthorized(_)), "the old refresh token is dead: {stale:?}");
    assert_eq!(sim.refreshes(), 1);
}
