//! Self-consistency: N samples of one cell (variant × case) collapsed into clusters, twice
//! over: by the answer's normalised text (exact match after folding case, whitespace and
//! trailing punctuation) and by which expectations it passes. With counts, the majority
//! answer, agreement (the majority's share) and the pass count (its 95% Wilson interval is
//! `leaderboard::share`, which ranks with these figures).
//!
//! The samples of a cell are the answers that share a `sample_group` annotation (set by the
//! runner that made them); `group_samples` finds them in a session.

use std::collections::BTreeMap;

use crate::state::session::{Node, NodeStatus, Session};

/// The annotation that ties the samples of one cell together (its value names the cell and
/// the run), and the one with the sample's index.
pub(crate) const GROUP_KEY: &str = "sample_group";
pub(crate) const INDEX_KEY: &str = "sample";

/// The text an answer is compared by: lower case, runs of whitespace as one space, without
/// surrounding whitespace and trailing `.`, `!`, `;` or `,`.
pub(crate) fn normalise(text: &str) -> String {
    let flat = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    flat.trim_end_matches(['.', '!', ';', ','])
        .trim()
        .to_string()
}

/// One cluster: answers that are the same under one grouping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cluster {
    /// The normalised text, or the pass marks of the checks (`✓✗`, `-` for unchecked).
    pub key: String,
    /// Node ids, in the order given.
    pub members: Vec<u64>,
}

/// N samples of a cell, summarised.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stability {
    pub samples: usize,
    /// By normalised text, largest first (ties: first seen first).
    pub by_text: Vec<Cluster>,
    /// By which checks pass, largest first.
    pub by_checks: Vec<Cluster>,
    /// The majority cluster's share of the samples.
    pub agreement: f64,
    /// (samples whose every check passed, samples with checks); `None` without checks.
    pub pass: Option<(usize, usize)>,
}

impl Stability {
    /// The majority answer (a member of the largest text cluster).
    pub fn majority(&self) -> Option<u64> {
        self.by_text
            .first()
            .and_then(|c| c.members.first().copied())
    }
}

fn checks_key(n: &Node) -> String {
    if n.checks.is_empty() {
        return "-".into();
    }
    n.checks
        .iter()
        .map(|c| if c.pass { '✓' } else { '✗' })
        .collect()
}

/// Group `items` by `key`, largest group first, ties in order of first appearance.
fn clusters(nodes: &[&Node], key: impl Fn(&Node) -> String) -> Vec<Cluster> {
    let mut out: Vec<Cluster> = Vec::new();
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for n in nodes {
        let k = key(n);
        match at.get(&k) {
            Some(&i) => out[i].members.push(n.id),
            None => {
                at.insert(k.clone(), out.len());
                out.push(Cluster {
                    key: k,
                    members: vec![n.id],
                });
            }
        }
    }
    // Stable: equal sizes keep their first-seen order.
    out.sort_by_key(|c| std::cmp::Reverse(c.members.len()));
    out
}

/// The clusters of finished samples (unfinished ones are left out: their text is not an
/// answer).
pub(crate) fn stability(samples: &[&Node]) -> Option<Stability> {
    let done: Vec<&Node> = samples
        .iter()
        .copied()
        .filter(|n| n.status == NodeStatus::Done)
        .collect();
    if done.is_empty() {
        return None;
    }
    let by_text = clusters(&done, |n| normalise(&n.text));
    let by_checks = clusters(&done, checks_key);
    let agreement = by_text.first().map_or(0.0, |c| c.members.len() as f64) / done.len() as f64;
    let checked: Vec<bool> = done.iter().filter_map(|n| n.passed()).collect();
    let pass =
        (!checked.is_empty()).then(|| (checked.iter().filter(|p| **p).count(), checked.len()));
    Some(Stability {
        samples: done.len(),
        by_text,
        by_checks,
        agreement,
        pass,
    })
}

/// The sample groups of a session: group id → its nodes, in session order.
pub(crate) fn group_samples(session: &Session) -> BTreeMap<String, Vec<&Node>> {
    let mut out: BTreeMap<String, Vec<&Node>> = BTreeMap::new();
    for n in &session.nodes {
        if let Some(g) = n.meta.get(GROUP_KEY) {
            out.entry(g.clone()).or_default().push(n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatRequest, Sampling};
    use crate::eval::expect::CheckResult;
    use crate::state::session::NodeKind;

    fn node(id: u64, text: &str, pass: &[bool]) -> Node {
        let req = ChatRequest {
            messages: vec![],
            sampling: Sampling::default(),
        };
        let mut n = Node::start(id, None, NodeKind::Answer, "v", "c", "m", req, "t".into());
        n.text = text.into();
        n.status = NodeStatus::Done;
        n.checks = pass
            .iter()
            .map(|&p| CheckResult {
                kind: "any".into(),
                pass: p,
                detail: String::new(),
            })
            .collect();
        n
    }

    #[test]
    fn normalised_exact_match() {
        assert_eq!(normalise("  London.\n"), "london");
        assert_eq!(
            normalise("The  capital\tis London!"),
            "the capital is london"
        );
        assert_ne!(normalise("London"), normalise("Londres"));
    }

    /// The clusters equal a brute-force grouping: every pair of samples is in the same cluster
    /// exactly when their keys are equal, and the counts add up.
    #[test]
    fn clusters_equal_a_brute_force_grouping() {
        let texts = [
            "London.", "london", "Paris", " LONDON ", "Paris.", "Rome", "london!",
        ];
        let nodes: Vec<Node> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| node(i as u64 + 1, t, &[t.to_lowercase().contains("london")]))
            .collect();
        let refs: Vec<&Node> = nodes.iter().collect();
        let st = stability(&refs).unwrap();
        let cluster_of = |id: u64| {
            st.by_text
                .iter()
                .position(|c| c.members.contains(&id))
                .unwrap()
        };
        for a in &nodes {
            for b in &nodes {
                assert_eq!(
                    cluster_of(a.id) == cluster_of(b.id),
                    normalise(&a.text) == normalise(&b.text),
                    "{:?} {:?}",
                    a.text,
                    b.text
                );
            }
        }
        let sizes: Vec<usize> = st.by_text.iter().map(|c| c.members.len()).collect();
        assert_eq!(sizes, vec![4, 2, 1]);
        assert_eq!(sizes.iter().sum::<usize>(), texts.len());
        assert_eq!(st.majority(), Some(1));
        assert!((st.agreement - 4.0 / 7.0).abs() < 1e-12);
        assert_eq!(st.pass, Some((4, 7)));
        let by_checks: Vec<(String, usize)> = st
            .by_checks
            .iter()
            .map(|c| (c.key.clone(), c.members.len()))
            .collect();
        assert_eq!(by_checks, vec![("✓".to_string(), 4), ("✗".to_string(), 3)]);
    }

    #[test]
    fn unfinished_samples_are_left_out() {
        let mut a = node(1, "x", &[]);
        a.status = NodeStatus::Error;
        assert!(stability(&[&a]).is_none());
        let b = node(2, "x", &[]);
        let st = stability(&[&a, &b]).unwrap();
        assert_eq!(st.samples, 1);
        assert_eq!(st.pass, None);
    }
}
