//! The terminal's key and mouse events in the app's own vocabulary
//! ([`crate::app::model::keys`]). This is the one place that knows crossterm's event types,
//! so the model and `update` don't.

use crossterm::event::{
    KeyCode as TermCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

use crate::app::model::keys::{Key, KeyCode, Mods, Mouse, MouseKind};

/// The key a terminal key event is, if the app has a name for it (media keys, modifier-only
/// presses and the like have none).
pub(crate) fn key(ev: &KeyEvent) -> Option<Key> {
    let code = match ev.code {
        TermCode::Char(c) => KeyCode::Char(c),
        TermCode::F(n) => KeyCode::F(n),
        TermCode::Enter => KeyCode::Enter,
        TermCode::Esc => KeyCode::Esc,
        TermCode::Tab => KeyCode::Tab,
        TermCode::BackTab => KeyCode::BackTab,
        TermCode::Backspace => KeyCode::Backspace,
        TermCode::Delete => KeyCode::Delete,
        TermCode::Insert => KeyCode::Insert,
        TermCode::Up => KeyCode::Up,
        TermCode::Down => KeyCode::Down,
        TermCode::Left => KeyCode::Left,
        TermCode::Right => KeyCode::Right,
        TermCode::Home => KeyCode::Home,
        TermCode::End => KeyCode::End,
        TermCode::PageUp => KeyCode::PageUp,
        TermCode::PageDown => KeyCode::PageDown,
        _ => return None,
    };
    Some(Key::new(code, mods(ev.modifiers)))
}

fn mods(m: KeyModifiers) -> Mods {
    let mut out = Mods::NONE;
    if m.contains(KeyModifiers::SHIFT) {
        out = out | Mods::SHIFT;
    }
    if m.contains(KeyModifiers::CONTROL) {
        out = out | Mods::CTRL;
    }
    if m.contains(KeyModifiers::ALT) {
        out = out | Mods::ALT;
    }
    out
}

/// A terminal mouse event as the app uses it.
pub(crate) fn mouse(ev: &MouseEvent) -> Mouse {
    let kind = match ev.kind {
        MouseEventKind::Down(MouseButton::Left) => MouseKind::LeftDown,
        MouseEventKind::ScrollUp => MouseKind::ScrollUp,
        MouseEventKind::ScrollDown => MouseKind::ScrollDown,
        _ => MouseKind::Other,
    };
    Mouse {
        kind,
        column: ev.column,
        row: ev.row,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventKind;

    #[test]
    fn keys_keep_their_code_and_modifiers() {
        let ev = KeyEvent::new(TermCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(key(&ev), Some(Key::new(KeyCode::Char('G'), Mods::SHIFT)));
        let ev = KeyEvent::new(
            TermCode::Char('x'),
            KeyModifiers::CONTROL | KeyModifiers::ALT,
        );
        assert_eq!(
            key(&ev),
            Some(Key::new(KeyCode::Char('x'), Mods::CTRL | Mods::ALT))
        );
        let ev = KeyEvent::new(TermCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(
            key(&ev).map(Key::binding),
            Some(Key::plain(KeyCode::BackTab))
        );
        assert_eq!(
            key(&KeyEvent::new(TermCode::F(5), KeyModifiers::NONE)),
            Some(Key::plain(KeyCode::F(5)))
        );
        // SUPER and the like are not modifiers the app binds: they don't change the key.
        assert_eq!(
            key(&KeyEvent::new(TermCode::PageDown, KeyModifiers::SUPER)),
            Some(Key::plain(KeyCode::PageDown))
        );
        let mut ev = KeyEvent::new(TermCode::CapsLock, KeyModifiers::NONE);
        ev.kind = KeyEventKind::Press;
        assert_eq!(key(&ev), None);
    }

    #[test]
    fn every_named_key_converts() {
        let pairs = [
            (TermCode::Enter, KeyCode::Enter),
            (TermCode::Esc, KeyCode::Esc),
            (TermCode::Tab, KeyCode::Tab),
            (TermCode::Backspace, KeyCode::Backspace),
            (TermCode::Delete, KeyCode::Delete),
            (TermCode::Insert, KeyCode::Insert),
            (TermCode::Up, KeyCode::Up),
            (TermCode::Down, KeyCode::Down),
            (TermCode::Left, KeyCode::Left),
            (TermCode::Right, KeyCode::Right),
            (TermCode::Home, KeyCode::Home),
            (TermCode::End, KeyCode::End),
            (TermCode::PageUp, KeyCode::PageUp),
        ];
        for (t, ours) in pairs {
            assert_eq!(
                key(&KeyEvent::new(t, KeyModifiers::NONE)),
                Some(Key::plain(ours)),
                "{t:?}"
            );
        }
    }

    #[test]
    fn mouse_events_keep_their_cell() {
        let ev = MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 7,
            row: 3,
            modifiers: KeyModifiers::NONE,
        };
        assert_eq!(
            mouse(&ev),
            Mouse {
                kind: MouseKind::LeftDown,
                column: 7,
                row: 3
            }
        );
        let ev = MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Right),
            ..ev
        };
        assert_eq!(mouse(&ev).kind, MouseKind::Other);
    }
}
