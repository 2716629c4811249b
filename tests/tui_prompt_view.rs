//! The prompt beside its answer, with the real binary in tmux: visible the moment the app
//! opens (before anything runs), `o` expands it to the full chat as sent and folds it again,
//! `=` shows the word diff against the other pane's prompt.

mod common;

use std::time::Duration;

use common::tmux::Tmux;
use common::Sandbox;

const CONFIG: &str = r#"
default_model = "fake"
[models.fake]
backend = "scripted"
reply = "You asked: {prompt}"
delay_ms = 10
"#;

const PROMPT: &str = r#"title = "Capitals"
[defaults]
model = "fake"

[[variant]]
name = "few-shot"
system = "You are a geography teacher."
template = "What is the capital of {{country}}?"
examples = [
  { input = "What is the capital of France?", output = "Paris." },
  { input = "What is the capital of Japan?", output = "Tokyo." },
]

[[variant]]
name = "in-context"
template = "What is the capital of {{country}}?"
context = ["England's capital is London."]
step_by_step = true

[[case]]
vars = { country = "England" }
expect = { any = ["London"] }
"#;

#[test]
fn the_prompt_shows_on_open_expands_folds_and_diffs() {
    let sb = Sandbox::new(CONFIG);
    sb.write("prompts/capitals.toml", PROMPT);
    let tm = Tmux::start(&sb, &["prompts/capitals.toml"]);
    // On open, before any run: each pane says what it will send.
    let screen = tm.wait_for("▸ prompt", Duration::from_secs(20));
    assert!(
        screen.contains("system: You are a geography teacher."),
        "{screen}"
    );
    assert!(screen.contains("2 example(s)"), "{screen}");
    assert!(screen.contains("1 passage(s)"), "{screen}");
    assert!(screen.contains("step by step"), "{screen}");
    assert!(
        screen.matches("What is the capital of England?").count() >= 2,
        "{screen}"
    );
    assert!(screen.contains("to run."), "{screen}");

    // `o` expands the focused pane to the full chat as it will be sent.
    tm.keys(&["o"]);
    let screen = tm.wait_for("▾ prompt", Duration::from_secs(5));
    assert!(screen.contains("┄ system"), "{screen}");
    assert!(screen.contains("┄ example 1/2 · user"), "{screen}");
    assert!(screen.contains("┄ example 2/2 · assistant"), "{screen}");
    assert!(screen.contains("Tokyo."), "{screen}");
    // And folds it again.
    tm.keys(&["o"]);
    std::thread::sleep(Duration::from_millis(300));
    let screen = tm.capture();
    assert!(!screen.contains("┄ example 1/2"), "{screen}");

    // Run, expand the in-context pane: the chat as sent, technique blocks labelled.
    tm.keys(&["Enter"]);
    tm.wait_for("✓ 1/1", Duration::from_secs(20));
    tm.keys(&["l", "o"]);
    let screen = tm.wait_for("the chat as sent", Duration::from_secs(5));
    assert!(screen.contains("┆ in-context instruction"), "{screen}");
    assert!(screen.contains("┆ context 1/1 (pasted)"), "{screen}");
    assert!(screen.contains("┆ step-by-step cue"), "{screen}");

    // `=`: the word diff of this prompt against the other pane's.
    tm.keys(&["="]);
    let screen = tm.wait_for("Prompt diff few-shot → in-context", Duration::from_secs(5));
    // Word by word: the role only the other pane sends is among the removed words.
    assert!(screen.contains("[system]"), "{screen}");
    assert!(screen.contains("geography"), "{screen}");
    tm.keys(&["Escape"]);
    tm.keys(&["q"]);
}
