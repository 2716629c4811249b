//! The self-refine loop (Madaan et al., 2023) as a pure state machine: critique an answer,
//! rewrite it from the critique, repeat.
//!
//! The machine never talks to a model. It emits [`Effect`]s (start a critique of node N,
//! start a rewrite of N given critique M, cancel a request) tagged with a ticket, and a
//! driver — the TUI or `promptloom technique critique` — runs them, creates the nodes and
//! feeds the outcome back as [`Msg`]s with the same ticket. Stale tickets are ignored, so a
//! late result after a cancel cannot restart anything.

use crate::prompt::techniques::NO_ISSUES;
use crate::state::session::{NodeKind, Session};

/// Why the loop stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The critic said there was nothing left to fix.
    NoIssues,
    /// The rewrite did not change the answer (ignoring case and whitespace).
    Unchanged,
    /// The rewrite now passes the case's expectations.
    ExpectationsPass,
    /// The round limit was reached.
    RoundLimit,
    Cancelled,
    /// A request failed.
    Failed(String),
}

impl StopReason {
    pub fn describe(&self) -> String {
        match self {
            StopReason::NoIssues => "the critic found no issues".into(),
            StopReason::Unchanged => "the rewrite did not change the answer".into(),
            StopReason::ExpectationsPass => "the rewrite passes the expectations".into(),
            StopReason::RoundLimit => "round limit reached".into(),
            StopReason::Cancelled => "cancelled".into(),
            StopReason::Failed(e) => format!("a request failed: {e}"),
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Critique node `answer`; the new node (kind `critique`) is a child of `answer`.
    Critique {
        ticket: u64,
        answer: u64,
    },
    /// Rewrite `answer` from `critique`; the new node (kind `rewrite`) is a child of
    /// `critique`.
    Rewrite {
        ticket: u64,
        answer: u64,
        critique: u64,
    },
    Cancel {
        ticket: u64,
    },
}

/// What the driver reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Msg {
    /// The request `ticket` finished as node `node` with `text`; `passed` is the case's
    /// expectations checked on it (rewrites only; `None` when the case has none).
    Done {
        ticket: u64,
        node: u64,
        text: String,
        passed: Option<bool>,
    },
    Failed {
        ticket: u64,
        error: String,
    },
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Critiquing { ticket: u64 },
    Rewriting { ticket: u64, critique: u64 },
    Stopped(StopReason),
}

/// One run of the loop on one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CritiqueLoop {
    pub max_rounds: usize,
    /// Rounds started so far (a round is one critique plus its rewrite).
    pub round: usize,
    /// The answer and every rewrite of it this run produced, oldest first.
    pub revisions: Vec<u64>,
    latest_text: String,
    phase: Phase,
    next_ticket: u64,
}

impl CritiqueLoop {
    /// Start on `answer` (whose text is `text`). `max_rounds` 1 is the single-step `c`.
    pub fn start(answer: u64, text: &str, max_rounds: usize) -> (CritiqueLoop, Vec<Effect>) {
        let mut l = CritiqueLoop {
            max_rounds: max_rounds.max(1),
            round: 1,
            revisions: vec![answer],
            latest_text: text.to_string(),
            phase: Phase::Stopped(StopReason::RoundLimit),
            next_ticket: 1,
        };
        let e = l.critique();
        (l, vec![e])
    }

    fn critique(&mut self) -> Effect {
        let ticket = self.ticket();
        self.phase = Phase::Critiquing { ticket };
        Effect::Critique {
            ticket,
            answer: self.latest(),
        }
    }

    fn ticket(&mut self) -> u64 {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    /// The newest revision.
    pub fn latest(&self) -> u64 {
        *self.revisions.last().unwrap_or(&0)
    }

    pub fn stop_reason(&self) -> Option<&StopReason> {
        match &self.phase {
            Phase::Stopped(r) => Some(r),
            _ => None,
        }
    }

    pub fn is_running(&self) -> bool {
        self.stop_reason().is_none()
    }

    /// The ticket in flight, if any.
    pub fn in_flight(&self) -> Option<u64> {
        match self.phase {
            Phase::Critiquing { ticket } | Phase::Rewriting { ticket, .. } => Some(ticket),
            Phase::Stopped(_) => None,
        }
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Cancel => match self.in_flight() {
                Some(ticket) => {
                    self.phase = Phase::Stopped(StopReason::Cancelled);
                    vec![Effect::Cancel { ticket }]
                }
                None => vec![],
            },
            Msg::Failed { ticket, error } => {
                if self.in_flight() == Some(ticket) {
                    self.phase = Phase::Stopped(StopReason::Failed(error));
                }
                vec![]
            }
            Msg::Done {
                ticket,
                node,
                text,
                passed,
            } => {
                if self.in_flight() != Some(ticket) {
                    return vec![];
                }
                match self.phase {
                    Phase::Critiquing { .. } => {
                        if says_no_issues(&text) {
                            self.phase = Phase::Stopped(StopReason::NoIssues);
                            return vec![];
                        }
                        let ticket = self.ticket();
                        self.phase = Phase::Rewriting {
                            ticket,
                            critique: node,
                        };
                        vec![Effect::Rewrite {
                            ticket,
                            answer: self.latest(),
                            critique: node,
                        }]
                    }
                    Phase::Rewriting { .. } => {
                        let unchanged = normalise(&text) == normalise(&self.latest_text);
                        if unchanged {
                            // Nothing new: keep the previous revision as the latest.
                            self.phase = Phase::Stopped(StopReason::Unchanged);
                            return vec![];
                        }
                        self.revisions.push(node);
                        self.latest_text = text;
                        if passed == Some(true) {
                            self.phase = Phase::Stopped(StopReason::ExpectationsPass);
                            return vec![];
                        }
                        if self.round >= self.max_rounds {
                            self.phase = Phase::Stopped(StopReason::RoundLimit);
                            return vec![];
                        }
                        self.round += 1;
                        vec![self.critique()]
                    }
                    Phase::Stopped(_) => vec![],
                }
            }
        }
    }
}

/// Whether a critique says there is nothing to fix: `NO ISSUES` on its own (any case, any
/// surrounding punctuation), or as the first line. A critique that lists problems and then
/// mentions "no issues" about one part does not count.
pub(crate) fn says_no_issues(critique: &str) -> bool {
    let first = critique
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let core = |s: &str| {
        s.trim_matches(|c: char| !c.is_alphanumeric())
            .to_ascii_uppercase()
    };
    core(first) == NO_ISSUES || core(critique) == NO_ISSUES
}

/// Lower case, whitespace collapsed, trailing punctuation dropped.
pub(crate) fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(['.', '!'])
        .to_lowercase()
}

/// The revision chain through `node`: the answer it descends from, then each rewrite
/// (rewrite → critique → previous revision), continuing down through the newest rewrite of
/// the last one. Returns the chain and `node`'s position in it (0-based); a critique maps to
/// the revision it critiques.
pub(crate) fn revisions(session: &Session, node: u64) -> (Vec<u64>, usize) {
    // The revision `node` stands for.
    let mut focus = node;
    if let Some(n) = session.node(node) {
        if n.kind == NodeKind::Critique {
            focus = n.parent.unwrap_or(node);
        }
    }
    // Walk up.
    let mut up = vec![focus];
    let mut cur = focus;
    while let Some(n) = session.node(cur) {
        if n.kind != NodeKind::Rewrite {
            break;
        }
        let Some(prev) = n
            .parent
            .and_then(|c| session.node(c))
            .filter(|c| c.kind == NodeKind::Critique)
            .and_then(|c| c.parent)
        else {
            break;
        };
        if up.contains(&prev) {
            break;
        }
        up.push(prev);
        cur = prev;
    }
    up.reverse();
    let pos = up.len() - 1;
    // Walk down through the newest rewrite.
    let mut cur = focus;
    loop {
        let next = session
            .nodes
            .iter()
            .filter(|c| c.kind == NodeKind::Critique && c.parent == Some(cur))
            .flat_map(|c| {
                session
                    .nodes
                    .iter()
                    .filter(move |r| r.kind == NodeKind::Rewrite && r.parent == Some(c.id))
            })
            .map(|r| r.id)
            .max();
        match next {
            Some(n) if !up.contains(&n) => {
                up.push(n);
                cur = n;
            }
            _ => break,
        }
    }
    (up, pos)
}

/// `rev 2/3` for the pane header: 1-based position in the chain.
pub(crate) fn revision_label(session: &Session, node: u64) -> String {
    let (chain, pos) = revisions(session, node);
    format!("rev {}/{}", pos + 1, chain.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatRequest, Sampling};
    use crate::state::session::{Node, NodeStatus};

    fn done(l: &mut CritiqueLoop, node: u64, text: &str, passed: Option<bool>) -> Vec<Effect> {
        let ticket = l.in_flight().expect("a request in flight");
        l.update(Msg::Done {
            ticket,
            node,
            text: text.into(),
            passed,
        })
    }

    #[test]
    fn runs_rounds_until_the_limit() {
        let (mut l, e) = CritiqueLoop::start(1, "Paris is in England.", 2);
        assert_eq!(
            e,
            [Effect::Critique {
                ticket: 1,
                answer: 1
            }]
        );
        let e = done(&mut l, 2, "Paris is in France.", None);
        assert_eq!(
            e,
            [Effect::Rewrite {
                ticket: 2,
                answer: 1,
                critique: 2
            }]
        );
        let e = done(&mut l, 3, "London is in England.", Some(false));
        assert_eq!(
            e,
            [Effect::Critique {
                ticket: 3,
                answer: 3
            }]
        );
        assert_eq!(l.round, 2);
        let e = done(&mut l, 4, "Say which city.", None);
        assert_eq!(
            e,
            [Effect::Rewrite {
                ticket: 4,
                answer: 3,
                critique: 4
            }]
        );
        assert!(done(&mut l, 5, "London is the capital of England.", None).is_empty());
        assert_eq!(l.stop_reason(), Some(&StopReason::RoundLimit));
        assert_eq!(l.revisions, [1, 3, 5]);
    }

    #[test]
    fn stops_when_the_critic_has_nothing_to_fix() {
        for reply in [
            "NO ISSUES",
            "No issues.",
            "**NO ISSUES**",
            "no issues\n\nThe answer is fine.",
        ] {
            let (mut l, _) = CritiqueLoop::start(1, "London", 3);
            assert!(done(&mut l, 2, reply, None).is_empty(), "{reply}");
            assert_eq!(l.stop_reason(), Some(&StopReason::NoIssues), "{reply}");
        }
        let (mut l, _) = CritiqueLoop::start(1, "London", 3);
        let e = done(&mut l, 2, "1. Too short.\n2. Otherwise no issues.", None);
        assert_eq!(e.len(), 1, "a list of problems is not NO ISSUES");
    }

    #[test]
    fn stops_when_the_rewrite_is_unchanged() {
        let (mut l, _) = CritiqueLoop::start(1, "The capital is London.", 3);
        done(&mut l, 2, "Add detail.", None);
        assert!(done(&mut l, 3, "  the capital is   LONDON ", None).is_empty());
        assert_eq!(l.stop_reason(), Some(&StopReason::Unchanged));
        assert_eq!(
            l.revisions,
            [1],
            "an unchanged rewrite is not a new revision"
        );
    }

    #[test]
    fn stops_when_expectations_pass() {
        let (mut l, _) = CritiqueLoop::start(1, "Paris", 3);
        done(&mut l, 2, "Wrong city.", None);
        assert!(done(&mut l, 3, "London", Some(true)).is_empty());
        assert_eq!(l.stop_reason(), Some(&StopReason::ExpectationsPass));
        assert_eq!(l.latest(), 3);
    }

    #[test]
    fn cancel_mid_rewrite_cancels_the_request_and_ignores_late_results() {
        let (mut l, _) = CritiqueLoop::start(1, "Paris", 3);
        done(&mut l, 2, "Wrong city.", None);
        let ticket = l.in_flight().unwrap();
        assert_eq!(l.update(Msg::Cancel), [Effect::Cancel { ticket }]);
        assert_eq!(l.stop_reason(), Some(&StopReason::Cancelled));
        let late = l.update(Msg::Done {
            ticket,
            node: 3,
            text: "London".into(),
            passed: Some(true),
        });
        assert!(late.is_empty());
        assert_eq!(l.stop_reason(), Some(&StopReason::Cancelled));
        assert!(
            l.update(Msg::Cancel).is_empty(),
            "cancelling twice is harmless"
        );
    }

    #[test]
    fn a_failed_request_stops_with_its_error() {
        let (mut l, _) = CritiqueLoop::start(1, "Paris", 3);
        l.update(Msg::Failed {
            ticket: 99,
            error: "stale".into(),
        });
        assert!(l.is_running(), "stale tickets are ignored");
        l.update(Msg::Failed {
            ticket: 1,
            error: "connection refused".into(),
        });
        assert_eq!(
            l.stop_reason(),
            Some(&StopReason::Failed("connection refused".into()))
        );
    }

    fn node(id: u64, parent: Option<u64>, kind: NodeKind) -> Node {
        let mut n = Node::start(
            id,
            parent,
            kind,
            "v",
            "c",
            "m",
            ChatRequest {
                messages: vec![],
                sampling: Sampling::default(),
            },
            "t".into(),
        );
        n.status = NodeStatus::Done;
        n
    }

    #[test]
    fn revision_chain_and_labels() {
        let mut s = Session::new("t", "now".into(), None);
        s.nodes = vec![
            node(1, None, NodeKind::Answer),
            node(2, Some(1), NodeKind::Critique),
            node(3, Some(2), NodeKind::Rewrite),
            node(4, Some(3), NodeKind::Critique),
            node(5, Some(4), NodeKind::Rewrite),
            // An older, abandoned rewrite of the same critique loses to the newest.
            node(6, Some(1), NodeKind::Critique),
            node(7, Some(6), NodeKind::Rewrite),
            node(8, None, NodeKind::Answer),
        ];
        assert_eq!(revisions(&s, 1), (vec![1, 7], 0));
        assert_eq!(revisions(&s, 3), (vec![1, 3, 5], 1));
        assert_eq!(revision_label(&s, 5), "rev 3/3");
        assert_eq!(revision_label(&s, 4), "rev 2/3");
        assert_eq!(revision_label(&s, 8), "rev 1/1");
    }
}
