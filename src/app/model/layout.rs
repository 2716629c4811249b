//! Where things go on screen. Shared by the views and by `update` (mouse hits, horizontal
//! pane scrolling), so both agree on geometry; it lives in the model so `update` needs no view.

use ratatui::layout::Rect;

pub(crate) const HEADER_ROWS: u16 = 2;
pub(crate) const FOOTER_ROWS: u16 = 1;
/// Narrowest pane worth showing side by side.
pub(crate) const MIN_PANE_WIDTH: u16 = 30;

/// How many panes fit side by side.
pub(crate) fn visible_count(width: u16, n: usize) -> usize {
    usize::from((width / MIN_PANE_WIDTH).max(1)).min(n.max(1))
}

/// The screen's regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScreenLayout {
    pub header: Rect,
    pub body: Rect,
    pub footer: Rect,
    /// Visible panes: (variant index, area).
    pub panes: Vec<(usize, Rect)>,
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

pub(crate) fn screen(
    area: Rect,
    n: usize,
    first: usize,
    focus: usize,
    zoomed: bool,
) -> ScreenLayout {
    let header_h = HEADER_ROWS.min(area.height);
    let footer_h = FOOTER_ROWS.min(area.height - header_h);
    let header = Rect::new(area.x, area.y, area.width, header_h);
    let footer = Rect::new(
        area.x,
        area.y + area.height - footer_h,
        area.width,
        footer_h,
    );
    let body = Rect::new(
        area.x,
        area.y + header_h,
        area.width,
        area.height - header_h - footer_h,
    );
    let mut panes = Vec::new();
    if n > 0 && body.height > 0 && body.width > 0 {
        if zoomed {
            panes.push((focus.min(n - 1), body));
        } else {
            let vis = visible_count(area.width, n);
            let first = first.min(n - vis);
            let w = body.width / vis as u16;
            let extra = body.width - w * vis as u16;
            let mut x = body.x;
            for k in 0..vis {
                let width = w + u16::from((k as u16) < extra);
                panes.push((first + k, Rect::new(x, body.y, width, body.height)));
                x += width;
            }
        }
    }
    ScreenLayout {
        header,
        body,
        footer,
        panes,
    }
}
