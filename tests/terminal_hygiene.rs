//! Terminal hygiene with the real binary under a job-control shell in tmux: Ctrl-Z stops it
//! and gives the shell its screen back, `fg` brings the UI back; a storm of resizes while
//! answers stream doesn't crash it; `q` still saves.

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
        let socket = format!("promptloom-hygiene-{}", std::process::id());
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
