//! The e-mail channel end to end against the test kit's real Postfix and Dovecot: a mailbox
//! connected through the API (a wrong password refused), a customer's mail (Cyrillic subject
//! in KOI8-R, a 2 MB file) stored as a conversation of the contact with that address, the
//! operator's answer arriving threaded in the customer's mailbox, the customer's answer to it
//! landing in the same conversation, nothing read twice across a restart, a bounce failing the
//! message it answers and marking the address unreachable, a direct send to a contact okno
//! knows only by address, and a broadcast with its subject and a working unsubscribe link.

use std::time::Duration;

use okno_testkit::email::{email_config, okno_mailbox, person_mailbox, PASSWORD};
use okno_testkit::mail::MailServer;
use okno_testkit::{eventually, TestApp};
use serde_json::{json, Value};

use super::sms::BOT;
use super::{final_status, reply};

/// A plain-text mail from `from` to `to`.
fn mail(from: &str, to: &str, subject: &str, id: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Анна Петрова <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{extra}\
         Date: Sun, 06 Dec 2026 12:00:00 +0300\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// Messages of a conversation, oldest first.
async fn messages(app: &TestApp, conv: &str) -> Vec<Value> {
    let mut items = app.get(&format!("/api/v1/conversations/{conv}/messages?limit=100")).await.body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // UUIDv7 ids sort as they were made.
    items.sort_by_key(|m| m["id"].as_str().unwrap_or_default().to_string());
    items
}

/// A header's value in a raw mail (first occurrence, unfolded).
fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n ", " ").replace("\r\n\t", " ");
    head.lines().find_map(|l| {
        l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
    })
}

#[tokio::test]
async fn a_customer_s_mail_becomes_a_conversation_and_the_answers_stay_in_one_thread() {
    let Some(server) = MailServer::shared() else { return };
    let app = TestApp::spawn().await;
    let okno = okno_mailbox(server);
    let anna = person_mailbox(server, "anna");

    // A wrong password is refused with the server's words, and nothing is saved.
    let mut bad = email_config(server, &okno, "Магазин");
    bad["imap"]["password"] = json!("wrong");
    bad["smtp"]["password"] = json!("wrong");
    let refused = app.post("/api/v1/channels", json!({"kind": "email", "name": "Почта", "config": bad})).await;
    assert_eq!((refused.status, refused.code()), (400, "invalid_credentials"), "{refused:?}");
    assert!(app.get("/api/v1/channels").await.body["items"].as_array().unwrap().is_empty());
    let ch = app.email_channel(server, &okno).await;
    let shown = app.get(&format!("/api/v1/channels/{ch}")).await.body;
    assert_eq!(shown["info"]["address"], okno.as_str(), "{shown}");
    assert!(!shown.to_string().contains(PASSWORD), "the password is never shown: {shown}");

    // A KOI8-R subject, a body with quoted history, and a 2 MB file.
    let big: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&big)
    };
    let b64: String = b64.as_bytes().chunks(76).map(|c| format!("{}\r\n", String::from_utf8_lossy(c))).collect();
    let koi8_subject = "=?KOI8-R?B?+sHLwdogMTA0Mg==?="; // «Заказ 1042» in KOI8-R
    let first = format!(
        "From: Анна Петрова <{anna}>\r\nTo: {okno}\r\nSubject: {koi8_subject}\r\nMessage-ID: <first-1042@shop.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Здравствуйте! Когда приедет заказ?\r\n\r\n-- \r\nАнна, ООО «Ромашка»\r\n\
         --B\r\nContent-Type: application/octet-stream; name=\"scan.bin\"\r\nContent-Disposition: attachment; filename=\"scan.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}--B--\r\n"
    );
    server.deliver(first.as_bytes(), &anna, &[&okno]).await.unwrap();
    let m = app.wait_message(|m| m["text"] == "Здравствуйте! Когда приедет заказ?").await;
    let conv = m["conversation_id"].as_str().unwrap().to_string();
    let contact = app.get(&format!("/api/v1/contacts/{}", m["contact_id"].as_str().unwrap())).await.body;
    assert_eq!(contact["email"], anna.as_str(), "the sender is the contact, with their address: {contact}");
    assert_eq!(contact["name"], "Анна Петрова");
    // The file and the whole mail (its text was cut: the signature) are stored.
    let files = eventually(15, || async {
        let m = app.get(&format!("/api/v1/messages/{}", m["id"].as_str().unwrap())).await.body;
        let a = m["attachments"].as_array()?.clone();
        (a.len() == 2 && a.iter().all(|f| f["state"] == "ready")).then_some(a)
    })
    .await
    .expect("both files stored");
    let scan = files.iter().find(|f| f["name"] == "scan.bin").expect("the file");
    let got = app
        .http
        .get(format!("{}/api/v1/attachments/{}", app.url, scan["id"].as_str().unwrap()))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().to_vec(), big, "the 2 MB file byte for byte");
    let original = files.iter().find(|f| f["name"] == "original.eml").expect("the whole mail");
    let got = app
        .http
        .get(format!("{}/api/v1/attachments/{}", app.url, original["id"].as_str().unwrap()))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    let raw = got.bytes().await.unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("Анна, ООО «Ромашка»"), "the signature kept in the original");

    // The operator answers: a threaded mail from the channel's name, tagged Reply-To.
    let answer = reply(&app, &conv, json!({"text": "Завтра с 10 до 14."})).await;
    let sent = final_status(&app, &answer).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let message_id = sent["external_id"].as_str().unwrap().to_string();
    let inbox = server.wait_for(&anna, 1).await;
    let raw = &inbox[0];
    assert_eq!(header(raw, "Message-ID"), Some(format!("<{message_id}>")));
    assert_eq!(header(raw, "In-Reply-To").as_deref(), Some("<first-1042@shop.test>"));
    assert_eq!(header(raw, "References").as_deref(), Some("<first-1042@shop.test>"));
    let parsed = okno_channel_email::parse(raw).unwrap();
    assert_eq!(parsed.subject.as_deref(), Some("Re: Заказ 1042"));
    assert_eq!(parsed.text, "Завтра с 10 до 14.");
    assert_eq!(parsed.from.as_ref().and_then(|p| p.name.as_deref()), Some("Магазин «Окно»"));
    let reply_to = header(raw, "Reply-To").unwrap();
    let tagged = format!("{}+c{conv}@okno.test", okno.split('@').next().unwrap());
    assert!(reply_to.contains(&tagged), "Reply-To carries the conversation: {reply_to}");

    // Anna answers okno's mail: the same conversation, answering okno's message.
    let refs = format!("In-Reply-To: <{message_id}>\r\nReferences: <first-1042@shop.test> <{message_id}>\r\n");
    let again = mail(
        &anna,
        &okno,
        "Re: Заказ 1042",
        "second-1042@shop.test",
        &refs,
        "Спасибо, буду ждать.\r\n\r\n> Завтра с 10 до 14.",
    );
    server.deliver(&again, &anna, &[&okno]).await.unwrap();
    let m2 = app.wait_message(|m| m["text"] == "Спасибо, буду ждать.").await;
    assert_eq!(m2["conversation_id"], conv.as_str());
    assert_eq!(m2["reply_to"], answer.as_str(), "it answers okno's message");
    // The second answer threads onto Anna's latest mail, its References the whole chain.
    let answer2 = reply(&app, &conv, json!({"text": "Пожалуйста!"})).await;
    assert_eq!(final_status(&app, &answer2).await["status"], "sent");
    let inbox = server.wait_for(&anna, 2).await;
    assert_eq!(header(&inbox[1], "In-Reply-To").as_deref(), Some("<second-1042@shop.test>"));
    assert_eq!(
        header(&inbox[1], "References"),
        Some(format!("<first-1042@shop.test> <{message_id}> <second-1042@shop.test>"))
    );

    // Anna's accountant writes to the Reply-To address from her own mailbox, in a new mail
    // (no In-Reply-To): it lands in Anna's conversation, signed with who wrote it, and the
    // accountant is not made one of Anna's addresses.
    let buh = person_mailbox(server, "buh");
    let from_buh = format!(
        "From: Бухгалтерия <{buh}>\r\nTo: {tagged}\r\nSubject: Счёт к заказу 1042\r\nMessage-ID: <buh-1042@shop.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Пришлите, пожалуйста, счёт.\r\n"
    );
    server.deliver(from_buh.as_bytes(), &buh, &[&tagged]).await.unwrap();
    let m3 = app.wait_message(|m| m["text"] == "Пришлите, пожалуйста, счёт.").await;
    assert_eq!(m3["conversation_id"], conv.as_str(), "{m3}");
    assert_eq!(m3["author"], format!("Бухгалтерия <{buh}>").as_str());
    let contact = app.get(&format!("/api/v1/contacts/{}", m["contact_id"].as_str().unwrap())).await.body;
    assert_eq!(contact["identities"].as_array().unwrap().len(), 1, "{contact}");
    assert_eq!(contact["email"], anna.as_str());
}

#[tokio::test]
async fn a_known_contact_is_found_by_address_and_a_restart_mid_fetch_reads_nothing_twice() {
    let Some(server) = MailServer::shared() else { return };
    let mut app = TestApp::spawn().await;
    let okno = okno_mailbox(server);
    let boris = person_mailbox(server, "boris");
    let known = app
        .post("/api/v1/contacts", json!({"external_id": "1c-00042", "name": "Борис", "email": boris.to_uppercase()}))
        .await;
    assert!(known.status == 200 || known.status == 201, "{known:?}");
    let contact = known.body["id"].as_str().unwrap().to_string();
    // Forty mails wait in the folder before okno connects; okno is stopped as soon as it has
    // stored the first, in the middle of reading them.
    const N: usize = 40;
    for n in 1..=N {
        let m = mail(&boris, &okno, "Счёт", &format!("b-{n}@shop.test"), "", &format!("Письмо {n}"));
        server.deliver(&m, &boris, &[&okno]).await.unwrap();
    }
    server.wait_for(&okno, N).await;
    app.email_channel(server, &okno).await;
    let m = app.wait_message(|m| m["text"].as_str().is_some_and(|t| t.starts_with("Письмо"))).await;
    assert_eq!(m["contact_id"], contact.as_str(), "the mail joins the contact with that address");
    let conv = m["conversation_id"].as_str().unwrap().to_string();
    app.restart().await;

    // After the restart the folder is read on from the stored cursor, and a new mail comes too.
    let m = mail(&boris, &okno, "Счёт", "b-last@shop.test", "", "Последнее письмо");
    server.deliver(&m, &boris, &[&okno]).await.unwrap();
    app.wait_message(|m| m["text"] == "Последнее письмо").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Postfix hands mail to Dovecot several at a time, so the folder's order (okno's) need
    // not be the order they were sent in: each once is what counts.
    let mut texts: Vec<String> =
        messages(&app, &conv).await.iter().map(|m| m["text"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(texts.last().map(String::as_str), Some("Последнее письмо"), "the new mail comes last");
    texts.sort();
    let mut expected: Vec<String> = (1..=N).map(|n| format!("Письмо {n}")).collect();
    expected.push("Последнее письмо".into());
    expected.sort();
    assert_eq!(texts, expected, "each mail once");
}

#[tokio::test]
async fn a_bounce_fails_the_message_it_answers_and_opens_no_conversation() {
    let Some(server) = MailServer::shared() else { return };
    let app = TestApp::spawn().await;
    let okno = okno_mailbox(server);
    let ch = app.email_channel(server, &okno).await;
    // A contact with an address no mailbox has: Postfix takes the mail, Dovecot refuses it,
    // and the bounce comes back to okno's mailbox.
    let nobody = okno_testkit::mail::unique_address("nobody", "shop.test");
    let c = app.post("/api/v1/contacts", json!({"name": "Никто", "email": nobody})).await;
    let contact = c.body["id"].as_str().unwrap().to_string();
    let sent =
        app.post("/api/v1/messages", json!({"contact_id": contact, "channel_id": ch, "text": "Ваш заказ готов"})).await;
    assert_eq!(sent.status, 202, "a contact known by address is reached by e-mail: {sent:?}");
    let id = sent.body["id"].as_str().unwrap().to_string();
    let failed = eventually(20, || async {
        let m = app.get(&format!("/api/v1/messages/{id}")).await.body;
        (m["status"] == "failed").then_some(m)
    })
    .await;
    let Some(failed) = failed else {
        panic!("the bounce fails the message: {}", app.get(&format!("/api/v1/messages/{id}")).await.body)
    };
    assert!(failed["error"].as_str().unwrap().contains("came back"), "{failed}");
    let convs = app.get("/api/v1/conversations?limit=100").await.body;
    assert_eq!(
        convs["items"].as_array().unwrap().len(),
        1,
        "only okno's own conversation, none for the bounce: {convs}"
    );
    // The address is marked unreachable: the next notification is not tried there.
    let contact = app.get(&format!("/api/v1/contacts/{contact}")).await.body;
    assert_eq!(contact["identities"][0]["blocked"], true, "{contact}");
}

#[tokio::test]
async fn a_refusal_fails_the_send_with_the_server_s_words() {
    let Some(server) = MailServer::shared() else { return };
    let app = TestApp::spawn().await;
    let okno = okno_mailbox(server);
    let vera = person_mailbox(server, "vera");
    let ch = app.email_channel(server, &okno).await;
    let c = app.post("/api/v1/contacts", json!({"name": "Вера", "email": vera})).await;
    let contact = c.body["id"].as_str().unwrap().to_string();
    server.refuse_next(&vera, "550 5.7.1 Mailbox disabled for policy reasons");
    let sent = app.post("/api/v1/messages", json!({"contact_id": contact, "channel_id": ch, "text": "Первое"})).await;
    let id = sent.body["id"].as_str().unwrap().to_string();
    let failed = final_status(&app, &id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("Mailbox disabled for policy reasons"), "{failed}");
    // The next goes through.
    let sent = app.post("/api/v1/messages", json!({"contact_id": contact, "channel_id": ch, "text": "Второе"})).await;
    let id = sent.body["id"].as_str().unwrap().to_string();
    assert_eq!(final_status(&app, &id).await["status"], "sent");
    let got = server.wait_for(&vera, 1).await;
    assert_eq!(okno_channel_email::parse(&got[0]).unwrap().text, "Второе");
}

/// The unsubscribe link in a mail's text.
fn unsubscribe_link(text: &str) -> String {
    let at = text.find("http").expect("a link in the text");
    text[at..].split_whitespace().next().unwrap().to_string()
}

#[tokio::test]
async fn a_broadcast_by_e_mail_has_its_subject_and_a_link_that_unsubscribes_on_post_only() {
    let Some(server) = MailServer::shared() else { return };
    let app = TestApp::spawn().await;
    let okno = okno_mailbox(server);
    app.email_channel(server, &okno).await;
    let (anna, boris) = (person_mailbox(server, "anna"), person_mailbox(server, "boris"));
    let mut ids = Vec::new();
    for (name, address) in [("Анна", &anna), ("Борис", &boris)] {
        let c = app.post("/api/v1/contacts", json!({"name": name, "email": address, "groups": ["Клиенты"]})).await;
        ids.push(c.body["id"].as_str().unwrap().to_string());
    }
    let b = app
        .post(
            "/api/v1/broadcasts",
            json!({"name": "Декабрь", "audience": {"groups": ["Клиенты"]}, "subject": "{{ contact.name }}, скидка 10%",
                   "text": "{{ contact.name }}, для вас скидка 10% до конца декабря.", "unsubscribe_button": "Отписаться"}),
        )
        .await;
    assert_eq!(b.status, 201, "{b:?}");
    let broadcast = b.body["id"].as_str().unwrap().to_string();
    let (to_anna, to_boris) = (server.wait_for(&anna, 1).await, server.wait_for(&boris, 1).await);
    let anna_mail = okno_channel_email::parse(&to_anna[0]).unwrap();
    assert_eq!(anna_mail.subject.as_deref(), Some("Анна, скидка 10%"), "the subject, personal");
    assert!(anna_mail.text.starts_with("Анна, для вас скидка 10% до конца декабря."), "{}", anna_mail.text);
    assert!(!anna_mail.text.contains("1. Отписаться"), "the button is a link, not a numbered line");
    assert!(anna_mail.in_reply_to.is_empty(), "a broadcast starts its own thread");
    let boris_mail = okno_channel_email::parse(&to_boris[0]).unwrap();
    let link = unsubscribe_link(&boris_mail.full_text);

    // Following the link shows a page and unsubscribes nobody; a forged link is refused.
    let page = app.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("Отписаться от рассылки?"));
    let forged = link.replace("boris", "anna");
    let refused = app.http.post(&forged).body("List-Unsubscribe=One-Click").send().await.unwrap();
    assert_eq!(refused.status(), 403, "a link okno did not make unsubscribes nobody");
    let report = app.get(&format!("/api/v1/broadcasts/{broadcast}/report")).await.body;
    assert_eq!(report["unsubscribed"], 0, "{report}");

    // The mail client's one-click POST unsubscribes Boris, once however often it comes.
    for _ in 0..2 {
        let done = app
            .http
            .post(&link)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 200);
        assert!(done.text().await.unwrap().contains("Вы отписались"));
    }
    let report = eventually(10, || async {
        let r = app.get(&format!("/api/v1/broadcasts/{broadcast}/report")).await.body;
        (r["unsubscribed"] == 1).then_some(r)
    })
    .await;
    assert!(report.is_some(), "{}", app.get(&format!("/api/v1/broadcasts/{broadcast}/report")).await.body);
    let told = server.wait_for(&boris, 2).await;
    assert!(okno_channel_email::parse(&told[1]).unwrap().text.starts_with("Вы отписались"), "Boris is told");
    let contact = app.get(&format!("/api/v1/contacts/{}", ids[1])).await.body;
    assert_eq!(contact["identities"][0]["opted_out"], true, "{contact}");
}

/// The mail among `got` whose text starts with `start`.
fn parsed_starting(got: &[Vec<u8>], start: &str) -> okno_channel_email::ParsedMail {
    got.iter()
        .map(|raw| okno_channel_email::parse(raw).unwrap())
        .find(|m| m.text.starts_with(start))
        .unwrap_or_else(|| panic!("a mail starting «{start}» among {}", got.len()))
}

#[tokio::test]
async fn a_menu_bot_answers_in_numbered_lines_and_a_mailed_code_links_the_address() {
    let Some(server) = MailServer::shared() else { return };
    let app = TestApp::spawn().await;
    let okno = okno_mailbox(server);
    let ch = app.email_channel(server, &okno).await;
    super::put_bot(&app, &ch, BOT).await;

    // The menu by mail: numbered lines, answered with a number in a reply that quotes it.
    let gleb = person_mailbox(server, "gleb");
    server.deliver(&mail(&gleb, &okno, "Вопрос", "g-1@shop.test", "", "привет"), &gleb, &[&okno]).await.unwrap();
    // Postfix may hand over the two mails (okno's "not understood" and the menu) in any order.
    let got = server.wait_for(&gleb, 2).await;
    let menu = parsed_starting(&got, "Здравствуйте!");
    assert_eq!(menu.text, "Здравствуйте! Выберите пункт.\n1. Доставка\n2. Оператор");
    assert_eq!(menu.subject.as_deref(), Some("Re: Вопрос"));
    let menu_id = menu.message_id.clone().unwrap();
    let answer = mail(
        &gleb,
        &okno,
        "Re: Вопрос",
        "g-2@shop.test",
        &format!("In-Reply-To: <{menu_id}>\r\n"),
        "1\r\n\r\n06.12.2026 12:00, Магазин «Окно» пишет:\r\n> Здравствуйте! Выберите пункт.\r\n> 1. Доставка\r\n> 2. Оператор",
    );
    server.deliver(&answer, &gleb, &[&okno]).await.unwrap();
    let got = server.wait_for(&gleb, 3).await;
    let next = parsed_starting(&got, "Доставляем");
    assert!(next.text.starts_with("Доставляем по городу за 2 часа.\n1. Назад"), "{:?}", next.text);

    // A one-time code mailed from another address links that address to the business's contact.
    let c = app.post("/api/v1/contacts", json!({"external_id": "emp-42", "name": "Иван Петров"})).await;
    let contact_id = c.body["id"].as_str().unwrap().to_string();
    let link = app.post(&format!("/api/v1/contacts/{contact_id}/link"), json!({})).await;
    assert_eq!(link.status, 201, "{link:?}");
    let code = link.body["code"].as_str().unwrap().to_string();
    let ivan = person_mailbox(server, "ivan");
    server.deliver(&mail(&ivan, &okno, "Код", "i-1@shop.test", "", &code), &ivan, &[&okno]).await.unwrap();
    let confirm = server.wait_for(&ivan, 1).await;
    assert_eq!(okno_channel_email::parse(&confirm[0]).unwrap().text, "Готово! Ваш аккаунт связан: Иван Петров.");
    let linked = app.get(&format!("/api/v1/contacts/{contact_id}")).await.body;
    assert_eq!(linked["identities"][0]["kind"], "email", "{linked}");
    assert_eq!(linked["identities"][0]["user_id"], ivan.as_str());
}
