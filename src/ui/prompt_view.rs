//! The prompt in the pane: a compact view above the answer (the role, how many examples,
//! passages and earlier turns, and the user message with the case's variables highlighted,
//! folded to a third of the pane at most), or the full chat as sent, message by message, with
//! the technique blocks (worked examples, in-context instruction and passages, the
//! step-by-step cue) labelled, scrolling with the answer below it.
//!
//! What is drawn comes from [`crate::app::model::queries::shown`]: the request a pane's answer
//! was made from, or what its variant will send. Drawing only wraps and paints it.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::app::model::prompt_model::block_label;
use crate::app::model::queries::{shown, Source};
use crate::app::model::state::AppState;
use crate::config::keymap::Mode;
use crate::config::theme::Theme;
use crate::prompt::marked::{anatomy, task_pieces, Block, MarkedMessage, Piece};
use crate::sanitize::visible;

/// Most rows the compact view takes, whatever the pane's height.
const COMPACT_MAX_ROWS: usize = 7;

/// Whether pane `i` shows its full chat (then [`expanded_rows`] go above the answer).
pub(crate) fn is_expanded(state: &AppState, i: usize) -> bool {
    state
        .prompt
        .variants
        .get(i)
        .is_some_and(|v| state.prompt_view.is_expanded(&v.name))
}

/// Draw the compact prompt at the top of `body` and return what is left for the answer.
/// An expanded pane draws nothing here (its chat scrolls with the answer).
pub(crate) fn draw_compact(
    buf: &mut Buffer,
    body: Rect,
    state: &AppState,
    i: usize,
    theme: &Theme,
) -> Rect {
    if is_expanded(state, i) || body.height < 3 || body.width < 8 {
        return body;
    }
    let rows = compact_rows(state, i, body.width, usize::from(body.height), theme);
    let used = rows.len().min(usize::from(body.height)) as u16;
    for (k, line) in rows.iter().take(usize::from(used)).enumerate() {
        buf.set_line(body.x, body.y + k as u16, line, body.width);
    }
    Rect::new(body.x, body.y + used, body.width, body.height - used)
}

fn key_hint(state: &AppState) -> String {
    state
        .keymap
        .key_for(Mode::Normal, crate::app::Action::TogglePrompt)
        .map(|k| k.to_string())
        .unwrap_or_else(|| "toggle_prompt".into())
}

/// The summary line, the task folded to fit a third of `height`, and a rule.
pub(crate) fn compact_rows(
    state: &AppState,
    i: usize,
    width: u16,
    height: usize,
    theme: &Theme,
) -> Vec<Line<'static>> {
    let Some(chat) = shown(state, i) else {
        return Vec::new();
    };
    let budget = (height / 3).clamp(2, COMPACT_MAX_ROWS);
    let mut out = summary_rows(&chat.chat, &chat.source, width, theme);
    let task = task_pieces(&chat.chat);
    let parts: Vec<(&str, Style)> = task
        .iter()
        .map(|(p, t)| (t.as_str(), piece_style(p, theme)))
        .collect();
    let mut rows = super::diff::wrap_styled(&parts, width);
    // Blank lines inside a short prompt say little in a compact view.
    rows.retain(|r| r.spans.iter().any(|s| !s.content.trim().is_empty()));
    let room = budget.saturating_sub(out.len() + 1).max(1);
    if rows.len() > room {
        let hidden = rows.len() - (room - 1);
        rows.truncate(room - 1);
        rows.push(Line::styled(
            format!("… {hidden} more row(s) · {} shows all", key_hint(state)),
            theme.style("muted"),
        ));
    }
    out.extend(rows);
    if out.len() < budget {
        out.push(rule(width, theme));
    }
    out
}

/// `▸ prompt · 2 example(s) · 3 passage(s) · step by step`, then `system: You teach.` when
/// there is a role; each cut to width.
fn summary_rows(
    chat: &[MarkedMessage],
    source: &Source,
    width: u16,
    theme: &Theme,
) -> Vec<Line<'static>> {
    let a = anatomy(chat);
    let muted = theme.style("muted");
    let tech = theme.style("prompt.technique");
    let mut spans = vec![Span::styled("▸ prompt", theme.style("prompt.label"))];
    let mut counts = Vec::new();
    if a.examples > 0 {
        counts.push(format!("{} example(s)", a.examples));
    }
    if a.passages > 0 {
        counts.push(format!("{} passage(s)", a.passages));
    }
    if a.history > 0 {
        counts.push(format!("{} earlier turn(s)", a.history));
    }
    if a.step_by_step {
        counts.push("step by step".into());
    }
    if counts.is_empty() {
        spans.push(Span::styled(" · zero-shot", muted));
    }
    for c in counts {
        spans.push(Span::styled(" · ", muted));
        spans.push(Span::styled(c, tech));
    }
    match source {
        Source::WillSend => {}
        Source::Sent => spans.push(Span::styled(" · sent", muted)),
        Source::SentOther(why) => spans.push(Span::styled(format!(" · {why}"), muted)),
    }
    let mut out = vec![clip(spans, width)];
    if let Some(sys) = &a.system {
        let one_line: String = visible(sys)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        out.push(clip(
            vec![
                Span::styled("system: ", theme.style("prompt.label")),
                Span::styled(one_line, theme.style("text")),
            ],
            width,
        ));
    }
    out
}

/// Spans cut to `width` columns, with `…` where something was cut.
fn clip(spans: Vec<Span<'static>>, width: u16) -> Line<'static> {
    let width = usize::from(width);
    let total: usize = spans.iter().map(|s| s.width()).sum();
    if total <= width {
        return Line::from(spans);
    }
    let mut out = Vec::new();
    let mut used = 0;
    for s in spans {
        let w = s.width();
        if used + w < width {
            used += w;
            out.push(s);
            continue;
        }
        let mut text = String::new();
        for c in s.content.chars() {
            let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
            if used + cw + 1 > width {
                break;
            }
            used += cw;
            text.push(c);
        }
        text.push('…');
        out.push(Span::styled(text, s.style));
        break;
    }
    Line::from(out)
}

fn rule(width: u16, theme: &Theme) -> Line<'static> {
    Line::styled("┄".repeat(usize::from(width)), theme.style("pane.border"))
}

fn piece_style(p: &Piece, theme: &Theme) -> Style {
    match p {
        Piece::Text => theme.style("text"),
        Piece::Var(_) => theme.style("prompt.var"),
        Piece::ContextInstruction
        | Piece::Passage(_)
        | Piece::QuestionLabel
        | Piece::StepByStep => theme.style("prompt.technique"),
    }
}

/// A label row for a technique piece starting here, if it is one.
fn piece_label(p: &Piece, passage: usize, passages: usize) -> Option<String> {
    match p {
        Piece::ContextInstruction => Some("in-context instruction".into()),
        Piece::Passage(None) => Some(format!("context {passage}/{passages} (pasted)")),
        Piece::Passage(Some(src)) => {
            Some(format!("context {passage}/{passages} · {}", visible(src)))
        }
        Piece::QuestionLabel => Some("question".into()),
        Piece::StepByStep => Some("step-by-step cue".into()),
        Piece::Text | Piece::Var(_) => None,
    }
}

/// The full chat as sent, for an expanded pane: each message under a `┄ role · block` row,
/// technique pieces under a `┆ label` row, then the `┄ answer` row the answer follows.
pub(crate) fn expanded_rows(
    state: &AppState,
    i: usize,
    width: u16,
    theme: &Theme,
) -> Vec<Line<'static>> {
    if !is_expanded(state, i) {
        return Vec::new();
    }
    let Some(chat) = shown(state, i) else {
        return Vec::new();
    };
    let label = theme.style("prompt.label");
    let tech = theme.style("prompt.technique");
    let muted = theme.style("muted");
    let mut out = Vec::new();
    let head = match &chat.source {
        Source::WillSend => "the chat it will send".to_string(),
        Source::Sent => "the chat as sent".to_string(),
        Source::SentOther(why) => format!("the chat {why}"),
    };
    out.push(clip(
        vec![
            Span::styled("▾ prompt", label),
            Span::styled(format!(" · {head} · {} folds", key_hint(state)), muted),
        ],
        width,
    ));
    if let Some(d) = chat.deferred {
        out.extend(super::diff::wrap_styled(
            &[(format!("({d})").as_str(), muted)],
            width,
        ));
    }
    for m in chat.chat.iter() {
        let style = if matches!(m.block, Block::Example { .. }) {
            tech
        } else {
            label
        };
        out.push(clip(
            vec![Span::styled(format!("┄ {} ", block_label(m)), style)],
            width,
        ));
        let passages = m.passages();
        let mut passage = 0;
        let mut parts: Vec<(&str, Style)> = Vec::new();
        for (p, text) in &m.pieces {
            if matches!(p, Piece::Passage(_)) {
                passage += 1;
            }
            if let Some(l) = piece_label(p, passage, passages) {
                out.extend(wrap_trimmed(&parts, width));
                parts.clear();
                out.push(clip(vec![Span::styled(format!("┆ {l}"), tech)], width));
            }
            // The blank line before the cue is part of what is sent, not worth a row here.
            let text = if *p == Piece::StepByStep {
                text.trim_start()
            } else {
                text.as_str()
            };
            parts.push((text, piece_style(p, theme)));
        }
        out.extend(wrap_trimmed(&parts, width));
    }
    out.push(clip(vec![Span::styled("┄ answer ", label)], width));
    out
}

/// The prompt diff layer: `other → focused`, the chats as sent, word by word.
pub(crate) fn draw_diff(
    frame: &mut ratatui::Frame,
    area: Rect,
    d: &crate::app::model::prompt_model::PromptDiff,
    theme: &Theme,
) {
    let more = if d.targets > 1 {
        format!(" · = next ({}/{})", d.target + 1, d.targets)
    } else {
        String::new()
    };
    let title = format!(
        " Prompt diff {} → {} · +{} −{} words{more} · Esc closes ",
        visible(&d.old_label),
        visible(&d.new_label),
        d.added,
        d.removed
    );
    super::diff::draw_spans(
        frame,
        area,
        &title,
        &d.spans,
        d.scroll,
        "(both prompts are empty)",
        theme,
    );
}

/// Wrapped rows without the blank ones at the end (a label row or a message head follows).
fn wrap_trimmed(parts: &[(&str, Style)], width: u16) -> Vec<Line<'static>> {
    let mut rows = super::diff::wrap_styled(parts, width);
    while rows
        .last()
        .is_some_and(|r| r.spans.iter().all(|s| s.content.trim().is_empty()))
    {
        rows.pop();
    }
    rows
}

#[cfg(test)]
mod tests;
