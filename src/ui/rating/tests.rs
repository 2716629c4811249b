//! Snapshots of the rating surfaces at 80×24 and 160×48.

use std::path::PathBuf;

use crate::app::model::keys::KeyCode;

use crate::app::model::rating::{RatingIo, SessionSummary};
use crate::app::model::state::AppState;
use crate::app::update::rating::tests::{answered, journal};
use crate::app::update::tests::key;
use crate::app::update::update;
use crate::app::Msg;
use crate::chat::{ChatRequest, Sampling};
use crate::state::session::{Node, NodeKind, NodeStatus, Rating};
use crate::ui::tests::screen;

fn both(name: &str, s: &mut AppState) {
    insta::assert_snapshot!(format!("{name}_80x24"), screen(s, 80, 24));
    insta::assert_snapshot!(format!("{name}_160x48"), screen(s, 160, 48));
}

/// Both answers rated by "me" (stars, thumb, a two-line note) and one by another rater.
fn rated() -> AppState {
    let mut s = answered();
    for c in ['4', '+'] {
        let fx = key(&mut s, KeyCode::Char(c));
        journal(&mut s, &fx);
    }
    key(&mut s, KeyCode::Char('n'));
    for c in "Right, but wordy.".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    key(&mut s, KeyCode::Enter);
    for c in "Drop the preamble.".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    let at = s.now;
    let fx = update(
        &mut s,
        Msg::Key {
            key: crate::app::model::keys::Key::new(
                KeyCode::Char('s'),
                crate::app::model::keys::Mods::CTRL,
            ),
            at,
        },
    );
    journal(&mut s, &fx);
    key(&mut s, KeyCode::Char('l'));
    let fx = key(&mut s, KeyCode::Char('2'));
    journal(&mut s, &fx);
    let other = s.panes[1].node.unwrap();
    s.session.ratings.push(Rating {
        node: other,
        stars: Some(5),
        thumb: None,
        note: None,
        rater: "bob".into(),
        at: "t".into(),
        seq: Some(99),
    });
    s
}

#[test]
fn snapshot_pane_headers_with_ratings() {
    let mut s = rated();
    both("rated", &mut s);
}

#[test]
fn snapshot_note_editor() {
    let mut s = rated();
    key(&mut s, KeyCode::Char('h'));
    key(&mut s, KeyCode::Char('n'));
    both("note", &mut s);
}

#[test]
fn snapshot_compare_before_and_after_the_vote() {
    let mut s = answered();
    key(&mut s, KeyCode::Char('v'));
    both("compare_blind", &mut s);
    let fx = key(&mut s, KeyCode::Char('h'));
    journal(&mut s, &fx);
    both("compare_revealed", &mut s);
}

fn judge(s: &mut AppState, parent: u64, score: Option<f64>) {
    let id = s.session.next_node_id();
    let mut n = Node::start(
        id,
        Some(parent),
        NodeKind::Judge,
        "judge",
        "England",
        "fake",
        ChatRequest {
            messages: vec![],
            sampling: Sampling::default(),
        },
        "t".into(),
    );
    n.status = NodeStatus::Done;
    n.score = score;
    s.session.nodes.push(n);
}

#[test]
fn snapshot_leaderboard() {
    let mut s = rated();
    let (a, b) = (s.panes[0].node.unwrap(), s.panes[1].node.unwrap());
    judge(&mut s, a, Some(8.0));
    judge(&mut s, b, Some(6.0));
    judge(&mut s, b, None);
    key(&mut s, KeyCode::Char('v'));
    for k in 0..6 {
        let c = ['h', 'l', 'h', 't', 'x', 'h'][k];
        let fx = key(&mut s, KeyCode::Char(c));
        journal(&mut s, &fx);
        key(&mut s, KeyCode::Char('n'));
    }
    key(&mut s, KeyCode::Esc);
    key(&mut s, KeyCode::Char('L'));
    both("leaderboard", &mut s);
    key(&mut s, KeyCode::Tab);
    insta::assert_snapshot!("leaderboard_models_80x24", screen(&mut s, 80, 24));
}

#[test]
fn snapshot_session_browser() {
    let mut s = answered();
    key(&mut s, KeyCode::Char('S'));
    insta::assert_snapshot!("browser_loading_80x24", screen(&mut s, 80, 24));
    let item = |p: &str, m: &str, n: usize, current: bool, error: Option<&str>| SessionSummary {
        path: PathBuf::from(p),
        modified: m.into(),
        modified_secs: 0,
        title: "Capitals".into(),
        prompt_file: Some("prompts/capitals.toml".into()),
        answers: n,
        ratings: n / 2,
        votes: n / 3,
        error: error.map(str::to_string),
        current,
    };
    update(
        &mut s,
        Msg::Rating(RatingIo::Sessions(vec![
            item("sessions/s.toml", "2026-11-27 08:10", 2, true, None),
            item(
                "sessions/capitals-20261126-101500.toml",
                "2026-11-26 10:31",
                36,
                false,
                None,
            ),
            item(
                "sessions/broken.toml",
                "2026-11-20 09:00",
                0,
                false,
                Some("sessions/broken.toml:3:1: expected `=`"),
            ),
        ])),
    );
    key(&mut s, KeyCode::Char('j'));
    both("browser", &mut s);
}

#[test]
fn rating_layers_draw_at_every_size_without_panicking() {
    let mut s = rated();
    for open in ['v', 'L', 'S', 'n'] {
        key(&mut s, KeyCode::Char(open));
        for w in [1u16, 2, 5, 20, 33, 80] {
            for h in [1u16, 2, 3, 6, 24] {
                let out = screen(&mut s, w, h);
                assert_eq!(out.lines().count(), usize::from(h));
            }
        }
        key(&mut s, KeyCode::Esc);
    }
}

#[test]
fn wrapping_never_loops_on_narrow_rows_or_wide_characters() {
    assert_eq!(super::wrap("日本 ab", 1), ["日", "本", "a", "b"]);
    assert_eq!(super::wrap("one two three", 7), ["one two", "three"]);
    assert_eq!(super::wrap("", 5), [""]);
}
