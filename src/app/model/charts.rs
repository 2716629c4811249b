//! The data of the results layers: the charts (`c` over the leaderboard: the board it was
//! opened from, the stars histograms and the model speeds) and a variant's version history
//! (`V`), computed when they open (views only draw). Nothing here depends on the app state,
//! which holds these.

use crate::eval::figures::{self, ModelSpeed, StarsHistogram};
use crate::eval::leaderboard::Leaderboard;
use crate::state::session::Session;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChartsView {
    pub board: Leaderboard,
    pub stars: Vec<StarsHistogram>,
    pub speeds: Vec<ModelSpeed>,
}

pub(crate) fn open(session: &Session, board: &Leaderboard) -> ChartsView {
    ChartsView {
        board: board.clone(),
        stars: figures::stars_histograms(session),
        speeds: figures::model_speeds(session),
    }
}

/// The history layer (`V`): one variant's versions and their results, computed when it
/// opened.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistoryView {
    pub variant: String,
    pub rows: Vec<crate::eval::history::VersionRow>,
    pub selected: usize,
}
