//! The frame every full-body overlay shares (diff, heat, history, passages, tree, charts): the
//! rectangle between the header and the footer, cleared, with a bordered, titled block. A leaf,
//! so the overlays use it without importing each other.

use ratatui::layout::Rect;
use ratatui::widgets::{Block, Borders, Clear, Widget};
use ratatui::Frame;

use crate::config::theme::Theme;

/// The body of the screen: between the header and the footer.
pub(crate) fn body(area: Rect) -> Rect {
    let top = crate::app::model::layout::HEADER_ROWS.min(area.height);
    let bottom = crate::app::model::layout::FOOTER_ROWS.min(area.height - top);
    Rect::new(area.x, area.y + top, area.width, area.height - top - bottom)
}

/// Clear `r`, draw the overlay border titled `title` around it and return the inside; `None`
/// (and nothing drawn) when `r` is smaller than `min` (width, height).
pub(crate) fn boxed(
    frame: &mut Frame,
    r: Rect,
    min: (u16, u16),
    title: &str,
    theme: &Theme,
) -> Option<Rect> {
    if r.width < min.0 || r.height < min.1 {
        return None;
    }
    let buf = frame.buffer_mut();
    Clear.render(r, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style("overlay.border"))
        .title(title);
    let inner = block.inner(r);
    block.render(r, buf);
    Some(inner)
}

/// [`boxed`] over the body of `area`.
pub(crate) fn overlay(
    frame: &mut Frame,
    area: Rect,
    min: (u16, u16),
    title: &str,
    theme: &Theme,
) -> Option<Rect> {
    boxed(frame, body(area), min, title, theme)
}
