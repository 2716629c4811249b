//! UI figures: per-frame draw time of 6 panes at 1 KB / 100 KB / 1 MB answers, and the rate
//! at which the real event loop absorbs a scripted model streaming into 6 panes.

use std::path::Path;
use std::time::Instant;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use futures::StreamExt;

use super::figures::{Out, Plan, Sample};
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

/// What the event loop absorbed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ingest {
    pub tokens: u64,
    pub seconds: f64,
    pub frames: u64,
}

impl Ingest {
    pub fn tokens_per_s(&self) -> f64 {
        self.tokens as f64 / self.seconds.max(1e-9)
    }

    pub fn frames_per_s(&self) -> f64 {
        self.frames as f64 / self.seconds.max(1e-9)
    }
}

/// One line of answer: 12 words, one chunk (token) each, then a newline, as a model writes
/// prose.
const LINE: &str = "The quick brown fox jumps over the lazy dog, again and again.\\n";
/// The same words with no newline ever: one line that grows for the whole answer.
const ENDLESS: &str = "The quick brown fox jumps over the lazy dog, again and again. ";
const LINE_WORDS: usize = 12;

/// `panes` variants of a scripted model that streams about `tokens` one-word chunks (lines of
/// [`LINE`], or with `endless` one line of [`ENDLESS`]) with no delay, run through the app's own event loop (driver, update, draw at ≤ 60 frames/s) on an
/// in-memory 160×48 screen: Enter runs them all, the loop ends when every stream is done.
pub(crate) fn ingest(
    dir: &Path,
    panes: usize,
    tokens: usize,
    endless: bool,
) -> anyhow::Result<Ingest> {
    use crate::app::driver::{event_loop, in_memory, MemoryScreen};
    let config = format!(
        "default_model = \"fast\"\n[models.fast]\nbackend = \"scripted\"\nreply = \"{}\"\nrepeat = {}\ndelay_ms = 0\n",
        if endless { ENDLESS } else { LINE },
        tokens.div_ceil(LINE_WORDS)
    );
    let mut text = String::from("title = \"ingest\"\n");
    for i in 0..panes {
        text.push_str(&format!(
            "[[variant]]\nname = \"v{i}\"\ntemplate = \"{{{{q}}}}\"\n"
        ));
    }
    text.push_str("[[case]]\nname = \"c\"\nvars = { q = \"go\" }\n");
    let (config, prepared) = in_memory::load_in(
        dir,
        &config,
        "ingest.toml",
        &text,
        &dir.join("session.toml"),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut screen = MemoryScreen::new(160, 48)?;
    let enter = Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let events = futures::stream::iter([Ok(enter)]).chain(futures::stream::pending());
    let t0 = Instant::now();
    let (state, _) = rt.block_on(event_loop(config, prepared, &mut screen, events, true))?;
    let seconds = t0.elapsed().as_secs_f64();
    let tokens = state.session.nodes.iter().map(|n| n.tokens_out).sum();
    Ok(Ingest {
        tokens,
        seconds,
        frames: screen.frames,
    })
}

/// Ingest runs of 6 panes printed as one line: tokens/s and frames/s, median [min–max].
fn ingest_figures(out: &mut Out, plan: &Plan, endless: bool) -> anyhow::Result<(Sample, Sample)> {
    let per_pane = if plan.quick { 5_000 } else { 50_000 };
    let mut rate = Sample::default();
    let mut fps = Sample::default();
    let mut total = 0;
    for _ in 0..plan.runs.max(3) {
        let dir = tempfile::tempdir()?;
        let r = ingest(dir.path(), 6, per_pane, endless)?;
        total = r.tokens;
        rate.push(r.tokens_per_s());
        fps.push(r.frames_per_s());
    }
    out.line(format!(
        "  ingest: a scripted model streaming {total} one-word tokens ({}) as fast as it can \
         into 6 panes through the real event loop: {} tok/s, {} frames/s",
        if endless {
            "one line that never ends, ~300 KB a pane"
        } else {
            "12-word lines"
        },
        rate.show(0),
        fps.show(1)
    ));
    Ok((rate, fps))
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
    let (rate, fps) = ingest_figures(&mut out, plan, false)?;
    ingest_figures(&mut out, plan, true)?;
    let (r, f) = (
        rate.median().unwrap_or(f64::NAN),
        fps.median().unwrap_or(f64::NAN),
    );
    out.goal(
        "UI absorbs across 6 panes (at ≤ 60 frames/s)",
        "≥ 100,000 tok/s",
        format!("{r:.0} tok/s at {f:.1} fps"),
        Some(r >= 100_000.0 && f <= 60.5),
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The real loop in memory: every token of every pane arrives, the loop ends by itself,
    /// and it never draws more than 60 frames a second.
    #[test]
    fn ingest_runs_the_real_loop_to_the_end() {
        let dir = tempfile::tempdir().unwrap();
        for endless in [false, true] {
            let r = ingest(dir.path(), 6, 2_004, endless).unwrap();
            assert_eq!(r.tokens, 12_024);
            assert!(r.frames >= 1);
            // At most one frame per 1/60 s, plus the first and the last.
            assert!(r.frames as f64 <= r.seconds * 60.0 + 2.0, "{r:?}");
            assert!(!dir.path().join("sessions").exists());
        }
    }
}
