//! The app's state tree: the prompt file being worked on, the session recording every run,
//! one pane per variant, the layer stack, and what the last frame measured.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::edit::TextArea;
use super::heat::HeatView;
use super::keys::PendingKeys;
use super::rating::{BoardState, BrowserState, CompareState, RatingState};
use super::techniques::{DiffView, SearchForm, TechState, TreeView};
use super::tools::ToolTurns;
use crate::chat::BackendStatus;
use crate::config::keymap::{Keymap, Mode};
use crate::prompt::{Case, PromptFile};
use crate::state::session::{Node, NodeStatus, Session};
use crate::state::timing::StreamMeter;

/// Where a pane's current answer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Nothing run for this case yet.
    Idle,
    /// Asked for, not yet started by the driver.
    Queued,
    /// Started, no token yet.
    Waiting,
    Streaming,
    Done,
    Cancelled,
    Error,
}

impl Phase {
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Queued | Phase::Waiting | Phase::Streaming)
    }

    pub fn from_node(n: &Node) -> Phase {
        match n.status {
            NodeStatus::Queued | NodeStatus::Streaming | NodeStatus::Cancelled => Phase::Cancelled,
            NodeStatus::Done => Phase::Done,
            NodeStatus::Error => Phase::Error,
        }
    }
}

/// One variant's pane.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pane {
    /// The node shown: the running one, or the latest for this variant and case.
    pub node: Option<u64>,
    /// Request id of the running stream (0: none).
    pub request: u64,
    pub phase: Phase,
    /// When the running request was asked for (app clock).
    pub started: Duration,
    pub meter: StreamMeter,
    pub notice: Option<String>,
    /// Top row when not following.
    pub scroll: usize,
    /// Stick to the end while streaming.
    pub follow: bool,
}

impl Pane {
    pub fn idle() -> Pane {
        Pane {
            node: None,
            request: 0,
            phase: Phase::Idle,
            started: Duration::ZERO,
            meter: StreamMeter::default(),
            notice: None,
            scroll: 0,
            follow: true,
        }
    }
}

/// What the last frame measured about a pane, fed back by the driver so scrolling can clamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PaneMetrics {
    pub total_rows: usize,
    pub view_rows: usize,
}

/// What a picker picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PickerKind {
    Case,
    Model,
}

/// What a one-line input is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputPurpose {
    FreeInput,
    Rename(usize),
    /// A new result for this `tool-result` node (re-runs from there as a sibling).
    ToolResult(u64),
    /// A token to branch with, typed in the heat view.
    BranchToken,
}

/// Overlays, stacked; keys go to the top one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Layer {
    Help {
        scroll: usize,
    },
    /// A list to pick from; typing filters it (`selected` is a row of the filtered list).
    Picker {
        kind: PickerKind,
        items: Vec<String>,
        selected: usize,
        filter: String,
    },
    Editor {
        variant: usize,
        area: TextArea,
        error: Option<String>,
    },
    Input {
        purpose: InputPurpose,
        text: String,
    },
    ConfirmDelete {
        variant: usize,
    },
    /// The note editor for a rating (`n`).
    Note {
        node: u64,
        area: TextArea,
    },
    Compare(Box<CompareState>),
    Leaderboard(Box<BoardState>),
    Browser(BrowserState),
    /// The answer tree of a case (`t`).
    Tree(Box<TreeView>),
    /// Word diff of a revision against the one it revised (`d`).
    Diff(Box<DiffView>),
    /// k, b, d before a tree-of-thought search (`s`).
    SearchParams(SearchForm),
    /// Token probabilities of an answer and branching from a token (`H`).
    Heat(Box<HeatView>),
    /// Word diff of the focused variant's prompt against another (`=`).
    PromptDiff(Box<super::prompt_model::PromptDiff>),
    /// The focused variant's versions and how each did (`V`).
    History(Box<super::charts::HistoryView>),
    /// The leaderboard as charts (`c` on the board).
    Charts(Box<super::charts::ChartsView>),
    /// The focused pane's context passages and selected examples (`O`).
    Passages(Box<super::passages::PassagesView>),
}

impl Layer {
    pub fn mode(&self) -> Mode {
        match self {
            Layer::Help { .. } => Mode::Help,
            Layer::Picker { .. } => Mode::Picker,
            Layer::Editor { .. } => Mode::Editor,
            Layer::Input { .. } => Mode::Input,
            Layer::ConfirmDelete { .. } => Mode::Confirm,
            Layer::Note { .. } => Mode::Editor,
            Layer::Compare(_) => Mode::Compare,
            Layer::Leaderboard(_) => Mode::Leaderboard,
            Layer::Browser(_) => Mode::Browser,
            Layer::Tree(_) => Mode::Tree,
            Layer::Diff(_) => Mode::Diff,
            Layer::SearchParams(_) => Mode::SearchParams,
            Layer::Heat(_) => Mode::Heat,
            Layer::PromptDiff(_) => Mode::PromptDiff,
            Layer::History(_) => Mode::History,
            Layer::Charts(_) => Mode::Charts,
            Layer::Passages(_) => Mode::Passages,
        }
    }
}

/// The whole app.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub prompt: PromptFile,
    /// The retrieval indexes the driver read (at open, on a session switch, for each run that
    /// retrieves): the previews render with them; `update` reads no file.
    pub indexes: crate::prompt::retrieve::Indexes,
    pub case: usize,
    pub session: Session,
    pub session_path: PathBuf,
    /// One per `prompt.variants`, same order.
    pub panes: Vec<Pane>,
    pub focus: usize,
    /// First pane shown when they don't all fit.
    pub first: usize,
    pub zoomed: bool,
    pub layers: Vec<Layer>,
    pub keymap: Keymap,
    /// Configured model names.
    pub models: Vec<String>,
    pub model_status: BTreeMap<String, BackendStatus>,
    /// The LoRA adapters of the models that have any (model name → directory names), for the
    /// pane headers.
    pub adapters: BTreeMap<String, String>,
    pub width: u16,
    pub height: u16,
    /// App clock at the last message that carried one.
    pub now: Duration,
    /// Wall-clock time the app started (RFC 3339 stamps are this plus `now`).
    pub started_wall: chrono::DateTime<chrono::Utc>,
    /// Ctrl-C was pressed once while streaming; the next one quits.
    pub interrupt_armed: bool,
    /// A one-line message for the footer (save errors, hints).
    pub message: Option<String>,
    pub quit: bool,
    pub next_request: u64,
    /// Seed source for sampled runs without a seed (splitmix64 state).
    pub seed_state: u64,
    /// Variants were edited since the prompt file was last written.
    pub variants_dirty: bool,
    pub metrics: Vec<PaneMetrics>,
    /// Something visible changed since the last frame.
    pub dirty: bool,
    /// Rater name and what rating, comparing and the session browser keep.
    pub rating: RatingState,
    /// Technique runs (critique, search, judge...) and their streams.
    pub tech: TechState,
    /// The chat each pane sends, and which panes show it in full.
    pub prompt_view: super::prompt_model::PromptViews,
    /// Tool calls being answered (the tool loop).
    pub tools: ToolTurns,
    /// A key sequence started and waiting for its next key (the which-key hint shows).
    pub pending_keys: Option<PendingKeys>,
    /// Id of the last key sequence started, so a late timeout can be told from a current one.
    pub last_sequence: u64,
}

impl AppState {
    /// What a save writes: the session with the prompt's variants and cases.
    pub fn snapshot(&self) -> Session {
        let mut session = self.session.clone();
        session.variants = self.prompt.variants.clone();
        session.cases = self.prompt.cases.clone();
        session
    }

    pub fn new(
        prompt: PromptFile,
        session: Session,
        session_path: PathBuf,
        keymap: Keymap,
        models: Vec<String>,
        started_wall: chrono::DateTime<chrono::Utc>,
        seed: u64,
    ) -> AppState {
        let n = prompt.variants.len();
        let mut s = AppState {
            prompt,
            indexes: Default::default(),
            case: 0,
            session,
            session_path,
            panes: vec![Pane::idle(); n],
            focus: 0,
            first: 0,
            zoomed: false,
            layers: Vec::new(),
            keymap,
            models,
            model_status: BTreeMap::new(),
            adapters: BTreeMap::new(),
            width: 80,
            height: 24,
            now: Duration::ZERO,
            started_wall,
            interrupt_armed: false,
            message: None,
            quit: false,
            next_request: 1,
            seed_state: seed,
            variants_dirty: false,
            metrics: vec![PaneMetrics::default(); n],
            dirty: true,
            rating: Default::default(),
            tech: Default::default(),
            prompt_view: Default::default(),
            tools: Default::default(),
            pending_keys: None,
            last_sequence: 0,
        };
        s.show_case_results();
        s
    }

    pub fn current_case(&self) -> Option<&Case> {
        self.prompt.cases.get(self.case)
    }

    pub fn case_name(&self) -> String {
        self.current_case()
            .map(|c| c.name.clone())
            .unwrap_or_else(|| "(no case)".into())
    }

    /// The node a pane shows, if any.
    pub fn pane_node(&self, i: usize) -> Option<&Node> {
        self.panes
            .get(i)
            .and_then(|p| p.node)
            .and_then(|id| self.session.node(id))
    }

    pub fn any_active(&self) -> bool {
        self.panes.iter().any(|p| p.phase.is_active()) || self.tech.busy()
    }

    /// The mode keys are interpreted in: the top layer's, else normal.
    pub fn mode(&self) -> Mode {
        self.layers.last().map_or(Mode::Normal, Layer::mode)
    }

    /// The mode of the layer at `depth` from the bottom (0: the panes, normal mode).
    pub fn mode_at(&self, depth: usize) -> Mode {
        depth
            .checked_sub(1)
            .and_then(|i| self.layers.get(i))
            .map_or(Mode::Normal, Layer::mode)
    }

    /// Point idle panes at the latest answer for each variant on the selected case.
    pub fn show_case_results(&mut self) {
        let case = self.case_name();
        for (i, v) in self.prompt.variants.iter().enumerate() {
            let Some(p) = self.panes.get_mut(i) else {
                continue;
            };
            if p.phase.is_active() {
                continue;
            }
            let latest = self.session.nodes.iter().rev().find(|n| {
                n.variant == v.name
                    && n.case == case
                    && n.parent.is_none()
                    && n.kind == crate::state::session::NodeKind::Answer
                    && !n.meta.contains_key("not_sent")
            });
            *p = Pane::idle();
            if let Some(n) = latest {
                // The newest revision, or the node promoted in the tree view.
                let shown = super::techniques::shown_node(&self.session, n.id);
                let n = self.session.node(shown).unwrap_or(n);
                p.node = Some(n.id);
                p.phase = Phase::from_node(n);
            }
        }
    }

    /// A wall-clock RFC 3339 stamp for the current app time.
    pub fn stamp(&self) -> String {
        let t = self.started_wall
            + chrono::Duration::from_std(self.now).unwrap_or_else(|_| chrono::Duration::zero());
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// The next seed for a sampled run (splitmix64).
    pub fn next_seed(&mut self) -> u64 {
        next_seed(&mut self.seed_state)
    }
}

/// The next seed from a splitmix64 state (apart from [`AppState`], so a borrow of the
/// session and of the seed state can be held together).
pub(crate) fn next_seed(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) & 0xffff_ffff
}
