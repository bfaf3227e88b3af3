//! One-click unsubscription from okno's broadcasts by e-mail (RFC 8058): a broadcast's mail
//! carries a link to the channel's hook address naming the message and the recipient, signed
//! with the channel's own key, in its body and in `List-Unsubscribe` (with
//! `List-Unsubscribe-Post`, so a mail client can unsubscribe without opening a page).
//!
//! ```text
//!  GET  /hooks/{channel}?unsubscribe=<message id>&to=<address>&sig=<hex>  ─► a page with one button
//!  POST the same address (the page's button, or the mail client's one-click) ─► the press of the
//!       broadcast's "unsubscribe" button by that person: opted out, answered, counted
//! ```
//! A GET never unsubscribes: link checkers in mail systems follow every link.

use okno_domain::signing;

/// The query parameters of an unsubscribe link.
const MESSAGE: &str = "unsubscribe";
const TO: &str = "to";
const SIG: &str = "sig";

/// Who unsubscribes from what, as a checked link names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribing {
    /// okno's id of the broadcast's message.
    pub message_id: String,
    /// The recipient's address.
    pub address: String,
}

fn signature(secret: &str, message_id: &str, address: &str) -> String {
    let sig = signing::sign(secret.as_bytes(), format!("unsubscribe\n{message_id}\n{address}").as_bytes());
    sig.trim_start_matches("sha256=")[..32].to_string()
}

/// The link that unsubscribes `address` from the broadcast of okno's message `message_id`.
pub fn link(public_url: &str, channel_id: &str, secret: &str, message_id: &str, address: &str) -> String {
    let address = address.trim().to_lowercase();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "{}/hooks/{channel_id}?{MESSAGE}={}&{TO}={}&{SIG}={}",
        public_url.trim_end_matches('/'),
        enc(message_id),
        enc(&address),
        signature(secret, message_id, &address)
    )
}

/// Reads and checks an unsubscribe link's query: `None` when it is not one; `Some(Err)` when
/// it is one whose signature does not hold.
pub fn check(secret: &str, query: Option<&str>) -> Option<Result<Unsubscribing, &'static str>> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query?.as_bytes()).into_owned().collect();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let message_id = get(MESSAGE)?;
    let (Some(address), Some(sig)) = (get(TO), get(SIG)) else { return Some(Err("the link is incomplete")) };
    if secret.is_empty() || !signing::secrets_equal(&sig, &signature(secret, &message_id, &address)) {
        return Some(Err("the link is not one okno made"));
    }
    Some(Ok(Unsubscribing { message_id, address }))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"ru\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#111}}\
         button{{font-size:1rem;padding:.6rem 1.2rem;border-radius:.4rem;border:1px solid #888;background:#f4f4f4;cursor:pointer}}\
         p.en{{color:#666}}</style></head><body>{body}</body></html>\n"
    )
}

/// The page a person's browser gets for the link: one button that unsubscribes.
pub fn confirm_page(who: &Unsubscribing) -> String {
    page(
        "Отписаться от рассылки",
        &format!(
            "<h1>Отписаться от рассылки?</h1><p>Адрес {address} больше не будет получать рассылки. \
             Ответы на ваши обращения и уведомления по заказам будут приходить по-прежнему.</p>\
             <p class=\"en\">Unsubscribe {address} from mailings? Answers and order notices still come.</p>\
             <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Отписаться · Unsubscribe</button></form>",
            address = escape(&who.address)
        ),
    )
}

/// The page after unsubscribing.
pub fn done_page() -> String {
    page(
        "Вы отписались",
        "<h1>Вы отписались от рассылки</h1><p>Чтобы снова получать рассылки, ответьте на любое наше письмо \
         словом «подписаться».</p><p class=\"en\">You are unsubscribed. Reply «subscribe» to any of our mails \
         to get mailings again.</p>",
    )
}

/// The page for a link that does not hold.
pub fn refused_page(why: &str) -> String {
    page("Ссылка недействительна", &format!("<h1>Ссылка недействительна</h1><p class=\"en\">{}</p>", escape(why)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_checks_back_and_a_changed_one_does_not() {
        let url = link("https://okno.shop.ru/", "ch-1", "s3cret", "01HXYZ", "Anna@Shop.Test");
        assert!(
            url.starts_with("https://okno.shop.ru/hooks/ch-1?unsubscribe=01HXYZ&to=anna%40shop.test&sig="),
            "{url}"
        );
        let query = url.split_once('?').map(|(_, q)| q);
        assert_eq!(
            check("s3cret", query),
            Some(Ok(Unsubscribing { message_id: "01HXYZ".into(), address: "anna@shop.test".into() }))
        );
        assert_eq!(check("other", query), Some(Err("the link is not one okno made")));
        let forged = query.map(|q| q.replace("anna%40shop.test", "boss%40shop.test"));
        assert_eq!(check("s3cret", forged.as_deref()), Some(Err("the link is not one okno made")));
        assert_eq!(check("s3cret", Some("unsubscribe=01HXYZ")), Some(Err("the link is incomplete")));
        assert_eq!(check("s3cret", Some("hub.mode=subscribe")), None, "not an unsubscribe link");
        assert_eq!(check("s3cret", None), None);
        assert_eq!(check("", query), Some(Err("the link is not one okno made")), "no key, no unsubscribing");
    }

    #[test]
    fn the_pages_escape_what_they_show() {
        let page = confirm_page(&Unsubscribing { message_id: "m".into(), address: "<script>@x.ru".into() });
        assert!(page.contains("&lt;script&gt;@x.ru") && !page.contains("<script>@"));
        assert!(page.contains("method=\"post\""));
    }
}
