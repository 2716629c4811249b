//! `promptloom compare SESSION_A SESSION_B`: what changed between two runs of one prompt
//! file. Per variant and case: whether the answers passed their checks in each session (a
//! flip is a fix or a regression), the mean stars in each and their difference; per variant:
//! whether its prompt changed (word counts of the diff) and its totals.
//!
//! A cell's pass state is that of its latest finished answer (root answers only: critiques
//! and branches are not what the prompt produced); its stars are the mean over every rating
//! of every answer in the cell. `--fail-on-regression` exits 1 when a cell went from pass
//! to fail, for CI.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::state::diff::{word_counts, word_diff};
use crate::state::session::{NodeKind, NodeStatus, Session};

/// Options of `promptloom compare`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompareArgs {
    /// The earlier session.
    pub session_a: PathBuf,
    /// The later session.
    pub session_b: PathBuf,
    /// Exit 1 if any variant × case passed in A and fails in B.
    #[arg(long)]
    pub fail_on_regression: bool,
}

/// One variant × case in one session.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Cell {
    /// The latest finished answer's checks: `Some(true)` passed, `Some(false)` failed,
    /// `None` no checks or no finished answer.
    pub passed: Option<bool>,
    pub answers: usize,
    /// Sum and count of the stars given to its answers.
    pub stars: (f64, usize),
}

impl Cell {
    pub fn mean_stars(&self) -> Option<f64> {
        (self.stars.1 > 0).then(|| self.stars.0 / self.stars.1 as f64)
    }
}

/// What a session says per (variant, case).
pub(crate) fn cells(s: &Session) -> BTreeMap<(String, String), Cell> {
    let mut out: BTreeMap<(String, String), Cell> = BTreeMap::new();
    let mut stars: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for r in &s.ratings {
        if let Some(st) = r.stars {
            stars.entry(r.node).or_default().push(st);
        }
    }
    for n in &s.nodes {
        if n.parent.is_some() || n.kind != NodeKind::Answer || n.meta.contains_key("not_sent") {
            continue;
        }
        let c = out.entry((n.variant.clone(), n.case.clone())).or_default();
        if n.status == NodeStatus::Done {
            c.answers += 1;
            // Nodes are in creation order: the last one seen is the latest.
            c.passed = n.passed();
        }
        for st in stars.get(&n.id).into_iter().flatten() {
            c.stars.0 += f64::from(*st);
            c.stars.1 += 1;
        }
    }
    out
}

/// The comparison as text, and whether anything regressed.
pub(crate) fn report(a: &Session, b: &Session, names: (&str, &str)) -> (String, bool) {
    let (ca, cb) = (cells(a), cells(b));
    let keys: BTreeSet<&(String, String)> = ca.keys().chain(cb.keys()).collect();
    let mut out = String::new();
    let _ = writeln!(out, "A: {} ({})", names.0, a.title);
    let _ = writeln!(out, "B: {} ({})", names.1, b.title);
    if a.prompt_file != b.prompt_file {
        let _ = writeln!(
            out,
            "note: different prompt files ({} vs {})",
            a.prompt_file.as_deref().unwrap_or("none"),
            b.prompt_file.as_deref().unwrap_or("none")
        );
    }
    let _ = writeln!(out);
    let rows: Vec<[String; 6]> = keys
        .iter()
        .map(|k| {
            let (x, y) = (ca.get(*k), cb.get(*k));
            let pass = |c: Option<&Cell>| match c {
                None => "—".to_string(),
                Some(c) => match c.passed {
                    Some(true) => "pass".into(),
                    Some(false) => "fail".into(),
                    None => "·".into(),
                },
            };
            let flip = match (x.and_then(|c| c.passed), y.and_then(|c| c.passed)) {
                (Some(true), Some(false)) => "REGRESSED",
                (Some(false), Some(true)) => "fixed",
                _ => "",
            };
            let sa = x.and_then(Cell::mean_stars);
            let sb = y.and_then(Cell::mean_stars);
            let fmt = |s: Option<f64>| s.map_or("—".to_string(), |v| format!("{v:.1}"));
            let delta = match (sa, sb) {
                (Some(p), Some(q)) => format!("{:+.1}", q - p),
                _ => String::new(),
            };
            [
                k.0.clone(),
                k.1.clone(),
                format!("{} → {}", pass(x), pass(y)),
                flip.to_string(),
                format!("{} → {}", fmt(sa), fmt(sb)),
                delta,
            ]
        })
        .collect();
    let header = [
        "variant",
        "case",
        "checks A → B",
        "flip",
        "stars A → B",
        "Δ stars",
    ];
    let mut widths = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let mut l = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(c);
            l.push_str(&" ".repeat(w - c.chars().count()));
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&header.map(String::from)));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r));
    }
    let regressed = rows.iter().filter(|r| r[3] == "REGRESSED").count();
    let fixed = rows.iter().filter(|r| r[3] == "fixed").count();
    let _ = writeln!(out);
    // Per variant: did its prompt change, and its totals.
    let variants: BTreeSet<&String> = keys.iter().map(|k| &k.0).collect();
    for v in variants {
        let total = |c: &BTreeMap<(String, String), Cell>| {
            let mut passed = 0;
            let mut checked = 0;
            let mut stars = (0.0, 0);
            for ((name, _), cell) in c {
                if name == v {
                    checked += usize::from(cell.passed.is_some());
                    passed += usize::from(cell.passed == Some(true));
                    stars.0 += cell.stars.0;
                    stars.1 += cell.stars.1;
                }
            }
            let mean = (stars.1 > 0).then(|| stars.0 / stars.1 as f64);
            (passed, checked, mean)
        };
        let (pa, na, ma) = total(&ca);
        let (pb, nb, mb) = total(&cb);
        let fmt = |m: Option<f64>| m.map_or("—".to_string(), |v| format!("{v:.2}"));
        let prompt = match (
            a.variants.iter().find(|x| x.name == *v),
            b.variants.iter().find(|x| x.name == *v),
        ) {
            (Some(x), Some(y)) if x == y => "prompt unchanged".to_string(),
            (Some(x), Some(y)) => {
                let text = |v: &crate::prompt::Variant| {
                    serde_json::to_string_pretty(v).unwrap_or_default()
                };
                let (added, removed) = word_counts(&word_diff(&text(x), &text(y)));
                format!("prompt changed (+{added} −{removed} words)")
            }
            (None, Some(_)) => "new in B".to_string(),
            (Some(_), None) => "not in B".to_string(),
            (None, None) => "prompt not recorded".to_string(),
        };
        let _ = writeln!(
            out,
            "{v}: {prompt}; passed {pa}/{na} → {pb}/{nb}; mean stars {} → {}",
            fmt(ma),
            fmt(mb)
        );
    }
    let _ = writeln!(out, "{fixed} fixed, {regressed} regressed");
    (out, regressed > 0)
}

/// Run `promptloom compare`.
pub(crate) fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let a = crate::store::journal::load_with_journal(&args.session_a)?;
    let b = crate::store::journal::load_with_journal(&args.session_b)?;
    let (text, regressed) = report(
        &a,
        &b,
        (
            &args.session_a.display().to_string(),
            &args.session_b.display().to_string(),
        ),
    );
    print!("{}", crate::sanitize::visible(&text));
    Ok(if regressed && args.fail_on_regression {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatRequest, Sampling};
    use crate::eval::expect::CheckResult;
    use crate::state::session::{Node, Rating};

    fn answer(s: &mut Session, variant: &str, case: &str, pass: bool, stars: &[u8]) {
        let id = s.next_node_id();
        let mut n = Node::start(
            id,
            None,
            NodeKind::Answer,
            variant,
            case,
            "m",
            ChatRequest {
                messages: vec![],
                sampling: Sampling::default(),
            },
            "2026-01-01T00:00:00Z".into(),
        );
        n.status = NodeStatus::Done;
        n.checks = vec![CheckResult {
            kind: "any".into(),
            pass,
            detail: String::new(),
        }];
        s.nodes.push(n);
        for (k, st) in stars.iter().enumerate() {
            s.ratings.push(Rating {
                node: id,
                stars: Some(*st),
                thumb: None,
                note: None,
                rater: format!("r{k}"),
                at: "2026-01-01T00:00:00Z".into(),
                seq: None,
            });
        }
    }

    #[test]
    fn flips_and_star_deltas_per_variant_and_case() {
        let mut a = Session::new("t", "x".into(), Some("p.toml".into()));
        answer(&mut a, "plain", "England", true, &[4, 5]);
        answer(&mut a, "plain", "Italy", false, &[2]);
        answer(&mut a, "role", "England", true, &[3]);
        let mut b = Session::new("t", "y".into(), Some("p.toml".into()));
        answer(&mut b, "plain", "England", false, &[2]);
        answer(&mut b, "plain", "Italy", false, &[]);
        answer(&mut b, "plain", "Italy", true, &[5]);
        answer(&mut b, "role", "England", true, &[3]);
        let (text, regressed) = report(&a, &b, ("a.toml", "b.toml"));
        assert!(regressed);
        let row = |v: &str, c: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{v} ")) && l.contains(c))
                .unwrap_or_else(|| panic!("no row {v} {c} in\n{text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            row("plain", "England"),
            "plain England pass → fail REGRESSED 4.5 → 2.0 -2.5"
        );
        // Latest answer passes: fixed; stars from every answer of the cell.
        assert_eq!(
            row("plain", "Italy"),
            "plain Italy fail → pass fixed 2.0 → 5.0 +3.0"
        );
        assert_eq!(
            row("role", "England"),
            "role England pass → pass 3.0 → 3.0 +0.0"
        );
        assert!(text.contains("1 fixed, 1 regressed"), "{text}");
        assert!(
            text.contains("plain: prompt not recorded; passed 1/2 → 1/2; mean stars 3.67 → 3.50"),
            "{text}"
        );
    }
}
