//! The technique wiring as a state machine: keys in, effects and nodes out, stream
//! completions driving the next step.

use crate::app::model::keys::KeyCode;

use std::collections::BTreeSet;

use super::*;
use crate::app::model::queries::{pane_badge, pane_notes};
use crate::app::update::tests::{app, ev, key, started};
use crate::app::update::update;
use crate::app::Msg;

/// Both panes answered: "Paris" (plain) and "London" (teacher).
pub(crate) fn answered() -> AppState {
    let mut s = app();
    let st = started(&key(&mut s, KeyCode::Enter));
    for (pair, text) in st.iter().zip(["Paris", "The capital is London."]) {
        ev(&mut s, *pair, StreamEvent::Delta(text.into()), 10);
        ev(&mut s, *pair, StreamEvent::Finished(FinishReason::Stop), 20);
    }
    s
}

/// Stream `text` into the technique stream `(node, request)` and finish it.
fn reply(s: &mut AppState, pair: (u64, u64), text: &str) -> Vec<Effect> {
    ev(s, pair, StreamEvent::Delta(text.into()), 30);
    ev(s, pair, StreamEvent::Finished(FinishReason::Stop), 40)
}

fn node(s: &AppState, id: u64) -> &Node {
    s.session.node(id).expect("node exists")
}

fn chat_text(fx: &[Effect], i: usize) -> String {
    fx.iter()
        .filter_map(|e| match e {
            Effect::StartStream { chat, .. } => Some(
                chat.messages
                    .iter()
                    .map(|m| m.content.clone())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            _ => None,
        })
        .nth(i)
        .unwrap_or_default()
}

fn cancelled(fx: &[Effect]) -> Vec<u64> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::CancelStream { node } => Some(*node),
            _ => None,
        })
        .collect()
}

#[test]
fn c_critiques_then_rewrites_and_the_pane_shows_the_new_revision() {
    let mut s = answered();
    let fx = key(&mut s, KeyCode::Char('c'));
    let st = started(&fx);
    assert_eq!(st.len(), 1);
    let crit = node(&s, st[0].0);
    assert_eq!((crit.kind, crit.parent), (NodeKind::Critique, Some(1)));
    assert!(chat_text(&fx, 0).contains("Previous answer:\nParis"));
    // The pane's own answer is untouched while the critique streams.
    assert_eq!(s.panes[0].node, Some(1));
    assert_eq!(s.panes[0].phase, Phase::Done);
    assert!(s.any_active(), "technique streams keep the spinner ticking");
    let fx = reply(&mut s, st[0], "1. Wrong city.");
    let rw = started(&fx);
    assert_eq!(rw.len(), 1);
    assert!(chat_text(&fx, 0).contains("Critique:\n1. Wrong city."));
    assert_eq!(node(&s, rw[0].0).kind, NodeKind::Rewrite);
    assert_eq!(node(&s, rw[0].0).parent, Some(st[0].0));
    let fx = reply(&mut s, rw[0], "London");
    assert!(fx.iter().any(|e| matches!(e, Effect::SaveSession { .. })));
    assert_eq!(s.panes[0].node, Some(rw[0].0));
    assert_eq!(pane_badge(&s, 0).as_deref(), Some("rev 2/2"));
    // The rewrite passes the case's expectation: the loop says so and records it.
    let n = node(&s, rw[0].0);
    assert_eq!(n.passed(), Some(true));
    assert_eq!(
        n.meta.get("stop_reason").map(String::as_str),
        Some("the rewrite passes the expectations")
    );
    let notes = pane_notes(&s, 0);
    assert!(
        notes
            .iter()
            .any(|(t, _)| t.contains("refine stopped after 1 round(s)")),
        "{notes:?}"
    );
    assert!(!s.tech.busy());
}

#[test]
fn big_c_loops_until_the_critic_has_nothing_to_fix() {
    let mut s = answered();
    // teacher's answer, which has no expectation failure to stop on first.
    key(&mut s, KeyCode::Char('l'));
    s.prompt.cases[0].expect = Default::default();
    let st = started(&key(&mut s, KeyCode::Char('C')));
    let rw = started(&reply(&mut s, st[0], "Too short."));
    let c2 = started(&reply(&mut s, rw[0], "London is the capital of England."));
    assert_eq!(
        node(&s, c2[0].0).parent,
        Some(rw[0].0),
        "round 2 critiques the rewrite"
    );
    assert!(started(&reply(&mut s, c2[0], "NO ISSUES")).is_empty());
    assert_eq!(s.panes[1].node, Some(rw[0].0));
    let notes = pane_notes(&s, 1);
    assert!(
        notes
            .iter()
            .any(|(t, _)| t.contains("after 2 round(s): the critic found no issues")),
        "{notes:?}"
    );
}

#[test]
fn revisions_step_back_and_forth_and_survive_a_reopen() {
    let mut s = answered();
    let st = started(&key(&mut s, KeyCode::Char('c')));
    let rw = started(&reply(&mut s, st[0], "Wrong."));
    reply(&mut s, rw[0], "London");
    key(&mut s, KeyCode::Char('<'));
    assert_eq!(s.panes[0].node, Some(1), "{:?}", s.message);
    assert_eq!(pane_badge(&s, 0).as_deref(), Some("rev 1/2"));
    key(&mut s, KeyCode::Char('<'));
    assert_eq!(s.message.as_deref(), Some("already at the first revision"));
    // Reopening (show_case_results) keeps what was last shown.
    s.show_case_results();
    assert_eq!(s.panes[0].node, Some(1));
    key(&mut s, KeyCode::Char('>'));
    assert_eq!(s.panes[0].node, Some(rw[0].0));
    s.show_case_results();
    assert_eq!(s.panes[0].node, Some(rw[0].0));
}

#[test]
fn d_opens_a_word_diff_against_the_parent_revision() {
    let mut s = answered();
    key(&mut s, KeyCode::Char('d'));
    assert!(s.layers.is_empty());
    assert!(s
        .message
        .as_deref()
        .unwrap_or("")
        .contains("no earlier revision"));
    let st = started(&key(&mut s, KeyCode::Char('c')));
    let rw = started(&reply(&mut s, st[0], "Wrong."));
    reply(&mut s, rw[0], "London, not Paris");
    key(&mut s, KeyCode::Char('d'));
    match s.layers.last() {
        Some(Layer::Diff(d)) => {
            assert_eq!((d.old, d.new), (1, rw[0].0));
            assert_eq!((d.added, d.removed), (2, 0));
        }
        other => panic!("{other:?}"),
    }
    key(&mut s, KeyCode::Esc);
    assert!(s.layers.is_empty());
}

#[test]
fn b_samples_k_alternatives_concurrently_at_a_raised_temperature() {
    let mut s = answered();
    let fx = key(&mut s, KeyCode::Char('b'));
    let st = started(&fx);
    assert_eq!(st.len(), 3, "branch_k defaults to 3");
    for e in &fx {
        if let Effect::StartStream { chat, .. } = e {
            assert_eq!(chat.sampling.temperature, Some(0.9));
            assert!(chat.sampling.seed.is_some());
        }
    }
    for (i, p) in st.iter().enumerate() {
        let n = node(&s, p.0);
        assert_eq!((n.kind, n.parent), (NodeKind::Answer, Some(1)));
        reply(&mut s, *p, &format!("alt {i}"));
    }
    assert!(!s.tech.busy());
    assert!(s
        .message
        .as_deref()
        .unwrap_or("")
        .contains("branched #1: 3 children"));
    // The pane still shows the original answer.
    assert_eq!(s.panes[0].node, Some(1));
    // B continues from the answer's text with step prompts.
    let fx = key(&mut s, KeyCode::Char('B'));
    assert_eq!(started(&fx).len(), 3);
    assert!(chat_text(&fx, 0).contains("Steps so far:\nStep 1: Paris"));
    assert_eq!(node(&s, started(&fx)[0].0).kind, NodeKind::Thought);
}

/// Open the search form from the focused pane, set k, b, d, samples, start.
fn search(s: &mut AppState, k: usize, b: usize, d: usize, samples: usize) -> Vec<Effect> {
    key(s, KeyCode::Char('s'));
    assert!(matches!(s.layers.last(), Some(Layer::SearchParams(_))));
    for v in [k, b, d, samples] {
        key(s, KeyCode::Char(char::from_digit(v as u32, 10).unwrap()));
        key(s, KeyCode::Char('j'));
    }
    key(s, KeyCode::Enter)
}

#[test]
fn s_runs_a_breadth_first_search_keeping_the_best_beam() {
    let mut s = answered();
    let fx = search(&mut s, 2, 1, 2, 1);
    assert!(
        matches!(s.layers.last(), Some(Layer::Tree(_))),
        "the tree opens to watch it"
    );
    let root = s
        .session
        .nodes
        .iter()
        .find(|n| n.meta.contains_key("search_root"))
        .unwrap()
        .id;
    assert_eq!(node(&s, root).parent, Some(1));
    let l1 = started(&fx);
    assert_eq!(l1.len(), 2);
    // Each thought is valued; the second one is the promising one.
    let v1 = started(&reply(&mut s, l1[0], "Step: 4 + 4 = 8"));
    assert_eq!(v1.len(), 1);
    assert_eq!(node(&s, v1[0].0).kind, NodeKind::Value);
    let v2 = started(&reply(&mut s, l1[1], "Step: 6 * 4 = 24"));
    reply(&mut s, v1[0], "impossible");
    let fx = reply(&mut s, v2[0], "Looks right.\nsure");
    assert_eq!(node(&s, l1[1].0).score, Some(1.0));
    assert_eq!(node(&s, l1[0].0).score, Some(0.0));
    assert_eq!(
        node(&s, l1[1].0).meta.get("beam_level").map(String::as_str),
        Some("1")
    );
    let l2 = started(&fx);
    assert_eq!(l2.len(), 2, "level 2 expands the one kept node k times");
    assert!(l2.iter().all(|p| node(&s, p.0).parent == Some(l1[1].0)));
    assert!(chat_text(&fx, 0).contains("Step 1: Step: 6 * 4 = 24"));
    assert!(
        !chat_text(&fx, 0).contains("Step 1: Paris"),
        "the answer is not a step"
    );
    for p in &l2 {
        let v = started(&reply(&mut s, *p, "Step: done = 24"));
        reply(&mut s, v[0], "garbled");
    }
    assert!(!s.tech.busy());
    // Unreadable values are recorded as such, never as a score.
    assert_eq!(node(&s, l2[0].0).score, None);
    assert_eq!(
        node(&s, l2[0].0).meta.get("value").map(String::as_str),
        Some("unparseable")
    );
    let msg = s.message.clone().unwrap_or_default();
    assert!(msg.starts_with("search depth reached: best #"), "{msg}");
}

#[test]
fn cancelling_mid_search_cancels_every_stream_and_late_events_are_ignored() {
    let mut s = answered();
    let l1 = started(&search(&mut s, 3, 2, 3, 2));
    let v = started(&reply(&mut s, l1[0], "Step one"));
    assert_eq!(v.len(), 2);
    let in_flight: BTreeSet<u64> = s.tech.streams.keys().copied().collect();
    assert_eq!(in_flight.len(), 4, "two thoughts and two value samples");
    // X in the tree view stops the search.
    let fx = key(&mut s, KeyCode::Char('X'));
    assert_eq!(
        cancelled(&fx).into_iter().collect::<BTreeSet<_>>(),
        in_flight
    );
    assert!(!s.tech.busy());
    for id in &in_flight {
        assert_eq!(node(&s, *id).status, NodeStatus::Cancelled);
    }
    assert!(s.tech.jobs.iter().all(|j| !j.running));
    // A late token for a cancelled node changes nothing.
    let late = ev(&mut s, l1[1], StreamEvent::Delta("late".into()), 99);
    assert!(late.is_empty());
    assert_eq!(node(&s, l1[1].0).text, "");
    // The tree is still open, showing what was made.
    assert!(matches!(s.layers.last(), Some(Layer::Tree(_))));
}

#[test]
fn pruning_in_the_tree_cancels_that_branch_and_promote_moves_the_pane() {
    let mut s = answered();
    let l1 = started(&search(&mut s, 2, 2, 2, 1));
    let va = started(&reply(&mut s, l1[0], "Step A"));
    let vb = started(&reply(&mut s, l1[1], "Step B"));
    reply(&mut s, va[0], "sure");
    let l2 = started(&reply(&mut s, vb[0], "likely"));
    assert_eq!(l2.len(), 4);
    let under_b: Vec<u64> = l2
        .iter()
        .filter(|p| node(&s, p.0).parent == Some(l1[1].0))
        .map(|p| p.0)
        .collect();
    // Select thought B in the tree and prune it.
    let Some(Layer::Tree(t)) = s.layers.last_mut() else {
        panic!()
    };
    assert!(t.select(l1[1].0));
    let fx = key(&mut s, KeyCode::Char('x'));
    assert_eq!(cancelled(&fx), under_b);
    assert_eq!(
        node(&s, l1[1].0).meta.get("pruned").map(String::as_str),
        Some("true")
    );
    // Promote thought A: the pane shows it, and says what it is.
    let Some(Layer::Tree(t)) = s.layers.last_mut() else {
        panic!()
    };
    assert!(t.select(l1[0].0));
    key(&mut s, KeyCode::Char('p'));
    assert_eq!(s.panes[0].node, Some(l1[0].0));
    assert_eq!(
        node(&s, 1).meta.get("promoted").map(String::as_str),
        Some(l1[0].0.to_string().as_str())
    );
    assert_eq!(
        pane_badge(&s, 0).as_deref(),
        Some(format!("thought #{}", l1[0].0).as_str())
    );
    s.show_case_results();
    assert_eq!(
        s.panes[0].node,
        Some(l1[0].0),
        "promotion survives a reopen"
    );
}

#[test]
fn tree_view_navigation_collapse_and_bookmark() {
    let mut s = answered();
    let st = started(&key(&mut s, KeyCode::Char('b')));
    for p in &st {
        reply(&mut s, *p, "alt");
    }
    key(&mut s, KeyCode::Char('t'));
    let rows = |s: &AppState| match s.layers.last() {
        Some(Layer::Tree(t)) => (
            t.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            t.selected(),
        ),
        other => panic!("{other:?}"),
    };
    // Both answers of the case; plain's with its three branches. Cursor on the pane's node.
    let (ids, sel) = rows(&s);
    assert_eq!(ids, vec![1, st[0].0, st[1].0, st[2].0, 2]);
    assert_eq!(sel, Some(1));
    key(&mut s, KeyCode::Char('l'));
    assert_eq!(rows(&s).1, Some(st[0].0));
    key(&mut s, KeyCode::Char(']'));
    assert_eq!(rows(&s).1, Some(st[1].0));
    key(&mut s, KeyCode::Char('['));
    assert_eq!(rows(&s).1, Some(st[0].0));
    key(&mut s, KeyCode::Char('m'));
    assert!(node(&s, st[0].0).meta.contains_key("bookmark"));
    key(&mut s, KeyCode::Char('h'));
    assert_eq!(rows(&s).1, Some(1));
    key(&mut s, KeyCode::Char(' '));
    assert_eq!(rows(&s).0, vec![1, 2], "collapsed");
    // The fold is kept in the session: a tree opened again starts folded.
    assert_eq!(
        node(&s, 1).meta.get("collapsed").map(String::as_str),
        Some("true")
    );
    let again = TreeView::new(&s.session, &node(&s, 1).case, None);
    assert_eq!(
        again.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    key(&mut s, KeyCode::Char('j'));
    assert_eq!(rows(&s).1, Some(2));
    key(&mut s, KeyCode::Char('k'));
    key(&mut s, KeyCode::Char('l'));
    assert_eq!(rows(&s).0.len(), 5, "l expands");
    assert!(!node(&s, 1).meta.contains_key("collapsed"));
    key(&mut s, KeyCode::Enter);
    assert!(matches!(s.layers.last(), Some(Layer::Tree(t)) if t.open));
    key(&mut s, KeyCode::Esc);
    assert!(s.layers.is_empty());
}

#[test]
fn judge_scores_with_a_reason_and_unparseable_verdicts_never_count() {
    let mut s = answered();
    let fx = key(&mut s, KeyCode::Char('J'));
    let st = started(&fx);
    assert_eq!(st.len(), 1);
    assert!(chat_text(&fx, 0).contains("SCORE: <a whole number"));
    reply(&mut s, st[0], "SCORE: 3\nREASON: Paris is not in England.");
    let j = node(&s, st[0].0);
    assert_eq!(
        (j.kind, j.parent, j.score),
        (NodeKind::Judge, Some(1), Some(3.0))
    );
    let notes = pane_notes(&s, 0);
    assert!(
        notes
            .iter()
            .any(|(t, _)| t == "judge 3/10: Paris is not in England."),
        "{notes:?}"
    );
    // K judges every answer of the case; an unreadable verdict is recorded, not scored.
    let st = started(&key(&mut s, KeyCode::Char('K')));
    assert_eq!(st.len(), 2);
    reply(&mut s, st[0], "SCORE: 4\nREASON: wrong.");
    reply(&mut s, st[1], "What a lovely question!");
    let bad = node(&s, st[1].0);
    assert_eq!(bad.score, None);
    assert_eq!(
        bad.meta.get("verdict").map(String::as_str),
        Some("unparseable")
    );
    assert_eq!(
        s.message.as_deref(),
        Some("judged 2 answers: mean 4.0/10 over 1 readable")
    );
    assert!(pane_notes(&s, 1)
        .iter()
        .any(|(t, _)| t.starts_with("judge: unparseable answer")));
}

#[test]
fn pairwise_judging_runs_both_orders_and_reports_position_bias() {
    let mut s = answered();
    let fx = key(&mut s, KeyCode::Char('P'));
    let st = started(&fx);
    assert_eq!(st.len(), 2);
    assert!(chat_text(&fx, 0).contains("Answer A:\nParis"));
    assert!(chat_text(&fx, 1).contains("Answer A:\nThe capital is London."));
    // The judge always picks whatever came first.
    reply(&mut s, st[0], "WINNER: A\nREASON: first.");
    reply(&mut s, st[1], "WINNER: A\nREASON: first.");
    assert_eq!(
        s.message.as_deref(),
        Some("pairwise #1 vs #2: position bias: the preference flipped with the order")
    );
    assert_eq!(
        node(&s, st[0].0)
            .meta
            .get("pair_outcome")
            .map(String::as_str),
        Some("inconsistent (position bias)")
    );
}

#[test]
fn g_adds_proposed_variants_marked_generated() {
    let mut s = answered();
    let fx = key(&mut s, KeyCode::Char('g'));
    let st = started(&fx);
    assert!(chat_text(&fx, 0).contains("improved versions"));
    assert_eq!(node(&s, st[0].0).kind, NodeKind::VariantProposal);
    reply(
        &mut s,
        st[0],
        "VARIANT 1\nINTENT: clearer task\nSYSTEM: (none)\nTEMPLATE:\nName the capital of {{country}}.\n\nVARIANT 2\nINTENT: added role\nSYSTEM: You are a teacher.\nTEMPLATE: What is the capital?\n",
    );
    let names: Vec<&str> = s.prompt.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["plain", "plain / clearer task", "teacher"]);
    assert_eq!(s.panes.len(), 3);
    assert_eq!(s.focus, 1);
    assert_eq!(
        s.prompt.variants[1].generated.as_deref(),
        Some("clearer task")
    );
    assert_eq!(pane_badge(&s, 1).as_deref(), Some("generated"));
    let msg = s.message.clone().unwrap_or_default();
    assert!(msg.contains("added 1 generated variant(s)"), "{msg}");
    assert!(msg.contains("1 rejected"), "{msg}");
    // Run them all at once against the original.
    assert_eq!(started(&key(&mut s, KeyCode::Enter)).len(), 3);
}

/// `proposals` in `[techniques]` sets how many rewrites `g` asks for.
#[test]
fn g_asks_for_as_many_rewrites_as_the_file_says() {
    let mut s = answered();
    assert!(chat_text(&key(&mut s, KeyCode::Char('g')), 0).contains("Write 3 improved versions"));
    let mut s = answered();
    s.prompt.techniques.proposals = 2;
    let fx = key(&mut s, KeyCode::Char('g'));
    assert!(chat_text(&fx, 0).contains("Write 2 improved versions"));
    let st = started(&fx);
    assert_eq!(
        node(&s, st[0].0).meta.get("n").map(String::as_str),
        Some("2")
    );
    assert!(s
        .message
        .clone()
        .unwrap_or_default()
        .contains("for 2 rewrites"));
}

#[test]
fn a_rerun_during_a_critique_keeps_both_streams_apart() {
    let mut s = answered();
    let crit = started(&key(&mut s, KeyCode::Char('c')))[0];
    let run = started(&key(&mut s, KeyCode::Char('R')))[0];
    assert_eq!(s.panes[0].phase, Phase::Queued);
    ev(&mut s, run, StreamEvent::Delta("Lon".into()), 50);
    reply(&mut s, crit, "Wrong.");
    assert_eq!(s.panes[0].phase, Phase::Streaming);
    assert_eq!(node(&s, run.0).text, "Lon");
    // Esc cancels the pane's stream and the technique on its variant.
    let fx = key(&mut s, KeyCode::Esc);
    assert_eq!(cancelled(&fx).len(), 2);
    assert!(!s.any_active());
    // Quitting with a technique running cancels it and saves.
    key(&mut s, KeyCode::Char('l'));
    assert_eq!(started(&key(&mut s, KeyCode::Char('J'))).len(), 1);
    let at = s.now;
    let fx = update(
        &mut s,
        Msg::Key {
            key: crate::app::model::keys::Key::new(
                KeyCode::Char('q'),
                crate::app::model::keys::Mods::NONE,
            ),
            at,
        },
    );
    assert_eq!(cancelled(&fx).len(), 1);
    assert!(fx.iter().any(|e| matches!(e, Effect::SaveSession { .. })));
}

#[test]
fn technique_keys_on_nothing_say_why() {
    let mut s = app();
    for k in ['c', 'b', 's', 'J', 'd'] {
        assert!(key(&mut s, KeyCode::Char(k)).is_empty());
        assert!(s.message.is_some(), "{k}");
        assert!(s.layers.is_empty(), "{k}");
    }
    key(&mut s, KeyCode::Char('t'));
    assert!(s.layers.is_empty());
}

#[test]
fn a_failed_critique_stops_the_loop_with_the_error() {
    let mut s = answered();
    let st = started(&key(&mut s, KeyCode::Char('C')));
    ev(
        &mut s,
        st[0],
        StreamEvent::Failed("connection refused".into()),
        10,
    );
    assert!(!s.tech.busy());
    let notes = pane_notes(&s, 0);
    assert!(
        notes
            .iter()
            .any(|(t, _)| t.contains("a request failed: connection refused")),
        "{notes:?}"
    );
    assert_eq!(node(&s, st[0].0).status, NodeStatus::Error);
}

/// `#` on an answer streams 5 seeded samples of its request at once (children of the answer,
/// one sample group, seeds base…base+4, at the branching temperature since the variant's is
/// greedy); each is checked against the case; when they end the job says how they cluster
/// and the pane lists the clusters with their nodes.
#[test]
fn hash_samples_the_answer_and_the_pane_shows_its_clusters() {
    use crate::eval::consistency::{GROUP_KEY, INDEX_KEY};
    let mut s = answered();
    let fx = key(&mut s, KeyCode::Char('#'));
    let st = started(&fx);
    assert_eq!(st.len(), 5, "{fx:?}");
    let seeds: Vec<Option<u64>> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::StartStream { chat, .. } => Some(chat.sampling.seed),
            _ => None,
        })
        .collect();
    let base = seeds[0].expect("seeded");
    assert_eq!(
        seeds,
        (0..5).map(|k| Some(base + k)).collect::<Vec<_>>(),
        "consecutive seeds"
    );
    for (k, (id, _)) in st.iter().enumerate() {
        let n = node(&s, *id);
        assert_eq!((n.kind, n.parent), (NodeKind::Answer, Some(1)));
        assert_eq!(
            n.meta.get(GROUP_KEY).map(String::as_str),
            Some("plain/England/#1")
        );
        assert_eq!(n.meta.get(INDEX_KEY), Some(&k.to_string()));
        assert_eq!(
            n.request.sampling.temperature,
            Some(s.prompt.techniques.branch_temperature)
        );
    }
    // The pane's answer stays; the samples stream beside it.
    assert_eq!(s.panes[0].node, Some(1));
    for (pair, text) in st
        .iter()
        .zip(["London.", "Paris", "london", "London.", "Paris"])
    {
        reply(&mut s, *pair, text);
    }
    assert!(!s.tech.busy());
    let msg = s.message.clone().unwrap_or_default();
    assert!(
        msg.contains("samples of #1 (5 asked): 5 samples, 60% agree; passed 3/5"),
        "{msg}"
    );
    // Each sample was checked against the case's expectation (London).
    let passed: Vec<Option<bool>> = st.iter().map(|(id, _)| node(&s, *id).passed()).collect();
    assert_eq!(
        passed,
        vec![Some(true), Some(false), Some(true), Some(true), Some(false)]
    );
    let text = crate::ui::tests::screen(&mut s, 160, 48);
    assert!(text.contains("samples 5/5 ended"), "{text}");
    let ids: Vec<String> = st.iter().map(|(id, _)| format!("#{id}")).collect();
    assert!(
        text.contains(&format!("3× london · {} {} {}", ids[0], ids[2], ids[3])),
        "{text}"
    );
    assert!(
        text.contains(&format!("2× paris · {} {}", ids[1], ids[4])),
        "{text}"
    );
    // The leaderboard's stability column counts the cell.
    let board =
        crate::eval::leaderboard::build(&s.session, crate::eval::leaderboard::GroupBy::Variant);
    let plain = &board.entries[board.index_of("plain").unwrap()];
    assert_eq!(plain.stability_cells, 1);
    assert!((plain.stability.unwrap() - 0.6).abs() < 1e-9);
}
