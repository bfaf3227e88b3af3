//! Text for Telegram: HTML escaping for `parse_mode=HTML` (so user data and template output
//! can never break the markup) and splitting long texts under the 4096 UTF-16-unit limit on
//! paragraph, line or word boundaries.

/// Most UTF-16 code units Telegram accepts in a text message (after entity parsing).
pub const TEXT_LIMIT: usize = 4096;
/// Most UTF-16 code units in a media caption.
pub const CAPTION_LIMIT: usize = 1024;

/// Escapes `<`, `>`, `&` (and `"` for attribute safety) for Telegram's HTML parse mode.
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

/// A post's text in Telegram's HTML: bold and italic as tags, a mention as a `tg://user` link
/// (which works without a username); everything else escaped.
pub fn render_spans(spans: &[okno_channel::Span]) -> String {
    use okno_channel::Span;
    let mut out = String::new();
    for s in spans {
        match s {
            Span::Plain(t) => out.push_str(&escape_html(t)),
            Span::Bold(t) => out.push_str(&format!("<b>{}</b>", escape_html(t))),
            Span::Italic(t) => out.push_str(&format!("<i>{}</i>", escape_html(t))),
            Span::Mention { user_id, name } => {
                out.push_str(&format!("<a href=\"tg://user?id={}\">{}</a>", escape_html(user_id), escape_html(name)))
            }
        }
    }
    out
}

/// Length as Telegram counts it: UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Splits `text` into parts of at most `limit` UTF-16 units, preferring to cut after a blank
/// line, then after a line break, then after a space; a single over-long word is cut hard.
/// Parts keep their order; nothing is dropped except the separators at the cuts.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while utf16_len(rest) > limit {
        // The longest prefix within the limit, on a char boundary.
        let mut units = 0;
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            let w = c.len_utf16();
            if units + w > limit {
                break;
            }
            units += w;
            end = i + c.len_utf8();
        }
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
        let p = Post::to("-1").bold("Замер <окна>").plain("\n\nАдрес & время").plain("\n\n✅ Задачу взял(а): ");
        let p = p.mention("42", "Иван <Петров>").plain(" (@ivan)").plain("\n\n").italic("ниже");
        assert_eq!(
            render_spans(&p.text),
            "<b>Замер &lt;окна&gt;</b>\n\nАдрес &amp; время\n\n✅ Задачу взял(а): \
             <a href=\"tg://user?id=42\">Иван &lt;Петров&gt;</a> (@ivan)\n\n<i>ниже</i>"
        );
        let id = Post::to("1").mention("1\"><b>", "x");
        assert_eq!(render_spans(&id.text), "<a href=\"tg://user?id=1&quot;&gt;&lt;b&gt;\">x</a>");
    }

    #[test]
    fn escaping_neutralises_markup() {
        assert_eq!(escape_html("<b>1 & 2</b> \"x\""), "&lt;b&gt;1 &amp; 2&lt;/b&gt; &quot;x&quot;");
    }

    #[test]
    fn long_texts_split_on_paragraphs_lines_then_words_in_order() {
        let para = "а".repeat(3000);
        let text = format!("{para}\n\n{para}");
        let parts = split(&text, TEXT_LIMIT);
        assert_eq!(parts, vec![para.clone(), para.clone()]);

        let line = "word ".repeat(1000); // 5000 units, no newlines
        let parts = split(&line, TEXT_LIMIT);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| utf16_len(p) <= TEXT_LIMIT));
        assert_eq!(parts.join(" ").split_whitespace().count(), 1000, "no word lost");

        let emoji = "😀".repeat(3000); // 2 UTF-16 units each, no spaces
        let parts = split(&emoji, TEXT_LIMIT);
        assert!(parts.iter().all(|p| utf16_len(p) <= TEXT_LIMIT));
        assert_eq!(parts.concat(), emoji);
    }

    #[test]
    fn short_texts_stay_whole() {
        assert_eq!(split("hi", TEXT_LIMIT), vec!["hi"]);
        assert_eq!(split("", TEXT_LIMIT), vec![""]);
    }
}
