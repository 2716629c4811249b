//! The `d` layer: a word diff of a revision against the one it rewrote, removed words in the
//! theme's `diff.removed` role and added ones in `diff.added`, wrapped to the box. The spans
//! were computed when the layer opened; drawing only wraps and paints them.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::Frame;

use crate::app::model::state::AppState;
use crate::app::model::techniques::DiffView;
use crate::config::theme::Theme;
use crate::sanitize::visible;
use crate::state::diff::{DiffSpan, SpanKind};

/// Styled text (with newlines) wrapped into rows of `width` columns.
pub(crate) fn wrap_styled(parts: &[(&str, Style)], width: u16) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let mut line: Vec<(String, Style)> = Vec::new();
    for (text, style) in parts {
        let mut pieces = text.split('\n').peekable();
        while let Some(piece) = pieces.next() {
            if !piece.is_empty() {
                line.push((visible(piece).replace('\t', "    "), *style));
            }
            if pieces.peek().is_some() {
                super::answer::wrap(&line, width.max(1), &mut out);
                line.clear();
            }
        }
    }
    if !line.is_empty() {
        super::answer::wrap(&line, width.max(1), &mut out);
    }
    out
}

pub(crate) fn draw(frame: &mut Frame, area: Rect, state: &AppState, d: &DiffView, theme: &Theme) {
    let label = |id: u64| {
        state
            .session
            .node(id)
            .map(|n| format!("{} #{id}", n.kind.as_str()))
            .unwrap_or_else(|| format!("#{id}"))
    };
    let title = format!(
        " Diff {} → {} · +{} −{} words · Esc closes ",
        label(d.old),
        label(d.new),
        d.added,
        d.removed
    );
    draw_spans(
        frame,
        area,
        &title,
        &d.spans,
        d.scroll,
        "(both revisions are empty)",
        theme,
    );
}

/// A word diff in a box over the body: removed words in `diff.removed` (crossed out), added
/// ones in `diff.added` (bold), wrapped to the box and scrolled to `scroll`.
pub(crate) fn draw_spans(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    spans: &[DiffSpan],
    scroll: usize,
    empty: &str,
    theme: &Theme,
) {
    let Some(inner) = super::frame::overlay(frame, area, (4, 3), title, theme) else {
        return;
    };
    let text = theme.style("text");
    let added = theme.style("diff.added").add_modifier(Modifier::BOLD);
    let removed = theme
        .style("diff.removed")
        .add_modifier(Modifier::CROSSED_OUT);
    let mut parts: Vec<(&str, Style)> = Vec::with_capacity(spans.len() + 4);
    for (i, sp) in spans.iter().enumerate() {
        let st = match sp.kind {
            SpanKind::Equal => text,
            SpanKind::Added => added,
            SpanKind::Removed => removed,
        };
        parts.push((sp.text.as_str(), st));
        // A replaced word: keep the removed and the added text apart.
        let next = spans.get(i + 1);
        if sp.kind == SpanKind::Removed
            && next.is_some_and(|n| {
                n.kind == SpanKind::Added && !n.text.starts_with(char::is_whitespace)
            })
            && !sp.text.ends_with(char::is_whitespace)
        {
            parts.push((" ", text));
        }
    }
    let rows = wrap_styled(&parts, inner.width);
    let h = usize::from(inner.height);
    let top = scroll.min(rows.len().saturating_sub(h));
    for (i, line) in rows.iter().skip(top).take(h).enumerate() {
        frame
            .buffer_mut()
            .set_line(inner.x, inner.y + i as u16, line, inner.width);
    }
    if rows.is_empty() {
        frame
            .buffer_mut()
            .set_string(inner.x, inner.y, empty, theme.style("muted"));
    }
}
