//! The playground end to end in a real terminal: the real binary inside tmux, driven with
//! `send-keys`, checked with `capture-pane` and the saved session file.

mod common;

use std::process::Command;
use std::time::Duration;

use common::tmux::{session_file, Tmux};
use common::{parse_toml, Sandbox};

const CONFIG: &str = r#"
default_model = "fake"
[models.fake]
backend = "scripted"
reply = "You asked: {prompt}"
rules = [ { when = "England", reply = "The capital of England is London. (You asked: {prompt})" } ]
delay_ms = 20

[models.slow]
backend = "scripted"
reply = "Line of a long answer about {prompt}\n"
repeat = 200
delay_ms = 40
"#;

const PROMPT: &str = r#"title = "Capitals"
[defaults]
model = "fake"

[[variant]]
name = "plain"
template = "What is the capital of {{country}}?"

[[variant]]
name = "long"
model = "slow"
template = "Tell me about {{country}}."

[[case]]
vars = { country = "England" }
expect = { any = ["London"] }

[[case]]
vars = { country = "Italy" }
expect = { any = ["Rome"] }
"#;

fn nodes(t: &toml::Table) -> Vec<toml::Table> {
    t.get("node")
        .and_then(|n| n.as_array())
        .map(|a| a.iter().filter_map(|n| n.as_table().cloned()).collect())
        .unwrap_or_default()
}

fn s<'a>(t: &'a toml::Table, k: &str) -> &'a str {
    t.get(k).and_then(|v| v.as_str()).unwrap_or("")
}

#[test]
fn run_focus_scroll_cancel_edit_and_quit_in_tmux() {
    let sb = Sandbox::new(CONFIG);
    sb.write("prompts/capitals.toml", PROMPT);
    let tm = Tmux::start(&sb, &["prompts/capitals.toml"]);
    let screen = tm.wait_for("to run.", Duration::from_secs(20));
    assert!(screen.contains("prompts/capitals.toml"), "{screen}");
    assert!(screen.contains("case England [1/2]"), "{screen}");
    assert!(screen.contains(" plain · fake"), "{screen}");
    assert!(screen.contains(" long · slow"), "{screen}");

    // Run both; the short one finishes and passes its check.
    tm.keys(&["Enter"]);
    let screen = tm.wait_for("✓ 1/1", Duration::from_secs(20));
    assert!(
        screen.contains("The capital of England is London."),
        "{screen}"
    );
    assert!(screen.contains("streaming"), "{screen}");

    // Focus the long one, let it stream a while, scroll up to the top, then cancel it.
    tm.keys(&["l"]);
    std::thread::sleep(Duration::from_millis(1500));
    tm.keys(&["Home"]);
    let top = tm.capture();
    tm.keys(&["Escape"]);
    let screen = tm.wait_for("cancelled", Duration::from_secs(5));
    assert!(top.contains("Line of a long answer"), "{top}");
    // Scrolled to the top: the pane shows its first line right under the status line and
    // the compact prompt (which ends with a ┄ rule).
    let rule = top.lines().position(|l| l.contains("┄┄┄┄")).unwrap_or(3);
    let row_after_prompt = top.lines().nth(rule + 1).unwrap_or("");
    assert!(
        row_after_prompt.contains("│Line of a long answer about Tell me about England."),
        "{top}"
    );
    // Following resumes at the end with G; j/k move by a line.
    // The footer shows keys from the keymap.
    assert!(screen.contains("? help"), "{screen}");

    // Edit the plain variant in the in-app editor: append to its template.
    tm.keys(&["h", "e"]);
    let ed = tm.wait_for("Ctrl-S apply", Duration::from_secs(5));
    let row_of = |what: &str| ed.lines().position(|l| l.contains(what)).expect(what);
    let template_row = row_of("template = ") - row_of("# Edit this variant");
    for _ in 0..template_row {
        tm.keys(&["Down"]);
    }
    tm.keys(&["End"]);
    tm.keys(&["Left"]);
    tm.keys(&["-l", " Answer briefly."]);
    tm.keys(&["C-s"]);
    let screen = tm.wait_for("[modified]", Duration::from_secs(5));
    assert!(!screen.contains("Ctrl-S apply"), "{screen}");

    // Rerun the focused (edited) variant; the answer echoes the new prompt.
    tm.keys(&["R"]);
    tm.wait_for("Answer briefly.)", Duration::from_secs(10));

    // Switch case and back.
    tm.keys(&["]"]);
    tm.wait_for("case Italy [2/2]", Duration::from_secs(5));
    tm.keys(&["["]);
    tm.wait_for("case England [1/2]", Duration::from_secs(5));

    // Quit: the session is saved.
    tm.keys(&["q"]);
    tm.wait_exit(Duration::from_secs(10));
    let path = session_file(&sb);
    let t = parse_toml(&path);
    let ns = nodes(&t);
    assert_eq!(ns.len(), 3, "{t:#?}");
    let first = &ns[0];
    assert_eq!(s(first, "variant"), "plain");
    assert_eq!(s(first, "status"), "done");
    assert!(s(first, "text").contains("London"));
    assert!(!s(first, "text").contains("Answer briefly"));
    let long = ns.iter().find(|n| s(n, "variant") == "long").unwrap();
    assert_eq!(s(long, "status"), "cancelled");
    assert!(s(long, "text").contains("Line of a long answer"));
    let rerun = &ns[2];
    assert_eq!(s(rerun, "variant"), "plain");
    let req = &common::sent(&path, rerun)[0].1;
    assert_eq!(req, "What is the capital of England? Answer briefly.");
    // The session records the edited variant.
    let v0 = t["variant"].as_array().unwrap()[0].as_table().unwrap();
    assert_eq!(
        s(v0, "template"),
        "What is the capital of {{country}}? Answer briefly."
    );
}

#[test]
fn idle_cpu_is_near_zero_and_sigterm_restores_and_saves() {
    let sb = Sandbox::new(CONFIG);
    sb.write("prompts/capitals.toml", PROMPT);
    let tm = Tmux::start(&sb, &["prompts/capitals.toml"]);
    tm.wait_for("to run.", Duration::from_secs(20));
    let pid = tm.pid().expect("pane pid");
    let ticks = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = ticks(pid) - before;
    // Clock ticks are 1/100 s: 3 ticks over 3 s is 1% CPU.
    assert!(used <= 3, "idle process used {used} ticks in 3 s");
    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    tm.wait_exit(Duration::from_secs(10));
    let path = session_file(&sb);
    assert!(parse_toml(&path).get("variant").is_some());
}

#[test]
fn external_editor_gets_the_terminal_and_its_edit_is_applied() {
    let sb = Sandbox::new(CONFIG);
    sb.write("prompts/capitals.toml", PROMPT);
    // A non-interactive "editor" that rewrites the template in place.
    let tm = Tmux::start_env(
        &sb,
        &["prompts/capitals.toml"],
        &[("EDITOR", "sed -i s/What.is/Which.is/".to_string())],
    );
    tm.wait_for("to run.", Duration::from_secs(20));
    tm.keys(&["E"]);
    tm.wait_for("[modified]", Duration::from_secs(10));
    tm.keys(&["R"]);
    let screen = tm.wait_for("You asked: Which.is", Duration::from_secs(10));
    assert!(screen.contains(" plain · fake"), "{screen}");
    tm.keys(&["q"]);
    tm.wait_exit(Duration::from_secs(10));
}
