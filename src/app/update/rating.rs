//! Human judgement in the playground: stars, thumbs and notes on the focused answer, blind
//! A/B comparison, the leaderboard and the session browser, as pure state updates.
//!
//! Nothing here writes a file. A rating or a vote becomes [`RatingEffect::AppendRating`] /
//! [`RatingEffect::AppendVote`]; the driver appends it to the session's journal (fsynced)
//! before it handles the next key, applies it to the session only once it is durable, and
//! reports back with [`RatingIo::Journaled`]. So a rating the screen shows is always a rating
//! on disk, and a failed write shows an error instead.
//!
//! Key semantics (documented in the README):
//! - `1`–`5` set your stars, `0` clears them; pressing the same number again keeps them.
//! - `+` / `-` set your thumb; pressing the same one again clears it (a toggle).
//! - `n` edits your note (multi-line; an emptied note is cleared).
//! - Ratings are per rater: another rater's rating of the same answer is never touched.

use std::path::PathBuf;

use crate::app::model::keys::Key;

use crate::app::model::edit::TextArea;
use crate::app::model::msg::Effect;
use crate::app::model::queries::{my_rating, shown_node};
use crate::app::model::rating::{
    board_export_path, outcome_words, stars_text, BoardState, BrowserState, CompareState,
    RatingEffect, RatingIo,
};
use crate::app::model::state::{AppState, Layer};
use crate::config::keymap::Action;
use crate::eval::active::{self, Suggestion};
use crate::eval::leaderboard::{self, GroupBy};
use crate::prompt::PromptFile;
use crate::state::session::Session;
use crate::store::journal::RatingEdit;

/// Handle a normal-mode action that belongs to rating (others are ignored).
pub(crate) fn normal_action(s: &mut AppState, a: Action, fx: &mut Vec<Effect>) {
    match a {
        Action::Stars1 => rate_stars(s, 1, fx),
        Action::Stars2 => rate_stars(s, 2, fx),
        Action::Stars3 => rate_stars(s, 3, fx),
        Action::Stars4 => rate_stars(s, 4, fx),
        Action::Stars5 => rate_stars(s, 5, fx),
        Action::ClearStars => rate_stars(s, 0, fx),
        Action::ThumbUp => rate_thumb(s, 1, fx),
        Action::ThumbDown => rate_thumb(s, -1, fx),
        Action::EditNote => match focused_node(s) {
            Some(node) => {
                let note = my_rating(s, node)
                    .and_then(|r| r.note.clone())
                    .unwrap_or_default();
                let mut area = TextArea::new(&note);
                // Start at the end, ready to type.
                area.row = area.lines.len().saturating_sub(1);
                area.col = area.lines.last().map_or(0, String::len);
                s.layers.push(Layer::Note { node, area });
            }
            None => s.message = Some("nothing to note: this pane has no answer".into()),
        },
        Action::Compare => {
            if let Some(c) = pick_compare(s, true, None) {
                s.layers.push(Layer::Compare(c));
            }
        }
        Action::Leaderboard => {
            let st = board_state(&s.session, GroupBy::Variant, 0);
            s.layers.push(Layer::Leaderboard(st));
        }
        Action::SessionBrowser => {
            s.layers.push(Layer::Browser(BrowserState {
                items: None,
                selected: 0,
            }));
            fx.push(Effect::Rating(RatingEffect::ListSessions {
                dirs: s.rating.session_dirs.clone(),
                current: s.session_path.clone(),
            }));
        }
        // Layer-only actions do nothing in normal mode.
        Action::VoteLeft
        | Action::VoteRight
        | Action::VoteTie
        | Action::VoteBothBad
        | Action::NextPair
        | Action::ToggleGroup
        | Action::CompareSuggested
        | Action::ExportBoard => {}
        _ => {}
    }
}

/// The focused pane's node, if it has something to judge (a queued request has no answer).
fn focused_node(s: &AppState) -> Option<u64> {
    shown_node(s, s.focus).filter(|id| {
        s.session.node(*id).is_some_and(|n| {
            !n.text.is_empty()
                || !matches!(
                    n.status,
                    crate::state::session::NodeStatus::Queued
                        | crate::state::session::NodeStatus::Streaming
                )
        })
    })
}

fn rate_stars(s: &mut AppState, n: u8, fx: &mut Vec<Effect>) {
    let Some(node) = focused_node(s) else {
        s.message = Some("nothing to rate: this pane has no answer".into());
        return;
    };
    if n == 0 && my_rating(s, node).and_then(|r| r.stars).is_none() {
        s.message = Some(format!("#{node} has no stars of yours to clear"));
        return;
    }
    let what = if n == 0 {
        format!("#{node} stars cleared")
    } else {
        format!("#{node} {}", stars_text(n))
    };
    push_rating(
        s,
        RatingEdit {
            node,
            stars: Some(n),
            ..Default::default()
        },
        what,
        fx,
    );
}

fn rate_thumb(s: &mut AppState, t: i8, fx: &mut Vec<Effect>) {
    let Some(node) = focused_node(s) else {
        s.message = Some("nothing to rate: this pane has no answer".into());
        return;
    };
    // Pressing the same thumb again clears it.
    let same = my_rating(s, node).and_then(|r| r.thumb) == Some(t);
    let value = if same { 0 } else { t };
    let what = match value {
        1 => format!("#{node} 👍"),
        -1 => format!("#{node} 👎"),
        _ => format!("#{node} thumb cleared"),
    };
    push_rating(
        s,
        RatingEdit {
            node,
            thumb: Some(value),
            ..Default::default()
        },
        what,
        fx,
    );
}

fn push_rating(s: &mut AppState, edit: RatingEdit, what: String, fx: &mut Vec<Effect>) {
    fx.push(Effect::Rating(RatingEffect::AppendRating {
        edit,
        rater: s.rating.rater.clone(),
        at: s.stamp(),
        what,
    }));
}

/// Keys for the rating layers. `top` was popped off the stack; return it to keep it.
pub(crate) fn layer_key(
    s: &mut AppState,
    top: Layer,
    action: Option<Action>,
    key: &Key,
    fx: &mut Vec<Effect>,
) -> Option<Layer> {
    match top {
        Layer::Note { node, mut area } => match action {
            Some(Action::Close) => None,
            Some(Action::Accept) => {
                let text = area.text();
                let note = text.trim_end().to_string();
                let had = my_rating(s, node).and_then(|r| r.note.as_deref()) == Some(&*note);
                if had {
                    return None;
                }
                let what = if note.trim().is_empty() {
                    format!("#{node} note cleared")
                } else {
                    format!("#{node} note")
                };
                push_rating(
                    s,
                    RatingEdit {
                        node,
                        note: Some(note),
                        ..Default::default()
                    },
                    what,
                    fx,
                );
                None
            }
            _ => {
                area.key(key);
                area.scroll_into_view(usize::from(s.height.saturating_sub(8)).max(1));
                Some(Layer::Note { node, area })
            }
        },
        Layer::Compare(mut c) => {
            if action == Some(Action::Close) {
                refresh_board_below(s);
                return None;
            }
            if c.voted.is_some() {
                // Names are revealed; the next key moves on (Esc closes).
                return next_compare(s, &c);
            }
            let outcome = match action {
                Some(Action::VoteLeft) => "left",
                Some(Action::VoteRight) => "right",
                Some(Action::VoteTie) => "tie",
                Some(Action::VoteBothBad) => "both_bad",
                Some(Action::NextPair) => {
                    return next_compare(s, &c);
                }
                Some(Action::Down) => {
                    c.scroll += 1;
                    return Some(Layer::Compare(c));
                }
                Some(Action::Up) => {
                    c.scroll = c.scroll.saturating_sub(1);
                    return Some(Layer::Compare(c));
                }
                _ => return Some(Layer::Compare(c)),
            };
            c.voted = Some(outcome);
            c.votes += 1;
            fx.push(Effect::Rating(RatingEffect::AppendVote {
                left: c.left,
                right: c.right,
                outcome: outcome.to_string(),
                rater: s.rating.rater.clone(),
                at: s.stamp(),
                // No node ids: they would hint at the variants of a later pair.
                what: format!("vote: {}", outcome_words(outcome)),
            }));
            Some(Layer::Compare(c))
        }
        Layer::Leaderboard(mut b) => match action {
            Some(Action::Close) | Some(Action::Leaderboard) => None,
            Some(Action::Down) => {
                b.selected = (b.selected + 1).min(b.board.entries.len().saturating_sub(1));
                Some(Layer::Leaderboard(b))
            }
            Some(Action::Up) => {
                b.selected = b.selected.saturating_sub(1);
                Some(Layer::Leaderboard(b))
            }
            Some(Action::ToggleGroup) => {
                let by = match b.board.by {
                    GroupBy::Variant => GroupBy::VariantVersion,
                    GroupBy::VariantVersion => GroupBy::Model,
                    GroupBy::Model | GroupBy::VariantModel => GroupBy::Variant,
                };
                Some(Layer::Leaderboard(board_state(&s.session, by, 0)))
            }
            Some(Action::Charts) => {
                let c = crate::app::model::charts::open(&s.session, &b.board);
                s.layers.push(Layer::Leaderboard(b));
                s.layers.push(Layer::Charts(Box::new(c)));
                None
            }
            Some(Action::CompareSuggested) => {
                s.layers.push(Layer::Leaderboard(b));
                if let Some(c) = pick_compare(s, false, None) {
                    s.layers.push(Layer::Compare(c));
                }
                None
            }
            Some(Action::ExportBoard) => {
                let path = board_export_path(&s.session_path, b.board.by);
                let mut text = format!(
                    "# Leaderboard: {}\n\nSession `{}`, {} answers, {} ratings, {} votes.\n\n",
                    s.session.title,
                    s.session_path.display(),
                    b.board.entries.iter().map(|e| e.answers).sum::<usize>(),
                    s.session.ratings.iter().filter(|r| !r.is_empty()).count(),
                    s.session.votes.len()
                );
                text.push_str(&leaderboard::to_markdown(&b.board));
                fx.push(Effect::Rating(RatingEffect::WriteFile { path, text }));
                Some(Layer::Leaderboard(b))
            }
            _ => Some(Layer::Leaderboard(b)),
        },
        Layer::Browser(mut b) => {
            let n = b.items.as_ref().map_or(0, Vec::len);
            match action {
                Some(Action::Close) => None,
                Some(Action::Down) => {
                    b.selected = (b.selected + 1).min(n.saturating_sub(1));
                    Some(Layer::Browser(b))
                }
                Some(Action::Up) => {
                    b.selected = b.selected.saturating_sub(1);
                    Some(Layer::Browser(b))
                }
                Some(Action::Accept) => {
                    let Some(item) = b.items.as_ref().and_then(|i| i.get(b.selected)) else {
                        return Some(Layer::Browser(b));
                    };
                    if let Some(e) = &item.error {
                        s.message = Some(format!("cannot open {}: {e}", item.path.display()));
                        return Some(Layer::Browser(b));
                    }
                    if item.current {
                        return None;
                    }
                    let path = item.path.clone();
                    super::streams::cancel_all(s, fx);
                    fx.push(Effect::Rating(RatingEffect::OpenSession { path }));
                    s.message = Some("opening…".into());
                    None
                }
                _ => Some(Layer::Browser(b)),
            }
        }
        other => Some(other),
    }
}

/// Move on from `c` to the next pair, or close (there is none left).
fn next_compare(s: &mut AppState, c: &CompareState) -> Option<Layer> {
    let next = pick_compare(s, false, Some(c));
    if next.is_none() {
        refresh_board_below(s);
    }
    next.map(Layer::Compare)
}

/// The comparison on top closed: a stale leaderboard under it is rebuilt.
fn refresh_board_below(s: &mut AppState) {
    if let Some(Layer::Leaderboard(b)) = s.layers.last() {
        if b.stale {
            let fresh = board_state(&s.session, b.board.by, b.selected);
            if let Some(Layer::Leaderboard(b)) = s.layers.last_mut() {
                *b = fresh;
            }
        }
    }
}

fn board_state(session: &Session, by: GroupBy, selected: usize) -> Box<BoardState> {
    let board = leaderboard::build(session, by);
    // Suggestions are about variants, whatever the table is grouped by.
    let suggestion = if by == GroupBy::Variant {
        active::next_pair(session, &board)
    } else {
        active::next_pair(session, &leaderboard::build(session, GroupBy::Variant))
    };
    let selected = selected.min(board.entries.len().saturating_sub(1));
    Box::new(BoardState {
        board,
        stale: false,
        suggestion,
        selected,
    })
}

/// The most informative blind pair to show next. `prefer_case`: opened from the playground,
/// so pick among the selected case's answers first; `prev`: the comparison on screen, not
/// offered again while there is another.
fn pick_compare(
    s: &mut AppState,
    prefer_case: bool,
    prev: Option<&CompareState>,
) -> Option<Box<CompareState>> {
    let board = leaderboard::build(&s.session, GroupBy::Variant);
    let ranked = active::ranked_pairs(&s.session, &board);
    let case = s.case_name();
    let key = |a: u64, b: u64| (a.min(b), a.max(b));
    let fresh =
        |x: &&Suggestion| prev.is_none_or(|p| key(x.node_a, x.node_b) != key(p.left, p.right));
    let pick = if prefer_case {
        ranked.iter().find(|x| x.case == case)
    } else {
        None
    }
    .or_else(|| ranked.iter().find(fresh))
    .or_else(|| ranked.first())
    .cloned();
    let Some(pick) = pick else {
        s.message = Some(
            "nothing to compare: run at least two variants on a case (Enter runs them all)".into(),
        );
        return None;
    };
    let swap = s.next_seed() & 1 == 1;
    let (left, right) = if swap {
        (pick.node_b, pick.node_a)
    } else {
        (pick.node_a, pick.node_b)
    };
    let why = if prefer_case && pick.case == case {
        "the most informative pair on this case"
    } else {
        "the most informative pair"
    };
    let blind_reason = format!("{why}: {}", pick.blind_reason);
    let reason = format!("{why}: {}", pick.reason);
    Some(Box::new(CompareState {
        case: pick.case.clone(),
        left,
        right,
        blind_reason,
        reason,
        voted: None,
        votes: prev.map_or(0, |p| p.votes),
        scroll: 0,
    }))
}

/// A report from the driver.
pub(crate) fn io(s: &mut AppState, msg: RatingIo, fx: &mut Vec<Effect>) {
    let _ = fx;
    match msg {
        RatingIo::Journaled { what, result } => match result {
            Ok(seq) => {
                s.rating.last_saved = Some(seq);
                s.message = Some(format!("saved {what}"));
                // A leaderboard under a comparison is refreshed when it is on top again.
                for l in &mut s.layers {
                    if let Layer::Leaderboard(b) = l {
                        b.stale = true;
                    }
                }
            }
            Err(e) => s.message = Some(format!("NOT saved ({what}): {e}")),
        },
        RatingIo::Sessions(items) => {
            for l in &mut s.layers {
                if let Layer::Browser(b) = l {
                    b.selected = items.iter().position(|i| i.current).unwrap_or(0);
                    b.items = Some(items.clone());
                }
            }
        }
        RatingIo::Opened {
            prompt,
            session,
            path,
            indexes,
        } => switch_session(s, *prompt, *session, path, indexes),
        RatingIo::OpenFailed(e) => s.message = Some(format!("session not opened: {e}")),
        RatingIo::Written { path, error } => {
            s.message = Some(match error {
                None => format!("wrote {}", path.display()),
                Some(e) => format!("not written: {e}"),
            })
        }
    }
    s.dirty = true;
}

/// Replace the open session (the driver saved the old one and opened this one).
pub(crate) fn switch_session(
    s: &mut AppState,
    prompt: PromptFile,
    session: Session,
    path: PathBuf,
    indexes: crate::prompt::retrieve::Indexes,
) {
    let mut next = AppState::new(
        prompt,
        session,
        path,
        s.keymap.clone(),
        s.models.clone(),
        s.started_wall,
        s.seed_state,
    );
    next.indexes = indexes;
    next.rating = s.rating.clone();
    next.rating.last_saved = None;
    next.model_status = std::mem::take(&mut s.model_status);
    next.width = s.width;
    next.height = s.height;
    next.now = s.now;
    next.next_request = s.next_request;
    let ratings = next
        .session
        .ratings
        .iter()
        .filter(|r| !r.is_empty())
        .count();
    next.message = Some(format!(
        "opened {} ({} answers, {} ratings, {} votes)",
        next.session_path.display(),
        next.session.nodes.len(),
        ratings,
        next.session.votes.len()
    ));
    *s = next;
}

#[cfg(test)]
pub(crate) mod tests;
