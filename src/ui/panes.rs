//! The variant panes: name, model, live status and figures, the answer (from the row cache,
//! only the visible rows drawn), then check results and any error in full.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};
use ratatui::Frame;

use super::answer::AnswerView;
use super::cache::ViewCache;
use crate::app::model::layout::ScreenLayout;
use crate::app::model::state::{AppState, PaneMetrics, Phase};
use crate::config::theme::Theme;
use crate::sanitize::{one_line, visible};

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub(crate) fn draw(
    frame: &mut Frame,
    l: &ScreenLayout,
    state: &AppState,
    cache: &mut ViewCache,
    theme: &Theme,
) -> Vec<PaneMetrics> {
    let mut metrics = vec![PaneMetrics::default(); state.panes.len()];
    cache
        .answers
        .resize_with(state.panes.len(), AnswerView::default);
    for &(i, area) in &l.panes {
        if let Some(m) = draw_pane(
            frame.buffer_mut(),
            area,
            state,
            i,
            &mut cache.answers[i],
            theme,
        ) {
            metrics[i] = m;
        }
    }
    // Show where we are when not every pane fits.
    if !state.zoomed && l.panes.len() < state.panes.len() && l.body.height > 0 {
        let first = l.panes.first().map_or(0, |p| p.0);
        let last = l.panes.last().map_or(0, |p| p.0);
        let text = format!(
            "{}{}-{} of {}{}",
            if first > 0 { "◀ " } else { "  " },
            first + 1,
            last + 1,
            state.panes.len(),
            if last + 1 < state.panes.len() {
                " ▶"
            } else {
                "  "
            }
        );
        let w = text.chars().count() as u16;
        if l.body.width > w + 2 {
            let x = l.body.x + l.body.width - w - 1;
            frame.buffer_mut().set_string(
                x,
                l.body.y + l.body.height - 1,
                text,
                theme.style("header.key"),
            );
        }
    }
    metrics
}

/// The status line: phase, elapsed or figures.
pub(crate) fn status_line(state: &AppState, i: usize, theme: &Theme) -> Line<'static> {
    let p = &state.panes[i];
    let node = state.pane_node(i);
    let spin = SPINNER[(state.now.as_millis() / 100) as usize % SPINNER.len()];
    let elapsed = state.now.saturating_sub(p.started).as_secs_f64();
    let (label, role) = match p.phase {
        Phase::Idle => ("idle".to_string(), "status.idle"),
        Phase::Queued => ("queued".to_string(), "status.queued"),
        Phase::Waiting => (format!("{spin} waiting {elapsed:.1}s"), "status.waiting"),
        Phase::Streaming => (format!("{spin} streaming"), "status.streaming"),
        Phase::Done => ("done".to_string(), "status.done"),
        Phase::Cancelled => ("cancelled".to_string(), "status.cancelled"),
        Phase::Error => ("error".to_string(), "status.error"),
    };
    let mut spans = vec![Span::styled(label, theme.style(role))];
    let (ttft, tokens, rate) = if p.phase.is_active() {
        let st = p.meter.stats();
        (st.ttft_ms, st.tokens_out, st.tok_per_s)
    } else {
        match node {
            Some(n) => (n.ttft_ms, n.tokens_out, n.tok_per_s),
            None => (None, 0, None),
        }
    };
    let muted = theme.style("muted");
    if let Some(t) = ttft {
        spans.push(Span::styled(format!(" · ttft {t} ms"), muted));
    }
    if tokens > 0 {
        // `~`: counted or estimated here, the backend sent no count.
        let approx = node.filter(|n| !p.phase.is_active() && n.tokens_approx());
        let mark = if approx.is_some() { "~" } else { "" };
        spans.push(Span::styled(format!(" · {mark}{tokens} tok"), muted));
    }
    if let Some(r) = rate {
        spans.push(Span::styled(format!(" · {r:.1} tok/s"), muted));
    }
    if let Some(n) = node.filter(|n| n.passed().is_some() && p.phase == Phase::Done) {
        let pass = n.checks.iter().filter(|c| c.pass).count();
        let (mark, role) = if n.passed() == Some(true) {
            ("✓", "check.pass")
        } else {
            ("✗", "check.fail")
        };
        spans.push(Span::styled(
            format!(" · {mark} {pass}/{}", n.checks.len()),
            theme.style(role),
        ));
    }
    // Last: a narrow pane cuts the cost before the verdict (the run table and the
    // leaderboard show it too).
    if let Some(n) = node.filter(|_| !p.phase.is_active()) {
        spans.extend(super::cost::cost_spans(n, &state.session.prices, muted));
    }
    Line::from(spans)
}

/// Rows after the answer: notices, checks, errors (wrapped, in full).
fn extra_rows(state: &AppState, i: usize, width: u16, theme: &Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let p = &state.panes[i];
    let node = state.pane_node(i);
    let mut push = |text: String, style: Style| {
        let rows = super::answer::render_all(&text, width, theme);
        for r in rows {
            out.push(Line::from(
                r.spans
                    .into_iter()
                    .map(|s| Span::styled(s.content, style))
                    .collect::<Vec<_>>(),
            ));
        }
    };
    if p.phase.is_active() {
        if let Some(n) = &p.notice {
            push(format!("({})", visible(n)), theme.style("muted"));
        }
    }
    if let Some(n) = node {
        if p.phase == Phase::Done && !n.checks.is_empty() {
            push(String::new(), Style::default());
            for c in &n.checks {
                let (mark, role) = if c.pass {
                    ("✓", "check.pass")
                } else {
                    ("✗", "check.fail")
                };
                push(
                    format!("{mark} {}: {}", c.kind, c.detail),
                    theme.style(role),
                );
            }
        }
        if let Some(e) = &n.error {
            push(String::new(), Style::default());
            push(format!("error: {e}"), theme.style("error"));
        }
        if let Some(line) = super::heat::branch_note(n) {
            push(line, theme.style("muted"));
        }
        if let Some(by) = n.meta.get("stopped_on") {
            push(
                format!("stopped early, checks decided ({})", visible(by)),
                theme.style("muted"),
            );
        }
        // Self-consistency (`#`): the samples of this answer as clusters, or which sample
        // this is.
        if let Some((total, ended, st)) = crate::app::model::queries::samples_of(state, n.id) {
            push(String::new(), Style::default());
            let head = match &st {
                Some(st) => format!(
                    "samples {ended}/{total} ended · {}",
                    crate::eval::figures::describe_stability(st)
                ),
                None => format!("samples {ended}/{total} ended"),
            };
            push(head, theme.style("prompt.label"));
            for c in st.iter().flat_map(|st| st.by_text.iter()).take(5) {
                let ids: Vec<String> = c.members.iter().map(|m| format!("#{m}")).collect();
                push(
                    format!(
                        "  {}× {} · {}",
                        c.members.len(),
                        one_line(&visible(&c.key), 48),
                        ids.join(" ")
                    ),
                    theme.style("muted"),
                );
            }
        }
        if let (Some(k), Some(parent)) = (n.meta.get(crate::eval::consistency::INDEX_KEY), n.parent)
        {
            if n.meta.contains_key(crate::eval::consistency::GROUP_KEY) {
                let k = k
                    .parse::<usize>()
                    .map_or(k.clone(), |k| (k + 1).to_string());
                push(
                    format!("sample {} of #{parent}", visible(&k)),
                    theme.style("muted"),
                );
            }
        }
        // What retrieval and example selection put in the prompt (file:lines score).
        for (key, label) in [("retrieved", "context"), ("examples_selected", "examples")] {
            if let Some(m) = n.meta.get(key) {
                push(format!("{label}: {}", visible(m)), theme.style("muted"));
            }
        }
    }
    if !p.phase.is_active() {
        let notes = crate::app::model::queries::pane_notes(state, i);
        if !notes.is_empty() {
            push(String::new(), Style::default());
        }
        for (text, role) in notes {
            push(text, theme.style(role));
        }
    }
    if node.is_none() && p.phase == Phase::Idle {
        let key = state
            .keymap
            .key_for(
                crate::config::keymap::Mode::Normal,
                crate::app::Action::RunAll,
            )
            .map(|k| k.to_string())
            .unwrap_or_else(|| "run_all".into());
        push(format!("Press {key} to run."), theme.style("muted"));
    }
    out
}

fn draw_pane(
    buf: &mut Buffer,
    area: Rect,
    state: &AppState,
    i: usize,
    view: &mut AnswerView,
    theme: &Theme,
) -> Option<PaneMetrics> {
    let v = state.prompt.variants.get(i)?;
    let focused = i == state.focus;
    let border = if focused {
        theme.style("pane.focused.border")
    } else {
        theme.style("pane.border")
    };
    let mut title = vec![
        Span::styled(format!(" {} ", visible(&v.name)), theme.style("pane.title")),
        Span::styled(format!("· {} ", visible(&v.model)), theme.style("muted")),
    ];
    // A model with LoRA adapters says which: "base + best prompt" and "base + adapter" race
    // side by side, and the header tells them apart.
    if let Some(a) = state.adapters.get(&v.model) {
        title.push(Span::styled(
            format!("+ lora {} ", visible(a)),
            theme.style("muted"),
        ));
    }
    // `rev 2/3`, `generated`, or the kind of a promoted node.
    if let Some(b) = crate::app::model::queries::pane_badge(state, i) {
        title.push(Span::styled(format!("· {b} "), theme.style("header.key")));
    }
    let title = Line::from(title);
    let mut block = Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(title);
    if let Some(r) = super::rating::pane_rating(state, i, theme) {
        block = block.title_top(r);
    }
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 || inner.width == 0 {
        return Some(PaneMetrics::default());
    }
    buf.set_line(inner.x, inner.y, &status_line(state, i, theme), inner.width);
    let mut body = Rect::new(inner.x, inner.y + 1, inner.width, inner.height - 1);
    if let Some(note) = super::rating::pane_note(state, i, inner.width, theme) {
        if body.height > 1 {
            buf.set_line(body.x, body.y, &note, body.width);
            body.y += 1;
            body.height -= 1;
        }
    }
    // The prompt: compact above the answer, or its full chat scrolling with it.
    let body = super::prompt_view::draw_compact(buf, body, state, i, theme);
    // Then, in a tool-using conversation, earlier turns and their calls; this turn's calls
    // below the answer.
    let mut above = super::prompt_view::expanded_rows(state, i, body.width, theme);
    let text = state.pane_node(i).map_or("", |n| n.text.as_str());
    let node_id = state.panes[i].node.unwrap_or(0);
    view.sync(node_id, text, body.width, theme);
    above.extend(super::tool_block::rows_above(state, i, body.width, theme));
    let mut extra = super::tool_block::rows_below(state, i, body.width, theme);
    extra.extend(extra_rows(state, i, body.width, theme));
    let total = above.len() + view.len() + extra.len();
    let h = usize::from(body.height);
    let max = total.saturating_sub(h);
    let p = &state.panes[i];
    let top = if p.follow { max } else { p.scroll.min(max) };
    for row in 0..h {
        let idx = top + row;
        let line = if idx < above.len() {
            above.get(idx)
        } else if idx - above.len() < view.len() {
            view.row(idx - above.len())
        } else {
            extra.get(idx - above.len() - view.len())
        };
        let Some(line) = line else { break };
        buf.set_line(body.x, body.y + row as u16, line, body.width);
    }
    if total > h && body.width > 2 {
        // A scroll position marker on the right border.
        let pos = (top * usize::from(body.height.saturating_sub(1)))
            .checked_div(max)
            .unwrap_or(0);
        let y = body.y + pos as u16;
        if let Some(cell) = buf.cell_mut((area.x + area.width - 1, y)) {
            cell.set_symbol("┃").set_style(border);
        }
    }
    Some(PaneMetrics {
        total_rows: total,
        view_rows: h,
    })
}
