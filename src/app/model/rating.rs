//! What the rating features keep in the app state (rater, journal position) and the states
//! of their layers (blind comparison, leaderboard, session browser), with the effects they
//! ask of the driver and the reports that come back. The keys that change them are in
//! [`crate::app::update::rating`].

use std::path::PathBuf;

use crate::eval::active::Suggestion;
use crate::eval::leaderboard::{GroupBy, Leaderboard};
use crate::prompt::PromptFile;
use crate::state::session::{Node, Session};
use crate::store::journal::RatingEdit;

/// What the rating features keep in the app state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RatingState {
    /// Who ratings are recorded as (config `rater`, else the OS user).
    pub rater: String,
    /// Where the session browser looks for sessions.
    pub session_dirs: Vec<PathBuf>,
    /// The journal sequence number of the last durable rating or vote.
    pub last_saved: Option<u64>,
}

impl Default for RatingState {
    fn default() -> RatingState {
        RatingState {
            rater: "me".into(),
            session_dirs: Vec::new(),
            last_saved: None,
        }
    }
}

/// I/O the rating features ask the driver for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RatingEffect {
    /// Append to the journal (fsync), then apply to the session; answer with
    /// [`RatingIo::Journaled`].
    AppendRating {
        edit: RatingEdit,
        rater: String,
        at: String,
        /// What the footer says once saved, e.g. `#3 ★★★★☆`.
        what: String,
    },
    AppendVote {
        left: u64,
        right: u64,
        outcome: String,
        rater: String,
        at: String,
        what: String,
    },
    /// List the sessions in these folders; answer with [`RatingIo::Sessions`].
    ListSessions {
        dirs: Vec<PathBuf>,
        current: PathBuf,
    },
    /// Save and close the current session, open this one (journal replayed); answer with
    /// [`RatingIo::Opened`] or [`RatingIo::OpenFailed`].
    OpenSession { path: PathBuf },
    /// Write a text file atomically (the leaderboard export); answer with
    /// [`RatingIo::Written`].
    WriteFile { path: PathBuf, text: String },
}

/// What the driver reports back.
#[derive(Debug, Clone)]
pub(crate) enum RatingIo {
    Journaled {
        what: String,
        result: Result<u64, String>,
    },
    Sessions(Vec<SessionSummary>),
    Opened {
        prompt: Box<PromptFile>,
        session: Box<Session>,
        path: PathBuf,
        /// The retrieval indexes of the opened prompt's variants, read by the driver.
        indexes: crate::prompt::retrieve::Indexes,
    },
    OpenFailed(String),
    Written {
        path: PathBuf,
        error: Option<String>,
    },
}

/// One session file as the browser lists it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionSummary {
    pub path: PathBuf,
    /// Last modified, local time, `YYYY-MM-DD HH:MM`.
    pub modified: String,
    /// Sort key: seconds since the epoch.
    pub modified_secs: u64,
    pub title: String,
    pub prompt_file: Option<String>,
    pub answers: usize,
    pub ratings: usize,
    pub votes: usize,
    /// Why it can't be opened (unreadable, newer format...).
    pub error: Option<String>,
    pub current: bool,
}

/// A blind comparison on screen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompareState {
    pub case: String,
    /// The nodes as shown on each side (sides already randomised).
    pub left: u64,
    pub right: u64,
    /// Why this pair was picked, naming no variant (shown before the vote).
    pub blind_reason: String,
    /// The same with the names (shown after the vote).
    pub reason: String,
    /// The vote just cast: names are revealed until the next key.
    pub voted: Option<&'static str>,
    /// Votes cast since the layer opened.
    pub votes: usize,
    /// Rows scrolled, both sides together.
    pub scroll: usize,
}

/// The leaderboard layer: the table is computed when opened, toggled or after a vote, never
/// while drawing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BoardState {
    pub board: Leaderboard,
    /// Votes were cast since it was built (it is rebuilt when back on top).
    pub stale: bool,
    pub suggestion: Option<Suggestion>,
    pub selected: usize,
}

/// The session browser layer; `items` is `None` while the driver is listing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BrowserState {
    pub items: Option<Vec<SessionSummary>>,
    pub selected: usize,
}

/// `★★★☆☆`.
pub(crate) fn stars_text(n: u8) -> String {
    let n = usize::from(n.min(5));
    format!("{}{}", "★".repeat(n), "☆".repeat(5 - n))
}

/// Where `w` in the leaderboard writes: beside the session, `NAME.leaderboard-variant.md`.
pub(crate) fn board_export_path(session: &std::path::Path, by: GroupBy) -> PathBuf {
    let stem = session
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "session".into());
    session.with_file_name(format!("{stem}.leaderboard-{}.md", by.as_str()))
}

pub(crate) fn outcome_words(outcome: &str) -> &'static str {
    match outcome {
        "left" => "left better",
        "right" => "right better",
        "tie" => "tie",
        "both_bad" => "both bad",
        _ => "?",
    }
}

/// `variant · model` of a node, for the reveal.
pub(crate) fn node_label(n: &Node) -> String {
    format!("{} · {}", n.variant, n.model)
}
