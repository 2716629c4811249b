//! The charts layer through `TestBackend` at 80×24 and 160×48.

use crate::app::model::state::{AppState, Layer};
use crate::app::update::tests::app;
use crate::chat::ChatRequest;
use crate::eval::leaderboard::{build, GroupBy};
use crate::state::session::{Node, NodeKind, NodeStatus, Rating, Vote};
use crate::ui::tests::screen;

fn answer(s: &mut AppState, variant: &str, model: &str, ttft: u64, rate: f64) -> u64 {
    let id = s.session.next_node_id();
    let mut n = Node::start(
        id,
        None,
        NodeKind::Answer,
        variant,
        "England",
        model,
        ChatRequest {
            messages: vec![],
            sampling: Default::default(),
        },
        "2026-01-01T00:00:00Z".into(),
    );
    n.status = NodeStatus::Done;
    n.ttft_ms = Some(ttft);
    n.tok_per_s = Some(rate);
    n.tokens_out = 20;
    s.session.nodes.push(n);
    id
}

fn rate(s: &mut AppState, node: u64, stars: u8, rater: &str) {
    s.session.ratings.push(Rating {
        node,
        stars: Some(stars),
        thumb: None,
        note: None,
        rater: rater.into(),
        at: "2026-01-01T00:00:00Z".into(),
        seq: None,
    });
}

fn vote(s: &mut AppState, left: u64, right: u64, outcome: &str) {
    s.session.votes.push(Vote {
        left,
        right,
        outcome: outcome.into(),
        rater: "r".into(),
        at: "2026-01-01T00:00:00Z".into(),
        seq: None,
    });
}

/// Five unanimous votes "plain beats teacher": the two are drawn with overlapping
/// intervals and marked `~` (tied), as the binomial test says they should be.
fn charted(votes: usize) -> AppState {
    let mut s = app();
    let mut plain = Vec::new();
    let mut teacher = Vec::new();
    for k in 0..6u64 {
        plain.push(answer(
            &mut s,
            "plain",
            "fake",
            120 + 10 * k,
            30.0 + k as f64,
        ));
        teacher.push(answer(&mut s, "teacher", "other", 400 + 20 * k, 12.0));
    }
    for (k, (&p, &t)) in plain.iter().zip(&teacher).enumerate() {
        rate(&mut s, p, [5, 4, 4, 5, 3, 4][k], "ann");
        rate(&mut s, t, [2, 3, 1, 3, 2, 4][k], "ann");
    }
    for k in 0..votes {
        vote(&mut s, plain[k % 6], teacher[(k + 1) % 6], "left");
    }
    let board = build(&s.session, GroupBy::Variant);
    let c = crate::app::model::charts::open(&s.session, &board);
    s.layers.push(Layer::Charts(Box::new(c)));
    s
}

#[test]
fn charts_snapshots() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut s = charted(5);
        let text = screen(&mut s, w, h);
        assert!(
            text.contains("Strength (Bradley–Terry, 95% interval)"),
            "{text}"
        );
        assert!(text.contains("Stars per variant"), "{text}");
        assert!(text.contains("time to first token (ms)"), "{text}");
        // Five unanimous votes: both tied.
        assert_eq!(
            text.matches("~+").count() + text.matches("~-").count(),
            2,
            "{text}"
        );
        insta::assert_snapshot!(format!("charts_{w}x{h}"), text);
    }
}

#[test]
fn many_clear_votes_separate_and_lose_the_tie_mark() {
    let mut s = charted(200);
    let text = screen(&mut s, 160, 48);
    assert_eq!(
        text.matches("~+").count() + text.matches("~-").count(),
        0,
        "{text}"
    );
}

/// With `samples = 3` cells (plain: 2 of 3 agree; teacher: all 3) and a price on `fake`
/// only, the stability bars show each entry's agreement and the cost bars plain's cost per
/// passing answer; teacher's model is unpriced, so its cost is unknown ("—").
#[test]
fn stability_and_cost_are_charted() {
    use crate::eval::consistency::GROUP_KEY;
    use crate::eval::expect::CheckResult;
    let mut s = charted(0);
    s.layers.clear();
    s.session.prices.insert(
        "fake".into(),
        crate::price::Price {
            input: 1.0,
            output: 2.0,
        },
    );
    let texts = [
        ("plain", ["Paris", "Paris", "Lyon"]),
        ("teacher", ["Rome"; 3]),
    ];
    for (variant, answers) in texts {
        let model = if variant == "plain" { "fake" } else { "other" };
        for (k, text) in answers.iter().enumerate() {
            let id = answer(&mut s, variant, model, 100, 20.0);
            let n = s.session.nodes.iter_mut().find(|n| n.id == id).unwrap();
            n.text = (*text).into();
            n.prompt_tokens = Some(1000);
            n.meta.insert(GROUP_KEY.into(), format!("{variant}-cell"));
            n.checks.push(CheckResult {
                kind: "any".into(),
                pass: k == 0,
                detail: String::new(),
            });
        }
    }
    let board = build(&s.session, GroupBy::Variant);
    let c = crate::app::model::charts::open(&s.session, &board);
    s.layers.push(Layer::Charts(Box::new(c)));
    let text = screen(&mut s, 160, 48);
    assert!(text.contains("Stability and cost by variant"), "{text}");
    assert!(text.contains("67% · 1 cells"), "{text}");
    assert!(text.contains("100% · 1 cells"), "{text}");
    // plain on $1/$2 per million: six earlier answers of 20 tokens out (no usage in), three
    // sampled ones of 1000 in + 20 out; one of them passed.
    let per = (6.0 * 40.0 + 3.0 * 1040.0) / 1e6;
    let plain = &board.entries[board.index_of("plain").unwrap()];
    assert!((plain.cost_per_pass().unwrap() - per).abs() < 1e-12);
    assert!(
        text.contains(&crate::price::format_usd(per)),
        "{} in {text}",
        crate::price::format_usd(per)
    );
    insta::assert_snapshot!("charts_stability_cost_160x48", text);

    // Without samples or prices the section says what would fill it.
    let mut s = charted(5);
    let text = screen(&mut s, 160, 48);
    assert!(text.contains("no sampled cells yet"), "{text}");
    assert!(text.contains("no prices set"), "{text}");
}
