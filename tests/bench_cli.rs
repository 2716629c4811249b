//! `promptloom bench` end to end for the sections that need no model: session files and the
//! UI (drawing, and the real event loop absorbing a scripted model). The model sections are
//! run by hand (`make bench`); their figures are in the README.

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
