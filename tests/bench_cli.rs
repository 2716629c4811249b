//! `promptloom bench` end to end: the sections that need no model (session files, the UI
//! drawing and the real event loop absorbing a scripted model), and the kernel section on the
//! real model files. The decode sections take minutes and are run by hand (`make bench`);
//! their figures are in the README.

mod common;

use common::{text, Sandbox};

#[test]
fn quick_bench_prints_session_and_ui_figures_against_their_goals() {
    let sb = Sandbox::new("");
    let o = sb.run(&["bench", "--quick", "--only", "session,ui"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    for want in [
        "Session files",
        "1000",
        "UI: draw time per frame",
        "1 MB",
        "ingest:",
        "tok/s",
        "1 MB answers draw within 2× the 1 KB time",
        "UI absorbs across 6 panes",
        "goal(s) missed",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // Nothing is written where the bench runs.
    assert!(!sb.path("sessions").exists());
}

/// The kernel section on the real model files: candle's mat-vecs for one token, timed alone,
/// next to the memory-bandwidth floor.
#[cfg(feature = "local")]
#[test]
fn kernel_section_times_every_weight_of_both_files() {
    let sb = Sandbox::new("");
    let default = common::require_default_model();
    let shipped = common::shipped_model_path();
    let o = sb.run(&[
        "bench",
        "--quick",
        "--only",
        "kernel",
        "--model",
        shipped.to_str().unwrap(),
        "--requantized",
        default.to_str().unwrap(),
    ]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    for want in [
        "Where decode time goes",
        "memory read bandwidth",
        "Q4_1.gguf (shipped)",
        "Q8_0.gguf (re-quantized)",
        "211 mat-vecs, 134 M multiply-adds per token",
        "the memory floor allows",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

/// The retrieval section: index build time of a 1 MB document (quick) and hit@k, with the CPU.
#[test]
fn retrieval_bench_prints_index_build_time_and_hit_at_k() {
    let sb = Sandbox::new("");
    let o = sb.run(&["bench", "--quick", "--only", "retrieval"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    for want in [
        "Retrieval: chunk (300 tokens, overlap 50) + BM25 index",
        " threads",
        "BM25 index of 1 MB builds in",
        "hit@1 10/10, hit@3 10/10",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

/// `bench --fuzz SECONDS` in the shipped binary: every fuzz target runs, and the table names
/// each with the inputs it took and no crash.
#[test]
fn bench_fuzz_runs_every_target_and_counts_inputs_and_crashes() {
    let sb = Sandbox::new("");
    let o = sb.run(&["bench", "--fuzz", "0.3"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    for target in [
        "prompt files",
        "config",
        "keymaps",
        "themes",
        "session files (format 1 and 2)",
        "journals",
        "rate stdin lines",
        "SSE streams (OpenAI, Anthropic)",
        "NDJSON streams (Ollama)",
        "GGUF headers and tensor tables",
        "cases files (csv)",
        "cases files (jsonl)",
        "cases files (yaml)",
    ] {
        let line = out
            .lines()
            .skip_while(|l| !l.starts_with("fuzz targets"))
            .find(|l| l.trim_start().starts_with(target) && l.contains("inputs"))
            .unwrap_or_else(|| panic!("no row for {target:?} in:\n{out}"));
        assert!(line.ends_with(" 0 crashes"), "{line}");
        let inputs: u64 = line[target.len() + 2..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {line:?}"));
        assert!(inputs >= 256, "{line}");
    }
    assert!(
        out.contains("fuzz: ") && out.contains(" 0 crashes"),
        "{out}"
    );
    let bad = sb.run(&["bench", "--fuzz", "-1"]);
    assert!(!bad.status.success());
}

/// The branch section on the real model (issue 16): a branch from a token of an answer and a
/// sampled alternative each time their first token after the parent read the whole prompt.
#[cfg(feature = "local")]
#[test]
fn branch_section_times_a_branch_and_a_sample_against_the_parent() {
    let sb = Sandbox::new("");
    let default = common::require_default_model();
    let o = sb.run(&[
        "bench",
        "--quick",
        "--only",
        "branch",
        "--model",
        default.to_str().unwrap(),
        "--requantized",
        default.to_str().unwrap(),
    ]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    for want in [
        "Branch start: time to first token after the parent answered",
        " threads",
        "parent (new prefix, whole prompt read)",
        "branch from a token (continuation)",
        "sample / tree-of-thought alternative (seeded)",
        "branch from a token starts",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // Three timings in ms, each a number.
    let times: Vec<f64> = out
        .lines()
        .filter(|l| {
            l.contains("(new prefix, whole")
                || l.contains("(continuation)")
                || l.contains("(seeded)")
        })
        .filter_map(|l| {
            l.trim_end()
                .strip_suffix(" ms")?
                .split_whitespace()
                .last()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(times.len(), 3, "{out}");
    // The branch reads only its partial answer: faster than the parent, which read ~1,800.
    assert!(times[1] < times[0], "{times:?}\n{out}");
}
