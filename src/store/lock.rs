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

/// What quitting says about `session_path`: where it was saved, or, for a session opened
/// read-only, that nothing was (saves were refused, so "saved to" would be a lie).
pub(crate) fn quit_message(session_path: &Path) -> String {
    match read_only_reason(session_path) {
        Some(_) => format!(
            "read-only: nothing saved ({} belongs to the other promptloom)",
            session_path.display()
        ),
        None => format!("session saved to {}", session_path.display()),
    }
}

/// A file's identity: device, inode, length and modification time.
type Identity = (u64, u64, u64, i64, i64);

fn identity(path: &Path) -> Option<Identity> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some((m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
    }
    #[cfg(not(unix))]
    {
        let m = std::fs::metadata(path).ok()?;
        Some((0, 0, m.len(), 0, 0))
    }
}

/// Session files as this process last read or wrote them.
static KNOWN: Mutex<BTreeMap<PathBuf, Identity>> = Mutex::new(BTreeMap::new());

/// Remember `path` as it is now (after loading or saving it).
pub(crate) fn remember(path: &Path) {
    if let (Some(id), Ok(mut m)) = (identity(path), KNOWN.lock()) {
        m.insert(key(path), id);
    }
}

/// Before overwriting `path`: if someone else replaced or changed it since this process read
/// or wrote it, move their version aside (`NAME.replaced-STAMP`) so it is not lost, and say
/// where. A file that was deleted is simply written again.
pub(crate) fn keep_foreign_version(path: &Path) -> Option<PathBuf> {
    let now = identity(path)?;
    let known = KNOWN.lock().ok()?.get(&key(path)).copied()?;
    if now == known {
        return None;
    }
    let mut name = path.file_name()?.to_os_string();
    name.push(format!(
        ".replaced-{}",
        chrono::Local::now().format("%Y%m%d-%H%M%S%.3f")
    ));
    let aside = path.with_file_name(name);
    std::fs::rename(path, &aside).ok()?;
    tracing::warn!(
        "{} was changed by another program since promptloom read it; that version is kept as {}",
        path.display(),
        aside.display()
    );
    Some(aside)
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
    fn a_session_file_replaced_under_us_is_kept_aside_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        let session = crate::store::tests::sample_session();
        crate::store::save_atomic(&p, &session).unwrap();
        // Our own saves replace our own file quietly.
        crate::store::save_atomic(&p, &session).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Someone else replaces it (a new file renamed over it, as editors and git do).
        let theirs = dir.path().join("theirs");
        std::fs::write(&theirs, "title = \"theirs\"\n").unwrap();
        std::fs::rename(&theirs, &p).unwrap();
        crate::store::save_atomic(&p, &session).unwrap();
        let aside: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|x| x.to_string_lossy().contains("s.toml.replaced-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            std::fs::read_to_string(&aside[0]).unwrap(),
            "title = \"theirs\"\n"
        );
        assert_eq!(crate::store::load(&p).unwrap().title, session.title);
        // Deleted under us: written again, nothing to keep.
        std::fs::remove_file(&p).unwrap();
        crate::store::save_atomic(&p, &session).unwrap();
        assert!(p.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
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
        // Quitting says so instead of claiming a save.
        assert!(quit_message(&s).starts_with("read-only: nothing saved ("));
        assert_eq!(
            quit_message(&dir.path().join("t.toml")),
            format!("session saved to {}", dir.path().join("t.toml").display())
        );
    }
}
