//! Session files on disk: atomic save, load, naming, export.
//!
//! A save writes a temporary file in the same directory, fsyncs it, renames it over the
//! target and fsyncs the directory, so a crash at any moment leaves either the old file or the
//! new one, never a torn mix. A file that fails to parse is reported with file, line and
//! column and is never overwritten.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod error;
pub(crate) mod export;
mod format;
pub(crate) mod journal;
pub(crate) mod lock;
pub(crate) mod logprobs;
pub(crate) mod sample;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::InputError;
use crate::state::session::{Session, FORMAT};

pub(crate) use error::SaveError;
pub(crate) use format::to_text;

/// Write `session` to `path` atomically.
pub(crate) fn save_atomic(path: &Path, session: &Session) -> Result<(), SaveError> {
    if let Some(why) = lock::read_only_reason(path) {
        return Err(SaveError::Invalid(why));
    }
    // The token probabilities go first, in their own file, while the TOML is being built:
    // a crash between the two leaves probabilities for answers the old file lacks, which a
    // load ignores.
    let (text, sidecar) = std::thread::scope(|scope| {
        let sidecar = scope.spawn(|| save_logprobs(path, &session.nodes));
        let text = to_text(session);
        let sidecar = sidecar
            .join()
            .unwrap_or_else(|_| Err(SaveError::Invalid("the logprobs writer panicked".into())));
        (text, sidecar)
    });
    sidecar?;
    let text = text?;
    lock::keep_foreign_version(path);
    write_atomic(path, text.as_bytes())?;
    lock::remember(path);
    Ok(())
}

/// Write bytes to `path` atomically (temp file in the same directory, fsync, rename, fsync dir).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SaveError> {
    let io = |source| SaveError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "session".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Write the sidecar of `session_path` with the nodes' token probabilities (or remove a stale
/// one when no node has any).
pub(crate) fn save_logprobs(
    session_path: &Path,
    nodes: &[crate::state::session::Node],
) -> Result<(), SaveError> {
    let path = logprobs::sidecar_path(session_path);
    if nodes.iter().all(|n| n.logprobs.is_empty()) {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(SaveError::Io { path, source: e })
            }
            _ => Ok(()),
        };
    }
    write_atomic(
        &path,
        &logprobs::encode(nodes.iter().map(|n| (n.id, &n.logprobs))),
    )
}

/// Read the sidecar of `session_path`, if there is one.
pub(crate) fn load_logprobs(
    session_path: &Path,
) -> Result<std::collections::BTreeMap<u64, crate::state::logprobs::TokenProbs>, InputError> {
    let path = logprobs::sidecar_path(session_path);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(std::collections::BTreeMap::new())
        }
        Err(e) => return Err(InputError::io(&path, &e)),
    };
    logprobs::decode(&bytes).map_err(|(at, why)| {
        InputError::plain(&path, format!("byte {at}: {why}")).with_hint(
            "the token probabilities are unreadable; the session itself is fine: move this file away to open it without them",
        )
    })
}

/// Read and parse a session file.
pub(crate) fn load(path: &Path) -> Result<Session, InputError> {
    // The token probabilities are read on another thread while the TOML parses.
    let (session, probs) = std::thread::scope(|scope| {
        let probs = scope.spawn(|| load_logprobs(path));
        let session = fs::read_to_string(path)
            .map_err(|e| InputError::io(path, &e))
            .and_then(|text| parse(path, &text));
        let probs = probs.join().unwrap_or_else(|_| {
            Err(InputError::plain(
                &logprobs::sidecar_path(path),
                "the reader panicked",
            ))
        });
        (session, probs)
    });
    let mut session = session?;
    logprobs::attach(&mut session.nodes, probs?);
    lock::remember(path);
    Ok(session)
}

/// Parse session text; `path` is for messages.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Session, InputError> {
    // Check the version first so a newer file gets a clear message, not a schema error. Only
    // the top-level keys before the first table header are looked at: parsing the whole file
    // twice would double the load time of a large session.
    if let Some(v) = top_level_format(text) {
        if v > i64::from(FORMAT) {
            return Err(InputError::plain(
                path,
                format!("session format {v} is newer than this promptloom understands ({FORMAT})"),
            )
            .with_hint("upgrade promptloom to open it; the file is left untouched"));
        }
    }
    let hint =
        "the session file is left untouched; fix it by hand or restore it from version control";
    if top_level_format(text) == Some(1) {
        // Format 1 (every request written out in full); saved as format 2 next time.
        return toml::from_str(text).map_err(|e| InputError::toml(path, text, &e).with_hint(hint));
    }
    format::parse(text).map_err(|e| match e {
        format::ReadError::Toml(e) => InputError::toml(path, text, &e).with_hint(hint),
        format::ReadError::Invalid { message, near } => match text.find(&near) {
            Some(at) => InputError::at(path, text, at, message),
            None => InputError::plain(path, message),
        }
        .with_hint(hint),
    })
}

/// The `format = N` key among the top-level keys (before the first `[table]`), if any.
fn top_level_format(text: &str) -> Option<i64> {
    let head_end = text
        .lines()
        .scan(0usize, |pos, line| {
            let start = *pos;
            *pos += line.len() + 1;
            Some((start, line))
        })
        .find(|(_, l)| l.trim_start().starts_with('['))
        .map_or(text.len(), |(start, _)| start);
    let head = text.get(..head_end)?;
    let table: toml::Table = head.parse().ok()?;
    table.get("format").and_then(|v| v.as_integer())
}

/// A new session path in `dir` named after the prompt file and the time, never an existing
/// file.
pub(crate) fn new_session_path(dir: &Path, stem: &str, stamp: &str) -> PathBuf {
    let base = format!("{stem}-{stamp}");
    let mut candidate = dir.join(format!("{base}.toml"));
    let mut n = 2;
    while candidate.exists() {
        candidate = dir.join(format!("{base}-{n}.toml"));
        n += 1;
    }
    candidate
}

/// Give the pages of freed memory back to the OS. A save copies the session and writes its
/// whole text (megabytes in a long session), and glibc keeps freed memory in the arena of the
/// thread that freed it (up to 8 per core), so without this the process's RSS keeps every
/// arena's largest save: the soak measured RSS at 10× the live heap, growing ~70 KB per
/// node. `malloc_trim(0)` returns the free pages of every arena; it takes about a millisecond
/// and runs after the fsync of a save, off the UI loop.
pub(crate) fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory the allocator owns.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Use at most two malloc arenas. glibc makes up to 8 per core, one per thread that
/// allocates (the tokio workers, the saver's and the retrieval's blocking threads), and a
/// session snapshot freed in one of them leaves pages `malloc_trim` can't return while the
/// growing session's live allocations sit between them. Measured with the 60-s soak (6
/// scripted panes at full speed): RSS 403 MB against a 121 MB live heap with the default,
/// 140 MB against 108 MB with two arenas. Call before the threads start.
pub(crate) fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Where new sessions go: `./sessions/` when it exists, else the data dir's sessions folder.
pub(crate) fn default_sessions_dir(data_sessions: &Path) -> PathBuf {
    let local = PathBuf::from("sessions");
    if local.is_dir() {
        local
    } else {
        data_sessions.to_path_buf()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::session::NodeStatus;

    pub(crate) use super::sample::sample_session;

    #[test]
    fn round_trip_keeps_everything_and_marks_live_streams_incomplete() {
        let s = sample_session();
        let text = to_text(&s).unwrap();
        let back = parse(Path::new("s.toml"), &text).unwrap();
        assert_eq!(back.nodes[0], s.nodes[0]);
        assert_eq!(back.ratings, s.ratings);
        assert_eq!(back.models, s.models);
        assert_eq!(back.nodes[1].status, NodeStatus::Cancelled);
        assert_eq!(back, parse(Path::new("s.toml"), &text).unwrap());
        assert_eq!(
            back.nodes[1].meta.get("incomplete").map(String::as_str),
            Some("true")
        );
        // Multi-line answers stay readable in the file.
        assert!(text.contains("The capital is London.\n"), "{text}");
    }

    #[test]
    fn a_models_lora_adapters_round_trip_with_their_hashes() {
        let mut s = sample_session();
        let mut tuned = s.models["smollm2"].clone();
        tuned.adapters = vec![
            crate::chat::AdapterIdentity {
                name: "support-v1".into(),
                file: "/ft/support-v1/adapter_model.safetensors".into(),
                sha256: Some("cd".repeat(32)),
                config_sha256: Some("ef".repeat(32)),
            },
            crate::chat::AdapterIdentity {
                name: "not-read-yet".into(),
                file: "/ft/x/adapter_model.safetensors".into(),
                ..Default::default()
            },
        ];
        s.models.insert("tuned".into(), tuned);
        let text = to_text(&s).unwrap();
        assert!(
            text.contains(&format!("sha256 = \"{}\"", "cd".repeat(32))),
            "{text}"
        );
        let back = parse(Path::new("s.toml"), &text).unwrap();
        assert_eq!(back.models, s.models);
    }

    #[test]
    fn atomic_save_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        let mut s = sample_session();
        save_atomic(&p, &s).unwrap();
        s.title = "Second".into();
        save_atomic(&p, &s).unwrap();
        assert_eq!(load(&p).unwrap().title, "Second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn broken_session_reports_position_and_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        let text = "format = 1\ntitle = \"x\"\ncreated = \"now\"\n[[node]]\nid = \"one\"\n";
        fs::write(&p, text).unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains("s.toml:5:6: invalid type"), "{err}");
        assert_eq!(fs::read_to_string(&p).unwrap(), text);
        // The same mistake in a format-2 file.
        let text = "format = 2\ntitle = \"x\"\ncreated = \"now\"\n[[node]]\nid = \"one\"\n";
        let err = parse(&p, text).unwrap_err().to_string();
        assert!(err.contains("s.toml:5:6: invalid type"), "{err}");
    }

    #[test]
    fn newer_format_is_refused_clearly() {
        let err = parse(
            Path::new("s.toml"),
            "format = 9\ntitle = \"x\"\ncreated = \"n\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("session format 9 is newer"), "{err}");
    }

    #[test]
    fn newer_format_is_refused_even_when_its_tables_do_not_parse_as_ours() {
        let err = parse(
            Path::new("s.toml"),
            "format = 3\ntitle = \"x\"\ncreated = \"n\"\n[[node]]\nid = \"new-style\"\nshape = 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("session format 3 is newer"), "{err}");
        assert_eq!(top_level_format("title = \"x\"\n[a]\nformat = 5\n"), None);
        assert_eq!(top_level_format("format = 1\n"), Some(1));
    }

    #[test]
    fn new_paths_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let a = new_session_path(dir.path(), "capitals", "20261127-050000");
        fs::write(&a, "x").unwrap();
        let b = new_session_path(dir.path(), "capitals", "20261127-050000");
        assert_ne!(a, b);
        assert!(b
            .to_string_lossy()
            .ends_with("capitals-20261127-050000-2.toml"));
    }
}
