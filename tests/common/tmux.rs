//! A real terminal for end-to-end tests: the binary inside a private tmux server, driven
//! with `send-keys` and read with `capture-pane`. (The same harness as `tui_tmux.rs`.)
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Sandbox, BIN};

/// A tmux server of our own, killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(sb: &Sandbox, args: &[&str], env: &[(&str, String)]) -> Tmux {
        let socket = format!("promptloom-test-{}-{}", std::process::id(), rand_suffix());
        let mut cmd = format!("cd {} && exec env", shell_quote(sb.dir.path()));
        for (k, v) in env {
            cmd.push_str(&format!(" {k}={}", shell_quote(Path::new(v))));
        }
        cmd.push_str(&format!(
            " PROMPTLOOM_CONFIG={} PROMPTLOOM_DATA_DIR={} PROMPTLOOM_STATE_DIR={} {}",
            shell_quote(&sb.path("config.toml")),
            shell_quote(&sb.path("data")),
            shell_quote(&sb.path("state")),
            shell_quote(Path::new(BIN)),
        ));
        for a in args {
            cmd.push(' ');
            cmd.push_str(&shell_quote(Path::new(a)));
        }
        let st = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
                "-s",
                "t",
                &cmd,
            ])
            .env_remove("TMUX")
            .status()
            .expect("tmux runs");
        assert!(st.success(), "tmux new-session failed");
        Tmux { socket }
    }

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

    pub fn wait_for(&self, what: &str, timeout: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let c = self.capture();
            if c.contains(what) {
                return c;
            }
            if t0.elapsed() > timeout {
                panic!("timed out waiting for {what:?}; screen:\n{c}");
            }
            std::thread::sleep(Duration::from_millis(100));
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

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 % 1_000_000_007)
        .unwrap_or(0)
}

pub fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}
