//! `promptloom bench --fuzz SECONDS`: every fuzz target of [`crate::fuzz`] for SECONDS, two
//! at a time on this machine's cores, then a table of inputs tried and crashes per target.
//! Exit 1 when any target crashed (its smallest failing input is printed).

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::fuzz::{targets, Budget, Report};

/// `machine` is the bench's `CPU · features · threads` line.
pub(crate) fn run(seconds: f64, machine: &str) -> ExitCode {
    let targets = targets();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, targets.len());
    println!(
        "promptloom bench --fuzz: {} targets, {seconds} s each, {workers} at a time · {}",
        targets.len(),
        machine
    );
    let budget = Budget {
        cases: 256,
        time: Some(Duration::from_secs_f64(seconds)),
    };
    let t0 = Instant::now();
    let next = AtomicUsize::new(0);
    let reports: Mutex<Vec<Option<Report>>> = Mutex::new(vec![None; targets.len()]);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((_, target)) = targets.get(i) else {
                    break;
                };
                let r = target(&budget);
                println!(
                    "  {:<34} {:>10} inputs  {:>6.1} s  {}",
                    r.name,
                    r.inputs,
                    r.elapsed.as_secs_f64(),
                    if r.crash.is_some() {
                        "CRASH"
                    } else {
                        "no crash"
                    }
                );
                if let Ok(mut all) = reports.lock() {
                    all[i] = Some(r);
                }
            });
        }
    });
    let reports: Vec<Report> = reports
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    println!("\nfuzz targets (inputs tried, crashes):");
    let mut crashes = 0;
    for r in &reports {
        let c = usize::from(r.crash.is_some());
        crashes += c;
        println!("  {:<34} {:>10} inputs  {c} crashes", r.name, r.inputs);
    }
    for r in &reports {
        if let Some(c) = &r.crash {
            println!("\n{c}");
        }
    }
    let total: u64 = reports.iter().map(|r| r.inputs).sum();
    let lost = targets.len() - reports.len();
    println!(
        "\nfuzz: {total} inputs over {} targets in {:.0} s, {crashes} crashes{}",
        reports.len(),
        t0.elapsed().as_secs_f64(),
        if lost > 0 {
            format!(", {lost} target(s) did not report")
        } else {
            String::new()
        }
    );
    if crashes > 0 || lost > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
