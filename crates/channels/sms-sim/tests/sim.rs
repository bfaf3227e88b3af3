//! The simulator's own checks: each provider's limits and refusals are enforced.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use okno_sms_sim::{count_parts, Fault, SmsSim};
use serde_json::Value;

async fn post(url: String, form: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new().post(url).form(form).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn smsru_charges_parts_runs_out_of_money_and_refuses_the_stop_list() {
    let sim = SmsSim::start().await;
    let acct = sim.add_smsru("API-1", 6.0);
    sim.blacklist("79000000013");
    let send = |to: &'static str, msg: String| {
        let url = format!("{}/sms/send", sim.api_base());
        async move { post(url, &[("api_id", "API-1"), ("to", to), ("msg", &msg), ("json", "1")]).await.1 }
    };
    let ok = send("79001234567", "Привет".into()).await;
    assert_eq!(ok["sms"]["79001234567"]["status"], "OK", "{ok}");
    let stop = send("79000000013", "Привет".into()).await;
    assert_eq!(stop["sms"]["79000000013"]["status_code"], 215, "{stop}");
    let poor = send("79001234567", "я".repeat(71)).await;
    assert_eq!(poor["sms"]["79001234567"]["status_code"], 201, "two parts cost 5.90 of 3.05 left: {poor}");
    let long = send("79001234567", "я".repeat(67 * 8 + 1)).await;
    assert_eq!(long["status_code"], 205, "{long}");
    let bad = post(format!("{}/sms/send", sim.api_base()), &[("api_id", "nope"), ("to", "79001234567"), ("msg", "x")])
        .await
        .1;
    assert_eq!(bad["status_code"], 200);
    assert_eq!(sim.sent().len(), 1);
    assert_eq!((sim.sent()[0].parts, sim.sent()[0].encoding), (1, "ucs2"));
    assert!((sim.balance(&acct) - 3.05).abs() < 1e-9);
}

#[tokio::test]
async fn the_rate_limit_answers_each_providers_too_many_and_can_be_switched_off() {
    let sim = SmsSim::start().await;
    sim.add_smsc("shop", "pw", 1000.0);
    sim.set_rate_limit(Some(3));
    let url = format!("{}/sys/send.php", sim.api_base());
    let mut codes = Vec::new();
    for _ in 0..5 {
        let form = [
            ("login", "shop"),
            ("psw", "pw"),
            ("phones", "79001234567"),
            ("mes", "hi"),
            ("fmt", "3"),
            ("charset", "utf-8"),
        ];
        codes.push(post(url.clone(), &form).await.1["error_code"].as_i64());
    }
    assert_eq!(codes, vec![None, None, None, Some(9), Some(9)]);
    assert_eq!(sim.rate_limited(), 2);
    sim.set_rate_limit(None);
    let form = [
        ("login", "shop"),
        ("psw", "pw"),
        ("phones", "79001234567"),
        ("mes", "hi"),
        ("fmt", "3"),
        ("charset", "utf-8"),
    ];
    assert!(post(url.clone(), &form).await.1["id"].is_u64());
    sim.fail_next(Fault::ServerError);
    assert_eq!(post(url, &form).await.0, 500);
}

#[tokio::test]
async fn twilio_wants_basic_auth_and_answers_its_error_shape() {
    let sim = SmsSim::start().await;
    sim.add_twilio("AC1", "tok", "+15005550006", 10.0);
    let url = format!("{}/2010-04-01/Accounts/AC1/Messages.json", sim.api_base());
    let c = reqwest::Client::new();
    let r = c.post(&url).basic_auth("AC1", Some("wrong")).form(&[("To", "+79001234567")]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 20003);
    sim.fail_next(Fault::TooManyRequests);
    let form = [("To", "+79001234567"), ("From", "+15005550006"), ("Body", "Hello")];
    let r = c.post(&url).basic_auth("AC1", Some("tok")).form(&form).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let r = c.post(&url).basic_auth("AC1", Some("tok")).form(&form).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert!(r.json::<Value>().await.unwrap()["sid"].as_str().unwrap().starts_with("SM"));
    let bad_from = [("To", "+79001234567"), ("From", "+15550000000"), ("Body", "Hello")];
    let r = c.post(&url).basic_auth("AC1", Some("tok")).form(&bad_from).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 21606);
}

#[test]
fn parts_are_counted_like_an_sms_centre() {
    assert_eq!(count_parts(&"a".repeat(160)), (1, "gsm7"));
    assert_eq!(count_parts(&"a".repeat(161)), (2, "gsm7"));
    assert_eq!(count_parts(&"€".repeat(80)), (1, "gsm7"));
    assert_eq!(count_parts(&"я".repeat(70)), (1, "ucs2"));
    assert_eq!(count_parts(&"я".repeat(135)), (3, "ucs2"));
}
