//! Text for MAX. okno's messages go as plain text (no `format`), so whatever a person or a
//! template wrote is shown exactly as written; only okno's own posts use MAX's HTML, escaped.
//! Long texts are split under the 4,000-character limit on paragraph, line or word boundaries.

use okno_channel::Span;

/// Most characters MAX accepts in a message's text (`NewMessageBody.text` `maxLength`).
pub const TEXT_LIMIT: usize = 4000;

/// Escapes `<`, `>`, `&` and `"` for `format: "html"`.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// A post's text in MAX's HTML: bold and italic as tags, a mention as a `max://user/<id>`
/// link (which notifies the person); everything else escaped.
pub fn render_spans(spans: &[Span]) -> String {
    let mut out = String::new();
    for s in spans {
        match s {
            Span::Plain(t) => out.push_str(&escape_html(t)),
            Span::Bold(t) => out.push_str(&format!("<b>{}</b>", escape_html(t))),
            Span::Italic(t) => out.push_str(&format!("<i>{}</i>", escape_html(t))),
            Span::Mention { user_id, name } => {
                let id: String = user_id.chars().filter(char::is_ascii_digit).collect();
                out.push_str(&format!("<a href=\"max://user/{id}\">{}</a>", escape_html(name)))
            }
        }
    }
    out
}

/// Splits `text` into parts of at most `limit` characters, preferring to cut after a blank
/// line, then after a line break, then after a space; a single over-long word is cut hard.
/// Parts keep their order; nothing is dropped except the separators at the cuts.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > limit {
        let end = rest.char_indices().nth(limit).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..end];
        let cut =
            ["\n\n", "\n", " "].iter().find_map(|sep| window.rfind(sep).filter(|&at| at > 0).map(|at| (at, sep.len())));
        let (head, skip) = match cut {
            Some((at, len)) => (&rest[..at], len),
            None => (window, 0),
        };
        parts.push(head.to_string());
        rest = &rest[head.len() + skip..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_string());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_render_as_html_with_everything_escaped() {
        use okno_channel::Post;
        let p = Post::to("-1").bold("Замер <окна>").plain("\nА & Б ").mention("42\"><b>", "Иван <П>").italic("!");
        assert_eq!(
            render_spans(&p.text),
            "<b>Замер &lt;окна&gt;</b>\nА &amp; Б <a href=\"max://user/42\">Иван &lt;П&gt;</a><i>!</i>"
        );
    }

    #[test]
    fn long_texts_split_on_paragraphs_lines_then_words_in_order() {
        let para = "а".repeat(3000);
        assert_eq!(split(&format!("{para}\n\n{para}"), TEXT_LIMIT), vec![para.clone(), para]);
        let words = "слово ".repeat(1500);
        let parts = split(words.trim_end(), TEXT_LIMIT);
        assert!(parts.len() == 3 && parts.iter().all(|p| p.chars().count() <= TEXT_LIMIT));
        assert_eq!(parts.join(" ").split_whitespace().count(), 1500, "no word lost");
        let emoji = "😀".repeat(9000);
        let parts = split(&emoji, TEXT_LIMIT);
        assert_eq!(parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(), vec![4000, 4000, 1000]);
        assert_eq!(parts.concat(), emoji);
        assert_eq!(split("", TEXT_LIMIT), vec![""]);
    }
}
