//! Progress of long headless runs (`run`, `technique`): an `indicatif` bar on stderr when it
//! is a terminal, one plain line per finished step when it is piped or redirected (a log
//! then reads as a log, with no carriage returns or escape sequences in it).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress display; clones share it.
#[derive(Clone)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    what: Arc<str>,
    len: Option<u64>,
    done: Arc<AtomicU64>,
}

impl Progress {
    /// `what` names the run in plain lines; `len` is the number of steps if known.
    pub fn new(what: &str, len: Option<u64>) -> Progress {
        Progress::with_terminal(what, len, std::io::stderr().is_terminal())
    }

    pub fn with_terminal(what: &str, len: Option<u64>, terminal: bool) -> Progress {
        let bar = terminal.then(|| {
            let pb = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
            let template = if len.is_some() {
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} eta {eta} {msg}"
            } else {
                "{spinner} {elapsed_precise} {pos} done {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                pb.set_style(style.progress_chars("=> "));
            }
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        Progress {
            bar,
            what: what.into(),
            len,
            done: Arc::new(AtomicU64::new(0)),
        }
    }

    /// One step finished; `line` says which (printed as a plain line when not a terminal).
    pub fn step(&self, line: &str) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(b) => b.inc(1),
            None => eprintln!("{}", self.plain_line(n, line)),
        }
    }

    fn plain_line(&self, n: u64, line: &str) -> String {
        let line = crate::sanitize::one_line(line, 200);
        match self.len {
            Some(len) => format!("{} [{n}/{len}] {line}", self.what),
            None => format!("{} [{n}] {line}", self.what),
        }
    }

    /// A transient status (the bar's message; nothing when piped).
    pub fn message(&self, m: String) {
        if let Some(b) = &self.bar {
            b.set_message(m);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_count_steps_and_stay_on_one_line() {
        let p = Progress::with_terminal("run", Some(3), false);
        assert_eq!(
            p.plain_line(2, "plain × England: PASS\n(ok)"),
            "run [2/3] plain × England: PASS (ok)"
        );
        let q = Progress::with_terminal("search", None, false);
        assert_eq!(q.plain_line(7, "thought #9"), "search [7] thought #9");
        assert!(q.bar.is_none());
    }
}
