//! Helpers shared by the end-to-end tests: run the real binary in a sandboxed environment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_promptloom");

/// A temporary home for one test: config, data and state dirs of its own.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new(config: &str) -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.toml"), config).expect("write config");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        Sandbox { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }

    /// The binary with this sandbox's config and data dir; runs in the sandbox folder.
    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.dir.path())
            .env("PROMPTLOOM_CONFIG", self.path("config.toml"))
            .env("PROMPTLOOM_DATA_DIR", self.path("data"))
            .env("PROMPTLOOM_STATE_DIR", self.path("state"))
            .env_remove("NO_COLOR");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run promptloom")
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The data dir's models folder, where `make model` puts the models.
pub fn models_dir() -> PathBuf {
    let data = std::env::var_os("PROMPTLOOM_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            directories::ProjectDirs::from("", "", "promptloom").map(|p| p.data_dir().to_path_buf())
        })
        .expect("a data dir");
    data.join("models")
}

/// Where `make model` puts the default model (the shipped file re-quantized to Q8_0).
pub fn default_model_path() -> PathBuf {
    models_dir().join("SmolLM2-135M-Instruct.Q8_0.gguf")
}

/// The file as shipped on PyPI.
pub fn shipped_model_path() -> PathBuf {
    models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Fail (not skip) with instructions when the model is missing.
pub fn require_default_model() -> PathBuf {
    let p = default_model_path();
    assert!(
        p.is_file(),
        "the default model is missing at {}; run `make model` (or `promptloom model fetch`) first",
        p.display()
    );
    p
}

pub fn parse_toml(path: &Path) -> toml::Table {
    let t = std::fs::read_to_string(path).expect("read session");
    t.parse::<toml::Table>().expect("session parses as TOML")
}
pub mod tmux;

/// The messages (role, content) a session node sent, resolved through the session file's
/// `[[message]]` pool (format 2).
pub fn sent(path: &Path, node: &toml::Table) -> Vec<(String, String)> {
    let file = parse_toml(path);
    let pool = file["message"].as_array().expect("[[message]] tables");
    node["messages"]
        .as_array()
        .expect("node.messages")
        .iter()
        .map(|id| {
            let m = pool
                .iter()
                .find(|m| m["id"].as_integer() == id.as_integer())
                .expect("every message id is defined");
            (
                m["role"].as_str().unwrap_or_default().to_string(),
                m["content"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}
