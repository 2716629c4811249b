//! `promptloom doctor`: what a user runs when something is off. It checks, without starting
//! the UI or loading a model, everything the app depends on (config, model files, CPU
//! features, remote endpoints, terminal, writable folders) and prints one line per finding.
//! Exit code 0 when nothing failed, 1 otherwise.

pub(crate) mod cpu;

use std::fmt::Write as _;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config::theme::{ColorDepth, Theme};
use crate::config::{BackendKind, Config, Dirs, ModelConfig};

/// How long a remote endpoint gets to accept a connection and answer.
const NET_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Ok,
    Info,
    Warn,
    Fail,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub area: &'static str,
    pub level: Level,
    pub text: String,
}

fn finding(area: &'static str, level: Level, text: impl Into<String>) -> Finding {
    Finding {
        area,
        level,
        text: text.into(),
    }
}

/// Run every check and print the report. `explicit` is `--config`.
pub(crate) fn run(explicit: Option<&Path>) -> ExitCode {
    let findings = check_all(explicit);
    print!("{}", report(&findings));
    if findings.iter().any(|f| f.level == Level::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The report as printed.
pub(crate) fn report(findings: &[Finding]) -> String {
    let mut out = format!(
        "promptloom {} doctor ({}, features: {})\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        if cfg!(feature = "local") {
            "local"
        } else {
            "none (no local backend)"
        }
    );
    for f in findings {
        let mut lines = f.text.lines();
        let first = lines.next().unwrap_or("");
        let _ = writeln!(out, "{:<5} {:<9} {first}", f.level.label(), f.area);
        for l in lines {
            let _ = writeln!(out, "{:<15} {l}", "");
        }
    }
    let failed = findings.iter().filter(|f| f.level == Level::Fail).count();
    let warned = findings.iter().filter(|f| f.level == Level::Warn).count();
    let _ = match failed {
        0 => writeln!(out, "all checks passed ({warned} warnings)"),
        n => writeln!(out, "{n} problem(s) found ({warned} warnings)"),
    };
    out
}

/// Every check, in the order a user reads them.
pub(crate) fn check_all(explicit: Option<&Path>) -> Vec<Finding> {
    let mut out = Vec::new();
    let dirs = Dirs::resolve(explicit);
    let config = match Config::load(dirs.clone(), explicit.is_some()) {
        Ok(c) => {
            out.push(match &c.source {
                Some(p) => finding("config", Level::Ok, format!("{}: valid", p.display())),
                None => finding(
                    "config",
                    Level::Ok,
                    format!(
                        "{}: not present, using the built-in defaults",
                        dirs.config_file.display()
                    ),
                ),
            });
            c
        }
        Err(e) => {
            out.push(finding("config", Level::Fail, e.to_string()));
            out.push(finding(
                "config",
                Level::Info,
                "the checks below use the built-in defaults",
            ));
            Config::defaults(dirs.clone())
        }
    };
    out.extend(check_keymap_and_theme(&config));
    for (name, m) in &config.models {
        out.extend(check_model(&config, name, m));
    }
    out.extend(check_cpu());
    out.extend(check_terminal());
    out.extend(check_dirs(&config.dirs));
    out
}

fn check_keymap_and_theme(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(k) = &config.keymap {
        out.push(match crate::config::keymap::Keymap::load(k) {
            Ok(_) => finding("keymap", Level::Ok, format!("{}: valid", k.display())),
            Err(e) => finding("keymap", Level::Fail, e.to_string()),
        });
    }
    let theme = config.theme.clone().unwrap_or_else(|| "dark".into());
    out.push(match Theme::load(&theme, ColorDepth::TrueColor) {
        Ok(_) => finding("theme", Level::Ok, format!("{theme}: valid")),
        Err(e) => finding("theme", Level::Fail, e.to_string()),
    });
    out
}

fn check_model(config: &Config, name: &str, m: &ModelConfig) -> Vec<Finding> {
    let area = "model";
    match m.backend {
        BackendKind::Scripted => vec![finding(
            area,
            Level::Ok,
            format!("{name} (scripted): built in"),
        )],
        BackendKind::Local => {
            let Some(path) = config.gguf_path(m) else {
                return vec![finding(area, Level::Fail, format!("{name}: no gguf path"))];
            };
            let mut out = vec![check_gguf(name, &path)];
            // A model nobody uses by default may be absent: a warning, not a failure.
            if name != config.default_model && !path.exists() {
                out[0].level = Level::Warn;
            }
            if !cfg!(feature = "local") {
                out.push(finding(
                    area,
                    Level::Warn,
                    format!("{name}: this promptloom was built without the `local` feature and can't run it; rebuild with default features"),
                ));
            }
            out
        }
        BackendKind::Openai | BackendKind::Anthropic | BackendKind::Ollama => check_remote(name, m),
    }
}

/// A local model file: present, a GGUF whose tensors all lie inside the file, an
/// architecture mistral.rs runs; and its sha256.
pub(crate) fn check_gguf(name: &str, path: &Path) -> Finding {
    let area = "model";
    if !path.is_file() {
        return finding(
            area,
            Level::Fail,
            format!(
                "{name} (local): {} not found; run `promptloom model fetch` (or `make model`) to download the default model",
                path.display()
            ),
        );
    }
    let layout = match crate::llm::gguf::read_layout(path) {
        Ok(l) => l,
        Err(e) => {
            return finding(
                area,
                Level::Fail,
                format!("{name} (local): {}: {e}", path.display()),
            )
        }
    };
    let arch = layout.header.architecture().unwrap_or("none").to_string();
    let supported =
        crate::llm::gguf::SUPPORTED_ARCHITECTURES.contains(&arch.to_ascii_lowercase().as_str());
    let sha = match crate::llm::gguf::sha256_file(path) {
        Ok(h) => h,
        Err(e) => format!("unreadable ({e})"),
    };
    let summary = format!(
        "{name} (local): {}\n{} tensors, {:.1} MiB ({:.1} MiB of tensor data), architecture {arch}{}\nsha256 {sha}",
        path.display(),
        layout.tensors.len(),
        layout.file_len as f64 / (1 << 20) as f64,
        layout.data_bytes() as f64 / (1 << 20) as f64,
        if supported {
            " (supported by mistral.rs 0.8.1)"
        } else {
            ""
        },
    );
    if supported {
        finding(area, Level::Ok, summary)
    } else {
        finding(
            area,
            Level::Fail,
            format!(
                "{summary}\narchitecture {arch:?} is not one mistral.rs 0.8.1 runs ({}); serve it with llama.cpp and use backend = \"openai\"",
                crate::llm::gguf::SUPPORTED_ARCHITECTURES.join(", ")
            ),
        )
    }
}

/// A remote model: its endpoint accepts a TCP connection and answers HTTP, and its key's
/// environment variable is set (never printed).
fn check_remote(name: &str, m: &ModelConfig) -> Vec<Finding> {
    let area = "endpoint";
    let kind = m.backend.as_str();
    let Some(base) = m.base_url.as_deref() else {
        return vec![finding(
            area,
            Level::Fail,
            format!("{name} ({kind}): no base_url"),
        )];
    };
    let mut out = Vec::new();
    let public = public_url(base);
    out.push(match probe(base) {
        Ok(what) => finding(
            area,
            Level::Ok,
            format!("{name} ({kind}): {public} reachable: {what}"),
        ),
        Err(why) => finding(
            area,
            Level::Fail,
            format!("{name} ({kind}): {public} unreachable: {why}"),
        ),
    });
    match (&m.api_key_env, &m.api_key) {
        (Some(var), _) => out.push(match std::env::var_os(var) {
            Some(v) if !v.is_empty() => finding(
                "key",
                Level::Ok,
                format!("{name}: ${var} is set ({} characters)", v.len()),
            ),
            _ => finding(
                "key",
                Level::Fail,
                format!("{name}: api_key_env = {var:?} but ${var} is not set; export it before starting promptloom"),
            ),
        }),
        (None, Some(_)) => out.push(finding(
            "key",
            Level::Ok,
            format!("{name}: key in the config file (owner-only permissions checked)"),
        )),
        (None, None) => out.push(finding(
            "key",
            Level::Info,
            format!("{name}: no API key configured (fine for a local server)"),
        )),
    }
    out
}

/// The URL without credentials, for printing.
fn public_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// TCP connect, then one HTTP GET of the base URL (no key sent): any HTTP status means the
/// server is there.
fn probe(base: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(base).map_err(|e| format!("base_url is not a URL: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| "base_url has no host".to_string())?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| "base_url has no port".to_string())?;
    let t = Instant::now();
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let addr = addrs
        .first()
        .ok_or_else(|| format!("{host} resolves to no address"))?;
    TcpStream::connect_timeout(addr, NET_TIMEOUT)
        .map_err(|e| format!("TCP connect to {addr} failed: {e}"))?;
    let connect_ms = t.elapsed().as_millis();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let status = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(NET_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        client
            .get(url.clone())
            .send()
            .await
            .map(|r| r.status())
            .map_err(|e| format!("TCP connect ok, but HTTP GET failed: {e}"))
    })?;
    Ok(format!(
        "TCP connect {connect_ms} ms, GET answered {status}"
    ))
}

fn check_cpu() -> Vec<Finding> {
    let features = cpu::features();
    if features.is_empty() {
        return vec![finding(
            "cpu",
            Level::Info,
            format!("{}: no x86 features to check", std::env::consts::ARCH),
        )];
    }
    let mut out = Vec::new();
    let mut table = String::new();
    for f in &features {
        let used = match f.compiled {
            Some(true) => "used by this build",
            Some(false) if f.detected => "not used by this build (rebuild here to use it)",
            Some(false) => "not used by this build",
            None => "not used by this build (stable Rust can't target it; llama.cpp can)",
        };
        let _ = writeln!(
            table,
            "{:<11} {:<4} {used}",
            f.name,
            if f.detected { "yes" } else { "no" }
        );
    }
    let missing = cpu::missing(&features);
    if missing.is_empty() {
        out.push(finding(
            "cpu",
            Level::Ok,
            format!("this build runs on this CPU\nfeature     CPU  build\n{table}"),
        ));
    } else {
        out.push(finding(
            "cpu",
            Level::Fail,
            format!(
                "{}\nfeature     CPU  build\n{table}",
                cpu::explain_missing(&features, &missing)
            ),
        ));
    }
    out
}

fn check_terminal() -> Vec<Finding> {
    use std::io::IsTerminal;
    let mut out = Vec::new();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let term = var("TERM");
    let colorterm = var("COLORTERM");
    let depth = ColorDepth::from_env();
    let described = format!(
        "TERM={} COLORTERM={} NO_COLOR={}",
        term.as_deref().unwrap_or("(unset)"),
        colorterm.as_deref().unwrap_or("(unset)"),
        if var("NO_COLOR").is_some() {
            "set"
        } else {
            "(unset)"
        }
    );
    let (level, what) = match depth {
        ColorDepth::TrueColor => (Level::Ok, "24-bit colour".to_string()),
        ColorDepth::None => (Level::Ok, "no colour (NO_COLOR is set)".to_string()),
        ColorDepth::Indexed256 => match term.as_deref() {
            None | Some("dumb") => (
                Level::Warn,
                "this terminal may not draw a full-screen UI (TERM is unset or dumb)".to_string(),
            ),
            Some(t)
                if t.contains("256color") || t.starts_with("tmux") || t.starts_with("screen") =>
            {
                (
                    Level::Ok,
                    "256 colours (set COLORTERM=truecolor if the terminal does 24-bit)".to_string(),
                )
            }
            Some(_) => (
                Level::Info,
                "256 colours assumed; themes look wrong if the terminal has only 16".to_string(),
            ),
        },
    };
    out.push(finding(
        "terminal",
        level,
        format!("colour: {what} ({described})"),
    ));
    if !std::io::stdout().is_terminal() {
        out.push(finding(
            "terminal",
            Level::Info,
            "stdout is not a terminal (the UI needs one; `run`, `check` and `export` don't)",
        ));
    }
    out.push(check_clipboard());
    out
}

/// Copies go out as OSC 52 escape sequences: most terminals take them, over SSH too; tmux
/// passes them on only with `set-clipboard` on or external.
fn check_clipboard() -> Finding {
    let area = "clipboard";
    if std::env::var_os("TMUX").is_some() {
        let setting = std::process::Command::new("tmux")
            .args(["show-options", "-gv", "set-clipboard"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        return match setting.as_deref() {
            Some("on") | Some("external") => finding(
                area,
                Level::Ok,
                format!(
                    "OSC 52 inside tmux (set-clipboard {})",
                    setting.as_deref().unwrap_or("")
                ),
            ),
            Some(v) => finding(
                area,
                Level::Warn,
                format!("inside tmux with set-clipboard {v}: copies (y) won't reach the system clipboard; run `tmux set -g set-clipboard on`"),
            ),
            None => finding(
                area,
                Level::Warn,
                "inside tmux, but `tmux show-options` failed: can't tell whether OSC 52 copies pass through",
            ),
        };
    }
    let via = if std::env::var_os("SSH_TTY").is_some() {
        " (over SSH: the copy lands on the machine you type on)"
    } else {
        ""
    };
    finding(
        area,
        Level::Info,
        format!("copies use OSC 52{via}; the terminal must allow it (xterm: allowWindowOps, most others: on by default)"),
    )
}

/// Sessions, state (logs) and models folders exist or can be made, take a file, and have
/// room: a session save writes a new file beside the old one before it replaces it, and a
/// model fetch writes the download and its re-quantized copy (about 250 MB for the default).
fn check_dirs(dirs: &Dirs) -> Vec<Finding> {
    let sessions = crate::store::default_sessions_dir(&dirs.sessions_dir());
    [
        ("sessions", sessions, Level::Fail, SAVE_ROOM),
        ("state", dirs.state_dir.clone(), Level::Fail, SAVE_ROOM),
        ("models", dirs.models_dir(), Level::Warn, MODEL_ROOM),
    ]
    .into_iter()
    .map(|(what, dir, level, room)| match writable(&dir) {
        Ok(()) => match free_bytes(&dir) {
            Ok(free) => space_finding(what, &dir, free, room, level),
            Err(e) => finding(
                "dirs",
                Level::Warn,
                format!(
                    "{what}: {} writable; free space unknown: {e}",
                    dir.display()
                ),
            ),
        },
        Err(e) => finding(
            "dirs",
            level,
            format!("{what}: {} is not writable: {e}", dir.display()),
        ),
    })
    .collect()
}

/// Free space wanted in the sessions and state folders: (warn below, fail below).
const SAVE_ROOM: (u64, u64) = (256 << 20, 16 << 20);
/// In the models folder: a fetch of the default model wants about 250 MB.
const MODEL_ROOM: (u64, u64) = (512 << 20, 256 << 20);

/// The finding for a writable folder with `free` bytes: ok with the figure, a warning when
/// it is low, and `worst` (fail for the folders a save needs) when it is nearly full.
fn space_finding(what: &str, dir: &Path, free: u64, room: (u64, u64), worst: Level) -> Finding {
    let (warn, fail) = room;
    let shown = indicatif::HumanBytes(free).to_string();
    if free < fail {
        finding(
            "dirs",
            worst,
            format!(
                "{what}: {} writable but only {shown} free (needs at least {}): free some space",
                dir.display(),
                indicatif::HumanBytes(fail)
            ),
        )
    } else if free < warn {
        finding(
            "dirs",
            Level::Warn,
            format!(
                "{what}: {} writable, {shown} free: low (under {})",
                dir.display(),
                indicatif::HumanBytes(warn)
            ),
        )
    } else {
        finding(
            "dirs",
            Level::Ok,
            format!("{what}: {} writable, {shown} free", dir.display()),
        )
    }
}

/// Bytes an unprivileged user may still write on the file system holding `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` a buffer of the right type, which
    // statvfs fills on success (checked before it is read).
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it wrote the whole struct.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Create `dir` if needed and write (then remove) a file in it.
fn writable(dir: &PathBuf) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let f = tempfile::Builder::new()
        .prefix(".promptloom-doctor-")
        .tempfile_in(dir)?;
    use std::io::Write;
    f.as_file().write_all(b"ok")?;
    f.as_file().sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plenty of room is ok with the figure; under the warning line a warning; under the
    /// failing line the folder's worst level (fail for sessions, a warning for models).
    #[test]
    fn free_space_levels() {
        let d = Path::new("/x");
        let ok = space_finding("sessions", d, 10 << 30, SAVE_ROOM, Level::Fail);
        assert_eq!(ok.level, Level::Ok);
        assert!(ok.text.contains("10.00 GiB free"), "{}", ok.text);
        let low = space_finding("sessions", d, 100 << 20, SAVE_ROOM, Level::Fail);
        assert_eq!(low.level, Level::Warn);
        assert!(low.text.contains("low"), "{}", low.text);
        let full = space_finding("sessions", d, 1 << 20, SAVE_ROOM, Level::Fail);
        assert_eq!(full.level, Level::Fail);
        assert!(full.text.contains("only 1.00 MiB free"), "{}", full.text);
        let models = space_finding("models", d, 1 << 20, MODEL_ROOM, Level::Warn);
        assert_eq!(models.level, Level::Warn);
    }

    /// statvfs on a real folder gives a figure a little under the file system's size, and a
    /// missing folder an error, not a panic.
    #[test]
    fn free_bytes_reads_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn report_counts_failures_and_indents_continuations() {
        let r = report(&[
            finding("config", Level::Ok, "a: valid"),
            finding("model", Level::Fail, "m: missing\nsecond line"),
        ]);
        assert!(r.contains("ok    config    a: valid\n"), "{r}");
        assert!(
            r.contains("FAIL  model     m: missing\n                second line\n"),
            "{r}"
        );
        assert!(r.ends_with("1 problem(s) found (0 warnings)\n"), "{r}");
    }

    #[test]
    fn urls_lose_credentials() {
        assert_eq!(
            public_url("http://user:secret@127.0.0.1:8080/v1"),
            "http://127.0.0.1:8080/v1"
        );
    }
}
