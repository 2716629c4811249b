//! The footer: the keys that work right now, generated from the keymap for the top layer's
//! mode (so it can't drift from what the keys do), after any message.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::Frame;

use crate::app::model::state::AppState;
use crate::config::keymap::Action;
use crate::config::theme::Theme;
use crate::sanitize::visible;

/// Actions that are not worth footer space in normal mode (they're in `?`).
const QUIET: &[Action] = &[
    Action::FocusPrev,
    Action::FocusNext,
    Action::ScrollUp,
    Action::PageUp,
    Action::PageDown,
    Action::ScrollTop,
    Action::CancelAll,
    Action::Interrupt,
    Action::RerunFocused,
    Action::AddVariant,
    Action::DuplicateVariant,
    Action::RenameVariant,
    Action::DeleteVariant,
    Action::ExternalEditor,
    Action::PrevCase,
    Action::FocusLeft,
    Action::PickCase,
    Action::Stars2,
    Action::Stars3,
    Action::Stars4,
    Action::Stars5,
    Action::ClearStars,
    Action::ThumbDown,
    // Technique keys: in `?` and the README; the footer is full.
    Action::Critique,
    Action::CritiqueLoop,
    Action::PrevRevision,
    Action::NextRevision,
    Action::Diff,
    Action::Branch,
    Action::BranchSteps,
    Action::Tree,
    Action::Search,
    Action::Propose,
    Action::Judge,
    Action::JudgeAll,
    Action::JudgePair,
];

/// The tool keys are hinted only where they do something: stepping and editing when the
/// prompt file has tools, approve/deny while a call waits for the user.
fn tool_key_applies(state: &AppState, action: Action) -> bool {
    match action {
        Action::ApproveTool | Action::DenyTool => state.tools.confirming.is_some(),
        Action::NextToolCall | Action::PrevToolCall | Action::EditToolResult => {
            !state.prompt.tools.is_empty()
        }
        _ => true,
    }
}

pub(crate) fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: &Theme) {
    if area.height == 0 {
        return;
    }
    let mode = state.mode();
    let mut spans = Vec::new();
    if let Some(m) = &state.message {
        spans.push(Span::styled(
            format!("{} │ ", visible(m)),
            theme.style("status.waiting"),
        ));
    }
    let normal = mode == crate::config::keymap::Mode::Normal;
    let mut hints: Vec<(String, &str)> = Vec::new();
    for (action, keys) in state.keymap.bindings(mode) {
        if normal && (QUIET.contains(&action) || !tool_key_applies(state, action)) {
            continue;
        }
        let k = match action {
            Action::NextCase => "[ ]".to_string(),
            Action::FocusRight => "h/l".to_string(),
            Action::Stars1 => "1-5".to_string(),
            Action::ThumbUp => "+/-".to_string(),
            _ => keys.first().map(|k| k.to_string()).unwrap_or_default(),
        };
        let label = match action {
            Action::NextCase => "case",
            Action::FocusRight => "focus",
            Action::Stars1 => "stars",
            Action::ThumbUp => "thumb",
            a => a.short(),
        };
        hints.push((k, label));
    }
    // Help first, so it survives narrow terminals.
    if let Some(pos) = hints.iter().position(|(_, l)| *l == "help") {
        let h = hints.remove(pos);
        hints.insert(0, h);
    }
    for (k, label) in hints {
        spans.push(Span::styled(k, theme.style("footer.key")));
        spans.push(Span::styled(format!(" {label}  "), theme.style("footer")));
    }
    frame
        .buffer_mut()
        .set_line(area.x, area.y, &Line::from(spans), area.width);
}
