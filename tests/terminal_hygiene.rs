//! Terminal hygiene with the real binary under a job-control shell in tmux: Ctrl-Z stops it
//! and gives the shell its screen back, `fg` brings the UI back; a storm of resizes while
//! answers stream doesn't crash it; `q` still saves. A panic (made on purpose with
//! `PROMPTLOOM_PANIC_AFTER_FRAMES`, see `src/app/crash.rs`) and SIGTERM, both mid-stream, give
//! the shell its screen back and leave the session saved with the answers so far.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Sandbox, BIN};

const CONFIG: &str = r#"
default_model = "slow"
[models.slow]
backend = "scripted"
reply = "Line of a long answer about {prompt}\n"
repeat = 300
delay_ms = 10
"#;

const PROMPT: &str = "title = \"Capitals\"\n[[variant]]\nname = \"plain\"\ntemplate = \"What is the capital of {{country}}?\"\n[[variant]]\nname = \"other\"\ntemplate = \"Name the capital of {{country}}.\"\n[[case]]\nvars = { country = \"England\" }\n";

struct Shell {
    socket: String,
}

impl Shell {
    fn start() -> Shell {
        Shell::named("storm")
    }

    /// One tmux server per test (the tests of this file run in parallel).
    fn named(test: &str) -> Shell {
        let socket = format!("promptloom-hygiene-{}-{test}", std::process::id());
        let st = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "120", "-y", "40", "-s", "t"])
            .args(["bash", "--norc", "--noprofile", "-i"])
            .env_remove("TMUX")
            .env("PS1", "$ ")
            .status()
            .expect("tmux runs");
        assert!(st.success());
        Shell { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", "t"];
        a.extend_from_slice(keys);
        self.tmux(&a);
        std::thread::sleep(Duration::from_millis(150));
    }

    fn wait_for(&self, what: &str, timeout: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let c = self.tmux(&["capture-pane", "-p", "-t", "t"]);
            if c.contains(what) {
                return c;
            }
            assert!(
                t0.elapsed() < timeout,
                "timed out waiting for {what:?}:\n{c}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// The state letter of the promptloom process (R, S, T for stopped, ...).
fn state_of(pid: u32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(str::to_string))
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.chars().next()))
        .unwrap_or('?')
}

fn promptloom_pid(sb: &Sandbox) -> u32 {
    let t0 = Instant::now();
    loop {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            if cwd.as_deref() == Some(sb.dir.path())
                && exe.is_some_and(|x| x.to_string_lossy().contains("promptloom"))
            {
                return pid;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no promptloom process"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ctrl_z_suspends_fg_restores_and_a_resize_storm_does_not_crash() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let sb = Sandbox::new(CONFIG);
    sb.write("prompts/capitals.toml", PROMPT);
    let sh = Shell::start();
    let cmd = format!(
        "cd '{}' && PROMPTLOOM_CONFIG=config.toml PROMPTLOOM_DATA_DIR=data PROMPTLOOM_STATE_DIR=state '{BIN}' prompts/capitals.toml",
        sb.dir.path().display()
    );
    sh.keys(&[&cmd, "Enter"]);
    sh.wait_for("to run.", Duration::from_secs(20));
    let pid = promptloom_pid(&sb);

    // Ctrl-Z: stopped, and the shell has its screen back.
    sh.keys(&["C-z"]);
    let screen = sh.wait_for("Stopped", Duration::from_secs(10));
    assert!(
        !screen.contains("to run."),
        "the UI is still on screen:\n{screen}"
    );
    assert_eq!(state_of(pid), 'T');
    // fg: the UI is drawn again, in full.
    sh.keys(&["fg", "Enter"]);
    sh.wait_for("to run.", Duration::from_secs(10));
    assert_ne!(state_of(pid), 'T');

    // Start streaming into both panes, then resize the window 80 times.
    sh.keys(&["Enter"]);
    let t0 = Instant::now();
    for i in 0..80u32 {
        let w = 20 + (i * 37) % 180;
        let h = 5 + (i * 13) % 60;
        sh.tmux(&[
            "resize-window",
            "-t",
            "t",
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
        ]);
        if i.is_multiple_of(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let storm = t0.elapsed();
    sh.tmux(&["resize-window", "-t", "t", "-x", "120", "-y", "40"]);
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "promptloom died in the resize storm"
    );
    sh.wait_for("Line of a long answer", Duration::from_secs(10));
    // Still responsive: quit saves and hands the shell back.
    sh.keys(&["q"]);
    let t1 = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            t1.elapsed() < Duration::from_secs(15),
            "promptloom did not quit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let sessions: Vec<_> = std::fs::read_dir(sb.path("data/sessions"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(sessions.len(), 1);
    eprintln!(
        "Ctrl-Z/fg ok; 80 resizes in {:.2} s survived",
        storm.as_secs_f64()
    );
}

/// How the app is stopped mid-stream.
enum Stop {
    Panic,
    Sigterm,
}

/// Start streaming into both panes, stop the app mid-stream, and check that the shell has
/// its normal screen back (no alternate screen, no mouse capture) and that the session file
/// holds both answers as far as they got.
fn stopped_mid_stream_restores_the_terminal_and_saves(stop: Stop) -> String {
    let sb = Sandbox::new(CONFIG);
    sb.write("prompts/capitals.toml", PROMPT);
    let (tag, env) = match stop {
        Stop::Panic => ("panic", "PROMPTLOOM_PANIC_AFTER_FRAMES=40 "),
        Stop::Sigterm => ("sigterm", ""),
    };
    let sh = Shell::named(tag);
    let cmd = format!(
        "cd '{}' && {env}RUST_BACKTRACE=0 PROMPTLOOM_CONFIG=config.toml PROMPTLOOM_DATA_DIR=data PROMPTLOOM_STATE_DIR=state '{BIN}' prompts/capitals.toml; echo \"ex\"\"it=$?\"",
        sb.dir.path().display()
    );
    sh.keys(&[&cmd, "Enter"]);
    sh.wait_for("to run.", Duration::from_secs(20));
    let pid = promptloom_pid(&sb);
    sh.keys(&["Enter"]);
    if let Stop::Sigterm = stop {
        sh.wait_for("Line of a long answer", Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(300));
        let st = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
    // The typed command reads `ex""it=`: only the shell's echo, after promptloom ended,
    // writes `exit=` (a panic leaves the command line on the restored screen).
    let screen = sh.wait_for("exit=", Duration::from_secs(30));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "promptloom still runs"
    );
    for flag in ["#{alternate_on}", "#{mouse_any_flag}"] {
        let v = sh.tmux(&["display-message", "-p", "-t", "t", flag]);
        assert_eq!(v.trim(), "0", "{flag} after exit:\n{screen}");
    }
    assert!(
        !screen.contains("to run."),
        "the UI is still on screen:\n{screen}"
    );
    // The answers as far as they got: both nodes, text in them, at least one cut short.
    let file = common::tmux::session_file(&sb);
    let nodes = common::tmux::nodes(&file);
    assert_eq!(
        nodes.len(),
        2,
        "{}",
        std::fs::read_to_string(&file).unwrap()
    );
    for n in &nodes {
        assert!(
            common::tmux::field(n, "text").starts_with("Line of a long answer"),
            "{n:?}"
        );
    }
    assert!(
        nodes
            .iter()
            .any(|n| common::tmux::field(n, "status") != "done"),
        "both answers finished before the stop; the test proves nothing"
    );
    screen
}

#[test]
fn a_panic_restores_the_terminal_and_leaves_the_session_saved() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let screen = stopped_mid_stream_restores_the_terminal_and_saves(Stop::Panic);
    assert!(
        screen.contains("PROMPTLOOM_PANIC_AFTER_FRAMES=40: deliberate panic"),
        "{screen}"
    );
    assert!(
        screen.contains("promptloom crashed; session saved to"),
        "{screen}"
    );
    assert!(screen.contains("exit=101"), "{screen}");
}

#[test]
fn sigterm_restores_the_terminal_and_leaves_the_session_saved() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let screen = stopped_mid_stream_restores_the_terminal_and_saves(Stop::Sigterm);
    assert!(screen.contains("session saved to"), "{screen}");
    assert!(screen.contains("exit=0"), "{screen}");
}
