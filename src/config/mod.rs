//! Configuration: named models, the default model, where files live.
//!
//! Defaults are embedded (`default.toml`); the user's `config.toml` (from `--config`,
//! `$PROMPTLOOM_CONFIG`, or the platform config dir) is merged over them. Unknown keys are
//! errors with file, line and column.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::InputError;
use crate::price::{Price, PriceTable};

pub(crate) mod keymap;
pub(crate) mod theme;

const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The kinds of backend a model can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BackendKind {
    Local,
    Openai,
    Anthropic,
    Ollama,
    Scripted,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Openai => "openai",
            BackendKind::Anthropic => "anthropic",
            BackendKind::Ollama => "ollama",
            BackendKind::Scripted => "scripted",
        }
    }
}

/// One scripted rule: when the last user message (or tool result) contains `when`, answer
/// `reply`, then make `tool_calls` (a turn that ends with calls).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScriptRule {
    pub when: String,
    #[serde(default)]
    pub reply: String,
    #[serde(default)]
    pub tool_calls: Vec<ScriptCall>,
}

/// A tool call a scripted rule makes: `arguments` is sent as written (it need not be JSON, to
/// test how bad calls are handled).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScriptCall {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

/// What the user lets a `command` tool do, as written under `[tools.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolPolicy {
    /// Run this tool's command when a model calls it.
    #[serde(default)]
    pub allow: bool,
    /// Ask in the playground before each run (headless runs refuse it unless --allow-tools).
    #[serde(default)]
    pub confirm: bool,
}

/// An MCP server, as written under `[mcp.NAME]`: `command` + `args` (stdio) or `url`
/// (streamable HTTP).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct McpServer {
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub url: Option<String>,
    /// Prompt files may call this server's tools.
    #[serde(default)]
    pub allow: bool,
    #[serde(default)]
    pub confirm: bool,
}

/// A named model, as written under `[models.NAME]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelConfig {
    pub backend: BackendKind,
    // local
    /// GGUF file: a bare file name is looked up in `<data dir>/models/`; `~/` is expanded;
    /// other relative paths are relative to the config file.
    pub gguf: Option<String>,
    /// How many sequences the local engine batches at once.
    pub max_num_seqs: Option<usize>,
    /// LoRA adapters merged into the GGUF model's weights when it loads: directories in
    /// PEFT's layout (`adapter_config.json` + `adapter_model.safetensors`), resolved like
    /// `gguf`. Several adapters must target the same modules.
    #[serde(default)]
    pub lora: Vec<String>,
    // remote
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key_env: Option<String>,
    pub api_key: Option<String>,
    /// Seconds without a byte from the server before a stream is failed (default 60).
    pub idle_timeout_secs: Option<u64>,
    /// Seconds to connect (default 10).
    pub connect_timeout_secs: Option<u64>,
    /// Retries on 429/503 (default 3).
    pub max_retries: Option<u32>,
    /// Parameters to drop and retry without when the server rejects them (e.g. ["seed"]).
    #[serde(default)]
    pub drop_rejected_params: Vec<String>,
    /// Extra HTTP headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    // scripted
    /// Reply text; `{prompt}` is the last user message, `{system}` the system prompt.
    pub reply: Option<String>,
    #[serde(default)]
    pub rules: Vec<ScriptRule>,
    /// Replies picked by the request's seed (`seed % len`), when no rule matches: a
    /// sampled model's varying answers, reproducible by seed.
    #[serde(default)]
    pub replies: Vec<String>,
    /// Pause before the first chunk, in milliseconds.
    pub first_token_ms: Option<u64>,
    /// Pause between chunks, in milliseconds.
    pub delay_ms: Option<u64>,
    /// Characters per chunk; default one word (with its trailing space) per chunk.
    pub chunk_chars: Option<usize>,
    /// Fail with `error` after this many chunks.
    pub fail_after_chunks: Option<usize>,
    pub error: Option<String>,
    /// Repeat the reply this many times (long answers for benchmarks and scroll tests).
    pub repeat: Option<usize>,
    /// This model's answers end at this many bytes (default: the top-level setting).
    pub max_answer_bytes: Option<usize>,
    /// US dollars per million tokens, `{ input = 0.15, output = 0.60 }`. Local and scripted
    /// models cost 0 unless set; a remote model without a price has an unknown cost.
    pub price: Option<Price>,
    /// The model's tokenizer, to count tokens when the server sends no usage: a GGUF file of
    /// the same model (its tokenizer is read from the metadata) or a `tokenizer.json`,
    /// resolved like `gguf`. Counts made with it are marked as estimated. Without it such
    /// counts are approximated from the text (about 4 characters a token).
    pub tokenizer: Option<String>,
}

/// The `config.toml` file as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    default_model: Option<String>,
    theme: Option<String>,
    rater: Option<String>,
    /// A keymap file merged over the default key bindings.
    keymap: Option<String>,
    /// How long a started key sequence waits for its next key (0: until a key comes).
    sequence_timeout_ms: Option<u64>,
    /// Every answer ends at this many bytes, with finish reason `max_answer_bytes`.
    max_answer_bytes: Option<usize>,
    #[serde(default)]
    models: BTreeMap<String, ModelConfig>,
    #[serde(default)]
    tools: BTreeMap<String, ToolPolicy>,
    #[serde(default)]
    mcp: BTreeMap<String, McpServer>,
}

/// Where promptloom keeps files, after flags and environment overrides.
#[derive(Debug, Clone)]
pub(crate) struct Dirs {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
}

impl Dirs {
    /// `explicit_config` is `--config`; `$PROMPTLOOM_CONFIG` and `$PROMPTLOOM_DATA_DIR`
    /// override the platform directories.
    pub fn resolve(explicit_config: Option<&Path>) -> Dirs {
        let project = directories::ProjectDirs::from("", "", "promptloom");
        let config_file = explicit_config
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("PROMPTLOOM_CONFIG").map(PathBuf::from))
            .or_else(|| project.as_ref().map(|p| p.config_dir().join("config.toml")))
            .unwrap_or_else(|| PathBuf::from("promptloom.toml"));
        let data_dir = std::env::var_os("PROMPTLOOM_DATA_DIR")
            .map(PathBuf::from)
            .or_else(|| project.as_ref().map(|p| p.data_dir().to_path_buf()))
            .unwrap_or_else(|| PathBuf::from(".promptloom"));
        let state_dir = std::env::var_os("PROMPTLOOM_STATE_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                project
                    .as_ref()
                    .and_then(|p| p.state_dir().map(Path::to_path_buf))
            })
            .unwrap_or_else(|| data_dir.join("state"));
        Dirs {
            config_file,
            data_dir,
            state_dir,
        }
    }

    pub fn models_dir(&self) -> PathBuf {
        self.data_dir.join("models")
    }

    /// Where local model files' sha256 are remembered between starts.
    pub fn hash_cache(&self) -> PathBuf {
        self.data_dir.join("gguf-sha256.tsv")
    }

    pub fn sessions_dir(&self) -> PathBuf {
        self.data_dir.join("sessions")
    }
}

/// The merged configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub default_model: String,
    pub theme: Option<String>,
    pub rater: Option<String>,
    /// The user's keymap file, resolved like other configured paths.
    pub keymap: Option<PathBuf>,
    /// How long a started key sequence (`space c`) waits for its next key; 0: no limit.
    pub sequence_timeout_ms: u64,
    pub models: BTreeMap<String, ModelConfig>,
    /// Which `command` tools may run (`[tools.NAME]`).
    pub tools: BTreeMap<String, ToolPolicy>,
    /// MCP servers (`[mcp.NAME]`).
    pub mcp: BTreeMap<String, McpServer>,
    /// Answers end at this many bytes (a model may set its own).
    pub max_answer_bytes: usize,
    pub dirs: Dirs,
    /// The config file that was read, if one existed.
    pub source: Option<PathBuf>,
}

impl Config {
    /// Built-in defaults merged with the user's file when it exists. An explicit `--config`
    /// that does not exist is an error; a missing default location is not.
    pub fn load(dirs: Dirs, explicit: bool) -> Result<Config, InputError> {
        let mut config = Self::defaults(dirs.clone());
        let path = dirs.config_file.clone();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                config.merge_text(&path, &text)?;
                config.source = Some(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {}
            Err(e) => {
                return Err(InputError::io(&path, &e));
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// The embedded defaults alone.
    pub fn defaults(dirs: Dirs) -> Config {
        let file: ConfigFile = match toml::from_str(DEFAULT_CONFIG) {
            Ok(f) => f,
            // The embedded file is tested to parse; reaching this is a build defect.
            Err(e) => panic!("embedded default config is invalid: {e}"),
        };
        Config {
            default_model: file.default_model.unwrap_or_else(|| "smollm2".into()),
            theme: file.theme,
            rater: file.rater,
            keymap: None,
            sequence_timeout_ms: file
                .sequence_timeout_ms
                .unwrap_or(keymap::DEFAULT_SEQUENCE_TIMEOUT_MS),
            max_answer_bytes: file
                .max_answer_bytes
                .unwrap_or(crate::llm::capped::DEFAULT_MAX_ANSWER_BYTES),
            models: file.models,
            tools: file.tools,
            mcp: file.mcp,
            dirs,
            source: None,
        }
    }

    /// Merge a config file's text over this config.
    pub fn merge_text(&mut self, path: &Path, text: &str) -> Result<(), InputError> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| InputError::toml(path, text, &e))?;
        if let Some(d) = file.default_model {
            self.default_model = d;
        }
        if file.theme.is_some() {
            self.theme = file.theme;
        }
        if file.rater.is_some() {
            self.rater = file.rater;
        }
        if let Some(n) = file.max_answer_bytes {
            self.max_answer_bytes = n;
        }
        if let Some(ms) = file.sequence_timeout_ms {
            self.sequence_timeout_ms = ms;
        }
        if let Some(k) = file.keymap {
            let bare = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            self.keymap = Some(resolve_path(&k, &bare, path.parent()));
        }
        self.models.extend(file.models);
        self.tools.extend(file.tools);
        self.mcp.extend(file.mcp);
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<(), InputError> {
        let file = self
            .source
            .clone()
            .unwrap_or_else(|| PathBuf::from("<built-in config>"));
        if !self.models.contains_key(&self.default_model) {
            return Err(InputError::plain(
                &file,
                format!(
                    "default_model = {:?} is not a configured model; configured: {}",
                    self.default_model,
                    self.model_names().join(", ")
                ),
            ));
        }
        if self.max_answer_bytes == 0 {
            return Err(InputError::plain(
                &file,
                "max_answer_bytes = 0 would end every answer before it starts; use a positive number of bytes (default 1048576)",
            ));
        }
        for (name, m) in &self.mcp {
            match (&m.command, &m.url) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(InputError::plain(
                        &file,
                        format!("[mcp.{name}] needs exactly one of `command` (stdio) or `url` (streamable HTTP)"),
                    ))
                }
            }
        }
        for (name, m) in &self.models {
            if m.max_answer_bytes == Some(0) {
                return Err(InputError::plain(
                    &file,
                    format!("[models.{name}] max_answer_bytes = 0 would end every answer before it starts"),
                ));
            }
            let need = |field: &str, present: bool| -> Result<(), InputError> {
                if present {
                    Ok(())
                } else {
                    Err(InputError::plain(
                        &file,
                        format!(
                            "[models.{name}] uses backend = \"{}\" and needs `{field}`",
                            m.backend.as_str()
                        ),
                    ))
                }
            };
            if let Some(p) = m.price.filter(|p| !p.is_valid()) {
                return Err(InputError::plain(
                    &file,
                    format!(
                        "[models.{name}] price = {{ input = {}, output = {} }}: prices are US dollars per million tokens and can't be negative or non-finite",
                        p.input, p.output
                    ),
                ));
            }
            if m.api_key.is_some() {
                check_key_file_permissions(self.source.as_deref(), name)?;
            }
            if !m.lora.is_empty() && m.backend != BackendKind::Local {
                return Err(InputError::plain(
                    &file,
                    format!(
                        "[models.{name}] has lora adapters, but they load only on backend = \"local\" (this model uses backend = \"{}\")",
                        m.backend.as_str()
                    ),
                ));
            }
            match m.backend {
                BackendKind::Local => need("gguf", m.gguf.is_some())?,
                BackendKind::Openai | BackendKind::Anthropic | BackendKind::Ollama => {
                    need("base_url", m.base_url.is_some())?;
                    need("model", m.model.is_some())?;
                }
                BackendKind::Scripted => {}
            }
        }
        Ok(())
    }

    /// Every model's price: its `price`, else 0 for local and scripted models; remote models
    /// without one are left out (unknown cost).
    pub fn prices(&self) -> PriceTable {
        PriceTable(
            self.models
                .iter()
                .filter_map(|(name, m)| {
                    let free = matches!(m.backend, BackendKind::Local | BackendKind::Scripted);
                    m.price
                        .or(free.then_some(Price::FREE))
                        .map(|p| (name.clone(), p))
                })
                .collect(),
        )
    }

    pub fn model_names(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.get(name)
    }

    /// The GGUF path of a local model, resolved as documented on [`ModelConfig::gguf`].
    pub fn gguf_path(&self, model: &ModelConfig) -> Option<PathBuf> {
        let raw = model.gguf.as_deref()?;
        Some(resolve_path(
            raw,
            &self.dirs.models_dir(),
            self.source.as_deref().and_then(Path::parent),
        ))
    }

    /// The tokenizer file of a model, resolved as [`ModelConfig::gguf`] is.
    pub fn tokenizer_path(&self, model: &ModelConfig) -> Option<PathBuf> {
        let raw = model.tokenizer.as_deref()?;
        Some(resolve_path(
            raw,
            &self.dirs.models_dir(),
            self.source.as_deref().and_then(Path::parent),
        ))
    }

    /// The LoRA adapter directories of a model, resolved as [`ModelConfig::gguf`] is.
    pub fn lora_paths(&self, model: &ModelConfig) -> Vec<PathBuf> {
        model
            .lora
            .iter()
            .map(|raw| {
                resolve_path(
                    raw,
                    &self.dirs.models_dir(),
                    self.source.as_deref().and_then(Path::parent),
                )
            })
            .collect()
    }

    /// What the pane header shows after each model's name: its LoRA adapters' directory
    /// names (models without adapters are absent).
    pub fn adapter_labels(&self) -> BTreeMap<String, String> {
        self.models
            .iter()
            .filter(|(_, m)| !m.lora.is_empty())
            .map(|(name, m)| {
                let names: Vec<String> = self
                    .lora_paths(m)
                    .iter()
                    .map(|p| {
                        p.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_else(|| p.display().to_string())
                    })
                    .collect();
                (name.clone(), names.join(" + "))
            })
            .collect()
    }

    /// The rater name for ratings: config, else the OS user.
    pub fn rater_name(&self) -> String {
        self.rater
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("USERNAME").ok())
            .unwrap_or_else(|| "me".into())
    }
}

/// A config file that holds an API key must not be readable by anyone but its owner: refuse
/// it otherwise, saying why and how to fix it.
fn check_key_file_permissions(source: Option<&Path>, model: &str) -> Result<(), InputError> {
    #[cfg(unix)]
    if let Some(path) = source {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| InputError::io(path, &e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(InputError::plain(
                path,
                format!(
                    "[models.{model}] has an api_key, but this file's permissions are {mode:04o}, so other users can read the key; run `chmod 600 {}` or use api_key_env instead",
                    path.display()
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (source, model);
    Ok(())
}

/// Resolve a configured path: `~/` expands to the home directory, a bare file name is looked
/// up in `bare_dir`, other relative paths are relative to `relative_to` (the config file's
/// directory) when known.
pub(crate) fn resolve_path(raw: &str, bare_dir: &Path, relative_to: Option<&Path>) -> PathBuf {
    if let Some(rest) = raw.strip_prefix("~/") {
        if let Some(home) = directories::BaseDirs::new() {
            return home.home_dir().join(rest);
        }
    }
    let p = PathBuf::from(raw);
    if p.is_absolute() {
        return p;
    }
    if p.components().count() == 1 {
        return bare_dir.join(p);
    }
    match relative_to {
        Some(dir) => dir.join(p),
        None => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> Dirs {
        Dirs {
            config_file: PathBuf::from("/nonexistent/config.toml"),
            data_dir: PathBuf::from("/data"),
            state_dir: PathBuf::from("/state"),
        }
    }

    #[test]
    fn embedded_defaults_parse_and_validate() {
        let c = Config::defaults(dirs());
        c.validate().unwrap();
        assert_eq!(c.default_model, "smollm2");
        assert_eq!(
            c.gguf_path(&c.models["smollm2"]).unwrap(),
            PathBuf::from("/data/models/SmolLM2-135M-Instruct.Q8_0.gguf")
        );
    }

    #[test]
    fn lora_adapters_resolve_like_gguf_files_and_only_on_local_models() {
        let mut c = Config::defaults(dirs());
        c.source = Some(PathBuf::from("/etc/pl/config.toml"));
        c.merge_text(
            Path::new("/etc/pl/config.toml"),
            "[models.tuned]\nbackend = \"local\"\ngguf = \"SmolLM2-135M-Instruct.Q8_0.gguf\"\nlora = [\"support-v1\", \"adapters/style\", \"/abs/tone\"]\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.lora_paths(&c.models["tuned"]),
            [
                PathBuf::from("/data/models/support-v1"),
                PathBuf::from("/etc/pl/adapters/style"),
                PathBuf::from("/abs/tone"),
            ]
        );
        assert_eq!(
            c.adapter_labels(),
            BTreeMap::from([("tuned".to_string(), "support-v1 + style + tone".to_string())])
        );
        assert!(c.models["smollm2"].lora.is_empty());

        c.merge_text(
            Path::new("c.toml"),
            "[models.remote]\nbackend = \"openai\"\nbase_url = \"http://x/v1\"\nmodel = \"m\"\nlora = [\"a\"]\n",
        )
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("[models.remote] has lora adapters") && e.contains("\"local\""),
            "{e}"
        );
    }

    #[test]
    fn user_models_merge_over_defaults() {
        let mut c = Config::defaults(dirs());
        c.merge_text(
            Path::new("c.toml"),
            "default_model = \"llamacpp\"\n[models.llamacpp]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:8080/v1\"\nmodel = \"smollm2\"\napi_key_env = \"OPENAI_API_KEY\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.default_model, "llamacpp");
        assert!(c.models.contains_key("smollm2"));
        assert_eq!(c.models["llamacpp"].backend, BackendKind::Openai);
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let mut c = Config::defaults(dirs());
        let err = c
            .merge_text(
                Path::new("/home/u/.config/promptloom/config.toml"),
                "default_model = \"smollm2\"\n[models.x]\nbackend = \"local\"\nggfu = \"a.gguf\"\n",
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/home/u/.config/promptloom/config.toml:4:1:"),
            "{err}"
        );
        assert!(err.contains("unknown field `ggfu`"), "{err}");
    }

    #[test]
    fn prices_default_to_free_for_local_and_unknown_for_remote() {
        let mut c = Config::defaults(dirs());
        c.merge_text(
            Path::new("c.toml"),
            "[models.gpt]\nbackend = \"openai\"\nbase_url = \"http://x/v1\"\nmodel = \"m\"\n[models.paid]\nbackend = \"openai\"\nbase_url = \"http://x/v1\"\nmodel = \"m\"\nprice = { input = 0.15, output = 0.6 }\n[models.smollm2]\nbackend = \"local\"\ngguf = \"a.gguf\"\nprice = { input = 0.0, output = 0.01 }\n",
        )
        .unwrap();
        c.validate().unwrap();
        let t = c.prices();
        assert_eq!(t.get("scripted"), Some(Price::FREE));
        assert_eq!(t.get("gpt"), None);
        assert_eq!(
            t.get("paid"),
            Some(Price {
                input: 0.15,
                output: 0.6
            })
        );
        assert_eq!(t.get("smollm2").map(|p| p.output), Some(0.01));
        c.merge_text(
            Path::new("c.toml"),
            "[models.bad]\nbackend = \"scripted\"\nprice = { input = -1.0, output = 0.0 }\n",
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("[models.bad] price"), "{err}");
        let err = c
            .merge_text(
                Path::new("c.toml"),
                "[models.typo]\nbackend = \"scripted\"\nprice = { inputs = 1.0, output = 0.0 }\n",
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml:3:"), "{err}");
    }

    #[test]
    fn unknown_default_model_is_an_error() {
        let mut c = Config::defaults(dirs());
        c.merge_text(Path::new("c.toml"), "default_model = \"nope\"\n")
            .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("\"nope\" is not a configured model"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn api_key_in_a_readable_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let text = "[models.gpt]\nbackend = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\nmodel = \"gpt-4o\"\napi_key = \"sk-test\"\n";
        std::fs::write(&path, text).unwrap();
        let mut d = dirs();
        d.config_file = path.clone();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Config::load(d.clone(), true).unwrap_err().to_string();
        assert!(
            err.contains("[models.gpt] has an api_key, but this file's permissions are 0644"),
            "{err}"
        );
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("sk-test"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = Config::load(d, true).unwrap();
        assert_eq!(c.models["gpt"].api_key.as_deref(), Some("sk-test"));
    }

    #[test]
    fn paths_resolve() {
        let bare = Path::new("/data/models");
        assert_eq!(
            resolve_path("m.gguf", bare, Some(Path::new("/cfg"))),
            PathBuf::from("/data/models/m.gguf")
        );
        assert_eq!(
            resolve_path("sub/m.gguf", bare, Some(Path::new("/cfg"))),
            PathBuf::from("/cfg/sub/m.gguf")
        );
        assert_eq!(
            resolve_path("/abs/m.gguf", bare, None),
            PathBuf::from("/abs/m.gguf")
        );
    }
}
