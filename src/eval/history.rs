//! A variant's history: its versions (see [`crate::state::versions`]) with how each did,
//! from the leaderboard grouped by variant version, so the figures are the board's own
//! (pass rate with its Wilson interval, mean stars with a t-interval, Bradley–Terry strength
//! with its posterior interval).

use crate::eval::bradley_terry::Interval;
use crate::eval::leaderboard::{self, GroupBy, Share};
use crate::state::session::Session;
use crate::state::versions;

/// One version of a variant and its results.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VersionRow {
    pub number: u32,
    pub hash: String,
    pub label: String,
    pub at: String,
    pub answers: usize,
    pub pass_rate: Option<Share>,
    pub stars: Option<Interval>,
    pub stars_n: usize,
    pub strength: Option<Interval>,
    pub votes: usize,
}

/// Every version of `variant`, oldest first, with its results.
pub(crate) fn history(session: &Session, variant: &str) -> Vec<VersionRow> {
    let board = leaderboard::build(session, GroupBy::VariantVersion);
    versions::of_variant(session, variant)
        .into_iter()
        .map(|v| {
            let e = board
                .entries
                .iter()
                .find(|e| e.name == format!("{variant} v{}", v.number));
            VersionRow {
                number: v.number,
                hash: v.hash.clone(),
                label: v.label.clone(),
                at: v.at.clone(),
                answers: e.map_or(0, |e| e.answers),
                pass_rate: e.and_then(|e| e.pass_rate),
                stars: e.and_then(|e| e.stars),
                stars_n: e.map_or(0, |e| e.stars_n),
                strength: e.and_then(|e| e.strength),
                votes: e.map_or(0, |e| e.votes()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ChatRequest;
    use crate::eval::expect::CheckResult;
    use crate::prompt::render::tests_support::variant;
    use crate::state::session::{Node, NodeKind, NodeStatus, Rating};

    fn answer(s: &mut Session, tag: &str, pass: bool, stars: u8) {
        let id = s.next_node_id();
        let mut n = Node::start(
            id,
            None,
            NodeKind::Answer,
            "v",
            "c",
            "m",
            ChatRequest {
                messages: vec![],
                sampling: Default::default(),
            },
            "t".into(),
        );
        n.status = NodeStatus::Done;
        n.checks = vec![CheckResult {
            kind: "any".into(),
            pass,
            detail: String::new(),
        }];
        versions::tag_node(&mut n, tag.to_string());
        s.nodes.push(n);
        s.ratings.push(Rating {
            node: id,
            stars: Some(stars),
            thumb: None,
            note: None,
            rater: "r".into(),
            at: "t".into(),
            seq: None,
        });
    }

    /// A variant edited twice: three versions; the answers of each are counted under the
    /// version they used, and the figures match a hand computation.
    #[test]
    fn versions_carry_their_own_answers_and_figures() {
        let mut s = Session::new("t", "x".into(), None);
        let mut v = variant();
        let t1 = versions::record(&mut s, &v, "t1");
        answer(&mut s, &t1, true, 4);
        answer(&mut s, &t1, false, 2);
        v.template = "Another word for {{word}}?".into();
        let t2 = versions::record(&mut s, &v, "t2");
        answer(&mut s, &t2, true, 5);
        answer(&mut s, &t2, true, 5);
        answer(&mut s, &t2, true, 4);
        v.step_by_step = true;
        let _t3 = versions::record(&mut s, &v, "t3");
        let h = history(&s, "v");
        assert_eq!(h.iter().map(|r| r.number).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(h.iter().map(|r| r.answers).collect::<Vec<_>>(), [2, 3, 0]);
        // v1: 1 of 2 passed, stars (4 + 2) / 2 = 3; v2: 3 of 3, (5 + 5 + 4) / 3 = 4.67.
        let p1 = h[0].pass_rate.unwrap();
        assert_eq!((p1.hits, p1.n), (1, 2));
        let p2 = h[1].pass_rate.unwrap();
        assert_eq!((p2.hits, p2.n), (3, 3));
        assert!((h[0].stars.unwrap().estimate - 3.0).abs() < 1e-9);
        assert!((h[1].stars.unwrap().estimate - 14.0 / 3.0).abs() < 1e-9);
        assert!(h[2].stars.is_none());
        assert_eq!(h[2].label, "step by step on");
    }
}
