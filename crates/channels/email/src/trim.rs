//! The new text of a reply: quoted history and the signature cut off, as an operator wants to
//! read it. The full text is kept beside it.

/// The text a person wrote in this mail: everything before the first quote header (`On … wrote:`,
/// `… пишет:`, `-----Original Message-----`, Outlook's `From:/Sent:` block), without `>` lines
/// and without the signature (`-- `, "Sent from my iPhone"). A mail that is nothing but quotes
/// keeps its whole text.
pub fn visible_text(body: &str) -> String {
    let body = body.replace("\r\n", "\n");
    let lines: Vec<&str> = body.lines().collect();
    let mut end = lines.len();
    for i in 0..lines.len() {
        if let Some(start) = quote_header_at(&lines, i) {
            end = start;
            break;
        }
        if is_signature_delimiter(lines[i]) {
            end = i;
            break;
        }
    }
    let mut kept: Vec<&str> = lines[..end].iter().copied().filter(|l| !is_quoted(l)).collect();
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    if kept.last().is_some_and(|l| is_device_signature(l)) {
        kept.pop();
    }
    let text = kept.join("\n");
    let text = text.trim_matches('\n').trim_end();
    if text.trim().is_empty() {
        body.trim().to_string()
    } else {
        text.to_string()
    }
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

fn is_signature_delimiter(line: &str) -> bool {
    line == "-- " || line == "--"
}

/// "Sent from my iPhone", "Отправлено с iPhone", "Get Outlook for Android"…
fn is_device_signature(line: &str) -> bool {
    let l = line.trim().to_lowercase();
    if l.chars().count() > 60 {
        return false;
    }
    const STARTS: [&str; 8] = [
        "sent from my ",
        "sent from mail for ",
        "sent from yahoo mail",
        "get outlook for ",
        "отправлено с ",
        "отправлено из ",
        "получить outlook для ",
        "с уважением, отправлено",
    ];
    STARTS.iter().any(|s| l.starts_with(s))
}

/// Where a quote header starts when one starts at line `i` (it may take two lines when a client
/// wrapped "On … wrote:").
fn quote_header_at(lines: &[&str], i: usize) -> Option<usize> {
    let line = lines[i].trim();
    let lower = line.to_lowercase();
    // -----Original Message----- / -----Исходное сообщение----- / ----- Original Message -----
    if lower.starts_with("-----")
        && (lower.contains("original message")
            || lower.contains("исходное сообщение")
            || lower.contains("оригинальное сообщение"))
    {
        return Some(i);
    }
    if is_attribution(&lower) {
        return Some(i);
    }
    if i + 1 < lines.len() {
        let joined = format!("{} {}", lower, lines[i + 1].trim().to_lowercase());
        if !lower.is_empty() && !is_attribution_end(&lower) && is_attribution(&joined) {
            return Some(i);
        }
    }
    if is_header_field(&lower, &["from:", "от:", "*from:*", "*от:*"]) && outlook_block_follows(lines, i) {
        // Outlook draws a rule of underscores above the block.
        let mut start = i;
        while start > 0 && lines[start - 1].trim().is_empty() {
            start -= 1;
        }
        if start > 0 && is_rule(lines[start - 1]) {
            return Some(start - 1);
        }
        return Some(i);
    }
    None
}

fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.chars().count() >= 10 && t.chars().all(|c| c == '_' || c == '-')
}

fn is_attribution_end(lower: &str) -> bool {
    lower.ends_with("wrote:")
        || lower.ends_with("пишет:")
        || lower.ends_with("написал:")
        || lower.ends_with("написала:")
        || lower.ends_with("написал(а):")
}

/// "On Sun, 6 Dec 2026 at 15:30, Ivan <ivan@mail.ru> wrote:", "06.12.2026 15:30, Иван Петров
/// пишет:", Gmail's Russian "вс, 6 дек. 2026 г. в 15:30, Иван <ivan@mail.ru>:".
fn is_attribution(lower: &str) -> bool {
    if lower.chars().count() > 300 {
        return false;
    }
    let has_digit = lower.chars().any(|c| c.is_ascii_digit());
    if lower.ends_with("wrote:") && (lower.starts_with("on ") || has_digit) {
        return true;
    }
    if (lower.ends_with("пишет:")
        || lower.ends_with("написал:")
        || lower.ends_with("написала:")
        || lower.ends_with("написал(а):"))
        && has_digit
    {
        return true;
    }
    lower.ends_with(">:") && lower.contains('@') && has_digit && lower.contains(',')
}

fn is_header_field(lower: &str, names: &[&str]) -> bool {
    names.iter().any(|n| lower.starts_with(n))
}

/// An Outlook quote block: `From:`/`От:` followed within a few lines by `Sent:`/`Отправлено:`
/// or `Date:`/`Дата:`, and `To:`/`Кому:` or `Subject:`/`Тема:`.
fn outlook_block_follows(lines: &[&str], i: usize) -> bool {
    let next: Vec<String> = lines.iter().skip(i + 1).take(5).map(|l| l.trim().to_lowercase()).collect();
    let has = |names: &[&str]| next.iter().any(|l| is_header_field(l, names));
    has(&["sent:", "отправлено:", "date:", "дата:", "*sent:*", "*отправлено:*"])
        && has(&["to:", "кому:", "subject:", "тема:", "*to:*", "*кому:*", "*subject:*", "*тема:*"])
}

#[cfg(test)]
mod tests {
    use super::visible_text;

    #[test]
    fn quoted_lines_after_an_english_attribution_are_cut() {
        let body = "Thanks, that works.\n\nOn Sun, Dec 6, 2026 at 3:30 PM Shop <support@shop.ru> wrote:\n> Try again\n> please\n";
        assert_eq!(visible_text(body), "Thanks, that works.");
    }

    #[test]
    fn a_wrapped_attribution_is_cut_from_its_first_line() {
        let body = "Ок.\n\nOn Sun, Dec 6, 2026 at 3:30 PM Магазин «Окно» <support@shop.ru>\nwrote:\n> Ваш заказ готов";
        assert_eq!(visible_text(body), "Ок.");
    }

    #[test]
    fn russian_attributions_are_cut() {
        for header in [
            "06.12.2026 15:30, Магазин пишет:",
            "Воскресенье, 6 декабря 2026, 15:30 +03:00 от Магазин <support@shop.ru>:",
            "вс, 6 дек. 2026 г. в 15:30, Магазин <support@shop.ru>:",
            "6 декабря 2026 г., в 15:30, Иван Петров написал(а):",
        ] {
            let body = format!("Да, адрес верный.\n\n{header}\n> Подтвердите адрес\n");
            assert_eq!(visible_text(&body), "Да, адрес верный.", "{header}");
        }
    }

    #[test]
    fn an_outlook_block_is_cut_with_its_rule() {
        let body = "Добрый день!\nСчёт оплачен.\n\n________________________________\nОт: Магазин <support@shop.ru>\nОтправлено: 6 декабря 2026 г. 15:30\nКому: Иван\nТема: Счёт\n\nОплатите счёт";
        assert_eq!(visible_text(body), "Добрый день!\nСчёт оплачен.");
        let body = "Paid.\n\n-----Original Message-----\nFrom: Shop\nSent: Sunday\nTo: me\n";
        assert_eq!(visible_text(body), "Paid.");
        let body = "Оплачено.\n\nFrom: Shop <support@shop.ru>\nSent: Sunday, December 6, 2026 3:30 PM\nTo: Ivan\nSubject: Invoice\n";
        assert_eq!(visible_text(body), "Оплачено.");
    }

    #[test]
    fn a_from_line_without_a_block_is_the_persons_text() {
        let body = "From: Moscow, to: Kazan.\nPlease ship it there.";
        assert_eq!(visible_text(body), body);
    }

    #[test]
    fn signatures_are_cut() {
        assert_eq!(visible_text("Hello\n\n-- \nIvan Petrov\n+7 900 000-00-00"), "Hello");
        assert_eq!(visible_text("Привет\n\nОтправлено с iPhone"), "Привет");
        assert_eq!(visible_text("Hi\n\nSent from my iPhone\n"), "Hi");
        assert_eq!(visible_text("Hi\n\nGet Outlook for Android"), "Hi");
    }

    #[test]
    fn interleaved_quotes_leave_the_answers() {
        let body = "> Your size?\n42\n> Colour?\nBlack";
        assert_eq!(visible_text(body), "42\nBlack");
    }

    #[test]
    fn a_mail_of_quotes_only_keeps_everything() {
        let body = "> forwarded text\n> more";
        assert_eq!(visible_text(body), body);
    }

    #[test]
    fn text_without_quotes_is_unchanged() {
        let body = "Line one\n\n  indented line\nМожно ли вернуть товар? Да — wrote: no.";
        assert_eq!(visible_text(body), body);
    }
}
