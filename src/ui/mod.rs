//! Views: one file per surface. A view draws `&AppState` (plus explicit caches) into a frame
//! and changes nothing; what a frame measured (rows per pane) is returned for the driver to
//! feed back.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod answer;
mod cache;
pub(crate) mod charts;
pub(crate) mod cost;
pub(crate) mod diff;
pub(crate) mod footer;
pub(crate) mod frame;
pub(crate) mod header;
pub(crate) mod heat;
pub(crate) mod history;
pub(crate) mod overlays;
pub(crate) mod panes;
pub(crate) mod passages;
pub(crate) mod prompt_view;
pub(crate) mod rating;
pub(crate) mod tool_block;
pub(crate) mod tree;
pub(crate) mod which_key;

use ratatui::layout::Rect;
use ratatui::Frame;

use crate::app::model::layout;

use crate::app::model::state::{AppState, Layer, PaneMetrics};
use crate::config::theme::Theme;
pub(crate) use cache::ViewCache;

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
    draw_layers(frame, area, state, cache, theme);
    which_key::draw(frame, area, state, theme);
    metrics
}

/// The layer stack in one walk, bottom to top (helix's compositor): the top of the stack is
/// drawn last, so it is on top on screen too, whichever module draws its kind.
fn draw_layers(
    frame: &mut Frame,
    area: Rect,
    state: &AppState,
    cache: &mut ViewCache,
    theme: &Theme,
) {
    for layer in &state.layers {
        match layer {
            Layer::Note { .. } | Layer::Compare(_) | Layer::Leaderboard(_) | Layer::Browser(_) => {
                rating::draw_layer(frame, area, state, layer, cache, theme)
            }
            _ => overlays::draw_layer(frame, area, state, layer, theme),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
