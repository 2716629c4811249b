//! Ctrl-Z: the terminal is in raw mode, so the kernel does not turn Ctrl-Z into SIGTSTP for
//! us; the driver gives the terminal back, stops the process the way the shell expects, and
//! takes the terminal again (and redraws everything) when `fg` continues it.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Whether `key` is Ctrl-Z.
pub(crate) fn is_suspend_key(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL)
        && matches!(key.code, KeyCode::Char('z') | KeyCode::Char('Z'))
}

/// Stop this process with SIGTSTP (default action) until SIGCONT. Under a shell with job
/// control that is Ctrl-Z as usual; with nobody to `fg` it (an orphaned process group, e.g.
/// started straight from tmux) the kernel discards the signal and this returns at once.
pub(crate) fn stop_until_continued() {
    #[cfg(unix)]
    // SAFETY: raise(3) with a standard signal; no memory is passed.
    unsafe {
        libc::raise(libc::SIGTSTP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_z_suspends_plain_z_does_not() {
        assert!(is_suspend_key(&KeyEvent::new(
            KeyCode::Char('z'),
            KeyModifiers::CONTROL
        )));
        assert!(!is_suspend_key(&KeyEvent::new(
            KeyCode::Char('z'),
            KeyModifiers::NONE
        )));
    }
}
