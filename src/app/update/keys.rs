//! Where a key goes: key sequences, and the layer stack from the top down.
//!
//! A key is resolved in the mode of the top layer; if that layer's handler ignores it (no
//! binding there, or an action its table doesn't list), it bubbles to the layer below, down
//! to the panes. A key that starts a sequence (`space c`) waits for the next one: the
//! which-key hint lists what can follow, Esc cancels, and so does the driver's timer
//! ([`Effect::SequenceTimer`] → [`Msg::SequenceTimeout`](crate::app::Msg)), so `update` never
//! waits or reads a clock.

use crate::app::model::commands::accepts;
use crate::app::model::keys::{Key, KeyCode, KeySeq, PendingKeys};
use crate::app::model::msg::Effect;
use crate::app::model::state::AppState;
use crate::config::keymap::{Action, Resolved};

/// What a layer's handler did with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Handled,
    /// Not this layer's key: it goes to the layer below.
    Ignored,
}

/// Where a routed key ends: the panes' and the layers' handlers, which live in `update`'s
/// dispatch and are passed in, so this file routes without importing its parent.
pub(crate) struct Handlers {
    pub normal: fn(&mut AppState, Action, &mut Vec<Effect>),
    pub layer: fn(&mut AppState, Option<Action>, &Key, &mut Vec<Effect>) -> Outcome,
}

/// One key press.
pub(crate) fn key_event(s: &mut AppState, key: Key, fx: &mut Vec<Effect>, h: &Handlers) {
    if let Some(p) = s.pending_keys.take() {
        if p.depth <= s.layers.len() {
            continue_sequence(s, p, key, fx, h);
            return;
        }
        // The layer the sequence was started in is gone: the key is a fresh one.
    }
    let mut depth = s.layers.len();
    loop {
        let mode = s.mode_at(depth);
        let action = match s.keymap.resolve(mode, &[], key) {
            Resolved::Pending => {
                start_sequence(s, vec![key.binding()], depth, fx);
                return;
            }
            Resolved::Action(a) if accepts(mode, a) => Some(a),
            Resolved::Action(_) | Resolved::Unbound => None,
        };
        if handle_at(s, depth, action, key, fx, h) == Outcome::Handled || depth == 0 {
            return;
        }
        depth -= 1;
    }
}

/// The next key of the started sequence `p`.
fn continue_sequence(
    s: &mut AppState,
    p: PendingKeys,
    key: Key,
    fx: &mut Vec<Effect>,
    h: &Handlers,
) {
    if key.binding() == Key::plain(KeyCode::Esc) {
        return;
    }
    let mode = s.mode_at(p.depth);
    match s.keymap.resolve(mode, &p.keys, key) {
        Resolved::Action(a) => {
            let action = Some(a).filter(|a| accepts(mode, *a));
            handle_at(s, p.depth, action, key, fx, h);
        }
        Resolved::Pending => {
            let mut keys = p.keys;
            keys.push(key.binding());
            start_sequence(s, keys, p.depth, fx);
        }
        Resolved::Unbound => {
            let mut keys = p.keys;
            keys.push(key.binding());
            s.message = Some(format!("{} is not bound", KeySeq(keys)));
        }
    }
}

/// `keys` start a sequence in the layer at `depth`: wait for the next key (and not longer
/// than the configured timeout).
fn start_sequence(s: &mut AppState, keys: Vec<Key>, depth: usize, fx: &mut Vec<Effect>) {
    s.last_sequence += 1;
    let id = s.last_sequence;
    s.pending_keys = Some(PendingKeys { keys, id, depth });
    if let Some(after) = s.keymap.sequence_timeout() {
        fx.push(Effect::SequenceTimer { id, after });
    }
}

/// The driver's timer for sequence `id` ran out: cancel it if it is still waiting.
pub(crate) fn sequence_timeout(s: &mut AppState, id: u64) {
    if s.pending_keys.as_ref().is_some_and(|p| p.id == id) {
        s.pending_keys = None;
        s.dirty = true;
    }
}

/// Give the key to the layer at `depth`, with the layers above it set aside meanwhile (what
/// it opens goes on top of it, under them).
fn handle_at(
    s: &mut AppState,
    depth: usize,
    action: Option<Action>,
    key: Key,
    fx: &mut Vec<Effect>,
    h: &Handlers,
) -> Outcome {
    let above = s.layers.split_off(depth.min(s.layers.len()));
    let out = if depth == 0 {
        match action {
            Some(a) => {
                if a != Action::Interrupt {
                    s.interrupt_armed = false;
                }
                (h.normal)(s, a, fx);
                Outcome::Handled
            }
            None => Outcome::Ignored,
        }
    } else {
        (h.layer)(s, action, &key, fx)
    };
    s.layers.extend(above);
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::app::model::keys::Mods;
    use crate::app::model::msg::Msg;
    use crate::app::model::state::Layer;
    use crate::app::update::tests::{app, key, started};
    use crate::app::update::update;
    use crate::config::keymap::Mode;
    use crate::eval::leaderboard::GroupBy;

    /// The app with `g g` / `g e` bound (and `g` freed for them).
    fn with_goto() -> AppState {
        let mut s = app();
        s.keymap
            .merge_text(
                Path::new("k.toml"),
                "[normal]\n\"g\" = \"none\"\n\"g g\" = \"scroll_top\"\n\"g e\" = \"scroll_bottom\"\n",
            )
            .unwrap();
        s
    }

    fn timers(fx: &[Effect]) -> Vec<(u64, Duration)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::SequenceTimer { id, after } => Some((*id, *after)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_sequence_waits_for_its_last_key_then_acts() {
        let mut s = with_goto();
        assert!(s.panes[0].follow);
        let fx = key(&mut s, KeyCode::Char('g'));
        let armed = timers(&fx);
        assert_eq!(armed.len(), 1, "{fx:?}");
        assert_eq!(armed[0].1, Duration::from_millis(1000));
        let p = s.pending_keys.clone().unwrap();
        assert_eq!(
            (p.keys, p.id, p.depth),
            (vec![Key::char('g')], armed[0].0, 0)
        );
        assert!(s.panes[0].follow, "nothing happened yet");
        key(&mut s, KeyCode::Char('g'));
        assert!(s.pending_keys.is_none());
        assert!(!s.panes[0].follow, "g g scrolled to the top");
        key(&mut s, KeyCode::Char('g'));
        key(&mut s, KeyCode::Char('e'));
        assert!(s.panes[0].follow, "g e follows the end again");
    }

    #[test]
    fn the_default_space_group_reaches_the_technique_keys() {
        let mut s = app();
        key(&mut s, KeyCode::Char(' '));
        assert!(s.pending_keys.is_some());
        key(&mut s, KeyCode::Char('t'));
        assert!(s.pending_keys.is_none());
        // `t` alone says the same: there is no tree before a run.
        let via_sequence = s.message.take();
        assert!(via_sequence
            .as_deref()
            .is_some_and(|m| m.contains("no answers")));
        key(&mut s, KeyCode::Char('t'));
        assert_eq!(s.message, via_sequence);
    }

    #[test]
    fn esc_cancels_a_pending_sequence_and_does_nothing_else() {
        let mut s = app();
        let st = started(&key(&mut s, KeyCode::Char('r')));
        assert_eq!(st.len(), 2);
        key(&mut s, KeyCode::Char(' '));
        let fx = key(&mut s, KeyCode::Esc);
        assert!(s.pending_keys.is_none());
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::CancelStream { .. })),
            "Esc ended the sequence, not the stream: {fx:?}"
        );
        assert!(s.panes[0].phase.is_active());
        // Without a sequence pending, Esc cancels the focused stream as before.
        let fx = key(&mut s, KeyCode::Esc);
        assert!(fx.iter().any(|e| matches!(e, Effect::CancelStream { .. })));
    }

    #[test]
    fn the_drivers_timeout_cancels_only_the_sequence_it_was_armed_for() {
        let mut s = with_goto();
        let first = timers(&key(&mut s, KeyCode::Char('g')))[0].0;
        key(&mut s, KeyCode::Esc);
        let second = timers(&key(&mut s, KeyCode::Char('g')))[0].0;
        assert_ne!(first, second);
        update(&mut s, Msg::SequenceTimeout { id: first });
        assert!(
            s.pending_keys.is_some(),
            "a late timer of an older sequence"
        );
        update(&mut s, Msg::SequenceTimeout { id: second });
        assert!(s.pending_keys.is_none());
        // Timed out: the next `g` starts over rather than completing `g g`.
        s.panes[0].follow = true;
        key(&mut s, KeyCode::Char('g'));
        assert!(s.pending_keys.is_some() && s.panes[0].follow);
    }

    #[test]
    fn no_timer_when_the_timeout_is_off() {
        let mut s = with_goto();
        s.keymap.set_sequence_timeout_ms(0);
        let fx = key(&mut s, KeyCode::Char('g'));
        assert!(timers(&fx).is_empty(), "{fx:?}");
        assert!(s.pending_keys.is_some());
    }

    #[test]
    fn a_key_that_continues_nothing_ends_the_sequence_with_a_message() {
        let mut s = app();
        key(&mut s, KeyCode::Char(' '));
        let fx = key(&mut s, KeyCode::Char('r'));
        assert!(
            started(&fx).is_empty(),
            "`r` was part of the sequence, not run"
        );
        assert!(s.pending_keys.is_none());
        assert_eq!(s.message.as_deref(), Some("space r is not bound"));
    }

    #[test]
    fn keys_the_help_does_not_take_bubble_to_the_layer_beneath() {
        let mut s = app();
        key(&mut s, KeyCode::Char('L'));
        key(&mut s, KeyCode::Char('?'));
        assert_eq!(s.mode(), Mode::Help);
        // `j` scrolls the help, it doesn't move the board's selection.
        key(&mut s, KeyCode::Char('j'));
        assert!(matches!(s.layers.last(), Some(Layer::Help { scroll: 1 })));
        // Tab is not the help's: the leaderboard under it regroups, the help stays on top.
        key(&mut s, KeyCode::Tab);
        assert_eq!(s.layers.len(), 2);
        assert!(matches!(s.layers.last(), Some(Layer::Help { .. })));
        match &s.layers[0] {
            Layer::Leaderboard(b) => assert_eq!(b.board.by, GroupBy::VariantVersion),
            other => panic!("{other:?}"),
        }
        // Esc is the help's own key: it closes the help, not the board.
        key(&mut s, KeyCode::Esc);
        assert_eq!(s.mode(), Mode::Leaderboard);
    }

    #[test]
    fn modal_layers_keep_every_key() {
        let mut s = app();
        key(&mut s, KeyCode::Char('L'));
        // `r` means nothing on the board, and the panes beneath don't run.
        let fx = key(&mut s, KeyCode::Char('r'));
        assert!(started(&fx).is_empty());
        assert_eq!(s.mode(), Mode::Leaderboard);
        // Over the panes, the help passes `]` on: the case changes under it.
        let mut s = app();
        key(&mut s, KeyCode::Char('?'));
        key(&mut s, KeyCode::Char(']'));
        assert_eq!(s.case, 1);
        assert_eq!(s.mode(), Mode::Help);
    }

    #[test]
    fn shifted_and_ctrl_keys_resolve_as_the_keymap_writes_them() {
        let mut s = app();
        // Ctrl-C with Caps Lock: still `interrupt` (quits when nothing runs).
        let at = s.now;
        update(
            &mut s,
            Msg::Key {
                key: Key::new(KeyCode::Char('C'), Mods::CTRL | Mods::SHIFT),
                at,
            },
        );
        assert!(s.quit);
    }
}
