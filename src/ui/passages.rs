//! The context layer (`O`): each passage of the focused pane's in-context block with its
//! file and line range and retrieval score, then its text as sent; then the few-shot
//! examples selected for the case. Everything shown came from files or a model and is drawn
//! through `visible` (control characters made harmless).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::Frame;

use crate::app::model::passages::PassagesView;
use crate::config::theme::Theme;
use crate::sanitize::visible;

/// The rows of the view at `width` columns (wrapped), before scrolling.
pub(crate) fn lines(v: &PassagesView, width: u16, theme: &Theme) -> Vec<Line<'static>> {
    let label = theme.style("prompt.label");
    let muted = theme.style("muted");
    let text = theme.style("text");
    let mut out: Vec<Line<'static>> = Vec::new();
    let body = |out: &mut Vec<Line<'static>>, t: &str| {
        out.extend(super::diff::wrap_styled(&[(&visible(t), text)], width));
    };
    if v.is_empty() {
        out.push(Line::styled(
            "This prompt has no context passages and no selected examples: add context_files, \
             retrieve = { from = [...] } or examples_file with select = { ... } to the variant.",
            muted,
        ));
        return out;
    }
    let n = v.passages.len();
    if n > 0 {
        let by = v
            .ranked_by
            .as_deref()
            .map(|b| format!(", ranked by {}", visible(b)))
            .unwrap_or_default();
        out.push(Line::styled(format!("{n} context passage(s){by}"), label));
    }
    for (k, p) in v.passages.iter().enumerate() {
        out.push(Line::default());
        let source = match &p.source {
            Some(s) => visible(s),
            None => "pasted whole (context_files)".into(),
        };
        let mut head = vec![
            Span::styled(format!("▌ {}/{n}  ", k + 1), label),
            Span::styled(source, theme.style("header.key")),
        ];
        if let Some(score) = p.score {
            head.push(Span::styled(format!("  score {score:.3}"), muted));
        }
        let words = p.text.split_whitespace().count();
        head.push(Span::styled(format!("  · {words} words"), muted));
        out.push(Line::from(head));
        body(&mut out, &p.text);
    }
    if v.examples_note.is_some() || !v.examples.is_empty() {
        if n > 0 {
            out.push(Line::default());
        }
        let note = v
            .examples_note
            .as_deref()
            .map(|m| format!(": {}", visible(m)))
            .unwrap_or_default();
        out.push(Line::styled(
            format!("{} example(s){note}", v.examples.len()),
            label,
        ));
        for (k, e) in v.examples.iter().enumerate() {
            out.push(Line::default());
            out.push(Line::styled(
                format!("▌ example {}/{} · user", k + 1, v.examples.len()),
                label,
            ));
            body(&mut out, &e.input);
            out.push(Line::styled("  assistant", label));
            body(&mut out, &e.output);
        }
    }
    out
}

pub(crate) fn draw(frame: &mut Frame, area: Rect, v: &PassagesView, theme: &Theme) {
    let title = format!(
        " Context of {} · case {} · {} · j/k scroll · Esc closes ",
        visible(&v.variant),
        visible(&v.case),
        visible(&v.source_note)
    );
    let Some(inner) = super::frame::overlay(frame, area, (20, 4), &title, theme) else {
        return;
    };
    let buf = frame.buffer_mut();
    let all = lines(v, inner.width, theme);
    let max = all.len().saturating_sub(usize::from(inner.height));
    for (row, line) in all
        .iter()
        .skip(v.scroll.min(max))
        .take(usize::from(inner.height))
        .enumerate()
    {
        buf.set_line(inner.x, inner.y + row as u16, line, inner.width);
    }
}

#[cfg(test)]
mod tests;
