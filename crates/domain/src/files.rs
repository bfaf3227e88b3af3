//! File names as okno keeps and offers them. A name comes from whoever sent the file — a person
//! on a messenger, a site, an uploader — so it is reduced to a plain base name before it is
//! stored or offered for download: no folders, no control or direction-changing characters,
//! nothing a file system or a browser's save dialog reads as more than a name.

/// The longest name kept, in bytes (what common file systems allow).
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// What a name with nothing usable left becomes.
const FALLBACK: &str = "file";

/// `name` as a safe base name: the last path segment (either slash), without control
/// characters, bidirectional overrides or characters Windows forbids, without leading dots or
/// trailing dots and spaces, at most [`MAX_FILE_NAME_BYTES`] with its extension kept, and
/// `file` when nothing is left. Letters of any script are kept.
pub fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !is_direction_mark(*c))
        .map(|c| if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim_end_matches(['.', ' ']).trim();
    if trimmed.is_empty() {
        return FALLBACK.into();
    }
    shorten(trimmed)
}

/// Marks that reorder how text is shown (`exe.pdf` written backwards to look like a PDF).
fn is_direction_mark(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Cuts a long name on a character boundary, keeping a short extension.
fn shorten(name: &str) -> String {
    if name.len() <= MAX_FILE_NAME_BYTES {
        return name.into();
    }
    let ext = name.rfind('.').map(|i| &name[i..]).filter(|e| e.len() <= 16).unwrap_or("");
    let mut stem_end = MAX_FILE_NAME_BYTES - ext.len();
    while !name.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    format!("{}{ext}", &name[..stem_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_their_last_segment() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("..\\..\\Windows\\win.ini"), "win.ini");
        assert_eq!(safe_file_name("/tmp/"), "file");
        assert_eq!(safe_file_name(".."), "file");
        assert_eq!(safe_file_name(""), "file");
    }

    #[test]
    fn hidden_names_controls_and_direction_marks_are_removed() {
        assert_eq!(safe_file_name(".bashrc"), "bashrc");
        assert_eq!(safe_file_name("a\r\nb\0.txt"), "ab.txt");
        assert_eq!(safe_file_name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(safe_file_name("report. . "), "report");
        assert_eq!(safe_file_name("a\"b<c>.txt"), "a_b_c_.txt");
    }

    #[test]
    fn cyrillic_names_are_kept_and_long_ones_keep_their_extension() {
        assert_eq!(safe_file_name("Счёт №5 от 1 мая.pdf"), "Счёт №5 от 1 мая.pdf");
        let long = format!("{}.pdf", "я".repeat(300));
        let short = safe_file_name(&long);
        assert!(short.len() <= MAX_FILE_NAME_BYTES, "{}", short.len());
        assert!(short.ends_with("я.pdf"));
    }
}
