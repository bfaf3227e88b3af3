//! Real-shaped mails from the clients people use, read as okno reads them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use okno_channel_email::{parse, Bounce, MailKind, ParsedMail};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn read(name: &str) -> ParsedMail {
    parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn a_thunderbird_reply_shows_only_the_new_text() {
    let mail = read("thunderbird_reply.eml");
    let from = mail.from.as_ref().unwrap();
    assert_eq!(from.address, "ivan.petrov@mail.ru");
    assert_eq!(from.name.as_deref(), Some("Иван Петров"));
    assert_eq!(mail.subject.as_deref(), Some("Re: Заказ №1042: подтвердите адрес"));
    assert_eq!(mail.message_id.as_deref(), Some("8f3c2a1e-5b7d-4c19-9e0a-7d2b1c4e6f80@mail.ru"));
    assert_eq!(mail.in_reply_to, ["okno.01JEXAMPLE0001@shop.ru"]);
    assert_eq!(mail.references, ["okno.01JEXAMPLE0001@shop.ru"]);
    assert_eq!(
        mail.text,
        "Добрый день!\n\nДа, адрес доставки верный: Казань, ул. Баумана, 12.\nЖду курьера завтра после 14:00."
    );
    assert!(mail.full_text.contains("> Подтвердите, пожалуйста, адрес доставки заказа №1042."));
    assert!(mail.full_text.contains("Иван Петров\n+7 900 123-45-67"));
    assert_eq!(mail.kind, MailKind::Personal);
    assert_eq!(mail.reply_tag("support@shop.ru").as_deref(), Some("c42"));
}

#[test]
fn an_rfc2231_cyrillic_file_name_is_decoded() {
    let mail = read("thunderbird_reply.eml");
    assert_eq!(mail.attachments.len(), 1);
    let file = &mail.attachments[0];
    assert_eq!(file.name, "Реквизиты ООО.pdf");
    assert_eq!(file.mime, "application/pdf");
    assert!(file.bytes.starts_with(b"%PDF-1.4\n"));
    assert!(!file.inline);
}

#[test]
fn the_raw_mail_is_kept_for_download() {
    let raw = fixture("thunderbird_reply.eml");
    assert_eq!(parse(&raw).unwrap().raw, raw);
}

#[test]
fn an_outlook_reply_in_windows_1251_is_decoded_and_trimmed() {
    let mail = read("outlook_reply_cp1251.eml");
    assert_eq!(mail.from.as_ref().unwrap().name.as_deref(), Some("Смирнова Ольга"));
    assert_eq!(mail.subject.as_deref(), Some("RE: Счёт №77 на оплату"));
    assert_eq!(mail.in_reply_to, ["okno.01JEXAMPLE0077@shop.ru"]);
    assert_eq!(
        mail.text,
        "Добрый день.\n\nСчёт оплачен, платёжное поручение во вложении.\n\nС уважением,\nОльга Смирнова\nбухгалтер ООО «Ромашка»"
    );
    assert!(mail.full_text.contains("Здравствуйте! Направляем счёт №77."));
    assert_eq!(mail.attachments.len(), 1);
    let file = &mail.attachments[0];
    assert_eq!(file.name, "Платёжное поручение 77.txt");
    assert_eq!(file.mime, "text/plain");
    assert!(!file.bytes.is_empty());
    assert_eq!(mail.kind, MailKind::Personal);
    assert_eq!(mail.reply_tag("support@shop.ru"), None);
}

#[test]
fn a_gmail_html_only_mail_becomes_plain_text() {
    let mail = read("gmail_html_only.eml");
    assert_eq!(mail.subject.as_deref(), Some("Возврат куртки"));
    assert_eq!(mail.from.as_ref().unwrap().name.as_deref(), Some("Анна Кузнецова"));
    let text = &mail.text;
    assert!(text.starts_with("Здравствуйте!\n\nХочу вернуть куртку «Север» (размер 52) — не подошла."), "{text}");
    assert!(text.contains("https://shop.ru/returns"), "{text}");
    assert!(!text.contains('<') && !text.contains("&laquo;"), "{text}");
    assert!(!text.contains("alert") && !text.contains("display:none"), "{text}");
    assert!(!text.contains("доставлен"), "the quoted history stays out: {text}");
    assert!(!text.contains("gmail"), "{text}");
    assert!(mail.full_text.contains("Ваш заказ №1099 доставлен."));
}

#[test]
fn a_gmail_inline_image_is_a_file() {
    let mail = read("gmail_html_only.eml");
    assert_eq!(mail.attachments.len(), 1);
    let image = &mail.attachments[0];
    assert_eq!(image.name, "ярлык.png");
    assert_eq!(image.mime, "image/png");
    assert!(image.inline);
    assert_eq!(image.content_id.as_deref(), Some("ii_m4b7x2k10"));
    assert!(image.bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
}

#[test]
fn a_koi8_r_mail_is_decoded() {
    let mail = read("koi8r.eml");
    assert_eq!(mail.subject.as_deref(), Some("Вопрос о чайнике"));
    assert_eq!(mail.from.as_ref().unwrap().name.as_deref(), Some("Сергей Иванов"));
    assert_eq!(mail.text, "Здравствуйте.\nПодскажите, когда поступит в продажу чайник \"Заря\"?\n\nСергей");
    assert!(mail.in_reply_to.is_empty() && mail.references.is_empty());
}

#[test]
fn a_postfix_bounce_names_the_recipient_the_status_and_the_returned_message() {
    let mail = read("postfix_dsn.eml");
    let MailKind::Bounce(bounce) = &mail.kind else { panic!("not a bounce: {:?}", mail.kind) };
    assert_eq!(
        bounce,
        &Bounce {
            recipient: Some("no.such.user@yandex.ru".into()),
            action: Some("failed".into()),
            status: Some("5.1.1".into()),
            diagnostic: Some(
                "smtp; 550 5.1.1 <no.such.user@yandex.ru>: Recipient address rejected: User unknown".into()
            ),
            original_message_id: Some("okno.01JEXAMPLE0200@shop.ru".into()),
        }
    );
    assert!(bounce.is_permanent());
    assert!(mail.attachments.is_empty(), "report parts are not files: {:?}", mail.attachments);
    assert!(mail.text.contains("could not\nbe delivered"));
}

#[test]
fn a_vacation_notice_is_an_auto_reply_with_its_thread() {
    let mail = read("vacation_autoreply.eml");
    assert_eq!(mail.kind, MailKind::AutoReply);
    assert_eq!(mail.subject.as_deref(), Some("Автоответ: Счёт №78"));
    assert_eq!(mail.thread_ids(), ["okno.01JEXAMPLE0078@shop.ru"]);
    assert_eq!(mail.reply_tag("support@shop.ru").as_deref(), Some("c77"));
    assert!(mail.text.starts_with("Здравствуйте!\n\nЯ в отпуске до 14 декабря"));
}
