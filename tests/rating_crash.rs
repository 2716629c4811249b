//! Ratings survive SIGKILL: `promptloom rate --stdin` in a child process, killed at random
//! points (mid-append, mid-compaction, between lines) hundreds of times; afterwards the
//! session opens and holds every rating and vote the child acknowledged with `ok SEQ`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{text, Sandbox};
use rand::{Rng, SeedableRng};

const SCRIPTED: &str = r#"
default_model = "fake"
rater = "config-rater"
[models.fake]
backend = "scripted"
reply = "I do not know."
rules = [ { when = "England", reply = "London." }, { when = "France", reply = "Paris." } ]
"#;

const PROMPT: &str = r#"title = "Capitals"
[[variant]]
name = "plain"
template = "What is the capital of {{country}}?"
[[variant]]
name = "teacher"
system = "You teach geography."
template = "What is the capital of {{country}}?"
[[case]]
vars = { country = "England" }
[[case]]
vars = { country = "France" }
[[case]]
vars = { country = "Peru" }
"#;

/// What a command line promised, keyed by its unique rater name.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Rating {
        node: u64,
        stars: u8,
        note: String,
    },
    Vote {
        left: u64,
        right: u64,
        outcome: String,
    },
}

fn session(sb: &Sandbox) -> std::path::PathBuf {
    let prompt = sb.write("capitals.toml", PROMPT);
    let out = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    out
}

/// Nodes by case, from the exported session.
fn answers(sb: &Sandbox, path: &str) -> BTreeMap<String, Vec<u64>> {
    let o = sb.run(&["export", path, "--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut by_case: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for l in text(&o.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        by_case
            .entry(v["case"].as_str().unwrap().to_string())
            .or_default()
            .push(v["node"].as_u64().unwrap());
    }
    by_case
}

fn spawn(sb: &Sandbox, path: &str, compact_every: usize) -> Child {
    sb.command()
        .args([
            "rate",
            path,
            "--stdin",
            "--compact-every",
            &compact_every.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rate")
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_rating() {
    let sb = Sandbox::new(SCRIPTED);
    let path = session(&sb);
    let path_s = path.to_str().unwrap().to_string();
    let by_case = answers(&sb, &path_s);
    let cases: Vec<&Vec<u64>> = by_case.values().filter(|v| v.len() >= 2).collect();
    assert!(!cases.is_empty());
    let all_nodes: Vec<u64> = by_case.values().flatten().copied().collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC0FFEE);
    let mut acked: BTreeMap<String, Expect> = BTreeMap::new();
    let mut sent = 0usize;
    let mut kills = 0usize;
    let mut next_id = 0usize;
    let start = Instant::now();
    while kills < 300 {
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "too slow: {kills} kills so far"
        );
        let mut child = spawn(&sb, &path_s, rng.random_range(1..8));
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        // Read acknowledgements on a thread so a kill can land while lines are in flight.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let batch = rng.random_range(1..20);
        let mut lines: Vec<(String, Expect)> = Vec::new();
        for _ in 0..batch {
            let rater = format!("r{next_id}");
            next_id += 1;
            let (line, expect) = if rng.random_bool(0.75) {
                let node = all_nodes[rng.random_range(0..all_nodes.len())];
                let stars = rng.random_range(1..=5u8);
                let note = format!("note {rater} \"q\" line\nnext");
                (
                    format!(
                        "node={node} stars={stars} note={} rater={rater}",
                        serde_json::to_string(&note).unwrap()
                    ),
                    Expect::Rating { node, stars, note },
                )
            } else {
                let pair = cases[rng.random_range(0..cases.len())];
                let outcome = ["left", "right", "tie", "both_bad"][rng.random_range(0..4)];
                (
                    format!(
                        "vote left={} right={} outcome={outcome} rater={rater}",
                        pair[0], pair[1]
                    ),
                    Expect::Vote {
                        left: pair[0],
                        right: pair[1],
                        outcome: outcome.into(),
                    },
                )
            };
            lines.push((rater, expect.clone()));
            // Write lines one by one with random pauses, so kills land anywhere.
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
            sent += 1;
            if rng.random_bool(0.2) {
                std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
            }
        }
        // Kill after a random number of acknowledgements (so the test does not depend on
        // how fast the machine is) plus a random pause, i.e. anywhere in the stream.
        let wait_for = rng.random_range(0..=batch);
        let mut acks: Vec<String> = Vec::new();
        while acks.len() < wait_for {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(a) => acks.push(a),
                Err(e) => {
                    let _ = child.kill();
                    let mut err = String::new();
                    if let Some(mut s) = child.stderr.take() {
                        let _ = s.read_to_string(&mut err);
                    }
                    panic!("no acknowledgement ({e:?}); the child said: {err}");
                }
            }
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(0..3_000)));
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix.
        let status = child.wait().unwrap();
        drop(stdin);
        reader.join().unwrap();
        acks.extend(rx.try_iter());
        if status.success() {
            // Finished before the kill (it cannot: stdin was still open) — never happens.
            panic!("child exited on its own");
        }
        kills += 1;
        for (i, ack) in acks.iter().enumerate() {
            assert!(ack.starts_with("ok "), "unexpected answer {ack:?}");
            let (rater, expect) = &lines[i];
            acked.insert(rater.clone(), expect.clone());
        }
    }
    let elapsed = start.elapsed();

    // The session opens (journal replayed) and holds every acknowledged record exactly once.
    let check = |stage: &str| {
        let o = sb.run(&["export", &path_s, "--format", "jsonl"]);
        assert!(o.status.success(), "{stage}: {}", text(&o.stderr));
        let mut ratings: BTreeMap<String, (u64, u64, String)> = BTreeMap::new();
        let mut votes: BTreeMap<String, Vec<(u64, u64, String)>> = BTreeMap::new();
        for l in text(&o.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let node = v["node"].as_u64().unwrap();
            for r in v["ratings"].as_array().unwrap() {
                let rater = r["rater"].as_str().unwrap().to_string();
                let old = ratings.insert(
                    rater.clone(),
                    (
                        node,
                        r["stars"].as_u64().unwrap(),
                        r["note"].as_str().unwrap().to_string(),
                    ),
                );
                assert!(old.is_none(), "{stage}: rating by {rater} twice");
            }
            for x in v["votes"].as_array().unwrap() {
                // Each vote appears on both of its nodes' rows; count it from the left one.
                if x["left"].as_u64() == Some(node) {
                    votes
                        .entry(x["rater"].as_str().unwrap().to_string())
                        .or_default()
                        .push((
                            x["left"].as_u64().unwrap(),
                            x["right"].as_u64().unwrap(),
                            x["outcome"].as_str().unwrap().to_string(),
                        ));
                }
            }
        }
        for (rater, expect) in &acked {
            match expect {
                Expect::Rating { node, stars, note } => {
                    let got = ratings.get(rater);
                    assert_eq!(
                        got,
                        Some(&(*node, u64::from(*stars), note.clone())),
                        "{stage}: acknowledged rating by {rater} lost or changed"
                    );
                }
                Expect::Vote {
                    left,
                    right,
                    outcome,
                } => {
                    assert_eq!(
                        votes.get(rater),
                        Some(&vec![(*left, *right, outcome.clone())]),
                        "{stage}: acknowledged vote by {rater} lost, changed or duplicated"
                    );
                }
            }
        }
        for (rater, v) in &votes {
            assert_eq!(
                v.len(),
                1,
                "{stage}: vote by {rater} applied {} times",
                v.len()
            );
        }
        ratings.len() + votes.len()
    };
    let stored = check("after the kills");

    // A clean run folds everything into the session file; nothing changes.
    let mut child = spawn(&sb, &path_s, 0);
    child.stdin.take().unwrap().write_all(b"compact\n").unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(out.trim(), "ok compacted");
    assert_eq!(check("after compaction"), stored);
    let journal = std::fs::read(sb.path("s.toml.journal")).unwrap();
    assert!(journal.is_empty());
    eprintln!(
        "rating crash test: {kills} SIGKILLs in {:.1} s, {sent} records sent, {} acknowledged, \
         {stored} stored (unacknowledged ones may or may not survive), none lost",
        elapsed.as_secs_f64(),
        acked.len()
    );
    assert!(kills >= 300);
    assert!(
        acked.len() > 500,
        "too few acknowledged records to mean much"
    );
}
