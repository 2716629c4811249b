//! Tree-of-thought branching and breadth-first search (Yao et al., 2023) as a pure state
//! machine.
//!
//! Each level expands every frontier node into `k` children (alternative answers, or in step
//! mode the next reasoning step as `thought` nodes), scores each child with `value_samples`
//! value prompts, and keeps the best `beam` children as the next frontier, down to `depth`
//! levels. Branching (`b`) is the same machine with one level and no scoring.
//!
//! The machine emits [`Effect`]s tagged with tickets; a driver starts the requests, creates
//! the nodes and reports back with [`Msg`]s. The user may prune, unprune or promote nodes
//! while it runs: a pruned node (and everything under it) is never expanded or kept, and its
//! requests in flight are cancelled; a promoted node is kept in the beam ahead of any score.

use std::collections::{BTreeMap, BTreeSet};

use crate::eval::value::{parse_label, ValueEstimate};
use crate::prompt::techniques::SearchParams;

/// What a child is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpandAs {
    /// Alternative whole answers from the parent's context (kind `answer`).
    Answer,
    /// The next reasoning step continuing from the parent's text (kind `thought`).
    Step,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Generate a child of `parent` (in the machine's mode) at search level `level`.
    Expand {
        ticket: u64,
        parent: u64,
        level: usize,
    },
    /// Ask the value prompt about `node` (a `value` node, child of `node`).
    Value {
        ticket: u64,
        node: u64,
    },
    /// Record `node`'s value score (`None`: no sample could be read) and what the samples said.
    Score {
        node: u64,
        score: Option<f64>,
        samples: String,
    },
    /// `nodes` were kept as the beam of `level`.
    Kept {
        level: usize,
        nodes: Vec<u64>,
    },
    Cancel {
        ticket: u64,
    },
}

/// What the driver (or the user) reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Msg {
    Done {
        ticket: u64,
        node: u64,
        text: String,
    },
    Failed {
        ticket: u64,
        error: String,
    },
    // The user's steering: the TUI's tree view sends these (the headless driver has no user
    // to ask while it runs).
    #[allow(dead_code)]
    Prune(u64),
    #[allow(dead_code)]
    Unprune(u64),
    #[allow(dead_code)]
    Promote(u64),
    Cancel,
}

/// How a search ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    Running,
    /// All levels done.
    DepthReached,
    /// A level ended with nothing to keep (every child failed or was pruned).
    NoCandidates,
    Cancelled,
}

impl Status {
    pub fn describe(&self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::DepthReached => "depth reached",
            Status::NoCandidates => "no candidates left (all failed or pruned)",
            Status::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Child { parent: u64 },
    Value { node: u64 },
}

#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    node: u64,
    estimate: ValueEstimate,
    values_pending: usize,
}

/// One search (or one branching) from a root node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Search {
    pub params: SearchParams,
    pub mode: ExpandAs,
    pub root: u64,
    /// The level being expanded, 1-based.
    pub level: usize,
    pub frontier: Vec<u64>,
    /// The beam kept at each finished level.
    pub beams: Vec<Vec<u64>>,
    pub status: Status,
    pending: BTreeMap<u64, Pending>,
    candidates: Vec<Candidate>,
    /// Parent of every node the search created, for pruning whole subtrees.
    parents: BTreeMap<u64, u64>,
    scores: BTreeMap<u64, Option<f64>>,
    pruned: BTreeSet<u64>,
    promoted: BTreeSet<u64>,
    next_ticket: u64,
}

impl Search {
    /// A breadth-first search from `root`.
    pub fn start(root: u64, params: SearchParams, mode: ExpandAs) -> (Search, Vec<Effect>) {
        let mut s = Search {
            params: SearchParams {
                k: params.k.max(1),
                beam: params.beam.max(1),
                depth: params.depth.max(1),
                value_samples: params.value_samples,
            },
            mode,
            root,
            level: 1,
            frontier: vec![root],
            beams: Vec::new(),
            status: Status::Running,
            pending: BTreeMap::new(),
            candidates: Vec::new(),
            parents: BTreeMap::new(),
            scores: BTreeMap::new(),
            pruned: BTreeSet::new(),
            promoted: BTreeSet::new(),
            next_ticket: 1,
        };
        let effects = s.expand_level();
        (s, effects)
    }

    /// `k` children of `node`, unscored: the `b` key.
    pub fn branch(node: u64, k: usize, mode: ExpandAs) -> (Search, Vec<Effect>) {
        Search::start(
            node,
            SearchParams {
                k,
                beam: k,
                depth: 1,
                value_samples: 0,
            },
            mode,
        )
    }

    pub fn is_running(&self) -> bool {
        self.status == Status::Running
    }

    /// Requests in flight, for the TUI's status line.
    #[allow(dead_code)]
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    pub fn is_pruned(&self, node: u64) -> bool {
        let mut cur = Some(node);
        let mut steps = 0;
        while let Some(n) = cur {
            if self.pruned.contains(&n) {
                return true;
            }
            cur = self.parents.get(&n).copied();
            steps += 1;
            if steps > self.parents.len() + 1 {
                break;
            }
        }
        false
    }

    pub fn score(&self, node: u64) -> Option<f64> {
        self.scores.get(&node).copied().flatten()
    }

    /// The best node found: the first of the last beam.
    pub fn best(&self) -> Option<u64> {
        self.beams.last().and_then(|b| b.first().copied())
    }

    fn ticket(&mut self) -> u64 {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    fn expand_level(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        let frontier: Vec<u64> = self
            .frontier
            .iter()
            .copied()
            .filter(|&n| !self.is_pruned(n))
            .collect();
        for parent in frontier {
            for _ in 0..self.params.k {
                let ticket = self.ticket();
                self.pending.insert(ticket, Pending::Child { parent });
                out.push(Effect::Expand {
                    ticket,
                    parent,
                    level: self.level,
                });
            }
        }
        if out.is_empty() {
            self.status = Status::NoCandidates;
        }
        out
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        if !self.is_running() {
            return vec![];
        }
        let mut out = Vec::new();
        match msg {
            Msg::Cancel => {
                out.extend(
                    std::mem::take(&mut self.pending)
                        .into_keys()
                        .map(|ticket| Effect::Cancel { ticket }),
                );
                self.status = Status::Cancelled;
                return out;
            }
            Msg::Prune(node) => {
                self.pruned.insert(node);
                let doomed: Vec<u64> = self
                    .pending
                    .iter()
                    .filter(|(_, p)| match p {
                        Pending::Child { parent } => self.is_pruned(*parent),
                        Pending::Value { node } => self.is_pruned(*node),
                    })
                    .map(|(t, _)| *t)
                    .collect();
                for ticket in doomed {
                    if let Some(Pending::Value { node }) = self.pending.remove(&ticket) {
                        self.value_arrived(node, None, false, &mut out);
                    }
                    out.push(Effect::Cancel { ticket });
                }
            }
            Msg::Unprune(node) => {
                self.pruned.remove(&node);
            }
            Msg::Promote(node) => {
                self.pruned.remove(&node);
                self.promoted.insert(node);
            }
            Msg::Done { ticket, node, text } => match self.pending.remove(&ticket) {
                None => return vec![],
                Some(Pending::Child { parent }) => {
                    self.parents.insert(node, parent);
                    let samples = self.params.value_samples;
                    self.candidates.push(Candidate {
                        node,
                        estimate: ValueEstimate::default(),
                        values_pending: samples,
                    });
                    for _ in 0..samples {
                        let ticket = self.ticket();
                        self.pending.insert(ticket, Pending::Value { node });
                        out.push(Effect::Value { ticket, node });
                    }
                }
                Some(Pending::Value { node: of }) => {
                    self.value_arrived(of, Some(&text), true, &mut out);
                }
            },
            Msg::Failed { ticket, .. } => match self.pending.remove(&ticket) {
                None => return vec![],
                Some(Pending::Child { .. }) => {}
                Some(Pending::Value { node }) => self.value_arrived(node, None, true, &mut out),
            },
        }
        if self.pending.is_empty() {
            out.extend(self.close_level());
        }
        out
    }

    /// A value sample for `node` arrived (`text`), failed (`None`, counted) or was cancelled
    /// (`None`, not counted).
    fn value_arrived(
        &mut self,
        node: u64,
        text: Option<&str>,
        counted: bool,
        out: &mut Vec<Effect>,
    ) {
        let Some(c) = self.candidates.iter_mut().find(|c| c.node == node) else {
            return;
        };
        c.values_pending = c.values_pending.saturating_sub(1);
        if counted {
            c.estimate.push(text.and_then(parse_label));
        }
        if c.values_pending == 0 && !counted && c.estimate.samples.is_empty() {
            // Cancelled with nothing read (pruned): no score to record.
            return;
        }
        if c.values_pending == 0 {
            let score = c.estimate.score();
            self.scores.insert(node, score);
            out.push(Effect::Score {
                node,
                score,
                samples: c.estimate.summary(),
            });
        }
    }

    /// Every request of the level is in: pick the beam and go one level deeper or stop.
    fn close_level(&mut self) -> Vec<Effect> {
        let mut eligible: Vec<&Candidate> = self
            .candidates
            .iter()
            .filter(|c| !self.is_pruned(c.node))
            .collect();
        // Promoted first, then by score (unscored last), ties in generation order.
        let scores = &self.scores;
        let promoted = &self.promoted;
        let rank = |c: &Candidate| -> (u8, f64) {
            let s = scores.get(&c.node).copied().flatten();
            match (promoted.contains(&c.node), s) {
                (true, _) => (0, 0.0),
                (false, Some(s)) => (1, -s),
                (false, None) => (2, 0.0),
            }
        };
        eligible.sort_by(|a, b| {
            let (ra, rb) = (rank(a), rank(b));
            ra.0.cmp(&rb.0).then(ra.1.total_cmp(&rb.1))
        });
        let beam: Vec<u64> = eligible
            .iter()
            .take(self.params.beam)
            .map(|c| c.node)
            .collect();
        self.candidates.clear();
        if beam.is_empty() {
            self.status = Status::NoCandidates;
            return vec![];
        }
        self.beams.push(beam.clone());
        let mut out = vec![Effect::Kept {
            level: self.level,
            nodes: beam.clone(),
        }];
        if self.level >= self.params.depth {
            self.status = Status::DepthReached;
            return out;
        }
        self.level += 1;
        self.frontier = beam;
        out.extend(self.expand_level());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a search with scripted outcomes: node ids are handed out from 100 up, thought
    /// texts are "t<id>", value replies come from `value_of(parent_thought_id, sample_no)`.
    struct Harness {
        search: Search,
        queue: Vec<Effect>,
        next_node: u64,
        log: Vec<Effect>,
        /// parent of each created node.
        parent: BTreeMap<u64, u64>,
        samples_seen: BTreeMap<u64, usize>,
    }

    impl Harness {
        fn new(params: SearchParams) -> Harness {
            let (search, queue) = Search::start(1, params, ExpandAs::Step);
            Harness {
                search,
                queue,
                next_node: 100,
                log: Vec::new(),
                parent: BTreeMap::new(),
                samples_seen: BTreeMap::new(),
            }
        }

        /// Answer the oldest queued effect.
        fn step(&mut self, value_of: &dyn Fn(u64, usize) -> Option<&'static str>) -> bool {
            if self.queue.is_empty() {
                return false;
            }
            let e = self.queue.remove(0);
            self.log.push(e.clone());
            let msg = match e {
                Effect::Expand { ticket, parent, .. } => {
                    let node = self.next_node;
                    self.next_node += 1;
                    self.parent.insert(node, parent);
                    Some(Msg::Done {
                        ticket,
                        node,
                        text: format!("t{node}"),
                    })
                }
                Effect::Value { ticket, node } => {
                    let n = self.samples_seen.entry(node).or_default();
                    *n += 1;
                    let v = self.next_node;
                    self.next_node += 1;
                    Some(match value_of(node, *n) {
                        Some(text) => Msg::Done {
                            ticket,
                            node: v,
                            text: text.into(),
                        },
                        None => Msg::Failed {
                            ticket,
                            error: "boom".into(),
                        },
                    })
                }
                _ => None,
            };
            if let Some(m) = msg {
                let more = self.search.update(m);
                self.queue.extend(more);
            }
            true
        }

        fn run(&mut self, value_of: &dyn Fn(u64, usize) -> Option<&'static str>) {
            while self.step(value_of) {}
        }

        fn kept(&self) -> Vec<(usize, Vec<u64>)> {
            self.search
                .beams
                .iter()
                .enumerate()
                .map(|(i, b)| (i + 1, b.clone()))
                .collect()
        }
    }

    fn params(k: usize, beam: usize, depth: usize, value_samples: usize) -> SearchParams {
        SearchParams {
            k,
            beam,
            depth,
            value_samples,
        }
    }

    #[test]
    fn bfs_keeps_the_best_beam_and_stops_at_depth() {
        let mut h = Harness::new(params(3, 2, 2, 2));
        // Even node ids are promising, odd ones are not.
        h.run(&|node, _| Some(if node % 2 == 0 { "sure" } else { "impossible" }));
        assert_eq!(h.search.status, Status::DepthReached);
        let kept = h.kept();
        assert_eq!(kept.len(), 2);
        // Level 1: children 100, 101, 102 of the root; 100 and 102 are "sure".
        assert_eq!(kept[0], (1, vec![100, 102]));
        // Level 2 expands only the two kept nodes, 3 children each.
        let level2: Vec<u64> = h
            .parent
            .iter()
            .filter(|(_, p)| [100, 102].contains(*p))
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(level2.len(), 6);
        assert!(kept[1].1.iter().all(|n| level2.contains(n) && n % 2 == 0));
        assert_eq!(h.search.score(100), Some(1.0));
        assert_eq!(h.search.score(101), Some(0.0));
        assert_eq!(h.search.best(), Some(kept[1].1[0]));
        let expands = h
            .log
            .iter()
            .filter(|e| matches!(e, Effect::Expand { .. }))
            .count();
        assert_eq!(expands, 3 + 6);
    }

    #[test]
    fn samples_are_averaged_and_unreadable_ones_excluded() {
        let mut h = Harness::new(params(2, 1, 1, 3));
        h.run(&|node, sample| match (node, sample) {
            (100, 1) => Some("likely"),
            (100, 2) => Some("I cannot say."),
            (100, 3) => None,
            (101, _) => Some("???"),
            _ => Some("sure"),
        });
        assert_eq!(h.search.score(100), Some(0.5));
        assert_eq!(h.search.score(101), None, "all unreadable: no score");
        let scores: Vec<&Effect> = h
            .log
            .iter()
            .filter(|e| matches!(e, Effect::Score { .. }))
            .collect();
        assert_eq!(
            scores[0],
            &Effect::Score {
                node: 100,
                score: Some(0.5),
                samples: "likely,?,?".into()
            }
        );
        // A scored candidate outranks an unscored one.
        assert_eq!(h.kept(), [(1, vec![100])]);
    }

    #[test]
    fn unscored_candidates_fill_the_beam_after_scored_ones() {
        let mut h = Harness::new(params(3, 3, 1, 1));
        h.run(&|node, _| match node {
            101 => Some("impossible"),
            102 => Some("likely"),
            _ => Some("no idea"),
        });
        assert_eq!(h.kept(), [(1, vec![102, 101, 100])]);
        assert_eq!(h.search.score(100), None);
    }

    #[test]
    fn pruned_nodes_are_not_expanded_and_their_requests_are_cancelled() {
        let mut h = Harness::new(params(2, 2, 2, 1));
        // Run level 1 to completion by hand: two expansions, two values.
        for _ in 0..4 {
            h.step(&|_, _| Some("sure"));
        }
        assert_eq!(h.kept(), [(1, vec![100, 101])]);
        // Level 2 has 4 expansions queued (2 per kept node). Prune 101 before they run.
        let queued: Vec<u64> = h
            .queue
            .iter()
            .filter_map(|e| match e {
                Effect::Expand {
                    ticket,
                    parent: 101,
                    ..
                } => Some(*ticket),
                _ => None,
            })
            .collect();
        assert_eq!(queued.len(), 2);
        let effects = h.search.update(Msg::Prune(101));
        let cancelled: Vec<u64> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Cancel { ticket } => Some(*ticket),
                _ => None,
            })
            .collect();
        assert_eq!(cancelled, queued);
        h.queue
            .retain(|e| !matches!(e, Effect::Expand { ticket, .. } if cancelled.contains(ticket)));
        h.run(&|_, _| Some("sure"));
        assert_eq!(h.search.status, Status::DepthReached);
        let last = &h.kept()[1].1;
        assert!(last.iter().all(|n| h.parent[n] == 100), "{last:?}");
    }

    #[test]
    fn pruning_a_candidate_drops_it_from_the_beam_and_promoting_forces_it_in() {
        let mut h = Harness::new(params(3, 1, 1, 1));
        for _ in 0..3 {
            h.step(&|_, _| Some("x"));
        }
        // Three children exist, values pending. 100 will score best, 102 worst.
        h.search.update(Msg::Prune(100));
        h.search.update(Msg::Promote(102));
        h.run(&|node, _| match node {
            100 => Some("sure"),
            101 => Some("likely"),
            _ => Some("impossible"),
        });
        assert_eq!(h.kept(), [(1, vec![102])]);
        assert!(h.search.is_pruned(100));
    }

    #[test]
    fn everything_pruned_or_failed_ends_with_no_candidates() {
        let (mut s, e) = Search::start(1, params(2, 2, 3, 0), ExpandAs::Answer);
        assert_eq!(e.len(), 2);
        for ticket in [1, 2] {
            s.update(Msg::Failed {
                ticket,
                error: "down".into(),
            });
        }
        assert_eq!(s.status, Status::NoCandidates);
    }

    #[test]
    fn cancel_mid_search_cancels_everything_in_flight_and_ignores_late_results() {
        let mut h = Harness::new(params(2, 2, 3, 2));
        for _ in 0..3 {
            h.step(&|_, _| Some("sure"));
        }
        let in_flight = h.search.in_flight();
        assert!(in_flight > 0);
        let e = h.search.update(Msg::Cancel);
        assert_eq!(e.len(), in_flight);
        assert!(e.iter().all(|e| matches!(e, Effect::Cancel { .. })));
        assert_eq!(h.search.status, Status::Cancelled);
        assert!(h
            .search
            .update(Msg::Done {
                ticket: 1,
                node: 500,
                text: "late".into()
            })
            .is_empty());
        assert_eq!(h.search.in_flight(), 0);
    }

    #[test]
    fn branching_is_one_unscored_level() {
        let (mut s, e) = Search::branch(7, 3, ExpandAs::Answer);
        assert_eq!(e.len(), 3);
        let mut last = vec![];
        for (i, eff) in e.into_iter().enumerate() {
            if let Effect::Expand { ticket, parent, .. } = eff {
                assert_eq!(parent, 7);
                last = s.update(Msg::Done {
                    ticket,
                    node: 10 + i as u64,
                    text: "alt".into(),
                });
            }
        }
        assert_eq!(
            last,
            [Effect::Kept {
                level: 1,
                nodes: vec![10, 11, 12]
            }]
        );
        assert_eq!(s.status, Status::DepthReached);
    }
}
