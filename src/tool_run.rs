//! Running the tools that answer calls from outside promptloom: `command` programs (and MCP
//! servers, `tool_run::mcp`), and deciding whether the user lets them run.
//!
//! This is the effect side of [`crate::state::tool_loop`]: the machine says "run this", a
//! driver calls [`run_external`] and hands the text back. Nothing below this module (`llm`,
//! `state`, `config`) imports it.
//!
//! Safety: a prompt file never runs a program by itself. A `command` tool runs only when the
//! user's config has `[tools.NAME] allow = true` (or the run has `--allow-tools`); an `mcp`
//! tool only when its server has `allow = true`. Output is untrusted text: the caller shows it
//! through `sanitize`; configured API keys are removed from it before it is recorded.

pub(crate) mod mcp;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Config;
use crate::prompt::tools::{ToolAnswer, ToolDef};
use crate::state::tool_loop::{External, Permission};

/// The most a tool's output may be before it is cut (the model gets the first part).
pub(crate) const MAX_TOOL_OUTPUT_BYTES: usize = 256 << 10;

/// How long a command may run.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `def` may run, from the user's config and `--allow-tools` (`allow_all`).
pub(crate) fn permission(config: &Config, allow_all: bool, def: &ToolDef) -> Permission {
    match &def.answer {
        ToolAnswer::Fixed(_) | ToolAnswer::Template(_) => Permission::Allowed,
        ToolAnswer::Command(_) => {
            let policy = config.tools.get(&def.spec.name);
            match policy {
                Some(p) if p.allow && p.confirm && !allow_all => Permission::Confirm,
                Some(p) if p.allow => Permission::Allowed,
                _ if allow_all => Permission::Allowed,
                _ => Permission::Denied(format!(
                    "it runs a program, and the config does not allow it (add [tools.{}] allow = true to config.toml, or pass --allow-tools)",
                    def.spec.name
                )),
            }
        }
        ToolAnswer::Mcp { server, .. } => match config.mcp.get(server) {
            None => Permission::Denied(format!(
                "the MCP server {server:?} is not configured (add [mcp.{server}] to config.toml)"
            )),
            Some(s) if s.allow && s.confirm && !allow_all => Permission::Confirm,
            Some(s) if s.allow || allow_all => Permission::Allowed,
            Some(_) => Permission::Denied(format!(
                "the config does not allow MCP server {server:?} (set allow = true under [mcp.{server}], or pass --allow-tools)"
            )),
        },
    }
}

/// Every secret the config knows (API keys, header values), to keep out of tool results.
fn secrets(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for m in config.models.values() {
        out.extend(m.api_key.clone());
        if let Some(var) = &m.api_key_env {
            out.extend(std::env::var(var).ok());
        }
        out.extend(m.headers.values().cloned());
    }
    out.retain(|s| s.len() >= 8);
    out
}

/// `text` with every configured secret replaced by `[redacted]`.
pub(crate) fn redact(config: &Config, text: &str) -> String {
    let mut out = text.to_string();
    for s in secrets(config) {
        if out.contains(&s) {
            out = out.replace(&s, "[redacted]");
        }
    }
    out
}

/// Run an external tool to its end; `Ok` is the text the model gets.
pub(crate) async fn run_external(config: &Config, ext: &External) -> Result<String, String> {
    let out = match ext {
        External::Command { argv, stdin } => run_command(argv, stdin).await,
        External::Mcp { server, tool, args } => mcp::call(config, server, tool, args)
            .await
            .map(|t| capped_text(t.as_bytes())),
    };
    out.map(|t| redact(config, &t))
        .map_err(|e| redact(config, &e))
}

/// Cut `bytes` at [`MAX_TOOL_OUTPUT_BYTES`] on a character boundary, saying so.
fn capped_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= MAX_TOOL_OUTPUT_BYTES {
        return text.into_owned();
    }
    let mut end = MAX_TOOL_OUTPUT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[output cut at {} KiB]",
        &text[..end],
        MAX_TOOL_OUTPUT_BYTES >> 10
    )
}

/// A pipe's bytes, a little past [`MAX_TOOL_OUTPUT_BYTES`] at most (the rest is not read).
async fn read_capped(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        let _ = AsyncReadExt::take(p, (MAX_TOOL_OUTPUT_BYTES + 4) as u64)
            .read_to_end(&mut buf)
            .await;
    }
    buf
}

/// Run `argv` with `stdin` on its standard input: its stdout is the result; a failure to start,
/// a non-zero exit or a timeout is an error quoting its stderr.
///
/// Output past [`MAX_TOOL_OUTPUT_BYTES`] is not read: the pipe is closed, so a program still
/// writing dies of SIGPIPE (or exits on EPIPE). That end is ours, not the program's failure:
/// a capped output is the result with its truncation note, whatever the exit status.
async fn run_command(argv: &[String], stdin: &str) -> Result<String, String> {
    let Some((prog, args)) = argv.split_first() else {
        return Err("the command is empty".into());
    };
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not start {prog:?}: {e}"))?;
    let mut input = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let body = stdin.as_bytes().to_vec();
    let work = async move {
        let write = async {
            if let Some(mut i) = input.take() {
                // A program that does not read its stdin closes it: not an error.
                let _ = i.write_all(&body).await;
                let _ = i.shutdown().await;
            }
        };
        let ((), out, err) = tokio::join!(
            write,
            read_capped(stdout.take()),
            read_capped(stderr.take())
        );
        let status = child.wait().await;
        (status, out, err)
    };
    let (status, out, err) = tokio::time::timeout(COMMAND_TIMEOUT, work)
        .await
        .map_err(|_| {
            format!(
                "{prog:?} did not finish within {} s; stopped",
                COMMAND_TIMEOUT.as_secs()
            )
        })?;
    let status = status.map_err(|e| format!("{prog:?}: {e}"))?;
    if out.len() > MAX_TOOL_OUTPUT_BYTES {
        return Ok(capped_text(&out));
    }
    if !status.success() {
        let err = capped_text(&err);
        return Err(format!(
            "{prog:?} exited with {status}{}",
            if err.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", err.trim())
            }
        ));
    }
    Ok(capped_text(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ToolSpec;
    use crate::config::{Dirs, ToolPolicy};

    fn def(answer: ToolAnswer) -> ToolDef {
        ToolDef {
            spec: ToolSpec {
                name: "shell".into(),
                description: String::new(),
                parameters: serde_json::json!({"type": "object"}),
            },
            answer,
        }
    }

    fn config() -> Config {
        Config::defaults(Dirs::resolve(None))
    }

    #[test]
    fn commands_need_the_config_or_allow_tools() {
        let d = def(ToolAnswer::Command(vec!["true".into()]));
        let mut c = config();
        assert!(
            matches!(permission(&c, false, &d), Permission::Denied(w) if w.contains("[tools.shell] allow = true"))
        );
        assert_eq!(permission(&c, true, &d), Permission::Allowed);
        c.tools.insert(
            "shell".into(),
            ToolPolicy {
                allow: true,
                confirm: true,
            },
        );
        assert_eq!(permission(&c, false, &d), Permission::Confirm);
        assert_eq!(permission(&c, true, &d), Permission::Allowed);
        let m = def(ToolAnswer::Mcp {
            server: "everything".into(),
            tool: "echo".into(),
        });
        assert!(
            matches!(permission(&c, true, &m), Permission::Denied(w) if w.contains("not configured"))
        );
        assert_eq!(
            permission(&c, false, &def(ToolAnswer::Template("x".into()))),
            Permission::Allowed
        );
    }

    /// A command dropped mid-run (its pane cancelled: the driver aborts the task) is killed,
    /// not left to run to its timeout.
    #[tokio::test]
    async fn a_dropped_command_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
        let argv = vec!["sh".to_string(), "-c".to_string(), script];
        let task = tokio::spawn(async move { run_command(&argv, "{}").await });
        let mut pid = None;
        for _ in 0..200 {
            if let Some(p) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            {
                pid = Some(p);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let pid = pid.expect("the command started");
        let alive = |p: i32| unsafe { libc::kill(p, 0) } == 0;
        assert!(alive(pid));
        task.abort();
        let _ = task.await;
        let mut gone = false;
        for _ in 0..200 {
            // Reaped by tokio's orphan reaper, or at least no longer running.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if !alive(pid) || state.split_whitespace().nth(2) == Some("Z") {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(gone, "sleep {pid} still runs after its call was dropped");
    }

    #[tokio::test]
    async fn a_command_reads_the_arguments_on_stdin() {
        let out = run_command(
            &["sh".into(), "-c".into(), "read x; echo \"got $x\"".into()],
            r#"{"a":1}"#,
        )
        .await;
        assert_eq!(out.as_deref(), Ok("got {\"a\":1}\n"));
        let err = run_command(
            &["sh".into(), "-c".into(), "echo bad >&2; exit 3".into()],
            "",
        )
        .await
        .unwrap_err();
        assert!(
            err.contains("exit status: 3") && err.contains("bad"),
            "{err}"
        );
        let err = run_command(&["/no/such/program".into()], "")
            .await
            .unwrap_err();
        assert!(err.contains("could not start"), "{err}");
        let big = run_command(
            &[
                "sh".into(),
                "-c".into(),
                "head -c 400000 /dev/zero | tr '\\0' a".into(),
            ],
            "",
        )
        .await
        .unwrap();
        assert!(
            big.ends_with("[output cut at 256 KiB]"),
            "{}",
            &big[big.len() - 40..]
        );
        assert!(big.starts_with("aaaa"), "{}", &big[..40]);
        // A program that writes forever is stopped by the closed pipe, not by the timeout,
        // and its output is the capped text, not an error.
        let started = std::time::Instant::now();
        let endless = run_command(&["sh".into(), "-c".into(), "yes".into()], "")
            .await
            .unwrap();
        assert!(endless.ends_with("[output cut at 256 KiB]"));
        assert!(started.elapsed() < COMMAND_TIMEOUT / 2);
        // A program that fails without filling the cap is still an error.
        let err = run_command(
            &["sh".into(), "-c".into(), "echo partial; exit 1".into()],
            "",
        )
        .await
        .unwrap_err();
        assert!(err.contains("exit status: 1"), "{err}");
    }
}
