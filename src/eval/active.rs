//! What to rate next: the blind comparison that would teach the leaderboard the most.
//!
//! Cycling through every pair wastes the rater's time on comparisons whose outcome is
//! already clear. Each candidate (variant A, variant B, a case both answered) is scored by
//! - how unpredictable its outcome is under the current Bradley–Terry fit
//!   (1 − |2·P(A beats B) − 1|: 1 at a coin flip, 0 when certain),
//! - how much the two strength intervals overlap (settled orderings don't overlap),
//! - how few votes the pair already has (1 / (1 + votes)), and, as a tie-break, how few of
//!   those were on this case.
//!
//! It is a cheap stand-in for expected information gain that needs no extra fits, and the
//! reason string says which of these made the pick.

use crate::eval::bradley_terry::{win_probability, Interval};
use crate::eval::leaderboard::Leaderboard;
use crate::state::session::{NodeKind, NodeStatus, Session};

/// A suggested blind comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Suggestion {
    pub case: String,
    pub variant_a: String,
    pub variant_b: String,
    pub node_a: u64,
    pub node_b: u64,
    /// Higher is more informative.
    pub score: f64,
    /// P(A beats B) under the current fit.
    pub p_a_wins: f64,
    /// Votes so far between these two variants (any case).
    pub pair_votes: usize,
    pub reason: String,
    /// The reason without the variants' names, for a blind comparison.
    pub blind_reason: String,
}

/// Every candidate comparison, most informative first. `board` must be grouped by variant.
pub(crate) fn ranked_pairs(session: &Session, board: &Leaderboard) -> Vec<Suggestion> {
    // The latest usable answer per (case, variant), in first-seen order.
    let mut cases: Vec<(&str, Vec<(&str, u64)>)> = Vec::new();
    for n in &session.nodes {
        if n.kind != NodeKind::Answer || matches!(n.status, NodeStatus::Error | NodeStatus::Queued)
        {
            continue;
        }
        let slot = match cases.iter().position(|(c, _)| *c == n.case) {
            Some(i) => &mut cases[i].1,
            None => {
                cases.push((&n.case, Vec::new()));
                &mut cases.last_mut().expect("just pushed").1
            }
        };
        match slot.iter_mut().find(|(v, _)| *v == n.variant) {
            Some(entry) => entry.1 = entry.1.max(n.id),
            None => slot.push((&n.variant, n.id)),
        }
    }
    let variant_of = |id: u64| {
        session
            .node(id)
            .map(|n| (n.variant.as_str(), n.case.as_str()))
    };
    let pair_key = |a: &str, b: &str| {
        if a <= b {
            (a.to_string(), b.to_string())
        } else {
            (b.to_string(), a.to_string())
        }
    };
    let mut pair_votes: std::collections::HashMap<(String, String), usize> = Default::default();
    let mut case_votes: std::collections::HashMap<(String, String, String), usize> =
        Default::default();
    for v in &session.votes {
        if let (Some((va, case)), Some((vb, _))) = (variant_of(v.left), variant_of(v.right)) {
            if va != vb {
                let k = pair_key(va, vb);
                *case_votes
                    .entry((k.0.clone(), k.1.clone(), case.to_string()))
                    .or_default() += 1;
                *pair_votes.entry(k).or_default() += 1;
            }
        }
    }
    let strength = |name: &str| -> Option<Interval> {
        board.index_of(name).and_then(|i| board.entries[i].strength)
    };
    let mut out = Vec::new();
    for (case, answers) in &cases {
        for i in 0..answers.len() {
            for j in i + 1..answers.len() {
                let ((va, na), (vb, nb)) = (answers[i], answers[j]);
                let (sa, sb) = (strength(va), strength(vb));
                let ta = sa.map_or(0.0, |s| s.estimate);
                let tb = sb.map_or(0.0, |s| s.estimate);
                let p = win_probability(ta, tb);
                let uncertainty = 1.0 - (2.0 * p - 1.0).abs();
                let overlap = match (sa, sb) {
                    (Some(a), Some(b)) => overlap_fraction(&a, &b),
                    _ => 1.0,
                };
                let key = pair_key(va, vb);
                let votes = pair_votes.get(&key).copied().unwrap_or(0);
                let here = case_votes
                    .get(&(key.0, key.1, case.to_string()))
                    .copied()
                    .unwrap_or(0);
                let score = uncertainty
                    * (0.2 + 0.8 * overlap)
                    * (1.0 / (1.0 + votes as f64))
                    * (1.0 - 0.1 * (here as f64 / (1.0 + here as f64)));
                let reason = reason(va, vb, ta, tb, p, sa, sb, overlap, votes);
                let blind_reason = blind_reason(p, sa.is_some() && sb.is_some(), overlap, votes);
                out.push(Suggestion {
                    case: case.to_string(),
                    variant_a: va.to_string(),
                    variant_b: vb.to_string(),
                    node_a: na,
                    node_b: nb,
                    score,
                    p_a_wins: p,
                    pair_votes: votes,
                    reason,
                    blind_reason,
                });
            }
        }
    }
    // Stable sort keeps session order among equal scores, so the pick is deterministic.
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// The single most informative comparison, if any case has two variants answered.
pub(crate) fn next_pair(session: &Session, board: &Leaderboard) -> Option<Suggestion> {
    ranked_pairs(session, board).into_iter().next()
}

/// Overlap length relative to the narrower interval, in [0, 1].
fn overlap_fraction(a: &Interval, b: &Interval) -> f64 {
    let len = (a.high.min(b.high) - a.low.max(b.low)).max(0.0);
    let narrow = a.width().min(b.width());
    if narrow <= 0.0 {
        // A zero-width interval measured nothing: as uncertain as it gets.
        1.0
    } else {
        (len / narrow).min(1.0)
    }
}

fn votes_so_far(votes: usize) -> String {
    match votes {
        0 => "no votes so far".to_string(),
        1 => "1 vote so far".to_string(),
        n => format!("{n} votes so far"),
    }
}

fn interval_words(overlap: f64) -> &'static str {
    if overlap > 0.5 {
        "overlapping intervals"
    } else if overlap > 0.0 {
        "slightly overlapping intervals"
    } else {
        "separate intervals"
    }
}

/// Why the pair was picked, naming neither variant.
fn blind_reason(p: f64, fitted: bool, overlap: f64, votes: usize) -> String {
    let so_far = votes_so_far(votes);
    if !fitted {
        return format!("this pair has no fitted strengths yet; {so_far}");
    }
    let (hi, lo) = (p.max(1.0 - p), p.min(1.0 - p));
    format!(
        "closely matched so far ({:.0}/{:.0} win chances) with {}; {so_far}",
        100.0 * hi,
        100.0 * lo,
        interval_words(overlap)
    )
}

#[allow(clippy::too_many_arguments)]
fn reason(
    va: &str,
    vb: &str,
    ta: f64,
    tb: f64,
    p: f64,
    sa: Option<Interval>,
    sb: Option<Interval>,
    overlap: f64,
    votes: usize,
) -> String {
    let so_far = votes_so_far(votes);
    if sa.is_none() || sb.is_none() {
        return format!("{va} vs {vb} has no fitted strength yet; {so_far}");
    }
    let intervals = interval_words(overlap);
    format!(
        "{va} and {vb} are within {:.2} of each other (P({va} wins) = {:.2}) with {intervals}; {so_far}",
        (ta - tb).abs(),
        p
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::leaderboard::tests::{grid, node_of, vote};
    use crate::eval::leaderboard::{build, GroupBy};

    #[test]
    fn with_no_votes_every_pair_is_a_candidate_and_says_why() {
        let s = grid(&["a", "b", "c"], &["c1", "c2"]);
        let board = build(&s, GroupBy::Variant);
        let all = ranked_pairs(&s, &board);
        assert_eq!(all.len(), 6);
        let first = &all[0];
        assert_eq!((first.case.as_str(), first.variant_a.as_str()), ("c1", "a"));
        assert_eq!(first.node_a, node_of(&s, "a", "c1"));
        assert!(first.reason.contains("no votes so far"), "{}", first.reason);
    }

    #[test]
    fn prefers_an_uncertain_pair_over_a_settled_one() {
        let cases: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
        let case_refs: Vec<&str> = cases.iter().map(String::as_str).collect();
        let mut s = grid(&["strong", "weak", "mid1", "mid2"], &case_refs);
        // strong beats weak every time (settled); mid1 vs mid2 split evenly, fewer votes.
        for c in &case_refs {
            let (a, b) = (node_of(&s, "strong", c), node_of(&s, "weak", c));
            vote(&mut s, a, b, "left");
        }
        for (k, c) in case_refs.iter().take(4).enumerate() {
            let (a, b) = (node_of(&s, "mid1", c), node_of(&s, "mid2", c));
            vote(&mut s, a, b, if k % 2 == 0 { "left" } else { "right" });
        }
        // Connect the groups so every strength is fitted.
        for c in case_refs.iter().take(3) {
            let (a, b) = (node_of(&s, "strong", c), node_of(&s, "mid1", c));
            vote(&mut s, a, b, "left");
            let (a, b) = (node_of(&s, "mid2", c), node_of(&s, "weak", c));
            vote(&mut s, a, b, "left");
        }
        let board = build(&s, GroupBy::Variant);
        let ranked = ranked_pairs(&s, &board);
        let best = &ranked[0];
        let mut pair = [best.variant_a.as_str(), best.variant_b.as_str()];
        pair.sort();
        assert_eq!(pair, ["mid1", "mid2"], "{best:?}");
        assert!(
            best.reason.contains("overlapping intervals"),
            "{}",
            best.reason
        );
        assert!(best.reason.contains("4 votes so far"), "{}", best.reason);
        assert!(
            !best.blind_reason.contains("mid") && best.blind_reason.contains("closely matched"),
            "{}",
            best.blind_reason
        );
        let settled = ranked
            .iter()
            .find(|x| x.variant_a == "strong" && x.variant_b == "weak")
            .unwrap();
        assert!(settled.score < best.score / 4.0, "{settled:?} vs {best:?}");
        // Among equally uncertain pairs, fewer votes wins: mid1/mid2 on a case it has not
        // been voted on comes before one it has.
        let first_mid = ranked
            .iter()
            .find(|x| x.variant_a == "mid1" && x.variant_b == "mid2")
            .unwrap();
        assert!(!["c0", "c1", "c2", "c3"].contains(&first_mid.case.as_str()));
    }

    #[test]
    fn errored_answers_are_not_offered() {
        let mut s = grid(&["a", "b"], &["c1"]);
        s.nodes[1].status = NodeStatus::Error;
        let board = build(&s, GroupBy::Variant);
        assert!(next_pair(&s, &board).is_none());
    }
}
