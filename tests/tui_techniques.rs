//! The technique keys end to end: the real binary in tmux with a scripted model whose rules
//! answer each technique's prompt (critique, rewrite, judge, pairwise, value, step, proposals).

mod common;

use std::time::Duration;

use common::tmux::{field, meta, nodes, session_file, Tmux};
use common::Sandbox;

// Rules are tried in order; the first whose `when` is in the last user message answers.
const CONFIG: &str = r#"
default_model = "fake"
[models.fake]
backend = "scripted"
reply = "I do not know."
delay_ms = 5
rules = [
  { when = "Previous answer:\nThe capital of England is London.\n\nAnalyse", reply = "NO ISSUES" },
  { when = "Critique:\n", reply = "The capital of England is London." },
  { when = "Analyse the previous answer", reply = "1. Wrong city: the capital of England is London, not Paris." },
  { when = "SCORE: <a whole number", reply = "SCORE: 8\nREASON: names the right city." },
  { when = "WINNER: <A or B", reply = "WINNER: A\nREASON: it came first." },
  { when = "Evaluate whether", reply = "The steps look fine.\nsure" },
  { when = "single next step", reply = "London is the capital." },
  { when = "improved versions", reply = "VARIANT 1\nINTENT: clearer task\nSYSTEM: (none)\nTEMPLATE:\nName the capital city of {{country}} in one word.\n\nVARIANT 2\nINTENT: added role\nSYSTEM: You are a geography teacher.\nTEMPLATE: What is the capital?\n" },
  { when = "capital of England", reply = "Paris" },
]

[models.slow]
backend = "scripted"
reply = "word "
repeat = 400
delay_ms = 30
"#;

const PROMPT: &str = r#"title = "Capitals"
[defaults]
model = "fake"
temperature = 0.0

[[variant]]
name = "plain"
template = "What is the capital of {{country}}?"

[[variant]]
name = "teacher"
system = "You teach geography."
template = "What is the capital of {{country}}?"

[[case]]
vars = { country = "England" }
expect = { all = ["London", "Thames"] }

[techniques]
critique_rounds = 3
branch_k = 3
search = { k = 2, beam = 2, depth = 2, value_samples = 1 }
"#;

const T: Duration = Duration::from_secs(20);

#[test]
fn every_technique_key_in_tmux() {
    let sb = Sandbox::new(CONFIG);
    sb.write("prompts/capitals.toml", PROMPT);
    let tm = Tmux::start(&sb, &["prompts/capitals.toml"]);
    tm.wait_for("to run.", T);
    tm.keys(&["Enter"]);
    tm.wait_until("both answers", T, |c| c.matches("│done").count() == 2);

    // c: one critique and rewrite; the pane shows the new revision.
    tm.keys(&["c"]);
    tm.wait_for("rev 2/2", T);
    let screen = tm.wait_for("refine stopped", T);
    assert!(
        screen.contains("refine stopped after 1 round(s): round limit reached"),
        "{screen}"
    );
    assert!(
        screen.contains("The capital of England is London."),
        "{screen}"
    );
    // < and > step through the revisions.
    tm.keys(&["<"]);
    let screen = tm.wait_for("rev 1/2", T);
    assert!(screen.contains("│Paris"), "{screen}");
    tm.keys(&[">"]);
    tm.wait_for("rev 2/2", T);
    // d: the word diff against the answer it rewrote.
    tm.keys(&["d"]);
    let screen = tm.wait_for("Diff answer #1 → rewrite", T);
    assert!(screen.contains("+6 −1 words"), "{screen}");
    assert!(
        screen.contains("Paris The capital of England is London."),
        "{screen}"
    );
    tm.keys(&["Escape"]);

    // C on the other pane: loops until the critic has nothing left to fix.
    tm.keys(&["l", "C"]);
    let screen = tm.wait_for("refine stopped after 2 round(s)", T);
    assert!(screen.contains("the critic found no issues"), "{screen}");

    // b: three alternatives from the same context.
    tm.keys(&["b"]);
    let screen = tm.wait_for("children", T);
    assert!(screen.contains("branched #"), "{screen}");

    // t: the tree of the case; navigate, prune, promote.
    tm.keys(&["t"]);
    let tree = tm.wait_for("Tree · case England", T);
    for kind in ["answer", "critique", "rewrite", "NO ISSUES"] {
        assert!(tree.contains(kind), "{kind}\n{tree}");
    }
    // The cursor starts on teacher's shown revision; below it are the critique that said
    // NO ISSUES and the three branches. A critique can't become the pane's answer.
    tm.keys(&["j"]);
    tm.keys(&["p"]);
    tm.wait_for("a critique can't be the pane's answer", T);
    tm.keys(&["j"]);
    tm.keys(&["x"]);
    let screen = tm.wait_for("✂ pruned", T);
    assert!(screen.contains("pruned #"), "{screen}");
    tm.keys(&["x"]);
    tm.wait_for("unpruned #", T);
    tm.keys(&["m"]);
    tm.wait_for("◆", T);
    tm.keys(&["p"]);
    let screen = tm.wait_for("now shows #", T);
    assert!(screen.contains("pane teacher now shows #"), "{screen}");
    tm.keys(&["Enter"]);
    tm.wait_for("parent #", T);
    tm.keys(&["Escape"]);
    tm.wait_until("tree closed", T, |c| !c.contains("Tree · case"));

    // s: the parameter form, then a breadth-first search that the tree shows live.
    tm.keys(&["h", "s"]);
    let form = tm.wait_for("Tree-of-thought search from #", T);
    assert!(form.contains("◀  2 ▶"), "{form}");
    tm.keys(&["Enter"]);
    let tree = tm.wait_for("search depth reached", T);
    println!("tree after the search:\n{tree}");
    assert!(tree.contains("(search root"), "{tree}");
    assert!(tree.contains("kept@2"), "{tree}");
    assert!(tree.contains("v1.00"), "{tree}");
    tm.keys(&["Escape"]);

    // J: the judge's score and reason in the pane.
    tm.keys(&["J"]);
    let screen = tm.wait_for("judge 8/10: names the right city.", T);
    assert!(screen.contains("judge 8/10"), "{screen}");
    // P: both orders; this judge always prefers the first answer.
    tm.keys(&["P"]);
    tm.wait_for("position bias", T);

    // g: proposals become new variants, marked generated.
    tm.keys(&["g"]);
    let screen = tm.wait_for("added 1 generated variant(s)", T);
    assert!(screen.contains("plain / clearer task"), "{screen}");
    assert!(screen.contains("generated: clearer task"), "{screen}");

    tm.keys(&["q"]);
    tm.wait_exit(T);
    let ns = nodes(&session_file(&sb));
    let kinds: Vec<&str> = ns.iter().map(|n| field(n, "kind")).collect();
    for k in [
        "answer",
        "critique",
        "rewrite",
        "thought",
        "value",
        "judge",
        "variant-proposal",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert!(ns
        .iter()
        .any(|n| meta(n, "stop_reason") == Some("the critic found no issues")));
    assert!(ns.iter().any(|n| meta(n, "beam_level") == Some("2")));
    assert!(ns.iter().any(|n| meta(n, "bookmark") == Some("true")));
    assert!(ns.iter().any(|n| meta(n, "promoted").is_some()));
    assert!(ns
        .iter()
        .any(|n| meta(n, "pair_outcome") == Some("inconsistent (position bias)")));
    assert!(ns.iter().all(|n| field(n, "status") == "done"), "{ns:#?}");
}

const SLOW: &str = r#"title = "Slow"
[defaults]
model = "slow"
max_tokens = 20

[[variant]]
name = "slow"
template = "Tell me about {{country}}."

[[case]]
vars = { country = "England" }
"#;

#[test]
fn x_cancels_a_running_search_and_the_session_keeps_what_was_made() {
    let sb = Sandbox::new(CONFIG);
    sb.write("prompts/slow.toml", SLOW);
    let tm = Tmux::start(&sb, &["prompts/slow.toml"]);
    tm.wait_for("to run.", T);
    tm.keys(&["Enter"]);
    tm.wait_for("20 tok", T);
    tm.keys(&["s", "Enter"]);
    tm.wait_for("search level 1/3", T);
    tm.keys(&["X"]);
    let screen = tm.wait_for("cancelled 1 technique run(s)", T);
    assert!(!screen.contains("search depth reached"), "{screen}");
    assert!(screen.contains("cancelled"), "{screen}");
    // Nothing keeps running: the spinner is gone from the tree.
    std::thread::sleep(Duration::from_millis(500));
    let screen = tm.capture();
    assert!(!screen.contains("streaming"), "{screen}");
    tm.keys(&["Escape"]);
    tm.keys(&["q"]);
    tm.wait_exit(T);
    let ns = nodes(&session_file(&sb));
    let thoughts: Vec<&toml::Table> = ns
        .iter()
        .filter(|n| field(n, "kind") == "thought" && meta(n, "search_root").is_none())
        .collect();
    assert!(!thoughts.is_empty(), "{ns:#?}");
    assert!(
        ns.iter().any(|n| field(n, "status") == "cancelled"),
        "{ns:#?}"
    );
    assert!(ns.iter().all(|n| field(n, "status") != "streaming"));
}
