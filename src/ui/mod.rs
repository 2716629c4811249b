//! Views: one file per surface. A view draws `&AppState` (plus explicit caches) into a frame
//! and changes nothing; what a frame measured (rows per pane) is returned for the driver to
//! feed back.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod answer;
pub(crate) mod diff;
pub(crate) mod footer;
pub(crate) mod header;

pub(crate) mod overlays;
pub(crate) mod panes;
pub(crate) mod rating;
pub(crate) mod tree;

use ratatui::layout::Rect;
use ratatui::Frame;

use crate::app::model::layout;

use crate::app::model::state::{AppState, PaneMetrics};
use crate::config::theme::Theme;

/// Caches the views keep between frames.
#[derive(Default)]
pub(crate) struct ViewCache {
    /// Per pane, same order as the variants.
    pub answers: Vec<answer::AnswerView>,
    /// The two sides of a blind comparison.
    pub compare: [answer::AnswerView; 2],
}

/// Draw the whole screen.
pub(crate) fn draw(
    frame: &mut Frame,
    state: &AppState,
    cache: &mut ViewCache,
    theme: &Theme,
) -> Vec<PaneMetrics> {
    let area = frame.area();
    let l = layout::screen(
        area,
        state.panes.len(),
        state.first,
        state.focus,
        state.zoomed,
    );
    header::draw(frame, l.header, state, theme);
    let metrics = panes::draw(frame, &l, state, cache, theme);
    footer::draw(frame, l.footer, state, theme);
    overlays::draw(frame, area, state, theme);
    rating::draw(frame, area, state, cache, theme);
    metrics
}

/// A rectangle of `w`×`h` centred in `area`, clipped to it.
pub(crate) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

#[cfg(test)]
mod tests;
