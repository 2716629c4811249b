//! Human rating end to end in a real terminal: rate, note, vote blind, read the leaderboard,
//! quit, reopen the session with `--session` (ratings still shown), rate again, and survive
//! SIGKILL. Checked on screen and in the session file and its journal.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::tmux::Tmux;
use common::{parse_toml, Sandbox};

const CONFIG: &str = r#"
default_model = "fake"
rater = "tester"
[models.fake]
backend = "scripted"
reply = "You asked: {prompt}"
rules = [ { when = "England", reply = "London is the capital of England." } ]
delay_ms = 10
"#;

const PROMPT: &str = r#"title = "Capitals"
[defaults]
model = "fake"

[[variant]]
name = "plain"
template = "What is the capital of {{country}}?"

[[variant]]
name = "teacher"
system = "You teach geography."
template = "Which city is the capital of {{country}}?"

[[case]]
vars = { country = "England" }
expect = { any = ["London"] }

[[case]]
vars = { country = "Italy" }
expect = { any = ["Rome"] }
"#;

const SECS: Duration = Duration::from_secs(20);

fn session_file(sb: &Sandbox) -> PathBuf {
    let dir = sb.path("data/sessions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.remove(0)
}

fn table_array(t: &toml::Table, key: &str) -> Vec<toml::Table> {
    t.get(key)
        .and_then(|n| n.as_array())
        .map(|a| a.iter().filter_map(|n| n.as_table().cloned()).collect())
        .unwrap_or_default()
}

fn journal_of(p: &std::path::Path) -> PathBuf {
    PathBuf::from(format!("{}.journal", p.display()))
}

#[test]
fn rate_note_vote_blind_leaderboard_reopen_and_survive_sigkill() {
    let sb = Sandbox::new(CONFIG);
    sb.write("prompts/capitals.toml", PROMPT);
    let log = [("PROMPTLOOM_LOG", "promptloom=debug".to_string())];
    let tm = Tmux::start_env(&sb, &["prompts/capitals.toml"], &log);
    tm.wait_for("to run.", SECS);

    // Both variants answer; nothing can be compared or rated before.
    tm.keys(&["Enter"]);
    tm.wait_for("London is the capital", SECS);
    let t0 = std::time::Instant::now();
    while tm.capture().matches("✓ 1/1").count() < 2 {
        assert!(t0.elapsed() < SECS, "{}", tm.capture());
        std::thread::sleep(Duration::from_millis(100));
    }

    // Stars and a thumb on the focused (left) answer show at once, marked saved.
    tm.keys(&["4"]);
    tm.keys(&["+"]);
    let screen = tm.wait_for("★★★★☆ 👍 saved", SECS);
    assert!(screen.contains("saved #1 👍"), "{screen}");
    // Before quitting, the journal already holds them (fsynced before the next key).
    let path = session_file(&sb);
    let journal = std::fs::read_to_string(journal_of(&path)).expect("journal");
    assert!(journal.contains(r#""stars":4"#), "{journal}");
    assert!(journal.contains(r#""thumb":1"#), "{journal}");

    // A two-line note.
    tm.keys(&["n"]);
    tm.wait_for("Ctrl-S saves", SECS);
    tm.keys(&["-l", "terse but right"]);
    tm.keys(&["Enter"]);
    tm.keys(&["-l", "drop the preamble"]);
    tm.keys(&["C-s"]);
    let screen = tm.wait_for("✎ “terse but right …”", SECS);
    assert!(screen.contains("★★★★☆ 👍 ✎ saved"), "{screen}");

    // Blind comparison: no variant or model name on screen until the vote.
    tm.keys(&["v"]);
    let blind = tm.wait_for("Blind A/B", SECS);
    assert!(
        !blind.contains("plain") && !blind.contains("teacher") && !blind.contains("fake"),
        "names leak before the vote:\n{blind}"
    );
    assert!(blind.contains("why this pair:"), "{blind}");
    tm.keys(&["h"]);
    let revealed = tm.wait_for("You voted: left better", SECS);
    assert!(
        revealed.contains("plain · fake") && revealed.contains("teacher · fake"),
        "{revealed}"
    );
    assert!(revealed.contains("✓ your pick"), "{revealed}");
    assert!(revealed.contains("saved vote"), "{revealed}");
    // The next key moves on to another blind pair; both-bad is its own outcome.
    tm.keys(&["n"]);
    let next = tm.wait_for("1 vote(s) this round", SECS);
    assert!(!next.contains("You voted"), "{next}");
    tm.keys(&["x"]);
    tm.wait_for("You voted: both bad", SECS);
    tm.keys(&["Escape"]);

    // The leaderboard: both variants, too few votes to rank, judge column, a suggestion.
    tm.keys(&["L"]);
    let board = tm.wait_for("Leaderboard by variant", SECS);
    for want in [
        "plain",
        "teacher",
        "BT [95%]",
        "judge",
        "n=1",
        "Bradley–Terry",
        "1 both-bad",
        "Next to compare (v)",
        "Judge vs humans",
    ] {
        assert!(board.contains(want), "{want:?} missing:\n{board}");
    }
    // Export it beside the session.
    tm.keys(&["w"]);
    tm.wait_for("wrote ", SECS);
    let md = std::fs::read_to_string(path.with_file_name(format!(
        "{}.leaderboard-variant.md",
        path.file_stem().unwrap().to_string_lossy()
    )))
    .expect("exported leaderboard");
    assert!(
        md.contains("| rank | variant |") && md.contains("| plain |"),
        "{md}"
    );
    tm.keys(&["Escape"]);

    // Quit: the journal is folded into the session file.
    tm.keys(&["q"]);
    tm.wait_exit(SECS);
    let t = parse_toml(&path);
    let ratings = table_array(&t, "rating");
    assert_eq!(ratings.len(), 1, "{t:#?}");
    let r = &ratings[0];
    assert_eq!(r["node"].as_integer(), Some(1));
    assert_eq!(r["stars"].as_integer(), Some(4));
    assert_eq!(r["thumb"].as_integer(), Some(1));
    assert_eq!(
        r["note"].as_str(),
        Some("terse but right\ndrop the preamble")
    );
    assert_eq!(r["rater"].as_str(), Some("tester"));
    assert!(
        r["at"].as_str().is_some_and(|a| a.starts_with("20")),
        "{r:?}"
    );
    let votes = table_array(&t, "vote");
    let outcomes: Vec<&str> = votes.iter().filter_map(|v| v["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["left", "both_bad"]);
    assert!(votes.iter().all(|v| v["rater"].as_str() == Some("tester")));
    assert_eq!(std::fs::read(journal_of(&path)).map_or(0, |j| j.len()), 0);

    // Reopen: the ratings are shown, and rating continues where it stopped.
    let p = path.display().to_string();
    let tm = Tmux::start_env(&sb, &["--session", &p], &log);
    let screen = tm.wait_for("★★★★☆ 👍 ✎ saved", SECS);
    assert!(screen.contains("✎ “terse but right …”"), "{screen}");
    tm.keys(&["l"]);
    tm.keys(&["2"]);
    tm.wait_for("★★☆☆☆ saved", SECS);
    // SIGKILL right after the screen showed it saved: nothing shown as saved is lost.
    let pid = tm.pid().expect("pane pid");
    let st = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    tm.wait_exit(SECS);
    let out = sb.run(&["export", &p, "--format", "jsonl"]);
    let text = common::text(&out.stdout);
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    assert!(
        text.contains(r#""stars":2"#) && text.contains(r#""stars":4"#),
        "{text}"
    );

    // Keypress-to-journaled latency, from the debug log.
    let log = std::fs::read_to_string(sb.path("state/promptloom.log")).unwrap_or_default();
    let mut ms: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("journaled"))
        .filter_map(|l| {
            let at = l.find("ms=")? + 3;
            l[at..].split_whitespace().next()?.parse().ok()
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    assert!(ms.len() >= 5, "{log}");
    println!(
        "journal append in the TUI (incl. any first save): {} records, median {:.2} ms, max {:.2} ms",
        ms.len(),
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
}

#[test]
fn the_session_browser_lists_sessions_and_opens_one_in_place() {
    let sb = Sandbox::new(CONFIG);
    sb.write("prompts/capitals.toml", PROMPT);
    // An older session, rated from the command line.
    let tm = Tmux::start(&sb, &["prompts/capitals.toml"]);
    tm.wait_for("to run.", SECS);
    tm.keys(&["Enter"]);
    tm.wait_for("London is the capital", SECS);
    std::thread::sleep(Duration::from_millis(500));
    tm.keys(&["5"]);
    tm.wait_for("★★★★★ saved", SECS);
    tm.keys(&["q"]);
    tm.wait_exit(SECS);
    let first = session_file(&sb);
    std::thread::sleep(Duration::from_millis(1100));

    let tm = Tmux::start(&sb, &["prompts/capitals.toml"]);
    tm.wait_for("to run.", SECS);
    tm.keys(&["S"]);
    let list = tm.wait_for("newest first", SECS);
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    assert!(list.contains(&name), "{list}");
    assert!(list.contains("prompts/capitals.toml"), "{list}");
    // The open session is new and not saved yet, so the old one is the only row.
    tm.keys(&["Enter"]);
    let screen = tm.wait_for("opened ", SECS);
    assert!(screen.contains("1 ratings"), "{screen}");
    assert!(screen.contains("★★★★★ saved"), "{screen}");
    assert!(screen.contains(&name), "{screen}");
    tm.keys(&["q"]);
    tm.wait_exit(SECS);
}
