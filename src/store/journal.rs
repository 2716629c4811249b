//! Ratings and votes that survive SIGKILL: an append-only journal beside the session file.
//!
//! Rewriting a large session file for every keypress is too slow to do before the next key
//! is handled, so each rating or vote is appended as one JSON line to `SESSION.journal`
//! (for `s.toml`, `s.toml.journal`) and fsynced before [`SessionStore::append_rating`]
//! returns. Opening a session replays the journal over the file; [`SessionStore::compact`]
//! folds it into the session file with an atomic save and then empties it.
//!
//! Crash windows:
//! - a torn last line (killed mid-write) was never acknowledged: it is ignored and cut off on
//!   open, so the next append starts on a clean line; a bad line *before* the last one is
//!   corruption and is reported with its line number, never silently dropped;
//! - killed after the atomic save but before the journal is emptied: every record carries a
//!   sequence number, every rating and vote in the session file keeps the number of the last
//!   change folded into it, and replay skips records at or below the file's largest number,
//!   so nothing is applied twice;
//! - killed during the save: the old file and the full journal are still there.
//!
//! One process at a time: the journal is locked (`flock`) while a store is open.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::InputError;
use crate::state::session::{Rating, Session, Vote, VOTE_OUTCOMES};
use crate::store::SaveError;

/// Errors opening or writing a rating journal.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Save(#[from] SaveError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}; close it there first", crate::store::lock::in_use_message(.0))]
    Locked(PathBuf),
    #[error("{0}")]
    Invalid(String),
}

/// A change to one rater's rating of one node. `None` leaves a field as it is;
/// `Some(0)` stars or thumb and `Some("")` note clear it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RatingEdit {
    pub node: u64,
    pub stars: Option<u8>,
    /// +1 up, -1 down, 0 clear.
    pub thumb: Option<i8>,
    pub note: Option<String>,
}

impl RatingEdit {
    fn validate(&self) -> Result<(), StoreError> {
        if let Some(s) = self.stars {
            if s > 5 {
                return Err(StoreError::Invalid(format!(
                    "stars must be 0 (clear) to 5, not {s}"
                )));
            }
        }
        if let Some(t) = self.thumb {
            if !(-1..=1).contains(&t) {
                return Err(StoreError::Invalid(format!(
                    "thumb must be -1, 0 or +1, not {t}"
                )));
            }
        }
        if self.stars.is_none() && self.thumb.is_none() && self.note.is_none() {
            return Err(StoreError::Invalid(
                "a rating needs stars, a thumb or a note".into(),
            ));
        }
        Ok(())
    }
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Rating(RatingRecord),
    Vote(VoteRecord),
}

impl Record {
    fn seq(&self) -> u64 {
        match self {
            Record::Rating(r) => r.seq,
            Record::Vote(v) => v.seq,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingRecord {
    seq: u64,
    node: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stars: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thumb: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    rater: String,
    at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteRecord {
    seq: u64,
    left: u64,
    right: u64,
    outcome: String,
    rater: String,
    at: String,
}

/// Where the journal of `session_path` lives.
pub(crate) fn journal_path(session_path: &Path) -> PathBuf {
    let mut name = session_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "session".into());
    name.push(".journal");
    session_path.with_file_name(name)
}

/// The largest sequence number folded into `session`: journal records at or below it are
/// already in the file.
pub(crate) fn watermark(session: &Session) -> u64 {
    let r = session.ratings.iter().filter_map(|r| r.seq).max();
    let v = session.votes.iter().filter_map(|v| v.seq).max();
    r.max(v).unwrap_or(0)
}

/// Apply one rating change: the same rater's later rating of the same node replaces only the
/// fields it sets.
fn apply_rating(session: &mut Session, r: &RatingRecord) {
    let idx = match session
        .ratings
        .iter()
        .rposition(|x| x.node == r.node && x.rater == r.rater)
    {
        Some(i) => i,
        None => {
            session.ratings.push(Rating {
                node: r.node,
                stars: None,
                thumb: None,
                note: None,
                rater: r.rater.clone(),
                at: r.at.clone(),
                seq: None,
            });
            session.ratings.len() - 1
        }
    };
    let target = &mut session.ratings[idx];
    if let Some(s) = r.stars {
        target.stars = (s != 0).then_some(s);
    }
    if let Some(t) = r.thumb {
        target.thumb = (t != 0).then_some(t);
    }
    if let Some(n) = &r.note {
        target.note = (!n.trim().is_empty()).then(|| n.clone());
    }
    target.at = r.at.clone();
    target.seq = Some(r.seq);
}

fn apply_vote(session: &mut Session, v: &VoteRecord) {
    session.votes.push(Vote {
        left: v.left,
        right: v.right,
        outcome: v.outcome.clone(),
        rater: v.rater.clone(),
        at: v.at.clone(),
        seq: Some(v.seq),
    });
}

fn apply(session: &mut Session, record: &Record) {
    match record {
        Record::Rating(r) => apply_rating(session, r),
        Record::Vote(v) => apply_vote(session, v),
    }
}

/// A parsed journal: its records and the byte length of the complete lines.
pub(crate) struct Parsed {
    records: Vec<Record>,
    good_len: u64,
}

/// Parse journal bytes. A last line without its newline was torn by a crash and is dropped;
/// any other bad line is an error naming the line.
pub(crate) fn parse_journal(path: &Path, bytes: &[u8]) -> Result<Parsed, InputError> {
    let mut records = Vec::new();
    let mut start = 0usize;
    let mut line_no = 0usize;
    while let Some(rel) = bytes[start..].iter().position(|&b| b == b'\n') {
        line_no += 1;
        let line = &bytes[start..start + rel];
        let line_start = start;
        start += rel + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = std::str::from_utf8(line).map_err(|_| {
            InputError::plain(path, format!("line {line_no}: not UTF-8")).with_hint(corrupt_hint())
        })?;
        let record: Record = serde_json::from_str(text).map_err(|e| {
            let whole = String::from_utf8_lossy(bytes);
            InputError::at(path, &whole, line_start + e.column().saturating_sub(1), {
                format!("bad journal record: {e}")
            })
            .with_hint(corrupt_hint())
        })?;
        records.push(record);
    }
    Ok(Parsed {
        records,
        good_len: start as u64,
    })
}

fn corrupt_hint() -> &'static str {
    "the journal is left untouched; every line before this one is intact, fix or remove the \
     bad line by hand"
}

fn read_journal(path: &Path) -> Result<Parsed, InputError> {
    match fs::read(path) {
        Ok(bytes) => parse_journal(path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Parsed {
            records: Vec::new(),
            good_len: 0,
        }),
        Err(e) => Err(InputError::io(path, &e)),
    }
}

/// Replay `records` over `session`, skipping what the file already holds. Returns how many
/// were applied.
fn replay(session: &mut Session, records: &[Record]) -> usize {
    let mark = watermark(session);
    let mut applied = 0;
    for r in records.iter().filter(|r| r.seq() > mark) {
        apply(session, r);
        applied += 1;
    }
    applied
}

/// Read a session with its journal replayed, without locking or repairing anything (for
/// export and other readers).
pub(crate) fn load_with_journal(path: &Path) -> Result<Session, InputError> {
    let mut session = crate::store::load(path)?;
    let parsed = read_journal(&journal_path(path))?;
    replay(&mut session, &parsed.records);
    Ok(session)
}

/// An open session file and its journal: the one place ratings and votes are written.
#[derive(Debug)]
pub(crate) struct SessionStore {
    session_path: PathBuf,
    journal_path: PathBuf,
    journal: File,
    next_seq: u64,
    /// Records in the journal that the session file does not hold yet.
    pending: usize,
}

impl SessionStore {
    /// Open `path`, replay its journal and lock it for this process.
    pub fn open(path: &Path) -> Result<(Session, SessionStore), StoreError> {
        let mut session = crate::store::load(path)?;
        let jpath = journal_path(path);
        let io = |source| StoreError::Io {
            path: jpath.clone(),
            source,
        };
        let existed = jpath.exists();
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&jpath)
            .map_err(io)?;
        lock(&journal, &jpath).map_err(|e| match e {
            StoreError::Locked(_) => StoreError::Locked(path.to_path_buf()),
            e => e,
        })?;
        crate::store::lock::write_pid(path);
        if !existed {
            // Make the new file's directory entry durable too, not just its contents.
            if let Some(dir) = jpath.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
        }
        let parsed = read_journal(&jpath)?;
        // Cut off a torn tail so the next record starts on its own line.
        let len = journal.metadata().map_err(io)?.len();
        if len != parsed.good_len {
            journal.set_len(parsed.good_len).map_err(io)?;
            journal.sync_all().map_err(io)?;
        }
        let pending = replay(&mut session, &parsed.records);
        let last_in_journal = parsed.records.iter().map(Record::seq).max().unwrap_or(0);
        let next_seq = watermark(&session).max(last_in_journal) + 1;
        Ok((
            session,
            SessionStore {
                session_path: path.to_path_buf(),
                journal_path: jpath,
                journal,
                next_seq,
                pending,
            },
        ))
    }

    /// Records saved only in the journal so far (a hint for when to [`compact`](Self::compact)).
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Durably record a rating change, then apply it to `session`. Returns its sequence
    /// number. When this returns `Ok` the rating survives SIGKILL.
    pub fn append_rating(
        &mut self,
        session: &mut Session,
        edit: &RatingEdit,
        rater: &str,
        at: &str,
    ) -> Result<u64, StoreError> {
        edit.validate()?;
        let record = Record::Rating(RatingRecord {
            seq: self.next_seq,
            node: edit.node,
            stars: edit.stars,
            thumb: edit.thumb,
            note: edit.note.clone(),
            rater: rater.to_string(),
            at: at.to_string(),
        });
        self.append(session, record)
    }

    /// Durably record a blind vote (`outcome`: `left`, `right`, `tie` or `both_bad`), then
    /// apply it to `session`.
    pub fn append_vote(
        &mut self,
        session: &mut Session,
        left: u64,
        right: u64,
        outcome: &str,
        rater: &str,
        at: &str,
    ) -> Result<u64, StoreError> {
        if !VOTE_OUTCOMES.contains(&outcome) {
            return Err(StoreError::Invalid(format!(
                "outcome must be one of {}, not {outcome:?}",
                VOTE_OUTCOMES.join(", ")
            )));
        }
        if left == right {
            return Err(StoreError::Invalid(format!(
                "a vote needs two different nodes, got {left} twice"
            )));
        }
        let record = Record::Vote(VoteRecord {
            seq: self.next_seq,
            left,
            right,
            outcome: outcome.to_string(),
            rater: rater.to_string(),
            at: at.to_string(),
        });
        self.append(session, record)
    }

    fn append(&mut self, session: &mut Session, record: Record) -> Result<u64, StoreError> {
        let mut line = serde_json::to_string(&record)
            .map_err(|e| StoreError::Invalid(format!("cannot serialise record: {e}")))?;
        line.push('\n');
        let io = |source| StoreError::Io {
            path: self.journal_path.clone(),
            source,
        };
        // One write call per record: a crash tears at most this line, which replay drops.
        // A write that fails part-way (a full disk) is cut off again at once, so the next
        // record does not start in the middle of a torn line (which would make the journal
        // unreadable from there on).
        let before = self.journal.metadata().map_err(io)?.len();
        if let Err(e) = self
            .journal
            .write_all(line.as_bytes())
            .and_then(|()| self.journal.sync_data())
        {
            let _ = self.journal.set_len(before);
            let _ = self.journal.sync_data();
            return Err(io(e));
        }
        apply(session, &record);
        let seq = record.seq();
        self.next_seq = seq + 1;
        self.pending += 1;
        Ok(seq)
    }

    /// Fold the journal into the session file: atomic save of `session` (which must be the
    /// session this store's appends were applied to), then empty the journal.
    pub fn compact(&mut self, session: &Session) -> Result<(), StoreError> {
        let last = self.next_seq.saturating_sub(1);
        if self.pending > 0 && watermark(session) < last {
            return Err(StoreError::Invalid(format!(
                "refusing to compact: the session lacks journal record {last}"
            )));
        }
        crate::store::save_atomic(&self.session_path, session)?;
        let io = |source| StoreError::Io {
            path: self.journal_path.clone(),
            source,
        };
        self.journal.set_len(0).map_err(io)?;
        self.journal.sync_all().map_err(io)?;
        self.pending = 0;
        Ok(())
    }
}

impl Drop for SessionStore {
    fn drop(&mut self) {
        crate::store::lock::remove_pid(&self.session_path);
    }
}

/// Lock the journal for this process. A conflict is retried briefly: a child forked by
/// another thread holds a copy of our descriptor (and so the lock) until it execs.
#[cfg(unix)]
fn lock(file: &File, path: &Path) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;
    for attempt in 0..20 {
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::WouldBlock {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: err,
            });
        }
        if attempt < 19 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    Err(StoreError::Locked(path.to_path_buf()))
}

#[cfg(not(unix))]
fn lock(_file: &File, _path: &Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::sample_session;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        let mut s = sample_session();
        s.ratings.clear();
        crate::store::save_atomic(&p, &s).unwrap();
        (dir, p)
    }

    fn stars(node: u64, n: u8) -> RatingEdit {
        RatingEdit {
            node,
            stars: Some(n),
            ..Default::default()
        }
    }

    #[test]
    fn appended_ratings_replay_after_reopen_without_compaction() {
        let (_d, p) = setup();
        {
            let (mut s, mut st) = SessionStore::open(&p).unwrap();
            assert_eq!(
                st.append_rating(&mut s, &stars(1, 4), "ann", "t1").unwrap(),
                1
            );
            let seq = st.append_vote(&mut s, 1, 2, "tie", "ann", "t2").unwrap();
            assert_eq!(seq, 2);
        }
        let (s, st) = SessionStore::open(&p).unwrap();
        assert_eq!(st.pending(), 2);
        assert_eq!(s.ratings.len(), 1);
        assert_eq!(s.ratings[0].stars, Some(4));
        assert_eq!(s.votes.len(), 1);
        assert_eq!(s.votes[0].outcome, "tie");
        // The plain file does not have them yet; the journal-aware loader does.
        assert!(crate::store::load(&p).unwrap().ratings.is_empty());
        assert_eq!(load_with_journal(&p).unwrap().ratings.len(), 1);
    }

    #[test]
    fn fields_are_independent_and_later_edits_replace() {
        let (_d, p) = setup();
        let (mut s, mut st) = SessionStore::open(&p).unwrap();
        st.append_rating(&mut s, &stars(1, 3), "ann", "t1").unwrap();
        let note = RatingEdit {
            node: 1,
            note: Some("too long".into()),
            ..Default::default()
        };
        st.append_rating(&mut s, &note, "ann", "t2").unwrap();
        st.append_rating(&mut s, &stars(1, 5), "ann", "t3").unwrap();
        st.append_rating(&mut s, &stars(1, 2), "bob", "t4").unwrap();
        let thumb = RatingEdit {
            node: 1,
            thumb: Some(-1),
            ..Default::default()
        };
        st.append_rating(&mut s, &thumb, "ann", "t5").unwrap();
        assert_eq!(s.ratings.len(), 2);
        let ann = &s.ratings[0];
        assert_eq!(
            (ann.stars, ann.thumb, ann.note.as_deref(), ann.at.as_str()),
            (Some(5), Some(-1), Some("too long"), "t5")
        );
        assert_eq!(s.ratings[1].rater, "bob");
        // Clearing: 0 stars, empty note.
        st.append_rating(&mut s, &stars(1, 0), "ann", "t6").unwrap();
        let clear_note = RatingEdit {
            node: 1,
            note: Some(String::new()),
            ..Default::default()
        };
        st.append_rating(&mut s, &clear_note, "ann", "t7").unwrap();
        assert_eq!(s.ratings[0].stars, None);
        assert_eq!(s.ratings[0].note, None);
        assert_eq!(s.ratings[0].thumb, Some(-1));
        drop(st);
        let (again, _) = SessionStore::open(&p).unwrap();
        assert_eq!(again.ratings, s.ratings);
    }

    #[test]
    fn invalid_edits_are_refused_and_not_journaled() {
        let (_d, p) = setup();
        let (mut s, mut st) = SessionStore::open(&p).unwrap();
        assert!(st.append_rating(&mut s, &stars(1, 6), "a", "t").is_err());
        assert!(st
            .append_rating(
                &mut s,
                &RatingEdit {
                    node: 1,
                    ..Default::default()
                },
                "a",
                "t"
            )
            .is_err());
        assert!(st.append_vote(&mut s, 1, 2, "draw", "a", "t").is_err());
        assert!(st.append_vote(&mut s, 1, 1, "tie", "a", "t").is_err());
        assert_eq!(fs::read(journal_path(&p)).unwrap().len(), 0);
        assert!(s.ratings.is_empty() && s.votes.is_empty());
    }

    #[test]
    fn torn_last_line_is_dropped_and_cut_off() {
        let (_d, p) = setup();
        {
            let (mut s, mut st) = SessionStore::open(&p).unwrap();
            st.append_rating(&mut s, &stars(1, 4), "ann", "t1").unwrap();
        }
        let j = journal_path(&p);
        let mut f = OpenOptions::new().append(true).open(&j).unwrap();
        f.write_all(br#"{"kind":"rating","seq":2,"node":1,"sta"#)
            .unwrap();
        drop(f);
        let (mut s, mut st) = SessionStore::open(&p).unwrap();
        assert_eq!(s.ratings[0].stars, Some(4));
        // The next record starts on a clean line and gets the torn record's number.
        assert_eq!(
            st.append_rating(&mut s, &stars(1, 2), "ann", "t3").unwrap(),
            2
        );
        drop(st);
        let (s, _) = SessionStore::open(&p).unwrap();
        assert_eq!(s.ratings[0].stars, Some(2));
    }

    #[test]
    fn corrupt_middle_line_is_an_error_with_its_line() {
        let (_d, p) = setup();
        let j = journal_path(&p);
        let good = r#"{"kind":"rating","seq":1,"node":1,"stars":4,"rater":"a","at":"t"}"#;
        fs::write(&j, format!("{good}\nnot json\n{good}\n")).unwrap();
        let err = SessionStore::open(&p).unwrap_err().to_string();
        assert!(err.contains("s.toml.journal:2:"), "{err}");
        // Untouched.
        assert!(fs::read_to_string(&j).unwrap().contains("not json"));
    }

    #[test]
    fn unknown_fields_in_a_record_are_errors() {
        let (_d, p) = setup();
        let j = journal_path(&p);
        let bad = r#"{"kind":"rating","seq":1,"node":1,"starz":4,"rater":"a","at":"t"}"#;
        fs::write(&j, format!("{bad}\n")).unwrap();
        let err = SessionStore::open(&p).unwrap_err().to_string();
        assert!(err.contains("starz"), "{err}");
    }

    #[test]
    fn compaction_folds_and_empties_and_a_crash_before_truncation_does_not_duplicate() {
        let (_d, p) = setup();
        let j = journal_path(&p);
        let (mut s, mut st) = SessionStore::open(&p).unwrap();
        st.append_rating(&mut s, &stars(1, 4), "ann", "t1").unwrap();
        st.append_vote(&mut s, 1, 2, "left", "ann", "t2").unwrap();
        let journal_before = fs::read(&j).unwrap();
        st.compact(&s).unwrap();
        assert_eq!(fs::read(&j).unwrap().len(), 0);
        assert_eq!(st.pending(), 0);
        let on_disk = crate::store::load(&p).unwrap();
        assert_eq!(on_disk.votes.len(), 1);
        assert_eq!(on_disk.ratings[0].seq, Some(1));
        drop(st);
        // Simulate a crash between the atomic save and the truncation.
        fs::write(&j, &journal_before).unwrap();
        let (mut s, mut st) = SessionStore::open(&p).unwrap();
        assert_eq!(s.votes.len(), 1, "vote applied twice");
        assert_eq!(st.pending(), 0);
        // Numbering continues after the folded records.
        assert_eq!(
            st.append_vote(&mut s, 2, 1, "both_bad", "ann", "t3")
                .unwrap(),
            3
        );
    }

    #[test]
    fn compact_refuses_a_session_without_the_journaled_records() {
        let (_d, p) = setup();
        let (mut s, mut st) = SessionStore::open(&p).unwrap();
        let stale = s.clone();
        st.append_rating(&mut s, &stars(1, 4), "ann", "t1").unwrap();
        assert!(st.compact(&stale).is_err());
        assert!(!fs::read(journal_path(&p)).unwrap().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_second_store_on_the_same_session_is_refused() {
        let (_d, p) = setup();
        let (_s, _st) = SessionStore::open(&p).unwrap();
        assert!(matches!(SessionStore::open(&p), Err(StoreError::Locked(_))));
    }

    /// A crash can cut the journal at any byte: what survives is exactly the records whose
    /// line (with its newline) was complete, in order.
    #[test]
    fn truncation_at_every_byte_keeps_exactly_the_complete_records() {
        let (_d, p) = setup();
        let j = journal_path(&p);
        {
            let (mut s, mut st) = SessionStore::open(&p).unwrap();
            for k in 1..=4u8 {
                let edit = RatingEdit {
                    node: 1,
                    stars: Some(k),
                    note: Some(format!("n{k} é\n")),
                    ..Default::default()
                };
                st.append_rating(&mut s, &edit, &format!("r{k}"), "t")
                    .unwrap();
            }
            st.append_vote(&mut s, 1, 2, "right", "v", "t").unwrap();
        }
        let full = fs::read(&j).unwrap();
        let ends: Vec<usize> = full
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        for cut in 0..=full.len() {
            fs::write(&j, &full[..cut]).unwrap();
            let complete = ends.iter().filter(|&&e| e <= cut).count();
            let (s, _st) = SessionStore::open(&p).unwrap();
            assert_eq!(s.ratings.len() + s.votes.len(), complete, "cut at {cut}");
            // The torn tail was cut off on open.
            let good = ends
                .iter()
                .copied()
                .filter(|&e| e <= cut)
                .max()
                .unwrap_or(0);
            assert_eq!(fs::read(&j).unwrap().len(), good, "cut at {cut}");
        }
    }

    /// Keypress-to-saved latency: 1,000 ratings on a session of 10,000 nodes.
    /// `cargo test --no-default-features --release -- --ignored --nocapture rating_latency`
    #[test]
    #[ignore]
    fn rating_latency_bench() {
        use std::time::Instant;
        let dir = tempfile::tempdir_in(".").unwrap();
        let p = dir.path().join("big.toml");
        let mut s = sample_session();
        s.ratings.clear();
        let template = s.nodes[0].clone();
        s.nodes.clear();
        for id in 1..=10_000 {
            let mut n = template.clone();
            n.id = id;
            n.variant = format!("v{}", id % 4);
            n.case = format!("c{}", id / 4);
            s.nodes.push(n);
        }
        let t = Instant::now();
        crate::store::save_atomic(&p, &s).unwrap();
        let save_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let (mut s, mut st) = SessionStore::open(&p).unwrap();
        let open_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut lat = Vec::with_capacity(1000);
        for i in 0..1000u64 {
            let edit = RatingEdit {
                node: 1 + (i * 7919) % 10_000,
                stars: Some((i % 5 + 1) as u8),
                note: (i % 10 == 0).then(|| format!("note {i}")),
                ..Default::default()
            };
            let t = Instant::now();
            st.append_rating(&mut s, &edit, "bench", "2026-11-27T06:00:00Z")
                .unwrap();
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let t = Instant::now();
        st.compact(&s).unwrap();
        let compact_ms = t.elapsed().as_secs_f64() * 1e3;
        lat.sort_by(f64::total_cmp);
        let size = fs::metadata(&p).unwrap().len();
        println!(
            "rating latency over 1000 ratings, 10000 nodes ({:.1} MB file): median {:.3} ms, \
             p99 {:.3} ms, worst {:.3} ms; full save {save_ms:.0} ms, open {open_ms:.0} ms, \
             compact {compact_ms:.0} ms",
            size as f64 / 1e6,
            lat[500],
            lat[989],
            lat[999]
        );
    }
}
