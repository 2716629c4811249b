//! Self-consistency through the real binary: `samples = N` runs N seeded samples of each
//! cell; the report clusters them, and the same seeds give the same clusters on a rerun.

mod common;

use common::{text, Sandbox};

const CONFIG: &str = r#"
default_model = "fake"
[models.fake]
backend = "scripted"
replies = ["London.", "london", "Paris."]
"#;

const PROMPT: &str = r#"title = "Stability"
[defaults]
model = "fake"
temperature = 0.8

[[variant]]
name = "sampled"
samples = 6
seed = 10
template = "What is the capital of {{country}}?"

[[variant]]
name = "once"
template = "Capital of {{country}}?"

[[case]]
vars = { country = "England" }
expect = { any = ["London"] }
"#;

fn run(sb: &Sandbox, out: &str) -> serde_json::Value {
    let prompt = sb.path("p.toml");
    let out = sb.path(out);
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--json",
        "--concurrency",
        "6",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.code() == Some(1) || o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    serde_json::from_str(&text(&o.stdout)).unwrap()
}

#[test]
fn samples_cluster_and_the_same_seeds_give_the_same_clusters() {
    let sb = Sandbox::new(CONFIG);
    sb.write("p.toml", PROMPT);
    let a = run(&sb, "a.toml");
    // Six samples of one cell and one plain answer.
    assert_eq!(a["results"].as_array().unwrap().len(), 7);
    let st = a["stability"].as_array().unwrap();
    assert_eq!(st.len(), 1, "{st:?}");
    let cell = &st[0];
    assert_eq!(cell["cell"], "sampled/England");
    assert_eq!(cell["samples"], 6);
    // Seeds 10..15 pick replies 1, 2, 0, 1, 2, 0: "london" ×4 (normalised), "paris" ×2.
    let by_text: Vec<(String, u64)> = cell["by_text"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_string(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_text, vec![("london".into(), 4), ("paris".into(), 2)]);
    assert!((cell["agreement"].as_f64().unwrap() - 4.0 / 6.0).abs() < 1e-9);
    assert_eq!(cell["pass"]["passed"], 4);
    assert_eq!(cell["pass"]["checked"], 6);
    let (lo, hi) = (
        cell["pass"]["low"].as_f64().unwrap(),
        cell["pass"]["high"].as_f64().unwrap(),
    );
    assert!(lo < 4.0 / 6.0 && 4.0 / 6.0 < hi, "{lo} {hi}");
    let by_checks: Vec<(String, u64)> = cell["by_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_string(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_checks, vec![("✓".into(), 4), ("✗".into(), 2)]);

    // A rerun with the same seeds: the same clusters.
    let b = run(&sb, "b.toml");
    assert_eq!(
        b["stability"][0]["by_text"].as_array().map(|c| c.len()),
        Some(2)
    );
    let keys = |v: &serde_json::Value| -> Vec<(String, u64)> {
        v["stability"][0]["by_text"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["key"].as_str().unwrap().to_string(),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(keys(&a), keys(&b));

    // The table says it too.
    let o = sb.run(&[
        "run",
        sb.path("p.toml").to_str().unwrap(),
        "--out",
        sb.path("c.toml").to_str().unwrap(),
    ]);
    let table = text(&o.stdout);
    assert!(
        table.contains("sampled/England: 6 samples, 67% agree; passed 4/6"),
        "{table}"
    );
    assert!(table.contains("4× \"london\", 2× \"paris\""), "{table}");
}

#[test]
fn stop_on_ends_a_stream_once_its_checks_are_decided() {
    let sb = Sandbox::new(
        "default_model = \"fake\"\n[models.fake]\nbackend = \"scripted\"\nreply = \"Paris is not it. The capital of England is London, a city of nine million people.\"\ndelay_ms = 30\n",
    );
    sb.write(
        "p.toml",
        r#"title = "Early stop"
[defaults]
model = "fake"

[[variant]]
name = "fail_fast"
stop_on = "first_fail"
template = "Capital of {{country}}?"

[[variant]]
name = "pass_fast"
stop_on = "first_pass"
template = "Capital of {{country}}?"

[[variant]]
name = "whole"
template = "Capital of {{country}}?"

[[case]]
vars = { country = "England" }
expect = { any = ["London"], none = ["Paris"] }

[[case]]
name = "found"
vars = { country = "England" }
expect = { any = ["London"] }
"#,
    );
    let out = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        sb.path("p.toml").to_str().unwrap(),
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let j: serde_json::Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    let find = |v: &str, c: &str| {
        j["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["variant"] == v && r["case"] == c)
            .cloned()
            .unwrap()
    };
    let ff = find("fail_fast", "England");
    assert_eq!(ff["finish_reason"], "checks_decided", "{ff}");
    assert_eq!(ff["text"], "Paris ");
    assert_eq!(ff["pass"], false);
    // first_pass can't decide a `none` check early: it runs to the end.
    let pf = find("pass_fast", "England");
    assert_eq!(pf["finish_reason"], "stop", "{pf}");
    // ... but stops once "London" appears when that is all there is to check.
    let found = find("pass_fast", "found");
    assert_eq!(found["finish_reason"], "checks_decided", "{found}");
    assert_eq!(
        found["text"],
        "Paris is not it. The capital of England is London, "
    );
    assert_eq!(found["pass"], true);
    assert_eq!(find("whole", "found")["finish_reason"], "stop");
    let s = common::parse_toml(&out);
    let node = s["node"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| {
            n["variant"].as_str() == Some("fail_fast") && n["case"].as_str() == Some("England")
        })
        .unwrap();
    assert_eq!(
        node["meta"]["stopped_on"].as_str(),
        Some("first_fail: none")
    );
    assert_eq!(node["status"].as_str(), Some("done"));
}
