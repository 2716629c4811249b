//! The which-key hint (helix's): while a key sequence is pending (`space` pressed, waiting
//! for `c`), a box above the footer lists the keys that can follow and what each does, from
//! the same keymap and command table the key goes through.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use crate::app::model::commands::accepts;
use crate::app::model::keys::KeySeq;
use crate::app::model::state::AppState;
use crate::config::theme::Theme;

/// The hint's rows: each continuation's keys and help text.
pub(crate) fn rows(state: &AppState) -> Vec<(String, &'static str)> {
    let Some(p) = &state.pending_keys else {
        return Vec::new();
    };
    let mode = state.mode_at(p.depth);
    state
        .keymap
        .continuations(mode, &p.keys)
        .into_iter()
        .filter(|(_, a)| accepts(mode, *a))
        .map(|(rest, a)| (rest.to_string(), a.help()))
        .collect()
}

/// Draw the hint in the bottom right of `area` (the whole screen), over the panes and above
/// the footer line.
pub(crate) fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: &Theme) {
    let Some(p) = &state.pending_keys else {
        return;
    };
    let rows = rows(state);
    let title = format!(" {} … ", KeySeq(p.keys.clone()));
    let key_w = rows.iter().map(|(k, _)| k.width()).max().unwrap_or(1);
    let help_w = rows.iter().map(|(_, h)| h.width()).max().unwrap_or(0);
    let cancel = "Esc cancels";
    let inner_w = (key_w + 2 + help_w).max(cancel.width()).max(title.width());
    // One line per continuation and the cancel line, in a border; never past the screen.
    let w = u16::try_from(inner_w + 2)
        .unwrap_or(u16::MAX)
        .min(area.width.min(70));
    let h = u16::try_from(rows.len() + 3)
        .unwrap_or(u16::MAX)
        .min(area.height.saturating_sub(1));
    if w < 3 || h < 3 {
        return;
    }
    let r = Rect::new(
        area.x + area.width - w,
        area.y + area.height.saturating_sub(1) - h,
        w,
        h,
    );
    Clear.render(r, frame.buffer_mut());
    let b = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style("overlay.border"))
        .title(title);
    let inner = b.inner(r);
    b.render(r, frame.buffer_mut());
    let mut lines: Vec<Line> = rows
        .iter()
        .map(|(k, help)| {
            Line::from(vec![
                Span::styled(format!("{k:<key_w$}  "), theme.style("footer.key")),
                Span::styled(help.to_string(), theme.style("text")),
            ])
        })
        .collect();
    lines.push(Line::styled(cancel, theme.style("muted")));
    // With too little room, the cancel line stays and the list is cut.
    let room = usize::from(inner.height);
    if lines.len() > room {
        lines.drain(room.saturating_sub(1)..lines.len() - 1);
    }
    for (i, line) in lines.iter().enumerate() {
        frame
            .buffer_mut()
            .set_line(inner.x, inner.y + i as u16, line, inner.width);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::model::keys::KeyCode;
    use crate::app::update::tests::{app, key};
    use crate::ui::tests::screen;

    #[test]
    fn the_hint_lists_the_space_group_while_it_is_pending() {
        let mut s = app();
        key(&mut s, KeyCode::Char(' '));
        let r = rows(&s);
        assert!(
            r.iter()
                .any(|(k, h)| k == "c" && h.starts_with("Critique the answer")),
            "{r:?}"
        );
        let small = screen(&mut s, 80, 24);
        assert!(
            small.contains("space …") && small.contains("Esc cancels"),
            "{small}"
        );
        insta::assert_snapshot!("which_key_space_80x24", small);
        insta::assert_snapshot!("which_key_space_160x48", screen(&mut s, 160, 48));
        // Done (or cancelled): the hint is gone.
        key(&mut s, KeyCode::Esc);
        assert!(!screen(&mut s, 80, 24).contains("Esc cancels"));
    }

    #[test]
    fn a_tiny_screen_cuts_the_list_and_keeps_the_cancel_line() {
        let mut s = app();
        key(&mut s, KeyCode::Char(' '));
        for (w, h) in [(1u16, 1u16), (10, 4), (20, 6), (40, 8)] {
            let out = screen(&mut s, w, h);
            assert_eq!(out.lines().count(), usize::from(h));
        }
        assert!(screen(&mut s, 40, 8).contains("Esc cancels"));
    }
}
