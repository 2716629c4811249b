//! Keys and mouse events as the app sees them. These are our own types, so the model and
//! `update` never depend on the terminal library: the driver converts the terminal's events
//! (`app::driver::input`), and tests and benchmarks build these directly.

use std::fmt;

/// A key, without its modifiers. The named keys are declared in the alphabetical order of
/// their keymap names, so bindings list in a stable, readable order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum KeyCode {
    Char(char),
    F(u8),
    Backspace,
    BackTab,
    Delete,
    Down,
    End,
    Enter,
    Esc,
    Home,
    Insert,
    Left,
    PageDown,
    PageUp,
    Right,
    Tab,
    Up,
}

/// Modifier keys held with a key, as a small set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Mods(u8);

impl Mods {
    pub const NONE: Mods = Mods(0);
    pub const SHIFT: Mods = Mods(1);
    pub const CTRL: Mods = Mods(2);
    pub const ALT: Mods = Mods(4);

    pub const fn contains(self, other: Mods) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Mods) -> Mods {
        Mods(self.0 | other.0)
    }

    pub const fn without(self, other: Mods) -> Mods {
        Mods(self.0 & !other.0)
    }
}

impl std::ops::BitOr for Mods {
    type Output = Mods;
    fn bitor(self, rhs: Mods) -> Mods {
        self.union(rhs)
    }
}

/// A key press: the key and the modifiers held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub code: KeyCode,
    pub mods: Mods,
}

impl Key {
    pub const fn new(code: KeyCode, mods: Mods) -> Key {
        Key { code, mods }
    }

    /// A key with no modifiers.
    pub const fn plain(code: KeyCode) -> Key {
        Key::new(code, Mods::NONE)
    }

    /// A typed character as a terminal reports it: uppercase letters with Shift held.
    pub fn char(c: char) -> Key {
        let mods = if c.is_uppercase() {
            Mods::SHIFT
        } else {
            Mods::NONE
        };
        Key::new(KeyCode::Char(c), mods)
    }

    /// Ctrl held with a character.
    #[cfg(test)]
    pub const fn ctrl(c: char) -> Key {
        Key::new(KeyCode::Char(c), Mods::CTRL)
    }

    pub fn ctrl_held(self) -> bool {
        self.mods.contains(Mods::CTRL)
    }

    pub fn alt_held(self) -> bool {
        self.mods.contains(Mods::ALT)
    }

    /// The form keymaps bind. Shift is dropped: a shifted character arrives as the character
    /// it types (`G`, `?`), and Shift-Tab as `BackTab`; Ctrl with a letter is the lowercase
    /// letter, whatever Caps Lock says.
    pub fn binding(self) -> Key {
        let mods = self.mods.without(Mods::SHIFT);
        let code = match self.code {
            KeyCode::Char(c) if mods.contains(Mods::CTRL) => KeyCode::Char(c.to_ascii_lowercase()),
            c => c,
        };
        Key { code, mods }
    }

    /// A character to insert as text: no Ctrl or Alt held, not a control character.
    pub fn text(self) -> Option<char> {
        match self.code {
            KeyCode::Char(c) if !self.ctrl_held() && !self.alt_held() && !c.is_control() => Some(c),
            _ => None,
        }
    }
}

/// Keys print as the footer and the help show them: `C-c`, `M-x`, `PgDn`, `S-Tab`, `space`.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl_held() {
            f.write_str("C-")?;
        }
        if self.alt_held() {
            f.write_str("M-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "F{n}"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::BackTab => f.write_str("S-Tab"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::Up => f.write_str("Up"),
            KeyCode::Down => f.write_str("Down"),
            KeyCode::Left => f.write_str("Left"),
            KeyCode::Right => f.write_str("Right"),
            KeyCode::Backspace => f.write_str("Backspace"),
            KeyCode::Delete => f.write_str("Delete"),
            KeyCode::Insert => f.write_str("Insert"),
        }
    }
}

/// A sequence of keys bound together (`g g`, `space c`); most bindings are one key long.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct KeySeq(pub Vec<Key>);

impl KeySeq {
    pub fn keys(&self) -> &[Key] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `prefix` is a strict prefix of this sequence.
    pub fn extends(&self, prefix: &[Key]) -> bool {
        self.0.len() > prefix.len() && self.0.starts_with(prefix)
    }
}

impl fmt::Display for KeySeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}")?;
        }
        Ok(())
    }
}

/// The start of a key sequence, waiting for its next key. `id` tells a late timeout from the
/// one this sequence armed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingKeys {
    pub keys: Vec<Key>,
    pub id: u64,
    /// The layer whose mode the sequence is in, counted from the bottom (0: the panes, 1:
    /// the first layer...): the keymap of that layer resolves the rest.
    pub depth: usize,
}

/// What the mouse did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MouseKind {
    LeftDown,
    ScrollUp,
    ScrollDown,
    /// Anything the app doesn't use (other buttons, drags, moves).
    Other,
}

/// A mouse event at a cell of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mouse {
    pub kind: MouseKind,
    pub column: u16,
    pub row: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_drop_shift_and_fold_ctrl_letters() {
        assert_eq!(
            Key::char('G').binding(),
            Key::plain(KeyCode::Char('G')),
            "a shifted letter binds as the letter it types"
        );
        assert_eq!(
            Key::new(KeyCode::Char('C'), Mods::CTRL | Mods::SHIFT).binding(),
            Key::ctrl('c')
        );
        assert_eq!(
            Key::new(KeyCode::BackTab, Mods::SHIFT).binding(),
            Key::plain(KeyCode::BackTab)
        );
        assert_eq!(
            Key::new(KeyCode::Char('x'), Mods::ALT).binding().mods,
            Mods::ALT
        );
    }

    #[test]
    fn text_is_only_unmodified_printable_characters() {
        assert_eq!(Key::char('Q').text(), Some('Q'));
        assert_eq!(Key::ctrl('u').text(), None);
        assert_eq!(Key::new(KeyCode::Char('x'), Mods::ALT).text(), None);
        assert_eq!(Key::plain(KeyCode::Enter).text(), None);
    }

    #[test]
    fn keys_and_sequences_print_compactly() {
        assert_eq!(Key::ctrl('c').to_string(), "C-c");
        assert_eq!(Key::plain(KeyCode::PageDown).to_string(), "PgDn");
        assert_eq!(
            KeySeq(vec![Key::char(' '), Key::char('c')]).to_string(),
            "space c"
        );
        let s = KeySeq(vec![Key::char('g'), Key::char('g')]);
        assert!(s.extends(&[Key::char('g')]));
        assert!(!s.extends(&[Key::char('g'), Key::char('g')]));
    }
}
