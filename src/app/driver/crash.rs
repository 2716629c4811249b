//! After a panic in the event loop: save the session, say so, let the panic go on.
//!
//! The driver catches a panic of its loop (an update, an effect, a view), saves the session as
//! it stands (answers still streaming are kept as incomplete) and re-raises the panic; the
//! terminal was already restored by ratatui's panic hook, and `TerminalGuard` restores it
//! again on unwinding.
//!
//! `PROMPTLOOM_PANIC_AFTER_FRAMES=N` makes the loop panic after drawing N frames. It exists for
//! one test (`tests/terminal_hygiene.rs`), which needs a real panic in the real binary to
//! check that the terminal comes back and the session is saved; it does nothing unless set,
//! and says what it is in the panic message.

/// `PROMPTLOOM_PANIC_AFTER_FRAMES`, read once when the loop starts.
pub(crate) fn panic_after_frames() -> Option<u64> {
    std::env::var("PROMPTLOOM_PANIC_AFTER_FRAMES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

/// Panic (on purpose) once `frames` reaches `after`.
pub(crate) fn maybe_panic(after: Option<u64>, frames: u64) {
    if let Some(n) = after.filter(|n| frames >= *n) {
        panic!("PROMPTLOOM_PANIC_AFTER_FRAMES={n}: deliberate panic after {frames} frames");
    }
}

/// What the panicking process says about its session (the terminal is already restored).
pub(crate) fn report_saved(path: &std::path::Path, saved: &Result<(), String>) {
    match saved {
        Ok(()) => eprintln!(
            "promptloom crashed; {}",
            crate::store::lock::quit_message(path)
        ),
        Err(e) => eprintln!(
            "promptloom crashed and the session could not be saved: {e} (ratings are kept in its .journal file)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_panic_fires_only_when_asked_and_names_itself() {
        maybe_panic(None, 1_000_000);
        maybe_panic(Some(5), 4);
        let p = std::panic::catch_unwind(|| maybe_panic(Some(5), 5)).unwrap_err();
        let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.starts_with("PROMPTLOOM_PANIC_AFTER_FRAMES=5"), "{msg}");
    }
}
