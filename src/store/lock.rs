//! Who has a session open, and sessions opened read-only.
//!
//! The journal's `flock` is what keeps a second process from writing a session (see
//! [`super::journal`]); beside it, `SESSION.lock` holds the pid of the process that has it,
//! so the second one can say who. A session the user chose to open read-only is registered
//! here, and [`super::save_atomic`] refuses to write it, so the read-only copy can never
//! overwrite the work of the process that owns the file.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where the pid of the process that has `session_path` open is written.
pub(crate) fn lock_path(session_path: &Path) -> PathBuf {
    let mut name = session_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "session".into());
    name.push(".lock");
    session_path.with_file_name(name)
}

/// Record that this process has `session_path` open (best effort: the flock is what counts).
pub(crate) fn write_pid(session_path: &Path) {
    let _ = std::fs::write(lock_path(session_path), format!("{}\n", std::process::id()));
}

/// Remove the pid file if it is ours.
pub(crate) fn remove_pid(session_path: &Path) {
    let p = lock_path(session_path);
    if holder(session_path) == Some(std::process::id()) {
        let _ = std::fs::remove_file(p);
    }
}

/// The pid recorded as having `session_path` open, if any.
pub(crate) fn holder(session_path: &Path) -> Option<u32> {
    std::fs::read_to_string(lock_path(session_path))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Sessions this process opened read-only, with why.
static READ_ONLY: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());

fn key(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// From now on, refuse to save `path` (saying `why`).
pub(crate) fn mark_read_only(path: &Path, why: String) {
    if let Ok(mut m) = READ_ONLY.lock() {
        m.insert(key(path), why);
    }
}

/// Why `path` must not be written, if it was opened read-only.
pub(crate) fn read_only_reason(path: &Path) -> Option<String> {
    let m = READ_ONLY.lock().ok()?;
    if m.is_empty() {
        return None;
    }
    m.get(&key(path)).cloned()
}

/// What to say about a session another process has open.
pub(crate) fn in_use_message(session_path: &Path) -> String {
    match holder(session_path) {
        Some(pid) => format!(
            "{} is open in another promptloom (pid {pid})",
            session_path.display()
        ),
        None => format!(
            "{} is open in another promptloom process",
            session_path.display()
        ),
    }
}

/// The session is in use: on a terminal, offer to open it read-only (nothing saved);
/// returns whether the user took the offer. Without a terminal there is nobody to ask.
pub(crate) fn offer_read_only(session_path: &Path) -> bool {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    eprint!(
        "{}.\nOpen it read-only (you can look and copy, nothing is saved)? [y/N] ",
        in_use_message(session_path)
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if stdin.lock().read_line(&mut answer).is_err() {
        return false;
    }
    let yes = matches!(answer.trim(), "y" | "Y" | "yes" | "Yes");
    if yes {
        mark_read_only(
            session_path,
            format!(
                "opened read-only: {}",
                in_use_message(session_path).replace(" is open in ", " is in use by ")
            ),
        );
    }
    yes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_name_the_holder_and_are_removed_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("s.toml");
        assert_eq!(holder(&s), None);
        write_pid(&s);
        assert_eq!(holder(&s), Some(std::process::id()));
        assert!(in_use_message(&s).ends_with(&format!("(pid {})", std::process::id())));
        remove_pid(&s);
        assert!(!lock_path(&s).exists());
        // Another process's pid file is left alone.
        std::fs::write(lock_path(&s), "1\n").unwrap();
        remove_pid(&s);
        assert_eq!(holder(&s), Some(1));
    }

    #[test]
    fn read_only_sessions_are_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("s.toml");
        std::fs::write(&s, "old").unwrap();
        mark_read_only(&s, "opened read-only: test".into());
        let session = crate::store::tests::sample_session();
        let e = crate::store::save_atomic(&s, &session)
            .unwrap_err()
            .to_string();
        assert!(e.contains("opened read-only: test"), "{e}");
        assert_eq!(std::fs::read_to_string(&s).unwrap(), "old");
        // Other files still save.
        crate::store::save_atomic(&dir.path().join("t.toml"), &session).unwrap();
    }
}
