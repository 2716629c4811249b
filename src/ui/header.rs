//! The header: prompt file, selected case and its variables, session file, models and their
//! load state.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::Frame;

use crate::app::model::state::AppState;
use crate::chat::BackendStatus;
use crate::config::theme::Theme;
use crate::sanitize::visible;

pub(crate) fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: &Theme) {
    if area.height == 0 {
        return;
    }
    let key = theme.style("header.key");
    let text = theme.style("header");
    let muted = theme.style("muted");
    let file = state.prompt.path.display().to_string();
    let vars = state
        .current_case()
        .map(|c| {
            c.vars
                .iter()
                .map(|(k, v)| format!("{k}={}", visible(v)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let dirty = if state.variants_dirty {
        " [modified]"
    } else {
        ""
    };
    let line1 = Line::from(vec![
        Span::styled(visible(&file), text),
        Span::styled(dirty, theme.style("status.waiting")),
        Span::styled("  case ", muted),
        Span::styled(
            format!(
                "{} [{}/{}]",
                visible(&state.case_name()),
                state.case + 1,
                state.prompt.cases.len()
            ),
            key,
        ),
        Span::styled(format!(" {vars}"), text),
    ]);
    frame
        .buffer_mut()
        .set_line(area.x, area.y, &line1, area.width);
    if area.height < 2 {
        return;
    }
    let spin = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]
        [(state.now.as_millis() / 100) as usize % 10];
    let mut used: Vec<&str> = state
        .prompt
        .variants
        .iter()
        .map(|v| v.model.as_str())
        .collect();
    used.sort();
    used.dedup();
    let mut spans = vec![Span::styled("models ", muted)];
    for m in used {
        let (st, role) = match state.model_status.get(m) {
            None | Some(BackendStatus::Idle) => ("idle".to_string(), "status.idle"),
            Some(BackendStatus::Loading) => (format!("loading {spin}"), "status.waiting"),
            Some(BackendStatus::Ready) => ("ready".to_string(), "status.done"),
            Some(BackendStatus::Failed(e)) => (format!("error: {}", visible(e)), "status.error"),
        };
        spans.push(Span::styled(format!("{} ", visible(m)), key));
        spans.push(Span::styled(format!("{st}  "), theme.style(role)));
    }
    spans.push(Span::styled("session ", muted));
    spans.push(Span::styled(
        visible(&state.session_path.display().to_string()),
        text,
    ));
    frame
        .buffer_mut()
        .set_line(area.x, area.y + 1, &Line::from(spans), area.width);
}
