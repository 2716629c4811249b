//! Rating, comparing, the leaderboard and the browser as pure state updates.

use std::path::PathBuf;

use crate::app::model::keys::{Key, KeyCode, Mods};

use super::*;
use crate::app::driver::journal::prompt_for_session;
use crate::app::model::queries::other_raters;
use crate::app::model::rating::SessionSummary;
use crate::app::update::tests::{app, ev, key, started};
use crate::app::update::update;
use crate::app::Msg;
use crate::chat::{FinishReason, StreamEvent};
use crate::state::session::Rating;
use crate::store::journal::RatingEdit;

/// Both variants answered the first case.
pub(crate) fn answered() -> AppState {
    let mut s = app();
    let st = started(&key(&mut s, KeyCode::Enter));
    ev(&mut s, st[0], StreamEvent::Delta("London.".into()), 10);
    ev(&mut s, st[0], StreamEvent::Finished(FinishReason::Stop), 20);
    ev(
        &mut s,
        st[1],
        StreamEvent::Delta("It is London, of course.".into()),
        15,
    );
    ev(&mut s, st[1], StreamEvent::Finished(FinishReason::Stop), 30);
    s
}

fn ctrl(s: &mut AppState, c: char) -> Vec<Effect> {
    update(
        s,
        Msg::Key {
            key: Key::new(KeyCode::Char(c), Mods::CTRL),
            at: s.now,
        },
    )
}

fn rating_effects(fx: &[Effect]) -> Vec<RatingEffect> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Rating(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// What the driver does after a successful append: apply it, report it.
pub(crate) fn journal(s: &mut AppState, fx: &[Effect]) {
    let mut seq = s.rating.last_saved.unwrap_or(0);
    for r in rating_effects(fx) {
        seq += 1;
        match r {
            RatingEffect::AppendRating {
                edit,
                rater,
                at,
                what,
            } => {
                let idx = match s
                    .session
                    .ratings
                    .iter()
                    .position(|x| x.node == edit.node && x.rater == rater)
                {
                    Some(i) => i,
                    None => {
                        s.session.ratings.push(Rating {
                            node: edit.node,
                            stars: None,
                            thumb: None,
                            note: None,
                            rater: rater.clone(),
                            at: at.clone(),
                            seq: None,
                        });
                        s.session.ratings.len() - 1
                    }
                };
                let r = &mut s.session.ratings[idx];
                if let Some(n) = edit.stars {
                    r.stars = (n != 0).then_some(n);
                }
                if let Some(t) = edit.thumb {
                    r.thumb = (t != 0).then_some(t);
                }
                if let Some(n) = edit.note {
                    r.note = (!n.trim().is_empty()).then_some(n);
                }
                r.seq = Some(seq);
                update(
                    s,
                    Msg::Rating(RatingIo::Journaled {
                        what,
                        result: Ok(seq),
                    }),
                );
            }
            RatingEffect::AppendVote {
                left,
                right,
                outcome,
                rater,
                at,
                what,
            } => {
                s.session.votes.push(crate::state::session::Vote {
                    left,
                    right,
                    outcome,
                    rater,
                    at,
                    seq: Some(seq),
                });
                update(
                    s,
                    Msg::Rating(RatingIo::Journaled {
                        what,
                        result: Ok(seq),
                    }),
                );
            }
            _ => {}
        }
    }
}

#[test]
fn star_keys_rate_the_focused_answer_at_once_as_this_rater() {
    let mut s = answered();
    s.rating.rater = "ann".into();
    let node = s.panes[1].node.unwrap();
    key(&mut s, KeyCode::Char('l'));
    let fx = key(&mut s, KeyCode::Char('4'));
    assert_eq!(
        rating_effects(&fx),
        vec![RatingEffect::AppendRating {
            edit: RatingEdit {
                node,
                stars: Some(4),
                ..Default::default()
            },
            rater: "ann".into(),
            at: s.stamp(),
            what: format!("#{node} ★★★★☆"),
        }]
    );
    journal(&mut s, &fx);
    assert_eq!(my_rating(&s, node).unwrap().stars, Some(4));
    assert_eq!(s.message.as_deref(), Some(&*format!("saved #{node} ★★★★☆")));
    // 0 clears; 0 again has nothing to clear and asks for nothing.
    let fx = key(&mut s, KeyCode::Char('0'));
    assert!(matches!(
        &rating_effects(&fx)[..],
        [RatingEffect::AppendRating { edit, .. }] if edit.stars == Some(0)
    ));
    journal(&mut s, &fx);
    assert!(key(&mut s, KeyCode::Char('0')).is_empty());
}

#[test]
fn nothing_is_rated_on_an_empty_pane_or_before_the_first_token() {
    let mut s = app();
    for c in ['3', '+', '-', 'n'] {
        assert!(key(&mut s, KeyCode::Char(c)).is_empty());
        assert!(s.message.as_deref().unwrap_or("").contains("no answer"));
    }
    assert!(s.layers.is_empty());
    let st = started(&key(&mut s, KeyCode::Enter));
    assert!(key(&mut s, KeyCode::Char('3')).is_empty());
    // Once text streams in it can be rated (and voted on) before it finishes.
    ev(&mut s, st[0], StreamEvent::Delta("Lon".into()), 10);
    assert_eq!(rating_effects(&key(&mut s, KeyCode::Char('3'))).len(), 1);
}

#[test]
fn the_same_thumb_twice_clears_it_and_the_other_replaces_it() {
    let mut s = answered();
    let node = s.panes[0].node.unwrap();
    let thumb = |fx: &[Effect]| match &rating_effects(fx)[..] {
        [RatingEffect::AppendRating { edit, .. }] => edit.thumb,
        other => panic!("{other:?}"),
    };
    let fx = key(&mut s, KeyCode::Char('+'));
    assert_eq!(thumb(&fx), Some(1));
    journal(&mut s, &fx);
    let fx = key(&mut s, KeyCode::Char('+'));
    assert_eq!(thumb(&fx), Some(0));
    journal(&mut s, &fx);
    assert_eq!(my_rating(&s, node).unwrap().thumb, None);
    let fx = key(&mut s, KeyCode::Char('-'));
    assert_eq!(thumb(&fx), Some(-1));
    journal(&mut s, &fx);
    let fx = key(&mut s, KeyCode::Char('+'));
    assert_eq!(thumb(&fx), Some(1));
}

#[test]
fn another_raters_rating_is_shown_apart_and_never_edited() {
    let mut s = answered();
    let node = s.panes[0].node.unwrap();
    s.session.ratings.push(Rating {
        node,
        stars: Some(1),
        thumb: Some(1),
        note: Some("theirs".into()),
        rater: "bob".into(),
        at: "t".into(),
        seq: Some(1),
    });
    s.rating.rater = "ann".into();
    assert!(my_rating(&s, node).is_none());
    assert_eq!(other_raters(&s, node), 1);
    // Bob's thumb up does not make Ann's `+` a toggle-off.
    let fx = key(&mut s, KeyCode::Char('+'));
    assert!(matches!(
        &rating_effects(&fx)[..],
        [RatingEffect::AppendRating { edit, rater, .. }] if edit.thumb == Some(1) && rater == "ann"
    ));
    // Nor is Bob's note offered to Ann for editing.
    key(&mut s, KeyCode::Char('n'));
    match s.layers.last() {
        Some(Layer::Note { area, .. }) => assert_eq!(area.text(), ""),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_note_editor_is_prefilled_saves_on_ctrl_s_and_esc_discards() {
    let mut s = answered();
    let node = s.panes[0].node.unwrap();
    key(&mut s, KeyCode::Char('n'));
    for c in "too long".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    key(&mut s, KeyCode::Enter);
    for c in "but right".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    let fx = ctrl(&mut s, 's');
    assert!(s.layers.is_empty());
    assert!(matches!(
        &rating_effects(&fx)[..],
        [RatingEffect::AppendRating { edit, .. }]
            if edit.note.as_deref() == Some("too long\nbut right") && edit.stars.is_none()
    ));
    journal(&mut s, &fx);
    // Reopened: the note is there, the cursor at its end; Esc discards an edit.
    key(&mut s, KeyCode::Char('n'));
    match s.layers.last() {
        Some(Layer::Note { area, node: n }) => {
            assert_eq!(*n, node);
            assert_eq!(area.text(), "too long\nbut right");
            assert_eq!((area.row, area.col), (1, 9));
        }
        other => panic!("{other:?}"),
    }
    key(&mut s, KeyCode::Char('!'));
    assert!(key(&mut s, KeyCode::Esc).is_empty());
    assert!(s.layers.is_empty());
    assert_eq!(
        my_rating(&s, node).unwrap().note.as_deref(),
        Some("too long\nbut right")
    );
    // Saving it unchanged writes nothing; emptying it clears it.
    key(&mut s, KeyCode::Char('n'));
    assert!(ctrl(&mut s, 's').is_empty());
    key(&mut s, KeyCode::Char('n'));
    for _ in 0.."too long\nbut right".chars().count() {
        key(&mut s, KeyCode::Backspace);
    }
    let fx = ctrl(&mut s, 's');
    assert!(matches!(
        &rating_effects(&fx)[..],
        [RatingEffect::AppendRating { edit, what, .. }]
            if edit.note.as_deref() == Some("") && what.contains("cleared")
    ));
}

#[test]
fn a_failed_append_is_reported_and_not_shown_as_saved() {
    let mut s = answered();
    let node = s.panes[0].node.unwrap();
    key(&mut s, KeyCode::Char('5'));
    update(
        &mut s,
        Msg::Rating(RatingIo::Journaled {
            what: format!("#{node} ★★★★★"),
            result: Err("disk full".into()),
        }),
    );
    assert!(s.message.as_deref().unwrap().starts_with("NOT saved"));
    assert!(my_rating(&s, node).is_none());
}

fn compare_state(s: &AppState) -> &CompareState {
    match s.layers.last() {
        Some(Layer::Compare(c)) => c,
        other => panic!("not comparing: {other:?}"),
    }
}

#[test]
fn compare_hides_names_votes_then_reveals_and_moves_on() {
    let mut s = answered();
    let (a, b) = (s.panes[0].node.unwrap(), s.panes[1].node.unwrap());
    key(&mut s, KeyCode::Char('v'));
    let c = compare_state(&s).clone();
    assert_eq!(c.case, "England");
    let mut shown = [c.left, c.right];
    shown.sort();
    assert_eq!(shown, [a.min(b), a.max(b)]);
    for name in ["plain", "teacher"] {
        assert!(!c.blind_reason.contains(name), "{}", c.blind_reason);
    }
    assert!(c.voted.is_none());
    // `l`: the right one is better, recorded with the sides as shown.
    let fx = key(&mut s, KeyCode::Char('l'));
    match &rating_effects(&fx)[..] {
        [RatingEffect::AppendVote {
            left,
            right,
            outcome,
            ..
        }] => {
            assert_eq!((*left, *right), (c.left, c.right));
            assert_eq!(outcome, "right");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(compare_state(&s).voted, Some("right"));
    journal(&mut s, &fx);
    // Revealed: the next key moves on, even a vote key, without voting.
    let fx = key(&mut s, KeyCode::Char('t'));
    assert!(fx.is_empty());
    let next = compare_state(&s);
    assert!(next.voted.is_none());
    assert_eq!(next.votes, 1);
    // Tie and both-bad are distinct outcomes.
    let fx = key(&mut s, KeyCode::Char('x'));
    assert!(matches!(
        &rating_effects(&fx)[..],
        [RatingEffect::AppendVote { outcome, .. }] if outcome == "both_bad"
    ));
    journal(&mut s, &fx);
    key(&mut s, KeyCode::Char(' '));
    let fx = key(&mut s, KeyCode::Char('='));
    assert!(matches!(
        &rating_effects(&fx)[..],
        [RatingEffect::AppendVote { outcome, .. }] if outcome == "tie"
    ));
    key(&mut s, KeyCode::Esc);
    assert!(s.layers.is_empty());
    assert_eq!(s.session.votes.len(), 2);
}

#[test]
fn voting_works_while_the_answers_still_stream() {
    let mut s = app();
    let st = started(&key(&mut s, KeyCode::Enter));
    ev(&mut s, st[0], StreamEvent::Delta("Lon".into()), 10);
    ev(&mut s, st[1], StreamEvent::Delta("It is".into()), 10);
    key(&mut s, KeyCode::Char('v'));
    let fx = key(&mut s, KeyCode::Char('h'));
    assert!(matches!(
        &rating_effects(&fx)[..],
        [RatingEffect::AppendVote { outcome, .. }] if outcome == "left"
    ));
    // The streams go on underneath.
    ev(&mut s, st[0], StreamEvent::Delta("don".into()), 20);
    assert_eq!(s.session.node(st[0].0).unwrap().text, "London");
}

#[test]
fn sides_are_random_but_reproducible_from_the_seed() {
    let sides = |seed: u64| {
        let mut s = answered();
        s.seed_state = seed;
        let mut out = Vec::new();
        key(&mut s, KeyCode::Char('v'));
        for _ in 0..8 {
            let c = compare_state(&s);
            out.push(c.left < c.right);
            key(&mut s, KeyCode::Char('n'));
        }
        out
    };
    assert_eq!(sides(7), sides(7));
    let all: Vec<bool> = (0..4).flat_map(sides).collect();
    assert!(all.iter().any(|x| *x) && all.iter().any(|x| !*x), "{all:?}");
}

#[test]
fn compare_with_one_answer_says_why_not() {
    let mut s = app();
    let st = started(&key(&mut s, KeyCode::Char('R')));
    ev(&mut s, st[0], StreamEvent::Finished(FinishReason::Stop), 10);
    key(&mut s, KeyCode::Char('v'));
    assert!(s.layers.is_empty());
    assert!(s.message.as_deref().unwrap().contains("nothing to compare"));
}

#[test]
fn leaderboard_navigates_toggles_and_starts_the_suggested_comparison() {
    let mut s = answered();
    key(&mut s, KeyCode::Char('L'));
    let board = |s: &AppState| match s.layers.last() {
        Some(Layer::Leaderboard(b)) => (**b).clone(),
        other => panic!("{other:?}"),
    };
    let b = board(&s);
    assert_eq!(b.board.by, GroupBy::Variant);
    assert_eq!(b.board.entries.len(), 2);
    assert!(b.suggestion.is_some());
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Char('j'));
    assert_eq!(board(&s).selected, 1);
    key(&mut s, KeyCode::Char('k'));
    assert_eq!(board(&s).selected, 0);
    key(&mut s, KeyCode::Tab);
    let v = board(&s);
    assert_eq!(v.board.by, GroupBy::VariantVersion);
    assert_eq!(v.board.entries.len(), 2);
    key(&mut s, KeyCode::Tab);
    let m = board(&s);
    assert_eq!(m.board.by, GroupBy::Model);
    assert_eq!(m.board.entries.len(), 1);
    key(&mut s, KeyCode::Tab);
    // `v` compares the suggested pair on top of the board; a vote updates the board.
    let suggested = board(&s).suggestion.unwrap();
    key(&mut s, KeyCode::Char('v'));
    let c = compare_state(&s).clone();
    let mut want = [suggested.node_a, suggested.node_b];
    want.sort();
    let mut got = [c.left, c.right];
    got.sort();
    assert_eq!(want, got);
    let fx = key(&mut s, KeyCode::Char('h'));
    journal(&mut s, &fx);
    key(&mut s, KeyCode::Esc);
    let after = board(&s);
    assert!(after.board.by_votes);
    assert_eq!(after.board.entries.iter().map(|e| e.wins).sum::<usize>(), 1);
    // `w` exports the board as Markdown beside the session.
    let fx = key(&mut s, KeyCode::Char('w'));
    match &rating_effects(&fx)[..] {
        [RatingEffect::WriteFile { path, text }] => {
            assert_eq!(path, &PathBuf::from("sessions/s.leaderboard-variant.md"));
            assert!(text.contains("| rank | variant |"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    key(&mut s, KeyCode::Esc);
    assert!(s.layers.is_empty());
}

fn summary(path: &str, current: bool) -> SessionSummary {
    SessionSummary {
        path: PathBuf::from(path),
        modified: "2026-11-27 07:00".into(),
        modified_secs: 1,
        title: "Capitals".into(),
        prompt_file: Some("prompts/capitals.toml".into()),
        answers: 4,
        ratings: 2,
        votes: 1,
        error: None,
        current,
    }
}

#[test]
fn the_browser_lists_then_opens_a_session_in_place() {
    let mut s = answered();
    s.rating.session_dirs = vec![PathBuf::from("sessions")];
    let fx = key(&mut s, KeyCode::Char('S'));
    assert_eq!(
        rating_effects(&fx),
        vec![RatingEffect::ListSessions {
            dirs: vec![PathBuf::from("sessions")],
            current: PathBuf::from("sessions/s.toml"),
        }]
    );
    update(
        &mut s,
        Msg::Rating(RatingIo::Sessions(vec![
            summary("sessions/new.toml", false),
            summary("sessions/s.toml", true),
        ])),
    );
    match s.layers.last() {
        Some(Layer::Browser(b)) => assert_eq!(b.selected, 1, "starts on the open session"),
        other => panic!("{other:?}"),
    }
    key(&mut s, KeyCode::Char('k'));
    let fx = key(&mut s, KeyCode::Enter);
    assert_eq!(
        rating_effects(&fx),
        vec![RatingEffect::OpenSession {
            path: PathBuf::from("sessions/new.toml")
        }]
    );
    assert!(s.layers.is_empty());
    // The driver opened it: the state switches, rater and dirs kept.
    let mut other = crate::state::session::Session::new("Other", "t".into(), None);
    other.variants = s.prompt.variants.clone();
    other.cases = s.prompt.cases.clone();
    let prompt = prompt_for_session(&other, &s.models, "fake");
    s.rating.rater = "ann".into();
    update(
        &mut s,
        Msg::Rating(RatingIo::Opened {
            prompt: Box::new(prompt),
            session: Box::new(other),
            path: PathBuf::from("sessions/new.toml"),
            indexes: Default::default(),
        }),
    );
    assert_eq!(s.session_path, PathBuf::from("sessions/new.toml"));
    assert_eq!(s.session.title, "Other");
    assert!(s.panes.iter().all(|p| p.node.is_none()));
    assert_eq!(s.rating.rater, "ann");
    assert!(s.message.as_deref().unwrap().starts_with("opened"));
}

#[test]
fn the_browser_refuses_unreadable_sessions_and_closes_on_the_open_one() {
    let mut s = answered();
    key(&mut s, KeyCode::Char('S'));
    let mut bad = summary("sessions/bad.toml", false);
    bad.error = Some("bad.toml:1:1: invalid".into());
    update(
        &mut s,
        Msg::Rating(RatingIo::Sessions(vec![
            bad,
            summary("sessions/s.toml", true),
        ])),
    );
    key(&mut s, KeyCode::Char('k'));
    assert!(key(&mut s, KeyCode::Enter).is_empty());
    assert!(s.message.as_deref().unwrap().contains("cannot open"));
    key(&mut s, KeyCode::Char('j'));
    assert!(key(&mut s, KeyCode::Enter).is_empty());
    assert!(s.layers.is_empty());
}
