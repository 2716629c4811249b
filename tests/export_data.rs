//! `export --format sft|pairs` with filters and `--split`, end to end with the real binary;
//! the files are read back by Python's json (and Hugging Face `datasets` when installed).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use common::{text, Sandbox};

const SCRIPTED: &str = r#"
default_model = "fake"
rater = "ann"
[models.fake]
backend = "scripted"
reply = "I do not know."
rules = [ { when = "England", reply = "London." }, { when = "France", reply = "Paris." },
          { when = "Spain", reply = "Madrid." }, { when = "Italy", reply = "Rome." } ]
"#;

const PROMPT: &str = r#"title = "Capitals"
[[variant]]
name = "plain"
template = "What is the capital of {{country}}?"
[[variant]]
name = "teacher"
system = "You teach geography."
template = "Name the capital of {{country}}."
[[case]]
vars = { country = "England" }
expect = { any = ["London"] }
[[case]]
vars = { country = "France" }
expect = { any = ["Paris"] }
[[case]]
vars = { country = "Spain" }
expect = { any = ["Madrid"] }
[[case]]
vars = { country = "Italy" }
expect = { any = ["Rome"] }
[[case]]
vars = { country = "Peru" }
expect = { any = ["Lima"] }
"#;

fn jsonl(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn sft_and_pairs_export_the_chosen_answers_with_filters_and_a_split() {
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write("capitals.toml", PROMPT);
    let out = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    // Peru's answers fail their check, so the run's exit code says so; the session is saved.
    assert!(out.is_file(), "{}", text(&o.stderr));
    let path = out.to_str().unwrap().to_string();
    let rows = jsonl(&text(
        &sb.run(&["export", &path, "--format", "jsonl"]).stdout,
    ));
    let node = |v: &str, c: &str| -> u64 {
        rows.iter()
            .find(|r| r["variant"] == v && r["case"] == c)
            .and_then(|r| r["node"].as_u64())
            .unwrap()
    };
    // England: teacher 5 stars, plain 2. France: plain 4 stars (bob). Spain, Italy: nobody
    // rated, both pass. Peru: both fail their check, nobody rated: no row.
    let mut child = sb
        .command()
        .args(["rate", &path, "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = format!(
        "node={} stars=5\nnode={} stars=2\nnode={} stars=4 rater=bob\n\
         vote left={} right={} outcome=right\nvote left={} right={} outcome=left rater=bob\n\
         vote left={} right={} outcome=both_bad\n",
        node("teacher", "England"),
        node("plain", "England"),
        node("plain", "France"),
        node("plain", "England"),
        node("teacher", "England"),
        node("plain", "France"),
        node("teacher", "France"),
        node("plain", "Peru"),
        node("teacher", "Peru"),
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));

    let o = sb.run(&["export", &path, "--format", "sft"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let sft = jsonl(&text(&o.stdout));
    let got: Vec<(String, String, String)> = sft
        .iter()
        .map(|r| {
            let m = &r["metadata"];
            (
                m["case"].as_str().unwrap().to_string(),
                m["variant"].as_str().unwrap().to_string(),
                m["chosen_by"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = |v: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
        v.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    };
    // Ties among passing answers go to the newest (teacher ran after plain).
    assert_eq!(
        got,
        want(&[
            ("England", "teacher", "rated"),
            ("France", "plain", "rated"),
            ("Spain", "teacher", "passed"),
            ("Italy", "teacher", "passed"),
        ])
    );
    let first = &sft[0]["messages"];
    assert_eq!(first[0]["role"], "system");
    assert_eq!(first[1]["content"], "Name the capital of England.");
    assert_eq!(first[2]["role"], "assistant");
    assert_eq!(first[2]["content"], "London.");
    assert_eq!(sft[0]["metadata"]["node"], node("teacher", "England"));
    assert_eq!(sft[0]["metadata"]["session"], path.as_str());
    assert!(
        text(&o.stderr).contains("4 row(s) from 4 case(s)"),
        "{}",
        text(&o.stderr)
    );

    // Filters.
    let cases = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["export", &path, "--format", "sft"];
        a.extend_from_slice(args);
        let o = sb.run(&a);
        assert!(o.status.success(), "{}", text(&o.stderr));
        jsonl(&text(&o.stdout))
            .iter()
            .map(|r| r["metadata"]["case"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(cases(&["--min-stars", "4"]), ["England", "France"]);
    // Only bob's stars count: England falls back to an answer that passed.
    let o = sb.run(&["export", &path, "--format", "sft", "--rater", "bob"]);
    let bob = jsonl(&text(&o.stdout));
    assert_eq!(bob[0]["metadata"]["chosen_by"], "passed");
    assert_eq!(bob[1]["metadata"]["chosen_by"], "rated");
    // Peru's plain answer failed: never chosen with --passing.
    assert_eq!(
        cases(&["--variant", "plain", "--passing"]),
        ["England", "France", "Spain", "Italy"],
    );
    assert_eq!(
        cases(&["--variant", "plain", "--min-stars", "3"]),
        ["France"]
    );
    let o = sb.run(&["export", &path, "--format", "sft", "--variant", "nope"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("no variant named \"nope\"")
            && text(&o.stderr).contains("plain, teacher"),
        "{}",
        text(&o.stderr)
    );
    let o = sb.run(&["export", &path, "--format", "csv", "--passing"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("apply to --format sft and pairs only"));

    // Pairs: the two decisive votes, TRL's conversational layout.
    let o = sb.run(&["export", &path, "--format", "pairs"]);
    let pairs = jsonl(&text(&o.stdout));
    assert_eq!(pairs.len(), 2);
    assert_eq!(pairs[0]["chosen"][0]["content"], "London.");
    assert_eq!(pairs[0]["metadata"]["chosen_variant"], "teacher");
    let o = sb.run(&["export", &path, "--format", "pairs", "--rater", "bob"]);
    assert_eq!(jsonl(&text(&o.stdout)).len(), 1);

    // The split: no case on both sides, every row kept.
    let data = sb.path("out/data.jsonl");
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    let o = sb.run(&[
        "export",
        &path,
        "--format",
        "sft",
        "--split",
        "0.5",
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let train_p = sb.path("out/data.train.jsonl");
    let valid_p = sb.path("out/data.validation.jsonl");
    let train = jsonl(&std::fs::read_to_string(&train_p).unwrap());
    let valid = jsonl(&std::fs::read_to_string(&valid_p).unwrap());
    let side = |rows: &[serde_json::Value]| -> BTreeSet<String> {
        rows.iter()
            .map(|r| r["metadata"]["case"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(side(&train).is_disjoint(&side(&valid)));
    assert_eq!(train.len() + valid.len(), 4);
    let o = sb.run(&["export", &path, "--format", "sft", "--split", "0.9"]);
    assert!(!o.status.success(), "--split needs --out");

    // Python reads every line with json, and with Hugging Face datasets when it is there.
    let o = sb.run(&[
        "export",
        &path,
        "--format",
        "pairs",
        "--out",
        sb.path("out/pairs.jsonl").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    python_check(&[&train_p, &valid_p, &sb.path("out/pairs.jsonl")]);
}

const PY: &str = r#"
import json, sys
paths = sys.argv[1:]
for p in paths:
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            row = json.loads(line)
            if "messages" in row:
                roles = [m["role"] for m in row["messages"]]
                assert roles[-1] == "assistant", (p, i, roles)
                assert all(isinstance(m["content"], str) for m in row["messages"])
            else:
                assert row["chosen"][0]["role"] == "assistant", (p, i)
                assert row["rejected"][0]["role"] == "assistant", (p, i)
                assert isinstance(row["prompt"], list), (p, i)
            assert isinstance(row["metadata"]["session"], str)
print("json ok")
try:
    import datasets
except ImportError:
    print("datasets not installed")
    sys.exit(0)
sft = datasets.load_dataset("json", data_files={"train": paths[0], "validation": paths[1]})
assert "messages" in sft["train"].column_names, sft
print("datasets sft", sft["train"].num_rows, sft["validation"].num_rows)
pairs = datasets.load_dataset("json", data_files=paths[2], split="train")
assert {"prompt", "chosen", "rejected"} <= set(pairs.column_names), pairs
print("datasets pairs", pairs.num_rows)
"#;

fn python_check(paths: &[&std::path::Path]) {
    let Ok(o) = Command::new("python3")
        .arg("-c")
        .arg(PY)
        .args(paths)
        .output()
    else {
        eprintln!("skipping the Python check: no python3");
        return;
    };
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    assert!(out.contains("json ok"), "{out}");
    eprintln!("python: {out}");
}
