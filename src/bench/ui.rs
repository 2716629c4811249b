//! UI figures: per-frame draw time of 6 panes at 1 KB / 100 KB / 1 MB answers.

use std::time::Instant;

use super::{Out, Plan, Sample};
use crate::bench_api::DrawBench;

/// Median microseconds per frame over `frames` frames, in `runs` batches.
fn frame_us(b: &mut DrawBench, frames: usize, runs: usize, stream: bool) -> Sample {
    let mut s = Sample::default();
    let mut n = 0u64;
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..frames {
            if stream {
                n += 1;
                b.append(if n.is_multiple_of(12) {
                    "word\n"
                } else {
                    "word "
                });
            }
            b.draw();
        }
        s.push(t.elapsed().as_secs_f64() * 1e6 / frames as f64);
    }
    s
}

pub(crate) fn run(plan: &Plan) -> anyhow::Result<Out> {
    let mut out = Out::default();
    out.line("\nUI: draw time per frame, 6 panes at 120×40 (µs, median [min–max] of batches)");
    out.line(format!(
        "  {:>7}  {:>26}  {:>26}",
        "answer", "idle frame", "streaming frame"
    ));
    let frames = if plan.quick { 20 } else { 200 };
    let runs = plan.runs.max(5);
    let mut idle = Vec::new();
    for (label, bytes) in [("1 KB", 1_000), ("100 KB", 100_000), ("1 MB", 1_000_000)] {
        let mut b = DrawBench::new(6, bytes, 120, 40);
        b.draw();
        let still = frame_us(&mut b, frames, runs, false);
        let mut s = DrawBench::new(6, bytes, 120, 40);
        s.draw();
        let streaming = frame_us(&mut s, frames, runs, true);
        out.line(format!(
            "  {label:>7}  {:>26}  {:>26}",
            still.show(0),
            streaming.show(0)
        ));
        idle.push(still.median().unwrap_or(f64::NAN));
    }
    if let [small, _, big] = idle[..] {
        let ratio = big / small;
        out.goal(
            "1 MB answers draw within 2× the 1 KB time",
            "≤ 2.0×",
            format!("{ratio:.2}× ({big:.0} vs {small:.0} µs)"),
            Some(ratio <= 2.0),
        );
    }
    Ok(out)
}
