//! The heat layer's state (`H`): which answer it shows, the token under the cursor and the
//! alternative selected there, and the probability bands the view shades and `n` jumps by.
//! Its keys and branching from a token are in `app::update::heat`, its drawing in `ui::heat`.

/// Probabilities below this are "low" (shaded strongest; `n` jumps between them).
pub(crate) const LOW: f64 = 0.5;
/// Probabilities below this (and at least [`LOW`]) are "uncertain".
pub(crate) const MID: f64 = 0.9;

/// What the heat layer shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HeatView {
    pub node: u64,
    /// The pane it was opened from (a branch streams there).
    pub pane: usize,
    /// The token under the cursor.
    pub cursor: usize,
    /// The selected alternative at the cursor.
    pub alt: usize,
}
