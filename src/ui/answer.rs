//! An answer turned into screen rows: sanitised, lightly Markdown-styled, code blocks
//! highlighted with syntect, word-wrapped to the pane width — and cached.
//!
//! Answers grow at the end while they stream, so the cache keeps every row of the complete
//! lines (everything up to the last newline) together with the Markdown/highlighter state at
//! that point, and re-renders only the partial last line, from a throwaway copy of that state.
//! A new node or a new width starts from scratch. Drawing then touches only the visible rows,
//! so a frame costs the same for a 1 KB answer as for a 1 MB one.

use std::sync::OnceLock;

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use syntect::highlighting::{HighlightIterator, HighlightState, Highlighter, ThemeSet};
use syntect::parsing::{ParseState, ScopeStack, SyntaxSet};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::config::theme::Theme;
use crate::sanitize;

/// Lines longer than this are not highlighted (as bat does).
const MAX_HIGHLIGHT_LINE: usize = 16 * 1024;
const TAB: &str = "    ";

fn syntaxes() -> &'static SyntaxSet {
    static S: OnceLock<SyntaxSet> = OnceLock::new();
    S.get_or_init(SyntaxSet::load_defaults_nonewlines)
}

fn themes() -> &'static ThemeSet {
    static T: OnceLock<ThemeSet> = OnceLock::new();
    T.get_or_init(ThemeSet::load_defaults)
}

/// Load syntect's assets now (the driver does this off the UI loop at start-up).
pub(crate) fn warm_up() {
    let _ = syntaxes();
    let _ = themes();
}

/// Markdown state at a line boundary.
#[derive(Clone, Default)]
struct MdState {
    fence: Option<Fence>,
}

#[derive(Clone)]
struct Fence {
    marker: &'static str,
    /// Parser and highlighter state after the last complete line; None: no known syntax.
    hl: Option<(ParseState, HighlightState)>,
}

/// The cached rows of one pane's answer.
#[derive(Default)]
pub(crate) struct AnswerView {
    key: Option<(u64, u16)>,
    /// Bytes of the text rendered into `rows` (always just after a newline).
    consumed: usize,
    rows: Vec<Line<'static>>,
    md: MdState,
    tail: Vec<Line<'static>>,
    /// Text length the tail was rendered for.
    tail_for: usize,
}

impl AnswerView {
    /// Bring the rows up to date with `text` (the answer of node `node`) at `width`.
    pub fn sync(&mut self, node: u64, text: &str, width: u16, theme: &Theme) {
        let width = width.max(1);
        if self.key != Some((node, width)) || text.len() < self.consumed {
            *self = AnswerView {
                key: Some((node, width)),
                tail_for: usize::MAX,
                ..Default::default()
            };
        }
        if let Some(nl) = text[self.consumed..].rfind('\n') {
            let end = self.consumed + nl;
            for line in text[self.consumed..end].split('\n') {
                let spans = render_line(line, &mut self.md, theme);
                wrap(&spans, width, &mut self.rows);
            }
            self.consumed = end + 1;
            self.tail_for = usize::MAX;
        }
        if self.tail_for != text.len() {
            self.tail.clear();
            let rest = &text[self.consumed..];
            if !rest.is_empty() {
                let mut md = self.md.clone();
                let spans = render_line(rest, &mut md, theme);
                wrap(&spans, width, &mut self.tail);
            }
            self.tail_for = text.len();
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len() + self.tail.len()
    }

    pub fn row(&self, i: usize) -> Option<&Line<'static>> {
        self.rows
            .get(i)
            .or_else(|| self.tail.get(i - self.rows.len().min(i)))
    }
}

/// Render a whole text from scratch (the oracle the cache is tested against).
pub(crate) fn render_all(text: &str, width: u16, theme: &Theme) -> Vec<Line<'static>> {
    let mut md = MdState::default();
    let mut out = Vec::new();
    if text.is_empty() {
        return out;
    }
    for line in text.split('\n') {
        let spans = render_line(line, &mut md, theme);
        wrap(&spans, width.max(1), &mut out);
    }
    // A trailing newline ends the last line; it does not start an empty one.
    if text.ends_with('\n') {
        out.pop();
    }
    out
}

fn clean(line: &str) -> String {
    let line = line.strip_suffix('\r').unwrap_or(line);
    sanitize::visible(line).replace('\t', TAB)
}

/// Style one logical line, advancing the Markdown state.
fn render_line(raw: &str, md: &mut MdState, theme: &Theme) -> Vec<(String, Style)> {
    let line = clean(raw);
    let trimmed = line.trim_start();
    if let Some(f) = &mut md.fence {
        if trimmed.starts_with(f.marker) && trimmed.trim_end() == f.marker {
            md.fence = None;
            return vec![(line, theme.style("md.fence"))];
        }
        return highlight(&line, f, theme);
    }
    for marker in ["```", "~~~"] {
        if let Some(lang) = trimmed.strip_prefix(marker) {
            let lang = lang.trim();
            let ss = syntaxes();
            let syntax = (!lang.is_empty())
                .then(|| ss.find_syntax_by_token(lang))
                .flatten();
            let hl = syntax.and_then(|syn| {
                let t = themes().themes.get(&theme.syntect)?;
                let h = Highlighter::new(t);
                Some((
                    ParseState::new(syn),
                    HighlightState::new(&h, ScopeStack::new()),
                ))
            });
            md.fence = Some(Fence { marker, hl });
            return vec![(line, theme.style("md.fence"))];
        }
    }
    let hashes = trimmed.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
        return vec![(line, theme.style("md.heading"))];
    }
    let indent = line.len() - trimmed.len();
    let bullet_len =
        if trimmed.starts_with("- ") || trimmed.starts_with("* ") || trimmed.starts_with("+ ") {
            2
        } else {
            let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
            if digits > 0 && digits < 4 && trimmed[digits..].starts_with(". ") {
                digits + 2
            } else {
                0
            }
        };
    let mut out = Vec::new();
    if bullet_len > 0 {
        out.push((
            line[..indent + bullet_len].to_string(),
            theme.style("md.list"),
        ));
        inline(&line[indent + bullet_len..], theme, &mut out);
    } else {
        inline(&line, theme, &mut out);
    }
    out
}

/// Inline code, strong and emphasis. Markers are hidden only when they pair up.
fn inline(text: &str, theme: &Theme, out: &mut Vec<(String, Style)>) {
    let base = theme.style("text");
    let mut plain = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (marker, role) = if rest.starts_with('`') {
            ("`", "md.code")
        } else if rest.starts_with("**") {
            ("**", "md.strong")
        } else if rest.starts_with('*') || rest.starts_with('_') {
            (&rest[..1], "md.emphasis")
        } else {
            let ch = rest.chars().next().map_or(1, char::len_utf8);
            plain.push_str(&rest[..ch]);
            rest = &rest[ch..];
            continue;
        };
        let after = &rest[marker.len()..];
        let opens = after.chars().next().is_some_and(|c| !c.is_whitespace());
        let left_ok = marker == "`" || plain.chars().last().is_none_or(|c| !c.is_alphanumeric());
        match after.find(marker).filter(|&e| e > 0 && opens && left_ok) {
            Some(end) => {
                if !plain.is_empty() {
                    out.push((std::mem::take(&mut plain), base));
                }
                out.push((after[..end].to_string(), theme.style(role)));
                rest = &after[end + marker.len()..];
            }
            None => {
                plain.push_str(marker);
                rest = after;
            }
        }
    }
    if !plain.is_empty() || out.is_empty() {
        out.push((plain, base));
    }
}

fn highlight(line: &str, fence: &mut Fence, theme: &Theme) -> Vec<(String, Style)> {
    let code = theme.style("md.code");
    let Some((ps, hs)) = &mut fence.hl else {
        return vec![(line.to_string(), code)];
    };
    if line.len() > MAX_HIGHLIGHT_LINE {
        return vec![(line.to_string(), code)];
    }
    let Some(t) = themes().themes.get(&theme.syntect) else {
        return vec![(line.to_string(), code)];
    };
    let Ok(ops) = ps.parse_line(line, syntaxes()) else {
        return vec![(line.to_string(), code)];
    };
    let h = Highlighter::new(t);
    HighlightIterator::new(hs, &ops, line, &h)
        .map(|(st, s)| {
            let mut style = Style::default();
            if let Some(c) = theme.rgb(st.foreground.r, st.foreground.g, st.foreground.b) {
                style = style.fg(c);
            }
            (s.to_string(), style)
        })
        .collect()
}

/// Word-wrap styled text into rows of at most `width` columns, by grapheme width (CJK and
/// emoji take two columns, combining marks stay with their base).
pub(crate) fn wrap(spans: &[(String, Style)], width: u16, out: &mut Vec<Line<'static>>) {
    let width = usize::from(width);
    let mut row: Vec<(&str, usize, Style)> = Vec::new();
    let mut row_w = 0;
    let mut last_space: Option<usize> = None;
    let mut emitted = false;
    for (text, style) in spans {
        for g in text.graphemes(true) {
            let gw = g.width();
            if row_w + gw > width && !row.is_empty() {
                let rest = match last_space {
                    Some(i) if i + 1 < row.len() => row.split_off(i + 1),
                    Some(_) => Vec::new(),
                    None => Vec::new(),
                };
                out.push(to_line(&row));
                emitted = true;
                row = rest;
                row_w = row.iter().map(|r| r.1).sum();
                last_space = None;
            }
            if g.chars().all(char::is_whitespace) {
                last_space = Some(row.len());
            }
            row.push((g, gw, *style));
            row_w += gw;
        }
    }
    if !row.is_empty() || !emitted {
        out.push(to_line(&row));
    }
}

fn to_line(row: &[(&str, usize, Style)]) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut cur = String::new();
    let mut cur_style: Option<Style> = None;
    for (g, _, st) in row {
        if cur_style != Some(*st) {
            if let Some(s) = cur_style {
                spans.push(Span::styled(std::mem::take(&mut cur), s));
            }
            cur_style = Some(*st);
        }
        cur.push_str(g);
    }
    if let Some(s) = cur_style {
        spans.push(Span::styled(cur, s));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plain(lines: &[Line<'static>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    fn cached(chunks: &[String], width: u16, theme: &Theme) -> Vec<Line<'static>> {
        let mut v = AnswerView::default();
        let mut text = String::new();
        for c in chunks {
            text.push_str(c);
            v.sync(7, &text, width, theme);
        }
        v.sync(7, &text, width, theme);
        (0..v.len()).filter_map(|i| v.row(i).cloned()).collect()
    }

    #[test]
    fn wraps_words_and_wide_characters_by_columns() {
        let t = Theme::builtin_dark();
        let rows = plain(&render_all(
            "hello wide 日本語テキスト e\u{301}e\u{301} 🎉🎉",
            8,
            &t,
        ));
        for r in &rows {
            assert!(r.width() <= 8, "{r:?} is wider than 8");
        }
        assert_eq!(rows[0], "hello ");
        assert!(
            rows.iter().any(|r| r.contains("e\u{301}e\u{301}")),
            "{rows:?}"
        );
    }

    #[test]
    fn escape_sequences_become_visible_text() {
        let t = Theme::builtin_dark();
        let evil = "a\x1b[2Jb \x1b]52;c;SGVsbG8=\x07 \x1b]8;;http://x\x1b\\link \u{9b}31m\r\n";
        let rows = plain(&render_all(evil, 80, &t));
        let all = rows.join("");
        assert!(!all.chars().any(|c| c.is_control()), "{all:?}");
        assert!(all.contains("␛[2J"), "{all:?}");
        assert!(all.contains("␇"), "{all:?}");
    }

    #[test]
    fn markdown_styles_and_code_blocks_are_highlighted() {
        let t = Theme::builtin_dark();
        let text =
            "# Title\n- item with `code` and **bold**\n```rust\nfn main() { let x = 1; }\n```\n";
        let rows = render_all(text, 60, &t);
        assert_eq!(rows[0].spans[0].style, t.style("md.heading"));
        assert_eq!(plain(&rows)[1], "- item with code and bold");
        assert_eq!(rows[1].spans[0].style, t.style("md.list"));
        assert!(rows[1]
            .spans
            .iter()
            .any(|s| s.style == t.style("md.code") && s.content == "code"));
        // The code line is split into several differently coloured spans.
        assert!(rows[3].spans.len() > 3, "{:?}", rows[3]);
        assert_eq!(plain(&rows)[3], "fn main() { let x = 1; }");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn cache_matches_render_from_scratch(
            pieces in prop::collection::vec(prop::sample::select(vec![
                "word ", "longerwordthanthepane ", "\n", "日本", "🎉", "e\u{301}", "# h ",
                "```rust\n", "```\n", "let x = 1;", "`c` ", "**b** ", "- ", "\t", "\x1b[2J",
            ]), 0..60),
            cuts in prop::collection::vec(0usize..400, 0..12),
            width in 1u16..30,
        ) {
            let t = Theme::builtin_dark();
            let text: String = pieces.concat();
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).filter(|c| text.is_char_boundary(*c)).collect();
            bounds.push(0);
            bounds.push(text.len());
            bounds.sort();
            bounds.dedup();
            let chunks: Vec<String> = bounds.windows(2).map(|w| text[w[0]..w[1]].to_string()).collect();
            let want = render_all(&text, width, &t);
            let got = cached(&chunks, width, &t);
            prop_assert_eq!(got, want);
        }
    }
}
