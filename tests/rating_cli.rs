//! `promptloom rate` and the rating parts of `export`, end to end with the real binary.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{text, Sandbox};

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
expect = { any = ["London"] }
[[case]]
vars = { country = "France" }
expect = { any = ["Paris"] }
"#;

fn setup() -> (Sandbox, String, Vec<serde_json::Value>) {
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write("capitals.toml", PROMPT);
    let out = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let path = out.to_str().unwrap().to_string();
    let rows = export_jsonl(&sb, &path);
    (sb, path, rows)
}

fn export_jsonl(sb: &Sandbox, path: &str) -> Vec<serde_json::Value> {
    let o = sb.run(&["export", path, "--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn node(rows: &[serde_json::Value], variant: &str, case: &str) -> u64 {
    rows.iter()
        .find(|r| r["variant"] == variant && r["case"] == case)
        .and_then(|r| r["node"].as_u64())
        .unwrap()
}

#[test]
fn rate_flags_stdin_next_and_exports() {
    let (sb, path, rows) = setup();
    let plain_en = node(&rows, "plain", "England");
    let teacher_en = node(&rows, "teacher", "England");
    let plain_fr = node(&rows, "plain", "France");

    // Flags: the rater defaults to the config's; fields are independent.
    let n = plain_en.to_string();
    let o = sb.run(&["rate", &path, "--node", &n, "--stars", "4"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "ok 1\n");
    let o = sb.run(&["rate", &path, "--node", &n, "--note", "terse"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Flag mode folds into the session file at once: no journal left over.
    assert!(std::fs::read(sb.path("s.toml.journal")).unwrap().is_empty());
    let session = std::fs::read_to_string(&path).unwrap();
    assert!(session.contains("[[rating]]"), "{session}");

    // A missing node and an out-of-range value are refused with a reason.
    let o = sb.run(&["rate", &path, "--node", "999", "--stars", "3"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("no node 999"),
        "{}",
        text(&o.stderr)
    );
    let o = sb.run(&["rate", &path, "--node", &n, "--stars", "7"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));

    // What to compare next: with no votes, the first case's two variants.
    let o = sb.run(&["rate", &path, "--next"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let next = text(&o.stdout);
    assert!(
        next.starts_with(&format!("vote left={plain_en} right={teacher_en}")),
        "{next}"
    );
    assert!(next.contains("no votes so far"), "{next}");

    // Stdin: one answer per line, errors don't stop the stream.
    let mut child = sb
        .command()
        .args(["rate", &path, "--stdin", "--rater", "bob"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = format!(
        "# a comment\nnode={teacher_en} stars=2 thumb=down note=\"too \\\"wordy\\\"\"\n\
         vote left={teacher_en} right={plain_en} outcome=right\n\
         vote left={plain_en} right={teacher_en} outcome=tie rater=carol\n\
         vote left={plain_en} right={plain_fr} outcome=left\n\
         node={plain_en} stars=5 rater=config-rater\n"
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let answers = text(&o.stdout);
    let lines: Vec<&str> = answers.lines().collect();
    assert_eq!(lines[0], "ok 3");
    assert_eq!(lines[1], "ok 4");
    assert_eq!(lines[2], "ok 5");
    assert!(
        lines[3].starts_with("error line 5: nodes") && lines[3].contains("different cases"),
        "{answers}"
    );
    assert_eq!(lines[4], "ok 6");
    assert!(
        !o.status.success(),
        "a refused line makes the exit code non-zero"
    );

    // JSONL carries ratings and votes with each node.
    let rows = export_jsonl(&sb, &path);
    let row = |id: u64| rows.iter().find(|r| r["node"] == id).unwrap();
    let r = &row(plain_en)["ratings"][0];
    assert_eq!(r["stars"], 5, "later stars replace, the note stays: {r}");
    assert_eq!(r["note"], "terse");
    assert_eq!(r["rater"], "config-rater");
    let t = &row(teacher_en)["ratings"][0];
    assert_eq!(
        (t["thumb"].as_str(), t["rater"].as_str()),
        (Some("down"), Some("bob"))
    );
    assert_eq!(t["note"], "too \"wordy\"");
    let votes = row(plain_en)["votes"].as_array().unwrap();
    assert_eq!(votes.len(), 2);
    assert_eq!(votes[0]["result"], "won");
    assert_eq!(votes[1]["result"], "tie");

    // Pairs: only the decisive vote, chosen = the plain answer.
    let o = sb.run(&["export", &path, "--format", "pairs"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pairs: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    let p = &pairs[0];
    assert_eq!(p["chosen"][0]["content"], "London.");
    assert_eq!(p["chosen"][0]["role"], "assistant");
    assert_eq!(p["metadata"]["chosen_variant"], "plain");
    assert_eq!(p["metadata"]["rejected_variant"], "teacher");
    assert_eq!(p["prompt"][0]["content"], "What is the capital of England?");
    assert!(
        p["metadata"]["rejected_prompt"].is_array(),
        "the variants' prompts differ"
    );

    // CSV columns and the Markdown leaderboard.
    let o = sb.run(&["export", &path, "--format", "csv"]);
    let csv = text(&o.stdout);
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",stars,thumb,note,rater,votes"),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("won:{teacher_en};tie:{teacher_en}")),
        "{csv}"
    );
    let o = sb.run(&["export", &path, "--format", "md"]);
    let md = text(&o.stdout);
    assert!(md.contains("## Leaderboard"), "{md}");
    assert!(md.contains("| n=2 | plain |"), "{md}");
    assert!(md.contains("Rated by bob: ★★ 👎: too \"wordy\""), "{md}");
}

#[test]
fn a_second_rater_process_on_the_same_session_is_refused() {
    let (sb, path, _) = setup();
    let mut first = sb
        .command()
        .args(["rate", &path, "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first process holds the lock: its answer to a comment-free no-op.
    let mut stdin = first.stdin.take().unwrap();
    writeln!(stdin, "compact").unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(first.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ok compacted");
    let o = sb.run(&["rate", &path, "--node", "1", "--stars", "3"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("is open in another promptloom (pid "),
        "{}",
        text(&o.stderr)
    );
    drop(stdin);
    assert!(first.wait().unwrap().success());
}
