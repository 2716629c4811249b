//! promptloom (issue 12): the engine pool's other workers stay awake for the length of a step.
//!
//! A decoded token is about 270 parallel ops (every mat-vec, norm and attention call of 30
//! layers), each a few tens of microseconds. Between two of them rayon's idle worker searches
//! for work 32 times, then sleeps on a futex; the next op's fork must wake it, and on a
//! virtual machine an idle vCPU that halted is woken through the hypervisor. So the second
//! core often joins an op late or not at all. llama.cpp's threads spin for the length of a
//! graph instead.
//!
//! Here the engine thread (worker 0 of the engine pool, patch 6) opens a `HotStep` for each
//! scheduled step: every other worker of the pool runs a broadcast job that takes rayon work
//! with `rayon::yield_now` (a stolen half of a fork, any job) in a loop, and only looks for a
//! pause hint when it finds none, until the step ends. Nothing is computed differently (the
//! same ops split the same way; only who waits, and how, changes), so the bits are the same.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

static ENABLED: AtomicBool = AtomicBool::new(true);
/// Spinners running now, steps opened with spinners, and jobs they ran: for the tests.
static SPINNING: AtomicUsize = AtomicUsize::new(0);
static STEPS: AtomicUsize = AtomicUsize::new(0);
static JOBS: AtomicUsize = AtomicUsize::new(0);

/// One engine pool's step state, owned by its worker 0 (each engine thread has its own, so
/// two engines in one process never end each other's steps).
#[derive(Default)]
struct Steps {
    /// Whether a step is open (the spinners' condition).
    hot: AtomicBool,
    /// Worker 0's copies of the broadcast not yet run (drained when a step closes).
    pending_on_engine: AtomicUsize,
}

thread_local! {
    static ENGINE_STEPS: Arc<Steps> = Arc::new(Steps::default());
    static IN_SPIN: Cell<bool> = const { Cell::new(false) };
}

/// Keep the engine pool's workers awake during steps from now on (the default), or let them
/// sleep between ops as rayon does (false: mistral.rs 0.8.1 with patch 6).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// What the spinners have done since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HotStats {
    /// Steps opened with spinning workers.
    pub steps: usize,
    /// Rayon jobs the spinners ran.
    pub jobs: usize,
    /// Spinners running now.
    pub spinning: usize,
}

pub fn stats() -> HotStats {
    HotStats {
        steps: STEPS.load(Ordering::Relaxed),
        jobs: JOBS.load(Ordering::Relaxed),
        spinning: SPINNING.load(Ordering::Acquire),
    }
}

/// An open step: the pool's other workers spin until it drops.
pub struct HotStep(Arc<Steps>);

/// Open a step on the calling thread when it is worker 0 of a pool of two threads or more
/// (the engine thread in its pool) and spinning is switched on; None otherwise.
pub fn hot_step() -> Option<HotStep> {
    if !ENABLED.load(Ordering::Relaxed)
        || rayon::current_thread_index() != Some(0)
        || rayon::current_num_threads() < 2
    {
        return None;
    }
    let steps = ENGINE_STEPS.with(Arc::clone);
    steps.hot.store(true, Ordering::Release);
    steps.pending_on_engine.fetch_add(1, Ordering::AcqRel);
    STEPS.fetch_add(1, Ordering::Relaxed);
    let shared = steps.clone();
    rayon::spawn_broadcast(move |ctx| {
        if ctx.index() == 0 {
            // The engine thread's own copy (run while it waits inside a fork, or when the step
            // closes): it must not spin, since only it ends the step.
            shared.pending_on_engine.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        spin_while_hot(&shared.hot);
    });
    Some(HotStep(steps))
}

impl Drop for HotStep {
    fn drop(&mut self) {
        self.0.hot.store(false, Ordering::Release);
        // Run this thread's copies of the broadcast now, so none is left queued when the pool
        // is dropped (a pending broadcast job keeps the pool's threads from ending).
        while self.0.pending_on_engine.load(Ordering::Acquire) > 0 {
            if rayon::yield_local() != Some(rayon::Yield::Executed) {
                break;
            }
        }
    }
}

fn spin_while_hot(hot: &AtomicBool) {
    // A spinner that picks up a later step's broadcast while it spins returns it at once: the
    // running loop already serves that step (it checks `hot` after every job).
    if IN_SPIN.with(|s| s.replace(true)) {
        return;
    }
    SPINNING.fetch_add(1, Ordering::AcqRel);
    let mut idle = 0u32;
    while hot.load(Ordering::Acquire) {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => {
                JOBS.fetch_add(1, Ordering::Relaxed);
                idle = 0;
            }
            Some(rayon::Yield::Idle) => {
                idle = idle.wrapping_add(1);
                if idle % 256 == 0 {
                    // Let another runnable thread on this core (a sampler in rayon's global
                    // pool, the runtime's threads) have it.
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            None => break,
        }
    }
    SPINNING.fetch_sub(1, Ordering::AcqRel);
    IN_SPIN.with(|s| s.set(false));
}
