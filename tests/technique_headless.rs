//! `promptloom technique ...` end to end with the real binary and a scripted model whose
//! rules answer each technique's prompt.

mod common;

use common::{parse_toml, text, Sandbox};

// Rules are tried in order; the first whose `when` is in the last user message answers.
const SCRIPTED: &str = r#"
default_model = "fake"
[models.fake]
backend = "scripted"
reply = "I do not know."
rules = [
  { when = "Previous answer:\nThe capital of England is London.\n\nAnalyse", reply = "NO ISSUES" },
  { when = "Critique:\n", reply = "The capital of England is London." },
  { when = "Analyse the previous answer", reply = "1. Wrong city: the capital of England is London, not Paris." },
  { when = "SCORE: <a whole number", reply = "**Score:** 8/10\n**Reason:** names the right city." },
  { when = "WINNER: <A or B", reply = "WINNER: A\nREASON: it came first." },
  { when = "Evaluate whether", reply = "The steps look fine.\nsure" },
  { when = "single next step", reply = "Step: 4 * 6 = 24" },
  { when = "improved versions", reply = "VARIANT 1\nINTENT: clearer task\nSYSTEM: (none)\nTEMPLATE:\nName the capital city of {{country}} in one word.\n\nVARIANT 2\nINTENT: added role\nSYSTEM: You are a geography teacher.\nTEMPLATE: What is the capital?\n" },
  { when = "capital of England", reply = "Paris" },
]
"#;

const PROMPT: &str = r#"title = "Capitals"
[defaults]
temperature = 0.0
max_tokens = 64

[[variant]]
name = "plain"
template = "What is the capital of {{country}}?"

[[case]]
vars = { country = "England" }
"#;

fn nodes(path: &std::path::Path) -> Vec<toml::Table> {
    parse_toml(path)["node"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n.as_table().expect("table").clone())
        .collect()
}

fn s<'a>(n: &'a toml::Table, key: &str) -> &'a str {
    n.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

/// A session with one answer ("Paris") to work on.
fn answered(sb: &Sandbox) -> std::path::PathBuf {
    let prompt = sb.write("prompts/capitals.toml", PROMPT);
    let out = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(s(&nodes(&out)[0], "text"), "Paris");
    out
}

#[test]
fn critique_loop_rewrites_then_stops_when_the_critic_has_no_issues() {
    let sb = Sandbox::new(SCRIPTED);
    let session = answered(&sb);
    let o = sb.run(&[
        "technique",
        "critique",
        session.to_str().unwrap(),
        "--node",
        "1",
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(
        stdout.contains(
            "stopped: the critic found no issues after 2 round(s); latest revision #3 (rev 2/2)"
        ),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("diff #1 → #3: [-Paris-]{+The capital of England is London.+} (+6 −1 words)"),
        "{stdout}"
    );
    let ns = nodes(&session);
    let kinds: Vec<(&str, i64)> = ns
        .iter()
        .map(|n| {
            (
                s(n, "kind"),
                n.get("parent").and_then(|p| p.as_integer()).unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("answer", 0),
            ("critique", 1),
            ("rewrite", 2),
            ("critique", 3)
        ]
    );
    assert_eq!(s(&ns[2], "text"), "The capital of England is London.");
    assert_eq!(s(&ns[3], "text"), "NO ISSUES");
    assert_eq!(
        ns[2]["meta"]["stop_reason"].as_str(),
        Some("the critic found no issues")
    );
    // The critique saw the answer it criticises.
    let sent = &common::sent(&session, &ns[1])[0].1;
    assert!(sent.contains("Previous answer:\nParis"), "{sent}");
}

#[test]
fn critique_stops_when_expectations_pass_and_rounds_limit_applies() {
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write(
        "prompts/capitals.toml",
        &format!("{PROMPT}expect = {{ any = [\"London\"] }}\n"),
    );
    let session = sb.path("s.toml");
    let o = sb.run(&[
        "run",
        prompt.to_str().unwrap(),
        "--out",
        session.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "Paris fails the expectation");
    let o = sb.run(&[
        "technique",
        "critique",
        session.to_str().unwrap(),
        "--node",
        "1",
        "--rounds",
        "3",
    ]);
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("stopped: the rewrite passes the expectations after 1 round(s)"),
        "{stdout}"
    );
    let ns = nodes(&session);
    assert_eq!(ns.len(), 3);
    assert_eq!(ns[2]["checks"][0]["pass"].as_bool(), Some(true));
}

#[test]
fn branch_adds_k_children_with_raised_temperature() {
    let sb = Sandbox::new(SCRIPTED);
    let session = answered(&sb);
    let o = sb.run(&[
        "technique",
        "branch",
        session.to_str().unwrap(),
        "--node",
        "1",
        "-k",
        "3",
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(
        stdout.contains("branched #1 into 3: depth reached"),
        "{stdout}"
    );
    let ns = nodes(&session);
    assert_eq!(ns.len(), 4);
    for n in &ns[1..] {
        assert_eq!(s(n, "kind"), "answer");
        assert_eq!(n["parent"].as_integer(), Some(1));
        assert_eq!(n["sampling"]["temperature"].as_float(), Some(0.9));
        assert!(n["sampling"]["seed"].as_integer().is_some());
    }
}

/// `technique samples` takes N seeded samples of a node (children, one sample group,
/// consecutive seeds, the branching temperature since the node's own is 0) and prints how
/// they cluster; the scripted model answers the same each time, so they all agree.
#[test]
fn samples_cluster_n_seeded_answers_of_a_node() {
    let sb = Sandbox::new(SCRIPTED);
    let session = answered(&sb);
    let o = sb.run(&[
        "technique",
        "samples",
        session.to_str().unwrap(),
        "--node",
        "1",
        "-n",
        "4",
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(
        stdout.contains("samples of #1: 4 samples, 100% agree; no checks; answers 4× \"paris\""),
        "{stdout}"
    );
    let ns = nodes(&session);
    assert_eq!(ns.len(), 5);
    let mut seeds = Vec::new();
    for (k, n) in ns[1..].iter().enumerate() {
        assert_eq!(s(n, "kind"), "answer");
        assert_eq!(n["parent"].as_integer(), Some(1));
        assert_eq!(n["sampling"]["temperature"].as_float(), Some(0.9));
        seeds.push(n["sampling"]["seed"].as_integer().unwrap());
        let meta = n["meta"].as_table().expect("meta");
        assert_eq!(meta["sample_group"].as_str(), Some("plain/England/#1"));
        assert_eq!(meta["sample"].as_str(), Some(k.to_string().as_str()));
    }
    assert_eq!(seeds, (0..4).map(|k| seeds[0] + k).collect::<Vec<_>>());
    // The run table's stability line reads the same group.
    let o = sb.run(&["export", session.to_str().unwrap(), "--format", "md"]);
    assert!(
        text(&o.stdout).contains("100% agree (1 cell)"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn search_saves_the_whole_tree_with_scores() {
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write(
        "prompts/g24.toml",
        "title = \"24\"\n[[variant]]\nname = \"steps\"\ntemplate = \"Make 24 from {{numbers}}.\"\n[[case]]\nname = \"4 4 6 8\"\nvars = { numbers = \"4 4 6 8\" }\nexpect = { any = [\"= 24\"] }\n",
    );
    let out = sb.path("search.toml");
    let o = sb.run(&[
        "technique",
        "search",
        prompt.to_str().unwrap(),
        "--case",
        "4 4 6 8",
        "--variant",
        "steps",
        "-k",
        "2",
        "-b",
        "2",
        "-d",
        "2",
        "--samples",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(stdout.contains("search depth reached: best #"), "{stdout}");
    assert!(stdout.contains("score 1.00 (PASS)"), "{stdout}");
    let ns = nodes(&out);
    let count = |k: &str| ns.iter().filter(|n| s(n, "kind") == k).count();
    // root + 2 level-1 thoughts + 4 level-2 thoughts; 2 value samples per thought.
    assert_eq!(count("thought"), 7);
    assert_eq!(count("value"), 12);
    let scored: Vec<&toml::Table> = ns
        .iter()
        .filter(|n| s(n, "kind") == "thought" && n.contains_key("score"))
        .collect();
    assert_eq!(scored.len(), 6);
    assert!(scored
        .iter()
        .all(|n| n["meta"]["value_samples"].as_str() == Some("sure,sure")));
    assert_eq!(
        ns.iter()
            .filter(|n| n.get("meta").and_then(|m| m.get("beam_level")).is_some())
            .count(),
        4
    );
    // Level-2 thoughts continue from their parent's step.
    let deep = ns
        .iter()
        .find(|n| {
            s(n, "kind") == "thought"
                && n.get("meta")
                    .and_then(|m| m.get("level"))
                    .and_then(|l| l.as_str())
                    == Some("2")
        })
        .unwrap();
    let sent = &common::sent(&out, deep)[0].1;
    assert!(
        sent.contains("Steps so far:\nStep 1: Step: 4 * 6 = 24"),
        "{sent}"
    );
}

#[test]
fn judge_scores_and_pairwise_reports_position_bias() {
    let sb = Sandbox::new(SCRIPTED);
    let session = answered(&sb);
    let o = sb.run(&[
        "technique",
        "judge",
        session.to_str().unwrap(),
        "--node",
        "1",
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(
        stdout.contains("#1: 8/10 — names the right city."),
        "{stdout}"
    );
    let ns = nodes(&session);
    assert_eq!(s(&ns[1], "kind"), "judge");
    assert_eq!(ns[1]["score"].as_float(), Some(8.0));

    sb.run(&[
        "technique",
        "branch",
        session.to_str().unwrap(),
        "--node",
        "1",
        "-k",
        "1",
    ]);
    let o = sb.run(&[
        "technique",
        "judge",
        session.to_str().unwrap(),
        "--pair",
        "1",
        "3",
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(
        stdout.contains("pairwise: inconsistent (position bias)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("#1 shown first: A\n#3 shown first: A\n"),
        "{stdout}"
    );
    let ns = nodes(&session);
    let judges: Vec<&toml::Table> = ns.iter().filter(|n| s(n, "kind") == "judge").collect();
    assert_eq!(judges.len(), 3);
    assert_eq!(judges[1]["meta"]["pair"].as_str(), Some("A=#1 B=#3"));
    assert_eq!(judges[2]["meta"]["pair"].as_str(), Some("A=#3 B=#1"));
}

#[test]
fn unparseable_judge_answers_are_recorded_not_scored() {
    let sb = Sandbox::new(
        "default_model = \"fake\"\n[models.fake]\nbackend = \"scripted\"\nreply = \"Paris\"\n",
    );
    let session = answered(&sb);
    let o = sb.run(&[
        "technique",
        "judge",
        session.to_str().unwrap(),
        "--case",
        "England",
    ]);
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("#1: unparseable judge answer: Paris"),
        "{stdout}"
    );
    let ns = nodes(&session);
    assert!(!ns[1].contains_key("score"));
    assert_eq!(ns[1]["meta"]["verdict"].as_str(), Some("unparseable"));
}

#[test]
fn propose_adds_generated_variants_and_rejects_broken_ones() {
    let sb = Sandbox::new(SCRIPTED);
    let prompt = sb.write("prompts/capitals.toml", PROMPT);
    let out = sb.path("p.toml");
    let o = sb.run(&[
        "technique",
        "propose",
        prompt.to_str().unwrap(),
        "--variant",
        "plain",
        "-n",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert!(
        stdout.contains("1 proposal(s) accepted, 1 rejected"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rejected block 2: the template drops {{country}}"),
        "{stdout}"
    );
    let t = parse_toml(&out);
    let vs = t["variant"].as_array().unwrap();
    assert_eq!(vs.len(), 2);
    assert_eq!(vs[1]["name"].as_str(), Some("plain / clearer task"));
    assert_eq!(vs[1]["generated"].as_str(), Some("clearer task"));
    assert_eq!(
        vs[1]["template"].as_str(),
        Some("Name the capital city of {{country}} in one word.")
    );
    let ns = nodes(&out);
    assert_eq!(s(&ns[1], "kind"), "variant-proposal");
    assert!(common::sent(&out, &ns[1])[0]
        .1
        .contains("Write 2 improved versions"));

    // Without -n, the file's [techniques] proposals decides.
    let prompt = sb.write(
        "prompts/four.toml",
        &format!("{PROMPT}\n[techniques]\nproposals = 4\n"),
    );
    let out = sb.path("p4.toml");
    let o = sb.run(&[
        "technique",
        "propose",
        prompt.to_str().unwrap(),
        "--variant",
        "plain",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let ns = nodes(&out);
    assert!(common::sent(&out, &ns[1])[0]
        .1
        .contains("Write 4 improved versions"));
}

#[test]
fn bad_arguments_are_input_errors() {
    let sb = Sandbox::new(SCRIPTED);
    let session = answered(&sb);
    let o = sb.run(&[
        "technique",
        "critique",
        session.to_str().unwrap(),
        "--node",
        "9",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("the session has no node 9"),
        "{}",
        text(&o.stderr)
    );
    let o = sb.run(&[
        "technique",
        "judge",
        session.to_str().unwrap(),
        "--node",
        "1",
        "--model",
        "gpt9",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--model \"gpt9\" is not a configured model"));
}

#[test]
fn ctrl_c_mid_search_cancels_in_flight_requests_and_keeps_the_tree() {
    let sb = Sandbox::new(
        "default_model = \"slow\"\n[models.slow]\nbackend = \"scripted\"\nreply = \"one two three four five six seven eight nine ten\"\ndelay_ms = 300\n",
    );
    let prompt = sb.write(
        "prompts/g24.toml",
        "title = \"24\"\n[[variant]]\nname = \"steps\"\ntemplate = \"Make 24 from {{numbers}}.\"\n[[case]]\nname = \"n\"\nvars = { numbers = \"4 4 6 8\" }\n",
    );
    let out = sb.path("search.toml");
    let child = sb
        .command()
        .args([
            "technique",
            "search",
            prompt.to_str().unwrap(),
            "--case",
            "n",
            "--variant",
            "steps",
            "-k",
            "3",
            "-b",
            "2",
            "-d",
            "3",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    // SAFETY: signalling our own child process by its pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t0 = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "cancel is prompt"
    );
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(130), "{stdout}\n{}", text(&o.stderr));
    assert!(stdout.contains("search cancelled"), "{stdout}");
    let ns = nodes(&out);
    // The three first-level thoughts were streaming (10 words, 300 ms apart) and are cancelled
    // with the text they had; nothing went deeper.
    let thoughts: Vec<&toml::Table> = ns.iter().filter(|n| s(n, "kind") == "thought").collect();
    assert_eq!(thoughts.len(), 4);
    for t in &thoughts[1..] {
        assert_eq!(s(t, "status"), "cancelled", "{t:?}");
        assert!(s(t, "text").starts_with("one "), "{t:?}");
    }
}
