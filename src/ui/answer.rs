//! An answer turned into screen rows: sanitised, lightly Markdown-styled, code blocks
//! highlighted with syntect, word-wrapped to the pane width — and cached.
//!
//! Answers grow at the end while they stream, so the cache keeps every row of the complete
//! lines (everything up to the last newline) together with the Markdown/highlighter state at
//! that point, and re-renders only the partial last line, from a throwaway copy of that state.
//! A partial line that grows long (a model writing JSON or a paragraph without a newline) is
//! not re-wrapped whole on every frame either: the part of it whose styling can no longer
//! change (before the first inline Markdown marker, or all of a heading, fence opener or
//! unhighlighted code line) is wrapped once, and the word-wrapper's state is kept to resume
//! from. A new node or a new width starts from scratch. Drawing then touches only the visible
//! rows, so a frame costs the same for a 1 KB answer as for a 1 MB one.

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
    /// Rows of the partial last line that can no longer change (see [`TailCache`]).
    tail_stable: Vec<Line<'static>>,
    /// The rest of the partial last line's rows, redone when it grows.
    tail_live: Vec<Line<'static>>,
    tail_cache: Option<TailCache>,
    /// Text length the tail was rendered for.
    tail_for: usize,
}

/// How far the partial last line has been wrapped for good.
#[derive(Clone)]
struct TailCache {
    class: Class,
    /// Bytes of the cleaned line fed to `wrap` (their finished rows are in `tail_stable`).
    fed: usize,
    wrap: Wrapper,
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
            self.tail_stable.clear();
            self.tail_cache = None;
        }
        if self.tail_for != text.len() {
            self.tail_live.clear();
            let rest = &text[self.consumed..];
            if !rest.is_empty() {
                self.render_tail(rest, width, theme);
            }
            self.tail_for = text.len();
        }
    }

    /// Rows of the partial last line `raw`: the stable part resumed from the cache, the rest
    /// wrapped afresh.
    fn render_tail(&mut self, raw: &str, width: u16, theme: &Theme) {
        let line = clean(raw);
        let class = classify(&line, &self.md);
        let stable = stable_end(&line, class, &self.md);
        if self
            .tail_cache
            .as_ref()
            .is_some_and(|c| c.class != class || c.fed > stable)
        {
            self.tail_cache = None;
            self.tail_stable.clear();
        }
        if stable > 0 {
            let cache = self.tail_cache.get_or_insert_with(|| TailCache {
                class,
                fed: 0,
                wrap: Wrapper::new(width),
            });
            for (text, style) in styled(&line, cache.fed, stable, class, theme) {
                cache.wrap.feed_str(text, style, &mut self.tail_stable);
            }
            cache.fed = stable;
        }
        match &self.tail_cache {
            Some(cache) => {
                let mut w = cache.wrap.clone();
                // The rest: still final-styled up to `from`, inline Markdown after it.
                let from = match class {
                    Class::Inline { prefix } => cache.fed.max(prefix),
                    _ => line.len(),
                };
                for (text, style) in styled(&line, cache.fed, from, class, theme) {
                    w.feed_str(text, style, &mut self.tail_live);
                }
                if let Class::Inline { prefix } = class {
                    let mut spans = Vec::new();
                    inline(
                        &line[from..],
                        line[prefix..from].chars().last(),
                        theme,
                        &mut spans,
                    );
                    for (text, style) in &spans {
                        w.feed_str(text, *style, &mut self.tail_live);
                    }
                }
                w.finish(&mut self.tail_live);
            }
            None => {
                let mut md = self.md.clone();
                let spans = style_line(line, class, &mut md, theme);
                wrap(&spans, width, &mut self.tail_live);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len() + self.tail_stable.len() + self.tail_live.len()
    }

    pub fn row(&self, i: usize) -> Option<&Line<'static>> {
        let (a, b) = (self.rows.len(), self.tail_stable.len());
        if i < a {
            self.rows.get(i)
        } else if i < a + b {
            self.tail_stable.get(i - a)
        } else {
            self.tail_live.get(i - a - b)
        }
    }
}

/// Where the styling of the partial line `line` (cleaned) is final: bytes before the returned
/// offset keep their style however the line goes on. 0 when nothing is known to be final.
///
/// The offset is always between two ASCII characters: there `clean` maps raw text one to one
/// and a grapheme boundary is certain, so wrapping can resume from it.
fn stable_end(line: &str, class: Class, md: &MdState) -> usize {
    let Some(last) = line.len().checked_sub(1) else {
        return 0;
    };
    let limit = match class {
        // Long or unhighlighted code lines are one style (see `highlight`).
        Class::Code => {
            let plain = md.fence.as_ref().is_none_or(|f| f.hl.is_none());
            if plain || line.len() > MAX_HIGHLIGHT_LINE {
                last
            } else {
                return 0;
            }
        }
        Class::FenceClose => return 0,
        Class::FenceOpen | Class::Heading => last,
        // Text before the first marker is plain whatever follows (markers pair only to
        // their right).
        Class::Inline { prefix } => line[prefix..]
            .find(['`', '*', '_'])
            .map_or(last, |m| (prefix + m).min(last)),
    };
    let b = line.as_bytes();
    (1..=limit)
        .rev()
        .find(|&i| b[i - 1].is_ascii() && b[i].is_ascii())
        .unwrap_or(0)
}

/// `line[from..to]` as styled pieces, for a line of `class` whose styling is final there.
fn styled<'a>(
    line: &'a str,
    from: usize,
    to: usize,
    class: Class,
    theme: &Theme,
) -> Vec<(&'a str, Style)> {
    let role = match class {
        Class::Code => "md.code",
        Class::FenceOpen | Class::FenceClose => "md.fence",
        Class::Heading => "md.heading",
        Class::Inline { prefix } => {
            let mid = prefix.clamp(from, to);
            let mut out = Vec::new();
            if from < mid {
                out.push((&line[from..mid], theme.style("md.list")));
            }
            if mid < to {
                out.push((&line[mid..to], theme.style("text")));
            }
            return out;
        }
    };
    vec![(&line[from..to], theme.style(role))]
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

/// What kind of Markdown line a cleaned line is, given the state before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Inside a fence: its closing marker.
    FenceClose,
    /// Inside a fence: a line of code.
    Code,
    /// ```` ``` ```` or `~~~`, with an optional language.
    FenceOpen,
    Heading,
    /// Inline Markdown after `prefix` bytes of list bullet (0: not a list item).
    Inline {
        prefix: usize,
    },
}

fn classify(line: &str, md: &MdState) -> Class {
    let trimmed = line.trim_start();
    if let Some(f) = &md.fence {
        return if trimmed.starts_with(f.marker) && trimmed.trim_end() == f.marker {
            Class::FenceClose
        } else {
            Class::Code
        };
    }
    if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
        return Class::FenceOpen;
    }
    let hashes = trimmed.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
        return Class::Heading;
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
    Class::Inline {
        prefix: if bullet_len > 0 {
            indent + bullet_len
        } else {
            0
        },
    }
}

/// Style one logical line, advancing the Markdown state.
fn render_line(raw: &str, md: &mut MdState, theme: &Theme) -> Vec<(String, Style)> {
    let line = clean(raw);
    let class = classify(&line, md);
    style_line(line, class, md, theme)
}

/// Style a cleaned line of `class` (see [`classify`]), advancing the Markdown state.
fn style_line(line: String, class: Class, md: &mut MdState, theme: &Theme) -> Vec<(String, Style)> {
    match class {
        Class::FenceClose => {
            md.fence = None;
            vec![(line, theme.style("md.fence"))]
        }
        Class::Code => match &mut md.fence {
            Some(f) => highlight(&line, f, theme),
            None => vec![(line, theme.style("md.code"))],
        },
        Class::FenceOpen => {
            let trimmed = line.trim_start();
            let marker = if trimmed.starts_with("```") {
                "```"
            } else {
                "~~~"
            };
            let lang = trimmed[marker.len()..].trim();
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
            vec![(line, theme.style("md.fence"))]
        }
        Class::Heading => vec![(line, theme.style("md.heading"))],
        Class::Inline { prefix } => {
            let mut out = Vec::new();
            if prefix > 0 {
                out.push((line[..prefix].to_string(), theme.style("md.list")));
            }
            inline(&line[prefix..], None, theme, &mut out);
            out
        }
    }
}

/// Inline code, strong and emphasis. Markers are hidden only when they pair up.
///
/// `lead` is the plain character just before `text` when `text` continues a line whose
/// earlier part is plain (it decides whether a marker right at the start can open).
fn inline(text: &str, lead: Option<char>, theme: &Theme, out: &mut Vec<(String, Style)>) {
    let base = theme.style("text");
    let mut lead = lead;
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
        let left_ok = marker == "`"
            || plain
                .chars()
                .last()
                .or(lead)
                .is_none_or(|c| !c.is_alphanumeric());
        match after.find(marker).filter(|&e| e > 0 && opens && left_ok) {
            Some(end) => {
                if !plain.is_empty() {
                    out.push((std::mem::take(&mut plain), base));
                }
                lead = None;
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
    let mut w = Wrapper::new(width);
    for (text, style) in spans {
        w.feed_str(text, *style, out);
    }
    w.finish(out);
}

/// A word-wrapper that can be paused and resumed: its state is the row being filled.
#[derive(Clone)]
struct Wrapper {
    width: usize,
    /// The graphemes of the row being filled, back to back.
    buf: String,
    /// Each grapheme of the row: its end in `buf`, its width and style.
    cells: Vec<(usize, usize, Style)>,
    row_w: usize,
    /// Index in `cells` of the row's last whitespace.
    last_space: Option<usize>,
    emitted: bool,
}

impl Wrapper {
    fn new(width: u16) -> Self {
        Wrapper {
            width: usize::from(width),
            buf: String::new(),
            cells: Vec::new(),
            row_w: 0,
            last_space: None,
            emitted: false,
        }
    }

    fn feed_str(&mut self, text: &str, style: Style, out: &mut Vec<Line<'static>>) {
        for g in text.graphemes(true) {
            self.feed(g, style, out);
        }
    }

    fn feed(&mut self, g: &str, style: Style, out: &mut Vec<Line<'static>>) {
        let gw = g.width();
        if self.row_w + gw > self.width && !self.cells.is_empty() {
            // Break after the last space; the word after it moves to the next row.
            let keep = match self.last_space {
                Some(i) if i + 1 < self.cells.len() => i + 1,
                _ => self.cells.len(),
            };
            let split = if keep == 0 { 0 } else { self.cells[keep - 1].0 };
            out.push(self.line(keep));
            let rest = self.buf.split_off(split);
            let moved: Vec<_> = self.cells[keep..]
                .iter()
                .map(|&(end, w, st)| (end - split, w, st))
                .collect();
            self.buf = rest;
            self.cells = moved;
            self.row_w = self.cells.iter().map(|c| c.1).sum();
            self.last_space = None;
            self.emitted = true;
        }
        if g.chars().all(char::is_whitespace) {
            self.last_space = Some(self.cells.len());
        }
        self.buf.push_str(g);
        self.cells.push((self.buf.len(), gw, style));
        self.row_w += gw;
    }

    fn finish(self, out: &mut Vec<Line<'static>>) {
        if !self.cells.is_empty() || !self.emitted {
            out.push(self.line(self.cells.len()));
        }
    }

    /// The first `n` graphemes of the row as a line, one span per run of a style.
    fn line(&self, n: usize) -> Line<'static> {
        let mut spans: Vec<Span<'static>> = Vec::new();
        let mut start = 0;
        let mut run: Option<(usize, Style)> = None;
        for &(end, _, st) in &self.cells[..n] {
            match run {
                Some((_, s)) if s == st => {}
                Some((from, s)) => {
                    spans.push(Span::styled(self.buf[from..start].to_string(), s));
                    run = Some((start, st));
                }
                None => run = Some((start, st)),
            }
            start = end;
        }
        if let Some((from, s)) = run {
            spans.push(Span::styled(self.buf[from..start].to_string(), s));
        }
        Line::from(spans)
    }
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

    /// Stream `chunks` into one view; after every chunk its rows must equal a render of the
    /// text so far from scratch.
    fn cached(chunks: &[String], width: u16, theme: &Theme) -> Vec<Line<'static>> {
        let mut v = AnswerView::default();
        let mut text = String::new();
        for c in chunks {
            text.push_str(c);
            v.sync(7, &text, width, theme);
            let rows: Vec<_> = (0..v.len()).filter_map(|i| v.row(i).cloned()).collect();
            assert_eq!(rows, render_all(&text, width, theme), "after {text:?}");
        }
        v.sync(7, &text, width, theme);
        (0..v.len()).filter_map(|i| v.row(i).cloned()).collect()
    }

    /// A line that never ends is wrapped once, not on every frame: streamed in small chunks,
    /// almost all of its rows end up in the stable part, and it still matches a render from
    /// scratch. Inside a fence without a known language, and as plain prose with a marker
    /// late in the line.
    #[test]
    fn a_long_partial_line_is_wrapped_incrementally() {
        let t = Theme::builtin_dark();
        let json = r#"{"user_id": 12, "name": "Ann \"A\" Lee", "tags": ["x", "y"]}, "#.repeat(600);
        for (prefix, body) in [
            ("```\n", json.clone()),
            (
                "",
                format!(
                    "{} and then *emphasis* at the end",
                    "plain words ".repeat(2000)
                ),
            ),
            ("- ", "a list item that goes on and on ".repeat(700)),
            ("## ", "a heading that never ends ".repeat(900)),
        ] {
            let text = format!("{prefix}{body}");
            let mut v = AnswerView::default();
            let mut end = prefix.len();
            while end < text.len() {
                end = (end + 97).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                v.sync(1, &text[..end], 50, &t);
            }
            let rows: Vec<_> = (0..v.len()).filter_map(|i| v.row(i).cloned()).collect();
            assert_eq!(rows, render_all(&text, 50, &t), "{prefix:?}");
            assert!(
                v.tail_live.len() <= 30 && v.tail_stable.len() >= 400,
                "{prefix:?}: {} stable, {} live rows",
                v.tail_stable.len(),
                v.tail_live.len()
            );
        }
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
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn cache_matches_render_from_scratch(
            pieces in prop::collection::vec(prop::sample::select(vec![
                "word ", "longerwordthanthepane ", "\n", "日本", "🎉", "e\u{301}", "# h ",
                "snake_case ", "x*y", "_", "*", "``", "~~~\n", "1. ", "  ", "\r", "a", "🇫🇷",
                "\u{200d}", "ab\u{301}",
                "```rust\n", "```\n", "let x = 1;", "`c` ", "**b** ", "- ", "\t", "\x1b[2J",
            ]), 0..60),
            cuts in prop::collection::vec(0usize..600, 0..40),
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
