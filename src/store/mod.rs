//! Session files on disk: atomic save, load, naming, export.
//!
//! A save writes a temporary file in the same directory, fsyncs it, renames it over the
//! target and fsyncs the directory, so a crash at any moment leaves either the old file or the
//! new one, never a torn mix. A file that fails to parse is reported with file, line and
//! column and is never overwritten.

pub(crate) mod export;
pub(crate) mod journal;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::InputError;
use crate::state::session::{Session, FORMAT};

/// Errors saving a session.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaveError {
    #[error("cannot serialise session: {0}")]
    Serialise(#[from] toml::ser::Error),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Serialise a session to its TOML text.
///
/// Large sessions are written in parts on several threads: the header (everything but
/// nodes, ratings and votes), the `[[node]]` tables in chunks, then ratings and votes. The
/// parts concatenate to the same document a single pass writes.
pub(crate) fn to_text(session: &Session) -> Result<String, SaveError> {
    let s = session.for_saving();
    let head = Session {
        nodes: Vec::new(),
        ratings: Vec::new(),
        votes: Vec::new(),
        ..s.clone()
    };
    let mut out = format!(
        "# promptloom session (format {FORMAT}). Human-readable and diffable; edit with care.\n{}",
        toml::to_string_pretty(&head)?
    );
    let chunks = chunk_count(s.nodes.len());
    let size = s.nodes.len().div_ceil(chunks).max(1);
    let parts: Vec<Result<String, toml::ser::Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = s
            .nodes
            .chunks(size)
            .map(|c| scope.spawn(move || toml::to_string_pretty(&NodesOut { node: c })))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Ok(String::new())))
            .collect()
    });
    for part in parts {
        push_part(&mut out, &part?);
    }
    push_part(
        &mut out,
        &toml::to_string_pretty(&TailOut {
            rating: &s.ratings,
            vote: &s.votes,
        })?,
    );
    Ok(out)
}

/// Append a serialised part, separated from what came before by a blank line.
fn push_part(out: &mut String, part: &str) {
    if part.trim().is_empty() {
        return;
    }
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(part);
}

/// Threads to use for `nodes` nodes: one below 2,000 nodes, else one per core (at most 8).
fn chunk_count(nodes: usize) -> usize {
    if nodes < 2_000 {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

#[derive(serde::Serialize)]
struct NodesOut<'a> {
    node: &'a [crate::state::session::Node],
}

#[derive(serde::Serialize)]
struct TailOut<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    rating: &'a [crate::state::session::Rating],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    vote: &'a [crate::state::session::Vote],
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NodesIn {
    #[serde(default)]
    node: Vec<crate::state::session::Node>,
}

/// Write `session` to `path` atomically.
pub(crate) fn save_atomic(path: &Path, session: &Session) -> Result<(), SaveError> {
    let text = to_text(session)?;
    write_atomic(path, text.as_bytes())
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

/// Read and parse a session file.
pub(crate) fn load(path: &Path) -> Result<Session, InputError> {
    let text = fs::read_to_string(path).map_err(|e| InputError::io(path, &e))?;
    parse(path, &text)
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
    if let Some(session) = parse_in_parts(text) {
        return Ok(session);
    }
    toml::from_str(text).map_err(|e| {
        InputError::toml(path, text, &e).with_hint(
            "the session file is left untouched; fix it by hand or restore it from version control",
        )
    })
}

/// Parse a large session on several threads: the `[[node]]` tables in chunks, the rest (the
/// header before the first node, ratings and votes after the last) as one document.
///
/// The split is at lines that are exactly `[[node]]`, `[[rating]]` or `[[vote]]`. Such a line
/// can also sit inside a multi-line string (an answer quoting TOML); a split there leaves the
/// part before it with an unterminated string, which fails to parse, and then `None` sends
/// the caller to the ordinary single-pass parse, which also gives exact error positions.
fn parse_in_parts(text: &str) -> Option<Session> {
    if text.len() < 1 << 20 {
        return None;
    }
    let starts: Vec<usize> = text
        .match_indices("\n[[node]]\n")
        .map(|(i, _)| i + 1)
        .collect();
    let first = *starts.first()?;
    let last = *starts.last()?;
    let tail = ["\n[[rating]]\n", "\n[[vote]]\n"]
        .iter()
        .filter_map(|pat| text.get(last..)?.find(pat).map(|i| last + i + 1))
        .min()
        .unwrap_or(text.len());
    let chunks = chunk_count(starts.len());
    let per = starts.len().div_ceil(chunks).max(1);
    let mut bounds: Vec<(usize, usize)> = starts.chunks(per).map(|c| (c[0], 0)).collect();
    for i in 0..bounds.len() {
        bounds[i].1 = bounds.get(i + 1).map_or(tail, |b| b.0);
    }
    let rest = format!("{}\n{}", text.get(..first)?, text.get(tail..)?);
    std::thread::scope(|scope| {
        let rest = scope.spawn(|| toml::from_str::<Session>(&rest).ok());
        let parts: Vec<_> = bounds
            .iter()
            .map(|&(a, b)| {
                let part = text.get(a..b);
                scope.spawn(move || part.and_then(|p| toml::from_str::<NodesIn>(p).ok()))
            })
            .collect();
        let mut session = rest.join().ok()??;
        if !session.nodes.is_empty() {
            return None;
        }
        for p in parts {
            session.nodes.extend(p.join().ok()??.node);
        }
        Some(session)
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
mod tests {
    use super::*;
    use crate::eval::expect::CheckResult;
    use crate::llm::{ChatMessage, ChatRequest, FinishReason, ModelIdentity, Role, Sampling};
    use crate::state::session::{Node, NodeKind, NodeStatus, Rating};

    pub(crate) fn sample_session() -> Session {
        let mut s = Session::new(
            "Capitals",
            "2026-11-27T05:00:00Z".into(),
            Some("prompts/capitals.toml".into()),
        );
        s.models.insert(
            "smollm2".into(),
            ModelIdentity {
                backend: "local".into(),
                gguf_file: Some("SmolLM2.gguf".into()),
                gguf_sha256: Some("ab".repeat(32)),
                ..Default::default()
            },
        );
        let req = ChatRequest {
            messages: vec![
                ChatMessage::new(Role::System, "Be brief."),
                ChatMessage::new(Role::User, "What is the capital of England?"),
            ],
            sampling: Sampling {
                temperature: Some(0.7),
                max_tokens: Some(64),
                stop: vec!["\n\n".into()],
                ..Default::default()
            },
        };
        let mut n = Node::start(
            1,
            None,
            NodeKind::Answer,
            "plain",
            "England",
            "smollm2",
            req.clone(),
            "2026-11-27T05:00:01Z".into(),
        );
        n.text =
            "The capital is London.\n\nIt has \"quotes\" and a tab\tand ''' and \"\"\" too.".into();
        n.status = NodeStatus::Done;
        n.finish_reason = Some(FinishReason::Stop);
        n.tokens_out = 12;
        n.ttft_ms = Some(80);
        n.tok_per_s = Some(33.5);
        n.checks = vec![CheckResult {
            kind: "any".into(),
            pass: true,
            detail: "found \"London\"".into(),
        }];
        s.nodes.push(n);
        let mut c = Node::start(
            2,
            Some(1),
            NodeKind::Critique,
            "plain",
            "England",
            "smollm2",
            req,
            "2026-11-27T05:00:02Z".into(),
        );
        c.text = "Fine.".into();
        c.status = NodeStatus::Streaming;
        s.nodes.push(c);
        s.ratings.push(Rating {
            node: 1,
            stars: Some(4),
            thumb: Some(1),
            note: Some("good\nshort".into()),
            rater: "ann".into(),
            at: "2026-11-27T05:01:00Z".into(),
            seq: None,
        });
        s
    }

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

    /// Big sessions are written and read in parts on several threads; the result must be
    /// exactly what a single pass gives, even when answers quote the headers the split uses.
    #[test]
    fn large_sessions_round_trip_through_the_parallel_path() {
        let mut s = crate::bench::session::synthetic(3_000);
        let text = to_text(&s).unwrap();
        let single: Session = toml::from_str(&text).unwrap();
        assert_eq!(single, s.for_saving());
        let parts = parse_in_parts(&text).expect("a 3,000-node session is parsed in parts");
        assert_eq!(parts, single);
        assert_eq!(parse(Path::new("s.toml"), &text).unwrap(), single);

        // An answer that contains the split markers on their own lines.
        s.nodes[1500].text = "toml:\n[[node]]\nid = 1\n[[rating]]\n[[vote]]\nend".into();
        s.nodes[2999].text = "[[rating]]\nnot a rating\n".into();
        let text = to_text(&s).unwrap();
        assert!(
            text.contains("\n[[node]]\nid = 1\n[[rating]]"),
            "the marker is written raw"
        );
        let back = parse(Path::new("s.toml"), &text).unwrap();
        assert_eq!(back, s.for_saving());
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
            "format = 2\ntitle = \"x\"\ncreated = \"n\"\n[[node]]\nid = \"new-style\"\nshape = 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("session format 2 is newer"), "{err}");
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
