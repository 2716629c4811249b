//! llama.cpp's `llama-server` on loopback, asked the same prompts through promptloom's
//! OpenAI-compatible backend, so the gap to llama.cpp is a number beside ours.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::figures::{decode_prompt, few_shot, measure, Out, Plan, Sample};
use crate::config::ModelConfig;
use crate::llm::http::Remote;
use crate::llm::openai::OpenAiBackend;
use crate::llm::{Backend, ChatMessage, ChatRequest, Role, Sampling};

/// `explicit`, else `$PROMPTLOOM_LLAMA_SERVER`, else what scripts/llama-server.sh cached,
/// else `llama-server` on PATH.
pub(crate) fn find_server(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("PROMPTLOOM_LLAMA_SERVER") {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var_os("PROMPTLOOM_LLAMA_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/promptloom/llama-server"))
        });
    if let Some(dir) = cache {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("llama-server"))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            if let Some(p) = found.pop() {
                return Some(p);
            }
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("llama-server"))
            .find(|p| p.is_file())
    })
}

/// A running llama-server, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether this llama-server takes `--no-repack` (its `--help` lists it).
fn takes_no_repack(bin: &Path) -> bool {
    Command::new(bin)
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--no-repack"))
}

async fn start(bin: &Path, model: &Path, threads: u32, extra: &[&str]) -> anyhow::Result<Server> {
    let port = free_port()?;
    let child = Command::new(bin)
        .args(["-m", &model.to_string_lossy(), "--host", "127.0.0.1"])
        .args(["--port", &port.to_string(), "-t", &threads.to_string()])
        .args(["--parallel", "1", "-c", "4096"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
    let mut server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            anyhow::bail!("llama-server exited at start ({status})");
        }
        if let Ok(r) = client.get(format!("{}/health", server.url)).send().await {
            if r.status().is_success() {
                return Ok(server);
            }
        }
        if Instant::now() > deadline {
            // Dropping `server` kills it.
            let _ = server.child.kill();
            anyhow::bail!("llama-server did not become healthy within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn backend(url: &str) -> anyhow::Result<OpenAiBackend> {
    let cfg: ModelConfig = toml::from_str(&format!(
        "backend = \"openai\"\nbase_url = \"{url}/v1\"\nmodel = \"bench\"\nmax_retries = 0\n"
    ))?;
    let remote =
        Remote::from_config("llama-server", "openai", &cfg).map_err(|e| anyhow::anyhow!(e))?;
    Ok(OpenAiBackend::new(remote))
}

pub(crate) async fn run(
    plan: &Plan,
    server: Option<PathBuf>,
    threads: u32,
    files: &[(&str, PathBuf)],
    local: &[(String, f64)],
    local_prompt_read: Option<f64>,
) -> anyhow::Result<Out> {
    let mut out = Out::default();
    out.line(format!(
        "\nllama.cpp llama-server ({threads} threads) through promptloom's OpenAI backend, same \
         prompts, greedy, {} tokens; tok/s median [min–max] [{}]",
        plan.tokens,
        plan.machine.tag()
    ));
    let Some(bin) = server.filter(|p| p.is_file()) else {
        out.line(
            "  skipped: llama-server not found (build it with scripts/llama-server.sh, or pass \
             --llama-server PATH)",
        );
        out.goal(
            "llama.cpp decode, ratio ours / llama.cpp",
            "printed",
            "skipped".into(),
            None,
        );
        return Ok(out);
    };
    // On an AMX CPU llama.cpp repacks Q8_0 weights into its AMX layout; `--no-repack` keeps it
    // on the same row-by-row kernels as candle, the comparison the figures use.
    let mut extra = Vec::new();
    if plan.machine.has("AMX") {
        if takes_no_repack(&bin) {
            extra.push("--no-repack");
            out.line("  (AMX CPU: llama-server runs with --no-repack)");
        } else {
            out.line("  (AMX CPU, but this llama-server has no --no-repack: it may use AMX)");
        }
    }
    out.line(format!(
        "  {:<36} {:>22} {:>22} {:>16}",
        "file", "prompt tok/s", "decode tok/s", "promptloom/llama"
    ));
    let last = files.len().saturating_sub(1);
    for (i, (label, path)) in files.iter().enumerate() {
        let server = start(&bin, path, threads, &extra).await?;
        let b = backend(&server.url)?;
        let req = |prompt: String, max: usize| ChatRequest {
            messages: vec![ChatMessage::new(Role::User, prompt)],
            sampling: Sampling {
                temperature: Some(0.0),
                max_tokens: Some(max),
                ..Default::default()
            },
        };
        measure(b.start(req(decode_prompt(999, "warm-up"), 8)))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let (mut p, mut d) = (Sample::default(), Sample::default());
        for run in 0..plan.runs {
            let (m, _) = measure(b.start(req(decode_prompt(run, "decode"), plan.tokens)))
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            p.push(m.prompt_tps);
            d.push(m.decode_tps);
        }
        // The few-shot prompt on the default (last) file: prompt reading of a long prompt,
        // a new prefix each time.
        let mut few = Sample::default();
        let mut few_tokens = 0;
        if i == last {
            for run in 0..plan.runs.clamp(1, 2) {
                let nonce = format!("llama {run}-{}", std::process::id());
                let (m, _) = measure(b.start(few_shot(&nonce, "What is the capital of England?")))
                    .await
                    .map_err(|e| anyhow::anyhow!(e))?;
                few_tokens = m.prompt_tokens;
                few.push(m.prompt_tps);
            }
        }
        drop(server);
        let ours = local
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, r)| *r)
            .unwrap_or(f64::NAN);
        let lm = d.median().unwrap_or(f64::NAN);
        let name = super::figures::file_label(path, label);
        out.line(format!(
            "  {name:<36} {:>22} {:>22} {:>16}",
            p.show(1),
            d.show(1),
            if ours.is_finite() {
                format!("{:.2}", ours / lm)
            } else {
                "-".into()
            }
        ));
        let ratio = ours / lm;
        out.goal(
            &format!("decode promptloom / llama.cpp, {label}"),
            "≥ 1.0",
            format!("{ratio:.2} ({ours:.1} vs {lm:.1} tok/s)"),
            ratio.is_finite().then_some(ratio >= 1.0),
        );
        // The local section's bare loop, and as it was before issue 12, when it measured them.
        for which in ["bare", "bare, our Q8_0 kernel for 1 row too"] {
            let key = format!("{label}, {which}");
            if let Some((_, r)) = local.iter().find(|(l, _)| *l == key) {
                out.goal(
                    &format!("decode {which} / llama.cpp, {label}"),
                    "printed",
                    format!("{:.2} ({r:.1} vs {lm:.1} tok/s)", r / lm),
                    None,
                );
            }
        }
        if let Some(lp) = few.median() {
            out.line(format!(
                "  few-shot prompt of {few_tokens} tokens, new prefix: llama.cpp reads {} tok/s{}",
                few.show(0),
                local_prompt_read.map_or(String::new(), |r| format!(
                    ", promptloom {r:.0} tok/s ({:.2}x)",
                    r / lp
                ))
            ));
            let ratio = local_prompt_read.map_or(f64::NAN, |r| r / lp);
            out.goal(
                &format!("prompt reading promptloom / llama.cpp, {few_tokens}-token few-shot"),
                "≥ 0.8",
                format!("{ratio:.2} ({:.0} vs {lp:.0} tok/s)", ratio * lp),
                ratio.is_finite().then_some(ratio >= 0.8),
            );
        }
    }
    Ok(out)
}
