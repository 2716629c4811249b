use super::*;
use crate::eval::expect::CheckResult;
use crate::eval::leaderboard::tests::{grid, node_of, vote};
use crate::llm::{ChatRequest, Sampling};
use crate::state::session::Rating;

fn check(pass: bool) -> Vec<CheckResult> {
    vec![CheckResult {
        kind: "any".into(),
        pass,
        detail: String::new(),
    }]
}

fn rate(s: &mut Session, node: u64, rater: &str, stars: Option<u8>, thumb: Option<i8>) {
    s.ratings.push(Rating {
        node,
        stars,
        thumb,
        note: None,
        rater: rater.into(),
        at: "t".into(),
        seq: None,
    });
}

/// Five cases, variants a and b (models m-a, m-b):
/// - c1: a's answer was critiqued and its rewrite promoted; b has 5 stars.
/// - c2: a 3 stars and passes, b 4 stars (ann) but fails its check.
/// - c3: nobody rated; a passes, b fails.
/// - c4: nobody rated, no checks: nothing chosen.
/// - c5: a errored; b has a thumbs-up from bob only.
pub(super) fn session() -> (Session, u64) {
    let mut s = grid(&["a", "b"], &["c1", "c2", "c3", "c4", "c5"]);
    let id = |s: &Session, v: &str, c: &str| node_of(s, v, c);
    let a1 = id(&s, "a", "c1");
    let crit = s.push_child(
        a1,
        NodeKind::Critique,
        "m-a",
        ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "Critique this.")],
            sampling: Sampling::default(),
        },
        "t".into(),
        &[],
    );
    crit.status = NodeStatus::Done;
    crit.text = "Too short.".into();
    let crit = crit.id;
    let rw = s.push_child(
        crit,
        NodeKind::Rewrite,
        "m-a",
        ChatRequest {
            messages: vec![ChatMessage::new(
                Role::User,
                "Rewrite it from the critique.",
            )],
            sampling: Sampling::default(),
        },
        "t".into(),
        &[],
    );
    rw.status = NodeStatus::Done;
    rw.text = "a answers c1, at length".into();
    let rw = rw.id;
    s.node_mut(a1)
        .unwrap()
        .meta
        .insert("promoted".into(), rw.to_string());
    let b1 = id(&s, "b", "c1");
    rate(&mut s, b1, "ann", Some(5), None);
    let (a2, b2) = (id(&s, "a", "c2"), id(&s, "b", "c2"));
    rate(&mut s, a2, "bob", Some(3), None);
    rate(&mut s, b2, "ann", Some(4), None);
    s.node_mut(a2).unwrap().checks = check(true);
    s.node_mut(b2).unwrap().checks = check(false);
    let (a3, b3) = (id(&s, "a", "c3"), id(&s, "b", "c3"));
    s.node_mut(a3).unwrap().checks = check(true);
    s.node_mut(b3).unwrap().checks = check(false);
    let (a5, b5) = (id(&s, "a", "c5"), id(&s, "b", "c5"));
    {
        let n = s.node_mut(a5).unwrap();
        n.status = NodeStatus::Error;
        n.error = Some("connection refused".into());
    }
    rate(&mut s, b5, "bob", None, Some(1));
    // Votes: a beats b on c1 (ann), b beats a on c2 (bob, from the right), a tie and a
    // both-bad that make no pairs.
    vote(&mut s, a1, b1, "left");
    s.votes.last_mut().unwrap().rater = "ann".into();
    vote(&mut s, a2, b2, "right");
    s.votes.last_mut().unwrap().rater = "bob".into();
    vote(&mut s, a3, b3, "tie");
    let (a4, b4) = (id(&s, "a", "c4"), id(&s, "b", "c4"));
    vote(&mut s, a4, b4, "both_bad");
    (s, rw)
}

fn picked(s: &Session, f: &Filter) -> Vec<(String, String, &'static str)> {
    choices(s, f)
        .into_iter()
        .map(|c| {
            let n = s.node(c.node).unwrap();
            (c.case, n.variant.clone(), c.reason.as_str())
        })
        .collect()
}

fn t(case: &str, variant: &str, why: &'static str) -> (String, String, &'static str) {
    (case.into(), variant.into(), why)
}

#[test]
fn the_chosen_answer_per_case_is_promoted_then_rated_then_passed() {
    let (s, rw) = session();
    assert_eq!(
        picked(&s, &Filter::default()),
        [
            t("c1", "a", "promoted"),
            t("c2", "b", "rated"),
            t("c3", "a", "passed"),
            t("c5", "b", "rated"),
        ]
    );
    let rows = sft_rows(&s, &Filter::default(), "s.toml", true);
    assert_eq!(rows.len(), 4);
    // The promoted rewrite is trained on the question its answer was asked, not on the
    // rewrite instruction.
    let first = &rows[0].value;
    assert_eq!(first["metadata"]["node"], rw);
    assert_eq!(first["metadata"]["chosen_by"], "promoted");
    assert_eq!(first["metadata"]["session"], "s.toml");
    let msgs = first["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert_eq!(msgs[0]["role"], "system");
    assert_eq!(msgs[1]["content"], "Question c1?");
    assert_eq!(msgs[2]["role"], "assistant");
    assert_eq!(msgs[2]["content"], "a answers c1, at length");
    let bare = sft_rows(&s, &Filter::default(), "s.toml", false);
    assert!(bare[0].value.get("metadata").is_none());
    assert_eq!(bare[0].value.as_object().unwrap().len(), 1);
}

#[test]
fn filters_narrow_what_may_be_chosen() {
    let (s, _) = session();
    let f = |min: Option<u8>, passing: bool, v: &[&str], m: &[&str], r: Option<&str>| Filter {
        min_stars: min,
        passing,
        variants: v.iter().map(|x| x.to_string()).collect(),
        models: m.iter().map(|x| x.to_string()).collect(),
        rater: r.map(String::from),
    };
    // The promoted rewrite has no stars; the 5-star b answer is next on c1.
    assert_eq!(
        picked(&s, &f(Some(4), false, &[], &[], None)),
        [t("c1", "b", "rated"), t("c2", "b", "rated")]
    );
    assert_eq!(
        picked(&s, &f(None, true, &[], &[], None)),
        [t("c2", "a", "rated"), t("c3", "a", "passed")]
    );
    assert_eq!(
        picked(&s, &f(None, false, &["a"], &[], None)),
        [
            t("c1", "a", "promoted"),
            t("c2", "a", "rated"),
            t("c3", "a", "passed")
        ]
    );
    assert_eq!(
        picked(&s, &f(None, false, &[], &["m-b"], None)),
        [
            t("c1", "b", "rated"),
            t("c2", "b", "rated"),
            t("c5", "b", "rated")
        ]
    );
    // bob's ratings only, and no promotions (they record no rater).
    assert_eq!(
        picked(&s, &f(None, false, &[], &[], Some("bob"))),
        [
            t("c2", "a", "rated"),
            t("c3", "a", "passed"),
            t("c5", "b", "rated")
        ]
    );
}

#[test]
fn pairs_are_trl_conversational_and_filtered() {
    let (s, _) = session();
    let rows = pair_rows(&s, &Filter::default(), "s.toml", true);
    assert_eq!(rows.len(), 2, "only the decisive votes");
    let p = &rows[1].value;
    // b won c2 from the right.
    assert_eq!(p["metadata"]["chosen_variant"], "b");
    assert_eq!(p["prompt"][1]["content"], "Question c2?");
    assert_eq!(p["chosen"][0]["role"], "assistant");
    assert_eq!(p["chosen"][0]["content"], "b answers c2");
    assert_eq!(p["rejected"][0]["content"], "a answers c2");
    // The two variants have different system prompts.
    assert_eq!(p["metadata"]["rejected_prompt"][0]["content"], "Style a.");
    let passing = Filter {
        passing: true,
        ..Filter::default()
    };
    // c1's chosen a answer has no checks, c2's chosen b failed its check.
    assert!(pair_rows(&s, &passing, "s", true).is_empty());
    let ann = Filter {
        rater: Some("ann".into()),
        ..Filter::default()
    };
    let rows = pair_rows(&s, &ann, "s", true);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].case, "c1");
    assert!(rows[0].value["metadata"]["rejected_prompt"].is_array());
}

#[test]
fn the_split_keeps_each_case_on_one_side_and_is_stable() {
    let cases: Vec<String> = (0..60).map(|i| format!("case-{i}")).collect();
    let refs: Vec<&str> = cases.iter().map(String::as_str).collect();
    let mut s = grid(&["a", "b"], &refs);
    for n in &mut s.nodes {
        n.checks = check(true);
    }
    // Two rows per case (pairs from two votes), to check cases stay whole.
    for c in &refs {
        let (a, b) = (node_of(&s, "a", c), node_of(&s, "b", c));
        vote(&mut s, a, b, "left");
        vote(&mut s, b, a, "left");
    }
    let rows = pair_rows(&s, &Filter::default(), "s", true);
    assert_eq!(rows.len(), 120);
    let (train, valid) = split(rows.clone(), 0.8);
    let side = |rows: &[Row]| -> BTreeSet<String> { rows.iter().map(|r| r.case.clone()).collect() };
    let (tc, vc) = (side(&train), side(&valid));
    assert!(tc.is_disjoint(&vc));
    assert_eq!(tc.len() + vc.len(), 60);
    assert_eq!(train.len(), 2 * tc.len());
    // About 80% of the cases in train.
    assert!((40..=56).contains(&tc.len()), "{} train cases", tc.len());
    // Deterministic, and a case keeps its side when others are added.
    let (again, _) = split(rows[..60].to_vec(), 0.8);
    assert!(side(&again).is_subset(&tc));
    assert_eq!(
        split_paths(Path::new("/x/data.jsonl")),
        (
            PathBuf::from("/x/data.train.jsonl"),
            PathBuf::from("/x/data.validation.jsonl")
        )
    );
}
