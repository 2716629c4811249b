//! Key sequences with the real binary in tmux: `space` shows the which-key hint listing the
//! technique keys, `t` completes `space t` and opens the answer tree, a sequence bound in the
//! user's keymap file (`g g`) acts, and a pending sequence left alone is cancelled by the
//! driver's timer (`sequence_timeout_ms`), which takes the hint away with no key pressed.

mod common;

use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::Sandbox;

const CONFIG: &str = r#"
default_model = "fake"
keymap = "keys.toml"
sequence_timeout_ms = 1500
[models.fake]
backend = "scripted"
reply = "The capital is London."
delay_ms = 5
"#;

/// `g` is `propose` in the defaults: freed, so it can start `g g`.
const KEYS: &str = r#"
[normal]
"g" = "none"
"g g" = "zoom"
"#;

const PROMPT: &str = r#"title = "Capitals"
[defaults]
model = "fake"

[[variant]]
name = "plain"
template = "What is the capital of {{country}}?"

[[variant]]
name = "teacher"
system = "You teach."
template = "What is the capital of {{country}}?"

[[case]]
vars = { country = "England" }
expect = { any = ["London"] }
"#;

#[test]
fn sequences_show_their_hint_complete_and_time_out() {
    let sb = Sandbox::new(CONFIG);
    sb.write("keys.toml", KEYS);
    sb.write("prompts/capitals.toml", PROMPT);
    let tm = Tmux::start(&sb, &["prompts/capitals.toml"]);
    tm.wait_for("to run.", Duration::from_secs(20));
    tm.keys(&["Enter"]);
    tm.wait_until("both answers", Duration::from_secs(20), |s| {
        s.matches("The capital is London.").count() >= 2
    });

    // `space`: the hint lists what can follow, with each key's help.
    tm.keys(&["Space"]);
    let screen = tm.wait_for("Esc cancels", Duration::from_secs(5));
    assert!(screen.contains("space …"), "{screen}");
    assert!(
        screen.contains("Critique the answer, then rewrite it"),
        "{screen}"
    );
    assert!(
        screen.contains("Show the answer tree of this case"),
        "{screen}"
    );
    // `t` completes `space t`: the tree opens, the hint is gone.
    tm.keys(&["t"]);
    let screen = tm.wait_for(" Tree · case ", Duration::from_secs(5));
    assert!(!screen.contains("Esc cancels"), "{screen}");
    tm.keys(&["Escape"]);
    tm.wait_until("the tree closed", Duration::from_secs(5), |s| {
        !s.contains(" Tree · case ")
    });

    // Esc cancels a pending sequence and nothing else happens.
    tm.keys(&["Space"]);
    tm.wait_for("Esc cancels", Duration::from_secs(5));
    tm.keys(&["Escape"]);
    let screen = tm.wait_until("the hint gone", Duration::from_secs(5), |s| {
        !s.contains("Esc cancels")
    });
    assert!(screen.contains("teacher"), "{screen}");

    // The user's `g g` zooms the focused pane: the other pane's title leaves the screen.
    tm.keys(&["g"]);
    let screen = tm.wait_for("Esc cancels", Duration::from_secs(5));
    assert!(screen.contains("g …"), "{screen}");
    assert!(
        screen.contains("Zoom the focused pane to full screen"),
        "{screen}"
    );
    tm.keys(&["g"]);
    tm.wait_until("zoomed", Duration::from_secs(5), |s| {
        !s.contains("teacher") && !s.contains("Esc cancels")
    });
    tm.keys(&["g", "g"]);
    tm.wait_until("unzoomed", Duration::from_secs(5), |s| {
        s.contains("teacher")
    });

    // Left alone, a pending sequence times out through the driver's timer: no key pressed.
    tm.keys(&["Space"]);
    let t0 = Instant::now();
    tm.wait_for("Esc cancels", Duration::from_secs(5));
    tm.wait_until("the timeout", Duration::from_secs(10), |s| {
        !s.contains("Esc cancels")
    });
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1200),
        "the hint went after {waited:?}, before the 1500 ms timeout"
    );
    // The sequence really ended: `q` quits (still pending, it would be `space q`, unbound).
    tm.keys(&["q"]);
    tm.wait_exit(Duration::from_secs(10));
}
