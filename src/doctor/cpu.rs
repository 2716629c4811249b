//! Which CPU features this build was compiled to use and which this CPU has.
//!
//! The repository builds with `target-cpu=native` (candle picks its SIMD kernels at compile
//! time), so a binary built on a machine with AVX-512 dies of an illegal instruction on one
//! without it. [`startup_check`] runs first thing in `main`, before anything that could
//! execute such an instruction (as far as Rust lets us: this code itself is compiled with
//! the same flags, but it only compares bits and writes bytes), and explains instead of
//! dying. A SIGILL that still happens later is caught by [`install_sigill_handler`], which
//! prints the same explanation before the process dies of it.

/// One CPU feature: its name as `target_feature` and `is_x86_feature_detected!` spell it,
/// whether this build was compiled to use it, and whether this CPU has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Feature {
    pub name: &'static str,
    /// `None`: stable Rust cannot compile for it (AMX), so no build of ours uses it.
    pub compiled: Option<bool>,
    pub detected: bool,
}

/// Names a test can pretend the CPU lacks (comma-separated), to exercise the startup check on
/// a CPU that has everything.
const PRETEND_LACKS: &str = "PROMPTLOOM_PRETEND_CPU_LACKS";

/// The features that matter for this program's speed (candle's and our kernels), in the order
/// a user reads them.
pub(crate) fn features() -> Vec<Feature> {
    #[allow(unused_mut)]
    let mut out: Vec<Feature> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! f {
            ($name:tt) => {
                out.push(Feature {
                    name: $name,
                    compiled: Some(cfg!(target_feature = $name)),
                    detected: std::arch::is_x86_feature_detected!($name),
                })
            };
        }
        f!("sse4.2");
        f!("avx");
        f!("avx2");
        f!("fma");
        f!("f16c");
        f!("bmi2");
        f!("avx512f");
        f!("avx512bw");
        f!("avx512vl");
        f!("avx512dq");
        f!("avx512vnni");
        f!("avx512bf16");
        f!("avxvnni");
        // AMX can't be detected with the std macro on stable: read CPUID leaf 7 ourselves.
        // SAFETY: CPUID exists on every x86_64 CPU (safe to call from Rust 1.94 on).
        #[allow(unused_unsafe)]
        let leaf7 = unsafe { std::arch::x86_64::__cpuid_count(7, 0) };
        for (name, bit) in [("amx-tile", 24), ("amx-int8", 25), ("amx-bf16", 22)] {
            out.push(Feature {
                name,
                compiled: None,
                detected: leaf7.edx >> bit & 1 == 1,
            });
        }
    }
    if let Some(lacks) = std::env::var_os(PRETEND_LACKS) {
        let lacks = lacks.to_string_lossy().into_owned();
        for f in &mut out {
            if lacks.split(',').any(|n| n.trim() == f.name) {
                f.detected = false;
            }
        }
    }
    out
}

/// Features this build uses that this CPU does not have.
pub(crate) fn missing(features: &[Feature]) -> Vec<&'static str> {
    features
        .iter()
        .filter(|f| f.compiled == Some(true) && !f.detected)
        .map(|f| f.name)
        .collect()
}

fn names(features: &[Feature], pick: impl Fn(&Feature) -> bool) -> String {
    let v: Vec<&str> = features
        .iter()
        .filter(|f| pick(f))
        .map(|f| f.name)
        .collect();
    if v.is_empty() {
        "none of the listed".into()
    } else {
        v.join(" ")
    }
}

/// What to tell the user about a build that needs features this CPU lacks.
pub(crate) fn explain_missing(features: &[Feature], missing: &[&str]) -> String {
    format!(
        "this promptloom binary was compiled for a CPU with {} (it was built with target-cpu=native on another machine), but this CPU lacks {}; running it would die of an illegal instruction.\n  this CPU has: {}\n  fix: rebuild on this machine (`cargo build --release` in the repository: .cargo/config.toml builds for the CPU it runs on), or build a portable binary with RUSTFLAGS=\"-C target-cpu=x86-64-v2\"",
        names(features, |f| f.compiled == Some(true)),
        missing.join(" "),
        names(features, |f| f.detected),
    )
}

/// Run first in `main`: `Err` with the explanation when this build can't run on this CPU.
pub(crate) fn startup_check() -> Result<(), String> {
    let features = features();
    let missing = missing(&features);
    if missing.is_empty() {
        install_sigill_handler(&features);
        Ok(())
    } else {
        Err(explain_missing(&features, &missing))
    }
}

/// The message the SIGILL handler writes: made before the handler is installed, because a
/// signal handler may not allocate.
static SIGILL_MESSAGE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Print why on SIGILL, then die of it as before (exit status and core dump unchanged).
#[cfg(unix)]
fn install_sigill_handler(features: &[Feature]) {
    let msg = format!(
        "\npromptloom: illegal instruction (SIGILL). This build was compiled for a CPU with {}; this CPU has {}. If the binary came from another machine, rebuild it here (`cargo build --release`), or build with RUSTFLAGS=\"-C target-cpu=x86-64-v2\" for a portable binary. `promptloom doctor` lists the CPU features.\n",
        names(features, |f| f.compiled == Some(true)),
        names(features, |f| f.detected),
    );
    if SIGILL_MESSAGE.set(msg.into_bytes()).is_err() {
        return;
    }
    extern "C" fn on_sigill(_sig: libc::c_int) {
        if let Some(m) = SIGILL_MESSAGE.get() {
            // SAFETY: write(2) and signal(2) are async-signal-safe; the buffer is 'static.
            unsafe {
                libc::write(2, m.as_ptr().cast(), m.len());
            }
        }
        // SAFETY: restore the default action and re-raise: the signal is blocked while this
        // handler runs, so it is delivered (and kills the process) when the handler returns;
        // a real faulting instruction also faults again under the default action.
        unsafe {
            libc::signal(libc::SIGILL, libc::SIG_DFL);
            libc::raise(libc::SIGILL);
        }
    }
    // SAFETY: installing a handler that only calls async-signal-safe functions.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigill as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGILL, &sa, std::ptr::null_mut());
    }
}

#[cfg(not(unix))]
fn install_sigill_handler(_features: &[Feature]) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn feat(name: &'static str, compiled: Option<bool>, detected: bool) -> Feature {
        Feature {
            name,
            compiled,
            detected,
        }
    }

    #[test]
    fn a_build_feature_the_cpu_lacks_is_missing_and_explained() {
        let fs = vec![
            feat("avx2", Some(true), true),
            feat("avx512f", Some(true), false),
            feat("avxvnni", Some(false), true),
            feat("amx-tile", None, false),
        ];
        assert_eq!(missing(&fs), ["avx512f"]);
        let e = explain_missing(&fs, &missing(&fs));
        assert!(e.contains("compiled for a CPU with avx2 avx512f"), "{e}");
        assert!(e.contains("this CPU lacks avx512f"), "{e}");
        assert!(e.contains("this CPU has: avx2 avxvnni"), "{e}");
        assert!(e.contains("rebuild on this machine"), "{e}");
    }

    #[test]
    fn this_build_runs_on_this_cpu() {
        // The tests run on the machine they were built on.
        assert_eq!(missing(&features()), Vec::<&str>::new());
    }
}
