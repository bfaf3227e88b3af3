//! The simulator itself, spoken to with plain HTTP the way any Bitrix24 client would: the
//! bucket, the envelope and errors, form bodies, batch's own limits, application-only methods,
//! offline reservations, and the one-attempt event post.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use okno_bitrix24_sim::{Bitrix24Sim, Limits};
use serde_json::{json, Value};

async fn post(url: String, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn the_bucket_refuses_the_fifty_first_of_a_burst_and_drains_by_the_second() {
    let sim = Bitrix24Sim::start().await;
    let url = format!("{}user.current", sim.webhook_url(sim.admin()));
    // The portal drains at whole seconds: the burst goes right after one.
    let into_second = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1010 - into_second))).await;
    let burst: Vec<_> = (0..51).map(|_| post(url.clone(), json!({}))).collect();
    let answers = futures_join(burst).await;
    let refused: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 503).map(|(_, b)| b).collect();
    assert_eq!(refused.len(), 1, "50 pass, the 51st is refused");
    assert_eq!(refused[0]["error"], "QUERY_LIMIT_EXCEEDED");
    assert_eq!(sim.over_limit(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after: Vec<u16> =
        futures_join((0..2).map(|_| post(url.clone(), json!({}))).collect()).await.into_iter().map(|a| a.0).collect();
    assert_eq!(after, vec![200, 200], "a second later two more fit");
    assert_eq!(post(url.clone(), json!({})).await.0, 503);

    // Enterprise: 250.
    let big = Bitrix24Sim::start_with(Limits::ENTERPRISE).await;
    let url = format!("{}user.current", big.webhook_url(big.admin()));
    let answers = futures_join((0..120).map(|_| post(url.clone(), json!({}))).collect()).await;
    assert!(answers.iter().all(|(s, _)| *s == 200));
}

/// Runs requests concurrently on the test's runtime.
async fn futures_join<F: std::future::Future<Output = (u16, Value)> + Send + 'static>(fs: Vec<F>) -> Vec<(u16, Value)> {
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn calls_answer_in_bitrix24_s_envelope_from_json_form_and_query() {
    let sim = Bitrix24Sim::start().await;
    let hook = sim.webhook_url(sim.admin());
    let (status, v) = post(format!("{hook}crm.contact.add.json"), json!({"FIELDS": {"NAME": "Ольга"}})).await;
    assert_eq!(status, 200);
    let id = v["result"].as_u64().unwrap();
    assert!(v["time"]["duration"].is_number() && v["time"]["date_start"].is_string());

    let form = "fields[NAME]=%D0%9F%D1%91%D1%82%D1%80&fields[PHONE][0][VALUE]=%2B79001234567&fields[PHONE][0][VALUE_TYPE]=WORK";
    let r = reqwest::Client::new()
        .post(format!("{hook}crm.contact.add"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let petr = r.json::<Value>().await.unwrap()["result"].as_u64().unwrap();
    let got: Value = reqwest::get(format!("{hook}crm.contact.get?id={petr}")).await.unwrap().json().await.unwrap();
    assert_eq!(got["result"]["NAME"], "Пётр");
    assert_eq!(got["result"]["PHONE"][0]["TYPE_ID"], "PHONE");
    assert_eq!(got["result"]["ID"], petr.to_string(), "ids as text, as Bitrix24 writes them");

    let (status, v) = post(format!("{hook}crm.contact.get"), json!({ "id": id + 1000 })).await;
    assert_eq!((status, v["error"].as_str(), v["error_description"].as_str()), (400, Some(""), Some("Not found")));
    let (status, v) = post(format!("{hook}crm.nothing.here"), json!({})).await;
    assert_eq!((status, v["error"].as_str()), (404, Some("ERROR_METHOD_NOT_FOUND")));
    let (status, v) = post(format!("{}/rest/1/wrong/user.current", sim.base()), json!({})).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("NO_AUTH_FOUND")));
    let (status, v) = post(format!("{}user.current", sim.rest_base()), json!({"auth": "unknown"})).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_token")));
}

#[tokio::test]
async fn batch_counts_once_runs_fifty_and_fails_the_rest() {
    let sim = Bitrix24Sim::start().await;
    let hook = sim.webhook_url(sim.admin());
    let mut cmd = serde_json::Map::new();
    for n in 0..55 {
        cmd.insert(format!("k{n:02}"), json!("user.current"));
    }
    cmd.insert("k99".into(), json!("batch?cmd[a]=user.current"));
    let (status, v) = post(format!("{hook}batch"), json!({"halt": 0, "cmd": cmd})).await;
    assert_eq!(status, 200, "a batch is 200 whatever its commands do");
    assert_eq!(v["result"]["result"].as_object().unwrap().len(), 50);
    assert_eq!(v["result"]["result_error"]["k50"]["error"], "ERROR_BATCH_LENGTH_EXCEEDED");
    assert_eq!(sim.log().len(), 1, "one request for the bucket");

    let (_, v) = post(format!("{hook}batch"), json!({"cmd": {"x": "batch?cmd[a]=user.current"}})).await;
    assert_eq!(v["result"]["result_error"]["x"]["error"], "ERROR_BATCH_METHOD_NOT_ALLOWED");
    assert_eq!(v["result"]["result"], json!([]), "PHP's empty array");
    sim.block_method("user.current", Duration::from_secs(5));
    let (_, v) = post(format!("{hook}batch"), json!({"cmd": {"u": "user.current"}})).await;
    assert_eq!(v["result"]["result_error"]["u"]["error"], "OPERATION_TIME_LIMIT");
    let (status, v) = post(format!("{hook}user.current"), json!({})).await;
    assert_eq!((status, v["error"].as_str()), (429, Some("OPERATION_TIME_LIMIT")));
}

#[tokio::test]
async fn application_only_methods_refuse_webhooks_and_offline_reservations_are_the_process_s() {
    let sim = Bitrix24Sim::start().await;
    let hook = sim.webhook_url(sim.admin());
    for method in ["event.bind", "event.offline.get", "imconnector.register", "imconnector.send.messages"] {
        let (status, v) =
            post(format!("{hook}{method}"), json!({"event": "ONCRMDEALUPDATE", "event_type": "offline"})).await;
        assert_eq!((status, v["error"].as_str()), (403, Some("WRONG_AUTH_TYPE")), "{method}");
    }
    // Offline events need an administrator.
    let clerk = sim.install_app(sim.add_user("Клерк", "", "clerk@example.org"));
    let url = format!("{}event.bind", sim.rest_base());
    let (status, v) =
        post(url.clone(), json!({"auth": clerk.access_token, "event": "ONCRMDEALUPDATE", "event_type": "offline"}))
            .await;
    assert_eq!((status, v["error"].as_str()), (403, Some("ACCESS_DENIED")));

    let app = sim.install_app(sim.admin());
    let call = |method: &str, mut body: Value| {
        body["auth"] = json!(app.access_token);
        post(format!("{}{method}", sim.rest_base()), body)
    };
    assert_eq!(call("event.bind", json!({"event": "ONCRMDEALUPDATE", "event_type": "offline"})).await.0, 200);
    let (status, v) = call("event.bind", json!({"event": "ONNOTHING", "handler": "https://x"})).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("ERROR_EVENT_NOT_FOUND")));
    let deal = sim.add_deal("Сделка", None, sim.admin());
    for stage in ["PREPARATION", "EXECUTING", "WON"] {
        sim.move_deal(deal, stage);
    }
    assert_eq!(sim.offline_queue().len(), 1, "the latest state per object");
    let (_, got) = call("event.offline.get", json!({"clear": 0})).await;
    let pid = got["result"]["process_id"].as_str().unwrap().to_string();
    assert_eq!(got["result"]["events"][0]["EVENT_DATA"]["FIELDS"]["ID"], deal.to_string());
    // A change while reserved queues a new record; clearing another process id takes nothing.
    sim.move_deal(deal, "LOSE");
    assert_eq!(call("event.offline.clear", json!({"process_id": "someone-else"})).await.0, 200);
    assert_eq!(sim.offline_queue().len(), 2);
    let (status, v) = call("event.offline.clear", json!({})).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("ERROR_ARGUMENT")));
    call("event.offline.clear", json!({ "process_id": pid })).await;
    let left = sim.offline_queue();
    assert_eq!((left.len(), left[0].process_id.clone()), (1, None), "only the reservation went");
    let (_, listed) = call("event.offline.list", json!({})).await;
    assert_eq!(listed["total"], 1);
}

#[tokio::test]
async fn an_event_is_posted_once_and_a_failed_post_is_not_sent_again() {
    let sim = Bitrix24Sim::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let token = sim.outgoing_webhook("ONCRMCONTACTADD", &url);
    sim.add_contact("Анна", "", "+79000000000", "anna@example.org");
    sim.settle().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = sim.events_sent();
    assert_eq!(sent.len(), 1, "no retry");
    assert_eq!(sent[0].status, 500);
    assert!(sent[0].body.contains("event=ONCRMCONTACTADD"), "{}", sent[0].body);
    assert!(sent[0].body.contains(&format!("auth%5Bapplication_token%5D={token}")), "{}", sent[0].body);
}

#[tokio::test]
async fn oauth_tokens_expire_and_each_refresh_token_works_once() {
    let sim = Bitrix24Sim::start().await;
    let app = sim.install_app(sim.admin());
    sim.access_ttl(Duration::from_millis(200));
    let token_url = |refresh: &str| {
        format!(
            "{}/oauth/token/?grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={refresh}",
            sim.oauth_server(),
            app.client_id,
            app.client_secret
        )
    };
    let first: Value = reqwest::get(token_url(&app.refresh_token)).await.unwrap().json().await.unwrap();
    assert_eq!(first["client_endpoint"], sim.rest_base());
    let again = reqwest::get(token_url(&app.refresh_token)).await.unwrap();
    assert_eq!(again.status(), 400);
    assert_eq!(again.json::<Value>().await.unwrap()["error"], "invalid_grant");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, v) = post(format!("{}user.current", sim.rest_base()), json!({"auth": first["access_token"]})).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("expired_token")));
    assert_eq!(sim.refreshes(), 1);
}
