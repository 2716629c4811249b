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
