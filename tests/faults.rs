//! Faults lose nothing, with the real binary: a full disk (a 64 KiB tmpfs mounted for the
//! test) under journal appends and session saves, and a read-only folder. Skips, saying
//! why, where the machine does not allow mounting (not root).
//!
//! SIGKILL at random points of a save is `tests/rating_crash.rs`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{text, Sandbox};

const SCRIPTED: &str = r#"
default_model = "fake"
[models.fake]
backend = "scripted"
reply = "London."
"#;

const PROMPT: &str = "title = \"t\"\n[[variant]]\nname = \"a\"\ntemplate = \"Capital of {{c}}?\"\n[[variant]]\nname = \"b\"\ntemplate = \"Name the capital of {{c}}.\"\n[[case]]\nvars = { c = \"England\" }\n";

/// A small tmpfs, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn remount(&self, opts: &str) {
        let s = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(s.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A session with two answers, made by `run` on the normal disk; returns its text.
fn session_text(sb: &Sandbox) -> String {
    let prompt = sb.write("p.toml", PROMPT);
    let out = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::read_to_string(out).unwrap()
}

/// Ratings per rater name, as `export` (session + journal replayed) sees them.
fn ratings(sb: &Sandbox, path: &Path) -> BTreeMap<String, String> {
    let o = sb.run(&["export", path.to_str().unwrap(), "--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut out = BTreeMap::new();
    for l in text(&o.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        for r in v["ratings"].as_array().unwrap() {
            out.insert(
                r["rater"].as_str().unwrap().to_string(),
                r["note"].as_str().unwrap_or_default().to_string(),
            );
        }
    }
    out
}

#[test]
fn a_full_disk_under_journal_appends_and_saves_loses_no_acknowledged_rating() {
    let Some(fs) = Tmpfs::mount("64k") else {
        return;
    };
    let sb = Sandbox::new(SCRIPTED);
    let original = session_text(&sb);
    let path = fs.path("s.toml");
    std::fs::write(&path, &original).unwrap();

    let mut child = sb
        .command()
        .args([
            "rate",
            path.to_str().unwrap(),
            "--stdin",
            "--compact-every",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut answers = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut refused = 0;
    let mut i = 0;
    let mut send = |stdin: &mut std::process::ChildStdin, line: String| -> String {
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        answers.next().unwrap().unwrap()
    };
    // Big notes until the disk is full (each refused append may have written part of its
    // line before ENOSPC).
    while refused < 3 && i < 200 {
        let note = format!("{i} {}", "x".repeat(3000));
        let rater = format!("r{i}");
        let a = send(
            &mut stdin,
            format!("node=1 stars=3 note={note:?} rater={rater}"),
        );
        if a.starts_with("ok ") {
            acked.insert(rater, note);
        } else {
            assert!(a.contains("No space left on device"), "{a}");
            assert!(a.contains("s.toml.journal"), "{a}");
            refused += 1;
        }
        i += 1;
    }
    assert!(refused > 0, "the disk never filled");
    // Folding the journal into the session file can't fit either: refused, old file whole.
    let a = send(&mut stdin, "compact".into());
    assert!(
        a.contains("No space left on device") && a.contains("s.toml"),
        "{a}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    let names: Vec<String> = std::fs::read_dir(fs.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "no temp file is left: {names:?}");
    // Every acknowledged rating is readable from the journal right now.
    let got = ratings(&sb, &path);
    for (rater, note) in &acked {
        assert_eq!(
            got.get(rater),
            Some(note),
            "acknowledged rating by {rater} lost"
        );
    }
    // Room again, same process: the next record is appended cleanly after the refused ones
    // (no torn line in between), and the final compaction folds everything in.
    fs.remount("size=1m");
    let small = format!("r{i}");
    let a = send(
        &mut stdin,
        format!("node=2 stars=1 note=\"small\" rater={small}"),
    );
    assert!(a.starts_with("ok "), "{a}");
    acked.insert(small, "small".into());
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    // It exits 1 for the refused lines, after folding everything in (the journal is empty).
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("{} line(s) were refused", refused + 1)),
        "{err}"
    );
    assert!(
        std::fs::read(fs.path("s.toml.journal")).unwrap().is_empty(),
        "{err}"
    );
    let got = ratings(&sb, &path);
    for (rater, note) in &acked {
        assert_eq!(
            got.get(rater),
            Some(note),
            "acknowledged rating by {rater} lost"
        );
    }
    assert_eq!(got.len(), acked.len(), "refused ratings must not appear");
    assert!(std::fs::read(fs.path("s.toml.journal")).unwrap().is_empty());
    eprintln!(
        "full disk: {} ratings acknowledged, {refused} appends and 1 compaction refused with ENOSPC; none lost, none torn",
        acked.len()
    );
}

#[test]
fn a_read_only_folder_is_refused_clearly_and_left_untouched() {
    let Some(fs) = Tmpfs::mount("1m") else { return };
    let sb = Sandbox::new(SCRIPTED);
    let original = session_text(&sb);
    let path = fs.path("s.toml");
    std::fs::write(&path, &original).unwrap();
    fs.remount("ro");
    let o = sb.run(&[
        "rate",
        path.to_str().unwrap(),
        "--node",
        "1",
        "--stars",
        "4",
    ]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("s.toml.journal") && err.contains("Read-only file system"),
        "{err}"
    );
    // Reading still works.
    let o = sb.run(&["export", path.to_str().unwrap(), "--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    fs.remount("rw");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
}

/// `rate --stdin` on `path`: holds the session (its journal lock) until stdin closes.
fn holder(sb: &Sandbox, path: &Path) -> std::process::Child {
    let child = sb
        .command()
        .args(["rate", path.to_str().unwrap(), "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has the lock (its pid file appears).
    let lock = path.with_file_name("s.toml.lock");
    let t0 = std::time::Instant::now();
    let id = child.id().to_string();
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.trim() == id) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "holder never locked"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

#[test]
fn a_second_promptloom_on_an_open_session_is_told_who_has_it() {
    let sb = Sandbox::new(SCRIPTED);
    session_text(&sb);
    let path = sb.path("s.toml");
    let mut first = holder(&sb, &path);
    let pid = first.id();
    // Without a terminal there is nobody to offer read-only to: a clear refusal.
    let o = sb.run(&["--session", path.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!(
            "s.toml is open in another promptloom (pid {pid}); close it there first"
        )),
        "{err}"
    );
    let o = sb.run(&[
        "rate",
        path.to_str().unwrap(),
        "--node",
        "1",
        "--stars",
        "2",
    ]);
    assert!(
        text(&o.stderr).contains(&format!("(pid {pid})")),
        "{}",
        text(&o.stderr)
    );
    drop(first.stdin.take());
    assert!(first.wait().unwrap().success());
    assert!(
        !path.with_file_name("s.toml.lock").exists(),
        "the holder removes its pid file"
    );
}

#[test]
fn on_a_terminal_the_second_one_is_offered_read_only_and_saves_nothing() {
    use common::tmux::Tmux;
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let sb = Sandbox::new(SCRIPTED);
    session_text(&sb);
    let path = sb.path("s.toml");
    let before = std::fs::read_to_string(&path).unwrap();
    let mut first = holder(&sb, &path);
    let tm = Tmux::start(&sb, &["--session", path.to_str().unwrap()]);
    tm.wait_for("Open it read-only", std::time::Duration::from_secs(20));
    tm.keys(&["y", "Enter"]);
    tm.wait_for("London.", std::time::Duration::from_secs(20));
    // A rating can't be saved here, and says so; quitting writes nothing.
    tm.keys(&["4"]);
    tm.wait_for("NOT saved", std::time::Duration::from_secs(10));
    tm.remain_on_exit();
    tm.keys(&["q"]);
    let screen = tm.wait_dead(std::time::Duration::from_secs(10));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    // It says it saved nothing, not "session saved to".
    assert!(screen.contains("read-only: nothing saved"), "{screen}");
    assert!(!screen.contains("session saved to"), "{screen}");
    drop(first.stdin.take());
    assert!(first.wait().unwrap().success());
}
