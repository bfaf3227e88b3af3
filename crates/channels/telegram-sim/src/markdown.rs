//! `parse_mode=MarkdownV2` and legacy `Markdown`, roughly as Telegram reads them. okno formats
//! with HTML, so this is deliberately smaller than TDLib's parser: it enforces the rules a
//! client most often breaks (MarkdownV2's reserved characters, unclosed entities) with TDLib's
//! error texts, and produces the plain text whose length the limits are measured on.

use serde_json::{json, Value};

use crate::html::Parsed;

/// Characters MarkdownV2 reserves outside entities (the TDLib test splits the 18 documented
/// ones into these and the entity-begin characters `_*[~\``).
const RESERVED: &str = "]()>#+-=|{}.!";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Italic,
    Bold,
    Underline,
    Strikethrough,
    Spoiler,
    Link,
}

impl Kind {
    fn tdlib_name(self) -> &'static str {
        match self {
            Kind::Italic => "Italic",
            Kind::Bold => "Bold",
            Kind::Underline => "Underline",
            Kind::Strikethrough => "Strikethrough",
            Kind::Spoiler => "Spoiler",
            Kind::Link => "TextUrl",
        }
    }

    fn entity_type(self) -> &'static str {
        match self {
            Kind::Italic => "italic",
            Kind::Bold => "bold",
            Kind::Underline => "underline",
            Kind::Strikethrough => "strikethrough",
            Kind::Spoiler => "spoiler",
            Kind::Link => "text_link",
        }
    }
}

struct Open {
    kind: Kind,
    /// Byte offset of the marker in the source, for error texts.
    at: usize,
    offset: usize,
    byte: usize,
}

/// Appends `ch` to the output, keeping the UTF-16 length in step.
fn push(out: &mut String, units: &mut usize, ch: char) {
    out.push(ch);
    *units += ch.len_utf16();
}

/// Parses MarkdownV2; the error is the reason that follows "can't parse entities: ".
pub(crate) fn parse_v2(src: &str) -> Result<Parsed, String> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let n = chars.len();
    let mut out = String::new();
    let mut units = 0usize;
    let mut stack: Vec<Open> = Vec::new();
    let mut entities: Vec<Value> = Vec::new();
    let mut quote: Option<usize> = None;
    let mut k = 0usize;
    while k < n {
        let (at, c) = chars[k];
        let at_line_start = k == 0 || chars[k - 1].1 == '\n';
        if c == '\n' {
            if let Some(start) = quote.take() {
                if units > start {
                    entities.push(json!({"type":"blockquote","offset":start,"length":units - start}));
                }
            }
        }
        match c {
            '\\' => {
                match chars.get(k + 1) {
                    Some(&(_, next)) if (1..=126).contains(&(next as u32)) => {
                        push(&mut out, &mut units, next);
                        k += 2;
                    }
                    _ => {
                        push(&mut out, &mut units, '\\');
                        k += 1;
                    }
                }
                continue;
            }
            '`' => {
                let pre = chars.get(k + 1).map(|x| x.1) == Some('`') && chars.get(k + 2).map(|x| x.1) == Some('`');
                let fence = if pre { 3 } else { 1 };
                let mut j = k + fence;
                let mut language = String::new();
                if pre {
                    // The language runs to the first newline, if the block has one.
                    let mut l = j;
                    while l < n && chars[l].1 != '\n' && chars[l].1 != '`' {
                        l += 1;
                    }
                    if l < n && chars[l].1 == '\n' {
                        language = chars[j..l].iter().map(|x| x.1).collect();
                        j = l + 1;
                    }
                }
                let start = units;
                let mut closed = false;
                while j < n {
                    let ch = chars[j].1;
                    if ch == '\\' && matches!(chars.get(j + 1).map(|x| x.1), Some('`' | '\\')) {
                        push(&mut out, &mut units, chars[j + 1].1);
                        j += 2;
                        continue;
                    }
                    if ch == '`' {
                        let fence_ok = !pre
                            || (chars.get(j + 1).map(|x| x.1) == Some('`')
                                && chars.get(j + 2).map(|x| x.1) == Some('`'));
                        if fence_ok {
                            closed = true;
                            j += fence;
                            break;
                        }
                    }
                    push(&mut out, &mut units, ch);
                    j += 1;
                }
                if !closed {
                    let name = if !pre {
                        "Code"
                    } else if language.is_empty() {
                        "Pre"
                    } else {
                        "PreCode"
                    };
                    return Err(format!("Can't find end of {name} entity at byte offset {at}"));
                }
                if units > start {
                    let mut e = json!({"type": if pre {"pre"} else {"code"}, "offset": start, "length": units - start});
                    if !language.trim().is_empty() {
                        e["language"] = language.trim().into();
                    }
                    entities.push(e);
                }
                k = j;
                continue;
            }
            '>' if at_line_start => {
                quote = Some(units);
                k += 1;
                continue;
            }
            ']' if stack.last().map(|o| o.kind) == Some(Kind::Link) => {
                // The guard saw a Link on top of the stack, so there is one to pop.
                let Some(open) = stack.pop() else { unreachable!("the guard checked the stack") };
                k += 1;
                let mut url = String::new();
                if chars.get(k).map(|x| x.1) == Some('(') {
                    let url_at = chars[k].0 + 1;
                    k += 1;
                    let mut closed = false;
                    while k < n {
                        let ch = chars[k].1;
                        if ch == '\\' && matches!(chars.get(k + 1).map(|x| x.1), Some(')' | '\\')) {
                            url.push(chars[k + 1].1);
                            k += 2;
                            continue;
                        }
                        k += 1;
                        if ch == ')' {
                            closed = true;
                            break;
                        }
                        url.push(ch);
                    }
                    if !closed {
                        return Err(format!("Can't find end of a URL at byte offset {url_at}"));
                    }
                } else {
                    url = out[open.byte..].to_string();
                }
                if units > open.offset && !url.is_empty() {
                    entities
                        .push(json!({"type":"text_link","offset":open.offset,"length":units - open.offset,"url":url}));
                }
                continue;
            }
            '_' | '*' | '~' | '[' | '|' => {
                let double = chars.get(k + 1).map(|x| x.1) == Some(c);
                let (kind, width) = match c {
                    '_' if double => (Kind::Underline, 2),
                    '_' => (Kind::Italic, 1),
                    '*' => (Kind::Bold, 1),
                    '~' => (Kind::Strikethrough, 1),
                    '[' => (Kind::Link, 1),
                    '|' if double => (Kind::Spoiler, 2),
                    _ => {
                        return Err(format!("Character '{c}' is reserved and must be escaped with the preceding '\\'"))
                    }
                };
                if kind != Kind::Link && stack.last().map(|o| o.kind) == Some(kind) {
                    // The guard saw a Link on top of the stack, so there is one to pop.
                    let Some(open) = stack.pop() else { unreachable!("the guard checked the stack") };
                    if units > open.offset {
                        entities
                            .push(json!({"type":kind.entity_type(),"offset":open.offset,"length":units - open.offset}));
                    }
                } else {
                    stack.push(Open { kind, at, offset: units, byte: out.len() });
                }
                k += width;
                continue;
            }
            _ if RESERVED.contains(c) => {
                return Err(format!("Character '{c}' is reserved and must be escaped with the preceding '\\'"));
            }
            _ => {
                push(&mut out, &mut units, c);
                k += 1;
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("Can't find end of {} entity at byte offset {}", open.kind.tdlib_name(), open.at));
    }
    if let Some(start) = quote {
        if units > start {
            entities.push(json!({"type":"blockquote","offset":start,"length":units - start}));
        }
    }
    entities.sort_by_key(|e| e["offset"].as_u64().unwrap_or(0));
    Ok(Parsed { text: out, entities })
}

/// Parses legacy Markdown: `*bold*`, `_italic_`, `` `code` ``, ```` ```pre``` ````,
/// `[text](url)`; no nesting, and `\` escapes only outside entities.
pub(crate) fn parse_legacy(src: &str) -> Result<Parsed, String> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let n = chars.len();
    let mut out = String::new();
    let mut units = 0usize;
    let mut entities: Vec<Value> = Vec::new();
    let mut k = 0usize;
    while k < n {
        let (at, c) = chars[k];
        if c == '\\' && matches!(chars.get(k + 1).map(|x| x.1), Some('_' | '*' | '`' | '[')) {
            push(&mut out, &mut units, chars[k + 1].1);
            k += 2;
            continue;
        }
        if !matches!(c, '_' | '*' | '`' | '[') {
            push(&mut out, &mut units, c);
            k += 1;
            continue;
        }
        let pre = c == '`' && chars.get(k + 1).map(|x| x.1) == Some('`') && chars.get(k + 2).map(|x| x.1) == Some('`');
        let width = if pre { 3 } else { 1 };
        let end_char = if c == '[' { ']' } else { c };
        let mut j = k + width;
        let start = units;
        let mut closed = false;
        while j < n {
            let is_end = chars[j].1 == end_char
                && (!pre || (chars.get(j + 1).map(|x| x.1) == Some('`') && chars.get(j + 2).map(|x| x.1) == Some('`')));
            if is_end {
                closed = true;
                break;
            }
            push(&mut out, &mut units, chars[j].1);
            j += 1;
        }
        if !closed {
            return Err(format!("Can't find end of the entity starting at byte offset {at}"));
        }
        j += width;
        let length = units - start;
        let kind = match c {
            '_' => "italic",
            '*' => "bold",
            '`' if pre => "pre",
            '`' => "code",
            _ => "text_link",
        };
        if kind == "text_link" {
            let mut url = String::new();
            if chars.get(j).map(|x| x.1) == Some('(') {
                j += 1;
                while j < n && chars[j].1 != ')' {
                    url.push(chars[j].1);
                    j += 1;
                }
                j += 1;
            }
            if length > 0 && !url.is_empty() {
                entities.push(json!({"type":kind,"offset":start,"length":length,"url":url}));
            }
        } else if length > 0 {
            entities.push(json!({"type":kind,"offset":start,"length":length}));
        }
        k = j;
    }
    Ok(Parsed { text: out, entities })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_must_be_escaped() {
        assert_eq!(
            parse_v2("Hello.").unwrap_err(),
            "Character '.' is reserved and must be escaped with the preceding '\\'"
        );
        assert_eq!(parse_v2("Hello\\.").unwrap().text, "Hello.");
        assert_eq!(
            parse_v2("a-b").unwrap_err(),
            "Character '-' is reserved and must be escaped with the preceding '\\'"
        );
    }

    #[test]
    fn entities_and_unclosed_errors_follow_tdlib() {
        let p = parse_v2("*bold* _it_ __u__ ~s~ ||sp|| `c` [t](http://x\\.org)").unwrap();
        assert_eq!(p.text, "bold it u s sp c t");
        let kinds: Vec<&str> = p.entities.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["bold", "italic", "underline", "strikethrough", "spoiler", "code", "text_link"]);
        assert_eq!(parse_v2("🏟 🏟_abacaba").unwrap_err(), "Can't find end of Italic entity at byte offset 9");
        assert_eq!(parse_v2("[telegram\\.org](asd").unwrap_err(), "Can't find end of a URL at byte offset 16");
    }

    #[test]
    fn legacy_markdown_strips_markers() {
        let p = parse_legacy("*b* _i_ `c` [t](http://x.org) a.b-c").unwrap();
        assert_eq!(p.text, "b i c t a.b-c");
        assert_eq!(p.entities.len(), 4);
        assert!(parse_legacy("*open").is_err());
    }
}
