//! What the techniques keep in the app state: the jobs and their streams, and the states of
//! the tree view, the revision diff and the search form (the layers of
//! [`super::state::Layer`]). Plain data and the tree's row flattening; the keys that change
//! them are in [`crate::app::update::techniques`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::state::critique;
use crate::state::diff::DiffSpan;
use crate::state::session::{Node, NodeKind, Session};
use crate::state::timing::StreamMeter;
use crate::technique::Technique;

pub(crate) const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Running and finished technique jobs and the streams they own.
#[derive(Debug, Clone, Default)]
pub(crate) struct TechState {
    pub jobs: Vec<Job>,
    /// Technique streams in flight, by node.
    pub streams: BTreeMap<u64, TechStream>,
    pub next_job: u64,
}

impl TechState {
    /// Anything still streaming.
    pub fn busy(&self) -> bool {
        !self.streams.is_empty()
    }
}

/// One technique stream: which job and technique ticket it answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TechStream {
    pub job: u64,
    pub ticket: u64,
    pub request: u64,
    pub started: Duration,
    pub meter: StreamMeter,
}

/// One use of a technique key.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub id: u64,
    /// The variant and case it works on (for the pane's progress line).
    pub variant: String,
    pub case: String,
    pub technique: Technique,
    pub running: bool,
    /// What happened, once it stopped.
    pub summary: Option<String>,
}

// ---- layers ---------------------------------------------------------------------------

/// The tree view of one case. Rows are flattened here, in `update`, whenever the tree's shape
/// changes, so a frame only draws the visible rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TreeView {
    pub case: String,
    pub rows: Vec<TreeRow>,
    pub cursor: usize,
    pub top: usize,
    /// Show the selected node in full beside the tree.
    pub open: bool,
    /// Nodes in the case (value samples included).
    pub total: usize,
}

/// One visible row of the tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TreeRow {
    pub id: u64,
    /// Index into `session.nodes` (checked against `id` when drawn).
    pub idx: usize,
    pub parent: Option<u64>,
    pub depth: usize,
    /// Tree glyphs before the node.
    pub prefix: String,
    /// Shown children (value samples are folded into the node's score).
    pub children: usize,
    /// Value-sample nodes of this node, by index.
    pub values: Vec<usize>,
    pub stars: Option<u8>,
}

impl TreeView {
    pub fn new(session: &Session, case: &str, select: Option<u64>) -> TreeView {
        let mut t = TreeView {
            case: case.to_string(),
            rows: Vec::new(),
            cursor: 0,
            top: 0,
            open: false,
            total: 0,
        };
        t.rebuild(session);
        if let Some(id) = select {
            t.select(id);
        }
        t
    }

    pub fn selected(&self) -> Option<u64> {
        self.rows.get(self.cursor).map(|r| r.id)
    }

    pub fn select(&mut self, id: u64) -> bool {
        match self.rows.iter().position(|r| r.id == id) {
            Some(i) => {
                self.cursor = i;
                true
            }
            None => false,
        }
    }

    /// Flatten the case's nodes into rows (depth first, children in creation order).
    pub fn rebuild(&mut self, session: &Session) {
        let keep = self.selected();
        let mut in_case: HashMap<u64, usize> = HashMap::new();
        let mut order: Vec<usize> = Vec::new();
        for (i, n) in session.nodes.iter().enumerate() {
            if n.case == self.case {
                in_case.insert(n.id, i);
                order.push(i);
            }
        }
        self.total = order.len();
        let mut children: HashMap<u64, Vec<usize>> = HashMap::new();
        let mut values: HashMap<u64, Vec<usize>> = HashMap::new();
        let mut roots = Vec::new();
        for &i in &order {
            let n = &session.nodes[i];
            match n.parent.filter(|p| in_case.contains_key(p)) {
                Some(p) if n.kind == NodeKind::Value => values.entry(p).or_default().push(i),
                Some(p) => children.entry(p).or_default().push(i),
                None => roots.push(i),
            }
        }
        let mut stars: HashMap<u64, u8> = HashMap::new();
        for r in &session.ratings {
            if let Some(st) = r.stars {
                stars.insert(r.node, st);
            } else {
                stars.remove(&r.node);
            }
        }
        let mut rows = Vec::with_capacity(order.len());
        // (index, depth, continuation prefix for children, own connector)
        let mut stack: Vec<(usize, usize, String, String)> = Vec::new();
        for &r in roots.iter().rev() {
            stack.push((r, 0, String::new(), String::new()));
        }
        while let Some((i, depth, cont, conn)) = stack.pop() {
            let n = &session.nodes[i];
            let kids = children.get(&n.id).map_or(&[][..], Vec::as_slice);
            rows.push(TreeRow {
                id: n.id,
                idx: i,
                parent: n.parent,
                depth,
                prefix: format!("{cont}{conn}"),
                children: kids.len(),
                values: values.remove(&n.id).unwrap_or_default(),
                stars: stars.get(&n.id).copied(),
            });
            if is_folded(n) {
                continue;
            }
            // Deep chains stop indenting at 24 levels so rows keep their text.
            let child_cont = if depth == 0 {
                String::new()
            } else if cont.chars().count() >= 72 {
                cont.clone()
            } else if conn.starts_with('├') {
                format!("{cont}│  ")
            } else {
                format!("{cont}   ")
            };
            for (j, &c) in kids.iter().enumerate().rev() {
                let last = j + 1 == kids.len();
                let conn = if last { "└─ " } else { "├─ " };
                stack.push((c, depth + 1, child_cont.clone(), conn.to_string()));
            }
        }
        self.rows = rows;
        if let Some(id) = keep {
            if !self.select(id) {
                self.cursor = self.cursor.min(self.rows.len().saturating_sub(1));
            }
        }
        self.cursor = self.cursor.min(self.rows.len().saturating_sub(1));
    }

    pub fn keep_visible(&mut self, height: usize) {
        let h = height.max(1);
        if self.cursor < self.top {
            self.top = self.cursor;
        } else if self.cursor >= self.top + h {
            self.top = self.cursor + 1 - h;
        }
        self.top = self.top.min(self.rows.len().saturating_sub(1));
    }
}

/// Rows of tree the screen shows at `height` (header, footer and the box's border off).
pub(crate) fn tree_height(height: u16) -> usize {
    usize::from(height.saturating_sub(5))
}

/// The word diff between a revision and the one it revised.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiffView {
    pub old: u64,
    pub new: u64,
    pub spans: Vec<DiffSpan>,
    pub added: usize,
    pub removed: usize,
    pub scroll: usize,
}

/// The search parameters asked for before `s` starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SearchForm {
    pub node: u64,
    /// k, beam, depth, value samples.
    pub values: [usize; 4],
    pub field: usize,
}

impl SearchForm {
    pub const LABELS: [&'static str; 4] = [
        "k  thoughts per node",
        "b  kept per level (beam)",
        "d  depth (levels)",
        "value samples per thought",
    ];
    const RANGES: [(usize, usize); 4] = [(1, 16), (1, 16), (1, 10), (0, 10)];

    pub fn bump(&mut self, up: bool) {
        let (lo, hi) = Self::RANGES[self.field];
        let v = &mut self.values[self.field];
        *v = if up {
            (*v + 1).min(hi)
        } else {
            v.saturating_sub(1).max(lo)
        };
    }

    pub fn set(&mut self, digit: usize) {
        let (lo, hi) = Self::RANGES[self.field];
        self.values[self.field] = digit.clamp(lo, hi);
    }
}

// ---- small helpers ----------------------------------------------------------------------

/// The top of `id`'s tree (the run's answer).
pub(crate) fn root_of(session: &Session, id: u64) -> u64 {
    let mut cur = id;
    let mut seen = BTreeSet::new();
    while let Some(p) = session.node(cur).and_then(|n| n.parent) {
        if !seen.insert(cur) {
            break;
        }
        cur = p;
    }
    cur
}

/// The node a pane shows for the run rooted at `root`: the one promoted (or last stepped to)
/// in the TUI, else the newest revision of the critique chain.
pub(crate) fn shown_node(session: &Session, root: u64) -> u64 {
    if let Some(p) = session
        .node(root)
        .and_then(|n| n.meta.get("promoted"))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&p| session.node(p).is_some())
    {
        return p;
    }
    let (chain, _) = critique::revisions(session, root);
    chain.last().copied().unwrap_or(root)
}

/// Whether the tree shows `n` folded. Folds are kept in the session (node meta
/// `collapsed`), like bookmarks, so a tree opens folded the same way next time.
pub(crate) fn is_folded(n: &Node) -> bool {
    n.meta.contains_key("collapsed")
}
