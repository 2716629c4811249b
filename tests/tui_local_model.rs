//! The playground with the real local model (SmolLM2-135M, greedy), in tmux. Needs the
//! `local` feature and the model file (`make model`).
#![cfg(feature = "local")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{parse_toml, require_default_model, Sandbox, BIN};

#[test]
fn capitals_stream_from_the_local_model_in_tmux() {
    let model = require_default_model();
    let sb = Sandbox::new(&format!(
        "default_model = \"smollm2\"\n[models.smollm2]\nbackend = \"local\"\ngguf = \"{}\"\n",
        model.display()
    ));
    sb.write(
        "prompts/capitals.toml",
        "title = \"Capitals\"\n[defaults]\nmodel = \"smollm2\"\ntemperature = 0.0\nmax_tokens = 24\n\n[[variant]]\nname = \"plain\"\ntemplate = \"What is the capital of {{country}}?\"\n\n[[variant]]\nname = \"teacher\"\nsystem = \"You are a geography teacher. Answer in one short sentence.\"\ntemplate = \"What is the capital of {{country}}?\"\n\n[[case]]\nvars = { country = \"England\" }\nexpect = { any = [\"London\"] }\n",
    );
    let socket = format!("promptloom-local-{}", std::process::id());
    let cmd = format!(
        "cd '{}' && exec env PROMPTLOOM_CONFIG='{}' PROMPTLOOM_DATA_DIR='{}' PROMPTLOOM_STATE_DIR='{}' '{}' prompts/capitals.toml",
        sb.dir.path().display(),
        sb.path("config.toml").display(),
        sb.path("data").display(),
        sb.path("state").display(),
        BIN
    );
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux")
    };
    assert!(tmux(&[
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "40",
        "-s",
        "t",
        &cmd
    ])
    .status
    .success());
    let capture =
        || String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned();
    let wait = |what: &str, secs: u64| {
        let t0 = Instant::now();
        loop {
            let c = capture();
            if c.contains(what) {
                return c;
            }
            if t0.elapsed() > Duration::from_secs(secs) {
                let _ = tmux(&["kill-server"]);
                panic!("timed out waiting for {what:?}:\n{c}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait("to run.", 60);
    tmux(&["send-keys", "-t", "t", "Enter"]);
    let screen = wait("✓ 1/1", 300);
    println!("{screen}");
    assert!(screen.contains("London"), "{screen}");
    assert!(screen.contains("smollm2 ready"), "{screen}");
    // Let the other pane finish too, then quit.
    let t0 = Instant::now();
    while {
        let c = capture();
        c.contains("streaming") || c.contains("waiting") || c.contains("queued")
    } && t0.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_millis(300));
    }
    tmux(&["send-keys", "-t", "t", "q"]);
    let t0 = Instant::now();
    while tmux(&["has-session", "-t", "t"]).status.success() {
        assert!(t0.elapsed() < Duration::from_secs(30), "did not quit");
        std::thread::sleep(Duration::from_millis(200));
    }
    let dir = sb.path("data/sessions");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let t = parse_toml(&file);
    let nodes = t["node"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for n in nodes {
        assert_eq!(n["status"].as_str(), Some("done"), "{n:#?}");
    }
    // A 135M model is not always right, but one of the two variants says London.
    assert!(nodes
        .iter()
        .any(|n| n["text"].as_str().unwrap_or("").contains("London")));
    assert_eq!(t["models"]["smollm2"]["backend"].as_str(), Some("local"));
}
