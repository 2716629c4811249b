//! The technique keys with the real local model (SmolLM2-135M) in tmux: critique a pane,
//! branch it, open the tree, run a short search (k=2, b=2, d=2), and check the session file
//! holds the whole tree. Needs the `local` feature and the model file (`make model`). The
//! tree view after the search is printed to stdout (run with `--nocapture` to see it).
#![cfg(feature = "local")]

mod common;

use std::time::{Duration, Instant};

use common::tmux::{field, meta, nodes, session_file, Tmux};
use common::{require_default_model, Sandbox};

const PROMPT: &str = r#"title = "Capitals"
[defaults]
model = "smollm2"
temperature = 0.0
max_tokens = 24

[[variant]]
name = "plain"
template = "What is the capital of {{country}}? Answer in one sentence."

[[case]]
vars = { country = "England" }
expect = { any = ["London"] }

[techniques]
critique_rounds = 1
branch_k = 2
search = { k = 2, beam = 2, depth = 2, value_samples = 1 }
"#;

#[test]
fn critique_branch_tree_and_search_with_the_local_model() {
    let model = require_default_model();
    let t0 = Instant::now();
    let sb = Sandbox::new(&format!(
        "default_model = \"smollm2\"\n[models.smollm2]\nbackend = \"local\"\ngguf = \"{}\"\n",
        model.display()
    ));
    sb.write("prompts/capitals.toml", PROMPT);
    let tm = Tmux::start(&sb, &["prompts/capitals.toml"]);
    let long = Duration::from_secs(240);
    tm.wait_for("to run.", Duration::from_secs(60));
    tm.keys(&["Enter"]);
    tm.wait_for("│done", long);

    // c: a critique and a rewrite from the real model.
    tm.keys(&["c"]);
    let screen = tm.wait_for("refine stopped after 1 round(s)", long);
    eprintln!("after c ({:?}):\n{screen}", t0.elapsed());
    assert!(
        screen.contains("rev 2/2") || screen.contains("did not change"),
        "{screen}"
    );

    // b: two alternatives at a raised temperature.
    tm.keys(&["b"]);
    tm.wait_for("children", long);

    // t: the tree shows the answer, the critique, the rewrite and the branches.
    tm.keys(&["t"]);
    let tree = tm.wait_for("Tree · case England", Duration::from_secs(10));
    assert!(tree.contains("critique"), "{tree}");
    tm.keys(&["Escape"]);

    // s: a short breadth-first search; the tree opens and grows live.
    tm.keys(&["s"]);
    let form = tm.wait_for("Tree-of-thought search from #", Duration::from_secs(10));
    assert!(form.contains("◀  2 ▶"), "{form}");
    tm.keys(&["Enter"]);
    let tree = tm.wait_until("the search to end", long, |c| {
        c.contains("search depth reached") || c.contains("search no candidates")
    });
    println!("tree view after the search (k=2, b=2, d=2):\n{tree}");
    assert!(tree.contains("search depth reached"), "{tree}");
    assert!(tree.contains("kept@2"), "{tree}");
    tm.keys(&["Escape"]);
    tm.keys(&["q"]);
    tm.wait_exit(Duration::from_secs(30));
    eprintln!("whole run took {:?}", t0.elapsed());

    let ns = nodes(&session_file(&sb));
    let count = |k: &str| ns.iter().filter(|n| field(n, "kind") == k).count();
    assert_eq!(count("critique"), 1, "{ns:#?}");
    assert!(count("rewrite") <= 1);
    // 2 branches + search root + 2 first steps + 4 second steps.
    let branches = ns
        .iter()
        .filter(|n| field(n, "kind") == "answer" && n.get("parent").is_some())
        .count();
    assert_eq!(branches, 2, "{ns:#?}");
    assert_eq!(count("thought"), 7, "{ns:#?}");
    assert_eq!(count("value"), 6, "{ns:#?}");
    assert_eq!(
        ns.iter()
            .filter(|n| meta(n, "beam_level") == Some("2"))
            .count(),
        2
    );
    for n in &ns {
        let status = field(n, "status");
        // A value sample may fail under load (recorded, not scored); the rest must finish.
        if field(n, "kind") == "value" && status == "error" {
            assert!(n.get("error").is_some(), "{n}");
        } else {
            assert_eq!(status, "done", "{n}");
        }
    }
    // Every scored thought says what its value samples read (a label or `?`).
    for n in ns
        .iter()
        .filter(|n| field(n, "kind") == "thought" && meta(n, "search_root").is_none())
    {
        assert!(meta(n, "value_samples").is_some(), "{n}");
    }
}
