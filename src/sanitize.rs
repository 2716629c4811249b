//! Model output is untrusted: control characters and escape sequences must never reach the
//! terminal. These functions make them visible instead.

/// `text` with every control character except newline and tab replaced by a visible stand-in:
/// C0 controls by their Unicode control pictures (ESC becomes `␛`), DEL by `␡`, C1 controls
/// and other format-breaking characters by `\u{XX}`.
pub(crate) fn visible(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        push_visible(&mut out, ch);
    }
    out
}

/// `text` made visible and flattened to one line (runs of whitespace become one space), cut
/// to at most `max` characters with a trailing `…`. For previews in tables, reports and pane
/// notes.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let flat = visible(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut s: String = flat.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// Whether `ch` must not be written to a terminal as is.
pub(crate) fn needs_escape(ch: char) -> bool {
    match ch {
        '\n' | '\t' => false,
        c if (c as u32) < 0x20 || c == '\u{7f}' => true,
        c if ('\u{80}'..='\u{9f}').contains(&c) => true,
        // Bidirectional overrides and isolates can reorder what the user sees.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// Append `ch`, escaped if needed.
pub(crate) fn push_visible(out: &mut String, ch: char) {
    if !needs_escape(ch) {
        out.push(ch);
        return;
    }
    let code = ch as u32;
    if code < 0x20 {
        // U+2400.. are the control pictures: ␀ ␁ … ␛ … ␟
        out.push(char::from_u32(0x2400 + code).unwrap_or('?'));
    } else if code == 0x7f {
        out.push('␡');
    } else {
        out.push_str(&format!("\\u{{{code:x}}}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_never_survive() {
        let evil = "a\x1b[2Jb\x1b]52;c;SGVsbG8=\x07c\x1b]8;;http://x\x1b\\d\u{9b}31me\r";
        let v = visible(evil);
        assert!(
            !v.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{v:?}"
        );
        assert_eq!(v, "a␛[2Jb␛]52;c;SGVsbG8=␇c␛]8;;http://x␛\\d\\u{9b}31me␍");
    }

    #[test]
    fn plain_text_newlines_tabs_and_unicode_pass() {
        let t = "héllo\n\tworld 日本 🎉";
        assert_eq!(visible(t), t);
    }

    #[test]
    fn bidi_overrides_are_visible() {
        assert_eq!(visible("a\u{202e}b"), "a\\u{202e}b");
    }
}
