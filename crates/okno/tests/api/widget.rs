//! The website widget end to end: a visitor calls the public visitor API the way the script
//! does (with the site's `Origin`), operators answer through okno's API, the visitor's live
//! stream (SSE) shows it. Also: resuming a stream, retried sends, signed customers, origins,
//! limits, files, the script itself — and the widget in a real Chromium.

use std::io::Write;

use okno_testkit::widget::{customer_hash, Visitor, SITE, WIDGET_SECRET};
use okno_testkit::TestApp;
use serde_json::{json, Value};

/// okno with a widget channel on [`SITE`] and a visitor with a session.
async fn widget() -> (TestApp, String, Visitor) {
    let app = TestApp::spawn().await;
    let ch = app.widget_channel(&[SITE], json!({"title": "Магазин", "greeting": "Здравствуйте!"})).await;
    let mut v = app.visitor(&ch, SITE);
    let s = v.session(None).await;
    assert_eq!(s.status, 200, "{s:?}");
    assert_eq!(s.body["config"]["title"], "Магазин");
    assert!(s.body["config"].get("secret").is_none() && !s.body.to_string().contains(WIDGET_SECRET), "no secret shown");
    (app, ch, v)
}

/// The conversation of okno message `id`.
async fn conversation_of(app: &TestApp, id: &str) -> String {
    let m = app.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(m.status, 200, "{m:?}");
    m.body["conversation_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn widget_a_visitor_writes_and_sees_the_operators_answer_live() {
    let (app, ch, v) = widget().await;
    let mut live = v.stream(None).await;
    let sent = v.send("e1", "Здравствуйте! Есть ли доставка?").await;
    assert_eq!(sent.status, 200, "{sent:?}");
    assert_eq!(sent.body["duplicate"], false);
    let id = sent.body["id"].as_str().unwrap().to_string();

    // The visitor's own message comes back on the stream (their other tabs see it).
    let mine = live.next_named("message", 10).await.expect("the visitor's message on the stream");
    assert_eq!(mine.id.as_deref(), Some(id.as_str()));
    assert_eq!(mine.data["from"], "visitor");

    // The conversation is in okno, on the widget channel.
    let conv = conversation_of(&app, &id).await;
    let m = app.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(m.body["channel_id"], ch.as_str());
    assert_eq!(m.body["text"], "Здравствуйте! Есть ли доставка?");

    // The operator types, then answers; the visitor sees both live.
    let typing = app.post(&format!("/api/v1/conversations/{conv}/chat-action"), json!({"action": "typing"})).await;
    assert_eq!(typing.status, 204, "{typing:?}");
    let t = live.next_named("typing", 10).await.expect("typing reaches the visitor");
    assert_eq!(t.id.as_deref(), Some(id.as_str()), "a typing event carries the last message's id");
    let reply = app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            json!({"text": "Да, по всей России", "buttons": [[{"text": "Условия", "data": "terms"}]]}),
        )
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let got = live.next_named("message", 10).await.expect("the answer reaches the visitor live");
    assert_eq!(got.data["from"], "okno");
    assert_eq!(got.data["text"], "Да, по всей России");
    assert_eq!(got.data["buttons"][0][0]["text"], "Условия");
    assert_eq!(got.id.as_deref(), reply.body["id"].as_str());

    // The send went through the widget's adapter: the message is sent, okno's id its own.
    let rid = reply.body["id"].as_str().unwrap();
    let status = okno_testkit::eventually(10, || async {
        let m = app.get(&format!("/api/v1/messages/{rid}")).await;
        (m.body["status"] == "sent").then_some(m)
    })
    .await
    .expect("the reply is marked sent");
    assert_eq!(status.body["external_id"], rid);

    // A press of the button is an inbound press in okno.
    let press = v.post("/messages", json!({"echo_id": "p1", "button": "terms"})).await;
    assert_eq!(press.status, 200, "{press:?}");
    let pressed = app.get(&format!("/api/v1/messages/{}", press.body["id"].as_str().unwrap())).await;
    assert_eq!(pressed.body["button_data"], "terms");

    // History, both ways, oldest first.
    let h = v.get("/messages").await;
    let texts: Vec<&str> = h.body["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, vec!["Здравствуйте! Есть ли доставка?", "Да, по всей России"]);
}

#[tokio::test]
async fn widget_a_stream_resumed_after_last_event_id_gets_exactly_the_missed_messages() {
    let (app, _ch, v) = widget().await;
    let first = v.send("hello", "Привет").await;
    let conv = conversation_of(&app, first.body["id"].as_str().unwrap()).await;
    let mut ids = vec![first.body["id"].as_str().unwrap().to_string()];
    for n in 1..=2 {
        let r =
            app.post(&format!("/api/v1/conversations/{conv}/messages"), json!({"text": format!("ответ {n}")})).await;
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    // A first connection reads two events, then drops.
    let mut live = v.stream(None).await;
    let a = live.next_named("message", 10).await.unwrap();
    let b = live.next_named("message", 10).await.unwrap();
    assert_eq!([a.id.unwrap(), b.id.clone().unwrap()], [ids[0].clone(), ids[1].clone()]);
    drop(live);
    // While it is away: two more answers.
    for n in 3..=4 {
        let r =
            app.post(&format!("/api/v1/conversations/{conv}/messages"), json!({"text": format!("ответ {n}")})).await;
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    // Reconnecting with Last-Event-ID: exactly the missed ones, in order, none twice.
    let mut again = v.stream(b.id.as_deref()).await;
    let mut got = Vec::new();
    while let Some(e) = again.next_named("message", 3).await {
        got.push(e.id.unwrap());
    }
    assert_eq!(got, ids[2..].to_vec(), "the missed messages, once each");
}

#[tokio::test]
async fn widget_a_retried_send_is_stored_once() {
    let (app, _ch, v) = widget().await;
    let a = v.send("retry-1", "Один раз").await;
    let b = v.send("retry-1", "Один раз").await;
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.body["id"], b.body["id"], "the retry names the first message");
    assert_eq!(b.body["duplicate"], true);
    let conv = conversation_of(&app, a.body["id"].as_str().unwrap()).await;
    let msgs = app.get(&format!("/api/v1/conversations/{conv}/messages")).await;
    assert_eq!(msgs.body["items"].as_array().unwrap().len(), 1, "{msgs:?}");
    // Another visitor's same echo id is another message.
    let mut other = app.visitor(&_ch, SITE);
    other.session(None).await;
    let c = other.send("retry-1", "Один раз").await;
    assert_ne!(c.body["id"], a.body["id"]);
}

#[tokio::test]
async fn widget_a_signed_customer_continues_their_contact_and_a_forged_one_is_refused() {
    let (app, ch, _) = widget().await;
    let contact = app.post("/api/v1/contacts", json!({"external_id": "cust-42", "name": "Анна"})).await;
    assert!(contact.status == 200 || contact.status == 201, "{contact:?}");
    let contact_id = contact.body["id"].as_str().unwrap().to_string();

    let mut forged = app.visitor(&ch, SITE);
    let bad =
        json!({"id": "cust-42", "name": "Анна", "hash": customer_hash("0123456789abcdef0123456789abcdef", "cust-42")});
    let a = forged.session(Some(bad)).await;
    assert_eq!((a.status, a.code()), (403, "identity_refused"), "{a:?}");
    let unsigned = forged.session(Some(json!({"id": "cust-42"}))).await;
    assert_eq!((unsigned.status, unsigned.code()), (403, "identity_refused"));
    let other_id = json!({"id": "cust-43", "hash": customer_hash(WIDGET_SECRET, "cust-42")});
    assert_eq!(forged.session(Some(other_id)).await.status, 403, "a hash of another id");

    let mut anna = app.visitor(&ch, SITE);
    // Only the id is signed: the page's name does not replace okno's, its e-mail fills the gap.
    let ok = json!({"id": "cust-42", "name": "Не Анна", "email": "anna@example.org", "hash": customer_hash(WIDGET_SECRET, "cust-42")});
    let s = anna.session(Some(ok)).await;
    assert_eq!(s.status, 200, "{s:?}");
    assert_eq!(s.body["customer"], true);
    let sent = anna.send("a1", "Где мой заказ?").await;
    let m = app.get(&format!("/api/v1/messages/{}", sent.body["id"].as_str().unwrap())).await;
    assert_eq!(m.body["contact_id"], contact_id.as_str(), "the visitor writes as the site's customer");
    let c = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
    assert!(c.body["identities"].as_array().unwrap().iter().any(|i| i["channel_id"] == ch.as_str()), "{c:?}");
    assert_eq!((c.body["name"].as_str(), c.body["email"].as_str()), (Some("Анна"), Some("anna@example.org")));

    // A customer okno did not know yet becomes a contact with that id.
    let mut boris = app.visitor(&ch, SITE);
    let s = boris
        .session(Some(json!({"id": "cust-77", "name": "Борис", "hash": customer_hash(WIDGET_SECRET, "cust-77")})))
        .await;
    assert_eq!(s.status, 200, "{s:?}");
    let sent = boris.send("b1", "Здравствуйте").await;
    let m = app.get(&format!("/api/v1/messages/{}", sent.body["id"].as_str().unwrap())).await;
    let c = app.get(&format!("/api/v1/contacts/{}", m.body["contact_id"].as_str().unwrap())).await;
    assert_eq!(c.body["external_id"], "cust-77");
}

#[tokio::test]
async fn widget_only_the_channels_sites_may_call_it() {
    let (app, ch, v) = widget().await;
    let preflight = |origin: &'static str| {
        let (http, url) = (v.http.clone(), format!("{}/messages", v.base));
        async move {
            http.request(reqwest::Method::OPTIONS, url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type, x-okno-visitor")
                .send()
                .await
                .unwrap()
        }
    };
    let ok = preflight(SITE).await;
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], SITE);
    assert!(ok.headers()["access-control-allow-headers"].to_str().unwrap().contains("x-okno-visitor"));
    let evil = preflight("https://evil.example").await;
    assert_eq!(evil.status(), 403);
    assert!(evil.headers().get("access-control-allow-origin").is_none());

    let mut stranger = app.visitor(&ch, "https://evil.example");
    let s = stranger.session(None).await;
    assert_eq!((s.status, s.code()), (403, "origin_not_allowed"), "{s:?}");
    assert!(s.body["error"]["message"].as_str().unwrap().contains("evil.example"));
    let mut no_origin = app.visitor(&ch, SITE);
    no_origin.origin = String::new();
    let r = no_origin.http.post(format!("{}/session", no_origin.base)).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let sent = v.send("x1", "hi").await;
    assert_eq!(sent.status, 200);

    // What the site's page reads carries its origin back.
    let r = v
        .http
        .get(format!("{}/messages", v.base))
        .header("origin", SITE)
        .header("x-okno-visitor", v.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], SITE);
    assert_eq!(r.headers()["vary"], "Origin");
}

#[tokio::test]
async fn widget_bad_input_gets_clear_errors() {
    let (app, ch, v) = widget().await;
    let no_token = app.visitor(&ch, SITE);
    let a = no_token.send("e1", "hi").await;
    assert_eq!((a.status, a.code()), (401, "visitor_token_required"));
    let raw = v
        .http
        .post(format!("{}/messages", v.base))
        .header("origin", SITE)
        .header("x-okno-visitor", v.token.clone().unwrap())
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.json::<Value>().await.unwrap()["error"]["code"], "invalid_body");
    assert_eq!(v.post("/messages", json!({"echo_id": "e 1", "text": "x"})).await.code(), "invalid_echo_id");
    assert_eq!(v.post("/messages", json!({"echo_id": "e1"})).await.code(), "empty_message");
    let f = v
        .post("/messages", json!({"echo_id": "e1", "files": [{"id": format!("{}.00", "a".repeat(64)), "name": "x"}]}))
        .await;
    assert_eq!(f.code(), "unknown_file", "a file the visitor did not upload");
    let mut bad_token = app.visitor(&ch, SITE);
    bad_token.token = Some("zz".into());
    assert_eq!(bad_token.session(None).await.code(), "invalid_token");
    // Nobody but okno's visitor API may hand the channel a visitor's message.
    let forged = app
        .raw_hook(&ch, serde_json::to_vec(&json!({"visitor": "w0", "echo_id": "e", "text": "x"})).unwrap(), None)
        .await;
    assert_eq!(forged.status, 401, "{forged:?}");
    // A channel okno does not have has no widget.
    assert_eq!(app.visitor("no-such-channel", SITE).get("/messages").await.status, 404);
}

#[tokio::test]
async fn widget_a_visitor_sending_too_fast_is_answered_429() {
    let (_app, _ch, v) = widget().await;
    let mut statuses = Vec::new();
    for n in 0..40 {
        let a = v.send(&format!("burst-{n}"), "ещё").await;
        if a.status == 429 {
            assert_eq!(a.code(), "too_many_requests");
        }
        statuses.push(a.status);
    }
    assert!(statuses.contains(&200), "the first ones pass");
    assert!(statuses.contains(&429), "then the visitor is slowed down: {statuses:?}");
}

#[tokio::test]
async fn widget_files_go_both_ways() {
    let (app, ch, v) = widget().await;
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    let up = v.upload("фото.png", PNG).await;
    assert_eq!(up.status, 201, "{up:?}");
    assert_eq!(up.body["mime"], "image/png");
    let sent = v
        .post(
            "/messages",
            json!({"echo_id": "f1", "files": [{"id": up.body["id"], "name": "фото.png", "mime": "image/png"}]}),
        )
        .await;
    assert_eq!(sent.status, 200, "{sent:?}");
    let id = sent.body["id"].as_str().unwrap().to_string();
    let att = okno_testkit::eventually(10, || async {
        let m = app.get(&format!("/api/v1/messages/{id}")).await;
        let a = m.body["attachments"][0].clone();
        (a["state"] == "ready").then_some(a)
    })
    .await
    .expect("the visitor's file is stored");
    assert_eq!(att["name"], "фото.png");

    // The operator answers with a file; the visitor's history lists it and they download it.
    let conv = conversation_of(&app, &id).await;
    let op = app
        .http
        .post(format!("{}/api/v1/attachments", app.url))
        .query(&[("name", "счёт.pdf")])
        .bearer_auth(&app.token)
        .body(b"%PDF-1.4 test".to_vec())
        .send()
        .await
        .unwrap();
    let op_id = op.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            json!({"text": "Счёт", "attachments": [{"id": op_id}]}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let h = v.get("/messages").await;
    let files: Vec<Value> =
        h.body["messages"].as_array().unwrap().iter().flat_map(|m| m["files"].as_array().unwrap().clone()).collect();
    assert_eq!(files.len(), 2, "{h:?}");
    let token = v.token.clone().unwrap();
    for f in &files {
        let url = format!("{}{}", app.url, f["url"].as_str().unwrap());
        let got = v.http.get(&url).query(&[("token", &token)]).send().await.unwrap();
        assert_eq!(got.status(), 200, "{url}");
    }
    let pdf = v
        .http
        .get(format!("{}{}", app.url, files[1]["url"].as_str().unwrap()))
        .query(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.bytes().await.unwrap().as_ref(), b"%PDF-1.4 test");
    // Another visitor cannot read them.
    let mut other = app.visitor(&ch, SITE);
    other.session(None).await;
    other.send("o1", "я другой").await;
    let theirs = v
        .http
        .get(format!("{}{}", app.url, files[0]["url"].as_str().unwrap()))
        .query(&[("token", other.token.clone().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 404);
    // Nor send the first visitor's upload as theirs.
    let stolen =
        other.post("/messages", json!({"echo_id": "s1", "files": [{"id": up.body["id"], "name": "x.png"}]})).await;
    assert_eq!(stolen.code(), "unknown_file");
}

#[tokio::test]
async fn widget_the_script_is_served_cached_and_within_its_budget() {
    let (app, ch, _) = widget().await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/widget/{ch}.js", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(r.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let script = r.bytes().await.unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&script).unwrap();
    let size = gz.finish().unwrap().len();
    eprintln!("the served widget.js: {} bytes, {size} gzipped", script.len());
    assert!(size <= 50 * 1024, "{size} bytes gzipped, over the 50 KB budget");
    let again = http.get(format!("{}/widget/{ch}.js", app.url)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(http.get(format!("{}/widget/nope.js", app.url)).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn widget_working_hours_and_the_prechat_answers_reach_okno() {
    let app = TestApp::spawn().await;
    let closed = json!({"days": [], "from": "09:00", "to": "18:00", "message": "Мы отдыхаем"});
    let ch = app
        .widget_channel(&[SITE], json!({"offline": closed, "prechat": [{"field": "phone", "required": true}]}))
        .await;
    let mut v = app.visitor(&ch, SITE);
    let s = v.session(None).await;
    assert_eq!(s.body["config"]["online"], false, "{s:?}");
    assert_eq!(s.body["config"]["offline_message"], "Мы отдыхаем");
    assert_eq!(s.body["config"]["prechat"], json!([{"field": "phone", "required": true}]));
    let always = json!({"days": [1, 2, 3, 4, 5, 6, 7], "from": "00:00", "to": "24:00"});
    let open = app.widget_channel(&[SITE], json!({"offline": always})).await;
    assert_eq!(app.visitor(&open, SITE).session(None).await.body["config"]["online"], true);

    let body = json!({"echo_id": "o1", "text": "Перезвоните", "name": "Ольга", "phone": "+7 900 123-45-67", "email": "olga@example.org"});
    let sent = v.post("/messages", body).await;
    assert_eq!(sent.status, 200, "{sent:?}");
    let m = app.get(&format!("/api/v1/messages/{}", sent.body["id"].as_str().unwrap())).await;
    let c = app.get(&format!("/api/v1/contacts/{}", m.body["contact_id"].as_str().unwrap())).await;
    assert_eq!(c.body["name"], "Ольга", "{c:?}");
    assert_eq!(c.body["email"], "olga@example.org", "the pre-chat e-mail is kept on the contact");
    let digits: String = c.body["phone"].as_str().unwrap_or_default().chars().filter(char::is_ascii_digit).collect();
    assert_eq!(digits, "79001234567", "{c:?}");
}

/// Seed 002: a visitor asks on the site, leaves an e-mail and closes the page; the operator's
/// answer, unread after the channel's `email_after`, reaches the visitor by mail, threaded on
/// the conversation, and the visitor's reply to that mail lands in the same conversation. An
/// answer the visitor read (the open window reports it) is marked read and mailed to nobody.
#[tokio::test]
async fn widget_an_answer_the_visitor_did_not_read_goes_to_their_e_mail() {
    let Some(server) = okno_testkit::mail::MailServer::shared() else { return };
    let app = TestApp::spawn().await;
    let okno = okno_testkit::email::okno_mailbox(server);
    app.email_channel(server, &okno).await;
    let ch = app.widget_channel(&[SITE], json!({"title": "Магазин", "email_after": 2})).await;
    let mut v = app.visitor(&ch, SITE);
    assert_eq!(v.session(None).await.status, 200);
    let olga = okno_testkit::email::person_mailbox(server, "olga");
    let asked = v.post("/messages", json!({"echo_id": "q1", "text": "Есть ли размер 42?", "email": olga})).await;
    assert_eq!(asked.status, 200, "{asked:?}");
    let conv = conversation_of(&app, asked.body["id"].as_str().unwrap()).await;

    // The operator answers while the visitor is away.
    let answer = |text: &'static str| {
        let app = &app;
        let conv = conv.clone();
        async move {
            let r = app.post(&format!("/api/v1/conversations/{conv}/messages"), json!({"text": text})).await;
            assert_eq!(r.status, 202, "{r:?}");
            r.body["id"].as_str().unwrap().to_string()
        }
    };
    let first = answer("Да, есть. Отложить для вас?").await;
    let mail = server.wait_for(&olga, 1).await;
    let parsed = okno_channel_email::parse(&mail[0]).unwrap();
    assert_eq!(parsed.subject.as_deref(), Some("Магазин: вам ответили"));
    assert!(parsed.text.contains("Да, есть. Отложить для вас?"), "{}", parsed.text);
    assert!(parsed.text.starts_with("Пока вас не было в чате"), "{}", parsed.text);
    let widget_answer = app.get(&format!("/api/v1/messages/{first}")).await.body;
    assert_eq!(widget_answer["status"], "sent", "still unread in the chat: {widget_answer}");

    // Back on the site with the window open: the next answer is read, and mailed to nobody.
    let second = answer("Отложили до пятницы.").await;
    let status = |id: String| {
        let app = &app;
        async move { app.get(&format!("/api/v1/messages/{id}")).await.body["status"].clone() }
    };
    for _ in 0..50 {
        let read = v.post("/read", json!({"last": second})).await;
        assert_eq!(read.status, 200, "{read:?}");
        if status(second.clone()).await == "read" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status(second.clone()).await, "read", "marked read once it was sent");
    assert_eq!(status(first.clone()).await, "read", "and the answer before it");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(server.count(&olga).await, 1, "a read answer is not mailed");
    // Olga answers the mail: the same conversation.
    let raw = String::from_utf8_lossy(&mail[0]).replace("\r\n ", " ").replace("\r\n\t", " ");
    let reply_to = raw
        .lines()
        .find_map(|l| l.strip_prefix("Reply-To:"))
        .and_then(|v| v.split(['<', '>']).nth(1))
        .expect("a tagged Reply-To")
        .to_string();
    assert!(reply_to.contains(&format!("+c{conv}@")), "{reply_to}");
    let reply = format!(
        "From: Ольга <{olga}>\r\nTo: {reply_to}\r\nSubject: Re: Магазин: вам ответили\r\n\
         Message-ID: <olga-1@shop.test>\r\nIn-Reply-To: <{}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nДа, отложите, пожалуйста.\r\n",
        parsed.message_id.clone().unwrap_or_default()
    );
    server.deliver(reply.as_bytes(), &olga, &[&reply_to]).await.unwrap();
    let m = app.wait_message(|m| m["text"] == "Да, отложите, пожалуйста.").await;
    assert_eq!(m["conversation_id"], conv.as_str(), "{m}");

    let bad = v.post("/read", json!({"up_to": second})).await;
    assert_eq!((bad.status, bad.body["error"]["code"].as_str()), (400, Some("invalid_body")), "{bad:?}");
}

/// An administrator connects a widget from the channels page: the form made from the schema
/// takes the sites as one line; a site that is no origin is refused and nothing is saved.
#[tokio::test]
async fn widget_connects_from_the_administrators_form() {
    use crate::ui::{hidden, operator, Client, PASSWORD};
    let app = TestApp::spawn().await;
    operator(&app, "admin", okno_domain::model::Role::Admin).await;
    let mut c = Client::new(&app);
    assert_eq!(c.login("admin", PASSWORD).await.status, 303);
    let page = c.get("/ui/admin/channels").await.body;
    assert!(page.contains("id=\"channel-form-widget\""), "the widget's form is offered");
    let csrf = hidden(&page, "csrf");
    let form = |origins: &'static str| {
        let mut f = vec![("csrf", csrf.clone()), ("kind", "widget".into()), ("name", "Сайт".into())];
        f.extend([
            ("origins", origins.into()),
            ("title", "Чат".into()),
            ("greeting", String::new()),
            ("color", String::new()),
        ]);
        f.push(("secret", String::new()));
        f
    };
    let bad = form("shop.example/catalog");
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = c.post("/ui/admin/channels", &bad).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("id=\"channel-error\""));
    assert!(app.running().engine.store.list_channels().await.unwrap().is_empty(), "nothing saved");
    let good = form("https://shop.example, https://www.shop.example");
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let accepted = c.post("/ui/admin/channels", &good).await;
    assert_eq!((accepted.status, accepted.location.as_deref()), (303, Some("/ui/admin/channels")), "{}", accepted.body);
    let channels = app.running().engine.store.list_channels().await.unwrap();
    let ch = channels.iter().find(|ch| ch.kind.as_str() == "widget").expect("the widget is connected");
    assert_eq!(ch.config["origins"], json!(["https://shop.example", "https://www.shop.example"]));
    assert_eq!(ch.config["secret"].as_str().map(str::len), Some(64), "a secret made by okno");
    assert!(ch.config.get("greeting").is_none(), "an empty greeting is none");
}

/// A 1×1 PNG.
const PIXEL: &[u8] = b"\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\x0d\x49\x44\x41\x54\x78\xda\x63\x64\x60\xf8\x5f\x0f\x00\x02\x87\x01\x80\xeb\x47\xba\x92\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";

/// A company's site on 127.0.0.1: its origin, and the listener its pages are served on.
async fn shop() -> (String, tokio::net::TcpListener) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    (origin, listener)
}

/// Serves each `(path, html)` on `listener`.
fn serve(listener: tokio::net::TcpListener, pages: Vec<(&'static str, String)>) {
    let mut router = axum::Router::new();
    for (path, html) in pages {
        router = router.route(path, axum::routing::get(move || async move { axum::response::Html(html) }));
    }
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
}

/// The widget in Chromium: a shop's page on 127.0.0.1 with the script tag; the visitor writes,
/// an operator answers in okno's window in a second browser session, the visitor sees the
/// typing and the answer live and the operator sees it read; a reload keeps the history.
#[tokio::test]
async fn widget_works_in_a_real_browser() {
    use okno_testkit::browser::{Browser, BROWSER_TURN};
    let _turn = BROWSER_TURN.lock().await;
    let app = TestApp::spawn().await;
    let (shop, listener) = shop().await;
    let ch = app
        .widget_channel(
            &[&shop],
            json!({"title": "Магазин «Ромашка»", "greeting": "Здравствуйте! Чем помочь?", "color": "#0F766E"}),
        )
        .await;
    let page = format!(
        "<!doctype html><html lang=\"ru\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'; script-src {okno}; connect-src {okno}; img-src {okno}\">\
         <title>Ромашка</title></head><body><h1>Магазин «Ромашка»</h1><p>Цветы с доставкой.</p>\
         <script src=\"{okno}/widget/{ch}.js\" async></script></body></html>",
        okno = app.url
    );
    serve(listener, vec![("/", page)]);

    let Some(b) = Browser::start().await else { return };
    let shadow = "document.querySelector('#okno-widget').shadowRoot";
    b.goto(&format!("{shop}/")).await;
    b.wait_for(10, &format!("return !!document.querySelector('#okno-widget') && !!{shadow}.querySelector('.bubble')"))
        .await;
    b.screenshot("widget-closed").await;
    b.js(&format!("{shadow}.querySelector('.bubble').click()")).await;
    b.wait_for(10, &format!("return {shadow}.querySelector('.msg.okno') !== null")).await;
    let title = b.js(&format!("return {shadow}.querySelector('.head b').textContent")).await;
    assert_eq!(title, "Магазин «Ромашка»");
    b.js(&format!("var t = {shadow}.querySelector('textarea'); t.value = 'Можно доставить сегодня?'; {shadow}.querySelector('.send').click()")).await;

    let m = app.wait_message(|m| m["text"] == "Можно доставить сегодня?").await;
    let conv = m["conversation_id"].as_str().unwrap();

    // An operator in a second browser session opens the conversation in okno's window and
    // answers; the visitor sees "typing…" and then the answer, live.
    crate::ui::operator(&app, "anna", okno_domain::model::Role::Operator).await;
    let Some(op) = Browser::start().await else { return };
    op.login(&app.url, "anna", crate::ui::PASSWORD).await;
    op.open(&format!("{}/ui/conversations/{conv}", app.url)).await;
    op.wait_for(10, "return document.querySelector('#reply-text') && document.querySelector('#thread').innerText.includes('Можно доставить сегодня?')").await;
    op.type_into("#reply-text", "Да, до 21:00 привезём.").await;
    b.wait_for(10, &format!("return {shadow}.querySelector('.typing').textContent.length > 0")).await;
    op.click("#reply-send").await;
    b.wait_for(
        10,
        &format!("return [...{shadow}.querySelectorAll('.msg.okno')].some(e => e.textContent.includes('до 21:00'))"),
    )
    .await;
    // The window is open on a visible page: the answer is marked read, and the operator's
    // thread shows it.
    let answer = app.wait_message(|m| m["text"] == "Да, до 21:00 привезём.").await;
    assert_eq!(answer["author"], "operator:anna");
    let rid = answer["id"].as_str().unwrap().to_string();
    let read = okno_testkit::eventually(10, || async {
        let m = app.get(&format!("/api/v1/messages/{rid}")).await.body;
        (m["status"] == "read").then_some(())
    })
    .await;
    assert!(read.is_some(), "the answer the visitor sees is read");
    op.wait_for(15, "return document.querySelector('#thread li.msg.out[data-status=read]')").await;
    drop(op);

    // A bot's offer with a button.
    let r = app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            json!({"text": "Оформить доставку на сегодня?", "buttons": [[{"text": "Оформить", "data": "order"}]]}),
        )
        .await;
    assert_eq!(r.status, 202);
    b.wait_for(
        10,
        &format!("return [...{shadow}.querySelectorAll('.btns button')].some(x => x.textContent === 'Оформить')"),
    )
    .await;
    b.screenshot("widget-open").await;
    // The bot's button is pressed: a press in okno.
    b.js(&format!("[...{shadow}.querySelectorAll('.btns button')].find(x => x.textContent === 'Оформить').click()"))
        .await;
    app.wait_message(|m| m["button_data"] == "order").await;

    // A file each way: the visitor attaches one, the operator answers with a picture.
    b.js(&format!(
        "var i = {shadow}.querySelector('input[type=file]'); var dt = new DataTransfer(); \
         dt.items.add(new File(['накладная 42'], 'накладная.txt', {{type: 'text/plain'}})); \
         i.files = dt.files; i.dispatchEvent(new Event('change'))"
    ))
    .await;
    let with_file = app.wait_message(|m| m["attachments"][0]["name"] == "накладная.txt").await;
    let att_id = with_file["attachments"][0]["id"].as_str().unwrap().to_string();
    let stored = okno_testkit::eventually(10, || async {
        let r = app
            .http
            .get(format!("{}/api/v1/attachments/{att_id}", app.url))
            .bearer_auth(&app.token)
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())?;
        r.bytes().await.ok()
    })
    .await
    .expect("the visitor's file is stored in okno");
    assert_eq!(stored.as_ref(), "накладная 42".as_bytes());
    let pic = app
        .http
        .post(format!("{}/api/v1/attachments", app.url))
        .query(&[("name", "схема.png")])
        .bearer_auth(&app.token)
        .header("content-type", "image/png")
        .body(PIXEL.to_vec())
        .send()
        .await
        .unwrap();
    let pic_id = pic.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            json!({"text": "Схема проезда", "attachments": [{"id": pic_id}]}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    b.wait_for(
        10,
        &format!(
            "var img = {shadow}.querySelector('.msg.okno img'); return !!img && img.complete && img.naturalWidth === 1"
        ),
    )
    .await;

    // A reload: the same visitor, the history restored.
    b.goto(&format!("{shop}/")).await;
    b.wait_for(10, &format!("return !!document.querySelector('#okno-widget') && !!{shadow}.querySelector('.bubble')"))
        .await;
    b.js(&format!("{shadow}.querySelector('.bubble').click()")).await;
    b.wait_for(
        10,
        &format!("return [...{shadow}.querySelectorAll('.msg')].some(e => e.textContent.includes('до 21:00'))"),
    )
    .await;
    let mine = b.js(&format!("return [...{shadow}.querySelectorAll('.msg.visitor')].map(e => e.textContent)")).await;
    assert!(mine.as_array().unwrap().iter().any(|t| t == "Можно доставить сегодня?"), "{mine}");

    // A phone-sized screen: the window fills it.
    b.screen(Some((390, 844))).await;
    b.wait_for(10, &format!("return {shadow}.querySelector('.win').getBoundingClientRect().width === 390")).await;
    b.screenshot("widget-phone").await;
    b.screen(None).await;
}

/// In English, with a pre-chat form: the visitor is asked their name and e-mail before the
/// first message, and okno's contact has the name. A page passing a forged customer gets the
/// refusal, not a chat.
#[tokio::test]
async fn widget_in_english_asks_the_prechat_form_and_refuses_a_forged_customer() {
    use okno_testkit::browser::{Browser, BROWSER_TURN};
    let _turn = BROWSER_TURN.lock().await;
    let app = TestApp::spawn().await;
    let (shop, listener) = shop().await;
    let prechat = json!([{"field": "name", "required": true}, {"field": "email", "required": true}]);
    let ch = app.widget_channel(&[&shop], json!({"prechat": prechat})).await;
    let tag = format!("<script src=\"{}/widget/{ch}.js\" async></script>", app.url);
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"></head><body><p>Shop</p>{tag}</body></html>"
    );
    let forged = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"></head><body>\
         <script>window.oknoWidgetSettings = {{customer: {{id: \"42\", name: \"Mallory\", hash: \"{}\"}}}};</script>{tag}</body></html>",
        customer_hash("0123456789abcdef0123456789abcdef", "42")
    );
    serve(listener, vec![("/", page), ("/account", forged)]);

    let Some(b) = Browser::start().await else { return };
    let shadow = "document.querySelector('#okno-widget').shadowRoot";
    b.goto(&format!("{shop}/")).await;
    b.wait_for(10, &format!("return !!document.querySelector('#okno-widget') && !!{shadow}.querySelector('.bubble')"))
        .await;
    b.js(&format!("{shadow}.querySelector('.bubble').click()")).await;
    b.wait_for(10, &format!("return {shadow}.querySelector('.form').style.display === 'flex'")).await;
    let placeholders =
        b.js(&format!("return [...{shadow}.querySelectorAll('.form input')].map(i => i.placeholder)")).await;
    assert_eq!(placeholders, json!(["Name *", "E-mail *"]), "the form in the page's language");
    b.js(&format!("{shadow}.querySelector('.form .go').click()")).await;
    let err = b.js(&format!("return {shadow}.querySelector('.form .err').textContent")).await;
    assert_eq!(err, "Please fill in the required fields");
    b.js(&format!(
        "var f = {shadow}.querySelectorAll('.form input'); f[0].value = 'Ann Lee'; f[1].value = 'ann@example.org'; \
         {shadow}.querySelector('.form .go').click()"
    ))
    .await;
    b.wait_for(10, &format!("return {shadow}.querySelector('.form').style.display === 'none'")).await;
    b.js(&format!(
        "var t = {shadow}.querySelector('textarea'); t.value = 'Hello there'; {shadow}.querySelector('.send').click()"
    ))
    .await;
    let m = app.wait_message(|m| m["text"] == "Hello there").await;
    let contact = app.get(&format!("/api/v1/contacts/{}", m["contact_id"].as_str().unwrap())).await;
    assert_eq!(contact.body["name"], "Ann Lee", "{contact:?}");

    // The site's account page passes a customer signed with another secret.
    b.goto(&format!("{shop}/account")).await;
    b.wait_for(10, &format!("return !!document.querySelector('#okno-widget') && !!{shadow}.querySelector('.bubble')"))
        .await;
    b.js(&format!("{shadow}.querySelector('.bubble').click()")).await;
    let note = b.wait_for(10, &format!("return {shadow}.querySelector('.note').textContent")).await;
    assert!(note.as_str().unwrap().contains("identity_refused"), "{note}");
    assert_eq!(b.js(&format!("return {shadow}.querySelectorAll('.msg').length")).await, json!(0), "no chat shown");
}
