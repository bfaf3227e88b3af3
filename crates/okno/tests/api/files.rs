//! Attachments: inbound files fetched by URL into the attachment store (with a size limit),
//! outbound files served behind signed, expiring links.

use okno_testkit::{eventually, Sink, TestApp, TestDb, TlsSite};
use serde_json::json;

use super::*;

#[tokio::test]
async fn inbound_attachment_urls_are_downloaded_and_oversized_ones_noted() {
    let app = TestApp::spawn_on(TestDb::sqlite(), |s| s.limits.max_attachment_bytes = 64 * 1024).await;
    let files = Sink::start(SECRET).await;
    let small = files.serve_file("/files/invoice.pdf", "application/pdf", b"%PDF-1.4 tiny");
    let big = files.serve_file("/files/video.mp4", "video/mp4", &vec![7u8; 100 * 1024]);
    let ch = app.webhook_channel(&format!("{}/out", files.url), SECRET).await;
    let hooks = Sink::start("hook-secret-0123456789").await;
    app.post(
        "/api/v1/webhooks",
        json!({"url": hooks.url, "events": ["message.received"], "secret": "hook-secret-0123456789"}),
    )
    .await;

    let a = app
        .inbound(
            &ch,
            SECRET,
            &json!({"message_id": "m-1", "user": {"id": "u-1"}, "text": "documents",
            "attachments": [{"name": "invoice.pdf", "mime": "application/pdf", "url": small}, {"url": big}]}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let id = a.body["id"].as_str().unwrap().to_string();
    let event = hooks.wait_accepted(1, 10).await;
    let atts = event[0].body["data"]["attachments"].as_array().unwrap().clone();
    assert_eq!(atts[0]["state"], "ready");
    assert_eq!(atts[0]["size"], 13);
    assert_eq!(atts[1]["state"], "failed");
    assert!(atts[1]["note"].as_str().unwrap().contains("larger than"), "{atts:?}");
    assert_eq!(atts[1]["name"], "video.mp4");

    let m = app.get(&format!("/api/v1/messages/{id}")).await;
    let att_id = m.body["attachments"][0]["id"].as_str().unwrap();
    let resp =
        app.http.get(format!("{}/api/v1/attachments/{att_id}", app.url)).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(&resp.bytes().await.unwrap()[..], b"%PDF-1.4 tiny");
    let failed_id = m.body["attachments"][1]["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/api/v1/attachments/{failed_id}")).await.code(), "attachment_not_stored");
}

#[tokio::test]
async fn outbound_attachments_reach_the_receiver_behind_signed_links() {
    let (app, sink, ch) = app_with_channel().await;
    let conv = inbound_conversation(&app, &ch, "u-1").await;
    let up = app
        .http
        .post(format!("{}/api/v1/attachments?name=price.xlsx", app.url))
        .bearer_auth(&app.token)
        .header("content-type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        .body(b"PK fake xlsx".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 201);
    let att: serde_json::Value = up.json().await.unwrap();
    let r = app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            json!({"text": "Прайс", "attachments": [{"id": att["id"]}]}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let got = sink.wait_accepted(1, 10).await;
    let link = got[0].body["attachments"][0]["url"].as_str().unwrap().to_string();
    assert_eq!(got[0].body["attachments"][0]["name"], "price.xlsx");
    assert!(link.starts_with(&app.url), "{link}");
    let file = app.http.get(&link).send().await.unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(&file.bytes().await.unwrap()[..], b"PK fake xlsx");
    let tampered = link.replace("sig=", "sig=00");
    assert_eq!(app.http.get(&tampered).send().await.unwrap().status(), 401);
    let anonymous =
        app.http.get(format!("{}/api/v1/attachments/{}", app.url, att["id"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "the API download needs a token");
}

#[tokio::test]
async fn uploads_over_the_limit_are_413() {
    let app = TestApp::spawn_on(TestDb::sqlite(), |s| s.limits.max_attachment_bytes = 2048).await;
    let resp = app
        .http
        .post(format!("{}/api/v1/attachments?name=big.bin", app.url))
        .bearer_auth(&app.token)
        .body(vec![0u8; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

/// Uploads `bytes` as `name`, claiming `claimed`; returns the attachment id.
async fn upload(app: &TestApp, name: &str, claimed: &str, bytes: &[u8]) -> String {
    let up = app
        .http
        .post(format!("{}/api/v1/attachments", app.url))
        .query(&[("name", name)])
        .bearer_auth(&app.token)
        .header("content-type", claimed)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 201);
    up.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

async fn download(app: &TestApp, id: &str) -> reqwest::header::HeaderMap {
    let resp =
        app.http.get(format!("{}/api/v1/attachments/{id}", app.url)).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.headers().clone()
}

/// The smallest PNG: the signature and an IHDR chunk's start.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

#[tokio::test]
async fn downloads_are_typed_by_their_bytes_and_never_run_in_the_browser() {
    let app = TestApp::spawn().await;
    let page = b"<html><script>alert(document.cookie)</script></html>";
    let disguised = upload(&app, "cat.png", "image/png", page).await;
    let html = upload(&app, "page.html", "text/html", page).await;
    let svg = upload(&app, "logo.svg", "image/svg+xml", b"<svg onload=\"alert(1)\"/>").await;
    let picture = upload(&app, "photo.png", "application/octet-stream", PNG).await;

    for (id, what) in [(&disguised, "HTML claimed as PNG"), (&html, "HTML"), (&svg, "SVG")] {
        let h = download(&app, id).await;
        assert_eq!(h["content-type"], "application/octet-stream", "{what}");
        assert!(h["content-disposition"].to_str().unwrap().starts_with("attachment; "), "{what}: {h:?}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["content-security-policy"], "sandbox; default-src 'none'", "{what}");
    }
    let h = download(&app, &picture).await;
    assert_eq!(h["content-type"], "image/png", "a real picture is shown by its real type");
    assert_eq!(h["content-disposition"], "inline; filename=\"photo.png\"; filename*=UTF-8''photo.png");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "sandbox; default-src 'none'");
}

#[tokio::test]
async fn file_names_are_kept_as_a_safe_base_name_and_sent_per_rfc_6266() {
    let (app, _sink, ch) = app_with_channel().await;
    let files = Sink::start(SECRET).await;
    let url = files.serve_file("/files/x", "text/plain", b"root:x:0:0");
    let a = app
        .inbound(
            &ch,
            SECRET,
            &json!({"message_id": "m-1", "user": {"id": "u-1"},
            "attachments": [{"name": "../../etc/passwd", "url": url}, {"name": "..\\..\\boot.ini\r\nX-Evil: 1", "url": url}]}),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let id = a.body["id"].as_str().unwrap();
    let m = okno_testkit::eventually(10, || async {
        let m = app.get(&format!("/api/v1/messages/{id}")).await;
        m.body["attachments"].as_array().unwrap().iter().all(|a| a["state"] == "ready").then_some(m.body)
    })
    .await
    .expect("the files are fetched");
    assert_eq!(m["attachments"][0]["name"], "passwd");
    assert_eq!(m["attachments"][1]["name"], "boot.iniX-Evil_ 1");
    let h = download(&app, m["attachments"][0]["id"].as_str().unwrap()).await;
    assert_eq!(h["content-disposition"], "attachment; filename=\"passwd\"; filename*=UTF-8''passwd");

    let invoice = upload(&app, "Счёт №5.pdf", "application/pdf", b"%PDF-1.4 invoice").await;
    let h = download(&app, &invoice).await;
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(
        h["content-disposition"],
        "inline; filename=\"____ _5.pdf\"; filename*=UTF-8''%D0%A1%D1%87%D1%91%D1%82%20%E2%84%965.pdf"
    );
}

/// okno's outgoing HTTPS trusts the public web's roots and the extra ones given in
/// `[http] extra_roots_file` (a national root a platform requires, a company's own CA): a file
/// on a site a private CA signed is refused until that CA is given, then downloaded.
#[tokio::test]
async fn outgoing_https_trusts_the_extra_roots_it_is_given() {
    let Some(site) = TlsSite::start().await else { return };
    for trusted in [false, true] {
        let ca = site.ca_file.clone();
        let app = TestApp::spawn_on(TestDb::sqlite(), |s| {
            if trusted {
                s.http.extra_roots_file = Some(ca);
            }
        })
        .await;
        let sink = Sink::start(SECRET).await;
        let ch = app.webhook_channel(&format!("{}/out", sink.url), SECRET).await;
        let body = json!({"message_id": "m-1", "user": {"id": "u-1"}, "text": "статус",
                          "attachments": [{"name": "status.html", "url": site.url}]});
        let a = app.inbound(&ch, SECRET, &body).await;
        assert_eq!(a.status, 200, "{a:?}");
        let id = a.body["id"].as_str().unwrap().to_string();
        let att = eventually(20, || async {
            let m = app.get(&format!("/api/v1/messages/{id}")).await.body;
            let att = m["attachments"][0].clone();
            (att["state"] != "pending").then_some(att)
        })
        .await
        .expect("the download ends");
        if trusted {
            assert_eq!(att["state"], "ready", "{att}");
            assert!(att["size"].as_i64().unwrap() > 0, "{att}");
        } else {
            assert_eq!(att["state"], "failed", "{att}");
            assert!(att["note"].as_str().unwrap().contains("not downloaded"), "{att}");
        }
    }
}
