//! `promptloom bench`: every performance figure in one run on this machine, with medians and
//! spreads, each next to its goal.
//!
//! Sections (all by default; `--only` picks some):
//! - `local`: decode and prompt tokens/s through promptloom's local backend vs a bare
//!   mistral.rs loop with identical settings, for the shipped file and the re-quantized one;
//! - `kernel`: where decode time goes: candle's quantized mat-vecs for one token, alone, and
//!   the memory-bandwidth floor;
//! - `llama`: the same prompt through llama.cpp's `llama-server` via the OpenAI backend;
//! - `concurrency`: aggregate tokens/s with 1, 2, 4 and 8 variants at once on the local model;
//! - `ttft`: time to first token of a ~1,800-token few-shot prompt, cold and with the prefix
//!   cache warm;
//! - `branch`: time to first token of a branch from a token of an answer and of a sampled
//!   alternative, after the parent answered the few-shot prompt (issue 16);
//! - `ui`: per-frame draw time of 6 panes at 1 KB / 100 KB / 1 MB, and the rate at which the
//!   real event loop absorbs a scripted backend streaming into 6 panes;
//! - `session`: load and save times at 100, 1,000 and 10,000 nodes;
//! - `retrieval`: BM25 chunking + index build time for 1 MB and 10 MB of text, a query's
//!   time, and hit@k on the retrieval test corpus.
//!
//! `--fuzz SECONDS` runs the fuzz targets instead (see [`fuzz`]).

#[cfg(feature = "local")]
mod engine;
mod figures;
mod fuzz;
#[cfg(feature = "local")]
mod kernel;
mod llama;
mod retrieval;
pub(crate) mod session;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::config::Config;
use figures::{Machine, Out, Plan, Sample};

/// `promptloom bench` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Sections to run (default: all): local, kernel, llama, concurrency, ttft, branch, ui,
    /// session, retrieval.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Section>,
    /// Runs per measurement.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub runs: u32,
    /// Tokens generated per decode run.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(8..=4096))]
    pub tokens: u32,
    /// The shipped GGUF file (default: the data dir's SmolLM2-135M-Instruct.Q4_1.gguf).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The re-quantized file to compare (default: the shipped one re-quantized to Q8_0 beside
    /// it, made now if missing).
    #[arg(long)]
    pub requantized: Option<PathBuf>,
    /// llama.cpp's llama-server binary (default: $PROMPTLOOM_LLAMA_SERVER, the cache that
    /// scripts/llama-server.sh fills, then PATH).
    #[arg(long)]
    pub llama_server: Option<PathBuf>,
    /// Threads for llama-server.
    #[arg(long, default_value_t = 2)]
    pub llama_threads: u32,
    /// Smaller sizes everywhere (for a smoke test): 1 run, 32 tokens, 1,000-node sessions.
    #[arg(long)]
    pub quick: bool,
    /// Instead of the figures: run every fuzz target (src/fuzz.rs) for SECONDS each and
    /// print the inputs each took and the crashes found (exit 1 on a crash).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub fuzz: Option<f64>,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?}: seconds, more than 0 and at most 86400")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Section {
    Local,
    Kernel,
    Llama,
    Concurrency,
    Ttft,
    Branch,
    Ui,
    Session,
    Retrieval,
}

/// A section's output, or, when it failed, a line saying so and a missed goal: one failing
/// section (a server that went away, a missing file) does not lose the others' figures.
fn section(name: &str, result: anyhow::Result<Out>) -> Out {
    result.unwrap_or_else(|e| {
        let mut out = Out::default();
        out.line(format!("\n{name}: FAILED: {e:#}"));
        out.goal(
            &format!("{name} section ran to the end"),
            "runs",
            "failed".into(),
            Some(false),
        );
        out.failed = true;
        out
    })
}

pub(crate) fn run(config: Config, args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(seconds) = args.fuzz {
        return Ok(fuzz::run(seconds, &Machine::detect().tag()));
    }
    let plan = Plan {
        runs: if args.quick { 1 } else { args.runs as usize },
        tokens: if args.quick { 32 } else { args.tokens as usize },
        quick: args.quick,
        machine: Machine::detect(),
    };
    let all = args.only.is_empty();
    let want = |s: Section| all || args.only.contains(&s);
    let t0 = Instant::now();
    let machine = plan.machine.clone();
    println!(
        "promptloom bench: {} · {} cores · {} · runs {} · {} tokens",
        chrono::Local::now().format("%Y-%m-%d %H:%M"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        machine.tag(),
        plan.runs,
        plan.tokens
    );
    let mut outs: Vec<Out> = Vec::new();
    if want(Section::Session) {
        outs.push(section("session", session::run(&plan)));
    }
    if want(Section::Ui) {
        outs.push(section("ui", ui::run(&plan)));
    }
    if want(Section::Retrieval) {
        outs.push(section("retrieval", retrieval_section(&plan)));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let model = args.model.clone().unwrap_or_else(|| {
        config
            .dirs
            .models_dir()
            .join(crate::model_fetch::SHIPPED_GGUF)
    });
    let needs_model = want(Section::Local)
        || want(Section::Kernel)
        || want(Section::Llama)
        || want(Section::Concurrency)
        || want(Section::Ttft)
        || want(Section::Branch);
    if needs_model && !model.is_file() {
        anyhow::bail!(
            "{}: model file not found; run `promptloom model fetch` (or pass --model)",
            model.display()
        );
    }
    #[cfg(feature = "local")]
    let requantized = if needs_model {
        Some(engine::requantized(&model, args.requantized.clone())?)
    } else {
        None
    };
    #[cfg(not(feature = "local"))]
    let requantized: Option<PathBuf> = args.requantized.clone();
    let mut files = vec![("shipped", model.clone())];
    if let Some(r) = &requantized {
        files.push(("re-quantized", r.clone()));
    }
    #[cfg_attr(not(feature = "local"), allow(unused_mut))]
    let mut local_rates: Vec<(String, f64)> = Vec::new();
    // promptloom's prompt reading of the few-shot prompt (tok/s), from the ttft section.
    #[cfg_attr(not(feature = "local"), allow(unused_mut))]
    let mut prompt_read: Option<f64> = None;
    #[cfg(feature = "local")]
    {
        if want(Section::Local) {
            match rt.block_on(engine::local_vs_bare(&plan, &files)) {
                Ok((out, rates)) => {
                    local_rates = rates;
                    outs.push(out);
                }
                Err(e) => outs.push(section("local", Err(e))),
            }
        }
        if want(Section::Kernel) {
            outs.push(section("kernel", kernel::run(&plan, &files, &local_rates)));
        }
        // What users run: the re-quantized default file.
        let default = requantized.clone().unwrap_or_else(|| model.clone());
        if want(Section::Concurrency) {
            outs.push(section(
                "concurrency",
                rt.block_on(engine::concurrency(&plan, &default)),
            ));
        }
        if want(Section::Ttft) {
            match rt.block_on(engine::ttft(&plan, &default)) {
                Ok((out, read)) => {
                    prompt_read = Some(read);
                    outs.push(out);
                }
                Err(e) => outs.push(section("ttft", Err(e))),
            }
        }
        if want(Section::Branch) {
            outs.push(section(
                "branch",
                rt.block_on(engine::branch(&plan, &default)),
            ));
        }
    }
    #[cfg(not(feature = "local"))]
    if want(Section::Local)
        || want(Section::Kernel)
        || want(Section::Concurrency)
        || want(Section::Ttft)
        || want(Section::Branch)
    {
        println!(
            "\nlocal, kernel, concurrency, ttft, branch: skipped (this promptloom was built without the `local` feature)"
        );
    }
    if want(Section::Llama) {
        let server = llama::find_server(args.llama_server.as_deref());
        outs.push(section(
            "llama",
            rt.block_on(llama::run(
                &plan,
                server,
                args.llama_threads,
                &files,
                &local_rates,
                prompt_read,
            )),
        ));
    }
    println!("\nGoals (measured on {})", machine.tag());
    let mut missed = 0;
    for g in outs.iter().flat_map(|o| &o.goals) {
        let mark = match g.met {
            Some(true) => "met",
            Some(false) => {
                missed += 1;
                "MISSED"
            }
            None => "n/a",
        };
        println!(
            "  {:<58} {:<14} {:<24} {mark}",
            g.what, g.target, g.measured
        );
    }
    println!(
        "\nbench took {:.0} s; {missed} goal(s) missed",
        t0.elapsed().as_secs_f64()
    );
    // Missed goals are results; a section that could not run is a failure.
    Ok(if outs.iter().any(|o| o.failed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The retrieval figures ([`retrieval::measure`]) as lines and goals.
fn retrieval_section(plan: &Plan) -> anyhow::Result<Out> {
    let sizes: &[usize] = if plan.quick { &[1] } else { &[1, 10] };
    let f = retrieval::measure(sizes, plan.runs).map_err(|e| anyhow::anyhow!(e))?;
    let mut out = Out::default();
    out.line(format!(
        "\nRetrieval: chunk (300 tokens, overlap 50) + BM25 index of one document; median [min–max] of runs · {}",
        plan.machine.tag()
    ));
    out.line(format!(
        "  {:>6}  {:>8}  {:>22}  {:>16}",
        "MB", "chunks", "build ms", "query ms"
    ));
    for d in &f.documents {
        let (build, query) = (Sample(d.build_ms.clone()), Sample(d.query_ms.clone()));
        out.line(format!(
            "  {:>6}  {:>8}  {:>22}  {:>16}",
            d.mb,
            d.chunks,
            build.show(0),
            query.show(1)
        ));
        out.goal(
            &format!("BM25 index of {} MB builds in", d.mb),
            "(figure)",
            format!("{:.0} ms", build.median().unwrap_or(f64::NAN)),
            None,
        );
    }
    let n = f.questions;
    out.line(format!(
        "  hit@k on the test corpus ({n} questions, {} chunks, BM25): hit@1 {}/{n}, hit@3 {}/{n}",
        f.corpus_chunks, f.hit1, f.hit3
    ));
    for (k, hits) in [(1, f.hit1), (3, f.hit3)] {
        out.goal(
            &format!("retrieval test corpus: hit@{k} (BM25)"),
            &format!("{n}/{n}"),
            format!("{hits}/{n}"),
            Some(hits == n),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_section_is_reported_and_the_others_are_kept() {
        let ok = section("ui", Ok(Out::default()));
        assert!(!ok.failed);
        let bad = section("llama", Err(anyhow::anyhow!("server went away")));
        assert!(bad.failed);
        assert!(
            bad.text.contains("llama: FAILED: server went away"),
            "{}",
            bad.text
        );
        assert_eq!(bad.goals.len(), 1);
        assert_eq!(bad.goals[0].met, Some(false));
    }
}
