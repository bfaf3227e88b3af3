//! HTML bodies as plain text for the operator: no tags, entities decoded, scripts and styles
//! dropped, links kept as their text followed by the address.

use html2text::render::{TaggedLine, TextDecorator};

/// `html` as plain text (no wrapping: lines break where the HTML breaks them).
pub fn html_to_text(html: &str) -> String {
    let text = html2text::config::with_decorator(Links::default())
        .link_footnotes(false)
        .no_table_borders()
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), 100_000)
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    // html2text pads paragraphs with blank lines; more than one in a row says nothing.
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    for line in lines {
        if line.is_empty() && out.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        out.push(line);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// Renders a link as `text (https://…)`, or the text alone where the address adds nothing
/// (an anchor, a `mailto:` or the text itself).
#[derive(Debug, Default, Clone)]
struct Links {
    open: Vec<String>,
}

impl TextDecorator for Links {
    type Annotation = ();

    fn decorate_link_start(&mut self, url: &str) -> (String, ()) {
        self.open.push(url.to_string());
        (String::new(), ())
    }

    fn decorate_link_end(&mut self) -> String {
        match self.open.pop() {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => format!(" ({url})"),
            _ => String::new(),
        }
    }

    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_em_end(&self) -> String {
        String::new()
    }

    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_strong_end(&self) -> String {
        String::new()
    }

    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }

    fn decorate_code_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_code_end(&self) -> String {
        String::new()
    }

    fn decorate_preformat_first(&self) {}

    fn decorate_preformat_cont(&self) {}

    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, ()) {
        (title.to_string(), ())
    }

    fn header_prefix(&self, _level: usize) -> String {
        String::new()
    }

    fn quote_prefix(&self) -> String {
        "> ".to_string()
    }

    fn unordered_item_prefix(&self) -> String {
        "• ".to_string()
    }

    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }

    fn make_subblock_decorator(&self) -> Self {
        Links::default()
    }

    fn finalise(&mut self, _urls: Vec<String>) -> Vec<TaggedLine<()>> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::html_to_text;

    #[test]
    fn tags_go_and_entities_are_decoded() {
        let html =
            "<html><body><p>Здравствуйте &amp; добрый день&nbsp;&laquo;Окно&raquo;</p><p>5 &lt; 7</p></body></html>";
        assert_eq!(html_to_text(html), "Здравствуйте & добрый день\u{a0}«Окно»\n\n5 < 7");
    }

    #[test]
    fn scripts_and_styles_are_dropped() {
        let html = "<style>p{color:red}</style><script>alert('x')</script><p>Hello</p>";
        assert_eq!(html_to_text(html), "Hello");
    }

    #[test]
    fn links_keep_their_address() {
        let html =
            r#"<p>See <a href="https://shop.ru/orders/42">your order</a> or <a href="mailto:a@b.ru">write</a>.</p>"#;
        assert_eq!(html_to_text(html), "See your order (https://shop.ru/orders/42) or write.");
    }

    #[test]
    fn line_breaks_and_blockquotes_survive() {
        let html = "<div>one<br>two</div><blockquote>quoted</blockquote>";
        assert_eq!(html_to_text(html), "one\ntwo\n\n> quoted");
    }
}
