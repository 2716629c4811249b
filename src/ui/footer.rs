//! The footer: the keys that work right now, after any message. It lists the commands the
//! top layer's handler takes (`app::model::commands`, the table its dispatch goes through)
//! with the keys the keymap binds to them, so it can't drift from what the keys do.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::Frame;

use crate::app::model::commands::{command, Hint};
use crate::app::model::state::AppState;
use crate::config::keymap::Action;
use crate::config::theme::Theme;
use crate::sanitize::visible;

/// Whether a command's key is worth footer space right now, per its [`Hint`]: tool keys are
/// hinted only where they do something (stepping and editing when the prompt file has tools,
/// approve/deny while a call waits for the user).
fn in_footer(state: &AppState, hint: Hint) -> bool {
    match hint {
        Hint::Footer | Hint::Joined { .. } => true,
        Hint::HelpOnly => false,
        Hint::WhileToolWaits => state.tools.confirming.is_some(),
        Hint::WithTools => !state.prompt.tools.is_empty(),
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
    let key = |a: Action| state.keymap.key_for(mode, a).map(|k| k.to_string());
    let mut hints: Vec<(String, &str)> = Vec::new();
    // In the order of the keymap's bindings (actions as declared), the commands the active
    // layer's handler takes and hints in the footer.
    for (action, keys) in state.keymap.bindings(mode) {
        let Some(c) = command(mode, action).filter(|c| in_footer(state, c.hint)) else {
            continue;
        };
        let hint = match c.hint {
            Hint::Joined {
                first,
                second,
                sep,
                label,
            } => match (key(first), key(second)) {
                (Some(a), Some(b)) => (format!("{a}{sep}{b}"), label),
                (Some(k), None) | (None, Some(k)) => (k, label),
                (None, None) => continue,
            },
            _ => (
                keys.first().map(|k| k.to_string()).unwrap_or_default(),
                action.short(),
            ),
        };
        hints.push(hint);
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
