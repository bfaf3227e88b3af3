//! The platforms added after Telegram — MAX, VK, OK, WhatsApp, Viber, Avito, SMS and e-mail —
//! connected from the administrator's channels page, each against its simulator (e-mail against
//! the test kit's Postfix and Dovecot): the form made from the platform's schema connects it
//! (the platform's own credential check passing), and a refused credential comes back as the
//! form with the platform's reason and nothing saved.

use okno_domain::model::Role;
use okno_testkit::avito::AvitoSim;
use okno_testkit::email::{okno_mailbox, PASSWORD as MAILBOX_PASSWORD};
use okno_testkit::mail::MailServer;
use okno_testkit::max::MaxSim;
use okno_testkit::ok_sim::OkSim;
use okno_testkit::sms::SmsSim;
use okno_testkit::viber::ViberSim;
use okno_testkit::vk::VkSim;
use okno_testkit::whatsapp::WaSim;
use okno_testkit::TestApp;

use super::{hidden, operator, post_form, Client, PASSWORD};

/// One platform's form: what connects, and what the platform refuses.
#[derive(Clone)]
struct Case {
    kind: &'static str,
    good: Vec<(&'static str, String)>,
    bad: Vec<(&'static str, String)>,
}

fn case(kind: &'static str, good: &[(&'static str, &str)], wrong: (&'static str, &str)) -> Case {
    let good: Vec<(&'static str, String)> = good.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let bad =
        good.iter().map(|(k, v)| if *k == wrong.0 { (*k, wrong.1.to_string()) } else { (*k, v.clone()) }).collect();
    Case { kind, good, bad }
}

#[tokio::test]
async fn each_new_platform_connects_from_its_form_and_a_refused_credential_saves_nothing() {
    let app = TestApp::spawn().await;
    operator(&app, "admin", Role::Admin).await;
    let max = MaxSim::start().await;
    max.add_bot("max-form-token-0123456789", "okno_form_max_bot");
    let vk = VkSim::start().await;
    vk.add_group("vk-form-token-0123456789", 218_500_001, "Окна Плюс");
    let ok = OkSim::start().await;
    ok.add_group("ok-form-token-0123456789", 70_000_001, "Окна Плюс");
    let wa = WaSim::start().await;
    wa.add_number("106540352242999", "EAAG-form-token", "+7 900 555-09-09", "Окна Плюс", "wa-form-secret");
    let viber = ViberSim::start().await;
    viber.add_bot("viber-form-token-0123456789", "Окна Плюс", "oknaplus");
    let avito = AvitoSim::start("avito-form-client", "avito-form-secret", 55_500_001).await;
    let sms = SmsSim::start().await;
    sms.add_smsru("smsru-form-api-id", 100.0);

    let cases = [
        case(
            "max",
            &[("token", "max-form-token-0123456789"), ("mode", "polling"), ("api_base", &max.api_base())],
            ("token", "max-wrong"),
        ),
        case(
            "vk",
            &[
                ("token", "vk-form-token-0123456789"),
                ("mode", "polling"),
                ("api_base", &format!("{}/method", vk.api_base())),
            ],
            ("token", "vk-wrong"),
        ),
        case("ok", &[("token", "ok-form-token-0123456789"), ("api_base", &ok.api_base())], ("token", "ok-wrong")),
        case(
            "whatsapp",
            &[
                ("token", "EAAG-form-token"),
                ("phone_number_id", "106540352242999"),
                ("app_secret", "wa-form-secret"),
                ("verify_token", "любое-слово"),
                ("api_base", &wa.api_base()),
            ],
            ("token", "EAAG-wrong"),
        ),
        case(
            "viber",
            &[("token", "viber-form-token-0123456789"), ("welcome", "Здравствуйте!"), ("api_base", &viber.api_base())],
            ("token", "viber-wrong"),
        ),
        case(
            "avito",
            &[
                ("client_id", "avito-form-client"),
                ("client_secret", "avito-form-secret"),
                ("user_id", "55500001"),
                ("api_base", &avito.api_base()),
            ],
            ("client_secret", "avito-wrong"),
        ),
        case(
            "sms",
            &[
                ("provider", "smsru"),
                ("api_id", "smsru-form-api-id"),
                ("sender", "OknaPlus"),
                ("callback_secret", "sms-form-callback-secret"),
                ("api_base", &sms.api_base()),
            ],
            ("api_id", "smsru-wrong"),
        ),
    ];

    let mut cases = cases.to_vec();
    // The e-mail form: a mailbox on this machine's server, unencrypted as the schema allows
    // for 127.0.0.1 only (a company's certificate authority is set through the API).
    if let Some(mail) = MailServer::shared() {
        let own = okno_mailbox(mail);
        let (imap, smtp) = (mail.imap_addr().port().to_string(), mail.smtp_addr().port().to_string());
        let from = format!("Окна Плюс <{own}>");
        cases.push(case(
            "email",
            &[
                ("from", &from),
                ("imap.host", "127.0.0.1"),
                ("imap.port", &imap),
                ("imap.tls", "none"),
                ("imap.username", &own),
                ("imap.password", MAILBOX_PASSWORD),
                ("smtp.host", "127.0.0.1"),
                ("smtp.port", &smtp),
                ("smtp.tls", "none"),
                ("smtp.username", &own),
                ("smtp.password", MAILBOX_PASSWORD),
            ],
            ("smtp.password", "mail-wrong"),
        ));
    }
    let mut c = Client::new(&app);
    assert_eq!(c.login("admin", PASSWORD).await.status, 303);
    let page = c.get("/ui/admin/channels").await.body;
    let csrf = hidden(&page, "csrf");
    for Case { kind, good, bad } in &cases {
        let form = &page[page.find(&format!("id=\"channel-form-{kind}\"")).unwrap_or_else(|| panic!("{kind} form"))..];
        let form = &form[..form.find("</form>").unwrap()];
        for (field, _) in good {
            assert!(form.contains(&format!("name=\"{field}\"")), "{kind}: the form offers `{field}`");
        }
        let submitted = |fields: &[(&'static str, String)]| {
            let mut all = vec![("csrf", csrf.clone()), ("kind", kind.to_string()), ("name", "Окна Плюс".to_string())];
            all.extend(fields.iter().cloned());
            all
        };

        let refused = post_form(&mut c, "/ui/admin/channels", &submitted(bad)).await;
        assert_eq!(refused.status, 400, "{kind}: {}", refused.body);
        let wrong = bad.iter().zip(good).find(|(b, g)| b.1 != g.1).map(|(b, _)| b.1.clone()).unwrap();
        assert!(refused.body.contains("id=\"channel-error\""), "{kind}: the reason shown: {}", refused.body);
        assert!(!refused.body.contains(&wrong), "{kind}: the refused secret is never echoed");
        let stored = app.running().engine.store.list_channels().await.unwrap();
        assert!(!stored.iter().any(|ch| ch.kind.as_str() == *kind), "{kind}: nothing saved on a refusal");

        let accepted = post_form(&mut c, "/ui/admin/channels", &submitted(good)).await;
        assert_eq!(
            (accepted.status, accepted.location.as_deref()),
            (303, Some("/ui/admin/channels")),
            "{kind}: {}",
            accepted.body
        );
        let stored = app.running().engine.store.list_channels().await.unwrap();
        let ch = stored.iter().find(|ch| ch.kind.as_str() == *kind).unwrap_or_else(|| panic!("{kind} connected"));
        assert_eq!(ch.name, "Окна Плюс");
    }
    // What each platform was told on connecting.
    assert!(viber.webhook("viber-form-token-0123456789").is_some(), "Viber's webhook set");
    assert!(avito.webhook().is_some(), "Avito's webhook subscribed");
    assert_eq!(app.running().engine.store.list_channels().await.unwrap().len(), cases.len());
}
