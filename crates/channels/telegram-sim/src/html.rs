//! `parse_mode=HTML` read the way Telegram's server (TDLib's `parse_html`) reads it: the same
//! tag set, the same attribute grammar and the same error texts, so a message okno formats
//! wrongly fails here exactly as it would fail in production.
//!
//! One deliberate difference: TDLib keeps a bare `&` (or an unknown entity such as `&laquo;`)
//! as literal text, while the Bot API documentation says every `&` outside an entity must be
//! written `&amp;`. The simulator enforces the documented rule, so okno cannot come to rely on
//! the server's leniency. A bare `>` is accepted, as TDLib accepts it.

use serde_json::{json, Value};

/// Text after markup parsing, with its entities (offsets and lengths in UTF-16 code units).
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    pub text: String,
    pub entities: Vec<Value>,
}

/// The tags the Bot API documents for HTML formatting.
const TAGS: &[&str] = &[
    "a",
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "tg-emoji",
    "tg-time",
    "code",
    "pre",
    "blockquote",
];

const SURROGATE_ERROR: &str =
    "Text contains invalid Unicode characters after decoding HTML entities, check for unmatched surrogate code units";

/// Attributes the entities need; every other attribute is read and ignored, as TDLib does.
#[derive(Debug, Default)]
struct Attrs {
    href: Option<String>,
    class: Option<String>,
    emoji_id: Option<String>,
    unix: Option<String>,
    format: Option<String>,
    expandable: bool,
}

/// A start tag waiting for its end tag.
#[derive(Debug)]
struct Open {
    tag: String,
    /// UTF-16 offset of the entity in the output text.
    offset: usize,
    /// Byte offset of the entity in the output text (for `<a>` without `href`).
    byte: usize,
    attrs: Attrs,
    /// Set by a nested `<code class="language-x">` that starts where this `<pre>` starts.
    language: Option<String>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

/// Parses Telegram HTML; the error is the reason that follows "can't parse entities: ".
pub(crate) fn parse(src: &str) -> Result<Parsed, String> {
    let b = src.as_bytes();
    let n = b.len();
    let mut out = String::with_capacity(n);
    let mut units = 0usize;
    let mut stack: Vec<Open> = Vec::new();
    let mut entities: Vec<Value> = Vec::new();
    let mut i = 0usize;
    while i < n {
        let c = b[i];
        if c == b'&' {
            match entity(b, i)? {
                Some((ch, next)) => {
                    out.push(ch);
                    units += ch.len_utf16();
                    i = next;
                    continue;
                }
                None => {
                    return Err(format!(
                        "Unsupported HTML entity at byte offset {i}: a \"&\" that is not part of &lt; &gt; &amp; &quot; or a numeric entity must be escaped as &amp;"
                    ))
                }
            }
        }
        if c != b'<' {
            let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            units += ch.len_utf16();
            i += ch.len_utf8();
            continue;
        }

        let begin = i;
        i += 1;
        if i < n && b[i] == b'/' {
            // An end tag: `</b>`, `</b   >` or the anonymous `</>` that closes the last open tag.
            let Some(top_tag) = stack.last().map(|o| o.tag.clone()) else {
                return Err(format!("Unexpected end tag at byte offset {begin}"));
            };
            i += 1;
            let name_start = i;
            while i < n && !is_space(b[i]) && b[i] != b'>' {
                i += 1;
            }
            let name = src[name_start..i].to_ascii_lowercase();
            while i < n && is_space(b[i]) {
                i += 1;
            }
            if i >= n || b[i] != b'>' {
                return Err(format!("Unclosed end tag at byte offset {begin}"));
            }
            i += 1;
            if !name.is_empty() && name != top_tag {
                return Err(format!(
                    "Unmatched end tag at byte offset {begin}, expected \"</{top_tag}>\", found \"</{name}>\""
                ));
            }
            if let Some(open) = stack.pop() {
                close(open, units, &out, &mut stack, &mut entities);
            }
            continue;
        }

        // A start tag: the name runs to the first space or `>`.
        let name_start = i;
        while i < n && !is_space(b[i]) && b[i] != b'>' {
            i += 1;
        }
        if i >= n {
            return Err(format!("Unclosed start tag at byte offset {begin}"));
        }
        let name = src[name_start..i].to_ascii_lowercase();
        if !TAGS.contains(&name.as_str()) {
            return Err(format!("Unsupported start tag \"{name}\" at byte offset {begin}"));
        }
        let mut attrs = Attrs::default();
        loop {
            while i < n && is_space(b[i]) {
                i += 1;
            }
            if i >= n {
                return Err(format!("Unclosed start tag \"{name}\" at byte offset {begin}"));
            }
            if b[i] == b'>' {
                i += 1;
                break;
            }
            let attr_start = i;
            while i < n && !is_space(b[i]) && b[i] != b'=' && b[i] != b'>' {
                i += 1;
            }
            let attr = src[attr_start..i].to_ascii_lowercase();
            if attr.is_empty() {
                return Err(format!("Empty attribute name in the tag \"{name}\" at byte offset {begin}"));
            }
            while i < n && is_space(b[i]) {
                i += 1;
            }
            if i >= n || b[i] != b'=' {
                // `<blockquote expandable>` is the one documented attribute without a value.
                if name == "blockquote" && attr == "expandable" {
                    attrs.expandable = true;
                    continue;
                }
                return Err(format!(
                    "Expected equal sign in declaration of an attribute of the tag \"{name}\" at byte offset {begin}"
                ));
            }
            i += 1;
            while i < n && is_space(b[i]) {
                i += 1;
            }
            if i >= n {
                return Err(format!("Unclosed start tag \"{name}\" at byte offset {begin}"));
            }
            let value = if b[i] == b'"' || b[i] == b'\'' {
                let quote = b[i];
                i += 1;
                let mut v = String::new();
                loop {
                    if i >= n {
                        return Err(format!("Unclosed start tag at byte offset {begin}"));
                    }
                    if b[i] == quote {
                        i += 1;
                        break;
                    }
                    if b[i] == b'&' {
                        // Inside attribute values TDLib keeps unknown entities literally.
                        if let Some((ch, next)) = entity(b, i)? {
                            v.push(ch);
                            i = next;
                            continue;
                        }
                    }
                    let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
                    v.push(ch);
                    i += ch.len_utf8();
                }
                v
            } else {
                // An unquoted value is an SGML name token: letters, digits, '.', '-'.
                let token_start = i;
                while i < n && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'-') {
                    i += 1;
                }
                if i >= n || (!is_space(b[i]) && b[i] != b'>') {
                    return Err(format!("Unexpected end of name token at byte offset {token_start}"));
                }
                src[token_start..i].to_ascii_lowercase()
            };
            match attr.as_str() {
                "href" if name == "a" => attrs.href = Some(value),
                "class" => attrs.class = Some(value),
                "emoji-id" => attrs.emoji_id = Some(value),
                "unix" => attrs.unix = Some(value),
                "format" => attrs.format = Some(value),
                _ => {}
            }
        }
        if name == "span" && attrs.class.as_deref() != Some("tg-spoiler") {
            return Err(format!("Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"));
        }
        stack.push(Open { tag: name, offset: units, byte: out.len(), attrs, language: None });
    }
    if let Some(open) = stack.last() {
        return Err(format!("Can't find end tag corresponding to start tag \"{}\"", open.tag));
    }
    entities.sort_by(|a, b| {
        let key = |e: &Value| (e["offset"].as_u64().unwrap_or(0), e["length"].as_u64().unwrap_or(0));
        let (ao, al) = key(a);
        let (bo, bl) = key(b);
        ao.cmp(&bo).then(bl.cmp(&al))
    });
    Ok(Parsed { text: out, entities })
}

/// Turns a closed tag into its MessageEntity; empty entities are dropped, as Telegram drops them.
fn close(open: Open, units: usize, out: &str, stack: &mut [Open], entities: &mut Vec<Value>) {
    let length = units - open.offset;
    if open.tag == "code" {
        if let Some(lang) =
            open.attrs.class.as_deref().and_then(|c| c.strip_prefix("language-")).filter(|l| !l.is_empty())
        {
            if let Some(parent) = stack.last_mut() {
                if parent.tag == "pre" && parent.offset == open.offset {
                    parent.language = Some(lang.to_string());
                    return;
                }
            }
        }
    }
    if length == 0 {
        return;
    }
    let base = |kind: &str| json!({"type": kind, "offset": open.offset, "length": length});
    let entity = match open.tag.as_str() {
        "b" | "strong" => base("bold"),
        "i" | "em" => base("italic"),
        "u" | "ins" => base("underline"),
        "s" | "strike" | "del" => base("strikethrough"),
        "span" | "tg-spoiler" => base("spoiler"),
        "code" => base("code"),
        "pre" => {
            let mut e = base("pre");
            if let Some(lang) = open.language {
                e["language"] = lang.into();
            }
            e
        }
        "blockquote" => base(if open.attrs.expandable { "expandable_blockquote" } else { "blockquote" }),
        "a" => {
            let url = open.attrs.href.clone().unwrap_or_else(|| out[open.byte..].to_string());
            if url.is_empty() {
                return;
            }
            let mut e = base("text_link");
            e["url"] = url.into();
            e
        }
        "tg-emoji" => {
            let Some(id) = open.attrs.emoji_id else { return };
            let mut e = base("custom_emoji");
            e["custom_emoji_id"] = id.into();
            e
        }
        "tg-time" => {
            let Some(unix) = open.attrs.unix.and_then(|u| u.parse::<i64>().ok()) else {
                return;
            };
            let mut e = base("date_time");
            e["unix_time"] = unix.into();
            if let Some(f) = open.attrs.format {
                e["date_time_format"] = f.into();
            }
            e
        }
        _ => return,
    };
    entities.push(entity);
}

/// Decodes `&lt;` `&gt;` `&amp;` `&quot;` (the `;` is optional, as in TDLib) and numeric
/// references at `pos`. `Ok(None)` means "not an entity"; surrogates are an error.
fn entity(b: &[u8], pos: usize) -> Result<Option<(char, usize)>, String> {
    let n = b.len();
    let mut end = pos + 1;
    let code: u32;
    if end < n && b[end] == b'#' {
        end += 1;
        let hex = end < n && b[end] == b'x';
        if hex {
            end += 1;
        }
        let digits_start = end;
        let mut v: u64 = 0;
        while end < n {
            let d = if hex { (b[end] as char).to_digit(16) } else { (b[end] as char).to_digit(10) };
            let Some(d) = d else { break };
            v = (v * if hex { 16 } else { 10 } + u64::from(d)).min(0x7fff_ffff);
            end += 1;
        }
        if end == digits_start || v == 0 || v >= 0x10ffff || end - pos >= 10 {
            return Ok(None);
        }
        if (0xd800..=0xdfff).contains(&v) {
            return Err(SURROGATE_ERROR.to_string());
        }
        code = v as u32;
    } else {
        while end < n && b[end].is_ascii_alphabetic() {
            end += 1;
        }
        code = match &b[pos + 1..end] {
            b"lt" => '<' as u32,
            b"gt" => '>' as u32,
            b"amp" => '&' as u32,
            b"quot" => '"' as u32,
            _ => return Ok(None),
        };
    }
    if end < n && b[end] == b';' {
        end += 1;
    }
    Ok(char::from_u32(code).map(|c| (c, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse(s).unwrap_err()
    }

    #[test]
    fn tags_are_removed_and_entities_decoded() {
        let p = parse("<b>bold</b> &lt;x&gt; &amp; &quot;q&quot; &#65;&#x42;").unwrap();
        assert_eq!(p.text, "bold <x> & \"q\" AB");
        assert_eq!(p.entities, vec![json!({"type":"bold","offset":0,"length":4})]);
    }

    #[test]
    fn offsets_are_counted_in_utf16_code_units() {
        let p = parse("🏟 <i>x</i>").unwrap();
        assert_eq!(p.entities[0]["offset"], 3);
    }

    #[test]
    fn errors_carry_tdlib_reasons_and_byte_offsets() {
        assert_eq!(err("🏟 🏟&lt;<abacaba"), "Unclosed start tag at byte offset 13");
        assert_eq!(err("🏟 🏟&lt;<abac aba>"), "Unsupported start tag \"abac\" at byte offset 13");
        assert_eq!(err("🏟 🏟&lt;<i   =aba>"), "Empty attribute name in the tag \"i\" at byte offset 13");
        assert_eq!(
            err("🏟 🏟&lt;<i    aba>"),
            "Expected equal sign in declaration of an attribute of the tag \"i\" at byte offset 13"
        );
        assert_eq!(err("🏟 🏟&lt;<i    aba  =  190azAz-.,"), "Unexpected end of name token at byte offset 27");
        assert_eq!(err("🏟 🏟&lt;</"), "Unexpected end tag at byte offset 13");
        assert_eq!(err("🏟 🏟&lt;<i>a</i   "), "Unclosed end tag at byte offset 17");
        assert_eq!(
            err("🏟 🏟&lt;<i>a</em   >"),
            "Unmatched end tag at byte offset 17, expected \"</i>\", found \"</em>\""
        );
        assert_eq!(err("a < b"), "Unsupported start tag \"\" at byte offset 2");
        assert_eq!(err("<b>x"), "Can't find end tag corresponding to start tag \"b\"");
        assert_eq!(err("&#xDFDF"), SURROGATE_ERROR);
        assert!(err("fish & chips").starts_with("Unsupported HTML entity at byte offset 5"));
        assert!(err("&laquo;").starts_with("Unsupported HTML entity at byte offset 0"));
    }

    #[test]
    fn anonymous_end_tags_and_attributes_are_accepted() {
        let p = parse("<i    aba  =  '&lt;&gt;&quot;'>a</>").unwrap();
        assert_eq!(p.text, "a");
        let p = parse("<a href=\"https://x.org/?a=1&amp;b=2\">link</a>").unwrap();
        assert_eq!(p.entities[0]["url"], "https://x.org/?a=1&b=2");
        let p = parse("<blockquote expandable>q</blockquote>").unwrap();
        assert_eq!(p.entities[0]["type"], "expandable_blockquote");
        let p = parse("<pre><code class=\"language-rust\">fn</code></pre>").unwrap();
        assert_eq!(p.entities, vec![json!({"type":"pre","offset":0,"length":2,"language":"rust"})]);
        assert!(parse("<span class=\"tg-spoiler\">s</span><tg-spoiler>t</tg-spoiler>").is_ok());
        assert!(parse("<span>s</span>").is_err());
        assert!(parse("a > b").is_ok());
    }
}
