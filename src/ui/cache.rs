//! The caches the views keep between frames, in a leaf so the surfaces that fill them
//! (`panes.rs`, `rating.rs`) and `ui/mod.rs`, which owns them for a frame, share the type
//! without importing each other.

use super::answer;

/// Caches the views keep between frames.
#[derive(Default)]
pub(crate) struct ViewCache {
    /// Per pane, same order as the variants.
    pub answers: Vec<answer::AnswerView>,
    /// The two sides of a blind comparison.
    pub compare: [answer::AnswerView; 2],
}
