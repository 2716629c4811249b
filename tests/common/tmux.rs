//! The real binary in a tmux server of its own (120×40), driven with `send-keys` and read
//! with `capture-pane`; the server is killed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Sandbox, BIN};

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Start `promptloom ARGS` in the sandbox folder with its config, data and state dirs.
    pub fn start(sb: &Sandbox, args: &[&str]) -> Tmux {
        Tmux::start_env(sb, args, &[])
    }

    /// [`Tmux::start`] with extra environment variables.
    pub fn start_env(sb: &Sandbox, args: &[&str], env: &[(&str, String)]) -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() % 1_000_000_007)
            .unwrap_or(0);
        let socket = format!("promptloom-test-{}-{nanos}", std::process::id());
        let mut cmd = format!("cd {} && exec env", quote(sb.dir.path()));
        for (k, v) in env {
            cmd.push_str(&format!(" {k}={}", quote(Path::new(v))));
        }
        cmd.push_str(&format!(
            " PROMPTLOOM_CONFIG={} PROMPTLOOM_DATA_DIR={} PROMPTLOOM_STATE_DIR={} {}",
            quote(&sb.path("config.toml")),
            quote(&sb.path("data")),
            quote(&sb.path("state")),
            quote(Path::new(BIN)),
        ));
        for a in args {
            cmd.push(' ');
            cmd.push_str(&quote(Path::new(a)));
        }
        let st = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "120", "-y", "40", "-s", "t", &cmd])
            .env_remove("TMUX")
            .status()
            .expect("tmux runs");
        assert!(st.success(), "tmux new-session failed");
        Tmux { socket }
    }

    /// Send keys (tmux names: `Enter`, `Escape`, `C-c`, or literal characters).
    pub fn keys(&self, keys: &[&str]) {
        let st = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "t"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(st.success());
        std::thread::sleep(Duration::from_millis(150));
    }

    pub fn capture(&self) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "t"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The screen once it shows `what`; panics with the screen after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let c = self.capture();
            if c.contains(what) {
                return c;
            }
            assert!(
                t0.elapsed() < timeout,
                "timed out waiting for {what:?}; screen:\n{c}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The screen once `pred` holds.
    pub fn wait_until(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let c = self.capture();
            if pred(&c) {
                return c;
            }
            assert!(
                t0.elapsed() < timeout,
                "timed out waiting for {what}; screen:\n{c}"
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    pub fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["-L", &self.socket, "has-session", "-t", "t"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    pub fn wait_exit(&self, timeout: Duration) {
        let t0 = Instant::now();
        while self.alive() {
            assert!(
                t0.elapsed() < timeout,
                "promptloom did not exit:\n{}",
                self.capture()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Tmux {
    /// The pid of the process in the pane (promptloom, after `exec`).
    pub fn pid(&self) -> Option<u32> {
        let o = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "list-panes",
                "-t",
                "t",
                "-F",
                "#{pane_pid}",
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    }
}

impl Tmux {
    /// Keep the pane after promptloom exits, so what it printed on leaving the alternate
    /// screen (stderr) can be read with [`Tmux::wait_dead`].
    pub fn remain_on_exit(&self) {
        let st = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "set-option",
                "-t",
                "t",
                "remain-on-exit",
                "on",
            ])
            .status()
            .expect("tmux set-option");
        assert!(st.success());
    }

    /// After [`Tmux::remain_on_exit`]: wait until the process has exited; the pane's text.
    pub fn wait_dead(&self, timeout: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let o = Command::new("tmux")
                .args(["-L", &self.socket, "display-message", "-p", "-t", "t"])
                .arg("#{pane_dead}")
                .output()
                .expect("tmux display-message");
            if String::from_utf8_lossy(&o.stdout).trim() == "1" {
                return self.capture();
            }
            assert!(
                t0.elapsed() < timeout,
                "promptloom did not exit:\n{}",
                self.capture()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// The one session file the app wrote in the sandbox.
pub fn session_file(sb: &Sandbox) -> PathBuf {
    let dir = sb.path("data/sessions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.remove(0)
}

/// The session's nodes.
pub fn nodes(path: &Path) -> Vec<toml::Table> {
    super::parse_toml(path)
        .get("node")
        .and_then(|n| n.as_array())
        .map(|a| a.iter().filter_map(|n| n.as_table().cloned()).collect())
        .unwrap_or_default()
}

pub fn field<'a>(t: &'a toml::Table, k: &str) -> &'a str {
    t.get(k).and_then(|v| v.as_str()).unwrap_or("")
}

pub fn meta<'a>(t: &'a toml::Table, k: &str) -> Option<&'a str> {
    t.get("meta")
        .and_then(|m| m.get(k))
        .and_then(|v| v.as_str())
}
