//! Token probabilities in the real terminal: the real binary in tmux with the scripted model
//! asked for `logprobs`; toggle the heat view, move the token cursor, branch from an
//! alternative and watch the sibling answer stream in the pane.

mod common;

use std::time::Duration;

use common::tmux::{meta, nodes, session_file, Tmux};
use common::Sandbox;

const CONFIG: &str = r#"
default_model = "fake"
[models.fake]
backend = "scripted"
reply = "The capital of England is London, a city on the Thames with a long history."
delay_ms = 120
price = { input = 1.0, output = 2.0 }
"#;

const PROMPT: &str = r#"title = "Heat"
[defaults]
model = "fake"
logprobs = 3

[[variant]]
name = "plain"
template = "What is the capital of {{country}}?"

[[case]]
vars = { country = "England" }
expect = { any = ["London"] }
"#;

#[test]
fn heat_view_cursor_and_branch_from_a_token_in_tmux() {
    let sb = Sandbox::new(CONFIG);
    sb.write("prompts/heat.toml", PROMPT);
    let tm = Tmux::start(&sb, &["prompts/heat.toml"]);
    tm.wait_for("to run.", Duration::from_secs(20));
    tm.keys(&["Enter"]);
    let screen = tm.wait_for("✓ 1/1", Duration::from_secs(30));
    // The pane shows what the answer cost.
    assert!(screen.contains("$0.0000"), "{screen}");

    tm.keys(&["H"]);
    let heat = tm.wait_for("Heat · #1", Duration::from_secs(5));
    assert!(heat.contains("token 1/15"), "{heat}");
    tm.keys(&["l", "l", "l"]);
    let moved = tm.wait_for("token 4/15", Duration::from_secs(5));
    assert!(moved.contains("\"England \""), "{moved}");
    // An alternative the model did not choose, then branch from it.
    for _ in 0..3 {
        let now = tm.capture();
        let selected = now.lines().find(|l| l.contains('▸')).unwrap_or("");
        if !selected.contains("(chosen)") {
            break;
        }
        tm.keys(&["j"]);
        std::thread::sleep(Duration::from_millis(200));
    }
    tm.keys(&["Enter"]);
    let branched = tm.wait_for("↳ branch of #1 at token 4", Duration::from_secs(5));
    assert!(!branched.contains("Heat · #1"), "{branched}");
    // The sibling streams in the pane, after the kept prefix.
    assert!(branched.contains("The capital of "), "{branched}");
    tm.wait_for("streaming", Duration::from_secs(5));
    tm.wait_for("✓ 1/1", Duration::from_secs(30));

    tm.keys(&["q"]);
    tm.wait_exit(Duration::from_secs(10));
    let path = session_file(&sb);
    let ns = nodes(&path);
    assert_eq!(ns.len(), 2, "{ns:#?}");
    let b = &ns[1];
    assert_eq!(meta(b, "branch_of"), Some("1"));
    assert_eq!(meta(b, "branch_token"), Some("3"));
    let text = b["text"].as_str().unwrap();
    assert!(text.starts_with("The capital of "), "{text}");
    assert_ne!(text, ns[0]["text"].as_str().unwrap());
    // Both answers' token probabilities are kept beside the session.
    let side = std::path::PathBuf::from(format!("{}.logprobs", path.display()));
    assert!(side.exists(), "{}", side.display());
}
