//! Layers drawn over the panes, bottom to top: the `?` help (the commands each mode's handler
//! takes, with their keys from the keymap), the case and model pickers, the variant editor, one-line inputs, confirmations.

use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use crate::app::model::commands::accepts;
use crate::app::model::layout::centered;
use crate::app::model::state::{AppState, InputPurpose, Layer, PickerKind};
use crate::config::keymap::Mode;
use crate::config::theme::Theme;
use crate::sanitize::visible;

/// Draw one of the built-in layers (help, pickers, editors, confirmations) and the technique
/// layers; `ui::draw_layers` walks the stack.
pub(crate) fn draw_layer(
    frame: &mut Frame,
    area: Rect,
    state: &AppState,
    layer: &Layer,
    theme: &Theme,
) {
    {
        match layer {
            Layer::Help { scroll } => help(frame, area, state, *scroll, theme),
            Layer::Picker {
                kind,
                items,
                selected,
                filter,
            } => picker(frame, area, *kind, items, *selected, filter, theme),
            Layer::Editor {
                variant,
                area: text,
                error,
            } => editor(frame, area, state, *variant, text, error.as_deref(), theme),
            Layer::Input { purpose, text } => input(frame, area, *purpose, text, theme),
            // Drawn by `ui::rating::draw_layer`.
            Layer::Note { .. } | Layer::Compare(_) | Layer::Leaderboard(_) | Layer::Browser(_) => {}
            Layer::ConfirmDelete { variant } => {
                let name = state
                    .prompt
                    .variants
                    .get(*variant)
                    .map(|v| visible(&v.name))
                    .unwrap_or_default();
                let r = box_at(frame, area, 50, 3, " Delete ", theme);
                frame.buffer_mut().set_string(
                    r.x,
                    r.y,
                    format!("Delete variant {name:?}? (y/n)"),
                    theme.style("text"),
                );
            }
            Layer::Tree(t) => super::tree::draw(frame, area, state, t, theme),
            Layer::Diff(d) => super::diff::draw(frame, area, state, d, theme),
            Layer::PromptDiff(d) => super::prompt_view::draw_diff(frame, area, d, theme),
            Layer::History(h) => super::history::draw(frame, area, h, theme),
            Layer::Charts(c) => super::charts::draw(frame, area, c, theme),
            Layer::SearchParams(f) => super::tree::draw_form(frame, area, f, theme),
            Layer::Heat(h) => super::heat::draw(frame, area, state, h, theme),
            Layer::Passages(v) => super::passages::draw(frame, area, v, theme),
        }
    }
}

/// Clear a centred box, draw its border, return the inside.
fn box_at(frame: &mut Frame, area: Rect, w: u16, h: u16, title: &str, theme: &Theme) -> Rect {
    let r = centered(area, w.saturating_add(2), h.saturating_add(2));
    Clear.render(r, frame.buffer_mut());
    let b = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style("overlay.border"))
        .title(title.to_string());
    let inner = b.inner(r);
    b.render(r, frame.buffer_mut());
    inner
}

/// The help overlay's lines: the keys of the layer it was opened over (the layer its keys
/// pass through to) first, then every other mode's. Each lists the commands its handler
/// takes (`app::model::commands`) with every key and sequence bound to them.
pub(crate) fn help_lines(state: &AppState, theme: &Theme) -> Vec<Line<'static>> {
    let beneath = match state.layers.split_last() {
        Some((Layer::Help { .. }, rest)) => rest.last().map_or(Mode::Normal, Layer::mode),
        _ => state.mode(),
    };
    let order = std::iter::once(beneath).chain(Mode::ALL.into_iter().filter(|m| *m != beneath));
    let mut lines = Vec::new();
    for mode in order {
        let b: Vec<_> = state
            .keymap
            .bindings(mode)
            .into_iter()
            .filter(|(a, _)| accepts(mode, *a))
            .collect();
        if b.is_empty() {
            continue;
        }
        lines.push(Line::styled(mode.name().to_string(), theme.style("header")));
        for (action, keys) in b {
            // `h Left`, but `c, space c` once a sequence (itself spaced) is among them.
            let sep = if keys.iter().any(|k| k.len() > 1) {
                ", "
            } else {
                " "
            };
            let ks = keys
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(sep);
            lines.push(Line::from(vec![
                Span::styled(format!("  {ks:<14}"), theme.style("footer.key")),
                Span::styled(action.help().to_string(), theme.style("text")),
            ]));
        }
    }
    lines
}

fn help(frame: &mut Frame, area: Rect, state: &AppState, scroll: usize, theme: &Theme) {
    let lines = help_lines(state, theme);
    let inner = box_at(
        frame,
        area,
        70,
        area.height.saturating_sub(4),
        " Keys (Esc closes) ",
        theme,
    );
    let h = usize::from(inner.height);
    let top = scroll.min(lines.len().saturating_sub(h));
    for (row, line) in lines.iter().skip(top).take(h).enumerate() {
        frame
            .buffer_mut()
            .set_line(inner.x, inner.y + row as u16, line, inner.width);
    }
}

fn picker(
    frame: &mut Frame,
    area: Rect,
    kind: PickerKind,
    items: &[String],
    selected: usize,
    filter: &str,
    theme: &Theme,
) {
    let title = match kind {
        PickerKind::Case => " Case (type to filter) ",
        PickerKind::Model => " Model (type to filter) ",
    };
    let shown = crate::app::model::queries::picker_matches(items, filter);
    // The filter line, then as many matches as fit.
    let h = (items.len() as u16)
        .saturating_add(1)
        .clamp(2, area.height.saturating_sub(4).max(2));
    let inner = box_at(frame, area, 50, h, title, theme);
    let width = usize::from(inner.width);
    let count = format!(" {}/{}", shown.len(), items.len());
    let typed = format!("> {}▏", visible(filter));
    let line = Line::from(vec![
        Span::styled(typed.clone(), theme.style("text")),
        Span::styled(
            format!("{count:>w$}", w = width.saturating_sub(typed.width())),
            theme.style("muted"),
        ),
    ]);
    frame
        .buffer_mut()
        .set_line(inner.x, inner.y, &line, inner.width);
    let rows = usize::from(inner.height.saturating_sub(1));
    if shown.is_empty() {
        frame.buffer_mut().set_stringn(
            inner.x,
            inner.y + 1,
            "no match",
            width,
            theme.style("muted"),
        );
        return;
    }
    let selected = selected.min(shown.len() - 1);
    let top = selected.saturating_sub(rows.saturating_sub(1));
    for (row, (pos, &i)) in shown.iter().enumerate().skip(top).take(rows).enumerate() {
        let style = if pos == selected {
            theme.style("overlay.selected")
        } else {
            theme.style("text")
        };
        let item = items.get(i).map(String::as_str).unwrap_or_default();
        let text = format!("{:<width$}", visible(item));
        frame
            .buffer_mut()
            .set_stringn(inner.x, inner.y + 1 + row as u16, text, width, style);
    }
}

fn editor(
    frame: &mut Frame,
    area: Rect,
    state: &AppState,
    variant: usize,
    text: &crate::app::model::edit::TextArea,
    error: Option<&str>,
    theme: &Theme,
) {
    let name = state
        .prompt
        .variants
        .get(variant)
        .map(|v| visible(&v.name))
        .unwrap_or_default();
    let inner = box_at(
        frame,
        area,
        area.width.saturating_sub(6),
        area.height.saturating_sub(4),
        &format!(" Edit {name} (Ctrl-S apply, Esc discard) "),
        theme,
    );
    if inner.height == 0 {
        return;
    }
    let text_h = inner.height.saturating_sub(u16::from(error.is_some()));
    for (row, line) in text
        .lines
        .iter()
        .skip(text.top)
        .take(usize::from(text_h))
        .enumerate()
    {
        frame.buffer_mut().set_stringn(
            inner.x,
            inner.y + row as u16,
            visible(line),
            usize::from(inner.width),
            theme.style("text"),
        );
    }
    if let Some(e) = error {
        frame.buffer_mut().set_stringn(
            inner.x,
            inner.y + inner.height - 1,
            visible(e),
            usize::from(inner.width),
            theme.style("error"),
        );
    }
    if text.row >= text.top && text.row < text.top + usize::from(text_h) {
        let line = text.lines.get(text.row).map_or("", String::as_str);
        let col = visible(&line[..text.col.min(line.len())]).width() as u16;
        frame.set_cursor_position(Position::new(
            (inner.x + col).min(inner.x + inner.width.saturating_sub(1)),
            inner.y + (text.row - text.top) as u16,
        ));
    }
}

fn input(frame: &mut Frame, area: Rect, purpose: InputPurpose, text: &str, theme: &Theme) {
    let title = match purpose {
        InputPurpose::FreeInput => " Input (Enter runs, Esc cancels) ",
        InputPurpose::Rename(_) => " Rename variant ",
        InputPurpose::ToolResult(_) => " Tool result (Enter re-runs from here, Esc cancels) ",
        InputPurpose::BranchToken => " Branch with this token (Enter continues from it) ",
    };
    let inner = box_at(frame, area, 60, 1, title, theme);
    let shown = visible(text);
    let w = shown.width() as u16;
    // Show the end of long input.
    let skip = w.saturating_sub(inner.width.saturating_sub(1));
    let tail: String = {
        let mut acc = 0u16;
        shown
            .chars()
            .skip_while(|c| {
                let cw = unicode_width::UnicodeWidthChar::width(*c).unwrap_or(0) as u16;
                acc += cw;
                acc <= skip && skip > 0
            })
            .collect()
    };
    frame.buffer_mut().set_stringn(
        inner.x,
        inner.y,
        &tail,
        usize::from(inner.width),
        theme.style("text"),
    );
    if inner.width > 0 && inner.height > 0 {
        frame.set_cursor_position(Position::new(
            (inner.x + tail.width() as u16).min(inner.x + inner.width - 1),
            inner.y,
        ));
    }
}
