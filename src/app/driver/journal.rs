//! The driver's side of rating: the journal, ordered session saves, the session list and
//! switching sessions.
//!
//! A rating is appended to the journal (fsynced) inside the effect handler, before the
//! driver handles the next key, and applied to the session only when the append succeeded.
//! A journal record is only useful if the session file holds the node it names, so before a
//! record about a node the file may not have yet, the session is saved synchronously first.
//!
//! Whole-session saves also run in the background saver. [`SaveGate`] puts every write of a
//! session file (background, synchronous, compaction) behind one lock and numbers the
//! snapshots, so an older snapshot never lands over a newer one; and the journal is only
//! emptied by compaction, whose snapshot holds every journaled record. So no save can drop a
//! rating that was journaled.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::app::model::msg::Msg;
use crate::app::model::rating::{RatingEffect, RatingIo, SessionSummary};
use crate::app::model::state::AppState;
use crate::app::update::update;
use crate::chat::ModelIdentity;
use crate::prompt::PromptFile;
use crate::state::session::{NodeKind, Session};
use crate::store::journal::{self, SessionStore};

/// Serialises session-file writes and drops stale snapshots.
#[derive(Debug, Default)]
pub(crate) struct SaveGate {
    next: AtomicU64,
    written: Mutex<Written>,
}

#[derive(Debug, Default)]
struct Written {
    /// Generation of the newest snapshot written, per file.
    generations: std::collections::BTreeMap<PathBuf, u64>,
    /// The open session's file and the node ids it holds on disk.
    path: PathBuf,
    nodes: BTreeSet<u64>,
}

impl SaveGate {
    /// Number a snapshot taken now.
    pub fn next_generation(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Write snapshot `generation` of `session` to `path` unless a newer one was written.
    pub fn save(
        &self,
        path: &Path,
        session: &Session,
        generation: u64,
    ) -> Result<(), crate::store::SaveError> {
        self.with_lock(path, session, generation, || {
            crate::store::save_atomic(path, session)
        })
    }

    /// Run `write` (which writes `session` to `path`) under the lock as snapshot
    /// `generation`, unless a newer snapshot was written already.
    fn with_lock<E>(
        &self,
        path: &Path,
        session: &Session,
        generation: u64,
        write: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        let mut w = match self.written.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        if w.generations.get(path).is_some_and(|g| generation <= *g) {
            return Ok(());
        }
        write()?;
        w.generations.insert(path.to_path_buf(), generation);
        if w.path == path || w.path.as_os_str().is_empty() {
            w.path = path.to_path_buf();
            w.nodes = session.nodes.iter().map(|n| n.id).collect();
        }
        Ok(())
    }

    /// Whether the newest snapshot written to `path` holds every one of `nodes`.
    fn on_disk(&self, path: &Path, nodes: &[u64]) -> bool {
        let w = match self.written.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        w.path == path && nodes.iter().all(|n| w.nodes.contains(n))
    }

    /// Record that `path` on disk holds `session` (just opened from it).
    fn opened(&self, path: &Path, session: &Session) {
        let mut w = match self.written.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        w.path = path.to_path_buf();
        w.nodes = session.nodes.iter().map(|n| n.id).collect();
    }
}

/// The session as a save writes it: the variants and cases as now, the models' identities.
pub(crate) fn snapshot(
    state: &AppState,
    models: &std::collections::BTreeMap<String, ModelIdentity>,
) -> Session {
    let mut s = state.session.clone();
    s.variants = state.prompt.variants.clone();
    s.cases = state.prompt.cases.clone();
    s.models = models.clone();
    s
}

/// The journal of the open session and what the driver needs to switch sessions.
pub(crate) struct RatingDriver {
    store: Option<SessionStore>,
    pub gate: Arc<SaveGate>,
    models: Vec<String>,
    default_model: String,
}

impl RatingDriver {
    /// `store`: the journal of a session opened with `--session` (already replayed).
    pub fn new(
        store: Option<SessionStore>,
        state: &AppState,
        models: Vec<String>,
        default_model: String,
    ) -> RatingDriver {
        let gate = Arc::new(SaveGate::default());
        if store.is_some() {
            gate.opened(&state.session_path, &state.session);
        }
        RatingDriver {
            store,
            gate,
            models,
            default_model,
        }
    }

    /// Run one rating effect. Results that must be seen before the next key are applied to
    /// `state` at once; slow ones (listing sessions) come back through `tx`.
    pub fn run(
        &mut self,
        fx: RatingEffect,
        state: &mut AppState,
        identities: &std::collections::BTreeMap<String, ModelIdentity>,
        tx: &mpsc::UnboundedSender<Msg>,
    ) {
        match fx {
            RatingEffect::AppendRating {
                edit,
                rater,
                at,
                what,
            } => {
                let t = Instant::now();
                let result = self
                    .prepare(state, identities, &[edit.node])
                    .and_then(|store| {
                        store
                            .append_rating(&mut state.session, &edit, &rater, &at)
                            .map_err(|e| e.to_string())
                    });
                tracing::debug!(
                    node = edit.node,
                    ms = t.elapsed().as_secs_f64() * 1e3,
                    ok = result.is_ok(),
                    "rating journaled"
                );
                report(state, RatingIo::Journaled { what, result });
            }
            RatingEffect::AppendVote {
                left,
                right,
                outcome,
                rater,
                at,
                what,
            } => {
                let t = Instant::now();
                let result = self
                    .prepare(state, identities, &[left, right])
                    .and_then(|store| {
                        store
                            .append_vote(&mut state.session, left, right, &outcome, &rater, &at)
                            .map_err(|e| e.to_string())
                    });
                tracing::debug!(
                    left,
                    right,
                    ms = t.elapsed().as_secs_f64() * 1e3,
                    ok = result.is_ok(),
                    "vote journaled"
                );
                report(state, RatingIo::Journaled { what, result });
            }
            RatingEffect::ListSessions { dirs, current } => {
                let tx = tx.clone();
                tokio::task::spawn_blocking(move || {
                    let list = list_sessions(&dirs, &current);
                    let _ = tx.send(Msg::Rating(RatingIo::Sessions(list)));
                });
            }
            RatingEffect::OpenSession { path } => {
                let io = match self.switch(state, identities, &path) {
                    Ok((prompt, session)) => RatingIo::Opened {
                        indexes: crate::prompt::render::indexes_for(&prompt.variants),
                        prompt: Box::new(prompt),
                        session: Box::new(session),
                        path,
                    },
                    Err(e) => RatingIo::OpenFailed(e),
                };
                report(state, io);
            }
            RatingEffect::WriteFile { path, text } => {
                let error = crate::store::write_atomic(&path, text.as_bytes())
                    .err()
                    .map(|e| e.to_string());
                report(state, RatingIo::Written { path, error });
            }
        }
    }

    /// The open journal, after making sure the session file holds `nodes`.
    fn prepare(
        &mut self,
        state: &mut AppState,
        identities: &std::collections::BTreeMap<String, ModelIdentity>,
        nodes: &[u64],
    ) -> Result<&mut SessionStore, String> {
        let path = state.session_path.clone();
        if !path.is_file() || !self.gate.on_disk(&path, nodes) {
            let snap = snapshot(state, identities);
            let generation = self.gate.next_generation();
            self.gate
                .save(&path, &snap, generation)
                .map_err(|e| e.to_string())?;
        }
        if self.store.is_none() {
            // The journal starts with the first rating. Until now this process wrote no
            // journal, so the file (saved from this state) plus whatever another process
            // journaled meanwhile is the whole truth about ratings and votes: take it, or a
            // later compaction would drop those records.
            let (on_disk, store) = SessionStore::open(&path).map_err(|e| e.to_string())?;
            state.session.ratings = on_disk.ratings;
            state.session.votes = on_disk.votes;
            self.store = Some(store);
        }
        self.store
            .as_mut()
            .ok_or_else(|| "no journal open".to_string())
    }

    /// Save the current session (folding its journal in) and open `path`.
    fn switch(
        &mut self,
        state: &AppState,
        identities: &std::collections::BTreeMap<String, ModelIdentity>,
        path: &Path,
    ) -> Result<(crate::prompt::PromptFile, Session), String> {
        if same_file(path, &state.session_path) {
            return Err(format!("{} is already open", path.display()));
        }
        let (session, store) = SessionStore::open(path).map_err(|e| e.to_string())?;
        self.close(state, identities, true)?;
        let prompt = prompt_for_session(&session, &self.models, &self.default_model);
        self.gate.opened(path, &session);
        self.store = Some(store);
        Ok((prompt, session))
    }

    /// Save the session for good: fold the journal into the file. Without a journal, the
    /// session is saved only if `save` (switching away; at quit the saver already did).
    pub fn close(
        &mut self,
        state: &AppState,
        identities: &std::collections::BTreeMap<String, ModelIdentity>,
        save: bool,
    ) -> Result<(), String> {
        if self.store.is_none() && !save {
            return Ok(());
        }
        let snap = snapshot(state, identities);
        let generation = self.gate.next_generation();
        let path = state.session_path.clone();
        match self.store.take() {
            Some(mut store) => self
                .gate
                .with_lock(&path, &snap, generation, || store.compact(&snap))
                .map_err(|e| e.to_string()),
            None => self
                .gate
                .save(&path, &snap, generation)
                .map_err(|e| e.to_string()),
        }
    }
}

/// Apply a driver report at once, so the next key sees it.
fn report(state: &mut AppState, io: RatingIo) {
    let fx = update(state, Msg::Rating(io));
    debug_assert!(fx.is_empty(), "rating reports ask for no effects");
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Every `*.toml` session in `dirs` (missing folders are skipped), newest first.
pub(crate) fn list_sessions(dirs: &[PathBuf], current: &Path) -> Vec<SessionSummary> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "toml") || !path.is_file() {
                continue;
            }
            let key = path.canonicalize().unwrap_or_else(|_| path.clone());
            if !seen.insert(key) {
                continue;
            }
            out.push(summarise(&path, current));
        }
    }
    out.sort_by(|a, b| {
        b.modified_secs
            .cmp(&a.modified_secs)
            .then_with(|| a.path.cmp(&b.path))
    });
    out
}

fn summarise(path: &Path, current: &Path) -> SessionSummary {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| {
            let local: chrono::DateTime<chrono::Local> = t.into();
            let secs = t
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            (local.format("%Y-%m-%d %H:%M").to_string(), secs)
        })
        .unwrap_or_else(|| ("?".into(), 0));
    let mut s = SessionSummary {
        path: path.to_path_buf(),
        modified: modified.0,
        modified_secs: modified.1,
        title: String::new(),
        prompt_file: None,
        answers: 0,
        ratings: 0,
        votes: 0,
        error: None,
        current: same_file(path, current),
    };
    match journal::load_with_journal(path) {
        Ok(session) => {
            s.title = session.title.clone();
            s.prompt_file = session.prompt_file.clone();
            s.answers = session
                .nodes
                .iter()
                .filter(|n| matches!(n.kind, NodeKind::Answer | NodeKind::Rewrite))
                .count();
            s.ratings = session.ratings.iter().filter(|r| !r.is_empty()).count();
            s.votes = session.votes.len();
        }
        Err(e) => {
            // One line is enough for the list.
            let text = e.to_string();
            s.error = Some(text.lines().next().unwrap_or("unreadable").to_string());
        }
    }
    s
}

/// The prompt a reopened session is shown with: its prompt file when it still loads,
/// else rebuilt from the session; the session's own variants and cases win.
pub(crate) fn prompt_for_session(
    session: &Session,
    models: &[String],
    default_model: &str,
) -> PromptFile {
    let from_file = session
        .prompt_file
        .as_ref()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .and_then(|p| crate::prompt::load(&p, models, default_model).ok());
    let mut prompt = from_file.unwrap_or_else(|| PromptFile {
        path: PathBuf::from(session.prompt_file.clone().unwrap_or_default()),
        title: session.title.clone(),
        description: None,
        variants: session.variants.clone(),
        cases: session.cases.clone(),
        main_var: None,
        source: String::new(),
        file_variants: Vec::new(),
        techniques: Default::default(),
        tools: Vec::new(),
    });
    if !session.variants.is_empty() {
        prompt.variants = session.variants.clone();
    }
    for c in &session.cases {
        if !prompt.cases.iter().any(|p| p.name == c.name) {
            prompt.cases.push(c.clone());
        }
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::update::rating::tests::answered;
    use crate::eval::leaderboard::tests::grid;
    use crate::store::journal::RatingEdit;

    fn stars(node: u64, n: u8, rater: &str) -> RatingEffect {
        RatingEffect::AppendRating {
            edit: RatingEdit {
                node,
                stars: Some(n),
                ..Default::default()
            },
            rater: rater.into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            what: format!("#{node}"),
        }
    }

    /// Two answered panes, their session at a fresh path in `dir`.
    fn setup(dir: &Path) -> (AppState, RatingDriver, mpsc::UnboundedSender<Msg>) {
        let mut s = answered();
        s.session_path = dir.join("s.toml");
        let d = RatingDriver::new(None, &s, s.models.clone(), "fake".into());
        let (tx, _rx) = mpsc::unbounded_channel();
        (s, d, tx)
    }

    #[test]
    fn the_first_rating_saves_the_session_then_journals_and_shows_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, mut d, tx) = setup(dir.path());
        let ids = Default::default();
        let node = s.panes[0].node.unwrap();
        d.run(stars(node, 4, "ann"), &mut s, &ids, &tx);
        assert_eq!(s.session.ratings.len(), 1);
        assert!(s.message.as_deref().unwrap().starts_with("saved"));
        // On disk: the file holds the node, the journal the rating (not compacted yet).
        let file = crate::store::load(&s.session_path).unwrap();
        assert!(file.node(node).is_some());
        assert!(file.ratings.is_empty());
        let replayed = journal::load_with_journal(&s.session_path).unwrap();
        assert_eq!(replayed.ratings[0].stars, Some(4));
        // A whole-session save of an older snapshot can't drop it: the journal stays.
        let mut old = file.clone();
        old.ratings.clear();
        let g = d.gate.next_generation();
        d.gate.save(&s.session_path, &old, g).unwrap();
        let replayed = journal::load_with_journal(&s.session_path).unwrap();
        assert_eq!(replayed.ratings.len(), 1);
        // Closing folds the journal into the file.
        d.close(&s, &ids, false).unwrap();
        let file = crate::store::load(&s.session_path).unwrap();
        assert_eq!(file.ratings[0].stars, Some(4));
        assert_eq!(
            std::fs::metadata(journal::journal_path(&s.session_path))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn a_failed_write_is_reported_and_nothing_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, mut d, tx) = setup(dir.path());
        // A directory where the session file should be: every save fails.
        std::fs::create_dir_all(&s.session_path).unwrap();
        let node = s.panes[0].node.unwrap();
        d.run(stars(node, 4, "ann"), &mut s, &Default::default(), &tx);
        assert!(s.session.ratings.is_empty());
        assert!(
            s.message.as_deref().unwrap().starts_with("NOT saved"),
            "{:?}",
            s.message
        );
    }

    #[test]
    fn ratings_journaled_by_another_process_before_ours_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, mut d, tx) = setup(dir.path());
        let ids = Default::default();
        let node = s.panes[0].node.unwrap();
        // The file exists (the saver wrote it); `promptloom rate` journals a rating.
        crate::store::save_atomic(&s.session_path, &s.session).unwrap();
        {
            let (mut other, mut st) = SessionStore::open(&s.session_path).unwrap();
            let edit = RatingEdit {
                node,
                stars: Some(2),
                ..Default::default()
            };
            st.append_rating(&mut other, &edit, "bob", "t").unwrap();
        }
        d.run(stars(node, 5, "ann"), &mut s, &ids, &tx);
        d.close(&s, &ids, false).unwrap();
        let file = crate::store::load(&s.session_path).unwrap();
        let mut got: Vec<(String, Option<u8>)> = file
            .ratings
            .iter()
            .map(|r| (r.rater.clone(), r.stars))
            .collect();
        got.sort();
        assert_eq!(got, [("ann".into(), Some(5)), ("bob".into(), Some(2))]);
    }

    #[test]
    fn switching_sessions_saves_this_one_and_opens_that_one_with_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, mut d, tx) = setup(dir.path());
        let ids = Default::default();
        let node = s.panes[0].node.unwrap();
        d.run(stars(node, 3, "ann"), &mut s, &ids, &tx);
        // Another session with a journal-only vote.
        let other = dir.path().join("other.toml");
        let g = grid(&["a", "b"], &["c1"]);
        crate::store::save_atomic(&other, &g).unwrap();
        {
            let (mut o, mut st) = SessionStore::open(&other).unwrap();
            st.append_vote(&mut o, 1, 2, "tie", "bob", "t").unwrap();
        }
        d.run(
            RatingEffect::OpenSession {
                path: other.clone(),
            },
            &mut s,
            &ids,
            &tx,
        );
        assert_eq!(s.session_path, other);
        assert_eq!(s.session.votes.len(), 1);
        let old = crate::store::load(&dir.path().join("s.toml")).unwrap();
        assert_eq!(old.ratings[0].stars, Some(3));
        // Ratings now go to the new session's journal.
        d.run(stars(1, 5, "ann"), &mut s, &ids, &tx);
        let replayed = journal::load_with_journal(&other).unwrap();
        assert_eq!(replayed.ratings[0].stars, Some(5));
        // Opening the open session again is refused, the state untouched.
        d.run(RatingEffect::OpenSession { path: other }, &mut s, &ids, &tx);
        assert!(s.message.as_deref().unwrap().contains("already open"));
    }

    #[test]
    fn an_older_snapshot_never_lands_over_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        let gate = SaveGate::default();
        let old = grid(&["a"], &["c1"]);
        let new = grid(&["a", "b"], &["c1"]);
        let g_old = gate.next_generation();
        let g_new = gate.next_generation();
        gate.save(&p, &new, g_new).unwrap();
        gate.save(&p, &old, g_old).unwrap();
        assert_eq!(crate::store::load(&p).unwrap().nodes.len(), 2);
        // Per file: after switching to another session, a stale job for this one is still
        // recognised as stale.
        let q = dir.path().join("q.toml");
        gate.opened(&q, &old);
        let g_q = gate.next_generation();
        gate.save(&q, &old, g_q).unwrap();
        gate.save(&p, &old, g_old).unwrap();
        assert_eq!(crate::store::load(&p).unwrap().nodes.len(), 2);
        gate.opened(&p, &new);
        assert!(gate.on_disk(&p, &[1, 2]));
        assert!(!gate.on_disk(&p, &[3]));
        assert!(!gate.on_disk(&dir.path().join("other.toml"), &[1]));
    }

    #[test]
    fn sessions_are_listed_newest_first_with_counts_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = grid(&["a", "b"], &["c1"]);
        a.prompt_file = Some("prompts/capitals.toml".into());
        a.votes.push(crate::state::session::Vote {
            left: 1,
            right: 2,
            outcome: "tie".into(),
            rater: "r".into(),
            at: "t".into(),
            seq: None,
        });
        let pa = dir.path().join("a.toml");
        crate::store::save_atomic(&pa, &a).unwrap();
        // A journal-only rating is counted.
        {
            let (mut s, mut st) = SessionStore::open(&pa).unwrap();
            let edit = journal::RatingEdit {
                node: 1,
                stars: Some(4),
                ..Default::default()
            };
            st.append_rating(&mut s, &edit, "ann", "t").unwrap();
        }
        let pb = dir.path().join("b.toml");
        std::fs::write(&pb, "not = [valid").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let f = std::fs::File::options().write(true).open(&pa).unwrap();
        f.set_modified(old).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let list = list_sessions(&[dir.path().to_path_buf(), dir.path().join("missing")], &pa);
        assert_eq!(list.len(), 2, "{list:?}");
        assert_eq!(list[0].path, pb);
        assert!(list[0].error.is_some());
        let s = &list[1];
        assert_eq!((s.answers, s.ratings, s.votes), (2, 1, 1));
        assert_eq!(s.prompt_file.as_deref(), Some("prompts/capitals.toml"));
        assert!(s.current);
    }
}
